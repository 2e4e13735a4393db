"""Where optimizer state lives: zeros_state's memory, and the optimizers' state arrays staggered
against their parameter modulo 4 KiB (streams that share their address modulo 4 KiB collide in
the L1 sets: bench/many_tensors.py --pow2 measures the cost)."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from fastadam import SGD, Adagrad, Adam, AdamW
from fastadam._core import zeros_state

PAGE = 4096
# The state arrays of one parameter sit 1 KiB apart modulo 4 KiB, and at least 512 bytes from
# the parameter (less its offset within a cache line).
STATE_DISTANCE = 1024
PARAM_DISTANCE = 512 - 63


def page_distance(a: np.ndarray, b: np.ndarray) -> int:
    d = (a.ctypes.data - b.ctypes.data) % PAGE
    return min(d, PAGE - d)


def assert_staggered(p: np.ndarray, state: list[np.ndarray]) -> None:
    offsets = [x.ctypes.data % PAGE for x in (p, *state)]
    for s in state:
        assert page_distance(p, s) >= PARAM_DISTANCE, offsets
        assert not np.shares_memory(p, s)
    for a, b in itertools.combinations(state, 2):
        assert page_distance(a, b) >= STATE_DISTANCE, offsets
        assert not np.shares_memory(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_successive_zeros_state_arrays_start_at_distinct_page_offsets(dtype):
    # Large (huge-page) and small buffers alike; four in a row take four different offsets.
    for n in (2**20, 2**12, 2**19 + 3):
        arrays = [zeros_state((n,), np.dtype(dtype)) for _ in range(4)]
        offsets = sorted(a.ctypes.data % PAGE for a in arrays)
        assert len(set(offsets)) == 4, offsets
        assert all(b - a >= 1024 for a, b in zip(offsets, offsets[1:])), offsets
        for a in arrays:
            assert a.ctypes.data % 64 == 0
            assert a.dtype == dtype and a.shape == (n,) and not a.any()
            a[...] = 1.0  # the whole array is writable memory
            if a.nbytes >= 2 << 20:  # inside the 2 MiB-aligned, huge-page-advised block
                assert a.ctypes.data % (2 << 20) < PAGE
        del arrays


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_zeros_state_memory_is_released():
    # free_state finds each block from the staggered pointer: a wrong address crashes, a leak
    # keeps 1 GiB resident (zeros_state touches every page it returns).
    before = resident_bytes()
    for _ in range(64):
        a = zeros_state((2**21,), np.dtype(np.float64))  # 16 MiB
        a[-1] = 1.0
        del a
    assert resident_bytes() - before < 256 << 20


def make_params(kind: str, dtype) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    if kind == "numpy":  # NumPy's own memory: large arrays sit at one offset modulo 4 KiB
        shapes = [(2**16,), (256, 256), (2**10,), (2**18,)]
        return [rng.standard_normal(s).astype(dtype) for s in shapes]
    out = [zeros_state((2**k,), np.dtype(dtype)) for k in (16, 12, 18)]
    for p in out:
        p[...] = rng.standard_normal(p.shape)
    return out


OPTIMIZERS = {
    "Adam": (Adam, {}, 2),
    "Adam-amsgrad": (Adam, {"amsgrad": True}, 3),
    "AdamW": (AdamW, {"weight_decay": 0.1}, 2),
    "SGD-momentum": (SGD, {"lr": 0.1, "momentum": 0.9}, 1),
    "Adagrad": (Adagrad, {"initial_accumulator_value": 0.25}, 1),
}


@pytest.mark.parametrize("kind", ["numpy", "zeros_state"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_arrays_are_staggered_against_their_parameter(name, dtype, kind):
    cls, options, count = OPTIMIZERS[name]
    params = make_params(kind, dtype)
    opt = cls(params, **options)
    grads = [np.full_like(p, 0.5) for p in params]
    opt.step(grads)
    arrays = []
    for p in params:
        state = [v for k, v in opt.state[p].items() if k != "step"]
        assert len(state) == count
        for s in state:
            assert s.shape == p.shape and s.dtype == p.dtype and s.ctypes.data % 64 == 0
        assert_staggered(p, state)
        arrays += state
    for a, b in itertools.combinations(arrays + params, 2):
        assert not np.shares_memory(a, b)
    # The views hold their own start values: each parameter's state after one step from a
    # gradient of 0.5 everywhere.
    for p in params:
        state = opt.state[p]
        if "exp_avg" in state:
            assert (state["exp_avg"] == dtype(1.0 - 0.9) * dtype(0.5)).all()
            assert (state["exp_avg_sq"] == dtype(1.0 - 0.999) * dtype(0.25)).all()
        if "max_exp_avg_sq" in state:
            assert (state["max_exp_avg_sq"] == state["exp_avg_sq"]).all()
        if "sum" in state:
            assert (state["sum"] == dtype(0.5)).all()
        if "momentum_buffer" in state:
            assert (state["momentum_buffer"] == dtype(0.5)).all()


def test_loaded_state_is_staggered_too():
    params = make_params("zeros_state", np.float32)
    opt = Adam(params, amsgrad=True)
    opt.step([np.ones_like(p) for p in params])
    twins = [p.copy() for p in params]
    other = Adam(twins, amsgrad=True)
    other.load_state_dict(opt.state_dict())
    for p, q in zip(params, twins):
        state = [v for k, v in other.state[q].items() if k != "step"]
        assert_staggered(q, state)
        for k, v in opt.state[p].items():
            np.testing.assert_array_equal(other.state[q][k], v)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_large_state_arrays_are_staggered_modulo_1_mib_too(amsgrad):
    # From 16 MiB on, the state arrays of one parameter also differ modulo 1 MiB (by 252 KiB or
    # more), so that their addresses differ in bits 12-27 and not only in the page offset.
    p = zeros_state((2**22,), np.dtype(np.float32))  # 16 MiB
    small = np.ones(1000, np.float32)
    opt = Adam([p, small], amsgrad=amsgrad)
    opt.step([np.ones_like(p), np.ones_like(small)])
    state = [v for k, v in opt.state[p].items() if k != "step"]
    assert_staggered(p, state)
    assert_staggered(small, [v for k, v in opt.state[small].items() if k != "step"])
    mib = 1 << 20
    for a, b in itertools.combinations([p, *state], 2):
        d = (a.ctypes.data - b.ctypes.data) % mib
        assert min(d, mib - d) >= 252 << 10, (a.ctypes.data % mib, b.ctypes.data % mib)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_torch_layer_state_is_staggered_like_numpy_state(amsgrad):
    # fastadam.torch lays its state out as the NumPy optimizers do: without it, a model's
    # power-of-two tensors had exp_avg and exp_avg_sq exactly 2**k bytes apart.
    torch = pytest.importorskip("torch")
    import fastadam.torch

    shapes = [(1024, 256), (256,), (512, 512), (2**22,), (1000,)]
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = fastadam.torch.Adam(params, amsgrad=amsgrad)
    opt.step()
    for p in params:
        views = [t.detach().numpy() for k, t in opt.state[p].items() if k != "step"]
        assert len(views) == (3 if amsgrad else 2)
        assert all(v.ctypes.data % 64 == 0 for v in views)
        assert_staggered(p.detach().numpy(), views)
        if p.numel() * 4 >= 16 << 20:
            mib = 1 << 20
            for a, b in itertools.combinations([p.detach().numpy(), *views], 2):
                d = (a.ctypes.data - b.ctypes.data) % mib
                assert min(d, mib - d) >= 252 << 10
