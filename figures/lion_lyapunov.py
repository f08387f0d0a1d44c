"""Lion-K's Lyapunov function H(x, m) along discrete and ODE trajectories, and a case violating its condition."""

from __future__ import annotations

import dataclasses
import typing

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, float64, fmt, overrides, param
from sims.lion import LionConfig, ode_solve, sim
from sims.sweep import sweep
from theory import lion as tl

NAME = "lion_lyapunov"
DESCRIPTION = "H(x, m) is non-increasing along Lion-K (discrete: up to O(eps) terms; ODE: exactly) iff eps*gamma <= 1"
PAPER = "Chen, Liu, Liang, Liu, ICLR 2024 (arXiv 2310.05898), Sec. 3"

PROBS = {"quadratic": (4, 1.0), "rosenbrock": (2, 1 / 0.6), "logistic": (4, 2.0)}  # name -> (d, lambda)


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the discrete Lion-K run on each problem of ``PROBS`` (every step recorded: H is checked step by
    step), at each (lr, b1, b2) of ``lrs`` x ``betas``."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {
        "sim.problem": "each problem of PROBS", "sim.d": "each problem's dimension (PROBS)",
        "sim.problem_seed": "0: the problems of PROBS", "sim.kappa": "l1: Lion's sign",
        "sim.log_every": "1: H is checked at every step",
        "sim.x0": "0.3 / lambda in every coordinate (inside the box)", "sim.x0_scale": "unused: x0 is fixed",
        "sim.grad_noise": "0: the Lyapunov statement is for exact gradients",
    }
    sim: LionConfig = LionConfig(n_steps=2000, log_every=1)
    lrs: tuple[float, ...] = param(
        unique=True, default=(1e-2, 3e-3, 1e-3), gt=0, help="epsilons (a decade, for the order check)")
    betas: tuple[float, ...] = param((0.9, 0.99, 0.5, 0.9, 0.0, 0.99), ge=0, lt=1,
                                     help="(b1, b2) pairs, flattened; all with b1 <= b2")
    ode_time: float = param(10.0, gt=0)
    ode_dts: tuple[float, ...] = param(unique=True, default=(2e-3, 1e-3), gt=0)
    violating: tuple[float, ...] = param(
        unique=True, default=(3.0, 6.0), gt=1, help="eps*gamma values > 1 (violate C >= 0)")

    def check(self):
        if self.sim.n_steps < 10:
            raise ValueError(f"sim.n_steps must be >= 10, got {self.sim.n_steps}")
        if len(self.betas) % 2:
            raise ValueError("betas must hold (b1, b2) pairs")
        if len(self.lrs) < 2 or max(self.lrs) / min(self.lrs) < 5:
            raise ValueError("lrs must span at least a factor 5 (order check)")


PRESETS = {"quick": Config(), "full": Config(sim=LionConfig(n_steps=20000, log_every=1), lrs=(1e-2, 3e-3, 1e-3, 3e-4),
                                             ode_dts=(1e-3, 5e-4))}


def _H(xs, ms, f, kappa, lam, a, g, e):
    return np.array([tl.lyapunov(float(f(x)), x, m, kappa, lam, a, g, e) for x, m in zip(xs, ms)])


@float64
def compute(cfg):
    K1 = tl.get_kappa("l1")
    pairs = list(zip(cfg.betas[::2], cfg.betas[1::2]))
    combos = [(lr, b1, b2) for lr in cfg.lrs for b1, b2 in pairs]
    out = {}
    for prob, (d, lam) in PROBS.items():
        f, _ = tl.problem(prob, d)
        lc = dataclasses.replace(cfg.sim, problem=prob, d=d, x0=tuple([0.3 / lam] * d))
        ds = sweep(sim(lc), {"lr": [c[0] for c in combos], "b1": [c[1] for c in combos],
                                  "b2": [c[2] for c in combos]}, mode="zip", fixed={"weight_decay": lam}, seeds=1,
                   key=jax.random.key(0), progress=False,
                   dims={"x": (f"c{d}",), "m": (f"c{d}",)})
        Hs = []
        for i, (lr, b1, b2) in enumerate(combos):
            a, g, e = tl.ode_params(lr, b1, b2)
            Hs.append(_H(ds.x.values[i, 0], ds.m.values[i, 0], f, K1, lam, a, g, e) / a)  # H / alpha
        out[f"H_{prob}"] = (("combo", "step"), np.stack(Hs))
    # ODE: sign K on Rosenbrock (chatter shrinks with dt), smooth K exactly monotone, violation
    f, _ = tl.problem("rosenbrock", 2)
    lam = 1 / 0.6
    ode = {}
    for dt in cfg.ode_dts:
        n = int(round(cfg.ode_time / dt))
        tr = ode_solve(f, "l1", jnp.array([-0.5, 0.5]), jnp.zeros(2), alpha=1.0, gamma=1.0, look=0.05, lam=lam,
                       dt=dt, n_steps=n, scheme="euler")
        ode[("sign", dt)] = _H(np.asarray(tr.x), np.asarray(tr.m), f, K1, lam, 1.0, 1.0, 0.05)
    fq, _ = tl.problem("quadratic", 2)
    for kap in ("quadratic", "logcosh", "huber"):
        K = tl.get_kappa(kap)
        for look in (0.5, 1.0) + tuple(cfg.violating):
            for dt in cfg.ode_dts:
                n = int(round(cfg.ode_time / dt))
                tr = ode_solve(fq, kap, jnp.array([0.2, -0.3]), jnp.zeros(2), alpha=1.0, gamma=1.0, look=look,
                               lam=1.0, dt=dt, n_steps=n, scheme="heun")
                ode[(kap, look, dt)] = _H(np.asarray(tr.x), np.asarray(tr.m), fq, K, 1.0, 1.0, 1.0, look)
    res = xr.Dataset(out, coords={"combo": [f"eps={c[0]:g}, b1={c[1]:g}, b2={c[2]:g}" for c in combos]})
    res["combo_lr"] = ("combo", [c[0] for c in combos])
    res["combo_pair"] = ("combo", [f"({c[1]:g},{c[2]:g})" for c in combos])
    for k, v in ode.items():
        name = "ode_" + "_".join(str(x) for x in k)
        res[name] = (f"t_{name}", v)
    return res


def claims(ds, cfg):
    out = []
    lrs = np.array(cfg.lrs)
    lo, hi = lrs.min(), lrs.max()
    worst, rows = np.inf, []
    for prob in PROBS:
        H = ds[f"H_{prob}"].values
        inc = np.diff(H, axis=1).max(1)
        for pair in np.unique(ds.combo_pair.values):
            sel = ds.combo_pair.values == pair
            big = inc[sel & (ds.combo_lr.values == hi)][0]
            small = inc[sel & (ds.combo_lr.values == lo)][0]
            ratio = big / max(small, 1e-300) if small > 0 else np.inf
            worst = min(worst, ratio)
            rows.append(f"{prob}{pair}: {fmt(big, 2)} -> {fmt(small, 2)}")
    need = hi / lo
    out.append(Claim(id="discrete_lyapunov",
                     statement="discrete Lion: H/alpha decreases up to error terms that vanish with eps (quadratic, "
                               "Rosenbrock, "
                     "logistic; (b1, b2) sweep)",
                     theory=f"max one-step increase = O(eps): ratio >= {fmt(need, 3)} over "
                     "the eps range", measured="; ".join(rows) + f"; worst ratio {fmt(worst, 3)}",
                     statistic="max one-step increase at the largest eps / at the smallest (<= 0 counts as inf) >= eps "
                               "ratio",
                     passed=bool(worst >= need)))
    dts = sorted(cfg.ode_dts)
    s_small = np.diff(ds[f"ode_sign_{dts[0]}"].values).max()
    s_big = np.diff(ds[f"ode_sign_{dts[-1]}"].values).max()
    out.append(Claim(id="ode_sign_lyapunov",
                     statement="ODE with sign (Lion): H non-increasing up to the chatter of the "
                     "discontinuous sign, which vanishes with dt", theory="increase -> 0 with dt",
                     measured=f"max increase {fmt(s_big, 2)} (dt={dts[-1]:g}) -> {fmt(s_small, 2)} (dt={dts[0]:g})",
                     statistic="shrinks at least in proportion to dt",
                     passed=bool(s_small <= s_big * dts[0] / dts[-1])))
    mono, viol = [], []
    for kap in ("quadratic", "logcosh", "huber"):
        for look in (0.5, 1.0):
            H = ds[f"ode_{kap}_{look}_{dts[0]}"].values
            mono.append(np.diff(H).max() / abs(H[0]))
        for look in cfg.violating:
            ups = [np.clip(np.diff(ds[f"ode_{kap}_{look}_{dt}"].values), 0, None).sum() for dt in dts]
            viol.append((kap, look, ups[0], ups[-1]))
    out.append(Claim(id="ode_smooth_lyapunov",
                     statement="ODE with smooth K (quadratic, logcosh, huber), eps*gamma <= 1: H is "
                     "monotone to float64 precision", theory="dH/dt = -Delta <= 0",
                     measured=f"max rel. increase {fmt(max(mono), 3)}",
                     statistic="<= 1e-9", passed=bool(max(mono) <= 1e-9)))
    real = [v for v in viol if v[2] > 1e-6 * 1.0]
    indep = all(abs(a - b) <= 0.01 * max(a, b) for _, _, a, b in real)
    out.append(Claim(id="violation_eps_gamma_gt_1",
                     statement="with eps*gamma > 1 (C < 0) H is NOT a Lyapunov function: it rises "
                     "by an amount independent of dt (not an integration error)", theory="increase > 0 for some K",
                     measured="; ".join(f"{k} eps*gamma={lk:g}: total rise {fmt(a, 3)} / {fmt(b, 3)} (two dt)"
                               for k, lk, a, b in viol),
                     statistic="some K rises by > 1e-3, and every rise > 1e-6 agrees across dt within 1%",
                     passed=bool(any(v[2] > 1e-3 for v in viol) and indep)))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.7))
    for i, prob in enumerate(PROBS):
        H = ds[f"H_{prob}"].values
        for j in range(H.shape[0]):
            if ds.combo_pair.values[j] != ds.combo_pair.values[0]:
                continue
            lr = ds.combo_lr.values[j]
            t = np.arange(H.shape[1]) * lr  # ODE time
            axs[0].plot(t, H[j] - H[j].min() + 1e-6, color=f"C{i}", lw=1,
                        ls=["-", "--", ":", "-."][list(cfg.lrs).index(lr) % 4],
                        label=rf"{prob}, $\epsilon={lr:g}$")
    axs[0].set(yscale="log", xlabel=r"ODE time $\epsilon t$", ylabel=r"$(H - \min H)/\alpha$",
               title=rf"discrete Lion, $\beta=({cfg.betas[0]:g}, {cfg.betas[1]:g})$")
    axs[0].legend(fontsize=6)
    dts = sorted(cfg.ode_dts)
    for dt, c in zip(dts, ("C0", "C1")):
        H = ds[f"ode_sign_{dt}"].values
        axs[1].plot(np.arange(H.size) * dt, H, color=c, lw=1, label=f"sign K, dt={dt:g}")
    axs[1].set(yscale="log", xlabel="time", ylabel="$H(x, m)$", title="Lion ODE (Rosenbrock, $\\lambda=1/0.6$)")
    axs[1].legend(fontsize=7)
    for i, look in enumerate((0.5, 1.0) + tuple(cfg.violating)):
        H = ds[f"ode_quadratic_{look}_{dts[0]}"].values
        axs[2].plot(np.arange(H.size) * dts[0], H, color=f"C{i}", lw=1,
                    label=rf"$\varepsilon\gamma={look:g}$" + (" (violates)" if look > 1 else ""))
    axs[2].set(xlabel="time", ylabel="$H(x, m)$",
               title="quadratic K: the condition $\\varepsilon\\gamma\\leq 1$ matters")
    axs[2].legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "lrs=1e-2,1e-3", "sim.n_steps=400", "ode_time=2.0")},
)
