"""Lion-K phase 1 and limits: trajectories into the box ||x||_inf <= 1/lambda, excess-distance bound, KKT limit."""

from __future__ import annotations

import dataclasses

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, fmt, overrides, param
from sims.lion import LionConfig, averaged_limit, sim
from sims.sweep import sweep
from theory import lion as tl

NAME = "lion_box"
DESCRIPTION = "Lion enters the box ||x||_inf <= 1/lambda at rate (1 - eps lambda)^t and stops at its KKT point"
PAPER = "Chen, Liu, Liang, Liu, ICLR 2024 (arXiv 2310.05898), Sec. 3"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    # the two sims this figure runs: the KKT panel (Rosenbrock from X0) and the box-entry panel (every step of many
    # far-away starts with noisy gradients on a quadratic)
    kkt: LionConfig = LionConfig(problem="rosenbrock", d=2, n_steps=6000, log_every=12, x0=(3.0, -4.0))
    box: LionConfig = LionConfig(problem="quadratic", d=8, n_steps=6000, log_every=1, x0_scale=20.0, grad_noise=5.0)
    seeds: int = param(256, ge=1, help="random far-away starts with noisy gradients (box-entry panel)")
    lr: float = param(1e-2, gt=0, help="epsilon")
    lambdas: tuple[float, ...] = param(
        unique=True, default=(1 / 0.6, 1 / 0.3), gt=0, help="weight decays (box radius 1/lambda)")
    key_seed: int = param(0, ge=0)

    def check(self):
        if self.lr * max(self.lambdas) > 1:
            raise ValueError(f"need lr * lambda <= 1 for the phase-1 bound, got {self.lr * max(self.lambdas)}")
        if self.kkt.problem != "rosenbrock" or self.kkt.d != 2 or self.box.problem != "quadratic":
            raise ValueError("kkt must be the 2-d Rosenbrock problem and box a quadratic (kkt.problem, box.problem)")
        if self.box.log_every != 1:
            raise ValueError("box.log_every must be 1 (the box-entry bound is checked at every step)")


PRESETS = {"quick": Config(),
           "full": Config(kkt=LionConfig(problem="rosenbrock", d=2, n_steps=60000, log_every=120, x0=(3.0, -4.0)),
                          box=LionConfig(problem="quadratic", d=8, n_steps=60000, log_every=1, x0_scale=20.0,
                                         grad_noise=5.0), seeds=4096, lr=1e-3)}


def compute(cfg):
    key = jax.random.key(cfg.key_seed)
    parts = {}
    f, _ = tl.problem("rosenbrock", 2)
    lams = list(cfg.lambdas) + [0.0]
    trajs, limits = [], []
    for lam in lams:
        xbar, ds = averaged_limit(cfg.kkt, cfg.lr, lam, key=key)
        trajs.append(ds.x.isel(lr=0, seed=0).values)
        limits.append(xbar[0])
    parts["traj"] = (("lam", "tstep", "coord"), np.stack(trajs))
    parts["limit"] = (("lam", "coord"), np.stack(limits))
    refs = [tl.solve_composite(f, tl.get_kappa("l1"), lam, 2) if lam > 0 else np.array([1.0, 1.0]) for lam in lams]
    parts["ref"] = (("lam", "coord"), np.stack(refs))
    # box entry: every step of many seeds, noisy gradients, far-away starts
    bc = cfg.box
    lam = cfg.lambdas[0]
    with jax.enable_x64(True):  # float64: the bound is checked to float64 rounding
        db = sweep(sim(bc), {"lr": [cfg.lr]}, fixed={"weight_decay": lam}, seeds=cfg.seeds, key=key,
                   dims={"x": ("coord8",), "m": ("coord8",)})
    x = db.x.isel(lr=0).values.astype(np.float64)  # seed, step, coord
    excess = np.maximum(np.abs(x) - 1 / lam, 0)
    bound = np.stack([tl.box_excess_bound(x[s, 0], cfg.lr, lam, np.arange(x.shape[1])) for s in range(x.shape[0])])
    out = xr.Dataset(parts, coords={"lam": lams})
    out["excess_max"] = (("seed", "step"), excess.max(-1))
    out["bound_max"] = (("seed", "step"), bound.max(-1))
    out["viol"] = (("seed",), (excess - bound).max((1, 2)))
    inside = excess <= 0
    # after first entry, a coordinate must stay inside (up to float rounding of 1/lam)
    entered = np.maximum.accumulate(inside, axis=1)
    out["left_after_entry"] = (("seed",), (entered & ~inside & (excess > 1e-12)).any((1, 2)))
    out["box_lam"] = lam
    out["box_diverged"] = int(db.diverged.sum())
    return out


def claims(ds, cfg):
    out = []
    viol = float(ds.viol.max())
    out.append(Claim(id="box_entry_bound",
                     statement="phase 1: each coordinate's excess max(|x_i| - 1/lambda, 0) <= (1 - eps lambda)^t x "
                               "excess_0, "
                     f"every step, every seed ({int(ds.sizes['seed'])}), noisy gradients",
                     theory="(1 - eps lambda)^t excess_0", measured=f"max (excess - bound) = {fmt(viol, 3)}",
                     statistic="<= 1e-12 (float64 rounding)", passed=bool(viol <= 1e-12 and int(ds.box_diverged) == 0)))
    out.append(Claim(id="box_invariance", statement="once inside the box a coordinate stays inside",
                     theory="never leaves",
                     measured=f"{int(ds.left_after_entry.sum())} seeds left", statistic="count == 0",
                     passed=bool(int(ds.left_after_entry.sum()) == 0)))
    for i, lam in enumerate(ds.lam.values):
        lim, ref = ds.limit.values[i], ds.ref.values[i]
        err = float(np.abs(lim - ref).max())
        if lam > 0:
            out.append(Claim(id=f"kkt_limit_lambda_{lam:.3g}",
                             statement="Rosenbrock: Lion's (time-averaged) limit is the box-constrained minimizer, "
                             f"lambda={lam:.3g}",
                             theory=f"L-BFGS-B: {fmt(ref, 4)}", measured=f"{fmt(lim, 4)}",
                             statistic=f"max |diff| <= 10 eps = {10 * cfg.lr:g}",
                             passed=bool(err <= 10 * cfg.lr)))
        else:
            r = 1 / float(ds.lam.values[0])
            outside = float(np.abs(lim).max())
            out.append(Claim(id="no_weight_decay_no_box",
                             statement="negative control: with lambda = 0 there is no constraint; the "
                             f"iterate leaves the box of radius {r:.3g} for the unconstrained minimizer (1, 1)",
                             theory="(1, 1)", measured=f"{fmt(lim, 4)}",
                             statistic=f"||x||_inf > {r:.3g} and |x - (1,1)| <= 10 eps",
                             passed=bool(outside > r and err <= 10 * cfg.lr)))
    return out


def plot(ds, cfg):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    f, _ = tl.problem("rosenbrock", 2)
    u = np.linspace(-4.5, 4.5, 300)
    U, V = np.meshgrid(u, u)
    F = (1 - U) ** 2 + 5 * (V - U**2) ** 2
    ax1.contour(U, V, np.log10(F + 1e-3), levels=25, colors="0.75", linewidths=0.5)
    for i, lam in enumerate(ds.lam.values):
        c = f"C{i}"
        tr = ds.traj.values[i]
        lab = rf"$\lambda={lam:.3g}$" if lam > 0 else r"$\lambda=0$ (no box)"
        ax1.plot(tr[:, 0], tr[:, 1], color=c, lw=1.2, label=lab)
        if lam > 0:
            r = 1 / lam
            ax1.add_patch(plt.Rectangle((-r, -r), 2 * r, 2 * r, fill=False, ec=c, ls="--", lw=1))
            ax1.plot(*ds.ref.values[i], "*", color=c, ms=12, mec="k", zorder=5)
    ax1.plot(1, 1, "k*", ms=12, label="unconstrained min (1, 1)")
    ax1.plot(*cfg.kkt.x0, "ko", ms=5)
    ax1.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), xlabel="$x_1$", ylabel="$x_2$", aspect="equal",
            title=rf"Lion on $(1-x_1)^2+5(x_2-x_1^2)^2$, $\epsilon={cfg.lr:g}$ ($\star$: L-BFGS-B box solution)")
    ax1.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    t = np.arange(ds.sizes["step"])
    ex = ds.excess_max.values
    for s in range(min(30, ex.shape[0])):
        ax2.plot(t, np.where(ex[s] > 1e-15, ex[s], np.nan), color="C0", lw=0.5, alpha=0.5)
    ax2.plot(t, ds.bound_max.values.max(0), "k--", lw=1.2, label=r"bound $(1-\epsilon\lambda)^t\max_s$ excess$_0$")
    ax2.plot([], [], color="C0", lw=0.8, label=f"max coordinate excess (30 of {ex.shape[0]} seeds)")
    inside = np.nonzero(np.any(ex > 1e-14, axis=0))[0]  # steps with some seed still outside the box (to 1e-14)
    last = int(inside[-1]) if inside.size else len(t) - 1
    ax2.set(yscale="log", ylim=(1e-14, None), xlim=(0, min(len(t) - 1, 1.15 * last + 1)), xlabel="step",
            ylabel=r"$\max_i(|x_i|-1/\lambda)_+$",
            title=rf"box entry at $\lambda={cfg.lambdas[0]:.3g}$ (box $1/\lambda={1 / cfg.lambdas[0]:.3g}$), "
                  rf"$d={cfg.box.d}$ quadratic, noise $\sigma={cfg.box.grad_noise:g}$")
    ax2.legend(fontsize=7.5)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=16")},
)
