"""A PyTorch model on the CPU whose optimizer step is done by fastadam, next to torch.optim.Adam.

Two copies of one model train on the same batches. One steps with ``torch.optim.Adam``; the other
hands its parameters to ``fastadam.Adam`` as NumPy views (``tensor.numpy()`` shares memory, so
the update lands in the model) and its gradients the same way. The loss curves agree to float32
rounding; the script prints both, the largest relative difference and the time of one optimizer
step each way (and of ``torch.optim.Adam(fused=True)`` where this torch has a fused CPU kernel).

    python examples/torch_offload.py                  # 200 steps
    python examples/torch_offload.py --quick --out /tmp  # 20 steps

Writes ``torch_offload.png`` (both loss curves) and ``torch_offload.json`` (the printed numbers)
to ``--out``. Exits with status 1 if the loss curves differ by more than 1e-4 relative, or if
the loss did not fall.
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

import fastadam

WIDTH = 512  # about 280 k parameters: enough for the step time to mean something
LR = 2e-4
RTOL = 1e-4


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(32, WIDTH),
        torch.nn.Tanh(),
        torch.nn.Linear(WIDTH, WIDTH),
        torch.nn.Tanh(),
        torch.nn.Linear(WIDTH, 1),
    )


def regression_data(size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed regression task, trained full-batch: y = sin(2 x . w) + noise for random x.
    (The noise keeps the loss away from zero, where the two runs' rounding differences would
    stand out.)"""
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(32, 1, generator=gen) / 32**0.5
    x = torch.randn(size, 32, generator=gen)
    return x, torch.sin(2.0 * x @ w) + 0.1 * torch.randn(size, 1, generator=gen)


def backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.zero_grad(set_to_none=False)  # keep the .grad tensors (and their NumPy views)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss.item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps (200)")
    parser.add_argument("--quick", action="store_true", help="a short run: 20 steps")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="output dir")
    args = parser.parse_args(argv)
    steps = 20 if args.quick else args.steps
    if steps < 1:
        parser.error("--steps must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)

    reference = make_model()
    offloaded = copy.deepcopy(reference)
    torch_opt = torch.optim.Adam(reference.parameters(), lr=LR)
    fused_model, fused_opt = copy.deepcopy(reference), None
    try:
        fused_opt = torch.optim.Adam(fused_model.parameters(), lr=LR, fused=True)
    except (RuntimeError, TypeError, ValueError):
        pass  # no fused CPU Adam in this torch

    # Views of the model's own memory: fastadam updates the tensors in place.
    params = [p.detach().numpy() for p in offloaded.parameters()]
    opt = fastadam.Adam(params, lr=LR)
    for p in offloaded.parameters():
        p.grad = torch.zeros_like(p)
    grads = [p.grad.numpy() for p in offloaded.parameters()]
    n_params = sum(p.size for p in params)
    print(
        f"fastadam {fastadam.__version__} ({fastadam.get_isa()}, {fastadam.get_num_threads()} "
        f"threads), torch {torch.__version__} ({torch.get_num_threads()} threads): MLP with "
        f"{n_params:,} parameters, Adam lr {LR:g}, {steps} steps"
    )

    losses: dict[str, list[float]] = {"torch": [], "fastadam": []}
    times: dict[str, list[float]] = {"torch": [], "fastadam": [], "torch_fused": []}
    x, y = regression_data()
    for _ in range(steps):
        losses["torch"].append(backward(reference, x, y))
        t0 = time.perf_counter()
        torch_opt.step()
        times["torch"].append(time.perf_counter() - t0)

        losses["fastadam"].append(backward(offloaded, x, y))
        t0 = time.perf_counter()
        opt.step(grads)
        times["fastadam"].append(time.perf_counter() - t0)

        if fused_opt is not None:
            backward(fused_model, x, y)
            t0 = time.perf_counter()
            fused_opt.step()
            times["torch_fused"].append(time.perf_counter() - t0)

    ours, theirs = np.array(losses["fastadam"]), np.array(losses["torch"])
    rel = np.abs(ours - theirs) / np.abs(theirs)
    every = max(1, steps // 10)
    print(
        f"{'step':>6}  {'loss torch.optim.Adam':>22}  {'loss fastadam.Adam':>20}  {'rel diff':>9}"
    )
    for t in sorted(set(range(0, steps, every)) | {steps - 1}):
        print(f"{t + 1:6d}  {theirs[t]:22.8f}  {ours[t]:20.8f}  {rel[t]:9.2e}")
    # Median step times, the first steps (state allocation, warm-up) left out.
    skip = min(5, steps - 1)
    median = {k: float(np.median(v[skip:])) * 1e3 for k, v in times.items() if v}
    ratio = median["torch"] / median["fastadam"]
    print(f"max relative loss difference: {rel.max():.2e}")
    print(
        f"step time (median): torch.optim.Adam {median['torch']:.3f} ms, fastadam.Adam "
        f"{median['fastadam']:.3f} ms, ratio {ratio:.2f}x"
    )
    if "torch_fused" in median:
        print(
            f"  torch.optim.Adam(fused=True) {median['torch_fused']:.3f} ms, ratio "
            f"{median['torch_fused'] / median['fastadam']:.2f}x"
        )

    plot(args.out / "torch_offload.png", theirs, ours)
    results = {
        "steps": steps,
        "parameters": n_params,
        "loss_torch": theirs.tolist(),
        "loss_fastadam": ours.tolist(),
        "max_relative_difference": float(rel.max()),
        "median_step_ms": median,
        "step_time_ratio": ratio,
    }
    (args.out / "torch_offload.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out / 'torch_offload.png'} and {args.out / 'torch_offload.json'}")

    # The offloaded model's own tensors moved: fastadam wrote into them.
    assert all(
        np.shares_memory(a, p.detach().numpy()) for a, p in zip(params, offloaded.parameters())
    )
    if not rel.max() <= RTOL:
        print(f"FAILED: the loss curves differ by more than {RTOL:g}", file=sys.stderr)
        return 1
    if not ours[-1] < ours[0]:
        print("FAILED: the loss did not fall", file=sys.stderr)
        return 1
    return 0


def plot(path: pathlib.Path, theirs: np.ndarray, ours: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(ours) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(steps, theirs, lw=3, alpha=0.5, label="torch.optim.Adam")
    ax.plot(steps, ours, "--", lw=1.2, label="fastadam.Adam on the tensors' NumPy views")
    ax.set(
        xlabel="step",
        ylabel="training loss (MSE)",
        yscale="log",
        title="The same model, two optimizer implementations",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
