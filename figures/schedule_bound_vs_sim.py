"""The last-iterate bound vs SGD on noisy convex problems: final loss vs peak lr across schedules."""

from __future__ import annotations

import dataclasses

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from scipy.optimize import least_squares
from scipy.stats import spearmanr

from figures._core import Claim, fmt, param
from sims import schedules as S
from sims.convex_sgd import ConvexConfig, make_data, make_run
from sims.sweep import sweep
from theory import schedules as ts

NAME = "schedule_bound_vs_sim"
DESCRIPTION = "final loss vs peak lr for 6 schedules on 3 convex problems (SGD) against the tuned last-iterate bound"
PAPER = "Defazio et al. 2023 (arXiv 2310.07831), Thm 10; Schaipp et al. 2025 (arXiv 2501.18965)"

SCHEDS = {"constant": (0.0, "linear"), "linear decay": (1.0, "linear"), "cosine": (1.0, "cosine"),
          "WSD 20% linear": (0.2, "linear"), "WSD 20% 1-sqrt": (0.2, "1-sqrt"), "REX": (1.0, "rex")}
CENTER = {"abs": 0.1, "logistic": 3.0, "least_squares": 0.1}


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = param(64, ge=2)
    n_steps: int = param(2000, ge=100)
    log_every: int = param(100, ge=1)
    half_octaves: int = param(6, ge=2, help="lr grid: center x 2^(k/2), k = -h..h")
    problems: tuple[str, ...] = param(("abs", "logistic", "least_squares"), choices=tuple(CENTER))
    key_seed: int = param(0, ge=0)

    def check(self):
        if self.n_steps % self.log_every:
            raise ValueError(f"n_steps ({self.n_steps}) must be a multiple of log_every ({self.log_every})")


PRESETS = {"quick": Config(), "full": Config(seeds=256, n_steps=10000, log_every=500, half_octaves=8)}


def _shapes(T):
    return np.stack([S.as_array(S.family_schedule(S.family(1.0, f, sh), T), T) for f, sh in SCHEDS.values()])


def compute(cfg):
    key = jax.random.key(cfg.key_seed)
    ks = np.arange(-cfg.half_octaves, cfg.half_octaves + 1)
    out = []
    shapes = _shapes(cfg.n_steps)
    t1, t2, t3 = ts.bound_terms(shapes)
    for prob in cfg.problems:
        lrs = CENTER[prob] * 2.0 ** (ks / 2)
        cc = ConvexConfig(problem=prob, n_steps=cfg.n_steps, log_every=cfg.log_every)
        hp = {"lr": [l for l in lrs for _ in SCHEDS],
              "decay_fraction": [v[0] for _ in lrs for v in SCHEDS.values()],
              "shape_id": [S.DECAY_SHAPES.index(v[1]) for _ in lrs for v in SCHEDS.values()]}
        ds = sweep(make_run(cc), hp, mode="zip", seeds=cfg.seeds, key=key, steps=cc.steps(), cfg=cc,
                   steps_per_run=cfg.n_steps)
        A, b = make_data(prob, cc.n, cc.d, cc.data_seed, cc.noise)
        fstar, _ = ts.erm_optimum(prob, A, b)
        fin = ds.loss.isel(step=-1).where(~ds.diverged).values.reshape(len(lrs), len(SCHEDS), cfg.seeds)
        out.append(xr.Dataset({"final": (("problem", "lr_k", "schedule", "seed"), (fin - fstar)[None]),
                               "lr_value": (("problem", "lr_k"), lrs[None]),
                               "n_div": (("problem",), [int(ds.diverged.sum())])},
                              coords={"problem": [prob], "lr_k": ks, "schedule": list(SCHEDS)}))
    res = xr.concat(out, "problem")
    res["t1"] = ("schedule", t1)
    res["t23"] = ("schedule", t2 + t3)
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
    se = np.nanstd(f, -1, ddof=1) / np.sqrt(np.sum(np.isfinite(f), -1))
    lrs = ds.lr_value.sel(problem=prob).values
    return f, m, se, lrs


def claims(ds, cfg):
    out = []
    names = list(ds.schedule.values)
    t1, t23 = ds.t1.values, ds.t23.values
    bound_tuned = 2 * np.sqrt(t1 * t23)
    c_star = np.sqrt(t1 / t23)
    for prob in ds.problem.values:
        f, m, se, lrs = _summ(ds, prob)
        best = np.nanargmin(m, axis=0)
        tuned = m[best, np.arange(len(names))]
        rho = spearmanr(tuned, bound_tuned).statistic
        C, Gm = np.meshgrid(lrs, np.arange(len(names)), indexing="ij")
        (D2, G2), r2 = _fit(C, m, t1[Gm], t23[Gm])
        out.append(Claim(
            f"ranking_{prob}", f"{prob}: the tuned final losses of the 6 schedules rank as the tuned bound does",
            "bound ranking " + " < ".join(names[i] for i in np.argsort(bound_tuned)),
            "sim ranking " + " < ".join(names[i] for i in np.argsort(tuned)) + f"; Spearman {fmt(rho, 3)}",
            "Spearman rank correlation >= 0.7", bool(rho >= 0.7)))
        right = (C >= lrs[best][None, Gm[0]]) & np.isfinite(m)  # each schedule's noise side (lr >= its best)
        _, r2_right = _fit(C[right], m[right], t1[Gm][right], t23[Gm][right])
        ok = r2 >= 0.7
        out.append(Claim(
            f"loss_vs_lr_shape_{prob}", f"{prob}: one (D, G) per problem makes the bound fit final loss vs peak lr "
            "for all 6 schedules", "Omega(c) = D^2 t1/c + c G^2 (t2 + t3)",
            f"R^2 (log) = {fmt(r2, 3)}; a separate fit on the noise side only (lr >= each best) R^2 = "
            f"{fmt(r2_right, 3)}", "R^2 >= 0.7 for the fit over all lrs", bool(ok),
            finding="" if ok else "the small-lr side does not follow D^2/(2 c S_T): on these well-conditioned "
            "(strongly convex) finite-sum problems SGD converges exponentially at small lr, while the worst-case "
            "bound for Lipschitz convex f decays only as 1/c (see the noise-side-only R^2 for how much of the "
            "misfit that explains)"))
        i_lin, i_wsd, i_sq, i_cos = (names.index(n) for n in ("linear decay", "WSD 20% linear", "WSD 20% 1-sqrt",
                                                             "cosine"))
        ratio_b = c_star[i_wsd] / c_star[i_lin]
        ratio_s = lrs[best[i_wsd]] / lrs[best[i_lin]]
        out.append(Claim(
            f"optimal_lr_ratio_{prob}", f"{prob}: the best peak lr of WSD (20% cooldown) relative to linear decay",
            f"c*_WSD / c*_linear = {fmt(ratio_b, 3)}", f"{fmt(ratio_s, 3)} (grid step x{2 ** 0.5:.3g})",
            "within a factor 1.5 (one grid step ~ 1.41 plus noise)", bool(1 / 1.5 <= ratio_s / ratio_b <= 1.5)))
        gap_b = bound_tuned[i_wsd] / bound_tuned[i_cos] - 1
        gap_s = tuned[i_wsd] / tuned[i_cos] - 1
        ok = gap_s <= 0.1
        out.append(Claim(
            f"wsd_matches_cosine_{prob}", f"{prob}: WSD with a 20% cooldown matches cosine (tuned, within 10%)",
            f"bound: WSD {fmt(100 * gap_b, 3)}% above cosine", f"sim: WSD {fmt(100 * gap_s, 3)}% above cosine",
            "sim gap <= 10%", bool(ok),
            finding="" if ok else f"at T = {cfg.n_steps} steps of batch-1 SGD the simulated gap is ~10x the "
            f"bound's ({fmt(100 * gap_b, 3)}%); the bound ranks them the same way but is a worst case and "
            "understates how much a long decay helps on these well-conditioned problems (not tested further)"))
        # 1-sqrt vs linear cooldown, each at its own tuned lr, paired over seeds
        d = f[best[i_wsd], i_wsd] - f[best[i_sq], i_sq]
        dse = np.nanstd(d, ddof=1) / np.sqrt(np.sum(np.isfinite(d)))
        pred = bound_tuned[i_sq] < bound_tuned[i_wsd]
        agree = (np.nanmean(d) > -2 * dse) if pred else (np.nanmean(d) < 2 * dse)
        out.append(Claim(
            f"sqrt_vs_linear_cooldown_{prob}", f"{prob}: 1-sqrt cooldown beats linear cooldown where the bound says so",
            f"bound: 1-sqrt {'<' if pred else '>'} linear "
            f"({fmt(bound_tuned[i_sq], 4)} vs {fmt(bound_tuned[i_wsd], 4)})",
            f"sim: linear - 1-sqrt = {fmt(np.nanmean(d), 3)} +- {fmt(dse, 2)}",
            "the sim difference is not significantly (2 SE) of the opposite sign", bool(agree)))
    return out


def plot(ds, cfg):
    probs = list(ds.problem.values)
    fig, axs = plt.subplots(1, len(probs), figsize=(4.4 * len(probs), 3.8), squeeze=False)
    names = list(ds.schedule.values)
    t1, t23 = ds.t1.values, ds.t23.values
    for ax, prob in zip(axs[0], probs):
        f, m, se, lrs = _summ(ds, prob)
        C, Gm = np.meshgrid(lrs, np.arange(len(names)), indexing="ij")
        (D2, G2), r2 = _fit(C, m, t1[Gm], t23[Gm])
        fine = np.geomspace(lrs.min(), lrs.max(), 200)
        for j, n in enumerate(names):
            ax.errorbar(lrs, m[:, j], yerr=2 * se[:, j], fmt="o", ms=3, color=f"C{j}", label=n)
            ax.plot(fine, D2 * t1[j] / fine + fine * G2 * t23[j], color=f"C{j}", lw=0.8, alpha=0.8)
        ax.set(xscale="log", yscale="log", xlabel="peak lr", ylabel=r"$f(x_T) - f^\star$",
               title=f"{prob} (lines: bound, fitted D, G; $R^2$={r2:.2f})")
        ax.set_ylim(np.nanmin(m) / 2, np.nanmin(m) * 60)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    axs[0][0].legend(fontsize=6)
    return fig
