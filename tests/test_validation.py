"""Bad input raises the right exception, naming the argument, and writes nothing.

Each case builds a call from fresh random arrays. The test snapshots the bytes of every array
(and of every buffer a view was cut from) before the call and compares them after it.
"""

from __future__ import annotations

import dataclasses
import re
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
    return single(fresh(rng), step=2**70), ValueError, "step"


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
    return multi(fresh_sets(rng), steps=[1, 2, 2**70]), ValueError, "steps[2]"


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
    for name in {"scalar", "avx2", "avx512", "avx512bf16", "neon"} - set(fastadam.available_isas()):
        with pytest.raises(ValueError, match=name):
            fastadam.set_isa(name)
    for n in (0, -1, 10**6):
        with pytest.raises(ValueError, match="num_threads"):
            fastadam.set_num_threads(n)
    assert (fastadam.get_isa(), fastadam.get_num_threads()) == (previous_isa, previous_threads)


# --- scalar arguments of every functional entry ---------------------------------------------------
# A bad scalar is refused with an error that starts with the argument's name (not a dump of the
# whole signature), before any array is written. Python and NumPy real scalars are accepted for
# numbers, bool and numpy.bool_ for flags; a string, an array, None, or a bool where a number is
# expected is a TypeError (torch refuses strings too; a bool for lr is a slip, never meant as 1.0).


class BadIndex:
    """An integer-like object whose __index__ raises `exc`."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def __index__(self):
        raise self.exc


def sgd_call(rng, multi_sets=False, **kwargs) -> Call:
    """sgd_step (or sgd_step_multi) with momentum and its buffer; kwargs override."""
    p, g, buf = (rng.standard_normal(N).astype(np.float32) for _ in range(3))
    kw = {"momentum": 0.9} | kwargs
    if multi_sets:
        return Call(fastadam.sgd_step_multi, [[p], [g], [buf]], kw, [p, g, buf])
    return Call(fastadam.sgd_step, [p, g, buf], kw, [p, g, buf])


def adagrad_call(rng, multi_sets=False, **kwargs) -> Call:
    p, g = (rng.standard_normal(N).astype(np.float32) for _ in range(2))
    s = rng.random(N).astype(np.float32)
    if multi_sets:
        kw = {"steps": 2} | kwargs
        return Call(fastadam.adagrad_step_multi, [[p], [g], [s]], kw, [p, g, s])
    kw = {"step": 2} | kwargs
    return Call(fastadam.adagrad_step, [p, g, s], kw, [p, g, s])


def on_single(pattern: str, exc=TypeError, **kwargs) -> Callable:
    return lambda rng: (single(fresh(rng), **kwargs), exc, pattern)


def on_multi(pattern: str, exc=TypeError, **kwargs) -> Callable:
    return lambda rng: (multi(fresh_sets(rng), **kwargs), exc, pattern)


def on(make_call: Callable, pattern: str, **kwargs) -> Callable:
    return lambda rng: (make_call(rng, **kwargs), TypeError, pattern)


def step_missing(rng):
    c = single(fresh(rng))
    c.kwargs = {}
    return c, TypeError, r"adam_step\(\) missing required argument 'step'"


def step_given_twice(rng):
    c = single(fresh(rng))
    c.args.append(1)
    return c, TypeError, r"adam_step\(\) takes at most 4 positional arguments"


def multi_params_string(rng):
    c = multi(fresh_sets(rng))
    c.args[0] = "abc"
    return c, TypeError, r"params must be a list or tuple, got str"


# name -> rng -> (Call, exception type, regular expression the message must match from its start)
SCALARS: dict[str, Callable] = {
    # adam_step: step (an int; an array, a float or a failing __index__ is reported as such)
    "step_1d_array": on_single(r"step must be an int, got numpy.ndarray", step=np.array([3])),
    "step_0d_float_array": on_single(r"step must be an int, got numpy.ndarray", step=np.array(3.0)),
    "step_index_raises_type_error": on_single(
        r"step must be an int, got BadIndex \(no index\)", step=BadIndex(TypeError("no index"))
    ),
    "step_index_raises_other": on_single(
        r"own error", ZeroDivisionError, step=BadIndex(ZeroDivisionError("own error"))
    ),
    "step_bool": on_single(r"step must be an int, got bool", step=True),
    "step_numpy_float": on_single(r"step must be an int", step=np.float64(3)),
    "step_string": on_single(r"step must be an int, got str", step="3"),
    "step_missing": step_missing,
    # adam_step: hyper-parameters
    "lr_string": on_single(r"lr must be a real number, got str", lr="0.1"),
    "lr_1d_array": on_single(r"lr must be a real number, got numpy.ndarray", lr=np.array([0.1])),
    "lr_0d_array": on_single(r"lr must be a real number, got numpy.ndarray", lr=np.array(0.1)),
    "lr_bool": on_single(r"lr must be a real number, got bool", lr=True),
    "lr_none": on_single(r"lr must be a real number, got NoneType", lr=None),
    "lr_complex": on_single(r"lr must be a real number", lr=np.complex128(0.1)),
    "lr_beyond_double": on_single(r"lr is too large for a double", ValueError, lr=10**400),
    "eps_string": on_single(r"eps must be a real number", eps="1e-8"),
    "weight_decay_string": on_single(r"weight_decay must be a real number", weight_decay="1e-2"),
    "betas_one_entry": on_single(r"betas must have two entries, got 1", ValueError, betas=(0.9,)),
    "betas_three_entries": on_single(
        r"betas must have two entries, got 3", ValueError, betas=[0.9, 0.99, 0.9]
    ),
    "betas_second_string": on_single(
        r"betas\[1\] must be a real number, got str", betas=(0.9, "0.99")
    ),
    "betas_string": on_single(r"betas must be a tuple of two real numbers, got str", betas="0.9"),
    "betas_none": on_single(r"betas must be a tuple", betas=None),
    "maximize_string": on_single(r"maximize must be a bool, got str", maximize="yes"),
    "maximize_int": on_single(r"maximize must be a bool, got int", maximize=1),
    "amsgrad_none": on_single(r"amsgrad must be a bool", amsgrad=None),
    "decoupled_string": on_single(r"decoupled must be a bool", decoupled="no"),
    "bias_correction_float": on_single(r"bias_correction must be a bool", bias_correction=1.0),
    "unknown_keyword": on_single(
        r"adam_step\(\) got an unexpected keyword argument 'lrr'", lrr=0.1
    ),
    "step_given_twice": step_given_twice,
    # adam_step_multi
    "multi_steps_bytes": on_multi(r"steps must be an int, got bytes", steps=b"\x05"),
    "multi_steps_array": on_multi(
        r"steps must be an int, got numpy.ndarray", steps=np.array([3, 3, 3])
    ),
    "multi_steps_last_index_raises": on_multi(
        r"steps\[2\] must be an int", steps=[1, 2, BadIndex(TypeError("no"))]
    ),
    "multi_lr_string": on_multi(r"lr must be a real number", lr="0.1"),
    "multi_betas_one_entry": on_multi(r"betas must have two entries", ValueError, betas=(0.9,)),
    "multi_maximize_string": on_multi(r"maximize must be a bool", maximize="yes"),
    "multi_params_string": multi_params_string,
    # SGD
    "sgd_lr_string": on(sgd_call, r"lr must be a real number", lr="0.1"),
    "sgd_momentum_string": on(sgd_call, r"momentum must be a real number", momentum="0.9"),
    "sgd_dampening_array": on(
        sgd_call, r"dampening must be a real number", dampening=np.array([0.1])
    ),
    "sgd_nesterov_string": on(sgd_call, r"nesterov must be a bool", nesterov="yes"),
    "sgd_first_step_int": on(sgd_call, r"first_step must be a bool", first_step=1),
    "sgd_multi_weight_decay_string": on(
        sgd_call, r"weight_decay must be a real number", multi_sets=True, weight_decay="0"
    ),
    "sgd_multi_first_steps_string": on(
        sgd_call, r"first_steps must be a bool", multi_sets=True, first_steps="yes"
    ),
    "sgd_multi_maximize_none": on(
        sgd_call, r"maximize must be a bool", multi_sets=True, maximize=None
    ),
    # Adagrad
    "adagrad_lr_decay_string": on(adagrad_call, r"lr_decay must be a real number", lr_decay="0"),
    "adagrad_eps_bool": on(adagrad_call, r"eps must be a real number, got bool", eps=False),
    "adagrad_step_1d_array": on(adagrad_call, r"step must be an int", step=np.array([2])),
    "adagrad_multi_steps_bytes": on(
        adagrad_call, r"steps must be an int, got bytes", multi_sets=True, steps=b"\x05"
    ),
    "adagrad_multi_maximize_string": on(
        adagrad_call, r"maximize must be a bool", multi_sets=True, maximize="no"
    ),
}


@pytest.mark.parametrize("make", SCALARS.values(), ids=SCALARS.keys())
def test_bad_scalar_is_named_and_writes_nothing(make, rng):
    call, exc_type, pattern = make(rng)
    before = [a.tobytes() for a in call.watched]
    with pytest.raises(exc_type) as info:
        call.run()
    assert re.match(pattern, str(info.value)), f"{pattern!r} does not match {str(info.value)!r}"
    for k, (a, b) in enumerate(zip(call.watched, before)):
        assert a.tobytes() == b, f"watched array {k} was written"


def test_failing_index_is_the_cause_of_the_step_error(rng):
    with pytest.raises(TypeError) as info:
        single(fresh(rng), step=np.array([3])).run()
    assert "only integer scalar arrays" in str(info.value)  # NumPy's own reason, kept


def steps_of(call: Call) -> list[bytes]:
    call.run()
    return [a.tobytes() for a in call.watched]


# Accepted spellings: each gives the same bytes as the plain Python value.
ACCEPTED = {
    "lr_numpy_float32": ({"lr": np.float32(0.01)}, {"lr": float(np.float32(0.01))}),
    "lr_numpy_float64": ({"lr": np.float64(0.01)}, {"lr": 0.01}),
    "lr_int": ({"lr": 1}, {"lr": 1.0}),
    "lr_numpy_int": ({"lr": np.int64(1)}, {"lr": 1.0}),
    "betas_list": ({"betas": [0.8, 0.99]}, {"betas": (0.8, 0.99)}),
    "betas_numpy_scalars": ({"betas": (np.float32(0.5), np.float64(0.99))}, {"betas": (0.5, 0.99)}),
    "step_numpy_int": ({"step": np.int64(7)}, {"step": 7}),
    "step_numpy_uint8": ({"step": np.uint8(7)}, {"step": 7}),
    "maximize_numpy_bool": ({"maximize": np.bool_(True)}, {"maximize": True}),
    "weight_decay_numpy_float16": ({"weight_decay": np.float16(0.5)}, {"weight_decay": 0.5}),
}


@pytest.mark.parametrize("given, plain", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_numpy_and_python_scalars_are_accepted(given, plain, rng):
    state = fresh(rng)
    twin = State(*(None if a is None else a.copy() for a in state.arrays()))
    assert steps_of(single(state, **given)) == steps_of(single(twin, **plain))


def test_runtime_setters_name_bad_arguments():
    previous_isa, previous_threads = fastadam.get_isa(), fastadam.get_num_threads()
    cases = [
        (
            fastadam.set_num_threads,
            (2**31,),
            ValueError,
            r"num_threads must be from 1 to 1024, got 2147483648",
        ),
        (fastadam.set_num_threads, (2**70,), ValueError, r"n does not fit in a 64-bit integer"),
        (fastadam.set_num_threads, (1.5,), TypeError, r"n must be an int, got float"),
        (fastadam.set_num_threads, (True,), TypeError, r"n must be an int, got bool"),
        (fastadam.set_num_threads, ("2",), TypeError, r"n must be an int, got str"),
        (
            fastadam.set_num_threads,
            (),
            TypeError,
            r"set_num_threads\(\) missing required argument 'n'",
        ),
        (fastadam.set_isa, (None,), TypeError, r"name must be a str, got NoneType"),
        (fastadam.set_isa, (b"scalar",), TypeError, r"name must be a str, got bytes"),
    ]
    for fn, args, exc_type, pattern in cases:
        with pytest.raises(exc_type) as info:
            fn(*args)
        assert re.match(pattern, str(info.value)), f"{fn.__name__}{args}: {info.value}"
    assert (fastadam.get_isa(), fastadam.get_num_threads()) == (previous_isa, previous_threads)


def test_runtime_setters_accept_numpy_integers_and_keywords(threads):
    fastadam.set_num_threads(np.int64(2))
    assert fastadam.get_num_threads() == 2
    fastadam.set_num_threads(n=3)
    assert fastadam.get_num_threads() == 3
