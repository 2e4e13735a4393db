"""``.npz`` checkpoints of an optimizer's ``state_dict()``: no pickle, written atomically.

A file holds one array per state entry (``state.<index>.<name>``) and a ``meta`` entry with the
JSON of everything else (format, version, class, parameter groups, step counts). Saving to a path
writes a temporary file in the same folder, flushes and fsyncs it, renames it over the target and
fsyncs the folder, so a crash or a full disk mid-save leaves the previous checkpoint intact.
Loading refuses every damaged or foreign file with one exception type, ``ValueError``, naming
the file and the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    from .base import Optimizer

__all__ = ["load", "save"]

FORMAT = "fastadam.optim"
# Version 1: float32/float64 state only. Version 2: a file that also holds state a version-1
# reader would silently drop (``master_param``, the float32 master copies of 16-bit parameters),
# so that such a reader refuses it instead of resuming from the rounded parameters. A file
# without such state is still written as version 1.
FORMAT_VERSION = 1
FORMAT_VERSION_EXTRA_STATE = 2
READABLE_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_EXTRA_STATE)
# (8-bit state, optim/lowbit_state.py: codes, scales and the code maps' version.)
EXTRA_STATE = (
    "master_param",
    "exp_avg_codes",
    "exp_avg_scales",
    "exp_avg_sq_codes",
    "exp_avg_sq_scales",
    "max_exp_avg_sq_codes",
    "max_exp_avg_sq_scales",
    "lowbit_version",
)

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]

# Optimizer classes by name, filled by Optimizer.__init_subclass__: a checkpoint names its writer.
CLASSES: dict[str, type[Optimizer]] = {}


def _json_value(value: Any) -> Any:
    """NumPy scalars and small arrays (an lr set to ``np.float32(0.01)``) as JSON numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 64:
        return value.tolist()
    raise TypeError(f"a parameter group holds a value JSON cannot store: {value!r}")


def _names(opt: Optimizer) -> tuple[str, ...]:
    """The state entries a checkpoint of ``opt``'s class may hold (``_checkpoint_arrays`` where
    a class keeps state of more than one kind, as Adam's 8-bit state)."""
    return getattr(type(opt), "_checkpoint_arrays", type(opt)._state_arrays)


def _arrays_of(opt: Optimizer) -> dict[str, Any]:
    sd = opt.state_dict()
    arrays: dict[str, Any] = {}
    steps = {}
    for index, s in sd["state"].items():
        # The indices with state, and their step counts (null for an optimizer without).
        steps[str(index)] = int(s["step"]) if "step" in s else None
        for name in _names(opt):
            if name in s:
                arrays[f"state.{index}.{name}"] = s[name]
    extra = any(key.rsplit(".", 1)[1] in EXTRA_STATE for key in arrays)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION_EXTRA_STATE if extra else FORMAT_VERSION,
        "class": type(opt).__name__,
        "param_groups": sd["param_groups"],
        "steps": steps,
    }
    text = json.dumps(meta, allow_nan=True, default=_json_value)
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def _write_npz(f: IO[bytes], arrays: dict[str, Any]) -> None:
    np.savez(f, **arrays)


def save(opt: Optimizer, file: PathOrFile) -> None:
    """Write ``opt.state_dict()`` to ``file`` (a path, written atomically, or a binary file)."""
    arrays = _arrays_of(opt)  # everything that can be refused is refused before any write
    if not isinstance(file, (str, os.PathLike)):
        _write_npz(file, arrays)
        return
    write_atomically(os.fspath(file), lambda f: _write_npz(f, arrays))


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, flush and fsync it, rename it
    over ``path``, fsync the folder; on any error the temporary file is removed and ``path``
    is untouched. (Also used by ``fastadam.distributed``'s checkpoint folders.)"""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file private (0600); give it the mode open() would have given
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (best effort where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Damaged(Exception):
    """A problem with the file's contents, reported as ValueError naming the file."""


# What reading a damaged entry raises (MemoryError: a header claiming more than memory holds).
_UNREADABLE = (ValueError, EOFError, zipfile.BadZipFile, OSError, MemoryError)


def _read(file: PathOrFile, opt: Optimizer) -> dict[str, Any]:
    """The state dict stored in ``file``; _Damaged for anything that is not a valid checkpoint
    of an optimizer like ``opt``."""
    try:
        npz = np.load(file, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _Damaged(f"not a .npz file ({exc})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _Damaged("not a .npz archive (a single .npy array)")
    with npz:
        if "meta" not in npz.files:
            raise _Damaged("no 'meta' entry: not a fastadam optimizer checkpoint")
        try:
            meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        except (*_UNREADABLE, RecursionError) as exc:  # RecursionError: JSON nested too deep
            raise _Damaged(f"unreadable 'meta' entry ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise _Damaged("not a fastadam optimizer checkpoint")
        if meta.get("version") not in READABLE_VERSIONS:
            raise _Damaged(f"unknown format version {meta.get('version')!r}")
        writer = meta.get("class")
        if not isinstance(writer, str) or writer not in CLASSES:
            raise _Damaged(f"written by an unknown optimizer class {writer!r}")
        if CLASSES[writer] is not type(opt):  # NAdam's and RAdam's arrays have the same names
            raise _Damaged(f"holds the state of {writer}, not of {type(opt).__name__}")
        steps, groups = meta.get("steps"), meta.get("param_groups")
        if not isinstance(steps, dict) or not isinstance(groups, list):
            raise _Damaged("'meta' lacks its 'steps' or 'param_groups'")
        state = {}
        for index, step in steps.items():
            s: dict[str, Any] = {} if step is None else {"step": step}
            for name in _names(opt):
                key = f"state.{index}.{name}"
                if key in npz.files:
                    try:
                        s[name] = npz[key]
                    except _UNREADABLE as exc:
                        raise _Damaged(f"unreadable entry {key!r} ({exc!r})") from exc
            try:
                number = int(index)
            except ValueError:
                raise _Damaged(f"bad state index {index!r}") from None
            if number in state:
                raise _Damaged(f"state index {number} appears twice in 'steps'")
            state[number] = s
    return {"state": state, "param_groups": groups}


def _read_path_or_file(file: PathOrFile, opt: Optimizer) -> dict[str, Any]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:  # closed even when numpy gives up on a damaged file
            return _read(f, opt)
    return _read(file, opt)


def load(opt: Optimizer, file: PathOrFile) -> None:
    """Read a file written by ``save`` (never unpickles) and ``load_state_dict`` it.

    A missing or unreadable path raises the usual ``OSError``; a damaged file, another kind of
    file, a checkpoint of another optimizer class or one that does not fit this optimizer's
    parameters raises ``ValueError`` naming the file, and changes nothing.
    """
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file)
    try:
        state_dict = _read_path_or_file(file, opt)
        opt.load_state_dict(state_dict)
    except _Damaged as exc:
        raise ValueError(f"{name}: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"{name}: the checkpoint does not fit this optimizer: {exc}") from exc
