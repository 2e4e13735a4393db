"""Where every parameter's elements live in the flat buffer of its dtype, and which part of
that buffer each rank owns.

Pure arithmetic, no MPI: the layout of a dtype depends only on the parameters' sizes, the
alignment and the world size. Parameters of one dtype are laid end to end in their given order,
each starting on a ``LINE``-byte boundary; the buffer is padded to ``world * shard`` elements,
and rank ``r`` owns ``[r * shard, (r + 1) * shard)``, where ``shard`` is ``ceil(total / world)``
rounded up to ``BLOCK`` elements. So every rank owns the same number of elements (the
collectives move equal counts), and every shard boundary is a multiple of ``BLOCK`` elements
(and of 64 bytes), where block-scaled state can start a block.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["BLOCK", "LINE", "DtypeLayout", "Piece"]

BLOCK = 256  # elements: shard and bucket boundaries are multiples of this
LINE = 64  # bytes: each parameter starts on a cache line of the flat buffer


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class Piece(NamedTuple):
    """The elements ``[begin, end)`` of parameter ``index`` (flattened), which sit at
    ``[flat, flat + end - begin)`` of the flat buffer."""

    index: int
    begin: int
    end: int
    flat: int


class DtypeLayout:
    """The flat buffer of one dtype.

    Parameters
    ----------
    dtype : numpy.dtype
        The parameters' dtype.
    indices : list of int
        The parameters of this dtype, as positions in the optimizer's parameter order.
    sizes : list of int
        Their element counts.
    world : int
        The number of ranks.
    align : int
        Each parameter starts at a multiple of this many elements (default: one ``LINE``).
    """

    def __init__(
        self,
        dtype: np.dtype,
        indices: list[int],
        sizes: list[int],
        world: int,
        align: int | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.align = align if align is not None else max(1, LINE // self.dtype.itemsize)
        self.indices = list(indices)
        self.position = {index: k for k, index in enumerate(self.indices)}
        self.sizes = list(sizes)
        self.offsets: list[int] = []
        end = 0
        for size in self.sizes:
            self.offsets.append(end)
            end = _round_up(end + size, self.align)
        self.total = end  # the parameters with their alignment gaps
        self.world = world
        self.shard = _round_up(max(1, -(-self.total // world)), BLOCK)
        self.length = world * self.shard

    def start(self, index: int) -> int:
        """Where parameter ``index`` starts in the flat buffer."""
        return self.offsets[self.position[index]]

    def window(self, rank: int) -> tuple[int, int]:
        """The flat range ``[begin, end)`` rank ``rank`` owns."""
        return rank * self.shard, (rank + 1) * self.shard

    def pieces(self, begin: int, end: int) -> list[Piece]:
        """The parts of parameters inside the flat range ``[begin, end)``, in order."""
        out = []
        for index, offset, size in zip(self.indices, self.offsets, self.sizes):
            lo, hi = max(begin, offset), min(end, offset + size)
            if lo < hi:
                out.append(Piece(index, lo - offset, hi - offset, lo))
        return out

    def outside(self, begin: int, end: int) -> list[Piece]:
        """The parts of parameters outside the flat range ``[begin, end)``."""
        return self.pieces(0, begin) + self.pieces(end, max(end, self.total))

    def buckets(self, elements: int) -> list[tuple[int, int]]:
        """A shard cut into ranges of ``elements`` (rounded up to ``BLOCK``), relative to the
        shard's start; the same ranges on every rank."""
        step = _round_up(max(1, elements), BLOCK)
        return [(b, min(b + step, self.shard)) for b in range(0, self.shard, step)]

    def describe(self) -> dict:
        """The layout as JSON values (stored in checkpoints)."""
        return {
            "dtype": self.dtype.str,
            "align": self.align,
            "indices": self.indices,
            "sizes": self.sizes,
            "offsets": self.offsets,
            "world": self.world,
            "shard": self.shard,
        }

    @classmethod
    def from_description(cls, d: dict) -> DtypeLayout:
        layout = cls(np.dtype(d["dtype"]), d["indices"], d["sizes"], d["world"], d["align"])
        if layout.offsets != list(d["offsets"]) or layout.shard != d["shard"]:
            raise ValueError("the checkpoint's layout does not follow from its own sizes")
        return layout
