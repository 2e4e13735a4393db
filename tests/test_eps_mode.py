"""Adam's eps_mode: "torch" (eps added to sqrt(v) / sqrt(bc2)) and "keras" (eps added to
sqrt(v), the bias correction in the step size, as tf.keras.optimizers.Adam), each checked against
a NumPy transcription of its framework's formula, on every ISA, functional and classes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastadam
from fastadam import reference

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]


def torch_formula(p, g, m, v, t, lr, beta1, beta2, eps):
    """torch.optim.Adam's single-tensor step, transcribed (float64)."""
    m = m + (g - m) * (1 - beta1)
    v = v * beta2 + (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1**t, 1 - beta2**t
    denom = np.sqrt(v) / math.sqrt(bc2) + eps
    return p - (lr / bc1) * m / denom, m, v


def keras_formula(p, g, m, v, t, lr, beta1, beta2, eps):
    """keras.optimizers.Adam.update_step, transcribed (float64)."""
    alpha = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    m = m + (g - m) * (1 - beta1)
    v = v + (g * g - v) * (1 - beta2)
    return p - (m * alpha) / (np.sqrt(v) + eps), m, v


FORMULAS = {"torch": torch_formula, "keras": keras_formula}


@pytest.mark.parametrize("mode", ["torch", "keras"])
@pytest.mark.parametrize("scale", [1.0, 1e-7], ids=["unit-grads", "tiny-grads"])
def test_each_mode_follows_its_framework(isa, mode, scale, rng):
    n, lr, beta1, beta2, eps = 1001, 1e-2, 0.9, 0.999, 1e-8
    p = rng.standard_normal(n)
    m, v = np.zeros(n), np.zeros(n)
    fp, fm, fv = p.copy(), m.copy(), v.copy()
    for t in range(1, 51):
        g = scale * rng.standard_normal(n)
        fastadam.adam_step(p, g, m, v, step=t, lr=lr, betas=(beta1, beta2), eps=eps, eps_mode=mode)
        fp, fm, fv = FORMULAS[mode](fp, g, fm, fv, t, lr, beta1, beta2, eps)
    # Elements near zero are judged against the array's scale (the step's own rounding).
    for ours, theirs in ((p, fp), (m, fm), (v, fv)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-13 * np.max(np.abs(theirs)))


def test_modes_differ_where_sqrt_v_is_near_eps(rng):
    # The documented difference: with gradients near eps, torch's eps (divided by sqrt(bc2)
    # in effect scaled up) damps the step more than Keras's.
    n = 100
    out = {}
    for mode in ("torch", "keras"):
        p, m, v = np.ones(n), np.zeros(n), np.zeros(n)
        g = np.full(n, 1e-8)
        fastadam.adam_step(p, g, m, v, step=1, lr=1e-3, eps_mode=mode)
        out[mode] = 1.0 - p
    # Step 1: torch's step is lr * 1e-8 / (1e-8 + 1e-8) = lr / 2; Keras's is
    # lr * sqrt(0.001) * 1e-8 / (1e-8 * sqrt(0.001) + 1e-8), about lr * 0.0306.
    np.testing.assert_allclose(out["torch"], 5e-4, rtol=1e-9)
    np.testing.assert_allclose(
        out["keras"], 1e-3 * math.sqrt(1e-3) / (math.sqrt(1e-3) + 1), rtol=1e-9
    )
    # With unit gradients they agree to ~lr * eps / sqrt(bc2) (3e-10 here).
    for mode in ("torch", "keras"):
        p, m, v = np.ones(n), np.zeros(n), np.zeros(n)
        fastadam.adam_step(p, np.ones(n), m, v, step=1, lr=1e-3, eps_mode=mode)
        out[mode] = p
    np.testing.assert_allclose(out["torch"], out["keras"], rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_kernel_matches_reference_bitwise(isa, dtype, amsgrad, rng):
    n = 1037
    p = rng.standard_normal(n).astype(dtype)
    m = rng.standard_normal(n).astype(dtype)
    v = rng.uniform(0, 2, n).astype(dtype)
    vmax = (v + 0.5).astype(dtype) if amsgrad else None
    ref = [a.copy() if a is not None else None for a in (p, m, v, vmax)]
    kw = {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": amsgrad, "eps_mode": "keras"}
    for t in (1, 2, 9):
        g = rng.standard_normal(n).astype(dtype)
        fastadam.adam_step(p, g, m, v, step=t, max_exp_avg_sq=vmax, **kw)
        reference.adam_step(ref[0], g, ref[1], ref[2], step=t, max_exp_avg_sq=ref[3], **kw)
    for a, b in zip((p, m, v, vmax), ref):
        if a is not None:
            np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("cls", [fastadam.Adam, fastadam.AdamW])
def test_classes_take_eps_mode_per_group(cls, rng):
    a = rng.standard_normal(50)
    b = rng.standard_normal(70)
    opt = cls([{"params": [a], "eps_mode": "keras"}, {"params": [b]}], lr=1e-2)
    assert opt.param_groups[1]["eps_mode"] == "torch"
    ref_a, ref_b = a.copy(), b.copy()
    state = [np.zeros(50), np.zeros(50), np.zeros(70), np.zeros(70)]
    decoupled = cls is fastadam.AdamW
    wd = 1e-2 if decoupled else 0.0
    for t in range(1, 6):
        ga, gb = rng.standard_normal(50), rng.standard_normal(70)
        opt.step([ga, gb])
        common = {"step": t, "lr": 1e-2, "weight_decay": wd, "decoupled": decoupled}
        reference.adam_step(ref_a, ga, state[0], state[1], eps_mode="keras", **common)
        reference.adam_step(ref_b, gb, state[2], state[3], **common)
    np.testing.assert_array_equal(a, ref_a)
    np.testing.assert_array_equal(b, ref_b)
    # The fast path (one group) too.
    c = rng.standard_normal(30)
    ref_c, m, v = c.copy(), np.zeros(30), np.zeros(30)
    opt = cls([c], lr=1e-2, eps_mode="keras")
    for t in range(1, 6):
        g = rng.standard_normal(30)
        opt.step([g])
        reference.adam_step(
            ref_c, g, m, v, step=t, lr=1e-2, weight_decay=wd, decoupled=decoupled, eps_mode="keras"
        )
    np.testing.assert_array_equal(c, ref_c)


def test_bad_eps_mode_is_refused(rng):
    p, g, m, v = (rng.standard_normal(5) for _ in range(4))
    before = p.copy()
    with pytest.raises(ValueError, match="eps_mode"):
        fastadam.adam_step(p, g, m, v, step=1, eps_mode="tf")
    with pytest.raises(TypeError, match="eps_mode"):
        fastadam.adam_step(p, g, m, v, step=1, eps_mode=1)
    np.testing.assert_array_equal(p, before)
    with pytest.raises(ValueError, match="eps_mode"):
        fastadam.Adam([p], eps_mode="tf")
    with pytest.raises(ValueError, match="eps_mode"):
        reference.adam_step(p, g, m, v, step=1, eps_mode="tf")


def test_torch_wrapper_takes_eps_mode(rng):
    torch = pytest.importorskip("torch")
    from fastadam import torch as ftorch

    x = torch.tensor(rng.standard_normal(40))
    ref, m, v = x.numpy().copy(), np.zeros(40), np.zeros(40)
    opt = ftorch.Adam([x], lr=1e-2, eps_mode="keras")
    for t in range(1, 4):
        g = rng.standard_normal(40)
        x.grad = torch.from_numpy(g.copy())
        opt.step()
        reference.adam_step(ref, g, m, v, step=t, lr=1e-2, eps_mode="keras")
    np.testing.assert_array_equal(x.numpy(), ref)
