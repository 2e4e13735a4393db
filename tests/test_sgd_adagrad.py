"""SGD and Adagrad: the kernels against ``fastadam.reference`` on every ISA, validation, the
optimizer classes (steps, state, checkpoints) and 200-step trajectories against torch.optim."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastadam
from fastadam import SGD, Adagrad, optim, reference

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
# Around the vector widths (4, 8, 16 lanes), and one size the thread pool splits.
SIZES = [0, 1, 3, 8, 15, 17, 33, 1000, 40_003]

SGD_OPTIONS = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "dampening": {"momentum": 0.9, "dampening": 0.3},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "weight_decay": {"weight_decay": 0.1},
    "maximize": {"maximize": True},
    "combined": {"momentum": 0.8, "weight_decay": 0.05, "nesterov": True, "maximize": True},
}
ADAGRAD_OPTIONS = {
    "plain": {},
    "lr_decay": {"lr_decay": 0.05},
    "weight_decay": {"weight_decay": 0.1},
    "eps": {"eps": 1e-3},
    "maximize": {"maximize": True},
    "combined": {"lr_decay": 0.01, "weight_decay": 0.05, "eps": 1e-6, "maximize": True},
}


def randn(rng, shape, dtype):
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def assert_same(actual, expected):
    np.testing.assert_array_equal(actual, expected, strict=True)


# -- kernels against the reference ---------------------------------------------------------
#
# The kernels perform the reference's operations in the same order, in the arrays' dtype, with
# no contraction into FMA: the results are bitwise equal to the reference of the same dtype.


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("options", SGD_OPTIONS.values(), ids=SGD_OPTIONS.keys())
def test_sgd_kernel_matches_reference(isa, options, dtype, size, rng):
    kw = dict(options, lr=0.1)
    momentum = kw.get("momentum", 0.0) != 0.0
    p, g = randn(rng, size, dtype), randn(rng, size, dtype)
    buf = randn(rng, size, dtype) if momentum else None
    ref_p, ref_buf = p.copy(), None if buf is None else buf.copy()
    for first in [True, False, False] if momentum else [False, False]:
        fastadam.sgd_step(p, g, buf, first_step=first, **kw)
        reference.sgd_step(ref_p, g, ref_buf, first_step=first, **kw)
        assert_same(p, ref_p)
        if momentum:
            assert_same(buf, ref_buf)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("options", ADAGRAD_OPTIONS.values(), ids=ADAGRAD_OPTIONS.keys())
def test_adagrad_kernel_matches_reference(isa, options, dtype, size, rng):
    p, g = randn(rng, size, dtype), randn(rng, size, dtype)
    state_sum = np.asarray(rng.uniform(0.0, 2.0, size), dtype=dtype)
    ref_p, ref_sum = p.copy(), state_sum.copy()
    for t in (1, 2, 7):
        fastadam.adagrad_step(p, g, state_sum, step=t, lr=0.1, **options)
        reference.adagrad_step(ref_p, g, ref_sum, step=t, lr=0.1, **options)
        assert_same(p, ref_p)
        assert_same(state_sum, ref_sum)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_multi_calls_match_reference_per_set(isa, dtype, rng):
    sizes = [33, 0, 1, 1000, 17]
    ps = [randn(rng, n, dtype) for n in sizes]
    gs = [randn(rng, n, dtype) for n in sizes]
    bufs = [randn(rng, n, dtype) for n in sizes]
    sums = [np.asarray(rng.uniform(0.0, 1.0, n), dtype=dtype) for n in sizes]
    first = [True, False, True, False, False]
    steps = [1, 4, 2, 9, 3]
    ref = copy.deepcopy((ps, bufs, sums))
    kw = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
    fastadam.sgd_step_multi(ps, gs, bufs, first_steps=first, **kw)
    reference.sgd_step_multi(ref[0], gs, ref[1], first_steps=first, **kw)
    fastadam.adagrad_step_multi(ps, gs, sums, steps=steps, lr_decay=0.1)
    reference.adagrad_step_multi(ref[0], gs, ref[2], steps=steps, lr_decay=0.1)
    for actual, expected in zip(ps + bufs + sums, ref[0] + ref[1] + ref[2]):
        assert_same(actual, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("size", [1, 15, 17, 1000])
def test_unaligned_views_leave_sentinels_untouched(isa, dtype, size, rng):
    def inside(values):
        buf = randn(rng, size + 3, dtype)  # the view starts one element in: no vector alignment
        view = buf[1 : 1 + size]
        view[...] = values
        return view, buf

    p, g, s = randn(rng, size, dtype), randn(rng, size, dtype), randn(rng, size, dtype) ** 2
    ref_p, ref_s = p.copy(), s.copy()
    (vp, bp), (vg, bg), (vs, bs) = inside(p), inside(g), inside(s)
    before = [b.copy() for b in (bp, bg, bs)]
    fastadam.sgd_step(vp, vg, vs, momentum=0.9, lr=0.1)
    reference.sgd_step(ref_p, g, ref_s, momentum=0.9, lr=0.1)
    assert_same(vp, ref_p)
    assert_same(vs, ref_s)
    vs **= 2  # the momentum buffer becomes an Adagrad sum
    ref_s **= 2
    fastadam.adagrad_step(vp, vg, vs, step=2, lr=0.1)
    reference.adagrad_step(ref_p, g, ref_s, step=2, lr=0.1)
    assert_same(vp, ref_p)
    assert_same(vs, ref_s)
    for b, old in zip((bp, bg, bs), before):
        assert_same(b[[0, -2, -1]], old[[0, -2, -1]])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_results_do_not_depend_on_isa_or_threads(dtype, threads, rng):
    n = 100_003
    start = [randn(rng, n, dtype) for _ in range(3)]
    start[2] = start[2] ** 2
    results = []
    for isa in fastadam.available_isas():
        for count in (1, 2, 3):
            fastadam.set_isa(isa)
            threads(count)
            p, g, s = (a.copy() for a in start)
            b = s.copy()
            fastadam.sgd_step(p, g, b, momentum=0.9, nesterov=True, lr=0.1)
            fastadam.adagrad_step(p, g, s, step=3, lr=0.1, lr_decay=0.1)
            results.append((p, b, s))
    fastadam.set_isa(fastadam.available_isas()[0])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_same(a, b)


# -- kernel validation ---------------------------------------------------------------------


def sgd_args(rng, dtype=np.float32, n=9):
    return randn(rng, n, dtype), randn(rng, n, dtype), randn(rng, n, dtype)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p, g, b: fastadam.sgd_step(p, g, momentum=0.9), ValueError, "is required"),
        (lambda p, g, b: fastadam.sgd_step(p, g, b), ValueError, "only used when momentum"),
        (lambda p, g, b: fastadam.sgd_step(p, g, lr=-1.0), ValueError, "lr must be >= 0"),
        (
            lambda p, g, b: fastadam.sgd_step(p, g, b, momentum=-0.5),
            ValueError,
            "momentum must be >= 0",
        ),
        (
            lambda p, g, b: fastadam.sgd_step(p, g, b, momentum=0.9, dampening=0.1, nesterov=True),
            ValueError,
            "nesterov",
        ),
        (lambda p, g, b: fastadam.sgd_step(p, g, nesterov=True), ValueError, "nesterov"),
        (
            lambda p, g, b: fastadam.sgd_step(p, g, weight_decay=-1.0),
            ValueError,
            "weight_decay must be >= 0",
        ),
        (lambda p, g, b: fastadam.sgd_step(p, g.astype(np.float64)), TypeError, "grad"),
        (lambda p, g, b: fastadam.sgd_step(p, g[:5]), ValueError, "shape"),
        (
            lambda p, g, b: fastadam.sgd_step(p, g, b[::-1], momentum=0.9),
            ValueError,
            "momentum_buffer",
        ),
        (lambda p, g, b: fastadam.sgd_step(p, g, p, momentum=0.9), ValueError, "memory"),
        (
            lambda p, g, b: fastadam.sgd_step_multi(
                [p], [g], [b], momentum=0.9, first_steps=[1, 0]
            ),
            (TypeError, ValueError),
            "first_steps",
        ),
        (
            lambda p, g, b: fastadam.adagrad_step(p, g, b, step=0),
            ValueError,
            "step must be >= 1",
        ),
        (
            lambda p, g, b: fastadam.adagrad_step(p, g, b, step=1, lr_decay=-0.1),
            ValueError,
            "lr_decay must be >= 0",
        ),
        (
            lambda p, g, b: fastadam.adagrad_step(p, g, b, step=1, eps=-1.0),
            ValueError,
            "eps must be >= 0",
        ),
        (
            lambda p, g, b: fastadam.adagrad_step(p, g, b.astype(np.float64), step=1),
            TypeError,
            "state_sum",
        ),
        (
            lambda p, g, b: fastadam.adagrad_step_multi([p, b], [g, g], [b, p], steps=[1, 2]),
            ValueError,
            "memory",
        ),
        (
            lambda p, g, b: fastadam.adagrad_step_multi([p], [g], [b], steps=[1, 2]),
            ValueError,
            "steps",
        ),
    ],
    ids=[
        "sgd-buffer-missing",
        "sgd-buffer-unused",
        "sgd-lr",
        "sgd-momentum",
        "sgd-nesterov-dampening",
        "sgd-nesterov-no-momentum",
        "sgd-weight-decay",
        "sgd-dtype",
        "sgd-shape",
        "sgd-strided-buffer",
        "sgd-overlap",
        "sgd-first-steps-length",
        "adagrad-step",
        "adagrad-lr-decay",
        "adagrad-eps",
        "adagrad-dtype",
        "adagrad-overlap",
        "adagrad-steps-length",
    ],
)
def test_kernel_refuses_bad_input_and_writes_nothing(call, error, message, rng):
    p, g, b = sgd_args(rng)
    b **= 2
    before = [a.copy() for a in (p, g, b)]
    with pytest.raises(error, match=message):
        call(p, g, b)
    for a, old in zip((p, g, b), before):
        assert_same(a, old)


# -- the optimizer classes: construction -----------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (SGD, {"lr": -0.1}, "Invalid learning rate: -0.1"),
        (SGD, {"lr": float("nan")}, "Invalid learning rate: nan"),
        (SGD, {"momentum": -0.5}, "Invalid momentum value: -0.5"),
        (SGD, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
        (SGD, {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
        (
            SGD,
            {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
            "Nesterov momentum requires a momentum and zero dampening",
        ),
        (Adagrad, {"lr": -0.1}, "Invalid learning rate: -0.1"),
        (Adagrad, {"lr_decay": -0.1}, "Invalid lr_decay value: -0.1"),
        (Adagrad, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        (
            Adagrad,
            {"initial_accumulator_value": -0.1},
            "Invalid initial_accumulator_value value: -0.1",
        ),
        (Adagrad, {"eps": -0.1}, "Invalid epsilon value: -0.1"),
    ],
    ids=[
        "sgd-lr",
        "sgd-lr-nan",
        "sgd-momentum",
        "sgd-weight-decay",
        "sgd-nesterov",
        "sgd-nesterov-dampening",
        "adagrad-lr",
        "adagrad-lr-decay",
        "adagrad-weight-decay",
        "adagrad-initial",
        "adagrad-eps",
    ],
)
def test_bad_hyper_parameter_is_value_error_as_torch(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls([np.zeros(3)], **kwargs)
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls([{"params": [np.zeros(3)], **kwargs}])


def test_hyper_parameter_of_wrong_type_and_bad_params():
    with pytest.raises(TypeError, match="momentum"):
        SGD([np.zeros(3)], momentum="heavy")
    with pytest.raises(TypeError, match="lr_decay"):
        Adagrad([np.zeros(3)], lr_decay=[0.1])
    with pytest.raises(TypeError, match=r"params\[0\] must be float32, float64"):
        SGD([np.zeros(3, np.int32)])
    with pytest.raises(ValueError, match=r"params\[1\] must be C-contiguous"):
        Adagrad([np.zeros(3), np.zeros(8)[::2]])
    buf = np.zeros(10)
    with pytest.raises(ValueError, match="share memory"):
        SGD([buf[:6], buf[4:]])
    with pytest.raises(ValueError, match="empty parameter list"):
        Adagrad([])


def test_defaults_and_param_groups_follow_torch():
    p, q = np.zeros(3), np.zeros(2)
    sgd = SGD([{"params": [p]}, {"params": q, "lr": 0.5}], momentum=0.9)
    assert {k: v for k, v in sgd.param_groups[0].items() if k != "params"} == {
        "lr": 1e-3,
        "momentum": 0.9,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "maximize": False,
    }
    assert sgd.param_groups[1]["lr"] == 0.5 and sgd.param_groups[1]["momentum"] == 0.9
    ada = Adagrad([p, q])
    assert {k: v for k, v in ada.param_groups[0].items() if k != "params"} == {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
        "maximize": False,
    }
    assert "Parameter Group 0" in repr(ada) and repr(sgd).startswith("SGD (")
    assert {"SGD", "Adagrad", "sgd_step", "adagrad_step_multi"} <= set(fastadam.__all__)


def test_torch_signatures_positional_order():
    p = np.zeros(2)
    g = SGD([p], 0.1, 0.9, 0.0, 0.01, True, maximize=True).param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["nesterov"], g["maximize"]) == (
        0.1,
        0.9,
        0.01,
        True,
        True,
    )
    g = Adagrad([p], 0.1, 0.01, 0.02, 0.5, 1e-6, maximize=True).param_groups[0]
    assert (g["lr_decay"], g["weight_decay"], g["initial_accumulator_value"], g["eps"]) == (
        0.01,
        0.02,
        0.5,
        1e-6,
    )
    with pytest.raises(TypeError):
        SGD([p], 0.1, 0.9, 0.0, 0.0, False, True)  # maximize is keyword-only, as in torch


# -- the optimizer classes: steps against the reference ------------------------------------


class RefSGD:
    """torch.optim.SGD's bookkeeping spelled out with reference.sgd_step (same dtype)."""

    def __init__(self, params, **hyper):
        self.params = [p.copy() for p in params]
        self.hyper = dict({"lr": 1e-3}, **hyper)
        self.buffers = {}

    def step(self, grads):
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            buf, first = None, False
            if self.hyper.get("momentum", 0.0) != 0.0:
                first = i not in self.buffers
                buf = self.buffers.setdefault(i, np.zeros_like(p))
            reference.sgd_step(p, g, buf, first_step=first, **self.hyper)


class RefAdagrad:
    """torch.optim.Adagrad's bookkeeping spelled out with reference.adagrad_step."""

    def __init__(self, params, initial_accumulator_value=0.0, **hyper):
        self.params = [p.copy() for p in params]
        self.hyper = hyper
        self.state = [[0, np.full_like(p, initial_accumulator_value)] for p in params]

    def step(self, grads):
        for p, g, s in zip(self.params, grads, self.state):
            if g is not None:
                s[0] += 1
                reference.adagrad_step(p, g, s[1], step=s[0], **self.hyper)


def mixed_params(rng):
    return [
        randn(rng, (5, 7), np.float32),
        randn(rng, 33, np.float64),
        randn(rng, (), np.float32),
        randn(rng, 0, np.float64),
        randn(rng, 1000, np.float32),
    ]


def grads_for(params, rng, t):
    """Gradients for step t, with a None now and then."""
    return [
        None if (t + i) % 4 == 3 else randn(rng, p.shape, p.dtype) for i, p in enumerate(params)
    ]


@pytest.mark.parametrize("options", SGD_OPTIONS.values(), ids=SGD_OPTIONS.keys())
def test_sgd_steps_match_reference(options, rng):
    params = mixed_params(rng)
    opt = SGD(params, lr=0.05, **options)
    ref = RefSGD(params, lr=0.05, **options)
    for t in range(8):
        grads = grads_for(params, rng, t)
        opt.step(grads)
        ref.step(grads)
        for p, r in zip(params, ref.params):
            assert_same(p, r)
    has_state = [i for i in range(5) if i in ref.buffers]
    assert sorted(opt.state_dict()["state"]) == has_state  # no state without momentum


@pytest.mark.parametrize("options", ADAGRAD_OPTIONS.values(), ids=ADAGRAD_OPTIONS.keys())
@pytest.mark.parametrize("initial", [0.0, 0.3])
def test_adagrad_steps_match_reference(options, initial, rng):
    params = mixed_params(rng)
    opt = Adagrad(params, lr=0.05, initial_accumulator_value=initial, **options)
    ref = RefAdagrad(params, lr=0.05, initial_accumulator_value=initial, **options)
    for t in range(8):
        grads = grads_for(params, rng, t)
        opt.step(grads)
        ref.step(grads)
        for p, r in zip(params, ref.params):
            assert_same(p, r)
    for p, (step, state_sum) in zip(params, ref.state):
        assert opt.state[p]["step"] == step
        assert_same(opt.state[p]["sum"], state_sum)


def test_sgd_momentum_switched_on_later_starts_its_buffer_then(rng):
    params = [randn(rng, 9, np.float64)]
    opt = SGD(params, lr=0.1)
    ref = RefSGD(params, lr=0.1)
    for t in range(6):
        if t == 2:
            opt.param_groups[0]["momentum"] = 0.9
            ref.hyper["momentum"] = 0.9
        if t == 4:
            opt.param_groups[0]["lr"] = 0.01
            ref.hyper["lr"] = 0.01
        g = [randn(rng, 9, np.float64)]
        opt.step(g)
        ref.step(g)
        assert_same(params[0], ref.params[0])
    opt.param_groups[0]["momentum"] = 0.0  # off again: the buffer stays, unused, as in torch
    opt.step([np.ones(9)])
    assert "momentum_buffer" in opt.state[params[0]]


def test_adagrad_state_exists_from_construction_as_in_torch():
    p, q = np.ones(3, np.float32), np.ones(2)
    opt = Adagrad([p], initial_accumulator_value=0.25)
    opt.add_param_group({"params": [q], "initial_accumulator_value": 0.5})
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]
    assert float(sd["state"][0]["step"]) == 0.0 and sd["state"][0]["step"].dtype == np.float32
    assert_same(sd["state"][0]["sum"], np.full(3, 0.25, np.float32))
    assert_same(sd["state"][1]["sum"], np.full(2, 0.5))  # a group's own value is honoured
    assert opt.state[p]["sum"].ctypes.data % 64 == 0


@pytest.mark.parametrize("cls", [SGD, Adagrad])
def test_steady_steps_take_the_cached_path_and_agree_bit_for_bit(cls, monkeypatch, rng):
    general = []
    original = cls._step_general

    def counting(self, grads, *options):
        general.append(len(grads))
        return original(self, grads, *options)

    monkeypatch.setattr(cls, "_step_general", counting)
    kwargs = {"momentum": 0.9, "lr": 0.01} if cls is SGD else {"lr": 0.01}
    fast = [randn(rng, n, np.float32) for n in (7, 40)]
    slow = [p.copy() for p in fast]
    opt_fast, opt_slow = cls(fast, **kwargs), cls(slow, **kwargs)
    for t in range(6):
        grads = [randn(rng, p.shape, p.dtype) for p in fast]
        opt_fast.step(grads)
        opt_slow._step_general(grads)
        for p, q in zip(fast, slow):
            assert_same(p, q)
    assert general.count(2) == 7  # opt_fast's first step, then every opt_slow step
    assert opt_fast.state_dict()["state"].keys() == opt_slow.state_dict()["state"].keys()
    for k, s in opt_fast.state_dict()["state"].items():
        for name, value in s.items():
            assert_same(value, opt_slow.state_dict()["state"][k][name])


@pytest.mark.parametrize("cls", [SGD, Adagrad])
def test_bad_grad_changes_nothing(cls, rng):
    params = [randn(rng, 4, np.float64), randn(rng, 3, np.float32)]
    opt = cls(params, momentum=0.9) if cls is SGD else cls(params)
    good = [randn(rng, 4, np.float64), randn(rng, 3, np.float32)]
    for _ in range(2):
        before = [p.copy() for p in params], copy.deepcopy(opt.state_dict())
        with pytest.raises(TypeError, match=r"grads\[1\] must have its parameter's dtype"):
            opt.step([good[0], good[1].astype(np.float64)])
        for p, old in zip(params, before[0]):
            assert_same(p, old)
        after = opt.state_dict()["state"]
        assert after.keys() == before[1]["state"].keys()
        for k in after:
            for name in after[k]:
                assert_same(after[k][name], before[1]["state"][k][name])
        opt.step(good)


# -- state_dict and checkpoints ------------------------------------------------------------


def trained(cls, rng, steps=4):
    groups = [
        {"params": [randn(rng, (3, 4), np.float32), randn(rng, 5, np.float64)]},
        {"params": [randn(rng, 6, np.float32)], "lr": 0.05, "weight_decay": 0.1},
    ]
    opt = cls(groups, momentum=0.9) if cls is SGD else cls(groups, lr_decay=0.01)
    params = [p for g in groups for p in g["params"]]
    for t in range(steps):
        opt.step(
            [
                None if (t, i) == (0, 2) else randn(rng, p.shape, p.dtype)
                for i, p in enumerate(params)
            ]
        )
    return opt, params


def continue_training(opt, params, seed=5):
    rng = np.random.default_rng(seed)
    for _ in range(5):
        opt.step([randn(rng, p.shape, p.dtype) for p in params])


def twin_of(cls, params):
    twins = [p.copy() for p in params]
    return cls([{"params": twins[:2]}, {"params": twins[2:]}]), twins


def test_state_dict_layouts(rng):
    sgd, params = trained(SGD, rng)
    sd = sgd.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    for k, p in enumerate(params):
        assert list(sd["state"][k]) == ["momentum_buffer"]
        assert sd["state"][k]["momentum_buffer"].dtype == p.dtype
    ada, params = trained(Adagrad, rng)
    sd = ada.state_dict()
    assert [float(sd["state"][k]["step"]) for k in range(3)] == [4.0, 4.0, 3.0]
    assert all(set(s) == {"step", "sum"} for s in sd["state"].values())


@pytest.mark.parametrize("cls", [SGD, Adagrad])
@pytest.mark.parametrize("via", ["state_dict", "npz"])
def test_round_trip_continues_bit_for_bit(cls, via, tmp_path, rng):
    opt, params = trained(cls, rng)
    other, twins = twin_of(cls, params)
    if via == "npz":
        opt.save(tmp_path / "opt.npz")
        other.load(tmp_path / "opt.npz")
    else:
        other.load_state_dict(opt.state_dict())
    assert other.param_groups[1]["lr"] == 0.05
    continue_training(opt, params)
    continue_training(other, twins)
    for p, q in zip(params, twins):
        assert_same(p, q)


def test_sgd_without_momentum_has_no_state_and_round_trips(tmp_path, rng):
    params = [randn(rng, 4, np.float32)]
    opt = SGD(params, lr=0.1)
    opt.step([np.ones(4, np.float32)])
    assert opt.state_dict()["state"] == {} and len(opt.state) == 0
    opt.save(tmp_path / "sgd.npz")
    other = SGD([params[0].copy()], lr=0.5)
    other.load(tmp_path / "sgd.npz")
    assert other.param_groups[0]["lr"] == 0.1


def test_checkpoint_of_another_optimizer_is_refused(tmp_path, rng):
    sgd, params = trained(SGD, rng)
    sgd.save(tmp_path / "sgd.npz")
    ada, _ = twin_of(Adagrad, params)
    with pytest.raises(ValueError, match="holds the state of SGD, not of Adagrad"):
        ada.load(tmp_path / "sgd.npz")
    adam = fastadam.Adam([{"params": params[:2]}, {"params": params[2:]}])
    with pytest.raises(ValueError, match="holds the state of SGD, not of Adam"):
        adam.load(tmp_path / "sgd.npz")


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda sd: sd["state"][0].pop("sum"), ValueError, "has no 'sum'"),
        (lambda sd: sd["state"][0].update(step=-1), ValueError, "must be from 0 to"),
        (lambda sd: sd["state"][1].update(sum=np.zeros(2)), ValueError, "shape"),
        (lambda sd: sd["param_groups"][0].update(lr_decay=-1.0), ValueError, "lr_decay"),
    ],
    ids=["missing-sum", "negative-step", "shape", "lr-decay"],
)
def test_bad_adagrad_state_dict_changes_nothing(mutate, error, message, rng):
    opt, _params = trained(Adagrad, rng)
    sd = opt.state_dict()
    saved = copy.deepcopy(sd)
    mutate(sd)
    with pytest.raises(error, match=message):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr_decay"] == saved["param_groups"][0]["lr_decay"]
    for k, s in opt.state_dict()["state"].items():
        for name, value in s.items():
            assert_same(value, saved["state"][k][name])


def test_sgd_loads_a_none_momentum_buffer_as_absent(rng):
    opt, _params = trained(SGD, rng)
    sd = opt.state_dict()
    sd["state"][2]["momentum_buffer"] = None
    opt.load_state_dict(sd)
    assert sorted(opt.state_dict()["state"]) == [0, 1]


def test_optimizer_base_names_what_a_subclass_defines():
    # Adding an optimizer is a subclass that defines these; the machinery is shared.
    for cls in (SGD, Adagrad, fastadam.Adam):
        assert issubclass(cls, optim.Optimizer)
        for name in ("_validate", "_arrays", "_hyper_tuple", "_native"):
            assert getattr(cls, name) is not getattr(optim.Optimizer, name)


# -- against torch -------------------------------------------------------------------------

TORCH_SGD = {
    "plain": {"lr": 0.1},
    "momentum": {"lr": 0.05, "momentum": 0.9},
    "dampening": {"lr": 0.05, "momentum": 0.9, "dampening": 0.5},
    "nesterov": {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    "weight_decay": {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    "maximize": {"lr": 0.05, "momentum": 0.9, "maximize": True},
}
TORCH_ADAGRAD = {
    "plain": {"lr": 0.1},
    "lr_decay": {"lr": 0.1, "lr_decay": 0.01},
    "weight_decay": {"lr": 0.1, "weight_decay": 0.1},
    "initial_accumulator_value": {"lr": 0.1, "initial_accumulator_value": 0.5},
    "maximize": {"lr": 0.1, "maximize": True},
}
TORCH_CASES = {f"SGD-{k}": ("SGD", v) for k, v in TORCH_SGD.items()}
TORCH_CASES.update({f"Adagrad-{k}": ("Adagrad", v) for k, v in TORCH_ADAGRAD.items()})
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def away_from_zero_problem(n=67, seed=3):
    """A convex quadratic whose minimum and start lie in [1, 2]^n, nearly diagonal: every
    trajectory here stays above 0.5 in each element, so rtol alone is meaningful."""
    r = np.random.default_rng(seed)
    off = 0.02 * r.standard_normal((n, n))
    a = np.diag(r.uniform(0.5, 2.0, n)) + (off + off.T) / 2
    x_star, x0 = r.uniform(1.0, 2.0, n), r.uniform(1.0, 2.0, n)
    return (lambda x: a @ (x.astype(np.float64) - x_star)), x0


def crossing_problem(n=40, seed=7):
    """A random convex quadratic: elements start on both sides of zero and cross it."""
    r = np.random.default_rng(seed)
    a = r.standard_normal((n, n))
    a = a @ a.T / n + 0.1 * np.eye(n)
    b = r.standard_normal(n)
    return (lambda x: a @ x.astype(np.float64) - b), r.standard_normal(n)


def trajectories(torch, cls_name, kwargs, dtype, grad_fn, x0, steps=200):
    """Both optimizers from x0 for `steps` steps; with maximize the gradient of -f is given, so
    both still descend f."""
    sign = -1.0 if kwargs.get("maximize") else 1.0
    ours = x0.astype(dtype)
    opt = getattr(fastadam, cls_name)([ours], **kwargs)
    theirs = torch.tensor(x0.astype(dtype))
    topt = getattr(torch.optim, cls_name)([theirs], foreach=False, **kwargs)
    a, b = [], []
    for _ in range(steps):
        opt.step([(sign * grad_fn(ours)).astype(dtype)])
        theirs.grad = torch.from_numpy((sign * grad_fn(theirs.numpy())).astype(dtype))
        topt.step()
        a.append(ours.copy())
        b.append(theirs.numpy().copy())
    return np.array(a), np.array(b)


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_200_step_trajectory_matches_torch(isa, case, dtype, torch):
    cls_name, kwargs = case
    grad_fn, x0 = away_from_zero_problem()
    ours, theirs = trajectories(torch, cls_name, kwargs, dtype, grad_fn, x0)
    assert np.min(np.abs(theirs)) > 0.5
    assert np.max(np.abs(theirs[-1] - x0)) > 0.5  # it did move
    # Element by element, every step, rtol alone. (Torch's CPU add/addcdiv contract into FMA,
    # ours round every operation: they agree to rounding, not bitwise.)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_200_step_trajectory_through_zero_matches_torch(isa, case, dtype, torch):
    cls_name, kwargs = case
    kwargs = dict(kwargs, lr=kwargs["lr"] / 5)
    grad_fn, x0 = crossing_problem()
    ours, theirs = trajectories(torch, cls_name, kwargs, dtype, grad_fn, x0)
    # Elements crossing zero have unbounded relative error (measured up to 6e-4 in float32), so
    # they are judged against the trajectory's scale: atol = rtol * max|x|. Measured: the largest
    # |difference| / max|x| is about 1.4e-7 (float32) and 5e-16 (float64).
    atol = RTOL[dtype] * np.max(np.abs(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL[dtype], atol=atol)


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


@pytest.mark.parametrize("direction", ["torch-to-ours", "ours-to-torch"])
@pytest.mark.parametrize(
    ("cls_name", "kwargs"),
    [
        ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ],
    ids=["SGD", "Adagrad"],
)
def test_state_dict_interop_with_torch(direction, cls_name, kwargs, torch):
    grad_fn, x0 = away_from_zero_problem(20, 4)
    ours = x0.copy()
    theirs = torch.tensor(x0.copy())
    opt = getattr(fastadam, cls_name)([ours], **kwargs)
    topt = getattr(torch.optim, cls_name)([theirs], foreach=False, **kwargs)
    for _ in range(30):
        if direction == "torch-to-ours":
            theirs.grad = torch.from_numpy(grad_fn(theirs.numpy()))
            topt.step()
        else:
            opt.step([grad_fn(ours)])
    if direction == "torch-to-ours":
        ours[...] = theirs.numpy()
        opt.load_state_dict(to_numpy(topt.state_dict()))
    else:
        theirs.data.copy_(torch.from_numpy(ours))
        topt.load_state_dict(to_torch(torch, opt.state_dict()))
    for _ in range(100):
        opt.step([grad_fn(ours)])
        theirs.grad = torch.from_numpy(grad_fn(theirs.numpy()))
        topt.step()
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=0)
    mine, other = opt.state_dict()["state"][0], to_numpy(topt.state_dict())["state"][0]
    assert sorted(mine) == sorted(other)
    for name in mine:
        # Near the minimum the momentum buffer's elements pass through zero: judged against the
        # buffer's scale (differences measured: ~4e-12 of max|buf|).
        scale = np.max(np.abs(other[name]))
        np.testing.assert_allclose(mine[name], other[name], rtol=1e-11, atol=1e-11 * scale)


def test_non_integer_step_message_names_an_integer(rng):
    p, g, s = sgd_args(rng)
    with pytest.raises(TypeError, match="step must be an int"):
        fastadam.adagrad_step(p, g, s**2, step=3.0)
    with pytest.raises(TypeError, match="step must be an int"):
        fastadam.adam_step(p, g, s, s**2, step=3.0)


@pytest.mark.parametrize(
    "make, entry",
    [
        (lambda groups: SGD(groups, lr=0.1, momentum=0.9), "_sgd_step_sets"),
        (lambda groups: SGD(groups, lr=0.1), "_sgd_step_sets"),
        (lambda groups: Adagrad(groups, lr=0.1), "_adagrad_step_sets"),
        (lambda groups: fastadam.Adam(groups, lr=0.1), "_adam_step_sets"),
    ],
    ids=["SGD-momentum", "SGD-plain", "Adagrad", "Adam"],
)
def test_groups_and_dtypes_take_one_native_call_and_fail_whole(monkeypatch, rng, make, entry):
    calls = []
    module = {"_adam": optim.adam, "_sgd": optim.sgd, "_adagrad": optim.adagrad}[
        entry[: entry.index("_step")]
    ]
    native = getattr(module, entry)

    def counting(*args):
        calls.append(len(args[0]))
        return native(*args)

    monkeypatch.setattr(module, entry, counting)
    f32 = [rng.standard_normal(5).astype(np.float32) for _ in range(3)]
    f64 = [rng.standard_normal(7) for _ in range(2)]
    opt = make([{"params": [f32[0], f64[0]]}, {"params": [f32[1], f64[1], f32[2]], "lr": 0.01}])
    grads = [
        np.ones(5, np.float32),
        np.ones(7),
        np.ones(5, np.float32),
        np.ones(7),
        np.ones(5, np.float32),
    ]
    for _ in range(2):
        calls.clear()
        opt.step(grads)
        assert calls == [5]
    before = [p.tobytes() for p in f32 + f64]
    state_before = {
        k: {n: (a.tobytes() if isinstance(a, np.ndarray) else a) for n, a in v.items()}
        for k, v in opt.state_dict()["state"].items()
    }
    bad = list(grads)
    bad[-1] = np.ones(5, np.float64)  # wrong dtype in the last group's last param
    with pytest.raises(TypeError, match=r"grads\[4\]"):
        opt.step(bad)
    assert [p.tobytes() for p in f32 + f64] == before
    state_after = {
        k: {n: (a.tobytes() if isinstance(a, np.ndarray) else a) for n, a in v.items()}
        for k, v in opt.state_dict()["state"].items()
    }
    assert state_after == state_before
