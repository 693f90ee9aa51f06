"""Box predictors: class logits (background + K types) and one class-agnostic box per RoI.

``BoxPredictor`` is the plain linear predictor; ``GraphBoxPredictor`` adds the region-aware
graph (see :mod:`fsd.models.graph`): a base classifier on the graph-enhanced RoI features whose
weights embed the type nodes, and a final classifier on the RoI feature joined with what it
attended to among the types. Both return ``(class_logits, box_deltas, auxiliary_logits)``; the
auxiliary logits are empty for the plain predictor.
"""

from __future__ import annotations

import torch
from torch import nn

from fsd.models.graph import RegionAwareGraph, TypeGraph


class BoxPredictor(nn.Module):
    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, 4)

    def forward(
        self, features: torch.Tensor, proposals: list[torch.Tensor], bodies: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.cls_score(features), self.bbox_pred(features), features.new_zeros((0,))


class GraphBoxPredictor(nn.Module):
    """``type_prior``: the (K, K) type adjacency the type graph starts from (uniform without one),
    weighted by ``prior_weight``."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int,
        type_prior: torch.Tensor | None = None,
        prior_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.region_graph = RegionAwareGraph(in_features, hidden)
        self.cls_base = nn.Linear(in_features, num_classes + 1)
        self.type_graph = TypeGraph(in_features, hidden, num_classes)
        if type_prior is not None:
            self.type_graph.set_prior(type_prior, prior_weight)
        self.cls_score = nn.Linear(2 * in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, 4)

    def forward(
        self, features: torch.Tensor, proposals: list[torch.Tensor], bodies: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enhanced = self.region_graph(features, proposals, bodies)
        base_logits = self.cls_base(enhanced)
        typed = self.type_graph(enhanced, self.cls_base.weight)
        logits = self.cls_score(torch.cat([enhanced, typed], dim=1))
        return logits, self.bbox_pred(enhanced), base_logits
