"""Runtime configuration: ISA selection, thread count, the environment variables read at import
(in fresh interpreters), and the thread pool's life cycle."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastadam

# A fresh interpreter imports numpy and fastadam in well under a second; a hang shows as a
# timeout (the child is killed) instead of blocking the suite.
SUBPROCESS_TIMEOUT_S = 10


def run_python(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTADAM_")}
    env.update(env_vars)
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        hung = True
    if hung:
        pytest.fail(f"the interpreter hung (> {SUBPROCESS_TIMEOUT_S} s) running:\n{code}")


def test_available_isas():
    isas = fastadam.available_isas()
    assert isas[-1] == "scalar", "the portable path is always available, and last"
    assert len(set(isas)) == len(isas)
    assert set(isas) <= {"avx512bf16", "avx512", "avx2", "neon", "scalar"}
    assert fastadam.get_isa() in isas


def test_set_isa_switches_and_round_trips(isa):
    assert fastadam.get_isa() == isa


def test_default_isa_is_the_best_available():
    result = run_python("import fastadam; print(fastadam.get_isa(), *fastadam.available_isas())")
    assert result.returncode == 0, result.stderr
    active, best, *_ = result.stdout.split()
    assert active == best


@pytest.mark.parametrize("name", fastadam.available_isas())
def test_fastadam_isa_env_forces_a_path(name):
    result = run_python("import fastadam; print(fastadam.get_isa())", FASTADAM_ISA=name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


@pytest.mark.parametrize(
    "value",
    ["bogus", "AVX2"]
    + sorted({"avx512bf16", "avx512", "avx2", "neon"} - set(fastadam.available_isas())),
)
def test_fastadam_isa_env_rejects_unknown_or_unsupported(value):
    result = run_python("import fastadam", FASTADAM_ISA=value)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "FASTADAM_ISA" in result.stderr and value in result.stderr


def test_fastadam_num_threads_env_sets_the_default():
    result = run_python(
        "import fastadam; print(fastadam.get_num_threads(), fastadam._core.default_num_threads())",
        FASTADAM_NUM_THREADS="3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "3"]


@pytest.mark.parametrize(
    "value", ["abc", "0", "1025", "2x", "-1", "+2", "1.5", "99999999999999999999"]
)
def test_fastadam_num_threads_env_is_checked_at_import(value):
    """A bad value is an ImportError naming the variable, not an error at the first large step
    (where it used to surface, possibly after part of a multi-dtype step had been written)."""
    result = run_python("import fastadam", FASTADAM_NUM_THREADS=value)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "FASTADAM_NUM_THREADS" in result.stderr and value in result.stderr


@pytest.mark.parametrize(
    "spaces", [" {} ", "\t{}\n", "{}  "], ids=["spaces", "tab-newline", "trailing"]
)
def test_environment_variables_ignore_surrounding_whitespace(spaces):
    """One rule for both variables: surrounding whitespace is ignored."""
    code = "import fastadam; print(fastadam.get_isa(), fastadam.get_num_threads())"
    result = run_python(
        code, FASTADAM_ISA=spaces.format("scalar"), FASTADAM_NUM_THREADS=spaces.format("3")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["scalar", "3"]


@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "blank"])
def test_empty_environment_variables_count_as_unset(value):
    code = "import fastadam; print(fastadam.get_isa(), fastadam._core.default_num_threads())"
    unset = run_python(code)
    blank = run_python(code, FASTADAM_ISA=value, FASTADAM_NUM_THREADS=value)
    assert unset.returncode == 0 and blank.returncode == 0, unset.stderr + blank.stderr
    assert blank.stdout == unset.stdout


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_default_threads_follow_the_affinity_mask():
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "import fastadam; print(fastadam._core.default_num_threads(), fastadam.get_num_threads())"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]


def test_default_threads_without_env_are_the_usable_cpus():
    if hasattr(os, "sched_getaffinity"):
        expected = len(os.sched_getaffinity(0))
    else:
        expected = os.cpu_count()
    result = run_python("import fastadam; print(fastadam._core.default_num_threads())")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == expected


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_set_num_threads_round_trips(threads, n):
    threads(n)
    assert fastadam.get_num_threads() == n


def test_parallel_threshold_is_exposed():
    assert isinstance(fastadam._core.parallel_threshold, int)
    assert fastadam._core.parallel_threshold > 0


# The thread pool's start-up. A worker thread reads the pool's generation counter for the first
# time only once it runs (cpp/src/thread_pool.cpp, worker_loop: `seen = generation_.load()`), so a
# run() published before the worker got there is never seen by it: the caller spins forever on
# `pending_`, and a pool destroyed before its workers started never joins them. The first parallel
# call of a process creates the pool and runs at once, which hits this. These tests run in fresh
# interpreters so that a hang is a failure, not a stuck suite.

FIRST_PARALLEL_CALLS = """
import numpy as np, fastadam
n = 3 * 2**15 + 5  # above parallel_threshold
p, g, m, v = (np.ones(n, np.float32) for _ in range(4))
fastadam.adam_step(p, g, m, v, step=1)  # creates the default pool and uses it at once
for k in range(20):
    fastadam.set_num_threads(2 + k % 3)  # a new pool each time, used at once
    fastadam.adam_step(p, g, m, v, step=k + 2)
print("done")
"""


def test_first_parallel_call_after_new_pool_completes():
    result = run_python(FIRST_PARALLEL_CALLS, FASTADAM_NUM_THREADS="2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


def test_replacing_the_pool_quickly_does_not_hang():
    code = """
import fastadam
for k in range(200):
    fastadam.set_num_threads(3 + k % 2)  # each new pool is destroyed right away
print("done")
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


def test_parallel_call_matches_single_thread_in_fresh_process():
    """The environment variable route to several threads gives the same bytes as one thread."""
    code = """
import sys, time, numpy as np, fastadam
fastadam.get_num_threads(); time.sleep(0.2)  # let the pool's workers start (see above)
rng = np.random.default_rng(1)
n = 3 * 2**15 + 5
p, g, m = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
v = rng.random(n).astype(np.float32) + 0.01
fastadam.adam_step(p, g, m, v, step=3)
sys.stdout.write(np.concatenate([p, m, v]).tobytes().hex())
"""
    outputs = {n: run_python(code, FASTADAM_NUM_THREADS=str(n)) for n in ("1", "3")}
    for result in outputs.values():
        assert result.returncode == 0, result.stderr
    assert outputs["1"].stdout == outputs["3"].stdout


def test_show_config_names_the_active_isa(capsys):
    fastadam.show_config()
    out = capsys.readouterr().out
    assert fastadam.get_isa() in out
    for name in fastadam.available_isas():
        assert name in out


def test_import_keeps_numpy_arrays_intact():
    """Importing never converts or touches user arrays (a smoke test of the module's state)."""
    a = np.arange(5, dtype=np.float32)
    fastadam.get_isa()
    np.testing.assert_array_equal(a, np.arange(5, dtype=np.float32))


def test_concurrent_calls_from_python_threads_are_correct():
    """The GIL is released around the kernel: steps from several Python threads at once share
    the pool (one call at a time) and each gets exactly its own update."""
    import threading

    rng = np.random.default_rng(7)
    n = 3 * fastadam._core.parallel_threshold + 5
    jobs = []
    for _ in range(4):
        p, g, m = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
        v = rng.random(n, dtype=np.float32)
        expected = [a.copy() for a in (p, g, m, v)]
        for t in range(1, 6):
            fastadam.adam_step(*expected, step=t, lr=1e-2)
        jobs.append(((p, g, m, v), expected))

    def run(arrays):
        for t in range(1, 6):
            fastadam.adam_step(*arrays, step=t, lr=1e-2)

    threads = [threading.Thread(target=run, args=(arrays,)) for arrays, _ in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for arrays, expected in jobs:
        for got, want in zip(arrays, expected):
            assert np.array_equal(got, want)


def test_cuda_attribute_is_lazy_and_light():
    # `fastadam.cuda.is_available()` works after a bare `import fastadam`; the import of
    # fastadam.cuda happens on that first use and brings in nothing beyond fastadam's own
    # modules (no torch, CuPy or Numba probing, nothing else heavy).
    code = (
        "import sys, fastadam\n"
        "assert 'fastadam.cuda' not in sys.modules, 'fastadam.cuda imported eagerly'\n"
        "before = set(sys.modules)\n"
        "available = fastadam.cuda.is_available()\n"
        "assert isinstance(available, bool)\n"
        "assert fastadam.cuda.unavailable_reason() is None if available else True\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(available, new)\n"
        "assert set(new) <= {'fastadam.cuda', 'fastadam._cuda'}, new\n"
        "assert 'cuda' in dir(fastadam)\n"
        "from fastadam import cuda\n"
        "assert cuda is fastadam.cuda\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "'fastadam.cuda'" in result.stdout
