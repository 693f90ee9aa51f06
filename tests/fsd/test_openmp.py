"""The entry points make OpenMP threads wait asleep (docs/benchmarks.md, "Speed on another
machine"), set before torch is first imported, and leave a policy the user chose alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("entry", ["fsd.cli", "service.__main__"])
@pytest.mark.parametrize("chosen", [None, "ACTIVE"])
def test_entry_points_prefer_passive_waiting_before_torch_loads(entry, chosen):
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if chosen is not None:
        env["OMP_WAIT_POLICY"] = chosen
    code = f"import os, {entry}, torch; print(os.environ['OMP_WAIT_POLICY'])"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (chosen or "PASSIVE")
    finished = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert finished.index("fsd.openmp") < finished.index("torch"), "the policy is set before torch is imported"
