"""Validate locally, then agree: one small collective decides whether every rank goes on.

Each rank checks its own arguments without writing anything, then all ranks take part in one
``Allreduce`` of three integers: a failure flag and a digest of what must be equal on every rank
(shapes, hyper-parameters, ...), taken with MAX as ``(flag, digest, -digest)`` so that a
mismatch shows as ``max(digest) != min(digest)``. Only when something is wrong does a second,
pickled collective gather the messages, so that every rank raises the same error. A rank that
failed locally therefore never leaves the others waiting in a collective it will not join.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["agree", "digest", "mpi"]

_MPI: Any = None

# The exception types raised again as themselves on every rank (others as RuntimeError): bad
# arguments, and the file errors a caller may catch (a missing checkpoint folder).
_KINDS: dict[str, type[Exception]] = {
    kind.__name__: kind
    for kind in (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        OSError,
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
    )
}


def mpi() -> Any:
    """The ``mpi4py.MPI`` module, imported on first use (``import fastadam`` never does)."""
    global _MPI
    if _MPI is not None:
        return _MPI
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "fastadam.distributed needs mpi4py and an MPI library: "
            "pip install 'fastadam[distributed]' (mpi4py and the mpich wheel), or mpi4py built "
            f"against your cluster's MPI. Original error: {exc}"
        ) from exc
    _MPI = MPI
    return MPI


def digest(desc: Any) -> int:
    """A 56-bit digest of ``desc`` (built from numbers, strings, tuples, lists, dicts)."""
    # repr of ints, floats, bools, strings and tuples of them is the same in every process
    # (hash() is not: strings are salted per process).
    raw = hashlib.blake2b(repr(desc).encode("utf-8"), digest_size=7).digest()
    return int.from_bytes(raw, "little")  # < 2**56: its negation fits in an int64


def agree(
    comm: Any,
    error: BaseException | None,
    desc: dict[str, Any] | None,
    what: str,
    desc_digest: int | None = None,
) -> None:
    """Raise on every rank when ``error`` is set on any rank or ``desc`` differs between ranks.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The ranks that must agree; every one of them must call this.
    error : Exception or None
        What this rank's own checks raised, or None.
    desc : dict or None
        What must be equal on every rank (None where ``error`` is set).
    what : str
        A name for ``desc`` in the message, e.g. ``"the parameters"``.
    desc_digest : int, optional
        ``digest(desc)``, when the caller has it already.
    """
    MPI = mpi()
    if desc_digest is None:
        desc_digest = 0 if desc is None else digest(desc)
    flags = np.array([error is not None, desc_digest, -desc_digest], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
    if flags[0]:
        mine = None if error is None else (type(error).__name__, str(error))
        reports = comm.allgather(mine)
        failed = [r for r, report in enumerate(reports) if report is not None]
        kind, text = reports[failed[0]]
        others = len(failed) - 1
        more = f" (and {others} other rank{'s' if others > 1 else ''})" if others else ""
        message = f"on rank {failed[0]} of {len(reports)}{more}: {text}"
        raise _KINDS.get(kind, RuntimeError)(message) from error
    if flags[1] != -flags[2]:
        descs = comm.allgather(desc)
        raise ValueError(f"{what} differ across ranks: {_difference(descs)}")


def _difference(descs: list[dict[str, Any]]) -> str:
    """The first entry that differs between ranks, with rank 0's value and the other's."""
    for rank, other in enumerate(descs[1:], start=1):
        found = _first_difference(descs[0], other, "")
        if found is not None:
            path, a, b = found
            return f"{path} is {a!r} on rank 0 but {b!r} on rank {rank}"
    return "their digests differ"  # pragma: no cover - equal descriptions give equal digests


def _first_difference(a: Any, b: Any, path: str) -> tuple[str, Any, Any] | None:
    # equal as the digest sees them: 0.0 and -0.0, or 1 and 1.0, differ (the step's arithmetic
    # may tell them apart)
    if type(a) is type(b) and repr(a) == repr(b):
        return None
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for key in a:
            found = _first_difference(a[key], b[key], f"{path}[{key!r}]" if path else key)
            if found is not None:
                return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
    return path, a, b
