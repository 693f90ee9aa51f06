"""`fsd data synth` and `fsd data show` from the command line, including their error paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fsd.cli import app, main


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "set"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "synth",
            "--out",
            str(root),
            "--patients",
            "3",
            "--size",
            "64",
            "--seed",
            "2",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 patients" in result.output and "DL_info.csv" in result.output
    return root


def test_synth_writes_a_deeplesion_folder(synth_dir: Path) -> None:
    assert (synth_dir / "DL_info.csv").is_file()
    assert any((synth_dir / "Images_png").iterdir())
    assert not (synth_dir / "dicom").exists()


def test_show_writes_a_png_grid(synth_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pictures" / "samples.png"
    result = CliRunner().invoke(
        app, ["data", "show", "--data", str(synth_dir), "--out", str(out), "--count", "3"]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200


def test_show_one_split(synth_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "val.png"
    result = CliRunner().invoke(
        app, ["data", "show", "--data", str(synth_dir), "--out", str(out), "--split", "val"]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--patients", "0"], "--patients must be at least 1"),
        (["--patients", "2", "--size", "100"], "--size must be a multiple of 16"),
        (["--patients", "2", "--seed", "-3"], "--seed must be a non-negative"),
    ],
)
def test_synth_bad_arguments_exit_2_with_a_sentence(
    arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run_main(
        ["data", "synth", "--out", str(tmp_path / "out"), *arguments, "--no-progress"], capsys
    )
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_synth_refuses_a_foreign_non_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    code, err = _run_main(
        ["data", "synth", "--out", str(tmp_path), "--patients", "1", "--no-progress"], capsys
    )
    assert code == 2 and "not empty" in err
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_show_without_annotations_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run_main(["data", "show", "--data", str(tmp_path), "--out", str(tmp_path / "x.png")], capsys)
    assert code == 2 and "DL_info.csv" in err


def test_show_rejects_an_unknown_split(synth_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["data", "show", "--data", str(synth_dir), "--out", str(tmp_path / "x.png"), "--split", "dev"]
    )
    assert result.exit_code == 2
    assert "--split" in result.output


def test_show_rejects_a_zero_count(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run_main(
        ["data", "show", "--data", str(synth_dir), "--out", str(tmp_path / "x.png"), "--count", "0"], capsys
    )
    assert code == 2 and "--count must be at least 1" in err
