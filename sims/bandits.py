r"""Dynamical linear bandits in JAX (Mussi, Metelli, Restelli, ICML 2023): a gymnax-style environment and a
registry of agents, each a pure ``(init, act, update)`` triple run inside one ``lax.scan`` over rounds.

Environment (pure ``reset`` / ``step`` with explicit keys; :class:`EnvParams` holds arrays, so it is
vmappable over instances as well as seeds):

.. math:: y_t = \omega^\top x_t + \theta^\top u_t + \eta_t,\qquad x_{t+1} = Ax_t + Bu_t + \epsilon_t,\quad x_1 = 0 .

Common random numbers: round t of seed s draws its environment noise (and the agents' uniforms) from the same
key whatever the algorithm, so algorithms are compared on identical noise, as the authors' code, which pre-draws
it (``np.random.seed(1)`` in scripts/main.py).

The run list is the authors' (marcomussi/DLB, ``scripts/main.py``: ``to_run_list``), under their names; each
entry of :data:`ALGORITHMS` says which class of ``dynlinucb/experimental/agents.py`` it reproduces and its
radius. Algorithms that share a code path (:data:`PATHS`) differ only in array parameters, so one compiled call
runs them all: ``make_run(cfg)`` takes ``hparams["alg"]``, an index into ``cfg.algorithms``, and a sweep over it
is vmapped over algorithms x seeds.

Noise variance in the radii (``noise_variance``): ``"authors"`` (default) passes :math:`\sigma^2`, the
per-output noise variance, as main.py does; ``"exact"`` passes the variance of the reward noise actually
summed over the m = 3 outputs, :math:`m\sigma^2` (``Instance.sigma_y``).

Where main.py uses ``max(np.linalg.eigvals(A))`` (AR2's alpha, Exp3's M, Batch-Exp3's batch) the real-data A has
complex eigenvalues and the authors' code computes with a complex number whose imaginary part ``math.ceil`` /
``np.random.choice`` later drop; the suite uses its modulus, the spectral radius (as LinearAgent and
DynLinUCBAgent do with ``np.abs``). On the synthetic instance (real eigenvalues) the two coincide.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sims.bandit_instances import frozen, instance, instance_label, load_instance, pin_file
from sims.config import Config, param
from sims.sweep import Sim, noise_chunk_for, noise_stream, record_steps, scan_with_records
from theory import bandits as tb

__all__ = ["sim", "EnvParams", "EnvState", "reset", "step", "step_noise", "BanditConfig", "make_run", "instance",
           "load_instance", "frozen", "instance_label", "ALGORITHMS", "PATHS", "env_params", "algorithm_params",
           "NOISE_VARIANCES", "RUN_LIST", "round_noise"]

NOISE_VARIANCES = ("authors", "exact")
_BIG = 1e30  # AR2's "not yet" (the authors' np.inf): finite, so the sweep's divergence check stays meaningful


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


# --------------------------------------------------------------------------------------
# The agents' constants, computed on the host in float64 exactly as scripts/main.py wires them
# --------------------------------------------------------------------------------------
class Ctx(NamedTuple):
    """Static numbers of one (instance, horizon, rho_bar, noise variance): what main.py computes once."""

    arms: np.ndarray
    K: int
    d: int
    T: int
    h: np.ndarray
    rho: float  # |max eigenvalue| of A (main.py's spectral_rad_ub after LinearAgent's np.abs)
    rho_bar: float  # the learner's bound (default: rho)
    phi: float
    sigma: float  # the noise std put into the radii (authors: per-output sigma; exact: reward noise std)
    omega: float  # ||1^T C||
    theta: float  # ||1^T D||
    U: float  # max ||a||
    Bn: float  # ||B||_2


def _ctx(cfg: BanditConfig, name: str, noise_variance: str, rho_bar: float = -1.0) -> Ctx:
    inst = instance(name)
    K, d = inst.arms.shape
    rho = tb.spectral_radius(inst.A)
    sigma = inst.sigma_x if noise_variance == "authors" else inst.sigma_y
    rho_bar = rho if rho_bar < 0 else rho_bar
    return Ctx(inst.arms, K, d, cfg.horizon, tb.markov_parameter(inst), rho, rho_bar, tb.phi(inst.A), sigma,
               float(np.linalg.norm(inst.omega)), float(np.linalg.norm(inst.theta)),
               float(np.max(np.linalg.norm(inst.arms, axis=1))), float(np.linalg.norm(inst.B, 2)))


def _flags(ends: np.ndarray, T: int):
    """The code's t_estimate / t_newaction as per-round flags (length T + 2)."""
    ends = ends[ends < T + 1]
    is_end = np.zeros(T + 2, bool)
    is_new = np.zeros(T + 2, bool)
    is_end[ends] = True
    is_new[np.minimum(ends + 1, T + 1)] = True
    return is_end, is_new


def _linear(kind: str, log_lambda: bool, gamma: float = 0.9999):
    r"""Params of the linear code path: ridge estimate of h updated at the epoch ends, UCB
    :math:`\hat h^\top a + \beta_t\|a\|_{V^{-1}}` at the epoch starts, with

    .. math:: \beta_t = a_0 + a_1\log(e(t+1)) + \sqrt{2 s^2\big(L + \tfrac d2\log(1 + f_t\,tU^2/(d\lambda))\big)}

    (:math:`f_t = (1-\gamma^{2t})/(1-\gamma^2)/t` for LinearAgent's D-LinUCB radius, else 1)."""

    def build(c: Ctx):
        lam = math.log(c.T) if log_lambda else 1.0
        c1, c2, sig2, _ = tb.dynlin_constants_sigma(c.omega, c.theta, c.U, c.Bn, c.rho_bar, c.phi, c.sigma)
        L = math.log(c.T)  # log(1/delta) with delta = 1/T (LinearAgent) = log(horizon) (DynLinUCBAgent)
        if kind == "linucb_agent":  # LinUCBAgent: a constant radius, no sigma, budget 1.5 (max_daily_budget)
            a0 = c.theta * math.sqrt(lam) + math.sqrt(2 * math.log(c.T) + c.d * math.log(
                (c.d * lam + c.T * 1.5**2) / (c.d * lam)))
            a1, s2 = 0.0, 0.0
        else:
            a0 = c1 * math.sqrt(lam)
            a1 = c2 / math.sqrt(lam) if kind == "dyn" else 0.0
            s2 = sig2
        dyn_epochs = kind == "dyn" and c.rho_bar >= (1e-6 if not log_lambda else 1e-4)
        ends = tb.epoch_ends(c.rho_bar, c.T) if dyn_epochs else np.arange(c.T)
        is_end, is_new = _flags(ends, c.T)
        return {"lam": lam, "a0": a0, "a1": a1, "s2": s2, "L": L, "disc": float(kind == "dlin"), "gamma": gamma,
                "is_end": is_end, "is_new": is_new}

    return build


def _dlinucb(c: Ctx):
    """DLinUCBAgent (Russac et al. 2019), lambda = 1, gamma = 0.999999999 (main.py's nonstat_discfactor)."""
    return {"lam": 1.0, "gamma": 0.999999999, "sigma": c.sigma, "theta": c.theta, "L": math.log(c.T)}


def _exp3_M(c: Ctx) -> float:
    return (c.theta + c.omega * c.Bn / (1 - c.rho)) * c.U


def _exp3(c: Ctx):
    """Exp3Agent: gamma = min(1, sqrt(K ln K / ((e - 1) 2T/3))), eta = gamma/K, reward (y + 2M)/(4M)."""
    g = min(1.0, math.sqrt(c.K * math.log(c.K) / ((math.e - 1) * 2 * c.T / 3)))
    return {"gamma": g, "eta": g / c.K, "M": _exp3_M(c), "batch": 1, "offset": 0}


def batchexp3_size(c: Ctx) -> int:
    """main.py: ceil(log(M_ep) / log(1/rho)), M_ep = the number of DynLin-UCB epochs in T rounds at the true rho."""
    n_ep = len(tb.epoch_ends(c.rho, c.T))
    return max(1, math.ceil(math.log(n_ep) / math.log(1 / c.rho)))


def _batchexp3(c: Ctx):
    """BatchExp3Agent: a new draw every `batch` rounds (t = 0, b, 2b, ...); the reward fed at t = 1, 1 + b, ...
    is the sum since the last feed over `batch` (the code's indices, kept)."""
    b = batchexp3_size(c)
    g = min(1.0, math.sqrt(c.K * math.log(c.K) / ((math.e - 1) * 2 * (c.T / b) / 3)))
    return {"gamma": g, "eta": g / c.K, "M": _exp3_M(c), "batch": b, "offset": 1}


def ar2_constants(c: Ctx):
    """AR2Agent (Chen et al. 2023) as main.py: alpha = rho, epoch = ceil(K alpha^-3 sigma^-3),
    c0 = sqrt(4 log(1/(alpha sigma)) + 4 log(epoch) + 2 log(4K)), c1 = 24 c0."""
    if not c.sigma > 0:
        raise ValueError(f"ar2 needs sigma > 0 (its epoch ceil(K alpha^-3 sigma^-3) is infinite), got sigma = "
                         f"{c.sigma}")
    if not c.rho > 0:
        raise ValueError("ar2 needs rho(A) > 0 (alpha = rho; its epoch is infinite otherwise)")
    alpha = c.rho
    epoch = math.ceil(c.K * alpha**-3 * c.sigma**-3)
    c0 = math.sqrt(4 * math.log(1 / (alpha * c.sigma)) + 4 * math.log(epoch) + 2 * math.log(4 * c.K))
    return {"alpha": alpha, "epoch": float(epoch), "c1": 24 * c0, "sigma": c.sigma}


def _fixed(which: str):
    def build(c: Ctx):
        if which == "clairvoyant":
            i = int(np.argmax(c.arms @ c.h))
            return {"u": c.arms[i].astype(np.float64), "arm": i}
        if which == "expert":
            return {"u": tb.expert_action(), "arm": -1}
        return {"u": np.zeros(c.d), "arm": -2}  # constant_arm: the arm comes from hparams["arm"]

    return build


class Algorithm(NamedTuple):
    path: str
    params: Callable[[Ctx], dict]
    label: str
    cite: str


ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType({
    "clairvoyant": Algorithm("fixed", _fixed("clairvoyant"), "Clairvoyant", "main.py: the best arm by h"),
    "dynlinucblog": Algorithm("linear", _linear("dyn", True), r"DynLin-UCB ($\lambda=\log T$)",
                              "LinearAgent(dynlinucb=True), lambda = log T, delta = 1/T: beta_t = c1 sqrt(lam) + "
                              "c2/sqrt(lam) log(e(t+1)) + sqrt(2 sig~^2 (log 1/delta + d/2 log(1 + t U^2/(d lam))))"),
    "linucblog": Algorithm("linear", _linear("lin", True), r"LinUCB ($\lambda=\log T$)",
                           "LinearAgent(linucb=True), lambda = log T: DynLin-UCB's radius without the c2 term, "
                           "updated every round"),
    "dlinucblog": Algorithm("linear", _linear("dlin", True, 0.999999), r"D-LinUCB ($\lambda=\log T$)",
                            "LinearAgent(dlinucb=True), lambda = log T, gamma = 0.999999: radius with "
                            "t(1-gamma^2t)/(1-gamma^2) in the log; the estimate is NOT discounted (as the code)"),
    "dynlinucb": Algorithm("linear", _linear("dyn", False), r"DynLin-UCB ($\lambda=1$)",
                           "DynLinUCBAgent, lambda = 1: the same radius as LinearAgent's with log(1/delta) = log T"),
    "linucb": Algorithm("linear", _linear("linucb_agent", False), r"LinUCB ($\lambda=1$)",
                        "LinUCBAgent, lambda = 1: constant beta = ||theta|| sqrt(lam) + sqrt(2 log T + d log((d lam "
                        "+ 1.5^2 T)/(d lam))), no sigma factor"),
    "dlinucb": Algorithm("dlinucb", _dlinucb, r"D-LinUCB ($\lambda=1$)",
                         "DLinUCBAgent, lambda = 1, gamma = 1 - 1e-9: discounted V, V~, b; lam_t = gamma^-t lam; "
                         "beta = ||theta|| sqrt(lam_t) + sigma sqrt(2 log T + d log(1 + 1.5^2 (1 - gamma^2t)/(d lam_t "
                         "(1 - gamma^2)))); bonus sqrt(a^T V^-1 V~ V^-1 a)"),
    "ar2": Algorithm("ar2", ar2_constants, "AR2", "AR2Agent, alpha = rho(A), epoch ceil(K alpha^-3 sigma^-3), "
                     "c1 = 24 c0; trigger if est_sup - est_i <= c1 sigma sqrt((alpha^2 - alpha^(2(t - tau_i + 1)))/"
                     "(1 - alpha^2))"),
    "exp3": Algorithm("exp3", _exp3, "Exp3", "Exp3Agent, gamma = min(1, sqrt(K ln K/((e-1) 2T/3))), eta = gamma/K"),
    "batchexp3": Algorithm("exp3", _batchexp3, "Batch-Exp3",
                           "BatchExp3Agent, batch = ceil(log M_ep / log(1/rho)), mean reward per batch"),
    "expert": Algorithm("fixed", _fixed("expert"), "Expert", "ExpertAgent: the advertiser's split (real data)"),
    "constant_arm": Algorithm("fixed", _fixed("constant_arm"), "constant arm", "holds hparams['arm'] (not a paper "
                              "algorithm: the environment's tests and figure)"),
})
#: the authors' to_run_list (scripts/main.py), in their order; ``expert`` runs on the real-data instance only
RUN_LIST = ("exp3", "batchexp3", "dynlinucblog", "linucblog", "dlinucblog", "dynlinucb", "linucb", "dlinucb", "ar2",
            "expert")


@functools.cache
def algorithm_params(cfg: BanditConfig) -> dict:
    """The stacked float64 parameters of the common code path, shape (instances, noise variances, rho bars,
    algorithms, ...) over ``cfg.instances`` x ``cfg.noise_variances`` x ``cfg.rho_bars`` x ``cfg.algorithms``.
    Cached per config: built once when the config validates, reused by ``make_run``."""
    out = []
    for name in cfg.instances:
        for nv in cfg.noise_variances:
            for rb in cfg.rho_bars:
                c = _ctx(cfg, name, nv, rb)
                out += [ALGORITHMS[a].params(c) for a in cfg.algorithms]
    shape = (len(cfg.instances), len(cfg.noise_variances), len(cfg.rho_bars), len(cfg.algorithms))
    return {k: np.stack([np.asarray(r[k]) for r in out]).reshape(shape + np.shape(out[0][k])) for k in out[0]}


@dataclasses.dataclass(frozen=True)
class BanditConfig(Config):
    """One compiled bandit run: ``algorithms`` (names from :data:`ALGORITHMS`) must share one code path, and
    ``hparams["alg"]`` picks one of them (vmapped in a sweep).

    ``instance`` and ``noise_variance`` are a name or a tuple of names: a tuple stacks their parameters as arrays
    (instances of one shape), and ``hparams["inst"]`` / ``hparams["nv"]`` index them, so one compiled call runs
    every instance x noise variance x algorithm x seed (a per-instance config would compile once per instance).
    ``rho_bar`` likewise (a float or a tuple, indexed by ``hparams["rb"]``)."""

    instance: str | tuple = param("synthetic", help="instance name (sims.bandits.instance), a user's system "
                                  "(theory.bandits.Instance: arrays) or a tuple of them")
    algorithms: tuple = param(("dynlinucblog",), help="algorithm names sharing one code path (ALGORITHMS)")
    horizon: int = param(100_000, ge=1, le=10**10, help="rounds T")
    log_every: int = param(1000, ge=1, help="record every log_every rounds (divides the horizon)")
    rho_bar: float | tuple = param(-1.0, lt=1, help="the learner's bound on rho(A); < 0: the true rho (as the "
                                   "paper's code); or a tuple")
    noise_variance: str | tuple = param("authors", help="authors: sigma^2 in the radii (main.py); exact: m sigma^2; "
                                        "or a tuple")
    unroll: int = param(1, ge=1, help="inner lax.scan unroll (speed only)")

    def __post_init__(self):
        algs = (self.algorithms,) if isinstance(self.algorithms, str) else tuple(self.algorithms)
        object.__setattr__(self, "algorithms", algs)
        inst = self.instance
        if isinstance(inst, tb.Instance) and not isinstance(inst.A, tuple):  # one user system (arrays)
            inst = frozen(inst)
        elif isinstance(inst, str):
            inst = pin_file(inst)  # a file's system: keyed on its content
        elif not isinstance(inst, tb.Instance):  # a tuple of names / systems
            inst = tuple(frozen(x) if isinstance(x, tb.Instance) and not isinstance(x.A, tuple) else
                         pin_file(x) if isinstance(x, str) else x for x in inst)
            if not inst or len(set(inst)) != len(inst) or not all(isinstance(x, (str, tb.Instance)) for x in inst):
                raise ValueError(f"instance must be a name, a system or a non-empty tuple of distinct ones, got "
                                 f"{inst!r}")
        object.__setattr__(self, "instance", inst)
        v = self.noise_variance
        if not isinstance(v, str):
            v = tuple(v)
            if not v or len(set(v)) != len(v) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"noise_variance must be a name or a non-empty tuple of distinct names, got {v!r}")
            object.__setattr__(self, "noise_variance", v)
        if not isinstance(self.rho_bar, (int, float)):
            rb = tuple(self.rho_bar)
            if not rb or len(set(rb)) != len(rb):
                raise ValueError(f"rho_bar must be a number or a non-empty tuple of distinct numbers, got {rb!r}")
            object.__setattr__(self, "rho_bar", rb)
        super().__post_init__()  # every field's type and range, then check()

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        algs = self.algorithms
        if not algs:
            raise ValueError("algorithms must name at least one algorithm")
        bad = [a for a in algs if a not in ALGORITHMS]
        if bad:
            raise ValueError(f"unknown algorithm(s) {bad}; valid: {', '.join(ALGORITHMS)}")
        if len(set(algs)) != len(algs):
            raise ValueError(f"algorithms must not repeat a name, got {list(algs)}")
        paths = {ALGORITHMS[a].path for a in algs}
        if len(paths) > 1:
            raise ValueError(f"algorithms {list(algs)} use different code paths {sorted(paths)}: run one "
                             "BanditConfig per path (sims.bandits.PATHS)")
        if not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {self.horizon!r}")
        if self.log_every < 1 or self.horizon % self.log_every:
            raise ValueError(f"log_every ({self.log_every}) must divide the horizon ({self.horizon})")
        for rb in self.rho_bars:
            if not (isinstance(rb, (int, float)) and math.isfinite(rb) and rb < 1):
                raise ValueError(f"rho_bar must be finite and < 1, got {self.rho_bar}")
        bad = [v for v in self.noise_variances if v not in NOISE_VARIANCES]
        if bad:
            raise ValueError(f"noise_variance must be one of {NOISE_VARIANCES}, got {bad[0]!r}")
        shapes = {(instance(n).arms.shape, instance(n).A.shape) for n in self.instances}
        if len(shapes) > 1:
            raise ValueError(f"instance: stacked instances {list(self.instances)} must share arm and state shapes, "
                             f"got {sorted(shapes)}")
        algorithm_params(self)  # every constant (e.g. AR2's epoch with sigma = 0) is checked before any compute

    @property
    def path(self) -> str:
        return ALGORITHMS[self.algorithms[0]].path

    def steps(self):
        return record_steps(self.horizon, self.log_every)

    @property
    def instances(self) -> tuple:
        one = isinstance(self.instance, str) or isinstance(self.instance, tb.Instance)
        return (self.instance,) if one else self.instance

    @property
    def noise_variances(self) -> tuple:
        return (self.noise_variance,) if isinstance(self.noise_variance, str) else self.noise_variance

    @property
    def rho_bars(self) -> tuple:
        return (self.rho_bar,) if isinstance(self.rho_bar, (int, float)) else self.rho_bar

    def rho_used(self, name: str | None = None, k: int = 0) -> float:
        A = instance(name or self.instances[0]).A
        return tb.spectral_radius(A) if self.rho_bars[k] < 0 else self.rho_bars[k]


# --------------------------------------------------------------------------------------
# The code paths: pure (init, act, update); `p` is one algorithm's row of parameters (arrays)
# --------------------------------------------------------------------------------------
class Agent(NamedTuple):
    init: Callable  # (key, p, ctx) -> state
    act: Callable  # (state, t, u01, p, ctx, hp) -> (state, arm index, action vector)
    update: Callable  # (state, u, y, t, p, ctx) -> state


TIE_RTOL = 1e-12  # UCB scores this close (relative) are one tie: rounding noise, not information


def _ucb(arms, h, M, beta):
    """argmax_k h^T a_k + beta sqrt(a_k^T M a_k), ties to the lowest index as np.argmax. Permuted arms give
    mathematically equal scores (e.g. the synthetic instance's early rounds); scores within TIE_RTOL of the
    maximum count as tied, so the choice does not depend on the order of float operations."""
    quad = jnp.einsum("kd,de,ke->k", arms, M, arms)
    score = arms @ h + beta * jnp.sqrt(jnp.maximum(quad, 0.0))
    top = jnp.max(score)
    return jnp.argmax(score >= top - TIE_RTOL * jnp.abs(top))


class LinState(NamedTuple):
    V_inv: jax.Array
    b: jax.Array
    h: jax.Array
    arm: jax.Array


def _lin_init(key, p, c):
    d = c["arms"].shape[1]
    a0 = jax.random.randint(key, (), 0, c["arms"].shape[0])
    dt = c["arms"].dtype
    return LinState(jnp.eye(d, dtype=dt) / p["lam"], jnp.zeros(d, dt), jnp.zeros(d, dt), a0)


def _lin_act(s, t, u01, p, c, hp):
    arms = c["arms"]
    d = arms.shape[1]
    tf = t.astype(arms.dtype)
    x = tf * c["U"] ** 2 / (d * p["lam"])
    x = jnp.where(p["disc"] > 0, x * (1 - p["gamma"] ** (2 * tf)) / (1 - p["gamma"] ** 2), x)
    inner = p["L"] + d / 2 * jnp.log(1 + x)
    beta = p["a0"] + p["a1"] * jnp.log(math.e * (tf + 1)) + jnp.sqrt(2 * p["s2"] * inner)
    ucb = _ucb(arms, s.h, s.V_inv, beta)
    arm = jnp.where((t > 0) & p["is_new"][t], ucb, s.arm).astype(jnp.int32)
    return s._replace(arm=arm), arm, arms[arm]


def _lin_update(s, u, y, t, p, c):
    upd = p["is_end"][t]
    Vu = s.V_inv @ u  # Sherman-Morrison: (V + u u^T)^{-1} = V^{-1} - V^{-1}u u^T V^{-1} / (1 + u^T V^{-1} u)
    V_inv = jnp.where(upd, s.V_inv - jnp.outer(Vu, Vu) / (1.0 + u @ Vu), s.V_inv)
    b = jnp.where(upd, s.b + u * y, s.b)
    return s._replace(V_inv=V_inv, b=b, h=jnp.where(upd, V_inv @ b, s.h))


class DState(NamedTuple):
    V: jax.Array
    V_inv: jax.Array  # inverse of V, computed once per round (in update) and read by act
    Vt: jax.Array
    b: jax.Array
    h: jax.Array
    arm: jax.Array


def _d_init(key, p, c):
    d = c["arms"].shape[1]
    dt = c["arms"].dtype
    a0 = jax.random.randint(key, (), 0, c["arms"].shape[0])
    V = p["lam"] * jnp.eye(d, dtype=dt)
    return DState(V, _spd_inv(V), p["lam"] * jnp.eye(d, dtype=dt), jnp.zeros(d, dt), jnp.zeros(d, dt), a0)


def _spd_inv(M):
    """Inverse of a small symmetric positive-definite matrix by Gauss-Jordan elimination unrolled over its (static)
    size: plain jnp ops, no LAPACK call per round (SPD: no pivoting needed). Float64 agrees with np.linalg.inv to
    ~1e-15 relative for the well-conditioned Gram matrices here."""
    d = M.shape[0]
    A = jnp.concatenate([M, jnp.eye(d, dtype=M.dtype)], axis=1)
    for k in range(d):
        A = A.at[k].set(A[k] / A[k, k])
        A = A - jnp.outer(A[:, k].at[k].set(0.0), A[k])
    return A[:, d:]


def _d_act(s, t, u01, p, c, hp):
    arms = c["arms"]
    d = arms.shape[1]
    tf = t.astype(arms.dtype)
    g = p["gamma"]
    lam_t = g ** (-tf) * p["lam"]
    beta = p["theta"] * jnp.sqrt(lam_t) + p["sigma"] * jnp.sqrt(2 * p["L"] + d * jnp.log(
        1 + 1.5**2 * (1 - g ** (2 * tf)) / (d * lam_t * (1 - g**2))))
    Vi = s.V_inv
    ucb = _ucb(arms, s.h, Vi @ s.Vt @ Vi, beta)
    arm = jnp.where(t > 0, ucb, s.arm).astype(jnp.int32)
    return s._replace(arm=arm), arm, arms[arm]


def _d_update(s, u, y, t, p, c):
    d = u.shape[0]
    g = p["gamma"]
    lam_t = g ** (-t.astype(u.dtype)) * p["lam"]
    eye = jnp.eye(d, dtype=u.dtype)
    V = g * s.V + jnp.outer(u, u) + (1 - g) * lam_t * eye
    Vt = g**2 * s.Vt + jnp.outer(u, u) + (1 - g**2) * lam_t * eye
    b = g * s.b + u * y
    V_inv = _spd_inv(V)
    return s._replace(V=V, V_inv=V_inv, Vt=Vt, b=b, h=V_inv @ b)


class ExpState(NamedTuple):
    G: jax.Array
    p: jax.Array
    acc: jax.Array
    arm: jax.Array


def _e_init(key, p, c):
    K = c["arms"].shape[0]
    dt = c["arms"].dtype
    return ExpState(jnp.zeros(K, dt), jnp.full((K,), 1.0 / K, dt), jnp.zeros((), dt), jnp.zeros((), jnp.int32))


def _e_act(s, t, u01, p, c, hp):
    K = c["arms"].shape[0]
    draw = jnp.minimum(jnp.searchsorted(jnp.cumsum(s.p), u01 * jnp.sum(s.p)), K - 1)  # np.random.choice(p=...)
    arm = jnp.where(t % p["batch"] == 0, draw, s.arm).astype(jnp.int32)
    return s._replace(arm=arm), arm, c["arms"][arm]


def _e_update(s, u, y, t, p, c):
    K = c["arms"].shape[0]
    feed = (t >= p["offset"]) & ((t - p["offset"]) % p["batch"] == 0)
    r = ((s.acc + y) / p["batch"] + 2 * p["M"]) / (4 * p["M"])
    G = s.G.at[s.arm].add(jnp.where(feed, r / s.p[s.arm], 0.0))
    prob = (1 - p["gamma"]) * jax.nn.softmax(p["eta"] * G) + p["gamma"] / K
    return s._replace(G=G, p=jnp.where(feed, prob, s.p), acc=jnp.where(feed, 0.0, s.acc + y))


class AR2State(NamedTuple):
    s: jax.Array  # epoch index (1-based)
    tau: jax.Array  # last round each arm was played (1-based t0), _BIG if never
    tau_trig: jax.Array  # round each arm was triggered, _BIG if not
    est: jax.Array  # estimated rewards, _BIG if never played
    last: jax.Array
    last_last: jax.Array


def _a_init(key, p, c):
    K = c["arms"].shape[0]
    dt = c["arms"].dtype
    big = jnp.full((K,), _BIG, dt)
    return AR2State(jnp.ones((), dt), big, big, big, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _a_act(s, t, u01, p, c, hp):
    K = c["arms"].shape[0]
    t0 = (t + 1).astype(c["arms"].dtype)
    explore_end = K + (s.s - 1) * p["epoch"]
    explore = t0 <= explore_end
    e_arm = jnp.clip(explore_end - t0, 0, K - 1).astype(jnp.int32)
    i_sup = jnp.where(s.est[s.last] >= s.est[s.last_last], s.last, s.last_last)
    a = p["alpha"]
    width = p["c1"] * p["sigma"] * jnp.sqrt(jnp.maximum((a**2 - a ** (2 * (t0 - s.tau + 1))) / (1 - a**2), 0.0))
    idx = jnp.arange(K)
    new_trig = (idx != i_sup) & (s.tau_trig >= _BIG) & (s.est[i_sup] - s.est <= width)
    tau_trig = jnp.where(new_trig, t0, s.tau_trig)
    any_trig = jnp.any(tau_trig < _BIG)
    tied = tau_trig == jnp.min(tau_trig)
    n_tied = jnp.sum(tied)
    j = jnp.minimum(jnp.floor(u01 * n_tied), n_tied - 1)  # np.random.choice over the tied arms, index order
    pick = jnp.argmax(jnp.cumsum(tied) > j)
    d_arm = jnp.where(any_trig & (t0 % 2 == 1), pick, i_sup).astype(jnp.int32)
    arm = jnp.where(explore, e_arm, d_arm)
    tau_trig = jnp.where(explore, s.tau_trig, tau_trig)
    return s._replace(tau_trig=tau_trig, last_last=s.last, last=arm), arm, c["arms"][arm]


def _a_update(s, u, y, t, p, c):
    K = c["arms"].shape[0]
    t0 = (t + 1).astype(c["arms"].dtype)
    a = p["alpha"]
    tau = s.tau.at[s.last].set(t0)
    early = t0 < K + (s.s - 1) * p["epoch"]
    decayed = (s.est * a).at[s.last].set(a * y)
    e_early = s.est.at[s.last].set(a ** (K - t0 + tau[s.last] - 1) * y)
    est = jnp.where(early, e_early, decayed)
    ep = jnp.where(~early & (t0 % p["epoch"] == 0), s.s + 1, s.s)
    return s._replace(tau=tau, est=est, s=ep)


class FixState(NamedTuple):
    arm: jax.Array


def _f_init(key, p, c):
    return FixState(jnp.asarray(p["arm"], jnp.int32))


def _f_act(s, t, u01, p, c, hp):
    arm = jnp.where(p["arm"] == -2, jnp.asarray(hp.get("arm", 0)), p["arm"]).astype(jnp.int32)
    u = jnp.where(p["arm"] == -1, p["u"].astype(c["arms"].dtype), c["arms"][jnp.maximum(arm, 0)])
    return s._replace(arm=arm), arm, u


def _f_update(s, u, y, t, p, c):
    return s


PATHS: Mapping[str, Agent] = MappingProxyType({
    "linear": Agent(_lin_init, _lin_act, _lin_update),
    "dlinucb": Agent(_d_init, _d_act, _d_update),
    "exp3": Agent(_e_init, _e_act, _e_update),
    "ar2": Agent(_a_init, _a_act, _a_update),
    "fixed": Agent(_f_init, _f_act, _f_update),
})


def _noise_fn(n_x: int, dt):
    def noise(k, m):  # one batched draw per chunk of rounds (these sims are RNG-bound)
        kx, ky, ku = jax.random.split(k, 3)
        return {"x": jax.random.normal(kx, (m, n_x), dt), "y": jax.random.normal(ky, (m,), dt),
                "u": jax.random.uniform(ku, (m,), dt)}

    return noise


def round_noise(cfg: BanditConfig, key) -> dict:
    """The exact random inputs of ``make_run(cfg)(key, hp)`` as NumPy arrays: standard-normal state noise
    ``x`` (T, n), reward noise ``y`` (T,), the agents' uniforms ``u`` (T,) and the first (random) arm ``a0`` of
    the UCB agents. A sweep's seed s uses ``key = jax.random.fold_in(sweep_key, s)``."""
    k0, krun = jax.random.split(key)
    K = instance(cfg.instances[0]).arms.shape[0]
    n_x = instance(cfg.instances[0]).A.shape[0]
    out = noise_stream(krun, _noise_fn(n_x, jnp.zeros(()).dtype), n_steps=cfg.horizon, log_every=cfg.log_every,
                       noise_chunk=noise_chunk_for(cfg.log_every, n_x + 2))
    return {k: np.asarray(v) for k, v in out.items()} | {"a0": int(jax.random.randint(k0, (), 0, K))}


@functools.cache
def make_run(cfg: BanditConfig):
    """``run(key, hparams) -> (final, traj)``. hparams: ``alg`` (index into ``cfg.algorithms``; default 0),
    ``inst`` / ``nv`` / ``rb`` (indices into ``cfg.instances`` / ``cfg.noise_variances`` / ``cfg.rho_bars``;
    default 0), ``noise_scale``
    (multiplies both noise stds; default 1), ``arm`` (for ``constant_arm``)."""
    insts = [instance(n) for n in cfg.instances]
    T = cfg.horizon
    h_all = np.stack([tb.markov_parameter(I) for I in insts])
    best_all = np.array([np.max(I.arms @ h) for I, h in zip(insts, h_all)])
    table = algorithm_params(cfg)
    agent = PATHS[cfg.path]
    env_all = [EnvParams(*(np.asarray(getattr(I, f), np.float64) for f in EnvParams._fields)) for I in insts]
    n_x = insts[0].A.shape[0]
    d = insts[0].arms.shape[1]

    def run(key, hp):
        dt = jnp.zeros(()).dtype  # float64 under x64 (as the figures run it), float32 otherwise
        if dt != jnp.float64 and cfg.path == "dlinucb":
            raise ValueError("dlinucb (gamma = 1 - 1e-9) needs float64: run under jax.enable_x64(True)")
        i = jnp.asarray(hp.get("alg", 0), jnp.int32)
        j = jnp.asarray(hp.get("inst", 0), jnp.int32)
        v = jnp.asarray(hp.get("nv", 0), jnp.int32)
        r = jnp.asarray(hp.get("rb", 0), jnp.int32)
        p = {k: jnp.asarray(a, dt if a.dtype.kind == "f" else None)[j, v, r, i] for k, a in table.items()}
        ns = jnp.asarray(hp.get("noise_scale", 1.0), dt)
        P = jax.tree.map(lambda *a: jnp.asarray(np.stack(a), dt)[j], *env_all)
        P = P._replace(sigma_x=P.sigma_x * ns, sigma_y=P.sigma_y * ns)
        c = {"arms": jnp.asarray(np.stack([I.arms for I in insts]), dt)[j],
             "U": jnp.asarray([np.max(np.linalg.norm(I.arms, axis=1)) for I in insts], dt)[j]}
        h = jnp.asarray(h_all, dt)[j]
        best_val = jnp.asarray(best_all, dt)[j]
        k0, krun = jax.random.split(key)
        s0 = (reset(k0, P), agent.init(k0, p, c), jnp.zeros((), dt), jnp.zeros((), dt), jnp.zeros((), jnp.int32))

        def round_(rand, state, t):
            env, ag, pseudo, realized, _ = state
            # rand depends on (seed, t) only, never on the algorithm: common random numbers
            ag, arm, u = agent.act(ag, t, rand["u"], p, c, hp)
            env, y = step_noise(env, u, P, rand["x"], rand["y"])
            ag = agent.update(ag, u, y, t, p, c)
            return (env, ag, pseudo + (best_val - h @ u), realized + (best_val - y), arm)

        def record(state, t):
            return {"pseudo_regret": state[2], "realized_regret": state[3], "arm_played": state[4]}

        res = scan_with_records(krun, round_, s0, record, n_steps=T, log_every=cfg.log_every, unroll=cfg.unroll,
                                noise=_noise_fn(n_x, dt), noise_chunk=noise_chunk_for(cfg.log_every, n_x + 2))
        ag = res.state[1]
        h_hat = ag.h if hasattr(ag, "h") else jnp.zeros(d, dt)
        return {"pseudo_regret": res.state[2], "realized_regret": res.state[3], "h_hat": h_hat,
                "diverged_step": res.diverged_step}, res.traj

    return run


def sim(cfg: BanditConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, {"h_hat": ("coord",)})
