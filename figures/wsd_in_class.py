"""WSD vs cosine vs the last-iterate bound where the bound makes its claim: streaming convex problems (a fresh sample
every step), plain SGD inside the bound's class (convex, G-Lipschitz), then heavy-ball momentum and Adam."""

from __future__ import annotations

import dataclasses
import typing

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, fmt, mean_se, overrides, param
from sims import schedules as S
from sims.convex_sgd import LR_CENTER, OPTIMIZERS, STREAMING, ConvexConfig, f_star, population_loss, sim, tune_arms
from sims.sweep import sweep
from theory import schedules as ts

NAME = "wsd_in_class"
DESCRIPTION = "WSD (20% linear / 1-sqrt cooldown) vs cosine vs linear decay, tuned, on streaming convex problems " \
              "with SGD, momentum and Adam, against the bound's absolute prediction"
PAPER = "Schaipp et al. 2025 (arXiv 2501.18965); Defazio et al. 2023 (arXiv 2310.07831), Thm 10"

SCHEDS = {"cosine": (1.0, "cosine"), "WSD 20% linear": (0.2, "linear"), "WSD 20% 1-sqrt": (0.2, "1-sqrt"),
          "linear decay": (1.0, "linear")}


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the streaming run; the figure sets its problem (each of ``problems``), optimizer (each of
    ``optimizers``) and its schedule (the WSD family of SCHEDS from hparams)."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {"sim.problem": "each of `problems`",
                                            "sim.optimizer": "each of `optimizers`",
                                            "sim.schedule": "the WSD family of SCHEDS (hparams)"}
    SET_IN_PANELS: typing.ClassVar[dict] = {"sim.d": "the gap-vs-d panel runs stream_abs with SGD at each of `dims` "
                                                     "too"}
    sim: ConvexConfig = ConvexConfig(problem="stream_abs", d=100, noise=0.1, n_steps=2000, log_every=100)
    seeds: int = param(64, ge=2, le=4096)
    problems: tuple[str, ...] = param(unique=True, default=STREAMING, choices=STREAMING)
    optimizers: tuple[str, ...] = param(unique=True, default=("sgd", "momentum", "adam"), choices=OPTIMIZERS)
    dims: tuple[int, ...] = param((2, 10), unique=True, ge=2, le=100_000,
                                  help="more dimensions d for stream_abs with SGD (sharper problems as d falls)")
    half_octaves: int = param(4, ge=2, le=12, help="starting lr grid: centre x 2^(k/2), k = -h..h (then grown)")
    key_seed: int = param(0, ge=0)

    def check(self):
        if self.sim.n_steps < 100:
            raise ValueError(f"sim.n_steps={self.sim.n_steps} is out of range: must be >= 100")
        if self.sim.d < 2:
            raise ValueError(f"sim.d={self.sim.d} is out of range: must be >= 2 (stream_abs samples the sphere)")
        if self.sim.d in self.dims:
            raise ValueError(f"dims={self.dims} repeats sim.d={self.sim.d}: name only the other dimensions")


PRESETS = {"quick": Config(),
           "full": Config(sim=dataclasses.replace(Config().sim, n_steps=10000, log_every=500), seeds=256,
                          optimizers=OPTIMIZERS)}


def _shapes(T):
    return np.stack([S.as_array(S.family_schedule(S.family(1.0, f, sh), T), T) for f, sh in SCHEDS.values()])


ARMS = tuple({"decay_fraction": f, "shape_id": S.DECAY_SHAPES.index(sh)} for f, sh in SCHEDS.values())


def _tune(cfg, cc, key, lrs):
    """Every schedule of SCHEDS at its own tuned peak lr on ``cc`` (:func:`sims.convex_sgd.tune_arms`), the measured
    G^2 (mean squared stochastic gradient norm at cosine's tuned lr) and the start's suboptimality."""
    r = tune_arms(cc, ARMS, lrs, seeds=cfg.seeds, key=key)
    dg = sweep(sim(cc), {"lr": [r.tuned.best_lr[0]], **{k: [v] for k, v in ARMS[0].items()}}, mode="zip",
               seeds=cfg.seeds, key=key)
    g2 = float(dg.gsq_cum.isel(step=-1).mean()) / cc.n_steps
    f0 = float(population_loss(jnp.zeros(cc.d), cc)) - f_star(cc)  # the start's suboptimality (x0 = 0)
    return r.grid, r.tuned, g2, f0, r.n_div


def compute(cfg):
    key = jax.random.key(cfg.key_seed)
    T = cfg.sim.n_steps
    shapes = _shapes(T)
    t1, t2, t3 = ts.bound_terms(shapes)  # D = G = 1: the bound is D^2 t1 / c + c G^2 (t2 + t3)
    ks = np.arange(-cfg.half_octaves, cfg.half_octaves + 1)
    out = []
    for prob in cfg.problems:
        for opt in cfg.optimizers:
            cc = dataclasses.replace(cfg.sim, problem=prob, optimizer=opt)
            lrs = LR_CENTER[prob, opt] * 2.0 ** (ks / 2)
            grid, tu, g2, f0, n_div = _tune(cfg, cc, key, lrs)
            n_ev = max(len(x) for x in tu.lrs)
            ev_lr = np.stack([np.pad(x, (0, n_ev - len(x)), constant_values=np.nan) for x in tu.lrs])
            ev_m = np.stack([np.pad(np.where(np.isfinite(m), m, np.nan), (0, n_ev - len(m)), constant_values=np.nan)
                             for m in tu.means])
            out.append(xr.Dataset(
                {"grid": (("problem", "optimizer", "lr_k", "schedule", "seed"), grid[None, None]),
                 "lr_value": (("problem", "optimizer", "lr_k"), lrs[None, None]),
                 "eval_lr": (("problem", "optimizer", "schedule", "eval"), ev_lr[None, None]),
                 "eval_mean": (("problem", "optimizer", "schedule", "eval"), ev_m[None, None]),
                 "tuned_final": (("problem", "optimizer", "schedule", "seed"), tu.best[None, None]),
                 "tuned_lr": (("problem", "optimizer", "schedule"), tu.best_lr[None, None]),
                 "tuned_interior": (("problem", "optimizer", "schedule"), tu.interior[None, None]),
                 "G2_measured": (("problem", "optimizer"), [[g2]]),
                 "G_bound": (("problem", "optimizer"), [[1.0 if prob == "stream_abs" else np.sqrt(g2)]]),  # ||a|| = 1
                 "D": (("problem", "optimizer"), [[cc.dist]]),
                 "f0": (("problem", "optimizer"), [[f0]]),
                 "n_div": (("problem", "optimizer"), [[n_div]])},
                coords={"problem": [prob], "optimizer": [opt], "lr_k": ks, "schedule": list(SCHEDS)}))
    res = xr.combine_by_coords(out)
    # the sharpness axis: stream_abs with SGD at more dimensions (inside the bound's class, D = G = 1 at every d)
    dims = sorted(set(cfg.dims) | ({cfg.sim.d} if "stream_abs" in cfg.problems and "sgd" in cfg.optimizers
                                   else set()))
    rows = []
    for d in dims:
        if d == cfg.sim.d:  # the main panel's run (tuned above)
            m = res.sel(problem="stream_abs", optimizer="sgd")
            rows.append((m.tuned_final.values, m.tuned_lr.values, m.tuned_interior.values, float(m.f0)))
            continue
        cc = dataclasses.replace(cfg.sim, problem="stream_abs", optimizer="sgd", d=d)
        c_star = float(ts.tuned_bound(shapes[0], cc.dist, 1.0)[1])
        _, tu, _, f0, _ = _tune(cfg, cc, key, c_star * 2.0 ** (ks / 2))
        rows.append((tu.best, tu.best_lr, tu.interior, f0))
    if rows:
        res["dim_final"] = (("dim", "schedule", "seed"), np.stack([r[0] for r in rows]))
        res["dim_lr"] = (("dim", "schedule"), np.stack([r[1] for r in rows]))
        res["dim_interior"] = (("dim", "schedule"), np.stack([r[2] for r in rows]))
        res["dim_f0"] = (("dim",), [r[3] for r in rows])
        res = res.assign_coords(dim=dims)
    res["t1"] = ("schedule", t1)
    res["t23"] = ("schedule", t2 + t3)
    return res


def _bound(ds, prob, opt, c, j):
    """The bound D^2 t1 / c + c G^2 (t2 + t3) of schedule j at peak lr c (absolute: D, G of the problem)."""
    D = float(ds.D.sel(problem=prob, optimizer=opt))
    G = float(ds.G_bound.sel(problem=prob, optimizer=opt))
    return D**2 * float(ds.t1[j]) / c + c * G**2 * float(ds.t23[j])


def _gap(tf, i, j):
    """(mean_i / mean_j - 1, its SE by the delta method on the paired per-seed values) for rows i, j of tf."""
    mi, mj = tf[i].mean(), tf[j].mean()
    se = np.std(tf[i] / mj - mi * tf[j] / mj**2, ddof=1) / np.sqrt(tf.shape[-1])
    return mi / mj - 1, se


def claims(ds, cfg):
    out = []
    names = list(ds.schedule.values)
    t1, t23 = ds.t1.values, ds.t23.values
    bt = 2 * np.sqrt(t1 * t23)  # the tuned bound per unit D G
    i_cos, i_wl, i_ws, i_lin = (names.index(n) for n in SCHEDS)
    gap_b = bt[i_wl] / bt[i_cos] - 1
    for prob in ds.problem.values:
        for opt in ds.optimizer.values:
            tf = ds.tuned_final.sel(problem=prob, optimizer=opt).values
            tin = ds.tuned_interior.sel(problem=prob, optimizer=opt).values
            tlr = ds.tuned_lr.sel(problem=prob, optimizer=opt).values
            g, gse = _gap(tf, i_wl, i_cos)
            g2, g2se = _gap(tf, i_ws, i_cos)
            gl, glse = _gap(tf, i_lin, i_cos)
            ok = bool(g <= 0.1 and tin.all())
            lab = f"{prob}, {opt}"
            out.append(Claim(
                id=f"wsd_matches_cosine_{prob}_{opt}",
                statement=f"{lab}: WSD with a 20% linear cooldown matches cosine (each at its own tuned peak lr, "
                          "within 10%)",
                theory=f"bound (SGD, convex G-Lipschitz): WSD {fmt(100 * gap_b, 3)}% above cosine; 1-sqrt "
                       f"{fmt(100 * (bt[i_ws] / bt[i_cos] - 1), 3)}%; linear decay "
                       f"{fmt(100 * (bt[i_lin] / bt[i_cos] - 1), 3)}%",
                measured=f"WSD linear {fmt(100 * g, 3)} +- {fmt(100 * gse, 2)}%, WSD 1-sqrt "
                         f"{fmt(100 * g2, 3)} +- {fmt(100 * g2se, 2)}%, linear decay {fmt(100 * gl, 3)} +- "
                         f"{fmt(100 * glse, 2)}% vs cosine (tuned lrs " + ", ".join(
                             f"{n} {fmt(v, 3)}" for n, v in zip(names, tlr)) + ("" if tin.all() else
                                                                               "; NOT all interior") + ")",
                statistic="sim gap (WSD linear / cosine - 1) <= 10%, every tuned lr interior",
                passed=ok,
                finding="" if ok or not tin.all() else (
                    f"WSD's tuned final loss is {fmt(100 * g, 3)}% above cosine's here, beyond the papers' "
                    f"'matches' and the bound's {fmt(100 * gap_b, 3)}%" + (
                        "; this problem is inside the bound's class: see gap_is_the_bounds for how the gap moves with "
                        "the problem's sharpness" if prob == "stream_abs" and opt == "sgd" else ""))))
        # inside the class: the bound must hold, and its WSD/cosine ratio is the decisive prediction
        if "sgd" in ds.optimizer.values and prob == "stream_abs":
            grid = ds.grid.sel(problem=prob, optimizer="sgd").values  # lr_k, schedule, seed
            lrs = ds.lr_value.sel(problem=prob, optimizer="sgd").values
            m, se = grid.mean(-1), mean_se(grid, axis=-1)[1]
            b = np.array([[_bound(ds, prob, "sgd", c, j) for j in range(len(names))] for c in lrs])
            worst = np.nanmax((m - 2 * se) / b)
            out.append(Claim(
                id="bound_holds_stream_abs_sgd",
                statement="stream_abs, SGD (convex, 1-Lipschitz: the bound's class, D and G known): the expected "
                          "final suboptimality is below the bound at every peak lr and schedule of the grid",
                theory="E f(x_T) - f* <= D^2 t1 / c + c G^2 (t2 + t3) (Defazio et al. Thm 10), D = "
                       f"{fmt(float(ds.D.sel(problem=prob, optimizer='sgd')), 3)}, G = 1",
                measured=f"max over lr x schedule of (sim mean - 2 SE) / bound = {fmt(worst, 3)}; at the tuned lrs "
                         "sim / bound = " + ", ".join(
                             f"{n} {fmt(tf_m / _bound(ds, prob, 'sgd', c, j), 3)}" for j, (n, tf_m, c) in enumerate(
                                 zip(names, ds.tuned_final.sel(problem=prob, optimizer='sgd').values.mean(-1),
                                     ds.tuned_lr.sel(problem=prob, optimizer='sgd').values))),
                statistic="(mean - 2 SE) / bound <= 1 everywhere (a violation would be a bug: the bound is a theorem)",
                passed=bool(worst <= 1)))
    if "dim" in ds.dims:
        gaps = [_gap(ds.dim_final.sel(dim=d).values, i_wl, i_cos) for d in ds.dim.values]
        ok = all(abs(g - gap_b) <= 2 * se + 0.02 for g, se in gaps) and bool(ds.dim_interior.all())
        rows = "; ".join(f"d = {d}: {fmt(100 * g, 3)} +- {fmt(100 * se, 2)}% (start {fmt(f0, 3)}, final cosine "
                         f"{fmt(float(ds.dim_final.sel(dim=d, schedule='cosine').mean()), 3)})"
                         for d, (g, se), f0 in zip(ds.dim.values, gaps, ds.dim_f0.values))
        out.append(Claim(
            id="gap_is_the_bounds_stream_abs_sgd",
            statement="stream_abs, SGD: inside its class (convex, 1-Lipschitz, D = G = 1 at every d) the bound's "
                      "ratio predicts the simulated WSD/cosine ratio (each at its own tuned lr), at every dimension",
            theory=f"tuned bound: WSD {fmt(100 * gap_b, 3)}% above cosine, whatever the problem in the class",
            measured="WSD / cosine - 1: " + rows,
            statistic="|sim gap - bound gap| <= 2 SE + 2 points at every d (the tuned lr's grid step x2^(1/4) moves "
                      "a loss by well under 1% at its optimum); every tuned lr interior",
            passed=ok,
            finding="" if ok else (
                "the bound's worst-case ratio does not predict the simulated gap inside its own class; per d: "
                + ", ".join(f"{d}: " + ("cosine ahead" if g > 2 * se else "WSD ahead" if g < -2 * se else "tie")
                            for d, (g, se) in zip(ds.dim.values, gaps))
                + ". The bound is a worst case over the class and a given problem sits far below it; the sharper the "
                "problem (low d: a larger share of the run at the noise floor), the more the final loss is set by "
                "the last ~1/(mu lr) steps, which cosine anneals gradually and WSD only in its last 20%")))
    return out


STYLE = {"cosine": ("#009E73", "^"), "WSD 20% linear": ("#D55E00", "v"), "WSD 20% 1-sqrt": ("#CC79A7", "D"),
         "linear decay": ("#0072B2", "o")}


def plot(ds, cfg):
    """One panel per (problem, optimizer): final suboptimality vs peak lr per schedule (mean +- 2 SE; the tuned lr
    filled), and on the SGD panels the bound with the problem's D and G (dashed; G measured on stream_powerlaw)."""
    probs, opts = list(ds.problem.values), list(ds.optimizer.values)
    extra = int("dim" in ds.dims)
    fig, axs = plt.subplots(len(probs), len(opts) + extra, figsize=(4.0 * (len(opts) + extra), 3.5 * len(probs)),
                            squeeze=False)
    names = list(ds.schedule.values)
    for r, prob in enumerate(probs):
        for c, opt in enumerate(opts):
            ax = axs[r][c]
            grid = ds.grid.sel(problem=prob, optimizer=opt).values
            lrs = ds.lr_value.sel(problem=prob, optimizer=opt).values
            m, se = np.nanmean(grid, -1), mean_se(grid, axis=-1, skipna=True)[1]
            ev_lr = ds.eval_lr.sel(problem=prob, optimizer=opt).values
            ev_m = ds.eval_mean.sel(problem=prob, optimizer=opt).values
            fine = np.geomspace(np.nanmin(ev_lr), np.nanmax(ev_lr), 100)
            for j, n in enumerate(names):
                col, mk = STYLE[n]
                ax.plot(ev_lr[j], ev_m[j], color=col, lw=0.8, alpha=0.7)  # every lr the tuner tried (mean)
                ax.errorbar(lrs, m[:, j], yerr=2 * se[:, j], fmt=mk, ms=3.5, color=col, mfc="white", mew=1.0,
                            elinewidth=0.8, label=n)
                tl = float(ds.tuned_lr.sel(problem=prob, optimizer=opt)[j])
                ax.plot(tl, ds.tuned_final.sel(problem=prob, optimizer=opt).values[j].mean(), mk, color=col, ms=6)
                if opt == "sgd":
                    ax.plot(fine, [_bound(ds, prob, opt, x, j) for x in fine], color=col, lw=1.0, ls="--")
            tf = ds.tuned_final.sel(problem=prob, optimizer=opt).values
            g, gse = _gap(tf, names.index("WSD 20% linear"), names.index("cosine"))
            ax.set(xscale="log", yscale="log", xlabel="peak lr", ylabel=r"$f(x_T) - f^\star$",
                   ylim=(np.nanmin(ev_m) / 1.5, np.nanmin(ev_m) * 30))
            ax.set_title(f"{prob}, {opt}: WSD {100 * g:+.1f} $\\pm$ {100 * gse:.1f}% vs cosine", fontsize=9)
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            if r == 0 and c == 0:
                ax.legend(fontsize=7, loc="upper left")
    t1, t23 = ds.t1.values, ds.t23.values
    bt = 2 * np.sqrt(t1 * t23)
    if extra:
        ax = axs[0][-1]
        dims = ds.dim.values
        for n in names[1:]:
            col, mk = STYLE[n]
            gs = np.array([_gap(ds.dim_final.sel(dim=d).values, names.index(n), 0) for d in dims])
            ax.errorbar(dims, 100 * gs[:, 0], yerr=200 * gs[:, 1], fmt=mk + "-", color=col, ms=4, label=n)
            ax.axhline(100 * (bt[names.index(n)] / bt[0] - 1), color=col, ls="--", lw=0.9)
        ax.axhline(0, color="0.6", lw=0.7, ls=":")
        ax.set(xscale="log", xlabel="dimension d (stream_abs, SGD; D = G = 1)", ylabel="% above cosine (tuned)",
               title="inside the class: gap vs d (dashed: the bound's)")
        ax.legend(fontsize=7)
        for r in range(1, len(probs)):
            axs[r][-1].axis("off")
    fig.suptitle(f"T = {cfg.sim.n_steps} steps, d = {cfg.sim.d}, {cfg.seeds} seeds, fresh samples every step. Open: "
                 "sim mean +- 2 SE; filled: tuned lr; dashed (SGD): the bound D^2 t1/c + c G^2 (t2+t3) with the "
                 f"problem's D, G (tuned bound: WSD {100 * (bt[1] / bt[0] - 1):+.1f}% vs cosine)", fontsize=9)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(PRESETS["quick"], "seeds=8", "sim.n_steps=200", "sim.log_every=100",
                                          "half_octaves=2", "problems=stream_abs", "optimizers=sgd")},
)
