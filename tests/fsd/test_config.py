"""Config files: the shipped configs load; invalid ones fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fsd.config import load_config, parse_config
from fsd.errors import ConfigError
from fsd.nn import NORM_KINDS
from fsd.nn.ops import OPS

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


@pytest.mark.parametrize(
    "section, key",
    [({"backbone_ops": ["conv_3x3", "conv_9x9"]}, "backbone_ops"), ({"head_ops": ["skip", "attention"]}, "head_ops")],
)
def test_a_config_naming_an_unknown_op_fails_when_it_loads(tmp_path: Path, section, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"search": {"space": section}}))
    with pytest.raises(ConfigError) as failure:
        load_config(path)
    message = str(failure.value)
    unknown = next(name for name in section[key] if name not in OPS)
    assert f"{path}: search.space.{key}: unknown op '{unknown}'" in message
    assert all(name in message for name in OPS), "the message lists the ops of the table"


def test_op_and_norm_names_come_from_the_op_table_and_the_norm_factory():
    config = parse_config({}, "default.yaml")
    assert set(config.search.space.backbone_ops) == set(OPS) - {"zero"}
    assert set(config.search.space.head_ops) <= set(OPS)
    for kind in NORM_KINDS:
        assert parse_config({"model": {"norm": kind}, "search": {"norm": kind}}, "x.yaml").model.norm == kind
    with pytest.raises(ConfigError, match=r"search\.norm: Input should be 'bn', 'gn', 'in', 'ln', 'bin', 'iln', 'sn', 'ssn', 'syncsn' or 'none'"):
        parse_config({"search": {"norm": "groupnorm"}}, "x.yaml")
