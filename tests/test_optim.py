"""fastadam.Adam / fastadam.AdamW: construction, step semantics, state_dict, checkpoints, torch."""

from __future__ import annotations

import ast
import copy
import io
import json
import pathlib

import numpy as np
import pytest

import fastadam
from fastadam import Adam, AdamW, _core, optim, reference

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
# Tolerances of the Bar: float32 against torch 1e-5, float64 1e-12.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def away_from_zero(shape, dtype, seed=0):
    """Values in [1, 2): a few steps never bring them near zero, so rtol alone is meaningful."""
    return np.asarray(1.0 + rng(seed).random(shape), dtype=dtype)


def grad_like(p, seed):
    return np.asarray(rng(seed).standard_normal(p.shape), dtype=p.dtype)


def snapshot(opt, params):
    return [p.copy() for p in params], copy.deepcopy(opt.state_dict())


def assert_unchanged(before, opt, params):
    old_params, old_sd = before
    for old, p in zip(old_params, params):
        np.testing.assert_array_equal(p, old)
    assert_state_dicts_equal(opt.state_dict(), old_sd)


def assert_state_dicts_equal(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert a["state"][k].keys() == b["state"][k].keys()
        for name in a["state"][k]:
            x, y = a["state"][k][name], b["state"][k][name]
            assert np.asarray(x).dtype == np.asarray(y).dtype
            np.testing.assert_array_equal(x, y, strict=True)


class RefAdam:
    """The optimizer's contract spelled out with fastadam.reference.adam_step, in float64."""

    def __init__(self, groups, decoupled=False):
        self.groups = [dict(g, params=[p.astype(np.float64) for p in g["params"]]) for g in groups]
        self.decoupled = decoupled
        self.state = {}

    def step(self, grads):
        i = 0
        for group in self.groups:
            for p in group["params"]:
                g = grads[i]
                if g is not None:
                    s = self.state.setdefault(
                        i, [0, np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)]
                    )
                    s[0] += 1
                    reference.adam_step(
                        p,
                        g.astype(np.float64),
                        s[1],
                        s[2],
                        step=s[0],
                        lr=group.get("lr", 1e-3),
                        betas=group.get("betas", (0.9, 0.999)),
                        eps=group.get("eps", 1e-8),
                        weight_decay=group.get("weight_decay", 1e-2 if self.decoupled else 0.0),
                        amsgrad=group.get("amsgrad", False),
                        max_exp_avg_sq=s[3] if group.get("amsgrad", False) else None,
                        maximize=group.get("maximize", False),
                        decoupled=self.decoupled,
                        bias_correction=group.get("bias_correction", True),
                    )
                i += 1

    @property
    def params(self):
        return [p for g in self.groups for p in g["params"]]


def assert_matches_reference(params, ref, dtype_rtol=None):
    for p, r in zip(params, ref.params):
        rtol = dtype_rtol or (1e-6 if p.dtype == np.float32 else 1e-13)
        np.testing.assert_allclose(p, r, rtol=rtol, atol=0)


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1e-3}, "Invalid learning rate: -0.001"),
        ({"lr": float("nan")}, "Invalid learning rate: nan"),
        ({"eps": -1.0}, "Invalid epsilon value: -1.0"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (-0.1, 0.999)}, "Invalid beta parameter at index 0: -0.1"),
        ({"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ],
    ids=["lr", "lr-nan", "eps", "beta1-one", "beta1-negative", "beta2", "weight_decay"],
)
@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
def test_bad_hyper_parameter_is_value_error_as_torch(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls([np.zeros(3)], **kwargs)
    # the same rule for a group's own values
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls([{"params": [np.zeros(3)], **kwargs}])


def test_hyper_parameter_of_wrong_type():
    with pytest.raises(TypeError, match="lr"):
        Adam([np.zeros(3)], lr="fast")
    with pytest.raises(TypeError, match="betas"):
        Adam([np.zeros(3)], betas=(0.9,))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: [np.zeros(3), [1.0, 2.0]], TypeError, r"params\[1\] must be a numpy.ndarray"),
        (lambda: [np.zeros(3, np.int64)], TypeError, r"params\[0\] must be float32, float64"),
        (lambda: [np.zeros(3, np.complex64)], TypeError, r"params\[0\] must be float32, float"),
        (lambda: [np.zeros(3, ">f8")], TypeError, r"params\[0\] must be float32, float64"),
        (lambda: [np.zeros(3), np.zeros(8)[::2]], ValueError, r"params\[1\] must be C-contig"),
        (lambda: [np.zeros((3, 4)).T], ValueError, r"params\[0\] must be C-contiguous"),
        (lambda: [np.zeros(3), np.zeros(3)], None, None),  # distinct arrays are fine
    ],
    ids=["not-array", "int", "complex", "big-endian", "strided", "transposed", "ok"],
)
def test_bad_param_is_rejected_by_name(make, error, message):
    if error is None:
        Adam(make())
        return
    with pytest.raises(error, match=message):
        Adam(make())


def test_read_only_param_is_rejected():
    p = np.zeros(3)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        Adam([p])


def test_param_in_group_is_named_by_group():
    with pytest.raises(TypeError, match=r"param_groups\[1\]\['params'\]\[0\]"):
        Adam([{"params": [np.zeros(2)]}, {"params": [np.zeros(2, np.int32)]}])


def test_params_must_be_an_iterable_of_arrays_or_dicts():
    with pytest.raises(TypeError, match="iterable of arrays or dicts"):
        Adam(np.zeros(3))
    with pytest.raises(TypeError, match="iterable"):
        Adam(3.0)
    with pytest.raises(TypeError, match="ordered collections"):
        Adam({1.0})
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])


def test_duplicate_and_overlapping_params_are_value_errors():
    p, q = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="duplicate parameters"):
        Adam([p, q, p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        Adam([{"params": [p]}, {"params": [q, p]}])
    buf = np.zeros(10)
    with pytest.raises(ValueError, match="share memory"):
        Adam([buf[:6], buf[4:]])
    with pytest.raises(ValueError, match="share memory"):
        Adam([{"params": [buf[:6]]}, {"params": [buf[5:]]}])
    Adam([buf[:5], buf[5:]])  # adjacent views are fine


def test_param_groups_hold_every_hyper_parameter_with_defaults_filled_in():
    p, q = np.zeros(3), np.zeros(2)
    opt = Adam([{"params": [p]}, {"params": q, "lr": 0.5, "name": "head"}], weight_decay=0.1)
    g0, g1 = opt.param_groups
    assert g0["params"][0] is p and g1["params"][0] is q  # a lone array becomes a list
    assert g0 == {
        "params": [p],
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.1,
        "amsgrad": False,
        "maximize": False,
        "bias_correction": True,
        "decoupled_weight_decay": False,
        "eps_mode": "torch",
    }
    assert g1["lr"] == 0.5 and g1["name"] == "head" and g1["weight_decay"] == 0.1
    assert opt.defaults["lr"] == 1e-3
    assert "Parameter Group 1" in repr(opt)


def test_adamw_defaults():
    opt = AdamW([np.zeros(3)])
    assert opt.param_groups[0]["weight_decay"] == 1e-2
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
    assert Adam([np.zeros(3)]).param_groups[0]["decoupled_weight_decay"] is False


def test_add_param_group():
    p, q = np.ones(3), np.ones(2, np.float32)
    opt = Adam([p], lr=0.1)
    opt.step([np.ones(3)])
    opt.add_param_group({"params": [q], "lr": 0.2})
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    ref = RefAdam([{"params": [np.ones(3)], "lr": 0.1}])
    ref.step([np.ones(3)])
    ref.groups.append({"params": [np.ones(2)], "lr": 0.2})
    opt.step([np.ones(3), np.ones(2, np.float32)])
    ref.step([np.ones(3), np.ones(2)])
    assert_matches_reference([p, q], ref)


# -- step semantics ----------------------------------------------------------------------------

CONFIGS = {
    "plain": {},
    "weight_decay": {"weight_decay": 0.1},
    "amsgrad": {"amsgrad": True},
    "maximize": {"maximize": True},
    "no_bias_correction": {"bias_correction": False},
    "everything": {"weight_decay": 0.05, "amsgrad": True, "maximize": True, "lr": 0.01},
}


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
def test_steps_match_reference(cls, config):
    kwargs = CONFIGS[config]
    params = [
        away_from_zero((5, 7), np.float32, 1),
        away_from_zero(33, np.float64, 2),
        away_from_zero((), np.float32, 3),
        away_from_zero(0, np.float64, 4),
    ]
    ids = [id(p) for p in params]
    opt = cls(params, **kwargs)
    ref = RefAdam([dict(kwargs, params=params)], decoupled=cls is AdamW)
    for t in range(6):
        grads = [grad_like(p, 10 * t + i) for i, p in enumerate(params)]
        opt.step(grads)
        ref.step(grads)
        assert_matches_reference(params, ref)
    assert [id(p) for p in opt.param_groups[0]["params"]] == ids  # updated in place
    for p in params:
        s = opt.state[p]
        assert s["step"] == 6
        assert s["exp_avg"].dtype == p.dtype and s["exp_avg"].shape == p.shape
        assert ("max_exp_avg_sq" in s) == kwargs.get("amsgrad", False)


def test_one_native_call_per_step_for_all_groups_and_dtypes(monkeypatch):
    calls = []

    def counting(*args):
        calls.append(len(args[0]))
        return _core.adam_step_sets(*args)

    monkeypatch.setattr(optim.adam, "_adam_step_sets", counting)
    f32 = [np.ones(4, np.float32) for _ in range(3)]
    f64 = [np.ones(4) for _ in range(2)]
    opt = Adam([{"params": f32[:2] + f64}, {"params": f32[2:], "lr": 0.1}])
    grads = [np.ones(4, np.float32)] * 2 + [np.ones(4)] * 2 + [np.ones(4, np.float32)]
    for _ in range(3):
        calls.clear()
        opt.step(grads)
        assert calls == [5]
    for n in (1, 2):
        single = Adam([np.ones(4) for _ in range(n)])
        for _ in range(3):
            calls.clear()
            single.step([np.ones(4)] * n)
            assert calls == [n]


def test_steady_steps_skip_the_general_path(monkeypatch):
    general = []
    original = Adam._step_general

    def counting(self, grads, *options):
        general.append(len(grads))
        return original(self, grads, *options)

    monkeypatch.setattr(Adam, "_step_general", counting)
    for n in (1, 3):
        general.clear()
        opt = Adam([np.ones(5, np.float32) for _ in range(n)])
        grads = [np.ones(5, np.float32)] * n
        for _ in range(5):
            opt.step(grads)
        assert general == [n]  # only the first step, which creates the state
        opt.step([None] * n)  # a None grad takes the general path, then the cached one again
        opt.step(grads)
        opt.step(grads)
        assert general == [n, n, n]


def test_none_grad_skips_the_param_and_its_step_count():
    params = [away_from_zero(4, np.float64, i) for i in range(3)]
    opt = Adam(params, lr=0.1)
    ref = RefAdam([{"params": params, "lr": 0.1}])
    pattern = [[0, 1, 2], [0, 2], [None], [1], [0, 1, 2], [0, 1, 2], [2]]
    for t, present in enumerate(pattern):
        grads = [grad_like(p, 10 * t + i) if i in present else None for i, p in enumerate(params)]
        before = [p.copy() for p in params]
        opt.step(grads)
        ref.step(grads)
        for i, p in enumerate(params):
            if i not in present:
                np.testing.assert_array_equal(p, before[i])
        assert_matches_reference(params, ref)
    assert [opt.state[p]["step"] for p in params] == [4, 4, 5]


def test_state_is_created_lazily():
    p, q = np.ones(3), np.ones(3)
    opt = Adam([p, q])
    assert len(opt.state) == 0 and opt.state_dict()["state"] == {}
    opt.step([None, np.ones(3)])
    assert q in opt.state and p not in opt.state
    assert list(opt.state_dict()["state"]) == [1]
    with pytest.raises(KeyError):
        opt.state[np.ones(3)]


def test_lr_and_other_hyper_parameters_change_between_steps():
    params = [away_from_zero(8, np.float32, 0), away_from_zero(8, np.float32, 1)]
    opt = Adam(params, lr=0.1)
    ref = RefAdam([{"params": params, "lr": 0.1}])
    changes = [{}, {}, {"lr": 0.05}, {}, {"lr": 0.0}, {"betas": (0.8, 0.99)}, {"eps": 1e-3}]
    changes += [{"weight_decay": 0.1}, {"maximize": True}, {"lr": 0.2}, {}]
    for t, change in enumerate(changes):
        opt.param_groups[0].update(change)
        ref.groups[0].update(change)
        grads = [grad_like(p, 10 * t + i) for i, p in enumerate(params)]
        opt.step(grads)
        ref.step(grads)
        assert_matches_reference(params, ref)


def test_lr_schedule_on_one_param_group_of_several():
    a, b = away_from_zero(5, np.float32, 0), away_from_zero(6, np.float64, 1)
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.1}])
    ref = RefAdam([{"params": [a]}, {"params": [b], "lr": 0.1}])
    for t in range(8):
        opt.param_groups[1]["lr"] = ref.groups[1]["lr"] = 0.1 * 0.5**t
        grads = [grad_like(a, t), grad_like(b, 100 + t)]
        opt.step(grads)
        ref.step(grads)
        assert_matches_reference([a, b], ref)


def test_amsgrad_switched_on_later_starts_its_maximum_then():
    p = away_from_zero(6, np.float64)
    opt = Adam([p], lr=0.1)
    ref = RefAdam([{"params": [p], "lr": 0.1}])
    for t in range(4):
        if t == 2:
            opt.param_groups[0]["amsgrad"] = ref.groups[0]["amsgrad"] = True
            ref.state[0][3] = np.zeros(6)
        grads = [grad_like(p, t)]
        opt.step(grads)
        ref.step(grads)
        assert_matches_reference([p], ref)


def test_param_groups_with_their_own_hyper_parameters():
    groups = [
        {"params": [away_from_zero(4, np.float32, 0), away_from_zero(3, np.float64, 1)]},
        {"params": [away_from_zero(5, np.float64, 2)], "lr": 0.05, "weight_decay": 0.2},
        {"params": [away_from_zero(2, np.float32, 3)], "amsgrad": True, "betas": (0.5, 0.9)},
        {"params": [away_from_zero(7, np.float32, 4)], "maximize": True, "eps": 1e-2},
    ]
    opt = AdamW(groups, lr=0.01)
    ref = RefAdam([dict({"lr": 0.01}, **g) for g in groups], decoupled=True)
    params = [p for g in groups for p in g["params"]]
    for t in range(5):
        grads = [grad_like(p, 10 * t + i) for i, p in enumerate(params)]
        opt.step(grads)
        ref.step(grads)
        assert_matches_reference(params, ref)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_views_into_one_buffer_are_updated_in_place(dtype):
    buf = np.full(64, 7.0, dtype)
    weight, bias = buf[8:32].reshape(4, 6), buf[40:44]
    opt = Adam([weight, bias], lr=0.1)
    for t in range(3):
        opt.step([np.ones((4, 6), dtype), -np.ones(4, dtype)])
    assert np.all(buf[8:32] < 7.0) and np.all(buf[40:44] > 7.0)
    untouched = np.r_[buf[:8], buf[32:40], buf[44:]]
    np.testing.assert_array_equal(untouched, 7.0)  # sentinels either side
    assert weight.base is buf and bias.base is buf


BAD_LAST_GRAD = {
    "wrong-shape": (lambda: np.zeros(4), ValueError, r"grads\[2\] must have its parameter's shape"),
    "wrong-dtype": (lambda: np.zeros(5, np.float32), TypeError, r"grads\[2\] must have its par"),
    "int": (lambda: np.zeros(5, np.int64), TypeError, r"grads\[2\] must have"),
    "not-array": (lambda: [0.0] * 5, TypeError, r"grads\[2\] must be a numpy.ndarray or None"),
    "strided": (lambda: np.zeros(10)[::2], ValueError, r"grads\[2\] must be C-contiguous"),
}


@pytest.mark.parametrize("steady", [False, True], ids=["first-step", "steady-state"])
@pytest.mark.parametrize("bad", list(BAD_LAST_GRAD), ids=list(BAD_LAST_GRAD))
def test_bad_grad_in_last_param_changes_nothing(bad, steady):
    make, error, message = BAD_LAST_GRAD[bad]
    params = [away_from_zero(3, np.float64, 0), away_from_zero(4, np.float64, 1), np.ones(5)]
    opt = Adam(params, lr=0.1)
    if steady:
        for _ in range(3):
            opt.step([np.ones(3), np.ones(4), np.ones(5)])
    before = snapshot(opt, params)
    with pytest.raises(error, match=message):
        opt.step([np.ones(3), np.ones(4), make()])
    assert_unchanged(before, opt, params)
    opt.step([np.ones(3), np.ones(4), np.ones(5)])  # and it goes on afterwards


@pytest.mark.parametrize("steady", [False, True], ids=["first-step", "steady-state"])
def test_wrong_grads_list_changes_nothing(steady):
    params = [np.ones(3), np.ones(4)]
    opt = Adam(params)
    if steady:
        opt.step([np.ones(3), np.ones(4)])
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match="grads has 1 entries but the optimizer has 2"):
        opt.step([np.ones(3)])
    with pytest.raises(ValueError, match="grads has 3 entries"):
        opt.step([np.ones(3), np.ones(4), np.ones(4)])
    with pytest.raises(TypeError, match="grads must be a list or tuple"):
        opt.step(np.ones(3))
    with pytest.raises(TypeError, match="grads must be a list or tuple"):
        opt.step(g for g in [np.ones(3), np.ones(4)])
    with pytest.raises(ValueError, match="share memory"):
        opt.step([np.ones(3), params[1]])  # a gradient that is its own parameter
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("steady", [False, True], ids=["first-step", "steady-state"])
def test_failure_in_a_later_group_or_dtype_changes_nothing(steady):
    a, b, c = np.ones(3, np.float32), np.ones(4), np.ones(4)
    params = [a, b, c]
    opt = Adam([{"params": [a, b]}, {"params": [c], "lr": 0.1}])
    grads = [np.ones(3, np.float32), np.ones(4), np.ones(4)]
    if steady:
        opt.step(grads)
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match=r"grads\[2\]"):
        opt.step(grads[:2] + [np.ones(6)])
    opt.param_groups[1]["lr"] = -1.0
    with pytest.raises(ValueError, match="Invalid learning rate: -1.0"):
        opt.step(grads)
    opt.param_groups[1]["lr"] = 0.1
    with pytest.raises(ValueError, match="share memory"):
        opt.step([np.ones(3, np.float32), np.ones(4), b])  # group 1 reads group 0's param
    assert_unchanged(before, opt, params)


def test_bad_hyper_parameter_set_between_steps_changes_nothing():
    params = [np.ones(3)]
    opt = Adam(params)
    opt.step([np.ones(3)])
    before = snapshot(opt, params)
    for key, value, message in [
        ("lr", -0.5, "Invalid learning rate"),
        ("betas", (0.9, 1.5), "Invalid beta parameter at index 1"),
        ("eps", -1.0, "Invalid epsilon value"),
    ]:
        old = opt.param_groups[0][key]
        opt.param_groups[0][key] = value
        with pytest.raises(ValueError, match=message):
            opt.step([np.ones(3)])
        opt.param_groups[0][key] = old
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("n_params", [1, 2], ids=["one-param", "two-params"])
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_cached_path_and_general_path_agree_bit_for_bit(amsgrad, n_params):
    fast = [away_from_zero(50, np.float32, 0), away_from_zero(9, np.float32, 1)][:n_params]
    slow = [p.copy() for p in fast]
    opt_fast, opt_slow = Adam(fast, amsgrad=amsgrad), Adam(slow, amsgrad=amsgrad)
    for t in range(10):
        grads = [grad_like(p, 10 * t + i) for i, p in enumerate(fast)]
        opt_fast.step(grads)
        opt_slow.state  # noqa: B018 - dropping the cached lists sends the step the long way
        opt_slow.step(grads)
        for p, q in zip(fast, slow):
            np.testing.assert_array_equal(p, q)
    assert_state_dicts_equal(opt_fast.state_dict(), opt_slow.state_dict())


# -- state_dict and checkpoints ----------------------------------------------------------------


def make_trained(cls=Adam, steps=4, amsgrad=True, seed=0):
    groups = [
        {"params": [away_from_zero((3, 4), np.float32, seed), away_from_zero(5, np.float64, 1)]},
        {"params": [away_from_zero(6, np.float32, 2)], "lr": 0.05, "weight_decay": 0.1},
    ]
    opt = cls(groups, amsgrad=amsgrad)
    params = [p for g in groups for p in g["params"]]
    for t in range(steps):
        grads = [
            grad_like(p, 10 * t + i) if (t, i) != (1, 2) else None for i, p in enumerate(params)
        ]
        opt.step(grads)
    return opt, params


def continue_training(opt, params, steps=5, start=100):
    for t in range(start, start + steps):
        opt.step([grad_like(p, 10 * t + i) for i, p in enumerate(params)])


def test_state_dict_layout():
    opt, params = make_trained()
    sd = opt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.05 and sd["param_groups"][0]["amsgrad"] is True
    assert sorted(sd["state"]) == [0, 1, 2]
    for k, p in enumerate(params):
        s = sd["state"][k]
        assert set(s) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        assert isinstance(s["step"], np.ndarray) and s["step"].shape == ()
        assert s["step"].dtype == np.float32  # as torch keeps it
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert s[name].shape == p.shape and s[name].dtype == p.dtype
    assert [float(sd["state"][k]["step"]) for k in range(3)] == [4.0, 4.0, 3.0]


def test_state_dict_holds_references_and_a_deepcopy_is_a_snapshot():
    # As torch: the state arrays are the optimizer's own (a checkpoint costs no memory);
    # step counts and group entries are values, and copy.deepcopy keeps a snapshot.
    opt, params = make_trained()
    sd = opt.state_dict()
    saved = copy.deepcopy(sd)
    assert sd["state"][0]["exp_avg"] is opt.state[params[0]]["exp_avg"]
    continue_training(opt, params)
    assert not np.array_equal(sd["state"][0]["exp_avg"], saved["state"][0]["exp_avg"])
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], opt.state[params[0]]["exp_avg"])
    sd["param_groups"][0]["lr"] = 9.0
    assert opt.param_groups[0]["lr"] == 1e-3
    assert int(opt.state_dict()["state"][0]["step"]) > int(saved["state"][0]["step"])
    assert int(sd["state"][0]["step"]) == int(saved["state"][0]["step"])


@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
def test_state_dict_round_trip_continues_bit_for_bit(cls):
    opt, params = make_trained(cls)
    sd = opt.state_dict()
    twins = [p.copy() for p in params]
    groups = [{"params": twins[:2]}, {"params": twins[2:]}]
    other = cls(groups)  # other hyper-parameters: load_state_dict brings the saved ones
    other.load_state_dict(sd)
    assert_state_dicts_equal(other.state_dict(), sd)
    continue_training(opt, params)
    continue_training(other, twins)
    for p, q in zip(params, twins):
        np.testing.assert_array_equal(p, q)
    assert_state_dicts_equal(other.state_dict(), opt.state_dict())


def test_loaded_state_is_fresh_aligned_memory_of_the_param_dtype():
    opt, params = make_trained()
    sd = opt.state_dict()
    sd["state"][1]["exp_avg"] = sd["state"][1]["exp_avg"].astype(np.float32)  # cast on load
    other = Adam([{"params": [p.copy() for p in params[:2]]}, {"params": [params[2].copy()]}])
    other.load_state_dict(sd)
    for k, p in enumerate(other._params()):
        s = other.state[p]
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert s[name].dtype == p.dtype
            assert s[name].ctypes.data % 64 == 0
            assert not np.shares_memory(s[name], sd["state"][k][name])


@pytest.mark.parametrize(
    "step",
    [3, 3.0, np.float32(3), np.array(3.0, np.float32), np.array(3, np.int64)],
    ids=["int", "float", "np-scalar", "0d-float32", "0d-int64"],
)
def test_load_accepts_step_as_int_float_or_0d_array(step):
    opt, params = make_trained(steps=3)
    sd = opt.state_dict()
    for s in sd["state"].values():
        s["step"] = step
    opt.load_state_dict(sd)
    assert all(opt.state[p]["step"] == 3 for p in params)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda sd: sd["param_groups"].pop(), ValueError, "number of parameter groups"),
        (lambda sd: sd["param_groups"][0]["params"].pop(), ValueError, "group 0 has 1"),
        (
            lambda sd: sd["state"][1].update(exp_avg=np.zeros(4)),
            ValueError,
            r"state\[1\]\['exp_avg'\] must have its parameter's shape",
        ),
        (lambda sd: sd["state"][0].pop("exp_avg_sq"), ValueError, "has no 'exp_avg_sq'"),
        (lambda sd: sd["state"][0].update(step=-1), ValueError, "must be from 0 to"),
        (lambda sd: sd["state"][0].update(step=1.5), ValueError, "must be a whole number"),
        (lambda sd: sd["state"].update({7: sd["state"][0]}), ValueError, "names no parameter"),
        (lambda sd: sd["param_groups"][1].update(lr=-2.0), ValueError, "Invalid learning rate"),
        (lambda sd: sd.pop("state"), ValueError, "'state' and 'param_groups'"),
    ],
    ids=[
        "groups",
        "params",
        "shape",
        "missing",
        "negative-step",
        "fractional-step",
        "index",
        "lr",
        "no-state",
    ],
)
def test_bad_state_dict_changes_nothing(mutate, error, message):
    opt, params = make_trained()
    sd = opt.state_dict()
    mutate(sd)
    before = snapshot(opt, params)
    with pytest.raises(error, match=message):
        opt.load_state_dict(sd)
    assert_unchanged(before, opt, params)


def test_load_state_dict_keeps_the_group_dicts():
    opt, _params = make_trained()
    groups = list(opt.param_groups)
    first = groups[0]
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.25
    opt.load_state_dict(sd)
    assert opt.param_groups[0] is first and first["lr"] == 0.25  # schedules keep working
    assert first["params"] is groups[0]["params"]


@pytest.mark.parametrize("target", ["path", "str", "file"])
def test_save_load_round_trip_continues_bit_for_bit(tmp_path, target):
    opt, params = make_trained(AdamW)
    opt.param_groups[1]["name"] = "head"
    path = tmp_path / "opt.ckpt"  # no .npz suffix: written at exactly this path
    if target == "file":
        buffer = io.BytesIO()
        opt.save(buffer)
        buffer.seek(0)
        source = buffer
    else:
        opt.save(path if target == "path" else str(path))
        assert path.exists() and not (tmp_path / "opt.ckpt.npz").exists()
        source = path
    twins = [p.copy() for p in params]
    other = AdamW([{"params": twins[:2]}, {"params": twins[2:]}])
    other.load(source)
    assert other.param_groups[1]["name"] == "head"
    assert_state_dicts_equal(other.state_dict(), opt.state_dict())
    continue_training(opt, params)
    continue_training(other, twins)
    for p, q in zip(params, twins):
        np.testing.assert_array_equal(p, q)


def test_checkpoint_is_a_plain_npz_without_pickle(tmp_path):
    opt, _ = make_trained()
    opt.save(tmp_path / "opt.npz")
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
        meta = json.loads(npz["meta"].tobytes().decode())
    assert meta["format"] == "fastadam.optim" and meta["class"] == "Adam"
    assert meta["param_groups"][1]["lr"] == 0.05


def test_save_rejects_values_json_cannot_hold(tmp_path):
    opt, _ = make_trained()
    opt.param_groups[0]["callback"] = object()
    with pytest.raises(TypeError, match="JSON"):
        opt.save(tmp_path / "x.npz")


def test_load_rejects_other_npz(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    opt, _ = make_trained()
    with pytest.raises(ValueError, match="not a fastadam optimizer checkpoint"):
        opt.load(tmp_path / "other.npz")


# -- stubs -------------------------------------------------------------------------------------


def stub_names(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def test_core_stub_lists_exactly_the_compiled_module():
    core = fastadam._core
    stub = pathlib.Path(fastadam.__file__).with_name("_core.pyi")
    public = {n for n in dir(core) if not n.startswith("_")}
    assert stub_names(stub) == public


def test_package_is_typed():
    root = pathlib.Path(fastadam.__file__).parent
    assert (root / "py.typed").exists()
    assert {"Adam", "AdamW"} <= set(fastadam.__all__)


# -- against torch -----------------------------------------------------------------------------


def quadratic(n, seed):
    r = rng(seed)
    a = r.standard_normal((n, n))
    a = a @ a.T / n + 0.1 * np.eye(n)
    b = r.standard_normal(n)
    x0 = r.standard_normal(n)
    return (lambda x: a @ x.astype(np.float64) - b), x0


def bowl():
    return (lambda x: 2.0 * x.astype(np.float64)), np.array([0.8, -0.9])


TORCH_CONFIGS = {
    "plain": {},
    "weight_decay": {"weight_decay": 0.1},
    "amsgrad": {"amsgrad": True},
    "maximize": {"maximize": True},
    "all": {"weight_decay": 0.05, "amsgrad": True, "maximize": True},
}


def run_side_by_side(torch, cls_name, dtype, kwargs, grad_fn, x0, steps=200):
    ours = x0.astype(dtype)
    opt = getattr(fastadam, cls_name)([ours], **kwargs)
    theirs = torch.tensor(x0.astype(dtype))
    topt = getattr(torch.optim, cls_name)([theirs], **kwargs)
    trajectory = []
    for _ in range(steps):
        opt.step([grad_fn(ours).astype(dtype)])
        theirs.grad = torch.from_numpy(grad_fn(theirs.numpy()).astype(dtype))
        topt.step()
        trajectory.append((ours.copy(), theirs.numpy().copy()))
    return trajectory


def check_trajectory(trajectory, dtype, near_zero):
    ours = np.array([a for a, _ in trajectory])
    theirs = np.array([b for _, b in trajectory])
    rtol = RTOL[dtype]
    atol = 0.0
    if near_zero:
        # torch rounds differently (lerp for exp_avg, its own operation order), so the two
        # differ by a few ulps of the trajectory's scale, and an element passing near zero is
        # judged against that scale: its own relative error is unbounded. Measured here: the
        # largest |difference| / max|x| is 4.9e-7 (float32) and 4.8e-16 (float64), while
        # elementwise relative errors reach 7e-2 and 1e-10 at elements crossing zero.
        atol = rtol * np.max(np.abs(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("config", list(TORCH_CONFIGS), ids=list(TORCH_CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cls_name", ["Adam", "AdamW"])
@pytest.mark.parametrize("problem", ["quadratic", "bowl"])
def test_200_step_trajectory_matches_torch(problem, cls_name, dtype, config):
    torch = pytest.importorskip("torch")
    kwargs = dict(TORCH_CONFIGS[config], lr=1e-2 if problem == "quadratic" else 1e-3)
    grad_fn, x0 = quadratic(40, 7) if problem == "quadratic" else bowl()
    trajectory = run_side_by_side(torch, cls_name, dtype, kwargs, grad_fn, x0)
    # The bowl from (0.8, -0.9) at lr 1e-3 stays away from zero: rtol alone, element by element.
    check_trajectory(trajectory, dtype, near_zero=problem == "quadratic")


def test_torch_model_trained_side_by_side_50_steps():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    twin = copy.deepcopy(model)
    topt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    params = [p.data.numpy() for p in twin.parameters()]  # views: updated in place
    opt = Adam(params, lr=1e-2, weight_decay=1e-3)
    initial = params[0].copy()
    x = torch.randn(64, 8)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    for _ in range(50):
        for m, step in ((model, topt.step), (twin, None)):
            m.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(m(x), y).backward()
            if step is not None:
                step()
        opt.step([p.grad.numpy() for p in twin.parameters()])
    scale = max(float(p.detach().abs().max()) for p in model.parameters())
    for p, q, view in zip(model.parameters(), twin.parameters(), params):
        assert np.shares_memory(view, q.detach().numpy())  # the model's own tensors moved
        np.testing.assert_allclose(
            q.detach().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-5 * scale
        )
    assert not np.allclose(params[0], initial)  # it did train


def to_torch(torch, sd):
    # Copies: state_dict() holds the optimizer's own arrays, and torch's load_state_dict keeps a
    # tensor of the right dtype as it is, so from_numpy would make the two optimizers share state.
    state = {
        k: {name: torch.tensor(np.asarray(v)) for name, v in s.items()}
        for k, s in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


def to_numpy(sd):
    state = {k: {name: v.numpy() for name, v in s.items()} for k, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("cls_name", ["Adam", "AdamW"])
@pytest.mark.parametrize("direction", ["torch-to-ours", "ours-to-torch"])
def test_state_dict_interop_with_torch(direction, cls_name, amsgrad):
    torch = pytest.importorskip("torch")
    grad_fn, x0 = quadratic(20, 3)
    dtype = np.float64
    kwargs = {"lr": 1e-2, "amsgrad": amsgrad, "weight_decay": 0.01}
    ours = x0.copy()
    theirs = torch.tensor(x0.copy())
    opt = getattr(fastadam, cls_name)([ours], **kwargs)
    topt = getattr(torch.optim, cls_name)([theirs], **kwargs)
    # train one side 30 steps, move its parameters and state to the other, continue both
    for _ in range(30):
        if direction == "torch-to-ours":
            theirs.grad = torch.from_numpy(grad_fn(theirs.numpy()))
            topt.step()
        else:
            opt.step([grad_fn(ours)])
    if direction == "torch-to-ours":
        ours[...] = theirs.numpy()
        sd = to_numpy(topt.state_dict())
        opt.load_state_dict(sd)
        assert opt.state[ours]["step"] == 30
    else:
        theirs.data.copy_(torch.from_numpy(ours))
        topt.load_state_dict(to_torch(torch, opt.state_dict()))
        assert float(topt.state[theirs]["step"]) == 30.0
        assert topt.param_groups[0]["decoupled_weight_decay"] is (cls_name == "AdamW")
    for _ in range(100):
        opt.step([grad_fn(ours).astype(dtype)])
        theirs.grad = torch.from_numpy(grad_fn(theirs.numpy()))
        topt.step()
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=RTOL[dtype], atol=0)
    mine, other = opt.state_dict()["state"][0], to_numpy(topt.state_dict())["state"][0]
    assert sorted(mine) == sorted(other)
    for name in mine:
        np.testing.assert_allclose(mine[name], other[name], rtol=1e-11, atol=0)
