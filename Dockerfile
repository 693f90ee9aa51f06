# FSD inference server: `docker build -t fsd-serve .` then
#   docker run -p 8000:8000 -e FSD_API_KEY=<16+ chars> fsd-serve            (CPU)
#   docker run --gpus all -p 8000:8000 -e FSD_API_KEY=<key> fsd-serve       (GPU, picked automatically)
#   docker run -p 8000:8000 -p 11112:11112 -e FSD_API_KEY=<key> -e FSD_DICOM_ENABLED=true \
#       -e FSD_DICOM_ALLOWED_CALLING_AE_TITLES='["PACS"]' fsd-serve          (with the DICOM node; docs/pacs.md)
# Works with the legacy builder (DOCKER_BUILDKIT=0): no BuildKit-only syntax.
#
# Build arguments:
#   BASE_IMAGE  a Python 3.11 image with python3 -m venv (default: the public python:3.11-slim-bookworm)
#   MODEL_DIR   exported model (model.ts + model.json) inside the build context, baked into /models/fsd;
#               mounting another model over /models/fsd at run time replaces it
# Optional build inputs in docker/ (builder stage only): extra-ca.crt, wheelhouse/*.whl (docker/README.md).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY docker/ /tmp/docker/
# pip trusts the system CAs plus docker/extra-ca.crt when given (TLS-inspecting proxies); the
# bundle lives in this stage only and is never copied into the final image
RUN cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca-bundle.crt \
    && if [ -f /tmp/docker/extra-ca.crt ]; then cat /tmp/docker/extra-ca.crt >> /tmp/ca-bundle.crt; fi \
    && python3 -m venv /opt/venv
WORKDIR /src
# dependencies first (from pyproject.toml), so editing the code does not reinstall torch
COPY pyproject.toml constraints.txt /src/
RUN if ls /tmp/docker/wheelhouse/*.whl >/dev/null 2>&1; then \
        echo "--no-index --find-links /tmp/docker/wheelhouse" > /tmp/pip-source; \
    else \
        : > /tmp/pip-source; \
    fi; \
    /opt/venv/bin/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/python -m pip install --cert /tmp/ca-bundle.crt $(cat /tmp/pip-source) \
        -c constraints.txt -r /tmp/requirements.txt "setuptools>=68" wheel
# the project itself as a wheel, installed in the final stage (a code change rebuilds only that)
COPY pyproject.toml README* /src/
COPY fsd /src/fsd
COPY search /src/search
COPY service /src/service
RUN test -f README.md || echo "FSD lesion detection" > README.md; \
    /opt/venv/bin/python -m pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dist /src

FROM ${BASE_IMAGE}
ARG MODEL_DIR=runs/demo/export
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FSD_MODEL_DIR=/models/fsd \
    FSD_HOST=0.0.0.0 \
    FSD_PORT=8000
RUN groupadd --system fsd && useradd --system --gid fsd --create-home --home-dir /home/fsd fsd \
    && install -d -o fsd -g fsd -m 0700 /var/lib/fsd
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /tmp/dist/ /tmp/dist/
RUN python -m pip install --no-cache-dir --no-deps --no-index /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && python -c "import service, service.cli, service.http.app"
COPY ${MODEL_DIR}/model.ts ${MODEL_DIR}/model.json /models/fsd/
USER fsd
WORKDIR /home/fsd
# /var/lib/fsd: mount a volume there for the intake and SR spools (FSD_INTAKE_SPOOL_DIR,
# FSD_SR_SPOOL_DIR under it; README), owned by fsd, so a restart loses nothing acknowledged
# 8000: HTTP API; 11112: the DICOM node (C-ECHO / C-STORE SCP), off unless FSD_DICOM_ENABLED=true
EXPOSE 8000 11112
# readiness (model loaded and warmed up); slim images have no curl, so ask Python
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('FSD_PORT', '8000'), timeout=4)"]
# FSD_API_KEY is required (the server refuses to listen on 0.0.0.0 without one), and so is
# FSD_DICOM_ALLOWED_HOSTS with FSD_DICOM_ENABLED=true (no DICOM node open to any host)
ENTRYPOINT ["python", "-m", "service"]
