#!/usr/bin/env python3
"""Load and abuse test of a running FSD DICOM node: concurrent C-STORE senders, then a check that
every study got its SR.

    FSD_API_KEY=$KEY python scripts/dimse_loadtest.py --host 127.0.0.1 --port 11112 \
        --url http://127.0.0.1:8000 --senders 8 --slices 60 --abuse --oversized 120

Each of ``--senders`` threads sends its own study of ``--slices`` CT slices (a synthetic series,
re-identified with fresh study/series/instance UIDs per sender) over one association, as a
modality or PACS does. Afterwards every study's SR is looked for with WADO-RS on ``--url``
(``GET /v1/studies/{uid}``) and must reference all of the study's instances. With ``--abuse``,
while the load runs, other threads send malformed PDUs, associations from an unknown calling AE
title and, with ``--oversized N``, a study of N instances (expected to be refused in part with
C001, a status senders do not retry, by a node whose ``max_study_instances`` is below N, and
the part it acknowledged analysed); none of it may disturb the load. The report counts
instances stored, studies lost (no SR in time), the time from each association's end until its
SR was found (each sender polls for its own), and the abuse outcomes; the exit status is 1 when
anything was lost or an abuse was accepted.

``--size 512`` sends clinical-size slices (512 x 512, 16-bit: 0.5 MiB each); ``--slices 200``
and more make studies larger than what the node used to hold (about 170 such slices).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pydicom
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE

MALFORMED_PDUS: dict[str, bytes] = {
    "zeros": b"\x00" * 32,
    "http": b"GET / HTTP/1.1\r\nHost: fsd\r\n\r\n",
    "huge-length": b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 64,
    "nonsense-rq": b"\x01\x00\x00\x00\x00\x20" + b"\xff" * 32,
    "pdata-first": b"\x04\x00\x00\x00\x00\x10" + b"\x00" * 16,
}


@dataclass
class SenderResult:
    study_instance_uid: str
    sop_instance_uids: list[str]
    statuses: Counter[str] = field(default_factory=Counter)
    #: the instances answered 0000 (those the node must analyse)
    acknowledged: list[str] = field(default_factory=list)
    sent_s: float = 0.0
    ended_at: float = 0.0
    error: str | None = None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def source_slices(slices: int, size: int, files: list[str]) -> list[bytes]:
    """``slices`` consecutive slices of a given or generated synthetic series (repeated if short)."""
    if files:
        paths = sorted(Path(p) for f in files for p in (Path(f).rglob("*.dcm") if Path(f).is_dir() else [Path(f)]))
    else:
        from fsd.data.synth import generate_dataset

        root = Path(tempfile.mkdtemp(prefix="fsd-dimse-load-"))
        generate_dataset(root, patients=2, size=size, seed=7, dicom=True, progress=False)
        series = max((path for path in (root / "dicom").iterdir()), key=lambda s: len(list(s.glob("*.dcm"))))
        paths = sorted(series.glob("*.dcm"))
    if not paths:
        raise SystemExit("error: no DICOM files")
    return [paths[index % len(paths)].read_bytes() for index in range(slices)]


def reidentified(slices: list[bytes]) -> list[pydicom.Dataset]:
    """The slices as a new study: fresh UIDs, positions kept distinct when the source repeats."""
    study, series = generate_uid(), generate_uid()
    datasets = []
    for index, data in enumerate(slices):
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = index + 1
        if "ImagePositionPatient" in ds:
            x, y, _ = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, -2.0 * index]
            ds.SliceLocation = -2.0 * index
        datasets.append(ds)
    return datasets


def sender_ae(calling: str) -> AE:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    return ae


def send(args: argparse.Namespace, datasets: list[pydicom.Dataset], calling: str) -> SenderResult:
    result = SenderResult(str(datasets[0].StudyInstanceUID), [str(ds.SOPInstanceUID) for ds in datasets])
    started = time.monotonic()
    association = sender_ae(calling).associate(args.host, args.port, ae_title=args.ae_title)
    if not association.is_established:
        result.error = "association refused"
        result.ended_at = time.monotonic()
        return result
    try:
        for dataset in datasets:
            status = association.send_c_store(dataset)
            result.statuses[f"{int(status.Status):04X}" if status else "none"] += 1
            if status and int(status.Status) == 0:
                result.acknowledged.append(str(dataset.SOPInstanceUID))
    finally:
        association.release()
    result.ended_at = time.monotonic()
    result.sent_s = result.ended_at - started
    return result


def malformed(args: argparse.Namespace, payload: bytes) -> str:
    """What the node did with a malformed PDU: it must abort the association or close the connection."""
    with socket.create_connection((args.host, args.port), timeout=30) as sock:
        sock.sendall(payload)
        sock.settimeout(30)
        try:
            answer = sock.recv(64)
        except (ConnectionResetError, TimeoutError):
            return "closed"
    if not answer:
        return "closed"
    return "aborted (A-ABORT)" if answer[0] == 0x07 else f"ACCEPTED (answered PDU type 0x{answer[0]:02X})"


def wait_for_sr(client: httpx.Client, result: SenderResult, deadline: float) -> float | None:
    """Seconds from the association's end until the study's SR referenced every acknowledged instance; None if never."""
    wanted = set(result.acknowledged)
    while time.monotonic() < deadline:
        response = client.get(f"/v1/studies/{result.study_instance_uid}/metadata")
        if response.status_code == 200:
            for item in response.json():
                sr = pydicom.Dataset.from_json(item)
                referenced = {
                    ref.ReferencedSOPInstanceUID
                    for entry in sr.get("CurrentRequestedProcedureEvidenceSequence", [])
                    for series in entry.ReferencedSeriesSequence
                    for ref in series.ReferencedSOPSequence
                }
                if referenced == wanted:
                    return time.monotonic() - result.ended_at
        time.sleep(0.2)
    return None


def run(args: argparse.Namespace) -> dict:
    slices = source_slices(args.slices, args.size, args.files)
    studies = [reidentified(slices) for _ in range(args.senders)]
    results: list[SenderResult | None] = [None] * args.senders
    abuse: Counter[str] = Counter()

    headers = {"X-API-Key": os.environ["FSD_API_KEY"]} if os.environ.get("FSD_API_KEY") else {}
    latencies: list[float | None] = [None] * args.senders

    def sender(index: int) -> None:
        try:
            result = send(args, studies[index], args.calling_ae)
        except Exception as error:  # reported, never raised: the report must be complete
            result = SenderResult(str(studies[index][0].StudyInstanceUID), [str(ds.SOPInstanceUID) for ds in studies[index]])
            result.error = type(error).__name__
            result.ended_at = time.monotonic()
        results[index] = result
        if result.error is None:
            with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
                latencies[index] = wait_for_sr(client, result, result.ended_at + args.timeout)

    def abuser() -> None:
        for name, payload in MALFORMED_PDUS.items():
            abuse[f"malformed {name}: {malformed(args, payload)}"] += 1
        stranger = send(args, reidentified(slices[:2]), "INTRUDER")
        abuse["unknown AE title: " + ("refused" if stranger.error else "ACCEPTED")] += 1
        if args.oversized:
            big = send(args, reidentified([slices[i % len(slices)] for i in range(args.oversized)]), args.calling_ae)
            refused = big.statuses.get("C001", 0)
            if not refused:
                outcome = "ACCEPTED"
            else:
                with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
                    analysed = wait_for_sr(client, big, big.ended_at + args.timeout) is not None
                outcome = (
                    f"refused ({refused} of {args.oversized} instances C001), "
                    + (f"the {len(big.acknowledged)} acknowledged analysed" if analysed else "acknowledged instances LOST")
                )
            abuse["oversized study: " + outcome] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=sender, args=(index,)) for index in range(args.senders)]
    if args.abuse:
        threads.append(threading.Thread(target=abuser))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = time.monotonic()
    sent_at = max(result.ended_at for result in results if result is not None)
    found = [latency for latency in latencies if latency is not None]
    lost = [r.study_instance_uid for r, latency in zip(results, latencies) if r is not None and latency is None]
    statuses: Counter[str] = Counter()
    for result in results:
        if result is not None:
            statuses.update(result.statuses)
    total = args.senders * args.slices
    return {
        "senders": args.senders,
        "slices_per_study": args.slices,
        "instances_sent": total,
        "statuses": dict(statuses),
        "sender_errors": [r.error for r in results if r is not None and r.error],
        "studies_with_sr": len(found),
        "studies_lost": len(lost),
        "send_s": round(sent_at - started, 2),
        "all_srs_s": round(finished - started, 2),
        "slices_per_s": round(total / max(finished - started, 1e-9), 1),
        "sr_latency_p50_s": round(percentile(found, 0.5), 2) if found else None,
        "sr_latency_max_s": round(max(found), 2) if found else None,
        "abuse": dict(abuse),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11112)
    parser.add_argument("--ae-title", default="FSD", help="the node's AE title (called AE)")
    parser.add_argument("--calling-ae", default="LOADTEST", help="a calling AE title the node allows")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's HTTP base URL (WADO-RS)")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--size", type=int, default=64, help="image size of generated slices")
    parser.add_argument("--files", nargs="*", default=[], help="DICOM files or folders to send instead")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for all SRs")
    parser.add_argument("--abuse", action="store_true", help="send malformed PDUs and unknown AE titles meanwhile")
    parser.add_argument("--oversized", type=int, default=0, help="with --abuse: also send a study of this many instances")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    abuse_failed = any("ACCEPTED" in key or "LOST" in key for key in report["abuse"])
    stored_all = report["statuses"].get("0000", 0) == report["instances_sent"]
    sys.exit(0 if report["studies_lost"] == 0 and stored_all and not abuse_failed else 1)


if __name__ == "__main__":
    main()
