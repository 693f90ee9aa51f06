"""Helpers shared by the service tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

API_KEY = "test-key-0123456789abcdef"


def export_untrained_model(out: Path, score_thresh: float, name: str = "test") -> Path:
    """A real, untrained (seeded) multi-type detector exported to ``out``: 3.2 mm pixels and
    128-pixel inputs keep CPU inference fast; ``score_thresh`` decides how much it reports."""
    from fsd.config import FsdConfig
    from fsd.export import export_module
    from fsd.models import DetectorConfig, architecture_record, build_detector, default_genotype

    config = FsdConfig.model_validate(
        {"task": "types", "preprocess": {"spacing_mm": 3.2, "max_size": 128}, "model": {"roi": {"score_thresh": score_thresh}}}
    )
    detector_config = DetectorConfig.from_config(config)
    torch.manual_seed(0)
    export_module(
        build_detector(default_genotype(), detector_config),
        out,
        architecture=architecture_record(genotype=default_genotype()),
        detector_config=detector_config,
        preprocess=config.preprocess,
        task="types",
        name=name,
        version="0",
        verify_samples=1,
    )
    return out
AUTH = {"X-API-Key": API_KEY}


class SlowModule(torch.nn.Module):
    """The real model, held until the test releases it, so a request is surely in flight."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def forward(self, images: list[torch.Tensor]) -> object:
        self.entered.set()
        self.release.wait(timeout=30)
        return self.inner(images)


def form_files(uploads: list[tuple[str, bytes]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """httpx ``files=`` for POST /v1/detect: one repeated ``files`` field per DICOM file."""
    return [("files", (name, data, "application/dicom")) for name, data in uploads]


def stow_request(datas: list[bytes], part_type: str = "application/dicom") -> tuple[bytes, str]:
    """A STOW-RS body and its Content-Type."""
    boundary = uuid.uuid4().hex
    chunks = []
    for data in datas:
        chunks.append(f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def wait_ready(client: TestClient, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("the app did not become ready")


@contextmanager
def serving(app: FastAPI, ready: bool = True) -> Iterator[TestClient]:
    """A TestClient with the lifespan running (and, by default, the warm-up done)."""
    with TestClient(app, raise_server_exceptions=False) as client:
        if ready:
            wait_ready(client)
        yield client


@contextmanager
def live_server(app: FastAPI, ready_timeout_s: float = 60.0, *, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn server on a free loopback port, configured as ``fsd serve``
    configures it (:func:`service.http.server.uvicorn_config`); yields its base URL.

    ``tls``: (certificate, key) files to serve HTTPS with; the readiness poll trusts the certificate.
    """
    import socket
    import ssl

    import uvicorn

    from service.http.server import uvicorn_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    scheme = "https" if tls else "http"
    base = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    overrides = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    server = uvicorn.Server(uvicorn_config(app, app.state.settings, **overrides))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(tls[0])) if tls else True
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=5, verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server did not become ready")
            time.sleep(0.02)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def metric(client: TestClient, line_start: str) -> float:
    """The value of the first /metrics line starting with ``line_start`` (0 when absent)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for_sr(client: TestClient, study: str, timeout_s: float = 60.0, path: str = "") -> httpx.Response:
    """GET /v1/studies/{study}{path} until the study's SR is there (its analysis runs in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/v1/studies/{study}{path}", headers=AUTH)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, f"no SR of the study after {timeout_s:.0f} s: {response.text[:200]}"
            return response
        time.sleep(0.05)
