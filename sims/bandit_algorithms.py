"""The algorithms of Mussi et al. (2023) as the authors' ``scripts/main.py`` wires them: each entry of
:data:`ALGORITHMS` (the authors' names; :data:`RUN_LIST` is their ``to_run_list``) names its code path in
:mod:`sims.bandit_agents`, its label and how its constants (radius, epochs, batch sizes) are computed on the host
in float64 from one (instance, horizon, rho_bar, noise variance): :func:`algorithm_params`."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sims.bandit_instances import instance
from theory import bandits as tb

if TYPE_CHECKING:
    from sims.bandits import BanditConfig

__all__ = ["Ctx", "Algorithm", "ALGORITHMS", "RUN_LIST", "algorithm_params", "batchexp3_size", "ar2_constants"]

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
