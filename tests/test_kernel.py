"""The kernel against the float64 NumPy oracle, on every ISA path, dtype, option, size and
layout; and the bitwise reproducibility promises (runs, ISAs, thread counts, multi calls)."""

from __future__ import annotations

import numpy as np
import pytest
from adam_oracle import (
    DTYPES,
    OPTIONS,
    State,
    assert_close,
    assert_one_step_matches,
    assert_states_equal,
    fast_step,
    fresh_grad,
    full_hyper,
    oracle_step,
    random_state,
)

import fastadam

# Around every SIMD width (4, 8, 16 lanes) and its tails, a mid size, and one above the parallel
# threshold with an odd tail.
SIZES = [1, 15, 16, 17, 31, 33, 63, 65, 1000, 2**20 + 3]
SHAPES = {"0d": (), "2d": (7, 9), "3d": (3, 5, 7)}
ODD_LARGE = 3 * 2**15 + 5  # above parallel_threshold, not a multiple of any chunk or vector

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
option_param = pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
plain_and_combined = pytest.mark.parametrize(
    "options", [OPTIONS["plain"], OPTIONS["combined"]], ids=["plain", "combined"]
)


def one_step_against_oracle(state: State, hyper: dict) -> None:
    before64 = state.astype(np.float64)
    after64 = before64.copy()
    oracle_step(after64, hyper)
    grad = state.grad.copy()
    fast_step(state, hyper)
    np.testing.assert_array_equal(state.grad, grad, err_msg="grad was written")
    assert_one_step_matches(state, before64, after64, hyper)


def multi_call(states: list[State], hyper: dict, steps) -> None:
    h = {k: v for k, v in hyper.items() if k != "step"}
    amsgrad = h.get("amsgrad", False)
    fastadam.adam_step_multi(
        [s.param for s in states],
        [s.grad for s in states],
        [s.exp_avg for s in states],
        [s.exp_avg_sq for s in states],
        steps=steps,
        max_exp_avg_sqs=[s.max_exp_avg_sq for s in states] if amsgrad else None,
        **h,
    )


@option_param
@dtype_param
@pytest.mark.parametrize("size", SIZES)
def test_one_step_matches_float64_reference(isa, dtype, options, size, rng):
    hyper = full_hyper(7, options)
    one_step_against_oracle(random_state(rng, (size,), dtype, amsgrad=hyper["amsgrad"]), hyper)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@plain_and_combined
@dtype_param
def test_shapes(isa, dtype, options, shape, rng):
    hyper = full_hyper(3, options)
    one_step_against_oracle(random_state(rng, shape, dtype, amsgrad=hyper["amsgrad"]), hyper)


def misaligned_view(rng, values: np.ndarray, offset: int, guard: int):
    """A copy of `values` inside a larger buffer, starting `offset` elements past a 64-byte
    boundary (so no vector width aligns it), with `guard` random sentinel elements each side.
    Returns (view, buffer)."""
    itemsize = values.dtype.itemsize
    raw = np.empty((values.size + 2 * guard + offset) * itemsize + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    buf = raw[start : start + (values.size + 2 * guard + offset) * itemsize].view(values.dtype)
    buf[...] = rng.standard_normal(buf.size)
    view = buf[guard + offset : guard + offset + values.size]
    view[...] = values
    assert view.ctypes.data % 64 == (guard + offset) * itemsize % 64 != 0
    return view, buf


@plain_and_combined
@dtype_param
@pytest.mark.parametrize("size", [1, 15, 17, 33, 65, 1000, ODD_LARGE])
def test_unaligned_views_leave_sentinels_untouched(isa, dtype, options, size, rng):
    hyper = full_hyper(5, options)
    contiguous = random_state(rng, (size,), dtype, amsgrad=hyper["amsgrad"])
    before64 = contiguous.astype(np.float64)
    after64 = before64.copy()
    oracle_step(after64, hyper)

    # Each array gets its own misalignment, so no two of them share a vector phase.
    arrays = contiguous.arrays()
    views, buffers = zip(
        *(misaligned_view(rng, a, offset=k + 1, guard=17) for k, a in enumerate(arrays))
    )
    state = State(*views)
    guards = [np.concatenate([b[: 17 + k + 1], b[-17:]]).tobytes() for k, b in enumerate(buffers)]

    fast_step(state, hyper)

    for k, b in enumerate(buffers):
        assert np.concatenate([b[: 17 + k + 1], b[-17:]]).tobytes() == guards[k], (
            f"array {k}: a sentinel next to the view was written"
        )
    assert_one_step_matches(state, before64, after64, hyper)


@option_param
@dtype_param
def test_100_steps_stay_close_to_reference(isa, dtype, options, rng):
    """100 steps with fresh gradients, float32/float64 kernel against the float64 oracle.

    Bounds for float32 (rtol 1e-5 for param, exp_avg_sq and max_exp_avg_sq): every step adds a
    few float32 roundings (~1e-7 relative) and some of them are systematic (the per-call
    coefficients such as 1 - lr*weight_decay are rounded the same way every step), so the error
    can grow linearly: 100 steps x ~1e-7 = 1e-5. Measured worst cases: 3.5e-6 (param, decoupled),
    2.8e-6 (exp_avg_sq). The parameter's error is relative to |P| plus the path length
    sum(|P_t - P_{t-1}|), since each step's update carries its own rounding error. exp_avg
    contracts its own errors (beta1 < 1), so it stays at 2e-6 (measured 3.7e-7) relative to
    |M| + sqrt(V), the size of the gradients averaged into it (M crosses zero).
    float64: the same structure at 1e-12.
    """
    amsgrad = options.get("amsgrad", False)
    state = random_state(rng, (1000,), dtype, amsgrad=amsgrad)
    state64 = state.astype(np.float64)
    path = np.zeros(state.param.shape)
    for t in range(1, 101):
        fresh_grad(rng, state)
        state64.grad[...] = state.grad
        hyper = full_hyper(t, options)
        previous = state64.param.copy()
        fast_step(state, hyper)
        oracle_step(state64, hyper)
        path += np.abs(state64.param - previous)

    wide, narrow = (1e-5, 2e-6) if dtype == np.float32 else (1e-12, 1e-12)
    assert_close("param", state.param, state64.param, wide * (np.abs(state64.param) + path))
    assert_close(
        "exp_avg",
        state.exp_avg,
        state64.exp_avg,
        narrow * (np.abs(state64.exp_avg) + np.sqrt(state64.exp_avg_sq)),
    )
    assert_close("exp_avg_sq", state.exp_avg_sq, state64.exp_avg_sq, wide * state64.exp_avg_sq)
    if amsgrad:
        assert_close(
            "max_exp_avg_sq",
            state.max_exp_avg_sq,
            state64.max_exp_avg_sq,
            wide * state64.max_exp_avg_sq,
        )


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@dtype_param
@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 4, 2)], ids=str)
def test_zero_size_is_a_noop(isa, dtype, shape, amsgrad):
    state = State(*(np.empty(shape, dtype) for _ in range(5 if amsgrad else 4)))
    assert (
        fastadam.adam_step(
            *state.arrays()[:4], step=1, amsgrad=amsgrad, max_exp_avg_sq=state.max_exp_avg_sq
        )
        == fastadam.StepReport(False, None)
    )
    assert all(a.shape == shape and a.dtype == dtype for a in state.arrays())


@dtype_param
def test_zero_size_sets_in_a_multi_call_are_skipped(isa, dtype, rng):
    states = [random_state(rng, shape, dtype) for shape in [(0,), (40,), (2, 0), (9,)]]
    expected = [s.copy() for s in states]
    for s in expected:
        fast_step(s, full_hyper(4, {}))
    multi_call(states, full_hyper(4, {}), steps=4)
    for got, want in zip(states, expected):
        assert_states_equal(got, want)


@option_param
@dtype_param
def test_two_runs_are_bitwise_identical(isa, dtype, options, rng):
    first = random_state(rng, (ODD_LARGE,), dtype, amsgrad=options.get("amsgrad", False))
    second = first.copy()
    fast_step(first, full_hyper(11, options))
    fast_step(second, full_hyper(11, options))
    assert_states_equal(first, second)


@option_param
@dtype_param
@pytest.mark.parametrize("size", [1, 17, 33, 65, 1003, ODD_LARGE])
def test_isas_are_bitwise_identical(dtype, options, size, rng):
    original = random_state(rng, (size,), dtype, amsgrad=options.get("amsgrad", False))
    previous = fastadam.get_isa()
    results = {}
    try:
        for name in fastadam.available_isas():
            fastadam.set_isa(name)
            results[name] = original.copy()
            fast_step(results[name], full_hyper(9, options))
    finally:
        fastadam.set_isa(previous)
    for name, state in results.items():
        assert_states_equal(state, results["scalar"], f"{name} vs scalar:")


def many_odd_states(rng, dtype, amsgrad):
    """37 tensors of odd sizes (0-d, empty and 2-D among them), together above the threshold."""
    shapes = [(), (0,), (3, 5)] + [(int(n),) for n in rng.integers(1, 6000, 34) | 1]
    return [random_state(rng, shape, dtype, amsgrad=amsgrad) for shape in shapes]


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@dtype_param
def test_thread_counts_are_bitwise_identical(isa, dtype, amsgrad, threads, rng):
    options = {"amsgrad": amsgrad, "weight_decay": 0.01}
    single = random_state(rng, (ODD_LARGE,), dtype, amsgrad=amsgrad)
    several = many_odd_states(rng, dtype, amsgrad)
    assert sum(s.param.size for s in several) > fastadam._core.parallel_threshold
    steps = [int(t) for t in rng.integers(1, 50, len(several))]
    results = {}
    for n in [1, 2, 3, 7]:
        threads(n)
        assert fastadam.get_num_threads() == n
        one, many = single.copy(), [s.copy() for s in several]
        fast_step(one, full_hyper(6, options))
        multi_call(many, full_hyper(6, options), steps)
        results[n] = (one, many)
    for n, (one, many) in results.items():
        assert_states_equal(one, results[1][0], f"{n} threads vs 1, one tensor:")
        for i, (got, want) in enumerate(zip(many, results[1][1])):
            assert_states_equal(got, want, f"{n} threads vs 1, multi call set {i}:")


@option_param
@dtype_param
def test_multi_call_equals_per_tensor_calls(isa, dtype, options, rng):
    amsgrad = options.get("amsgrad", False)
    states = many_odd_states(rng, dtype, amsgrad)
    expected = [s.copy() for s in states]
    for s in expected:
        fast_step(s, full_hyper(8, options))
    multi_call(states, full_hyper(8, options), steps=8)
    for got, want in zip(states, expected):
        assert_states_equal(got, want)


@dtype_param
def test_multi_call_with_per_tensor_steps(isa, dtype, rng):
    options = OPTIONS["combined"] | {"bias_correction": True}
    states = [random_state(rng, (n,), dtype, amsgrad=True) for n in (33, 1, 1000, 17)]
    steps = [1, 2, 1000, 10000]
    expected = [s.copy() for s in states]
    oracle = [s.astype(np.float64) for s in states]
    for s, t in zip(expected, steps):
        fast_step(s, full_hyper(t, options))
    multi_call(states, full_hyper(0, options), steps=steps)
    for got, want, before64, t in zip(states, expected, oracle, steps):
        assert_states_equal(got, want)
        after64 = before64.copy()
        oracle_step(after64, full_hyper(t, options))
        assert_one_step_matches(got, before64, after64, full_hyper(t, options))


@dtype_param
def test_multi_call_grads_may_share_memory(isa, dtype, rng):
    """Gradients are only read, so one gradient array may serve several sets."""
    states = [random_state(rng, (65,), dtype) for _ in range(3)]
    for s in states[1:]:
        s.grad = states[0].grad
    expected = [s.copy() for s in states]
    for s in expected:
        fast_step(s, full_hyper(2, {}))
    multi_call(states, full_hyper(2, {}), steps=2)
    for got, want in zip(states, expected):
        assert_states_equal(got, want)


@dtype_param
def test_read_only_grad_is_accepted(isa, dtype, rng):
    state = random_state(rng, (33,), dtype)
    state.grad.flags.writeable = False
    one_step_against_oracle(state, full_hyper(1, {}))
