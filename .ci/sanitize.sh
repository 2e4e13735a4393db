#!/usr/bin/env bash
# The sanitizer job: builds the extension once with AddressSanitizer and UndefinedBehaviorSanitizer
# (-DFASTADAM_SANITIZE=ON: every C++ file, each ISA's kernel included) into a throwaway folder,
# runs the kernel, validation and optimizer tests against that build, and fails on any test
# failure or any sanitizer report, including reports from the Python subprocesses tests start.
#
#   .ci/sanitize.sh     # Python: $PYTHON, else python; it needs the test extra (.[test]) installed
#   .ci/sanitize.sh -x --durations=10    # arguments go to pytest
#   SANITIZE_BUILD_DIR=build/sanitize .ci/sanitize.sh   # keep the build for an incremental rebuild
#                       # (then without build isolation: scikit-build-core, pybind11, cmake, ninja
#                       # must be installed in that environment)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/fastadam-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT
site="$work/site"     # the sanitized package, first on the tests' import path
reports="$work/reports"
mkdir -p "$reports"

# RelWithDebInfo and no strip on install: pybind11 strips the module in a Release build, and the
# reports would lose their function names and line numbers.
build_args=(-Ccmake.define.FASTADAM_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo
  -Cinstall.strip=false)
if [ -n "${SANITIZE_BUILD_DIR:-}" ]; then
  # A fresh isolated build environment would make scikit-build-core start the build over.
  build_args+=(--no-build-isolation "-Cbuild-dir=$SANITIZE_BUILD_DIR")
else
  build_args+=("-Cbuild-dir=$work/build")
fi
echo "sanitize: building with -fsanitize=address,undefined"
"$PY" -m pip install --quiet --no-deps --target "$site" "${build_args[@]}" .
built=$(date +%s)

# The sanitizer runtimes of the compiler that built the module. The Python interpreter is not
# instrumented, so the ASan runtime must be preloaded (it has to come first); libstdc++ is
# preloaded with it, otherwise ASan cannot find the real __cxa_throw when the module throws its
# first C++ exception and aborts there.
cxx=${CXX:-c++}
asan_runtime=$("$cxx" -print-file-name=libasan.so)
cxx_runtime=$("$cxx" -print-file-name=libstdc++.so)
for runtime in "$asan_runtime" "$cxx_runtime"; do
  if [ ! -e "$runtime" ]; then
    echo "sanitize: $cxx does not know where $runtime is (a GCC toolchain is needed)"
    exit 1
  fi
done

# The tests must import this build, and it must be instrumented (else the job would pass vacuously).
package=$(PYTHONPATH="$site" "$PY" -c 'import importlib.util as u; print(u.find_spec("fastadam").origin)')
if [ "$package" != "$site/fastadam/__init__.py" ]; then
  echo "sanitize: the tests would import $package, not the sanitized build"
  exit 1
fi
module=$(echo "$site"/fastadam/_core*.so)
if ! grep -q __asan_report "$module" || ! grep -q __ubsan_handle "$module"; then
  echo "sanitize: $module has no ASan/UBSan instrumentation"
  exit 1
fi

# The tests that run the native code: every ISA path (the isa fixture), thread counts, every
# dtype and optimizer, bad input (the validation must reject it before any read or write), and
# the process-life cases (interpreter exit while threads step, fork, refused threads); their
# torch cross-checks run too where torch is installed. Left out: the files of torch, MPI, CUDA,
# example and C++-build tests (other builds or other native libraries, and most of the suite's
# time) and the benchmarks.
tests=(
  tests/test_kernel.py
  tests/test_validation.py
  tests/test_optim.py
  tests/test_optim_trust.py
  tests/test_step_sets.py
  tests/test_mixed.py
  tests/test_sgd_adagrad.py
  tests/test_family.py
  tests/test_eps_mode.py
  tests/test_lowbit.py
  tests/test_lowbit_optim.py
  tests/test_swats.py
  tests/test_state_memory.py
  tests/test_properties.py
  tests/test_process_life.py
)

# Left out as too slow here: it starts 20 interpreters and kills each mid-save, a test of the
# checkpoint file's atomicity (Python code) that took 143 s alone under ASan on a busy machine.
skip=(--deselect tests/test_optim_trust.py::test_kill_during_save_leaves_a_loadable_checkpoint)

# Leak detection is off: the Python interpreter keeps its objects alive until exit on purpose,
# and those would be reported as leaks that are not the module's. Every report stops the process
# that made it (abort_on_error, -fno-sanitize-recover), so a report in a test's subprocess fails
# that test, since each such test checks its children's exit status.
# ASan writes its reports to files in $reports (log_path), from any process. UBSan, beside ASan
# in GCC's runtimes, ignores log_path and writes to the process's stderr: --capture=sys leaves
# that stderr (pytest's own and its children's, where a test does not capture it) in this job's
# output, which is kept and searched for reports.
output="$work/pytest.log"
set +e
env PYTHONPATH="$site" LD_PRELOAD="$asan_runtime $cxx_runtime" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$reports/asan" \
  UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1" \
  "$PY" -m pytest -q -p no:cacheprovider --capture=sys "${tests[@]}" "${skip[@]}" "$@" 2>&1 |
  tee "$output"
status=${PIPESTATUS[0]}
set -e
end=$(date +%s)

for report in "$reports"/*; do
  [ -e "$report" ] || continue
  echo "=== sanitizer report: $(basename "$report")"
  cat "$report"
  status=1
done
if grep -q -E ':[0-9]+:[0-9]+: runtime error: |ERROR: AddressSanitizer' "$output"; then
  echo "=== a sanitizer report is in the test output above"
  status=1
fi
echo "sanitize: build $((built - start)) s, tests $((end - built)) s"
if [ "$status" -ne 0 ]; then
  echo "sanitize: FAILED (the tests' exit status, or the sanitizer reports above)"
  exit 1
fi
echo "sanitize: passed, no sanitizer reports"
