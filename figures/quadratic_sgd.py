"""SGD on a quadratic valley: exact loss recursion for any schedule, stationary loss vs lr."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, fmt, mean_se, overrides, param
from sims import schedules
from sims.quadratic import QuadraticConfig, make_run
from sims.sweep import sweep
from theory import quadratic as th

NAME = "quadratic_sgd"
DESCRIPTION = "E f_t vs step for several schedules against the exact recursion; stationary loss vs lr"
PAPER = "foundation (exact SGD moments on a quadratic)"

SCHEDS = {  # label -> (decay_fraction, shape)
    "constant": (0.0, "linear"),
    "cosine": (1.0, "cosine"),
    "WSD (20% linear)": (0.2, "linear"),
}


# the schedule panel's curvatures: d = 8 log-spaced in [0.1, 10]
A_GRID = tuple(np.geomspace(0.1, 10.0, 8).tolist())


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the schedule panel's run (d curvatures, one noise scale, one start); the stationary panel runs
    the same config at d = 1, a = 1, x0 = 0."""

    SET_IN_PANELS: typing.ClassVar[dict] = {"sim.a": "the stationary panel runs a = 1 (d = 1)",
                                            "sim.x0": "the stationary panel starts at x0 = 0"}
    sim: QuadraticConfig = QuadraticConfig(a=A_GRID, sigma=(1.0,), x0=(1.0,), n_steps=2000, log_every=20)
    seeds: int = param(2000, ge=2, help="seeds per point")
    lr: float = param(0.15, gt=0, help="peak lr of the schedule panel (stable iff < 2/max(sim.a))")
    lr_grid: tuple[float, ...] = param(unique=True, default=
        (0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.3, 1.6, 1.8, 1.9, 1.95, 2.05, 2.2, 2.5),
        gt=0,
        help="constant lrs of the stationary panel (a = 1, d = 1; 2/a = 2)",
    )
    n_sigma: float = param(4.0, gt=0, help="claims: |sim - exact| <= n_sigma standard errors")
    key_seed: int = param(0, ge=0)

    def check(self):
        if len(self.sim.sigma) != 1 or len(self.sim.x0) != 1:
            raise ValueError("sim.sigma and sim.x0 must hold one value each (one noise scale, one start)")


PRESETS = {
    "quick": Config(),
    "full": Config(sim=dataclasses.replace(Config().sim, n_steps=10000, log_every=50), seeds=20000),
}


def compute(cfg: Config) -> xr.Dataset:
    key = jax.random.key(cfg.key_seed)
    k1, k2 = jax.random.split(key)
    # (1) several schedules in ONE compiled call: the schedule's hyperparameters are arrays
    qc = cfg.sim
    fr = [v[0] for v in SCHEDS.values()]
    sh = [schedules.DECAY_SHAPES.index(v[1]) for v in SCHEDS.values()]
    ds1 = sweep(
        make_run(qc),
        {"decay_fraction": fr, "shape_id": sh},
        mode="zip",
        fixed={"lr": cfg.lr},
        seeds=cfg.seeds,
        key=k1,
        steps=qc.steps(),
        cfg=qc,
        steps_per_run=cfg.sim.n_steps,
    )
    ds1 = ds1.rename({"point": "schedule", "loss": "sched_loss", "diverged": "sched_diverged",
                      "diverged_step": "sched_diverged_step", "step": "sched_step"})
    ds1 = ds1.assign_coords(schedule=list(SCHEDS))
    lrs = np.stack([_lrs(cfg, f, s) for f, s in zip(fr, sh)])
    exact = np.stack([th.expected_loss(l, qc.a, cfg.sim.sigma[0], cfg.sim.x0[0]) for l in lrs])[:, :: cfg.sim.log_every]
    ds1["sched_exact"] = (("schedule", "sched_step"), exact)
    ds1["sched_lr"] = (("schedule", "sched_step"), np.concatenate([lrs, lrs[:, -1:]], 1)[:, :: cfg.sim.log_every])

    # (2) stationary loss vs constant lr, d = 1, a = 1, from x0 = 0
    sc = dataclasses.replace(cfg.sim, a=(1.0,), x0=(0.0,))
    ds2 = sweep(make_run(sc), {"lr": list(cfg.lr_grid)}, seeds=cfg.seeds, key=k2, steps=sc.steps(), cfg=sc,
                steps_per_run=cfg.sim.n_steps)
    grid = np.asarray(cfg.lr_grid)
    ds2["final_exact"] = ("lr", np.array([th.expected_loss(np.full(cfg.sim.n_steps, e), 1.0, cfg.sim.sigma[0], 0.0)[-1]
                                          if e < 2 else np.inf for e in grid]))
    ds2["stationary"] = ("lr", th.stationary_loss(grid, 1.0, cfg.sim.sigma[0]))
    ds = xr.merge([ds1, ds2], combine_attrs="override")
    return ds


def _lrs(cfg, frac, shape_id):
    fam = schedules.Family(*[np.float64(v) for v in (cfg.lr, frac)], np.int32(shape_id), np.float64(0.0),
                           np.float64(0.0))
    return schedules.as_array(schedules.family_schedule(fam, cfg.sim.n_steps), cfg.sim.n_steps)


def claims(ds: xr.Dataset, cfg: Config) -> list[Claim]:
    out = []
    m, se = mean_se(ds.sched_loss)
    ex = ds.sched_exact
    # step 0 is deterministic (se = 0): there the tolerance is float32 rounding
    tol = np.maximum(se, 1e-6 * np.abs(ex))
    z = np.abs(m - ex) / tol
    n_div = int(ds.sched_diverged.sum())
    out.append(Claim(
        id="exact_recursion_any_schedule",
        statement=f"E f_t of SGD equals the exact recursion at every recorded step, for {len(SCHEDS)} schedules",
        theory="V_{t+1} = (1 - eta_t a)^2 V_t + eta_t^2 sigma^2",
        measured=f"max |z| = {fmt(float(z.max()))} over {z.size} points; {n_div} diverged",
        statistic=f"|mean - exact| / SE <= {cfg.n_sigma} (SE over {cfg.seeds} seeds)",
        passed=bool(z.max() <= cfg.n_sigma and n_div == 0),
    ))
    grid = ds.lr.values
    stable = grid < 2.0
    fin = ds.loss.isel(step=-1).sel(lr=grid[stable])
    m2, se2 = mean_se(fin)
    z2 = np.abs(m2.values - ds.final_exact.values[stable]) / se2.values
    gap = np.abs(ds.final_exact.values[stable] - ds.stationary.values[stable]) / ds.stationary.values[stable]
    out.append(Claim(
        id="stationary_loss",
        statement="final mean loss at constant lr matches eta sigma^2 / (2 (2 - eta a)) for every stable lr",
        theory=f"{fmt(ds.stationary.values[stable], 3)}",
        measured=f"{fmt(m2.values, 3)}; max |z| = {fmt(z2.max())}",
        statistic=f"|mean - exact_T| / SE <= {cfg.n_sigma}; exact_T within {fmt(gap.max(), 2)} (rel.) of the "
                  "stationary value",
        passed=bool(z2.max() <= cfg.n_sigma),
    ))
    div = ds.diverged.any("seed").values
    alld = ds.diverged.all("seed").values
    pred = th.diverges(grid, 1.0, cfg.sim.sigma[0])
    out.append(Claim(
        id="divergence_boundary",
        statement="runs are flagged diverged exactly where eta > 2/a",
        theory=f"diverged at lr = {fmt(grid[pred], 3)}",
        measured=f"flagged at lr = {fmt(grid[div], 3)} (all seeds: {fmt(grid[alld], 3)})",
        statistic="set equality, every seed",
        passed=bool(np.array_equal(div, pred) and np.array_equal(alld, pred)),
    ))
    return out


def plot(ds: xr.Dataset, cfg: Config):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    m, se = mean_se(ds.sched_loss)
    steps = ds.sched_step.values
    for i, lab in enumerate(ds.schedule.values):
        c = f"C{i}"
        ax1.fill_between(steps, m[i] - 2 * se[i], m[i] + 2 * se[i], color=c, alpha=0.25, lw=0)
        ax1.plot(steps, m[i], color=c, lw=1.0, label=f"{lab} (sim. mean $\\pm$ 2 SE)")
        ax1.plot(steps, ds.sched_exact[i], color="k", ls="--", lw=0.8)
    ax1.plot([], [], "k--", lw=0.8, label="exact recursion")
    ax1.set_yscale("log")
    ax1.set_xlabel("step $t$")
    ax1.set_ylabel(r"$\mathbb{E}\,f(x_t)$")
    ax1.set_title(rf"$d={len(cfg.sim.a)}$, $a\in[{min(cfg.sim.a):g},{max(cfg.sim.a):g}]$, $\eta_{{\max}}={cfg.lr:g}$, "
                  rf"$\sigma={cfg.sim.sigma[0]:g}$, {cfg.seeds} seeds")
    ax1.legend(loc="upper right")

    grid = ds.lr.values
    stable = grid < 2.0
    fine = np.linspace(grid.min(), 1.995, 400)
    ax2.plot(fine, th.stationary_loss(fine, 1.0, cfg.sim.sigma[0]), "k-", lw=1, label=r"$\eta\sigma^2/(2(2-\eta a))$")
    fin = ds.loss.isel(step=-1).where(~ds.diverged)
    m2, se2 = mean_se(fin.sel(lr=grid[stable]))
    ax2.errorbar(grid[stable], m2, yerr=2 * se2, fmt="o", ms=3.5, color="C0", label="simulation (final step)")
    top = float(m2.max()) * 3
    dv = grid[~stable]
    ax2.plot(dv, np.full(dv.shape, top), "x", color="C1", ms=7, mew=2, label="flagged diverged")
    ax2.axvline(2.0, color="C1", ls=":", lw=1)
    ax2.text(2.02, float(m2.min()), r"$2/a$", color="C1")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel(r"constant learning rate $\eta$ ($a=1$)")
    ax2.set_ylabel(r"stationary $\mathbb{E}\,f$")
    ax2.set_title("stationary loss vs lr")
    ax2.legend(loc="upper left")
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=400", "sim.n_steps=400", "lr_grid=0.1,1.0,1.9")},
)
