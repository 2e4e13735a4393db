#!/usr/bin/env bash
# Builds the optional CUDA module (fastadam._cuda, -DFASTADAM_CUDA=ON) from this checkout in a
# throwaway directory, and fails if that build fails. Skips (exit 0) when nvcc is not on PATH.
# Prints ptxas's register and spill counts per kernel and architecture, then loads the module:
# without a GPU it must import and report "not available", never crash.
#
#   .ci/cuda_build.sh            # Python: $PYTHON, else python3 (needs pybind11 installed)
#   CUDAARCHS=90 .ci/cuda_build.sh   # fewer architectures for a quicker check
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null 2>&1; then
  echo "cuda_build: nvcc is not on PATH; skipping the CUDA build"
  exit 0
fi
PY=${PYTHON:-python3}
nvcc --version | tail -n 2
pybind11_dir=$("$PY" -m pybind11 --cmakedir)

build=$(mktemp -d "${TMPDIR:-/tmp}/fastadam-cuda-ci.XXXXXX")
trap 'rm -rf "$build"' EXIT
log="$build/build.log"

start=$(date +%s)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASTADAM_CUDA=ON -DFASTADAM_PYTHON=ON \
  -DPython_EXECUTABLE="$(command -v "$PY")" -Dpybind11_DIR="$pybind11_dir" \
  >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; echo "cuda_build: CMake configure FAILED"; exit 1; }
# Only the CUDA targets: the CPU library is built and tested by the main CI steps.
if ! cmake --build "$build" --target _cuda -j "$(nproc 2>/dev/null || echo 2)" >"$log" 2>&1; then
  cat "$log"
  echo "cuda_build: the CUDA build FAILED"
  exit 1
fi
echo "cuda_build: built fastadam._cuda in $(($(date +%s) - start)) s"

"$PY" - "$log" <<'PYEOF'
import re, sys
kernel = None
rows = []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"Compiling entry function '(\S+)' for '(sm_\d+)'", line)
    if m:
        k = re.search(r"adam_kernelI([fd])Lb([01])E", m[1])
        name = f"adam_kernel<{'float' if k[1] == 'f' else 'double'}, amsgrad={k[2]}>" if k else m[1]
        kernel, arch, spill = name, m[2], "?"
        continue
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and kernel:
        spill = f"spill stores {m[1]} B, spill loads {m[2]} B"
        continue
    m = re.search(r"Used (\d+) registers", line)
    if m and kernel:
        rows.append(f"  {kernel:<30} {arch:<7} {m[1]:>3} registers, {spill}")
        kernel = None
print("ptxas register and spill counts:")
print("\n".join(rows) if rows else "  (none found: was -Xptxas=-v dropped?)")
sys.exit(0 if rows else 1)
PYEOF

"$PY" - "$build" <<'PYEOF'
import glob, importlib.util, sys
path = glob.glob(sys.argv[1] + "/_cuda*.so") + glob.glob(sys.argv[1] + "/_cuda*.pyd")
spec = importlib.util.spec_from_file_location("_cuda", path[0])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
reason = module.unavailable_reason()
print(f"fastadam._cuda loads: architectures {module.architectures}, CUDA runtime "
      f"{module.runtime_version()}, devices {module.device_count()}"
      f" ({reason or 'available'})")
PYEOF
