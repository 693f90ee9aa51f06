"""Region-aware graph reasoning over RoIs, for telling the 8 lesion types apart.

Three parts, all permutation-equivariant over the proposals of an image:

1. Region awareness: every RoI's centre and size relative to the patient's body box (found in
   the model input without the scanner table, :mod:`fsd.models.body`) and the slice's position
   along the body (estimated from the image, :class:`SlicePositionHead`, trained on DeepLesion's
   anatomy-anchored z), as DeepLesion's Normalized_lesion_location describes a lesion, are
   embedded and added to its feature, and given once more to the final classifier
   (:class:`fsd.models.predictor.GraphBoxPredictor`, as MULAN's refine layer): a liver lesion and
   a lung nodule live in different places of the body, a pelvic and an abdominal one at
   different heights.
2. Proposal graph: each RoI receives messages from the image's *context set* along edges
   weighted by appearance affinity (scaled dot product) plus a learned function of their
   geometry (centre distance, overlap, relative position and size). The context set is the
   same in training and at test time: the image's top-scoring RPN proposals (at test time the
   RoIs are those proposals; in training the sampled RoIs attend to them).
3. Lesion-type graph: 8 type nodes embedded from the base classifier's weights, conditioned on
   the image (a gate from the mean context feature), connected by an adjacency initialised
   from a training-set prior given when the model is built
   (:func:`fsd.data.type_prior.type_prior_from_records`) and refined by learning; each RoI
   attends to its image's propagated type nodes and the attended feature joins the RoI feature
   in the final classifier.

Every residual branch starts at zero (its last layer is zero-initialised) and adds that layer's
output as it is: nothing after a zero-initialised layer may cut its gradient (a ReLU there
outputs exactly 0 with gradient 0, so the layer would never train), so an untrained graph passes
the RoI features through unchanged and every part of it learns what it adds
(``tests/fsd/models/test_graph_learns.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

#: region features per RoI: centre x, y and width, height relative to the body, slice position z
REGION_FEATURES = 5


def zero_last_layer(layer: nn.Linear) -> nn.Linear:
    """Zero a residual branch's last layer, so the branch starts as "add nothing"."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def region_features(proposals: torch.Tensor, body: torch.Tensor, slice_z: torch.Tensor) -> torch.Tensor:
    """(R, 5) features: centre x, y normalised to the body box, width and height relative to it,
    and the slice's position along the body (0 head end, 1 feet end) for every RoI."""
    body_w = (body[2] - body[0]).clamp(min=1.0)
    body_h = (body[3] - body[1]).clamp(min=1.0)
    cx = ((proposals[:, 0] + proposals[:, 2]) * 0.5 - body[0]) / body_w
    cy = ((proposals[:, 1] + proposals[:, 3]) * 0.5 - body[1]) / body_h
    w = (proposals[:, 2] - proposals[:, 0]) / body_w
    h = (proposals[:, 3] - proposals[:, 1]) / body_h
    z = slice_z.reshape(1).expand(proposals.shape[0])
    return torch.stack([cx, cy, w, h, z], dim=1).clamp(-0.5, 1.5)


def pair_geometry(queries: torch.Tensor, context: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    """(Q, C, 6) geometry of each query box to each context box: log relative offsets, log size
    ratios, IoU, centre distance over the body diagonal."""
    q_w = (queries[:, 2] - queries[:, 0]).clamp(min=1.0)
    q_h = (queries[:, 3] - queries[:, 1]).clamp(min=1.0)
    c_w = (context[:, 2] - context[:, 0]).clamp(min=1.0)
    c_h = (context[:, 3] - context[:, 1]).clamp(min=1.0)
    q_x = (queries[:, 0] + queries[:, 2]) * 0.5
    q_y = (queries[:, 1] + queries[:, 3]) * 0.5
    c_x = (context[:, 0] + context[:, 2]) * 0.5
    c_y = (context[:, 1] + context[:, 3]) * 0.5
    dx = torch.log((c_x[None, :] - q_x[:, None]).abs() / q_w[:, None] + 1.0)
    dy = torch.log((c_y[None, :] - q_y[:, None]).abs() / q_h[:, None] + 1.0)
    dw = torch.log(c_w[None, :] / q_w[:, None])
    dh = torch.log(c_h[None, :] / q_h[:, None])
    iou = box_iou(queries, context)
    diagonal = torch.sqrt((body[2] - body[0]) ** 2 + (body[3] - body[1]) ** 2).clamp(min=1.0)
    distance = torch.sqrt((c_x[None, :] - q_x[:, None]) ** 2 + (c_y[None, :] - q_y[:, None]) ** 2) / diagonal
    return torch.stack([dx, dy, dw, dh, iou, distance], dim=2)


class SlicePositionHead(nn.Module):
    """The key slice's position along the body (sigmoid, 0 head end .. 1 feet end), from the two
    coarsest pyramid levels (the mean of P4 and P5 and the maximum of P5: which anatomy the slice
    shows, and the strongest of it): what DeepLesion's anatomy-anchored normalised z of the
    slice's lesions says, predicted from the image so that inference needs no input beyond the
    pixels, in the spirit of body-part regression."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3 * channels, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, p4: torch.Tensor, p5: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([p4.mean(dim=(2, 3)), p5.mean(dim=(2, 3)), p5.amax(dim=(2, 3))], dim=1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(pooled)))).squeeze(1)


class NoSlicePosition(nn.Module):
    """Stands in for :class:`SlicePositionHead` in a model without one (the binary task): position 0."""

    def forward(self, p4: torch.Tensor, p5: torch.Tensor) -> torch.Tensor:
        return p5.new_zeros((p5.shape[0],))


class ProposalGraph(nn.Module):
    """One round of attention-style message passing from an image's context RoIs to its RoIs."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, hidden)
        self.key = nn.Linear(dim, hidden)
        self.value = nn.Linear(dim, hidden)
        self.geometry = nn.Sequential(nn.Linear(6, 16), nn.ReLU(inplace=True), nn.Linear(16, 1))
        self.out = zero_last_layer(nn.Linear(hidden, dim))
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(
        self, queries: torch.Tensor, query_boxes: torch.Tensor, context: torch.Tensor, context_boxes: torch.Tensor, body: torch.Tensor
    ) -> torch.Tensor:
        if queries.shape[0] == 0 or context.shape[0] == 0:
            return queries
        affinity = (self.query(queries) @ self.key(context).t()) * self.scale
        geometric = self.geometry(pair_geometry(query_boxes, context_boxes, body)).squeeze(2)
        weights = torch.softmax(affinity + geometric, dim=1)
        message = F.relu(weights @ self.value(context))
        return queries + self.out(message)


class TypeGraph(nn.Module):
    """Lesion-type nodes from classifier weights, gated by the image, a learnable prior-initialised
    adjacency, and RoI-to-type attention."""

    def __init__(self, dim: int, hidden: int, num_types: int) -> None:
        super().__init__()
        self.num_types = num_types
        self.embed = nn.Linear(dim, hidden)
        self.image_gate = nn.Linear(dim, num_types)
        self.propagate = zero_last_layer(nn.Linear(hidden, hidden))
        self.attend = nn.Linear(dim, hidden)
        self.out = zero_last_layer(nn.Linear(hidden, dim))
        self.adjacency_logits = nn.Parameter(torch.zeros(num_types, num_types))
        self.register_buffer("prior", torch.full((num_types, num_types), 1.0 / num_types))
        self.scale = 1.0 / math.sqrt(hidden)

    @torch.jit.unused
    def set_prior(self, prior: torch.Tensor, weight: float = 1.0) -> None:
        """Initialise the adjacency from a (K, K) row-stochastic prior (kept in the state dict)."""
        if prior.shape != (self.num_types, self.num_types):
            raise ValueError(f"type prior must be {self.num_types}x{self.num_types}, got {tuple(prior.shape)}")
        prior = prior.to(self.prior) / prior.sum(dim=1, keepdim=True).clamp(min=1e-12)
        self.prior.copy_(prior)
        with torch.no_grad():
            self.adjacency_logits.copy_(weight * torch.log(prior + 1e-3))

    def adjacency(self) -> torch.Tensor:
        return torch.softmax(self.adjacency_logits, dim=1)

    def forward(self, features: torch.Tensor, image_context: torch.Tensor, classifier_weight: torch.Tensor) -> torch.Tensor:
        """``features`` (R, D) of one image's RoIs, ``image_context`` (D,) that image's summary."""
        gate = 2.0 * torch.sigmoid(self.image_gate(image_context))  # 1 at init (zero input mean aside)
        nodes = self.embed(classifier_weight[1:]) * gate[:, None]
        nodes = nodes + self.propagate(F.relu(self.adjacency() @ nodes))
        attention = torch.softmax((self.attend(features) @ nodes.t()) * self.scale, dim=1)
        return self.out(attention @ nodes)


class RegionAwareGraph(nn.Module):
    """Region embedding (with ``position``) + proposal graph, image by image. Returns the enhanced
    RoI features, each image's mean context feature (the type graph's image summary) and every
    RoI's region features (R, 5) (zeros without ``position``)."""

    def __init__(self, dim: int, hidden: int, position: bool = True) -> None:
        super().__init__()
        self.position = position
        self.region: nn.Module = (
            nn.Sequential(nn.Linear(REGION_FEATURES, hidden), nn.ReLU(inplace=True), zero_last_layer(nn.Linear(hidden, dim)))
            if position
            else nn.Identity()
        )
        self.proposal_graph = ProposalGraph(dim, hidden)

    def forward(
        self,
        queries: torch.Tensor,
        query_boxes: list[torch.Tensor],
        context: torch.Tensor,
        context_boxes: list[torch.Tensor],
        bodies: torch.Tensor,
        slice_z: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs: list[torch.Tensor] = []
        summaries: list[torch.Tensor] = []
        regions: list[torch.Tensor] = []
        query_start = 0
        context_start = 0
        for index in range(len(query_boxes)):
            boxes = query_boxes[index]
            others = context_boxes[index]
            body = bodies[index]
            z = slice_z[index]
            chunk = queries[query_start : query_start + boxes.shape[0]]
            around = context[context_start : context_start + others.shape[0]]
            if self.position:
                region = region_features(boxes, body, z)
                chunk = chunk + self.region(region)
                around = around + self.region(region_features(others, body, z))
            else:
                region = queries.new_zeros((boxes.shape[0], 5))  # REGION_FEATURES (a literal for TorchScript)
            regions.append(region)
            outputs.append(self.proposal_graph(chunk, boxes, around, others, body))
            summaries.append(around.mean(dim=0) if around.shape[0] > 0 else queries.new_zeros((queries.shape[1],)))
            query_start += boxes.shape[0]
            context_start += others.shape[0]
        return torch.cat(outputs, dim=0), torch.stack(summaries), torch.cat(regions, dim=0)
