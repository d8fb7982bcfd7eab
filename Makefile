# The README's commands. Each creates .venv when missing and installs the project
# with the versions tested together (constraints.txt), so a fresh machine needs
# nothing but python3.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo study-demo test lint unit integration benchmarks clean browser ssh cluster-rehearsal

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

# The cluster rehearsal (docs/cluster.md) reaches its head over SSH and copies the project
# with rsync: Debian's openssh-server and rsync, installed where root and apt allow (the
# package's default sshd service is not started: the rehearsal starts its own). Otherwise
# the cluster tests are skipped and say why.
ssh:
	@{ [ -x /usr/sbin/sshd ] && command -v rsync >/dev/null 2>&1; } || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get install -y -qq openssh-server rsync >/dev/null 2>&1 \
	      || (apt-get update -qq >/dev/null 2>&1 \
	          && apt-get install -y -qq openssh-server rsync >/dev/null 2>&1)) \
	  || echo "openssh-server or rsync not installed: the cluster tests will be skipped"; }

# The unit tier runs on both cores (pytest-xdist; its tests share nothing but a dataset
# cache per process), then the integration tier and the cluster rehearsal's lean core
# (tests/cluster, its head in its own namespaces) in one process: the integration tests
# share one local Ray, sized to the machine, and several watch wall-clock windows. Run on
# both cores as well (xdist, a file at a time), they took as long: they are CPU-bound.
test: $(STAMP) browser ssh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests/unit -m "not gpu" -n 2
	$(BIN)/python -m pytest tests/integration tests/cluster -m "not gpu and not rehearsal"

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

# The GPU check (BENCHMARKS.md, "The GPU path"): gpu tests and GPU benchmark rows in one
# command; without CUDA it runs the CPU half. gpu-wheels fetches what trainables/ needs and
# a machine with torch but without pydantic lacks (CPython 3.12, x86-64), at the versions in
# constraints.txt, into .gpu-wheels/ (git-ignored), for a machine without a package index.
.PHONY: gpu-wheels gpu-check
gpu-wheels: $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -c constraints.txt -d .gpu-wheels \
	  pydantic pydantic_core annotated-types typing-inspection typing_extensions \
	  pydantic-settings python-dotenv

gpu-check: $(STAMP)
	benchmarks/gpu_check.sh gpu-check

# cluster.yaml run by Ray's own launcher and autoscaler on this machine: `ray up` of the
# head, a submitted sweep, a sweep resumed after `ray up --restart-only`, a study stopped
# and resumed, autoscaling from zero; prints a timeline at the end (docs/cluster.md).
cluster-rehearsal: $(STAMP) ssh
	$(BIN)/python -m pytest tests/cluster -m cluster -p no:cacheprovider

clean:
	rm -rf $(VENV) hmtl-runs .pytest_cache .ruff_cache *.egg-info
