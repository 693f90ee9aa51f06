# Quick start:  make demo   (install, synthetic data, search, train, evaluate, export, serve, query)
#               make test   (install, lint, test suite)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo
# test processes: the suite waits on Orthanc, DIMSE peers and quiet times as much as it computes
TEST_WORKERS ?= 2

.PHONY: install test lint demo docker-smoke clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

demo: install
	$(BIN)/fsd demo --config configs/demo.yaml --out $(DEMO_OUT)

docker-smoke: install
	scripts/docker_smoke.sh

clean:
	rm -rf runs .pytest_cache .ruff_cache .hypothesis
