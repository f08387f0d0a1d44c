r"""Exact quantities of bigram (first-order Markov) sources: the oracle for every bigram-data topic.

For a transition matrix :math:`P` (rows sum to 1) with stationary law :math:`\pi = \pi P`:

.. math::
    H(X_{n+1}\mid X_n) = -\sum_x \pi(x)\sum_y P_{xy}\log P_{xy}

is the Bayes-optimal (oracle) cross-entropy of next-token prediction; the per-row entropies
:math:`H(P_{x\cdot})` are the floors of the per-token losses.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_transition", "stationary", "row_entropy", "conditional_entropy", "population_loss"]


def check_transition(P) -> np.ndarray:
    """Validate a transition matrix: square, V >= 2, entries >= 0, rows summing to 1."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"transition matrix must be square, got shape {P.shape}")
    if P.shape[0] < 2:
        raise ValueError(f"vocabulary size V must be >= 2, got {P.shape[0]}")
    if np.any(P < 0) or not np.all(np.isfinite(P)):
        raise ValueError("transition matrix must have finite entries >= 0")
    if not np.allclose(P.sum(1), 1.0, atol=1e-6):
        raise ValueError(f"transition matrix rows must sum to 1 (max error {np.abs(P.sum(1) - 1).max():.2g})")
    return P


def stationary(P) -> np.ndarray:
    r"""Stationary law :math:`\pi` with :math:`\pi P = \pi`, :math:`\sum\pi = 1` (least squares on
    the augmented system; unique for an irreducible chain)."""
    P = check_transition(P)
    V = P.shape[0]
    A = np.vstack([P.T - np.eye(V), np.ones((1, V))])
    b = np.zeros(V + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(A, b, rcond=None)[0]
    pi = np.clip(pi, 0, None)
    return pi / pi.sum()


def row_entropy(P) -> np.ndarray:
    r""":math:`H(P_{x\cdot}) = -\sum_y P_{xy}\log P_{xy}` (nats), per row."""
    P = check_transition(P)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(P > 0, P * np.log(P), 0.0), axis=1)


def conditional_entropy(P, pi=None) -> float:
    r""":math:`H(X_{n+1}\mid X_n) = \sum_x \pi(x) H(P_{x\cdot})` -- the oracle loss."""
    pi = stationary(P) if pi is None else np.asarray(pi, dtype=np.float64)
    return float(pi @ row_entropy(P))


def population_loss(logits, P, weights=None) -> np.ndarray:
    r"""Per-row cross-entropy :math:`-\sum_y P_{xy}\log\mathrm{softmax}(z_x)_y` of a logit table
    :math:`z` (V x V); with ``weights`` (e.g. :math:`\pi`) the weighted sum."""
    P = check_transition(P)
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    per = -(P * logp).sum(1)
    return per if weights is None else float(np.asarray(weights) @ per)
