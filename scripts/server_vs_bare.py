#!/usr/bin/env python3
"""The server against the bare model, in one run on one machine: slices per second of the
exported model called directly, then of the server under the load test, and their ratio.

    python scripts/server_vs_bare.py --model runs/demo/export --files data/demo/dicom/000001_01_01 \
        --clients 8 --duration 30 --server-env FSD_MODEL_WORKERS=2 --server-env FSD_TORCH_THREADS=1

1. The bare model: the TorchScript export called in this process on the very model inputs the
   server makes of ``--files`` (read and preprocessed as the server does), at each of
   ``--batches``, with torch's own thread count (as ``fsd bench speed`` runs it) or
   ``--bare-threads``; its best images/s is the reference. It is measured again after the server
   has stopped, and the mean of both is used, so a drift of the machine shows.
2. The server: ``python -m service`` on a free loopback port with the given environment
   (``--server-env NAME=VALUE``, repeatable), driven by ``scripts/loadtest.py`` with
   ``--clients`` clients of ``--slices-per-request`` slices for ``--duration`` seconds; the load
   generator runs on the same machine, as a client in the same rack would not.

The report names the CPU (model, vector extensions, cores, kernel dispatch, threads) and is
printed as JSON (``--json FILE`` writes it too); the exit status is 1 when the load test lost or
failed a request. The API key is generated.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]


def model_inputs(model_dir: Path, files: list[str]) -> list[torch.Tensor]:
    """The model inputs the server makes of ``files`` (every slice, with its context)."""
    from fsd.artifacts import load_exported
    from fsd.inference import slice_inputs_from_ct
    from fsd.io.dicom import read_ct_file

    paths = [path for item in files for path in (sorted(Path(item).rglob("*.dcm")) if Path(item).is_dir() else [Path(item)])]
    slices = [ct_slice for path in paths for ct_slice in read_ct_file(path)]
    return [item.image for item in slice_inputs_from_ct(slices, load_exported(model_dir, "cpu").preprocess)]


def bare_images_per_s(model_dir: Path, inputs: list[torch.Tensor], batches: list[int], seconds: float) -> dict[int, float]:
    """Images/s of the exported TorchScript model per batch size, cycling through ``inputs``
    (median of 1-second windows)."""
    from fsd.artifacts import load_exported

    loaded = load_exported(model_dir, "cpu")
    rates: dict[int, float] = {}
    with torch.no_grad():
        for batch in batches:
            images = (inputs * batch)[:batch]
            for _ in range(3):
                loaded.module(images)
            windows: list[float] = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                done, started = 0, time.perf_counter()
                while time.perf_counter() - started < 1.0:
                    loaded.module(images)
                    done += batch
                windows.append(done / (time.perf_counter() - started))
            rates[batch] = round(statistics.median(windows), 2)
    return rates


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_server_load(args: argparse.Namespace, key: str) -> dict:
    port = free_port()
    env = {**os.environ, "FSD_API_KEY": key, **dict(item.split("=", 1) for item in args.server_env)}
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "server.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [sys.executable, "-m", "service", "--model", str(args.model), "--port", str(port), "--device", "cpu"],
                env=env, stdout=output, stderr=output,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"error: the server exited:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("error: the server did not become ready")
                time.sleep(0.5)
            report_file = Path(scratch) / "load.json"
            load = [
                sys.executable, str(ROOT / "scripts" / "loadtest.py"), "--url", url, "--clients", str(args.clients),
                "--duration", str(args.duration), "--slices-per-request", str(args.slices_per_request),
                "--json", str(report_file), "--files", *args.files,
            ]
            subprocess.run(load, env={**os.environ, "FSD_API_KEY": key}, stdout=subprocess.DEVNULL, check=False)
            report = json.loads(report_file.read_text())
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            report["mean_batch"] = _mean_batch(metrics)
            report["server_log_cpu"] = next((line for line in log.read_text().splitlines() if "model worker" in line), None)
            return report
        finally:
            server.terminate()
            server.wait(timeout=120)


def _mean_batch(metrics: str) -> float | None:
    values = {}
    for line in metrics.splitlines():
        for name in ("fsd_batch_size_slices_sum", "fsd_batch_size_slices_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    count = values.get("fsd_batch_size_slices_count")
    return round(values["fsd_batch_size_slices_sum"] / count, 2) if count else None


def main(argv: list[str] | None = None) -> int:
    from fsd.cpu import cpu_description

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Exported model directory.")
    parser.add_argument("--files", nargs="+", required=True, help="DICOM files or folders for the load test.")
    parser.add_argument("--batches", default="1,2,4,8", help="Batch sizes of the bare model.")
    parser.add_argument("--bare-seconds", type=float, default=8.0, help="Seconds per bare batch size.")
    parser.add_argument("--bare-threads", type=int, help="torch threads of the bare model (default: torch's own).")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--slices-per-request", type=int, default=1)
    parser.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the server (repeatable).")
    parser.add_argument("--json", type=Path, help="Also write the report here.")
    args = parser.parse_args(argv)
    batches = [int(value) for value in args.batches.split(",")]
    if args.bare_threads is not None:
        torch.set_num_threads(args.bare_threads)
    inputs = model_inputs(args.model, args.files)
    before = bare_images_per_s(args.model, inputs, batches, args.bare_seconds)
    server = run_server_load(args, secrets.token_hex(16))
    after = bare_images_per_s(args.model, inputs, batches, args.bare_seconds)
    bare = {batch: round((before[batch] + after[batch]) / 2, 2) for batch in batches}
    best = max(bare, key=lambda batch: bare[batch])
    served = server["throughput_slices_per_s"]
    report = {
        "cpu": cpu_description(),
        "input_sizes": sorted({tuple(image.shape) for image in inputs}),
        "bare_images_per_s": {"before": before, "after": after, "mean": bare, "best_batch": best},
        "server_env": args.server_env,
        "server": server,
        "server_slices_per_s": served,
        "ratio_to_best_bare": round(served / bare[best], 3),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if server["requests_failed"] or server["requests_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
