#!/usr/bin/env python3
"""How the exported model's CPU speed depends on how its threads are used, in one run.

    python scripts/model_threads.py --model runs/demo/export --files data/demo/dicom/000001_01_01 \
        --batch 4 --seconds 10 --rounds 2 --json runs/model_threads.json

The TorchScript export is called on the very model inputs the server makes of ``--files`` (as
``scripts/server_vs_bare.py`` makes them), ``--batch`` slices per call, in four ways, each in a
fresh process (OpenMP reads its settings once, when torch loads):

1. ``threads``: one call at a time with torch's own thread count (what ``fsd bench speed`` and
   the bare model of ``server_vs_bare.py`` run);
2. ``threads-passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep
   instead of spinning);
3. ``one-thread``: one call at a time, one thread;
4. ``workers``: one call per physical core side by side, one thread each (the server's default
   on a CPU: ``model_workers`` one per physical core, ``torch_threads`` 1).

Rounds interleave the four, so a drift of the machine shows in every row rather than in one.
The report names the CPU (:func:`fsd.cpu.cpu_description`) and gives images/s per round and
their median; it is printed as JSON (``--json FILE`` writes it too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parent
#: name -> (extra environment, workers (0: one per physical core), threads (None: torch's own))
WAYS: dict[str, tuple[dict[str, str], int, int | None]] = {
    "threads": ({}, 1, None),
    "threads-passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 1, None),
    "one-thread": ({}, 1, 1),
    "workers": ({}, 0, 1),
}


def measure(model: Path, files: list[str], batch: int, seconds: float, workers: int, threads: int | None) -> dict:
    """Images/s of ``workers`` threads each calling the model on ``batch`` inputs for ``seconds``."""
    sys.path.insert(0, str(SCRIPTS))
    from server_vs_bare import model_inputs

    from fsd.artifacts import load_exported
    from fsd.cpu import cpu_description, physical_cores

    inputs = model_inputs(model, files)
    images = (inputs * batch)[:batch]
    workers = workers or physical_cores()
    # one module per worker, as the server runs them: one scripted module called from two threads
    # at once can crash the process (its graph executor is shared)
    modules = [load_exported(model, "cpu").module for _ in range(workers)]
    done = [0] * workers
    ready = threading.Barrier(workers + 1)
    stop = [0.0]

    def work(index: int) -> None:
        module = modules[index]
        if threads is not None:
            torch.set_num_threads(threads)
        with torch.no_grad():
            for _ in range(2):
                module(images)
            ready.wait()
            while time.monotonic() < stop[0]:
                module(images)
                done[index] += batch

    pool = [threading.Thread(target=work, args=(index,)) for index in range(workers)]
    for thread in pool:
        thread.start()
    stop[0] = time.monotonic() + 3600  # set for real once every worker is warm
    ready.wait()
    started = time.monotonic()
    stop[0] = started + seconds
    for thread in pool:
        thread.join()
    return {
        "images_per_s": round(sum(done) / (time.monotonic() - started), 2),
        "workers": workers,
        "cpu": cpu_description(threads),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Exported model directory.")
    parser.add_argument("--files", nargs="+", required=True, help="DICOM files or folders (the model's inputs).")
    parser.add_argument("--batch", type=int, default=4, help="Slices per model call.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Seconds per way and round.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ways", default=",".join(WAYS), help=f"Comma-separated subset of {', '.join(WAYS)}.")
    parser.add_argument("--json", type=Path, help="Also write the report here.")
    parser.add_argument("--child", choices=list(WAYS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _, workers, threads = WAYS[args.child]
        print(json.dumps(measure(args.model, args.files, args.batch, args.seconds, workers, threads)))
        return 0
    ways = [way.strip() for way in args.ways.split(",") if way.strip()]
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        parser.error(f"unknown ways: {', '.join(unknown)}")
    rounds: dict[str, list[float]] = {way: [] for way in ways}
    cpu: dict[str, str] = {}
    for _ in range(args.rounds):
        for way in ways:
            env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
            env.update(WAYS[way][0])
            command = [
                sys.executable, str(Path(__file__).resolve()), "--child", way, "--model", str(args.model),
                "--batch", str(args.batch), "--seconds", str(args.seconds), "--files", *args.files,
            ]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"error: {way} failed:\n{done.stderr[-3000:]}")
            found = json.loads(done.stdout.strip().splitlines()[-1])
            rounds[way].append(found["images_per_s"])
            cpu[way] = f"{found['workers']} call(s) side by side; {found['cpu']}"
    report = {
        "batch": args.batch,
        "seconds": args.seconds,
        "ways": {
            way: {"images_per_s": rates, "median": round(statistics.median(rates), 2), "cpu": cpu[way]}
            for way, rates in rounds.items()
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
