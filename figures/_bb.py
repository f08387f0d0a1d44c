"""Shared training call of the Bigram-Backcopy figures (one trained set of models serves several figures)."""

from __future__ import annotations

import functools

import jax

from figures._core import Diverged
from sims.bigram_backcopy import BBConfig, sim
from sims.sweep import sweep


@functools.lru_cache(maxsize=8)
def train(bb: BBConfig, lr: float, seeds: int, key_seed: int = 0):
    """Train ``seeds`` models (one vmapped call) and return the sweep Dataset (cached per process, so that
    ``bb_attention`` and ``bb_interventions`` share the training when run together)."""
    ds = sweep(sim(bb), {"lr": [lr]}, seeds=seeds, key=jax.random.key(key_seed))
    n_div = int(ds.diverged.sum())
    if n_div:
        raise Diverged(f"{n_div} of {seeds} Bigram-Backcopy runs diverged (lr={lr:g}); not plotting them")
    return ds.isel(lr=0)
