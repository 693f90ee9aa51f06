"""What CPU a measurement ran on, named in every speed table: the model, its vector extensions,
logical CPUs and physical cores, the instruction set torch's CPU kernels dispatch to, oneDNN's
version and torch's thread count.

Two machines with the same "2 cores" can differ in what matters to a small detector: two
hyperthreads of one core or two cores, AVX2 or AVX-512 kernels, a vCPU shared with neighbours.
A table without these cannot be compared with another machine's.

The same differences change a run's numbers: oneDNN's convolutions pick their kernels (and the
order they sum in) by the CPU's vector units and caches, torch's kernels dispatch by vector
unit, MKL takes vendor-specific paths, and a reduction split over another number of threads sums
in another order. A few training steps of the same model on this machine already end in
different weights with 1 or 2 threads, or with oneDNN limited to AVX2; over a search, such
differences pick another genotype. :func:`make_cpu_reproducible` removes each of them.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

from fsd.errors import ConfigError

#: the vector-extension flags worth naming (as /proc/cpuinfo spells them)
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; the platform's processor string and no flags elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model or platform.processor() or "unknown CPU", flags


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """The physical cores under :func:`usable_cpus` (hyperthreads of one core count once)."""
    cores = set()
    for cpu in usable_cpus():
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(), topology.joinpath("core_id").read_text().strip()))
        except OSError:
            return len(usable_cpus())
    return len(cores) or len(usable_cpus())


def cpu_description(threads: int | None = None) -> str:
    """One line naming the CPU, its vector extensions, CPUs and cores, torch's kernel dispatch,
    oneDNN and the thread count (``threads``, default torch's current one)."""
    model, flags = _cpuinfo()
    vectors = ",".join(flag for flag in VECTOR_FLAGS if flag in flags) or "flags unknown"
    logical, cores = len(usable_cpus()), physical_cores()
    dispatch = torch.backends.cpu.get_cpu_capability()
    onednn = re.search(r"MKL-DNN v([0-9.]+)", torch.__config__.parallel_info())
    onednn_text = f", oneDNN {onednn.group(1)}" if onednn else ""
    return (
        f"{model} ({vectors}); {logical} logical CPU(s) on {cores} core(s); torch kernels {dispatch}{onednn_text}; "
        f"{threads if threads is not None else torch.get_num_threads()} torch thread(s)"
    )


#: machine-independent kernels: torch's AVX2 kernels (every x86-64 CPU since 2013 has AVX2) and
#: MKL's conditional numerical reproducibility on its AVX2 path (the same on Intel and AMD)
REPRODUCIBLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"}


def make_cpu_reproducible(threads: int) -> str:
    """Make this process's CPU results independent of the machine (any x86-64 CPU with AVX2):
    ``threads`` torch threads, torch's AVX2 kernels, MKL's reproducible AVX2 path, and torch's
    own convolutions instead of oneDNN's. Must run before the first tensor operation (torch
    fixes its kernel dispatch then); returns the CPU description. ConfigError when the kernels
    were already dispatched to another vector unit, so a run never believes it is reproducible
    when it is not."""
    os.environ.update(REPRODUCIBLE_KERNELS)
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(threads)
    _, flags = _cpuinfo()
    dispatch = torch.backends.cpu.get_cpu_capability()
    if "avx2" in flags and dispatch != "AVX2":
        raise ConfigError(
            f"reproducibility.cpu_threads: torch already dispatches to {dispatch} kernels in this process; "
            f"set ATEN_CPU_CAPABILITY=avx2 before starting it, or leave reproducibility off"
        )
    return cpu_description(threads)
