r"""Bigram-Backcopy (Guo, Pai, Bai, Jiao, Jordan, Mei 2024, arXiv 2410.13835): train the shared transformer on
BB data and measure the extreme-token phenomena (attention sink, value-state drain, residual peak).

``make_run(cfg) -> run(key, hparams) -> (final, traj)`` trains one model (fresh batches every step,
``lax.scan``) and records, on a fixed evaluation batch: the loss at trigger / non-trigger positions, the
attention on BOS at non-trigger and trigger queries, the attention on the previous token at trigger
queries, the BOS value norm against the others' mean, the BOS residual norm against the others' mean, and
the BOS attention-logit gap; every mechanism metric per layer (trailing dim ``layer``, head 0). ``final``
adds the intervention losses (attention removed; attention forced to BOS at non-trigger queries; MLP
removed, in every layer) and the attention maps of one evaluation sequence. hparams: ``lr``.
Pass ``dims=SWEEP_DIMS`` to :func:`sims.sweep.sweep`. ``make_train(cfg)`` also returns the trained
parameters (the base models of :mod:`sims.subnetworks`).

Optimizers, mapped from the authors' PyTorch: ``torch.optim.AdamW(lr, betas=(0.9, 0.99), eps=1e-8,
weight_decay=1e-4)`` = ``optax.adamw`` with the same numbers (both decay decoupled and multiplied by lr);
``torch.optim.SGD(lr, momentum=0.9, weight_decay=1e-4)`` adds ``wd * p`` to the gradient before the momentum
= ``optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(lr, momentum=0.9))``.

Also here: the reduced BOS-logit / BOS-value model (:class:`ReducedConfig`, :func:`make_reduced_run`), trained
by gradient descent on its exact expected loss and held against :mod:`theory.bigram_backcopy`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from sims import bigram_data as bd
from sims.config import Config, param
from sims.engine.results import Diverged, shared
from sims.sweep import Sim, check_loop, record_steps, scan_with_records, side_by_side, sweep
from sims.transformer import TransformerConfig, apply, init
from theory import bigram as tb
from theory import bigram_backcopy as tbb

__all__ = ["sim", "train", "BBConfig", "make_run", "make_train", "optimizer", "sample_batch", "source", "source_of",
           "task_chain", "METRIC_DEFINITIONS",
           "SWEEP_DIMS", "LAYER_METRICS", "ReducedConfig", "make_reduced_run", "DATA"]

LAYER_METRICS = ("bos_attn_nontrigger", "bos_attn_trigger", "prev_attn_trigger", "bos_value_norm", "other_value_norm",
                 "bos_resid_norm", "other_resid_norm", "bos_logit_gap")
SWEEP_DIMS = MappingProxyType({"attn_map": ("layer", "q", "k"), "attn_map_trigger": ("q",),
                               **{m: ("layer",) for m in LAYER_METRICS}})


@dataclasses.dataclass(frozen=True)
class BBConfig(Config):
    """One Bigram-Backcopy model and its data: the chain, the transformer and the training loop (hparam ``lr``)."""

    data: str = param("authors", choices=("authors", "shakespeare", "zipf"),
                      help="bigram chain: the authors' (tiny Shakespeare's characters, their meta.pickle; V = 65), "
                           "the 37 plays' characters (V = 65) or synthetic Zipf rows")
    V: int = param(65, ge=2, le=4096, help="vocabulary (65 for the Shakespeare chains; any for Zipf); BOS is token V")
    k_triggers: int = param(3, ge=1, help="triggers: the k most frequent tokens (paper's script: 3)")
    data_seed: int = param(0, ge=0, help="seed of the Zipf chain (Zipf only)")
    zipf: float = param(1.0, gt=0, help="Zipf exponent of the rows (Zipf only)")
    seq_len: int = param(32, ge=3, le=8192, help="tokens per sequence after BOS (paper: 256)")
    batch: int = param(64, ge=1, help="fresh sequences per step (paper: 512)")
    n_steps: int = param(3000, ge=1, le=10**8, help="optimizer steps (paper: 10k)")
    log_every: int = param(100, ge=1, help="record every log_every steps (divides n_steps)")
    d_model: int = param(64, ge=2, le=8192, help="residual width (paper: 256)")
    n_layers: int = param(1, ge=1, le=64, help="transformer blocks")
    n_heads: int = param(1, ge=1, help="attention heads per block (divides d_model)")
    mlp: bool = param(True, help="an MLP in every block")
    attention: str = param("softmax", choices=("softmax", "relu", "gla"),
                           help="token mixer: softmax or ReLU attention, or gated linear attention (GLA, Eq. 3)")
    optimizer: str = param("adamw", choices=("adamw", "sgd"),
                           help="adamw (paper: betas (0.9, 0.99), wd 1e-4) or sgd (momentum 0.9, wd 1e-4)")
    eval_batch: int = param(128, ge=1, help="sequences of the fixed evaluation batch")
    init: str = param("torch", choices=("torch", "gpt2"),
                      help="PyTorch defaults as the authors' code; gpt2 (N(0, 0.02^2) embeddings): no sink forms")
    no_attn: tuple[int, ...] = param((), ge=0, unique=True, help="layers without attention (authors' no_attn)")
    no_mlp: tuple[int, ...] = param((), ge=0, unique=True, help="layers without an MLP (authors' no_ffn)")
    linear_mlp: tuple[int, ...] = param((), ge=0, unique=True,
                                        help="layers whose MLP is one linear map (authors' linear_ffn)")
    bos_num: int = param(1, ge=1, le=16, help="BOS tokens opening every sequence (authors' bos_num; ids V, V+1, ...)")
    delimiter_p: float = param(0.0, ge=0, lt=1, help="probability that a delimiter token follows a non-trigger "
                                                      "token (authors' delimiter_p; the next token then ~ marginal)")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        if self.data != "zipf" and self.V != 65:
            raise ValueError(f"V must be 65 with data={self.data!r} (tiny Shakespeare's characters), got {self.V}; "
                             "use data='zipf' for another vocabulary size")
        if not self.k_triggers < self.V:
            raise ValueError(f"k_triggers must satisfy 0 < k < V={self.V}, got {self.k_triggers}")
        if self.bos_num > self.seq_len - 2:
            raise ValueError(f"bos_num={self.bos_num} is out of range: must be <= seq_len - 2 ({self.seq_len - 2}), "
                             "a sequence needs two tokens after its BOS tokens")
        self.model()  # the model fields (d_model, heads, attention, init) are checked by TransformerConfig
        check_loop(self.n_steps, self.log_every)

    @property
    def delimiter(self) -> int | None:
        """The delimiter's token id (after the BOS ids, as the authors number it), None without delimiters."""
        return self.V + self.bos_num if self.delimiter_p > 0 else None

    @property
    def n_tokens(self) -> int:
        """The model's vocabulary: the chain's V tokens, the BOS tokens and the delimiter if any."""
        return self.V + self.bos_num + (self.delimiter is not None)

    def model(self) -> TransformerConfig:
        return TransformerConfig(vocab=self.n_tokens, max_len=self.seq_len, d_model=self.d_model,
                                 n_layers=self.n_layers, n_heads=self.n_heads, mlp=self.mlp, attention=self.attention,
                                 init=self.init, no_attn=self.no_attn, no_mlp=self.no_mlp, linear_mlp=self.linear_mlp)

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


DATA = ("authors", "shakespeare", "zipf")

#: What the recorded metrics measure, against the authors' probes (``BBM/probe_utils.py``); the figures print it.
METRIC_DEFINITIONS = ("BOS attention: head 0's weight on the BOS token(s), mean over non-trigger queries with the BOS "
                      "query left out (the authors' bos_attn keeps it: +1/L); value norm: ||v W_o|| (after W_o, as the "
                      "paper's figures; the authors' value_norm is before W_o); bigram loss: non-trigger queries "
                      "without BOS (the authors' markov_risk keeps it)")


source = bd.backcopy_source  # (P, trigger mask, law of x1) of a chain: see sims.bigram_data


def source_of(cfg: BBConfig):
    """:func:`source` of a config."""
    return source(cfg.V, cfg.k_triggers, cfg.data_seed, cfg.zipf, cfg.data)


def optimizer(cfg: BBConfig, lr):
    """The paper's optimizers in optax (mapping in the module docstring)."""
    if cfg.optimizer == "adamw":
        return optax.adamw(lr, b1=0.9, b2=0.99, eps=1e-8, weight_decay=1e-4)
    return optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(lr, momentum=0.9))


def task_chain(cfg: BBConfig):
    """(P, trigger mask, law of x1) over the token ids the sequences use: :func:`source_of` when ``delimiter_p`` is
    0; otherwise extended to the delimiter ``D = cfg.delimiter`` (rows for the BOS ids are never read): after a
    non-trigger character, ``D`` with probability ``delimiter_p`` and the chain's row times ``1 - delimiter_p``
    (the authors' ``add_delimiter``: every character emits ``<d>`` with probability p); after ``D`` a token from
    the marginal (their ``<d>`` row: the unigrams); triggers copy as always (a trigger after ``D`` copies ``D``)."""
    P, mask, first = source_of(cfg)
    if cfg.delimiter is None:
        return P, mask, first
    V, D, p = cfg.V, cfg.delimiter, cfg.delimiter_p
    marg = bd.authors_bigram()[2] if cfg.data == "authors" else tb.stationary(P)
    Q = np.zeros((D + 1, D + 1))
    Q[:V, :V] = (1 - p) * P
    Q[:V, D] = p
    Q[V:D, :V] = first  # BOS rows: never read by the sampler
    Q[D, :V] = marg
    return Q, np.concatenate([mask, np.zeros(D + 1 - V, bool)]), np.concatenate([first, np.zeros(D + 1 - V)])


def sample_batch(cfg: BBConfig, key, batch: int):
    """``batch`` fresh Bigram-Backcopy sequences: inputs ``x``, next tokens ``y`` and the query types ``trig``
    (x is a trigger) and ``non`` (neither a trigger nor a BOS token), each (batch, seq_len). A sequence is the
    ``bos_num`` BOS tokens (ids V, V+1, ...) and then the chain (:func:`task_chain`), ``seq_len + 1`` tokens in all."""
    P, mask, first = (jnp.asarray(a) for a in task_chain(cfg))
    b = cfg.bos_num
    seq = bd.backcopy_sequences(key, P, mask, first, batch, cfg.seq_len + 2 - b, cfg.V + b - 1)
    if b > 1:
        seq = jnp.concatenate([jnp.broadcast_to(cfg.V + jnp.arange(b - 1), (batch, b - 1)), seq], axis=1)
    x, y = seq[:, :-1], seq[:, 1:]
    bos = (x >= cfg.V) & (x < cfg.V + b)
    trig = mask[jnp.minimum(x, mask.shape[0] - 1)] & ~bos
    return x, y, trig, ~trig & ~bos


def _mean_where(x, m):
    return jnp.sum(jnp.where(m, x, 0.0)) / jnp.maximum(jnp.sum(m), 1)


@functools.cache
def make_run(cfg: BBConfig):
    """``run(key, {"lr"}) -> (final, traj)`` (see the module docstring)."""
    train = make_train(cfg)

    def run(key, hp):
        _, final, traj = train(key, hp)
        return final, traj

    return run


@functools.cache
def make_train(cfg: BBConfig):
    """``train(key, {"lr"}) -> (params, final, traj)``: :func:`make_run` plus the trained parameters (the base
    models of :mod:`sims.subnetworks`)."""
    P_np = task_chain(cfg)[0]
    mcfg = cfg.model()

    def train(key, hp):
        P = jnp.asarray(P_np)
        k_init, k_eval, k_train = jax.random.split(key, 3)
        # the optimizer and the divergence check see ONE flat vector (the same numbers element by element): per-leaf
        # updates and checks would each be a compiled kernel (dozens per step; CPU compile time, see sims.sweep)
        params, unravel = ravel_pytree(init(k_init, mcfg))
        opt = optimizer(cfg, hp["lr"])
        x_ev, y_ev, trig_ev, non_ev = sample_batch(cfg, k_eval, cfg.eval_batch)

        def loss_fn(p, x, y):
            logits, _ = apply(unravel(p), x, mcfg)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1))

        def step(k, state, t):
            p, ost = state
            x, y, _, _ = sample_batch(cfg, k, cfg.batch)
            g = jax.grad(loss_fn)(p, x, y)
            upd, ost = opt.update(g, ost, p)
            return (optax.apply_updates(p, upd), ost)

        def metrics(p, **kw):
            logits, inter = apply(unravel(p), x_ev, mcfg, **kw)
            nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y_ev[..., None], -1)[..., 0]
            return nll, inter

        L, nb = cfg.seq_len, cfg.bos_num
        prev_mask = jnp.eye(L, k=-1, dtype=bool)
        # keys visible to a query other than the BOS tokens (for the BOS attention-logit gap)
        vis = jnp.tril(jnp.ones((L, L), bool)) & (jnp.arange(L) >= nb)[None, :]
        gap_q = non_ev & (jnp.arange(L) > nb)

        # every recorded metric is a masked mean over (evaluation sequence, position): per-position quantities
        # (layer, batch, pos, 5) contracted with normalised masks (batch, pos, 5) in ONE einsum, instead of a
        # separate masked reduction (a compiled kernel each) per metric and layer
        pos = jnp.arange(L)

        def _norm(m):
            m = jnp.broadcast_to(m, (cfg.eval_batch, L)).astype(jnp.result_type(float))  # float32 unless x64
            return m / jnp.maximum(jnp.sum(m), 1.0)

        masks = jnp.stack([_norm(non_ev), _norm(trig_ev), _norm(pos < nb), _norm(pos >= nb), _norm(gap_q)], -1)
        NON, TRIG, FIRST, REST, GAP = range(5)

        def record(state, t):
            nll, inter = metrics(state[0])
            w = jnp.stack([a[:, 0] for a in inter["attn"]])  # head 0: (layer, batch, q, k)
            sc = jnp.stack([a[:, 0] for a in inter["scores"]])
            val = jnp.linalg.norm(jnp.stack([v[:, 0] for v in inter["value"]]), axis=-1)  # (layer, batch, key)
            res = jnp.linalg.norm(jnp.stack(inter["resid"]), axis=-1)  # (layer, batch, pos)
            prev = jnp.sum(jnp.where(prev_mask, w, 0.0), -1)
            other = jnp.sum(jnp.where(vis, sc, 0.0), -1) / jnp.maximum(vis.sum(-1), 1)
            # with several BOS tokens: the attention on all of them, their mean score, value and residual norms
            bos_w, bos_sc = jnp.sum(w[..., :nb], -1), jnp.mean(sc[..., :nb], -1)
            q = jnp.stack([bos_w, prev, val, res, bos_sc - other], -1)  # (layer, batch, pos, 5)
            m = jnp.einsum("ibpj,bpk->ijk", q, masks, precision=jax.lax.Precision.HIGHEST)  # (layer, 5, 5)
            out = {"bos_attn_nontrigger": m[:, 0, NON], "bos_attn_trigger": m[:, 0, TRIG],
                   "prev_attn_trigger": m[:, 1, TRIG],
                   "bos_value_norm": m[:, 2, FIRST], "other_value_norm": m[:, 2, REST],
                   "bos_resid_norm": m[:, 3, FIRST], "other_resid_norm": m[:, 3, REST],
                   # score(q, BOS) - mean score(q, other visible keys), at non-trigger queries
                   "bos_logit_gap": m[:, 4, GAP]}
            ml = jnp.einsum("bp,bpk->k", nll, masks[..., :2], precision=jax.lax.Precision.HIGHEST)
            out["loss_trigger"] = ml[TRIG]
            out["loss_bigram"] = ml[NON]
            return out

        res = scan_with_records(k_train, step, (params, opt.init(params)), record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=1e6)
        p = res.state[0]
        # the trained model evaluated four ways (full, attention output removed, BOS forced at non-trigger queries,
        # MLP removed) by ONE forward pass scanned over the intervention flags: traced once instead of five times
        # (benchmarks/RESULTS.md has the kernel counts). With every flag off the pass is the
        # plain model (a select that keeps its operand, an all-false BOS mask; for GLA the mask selects the A @ v
        # path, equal to the chunk form within float32 rounding)
        variants = ("full", "no_attn", "bos_forced", "no_mlp")
        flags = jnp.asarray([[v == "no_attn", v == "bos_forced", v == "no_mlp"] for v in variants])

        def evaluate(_, f):
            nll_i, inter = metrics(p, zero_attn=f[0], force_bos=non_ev & f[1], zero_mlp=f[2])
            return None, (_mean_where(nll_i, trig_ev), _mean_where(nll_i, non_ev),
                          jnp.stack([a[0, 0] for a in inter["attn"]]))

        _, (l_trig, l_non, maps) = jax.lax.scan(evaluate, None, flags)
        final = {"diverged_step": res.diverged_step, "attn_map": maps[0], "attn_map_trigger": trig_ev[0]}
        bigram_nll = -jnp.log(jnp.maximum(P[jnp.minimum(x_ev, P.shape[0] - 1), jnp.minimum(y_ev, P.shape[0] - 1)],
                                          1e-30))
        final["oracle_bigram"] = _mean_where(bigram_nll, non_ev)  # Bayes loss on the same evaluation positions
        for i, name in enumerate(variants):
            final[f"{name}_trigger"] = l_trig[i]
            final[f"{name}_bigram"] = l_non[i]
        return unravel(p), final, res.traj

    return train


# ---------------------------------------------------------------------------------------------------------
# Reduced dynamics of a dormant head (theory/bigram_backcopy.py, eq. R1): exact population gradient descent
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReducedConfig(Config):
    """The reduced model (R1) of :mod:`theory.bigram_backcopy`: one non-trigger query, bigram row ``p``,
    ``n`` context keys with tokens ~ ``q`` and values ``lam * e_x``; trained parameters are the BOS logit
    alpha and the BOS value beta. ``freeze``: "none", "alpha" (alpha held at ``alpha0``) or "beta" (beta held
    at ``beta0 * (e_0 - 1/V)``) for the mutual-reinforcement controls."""

    p: tuple[float, ...] = param((0.4, 0.3, 0.2, 0.1), ge=0, le=1, help="bigram row of the query token")
    q: tuple[float, ...] = param((0.1, 0.2, 0.3, 0.4), ge=0, le=1, help="law of the context keys' tokens")
    n: int = param(3, ge=1, help="context keys")
    lam: float = param(1.0, gt=0, help="value scale: key x carries the value lam * e_x")
    n_steps: int = param(100_000, ge=1, le=10**9, help="gradient-descent steps on the exact loss")
    log_every: int = param(50, ge=1, help="record every log_every steps (divides n_steps)")
    freeze: str = param("none", choices=("none", "alpha", "beta"), help="hold alpha or beta at its start")
    alpha0: float = param(0.0, help="start of the BOS logit alpha")
    beta0: float = param(2.0, help="start of the BOS value scale beta")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        tbb.check_reduced(self.p, self.q, self.lam, self.n)
        check_loop(self.n_steps, self.log_every)

    def steps(self):
        return record_steps(self.n_steps, self.log_every)


@functools.cache
def make_reduced_run(cfg: ReducedConfig):
    """``run(key, {"lr"}) -> (final, traj)``: gradient descent on the EXACT expected loss (R1), the expectation
    over the ``V**n`` contexts enumerated (deterministic: the key is not used). Records alpha, ||beta|| and the
    excess loss over the Bayes loss H(p)."""
    V = len(cfg.p)
    ctx = np.array(list(itertools.product(range(V), repeat=cfg.n)))  # (V^n, n)
    q = np.asarray(cfg.q)
    w_ctx = np.prod(q[ctx], axis=1)
    xbar = np.stack([np.bincount(c, minlength=V) / cfg.n for c in ctx])  # (V^n, V)
    logp = np.log(np.asarray(cfg.p))
    H = -float(np.sum(np.asarray(cfg.p) * logp))
    beta_frozen = cfg.beta0 * (np.eye(V)[0] - 1.0 / V)

    def loss(theta):
        a, b = theta
        s = jax.nn.sigmoid(a - jnp.log(cfg.n))
        z = logp + s * b + (1 - s) * cfg.lam * xbar
        ce = -jnp.sum(jnp.exp(logp) * jax.nn.log_softmax(z), -1)
        return jnp.sum(w_ctx * ce) - H

    def run(key, hp):
        a0 = jnp.asarray(cfg.alpha0 if cfg.freeze == "alpha" else 0.0, jnp.result_type(float))
        b0 = jnp.asarray(beta_frozen if cfg.freeze == "beta" else np.zeros(V), a0.dtype)
        free = jnp.asarray([cfg.freeze != "alpha", cfg.freeze != "beta"], a0.dtype)

        def step(_, theta, t):
            g = jax.grad(loss)(theta)
            return (theta[0] - hp["lr"] * free[0] * g[0], theta[1] - hp["lr"] * free[1] * g[1])

        def record(theta, t):
            return {"alpha": theta[0], "beta_norm": jnp.linalg.norm(theta[1]), "excess": loss(theta)}

        res = scan_with_records(key, step, (a0, b0), record, n_steps=cfg.n_steps, log_every=cfg.log_every,
                                bound=1e6)
        return {"diverged_step": res.diverged_step, "beta": res.state[1]}, res.traj

    return run


def sim(cfg: BBConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, SWEEP_DIMS)


def train(cfg: BBConfig, lr: float, seeds: int, key_seed: int = 0, split_seeds: bool = False):
    """Train ``seeds`` models at ``lr`` (one sweep) and return the sweep Dataset without its ``lr`` axis.
    ``split_seeds``: on a CPU, each seed its own chunk, :func:`sims.sweep.side_by_side` at a time, instead of one
    vmapped chunk (small models leave a core idle: bb_attention's quick preset ~20% less time, RESULTS.md);
    the other batch shape rounds differently, and training is chaotic, so per-seed numbers differ from the vmapped
    chunk's (elsewhere, e.g. on a GPU, it changes nothing). Shared through the options' result cache
    (:func:`sims.engine.results.shared`), so ``bb_attention`` and ``bb_interventions`` run together train once.
    Raises :class:`~sims.engine.results.Diverged` if any run diverged (a trained model is not plotted)."""
    return shared(_train, cfg, float(lr), int(seeds), int(key_seed), bool(split_seeds))


def _train(cfg: BBConfig, lr: float, seeds: int, key_seed: int, split_seeds: bool):
    k = side_by_side() if split_seeds else 1
    ds = sweep(sim(cfg), {"lr": [lr]}, seeds=seeds, key=jax.random.key(key_seed), workers=k,
               chunk_seeds=1 if k > 1 else None)
    n_div = int(ds.diverged.sum())
    if n_div:
        raise Diverged(f"{n_div} of {seeds} Bigram-Backcopy runs diverged (lr={lr:g}); not plotting them")
    return ds.isel(lr=0)
