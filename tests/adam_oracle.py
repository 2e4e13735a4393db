"""Shared test helpers: random optimizer state, the float64 oracle, element-wise comparison.

Not a test module (pytest collects only ``test_*.py``); the test files import it by name, which
works because pytest puts this folder on ``sys.path`` (rootdir-relative "prepend" import mode).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

import fastadam
from fastadam import reference

# Every option of DESIGN.md section 2 on its own, and all of them at once. Keys are test ids.
OPTIONS: dict[str, dict] = {
    "plain": {},
    "maximize": {"maximize": True},
    "l2_decay": {"weight_decay": 0.1},
    "decoupled": {"weight_decay": 0.1, "decoupled": True},
    "amsgrad": {"amsgrad": True},
    "no_bias_correction": {"bias_correction": False},
    "combined": {
        "maximize": True,
        "weight_decay": 0.05,
        "decoupled": True,
        "amsgrad": True,
        "bias_correction": False,
        "lr": 3e-2,
        "betas": (0.8, 0.99),
        "eps": 1e-6,
    },
}

DTYPES = [np.float32, np.float64]

# Relative accuracy per step against the float64 oracle (DESIGN.md section 2: ~1e-6 for float32,
# ~1e-14 for float64). The float64 kernel performs the reference's operations in the same order,
# so in practice it is exact; 1e-14 leaves room for a legitimate reordering.
RTOL = {np.float32: 1e-6, np.float64: 1e-14}


@dataclasses.dataclass
class State:
    """One parameter set: param, grad, exp_avg, exp_avg_sq and (amsgrad) max_exp_avg_sq."""

    param: np.ndarray
    grad: np.ndarray
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    max_exp_avg_sq: np.ndarray | None = None

    def _fields(self) -> list[np.ndarray | None]:
        return [self.param, self.grad, self.exp_avg, self.exp_avg_sq, self.max_exp_avg_sq]

    def arrays(self) -> list[np.ndarray]:
        out = [self.param, self.grad, self.exp_avg, self.exp_avg_sq]
        return out + ([self.max_exp_avg_sq] if self.max_exp_avg_sq is not None else [])

    def astype(self, dtype) -> State:
        """A copy in `dtype` (float32 -> float64 is exact, so the oracle starts from the same
        values as the kernel)."""
        return State(*(None if a is None else a.astype(dtype) for a in self._fields()))

    def copy(self) -> State:
        return self.astype(self.param.dtype)

    def snapshot(self) -> list[bytes]:
        return [a.tobytes() for a in self.arrays()]


def random_state(rng: np.random.Generator, shape, dtype, *, amsgrad: bool = False) -> State:
    """Fresh random state, never zeros. exp_avg_sq is a plausible second moment: at least
    exp_avg**2 plus a positive floor, so the update stays of the order of lr as in training;
    max_exp_avg_sq lies above and below exp_avg_sq, so both sides of max() are exercised."""
    m = 0.5 * rng.standard_normal(shape)
    v = m * m + rng.uniform(0.01, 1.0, shape)
    arrays = [rng.standard_normal(shape), rng.standard_normal(shape), m, v]
    if amsgrad:
        arrays.append(v * rng.uniform(0.5, 1.5, shape))
    return State(*(np.array(a, dtype=dtype) for a in arrays))


def fresh_grad(rng: np.random.Generator, state: State) -> None:
    """Replace the gradient with new random values (for multi-step runs)."""
    state.grad[...] = rng.standard_normal(state.grad.shape)


def full_hyper(step: int, options: dict) -> dict:
    """Keyword arguments of adam_step for `options`, with every default spelled out."""
    hyper = {
        "step": step,
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "decoupled": False,
        "bias_correction": True,
    }
    hyper.update(options)
    return hyper


def step_with(fn, state: State, hyper: dict) -> None:
    """Call `fn` (fastadam.adam_step or reference.adam_step) on `state` in place."""
    fn(
        state.param,
        state.grad,
        state.exp_avg,
        state.exp_avg_sq,
        max_exp_avg_sq=state.max_exp_avg_sq,
        **hyper,
    )


def fast_step(state: State, hyper: dict) -> None:
    step_with(fastadam.adam_step, state, hyper)


def oracle_step(state64: State, hyper: dict) -> None:
    assert state64.param.dtype == np.float64
    step_with(reference.adam_step, state64, hyper)


def _bounds(before: State, after: State, hyper: dict, rtol: float) -> dict[str, np.ndarray]:
    """Per-element error bounds for one step: `rtol` times the magnitude that the rounding
    errors are proportional to, propagated through the update to first order (float64).

    The error of a sum is relative to its terms, not to the result, which may cancel: the
    effective gradient g (+ weight_decay * p for L2) to |g| + wd|p|, exp_avg to
    beta1|m| + (1 - beta1)|g|, exp_avg_sq to beta2 v + (1 - beta2) |g|^2. The parameter's error
    is relative to |p| and to the update, whose own error comes from exp_avg's and, through
    sqrt, from exp_avg_sq's (|d sqrt| <= min(d / (2 sqrt(v)), sqrt(d)): sqrt of a cancelled,
    nearly zero v is ill-conditioned).
    """
    b1, b2 = hyper["betas"]
    wd = hyper["weight_decay"]
    g_scale = np.abs(before.grad)
    if wd and not hyper["decoupled"]:
        g_scale = g_scale + wd * np.abs(before.param)
    m_scale = b1 * np.abs(before.exp_avg) + (1.0 - b1) * g_scale
    v_scale = b2 * before.exp_avg_sq + (1.0 - b2) * g_scale * g_scale
    t = hyper["step"]
    bc1 = 1.0 - b1**t if hyper["bias_correction"] else 1.0
    bc2 = 1.0 - b2**t if hyper["bias_correction"] else 1.0
    inv_sqrt_bc2 = 1.0 / math.sqrt(bc2)
    second = after.max_exp_avg_sq if hyper["amsgrad"] else after.exp_avg_sq
    denom = np.sqrt(second) * inv_sqrt_bc2 + hyper["eps"]
    v_err = rtol * v_scale
    with np.errstate(divide="ignore", invalid="ignore"):
        sqrt_err = np.fmin(v_err / (2.0 * np.sqrt(second)), np.sqrt(v_err))
        update_err = (hyper["lr"] / bc1) * (
            rtol * m_scale / denom + np.abs(after.exp_avg) * inv_sqrt_bc2 * sqrt_err / denom**2
        )
    bounds = {
        "param": rtol * (np.abs(before.param) + np.abs(after.param)) + update_err,
        "exp_avg": rtol * m_scale,
        "exp_avg_sq": v_err,
    }
    if hyper["amsgrad"]:
        bounds["max_exp_avg_sq"] = np.maximum(v_err, rtol * after.max_exp_avg_sq)
    return bounds


def assert_close(name: str, actual: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> None:
    """Element-wise |actual - expected| <= bound, with a readable message on failure."""
    err = np.abs(actual.astype(np.float64) - expected)
    bad = ~(err <= bound)  # NaN counts as a failure
    if np.any(bad):
        excess = np.where(bad, err / np.maximum(bound, 1e-300), 0)
        i = np.unravel_index(np.argmax(excess), err.shape)
        raise AssertionError(
            f"{name}: {np.count_nonzero(bad)} of {err.size} elements out of tolerance; worst at "
            f"{tuple(int(k) for k in i)}: got {actual[i]!r}, expected {expected[i]!r}, "
            f"error {err[i]:.3g} > bound {bound[i]:.3g}"
        )


def assert_one_step_matches(result: State, before64: State, after64: State, hyper: dict) -> None:
    """`result` (one kernel step from `before64`'s values) agrees with the float64 oracle
    `after64` within the bounds of _bounds for RTOL of the dtype."""
    rtol = RTOL[result.param.dtype.type]
    for name, bound in _bounds(before64, after64, hyper, rtol).items():
        assert_close(name, getattr(result, name), getattr(after64, name), bound)


def assert_states_equal(a: State, b: State, context: str = "") -> None:
    """Bitwise equality of every array (NaN == NaN); `context` goes into the message."""
    for name in ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, f"{context} {name}"
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, f"{context} {name}"
        if x.tobytes() != y.tobytes():
            differ = np.count_nonzero(x.view(np.uint8) != y.view(np.uint8))
            raise AssertionError(f"{context} {name} differs bitwise ({differ} bytes)")
