#!/usr/bin/env bash
# Wheels for what the GPU machine lacks (it has torch, torchvision, numpy, typer, httpx, rich,
# prometheus-client, pytest, ... but not pydantic, pydicom, fastapi, ...), for its Python 3.12:
# downloaded into .whl/ (git-ignored through .git/info/exclude), which scripts/gpu_check.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# the versions the test suite runs with here (pip list of .venv)
PACKAGES=(
  "pydantic==2.14.4" "pydantic-core==2.50.5" "annotated-types==0.8.0" "typing-inspection==0.4.5"
  "typing-extensions==4.16.0" "pydantic-settings==2.16.3" "python-dotenv==1.2.4"
  "pydicom==3.0.2" "pycocotools==2.0.11" "highdicom==0.28.2" "pyjpegls==1.5.1" "pynetdicom==3.0.4"
  "fastapi==0.165.0" "starlette==1.10.0" "opentelemetry-api==1.45.2" "uvicorn==0.54.0"
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "${PACKAGES[@]}"
ls -1 .whl
