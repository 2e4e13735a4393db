"""SWATS: the native step against ``fastadam.reference.swats_step`` (update and dot products) on
every ISA and thread count, and the optimizer against the paper's Algorithm 1 written out in
NumPy: where it switches (the same step, the same SGD learning rate, bit for bit) and where it
does not."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import fastadam
from fastadam import SWATS, _core, reference

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
SIZES = [0, 1, 3, 15, 16, 17, 33, 1000, 40_003, 70_001]
OPTIONS = {
    "plain": {},
    "weight_decay": {"weight_decay": 0.1},
    "maximize": {"maximize": True},
    "sgd": {"sgd_phase": True, "sgd_lr": 0.03},
    "sgd-combined": {"sgd_phase": True, "sgd_lr": 0.03, "weight_decay": 0.1, "maximize": True},
}


def randn(rng, shape, dtype):
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def assert_same(actual, expected):
    np.testing.assert_array_equal(actual, expected, strict=True)


def native(p, g, m, v, buf, step, kw):
    hyper = (
        kw.get("lr", 1e-2),
        0.9,
        0.99,
        kw.get("eps", 1e-9),
        kw.get("weight_decay", 0.0),
        kw.get("maximize", False),
        kw.get("sgd_phase", False),
        kw.get("sgd_lr", 0.0),
    )
    dots = np.full(2, np.nan)
    _core.swats_step_sets([p], [g], [m], [v], [buf], step, hyper, None, None, dots)
    return tuple(dots)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_kernel_matches_reference_bitwise(isa, options, dtype, size, rng):
    p, m = randn(rng, size, dtype), randn(rng, size, dtype)
    v = np.asarray(rng.uniform(0.5, 2.0, size), dtype=dtype)
    buf = randn(rng, size, dtype) if options.get("sgd_phase") else None
    ref = copy.deepcopy((p, m, v, buf))
    for t in (1, 2, 9):
        g = randn(rng, size, dtype)
        dots = native(p, g, m, v, buf, t, options)
        want = reference.swats_step(
            ref[0], g, *ref[1:], step=t, lr=1e-2, betas=(0.9, 0.99), **options
        )
        assert dots == want
        for a, b in zip((p, m, v, buf), ref):
            if a is not None:
                assert_same(a, b)
    if size and not options.get("sgd_phase"):
        assert dots[0] > 0.0


def test_dot_products_do_not_depend_on_isa_or_threads(threads, rng):
    n = 3 * 2**15 + 1234  # several segments, a tail
    start = [randn(rng, n, np.float32) for _ in range(3)]
    start[2] = np.abs(start[2])
    g = randn(rng, n, np.float32)
    results = []
    for isa in fastadam.available_isas():
        for count in (1, 2, 3):
            fastadam.set_isa(isa)
            threads(count)
            p, m, v = (a.copy() for a in start)
            results.append((native(p, g, m, v, None, 5, {}), p))
    fastadam.set_isa(fastadam.available_isas()[0])
    for dots, p in results[1:]:
        assert dots == results[0][0]
        assert_same(p, results[0][1])


def test_bad_input_is_refused_before_anything_is_written(rng):
    p, g, m, v = (randn(rng, 9, np.float64) for _ in range(4))
    before = [a.copy() for a in (p, g, m, v)]
    hyper = (0.1, 0.9, 0.99, 1e-9, 0.0, False, False, 0.0)
    with pytest.raises(ValueError, match="dots"):
        _core.swats_step_sets([p], [g], [m], [v], [None], 1, hyper, None, None, np.zeros(3))
    with pytest.raises(TypeError, match="dots"):
        _core.swats_step_sets([p], [g], [m], [v], [None], 1, hyper, None, None, [0.0, 0.0])
    sgd = hyper[:6] + (True, 0.1)
    with pytest.raises(ValueError, match="momentum_buffers"):
        _core.swats_step_sets([p], [g], [m], [v], [None], 1, sgd, None, None, np.zeros(2))
    with pytest.raises(ValueError, match="sgd_lr"):
        _core.swats_step_sets(
            [p], [g], [m], [v], [m], 1, sgd[:7] + (-1.0,), None, None, np.zeros(2)
        )
    for a, old in zip((p, g, m, v), before):
        assert_same(a, old)
    with pytest.raises(ValueError, match="Invalid eps_switch value: -1.0"):
        SWATS([p], eps_switch=-1.0)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        SWATS([p], betas=(0.9, 1.0))


# -- against the paper's algorithm ---------------------------------------------------------


def algorithm_1(grad_fn, x0, steps, lr, betas, eps, eps_switch, dot):
    """Keskar & Socher (2017), Algorithm 1, written out for one parameter vector: returns the
    trajectory, the switch step (or None) and Lambda. ``dot`` computes the dot products."""
    beta1, beta2 = betas
    x = x0.copy()
    m, a = np.zeros_like(x), np.zeros_like(x)
    lam, phase, switch, big_lambda, v = 0.0, "adam", None, None, None
    trajectory = []
    for k in range(1, steps + 1):
        g = grad_fn(x)
        if phase == "sgd":
            v = beta1 * v + g
            x -= ((1.0 - beta1) * big_lambda) * v
            trajectory.append(x.copy())
            continue
        m = beta1 * m + (1.0 - beta1) * g
        a = beta2 * a + (1.0 - beta2) * g * g
        p = -(lr * math.sqrt(1.0 - beta2**k) / (1.0 - beta1**k) * m / (np.sqrt(a) + eps))
        x += p
        trajectory.append(x.copy())
        if dot(p, g) != 0.0:
            gamma = dot(p, p) / -dot(p, g)
            lam = beta2 * lam + (1.0 - beta2) * gamma
            if k > 1 and abs(lam / (1.0 - beta2**k) - gamma) < eps_switch:
                phase, switch, big_lambda = "sgd", k, lam / (1.0 - beta2**k)
                v = np.zeros_like(x)
    return np.array(trajectory), switch, big_lambda


def tanh_problem(n=40, seed=1, tiles=1):
    """f = sum(s * log cosh(x - c)): gradients that flatten as x nears c, so the projected
    learning rate settles and SWATS switches (at step 36 with the settings below). ``tiles``
    copies of the n elements make a large problem with the same projection."""
    r = np.random.default_rng(seed)
    c, s = np.tile(r.uniform(-1.0, 1.0, n), tiles), np.tile(r.uniform(0.5, 2.0, n), tiles)
    return (lambda x: s * np.tanh(x - c)), np.zeros(n * tiles)


def quadratic_problem(n=50, seed=0):
    """A diagonal quadratic: Adam oscillates around the minimum, the projection never settles to
    1e-9 within the run, and SWATS stays with Adam."""
    r = np.random.default_rng(seed)
    a, b = r.uniform(0.5, 2.0, n), r.standard_normal(n)
    return (lambda x: a * x - b), r.standard_normal(n)


SWITCHING = {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-9, "eps_switch": 1e-5}
NOT_SWITCHING = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-9, "eps_switch": 1e-9}


def run_swats(grad_fn, x0, steps, kw, dtype=np.float64):
    x = x0.astype(dtype)
    opt = SWATS([x], **kw)
    trajectory, estimates = [], []
    for _ in range(steps):
        opt.step([grad_fn(x).astype(dtype)])
        trajectory.append(x.copy())
        estimates.append(opt.param_groups[0]["sgd_lr"])
    return np.array(trajectory), opt.param_groups[0], estimates


@pytest.mark.parametrize("steps", [200])
def test_switch_step_and_sgd_lr_are_the_papers_exactly(isa, steps):
    grad_fn, x0 = tanh_problem()
    ours, group, _ = run_swats(grad_fn, x0, steps, SWITCHING)
    theirs, switch, big_lambda = algorithm_1(
        grad_fn, x0, steps, dot=reference.fixed_order_dot, **SWITCHING
    )
    assert switch == 36
    assert group["phase"] == "sgd"
    assert group["switch_step"] == switch
    assert group["sgd_lr"] == big_lambda  # exactly, float64
    assert_same(ours, theirs)  # the whole trajectory, both phases, bit for bit
    # With NumPy's own dot products (another summation order) the paper's run switches at the
    # same step, to the same learning rate up to rounding.
    _, switch_np, lambda_np = algorithm_1(grad_fn, x0, steps, dot=np.dot, **SWITCHING)
    assert switch_np == switch
    assert abs(lambda_np - big_lambda) <= 1e-14 * big_lambda


def test_no_switch_where_the_projection_does_not_settle(isa):
    grad_fn, x0 = quadratic_problem()
    ours, group, estimates = run_swats(grad_fn, x0, 400, NOT_SWITCHING)
    theirs, switch, _ = algorithm_1(
        grad_fn, x0, 400, dot=reference.fixed_order_dot, **NOT_SWITCHING
    )
    assert switch is None
    assert group["phase"] == "adam" and group["switch_step"] is None
    assert_same(ours, theirs)
    assert all(e is not None for e in estimates)  # an estimate at every step, to plot


def test_switch_is_the_same_on_one_and_two_threads(threads):
    grad_fn, x0 = tanh_problem(tiles=2500)  # 100_000 elements: 4 segments, 2 threads
    runs = []
    for count in (1, 2):
        threads(count)
        x, group, estimates = run_swats(grad_fn, x0, 60, SWITCHING)
        runs.append((x, group["switch_step"], group["sgd_lr"], estimates))
    assert runs[0][1] is not None  # it switched
    assert runs[0][1:] == runs[1][1:]
    assert_same(runs[0][0], runs[1][0])


def test_groups_switch_on_their_own():
    grad_a, xa = tanh_problem()
    grad_b, xb = quadratic_problem()
    a, b = xa.copy(), xb.copy()
    opt = SWATS([{"params": [a], **SWITCHING}, {"params": [b], **NOT_SWITCHING}])
    for _ in range(100):
        opt.step([grad_a(a), grad_b(b)])
    first, second = opt.param_groups
    assert (first["phase"], first["switch_step"]) == ("sgd", 36)
    assert (second["phase"], second["switch_step"]) == ("adam", None)
    want_a, _, _ = algorithm_1(grad_a, xa, 100, dot=reference.fixed_order_dot, **SWITCHING)
    want_b, _, _ = algorithm_1(grad_b, xb, 100, dot=reference.fixed_order_dot, **NOT_SWITCHING)
    assert_same(a, want_a[-1])
    assert_same(b, want_b[-1])
    assert set(opt.state[a]) == {"step", "exp_avg", "exp_avg_sq", "momentum_buffer"}
    assert set(opt.state[b]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("via", ["state_dict", "npz"])
def test_round_trip_keeps_the_phase_and_continues_bit_for_bit(via, tmp_path):
    grad_fn, x0 = tanh_problem()
    x = x0.copy()
    opt = SWATS([x], **SWITCHING)
    for _ in range(40):  # past the switch
        opt.step([grad_fn(x)])
    y = x.copy()
    twin = SWATS([y])
    if via == "npz":
        opt.save(tmp_path / "swats.npz")
        twin.load(tmp_path / "swats.npz")
    else:
        twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert twin.param_groups[0]["phase"] == "sgd"
    assert twin.param_groups[0]["sgd_lr"] == opt.param_groups[0]["sgd_lr"]
    for _ in range(5):
        opt.step([grad_fn(x)])
        twin.step([grad_fn(y)])
    assert_same(x, y)
