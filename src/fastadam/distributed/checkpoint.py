"""State dicts and checkpoint folders of the sharded optimizers, and re-sharding on load.

``save(path)`` writes a folder: one ``.npz`` file per rank with that rank's state slices
(``shard-<token>-<rank>-of-<world>.npz``, no pickle) and ``index.json``, which names the files
of the checkpoint and holds everything that is the same on every rank (class, parameter groups,
parameter shapes, step counts, layouts). Every file is written atomically (a temporary file in
the same folder, flushed and fsynced, renamed over the target, then the folder fsynced), the rank
files first under a fresh token, the index last: until the new index replaces the old one, the
old checkpoint is intact and complete. The previous checkpoint's files are removed after that.

``load(path)`` works at any world size: a parameter's elements ``[a, b)`` at flat offset ``o``
of the saved layout lie in saved rank ``(o + a) // shard``, so each rank reads only the saved
slices that overlap its own (one file's array at a time).
"""

from __future__ import annotations

import json
import numbers
import os
import secrets
import zipfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core
from ..optim.base import step_value
from ..optim.checkpoint import CLASSES, write_atomically
from ..optim.validation import as_step, check_state_dict_layout, loaded_state
from .agreement import agree
from .layout import DtypeLayout

if TYPE_CHECKING:
    from .sharded import ShardedOptimizer

FORMAT = "fastadam.distributed"
VERSION = 1
INDEX = "index.json"


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a parameter group holds a value JSON cannot store: {value!r}")


def common_meta(opt: ShardedOptimizer) -> dict[str, Any]:
    """Everything about the state that is the same on every rank."""
    groups = []
    k = 0
    for group in opt.param_groups:
        packed = {key: value for key, value in group.items() if key != "params"}
        packed["params"] = list(range(k, k + len(group["params"])))
        k += len(group["params"])
        groups.append(packed)
    return {
        "format": FORMAT,
        "version": VERSION,
        "class": type(opt._opt).__name__,
        "world_size": opt.world,
        "param_groups": groups,
        "params": [[list(p.shape), p.dtype.str] for p in opt._params],
        "steps": list(opt._steps),
        "arrays": [sorted(h) for h in opt._has],
        "stateful": list(opt._stateful),
        "layouts": [layout.describe() for layout in opt._layouts.values()],
    }


def state_dict(opt: ShardedOptimizer) -> dict[str, Any]:
    sd = common_meta(opt)
    sd["rank"] = opt.rank
    sd["shards"] = {
        dt.name: {name: a.copy() for name, a in arrays.items()} for dt, arrays in opt._state.items()
    }
    return sd


def consolidated_state_dict(opt: ShardedOptimizer, root: int) -> dict[str, Any] | None:
    comm = opt.comm
    error = None
    if isinstance(root, bool) or not isinstance(root, numbers.Integral):
        error = TypeError(f"root must be an int, got {root!r}")
    elif not 0 <= root < opt.world:
        error = ValueError(f"root must be a rank from 0 to {opt.world - 1}, got {root}")
    # every rank must gather to the same root, or the Gather below never completes
    agree(comm, error, None if error else {"root": int(root)}, "the root rank")
    root = int(root)
    full: dict[tuple[np.dtype, str], np.ndarray] = {}
    for dt, layout in opt._layouts.items():
        kind = opt._mpi_type(dt)
        for name in sorted(opt._state[dt]):  # the same names on every rank
            recv = np.empty(layout.length, dt) if opt.rank == root else None
            comm.Gather(
                [opt._state[dt][name], kind], [recv, kind] if recv is not None else None, root=root
            )
            full[(dt, name)] = recv
    if opt.rank != root:
        return None
    state: dict[int, dict[str, Any]] = {}
    for i, p in enumerate(opt._params):
        if not opt._stateful[i]:
            continue
        s: dict[str, Any] = {"step": step_value(opt._steps[i])} if opt._opt._counts_steps else {}
        layout = opt._layouts[p.dtype]
        start = layout.start(i)
        for name in opt._opt._state_arrays:
            if name in opt._has[i]:
                s[name] = full[(p.dtype, name)][start : start + p.size].reshape(p.shape)
        state[i] = s
    return {"state": state, "param_groups": common_meta(opt)["param_groups"]}


# -- loading -----------------------------------------------------------------------------------


class _Staged:
    """New state, complete and checked, not yet installed."""

    def __init__(self, groups, steps, has, stateful, state) -> None:
        self.groups, self.steps, self.has, self.stateful, self.state = (
            groups,
            steps,
            has,
            stateful,
            state,
        )
        self.desc = {
            "param_groups": groups,
            "step counts": steps,
            "state arrays": [sorted(h) for h in has],
        }


def _stage(
    opt: ShardedOptimizer,
    saved_groups: Any,
    steps: list[int],
    has: list[set[str]],
    stateful: list[bool],
    source: Callable[[int, str, int, int], np.ndarray],
) -> _Staged:
    saved_groups = list(saved_groups)
    if len(saved_groups) != len(opt.param_groups):
        raise ValueError("loaded state dict has a different number of parameter groups")
    groups = []
    for gi, (group, saved) in enumerate(zip(opt.param_groups, saved_groups)):
        if len(list(saved["params"])) != len(group["params"]):
            raise ValueError(
                f"loaded state dict's parameter group {gi} has {len(list(saved['params']))} "
                f"parameters, the optimizer's has {len(group['params'])}"
            )
        new = dict(opt.defaults)
        new.update((key, value) for key, value in saved.items() if key != "params")
        groups.append(opt._opt._normalized(new))
    for i, names in enumerate(has):
        unknown = set(names) - set(opt._opt._state_arrays)
        if unknown:
            raise ValueError(
                f"state[{i}] holds {sorted(unknown)}, unknown to {type(opt._opt).__name__}"
            )
    state: dict[np.dtype, dict[str, np.ndarray]] = {}
    for dt, layout in opt._layouts.items():
        begin, end = layout.window(opt.rank)
        state[dt] = {}
        for name in sorted({n for i in layout.indices for n in has[i]}):
            a = _core.zeros_state((layout.shard,), dt)
            for piece in layout.pieces(begin, end):
                if name in has[piece.index]:
                    lo = piece.flat - begin
                    np.copyto(
                        a[lo : lo + piece.end - piece.begin],
                        source(piece.index, name, piece.begin, piece.end),
                        casting="same_kind",
                    )
            state[dt][name] = a
    return _Staged(groups, list(steps), [set(h) for h in has], list(stateful), state)


def _install(opt: ShardedOptimizer, staged: _Staged) -> None:
    for group, new in zip(opt.param_groups, staged.groups):
        params = group["params"]
        group.clear()  # in place: code holding a group (an lr schedule) keeps working
        group.update(new)
        group["params"] = params
    opt._steps = staged.steps
    opt._has = staged.has
    opt._stateful = staged.stateful
    opt._state = staged.state
    opt._version += 1  # the cached argument lists point into the replaced state
    opt._last_plan = None


def _from_consolidated(opt: ShardedOptimizer, sd: Any) -> _Staged:
    if not isinstance(sd, Mapping) or not {"state", "param_groups"} <= set(sd):
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
    check_state_dict_layout(sd)
    n = len(opt._params)
    # Parameters are matched by their place in the groups, as fastadam.Adam and torch do: the
    # k-th index listed in the saved groups names the optimizer's k-th parameter.
    position = {
        int(index): k for k, index in enumerate(i for g in sd["param_groups"] for i in g["params"])
    }
    steps, has, stateful = [0] * n, [set() for _ in range(n)], [False] * n
    flat: dict[tuple[int, str], np.ndarray] = {}
    for key, saved in sd["state"].items():
        i = position.get(int(key), -1)
        if not 0 <= i < n:
            raise ValueError(f"state[{key!r}] names no parameter of this optimizer")
        if not isinstance(saved, Mapping):
            raise TypeError(f"state[{i}] must be a dict, got {type(saved).__name__}")
        p = opt._params[i]
        if opt._opt._counts_steps:
            steps[i] = as_step(saved.get("step"), f"state[{i}]['step']")
        for name in opt._opt._state_arrays:
            value = saved.get(name)
            if value is not None:
                flat[(i, name)] = loaded_state(value, p, f"state[{i}][{name!r}]").reshape(-1)
                has[i].add(name)
            elif name in opt._opt._required_arrays:
                raise ValueError(f"state[{i}] has no {name!r}")
        stateful[i] = True
    return _stage(
        opt, sd["param_groups"], steps, has, stateful, lambda i, name, a, b: flat[(i, name)][a:b]
    )


class _Shards:
    """Reads a parameter's state elements out of saved per-rank slices of any world size;
    ``fetch(rank, dtype_name, name)`` gives one saved slice, and the last two stay cached."""

    def __init__(self, opt: ShardedOptimizer, meta: Mapping[str, Any], fetch) -> None:
        self.layouts: dict[int, DtypeLayout] = {}
        for d in meta["layouts"]:
            layout = DtypeLayout.from_description(d)
            for i in layout.indices:
                self.layouts[i] = layout
        for dt, mine in opt._layouts.items():
            for i in mine.indices:
                saved = self.layouts.get(i)
                if saved is None or saved.dtype != dt:
                    raise ValueError(f"the checkpoint's layout has no {dt} parameter {i}")
        self.fetch = fetch
        self.cache: dict[tuple[int, str, str], np.ndarray] = {}

    def _slice(self, w: int, layout: DtypeLayout, name: str) -> np.ndarray:
        key = (w, layout.dtype.name, name)
        a = self.cache.get(key)
        if a is None:
            if len(self.cache) >= 2:
                del self.cache[next(iter(self.cache))]
            a = self.fetch(w, layout.dtype.name, name)
            if a.shape != (layout.shard,) or a.dtype != layout.dtype:
                raise ValueError(
                    f"rank {w}'s {name!r} slice has shape {a.shape} and dtype {a.dtype}, "
                    f"expected ({layout.shard},) {layout.dtype}"
                )
            self.cache[key] = a
        return a

    def __call__(self, i: int, name: str, a: int, b: int) -> np.ndarray:
        layout = self.layouts[i]
        start = layout.start(i)
        lo, hi = start + a, start + b
        out = np.empty(b - a, layout.dtype)
        pos = lo
        while pos < hi:
            w = pos // layout.shard
            end = min(hi, (w + 1) * layout.shard)
            out[pos - lo : end - lo] = self._slice(w, layout, name)[
                pos - w * layout.shard : end - w * layout.shard
            ]
            pos = end
        return out


def _check_meta(opt: ShardedOptimizer, meta: Any) -> None:
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
        raise ValueError("not a fastadam.distributed state (no matching 'format')")
    if meta.get("version") != VERSION:
        raise ValueError(f"unknown fastadam.distributed state version {meta.get('version')!r}")
    writer = CLASSES.get(meta.get("class"))
    if writer is None or writer._state_arrays != opt._opt._state_arrays:
        raise ValueError(
            f"the state was written by {meta.get('class')!r}, whose state does not fit "
            f"{type(opt._opt).__name__}"
        )
    mine = [[list(p.shape), p.dtype.str] for p in opt._params]
    saved = [[list(s), str(d)] for s, d in meta["params"]]
    if len(saved) != len(mine):
        raise ValueError(f"the state has {len(saved)} parameters, the optimizer {len(mine)}")
    for i, (a, b) in enumerate(zip(saved, mine)):
        if a != b:
            raise ValueError(
                f"parameter {i} is {tuple(a[0])} {np.dtype(a[1])} in the state but "
                f"{tuple(b[0])} {np.dtype(b[1])} in the optimizer"
            )


def _from_meta(opt: ShardedOptimizer, meta: Mapping[str, Any], fetch) -> _Staged:
    _check_meta(opt, meta)
    n = len(opt._params)
    steps = [as_step(t, f"steps[{i}]") for i, t in enumerate(meta["steps"])]
    has = [set(h) for h in meta["arrays"]]
    stateful = [bool(s) for s in meta["stateful"]]
    if not len(steps) == len(has) == len(stateful) == n:
        raise ValueError("the state's per-parameter lists do not match its parameters")
    for i in range(n):
        for name in opt._opt._required_arrays if stateful[i] else ():
            if name not in has[i]:
                raise ValueError(f"the state of parameter {i} has no {name!r}")
    return _stage(opt, meta["param_groups"], steps, has, stateful, _Shards(opt, meta, fetch))


def load_state_dict(opt: ShardedOptimizer, sd: Any) -> None:
    error = staged = None
    try:
        if isinstance(sd, Mapping) and sd.get("format") == FORMAT:
            if sd.get("world_size") != opt.world or sd.get("rank") != opt.rank:
                raise ValueError(
                    f"a per-rank state dict of rank {sd.get('rank')} of {sd.get('world_size')} "
                    f"loads only on that rank of that world size (this is rank {opt.rank} of "
                    f"{opt.world}); save() and load() re-shard"
                )
            shards = sd["shards"]
            staged = _from_meta(opt, sd, lambda w, dt, name: np.asarray(shards[dt][name]))
        else:
            staged = _from_consolidated(opt, sd)
    except Exception as exc:  # noqa: BLE001 - any failure is agreed on, or ranks deadlock
        error = exc
    agree(opt.comm, error, None if staged is None else staged.desc, "the loaded states")
    _install(opt, staged)


# -- checkpoint folders --------------------------------------------------------------------------


def _file_name(token: str, rank: int, world: int) -> str:
    return f"shard-{token}-{rank:05d}-of-{world:05d}.npz"


def _remove(path: str | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def _previous_files(folder: str) -> list[str]:
    try:
        with open(os.path.join(folder, INDEX), encoding="utf-8") as f:
            return [str(name) for name in json.load(f).get("files", [])]
    except (OSError, ValueError, AttributeError):
        return []


def save(opt: ShardedOptimizer, path: str | os.PathLike[str]) -> None:
    comm = opt.comm
    token = comm.bcast(secrets.token_hex(8) if opt.rank == 0 else None, root=0)
    error = written = None
    try:
        folder = os.fspath(path)
        files = [_file_name(token, w, opt.world) for w in range(opt.world)]
        index = dict(common_meta(opt), token=token, files=files)
        index_text = json.dumps(index, allow_nan=True, default=_json_value, indent=1)
        arrays: dict[str, Any] = {
            f"shard.{dt.name}.{name}": a for dt, d in opt._state.items() for name, a in d.items()
        }
        mine = {"format": FORMAT, "version": VERSION, "token": token, "rank": opt.rank}
        arrays["meta"] = np.frombuffer(json.dumps(mine).encode("utf-8"), dtype=np.uint8)
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, files[opt.rank])
        write_atomically(target, lambda f: np.savez(f, **arrays))
        written = target
    except Exception as exc:  # noqa: BLE001 - any failure is agreed on, or ranks deadlock
        error = exc
    try:
        agree(comm, error, None, "the checkpoint")
        error = None
        old: list[str] = []
        if opt.rank == 0:
            try:
                # The index may name only files that are there: a rank that wrote elsewhere
                # (another path, a folder not shared) would leave it naming a missing file.
                for w, name in enumerate(files):
                    if not os.path.exists(os.path.join(folder, name)):
                        raise ValueError(
                            f"rank {w}'s file {name} is not in rank 0's folder {folder}: every "
                            "rank must save to the same folder, visible to all of them"
                        )
                old = _previous_files(folder)
                write_atomically(
                    os.path.join(folder, INDEX), lambda f: f.write(index_text.encode("utf-8"))
                )
            except Exception as exc:  # noqa: BLE001 - any failure is agreed on, or ranks deadlock
                error = exc
        agree(comm, error, None, "the checkpoint")
    except BaseException:
        _remove(written)  # the previous index, still in place, does not name it
        raise
    for name in old:
        if name not in files and os.path.basename(name) == name:
            _remove(os.path.join(folder, name))


def load(opt: ShardedOptimizer, path: str | os.PathLike[str]) -> None:
    error = staged = None
    opened: dict[int, Any] = {}
    try:
        folder = os.fspath(path)
        with open(os.path.join(folder, INDEX), encoding="utf-8") as f:
            index = json.load(f)
        _check_meta(opt, index)
        files = list(index["files"])
        if len(files) != index["world_size"]:
            raise ValueError(f"{INDEX} names {len(files)} files for {index['world_size']} ranks")

        def fetch(w: int, dt: str, name: str) -> np.ndarray:
            npz = opened.get(w)
            file = os.path.join(folder, os.path.basename(files[w]))
            try:
                if npz is None:
                    npz = opened[w] = np.load(file, allow_pickle=False)
                    if not isinstance(npz, np.lib.npyio.NpzFile):
                        raise ValueError("not a .npz archive")
                    meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
                    if meta.get("token") != index.get("token") or meta.get("rank") != w:
                        raise ValueError("it does not belong to this checkpoint's index")
                key = f"shard.{dt}.{name}"
                if key not in npz.files:
                    raise ValueError(f"it has no {key!r}")
                return npz[key]
            except (ValueError, KeyError, EOFError, OSError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{file}: {exc}") from exc

        staged = _from_meta(opt, index, fetch)
    except Exception as exc:  # noqa: BLE001 - any failure is agreed on, or ranks deadlock
        error = exc
    finally:
        for npz in opened.values():
            if isinstance(npz, np.lib.npyio.NpzFile):
                npz.close()
    agree(opt.comm, error, None if staged is None else staged.desc, "the loaded states")
    _install(opt, staged)
