r"""Reduced dynamics of a dormant head (Guo et al. 2024, arXiv 2410.13835, Sec. 3: "mutual reinforcement").

The paper's theorem text was not available in the reference store (only its abstract and the authors' code,
whose ``SimpleModel`` is a one-hot attention layer with a learned BOS logit per token and a free BOS value
vector). The reduced model and its asymptotics below are DERIVED here from that structure; the paper's
qualitative statement (the BOS logit grows like :math:`\log t`, the BOS value shrinks, each enabling the other)
is what the derivation reproduces. The exponent :math:`\tfrac12` of the logarithm and the :math:`t^{-1/2}`
decay are consequences of this model, not quotes from the paper.

Model (one non-trigger query; its current token has bigram row :math:`p`):
:math:`n` non-BOS keys with tokens :math:`x_i \sim q` i.i.d. and fixed value states :math:`\lambda e_{x_i}`
(in the transformer these values carry the copy at trigger positions, so they cannot vanish);
the BOS key has logit :math:`\alpha` (the others 0) and value :math:`\beta \in \mathbb{R}^V`. With
:math:`s = e^\alpha / (e^\alpha + n)` and :math:`\bar x = \tfrac1n \sum_i e_{x_i}`, the next-token logits are

.. math:: z = \log p + s\,\beta + (1 - s)\,\lambda\,\bar x, \qquad
          \mathcal L(\alpha, \beta) = \mathbb E_{x}\, \mathrm{CE}\big(p, \mathrm{softmax}(z)\big).   \tag{R1}

Near the optimum :math:`\mathcal L - H(p) \approx \tfrac12 \mathbb E\,\|s\beta + (1-s)\lambda\bar x\|_F^2` with
:math:`F = \mathrm{diag}(p) - pp^\top`, i.e.

.. math:: \mathcal L - H(p) \approx \tfrac12 \|s\beta + (1-s)\lambda q\|_F^2 + \tfrac12 (1-s)^2 \sigma^2, \qquad
          \sigma^2 = \frac{\lambda^2}{n}\, \mathrm{tr}\big(F\,(\mathrm{diag}(q) - qq^\top)\big).   \tag{R2}

:math:`\beta` cancels the mean :math:`(1-s)\lambda q` but not the context noise :math:`\sigma^2`; only
:math:`s \to 1` removes it. Gradient descent with step :math:`\eta` from :math:`\alpha = 0, \beta = 0`
(:math:`\beta` relaxes fast to :math:`\beta^* = -\tfrac{1-s}{s}\lambda (q - \bar q \mathbf 1)`, then
:math:`\dot\alpha = \eta\, s (1-s)^2 \sigma^2 \approx \eta\, n^2 e^{-2\alpha} \sigma^2`) gives

.. math:: \alpha(t) = \tfrac12 \log\!\big(2 n^2 \sigma^2 \eta\, t\big) + o(1), \qquad
          \|\beta(t)\| = \frac{\lambda \|q - \bar q \mathbf 1\|}{\sigma \sqrt{2 \eta t}}\,(1 + o(1)).   \tag{R3}

Mutual reinforcement: with :math:`\beta` held at a value that does not cancel the mean, :math:`\alpha` stops at a
finite stationary point of (R2); with :math:`\alpha` held fixed, :math:`\beta` stops at :math:`\beta^* \ne 0`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_reduced", "reduced_sigma2", "reduced_asymptotics", "reduced_alpha_stationary"]


def check_reduced(p, q, lam: float, n: int):
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.ndim != 1 or p.shape != q.shape or p.size < 2:
        raise ValueError(f"p and q must be probability vectors of the same length >= 2, got {p.shape}, {q.shape}")
    for name, v in (("p", p), ("q", q)):
        if np.any(v <= 0) or abs(v.sum() - 1) > 1e-9:
            raise ValueError(f"{name} must be a positive probability vector (entries > 0, sum 1)")
    if lam <= 0:
        raise ValueError(f"lam (the value-state scale) must be > 0, got {lam}")
    if int(n) != n or n < 1:
        raise ValueError(f"n (number of non-BOS keys) must be an integer >= 1, got {n}")
    return p, q


def reduced_sigma2(p, q, lam: float, n: int) -> float:
    r"""Context-noise variance of (R2): :math:`\sigma^2 = \tfrac{\lambda^2}{n}\mathrm{tr}(F \Sigma_q)`."""
    p, q = check_reduced(p, q, lam, n)
    F = np.diag(p) - np.outer(p, p)
    S = np.diag(q) - np.outer(q, q)
    return float(lam**2 / n * np.trace(F @ S))


def reduced_asymptotics(t, p, q, lam: float, n: int, lr: float, order: int = 1):
    r""":math:`\alpha(t)` and :math:`\|\beta(t)\|` after ``t`` GD steps of size ``lr``.

    ``order=0``: the leading order (R3), :math:`u = e^{\alpha} = \sqrt{2 n^2 \sigma^2 \eta t}`.
    ``order=1``: keeping the next term of :math:`s(1-s)^2 = n^2 u^{-2}(1 - 3n/u + O(u^{-2}))`,
    :math:`\int (u + 3n)\,du = n^2\sigma^2\eta t` gives :math:`u = -3n + \sqrt{9n^2 + 2 n^2 \sigma^2 \eta t}`
    (the initial transient only adds a constant to the right side, i.e. :math:`O(1/t)` in :math:`\alpha`).
    In both, :math:`\|\beta\| = \lambda \|q - \bar q \mathbf 1\|\, n / u` (:math:`\beta^*` of (R2))."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order}")
    t = np.asarray(t, np.float64)
    if np.any(t <= 0):
        raise ValueError("t must be > 0")
    s2 = reduced_sigma2(p, q, lam, n)
    q = np.asarray(q, np.float64)
    K = 2 * n**2 * s2 * lr * t
    u = np.sqrt(K) if order == 0 else -3 * n + np.sqrt(9 * n**2 + K)
    return np.log(u), lam * np.linalg.norm(q - q.mean()) * n / u


def reduced_alpha_stationary(beta, p, q, lam: float, n: int) -> float:
    r"""Stationary :math:`\alpha` of the surrogate (R2) with :math:`\beta` held fixed: the root of
    :math:`(\beta - \lambda q)^\top F (s\beta + (1-s)\lambda q) = (1-s)\sigma^2` in :math:`s \in (0, 1)`
    (bisection; the left side minus the right is increasing in s for a beta that does not cancel the mean)."""
    p, q = check_reduced(p, q, lam, n)
    beta = np.asarray(beta, np.float64)
    F = np.diag(p) - np.outer(p, p)
    s2 = reduced_sigma2(p, q, lam, n)

    def g(s):  # dL/dalpha / (s (1 - s))
        return (beta - lam * q) @ F @ (s * beta + (1 - s) * lam * q) - (1 - s) * s2

    lo, hi = 1e-12, 1 - 1e-12
    if g(lo) * g(hi) > 0:
        raise ValueError("no stationary point in (0, 1): beta cancels the mean or the sign does not change")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) * g(lo) > 0 else (lo, mid)
    s = 0.5 * (lo + hi)
    return float(np.log(s / (1 - s) * n))
