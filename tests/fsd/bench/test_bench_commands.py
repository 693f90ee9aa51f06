"""Benchmarks run on the CPU at reduced sizes: speed and complexity tables are produced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fsd.cli.bench.complexity import complexity_markdown, complexity_table, forward_flops
from fsd.cli.bench.speed import TorchvisionBaseline, benchmark_model, load_fsd_module, speed_markdown
from fsd.config import FsdConfig, load_config
from fsd.export import export_module
from fsd.models import DetectorConfig, architecture_record, build_detector, default_genotype

pytestmark = pytest.mark.slow


def test_complexity_table_counts_fsd_and_both_baselines():
    rows = complexity_table(FsdConfig(), size=128)
    names = [r.name for r in rows]
    assert names[1:] == ["resnet50_fpn", "resnet18_fpn"]
    fsd, r50, r18 = rows
    assert r50.parameters > r18.parameters > fsd.parameters > 0
    assert r50.gflops > fsd.gflops > 0
    table = complexity_markdown(rows, 128, 3)
    assert "| resnet50_fpn | 41.35 | 100.0% |" in table


def test_complexity_of_the_demo_config_with_the_graph_module():
    config = load_config(Path(__file__).parents[3] / "configs" / "demo.yaml")
    assert config.model.graph.enabled
    model = build_detector(default_genotype(), DetectorConfig.from_config(config))
    assert forward_flops(model, 3, 96, 96) > 0
    assert all(p.requires_grad for p in model.parameters()), "counting FLOPs must leave the model trainable"
    assert complexity_table(config, size=96)[0].gflops > 0


def test_speed_rows_cover_modes_precisions_and_batches():
    module, channels = load_fsd_module(None, 96)
    import torch

    rows = benchmark_model("FSD", module, torch.device("cpu"), 96, channels, [1, 2], ["fp32", "bf16"], ["eager", "torchscript"], warmup=1, repeats=2)
    assert {(r.mode, r.precision, r.batch) for r in rows} == {(m, p, b) for m in ("eager", "torchscript") for p in ("fp32", "bf16") for b in (1, 2)}
    for row in rows:
        assert row.latency_p50_ms > 0 and row.latency_p99_ms >= row.latency_p50_ms and row.images_per_s > 0
        assert row.tflops is not None and row.tflops > 0 and row.peak_memory_mib is None
    assert "| FSD | torchscript | bf16 | 2 |" in speed_markdown(rows, "CPU", 96)


def test_speed_rebuilds_an_exported_switchnorm_model_with_its_running_statistics(tmp_path: Path):
    import torch

    config = FsdConfig.model_validate({"task": "types", "preprocess": {"spacing_mm": 1.6, "max_size": 96}, "model": {"norm": "sn", "graph": {"enabled": True, "hidden": 16}}})
    detector_config = DetectorConfig.from_config(config)
    torch.manual_seed(0)
    trained = build_detector(default_genotype(), detector_config)
    with torch.no_grad():
        for name, buffer in trained.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    export_module(trained, tmp_path, architecture=architecture_record(genotype=default_genotype()), detector_config=detector_config,
                  preprocess=config.preprocess, task="types", name="speed", version="1", metrics={}, verify_samples=1)
    rebuilt, channels = load_fsd_module(tmp_path, 96)
    assert channels == 3 and not rebuilt.training
    for name, tensor in trained.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name


def test_torchvision_baseline_returns_detections_like_fsd():
    import torch

    torch.manual_seed(0)
    _, detections = TorchvisionBaseline(96).eval()([torch.rand(3, 96, 96)])
    assert set(detections[0]) >= {"boxes", "scores", "labels"}


def test_speed_command_writes_table_and_json(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "fsd", "bench", "speed", "--size", "96", "--batches", "1", "--repeats", "1", "--warmup", "0", "--modes", "eager", "--no-baseline", "--device", "cpu", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "speed.json").read_text())
    assert data["device"] == "CPU" and len(data["rows"]) == 1
    assert (tmp_path / "speed.md").read_text().startswith("Device: CPU")
    bad = subprocess.run([sys.executable, "-m", "fsd", "bench", "speed", "--batches", "0", "--device", "cpu"], capture_output=True, text=True)
    assert bad.returncode == 2 and "positive integers" in bad.stderr


def test_the_speed_table_names_the_cpu_and_its_threads(tmp_path: Path):
    from fsd.cpu import cpu_description, physical_cores, usable_cpus

    result = subprocess.run(
        [sys.executable, "-m", "fsd", "bench", "speed", "--size", "96", "--batches", "1", "--repeats", "1", "--warmup", "0",
         "--modes", "eager", "--no-baseline", "--no-profile", "--device", "cpu", "--threads", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header = (tmp_path / "speed.md").read_text().splitlines()[0]
    described = json.loads((tmp_path / "speed.json").read_text())["cpu"]
    assert described in header and described.endswith("; 1 torch thread(s)")
    assert f"{len(usable_cpus())} logical CPU(s) on {physical_cores()} core(s)" in described
    assert torch.backends.cpu.get_cpu_capability() in described
    assert 1 <= physical_cores() <= len(usable_cpus())
    assert cpu_description(threads=3).endswith("; 3 torch thread(s)")


def _export_types_model(directory: Path, graph: bool) -> None:
    config = FsdConfig.model_validate({"task": "types", "preprocess": {"spacing_mm": 1.6, "max_size": 96}, "model": {"norm": "sn", "graph": {"enabled": graph, "hidden": 16}}})
    detector_config = DetectorConfig.from_config(config)
    torch.manual_seed(0)
    export_module(build_detector(default_genotype(), detector_config), directory, architecture=architecture_record(genotype=default_genotype()),
                  detector_config=detector_config, preprocess=config.preprocess, task="types", name=directory.name, version="1", metrics={}, verify_samples=1)


def test_speed_compares_the_graph_on_and_off_in_one_run(tmp_path: Path):
    _export_types_model(tmp_path / "graph_on", graph=True)
    _export_types_model(tmp_path / "graph_off", graph=False)
    command = [sys.executable, "-m", "fsd", "bench", "speed", "--model", str(tmp_path / "graph_on"), "--compare", str(tmp_path / "graph_off"),
               "--size", "96", "--batches", "2", "--repeats", "1", "--warmup", "0", "--modes", "eager", "--no-baseline", "--no-profile",
               "--device", "cpu", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "out" / "speed.json").read_text())["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [("FSD graph_on", 2), ("FSD graph_off", 2)]
    table = (tmp_path / "out" / "speed.md").read_text()
    assert "Time per image relative to FSD graph_on" in table
    ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    assert f"| FSD graph_off | eager | fp32 | 2 | {rows[1]['images_per_s']:.1f} | {rows[0]['images_per_s']:.1f} | {ratio:.3f}x |" in table
    missing = subprocess.run([*command[:8], str(tmp_path / "absent"), *command[9:]], capture_output=True, text=True, timeout=600)
    assert missing.returncode != 0 and "absent" in missing.stderr and "Traceback" not in missing.stderr
