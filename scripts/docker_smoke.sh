#!/usr/bin/env bash
# Docker smoke test: build the image, run it with an API key, wait until it is ready (and until
# Docker's HEALTHCHECK says healthy), POST a synthetic CT series, check the answer (200, one
# result per slice, the documented schema, a DICOM SR on request, 401 without the key), check
# that it runs as non-root, refuses to start without a key and refuses a DICOM node open to any
# host, C-ECHO its DICOM node (allowed from the Docker bridge gateway, where published-port
# connections come from); STOW-RS a study into the intake spool on a volume (as the README
# deploys it), kill the container (SIGKILL) before the study is analysed, start a new one on the
# same volume and read the study's SR back by WADO-RS; then stop it with SIGTERM and expect a
# clean exit.
#
# Environment:
#   MODEL_DIR    exported model to bake in (default runs/demo/export, from `make demo`). When it
#                holds no model, an UNTRAINED model is exported to runs/docker-smoke/export
#                instead: the run then checks plumbing only, its detections are meaningless.
#   BASE_IMAGE   Dockerfile base image; default: the Dockerfile's public python:3.11-slim-bookworm,
#                or local/python:3.11-bookworm when only that one is present (machines that cannot
#                pull; see /work/shared/tools/docker-local-base.sh on the team's machines).
#   USE_WHEELHOUSE=1 (default) fills docker/wheelhouse from this machine's pip when it is empty,
#                so the build needs no network; 0 lets pip in the build use its index.
#   IMAGE (fsd-serve:smoke), PORT (18080), DICOM_PORT (18112), PYTHON (.venv/bin/python),
#   KEEP_IMAGE=1 to keep it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
IMAGE=${IMAGE:-fsd-serve:smoke}
PORT=${PORT:-18080}
DICOM_PORT=${DICOM_PORT:-18112}
MODEL_DIR=${MODEL_DIR:-runs/demo/export}
USE_WHEELHOUSE=${USE_WHEELHOUSE:-1}
NAME="fsd-smoke-$$"
VOLUME="fsd-smoke-spool-$$"
KEY="smoke-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
WORK=$(mktemp -d)

log() { printf '\n== %s\n' "$*"; }
cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  [ "${KEEP_IMAGE:-0}" = 1 ] || docker image rm -f "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

docker info >/dev/null 2>&1 || { echo "error: the Docker engine is not running (start dockerd first)" >&2; exit 1; }

if [ ! -f "$MODEL_DIR/model.ts" ] || [ ! -f "$MODEL_DIR/model.json" ]; then
  MODEL_DIR=runs/docker-smoke/export
  log "no exported model given: exporting an UNTRAINED model to $MODEL_DIR (detections will be meaningless)"
  "$PYTHON" - "$MODEL_DIR" <<'PY'
import sys, torch
from fsd.config import FsdConfig
from fsd.export import export_module
from fsd.models import DetectorConfig, architecture_record, build_detector, default_genotype
config = FsdConfig.model_validate({"task": "types", "preprocess": {"spacing_mm": 1.6, "max_size": 256},
                                  "model": {"roi": {"score_thresh": 0.05}}})
detector_config = DetectorConfig.from_config(config)
torch.manual_seed(0)
export_module(build_detector(default_genotype(), detector_config), sys.argv[1],
              architecture=architecture_record(genotype=default_genotype()), detector_config=detector_config,
              preprocess=config.preprocess, task="types", name="untrained-smoke", version="0", verify_samples=1)
PY
fi

if [ -z "${BASE_IMAGE:-}" ] && ! docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
   && docker image inspect local/python:3.11-bookworm >/dev/null 2>&1; then
  BASE_IMAGE=local/python:3.11-bookworm
  log "python:3.11-slim-bookworm is not present here; building on $BASE_IMAGE"
fi

if [ "$USE_WHEELHOUSE" = 1 ] && ! ls docker/wheelhouse/*.whl >/dev/null 2>&1; then
  log "filling docker/wheelhouse from this machine's pip (one-off)"
  "$PYTHON" -m pip wheel --quiet --wheel-dir docker/wheelhouse -c constraints.txt . "setuptools>=68" wheel
  rm -f docker/wheelhouse/fsd_lesion-*.whl
fi

log "building $IMAGE (model: $MODEL_DIR)"
DOCKER_BUILDKIT=0 docker build --quiet -t "$IMAGE" --build-arg MODEL_DIR="$MODEL_DIR" \
  ${BASE_IMAGE:+--build-arg BASE_IMAGE="$BASE_IMAGE"} . >/dev/null
docker image ls "$IMAGE" --format '{{.Repository}}:{{.Tag}} {{.Size}}'

log "without an API key the container refuses to start"
set +e
refusal=$(docker run --rm "$IMAGE" 2>&1); status=$?
set -e
[ "$status" = 2 ] && grep -q "without an API key" <<<"$refusal" \
  || { echo "expected exit 2 and a message, got $status: $refusal" >&2; exit 1; }

log "a DICOM node on 0.0.0.0 open to any host is refused too"
set +e
refusal=$(docker run --rm -e FSD_API_KEY="$KEY" -e FSD_DICOM_ENABLED=true \
  -e FSD_DICOM_ALLOWED_CALLING_AE_TITLES='["SMOKE"]' "$IMAGE" 2>&1); status=$?
set -e
[ "$status" = 2 ] && grep -q "dicom_allowed_hosts" <<<"$refusal" \
  || { echo "expected exit 2 and a message, got $status: $refusal" >&2; exit 1; }

# connections to a published port reach the container from the bridge's gateway address
GATEWAY=$(docker run --rm --entrypoint python "$IMAGE" -c "import socket, struct
routes = [line.split() for line in open('/proc/net/route').readlines()[1:]]
print(next(socket.inet_ntoa(struct.pack('<L', int(r[2], 16))) for r in routes if r[1] == '00000000'))")
echo "DICOM node allowed from the Docker gateway $GATEWAY"

start_server() {
  docker run -d --name "$NAME" -p "127.0.0.1:$PORT:8000" -p "127.0.0.1:$DICOM_PORT:11112" -e FSD_API_KEY="$KEY" \
    -e FSD_DICOM_ENABLED=true -e FSD_DICOM_ALLOWED_CALLING_AE_TITLES='["SMOKE"]' \
    -e FSD_DICOM_ALLOWED_HOSTS="[\"$GATEWAY\"]" -v "$VOLUME:/var/lib/fsd" \
    -e FSD_INTAKE_SPOOL_DIR=/var/lib/fsd/intake -e FSD_STOW_STUDY_QUIET_S=600 "$IMAGE" >/dev/null
  [ "$(docker exec "$NAME" id -u)" != 0 ] || { echo "the server runs as root" >&2; exit 1; }
  for _ in $(seq 300); do
    "$PYTHON" -c "import sys, httpx; sys.exit(httpx.get('$URL/health/ready', timeout=2).status_code != 200)" 2>/dev/null && break
    [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || { docker logs "$NAME"; echo "the container stopped" >&2; exit 1; }
    sleep 1
  done
  for _ in $(seq 60); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ] && break
    sleep 1
  done
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ] || { echo "HEALTHCHECK never passed" >&2; exit 1; }
  echo "ready and healthy"
}

log "starting the server (intake spool on the volume $VOLUME)"
URL="http://127.0.0.1:$PORT"
docker volume create "$VOLUME" >/dev/null
start_server

log "posting a synthetic CT series"
FSD_API_KEY="$KEY" "$PYTHON" - "$URL" "$WORK" <<'PY'
import io, os, sys
from pathlib import Path
import httpx, pydicom
from fsd.data.synth import generate_dataset
from service.http.schemas import DetectResponse

url, work = sys.argv[1], Path(sys.argv[2])
generate_dataset(work / "synth", patients=1, size=128, seed=0, dicom=True, progress=False)
series = sorted((work / "synth" / "dicom").glob("*/*.dcm"))
files = series[len(series) // 2 - 2 : len(series) // 2 + 3]
upload = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in files]
key = {"X-API-Key": os.environ["FSD_API_KEY"]}
with httpx.Client(base_url=url, timeout=300) as client:
    denied = client.post("/v1/detect", files=upload)
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized", denied.text
    response = client.post("/v1/detect", files=upload, headers=key)
    assert response.status_code == 200, response.text
    body = DetectResponse.model_validate(response.json())
    assert len(body.results) == len(files), "one result per slice"
    sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}
    assert {r.sop_instance_uid for r in body.results} == sent
    sr = client.post("/v1/detect", files=upload, headers={**key, "Accept": "application/dicom"})
    assert sr.status_code == 200 and sr.headers["content-type"] == "application/dicom", sr.text[:200]
    assert pydicom.dcmread(io.BytesIO(sr.content)).Modality == "SR"
    card = client.get("/v1/model", headers=key).json()
    metrics = client.get("/metrics").text
    assert 'fsd_http_requests_total{method="POST",route="/v1/detect",status="200"} 2.0' in metrics
count = sum(len(r.detections) for r in body.results)
print(f"model {card['name']} {card['version']}: {len(body.results)} slices, {count} detections, "
      f"timing {body.timing_ms}")
PY

log "C-ECHO against the DICOM node"
"$PYTHON" - "$DICOM_PORT" <<'PY'
import sys
from pynetdicom import AE
from pynetdicom.sop_class import Verification

def echo(calling: str) -> int | None:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title="FSD")
    if not association.is_established:
        return None
    status = association.send_c_echo()
    association.release()
    return int(status.Status) if status else None

assert echo("SMOKE") == 0x0000, "C-ECHO from an allowed AE title failed"
assert echo("STRANGER") is None, "an unknown calling AE title was accepted"
print("C-ECHO answered 0x0000; unknown AE title refused")
PY

log "STOW-RS a study, kill the container before its analysis, start a new one on the same volume"
STUDY=$(FSD_API_KEY="$KEY" "$PYTHON" - "$URL" "$WORK" <<'PY'
import os, sys, uuid
from pathlib import Path
import httpx, pydicom
url, work = sys.argv[1], Path(sys.argv[2])
files = sorted((work / "synth" / "dicom").glob("*/*.dcm"))[:5]
boundary = uuid.uuid4().hex
body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes() + b"\r\n" for p in files)
body += f"--{boundary}--\r\n".encode()
headers = {"X-API-Key": os.environ["FSD_API_KEY"], "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
answer = httpx.post(f"{url}/v1/studies", content=body, headers=headers, timeout=120)
assert answer.status_code == 200, answer.text
print(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
PY
)
docker kill --signal KILL "$NAME" >/dev/null
docker rm -f "$NAME" >/dev/null
start_server
FSD_API_KEY="$KEY" "$PYTHON" - "$URL" "$STUDY" <<'PY'
import os, sys, time
import httpx
url, study = sys.argv[1], sys.argv[2]
key = {"X-API-Key": os.environ["FSD_API_KEY"]}
deadline = time.monotonic() + 180
while (answer := httpx.get(f"{url}/v1/studies/{study}", headers=key, timeout=30)).status_code != 200:
    assert answer.status_code == 404 and time.monotonic() < deadline, answer.text[:300]
    time.sleep(1)
metrics = httpx.get(f"{url}/metrics").text
assert "fsd_studies_resumed_total 1.0" in metrics, "the study came back from the intake spool"
print("the study acknowledged before the kill was analysed after the restart; its SR is served by WADO-RS")
PY

log "stopping with SIGTERM"
docker stop --time 60 "$NAME" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || { docker logs "$NAME" | tail -20; echo "the server exited with $code" >&2; exit 1; }
docker logs "$NAME" 2>&1 | grep -q "queue drained" || { docker logs "$NAME" | tail -20; echo "no drain on shutdown" >&2; exit 1; }
log "docker smoke test passed"
