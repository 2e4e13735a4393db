"""What this build contains and what it uses: ISA paths, threads, CUDA."""

from __future__ import annotations

import platform
import sys

from . import _core


def config_lines() -> list[str]:
    """The configuration as lines of text (what ``show_config`` prints)."""
    return [
        f"fastadam {_core_version()} on {platform.machine()}, Python {sys.version.split()[0]}",
        f"  ISA paths this CPU runs: {', '.join(_core.available_isas())}",
        f"  ISA in use:              {_core.get_isa()}",
        (
            f"  threads:                 {_core.get_num_threads()}"
            f" (default {_core.default_num_threads()}; calls under"
            f" {_core.parallel_threshold} elements stay on the calling thread)"
        ),
        (
            "  8-bit state:             Adam/AdamW(state_bits=8): codes map version"
            f" {_lowbit_version()}, blocks of 256; parameters under min_8bit_size (default 4096)"
            " elements keep float32 state (float64 parameters: float64 state, never 8-bit)"
        ),
        f"  CUDA:                    {_cuda_text()}",
    ]


def _lowbit_version() -> int:
    from .lowbit import FORMAT_VERSION

    return FORMAT_VERSION


def _cuda_text() -> str:
    from . import cuda

    reason = cuda.unavailable_reason()
    return f"available, {cuda.device_count()} device(s)" if reason is None else reason


def _core_version() -> str:
    from . import __version__

    return __version__


def show_config() -> None:
    """Print the build's configuration: ISA paths available and in use, threads."""
    print("\n".join(config_lines()))
