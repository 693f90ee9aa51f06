"""Region-aware graph reasoning over RoIs, for telling the 8 lesion types apart.

Three parts, all permutation-equivariant over the proposals of an image:

1. Region awareness: every RoI's centre and size relative to the patient's body (found in the
   model input by thresholding the key slice, as DeepLesion's Normalized_lesion_location does)
   are embedded and added to its feature: a liver lesion and a lung nodule live in different
   places of the body.
2. Proposal graph: RoIs of one image exchange messages along edges weighted by appearance
   affinity (scaled dot product) plus a learned function of their geometry (centre distance,
   overlap, relative position and size).
3. Lesion-type graph: 8 type nodes embedded from the base classifier's weights, connected by an
   adjacency initialised from a training-set prior given when the model is built
   (:func:`fsd.data.type_prior.type_prior_from_records`: co-occurrence in a patient and
   similarity of body location) and refined by learning; each RoI
   attends to the propagated type nodes and the attended feature joins the RoI feature in the
   final classifier.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou


def region_features(proposals: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    """(R, 4) features: centre x, y normalised to the body box, width and height relative to it."""
    body_w = (body[2] - body[0]).clamp(min=1.0)
    body_h = (body[3] - body[1]).clamp(min=1.0)
    cx = ((proposals[:, 0] + proposals[:, 2]) * 0.5 - body[0]) / body_w
    cy = ((proposals[:, 1] + proposals[:, 3]) * 0.5 - body[1]) / body_h
    w = (proposals[:, 2] - proposals[:, 0]) / body_w
    h = (proposals[:, 3] - proposals[:, 1]) / body_h
    return torch.stack([cx, cy, w, h], dim=1).clamp(-0.5, 1.5)


def pair_geometry(proposals: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    """(R, R, 6) pairwise geometry: log relative offsets, log size ratios, IoU, centre distance."""
    widths = (proposals[:, 2] - proposals[:, 0]).clamp(min=1.0)
    heights = (proposals[:, 3] - proposals[:, 1]).clamp(min=1.0)
    cx = (proposals[:, 0] + proposals[:, 2]) * 0.5
    cy = (proposals[:, 1] + proposals[:, 3]) * 0.5
    dx = torch.log((cx[None, :] - cx[:, None]).abs() / widths[:, None] + 1.0)
    dy = torch.log((cy[None, :] - cy[:, None]).abs() / heights[:, None] + 1.0)
    dw = torch.log(widths[None, :] / widths[:, None])
    dh = torch.log(heights[None, :] / heights[:, None])
    iou = box_iou(proposals, proposals)
    diagonal = torch.sqrt((body[2] - body[0]) ** 2 + (body[3] - body[1]) ** 2).clamp(min=1.0)
    distance = torch.sqrt((cx[None, :] - cx[:, None]) ** 2 + (cy[None, :] - cy[:, None]) ** 2) / diagonal
    return torch.stack([dx, dy, dw, dh, iou, distance], dim=2)


class ProposalGraph(nn.Module):
    """One round of attention-style message passing among the RoIs of an image."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, hidden)
        self.key = nn.Linear(dim, hidden)
        self.value = nn.Linear(dim, hidden)
        self.geometry = nn.Sequential(nn.Linear(6, 16), nn.ReLU(inplace=True), nn.Linear(16, 1))
        self.out = nn.Linear(hidden, dim)
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(self, features: torch.Tensor, proposals: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
        if features.shape[0] == 0:
            return features
        affinity = (self.query(features) @ self.key(features).t()) * self.scale
        geometric = self.geometry(pair_geometry(proposals, body)).squeeze(2)
        weights = torch.softmax(affinity + geometric, dim=1)
        message = weights @ self.value(features)
        return features + F.relu(self.out(message))


class TypeGraph(nn.Module):
    """Lesion-type nodes from classifier weights, a learnable prior-initialised adjacency, and
    RoI-to-type attention."""

    def __init__(self, dim: int, hidden: int, num_types: int) -> None:
        super().__init__()
        self.num_types = num_types
        self.embed = nn.Linear(dim, hidden)
        self.propagate = nn.Linear(hidden, hidden)
        self.attend = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, dim)
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

    def forward(self, features: torch.Tensor, classifier_weight: torch.Tensor) -> torch.Tensor:
        nodes = self.embed(classifier_weight[1:])
        nodes = nodes + F.relu(self.propagate(self.adjacency() @ nodes))
        attention = torch.softmax((self.attend(features) @ nodes.t()) * self.scale, dim=1)
        return self.out(attention @ nodes)


class RegionAwareGraph(nn.Module):
    """Region embedding + proposal graph, applied image by image."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.region = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        self.proposal_graph = ProposalGraph(dim, hidden)

    def forward(self, features: torch.Tensor, proposals: list[torch.Tensor], bodies: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        start = 0
        for index, boxes in enumerate(proposals):
            count = boxes.shape[0]
            chunk = features[start : start + count]
            body = bodies[index]
            chunk = chunk + self.region(region_features(boxes, body))
            outputs.append(self.proposal_graph(chunk, boxes, body))
            start += count
        return torch.cat(outputs, dim=0)
