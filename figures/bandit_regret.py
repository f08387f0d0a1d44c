"""Dynamical linear bandits: regret of DynLin-UCB and its baselines on the synthetic and real-data instances."""

from __future__ import annotations

import dataclasses

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, fmt, param
from sims.bandits import BanditConfig, instance, make_run
from sims.sweep import sweep
from theory import bandits as tb

NAME = "bandit_regret"
DESCRIPTION = "pseudo-regret of DynLin-UCB, LinUCB, D-LinUCB, Exp3, Batch-Exp3, Expert on both instances"
PAPER = "Mussi, Metelli, Restelli, ICML 2023 (arXiv 2211.08997), Sec. 5"

ALGS = ("clairvoyant", "dynlinucb", "dynlinucb_logT", "linucb", "linucb_logT", "dlinucb", "exp3", "batch_exp3")
LABELS = {"clairvoyant": "Clairvoyant", "dynlinucb": r"DynLin-UCB ($\lambda=1$)",
          "dynlinucb_logT": r"DynLin-UCB ($\lambda=\log T$)", "linucb": r"LinUCB ($\lambda=1$)",
          "linucb_logT": r"LinUCB ($\lambda=\log T$)", "dlinucb": "D-LinUCB", "exp3": "Exp3",
          "batch_exp3": "Batch-Exp3", "expert": "Expert"}


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = param(5, ge=2)
    horizon: int = param(200_000, ge=1000)
    n_records: int = param(100, ge=10)
    key_seed: int = param(0, ge=0)

    def check(self):
        if self.horizon % self.n_records:
            raise ValueError(f"n_records ({self.n_records}) must divide the horizon ({self.horizon})")


PRESETS = {"quick": Config(), "full": Config(seeds=10, horizon=1_000_000)}


def compute(cfg):
    key = jax.random.key(cfg.key_seed)  # the same key for every algorithm: common random numbers
    parts = []
    with jax.enable_x64(True):
        for inst in ("synthetic", "real"):
            algs = ALGS + (("expert",) if inst == "real" else ())
            for alg in algs:
                bc = BanditConfig(instance=inst, algorithm=alg, horizon=cfg.horizon,
                                  log_every=cfg.horizon // cfg.n_records)
                ds = sweep(make_run(bc), {"noise_scale": [1.0]}, seeds=cfg.seeds, key=key, steps=bc.steps(), cfg=bc,
                           steps_per_run=cfg.horizon, dims={"h_hat": ("coord",)})
                parts.append(ds[["pseudo_regret", "realized_regret"]].isel(noise_scale=0, drop=True)
                             .expand_dims(instance=[inst], algorithm=[alg]))
    out = xr.combine_by_coords(parts, combine_attrs="drop", join="outer")
    for inst in ("synthetic", "real"):
        I = instance(inst)
        h = tb.markov_parameter(I)
        v = I.arms @ h
        myopic = int(np.argmax(I.arms @ I.theta))
        out[f"gap_myopic_{inst}"] = float(v.max() - v[myopic])
    return out


def _per_round(R, steps, a, b):
    return (R[..., b] - R[..., a]) / (steps[b] - steps[a])


def claims(ds, cfg):
    out = []
    s = ds.step.values
    n = len(s) - 1
    gap = float(ds.gap_myopic_real)
    lin = ds.pseudo_regret.sel(instance="real", algorithm="linucb").values
    pr_lin = _per_round(lin, s, int(0.9 * n), n)
    out.append(Claim(
        "linucb_locks_on_myopic_arm", "real data: LinUCB's per-round pseudo-regret over the last 10% equals the myopic "
        "arm's gap (it plays argmax theta^T u)", f"gap = {fmt(gap, 4)}", f"{fmt(pr_lin.mean(), 4)} "
        f"(seeds {fmt(pr_lin.min(), 4)}..{fmt(pr_lin.max(), 4)})", "every seed within 1% of the gap",
        bool(np.all(np.abs(pr_lin - gap) <= 0.01 * gap))))
    for alg in ("dynlinucb", "dynlinucb_logT"):
        R = ds.pseudo_regret.sel(instance="real", algorithm=alg).values.mean(0)
        late = _per_round(R, s, int(0.9 * n), n)
        mid = _per_round(R, s, int(0.4 * n), int(0.5 * n))
        sl_mid = np.log(R[n // 2] / R[n // 4]) / np.log(2)
        sl_end = np.log(R[n] / R[n // 2]) / np.log(2)
        ok = bool(late < 0.75 * gap and late < mid and sl_end < sl_mid)
        out.append(Claim(
            f"{alg}_sublinear_real", f"real data: {alg}'s per-round regret is far below the myopic gap and falling; "
            "the local log-log slope of R_T decreases (toward 1/2)", f"below {fmt(gap, 3)}, falling",
            f"per-round {fmt(mid, 3)} (40-50%) -> {fmt(late, 3)} (last 10%); local slope {fmt(sl_mid, 3)} -> "
            f"{fmt(sl_end, 3)}", "late < 0.75 gap, late < mid, slope decreasing", ok))
    ex = ds.pseudo_regret.sel(instance="real", algorithm="expert").values.mean(0)
    I = instance("real")
    ev = float(np.max(I.arms @ tb.markov_parameter(I)) - tb.expert_action() @ tb.markov_parameter(I))
    out.append(Claim("expert_linear", "real data: the Expert's regret is exactly linear at its steady-state gap",
                     f"{fmt(ev, 4)} per round", f"{fmt(ex[-1] / s[-1], 4)} per round", "relative error <= 1e-9",
                     bool(abs(ex[-1] / s[-1] - ev) <= 1e-9 * ev)))
    cl = ds.realized_regret.sel(algorithm="clairvoyant").isel(step=-1).values  # instance, seed
    se = cl.std(-1, ddof=1) / np.sqrt(cl.shape[-1])
    start = []
    for inst in ds.instance.values:
        I = instance(str(inst))
        start.append(abs(tb.switch_cost(I, np.zeros(3), tb.optimal_action(I)[1])))
    out.append(Claim("clairvoyant_realized_regret", "Clairvoyant's realized regret T J* - sum y_t is noise plus the "
                     "start-up transient from x = 0 (no drift)", "O(1), no growth in T",
                     f"{fmt(cl.mean(-1), 3)} +- {fmt(se, 2)} after T = {s[-1]}",
                     "|mean| <= 4 SE + the switch cost from x = 0 (theory.bandits.switch_cost)",
                     bool(all(abs(cl[i].mean()) <= 4 * se[i] + start[i] for i in range(len(start))))))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.2))
    s = ds.step.values
    for ax, inst in zip(axs, ("synthetic", "real")):
        ins = ax.inset_axes([0.08, 0.55, 0.33, 0.38])
        colors = dict(zip(ALGS + ("expert",), ["0.3", "C3", "C1", "C0", "C5", "C2", "C4", "C6", "k"]))
        for alg in ALGS + ("expert",):
            if alg not in ds.algorithm.values:
                continue
            R = ds.pseudo_regret.sel(instance=inst, algorithm=alg).values
            if np.all(np.isnan(R)):
                continue
            m = R.mean(0)
            se = R.std(0, ddof=1) / np.sqrt(R.shape[0])
            c = colors[alg]
            ax.fill_between(s, m - 2 * se, m + 2 * se, color=c, alpha=0.2, lw=0)
            ax.plot(s, m, color=c, lw=1.2, ls="--" if alg == "expert" else "-", label=LABELS[str(alg)])
            if alg != "clairvoyant":
                ins.loglog(s[1:], m[1:], color=c, lw=0.8, ls="--" if alg == "expert" else "-")
        ins.loglog(s[1:], 30 * np.sqrt(s[1:]), ":", color="0.4", lw=0.8)
        ins.tick_params(labelsize=6)
        ins.set_title(r"log-log ($\cdots\ \sqrt{T}$)", fontsize=7)
        ax.set(xlabel="round $t$", ylabel=r"pseudo-regret $\sum_t h^\top(u^\star-u_t)$",
               title=f"{inst} instance ({cfg.seeds} seeds, mean $\\pm$ 2 SE)")
        ax.legend(fontsize=6.5, loc="lower right")
    return fig
