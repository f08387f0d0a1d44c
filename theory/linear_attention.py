r"""Closed forms for gated linear attention (Yang et al., ICML 2024, arXiv 2312.06635) and LightNet's additive decay
(Qin et al., arXiv 2405.21022): float32 stability boundaries predicted from the gates alone, analytic FLOP counts,
parameter counts, gate statistics, and the relative-position property of MD-LRPE. NumPy only (the independent
reference: nothing here imports ``sims``).

What each formula rests on is said in its docstring: the GLA paper's equations are quoted with their numbers;
LightNet's paper body was not retrievable, so its formulas are reconstructed from the fla / xmixers code and the
ICLR 2025 reviews (``../shared/research/linear_attention.md``, section 2) and marked as such.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "F32_EXP_MAX",
    "min_cumulative_log_gate",
    "min_within_chunk_log_decay",
    "predict_finite",
    "boundary_margin",
    "flops",
    "chunk_parallel_crossover",
    "gla_layer_params",
    "zero_logit_gate",
    "gate_memory",
    "additive_decay_mean",
    "lrpe_score",
]

F32_EXP_MAX = float(np.log(np.finfo(np.float32).max))  # 88.7228...: exp(x) is inf in float32 for x above it


def min_cumulative_log_gate(log_alpha) -> float:
    r"""The most negative :math:`\log b_t = \sum_{j \le t} \log\alpha_j` over positions and channels (Sec. 4.1:
    the parallel form divides by :math:`b_t`). ``log_alpha``: (..., L, d_k)."""
    return float(np.min(np.cumsum(np.asarray(log_alpha, np.float64), axis=-2)))


def min_within_chunk_log_decay(log_alpha, chunk_size: int) -> float:
    r"""The most negative within-chunk :math:`\log\Lambda_{iC+j} = \log b_{iC+j} - \log b_{iC}` (Sec. 4.2: the
    intra-chunk matmul divides by :math:`\Lambda`). ``L`` is padded with unit gates to a multiple of C."""
    g = np.asarray(log_alpha, np.float64)
    L = g.shape[-2]
    n = -(-L // chunk_size)
    g = np.concatenate([g, np.zeros(g.shape[:-2] + (n * chunk_size - L, g.shape[-1]))], axis=-2)
    g = g.reshape(g.shape[:-2] + (n, chunk_size, g.shape[-1]))
    return float(np.min(np.cumsum(g, axis=-2)))


def predict_finite(log_alpha, form: str, chunk_size: int | None = None, sub_chunk_size: int | None = None) -> bool:
    r"""Float32 finiteness of a GLA form, predicted from the gates alone (claim G4).

    ``naive_parallel`` computes :math:`K / B = K e^{-\log b}`: finite iff :math:`-\min_t \log b_t <` 88.72.
    ``chunk`` without sub-chunking computes :math:`K / \Lambda` per chunk: finite iff the within-chunk cumulative
    log decay stays above -88.72. ``recurrent``, ``parallel`` (log space, Eq. 4: exponents <= 0) and the
    secondary-chunked ``chunk`` (both factors anchored, exponents <= 0) are finite for every gate.
    Near the boundary the matmul sums d_k such terms, so the flip can come up to log(d_k L) earlier: see
    :func:`boundary_margin`."""
    if form == "naive_parallel":
        return -min_cumulative_log_gate(log_alpha) < F32_EXP_MAX
    if form == "chunk" and sub_chunk_size is None:
        if chunk_size is None:
            raise ValueError("chunk_size is needed for form='chunk'")
        return -min_within_chunk_log_decay(log_alpha, chunk_size) < F32_EXP_MAX
    if form in ("recurrent", "parallel", "chunk"):
        return True
    raise ValueError(f"unknown form {form!r}")


def boundary_margin(log_alpha, form: str, chunk_size: int | None = None) -> float:
    r"""Distance (in nats of the exponent) of a setting from its predicted boundary: positive = predicted finite.
    Settings within log(d_k x L) of 0 are marginal (the overflow of a sum of up to d_k L terms each below the
    float32 maximum is not predicted by the largest exponent alone)."""
    if form == "naive_parallel":
        return F32_EXP_MAX + min_cumulative_log_gate(log_alpha)
    if form == "chunk":
        return F32_EXP_MAX + min_within_chunk_log_decay(log_alpha, chunk_size)
    return math.inf


def flops(form: str, L: int, d_k: int, d_v: int, chunk_size: int = 64) -> float:
    r"""Forward FLOPs of one head (multiply-add = 2), counted analytically (XLA's cost analysis counts a scan
    body once, so it cannot count scans; claim G6):

    * recurrent: per step decay :math:`d_k d_v`, outer product + add :math:`2 d_k d_v`, readout
      :math:`2 d_k d_v`: :math:`5 L d_k d_v`;
    * chunk (Sec. 4.2): intra :math:`QK^\top` and :math:`AV` per chunk :math:`2 C^2 (d_k + d_v)`, inter
      :math:`Q S` and state :math:`K^\top V`: :math:`2 L C (d_k + d_v) + 4 L d_k d_v`;
    * parallel (causal half of :math:`2 L^2 (d_k + d_v)`): :math:`L^2 (d_k + d_v)` (the gate's elementwise work
      and the log-space exponentials are not counted: matmul FLOPs only, as the paper's accounting).
    """
    if form == "recurrent":
        return 5.0 * L * d_k * d_v
    if form == "chunk":
        return 2.0 * L * chunk_size * (d_k + d_v) + 4.0 * L * d_k * d_v
    if form in ("parallel", "naive_parallel"):
        return float(L) * L * (d_k + d_v)
    raise ValueError(f"unknown form {form!r}")


def chunk_parallel_crossover(chunk_size: int, d_k: int, d_v: int) -> float:
    r"""The length above which the chunk form needs fewer FLOPs than the parallel form:
    :math:`2 L C (d_k + d_v) + 4 L d_k d_v < L^2 (d_k + d_v) \iff L > 2C + 4 d_k d_v / (d_k + d_v)`
    (= 256 for C = d_k = d_v = 64)."""
    return 2.0 * chunk_size + 4.0 * d_k * d_v / (d_k + d_v)


def gla_layer_params(d: int, rank: int = 16) -> float:
    r"""Parameters of one GLA layer, Sec. 4.4 with :math:`d_k = d/2`, :math:`d_v = d`: :math:`W_Q, W_K`
    (:math:`d \cdot d/2` each), :math:`W_V, W_O, W_r` (:math:`d^2` each), gate :math:`W^1_\alpha` (d x 16),
    :math:`W^2_\alpha` (16 x d/2), biases :math:`b_\alpha` (d/2), :math:`b_r` (d); per-head norm without
    parameters: :math:`4 d^2 + (1.5 \cdot 16 + 1.5) d = 4 d^2 + 25.5 d` at rank 16 (claim G7)."""
    return 4.0 * d * d + (1.5 * rank + 1.5) * d


def zero_logit_gate(tau: float = 16.0) -> float:
    r""":math:`\alpha = \sigma(0)^{1/\tau} = 0.5^{1/\tau}` (Sec. 4.4, tau = 16: 0.9576)."""
    return 0.5 ** (1.0 / tau)


def gate_memory(alpha: float) -> float:
    r"""Effective memory :math:`1 / (1 - \alpha)` tokens of a constant gate (23.6 at the zero-logit gate)."""
    return 1.0 / (1.0 - alpha)


def additive_decay_mean(t) -> np.ndarray:
    r"""LightNet's additive decay (reconstructed, see module docstring): :math:`1 - \lambda_t = \delta_t / u_t`
    with :math:`u_t = \sum_{s \le t} \delta_s`. For exchangeable :math:`\delta_1..\delta_t` every
    :math:`\delta_s / u_t` has the same expectation and they sum to 1, so :math:`E[1 - \lambda_t] = 1/t` exactly
    (claim L4: the decay saturates, reviewer 1's point made exact)."""
    return 1.0 / np.asarray(t, np.float64)


def lrpe_score(q, k, delta, theta) -> float:
    r"""MD-LRPE (cosine form; xopes ``ops/lrpe/cosine/_md``, reconstructed): channel c of a d-vector belongs to
    axis :math:`a(c) = \lfloor c / \lceil d/m \rceil \rfloor` with frequency :math:`\theta_{c \bmod \lceil d/m
    \rceil}`, and :math:`\langle\phi(q_s), \phi(k_t)\rangle = \sum_c q_c k_c \cos(\theta_c (s - t)_{a(c)})`:
    a function of the index difference ``delta`` = s - t (length m) only (claim L5)."""
    q, k, theta = (np.asarray(a, np.float64) for a in (q, k, theta))
    d, per = q.shape[-1], theta.shape[0]
    c = np.arange(d)
    ang = theta[c % per] * np.asarray(delta, np.float64)[c // per]
    return float(np.sum(q * k * np.cos(ang)))
