"""Junk-data dose-response on a character LM (a toy of "LLMs can get brain rot"): continue training a pretrained
char LM on mixtures of clean text and junk (text from the plays' own bigram chain) at several junk ratios with
matched tokens, steps and optimizer, then heal it on clean text."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np

from figures._core import (
    TRAINED_AT_TINY,
    Claim,
    Diverged,
    Figure,
    Validated,
    fmt,
    hedges_g,
    mean_se,
    overrides,
    param,
)
from figures._text import FULL_MODEL, QUICK_MODEL, SCHEDULE_SET, TINY_MODEL, refuse_schedule
from sims.char_lm import CharLMConfig, branch
from sims.sweep import side_by_side

NAME = "text_junk"
DESCRIPTION = "char LM: clean held-out loss and context use vs the junk ratio of continued training, and after healing"
PAPER = "Xing et al. 2025, 'LLMs Can Get Brain Rot!' (arXiv 2510.13928), as a toy"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the character LM with its junk phase (``sim.junk_start``: pretraining on clean text before it;
    ``sim.junk_steps``: the continued training on the mixture; the steps after it: healing on clean text, as many
    as the junk phase's); the figure runs it at each junk ratio of ``ratios``."""

    SET_BY_FIGURE: typing.ClassVar[dict] = dict(SCHEDULE_SET)
    sim: CharLMConfig = CharLMConfig(**QUICK_MODEL, n_steps=1100,
                                     log_every=50, junk_start=500, junk_steps=300)
    seeds: int = param(3, ge=2, le=256, help="models per junk ratio (the same pretraining per seed)")
    ratios: tuple[float, ...] = param((0.0, 0.2, 0.5, 0.8, 1.0), ge=0, le=1, unique=True,
                                      help="junk ratios of the continued training (ascending; must include 0)")
    lr: float = param(3e-3, gt=0, le=1, help="peak lr (constant after warmup) of every phase")
    warmup_steps: int = param(50, ge=0, help="linear warmup at the start of pretraining")
    key_seed: int = param(0, ge=0)

    def check(self):
        refuse_schedule(self)
        if list(self.ratios) != sorted(self.ratios) or self.ratios[0] != 0 or len(self.ratios) < 3:
            raise ValueError(f"ratios must be >= 3 ascending values starting at 0, got {self.ratios}")
        s = self.sim
        if not s.junk_steps or s.junk_start < s.log_every:
            raise ValueError("sim.junk_steps must be > 0 and sim.junk_start >= sim.log_every (a pretrained model)")
        heal = s.n_steps - s.junk_start - s.junk_steps
        if heal != s.junk_steps:
            raise ValueError(f"the healing phase (sim.n_steps - junk_start - junk_steps = {heal}) must be as long as "
                             f"the junk phase ({s.junk_steps}): the clean-token control needs it")
        if s.junk_start % s.log_every or s.junk_steps % s.log_every:
            raise ValueError("sim.log_every must divide sim.junk_start and sim.junk_steps")
        if self.warmup_steps >= s.junk_start:
            raise ValueError(f"warmup_steps must end before the junk phase ({s.junk_start})")


PRESETS = {
    "quick": Config(),
    "full": Config(sim=CharLMConfig(**FULL_MODEL, n_steps=30000,
                                    log_every=500, junk_start=10000, junk_steps=10000),
                   lr=1e-3, warmup_steps=500),
}


def compute(cfg):
    key = jax.random.key(cfg.key_seed)  # one key: the same pretraining and windows at every ratio (paired)
    # the ratios act from junk_start on: the clean pretraining is trained once per seed and shared (sims.char_lm.branch)
    # the arms as two sweeps at once (the second core is idle part of the time in one sweep of these small matmuls)
    ds = branch(cfg.sim, {"junk_ratio": list(cfg.ratios)}, cfg.sim.junk_start,
                fixed={"lr": cfg.lr, "warmup_steps": float(cfg.warmup_steps)}, seeds=cfg.seeds, key=key,
                workers=side_by_side())
    ds = ds.swap_dims({"point": "junk_ratio"})
    if ds.diverged.any():
        raise Diverged(f"{int(ds.diverged.sum())} char-LM runs diverged at lr {cfg.lr:g}")
    return ds


def _marks(cfg):
    s = cfg.sim
    return s.junk_start, s.junk_start + s.junk_steps, s.n_steps


def _gain(ds):
    return ds.loss_near - ds.loss_far  # context use: what the second half of the window gains over the first 8


def _trend(x, sign: int):
    """Consecutive paired differences of ``x`` (ratio, seed) along the ratios, signed so that the predicted trend is
    positive: (the smallest difference's z-score, the list of mean differences). A trend "holds" when no step
    reverses it by more than 2 SE (it may saturate: at high ratios the model has stopped using the clean text's
    structure, and further junk changes little)."""
    d = sign * np.diff(np.asarray(x, np.float64), axis=0)
    m = d.mean(1)
    se = d.std(1, ddof=1) / np.sqrt(d.shape[1])
    return float(np.min(m / np.maximum(se, 1e-12))), m


def claims(ds, cfg):
    out = []
    _, end, last = _marks(cfg)
    r = list(cfg.ratios)
    after = ds.loss.sel(step=end)  # (junk_ratio, seed)
    m = after.mean("seed").values
    g = hedges_g(after.sel(junk_ratio=r[0]).values, after.sel(junk_ratio=r[-1]).values)
    gs = [hedges_g(after.sel(junk_ratio=r[0]).values, after.sel(junk_ratio=v).values) for v in r[1:]]
    zmin, _ = _trend(after.values, +1)
    mono = bool(zmin > -2)
    out.append(Claim(
        id="dose_response",
        statement="the clean held-out loss after continued training rises monotonically with the junk ratio",
        theory="monotone in the ratio; effect Hedges' g > 0.3 (the paper's threshold for a decline)",
        measured="loss " + ", ".join(f"{fmt(v, 4)}" for v in m) + f" at ratios {', '.join(f'{v:g}' for v in r)}; "
                 "g vs ratio 0: " + ", ".join(fmt(v, 2) for v in gs),
        statistic="no step between consecutive ratios reverses the rise by > 2 SE (paired over seeds; smallest step "
                  f"z = {fmt(zmin, 2)}) and g(ratio max) > 0.3", passed=bool(mono and g > 0.3)))
    ga = _gain(ds).sel(step=end)
    gm = ga.mean("seed").values
    gg = hedges_g(ga.sel(junk_ratio=r[-1]).values, ga.sel(junk_ratio=r[0]).values)  # > 0: ratio 0 uses more context
    zmin, _ = _trend(ga.values, -1)
    mono = bool(zmin > -2)
    out.append(Claim(
        id="context_use_declines",
        statement="junk erodes the use of long context: the loss gained from the second half of the window "
                  "(loss at positions < 8 minus at positions >= L/2) falls with the junk ratio",
        theory="junk has no structure beyond one character: a model fit to it stops using context",
        measured="context gain " + ", ".join(f"{fmt(v, 3)}" for v in gm) + f" nats; g (ratio 0 vs {r[-1]:g}) "
                 f"{fmt(gg, 2)}",
        statistic="no step between consecutive ratios reverses the fall by > 2 SE (paired; smallest step z = "
                  f"{fmt(zmin, 2)}) and g > 0.3", passed=bool(mono and gg > 0.3)))
    # lasting? the junk model after healing against the clean model with the same clean tokens (ratio 0 at the end
    # of the junk phase: pretraining + junk_steps clean steps; ratio 1 healed: pretraining + the same number)
    healed = ds.loss.sel(step=last, junk_ratio=r[-1]).values
    matched = ds.loss.sel(step=end, junk_ratio=r[0]).values
    clean_end = ds.loss.sel(step=last, junk_ratio=r[0]).values
    d, se = mean_se(healed - matched)
    gap0 = float((after.sel(junk_ratio=r[-1]) - after.sel(junk_ratio=r[0])).mean())
    gap1 = float(np.mean(healed - clean_end))
    lasting = bool(d > 2 * se)
    out.append(Claim(
        id="decline_is_lasting",
        statement=f"after healing (as many clean steps as the junk phase) the ratio-{r[-1]:g} model stays worse than "
                  "a clean model that saw the same clean tokens",
        theory="paper: healing improves but does not restore the baseline (persistent representational drift)",
        measured=f"healed - clean-token-matched = {fmt(d, 3)} +- {fmt(se, 2)} nats; the gap to ratio 0 was "
                 f"{fmt(gap0, 3)} after the junk phase and is {fmt(gap1, 3)} after healing (ratio 0 kept training)",
        statistic="paired difference > 2 SE", passed=lasting,
        finding="" if lasting else (
            "in the toy the damage heals: once it trains on clean text again the junk model catches up with the "
            "clean model that saw the same clean tokens; what remains of the gap to the ratio-0 run is the clean "
            "training it missed, not a lasting lesion")))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 3, figsize=(14, 4))
    start, end, last = _marks(cfg)
    steps = ds.step.values
    cmap = plt.get_cmap("magma_r")
    r = list(cfg.ratios)
    for i, v in enumerate(r):
        c = cmap(0.2 + 0.7 * i / max(len(r) - 1, 1))
        m, se = mean_se(ds.loss.sel(junk_ratio=v))
        axs[0].plot(steps[1:], m[1:], color=c, label=f"junk ratio {v:g}")
        axs[0].fill_between(steps[1:], (m - se)[1:], (m + se)[1:], color=c, alpha=0.2, lw=0)
        gm = _gain(ds.sel(junk_ratio=v)).mean("seed")
        axs[2].plot(steps[1:], gm[1:], color=c, label=f"{v:g}")
    for ax in (axs[0], axs[2]):
        ax.axvspan(start, end, color="0.9", zorder=0)
        ax.text(start, 0.96, " junk phase", transform=ax.get_xaxis_transform(), fontsize=7, va="top")
        ax.text(end, 0.96, " healing (clean)", transform=ax.get_xaxis_transform(), fontsize=7, va="top")
    lo = float(ds.loss.sel(step=slice(start, None)).mean("seed").min())
    hi = float(ds.loss.sel(step=slice(start, None)).mean("seed").max())
    axs[0].set(xlabel="step", ylabel="clean held-out loss (nats/char)", ylim=(lo - 0.05, hi + 0.1),
               title="clean loss through pretraining, junk, healing")
    axs[0].legend(fontsize=7)
    for st, lab, mk in ((end, "after the junk phase", "o"), (last, "after healing", "s")):
        m, se = mean_se(ds.loss.sel(step=st))
        axs[1].errorbar(r, m, yerr=se, marker=mk, capsize=3, label=lab)
    m, se = mean_se(ds.loss.sel(step=end, junk_ratio=r[0]))
    axs[1].axhline(float(m), color="0.5", ls=":", lw=0.8, label="ratio 0 after the junk phase (same clean tokens as "
                                                                 "healed)")
    axs[1].set(xlabel="junk ratio", ylabel="clean held-out loss (nats/char)", title="dose-response (mean +- SE)")
    axs[1].legend(fontsize=7, loc="upper left")
    axs[2].set(xlabel="step", ylabel="loss(pos < 8) - loss(pos >= L/2) (nats)", title="context use")
    axs[2].legend(fontsize=7, title="junk ratio", title_fontsize=7, loc="lower right")
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=2", *TINY_MODEL, "sim.n_steps=120", "sim.log_every=10", "sim.junk_start=40",
        "sim.junk_steps=40", "warmup_steps=10", "ratios=0,0.5,1")},
    not_at_tiny=TRAINED_AT_TINY,
)
