"""Builds the C++ library as a C++ user would (CMake, no Python) and runs tests/cpp/test_isa_paths:
every ISA path against the scalar path bitwise and a long-double evaluation, for Adam, SGD and
Adagrad, float and double, 1 and 3 threads. The same build is then installed to a prefix, and the
C++ example is built against it with find_package(fastadam)."""

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


def run(args: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def cpp_build(tmp_path_factory) -> Path:
    """The root project configured as a C++ user would, with fastadam_cpu and the test program
    built once for every test of this module (the library takes most of the build time)."""
    build = tmp_path_factory.mktemp("cpp") / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(
        [
            "cmake",
            "-S",
            ROOT,
            "-B",
            build,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DFASTADAM_PYTHON=OFF",
            "-DFASTADAM_TESTS=ON",
            *generator,
        ]
    )
    run(["cmake", "--build", build, "-j", "2"])
    return build


def test_every_isa_path_agrees(cpp_build):
    result = subprocess.run(
        [str(cpp_build / "test_isa_paths")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all ISA paths agree" in result.stdout


def test_named_field_builders(cpp_build):
    """fastadam/builders.hpp: every setter sets its own field; a tensor built by name steps
    exactly like one filled in field by field (tests/cpp/test_builders.cpp)."""
    result = run([cpp_build / "test_builders"])
    assert "builders: all fields set by name" in result.stdout


def test_installed_package_builds_the_example(cpp_build, tmp_path):
    """`cmake --install` gives headers, the static library and fastadamConfig.cmake; the C++
    example finds them with find_package(fastadam) and links fastadam::cpu."""
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", cpp_build, "--prefix", prefix])
    config = prefix / "lib" / "cmake" / "fastadam"
    if not config.is_dir():  # GNUInstallDirs picks lib64 on some distributions
        config = prefix / "lib64" / "cmake" / "fastadam"
    assert (config / "fastadamConfig.cmake").is_file()
    assert (config / "fastadamConfigVersion.cmake").is_file()
    assert (prefix / "include" / "fastadam" / "kernels.hpp").is_file()
    # The test program is not part of the package.
    assert not any(p.name.startswith("test_isa_paths") for p in prefix.rglob("*"))

    example = tmp_path / "example"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = run(
        [
            "cmake",
            "-S",
            ROOT / "examples" / "cpp",
            "-B",
            example,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DFASTADAM_FIND_PACKAGE=ON",
            f"-DCMAKE_PREFIX_PATH={prefix}",
            *generator,
        ]
    )
    # find_package took the installed copy: no source-tree build of the library happened.
    assert not (example / "fastadam").exists(), configure.stdout
    cache = (example / "CMakeCache.txt").read_text()
    assert f"fastadam_DIR:PATH={config}" in cache
    run(["cmake", "--build", example])
    result = run([example / "least_squares", "60"], timeout=60)
    assert "OK: the loss fell by at least 100x" in result.stdout


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
