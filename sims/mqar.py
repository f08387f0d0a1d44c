r"""Multi-query associative recall (MQAR; Arora et al. 2023, "Zoology", arXiv 2312.04927; the GLA paper's recall
test) with the shared transformer and each of its token mixers.

A sequence of length ``seq_len`` starts with ``n_pairs`` key-value pairs :math:`k_1 v_1 \dots k_n v_n` (distinct
keys from ``n_keys`` key tokens, values from ``n_values`` value tokens, drawn uniformly); the remaining positions
hold a filler token, except ``n_queries`` of them (uniform, distinct) that repeat a key of the sequence (distinct
keys). At a query position the model must output that key's value; the loss and the accuracy are taken there only.
Tokens: keys ``0..n_keys-1``, values ``n_keys..n_keys+n_values-1``, the filler last. Deterministic per PRNG key.

Capacity (the prediction the figure tests): a recurrent mixer's state per head is a :math:`d_k\times d_v` matrix
:math:`S = \sum_s \gamma_s k_s^\top v_s`; reading value :math:`j` back with :math:`q = k_j` is exact only if the
stored keys are (near-)orthogonal, i.e. at most :math:`d_k` pairs per head, so with :math:`H` heads of width
:math:`d/H` a layer holds at most :math:`d` pairs (:func:`state_capacity`); softmax attention keeps every pair.

Training: AdamW (b1 0.9, b2 0.98, weight decay 0.1; Zoology's), a linear warmup over the first 10% then cosine to
0 (the WSD family of :mod:`sims.schedules` with decay fraction 1), peak lr ``hp["lr"]``; accuracy and loss on a fixed
evaluation batch (the same for every seed and lr) every ``log_every`` steps.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
import xarray as xr
from jax.flatten_util import ravel_pytree

from sims import schedule_specs
from sims.config import Config, param
from sims.schedules import DECAY_SHAPES
from sims.sweep import Sim, check_loop, concurrent, record_steps, scan_with_records, side_by_side, sweep
from sims.transformer import MIXERS, TransformerConfig, apply, init

__all__ = ["MQARConfig", "make_batch", "make_run", "sim", "state_capacity", "recall_grid", "best_lr"]


@dataclasses.dataclass(frozen=True)
class MQARConfig(Config):
    n_keys: int = param(64, ge=2, le=4096, help="key tokens")
    n_values: int = param(64, ge=2, le=4096, help="value tokens")
    n_pairs: int = param(8, ge=1, le=1024, help="key-value pairs per sequence")
    n_queries: int = param(8, ge=1, le=1024, help="queries per sequence (distinct keys of the sequence)")
    seq_len: int = param(32, ge=3, le=8192, help="sequence length (>= 2 n_pairs + n_queries)")
    d_model: int = param(64, ge=8, le=4096, help="model width")
    n_layers: int = param(2, ge=1, le=16, help="blocks")
    n_heads: int = param(2, ge=1, le=64, help="heads (divides d_model)")
    attention: str = param("softmax", choices=tuple(m for m in MIXERS if m != "relu"), help="the token mixer")
    batch: int = param(64, ge=1, help="sequences per step")
    n_steps: int = param(2000, ge=1, le=10**9, help="AdamW steps")
    log_every: int = param(200, ge=1, help="record every log_every steps (divides n_steps)")
    eval_batch: int = param(256, ge=1, help="sequences of the fixed evaluation batch")
    data_seed: int = param(0, ge=0, help="seed of the evaluation batch")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        check_loop(self.n_steps, self.log_every)
        if self.n_pairs > self.n_keys:
            raise ValueError(f"n_pairs={self.n_pairs} is out of range: must be <= n_keys ({self.n_keys}), the keys "
                             "of a sequence are distinct")
        if self.n_queries > self.n_pairs:
            raise ValueError(f"n_queries={self.n_queries} is out of range: must be <= n_pairs ({self.n_pairs})")
        if 2 * self.n_pairs + self.n_queries > self.seq_len:
            raise ValueError(f"seq_len={self.seq_len} is out of range: must be >= 2 n_pairs + n_queries "
                             f"({2 * self.n_pairs + self.n_queries})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")

    @property
    def vocab(self) -> int:
        return self.n_keys + self.n_values + 1

    def model(self) -> TransformerConfig:
        return TransformerConfig(vocab=self.vocab, max_len=self.seq_len, d_model=self.d_model, n_layers=self.n_layers,
                                 n_heads=self.n_heads, mlp=True, attention=self.attention, init="gpt2")

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


def state_capacity(cfg: MQARConfig) -> int:
    """Pairs a recurrent layer can hold exactly: H heads x d_k = d_model / H key channels each (module docstring)."""
    return cfg.d_model


def make_batch(key, cfg: MQARConfig, batch: int):
    """(tokens (batch, L) int32, targets (batch, L) int32, mask (batch, L) bool: the query positions)."""
    n, q, L = cfg.n_pairs, cfg.n_queries, cfg.seq_len

    def one(k):
        kk, kv, kq, kp = jax.random.split(k, 4)
        keys = jax.random.permutation(kk, cfg.n_keys)[:n]
        vals = cfg.n_keys + jax.random.randint(kv, (n,), 0, cfg.n_values)
        which = jax.random.permutation(kq, n)[:q]
        pos = 2 * n + jax.random.permutation(kp, L - 2 * n)[:q]
        tok = jnp.full((L,), cfg.vocab - 1, jnp.int32).at[0:2 * n:2].set(keys).at[1:2 * n:2].set(vals)
        tok = tok.at[pos].set(keys[which])
        tgt = jnp.zeros((L,), jnp.int32).at[pos].set(vals[which])
        return tok, tgt, jnp.zeros((L,), bool).at[pos].set(True)

    return jax.vmap(one)(jax.random.split(key, batch))


@functools.cache
def make_run(cfg: MQARConfig):
    """``run(key, hparams) -> (final, traj)``; hparams: ``lr`` (peak)."""
    mcfg = cfg.model()
    x_ev, y_ev, m_ev = make_batch(jax.random.key(cfg.data_seed), cfg, cfg.eval_batch)

    def metrics(p, unravel, x, y, m):
        logits, _ = apply(unravel(p), x, mcfg)
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1)[..., 0]
        hit = (jnp.argmax(logits, -1) == y) & m
        return jnp.sum(nll * m) / jnp.sum(m), jnp.sum(hit) / jnp.sum(m)

    def run(key, hp):
        k_init, k_train = jax.random.split(key)
        params, unravel = ravel_pytree(init(k_init, mcfg))
        fam = {"decay_fraction": 1.0, "shape_id": DECAY_SHAPES.index("cosine"), "final_ratio": 0.0,
               "warmup_steps": cfg.n_steps // 10}
        sched = schedule_specs.schedule_for((), {**fam, **hp}, cfg.n_steps)
        opt = optax.adamw(sched, b1=0.9, b2=0.98, weight_decay=0.1)

        def step(k, state, t):
            p, ost = state
            x, y, m = make_batch(k, cfg, cfg.batch)
            g = jax.grad(lambda q: metrics(q, unravel, x, y, m)[0])(p)
            upd, ost = opt.update(g, ost, p)
            return (optax.apply_updates(p, upd), ost)

        def record(state, t):
            loss, acc = metrics(state[0], unravel, x_ev, y_ev, m_ev)
            return {"loss": loss, "accuracy": acc, "lr_t": sched(t)}

        res = scan_with_records(k_train, step, (params, opt.init(params)), record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=1e6)
        loss, acc = metrics(res.state[0], unravel, x_ev, y_ev, m_ev)
        return {"loss": loss, "accuracy": acc, "diverged_step": res.diverged_step}, res.traj

    return run


def sim(cfg: MQARConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), {"lr": [...]}, seeds=..., key=...)``."""
    return Sim.of(make_run(cfg), cfg, {})


def recall_grid(task: MQARConfig, mixers, widths, pairs, lrs, *, seeds: int, key, seq_len: int | None = None):
    """The MQAR experiment of the ``mqar_recall`` figure: every token mixer x model width x pair count, each trained at
    every peak lr of ``lrs`` with ``seeds`` seeds (one vmapped sweep per mixer, width and pair count: ``lr`` x seed
    in one compiled call). ``task`` holds everything else (keys, values, steps, batch, heads, layers); ``n_queries``
    follows ``n_pairs``; the sequence length is ``seq_len`` (default ``task.seq_len``), the same for every pair count
    (fewer pairs: more filler), so that only the number of stored pairs changes.

    Returns an ``xarray.Dataset`` with ``accuracy`` and ``loss`` (the final evaluation, dims mixer, width, pairs,
    lr, seed), ``accuracy_traj`` (with ``step``) and ``diverged``. Zoology's protocol reads the best lr per setting
    (:func:`best_lr`)."""


    L = seq_len or task.seq_len
    for name, vals in (("mixers", mixers), ("widths", widths), ("pairs", pairs), ("lrs", lrs)):
        if not len(vals) or len(set(vals)) != len(vals):
            raise ValueError(f"{name} must be a non-empty list without repeats, got {list(vals)}")
    valid = [m for m in MIXERS if m != "relu"]
    bad = [m for m in mixers if m not in valid]
    if bad:
        raise ValueError(f"mixers: unknown token mixer(s) {bad}; valid: {valid}")
    if any(lr <= 0 for lr in lrs):
        raise ValueError(f"lrs must be > 0, got {list(lrs)}")
    cfgs = {(m, w, n): dataclasses.replace(task, attention=m, d_model=int(w), n_pairs=int(n), n_queries=int(n),
                                           seq_len=L) for m in mixers for w in widths for n in pairs}  # validates all
    rows = []
    # the settings train side by side (sims.sweep.side_by_side: 2 at once on a CPU, the same bits)
    runs = concurrent([functools.partial(sweep, sim(c), {"lr": list(lrs)}, seeds=seeds, key=key, progress=False)
                       for c in cfgs.values()], max_workers=side_by_side())
    for (m, w, n), ds in zip(cfgs, runs):
        fin = ds.isel(step=-1)
        rows.append(xr.Dataset({"accuracy": fin.accuracy.drop_vars("step"), "loss": fin.loss.drop_vars("step"),
                                "accuracy_traj": ds.accuracy, "diverged": ds.diverged})
                    .expand_dims(mixer=[m], width=[int(w)], pairs=[int(n)]))
    out = xr.combine_by_coords(rows).reindex(mixer=list(mixers), width=[int(w) for w in widths],
                                             pairs=[int(n) for n in pairs])  # the caller's order
    out.attrs.update(seq_len=L, capacity_per_layer="d_model pairs (state_capacity)",
                     accuracy_chance=float(1.0 / task.n_values))
    return out.transpose("mixer", "width", "pairs", "lr", "seed", ...)


def best_lr(ds):
    """Zoology's reading: per (mixer, width, pairs) the lr with the highest seed-mean final accuracy; returns the
    accuracy at it (dims mixer, width, pairs, seed) and the chosen lr."""
    i = ds.accuracy.mean("seed").fillna(-1).argmax("lr")
    return ds.accuracy.isel(lr=i), ds.lr.isel(lr=i)
