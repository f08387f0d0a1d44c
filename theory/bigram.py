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


def triggers_of(P, k: int) -> np.ndarray:
    """Bigram-Backcopy triggers (Guo et al. 2024): the k most frequent tokens under the stationary law."""
    P = check_transition(P)
    if not 0 < k < P.shape[0]:
        raise ValueError(f"number of triggers k must satisfy 0 < k < V={P.shape[0]}, got {k}")
    return np.sort(np.argsort(-stationary(P), kind="stable")[:k])


def backcopy_oracle(P, triggers, length: int):
    r"""Exact Bayes-optimal losses of the Bigram-Backcopy task (Guo et al. 2024, Sec. 2), by propagating
    the law of the pair :math:`(x_{n-1}, x_n)` (V^2 states) along the sequence:

    * at a trigger position the next token is :math:`x_{n-1}`: loss 0;
    * at a non-trigger position it is drawn from :math:`P[x_n]`: loss :math:`H(P_{x_n\cdot})`.

    ``x_1`` follows the stationary law with triggers removed. Returns (mean oracle loss over non-trigger
    positions n = 1..length-1, fraction of trigger positions).
    """
    P = check_transition(P)
    V = P.shape[0]
    trig = np.zeros(V, bool)
    trig[np.asarray(triggers)] = True
    if length < 3:
        raise ValueError(f"sequence length must be >= 3, got {length}")
    first = stationary(P) * ~trig
    first /= first.sum()
    H = row_entropy(P)
    # q[a, b] = Pr(x_{n-1} = a, x_n = b); at n = 1 the "previous" token is BOS: use a uniform dummy
    q = np.outer(np.full(V, 1.0 / V), first)
    loss_sum, n_non, n_trig = 0.0, 0.0, 0.0
    for _ in range(1, length):
        pb = q.sum(0)
        n_trig += pb[trig].sum()
        n_non += pb[~trig].sum()
        loss_sum += (pb * H)[~trig].sum()
        new = np.zeros_like(q)
        # non-trigger current token b: next ~ P[b]
        nb = ~trig
        new[nb, :] += pb[nb, None] * P[nb, :]
        # trigger current token b: next = previous token a  -> new pair (b, a)
        qt = q[:, trig]  # (a, b in trig)
        new[np.ix_(trig, np.arange(V))] += qt.T
        q = new
    return loss_sum / n_non, n_trig / (n_trig + n_non)
