r"""Learning-rate schedule theory: the last-iterate bound of Defazio, Cutkosky, Mehta, Mishchenko
(arXiv 2310.07831; "Theorem 10" in the arXiv numbering as cited by fabian-sp/lr-scheduling, Thm. 1 of
Schaipp et al. 2025, arXiv 2501.18965), its tuned value, the worst-case optimal schedule, and the
refinement rule.

SGD :math:`x_{t+1} = x_t - \eta_t g_t` on a convex :math:`f`, :math:`D = \|x_1 - x^\star\|`,
:math:`G_t \ge \|g_t\|`, :math:`S_T = \sum_{t=1}^T\eta_t`:

.. math::
    \mathbb E f(x_T) - f^\star \le \frac{D^2}{2S_T} + \frac{1}{2S_T}\sum_{t=1}^T\eta_t^2G_t^2
      + \frac12\sum_{k=1}^{T-1}\frac{\eta_k}{\sum_{t=k+1}^T\eta_t}\,
        \frac{\sum_{t=k}^T\eta_t^2G_t^2}{\sum_{t=k}^T\eta_t} .

The first two terms are the averaged-iterate bound; the third is the price of the last iterate.
Every function takes schedules with arbitrary leading axes (thousands scored at once) and an
array namespace ``xp`` (NumPy by default; ``jax.numpy`` for gradients / jit).

Precision: with NumPy (the default) every bound, rate and weight is computed in float64 whatever
the input's dtype (a float32 schedule is upcast; build schedules with ``sims.schedules.as_array``,
which evaluates them in float64), and the inputs are validated (``ValueError`` naming the
parameter). With ``xp=jax.numpy`` the caller owns the precision (``optimal_schedule`` enables x64).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter
from scipy.optimize import minimize

__all__ = ["bound_terms", "last_iterate_bound", "tuned_bound", "optimal_schedule", "refine",
           "constant_bound_terms", "rex_profile"]


def _check_schedule(lrs, D, G):
    """float64 copies of (lrs, G, D), validated: lrs (..., T) finite, >= 0, T >= 1, a positive entry in
    every schedule; D and G finite and > 0."""
    eta = np.asarray(lrs, dtype=np.float64)
    if eta.ndim < 1 or eta.shape[-1] < 1:
        raise ValueError(f"lrs must have a last (time) axis of length T >= 1, got shape {eta.shape}")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0):
        raise ValueError("lrs must be finite and >= 0")
    if np.any(eta.sum(-1) <= 0):
        raise ValueError("lrs: every schedule needs a positive learning rate (S_T > 0)")
    Gv = np.asarray(G, dtype=np.float64)
    Dv = np.asarray(D, dtype=np.float64)
    for name, v in (("D", Dv), ("G", Gv)):
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(f"{name} must be finite and > 0, got {v!r}")
    return eta, Gv, Dv


def bound_terms(lrs, D=1.0, G=1.0, xp=np):
    r"""(t1, t2, t3) of the bound for schedules ``lrs`` of shape (..., T) (:math:`\eta_1..\eta_T`).

    Suffix sums use reversed cumulative sums (``S - cumsum`` cancels catastrophically).
    A term whose suffix sum is 0 with :math:`\eta_k = 0` counts 0; with :math:`\eta_k > 0`, +inf.
    """
    if xp is np:
        eta, G, D = _check_schedule(lrs, D, G)
    else:
        eta = xp.asarray(lrs)
    G = xp.broadcast_to(xp.asarray(G, dtype=eta.dtype), eta.shape)
    S = xp.sum(eta, axis=-1)
    e2g2 = eta**2 * G**2
    R = xp.flip(xp.cumsum(xp.flip(eta, -1), axis=-1), -1)  # R_k = sum_{t >= k} eta_t
    Q = xp.flip(xp.cumsum(xp.flip(e2g2, -1), axis=-1), -1)
    t1 = D**2 / (2 * S)
    t2 = xp.sum(e2g2, axis=-1) / (2 * S)
    num = eta[..., :-1] * Q[..., :-1]
    den = R[..., 1:] * R[..., :-1]
    safe = xp.where(den > 0, den, 1.0)
    term = xp.where(den > 0, num / safe, xp.where(num > 0, xp.inf, 0.0))
    t3 = 0.5 * xp.sum(term, axis=-1)
    return t1, t2, t3


def last_iterate_bound(lrs, D=1.0, G=1.0, xp=np):
    """The bound (t1 + t2 + t3) for schedules of shape (..., T)."""
    t1, t2, t3 = bound_terms(lrs, D, G, xp)
    return t1 + t2 + t3


def tuned_bound(shape, D=1.0, G=1.0, xp=np):
    r"""Tune the peak lr :math:`c` of ``shape`` (the bound is :math:`t_1/c + c(t_2+t_3)`):
    :math:`c^\star = \sqrt{t_1/(t_2+t_3)}`, :math:`\Omega^\star = 2\sqrt{t_1(t_2+t_3)}`.
    Returns (optimal bound, optimal peak lr) with the terms of the unit-peak ``shape``."""
    t1, t2, t3 = bound_terms(shape, D, G, xp)
    return 2 * xp.sqrt(t1 * (t2 + t3)), xp.sqrt(t1 / (t2 + t3))


def constant_bound_terms(T, c, D=1.0, G=1.0):
    r"""Closed form for a constant lr :math:`c` (Schaipp et al.'s test): :math:`D^2/(2cT)`,
    :math:`cG^2/2`, :math:`(c/2)G^2H_{T-1}` (harmonic number)."""
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    for name, v in (("c", c), ("D", D), ("G", G)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {v!r}")
    H = np.sum(1.0 / np.arange(1, T, dtype=np.float64))
    return D**2 / (2 * c * T), c * G**2 / 2, 0.5 * c * G**2 * H


def optimal_schedule(T: int, D=1.0, G=1.0):
    r"""The exact finite-T minimizer of the bound over :math:`\eta \ge 0` (L-BFGS-B with the exact
    gradient from JAX, float64), started from a constant schedule. Defazio et al.: for constant
    :math:`G` the worst-case optimal schedule is linear decay :math:`\eta_t \propto 1 - t/(T+1)`."""
    import jax
    import jax.numpy as jnp

    if not isinstance(T, (int, np.integer)) or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    with jax.enable_x64(True):
        f = jax.jit(lambda e: last_iterate_bound(e, D, G, jnp))
        g = jax.jit(jax.grad(lambda e: last_iterate_bound(e, D, G, jnp)))
        x0 = np.full(T, D / (G * np.sqrt(T)))
        res = minimize(lambda e: float(f(e)), x0, jac=lambda e: np.asarray(g(e)), method="L-BFGS-B",
                       bounds=[(1e-10, None)] * T, options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12,
                                                            "maxcor": 30})
    return res.x, float(res.fun)


def _smooth(g):
    """Defazio et al.'s smoothing (adaptive_scheduling/visual.py): drop 2 points at each end,
    interpolate to >= 10,000 points, median filter of width ~10% of the run on a right-reflect-padded
    sequence."""
    g = np.asarray(g, dtype=np.float64)[2:-2]
    n = max(g.size, 10_000)
    if g.size < n:
        g = np.interp(np.linspace(0, g.size - 1, n), np.arange(g.size), g)
    w = 2 * int(0.1 * n / 2) + 1
    padded = np.pad(g, (0, 2 * w), mode="reflect")
    return median_filter(padded, size=w, mode="nearest")[:n]


def refine(grad_norms, smooth: bool = True, n_out: int | None = None, power: float = 2.0):
    r"""Refinement (Defazio et al., the closed form of ``find_closed_form_schedule``):

    .. math:: w_t = G_t^{-2}\sum_{p=t+1}^{T} G_p^{-2},\qquad w_T = 0,

    rescaled to max 1 (multiply by a tuned peak lr). Constant norms give exactly linear decay
    :math:`w_t \propto T - t`; large early norms give a warmup, rising late norms a fast final
    anneal. ``smooth`` applies the paper's median filter first; ``n_out`` resamples the result.

    ``power`` = p generalises the weights to :math:`G_t^{-p}`: p = 2 with l2 gradient norms is the SGD refinement;
    p = 1 with l1 norms is the authors' coordinate-wise (Adam) variant (their ``visual.py``:
    ``weights=gnorms_smoothed**-1`` for the ``*_l1`` norm sequences; the paper's coordinate-wise analysis).
    """
    if not np.isfinite(power) or power <= 0:
        raise ValueError(f"power must be finite and > 0, got {power!r}")
    G = np.asarray(grad_norms, dtype=np.float64)
    if G.ndim != 1 or G.size < (6 if smooth else 2):
        raise ValueError("grad_norms must be a 1-D sequence of at least 2 (6 with smoothing) norms")
    if np.any(G <= 0) or not np.all(np.isfinite(G)):
        raise ValueError("grad_norms must be finite and > 0")
    if smooth:
        G = _smooth(G)
    inv = G**-power
    tail = np.concatenate([np.cumsum(inv[::-1])[::-1][1:], [0.0]])  # sum_{p > t}
    w = inv * tail
    w = w / w.max()
    if n_out is not None:
        if n_out < 1:
            raise ValueError(f"n_out must be >= 1, got {n_out}")
        w = np.interp(np.linspace(0, w.size - 1, n_out), np.arange(w.size), w)
    return w


def rex_profile(z):
    r"""REX (Chen, Wolfe, Kyrillidis 2022): :math:`\frac{1-z}{1/2 + (1-z)/2}` for progress z in [0, 1]."""
    z = np.asarray(z, dtype=np.float64)
    if np.any((z < 0) | (z > 1)):
        raise ValueError("progress z must lie in [0, 1]")
    return (1 - z) / (0.5 + 0.5 * (1 - z))


def erm_optimum(problem: str, A, b):
    r"""Independent reference for the convex test problems of ``sims/convex_sgd.py``:
    :math:`f^\star` and :math:`x^\star` by SciPy (least squares: lstsq; logistic: BFGS; ``abs``: linear
    programming is exact: HiGHS)."""
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)

    def f(x):
        z = A @ x
        if problem == "least_squares":
            return 0.5 * np.mean((z - b) ** 2)
        if problem == "logistic":
            return np.mean(np.logaddexp(0.0, -b * z))
        if problem == "abs":
            return np.mean(np.abs(z - b))
        raise ValueError(f"unknown problem {problem!r}")

    if problem == "least_squares":
        x = np.linalg.lstsq(A, b, rcond=None)[0]
        return f(x), x
    if problem == "logistic":
        def jac(x):
            s = -b / (1 + np.exp(b * (A @ x)))
            return A.T @ s / A.shape[0]

        x = minimize(f, np.zeros(A.shape[1]), jac=jac, method="BFGS", options={"gtol": 1e-12}).x
        return f(x), x
    from scipy.optimize import linprog

    n, d = A.shape  # min mean |Ax - b| as an LP: variables (x, s), s >= |Ax - b|
    c = np.concatenate([np.zeros(d), np.ones(n) / n])
    A_ub = np.block([[A, -np.eye(n)], [-A, -np.eye(n)]])
    b_ub = np.concatenate([b, -b])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * d + [(0, None)] * n, method="highs")
    x = res.x[:d]
    return f(x), x
