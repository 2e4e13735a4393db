"""Adam's family (RMSprop, Adamax, NAdam, RAdam): the kernels against ``fastadam.reference`` on
every ISA and thread count, validation, the optimizer classes (state in torch's layout, one
native call per step, checkpoints), 200-step trajectories against torch.optim, and the
``fastadam.torch`` classes."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

import fastadam
from fastadam import _core, reference

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
SIZES = [0, 1, 3, 8, 15, 17, 33, 1000, 40_003]

# Every option of each optimizer, alone and combined (betas with beta1 < 0.5 take lerp's other
# branch).
OPTIONS = {
    "RMSprop": {
        "plain": {"lr": 0.01},
        "alpha": {"lr": 0.01, "alpha": 0.9},
        "eps": {"lr": 0.01, "eps": 1e-3},
        "centered": {"lr": 0.01, "centered": True},
        "momentum": {"lr": 0.01, "momentum": 0.9},
        "weight_decay": {"lr": 0.01, "weight_decay": 0.1},
        "maximize": {"lr": 0.01, "maximize": True},
        "combined": {
            "lr": 0.005,
            "alpha": 0.3,
            "centered": True,
            "momentum": 0.5,
            "weight_decay": 0.05,
            "maximize": True,
        },
    },
    "Adamax": {
        "plain": {"lr": 0.02},
        "betas": {"lr": 0.02, "betas": (0.3, 0.9)},
        "eps": {"lr": 0.02, "eps": 1e-3},
        "weight_decay": {"lr": 0.02, "weight_decay": 0.1},
        "maximize": {"lr": 0.02, "maximize": True},
    },
    "NAdam": {
        "plain": {"lr": 0.01},
        "betas": {"lr": 0.01, "betas": (0.3, 0.99)},
        "eps": {"lr": 0.01, "eps": 1e-3},
        "weight_decay": {"lr": 0.01, "weight_decay": 0.1},
        "decoupled": {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        "momentum_decay": {"lr": 0.01, "momentum_decay": 0.02},
        "maximize": {"lr": 0.01, "maximize": True},
    },
    "RAdam": {
        "plain": {"lr": 0.01},
        "betas": {"lr": 0.01, "betas": (0.3, 0.99)},
        "eps": {"lr": 0.01, "eps": 1e-3},
        "weight_decay": {"lr": 0.01, "weight_decay": 0.1},
        "decoupled": {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        "maximize": {"lr": 0.01, "maximize": True},
    },
}
CASES = {
    f"{name}-{case}": (name, kw) for name, cases in OPTIONS.items() for case, kw in cases.items()
}
NAMES = list(OPTIONS)


def randn(rng, shape, dtype):
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def assert_same(actual, expected):
    np.testing.assert_array_equal(actual, expected, strict=True)


def state_names(name):
    """The native entry's state lists, in order."""
    return [s for s in getattr(fastadam, name)._state_arrays if s != "master_param"]


def used_states(name, kw):
    cls = getattr(fastadam, name)
    return set(cls._arrays(None, group_values(name, kw)))


def group_values(name, kw):
    """A group's validated values with the class's defaults filled in."""
    cls = getattr(fastadam, name)
    return cls._validate(cls([np.zeros(1)], **kw).param_groups[0])


def fresh_state(name, kw, n, dtype, rng):
    """Random state a long run could have reached (positive second moments, and a centered
    RMSprop's mean small enough that the variance stays positive)."""
    out = {}
    for s in used_states(name, kw):
        if s in ("exp_avg_sq", "square_avg", "exp_inf"):
            out[s] = np.asarray(rng.uniform(0.5, 2.0, n), dtype=dtype)
        elif s == "grad_avg":
            out[s] = np.asarray(0.1 * rng.standard_normal(n), dtype=dtype)
        else:
            out[s] = randn(rng, n, dtype)
    return out


def native_step(name, p, g, state, step, kw):
    cls = getattr(fastadam, name)
    hyper = cls._hyper_tuple(group_values(name, kw))
    lists = [[state.get(s)] for s in state_names(name)]
    entry = getattr(_core, f"{name.lower()}_step_sets")
    return entry([p], [g], *lists, step, hyper)


def reference_step(name, p, g, state, step, kw):
    kw = dict(kw)
    if "decoupled_weight_decay" in kw:
        kw["decoupled"] = kw.pop("decoupled_weight_decay")
    fn = getattr(reference, f"{name.lower()}_step")
    if name == "RMSprop":
        return fn(
            p,
            g,
            state["square_avg"],
            step=step,
            grad_avg=state.get("grad_avg"),
            momentum_buffer=state.get("momentum_buffer"),
            **kw,
        )
    first, second = state_names(name)
    return fn(p, g, state[first], state[second], step=step, **kw)


# -- kernels against the reference ---------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_kernel_matches_reference_bitwise(isa, case, dtype, size, rng):
    name, kw = case
    p = randn(rng, size, dtype)
    state = fresh_state(name, kw, size, dtype, rng)
    ref_p, ref_state = p.copy(), copy.deepcopy(state)
    for t in (1, 2, 7, 50):  # RAdam rectifies from step 6 on
        g = randn(rng, size, dtype)
        native_step(name, p, g, state, t, kw)
        reference_step(name, ref_p, g, ref_state, t, kw)
        assert_same(p, ref_p)
        for s in state:
            assert_same(state[s], ref_state[s])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_results_do_not_depend_on_isa_or_threads(name, dtype, threads, rng):
    n = 100_003
    kw = OPTIONS[name]["combined" if name == "RMSprop" else "weight_decay"]
    start_p, g = randn(rng, n, dtype), randn(rng, n, dtype)
    start = fresh_state(name, kw, n, dtype, rng)
    results = []
    for isa in fastadam.available_isas():
        for count in (1, 2, 3):
            fastadam.set_isa(isa)
            threads(count)
            p, state = start_p.copy(), copy.deepcopy(start)
            native_step(name, p, g, state, 9, kw)
            results.append([p, *state.values()])
    fastadam.set_isa(fastadam.available_isas()[0])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_same(a, b)


def test_nadam_mu_product_is_torchs_float32_product():
    torch = pytest.importorskip("torch")
    for beta1, psi in ((0.9, 4e-3), (0.5, 0.02)):
        product = torch.ones((), dtype=torch.float32)
        for t in range(1, 301):
            product *= beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            if t in (1, 2, 17, 300):
                assert _core.nadam_mu_product(beta1, psi, t) == product.item()
                assert reference.nadam_mu_product(beta1, psi, t) == product.item()
    # Out of order and repeated (the native cache continues or restarts its products).
    for t in (5, 300, 3, 300, 299):
        assert _core.nadam_mu_product(0.9, 4e-3, t) == reference.nadam_mu_product(0.9, 4e-3, t)
    assert _core.nadam_mu_product(0.9, 4e-3, 0) == 1.0


@pytest.mark.parametrize(
    "beta1, psi, last",
    [
        (0.9, 4e-3, 3000),  # the product reaches 0 near step 1000
        (0.3, 0.0, 200),  # mu constant
        (0.999, 0.5, 160_000),  # mu reaches beta1's float early; the product then stalls
        (1 - 2.0**-26, 4e-3, 160_000),  # beta1 rounds to 1: mu too, from step ~1e5
    ],
)
def test_nadam_mu_product_is_the_full_loop_and_stops_early(beta1, psi, last):
    """The native product skips only what cannot change it (steps that leave it unchanged, pow
    once mu rounds to beta1's float): its value at any step is the term-by-term float32 loop's,
    and at step 2**40 it is the value the loop has reached for good by ``last``."""
    product, checkpoints = np.float32(1.0), {}
    marks = {1, 2, 50, 999, 1000, 1001, 5000, 50_000, 100_000, last}
    for t in range(1, last + 1):
        product = np.float32(product * np.float32(beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))))
        if t in marks:
            checkpoints[t] = product
    for t, want in checkpoints.items():
        assert _core.nadam_mu_product(beta1, psi, t) == want, t
    # A run resumed at a huge step: a subprocess, so that a loop over every step fails the test
    # by its timeout instead of hanging the suite.
    code = f"from fastadam import _core; print(_core.nadam_mu_product({beta1!r}, {psi!r}, 2**40))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert np.float32(float(out.stdout)) == checkpoints[last]


# -- kernel validation ---------------------------------------------------------------------


def test_native_entries_refuse_bad_input_and_write_nothing(rng):
    p, g = randn(rng, 9, np.float64), randn(rng, 9, np.float64)
    a, b = np.ones(9), np.ones(9)
    before = [x.copy() for x in (p, g, a, b)]
    rms = (0.01, 0.99, 1e-8, 0.0, 0.0, False, False)
    calls = [
        (lambda: _core.rmsprop_step_sets([p], [g], [a], [b], [None], 1, rms), "grad_avgs"),
        (
            lambda: _core.rmsprop_step_sets(
                [p], [g], [a], [None], [None], 1, (0.01, 0.99, 1e-8, 0.0, 0.0, True, False)
            ),
            "grad_avgs",
        ),
        (lambda: _core.rmsprop_step_sets([p], [g], [a], [None], [b], 1, rms), "momentum_buffers"),
        (
            lambda: _core.rmsprop_step_sets(
                [p], [g], [a], [None], [None], 1, (0.01, -0.5, 1e-8, 0.0, 0.0, False, False)
            ),
            "alpha",
        ),
        (lambda: _core.rmsprop_step_sets([p], [g], [a], [None], [None], 0, rms), "step"),
        (
            lambda: _core.adamax_step_sets([p], [g], [a], [a], 1, (0.1, 0.9, 0.99, 0, 0, False)),
            "memory",
        ),
        (
            lambda: _core.adamax_step_sets(
                [p], [g], [a], [b.astype(np.float32)], 1, (0.1, 0.9, 0.99, 0, 0, False)
            ),
            "exp_infs",
        ),
        (
            lambda: _core.nadam_step_sets(
                [p], [g], [a], [b], 1, (0.1, 0.9, 0.99, 1e-8, 0, -1.0, False, False)
            ),
            "momentum_decay",
        ),
        (
            lambda: _core.radam_step_sets(
                [p], [g], [a], [b], 1, (0.1, 1.0, 0.99, 1e-8, 0, False, False)
            ),
            "betas",
        ),
        (
            lambda: _core.radam_step_sets([p], [g[:5]], [a], [b], 1, (0.1, 0.9, 0.99, 0, 0, 0, 0)),
            "shape",
        ),
        (lambda: _core.radam_step_sets([p], [g], [a], [b], 1, (0.1, 0.9)), "hypers"),
    ]
    for call, message in calls:
        with pytest.raises((TypeError, ValueError), match=message):
            call()
        for x, old in zip((p, g, a, b), before):
            assert_same(x, old)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("RMSprop", {"lr": -0.1}, "Invalid learning rate: -0.1"),
        ("RMSprop", {"alpha": -0.1}, "Invalid alpha value: -0.1"),
        ("RMSprop", {"momentum": -0.1}, "Invalid momentum value: -0.1"),
        ("RMSprop", {"eps": -0.1}, "Invalid epsilon value: -0.1"),
        ("RMSprop", {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        ("Adamax", {"betas": (1.0, 0.9)}, "Invalid beta parameter at index 0: 1.0"),
        ("Adamax", {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
        ("Adamax", {"lr": -0.1}, "Invalid learning rate: -0.1"),
        ("NAdam", {"momentum_decay": -0.1}, "Invalid momentum_decay value: -0.1"),
        ("NAdam", {"eps": -0.1}, "Invalid epsilon value: -0.1"),
        ("RAdam", {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        ("RAdam", {"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
    ],
)
def test_bad_hyper_parameter_is_value_error_as_torch(name, kwargs, message):
    cls = getattr(fastadam, name)
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls([np.zeros(3)], **kwargs)
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls([{"params": [np.zeros(3)], **kwargs}])
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=f"^{message}$"):
        getattr(torch.optim, name)([torch.zeros(3)], **kwargs)


# -- the optimizer classes -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_signature_follow_torch(name):
    torch = pytest.importorskip("torch")
    import inspect

    ours = inspect.signature(getattr(fastadam, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    for key, p in theirs.items():
        if key in ("foreach", "capturable", "differentiable", "params"):
            continue
        assert key in ours, key
        assert ours[key].default == p.default, key
    group = getattr(fastadam, name)([np.zeros(2)]).param_groups[0]
    tgroup = getattr(torch.optim, name)([torch.zeros(2)]).param_groups[0]
    for key, value in group.items():
        if key != "params":
            assert tgroup[key] == value, key


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_class_steps_match_reference_on_both_paths(case, rng):
    """Two groups of mixed dtypes (the general path), then one group (the cached path from its
    second step), against the reference set by set."""
    name, kw = case
    cls = getattr(fastadam, name)
    a, b = randn(rng, 37, np.float32), randn(rng, 50, np.float64)
    opt = cls([{"params": [a]}, {"params": [b], **kw}], lr=0.02)
    ref = {
        "a": (a.copy(), fresh_zero(name, {"lr": 0.02}, a)),
        "b": (b.copy(), fresh_zero(name, kw, b)),
    }
    for t in range(1, 5):
        ga, gb = randn(rng, 37, np.float32), randn(rng, 50, np.float64)
        opt.step([ga, gb])
        reference_step(name, ref["a"][0], ga, ref["a"][1], t, {"lr": 0.02})
        reference_step(name, ref["b"][0], gb, ref["b"][1], t, kw)
    assert_same(a, ref["a"][0])
    assert_same(b, ref["b"][0])
    assert set(opt.state[b]) == {"step", *used_states(name, kw)}
    assert opt.state[b]["step"] == 4

    c = randn(rng, 1001, np.float32)
    opt = cls([c], **kw)
    ref_c, ref_state = c.copy(), fresh_zero(name, kw, c)
    for t in range(1, 6):
        g = randn(rng, 1001, np.float32)
        opt.step([g])
        reference_step(name, ref_c, g, ref_state, t, kw)
    assert opt._fast is not None  # the cached path ran
    assert_same(c, ref_c)
    for s, v in ref_state.items():
        assert_same(opt.state[c][s], v)


def fresh_zero(name, kw, p):
    return {s: np.zeros_like(p) for s in used_states(name, kw)}


@pytest.mark.parametrize("name", NAMES)
def test_one_native_call_per_step_for_all_groups_and_dtypes(name, monkeypatch, rng):
    import importlib

    module = importlib.import_module(f"fastadam.optim.{name.lower()}")
    attr = f"_{name.lower()}_step_sets"
    real = getattr(module, attr)
    calls = []
    monkeypatch.setattr(module, attr, lambda *a: (calls.append(1), real(*a))[1])
    params = [randn(rng, 5, np.float32), randn(rng, 7, np.float64), randn(rng, 3, np.float32)]
    opt = getattr(fastadam, name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}])
    for _ in range(3):
        opt.step([randn(rng, p.shape, p.dtype) for p in params])
    assert len(calls) == 3
    # A bad gradient changes nothing, and the message names it.
    before = [p.copy() for p in params]
    steps = opt.state_dict()["state"][0]["step"].copy()
    with pytest.raises(TypeError, match=r"grads\[1\]"):
        opt.step([randn(rng, 5, np.float32), randn(rng, 7, np.float32), None])
    for p, old in zip(params, before):
        assert_same(p, old)
    assert opt.state_dict()["state"][0]["step"] == steps


@pytest.mark.parametrize("via", ["state_dict", "npz"])
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_continues_bit_for_bit(name, via, tmp_path, rng):
    kw = OPTIONS[name]["combined" if name == "RMSprop" else "weight_decay"]
    cls = getattr(fastadam, name)
    p = randn(rng, 33, np.float64)
    opt = cls([p], **kw)
    for _ in range(3):
        opt.step([randn(rng, 33, np.float64)])
    q = p.copy()
    twin = cls([q], **kw)
    if via == "npz":
        opt.save(tmp_path / "opt.npz")
        twin.load(tmp_path / "opt.npz")
    else:
        twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(3):
        g = randn(rng, 33, np.float64)
        opt.step([g])
        twin.step([g.copy()])
    assert_same(p, q)


# -- against torch -------------------------------------------------------------------------

# max |ours - torch| / max |torch| over every step, as the bar states it.
BAR = {np.float32: 1e-6, np.float64: 1e-13}


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(previous)


def random_walk(n=257, steps=200, seed=11):
    """A start in [-2, 2] and a fixed sequence of gradients (a drift per element plus noise):
    the gradients do not depend on the parameters, so rounding differences add up step by step
    rather than being amplified by the dynamics; weight decay feeds the parameter back
    contractively."""
    r = np.random.default_rng(seed)
    x0 = r.uniform(-2.0, 2.0, n)
    return x0, r.standard_normal((steps, n)) + r.uniform(-1.0, 1.0, n)


def torch_trajectories(torch, name, kw, dtype, ours_class=None):
    x0, grads = random_walk()
    ours = x0.astype(dtype)
    if ours_class is None:
        opt = getattr(fastadam, name)([ours], **kw)
    else:
        mine = torch.tensor(ours)
        opt = ours_class([mine], **kw)
    theirs = torch.tensor(x0.astype(dtype))
    topt = getattr(torch.optim, name)([theirs], foreach=False, **kw)
    a, b = [], []
    for g in grads:
        g = g.astype(dtype)
        if ours_class is None:
            opt.step([g])
        else:
            mine.grad = torch.from_numpy(g.copy())
            opt.step()
            ours = mine.numpy()
        theirs.grad = torch.from_numpy(g.copy())
        topt.step()
        a.append(ours.copy())
        b.append(theirs.numpy().copy())
    return np.array(a), np.array(b), x0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_200_step_trajectory_matches_torch(isa, case, dtype, torch):
    name, kw = case
    ours, theirs, x0 = torch_trajectories(torch, name, kw, dtype)
    assert np.max(np.abs(theirs[-1] - x0)) > 0.3  # it did move
    # Measured (random_walk, every case): at most 2.3e-7 (float32) and 5.6e-16 (float64); NAdam
    # in float64 2.8e-16, its mu_product being torch's float32 product.
    assert np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)) <= BAR[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_torch_classes_step_as_torch_optim(name, dtype, torch):
    from fastadam import torch as ftorch

    for kw in OPTIONS[name].values():
        ours, theirs, _ = torch_trajectories(torch, name, kw, dtype, getattr(ftorch, name))
        assert np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)) <= BAR[dtype]


@pytest.mark.parametrize("direction", ["ours-to-torch", "torch-to-ours"])
@pytest.mark.parametrize("name", NAMES)
def test_state_dicts_interoperate_with_torch(name, direction, torch, rng):
    kw = OPTIONS[name]["combined" if name == "RMSprop" else "weight_decay"]
    x0 = rng.standard_normal(20)
    grads = [rng.standard_normal(20) for _ in range(8)]
    ours = x0.copy()
    opt = getattr(fastadam, name)([ours], **kw)
    theirs = torch.tensor(x0)
    topt = getattr(torch.optim, name)([theirs], foreach=False, **kw)
    for g in grads[:4]:
        if direction == "ours-to-torch":
            opt.step([g])
        else:
            theirs.grad = torch.from_numpy(g.copy())
            topt.step()
    if direction == "ours-to-torch":
        sd = opt.state_dict()
        assert set(sd["state"][0]) == set(topt_state_keys(torch, name, kw))
        topt.load_state_dict(
            {
                "state": {
                    k: {n: torch.tensor(np.asarray(v)) for n, v in s.items()}
                    for k, s in sd["state"].items()
                },
                "param_groups": [dict(g, foreach=False) for g in sd["param_groups"]],
            }
        )
        theirs.copy_(torch.from_numpy(ours))
    else:
        sd = topt.state_dict()
        opt.load_state_dict(
            {
                "state": {k: {n: v.numpy() for n, v in s.items()} for k, s in sd["state"].items()},
                "param_groups": sd["param_groups"],
            }
        )
        ours[...] = theirs.numpy()
    for g in grads[4:]:
        opt.step([g])
        theirs.grad = torch.from_numpy(g.copy())
        topt.step()
    # torch's load_state_dict casts every floating state tensor but 'step' to the parameter's
    # dtype, so a loaded NAdam continues its mu_product in float64, not float32 as it started.
    tol = 1e-10 if (name, direction) == ("NAdam", "ours-to-torch") else 1e-13
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=tol, atol=tol)


def topt_state_keys(torch, name, kw):
    p = torch.zeros(3)
    topt = getattr(torch.optim, name)([p], **kw)
    p.grad = torch.ones(3)
    topt.step()
    return topt.state[p].keys()


def test_torch_nadam_state_dict_holds_mu_product(torch):
    from fastadam import torch as ftorch

    x, y = torch.ones(4), torch.ones(4)
    ours, theirs = (
        ftorch.NAdam([x], momentum_decay=0.01),
        torch.optim.NAdam([y], momentum_decay=0.01),
    )
    for _ in range(7):
        x.grad, y.grad = torch.full((4,), 0.5), torch.full((4,), 0.5)
        ours.step()
        theirs.step()
    mine, want = ours.state_dict()["state"][0], theirs.state_dict()["state"][0]
    assert set(mine) == set(want)
    assert mine["mu_product"].dtype == torch.float32
    assert mine["mu_product"].item() == want["mu_product"].item()
    assert "mu_product" not in ours.state[x]  # the live state is not changed
    torch.optim.NAdam([torch.ones(4)]).load_state_dict(ours.state_dict())
