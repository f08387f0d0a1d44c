r"""A character-level language model on Shakespeare's plays (:mod:`sims.text_data`): the shared transformer
(:mod:`sims.transformer`, softmax or GLA mixer, no BOS: windows start anywhere in a play) trained with optax
AdamW on random windows, scored on fixed windows of the six held-out plays. The text counterpart of the bigram
LM of :mod:`sims.river_valley` for the river-valley claims of Wen et al. (2024, Sec. 4: the loss drop of the
decay phase is concentrated on uncertain tokens).

``make_run(cfg) -> run(key, hparams) -> (final, traj)``; hparams are the schedule's (``lr`` and the WSD family's
``decay_fraction``, ``shape_id``, ``final_ratio``, ``warmup_steps``; or ``lr`` times the static unit-peak
``cfg.schedule``). Records every ``log_every`` steps, in ONE forward pass over the evaluation windows:

* ``loss``: mean next-character loss (nats) on the held-out windows (all genres);
* ``loss_<genre>``: the same on each genre's held-out plays;
* ``loss_det`` / ``loss_unc`` / ``loss_mid``: the same at positions whose next character is near-deterministic
  (entropy given the ``ctx_k`` characters before it < ``det_max`` nats, counted on the training plays), uncertain
  (> ``unc_min``), or in between; a position is classed only when its ``ctx_k``-character context lies inside
  the window and was seen >= 20 times in the training plays (:func:`sims.text_data.kgram_entropy`);
* ``loss_near`` / ``loss_far``: the held-out loss at window positions < 8 (little context) and >= L/2 (long
  context); their difference is how much the model uses context;
* ``lr_t``.

Continual training (rewarming, Gupta et al. 2023): with ``switch_step > 0`` the windows come from the training plays
of ``second_genre`` from that step on; with hparam ``rewarm_peak`` the schedule is
:func:`sims.schedule_specs.rewarm_family` (cosine to the floor by ``switch_step``, warmup to the rewarming peak over
``rewarm_warmup`` steps, cosine back to the floor), every arm of a sweep one compiled program.

A junk phase (the "brain rot" toy): for the ``junk_steps`` steps from ``junk_start`` on, the first
``round(junk_ratio * batch)`` windows of every batch (hparam ``junk_ratio``, default 0) are junk: text sampled from
the character bigram chain of the training plays (:func:`junk_chain`; the same characters and local statistics,
no structure beyond one character), so that tokens, steps and optimizer are matched and only the data differ.

``final``: ``loss_by_position`` (the held-out loss at each window position: how much the model uses context),
``loss_by_char`` (per target character, NaN for characters absent from the evaluation windows), and
``diverged_step``.

Optimizer, mapped to optax: ``optax.chain(optax.clip_by_global_norm(grad_clip), optax.adamw(lr_t, b1, b2, eps,
weight_decay))`` (decoupled weight decay multiplied by the scheduled lr, as PyTorch's AdamW; clipping off with
``grad_clip = 0``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jax.flatten_util import ravel_pytree

from sims import bigram_data as bd
from sims import schedule_specs
from sims import text_data as td
from sims import tree as _tree
from sims.config import Config, param
from sims.sweep import Sim, check_loop, record_steps, scan_with_records
from sims.transformer import TransformerConfig, apply, init

__all__ = ["CharLMConfig", "make_run", "sim", "branch", "evaluation_set", "junk_chain", "optimizer", "SWEEP_DIMS",
           "CLASSES", "tree", "by_schedule", "lr_table"]

CLASSES = ("det", "mid", "unc")
SWEEP_DIMS = MappingProxyType({"loss_by_position": ("position",), "loss_by_char": ("char",)})


@dataclasses.dataclass(frozen=True)
class CharLMConfig(Config):
    """One character LM, its data and its training loop (hparams: the schedule's)."""

    d_model: int = param(64, ge=8, le=8192, help="residual width")
    n_layers: int = param(2, ge=1, le=64, help="transformer blocks")
    n_heads: int = param(2, ge=1, le=256, help="attention heads per block (divides d_model)")
    attention: str = param("softmax", choices=("softmax", "gla"),
                           help="token mixer: softmax attention or gated linear attention (GLA)")
    seq_len: int = param(64, ge=8, le=10**6, help="characters per training window (the model's context)")
    batch: int = param(32, ge=1, le=65536, help="windows per optimizer step")
    n_steps: int = param(2000, ge=1, le=10**8, help="optimizer steps")
    log_every: int = param(100, ge=1, help="evaluate every log_every steps (divides n_steps)")
    train_genre: str = param("all", choices=("all", *td.GENRES), help="the training plays' genre (all: every one)")
    eval_windows: int = param(64, ge=1, le=4096, help="fixed evaluation windows per genre's held-out plays")
    ctx_k: int = param(4, ge=1, le=8, help="characters of context that define a position's uncertainty class")
    det_max: float = param(0.3, gt=0, le=4.2, help="near-deterministic: next-character entropy below this (nats)")
    unc_min: float = param(1.5, gt=0, le=4.2, help="uncertain: next-character entropy above this (nats)")
    schedule: tuple = param((), help="() -> WSD family from hparams; else a unit-peak spec (schedule_specs.from_spec)")
    b1: float = param(0.9, gt=0, lt=1, help="AdamW beta1")
    b2: float = param(0.95, gt=0, lt=1, help="AdamW beta2")
    eps: float = param(1e-8, gt=0, le=1, help="AdamW epsilon")
    weight_decay: float = param(0.1, ge=0, le=10, help="AdamW decoupled weight decay (times the scheduled lr)")
    grad_clip: float = param(1.0, ge=0, help="clip the gradient's global norm to this (0: no clipping)")
    switch_step: int = param(0, ge=0, help="> 0: from this step on train on second_genre (continual training)")
    second_genre: str = param("history", choices=td.GENRES, help="the genre trained on from switch_step on")
    junk_start: int = param(0, ge=0, help="first step of the junk phase")
    junk_steps: int = param(0, ge=0, help="steps of the junk phase (0: none; hparam junk_ratio sets the share)")
    init: str = param("gpt2", choices=("gpt2", "torch"), help="gpt2: N(0, 0.02^2) embeddings; torch: PyTorch's")

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        if self.det_max >= self.unc_min:
            raise ValueError(f"det_max ({self.det_max}) must be below unc_min ({self.unc_min})")
        self.model()  # heads divide the width
        check_loop(self.n_steps, self.log_every)
        shortest = int(td.shakespeare_plays().select("held_out").lengths.min())
        if self.seq_len >= shortest:
            raise ValueError(f"seq_len must be < {shortest} (the shortest held-out play's characters), "
                             f"got {self.seq_len}")
        if self.schedule:
            schedule_specs.check_spec(self.schedule)
        if self.switch_step and not self.switch_step < self.n_steps:
            raise ValueError(f"switch_step must be < n_steps ({self.n_steps}), got {self.switch_step}")
        if self.switch_step and self.second_genre == self.train_genre:
            raise ValueError(f"second_genre must differ from train_genre ({self.train_genre!r})")
        if self.junk_start + self.junk_steps > self.n_steps:
            raise ValueError(f"the junk phase (junk_start {self.junk_start} + junk_steps {self.junk_steps}) must end "
                             f"by n_steps ({self.n_steps})")

    def model(self) -> TransformerConfig:
        return TransformerConfig(vocab=65, max_len=self.seq_len, d_model=self.d_model, n_layers=self.n_layers,
                                 n_heads=self.n_heads, mlp=True, attention=self.attention, init=self.init)

    def steps(self) -> np.ndarray:
        return record_steps(self.n_steps, self.log_every)


@functools.cache
def evaluation_set(seq_len: int, n_per_genre: int, ctx_k: int, det_max: float, unc_min: float):
    """The fixed evaluation windows and their masks (NumPy): ``x``, ``y`` (n, L) int32; ``cls`` (n, L) int8:
    0 near-deterministic, 1 in between, 2 uncertain, -1 unclassed (see the module docstring); ``genre`` (n,)
    int8 (index into :data:`sims.text_data.GENRES`); ``H`` (n, L) the k-gram entropy of each target."""
    corpus = td.shakespeare_plays()
    train = corpus.select("train")
    xs, ys, cl, gs, hs = [], [], [], [], []
    for gi, g in enumerate(td.GENRES):
        held = corpus.select("held_out", g)
        H = td.kgram_entropy(train, held, ctx_k)
        start = td.eval_windows(held, seq_len, n_per_genre)
        idx = start[:, None] + np.arange(seq_len + 1)
        w = held.tokens[idx].astype(np.int32)
        h = H[idx[:, 1:]]
        h[:, : ctx_k - 1] = np.nan  # the context reaches before the window: the model cannot see it
        c = np.where(np.isnan(h), -1, np.where(h < det_max, 0, np.where(h > unc_min, 2, 1))).astype(np.int8)
        xs.append(w[:, :-1])
        ys.append(w[:, 1:])
        cl.append(c)
        hs.append(h)
        gs.append(np.full(n_per_genre, gi, np.int8))
    return {"x": np.concatenate(xs), "y": np.concatenate(ys), "cls": np.concatenate(cl), "genre": np.concatenate(gs),
            "H": np.concatenate(hs)}


@functools.cache
def junk_chain() -> tuple[np.ndarray, np.ndarray]:
    """(P, law): the character bigram of the TRAINING plays (pairs inside plays; rows without counts uniform) and
    its stationary law: the source of junk text."""
    text = td.shakespeare_plays().select("train")
    C = np.zeros((65, 65))
    for a, b in zip(text.starts[:-1], text.starts[1:]):
        s = text.tokens[a:b].astype(np.int64)
        np.add.at(C, (s[:-1], s[1:]), 1)
    P = bd.from_counts(C)
    return P, bd.law(P)


def optimizer(cfg: CharLMConfig, schedule):
    """AdamW (mapping in the module docstring)."""
    adam = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adam) if cfg.grad_clip else adam


@functools.cache
def make_run(cfg: CharLMConfig):
    """``run(key, hparams) -> (final, traj)`` for the sweep engine (cached per cfg)."""
    return _runner(cfg)


def _schedule(cfg: CharLMConfig, hp):
    """The lr schedule a run takes: the rewarming family with hparam ``rewarm_peak`` (and a switch), else
    ``cfg.schedule`` or the WSD family read from ``hp``."""
    if cfg.switch_step and "rewarm_peak" in hp:
        return schedule_specs.rewarm_family(hp, cfg.switch_step, cfg.n_steps)
    return schedule_specs.schedule_for(cfg.schedule, hp, cfg.n_steps)


def lr_table(cfg: CharLMConfig, axes: dict, fixed: dict | None = None) -> np.ndarray:
    """(arm, step 0..n_steps): the lr each zipped arm of ``axes`` (with ``fixed``) takes at each step."""
    t = jnp.arange(cfg.n_steps + 1)
    n = len(next(iter(axes.values())))
    hps = [{**(fixed or {}), **{k: jnp.asarray(v[i]) for k, v in axes.items()}} for i in range(n)]
    return np.stack([np.asarray(_schedule(cfg, hp)(t)) for hp in hps])


def _runner(cfg: CharLMConfig, span: tuple[int, int] | None = None, resume=None):
    """The run function of :func:`make_run`; ``span`` runs only steps ``span[0]..span[1]-1`` (and, stopping before
    ``n_steps``, returns the state as one flat vector ``final["state"]``); ``resume = (key, states, seeds)`` starts
    from ``states[hp["prefix_index"] * seeds + hp["seed_index"]]`` with the random stream of seed ``seed_index`` of
    ``key`` (see :func:`branch`)."""
    mcfg = cfg.model()
    text = td.shakespeare_plays().select("train", cfg.train_genre)
    text2 = td.shakespeare_plays().select("train", cfg.second_genre) if cfg.switch_step else None
    ev = evaluation_set(cfg.seq_len, cfg.eval_windows, cfg.ctx_k, cfg.det_max, cfg.unc_min)
    L = cfg.seq_len
    # every recorded loss is a masked mean: ONE contraction of the (window, position) losses with normalised masks
    masks = [np.ones_like(ev["y"], bool)] + [np.broadcast_to((ev["genre"] == i)[:, None], ev["y"].shape)
                                             for i in range(len(td.GENRES))]
    masks += [ev["cls"] == i for i in range(len(CLASSES))]
    pos = np.broadcast_to(np.arange(L), ev["y"].shape)
    masks += [pos < min(8, L // 2), pos >= L // 2]
    names = ["loss"] + [f"loss_{g}" for g in td.GENRES] + [f"loss_{c}" for c in CLASSES] + ["loss_near", "loss_far"]
    M = np.stack([m / max(m.sum(), 1) for m in masks], -1).astype(np.float32)  # (n, L, metrics)
    onehot_y = np.eye(65, dtype=np.float32)[ev["y"]]  # (n, L, 65)
    char_count = onehot_y.sum((0, 1))

    def run(key, hp):
        if resume is not None:  # the seed's own key: its stream continues where the shared prefix stopped
            key = jax.random.fold_in(resume[0], hp["seed_index"].astype(jnp.int32))
            row = hp["prefix_index"].astype(jnp.int32) * resume[2] + hp["seed_index"].astype(jnp.int32)
        k_init, k_train = jax.random.split(key)
        params, unravel = ravel_pytree(init(k_init, mcfg))
        sched = _schedule(cfg, hp)
        opt = optimizer(cfg, sched)
        x_ev, y_ev = jnp.asarray(ev["x"]), jnp.asarray(ev["y"])

        def nll(p, x, y):
            logits, _ = apply(unravel(p), x, mcfg)
            return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1)[..., 0]

        def step(k, state, t):
            p, ost = state
            if cfg.junk_steps:
                k, k_junk = jax.random.split(k)
                P, law = (jnp.asarray(a, jnp.float32) for a in junk_chain())
                junk = bd.sample_sequences(k_junk, P, law, cfg.batch, L + 2, 0)[:, 1:]  # drop the BOS slot
                on = (t >= cfg.junk_start) & (t < cfg.junk_start + cfg.junk_steps)
                n_junk = jnp.round(hp.get("junk_ratio", 0.0) * cfg.batch)
                is_junk = on & (jnp.arange(cfg.batch) < n_junk)
            w = td.sample_windows(k, text, L, cfg.batch)
            if cfg.switch_step:
                k2 = jax.random.fold_in(k, 1)
                w = jnp.where(t >= cfg.switch_step, td.sample_windows(k2, text2, L, cfg.batch), w)
            if cfg.junk_steps:
                w = jnp.where(is_junk[:, None], junk, w)
            g = jax.grad(lambda q: jnp.mean(nll(q, w[:, :-1], w[:, 1:])))(p)
            upd, ost = opt.update(g, ost, p)
            return (optax.apply_updates(p, upd), ost)

        def record(state, t):
            m = jnp.einsum("bp,bpk->k", nll(state[0], x_ev, y_ev), M, precision=jax.lax.Precision.HIGHEST)
            return {**{n: m[i] for i, n in enumerate(names)}, "lr_t": sched(t)}

        state0 = (params, opt.init(params))
        flat0, unflat = ravel_pytree(state0)
        if resume is not None:
            state0 = unflat(jnp.asarray(resume[1])[row])
        res = scan_with_records(k_train, step, state0, record, n_steps=cfg.n_steps,
                                log_every=cfg.log_every, bound=1e6, span=span)
        if span is not None and span[1] < cfg.n_steps:
            return {"diverged_step": res.diverged_step, "state": ravel_pytree(res.state)[0]}, res.traj
        per = nll(res.state[0], x_ev, y_ev)
        by_char = jnp.einsum("bp,bpc->c", per, onehot_y, precision=jax.lax.Precision.HIGHEST)
        final = {"diverged_step": res.diverged_step, "loss_by_position": per.mean(0),
                 "loss_by_char": jnp.where(char_count > 0, by_char / np.maximum(char_count, 1), jnp.nan)}
        return final, res.traj

    return run


def sim(cfg: CharLMConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)``."""
    return Sim.of(make_run(cfg), cfg, SWEEP_DIMS)


def _segment(cfg: CharLMConfig):
    """The :func:`sims.tree.tree` protocol for the char LM: the Sim of steps ``span`` (resumed or not)."""
    steps = cfg.steps()

    def segment(span, resume):
        lo, hi = span
        meta = {"char_lm": dataclasses.asdict(cfg), "segment": [lo, hi]}
        if resume is not None:
            meta["parent_states_sha256"] = hashlib.sha256(np.asarray(resume[1]).tobytes()).hexdigest()[:16]
        dims = SWEEP_DIMS if hi == cfg.n_steps else {"state": ("flat",)}
        return Sim(_runner(cfg, span=span, resume=resume), meta, steps[(steps >= lo) & (steps <= hi)], dims, hi - lo)

    return segment


def tree(cfg: CharLMConfig, axes: dict, cuts, paths, *, seeds: int, key, fixed: dict | None = None,
         workers: int = 1) -> xr.Dataset:
    """:func:`sims.tree.tree` for the char LM: the zipped sweep of ``axes`` with the runs that arms share piecewise
    (``cuts``, ``paths``) each trained once per seed (``workers`` sweeps at once per segment)."""
    return _tree.tree(_segment(cfg), cfg.steps(), axes, cuts, paths, seeds=seeds, key=key, fixed=fixed,
                      workers=workers)


def by_schedule(cfg: CharLMConfig, axes: dict, *, seeds: int, key, fixed: dict | None = None, ends=None,
                workers: int = 1) -> xr.Dataset:
    """:func:`tree` for arms that differ only by their lr schedules (every hparam of ``axes`` a schedule's): the
    pieces they run at the same lrs are found from the lrs themselves (:func:`sims.tree.tree_by_schedule` on
    :func:`lr_table`) and trained once; ``ends`` (default: ``n_steps`` for every arm) stops each arm at its last
    needed record step."""
    ends = [cfg.n_steps] * _tree.count_arms(axes) if ends is None else ends
    cuts, paths = _tree.tree_by_schedule(lr_table(cfg, axes, fixed), ends, cfg.log_every)
    return tree(cfg, axes, cuts, paths, seeds=seeds, key=key, fixed=fixed, workers=workers)


def branch(cfg: CharLMConfig, axes: dict, at: int, *, seeds: int, key, fixed: dict | None = None,
           shared: tuple[str, ...] = (), workers: int = 1) -> xr.Dataset:
    """``sweep(sim(cfg), axes, mode="zip", fixed=fixed, seeds=seeds, key=key)`` for arms that are the same run up to
    step ``at`` (a record step): each distinct prefix is trained ONCE per seed and its arms continue from it, with
    their own hparams and the seed's own random stream (:func:`sims.tree.branch_paths`), so an arm costs
    ``n_steps - at`` steps instead of ``n_steps``. Arms with equal values of the ``shared`` hparams share a prefix
    (none: all arms share one), run with the first such arm's hparams; the caller vouches that the other hparams act
    only from step ``at`` on (a junk ratio from ``junk_start``, a rewarming peak from ``switch_step``, WSD's decay
    from its start). Returns the Dataset the plain sweep returns (dims ``point``, ``seed``, ``step``), up to float
    rounding (the arms run in a batch of another shape)."""
    cuts, paths = _tree.branch_paths(axes, at, cfg.n_steps, cfg.log_every, shared)
    out = tree(cfg, axes, cuts, paths, seeds=seeds, key=key, fixed=fixed, workers=workers)
    out.attrs["branch_at"] = at
    return out
