r"""Gated linear attention (Yang, Wang, Shen, Panda, Kim, ICML 2024, arXiv 2312.06635): a linear recurrence over a
matrix state, in every form.

GLA (Eq. 3, row vectors): :math:`S_t = \mathrm{Diag}(\alpha_t) S_{t-1} + k_t^\top v_t`, :math:`o_t = q_t S_t`,
:math:`\alpha_t = \exp(\log\alpha_t) \in (0, 1]^{d_k}`. :func:`gla` computes it five ways (``form``):

* ``"recurrent"``: the recurrence itself (``lax.scan`` over positions); on a CPU the fastest.
* ``"parallel"``: log-space scores, Eq. (4): :math:`P_{ij} = \sum_c q_{ic} k_{jc} \exp(\log b_{ic} - \log b_{jc})`
  for :math:`i \ge j` (:math:`b_t = \prod_{j \le t}\alpha_j`), every exponent <= 0, so finite for every gate;
  computed in blocks of queries so that memory is ``O(block L d_k)``.
* ``"naive_parallel"``: :math:`O = (((Q \odot B)(K / B)^\top) \odot M) V` (Sec. 4.1), kept to show why the paper
  calls it unstable: :math:`K / B` overflows float32 once :math:`-\log b_t > 88.72`.
* ``"chunk"``: the materialized chunkwise form of Sec. 4.2 (chunk states by a scan over chunks, then all chunks at
  once): inter-chunk :math:`(Q \odot \Lambda) S_{[i]}`, intra-chunk :math:`((Q\odot\Lambda)(K/\Lambda)^\top \odot
  M) V` by one matmul per chunk (finite iff the within-chunk cumulative log decay stays above -88.72), or, with
  ``sub_chunk_size``, secondary chunking (Sec. 4.3, Listing 1): off-diagonal sub-blocks by matmul with both factors
  anchored at the query sub-chunk's start (exponents <= 0), diagonal sub-blocks in log space (Eq. 4).

``L`` not a multiple of ``chunk_size`` is padded with zero keys/values and unit gates (outputs of the padding are
dropped; the final state is unchanged by them). Nothing scales ``q`` inside (fla scales by ``d_k^{-1/2}``; the
layer :func:`gla_layer` does).

LightNet's additive decay, a GLA with particular keys and gates, lives in :mod:`sims.lightnet`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FORMS",
    "gla",
    "fla_gates",
    "rel_rms",
    "GLAParams",
    "init_gla_layer",
    "gla_layer",
]

FORMS = ("recurrent", "parallel", "naive_parallel", "chunk")
_QUERY_BLOCK = 128  # queries per block of the log-space parallel form (memory block x L x d_k)


# --------------------------------------------------------------------------------------
# input checks (ValueError naming the parameter), done on shapes and, for concrete arrays, on values
# --------------------------------------------------------------------------------------
def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check(q, k, v, log_alpha, form, chunk_size, sub_chunk_size, initial_state):
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    for name, x in (("q", q), ("k", k), ("v", v), ("log_alpha", log_alpha)):
        if not hasattr(x, "shape") or x.ndim < 2:
            raise ValueError(f"{name} must be an array of shape (..., L, d), got {getattr(x, 'shape', type(x))}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"{name} must be a floating array, got dtype {x.dtype}")
    if not (q.shape == k.shape == log_alpha.shape):
        raise ValueError(f"q, k and log_alpha must have the same shape (..., L, d_k); got q {q.shape}, k {k.shape}, "
                         f"log_alpha {log_alpha.shape}")
    if v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"v must have shape (..., L, d_v) with the leading dims and L of q {q.shape[:-1]}; got "
                         f"{v.shape}")
    dts = {q.dtype, k.dtype, v.dtype, log_alpha.dtype}
    if len(dts) != 1:
        raise ValueError(f"q, k, v and log_alpha must share one dtype, got {sorted(map(str, dts))}")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if sub_chunk_size is not None:
        if not isinstance(sub_chunk_size, (int, np.integer)) or sub_chunk_size < 1 or chunk_size % sub_chunk_size:
            raise ValueError(f"sub_chunk_size must be a divisor of chunk_size ({chunk_size}), got {sub_chunk_size!r}")
    if initial_state is not None:
        want = q.shape[:-2] + (q.shape[-1], v.shape[-1])
        if initial_state.shape != want:
            raise ValueError(f"initial_state must have shape (..., d_k, d_v) = {want}, got {initial_state.shape}")
        if initial_state.dtype != q.dtype:
            raise ValueError(f"initial_state must have dtype {q.dtype}, got {initial_state.dtype}")
    if _is_concrete(log_alpha):
        mx = float(jnp.max(log_alpha)) if log_alpha.size else 0.0
        if not mx <= 0.0:  # NaN fails too
            raise ValueError(f"log_alpha must be <= 0 everywhere (gates alpha in (0, 1]); max is {mx}")


# --------------------------------------------------------------------------------------
# the forms
# --------------------------------------------------------------------------------------
def _recurrent(q, k, v, g, S0):
    def step(S, x):
        qt, kt, vt, gt = x
        S = jnp.exp(gt)[..., :, None] * S + kt[..., :, None] * vt[..., None, :]
        return S, jnp.einsum("...k,...kv->...v", qt, S)

    xs = tuple(jnp.moveaxis(a, -2, 0) for a in (q, k, v, g))
    S, o = jax.lax.scan(step, S0, xs)
    return jnp.moveaxis(o, 0, -2), S


def _parallel(q, k, v, g, S0):
    """Eq. (4) in blocks of ``_QUERY_BLOCK`` positions. Every exponent log b_i - log b_j (i >= j) is <= 0, and
    it is assembled from within-block cumulative sums plus a sum of whole-block totals taken from block j's
    start, never as the difference of two global cumulative sums: in float32 those reach |log b| ~ 10^3 at
    L = 2048 and their difference would carry an absolute error ~ 10^3 x 6e-8 into weights near 1."""
    L, dk = q.shape[-2:]
    Bq = min(_QUERY_BLOCK, L)
    n = -(-L // Bq)
    pad = n * Bq - L
    pw = [(0, 0)] * (q.ndim - 2) + [(0, pad), (0, 0)]
    q, k, v, g = (jnp.pad(a, pw) for a in (q, k, v, g))  # zero keys/values, unit gates: no effect
    lead = q.shape[:-2]
    lb = jnp.cumsum(g.reshape(lead + (n, Bq, dk)), axis=-2)  # within-block cumulative log decay
    T = lb[..., -1, :]  # (..., n, dk) block totals
    m = jnp.arange(n)
    F = jnp.cumsum(jnp.where((m[None, :] >= m[:, None])[:, :, None], T[..., None, :, :], 0.0), axis=-2)  # [b, m]
    # E[a, b] = sum_{b <= m < a} T_m (a = 0..n, b = 0..n-1): log b at block a's start minus at block b's start
    Fpad = jnp.concatenate([jnp.zeros_like(F[..., :1, :]), F], axis=-2)  # [b, a] = F[b, a-1], a = 0..n
    E = jnp.swapaxes(Fpad, -3, -2)  # (..., n + 1, n, dk): [a, b]
    E = jnp.where((jnp.arange(n + 1)[:, None] >= m[None, :])[:, :, None], E, -jnp.inf)
    Kb, Vb = k.reshape(lead + (n, Bq, dk)), v.reshape(lead + (n, Bq, v.shape[-1]))
    Qb = q.reshape(lead + (n, Bq, dk))
    pos = jnp.arange(n * Bq).reshape(n, Bq)

    def block(a):
        qa = jnp.take(Qb, a, axis=-3)  # (..., Bq, dk)
        la = jnp.take(lb, a, axis=-3)
        Ea = jnp.take(E, a, axis=-3)  # (..., n, dk)
        keep = (pos[a][:, None, None] >= pos[None, :, :])[..., None]  # (Bq, n, Bq, 1)
        e = la[..., :, None, None, :] - lb[..., None, :, :, :] + Ea[..., None, :, None, :]  # (..., Bq, n, Bq, dk)
        e = jnp.where(keep, e, -jnp.inf)
        P = jnp.einsum("...tc,...bsc,...tbsc->...tbs", qa, Kb, jnp.exp(e))
        return jnp.einsum("...tbs,...bsv->...tv", P, Vb)

    o = jax.lax.map(block, jnp.arange(n))  # (n, ..., Bq, dv)
    o = jnp.moveaxis(o, 0, -3).reshape(lead + (n * Bq, v.shape[-1]))
    wl = jnp.exp(E[..., n, :, None, :] - lb)  # (..., n, Bq, dk): exp(log b_L - log b_j)
    S = jnp.einsum("...bsc,...bsv->...cv", Kb * wl, Vb)
    if S0 is None:  # a zero initial state adds nothing (see gla: no dot with a zeros constant)
        return o[..., :L, :], S
    c = (E[..., :n, 0:1, :] + lb).reshape(lead + (n * Bq, dk))  # log b_i from the start (initial-state term)
    o = (o + jnp.einsum("...ic,...cv->...iv", q * jnp.exp(c), S0))[..., :L, :]
    return o, jnp.exp(E[..., n, 0, :])[..., :, None] * S0 + S


def _naive_parallel(q, k, v, g, S0):
    """(Q * B)(K / B)^T: K / B = K * exp(-log b) overflows float32 once -log b > 88.72 (the paper's point)."""
    L = q.shape[-2]
    c = jnp.cumsum(g, axis=-2)
    Qb, Kb = q * jnp.exp(c), k * jnp.exp(-c)
    M = jnp.tril(jnp.ones((L, L), q.dtype))
    o = jnp.einsum("...ij,...jv->...iv", jnp.einsum("...ic,...jc->...ij", Qb, Kb) * M, v)
    kv = jnp.einsum("...jc,...jv->...cv", Kb, v)
    if S0 is not None:  # None: zeros (see gla)
        o = o + jnp.einsum("...ic,...cv->...iv", Qb, S0)
        kv = S0 + kv
    S = jnp.exp(c[..., -1, :])[..., :, None] * kv
    return o, S


def _intra_matmul(Q, K, cl):
    """Within-chunk scores ((Q * Lambda)(K / Lambda)^T) * M, Lambda = exp(cl) (cl: within-chunk cumsum)."""
    C = Q.shape[-2]
    M = jnp.tril(jnp.ones((C, C), Q.dtype))
    return jnp.einsum("...ic,...jc->...ij", Q * jnp.exp(cl), K * jnp.exp(-cl)) * M


def _intra_secondary(Q, K, cl, c):
    """Within-chunk scores by secondary chunking (Sec. 4.3, Listing 1): sub-chunks of size c; off-diagonal blocks
    (query sub-chunk i > key sub-chunk j) by matmul with both factors anchored at z_i = cl at the end of sub-chunk
    i - 1 (q exp(cl - z_i), k exp(z_i - cl): exponents <= 0); diagonal blocks in log space (Eq. 4)."""
    C, dk = Q.shape[-2:]
    n = C // c
    lead = Q.shape[:-2]
    Qs, Ks, cs = (x.reshape(lead + (n, c, dk)) for x in (Q, K, cl))
    z = jnp.concatenate([jnp.zeros_like(cs[..., :1, -1, :]), cs[..., :-1, -1, :]], axis=-2)  # (..., n, dk)
    Qa = Qs * jnp.exp(cs - z[..., :, None, :])  # (..., n_i, c, dk)
    if n == 2:
        # the one off-diagonal block (i, j) = (1, 0) as a plain matmul. Workaround: with the batched (i, j) einsum
        # below, XLA's CPU backend (jaxlib 0.10.2, YNNPACK fusions) crashes with a segmentation fault on
        # jit(vmap(grad(...))) of this function when n = 2 (n = 3, 4 run; tests/test_linear_attention.py)
        o10 = jnp.einsum("...tc,...sc->...ts", Qa[..., 1, :, :],
                         Ks[..., 0, :, :] * jnp.exp(z[..., 1, None, :] - cs[..., 0, :, :]))
        zero = jnp.zeros_like(o10)
        off = jnp.stack([jnp.stack([zero, zero], -2), jnp.stack([o10, zero], -2)], -4)  # (..., n_i, c, n_j, c)
    else:
        below = jnp.arange(n)[:, None] > jnp.arange(n)[None, :]  # (i, j): j < i
        ek = jnp.where(below[:, :, None, None], z[..., :, None, None, :] - cs[..., None, :, :, :], -jnp.inf)
        Ka = Ks[..., None, :, :, :] * jnp.exp(ek)  # (..., n_i, n_j, c, dk)
        off = jnp.einsum("...itc,...ijsc->...itjs", Qa, Ka)  # (..., n_i, c, n_j, c)
    tri = (jnp.arange(c)[:, None] >= jnp.arange(c)[None, :])[..., None]
    ed = jnp.where(tri, cs[..., :, :, None, :] - cs[..., :, None, :, :], -jnp.inf)  # (..., n, c, c, dk)
    diag = jnp.einsum("...itc,...isc,...itsc->...its", Qs, Ks, jnp.exp(ed))  # (..., n, c, c)
    eye = jnp.eye(n, dtype=Q.dtype)
    A = off + jnp.einsum("...its,ij->...itjs", diag, eye)
    return A.reshape(lead + (C, C))


def _chunk(q, k, v, g, S0, C, c_sub):
    L = q.shape[-2]
    N = -(-L // C)
    pad = N * C - L
    if pad:  # zero keys/values and unit gates (log 1 = 0): outputs dropped, final state unchanged
        pw = [(0, 0)] * (q.ndim - 2) + [(0, pad), (0, 0)]
        q, k, v, g = (jnp.pad(a, pw) for a in (q, k, v, g))
    lead = q.shape[:-2]
    dv = v.shape[-1]
    Q, K, V, G = (a.reshape(lead + (N, C, a.shape[-1])) for a in (q, k, v, g))
    cl = jnp.cumsum(G, axis=-2)  # log Lambda (within-chunk cumulative log decay)
    last = cl[..., -1:, :]
    Kg = K * jnp.exp(last - cl)  # K * Gamma
    gamma = jnp.exp(last[..., 0, :])  # (..., N, dk)

    # phase 1: chunk states (sequential over chunks), materialized: S_[i] = state before chunk i
    def step(S, x):
        gm, kg, vv = x
        return gm[..., :, None] * S + jnp.einsum("...jc,...jv->...cv", kg, vv), S

    xs = tuple(jnp.moveaxis(a, -3 if a.ndim == len(lead) + 3 else -2, 0) for a in (gamma, Kg, V))
    S_final, S_before = jax.lax.scan(step, S0, xs)
    S_before = jnp.moveaxis(S_before, 0, -3)  # (..., N, dk, dv)

    # phase 2: every chunk at once
    o_inter = jnp.einsum("...nic,...ncv->...niv", Q * jnp.exp(cl), S_before)
    A = _intra_matmul(Q, K, cl) if c_sub is None else _intra_secondary(Q, K, cl, c_sub)
    o = o_inter + jnp.einsum("...nij,...njv->...niv", A, V)
    o = o.reshape(lead + (N * C, dv))[..., :L, :]
    return o, S_final


def gla(q, k, v, log_alpha, *, form: str = "chunk", chunk_size: int = 64, sub_chunk_size: int | None = None,
        initial_state=None):
    r"""Gated linear attention, Eq. (3): :math:`S_t = \mathrm{Diag}(\alpha_t) S_{t-1} + k_t^\top v_t`,
    :math:`o_t = q_t S_t`.

    Args:
      q, k, log_alpha: (..., L, d_k); v: (..., L, d_v); one floating dtype; ``log_alpha <= 0``.
      form: ``"recurrent"``, ``"parallel"`` (log space, Eq. 4), ``"naive_parallel"`` (unstable, Sec. 4.1) or
        ``"chunk"`` (Sec. 4.2; with ``sub_chunk_size`` the secondary chunking of Sec. 4.3).
      chunk_size: C of the chunk form (``L`` is padded up to a multiple of it).
      sub_chunk_size: c of the secondary chunking, a divisor of ``chunk_size``; ``None``: the intra-chunk part
        is one matmul per chunk (finite iff the within-chunk cumulative log decay stays above -88.72 in float32).
      initial_state: (..., d_k, d_v) or ``None`` (zeros).

    Returns ``(o, final_state)``: (..., L, d_v) and (..., d_k, d_v).
    Raises ``ValueError`` naming the parameter for a bad form, shapes, dtypes, chunk sizes or a positive gate.
    """
    _check(q, k, v, log_alpha, form, chunk_size, sub_chunk_size, initial_state)
    if form == "parallel":  # no initial state: its terms are left out, not computed from zeros; XLA's CPU
        # backend (jaxlib 0.10.2, YNNPACK fusions) computed a dot with a zeros constant as garbage (~1e27) under jit
        return _parallel(q, k, v, log_alpha, initial_state)
    if form == "naive_parallel":
        return _naive_parallel(q, k, v, log_alpha, initial_state)
    S0 = jnp.zeros(q.shape[:-2] + (q.shape[-1], v.shape[-1]), q.dtype) if initial_state is None else initial_state
    if form == "recurrent":
        return _recurrent(q, k, v, log_alpha, S0)
    return _chunk(q, k, v, log_alpha, S0, int(chunk_size), None if sub_chunk_size is None else int(sub_chunk_size))


def rel_rms(x, ref) -> float:
    """fla's statistic ||x - ref||_rms / ||ref||_rms in float64 (inf when x is not finite everywhere)."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    if not np.all(np.isfinite(x)):
        return np.inf
    return float(np.sqrt(np.mean((x - ref) ** 2)) / np.sqrt(np.mean(ref**2)))


def fla_gates(key, shape, normalizer: float, dtype=jnp.float32):
    """The gates of fla's tests: ``log alpha = logsigmoid(u) / normalizer``, ``u ~ U(0, 1)`` (larger normalizer:
    weaker decay; GLA's layer uses 16)."""
    if not normalizer > 0:
        raise ValueError(f"normalizer must be > 0, got {normalizer}")
    return (jax.nn.log_sigmoid(jax.random.uniform(key, shape, dtype)) / normalizer).astype(dtype)


# --------------------------------------------------------------------------------------
# the GLA layer (Sec. 4.4)
# --------------------------------------------------------------------------------------
class GLAParams(NamedTuple):
    """One GLA layer: d_k = d/2, d_v = d (Sec. 4.4), low-rank gate of rank 16; 4 d^2 + 25.5 d parameters."""

    wq: jax.Array  # (d, d/2)
    wk: jax.Array  # (d, d/2)
    wv: jax.Array  # (d, d)
    wo: jax.Array  # (d, d)
    wr: jax.Array  # (d, d) output (swish) gate
    br: jax.Array  # (d,)
    wg1: jax.Array  # (d, 16) low-rank gate
    wg2: jax.Array  # (16, d/2)
    bg: jax.Array  # (d/2,)


def init_gla_layer(key, d: int, *, rank: int = 16, dtype=jnp.float32) -> GLAParams:
    """Parameters of one layer (``d`` even): linear maps ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases zero."""
    if not isinstance(d, int) or d < 2 or d % 2:
        raise ValueError(f"d must be an even integer >= 2, got {d!r}")
    ks = jax.random.split(key, 7)

    def dense(k, n_in, n_out):
        return (jax.random.uniform(k, (n_in, n_out), dtype, -1.0, 1.0) / math.sqrt(n_in)).astype(dtype)

    h = d // 2
    return GLAParams(dense(ks[0], d, h), dense(ks[1], d, h), dense(ks[2], d, d), dense(ks[3], d, d),
                     dense(ks[4], d, d), jnp.zeros(d, dtype), dense(ks[5], d, rank), dense(ks[6], rank, h),
                     jnp.zeros(h, dtype))


def gla_layer(p: GLAParams, x, *, n_heads: int = 1, tau: float = 16.0, form: str = "chunk", chunk_size: int = 64,
              sub_chunk_size: int | None = 16, eps: float = 1e-5):
    r"""Sec. 4.4: per head :math:`o^h_t = q^h_t S^h_t`; :math:`o'_t = \mathrm{concat}_h \mathrm{LN}(o^h_t)`
    (parameter-free), :math:`r_t = \mathrm{Swish}(x_t W_r + b_r)`, :math:`y_t = (r_t \odot o'_t) W_O`;
    gate :math:`\alpha_t = \sigma(x_t W^1_\alpha W^2_\alpha + b_\alpha)^{1/\tau}` (log: logsigmoid / tau);
    q scaled by :math:`d_k^{-1/2}` per head (as fla). ``x``: (..., L, d). Returns (y, log_alpha)."""
    d = x.shape[-1]
    h = p.wq.shape[-1]
    if n_heads < 1 or h % n_heads or d % n_heads:
        raise ValueError(f"n_heads must divide d_k = {h} and d = {d}, got {n_heads}")
    dk, dv = h // n_heads, d // n_heads
    split = lambda a, m: jnp.moveaxis(a.reshape(a.shape[:-1] + (n_heads, m)), -2, -3)  # (..., H, L, m)
    q = split(x @ p.wq, dk) / math.sqrt(dk)
    k = split(x @ p.wk, dk)
    v = split(x @ p.wv, dv)
    log_alpha = jax.nn.log_sigmoid(x @ p.wg1 @ p.wg2 + p.bg) / tau
    o, _ = gla(q, k, v, split(log_alpha, dk), form=form, chunk_size=chunk_size, sub_chunk_size=sub_chunk_size)
    m = o.mean(-1, keepdims=True)
    o = (o - m) / jnp.sqrt(((o - m) ** 2).mean(-1, keepdims=True) + eps)
    o = jnp.moveaxis(o, -3, -2).reshape(x.shape[:-1] + (d,))
    r = jax.nn.silu(x @ p.wr + p.br)
    return (r * o) @ p.wo, log_alpha
