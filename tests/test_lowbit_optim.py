"""Adam/AdamW(state_bits=8): which parameters get 8-bit state, the step against the functional
entries (bitwise), state dicts of both kinds, .npz checkpoints, moving to and from torch."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastadam
from fastadam import lowbit

CODED = ["exp_avg_codes", "exp_avg_scales", "exp_avg_sq_codes", "exp_avg_sq_scales"]


def make_params(rng):
    """A matrix and a vector above min_8bit_size, one below, one float64 above."""
    return [
        rng.standard_normal((64, 100)).astype(np.float32),
        rng.standard_normal(10).astype(np.float32),
        rng.standard_normal(5000).astype(np.float32),
        rng.standard_normal(4096),
    ]


def grads_for(rng, params):
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))
    )


def same_state_dicts(a, b):
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert a["state"][k].keys() == b["state"][k].keys()
        for name in a["state"][k]:
            assert same(a["state"][k][name], b["state"][k][name]), (k, name)


@pytest.mark.parametrize("cls", [fastadam.Adam, fastadam.AdamW])
@pytest.mark.parametrize("amsgrad", [False, True], ids=["plain", "amsgrad"])
def test_step_matches_functional_entries(rng, cls, amsgrad):
    params = make_params(rng)
    opt = cls(params, lr=1e-2, amsgrad=amsgrad, state_bits=8, seed=4)
    copies = [p.copy() for p in params]
    coded = [lowbit.zeros_state(p.size, amsgrad) for p in params[:3:2]]
    floats = [
        {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        | ({"max_exp_avg_sq": np.zeros_like(p)} if amsgrad else {})
        for p in params[1::2]
    ]
    decay = cls is fastadam.AdamW
    for t in range(1, 5):
        gs = grads_for(rng, params)
        opt.step(gs)
        common = {"step": t, "lr": 1e-2, "amsgrad": amsgrad, "decoupled": decay}
        common["weight_decay"] = 1e-2 if decay else 0.0
        for k, (q, g) in enumerate(zip(copies, gs)):
            if k in (0, 2):
                fastadam.adam8bit_step(q, g, **coded[k // 2], seed=4, **common)
            else:
                fastadam.adam_step(q, g, **floats[k // 2], **common)
    for p, q in zip(params, copies):
        assert same(p, q)
    assert sorted(opt.state[params[0]]) == sorted(
        ["step", *CODED] + (["max_exp_avg_sq_codes", "max_exp_avg_sq_scales"] if amsgrad else [])
    )
    assert "exp_avg" in opt.state[params[1]] and "exp_avg" in opt.state[params[3]]


def test_state_bits_and_min_size_are_checked(rng):
    params = make_params(rng)
    for bits in (4, 16, 64, True, "8"):
        with pytest.raises(ValueError, match="state_bits"):
            fastadam.Adam(params, state_bits=bits)
    with pytest.raises(ValueError, match="min_8bit_size"):
        fastadam.Adam(params, state_bits=8, min_8bit_size=-1)
    with pytest.raises(TypeError, match="min_8bit_size"):
        fastadam.Adam(params, state_bits=8, min_8bit_size=1.5)


def test_min_8bit_size_decides_per_parameter(rng):
    params = [rng.standard_normal(n).astype(np.float32) for n in (99, 100, 101)]
    opt = fastadam.Adam(params, state_bits=8, min_8bit_size=100)
    opt.step(grads_for(rng, params))
    assert "exp_avg" in opt.state[params[0]]
    assert "exp_avg_codes" in opt.state[params[1]] and "exp_avg_codes" in opt.state[params[2]]


def test_state_bytes_per_parameter(rng):
    p = rng.standard_normal(1 << 20).astype(np.float32)
    opt = fastadam.Adam([p], state_bits=8)
    opt.step([rng.standard_normal(p.size).astype(np.float32)])
    state = opt.state[p]
    nbytes = sum(state[k].nbytes for k in CODED)
    assert nbytes / p.size <= 2.05


def trained(rng, params, steps=3, **kwargs):
    opt = fastadam.Adam(params, lr=1e-2, state_bits=8, **kwargs)
    for _ in range(steps):
        opt.step(grads_for(rng, params))
    return opt


def test_state_dict_round_trips_exactly_and_carries_the_version(rng):
    params = make_params(rng)
    opt = trained(rng, params, amsgrad=True)
    sd = copy.deepcopy(opt.state_dict())
    assert int(sd["state"][0]["lowbit_version"]) == lowbit.FORMAT_VERSION
    assert "lowbit_version" not in sd["state"][1]
    other = fastadam.Adam([p.copy() for p in params], lr=1e-2, state_bits=8, amsgrad=True)
    other.load_state_dict(sd)
    same_state_dicts(other.state_dict(), sd)
    # both continue with the same bits
    gs = grads_for(rng, params)
    opt.step(gs)
    other.step(gs)
    for p, q in zip(params, other.param_groups[0]["params"]):
        assert same(p, q)


def test_npz_round_trip_without_pickle(rng, tmp_path):
    params = make_params(rng)
    opt = trained(rng, params)
    path = tmp_path / "opt.npz"
    opt.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert (
            "state.0.exp_avg_codes" in npz.files and npz["state.0.exp_avg_codes"].dtype == np.uint8
        )
    other = fastadam.Adam([p.copy() for p in params], lr=1e-2, state_bits=8)
    other.load(path)
    same_state_dicts(other.state_dict(), opt.state_dict())


def test_float32_export_and_import(rng):
    params = make_params(rng)
    opt = trained(rng, params)
    exported = opt.state_dict(dequantize=True)
    s0 = exported["state"][0]
    assert sorted(s0) == ["exp_avg", "exp_avg_sq", "step"] and s0["exp_avg"].shape == (64, 100)
    state = opt.state[params[0]]
    decoded = lowbit.decode(state["exp_avg_codes"], state["exp_avg_scales"], "exp_avg")
    assert same(s0["exp_avg"], decoded.reshape(64, 100))
    # a float optimizer takes it as is; an 8-bit one quantizes it back to the same codes
    plain = fastadam.Adam([p.copy() for p in params], lr=1e-2)
    plain.load_state_dict(exported)
    assert same(plain.state[plain.param_groups[0]["params"][0]]["exp_avg"], s0["exp_avg"])
    again = fastadam.Adam([p.copy() for p in params], lr=1e-2, state_bits=8)
    again.load_state_dict(exported)
    same_state_dicts(again.state_dict(), opt.state_dict())
    # and a float optimizer loading the 8-bit dict decodes it
    plain8 = fastadam.Adam([p.copy() for p in params], lr=1e-2)
    plain8.load_state_dict(opt.state_dict())
    same_state_dicts(plain8.state_dict(), plain.state_dict())


def test_bad_8bit_state_dicts_change_nothing(rng):
    params = make_params(rng)
    opt = trained(rng, params)
    before = copy.deepcopy(opt.state_dict())
    for key, value, error in [
        ("exp_avg_codes", np.zeros(6400, np.int8), "uint8"),
        ("exp_avg_scales", np.zeros(3, np.float32), "shape"),
        ("lowbit_version", np.array(2), "version"),
    ]:
        bad = copy.deepcopy(before)
        bad["state"][0][key] = value
        with pytest.raises(ValueError, match=error):
            opt.load_state_dict(bad)
        same_state_dicts(opt.state_dict(), before)


def test_moves_to_and_from_torch(rng):
    torch = pytest.importorskip("torch")
    params = make_params(rng)[:3]
    opt = trained(rng, params)
    exported = opt.state_dict(dequantize=True)
    tensors = [torch.from_numpy(p.copy()) for p in params]
    topt = torch.optim.Adam(tensors, lr=1e-2)
    as_torch = {
        "state": {
            k: {n: torch.from_numpy(np.asarray(v).copy()) for n, v in s.items()}
            for k, s in exported["state"].items()
        },
        "param_groups": [
            {**exported["param_groups"][0], "params": [0, 1, 2], "foreach": None, "fused": None}
        ],
    }
    topt.load_state_dict(as_torch)
    assert torch.equal(
        topt.state[tensors[0]]["exp_avg"], torch.from_numpy(exported["state"][0]["exp_avg"])
    )
    back = fastadam.Adam([p.copy() for p in params], lr=1e-2, state_bits=8)
    back.load_state_dict(topt.state_dict())
    same_state_dicts(back.state_dict(), opt.state_dict())


def test_bfloat16_parameters_with_8bit_state(rng):
    from fastadam.dtypes import BFLOAT16

    if BFLOAT16 is None:
        pytest.skip("bfloat16 needs ml_dtypes")
    p = rng.standard_normal(8192).astype(BFLOAT16)
    q = p.copy()
    opt = fastadam.Adam([p], lr=1e-2, state_bits=8, stochastic_rounding=True, seed=2)
    state = lowbit.zeros_state(p.size)
    for t in range(1, 4):
        g = rng.standard_normal(p.size).astype(BFLOAT16)
        opt.step([g])
        fastadam.adam8bit_step(q, g, **state, step=t, lr=1e-2, stochastic_rounding=True, seed=2)
    assert same(p, q)
    assert sum(opt.state[p][k].nbytes for k in CODED) / p.size <= 2.05
