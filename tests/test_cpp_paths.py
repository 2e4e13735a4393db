"""Builds the C++ library as a C++ user would (CMake, no Python) and runs tests/cpp/test_isa_paths:
every ISA path against the scalar path bitwise and a long-double evaluation, for Adam, SGD and
Adagrad, float and double, 1 and 3 threads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or sys.platform == "win32",
    reason="needs cmake and a C++ compiler",
)


def test_every_isa_path_agrees(tmp_path):
    build = tmp_path / "build"
    subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DFASTADAM_PYTHON=OFF",
            "-DFASTADAM_TESTS=ON",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "test_isa_paths", "-j", "2"],
        check=True,
        capture_output=True,
        text=True,
    )
    result = subprocess.run(
        [str(build / "test_isa_paths")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all ISA paths agree" in result.stdout


CROSS_CXX = "aarch64-linux-gnu-g++"
NEON_SOURCES = [
    "kernel_neon",
    "kernel_scalar",
    "dispatch",
    "parallel_step",
    "thread_pool",
    "state_memory",
]


@pytest.mark.skipif(
    shutil.which(CROSS_CXX) is None or shutil.which("qemu-aarch64") is None,
    reason="needs aarch64-linux-gnu-g++ and qemu-aarch64 (Debian: g++-aarch64-linux-gnu, "
    "qemu-user) to check the NEON path on this machine",
)
def test_neon_path_under_qemu(tmp_path):
    """The NEON path, cross-compiled for aarch64 and run under user-mode emulation: the same
    C++ test as above (NEON against scalar bitwise, and against long double)."""
    flags = [
        "-std=c++20",
        "-O3",
        "-ffp-contract=off",
        "-fno-math-errno",
        "-DFASTADAM_HAVE_NEON",
        f"-I{ROOT / 'cpp' / 'include'}",
    ]
    objects = []
    for name in NEON_SOURCES:
        obj = tmp_path / f"{name}.o"
        extra = ["-fno-tree-vectorize"] if name == "kernel_scalar" else []
        subprocess.run(
            [
                CROSS_CXX,
                *flags,
                *extra,
                "-c",
                str(ROOT / "cpp" / "src" / f"{name}.cpp"),
                "-o",
                str(obj),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        objects.append(str(obj))
    exe = tmp_path / "test_isa_paths_neon"
    subprocess.run(
        [
            CROSS_CXX,
            *flags,
            str(ROOT / "tests" / "cpp" / "test_isa_paths.cpp"),
            *objects,
            "-lpthread",
            "-static",
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result = subprocess.run(
        ["qemu-aarch64", str(exe)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "float32 neon: checked" in result.stdout
    assert "all ISA paths agree" in result.stdout
