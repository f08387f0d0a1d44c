"""The sweep engine's public face: :func:`sweep` runs a simulation over named hparam axes x seeds and returns an
:class:`xarray.Dataset`; the machinery lives in :mod:`sims.engine` (one concern per module).

A simulation is ``make_run(cfg) -> run(key, hparams) -> (final, traj)`` where ``cfg`` is a static, hashable config
(a frozen dataclass), ``key`` a typed PRNG key, ``hparams`` a dict of scalar arrays, ``final`` a dict of per-run
arrays and ``traj`` a dict of arrays whose leading axis is the record axis (``step``). Sim modules bundle it as
:class:`Sim` (``sim(cfg)``).

Contract: seed ``s`` of a sweep gets ``fold_in(key, s)`` whatever the hparams or the chunking (common random
numbers across hparams), so a result has the same bits whatever the chunk size, device count or process count.

Options besides the arguments (cache folder, progress, ``allow_large``, provenance collectors) are one frozen
:class:`~sims.engine.options.Options` in a context variable: ``with options(cache_dir=...):``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import xarray as xr

from sims.engine import cache, distributed
from sims.engine.assemble import assemble
from sims.engine.assemble import collect as collect_provenance
from sims.engine.build import RunFn, batched, build_flags, compiler_options, jit
from sims.engine.execute import concurrent, execute_chunk, interruptible, side_by_side
from sims.engine.identity import code_identity, config_to_json, environment
from sims.engine.loop import LoopOut, check_loop, noise_chunk_for, noise_stream, record_steps, scan_with_records
from sims.engine.options import Options, current, options
from sims.engine.plan import SweepPlan, plan
from sims.engine.progress import Bar
from sims.tune import Tuned, tune_lr

__all__ = [
    "sweep", "Sim", "options", "Options", "collect_provenance", "concurrent", "side_by_side", "interruptible", "plan",
    "SweepPlan",
    "execute_chunk", "assemble", "batched", "jit", "compiler_options", "build_flags", "code_identity",
    "config_to_json", "environment", "LoopOut", "scan_with_records", "record_steps", "check_loop", "noise_chunk_for",
    "noise_stream", "tune_lr", "Tuned",
]


class Sim(NamedTuple):
    """A simulation bundle: the run function and what a sweep needs to label its outputs, so that a call is
    ``sweep(sim, axes, seeds=..., key=...)``. Sim modules build it with ``sim(cfg)``."""

    run: RunFn
    cfg: Any  # the static config (recorded in the Dataset, hashed into the cache key)
    steps: np.ndarray | None  # the record steps (coordinate ``step``)
    dims: Mapping[str, tuple] = {}  # names of trailing axes of outputs, e.g. {"x": ("coord",)}
    steps_per_run: int | None = None  # for the progress bar's steps/s

    @classmethod
    def of(cls, run: RunFn, cfg: Any, dims: Mapping[str, tuple] | None = None) -> Sim:
        """The bundle of a config with ``steps()`` and ``n_steps`` (or ``horizon``)."""
        n = getattr(cfg, "n_steps", None) or getattr(cfg, "horizon", None)
        return cls(run, cfg, cfg.steps(), dict(dims or {}), n)


def sweep(
    run: RunFn | Sim,
    axes: Mapping[str, Sequence[float]] | None = None,
    *,
    seeds: int,
    key: jax.Array,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    workers: int = 1,
    **plan_options: Any,
) -> xr.Dataset:
    """Run ``run`` over named hparam ``axes`` x ``seeds`` and return an ``xarray.Dataset``: :func:`plan`, then one
    compiled call per chunk (through the cache), then :func:`assemble`.

    Args:
      run: ``run(key, hparams) -> (final, traj)``, or a :class:`Sim` bundle (it supplies ``steps``, ``cfg``,
        ``dims`` and ``steps_per_run``).
      axes: name -> 1-D values. ``mode='grid'``: the Cartesian product (one dim per name); ``mode='zip'``:
        equal-length lists zipped into one dim ``point``. Repeated values are an error.
      seeds: number of seeds (>= 1). Seed ``s`` uses ``fold_in(key, s)``.
      key: typed PRNG key.
      cache_dir: each chunk is saved there as it finishes, and a rerun of the same sweep (same config, hparams,
        key, layout, code identity and build flags) loads finished chunks instead of recomputing them. None: the
        ``cache_dir`` of the :func:`options` in force (none by default).
      progress: a progress bar (terminal or Jupyter) or periodic log lines; None: the options' (on by default).
      workers: chunks computed at once (:func:`concurrent`; one process only). On a CPU, with small chunks
        (``chunk_seeds=1``) and ``workers=side_by_side()``, seeds of small models train side by side (bb_attention's
        four Bigram-Backcopy models: ~20% less time, benchmarks/RESULTS.md); the same bits as ``workers=1`` with the
        same chunks.
      **plan_options: ``steps``, ``mode``, ``fixed``, ``dims``, ``coords``, ``cfg``, ``max_bytes``,
        ``steps_per_run``, ``dtype``, ``chunk_seeds``, as :func:`sims.engine.plan.plan` documents them
        (``fixed``: hparams held constant; ``max_bytes``: memory bound on one device's share of a chunk's outputs;
        ``chunk_seeds``: at most this many seeds per device in one chunk).

    Several processes (after :func:`sims.engine.distributed.initialize`): every process makes the same calls;
    each chunk's seeds are split over all their devices and every process returns the whole Dataset.

    The Dataset has ``diverged`` (bool) and ``diverged_step`` (int, -1 if finite) per run; ``attrs['n_diverged']``
    counts them and a warning is logged when any diverged. Its attrs say what made it (see :func:`assemble`).
    """
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if workers > 1 and jax.process_count() > 1:
        raise ValueError(f"workers={workers} runs chunks in threads, but {jax.process_count()} processes share this "
                         "sweep and must make the same calls in the same order: workers=1 (or side_by_side())")
    if isinstance(run, Sim):  # the bundle supplies what the caller did not
        plan_options = {"steps": run.steps, "cfg": run.cfg, "steps_per_run": run.steps_per_run} | {
            k: v for k, v in plan_options.items() if v is not None}
        plan_options["dims"] = {**run.dims, **(plan_options.get("dims") or {})}
        run = run.run
    p = plan(run, axes, seeds=seeds, key=key, **plan_options)
    opts = current()
    cache_dir = opts.cache_dir if cache_dir is None else cache_dir
    progress = opts.progress if progress is None else progress
    distributed.agree_on_plan(p.sweep_id)
    results = {c: cache.load(p, cache_dir, *c) for c in p.chunks}
    todo = distributed.any_missing([results[c] is not None for c in p.chunks])
    per_run = p.steps_per_run or 1
    bar = Bar(per_run * p.n_points * p.seeds, max(len(p.steps) - 1, 1) if p.steps is not None else 1, per_run) \
        if progress else None

    def compute(c):
        h0, s0 = c
        runs = min(p.points_per_chunk, p.n_points - h0) * min(p.seeds_per_chunk, p.seeds - s0)
        sink = bar.chunk(runs) if bar is not None else None
        res = execute_chunk(p, h0, s0, sink)
        if results[c] is None:
            cache.save(p, cache_dir, h0, s0, res)
        if bar is not None:
            bar.finish_chunk(runs, sink)
        return res

    new = [c for c, missing in zip(p.chunks, todo) if missing]
    if bar is not None:  # chunks from the cache
        for h0, s0 in (c for c in p.chunks if c not in new):
            bar.finish_chunk(min(p.points_per_chunk, p.n_points - h0) * min(p.seeds_per_chunk, p.seeds - s0))
    # in worker threads (the main thread waits in short joins: Ctrl-C stops at once), `workers` at a time
    results.update(zip(new, concurrent([functools.partial(compute, c) for c in new], max_workers=workers)))
    if bar is not None:
        bar.close()
    computed = len(new)
    ds = assemble(p, results)
    ds.attrs["chunks_computed"] = computed
    return ds
