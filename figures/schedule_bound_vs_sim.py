"""The last-iterate bound vs SGD on noisy convex problems: final loss vs peak lr across schedules."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from scipy.optimize import least_squares
from scipy.stats import spearmanr

from figures._core import Claim, Figure, Validated, fmt, mean_se, overrides, param
from sims import schedules as S
from sims.convex_sgd import ConvexConfig, make_data, sim
from sims.sweep import sweep, tune_lr
from theory import schedules as ts

NAME = "schedule_bound_vs_sim"
DESCRIPTION = "final loss vs peak lr for 6 schedules on 3 convex problems (SGD) against the tuned last-iterate bound"
PAPER = "Defazio et al. 2023 (arXiv 2310.07831), Thm 10; Schaipp et al. 2025 (arXiv 2501.18965)"

SCHEDS = {"constant": (0.0, "linear"), "linear decay": (1.0, "linear"), "cosine": (1.0, "cosine"),
          "WSD 20% linear": (0.2, "linear"), "WSD 20% 1-sqrt": (0.2, "1-sqrt"), "REX": (1.0, "rex")}
CENTER = {"abs": 0.1, "logistic": 3.0, "least_squares": 0.1}


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the SGD run; the figure sets its problem (each of ``problems``) and sweeps the schedules of
    SCHEDS over a peak-lr grid."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {"sim.problem": "each of `problems`",
                                            "sim.schedule": "the WSD family of SCHEDS (hparams)"}
    sim: ConvexConfig = ConvexConfig(n_steps=2000, log_every=100)
    seeds: int = param(64, ge=2)
    half_octaves: int = param(6, ge=2, help="lr grid: center x 2^(k/2), k = -h..h")
    problems: tuple[str, ...] = param(unique=True, default=("abs", "logistic", "least_squares"), choices=tuple(CENTER))
    key_seed: int = param(0, ge=0)
    bound_horizons: tuple[int, ...] = param((100, 1000, 10000, 100000), ge=2, le=10_000_000,
                                            help="horizons T of the tuned-bound table (float64)")

    def check(self):
        if any(b <= a for a, b in zip(self.bound_horizons, self.bound_horizons[1:])):
            raise ValueError(f"bound_horizons must be strictly increasing, got {self.bound_horizons}")
        if self.sim.n_steps < 100:
            raise ValueError(f"sim.n_steps={self.sim.n_steps} is out of range: must be >= 100")


PRESETS = {"quick": Config(),
           "full": Config(sim=dataclasses.replace(Config().sim, n_steps=10000, log_every=500), seeds=256,
                          half_octaves=8)}


def _shapes(T):
    return np.stack([S.as_array(S.family_schedule(S.family(1.0, f, sh), T), T) for f, sh in SCHEDS.values()])


def compute(cfg):
    key = jax.random.key(cfg.key_seed)
    ks = np.arange(-cfg.half_octaves, cfg.half_octaves + 1)
    out = []
    shapes = _shapes(cfg.sim.n_steps)
    t1, t2, t3 = ts.bound_terms(shapes)
    for prob in cfg.problems:
        lrs = CENTER[prob] * 2.0 ** (ks / 2)
        cc = dataclasses.replace(cfg.sim, problem=prob)
        hp = {"lr": [l for l in lrs for _ in SCHEDS],
              "decay_fraction": [v[0] for _ in lrs for v in SCHEDS.values()],
              "shape_id": [S.DECAY_SHAPES.index(v[1]) for _ in lrs for v in SCHEDS.values()]}
        ds = sweep(sim(cc), hp, mode="zip", seeds=cfg.seeds, key=key)
        A, b = make_data(prob, cc.n, cc.d, cc.data_seed, cc.noise)
        fstar, _ = ts.erm_optimum(prob, A, b)
        fin = ds.loss.isel(step=-1).where(~ds.diverged).values.reshape(len(lrs), len(SCHEDS), cfg.seeds)
        n_div = int(ds.diverged.sum())

        def evaluate(lr, arm, cc=cc, fstar=fstar):  # more (lr, schedule) pairs, same seeds (common random numbers)
            nonlocal n_div
            spec = [list(SCHEDS.values())[a] for a in arm]
            d = sweep(sim(cc), {"lr": lr, "decay_fraction": [v[0] for v in spec],
                                     "shape_id": [S.DECAY_SHAPES.index(v[1]) for v in spec]}, mode="zip",
                      seeds=cfg.seeds, key=key)
            n_div += int(d.diverged.sum())
            return d.loss.isel(step=-1).where(~d.diverged).values - fstar

        tu = tune_lr(evaluate, len(SCHEDS), lrs, initial=fin - fstar)
        out.append(xr.Dataset({"final": (("problem", "lr_k", "schedule", "seed"), (fin - fstar)[None]),
                               "lr_value": (("problem", "lr_k"), lrs[None]),
                               "tuned_final": (("problem", "schedule", "seed"), tu.best[None]),
                               "tuned_lr": (("problem", "schedule"), tu.best_lr[None]),
                               "tuned_interior": (("problem", "schedule"), tu.interior[None]),
                               "n_div": (("problem",), [n_div])},
                              coords={"problem": [prob], "lr_k": ks, "schedule": list(SCHEDS)}))
    res = xr.concat(out, "problem")
    res["t1"] = ("schedule", t1)
    res["t23"] = ("schedule", t2 + t3)
    # the tuned bound 2 sqrt(t1 (t2 + t3)) at long horizons, float64 (D = G = 1)
    res["bound_table"] = (("schedule", "horizon"),
                          np.stack([ts.tuned_bound(_shapes(T))[0] for T in cfg.bound_horizons], axis=1))
    res = res.assign_coords(horizon=list(cfg.bound_horizons))
    return res


def _fit(c, sub, t1, t23):
    """Fit D, G (shared by every schedule) so that Omega(c) = D^2 t1 / c + c G^2 t23 matches the
    simulated suboptimality in log space (2 parameters for the whole problem)."""
    ok = np.isfinite(sub) & (sub > 0)

    def r(p):
        D2, G2 = np.exp(p)
        return (np.log(D2 * t1 / c + c * G2 * t23) - np.log(sub))[ok]

    p = least_squares(r, [0.0, 0.0]).x
    res = r(p)
    r2 = 1 - np.sum(res**2) / np.sum((np.log(sub[ok]) - np.log(sub[ok]).mean()) ** 2)
    return np.exp(p), r2


def _summ(ds, prob):
    f = ds.final.sel(problem=prob).values  # lr, schedule, seed
    m = np.nanmean(f, -1)
    se = mean_se(f, axis=-1, skipna=True)[1]
    lrs = ds.lr_value.sel(problem=prob).values
    return f, m, se, lrs


def claims(ds, cfg):
    out = []
    names = list(ds.schedule.values)
    t1, t23 = ds.t1.values, ds.t23.values
    bound_tuned = 2 * np.sqrt(t1 * t23)
    c_star = np.sqrt(t1 / t23)
    tab = ds.bound_table.values
    Ts = ds.horizon.values
    finite = bool(np.all(np.isfinite(tab)))
    lin_best = bool(np.all(np.argmin(tab, axis=0) == names.index("linear decay")))
    lim = float(tab[names.index("linear decay"), -1] * np.sqrt(Ts[-1]))
    ok = finite and lin_best and abs(lim - 2) < 0.01
    out.append(Claim(
        id="tuned_bound_table",
        statement="the tuned last-iterate bound (D = G = 1), float64, for every schedule and horizon "
        "(rows: schedule; columns: T = " + ", ".join(f"{int(T):g}" for T in Ts) + ")",
        theory="finite everywhere; linear decay the smallest at every T (worst-case optimal); sqrt(T) x bound(linear) "
               "-> 2",
        measured="; ".join(f"{n}: " + fmt(tab[j], 4) for j, n in enumerate(names)) + f"; sqrt(T) x linear at T = "
        f"{int(Ts[-1]):g}: {fmt(lim, 5)}",
        statistic="all finite, linear smallest in every column, |sqrt(T) bound - 2| < 0.01",
        passed=ok))
    for prob in ds.problem.values:
        f, m, se, lrs = _summ(ds, prob)
        best = np.nanargmin(m, axis=0)
        tf = ds.tuned_final.sel(problem=prob).values  # schedule, seed: each at its own tuned lr
        tlr = ds.tuned_lr.sel(problem=prob).values
        tin = ds.tuned_interior.sel(problem=prob).values
        tuned = tf.mean(-1)
        tuned_txt = "; tuned lrs " + ", ".join(f"{n} {fmt(v, 3)}" for n, v in zip(names, tlr)) + (
            "" if tin.all() else " (NOT interior: " + ", ".join(n for n, i in zip(names, tin) if not i) + ")")
        rho = spearmanr(tuned, bound_tuned).statistic
        C, Gm = np.meshgrid(lrs, np.arange(len(names)), indexing="ij")
        (D2, G2), r2 = _fit(C, m, t1[Gm], t23[Gm])
        out.append(Claim(
            id=f"ranking_{prob}",
            statement=f"{prob}: the tuned final losses of the 6 schedules rank as the tuned bound does",
            theory="bound ranking " + " < ".join(names[i] for i in np.argsort(bound_tuned)),
            measured="sim ranking " + " < ".join(names[i] for i in np.argsort(tuned)) + f"; Spearman {fmt(rho, 3)}"
            + tuned_txt, statistic="Spearman rank correlation >= 0.7 (each schedule at its own tuned lr, interior)",
            passed=bool(rho >= 0.7 and tin.all())))
        right = (C >= lrs[best][None, Gm[0]]) & np.isfinite(m)  # each schedule's noise side (lr >= its best)
        _, r2_right = _fit(C[right], m[right], t1[Gm][right], t23[Gm][right])
        ok = r2 >= 0.7
        out.append(Claim(
            id=f"loss_vs_lr_shape_{prob}",
            statement=f"{prob} ({CLASS[prob]}): one (D, G) per problem makes the bound fit final "
            "loss vs peak lr for all 6 schedules", theory="Omega(c) = D^2 t1/c + c G^2 (t2 + t3)",
            measured=f"R^2 (log) = {fmt(r2, 3)}; a separate fit on the noise side only (lr >= each best) R^2 = "
            f"{fmt(r2_right, 3)}", statistic="R^2 >= 0.7 for the fit over all lrs", passed=bool(ok),
            finding="" if ok else "the small-lr side does not follow D^2/(2 c S_T): on these well-conditioned "
            "finite-sum problems SGD forgets its start exponentially fast at small lr, while the worst-case "
            "bound for Lipschitz convex f decays only as 1/c. " + EXPECT[prob]))
        i_lin, i_wsd, i_sq, i_cos = (names.index(n) for n in ("linear decay", "WSD 20% linear", "WSD 20% 1-sqrt",
                                                             "cosine"))
        ratio_b = c_star[i_wsd] / c_star[i_lin]
        ratio_s = tlr[i_wsd] / tlr[i_lin]
        out.append(Claim(
            id=f"optimal_lr_ratio_{prob}",
            statement=f"{prob}: the best peak lr of WSD (20% cooldown) relative to linear decay",
            theory=f"c*_WSD / c*_linear = {fmt(ratio_b, 3)}",
            measured=f"{fmt(ratio_s, 3)} (grid refined to x2^(1/4) at the optimum)",
            statistic="within a factor 1.5 (one grid step ~ 1.41 plus noise)",
            passed=bool(1 / 1.5 <= ratio_s / ratio_b <= 1.5)))
        gap_b = bound_tuned[i_wsd] / bound_tuned[i_cos] - 1
        gap_s = tuned[i_wsd] / tuned[i_cos] - 1
        # the gap's SE by the delta method on the paired per-seed values
        gap_se = np.std(tf[i_wsd] / tuned[i_cos] - tuned[i_wsd] * tf[i_cos] / tuned[i_cos] ** 2, ddof=1) / np.sqrt(
            tf.shape[-1])
        both_in = bool(tin[i_wsd] and tin[i_cos])
        ok = gap_s <= 0.1
        out.append(Claim(
            id=f"wsd_matches_cosine_{prob}",
            statement=f"{prob}: WSD with a 20% cooldown matches cosine (each at its own tuned "
            "peak lr, within 10%)", theory=f"bound: WSD {fmt(100 * gap_b, 3)}% above cosine",
            measured=f"sim: WSD {fmt(100 * gap_s, 3)} +- {fmt(100 * gap_se, 2)}% above cosine (tuned lr WSD "
            f"{fmt(tlr[i_wsd], 3)}, cosine {fmt(tlr[i_cos], 3)}, both interior: {both_in})",
            statistic="sim gap <= 10%, both optima interior", passed=bool(ok and both_in),
            finding="" if ok or not both_in else f"stands after the float64 fix with both peak lrs tuned (interior, "
            f"grid refined to x2^(1/4)): at T = {cfg.sim.n_steps} steps of batch-1 SGD the simulated gap is far larger "
            f"than the bound's {fmt(100 * gap_b, 3)}%. The bound is a worst case over convex Lipschitz problems "
            "and ranks them the same way; on these well-conditioned finite-sum problems the final loss is set by "
            "the lr over the last ~1/(mu lr) steps, which cosine lowers gradually and WSD only in its last 20%. "
            "The papers' match (Haegele et al. 2024; Wen et al. 2024) is for LLM pre-training, not convex toys"))
        # 1-sqrt vs linear cooldown, each at its own tuned lr, paired over seeds
        d = tf[i_wsd] - tf[i_sq]
        dse = mean_se(d, skipna=True)[1]
        pred = bound_tuned[i_sq] < bound_tuned[i_wsd]
        agree = (np.nanmean(d) > -2 * dse) if pred else (np.nanmean(d) < 2 * dse)
        out.append(Claim(
            id=f"sqrt_vs_linear_cooldown_{prob}",
            statement=f"{prob}: 1-sqrt cooldown beats linear cooldown where the bound says so",
            theory=f"bound: 1-sqrt {'<' if pred else '>'} linear "
            f"({fmt(bound_tuned[i_sq], 4)} vs {fmt(bound_tuned[i_wsd], 4)})",
            measured=f"sim: linear - 1-sqrt = {fmt(np.nanmean(d), 3)} +- {fmt(dse, 2)}",
            statistic="the sim difference is not significantly (2 SE) of the opposite sign", passed=bool(agree)))
    return out


# what the bound (convex, G-Lipschitz f) may predict on each problem class
CLASS = {"abs": "convex, Lipschitz, non-smooth: the bound's own class",
         "logistic": "convex, Lipschitz and smooth: the bound holds; not strongly convex globally",
         "least_squares": "strongly convex quadratic, not globally Lipschitz"}
EXPECT = {"abs": "abs is in the bound's class, so the noise side (c G^2 (t2 + t3)) and the ranking are its "
                 "predictions; the small-lr side is loose because the data term is sharp.",
          "logistic": "For logistic regression the bound holds; it is loose where the iterate converges fast.",
          "least_squares": "Least squares is outside the bound's class (gradients are unbounded; G is only a "
                           "local constant): the bound should predict the ranking and the lr-proportional noise "
                           "side, not the small-lr side, where SGD converges linearly (exp(-mu S_T))."}


STYLE = {"constant": ("k", "s"), "linear decay": ("#0072B2", "o"), "cosine": ("#009E73", "^"),
         "WSD 20% linear": ("#D55E00", "v"), "WSD 20% 1-sqrt": ("#CC79A7", "D"), "REX": ("#E69F00", "P")}


def plot(ds, cfg):
    """One panel per problem: each schedule's simulated points (mean +- 2 SE) and, in the same colour and marker,
    its bound Omega(c) = D^2 t1/c + c G^2 (t2 + t3) with ONE (D, G) fitted per problem (log least squares over
    every schedule and lr); last panel: the tuned bound vs horizon (float64)."""
    probs = list(ds.problem.values)
    fig, axs = plt.subplots(1, len(probs) + 1, figsize=(4.1 * (len(probs) + 1), 3.9), squeeze=False)
    names = list(ds.schedule.values)
    t1, t23 = ds.t1.values, ds.t23.values
    for ax, prob in zip(axs[0], probs):
        f, m, se, lrs = _summ(ds, prob)
        C, Gm = np.meshgrid(lrs, np.arange(len(names)), indexing="ij")
        (D2, G2), r2 = _fit(C, m, t1[Gm], t23[Gm])
        fine = np.geomspace(lrs.min(), lrs.max(), 200)
        for j, n in enumerate(names):
            col, mk = STYLE.get(n, (f"C{j}", "o"))
            ax.errorbar(lrs, m[:, j], yerr=2 * se[:, j], fmt=mk, ms=3.5, color=col, mfc="white", mew=1.0,
                        elinewidth=0.8, label=n)
            ax.plot(fine, D2 * t1[j] / fine + fine * G2 * t23[j], color=col, lw=1.3, alpha=0.9)
            ax.plot(ds.tuned_lr.sel(problem=prob).values[j], ds.tuned_final.sel(problem=prob).values[j].mean(),
                    mk, color=col, ms=6)
        ax.set(xscale="log", yscale="log", xlabel="peak lr c", ylabel=r"$f(x_T) - f^\star$",
               title=f"{prob}: fit $R^2$ = {r2:.2f} (log)")
        ax.set_ylim(np.nanmin(m) / 2, np.nanmin(m) * 60)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax = axs[0][-1]
    Ts = ds.horizon.values
    for j, n in enumerate(names):
        col, mk = STYLE.get(n, (f"C{j}", "o"))
        ax.plot(Ts, ds.bound_table.values[j] * np.sqrt(Ts), marker=mk, color=col, ms=4, label=n)
    ax.axhline(2.0, color="0.5", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="horizon T", ylabel=r"$\sqrt{T}\,\Omega^\star$ (tuned bound, D = G = 1)",
           title="tuned bound, float64 (2: linear decay's limit)")
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Final loss vs peak lr after T = {cfg.sim.n_steps} SGD steps ({cfg.seeds} seeds). Open markers: "
                 "sim mean +- 2 SE; large filled: each schedule at its tuned lr; lines: the last-iterate bound with "
                 "one (D, G) fitted per problem", fontsize=9)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=16", "sim.n_steps=400", "half_octaves=3", "problems=abs", "bound_horizons=100,1000")},
)
