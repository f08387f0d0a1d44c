"""Independent float64 NumPy references for gated linear attention and LightNet (imports nothing of the suite):
the GLA recurrence of Eq. (3) written as a plain loop, the prefix-softmax average, a Toeplitz matrix."""

from __future__ import annotations

import numpy as np


def gla_recurrence(q, k, v, log_alpha, S0=None):
    """S_t = diag(exp(log_alpha_t)) S_{t-1} + k_t^T v_t, o_t = q_t S_t, for (L, d) arrays (one sequence)."""
    q, k, v, g = (np.asarray(a, np.float64) for a in (q, k, v, log_alpha))
    L, dk = q.shape
    S = np.zeros((dk, v.shape[1])) if S0 is None else np.array(S0, np.float64)
    o = np.empty((L, v.shape[1]))
    for t in range(L):
        S = np.exp(g[t])[:, None] * S + np.outer(k[t], v[t])
        o[t] = q[t] @ S
    return o, S


def prefix_softmax_average(q, k, v):
    """o_t = sum_c q_tc sum_{s<=t} softmax_{s<=t}(k_{.c})_s v_s (LightNet's additive decay, direct)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    L = q.shape[0]
    o = np.empty((L, v.shape[1]))
    for t in range(L):
        w = np.exp(k[: t + 1] - k[: t + 1].max(0))
        w /= w.sum(0)
        o[t] = q[t] @ (w.T @ v[: t + 1])
    return o


def toeplitz_causal(n, lam, coef):
    """T[t, s] = coef * lam^(t - s) for t >= s, else 0."""
    t = np.arange(n)
    d = t[:, None] - t[None, :]
    return np.where(d >= 0, coef * float(lam) ** np.maximum(d, 0), 0.0)
