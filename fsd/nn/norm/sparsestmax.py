"""Sparsemax and SparsestMax: projections of logits onto the probability simplex.

``sparsemax`` is the Euclidean projection onto the simplex (Martins & Astudillo, 2016).
``sparsestmax`` (SSN, Shao et al., 2019) additionally keeps the result at least ``radius`` away
from the simplex centre u = (1/K, ..., 1/K), which drives it towards a one-hot vector as the
radius grows:

1. p = sparsemax(logits); if p is one-hot, done.
2. On the face F of the simplex that p's support spans, the sphere of radius r around u is a
   sphere of radius r_F = sqrt(r^2 - ||u - u_F||^2) around the face's centre u_F (u_F is u's
   orthogonal projection onto the face, and ||u - u_F||^2 = 1/|F| - 1/K). If
   ||p - u_F|| < r_F, push p out along (p - u_F) onto that sphere.
3. If that leaves negative entries, project onto the simplex again (which drops them and lands
   on a smaller face) and repeat from 2.

Each repetition shrinks the support, so at most K - 1 pushes happen. For logits [1, 1.2, 0.9]
this gives [.3, .5, .2] at r = 0, about [.1, .9, 0] at r = 0.7 and [0, 1, 0] from r = sqrt(2/3).
A point exactly at the centre of its face (tied logits) has no outward direction; it is pushed
towards the vertex of its largest logit, the first of equal ones (the official code keeps the
simplex centre unchanged and breaks ties on an edge by sort order), so the result always keeps
the radius. The functions work on
the last axis of a tensor of any shape, on any device, are differentiable almost everywhere and
script with ``torch.jit.script``.
"""

import math

import torch
from torch import Tensor


def sparsemax(logits: Tensor) -> Tensor:
    """Euclidean projection of ``logits`` onto the probability simplex, along the last axis."""
    sorted_logits, _ = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.cumsum(-1)
    ranks = torch.arange(1, logits.shape[-1] + 1, device=logits.device, dtype=logits.dtype)
    in_support = 1.0 + ranks * sorted_logits > cumulative
    support_size = in_support.sum(-1, keepdim=True)
    threshold = (cumulative.gather(-1, support_size - 1) - 1.0) / support_size.to(logits.dtype)
    return torch.clamp(logits - threshold, min=0.0)


def sparsestmax(logits: Tensor, radius: float) -> Tensor:
    """SparsestMax of ``logits`` along the last axis with constraint radius ``radius`` >= 0.

    ``radius`` 0 is sparsemax; from sqrt(1 - 1/K) (the distance from the centre to a vertex)
    the result is always one-hot.
    """
    if not (math.isfinite(radius) and radius >= 0.0):
        raise ValueError("the sparsestmax radius must be a finite number >= 0, got " + str(radius))
    probabilities = sparsemax(logits)
    num_classes = logits.shape[-1]
    if radius == 0.0 or num_classes < 2:
        return probabilities
    squared_radius = radius * radius
    # below this squared distance from its face's centre a point counts as at the centre
    min_squared_distance = 1e-12
    done = torch.zeros(probabilities.shape[:-1] + (1,), dtype=torch.bool, device=logits.device)
    for _ in range(num_classes - 1):
        support = probabilities > 0.0
        support_size = support.sum(-1, keepdim=True).to(logits.dtype)
        face_centre = support.to(logits.dtype) / support_size
        face_squared_radius = squared_radius - (1.0 / support_size - 1.0 / num_classes)
        offset = probabilities - face_centre
        squared_distance = (offset * offset).sum(-1, keepdim=True)
        # a point at its face's centre has no outward direction: head for the top logit's vertex
        at_centre = squared_distance <= min_squared_distance
        top = torch.where(support, logits.detach(), torch.full_like(logits, -math.inf)).argmax(
            -1, keepdim=True
        )
        towards_top = torch.zeros_like(probabilities).scatter(-1, top, 1.0) - face_centre
        direction = torch.where(at_centre, towards_top, offset)
        squared_length = torch.where(at_centre, 1.0 - 1.0 / support_size, squared_distance)
        push = ~done & (support_size > 1.0) & (squared_distance < face_squared_radius)
        # safe operands keep the branch that torch.where discards finite, so gradients stay finite
        scale = torch.sqrt(face_squared_radius.clamp(min=min_squared_distance)) / torch.sqrt(
            squared_length.clamp(min=min_squared_distance)
        )
        pushed = face_centre + direction * scale
        leaves_simplex = (pushed < 0.0).any(-1, keepdim=True)
        pushed = torch.where(leaves_simplex, sparsemax(pushed), pushed)
        probabilities = torch.where(push, pushed, probabilities)
        done = done | ~push | ~leaves_simplex
    return probabilities
