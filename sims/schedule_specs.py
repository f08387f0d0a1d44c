"""Schedules named by data: the budget protocols of Wen et al. (WSD and WSD-S runs from one main branch, cyclic
cosine) as :class:`Protocol` s, and unit-peak schedules from hashable spec tuples (:func:`from_spec`), so that a
static config can name a schedule; :func:`schedule_for` is what a sim uses (a spec times ``hp["lr"]``, or the
array-parametrized WSD family of :mod:`sims.schedules`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import optax

from sims.schedules import (
    DECAY_SHAPES,
    Schedule,
    check_budgets,
    check_fraction,
    check_shape,
    constant,
    cosine,
    cyclic_cosine,
    decay_factor,
    family_from_hparams,
    rewarm,
    rex,
    step_schedule,
    table,
    wsd,
)

__all__ = ["Protocol", "wsd_protocol", "wsd_s_protocol", "cyclic_cosine_protocol", "schedule_for", "from_spec",
           "check_spec", "rewarm_family"]


class Protocol(NamedTuple):
    """A way to produce one checkpoint per budget.

    ``runs``: one unit-peak schedule spec per simulated branch (see :func:`from_spec`);
    ``checkpoints``: (run index, step) of each budget's checkpoint; ``compute``: total steps
    spent to produce all checkpoints (branches that share a prefix counted once).
    """

    name: str
    runs: tuple
    n_steps: tuple
    checkpoints: tuple
    compute: int


def wsd_protocol(budgets: Sequence[int], decay_fraction: float = 0.1, final_ratio: float = 0.0,
                 decay_shape: str = "linear") -> Protocol:
    r"""WSD: one main branch at the peak lr; the checkpoint for budget :math:`T_k` branches off at
    :math:`(1-f)T_k` and decays for :math:`fT_k` steps. Compute
    :math:`(1-f)T_K + f\sum_k T_k` (the main branch up to the last branch point, plus every decay).
    The branch for :math:`T_k` is simulated as the WSD schedule of length :math:`T_k` (identical
    to branching when step noise is indexed by step, as in :func:`sims.sweep.scan_with_records`).
    """
    b = check_budgets(budgets)
    check_fraction("decay_fraction", decay_fraction)
    check_fraction("final_ratio", final_ratio)
    check_shape(decay_shape)
    runs = tuple(("wsd", T, decay_fraction, final_ratio, decay_shape) for T in b)
    comp = (b[-1] - int(round(decay_fraction * b[-1]))) + sum(int(round(decay_fraction * T)) for T in b)
    return Protocol("WSD", runs, tuple(b), tuple((i, T) for i, T in enumerate(b)), comp)


def wsd_s_protocol(budgets: Sequence[int], decay_fraction: float = 0.1, final_ratio: float = 0.0,
                   decay_shape: str = "linear") -> Protocol:
    r"""WSD-S (Wen et al. 2024, Sec. 5): ONE branch. Stable for :math:`(1-f)(T_k - T_{k-1})` steps,
    decay for :math:`fT_k` steps (checkpoint :math:`k`), then jump back to the peak lr and resume
    from the decayed iterate (no re-warmup). Checkpoint :math:`k` is at step
    :math:`c_k = (1-f)T_k + f\sum_{j\le k} T_j`; compute :math:`c_K` -- the same as WSD's.
    (The paper's config: budgets 12.5k/25k/50k, f = 0.1 -> break points 11250, 12500, 23750,
    26250, 48750 and 53750 steps in all.)
    """
    b = check_budgets(budgets)
    check_fraction("decay_fraction", decay_fraction)
    check_fraction("final_ratio", final_ratio)
    check_shape(decay_shape)
    ck, pos, prev = [], 0, 0
    for T in b:
        n_dec = int(round(decay_fraction * T))
        stable = (T - n_dec) - (prev - int(round(decay_fraction * prev))) if prev else T - n_dec
        if stable < 0:
            raise ValueError(f"budgets {b} too close for decay_fraction {decay_fraction}: negative stable phase")
        pos += stable + n_dec
        ck.append(pos)
        prev = T
    spec = ("wsd_s", tuple(b), decay_fraction, final_ratio, decay_shape)
    return Protocol("WSD-S", (spec,), (ck[-1],), tuple((0, c) for c in ck), ck[-1])


def cyclic_cosine_protocol(cycle_ends: Sequence[int], final_ratio: float = 0.1) -> Protocol:
    """Cyclic cosine: one branch, a cosine cycle (peak -> m*peak) ending at each checkpoint."""
    ends = check_budgets(cycle_ends)
    check_fraction("final_ratio", final_ratio)
    return Protocol("cyclic cosine", (("cyclic_cosine", tuple(ends), final_ratio),), (ends[-1],),
                    tuple((0, e) for e in ends), ends[-1])


def schedule_for(spec: tuple, hp, total_steps: int) -> Schedule:
    """The schedule a sim uses: ``hp["lr"]`` times the unit-peak static ``spec`` if one is given, else
    the array-parametrized WSD family read from ``hp`` (:func:`family_from_hparams`).

    ``("arms", (spec_0, spec_1, ...))`` holds several unit-peak specs and ``hp["arm"]`` (an integer hparam) picks
    one per run: every schedule of a comparison is then one compiled program (each step evaluates every arm's
    scalar lr and selects). With a spec, ``hp["warmup_steps"]`` (if given) puts a linear warmup in front of it."""
    if not spec:
        return family_from_hparams(hp, total_steps)
    if spec[0] == "arms":
        units = [from_spec(s) for s in check_spec(spec)[1]]

        def unit(t):
            lrs = [jnp.broadcast_to(jnp.asarray(u(t), jnp.result_type(float)), jnp.shape(t)) for u in units]
            return jnp.stack(lrs)[jnp.asarray(hp["arm"], jnp.int32)]
    else:
        unit = from_spec(spec)
    if "warmup_steps" not in hp:
        return lambda t: hp["lr"] * unit(t)
    W = hp["warmup_steps"]  # a linear warmup in front of the spec (as the WSD family's)
    return lambda t: hp["lr"] * unit(t) * jnp.where(W > 0, jnp.minimum(1.0, t / jnp.maximum(W, 1.0)), 1.0)


def check_spec(spec: tuple) -> tuple:
    """Validate a static schedule spec (one :func:`from_spec` accepts, or ``("arms", specs)``); return it."""
    if spec and spec[0] == "arms":
        if len(spec) != 2 or not spec[1] or any(not isinstance(s, tuple) or s[:1] == ("arms",) for s in spec[1]):
            raise ValueError(f"an arms spec is ('arms', (spec, ...)) with >= 1 non-arms spec, got {spec!r}")
        for s in spec[1]:
            from_spec(s)
    elif spec:
        from_spec(spec)
    return spec


def from_spec(spec: tuple) -> Schedule:
    """A unit-peak schedule from a hashable spec tuple (so it can live in a static config):

    ``("family",)`` is not a spec (the family reads its hparams); ``("wsd", T, f, m, shape)``,
    ``("wsd_s", budgets, f, m, shape)``, ``("cyclic_cosine", ends, m)``,
    ``("cosine", T, m)``, ``("constant",)``, ``("rex", T, m)``, ``("table", values)``,
    ``("rewarm", first_spec, switch_step, peak, total_steps, warmup_steps, final_ratio)``,
    ``("step", boundaries, factor)`` (times ``factor`` at each boundary step).
    """
    kind = spec[0]
    if kind == "constant":
        return constant(1.0)
    if kind == "cosine":
        return cosine(1.0, spec[1], spec[2])
    if kind == "wsd":
        _, T, f, m, shape = spec
        return wsd(1.0, T, decay_fraction=f, final_ratio=m, decay_shape=shape)
    if kind == "cyclic_cosine":
        return cyclic_cosine(1.0, spec[1], spec[2])
    if kind == "table":
        return table(spec[1])
    if kind == "rex":
        return rex(1.0, spec[1], spec[2])
    if kind == "step":
        return step_schedule(1.0, spec[1], spec[2])
    if kind == "rewarm":  # ("rewarm", first_spec, switch, peak_ratio, total, warmup, final_ratio)
        _, first, sw, peak, total, warm, m = spec
        return rewarm(from_spec(first), sw, peak, total, warm, m)
    if kind == "wsd_s":
        _, budgets, f, m, shape = spec
        sid = DECAY_SHAPES.index(shape)
        pieces, bounds, pos, prev = [], [], 0, 0
        for T in budgets:
            n_dec = int(round(f * T))
            stable = (T - n_dec) - (prev - int(round(f * prev))) if prev else T - n_dec
            pieces.append(optax.constant_schedule(1.0))
            if pos:
                bounds.append(pos)
            pos += stable
            if n_dec:
                bounds.append(pos)
                pieces.append(lambda t, n=n_dec: decay_factor(t / n, sid, m))
                pos += n_dec
            prev = T
        return optax.join_schedules(pieces, bounds) if bounds else pieces[0]
    if kind == "arms":
        raise ValueError("an ('arms', ...) spec selects by hp['arm']: use schedule_for (or check_spec to validate)")
    raise ValueError(f"unknown schedule spec {spec!r}")


def rewarm_family(hp, switch_step: int, total_steps: int) -> Schedule:
    r"""Rewarming with array hyperparameters (so that every arm of a continual-training sweep is one compiled
    program; Gupta et al. 2023, arXiv 2308.04014): a cosine from ``hp["lr"]`` to the floor
    :math:`m\eta` (``hp["final_ratio"]`` = m) over the first ``switch_step`` steps; then a linear warmup from the
    floor to :math:`p\eta` (``hp["rewarm_peak"]`` = p) over ``hp["rewarm_warmup"]`` steps and a cosine back to the
    floor at ``total_steps``:

    .. math:: \eta_t = m\eta + (p\eta - m\eta)\,\min\!\big(1, \tfrac{s}{W}\big)\,
              \tfrac12\big(1 + \cos \pi \tfrac{\max(0, s - W)}{T - t_0 - W}\big),\quad s = t - t_0 \ge 0.

    ``rewarm_peak = final_ratio`` continues at the floor (no rewarming)."""
    if switch_step < 1 or total_steps < 1:
        raise ValueError(f"switch_step and total_steps must be >= 1, got {switch_step}, {total_steps}")
    if total_steps <= switch_step:
        raise ValueError(f"total_steps ({total_steps}) must exceed switch_step ({switch_step})")
    D = float(total_steps - switch_step)

    def schedule(step):  # the hparams are read at call time: float64 under as_array, traced arrays in a sim
        lr, m, p = hp["lr"], hp.get("final_ratio", 0.0), hp["rewarm_peak"]
        W = jnp.asarray(hp.get("rewarm_warmup", 0.0))
        t = jnp.asarray(step, jnp.result_type(float))
        first = m + (1 - m) * 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(t, switch_step) / switch_step))
        s = t - switch_step
        warm = jnp.where(W > 0, jnp.clip(s / jnp.maximum(W, 1.0), 0.0, 1.0), 1.0)
        cos = 0.5 * (1 + jnp.cos(jnp.pi * jnp.clip((s - W) / jnp.maximum(D - W, 1.0), 0.0, 1.0)))
        second = m + (p - m) * warm * cos
        return lr * jnp.where(t < switch_step, first, second)

    return schedule
