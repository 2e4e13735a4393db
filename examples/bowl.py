"""Adam on the bowl f(x, y) = x^2 + y^2, with SGD for contrast.

Both optimizers start from the same point of [-1, 1]^2 with the same learning rate. Adam's first
steps move every coordinate by about the learning rate whatever the gradient's scale, so it
travels at 45 degrees, overshoots the minimum and spirals in as its moment estimates shrink;
SGD's steps are proportional to the gradient, so it runs straight at the minimum and slows down
as the gradient vanishes. The script prints the objective along both trajectories and draws them
on a contour plot.

    python examples/bowl.py                   # 200 steps, bowl.png in the current directory
    python examples/bowl.py --quick --out /tmp   # 50 steps

Writes ``bowl.png`` and ``bowl.json`` (the printed numbers) to ``--out``. Exits with status 1
unless Adam lowered the objective by at least 100x (10x with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

import fastadam


def objective(p: np.ndarray) -> float:
    return float(p[0] ** 2 + p[1] ** 2)


def gradient(p: np.ndarray) -> np.ndarray:
    return 2.0 * p


def trajectory(optimizer: type, start: tuple[float, float], steps: int, **kwargs) -> np.ndarray:
    """The iterates (steps + 1, 2) of `optimizer` from `start`; the parameter is updated in
    place by fastadam."""
    p = np.array(start, dtype=np.float64)
    opt = optimizer([p], **kwargs)
    points = [p.copy()]
    for _ in range(steps):
        opt.step([gradient(p)])
        points.append(p.copy())
    return np.array(points)


def plot(path: pathlib.Path, runs: dict[str, np.ndarray], lr: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-1.0, 1.0, 201)
    x, y = np.meshgrid(grid, grid)
    fig, ax = plt.subplots(figsize=(6, 6))
    contours = ax.contour(x, y, x**2 + y**2, levels=np.linspace(0.05, 2.0, 14), cmap="Greys")
    ax.clabel(contours, fontsize=7, fmt="%.2f")
    for (label, points), color in zip(runs.items(), ["tab:red", "tab:blue"]):
        ax.plot(points[:, 0], points[:, 1], ".-", color=color, ms=3, lw=1, label=label)
    first = next(iter(runs.values()))
    start = first[0]
    ax.plot(*start, "ko", ms=6, label=f"start ({start[0]:g}, {start[1]:g})")
    ax.plot(0.0, 0.0, "k*", ms=10, label="minimum")
    ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="x", ylabel="y", aspect="equal")
    ax.set_title(f"f(x, y) = x² + y²: {len(first) - 1} steps, lr {lr:g}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per optimizer (200)")
    parser.add_argument("--quick", action="store_true", help="a short run: 50 steps")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate of both (0.05)")
    parser.add_argument("--start", type=float, nargs=2, default=(0.8, -0.9), metavar=("X", "Y"))
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="output dir")
    args = parser.parse_args(argv)
    steps = 50 if args.quick else args.steps
    if steps < 1:
        parser.error("--steps must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)

    runs = {
        f"Adam (lr {args.lr:g})": trajectory(fastadam.Adam, args.start, steps, lr=args.lr),
        f"SGD (lr {args.lr:g})": trajectory(fastadam.SGD, args.start, steps, lr=args.lr),
    }
    adam, sgd = runs.values()
    print(
        f"fastadam {fastadam.__version__} ({fastadam.get_isa()}): the bowl x^2 + y^2 from "
        f"({args.start[0]:g}, {args.start[1]:g}), {steps} steps, lr {args.lr:g}"
    )
    print(f"{'step':>6}  {'Adam (x, y)':>24}  {'f Adam':>10}  {'f SGD':>10}")
    shown = sorted({0, 1, 2, 5, 10, 20, 50, 100, 150, 200, steps} & set(range(steps + 1)))
    for t in shown:
        print(
            f"{t:6d}  ({adam[t, 0]:+.4e}, {adam[t, 1]:+.4e})  "
            f"{objective(adam[t]):10.3e}  {objective(sgd[t]):10.3e}"
        )

    initial = objective(adam[0])
    final = {"adam": objective(adam[-1]), "sgd": objective(sgd[-1])}
    print(
        f"final objective: adam={final['adam']:.3e} sgd={final['sgd']:.3e} (initial {initial:.3e})"
    )

    plot(args.out / "bowl.png", runs, args.lr)
    results = {
        "steps": steps,
        "lr": args.lr,
        "start": list(args.start),
        "initial_objective": initial,
        "final_objective": final,
        "adam_objective": [objective(p) for p in adam],
        "sgd_objective": [objective(p) for p in sgd],
    }
    (args.out / "bowl.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out / 'bowl.png'} and {args.out / 'bowl.json'}")

    needed = 10.0 if args.quick else 100.0
    if not final["adam"] * needed <= initial:
        print(f"FAILED: Adam lowered the objective by less than {needed:g}x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
