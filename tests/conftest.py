"""Fixtures shared by the test suite: ISA selection, thread counts, fresh random data."""

from __future__ import annotations

import os
import secrets
import zlib

import numpy as np
import pytest

import fastadam

# Fresh random data on every run; the seed is printed in the header, and FASTADAM_TEST_SEED
# replays a run.
SEED = int(os.environ.get("FASTADAM_TEST_SEED", secrets.randbits(32)))


def set_threads(n: int) -> None:
    """set_num_threads (kept as a helper so tests read the same everywhere)."""
    fastadam.set_num_threads(n)


def pytest_report_header(config):
    try:
        import torch

        torch_text = f"torch {torch.__version__}"
    except ImportError:
        torch_text = "torch not installed"
    return [
        (
            f"fastadam {fastadam.__version__}: ISAs available {fastadam.available_isas()}, "
            f"active {fastadam.get_isa()!r}, threads {fastadam.get_num_threads()} "
            f"(default {fastadam._core.default_num_threads()}, parallel threshold "
            f"{fastadam._core.parallel_threshold}); {torch_text}"
        ),
        f"random seed {SEED} (replay with FASTADAM_TEST_SEED={SEED})",
        f"CUDA: {fastadam.config._cuda_text()}",
    ]


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator of fresh random data, distinct per test, reproducible from the seed."""
    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture(params=fastadam.available_isas())
def isa(request):
    """Each ISA path this CPU runs, made active for the test; the previous one is restored."""
    previous = fastadam.get_isa()
    fastadam.set_isa(request.param)
    yield request.param
    fastadam.set_isa(previous)


@pytest.fixture
def threads():
    """`threads(n)` sets the thread count for the rest of the test; restored afterwards."""
    previous = fastadam.get_num_threads()
    yield set_threads
    set_threads(previous)
