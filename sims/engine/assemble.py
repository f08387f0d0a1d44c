"""Assembling a sweep's chunks into one self-describing :class:`xarray.Dataset`: hparam dims (grid) or ``point``
(zip), ``seed``, ``step`` for trajectories, the divergence flags, and attrs that say what made it (config, fixed
hparams, sweep id, code identity, versions, device, build flags). Each finished sweep also hands a provenance
record to the collectors in force (:func:`collect`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
import xarray as xr

from sims.engine.identity import config_to_json, environment
from sims.engine.options import OPTIONS, current
from sims.engine.plan import SweepPlan

__all__ = ["assemble", "collect"]

log = logging.getLogger("sims.sweep")


@contextlib.contextmanager
def collect() -> Iterator[list]:
    """Collect the provenance record of every sweep that finishes inside the block (in any thread the engine
    starts): yields a list of dicts (``sweep_id``, ``code_id``, ``config``, ``axes``, ``fixed``, ``n_runs``,
    ``n_diverged``, ...). Blocks nest: an outer collector sees the inner block's sweeps too."""
    records: list = []
    opts = current()
    token = OPTIONS.set(dataclasses.replace(opts, collectors=opts.collectors + (records,)))
    try:
        yield records
    finally:
        OPTIONS.reset(token)


def assemble(p: SweepPlan, results: Mapping[tuple[int, int], dict]) -> xr.Dataset:
    """The chunks' arrays ([points, seeds, ...]) as one self-describing Dataset."""
    hp_blocks = sorted({h for h, _ in results})
    seed_blocks = sorted({s for _, s in results})
    names = list(results[(hp_blocks[0], seed_blocks[0])].keys())
    full = {}
    for name in names:
        rows = [np.concatenate([results[(h0, s0)][name] for s0 in seed_blocks], axis=1) for h0 in hp_blocks]
        full[name] = np.concatenate(rows, axis=0)
    ds = _to_dataset(full, hp_dims=p.hp_dims, hp_shape=p.hp_shape, axes=p.axes, mode=p.mode, seeds=p.seeds,
                     steps=p.steps, dims=p.dims, coords=p.coords)
    fixed = {k: np.asarray(v).tolist() for k, v in p.fixed.items()}
    n_div = int(ds.diverged.sum())
    ds.attrs.update({
        "config": config_to_json(p.cfg),
        "fixed_hparams": json.dumps(fixed, sort_keys=True),
        "sweep_id": p.sweep_id,
        "code_id": p.code_id,
        "code_files": ",".join(p.code_files),
        "dtype": str(p.dtype),
        "x64": int(bool(jax.config.jax_enable_x64)),
        "n_diverged": n_div,
        "n_chunks": len(p.chunks),
    } | environment())
    record = {"sweep_id": p.sweep_id, "code_id": p.code_id, "config": config_to_json(p.cfg),
              "axes": {k: np.asarray(v).tolist() for k, v in p.axes.items()}, "fixed": fixed, "mode": p.mode,
              "seeds": p.seeds, "n_runs": int(ds.diverged.size), "n_diverged": n_div, "dtype": str(p.dtype)}
    for c in current().collectors:
        c.append(record)
    if n_div:
        log.warning("sweep %s: %d of %d runs diverged", p.sweep_id, n_div, ds.diverged.size)
    return ds


def _to_dataset(full, *, hp_dims, hp_shape, axes, mode, seeds, steps, dims, coords):
    data_vars = {}
    lead = list(hp_dims) + ["seed"]
    lead_shape = list(hp_shape) + [seeds]
    div_step = None
    traj_finite = None
    for name, arr in full.items():
        kind, var = name.split("/", 1)
        arr = arr.reshape(lead_shape + list(arr.shape[2:]))
        rest = []
        if kind == "traj":
            rest = ["step"]
            fin = np.isfinite(arr) if np.issubdtype(arr.dtype, np.inexact) else np.ones(arr.shape, bool)
            fin = fin.reshape(lead_shape + [arr.shape[len(lead_shape)], -1]).all(-1)
            traj_finite = fin if traj_finite is None else traj_finite & fin
        extra = list(dims.get(var, ()))
        n_extra = arr.ndim - len(lead) - len(rest)
        if len(extra) < n_extra:
            extra = extra + [f"{var}_dim{i}" for i in range(len(extra), n_extra)]
        if kind == "final" and var == "diverged_step":
            div_step = arr
            continue
        data_vars[var] = (lead + rest + extra[:n_extra], arr)
    if div_step is None:
        # fall back to the first non-finite record
        if traj_finite is not None:
            bad = ~traj_finite
            first = np.argmax(bad, axis=-1)
            rec = np.asarray(steps) if steps is not None else np.arange(bad.shape[-1])
            div_step = np.where(bad.any(-1), rec[first], -1)
        else:
            div_step = np.full(lead_shape, -1)
    data_vars["diverged_step"] = (lead, div_step.astype(np.int64))
    data_vars["diverged"] = (lead, div_step >= 0)
    cds: dict[str, Any] = {"seed": np.arange(seeds)}
    if mode == "grid":
        cds.update({k: np.asarray(v) for k, v in axes.items()})
    elif axes:
        cds["point"] = np.arange(hp_shape[0])
        cds.update({k: ("point", np.asarray(v)) for k, v in axes.items()})
    if steps is not None:
        cds["step"] = np.asarray(steps)
    cds.update(coords)
    return xr.Dataset(data_vars, coords=cds)
