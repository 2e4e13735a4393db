"""The digits MLP trained with 16-bit parameters: float16 with dynamic loss scaling, bfloat16
with float32 master weights, bfloat16 with stochastic rounding and plain bfloat16, beside float32.

The network, data and mini-batches are those of ``digits.py``. The forward and backward passes
run in float32 on the widened parameters (as autocast would); the gradients are stored in the
parameters' dtype and handed to ``fastadam.Adam``, which keeps float32 state and rounds each
parameter once per step. The float16 run multiplies the loss gradient by a
``fastadam.DynamicLossScaler`` scale before the backward pass: steps whose float16 gradients
overflow are skipped by the optimizer (``skip_nonfinite``) and the scale backs off.

    python examples/mixed_precision.py                  # 40 epochs, 5 seeds
    python examples/mixed_precision.py --quick --out /tmp   # 2 epochs, 1 seed

Writes ``mixed_precision.png`` (the first seed's curves) and ``mixed_precision.json`` to
``--out``. The test set has 360 images, so one image is 0.28 points and one run's final
accuracy moves by a point or so with the initial weights and the order of the mini-batches.
Each variant therefore trains from ``--seeds`` different initialisations and batch orders (the
same ones for every variant), and the verdict compares the final test accuracy averaged over
them. Exits with status 1 unless float32 reaches 95 % test accuracy (80 % with ``--quick``)
and, in a full run, float16, bfloat16 + master and bfloat16 + stochastic rounding are within 0.5
points of it on that average.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

import fastadam
from fastadam.dtypes import BFLOAT16

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from digits import BATCH, SEED, accuracy, initial_weights, load_data, loss_and_grads

LR = 3e-3
RUNS = {
    "float32": (np.float32, {}),
    "float16 + loss scaling": (np.float16, {"skip_nonfinite": True}),
    "bfloat16 + master weights": (BFLOAT16, {"master_weights": True}),
    "bfloat16 + stochastic rounding": (BFLOAT16, {"stochastic_rounding": True, "seed": 1}),
    "bfloat16": (BFLOAT16, {}),
}
CLOSE = ("float16 + loss scaling", "bfloat16 + master weights", "bfloat16 + stochastic rounding")


def train(name: str, dtype, options: dict, data, epochs: int, seed: int = SEED) -> dict:
    x_train, y_train, x_test, y_test = data
    params = [w.astype(dtype) for w in initial_weights(x_train.shape[1], 10, seed)]
    opt = fastadam.Adam(params, lr=LR, **options)
    # Started too high on purpose: the first steps overflow, are skipped, and the scale backs off.
    scaler = fastadam.DynamicLossScaler(init_scale=2.0**24, growth_interval=100)
    scaled = "loss scaling" in name
    rng = np.random.default_rng(seed)
    losses, accuracies, skipped, scales = [], [], 0, []
    for _ in range(epochs):
        order = rng.permutation(len(y_train))
        total = 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            wide = [p.astype(np.float32) for p in params]
            scale = scaler.scale if scaled else 1.0
            loss, grads = loss_and_grads(wide, x_train[batch], y_train[batch])
            with np.errstate(over="ignore"):  # float16 overflow is what the scaler handles
                low = [(g * np.float32(scale)).astype(dtype) for g in grads]
            report = opt.step(low, grad_scale=scale)
            if scaled:
                skipped += report.skipped
                scaler.update(report)
                scales.append(scaler.scale)
            total += loss * len(batch)
        losses.append(total / len(order))
        accuracies.append(accuracy([p.astype(np.float32) for p in params], x_test, y_test))
    out = {"loss": losses, "accuracy": accuracies}
    if scaled:
        out.update(skipped_steps=skipped, final_scale=scales[-1], steps=len(scales))
    return out


def plot(out: pathlib.Path, results: dict) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        epochs = range(1, len(r["loss"]) + 1)
        ax_loss.plot(epochs, r["loss"], label=name)
        ax_acc.plot(epochs, [100 * a for a in r["accuracy"]], label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    ax_acc.set_ylim(bottom=80)
    ax_acc.legend(fontsize=8)
    fig.suptitle("Digits MLP, fastadam.Adam, 16-bit parameters vs float32")
    fig.tight_layout()
    path = out / "mixed_precision.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=5, help="initialisations (default 5)")
    parser.add_argument("--quick", action="store_true", help="a short run: 2 epochs, 1 seed")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."))
    args = parser.parse_args(argv)
    if BFLOAT16 is None:
        print("this example needs ml_dtypes (pip install ml_dtypes) for bfloat16")
        return 1
    epochs = 2 if args.quick else args.epochs
    seeds = [SEED + i for i in range(1 if args.quick else args.seeds)]
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data()
    results = {}
    t0 = time.perf_counter()
    for name, (dtype, options) in RUNS.items():
        runs = [train(name, dtype, options, data, epochs, seed) for seed in seeds]
        results[name] = runs[0]  # the curves plotted
        results[name]["final_by_seed"] = [r["accuracy"][-1] for r in runs]
        results[name]["final_mean"] = float(np.mean(results[name]["final_by_seed"]))
    base = results["float32"]["accuracy"][-1]
    base_mean = results["float32"]["final_mean"]

    def late(r):  # mean test accuracy over the last five epochs
        return float(np.mean(r["accuracy"][-5:]))

    for r in results.values():
        r["last5_mean"] = late(r)
    base_by_seed = results["float32"]["final_by_seed"]
    print(
        f"{epochs} epochs x {len(seeds)} seed(s) in {time.perf_counter() - t0:.1f} s; final "
        f"test accuracy of the first seed (mean of its last five epochs), then the final "
        f"accuracy averaged over the seeds:"
    )
    for name, r in results.items():
        extra = ""
        if "skipped_steps" in r:
            extra = (
                f"  ({r['skipped_steps']} of {r['steps']} steps skipped on overflow, "
                f"final loss scale {r['final_scale']:g})"
            )
        gap = 100 * (r["accuracy"][-1] - base)
        gap5 = 100 * (r["last5_mean"] - results["float32"]["last5_mean"])
        gaps = [100 * (a - b) for a, b in zip(r["final_by_seed"], base_by_seed)]
        print(
            f"  {name:32} {100 * r['accuracy'][-1]:6.2f} %  ({gap:+.2f} points; last five "
            f"{100 * r['last5_mean']:.2f} %, {gap5:+.2f}){extra}\n"
            f"  {'':32} {100 * r['final_mean']:6.2f} %  averaged over {len(seeds)} seed(s) "
            f"({100 * (r['final_mean'] - base_mean):+.2f} points; per seed "
            + " ".join(f"{g:+.2f}" for g in gaps)
            + ")"
        )
    path = plot(args.out, results)
    (args.out / "mixed_precision.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    ok = base >= (0.80 if args.quick else 0.95)
    if not args.quick:
        ok = ok and all(abs(results[n]["final_mean"] - base_mean) <= 0.005 for n in CLOSE)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
