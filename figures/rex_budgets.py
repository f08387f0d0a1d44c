"""REX vs linear decay across training budgets (each at its own tuned peak lr), with the bound's view."""

from __future__ import annotations

import dataclasses

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, fmt, mean_se, overrides, param
from sims import schedules as S
from sims.convex_sgd import ConvexConfig, make_data, sim
from sims.sweep import sweep, tune_lr
from theory import schedules as ts

NAME = "rex_budgets"
DESCRIPTION = "REX vs linear decay at budgets from 1% to 100% of a full run, tuned lr each, on convex toys"
PAPER = "Chen, Wolfe, Kyrillidis 2022 (REX, arXiv 2107.04197)"
CENTER = {"abs": 0.1, "logistic": 3.0, "least_squares": 0.1}
SHAPES = {"linear": S.DECAY_SHAPES.index("linear"), "REX": S.DECAY_SHAPES.index("rex")}


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    seeds: int = param(64, ge=2)
    full_steps: int = param(4000, ge=100)
    budgets: tuple[float, ...] = param(
        unique=True, default=(0.01, 0.05, 0.25, 1.0), gt=0, le=1, help="fractions of full_steps")
    problems: tuple[str, ...] = param(unique=True, default=("logistic", "abs", "least_squares"), choices=tuple(CENTER))
    half_octaves: int = param(6, ge=1)
    key_seed: int = param(0, ge=0)


PRESETS = {"quick": Config(), "full": Config(seeds=256, full_steps=20000, budgets=(0.01, 0.02, 0.05, 0.1, 0.25, 0.5,
                                                                                   1.0))}


def compute(cfg):
    key = jax.random.key(cfg.key_seed)
    ks = np.arange(-cfg.half_octaves, cfg.half_octaves + 1)
    res = np.full((len(cfg.problems), len(cfg.budgets), 2, cfg.seeds), np.nan)
    best_lr = np.zeros((len(cfg.problems), len(cfg.budgets), 2))
    interior = np.zeros((len(cfg.problems), len(cfg.budgets), 2), bool)
    for p, prob in enumerate(cfg.problems):
        for bi, frac in enumerate(cfg.budgets):
            T = max(10, int(round(frac * cfg.full_steps)))
            T -= T % 10
            cc = ConvexConfig(problem=prob, n_steps=T, log_every=T // 10)
            A, b = make_data(prob, cc.n, cc.d, cc.data_seed, cc.noise)
            fstar, _ = ts.erm_optimum(prob, A, b)
            lrs = CENTER[prob] * 2.0 ** (ks / 2)
            def evaluate(lr, arm, cc=cc, T=T, fstar=fstar):  # (lr, shape) pairs, same seeds for every pair
                sid = np.asarray(list(SHAPES.values()))[arm]
                ds = sweep(sim(cc), {"lr": lr, "shape_id": sid}, mode="zip", fixed={"decay_fraction": 1.0},
                           seeds=cfg.seeds, key=key)
                return ds.loss.isel(step=-1).where(~ds.diverged).values - fstar

            tu = tune_lr(evaluate, len(SHAPES), lrs)  # each schedule's own peak lr, grid grown until interior
            res[p, bi] = tu.best
            best_lr[p, bi] = tu.best_lr
            interior[p, bi] = tu.interior
    bound = np.array([[float(ts.tuned_bound(S.as_array(S.family_schedule(S.family(1.0, 1.0, n), T), T))[0])
                       for n in ("linear", "rex")] for T in
                      [max(10, int(round(f * cfg.full_steps))) for f in cfg.budgets]])
    return xr.Dataset({"final": (("problem", "budget", "schedule", "seed"), res),
                       "best_lr": (("problem", "budget", "schedule"), best_lr),
                       "interior": (("problem", "budget", "schedule"), interior),
                       "bound": (("budget", "schedule"), bound)},
                      coords={"problem": list(cfg.problems), "budget": list(cfg.budgets), "schedule": list(SHAPES)})


def claims(ds, cfg):
    out = []
    for prob in ds.problem.values:
        rows, small_ok, last = [], None, None
        all_in = bool(ds.interior.sel(problem=prob).all())
        for b in ds.budget.values:
            d = (ds.final.sel(problem=prob, budget=b, schedule="linear")
                 - ds.final.sel(problem=prob, budget=b, schedule="REX")).values  # > 0: REX better
            m, se = mean_se(d, skipna=True)
            verdict = "REX" if m > 2 * se else ("linear" if m < -2 * se else "tie")
            lr = ds.best_lr.sel(problem=prob, budget=b).values
            rel = m / float(ds.final.sel(problem=prob, budget=b, schedule="linear").mean())
            rows.append(f"{b:g}: {verdict} ({fmt(m, 2)} +- {fmt(se, 1)}, {fmt(100 * rel, 2)}% of linear's; "
                        f"lr linear {fmt(lr[0], 3)}, REX {fmt(lr[1], 3)})")
            if small_ok is None:
                small_ok = m > -2 * se
            last = (m, se)
        out.append(Claim(
            id=f"rex_vs_linear_{prob}",
            statement=f"{prob}: REX is at least as good as linear decay at the smallest budget "
            "(paper: REX wins at low budgets, >= at high)", theory="bound: linear slightly better at every budget "
            f"({fmt(ds.bound.values[0], 4)})",
            measured="per budget (fraction: winner (linear - REX)): " + "; ".join(rows),
            statistic="paired difference at the smallest budget >= -2 SE; every tuned lr interior",
            passed=bool(small_ok and all_in),
            finding="" if small_ok or not all_in else "linear decay wins at the smallest budget in this toy"))
        big_ok = bool(last[0] > -2 * last[1])
        out.append(Claim(
            id=f"rex_high_budget_{prob}",
            statement=f"{prob}: REX is at least as good as linear decay at the full budget (paper)",
            theory="bound: linear slightly better", measured=f"linear - REX = {fmt(last[0], 2)} +- {fmt(last[1], 1)}",
            statistic="paired difference at the largest budget >= -2 SE; every tuned lr interior",
            passed=big_ok and all_in,
            finding="" if big_ok or not all_in else "stands with each schedule at its own tuned peak lr (interior, "
            "grid refined to x2^(1/4)): at long budgets linear decay is significantly better here, as the "
            "worst-case bound also predicts (REX's profile stays above linear and anneals late); the margin, 5-20% "
            "of the final suboptimality, is larger than the bound's ~1%. REX wins at the smallest budget (1%), ties "
            "at 5%, loses from 25% on. REX's paper reports >= on deep nets (image classification, language models), "
            "trained for epochs with momentum/Adam; these are convex finite-sum problems under batch-1 SGD, where the "
            "final lr phase decides the noise floor"))
    return out


def plot(ds, cfg):
    probs = list(ds.problem.values)
    fig, axs = plt.subplots(1, len(probs), figsize=(4.2 * len(probs), 3.6), squeeze=False)
    for ax, prob in zip(axs[0], probs):
        for k, s in enumerate(ds.schedule.values):
            v = ds.final.sel(problem=prob, schedule=s)
            m = v.mean("seed")
            se = mean_se(v)[1]
            ax.errorbar(np.asarray(ds.budget) * (1 + 0.04 * (k - 0.5)), m, yerr=2 * se, fmt="o-", ms=4,
                        color=f"C{k}", label=f"{s} (tuned lr)")
        ax.set(xscale="log", yscale="log", xlabel=f"budget (fraction of {cfg.full_steps} steps)",
               ylabel=r"final $f - f^\star$", title=prob)
        ax.legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=8", "full_steps=400", "budgets=0.25,1.0", "problems=abs", "half_octaves=2")},
)
