"""Multi-query associative recall across the token mixers (Arora et al. 2023, "Zoology", Fig. 2; the GLA paper's
recall test, Yang et al. 2024, Sec. 5): query accuracy against model width, one panel per number of stored pairs,
one line per mixer (softmax; GLA; RetNet's scalar decay; unit gates; LightNet's additive decay), each at its best
peak lr (Zoology's protocol), mean +- SE over seeds."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np

from figures._core import TRAINED_AT_TINY, Claim, Figure, Regime, Validated, fmt, overrides, param
from sims.mqar import MQARConfig, best_lr, recall_grid

NAME = "mqar_recall"
DESCRIPTION = "MQAR: query accuracy vs width per pair count, softmax / GLA / RetNet / linear / LightNet"
PAPER = "Arora et al. 2023 (Zoology, arXiv 2312.04927) Fig. 2; Yang et al. 2024 (GLA, arXiv 2312.06635) Sec. 5"

MIXER_LABELS = {"softmax": "softmax", "gla": "GLA (data-dependent gates)", "retnet": "RetNet (scalar decay)",
                "linear": "linear (unit gates)", "lightnet": "LightNet (additive decay)"}
SOLVED = 0.9  # "solves": Zoology's plots read near-1 accuracy; 0.9 leaves room for a few hard queries


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``task`` holds the data and the training loop; the figure sets the mixer, width and pairs of each run."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {"task.attention": "each line's mixer (mixers)",
                                            "task.d_model": "the x axis (widths)",
                                            "task.n_pairs": "each panel's pair count (pairs)",
                                            "task.n_queries": "= the pair count (every stored key is queried)"}
    task: MQARConfig = MQARConfig(n_keys=16, n_values=16, n_pairs=1, n_queries=1, seq_len=24, d_model=64, n_heads=2,
                                  batch=64, n_steps=3000, log_every=300, eval_batch=256)
    mixers: tuple[str, ...] = param(("softmax", "gla", "retnet", "linear", "lightnet"), unique=True,
                                    choices=("softmax", "gla", "retnet", "linear", "lightnet"),
                                    help="token mixers, one line each")
    widths: tuple[int, ...] = param((32, 64), ge=8, le=4096, unique=True, help="model widths d_model (x axis)")
    pairs: tuple[int, ...] = param((4, 8), ge=1, le=1024, unique=True, help="stored key-value pairs (one panel each)")
    lrs: tuple[float, ...] = param((3e-3,), gt=0, le=1, unique=True,
                                   help="peak lrs tried per setting; the best seed-mean accuracy is read (Zoology)")
    seeds: int = param(2, ge=2, le=64, help="models per setting and lr (one vmapped call)")

    def check(self):
        d = {"attention": "softmax", "d_model": 64, "n_pairs": 1, "n_queries": 1}
        if any(getattr(self.task, k) != v for k, v in d.items()):
            raise ValueError(f"task.attention / d_model / n_pairs / n_queries are set by this figure (mixers, widths, "
                             f"pairs); leave them at {d}")
        for w in self.widths:
            if w % self.task.n_heads:
                raise ValueError(f"widths: {w} is not a multiple of task.n_heads ({self.task.n_heads})")
        for n in self.pairs:
            if n > self.task.n_keys:
                raise ValueError(f"pairs: {n} is out of range: must be <= task.n_keys ({self.task.n_keys})")
            if 3 * n > self.task.seq_len:
                raise ValueError(f"pairs: {n} needs task.seq_len >= 3 x pairs ({3 * n}) (pairs, then as many "
                                 f"queries); task.seq_len is {self.task.seq_len}")


# MQAR is learned after a long plateau (an induction-like two-layer circuit). Measured on this CPU (2026-12-07, the
# grid below at 3000 steps and batch 64, lr 3e-3, 52 min): at d 64 softmax left it in one seed of two per pair count
# (4 pairs: 0.42 at step 1800, 0.99 at 2400; 8 pairs: 0.92 at step 900), GLA in both (0.8-0.95 by step 2100); every
# d 32 model and every RetNet / linear / LightNet model stayed on it for 3000 steps (accuracy ~1/3 at 4 pairs, ~1/4
# at 8). The claims need that budget (LEARNING, below: n/a under it). quick: the same grid at 600 steps and batch 32
# (the plateau itself, minutes); `--set task.n_steps=3000 --set task.log_every=300 --set task.batch=64` is the
# measured run. full (GPU): Zoology's sizes: widths 64-256, pairs up to 64 at sequence length 256, an lr sweep.
PRESETS = {
    "quick": Config(task=dataclasses.replace(Config().task, n_steps=600, log_every=100, batch=32)),
    "full": Config(task=dataclasses.replace(Config().task, n_keys=256, n_values=256, seq_len=256, n_steps=20_000,
                                            log_every=1000, batch=128),
                   widths=(64, 128, 256), pairs=(8, 32, 64), lrs=(1e-3, 3e-3, 1e-2), seeds=3),
}

LEARNING = Regime("a training budget that gets past MQAR's plateau (task.n_steps >= 3000 at task.batch >= 64: "
                  "measured on this CPU, see the presets' comment); shorter runs show the plateau itself",
                  lambda c: c.task.n_steps >= 3000 and c.task.batch >= 64)


def compute(cfg):
    return recall_grid(cfg.task, cfg.mixers, cfg.widths, cfg.pairs, cfg.lrs, seeds=cfg.seeds, key=jax.random.key(0))


def _stats(ds):
    acc, lr = best_lr(ds)
    m = acc.mean("seed")
    se = acc.std("seed", ddof=1) / np.sqrt(acc.sizes["seed"])
    return acc, m, se, lr


def claims(ds, cfg):
    acc, m, se, lr = _stats(ds)
    out = []
    mix = list(ds.mixer.values)
    if "softmax" in mix:
        s = acc.sel(mixer="softmax")
        worst = float(s.min())
        rows = "; ".join(f"d {w}, {n} pairs: {fmt(s.sel(width=w, pairs=n).values, 3)}"
                         for w in ds.width.values for n in ds.pairs.values)
        ok = worst > SOLVED
        out.append(Claim(
            id="softmax_solves",
            statement=f"softmax attention solves MQAR at every width and pair count tried (accuracy > {SOLVED} in "
                      "every seed)",
            theory="Zoology Fig. 2: attention keeps every pair (its cache grows with the sequence)",
            measured=rows, statistic=f"min over settings and seeds ({fmt(worst, 3)}) > {SOLVED}", passed=bool(ok),
            finding="" if ok else (
                f"softmax has not learned the recall at every setting within {cfg.task.n_steps} steps "
                f"(lr {list(cfg.lrs)}): MQAR is learned after a plateau (an induction-like two-layer circuit; at 4 "
                "pairs, d 64, lr 3e-3 the accuracy jumps from 0.35 to 0.97 between steps 2100 and 2400), so the "
                "quick preset's budget reads the plateau in the failing settings, not a limit of attention")))
    order = [x for x in ("gla", "retnet", "linear") if x in mix]
    if len(order) >= 2:
        viol, rows = [], []
        for w in ds.width.values:
            for n in ds.pairs.values:
                vals = [(x, float(m.sel(mixer=x, width=w, pairs=n)), float(se.sel(mixer=x, width=w, pairs=n)))
                        for x in order]
                rows.append(f"d {w}, {n} pairs: " + ", ".join(f"{x} {a:.3f}+-{e:.3f}" for x, a, e in vals))
                for (x1, a1, e1), (x2, a2, e2) in zip(vals, vals[1:]):
                    if a1 + 2 * np.hypot(e1, e2) < a2:
                        viol.append(f"{x2} > {x1} at d {w}, {n} pairs")
        ok = not viol
        out.append(Claim(
            id="gates_order",
            statement="at equal width, data-dependent gates (GLA) >= a scalar decay (RetNet) >= unit gates (plain "
                      "linear attention), as the GLA paper reports",
            theory="GLA paper Sec. 5 / Zoology: the gate lets the state forget selectively, which recall needs",
            measured="; ".join(rows), statistic="no setting where a later mixer beats an earlier one by > 2 SE",
            passed=ok, finding="" if ok else "the ordering fails: " + "; ".join(viol)))
    rec = [x for x in mix if x != "softmax"]
    if rec and ds.sizes["pairs"] >= 2:
        lo, hi = int(ds.pairs.values.min()), int(ds.pairs.values.max())
        drops = {(x, int(w)): float(m.sel(mixer=x, width=w, pairs=lo) - m.sel(mixer=x, width=w, pairs=hi))
                 for x in rec for w in ds.width.values}
        ses = {(x, int(w)): float(np.hypot(se.sel(mixer=x, width=w, pairs=lo), se.sel(mixer=x, width=w, pairs=hi)))
               for x in rec for w in ds.width.values}
        over = [int(w) for w in ds.width.values if hi > int(w)]  # settings beyond the capacity of d pairs
        learned = [k for k in drops if float(m.sel(mixer=k[0], width=k[1], pairs=lo)) > 0.5]
        falls = [k for k in learned if drops[k] > 2 * ses[k]]
        ok = bool(learned) and len(falls) == len(learned)
        out.append(Claim(
            id="recall_falls_with_pairs",
            statement=f"at fixed width the recurrent mixers' accuracy falls from {lo} to {hi} pairs (a fixed "
                      "d_k x d_v state per head holds a bounded number of pairs), in every setting that learned the "
                      f"recall at {lo} pairs (accuracy > 0.5)",
            theory=f"capacity: H heads x d/H key channels hold at most d pairs exactly, with orthogonal keys "
                   f"(sims.mqar.state_capacity); widths below {hi} pairs here: {over or 'none'}; below the bound a "
                   "fall says the learned keys are not orthogonal (the practical capacity is lower)",
            measured="; ".join(f"{x} d {w}: {lo}->{hi} pairs drop {drops[(x, w)]:+.3f}+-{ses[(x, w)]:.3f}"
                               for (x, w) in drops),
            statistic=f"drop > 2 SE in every learned setting ({len(falls)} of {len(learned)})", passed=ok,
            finding="" if ok else (
                f"no recurrent mixer learned the recall at {lo} pairs within {cfg.task.n_steps} steps: not tested"
                if not learned else "no significant fall in: " + ", ".join(
                    f"{x} d {w}" for (x, w) in learned if (x, w) not in falls))))
    return out


def plot(ds, cfg):
    acc, m, se, lr = _stats(ds)
    pairs = list(ds.pairs.values)
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs), 3.9), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], pairs):
        for j, x in enumerate(ds.mixer.values):
            mm, ee = m.sel(mixer=x, pairs=n).values, se.sel(mixer=x, pairs=n).values
            ax.errorbar(ds.width.values, mm, yerr=ee, marker="o", ms=4, capsize=3, color=f"C{j}",
                        label=MIXER_LABELS.get(str(x), str(x)))
        ax.axhline(1.0 / cfg.task.n_values, color="0.5", ls=":", lw=0.9, label="chance (1 / values)")
        ax.set(xscale="log", xlabel="model width $d$", title=f"{n} key-value pairs, {n} queries")
        ax.set_xticks(ds.width.values, [str(w) for w in ds.width.values])
        ax.minorticks_off()
    axes[0, 0].set(ylabel="query accuracy (best lr, mean $\\pm$ SE)", ylim=(-0.02, 1.04))
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"MQAR, {cfg.task.n_layers} layers, {cfg.task.n_heads} heads, sequence length {ds.attrs['seq_len']}, "
                 f"{cfg.task.n_keys} keys / {cfg.task.n_values} values, {cfg.task.n_steps} AdamW steps, "
                 f"{cfg.seeds} seeds, lr from {list(cfg.lrs)}", fontsize=9)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "widths=8", "pairs=2,4", "mixers=softmax,gla", "task.n_steps=20",
        "task.log_every=10", "task.batch=8", "task.eval_batch=16", "task.seq_len=12")},
    not_at_tiny=TRAINED_AT_TINY, regimes={"*": LEARNING},
)
