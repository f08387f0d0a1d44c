"""Tuning a peak lr per schedule on a log grid that grows until each optimum is interior, so that schedules are
compared at each one's own optimum (the protocol of the schedule papers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["Tuned", "tune_lr"]


class Tuned(NamedTuple):
    """What :func:`tune_lr` returns, per arm (schedule): every lr tried, the best one and whether it is
    bracketed (interior)."""

    lrs: tuple  # per arm: sorted 1-D array of every lr evaluated
    means: tuple  # per arm: mean final value at those lrs (inf where any seed diverged)
    best_lr: np.ndarray  # (n_arms,)
    best: np.ndarray  # (n_arms, seeds): the per-seed finals at best_lr
    interior: np.ndarray  # (n_arms,) bool: a worse (or diverged) lr was evaluated on each side of best_lr


def tune_lr(evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], n_arms: int, lrs: Sequence[float], *,
            factor: float = 2**0.5, max_extend: int = 8, refine: bool = True, initial=None) -> Tuned:
    """Tune the peak lr of ``n_arms`` schedules on a log grid that grows until each optimum is interior.

    ``evaluate(lr, arm) -> finals`` takes two 1-D arrays of equal length P (the (lr, arm) pairs to run, e.g.
    one zipped sweep) and returns the (P, seeds) final values (NaN/inf where a run diverged; lower is
    better). Starting from the grid ``lrs`` (ratio ``factor`` between neighbours), each arm whose best mean is
    at an edge of its grid gets one more point beyond that edge, up to ``max_extend`` times; an lr at which
    any seed diverged counts as worse than every finite one (it brackets the optimum from above). With
    ``refine``, the points halfway (in log lr) between each best and its neighbours are evaluated last.
    ``interior`` reports whether each optimum is bracketed; the caller says so in its claims. ``initial``, if
    given, holds the (len(lrs), n_arms, seeds) finals of the starting grid already computed (not run again).
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    if lrs.ndim != 1 or lrs.size < 3 or not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
        raise ValueError("lrs must be at least 3 finite values > 0")
    if np.any(np.diff(lrs) <= 0):
        raise ValueError("lrs must be strictly increasing (no repeated value)")
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1, got {n_arms}")
    seen: list[dict[float, np.ndarray]] = [{} for _ in range(n_arms)]

    def run(pairs):
        pairs = [(float(lr), a) for lr, a in pairs if float(lr) not in seen[a]]
        if not pairs:
            return
        lr = np.array([p[0] for p in pairs])
        arm = np.array([p[1] for p in pairs], dtype=np.int64)
        fin = np.asarray(evaluate(lr, arm), dtype=np.float64)
        if fin.ndim != 2 or fin.shape[0] != len(pairs):
            raise ValueError(f"evaluate must return (P, seeds) finals, got shape {fin.shape} for P = {len(pairs)}")
        for (v, a), f in zip(pairs, fin):
            seen[a][v] = f

    def table(a):
        x = np.array(sorted(seen[a]))
        f = np.stack([seen[a][v] for v in x])
        m = np.where(np.all(np.isfinite(f), axis=1), f.mean(axis=1), np.inf)
        return x, m

    if initial is not None:
        init = np.asarray(initial, dtype=np.float64)
        if init.ndim != 3 or init.shape[:2] != (lrs.size, n_arms):
            raise ValueError(f"initial must have shape (len(lrs), n_arms, seeds), got {init.shape}")
        for i, v in enumerate(lrs):
            for a in range(n_arms):
                seen[a][float(v)] = init[i, a]
    run([(v, a) for a in range(n_arms) for v in lrs])
    for _ in range(max_extend):
        new = []
        for a in range(n_arms):
            x, m = table(a)
            i = int(np.argmin(m))
            if not np.isfinite(m[i]):
                continue  # every lr diverged: nothing to bracket
            if i == 0:
                new.append((x[0] / factor, a))
            elif i == x.size - 1 and np.isfinite(m[-1]):
                new.append((x[-1] * factor, a))
        if not new:
            break
        run(new)
    if refine:
        new = []
        for a in range(n_arms):
            x, m = table(a)
            i = int(np.argmin(m))
            if 0 < i < x.size - 1 and np.isfinite(m[i]):
                new += [(np.sqrt(x[i - 1] * x[i]), a), (np.sqrt(x[i] * x[i + 1]), a)]
        run(new)
    out_x, out_m, best_lr, best, interior = [], [], [], [], []
    for a in range(n_arms):
        x, m = table(a)
        i = int(np.argmin(m))
        out_x.append(x)
        out_m.append(m)
        best_lr.append(x[i])
        best.append(seen[a][x[i]])
        interior.append(bool(0 < i < x.size - 1 and np.isfinite(m[i])))
    return Tuned(tuple(out_x), tuple(out_m), np.array(best_lr), np.stack(best), np.array(interior))
