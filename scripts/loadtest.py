#!/usr/bin/env python3
"""Load test of a running FSD server: many concurrent clients POST DICOM slices for a fixed time.

    python scripts/loadtest.py --url http://127.0.0.1:8000 --clients 16 --duration 60 \
        --slices-per-request 3 --files data/synth/dicom/000001_01_01

Each client sends one request at a time (``--slices-per-request`` consecutive slices of the
series, cycling through it) to /v1/detect (multipart) or /v1/studies (STOW-RS), until the time is
up; requests in flight at the deadline are awaited, never dropped. A request counts as OK only
with status 200 and one result per slice sent. The report gives throughput (requests and slices
per second), latency percentiles, the median of the server's own per-request timing (decode,
preprocess, queue wait, model, response) and every failure by kind; the exit status is 1 when any
request failed or was lost (the bar is zero). The API key is read from $FSD_API_KEY or
``--api-key-file``. Without ``--files`` a small synthetic series is generated first (needs the
project installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class Tally:
    """What the clients observed."""

    latencies_s: list[float] = field(default_factory=list)
    #: the server's own per-request timing_ms (decode, preprocess, queue_wait, model, response, total)
    server_timings: list[dict[str, float]] = field(default_factory=list)
    slices_ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    started: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies_s)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def dicom_files(arguments: list[str]) -> list[Path]:
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        files.extend(sorted(p for p in path.rglob("*.dcm")) if path.is_dir() else [path])
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise SystemExit(f"error: no DICOM files found ({', '.join(missing) or 'empty selection'})")
    return files


def synthetic_series(size: int) -> list[Path]:
    from fsd.data.synth import generate_dataset

    out = Path(tempfile.mkdtemp(prefix="fsd-loadtest-"))
    generate_dataset(out, patients=1, size=size, seed=0, dicom=True, progress=False)
    series = sorted((out / "dicom").iterdir())[0]
    return sorted(series.glob("*.dcm"))


def form_request(uploads: list[tuple[str, bytes]]) -> dict:
    return {"files": [("files", (name, data, "application/dicom")) for name, data in uploads]}


def stow_request(uploads: list[tuple[str, bytes]]) -> dict:
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n" for _, data in uploads]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    # Accept: application/json asks /v1/studies for the detection JSON (its default is the PS3.18 store response)
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return {"content": body, "headers": {"Content-Type": content_type, "Accept": "application/json"}}


async def client_loop(
    client: httpx.AsyncClient, route: str, windows: list[list[tuple[str, bytes]]], offset: int, deadline: float, tally: Tally
) -> None:
    index = offset
    while time.monotonic() < deadline:
        uploads = windows[index % len(windows)]
        index += 1
        request = form_request(uploads) if route == "detect" else stow_request(uploads)
        tally.started += 1
        started = time.perf_counter()
        try:
            response = await client.post(f"/v1/{route}", **request)
        except httpx.TimeoutException:
            tally.failures["timeout"] += 1
            continue
        except httpx.TransportError as error:
            tally.failures[f"transport:{type(error).__name__}"] += 1
            continue
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "unparsable"
            tally.failures[f"{response.status_code}:{code}"] += 1
            continue
        try:
            answer = response.json()
            results = answer["results"]
        except (ValueError, KeyError, TypeError):
            tally.failures["unparsable_result"] += 1
            continue
        if len(results) != len(uploads):
            tally.failures["wrong_result_count"] += 1
            continue
        tally.latencies_s.append(elapsed)
        tally.slices_ok += len(uploads)
        if isinstance(answer.get("timing_ms"), dict):
            tally.server_timings.append(answer["timing_ms"])


async def run(args: argparse.Namespace, uploads: list[tuple[str, bytes]]) -> dict:
    per_request = min(args.slices_per_request, len(uploads))
    windows = [uploads[i : i + per_request] for i in range(0, len(uploads) - per_request + 1)]
    key = os.environ.get("FSD_API_KEY") or (Path(args.api_key_file).read_text().strip() if args.api_key_file else None)
    headers = {"X-API-Key": key} if key else {}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    tally = Tally()
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout, limits=limits) as client:
        ready = await client.get("/health/ready")
        if ready.status_code != 200:
            raise SystemExit(f"error: {args.url} is not ready ({ready.status_code})")
        card = await client.get("/v1/model")
        if card.status_code != 200:
            raise SystemExit(f"error: GET /v1/model answered {card.status_code}; check the API key")
        model = card.json()
        started = time.monotonic()
        deadline = started + args.duration
        await asyncio.gather(
            *(client_loop(client, args.route, windows, n * 7, deadline, tally) for n in range(args.clients))
        )
        wall = time.monotonic() - started
    failed = sum(tally.failures.values())
    report = {
        "url": args.url,
        "route": f"/v1/{args.route}",
        "model": {"name": model.get("name"), "version": model.get("version")},
        "clients": args.clients,
        "slices_per_request": per_request,
        "duration_s": round(wall, 2),
        "requests_sent": tally.started,
        "requests_ok": tally.ok,
        "requests_failed": failed,
        "requests_lost": tally.started - tally.ok - failed,
        "failures": dict(tally.failures),
        "throughput_rps": round(tally.ok / wall, 3),
        "throughput_slices_per_s": round(tally.slices_ok / wall, 2),
    }
    if tally.server_timings:
        steps = sorted({step for timing in tally.server_timings for step in timing})
        report["server_timing_ms_median"] = {
            step: round(percentile([t[step] for t in tally.server_timings if step in t], 0.5), 1) for step in steps
        }
    if tally.latencies_s:
        report["latency_ms"] = {
            name: round(1000 * percentile(tally.latencies_s, fraction), 1)
            for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="Base URL of the server.")
    parser.add_argument("--files", nargs="*", default=[], help="DICOM files or folders (default: synthetic series).")
    parser.add_argument("--synth-size", type=int, default=128, help="Slice size of the generated series.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent clients.")
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds during which requests are started.")
    parser.add_argument("--slices-per-request", type=int, default=1)
    parser.add_argument("--route", choices=["detect", "studies"], default="detect")
    parser.add_argument("--timeout", type=float, default=300.0, help="Per-request client timeout (s).")
    parser.add_argument("--api-key-file", help="File holding the API key (else $FSD_API_KEY).")
    parser.add_argument("--json", help="Also write the report to this file.")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.slices_per_request < 1:
        parser.error("--clients, --duration and --slices-per-request must be positive")
    files = dicom_files(args.files) if args.files else synthetic_series(args.synth_size)
    uploads = [(path.name, path.read_bytes()) for path in files]
    report = asyncio.run(run(args, uploads))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if report["requests_failed"] == 0 and report["requests_lost"] == 0 and report["requests_ok"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
