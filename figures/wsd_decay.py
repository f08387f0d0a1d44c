"""WSD on a river valley: plateau then drop; the drop vs lr; final loss vs decay fraction against cosine."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Regime, Validated, band, fmt, mean_se, overrides, param, zscores
from figures._river import STRAIGHT_RIVER
from sims import schedules as S
from sims.river_valley import RiverConfig, sim
from sims.sweep import sweep
from theory import quadratic as tq
from theory import river_valley as tr

NAME = "wsd_decay"
DESCRIPTION = "WSD loss curve: stable plateau, decay drop = stationary hill excess; best decay fraction vs cosine"
PAPER = "Wen et al. 2024 (arXiv 2410.05192), Sec. 3"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the valley of both panels (lr panel: WSD at each of ``lrs``; decay panel: each of ``fractions``
    at ``frac_lr``, and cosine)."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {**STRAIGHT_RIVER,
                                            "sim.schedule": "WSD at `decay_fraction` / each of `fractions`, cosine"}
    sim: RiverConfig = RiverConfig(a=(10.0, 5.0), sigma_hill=(1.0,), n_steps=2000, log_every=20)
    seeds: int = param(2000, ge=2)
    lrs: tuple[float, ...] = param(
        unique=True, default=(0.01, 0.02, 0.05, 0.1, 0.15, 0.18), gt=0, help="peak lrs (< 2/max a)")
    decay_fraction: float = param(0.2, ge=0, le=1, help="WSD decay fraction for the lr panel")
    fractions: tuple[float, ...] = param(unique=True, default=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0), ge=0, le=1)
    frac_lr: float = param(0.1, gt=0, help="peak lr of the decay-fraction panel")
    n_sigma: float = param(4.0, gt=0)
    key_seed: int = param(0, ge=0)

    def check(self):
        if len(self.sim.sigma_hill) != 1:
            raise ValueError("sim.sigma_hill must hold one value (one hill noise scale)")
        if max(self.lrs + (self.frac_lr,)) * max(self.sim.a) >= 2:
            raise ValueError(f"lrs must be < 2/max(sim.a) = {2 / max(self.sim.a):g}")


PRESETS = {"quick": Config(),
           "full": Config(sim=dataclasses.replace(Config().sim, n_steps=10000, log_every=50), seeds=20000)}


def _wsd(lr, f, shape, n):
    return S.as_array(S.family_schedule(S.family(lr, f, shape), n), n)


def compute(cfg):
    k1, k2 = jax.random.split(jax.random.key(cfg.key_seed))
    rc = cfg.sim
    run = sim(rc)
    ev = slice(None, None, cfg.sim.log_every)
    d1 = sweep(run, {"lr": list(cfg.lrs)}, fixed={"decay_fraction": cfg.decay_fraction}, seeds=cfg.seeds, key=k1)
    d1["pred"] = (("lr", "step"), np.stack([tr.predicted_loss(_wsd(l, cfg.decay_fraction, "linear", cfg.sim.n_steps),
                                                               cfg.sim.a, cfg.sim.sigma_hill[0])[ev] for l in cfg.lrs]))
    d1["stationary_excess"] = ("lr", tq.stationary_loss(np.asarray(cfg.lrs), cfg.sim.a, cfg.sim.sigma_hill[0]))
    fr = list(cfg.fractions) + [1.0]
    sh = [0] * len(cfg.fractions) + [1]  # the last point is cosine
    d2 = sweep(run, {"decay_fraction": fr, "shape_id": sh}, mode="zip", fixed={"lr": cfg.frac_lr}, seeds=cfg.seeds,
               key=k2)
    sig = cfg.sim.sigma_hill[0]
    preds = [tr.predicted_loss(_wsd(cfg.frac_lr, f, S.DECAY_SHAPES[s], cfg.sim.n_steps), cfg.sim.a, sig)[-1]
             for f, s in zip(fr, sh)]
    fine = np.linspace(0.005, 1.0, 200)
    _, fine_pred = tr.optimal_decay_fraction(fine, cfg.frac_lr, cfg.sim.n_steps, cfg.sim.a, cfg.sim.sigma_hill[0],
                                             decay_shape_factor=lambda p: 1 - p)
    d2 = xr.Dataset({"frac_final": (("point", "seed"), d2.loss.isel(step=-1).values),
                     "frac_pred": ("point", np.asarray(preds)),
                     "frac_div": (("point", "seed"), d2.diverged.values),
                     "fine_pred": ("fine", fine_pred)},
                    coords={"point": np.arange(len(fr)), "frac": ("point", np.asarray(fr)),
                            "is_cosine": ("point", np.asarray(sh) == 1), "fine": fine})
    return xr.merge([d1, d2], combine_attrs="override")


def _stationary_before_decay(cfg) -> bool:
    """The slowest hill relaxes within the stable phase: (stable steps) x min(lr) x min(a) >= 10 (e^-20)."""
    stable = cfg.sim.n_steps - int(round(cfg.decay_fraction * cfg.sim.n_steps))
    return stable * min(cfg.lrs) * min(cfg.sim.a) >= 10


STATIONARY = Regime("a stationary stable phase before the decay: (stable steps) x min(lrs) x min(sim.a) >= 10, so "
                    "the slowest hill has relaxed (e^-20) when the decay starts", _stationary_before_decay)


def _decay_start_index(cfg):
    t0 = cfg.sim.n_steps - int(round(cfg.decay_fraction * cfg.sim.n_steps))
    return t0 // cfg.sim.log_every


def claims(ds, cfg):
    out = []
    i0 = _decay_start_index(cfg)
    L = ds.loss.transpose("seed", "lr", "step").values.astype(np.float64)
    drop = L[:, :, i0] - L[:, :, -1]  # paired per seed
    pred_drop = ds.pred.values[:, i0] - ds.pred.values[:, -1]
    z, m, se = zscores(drop, pred_drop)
    stat = ds.stationary_excess.values
    out.append(Claim(
        id="decay_drop_exact",
        statement="the loss drop over the decay phase equals the theory's (hill excess relaxes + river gain), every lr",
        theory=f"{fmt(pred_drop, 3)}", measured=f"{fmt(m, 3)}; max |z| = {fmt(z.max())}",
        statistic=f"paired drop per seed, |mean - theory| / SE <= {cfg.n_sigma}",
        passed=bool(z.max() <= cfg.n_sigma and not ds.diverged.any())))
    ratio = m / stat
    out.append(Claim(
        id="decay_drop_is_hill_excess",
        statement="the drop is set by the stationary hill excess at the stable lr, sum_i eta sigma^2/(2(2 - eta a_i)): "
        "it grows with eta",
        theory=f"stationary excess {fmt(stat, 3)}", measured=f"drop / excess = {fmt(ratio, 3)}",
        statistic="drop increasing in eta and 0.8 <= drop/excess <= 1.2 for eta >= 0.05 (river gain and leftover "
                  "excess "
        "are the rest)",
        passed=bool(np.all(np.diff(m) > 0) and np.all(np.abs(ratio[np.asarray(cfg.lrs) >= 0.05] - 1) <= 0.2))))
    F = ds.frac_final.values.astype(np.float64)
    fm = F.mean(1)
    fse = mean_se(F, axis=1)[1]
    wsd = ~ds.is_cosine.values
    best = int(np.argmin(np.where(wsd, fm, np.inf)))
    cos = int(np.nonzero(ds.is_cosine.values)[0][0])
    diff = F[cos] - F[best]  # paired (common random numbers)
    dse = mean_se(diff)[1]
    out.append(Claim(
        id="wsd_beats_cosine",
        statement="at equal steps WSD with its best (short) decay reaches a final loss at least as low as cosine's",
        theory=f"WSD(f={fmt(ds.frac.values[best], 2)}) {fmt(ds.frac_pred.values[best])} "
        f"vs cosine {fmt(ds.frac_pred.values[cos])}",
        measured=f"WSD {fmt(fm[best])} +- {fmt(fse[best], 2)} vs cosine {fmt(fm[cos])} +- {fmt(fse[cos], 2)}",
        statistic="paired difference cosine - WSD > -2 SE (at least as low)",
        passed=bool(diff.mean() > -2 * dse)))
    fr = ds.frac.values[wsd]
    f_theory = float(ds.fine.values[np.argmin(ds.fine_pred.values)])
    f_sim = float(fr[np.argmin(fm[wsd])])
    # the grid cell that contains the theory's optimum, or its neighbours
    j = int(np.argmin(np.abs(fr - f_theory)))
    ok_set = fr[max(0, j - 1): j + 2]
    zf, _, _ = zscores(F[wsd].T, ds.frac_pred.values[wsd])
    out.append(Claim(
        id="optimal_decay_fraction",
        statement="the simulated best decay fraction matches the theory's optimum (and every point matches theory)",
        theory=f"f* = {fmt(f_theory, 3)} (continuous optimum)",
        measured=f"f* = {fmt(f_sim, 3)} on the grid; max |z| = {fmt(zf.max())}",
        statistic=f"grid argmin within one grid step of the theory optimum; |z| <= {cfg.n_sigma}",
        passed=bool(f_sim in ok_set and zf.max() <= cfg.n_sigma)))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 3, figsize=(13.5, 3.9))
    steps = ds.step.values
    # one distinct hue per lr (the style's cycle pairs blue / light blue and vermillion / orange: confusable)
    colors = ["#0072B2", "#D55E00", "#009E73", "#6A3D9A", "#000000", "#E69F00", "#CC79A7", "#56B4E9"] * 4
    for i, lr in enumerate(ds.lr.values):
        band(axs[0], steps, ds.loss.isel(lr=i).values, colors[i], rf"$\eta={lr:g}$")
        axs[0].plot(steps, ds.pred.isel(lr=i), "k--", lw=0.6)
    axs[0].plot([], [], "k--", lw=0.6, label="theory (exact)")
    axs[0].axvline(steps[_decay_start_index(cfg)], color="0.5", ls=":", lw=1)
    axs[0].set(yscale="log", xlabel="step $t$", ylabel=r"$\mathbb{E}\,f$",
               title=f"WSD ({cfg.decay_fraction:g} linear decay): plateau, then drop")
    axs[0].legend(fontsize=7.5, ncol=2)
    i0 = _decay_start_index(cfg)
    L = ds.loss.values.astype(np.float64)
    drop = L[:, :, i0] - L[:, :, -1]
    m, se = mean_se(drop, axis=1)
    lrs = ds.lr.values
    axs[1].errorbar(lrs, m, yerr=2 * se, fmt="o", color="C0", ms=4, label="simulated drop")
    axs[1].plot(lrs, ds.pred.values[:, i0] - ds.pred.values[:, -1], "k--", lw=0.8, label="theory (exact)")
    fine = np.linspace(lrs.min(), lrs.max(), 100)
    axs[1].plot(fine, tq.stationary_loss(fine, cfg.sim.a, cfg.sim.sigma_hill[0]), color="C1", lw=1,
                label="stationary hill excess")
    axs[1].text(0.97, 0.05, r"$\sum_i \eta\sigma^2 / (2(2-\eta a_i))$", transform=axs[1].transAxes, ha="right",
                fontsize=10, color="C1")
    axs[1].set(xscale="log", yscale="log", xlabel=r"stable lr $\eta$", ylabel="loss drop in the decay",
               title="decay drop vs lr")
    axs[1].legend(fontsize=7)
    wsd = ~ds.is_cosine.values
    F = ds.frac_final.values.astype(np.float64)
    fm, fse = mean_se(F, axis=1)
    axs[2].errorbar(ds.frac.values[wsd], fm[wsd], yerr=2 * fse[wsd], fmt="o", color="C0", ms=4,
                    label="WSD (linear decay), sim.")
    axs[2].plot(ds.fine, ds.fine_pred, "k--", lw=0.8, label="theory")
    c = int(np.nonzero(ds.is_cosine.values)[0][0])
    axs[2].axhspan(fm[c] - 2 * fse[c], fm[c] + 2 * fse[c], color="C1", alpha=0.3, lw=0)
    axs[2].axhline(fm[c], color="C1", lw=1, label="cosine, sim.")
    axs[2].set(xscale="log", yscale="log", xlabel="decay fraction $f$", ylabel="final loss",
               title=rf"final loss vs decay fraction ($\eta={cfg.frac_lr:g}$, {cfg.sim.n_steps} steps)")
    axs[2].legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=200", "sim.n_steps=400", "sim.log_every=20", "lrs=0.05,0.15",
        "fractions=0.1,0.5,1.0")},
    regimes={"decay_drop_is_hill_excess": STATIONARY},
)
