#!/usr/bin/env bash
# The GPU run on a bare GPU machine with no network:
#
#   tools/gpu-run.sh OUT_DIR [softmax-bench gpu-run options, e.g. --name gpu-h200 --budget 300]
#
# Installs this checkout (editable, no index, no dependencies: the machine's
# own torch, triton, jax and cupy are used) plus any wheels carried in .whl/
# (gmpy2, liger-kernel; WHEELS names another folder), says what is installed, then runs
# softmax-bench gpu-run with its results files and a log under OUT_DIR.
# PYTHON picks the interpreter (default python3); SOFTMAX_BENCH_COMMIT names
# the commit when the copy has no .git.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/gpu-run.sh OUT_DIR [gpu-run options]}
shift
mkdir -p "$out"
py=${PYTHON:-python3}
exec > >(tee -a "$out/gpu-run.log") 2>&1
SECONDS=0
shopt -s nullglob
wheels=("${WHEELS:-.whl}"/*.whl)
"$py" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile "${wheels[@]}" -e . \
    || { echo "gpu-run: install failed"; exit 3; }
echo "gpu-run: installed in ${SECONDS} s: this checkout ${wheels[*]}"
"$py" - <<'PY'
import importlib.metadata as m
for name in ("softmax-bench", "torch", "triton", "jax", "jaxlib", "cupy-cuda13x", "cupy-cuda12x", "numpy", "liger-kernel", "gmpy2", "numba"):
    try:
        print(f"  {name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"  {name} (not installed)")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || true
"$py" -m softmax_bench list
"$py" -m softmax_bench gpu-run --out-dir "$out" "$@"
