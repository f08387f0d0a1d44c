r"""Mini-batch SGD on noisy convex problems, any schedule: the testbed of the LR-schedule theory.

Problems on a fixed synthetic data set :math:`(a_i, b_i)_{i\le n}` (seeded NumPy):

* ``least_squares``: :math:`f(x) = \frac1{2n}\sum_i (a_i^\top x - b_i)^2`;
* ``logistic``: :math:`f(x) = \frac1n\sum_i \log(1 + e^{-b_i a_i^\top x})`, :math:`b_i \in \{\pm1\}`;
* ``abs``: :math:`f(x) = \frac1n\sum_i |a_i^\top x - b_i|` (non-smooth, Lipschitz: the setting of
  the last-iterate bound).

Each step samples ``batch`` indices with replacement. Records: the full-data loss and the mean
squared mini-batch gradient norm over each block (for :func:`theory.schedules.refine`).
The schedule is the WSD family from hparams or a static unit-peak spec times ``lr``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims import schedule_specs
from sims.config import Config, param
from sims.sweep import Sim, check_loop, record_steps, scan_with_records

__all__ = ["sim", "ConvexConfig", "make_data", "make_run", "full_loss"]

PROBLEMS = ("least_squares", "logistic", "abs")


@dataclasses.dataclass(frozen=True)
class ConvexConfig(Config):
    problem: str = param("logistic", choices=PROBLEMS, help="objective on the (A, b) data")
    n: int = param(512, ge=1, help="data points")
    d: int = param(20, ge=1, help="dimension")
    data_seed: int = param(0, ge=0, help="seed of the data (A, b)")
    noise: float = param(0.5, ge=0, help="label noise of the data")
    batch: int = param(1, ge=1, help="samples per SGD step")
    n_steps: int = param(2000, ge=1, le=10**9, help="SGD steps")
    log_every: int = param(20, ge=1, help="record every log_every steps (divides n_steps)")
    schedule: tuple = param((), help="() -> WSD family from hparams; else a unit-peak spec (schedule_specs.from_spec)")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        check_loop(self.n_steps, self.log_every)
        if self.schedule:
            schedule_specs.from_spec(self.schedule)

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


@functools.cache
def make_data(problem: str, n: int, d: int, seed: int, noise: float):
    """(A, b) as float64 NumPy arrays (rows of A ~ N(0, I/d) so that ||a_i|| ~ 1)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)) / np.sqrt(d)
    x_star = rng.standard_normal(d) * 2
    z = A @ x_star + noise * rng.standard_normal(n)
    b = np.sign(z) if problem == "logistic" else z
    return A, b


def _per_example(problem, r_or_m):
    if problem == "least_squares":
        return 0.5 * r_or_m**2
    if problem == "logistic":
        return jnp.logaddexp(0.0, -r_or_m)
    return jnp.abs(r_or_m)


def full_loss(x, A, b, problem):
    z = A @ x
    return jnp.mean(_per_example(problem, b * z if problem == "logistic" else z - b))


@functools.cache
def make_run(cfg: ConvexConfig):
    A_np, b_np = make_data(cfg.problem, cfg.n, cfg.d, cfg.data_seed, cfg.noise)

    def run(key, hp):
        dt = jnp.asarray(hp["lr"]).dtype
        A, b = jnp.asarray(A_np, dt), jnp.asarray(b_np, dt)
        sched = schedule_specs.schedule_for(cfg.schedule, hp, cfg.n_steps)
        opt = optax.sgd(sched)
        x0 = jnp.zeros(cfg.d, dt)
        loss_b = lambda x, idx: full_loss(x, A[idx], b[idx], cfg.problem)

        def step(k, state, t):
            x, ost, gsq = state
            idx = jax.random.randint(k, (cfg.batch,), 0, cfg.n)
            g = jax.grad(loss_b)(x, idx)
            upd, ost = opt.update(g, ost, x)
            return (optax.apply_updates(x, upd), ost, gsq + jnp.sum(g * g))

        def record(state, t):
            return {"loss": full_loss(state[0], A, b, cfg.problem), "gsq_cum": state[2], "lr_t": sched(t)}

        res = scan_with_records(key, step, (x0, opt.init(x0), jnp.zeros((), dt)), record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=1e8)
        return {"loss": full_loss(res.state[0], A, b, cfg.problem), "diverged_step": res.diverged_step}, res.traj

    return run


def block_grad_norms(gsq_cum, log_every: int):
    """Root-mean-square mini-batch gradient norm per block of ``log_every`` steps, from the
    cumulative sums recorded by :func:`make_run` (last axis = records)."""
    g = np.diff(np.asarray(gsq_cum, dtype=np.float64), axis=-1) / log_every
    return np.sqrt(np.maximum(g, 1e-30))


def sim(cfg: ConvexConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, {})
