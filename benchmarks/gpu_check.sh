#!/usr/bin/env bash
# The GPU path in one command: the `gpu` tests, then the GPU rows of the benchmarks
# (training step with MFU, pool scoring, mining's model pass, each against its CPU row),
# then one JSON and one Markdown table under OUT.
#
#   benchmarks/gpu_check.sh [OUT]        (OUT defaults to gpu-check/)
#
# Without CUDA it says so in one line, runs the CPU half (the same scripts on the CPU with
# small sizes, and the torch.compile fallback check) and exits 0. Sized to finish in under
# 8 minutes on one H100 or H200. Exits 1 when a test or a benchmark failed (the report is
# written from whatever finished).
#
# The device machine has torch but neither pydantic nor the project installed: the script
# runs from the checkout (hmtl/ finds the folders beside it) and, when trainables cannot be
# imported, installs the wheels `make gpu-wheels` put in .gpu-wheels/ (pydantic and what it
# needs) into a temporary folder. Ray, MLflow and Optuna are not needed: only trainables/
# runs here.
set -uo pipefail

began=$(date +%s)
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-gpu-check}" && cd "${1:-gpu-check}" && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

# What the check imports: trainables' training step, active learning and mining.
needs="import hmtl.trainables.train, hmtl.trainables.active.registry, hmtl.trainables.mining.primitive"
if ! "$python" -c "$needs" 2>/dev/null; then
  if ! ls .gpu-wheels/*.whl >/dev/null 2>&1; then
    echo "hmtl: error: trainables cannot be imported here and .gpu-wheels/ holds no wheels" \
      "(run make gpu-wheels where pip reaches an index)" >&2
    exit 2
  fi
  site="$(mktemp -d)"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    .gpu-wheels/*.whl || exit 2
  export PYTHONPATH="$site:$PYTHONPATH"
  if ! problem="$("$python" -c "$needs" 2>&1)"; then
    echo "hmtl: error: trainables cannot be imported: $(echo "$problem" | tail -n 1)" >&2
    exit 2
  fi
fi

status=0
if "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  "$python" -c "import torch; print('CUDA:', torch.cuda.get_device_name(), '| torch', torch.__version__)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
  # The gpu tests: every test file that carries the marker (unit tests of trainables only).
  mapfile -t files < <(grep -rlE "pytest\.mark\.gpu|gpu = pytest\.mark" tests/unit/trainables)
  "$python" -m pytest -m gpu -q -p no:cacheprovider "${files[@]}" 2>&1 | tee "$out/gpu_tests.log" \
    || status=1
  tail -n 1 "$out/gpu_tests.log" >"$out/gpu_tests.txt"
  "$python" benchmarks/gpu_train_step.py --out "$out" || status=1
  "$python" benchmarks/gpu_consumers.py --out "$out" || status=1
else
  echo "no CUDA device here: the GPU half is skipped; running the CPU half"
  "$python" benchmarks/gpu_train_step.py --out "$out" --device cpu || status=1
  "$python" benchmarks/gpu_consumers.py --out "$out" --device cpu || status=1
fi
"$python" benchmarks/gpu_report.py "$out" || status=1
echo "gpu_check: $(($(date +%s) - began)) s; results in $out/gpu_check.json and $out/gpu_check.md"
exit "$status"
