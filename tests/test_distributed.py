"""fastadam.distributed: sharded optimizers on 1, 2 and 3 MPI ranks.

The checks run inside ``mpiexec -n N python -m mpi4py tests/mpi/worker.py SCENARIO SEED OUT``
(every rank writes one ``CHECK`` line per check to its own file in OUT); each test here
launches one such job with a timeout (a hung job is killed with its whole process group and
fails the test) and asserts that every rank reported every check as ok. Skipped where mpi4py
or mpiexec is missing (``pip install '.[distributed]'``). The layout arithmetic is tested here
directly, without MPI.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import SEED
from fastadam.distributed.layout import BLOCK, DtypeLayout

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "mpi" / "worker.py"
TIMEOUT = 240  # seconds per job; the slowest takes a few seconds alone


def mpiexec() -> str:
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py (pip install '.[distributed]')")
    path = shutil.which("mpiexec")
    if path is None:
        pytest.skip("needs mpiexec on PATH (pip install '.[distributed]' installs MPICH's)")
    return path


def run_ranks(n: int, scenario: str, out: pathlib.Path, *args: str) -> str:
    """Run the worker on n ranks; what the ranks wrote, after checking that the job finished
    in time and exited cleanly."""
    out.mkdir(parents=True, exist_ok=True)
    args = (scenario, str(SEED), str(out), *args)
    command = [mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", str(WORKER), *args]
    env = dict(os.environ, FASTADAM_NUM_THREADS="1", OMP_NUM_THREADS="1")
    # Hydra's default launcher is ssh to other hosts; on one machine fork needs no daemon.
    env.setdefault("HYDRA_LAUNCHER", "fork")
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,  # one process group: a timeout kills every rank
    )
    try:
        log, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(args)} hung for {TIMEOUT} s:\n{log[-4000:]}")
    assert proc.returncode == 0, f"mpiexec -n {n} {' '.join(args)} failed:\n{log[-8000:]}"
    return "".join((out / f"rank{r}.txt").read_text() for r in range(n))


def checks(out: str, n: int) -> dict[str, list[str]]:
    """check name -> the result each rank printed; asserts every rank finished."""
    found: dict[str, dict[int, str]] = {}
    for rank, name, result in re.findall(r"^CHECK (\d+) (\S+) (.*)$", out, re.MULTILINE):
        found.setdefault(name, {})[int(rank)] = result
    done = sorted(int(r) for r in re.findall(r"^DONE (\d+)$", out, re.MULTILINE))
    assert done == list(range(n)), f"ranks that finished: {done}\n{out[-4000:]}"
    for name, by_rank in found.items():
        assert sorted(by_rank) == list(range(n)), f"{name}: reported by ranks {sorted(by_rank)}"
    return {name: [by_rank[r] for r in range(n)] for name, by_rank in found.items()}


def assert_all_ok(results: dict[str, list[str]], expected: set[str]) -> None:
    missing = expected - set(results)
    assert not missing, f"checks that did not run: {sorted(missing)}"
    failed = {name: r for name, r in results.items() if any(x != "ok" for x in r)}
    assert not failed, f"failed checks: {failed}"


EQUALITY = {
    f"{opt}-amsgrad{a}-{dt}-bucket{b}"
    for opt in ("Adam", "Adam-l2", "AdamW")
    for a in (0, 1)
    for dt in ("float32", "float64", "float32+float64")
    for b in ("None", "4096")
} | {
    "Adam-groups-None-schedule",
    "SGD-nesterov",
    "Adagrad",
    "reduce-bucketNone",
    "reduce-bucket4096",
    "memory-1048579",
    "memory-1011352",
}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_bitwise_equal_to_single_process(n, tmp_path):
    """Adam and AdamW (L2 decay too), amsgrad on and off, float32, float64 and both at once,
    with and without buckets: parameters and consolidated state bitwise those of the
    single-process optimizer; reduce-scatter averaging; state memory per rank."""
    out = run_ranks(n, "equality", tmp_path)
    assert_all_ok(checks(out, n), EQUALITY)
    for total, elements in re.findall(
        r"^MEMORY 0 P=(\d+) N=\d+ state_elements_per_array=(\d+)", out, re.MULTILINE
    ):
        assert int(elements) <= math.ceil(int(total) / n) + BLOCK


FAILURES = {
    "bad-shape-on-one-rank",
    "bad-dtype-on-one-rank",
    "lr-differs",
    "bad-beta-on-one-rank",
    "None-differs",
    "averaged-differs",
    "wrong-count",
    "not-a-list",
    "load-other-rank",
    "grad-is-its-param-averaged",
    "grad-is-its-param",
    "grad-in-another-view",
    "root-differs",
    "root-not-a-rank",
    "save-folders-differ",
    "previous-checkpoint-whole",
    "load-missing-folder",
    "truncated-shard",
    "consolidated-matched-by-place",
    "works-after-refusals",
    "lr-array-changed-in-place",
    "shape-differs-at-construction",
    "lr-differs-at-construction",
    "bad-param-on-one-rank",
    "float16-params",
}


@pytest.mark.parametrize("n", [2, 3])
def test_one_rank_refusing_makes_every_rank_raise(n, tmp_path):
    out = run_ranks(n, "failures", tmp_path)
    assert_all_ok(checks(out, n), FAILURES)
    errors = re.findall(r"^ERROR (\d+) (\S+) (.*)$", out, re.MULTILINE)
    by_check: dict[str, set[str]] = {}
    for _, name, message in errors:
        by_check.setdefault(name, set()).add(message)
    assert all(len(m) == 1 for m in by_check.values()), by_check  # the same words everywhere
    last = n - 1
    expected = (
        f"ValueError: on rank {last} of {n}: grads[3] must have its parameter's shape (4099,), "
        "got (4098,)"
    )
    assert by_check["bad-shape-on-one-rank"] == {expected}
    (lr,) = by_check["lr-differs"]
    assert f"param_groups[0]['lr'] is 0.01 on rank 0 but 0.5 on rank {last}" in lr
    (shape,) = by_check["shape-differs-at-construction"]
    assert f"parameters[4] is '(1,) float32' on rank 0 but '(2,) float32' on rank {last}" in shape
    (truncated,) = by_check["truncated-shard"]
    assert truncated.startswith("ValueError: on rank ") and "-of-0000" in truncated
    (half,) = by_check["float16-params"]
    assert "param_groups[0]['params'][0] is float16" in half


@pytest.fixture(scope="module")
def saved_at_two(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sharded_checkpoint")
    out = run_ranks(2, "save", tmp_path_factory.mktemp("save_log"), str(folder))
    assert_all_ok(checks(out, 2), {"save-files", "save-no-temporaries"})
    return folder


@pytest.mark.parametrize("n", [1, 3])
def test_resharding_continues_bit_for_bit(saved_at_two, n, tmp_path):
    """Saved by 2 ranks, loaded by n: the state equals the single-process optimizer's, and 20
    more steps give bitwise its parameters and state after 30 uninterrupted steps."""
    out = run_ranks(n, "load", tmp_path, str(saved_at_two))
    assert_all_ok(checks(out, n), {"loaded-state", "resharded-20-steps", "consolidated-round-trip"})


def test_import_fastadam_does_not_import_mpi4py():
    code = (
        "import sys, fastadam, fastadam.distributed, fastadam.distributed.layout; "
        "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- the layout, without MPI -------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layout_covers_every_element_once(rng, world, dtype):
    sizes = [int(s) for s in rng.integers(0, 3000, size=int(rng.integers(1, 12)))]
    layout = DtypeLayout(np.dtype(dtype), list(range(len(sizes))), sizes, world)
    itemsize = np.dtype(dtype).itemsize
    assert all(o * itemsize % 64 == 0 for o in layout.offsets)  # each parameter on a line
    assert layout.shard % BLOCK == 0 and layout.length == world * layout.shard
    assert layout.shard <= math.ceil(layout.total / world) + BLOCK
    assert layout.total <= sum(sizes) + len(sizes) * (64 // itemsize)
    seen = [np.zeros(s, int) for s in sizes]
    flat_seen = np.zeros(layout.length, int)
    for rank in range(world):
        begin, end = layout.window(rank)
        for piece in layout.pieces(begin, end):
            assert begin <= piece.flat and piece.flat + piece.end - piece.begin <= end
            assert piece.flat == layout.offsets[piece.index] + piece.begin
            seen[piece.index][piece.begin : piece.end] += 1
            flat_seen[piece.flat : piece.flat + piece.end - piece.begin] += 1
        outside = layout.outside(begin, end)
        assert sum(p.end - p.begin for p in outside) + sum(
            p.end - p.begin for p in layout.pieces(begin, end)
        ) == sum(sizes)
    assert all((s == 1).all() for s in seen)
    assert flat_seen.max(initial=0) <= 1
    buckets = layout.buckets(1000)
    assert buckets[0][0] == 0 and buckets[-1][1] == layout.shard
    assert all(a[1] == b[0] for a, b in zip(buckets, buckets[1:]))
    assert all(lo % BLOCK == 0 for lo, _ in buckets)
    described = DtypeLayout.from_description(layout.describe())
    assert described.offsets == layout.offsets and described.shard == layout.shard


def test_a_difference_is_named_where_only_the_digest_sees_it():
    """0.0 and -0.0 (or 1 and 1.0) compare equal but make different digests: the refusal
    still names the entry (it said 'their digests differ')."""
    from fastadam.distributed.agreement import _difference

    descs = [{"param_groups": [{"lr": 1e-3, "weight_decay": 0.0}]}] * 2
    descs[1] = {"param_groups": [{"lr": 1e-3, "weight_decay": -0.0}]}
    assert _difference(descs) == (
        "param_groups[0]['weight_decay'] is 0.0 on rank 0 but -0.0 on rank 1"
    )
    assert _difference([{"tag": 1}, {"tag": 1.0}]) == "tag is 1 on rank 0 but 1.0 on rank 1"
