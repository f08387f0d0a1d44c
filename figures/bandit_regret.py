"""Dynamical linear bandits: regret of DynLin-UCB and its baselines on the synthetic and real-data instances."""

from __future__ import annotations

import dataclasses
import functools
import os
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Regime, Validated, float64, fmt, mean_se, overrides, param
from sims import bandits as sb
from sims.bandits import BanditConfig, instance, sim
from sims.sweep import concurrent, sweep
from theory import bandits as tb

NAME = "bandit_regret"
DESCRIPTION = ("pseudo-regret of the authors' ten runs (DynLin-UCB, LinUCB, D-LinUCB at lambda 1 and log T, AR2, "
               "Exp3, Batch-Exp3, Expert) on both instances")
PAPER = "Mussi, Metelli, Restelli, ICML 2023 (arXiv 2211.08997), Sec. 5"

ALGS = ("clairvoyant",) + sb.RUN_LIST  # the authors' to_run_list (scripts/main.py); expert on real data only
LABELS = {a: sb.ALGORITHMS[a].label for a in ALGS}
# one hue per family (DynLin-UCB orange-red, LinUCB blue, D-LinUCB green), lambda = log T dark and dashed / solid,
# lambda = 1 light and dotted; the baselines in colours far from those (Batch-Exp3 grey, not a second red)
COLORS = {"clairvoyant": "0.3", "dynlinucblog": "#D55E00", "dynlinucb": "#E69F00", "linucblog": "#0072B2",
          "linucb": "#56B4E9", "dlinucblog": "#009E73", "dlinucb": "#7FCDBB", "ar2": "#CC79A7", "exp3": "#6A3D9A",
          "batchexp3": "0.5", "expert": "k"}


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is every run's bandit (one compiled call per code path; its horizon and record grid are the figure's)."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {
        "sim.instance": "`instances`, stacked as arrays",
        "sim.algorithms": "each code path's share of `algorithms`",
        "sim.noise_variance": "authors for all; also exact for the DynLin-UCB pair",
        "sim.rho_bar": "the true rho(A), as the authors' runs",
    }
    sim: BanditConfig = BanditConfig(horizon=200_000, log_every=2000)
    instances: tuple[str, ...] = param(("synthetic", "real"), unique=True,
                                       help="instances, one panel each (sims.bandits.instance names: synthetic, real, "
                                       "synthetic:sigma=0.1 for another noise, file:PATH.npz|.json for your own "
                                       "system; README: Bandit instances); stacked, so of one shape")
    algorithms: tuple[str, ...] = param(sb.RUN_LIST, unique=True, choices=sb.RUN_LIST,
                                        help="the runs besides the clairvoyant (the authors' to_run_list; the Expert "
                                        "plays on real-data instances only)")
    seeds: int = param(5, ge=2)
    key_seed: int = param(0, ge=0)

    def check(self):
        shapes = {}
        for name in self.instances:
            try:
                I = instance(name)
            except ValueError as e:
                raise ValueError(f"instances: {e}") from None
            shapes[name] = (I.A.shape, I.arms.shape)
        if len(set(shapes.values())) > 1:
            raise ValueError(f"instances {list(self.instances)} must share the state and action-set shapes (they are "
                             f"stacked as arrays), got {shapes}")
        if self.sim.horizon < 1000:
            raise ValueError(f"sim.horizon must be >= 1000 (the late-regret claims), got {self.sim.horizon}")
        if self.sim.horizon // self.sim.log_every < 10:
            raise ValueError(f"sim.log_every ({self.sim.log_every}) must leave >= 10 records of the horizon "
                             f"({self.sim.horizon}) for the local log-log slopes")


PRESETS = {"quick": Config(), "full": Config(sim=BanditConfig(horizon=1_000_000, log_every=10_000), seeds=10)}


def compute(cfg):
    """One compiled call per code path: its (noise variance, instance, algorithm) points (instances stacked as
    arrays) x seeds are vmapped. The DynLin-UCB pair also runs with the exact reward-noise variance (m sigma^2),
    for the noise-variance claim; the Expert runs on the real-data instance only. The calls are independent
    serial scans: they run concurrently (the engine's :func:`~sims.sweep.concurrent`), one worker per core."""
    key = jax.random.key(cfg.key_seed)  # the same key for every algorithm: common random numbers
    I_, N_ = cfg.instances, ("authors", "exact")
    algs = _algs(cfg)
    wanted = [(n, i, a) for n in N_ for i in I_ for a in algs
              if (a != "expert" or _is_real(i)) and (n == "authors" or a in ("dynlinucblog", "dynlinucb"))]
    jobs = []
    for path in ("linear", "dlinucb", "ar2", "exp3", "fixed"):  # the longest first: the pool stays balanced
        group = tuple(a for a in algs if sb.ALGORITHMS[a].path == path)
        pts = [(N_.index(n), I_.index(i), group.index(a)) for n, i, a in wanted if a in group]
        if not pts:
            continue
        nvs = N_[:max(p[0] for p in pts) + 1]
        jobs.append((group, nvs, pts))

    @float64  # a worker thread: the x64 flag is thread-local
    def one(job):
        group, nvs, pts = job
        bc = dataclasses.replace(cfg.sim, instance=I_, algorithms=group, noise_variance=nvs)
        axes = dict(zip(("nv", "inst", "alg"), map(list, zip(*pts))))
        return pts, group, sweep(sim(bc), axes, mode="zip", seeds=cfg.seeds, key=key, progress=False)

    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    parts = concurrent([functools.partial(one, j) for j in jobs], max_workers=workers)
    steps = parts[0][2].step.values
    shape = (len(N_), len(I_), len(algs), cfg.seeds, len(steps))
    var = {v: np.full(shape, np.nan) for v in ("pseudo_regret", "realized_regret")}
    div = np.zeros(shape[:-1], bool)
    for pts, group, ds in parts:
        for q, (n, i, k) in enumerate(pts):
            ix = (n, i, algs.index(group[k]))
            for v in var:
                var[v][ix] = ds[v].isel(point=q).values
            div[ix] = ds.diverged.isel(point=q).values
    dims = ("noise_variance", "instance", "algorithm", "seed", "step")
    out = xr.Dataset({v: (dims, a) for v, a in var.items()} | {"diverged": (dims[:-1], div)},
                     coords={"noise_variance": list(N_), "instance": list(I_), "algorithm": list(algs),
                             "seed": np.arange(cfg.seeds), "step": steps})
    gaps = []
    for inst in I_:
        I = instance(inst)
        v = I.arms @ tb.markov_parameter(I)
        gaps.append(float(v.max() - v[int(np.argmax(I.arms @ I.theta))]))
    out["gap_myopic"] = ("instance", np.asarray(gaps))  # per-round regret of the myopic arm argmax theta^T u
    return out


def _algs(cfg) -> tuple:
    return ("clairvoyant",) + tuple(a for a in sb.RUN_LIST if a in cfg.algorithms)


def _is_real(name: str) -> bool:
    return name == "real" or name.startswith("real:")


# the real-data claims: the authors' real instance and the runs each claim compares
REAL_ALGS = {"linucb_locks_on_myopic_arm": ("linucblog", "dynlinucb", "dynlinucblog", "expert"),
             "dynlinucb_sublinear_real": ("linucblog", "dynlinucb", "dynlinucblog", "expert"),
             "dynlinucblog_sublinear_real": ("linucblog", "dynlinucb", "dynlinucblog", "expert"),
             "expert_linear": ("linucblog", "dynlinucb", "dynlinucblog", "expert"),
             "dynlinucb_lowest_regret_real": ("dynlinucblog", "linucblog", "dlinucblog", "dlinucb", "ar2", "exp3",
                                              "expert")}


def _applies(cfg, cid: str) -> bool:
    return "real" in cfg.instances and all(a in cfg.algorithms for a in REAL_ALGS[cid])


def _not_run(cid: str):
    return Claim(id=cid, statement="a claim about the authors' real-data instance", theory="-",
                 measured="not run in this configuration", statistic="-", passed=False)


REGIMES = {cid: Regime(f"the authors' real-data instance 'real' among `instances` and {', '.join(algs)} among "
                       "`algorithms`", functools.partial(_applies, cid=cid)) for cid, algs in REAL_ALGS.items()}


def _per_round(R, steps, a, b):
    return (R[..., b] - R[..., a]) / (steps[b] - steps[a])


def claims(ds, cfg):
    out = []
    n_div = int(ds.diverged.sum())
    full = ds
    ds = ds.sel(noise_variance="authors")
    s = ds.step.values
    n = len(s) - 1
    if _applies(cfg, "linucb_locks_on_myopic_arm"):  # the default (and any run with the real instance)
        gap = float(ds.gap_myopic.sel(instance="real"))
        lin = ds.pseudo_regret.sel(instance="real", algorithm="linucblog").values
        pr_lin = _per_round(lin, s, int(0.9 * n), n)
        out.append(Claim(
            id="linucb_locks_on_myopic_arm",
            statement="real data: LinUCB's per-round pseudo-regret over the last 10% equals the myopic "
            "arm's gap (it plays argmax theta^T u)", theory=f"gap = {fmt(gap, 4)}", measured=f"{fmt(pr_lin.mean(), 4)} "
            f"(seeds {fmt(pr_lin.min(), 4)}..{fmt(pr_lin.max(), 4)})", statistic="every seed within 1% of the gap",
            passed=bool(np.all(np.abs(pr_lin - gap) <= 0.01 * gap))))
        for alg in ("dynlinucb", "dynlinucblog"):
            R = ds.pseudo_regret.sel(instance="real", algorithm=alg).values.mean(0)
            late = _per_round(R, s, int(0.9 * n), n)
            mid = _per_round(R, s, int(0.4 * n), int(0.5 * n))
            sl_mid = np.log(R[n // 2] / R[n // 4]) / np.log(2)
            sl_end = np.log(R[n] / R[n // 2]) / np.log(2)
            ok = bool(late < 0.75 * gap and late < mid and sl_end < sl_mid)
            out.append(Claim(
                id=f"{alg}_sublinear_real",
                statement=f"real data: {alg}'s per-round regret is far below the myopic gap and falling; "
                "the local log-log slope of R_T decreases (toward 1/2)", theory=f"below {fmt(gap, 3)}, falling",
                measured=f"per-round {fmt(mid, 3)} (40-50%) -> {fmt(late, 3)} (last 10%); local slope "
                f"{fmt(sl_mid, 3)} -> {fmt(sl_end, 3)}", statistic="late < 0.75 gap, late < mid, slope decreasing",
                passed=ok))
        ex = ds.pseudo_regret.sel(instance="real", algorithm="expert").values.mean(0)
        I = instance("real")
        ev = float(np.max(I.arms @ tb.markov_parameter(I)) - tb.expert_action() @ tb.markov_parameter(I))
        out.append(Claim(id="expert_linear",
                         statement="real data: the Expert's regret is exactly linear at its steady-state gap",
                         theory=f"{fmt(ev, 4)} per round", measured=f"{fmt(ex[-1] / s[-1], 4)} per round",
                         statistic="relative error <= 1e-9",
                         passed=bool(abs(ex[-1] / s[-1] - ev) <= 1e-9 * ev)))
    else:
        out += [_not_run(cid) for cid in ("linucb_locks_on_myopic_arm", "dynlinucb_sublinear_real",
                                          "dynlinucblog_sublinear_real", "expert_linear")]
    cl = ds.realized_regret.sel(algorithm="clairvoyant").isel(step=-1).values  # instance, seed
    se = mean_se(cl, axis=-1)[1]
    start = []
    for inst in ds.instance.values:
        I = instance(str(inst))
        start.append(abs(tb.switch_cost(I, np.zeros(I.A.shape[0]), tb.optimal_action(I)[1])))
    out.append(Claim(id="clairvoyant_realized_regret",
                     statement="Clairvoyant's realized regret T J* - sum y_t is noise plus the "
                     "start-up transient from x = 0 (no drift)", theory="O(1), no growth in T",
                     measured=f"{fmt(cl.mean(-1), 3)} +- {fmt(se, 2)} after T = {s[-1]}",
                     statistic="|mean| <= 4 SE + the switch cost from x = 0 (theory.bandits.switch_cost)",
                     passed=bool(all(abs(cl[i].mean()) <= 4 * se[i] + start[i] for i in range(len(start))))))
    if _applies(cfg, "dynlinucb_lowest_regret_real"):
        # which algorithms are sublinear on the real data: local slope of the mean regret over the last doubling
        rows = []
        for alg in ds.algorithm.values:
            R = ds.pseudo_regret.sel(instance="real", algorithm=alg).values.mean(0)
            if alg == "clairvoyant" or not np.isfinite(R[-1]):
                continue
            rows.append(f"{alg} {fmt(np.log(R[n] / R[n // 2]) / np.log(2), 3)}")
        fin = {a: ds.pseudo_regret.sel(instance="real", algorithm=a).isel(step=-1).values.mean() for a in
               ("dynlinucblog", "linucblog", "dlinucblog", "dlinucb", "ar2", "exp3", "expert")
               if a in ds.algorithm.values}
        best = min(fin, key=fin.get)
        out.append(Claim(
            id="dynlinucb_lowest_regret_real",
            statement="real data: DynLin-UCB (lambda = log T) has the lowest final regret of the "
            "authors' runs; LinUCB, D-LinUCB, AR2, Exp3 and the Expert grow linearly (local log-log slope ~1)",
            theory="DynLin-UCB lowest (the paper's regret figure)",
            measured="final mean: " + ", ".join(f"{a} {fmt(v, 4)}" for a, v in
                                                                                       fin.items())
            + "; local slopes: " + "; ".join(rows), statistic="dynlinucblog has the smallest mean final regret",
            passed=best == "dynlinucblog"))
    else:
        out.append(_not_run("dynlinucb_lowest_regret_real"))
    # the noise variance in the radius: the authors' sigma^2 against the exact m sigma^2
    txt, ok = [], True
    for inst in full.instance.values:
        for alg in [a for a in ("dynlinucblog", "dynlinucb") if a in full.algorithm.values]:
            a = full.pseudo_regret.sel(instance=inst, algorithm=alg, noise_variance="authors").isel(step=-1).values
            e = full.pseudo_regret.sel(instance=inst, algorithm=alg, noise_variance="exact").isel(step=-1).values
            d = e - a
            txt.append(f"{inst}/{alg}: {fmt(a.mean(), 4)} (sigma^2) vs {fmt(e.mean(), 4)} (3 sigma^2), paired "
                       f"diff {fmt(d.mean(), 3)} +- {fmt(mean_se(d)[1], 2)}")
            ok &= bool(np.all(np.isfinite(d)))
    out.append(Claim(
        id="noise_variance_choice",
        statement="DynLin-UCB's regret with the authors' sigma^2 in the radius (default, reproduces "
        "their code) and with the exact reward-noise variance 3 sigma^2 (the 3 outputs are summed)",
        theory="a larger sigma widens beta only through sqrt(2 sig~^2 (...)); c1 and c2 dominate beta at sigma = 0.01",
        measured="; ".join(txt), statistic="reported (both finite); the figure shows the authors' choice", passed=ok))
    out.append(Claim(id="no_divergence", statement="no run diverged", theory="0", measured=str(n_div),
                     statistic="count == 0", passed=n_div == 0))
    return out


STYLES = {"dynlinucblog": "-", "dynlinucb": "-", "linucblog": "--", "linucb": ":", "dlinucblog": "--",
          "dlinucb": ":", "ar2": "-.", "exp3": "-.", "batchexp3": (0, (5, 1, 1, 1, 1, 1)), "expert": "-."}


def plot(ds, cfg):
    """The paper's regret figure: cumulative pseudo-regret of the authors' runs on both instances (top: linear
    axes with the authors' y-limit, 3x DynLin-UCB (log T)'s final regret; bottom: log-log with a sqrt(T) guide),
    mean over seeds with +-SE error bars at a few rounds (shaded bands of the high-variance runs hid the others)."""
    ds = ds.sel(noise_variance="authors")
    insts = [str(i) for i in ds.instance.values]
    fig, axs = plt.subplots(2, len(insts), figsize=(6.25 * len(insts), 8.2), height_ratios=(1.15, 1), squeeze=False)
    s = ds.step.values
    marks = np.unique(np.linspace(len(s) // 10, len(s) - 1, 8).astype(int))
    for col, inst in enumerate(insts):
        ax, lg = axs[0, col], axs[1, col]
        top = 0.0
        for alg in ds.algorithm.values:
            if alg == "clairvoyant":
                continue
            R = ds.pseudo_regret.sel(instance=inst, algorithm=alg).values
            if np.all(np.isnan(R)):
                continue
            m, se = mean_se(R, axis=0)
            c, ls = COLORS[alg], STYLES[alg]
            ax.plot(s, m, color=c, lw=1.4, ls=ls, label=LABELS[str(alg)])
            mk = marks
            ax.errorbar(s[mk], m[mk], yerr=se[mk], fmt="none", ecolor=c, elinewidth=0.9, capsize=2)
            lg.loglog(s[1:], m[1:], color=c, lw=1.2, ls=ls)
            top = max(top, m[-1]) if alg != "dynlinucblog" and "dynlinucblog" not in ds.algorithm.values else top
            if alg == "dynlinucblog":
                top = 3 * m[-1]  # the authors' y-limit: 3x DynLin-UCB (log T)'s final regret
        lg.loglog(s[1:], 30 * np.sqrt(s[1:]), color="0.45", lw=0.9, ls=(0, (1, 2)), label=r"$30\sqrt{T}$")
        ax.set_ylim(0, top)
        ax.set(xlabel="round $t$", ylabel=r"pseudo-regret $\sum_t h^\top(u^\star-u_t)$",
               title=f"{inst} instance ({cfg.seeds} seeds, mean $\\pm$ SE)")
        lg.set(xlabel="round $t$ (log)", ylabel="pseudo-regret (log)", title=f"{inst}: log-log")
    legend = {}  # every run once (the Expert plays on real-data instances only)
    for ax in list(axs[0]) + [axs[1, 0]]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=6, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.06))
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=2", "sim.horizon=5000", "sim.log_every=500")},
    not_at_tiny={
        "linucb_locks_on_myopic_arm": "the lock-in shows over 2e5 rounds, not 5e3",
        "dynlinucblog_sublinear_real": "the slope of the regret needs 2e5 rounds",
    },
    regimes=REGIMES,
)
