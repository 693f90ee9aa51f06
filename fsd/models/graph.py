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
   adjacency initialised from training-set statistics (:func:`type_prior_from_records`:
   co-occurrence in a patient and similarity of body location) and refined by learning; each RoI
   attends to the propagated type nodes and the attended feature joins the RoI feature in the
   final classifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from fsd.data.dl_info import KeySliceRecord


def body_boxes(images: torch.Tensor, image_sizes: list[tuple[int, int]], threshold: float, channel: int) -> torch.Tensor:
    """Per image, the box (x1, y1, x2, y2) of pixels above ``threshold`` in ``channel``.

    ``images`` is the padded batch in the model's normalised units, ``threshold`` in the same
    units. An image with nothing above the threshold gets its full extent.
    """
    boxes: list[torch.Tensor] = []
    for index, (height, width) in enumerate(image_sizes):
        mask = images[index, channel, :height, :width] > threshold
        rows = torch.nonzero(mask.any(dim=1)).flatten()
        cols = torch.nonzero(mask.any(dim=0)).flatten()
        if rows.numel() == 0 or cols.numel() == 0:
            box = torch.tensor([0.0, 0.0, float(width), float(height)], device=images.device)
        else:
            box = torch.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]).to(images.dtype)
        boxes.append(box.to(images.dtype))
    return torch.stack(boxes)


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


def type_prior_from_records(records: Sequence[KeySliceRecord], num_types: int = 8, smoothing: float = 1.0) -> torch.Tensor:
    """Row-stochastic (K, K) type adjacency prior from training annotations.

    Half co-occurrence (types found in the same patient), half body-region similarity (types
    whose normalised lesion locations lie close: exp(-distance between type mean locations / 0.2)),
    each row-normalised after adding ``smoothing`` so unseen pairs keep a small weight.
    """
    co_occurrence = np.zeros((num_types, num_types), dtype=np.float64)
    per_patient: dict[int, set[int]] = {}
    locations: list[list[tuple[float, float, float]]] = [[] for _ in range(num_types)]
    for record in records:
        for lesion in record.lesions:
            if 1 <= lesion.lesion_type <= num_types:
                per_patient.setdefault(record.patient, set()).add(lesion.lesion_type - 1)
                locations[lesion.lesion_type - 1].append(lesion.location)
    for types in per_patient.values():
        for a in types:
            for b in types:
                co_occurrence[a, b] += 1.0
    co_occurrence += smoothing
    co_occurrence /= co_occurrence.sum(axis=1, keepdims=True)
    means = np.array([np.mean(loc, axis=0) if loc else np.full(3, 0.5) for loc in locations])
    distance = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=2)
    region = np.exp(-distance / 0.2)
    region /= region.sum(axis=1, keepdims=True)
    prior = 0.5 * co_occurrence + 0.5 * region
    return torch.as_tensor(prior / prior.sum(axis=1, keepdims=True), dtype=torch.float32)
