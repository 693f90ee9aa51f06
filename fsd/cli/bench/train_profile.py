"""Where a training step spends its time: the data path, the forward pass stage by stage, the
backward pass and the optimizer step (``fsd bench train-step``).

It builds the config's training run exactly as `fsd train` does (:class:`~fsd.engine.trainer.Trainer`:
data set, augmentation, sampler, model with its type prior, optimizer) and runs ``iterations``
of the engine's own weight step (:meth:`fsd.engine.loop.TrainingLoop.weight_step`, after
``warmup`` steps), so the profile measures exactly what training runs: the learning-rate
schedule, the sparse-SN radius, autocast where the run uses it, gradient clipping and BIN gate
clipping, advancing the run position as the training loop does. Nothing of the step is copied
here; hooks only observe it:

- data: fetching the batch from the data loader (decoding, preprocessing from the cache,
  augmentation, collation);
- forward: the per-stage hooks of :mod:`fsd.cli.bench.profile` on the detector's parts (RoI
  sampling is part of the RoI heads; normalization statistics in training mode are their own
  stage); "forward: other" is the rest of the forward pass with the schedule update and the
  transfer to the device before it;
- backward: from the end of the forward pass to the optimizer step: the loss sum and its
  finiteness check, the backward pass and gradient clipping;
- optimizer step: the step itself and what follows it in the weight step (BIN gate clipping).
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from fsd.cli.bench.profile import STAGES, StageTimer, detector_parts, split_stages, stage_table, watch_stages
from fsd.config import FsdConfig
from fsd.engine.distributed import init_distributed
from fsd.engine.loop import TrainingLoop
from fsd.engine.trainer import Trainer
from fsd.models import architecture_record, default_genotype

TRAIN_STAGES = ("data", *(f"forward: {s}" for s in STAGES if s != "other"), "forward: other", "backward", "optimizer step")


class _StepClock:
    """Marks, by hooks on the loop's model and optimizer, when a weight step's forward pass ends
    and its optimizer step starts."""

    def __init__(self, loop: TrainingLoop) -> None:
        self.forward_end = 0.0
        self.step_start = 0.0
        self._handles = [
            loop.model.register_forward_hook(self._forward_done),
            loop.optimizer.register_step_pre_hook(self._stepping),
        ]

    def _forward_done(self, *_: Any) -> None:
        self.forward_end = time.perf_counter()

    def _stepping(self, *_: Any) -> None:
        self.step_start = time.perf_counter()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def profile_steps(loop: TrainingLoop, iterations: int = 20, warmup: int = 3) -> dict[str, float]:
    """Milliseconds per iteration in each of :data:`TRAIN_STAGES`, and ``"total"``, over
    ``iterations`` weight steps of ``loop`` after ``warmup`` (the run position advances as in
    training)."""
    loop.model.train()
    parts = detector_parts(loop.network)
    seconds = {name: 0.0 for name in TRAIN_STAGES}
    module_seconds: defaultdict[str, float] = defaultdict(float)
    clock = _StepClock(loop)
    done = 0
    epoch = loop.position.epoch
    try:
        while done < warmup + iterations:
            batches = iter(loop.batches.loader(epoch))
            epoch += 1
            while done < warmup + iterations:
                started = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                fetched = time.perf_counter()
                timer = StageTimer(loop.device)
                measuring = done >= warmup
                if measuring:
                    watch_stages(timer, parts)
                loop.before_step()
                record = loop.weight_step(batch)
                stepped = time.perf_counter()
                loop.after_step(record)
                timer.close()
                loop.position.iteration += 1
                if measuring:
                    seconds["data"] += fetched - started
                    seconds["forward: other"] += clock.forward_end - fetched
                    seconds["backward"] += clock.step_start - clock.forward_end
                    seconds["optimizer step"] += stepped - clock.step_start
                    for name, value in timer.seconds.items():
                        module_seconds[name] += value
                done += 1
    finally:
        clock.close()
    stages = {f"forward: {name}": value for name, value in split_stages(module_seconds).items()}
    seconds["forward: other"] = max(seconds["forward: other"] - sum(stages.values()), 0.0)
    seconds.update(stages)
    result = {name: round(1000.0 * seconds[name] / iterations, 2) for name in TRAIN_STAGES}
    result["total"] = round(sum(result.values()), 2)
    return result


def profile_training_step(
    config: FsdConfig, architecture: dict[str, Any] | None = None, iterations: int = 20, warmup: int = 3, device: str = "cpu"
) -> dict[str, float]:
    """:func:`profile_steps` of the training run ``config`` describes (``architecture``: the
    hand-written genotype by default)."""
    context = init_distributed(device)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, architecture or architecture_record(genotype=default_genotype()), Path(scratch), context, progress=False)
        return profile_steps(trainer, iterations, warmup)


def train_profile_markdown(rows: dict[str, dict[str, float]]) -> str:
    """The training step's table (ms per iteration); in training mode the RoI heads' remainder is
    proposal sampling and the losses."""
    return stage_table(rows, TRAIN_STAGES, digits=1, labels={"forward: final post-processing": "forward: RoI sampling + losses"})
