"""torch.distributed set-up for runs under ``torchrun`` (gloo on CPU, NCCL on GPU).

Without torchrun's environment variables everything runs in one process and the helpers here
are no-ops, so the same code path serves one CPU, one GPU and many processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fsd.device import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str = "auto") -> DistributedContext:
    """Initialise the process group when launched by torchrun; otherwise a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def barrier(context: DistributedContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.barrier()


def gather_object(context: DistributedContext, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (a one-element list in a single process)."""
    if not (context.distributed and dist.is_initialized()):
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def parameter_checksum(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, in state-dict order: equal only for equal weights."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def wrap_data_parallel(
    model: torch.nn.Module, context: DistributedContext, norm: str, parameters_may_go_unused: bool = False
) -> torch.nn.Module:
    """Under torchrun: synchronised SN statistics and DistributedDataParallel; otherwise ``model``.

    ``parameters_may_go_unused``: some parameters get no gradient in a step (a sampled search path).
    """
    if not context.distributed:
        return model
    from fsd.nn import convert_sync_switchnorm

    return torch.nn.parallel.DistributedDataParallel(
        convert_sync_switchnorm(model),
        device_ids=[context.device.index] if context.device.type == "cuda" else None,
        # frozen sparse-switchable layers stop giving their mixing logits gradients
        find_unused_parameters=norm == "ssn" or parameters_may_go_unused,
    )


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
