"""8-bit Adam state: the kernel against the NumPy reference (bitwise) on every ISA, thread count,
size and parameter dtype; the codes' guarantees; accuracy against float32 Adam; bad input."""

from __future__ import annotations

import numpy as np
import pytest

import fastadam
from fastadam import lowbit, reference

core = fastadam._core
SIZES = [1, 7, 255, 256, 257, 1000, 4099]


def fresh(rng, n, dtype=np.float32, amsgrad=False, steps=0):
    """Parameters and an 8-bit state that has seen `steps` random steps (so codes and scales
    are not all zero)."""
    p = rng.standard_normal(n).astype(dtype)
    state = lowbit.zeros_state(n, amsgrad)
    for t in range(1, steps + 1):
        g = grads(rng, n, dtype)
        reference.adam8bit_step(p, g, **state, step=t, amsgrad=amsgrad, seed=11)
    return p, state


def grads(rng, n, dtype=np.float32):
    """Gradients of random sign spanning seven decades."""
    return (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 1, n)).astype(dtype)


def same_bits(a, b):
    return np.array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))


def copy_state(state):
    return {k: v.copy() for k, v in state.items()}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("amsgrad", [False, True], ids=["plain", "amsgrad"])
def test_kernel_matches_reference_bitwise(isa, rng, n, amsgrad):
    p, state = fresh(rng, n, amsgrad=amsgrad, steps=2)
    p_ref, state_ref = p.copy(), copy_state(state)
    hyper = {"lr": 3e-3, "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": amsgrad, "seed": 5}
    for t in range(3, 7):
        g = grads(rng, n)
        decoupled = t % 2 == 0
        core.adam8bit_step(p, g, **state, step=t, decoupled=decoupled, **hyper)
        reference.adam8bit_step(p_ref, g, **state_ref, step=t, decoupled=decoupled, **hyper)
    assert same_bits(p, p_ref)
    for key in state:
        assert same_bits(state[key], state_ref[key]), key


@pytest.mark.parametrize("mode", ["float16", "bfloat16", "bfloat16-master", "bfloat16-sr"])
def test_16bit_parameters_match_reference(isa, rng, mode):
    from fastadam.dtypes import BFLOAT16

    if mode.startswith("bfloat16") and BFLOAT16 is None:
        pytest.skip("bfloat16 needs ml_dtypes")
    dtype = np.float16 if mode == "float16" else BFLOAT16
    n = 1031
    p, state = fresh(rng, n, dtype)
    master = p.astype(np.float32) if mode.endswith("master") else None
    options = {"master": master, "stochastic_rounding": mode.endswith("sr"), "seed": 9}
    p_ref, state_ref = p.copy(), copy_state(state)
    master_ref = None if master is None else master.copy()
    for t in range(1, 5):
        g = grads(rng, n, dtype)
        core.adam8bit_step(p, g, **state, step=t, lr=1e-2, **options)
        reference.adam8bit_step(
            p_ref, g, **state_ref, step=t, lr=1e-2, **{**options, "master": master_ref}
        )
    assert same_bits(p, p_ref)
    if master is not None:
        assert same_bits(master, master_ref)
    for key in state:
        assert same_bits(state[key], state_ref[key]), key


@pytest.mark.parametrize("n", [(1 << 17) + 3, 3 << 16])
def test_threads_split_on_blocks_bitwise(rng, threads, n):
    p, state = fresh(rng, n, steps=1)
    g = grads(rng, n)
    results = []
    for count in (1, 2, 3):
        threads(count)
        q, s = p.copy(), copy_state(state)
        core.adam8bit_step(q, g, **s, step=2, lr=1e-2)
        results.append((q, s))
    for q, s in results[1:]:
        assert same_bits(q, results[0][0])
        for key in s:
            assert same_bits(s[key], results[0][1][key])


def test_step_sets_runs_float_and_8bit_sets_in_one_call(rng):
    # Sets with 8-bit state and with float state (float32 and float64 parameters) in one call,
    # clipped by one global norm: the same bits as each set stepped alone with that multiplier.
    sizes = [300, 1, 5000, 256, 77, 40]
    kinds = ["8bit", "8bit", "8bit", "float", "float", "float64"]
    hyper = (1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, False, True)
    params, gs, states = [], [], []
    for n, kind in zip(sizes, kinds):
        if kind == "8bit":
            p, state = fresh(rng, n, steps=1)
        else:
            dtype = np.float64 if kind == "float64" else np.float32
            p = rng.standard_normal(n).astype(dtype)
            state = {"exp_avg": np.zeros(n, dtype), "exp_avg_sq": np.zeros(n, dtype)}
        params.append(p)
        gs.append(grads(rng, n, p.dtype))
        states.append(state)
    norm = np.sqrt(sum(float(np.dot(g.astype(np.float64), g)) for g in gs))
    before = [(p.copy(), copy_state(state)) for p, state in zip(params, states)]
    names = [
        "exp_avg",
        "exp_avg_sq",
        "max_exp_avg_sq",
        "exp_avg_codes",
        "exp_avg_scales",
        "exp_avg_sq_codes",
        "exp_avg_sq_scales",
        "max_exp_avg_sq_codes",
        "max_exp_avg_sq_scales",
    ]
    lists = [[s.get(k) for s in states] for k in names]
    report = core.adam8bit_step_sets(
        params, gs, *lists, 2, hyper, None, (1.0, 0.5, False, False, 0)
    )
    # The step's own norm (a fixed-order reduction; NumPy's dot sums in another order, which
    # can move a float64 multiplier by an ulp) gives the multiplier of the expected steps.
    assert report.grad_norm == pytest.approx(norm)
    multiplier = min(1.0, 0.5 / (report.grad_norm + 1e-6))
    expected = []
    for (q, s), g in zip(before, gs):
        scaled = (g * g.dtype.type(multiplier)).astype(g.dtype)
        if "exp_avg" in s:
            fastadam.adam_step(q, scaled, s["exp_avg"], s["exp_avg_sq"], step=2)
        else:
            core.adam8bit_step(q, scaled, **s, step=2)
        expected.append((q, s))
    for p, state, (q, s) in zip(params, states, expected):
        assert same_bits(p, q)
        for key in state:
            assert same_bits(state[key], s[key])


# --- the codes --------------------------------------------------------------------------------


def test_block_maximum_is_exact_and_decoding_is_within_one_step(rng):
    x = (rng.standard_normal(5000) * 10.0 ** rng.uniform(-12, 3, 5000)).astype(np.float32)
    for name, step in (("exp_avg", 1.5), ("exp_avg_sq", 1.25)):
        values = np.abs(x) if name == "exp_avg_sq" else x
        codes, scales = lowbit.encode(values, name)
        back = lowbit.decode(codes, scales, name)
        blocks = np.abs(values[:4864]).reshape(-1, 256)
        assert np.array_equal(scales[:19], blocks.max(axis=1))
        top = np.argmax(blocks, axis=1) + 256 * np.arange(19)
        assert np.array_equal(back[top], values[top])
        # inside the code range, decoding is within one code step of the value
        per_element = np.repeat(scales, 256)[: x.size]
        inside = np.abs(values) >= per_element * 2.0**-60
        ratio = np.abs(back[inside]) / np.abs(values[inside])
        assert ratio.max() <= step and ratio.min() >= 1 / step
        assert np.all(np.sign(back[inside]) == np.sign(values[inside]))


def test_nonzero_v_never_decodes_to_zero_and_negative_m_never_positive(rng):
    n = 4096
    v = (10.0 ** rng.uniform(-40, 4, n)).astype(np.float32)  # far below the code range too
    v[::7] = 0
    r = lowbit.state_random(n, seed=3, step=5)
    for random in (None, r):
        codes, scales = lowbit.encode(v, "exp_avg_sq", random)
        back = lowbit.decode(codes, scales, "exp_avg_sq")
        assert np.all((back > 0) == (v > 0))
    m = -(10.0 ** rng.uniform(-40, 2, n)).astype(np.float32)
    for random in (None, r):
        codes, scales = lowbit.encode(m, "exp_avg", random)
        assert np.all(lowbit.decode(codes, scales, "exp_avg") <= 0)


def test_kernel_keeps_v_nonzero_where_m_is_nonzero(isa, rng):
    # One block whose gradients span ten decades: the trap of v decoding to 0 under a non-zero
    # m (the update would be lr * m / eps) must not open.
    n = 256
    g_mag = np.logspace(-8, 2, n).astype(np.float32)
    p, state = fresh(rng, n)
    for t in range(1, 30):
        core.adam8bit_step(p, g_mag * np.float32(1 if t % 3 else -1), **state, step=t)
        m = lowbit.decode(state["exp_avg_codes"], state["exp_avg_scales"], "exp_avg")
        v = lowbit.decode(state["exp_avg_sq_codes"], state["exp_avg_sq_scales"], "exp_avg_sq")
        assert np.all(v[m != 0] > 0)


def test_rounding_is_unbiased_on_average(rng):
    x = rng.uniform(0.01, 1, 1 << 16).astype(np.float32)
    x[::256] = 1.0  # the same scale in every block
    for name in ("exp_avg", "exp_avg_sq"):
        means = []
        for step in range(1, 33):
            codes, scales = lowbit.encode(x, name, lowbit.state_random(x.size, 0, step))
            means.append(lowbit.decode(codes, scales, name))
        relative = np.mean(means, axis=0) / x - 1
        assert abs(np.mean(relative)) < 2e-3
        nearest = lowbit.decode(*lowbit.encode(x, name), name) / x - 1
        assert np.abs(relative).mean() < 0.5 * np.abs(nearest).mean()


# --- accuracy against float32 Adam -------------------------------------------------------------


def run_float32(grad, p0, steps, lr):
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    largest = 0.0
    for t in range(1, steps + 1):
        before = p.copy()
        fastadam.adam_step(p, grad(p, t), m, v, step=t, lr=lr)
        largest = max(largest, float(np.abs(p - before).max()))
    return p, largest


def run_8bit(grad, p0, steps, lr):
    p, state = p0.copy(), lowbit.zeros_state(p0.size)
    for t in range(1, steps + 1):
        core.adam8bit_step(p, grad(p, t), **state, step=t, lr=lr)
    return p


@pytest.mark.parametrize("lr", [1e-2, 1e-3])
def test_decades_inside_one_block_stay_near_float32(rng, lr):
    # Each element's gradient has a fixed magnitude (1e-8 to 1e2 across every block) and a
    # random sign; after 100 steps no parameter is further from the float32 trajectory than
    # 30 times the largest float32 update (measured: 25.9 with lr 1e-2 and 1e-3).
    n = 256 * 16
    g = np.tile(np.logspace(-8, 2, 256), 16) * np.where(rng.random(n) < 0.5, -1, 1)
    g = g.astype(np.float32)
    p0 = rng.standard_normal(n).astype(np.float32)
    ref, largest = run_float32(lambda p, t: g, p0, 100, lr)
    p = run_8bit(lambda p, t: g, p0, 100, lr)
    assert np.abs(p - ref).max() <= 30 * largest


@pytest.mark.parametrize("lr", [1e-2, 1e-3])
def test_quadratic_follows_float32(rng, lr):
    # f(p) = sum(d p^2) / 2 - b.p with |b| spanning four decades in every block; 100 steps.
    n = 1 << 20
    d = rng.uniform(0.1, 2, n).astype(np.float32)
    b = (np.where(rng.random(n) < 0.5, -1, 1) * 10 ** rng.uniform(-4, 0, n)).astype(np.float32)

    def grad(p, t):
        return d * p - b

    def loss(p):
        return float(np.sum(d.astype(np.float64) * p * p) / 2 - np.dot(b.astype(np.float64), p))

    p0 = np.zeros(n, np.float32)
    ref, _ = run_float32(grad, p0, 100, lr)
    p = run_8bit(grad, p0, 100, lr)
    assert np.count_nonzero(np.abs(p - ref) > 1.0) == 0
    assert abs(loss(p) - loss(ref)) <= 0.01 * abs(loss(ref))


# --- bad input ----------------------------------------------------------------------------------


def bad_calls(n):
    """(description, keyword changes, expected exception) for adam8bit_step."""
    blocks = lowbit.block_count(n)
    return [
        ("int8 codes", {"exp_avg_codes": np.zeros(n, np.int8)}, TypeError),
        ("float32 codes", {"exp_avg_sq_codes": np.zeros(n, np.float32)}, TypeError),
        ("short codes", {"exp_avg_codes": np.zeros(n - 1, np.uint8)}, ValueError),
        ("scales too short", {"exp_avg_scales": np.zeros(blocks - 1, np.float32)}, ValueError),
        ("scales too long", {"exp_avg_sq_scales": np.zeros(blocks + 1, np.float32)}, ValueError),
        ("float64 scales", {"exp_avg_scales": np.zeros(blocks, np.float64)}, TypeError),
        ("2-D codes", {"exp_avg_codes": np.zeros((1, n), np.uint8)}, ValueError),
        ("read-only codes", {"exp_avg_codes": np.zeros(n, np.uint8)}, ValueError),
        ("amsgrad without max", {"amsgrad": True}, ValueError),
        ("max without amsgrad", {"max_exp_avg_sq_codes": np.zeros(n, np.uint8)}, ValueError),
        ("shared codes", {"exp_avg_sq_codes": "exp_avg_codes"}, ValueError),
    ]


@pytest.mark.parametrize("case", range(11))
def test_bad_input_raises_before_any_write(rng, case):
    n = 1000
    p, state = fresh(rng, n, steps=1)
    g = grads(rng, n)
    what, changes, error = bad_calls(n)[case]
    kwargs = {**state, **changes}
    if what == "read-only codes":
        kwargs["exp_avg_codes"].setflags(write=False)
    if what == "shared codes":
        kwargs["exp_avg_sq_codes"] = kwargs["exp_avg_codes"]
    before = [p.copy()] + [a.copy() for a in state.values()]
    with pytest.raises(error):
        core.adam8bit_step(p, g, **kwargs, step=2)
    assert all(same_bits(x, y) for x, y in zip([p, *state.values()], before))


def test_float64_parameters_are_refused(rng):
    p = rng.standard_normal(300)
    with pytest.raises(TypeError, match="float64"):
        core.adam8bit_step(p, p.copy(), **lowbit.zeros_state(300), step=1)
