"""The reproducible CPU mode: a few training steps end in bitwise the same weights on machines that
differ in core count and vector units (simulated in fresh processes: torch threads, torch's
kernel dispatch and oneDNN's instruction set), where without the mode they do not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsd.config import parse_config
from fsd.errors import ConfigError

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "models"

TRAIN_STEPS = """
import hashlib, os, sys
sys.path.insert(0, {fixtures!r})
import torch
from model_fixtures import tiny_batch, tiny_config, tiny_genotype
from fsd.cpu import make_cpu_reproducible
from fsd.models import build_detector

if os.environ["MODE"] == "reproducible":
    make_cpu_reproducible(2)
else:
    torch.set_num_threads(int(os.environ["MACHINE_THREADS"]))
torch.manual_seed(0)
model = build_detector(tiny_genotype(), tiny_config(task="binary"))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
model.train()
for step in range(8):
    images, targets = tiny_batch(step)
    for target in targets:
        target["labels"] = torch.ones_like(target["labels"])
    losses, _ = model(images, targets)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), torch.backends.mkldnn.enabled, weights)
"""

#: two machines: this one with 2 threads and its own kernels, and a 1-core AVX2-only machine
#: (OMP_NUM_THREADS=1 as a 1-core machine's torch would default to)
MACHINES = {
    "this machine": {"MACHINE_THREADS": "2"},
    "1-core AVX2 machine": {"MACHINE_THREADS": "1", "OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}


def weights_after_training(machine: dict[str, str], mode: str) -> str:
    """The weights' hash after the steps, in a fresh process on the simulated ``machine``; in
    the reproducible mode also checks what the mode set (2 threads, AVX2 kernels, no oneDNN)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OMP_NUM_THREADS")}
    env.update(machine, MODE=mode)
    result = subprocess.run(
        [sys.executable, "-c", TRAIN_STEPS.format(fixtures=str(FIXTURES))], env=env, capture_output=True, text=True, timeout=600, check=True
    )
    capability, threads, onednn, weights = result.stdout.strip().splitlines()[-1].split()
    if mode == "reproducible":
        assert (threads, onednn) == ("2", "False") and capability in ("AVX2", "DEFAULT"), (capability, threads, onednn)
    return weights


def test_the_same_weights_on_different_machines_only_in_the_reproducible_mode():
    default = {name: weights_after_training(machine, "default") for name, machine in MACHINES.items()}
    assert len(set(default.values())) == 2, "without the mode, core count and vector units change the weights"
    reproducible = {name: weights_after_training(machine, "reproducible") for name, machine in MACHINES.items()}
    assert len(set(reproducible.values())) == 1, reproducible


def test_the_mode_is_a_config_setting_with_a_checked_value():
    assert parse_config({}).reproducibility.cpu_threads is None
    assert parse_config({"reproducibility": {"cpu_threads": 2}}).reproducibility.cpu_threads == 2
    with pytest.raises(ConfigError, match="reproducibility.cpu_threads"):
        parse_config({"reproducibility": {"cpu_threads": 0}})


def test_the_mode_refuses_once_kernels_were_dispatched_to_another_vector_unit():
    code = "import torch\ntorch.ones(4).sum()\ntorch.backends.cpu.get_cpu_capability()\nfrom fsd.cpu import make_cpu_reproducible\nmake_cpu_reproducible(2)\n"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if "avx512f" not in flags:
        pytest.skip("this CPU dispatches to AVX2 anyway; the refusal needs a wider vector unit")
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "already dispatches to AVX512 kernels" in result.stderr
