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
spec (``sims.schedule_specs.from_spec``: WSD-S, cyclic cosine, ...) that is multiplied by ``lr``.
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
from sims.sweep import Sim, check_loop, noise_chunk_for, record_steps, scan_with_records

__all__ = ["sim", "lm_sim", "RiverConfig", "BigramLMConfig", "make_run", "make_lm_run", "loss_parts"]


@dataclasses.dataclass(frozen=True)
class RiverConfig(Config):
    """Static config of a river-valley run (hparams: the schedule's ``lr``, ``decay_fraction``, ``shape_id``,
    ``final_ratio``, ``warmup_steps``)."""

    a: tuple[float, ...] = param((10.0,), gt=0, help="hill sharpness a_i per hill direction (at u = 0)")
    sigma_hill: tuple[float, ...] = param((1.0,), ge=0, help="hill noise scale (1 value or one per hill)")
    sigma_river: float = param(0.0, ge=0, help="river-direction noise scale")
    c: float = param(1.0, gt=0, help="river loss scale c in l(u) = c exp(-u/s)")
    s: float = param(1.0, gt=0, help="river length scale s")
    kappa: float = param(0.0, help="sharpness varies along the river: a_i(u) = a_i exp(kappa u)")
    curvature: float = param(0.0, help="gamma: the river curve g_1(u) = gamma sin(u)")
    noise: str = param("additive", choices=("additive", "loss"),
                       help="additive: fixed scales; loss: scales x sqrt(l(u)/l(u0))")
    u0: float = param(0.0, help="start along the river")
    v0: float = param(0.0, help="start across the hills")
    n_steps: int = param(2000, ge=1, le=10**9, help="SGD steps")
    log_every: int = param(20, ge=1, help="record every log_every steps (divides n_steps)")
    schedule: tuple = param((), help="() -> WSD family from hparams; else a unit-peak spec (schedule_specs.from_spec)")
    bound: float = param(1e6, gt=0, help="|x| beyond this counts as diverged")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        if not self.a:
            raise ValueError(f"a (hill sharpness) must be a non-empty tuple of values > 0, got {self.a}")
        if len(self.sigma_hill) not in (1, len(self.a)):
            raise ValueError(f"sigma_hill must have 1 or {len(self.a)} entries, got {len(self.sigma_hill)}")
        check_loop(self.n_steps, self.log_every)
        if self.schedule:
            schedule_specs.from_spec(self.schedule)  # validates

    @property
    def k(self) -> int:
        return len(self.a)

    def steps(self) -> np.ndarray:
        return record_steps(self.n_steps, self.log_every)


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
    d_noise = d if cfg.sigma_river else cfg.k  # normals drawn per step
    l0 = cfg.c * np.exp(-cfg.u0 / cfg.s)

    def run(key, hp):
        dt = jnp.asarray(hp["lr"]).dtype
        sched = schedule_specs.schedule_for(cfg.schedule, hp, cfg.n_steps)
        opt = optax.sgd(sched)
        sig = jnp.concatenate([jnp.asarray([cfg.sigma_river], dt),
                               jnp.broadcast_to(jnp.asarray(cfg.sigma_hill, dt), (cfg.k,))])
        x0 = jnp.concatenate([jnp.asarray([cfg.u0], dt), jnp.full((cfg.k,), cfg.v0, dt)])
        grad = jax.grad(lambda x: loss_parts(x, cfg)[0])

        def step(xi, state, t):
            x, ost = state
            if not cfg.sigma_river:  # no river noise: only the k hill directions are drawn (the RNG is the cost)
                xi = jnp.concatenate([jnp.zeros((1,), dt), xi])
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
                                noise=lambda k, n: jax.random.normal(k, (n, d_noise), dt),
                                noise_chunk=noise_chunk_for(cfg.log_every, d_noise),
                                unroll=4)
        tot, riv, hill = loss_parts(res.state[0], cfg)
        return {"loss": tot, "river_loss": riv, "hill_loss": hill, "diverged_step": res.diverged_step}, res.traj

    return run


# --------------------------------------------------------------------------------------
# Sec. 4: a bigram-data language model on which the river valley appears
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BigramLMConfig(Config):
    """A softmax bigram LM (logit table W in R^{V x V}, zero init) trained with SGD on i.i.d.
    (x, y) pairs of a mixed-uncertainty source (``sims.bigram_data.mixed_uncertainty``): rows
    with a deterministic next token (flat, noiseless "river" directions: their loss only reaches 0
    as a margin grows without bound) and uncertain rows (finite optimum, noisy "hill")."""

    V: int = param(32, ge=2, help="vocabulary size")
    data_seed: int = param(0, ge=0, help="seed of the bigram source")
    frac_deterministic: float = param(0.5, ge=0, le=1, help="fraction of rows with a deterministic next token")
    support: tuple[int, int] = param((2, 16), ge=1, help="(min, max) support size of the uncertain rows")
    restart: float = param(0.1, ge=0, le=1, help="x ~ stationary law of the chain with uniform restarts")
    batch: int = param(64, ge=1, help="(x, y) pairs per SGD step")
    n_steps: int = param(4000, ge=1, le=10**9, help="SGD steps")
    log_every: int = param(50, ge=1, help="record every log_every steps (divides n_steps)")
    record_params: bool = param(False, help="also record the logit table")
    schedule: tuple = param((), help="() -> WSD family from hparams; else a unit-peak spec (schedule_specs.from_spec)")
    shift_step: int = param(0, ge=0, help="> 0: from this step on the data come from a second source")
    shift_seed: int = param(1, ge=0, help="data seed of the second source")
    shift_frac: float = param(1.0, ge=0, le=1, help="fraction of rows (next-token laws) that the shift replaces")
    optimizer: str = param("sgd", choices=("sgd", "adam"),
                           help="sgd (optax.sgd), or adam: optax.adam(lr_t, b1=0.9, b2=0.95) (Pythia's betas, as in "
                                "Gupta et al.'s continual pre-training)")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        if self.shift_step > self.n_steps:
            raise ValueError(f"shift_step must lie in [0, n_steps], got {self.shift_step}")
        check_loop(self.n_steps, self.log_every)

    def steps(self) -> np.ndarray:
        return record_steps(self.n_steps, self.log_every)

    def source(self, second: bool = False):
        """(P, x_law, is_deterministic) as float64 NumPy arrays (``second``: the post-shift source)."""
        from sims import bigram_data

        P, det = bigram_data.mixed_uncertainty(self.data_seed, self.V, self.frac_deterministic, self.support)
        if second:  # replace a random fraction of the rows by those of another source
            P2, det2 = bigram_data.mixed_uncertainty(self.shift_seed, self.V, self.frac_deterministic, self.support)
            rows = np.random.default_rng(self.shift_seed).permutation(self.V)[: int(round(self.shift_frac * self.V))]
            P, det = P.copy(), det.copy()
            P[rows], det[rows] = P2[rows], det2[rows]
        return P, bigram_data.law(P, self.restart), det


def bigram_population_loss(W, P, x_law):
    """Exact expected CE over x ~ x_law, y ~ P[x] of the logit table W (per row and total)."""
    logp = jax.nn.log_softmax(W, axis=-1)
    per_row = -jnp.sum(jnp.where(P > 0, P * logp, 0.0), axis=-1)
    return jnp.sum(x_law * per_row), per_row


@functools.cache
def make_lm_run(cfg: BigramLMConfig):
    from sims import bigram_data

    P_np, law_np, det_np = cfg.source()
    P2_np, law2_np, _ = cfg.source(second=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        H = -np.sum(np.where(P_np > 0, P_np * np.log(P_np), 0.0), axis=1)
        H2 = -np.sum(np.where(P2_np > 0, P2_np * np.log(P2_np), 0.0), axis=1)

    def run(key, hp):
        dt = jnp.asarray(hp["lr"]).dtype
        P, x_law = jnp.asarray(P_np, dt), jnp.asarray(law_np, dt)
        det, Hrow = jnp.asarray(det_np), jnp.asarray(H, dt)
        w_det = x_law * det / jnp.sum(x_law * det)
        w_unc = x_law * (~det) / jnp.sum(x_law * (~det))
        sched = schedule_specs.schedule_for(cfg.schedule, hp, cfg.n_steps)
        opt = optax.adam(sched, b1=0.9, b2=0.95) if cfg.optimizer == "adam" else optax.sgd(sched)
        W0 = jnp.zeros((cfg.V, cfg.V), dt)

        def batch_loss(W, x, y):
            return -jnp.mean(jax.nn.log_softmax(W[x], axis=-1)[jnp.arange(x.size), y])

        P2, law2 = jnp.asarray(P2_np, dt), jnp.asarray(law2_np, dt)

        def step(k, state, t):
            W, ost = state
            if cfg.shift_step:
                new = t >= cfg.shift_step
                x, y = bigram_data.sample_pairs(k, jnp.where(new, P2, P), jnp.where(new, law2, x_law), cfg.batch)
            else:
                x, y = bigram_data.sample_pairs(k, P, x_law, cfg.batch)
            upd, ost = opt.update(jax.grad(batch_loss)(W, x, y), ost, W)
            return (optax.apply_updates(W, upd), ost)

        def record(state, t):
            W = state[0]
            tot, per = bigram_population_loss(W, P, x_law)
            exc = per - Hrow
            out = {"loss": tot, "excess_det": jnp.sum(w_det * exc), "excess_unc": jnp.sum(w_unc * exc),
                   "lr_t": sched(t)}
            if cfg.record_params:
                out["W"] = W.reshape(-1)
            if cfg.shift_step:  # excess losses on the old and the new source
                out["excess_old"] = tot - jnp.sum(x_law * Hrow)
                out["excess_new"] = bigram_population_loss(W, P2, law2)[0] - jnp.sum(law2 * jnp.asarray(H2, dt))
            return out

        res = scan_with_records(key, step, (W0, opt.init(W0)), record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=1e6)
        return {"loss": res.traj["loss"][-1], "diverged_step": res.diverged_step}, res.traj

    return run


def hvp(f, x, v):
    """Hessian-vector product of scalar ``f`` at ``x`` (forward-over-reverse)."""
    return jax.jvp(jax.grad(f), (x,), (v,))[1]


def lanczos(matvec, n: int, k: int, key, dtype=jnp.float64):
    """``k`` Lanczos steps (full re-orthogonalization) for a symmetric operator on R^n.

    Returns the Ritz values (descending) and Ritz vectors (n x k). The extreme Ritz pairs converge
    first; with k = n they are the exact eigenpairs.
    """
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 <= k <= n={n}, got {k}")
    Q = np.zeros((n, k))
    alpha, beta = np.zeros(k), np.zeros(k)
    q = np.array(jax.random.normal(key, (n,), dtype), dtype=np.float64)
    q /= np.linalg.norm(q)
    b_prev, q_prev = 0.0, np.zeros(n)
    for j in range(k):
        Q[:, j] = q
        w = np.array(matvec(jnp.asarray(q, dtype)), dtype=np.float64) - b_prev * q_prev
        alpha[j] = w @ q
        w -= alpha[j] * q
        w -= Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)  # full re-orthogonalization
        beta[j] = np.linalg.norm(w)
        if beta[j] < 1e-12 or j == k - 1:
            k = j + 1
            break
        q_prev, q, b_prev = q, w / beta[j], beta[j]
    T = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    evals, evecs = np.linalg.eigh(T)
    order = np.argsort(evals)[::-1]
    return evals[order], Q[:, :k] @ evecs[:, order]


def sim(cfg: RiverConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, {})


def lm_sim(cfg: BigramLMConfig) -> Sim:
    """The sweep bundle of a bigram-LM config (as :func:`sim`)."""
    return Sim.of(make_lm_run(cfg), cfg, {})
