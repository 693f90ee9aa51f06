"""How the project's processes let OpenMP threads wait: asleep (passive), not spinning.

torch runs each CPU operation as an OpenMP parallel region and, by default, the threads that
finish first spin until the last one arrives. A small detector runs hundreds of short regions
per image, so when a core is not wholly its own (another process, the server's HTTP and decode
threads, a hypervisor's steal, a hyperthread sibling) each region waits for a thread that is
not running while the spinning one takes the core it needs: on the 2-core development VM with a
training run beside it, FSD fell from 24.2 to 4.3 images/s at batch 4 with spinning threads, and
the R50-FPN baseline, whose few long convolutions rarely wait, only from 2.7 to 1.7
(docs/benchmarks.md, "Speed on another machine"). :func:`prefer_passive_waiting` makes the
waiting threads sleep instead; it must run before torch is first imported (OpenMP reads the
setting once), so the entry points call it first, and an ``OMP_WAIT_POLICY`` the user set wins.
"""

from __future__ import annotations

import os


def prefer_passive_waiting() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` for this process unless it is set already (before torch loads)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
