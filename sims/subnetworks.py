r"""Bigram subnetworks by continuous sparsification (Chang & Bergen 2025, arXiv 2504.15471) in a toy whose full
behaviour is NOT bigram: a 2-layer Bigram-Backcopy transformer (:mod:`sims.bigram_backcopy`; it copies after
triggers), with the TRUE bigram distribution :math:`P[x_n, :]` as the subnetwork's target.

Method (the paper's, via its code ``circuit_training_utils.py``): one real mask logit :math:`s` per entry of
every maskable matrix inside the blocks (attention Q, K, V, O and MLP in/out), soft mask
:math:`m = \sigma(T s)`, :math:`s_0 = 0`, :math:`T` multiplied by ``temp_growth`` every step; embeddings,
unembedding and LayerNorms never masked (the model has no biases); base weights frozen. Loss

.. math:: \mathcal L(s) = \mathbb E_n\Big[-\sum_v \pi_n(v) \log p^{(m)}(v \mid x_{\le n})\Big]
          + \frac{\lambda}{N} \sum_i \sigma(T s_i),

with :math:`\pi_n = P[x_n, :]` (``target="bigram"``; at the BOS position the law of :math:`x_1`) or the full
model's own output (``target="model"``: the "optimal pruning" subnetwork). Final mask: keep iff :math:`s > 0`.
Training stops (the state is frozen) once fewer than ``undecided_stop`` of the kept masks are undecided
(:math:`0.1 < m < 0.9`; the record ``undecided`` is their fraction of ALL masks).
``make_run(cfg, base_params) -> run(key, {"lam"}) -> (final, traj)``: sweep lambda
and seeds with :func:`sims.sweep.sweep` (one compiled call).

Analysis helpers: per-block kept fractions, ablation of a subnetwork from the full model against random
subnetworks with the same per-block counts (vmapped null), and the residual-stream ridge "lens".
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims.bigram_backcopy import BBConfig, sample_batch, source_of
from sims.config import Config, param
from sims.sweep import check_loop, record_steps, scan_with_records
from sims.transformer import apply

__all__ = ["MASKABLE", "SubnetConfig", "make_run", "block_names", "flatten", "unflatten", "masked_params",
           "random_same_counts", "ablation_losses", "lens", "extended_bigram", "overlap_z", "block_mask",
           "check_lambda", "block_sizes", "sweep_lambda", "SWEEP_DIMS"]

MASKABLE = ("wq", "wk", "wv", "wo", "w1", "w2")


@dataclasses.dataclass(frozen=True)
class SubnetConfig(Config):
    base: BBConfig = BBConfig(seq_len=16, batch=32, d_model=32, n_layers=2, n_steps=2000, log_every=500)
    target: str = param("bigram", choices=("bigram", "model"),
                        help="what the masked model must match: the bigram P, or the base model (optimal pruning)")
    maskable: tuple[str, ...] = param(MASKABLE, unique=True, help=f"maskable weight matrices of every block {MASKABLE}")
    n_steps: int = param(2000, ge=1, le=10**8, help="mask-training steps")
    log_every: int = param(100, ge=1, help="record every log_every steps (divides n_steps)")
    batch: int = param(32, ge=1, help="fresh sequences per mask-training step")
    lr: float = param(0.05, gt=0, help="Adam step on the mask logits")
    temp_growth: float = param(1.003, ge=1, help="temperature factor per step (paper: 1.001 over 15k steps)")
    undecided_stop: float = param(0.01, ge=0, lt=1, help="stop when this fraction of kept entries is undecided")
    eval_batch: int = param(128, ge=1, help="sequences of the fixed evaluation batch")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        if not self.maskable:
            raise ValueError("maskable must name at least one weight matrix (the maskable set is empty)")
        if self.base.bos_num != 1 or self.base.delimiter_p != 0:
            raise ValueError(f"base.bos_num={self.base.bos_num}, base.delimiter_p={self.base.delimiter_p}: the "
                             "subnetwork targets are the one-BOS, delimiter-free task (bos_num 1, delimiter_p 0)")
        bad = [m for m in self.maskable if m not in MASKABLE]
        if bad:
            raise ValueError(f"maskable: no parameter named {bad} in the blocks; valid names: {MASKABLE}")
        if not self.base.mlp and any(m in ("w1", "w2") for m in self.maskable):
            raise ValueError("maskable names MLP weights (w1/w2) but the base model has no MLP")
        check_loop(self.n_steps, self.log_every)

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


def block_names(cfg: SubnetConfig) -> list[str]:
    """Names of the maskable blocks in flattening order: ``L{layer}.{name}``."""
    return [f"L{i}.{m}" for i in range(cfg.base.n_layers) for m in cfg.maskable]


def flatten(cfg: SubnetConfig, tree) -> jax.Array:
    """Per-layer dicts of maskable arrays -> one flat vector (order of :func:`block_names`)."""
    return jnp.concatenate([jnp.ravel(tree[i][m]) for i in range(cfg.base.n_layers) for m in cfg.maskable])


def unflatten(cfg: SubnetConfig, params, flat):
    out, o = [], 0
    for i in range(cfg.base.n_layers):
        d = {}
        for m in cfg.maskable:
            shp = params["blocks"][i][m].shape
            n = int(np.prod(shp))
            d[m] = flat[o:o + n].reshape(shp)
            o += n
        out.append(d)
    return out


def block_sizes(cfg: SubnetConfig, params) -> np.ndarray:
    return np.array([int(np.prod(params["blocks"][i][m].shape)) for i in range(cfg.base.n_layers)
                     for m in cfg.maskable])


def masked_params(cfg: SubnetConfig, params, masks):
    """Base params with each maskable matrix multiplied by its mask (per-layer dicts)."""
    blocks = []
    for i, blk in enumerate(params["blocks"]):
        b = dict(blk)
        for m in cfg.maskable:
            b[m] = blk[m] * masks[i][m]
        blocks.append(b)
    return {**params, "blocks": blocks}


def check_lambda(lam):
    lam = np.asarray(lam, np.float64)
    if np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise ValueError(f"lambda (sparsity weight) must be finite and >= 0, got {lam}")


def extended_bigram(cfg: SubnetConfig) -> np.ndarray:
    """(V+1, V+1) bigram target: rows of P for tokens, the law of x1 for BOS; the BOS column is 0."""
    b = cfg.base
    P, _, first = source_of(b)
    E = np.zeros((b.V + 1, b.V + 1))
    E[: b.V, : b.V] = P
    E[b.V, : b.V] = first
    return E


def _pearson(a, b, w=None):
    """Pearson r of a and b over the entries where ``w`` (default: all)."""
    w = jnp.ones_like(a) if w is None else w.astype(a.dtype)
    n = jnp.sum(w)
    a = a - jnp.sum(w * a) / n
    b = b - jnp.sum(w * b) / n
    return jnp.sum(w * a * b) / jnp.sqrt(jnp.sum(w * a * a) * jnp.sum(w * b * b))


def make_run(cfg: SubnetConfig, base_params):
    """``run(key, {"lam"}) -> (final, traj)`` for fixed (frozen) ``base_params``."""
    b = cfg.base
    mcfg = b.model()
    E = jnp.asarray(extended_bigram(cfg))
    logE = jnp.log(jnp.maximum(E, 1e-30))
    sizes = block_sizes(cfg, base_params)
    N = int(sizes.sum())
    seg = jnp.asarray(np.repeat(np.arange(len(sizes)), sizes))

    def target(x):
        if cfg.target == "bigram":
            return E[x]
        return jax.nn.softmax(apply(base_params, x, mcfg)[0])

    def run(key, hp):
        k_eval, k_train = jax.random.split(key)
        s0 = jnp.zeros(N)
        opt = optax.adam(cfg.lr)

        def ce_soft(s, T, x):
            masks = unflatten(cfg, base_params, jax.nn.sigmoid(T * s))
            logits, _ = apply(masked_params(cfg, base_params, masks), x, mcfg)
            return -jnp.mean(jnp.sum(target(x) * jax.nn.log_softmax(logits), -1))

        def loss(s, T, x):
            return ce_soft(s, T, x) + hp["lam"] / N * jnp.sum(jax.nn.sigmoid(T * s))

        def undecided(s, T):
            m = jax.nn.sigmoid(T * s)
            return jnp.sum((m > 0.1) & (m < 0.9)) / jnp.maximum(jnp.sum(s > 0), 1)

        def step(k, state, t):
            s, ost, T, stop = state
            x = sample_batch(b, k, cfg.batch)[0]
            g = jax.grad(loss)(s, T, x)
            upd, ost_new = opt.update(g, ost, s)
            done = stop >= 0  # stopped: the state stays frozen
            s_new, ost_new, T_new = jax.tree.map(lambda old, new: jnp.where(done, old, new), (s, ost, T),
                                                 (optax.apply_updates(s, upd), ost_new, T * cfg.temp_growth))
            stop_new = jnp.where(~done & (undecided(s_new, T_new) < cfg.undecided_stop), t + 1, stop)
            return (s_new, ost_new, T_new, stop_new)

        x_ev, y_ev, _, non_ev = sample_batch(b, k_eval, cfg.eval_batch)

        def record(state, t):
            s, _, T, _ = state
            m = jax.nn.sigmoid(T * s)
            return {"kept": jnp.mean(s > 0), "undecided": jnp.mean((m > 0.1) & (m < 0.9)), "temperature": T,
                    "ce_target": ce_soft(s, T, x_ev)}

        init = (s0, opt.init(s0), jnp.asarray(1.0), jnp.asarray(-1))
        res = scan_with_records(k_train, step, init, record, n_steps=cfg.n_steps, log_every=cfg.log_every,
                                bound=1e6)
        s, _, T, stop = res.state
        hard = (s > 0).astype(jnp.float32)
        kept_blocks = jax.ops.segment_sum(hard, seg, num_segments=len(sizes)) / jnp.asarray(sizes)
        masks = unflatten(cfg, base_params, hard)
        logits, _ = apply(masked_params(cfg, base_params, masks), x_ev, mcfg)
        logp = jax.nn.log_softmax(logits)
        sur_sub = -jnp.take_along_axis(logp, y_ev[..., None], -1)[..., 0]
        sur_big = -logE[x_ev, y_ev]
        final = {"diverged_step": res.diverged_step, "mask": hard.astype(jnp.bool_), "kept_block": kept_blocks,
                 "kept_total": jnp.mean(hard), "stop_step": stop,
                 # r over the non-trigger positions, where the next token IS a bigram draw: at a trigger the next
                 # token is the copy, whose bigram probability can be exactly 0 (Shakespeare: surprisal -> inf,
                 # clipped at 69 nats), and a handful of such clips would decide a Pearson r over all positions
                 "pearson_r": _pearson(sur_sub, sur_big, non_ev),
                 "pearson_r_all": _pearson(sur_sub, sur_big),
                 "ce_bigram": -jnp.mean(jnp.sum(E[x_ev] * logp, -1)),
                 "ce_bigram_oracle": -jnp.mean(jnp.sum(E[x_ev] * logE[x_ev], -1))}
        return final, res.traj

    return run


# ---------------------------------------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------------------------------------


def random_same_counts(key, cfg: SubnetConfig, params, mask_flat):
    """A random mask keeping, in every block, as many entries as ``mask_flat`` (uniform without replacement)."""
    sizes = block_sizes(cfg, params)
    out, o = [], 0
    keys = jax.random.split(key, len(sizes))
    for j, n in enumerate(sizes):
        k = jnp.sum(mask_flat[o:o + n])
        rank = jnp.argsort(jnp.argsort(jax.random.uniform(keys[j], (n,))))
        out.append(rank < k)
        o += n
    return jnp.concatenate(out)


def ablation_losses(cfg: SubnetConfig, params, remove_flat, batch):
    """Loss of the full model with the entries in ``remove_flat`` set to 0, on ``batch`` =
    :func:`sims.bigram_backcopy.sample_batch` output: (trigger NLL, non-trigger NLL)."""
    x, y, trig, non = batch
    keep = 1.0 - remove_flat.astype(jnp.float32)
    p = masked_params(cfg, params, unflatten(cfg, params, keep))
    logits, _ = apply(p, x, cfg.base.model())
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1)[..., 0]
    return jnp.sum(nll * trig) / jnp.sum(trig), jnp.sum(nll * non) / jnp.sum(non)


def _ridge(X, Y, X2, rel: float = 1e-3):
    """Ridge regression with intercept, fitted on (X, Y), predicting at X2 (float64, closed form); the penalty
    is ``rel`` x the mean eigenvalue of the centred Gram matrix."""
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    G = Xc.T @ Xc
    W = np.linalg.solve(G + rel * np.trace(G) / G.shape[0] * np.eye(G.shape[0]), Xc.T @ Yc)
    return (X2 - mx) @ W + my


def lens(cfg: SubnetConfig, params, x_fit, x_ev, masks=None):
    """Residual-stream lens (as the paper's analyze_activations.py), per layer l = 0 (embeddings) .. n_layers:
    a ridge map from the activations to (i) the current token (one-hot; recall@1 on held-out sequences) and
    (ii) the model's final residual stream, read out through the final LayerNorm and unembedding, scored by
    the KL divergence from the model's own next-token distribution (held out). ``masks``: per-layer dicts
    (a subnetwork: the lens of that subnetwork against its own output). Returns (recall (L+1,), kl (L+1,))."""
    mcfg = cfg.base.model()
    p = params if masks is None else masked_params(cfg, params, masks)

    def acts(x):
        logits, inter = apply(p, x, mcfg)
        emb = p["tok"][x] + p["pos"][: x.shape[1]]
        hs = [emb] + list(inter["resid"])
        return [np.asarray(h, np.float64).reshape(-1, mcfg.d_model) for h in hs], np.asarray(logits, np.float64)

    H_fit, _ = acts(x_fit)
    H_ev, logits_ev = acts(x_ev)
    tok_fit = np.asarray(x_fit).ravel()
    tok_ev = np.asarray(x_ev).ravel()
    onehot = np.eye(mcfg.vocab)[tok_fit]
    logq = logits_ev.reshape(-1, mcfg.vocab)
    logq = logq - np.logaddexp.reduce(logq, -1, keepdims=True)
    ln_f = {k: np.asarray(v, np.float64) for k, v in p["ln_f"].items()}
    U = np.asarray(p["unembed"], np.float64)
    recall, kl = [], []
    for Hf, He in zip(H_fit, H_ev):
        pred_tok = _ridge(Hf, onehot, He).argmax(-1)
        recall.append(float(np.mean(pred_tok == tok_ev)))
        h_hat = _ridge(Hf, H_fit[-1], He)
        m = h_hat.mean(-1, keepdims=True)  # final LayerNorm, float64, the formula of sims.transformer._ln
        v = ((h_hat - m) ** 2).mean(-1, keepdims=True)
        lg = (h_hat - m) / np.sqrt(v + 1e-5) * ln_f["g"] + ln_f["b"]
        lg = lg @ U
        lp = lg - np.logaddexp.reduce(lg, -1, keepdims=True)
        kl.append(float(np.mean(np.sum(np.exp(logq) * (logq - lp), -1))))
    return np.array(recall), np.array(kl)



def overlap_z(cfg: SubnetConfig, params, a_flat, b_flat):
    """Overlap of two masks against the null of random masks with the same per-block counts: in a block of
    n entries with k_a and k_b kept, the overlap is hypergeometric (mean k_a k_b / n, variance
    k_a k_b (n - k_a)(n - k_b) / (n^2 (n - 1))); blocks are independent. Returns (overlap, null mean, z)."""
    sizes = block_sizes(cfg, params)
    a, b = np.asarray(a_flat, bool), np.asarray(b_flat, bool)
    ov = mean = var = 0.0
    o = 0
    for n in sizes:
        ka, kb = a[o:o + n].sum(), b[o:o + n].sum()
        ov += float(np.sum(a[o:o + n] & b[o:o + n]))
        mean += ka * kb / n
        var += ka * kb * (n - ka) * (n - kb) / (n**2 * (n - 1)) if n > 1 else 0.0
        o += n
    return ov, mean, (ov - mean) / np.sqrt(var) if var > 0 else np.inf * np.sign(ov - mean)


def block_mask(cfg: SubnetConfig, params, names):
    """Flat mask selecting whole blocks by name (``L{layer}.{name}``), e.g. to remove one MLP."""
    sizes = block_sizes(cfg, params)
    bn = block_names(cfg)
    bad = [n for n in names if n not in bn]
    if bad:
        raise ValueError(f"no maskable block named {bad}; blocks: {bn}")
    return jnp.asarray(np.concatenate([np.full(n, name in names) for name, n in zip(bn, sizes)]))


SWEEP_DIMS = MappingProxyType({"mask": ("entry",), "kept_block": ("block",)})


def sweep_lambda(cfg: SubnetConfig, base_params, lams, *, seeds: int = 1, key=None):
    """Continuous sparsification for every lambda in ``lams`` (x ``seeds`` data orders) in one compiled call;
    an xarray Dataset with dims (lam, seed[, step | entry | block]) and a ``block`` coordinate."""
    from sims.sweep import sweep

    check_lambda(lams)
    key = jax.random.key(0) if key is None else key
    ds = sweep(make_run(cfg, base_params), {"lam": list(lams)}, seeds=seeds, key=key, steps=cfg.steps(), cfg=cfg,
               dims=SWEEP_DIMS, progress=False)
    return ds.assign_coords(block=block_names(cfg))
