"""A digit classifier trained with fastadam's Adam, AMSGrad, SWATS, RMSprop, SGD and Adagrad side
by side.

The data is scikit-learn's bundled 8x8 digits set (1797 images, shipped inside the package: no
download). The network is a small NumPy MLP, 64 -> 128 (ReLU) -> 10 (softmax), with its own
forward and backward pass; each optimizer trains a copy of the same initial weights on the same
mini-batches. The script prints the final test accuracies and draws the training loss and test
accuracy per epoch, with SWATS's switch from Adam to SGD marked (and its estimated SGD learning
rate per step in a third plot).

    python examples/digits.py                 # 40 epochs, well under a minute on 2 cores
    python examples/digits.py --quick --out /tmp   # 4 epochs

Writes ``digits_loss.png``, ``digits_accuracy.png``, ``digits_swats_lr.png`` and ``digits.json``
(the printed numbers) to
``--out``. Exits with status 1 unless Adam reaches 95 % test accuracy (80 % with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

import fastadam

HIDDEN = 128
BATCH = 64
SEED = 0
# Each optimizer at a learning rate suited to this problem (a few values tried for each; torch's
# defaults are 1e-3 for Adam and 1e-2 for Adagrad, and SGD's 1e-3 is far too small here).
# SWATS runs Adam at Adam's learning rate until the projected SGD learning rate settles to within
# eps_switch (per parameter group; 1e-9 in the paper, which trains for thousands of steps on far
# less noisy gradients: here 1e-4 never switches in 40 epochs, 1e-3 switches at step 8).
OPTIMIZERS = {
    "Adam": (fastadam.Adam, {"lr": 3e-3}),
    "AMSGrad": (fastadam.Adam, {"lr": 3e-3, "amsgrad": True}),
    "SWATS": (fastadam.SWATS, {"lr": 3e-3, "eps_switch": 1e-3}),
    "RMSprop": (fastadam.RMSprop, {"lr": 1e-3}),
    "SGD": (fastadam.SGD, {"lr": 5e-2, "momentum": 0.9, "nesterov": True}),
    "Adagrad": (fastadam.Adagrad, {"lr": 3e-2}),
}


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test splits (80 / 20) of the bundled digits, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(SEED).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def initial_weights(n_in: int, n_out: int, seed: int = SEED) -> list[np.ndarray]:
    """He-initialized weights and zero biases: W1 (n_in, HIDDEN), b1, W2 (HIDDEN, n_out), b2."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((n_in, HIDDEN)) * np.sqrt(2.0 / n_in)
    w2 = rng.standard_normal((HIDDEN, n_out)) * np.sqrt(2.0 / HIDDEN)
    return [a.astype(np.float32) for a in (w1, np.zeros(HIDDEN), w2, np.zeros(n_out))]


def forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden activations and class probabilities."""
    w1, b1, w2, b2 = params
    hidden = np.maximum(x @ w1 + b1, 0.0)
    logits = hidden @ w2 + b2
    logits -= logits.max(axis=1, keepdims=True)
    expo = np.exp(logits)
    return hidden, expo / expo.sum(axis=1, keepdims=True)


def loss_and_grads(params: list[np.ndarray], x: np.ndarray, y: np.ndarray):
    """Mean cross-entropy of the batch and its gradients, aligned with `params`."""
    w2 = params[2]
    hidden, probs = forward(params, x)
    n = len(y)
    loss = float(-np.log(probs[np.arange(n), y] + 1e-12).mean())
    d_logits = probs
    d_logits[np.arange(n), y] -= 1.0
    d_logits /= n
    d_hidden = (d_logits @ w2.T) * (hidden > 0)
    grads = [x.T @ d_hidden, d_hidden.sum(axis=0), hidden.T @ d_logits, d_logits.sum(axis=0)]
    return loss, [g.astype(np.float32, copy=False) for g in grads]


def accuracy(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(params, x)[1].argmax(axis=1) == y).mean())


def train(name: str, start: list[np.ndarray], data, epochs: int) -> dict:
    """Train a copy of `start` with optimizer `name`; the loss and test accuracy per epoch
    (index 0 is before training)."""
    x_train, y_train, x_test, y_test = data
    cls, kwargs = OPTIMIZERS[name]
    params = [p.copy() for p in start]
    opt = cls(params, **kwargs)
    order_rng = np.random.default_rng(SEED + 1)  # the same batches for every optimizer
    losses = [loss_and_grads(params, x_train, y_train)[0]]
    accuracies = [accuracy(params, x_test, y_test)]
    sgd_lr = []  # SWATS: the estimated SGD learning rate after each step
    for _ in range(epochs):
        order = order_rng.permutation(len(y_train))
        batch_losses = []
        for i in range(0, len(order), BATCH):
            batch = order[i : i + BATCH]
            loss, grads = loss_and_grads(params, x_train[batch], y_train[batch])
            opt.step(grads)  # the parameters are updated in place
            batch_losses.append(loss)
            if name == "SWATS":
                sgd_lr.append(opt.param_groups[0]["sgd_lr"])
        losses.append(float(np.mean(batch_losses)))
        accuracies.append(accuracy(params, x_test, y_test))
    out = {"hyper_parameters": kwargs, "train_loss": losses, "test_accuracy": accuracies}
    if name == "SWATS":
        group = opt.param_groups[0]
        out.update(
            steps_per_epoch=-(-len(y_train) // BATCH),
            switch_step=group["switch_step"],
            sgd_lr=group["sgd_lr"],
            sgd_lr_per_step=sgd_lr,
        )
    return out


def plot(out: pathlib.Path, results: dict) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, label, name, log in [
        ("train_loss", "training loss (cross-entropy)", "digits_loss.png", True),
        ("test_accuracy", "test accuracy", "digits_accuracy.png", False),
    ]:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for opt_name, r in results.items():
            hyper = ", ".join(
                f"{k} {v:g}" if not isinstance(v, bool) else k
                for k, v in r["hyper_parameters"].items()
                if v is not False
            )
            ax.plot(r[key], label=f"{opt_name} ({hyper})")
        mark_switch(ax, results.get("SWATS"))
        ax.set(xlabel="epoch", ylabel=label, title=f"8x8 digits, MLP 64-{HIDDEN}-10: {label}")
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    swats = results.get("SWATS")
    if swats is not None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        estimates = [np.nan if e is None else e for e in swats["sgd_lr_per_step"]]
        ax.plot(np.arange(1, len(estimates) + 1), estimates, label="lambda_k / (1 - beta2^k)")
        if swats["switch_step"] is not None:
            ax.axvline(swats["switch_step"], color="k", linestyle="--", label="switch to SGD")
        ax.set(
            xlabel="step",
            ylabel="estimated SGD learning rate",
            title="SWATS: the SGD learning rate projected from Adam's steps",
        )
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / "digits_swats_lr.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def mark_switch(ax, swats: dict | None) -> None:
    """A dashed line at the epoch where SWATS switched from Adam to SGD."""
    if swats is None or swats["switch_step"] is None:
        return
    epoch = swats["switch_step"] / swats["steps_per_epoch"]
    ax.axvline(
        epoch,
        color="k",
        linestyle="--",
        linewidth=1,
        label=f"SWATS to SGD (step {swats['switch_step']}, lr {swats['sgd_lr']:.3g})",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="epochs per optimizer (40)")
    parser.add_argument("--quick", action="store_true", help="a short run: 4 epochs")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="output dir")
    args = parser.parse_args(argv)
    epochs = 4 if args.quick else args.epochs
    if epochs < 1:
        parser.error("--epochs must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)

    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    # The matrices here are tiny (batch 64 x 128): BLAS threads cost more than they save, and on
    # a busy machine many times more. fastadam's own threads are unaffected.
    with threadpool_limits(limits=1, user_api="blas"):
        return run(args.out, epochs, args.quick)


def run(out: pathlib.Path, epochs: int, quick: bool) -> int:
    began = time.perf_counter()
    data = load_data()
    start = initial_weights(data[0].shape[1], 10)
    print(
        f"fastadam {fastadam.__version__} ({fastadam.get_isa()}, "
        f"{fastadam.get_num_threads()} threads): {len(data[1])} training and {len(data[3])} "
        f"test digits, MLP 64-{HIDDEN}-10, batch {BATCH}, {epochs} epochs"
    )
    results = {}
    for name in OPTIMIZERS:
        t0 = time.perf_counter()
        results[name] = r = train(name, start, data, epochs)
        print(
            f"{name:8s} final train loss {r['train_loss'][-1]:.4f}  test accuracy "
            f"{r['test_accuracy'][-1]:.4f}  ({time.perf_counter() - t0:.1f} s)"
        )
        if name == "SWATS":
            print(
                "         "
                + (
                    f"switched to SGD at step {r['switch_step']} with lr {r['sgd_lr']:.4g}"
                    if r["switch_step"] is not None
                    else "did not switch to SGD"
                )
            )
    finals = {name: r["test_accuracy"][-1] for name, r in results.items()}
    print("final test accuracy: " + " ".join(f"{k}={v:.4f}" for k, v in finals.items()))

    paths = plot(out, results)
    elapsed = time.perf_counter() - began
    summary = {
        "epochs": epochs,
        "seconds": elapsed,
        "final_test_accuracy": finals,
        "optimizers": results,
    }
    (out / "digits.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {', '.join(str(p) for p in paths)} and {out / 'digits.json'} in {elapsed:.1f} s")

    needed = 0.80 if quick else 0.95
    if not finals["Adam"] >= needed:
        print(f"FAILED: Adam's test accuracy {finals['Adam']:.4f} < {needed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
