"""The claim against the general-purpose baselines: made against the best ResNet-FPN baseline
chosen on val (not the one that happens to be weakest), and holding only when the paired interval
is above 0."""

from __future__ import annotations

from typing import Any

from fsd.cli.bench.accuracy_report import Cell, claims


def baseline_cell(val_froc: float) -> Cell:
    return Cell(record={"val": {"froc_mean_0.5_4": val_froc}}, outcomes=None)


def difference(mean: float, low: float, high: float) -> dict[str, Any]:
    """An "arm minus FSD" AP50 difference (negative: FSD is better)."""
    return {"AP50": {"mean": mean, "ci": (low, high)}}


PARAMETERS = {"fsd": 1.14e6, "resnet18_fpn": 28.3e6, "resnet50_fpn": 41.4e6, "resnet18_fpn_gn": 28.3e6}


def baseline_line(differences: dict[str, Any], cells: dict[str, list[Cell]]) -> str:
    lines = [line for line in claims({}, differences, PARAMETERS, cells=cells) if "ResNet-FPN baseline" in line]
    assert len(lines) == 1
    return lines[0]


def test_the_claim_is_against_the_best_baseline_on_val_and_needs_its_interval_above_zero():
    cells = {"resnet18_fpn": [baseline_cell(0.42)], "resnet50_fpn": [baseline_cell(0.29)]}
    # FSD clearly beats the weak R50 (BN) but not R18, the better baseline on val
    differences = {"resnet18_fpn": difference(-0.040, -0.090, 0.011), "resnet50_fpn": difference(-0.096, -0.147, -0.049)}
    line = baseline_line(differences, cells)
    assert "best on val of resnet18_fpn, resnet50_fpn: resnet18_fpn" in line
    assert "**does not hold**" in line and "+4.0 [-1.1, +9.0]" in line

    differences["resnet18_fpn"] = difference(-0.060, -0.100, -0.020)
    assert "**holds**" in baseline_line(differences, cells)


def test_a_gn_baseline_that_is_better_on_val_becomes_the_reference():
    cells = {"resnet18_fpn": [baseline_cell(0.42)], "resnet18_fpn_gn": [baseline_cell(0.55), baseline_cell(0.50)]}
    differences = {"resnet18_fpn": difference(-0.060, -0.100, -0.020), "resnet18_fpn_gn": difference(-0.010, -0.050, 0.030)}
    line = baseline_line(differences, cells)
    assert ": resnet18_fpn_gn;" in line and "**does not hold**" in line
