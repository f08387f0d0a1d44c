"""Rewarming for continual pre-training on a toy: a bigram LM whose source partly changes mid-run."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, band, fmt, mean_se, overrides, param
from sims.river_valley import BigramLMConfig, lm_sim
from sims.sweep import sweep

NAME = "rewarming"
DESCRIPTION = "re-increasing the lr after a data shift: a transient loss rise, then lower new-data loss"
PAPER = "Gupta et al. 2023, continual pre-training (arXiv 2308.04014)"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the bigram LM with its data shift: pre-training on source A for ``sim.shift_step`` steps (cosine
    to final_ratio x lr), then source B until ``sim.n_steps``, under each arm's schedule."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {"sim.schedule": "each arm: continue at the final lr / rewarm",
                                            "sim.record_params": "off",
                                            "sim.optimizer": "each of `optimizers`"}
    sim: BigramLMConfig = BigramLMConfig(n_steps=6000, log_every=100, shift_step=3000, shift_frac=0.25)
    seeds: int = param(32, ge=2)
    lr: float = param(20.0, gt=0, help="peak lr of the pre-training cosine (SGD)")
    adam_lr: float = param(0.01, gt=0, le=10, help="peak lr of the pre-training cosine with Adam (best final "
                           "pre-training loss on 0.005-0.1: 0.01, interior)")
    optimizers: tuple[str, ...] = param(unique=True, default=("sgd", "adam"), choices=("sgd", "adam"),
                                        help="sgd; adam: Gupta et al.'s optimizer (b1 0.9, b2 0.95)")
    rewarm_ratios: tuple[float, ...] = param(
        unique=True, default=(0.5, 1.0), gt=0, help="rewarm peaks / lr (claims use the last)")
    warmup_frac: float = param(0.1, ge=0, lt=1, help="rewarm warmup as a fraction of phase 2")
    final_ratio: float = param(0.05, gt=0, le=1)
    window: tuple[float, ...] = param((0.15, 0.5), ge=0, le=1, help="phase-2 window (fractions) for the gap claim")
    key_seed: int = param(0, ge=0)

    def check(self):
        if self.sim.shift_step < 100:
            raise ValueError(f"sim.shift_step={self.sim.shift_step} is out of range: must be >= 100 (pre-training)")
        if self.sim.n_steps <= self.sim.shift_step:
            raise ValueError("sim.n_steps must exceed sim.shift_step (a second phase)")
        if self.sim.shift_step % self.sim.log_every:
            raise ValueError(f"sim.log_every ({self.sim.log_every}) must divide sim.shift_step ({self.sim.shift_step})")
        if len(self.window) != 2 or self.window[0] >= self.window[1]:
            raise ValueError("window must be (start, end) with start < end")
        for knob, opt in (("lr", "sgd"), ("adam_lr", "adam")):
            if opt not in self.optimizers and getattr(self, knob) != type(self).__dataclass_fields__[knob].default:
                raise ValueError(f"{knob}={getattr(self, knob)} acts only with {opt!r} in optimizers "
                                 f"({list(self.optimizers)})")


PRESETS = {"quick": Config(),
           "full": Config(sim=dataclasses.replace(Config().sim, n_steps=40000, shift_step=20000, log_every=250),
                          seeds=128)}


def compute(cfg):
    key = jax.random.key(cfg.key_seed)  # common random numbers across arms
    base = ("cosine", cfg.sim.shift_step, cfg.final_ratio)
    warm = int(round(cfg.warmup_frac * (cfg.sim.n_steps - cfg.sim.shift_step)))
    arms = {"continue at final lr": base}
    for r in cfg.rewarm_ratios:
        arms[f"rewarm to {r:g} x peak"] = ("rewarm", base, cfg.sim.shift_step, r, cfg.sim.n_steps, warm,
                                           cfg.final_ratio)
    per_opt = []
    for opt in cfg.optimizers:
        parts = []
        for name, spec in arms.items():
            lc = dataclasses.replace(cfg.sim, schedule=spec, optimizer=opt)
            ds = sweep(lm_sim(lc), {"lr": [cfg.adam_lr if opt == "adam" else cfg.lr]}, seeds=cfg.seeds, key=key)
            parts.append(ds[["excess_old", "excess_new", "lr_t", "diverged"]].isel(lr=0, drop=True)
                         .expand_dims(arm=[name]))
        per_opt.append(xr.concat(parts, "arm").expand_dims(optimizer=[opt]))
    return xr.concat(per_opt, "optimizer")


def claims(ds, cfg):
    out = []
    for opt in ds.optimizer.values:
        out += _claims_one(ds.sel(optimizer=opt), cfg, "" if opt == "sgd" else f"_{opt}", str(opt))
    return out


def _claims_one(ds, cfg, suffix, opt):
    out = []
    arms = list(ds.arm.values)
    cont, rew = arms[0], arms[-1]
    steps = ds.step.values
    p2 = cfg.sim.n_steps - cfg.sim.shift_step
    lo, hi = (cfg.sim.shift_step + f * p2 for f in cfg.window)
    win = (steps >= lo) & (steps <= hi)

    def paired(var, sel):
        d = (ds[var].sel(arm=rew) - ds[var].sel(arm=cont)).values[:, sel]
        d = d.mean(-1) if d.ndim > 1 else d
        return mean_se(d)

    mn, sn = paired("excess_new", win)
    mo, so = paired("excess_old", win)
    ok = bool(mn > 2 * sn and mo > 2 * so)
    out.append(Claim(
        id="stability_gap" + suffix,
        statement=f"{opt}: after the shift, rewarming ({rew}) first raises the loss on both old and new data above "
        f"the run continued at the small lr (mean over steps {lo:g}-{hi:g})", theory="rewarm - continue > 0 on both",
        measured=f"new data {fmt(mn, 3)} +- {fmt(sn, 2)}; old data {fmt(mo, 3)} +- {fmt(so, 2)}",
        statistic="paired differences > 2 SE",
        passed=ok, finding="" if ok or not suffix else (
            f"with {opt} the new-data side has no gap (rewarm - continue = {fmt(mn, 3)} +- {fmt(sn, 2)} in the "
            "window" + ("; the rewarmed run learns the changed rows at once, while the continued run's steps at the "
                        "floor lr (Adam: a step of ~lr per logit, whatever the gradient) move the logits slowly"
                        if mn < -2 * sn else "") + f"); the old data do rise ({fmt(mo, 3)} +- {fmt(so, 2)})")))
    me, se = paired("excess_new", np.arange(steps.size) == steps.size - 1)
    ok = bool(me < -2 * se)
    out.append(Claim(
        id="rewarm_wins_on_new_data" + suffix,
        statement=f"{opt}: by the end, rewarming gives a lower new-data loss than continuing at the small lr",
        theory="rewarm - continue < 0", measured=f"{fmt(me, 3)} +- {fmt(se, 2)}", statistic="paired difference < -2 SE",
        passed=ok))
    mf, sf = paired("excess_old", np.arange(steps.size) == steps.size - 1)
    ok = bool(mf > 2 * sf)
    out.append(Claim(
        id="rewarm_forgets_more" + suffix, statement=f"{opt}: the price: more forgetting of the old data at the end",
        theory="rewarm - continue > 0",
        measured=f"{fmt(mf, 3)} +- {fmt(sf, 2)}", statistic="paired difference > 2 SE", passed=ok))
    if ds.diverged.any():
        out.append(Claim(id="no_divergence" + suffix, statement=f"{opt}: no run diverged", theory="0",
                         measured=str(int(ds.diverged.sum())), statistic="count", passed=False))
    return out


def plot(ds, cfg):
    opts = list(ds.optimizer.values)
    fig, axs = plt.subplots(len(opts), 3, figsize=(13, 3.6 * len(opts)), squeeze=False)
    steps = ds.step.values
    for r, opt in enumerate(opts):
        d = ds.sel(optimizer=opt)
        row = axs[r]
        for i, arm in enumerate(d.arm.values):
            row[0].plot(steps, d.lr_t.sel(arm=arm).isel(seed=0), color=f"C{i}", label=str(arm))
            band(row[1], steps[1:], d.excess_new.sel(arm=arm).values[:, 1:], f"C{i}", str(arm))
            band(row[2], steps[1:], d.excess_old.sel(arm=arm).values[:, 1:], f"C{i}", str(arm))
        for ax in row:
            ax.axvline(cfg.sim.shift_step, color="0.5", ls=":", lw=1)
        row[0].set(xlabel="step", ylabel="lr", title=f"{opt}: schedules (data shift at the dotted line)")
        row[0].legend(fontsize=7)
        row[1].set(yscale="log", xlabel="step", ylabel="excess loss, new source",
                   xlim=(cfg.sim.shift_step * 0.9, cfg.sim.n_steps),
                   title=f"{opt}: new data ({cfg.sim.shift_frac:.0%} of rows changed)")
        row[2].set(yscale="log", xlabel="step", ylabel="excess loss, old source", title=f"{opt}: old data (forgetting)")
        row[1].legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=4", "sim.n_steps=1200", "sim.shift_step=600")},
    not_at_tiny={
        "stability_gap": "the gap needs the quick preset's 6000 steps x 32 seeds (at 1200 x 4 it is within noise)",
        "stability_gap_adam": "the gap needs the quick preset's 6000 steps x 32 seeds (at 1200 x 4 it is within noise)",
    },
)
