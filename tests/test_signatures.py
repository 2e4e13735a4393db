"""The signatures users see agree with what the entries do.

The kernel entries are registered by hand (cpp/python/entry.hpp); their parameter lists are
written once as text that becomes ``__text_signature__`` (what ``inspect.signature`` and
``help()`` show). Here that text is checked against the type stubs in ``_core.pyi``, and its
defaults against the entries' behaviour: a call that leaves every optional argument out gives the
same bytes as one that passes the shown defaults.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

import fastadam
from fastadam import _core

STUB = Path(fastadam.__file__).with_name("_core.pyi")
ENTRIES = [
    "adam_step",
    "adam_step_multi",
    "adam_step_sets",
    "bandwidth_probe",
    "adam8bit_step",
    "adam8bit_step_sets",
    "adam8bit_bandwidth_probe",
    "sgd_step",
    "sgd_step_multi",
    "sgd_step_sets",
    "adagrad_step",
    "adagrad_step_multi",
    "adagrad_step_sets",
    "rmsprop_step_sets",
    "adamax_step_sets",
    "nadam_step_sets",
    "nadam_mu_product",
    "radam_step_sets",
    "swats_step_sets",
    "set_isa",
    "set_num_threads",
]


def stub_parameters(name: str) -> list[tuple[str, str, object]]:
    """(name, kind, default) of each parameter of `name` in _core.pyi."""
    tree = ast.parse(STUB.read_text())
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults
    ]
    out = []
    for k, (arg, default) in enumerate(zip(positional, defaults)):
        kind = "POSITIONAL_ONLY" if k < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append((arg.arg, kind, default))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
        out.append((arg.arg, "KEYWORD_ONLY", value))
    return out


@pytest.mark.parametrize("name", ENTRIES)
def test_signature_matches_the_stub(name):
    shown = [
        (p.name, p.kind.name, p.default)
        for p in inspect.signature(getattr(_core, name)).parameters.values()
    ]
    assert shown == stub_parameters(name)


@pytest.mark.parametrize("name", ENTRIES)
def test_help_shows_the_signature_and_the_doc(name):
    fn = getattr(_core, name)
    assert fn.__doc__ and not fn.__doc__.startswith(name + "(")  # the text signature is split off
    assert fn.__text_signature__.startswith("(")
    assert fn.__module__ == "fastadam._core"


def shown_defaults(fn) -> dict:
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def arrays(rng, count, dtype=np.float32):
    out = [rng.standard_normal(17).astype(dtype) for _ in range(count)]
    out[-1] = np.abs(out[-1])  # exp_avg_sq / state_sum: non-negative
    return out


@pytest.mark.parametrize(
    "fn, count, required",
    [
        (fastadam.adam_step, 4, {"step": 3}),
        (fastadam.sgd_step, 2, {}),
        (fastadam.adagrad_step, 3, {"step": 3}),
    ],
    ids=["adam_step", "sgd_step", "adagrad_step"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shown_defaults_are_the_defaults_used(fn, count, required, dtype, rng):
    left_out = arrays(rng, count, dtype)
    passed = [a.copy() for a in left_out]
    fn(*left_out, **required)
    defaults = shown_defaults(fn)
    fn(*passed, **(defaults | required))
    assert [a.tobytes() for a in left_out] == [a.tobytes() for a in passed]


@pytest.mark.parametrize(
    "fn, count, required",
    [
        (fastadam.adam_step_multi, 4, {"steps": 3}),
        (fastadam.sgd_step_multi, 2, {}),
        (fastadam.adagrad_step_multi, 3, {"steps": 3}),
    ],
    ids=["adam_step_multi", "sgd_step_multi", "adagrad_step_multi"],
)
def test_shown_defaults_of_multi_entries_are_the_defaults_used(fn, count, required, rng):
    left_out = [[a] for a in arrays(rng, count)]
    passed = [[a.copy()] for (a,) in left_out]
    fn(*left_out, **required)
    fn(*passed, **(shown_defaults(fn) | required))
    assert [a.tobytes() for (a,) in left_out] == [a.tobytes() for (a,) in passed]


def test_keywords_built_at_run_time_are_matched():
    """Keyword names are matched by identity first (Python interns the names in source code);
    a name built at run time is not interned and must still be found."""
    rng = np.random.default_rng(0)
    p, g, m, v = arrays(rng, 4)
    twin = [a.copy() for a in (p, g, m, v)]
    step, lr = "STEP".lower(), "LR".lower()  # equal to, but not, the interned constants
    assert step is not sys.intern("step") and lr is not sys.intern("lr")
    fastadam.adam_step(p, g, m, v, **{step: 2, lr: 0.5})
    fastadam.adam_step(*twin, step=2, lr=0.5)
    assert [a.tobytes() for a in (p, g, m, v)] == [a.tobytes() for a in twin]
