r"""Exact moments of SGD on a quadratic valley with additive Gaussian gradient noise.

Model (the "mountain/hill direction" of every later topic):

.. math::
    f(x) = \tfrac12 \sum_i a_i x_i^2, \qquad
    x_{t+1} = x_t - \eta_t (a \odot x_t + \sigma \odot \xi_t), \quad \xi_t \sim \mathcal N(0, I).

Everything here is exact for ANY schedule :math:`(\eta_t)` (not asymptotic), float64 NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "moments",
    "expected_loss",
    "stationary_loss",
    "critical_lr",
    "diverges",
]


def _prep(lrs, a, sigma):
    lrs = np.asarray(lrs, dtype=np.float64)
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), a.shape)
    if lrs.ndim != 1:
        raise ValueError("lrs must be a 1-D array of learning rates")
    if np.any(lrs < 0):
        raise ValueError("learning rates must be >= 0")
    if np.any(a <= 0):
        raise ValueError("curvatures a must be > 0")
    if np.any(sigma < 0):
        raise ValueError("sigma must be >= 0")
    return lrs, a, sigma


def moments(lrs, a, sigma, x0):
    r"""Mean and variance of :math:`x_t` for :math:`t = 0..T` under schedule ``lrs`` (length T).

    .. math::
        \mathbb E[x_{t+1}] = (1 - \eta_t a)\,\mathbb E[x_t], \qquad
        V_{t+1} = (1 - \eta_t a)^2 V_t + \eta_t^2 \sigma^2 .

    Returns arrays of shape ``(T + 1, d)``.
    """
    lrs, a, sigma = _prep(lrs, a, sigma)
    x0 = np.broadcast_to(np.asarray(x0, dtype=np.float64), a.shape)
    c = 1.0 - lrs[:, None] * a[None, :]  # (T, d)
    # closed-form products via cumulative sums: m_t = x0 prod c ; V by a linear recursion
    m = np.empty((lrs.size + 1, a.size))
    v = np.empty_like(m)
    m[0], v[0] = x0, 0.0
    for t in range(lrs.size):  # exact recursion (T is modest in theory checks)
        m[t + 1] = c[t] * m[t]
        v[t + 1] = c[t] ** 2 * v[t] + lrs[t] ** 2 * sigma**2
    return m, v


def expected_loss(lrs, a, sigma, x0):
    r""":math:`\mathbb E f(x_t) = \tfrac12\sum_i a_i (\mathbb E[x_{t,i}]^2 + V_{t,i})`, t = 0..T."""
    _, a_, _ = _prep(lrs, a, sigma)
    m, v = moments(lrs, a, sigma, x0)
    return 0.5 * ((m**2 + v) * a_[None, :]).sum(-1)


def stationary_loss(lr, a, sigma):
    r"""Stationary :math:`\mathbb E f` at constant :math:`\eta < 2/a` (per coordinate, summed):

    .. math:: \lim_{t\to\infty} \tfrac12 a V_t = \frac{\eta\,\sigma^2}{2(2 - \eta a)} .

    ``inf`` where :math:`\eta \ge 2/a` (no stationary law: the variance grows without bound).
    """
    lr = np.asarray(lr, dtype=np.float64)
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), a.shape)
    lr_ = lr[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(lr_ * a < 2.0, lr_ * sigma**2 / (2.0 * (2.0 - lr_ * a)), np.inf)
    return per.sum(-1)


def critical_lr(a):
    r"""Largest stable constant lr, :math:`2/\max_i a_i`."""
    return 2.0 / np.max(np.atleast_1d(np.asarray(a, dtype=np.float64)))


def diverges(lr, a, sigma=1.0):
    r"""True where constant-lr SGD diverges: :math:`|1 - \eta a_i| > 1` for some i, i.e.
    :math:`\eta > 2/\max a`. (At :math:`\eta = 2/a` exactly the variance grows linearly when
    :math:`\sigma > 0`; we call that divergent too but never test at the boundary.)"""
    lr = np.asarray(lr, dtype=np.float64)
    crit = critical_lr(a)
    return np.where(np.asarray(sigma) > 0, lr >= crit, lr > crit)
