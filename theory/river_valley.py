r"""River-valley landscapes (Wen, Li, Wang, Hall, Liang, Ma 2024, arXiv 2410.05192, Sec. 3).

The paper conjectures that the pretraining loss is a *river valley*: a deep valley whose floor
(the river) descends slowly. Sec. 3 shows that in the stable phase SGD oscillates in the steep
hill directions with an excess set by the lr while progressing along the river, and that the
decay phase removes the oscillation and *reveals* the river progress. (The paper's body was
not available to this suite: the statements below are the paper's abstract-level claims made
exact for the toy, and every closed form is derived here for it -- marked [derived].)

Toy landscape used by ``sims/river_valley.py`` (river coordinate :math:`u`, hill coordinates
:math:`v \in \mathbb R^{k}`):

.. math::
    f(u, v) = \ell(u) + \tfrac12 \sum_i a_i(u)\,(v_i - g_i(u))^2,\qquad
    \ell(u) = c\,e^{-u/s},\quad a_i(u) = a_i e^{\kappa u},\quad g_1(u) = \gamma \sin u,

with SGD :math:`x_{t+1} = x_t - \eta_t(\nabla f(x_t) + \Sigma^{1/2}\xi_t)`, hill noise
:math:`\sigma_i` and river noise :math:`\sigma_u`. The river is :math:`\{v = g(u)\}`; with
:math:`\kappa = \gamma = 0` ("straight river, constant sharpness") the loss separates exactly into
the river loss and independent quadratic hills, so that

.. math::
    \mathbb E f(x_t) = \ell(u_t) + \sum_i \tfrac12 a_i V_{t,i}
    \quad (\sigma_u = 0;\ V \text{ from } \texttt{theory.quadratic}) ,

with :math:`u_t` the deterministic GD recursion on :math:`\ell`. [derived]
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from theory import quadratic as tq

__all__ = [
    "river_loss",
    "gd_river",
    "gradient_flow_river",
    "hill_excess",
    "predicted_loss",
    "effective_drift",
    "river_ode",
    "cumulative_lr",
    "optimal_decay_fraction",
]


def _check(c, s):
    if c <= 0:
        raise ValueError(f"river scale c must be > 0, got {c}")
    if s <= 0:
        raise ValueError(f"river length s must be > 0, got {s}")


def river_loss(u, c: float = 1.0, s: float = 1.0):
    r""":math:`\ell(u) = c\,e^{-u/s}` -- slow, never-saturating progress, like an LM's loss on its
    deterministic (low-uncertainty) tokens (Sec. 4)."""
    _check(c, s)
    return c * np.exp(-np.asarray(u, dtype=np.float64) / s)


def gd_river(lrs, u0: float = 0.0, c: float = 1.0, s: float = 1.0):
    r"""Exact river coordinate under GD on :math:`\ell`: :math:`u_{t+1} = u_t + \eta_t (c/s) e^{-u_t/s}`.
    Returns :math:`u_0..u_T` (float64)."""
    _check(c, s)
    lrs = np.asarray(lrs, dtype=np.float64)
    u = np.empty(lrs.size + 1)
    u[0] = u0
    for t, e in enumerate(lrs):
        u[t + 1] = u[t] + e * (c / s) * np.exp(-u[t] / s)
    return u


def cumulative_lr(lrs):
    r""":math:`\tau_t = \sum_{r<t}\eta_r`, t = 0..T (the intrinsic time of the river)."""
    return np.concatenate([[0.0], np.cumsum(np.asarray(lrs, dtype=np.float64))])


def gradient_flow_river(tau, u0: float = 0.0, c: float = 1.0, s: float = 1.0):
    r"""Gradient flow on the river, :math:`\dot u = -\ell'(u)`, in time :math:`\tau = \sum \eta`:

    .. math:: u(\tau) = s\log\!\big(e^{u_0/s} + c\,\tau / s^2\big),\qquad
              \ell(u(\tau)) = \frac{c}{e^{u_0/s} + c\tau/s^2} .

    The paper's claim (Sec. 3, stable phase): the river progress depends on the schedule only
    through :math:`\tau`, up to :math:`O(\eta)` discretization error. [closed form derived here]
    """
    _check(c, s)
    tau = np.asarray(tau, dtype=np.float64)
    return s * np.log(np.exp(u0 / s) + c * tau / s**2)


def hill_excess(lrs, a, sigma, v0=0.0):
    r"""Exact expected hill loss :math:`\sum_i \tfrac12 a_i (m_{t,i}^2 + V_{t,i})` for quadratic hills
    (the foundation's recursion, ``theory.quadratic``); stationary value at constant :math:`\eta`:
    :math:`\sum_i \eta\sigma_i^2 / (2(2-\eta a_i))`."""
    return tq.expected_loss(lrs, a, sigma, v0)


def predicted_loss(lrs, a, sigma, *, u0=0.0, c=1.0, s=1.0, v0=0.0, flow: bool = False):
    r"""Predicted :math:`\mathbb E f(x_t)`, t = 0..T, on a straight river with constant sharpness:
    :math:`\ell(u_t) + ` :func:`hill_excess`. ``flow=False``: :math:`u_t` by the exact GD recursion
    (exact when :math:`\sigma_u = 0`); ``flow=True``: by gradient flow at :math:`\tau_t`."""
    u = gradient_flow_river(cumulative_lr(lrs), u0, c, s) if flow else gd_river(lrs, u0, c, s)
    return river_loss(u, c, s) + hill_excess(lrs, a, sigma, v0)


def effective_drift(u, lr, a, sigma, kappa, c=1.0, s=1.0):
    r"""River drift when the hill sharpness varies along the river, :math:`a_i(u) = a_i e^{\kappa u}`,
    with the hills at their stationary law (adiabatic, constant :math:`\eta`) [derived]:

    .. math::
        \frac{du}{d\tau} = -\ell'(u) - \sum_i \tfrac12 a_i'(u)\,\mathbb E w_i^2
        = \frac{c}{s}e^{-u/s} - \sum_i \frac{\kappa\,\eta\,\sigma_i^2}{2(2 - \eta a_i(u))} .

    For small :math:`\eta a` this is gradient flow on the *effective* river loss
    :math:`\ell(u) + \tfrac{\eta}{4}\sum_i\sigma_i^2 \log a_i(u)`: SGD noise pushes the iterate
    toward flatter parts of the valley, and slows (kappa > 0) or speeds (kappa < 0) the river.
    """
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), a.shape)
    au = a * np.exp(kappa * u)
    return (c / s) * np.exp(-u / s) - np.sum(kappa * lr * sigma**2 / (2.0 * (2.0 - lr * au)))


def river_ode(lrs, a, sigma, kappa, *, u0=0.0, c=1.0, s=1.0):
    r"""Integrate :func:`effective_drift` in :math:`\tau` along the schedule (piecewise-constant
    :math:`\eta`); returns :math:`u` at t = 0..T. With ``kappa=0`` it is gradient flow."""
    lrs = np.asarray(lrs, dtype=np.float64)
    tau = cumulative_lr(lrs)

    def rhs(t, y):
        i = min(np.searchsorted(tau, t, side="right") - 1, lrs.size - 1)
        return [effective_drift(y[0], lrs[i], a, sigma, kappa, c, s)]

    sol = solve_ivp(rhs, (0.0, tau[-1]), [u0], t_eval=tau, rtol=1e-9, atol=1e-12, max_step=max(tau[-1] / 2000, 1e-9))
    return sol.y[0]


def optimal_decay_fraction(fractions, peak_lr, n_steps, a, sigma, *, decay_shape_factor, u0=0.0, c=1.0, s=1.0):
    r"""Predicted final loss of WSD for each decay fraction; returns (fractions, final losses).

    ``decay_shape_factor(p)`` gives the decay factor at progress p (e.g. linear ``1 - p``). The
    trade-off: a longer decay lowers :math:`\tau` (less river progress, cost
    :math:`\approx |\ell'| \eta f T/2`) but lets the hills relax (the excess falls as
    :math:`\eta_t` does, and a too-short decay is not adiabatic: relaxation takes
    :math:`\sim 1/(2\eta_t a)` steps). [derived]
    """
    out = []
    for f in fractions:
        n_dec = int(round(f * n_steps))
        lrs = np.full(n_steps, float(peak_lr))
        if n_dec:
            p = np.arange(n_dec) / n_dec
            lrs[n_steps - n_dec:] = peak_lr * decay_shape_factor(p)
        out.append(predicted_loss(lrs, a, sigma, u0=u0, c=c, s=s)[-1])
    return np.asarray(fractions, dtype=np.float64), np.asarray(out)
