"""A sweep's plan: every hparam point, the chunk layout, the memory estimate and the sweep id, decided and validated
before any compute (:func:`plan`). The plan is the same on every process of a multi-process run; its
``sweep_id`` (config, hparams, key, layout, dtype, code identity, build flags) names the cache folder and is
compared across processes before the first chunk."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sims.engine.build import RunFn, build_flags
from sims.engine.identity import code_identity, config_to_json
from sims.engine.options import current

__all__ = ["SweepPlan", "plan", "available_memory"]

Array = jax.Array


def _hparam_points(
    axes: Mapping[str, Sequence[float]], mode: str
) -> tuple[dict[str, np.ndarray], list[str], list[int]]:
    """Flatten named axes into P points. Returns (flat values per name, dims, shape)."""
    if mode not in ("grid", "zip"):
        raise ValueError(f"mode must be 'grid' or 'zip', got {mode!r}")
    if not axes:
        return {}, [], []
    vals = {k: np.asarray(v) for k, v in axes.items()}
    for k, v in vals.items():
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"hparam axis {k!r} must be a non-empty 1-D list of values")
    if mode == "grid":
        for k, v in vals.items():
            u, n = np.unique(v, return_counts=True)
            if (n > 1).any():
                raise ValueError(f"hparam axis {k!r} repeats the value(s) {u[n > 1].tolist()}: each value once")
        names = list(vals)
        shape = [vals[k].size for k in names]
        mesh = np.meshgrid(*[vals[k] for k in names], indexing="ij")
        return {k: m.reshape(-1) for k, m in zip(names, mesh)}, names, shape
    sizes = {v.size for v in vals.values()}
    if len(sizes) != 1:
        raise ValueError(f"mode='zip' needs equally long hparam lists, got sizes {sorted(sizes)}")
    pts = list(zip(*[v.tolist() for v in vals.values()]))
    if len(set(pts)) != len(pts):
        dup = sorted({q for q in pts if pts.count(q) > 1})
        raise ValueError(f"mode='zip' repeats the point(s) {dup} of ({', '.join(vals)}): each point once")
    return vals, ["point"], [sizes.pop()]


def _chunk_sizes(per_run_bytes: int, n_points: int, n_seeds: int, max_bytes: int, chunk_seeds: int | None = None):
    """Seeds per device and hparam points per chunk, so that one device's share of a chunk's outputs stays under
    ``max_bytes`` (and the seeds per device at most ``chunk_seeds``). The same whatever the device count: XLA's
    CPU code can round differently for another batch size (a vectorized loop and its remainder; seen at 1 ulp), so
    every device computes the very batch one device alone would (seeds [s0 + d * s_dev, s0 + (d + 1) * s_dev) on
    device d), and the bits do not depend on how many devices or processes share the sweep."""
    max_runs = max(1, max_bytes // max(per_run_bytes, 1))
    s_dev = min(n_seeds, max_runs, chunk_seeds or n_seeds)
    h_c = max(1, min(n_points, max_runs // s_dev))
    return s_dev, h_c


class _ReadLog(dict):
    """The hparams dict given to a run while it is traced for shapes: records the names the run reads.
    Iteration, ``keys``/``items``/``values`` and copying count as reading every name."""

    def __init__(self, d):
        super().__init__(d)
        self.read: set[str] = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.read.add(k)
        return super().get(k, default)

    def __contains__(self, k):
        self.read.add(k)
        return super().__contains__(k)

    def _all(self):
        self.read |= set(super().keys())

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _trace_info(run: RunFn, one_hp: dict) -> tuple[Any, set[str]]:
    """(output shapes, hparam names read) of ``run`` for hparams of these names/dtypes, traced once per run
    object and hparam signature (a repeated sweep does not trace again)."""
    sig = tuple(sorted((k, str(v.dtype), v.shape) for k, v in one_hp.items()))
    return _traced(run, sig, bool(jax.config.jax_enable_x64))


@functools.cache
def _traced(run: RunFn, sig: tuple, x64: bool) -> tuple[Any, frozenset]:
    one_hp = {k: jnp.zeros(shape, dtype) for k, dtype, shape in sig}
    read: set[str] = set()

    def traced(k, hp):
        log_ = _ReadLog(hp)
        out = run(k, log_)
        read.update(log_.read)
        return out

    return jax.eval_shape(traced, jax.random.key(0), one_hp), frozenset(read)


@dataclasses.dataclass(frozen=True, eq=False)
class SweepPlan:
    """Everything a sweep will do, decided and validated before any compute (see :func:`plan`)."""

    run: RunFn
    axes: dict
    fixed: dict
    mode: str
    seeds: int
    key: Array
    steps: np.ndarray | None
    dims: dict
    coords: dict
    cfg: Any
    flat: dict  # name -> (n_points,) hparam values (swept and fixed), cast
    hp_dims: list
    hp_shape: list
    n_points: int
    seeds_per_chunk: int
    points_per_chunk: int
    per_run_bytes: int
    dtype: np.dtype
    n_dev: int
    sweep_id: str
    code_id: str
    code_files: tuple
    steps_per_run: int | None

    @property
    def chunks(self) -> list[tuple[int, int]]:
        return list(itertools.product(range(0, self.n_points, self.points_per_chunk),
                                      range(0, self.seeds, self.seeds_per_chunk)))



def plan(
    run: RunFn,
    axes: Mapping[str, Sequence[float]] | None = None,
    *,
    seeds: int,
    key: Array,
    steps: np.ndarray | None = None,
    mode: str = "grid",
    fixed: Mapping[str, float] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    cfg: Any = None,
    max_bytes: int = 256 * 2**20,
    steps_per_run: int | None = None,
    dtype: Any = None,
    chunk_seeds: int | None = None,
) -> SweepPlan:
    """Validate a sweep and lay it out in chunks, without computing it.

    Args (``run``, ``axes``, ``seeds``, ``key`` as :func:`sims.sweep.sweep`):
      steps: coordinate of the record axis of ``traj`` (dim ``step``).
      mode: ``'grid'`` (Cartesian product of ``axes``) or ``'zip'`` (equal-length lists, one dim ``point``).
      fixed: hparams held constant (not swept) passed to every run (recorded in ``attrs['fixed_hparams']``).
      dims: extra dim names for trailing axes of a variable (``{"x": ("coord",)}``).
      coords: coordinates for extra dims.
      cfg: the static config (stored in attrs and hashed into the sweep id).
      max_bytes: memory bound on one device's share of a chunk's outputs; chunks split (hparam x seed).
      steps_per_run: steps of one run (the progress rate).
      dtype: dtype to cast float hparams to (default: jax's default float).
      chunk_seeds: at most this many seeds per device in one chunk (default: as many as ``max_bytes`` allows).
        Small chunks let :func:`sims.sweep.sweep`'s ``workers`` run them side by side; another batch size can
        round differently (a vectorized loop and its remainder).

    Raises ``ValueError`` for: seeds < 1; an hparam both swept and fixed; a swept axis with a repeated value
    (grid) or a repeated point (zip); an hparam name the run never reads (a misspelt name would otherwise be an
    extra, identical dimension)."""
    if not isinstance(seeds, (int, np.integer)) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
    if chunk_seeds is not None and (not isinstance(chunk_seeds, (int, np.integer)) or isinstance(chunk_seeds, bool)
                                    or chunk_seeds < 1):
        raise ValueError(f"chunk_seeds must be None or an integer >= 1, got {chunk_seeds!r}")
    axes = dict(axes or {})
    fixed = dict(fixed or {})
    overlap = set(axes) & set(fixed)
    if overlap:
        raise ValueError(f"hparams {sorted(overlap)} are both swept and fixed")
    for k, v in {**axes, **fixed}.items():
        arr = np.asarray(v)
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            raise ValueError(f"hparam {k!r} has a non-finite value {arr.tolist()}: every hparam value must be "
                             "finite (a NaN or inf is bad input, not a divergence to report)")
    flat, hp_dims, hp_shape = _hparam_points(axes, mode)
    n_points = int(np.prod(hp_shape)) if hp_shape else 1
    fdtype = np.dtype(dtype or jnp.zeros(()).dtype)

    def _cast(v):
        v = np.asarray(v)
        return v.astype(fdtype) if np.issubdtype(v.dtype, np.floating) else v

    flat_all = {k: _cast(v) for k, v in flat.items()}
    flat_all.update({k: np.full((n_points,), _cast(v)) for k, v in fixed.items()})

    # shapes only: the per-run output size, and which hparam names the run reads
    one_hp = {k: jnp.asarray(v[0]) for k, v in flat_all.items()}
    out_shape, read = _trace_info(run, one_hp)
    unread = sorted(set(flat_all) - read)
    if unread:
        raise ValueError(f"hparam(s) {unread} are not read by the run (misspelt?); it reads "
                         f"{sorted(read) or 'no hparams'}")
    per_run_bytes = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(out_shape))
    need = 2 * per_run_bytes * n_points * int(seeds)  # the chunks and the assembled arrays
    avail = available_memory()
    if avail is not None and need > avail and not current().allow_large:
        raise ValueError(
            f"the sweep's outputs need about {need / 2**30:.3g} GiB ({int(seeds)} seeds x {n_points} hparam points x "
            f"{per_run_bytes} bytes per run, twice while assembling) but {avail / 2**30:.3g} GiB of memory is "
            "available: lower seeds, the number of points, n_steps or raise log_every (--force to run anyway)")
    n_dev = jax.device_count()  # every process's devices: each chunk is one SPMD program over all of them
    s_dev, h_c = _chunk_sizes(per_run_bytes, n_points, seeds, max_bytes, chunk_seeds)
    s_c = s_dev * n_dev  # a chunk spans every device, each with the one-device batch
    code_id, code_files = code_identity(getattr(run, "__module__", "") or "")
    key_data = np.asarray(jax.random.key_data(key))
    sweep_id = hashlib.sha256(json.dumps({
        "cfg": config_to_json(cfg),
        "axes": {k: np.asarray(v).tolist() for k, v in axes.items()},
        "fixed": {k: np.asarray(v).tolist() for k, v in fixed.items()},
        "mode": mode, "seeds": seeds, "key": key_data.tolist(), "layout": [s_c, h_c],
        "dtype": str(fdtype), "x64": bool(jax.config.jax_enable_x64), "code": code_id,
        "run": getattr(run, "__qualname__", repr(run)),
        "jax": jax.__version__, "platform": jax.devices()[0].platform, "n_dev": n_dev, "build": build_flags(),
    }, sort_keys=True).encode()).hexdigest()[:16]
    return SweepPlan(run, axes, fixed, mode, int(seeds), key, steps, dict(dims or {}), dict(coords or {}), cfg,
                     flat_all, hp_dims, hp_shape, n_points, s_c, h_c, per_run_bytes, fdtype, n_dev, sweep_id, code_id,
                     code_files, steps_per_run)
