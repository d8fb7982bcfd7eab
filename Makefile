# The README's commands. Each creates .venv when missing and installs the project
# with the versions tested together (constraints.txt), so a fresh machine needs
# nothing but python3.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo study-demo test lint unit integration benchmarks clean browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hmtl sweep quickstart

# A study: baseline vs in-painting at 20% labels, 5 seeds each; prints the report.
study-demo: $(STAMP)
	$(BIN)/hmtl study quickstart_study

# The MLflow UI test renders pages in headless Chromium; where Debian's package can be
# installed (root, apt) it is, otherwise that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get install -y -qq chromium >/dev/null 2>&1 \
	      || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
	  || echo "chromium not installed: the MLflow UI browser test will be skipped"; }

# The unit tier runs on both cores (pytest-xdist; its tests share nothing but a dataset
# cache per process), then the integration tier in one process: its tests share one local
# Ray, sized to the machine, and several watch wall-clock windows.
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests/unit -m "not gpu" -n 2
	$(BIN)/python -m pytest tests/integration -m "not gpu"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The tiers on their own: unit (random tensors, tiny models, no services; about 2 minutes)
# and integration (real local Ray, S3, MLflow; the slow tier's fault injection included).
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not gpu" -n 2

integration: $(STAMP) browser
	$(BIN)/python -m pytest tests/integration -m "not gpu"

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/train_step.py

clean:
	rm -rf $(VENV) hmtl-runs .pytest_cache .ruff_cache *.egg-info
