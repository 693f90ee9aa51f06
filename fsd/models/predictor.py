"""Box predictors: class logits (background + K types) and one class-agnostic box per RoI.

``BoxPredictor`` is the plain linear predictor; ``GraphBoxPredictor`` adds the region-aware
graph (see :mod:`fsd.models.graph`): a base classifier on the graph-enhanced RoI features whose
weights embed the type nodes, and a final type classifier on the RoI feature joined with what
it attended to among the types (and its region), while whether a RoI is a lesion is scored, like
its box, from the RoI feature before the graph. Boxes are regressed from the RoI features
before the graph in both, and both return ``(class_logits, box_deltas, auxiliary_logits)``; with ``auxiliary`` (the
multi-type task) both have the auxiliary base classifier, so graph on and off train with the
same losses, otherwise its logits are empty.

Inputs: the RoI features (R, D) and boxes per image (the RoIs to classify), the image's context
RoIs' features and boxes (the graph's nodes; the RoIs themselves at test time), the body boxes
(B, 4) and the slice positions (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fsd.models.graph import REGION_FEATURES, RegionAwareGraph, TypeGraph


class BoxPredictor(nn.Module):
    def __init__(self, in_features: int, num_classes: int, auxiliary: bool = False) -> None:
        super().__init__()
        self.uses_context = False
        self.auxiliary = auxiliary
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, 4)
        self.cls_base: nn.Module = nn.Linear(in_features, num_classes + 1) if auxiliary else nn.Identity()

    def forward(
        self,
        features: torch.Tensor,
        proposals: list[torch.Tensor],
        context: torch.Tensor,
        context_boxes: list[torch.Tensor],
        bodies: torch.Tensor,
        slice_z: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        auxiliary = self.cls_base(features) if self.auxiliary else features.new_zeros((0,))
        return self.cls_score(features), self.bbox_pred(features), auxiliary


class GraphBoxPredictor(nn.Module):
    """``type_prior``: the (K, K) type adjacency the type graph starts from (uniform without one),
    weighted by ``prior_weight``. With ``position`` (the default) every RoI's region features
    (centre, size relative to the body, slice position) are embedded into its feature before the
    proposal graph and, embedded again, join the final classifier's input beside the box's own
    feature and its type-graph feature, as MULAN's refine layer gives its classifier x, y, w, h
    and z; without it the graph sees appearance and relative geometry only.

    The graph answers the type question only: P(lesion) comes from a linear layer on the RoI
    feature before the graph (as in the plain predictor), P(type | lesion) from the final
    classifier, and the returned logits are their log-probabilities
    [log P(background), log P(lesion) + log P(type | lesion)], whose softmax is exactly those
    probabilities. Where a lesion sits in the body says what type it is, not whether it is one.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int,
        type_prior: torch.Tensor | None = None,
        prior_weight: float = 1.0,
        position: bool = True,
    ) -> None:
        super().__init__()
        self.uses_context = True
        self.auxiliary = True
        self.position = position
        self.region_graph = RegionAwareGraph(in_features, hidden, position)
        self.cls_base = nn.Linear(in_features, num_classes + 1)
        self.type_graph = TypeGraph(in_features, hidden, num_classes)
        self.geometry: nn.Module = (
            nn.Sequential(nn.Linear(REGION_FEATURES, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
            if position
            else nn.Identity()
        )
        self.lesion_score = nn.Linear(in_features, 1)
        self.cls_score = nn.Linear(2 * in_features + (hidden if position else 0), num_classes)
        self.bbox_pred = nn.Linear(in_features, 4)
        if type_prior is not None:
            self.type_graph.set_prior(type_prior, prior_weight)

    def forward(
        self,
        features: torch.Tensor,
        proposals: list[torch.Tensor],
        context: torch.Tensor,
        context_boxes: list[torch.Tensor],
        bodies: torch.Tensor,
        slice_z: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enhanced, summaries, regions = self.region_graph(features, proposals, context, context_boxes, bodies, slice_z)
        base_logits = self.cls_base(enhanced)
        typed: list[torch.Tensor] = []
        start = 0
        for index in range(len(proposals)):
            count = proposals[index].shape[0]
            typed.append(self.type_graph(enhanced[start : start + count], summaries[index], self.cls_base.weight))
            start += count
        joined = [enhanced, torch.cat(typed, dim=0)]
        if self.position:
            joined.append(self.geometry(regions))
        type_logits = self.cls_score(torch.cat(joined, dim=1))
        lesion = self.lesion_score(features)
        logits = torch.cat([F.logsigmoid(-lesion), F.logsigmoid(lesion) + F.log_softmax(type_logits, dim=1)], dim=1)
        return logits, self.bbox_pred(features), base_logits
