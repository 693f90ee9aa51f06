"""Suite-wide setup: when pytest-xdist runs the suite in several processes (``make test`` uses
two), each process gets its share of the machine's cores for torch's intra-op threads, and so do
the ``fsd`` and script subprocesses it starts (they inherit ``OMP_NUM_THREADS``). Without this,
every process would spin one thread per core and the processes would slow each other down.

A test that sets its own thread count (the reproducibility and batcher tests) still does.
"""

from __future__ import annotations

import os
import sys


def _threads_per_worker() -> int | None:
    """Cores per xdist worker, or None when the suite runs in one process."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


_THREADS = _threads_per_worker()
if _THREADS is not None:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
    os.environ["MKL_NUM_THREADS"] = str(_THREADS)
    if "torch" in sys.modules:  # a plugin imported it before the variables could take effect
        sys.modules["torch"].set_num_threads(_THREADS)
