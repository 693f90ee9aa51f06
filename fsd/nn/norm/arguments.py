"""Checks of the constructor arguments every normalization layer shares."""

from __future__ import annotations

import math


def check_layer_arguments(num_features: int, eps: float, momentum: float | None = None, momentum_meaning: str = "") -> None:
    """ValueError unless ``num_features >= 1``, ``eps > 0`` and (when given) ``momentum`` in [0, 1]."""
    if num_features < 1:
        raise ValueError(f"num_features must be at least 1, got {num_features}")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive number, got {eps}")
    if momentum is not None and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1] ({momentum_meaning}), got {momentum}")
