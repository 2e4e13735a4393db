"""Refusals that leave everything as it was: a bad state dict given to ``load_state_dict`` (the
NumPy classes, ``fastadam.torch``, ``DynamicLossScaler``), a bad option met by the cached step,
a loss scale whose inverse overflows; and errors that name the state key the user sees.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import fastadam


def _snapshot(opt) -> bytes:
    """Everything a NumPy optimizer holds: parameters, state (steps included), groups."""
    opt._sync_steps()
    return pickle.dumps(
        (
            opt._params(),
            [sorted(dict.items(s)) for _, s in opt._state.values()],
            [sorted((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups],
        )
    )


def _stepped(cls, n=300, steps=2, **kw):
    rng = np.random.default_rng(7)
    params = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
    opt = cls(params, lr=1e-2, **kw)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in params]
    for _ in range(steps):
        opt.step(grads)
    return opt, params, grads


# -- the cached step refuses what the general step refuses -------------------------------------


@pytest.mark.parametrize(
    "cls, key, value",
    [
        (fastadam.Adam, "eps_mode", "bogus"),
        (fastadam.Adam, "eps_mode", None),
        (fastadam.AdamW, "eps_mode", ["keras"]),
        (fastadam.SWATS, "phase", "bogus"),
        (fastadam.Adagrad, "initial_accumulator_value", -1.0),
        (fastadam.Adagrad, "initial_accumulator_value", float("nan")),
    ],
)
def test_cached_step_refuses_a_bad_group_value(cls, key, value):
    opt, _, grads = _stepped(cls)
    assert opt._fast is not None  # the steady-state path is in use
    opt.param_groups[0][key] = value
    before = _snapshot(opt)
    with pytest.raises(ValueError, match=key):
        opt.step(grads)
    assert _snapshot(opt) == before


# -- load_state_dict: structure, master copies, 8-bit entries ---------------------------------


@pytest.mark.parametrize(
    "damage, error",
    [
        (lambda sd: sd["param_groups"][0].pop("params"), ValueError),
        (lambda sd: sd.__setitem__("state", None), TypeError),
        (lambda sd: sd.__setitem__("param_groups", [3]), ValueError),
        (lambda sd: sd.__setitem__("param_groups", "groups"), TypeError),
        (lambda sd: sd["param_groups"][0].__setitem__("params", [0, "x"]), TypeError),
        (lambda sd: sd["state"].__setitem__(("a",), {}), TypeError),
    ],
)
@pytest.mark.parametrize("state_bits", [32, 8])
def test_load_refuses_a_malformed_state_dict_unchanged(damage, error, state_bits):
    opt, _, _ = _stepped(fastadam.Adam, n=5000, state_bits=state_bits)
    sd = copy.deepcopy(opt.state_dict())
    damage(sd)
    before = _snapshot(opt)
    with pytest.raises(error, match="state_dict"):
        opt.load_state_dict(sd)
    assert _snapshot(opt) == before


def test_load_refuses_a_master_copy_of_a_float32_parameter():
    opt, params, _ = _stepped(fastadam.Adam, master_weights=True)
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["master_param"] = params[0].copy()
    before = _snapshot(opt)
    with pytest.raises(ValueError, match=r"state\[0\]\['master_param'\].*float32"):
        opt.load_state_dict(sd)
    assert _snapshot(opt) == before


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda e: e.__setitem__("lowbit_version", 1.5), "version"),
        (lambda e: e.__setitem__("lowbit_version", [1]), "version"),
        (lambda e: e.__setitem__("exp_avg", np.zeros(5000, np.float32)), "both 'exp_avg'"),
    ],
)
def test_load_refuses_a_doubtful_8bit_entry(damage, match):
    opt, _, _ = _stepped(fastadam.Adam, n=5000, state_bits=8)
    sd = copy.deepcopy(opt.state_dict())
    damage(sd["state"][0])
    before = _snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    assert _snapshot(opt) == before


def test_errors_name_the_state_keys_the_user_sees():
    opt, params, grads = _stepped(fastadam.Adam, n=5000, state_bits=8)
    opt.state[params[0]]["exp_avg_codes"] = opt.state[params[0]]["exp_avg_codes"][:-1].copy()
    with pytest.raises(ValueError, match=r"\['exp_avg_codes'\]"):
        opt.step(grads)
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    p = np.ones(64, bf16)
    opt = fastadam.Adam([p], master_weights=True)
    opt.step([np.ones(64, bf16)])
    opt.state[p]["master_param"] = np.ones(64, np.float64)
    with pytest.raises(TypeError, match=r"\['master_param'\]"):
        opt.step([np.ones(64, bf16)])


# -- a loss scale whose inverse overflows float32 ------------------------------------------


@pytest.mark.parametrize("scale", [1e-39, 2.0**-127, 1e-320])
def test_grad_scale_below_2_to_minus_126_is_refused(scale):
    rng = np.random.default_rng(1)
    p = rng.standard_normal(64).astype(np.float32)
    g = np.zeros(64, np.float32)
    m, v = np.zeros(64, np.float32), np.zeros(64, np.float32)
    before = [a.copy() for a in (p, m, v)]
    with pytest.raises(ValueError, match="grad_scale"):
        fastadam.adam_step(p, g, m, v, step=1, grad_scale=scale, skip_nonfinite=True)
    assert all(np.array_equal(a, b) for a, b in zip((p, m, v), before))
    fastadam.adam_step(p, g, m, v, step=1, grad_scale=2.0**-126)  # the smallest allowed
    assert np.isfinite(p).all() and np.isfinite(m).all()


# -- DynamicLossScaler ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, error",
    [
        ({"skipped_steps": None}, TypeError),
        ({"clean_steps": "many"}, TypeError),
        ({"scale": -5.0}, ValueError),
        ({"growth_interval": 0}, ValueError),
        ({"backoff_factor": float("nan")}, ValueError),
        ({"min_scale": 4.0, "max_scale": 2.0}, ValueError),
    ],
)
def test_scaler_load_refuses_bad_values_unchanged(change, error):
    scaler = fastadam.DynamicLossScaler(init_scale=1024.0, growth_interval=3)
    scaler.update(fastadam.StepReport(skipped=True))
    before = scaler.state_dict()
    with pytest.raises(error):
        scaler.load_state_dict({**before, "scale": 7.0, **change})
    assert scaler.state_dict() == before
    partial = dict(before)
    del partial["skipped_steps"]
    with pytest.raises(ValueError, match="skipped_steps"):
        scaler.load_state_dict({**partial, "scale": 7.0})
    assert scaler.state_dict() == before


# -- fastadam.torch: a refused load keeps the optimizer's state and groups -----------------


_TORCH_DAMAGE = {
    "negative lr": lambda sd, key: sd["param_groups"][0].__setitem__("lr", -1.0),
    "short state": lambda sd, key: sd["state"][0].__setitem__(key, sd["state"][0][key][:-1]),
    "fractional step": lambda sd, key: sd["state"][0].__setitem__("step", 1.5),
}


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad", "RMSprop"])
@pytest.mark.parametrize("damage", list(_TORCH_DAMAGE))
def test_torch_load_refused_leaves_the_optimizer_as_it_was(name, damage):
    torch = pytest.importorskip("torch")
    ft = pytest.importorskip("fastadam.torch")
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(50)) for _ in range(2)]
    kw = {"momentum": 0.9} if name == "SGD" else {}
    opt = getattr(ft, name)(params, lr=1e-2, **kw)
    for p in params:
        p.grad = torch.randn(50)
    opt.step()
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    if damage == "fractional step" and "step" not in good["state"][0]:
        pytest.skip(f"{name} keeps no step count")
    key = next(k for k, v in good["state"][0].items() if k != "step" and v.dim() == 1)
    bad = copy.deepcopy(good)
    _TORCH_DAMAGE[damage](bad, key)
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == good["param_groups"]
    for index, entry in good["state"].items():
        for k, value in entry.items():
            assert torch.equal(after["state"][index][k], value), (index, k)
    before = [p.detach().clone() for p in params]
    opt.step()  # it still steps from its old state
    reference = getattr(ft, name)([torch.nn.Parameter(b.clone()) for b in before], lr=1e-2, **kw)
    reference.load_state_dict(good)
    for p, q in zip(reference.param_groups[0]["params"], params):
        p.grad = q.grad.clone()
    reference.step()
    for p, q in zip(reference.param_groups[0]["params"], params):
        assert torch.equal(p, q)


def test_torch_refusals_name_the_parameters_place_in_param_groups():
    """The native call counts only the parameters that step; its refusal names them as the
    user placed them (here the first parameter has no gradient)."""
    torch = pytest.importorskip("torch")
    ft = pytest.importorskip("fastadam.torch")
    big = torch.zeros(64)
    a = torch.nn.Parameter(torch.ones(8))
    b = torch.nn.Parameter(big[0:16])
    c = torch.nn.Parameter(torch.ones(8))
    d = torch.nn.Parameter(big[8:24])  # overlaps b
    opt = ft.Adam([{"params": [a, b]}, {"params": [c, d], "lr": 0.1}], lr=1e-2)
    b.grad, c.grad, d.grad = torch.ones(16), torch.ones(8), torch.ones(16)
    with pytest.raises(ValueError) as info:
        opt.step()
    assert str(info.value).startswith(
        "param_groups[1]['params'][1] and param_groups[0]['params'][1] share memory"
    )
    assert not opt.state and bool((big == 0).all())
