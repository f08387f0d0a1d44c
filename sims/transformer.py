r"""ONE small pure-JAX transformer for every bigram-data topic (Guo et al. 2024's BB model).

Pre-LayerNorm blocks ``h = x + Attn(LN(x)); out = h + MLP(LN(h))``, learned absolute positions,
bias-free attention, optional ReLU MLP (4x), final LayerNorm, untied unembedding. Attention is softmax
or ReLU attention (``ReLU(scores) / number of visible keys``), or ``"gla"``: gated linear attention (Yang et al.
2024, Eq. 3) as the token mixer, :math:`o_t = q_t S_t`, :math:`S_t = \mathrm{Diag}(\alpha_t) S_{t-1} + k_t^\top
v_t`, per head, with Sec. 4.4's low-rank gate :math:`\alpha_t = \sigma(x_t W^1 W^2 + b)^{1/16}` (rank 16) and q
scaled by :math:`d_h^{-1/2}`, and GLA's per-head norm (parameter-free LayerNorm of each head's output before
:math:`W_O`; without it the residual stream overflows); no output gate, so that otherwise only the mixer differs
from the softmax block. Its weights ``attn`` are the effective attention matrix
:math:`A_{ts} = q_t (k_s \odot b_t / b_s)^\top` as shares :math:`|A_{ts}| / \sum_s |A_{ts}|` (``scores`` = A),
obtained from :func:`sims.linear_attention.gla` (log-space parallel form) with one-hot values. The same recurrence
with other gates (MQAR's comparison of linear-time mixers, Arora et al. 2023): ``"retnet"`` (a fixed decay per head,
:math:`\gamma_h = 1 - 2^{-5-h}`, RetNet's), ``"linear"`` (unit gates: plain linear attention) and ``"lightnet"``
(LightNet's additive decay, :func:`sims.lightnet.additive_decay`: keys softmax-normalised over the prefix); all with
the per-head norm. Params are a dict pytree;
``init(key, cfg)`` and ``apply(params, tokens, cfg, ...) -> (logits, intermediates)`` are pure and
vmappable over seeds.

Intermediates: per layer, attention scores before softmax/ReLU ``scores`` and weights ``attn``
(batch, heads, query, key), value states after W_o
``value`` (batch, heads, key, d) and the residual stream after the block ``resid`` (batch, pos, d).
Per-layer ablations as the Active-Dormant authors ran them (their ``model_args.no_attn``, ``no_ffn``,
``linear_ffn``): ``no_attn`` layers have no attention (no weights; zero intermediates), ``no_mlp`` layers no MLP,
``linear_mlp`` layers an MLP that is one bias-free d x d map after the LayerNorm.
Interventions for mechanism tests: ``zero_attn`` (drop the attention output), ``zero_mlp``,
``force_bos`` (a boolean (batch, pos) mask: those queries attend only to position 0). ``zero_attn`` and
``zero_mlp`` may be traced booleans, so that several interventions are one compiled pass scanned over flags
(``False`` as a Python bool adds nothing to the program; as a traced value it selects the unchanged output).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from sims.config import Config, param
from sims.lightnet import additive_decay
from sims.linear_attention import gla

# token mixers: softmax / ReLU attention, and the linear recurrences S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,
# o_t = q_t S_t (one GLA kernel, several gates): gla (data-dependent, low rank), retnet (a fixed decay per head,
# gamma_h = 1 - 2^(-5-h)), linear (unit gates), lightnet (LightNet's additive decay)
MIXERS = ("softmax", "relu", "gla", "retnet", "linear", "lightnet")
RECURRENT = ("gla", "retnet", "linear", "lightnet")

__all__ = ["TransformerConfig", "init", "apply"]


@dataclasses.dataclass(frozen=True)
class TransformerConfig(Config):
    vocab: int = param(67, ge=2, help="tokens (embedding rows and logits)")
    max_len: int = param(256, ge=1, help="longest sequence (rows of the positional embedding)")
    d_model: int = param(256, ge=1, help="residual width")
    n_layers: int = param(1, ge=1, help="transformer blocks")
    n_heads: int = param(1, ge=1, help="attention heads per block (divides d_model)")
    mlp: bool = param(True, help="an MLP in every block")
    attention: str = param("softmax", choices=MIXERS, help="the token mixer (module docstring)")
    init: str = param("torch", choices=("torch", "gpt2"),
                      help="torch: PyTorch defaults as the authors' code; gpt2: N(0, 0.02) embeddings")
    no_attn: tuple[int, ...] = param((), ge=0, unique=True, help="layers without attention (the authors' no_attn)")
    no_mlp: tuple[int, ...] = param((), ge=0, unique=True, help="layers without an MLP (the authors' no_ffn)")
    linear_mlp: tuple[int, ...] = param((), ge=0, unique=True,
                                        help="layers whose MLP is one d x d linear map (the authors' linear_ffn)")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        for name in ("no_attn", "no_mlp", "linear_mlp"):
            bad = [i for i in getattr(self, name) if i >= self.n_layers]
            if bad:
                raise ValueError(f"{name}: layer index {bad[0]} is out of range: must be < n_layers ({self.n_layers})")
        if set(self.linear_mlp) & set(self.no_mlp) or (self.linear_mlp and not self.mlp):
            raise ValueError("linear_mlp names layers that have no MLP (no_mlp, or mlp=False)")


def init(key, cfg: TransformerConfig):
    """Initial parameters. ``init="torch"`` reproduces the PyTorch defaults of the authors' BBM model:
    ``nn.Embedding`` ~ N(0, 1) (token and position), ``nn.Linear`` ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    ``init="gpt2"``: embeddings N(0, 0.02^2), linear N(0, 1/fan_in). The scale of the embeddings
    against the blocks' outputs decides whether an attention sink forms (see the BB figures).

    Two draws in all (one for the embeddings, one for every linear map, carved in a fixed order): each random
    call site is its own compiled kernel (~0.2 s of CPU compile each), and a draw per matrix (with its key splits)
    made 4 + 7 per layer of them."""
    d = cfg.d_model
    emb = 1.0 if cfg.init == "torch" else 0.02
    dense = [("unembed", d, cfg.vocab)]  # (name, fan_in, fan_out), in the order the draw is carved
    for i in range(cfg.n_layers):
        if i not in cfg.no_attn:
            dense += [((i, w), d, d) for w in ("wq", "wk", "wv", "wo")]
            if cfg.attention == "gla":  # the low-rank gate of GLA Sec. 4.4 (rank 16); zero bias: alpha = 0.5^(1/16)
                dense += [((i, "wg1"), d, 16), ((i, "wg2"), 16, d)]
        if cfg.mlp and i in cfg.linear_mlp:
            dense += [((i, "wl"), d, d)]
        elif cfg.mlp and i not in cfg.no_mlp:
            dense += [((i, "w1"), d, 4 * d), ((i, "w2"), 4 * d, d)]
    k_emb, k_dense = jax.random.split(key)
    z = jax.random.normal(k_emb, ((cfg.vocab + cfg.max_len) * d,)) * emb
    n_dense = sum(n_in * n_out for _, n_in, n_out in dense)
    if cfg.init == "torch":
        u = jax.random.uniform(k_dense, (n_dense,), minval=-1.0, maxval=1.0)
    else:
        u = jax.random.normal(k_dense, (n_dense,))
    mats, o = {}, 0
    for name, n_in, n_out in dense:
        mats[name] = u[o:o + n_in * n_out].reshape(n_in, n_out) / math.sqrt(n_in)
        o += n_in * n_out
    params = {
        "tok": z[:cfg.vocab * d].reshape(cfg.vocab, d),
        "pos": z[cfg.vocab * d:].reshape(cfg.max_len, d),
        "unembed": mats["unembed"],
        "ln_f": {"g": jnp.ones(d), "b": jnp.zeros(d)},
        "blocks": [],
    }
    for i in range(cfg.n_layers):
        blk = {}
        if i not in cfg.no_attn:
            blk.update(ln1={"g": jnp.ones(d), "b": jnp.zeros(d)}, **{w: mats[(i, w)] for w in ("wq", "wk", "wv", "wo")})
            if cfg.attention == "gla":
                blk.update(wg1=mats[(i, "wg1")], wg2=mats[(i, "wg2")], bg=jnp.zeros(d))
        if cfg.mlp and i in cfg.linear_mlp:
            blk.update(ln2={"g": jnp.ones(d), "b": jnp.zeros(d)}, wl=mats[(i, "wl")])
        elif cfg.mlp and i not in cfg.no_mlp:
            blk.update(ln2={"g": jnp.ones(d), "b": jnp.zeros(d)}, w1=mats[(i, "w1")], w2=mats[(i, "w2")])
        params["blocks"].append(blk)
    return params


def _ln(x, p, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / jnp.sqrt(v + eps) * p["g"] + p["b"]


def _sub_chunk(L: int) -> int:
    """The largest of 8, 4, 2, 1 dividing min(L, 32) (the chunk of the GLA mixer)."""
    return next(c for c in (8, 4, 2, 1) if min(L, 32) % c == 0)


def _mlp(x, blk, cfg, zero_mlp):
    """The block's MLP on the residual ``x`` (ReLU 4x, or one linear map for ``linear_mlp``; none for ``no_mlp``)."""
    if "w1" in blk:
        m = jax.nn.relu(_ln(x, blk["ln2"]) @ blk["w1"]) @ blk["w2"]
    elif "wl" in blk:
        m = _ln(x, blk["ln2"]) @ blk["wl"]
    else:
        return x
    return x + (m if zero_mlp is False else jnp.where(zero_mlp, jnp.zeros_like(m), m))


def _gates(hq, hk, h, blk, cfg):
    """(q, k, log alpha) of a recurrent mixer, each (b, h, L, dh) (see MIXERS)."""
    B, H, L, dh = hq.shape
    if cfg.attention == "gla":  # GLA Sec. 4.4: a low-rank data-dependent gate, temperature 16
        g = (jax.nn.log_sigmoid(h @ blk["wg1"] @ blk["wg2"] + blk["bg"]) / 16.0).reshape(B, L, H, dh)
        return hq, hk, jnp.swapaxes(g, 1, 2)
    if cfg.attention == "retnet":  # RetNet: gamma_h = 1 - 2^(-5-h), fixed
        lg = jnp.log1p(-(2.0 ** (-5.0 - jnp.arange(H, dtype=hq.dtype))))
        return hq, hk, jnp.broadcast_to(lg[None, :, None, None], hq.shape)
    if cfg.attention == "linear":
        return hq, hk, jnp.zeros_like(hq)
    kt, lg = additive_decay(hk)  # LightNet: keys softmax-normalised over the prefix, per channel
    return hq, kt, lg


def apply(params, tokens, cfg: TransformerConfig, *, zero_attn=False, zero_mlp=False, force_bos=None):
    """Logits (batch, pos, vocab) and intermediates (see module docstring)."""
    B, L = tokens.shape
    H = cfg.n_heads
    dh = cfg.d_model // H
    x = params["tok"][tokens] + params["pos"][:L]
    causal = jnp.tril(jnp.ones((L, L), bool))
    inter = {"scores": [], "attn": [], "value": [], "resid": []}
    for blk in params["blocks"]:
        if "wq" not in blk:  # a layer without attention (no_attn): the residual passes; zero intermediates
            zq = jnp.zeros((B, H, L, L), x.dtype)
            inter["scores"].append(zq)
            inter["attn"].append(zq)
            inter["value"].append(jnp.zeros((B, H, L, cfg.d_model), x.dtype))
            x = _mlp(x, blk, cfg, zero_mlp)
            inter["resid"].append(x)
            continue
        h = _ln(x, blk["ln1"])
        q = (h @ blk["wq"]).reshape(B, L, H, dh)
        k = (h @ blk["wk"]).reshape(B, L, H, dh)
        v = (h @ blk["wv"]).reshape(B, L, H, dh)
        if cfg.attention in RECURRENT:
            hq, hk = (jnp.swapaxes(a, 1, 2) for a in (q / math.sqrt(dh), k))  # (b, h, L, dh)
            hq, hk, hg = _gates(hq, hk, h, blk, cfg)
            eye = jnp.broadcast_to(jnp.eye(L, dtype=h.dtype), (B, H, L, L))
            s = gla(hq, hk, eye, hg, form="parallel")[0]  # (b, h, q, k): A, the effective attention matrix
        else:
            s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
        if cfg.attention in RECURRENT:
            w = jnp.abs(s) / jnp.maximum(jnp.sum(jnp.abs(s), -1, keepdims=True), 1e-30)  # shares of |A|
        elif cfg.attention == "softmax":
            w = jax.nn.softmax(jnp.where(causal, s, -jnp.inf), axis=-1)
        else:
            n_vis = jnp.arange(1, L + 1, dtype=s.dtype)[:, None]
            w = jnp.where(causal, jax.nn.relu(s), 0.0) / n_vis
        mix = s if cfg.attention in RECURRENT else w  # what multiplies the values (GLA: A itself, not normalised)
        if force_bos is not None:
            bos_only = jnp.zeros((L,)).at[0].set(1.0)
            w = jnp.where(force_bos[:, None, :, None], bos_only, w)
            mix = jnp.where(force_bos[:, None, :, None], bos_only, mix)
        wo = blk["wo"].reshape(H, dh, cfg.d_model)
        val = jnp.einsum("bkhd,hde->bhke", v, wo)  # value states after W_o, per head
        if cfg.attention in RECURRENT:
            hv = jnp.swapaxes(v, 1, 2)  # (b, h, L, dh)
            if force_bos is None:
                # o_t = sum_s A_ts v_s by the chunk form with secondary chunking (finite for every gate; its
                # gradient is 13x cheaper on a CPU than the recurrence's); A above is then only for the
                # intermediates, and XLA drops it where they are unused, e.g. in the training loss
                o = gla(hq, hk, hv, hg, form="chunk", chunk_size=min(L, 32), sub_chunk_size=_sub_chunk(L))[0]
            else:
                o = jnp.einsum("bhqk,bhkd->bhqd", mix, hv)
            # GLA's per-head norm (Sec. 4.4, parameter-free): without it the unnormalised sums grow until the
            # residual stream overflows float32 (seen: inf residual norms after 1500 AdamW steps at lr 1e-3)
            o = (o - o.mean(-1, keepdims=True)) / jnp.sqrt(o.var(-1, keepdims=True) + 1e-5)
            att_out = jnp.einsum("bhqd,hde->bqe", o, wo)
        else:
            att_out = jnp.einsum("bhqk,bhke->bqe", mix, val)
        if zero_attn is not False:
            att_out = jnp.where(zero_attn, jnp.zeros_like(att_out), att_out)
        x = _mlp(x + att_out, blk, cfg, zero_mlp)
        inter["scores"].append(s)
        inter["attn"].append(w)
        inter["value"].append(val)
        inter["resid"].append(x)
    logits = _ln(x, params["ln_f"]) @ params["unembed"]
    return logits, inter
