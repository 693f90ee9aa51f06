"""What the selections that train candidates (:mod:`search.short_training`, :mod:`search.halving`)
share about a candidate's run directory: the key of the settings it trains with, and the
validation its log holds at an epoch."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from fsd.config import FsdConfig
from fsd.engine.metrics_log import read_log
from fsd.engine.trainer import PRIMARY_METRIC


def settings_key(config: FsdConfig) -> str:
    """A short hash of everything a candidate's training depends on beside its architecture."""
    dumped = config.model_dump(mode="json", exclude={"name", "bench"})
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


def validation_at(run: Path, epoch: int) -> float | None:
    """The FROC mean of the run's validation at ``epoch`` (0 when not finite; None when there is
    no such validation in its log)."""
    for record in reversed(read_log(run / "metrics.jsonl")):
        if record.get("type") == "val" and record.get("epoch") == epoch:
            value = record["metrics"].get(PRIMARY_METRIC)
            return float(value) if value is not None and math.isfinite(value) else 0.0
    return None
