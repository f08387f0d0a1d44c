"""Rewarming for continual pre-training on real text: a char LM pretrained on one genre of the plays continues on
another, at the final lr or rewarmed to several peaks and warmup lengths, against training from scratch."""

from __future__ import annotations

import dataclasses
import functools
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import TRAINED_AT_TINY, Claim, Diverged, Figure, Validated, fmt, mean_se, overrides, param
from figures._text import FULL_MODEL, QUICK_MODEL, SCHEDULE_SET, TINY_MODEL, refuse_schedule
from sims import schedules as S
from sims.char_lm import CharLMConfig, branch, sim
from sims.sweep import concurrent, side_by_side, sweep

NAME = "text_rewarm"
DESCRIPTION = "char LM, comedies -> histories: the stability gap and the old/new trade-off as the rewarming peak grows"
PAPER = "Gupta et al. 2023, continual pre-training (arXiv 2308.04014), on text"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the char LM with its genre switch (``sim.train_genre`` until ``sim.switch_step``, then
    ``sim.second_genre``); the figure runs every arm (continue at the floor; rewarm to each peak of ``peaks`` with
    ``warmup``; the largest peak with ``long_warmup``) and a model trained from scratch on the second genre for the
    phase-2 steps."""

    SET_BY_FIGURE: typing.ClassVar[dict] = dict(SCHEDULE_SET)
    SET_IN_PANELS: typing.ClassVar[dict] = {
        "sim.n_steps": "the from-scratch model runs the phase-2 steps only",
        "sim.switch_step": "the from-scratch model has no switch",
        "sim.train_genre": "the from-scratch model trains on sim.second_genre",
        "sim.second_genre": "(the from-scratch model: unused without a switch)"}
    sim: CharLMConfig = CharLMConfig(**QUICK_MODEL, n_steps=800,
                                     log_every=40, train_genre="comedy", switch_step=400, second_genre="history")
    seeds: int = param(3, ge=2, le=256, help="models per arm")
    lr: float = param(4e-3, gt=0, le=1, help="peak lr of pretraining (cosine to final_ratio x lr by the switch)")
    final_ratio: float = param(0.1, gt=0, lt=1, help="the floor: lr at the switch and at the end, / lr")
    peaks: tuple[float, ...] = param((0.25, 0.5, 1.0), gt=0, le=4, unique=True,
                                     help="rewarming peaks / lr (ascending, each > final_ratio)")
    warmup: float = param(0.05, ge=0, lt=1, help="rewarming warmup, fraction of phase 2")
    long_warmup: float = param(0.25, ge=0, lt=1, help="a second warmup for the largest peak (insensitivity claim)")
    warmup_steps: int = param(40, ge=0, help="warmup of pretraining and of the from-scratch model")
    key_seed: int = param(0, ge=0)

    def check(self):
        refuse_schedule(self)
        if not self.sim.switch_step:
            raise ValueError("sim.switch_step must be > 0 (pretraining, then the second genre)")
        if list(self.peaks) != sorted(self.peaks) or len(self.peaks) < 2 or self.peaks[0] <= self.final_ratio:
            raise ValueError(f"peaks must be >= 2 ascending values above final_ratio ({self.final_ratio}), got "
                             f"{self.peaks}")
        if self.sim.switch_step % self.sim.log_every or (self.sim.n_steps - self.sim.switch_step) % self.sim.log_every:
            raise ValueError("sim.log_every must divide sim.switch_step and the phase-2 steps")
        if self.warmup == self.long_warmup:
            raise ValueError("long_warmup must differ from warmup")
        if self.warmup_steps >= self.sim.switch_step:
            raise ValueError("warmup_steps must end before sim.switch_step")


PRESETS = {
    "quick": Config(),
    "full": Config(sim=CharLMConfig(**FULL_MODEL, n_steps=20000,
                                    log_every=500, train_genre="comedy", switch_step=10000,
                                    second_genre="history"), lr=1e-3, warmup_steps=500),
}


def arms(cfg) -> dict:
    """label -> (rewarming peak / lr, warmup steps)."""
    n2 = cfg.sim.n_steps - cfg.sim.switch_step
    out = {"continue at the floor": (cfg.final_ratio, 0.0)}
    for p in cfg.peaks:
        out[f"rewarm to {p:g} x lr"] = (p, float(round(cfg.warmup * n2)))
    out[f"rewarm to {cfg.peaks[-1]:g} x lr, long warmup"] = (cfg.peaks[-1], float(round(cfg.long_warmup * n2)))
    return out


def compute(cfg):
    key = jax.random.key(cfg.key_seed)  # one key: the same pretraining per seed in every arm
    a = arms(cfg)
    # the arms differ from the switch on: pretraining is trained once per seed and shared (sims.char_lm.branch)
    n2 = cfg.sim.n_steps - cfg.sim.switch_step
    scratch_cfg = dataclasses.replace(cfg.sim, n_steps=n2, switch_step=0, train_genre=cfg.sim.second_genre,
                                      second_genre=cfg.sim.train_genre)
    arms_run = functools.partial(
        branch, cfg.sim, {"rewarm_peak": [v[0] for v in a.values()], "rewarm_warmup": [v[1] for v in a.values()]},
        cfg.sim.switch_step, fixed={"lr": cfg.lr, "final_ratio": cfg.final_ratio}, seeds=cfg.seeds, key=key,
        workers=side_by_side())
    scratch_run = functools.partial(
        sweep, sim(scratch_cfg), {"lr": [cfg.lr]}, fixed={"decay_fraction": 1.0, "final_ratio": cfg.final_ratio,
                                                         "shape_id": S.DECAY_SHAPES.index("cosine"),
                                                         "warmup_steps": float(cfg.warmup_steps)},
        seeds=cfg.seeds, key=jax.random.fold_in(key, 1))
    # the from-scratch model trains while the arms do, and the arms run as two sweeps at once: one sweep of these small
    # matmuls leaves the second core idle part of the time (quick preset alone: 142 -> 122 s, 2 cores)
    ds, sc = concurrent([arms_run, scratch_run], max_workers=side_by_side())
    ds = ds.rename({"point": "arm"}).assign_coords(arm=list(a))
    sc = sc.isel(lr=0)
    if ds.diverged.any() or sc.diverged.any():
        raise Diverged(f"{int(ds.diverged.sum() + sc.diverged.sum())} char-LM runs diverged at lr {cfg.lr:g}")
    out = xr.Dataset({f"scratch_{v}": (("seed", "scratch_step"), sc[v].values)
                      for v in ("loss", f"loss_{cfg.sim.second_genre}", f"loss_{cfg.sim.train_genre}")},
                     coords={"scratch_step": sc.step.values + cfg.sim.switch_step})
    return xr.merge([ds, out], combine_attrs="override")


def _gap(ds, cfg, arm):
    """Per seed: the largest rise of the OLD genre's held-out loss in the first quarter of phase 2 over its value at
    the switch (the stability gap)."""
    old = ds[f"loss_{cfg.sim.train_genre}"].sel(arm=arm)
    sw = cfg.sim.switch_step
    q = sw + (cfg.sim.n_steps - sw) // 4
    return (old.sel(step=slice(sw, q)).max("step") - old.sel(step=sw)).values


def claims(ds, cfg):
    out = []
    old, new = f"loss_{cfg.sim.train_genre}", f"loss_{cfg.sim.second_genre}"
    a = list(arms(cfg))
    cont, peaks, longw = a[0], a[1:-1], a[-1]
    gaps = {k: _gap(ds, cfg, k) for k in a}
    g_big, g0 = gaps[peaks[-1]], gaps[cont]
    d, se = mean_se(g_big - g0)
    out.append(Claim(
        id="stability_gap",
        statement="rewarming makes the old genre's held-out loss jump at the switch (a stability gap); continuing at "
                  "the floor does not",
        theory="Gupta et al.: the upstream loss rises when the lr is re-increased, more for a higher peak",
        measured="rise of the old-genre loss in the first quarter of phase 2: "
                 + ", ".join(f"{k}: {fmt(gaps[k].mean(), 3)}" for k in a[:-1])
                 + f"; largest peak - floor = {fmt(d, 3)} +- {fmt(se, 2)}",
        statistic="largest-peak gap - floor gap > 2 SE (paired)", passed=bool(d > 2 * se)))
    fin_new = np.stack([ds[new].sel(arm=k).isel(step=-1).values for k in [cont, *peaks]])
    fin_old = np.stack([ds[old].sel(arm=k).isel(step=-1).values for k in [cont, *peaks]])
    mn, mo = fin_new.mean(1), fin_old.mean(1)
    ok = bool(mn[-1] < mn[0] and mo[-1] > mo[0])
    dn, sn = mean_se(fin_new[0] - fin_new[-1])
    do, so = mean_se(fin_old[-1] - fin_old[0])
    out.append(Claim(
        id="adaptation_forgetting_tradeoff",
        statement="a higher rewarming peak buys lower new-genre loss at the price of higher old-genre loss",
        theory="Gupta et al.: rewarming helps the new data and hurts the old (a trade-off set by the max lr)",
        measured="new genre: " + ", ".join(fmt(v, 4) for v in mn) + "; old genre: " + ", ".join(fmt(v, 4) for v in mo)
                 + f" (floor, then peaks {', '.join(f'{p:g}' for p in cfg.peaks)}); largest peak - floor: new "
                 f"{-dn:+.3f} +- {fmt(sn, 2)}, old {do:+.3f} +- {fmt(so, 2)}",
        statistic="largest peak: new lower and old higher than at the floor, each by > 2 SE (paired)",
        passed=(passed := bool(ok and dn > 2 * sn and do > 2 * so)),
        finding="" if passed or do > 0 else (
            "no forgetting side: the rewarmed model is better on the OLD genre too. The pretraining here is short "
            f"(loss {fmt(float(ds[old].sel(arm=cont, step=cfg.sim.switch_step).mean()), 3)} nats at the switch, far "
            "from converged) and the genres share their language (characters, words, verse), so more lr on the new "
            "genre still teaches the old one; Gupta et al. continue from a converged model on data that differs "
            "more. The stability gap (claim above) is there, but transient")))
    w1 = ds[new].sel(arm=peaks[-1]).isel(step=-1).values
    w2 = ds[new].sel(arm=longw).isel(step=-1).values
    d, se = mean_se(w2 - w1)
    rel = abs(d) / (fin_new[0].mean() - fin_new[-1].mean()) if fin_new[0].mean() > fin_new[-1].mean() else np.inf
    out.append(Claim(
        id="warmup_length_insensitive",
        statement=f"the warmup length ({cfg.warmup:.0%} vs {cfg.long_warmup:.0%} of phase 2) barely changes the final "
                  "new-genre loss",
        theory="Gupta et al.: the amount of warmup does not matter much",
        measured=f"long - short = {fmt(d, 4)} +- {fmt(se, 2)} nats; {fmt(rel, 2)} of the rewarming's own gain",
        statistic="|difference| <= 0.25 x the gain of the largest peak over the floor", passed=bool(rel <= 0.25)))
    sc = ds[f"scratch_{new}"].isel(scratch_step=-1).values
    d, se = mean_se(sc - w1)
    out.append(Claim(
        id="pretraining_helps",
        statement="with the same phase-2 steps, the rewarmed pretrained model beats a model trained from scratch on "
                  "the new genre",
        theory="continual pre-training reuses what the first genre taught (shared characters, words, metre)",
        measured=f"from scratch - rewarmed (largest peak) = {fmt(d, 3)} +- {fmt(se, 2)} nats on the new genre",
        statistic="paired difference > 2 SE", passed=bool(d > 2 * se)))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 3, figsize=(14, 4))
    old, new = f"loss_{cfg.sim.train_genre}", f"loss_{cfg.sim.second_genre}"
    a = list(arms(cfg))
    steps = ds.step.values
    sw = cfg.sim.switch_step
    cols = {k: f"C{i}" for i, k in enumerate(a)}
    for k in a:
        ls = "--" if "long" in k else "-"
        axs[0].plot(steps[1:], ds[new].sel(arm=k).mean("seed")[1:], color=cols[k], ls=ls, label=k)
        axs[1].plot(steps[1:], ds[old].sel(arm=k).mean("seed")[1:], color=cols[k], ls=ls, label=k)
    axs[0].plot(ds.scratch_step, ds[f"scratch_{new}"].mean("seed"), color="k", lw=1, label="from scratch")
    for ax, g in ((axs[0], cfg.sim.second_genre), (axs[1], cfg.sim.train_genre)):
        ax.axvline(sw, color="0.7", lw=0.6)
        lo = float(ds[f"loss_{g}"].sel(step=slice(sw, None)).mean("seed").min())
        hi = float(ds[f"loss_{g}"].sel(step=slice(sw, None)).mean("seed").max())
        ax.set(xlabel="step", ylabel=f"held-out {g} loss (nats/char)", ylim=(lo - 0.05, hi + 0.1))
    axs[0].set_title(f"new genre ({cfg.sim.second_genre}, trained from step {sw})")
    axs[1].set_title(f"old genre ({cfg.sim.train_genre}, trained until step {sw})")
    axs[0].legend(fontsize=7)
    for k in a[:-1]:
        fn, fo = mean_se(ds[new].sel(arm=k).isel(step=-1)), mean_se(ds[old].sel(arm=k).isel(step=-1))
        axs[2].errorbar(float(fn[0]), float(fo[0]), xerr=float(fn[1]), yerr=float(fo[1]), marker="o", color=cols[k],
                        label=k, capsize=2)
    axs[2].set(xlabel=f"final {cfg.sim.second_genre} loss (new)", ylabel=f"final {cfg.sim.train_genre} loss (old)",
               title="trade-off as the rewarming peak grows")
    axs[2].legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=2", *TINY_MODEL, "sim.n_steps=80", "sim.log_every=10", "sim.switch_step=40",
        "warmup_steps=10")},
    not_at_tiny=TRAINED_AT_TINY,
)
