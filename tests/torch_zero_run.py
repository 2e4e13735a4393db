"""Trains a small model with torch.distributed.optim.ZeroRedundancyOptimizer over
fastadam.torch.Adam on N local gloo processes (torch.multiprocessing.spawn) and saves what
tests/test_torch_zero.py compares with one process. Not a test module; run as

    python tests/torch_zero_run.py OUT_DIR STEPS [WORLD_SIZE]

Every rank computes the full-batch gradient, so the parameters can differ from one process's
only through the sharded optimizer (its state on the owning rank, parameters broadcast after
each step). Both of ZeRO's parameter layouts run: the model's own tensors, and parameters made
views into per-rank buckets (``parameters_as_bucket_view``).
"""

from __future__ import annotations

import datetime
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SEED = 1234
LR = 1e-2
WEIGHT_DECAY = 1e-2


def make_model() -> torch.nn.Module:
    """Layers of similar size, so that ZeRO's partition can give each rank about half."""
    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(32, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 10),
    )


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(SEED + 1)
    return torch.randn(256, 32, generator=gen), torch.randint(0, 10, (256,), generator=gen)


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    x, y = make_data()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer state tensors this process holds."""
    return sum(
        t.numel() * t.element_size()
        for s in opt.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )


def worker(rank: int, world: int, port: int, out_dir: str, steps: int) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    import fastadam
    import fastadam.torch

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    fastadam.set_num_threads(1)
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60)
    )
    try:
        results = {}
        for bucket_view in (False, True):
            model = make_model()
            opt = ZeroRedundancyOptimizer(
                model.parameters(),
                optimizer_class=fastadam.torch.Adam,
                parameters_as_bucket_view=bucket_view,
                lr=LR,
                weight_decay=WEIGHT_DECAY,
            )
            assert isinstance(opt.optim, fastadam.torch.Adam)
            train(model, opt, steps)
            held = [None] * world
            dist.all_gather_object(held, state_bytes(opt.optim))
            opt.consolidate_state_dict(to=0)
            if rank == 0:
                results[bucket_view] = {
                    "params": [p.detach().clone() for p in model.parameters()],
                    "state_bytes": held,
                    "state_dict": opt.state_dict(),
                }
        if rank == 0:
            torch.save(results, os.path.join(out_dir, "zero.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str]) -> None:
    out_dir, steps = argv[0], int(argv[1])
    world = int(argv[2]) if len(argv) > 2 else 2
    mp.spawn(worker, args=(world, free_port(), out_dir, steps), nprocs=world, join=True)


if __name__ == "__main__":
    main(sys.argv[1:])
