"""The process around the kernels: interpreter exit while daemon threads still step, fork (os.fork
and multiprocessing) with the thread pool running, and multi-dtype steps that stay all or
nothing when the worker threads cannot start.

Every case runs in a fresh interpreter under a timeout, so that a hang fails the test instead of
blocking the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

# Generous: the machines that run the suite are often shared; a hang is far longer.
TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")


def run_python(code: str, env_vars: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTADAM_")}
    env.update(env_vars or {})
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the interpreter hung (> {TIMEOUT_S} s); output so far: {exc.stdout!r}")


# --- exit with daemon threads still stepping -------------------------------------------------
# CPython (3.8-3.13) ends a daemon thread that tries to take the GIL back after finalization
# began with pthread_exit; its forced unwind aborted the process (rc 134, "terminate called
# without an active exception") when it met a C++ frame that may not throw.

DAEMON_EXIT = """
import threading
import numpy as np
import fastadam

n = 2**20  # above the parallel threshold: the pool's workers are busy too
started = threading.Barrier(4)

def single():
    p, g, m, v = (np.ones(n, np.float32) for _ in range(4))
    t = 0
    while True:
        t += 1
        fastadam.adam_step(p, g, m, v, step=t)
        if t == 1:
            started.wait()

def lists():  # the multi entry holds references to the listed arrays while it runs
    sets = [[np.ones(n // 2, np.float64) for _ in range(2)] for _ in range(4)]
    t = 0
    while True:
        t += 1
        fastadam.adam_step_multi(*sets, steps=t)
        if t == 1:
            started.wait()

def small():
    p, g, s = (np.ones(1000, np.float32) for _ in range(3))
    t = 0
    while True:
        t += 1
        fastadam.adagrad_step(p, g, s, step=t)
        if t == 1:
            started.wait()

for target in (single, lists, small):
    threading.Thread(target=target, daemon=True).start()
started.wait()
print("main returns")
"""


def test_exit_while_daemon_threads_step_is_clean():
    """20 interpreters whose daemon threads are stepping when the main thread returns."""
    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(lambda _: run_python(DAEMON_EXIT), range(20)))
    failures = [r for r in results if r.returncode != 0 or r.stdout.strip() != "main returns"]
    assert not failures, (
        f"{len(failures)} of 20 exits failed; first: rc {failures[0].returncode}, "
        f"stderr {failures[0].stderr[-500:]!r}"
    )


# --- fork -------------------------------------------------------------------------------------
# The pool's workers do not exist in a child of fork(), and its mutex may have been held by a
# parent thread. The child must neither wait for those workers nor touch that mutex.

FORK_PRELUDE = """
import os, sys, threading, time
import numpy as np
import fastadam

N = 3 * fastadam._core.parallel_threshold + 5  # large enough for the pool

def arrays(seed):
    rng = np.random.default_rng(seed)
    p, g, m = (rng.standard_normal(N).astype(np.float32) for _ in range(3))
    return p, g, m, rng.random(N).astype(np.float32)

def stepped(seed, step=3):
    a = arrays(seed)
    fastadam.adam_step(*a, step=step, lr=1e-2)
    return b"".join(x.tobytes() for x in a)

def wait_child(pid, limit=30.0):
    # The child's exit code, or 99 if it hung (then it is killed).
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return 99

expected = stepped(1)  # also starts the parent's pool
"""


def run_fork_case(body: str) -> None:
    result = run_python(FORK_PRELUDE + textwrap.dedent(body), {"FASTADAM_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok"), result.stdout + result.stderr


def test_forked_child_steps_and_exits_normally():
    run_fork_case("""
    pid = os.fork()
    if pid == 0:
        ok = stepped(1) == expected
        sys.exit(0 if ok else 1)  # a normal exit: the interpreter finalizes, exit handlers run
    code = wait_child(pid)
    print("child exit", code)
    if code == 0:
        print("ok")
    """)


def test_set_num_threads_in_forked_child():
    run_fork_case("""
    pid = os.fork()
    if pid == 0:
        fastadam.set_num_threads(3)
        ok = fastadam.get_num_threads() == 3 and stepped(1) == expected
        fastadam.set_num_threads(1)
        ok = ok and stepped(1) == expected
        sys.exit(0 if ok else 1)
    code = wait_child(pid)
    print("child exit", code)
    if code == 0 and fastadam.get_num_threads() == 2:
        print("ok")
    """)


def test_fork_while_a_parent_thread_is_mid_step():
    """10 forks while another parent thread steps continuously (so it holds the pool when the
    fork happens, some of the time); each child steps and exits."""
    run_fork_case("""
    stop = threading.Event()
    def busy():
        a = arrays(2)
        t = 0
        while not stop.is_set():
            t += 1
            fastadam.adam_step(*a, step=t)
    thread = threading.Thread(target=busy)
    thread.start()
    codes = []
    for k in range(10):
        time.sleep(0.003 * k)  # fork at varied points of the busy thread's step
        pid = os.fork()
        if pid == 0:
            os._exit(0 if stepped(1) == expected else 1)
        codes.append(wait_child(pid))
    stop.set()
    thread.join()
    print("child exits", codes)
    if codes == [0] * 10:
        print("ok")
    """)


def test_multiprocessing_fork_pool():
    run_fork_case("""
    import multiprocessing as mp

    def work(seed):
        fastadam.set_num_threads(1 + seed % 2)
        return stepped(seed)

    if __name__ == "__main__":
        want = [stepped(seed) for seed in range(6)]
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map_async(work, range(6)).get(timeout=40)
        print("ok" if got == want else "results differ")
    """)


# --- all-or-nothing steps when the worker threads cannot start ----------------------------------

# Refuses pthread_create (EAGAIN) while `fastadam_refuse_threads(1)` is in force: the way a
# process at its thread limit fails.
SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

static volatile int refuse = 0;
void fastadam_refuse_threads(int on) { refuse = on; }

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*),
                   void* arg) {
    static int (*real)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
    if (refuse) return EAGAIN;
    if (!real) real = (int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*))
                          dlsym(RTLD_NEXT, "pthread_create");
    return real(thread, attr, start, arg);
}
"""


@pytest.fixture(scope="module")
def thread_refusing_shim(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not sys.platform.startswith("linux") or compiler is None:
        pytest.skip("needs Linux and a C compiler for the LD_PRELOAD shim")
    folder = tmp_path_factory.mktemp("shim")
    (folder / "shim.c").write_text(SHIM_SOURCE)
    library = folder / "libshim.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(folder / "shim.c"), "-ldl"],
        check=True,
        capture_output=True,
    )
    return str(library)


def preload_env(shim: str) -> dict[str, str]:
    # After whatever is preloaded already (a sanitizer's runtime must stay first).
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), shim]))
    return {"LD_PRELOAD": preload, "SHIM_PATH": shim, "FASTADAM_NUM_THREADS": "2"}


REFUSED_PRELUDE = """
import ctypes, os
import numpy as np
import fastadam
from fastadam import _core

shim = ctypes.CDLL(os.environ["SHIM_PATH"])
rng = np.random.default_rng(5)
BIG = 3 * _core.parallel_threshold + 7

def fresh(n, dtype):
    p, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    return [p, g, m, rng.random(n).astype(dtype)]

def snapshot(sets):
    return [a.tobytes() for s in sets for a in s]
"""


def test_mixed_dtype_step_writes_nothing_when_threads_are_refused(thread_refusing_shim):
    """A small float32 set (no pool needed) and a large float64 set (pool needed) in one call:
    when the workers cannot start, neither set is written, and a retry applies one update."""
    code = (
        REFUSED_PRELUDE
        + """
small, large = fresh(100, np.float32), fresh(BIG, np.float64)
twin = [[a.copy() for a in s] for s in (small, large)]
before = snapshot([small, large])
hyper = (1e-2, 0.9, 0.999, 1e-8, 0.0, False, False, False, True)
call = lambda sets: _core.adam_step_sets(
    *[[s[k] for s in sets] for k in range(4)], [None] * len(sets), 1, hyper)
shim.fastadam_refuse_threads(1)
try:
    call([small, large])
except RuntimeError as exc:
    print("refused:", exc)
else:
    raise SystemExit("no error")
assert snapshot([small, large]) == before, "written although the step failed"
shim.fastadam_refuse_threads(0)
call([small, large])
for s in twin:
    fastadam.adam_step(*s, step=1, lr=1e-2)  # the same update, one set at a time
assert snapshot([small, large]) == snapshot(twin), "not exactly one update"
print("ok")
"""
    )
    result = run_python(code, preload_env(thread_refusing_shim))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker threads" in result.stdout
    assert result.stdout.strip().endswith("ok")


def test_optimizer_step_is_all_or_nothing_when_threads_are_refused(thread_refusing_shim):
    """The user's view: Adam over float32 and float64 parameters, a step that fails because
    the threads cannot start, then a retry that succeeds, ends exactly where one successful
    step would."""
    code = (
        REFUSED_PRELUDE
        + """
params = [fresh(100, np.float32)[0], fresh(BIG, np.float64)[0]]
grads = [rng.standard_normal(p.size).astype(p.dtype) for p in params]
twin = [p.copy() for p in params]
before = [p.tobytes() for p in params]
opt = fastadam.Adam(params, lr=1e-2)
shim.fastadam_refuse_threads(1)
try:
    opt.step(grads)
except RuntimeError:
    pass
else:
    raise SystemExit("no error")
assert [p.tobytes() for p in params] == before, "parameters written although the step failed"
shim.fastadam_refuse_threads(0)
opt.step(grads)
fastadam.Adam(twin, lr=1e-2).step(grads)
assert [p.tobytes() for p in params] == [p.tobytes() for p in twin], "not exactly one update"
print("ok")
"""
    )
    result = run_python(code, preload_env(thread_refusing_shim))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
