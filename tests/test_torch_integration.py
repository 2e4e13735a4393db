"""fastadam.torch with what PyTorch training loops already use: every kind of lr scheduler,
clip_grad_norm_, torch.amp.GradScaler, torch.compile'd models. Each run is compared with the
same run under the torch.optim namesake."""

from __future__ import annotations

import math
import os

import pytest
from torch_helpers import batch, rel_diff, small_cnn, torch_threads, train

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastadam.torch")

lr_scheduler = torch.optim.lr_scheduler

SCHEDULERS = {
    "StepLR": lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
    # cycles Adam's beta1 (group['betas']) and SGD's momentum as well as lr
    "OneCycleLR": lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=40),
    "CosineAnnealingWarmRestarts": lambda o: lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=10, T_mult=2, eta_min=1e-4
    ),
    "LambdaLR": lambda o: lr_scheduler.LambdaLR(o, lambda t: 1.0 / (1.0 + 0.1 * t)),
    "ReduceLROnPlateau": lambda o: lr_scheduler.ReduceLROnPlateau(
        o, factor=0.5, patience=1, threshold=0.5
    ),
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def seed(rng) -> int:
    return int(rng.integers(2**31))


def twins(seed, make_opt, steps, make_sched=None, before_step=None):
    """The same training under fastadam.torch and torch.optim; returns models, optimizers and
    the lr each group had at the end."""
    out = []
    data = batch(seed + 1)
    for lib in (ft, torch.optim):
        model = small_cnn(seed)
        opt = make_opt(lib, model)
        sched = make_sched(opt) if make_sched else None
        train(model, opt, data, steps, sched, before_step=before_step)
        out.append((model, opt))
    return out


@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_lr_schedulers(name, optimizer, seed):
    def make(lib, model):
        if optimizer == "SGD":
            return lib.SGD(model.parameters(), lr=0.05, momentum=0.9, **_single(lib))
        return lib.Adam(model.parameters(), lr=0.01, **_single(lib))

    (ours, ours_opt), (theirs, theirs_opt) = twins(seed, make, 40, SCHEDULERS[name])
    lrs = [g["lr"] for g in ours_opt.param_groups]
    assert lrs == [g["lr"] for g in theirs_opt.param_groups]
    assert lrs != [0.05 if optimizer == "SGD" else 0.01]  # the schedule moved the lr
    if name == "OneCycleLR":
        key = "betas" if optimizer == "Adam" else "momentum"
        assert ours_opt.param_groups[0][key] == theirs_opt.param_groups[0][key]
    assert rel_diff(ours, theirs) <= 1e-5


def test_tensor_lr_updated_in_place_by_a_scheduler(seed):
    """torch's schedulers fill a tensor lr in place: every step must read it."""

    def make(lib, model):
        return lib.Adam(model.parameters(), lr=torch.tensor(0.01), **_single(lib))

    (ours, ours_opt), (theirs, _) = twins(seed, make, 30, lambda o: lr_scheduler.StepLR(o, 5, 0.5))
    assert isinstance(ours_opt.param_groups[0]["lr"], torch.Tensor)
    assert float(ours_opt.param_groups[0]["lr"]) == pytest.approx(0.01 * 0.5**6)
    assert rel_diff(ours, theirs) <= 1e-5


def test_clip_grad_norm(seed):
    norms = {}

    def clip(model):
        norms.setdefault(id(model), []).append(
            float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05))
        )

    (ours, _), (theirs, _) = twins(
        seed,
        lambda lib, m: lib.AdamW(m.parameters(), lr=1e-2, **_single(lib)),
        30,
        before_step=clip,
    )
    first, second = norms.values()
    assert max(first) > 0.05  # the clip was active
    assert first == pytest.approx(second, rel=1e-4)
    assert rel_diff(ours, theirs) <= 1e-5


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "autocast_bfloat16"])
def test_grad_scaler_cpu_and_a_skipped_step(autocast, seed):
    """torch.amp.GradScaler("cpu") unscales the gradients and skips the step when they hold an
    inf (here step 5): the skipped step leaves parameters and state as they were. Under
    bfloat16 autocast the forward pass rounds to 8 bits, so float32-level differences between
    the two optimizers can flip a rounding: the runs agree to bfloat16's precision there."""
    data = batch(seed + 1)
    runs = []
    for lib in (ft, torch.optim):
        model = small_cnn(seed)
        opt = lib.Adam(model.parameters(), lr=1e-2, **_single(lib))
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
        x, y = data
        skipped = None
        for t in range(12):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            if t == 5:
                next(model.parameters()).grad[0, 0, 0, 0] = math.inf
                before = [p.detach().clone() for p in model.parameters()]
            scaler.step(opt)
            scaler.update()
            if t == 5:
                skipped = all(
                    torch.equal(a, p.detach()) for a, p in zip(before, model.parameters())
                )
        runs.append((model, opt, scaler, skipped))
    (ours, ours_opt, ours_scaler, ours_skip), (theirs, _, theirs_scaler, _) = runs
    assert ours_skip
    assert ours_scaler.get_scale() == theirs_scaler.get_scale() < 2.0**12
    p = next(ours.parameters())
    assert float(ours_opt.state[p]["step"]) == 11  # 12 steps, one skipped
    assert rel_diff(ours, theirs) <= (1e-2 if autocast else 1e-5)


BACKENDS = ["aot_eager", "inductor"]


# torch.compile's own modules raise DeprecationWarnings of torch's (torch.jit) on import.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_model(backend, seed):
    """A torch.compile'd model trained by fastadam.torch (the step runs eagerly, outside the
    graph) follows the eager model trained by torch.optim.Adam."""
    if backend == "inductor" and not os.environ.get("FASTADAM_TEST_INDUCTOR"):
        pytest.skip(
            "inductor compiles C++ kernels: about 2 minutes on a 2-core machine; set "
            "FASTADAM_TEST_INDUCTOR=1 to run it (aot_eager covers dynamo and AOTAutograd)"
        )
    try:
        import torch._dynamo
    except ImportError as exc:  # pragma: no cover - depends on the build
        pytest.skip(f"torch.compile is unavailable here: {exc}")
    data = batch(seed + 1)
    eager = small_cnn(seed)
    train(eager, torch.optim.Adam(eager.parameters(), lr=1e-2, foreach=False), data, 15)
    model = small_cnn(seed)
    compiled = torch.compile(model, backend=backend)
    opt = ft.Adam(compiled.parameters(), lr=1e-2)
    try:
        losses = train(compiled, opt, data, 15)
    except Exception as exc:
        if "Compile" in type(exc).__name__ or "compiler" in str(exc).lower():
            pytest.skip(f"torch.compile cannot build here: {type(exc).__name__}: {exc}")
        raise
    assert losses[-1] < losses[0]
    assert rel_diff(model, eager) <= (1e-5 if backend == "aot_eager" else 1e-4)


def _single(lib):
    """torch's single-tensor implementation, the closest in rounding to fastadam's."""
    return {"foreach": False} if lib is torch.optim else {}
