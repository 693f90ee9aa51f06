"""Config files: the shipped configs load; invalid ones fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsd.config import load_config, parse_config
from fsd.errors import ConfigError

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_are_valid(path: Path):
    config = load_config(path)
    assert config.num_classes in (1, 8)


def test_shipped_configs_include_the_three_documented_ones():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "synth_bench.yaml", "deeplesion.yaml"}


@pytest.mark.parametrize(
    "data, key",
    [
        ({"train": {"lr": -1}}, "train.lr"),
        ({"train": {"learning_rate": 0.1}}, "train.learning_rate"),
        ({"model": {"norm": "batchnorm"}}, "model.norm"),
        ({"task": "segmentation"}, "task"),
        ({"search": {"epochs": 2, "warmup_epochs": 2}}, "search"),
        ({"model": {"rpn": {"anchor_sizes_mm": [[4, 8], [16]]}}}, "model.rpn"),
        ({"data": {"type_split": [0.5, 0.5, 0.5]}}, "data.type_split"),
        ({"search": {"space": {"stages": [{"width": 8, "blocks": 1}]}}}, "search.space"),
    ],
)
def test_invalid_values_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(data, "test.yaml")


def test_overrides_and_file_errors(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n")
    config = load_config(path, ["train.epochs=5", "model.graph.enabled=true"])
    assert config.train.epochs == 5 and config.model.graph.enabled
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["train.epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
