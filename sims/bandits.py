r"""Dynamical linear bandits in JAX (Mussi, Metelli, Restelli, ICML 2023): a gymnax-style environment and
DynLin-UCB with its baselines, each run one ``lax.scan`` over rounds, vmapped over seeds.

Environment (pure ``reset`` / ``step`` with explicit keys; :class:`EnvParams` holds arrays, so it is
vmappable over instances as well as seeds):

.. math:: y_t = \omega^\top x_t + \theta^\top u_t + \eta_t,\qquad x_{t+1} = Ax_t + Bu_t + \epsilon_t,\quad x_1 = 0 .

Common random numbers: round t of seed s draws its environment noise from the same key whatever the
algorithm, so algorithms are compared on identical noise (as the authors' code, which pre-draws it).

Algorithms follow the authors' code (marcomussi/DLB, ``agents.py``):

* ``dynlinucb`` -- hold the action for :math:`H_m` rounds, regress the epoch's *last* reward on it
  (ridge, :math:`\lambda`), UCB with :math:`\beta_t` incl. the transient term; :math:`\delta = 1/T`.
* ``linucb`` -- the same estimator updated every round, :math:`\beta_t` without the transient term
  (the code's ``LinearAgent(linucb=True)``; used for both :math:`\lambda = 1` and :math:`\log T`).
* ``dlinucb`` -- discounted LinUCB (Russac et al. 2019; the code's ``DLinUCBAgent``), :math:`\gamma`.
* ``exp3`` and ``batch_exp3`` (batch = :math:`\lceil\log M/\log(1/\bar\rho)\rceil`, the batch-mean
  reward fed at the end of each batch -- the intended semantics of the code's off-by-one).
* ``clairvoyant`` (the best arm by :math:`h`) and ``expert`` (a fixed action, real-data instance).

AR2 is not implemented (its rule needs the reward-model parametrization of Chen et al. 2023 that the
code reimplements only partially); see the closing note.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sims.sweep import noise_chunk_for, record_steps, scan_with_records
from theory import bandits as tb

__all__ = ["EnvParams", "EnvState", "reset", "step", "step_noise", "BanditConfig", "make_run", "instance", "ALGORITHMS",
           "env_params"]

ALGORITHMS = ("clairvoyant", "dynlinucb", "dynlinucb_logT", "linucb", "linucb_logT", "dlinucb", "dlinucb_logT",
              "exp3", "batch_exp3", "expert", "constant_arm")


class EnvParams(NamedTuple):
    A: jax.Array
    B: jax.Array
    omega: jax.Array
    theta: jax.Array
    sigma_x: jax.Array
    sigma_y: jax.Array


class EnvState(NamedTuple):
    x: jax.Array


def env_params(inst: tb.Instance, dtype=None) -> EnvParams:
    inst = tb.check_instance(inst)
    f = lambda v: jnp.asarray(v, dtype)
    return EnvParams(f(inst.A), f(inst.B), f(inst.omega), f(inst.theta), f(inst.sigma_x), f(inst.sigma_y))


def reset(key, params: EnvParams) -> EnvState:
    """:math:`x_1 = 0` (the key is accepted for the gymnax signature)."""
    del key
    return EnvState(jnp.zeros_like(params.omega))


def step(key, state: EnvState, u, params: EnvParams):
    """One round: returns (next state, reward y_t). The reward uses the state before u acts."""
    kx, ky = jax.random.split(key)
    return step_noise(state, u, params, jax.random.normal(kx, state.x.shape, u.dtype),
                      jax.random.normal(ky, (), u.dtype))


def step_noise(state: EnvState, u, params: EnvParams, xi_x, xi_y):
    """:func:`step` with given standard-normal noise (the simulations pre-draw it per block)."""
    y = params.omega @ state.x + params.theta @ u + params.sigma_y * xi_y
    x = params.A @ state.x + params.B @ u + params.sigma_x * xi_x
    return EnvState(x), y


@functools.cache
def instance(name: str) -> tb.Instance:
    """``synthetic`` (and its limits ``synthetic:B=0``, ``synthetic:omega=0``, ``synthetic:A=0``), ``real``,
    ``synthetic:ball`` / ``real:ball`` (unit-ball action set, 512 directions),
    ``rho=<value>`` (rho sweep at fixed h), ``random=<seed>,<rho>``."""
    if name == "synthetic":
        return tb.synthetic()
    if name in ("synthetic:B=0", "synthetic:omega=0", "synthetic:A=0"):  # the sanity limits
        s = tb.synthetic()
        field = name.split(":")[1].split("=")[0]
        return tb.check_instance(s._replace(**{field: np.zeros_like(getattr(s, field))}))
    if name == "real":
        return tb.real_data()
    if name in ("synthetic:ball", "real:ball"):  # the unit ball as action set, discretized (512 directions)
        base = tb.synthetic() if name.startswith("synthetic") else tb.real_data()
        return tb.check_instance(base._replace(arms=tb.sphere_arms(512)))
    if name.startswith("rho="):
        return tb.rho_sweep_instance(float(name[4:]))
    if name.startswith("random="):
        s, r = name[7:].split(",")
        return tb.random_instance(int(s), rho=float(r))
    raise ValueError(f"unknown instance {name!r}: synthetic, real, rho=<r>, random=<seed>,<rho>")


@dataclasses.dataclass(frozen=True)
class BanditConfig:
    instance: str = "synthetic"
    algorithm: str = "dynlinucb"
    horizon: int = 100_000
    log_every: int = 1000
    rho_bar: float = -1.0  # the learner's bound on rho(A); < 0: the true rho (as the paper's code)
    arm: int = 0  # for algorithm='constant_arm'
    unroll: int = 1  # inner lax.scan unroll (speed only; 4 and 16 measured no faster)

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; valid: {', '.join(ALGORITHMS)}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.log_every < 1 or self.horizon % self.log_every:
            raise ValueError(f"log_every ({self.log_every}) must divide the horizon ({self.horizon})")
        if self.rho_bar >= 1:
            raise ValueError(f"rho_bar must be < 1, got {self.rho_bar}")
        instance(self.instance)

    def steps(self):
        return record_steps(self.horizon, self.log_every)

    def rho_used(self) -> float:
        return tb.spectral_radius(instance(self.instance).A) if self.rho_bar < 0 else self.rho_bar


class AgentState(NamedTuple):
    V: jax.Array  # Gram matrix (D-LinUCB) or its inverse (DynLin-UCB / LinUCB: Sherman-Morrison updates)
    Vt: jax.Array  # D-LinUCB's second Gram matrix
    b: jax.Array
    h: jax.Array
    arm: jax.Array
    G: jax.Array  # Exp3 cumulative importance-weighted rewards
    p: jax.Array  # Exp3 probabilities
    acc: jax.Array  # Batch-Exp3 reward accumulator


def _ucb_choice(h, V_inv, bonus_M, beta, arms):
    # score_k = h^T a_k + beta * sqrt(a_k^T M a_k)
    quad = jnp.einsum("kd,de,ke->k", arms, bonus_M, arms)
    return jnp.argmax(arms @ h + beta * jnp.sqrt(jnp.maximum(quad, 0.0)))


@functools.cache
def make_run(cfg: BanditConfig):
    """``run(key, hparams) -> (final, traj)``; hparams: ``noise_scale`` (multiplies both noise stds) and,
    for ``constant_arm``, ``arm`` (index of the held arm)."""
    inst = instance(cfg.instance)
    T = cfg.horizon
    arms_np = inst.arms
    K, d = arms_np.shape
    h_np = tb.markov_parameter(inst)
    best_val = float(np.max(arms_np @ h_np))
    i_star = int(np.argmax(arms_np @ h_np))
    rho_true = tb.spectral_radius(inst.A)
    rho_bar = cfg.rho_used()
    phi_bar = tb.phi(inst.A)
    alg = cfg.algorithm
    lam = math.log(T) if alg.endswith("_logT") else 1.0
    delta = 1.0 / T
    c1, c2, sig2, U = tb.dynlin_constants(inst, rho_bar, phi_bar)
    # epoch flags (host side, exactly the code's t_estimate / t_newaction)
    is_end = np.zeros(T + 2, bool)
    is_new = np.zeros(T + 2, bool)
    if alg.startswith("dynlinucb"):
        ends = tb.epoch_ends(rho_bar, T)
    else:
        ends = np.arange(T)
    ends = ends[ends < T + 1]
    is_end[ends] = True
    is_new[np.minimum(ends + 1, T + 1)] = True
    # Exp3 constants (code main.py)
    M = (np.linalg.norm(inst.theta) + np.linalg.norm(inst.omega) * np.linalg.norm(inst.B, 2) / (1 - rho_true)) * U
    if alg == "batch_exp3":
        n_ep = len(tb.epoch_ends(rho_true, T))
        batch = max(1, math.ceil(math.log(n_ep) / math.log(1 / rho_true)))
        g_exp = min(1.0, math.sqrt(K * math.log(K) / ((math.e - 1) * 2 * (T / batch) / 3)))
    else:
        batch = 1
        g_exp = min(1.0, math.sqrt(K * math.log(K) / ((math.e - 1) * 2 * T / 3)))
    eta_exp = g_exp / K
    gamma_d = 0.999999 if alg == "dlinucb_logT" else 1 - 1e-9
    u_exp = tb.expert_action() if alg == "expert" else np.zeros(d)

    def run(key, hp):
        dt = jnp.asarray(hp["noise_scale"]).dtype
        P = env_params(inst, dt)
        P = P._replace(sigma_x=P.sigma_x * hp["noise_scale"], sigma_y=P.sigma_y * hp["noise_scale"])
        arms = jnp.asarray(arms_np, dt)
        h = jnp.asarray(h_np, dt)
        end_f, new_f = jnp.asarray(is_end), jnp.asarray(is_new)
        k0, krun = jax.random.split(key)
        a0 = jax.random.randint(k0, (), 0, K)
        sm = not alg.startswith("dlinucb")  # keep V^{-1} directly (rank-1 updates, no LAPACK per round)
        eye = jnp.eye(d, dtype=dt)
        A0 = AgentState((1 / lam if sm else lam) * eye, lam * eye, jnp.zeros(d, dt), jnp.zeros(d, dt),
                        a0, jnp.zeros(K, dt), jnp.full((K,), 1.0 / K, dt), jnp.zeros((), dt))
        s0 = (reset(k0, P), A0, jnp.zeros((), dt), jnp.zeros((), dt))

        def act(ag, t, k):
            tf = t.astype(dt)
            if alg == "clairvoyant":
                return ag._replace(arm=jnp.asarray(i_star)), arms[i_star]
            if alg == "constant_arm":  # the held arm may be swept as hparam "arm"
                a = jnp.asarray(hp.get("arm", cfg.arm)).astype(jnp.int32)
                return ag._replace(arm=a), arms[a]
            if alg == "expert":
                return ag, jnp.asarray(u_exp, dt)
            if alg in ("exp3", "batch_exp3"):
                choose = (t % batch) == 0
                draw = jnp.minimum(jnp.searchsorted(jnp.cumsum(ag.p), k * jnp.sum(ag.p)), K - 1)  # k ~ U(0, 1)
                arm = jnp.where(choose, draw, ag.arm)
                return ag._replace(arm=arm), arms[arm]
            V_inv = ag.V if sm else jnp.linalg.inv(ag.V)
            if alg.startswith("dlinucb"):
                lam_t = gamma_d ** (-tf) * lam
                beta = jnp.sqrt(lam_t) * np.linalg.norm(inst.theta) + inst.sigma_y * jnp.sqrt(
                    2 * math.log(T) + d * jnp.log(1 + (1.5**2 * (1 - gamma_d ** (2 * tf)))
                                                  / (d * lam_t * (1 - gamma_d**2))))
                Mb = V_inv @ ag.Vt @ V_inv
            else:
                beta = c1 * math.sqrt(lam) + jnp.sqrt(2 * sig2 * (math.log(1 / delta) + d / 2 * jnp.log(
                    1 + tf * U**2 / (d * lam))))
                if alg.startswith("dynlinucb"):
                    beta = beta + c2 / math.sqrt(lam) * jnp.log(math.e * (tf + 1))
                Mb = V_inv
            ucb = _ucb_choice(ag.h, V_inv, Mb, beta, arms)
            choose = (t > 0) & new_f[t]
            arm = jnp.where(choose, ucb, ag.arm)
            return ag._replace(arm=arm), arms[arm]

        def update(ag, u, y, t):
            tf = t.astype(dt)
            if alg in ("clairvoyant", "constant_arm", "expert"):
                return ag
            if alg in ("exp3", "batch_exp3"):
                acc = ag.acc + y
                done = ((t + 1) % batch) == 0
                r = (acc / batch + 2 * M) / (4 * M)
                G = ag.G.at[ag.arm].add(jnp.where(done, r / ag.p[ag.arm], 0.0))
                p = jax.nn.softmax(eta_exp * G)
                p = (1 - g_exp) * p + g_exp / K
                return ag._replace(G=G, p=jnp.where(done, p, ag.p), acc=jnp.where(done, 0.0, acc))
            if alg.startswith("dlinucb"):
                lam_t = gamma_d ** (-tf) * lam
                V = gamma_d * ag.V + jnp.outer(u, u) + (1 - gamma_d) * lam_t * jnp.eye(d, dtype=dt)
                Vt = gamma_d**2 * ag.Vt + jnp.outer(u, u) + (1 - gamma_d**2) * lam_t * jnp.eye(d, dtype=dt)
                b = gamma_d * ag.b + u * y
                return ag._replace(V=V, Vt=Vt, b=b, h=jnp.linalg.solve(V, b))
            upd = end_f[t]
            Vu = ag.V @ u  # Sherman-Morrison: (V + u u^T)^{-1} = V^{-1} - V^{-1}u u^T V^{-1} / (1 + u^T V^{-1} u)
            V_inv = ag.V - jnp.outer(Vu, Vu) / (1.0 + u @ Vu)
            V_inv = jnp.where(upd, V_inv, ag.V)
            b = jnp.where(upd, ag.b + u * y, ag.b)
            return ag._replace(V=V_inv, b=b, h=jnp.where(upd, V_inv @ b, ag.h))

        def round_(rand, state, t):
            env, ag, pseudo, realized = state
            # rand depends on (seed, t) only, never on the algorithm: common random numbers
            ag, u = act(ag, t, rand["u"])
            env, y = step_noise(env, u, P, rand["x"], rand["y"])
            ag = update(ag, u, y, t)
            return (env, ag, pseudo + (best_val - h @ u), realized + (best_val - y))

        def record(state, t):
            return {"pseudo_regret": state[2], "realized_regret": state[3], "arm_played": state[1].arm}

        n_x = inst.A.shape[0]

        def noise(k, m):  # one batched draw per chunk of rounds (these sims are RNG-bound)
            kx, ky, ku = jax.random.split(k, 3)
            return {"x": jax.random.normal(kx, (m, n_x), dt), "y": jax.random.normal(ky, (m,), dt),
                    "u": jax.random.uniform(ku, (m,), dt)}

        res = scan_with_records(krun, round_, s0, record, n_steps=T, log_every=cfg.log_every, unroll=cfg.unroll,
                                noise=noise, noise_chunk=noise_chunk_for(cfg.log_every, n_x + 2))
        return {"pseudo_regret": res.state[2], "realized_regret": res.state[3], "h_hat": res.state[1].h,
                "diverged_step": res.diverged_step}, res.traj

    return run
