"""The `fsd` command starts without torch: its help and a config's error come before any heavy import.

Importing torch and torchvision takes seconds, so the command's modules import them only inside
the commands that compute, after the config has loaded. Each case runs in a fresh interpreter,
since this test session has long imported torch itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision")

#: a line that lists the heavy packages imported so far, as ``heavy``
LIST_HEAVY = f"heavy = [name for name in {HEAVY!r} if name in sys.modules]"
#: runs the `fsd` command with the given arguments in-process, then prints its exit code and
#: which heavy packages it imported
SCRIPT = f"""
import json, sys
from fsd.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as done:
    code = done.code
{LIST_HEAVY}
print(json.dumps(dict(code=code, heavy=heavy)))
"""


def run_fsd(*args: str) -> tuple[dict, str]:
    """The report of :data:`SCRIPT` for ``fsd ARGS`` and what the command wrote to stderr."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.stdout.strip(), result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.mark.parametrize("args", [("--help",), ("train", "--help"), ("bench", "--help"), ("serve", "--help")])
def test_help_imports_no_torch(args: tuple[str, ...]):
    report, stderr = run_fsd(*args)
    assert report == {"code": 0, "heavy": []}, stderr[-4000:]


def test_a_bad_config_fails_before_torch_is_imported(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: -1\n")
    report, stderr = run_fsd("train", "--config", str(bad), "--baseline", "resnet18_fpn", "--out", str(tmp_path / "x"))
    assert report == {"code": 2, "heavy": []}
    assert "train.lr" in stderr and "Traceback" not in stderr


def test_the_config_module_imports_no_torch():
    code = f"import sys, fsd.config\n{LIST_HEAVY}\nprint(heavy)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr[-4000:]
