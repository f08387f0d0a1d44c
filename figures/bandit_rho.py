"""DynLin-UCB vs the spectral radius: regret growth in 1/(1 - rho) at fixed h, and a misspecified rho_bar."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, float64, fmt, mean_se, overrides, param
from sims.bandits import BanditConfig, instance, sim
from sims.sweep import sweep
from theory import bandits as tb

NAME = "bandit_rho"
DESCRIPTION = "DynLin-UCB regret vs 1/(1 - rho) at fixed h (fitted slope vs the bound's 3/2); rho_bar misspecified"
PAPER = "Mussi, Metelli, Restelli, ICML 2023 (arXiv 2211.08997)"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is DynLin-UCB's run in both panels (rho panel: the instances of `rhos`, stacked; misspecification
    panel: the instance of `misspec_rho` at each rho_bar of `misspec_factors`)."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {
        "sim.instance": "rho=... for each of `rhos`, and for `misspec_rho`",
        "sim.algorithms": "dynlinucblog (DynLin-UCB, lambda = log T)",
        "sim.rho_bar": "the true rho (rho panel); each of `misspec_factors` x `misspec_rho`",
        "sim.noise_variance": "authors: sigma^2 in the radii, as the paper's code",
    }
    sim: BanditConfig = BanditConfig(horizon=100_000, log_every=1000)
    seeds: int = param(5, ge=2)
    rhos: tuple[float, ...] = param(unique=True, default=(0.2, 0.5, 0.8, 0.9, 0.95), ge=0.1, lt=1)
    misspec_rho: float = param(0.9, ge=0.1, lt=1, help="true rho of the misspecification panel")
    misspec_factors: tuple[float, ...] = param(unique=True, default=(0.25, 0.5, 1.0, 1.05), gt=0, help="rho_bar / rho")
    key_seed: int = param(0, ge=0)

    def check(self):
        if self.sim.horizon < 1000 or self.sim.horizon // self.sim.log_every < 10:
            raise ValueError(f"sim.horizon ({self.sim.horizon}) must be >= 1000 with >= 10 records "
                             f"(sim.log_every = {self.sim.log_every})")
        if max(self.misspec_factors) * self.misspec_rho >= 1:
            raise ValueError("rho_bar = factor x misspec_rho must stay < 1")


PRESETS = {"quick": Config(), "full": Config(sim=BanditConfig(horizon=1_000_000, log_every=10_000), seeds=10)}


@float64
def compute(cfg):
    """Two compiled calls: the rho panel stacks its instances as arrays (hparam ``inst``), the misspecification
    panel its rho_bar values (hparam ``rb``); each vmapped with the seeds."""
    key = jax.random.key(cfg.key_seed)
    kw = dict(seeds=cfg.seeds, key=key)
    base = dataclasses.replace(cfg.sim, algorithms=("dynlinucblog",))
    bc = dataclasses.replace(base, instance=tuple(f"rho={rho}" for rho in cfg.rhos))
    ds = sweep(sim(bc), {"inst": list(range(len(cfg.rhos)))}, **kw)
    R = ds.pseudo_regret.values
    bc = dataclasses.replace(base, instance=f"rho={cfg.misspec_rho}",
                             rho_bar=tuple(f * cfg.misspec_rho for f in cfg.misspec_factors))
    ds = sweep(sim(bc), {"rb": list(range(len(cfg.misspec_factors)))}, **kw)
    H, names = ds.h_hat.values, ds.pseudo_regret.values
    inst = instance(f"rho={cfg.misspec_rho}")
    return xr.Dataset({"regret": (("rho", "seed", "step"), R),
                       "mis_h_hat": (("factor", "seed", "coord"), H),
                       "mis_regret": (("factor", "seed", "step"), names),
                       "h": ("coord", tb.markov_parameter(inst)), "theta": ("coord", inst.theta)},
                      coords={"rho": list(cfg.rhos), "factor": list(cfg.misspec_factors), "step": bc.steps()})


def claims(ds, cfg):
    out = []
    RT = ds.regret.isel(step=-1).mean("seed").values
    x = np.log(1 / (1 - ds.rho.values))
    slope, icpt = np.polyfit(x, np.log(RT), 1)
    out.append(Claim(
        id="rho_dependence",
        statement="regret grows with 1/(1 - rho) at fixed h no faster than the bound's (1 - rho)^(-3/2)",
        theory="slope <= 1.5 (an upper bound)", measured=f"fitted slope {fmt(slope, 3)}; R_T = {fmt(RT, 3)} at rho = "
        f"{fmt(ds.rho.values, 2)}", statistic="least-squares slope of log R_T on log 1/(1-rho) <= 1.5",
        passed=bool(slope <= 1.5)))
    h, th = ds.h.values, ds.theta.values
    hh = ds.mis_h_hat.mean("seed").values  # factor, coord
    # project the estimate on the segment theta -> h: 0 = theta, 1 = h
    lam = (hh - th) @ (h - th) / ((h - th) @ (h - th))
    f = ds.factor.values
    under = lam[f < 1]
    exact = lam[f == 1][0]
    over = lam[f > 1]
    ok = bool(np.all(under < exact - 0.1) and np.all(np.abs(over - exact) < 0.1))
    out.append(Claim(
        id="rho_bar_misspecified",
        statement="under-estimating rho(A) biases the estimate of h toward theta (epochs too short "
        "for the state to settle); over-estimating only lengthens epochs",
        theory="position of h_hat on theta -> h: < 1 for rho_bar < rho, ~1 otherwise",
        measured="; ".join(f"rho_bar/rho={a:g}: {fmt(b, 3)}" for a, b in zip(f, lam)),
        statistic="every under-estimate >= 0.1 below the exact-rho value (toward theta); over-estimates within 0.1 of "
                  "it "
        "(the bias need not be monotone in rho_bar: when UCB keeps the same arm over consecutive short epochs the "
        "state settles anyway)", passed=ok))
    return out


def plot(ds, cfg):
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.7))
    s = ds.step.values
    for i, rho in enumerate(ds.rho.values):
        m = ds.regret.sel(rho=rho).mean("seed")
        ax1.plot(s, m, color=f"C{i}", label=rf"$\rho={rho:g}$")
    ax1.set(xlabel="round", ylabel="pseudo-regret", title=r"DynLin-UCB ($\lambda=\log T$), $h$ fixed")
    ax1.legend(fontsize=7)
    RT = ds.regret.isel(step=-1)
    x = 1 / (1 - ds.rho.values)
    m, se = mean_se(RT)
    ax2.errorbar(x, m, yerr=2 * se, fmt="o", color="C0",
                 label="simulated $R_T$")
    slope, icpt = np.polyfit(np.log(x), np.log(RT.mean("seed").values), 1)
    xx = np.geomspace(x.min(), x.max(), 50)
    ax2.plot(xx, np.exp(icpt) * xx**slope, "C0-", lw=1, label=f"fit: slope {slope:.2f}")
    ax2.plot(xx, np.exp(icpt) * xx[0] ** slope * (xx / xx[0]) ** 1.5, "k--", lw=0.8, label="slope 3/2 (bound)")
    ax2.set(xscale="log", yscale="log", xlabel=r"$1/(1-\rho)$", ylabel="$R_T$", title="regret vs $1/(1-\\rho)$")
    ax2.legend(fontsize=7)
    h, th = ds.h.values, ds.theta.values
    for i, f in enumerate(ds.factor.values):
        hh = ds.mis_h_hat.sel(factor=f).values
        ax3.scatter(hh[:, 0], hh[:, 1], s=12, color=f"C{i}", label=rf"$\bar\rho={f:g}\rho$")
    ax3.plot(*h[:2], "k*", ms=12, label="$h$")
    ax3.plot(*th[:2], "kx", ms=9, mew=2, label=r"$\theta$")
    ax3.set(xlabel=r"$\hat h_1$", ylabel=r"$\hat h_2$", title=rf"final $\hat h$, $\rho={cfg.misspec_rho:g}$")
    ax3.legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=2", "sim.horizon=2000", "sim.log_every=20", "rhos=0.5,0.9",
        "misspec_factors=0.5,1.0")},
)
