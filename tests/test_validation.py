"""Bad input raises the right exception, naming the argument, and writes nothing.

Each case builds a call from fresh random arrays. The test snapshots the bytes of every array
(and of every buffer a view was cut from) before the call and compares them after it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest
from adam_oracle import State, random_state

import fastadam

N = 33


@dataclasses.dataclass
class Call:
    fn: Callable
    args: list
    kwargs: dict
    watched: list  # every ndarray whose bytes must survive the call

    def run(self):
        return self.fn(*self.args, **self.kwargs)


def single(state: State, extra: list | None = None, **kwargs) -> Call:
    """adam_step on `state` (amsgrad when it has max_exp_avg_sq), kwargs override."""
    kw = {"step": 3}
    if state.max_exp_avg_sq is not None:
        kw |= {"amsgrad": True, "max_exp_avg_sq": state.max_exp_avg_sq}
    kw |= kwargs
    watched = [a for a in state.arrays() if isinstance(a, np.ndarray)] + (extra or [])
    args = [state.param, state.grad, state.exp_avg, state.exp_avg_sq]
    return Call(fastadam.adam_step, args, kw, watched)


def fresh(rng, dtype=np.float32, shape=(N,), amsgrad=False) -> State:
    return random_state(rng, shape, dtype, amsgrad=amsgrad)


def read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def misaligned(rng, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A copy of `a` at an address that is not a multiple of its element size."""
    raw = np.empty(a.nbytes + a.itemsize + 1, np.uint8)
    start = 1 if raw.ctypes.data % a.itemsize == 0 else 0
    view = raw[start : start + a.nbytes].view(a.dtype)
    view[...] = a
    assert not view.flags.aligned
    return view, raw


# --- adam_step ----------------------------------------------------------------------------------
# Each case: rng -> (Call, exception type, the argument the message must name).
SINGLE: dict[str, Callable] = {}


def case(table):
    def register(fn):
        table[fn.__name__] = fn
        return fn

    return register


@case(SINGLE)
def param_is_a_list(rng):
    s = fresh(rng)
    c = single(s)
    c.args[0] = s.param.tolist()
    return c, TypeError, "param"


@case(SINGLE)
def grad_is_a_list(rng):
    s = fresh(rng)
    c = single(s)
    c.args[1] = s.grad.tolist()
    return c, TypeError, "grad"


@case(SINGLE)
def exp_avg_is_none(rng):
    c = single(fresh(rng))
    c.args[2] = None
    return c, TypeError, "exp_avg"


@case(SINGLE)
def max_exp_avg_sq_is_a_list(rng):
    s = fresh(rng, amsgrad=True)
    c = single(s, max_exp_avg_sq=s.max_exp_avg_sq.tolist())
    return c, TypeError, "max_exp_avg_sq"


def all_as(dtype, name="param"):
    def make(rng):
        s = fresh(rng, dtype=dtype)
        return single(s), TypeError, name

    return make


# float16 parameters are fine; their state must be float32
SINGLE["all_float16"] = all_as(np.float16, "exp_avg")
SINGLE["all_int32"] = all_as(np.int32)
SINGLE["all_int64"] = all_as(np.int64)
SINGLE["all_big_endian_f4"] = all_as(np.dtype(">f4"))
SINGLE["all_big_endian_f8"] = all_as(np.dtype(">f8"))
SINGLE["all_complex64"] = all_as(np.complex64)


def one_as(index: int, name: str, dtype, param_dtype=np.float32, amsgrad=False):
    def make(rng):
        s = fresh(rng, dtype=param_dtype, amsgrad=amsgrad)
        arrays = s.arrays()
        setattr(s, name, arrays[index].astype(dtype))
        c = single(s, extra=[arrays[index]])
        return c, TypeError, name

    return make


SINGLE["grad_float64_param_float32"] = one_as(1, "grad", np.float64)
SINGLE["exp_avg_float32_param_float64"] = one_as(2, "exp_avg", np.float32, np.float64)
SINGLE["exp_avg_sq_float16"] = one_as(3, "exp_avg_sq", np.float16)
SINGLE["grad_big_endian_f4"] = one_as(1, "grad", np.dtype(">f4"))
SINGLE["max_exp_avg_sq_float64"] = one_as(4, "max_exp_avg_sq", np.float64, amsgrad=True)


@case(SINGLE)
def grad_longer(rng):
    s = fresh(rng)
    s.grad = np.concatenate([s.grad, [1.0]]).astype(np.float32)
    return single(s), ValueError, "grad"


@case(SINGLE)
def exp_avg_same_size_other_shape(rng):
    s = fresh(rng)
    s.exp_avg = s.exp_avg.reshape(3, 11)
    return single(s), ValueError, "exp_avg"


@case(SINGLE)
def exp_avg_sq_extra_axis(rng):
    s = fresh(rng)
    s.exp_avg_sq = s.exp_avg_sq[None, :]
    return single(s), ValueError, "exp_avg_sq"


@case(SINGLE)
def max_exp_avg_sq_shorter(rng):
    s = fresh(rng, amsgrad=True)
    full = s.max_exp_avg_sq
    s.max_exp_avg_sq = full[:-1]
    return single(s, extra=[full]), ValueError, "max_exp_avg_sq"


@case(SINGLE)
def param_transposed(rng):
    s = fresh(rng, shape=(5, 7))
    for name in ("param", "grad", "exp_avg", "exp_avg_sq"):
        setattr(s, name, np.ascontiguousarray(getattr(s, name).T).T)  # shape (5, 7), F order
    return single(s), ValueError, "param"


@case(SINGLE)
def exp_avg_sq_transposed(rng):
    s = fresh(rng, shape=(5, 7))
    s.exp_avg_sq = np.ascontiguousarray(s.exp_avg_sq.T).T
    assert s.exp_avg_sq.shape == (5, 7) and not s.exp_avg_sq.flags.c_contiguous
    return single(s), ValueError, "exp_avg_sq"


@case(SINGLE)
def grad_strided(rng):
    s = fresh(rng)
    buf = np.repeat(s.grad, 2)
    s.grad = buf[::2]
    return single(s, extra=[buf]), ValueError, "grad"


@case(SINGLE)
def exp_avg_strided_2d(rng):
    s = fresh(rng, shape=(4, 6))
    buf = np.ones((4, 12), np.float32)
    s.exp_avg = buf[:, ::2]
    return single(s, extra=[buf]), ValueError, "exp_avg"


@case(SINGLE)
def param_misaligned(rng):
    s = fresh(rng)
    s.param, raw = misaligned(rng, s.param)
    return single(s, extra=[raw]), ValueError, "param"


@case(SINGLE)
def exp_avg_sq_misaligned_float64(rng):
    s = fresh(rng, dtype=np.float64)
    s.exp_avg_sq, raw = misaligned(rng, s.exp_avg_sq)
    return single(s, extra=[raw]), ValueError, "exp_avg_sq"


def read_only_case(name, amsgrad=False):
    def make(rng):
        s = fresh(rng, amsgrad=amsgrad)
        read_only(getattr(s, name))
        return single(s), ValueError, name

    return make


SINGLE["param_read_only"] = read_only_case("param")
SINGLE["exp_avg_read_only"] = read_only_case("exp_avg")
SINGLE["exp_avg_sq_read_only"] = read_only_case("exp_avg_sq")
SINGLE["max_exp_avg_sq_read_only"] = read_only_case("max_exp_avg_sq", amsgrad=True)


@case(SINGLE)
def grad_is_param(rng):
    s = fresh(rng)
    s.grad = s.param
    return single(s), ValueError, "param"


@case(SINGLE)
def exp_avg_is_exp_avg_sq(rng):
    s = fresh(rng)
    s.exp_avg_sq = s.exp_avg
    return single(s), ValueError, "exp_avg"


@case(SINGLE)
def param_and_exp_avg_overlapping_slices(rng):
    s = fresh(rng)
    buf = rng.standard_normal(2 * N).astype(np.float32)
    s.param, s.exp_avg = buf[:N], buf[N // 2 : N // 2 + N]
    return single(s, extra=[buf]), ValueError, "param"


@case(SINGLE)
def grad_overlapping_exp_avg_sq_by_one_element(rng):
    s = fresh(rng)
    buf = rng.random(2 * N).astype(np.float32)
    s.exp_avg_sq, s.grad = buf[:N], buf[N - 1 : 2 * N - 1]
    return single(s, extra=[buf]), ValueError, "grad"


@case(SINGLE)
def max_exp_avg_sq_overlapping_param_reshaped(rng):
    s = fresh(rng, shape=(3, 11), amsgrad=True)
    buf = np.concatenate([s.param.ravel(), s.max_exp_avg_sq.ravel()])
    s.param, s.max_exp_avg_sq = buf[: 3 * 11].reshape(3, 11), buf[5 : 5 + 33].reshape(3, 11)
    return single(s, extra=[buf]), ValueError, "max_exp_avg_sq"


def hyper_case(arg: str, **kwargs):
    def make(rng):
        return single(fresh(rng), **kwargs), ValueError, arg

    return make


NAN = float("nan")
SINGLE["lr_negative"] = hyper_case("lr", lr=-1e-3)
SINGLE["lr_nan"] = hyper_case("lr", lr=NAN)
SINGLE["eps_negative"] = hyper_case("eps", eps=-1e-8)
SINGLE["eps_nan"] = hyper_case("eps", eps=NAN)
SINGLE["beta1_one"] = hyper_case("betas[0]", betas=(1.0, 0.999))
SINGLE["beta1_negative"] = hyper_case("betas[0]", betas=(-0.1, 0.999))
SINGLE["beta1_nan"] = hyper_case("betas[0]", betas=(NAN, 0.999))
SINGLE["beta2_one"] = hyper_case("betas[1]", betas=(0.9, 1.0))
SINGLE["beta2_above_one"] = hyper_case("betas[1]", betas=(0.9, 1.5))
SINGLE["beta2_nan"] = hyper_case("betas[1]", betas=(0.9, NAN))
SINGLE["weight_decay_negative"] = hyper_case("weight_decay", weight_decay=-0.01)
SINGLE["weight_decay_negative_decoupled"] = hyper_case(
    "weight_decay", weight_decay=-0.01, decoupled=True
)
SINGLE["weight_decay_nan"] = hyper_case("weight_decay", weight_decay=NAN)
SINGLE["step_zero"] = hyper_case("step", step=0)
SINGLE["step_negative"] = hyper_case("step", step=-5)


@case(SINGLE)
def amsgrad_without_max_exp_avg_sq(rng):
    return single(fresh(rng), amsgrad=True), ValueError, "max_exp_avg_sq"


@case(SINGLE)
def max_exp_avg_sq_without_amsgrad(rng):
    s = fresh(rng, amsgrad=True)
    return single(s, amsgrad=False), ValueError, "max_exp_avg_sq"


@case(SINGLE)
def step_beyond_int64(rng):
    # TypeError from pybind11's argument conversion; its message shows the `step` parameter.
    return single(fresh(rng), step=2**70), (TypeError, ValueError, OverflowError), "step"


# --- adam_step_multi ------------------------------------------------------------------------------
# Three parameter sets; the bad item sits in the LAST set, so that a call that wrote the first sets
# before validating the last one would show.
SETS = 3


def multi(states: list[State], extra: list | None = None, **kwargs) -> Call:
    amsgrad = states[0].max_exp_avg_sq is not None
    names = ("param", "grad", "exp_avg", "exp_avg_sq")
    lists = [[getattr(s, name) for s in states] for name in names]
    kw = {"steps": 3}
    if amsgrad:
        kw |= {"amsgrad": True, "max_exp_avg_sqs": [s.max_exp_avg_sq for s in states]}
    kw |= kwargs
    watched = [a for s in states for a in s.arrays() if isinstance(a, np.ndarray)] + (extra or [])
    return Call(fastadam.adam_step_multi, lists, kw, watched)


def fresh_sets(rng, dtype=np.float32, amsgrad=False) -> list[State]:
    return [fresh(rng, dtype=dtype, shape=(N + 2 * i,), amsgrad=amsgrad) for i in range(SETS)]


MULTI: dict[str, Callable] = {}


@case(MULTI)
def params_last_float64(rng):
    states = fresh_sets(rng)
    states[-1] = fresh(rng, dtype=np.float64, shape=states[-1].param.shape)
    return multi(states), TypeError, "params[2]"


@case(MULTI)
def params_last_float16(rng):
    states = fresh_sets(rng)
    states[-1] = fresh(rng, dtype=np.float16, shape=states[-1].param.shape)
    return multi(states), TypeError, "params[2]"


@case(MULTI)
def grads_last_float64(rng):
    states = fresh_sets(rng)
    states[-1].grad = states[-1].grad.astype(np.float64)
    return multi(states), TypeError, "grads[2]"


@case(MULTI)
def exp_avgs_last_wrong_shape(rng):
    states = fresh_sets(rng)
    states[-1].exp_avg = states[-1].exp_avg[1:]
    return multi(states), ValueError, "exp_avgs[2]"


@case(MULTI)
def exp_avg_sqs_last_read_only(rng):
    states = fresh_sets(rng)
    read_only(states[-1].exp_avg_sq)
    return multi(states), ValueError, "exp_avg_sqs[2]"


@case(MULTI)
def params_last_strided(rng):
    states = fresh_sets(rng)
    buf = np.repeat(states[-1].param, 2)
    states[-1].param = buf[::2]
    return multi(states, extra=[buf]), ValueError, "params[2]"


@case(MULTI)
def max_exp_avg_sqs_last_transposed(rng):
    states = [fresh(rng, shape=(4, 5 + i), amsgrad=True) for i in range(SETS)]
    states[-1].max_exp_avg_sq = np.ascontiguousarray(states[-1].max_exp_avg_sq.T).T
    return multi(states), ValueError, "max_exp_avg_sqs[2]"


@case(MULTI)
def max_exp_avg_sqs_last_none(rng):
    states = fresh_sets(rng, amsgrad=True)
    c = multi(states)
    c.kwargs["max_exp_avg_sqs"][-1] = None
    return c, TypeError, "max_exp_avg_sqs[2]"


@case(MULTI)
def params_last_is_params_first(rng):
    states = fresh_sets(rng)
    states[-1] = fresh(rng, shape=states[0].param.shape)
    states[-1].param = states[0].param
    return multi(states), ValueError, "params[2]"


@case(MULTI)
def exp_avgs_last_is_grads_first(rng):
    states = fresh_sets(rng)
    states[-1] = fresh(rng, shape=states[0].param.shape)
    states[-1].exp_avg = states[0].grad
    return multi(states), ValueError, "exp_avgs[2]"


@case(MULTI)
def steps_last_zero(rng):
    return multi(fresh_sets(rng), steps=[1, 2, 0]), ValueError, "steps[2]"


@case(MULTI)
def steps_last_float(rng):
    return multi(fresh_sets(rng), steps=[1, 2, 3.0]), TypeError, "steps"


@case(MULTI)
def steps_is_a_float(rng):
    return multi(fresh_sets(rng), steps=3.0), TypeError, "steps"


@case(MULTI)
def steps_too_short(rng):
    return multi(fresh_sets(rng), steps=[1, 2]), ValueError, "steps"


@case(MULTI)
def steps_last_beyond_int64(rng):
    c = multi(fresh_sets(rng), steps=[1, 2, 2**70])
    return c, (TypeError, ValueError, OverflowError), "steps"


@case(MULTI)
def grads_too_short(rng):
    c = multi(fresh_sets(rng))
    c.args[1] = c.args[1][:-1]
    return c, ValueError, "grads"


@case(MULTI)
def exp_avgs_too_long(rng):
    c = multi(fresh_sets(rng))
    c.args[2] = c.args[2] + [c.args[2][0].copy()]
    return c, ValueError, "exp_avgs"


@case(MULTI)
def exp_avg_sqs_too_short(rng):
    c = multi(fresh_sets(rng))
    c.args[3] = c.args[3][:-1]
    return c, ValueError, "exp_avg_sqs"


@case(MULTI)
def max_exp_avg_sqs_too_short(rng):
    c = multi(fresh_sets(rng, amsgrad=True))
    c.kwargs["max_exp_avg_sqs"] = c.kwargs["max_exp_avg_sqs"][:-1]
    return c, ValueError, "max_exp_avg_sqs"


@case(MULTI)
def params_is_an_array(rng):
    states = fresh_sets(rng)
    c = multi(states)
    c.args[0] = states[0].param
    return c, TypeError, "params"


@case(MULTI)
def grads_is_a_string(rng):
    c = multi(fresh_sets(rng))
    c.args[1] = "grads"
    return c, TypeError, "grads"


@case(MULTI)
def amsgrad_without_max_exp_avg_sqs(rng):
    return multi(fresh_sets(rng), amsgrad=True), ValueError, "max_exp_avg_sqs"


@case(MULTI)
def max_exp_avg_sqs_without_amsgrad(rng):
    return multi(fresh_sets(rng, amsgrad=True), amsgrad=False), ValueError, "max_exp_avg_sqs"


@case(MULTI)
def lr_negative(rng):
    return multi(fresh_sets(rng), lr=-1.0), ValueError, "lr"


@case(MULTI)
def betas_out_of_range(rng):
    return multi(fresh_sets(rng), betas=(0.9, 1.0)), ValueError, "betas[1]"


# --- the tests ----------------------------------------------------------------------------------


def check_rejected(make, rng):
    call, exc_type, name = make(rng)
    before = [a.tobytes() for a in call.watched]
    with pytest.raises(exc_type) as info:
        call.run()
    assert name in str(info.value), f"message does not name {name!r}: {info.value}"
    for k, (a, b) in enumerate(zip(call.watched, before)):
        assert a.tobytes() == b, f"watched array {k} was written"


@pytest.mark.parametrize("make", SINGLE.values(), ids=SINGLE.keys())
def test_adam_step_rejects(make, rng):
    check_rejected(make, rng)


@pytest.mark.parametrize("make", MULTI.values(), ids=MULTI.keys())
def test_adam_step_multi_rejects(make, rng):
    check_rejected(make, rng)


def test_every_single_case_is_valid_once_fixed(rng):
    """The base call of the case builders is itself valid, so each case tests one defect."""
    single(fresh(rng)).run()
    single(fresh(rng, amsgrad=True)).run()
    multi(fresh_sets(rng)).run()
    multi(fresh_sets(rng, amsgrad=True)).run()


def test_runtime_setters_reject_bad_values():
    previous_isa, previous_threads = fastadam.get_isa(), fastadam.get_num_threads()
    with pytest.raises(ValueError, match="bogus"):
        fastadam.set_isa("bogus")
    for name in {"scalar", "avx2", "avx512", "neon"} - set(fastadam.available_isas()):
        with pytest.raises(ValueError, match=name):
            fastadam.set_isa(name)
    for n in (0, -1, 10**6):
        with pytest.raises(ValueError, match="num_threads"):
            fastadam.set_num_threads(n)
    assert (fastadam.get_isa(), fastadam.get_num_threads()) == (previous_isa, previous_threads)
