"""An independent float64 NumPy reference for the schedule quantities of tests/test_schedules_float64.py:
closed-form schedule values and the tuned last-iterate bound of Defazio et al. by explicit suffix sums. Imports
NumPy only (tests/test_imports.py enforces it)."""

from __future__ import annotations

import math

import numpy as np


def ref_schedule(name: str, T: int) -> np.ndarray:
    """Unit-peak lrs at steps t = 0..T-1, from the closed forms (float64)."""
    t = np.arange(T, dtype=np.float64)
    if name == "constant":
        return np.ones(T)
    if name == "linear":
        return 1.0 - t / T
    if name == "cosine":
        return 0.5 * (1.0 + np.cos(math.pi * t / T))
    n_dec = round(0.2 * T)  # WSD 20%: stable until T - n_dec, then decay over n_dec steps
    p = np.clip((t - (T - n_dec)) / n_dec, 0.0, 1.0)
    if name == "wsd20_linear":
        return 1.0 - p
    if name == "wsd20_1-sqrt":
        return 1.0 - np.sqrt(p)
    raise KeyError(name)


def ref_tuned_bound(eta: np.ndarray) -> float:
    """D = G = 1: t1 = 1/(2S), t2 = sum eta^2/(2S), t3 = 1/2 sum_k eta_k/R_{k+1} * Q_k/R_k with R_k, Q_k the
    suffix sums of eta and eta^2, accumulated by a reverse loop; tuned over the peak: 2 sqrt(t1 (t2 + t3))."""
    T = eta.size
    R = np.empty(T + 1)
    Q = np.empty(T + 1)
    R[T] = Q[T] = 0.0
    for k in range(T - 1, -1, -1):
        R[k] = R[k + 1] + float(eta[k])
        Q[k] = Q[k + 1] + float(eta[k]) ** 2
    t1 = 1.0 / (2 * R[0])
    t2 = Q[0] / (2 * R[0])
    t3 = 0.5 * float(np.sum(eta[: T - 1] / R[1:T] * Q[: T - 1] / R[: T - 1]))
    return 2.0 * math.sqrt(t1 * (t2 + t3))
