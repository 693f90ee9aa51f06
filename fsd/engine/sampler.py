"""A deterministic, resumable, rank-aware sampler.

The order of epoch ``e`` is a permutation drawn from ``seed + e``; rank r of W takes every W-th
index (padding by wrapping so ranks get equal counts), and ``start_batch`` skips the batches an
interrupted run already consumed, so a resumed run sees exactly the data an uninterrupted one
would. With ``repeats`` (repeat-factor sampling) index i appears ``repeats[i]`` times in every
epoch's permutation, so an epoch has ``sum(repeats)`` samples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        repeats: Sequence[int] | None = None,
    ) -> None:
        if length <= 0:
            raise ValueError("cannot sample from an empty data set")
        if repeats is not None and (len(repeats) != length or min(repeats) < 1):
            raise ValueError(f"repeats must give every one of the {length} items at least once")
        #: the indices one epoch permutes (each item ``repeats[i]`` times)
        self.pool = list(range(length)) if repeats is None else [i for i, r in enumerate(repeats) for _ in range(int(r))]
        self.length = len(self.pool)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    @property
    def per_rank(self) -> int:
        return -(-self.length // self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.per_rank // self.batch_size)

    def epoch_indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = [self.pool[i] for i in torch.randperm(self.length, generator=generator).tolist()]
        else:
            order = list(self.pool)
        total = self.per_rank * self.world_size
        padded = (order * (total // self.length + 1))[:total]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        return max(self.per_rank - self.start_batch * self.batch_size, 0)
