"""pytest-benchmark suite: one Adam step on float32 arrays, the NumPy reference beside fastadam.

One group per size ("float32 n=2**20"). Each group holds ``fastadam.reference`` and fastadam on
every ISA this CPU runs, on one thread; the default ISA also on all threads (every ISA at 2**20
and 2**24); and ``fastadam.Adam.step`` when the optimizer class exists. Every case first checks
one untimed step element by element against a float64 oracle, then times repeated steps, then
checks the timed steps changed the parameters and left them finite. A timed run ends with a
compact summary per size (the root conftest.py).

``pytest --benchmark-only`` (repository root) times the suite; plain ``pytest`` runs each case
once, untimed (see the root conftest.py).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import fastadam
from fastadam import _core, reference

SIZES = [2**10, 2**14, 2**17, 2**20, 2**24]
ALL_THREADS_SIZES = {2**20, 2**24}
ALL_THREADS = _core.default_num_threads()
LR = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-8
CHECK_STEP = 2  # the checked step; Adam.step reaches step 2 after a first step that builds state
TIMED_STEP = CHECK_STEP + 1
RTOL = 1e-6  # float32 against the float64 oracle, per step (DESIGN.md section 2)
SEED = 20260126

# A case whose checked step fails never reaches benchmark(); pytest-benchmark then warns that
# the fixture was unused, which filterwarnings=error would report a second time.
pytestmark = pytest.mark.filterwarnings("ignore:Benchmark fixture was not used at all")


def size_name(n: int) -> str:
    return f"2**{int(math.log2(n))}"


@dataclasses.dataclass(frozen=True)
class Contestant:
    kind: str  # "reference", "adam_step" (functional) or "Adam.step"
    isa: str | None = None
    threads: int = 1

    @property
    def id(self) -> str:
        if self.kind == "reference":
            return "reference"
        name = f"{self.isa}-{self.threads}t"
        return name if self.kind == "adam_step" else f"Adam.step-{name}"


def contestants(n: int) -> list[Contestant]:
    isas = fastadam.available_isas()
    out = [Contestant("reference")]
    out += [Contestant("adam_step", isa) for isa in isas]
    if ALL_THREADS > 1:
        # The default ISA on all threads at every size (for the summary); every ISA at two.
        threaded = isas if n in ALL_THREADS_SIZES else [fastadam.get_isa()]
        out += [Contestant("adam_step", isa, ALL_THREADS) for isa in threaded]
    # The optimizer class on the default (best) ISA; skipped cleanly where it does not exist.
    out.append(Contestant("Adam.step", fastadam.get_isa()))
    return out


CASES = [(n, c) for n in SIZES for c in contestants(n)]


def periods(a: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """`a` as a (q, period) view of its whole periods, and the remainder."""
    q = a.size // period
    return a[: q * period].reshape(q, period), a[q * period :]


@dataclasses.dataclass
class SizeData:
    """Work arrays of one size, their start values and the float64 oracle's step from them.

    The start values repeat with a period of PERIOD elements (a prime, so no thread chunk or
    vector block lines up with it): every element's expected value is known while the oracle
    and the tolerances cost one period, not the whole size. An element updated from another
    element's inputs, or not at all, still fails the check.
    """

    n: int
    period: int
    start: list[np.ndarray]  # p, g, m, v before the checked step: one period
    expected: list[np.ndarray]  # p, m, v after it (float64 oracle): one period
    tolerance: list[np.ndarray]  # allowed |actual - expected| for p, m, v: one period
    work: list[np.ndarray]  # p, g, m, v the contestants update: n elements

    def fill(self, dst: np.ndarray, block: np.ndarray) -> None:
        whole, rest = periods(dst, self.period)
        whole[...] = block
        rest[...] = block[: rest.size]

    def reset(self) -> None:
        for dst, block in zip(self.work, self.start):
            self.fill(dst, block)


PERIOD = 10007


def big_array(n: int) -> np.ndarray:
    # 2 MiB-aligned, huge-page-advised memory, as fastadam.Adam allocates its state; torch's
    # tensors likewise come from torch's own allocator.
    return _core.zeros_state((n,), np.dtype(np.float32))


def make_data(n: int) -> SizeData:
    rng = np.random.default_rng([SEED, n])
    period = min(n, PERIOD)
    # Plausible values: |update| ~ lr, exp_avg_sq >= exp_avg**2 plus a floor.
    p, g = (rng.uniform(-1.0, 1.0, period).astype(np.float32) for _ in range(2))
    m = rng.uniform(-0.5, 0.5, period).astype(np.float32)
    v = (m * m + rng.uniform(0.01, 1.0, period).astype(np.float32)).astype(np.float32)
    # float32 comparisons: the tolerance covers the rounding of the expected value to float32.
    expected, tolerance = ([a.astype(np.float32) for a in x] for x in zip(*oracle(p, g, m, v)))
    work = [big_array(n) for _ in range(4)]
    return SizeData(n, period, [p, g, m, v], list(expected), list(tolerance), work)


def oracle(p, g, m, v):
    """One float64 reference step from float32 inputs: (expected, tolerance) for p, m and v.

    The tolerance is RTOL (plus the float32 rounding of the expected value) times the
    magnitudes that a correct float32 step's rounding errors scale with: the terms of each sum,
    not its result, which may cancel. With make_data's ranges (|p|, |g| <= 1, |m| <= 0.5,
    v >= m**2 + 0.01) the denominator is >= 2.2 at step 2 and the update <= 1.2e-3, so the
    update's own error stays far below RTOL * 0.01; tests/adam_oracle.py has the general bound.
    """
    p1, g1, m1, v1 = (a.astype(np.float64) for a in (p, g, m, v))
    reference.adam_step(p1, g1, m1, v1, step=CHECK_STEP, lr=LR, betas=BETAS, eps=EPS)
    rel = RTOL + 2.0**-23
    p_tol = rel * (np.abs(p) + np.abs(p1) + 0.01)
    m_tol = rel * (np.abs(m) + np.abs(g1))
    v_tol = rel * (v + g1 * g1)
    return (p1, p_tol), (m1, m_tol), (v1, v_tol)


_cache: dict[int, SizeData] = {}


def size_data(n: int) -> SizeData:
    """The data of size n; a new size frees the previous one (the cases run size by size)."""
    if n not in _cache:
        _cache.clear()
        _cache[n] = make_data(n)
    return _cache[n]


@pytest.fixture(scope="module", autouse=True)
def _free_data():
    yield
    _cache.clear()


CHECK_ROWS = 32  # periods compared at a time: temporaries that stay in cache (3x faster)


def assert_step_matches(data: SizeData, label: str) -> None:
    """p, m and v of data.work within tolerance of the oracle, element by element."""
    p, _, m, v = data.work
    names = ("param", "exp_avg", "exp_avg_sq")
    for name, actual, expected, tol in zip(names, (p, m, v), data.expected, data.tolerance):
        whole, rest = periods(actual, data.period)
        parts = [
            (whole[r : r + CHECK_ROWS], r * data.period) for r in range(0, len(whole), CHECK_ROWS)
        ]
        for part, offset in parts + [(rest, whole.size)]:
            k = part.shape[-1]
            err = np.abs(part - expected[:k])
            ok = err <= tol[:k]  # NaN compares False: a failure
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                first, j = offset + i, (offset + i) % data.period
                raise AssertionError(
                    f"{label}: {name}[{first}] = {actual[first]!r} is out of tolerance: "
                    f"expected {expected[j]!r} (error {err.flat[i]:.3g} > {tol[j]:.3g})"
                )


@pytest.fixture
def runtime():
    """Restores the ISA and the thread count a case changed."""
    isa, threads = fastadam.get_isa(), fastadam.get_num_threads()
    yield
    fastadam.set_isa(isa)
    fastadam.set_num_threads(threads)


def prepare(contestant: Contestant, data: SizeData):
    """Set the ISA and threads, run the checked step, and return the timed step function."""
    p, g, m, v = data.work
    data.reset()
    if contestant.kind == "reference":

        def step():
            reference.adam_step(p, g, m, v, step=TIMED_STEP, lr=LR, betas=BETAS, eps=EPS)

        reference.adam_step(p, g, m, v, step=CHECK_STEP, lr=LR, betas=BETAS, eps=EPS)
        return step

    fastadam.set_isa(contestant.isa)
    fastadam.set_num_threads(contestant.threads)
    if contestant.kind == "adam_step":

        def step():
            fastadam.adam_step(p, g, m, v, step=TIMED_STEP, lr=LR, betas=BETAS, eps=EPS)

        fastadam.adam_step(p, g, m, v, step=CHECK_STEP, lr=LR, betas=BETAS, eps=EPS)
        return step

    if not hasattr(fastadam, "Adam"):
        pytest.skip("fastadam.Adam does not exist yet")
    opt = fastadam.Adam([p], lr=LR, betas=BETAS, eps=EPS)
    grads = [g]
    opt.step(grads)  # step 1 builds the state; then set it to the start values, in place
    state = opt.state[p]
    data.fill(p, data.start[0])
    data.fill(state["exp_avg"], data.start[2])
    data.fill(state["exp_avg_sq"], data.start[3])
    opt.step(grads)  # step 2, the checked one
    # The check reads data.work: copy the optimizer's own state there.
    np.copyto(m, state["exp_avg"])
    np.copyto(v, state["exp_avg_sq"])
    return lambda: opt.step(grads)


@pytest.mark.parametrize(
    ("n", "contestant"), CASES, ids=[f"{size_name(n)}-{c.id}" for n, c in CASES]
)
def test_adam_step(benchmark, runtime, bench_summary, n, contestant):
    data = size_data(n)
    benchmark.group = f"float32 n={size_name(n)}"
    benchmark.extra_info.update(
        elements=n, bytes_per_step=28 * n, isa=contestant.isa, threads=contestant.threads
    )
    step = prepare(contestant, data)
    assert_step_matches(data, contestant.id)

    p = data.work[0]
    sample = np.linspace(0, n - 1, 257).astype(np.intp)
    before = p[sample].copy()
    benchmark(step)
    assert not np.array_equal(p[sample], before), "the timed steps did not change param"
    assert np.isfinite(p).all()
    if benchmark.stats is not None:  # timed (not --benchmark-disable)
        bench_summary.record(
            n, contestant.kind, contestant.isa, contestant.threads, benchmark.stats.stats.median
        )
