"""Settings sources and validation, and `fsd serve` refusing invalid or insecure settings."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from fsd.errors import ConfigError
from service.cli import build_settings, serve_command
from service.http.settings import ServiceSettings, is_loopback, load_settings

KEY = "k" * 24


def test_defaults_are_secure_and_local():
    settings = load_settings()
    assert settings.host == "127.0.0.1" and settings.api_key is None and not settings.allow_insecure
    assert settings.max_request_bytes == 256 * 2**20 and settings.min_score == 0.05


def test_precedence_overrides_then_environment_then_file_then_defaults(tmp_path, monkeypatch):
    file = tmp_path / "service.yaml"
    file.write_text("port: 9000\nmax_batch_slices: 4\nmin_score: 0.2\n")
    monkeypatch.setenv("FSD_PORT", "9100")
    monkeypatch.setenv("FSD_MIN_SCORE", "0.3")
    settings = load_settings(file, min_score=0.4)
    assert isinstance(settings, ServiceSettings)
    assert settings.max_batch_slices == 4  # file
    assert settings.port == 9100  # environment over file
    assert settings.min_score == 0.4  # explicit override over environment


def test_settings_file_from_environment_and_json_files(tmp_path, monkeypatch):
    file = tmp_path / "service.json"
    file.write_text(json.dumps({"max_wait_ms": 25}))
    monkeypatch.setenv("FSD_SETTINGS_FILE", str(file))
    assert load_settings().max_wait_ms == 25


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"host": "0.0.0.0"}, "refusing to serve on 0.0.0.0 without an API key"),
        ({"api_key": "short"}, "api_key: must be at least 16 characters"),
        ({"max_batch_slices": 0}, "max_batch_slices"),
        ({"device": "tpu"}, "device"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_invalid_settings_raise_a_readable_config_error(values, fragment):
    with pytest.raises(ConfigError) as raised:
        load_settings(**values)
    assert fragment in str(raised.value)


def test_config_error_never_echoes_the_key():
    with pytest.raises(ConfigError) as raised:
        load_settings(api_key="secret-abc")
    assert "secret-abc" not in str(raised.value)


def test_non_loopback_is_allowed_with_a_key_or_the_explicit_insecure_flag():
    assert load_settings(host="0.0.0.0", api_key=KEY).auth_enabled
    insecure = load_settings(host="0.0.0.0", allow_insecure=True)
    assert not insecure.auth_enabled


def test_bad_settings_files_are_config_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("port: [\n")
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("colour: blue\n")
    with pytest.raises(ConfigError, match="colour"):
        load_settings(unknown)


@pytest.mark.parametrize(("host", "expected"), [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False),
                                                ("example.org", False)])
def test_loopback_detection(host, expected):
    assert is_loopback(host) is expected


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve_command)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer from collapsing the app into `serve`
        """Nothing."""

    return app


def test_fsd_serve_exits_2_with_a_clear_message_when_insecure(model_dir):
    result = CliRunner().invoke(_cli(), ["serve", "--model", str(model_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without an API key" in result.output


def test_fsd_serve_exits_2_without_a_model(tmp_path):
    result = CliRunner().invoke(_cli(), ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not an exported model" in result.output


def test_fsd_serve_reads_the_key_from_a_file(tmp_path, model_dir):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    settings = build_settings(None, model_dir, "0.0.0.0", 8123, "cpu", key_file, False, None)
    assert settings.api_key.get_secret_value() == KEY and settings.port == 8123
    with pytest.raises(ConfigError, match="cannot read the API key file"):
        build_settings(None, model_dir, None, None, None, tmp_path / "absent", False, None)
    assert build_settings(None, model_dir, "0.0.0.0", None, None, None, True, None).allow_insecure


def test_the_model_leaves_a_core_to_decoding_and_http_on_a_cpu():
    import torch

    from service.analysis.runtime import cpu_threads

    assert cpu_threads(None, torch.device("cpu"), cores=2) == 1
    assert cpu_threads(None, torch.device("cpu"), cores=16) == 15
    assert cpu_threads(None, torch.device("cpu"), cores=1) == 1
    assert cpu_threads(3, torch.device("cpu"), cores=16) == 3
    assert cpu_threads(None, torch.device("cuda")) is None


def test_the_model_thread_runs_with_the_configured_cpu_threads():
    import asyncio

    import torch

    from service.analysis.batcher import DynamicBatcher
    from service.analysis.runtime import thread_setup

    seen: list[int] = []

    def infer(images):
        seen.append(torch.get_num_threads())  # OpenMP keeps the thread count per thread
        return [{"scores": torch.zeros(0)} for _ in images]

    async def run() -> None:
        batcher = DynamicBatcher(infer, max_wait_s=0.0, worker_setup=thread_setup(1))
        batcher.start()
        await batcher.submit([torch.zeros(3, 8, 8)])
        await batcher.drain(5.0)

    asyncio.run(run())
    assert seen == [1]


def test_on_a_cpu_one_single_threaded_model_worker_per_core_by_default():
    import torch

    from fsd.cpu import physical_cores
    from service.analysis.runtime import model_workers, worker_threads

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert model_workers(None, cpu) == physical_cores() and model_workers(None, cpu, cores=8) == 8
    assert model_workers(None, gpu) == 1 and model_workers(3, cpu) == 3
    assert worker_threads(None, cpu, workers=2, cores=2) == 1, "several workers run side by side, one thread each"
    assert worker_threads(None, cpu, workers=1, cores=16) == 15, "a lone worker leaves a core to decoding and HTTP"
    assert worker_threads(4, cpu, workers=2) == 4 and worker_threads(None, gpu, workers=1) is None


def test_two_model_workers_answer_exactly_like_one(make_app, series_uploads):
    from service_helpers import AUTH, form_files, serving

    answers = []
    for workers in (1, 2):
        app = make_app(model_workers=workers, max_batch_slices=1)
        with serving(app) as client:
            response = client.post("/v1/detect", files=form_files(series_uploads), headers=AUTH)
            assert response.status_code == 200
            answers.append([result["detections"] for result in response.json()["results"]])
        assert app.state.batcher.workers == workers
    assert answers[0] == answers[1]
