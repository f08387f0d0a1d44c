r"""Lion-:math:`\mathcal K` (Chen, Liu, Liang, Liu, ICLR 2024, arXiv 2310.05898) as optax transformations,
sweepable simulations, and the continuous-time ODE.

Symbol map (paper -> optax), stated once and tested:

=========================  ===============================================================
paper                       optax / this module
=========================  ===============================================================
:math:`\epsilon` (lr)       ``learning_rate``
:math:`\lambda`             ``weight_decay`` -- optax.lion multiplies it by the learning rate,
                            so the step is :math:`x \leftarrow x - \epsilon(\nabla\mathcal K(c) + \lambda x)`
                            and the box is :math:`\|x\|_\infty \le 1/\lambda` (NOT :math:`1/(\epsilon\lambda)`)
:math:`\beta_1,\beta_2`     ``b1``, ``b2``
:math:`m`                   :math:`-\mu` (optax keeps :math:`\mu = \beta_2\mu + (1-\beta_2)g`; the paper
                            keeps :math:`m = \beta_2 m - (1-\beta_2)g`)
:math:`\nabla\mathcal K`    ``grad_kappa`` (``sign`` for Lion; see ``theory.lion.KAPPAS``)
=========================  ===============================================================

With an odd :math:`\nabla\mathcal K` (every convex even K) the two sign conventions give the same
iterates.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from sims.config import Config, param
from sims.sweep import Sim, check_loop, record_steps, scan_with_records
from theory import lion as tl

__all__ = ["sim", "scale_by_lion_kappa", "lion_kappa", "LionConfig", "make_run", "ode_solve", "ODEState"]


class ScaleByLionKappaState(NamedTuple):
    count: jax.Array
    mu: optax.Updates


def scale_by_lion_kappa(grad_kappa, b1=0.9, b2=0.99, mu_dtype=None) -> optax.GradientTransformation:
    r"""Lion's direction with :math:`\nabla\mathcal K` in place of ``sign`` (optax's ``scale_by_lion`` style).

    ``grad_kappa``: a name from ``theory.lion.KAPPAS`` or a callable on a flat vector. The
    direction is :math:`\nabla\mathcal K((1-\beta_1)g + \beta_1\mu)` evaluated on the whole
    parameter vector (so norm-based K such as l2 couple all leaves), then
    :math:`\mu \leftarrow \beta_2\mu + (1-\beta_2)g`.
    """
    if isinstance(grad_kappa, str):
        kap = tl.get_kappa(grad_kappa)  # validates the name now, not at the first update
        gk = lambda v: kap.grad(v, jnp)
    else:
        gk = grad_kappa
    mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

    def init_fn(params):
        mu = jax.tree.map(lambda p: jnp.zeros_like(p, dtype=mu_dtype or p.dtype), params)
        return ScaleByLionKappaState(count=jnp.zeros([], jnp.int32), mu=mu)

    def update_fn(updates, state, params=None):
        del params
        c = jax.tree.map(lambda g, m: (1.0 - b1) * g + b1 * m, updates, state.mu)
        flat, unravel = ravel_pytree(c)
        new = unravel(gk(flat))
        mu = optax.tree.update_moment(updates, state.mu, b2, 1)
        if mu_dtype is not None:
            mu = jax.tree.map(lambda x: x.astype(mu_dtype), mu)
        return new, ScaleByLionKappaState(count=optax.safe_increment(state.count), mu=mu)

    return optax.GradientTransformation(init_fn, update_fn)


def lion_kappa(learning_rate, kappa="l1", b1=0.9, b2=0.99, weight_decay=1e-3, mu_dtype=None):
    r"""Lion-K = chain(scale_by_lion_kappa, add_decayed_weights, scale_by_learning_rate), exactly
    optax.lion's chain. Paper: :math:`\epsilon` = ``learning_rate``, :math:`\lambda` = ``weight_decay``."""
    concrete = {k: v for k, v in dict(lr=learning_rate, lam=weight_decay, b1=b1, b2=b2).items()
                if not callable(v) and not isinstance(v, jax.core.Tracer)}
    tl.check_hparams(**concrete)  # traced values (inside a sweep) are checked by the caller
    return optax.chain(scale_by_lion_kappa(kappa, b1, b2, mu_dtype), optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(learning_rate))


@dataclasses.dataclass(frozen=True)
class LionConfig(Config):
    """Static config of a Lion-K run on a test problem of ``theory.lion.problem``.

    Seeds draw the start ``x0 ~ x0_scale * N(0, I)`` (far outside the box for large scales) and, if
    ``grad_noise > 0``, additive Gaussian gradient noise. hparams: ``lr`` (epsilon),
    ``weight_decay`` (lambda), ``b1``, ``b2``.
    """

    problem: str = param("quadratic", help="test problem of theory.lion.problem (quadratic, rosenbrock, ...)")
    d: int = param(2, ge=1, le=10**6, help="dimension")
    problem_seed: int = param(0, ge=0, help="seed of the problem's random data")
    kappa: str = param("l1", help="the convex function K of Lion-K (theory.lion.get_kappa): l1 = sign, Lion's own")
    n_steps: int = param(2000, ge=1, le=10**9, help="optimizer steps")
    log_every: int = param(10, ge=1, help="record every log_every steps (divides n_steps)")
    x0_scale: float = param(0.0, ge=0, help="random start x0 ~ x0_scale N(0, I) per seed")
    x0: tuple[float, ...] = param((), help="fixed start (overrides x0_scale)")
    grad_noise: float = param(0.0, ge=0, help="std of additive Gaussian gradient noise")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        tl.get_kappa(self.kappa)
        tl.problem(self.problem, self.d, self.problem_seed)
        check_loop(self.n_steps, self.log_every)
        if self.x0 and len(self.x0) != self.d:
            raise ValueError(f"x0 must have d={self.d} entries, got {len(self.x0)}")

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


@functools.cache
def make_run(cfg: LionConfig):
    f, _ = tl.problem(cfg.problem, cfg.d, cfg.problem_seed)

    def run(key, hp):
        dt = jnp.asarray(hp["lr"]).dtype
        k0, kl = jax.random.split(key)
        if cfg.x0:
            x0 = jnp.asarray(cfg.x0, dt)
        else:
            x0 = cfg.x0_scale * jax.random.normal(k0, (cfg.d,), dt)
        opt = lion_kappa(hp["lr"], cfg.kappa, hp.get("b1", 0.9), hp.get("b2", 0.99), hp["weight_decay"])
        fj = lambda x: f(x, jnp)
        grad = jax.grad(fj)

        def step(k, state, t):
            x, ost = state
            g = grad(x)
            if cfg.grad_noise:
                g = g + cfg.grad_noise * jax.random.normal(k, (cfg.d,), dt)
            upd, ost = opt.update(g, ost, x)
            return (optax.apply_updates(x, upd), ost)

        def record(state, t):
            x, ost = state
            return {"x": x, "m": -ost[0].mu, "f": fj(x)}  # m in the paper's sign convention

        res = scan_with_records(kl, step, (x0, opt.init(x0)), record, n_steps=cfg.n_steps, log_every=cfg.log_every,
                                bound=1e8)
        return {"x": res.state[0], "f": fj(res.state[0]), "diverged_step": res.diverged_step}, res.traj

    return run


class ODEState(NamedTuple):
    x: jax.Array
    m: jax.Array


def ode_solve(f, kappa: str, x0, m0, *, alpha, gamma, look, lam, dt, n_steps, scheme="heun", record_every=1):
    r"""Integrate the Lion-K ODE (Sec. 3) with a fixed step in JAX (``lax.scan``):

    .. math:: \dot m = -\alpha\nabla f(x) - \gamma m,\quad \dot x = \nabla\mathcal K(\tilde m) - \lambda x,
              \quad \tilde m = m - \varepsilon(\alpha\nabla f(x) + \gamma m).

    ``scheme``: ``"euler"`` (order 1) or ``"heun"`` (explicit trapezoid, order 2 for smooth K;
    the order is verified in the tests). Returns the states every ``record_every`` steps
    (including the start).
    """
    if scheme not in ("euler", "heun"):
        raise ValueError(f"scheme must be 'euler' or 'heun', got {scheme!r}")
    if dt <= 0 or n_steps < 1 or n_steps % record_every:
        raise ValueError("need dt > 0, n_steps >= 1 and record_every dividing n_steps")
    gk = tl.get_kappa(kappa)
    grad = jax.grad(lambda x: f(x, jnp))

    def rhs(s):
        g = grad(s.x)
        mt = s.m - look * (alpha * g + gamma * s.m)
        return ODEState(gk.grad(mt, jnp) - lam * s.x, -alpha * g - gamma * s.m)

    def step(s, _):
        k1 = rhs(s)
        e = ODEState(s.x + dt * k1.x, s.m + dt * k1.m)
        if scheme == "euler":
            return e, None
        k2 = rhs(e)
        return ODEState(s.x + 0.5 * dt * (k1.x + k2.x), s.m + 0.5 * dt * (k1.m + k2.m)), None

    def block(s, _):
        s, _ = jax.lax.scan(step, s, None, length=record_every)
        return s, s

    s0 = ODEState(jnp.asarray(x0), jnp.asarray(m0))
    _, traj = jax.lax.scan(block, s0, None, length=n_steps // record_every)
    return ODEState(jnp.concatenate([s0.x[None], traj.x]), jnp.concatenate([s0.m[None], traj.m]))


def averaged_limit(cfg: LionConfig, lr: float, weight_decay: float, *, key, seeds: int = 1, b1: float = 0.9,
                   b2: float = 0.99, tail: float = 0.25):
    """Run a Lion-K sweep over seeds and return (time-averaged x over the last ``tail`` of the
    records, per seed; the Dataset). Averaging removes the O(epsilon) sign chatter."""
    from sims.sweep import sweep

    tl.check_hparams(lr=lr, lam=weight_decay, b1=b1, b2=b2)
    ds = sweep(make_run(cfg), {"lr": [lr]}, fixed={"weight_decay": weight_decay, "b1": b1, "b2": b2}, seeds=seeds,
               key=key, steps=cfg.steps(), cfg=cfg, progress=False, dims={"x": ("coord",), "m": ("coord",)})
    n = max(1, int(round(tail * (ds.sizes["step"] - 1))))
    return ds.x.isel(lr=0).values[:, -n:].mean(1), ds


def sim(cfg: LionConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, {"x": ("coord",), "m": ("coord",)})
