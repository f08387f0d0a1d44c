r"""Lion-:math:`\mathcal K` theory (Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization:
As Lyapunov Predicts", ICLR 2024, arXiv 2310.05898).

Paper convention (momentum sign flipped w.r.t. optax, :math:`m = -\mu_{\rm optax}`), Sec. 2 eqs. (1)-(2):

.. math::
    m_{t+1} = \beta_2 m_t - (1-\beta_2)\nabla f(x_t),\qquad
    x_{t+1} = x_t + \epsilon\big(\nabla\mathcal K(\beta_1 m_t - (1-\beta_1)\nabla f(x_t)) - \lambda x_t\big).

Continuous time (Sec. 3): :math:`\dot m = -\alpha\nabla f(x) - \gamma m`,
:math:`\dot x = \nabla\mathcal K(\tilde m) - \lambda x`,
:math:`\tilde m = m - \varepsilon(\alpha\nabla f(x) + \gamma m)`. With time step :math:`\epsilon` per
iteration the discrete map corresponds to :math:`\alpha = \gamma = (1-\beta_2)/\epsilon` and lookahead
:math:`\varepsilon = \epsilon(1-\beta_1)/(1-\beta_2)` (so :math:`\varepsilon\gamma = 1-\beta_1`).

It minimizes :math:`F(x) = \alpha f(x) + \frac{\gamma}{\lambda}\mathcal K^*(\lambda x)`; for
:math:`\mathcal K = \|\cdot\|_1` (Lion) :math:`\mathcal K^*` is the indicator of the unit
:math:`\ell_\infty` ball: :math:`\min f` s.t. :math:`\|x\|_\infty \le 1/\lambda`.

The paper's text was not available to this suite; the Lyapunov function below is the one the
research note reconstructs (Sec. 3, "Lyapunov function"), whose monotonicity the note derives and
this suite checks numerically. Tags: [paper] from the paper's abstract/summaries, [derived] here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize

__all__ = ["Kappa", "KAPPAS", "get_kappa", "lyapunov", "ode_params", "box_excess_bound", "box_kkt_residual",
           "problem", "solve_composite", "PROBLEMS"]

INF = np.inf


# --------------------------------------------------------------------------------------
# the kappa family: K, grad K, conjugate K*, and what Lion-K then solves
# --------------------------------------------------------------------------------------
class Kappa(NamedTuple):
    """A convex :math:`\\mathcal K` with its (sub)gradient and conjugate, on flat vectors.

    ``grad(m, xp)`` / ``value(m, xp)`` take an array namespace (numpy or jax.numpy);
    ``conj(y)`` (NumPy) is :math:`\\mathcal K^*(y)` (``inf`` outside its domain);
    ``solves``: the composite problem :math:`\\min f + \\frac1\\lambda\\mathcal K^*(\\lambda x)` in words;
    ``source``: "paper" if the paper lists it (Table 2 / the Lion-lp family), else "added".
    """

    name: str
    grad: Callable
    value: Callable
    conj: Callable
    solves: str
    source: str
    smooth: bool


def _ind(ok):
    return 0.0 if ok else INF


def _lp(p):
    q = p / (p - 1)

    def grad(m, xp):
        n = xp.sum(xp.abs(m) ** p) ** (1 / p)
        safe = xp.where(n > 0, n, 1.0)
        return xp.where(n > 0, xp.sign(m) * xp.abs(m) ** (p - 1) / safe ** (p - 1), 0.0 * m)

    return Kappa(f"l{p:g}", grad, lambda m, xp: xp.sum(xp.abs(m) ** p) ** (1 / p),
                 lambda y: _ind(np.sum(np.abs(y) ** q) ** (1 / q) <= 1 + 1e-9),
                 f"min f s.t. ||x||_{q:g} <= 1/lam", "paper", False)


def _huber_conj(y):
    y = np.asarray(y, dtype=np.float64)
    return 0.5 * float(y @ y) if np.all(np.abs(y) <= 1 + 1e-9) else INF


def _relativistic_conj(y):
    y = np.asarray(y, dtype=np.float64)
    s = float(y @ y)
    return -np.sqrt(max(0.0, 1 - s)) if s <= 1 + 1e-9 else INF


def _logcosh_conj(y, b=1.0):
    y = np.asarray(y, dtype=np.float64)
    if np.any(np.abs(y) > 1):
        return INF
    yc = np.clip(y, -1 + 1e-15, 1 - 1e-15)
    h = (1 + yc) / 2 * np.log1p(yc) + (1 - yc) / 2 * np.log1p(-yc)
    return float(np.sum(h)) / b


KAPPAS: dict[str, Kappa] = {
    "l1": Kappa("l1", lambda m, xp: xp.sign(m), lambda m, xp: xp.sum(xp.abs(m)),
                lambda y: _ind(np.max(np.abs(y)) <= 1 + 1e-9), "min f s.t. ||x||_inf <= 1/lam (Lion)", "paper", False),
    "l2": Kappa("l2", lambda m, xp: m / xp.maximum(xp.sqrt(xp.sum(m * m)), 1e-30),
                lambda m, xp: xp.sqrt(xp.sum(m * m)),
                lambda y: _ind(np.linalg.norm(y) <= 1 + 1e-9), "min f s.t. ||x||_2 <= 1/lam (normalized momentum)",
                "paper", False),
    "l1.5": _lp(1.5),
    "huber": Kappa("huber", lambda m, xp: xp.clip(m, -1.0, 1.0),
                   lambda m, xp: xp.sum(xp.where(xp.abs(m) <= 1, 0.5 * m * m, xp.abs(m) - 0.5)), _huber_conj,
                   "min f + (lam/2)||x||^2 s.t. ||x||_inf <= 1/lam (clipped sign; optax mode='refined')", "added",
                   True),
    "logcosh": Kappa("logcosh", lambda m, xp: xp.tanh(m),
                     lambda m, xp: xp.sum(xp.logaddexp(m, -m) - np.log(2.0)), _logcosh_conj,
                     "min f + (1/lam) sum_i h(lam x_i), |x_i| <= 1/lam (tanh; optax mode='smooth')", "added", True),
    "relativistic": Kappa("relativistic", lambda m, xp: m / xp.sqrt(xp.sum(m * m) + 1.0),
                          lambda m, xp: xp.sqrt(xp.sum(m * m) + 1.0), _relativistic_conj,
                          "min f - (1/lam) sqrt(1 - lam^2 ||x||^2), ||x||_2 <= 1/lam", "added", True),
    "quadratic": Kappa("quadratic", lambda m, xp: m, lambda m, xp: 0.5 * xp.sum(m * m),
                       lambda y: 0.5 * float(np.asarray(y) @ np.asarray(y)),
                       "min f + (lam/2)||x||^2 (momentum SGD + decoupled weight decay; no constraint)", "added",
                       True),
}


def get_kappa(name: str) -> Kappa:
    if name not in KAPPAS:
        raise ValueError(f"unknown kappa {name!r}; valid: {', '.join(KAPPAS)}")
    return KAPPAS[name]


def check_hparams(lr=None, lam=None, b1=None, b2=None):
    """Valid ranges: lr (epsilon) > 0, lam (weight decay) >= 0, b1, b2 in [0, 1)."""
    if lr is not None and not np.all(np.asarray(lr) > 0):
        raise ValueError(f"learning rate epsilon must be > 0, got {lr}")
    if lam is not None and not np.all(np.asarray(lam) >= 0):
        raise ValueError(f"weight decay lambda must be >= 0, got {lam}")
    for name, b in (("b1", b1), ("b2", b2)):
        if b is not None and not np.all((np.asarray(b) >= 0) & (np.asarray(b) < 1)):
            raise ValueError(f"{name} must lie in [0, 1), got {b}")


# --------------------------------------------------------------------------------------
# Lyapunov function, phase 1, KKT
# --------------------------------------------------------------------------------------
def ode_params(lr, b1, b2):
    r"""(alpha, gamma, lookahead) of the ODE matching the discrete map with time step ``lr``:
    :math:`\alpha=\gamma=(1-\beta_2)/\epsilon`, :math:`\varepsilon=\epsilon(1-\beta_1)/(1-\beta_2)`. [derived]"""
    check_hparams(lr=lr, b1=b1, b2=b2)
    g = (1 - b2) / lr
    return g, g, lr * (1 - b1) / (1 - b2)


def lyapunov(f_val, x, m, kappa: Kappa, lam, alpha, gamma, look):
    r"""The Lyapunov function of Lion-K (Sec. 3; reconstructed and checked here):

    .. math::
        H(x, m) = \alpha f(x) + \frac{\gamma}{\lambda}\mathcal K^*(\lambda x)
                 + C\big(\mathcal K^*(\lambda x) + \mathcal K(m) - \lambda\langle m, x\rangle\big),\quad
        C = \frac{1 - \varepsilon\gamma}{1 + \varepsilon\lambda} .

    Conditions: :math:`\mathcal K` convex, :math:`\lambda > 0`, :math:`\varepsilon\gamma \le 1` (so
    :math:`C \ge 0`; the bracket is :math:`\ge 0` by Fenchel-Young). Along the ODE
    :math:`\dot H = -\Delta \le 0` with :math:`\Delta` a sum of two monotonicity inner products.
    ``x``, ``m`` flat NumPy vectors (paper sign of m). Returns ``inf`` outside dom K*.
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    ks = kappa.conj(lam * x)
    if not np.isfinite(ks):
        return INF
    C = (1 - look * gamma) / (1 + look * lam)
    Km = float(kappa.value(m, np))
    return alpha * f_val + (gamma / lam) * ks + C * (ks + Km - lam * float(m @ x))


def box_excess_bound(x0, lr, lam, t):
    r"""Phase 1 (Sec. 3, [derived] per coordinate): for :math:`\epsilon\lambda \le 1` and any gradients,

    .. math:: \max(|x_{t,i}| - 1/\lambda, 0) \le (1-\epsilon\lambda)^t \max(|x_{0,i}| - 1/\lambda, 0)

    (discrete), and :math:`e^{-\lambda\tau}` in ODE time :math:`\tau`. ``t`` may be an array."""
    check_hparams(lr=lr, lam=lam)
    if lr * lam > 1:
        raise ValueError(f"the bound needs lr * lam <= 1, got {lr * lam}")
    ex0 = np.maximum(np.abs(np.asarray(x0, dtype=np.float64)) - 1 / lam, 0)
    return (1 - lr * lam) ** np.asarray(t, dtype=np.float64)[..., None] * ex0


def box_kkt_residual(x, grad, lam):
    r"""KKT residual of :math:`\min f` s.t. :math:`\|x\|_\infty\le 1/\lambda`:
    :math:`\|x - \Pi_{\rm box}(x - \nabla f(x))\|_2` (zero iff x is a KKT point)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.linalg.norm(x - np.clip(x - np.asarray(grad, dtype=np.float64), -1 / lam, 1 / lam)))


# --------------------------------------------------------------------------------------
# test problems (written once for numpy and jax.numpy via the namespace argument)
# --------------------------------------------------------------------------------------
def problem(name: str, d: int = 2, seed: int = 0):
    """(f(x, xp), data) for ``quadratic`` (SPD, minimizer outside the unit box), ``rosenbrock``
    ((1-x1)^2 + 5 (x2-x1^2)^2, minimizer (1, 1); d = 2), ``logistic`` (separable-ish logistic
    regression, minimizer at infinity)."""
    rng = np.random.default_rng(seed)
    if name == "quadratic":
        Q = rng.standard_normal((d, d))
        A = Q @ Q.T / d + 0.5 * np.eye(d)
        b = rng.uniform(-3, 3, d)

        def f(x, xp=np):
            r = x - b
            return 0.5 * r @ (A @ r)

        return f, {"A": A, "b": b}
    if name == "rosenbrock":
        if d != 2:
            raise ValueError("rosenbrock is 2-D (d=2)")

        def f(x, xp=np):
            return (1 - x[0]) ** 2 + 5 * (x[1] - x[0] ** 2) ** 2

        return f, {}
    if name == "logistic":
        n = 64
        w_true = rng.standard_normal(d) * 2
        X = rng.standard_normal((n, d))
        y = np.sign(X @ w_true + 0.3 * rng.standard_normal(n))

        def f(x, xp=np):
            return xp.mean(xp.logaddexp(0.0, -y * (X @ x)))

        return f, {"X": X, "y": y}
    raise ValueError(f"unknown problem {name!r}; valid: quadratic, rosenbrock, logistic")


PROBLEMS = ("quadratic", "rosenbrock", "logistic")


def _num_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def solve_composite(f, kappa: Kappa, lam: float, d: int, grad=None, x0=None):
    r"""Independent reference (SciPy) for :math:`\min_x f(x) + \frac1\lambda\mathcal K^*(\lambda x)`:

    * l1 (box): L-BFGS-B with bounds :math:`\pm 1/\lambda`;
    * huber: L-BFGS-B on :math:`f + \frac\lambda2\|x\|^2` with the same bounds;
    * logcosh: L-BFGS-B on :math:`f + \frac1\lambda\sum h(\lambda x_i)` inside the box;
    * l2 / l_p / relativistic: SLSQP with the norm-ball constraint;
    * quadratic: BFGS on :math:`f + \frac\lambda2\|x\|^2`.
    """
    check_hparams(lam=lam)
    if lam <= 0:
        raise ValueError("the composite problem needs lam > 0")
    grad = grad or (lambda x: _num_grad(f, x))
    x0 = np.zeros(d) if x0 is None else np.asarray(x0, dtype=np.float64)
    r = 1 / lam
    opts = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000}
    if kappa.name in ("l1", "huber", "logcosh"):
        if kappa.name == "l1":
            obj, jac = f, grad
        elif kappa.name == "huber":
            obj = lambda x: f(x) + 0.5 * lam * x @ x
            jac = lambda x: grad(x) + lam * x
        else:
            def obj(x):
                y = np.clip(lam * x, -1 + 1e-12, 1 - 1e-12)
                return f(x) + np.sum((1 + y) / 2 * np.log1p(y) + (1 - y) / 2 * np.log1p(-y)) / lam

            jac = lambda x: grad(x) + np.arctanh(np.clip(lam * x, -1 + 1e-12, 1 - 1e-12))
        res = minimize(obj, x0, jac=jac, method="L-BFGS-B", bounds=[(-r, r)] * d, options=opts)
        return res.x
    if kappa.name == "quadratic":
        return minimize(lambda x: f(x) + 0.5 * lam * x @ x, x0, jac=lambda x: grad(x) + lam * x, method="BFGS",
                        options={"gtol": 1e-12}).x
    if kappa.name == "relativistic":
        obj = lambda x: f(x) - np.sqrt(max(0.0, 1 - lam**2 * x @ x)) / lam
        cons = [{"type": "ineq", "fun": lambda x: r**2 - x @ x}]
        return minimize(obj, x0, method="SLSQP", constraints=cons, options={"ftol": 1e-15, "maxiter": 1000}).x
    if kappa.name.startswith("l"):
        p = 2.0 if kappa.name == "l2" else float(kappa.name[1:])
        q = p / (p - 1)
        cons = [{"type": "ineq", "fun": lambda x: r - np.sum(np.abs(x) ** q) ** (1 / q)}]
        return minimize(f, x0, jac=grad, method="SLSQP", constraints=cons, options={"ftol": 1e-15, "maxiter": 1000}).x
    raise ValueError(f"no reference solver for kappa {kappa.name!r}")
