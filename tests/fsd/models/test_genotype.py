"""Genotype documents: round trip, and rejection of bad ones with the position named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fsd.models.genotype import (
    GenotypeError,
    default_genotype,
    genotype_from_dict,
    head_edge_pairs,
    load_genotype,
    make_genotype,
)


def test_round_trip_through_json(tmp_path: Path):
    genotype = default_genotype()
    path = genotype.save(tmp_path / "genotype.json")
    loaded = load_genotype(path)
    assert loaded == genotype
    assert loaded.to_dict() == json.loads(path.read_text())
    assert json.loads(path.read_text())["format"] == "fsd-genotype"


def test_head_edge_pairs_cover_every_earlier_node():
    assert head_edge_pairs(1) == [(0, 1)]
    assert head_edge_pairs(3) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def _mutated(change) -> dict:
    data = copy.deepcopy(default_genotype().to_dict())
    change(data)
    return data


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["backbone"]["stages"][1]["ops"].__setitem__(0, "conv_7x7"), r"backbone\.stages\[1\]\.ops\[0\]: unknown op 'conv_7x7'"),
        (lambda d: d["backbone"]["stages"].pop(), r"backbone\.stages: needs exactly 4 stages, got 3"),
        (lambda d: d["backbone"]["stages"][2].__setitem__("ops", []), r"backbone\.stages\[2\]\.ops: needs at least one op"),
        (lambda d: d["backbone"]["stages"][0]["ops"].__setitem__(1, "zero"), r"backbone\.stages\[0\]\.ops\[1\]: 'zero'"),
        (lambda d: d["backbone"]["stages"][3].__setitem__("width", 0), r"backbone\.stages\[3\]\.width"),
        (lambda d: d["head"]["edges"].pop(), r"head\.edges: a cell with 2 nodes has 3 edges, got 2"),
        (lambda d: d["head"]["edges"][2].__setitem__("op", "lstm"), r"head\.edges\[2\]: unknown op 'lstm'"),
        (lambda d: d["head"]["edges"][1].__setitem__("from", 1), r"head\.edges\[1\]: expected edge from 0 to 2"),
        (lambda d: d["head"]["edges"][0].__setitem__("op", "zero"), r"head node 1: every incoming edge is 'zero'"),
        (lambda d: d.__setitem__("version", 99), r"version: unsupported version 99"),
        (lambda d: d.__setitem__("format", "darts"), r"format: must be 'fsd-genotype'"),
    ],
)
def test_bad_genotypes_are_rejected_naming_the_position(change, message):
    with pytest.raises(GenotypeError, match=message):
        genotype_from_dict(_mutated(change))


def test_load_reports_the_file_and_bad_json(tmp_path: Path):
    bad = tmp_path / "g.json"
    bad.write_text("{not json")
    with pytest.raises(GenotypeError, match="not valid JSON"):
        load_genotype(bad)
    with pytest.raises(GenotypeError, match="not found"):
        load_genotype(tmp_path / "missing.json")


def test_zero_edge_is_allowed_when_the_node_keeps_another_input():
    genotype = make_genotype(8, [(8, ["skip"]), (8, ["conv_3x3"]), (8, ["conv_3x3"]), (8, ["conv_3x3"])], 8, ["conv_3x3", "zero", "skip"])
    assert [e.op for e in genotype.head_edges] == ["conv_3x3", "zero", "skip"]
