"""fastadam.torch: torch.optim optimizers over fastadam's native step. Constructor, groups, hooks,
parity with torch.optim over 200 training steps, state dicts both ways, zero copies, one native
call per step, no allocation per step, autograd version counters, layouts, errors."""

from __future__ import annotations

import copy
import functools
import inspect
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from torch_helpers import batch, rel_diff, small_cnn, torch_threads, train

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastadam.torch")

import fastadam
import fastadam.optim.adam as numpy_adam

PAIRS = {
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "SGD": torch.optim.SGD,
    "Adagrad": torch.optim.Adagrad,
}

# The parity bar: 200 steps of a small model (StepLR halving lr every 50 steps), max |diff| /
# max |p| against torch.optim's single-tensor (foreach=False) implementation, <= 1e-5. fastadam
# and torch round differently (no FMA here; torch's lerp, addcmul and addcdiv fuse), and
# training carries each rounding difference forward. The growth is heavy-tailed: Adam's
# normalised step turns a rounding-sized change of a tiny gradient (v ~ 1e-11) into an lr-sized
# change of its parameter. Measured over 30 fresh seeds per Adam case at lr 3e-3: medians
# 6.5e-7..1.0e-6, maxima 3.5e-6..9.4e-6; torch's own fused kernel against the same loop:
# medians 4.9e-7..7.4e-7, maxima 1.8e-6..6.0e-6 (at lr 1e-3 it exceeded 1e-5 on 1 seed in 30).
# So each case runs three fresh seeds: the median must meet the bar, and every seed must stay
# within 3e-5 (a real difference of semantics shows as 1e-3 or more).
PARITY = {
    "adam": ("Adam", {"lr": 3e-3}),
    "adamw": ("AdamW", {"lr": 3e-3, "weight_decay": 0.1}),
    "amsgrad": ("Adam", {"lr": 3e-3, "amsgrad": True}),
    "maximize": ("Adam", {"lr": 3e-3, "maximize": True}),
    "weight_decay": ("Adam", {"lr": 3e-3, "weight_decay": 0.1}),
    "adamw_amsgrad_betas": (
        "AdamW",
        {"lr": 3e-3, "betas": (0.8, 0.99), "amsgrad": True, "eps": 1e-6},
    ),
    "sgd_nesterov": ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    "sgd_dampening": ("SGD", {"lr": 0.1, "momentum": 0.8, "dampening": 0.3}),
    "sgd_plain": ("SGD", {"lr": 0.1}),
    "adagrad": (
        "Adagrad",
        {"lr": 0.05, "lr_decay": 1e-3, "weight_decay": 1e-3, "initial_accumulator_value": 0.1},
    ),
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def seed(rng) -> int:
    return int(rng.integers(2**31))


def trained(cls, seed, options, extra=None, channels_last=False, steps=200, scheduler=True):
    """(model, optimizer) after `steps` steps of cls on the seed's model and batch."""
    model = small_cnn(seed, channels_last)
    opt = cls(model.parameters(), **options, **(extra or {}))
    sched = torch.optim.lr_scheduler.StepLR(opt, 50, 0.5) if scheduler else None
    # maximize ascends: give it the negated loss, so both runs still learn
    sign = -1.0 if options.get("maximize", False) else 1.0
    train(model, opt, batch(seed + 1), steps, sched, sign=sign)
    return model, opt


def pair(name, seed, options, channels_last=False, steps=200, scheduler=True):
    """The same model trained by fastadam.torch.<name> and torch.optim.<name>."""
    return [
        trained(cls, seed, options, extra, channels_last, steps, scheduler)
        for cls, extra in ((getattr(ft, name), {}), (PAIRS[name], {"foreach": False}))
    ]


# -- the class ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAIRS)
def test_signature_and_defaults_are_torchs(name):
    ours = inspect.signature(getattr(ft, name)).parameters
    theirs = inspect.signature(PAIRS[name]).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for key, p in theirs.items():
        assert (ours[key].kind, ours[key].default) == (p.kind, p.default), key
    extra = [p for key, p in ours.items() if key not in theirs]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)
    assert issubclass(getattr(ft, name), torch.optim.Optimizer)


@pytest.mark.parametrize("option", [{"state_bits": 8}, {"state_bits": 32}, {"min_8bit_size": 0}])
def test_8bit_state_options_are_refused_not_ignored(option):
    """The NumPy classes' 8-bit state has no torch-layer counterpart yet: asking for it is an
    error, never float32 state in silence."""
    assert "state_bits" not in inspect.signature(ft.Adam).parameters
    p = torch.nn.Parameter(torch.zeros(5000))
    with pytest.raises(TypeError, match="fastadam.torch"):
        ft.AdamW([p], **option)


@pytest.mark.parametrize("name", PAIRS)
def test_groups_and_defaults_hold_torchs_keys(name):
    model = small_cnn(0)
    ours = getattr(ft, name)(model.parameters())
    theirs = PAIRS[name](small_cnn(0).parameters())
    assert ours.defaults.items() >= {k: v for k, v in theirs.defaults.items()}.items()
    assert set(ours.param_groups[0]) >= set(theirs.param_groups[0])


def test_import_fastadam_does_not_import_torch():
    code = "import sys, fastadam; fastadam.Adam; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0


def test_import_without_torch_says_how_to_install():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        import fastadam
        try:
            import fastadam.torch
        except ImportError as exc:
            print(exc)
        else:
            sys.exit("imported")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "pip install torch" in out.stdout and "fastadam.torch needs PyTorch" in out.stdout


def test_bad_hyper_parameters_raise_torchs_errors():
    params = small_cnn(0).parameters()
    with pytest.raises(ValueError, match="Invalid learning rate"):
        ft.Adam(params, lr=-1.0)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        ft.Adam(small_cnn(0).parameters(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid momentum"):
        ft.SGD(small_cnn(0).parameters(), momentum=-0.1)
    with pytest.raises(ValueError, match="differentiable"):
        ft.Adam(small_cnn(0).parameters(), differentiable=True)
    with pytest.raises(ValueError, match="capturable"):
        ft.AdamW(small_cnn(0).parameters(), capturable=True)
    with pytest.raises(ValueError, match="Invalid epsilon"):
        ft.Adam([{"params": list(small_cnn(0).parameters()), "eps": -1.0}])
    with pytest.raises(ValueError, match="empty parameter list"):
        ft.Adam([])
    opt = ft.Adam(small_cnn(0).parameters())
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))], "lr": -2.0})
    assert len(opt.param_groups) == 1


def test_generated_class_for_a_later_optimizer_behaves_like_the_declared_one(seed):
    """A fastadam.optim optimizer with a torch.optim namesake gets its torch class from
    ``generated`` with no new code; here SGD stands in for a later one."""
    made = ft.generated(fastadam.optim.SGD)
    assert issubclass(made, ft.Optimizer) and made is not ft.SGD
    assert inspect.signature(made) == inspect.signature(ft.SGD)
    runs = []
    for cls in (made, ft.SGD):
        model = small_cnn(seed)
        train(model, cls(model.parameters(), lr=0.1, momentum=0.9), batch(seed + 1), 10)
        runs.append(model)
    assert rel_diff(*runs) == 0.0
    with pytest.raises(ValueError, match="no optimizer named"):
        ft.generated(type("Nothing", (fastadam.optim.SGD,), {}))


def test_hooks_zero_grad_and_closure():
    model = small_cnn(0)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o)))
    handle = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o)))
    x, y = batch(1)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure)
    assert calls == [("pre", opt), ("post", opt)]
    handle.remove()
    second = opt.step(closure)
    assert len(calls) == 3 and second.item() < first.item()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


# -- parity with torch.optim -------------------------------------------------------------------


@pytest.mark.parametrize("case", PARITY.values(), ids=PARITY.keys())
def test_200_steps_match_torch(case, seed):
    """200 steps of a small CNN: max|diff| / max|p| against torch's loop, median of three seeds
    <= 1e-5, each <= 3e-5, or, on a seed whose training amplifies rounding more than that, no
    more than 5x as far as torch's own loop moves when its lr changes by one float32 ulp."""
    name, options = case
    seeds = (seed, seed + 1, seed + 2)
    runs = [pair(name, s, options) for s in seeds]
    diffs = [rel_diff(ours, theirs) for (ours, _), (theirs, _) in runs]
    assert sorted(diffs)[1] <= 1e-5, diffs  # the median of three
    for s, d, (_, (theirs, _)) in zip(seeds, diffs, runs):
        if d > 3e-5:
            # Measured: such seeds are rare (none in 30 AdamW seeds, the worst 4.4e-6); on one,
            # fastadam was 3.5e-5 from torch's loop and the loop itself moved 1.75e-5 for an lr
            # one float32 ulp larger (on ordinary seeds fastadam is 1.1-1.5x that distance):
            # rounding amplified by the training, not a different update.
            nudged = dict(options, lr=options["lr"] * (1 + 2**-23))
            moved, _ = trained(PAIRS[name], s, nudged, {"foreach": False})
            sensitivity = rel_diff(moved, theirs)
            assert d <= 5 * sensitivity, (diffs, s, sensitivity)
    (ours, ours_opt), (theirs, theirs_opt) = runs[0]
    assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"]  # StepLR ran
    for p, q in zip(ours.parameters(), theirs.parameters()):
        s, t = ours_opt.state[p], theirs_opt.state[q]
        assert set(s) == set(t)
        for key in s:
            if s[key] is None or t[key] is None:
                assert s[key] is t[key]
                continue
            assert s[key].dtype == t[key].dtype and s[key].shape == t[key].shape
            assert s[key].stride() == t[key].stride()
            np.testing.assert_allclose(s[key].numpy(), t[key].numpy(), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_channels_last_parameters_match_torch(name, seed):
    options = {"lr": 1e-2} if name == "Adam" else {"lr": 0.1, "momentum": 0.9}
    (ours, ours_opt), (theirs, _) = pair(name, seed, options, channels_last=True, steps=30)
    conv = ours[0].weight
    assert not conv.is_contiguous() and conv.is_contiguous(memory_format=torch.channels_last)
    assert rel_diff(ours, theirs) <= 1e-5
    for key, t in ours_opt.state[conv].items():
        if t.dim():
            assert t.stride() == conv.stride(), key  # the state takes the parameter's layout


def test_float64_and_float32_groups_in_one_native_call(seed, monkeypatch):
    ours, theirs = small_cnn(seed), small_cnn(seed)
    for m in (ours, theirs):
        m[5].double()  # the last layer in float64
    calls = []
    real = numpy_adam._adam_step_sets

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(numpy_adam, "_adam_step_sets", spy)
    groups = lambda m: [
        {"params": list(m[0].parameters()) + list(m[3].parameters())},
        {"params": list(m[5].parameters()), "lr": 3e-3, "weight_decay": 0.01},
    ]
    opt = ft.Adam(groups(ours), lr=1e-2)
    ref = torch.optim.Adam(groups(theirs), lr=1e-2, foreach=False)
    x, y = batch(seed + 1)
    for model, o in ((ours, opt), (theirs, ref)):
        for _ in range(20):
            o.zero_grad()
            out = model[4](model[3](model[2](model[1](model[0](x)))))
            loss = torch.nn.functional.cross_entropy(model[5](out.double()), y)
            loss.backward()
            o.step()
    assert len(calls) == 20  # one native call per step for both groups and both dtypes
    params, _, _, _, _, _, hypers = calls[-1][:7]
    assert {a.dtype for a in params} == {np.dtype(np.float32), np.dtype(np.float64)}
    assert {h[0] for h in hypers} == {1e-2, 3e-3}
    assert rel_diff(ours, theirs) <= 1e-5


# -- zero copies, fresh gradients, no allocation, version counters -----------------------------


def test_native_call_gets_views_of_the_tensors_own_memory(seed, monkeypatch):
    model = small_cnn(seed)
    opt = ft.Adam(model.parameters(), amsgrad=True)
    seen = []
    real = numpy_adam._adam_step_sets
    monkeypatch.setattr(numpy_adam, "_adam_step_sets", lambda *a: (seen.append(a), real(*a))[1])
    data = batch(seed + 1)
    for _ in range(3):
        train(model, opt, data, 1)
        params, grads, ms, vs, maxes, _, _ = seen[-1][:7]
        for i, p in enumerate(model.parameters()):
            s = opt.state[p]
            assert np.shares_memory(params[i], p.detach().numpy())
            assert np.shares_memory(grads[i], p.grad.numpy())  # this step's gradient tensor
            for arrays, key in ((ms, "exp_avg"), (vs, "exp_avg_sq"), (maxes, "max_exp_avg_sq")):
                assert np.shares_memory(arrays[i], s[key].numpy())
    ptrs = [(p.data_ptr(), opt.state[p]["exp_avg"].data_ptr()) for p in model.parameters()]
    train(model, opt, data, 5)
    assert ptrs == [(p.data_ptr(), opt.state[p]["exp_avg"].data_ptr()) for p in model.parameters()]


def test_gradients_are_read_afresh_every_step(seed):
    """The trap of views cached across steps: zero_grad() sets grads to None and backward
    makes new tensors; a step must read them, and skip a parameter whose grad is None."""
    p = torch.nn.Parameter(torch.zeros(5))
    q = torch.nn.Parameter(torch.zeros(5))
    opt = ft.SGD([p, q], lr=1.0)
    p.grad = torch.ones(5)
    q.grad = torch.ones(5)
    opt.step()
    opt.zero_grad()
    p.grad = torch.full((5,), 2.0)  # a new tensor; q keeps no gradient
    opt.step()
    assert torch.equal(p.detach(), torch.full((5,), -3.0))
    assert torch.equal(q.detach(), torch.full((5,), -1.0))
    p.grad.fill_(10.0)  # the same tensor, changed in place
    opt.step()
    assert torch.equal(p.detach(), torch.full((5,), -13.0))
    adam = ft.Adam([p, q])
    p.grad = torch.ones(5)
    adam.step()
    assert set(adam.state) == {p}  # q had no gradient: no state, as torch
    assert float(adam.state[p]["step"]) == 1.0


def test_a_step_allocates_nothing_proportional_to_the_model(seed):
    """Profiled with torch's memory counters (the CPU allocator) and tracemalloc (NumPy and
    Python): the steady-state step allocates nothing of the model's size. torch's foreach Adam
    is the control that the measure sees allocations."""
    import tracemalloc

    from torch.profiler import ProfilerActivity, profile

    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.Linear(512, 512))
    model_bytes = sum(p.numel() * 4 for p in model.parameters())
    for p in model.parameters():
        p.grad = torch.randn_like(p)

    def allocated(opt):
        opt.step()
        opt.step()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            opt.step()
        torch_bytes = sum(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0)
        tracemalloc.start()
        try:
            opt.step()
            python_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return torch_bytes, python_peak

    torch_bytes, python_peak = allocated(ft.Adam(model.parameters()))
    assert torch_bytes == 0 and python_peak < 20_000
    control, _ = allocated(torch.optim.Adam(model.parameters(), foreach=True))
    assert control >= model_bytes


def test_version_counters_are_bumped_as_by_in_place_ops():
    p = torch.nn.Parameter(torch.randn(8))
    opt = ft.Adam([p])
    x = torch.randn(8)
    y = (p * p * x).sum()  # saves p for backward
    p.grad = torch.randn(8)
    before = p._version
    opt.step()
    assert p._version > before
    s = opt.state[p]
    versions = {k: t._version for k, t in s.items()}
    p.grad = torch.randn(8)
    opt.step()
    assert all(t._version > versions[k] for k, t in s.items())
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()  # autograd notices, as after torch.optim's in-place update


# -- state dicts -------------------------------------------------------------------------------


def _state_layout(opt, model):
    out = []
    for p in model.parameters():
        s = opt.state[p]
        out.append({k: (type(v), v.dtype, tuple(v.shape), v.stride()) for k, v in s.items()})
    return out


@pytest.mark.parametrize(
    "name,options",
    [
        ("Adam", {"lr": 1e-2, "amsgrad": True}),
        ("AdamW", {"lr": 1e-2}),
        ("SGD", {"lr": 0.1, "momentum": 0.9}),
        ("Adagrad", {"lr": 0.05}),
    ],
)
def test_state_dict_round_trips_with_torch_continue_the_trajectory(name, options, seed):
    """fastadam.torch -> torch.optim and torch.optim -> fastadam.torch, through torch.save and
    torch.load(weights_only=True), after 20 steps; 30 more steps agree with an uninterrupted run
    to float32 rounding."""
    data = batch(seed + 1)
    ours_cls, theirs_cls = getattr(ft, name), PAIRS[name]
    for first, second in ((ours_cls, theirs_cls), (theirs_cls, ours_cls)):
        model = small_cnn(seed)
        opt = first(model.parameters(), **options)
        train(model, opt, data, 20)
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        if first is ours_cls:  # torch's own state after the same steps: the same layout
            ref_model = small_cnn(seed)
            ref = theirs_cls(ref_model.parameters(), **options)
            train(ref_model, ref, data, 20)
            assert _state_layout(opt, model) == _state_layout(ref, ref_model)
            step = saved["opt"]["state"][0].get("step")
            if step is not None:
                assert step.dtype == torch.float32 and step.dim() == 0 and float(step) == 20
        resumed = small_cnn(seed + 7)
        resumed.load_state_dict(saved["model"])
        opt2 = second(resumed.parameters(), **options)
        opt2.load_state_dict(saved["opt"])
        train(resumed, opt2, data, 30)
        train(model, opt, data, 30)  # the uninterrupted run
        assert rel_diff(resumed, model) <= 1e-5, (first, second)


def test_loaded_state_is_copied_into_the_optimizers_own_memory(seed):
    model = small_cnn(seed)
    src = torch.optim.Adam(model.parameters())
    train(model, src, batch(seed + 1), 3)
    sd = src.state_dict()
    opt = ft.Adam(model.parameters())
    opt.load_state_dict(sd)
    for p in model.parameters():
        for key, t in opt.state[p].items():
            assert t.data_ptr() != sd["state"][0][key].data_ptr()
    before = {k: v.clone() for k, v in sd["state"][0].items()}
    train(model, opt, batch(seed + 1), 2)
    assert all(torch.equal(before[k], v) for k, v in sd["state"][0].items())  # untouched
    assert float(opt.state[next(model.parameters())]["step"]) == 5


def test_pickle_and_deepcopy(seed):
    model = small_cnn(seed)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    data = batch(seed + 1)
    train(model, opt, data, 3)
    twin_model = copy.deepcopy(model)
    twin = ft.Adam(twin_model.parameters(), lr=1e-2)
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    clone = copy.deepcopy(opt)  # pickles through __getstate__/__setstate__
    assert isinstance(clone, ft.Adam) and len(clone.state) == len(opt.state)
    train(model, opt, data, 5)
    train(twin_model, twin, data, 5)
    assert rel_diff(model, twin_model) == 0.0


def test_numpy_state_dicts_convert_both_ways(seed):
    """fastadam.Adam (NumPy) -> torch.optim.Adam and back with one function each way; the
    trajectories continue as if uninterrupted."""
    data = batch(seed + 1)
    x, y = data
    model = small_cnn(seed)
    arrays = [p.detach().numpy() for p in model.parameters()]
    numpy_opt = fastadam.Adam(arrays, lr=1e-2, amsgrad=True)

    def numpy_steps(model, opt, n):
        for _ in range(n):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step([p.grad.numpy() for p in model.parameters()])

    numpy_steps(model, numpy_opt, 10)
    sd = ft.to_torch_state_dict(numpy_opt.state_dict())
    assert isinstance(sd["state"][0]["exp_avg"], torch.Tensor)
    assert sd["state"][0]["step"].dtype == torch.float32 and sd["state"][0]["step"].dim() == 0
    assert "bias_correction" not in sd["param_groups"][0]
    resumed = copy.deepcopy(model)
    torch_opt = torch.optim.Adam(resumed.parameters(), lr=1e-2, amsgrad=True, foreach=False)
    torch_opt.load_state_dict(sd)
    train(resumed, torch_opt, data, 10)
    numpy_steps(model, numpy_opt, 10)
    assert rel_diff(resumed, model) <= 1e-5

    back = ft.from_torch_state_dict(torch_opt.state_dict())
    assert isinstance(back["state"][0]["exp_avg"], np.ndarray)
    assert "foreach" not in back["param_groups"][0]
    again = copy.deepcopy(resumed)
    again_opt = fastadam.Adam(
        [p.detach().numpy() for p in again.parameters()], lr=1e-2, amsgrad=True
    )
    again_opt.load_state_dict(back)
    numpy_steps(again, again_opt, 10)
    train(resumed, torch_opt, data, 10)
    assert rel_diff(again, resumed) <= 1e-5
    with pytest.raises(ValueError, match="bias_correction=False"):
        ft.to_torch_state_dict(fastadam.Adam(arrays, bias_correction=False).state_dict())


# -- state replaced, parameters moved, groups changed ------------------------------------------


def test_state_and_parameters_replaced_between_steps_are_honoured(seed):
    p = torch.nn.Parameter(torch.ones(6))
    opt = ft.SGD([p], lr=1.0, momentum=0.5)
    p.grad = torch.ones(6)
    opt.step()  # buffer = 1, p = 0
    opt.state[p]["momentum_buffer"] = torch.full((6,), 10.0)  # replaced by the user
    opt.step()  # buffer = 0.5 * 10 + 1 = 6
    assert torch.equal(opt.state[p]["momentum_buffer"], torch.full((6,), 6.0))
    assert torch.equal(p.detach(), torch.full((6,), -6.0))
    p.data = torch.zeros(6)  # new storage
    opt.step()  # buffer = 4, p = -4
    assert torch.equal(p.detach(), torch.full((6,), -4.0))
    opt.state[p] = {"momentum_buffer": torch.zeros(6)}  # a whole new state dict
    opt.step()
    assert torch.equal(p.detach(), torch.full((6,), -5.0))
    r = torch.nn.Parameter(torch.ones(2))
    r.grad = torch.ones(2)
    opt.param_groups[0]["params"].append(r)  # edited in place: torch steps it, so do we
    opt.step()
    assert torch.equal(r.detach(), torch.zeros(2))


def test_edits_of_any_parameters_state_between_steps_match_torch(seed):
    """The steady-state step spots an edit of any one parameter's state among many (a value
    replaced, a state dict replaced or removed) and steps exactly as torch.optim.Adam does."""
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(n, generator=gen) for n in (5, 64, 7)]
    grads = [[torch.randn(n, generator=gen) for n in (5, 64, 7)] for _ in range(6)]
    edits = [
        lambda opt, ps: None,
        lambda opt, ps: None,
        lambda opt, ps: opt.state[ps[1]].__setitem__("exp_avg", torch.full((64,), 0.5)),
        lambda opt, ps: opt.state.__setitem__(ps[2], {}),
        lambda opt, ps: opt.state.pop(ps[0]),
        lambda opt, ps: opt.state[ps[1]].__setitem__("step", torch.tensor(1.0)),
    ]
    results = []
    for cls, extra in ((ft.Adam, {}), (torch.optim.Adam, {"foreach": False})):
        ps = [torch.nn.Parameter(t.clone()) for t in start]
        opt = cls(ps, lr=1e-2, **extra)
        for edit, gs in zip(edits, grads):
            edit(opt, ps)
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        results.append([p.detach().clone() for p in ps])
    for ours, theirs in zip(*results):
        assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_steady_state_step_sees_new_gradients_options_and_groups(seed):
    """What the steady-state check compares, each changed between steps as a training loop
    might: a parameter without a gradient (frozen) gets one, an option is edited in place, a
    gradient goes back to None, a group is appended to param_groups directly; every step
    matches torch.optim.Adam's."""
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(n, generator=gen) for n in (8, 3, 5)]
    grads = [[torch.randn(n, generator=gen) for n in (8, 3, 5)] for _ in range(7)]
    plan = [
        ({0}, None),
        ({0}, None),  # steady state: only p0 has a gradient
        ({0, 1}, None),  # p1 gets its first gradient
        ({0, 1}, ("lr", 0.05)),  # edited in place, as a scheduler does
        ({1}, ("betas", (0.8, 0.99))),  # p0's gradient back to None
        ({0, 1, 2}, "group"),  # p2 in a new group appended to param_groups directly
        ({0, 1, 2}, None),
    ]
    results = []
    for cls in (ft.Adam, functools.partial(torch.optim.Adam, foreach=False)):
        ps = [torch.nn.Parameter(t.clone()) for t in start]
        opt = cls(ps[:2], lr=1e-2)
        for (with_grad, change), gs in zip(plan, grads):
            if change == "group":
                group = {**opt.defaults, "params": [ps[2]]}
                opt.param_groups.append(group)
            elif change is not None:
                opt.param_groups[0][change[0]] = change[1]
            for i, (p, g) in enumerate(zip(ps, gs)):
                p.grad = g.clone() if i in with_grad else None
            opt.step()
            results.append([p.detach().clone() for p in ps])
    half = len(results) // 2
    for ours, theirs in zip(results[:half], results[half:]):
        for a, b in zip(ours, theirs):
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


def test_lr_tensor_changed_in_place_is_read_every_step():
    p = torch.nn.Parameter(torch.zeros(3))
    lr = torch.tensor(1.0)
    opt = ft.SGD([p], lr=lr)
    p.grad = torch.ones(3)
    opt.step()
    lr.fill_(0.5)  # as LRScheduler updates a tensor lr
    opt.step()
    assert torch.allclose(p.detach(), torch.full((3,), -1.5))


def test_add_param_group_and_adagrad_eager_state(seed):
    model = small_cnn(seed)
    layers = list(model.parameters())
    opt = ft.Adagrad(layers[:2], lr=0.1, initial_accumulator_value=0.5)
    assert all(
        float(opt.state[p]["step"]) == 0 and torch.all(opt.state[p]["sum"] == 0.5)
        for p in layers[:2]
    )
    opt.add_param_group({"params": layers[2:], "lr": 0.01, "initial_accumulator_value": 0.25})
    assert all(torch.all(opt.state[p]["sum"] == 0.25) for p in layers[2:])
    ref = torch.optim.Adagrad(small_cnn(seed).parameters(), lr=0.1)
    assert ref.param_groups[0].keys() <= opt.param_groups[1].keys()
    train(model, opt, batch(seed + 1), 3)
    assert all(float(opt.state[p]["step"]) == 3 for p in layers)


def test_named_parameters_are_accepted():
    model = small_cnn(0)
    opt = ft.Adam(model.named_parameters())
    assert opt.param_groups[0]["param_names"][0] == "0.weight"
    train(model, opt, batch(1), 2)
    assert opt.state_dict()["param_groups"][0]["param_names"][0] == "0.weight"


# -- what cannot be stepped --------------------------------------------------------------------


def test_parameters_that_cannot_be_stepped_raise_clear_errors():
    with pytest.raises(ValueError, match="not dense"):
        ft.Adam([torch.nn.Parameter(torch.randn(4, 8)[:, ::2])])
    with pytest.raises(TypeError, match="CPU tensors"):
        ft.Adam([torch.nn.Parameter(torch.empty(4, device="meta"))])
    with pytest.raises(TypeError, match="float32 or float64"):
        ft.SGD([torch.zeros(4, dtype=torch.int32)])
    with pytest.raises(TypeError, match="float32 or float64"):
        ft.SGD([torch.nn.Parameter(torch.zeros(4, dtype=torch.complex64))])


def test_sparse_gradients_are_refused_and_nothing_changes():
    emb = torch.nn.Embedding(10, 4, sparse=True)
    opt = ft.Adam(emb.parameters())
    before = emb.weight.detach().clone()
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()
    assert torch.equal(emb.weight.detach(), before) and len(opt.state) == 0


def test_a_refused_step_creates_no_state():
    base = torch.zeros(12)
    a = torch.nn.Parameter(base[0:8])  # two parameters over one storage, overlapping
    b = torch.nn.Parameter(base[4:12])
    opt = ft.Adam([a, b])
    a.grad, b.grad = torch.ones(8), torch.ones(8)
    with pytest.raises(ValueError, match="share memory|overlap"):
        opt.step()
    assert len(opt.state) == 0 and torch.count_nonzero(base) == 0


def test_gradients_needing_care_still_step_correctly():
    """A gradient laid out otherwise than its parameter (read from a copy in the parameter's
    layout: it is only read), or one that requires grad (create_graph), or of another dtype."""
    p = torch.nn.Parameter(torch.zeros(4, 3))
    opt = ft.SGD([p], lr=1.0)
    p.grad = torch.arange(12.0).reshape(3, 4).t()  # transposed: not contiguous
    opt.step()
    assert torch.equal(p.detach(), -torch.arange(12.0).reshape(3, 4).t())
    q = torch.nn.Parameter(torch.ones(3))
    opt2 = ft.SGD([q], lr=0.5)
    q.grad = torch.full((3,), 2.0).requires_grad_()  # as after backward(create_graph=True)
    opt2.step()
    assert torch.equal(q.detach(), torch.zeros(3))
    q.grad.data = torch.ones(3, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"grad is torch.float64, its parameter torch.float32"):
        opt2.step()


def test_params_without_requires_grad_are_skipped_like_torch(seed):
    model = small_cnn(seed)
    model[0].weight.requires_grad_(False)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    frozen = model[0].weight.detach().clone()
    train(model, opt, batch(seed + 1), 3)
    assert torch.equal(model[0].weight.detach(), frozen)
    assert model[0].weight not in opt.state and len(opt.state) == 5


@pytest.mark.skipif(os.environ.get("FASTADAM_ISA") is not None, reason="one ISA forced")
def test_every_isa_steps_the_same_bits(seed):
    """The torch layer adds nothing per ISA; the native step stays bitwise identical."""
    results = []
    previous = fastadam.get_isa()
    try:
        for isa in fastadam.available_isas():
            fastadam.set_isa(isa)
            model = small_cnn(seed)
            train(model, ft.Adam(model.parameters(), lr=1e-2), batch(seed + 1), 5)
            results.append(model)
    finally:
        fastadam.set_isa(previous)
    assert all(rel_diff(m, results[0]) == 0.0 for m in results)


# -- memory moved under the same tensor objects between steps -----------------------------------


def _twin_runs(name, change, steps=3, n=64, square=False, set_to_none=True):
    """fastadam.torch.<name> and torch.optim.<name> (foreach=False) stepped alike, with
    ``change(opt, p)`` applied to both after the second step; their parameters and states."""
    out = []
    for cls in (getattr(ft, name), getattr(torch.optim, name)):
        torch.manual_seed(0)
        shape = (8, 8) if square else (n,)
        p = torch.nn.Parameter(torch.randn(shape))
        kw = {"foreach": False} if cls is not getattr(ft, name) else {}
        if name == "SGD":
            kw["momentum"] = 0.9
        opt = cls([p], lr=1e-2, **kw)
        g = torch.randn(shape)
        for k in range(steps + 2):
            if k == 2:
                change(opt, p)
            if set_to_none or p.grad is None:
                p.grad = (g * (k + 1)).clone()
            else:
                p.grad.copy_(g * (k + 1))
            opt.step()
        out.append((p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}))
    return out


def _state_tensor(opt, p):
    return next(v for k, v in opt.state[p].items() if k != "step" and v.dim() > 0)


@pytest.mark.parametrize("name", ["Adam", "SGD", "Adagrad", "RMSprop"])
@pytest.mark.parametrize(
    "change",
    [
        lambda opt, p: _state_tensor(opt, p).share_memory_(),
        lambda opt, p: setattr(_state_tensor(opt, p), "data", _state_tensor(opt, p).data.clone()),
    ],
    ids=["share_memory_", "data swapped"],
)
def test_state_storage_moved_under_the_same_tensor_is_followed(name, change):
    """share_memory_() (Hogwild's shared optimizers) or `.data = ...` move a state tensor's
    memory under the same object: the next step writes to the new memory (the plan's old
    views would write to freed memory), as torch.optim does."""
    (p, state), (p_ref, state_ref) = _twin_runs(name, change)
    assert torch.allclose(p, p_ref, rtol=1e-5, atol=1e-7)
    for key, value in state_ref.items():
        assert torch.allclose(state[key].float(), value.float(), rtol=1e-5, atol=1e-7), key


@pytest.mark.parametrize("name", ["Adam", "SGD", "Adagrad"])
def test_a_square_parameter_transposed_in_place_is_followed(name):
    """p.data = p.data.t() keeps the pointer and shape of a square parameter: only its
    strides say that the elements moved."""

    def transpose(opt, p):
        p.data = p.data.t()

    (p, _), (p_ref, _) = _twin_runs(name, transpose, square=True, set_to_none=False)
    assert torch.allclose(p, p_ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_parameter_whose_grad_becomes_none_is_left_out(dtype, channels_last):
    """After steady steps, a parameter with .grad None (zero_grad, an unused branch) is left
    out of the step as torch does; its gradient viewer is not called on None."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(2, 3, 4, 5).to(getattr(torch, dtype)))
    b = torch.nn.Parameter(torch.randn(8).to(getattr(torch, dtype)))
    if channels_last:
        a.data = a.data.contiguous(memory_format=torch.channels_last)
    opt = ft.Adam([a, b], lr=1e-2)
    for _ in range(2):
        a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
        opt.step()
    a.grad = None
    before = a.detach().clone()
    opt.step()
    assert torch.equal(a.detach(), before)
    assert int(opt.state[a]["step"]) == 2 and int(opt.state[b]["step"]) == 3


def test_last_report_is_none_then_the_last_steps():
    w = torch.nn.Parameter(torch.ones(4))
    opt = ft.Adam([w], skip_nonfinite=True)
    assert opt.last_report is None
    w.grad = torch.full((4,), float("inf"))
    opt.step()
    assert opt.last_report.skipped
    w.grad = None
    opt.step()  # no gradient: nothing looked at, nothing skipped
    assert opt.last_report == fastadam.StepReport(False, 0.0)
