"""Sparse Switchable Normalization (SSN): SN whose importance weights come from SparsestMax.

The layer has SN's parameters and buffers (always with BN) plus three buffers:

    radius        the current SparsestMax radius (0-d float), set by ``set_radius`` or by
                  ``update_sparse_radius(model, progress)``, which grows it linearly from 0 to 1
    mean_choice   -1 while the layer still mixes; afterwards the index (0 IN, 1 LN, 2 BN) of the
    var_choice    normalizer the mean / the variance was frozen to

At radius 0 the weights are sparsemax of the logits, and they become one-hot as the radius grows
(at the latest from sqrt(2/3)). The first training step at which both the mean and the variance
weights are one-hot freezes the layer: the choices are recorded in the buffers, the logits are no
longer used (so they receive no gradient), and from then on the layer computes only the
statistics of its selected normalizers; in particular the BN running buffers are neither used
nor updated unless BN was selected. The frozen output equals the mixed output with those one-hot
weights, so freezing does not change what the network computes.
"""

import math
from typing import Any, Final

import torch
from torch import Tensor, nn

from fsd.nn.norm.moments import instance_moments, statistics_dtype
from fsd.nn.norm.sparsestmax import sparsestmax
from fsd.nn.norm.switchable import SwitchNorm2d


class SparseSwitchNorm2d(SwitchNorm2d):
    """Switchable Normalization with SparsestMax importance weights that end one-hot and frozen.

    Arguments as :class:`SwitchNorm2d` (BN is always one of the candidates). The radius and the
    frozen choices live in buffers (so they are saved and loaded) mirrored by plain attributes,
    so the forward pass reads them without a device-to-host copy; change them only through
    :meth:`set_radius`, :func:`update_sparse_radius` or ``load_state_dict``. Until the layer is
    frozen, each training step copies one number to the host to test the weights for one-hot.
    """

    NOT_FROZEN: Final[int] = -1
    IN: Final[int] = 0
    LN: Final[int] = 1
    BN: Final[int] = 2

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.997,
        using_moving_average: bool = True,
        last_gamma: bool = False,
    ) -> None:
        self._radius_value = 0.0
        self._mean_choice_value = self.NOT_FROZEN
        self._var_choice_value = self.NOT_FROZEN
        super().__init__(num_features, eps, momentum, using_moving_average, True, last_gamma)
        self.register_buffer("radius", torch.zeros(()))
        self.register_buffer("mean_choice", torch.full((), self.NOT_FROZEN, dtype=torch.long))
        self.register_buffer("var_choice", torch.full((), self.NOT_FROZEN, dtype=torch.long))

    def reset_parameters(self) -> None:
        """SN's initialisation, radius 0 and no frozen choice."""
        super().reset_parameters()
        if hasattr(self, "radius"):
            self.set_radius(0.0)
            self._record_choices(self.NOT_FROZEN, self.NOT_FROZEN)

    def set_radius(self, radius: float) -> None:
        """Set the SparsestMax radius (>= 0); it has no effect once the layer is frozen."""
        if not (math.isfinite(radius) and radius >= 0.0):
            raise ValueError(f"the SparsestMax radius must be a finite number >= 0, got {radius}")
        self._radius_value = float(radius)
        with torch.no_grad():
            self.radius.fill_(radius)

    def current_radius(self) -> float:
        """The SparsestMax radius in use."""
        return self._radius_value

    def is_frozen(self) -> bool:
        """Whether the layer has settled on one normalizer for the mean and one for the variance."""
        return self._mean_choice_value != self.NOT_FROZEN

    def importance_weights(self) -> tuple[Tensor, Tensor]:
        """SparsestMax importance of the mean and variance statistics, order [IN, LN, BN];
        the one-hot choices once frozen."""
        if self.is_frozen():
            return self._one_hot(self._mean_choice_value), self._one_hot(self._var_choice_value)
        return sparsestmax(self.mean_weight, self._radius_value), sparsestmax(
            self.var_weight, self._radius_value
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.is_frozen():
            return self._frozen_forward(x)
        mean_weights, var_weights = self.importance_weights()
        if self.training and _is_one_hot(mean_weights) and _is_one_hot(var_weights):
            self._record_choices(int(torch.argmax(mean_weights)), int(torch.argmax(var_weights)))
            return self._frozen_forward(x)
        return self._mixed_forward(x, mean_weights, var_weights)

    def _one_hot(self, choice: int) -> Tensor:
        weights = torch.zeros_like(self.mean_weight.detach())
        weights[choice] = 1.0
        return weights

    def _record_choices(self, mean_choice: int, var_choice: int) -> None:
        self._mean_choice_value = mean_choice
        self._var_choice_value = var_choice
        with torch.no_grad():
            self.mean_choice.fill_(mean_choice)
            self.var_choice.fill_(var_choice)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._radius_value = float(self.radius.item())
        self._mean_choice_value = int(self.mean_choice.item())
        self._var_choice_value = int(self.var_choice.item())

    def _frozen_forward(self, x: Tensor) -> Tensor:
        """Normalize with the selected statistics only."""
        self._check_input(x)
        mean_choice = self._mean_choice_value
        var_choice = self._var_choice_value
        values = x.to(statistics_dtype(x))
        # IN moments are IN's statistics and the basis SN derives the LN and BN ones from
        mean_in, var_in = instance_moments(values)
        mean = mean_in
        var = var_in
        if mean_choice != self.IN or var_choice != self.IN:
            second_moment = var_in + mean_in**2
            if mean_choice == self.BN or var_choice == self.BN:
                mean_bn, var_bn = self._bn_moments(mean_in, second_moment)
                if mean_choice == self.BN:
                    mean = mean_bn
                if var_choice == self.BN:
                    var = var_bn
            if mean_choice == self.LN or var_choice == self.LN:
                mean_ln = mean_in.mean(1, keepdim=True)
                if mean_choice == self.LN:
                    mean = mean_ln
                if var_choice == self.LN:
                    var = (second_moment.mean(1, keepdim=True) - mean_ln**2).clamp(min=0.0)
        return self._normalize(values, mean, var, x)


def _is_one_hot(weights: Tensor) -> bool:
    return int((weights > 0.0).sum()) == 1


def update_sparse_radius(model: nn.Module, progress: float) -> float:
    """Set the radius of every SparseSwitchNorm2d in ``model`` for a training ``progress`` in [0, 1].

    The radius grows linearly from 0 at the start to 1 at the end of training (the schedule of
    the SSN paper); returns the radius set.
    """
    if not (math.isfinite(progress) and 0.0 <= progress <= 1.0):
        raise ValueError(f"training progress must lie in [0, 1], got {progress}")
    radius = float(progress)
    for module in model.modules():
        if isinstance(module, SparseSwitchNorm2d):
            module.set_radius(radius)
    return radius
