"""Hypothesis property tests: any size, dtype, option, hyper-parameter value and step count
gives the float64 reference's result within tolerance, on every ISA path."""

from __future__ import annotations

import numpy as np
from adam_oracle import (
    assert_one_step_matches,
    assert_states_equal,
    fast_step,
    oracle_step,
    random_state,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import fastadam

# Hypothesis draws a seed and the data come from NumPy: fast, and a failure still shrinks to a
# small size and simple hyper-parameters.
FAST = settings(max_examples=50, deadline=None, database=None)

unit = st.floats(0.0, 0.999)  # betas: 0 is allowed, 1 is not
hypers = st.fixed_dictionaries(
    {
        "step": st.integers(1, 10_000),
        "lr": st.one_of(st.just(1e-3), st.floats(0.0, 1.0)),
        "betas": st.tuples(unit, unit),
        "eps": st.one_of(st.just(1e-8), st.floats(0.0, 1e-2)),
        "weight_decay": st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
        "amsgrad": st.booleans(),
        "maximize": st.booleans(),
        "decoupled": st.booleans(),
        "bias_correction": st.booleans(),
    }
)


def with_isa(name, fn):
    previous = fastadam.get_isa()
    fastadam.set_isa(name)
    try:
        return fn()
    finally:
        fastadam.set_isa(previous)


@FAST
@given(
    size=st.integers(0, 300),
    dtype=st.sampled_from([np.float32, np.float64]),
    hyper=hypers,
    isa=st.sampled_from(fastadam.available_isas()),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_float64_reference(size, dtype, hyper, isa, seed):
    state = random_state(np.random.default_rng(seed), (size,), dtype, amsgrad=hyper["amsgrad"])
    before64 = state.astype(np.float64)
    after64 = before64.copy()
    oracle_step(after64, hyper)
    with_isa(isa, lambda: fast_step(state, hyper))
    assert_one_step_matches(state, before64, after64, hyper)


@FAST
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=8),
    dtype=st.sampled_from([np.float32, np.float64]),
    hyper=hypers,
    isa=st.sampled_from(fastadam.available_isas()),
    seed=st.integers(0, 2**32 - 1),
)
def test_multi_call_equals_per_tensor_calls(sizes, dtype, hyper, isa, seed):
    rng = np.random.default_rng(seed)
    states = [random_state(rng, (n,), dtype, amsgrad=hyper["amsgrad"]) for n in sizes]
    steps = [int(t) for t in rng.integers(1, 10_000, len(sizes))]
    expected = [s.copy() for s in states]
    kwargs = {k: v for k, v in hyper.items() if k != "step"}

    def run():
        for s, t in zip(expected, steps):
            fast_step(s, hyper | {"step": t})
        fastadam.adam_step_multi(
            [s.param for s in states],
            [s.grad for s in states],
            [s.exp_avg for s in states],
            [s.exp_avg_sq for s in states],
            steps=steps,
            max_exp_avg_sqs=[s.max_exp_avg_sq for s in states] if hyper["amsgrad"] else None,
            **kwargs,
        )

    with_isa(isa, run)
    for i, (got, want) in enumerate(zip(states, expected)):
        assert_states_equal(got, want, f"set {i}:")
