"""What a long training run trusts the optimizer classes with: checkpoints that survive a kill or
a full disk, copies and pickles that keep the state, a live state dict, errors in the user's
terms, exact step counts, and state_dict without copies."""

from __future__ import annotations

import copy
import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastadam
from fastadam import SGD, Adagrad, Adam, AdamW
from fastadam.optim import checkpoint

OPTIMIZERS = {
    "Adam": lambda ps: Adam(ps, lr=0.01, amsgrad=True),
    "AdamW": lambda ps: AdamW(ps, lr=0.01),
    "SGD": lambda ps: SGD(ps, lr=0.01, momentum=0.9),
    "Adagrad": lambda ps: Adagrad(ps, lr=0.01),
}


def params_and_grads(rng, dtype=np.float32):
    params = [rng.standard_normal(s).astype(dtype) for s in ((3, 4), (7,), (5,))]
    return params, lambda: [rng.standard_normal(p.shape).astype(dtype) for p in params]


# -- checkpoints -------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import fastadam
    n = int(sys.argv[2])
    p = np.zeros(n, np.float32)
    opt = fastadam.Adam([p], lr=0.0)   # lr 0: p stays 0, the moments record the step
    k = 0
    while True:
        k += 1
        opt.step([np.full(n, float(k), np.float32)])
        print("saving", k, flush=True)
        opt.save(sys.argv[1])
        print("saved", k, flush=True)
    """
)


def check_checkpoint(path, n):
    """The file loads, and holds one whole state: every moment from the same step."""
    p = np.zeros(n, np.float32)
    opt = Adam([p], lr=0.0)
    opt.load(path)
    s = opt.state[p]
    k = s["step"]
    assert k >= 1
    first = s["exp_avg"][0]
    np.testing.assert_array_equal(s["exp_avg"], np.full(n, first, np.float32))
    return k


def test_kill_during_save_leaves_a_loadable_checkpoint(tmp_path):
    n = 2**22  # 16 MiB per state array: a save takes tens of milliseconds
    path = tmp_path / "ckpt.npz"
    rng = np.random.default_rng()
    mid_save = 0
    for run in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            saved, started, took = 0, 0.0, []
            while saved < 2:  # at least one whole checkpoint exists before the kill
                line = child.stdout.readline()
                assert line, "the child stopped early"
                if line.startswith("saving"):
                    started = time.perf_counter()
                elif line.startswith("saved"):
                    saved += 1
                    took.append(time.perf_counter() - started)
            assert child.stdout.readline().startswith("saving")
            # A kill within 1.5 saves' time: most land during this save on a fast machine or a
            # slow one (with a fixed 80 ms window, too few kills landed mid-save once, idle).
            time.sleep(rng.uniform(0.0, 1.5 * min(took)))
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()
        finally:
            child.kill()
            child.wait(timeout=30)
            child.stdout.close()
        mid_save += "saved" not in rest
        check_checkpoint(path, n)
    assert mid_save >= 5, f"only {mid_save} of 20 kills landed during a save"


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, rng):
    params, grads = params_and_grads(rng)
    opt = Adam(params, lr=0.01)
    opt.step(grads())
    path = tmp_path / "ckpt.npz"
    opt.save(path)
    before = path.read_bytes()
    opt.step(grads())

    def disk_full(f, arrays):
        f.write(b"PK" + b"\0" * 1000)  # part of a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_npz", disk_full)
    with pytest.raises(OSError, match="No space left"):
        opt.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # the temporary file is gone
    monkeypatch.undo()
    fresh = Adam([p.copy() for p in params], lr=0.01)
    fresh.load(path)
    assert fresh.state_dict()["state"][0]["step"] == 1


def test_save_writes_exactly_the_path_and_replaces_it(tmp_path, rng):
    params, grads = params_and_grads(rng)
    opt = Adam(params)
    opt.step(grads())
    path = tmp_path / "ckpt"  # no .npz suffix added
    path.write_bytes(b"old")
    opt.save(str(path))
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
    Adam(params).load(path)


def test_a_saved_checkpoint_has_the_mode_open_would_give_it(tmp_path, rng):
    params, grads = params_and_grads(rng)
    opt = Adam(params)
    opt.step(grads())
    old = os.umask(0o022)
    try:
        opt.save(tmp_path / "c.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o644


def damaged_files(tmp_path, good: bytes):
    def write(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    yield "empty", write("empty.npz", b"")
    yield "truncated", write("truncated.npz", good[: len(good) // 2])
    yield "garbage", write("garbage.npz", bytes(range(256)) * 8)
    yield "text", write("text.npz", b"hello, world\n")
    one = tmp_path / "one.npy"
    np.save(one, np.zeros(3))
    yield "npy", one
    nometa = tmp_path / "nometa.npz"
    np.savez(nometa, a=np.zeros(3))
    yield "no-meta", nometa

    def with_meta(name, change):
        with np.load(tmp_path / "good.npz") as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays["meta"].tobytes())
        change(meta)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        p = tmp_path / name
        np.savez(p, **arrays)
        return p

    yield "unknown-class", with_meta("cls.npz", lambda m: m.update({"class": "Lion"}))
    yield "other-class", with_meta("sgd.npz", lambda m: m.update({"class": "SGD"}))
    yield "bad-version", with_meta("ver.npz", lambda m: m.update({"version": 99}))
    yield "no-steps", with_meta("nosteps.npz", lambda m: m.pop("steps"))
    yield "bad-step", with_meta("badstep.npz", lambda m: m["steps"].update({"0": -5}))
    yield "bad-group", with_meta("badgroup.npz", lambda m: m["param_groups"][0].update(lr="x"))
    with zipfile.ZipFile(tmp_path / "good.npz") as z:
        meta_bytes = z.read("meta.npy")
    p = tmp_path / "badjson.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("meta.npy", meta_bytes[:-10] + b"}}}}}}}}}}")
    yield "bad-json", p


def test_every_damaged_or_foreign_file_is_a_value_error_naming_it(tmp_path, rng):
    params, grads = params_and_grads(rng)
    opt = Adam(params, lr=0.01)
    opt.step(grads())
    opt.save(tmp_path / "good.npz")
    good = (tmp_path / "good.npz").read_bytes()
    target = Adam([p.copy() for p in params], lr=0.05)
    target.step(grads())
    before = copy.deepcopy(target.state_dict())
    seen = []
    for kind, path in damaged_files(tmp_path, good):
        with pytest.raises(ValueError, match=str(path.name)) as info:
            target.load(path)
        seen.append(kind)
        assert "Traceback" not in str(info.value)
        after = target.state_dict()
        assert after["param_groups"] == before["param_groups"], kind
        for k in before["state"]:
            for name, value in before["state"][k].items():
                np.testing.assert_array_equal(after["state"][k][name], value, strict=True)
    assert len(seen) == 13
    with pytest.raises(FileNotFoundError):
        target.load(tmp_path / "missing.npz")


def test_save_stores_numpy_scalars_and_small_arrays_as_numbers(tmp_path, rng):
    params, grads = params_and_grads(rng)
    opt = Adam(params, lr=np.float32(0.01), betas=np.array([0.9, 0.99]))
    opt.step(grads())
    # set between steps, as a schedule might: step() takes them, so save() must too
    opt.param_groups[0]["lr"] = np.float32(0.005)
    opt.param_groups[0]["betas"] = np.array([0.8, 0.99])
    opt.param_groups[0]["note"] = np.int64(3)
    opt.step(grads())
    opt.save(tmp_path / "c.npz")
    other = Adam([p.copy() for p in params])
    other.load(tmp_path / "c.npz")
    assert other.param_groups[0]["lr"] == float(np.float32(0.005))
    assert other.param_groups[0]["betas"] == (0.8, 0.99)
    assert other.param_groups[0]["note"] == 3


# -- copies and pickles ------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_and_pickles_carry_params_and_state(name, how, rng):
    params, grads = params_and_grads(rng)
    opt = OPTIMIZERS[name](params)
    for _ in range(3):
        opt.step(grads())
    twin = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    twin_params = [p for g in twin.param_groups for p in g["params"]]
    assert all(a is not b for a, b in zip(params, twin_params))
    assert len(twin.state) == len(opt.state)
    for _ in range(3):
        g = grads()
        opt.step(g)
        twin.step([x.copy() for x in g])
    for a, b in zip(params, twin_params):
        np.testing.assert_array_equal(a, b, strict=True)
    if name != "SGD":
        assert twin.state[twin_params[0]]["step"] == opt.state[params[0]]["step"] == 6


# -- the live state dict -----------------------------------------------------------------------


def test_a_held_state_dict_shows_the_current_step(rng):
    params, grads = params_and_grads(rng)
    opt = Adam(params)
    opt.step(grads())
    held = opt.state[params[0]]
    for _ in range(4):
        opt.step(grads())  # the cached path
    assert held["step"] == 5
    assert held.get("step") == 5
    assert dict(held.items())["step"] == 5
    assert "'step': 5" in repr(held)


def test_edits_of_the_live_state_are_honoured_like_torch(rng):
    torch = pytest.importorskip("torch")
    x0 = rng.standard_normal(64)
    gs = [rng.standard_normal(64) for _ in range(12)]
    ours = x0.copy()
    theirs = torch.tensor(x0.copy())
    opt = Adam([ours], lr=0.05)
    topt = torch.optim.Adam([theirs], lr=0.05)
    for k, g in enumerate(gs):
        if k == 5:  # reset the moments and the step count by replacing them
            opt.state[ours]["exp_avg"] = np.zeros(64)
            opt.state[ours]["exp_avg_sq"] = np.zeros(64)
            opt.state[ours]["step"] = 0
            topt.state[theirs]["exp_avg"] = torch.zeros(64, dtype=torch.float64)
            topt.state[theirs]["exp_avg_sq"] = torch.zeros(64, dtype=torch.float64)
            topt.state[theirs]["step"] = torch.tensor(0.0)
        if k == 8:
            opt.state[ours]["step"] = 100
            topt.state[theirs]["step"] = torch.tensor(100.0)
        opt.step([g])
        theirs.grad = torch.from_numpy(g.copy())
        topt.step()
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12)
    assert opt.state[ours]["step"] == 100 + 12 - 8


def test_a_bad_edit_of_the_state_is_refused_in_the_users_terms(rng):
    f32 = [rng.standard_normal(4).astype(np.float32) for _ in range(3)]
    f64 = [rng.standard_normal(6) for _ in range(2)]
    opt = Adam([{"params": [f32[0], f64[0]]}, {"params": [f32[1], f64[1], f32[2]], "lr": 0.1}])
    grads = [np.ones_like(p) for p in (f32[0], f64[0], f32[1], f64[1], f32[2])]
    opt.step(grads)
    opt.state[f64[1]]["exp_avg"] = np.zeros(6, np.float32)  # wrong dtype
    snapshot = [p.copy() for p in f32 + f64]
    with pytest.raises(TypeError) as info:
        opt.step(grads)
    message = str(info.value)
    assert message.startswith("state[param_groups[1]['params'][1]]['exp_avg'] must have dtype")
    assert "exp_avgs[" not in message
    for p, s in zip(f32 + f64, snapshot):
        np.testing.assert_array_equal(p, s)
    opt.state[f64[1]]["exp_avg"] = np.zeros(6)
    opt.state[f32[2]]["step"] = "five"
    with pytest.raises(TypeError, match=r"state\['step'\]"):
        opt.step(grads)
    for p, s in zip(f32 + f64, snapshot):
        np.testing.assert_array_equal(p, s)


def test_a_bad_gradient_is_named_by_its_index_in_grads(rng):
    a, b = rng.standard_normal(4), rng.standard_normal(5)
    opt = Adam([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match=r"^grads\[1\] must have its parameter's shape"):
        opt.step([np.ones(4), np.ones(4)])


# -- hyper-parameters and step counts ----------------------------------------------------------


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda p: Adam(p, lr="0.1"), "lr"),
        (lambda p: Adam(p, weight_decay="1e-2"), "weight_decay"),
        (lambda p: Adam(p, betas=(0.9, "0.99")), r"betas\[1\]"),
        (lambda p: Adam(p, eps=b"1"), "eps"),
        (lambda p: AdamW(p, lr=[0.1]), "lr"),
        (lambda p: SGD(p, momentum="0.9"), "momentum"),
        (lambda p: Adagrad(p, lr_decay="0"), "lr_decay"),
    ],
)
def test_strings_and_sequences_are_not_numbers(make, name, rng):
    with pytest.raises(TypeError, match=f"^{name} must be a real number"):
        make([rng.standard_normal(3)])


def test_numpy_scalars_are_numbers(rng):
    p = rng.standard_normal(3)
    opt = Adam([p], lr=np.float32(0.5), betas=(np.float64(0.9), 0.99), eps=np.array(1e-8))
    assert opt.param_groups[0]["lr"] == 0.5 and type(opt.param_groups[0]["lr"]) is float


@pytest.mark.parametrize(
    "step, error, text",
    [
        (2**63 - 1, ValueError, "must be from 0 to"),
        (2**64, ValueError, "must be from 0 to"),
        (-1, ValueError, "must be from 0 to"),
        (True, TypeError, "must be a number"),
        (np.array([3]), TypeError, "must be a number"),
        ("3", TypeError, "must be a number"),
        (float("inf"), ValueError, "whole number"),
    ],
)
def test_load_state_dict_refuses_step_counts_no_step_can_follow(step, error, text, rng):
    p = rng.standard_normal(4)
    opt = Adam([p])
    opt.step([np.ones(4)])
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["step"] = step
    with pytest.raises(error, match=text):
        opt.load_state_dict(sd)
    assert opt.state[p]["step"] == 1


@pytest.mark.parametrize("step", [2**53 + 1, 2**62 + 3, np.int64(2**63 - 2)])
def test_load_state_dict_keeps_large_step_counts_exact(step, rng, tmp_path):
    p = rng.standard_normal(4)
    opt = Adam([p])
    opt.step([np.ones(4)])
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["step"] = step
    opt.load_state_dict(sd)
    assert opt.state[p]["step"] == int(step)
    assert int(opt.state_dict()["state"][0]["step"]) == int(step)
    opt.save(tmp_path / "c.npz")
    other = Adam([p.copy()])
    other.load(tmp_path / "c.npz")
    assert other.state[other.param_groups[0]["params"][0]]["step"] == int(step)
    if int(step) < 2**63 - 2:
        opt.step([np.ones(4)])
        assert opt.state[p]["step"] == int(step) + 1


# -- state_dict without copies -----------------------------------------------------------------


def test_state_dict_of_a_large_model_allocates_no_state_sized_memory():
    n = 2**26
    p = np.zeros(n, np.float32)
    opt = Adam([p], amsgrad=True)
    g = np.ones(n, np.float32)
    opt.step([g])
    del g
    tracemalloc.start()
    try:
        sd = opt.state_dict()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"state_dict() allocated {peak} bytes at its peak"
    assert sd["state"][0]["exp_avg"] is opt.state[p]["exp_avg"]
    assert fastadam.Adam is Adam
