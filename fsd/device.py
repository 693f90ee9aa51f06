"""Choosing the torch device a command or the server runs on."""

from __future__ import annotations

import torch

from fsd.errors import ConfigError


def resolve_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``: this process's GPU when CUDA is available, else the CPU; otherwise exactly the
    device asked for ("cpu", "cuda", "cuda:N"). Asking for CUDA without a GPU is a ConfigError."""
    if preference == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError:
        raise ConfigError(f"unknown device {preference!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {preference!r} was requested but CUDA is not available on this machine")
    return device
