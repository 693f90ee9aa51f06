"""API-key authentication on /v1/*, open probes, and the server without a key (loopback only)."""

from __future__ import annotations

import pytest
from service_helpers import API_KEY, form_files, serving

from service.http.auth import key_matches


def _code(response) -> str:
    return response.json()["error"]["code"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong-key-0123456789"}, {"Authorization": "Bearer wrong-key-0123456789"},
     {"Authorization": f"Basic {API_KEY}"}, {"X-API-Key": API_KEY[:-1]}],
)
def test_missing_or_wrong_key_is_401_on_every_api_route(client, series_uploads, headers):
    for response in (
        client.post("/v1/detect", files=form_files(series_uploads[:1]), headers=headers),
        client.post("/v1/studies", content=b"", headers={**headers, "Content-Type": "multipart/related; boundary=x"}),
        client.get("/v1/model", headers=headers),
    ):
        assert response.status_code == 401 and _code(response) == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_key_is_checked_before_the_body_is_looked_at(client):
    response = client.post("/v1/detect", content=b"garbage", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


@pytest.mark.parametrize("headers", [{"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}, {"authorization": f"bearer {API_KEY}"}])
def test_key_in_either_header_is_accepted(client, series_uploads, headers):
    assert client.get("/v1/model", headers=headers).status_code == 200
    response = client.post("/v1/detect", files=form_files(series_uploads[:1]), headers=headers)
    assert response.status_code == 200


def test_health_metrics_viewer_and_docs_stay_open(client):
    for path in ("/health/live", "/health/ready", "/metrics", "/", "/static/viewer.js", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_without_a_key_on_loopback_everything_is_open(make_app, series_uploads):
    with serving(make_app(api_key=None, host="127.0.0.1")) as client:
        assert client.get("/v1/model").status_code == 200
        assert client.post("/v1/detect", files=form_files(series_uploads[:1])).status_code == 200


def test_key_comparison_is_exact():
    assert key_matches(API_KEY, API_KEY)
    assert not key_matches(API_KEY + "x", API_KEY)
    assert not key_matches(API_KEY.upper(), API_KEY)
    assert not key_matches("", API_KEY)
    assert key_matches("clé-ünïcode-0123456789", "clé-ünïcode-0123456789")
