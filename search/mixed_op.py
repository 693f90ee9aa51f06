"""The mixed op: every candidate op at one searchable position, weighted by the alphas.

Two ways to run it:

- mixing (DARTS): the softmax(alpha)-weighted sum of every candidate;
- sampling (GDAS): with Gumbel noise ``g`` drawn for the step (:meth:`MixedOp.draw`), the one
  candidate ``k = argmax(alpha + g)`` runs, scaled by the straight-through hard weight
  ``1 - p_k.detach() + p_k`` (value 1) of ``p = softmax((alpha + g) / tau)``, so the alphas get a
  gradient while a step costs a single op per position.

With ``partial_channels`` k > 1 (PC-DARTS) only the first 1/k of the channels go through the
candidates; the rest bypass them (identity, or a strided 1x1 projection when the shape changes)
and the two parts are channel-shuffled, cutting the search's memory and time about k-fold.
"""

from __future__ import annotations

import torch
from torch import nn

from fsd.models.complexity import count_parameters
from fsd.nn.ops import Skip, build_op


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.shape
    return x.view(batch, groups, channels // groups, height, width).transpose(1, 2).reshape(batch, channels, height, width)


class MixedOp(nn.Module):
    def __init__(
        self,
        op_names: list[str],
        in_channels: int,
        out_channels: int,
        stride: int,
        norm: str,
        partial_channels: int = 1,
    ) -> None:
        super().__init__()
        if not op_names:
            raise ValueError("a mixed op needs at least one candidate")
        self.op_names: list[str] = list(op_names)
        k = partial_channels
        if k > 1 and (in_channels % k or out_channels % k or in_channels < 2 * k or out_channels < 2 * k):
            k = 1
        self.partial = k
        self.in_part = in_channels // k
        self.out_part = out_channels // k
        self.candidates = nn.ModuleList(
            [build_op(name, self.in_part, self.out_part, stride, norm) for name in op_names]
        )
        self.bypass: nn.Module = nn.Identity()
        if k > 1:
            self.bypass = Skip(in_channels - self.in_part, out_channels - self.out_part, stride, norm)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(op_names)))
        #: parameters of each candidate at full width: what the derived network would carry
        full = [count_parameters(build_op(name, in_channels, out_channels, stride, "bn")) for name in op_names]
        self.register_buffer("full_param_counts", torch.tensor(full, dtype=torch.float32), persistent=False)
        #: Gumbel noise of the current step and its temperature; None: mix every candidate
        self.gumbel: torch.Tensor | None = None
        self.tau = 1.0
        #: run only this candidate (a candidate network evaluated with the shared weights)
        self.fixed: int | None = None

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.alpha, dim=0)

    def expected_parameters(self) -> torch.Tensor:
        """Differentiable expected parameter count of this position under softmax(alpha)."""
        return (self.weights() * self.full_param_counts).sum()

    def draw(self, generator: torch.Generator | None, tau: float) -> None:
        """Sample this step's Gumbel noise (``generator`` None: go back to mixing every op)."""
        if generator is None:
            self.gumbel = None
            return
        uniform = torch.rand(len(self.op_names), generator=generator).clamp_(1e-9, 1.0 - 1e-9)
        self.gumbel = (-torch.log(-torch.log(uniform))).to(self.alpha.device)
        self.tau = tau

    def _candidates_output(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed is not None:
            return self.candidates[self.fixed](x)
        if self.gumbel is None:
            weights = self.weights()
            return sum(w * op(x) for w, op in zip(weights, self.candidates))
        soft = torch.softmax((self.alpha + self.gumbel) / self.tau, dim=0)
        chosen = int(torch.argmax(soft.detach()))
        hard = 1.0 - soft[chosen].detach() + soft[chosen]
        return hard * self.candidates[chosen](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.partial == 1:
            return self._candidates_output(x)
        head, tail = x[:, : self.in_part], x[:, self.in_part :]
        return channel_shuffle(torch.cat([self._candidates_output(head), self.bypass(tail)], dim=1), self.partial)
