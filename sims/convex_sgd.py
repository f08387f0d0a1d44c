r"""Mini-batch SGD, momentum or Adam on noisy convex problems, any schedule: the testbed of the LR-schedule
theory.

Finite-sum problems on a fixed synthetic data set :math:`(a_i, b_i)_{i\le n}` (seeded NumPy):

* ``least_squares``: :math:`f(x) = \frac1{2n}\sum_i (a_i^\top x - b_i)^2`;
* ``logistic``: :math:`f(x) = \frac1n\sum_i \log(1 + e^{-b_i a_i^\top x})`, :math:`b_i \in \{\pm1\}`;
* ``abs``: :math:`f(x) = \frac1n\sum_i |a_i^\top x - b_i|` (non-smooth, Lipschitz: the setting of
  the last-iterate bound).

Streaming problems (a fresh sample every step; the population loss is exact, so :math:`f^\star`, D and G
are known and the last-iterate bound's prediction is absolute, not fitted):

* ``stream_abs``: :math:`f(x) = E|a^\top x - y|`, :math:`a` uniform on the unit sphere (so every stochastic
  gradient :math:`\operatorname{sign}(r)\,a` has norm :math:`G = 1`), :math:`y = a^\top x^\star + \sigma\xi`,
  :math:`\xi \sim N(0, 1)`: convex, 1-Lipschitz, non-smooth: inside the class of Defazio et al.'s bound.
  :math:`f^\star = \sigma\sqrt{2/\pi}`; :math:`f(x)` by Gauss-Jacobi quadrature over
  :math:`u = a^\top v/\|v\|` (density :math:`\propto (1-u^2)^{(d-3)/2}`) of the closed form
  :math:`E_\xi|z - \sigma\xi| = z(2\Phi(z/\sigma) - 1) + 2\sigma\varphi(z/\sigma)`.
* ``stream_powerlaw``: :math:`f(x) = \tfrac12 E(a^\top x - y)^2`, :math:`a \sim N(0, \Lambda)`,
  :math:`\lambda_i = i^{-\alpha}` (``spectrum`` = :math:`\alpha`): :math:`f(x) - f^\star =
  \tfrac12 (x - x^\star)^\top\Lambda(x - x^\star)`, :math:`f^\star = \sigma^2/2`; not strongly convex on the
  horizon once :math:`\lambda_d \eta T \ll 1` (the loss decays as a power law); gradients are unbounded
  (G is measured: the recorded mean squared gradient norm).

:math:`x_0 = 0` and :math:`\|x^\star\| =` ``dist`` (= D) on the streaming problems, the direction drawn from
``data_seed``.

Optimizers (optax; the papers' symbols mapped to optax's parametrization):

* ``sgd``: :math:`x_{t+1} = x_t - \eta_t g_t` (``optax.sgd``);
* ``momentum``: heavy ball (Polyak), :math:`m_t = \beta m_{t-1} + g_t`, :math:`x_{t+1} = x_t - \eta_t m_t`
  (``optax.sgd(momentum=beta)``; the PyTorch form: the paper form :math:`x_{t+1} = x_t - \alpha g_t +
  \beta(x_t - x_{t-1})` with :math:`\alpha = \eta` at constant lr);
* ``nesterov``: the same with the Nesterov look-ahead (``optax.sgd(momentum=beta, nesterov=True)``);
* ``adam``: ``optax.adam(eta_t, b1, b2, eps)`` (Kingma & Ba's :math:`\alpha_t = \eta_t`, :math:`\beta_1,
  \beta_2, \epsilon`, bias-corrected).

Each step samples ``batch`` indices with replacement (finite sums) or ``batch`` fresh samples (streaming).
Records: the full-data (population) loss and the cumulative squared l2 and l1 mini-batch gradient norms (per
block: :func:`block_grad_norms`, :func:`block_l1_norms`, the inputs of :func:`theory.schedules.refine`). The
schedule is the WSD family from hparams or a static unit-peak spec times ``lr``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.special import gammaln, roots_jacobi

from sims import schedule_specs
from sims.config import Config, param
from sims.sweep import Sim, Tuned, check_loop, record_steps, scan_with_records, sweep, tune_lr

__all__ = ["sim", "ConvexConfig", "make_data", "make_run", "full_loss", "optimizer", "f_star", "x_star",
           "population_loss", "STREAMING", "OPTIMIZERS", "tune_arms", "TunedArms", "suboptimality_offset",
           "block_grad_norms", "block_l1_norms", "LR_CENTER"]

FINITE = ("least_squares", "logistic", "abs")
STREAMING = ("stream_abs", "stream_powerlaw")
PROBLEMS = FINITE + STREAMING
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
# a starting peak lr per (streaming problem, optimizer) at d = 100, noise 0.1, for tune_arms's grid (which grows until
# every optimum is interior): momentum's effective step is lr / (1 - beta) = 10 lr; Adam's per-coordinate step ~ lr
LR_CENTER = MappingProxyType({
    ("stream_abs", "sgd"): 0.02, ("stream_abs", "momentum"): 0.002, ("stream_abs", "nesterov"): 0.002,
    ("stream_abs", "adam"): 0.002, ("stream_powerlaw", "sgd"): 0.2, ("stream_powerlaw", "momentum"): 0.02,
    ("stream_powerlaw", "nesterov"): 0.02, ("stream_powerlaw", "adam"): 0.002})
# fields that act only for some problems / optimizers: a non-default value elsewhere is refused (it would not act)
_APPLIES = MappingProxyType({
    "n": ("problem", FINITE), "spectrum": ("problem", ("stream_powerlaw",)), "dist": ("problem", STREAMING),
    "momentum": ("optimizer", ("momentum", "nesterov")), "b1": ("optimizer", ("adam",)),
    "b2": ("optimizer", ("adam",)), "eps": ("optimizer", ("adam",))})


@dataclasses.dataclass(frozen=True)
class ConvexConfig(Config):
    problem: str = param("logistic", choices=PROBLEMS, help="objective: a finite sum on (A, b) or a stream")
    n: int = param(512, ge=1, help="data points (finite-sum problems)")
    d: int = param(20, ge=1, help="dimension")
    data_seed: int = param(0, ge=0, help="seed of the data (A, b), or of x*'s direction (streaming)")
    noise: float = param(0.5, ge=0, help="label noise of the data (sigma)")
    spectrum: float = param(1.5, gt=0, le=10, help="stream_powerlaw: covariance eigenvalues i^-spectrum")
    dist: float = param(1.0, gt=0, le=1e6, help="streaming problems: D = ||x* - x_0||")
    optimizer: str = param("sgd", choices=OPTIMIZERS, help="optax optimizer (the module docstring maps symbols)")
    momentum: float = param(0.9, ge=0, lt=1, help="momentum / nesterov: beta of m <- beta m + g")
    b1: float = param(0.9, gt=0, lt=1, help="adam: first-moment decay")
    b2: float = param(0.999, gt=0, lt=1, help="adam: second-moment decay")
    eps: float = param(1e-8, gt=0, le=1, help="adam: epsilon")
    batch: int = param(1, ge=1, help="samples per SGD step")
    n_steps: int = param(2000, ge=1, le=10**9, help="SGD steps")
    log_every: int = param(20, ge=1, help="record every log_every steps (divides n_steps)")
    schedule: tuple = param((), help="() -> WSD family from hparams; else a unit-peak spec (schedule_specs.from_spec)")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        check_loop(self.n_steps, self.log_every)
        for name, (on, where) in _APPLIES.items():
            default = type(self).__dataclass_fields__[name].default
            if getattr(self, on) not in where and getattr(self, name) != default:
                raise ValueError(f"{name}={getattr(self, name)!r} acts only with {on} in {list(where)}; "
                                 f"{on}={getattr(self, on)!r} (leave {name} at {default!r})")
        if self.problem == "stream_abs" and self.d < 2:
            raise ValueError(f"d={self.d} is out of range for stream_abs: must be >= 2 (a on the unit sphere)")
        if self.schedule:
            schedule_specs.check_spec(self.schedule)

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


@functools.cache
def make_data(problem: str, n: int, d: int, seed: int, noise: float):
    """(A, b) as float64 NumPy arrays (rows of A ~ N(0, I/d) so that ||a_i|| ~ 1). Finite-sum problems only."""
    if problem not in FINITE:
        raise ValueError(f"problem={problem!r}: make_data is for the finite-sum problems {list(FINITE)}")
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


def optimizer(cfg: ConvexConfig, schedule) -> optax.GradientTransformation:
    """``cfg.optimizer`` with the lr ``schedule`` (optax; see the module docstring for the symbols)."""
    if cfg.optimizer == "adam":
        return optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    if cfg.optimizer in ("momentum", "nesterov"):
        return optax.sgd(schedule, momentum=cfg.momentum, nesterov=cfg.optimizer == "nesterov")
    return optax.sgd(schedule)


def x_star(cfg: ConvexConfig) -> np.ndarray:
    """The streaming problems' minimizer (float64): ``dist`` times a unit vector drawn from ``data_seed``."""
    if cfg.problem not in STREAMING:
        raise ValueError(f"problem={cfg.problem!r}: x_star is for the streaming problems {list(STREAMING)}")
    v = np.random.default_rng(cfg.data_seed).standard_normal(cfg.d)
    return cfg.dist * v / np.linalg.norm(v)


def f_star(cfg: ConvexConfig) -> float:
    """The streaming problems' optimal population loss: sigma sqrt(2/pi) (stream_abs), sigma^2/2 (powerlaw)."""
    if cfg.problem not in STREAMING:
        raise ValueError(f"problem={cfg.problem!r}: for finite sums use theory.schedules.erm_optimum")
    return cfg.noise * np.sqrt(2 / np.pi) if cfg.problem == "stream_abs" else cfg.noise**2 / 2


@functools.cache
def _sphere_nodes(d: int, n: int = 96):
    """Gauss-Jacobi nodes and normalized weights for u = a . e, a uniform on the unit sphere of R^d."""
    u, w = roots_jacobi(n, (d - 3) / 2, (d - 3) / 2)
    # E|u| in closed form, for the noiseless case (|z| is not smooth: quadrature would converge slowly)
    abs_u = float(np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi))
    return u, w / w.sum(), abs_u


def population_loss(x, cfg: ConvexConfig):
    """The exact population loss f(x) of a streaming problem (jnp; float in x's dtype)."""
    xs = jnp.asarray(x_star(cfg), x.dtype)
    v = x - xs
    if cfg.problem == "stream_powerlaw":
        lam = jnp.asarray(np.arange(1, cfg.d + 1, dtype=np.float64) ** -cfg.spectrum, x.dtype)
        return 0.5 * jnp.sum(lam * v * v) + f_star(cfg)
    u, w, abs_u = _sphere_nodes(cfg.d)
    r = jnp.sqrt(jnp.sum(v * v))
    if cfg.noise == 0:
        return r * abs_u
    z = r * jnp.asarray(u, x.dtype) / cfg.noise
    h = z * (2 * jax.scipy.stats.norm.cdf(z) - 1) + 2 * jax.scipy.stats.norm.pdf(z)
    return cfg.noise * jnp.sum(jnp.asarray(w, x.dtype) * h)


def _stream_batch(key, cfg: ConvexConfig, xs):
    """``batch`` fresh samples (A, y) of a streaming problem."""
    ka, kn = jax.random.split(key)
    a = jax.random.normal(ka, (cfg.batch, cfg.d), xs.dtype)
    if cfg.problem == "stream_abs":
        a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
    else:
        a = a * jnp.asarray(np.arange(1, cfg.d + 1, dtype=np.float64) ** (-cfg.spectrum / 2), xs.dtype)
    return a, a @ xs + cfg.noise * jax.random.normal(kn, (cfg.batch,), xs.dtype)


@functools.cache
def make_run(cfg: ConvexConfig):
    stream = cfg.problem in STREAMING
    A_np, b_np = (None, None) if stream else make_data(cfg.problem, cfg.n, cfg.d, cfg.data_seed, cfg.noise)
    inner = "abs" if cfg.problem == "stream_abs" else "least_squares"

    def run(key, hp):
        dt = jnp.asarray(hp["lr"]).dtype
        sched = schedule_specs.schedule_for(cfg.schedule, hp, cfg.n_steps)
        opt = optimizer(cfg, sched)
        x0 = jnp.zeros(cfg.d, dt)
        if stream:
            xs = jnp.asarray(x_star(cfg), dt)
            loss = lambda x: population_loss(x, cfg)  # noqa: E731
            grad = lambda k, x: jax.grad(lambda x, ab: full_loss(x, *ab, inner))(x, _stream_batch(k, cfg, xs))  # noqa: E731
        else:
            A, b = jnp.asarray(A_np, dt), jnp.asarray(b_np, dt)
            loss = lambda x: full_loss(x, A, b, cfg.problem)  # noqa: E731
            grad = lambda k, x: jax.grad(  # noqa: E731
                lambda x, i: full_loss(x, A[i], b[i], cfg.problem))(x, jax.random.randint(k, (cfg.batch,), 0, cfg.n))

        def step(k, state, t):
            x, ost, gsq, g1 = state
            g = grad(k, x)
            upd, ost = opt.update(g, ost, x)
            return (optax.apply_updates(x, upd), ost, gsq + jnp.sum(g * g), g1 + jnp.sum(jnp.abs(g)))

        def record(state, t):
            return {"loss": loss(state[0]), "gsq_cum": state[2], "g1_cum": state[3], "lr_t": sched(t)}

        zero = jnp.zeros((), dt)
        res = scan_with_records(key, step, (x0, opt.init(x0), zero, zero), record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=1e8)
        return {"loss": loss(res.state[0]), "diverged_step": res.diverged_step}, res.traj

    return run


def block_grad_norms(gsq_cum, log_every: int):
    """Root-mean-square mini-batch gradient norm per block of ``log_every`` steps, from the
    cumulative sums recorded by :func:`make_run` (last axis = records)."""
    g = np.diff(np.asarray(gsq_cum, dtype=np.float64), axis=-1) / log_every
    return np.sqrt(np.maximum(g, 1e-30))


def block_l1_norms(g1_cum, log_every: int):
    """Mean l1 norm of the mini-batch gradient per block of ``log_every`` steps (the input of the coordinate-wise
    (Adam) refinement), from the cumulative ``g1_cum`` recorded by :func:`make_run` (last axis = records)."""
    return np.maximum(np.diff(np.asarray(g1_cum, dtype=np.float64), axis=-1) / log_every, 1e-30)


def sim(cfg: ConvexConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, {})


def suboptimality_offset(cfg: ConvexConfig) -> float:
    """f* of ``cfg``'s problem: exact on the streaming problems; the ERM optimum (SciPy, float64) on finite sums."""
    if cfg.problem in STREAMING:
        return f_star(cfg)
    from theory.schedules import erm_optimum

    return float(erm_optimum(cfg.problem, *make_data(cfg.problem, cfg.n, cfg.d, cfg.data_seed, cfg.noise))[0])


def tune_arms(cfg: ConvexConfig, arms: Sequence[Mapping[str, float]], lrs, *, seeds: int, key) -> TunedArms:
    """Each arm at its own tuned peak lr: the experiment of the schedule-comparison figures.

    ``arms``: one dict of fixed schedule hparams per arm (the WSD family's ``decay_fraction`` / ``shape_id`` /
    ``final_ratio``, or ``{"arm": i}`` with an ``("arms", ...)`` spec in ``cfg.schedule``), all with the same keys.
    The starting grid ``lrs`` is run for every arm in one zipped sweep, then :func:`sims.tune.tune_lr` grows it until
    each optimum is interior and refines it to x2^(1/4). Finals are f(x_T) - f*; diverged runs are NaN (counted)."""
    arms = [dict(a) for a in arms]
    if not arms or any(set(a) != set(arms[0]) for a in arms):
        raise ValueError("arms must be a non-empty list of dicts with the same keys")
    fs = suboptimality_offset(cfg)
    n_div = 0

    def evaluate(lr, arm):
        nonlocal n_div
        hp = {"lr": np.asarray(lr, np.float64)}
        for k in arms[0]:
            v = np.asarray([arms[a][k] for a in arm])
            hp[k] = v.astype(np.int32) if np.issubdtype(v.dtype, np.integer) else v
        d = sweep(sim(cfg), hp, mode="zip", seeds=seeds, key=key)
        n_div += int(d.diverged.sum())
        return d.loss.isel(step=-1).where(~d.diverged).values - fs

    lrs = np.asarray(lrs, np.float64)
    grid = evaluate(np.repeat(lrs, len(arms)), np.tile(np.arange(len(arms)), len(lrs)))
    grid = grid.reshape(len(lrs), len(arms), seeds)
    tu = tune_lr(evaluate, len(arms), lrs, initial=grid)
    return TunedArms(grid, tu, n_div)


class TunedArms(NamedTuple):
    """What :func:`tune_arms` returns: the starting grid's finals (lr, arm, seed), the tuning and the divergences."""

    grid: np.ndarray
    tuned: Tuned
    n_div: int
