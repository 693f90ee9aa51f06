"""The genotype: a versioned, plain-data JSON document naming the derived architecture.

It records the op at every searchable position of the backbone (one per block; the first block
of each of the 4 stages has stride 2) and of the RoI head cell (one per edge of a small DAG), the
widths, and which search run produced it. Loading validates everything and names the position
of any mistake; nothing in it is ever executed.

    {
      "format": "fsd-genotype", "version": 1,
      "backbone": {"stem_channels": 16,
                   "stages": [{"width": 24, "ops": ["ir_k3_e3", "sep_conv_3x3"]}, ... 4 stages]},
      "head": {"channels": 64, "nodes": 2,
               "edges": [{"from": 0, "to": 1, "op": "conv_3x3"},
                         {"from": 0, "to": 2, "op": "skip"},
                         {"from": 1, "to": 2, "op": "sep_conv_3x3"}]},
      "search": {...provenance: run directory, config name, seed, epochs, created...}
    }

Head cell: node 0 is the pooled RoI feature (after a 1x1 projection to ``channels``); node i
(1..nodes) is the sum of its incoming edges' ops applied to nodes j < i; the cell's output is the
concatenation of nodes 1..nodes. Every (j, i) pair with j < i is exactly one edge.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsd.errors import FsdError
from fsd.nn.ops import OPS

GENOTYPE_FORMAT = "fsd-genotype"
GENOTYPE_VERSION = 1
NUM_STAGES = 4


class GenotypeError(FsdError):
    """A genotype document is malformed; the message names the offending position."""

    code = "invalid_genotype"


@dataclass(frozen=True)
class StageGenotype:
    width: int
    ops: tuple[str, ...]


@dataclass(frozen=True)
class HeadEdge:
    source: int
    target: int
    op: str


@dataclass(frozen=True)
class Genotype:
    stem_channels: int
    stages: tuple[StageGenotype, ...]
    head_channels: int
    head_nodes: int
    head_edges: tuple[HeadEdge, ...]
    search: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        validate_genotype(self)

    @property
    def backbone_ops(self) -> list[str]:
        return [op for stage in self.stages for op in stage.ops]

    @property
    def key(self) -> str:
        """A short hash of the architecture (ops and shapes; not its provenance)."""
        document = {k: v for k, v in self.to_dict().items() if k != "search"}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": GENOTYPE_FORMAT,
            "version": GENOTYPE_VERSION,
            "backbone": {
                "stem_channels": self.stem_channels,
                "stages": [{"width": s.width, "ops": list(s.ops)} for s in self.stages],
            },
            "head": {
                "channels": self.head_channels,
                "nodes": self.head_nodes,
                "edges": [{"from": e.source, "to": e.target, "op": e.op} for e in self.head_edges],
            },
            "search": dict(self.search),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def head_edge_pairs(nodes: int) -> list[tuple[int, int]]:
    """The (source, target) pairs of a head cell with ``nodes`` intermediate nodes, in order."""
    return [(source, target) for target in range(1, nodes + 1) for source in range(target)]


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise GenotypeError(f"genotype {where}: {message}")


def _positive_int(value: Any, where: str) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool) and value > 0, where, f"must be a positive integer, got {value!r}")
    return int(value)


def _known_op(op: Any, where: str) -> str:
    _require(isinstance(op, str), where, f"op must be a string, got {op!r}")
    _require(op in OPS, where, f"unknown op {op!r}; known ops: {', '.join(OPS)}")
    return str(op)


def validate_genotype(genotype: Genotype) -> None:
    """Structural checks shared by loading and direct construction."""
    _positive_int(genotype.stem_channels, "backbone.stem_channels")
    _require(len(genotype.stages) == NUM_STAGES, "backbone.stages", f"needs exactly {NUM_STAGES} stages, got {len(genotype.stages)}")
    for s, stage in enumerate(genotype.stages):
        _positive_int(stage.width, f"backbone.stages[{s}].width")
        _require(len(stage.ops) >= 1, f"backbone.stages[{s}].ops", "needs at least one op")
        for b, op in enumerate(stage.ops):
            where = f"backbone.stages[{s}].ops[{b}]"
            _known_op(op, where)
            _require(op != "zero", where, "'zero' would cut the backbone; it is only allowed on head edges")
    _positive_int(genotype.head_channels, "head.channels")
    _positive_int(genotype.head_nodes, "head.nodes")
    expected = head_edge_pairs(genotype.head_nodes)
    _require(
        len(genotype.head_edges) == len(expected),
        "head.edges",
        f"a cell with {genotype.head_nodes} nodes has {len(expected)} edges, got {len(genotype.head_edges)}",
    )
    for index, (edge, (source, target)) in enumerate(zip(genotype.head_edges, expected)):
        where = f"head.edges[{index}]"
        _require(
            (edge.source, edge.target) == (source, target),
            where,
            f"expected edge from {source} to {target}, got from {edge.source} to {edge.target}",
        )
        _known_op(edge.op, where)
    for target in range(1, genotype.head_nodes + 1):
        incoming = [e.op for e in genotype.head_edges if e.target == target]
        _require(any(op != "zero" for op in incoming), f"head node {target}", "every incoming edge is 'zero'")


def genotype_from_dict(data: Any) -> Genotype:
    """Build and validate a genotype from its JSON document."""
    _require(isinstance(data, dict), "<root>", "must be a JSON object")
    _require(data.get("format") == GENOTYPE_FORMAT, "format", f"must be {GENOTYPE_FORMAT!r}, got {data.get('format')!r}")
    version = data.get("version")
    _require(version == GENOTYPE_VERSION, "version", f"unsupported version {version!r} (this build reads {GENOTYPE_VERSION})")
    backbone = data.get("backbone")
    _require(isinstance(backbone, dict), "backbone", "must be an object")
    stages_data = backbone.get("stages")
    _require(isinstance(stages_data, list), "backbone.stages", "must be a list")
    stages = []
    for s, stage in enumerate(stages_data):
        _require(isinstance(stage, dict), f"backbone.stages[{s}]", "must be an object")
        ops = stage.get("ops")
        _require(isinstance(ops, list), f"backbone.stages[{s}].ops", "must be a list")
        stages.append(
            StageGenotype(width=_positive_int(stage.get("width"), f"backbone.stages[{s}].width"), ops=tuple(ops))
        )
    head = data.get("head")
    _require(isinstance(head, dict), "head", "must be an object")
    edges_data = head.get("edges")
    _require(isinstance(edges_data, list), "head.edges", "must be a list")
    edges = []
    for index, edge in enumerate(edges_data):
        where = f"head.edges[{index}]"
        _require(isinstance(edge, dict) and {"from", "to", "op"} <= set(edge), where, "needs keys from, to, op")
        _require(isinstance(edge["from"], int) and isinstance(edge["to"], int), where, "from/to must be integers")
        edges.append(HeadEdge(source=edge["from"], target=edge["to"], op=edge["op"]))
    search = data.get("search", {})
    _require(isinstance(search, dict), "search", "must be an object")
    return Genotype(
        stem_channels=_positive_int(backbone.get("stem_channels"), "backbone.stem_channels"),
        stages=tuple(stages),
        head_channels=_positive_int(head.get("channels"), "head.channels"),
        head_nodes=_positive_int(head.get("nodes"), "head.nodes"),
        head_edges=tuple(edges),
        search=search,
    )


def load_genotype(path: str | Path) -> Genotype:
    """Read and validate a genotype.json."""
    path = Path(path)
    if not path.is_file():
        raise GenotypeError(f"genotype file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise GenotypeError(f"{path}: not valid JSON ({error})") from None
    try:
        return genotype_from_dict(data)
    except GenotypeError as error:
        raise GenotypeError(f"{path}: {error}") from None


def make_genotype(
    stem_channels: int,
    stages: Sequence[tuple[int, Sequence[str]]],
    head_channels: int,
    head_ops: Sequence[str],
    search: dict[str, Any] | None = None,
) -> Genotype:
    """Convenience constructor: head ops listed in :func:`head_edge_pairs` order."""
    nodes = 1
    while len(head_edge_pairs(nodes)) < len(head_ops):
        nodes += 1
    pairs = head_edge_pairs(nodes)
    if len(pairs) != len(head_ops):
        raise GenotypeError(f"genotype head.edges: {len(head_ops)} ops do not form a complete cell")
    return Genotype(
        stem_channels=stem_channels,
        stages=tuple(StageGenotype(width=w, ops=tuple(ops)) for w, ops in stages),
        head_channels=head_channels,
        head_nodes=nodes,
        head_edges=tuple(HeadEdge(s, t, op) for (s, t), op in zip(pairs, head_ops)),
        search=dict(search or {}),
    )


def default_genotype() -> Genotype:
    """A hand-written architecture from the search space, for tests and as a search-free demo."""
    return make_genotype(
        stem_channels=16,
        stages=[
            (24, ["ir_k3_e3", "sep_conv_3x3"]),
            (40, ["ir_k5_e3", "sep_conv_3x3"]),
            (64, ["ir_k3_e6", "dil_conv_3x3"]),
            (96, ["ir_k5_e6", "sep_conv_5x5"]),
        ],
        head_channels=64,
        head_ops=["conv_3x3", "skip", "sep_conv_3x3"],
        search={"source": "hand-written default"},
    )
