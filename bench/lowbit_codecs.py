"""The 8-bit code maps that were tried for Adam's state, simulated in NumPy: their accuracy.

    python bench/lowbit_codecs.py          # 2**17 quadratic parameters, about a minute
    python bench/lowbit_codecs.py --log2 20

Every candidate is a "float bit pattern" code relative to a block's absmax (block 256): the
magnitude code c maps to the float32 with bits ``base + c * K`` times the scale (K a power of
two: a shift-only minifloat; otherwise "equally spaced float bit patterns", one integer multiply
to decode), c = 0 is zero, a non-zero v keeps a code >= 1. m has 127 magnitude codes and a sign
bit, v 255 codes. Columns: the candidate (octaves per code of m and of v, rounding: n nearest,
s stochastic, c up; "sqrt" stores sqrt(v)); the decades test (one block's gradients from 1e-8 to
1e2, fixed per element, then with 50 % noise per step: the largest distance from the float32
trajectory after 100 steps in units of the largest float32 update, bar 30); the 100-step
quadratic (2**log2 parameters, |b| over four decades per block: loss gap to float32 in %, bar
1 %). The shipped codes are "m .5s / v .25s" (m: sign + 6 exponent + 1 mantissa bits; v: 6 + 2
bits, stored as v), with the kernels' stochastic rounding.
"""

from __future__ import annotations

import argparse

import numpy as np

B = 256
RNG = np.random.default_rng(5)


def codec(x, octaves_per_code, codes, mode, signed):
    """x quantized and decoded (float32)."""
    xb = x.reshape(-1, B)
    a = np.abs(xb)
    s = a.max(axis=1).astype(np.float32)
    inv = np.where(s > 0, np.float32(1) / np.where(s > 0, s, 1), 0).astype(np.float32)
    y = (a * inv[:, None]).astype(np.float32)
    k = round(octaves_per_code * (1 << 23))
    top = codes - 1
    base = 0x3F800000 - top * k
    r = (y.view(np.int32).astype(np.int64) - base) / k
    if mode == "n":
        c = np.floor(r + 0.5)
    elif mode == "c":
        c = np.ceil(r)
    else:
        c = np.floor(r + RNG.random(r.shape))
    c = np.clip(c, 0, top).astype(np.int64)
    if not signed:
        c = np.where(a > 0, np.maximum(c, 1), c)
    f = (base + c * k).astype(np.int32).view(np.float32)
    f = np.where(c == 0, 0, f).astype(np.float32) * s[:, None]
    return np.where(xb < 0, -f, f).reshape(-1).astype(np.float32)


def run(grad, p0, lr, candidate):
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    f32, b1, b2 = np.float32, 0.9, 0.999
    largest = 0.0
    for t in range(1, 101):
        g = grad(p, t)
        m = f32(b1) * m + f32(1 - b1) * g
        v = f32(b2) * v + f32(1 - b2) * g * g
        if candidate:
            (mo, mmode), (vo, vmode, sqrt) = candidate
            m = codec(m, mo, 128, mmode, True)
            if sqrt:
                r = codec(np.sqrt(v), vo, 256, vmode, False)
                v = r * r
            else:
                v = codec(v, vo, 256, vmode, False)
        upd = f32(lr / (1 - b1**t)) * m / (np.sqrt(v) * f32(1 / np.sqrt(1 - b2**t)) + f32(1e-8))
        p = p - upd
        largest = max(largest, float(np.abs(upd).max()))
    return p, largest


CANDIDATES = {
    "m .5n / v .25n": ((0.5, "n"), (0.25, "n", False)),
    "m .5n / v .25c": ((0.5, "n"), (0.25, "c", False)),
    "m .5n / v .5n": ((0.5, "n"), (0.5, "n", False)),
    "m .31n / v .27n": ((40 / 127, "n"), (70 / 255, "n", False)),
    "m .31n / v .27c": ((40 / 127, "n"), (70 / 255, "c", False)),
    "m .5s / v .25n": ((0.5, "s"), (0.25, "n", False)),
    "m .31s / sqrt .14n": ((40 / 127, "s"), (35 / 255, "n", True)),
    "m .5s / v .25s": ((0.5, "s"), (0.25, "s", False)),
    "m .5s / sqrt .25s": ((0.5, "s"), (0.25, "s", True)),
    "m .5s / v .5s": ((0.5, "s"), (0.5, "s", False)),
    "m .31s / v .27s": ((40 / 127, "s"), (70 / 255, "s", False)),
    "m .25s / v .25s (E5M2)": ((0.25, "s"), (0.25, "s", False)),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log2", type=int, default=17)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n = B * 16
    mag = np.tile(np.logspace(-8, 2, B).astype(np.float32), 16)
    sign = np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32)
    p0 = rng.standard_normal(n).astype(np.float32)
    size = 1 << args.log2
    d = rng.uniform(0.1, 2, size).astype(np.float32)
    b = (np.where(rng.random(size) < 0.5, -1, 1) * 10 ** rng.uniform(-4, 0, size)).astype(
        np.float32
    )

    def loss(p):
        return float(np.sum(d.astype(np.float64) * p * p) / 2 - np.dot(b.astype(np.float64), p))

    def quad(p, t):
        return (d * p - b).astype(np.float32)

    refs = {}
    for noise in (0.0, 0.5):

        def decades(p, t, noise=noise):
            scale = 1 + noise * np.random.default_rng(t).standard_normal(n)
            return (sign * mag * scale).astype(np.float32)

        refs[noise] = (decades, *run(decades, p0, 1e-2, None))
    q0 = np.zeros(size, np.float32)
    qref = {lr: loss(run(quad, q0, lr, None)[0]) for lr in (1e-2, 1e-3)}
    print(f"{'candidate':24s} decades  noisy   quad 1e-2  quad 1e-3")
    for name, cand in CANDIDATES.items():
        cells = []
        for noise in (0.0, 0.5):
            grad, ref, largest = refs[noise]
            p, _ = run(grad, p0, 1e-2, cand)
            cells.append(f"{np.abs(p - ref).max() / largest:6.1f}")
        for lr in (1e-2, 1e-3):
            p, _ = run(quad, q0, lr, cand)
            cells.append(f"{100 * (loss(p) - qref[lr]) / abs(qref[lr]):+8.2f}%")
        print(f"{name:24s} " + "  ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
