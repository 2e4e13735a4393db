"""Fixtures shared by the test suite: ISA selection, thread counts, fresh random data."""

from __future__ import annotations

import os
import secrets
import time
import zlib

import numpy as np
import pytest

import fastadam

# Fresh random data on every run; the seed is printed in the header, and FASTADAM_TEST_SEED
# replays a run.
SEED = int(os.environ.get("FASTADAM_TEST_SEED", secrets.randbits(32)))

# Workaround for a thread-pool start-up race (tested in test_config.py, see
# test_first_parallel_call_after_new_pool_completes): a worker thread reads the pool's
# generation counter only once it is running, so a step issued right after the pool is created
# (lazily by the first large call, or by set_num_threads) can be missed by that worker and the
# caller spins forever. Waiting briefly after creating a pool lets its workers start.
POOL_SETTLE_S = 0.1


def set_threads(n: int) -> None:
    """set_num_threads, then give a new pool's workers time to start (see POOL_SETTLE_S)."""
    changed = fastadam.get_num_threads() != n
    fastadam.set_num_threads(n)
    if changed:
        time.sleep(POOL_SETTLE_S)


def pytest_report_header(config):
    try:
        import torch

        torch_text = f"torch {torch.__version__}"
    except ImportError:
        torch_text = "torch not installed"
    return [
        f"fastadam {fastadam.__version__}: ISAs available {fastadam.available_isas()}, "
        f"active {fastadam.get_isa()!r}, threads {fastadam.get_num_threads()} "
        f"(default {fastadam._core.default_num_threads()}, parallel threshold "
        f"{fastadam._core.parallel_threshold}); {torch_text}",
        f"random seed {SEED} (replay with FASTADAM_TEST_SEED={SEED})",
    ]


@pytest.fixture(scope="session", autouse=True)
def _started_thread_pool():
    """Create the default pool once and let its workers start (see POOL_SETTLE_S)."""
    fastadam.get_num_threads()
    time.sleep(POOL_SETTLE_S)


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
