"""GPU benchmark of fastadam.cuda, one command on a machine with an NVIDIA GPU:

    python bench/gpu_bench.py                 # float32, 2**10 .. 2**26 elements
    python bench/gpu_bench.py --dtype float64 --sizes 20 24 26

Compares, per size, fastadam.cuda.adam_step with an element-wise CuPy reference (one fused
ElementwiseKernel, the same math) and PyTorch's fused CUDA Adam (``torch.optim.Adam(fused=True)``)
when those are installed, as GB/s of the update's traffic (28 bytes per float32 element: p, g,
m, v read, p, m, v written; 56 for float64) against the device's copy bandwidth measured with a
device-to-device cudaMemcpy (bytes read + bytes written per second). Also times one
multi-tensor call, and checks fastadam's result against the reference before timing.
Needs fastadam built with -Ccmake.define.FASTADAM_CUDA=ON, and CuPy or PyTorch (for device
arrays). The target: fastadam reaches at least 85 % of the copy bandwidth at 2**26 elements.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

import fastadam.cuda as fcuda

TARGET = 0.85


def _import(name):
    try:
        return __import__(name)
    except ImportError:
        return None


class CupyBackend:
    name = "cupy"

    def __init__(self, cupy):
        self.cp = cupy
        self.device = cupy.cuda.Device()

    def empty(self, n, dtype):
        return self.cp.empty(n, dtype=dtype)

    def from_numpy(self, a):
        return self.cp.asarray(a)

    def to_numpy(self, a):
        return self.cp.asnumpy(a)

    def time_ms(self, fn, repeat):
        cp = self.cp
        out = []
        for _ in range(repeat):
            start, stop = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            out.append(cp.cuda.get_elapsed_time(start, stop))
        return statistics.median(out)

    def copy(self, dst, src):
        nbytes = src.nbytes
        self.cp.cuda.runtime.memcpyAsync(
            dst.data.ptr,
            src.data.ptr,
            nbytes,
            self.cp.cuda.runtime.memcpyDeviceToDevice,
            self.cp.cuda.get_current_stream().ptr,
        )

    def device_name(self):
        props = self.cp.cuda.runtime.getDeviceProperties(self.device.id)
        return props["name"].decode() if isinstance(props["name"], bytes) else props["name"]


class TorchBackend:
    name = "torch"

    def __init__(self, torch):
        self.torch = torch

    def empty(self, n, dtype):
        return self.torch.empty(n, dtype=getattr(self.torch, np.dtype(dtype).name), device="cuda")

    def from_numpy(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a)).cuda()

    def to_numpy(self, a):
        return a.cpu().numpy()

    def time_ms(self, fn, repeat):
        torch = self.torch
        out = []
        for _ in range(repeat):
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            out.append(start.elapsed_time(stop))
        return statistics.median(out)

    def copy(self, dst, src):
        dst.copy_(src)  # a cudaMemcpyAsync device to device for contiguous same-dtype tensors

    def device_name(self):
        return self.torch.cuda.get_device_name()


def cupy_reference(cupy):
    """The update of DESIGN.md section 2 (plain Adam) as one fused CuPy element-wise kernel."""
    return cupy.ElementwiseKernel(
        "T g, T beta1, T omb1, T beta2, T omb2, T step_size, T inv_sqrt_bc2, T eps",
        "T p, T m, T v",
        """
        m = beta1 * m + omb1 * g;
        v = beta2 * v + omb2 * g * g;
        p = p - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps);
        """,
        "fastadam_reference_adam",
    )


def reference_scalars(step, lr=1e-3, beta1=0.9, beta2=0.999):
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    return beta1, 1.0 - beta1, beta2, 1.0 - beta2, lr / bc1, 1.0 / np.sqrt(bc2)


def copy_bandwidth(backend, nbytes, repeat):
    """Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written."""
    n = nbytes // 4
    src, dst = backend.empty(n, np.float32), backend.empty(n, np.float32)
    src[...] = 1
    for _ in range(3):
        backend.copy(dst, src)
    ms = backend.time_ms(lambda: backend.copy(dst, src), repeat)
    return 2 * n * 4 / (ms * 1e-3) / 1e9


def state(backend, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    m = (0.1 * rng.standard_normal(n)).astype(dtype)
    v = ((0.01 * rng.standard_normal(n)) ** 2).astype(dtype)
    return [backend.from_numpy(a) for a in (p, g, m, v)]


def bench_fastadam(backend, n, dtype, repeat):
    p, g, m, v = state(backend, n, dtype)
    step = [0]

    def run():
        step[0] += 1
        fcuda.adam_step(p, g, m, v, step=step[0])

    for _ in range(3):
        run()
    return backend.time_ms(run, repeat)


def bench_cupy(cupy, backend, n, dtype, repeat):
    kernel = cupy_reference(cupy)
    p, g, m, v = state(backend, n, dtype)
    step = [0]

    def run():
        step[0] += 1
        b1, omb1, b2, omb2, ss, isb = reference_scalars(step[0])
        kernel(
            g,
            dtype(b1),
            dtype(omb1),
            dtype(b2),
            dtype(omb2),
            dtype(ss),
            dtype(isb),
            dtype(1e-8),
            p,
            m,
            v,
        )

    for _ in range(3):
        run()
    return backend.time_ms(run, repeat)


def bench_torch_fused(torch, n, dtype, repeat):
    tdtype = getattr(torch, np.dtype(dtype).name)
    param = torch.nn.Parameter(torch.randn(n, dtype=tdtype, device="cuda"))
    param.grad = torch.randn(n, dtype=tdtype, device="cuda")
    opt = torch.optim.Adam([param], lr=1e-3, fused=True)
    for _ in range(3):
        opt.step()
    return _torch_time(torch, opt.step, repeat)


def _torch_time(torch, fn, repeat):
    out = []
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(start.elapsed_time(stop))
    return statistics.median(out)


def check_against_reference(cupy, backend, dtype):
    """One fastadam step against the CuPy reference on the same data (Adam, no options)."""
    n = 2**20 + 3
    a = state(backend, n, dtype, seed=7)
    b = [x.copy() for x in a]
    fcuda.adam_step(a[0], a[1], a[2], a[3], step=1)
    b1, omb1, b2, omb2, ss, isb = reference_scalars(1)
    cupy_reference(cupy)(
        b[1],
        dtype(b1),
        dtype(omb1),
        dtype(b2),
        dtype(omb2),
        dtype(ss),
        dtype(isb),
        dtype(1e-8),
        b[0],
        b[2],
        b[3],
    )
    worst = max(float(abs(x - y).max()) for x, y in zip(a, b))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10, 14, 18, 20, 22, 24, 26],
        help="log2 of the element counts (default: 10 14 18 20 22 24 26)",
    )
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per case (median)")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    itemsize = np.dtype(dtype).itemsize
    bytes_per_element = 7 * itemsize

    if not fcuda.is_available():
        print(f"fastadam.cuda is not available: {fcuda.unavailable_reason()}", file=sys.stderr)
        return 2
    cupy, torch = _import("cupy"), _import("torch")
    if torch is not None and not torch.cuda.is_available():
        torch = None
    if cupy is not None:
        backend = CupyBackend(cupy)
    elif torch is not None:
        backend = TorchBackend(torch)
    else:
        print("needs CuPy or PyTorch with CUDA for device arrays", file=sys.stderr)
        return 2

    copy_gbs = copy_bandwidth(backend, 2**30, args.repeat)
    print(f"device: {backend.device_name()}  arrays from: {backend.name}  dtype: {args.dtype}")
    print(f"device-to-device copy bandwidth (read + write): {copy_gbs:.0f} GB/s")
    print(f"Adam traffic: {bytes_per_element} bytes per element")
    if cupy is not None:
        print(
            f"fastadam vs CuPy reference, largest difference: "
            f"{check_against_reference(cupy, backend, dtype):.3g}"
        )
    header = f"{'elements':>12} {'fastadam':>18} {'cupy elementwise':>18} {'torch fused':>18}"
    print(header)
    print("-" * len(header))

    def cell(ms, n):
        if ms is None:
            return f"{'-':>18}"
        gbs = bytes_per_element * n / (ms * 1e-3) / 1e9
        return f"{gbs:8.0f} GB/s {100 * gbs / copy_gbs:4.0f}%"

    verdict = None
    for k in args.sizes:
        n = 2**k
        fa = bench_fastadam(backend, n, dtype, args.repeat)
        cu = bench_cupy(cupy, backend, n, dtype, args.repeat) if cupy is not None else None
        tf = bench_torch_fused(torch, n, dtype, args.repeat) if torch is not None else None
        print(f"{'2**' + str(k):>12} {cell(fa, n)} {cell(cu, n)} {cell(tf, n)}")
        if k == 26:
            verdict = bytes_per_element * n / (fa * 1e-3) / 1e9 / copy_gbs

    # One multi-tensor call: 200 tensors of mixed sizes, about 2**24 elements in all.
    rng = np.random.default_rng(3)
    sizes = [int(s) for s in rng.integers(1, 2**18, size=200)]
    sets = [state(backend, s, dtype, seed=i) for i, s in enumerate(sizes)]
    cols = list(zip(*sets))
    step = [0]

    def multi():
        step[0] += 1
        fcuda.adam_step_multi(
            list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), steps=step[0]
        )

    multi()
    ms = backend.time_ms(multi, args.repeat)
    total = sum(sizes)
    print(
        f"multi-tensor: 200 tensors, {total} elements, {ms:.3f} ms, "
        f"{bytes_per_element * total / (ms * 1e-3) / 1e9:.0f} GB/s"
    )

    if verdict is not None:
        status = "meets" if verdict >= TARGET else "is BELOW"
        print(
            f"fastadam at 2**26: {100 * verdict:.0f}% of copy bandwidth, which {status} the "
            f"{100 * TARGET:.0f}% target"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
