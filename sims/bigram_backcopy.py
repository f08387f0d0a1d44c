r"""Bigram-Backcopy (Guo, Pai, Bai, Jiao, Jordan, Mei 2024, arXiv 2410.13835): train the shared transformer on
BB data and measure the extreme-token phenomena (attention sink, value-state drain, residual peak).

``make_run(cfg) -> run(key, hparams) -> (final, traj)`` trains one model (fresh batches every step,
``lax.scan``) and records, on a fixed evaluation batch: the loss at trigger / non-trigger positions, the
attention on BOS at non-trigger and trigger queries, the attention on the previous token at trigger
queries, the BOS value norm against the others' mean, the BOS residual norm against the others' mean, and
the BOS attention-logit gap. ``final`` adds the intervention losses (attention removed; attention forced
to BOS at non-trigger queries; MLP removed) and one attention map. hparams: ``lr``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims import bigram_data as bd
from sims.sweep import check_loop, record_steps, scan_with_records
from sims.transformer import TransformerConfig, _ln, apply, init
from theory import bigram as tb

__all__ = ["BBConfig", "make_run", "source"]


@dataclasses.dataclass(frozen=True)
class BBConfig:
    V: int = 32
    k_triggers: int = 3
    data_seed: int = 0
    zipf: float = 1.0
    seq_len: int = 32
    batch: int = 64
    n_steps: int = 3000
    log_every: int = 100
    d_model: int = 64
    n_layers: int = 1
    n_heads: int = 1
    mlp: bool = True
    attention: str = "softmax"
    optimizer: str = "adamw"  # adamw (paper: betas (0.9, 0.99), wd 1e-4) or sgd (momentum 0.9, wd 1e-4)
    eval_batch: int = 128

    def __post_init__(self):
        if self.V < 2:
            raise ValueError(f"V must be >= 2, got {self.V}")
        if not 0 < self.k_triggers < self.V:
            raise ValueError(f"k_triggers must satisfy 0 < k < V={self.V}, got {self.k_triggers}")
        if self.seq_len < 3:
            raise ValueError(f"seq_len must be >= 3, got {self.seq_len}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        check_loop(self.n_steps, self.log_every)

    def model(self) -> TransformerConfig:
        return TransformerConfig(vocab=self.V + 1, max_len=self.seq_len, d_model=self.d_model,
                                 n_layers=self.n_layers, n_heads=self.n_heads, mlp=self.mlp, attention=self.attention)

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


@functools.cache
def source(V: int, k: int, seed: int, zipf: float):
    """(P, trigger mask, law of x1, oracle non-trigger loss for length L is computed separately)."""
    P = bd.make_transition(seed, V=V, kind="zipf", zipf=zipf)
    trig = tb.triggers_of(P, k)
    mask = np.zeros(V, bool)
    mask[trig] = True
    first = tb.stationary(P) * ~mask
    return P, mask, first / first.sum()


def _mean_where(x, m):
    return jnp.sum(jnp.where(m, x, 0.0)) / jnp.maximum(jnp.sum(m), 1)


@functools.cache
def make_run(cfg: BBConfig):
    P_np, mask_np, first_np = source(cfg.V, cfg.k_triggers, cfg.data_seed, cfg.zipf)
    mcfg = cfg.model()
    bos = cfg.V

    def run(key, hp):
        P, mask, first = jnp.asarray(P_np), jnp.asarray(mask_np), jnp.asarray(first_np)
        k_init, k_eval, k_train = jax.random.split(key, 3)
        params = init(k_init, mcfg)
        if cfg.optimizer == "adamw":
            opt = optax.adamw(hp["lr"], b1=0.9, b2=0.99, eps=1e-8, weight_decay=1e-4)
        else:
            opt = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(hp["lr"], momentum=0.9))
        seq_eval = bd.backcopy_sequences(k_eval, P, mask, first, cfg.eval_batch, cfg.seq_len + 1, bos)
        x_ev, y_ev = seq_eval[:, :-1], seq_eval[:, 1:]
        trig_ev = mask[jnp.minimum(x_ev, cfg.V - 1)] & (x_ev != bos)  # query positions holding a trigger
        non_ev = ~trig_ev & (x_ev != bos)

        def loss_fn(p, x, y):
            logits, _ = apply(p, x, mcfg)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1))

        def step(k, state, t):
            p, ost = state
            seq = bd.backcopy_sequences(k, P, mask, first, cfg.batch, cfg.seq_len + 1, bos)
            g = jax.grad(loss_fn)(p, seq[:, :-1], seq[:, 1:])
            upd, ost = opt.update(g, ost, p)
            return (optax.apply_updates(p, upd), ost)

        def metrics(p, **kw):
            logits, inter = apply(p, x_ev, mcfg, **kw)
            nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y_ev[..., None], -1)[..., 0]
            return nll, inter

        def record(state, t):
            p = state[0]
            nll, inter = metrics(p)
            w = inter["attn"][0][:, 0]  # layer 0, head 0: (batch, q, k)
            val = jnp.linalg.norm(inter["value"][0][:, 0], axis=-1)  # (batch, key)
            res = jnp.linalg.norm(inter["resid"][0], axis=-1)  # (batch, pos)
            prev = jnp.concatenate([jnp.zeros((w.shape[0], 1)), jnp.diagonal(w, offset=-1, axis1=1, axis2=2)], 1)
            # BOS attention-logit gap at non-trigger queries: score(q, BOS) - mean score(q, other visible keys)
            blk = p["blocks"][0]
            h = _ln(p["tok"][x_ev] + p["pos"][: cfg.seq_len], blk["ln1"])
            s = jnp.einsum("bqd,bkd->bqk", h @ blk["wq"], h @ blk["wk"]) / np.sqrt(cfg.d_model // cfg.n_heads)
            L = cfg.seq_len
            vis = jnp.tril(jnp.ones((L, L), bool)) & (jnp.arange(L) > 0)[None, :]  # visible keys other than BOS
            other = jnp.sum(jnp.where(vis, s, 0.0), -1) / jnp.maximum(vis.sum(-1), 1)
            gap = s[:, :, 0] - other
            return {
                "loss_trigger": _mean_where(nll, trig_ev), "loss_bigram": _mean_where(nll, non_ev),
                "bos_attn_nontrigger": _mean_where(w[:, :, 0], non_ev),
                "bos_attn_trigger": _mean_where(w[:, :, 0], trig_ev),
                "prev_attn_trigger": _mean_where(prev, trig_ev),
                "bos_value_norm": val[:, 0].mean(), "other_value_norm": val[:, 1:].mean(),
                "bos_resid_norm": res[:, 0].mean(), "other_resid_norm": res[:, 1:].mean(),
                "bos_logit_gap": _mean_where(gap, non_ev & (jnp.arange(L) > 1)),
            }

        res = scan_with_records(k_train, step, (params, opt.init(params)), record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=1e6)
        p = res.state[0]
        nll, inter = metrics(p)
        final = {"diverged_step": res.diverged_step, "attn_map": inter["attn"][0][0, 0],
                 "attn_map_trigger": trig_ev[0]}
        for name, kw in (("full", {}), ("no_attn", {"zero_attn": True}), ("bos_forced", {"force_bos": non_ev}),
                         ("no_mlp", {"zero_mlp": True})):
            nll_i, _ = metrics(p, **kw)
            final[f"{name}_trigger"] = _mean_where(nll_i, trig_ev)
            final[f"{name}_bigram"] = _mean_where(nll_i, non_ev)
        return final, res.traj

    return run
