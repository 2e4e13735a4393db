"""fastadam.torch with 16-bit parameters: float16 and bfloat16 tensors stepped through their
reinterpreted storage with float32 state, the mixed-precision options (master weights,
stochastic rounding, gradient clipping, skipping non-finite steps), and torch.amp.GradScaler
unscaling inside the native step. The NumPy optimizers (fastadam.Adam etc.) on the same bits
are the oracle: the same native entry, so the results must be bitwise equal."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastadam.torch")

import fastadam
from fastadam.torch import memory

HALF = {"float16": torch.float16, "bfloat16": torch.bfloat16}
if not {torch.float16, torch.bfloat16} <= memory.numpy_dtypes():
    pytest.skip("this build has no mixed-precision kernels", allow_module_level=True)

VARIANTS = {
    "plain": ("Adam", {}),
    "master_weights": ("Adam", {"master_weights": True}),
    "max_grad_norm": ("AdamW", {"max_grad_norm": 0.5, "weight_decay": 0.1}),
    "stochastic_rounding": ("Adam", {"stochastic_rounding": True, "seed": 7}),
    "sgd_master": ("SGD", {"momentum": 0.9, "master_weights": True}),
    "adagrad": ("Adagrad", {}),
}


def bits(t: torch.Tensor) -> np.ndarray:
    return memory.numpy_view(t.detach()).view(np.uint16).copy()


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_the_numpy_optimizer_bitwise(variant, dtype, rng):
    name, options = VARIANTS[variant]
    dtype = HALF[dtype]
    if options.get("stochastic_rounding") and dtype is torch.float16:
        pytest.skip("stochastic rounding is for bfloat16")
    seed = int(rng.integers(2**31))
    gen = torch.Generator().manual_seed(seed)
    shapes = [(33, 7), (130,), (4, 3, 3, 3)]
    params = [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.5).to(dtype)) for s in shapes]
    arrays = [memory.numpy_view(p.detach()).copy() for p in params]
    kwargs = {"lr": 1e-2, **options}
    ours = getattr(ft, name)(params, **kwargs)
    oracle = getattr(fastadam, name)(arrays, **kwargs)
    for _ in range(8):
        grads = [(torch.randn(s, generator=gen) * 0.1).to(dtype) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g
        ours.step()
        report = oracle.step([memory.numpy_view(g).copy() for g in grads])
        assert ours.last_report == report
    for p, a in zip(params, arrays):
        assert np.array_equal(bits(p), a.view(np.uint16))
        s = ours.state[p]
        for key, t in s.items():
            if key != "step":
                assert t.dtype == torch.float32, key
        assert ("master_param" in s) == bool(options.get("master_weights"))


@pytest.mark.parametrize("dtype", HALF)
def test_skip_nonfinite_changes_nothing(dtype):
    dtype = HALF[dtype]
    p = torch.nn.Parameter(torch.ones(10, dtype=dtype))
    opt = ft.Adam([p], skip_nonfinite=True)
    p.grad = torch.full((10,), math.inf).to(dtype)
    opt.step()  # the first step: no state may be created either
    assert opt.last_report.skipped and len(opt.state) == 0
    assert torch.equal(p.detach(), torch.ones(10, dtype=dtype))
    p.grad = torch.ones(10, dtype=dtype)
    opt.step()
    opt.step()
    p.grad = torch.full((10,), math.nan).to(dtype)
    before = {k: v.clone() for k, v in opt.state[p].items()}
    kept = p.detach().clone()
    opt.step()
    assert opt.last_report.skipped and torch.equal(p.detach(), kept)
    assert all(torch.equal(v, opt.state[p][k]) for k, v in before.items())
    assert float(opt.state[p]["step"]) == 2


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_grad_scaler_unscales_inside_the_step(dtype, rng):
    """GradScaler("cpu") sets grad_scale/found_inf on the optimizer and lets the step unscale
    (torch's own unscale refuses float16 gradients). The same steps with the gradients divided by
    the scale by hand (exact: the scale is a power of two) give the same bits; an inf gradient
    skips the step and halves the scale."""
    dtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    seed = int(rng.integers(2**31))
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    model = model.to(dtype)
    twin = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
    opt = ft.Adam(model.parameters(), lr=1e-2, master_weights=dtype is torch.float16)
    ref = ft.Adam(twin, lr=1e-2, master_weights=dtype is torch.float16)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = torch.randn(32, 8).to(dtype)
    y = torch.randn(32, 2).to(dtype)
    for t in range(6):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x).float(), y.float())
        scaler.scale(loss).backward()
        if t == 3:
            next(model.parameters()).grad[0, 0] = math.inf
        scale = scaler.get_scale()
        grads = [p.grad.detach().clone() for p in model.parameters()]
        scaler.step(opt)
        scaler.update()
        if t == 3:
            assert opt.last_report.skipped and scaler.get_scale() == scale / 2
            continue
        for q, g in zip(twin, grads):
            q.grad = (g.float() / scale).to(dtype)
        ref.step()
    for p, q in zip(model.parameters(), twin):
        assert torch.equal(p.detach(), q.detach())
    assert float(opt.state[next(model.parameters())]["step"]) == 5
    assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf")


def test_master_weights_state_round_trip(rng):
    seed = int(rng.integers(2**31))
    gen = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(50, generator=gen).to(torch.bfloat16))
    grads = [torch.randn(50, generator=gen).to(torch.bfloat16) for _ in range(10)]
    opt = ft.Adam([p], lr=1e-2, master_weights=True)
    for g in grads[:5]:
        p.grad = g
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    q = torch.nn.Parameter(p.detach().clone())
    resumed = ft.Adam([q], lr=1e-2, master_weights=True)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.state[q]["master_param"].dtype == torch.float32
    for g in grads[5:]:
        p.grad = g
        q.grad = g
        opt.step()
        resumed.step()
    assert torch.equal(p.detach(), q.detach())
