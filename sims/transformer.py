"""ONE small pure-JAX transformer for every bigram-data topic (Guo et al. 2024's BB model).

Pre-LayerNorm blocks ``h = x + Attn(LN(x)); out = h + MLP(LN(h))``, learned absolute positions,
bias-free attention, optional ReLU MLP (4x), final LayerNorm, untied unembedding. Attention is softmax
or ReLU attention (``ReLU(scores) / number of visible keys``). Params are a dict pytree;
``init(key, cfg)`` and ``apply(params, tokens, cfg, ...) -> (logits, intermediates)`` are pure and
vmappable over seeds.

Intermediates: per layer, attention scores before softmax/ReLU ``scores`` and weights ``attn``
(batch, heads, query, key), value states after W_o
``value`` (batch, heads, key, d) and the residual stream after the block ``resid`` (batch, pos, d).
Interventions for mechanism tests: ``zero_attn`` (drop the attention output), ``zero_mlp``,
``force_bos`` (a boolean (batch, pos) mask: those queries attend only to position 0).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from sims.config import check_fields

__all__ = ["TransformerConfig", "init", "apply"]


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    vocab: int = 67
    max_len: int = 256
    d_model: int = 256
    n_layers: int = 1
    n_heads: int = 1
    mlp: bool = True
    attention: str = "softmax"  # or "relu"
    init: str = "torch"  # "torch": PyTorch defaults as the authors' code; "gpt2": N(0, 0.02) embeddings

    def __post_init__(self):
        check_fields(self)  # types, finiteness and ranges of every field (sims.config)
        if self.vocab < 2 or self.max_len < 1 or self.n_layers < 1 or self.n_heads < 1:
            raise ValueError("vocab >= 2, max_len >= 1, n_layers >= 1, n_heads >= 1 required")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.attention not in ("softmax", "relu"):
            raise ValueError(f"attention must be 'softmax' or 'relu', got {self.attention!r}")
        if self.init not in ("torch", "gpt2"):
            raise ValueError(f"init must be 'torch' or 'gpt2', got {self.init!r}")


def init(key, cfg: TransformerConfig):
    """Initial parameters. ``init="torch"`` reproduces the PyTorch defaults of the authors' BBM model:
    ``nn.Embedding`` ~ N(0, 1) (token and position), ``nn.Linear`` ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    ``init="gpt2"``: embeddings N(0, 0.02^2), linear N(0, 1/fan_in). The scale of the embeddings
    against the blocks' outputs decides whether an attention sink forms (see the BB figures)."""
    d = cfg.d_model
    keys = jax.random.split(key, 3 + cfg.n_layers)
    emb = 1.0 if cfg.init == "torch" else 0.02

    def _dense(k, n_in, n_out):
        if cfg.init == "torch":
            return jax.random.uniform(k, (n_in, n_out), minval=-1.0, maxval=1.0) / math.sqrt(n_in)
        return jax.random.normal(k, (n_in, n_out)) / math.sqrt(n_in)

    params = {
        "tok": jax.random.normal(keys[0], (cfg.vocab, d)) * emb,
        "pos": jax.random.normal(keys[1], (cfg.max_len, d)) * emb,
        "unembed": _dense(keys[2], d, cfg.vocab),
        "ln_f": {"g": jnp.ones(d), "b": jnp.zeros(d)},
        "blocks": [],
    }
    for i in range(cfg.n_layers):
        k = jax.random.split(keys[3 + i], 6)
        blk = {"ln1": {"g": jnp.ones(d), "b": jnp.zeros(d)},
               "wq": _dense(k[0], d, d), "wk": _dense(k[1], d, d), "wv": _dense(k[2], d, d), "wo": _dense(k[3], d, d)}
        if cfg.mlp:
            blk["ln2"] = {"g": jnp.ones(d), "b": jnp.zeros(d)}
            blk["w1"] = _dense(k[4], d, 4 * d)
            blk["w2"] = _dense(k[5], 4 * d, d)
        params["blocks"].append(blk)
    return params


def _ln(x, p, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / jnp.sqrt(v + eps) * p["g"] + p["b"]


def apply(params, tokens, cfg: TransformerConfig, *, zero_attn=False, zero_mlp=False, force_bos=None):
    """Logits (batch, pos, vocab) and intermediates (see module docstring)."""
    B, L = tokens.shape
    H = cfg.n_heads
    dh = cfg.d_model // H
    x = params["tok"][tokens] + params["pos"][:L]
    causal = jnp.tril(jnp.ones((L, L), bool))
    inter = {"scores": [], "attn": [], "value": [], "resid": []}
    for blk in params["blocks"]:
        h = _ln(x, blk["ln1"])
        q = (h @ blk["wq"]).reshape(B, L, H, dh)
        k = (h @ blk["wk"]).reshape(B, L, H, dh)
        v = (h @ blk["wv"]).reshape(B, L, H, dh)
        s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
        if cfg.attention == "softmax":
            w = jax.nn.softmax(jnp.where(causal, s, -jnp.inf), axis=-1)
        else:
            n_vis = jnp.arange(1, L + 1, dtype=s.dtype)[:, None]
            w = jnp.where(causal, jax.nn.relu(s), 0.0) / n_vis
        if force_bos is not None:
            bos_only = jnp.zeros((L,)).at[0].set(1.0)
            w = jnp.where(force_bos[:, None, :, None], bos_only, w)
        wo = blk["wo"].reshape(H, dh, cfg.d_model)
        val = jnp.einsum("bkhd,hde->bhke", v, wo)  # value states after W_o, per head
        att_out = jnp.einsum("bhqk,bhke->bqe", w, val)
        if zero_attn:
            att_out = jnp.zeros_like(att_out)
        x = x + att_out
        if cfg.mlp:
            m = jax.nn.relu(_ln(x, blk["ln2"]) @ blk["w1"]) @ blk["w2"]
            x = x + (jnp.zeros_like(m) if zero_mlp else m)
        inter["scores"].append(s)
        inter["attn"].append(w)
        inter["value"].append(val)
        inter["resid"].append(x)
    logits = _ln(x, params["ln_f"]) @ params["unembed"]
    return logits, inter
