"""TorchScript calls without torch >= 2.14's deprecation notice on every use.

The product ships TorchScript because that is what users deploy today (REFERENCE.md section 7);
the notice is known and documented, so these wrappers silence that one warning and nothing else.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*deprecated.*", category=FutureWarning)
        yield


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with _quiet():
        return torch.jit.script(module)


def save(module: torch.jit.ScriptModule, path: str | Path) -> None:
    with _quiet():
        torch.jit.save(module, str(path))


def load(path: str | Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    with _quiet():
        return torch.jit.load(str(path), map_location=torch.device(device))
