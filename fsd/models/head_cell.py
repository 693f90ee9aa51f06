"""The searchable RoI box head: a small cell of ops over the pooled RoI features.

Node 0 is the pooled feature projected to ``channels``; node i is the sum of its incoming edges'
ops applied to earlier nodes; the concatenation of nodes 1..N is flattened into a fully connected
representation (FC - LayerNorm - ReLU). Which op sits on each edge comes from an edge factory: the genotype's op for a
derived network, a mixed op during the search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from fsd.models.genotype import Genotype, head_edge_pairs
from fsd.nn import make_norm
from fsd.nn.ops import build_op

#: (edge index, source node, target node, channels) -> module
EdgeFactory = Callable[[int, int, int, int], nn.Module]


def _sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total


class CellBoxHead(nn.Module):
    """RoI features (R, C, P, P) -> (R, representation)."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        nodes: int,
        pool_size: int,
        representation: int,
        norm: str,
        edge_factory: EdgeFactory,
    ) -> None:
        super().__init__()
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, bias=False), make_norm(norm, channels), nn.ReLU(inplace=True)
        )
        pairs = head_edge_pairs(nodes)
        self.edge_sources: list[int] = [source for source, _ in pairs]
        self.edge_targets: list[int] = [target for _, target in pairs]
        self.edges = nn.ModuleList(
            [edge_factory(index, source, target, channels) for index, (source, target) in enumerate(pairs)]
        )
        self.fc = nn.Linear(nodes * channels * pool_size * pool_size, representation)
        # per-RoI layer norm before the ReLU: keeps the representation centred, so a large early
        # step cannot push every unit negative (an all-dead head was seen training from scratch)
        self.fc_norm = nn.LayerNorm(representation)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = representation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor] = [self.project(x)]
        pending: list[torch.Tensor] = []
        current_target = 1
        for index, edge in enumerate(self.edges):
            target = self.edge_targets[index]
            if target != current_target:
                nodes.append(_sum(pending))
                pending = []
                current_target = target
            pending.append(edge(nodes[self.edge_sources[index]]))
        nodes.append(_sum(pending))
        merged = torch.cat(nodes[1:], dim=1)
        return self.act(self.fc_norm(self.fc(merged.flatten(start_dim=1))))


def derived_head(genotype: Genotype, in_channels: int, pool_size: int, representation: int, norm: str) -> CellBoxHead:
    """The RoI head cell a genotype names."""
    ops: Sequence[str] = [edge.op for edge in genotype.head_edges]

    def factory(index: int, source: int, target: int, channels: int) -> nn.Module:
        return build_op(ops[index], channels, channels, 1, norm)

    return CellBoxHead(
        in_channels=in_channels,
        channels=genotype.head_channels,
        nodes=genotype.head_nodes,
        pool_size=pool_size,
        representation=representation,
        norm=norm,
        edge_factory=factory,
    )
