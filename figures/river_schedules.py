"""River valley: loss vs step and vs tau = sum of lrs for a schedule family, against theory."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, band, fmt, mean_se, overrides, param, zscores
from figures._river import STRAIGHT_RIVER
from sims import schedules as S
from sims.river_valley import RiverConfig, sim
from sims.sweep import sweep
from theory import river_valley as tr

NAME = "river_schedules"
DESCRIPTION = "loss = river(tau) + exact hill excess for any schedule; collapse in tau; noise-driven river drift"
PAPER = "Wen et al. 2024 (arXiv 2410.05192), Sec. 3"

FAMILY = {  # label -> (decay_fraction, shape)
    "constant": (0.0, "linear"),
    "cosine": (1.0, "cosine"),
    "linear decay": (1.0, "linear"),
    "WSD 20% linear": (0.2, "linear"),
    "WSD 20% 1-sqrt": (0.2, "1-sqrt"),
}


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the schedule panel's valley; the kappa panel runs it with one hill of sharpness ``kappa_a`` at
    sharpness variation -kappa and +kappa for twice the steps."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {**STRAIGHT_RIVER,
                                            "sim.kappa": "0 in the schedule panel, -+kappa in the kappa panel",
                                            "sim.schedule": "the WSD / cosine family of the figure, peak `lr`"}
    SET_IN_PANELS: typing.ClassVar[dict] = {
        "sim.a": "the kappa panel runs one hill of sharpness `kappa_a`",
        "sim.n_steps": "the kappa panel runs twice as many steps",
        "sim.log_every": "the kappa panel records every 2 x sim.log_every steps"}
    sim: RiverConfig = RiverConfig(a=(10.0, 5.0), sigma_hill=(1.0,), n_steps=2000, log_every=20)
    seeds: int = param(2000, ge=2)
    lr: float = param(0.1, gt=0, help="peak lr (stable iff < 2/max(sim.a))")
    kappa: float = param(0.3, help="sharpness variation along the river, a(u) = a exp(kappa u)")
    kappa_a: float = param(4.0, gt=0, help="hill sharpness at u = 0 in the kappa panel")
    n_sigma: float = param(4.0, gt=0)
    key_seed: int = param(0, ge=0)

    def check(self):
        if len(self.sim.sigma_hill) != 1:
            raise ValueError("sim.sigma_hill must hold one value (one hill noise scale)")
        if self.lr * max(self.sim.a) >= 2:
            raise ValueError(f"lr={self.lr} must be < 2/max(sim.a) = {2 / max(self.sim.a):g} (stable hills)")


PRESETS = {"quick": Config(),
           "full": Config(sim=dataclasses.replace(Config().sim, n_steps=10000, log_every=50), seeds=20000)}


def _lrs(cfg, frac, shape):
    return S.as_array(S.family_schedule(S.family(cfg.lr, frac, shape), cfg.sim.n_steps), cfg.sim.n_steps)


def compute(cfg: Config) -> xr.Dataset:
    k1, k2 = jax.random.split(jax.random.key(cfg.key_seed))
    rc = cfg.sim
    fr = [v[0] for v in FAMILY.values()]
    sh = [S.DECAY_SHAPES.index(v[1]) for v in FAMILY.values()]
    ds = sweep(sim(rc), {"decay_fraction": fr, "shape_id": sh}, mode="zip", fixed={"lr": cfg.lr},
               seeds=cfg.seeds, key=k1)
    ds = ds.rename({"point": "schedule"}).assign_coords(schedule=list(FAMILY))
    lrs = np.stack([_lrs(cfg, f, s) for f, s in FAMILY.values()])
    ev = slice(None, None, cfg.sim.log_every)
    sig = cfg.sim.sigma_hill[0]
    ds["pred_loss"] = (("schedule", "step"), np.stack([tr.predicted_loss(l, cfg.sim.a, sig)[ev] for l in lrs]))
    ds["pred_river_gd"] = (("schedule", "step"), np.stack([tr.river_loss(tr.gd_river(l))[ev] for l in lrs]))
    ds["tau"] = (("schedule", "step"), np.stack([tr.cumulative_lr(l)[ev] for l in lrs]))
    ds["pred_river_flow"] = (("schedule", "step"), tr.river_loss(tr.gradient_flow_river(ds.tau.values)))
    # sharpness varying along the river: the river drift gets a noise term (theory.effective_drift)
    out = [ds]
    for kap in (-cfg.kappa, cfg.kappa):
        kc = dataclasses.replace(cfg.sim, a=(cfg.kappa_a,), kappa=kap, n_steps=2 * cfg.sim.n_steps,
                                 log_every=2 * cfg.sim.log_every)
        dk = sweep(sim(kc), {"lr": [cfg.lr]}, seeds=cfg.seeds, key=k2)
        lr_k = np.full(kc.n_steps, cfg.lr)
        tag = "kneg" if kap < 0 else "kpos"
        out.append(xr.Dataset({
            f"u_{tag}": (("seed", "kstep"), dk.u.isel(lr=0).values),
            f"u_ode_{tag}": ("kstep", tr.river_ode(lr_k, kc.a, cfg.sim.sigma_hill[0], kap)[:: kc.log_every]),
            f"div_{tag}": ("seed", dk.diverged.isel(lr=0).values),
        }, coords={"kstep": kc.steps()}))
    lr_k = np.full(2 * cfg.sim.n_steps, cfg.lr)
    out.append(xr.Dataset({"u_gd_k": ("kstep", tr.gd_river(lr_k)[:: 2 * cfg.sim.log_every])},
                          coords={"kstep": out[-1].kstep.values}))
    return xr.merge(out, combine_attrs="override")


def claims(ds, cfg):
    out = []
    L = ds.loss.transpose("seed", "schedule", "step").values
    z, _, _ = zscores(L, ds.pred_loss.values)
    n_div = int(ds.diverged.sum())
    out.append(Claim(
        id="loss_decomposition",
        statement=f"straight river: E loss = river loss (GD on l) + exact hill excess, {len(FAMILY)} schedules, every "
                  "record",
        theory="l(u_t) + sum_i a_i V_t,i / 2",
        measured=f"max |z| = {fmt(z.max())} over {z.size} points; {n_div} diverged",
        statistic=f"|mean - theory| / SE <= {cfg.n_sigma}", passed=bool(z.max() <= cfg.n_sigma and n_div == 0)))
    # collapse in tau: mean river loss vs gradient flow at tau; tolerance = the exact GD-vs-flow
    # discretization error of the worst schedule (computed from theory alone) + n_sigma SE
    R = ds.river_loss.transpose("seed", "schedule", "step").values.astype(np.float64)
    m = R.mean(0)
    se = mean_se(R, axis=0)[1]
    flow = ds.pred_river_flow.values
    rel = np.abs(m - flow) / flow
    disc = np.abs(ds.pred_river_gd.values - flow) / flow
    tol = disc.max() + cfg.n_sigma * (se / flow).max()
    # the same curves at equal STEP spread far more (cosine has half the tau of constant)
    spread_step = (m.max(0) - m.min(0)) / m.min(0)
    out.append(Claim(
        id="collapse_in_tau",
        statement="river loss depends on the schedule only through tau = sum of lrs (gradient flow in tau)",
        theory=f"l(u_flow(tau)); discretization bound {fmt(disc.max(), 3)} (rel.)",
        measured=f"max rel. deviation from flow {fmt(rel.max(), 3)} (vs spread at equal step "
                 f"{fmt(spread_step.max(), 3)})",
        statistic=f"max rel. dev <= exact-GD discretization bound + {cfg.n_sigma} SE = {fmt(tol, 3)}",
        passed=bool(rel.max() <= tol and spread_step.max() > 3 * rel.max())))
    for tag, kap in (("kneg", -cfg.kappa), ("kpos", cfg.kappa)):
        U = ds[f"u_{tag}"].values
        zk, mk, sek = zscores(U[:, -1], ds[f"u_ode_{tag}"].values[-1])
        zp = abs(mk - ds.u_gd_k.values[-1]) / sek
        out.append(Claim(
            id=f"noise_drift_kappa_{kap:+g}",
            statement=f"hill sharpness a(u) = a e^({kap:+g} u): noise adds the drift -sum kappa eta sigma^2/(2(2-eta "
                      "a(u))) "
            "to the river (plain GD on l misses it)",
            theory=f"u_T = {fmt(ds[f'u_ode_{tag}'].values[-1])} (plain GD: {fmt(ds.u_gd_k.values[-1])})",
            measured=f"u_T = {fmt(mk)} +- {fmt(sek, 2)}; |z| = {fmt(zk)} vs plain GD |z| = {fmt(zp)}",
            statistic=f"|z| <= {cfg.n_sigma} for the corrected ODE and > {cfg.n_sigma} for plain GD",
            passed=bool(zk <= cfg.n_sigma and zp > cfg.n_sigma and not ds[f"div_{tag}"].any())))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.7))
    steps = ds.step.values
    for i, lab in enumerate(ds.schedule.values):
        c = f"C{i}"
        band(axs[0], steps, ds.loss.isel(schedule=i).values, c, lab)
        axs[0].plot(steps, ds.pred_loss.isel(schedule=i), "k--", lw=0.7)
        band(axs[1], ds.tau.isel(schedule=i).values, ds.river_loss.isel(schedule=i).values, c, lab)
    axs[0].plot([], [], "k--", lw=0.7, label="theory: $\\ell(u_t)$ + exact hill excess")
    axs[0].set(yscale="log", xlabel="step $t$", ylabel="$\\mathbb{E}\\,f(x_t)$",
               title=rf"loss vs step ($\eta_{{\max}}={cfg.lr:g}$, $a={cfg.sim.a}$)")
    axs[0].legend(fontsize=7)
    tau = np.linspace(0, float(ds.tau.max()), 300)
    axs[1].plot(tau, tr.river_loss(tr.gradient_flow_river(tau)), "k--", lw=0.8, label="gradient flow in $\\tau$")
    axs[1].set(yscale="log", xlabel=r"$\tau_t=\sum_{r<t}\eta_r$", ylabel=r"river loss $\ell(u_t)$",
               title=r"river progress collapses in $\tau$")
    axs[1].legend(fontsize=7)
    ks = ds.kstep.values
    for tag, c, kap in (("kneg", "C2", -cfg.kappa), ("kpos", "C3", cfg.kappa)):
        band(axs[2], ks, ds[f"u_{tag}"].values, c, rf"SGD, $\kappa={kap:+g}$")
        axs[2].plot(ks, ds[f"u_ode_{tag}"], "k--", lw=0.8)
    axs[2].plot(ks, ds.u_gd_k, ":", color="0.4", lw=1.2, label=r"GD on $\ell$ (no noise drift)")
    axs[2].plot([], [], "k--", lw=0.8, label="theory: river ODE with noise drift")
    axs[2].set(xlabel="step $t$", ylabel="river coordinate $u_t$",
               title=r"sharpness $a(u)=a e^{\kappa u}$ bends the river")
    axs[2].legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=200", "sim.n_steps=400", "sim.log_every=20")},
)
