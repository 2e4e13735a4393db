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
    shutil.which("cmake") is None or sys.platform == "win32", reason="needs cmake and a C++ compiler"
)


def test_every_isa_path_agrees(tmp_path):
    build = tmp_path / "build"
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DFASTADAM_PYTHON=OFF", "-DFASTADAM_TESTS=ON"],
        check=True, capture_output=True, text=True,
    )
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "test_isa_paths", "-j", "2"],
        check=True, capture_output=True, text=True,
    )
    result = subprocess.run([str(build / "test_isa_paths")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all ISA paths agree" in result.stdout
