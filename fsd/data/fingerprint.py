"""What data a result came from: a fingerprint of a DeepLesion-layout folder.

The SHA-256 of its DL_info.csv (every annotation, split and type) and, for a synthetic set, how it
was generated (generator version, patients, size, seed, type_all, from ``synth_info.json``), so a
result file says which data it measured and two results can be checked to share their data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fsd.data.synth.generate import MARKER


def data_fingerprint(root: str | Path) -> dict[str, Any]:
    """``{"root", "dl_info_sha256", "synthetic"}``; ``synthetic`` is the generator's version and
    arguments, or None for data not made by the generator."""
    root = Path(root)
    digest = hashlib.sha256((root / "DL_info.csv").read_bytes()).hexdigest()
    synthetic = None
    marker = root / MARKER
    if marker.is_file():
        info = json.loads(marker.read_text())
        synthetic = {"version": info.get("version"), **{k: v for k, v in info.get("arguments", {}).items() if k != "dicom"}}
    return {"root": str(root), "dl_info_sha256": digest, "synthetic": synthetic}
