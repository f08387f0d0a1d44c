r"""SGD on river-valley landscapes (Wen et al. 2024, Sec. 3), any schedule or multi-budget protocol.

.. math::
    f(u, v) = \ell(u) + \tfrac12\sum_i a_i(u)(v_i - g_i(u))^2,\quad \ell(u) = c e^{-u/s},\quad
    a_i(u) = a_i e^{\kappa u},\quad g_1(u) = \gamma\sin u

(see ``theory/river_valley.py``). The iterate is :math:`x = (u, v_1..v_k)`. Noise: additive
Gaussian with per-direction scales (``sigma_river``, ``sigma_hill``); with
``noise="loss"`` the scales are multiplied by :math:`\sqrt{\ell(u)/\ell(u_0)}` (gradient noise
that shrinks as the river loss falls, as for cross-entropy on data that becomes predictable).

The schedule is the array-parametrized WSD family (hparams ``lr``, ``decay_fraction``,
``shape_id``, ``final_ratio``, ``warmup_steps``) unless ``cfg.schedule`` holds a static unit-peak
spec (``sims.schedules.from_spec``: WSD-S, cyclic cosine, ...) that is multiplied by ``lr``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims import schedules
from sims.sweep import noise_chunk_for, scan_with_records

__all__ = ["RiverConfig", "make_run", "loss_parts"]


@dataclasses.dataclass(frozen=True)
class RiverConfig:
    a: tuple[float, ...] = (10.0,)  # hill sharpness per hill direction (at u = 0)
    sigma_hill: tuple[float, ...] = (1.0,)
    sigma_river: float = 0.0
    c: float = 1.0  # river loss scale
    s: float = 1.0  # river length scale
    kappa: float = 0.0  # sharpness varies along the river: a_i(u) = a_i exp(kappa u)
    curvature: float = 0.0  # gamma: the river curve g_1(u) = gamma sin(u)
    noise: str = "additive"  # or "loss"
    u0: float = 0.0
    v0: float = 0.0
    n_steps: int = 2000
    log_every: int = 20
    schedule: tuple = ()  # () -> WSD family from hparams; else a unit-peak spec for from_spec
    bound: float = 1e6

    def __post_init__(self):
        if not self.a or any(x <= 0 for x in self.a):
            raise ValueError(f"a (hill sharpness) must be a non-empty tuple of values > 0, got {self.a}")
        if len(self.sigma_hill) not in (1, len(self.a)):
            raise ValueError(f"sigma_hill must have 1 or {len(self.a)} entries, got {len(self.sigma_hill)}")
        if any(x < 0 for x in self.sigma_hill) or self.sigma_river < 0:
            raise ValueError("noise scales sigma_hill, sigma_river must be >= 0")
        if self.c <= 0 or self.s <= 0:
            raise ValueError(f"river scale c and length s must be > 0, got c={self.c}, s={self.s}")
        if self.noise not in ("additive", "loss"):
            raise ValueError(f"noise must be 'additive' or 'loss', got {self.noise!r}")
        if self.n_steps < 1 or self.log_every < 1 or self.n_steps % self.log_every:
            raise ValueError(f"n_steps ({self.n_steps}) must be a multiple of log_every ({self.log_every})")
        if self.schedule:
            schedules.from_spec(self.schedule)  # validates

    @property
    def k(self) -> int:
        return len(self.a)

    def steps(self) -> np.ndarray:
        return np.arange(0, self.n_steps + 1, self.log_every)


def loss_parts(x, cfg: RiverConfig):
    """(total loss, river loss l(u), hill loss) at x = (u, v)."""
    u, v = x[0], x[1:]
    a = jnp.asarray(cfg.a, x.dtype) * jnp.exp(cfg.kappa * u)
    g = jnp.zeros_like(v).at[0].set(cfg.curvature * jnp.sin(u))
    river = cfg.c * jnp.exp(-u / cfg.s)
    hill = 0.5 * jnp.sum(a * (v - g) ** 2)
    return river + hill, river, hill


@functools.cache
def make_run(cfg: RiverConfig):
    """``run(key, hparams) -> (final, traj)`` for the sweep engine (cached per cfg)."""
    d = 1 + cfg.k
    l0 = cfg.c * np.exp(-cfg.u0 / cfg.s)

    def run(key, hp):
        dt = jnp.asarray(hp["lr"]).dtype
        if cfg.schedule:
            unit = schedules.from_spec(cfg.schedule)
            sched = lambda t: hp["lr"] * unit(t)
        else:
            sched = schedules.family_from_hparams(hp, cfg.n_steps)
        opt = optax.sgd(sched)
        sig = jnp.concatenate([jnp.asarray([cfg.sigma_river], dt),
                               jnp.broadcast_to(jnp.asarray(cfg.sigma_hill, dt), (cfg.k,))])
        x0 = jnp.concatenate([jnp.asarray([cfg.u0], dt), jnp.full((cfg.k,), cfg.v0, dt)])
        grad = jax.grad(lambda x: loss_parts(x, cfg)[0])

        def step(xi, state, t):
            x, ost = state
            scale = sig
            if cfg.noise == "loss":
                scale = sig * jnp.sqrt(cfg.c * jnp.exp(-x[0] / cfg.s) / l0)
            upd, ost = opt.update(grad(x) + scale * xi, ost, x)
            return (optax.apply_updates(x, upd), ost)

        def record(state, t):
            x = state[0]
            tot, riv, hill = loss_parts(x, cfg)
            return {"loss": tot, "river_loss": riv, "hill_loss": hill, "u": x[0], "lr_t": sched(t)}

        res = scan_with_records(key, step, (x0, opt.init(x0)), record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=cfg.bound,
                                noise=lambda k, n: jax.random.normal(k, (n, d), dt),
                                noise_chunk=noise_chunk_for(cfg.log_every, d),
                                unroll=4)
        tot, riv, hill = loss_parts(res.state[0], cfg)
        return {"loss": tot, "river_loss": riv, "hill_loss": hill, "diverged_step": res.diverged_step}, res.traj

    return run
