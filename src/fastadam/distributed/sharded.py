"""ZeRO-1 sharded optimizers: every rank keeps the optimizer state of only its own slice of the
parameters, and all ranks end each step with identical parameters.

A step, on every rank of the communicator:

1. validate the gradients and hyper-parameters locally, then agree (``agreement.agree``): one
   small ``Allreduce``; a problem on any rank raises the same error on every rank before
   anything is written;
2. per dtype, copy the gradients into a flat buffer and ``Reduce_scatter_block`` it with SUM,
   then divide the own slice by the world size (skipped with ``averaged=True``: each rank then
   reads its slice straight from the gradients it was given);
3. update the parameters' elements in the own slice with the single-process optimizer's native
   entry (the same element arithmetic, so the same bits) and copy them into the flat parameter
   buffer, then ``Allgather`` it; or, with ``bucket_bytes``, do this bucket by bucket, each
   bucket's non-blocking ``Iallgatherv`` travelling while the next bucket is updated;
4. copy the other ranks' elements into the parameter arrays (bucket by bucket as they arrive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Optional

import numpy as np

from .. import _core
from ..optim import Adam
from ..optim.validation import check_grad, check_no_overlap, grad_ok, span
from . import checkpoint
from .agreement import agree, digest, mpi
from .layout import DtypeLayout, Piece

__all__ = ["ShardedOptimizer"]

Grads = Sequence[Optional[np.ndarray]]


class _Bucket:
    """One range ``[lo, hi)`` of a dtype's shard (relative to the shard's start): the pieces of
    parameters this rank updates in it, and those the other ranks send back."""

    __slots__ = ("counts", "displs", "dtype", "hi", "lo", "others", "own")

    def __init__(self, layout: DtypeLayout, rank: int, lo: int, hi: int) -> None:
        self.dtype = layout.dtype
        self.lo, self.hi = lo, hi
        begin = rank * layout.shard
        self.own: list[Piece] = layout.pieces(begin + lo, begin + hi)
        self.others: list[Piece] = []
        for q in range(layout.world):
            if q != rank:
                self.others += layout.pieces(q * layout.shard + lo, q * layout.shard + hi)
        self.counts = [hi - lo] * layout.world
        self.displs = [q * layout.shard + lo for q in range(layout.world)]


class _Plan:
    """A validated step: which parameters step, with which hyper-parameters and state."""

    __slots__ = ("averaged", "desc", "digest", "hypers", "mask", "needed", "snapshot")

    def __init__(self, averaged, mask, snapshot, groups, hypers, needed) -> None:
        self.averaged = averaged
        self.mask = mask
        self.snapshot = snapshot
        self.hypers = hypers
        self.needed = needed
        self.desc = {
            "averaged": averaged,
            "param_groups": groups,
            "gradients given (not None)": list(mask),
        }
        self.digest = digest(self.desc)


class ShardedOptimizer:
    """The machinery of the sharded optimizers (ZeRO stage 1 over an mpi4py communicator).

    Not used directly: ``ShardedAdam``, ``ShardedAdamW``, ``ShardedSGD`` and ``ShardedAdagrad``
    name the single-process optimizer (``_local``) whose validation, parameter groups, state
    arrays and native entry they use; a sharded step calls that same native entry on the own
    slice, so any fastadam optimizer shards without new native code.

    Parameters are laid out in one flat buffer per dtype (``layout.DtypeLayout``); rank ``r``
    owns the contiguous slice ``[r * shard, (r + 1) * shard)`` of it and holds optimizer state
    for those elements only: ``shard = ceil(total / world)`` rounded up to 256 elements, where
    ``total`` is the element count with each parameter starting on a 64-byte boundary.
    """

    _local: ClassVar[type] = Adam

    def __init__(
        self,
        params: Any,
        comm: Any,
        bucket_bytes: int | None,
        hyper: Mapping[str, Any],
    ) -> None:
        MPI = mpi()
        self._MPI = MPI
        # MPI's own types: reductions are defined on them (not on derived copies of them).
        types = {np.dtype(np.float32): MPI.FLOAT, np.dtype(np.float64): MPI.DOUBLE}
        self._mpi_type = types.__getitem__
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.world = self.comm.Get_size()

        error = desc = None
        try:
            if bucket_bytes is not None and (
                isinstance(bucket_bytes, bool)
                or not isinstance(bucket_bytes, int)
                or bucket_bytes <= 0
            ):
                raise ValueError(
                    f"bucket_bytes must be a positive int or None, got {bucket_bytes!r}"
                )
            # The single-process optimizer validates the parameters and groups as it always does
            # (types, duplicates, shared memory, hyper-parameters); it never holds state here.
            self._opt = self._local(params, **hyper)
            groups = self._opt.param_groups
            self._params: list[np.ndarray] = [p for g in groups for p in g["params"]]
            self._group_of = [gi for gi, g in enumerate(groups) for _ in g["params"]]
            for gi, g in enumerate(groups):
                for j, p in enumerate(g["params"]):
                    if p.dtype not in types:
                        raise TypeError(
                            f"param_groups[{gi}]['params'][{j}] is {p.dtype}: the distributed "
                            "optimizers step float32 and float64 parameters"
                        )
            desc = {
                "parameters": [f"{p.shape} {p.dtype}" for p in self._params],
                "parameters per group": [len(g["params"]) for g in groups],
                "param_groups": [_plain(g) for g in groups],
                "bucket_bytes": bucket_bytes,
            }
        except Exception as exc:  # noqa: BLE001 - any failure is agreed on, or ranks deadlock
            error = exc
        agree(self.comm, error, desc, "the optimizer's arguments")

        self._bucket_bytes = bucket_bytes
        n = len(self._params)
        self._flat_views = [p.reshape(-1) for p in self._params]  # C-contiguous: views
        by_dtype: dict[np.dtype, list[int]] = {}
        for i, p in enumerate(self._params):
            by_dtype.setdefault(p.dtype, []).append(i)
        self._layouts = {
            dt: DtypeLayout(dt, idx, [self._params[i].size for i in idx], self.world)
            for dt, idx in by_dtype.items()
        }
        # The allgather's buffers (one rank alone updates its parameters in place and needs none).
        self._flat_params = {
            dt: _core.zeros_state((L.length,), dt)
            for dt, L in self._layouts.items()
            if self.world > 1
        }
        self._flat_grads: dict[np.dtype, np.ndarray] = {}
        self._shard_grads: dict[np.dtype, np.ndarray] = {}
        self._grad_views: list[np.ndarray] | None = None
        self._checked_grads: list[np.ndarray | None] = []  # the last gradients checked
        self._buckets = self._make_buckets()
        # Per-parameter bookkeeping, equal on every rank: step counts, the state arrays the
        # parameter has, whether it has a state entry at all (torch's ``opt.state[p]``).
        self._steps = [0] * n
        self._has: list[set[str]] = [set() for _ in range(n)]
        self._stateful = [False] * n
        # dtype -> state name -> the own slice's state (``shard`` elements)
        self._state: dict[np.dtype, dict[str, np.ndarray]] = {dt: {} for dt in self._layouts}
        # The steady state: the last validated plan, and the native call's argument lists per
        # bucket, valid while (mask, averaged, _version) stays the same.
        self._last_plan: _Plan | None = None
        self._version = 0
        self._lists_key: tuple | None = None
        self._lists: list[tuple] = []

        # Every rank starts from rank 0's parameters, as data-parallel training expects.
        for dt, flat in self._flat_params.items():
            layout = self._layouts[dt]
            everything = layout.pieces(0, layout.total)
            if self.rank == 0:
                self._copy_in(everything, flat)
            self.comm.Bcast([flat[: layout.total], self._mpi_type(dt)], root=0)
            if self.rank != 0:
                self._copy_out(everything, flat)
        if self._opt._eager_state:
            for i in range(n):
                self._create_state(i, self._opt._arrays(self._opt.param_groups[self._group_of[i]]))

    # -- what users see ------------------------------------------------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The parameter groups, as in the single-process optimizer: set
        ``opt.param_groups[i]['lr']`` between steps (the same value on every rank)."""
        return self._opt.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        return self._opt.defaults

    @property
    def grad_views(self) -> list[np.ndarray]:
        """Arrays shaped like the parameters, inside the flat gradient buffer: write the
        gradients into these and pass them to ``step``, and the step copies nothing before its
        reduce-scatter."""
        if self._grad_views is None:
            views = []
            for i, p in enumerate(self._params):
                layout = self._layouts[p.dtype]
                start = layout.start(i)
                views.append(self._flat_grad(p.dtype)[start : start + p.size].reshape(p.shape))
            self._grad_views = views
        return self._grad_views

    def shard_range(self, dtype: Any) -> tuple[int, int]:
        """The range ``[begin, end)`` of the flat buffer of ``dtype`` that this rank owns."""
        return self._layouts[np.dtype(dtype)].window(self.rank)

    def memory(self) -> dict[str, int]:
        """Bytes this rank holds: optimizer ``state`` (the own slice only), the flat
        ``parameter_buffer`` the allgather fills, and the ``gradient_buffers`` of the
        reduce-scatter (made at the first step without ``averaged``)."""
        return {
            "state": sum(a.nbytes for arrays in self._state.values() for a in arrays.values()),
            "state_elements": sum(
                a.size for arrays in self._state.values() for a in arrays.values()
            ),
            "parameter_buffer": sum(a.nbytes for a in self._flat_params.values()),
            "gradient_buffers": sum(a.nbytes for a in self._flat_grads.values())
            + sum(a.nbytes for a in self._shard_grads.values()),
        }

    # -- the step ------------------------------------------------------------------------------

    def step(self, grads: Grads, *, averaged: bool = False) -> None:
        """Update every parameter in place, identically on every rank.

        Every rank of the communicator must call it (a collective).

        Parameters
        ----------
        grads : list or tuple of numpy.ndarray or None
            This rank's gradients, one per parameter in parameter-group order, each of its
            parameter's shape and dtype and C-contiguous; ``None`` leaves a parameter and its
            state untouched (the same parameters on every rank).
        averaged : bool
            False (default): the gradients are summed across ranks (reduce-scatter) and divided
            by the world size. True: they are already the average, the same on every rank (say,
            from the caller's own allreduce); no gradient is communicated.

        Raises
        ------
        TypeError, ValueError
            On every rank, before any parameter or state is changed, when any rank's arguments
            are bad (the message names the rank) or the ranks disagree on the hyper-parameters,
            on which gradients are None, or on ``averaged``.
        """
        error = plan = None
        try:
            plan = self._plan(grads, averaged)
        except Exception as exc:  # noqa: BLE001 - any failure is agreed on, or ranks deadlock
            error = exc
        if plan is None:
            agree(self.comm, error, None, "the step's arguments")
        else:
            agree(self.comm, None, plan.desc, "the step's arguments", plan.digest)
        self._apply(grads, plan)

    def _plan(self, grads: Grads, averaged: Any) -> _Plan:
        if not isinstance(averaged, (bool, np.bool_)):
            raise TypeError(f"averaged must be a bool, got {averaged!r}")
        if not isinstance(grads, (list, tuple)):
            raise TypeError(
                "grads must be a list or tuple with one array (or None) per parameter, "
                f"got {type(grads).__name__}"
            )
        params = self._params
        if len(grads) != len(params):
            raise ValueError(
                f"grads has {len(grads)} entries but the optimizer has {len(params)} parameters"
            )
        for i, g in enumerate(grads):
            if g is not None and not grad_ok(g, params[i]):
                check_grad(g, params[i], f"grads[{i}]")
        checked = self._checked_grads
        if len(checked) != len(grads) or any(g is not c for g, c in zip(grads, checked)):
            self._check_grad_memory(grads)  # not again for the same arrays (grad_views)
            self._checked_grads = list(grads)
        mask = tuple(g is not None for g in grads)
        averaged = bool(averaged)
        opt = self._opt
        # The groups are validated again (and the digest made again) only when one changed.
        snapshot = [_snapshot(g) for g in opt.param_groups]
        last = self._last_plan
        if last is not None and last.mask == mask and last.averaged == averaged:
            try:
                if last.snapshot == snapshot:
                    return last
            except (TypeError, ValueError):  # values that do not compare as plain numbers
                pass
        values = [opt._normalized(g) for g in opt.param_groups]
        plan = self._last_plan = _Plan(
            averaged,
            mask,
            snapshot,
            [_plain(v) for v in values],
            [opt._hyper_tuple(v) for v in values],
            [opt._arrays(v) for v in values],
        )
        return plan

    def _check_grad_memory(self, grads: Grads) -> None:
        """Checked here, on every rank, before the ranks agree (the native entry sees only the
        own slice, and a rank whose slice is empty does not call it): no gradient shares
        memory with a parameter (which fastadam.Adam refuses too), and a gradient inside the
        flat gradient buffer is its own parameter's place there (grad_views[i]), since the
        step copies gradients into that buffer in parameter order."""
        spans = [(*span(p), True, ("param", gi, j)) for p, gi, j in self._param_places()]
        spans += [(*span(g), False, ("grads", i)) for i, g in enumerate(grads) if g is not None]
        check_no_overlap(spans)
        for i, g in enumerate(grads):
            flat = self._flat_grads.get(self._params[i].dtype)
            if g is None or flat is None or not np.may_share_memory(g, flat):
                continue
            if span(g) != span(self.grad_views[i]):
                raise ValueError(
                    f"grads[{i}] lies in the gradient buffer but not at grad_views[{i}]: the "
                    "step's copies into that buffer would overwrite it"
                )

    def _param_places(self) -> list[tuple[np.ndarray, int, int]]:
        return [
            (p, gi, j)
            for gi, g in enumerate(self._opt.param_groups)
            for j, p in enumerate(g["params"])
        ]

    def _apply(self, grads: Grads, plan: _Plan) -> None:
        MPI, comm, world = self._MPI, self.comm, self.world
        mask, needed, group_of = plan.mask, plan.needed, self._group_of
        has, stateful = self._has, self._stateful
        created = set()
        for i, stepping in enumerate(mask):
            if (
                stepping
                and not (stateful[i] and needed[group_of[i]].keys() <= has[i])
                and self._create_state(i, needed[group_of[i]])
            ):
                created.add(i)

        # One rank alone reads its gradients in place: their sum over one rank is themselves.
        direct = plan.averaged or world == 1
        if not direct:
            views = self._grad_views
            for dt, layout in self._layouts.items():
                flat = self._flat_grad(dt)
                for k, i in enumerate(layout.indices):
                    g = grads[i]
                    if g is not None and (views is None or g is not views[i]):
                        start = layout.offsets[k]
                        np.copyto(flat[start : start + g.size], g.reshape(-1))
                shard = self._shard_grad(dt)
                kind = self._mpi_type(dt)
                comm.Reduce_scatter_block([flat, kind], [shard, kind], op=MPI.SUM)
                if world > 1:
                    np.divide(shard, world, out=shard)

        key = (mask, direct, self._version)
        if self._lists_key != key:
            self._lists = [self._bucket_lists(b, mask, direct) for b in self._buckets]
            self._lists_key = key
        counts = self._opt._counts_steps
        steps, hypers = self._steps, plan.hypers
        requests = []
        for bucket, (indices, ps, gs, arrays, ranges, no_fresh) in zip(self._buckets, self._lists):
            if indices:
                if direct:
                    gs = [grads[i].reshape(-1)[a:b] for i, a, b in ranges]
                self._opt._native(
                    ps,
                    gs,
                    arrays,
                    [steps[i] + 1 for i in indices] if counts else [],
                    [i in created for i in indices] if created else no_fresh,
                    [hypers[group_of[i]] for i in indices],
                )
            if world == 1:
                continue
            flat = self._flat_params[bucket.dtype]
            self._copy_in(bucket.own, flat)
            if self._bucket_bytes is not None:
                if requests:
                    # MPI moves a non-blocking collective on only inside MPI calls (unless an
                    # asynchronous progress thread runs): let the earlier buckets advance, and
                    # copy out those that have arrived.
                    for k in MPI.Request.Testsome(requests) or ():
                        self._copy_out(
                            self._buckets[k].others, self._flat_params[self._buckets[k].dtype]
                        )
                requests.append(
                    comm.Iallgatherv(
                        MPI.IN_PLACE,
                        [flat, (bucket.counts, bucket.displs), self._mpi_type(bucket.dtype)],
                    )
                )
        if world == 1:
            pass
        elif self._bucket_bytes is not None:
            # Copy each bucket out as soon as it has arrived, while the later ones travel
            # (a completed request becomes MPI.REQUEST_NULL; Waitany skips those).
            while True:
                k = MPI.Request.Waitany(requests)
                if k == MPI.UNDEFINED:
                    break
                bucket = self._buckets[k]
                self._copy_out(bucket.others, self._flat_params[bucket.dtype])
        else:
            for dt, flat in self._flat_params.items():
                comm.Allgather(MPI.IN_PLACE, [flat, self._mpi_type(dt)])
            for bucket in self._buckets:
                self._copy_out(bucket.others, self._flat_params[bucket.dtype])
        if counts:
            for i, stepping in enumerate(mask):
                if stepping:
                    steps[i] += 1

    # -- buffers and state ---------------------------------------------------------------------

    def _make_buckets(self) -> list[_Bucket]:
        buckets = []
        for layout in self._layouts.values():
            if self._bucket_bytes is None:
                ranges = [(0, layout.shard)]
            else:
                ranges = layout.buckets(self._bucket_bytes // layout.dtype.itemsize)
            buckets += [_Bucket(layout, self.rank, lo, hi) for lo, hi in ranges]
        return buckets

    def _bucket_lists(self, bucket: _Bucket, mask: tuple[bool, ...], averaged: bool) -> tuple:
        """A bucket's arguments for the native call that stay the same from step to step while
        the same parameters step and no state is created: the stepping parameters' indices,
        their pieces of the parameters, of the reduced gradients (unless ``averaged``) and of
        the state, and their ranges (for slicing the caller's gradients when ``averaged``)."""
        begin = self._layouts[bucket.dtype].window(self.rank)[0]
        state = self._state[bucket.dtype]
        names = self._opt._state_arrays
        indices, ps, gs, ranges = [], [], [], []
        arrays: dict[str, list] = {name: [] for name in names}
        for piece in bucket.own:
            i = piece.index
            if not mask[i]:
                continue
            lo = piece.flat - begin
            hi = lo + piece.end - piece.begin
            indices.append(i)
            ranges.append((i, piece.begin, piece.end))
            ps.append(self._flat_views[i][piece.begin : piece.end])
            if not averaged:
                gs.append(self._shard_grads[bucket.dtype][lo:hi])
            for name in names:
                arrays[name].append(state[name][lo:hi] if name in self._has[i] else None)
        return indices, ps, gs, arrays, ranges, [False] * len(indices)

    def _flat_grad(self, dt: np.dtype) -> np.ndarray:
        a = self._flat_grads.get(dt)
        if a is None:
            a = self._flat_grads[dt] = _core.zeros_state((self._layouts[dt].length,), dt)
        return a

    def _shard_grad(self, dt: np.dtype) -> np.ndarray:
        a = self._shard_grads.get(dt)
        if a is None:
            a = self._shard_grads[dt] = _core.zeros_state((self._layouts[dt].shard,), dt)
        return a

    def _copy_in(self, pieces: list[Piece], flat: np.ndarray) -> None:
        """Parameters' pieces into the flat buffer."""
        views = self._flat_views
        for piece in pieces:
            flat[piece.flat : piece.flat + piece.end - piece.begin] = views[piece.index][
                piece.begin : piece.end
            ]

    def _copy_out(self, pieces: list[Piece], flat: np.ndarray) -> None:
        """The flat buffer's pieces into the parameters."""
        views = self._flat_views
        for piece in pieces:
            views[piece.index][piece.begin : piece.end] = flat[
                piece.flat : piece.flat + piece.end - piece.begin
            ]

    def _own_pieces(self, i: int) -> list[Piece]:
        """Parameter ``i``'s pieces inside this rank's shard."""
        layout = self._layouts[self._params[i].dtype]
        begin, end = layout.window(self.rank)
        start = layout.start(i)
        lo, hi = max(begin, start), min(end, start + self._params[i].size)
        return [Piece(i, lo - start, hi - start, lo)] if lo < hi else []

    def _create_state(self, i: int, needed: Mapping[str, float]) -> bool:
        """Give parameter ``i`` the state arrays of ``needed`` it lacks (its elements of the own
        shard set to the initial value); True if any was created."""
        created = False
        dt = self._params[i].dtype
        layout = self._layouts[dt]
        begin = layout.window(self.rank)[0]
        for name, fill in needed.items():
            if name in self._has[i]:
                continue
            arrays = self._state[dt]
            if name not in arrays:
                # State in the parameters' dtype, as the native entry takes it for float32 and
                # float64; float32 state for float16/bfloat16 parameters would be chosen here.
                arrays[name] = _core.zeros_state((layout.shard,), dt)
            for piece in self._own_pieces(i):
                lo = piece.flat - begin
                arrays[name][lo : lo + piece.end - piece.begin] = fill
            self._has[i].add(name)
            created = True
            self._version += 1  # the cached argument lists lack it
        if self._opt._counts_steps or needed:
            self._stateful[i] = True
        return created

    # -- state dicts and checkpoints (checkpoint.py) ------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """This rank's state: its slices of the state arrays (copies, under ``'shards'``: dtype
        name -> state name -> array) with everything that is the same on every rank (class,
        parameter groups, parameter shapes, step counts, layouts). Loads back with
        ``load_state_dict`` on the same rank of the same world size; ``save``/``load`` and
        ``consolidated_state_dict`` work across world sizes. Not a collective."""
        return checkpoint.state_dict(self)

    def consolidated_state_dict(self, root: int = 0) -> dict[str, Any] | None:
        """The whole state gathered to rank ``root`` in the single-process optimizer's (and
        torch's) ``state_dict`` layout, which ``fastadam.Adam.load_state_dict`` and this
        class's ``load_state_dict`` take at any world size; None on the other ranks.
        A collective: every rank calls it. Rank ``root`` briefly holds the full state."""
        return checkpoint.consolidated_state_dict(self, root)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a consolidated state dict (torch's layout, from ``consolidated_state_dict`` or
        a single-process optimizer; every rank passes it and keeps its own slice), or this
        rank's own ``state_dict()``. A collective; everything is checked, on every rank, before
        anything changes."""
        checkpoint.load_state_dict(self, state_dict)

    def save(self, path: Any) -> None:
        """Write a checkpoint folder: one file per rank and ``index.json``, each written
        atomically, the index last (the previous checkpoint in the folder stays whole until
        then). A collective; the folder must be visible to every rank. Parameters are not
        saved (they are the same on every rank: save them from one)."""
        checkpoint.save(self, path)

    def load(self, path: Any) -> None:
        """Read a checkpoint folder written by ``save`` at any world size, each rank reading
        only the saved slices that overlap its own. A collective; checked on every rank before
        anything changes."""
        checkpoint.load(self, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank {self.rank} of {self.world}) over " + repr(
            self._opt
        ).replace("\n", "\n    ")


def _plain(group: Mapping[str, Any]) -> dict[str, Any]:
    """A group's hyper-parameters (not its arrays), for comparing across ranks."""
    return {key: value for key, value in group.items() if key != "params"}


def _snapshot(group: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A group's entries as they are now (lists copied, arrays copied: an lr held in a 0-d
    array may be changed in place), to notice a change by the next step."""
    return [(key, _frozen(value)) for key, value in group.items() if key != "params"]


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, np.ndarray):
        return (np.ndarray, value.dtype.str, value.shape, value.tobytes())
    return value
