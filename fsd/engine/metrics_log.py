"""Metrics as JSON lines (one record per training iteration or validation).

On resume the log is cut back to the checkpoint's iteration, so a resumed run's log is the log an
uninterrupted run would have written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def read_log(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill: everything before it is intact
    return records


class MetricsLog:
    """Append-only JSONL writer; ``resume_iteration`` keeps records up to that iteration."""

    def __init__(self, path: str | Path, resume_iteration: int | None = None, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_iteration is not None:
            kept = [r for r in read_log(self.path) if int(r.get("iteration", 0)) <= resume_iteration]
        with self.path.open("w") as handle:
            for record in kept:
                handle.write(json.dumps(record) + "\n")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(_clean(record)) + "\n")
