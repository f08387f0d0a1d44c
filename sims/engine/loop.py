"""The one training loop every sim uses: ``lax.scan`` in blocks of ``log_every`` steps, records after each block,
the exact divergence step.

Random numbers: step ``t`` of a run gets ``fold_in(fold_in(run_key, t // log_every), j)`` for its sub-block ``j``
(one noise draw per sub-block), so a run's bits do not depend on how runs are batched or chunked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sims.engine import progress

__all__ = ["LoopOut", "scan_with_records", "record_steps", "check_loop", "noise_chunk_for", "noise_stream"]

Array = jax.Array


class LoopOut(NamedTuple):
    """What :func:`scan_with_records` returns."""

    state: Any  # final state
    traj: dict  # records, leading axis = n_steps // log_every + 1 (step 0 included)
    diverged_step: Array  # int32, first step whose state is non-finite or out of bound; -1 if none


def record_steps(n_steps: int, log_every: int) -> np.ndarray:
    """Step coordinates of the records made by :func:`scan_with_records`."""
    check_loop(n_steps, log_every)
    return np.arange(0, n_steps + 1, log_every)


def noise_chunk_for(log_every: int, width: int, cap: int = 128) -> int:
    """Steps of noise per RNG call for a state of ``width`` numbers: the largest divisor of
    ``log_every`` that is <= ``cap / width``, so that one chunk of noise for ~1000 vmapped runs
    stays in cache (speed only; the bits depend on it, the statistics do not)."""
    top = max(1, cap // max(width, 1))
    return max(k for k in range(1, log_every + 1) if log_every % k == 0 and k <= top)


def check_loop(n_steps: int, log_every: int) -> None:
    """Valid step grid: n_steps >= 1, log_every >= 1, n_steps a multiple of log_every."""
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if not isinstance(log_every, (int, np.integer)) or log_every < 1:
        raise ValueError(f"log_every must be an integer >= 1, got {log_every!r}")
    if n_steps % log_every:
        raise ValueError(
            f"n_steps ({n_steps}) must be a multiple of log_every ({log_every})"
        )


def _block_key(key: Array, b, j) -> Array:
    """The key of sub-block ``j`` of record block ``b`` (one noise draw each): shared by the loop and
    :func:`noise_stream` so that both derive the same bits."""
    return jax.random.fold_in(jax.random.fold_in(key, b), j)


def _bad(state, bound: float | None) -> Array:
    """True where any leaf of ``state`` is non-finite (or exceeds ``bound`` in abs value)."""
    # one reduction per dtype over all leaves (max |x|: NaN propagates through max, inf is > any bound), not two
    # per leaf: each reduction is its own compiled kernel (kernel counts in benchmarks/RESULTS.md)
    by_dtype: dict = {}
    for x in jax.tree.leaves(state):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact) and x.size:
            by_dtype.setdefault(x.dtype, []).append(jnp.abs(x).ravel())
    bad = jnp.asarray(False)
    for parts in by_dtype.values():
        m = jnp.max(jnp.concatenate(parts) if len(parts) > 1 else parts[0])
        bad = bad | (~jnp.isfinite(m) if bound is None else ~(m <= bound))
    return bad


def scan_with_records(
    key: Array,
    step_fn: Callable[[Array, Any, Array], Any],
    init_state: Any,
    record_fn: Callable[[Any, Array], dict],
    *,
    n_steps: int,
    log_every: int,
    bound: float | None = None,
    freeze_on_divergence: bool = True,
    noise: Callable[[Array, int], Any] | None = None,
    noise_chunk: int | None = None,
    unroll: int = 1,
    span: tuple[int, int] | None = None,
) -> LoopOut:
    """Run ``state <- step_fn(rand_t, state, t)`` for ``t = 0..n_steps-1`` and record.

    ``rand_t`` is a fresh key per step, or, when ``noise(block_key, log_every)`` is given, the
    slice ``t`` of the noise that function draws once per ``noise_chunk`` steps (default
    ``log_every``): one batched RNG call instead of a key split per step, since these sims are
    RNG-bound. Choose ``noise_chunk`` so that a chunk of noise for all vmapped runs stays in cache.

    ``record_fn(state, t)`` is evaluated at step 0 and after every ``log_every`` steps. The
    divergence step is exact (checked every step): the first ``t + 1`` whose state is non-finite
    or has a leaf with ``|x| > bound``. With ``freeze_on_divergence`` the state stops updating
    from then on (records keep the last bad state) so that a diverged run costs no NaN storms.

    ``span=(start, stop)`` (multiples of ``log_every``): run only steps ``start..stop-1`` of the ``n_steps`` loop, from
    ``init_state`` taken as the state after ``start`` steps, with the same per-step randomness and ``t`` as the whole
    loop; records at ``start, start + log_every, ..., stop``. A run split at a record step (a branch point shared by
    several continuations) thus continues its own random stream. A divergence before ``start`` is the caller's.
    """
    check_loop(n_steps, log_every)
    start, stop = span or (0, n_steps)
    if not (0 <= start < stop <= n_steps) or start % log_every or stop % log_every:
        raise ValueError(f"span ({start}, {stop}) must satisfy 0 <= start < stop <= n_steps ({n_steps}), both "
                         f"multiples of log_every ({log_every})")
    n_blocks = n_steps // log_every
    b_lo, b_hi = start // log_every, stop // log_every
    tick_every = max(1, n_blocks // progress.TICKS)
    hub = progress.current_hub()  # the sweep program being traced, if any (progress only: no numbers depend on it)

    def one_step(carry, inp):
        state, div = carry
        k, t = inp
        new = step_fn(k, state, t)
        bad = _bad(new, bound)
        div = jnp.where((div < 0) & bad, (t + 1).astype(div.dtype), div)
        if freeze_on_divergence:
            # keep the first bad state: later steps would only produce inf/nan
            frozen = div >= 0
            new = jax.tree.map(lambda n, o: jnp.where(frozen & (div < t + 1), o, n), new, state)
        return (new, div), None

    if noise_chunk is None or noise is None:
        noise_chunk = log_every
    if noise_chunk < 1 or log_every % noise_chunk:
        raise ValueError(f"noise_chunk ({noise_chunk}) must divide log_every ({log_every})")
    n_sub = log_every // noise_chunk

    def sub_block(carry, j_b):
        j, b = j_b
        skey = _block_key(key, b, j)
        rand = noise(skey, noise_chunk) if noise is not None else jax.random.split(skey, noise_chunk)
        ts = (b * log_every + j * noise_chunk + jnp.arange(noise_chunk)).astype(jnp.int32)
        return jax.lax.scan(one_step, carry, (rand, ts), unroll=unroll)

    def run_block(carry, b):
        js = jnp.arange(n_sub, dtype=jnp.int32)
        carry, _ = jax.lax.scan(sub_block, carry, (js, jnp.full((n_sub,), b, jnp.int32)))
        if hub is not None:  # the block index only: one call per vmapped chunk, reads no state
            jax.lax.cond(((b + 1) % tick_every == 0) | (b == b_hi - 1),
                         lambda: jax.debug.callback(hub.tick, b, ordered=False), lambda: None)
        return carry

    def block(carry, b):
        # record the state after b blocks, then run block b (none after the last record): one copy of record_fn
        # in the compiled program instead of two (a record before the loop and one in it), the same numbers
        rec = record_fn(carry[0], b * log_every)
        carry = jax.lax.cond(b < b_hi, run_block, lambda c, _: c, carry, b)
        return carry, rec

    div0 = jnp.where(_bad(init_state, bound), start, -1).astype(jnp.int32)
    (state, div), traj = jax.lax.scan(block, (init_state, div0), jnp.arange(b_lo, b_hi + 1, dtype=jnp.int32))
    return LoopOut(state, traj, div)


def noise_stream(key: Array, noise: Callable[[Array, int], Any], *, n_steps: int, log_every: int,
                 noise_chunk: int | None = None) -> Any:
    """The per-step noise :func:`scan_with_records` feeds to ``step_fn`` when given ``noise`` (same key, same
    chunking), materialized: a pytree of (n_steps, ...) arrays. For independent references that must see the
    simulation's exact random inputs (e.g. a NumPy re-implementation fed the same noise)."""
    check_loop(n_steps, log_every)
    noise_chunk = noise_chunk or log_every
    if noise_chunk < 1 or log_every % noise_chunk:
        raise ValueError(f"noise_chunk ({noise_chunk}) must divide log_every ({log_every})")
    n_sub = log_every // noise_chunk
    bs, js = np.meshgrid(np.arange(n_steps // log_every), np.arange(n_sub), indexing="ij")
    keys = jax.vmap(lambda b, j: _block_key(key, b, j))(jnp.asarray(bs.ravel(), jnp.int32),
                                                          jnp.asarray(js.ravel(), jnp.int32))
    draws = jax.vmap(lambda k: noise(k, noise_chunk))(keys)
    return jax.tree.map(lambda x: x.reshape((n_steps,) + x.shape[2:]), draws)
