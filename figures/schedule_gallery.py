"""The schedule gallery, scored by the last-iterate bound; the numerically optimal schedule vs linear decay."""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, fmt, overrides, param
from sims import schedules as S
from theory import schedules as ts

NAME = "schedule_gallery"
DESCRIPTION = "every schedule of sims/schedules.py, its tuned last-iterate bound; optimal schedule ~ linear decay"
PAPER = "Defazio et al. 2023 (arXiv 2310.07831); Chen et al. 2022 (REX); Hagele et al. 2024; Gupta et al. 2023"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    T: int = param(200, ge=10, help="schedule length")
    T_opt: int = param(100, ge=10, help="length for the numerical optimum (L-BFGS-B on the bound)")


PRESETS = {"quick": Config(), "full": Config(T=1000, T_opt=400)}


def gallery(T):
    g = {
        "constant": S.constant(1.0),
        "linear decay": S.linear_decay(1.0, T),
        "cosine": S.cosine(1.0, T),
        "WSD 20% linear": S.wsd(1.0, T, decay_fraction=0.2),
        "WSD 20% 1-sqrt": S.wsd(1.0, T, decay_fraction=0.2, decay_shape="1-sqrt"),
        "WSD 20% cosine": S.wsd(1.0, T, decay_fraction=0.2, decay_shape="cosine"),
        "WSD 20% exponential": S.wsd(1.0, T, decay_fraction=0.2, decay_shape="exponential", final_ratio=0.01),
        "REX": S.rex(1.0, T),
        "REX sampled every T/10": S.sampled(S.rex(1.0, T), T // 10),
        "step (x0.1 at 50%, 75%)": S.step_schedule(1.0, [T // 2, 3 * T // 4], 0.1),
        "warmup 10% + cosine": S.warmup_cosine(1.0, T, T // 10),
        "cyclic cosine (2 cycles)": S.cyclic_cosine(1.0, [T // 2, T], 0.1),
        "rewarm at 50%": S.rewarm(S.cosine(1.0, T // 2, 0.1), T // 2, 1.0, T, T // 20, 0.0),
    }
    return {k: S.as_array(v, T) for k, v in g.items()}


def compute(cfg):
    g = gallery(cfg.T)
    names = list(g)
    arr = np.stack([g[k] for k in names])
    arr = np.maximum(arr, 0.0)
    b, c = ts.tuned_bound(arr)  # all schedules scored in one vectorized call
    eta, val = ts.optimal_schedule(cfg.T_opt)
    lin = S.as_array(S.linear_decay(1.0, cfg.T_opt), cfg.T_opt)
    lin_b, lin_c = ts.tuned_bound(lin)
    t = np.arange(cfg.T_opt)
    ds = xr.Dataset({"lr": (("schedule", "t"), arr), "tuned_bound": ("schedule", b), "tuned_peak": ("schedule", c),
                     "opt_eta": ("t_opt", eta), "opt_bound": val, "lin_tuned": ("t_opt", lin * lin_c),
                     "lin_bound": lin_b},
                    coords={"schedule": names, "t": np.arange(cfg.T), "t_opt": t})
    # refinement: constant norms -> linear decay exactly; decreasing then rising norms -> warmup + fast anneal
    G_const = np.ones(cfg.T)
    x = np.linspace(0, 1, cfg.T)
    G_shape = 1 + 8 * np.exp(-x / 0.03) + 1.5 * x**4
    ds["refine_const"] = ("t", ts.refine(G_const, smooth=False))
    ds["refine_shape"] = ("t", ts.refine(G_shape, smooth=False))
    ds["G_shape"] = ("t", G_shape)
    return ds


def claims(ds, cfg):
    out = []
    T = cfg.T
    exact = (T - 1 - np.arange(T)) / (T - 1)
    err = float(np.abs(ds.refine_const.values - exact).max())
    out.append(Claim(id="refine_constant_is_linear",
                     statement="refinement of a constant gradient-norm sequence is exactly linear "
                     "decay", theory="w_t = (T - t)/(T - 1)", measured=f"max |diff| = {fmt(err, 2)}",
                     statistic="<= 1e-12", passed=err <= 1e-12))
    r = ds.refine_shape.values
    warm = int(np.argmax(r))
    last = r[-T // 10:]
    lin_last = exact[-T // 10:]
    out.append(Claim(id="refine_shape",
                     statement="large early norms give a warmup, rising late norms a faster final anneal than "
                     "linear", theory="peak after step 0; below linear over the last 10%",
                     measured=f"peak at step {warm} (w_0 = {fmt(r[0], 2)}); mean over last 10% {fmt(last.mean(), 3)} "
                              "vs linear "
                     f"{fmt(lin_last.mean(), 3)}",
                     statistic="w_0 < 0.5 max, peak at t > 0, last-10% mean below linear's",
                     passed=bool(r[0] < 0.5 and warm > 0 and last.mean() < lin_last.mean())))
    b = dict(zip(ds.schedule.values, ds.tuned_bound.values))
    out.append(Claim(id="bound_linear_best",
                     statement="under the tuned last-iterate bound linear decay beats cosine and constant",
                     theory="linear < cosine < constant",
                     measured=f"linear {fmt(b['linear decay'])}, cosine {fmt(b['cosine'])}, "
                     f"constant {fmt(b['constant'])}, REX {fmt(b['REX'])}", statistic="strict order",
                     passed=bool(b["linear decay"] < b["cosine"] < b["constant"])))
    eta = ds.opt_eta.values
    lin = ds.lin_tuned.values
    dist = float(np.linalg.norm(eta - lin) / np.linalg.norm(lin))
    body = slice(0, int(0.9 * eta.size))
    dist_body = float(np.abs(eta[body] - lin[body]).max() / lin.max())
    gain = 1 - float(ds.opt_bound) / float(ds.lin_bound)
    measured = (f"rel. L2 distance {fmt(dist, 3)}; max deviation on the first 90% {fmt(dist_body, 3)} of the "
                f"peak; bound {fmt(float(ds.opt_bound))} vs tuned linear {fmt(float(ds.lin_bound))} "
                f"({fmt(100 * gain, 2)}% lower)")
    out.append(Claim(id="optimal_schedule_is_linear",
                     statement="the numerically optimal schedule (L-BFGS-B on the bound) is close to linear decay",
                     theory="linear decay (T -> infinity)", measured=measured,
                     statistic="rel. L2 distance <= 0.1 and optimum no worse than linear",
                     passed=bool(dist <= 0.1 and gain >= 0)))
    rx = S.as_array(S.rex(1.0, 4), 4)
    out.append(Claim(id="rex_profile",
                     statement="REX profile 2(1-z)/(2-z): eta(0.5) = 2/3, eta(0.75) = 0.4, above linear on (0,1)",
                     theory="[1, 0.857, 0.667, 0.4]", measured=fmt(rx, 4), statistic="abs error <= 1e-6",
                     passed=bool(np.allclose(rx, [1, 6 / 7, 2 / 3, 0.4], atol=1e-6)
                          and np.all(ts.rex_profile(np.linspace(0.01, 0.99, 99)) > 1 - np.linspace(0.01, 0.99, 99)))))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 3, figsize=(13.5, 3.9))
    names = list(ds.schedule.values)
    for i, n in enumerate(names):
        axs[0].plot(ds.t, ds.lr.isel(schedule=i), color=f"C{i % 8}", ls=["-", "--", ":"][i // 8], lw=1.1, label=n)
    axs[0].set(xlabel="step", ylabel="lr / peak", title="schedule gallery (sims/schedules.py)")
    axs[0].legend(fontsize=5.5, ncol=2)
    order = np.argsort(ds.tuned_bound.values)
    y = np.arange(len(names))
    axs[1].barh(y, ds.tuned_bound.values[order] * np.sqrt(cfg.T), color="C0")
    axs[1].set_yticks(y, [names[i] for i in order], fontsize=6)
    axs[1].set(xlabel=r"tuned bound $\times\sqrt{T}$ ($D=G=1$)", title=f"last-iterate bound, T = {cfg.T}")
    axs[1].set_xlim(1.8, None)
    axs[2].plot(ds.t_opt, ds.opt_eta, color="C1", lw=1.5, label=f"numerical optimum ({float(ds.opt_bound):.4f})")
    axs[2].plot(ds.t_opt, ds.lin_tuned, "k--", lw=1, label=f"tuned linear decay ({float(ds.lin_bound):.4f})")
    ax3 = axs[2].twinx()
    ax3.plot(ds.t / cfg.T * cfg.T_opt, ds.refine_shape * float(ds.opt_eta.max()), color="C2", lw=1, alpha=0.8)
    ax3.set_yticks([])
    axs[2].plot([], [], color="C2", label="refined from warm-up-then-rising norms")
    axs[2].set(xlabel="step", ylabel=r"$\eta_t$", title=f"bound-optimal schedule, T = {cfg.T_opt}")
    axs[2].legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"])},
)
