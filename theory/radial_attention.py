r"""Radial attention (Li et al. 2025, arXiv 2506.19852): the static O(n log n) mask of video diffusion attention,
its exact count, its band structure, and the error of a masked softmax. NumPy only.

The paper's text was not retrievable here. What each formula rests on:

* the mask, Eq. (4), as quoted by two secondary write-ups (``../shared/research/linear_attention.md`` section 3):
  tokens :math:`(i, k)` = (frame, flattened spatial index), :math:`n = f s`,
  :math:`r = \lfloor \log_2 \max(|i - j|, 1) \rfloor`, :math:`\tilde M_{ijkl} = 0` (kept) iff
  :math:`[2^r \le s \text{ and } |k - l| + 1 \le s / 2^r]` or
  :math:`[|i - j| \bmod \lceil 2^r / s \rceil = 0 \text{ and } k = l]`, plus (``sink=True``) every query attends
  to all of frame 0 (the attention sink of the authors' Wan code);
* the count :func:`nnz` is derived here exactly from that statement (a sum over frame distances);
* the complexity bound "nnz <= 4 s^2 f log2 f" (App. A.1 as quoted): :func:`quoted_nnz_bound`;
* the error bound of Sec. 4.2 as quoted: :func:`quoted_error_bound`. A toy violates it (claim R5): see the figure;
* the identity :math:`\|\tilde p - p\|_1 = 2 \times` (mass outside the mask) for a renormalised masked softmax is
  elementary (derived in :func:`renormalised_l1`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mask", "mask_row", "nnz", "pair_count", "band_nnz", "density", "quoted_nnz_bound", "quoted_error_bound",
           "predicted_log_dropped", "renormalised_l1", "check_geometry"]


def check_geometry(frames, tokens_per_frame) -> None:
    """ValueError naming the parameter unless both are integers >= 1."""
    for name, v in (("frames", frames), ("tokens_per_frame", tokens_per_frame)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def _r(d):
    return np.floor(np.log2(np.maximum(np.abs(d), 1))).astype(np.int64)


def mask(frames: int, tokens_per_frame: int, *, sink: bool = False) -> np.ndarray:
    r"""Eq. (4) at token level: a bool (n, n) array, True = kept (non-causal; row = query (i, k), column = key
    (j, l), token index = frame * s + spatial index)."""
    check_geometry(frames, tokens_per_frame)
    f, s = int(frames), int(tokens_per_frame)
    fi = np.repeat(np.arange(f), s)
    ki = np.tile(np.arange(s), f)
    d = np.abs(fi[:, None] - fi[None, :])
    r = _r(d)
    p2 = 2.0**r
    dk = np.abs(ki[:, None] - ki[None, :])
    near = (p2 <= s) & (dk + 1 <= s / p2)
    step = np.ceil(p2 / s).astype(np.int64)
    far = (d % step == 0) & (dk == 0)
    m = near | far
    if sink:
        m |= (fi == 0)[None, :]
    return m


def mask_row(frames: int, tokens_per_frame: int, i: int, k: int, *, sink: bool = False) -> np.ndarray:
    """Row (i * s + k) of :func:`mask` (query frame i, spatial index k) as a bool (n,) array, without the n x n
    array (for error measurements at large s)."""
    check_geometry(frames, tokens_per_frame)
    f, s = int(frames), int(tokens_per_frame)
    fj, lj = np.repeat(np.arange(f), s), np.tile(np.arange(s), f)
    d = np.abs(i - fj)
    p2 = 2.0 ** _r(d)
    dk = np.abs(k - lj)
    m = ((p2 <= s) & (dk + 1 <= s / p2)) | ((d % np.ceil(p2 / s).astype(np.int64) == 0) & (dk == 0))
    return m | (fj == 0) if sink else m


def pair_count(d: int, s: int) -> int:
    """Kept (k, l) pairs of one ordered frame pair at frame distance ``d`` (exact integer)."""
    r = int(math.floor(math.log2(max(d, 1))))
    if 2**r <= s:
        m = s // 2**r - 1  # |k - l| <= m  (|k - l| + 1 <= s / 2^r, integers)
        return s * (2 * m + 1) - m * (m + 1)
    return s if d % (-(-(2**r) // s)) == 0 else 0


def nnz(frames: int, tokens_per_frame: int, *, sink: bool = False) -> int:
    r"""Kept entries of :func:`mask` in closed form: :math:`\sum_d m(d)\, c(d)` with :math:`m(0) = f`,
    :math:`m(d) = 2 (f - d)` ordered frame pairs at distance d >= 1 and :math:`c(d)` = :func:`pair_count`; with
    the sink, every query frame i >= 1 gets all :math:`s^2` pairs with frame 0 (adds :math:`s^2 - c(i)`). Exact
    Python integers, O(f) time: 1e3 frames x 4e3 tokens is instant."""
    check_geometry(frames, tokens_per_frame)
    f, s = int(frames), int(tokens_per_frame)
    total = f * pair_count(0, s) + sum(2 * (f - d) * pair_count(d, s) for d in range(1, f))
    if sink:
        total += sum(s * s - pair_count(i, s) for i in range(1, f))
    return total


def band_nnz(frames: int, tokens_per_frame: int) -> dict[int, int]:
    """Kept entries per band r (frame distances 2^r <= d < 2^(r+1); band 0 also holds d = 0), without the sink."""
    check_geometry(frames, tokens_per_frame)
    f, s = int(frames), int(tokens_per_frame)
    out: dict[int, int] = {}
    for d in range(f):
        r = int(math.floor(math.log2(max(d, 1))))
        out[r] = out.get(r, 0) + (f if d == 0 else 2 * (f - d)) * pair_count(d, s)
    return out


def density(frames: int, tokens_per_frame: int, *, sink: bool = False) -> float:
    """nnz / n^2."""
    n = frames * tokens_per_frame
    return nnz(frames, tokens_per_frame, sink=sink) / n / n


def quoted_nnz_bound(frames: int, tokens_per_frame: int) -> float:
    r"""App. A.1 as quoted: :math:`\mathrm{nnz} \le 4 s^2 f \log_2 f` (= :math:`4 s n (\log_2 n - \log_2 s)`)."""
    return 4.0 * tokens_per_frame**2 * frames * math.log2(max(frames, 2))


def quoted_error_bound(alpha: float, beta: float, s: int, c_rel: float = 1.0) -> float:
    r"""Sec. 4.2 as quoted: :math:`\|\tilde p - p\|_1 \le C_{rel} [8 e^{-\beta(s/2+1)} / ((1-e^{-\alpha})
    (1-e^{-\beta})) + 4 (1+e^{-\beta})/(1-e^{-\beta}) \cdot e^{-\alpha(s+1)}/(1-e^{-\alpha})]`."""
    ea, eb = math.exp(-alpha), math.exp(-beta)
    return c_rel * (8 * math.exp(-beta * (s / 2 + 1)) / ((1 - ea) * (1 - eb))
                    + 4 * (1 + eb) / (1 - eb) * math.exp(-alpha * (s + 1)) / (1 - ea))


def predicted_log_dropped(alpha: float, beta: float, s: int, r_max: int = 64) -> float:
    r"""The exponent that governs the mass dropped by the mask under planted decay
    :math:`p \propto e^{-\alpha|\Delta f| - \beta|\Delta k|}`: band r keeps frame distance ~ :math:`2^r` only within
    spatial distance ~ :math:`s / 2^r`, so the largest dropped weight is ~ :math:`\exp(-\min_r(\alpha 2^r +
    \beta s / 2^r))` (~ :math:`\exp(-2\sqrt{\alpha\beta s})`: sub-exponential in s). Returns the min (>= 0)."""
    return min(alpha * 2.0**r + beta * s / 2.0**r for r in range(r_max))


def renormalised_l1(p: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    r"""(:math:`\|\tilde p - p\|_1`, :math:`2 \times` mass outside) for one attention row ``p`` (sums to 1) and
    its mask ``m``: :math:`\tilde p = p m / \sum p m`, so inside :math:`|\tilde p - p| = p (1/P_{in} - 1)` sums to
    :math:`1 - P_{in}` and outside it is :math:`p`, summing to :math:`P_{out} = 1 - P_{in}`: the L1 error is
    exactly :math:`2 P_{out}` (claim R4)."""
    p = np.asarray(p, np.float64)
    m = np.asarray(m, bool)
    pin = p[m].sum()
    pt = np.where(m, p / pin, 0.0)
    return float(np.abs(pt - p).sum()), float(2 * p[~m].sum())
