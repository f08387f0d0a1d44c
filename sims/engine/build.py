"""How the suite compiles: XLA options, the build flags recorded with every result, and the sweep program.

:func:`jit` is ``jax.jit`` with the suite's :func:`compiler_options`; :func:`batched` is the compiled chunk of a
sweep, ``jit(vmap(vmap(run)))`` over (hparam points, seeds), or ``jit(vmap(run))`` for a chunk of one point.
Compiled programs are cached per ``run`` object (``functools.cache``): a second sweep of the same run with other
hparam *values* of the same shapes reuses the executable. Measurements behind these choices are in
``benchmarks/RESULTS.md`` (compile time per optimization level and fusion emitter, the one-point path).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping

import jax
import numpy as np

from sims.engine import progress

__all__ = ["compiler_options", "build_flags", "jit", "Batched", "batched", "RunFn"]

RunFn = Callable[[jax.Array, Mapping[str, jax.Array]], tuple[dict, dict]]


def _opt_level_set_by_user() -> bool:
    return "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", "")


def compiler_options() -> dict:
    """The XLA options :func:`jit` adds: on a CPU, LLVM at -O2 instead of XLA's default -O3, unless ``XLA_FLAGS``
    sets ``--xla_backend_optimization_level`` itself (``make test`` sets -O0); none elsewhere.

    Contract: the same run time as -O3 and less compile time for the transformer programs; the same bits for the
    river valley, quadratic, Lion, bandits and softmax/ReLU transformers, float rounding elsewhere (measured in
    ``benchmarks/RESULTS.md``)."""
    if jax.default_backend() == "cpu" and not _opt_level_set_by_user():
        return {"xla_backend_optimization_level": 2}
    return {}


def build_flags() -> dict:
    """What decides a compiled program's rounding besides the code: the user's ``XLA_FLAGS`` and
    :func:`compiler_options`. Recorded with every result and hashed into the sweep cache key, so that a sweep
    resumed under other flags recomputes instead of mixing chunks from two builds."""
    return {"xla_flags": os.environ.get("XLA_FLAGS", ""), "compiler_options": compiler_options()}


def jit(fn: Callable, **kw) -> Callable:
    """``jax.jit`` with the suite's :func:`compiler_options` (the caller's ``compiler_options`` win)."""
    opts = compiler_options()
    if opts:
        kw["compiler_options"] = {**opts, **kw.get("compiler_options", {})}
    return jax.jit(fn, **kw)


class Batched:
    """The compiled chunk of a sweep of ``run``: ``program(n_points)(keys, hps)`` with ``keys`` (seeds,) typed PRNG
    keys and ``hps`` name -> (n_points,) values; outputs (n_points, seeds, ...). A chunk of one point runs
    ``jit(vmap(run))`` with that point's values as scalars (a size-1 outer vmap costs ~30% of an RNG-bound run);
    the result still has the size-1 point axis. Same bits where the per-seed program is the same.

    ``run`` is traced under this program's progress :class:`~sims.engine.progress.Hub` (:attr:`hub`)."""

    def __init__(self, run: RunFn, **jit_kw):
        self.hub = progress.Hub()

        def traced(key, hp):
            with progress.tracing(self.hub):
                return run(key, hp)

        over_seeds = jax.vmap(traced, in_axes=(0, None))
        self.many = jit(jax.vmap(over_seeds, in_axes=(None, 0)), **jit_kw)

        def one(keys, hps):
            out = over_seeds(keys, {k: v[0] for k, v in hps.items()})
            return jax.tree.map(lambda x: x[None], out)

        self.one = jit(one, **jit_kw)

    def program(self, n_points: int) -> Callable:
        """The compiled function for a chunk of ``n_points`` hparam points."""
        return self.one if n_points == 1 else self.many

    def __call__(self, keys, hps):
        n = {int(np.shape(v)[0]) for v in hps.values()}
        return self.program(n.pop() if len(n) == 1 else 0)(keys, hps)

    def _cache_size(self) -> int:
        return self.many._cache_size() + self.one._cache_size()


@functools.cache
def _batched(run: RunFn) -> Batched:
    return Batched(run)


_BATCHED_LOCK = threading.Lock()  # guards _batched's cache: sweeps and chunks run in threads


def batched(run: RunFn) -> Batched:
    """The sweep program of ``run``, built once per run object (a cache of compiled programs). Thread-safe: chunks
    that start at once (``sweep(workers=...)``) get the one program, so jit compiles it once (``functools.cache``
    alone could build two, each compiled: seen as two compiles in the test suite)."""
    with _BATCHED_LOCK:
        return _batched(run)


batched.cache_clear = _batched.cache_clear
