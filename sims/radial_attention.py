r"""Radial attention (Li et al. 2025, arXiv 2506.19852) as the authors run it, and masked attention in JAX.

* :func:`block_mask`: a port of the authors' block mask (mit-han-lab/radial-attention, ``radial_attn/attn_mask.py``
  at 72788d4, ``gen_log_mask_shrinked``): per frame pair a token window of half-width
  ``w(d) = max(2^bitlen(s) / 2^bitlen(d) * decay_factor, 128)`` (full frame for d <= 1; Wan: frame 0 is a dense
  sink), frame pairs beyond the 128-token window kept only when ``d % (128 / (2^bitlen(s) / 2^bitlen(d))) == 0``,
  then shrunk to 128 x 128 blocks by ``shrinkMaskStrict`` (a block is kept iff > 60% of its non-empty columns have
  density > 1/3). The authors build it with an O(f^2) Python loop over frame pairs; here the shrunk block of a
  frame pair depends only on (distance, the two block offsets, sink), so it is computed once per such key.
  Trailing tokens (``n`` not a multiple of the block) are dropped as in the authors' code (``seqlen //
  block_size``); text tokens (Hunyuan) are attended densely, as there.
* :func:`attention_dense_masked`: ``jax.nn.dot_product_attention`` with a token mask (the correctness reference).
* :func:`attention_block_sparse`: a gather form: every query block gathers the K/V blocks its row keeps (rows keep
  nearly equal numbers of blocks, so they are padded to the row maximum) and runs a softmax over them; the
  compute is proportional to the kept blocks.
* :func:`planted_scores`: attention logits of planted spatiotemporal energy decay
  :math:`\log p \propto -\alpha |\Delta f| - \beta |\Delta k|` (the paper's Sec. 4.1 model), for the error claims.

The token-level mask of Eq. (4), its exact count and the error identities are in :mod:`theory.radial_attention`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["REVISIONS", "block_mask", "sparsity", "token_mask_from_blocks", "attention_dense_masked",
           "attention_block_sparse", "planted_scores", "MODEL_TYPES", "wan_geometry", "hunyuan_geometry"]

MODEL_TYPES = ("wan", "hunyuan")


def wan_geometry(height: int, width: int, frames: int) -> tuple[int, int]:
    """(latent frames, tokens per frame) of Wan 2.1 (VAE 4x time, 8x space, patch 2): 1 + (F - 1) // 4 frames
    (the authors' scripts use 69 frames -> 18), (H / 16)(W / 16) tokens."""
    return 1 + (frames - 1) // 4, (height // 16) * (width // 16)


def hunyuan_geometry(height: int, width: int, frames: int) -> tuple[int, int]:
    """(latent frames, tokens per frame) of HunyuanVideo: 1 + (F - 1) // 4 frames, (H / 16)(W / 16) tokens."""
    return 1 + (frames - 1) // 4, (height // 16) * (width // 16)


def _check(frames, tokens_per_frame, block_size, decay_factor, model_type):
    for name, v in (("frames", frames), ("tokens_per_frame", tokens_per_frame), ("block_size", block_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not (isinstance(decay_factor, (int, float)) and math.isfinite(decay_factor) and decay_factor > 0):
        raise ValueError(f"decay_factor must be > 0, got {decay_factor!r}")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")


REVISIONS = ("72788d4", "3f66894")  # HEAD (2025-11-11); the first commit .. af371ca (2025-06-25 .. 10-30)


def _window(d: int, s: int, decay_factor: float, block: int, half_neighbour: bool) -> float:
    if d == 1 and half_neighbour:  # Wan before 72788d4: half-width window between neighbouring frames
        return s // 2
    if d <= 1:  # full attention within a frame and (HEAD; Hunyuan always) between neighbours
        return s
    decay_length = 2 ** s.bit_length() / 2 ** d.bit_length() * decay_factor
    return decay_length if decay_length >= block else block


def _split_keep(d: int, s: int, block: int) -> bool:
    decay_length = 2 ** s.bit_length() / 2 ** d.bit_length()
    if decay_length >= block:
        return True
    return d % int(block / decay_length) == 0


def _shrink(m: np.ndarray, block: int) -> np.ndarray:
    n = m.shape[0] // block
    m = m[: n * block, : n * block].reshape(n, block, n, block)
    col = m.sum(axis=1) / block  # (row block, col block, column): column densities
    nonzero = (col > 0).sum(-1)
    high = (col > 1 / 3).sum(-1)
    return high / (nonzero + 1e-9) > 0.6


def _shrink_band(rr: int, rc: int, s: int, w: float, block: int) -> np.ndarray:
    """``_shrink`` of the padded frame-pair mask (an s x s band |col - row| <= w placed at offset (rr, rc)) computed
    from interval lengths instead of the (rr + nb B) x (rc + nb B) array: the number of kept rows of a column in a
    row block is the overlap of three intervals. Equal to the array version (tested)."""
    nb = (s - 1) // block + 1
    rows, cols = rr + nb * block, rc + nb * block
    n_r, n_c = rows // block, cols // block
    c = np.arange(n_c * block)  # padded column index
    R = np.arange(n_r)[:, None]
    x = c[None, :] - rc  # local column
    wi = int(math.floor(w))
    lo = np.maximum(np.maximum(R * block, rr), rr + x - wi)  # (row block, column)
    hi = np.minimum(np.minimum((R + 1) * block - 1, rr + s - 1), rr + x + wi)
    cnt = np.where((x >= 0) & (x < s), np.maximum(hi - lo + 1, 0), 0)  # (row block, column)
    col = cnt.reshape(n_r, n_c, block) / block
    return (col > 1 / 3).sum(-1) / ((col > 0).sum(-1) + 1e-9) > 0.6


@functools.lru_cache(maxsize=4096)
def _pair_blocks(d: int, rr: int, rc: int, s: int, decay_factor: float, block: int, sink: bool,
                 half_neighbour: bool) -> np.ndarray:
    if sink:
        w = float(s)
    elif _split_keep(d, s, block):
        w = _window(d, s, decay_factor, block, half_neighbour)
    else:
        w = -1.0  # nothing kept
    return _shrink_band(rr, rc, s, w, block)


def _pair_blocks_dense(d, rr, rc, s, decay_factor, block, sink, half_neighbour):
    """The authors' construction (the token mask of the pair padded, then ``shrinkMaskStrict``), for the tests."""
    if sink:
        local = np.ones((s, s), bool)
    elif _split_keep(d, s, block):
        w = _window(d, s, decay_factor, block, half_neighbour)
        idx = np.arange(s)
        local = np.abs(idx[None, :] - idx[:, None]) <= w
    else:
        local = np.zeros((s, s), bool)
    nb = (s - 1) // block + 1
    pad = np.zeros((rr + nb * block, rc + nb * block), bool)
    pad[rr:rr + s, rc:rc + s] = local
    return _shrink(pad, block)


def block_mask(frames: int, tokens_per_frame: int, *, decay_factor: float, model_type: str = "wan",
               block_size: int = 128, text_tokens: int = 0, revision: str = "72788d4") -> np.ndarray:
    """The authors' block mask (bool, (n_blocks, n_blocks), n = frames * tokens_per_frame + text_tokens): see the
    module docstring. ``model_type="wan"``: frame 0 is a dense sink; ``"hunyuan"``: no sink. ``revision``:
    ``"72788d4"`` (HEAD) or ``"3f66894"`` (the code until af371ca, 2025-06-25 .. 10-30: Wan's neighbouring frames
    used a half-frame window; users' sparsity reports of that period come from it)."""
    _check(frames, tokens_per_frame, block_size, decay_factor, model_type)
    if revision not in REVISIONS:
        raise ValueError(f"revision must be one of {REVISIONS}, got {revision!r}")
    half = revision == "3f66894" and model_type == "wan"
    f, s, B = int(frames), int(tokens_per_frame), int(block_size)
    video = f * s
    n_b = (video + int(text_tokens)) // B
    out = np.zeros((n_b, n_b), bool)
    border = video // B
    out[border:] = True
    out[:, border:] = True
    for i in range(f):
        for j in range(f):
            d = abs(i - j)
            blk = _pair_blocks(d, (i * s) % B, (j * s) % B, s, float(decay_factor), B, j == 0 and model_type == "wan",
                               half)
            r0, c0 = (i * s) // B, (j * s) // B
            r1, c1 = min(r0 + blk.shape[0], n_b), min(c0 + blk.shape[1], n_b)
            out[r0:r1, c0:c1] |= blk[: r1 - r0, : c1 - c0]
    return out


def sparsity(bm: np.ndarray) -> float:
    """The authors' printed "mask sparsity": the fraction of blocks NOT computed."""
    return float(1.0 - bm.sum() / bm.size)


def token_mask_from_blocks(bm: np.ndarray, block: int) -> np.ndarray:
    return np.repeat(np.repeat(bm, block, 0), block, 1)


def attention_dense_masked(q, k, v, mask):
    """Softmax attention restricted to ``mask`` (n, n) by ``jax.nn.dot_product_attention``; q, k, v (B, n, H, d)."""
    return jax.nn.dot_product_attention(q, k, v, mask=jnp.asarray(mask)[None, None])


def _gather_plan(bm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query block, the indices of its kept key blocks padded to the row maximum, and their validity."""
    counts = bm.sum(1)
    width = int(counts.max())
    idx = np.zeros((bm.shape[0], width), np.int32)
    valid = np.zeros((bm.shape[0], width), bool)
    for r in range(bm.shape[0]):
        cols = np.nonzero(bm[r])[0]
        idx[r, : cols.size] = cols
        valid[r, : cols.size] = True
    return idx, valid


def attention_block_sparse(q, k, v, bm: np.ndarray, block: int):
    """Block-sparse softmax attention by gathering: q, k, v (B, n, H, d) with n = blocks * block; ``bm`` the
    (blocks, blocks) mask. Work ~ (kept blocks per row, padded to the max) x block^2 x d per query block."""
    Bsz, n, H, d = q.shape
    nb = n // block
    if nb * block != n or bm.shape != (nb, nb):
        raise ValueError(f"the sequence ({n}) must be {bm.shape[0]} blocks of {block} tokens (block mask {bm.shape})")
    idx, valid = _gather_plan(np.asarray(bm, bool))
    qb = q.reshape(Bsz, nb, block, H, d)
    kb = k.reshape(Bsz, nb, block, H, d)
    vb = v.reshape(Bsz, nb, block, H, d)
    kg = kb[:, idx]  # (B, nb, width, block, H, d)
    vg = vb[:, idx]
    s = jnp.einsum("brqhd,brwkhd->brhqwk", qb, kg) / math.sqrt(d)
    s = jnp.where(jnp.asarray(valid)[None, :, None, None, :, None], s, -jnp.inf)
    s = s.reshape(s.shape[:4] + (-1,))
    p = jax.nn.softmax(s, axis=-1).reshape(s.shape[:4] + idx.shape[1:2] + (block,))
    o = jnp.einsum("brhqwk,brwkhd->brqhd", p, vg)
    return o.reshape(Bsz, n, H, d)


def planted_scores(frames: int, tokens_per_frame: int, alpha: float, beta: float, query: int | None = None):
    r"""(n, n) logits :math:`-\alpha |i - j| - \beta |k - l|` (tokens (i, k), (j, l)), or only row ``query`` (n,)
    (no n x n array): a softmax over a row gives the planted spatiotemporal energy decay of Sec. 4.1 with
    :math:`C_{rel} = 1`."""
    f, s = int(frames), int(tokens_per_frame)
    fj, kj = np.repeat(np.arange(f), s), np.tile(np.arange(s), f)
    fi, ki = (fj[:, None], kj[:, None]) if query is None else (fj[query], kj[query])
    return -alpha * np.abs(fi - fj) - beta * np.abs(ki - kj)
