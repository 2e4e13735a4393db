"""Cross-check against PyTorch, the oracle DESIGN.md section 2 names: torch.optim.Adam and AdamW
from the same random state, one step and several, on float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest
from adam_oracle import fast_step, fresh_grad, full_hyper, random_state

torch = pytest.importorskip("torch")

CASES = {
    "adam": (torch.optim.Adam, {}),
    "adam_l2": (torch.optim.Adam, {"weight_decay": 0.1}),
    "adam_amsgrad": (torch.optim.Adam, {"amsgrad": True}),
    "adam_maximize": (torch.optim.Adam, {"maximize": True}),
    "adamw": (torch.optim.AdamW, {"weight_decay": 0.1}),
    "adamw_amsgrad_maximize": (
        torch.optim.AdamW,
        {"weight_decay": 0.05, "amsgrad": True, "maximize": True, "lr": 1e-2, "betas": (0.8, 0.99)},
    ),
}

# Torch orders the arithmetic differently (exp_avg.lerp_, sqrt(v) / sqrt(bc2), addcdiv), so the
# two agree to rounding, not bitwise. float32: a step adds a few float32 roundings (~1e-7) on each
# side and the differences grow over steps; 1e-5 leaves room for 5 steps. The absolute terms are
# for values that cross zero: the parameter's relative to the update (~lr), exp_avg's relative to
# the gradients (~1) averaged into it. float64: the same at 1e-12.
TOL = {
    np.float32: {"rtol": 1e-5, "lr_atol": 1e-5, "m_atol": 1e-6},
    np.float64: {"rtol": 1e-12, "lr_atol": 1e-12, "m_atol": 1e-13},
}


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Single-threaded torch, and the thread count restored after the test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_torch_optimizer(isa, case, steps, dtype, rng):
    optimizer_class, options = case
    amsgrad = options.get("amsgrad", False)
    start_step = 3  # state as if 3 steps had been taken, so bias correction is not trivial
    state = random_state(rng, (1031,), dtype, amsgrad=amsgrad)

    param = torch.tensor(state.param.copy())
    optimizer = optimizer_class([param], foreach=False, **options)
    torch_state = {
        "step": torch.tensor(float(start_step)),
        "exp_avg": torch.tensor(state.exp_avg.copy()),
        "exp_avg_sq": torch.tensor(state.exp_avg_sq.copy()),
    }
    if amsgrad:
        torch_state["max_exp_avg_sq"] = torch.tensor(state.max_exp_avg_sq.copy())
    optimizer.state[param] = torch_state

    hyper_options = dict(options)
    if optimizer_class is torch.optim.AdamW:
        hyper_options["decoupled"] = True
    for t in range(start_step + 1, start_step + steps + 1):
        fresh_grad(rng, state)
        param.grad = torch.tensor(state.grad.copy())
        optimizer.step()
        fast_step(state, full_hyper(t, hyper_options))

    tol = TOL[dtype]
    lr = optimizer.param_groups[0]["lr"]
    assert float(torch_state["step"]) == start_step + steps
    np.testing.assert_allclose(
        state.param, param.detach().numpy(), rtol=tol["rtol"], atol=tol["lr_atol"] * lr
    )
    np.testing.assert_allclose(
        state.exp_avg, torch_state["exp_avg"].numpy(), rtol=tol["rtol"], atol=tol["m_atol"]
    )
    np.testing.assert_allclose(
        state.exp_avg_sq, torch_state["exp_avg_sq"].numpy(), rtol=tol["rtol"]
    )
    if amsgrad:
        np.testing.assert_allclose(
            state.max_exp_avg_sq, torch_state["max_exp_avg_sq"].numpy(), rtol=tol["rtol"]
        )


def test_updates_land_in_torch_tensors_through_numpy_views(rng):
    """DESIGN.md section 1: a CPU tensor's .numpy() shares memory, so the update lands in it."""
    state = random_state(rng, (257,), np.float32)
    tensors = [torch.from_numpy(a.copy()) for a in state.arrays()]
    expected = state.copy()
    fast_step(expected, full_hyper(1, {}))
    p, g, m, v = (t.numpy() for t in tensors)
    fast_step(type(state)(p, g, m, v), full_hyper(1, {}))
    for tensor, want in zip(tensors, expected.arrays()):
        np.testing.assert_array_equal(tensor.numpy(), want)
