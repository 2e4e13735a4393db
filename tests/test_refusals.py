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


# -- state that a load would resume from wrongly -------------------------------------------------


def test_load_refuses_a_master_copy_the_optimizer_would_not_keep():
    """A master copy loaded into an optimizer without master_weights would be neither updated
    nor used, and a later load into one with master_weights would undo every step since."""
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    p = np.linspace(-1, 1, 64).astype(bf16)
    opt = fastadam.Adam([p], master_weights=True)
    opt.step([np.ones(64, bf16)])
    sd = copy.deepcopy(opt.state_dict())
    plain = fastadam.Adam([p.copy()])
    with pytest.raises(ValueError, match=r"state\[0\]\['master_param'\].*master_weights=True"):
        plain.load_state_dict(sd)
    assert not plain.state
    del sd["state"][0]["master_param"]
    plain.load_state_dict(sd)  # without it: continue from the parameter


def _torch_stepped(name, dtype="float32", **kw):
    torch = pytest.importorskip("torch")
    ft = pytest.importorskip("fastadam.torch")
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, dtype=getattr(torch, dtype)))
    opt = getattr(ft, name)([w], lr=1e-2, **kw)
    w.grad = torch.randn(16, dtype=w.dtype)
    opt.step()
    return opt, w


@pytest.mark.parametrize(
    "name, key",
    [
        ("Adam", "exp_avg_sq"),
        ("Adam", "exp_avg"),
        ("Adam", "step"),
        ("AdamW", "exp_avg_sq"),
        ("RMSprop", "square_avg"),
        ("Adagrad", "sum"),
        ("Adamax", "exp_inf"),
        ("NAdam", "exp_avg_sq"),
        ("RAdam", "step"),
    ],
)
def test_torch_load_refuses_state_missing_an_entry(name, key):
    """torch's loader takes such a dict and the next step would start the entry afresh (a
    jump of the parameter, or the step count back at 1); the NumPy classes refuse it."""
    opt, _ = _torch_stepped(name)
    good = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(good)
    del bad["state"][0][key]
    with pytest.raises(ValueError, match=rf"state of param_groups\[0\]\['params'\]\[0\].*{key!r}"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    for k, value in good["state"][0].items():
        assert bool((after["state"][0][k] == value).all()), k


def test_torch_load_refuses_master_copies_where_none_are_kept():
    opt, w = _torch_stepped("Adam", master_weights=True)  # float32: no master copy
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["master_param"] = w.detach().clone()
    with pytest.raises(ValueError, match="master copies are for float16 and bfloat16"):
        opt.load_state_dict(sd)
    pytest.importorskip("ml_dtypes")
    opt, w = _torch_stepped("Adam", dtype="bfloat16", master_weights=True)
    sd = copy.deepcopy(opt.state_dict())
    plain, _ = _torch_stepped("Adam", dtype="bfloat16")
    with pytest.raises(ValueError, match="built without master_weights=True"):
        plain.load_state_dict(sd)


@pytest.mark.parametrize(
    "key, value",
    [("lambda", "0.1"), ("lambda", None), ("lambda", float("nan")), ("switch_step", "x"),
     ("switch_step", 0), ("gamma", [1])],
)  # fmt: skip
def test_swats_refuses_a_bad_switch_record(key, value):
    """SWATS's step reads these after its native call has written: a bad one is refused by
    the load and by the cached step before anything changes."""
    opt, _, grads = _stepped(fastadam.SWATS)
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"][0][key] = value
    before = _snapshot(opt)
    with pytest.raises((TypeError, ValueError), match=key):
        opt.load_state_dict(sd)
    assert _snapshot(opt) == before
    kept = opt.param_groups[0][key]
    opt.param_groups[0][key] = value  # set by hand between cached steps
    with pytest.raises((TypeError, ValueError), match=key):
        opt.step(grads)
    opt.param_groups[0][key] = kept
    assert _snapshot(opt) == before


def test_checkpoint_of_another_class_is_refused(tmp_path):
    """NAdam and RAdam keep arrays of the same names; Adam and AdamW the same keys."""
    for writer, reader in [(fastadam.NAdam, fastadam.RAdam), (fastadam.Adam, fastadam.AdamW)]:
        opt, params, _ = _stepped(writer)
        opt.save(tmp_path / "a.npz")
        other = reader([p.copy() for p in params])
        with pytest.raises(ValueError, match=f"holds the state of {writer.__name__}"):
            other.load(tmp_path / "a.npz")
        assert not other.state


def _npz_with(members: dict) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def test_checkpoint_refuses_hostile_entries_with_value_error():
    """An entry whose header claims 2**40 elements, JSON nested too deep for the parser, one
    parameter index spelt twice: ValueError naming the file, nothing changed."""
    import io
    import json
    import zipfile

    opt, _, _ = _stepped(fastadam.Adam)
    buf = io.BytesIO()
    opt.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        good = {n: z.read(n) for n in z.namelist()}

    def npy(a):
        b = io.BytesIO()
        np.save(b, a, allow_pickle=False)
        return b.getvalue()

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    huge = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(32)
    meta = json.loads(np.load(io.BytesIO(good["meta.npy"])).tobytes())
    meta["steps"] = {"0": 2, "00": 2, "1": 2}
    twice = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    deep = np.frombuffer(("[" * 100000 + "]" * 100000).encode(), np.uint8)
    before = _snapshot(opt)
    for members, match in [
        ({**good, "state.0.exp_avg.npy": huge}, "unreadable entry 'state.0.exp_avg'"),
        ({**good, "meta.npy": npy(deep)}, "unreadable 'meta'"),
        ({**good, "meta.npy": npy(twice)}, "index 0 appears twice"),
    ]:
        with pytest.raises(ValueError, match=match):
            opt.load(io.BytesIO(_npz_with(members)))
        assert _snapshot(opt) == before


def test_load_refuses_8bit_state_of_another_shape(tmp_path):
    """State dicts hold the codes in their parameter's shape, so a (10, 500) parameter's
    8-bit state does not load into a (500, 10) or (5000,) one (float state never did)."""
    rng = np.random.default_rng(3)
    p = rng.standard_normal((10, 500)).astype(np.float32)
    opt = fastadam.Adam([p], state_bits=8)
    opt.step([rng.standard_normal((10, 500)).astype(np.float32)])
    sd = opt.state_dict()
    assert sd["state"][0]["exp_avg_codes"].shape == (10, 500)
    opt.save(tmp_path / "a.npz")
    for shape in [(500, 10), (5000,)]:
        for bits in [8, 32]:
            other = fastadam.Adam([np.zeros(shape, np.float32)], state_bits=bits)
            with pytest.raises(ValueError, match=r"exp_avg_codes.*shape"):
                other.load_state_dict(sd)
            with pytest.raises(ValueError, match=r"exp_avg_codes.*shape"):
                other.load(tmp_path / "a.npz")
            assert not other.state
    same = fastadam.Adam([p.copy()], state_bits=8)
    same.load(tmp_path / "a.npz")
    for key, value in sd["state"][0].items():
        assert np.array_equal(same.state_dict()["state"][0][key], value), key


def test_to_torch_state_dict_refuses_what_torch_adam_cannot_continue():
    ft = pytest.importorskip("fastadam.torch")
    rng = np.random.default_rng(4)
    params = [rng.standard_normal(5000).astype(np.float32)]
    keras = fastadam.Adam([p.copy() for p in params], eps_mode="keras")
    keras.step([np.ones(5000, np.float32)])
    with pytest.raises(ValueError, match="eps_mode='keras'"):
        ft.to_torch_state_dict(keras.state_dict())
    coded = fastadam.Adam([p.copy() for p in params], state_bits=8)
    coded.step([np.ones(5000, np.float32)])
    with pytest.raises(ValueError, match=r"dequantize=True"):
        ft.to_torch_state_dict(coded.state_dict())
    sd = ft.to_torch_state_dict(coded.state_dict(dequantize=True))
    assert "eps_mode" not in sd["param_groups"][0]


def test_load_refuses_one_index_twice_and_names_an_unreadable_tensor():
    opt, _, _ = _stepped(fastadam.Adam)
    sd = copy.deepcopy(opt.state_dict())
    sd["state"]["0"] = sd["state"][0]
    with pytest.raises(ValueError, match="index 0 twice"):
        opt.load_state_dict(sd)
    torch = pytest.importorskip("torch")
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["exp_avg"] = torch.zeros(300, requires_grad=True)
    with pytest.raises(TypeError, match=r"state\[0\]\['exp_avg'\]"):
        opt.load_state_dict(sd)


# -- the cached step follows what the user changed between steps -------------------------------

_ALL_CLASSES = [
    fastadam.Adam,
    fastadam.AdamW,
    fastadam.SGD,
    fastadam.Adagrad,
    fastadam.RMSprop,
    fastadam.Adamax,
    fastadam.NAdam,
    fastadam.RAdam,
    fastadam.SWATS,
]


def _twins(cls, change):
    """Two optimizers stepped alike, then changed alike by ``change(opt, params)``; the second
    forgets its cached lists (the general path). Returns both and their gradients."""
    pairs = []
    for _ in range(2):
        rng = np.random.default_rng(11)
        params = [rng.standard_normal(300).astype(np.float32) for _ in range(3)]
        kw = {"momentum": 0.9} if cls is fastadam.SGD else {}
        opt = cls(params, lr=1e-2, **kw)
        grads = [rng.standard_normal(300).astype(np.float32) for _ in params]
        for _ in range(3):
            opt.step(grads)
        change(opt, params)
        pairs.append((opt, grads))
    pairs[1][0]._drop_fast()
    return pairs


def _same(a, b) -> bool:
    return pickle.dumps(_snapshot(a)) == pickle.dumps(_snapshot(b))


@pytest.mark.parametrize("cls", _ALL_CLASSES)
@pytest.mark.parametrize(
    "change",
    [
        lambda opt, ps: opt.param_groups[0]["params"].__setitem__(0, ps[0].copy()),
        lambda opt, ps: opt.param_groups[0]["params"].reverse(),
        lambda opt, ps: opt.param_groups.__setitem__(0, dict(opt.param_groups[0], lr=0.0)),
    ],
    ids=["entry replaced", "entries reordered", "group dict replaced"],
)
def test_cached_step_sees_params_and_groups_changed_by_hand(cls, change):
    """The cached lists belonged to the old arrays and group: a replaced parameter gets fresh
    state (as torch gives it), reordered ones keep their own, a new group dict is read."""
    (cached, grads), (general, _) = _twins(cls, change)
    cached.step(grads)
    general.step(grads)
    assert _same(cached, general)


@pytest.mark.parametrize("cls", _ALL_CLASSES)
def test_cached_step_takes_the_same_grads_and_values_as_the_general_path(cls):
    import collections
    from decimal import Decimal

    (cached, grads), (general, _) = _twins(cls, lambda opt, ps: None)
    for opt in (cached, general):
        with pytest.raises(TypeError, match="grads must be a list or tuple"):
            opt.step(collections.deque(grads))
    (cached, grads), (general, _) = _twins(cls, lambda opt, ps: None)
    for opt in (cached, general):  # a number that converts itself, on both paths alike
        opt.param_groups[0]["lr"] = Decimal("0.001")
        if opt is general:
            opt._drop_fast()
        opt.step(grads)
    assert _same(cached, general)


@pytest.mark.parametrize("cls", [c for c in _ALL_CLASSES if c is not fastadam.SGD])
def test_state_copies_and_emptied_state(cls):
    """dict(state) and {**state} show the current step after cached steps; an emptied state
    starts afresh (as torch starts an empty one); arrays without 'step' are refused before
    anything changes."""
    opt, params, grads = _stepped(cls, steps=5)
    s = opt.state[params[0]]
    assert int(dict(s)["step"]) == int({**s}["step"]) == 5
    s.clear()
    fresh = cls([params[0].copy()], lr=1e-2)
    fresh.step([grads[0]])
    opt.step(grads)
    for key, value in fresh.state_dict()["state"][0].items():
        assert np.array_equal(opt.state_dict()["state"][0][key], value), key
    del opt.state[params[1]]["step"]
    before = _snapshot(opt)
    with pytest.raises(ValueError, match="no 'step'"):
        opt.step(grads)
    assert _snapshot(opt) == before


def test_swats_cached_step_refuses_a_bad_eps_switch_unchanged():
    opt, _, grads = _stepped(fastadam.SWATS)
    before = _snapshot(opt)
    for bad in (-1.0, float("nan"), "x"):
        opt.param_groups[0]["eps_switch"] = bad
        with pytest.raises((TypeError, ValueError), match="eps_switch"):
            opt.step(grads)
    opt.param_groups[0]["eps_switch"] = 1e-9
    assert _snapshot(opt) == before


def test_nadam_state_dict_at_a_step_past_2_to_53():
    opt, params, grads = _stepped(fastadam.NAdam)
    opt.state[params[0]]["step"] = 2**63 - 300
    opt.state[params[1]]["step"] = 2**63 - 300
    opt.step(grads)
    assert int(opt.state_dict()["state"][0]["step"]) == 2**63 - 299


# -- the functional entries: byte order, seeds, NaN dampening, the reference's scalars ----------


def test_bfloat16_of_the_other_byte_order_is_refused():
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    swapped = np.dtype(bf16).newbyteorder(">" if np.little_endian else "<")
    p = np.ones(8, bf16)
    g = np.ones(8, bf16).astype(swapped)
    m, v = np.zeros(8, np.float32), np.zeros(8, np.float32)
    with pytest.raises(TypeError, match="grad"):
        fastadam.adam_step(p, g, m, v, step=1)
    with pytest.raises(TypeError, match="param"):
        fastadam.sgd_step(p.astype(swapped), g.astype(bf16))
    assert (p == 1).all() and not m.any()


def test_a_seed_is_any_int_keyed_by_its_low_64_bits():
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    results = []
    for seed in (-1, 2**64 - 1, np.uint64(2**64 - 1), 2**70 - 1):
        p = np.linspace(-1, 1, 999).astype(bf16)
        m, v = np.zeros(999, np.float32), np.zeros(999, np.float32)
        g = np.full(999, 1e-3, bf16)
        fastadam.adam_step(p, g, m, v, step=1, stochastic_rounding=True, seed=seed)
        results.append(p.view(np.uint16).copy())
    assert all(np.array_equal(r, results[0]) for r in results)


def test_sgd_refuses_a_nan_dampening():
    p, g = np.ones(8, np.float32), np.ones(8, np.float32)
    buf = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="dampening"):
        fastadam.sgd_step(p, g, buf, momentum=0.9, dampening=float("nan"))
    assert (p == 1).all() and (buf == 1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_reads_numpy_scalar_hyper_parameters_in_double(dtype):
    """As the kernels do: a NumPy float32 lr or betas gives the same bits on both."""
    for hyper in ({"lr": np.float32(1e-3)}, {"betas": (np.float32(0.9), np.float32(0.999))},
                  {"eps": np.float16(1e-4)}):  # fmt: skip
        for step in (1, 10, 1000):
            a = [np.full(4, x, dtype) for x in (1.0, 0.5, 0.1, 0.2)]
            b = [x.copy() for x in a]
            fastadam.adam_step(*a, step=step, **hyper)
            fastadam.reference.adam_step(*b, step=step, **hyper)
            assert np.array_equal(a[0], b[0]), (hyper, step)
    p, q = np.ones(4, dtype), np.ones(4, dtype)
    s, t = np.full(4, 0.5, dtype), np.full(4, 0.5, dtype)
    fastadam.adagrad_step(p, p * 0.3, s, step=3, lr=np.float32(0.1), lr_decay=np.float32(0.01))
    fastadam.reference.adagrad_step(
        q, q * 0.3, t, step=3, lr=np.float32(0.1), lr_decay=np.float32(0.01)
    )
    assert np.array_equal(p, q)
