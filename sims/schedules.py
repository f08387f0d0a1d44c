r"""Learning-rate schedules, optax style (``step -> lr``), for the whole suite.

Two layers:

* **Validated constructors** (``constant``, ``cosine``, ``linear_decay``, ``wsd``,
  ``cyclic_cosine``, ...) return optax schedules. They use optax's own pieces
  (``optax.constant_schedule``, ``optax.linear_schedule``, ``optax.cosine_decay_schedule``,
  ``optax.join_schedules``) wherever optax has them, and check their inputs (a clear
  ``ValueError`` naming the parameter and its valid range).
* **An array-parametrized family** (:class:`Family`, :func:`family_schedule`) in which every
  hyperparameter -- peak lr, warmup length, decay fraction, final ratio and even the decay
  *shape* -- is an array, so that a sweep over schedules (constant, cosine, linear decay and
  WSD with any decay shape) is one ``vmap``-ed, compiled call.

Decay shapes, with progress :math:`p \in [0, 1]` through the decay phase and final ratio
:math:`m = \eta_{\min}/\eta_{\max}`, the factor multiplying the peak lr is

=============  =========================================================
``linear``     :math:`m + (1-m)(1-p)`
``cosine``     :math:`m + (1-m)\tfrac12(1+\cos \pi p)`
``1-sqrt``     :math:`m + (1-m)(1-\sqrt p)` (Hägele et al. 2024)
``exponential`` :math:`\max(m, 10^{-3})^{p}` (geometric to the floor)
``inverse``    :math:`1/((1/m - 1)p + 1)` (Wen et al. 2024's ``inv``, from quadratics;
               needs :math:`m > 0`)
``rex``        :math:`m + (1-m)\frac{2(1-p)}{2-p}` (REX, Chen, Wolfe, Kyrillidis 2022: the
               profile :math:`(1-z)/(\tfrac12 + \tfrac12(1-z))`)
=============  =========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims.config import finite_array

Schedule = optax.Schedule

DECAY_SHAPES = ("linear", "cosine", "1-sqrt", "exponential", "inverse", "rex")
_EXP_FLOOR = 1e-3


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------
_finite = finite_array  # a schedule's numbers: finite (sims.config)


def _positive(name: str, v) -> None:
    if not np.all(_finite(name, v) > 0):
        raise ValueError(f"{name} must be finite and > 0, got {v!r}")


def _nonneg(name: str, v) -> None:
    if not np.all(_finite(name, v) >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {v!r}")


def check_fraction(name: str, v) -> None:
    a = _finite(name, v)
    if not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"{name} must lie in [0, 1], got {v!r}")


def _steps(name: str, v, minimum: int = 1) -> None:
    if not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")


def check_shape(shape: str) -> None:
    if shape not in DECAY_SHAPES:
        raise ValueError(f"decay_shape must be one of {DECAY_SHAPES}, got {shape!r}")


def decay_factor(p, shape_id, final_ratio):
    """Factor in [m, 1] at decay progress ``p``; ``shape_id`` indexes :data:`DECAY_SHAPES`.

    All arguments may be arrays (traced), so the shape itself can be vmapped over.
    """
    p = jnp.clip(p, 0.0, 1.0)
    m = final_ratio
    lin = m + (1 - m) * (1 - p)
    cos = m + (1 - m) * 0.5 * (1 + jnp.cos(jnp.pi * p))
    sq = m + (1 - m) * (1 - jnp.sqrt(p))
    ex = jnp.maximum(m, _EXP_FLOOR) ** p
    safe_m = jnp.where(m > 0, m, 1.0)
    inv = jnp.where(m > 0, 1.0 / ((1.0 / safe_m - 1.0) * p + 1.0), lin)
    rex = m + (1 - m) * 2.0 * (1 - p) / (2.0 - p)
    return jnp.select(
        [shape_id == 0, shape_id == 1, shape_id == 2, shape_id == 3, shape_id == 4], [lin, cos, sq, ex, inv], rex
    )


# --------------------------------------------------------------------------------------
# validated constructors (optax schedules)
# --------------------------------------------------------------------------------------
def constant(peak_value: float) -> Schedule:
    """:math:`\\eta_t = \\eta`."""
    _positive("peak_value", peak_value)
    return optax.constant_schedule(peak_value)


def cosine(peak_value: float, total_steps: int, final_ratio: float = 0.0, warmup_steps: int = 0) -> Schedule:
    r"""Cosine decay :math:`\eta_t = \eta(m + (1-m)\tfrac12(1+\cos(\pi t/T)))` (optax's), optional warmup."""
    _positive("peak_value", peak_value)
    _steps("total_steps", total_steps)
    check_fraction("final_ratio", final_ratio)
    _steps("warmup_steps", warmup_steps, 0)
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be < total_steps ({total_steps})")
    cos = optax.cosine_decay_schedule(peak_value, total_steps - warmup_steps, alpha=final_ratio)
    if warmup_steps == 0:
        return cos
    warm = optax.linear_schedule(0.0, peak_value, warmup_steps)
    return optax.join_schedules([warm, cos], [warmup_steps])


def linear_decay(peak_value: float, total_steps: int, final_ratio: float = 0.0, warmup_steps: int = 0) -> Schedule:
    r"""Linear decay to :math:`m\eta` at step :math:`T` (the worst-case optimal schedule of Defazio et al.)."""
    return wsd(peak_value, total_steps, decay_fraction=1.0 - warmup_steps / max(total_steps, 1),
               warmup_steps=warmup_steps, final_ratio=final_ratio, decay_shape="linear")


def wsd(
    peak_value: float,
    total_steps: int,
    *,
    decay_fraction: float = 0.1,
    warmup_steps: int = 0,
    final_ratio: float = 0.0,
    decay_shape: str = "linear",
) -> Schedule:
    r"""Warmup-Stable-Decay (Wen et al. 2024, Sec. 1; Hu et al. 2024).

    Linear warmup :math:`0 \to \eta` over ``warmup_steps``, constant :math:`\eta` until
    :math:`T_s = T - \lfloor fT \rceil`, then decay of shape ``decay_shape`` to :math:`m\eta` at
    :math:`T`; constant :math:`m\eta` afterwards. Built with ``optax.join_schedules``.
    """
    _positive("peak_value", peak_value)
    _steps("total_steps", total_steps)
    check_fraction("decay_fraction", decay_fraction)
    check_fraction("final_ratio", final_ratio)
    _steps("warmup_steps", warmup_steps, 0)
    check_shape(decay_shape)
    if decay_shape == "inverse" and final_ratio <= 0:
        raise ValueError("final_ratio must be > 0 for decay_shape='inverse'")
    n_decay = int(round(decay_fraction * total_steps))
    t_stable = total_steps - n_decay
    if warmup_steps > t_stable:
        raise ValueError(
            f"warmup_steps ({warmup_steps}) must be <= total_steps * (1 - decay_fraction) "
            f"({t_stable}): the warmup would run into the decay"
        )
    sid = DECAY_SHAPES.index(decay_shape)
    pieces, bounds = [], []
    if warmup_steps:
        pieces.append(optax.linear_schedule(0.0, peak_value, warmup_steps))
        bounds.append(warmup_steps)
    pieces.append(optax.constant_schedule(peak_value))
    if n_decay:
        bounds.append(t_stable)
        pieces.append(lambda t: peak_value * decay_factor(t / n_decay, sid, final_ratio))
    return optax.join_schedules(pieces, bounds) if bounds else pieces[0]


def cyclic_cosine(peak_value: float, cycle_ends: Sequence[int], final_ratio: float = 0.1) -> Schedule:
    r"""Cyclic cosine: cosine from :math:`\eta` to :math:`m\eta` within each cycle, then restart.

    ``cycle_ends`` are the increasing step counts at which cycles end (the budgets).
    """
    _positive("peak_value", peak_value)
    check_fraction("final_ratio", final_ratio)
    ends = check_budgets(cycle_ends)
    starts = [0] + ends[:-1]
    pieces = [optax.cosine_decay_schedule(peak_value, e - s, alpha=final_ratio) for s, e in zip(starts, ends)]
    return optax.join_schedules(pieces, ends[:-1]) if len(pieces) > 1 else pieces[0]


def check_budgets(budgets: Sequence[int]) -> list[int]:
    """Budgets must be integers >= 1 and strictly increasing."""
    b = [int(x) for x in budgets]
    if not b:
        raise ValueError("budgets must be a non-empty list of step counts")
    if any(x < 1 for x in b) or any(y <= x for x, y in zip(b, b[1:])):
        raise ValueError(f"budgets must be integers >= 1 and strictly increasing, got {list(budgets)}")
    return b


# --------------------------------------------------------------------------------------
# the array-parametrized family (vmappable over every hyperparameter, shape included)
# --------------------------------------------------------------------------------------
class Family(NamedTuple):
    """Hyperparameters of :func:`family_schedule`, each a scalar array (vmappable).

    constant: ``decay_fraction=0``; cosine to 0: ``decay_fraction=1, shape=cosine``; linear
    decay: ``decay_fraction=1, shape=linear``; WSD: ``0 < decay_fraction < 1``.
    """

    peak: jnp.ndarray
    decay_fraction: jnp.ndarray
    shape_id: jnp.ndarray  # index into DECAY_SHAPES
    final_ratio: jnp.ndarray
    warmup_steps: jnp.ndarray


def family(
    peak: float,
    decay_fraction: float = 0.0,
    decay_shape: str = "linear",
    final_ratio: float = 0.0,
    warmup_steps: int = 0,
) -> Family:
    """Validated :class:`Family` from Python values."""
    _positive("peak_value", peak)
    check_fraction("decay_fraction", decay_fraction)
    check_fraction("final_ratio", final_ratio)
    _nonneg("warmup_steps", warmup_steps)
    check_shape(decay_shape)
    # NumPy float64 leaves: exact in as_array's float64 evaluation; a jitted sim without x64 receives the
    # same values rounded to float32, as before
    return Family(
        np.asarray(peak, np.float64),
        np.asarray(decay_fraction, np.float64),
        np.asarray(DECAY_SHAPES.index(decay_shape)),
        np.asarray(final_ratio, np.float64),
        np.asarray(warmup_steps, np.float64),
    )


def family_schedule(fam: Family, total_steps: int) -> Schedule:
    r"""WSD-family schedule with array hyperparameters (see :class:`Family`).

    .. math:: \eta_t = \eta\,\min(1, t/W)\; s\!\left(\frac{t - (1-f)T}{fT}\right)

    with decay factor :math:`s` of the chosen shape (:func:`decay_factor`).
    """
    _steps("total_steps", total_steps)
    T = float(total_steps)

    def schedule(step):
        t = jnp.asarray(step, jnp.result_type(float))
        warm = jnp.where(fam.warmup_steps > 0, jnp.minimum(1.0, t / jnp.maximum(fam.warmup_steps, 1.0)), 1.0)
        n_decay = fam.decay_fraction * T
        start = T - n_decay
        p = jnp.where(n_decay > 0, (t - start) / jnp.maximum(n_decay, 1e-12), 0.0)
        p = jnp.where(t >= start, p, 0.0)
        fac = jnp.where(n_decay > 0, decay_factor(p, fam.shape_id, fam.final_ratio), 1.0)
        return fam.peak * warm * fac

    return schedule


def as_array(schedule: Schedule, n_steps: int) -> np.ndarray:
    """The schedule evaluated at steps 0..n_steps-1 in float64, as a NumPy array, e.g. to feed ``theory/``.

    The evaluation runs inside ``jax.enable_x64(True)`` whatever the caller's ``jax_enable_x64`` is, so the
    steps are int64 and every intermediate float64: in float32 the last lrs of a long cosine round to 0 and
    the tuned last-iterate bound becomes inf (T >= 2e4). A schedule that still returns another dtype (one that
    closes over float32 arrays) is an error, not a silent downcast. Raises ``ValueError`` for ``n_steps < 1``
    or a schedule with a non-finite or negative value.
    """
    _steps("n_steps", n_steps)
    with jax.enable_x64(True):
        raw = jnp.asarray(schedule(jnp.arange(n_steps, dtype=jnp.int64)))
        if raw.dtype != jnp.float64:
            raise ValueError(f"the schedule returned {raw.dtype}, not float64: build it from Python or float64 "
                             "values (sims.schedules constructors do)")
        out = np.broadcast_to(np.asarray(raw), (n_steps,)).copy()  # a constant schedule returns a scalar
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError("the schedule has a non-finite or negative learning rate")
    return out


FAMILY_KEYS = ("lr", "decay_fraction", "shape_id", "final_ratio", "warmup_steps")


def family_from_hparams(hp, total_steps: int) -> Schedule:
    """The :func:`family_schedule` read from a sweep's hparams dict.

    Keys: ``lr`` (peak, required), ``decay_fraction`` (default 0: constant), ``shape_id``
    (default 0: linear), ``final_ratio`` (default 0), ``warmup_steps`` (default 0). Missing keys
    take their defaults, so a sweep over ``lr`` alone is a constant-lr sweep.
    """
    if "lr" not in hp:
        raise ValueError("hparams must contain 'lr' (the peak learning rate)")
    lr = jnp.asarray(hp["lr"])
    z = jnp.zeros_like(lr)
    fam = Family(
        peak=lr,
        decay_fraction=jnp.asarray(hp.get("decay_fraction", z)),
        shape_id=jnp.asarray(hp.get("shape_id", 0)),
        final_ratio=jnp.asarray(hp.get("final_ratio", z)),
        warmup_steps=jnp.asarray(hp.get("warmup_steps", z)),
    )
    return family_schedule(fam, total_steps)


# --------------------------------------------------------------------------------------
# LR-schedule theory additions: REX, sampling rate, step, warmup-cosine, rewarming, refined, tables
# --------------------------------------------------------------------------------------
def rex(peak_value: float, total_steps: int, final_ratio: float = 0.0, warmup_steps: int = 0) -> Schedule:
    r"""REX (Chen, Wolfe, Kyrillidis, MLSys 2022, arXiv 2107.04197): profile over progress
    :math:`z = t/T`

    .. math:: \eta(z) = \eta_{\min} + (\eta_{\max}-\eta_{\min})\,\frac{1-z}{\tfrac12 + \tfrac12(1-z)}
              = \ldots\frac{2(1-z)}{2-z},

    sampled every iteration (the paper's "sampling rate" = how often the lr is re-read from the
    profile; see :func:`sampled`). It stays above linear decay (ratio :math:`2/(2-z)`) and drops to
    the floor at the end."""
    return wsd(peak_value, total_steps, decay_fraction=1.0 - warmup_steps / max(total_steps, 1),
               warmup_steps=warmup_steps, final_ratio=final_ratio, decay_shape="rex")


def sampled(schedule: Schedule, every: int) -> Schedule:
    """The REX paper's *sampling rate*: re-read the profile only every ``every`` steps
    (``every=1``: every iteration; a coarse sampling of linear decay is a step schedule)."""
    _steps("every", every)
    return lambda t: schedule((jnp.asarray(t) // every) * every)


def step_schedule(peak_value: float, boundaries: Sequence[int], factor: float = 0.1) -> Schedule:
    """Step decay: multiply by ``factor`` at each boundary (e.g. epochs 30-60-90), with
    ``optax.piecewise_constant_schedule``."""
    _positive("peak_value", peak_value)
    if not 0 < factor <= 1:
        raise ValueError(f"factor must lie in (0, 1], got {factor}")
    b = check_budgets(boundaries)
    return optax.piecewise_constant_schedule(peak_value, {int(x): factor for x in b})


def warmup_cosine(peak_value: float, total_steps: int, warmup_steps: int, final_ratio: float = 0.0,
                  init_ratio: float = 0.0) -> Schedule:
    """Linear warmup from ``init_ratio * peak`` then cosine to ``final_ratio * peak``
    (``optax.warmup_cosine_decay_schedule``)."""
    _positive("peak_value", peak_value)
    _steps("total_steps", total_steps)
    _steps("warmup_steps", warmup_steps, 0)
    check_fraction("final_ratio", final_ratio)
    check_fraction("init_ratio", init_ratio)
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be < total_steps ({total_steps})")
    return optax.warmup_cosine_decay_schedule(init_ratio * peak_value, peak_value, warmup_steps, total_steps,
                                              final_ratio * peak_value)


def rewarm(first: Schedule, switch_step: int, peak_value: float, total_steps: int, warmup_steps: int = 0,
           final_ratio: float = 0.0) -> Schedule:
    """Continual pre-training (Gupta et al. 2023, arXiv 2308.04014): follow ``first`` until
    ``switch_step``, then re-increase linearly from the lr reached to ``peak_value`` over
    ``warmup_steps`` and cosine-decay to ``final_ratio * peak`` at ``total_steps``."""
    _steps("switch_step", switch_step)
    _steps("total_steps", total_steps)
    if total_steps <= switch_step + warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must exceed switch_step + warmup_steps "
                         f"({switch_step + warmup_steps})")
    # the lr reached, in float64, as a Python float (no float32 constant is captured); evaluated eagerly even when
    # the schedule is built inside a jitted sim (the value depends on constants only)
    with jax.ensure_compile_time_eval(), jax.enable_x64(True):
        start = float(first(switch_step))
    second = optax.warmup_cosine_decay_schedule(start, peak_value, max(warmup_steps, 0),
                                                total_steps - switch_step, final_ratio * peak_value) \
        if warmup_steps > 0 else cosine(peak_value, total_steps - switch_step, final_ratio)
    return optax.join_schedules([first, second], [switch_step])


def table(values) -> Schedule:
    """Any array as a schedule: ``lr(t) = values[min(t, len - 1)]`` (e.g. a refined schedule)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 1:
        raise ValueError("values must be a non-empty 1-D array of learning rates")
    if np.any(v < 0) or not np.all(np.isfinite(v)):
        raise ValueError("values: learning rates in a table must be finite and >= 0")
    # the NumPy float64 table becomes a constant of the caller's precision at trace time (float64 in as_array)
    return lambda t: jnp.asarray(v)[jnp.minimum(jnp.asarray(t), v.size - 1)]


def refined(grad_norms, peak_value: float, total_steps: int | None = None, smooth: bool = True,
            power: float = 2.0) -> Schedule:
    r"""The refined schedule of Defazio, Cutkosky, Mehta, Mishchenko (arXiv 2310.07831) from a previous
    run's gradient norms (``theory.schedules.refine``, with the paper's median-filter smoothing),
    rescaled to peak ``peak_value`` and resampled to ``total_steps``; ``power=1`` with l1 norms: their Adam variant."""
    from theory.schedules import refine

    _positive("peak_value", peak_value)
    w = refine(grad_norms, smooth=smooth, n_out=total_steps, power=power)
    return table(peak_value * w)
