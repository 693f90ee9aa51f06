"""Graceful shutdown under a real uvicorn server: in-flight requests finish, then the batcher drains."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from service_helpers import AUTH, SlowModule, form_files


@pytest.mark.slow
def test_sigterm_style_shutdown_finishes_in_flight_requests(make_app, inference_model, series_uploads):
    module = SlowModule(inference_model.module)
    app = make_app(model=dataclasses.replace(inference_model, module=module), warmup_runs=0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            if httpx.get(f"{base}/health/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    answers: list[httpx.Response] = []
    client = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{base}/v1/detect", files=form_files(series_uploads[:2]), headers=AUTH, timeout=60)
        )
    )
    client.start()
    assert module.entered.wait(timeout=30), "the request reached the model"

    server.should_exit = True  # what uvicorn's SIGTERM/SIGINT handler sets
    time.sleep(0.3)
    assert serving.is_alive(), "the server waits for the in-flight request"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health/live", timeout=2)  # no new connections once shutting down
    module.release.set()
    client.join(timeout=30)
    serving.join(timeout=30)

    assert not serving.is_alive()
    assert len(answers) == 1 and answers[0].status_code == 200
    assert len(answers[0].json()["results"]) == 2
    assert app.state.batcher.closed and app.state.batcher.queue_depth == 0, "the lifespan shutdown (batcher drain) ran"
