"""Lion-K limits are KKT points of the composite problem: error vs epsilon against SciPy, for every kappa."""

from __future__ import annotations

import dataclasses

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, float64, fmt, overrides, param
from sims.lion import LionConfig, averaged_limit
from theory import lion as tl

NAME = "lion_kkt"
DESCRIPTION = "Lion's limit vs scipy L-BFGS-B (box) with error O(eps); each kappa solves its own composite problem"
PAPER = "Chen, Liu, Liang, Liu, ICLR 2024 (arXiv 2310.05898), Sec. 3-4"
PROBS = {"quadratic": (4, 1.0), "logistic": (4, 2.0), "rosenbrock": (2, 1 / 0.6)}
KAPPA_NAMES = ("l1", "l2", "l1.5", "huber", "logcosh", "relativistic", "quadratic")


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """No nested sim config: every run's ``LionConfig`` is derived (problem and d from ``PROBS`` or the kappa panel's
    quadratic, n_steps = ode_time / lr, 100 records, x0 ~ 3 N(0, I)), so no LionConfig field is a knob here."""

    lrs: tuple[float, ...] = param(unique=True, default=(3e-2, 1e-2, 3e-3, 1e-3), gt=0)
    ode_time: float = param(60.0, gt=0, help="eps * steps, the same for every eps")
    seeds: int = param(4, ge=1, help="random starts x0 ~ 3 N(0, I)")
    kappa_lr: float = param(1e-3, gt=0)
    kappa_lambda: float = param(1.0, gt=0)
    key_seed: int = param(0, ge=0)


PRESETS = {"quick": Config(), "full": Config(lrs=(3e-2, 1e-2, 3e-3, 1e-3, 3e-4), seeds=16)}


def _steps(cfg, lr):
    n = int(round(cfg.ode_time / lr))
    return n - n % 100


@float64
def compute(cfg):
    key = jax.random.key(cfg.key_seed)
    err, res, act = {}, {}, {}
    for prob, (d, lam) in PROBS.items():
        f, _ = tl.problem(prob, d)
        ref = tl.solve_composite(f, tl.get_kappa("l1"), lam, d)
        g = jax.grad(lambda x: f(x, jax.numpy))
        e_, r_, a_ = [], [], []
        for lr in cfg.lrs:
            n = _steps(cfg, lr)
            xbar, _ = averaged_limit(LionConfig(problem=prob, d=d, n_steps=n, log_every=n // 100, x0_scale=3.0),
                                     lr, lam, key=key, seeds=cfg.seeds)
            e_.append(np.abs(xbar - ref).max(1))
            r_.append([tl.box_kkt_residual(x, np.asarray(g(x)), lam) for x in xbar])
            on_ref = np.isclose(np.abs(ref), 1 / lam, atol=1e-6)
            on_sim = np.abs(np.abs(xbar) - 1 / lam) <= 3 * lr
            a_.append((on_sim == on_ref).all(1))
        err[prob], res[prob], act[prob] = np.stack(e_), np.stack(r_), np.stack(a_)
    # every kappa on the d = 4 quadratic, against its own composite problem
    f, _ = tl.problem("quadratic", 4)
    kerr, kref, ksim = [], [], []
    n = _steps(cfg, cfg.kappa_lr)
    for kn in KAPPA_NAMES:
        K = tl.get_kappa(kn)
        ref = tl.solve_composite(f, K, cfg.kappa_lambda, 4)
        xbar, _ = averaged_limit(LionConfig(problem="quadratic", d=4, kappa=kn, n_steps=n, log_every=n // 100,
                                            x0_scale=1.0), cfg.kappa_lr, cfg.kappa_lambda, key=key, seeds=2)
        kerr.append(np.abs(xbar - ref).max())
        kref.append(ref)
        ksim.append(xbar.mean(0))
    ds = xr.Dataset(coords={"lr": list(cfg.lrs), "seed": np.arange(cfg.seeds), "kappa": list(KAPPA_NAMES)})
    for prob in PROBS:
        ds[f"err_{prob}"] = (("lr", "seed"), err[prob])
        ds[f"kkt_{prob}"] = (("lr", "seed"), res[prob])
        ds[f"active_{prob}"] = (("lr", "seed"), act[prob])
    ds["kappa_err"] = ("kappa", np.asarray(kerr))
    ds["kappa_ref"] = (("kappa", "c4"), np.stack(kref))
    ds["kappa_sim"] = (("kappa", "c4"), np.stack(ksim))
    return ds


def claims(ds, cfg):
    out = []
    lrs = ds.lr.values
    for prob in PROBS:
        e = ds[f"err_{prob}"].max("seed").values
        slope = np.polyfit(np.log(lrs), np.log(e), 1)[0]
        act = bool(ds[f"active_{prob}"].isel(lr=-1).all())
        kkt = ds[f"kkt_{prob}"].isel(lr=-1).max().item()
        out.append(Claim(
            id=f"kkt_limit_{prob}",
            statement=f"{prob}: Lion's time-averaged limit -> the L-BFGS-B solution of min f s.t. "
            "||x||_inf <= 1/lambda, error O(eps); same active set", theory="error -> 0 as eps -> 0 (order 1)",
            measured=f"max error {fmt(e, 2)} at eps {fmt(lrs, 2)}; slope {fmt(slope, 3)}; active set agrees: {act}; "
                     "KKT "
            f"residual {fmt(kkt, 2)} at eps={lrs[-1]:g}",
            statistic="log-log slope in [0.7, 1.5], error at the smallest eps <= 2 eps, active sets equal",
            passed=bool(0.7 <= slope <= 1.5 and e[-1] <= 2 * lrs[-1] and act)))
    bad = [f"{k}: {fmt(v, 2)}" for k, v in zip(ds.kappa.values, ds.kappa_err.values) if v > 10 * cfg.kappa_lr]
    out.append(Claim(
        id="each_kappa_solves_its_problem",
        statement="every kappa's limit solves min f + K*(lambda x)/lambda (box, l2 / l3 ball, "
        "box + ridge, entropic box, relativistic ball, ridge), checked against SciPy (L-BFGS-B / SLSQP / BFGS)",
        theory="SciPy solution",
        measured="; ".join(f"{k}: {fmt(v, 2)}" for k, v in zip(ds.kappa.values, ds.kappa_err.values)),
        statistic=f"max |x_Lion - x_ref| <= 10 eps = {10 * cfg.kappa_lr:g} for every kappa", passed=not bad))
    return out


def plot(ds, cfg):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 3.8))
    lrs = ds.lr.values
    for i, prob in enumerate(PROBS):
        e = ds[f"err_{prob}"]
        ax1.errorbar(lrs, e.mean("seed"), yerr=[e.mean("seed") - e.min("seed"), e.max("seed") - e.mean("seed")],
                     fmt="o-", color=f"C{i}", ms=4, label=prob)
    ax1.plot(lrs, lrs, "k--", lw=0.8, label=r"$\epsilon$")
    ax1.set(xscale="log", yscale="log", xlabel=r"learning rate $\epsilon$",
            ylabel=r"$\|\bar x - x^\star_{\rm L-BFGS-B}\|_\infty$",
            title="Lion's limit vs the box-constrained solution")
    ax1.legend(fontsize=7)
    x = np.arange(len(ds.kappa))
    ax2.bar(x, ds.kappa_err.values, color="C0")
    ax2.axhline(10 * cfg.kappa_lr, color="C1", ls="--", lw=1, label=r"$10\epsilon$")
    ax2.set_xticks(x, ds.kappa.values, rotation=30)
    ax2.set(yscale="log", ylabel="max |x_Lion-K - x_ref|",
            title=rf"each $\mathcal{{K}}$ vs its own composite problem ($\epsilon={cfg.kappa_lr:g}$)")
    ax2.legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "lrs=3e-2,3e-3", "ode_time=10.0", "seeds=2", "kappa_lr=3e-3")},
)
