"""Runs that share their first steps, trained once: a sweep of arms as a tree of segments.

Arms of a comparison often are the same run for a while (WSD's checkpoints branch off one constant-lr run; WSD-S is
WSD's first arm up to its first checkpoint; a continual-training phase starts from one pretrained model). :func:`tree`
trains every shared piece ONCE per seed and continues each run from its parent's state with the seed's own random
stream, so the result is the plain zipped sweep's Dataset up to float rounding, at the cost of the distinct pieces.

A sim takes part through a ``segment(span, resume) -> Sim`` function (e.g. :func:`sims.char_lm.tree`'s): its run
function runs steps ``span = (lo, hi)`` of the whole loop (:func:`sims.engine.loop.scan_with_records`'s ``span``);
with ``resume = (key, states, seeds)`` it starts from row ``hp["prefix_index"] * seeds + hp["seed_index"]`` of
``states`` with the random stream of seed ``seed_index`` of ``key`` (``fold_in(key, seed_index)``, as the sweep's
own seeds); stopping before the loop's end it returns its state as one flat vector ``final["state"]`` (dim ``flat``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from sims.sweep import Sim, concurrent, sweep

__all__ = ["tree", "check_tree", "tree_by_schedule", "branch_paths", "count_arms"]


def count_arms(axes: dict) -> int:
    """The number of zipped arms of ``axes`` (equal-length lists)."""
    lens = {len(v) for v in axes.values()}
    if len(lens) != 1:
        raise ValueError(f"axes must be equal-length lists (zipped arms), got lengths {sorted(lens)}")
    return lens.pop()


def check_tree(cuts: Sequence[int], paths: Sequence[Sequence], n_arms: int, steps: np.ndarray) -> None:
    """The rules of :func:`tree`'s ``cuts`` and ``paths``: a ValueError naming the one broken."""
    grid = set(int(s) for s in steps)
    c = [0, *cuts]
    if not cuts or any(b <= a or b not in grid for a, b in zip(c, c[1:])) or cuts[-1] != steps[-1]:
        raise ValueError(f"cuts {tuple(cuts)} must be increasing record steps ending at n_steps ({int(steps[-1])})")
    if len(paths) != n_arms or any(len(p) != len(cuts) for p in paths):
        raise ValueError(f"paths must give each of the {n_arms} arms one label per segment ({len(cuts)})")
    for i, p in enumerate(paths):
        if p[0] is None or any(a is None and b is not None for a, b in zip(p, p[1:])):
            raise ValueError(f"arm {i}'s path {tuple(p)}: it must run in the first segment and, once ended (None), "
                             f"stay ended")
    for j in range(1, len(cuts)):
        for a in range(n_arms):
            for b in range(a):
                if paths[a][j] is not None and paths[a][j] == paths[b][j] and paths[a][j - 1] != paths[b][j - 1]:
                    raise ValueError(f"arms {b} and {a} share a run in segment {j} but not in segment {j - 1}: runs "
                                     f"split, they never merge")


def tree(segment: Callable[[tuple[int, int], tuple | None], Sim], steps: np.ndarray, axes: dict,
         cuts: Sequence[int], paths: Sequence[Sequence], *, seeds: int, key, fixed: dict | None = None,
         workers: int = 1) -> xr.Dataset:
    """The zipped sweep of ``axes`` (arms) for arms that share runs piecewise, each shared piece trained once per seed.

    ``cuts = (c_1, ..., c_m = n_steps)`` (increasing record steps of ``steps``) split the loop into segments
    ``[c_{j-1}, c_j)`` (``c_0 = 0``); ``paths[i]`` gives arm ``i`` one label per segment: arms with the same label in
    segment ``j`` are one run there, trained with the first such arm's hparams (the caller vouches that the others'
    hparams act only later, or uses :func:`tree_by_schedule`), and ``None`` ends the arm (it is not trained past its
    last labelled segment). Runs split and never merge. Each segment is one compiled sweep of ``segment(span,
    resume)``. Returns the plain sweep's Dataset (dims ``point``, ``seed``, ``step``) up to float rounding, except
    that an ended arm's records after its end, and its final values, are NaN; ``diverged_step`` is the first
    divergence along the arm's path; attrs ``tree_cuts``.

    ``workers > 1`` splits each segment's runs into that many sweeps run at once (:func:`sims.sweep.concurrent`):
    on a CPU one sweep of small matmuls leaves a core idle part of the time (two char-LM sweeps at once: 12-19%
    faster than one after the other, 2 cores); the runs are then batched in other shapes (float rounding)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    fixed = dict(fixed or {})
    n_arms = count_arms(axes)
    cuts = tuple(int(c) for c in cuts)
    check_tree(cuts, paths, n_arms, steps)
    recs: dict = {}
    finals: dict = {}
    div = np.full((n_arms, seeds), -1, np.int64)
    states, prev, attrs = None, None, {}
    for j, (lo, hi) in enumerate(zip((0, *cuts), cuts)):
        labels = list(dict.fromkeys(p[j] for p in paths if p[j] is not None))
        leader = [next(i for i, p in enumerate(paths) if p[j] == g) for g in labels]

        def runs(lead, j=j, lo=lo, hi=hi, states=states, prev=prev):
            if j == 0:
                return sweep(segment((lo, hi), None), {k: [v[i] for i in lead] for k, v in axes.items()}, mode="zip",
                             fixed=fixed, seeds=seeds, key=key, progress=False)  # (point = run, seed, ...)
            idx = {k: [v[i] for i in lead for _ in range(seeds)] for k, v in axes.items()}
            idx["seed_index"] = [float(r) for _ in lead for r in range(seeds)]
            idx["prefix_index"] = [float(prev.index(paths[i][j - 1])) for i in lead for _ in range(seeds)]
            return sweep(segment((lo, hi), (key, states, seeds)), idx, mode="zip", fixed=fixed, seeds=1, key=key,
                         progress=False).isel(seed=0, drop=True)  # (point = run x seed, ...)

        parts = [p for p in np.array_split(np.arange(len(leader)), min(workers, len(leader))) if p.size]
        qs = concurrent([functools.partial(runs, [leader[i] for i in p]) for p in parts], max_workers=len(parts))
        q = qs[0] if len(qs) == 1 else xr.concat(qs, "point", combine_attrs="override")
        attrs = q.attrs
        run_of = {i: labels.index(p[j]) for i, p in enumerate(paths) if p[j] is not None}
        sel = (steps >= lo) & (steps <= hi)  # a later segment overwrites the record at hi with the run's own
        for name, v in q.data_vars.items():
            a = v.values.reshape((len(labels), seeds) + v.shape[2 if j == 0 else 1:])  # (run, seed, ...)
            trailing = v.dims[2 if j == 0 else 1:]
            if name == "state":
                states = np.asarray(a, np.float32).reshape(len(labels) * seeds, -1)  # row run * seeds + seed
            elif name == "diverged_step":
                for i, r in run_of.items():
                    div[i] = np.where(div[i] >= 0, div[i], a[r])
            elif name == "diverged":
                continue
            else:
                shape = (n_arms, seeds) + ((len(steps),) + a.shape[3:] if "step" in trailing else a.shape[2:])
                dtype = a.dtype if a.dtype.kind == "f" else np.float64  # the sim's float type; NaN for ended arms
                full = (recs if "step" in trailing else finals).setdefault(
                    name, (np.full(shape, np.nan, dtype), trailing))[0]
                for i, r in run_of.items():
                    if "step" in trailing:
                        full[i, :, sel] = np.moveaxis(a[r], 1, 0)  # (seed, step, ...) -> (step, seed, ...)
                    else:
                        full[i] = a[r]
        prev = labels
    out = xr.Dataset({n: (("point", "seed") + d, a) for n, (a, d) in {**recs, **finals}.items()})
    out["diverged_step"] = (("point", "seed"), div)
    out["diverged"] = out.diverged_step >= 0
    out = out.assign_coords(step=steps, seed=np.arange(seeds), **{k: ("point", list(v)) for k, v in axes.items()})
    out.attrs.update(attrs)
    out.attrs["tree_cuts"] = list(cuts)
    return out


def branch_paths(axes: dict, at: int, n_steps: int, log_every: int, shared: Sequence[str] = ()) -> tuple:
    """``(cuts, paths)`` of one branch point: the arms with equal values of the ``shared`` hparams (all arms when
    none) are one run up to step ``at``, then every arm runs alone."""
    if at % log_every or not 0 < at < n_steps:
        raise ValueError(f"at={at} is out of range: must be a multiple of log_every ({log_every}) in "
                         f"(0, n_steps={n_steps})")
    n_arms = count_arms(axes)
    bad = [k for k in shared if k not in axes]
    if bad:
        raise ValueError(f"shared names hparams that are not axes: {bad}")
    group = [tuple(float(axes[k][i]) for k in shared) for i in range(n_arms)]
    return (at, n_steps), [(group.index(g), i) for i, g in enumerate(group)]


def tree_by_schedule(lr, ends: Sequence[int], log_every: int) -> tuple:
    """``(cuts, paths)`` for :func:`tree` when the arms differ only through their lr schedules: ``lr[i, t]`` is arm
    ``i``'s lr at step ``t`` (``t = 0..n_steps``, the last for the record at ``n_steps``) and ``ends[i]`` its last
    needed record step (the largest = ``n_steps``). Arms are one run through a segment ``[lo, hi)`` when their lrs
    agree on every step before ``hi`` (and at ``hi`` too where an arm ends at ``hi``, so that every record, ``lr_t``
    included, is the arm's own); the cuts are the ends and, where two arms' lrs first differ, the record step at or
    before it (the steps between are run apart: sharing less is always exact)."""
    lr = np.asarray(lr)
    ends = [int(e) for e in ends]
    n_arms, n = lr.shape[0], lr.shape[1] - 1
    if len(ends) != n_arms or max(ends) != n or any(e % log_every or e <= 0 for e in ends):
        raise ValueError(f"ends {ends} must be one positive record step per arm (multiples of {log_every}), the "
                         f"largest = n_steps ({n})")
    first = np.full((n_arms, n_arms), n + 1)  # first step where arms i and k take different lrs
    for i in range(n_arms):
        for k in range(n_arms):
            d = np.flatnonzero(lr[i] != lr[k])
            first[i, k] = d[0] if d.size else n + 1
    cand = set(ends) | {int(f) // log_every * log_every for f in first.ravel() if log_every <= f <= n}
    cuts = tuple(sorted(cand))
    paths: list = [[] for _ in range(n_arms)]
    for lo, hi in zip((0, *cuts), cuts):
        live = [i for i in range(n_arms) if ends[i] > lo]
        for i in range(n_arms):
            same = [k for k in live if first[i, k] > (hi if hi in ends else hi - 1)]
            paths[i].append(min(same) if i in live else None)
    return cuts, [tuple(p) for p in paths]
