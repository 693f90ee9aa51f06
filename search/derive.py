"""Deriving the genotype from the supernet's architecture weights.

Backbone: the strongest op at every block. Collapse guards: a strided block (the first of each
stage) always gets a parametric op — a strided skip is only a 1x1 projection and throws away
three quarters of the positions without looking at them; and when more than
``max_parameter_free`` blocks would still be parameter-free (skip), the ones whose lead over
their best parametric op is smallest are replaced by that op until the cap holds (a
P-DARTS-style cap). Short searches need both: parameter-free ops learn fastest, so they lead
early whatever their worth.

Head cell: on every edge the strongest non-zero op, unless 'zero' outweighs it — then the edge
is dropped. Collapse guard: every node keeps at least one parametric incoming op (when all its
edges came out parameter-free, the edge whose best parametric op is strongest gets that op), so
the derived head never degenerates into a pass-through of the pooled features.
"""

from __future__ import annotations

from typing import Any

from fsd.config import SpaceSection
from fsd.models.genotype import Genotype, HeadEdge, StageGenotype, head_edge_pairs
from fsd.nn.ops import PARAMETER_FREE_OPS


def _best(weights: list[float], names: list[str], exclude: frozenset[str] = frozenset()) -> tuple[str, float]:
    """The heaviest op not in ``exclude``; ties go to the op listed first."""
    candidates = [(w, -i, n) for i, (w, n) in enumerate(zip(weights, names)) if n not in exclude]
    weight, _, name = max(candidates)
    return name, weight


def derive_genotype(
    space: SpaceSection,
    backbone_weights: list[list[float]],
    head_weights: list[list[float]],
    max_parameter_free: int,
    provenance: dict[str, Any] | None = None,
) -> Genotype:
    """Genotype from per-position softmax weights (backbone blocks, then head edges, in order)."""
    backbone_names = list(space.backbone_ops)
    strided = {sum(stage.blocks for stage in space.stages[:index]) for index in range(len(space.stages))}
    has_parametric = any(n not in PARAMETER_FREE_OPS for n in backbone_names)
    choices = [
        _best(w, backbone_names, PARAMETER_FREE_OPS if position in strided and has_parametric else frozenset({"zero"}))[0]
        for position, w in enumerate(backbone_weights)
    ]
    free = [i for i, op in enumerate(choices) if op in PARAMETER_FREE_OPS]
    if len(free) > max_parameter_free and has_parametric:
        margins = []
        for i in free:
            _, free_weight = _best(backbone_weights[i], backbone_names, frozenset({"zero"}))
            _, param_weight = _best(backbone_weights[i], backbone_names, PARAMETER_FREE_OPS)
            margins.append((free_weight - param_weight, i))
        for _, i in sorted(margins)[: len(free) - max_parameter_free]:
            choices[i] = _best(backbone_weights[i], backbone_names, PARAMETER_FREE_OPS)[0]
    stages = []
    position = 0
    for stage in space.stages:
        stages.append(StageGenotype(width=stage.width, ops=tuple(choices[position : position + stage.blocks])))
        position += stage.blocks
    head_names = list(space.head_ops)
    pairs = head_edge_pairs(space.head_nodes)
    edges: list[HeadEdge] = []
    strengths: list[float] = []
    for (source, target), weights in zip(pairs, head_weights):
        op, weight = _best(weights, head_names, frozenset({"zero"}))
        zero_weight = weights[head_names.index("zero")] if "zero" in head_names else -1.0
        edges.append(HeadEdge(source, target, "zero" if zero_weight > weight else op))
        strengths.append(weight)
    parametric_head_ops = [n for n in head_names if n not in PARAMETER_FREE_OPS]
    for target in range(1, space.head_nodes + 1):
        incoming = [i for i, e in enumerate(edges) if e.target == target]
        if parametric_head_ops and all(edges[i].op in PARAMETER_FREE_OPS for i in incoming):
            best_edge = max(incoming, key=lambda i: _best(head_weights[i], head_names, PARAMETER_FREE_OPS)[1])
            op, _ = _best(head_weights[best_edge], head_names, PARAMETER_FREE_OPS)
            edges[best_edge] = HeadEdge(edges[best_edge].source, target, op)
        elif all(edges[i].op == "zero" for i in incoming):
            strongest = max(incoming, key=lambda i: strengths[i])
            op, _ = _best(head_weights[strongest], head_names, frozenset({"zero"}))
            edges[strongest] = HeadEdge(edges[strongest].source, target, op)
    return Genotype(
        stem_channels=space.stem_channels,
        stages=tuple(stages),
        head_channels=space.head_channels,
        head_nodes=space.head_nodes,
        head_edges=tuple(edges),
        search=dict(provenance or {}),
    )
