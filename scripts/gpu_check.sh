#!/usr/bin/env bash
# The GPU figures in one prepared run (issue: "GPU figures"), about 7 minutes on one GPU:
#
#   1. the CUDA-only tests (pytest -m gpu);
#   2. `fsd bench speed` at 3 x 512 x 512 for the demo export and the synth_bench default genotype
#      against torchvision's R50-FPN: batch 1, 8 and 32, fp32 / bf16 / fp16, eager and TorchScript
#      (p50/p99 latency, images/s, peak memory, TFLOP/s against the card's peak), with the
#      per-stage profile;
#   3. the server on loopback with its dynamic batcher, driven by scripts/loadtest.py with 1-slice
#      and 3-slice requests (slices/s, p50/p99), GPU utilisation sampled meanwhile;
#   4. a summary, gpu_check.md.
#
# Usage:  scripts/gpu_check.sh OUT_DIR
#
# Environment:
#   PYTHON         interpreter (default: python3; the device machine's python3 holds its torch)
#   WHEELS         folder of wheels for what that machine lacks (default .whl, made by
#                  scripts/gpu_wheels.sh); installed with --target into /tmp/fsd-site
#   MODEL_DIR      exported model (default runs/demo/export; carry it to the device machine)
#   GPU_CHECK_CPU  1: a short run of the same steps on the CPU (what the tests run), tiny sizes
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
MODEL_DIR=${MODEL_DIR:-runs/demo/export}
CPU=${GPU_CHECK_CPU:-0}
export PYTHONUNBUFFERED=1

log() { printf '\n== %s  (%s)\n' "$*" "$(date +%T)" | tee -a "$OUT/gpu_check.log"; }

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  log "installing $(ls "$WHEELS"/*.whl | wc -l) wheels into /tmp/fsd-site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/fsd-site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/fsd-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if [ "$CPU" = 1 ]; then
  DEVICE=cpu; SIZE=128; BATCHES=1,2; PRECISIONS=fp32; REPEATS=2; WARMUP=1; DURATION=4; CLIENTS=2; SYNTH=64
else
  DEVICE=cuda; SIZE=512; BATCHES=1,8,32; PRECISIONS=fp32,bf16,fp16; REPEATS=30; WARMUP=5; DURATION=45; CLIENTS=32; SYNTH=512
  command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
fi
"$PYTHON" - > "$OUT/environment.json" <<'PY'
import json, platform, torch, torchvision
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
                  "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"}))
PY

log "1/3 CUDA-only tests"
if [ "$CPU" = 1 ]; then
  echo "skipped on the CPU run" > "$OUT/gpu_tests.log"
else
  "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -3 || true
fi

log "2/3 fsd bench speed: demo export, default genotype, R50-FPN"
MODEL_ARG=()
[ -f "$MODEL_DIR/model.ts" ] && MODEL_ARG=(--model "$MODEL_DIR")
"$PYTHON" -m fsd bench speed "${MODEL_ARG[@]}" --size "$SIZE" --batches "$BATCHES" --precisions "$PRECISIONS" \
  --repeats "$REPEATS" --warmup "$WARMUP" --device "$DEVICE" --out "$OUT/speed_demo" 2>&1 | tee -a "$OUT/gpu_check.log"
"$PYTHON" -m fsd bench speed --size "$SIZE" --batches "$BATCHES" --precisions "$PRECISIONS" --no-baseline \
  --repeats "$REPEATS" --warmup "$WARMUP" --device "$DEVICE" --out "$OUT/speed_default" 2>&1 | tee -a "$OUT/gpu_check.log"

log "3/3 the server under load"
PORT=$("$PYTHON" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
KEY="gpu-check-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
SERVE_MODEL=$MODEL_DIR
if [ ! -f "$SERVE_MODEL/model.ts" ]; then
  SERVE_MODEL="$OUT/untrained_export"
  "$PYTHON" - "$SERVE_MODEL" <<'PY'
import sys, torch
from fsd.config import FsdConfig
from fsd.export import export_module
from fsd.models import DetectorConfig, architecture_record, build_detector, default_genotype
config = FsdConfig.model_validate({"task": "types", "preprocess": {"spacing_mm": 1.6, "max_size": 256}})
detector_config = DetectorConfig.from_config(config)
torch.manual_seed(0)
export_module(build_detector(default_genotype(), detector_config), sys.argv[1], architecture=architecture_record(genotype=default_genotype()),
              detector_config=detector_config, preprocess=config.preprocess, task="types", name="untrained", version="0", verify_samples=1)
PY
fi
FSD_API_KEY=$KEY FSD_DEVICE=$DEVICE FSD_MAX_BATCH_SLICES=32 FSD_MAX_WAIT_MS=5 FSD_MAX_QUEUE_SLICES=4096 \
  FSD_MAX_CONCURRENT_REQUESTS=256 FSD_DECODE_WORKERS=8 FSD_LOG_LEVEL=warning \
  "$PYTHON" -m service --model "$SERVE_MODEL" --host 127.0.0.1 --port "$PORT" > "$OUT/server.log" 2>&1 &
SERVER=$!
SAMPLER=""
cleanup() { kill "$SERVER" 2>/dev/null || true; [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 240); do
  "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health/ready', timeout=2)" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { echo "the server exited:"; cat "$OUT/server.log"; exit 1; }
  sleep 0.5
done
if [ "$CPU" != 1 ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 500 > "$OUT/gpu_utilisation.csv" &
  SAMPLER=$!
fi
for SLICES in 1 3; do
  FSD_API_KEY=$KEY "$PYTHON" scripts/loadtest.py --url "http://127.0.0.1:$PORT" --clients "$CLIENTS" --duration "$DURATION" \
    --slices-per-request "$SLICES" --synth-size "$SYNTH" --json "$OUT/loadtest_${SLICES}slice.json" 2>&1 | tee -a "$OUT/gpu_check.log"
done
cleanup
trap - EXIT

"$PYTHON" - "$OUT" <<'PY'
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
lines = ["# GPU check", "", "Environment: `" + (out / "environment.json").read_text().strip() + "`", ""]
for name in ("speed_demo", "speed_default"):
    table = out / name / "speed.md"
    if table.is_file():
        lines += [f"## fsd bench speed ({name.replace('speed_', '')})", "", table.read_text().strip(), ""]
lines += ["## Server under load", "", "| request | slices/s | requests/s | p50 ms | p99 ms | failed |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
for slices in (1, 3):
    report = out / f"loadtest_{slices}slice.json"
    if report.is_file():
        r = json.loads(report.read_text())
        latency = r.get("latency_ms", {})
        lines.append(f"| {slices} slice(s) | {r['throughput_slices_per_s']:.1f} | {r['throughput_rps']:.1f} | {latency.get('p50', float('nan')):.0f} | "
                     f"{latency.get('p99', float('nan')):.0f} | {r['requests_failed'] + r['requests_lost']} |")
samples = out / "gpu_utilisation.csv"
if samples.is_file():
    rows = list(csv.reader(samples.open()))[1:]
    busy = [float(r[1].strip().split()[0]) for r in rows if len(r) > 1 and r[1].strip()]
    if busy:
        lines += ["", f"GPU utilisation during the load test: mean {sum(busy) / len(busy):.0f}%, max {max(busy):.0f}% ({len(busy)} samples)."]
tests = (out / "gpu_tests.log").read_text().strip().splitlines()
lines += ["", "CUDA-only tests: " + (tests[-1] if tests else "no output")]
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print((out / "gpu_check.md").read_text())
PY
