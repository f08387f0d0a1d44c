r"""Dynamical linear bandits (Mussi, Metelli, Restelli, ICML 2023, arXiv 2211.08997): closed forms.

System (hidden state :math:`x_t\in\mathbb R^n`, action :math:`u_t\in\mathcal U\subset\mathbb R^d`):

.. math::
    y_t = \omega^\top x_t + \theta^\top u_t + \eta_t,\qquad x_{t+1} = Ax_t + Bu_t + \epsilon_t,\qquad x_1 = 0 .

Holding :math:`u` forever, the mean reward tends to :math:`J(u) = h^\top u` with the cumulative Markov
parameter :math:`h = \theta + B^\top(I-A)^{-\top}\omega` (Sec. 2); the optimal policy is the constant
:math:`u^\star = \arg\max_{u\in\mathcal U} h^\top u`. DynLin-UCB holds each action for
:math:`H_m = 1 + \lfloor \log m/\log(1/\bar\rho)\rfloor` rounds and ridge-regresses the epoch's last
reward on the held action; its regret is :math:`\tilde O(d\sqrt T/(1-\bar\rho)^{3/2})` (abstract).
The paper's body was not available: formulas are the authors' code's (marcomussi/DLB) [code] or
derived here [derived].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["Instance", "check_instance", "markov_parameter", "steady_value", "optimal_action", "phi",
           "spectral_radius", "epoch_lengths", "epoch_ends", "beta_dynlin", "regret_bound_order",
           "switch_cost", "synthetic", "real_data", "rho_sweep_instance", "random_instance", "budget_arms",
           "expert_action"]


class Instance(NamedTuple):
    """A dynamical linear bandit: A (n x n), B (n x d), omega (n), theta (d), noise scales, arms (K x d)."""

    A: np.ndarray
    B: np.ndarray
    omega: np.ndarray
    theta: np.ndarray
    sigma_x: float  # state noise std (per coordinate)
    sigma_y: float  # reward noise std
    arms: np.ndarray


def spectral_radius(A) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(A, dtype=np.float64)))))


def check_instance(inst: Instance) -> Instance:
    """Validate shapes, stability (rho(A) < 1), noise (>= 0) and a non-empty action set."""
    A = np.asarray(inst.A, dtype=np.float64)
    B = np.asarray(inst.B, dtype=np.float64)
    om = np.asarray(inst.omega, dtype=np.float64)
    th = np.asarray(inst.theta, dtype=np.float64)
    arms = np.asarray(inst.arms, dtype=np.float64)
    n = A.shape[0] if A.ndim == 2 else -1
    if A.ndim != 2 or A.shape[1] != n:
        raise ValueError(f"A must be square (n x n), got shape {A.shape}")
    if om.shape != (n,):
        raise ValueError(f"omega must have shape ({n},), got {om.shape}")
    if B.ndim != 2 or B.shape[0] != n:
        raise ValueError(f"B must have shape ({n}, d), got {B.shape}")
    d = B.shape[1]
    if th.shape != (d,):
        raise ValueError(f"theta must have shape ({d},), got {th.shape}")
    if arms.ndim != 2 or arms.shape[0] < 1 or arms.shape[1] != d:
        raise ValueError(f"the action set must be a non-empty (K x {d}) array, got shape {arms.shape}")
    rho = spectral_radius(A)
    if not rho < 1:
        raise ValueError(f"the system must be stable: spectral radius rho(A) = {rho:.4g} must be < 1")
    if inst.sigma_x < 0 or inst.sigma_y < 0:
        raise ValueError(f"noise scales must be >= 0, got sigma_x={inst.sigma_x}, sigma_y={inst.sigma_y}")
    return Instance(A, B, om, th, float(inst.sigma_x), float(inst.sigma_y), arms)


def markov_parameter(inst: Instance) -> np.ndarray:
    r""":math:`h = \theta + B^\top (I - A)^{-\top}\omega` (Sec. 2; [code]: :math:`1^\top(D + C(I-A)^{-1}B)`)."""
    inst = check_instance(inst)
    n = inst.A.shape[0]
    return inst.theta + inst.B.T @ np.linalg.solve((np.eye(n) - inst.A).T, inst.omega)


def steady_value(inst: Instance, u) -> np.ndarray:
    r""":math:`J(u) = h^\top u`, the long-run mean reward of holding u."""
    return np.asarray(u, dtype=np.float64) @ markov_parameter(inst)


def optimal_action(inst: Instance, action_set: str = "finite"):
    r"""Finite set: the arm maximizing :math:`h^\top u` (index, arm); unit ball: :math:`h/\|h\|`."""
    h = markov_parameter(inst)
    if action_set == "ball":
        return None, h / np.linalg.norm(h)
    if action_set != "finite":
        raise ValueError(f"action_set must be 'finite' or 'ball', got {action_set!r}")
    v = inst.arms @ h
    i = int(np.argmax(v))
    return i, inst.arms[i]


def phi(A, tau_max: int = 999) -> float:
    r""":math:`\Phi(A) = \sup_\tau \|A^\tau\|_2/\rho(A)^\tau`, over :math:`\tau = 1..\tau_{\max}` (as the code)."""
    A = np.asarray(A, dtype=np.float64)
    rho = spectral_radius(A)
    if rho == 0:
        return float(np.linalg.norm(A, 2)) if np.any(A) else 1.0
    best, P = 0.0, np.eye(A.shape[0])
    for tau in range(1, tau_max + 1):
        P = P @ A
        best = max(best, np.linalg.norm(P, 2) / rho**tau)
        if rho**tau < 1e-300:
            break
    return float(best)


def epoch_lengths(rho_bar: float, n_epochs: int) -> np.ndarray:
    r""":math:`H_m = 1 + \lfloor\log m/\log(1/\bar\rho)\rfloor`, m = 1..n_epochs (so that :math:`\bar\rho^{H_m} < 1/m`).
    :math:`\bar\rho` below 1e-4 gives :math:`H_m = 1` (plain LinUCB), as in the code."""
    if not 0 <= rho_bar < 1:
        raise ValueError(f"rho_bar must lie in [0, 1), got {rho_bar}")
    m = np.arange(1, n_epochs + 1)
    if rho_bar < 1e-4:
        return np.ones(n_epochs, dtype=np.int64)
    return (1 + np.floor(np.log(m) / np.log(1 / rho_bar))).astype(np.int64)


def epoch_ends(rho_bar: float, horizon: int) -> np.ndarray:
    """Round indices (0-based, the code's ``t_estimate``) at which DynLin-UCB's epochs end."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if rho_bar < 1e-4:
        return np.arange(horizon)
    ends, m, s = [], 0, 0
    while s < horizon:
        m += 1
        s += 1 + math.floor(math.log(m) / math.log(1 / rho_bar))
        ends.append(s)
    return np.asarray(ends, dtype=np.int64)


def dynlin_constants(inst: Instance, rho_bar: float, phi_bar: float, sigma: float | None = None):
    r"""Norm constants of DynLin-UCB's confidence radius ([code] ``LinearAgent``):
    :math:`c_1 = \Theta + \Omega\bar B\bar\Phi/(1-\bar\rho)`,
    :math:`c_2 = U\Omega\bar\Phi(U\bar B/(1-\bar\rho) + X)`, :math:`X = U/(1-\bar\rho)`,
    :math:`\tilde\sigma^2 = \sigma^2(1 + \Omega^2\bar\Phi^2/(1-\bar\rho^2))`.

    ``sigma``: the noise std in the radius. Default: the authors' choice (scripts/main.py passes
    ``sigma ** 2``, the variance of ONE output's noise, ``inst.sigma_x`` here); the reward actually carries
    the sum of m such noises, variance :math:`m\sigma^2` (``inst.sigma_y ** 2``)."""
    return dynlin_constants_sigma(float(np.linalg.norm(inst.omega)), float(np.linalg.norm(inst.theta)),
                                  float(np.max(np.linalg.norm(inst.arms, axis=1))), float(np.linalg.norm(inst.B, 2)),
                                  rho_bar, phi_bar, inst.sigma_x if sigma is None else sigma)


def dynlin_constants_sigma(Om, Th, U, Bn, rho_bar, phi_bar, sigma):
    """:func:`dynlin_constants` from the norms ||omega||, ||theta||, max ||a||, ||B||_2 and the radius' sigma."""
    X = U / (1 - rho_bar)
    c1 = Th + Om * Bn * phi_bar / (1 - rho_bar)
    c2 = U * Om * phi_bar * (U * Bn / (1 - rho_bar) + X)
    sig2 = sigma**2 * (1 + Om**2 * phi_bar**2 / (1 - rho_bar**2))
    return c1, c2, sig2, U


def beta_dynlin(t, lam, delta, d, c1, c2, sig2, U, dyn: bool = True):
    r"""Confidence radius at round t ([code]):

    .. math:: \beta_t = c_1\sqrt\lambda + \frac{c_2}{\sqrt\lambda}\log(e(t+1))
              + \sqrt{2\tilde\sigma^2\big(\log(1/\delta) + \tfrac d2\log(1 + tU^2/(d\lambda))\big)}

    (``dyn=False`` drops the :math:`c_2` transient term: the code's LinUCB variant)."""
    t = np.asarray(t, dtype=np.float64)
    out = c1 * np.sqrt(lam) + np.sqrt(2 * sig2 * (np.log(1 / delta) + d / 2 * np.log(1 + t * U**2 / (d * lam))))
    if dyn:
        out = out + c2 / np.sqrt(lam) * np.log(np.e * (t + 1))
    return out


def regret_bound_order(T, d, rho_bar):
    r"""The order of DynLin-UCB's regret bound, :math:`d\sqrt T/(1-\bar\rho)^{3/2}` (constants and logs dropped)."""
    return d * np.sqrt(np.asarray(T, dtype=np.float64)) / (1 - np.asarray(rho_bar, dtype=np.float64)) ** 1.5


def switch_cost(inst: Instance, u_from, u_to) -> float:
    r"""Total expected transient cost of switching, at steady state, from :math:`u` to :math:`u'` [derived]:
    after the switch :math:`\mathbb E y_k = h^\top u' + \omega^\top A^k (I-A)^{-1}B(u - u')`, so

    .. math:: \sum_{k\ge0}\big(h^\top u' - \mathbb E y_k\big) = \omega^\top (I-A)^{-2} B (u' - u) .
    """
    inst = check_instance(inst)
    n = inst.A.shape[0]
    M = np.linalg.inv(np.eye(n) - inst.A)
    return float(inst.omega @ M @ M @ inst.B @ (np.asarray(u_to, float) - np.asarray(u_from, float)))


def sphere_arms(n: int = 512, d: int = 3) -> np.ndarray:
    """``n`` nearly uniform points on the unit sphere in R^3 (Fibonacci lattice): the unit-ball action set,
    discretized (the maximizer of a linear function over the ball lies on the sphere)."""
    if d != 3 or n < 2:
        raise ValueError("sphere_arms supports d = 3 and n >= 2")
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z**2)
    phi_ = np.pi * (1 + 5**0.5) * i
    return np.stack([r * np.cos(phi_), r * np.sin(phi_), z], axis=1)


def budget_arms(p: int = 3, daily: float = 1.5, cmax: float = 1.0, cmin: float = 0.0) -> np.ndarray:
    """The paper's arms: greedy fills of a daily budget over p campaigns (unique; all permutations of
    (1, 0.5, 0) for the defaults) [code main.py]."""
    import itertools

    out = []
    for pi in itertools.permutations(range(p)):
        budget, u = daily - p * cmin, np.full(p, cmin)
        for i in range(p):
            delta = min(budget, cmax - u[i])
            u[pi[i]] += delta
            budget -= delta
        out.append(u.copy())
    return np.unique(np.array(out), axis=0)


def synthetic(sigma: float = 0.01) -> Instance:
    """The paper's synthetic instance: A = diag(.2, 0, .1), B = diag(.45, 0, .1), omega = (1, 0, .1),
    theta = (0, .5, .1); 6 arms. The code sums m = 3 output noises: reward noise std sqrt(3) sigma."""
    return check_instance(Instance(np.diag([0.2, 0.0, 0.1]), np.diag([0.45, 0.0, 0.1]), np.array([1.0, 0.0, 0.1]),
                                   np.array([0.0, 0.5, 0.1]), sigma, math.sqrt(3) * sigma, budget_arms()))


_REAL = {  # config/testcase_realdata.json of marcomussi/DLB (fitted on 3 ad platforms)
    "A": [[0.38, 0.33, 0.6], [0.07, 0.76, -0.54], [0.18, 0.34, 0.05]],
    "B": [[0.14, 0.34, -0.05], [-0.17, 0.03, -0.01], [0.04, -0.09, 0.17]],
    "C": [[0.25, -0.14, 0.01], [-0.55, 0.2, -0.13], [-0.31, -0.1, -0.01]],
    "D": [[0.11, 0.1, 0.01], [0.01, 0.36, 0.01], [0.01, -0.05, 0.0]],
    "expert": [1641952.0, 259591273.0, 716354611.0],
}


def real_data(sigma: float = 0.01) -> Instance:
    """The real-data fitted system (rho = 0.667, complex eigenvalues): omega = 1^T C, theta = 1^T D."""
    C, D = np.array(_REAL["C"]), np.array(_REAL["D"])
    return check_instance(Instance(np.array(_REAL["A"]), np.array(_REAL["B"]), C.sum(0), D.sum(0), sigma,
                                   math.sqrt(3) * sigma, budget_arms()))


def expert_action(exp_policy=None, cmin: float = 0.0, cmax: float = 1.0, daily: float = 1.5) -> np.ndarray:
    """The advertiser's historical split, clipped and rescaled to the budget ([code] ExpertAgent)."""
    e = np.asarray(_REAL["expert"] if exp_policy is None else exp_policy, dtype=np.float64)
    e = e / e.sum()
    lo, hi = cmin / cmax, cmax / daily
    altered = (e < lo) | (e > hi)
    e = np.clip(e, lo, hi)
    keep = ~altered
    e[keep] *= (1 - e[altered].sum()) / e[keep].sum()
    return e * daily


def rho_sweep_instance(rho: float, sigma: float = 0.01) -> Instance:
    r"""The synthetic instance with :math:`A_{11} = \rho` and :math:`B_{11} = 0.45(1-\rho)/0.8` so that
    :math:`h` (hence every gap) stays fixed while :math:`\rho(A)=\rho` varies (for :math:`\rho \ge 0.1`)."""
    if not 0 <= rho < 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    base = synthetic(sigma)
    A = base.A.copy()
    B = base.B.copy()
    A[0, 0] = rho
    B[0, 0] = 0.45 * (1 - rho) / 0.8
    return check_instance(base._replace(A=A, B=B))


def random_instance(seed: int, n: int = 4, d: int = 3, rho: float = 0.8, sigma: float = 0.1,
                    non_normal: float = 1.0) -> Instance:
    """A random stable instance with spectral radius ``rho``, complex eigenvalues and a non-normal A
    (A = S R S^{-1} with a rotation-scaling block and an ill-conditioned S)."""
    if not 0 <= rho < 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    rng = np.random.default_rng(seed)
    R = np.zeros((n, n))
    ang = rng.uniform(0.3, 1.2)
    R[:2, :2] = rho * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    for i in range(2, n):
        R[i, i] = rho * rng.uniform(-0.9, 0.9)
    S = np.eye(n) + non_normal * np.triu(rng.standard_normal((n, n)), 1)
    A = S @ R @ np.linalg.inv(S)
    return check_instance(Instance(A, rng.standard_normal((n, d)) * 0.3, rng.standard_normal(n) * 0.5,
                                   rng.standard_normal(d) * 0.3, sigma, sigma, rng.standard_normal((5, d))))
