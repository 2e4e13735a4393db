"""Every example under examples/ runs in its short mode and produces the files and numbers it
promises. The examples need the ``examples`` extra (matplotlib, scikit-learn), torch or cmake and a
C++ compiler; each test skips cleanly when its needs are missing."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def needs(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (pip install '.[examples]')")


def run_example(name: str, out: pathlib.Path, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out", str(out)],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
        cwd=out,
        env=dict(os.environ, **env),
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


def assert_png(path: pathlib.Path) -> None:
    assert path.exists(), f"{path.name} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, f"{path.name} is no plot"


def printed(pattern: str, text: str) -> list[float]:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return [float(g) for g in match.groups()]


def test_bowl(tmp_path):
    needs("matplotlib")
    result = run_example("bowl.py", tmp_path)
    assert_png(tmp_path / "bowl.png")
    data = json.loads((tmp_path / "bowl.json").read_text())
    adam, sgd = printed(r"final objective: adam=(\S+) sgd=(\S+)", result.stdout)
    assert adam == pytest.approx(data["final_objective"]["adam"], rel=1e-3)
    assert sgd == pytest.approx(data["final_objective"]["sgd"], rel=1e-3)
    assert data["steps"] == 50 and len(data["adam_objective"]) == 51
    assert data["adam_objective"][0] == pytest.approx(0.8**2 + 0.9**2)
    assert adam * 10 <= data["initial_objective"] and sgd * 10 <= data["initial_objective"]


def test_digits(tmp_path):
    needs("matplotlib", "sklearn")
    result = run_example("digits.py", tmp_path)
    for name in ("digits_loss.png", "digits_accuracy.png", "digits_swats_lr.png"):
        assert_png(tmp_path / name)
    data = json.loads((tmp_path / "digits.json").read_text())
    names = ["Adam", "AMSGrad", "SWATS", "RMSprop", "SGD", "Adagrad"]
    assert list(data["final_test_accuracy"]) == names
    pattern = "final test accuracy: " + " ".join(rf"{name}=(\S+)" for name in names)
    accuracies = printed(pattern, result.stdout)
    assert accuracies == pytest.approx(list(data["final_test_accuracy"].values()), abs=1e-4)
    swats = data["optimizers"]["SWATS"]
    assert len(swats["sgd_lr_per_step"]) == 4 * swats["steps_per_epoch"]
    for name, r in data["optimizers"].items():
        assert len(r["train_loss"]) == data["epochs"] + 1 == 5
        assert r["train_loss"][-1] < r["train_loss"][0] / 2, name  # every optimizer learned
        assert r["test_accuracy"][-1] > 0.8, name
    assert data["optimizers"]["Adam"]["test_accuracy"][0] < 0.3  # from untrained weights


def test_torch_offload(tmp_path):
    needs("matplotlib", "sklearn", "torch")
    # One torch thread: on a machine busy with other work (a CI runner, pytest-xdist), torch's
    # OpenMP threads wait for each other at every operation and the run takes many times longer.
    result = run_example("torch_offload.py", tmp_path, OMP_NUM_THREADS="1")
    assert_png(tmp_path / "torch_offload.png")
    data = json.loads((tmp_path / "torch_offload.json").read_text())
    (max_rel,) = printed(r"max relative loss difference: (\S+)", result.stdout)
    assert max_rel == pytest.approx(data["max_relative_difference"], rel=1e-2, abs=1e-12)
    assert max_rel <= 1e-3
    ratio, fused = printed(
        r"step time \(median\):.* ratio (\S+)x, fused / fastadam (\S+)x", result.stdout
    )
    assert ratio == pytest.approx(data["step_time_ratio"], rel=1e-2) and ratio > 0
    assert fused == pytest.approx(data["fused_step_time_ratio"], rel=1e-2) and fused > 0
    assert set(data["loss"]) == {
        "torch.optim.Adam",
        "torch.optim.Adam(fused=True)",
        "fastadam.torch.Adam",
    }
    losses = data["loss"]["fastadam.torch.Adam"]
    assert len(losses) == data["steps"] == 20
    assert sum(losses[-5:]) < sum(losses[:5])
    assert data["loss"]["torch.optim.Adam"][0] == losses[0]  # the same model and batch


def test_cpp_least_squares(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("needs cmake")
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    configure = subprocess.run(
        [
            cmake,
            "-S",
            str(EXAMPLES / "cpp"),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            *generator,
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=env,
    )
    if configure.returncode != 0 and "No CMAKE_CXX_COMPILER could be found" in (
        configure.stdout + configure.stderr
    ):
        pytest.skip("needs a C++ compiler")
    assert configure.returncode == 0, configure.stdout + configure.stderr
    # Only the example and the fastadam_cpu library it links (the project is EXCLUDE_FROM_ALL).
    built = subprocess.run(
        [cmake, "--build", str(build), "--target", "least_squares"],
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
        env=env,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    exe = build / "least_squares"
    result = subprocess.run([str(exe)], capture_output=True, check=False, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    initial, final, ratio = printed(
        r"initial loss (\S+)\s+final loss (\S+)\s+ratio (\S+)", result.stdout
    )
    assert ratio >= 100 and initial / final == pytest.approx(ratio, rel=1e-3)
    # and it fails when the loss cannot fall far enough: one step
    one = subprocess.run([str(exe), "1"], capture_output=True, check=False, text=True, timeout=60)
    assert one.returncode == 1 and "FAILED" in one.stdout


def test_mixed_precision(tmp_path):
    needs("matplotlib", "sklearn", "ml_dtypes")
    result = run_example("mixed_precision.py", tmp_path)
    assert_png(tmp_path / "mixed_precision.png")
    data = json.loads((tmp_path / "mixed_precision.json").read_text())
    assert set(data) == {
        "float32",
        "float16 + loss scaling",
        "bfloat16 + master weights",
        "bfloat16 + stochastic rounding",
        "bfloat16",
    }
    for name, r in data.items():
        assert len(r["accuracy"]) == 2 and r["accuracy"][-1] > 0.8, name
        assert f"{100 * r['accuracy'][-1]:6.2f} %" in result.stdout
    scaled = data["float16 + loss scaling"]
    # started at 2**24, the loss scale overflows float16 at first: skipped, then backed off
    assert scaled["skipped_steps"] >= 1 and scaled["final_scale"] < 2.0**24


def test_distributed_mlp(tmp_path):
    """Data-parallel digits on 2 ranks: learns, ends with the same parameters on every rank,
    and each rank holds about half of the single-process optimizer's state."""
    needs("sklearn", "mpi4py")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("needs mpiexec (pip install '.[distributed]')")
    command = [mpiexec, "-n", "2", sys.executable, "-m", "mpi4py"]
    command += [str(EXAMPLES / "distributed_mlp.py"), "--quick", "--out", str(tmp_path)]
    env = dict(os.environ, HYDRA_LAUNCHER="fork", FASTADAM_NUM_THREADS="1")
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # a timeout kills every rank, not only mpiexec
    )
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"distributed_mlp.py hung:\n{out[-4000:]}")
    assert proc.returncode == 0, f"distributed_mlp.py failed:\n{out}"
    (accuracy,) = printed(r"final test accuracy (\S+)", out)
    assert accuracy > 0.8
    assert "parameters identical on all 2 ranks: yes" in out
    (single,) = printed(r"1 rank \(fastadam.Adam\): state (\d+) bytes", out)
    for rank in (0, 1):
        (state,) = printed(rf"rank {rank} of 2: state (\d+) bytes", out)
        assert single / 2 <= state <= single / 2 + 2 * 256 * 4  # half, plus at most a block each
    data = json.loads((tmp_path / "distributed_mlp.json").read_text())
    assert data["ranks"] == 2 and data["parameters_identical"] is True
    assert data["final_test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
