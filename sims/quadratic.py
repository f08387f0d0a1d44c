r"""SGD on a quadratic valley with additive Gaussian gradient noise (any schedule).

.. math::
    x_{t+1} = x_t - \eta_t (a \odot x_t + \sigma \odot \xi_t), \qquad f(x) = \tfrac12\sum_i a_i x_i^2 .

``make_run(cfg)`` returns ``run(key, hparams) -> (final, traj)`` for the sweep engine. The lr
schedule is the array-parametrized WSD family of :mod:`sims.schedules` (hparams ``lr``,
``decay_fraction``, ``shape_id``, ``final_ratio``, ``warmup_steps``), so constant, cosine,
linear and WSD schedules are swept in one compiled call. The step uses optax's ``sgd`` with the
schedule (``optax.sgd(schedule)``), with the gradient noise added to the exact gradient.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims import schedules
from sims.config import Config, param
from sims.sweep import Sim, check_loop, noise_chunk_for, record_steps, scan_with_records

__all__ = ["sim", "QuadraticConfig", "make_run", "loss"]


@dataclasses.dataclass(frozen=True)
class QuadraticConfig(Config):
    """Static config. ``a``: curvatures (d of them); ``sigma``: noise scale per coordinate (one
    value broadcast, or d values); ``x0``: start (one value broadcast, or d values)."""

    a: tuple[float, ...] = param((1.0,), gt=0, help="curvatures a_i (d of them)")
    sigma: tuple[float, ...] = param((1.0,), ge=0, help="gradient noise scale (1 value or d values)")
    x0: tuple[float, ...] = param((0.0,), help="start (1 value or d values)")
    n_steps: int = param(1000, ge=1, le=10**9, help="SGD steps")
    log_every: int = param(10, ge=1, help="record every log_every steps (divides n_steps)")
    bound: float = param(1e6, gt=0, help="|x| beyond this counts as diverged")
    record_x: bool = param(False, help="also record the iterate x")
    unroll: int = param(4, ge=1, help="inner lax.scan unroll (speed only; same bits)")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        if not self.a:
            raise ValueError(f"a (curvatures) must be a non-empty tuple of values > 0, got {self.a}")
        for name in ("sigma", "x0"):
            v = getattr(self, name)
            if len(v) not in (1, len(self.a)):
                raise ValueError(f"{name} must have 1 or d={len(self.a)} entries, got {len(v)}")
        check_loop(self.n_steps, self.log_every)

    @property
    def d(self) -> int:
        return len(self.a)

    def noise_chunk(self) -> int:
        """Steps of noise drawn per RNG call: the largest divisor of log_every <= 128 / d, so
        that one chunk for ~1000 vmapped seeds stays in cache (speed only)."""
        return noise_chunk_for(self.log_every, self.d)

    def steps(self) -> np.ndarray:
        return record_steps(self.n_steps, self.log_every)


def loss(x, a):
    return 0.5 * jnp.sum(a * x**2, axis=-1)


@functools.cache
def make_run(cfg: QuadraticConfig):
    """``run(key, hparams) -> (final, traj)``; cached per cfg so sweeps never recompile."""
    d = cfg.d

    def run(key, hp):
        dt = jnp.asarray(hp["lr"]).dtype
        a = jnp.asarray(cfg.a, dt)
        sigma = jnp.broadcast_to(jnp.asarray(cfg.sigma, dt), (d,))
        x0 = jnp.broadcast_to(jnp.asarray(cfg.x0, dt), (d,))
        opt = optax.sgd(schedules.family_from_hparams(hp, cfg.n_steps))
        state0 = (x0, opt.init(x0))

        def step(xi, state, t):
            x, ost = state
            g = a * x + sigma * xi
            upd, ost = opt.update(g, ost, x)
            return (optax.apply_updates(x, upd), ost)

        def record(state, t):
            x = state[0]
            out = {"loss": loss(x, a)}
            if cfg.record_x:
                out["x"] = x
            return out

        res = scan_with_records(
            key, step, state0, record, n_steps=cfg.n_steps, log_every=cfg.log_every, bound=cfg.bound,
            noise=lambda k, n: jax.random.normal(k, (n, d), dt), noise_chunk=cfg.noise_chunk(),
            unroll=cfg.unroll,
        )
        final = {"loss": loss(res.state[0], a), "diverged_step": res.diverged_step}
        return final, res.traj

    return run


def sim(cfg: QuadraticConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, {"x": ("coord",)})
