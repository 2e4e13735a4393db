"""fastadam.cuda: host-side checks that run anywhere, GPU checks that skip without a device.

Without a GPU this still checks the kernel's chunk table and per-thread index mapping (the C++
host emulation in tests/cpp/test_cuda_plan.cpp), that ``is_available()`` is False without
raising, and the argument validation, which runs before any device is touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import fastadam
import fastadam.cuda as fcuda

ROOT = Path(__file__).resolve().parents[1]

try:
    from fastadam import _cuda
except ImportError:
    _cuda = None

needs_cuda_module = pytest.mark.skipif(
    _cuda is None, reason="fastadam built without CUDA (-Ccmake.define.FASTADAM_CUDA=ON)"
)


# --- the C++ host emulation of the kernel's plan -----------------------------------------------


def _cxx() -> list[str] | None:
    for candidate in (os.environ.get("CXX"), sysconfig.get_config_var("CXX"), "c++", "g++"):
        if candidate:
            argv = shlex.split(candidate)
            if shutil.which(argv[0]):
                return argv
    return None


def test_cuda_plan_host_emulation(tmp_path):
    cxx = _cxx()
    if cxx is None:
        pytest.skip("no C++ compiler found (CXX, sysconfig's CXX, c++, g++)")
    exe = tmp_path / "test_cuda_plan"
    compile_cmd = cxx + [
        "-std=c++17",
        "-O2",
        "-ffp-contract=off",
        "-I",
        str(ROOT / "cpp" / "include"),
        str(ROOT / "tests" / "cpp" / "test_cuda_plan.cpp"),
        "-o",
        str(exe),
    ]
    built = subprocess.run(compile_cmd, check=False, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    run = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "checks passed" in run.stdout


# --- availability ------------------------------------------------------------------------------


def test_is_available_never_raises():
    available = fcuda.is_available()
    assert isinstance(available, bool)
    reason = fcuda.unavailable_reason()
    assert (reason is None) == available
    assert isinstance(fcuda.device_count(), int)
    if not available:
        assert isinstance(reason, str) and reason


def test_not_available_without_module(monkeypatch):
    monkeypatch.setattr(fcuda, "_cuda", None)
    assert fcuda.is_available() is False
    assert "FASTADAM_CUDA=ON" in fcuda.unavailable_reason()
    assert fcuda.device_count() == 0
    a = [FakeDeviceArray((3,), pointer=p) for p in _pointers(4)]
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        fcuda.adam_step(*a, step=1)


@needs_cuda_module
def test_module_without_device_reports_why():
    if _cuda.device_count() > 0:
        pytest.skip("a CUDA device is present")
    assert fcuda.is_available() is False
    assert _cuda.unavailable_reason()


# --- validation (before any device is touched) -------------------------------------------------


class FakeDeviceArray:
    """Exposes a __cuda_array_interface__ around a made-up pointer; never dereferenced."""

    def __init__(
        self,
        shape,
        typestr="<f4",
        pointer=1 << 40,
        readonly=False,
        strides=None,
        mask=None,
        stream=None,
    ):
        self.__cuda_array_interface__ = {
            "shape": tuple(shape),
            "typestr": typestr,
            "data": (pointer, readonly),
            "strides": strides,
            "mask": mask,
            "version": 3,
            "stream": stream,
        }


def _pointers(n, start=1 << 40, gap=1 << 24):
    return [start + i * gap for i in range(n)]


def _fakes(shape=(5,), typestr="<f4", **overrides):
    names = ["param", "grad", "exp_avg", "exp_avg_sq"]
    return [
        overrides.get(n, FakeDeviceArray(shape, typestr, pointer=p))
        for n, p in zip(names, _pointers(4))
    ]


@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["param", "grad", "exp_avg", "exp_avg_sq"])
def test_host_numpy_array_is_a_type_error(index):
    arrays = _fakes()
    arrays[index] = np.zeros(5, np.float32)
    with pytest.raises(TypeError, match="fastadam.cuda takes device arrays; for NumPy arrays"):
        fcuda.adam_step(*arrays, step=1)


def test_all_host_arrays_is_a_type_error():
    arrays = [np.zeros(5, np.float32) for _ in range(4)]
    with pytest.raises(TypeError, match="use fastadam.adam_step"):
        fcuda.adam_step(*arrays, step=1)
    with pytest.raises(TypeError, match=r"params\[0\] must be a device array"):
        fcuda.adam_step_multi([arrays[0]], [arrays[1]], [arrays[2]], [arrays[3]], steps=1)


def test_torch_cpu_tensor_is_a_type_error():
    torch = pytest.importorskip("torch")
    arrays = _fakes()
    arrays[0] = torch.zeros(5)
    with pytest.raises(TypeError, match="fastadam.cuda takes device arrays"):
        fcuda.adam_step(*arrays, step=1)


def test_interface_refused_is_a_type_error():
    class RequiresGrad:  # what a PyTorch CUDA tensor that requires grad does
        @property
        def __cuda_array_interface__(self):
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad")

    arrays = _fakes()
    arrays[0] = RequiresGrad()
    with pytest.raises(TypeError, match=r"tensor\.detach\(\)"):
        fcuda.adam_step(*arrays, step=1)


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ({"param": FakeDeviceArray((5,), "<f2")}, TypeError, "param must be float32 or float64"),
        ({"param": FakeDeviceArray((5,), "<i4")}, TypeError, "param must be float32 or float64"),
        ({"param": FakeDeviceArray((5,), ">f4")}, TypeError, "native byte order"),
        ({"grad": FakeDeviceArray((5,), "<f8", 1 << 41)}, TypeError, "grad must have dtype"),
        ({"exp_avg": FakeDeviceArray((4,), pointer=1 << 41)}, ValueError, "shape"),
        ({"exp_avg_sq": FakeDeviceArray((5, 1), pointer=1 << 41)}, ValueError, "shape"),
        ({"param": FakeDeviceArray((5,), readonly=True)}, ValueError, "param must be writable"),
        (
            {"exp_avg": FakeDeviceArray((5,), pointer=1 << 41, readonly=True)},
            ValueError,
            "exp_avg must be writable",
        ),
        ({"grad": FakeDeviceArray((5,), pointer=(1 << 41) + 2)}, ValueError, "aligned"),
        (
            {"grad": FakeDeviceArray((5,), pointer=1 << 41, strides=(8,))},
            ValueError,
            "C-contiguous",
        ),
        ({"grad": FakeDeviceArray((5,), pointer=1 << 41, mask=object())}, ValueError, "mask"),
    ],
    ids=[
        "f16",
        "i32",
        "big-endian",
        "grad-f64",
        "shape",
        "shape-2d",
        "readonly-param",
        "readonly-exp_avg",
        "misaligned",
        "strided",
        "masked",
    ],
)
def test_array_validation(override, error, message):
    with pytest.raises(error, match=message):
        fcuda.adam_step(*_fakes(**override), step=1)


def test_readonly_grad_is_fine_and_strides_may_be_explicit():
    # grad is only read; explicit C strides (and any stride on a length-1 axis) are contiguous.
    arrays = [FakeDeviceArray((2, 1, 3), pointer=p) for p in _pointers(4)]
    arrays[1] = FakeDeviceArray((2, 1, 3), readonly=True, strides=(12, 999, 4), pointer=1 << 41)
    if fcuda.is_available():
        pytest.skip("made-up pointers reach the device checks when a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        fcuda.adam_step(*arrays, step=1)


def test_amsgrad_argument_rules():
    with pytest.raises(ValueError, match="max_exp_avg_sq is required when amsgrad=True"):
        fcuda.adam_step(*_fakes(), step=1, amsgrad=True)
    with pytest.raises(ValueError, match="only used with amsgrad=True"):
        fcuda.adam_step(*_fakes(), step=1, max_exp_avg_sq=FakeDeviceArray((5,)))
    with pytest.raises(ValueError, match="max_exp_avg_sqs is required"):
        fcuda.adam_step_multi(*[[a] for a in _fakes()], steps=1, amsgrad=True)


def test_multi_list_rules():
    p, g, m, v = ([a] for a in _fakes())
    with pytest.raises(TypeError, match="params must be a list or tuple"):
        fcuda.adam_step_multi(p[0], g, m, v, steps=1)
    with pytest.raises(ValueError, match="grads has 2 entries but params has 1"):
        fcuda.adam_step_multi(p, g * 2, m, v, steps=1)
    with pytest.raises(TypeError, match="steps must be an int or a list of ints"):
        fcuda.adam_step_multi(p, g, m, v, steps=[1.5])
    other = FakeDeviceArray((5,), "<f8", pointer=1 << 42)
    with pytest.raises(TypeError, match=r"params\[1\] has another dtype than params\[0\]"):
        fcuda.adam_step_multi(p + [other], g * 2, m * 2, v * 2, steps=1)


def _cpu_error(kwargs):
    a = [np.zeros(5, np.float32) for _ in range(4)]
    with pytest.raises((ValueError, TypeError)) as info:
        fastadam.adam_step(*a, **kwargs)
    return info.type, str(info.value)


@needs_cuda_module
@pytest.mark.parametrize(
    "kwargs",
    [
        {"step": 1, "lr": -1.0},
        {"step": 1, "eps": -1e-8},
        {"step": 1, "betas": (1.0, 0.999)},
        {"step": 1, "betas": (0.9, -0.1)},
        {"step": 1, "weight_decay": -0.5},
        {"step": 0},
    ],
    ids=["lr", "eps", "beta1", "beta2", "weight_decay", "step"],
)
def test_hyper_parameter_messages_match_the_cpu(kwargs):
    # The CUDA module links the CPU binding's own check_hyper / check_step.
    error, message = _cpu_error(kwargs)
    with pytest.raises(error) as info:
        fcuda.adam_step(*_fakes(), **kwargs)
    assert str(info.value) == message


@needs_cuda_module
def test_overlap_is_rejected():
    base = 1 << 40
    arrays = [FakeDeviceArray((5,), pointer=base + i * 64) for i in range(4)]
    arrays[2] = FakeDeviceArray((5,), pointer=base + 8)  # exp_avg overlaps param
    with pytest.raises(ValueError, match="share memory"):
        fcuda.adam_step(*arrays, step=1)
    # Gradients may share memory with each other, nothing else may.
    g = FakeDeviceArray((5,), pointer=base + 1024)
    sets = [
        [FakeDeviceArray((5,), pointer=base + 4096 * (k + 1) + 64 * i) for i in range(4)]
        for k in range(2)
    ]
    params, _, exp_avgs, exp_avg_sqs = (list(x) for x in zip(*sets))
    if not fcuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            fcuda.adam_step_multi(params, [g, g], exp_avgs, exp_avg_sqs, steps=1)


# --- on a GPU ----------------------------------------------------------------------------------


def _device_backend():
    """(to_device, to_host, synchronize) for CuPy or PyTorch, or a skip."""
    if not fcuda.is_available():
        pytest.skip(f"no usable CUDA: {fcuda.unavailable_reason()}")
    try:
        import cupy

        return cupy.asarray, cupy.asnumpy, lambda: cupy.cuda.Device().synchronize()
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return (
                lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda(),
                lambda t: t.cpu().numpy(),
                torch.cuda.synchronize,
            )
    except ImportError:
        pass
    pytest.skip("needs CuPy or PyTorch with CUDA to make device arrays")


def _state(n, dtype, seed, amsgrad):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(dtype)
    m = (0.1 * rng.standard_normal(n)).astype(dtype)
    v = (0.01 * rng.standard_normal(n)).astype(dtype) ** 2
    out = [p, m, v]
    if amsgrad:
        out.append(v * dtype(1.5))
    return out


OPTIONS = [
    {},
    {"amsgrad": True},
    {"maximize": True, "weight_decay": 0.1},
    {"decoupled": True, "weight_decay": 0.01, "lr": 3e-3},
    {"bias_correction": False, "betas": (0.8, 0.99), "eps": 1e-6},
    {"amsgrad": True, "decoupled": True, "weight_decay": 0.1, "maximize": True},
]
OPTION_IDS = ["adam", "amsgrad", "maximize-l2", "adamw", "no-bias-correction", "everything"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_gpu_matches_cpu(dtype, options):
    to_device, to_host, synchronize = _device_backend()
    n = 2**20 + 3
    amsgrad = options.get("amsgrad", False)
    cpu = _state(n, dtype, 1, amsgrad)
    gpu = [to_device(a) for a in cpu]
    rng = np.random.default_rng(2)
    for step in range(1, 4):
        g = rng.standard_normal(n).astype(dtype)
        extra_cpu = {"max_exp_avg_sq": cpu[3]} if amsgrad else {}
        extra_gpu = {"max_exp_avg_sq": gpu[3]} if amsgrad else {}
        fastadam.adam_step(cpu[0], g, cpu[1], cpu[2], step=step, **options, **extra_cpu)
        fcuda.adam_step(gpu[0], to_device(g), gpu[1], gpu[2], step=step, **options, **extra_gpu)
    synchronize()
    for c, d in zip(cpu, gpu):
        np.testing.assert_array_equal(to_host(d), c)  # the same roundings: bit for bit


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_gpu_multi_tensor_matches_cpu(dtype, amsgrad):
    to_device, to_host, synchronize = _device_backend()
    sizes = [0, 1, 3, 4, 5, 1023, 65535, 65536, 65537, 2**20 + 7] + [i % 7 for i in range(150)]
    cpu_sets, gpu_sets, grads = [], [], []
    for i, n in enumerate(sizes):
        arrays = _state(n + 1, dtype, i, amsgrad)
        # Every third set is a view one element in: misaligned, so the kernel's scalar path.
        start = 1 if i % 3 == 1 else 0
        cpu_sets.append([a[start : start + n].copy() for a in arrays])
        gpu_sets.append([to_device(a)[start : start + n] for a in arrays])
        grads.append(np.random.default_rng(100 + i).standard_normal(n).astype(dtype))
    steps = [1 + i % 4 for i in range(len(sizes))]
    columns = list(zip(*cpu_sets))
    extra = {"max_exp_avg_sqs": list(columns[3])} if amsgrad else {}
    fastadam.adam_step_multi(
        list(columns[0]),
        grads,
        list(columns[1]),
        list(columns[2]),
        steps=steps,
        amsgrad=amsgrad,
        weight_decay=0.05,
        **extra,
    )
    gcolumns = list(zip(*gpu_sets))
    extra = {"max_exp_avg_sqs": list(gcolumns[3])} if amsgrad else {}
    fcuda.adam_step_multi(
        list(gcolumns[0]),
        [to_device(g) for g in grads],
        list(gcolumns[1]),
        list(gcolumns[2]),
        steps=steps,
        amsgrad=amsgrad,
        weight_decay=0.05,
        **extra,
    )
    synchronize()
    for i, (c_set, g_set) in enumerate(zip(cpu_sets, gpu_sets)):
        for c, d in zip(c_set, g_set):
            np.testing.assert_array_equal(to_host(d), c, err_msg=f"set {i} (size {sizes[i]})")


def test_gpu_host_array_still_a_type_error():
    to_device, _, _ = _device_backend()
    arrays = [to_device(np.zeros(4, np.float32)) for _ in range(4)]
    arrays[1] = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="fastadam.cuda takes device arrays"):
        fcuda.adam_step(*arrays, step=1)
