"""The demo's last stage against a real `fsd serve` process: start on loopback with an API key,
POST a test patient's synthetic DICOM series, get one result per slice, stop the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fsd.cli.demo import pick_test_key_slice, query_server, series_files
from fsd.config import FsdConfig
from fsd.data.synth import generate_dataset
from fsd.export import export_module
from fsd.models import DetectorConfig, architecture_record, build_detector, default_genotype

pytestmark = pytest.mark.slow


def _export_untrained(config: FsdConfig, directory: Path) -> None:
    """The default genotype, untrained (seed 0), exported as the typed model "demo-test"."""
    detector_config = DetectorConfig.from_config(config)
    torch.manual_seed(0)
    export_module(
        build_detector(default_genotype(), detector_config), directory,
        architecture=architecture_record(genotype=default_genotype()), detector_config=detector_config,
        preprocess=config.preprocess, task="types", name="demo-test", version="0", verify_samples=1,
    )


def test_demo_query_against_a_live_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    generate_dataset(tmp_path / "data", patients=4, size=128, seed=4, dicom=True, type_all=True, progress=False)
    config = FsdConfig.model_validate(
        {"task": "types", "data": {"root": str(tmp_path / "data")}, "preprocess": {"spacing_mm": 2.0, "max_size": 96},
         "model": {"roi": {"score_thresh": 0.0}}}
    )
    _export_untrained(config, tmp_path / "export")
    record = pick_test_key_slice(config)
    files = series_files(config, record)
    assert any(f.name == f"{record.key_slice:03d}.dcm" for f in files) and len(files) >= 2
    answer = query_server(config, tmp_path / "export")
    assert answer["model"]["name"] == "demo-test"
    assert len(answer["results"]) == len(files)
    printed = capsys.readouterr().out
    assert "truth" in printed and record.folder in printed
    assert "true type" in printed  # each detection is shown beside the type of the lesion it found


def test_the_demo_scores_its_model_on_an_unseen_synthetic_set(tmp_path: Path):
    import json

    from fsd.cli.demo import score_unseen
    from fsd.data.dl_info import read_dl_info
    from fsd.data.splits import task_records

    config = FsdConfig.model_validate(
        {"task": "types", "data": {"root": str(tmp_path / "data")}, "preprocess": {"spacing_mm": 2.0, "max_size": 96},
         "bench": {"test_data": {"root": str(tmp_path / "unseen"), "synth": {"patients": 3, "size": 128, "seed": 77, "type_all": True}}}}
    )
    _export_untrained(config, tmp_path / "export")
    report = score_unseen(config, tmp_path / "export", tmp_path)
    lesions = sum(len(r.lesions) for r in task_records(read_dl_info(tmp_path / "unseen" / "DL_info.csv"), "types"))  # noisy ones dropped
    assert report is not None and report["num_lesions"] == lesions > 0
    assert json.loads((tmp_path / "unseen_report.json").read_text())["num_lesions"] == lesions
    assert report["type_accuracy"] is None or 0 <= report["type_accuracy"] <= 1
    assert score_unseen(config.model_copy(update={"bench": config.bench.model_copy(update={"test_data": None})}), tmp_path / "export", tmp_path) is None


def test_a_demo_folder_is_reused_only_with_the_same_settings(tmp_path: Path):
    from fsd.cli.demo import claim_run_folder
    from fsd.errors import FsdError

    config = FsdConfig.model_validate({"seed": 0})
    claim_run_folder(config, tmp_path / "run")
    claim_run_folder(config, tmp_path / "run")  # the same settings: its finished stages are reused
    with pytest.raises(FsdError, match=r"other settings \(seed differ\).*another --out"):
        claim_run_folder(config.model_copy(update={"seed": 1}), tmp_path / "run")
    changed = config.model_copy(update={"train": config.train.model_copy(update={"epochs": 3})})
    with pytest.raises(FsdError, match=r"train\.epochs differ"):
        claim_run_folder(changed, tmp_path / "run")
    (tmp_path / "old" / "search").mkdir(parents=True)  # a run from before the settings were recorded
    with pytest.raises(FsdError, match="unknown settings"):
        claim_run_folder(config, tmp_path / "old")


def test_the_demo_command_takes_overrides_and_refuses_bad_ones(tmp_path: Path):
    import subprocess
    import sys

    config = Path(__file__).parents[2] / "configs" / "demo.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "fsd", "demo", "--config", str(config), "--out", str(tmp_path / "x"), "--set", "train.lr=-1"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "train.lr" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()  # nothing written for a config that does not validate


def test_the_demo_refuses_data_generated_with_other_settings(tmp_path: Path):
    from fsd.cli.demo import ensure_demo_data
    from fsd.errors import FsdError

    generate_dataset(tmp_path / "data", patients=2, size=128, seed=4, dicom=True, type_all=True, progress=False)
    synth = {"patients": 2, "size": 128, "seed": 4, "type_all": True}
    ensure_demo_data(FsdConfig.model_validate({"data": {"root": str(tmp_path / "data"), "synth": synth}}))  # the same: reused
    with pytest.raises(FsdError, match="seed"):
        ensure_demo_data(FsdConfig.model_validate({"data": {"root": str(tmp_path / "data"), "synth": {**synth, "seed": 5}}}))
