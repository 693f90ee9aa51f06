"""Progress bars for long jobs: lively on a terminal, a line every few seconds in a log file."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """``tqdm`` that redraws at most every 15 s when stderr is not a terminal (CI logs, files)."""
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.2 if interactive else 15.0)
    kwargs.setdefault("dynamic_ncols", interactive)
    if not interactive:
        kwargs.setdefault("position", 0)  # nested bars would write cursor-up codes into the log
    return tqdm(iterable, **kwargs)
