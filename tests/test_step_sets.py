"""fastadam._core.adam_step_sets: the optimizer classes' single native call per step, with
per-set hyper-parameters and steps, both dtypes, and amsgrad per set."""

from __future__ import annotations

import numpy as np
import pytest

import fastadam
from fastadam import _core, reference


def _hyper(
    lr=1e-2,
    betas=(0.9, 0.999),
    eps=1e-8,
    wd=0.0,
    amsgrad=False,
    maximize=False,
    decoupled=False,
    bias_correction=True,
):
    return (lr, betas[0], betas[1], eps, wd, amsgrad, maximize, decoupled, bias_correction)


def _set(rng, n, dtype, amsgrad):
    p, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = rng.random(n).astype(dtype)
    vmax = (v * 1.5).astype(dtype) if amsgrad else None
    return [p, g, m, v, vmax]


def test_mixed_groups_and_dtypes_match_per_set_reference(rng):
    hypers = [
        _hyper(),
        _hyper(lr=0.1, wd=0.05, decoupled=True, amsgrad=True),
        _hyper(maximize=True, wd=0.01, bias_correction=False),
    ]
    layout = [
        (1000, np.float32, 0, 3),
        (77, np.float64, 1, 1),
        (40000, np.float32, 1, 9),
        (5, np.float64, 2, 2),
        (3, np.float32, 2, 5),
    ]
    sets = [_set(rng, n, dt, hypers[h][5]) for n, dt, h, _ in layout]
    expected = [[None if a is None else a.astype(np.float64) for a in s] for s in sets]
    for (n, dt, h, step), (p, g, m, v, vmax) in zip(layout, expected):
        lr, b1, b2, eps, wd, ams, maxi, dec, bc = hypers[h]
        reference.adam_step(
            p,
            g,
            m,
            v,
            step=step,
            lr=lr,
            betas=(b1, b2),
            eps=eps,
            weight_decay=wd,
            amsgrad=ams,
            max_exp_avg_sq=vmax,
            maximize=maxi,
            decoupled=dec,
            bias_correction=bc,
        )
    _core.adam_step_sets(
        [s[0] for s in sets],
        [s[1] for s in sets],
        [s[2] for s in sets],
        [s[3] for s in sets],
        [s[4] for s in sets],
        [step for *_, step in layout],
        [hypers[h] for _, _, h, _ in layout],
    )
    for (n, dt, _, _), got, want in zip(layout, sets, expected):
        rtol = 1e-5 if dt == np.float32 else 1e-13
        for a, b in zip(got, want):
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 10)


def test_one_tuple_for_all_sets_equals_multi_bitwise(rng):
    sets = [_set(rng, n, np.float32, False) for n in (17, 3000, 65)]
    copies = [[a.copy() for a in s[:4]] for s in sets]
    _core.adam_step_sets(
        [s[0] for s in sets],
        [s[1] for s in sets],
        [s[2] for s in sets],
        [s[3] for s in sets],
        [None] * 3,
        4,
        _hyper(lr=0.03),
    )
    fastadam.adam_step_multi(
        [c[0] for c in copies],
        [c[1] for c in copies],
        [c[2] for c in copies],
        [c[3] for c in copies],
        steps=4,
        lr=0.03,
    )
    for s, c in zip(sets, copies):
        for a, b in zip(s[:4], c):
            assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "spoil, error, text",
    [
        (
            lambda a: a["grads"].__setitem__(-1, a["grads"][-1].astype(np.float32)),
            TypeError,
            "grads[2]",
        ),
        (lambda a: a["maxes"].__setitem__(-1, None), ValueError, "max_exp_avg_sqs[2]"),
        (
            lambda a: a["maxes"].__setitem__(0, a["maxes"][-1].copy()),
            ValueError,
            "max_exp_avg_sqs[0]",
        ),
        (lambda a: a["hypers"].__setitem__(-1, _hyper(lr=-1.0, amsgrad=True)), ValueError, "lr"),
        (lambda a: a["steps"].__setitem__(-1, 0), ValueError, "steps[2]"),
        (lambda a: a["exp_avgs"].__setitem__(-1, a["exp_avg_sqs"][-1]), ValueError, "share memory"),
    ],
    ids=["dtype-last", "amsgrad-missing", "amsgrad-unexpected", "bad-lr", "step-0", "overlap"],
)
def test_bad_last_set_writes_nothing(rng, spoil, error, text):
    s0 = _set(rng, 50, np.float32, False)
    s1 = _set(rng, 20, np.float64, False)
    s2 = _set(rng, 30, np.float64, True)
    args = {
        "params": [s0[0], s1[0], s2[0]],
        "grads": [s0[1], s1[1], s2[1]],
        "exp_avgs": [s0[2], s1[2], s2[2]],
        "exp_avg_sqs": [s0[3], s1[3], s2[3]],
        "maxes": [None, None, s2[4]],
        "steps": [1, 1, 1],
        "hypers": [_hyper(), _hyper(), _hyper(amsgrad=True)],
    }
    spoil(args)
    arrays = [a for s in (s0, s1, s2) for a in s if a is not None]
    before = [a.tobytes() for a in arrays]
    with pytest.raises(error, match=text.replace("[", r"\[").replace("]", r"\]")):
        _core.adam_step_sets(
            args["params"],
            args["grads"],
            args["exp_avgs"],
            args["exp_avg_sqs"],
            args["maxes"],
            args["steps"],
            args["hypers"],
        )
    assert [a.tobytes() for a in arrays] == before
