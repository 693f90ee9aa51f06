"""Export: TorchScript file + model card, parity check that fails loudly, loading for inference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fsd.artifacts import ArtifactError, load_exported
from fsd.config import FsdConfig
from fsd.export import ExportError, export_module, sample_inputs, verify_scripted
from fsd.models import DetectorConfig, architecture_record, build_detector, default_genotype


def _model(seed: int = 0, task: str = "types") -> tuple[torch.nn.Module, FsdConfig, DetectorConfig]:
    config = FsdConfig.model_validate({"task": task, "preprocess": {"spacing_mm": 1.6, "max_size": 128}, "model": {"graph": {"enabled": True, "hidden": 16}}})
    detector_config = DetectorConfig.from_config(config)
    torch.manual_seed(seed)
    return build_detector(default_genotype(), detector_config), config, detector_config


def _export(tmp_path: Path, task: str = "types"):
    model, config, detector_config = _model(task=task)
    result = export_module(
        model,
        tmp_path / "export",
        architecture=architecture_record(genotype=default_genotype()),
        detector_config=detector_config,
        preprocess=config.preprocess,
        task=task,
        name="unit",
        version="1.2.3",
        metrics={"froc": {"4": 0.5}},
        verify_samples=2,
    )
    return model, config, result


def test_export_writes_a_verified_model_and_a_complete_card(tmp_path: Path):
    model, config, result = _export(tmp_path)
    card = json.loads(result.card_path.read_text())
    for key in ("format_version", "architecture", "class_names", "preprocess", "input", "metrics", "software", "created", "intended_use", "verification"):
        assert key in card, key
    assert card["class_names"][3] == "liver" and len(card["class_names"]) == 8
    assert card["preprocess"]["spacing_mm"] == 1.6
    assert card["architecture"]["genotype"]["format"] == "fsd-genotype"
    assert "research use" in card["intended_use"].lower()
    assert card["verification"]["max_abs_difference"] <= 1e-4
    loaded = load_exported(result.model_path.parent)
    assert loaded.name == "unit" and loaded.version == "1.2.3" and loaded.num_classes == 8
    images = sample_inputs(loaded.preprocess, 1, seed=5)[0]
    with torch.no_grad():
        _, expected = model.eval()(images)
        _, actual = loaded.module(images)
    assert torch.allclose(expected[0]["scores"], actual[0]["scores"], atol=1e-5)


def test_parity_check_fails_loudly_for_a_different_model(tmp_path: Path):
    model, config, _ = _model(seed=0)
    other, _, _ = _model(seed=1)
    scripted = torch.jit.script(other.eval())
    with pytest.raises(ExportError, match="does not reproduce"):
        verify_scripted(model.eval(), scripted, sample_inputs(config.preprocess, 2), atol=1e-4)


def test_binary_export_has_one_class(tmp_path: Path):
    _, _, result = _export(tmp_path, task="binary")
    assert load_exported(result.model_path).class_names == ["lesion"]


def test_loading_errors_are_clear(tmp_path: Path):
    with pytest.raises(ArtifactError, match="not an exported model"):
        load_exported(tmp_path)
    (tmp_path / "model.ts").write_bytes(b"junk")
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(ArtifactError, match="not an FSD model card"):
        load_exported(tmp_path)
    _, _, result = _export(tmp_path / "good")
    card = json.loads(result.card_path.read_text())
    (tmp_path / "model.json").write_text(json.dumps({**card, "format_version": 1}))
    with pytest.raises(ArtifactError, match="format version 1, this FSD reads version 2; export the model again"):
        load_exported(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({**card, "task": "segmentation"}))
    with pytest.raises(ArtifactError, match="task"):
        load_exported(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(card))
    with pytest.raises(ArtifactError, match="cannot load TorchScript"):
        load_exported(tmp_path)


def test_the_eager_loader_rebuilds_the_exported_network(tmp_path: Path):
    from fsd.artifacts import load_eager

    model, config, result = _export(tmp_path)
    eager = load_eager(result.model_path.parent)
    scripted = load_exported(result.model_path.parent)
    assert eager.card == scripted.card and not isinstance(eager.module, torch.jit.ScriptModule)
    images = sample_inputs(config.preprocess, 2)
    for batch in images:
        with torch.no_grad():
            _, expected = model.eval()(batch)
            _, actual = eager.module(batch)
        for a, b in zip(expected, actual):
            assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])
