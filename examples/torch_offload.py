"""A PyTorch CNN on the CPU trained by fastadam.torch.Adam, next to torch.optim.Adam.

Swapping optimizers is a two-line change to a PyTorch training loop::

    import fastadam.torch                                        # 1
    opt = fastadam.torch.Adam(model.parameters(), lr=1e-3)       # 2 (was torch.optim.Adam)

Three copies of one small CNN learn scikit-learn's 8x8 digits from the same initial weights on
the same mini-batches: one with ``torch.optim.Adam`` (its default, on CPU tensors the
single-tensor loop), one with ``torch.optim.Adam(fused=True)`` and one with
``fastadam.torch.Adam``, each with its own StepLR schedule. The script prints the loss curves
side by side, the test accuracies and the median time of ``optimizer.step()`` alone for each.

    python examples/torch_offload.py                      # 8 epochs (184 steps)
    python examples/torch_offload.py --quick --out /tmp   # 20 steps
    python examples/torch_offload.py --threads 1          # one thread for torch and fastadam

Writes ``torch_offload.png`` (loss curves and step times) and ``torch_offload.json`` (the
printed numbers) to ``--out``. Exits with status 1 if fastadam's loss curve differs from
torch.optim.Adam's by more than 1e-3 relative, or if the loss did not fall.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastadam
import fastadam.torch

LR = 3e-3
BATCH = 64
RTOL = 1e-3  # float32 rounding differences, grown over a few hundred steps of training
OPTIMIZERS = {
    "torch.optim.Adam": lambda params: torch.optim.Adam(params, lr=LR),
    "torch.optim.Adam(fused=True)": lambda params: torch.optim.Adam(params, lr=LR, fused=True),
    "fastadam.torch.Adam": lambda params: fastadam.torch.Adam(params, lr=LR),
}


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )


def digits() -> tuple[torch.Tensor, ...]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    return (
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (8)")
    parser.add_argument("--quick", action="store_true", help="a short run: 20 steps")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="output dir")
    parser.add_argument(
        "--threads", type=int, help="threads for torch and fastadam (default: each its own)"
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
        fastadam.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    x_train, y_train, x_test, y_test = digits()
    per_epoch = -(-len(x_train) // BATCH)
    steps = 20 if args.quick else args.epochs * per_epoch
    order = torch.Generator().manual_seed(1)
    batches = []  # the same mini-batches, in the same order, for every optimizer
    while len(batches) < steps:
        perm = torch.randperm(len(x_train), generator=order)
        batches += [perm[i : i + BATCH] for i in range(0, len(perm), BATCH)]
    batches = batches[:steps]

    base = make_model()
    runs = {}
    for name, make in OPTIMIZERS.items():
        model = copy.deepcopy(base)
        opt = make(model.parameters())
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=per_epoch * 3, gamma=0.5)
        runs[name] = {"model": model, "opt": opt, "sched": sched, "loss": [], "step_s": []}
    n_params = sum(p.numel() for p in base.parameters())
    print(
        f"fastadam {fastadam.__version__} ({fastadam.get_isa()}, {fastadam.get_num_threads()} "
        f"threads), torch {torch.__version__} ({torch.get_num_threads()} threads): CNN with "
        f"{n_params:,} parameters on 8x8 digits, Adam lr {LR:g}, batch {BATCH}, {steps} steps"
    )

    for idx in batches:  # the three runs interleaved, step by step
        x, y = x_train[idx], y_train[idx]
        for run in runs.values():
            model, opt = run["model"], run["opt"]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            t0 = time.perf_counter()
            opt.step()
            run["step_s"].append(time.perf_counter() - t0)
            run["sched"].step()
            run["loss"].append(loss.item())

    names = list(runs)
    ref, ours = np.array(runs[names[0]]["loss"]), np.array(runs["fastadam.torch.Adam"]["loss"])
    rel = np.abs(ours - ref) / np.abs(ref)
    header = "".join(f"{n:>30s}" for n in names)
    print(f"{'step':>6s}{header}")
    every = max(1, steps // 10)
    for t in sorted(set(range(0, steps, every)) | {steps - 1}):
        print(f"{t + 1:6d}" + "".join(f"{runs[n]['loss'][t]:30.6f}" for n in names))
    accuracy = {}
    with torch.no_grad():
        for n in names:
            pred = runs[n]["model"](x_test).argmax(1)
            accuracy[n] = float((pred == y_test).float().mean())
    print("test accuracy: " + ", ".join(f"{n} {a:.4f}" for n, a in accuracy.items()))
    print(f"max relative loss difference: {rel.max():.2e}")
    skip = min(5, steps - 1)  # state creation and warm-up left out
    median_ms = {n: float(np.median(runs[n]["step_s"][skip:])) * 1e3 for n in names}
    ratio = median_ms[names[0]] / median_ms["fastadam.torch.Adam"]
    fused_ratio = median_ms[names[1]] / median_ms["fastadam.torch.Adam"]
    print(
        "step time (median): "
        + ", ".join(f"{n} {ms:.3f} ms" for n, ms in median_ms.items())
        + f"; torch.optim.Adam / fastadam ratio {ratio:.3g}x, fused / fastadam {fused_ratio:.3g}x"
    )

    plot(args.out / "torch_offload.png", runs, median_ms)
    results = {
        "steps": steps,
        "parameters": n_params,
        "loss": {n: runs[n]["loss"] for n in names},
        "test_accuracy": accuracy,
        "max_relative_difference": float(rel.max()),
        "median_step_ms": median_ms,
        "step_time_ratio": ratio,
        "fused_step_time_ratio": fused_ratio,
    }
    (args.out / "torch_offload.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out / 'torch_offload.png'} and {args.out / 'torch_offload.json'}")

    if not rel.max() <= RTOL:
        print(f"FAILED: the loss curves differ by more than {RTOL:g}", file=sys.stderr)
        return 1
    if not np.mean(ours[-5:]) < np.mean(ours[:5]):
        print("FAILED: the loss did not fall", file=sys.stderr)
        return 1
    return 0


def plot(path: pathlib.Path, runs: dict, median_ms: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), width_ratios=[2, 1])
    styles = {
        "torch.optim.Adam": {"lw": 3, "alpha": 0.45},
        "torch.optim.Adam(fused=True)": {"lw": 1.5, "ls": ":"},
        "fastadam.torch.Adam": {"lw": 1.2, "ls": "--"},
    }
    for name, run in runs.items():
        steps = np.arange(1, len(run["loss"]) + 1)
        left.plot(steps, run["loss"], label=name, **styles[name])
    left.set(
        xlabel="step",
        ylabel="training loss (cross-entropy)",
        yscale="log",
        title="The same CNN, batches and schedule",
    )
    left.grid(alpha=0.3)
    left.legend()
    names = list(median_ms)
    right.barh(range(len(names)), [median_ms[n] for n in names], color=["C0", "C1", "C2"])
    right.set_yticks(
        range(len(names)), [n.replace("(fused=True)", "\n(fused=True)") for n in names]
    )
    right.set(xlabel="optimizer.step() median (ms)", title="Step time")
    right.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
