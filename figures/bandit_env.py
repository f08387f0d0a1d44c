"""The dynamical-linear-bandit environment against theory: steady-state value h^T u and the transient cost."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, float64, fmt, mean_se, overrides, param
from sims.bandits import BanditConfig, instance, sim
from sims.sweep import sweep
from theory import bandits as tb

NAME = "bandit_env"
DESCRIPTION = "holding an action: mean reward -> h^T u (random non-normal A, complex eigenvalues); exact transient cost"
PAPER = "Mussi, Metelli, Restelli, ICML 2023 (arXiv 2211.08997), Sec. 2"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the environment run of every (instance, arm) case: a policy holding one arm."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {
        "sim.instance": "each of `instances`",
        "sim.algorithms": "constant_arm: the policy that holds one arm (hparam arm)",
        "sim.rho_bar": "not read by the constant-arm policy",
        "sim.noise_variance": "not read by the constant-arm policy",
    }
    sim: BanditConfig = BanditConfig(algorithms=("constant_arm",), horizon=2000, log_every=20)
    seeds: int = param(400, ge=10)
    instances: tuple[str, ...] = param(
        unique=True, default=("random=0,0.8", "random=1,0.9", "random=2,0.95", "real", "synthetic"))
    n_sigma: float = param(4.0, gt=0)
    key_seed: int = param(0, ge=0)

    def check(self):
        if self.sim.horizon < 100 or self.sim.horizon // self.sim.log_every < 10:
            raise ValueError(f"sim.horizon ({self.sim.horizon}) must be >= 100 with >= 10 records "
                             f"(sim.log_every = {self.sim.log_every})")
        for name in self.instances:
            instance(name)


PRESETS = {"quick": Config(),
           "full": Config(sim=BanditConfig(algorithms=("constant_arm",), horizon=10000, log_every=100), seeds=4000)}


@float64
def compute(cfg):
    key = jax.random.key(cfg.key_seed)
    rows = []
    for name in cfg.instances:
        inst = instance(name)
        K = inst.arms.shape[0]
        bc = dataclasses.replace(cfg.sim, instance=name)
        ds = sweep(sim(bc), {"arm": list(range(K))}, seeds=cfg.seeds, key=key)
        h = tb.markov_parameter(inst)
        best = float(np.max(inst.arms @ h))
        R = ds.realized_regret.values  # arm, seed, step: cumulative sum (best - y)
        for k in range(K):
            # mean reward over the second half (transient discarded), per seed
            half = R.shape[-1] // 2
            ybar = best - (R[k, :, -1] - R[k, :, half]) / (bc.horizon - bc.steps()[half])
            # total transient cost from x = 0: sum_t (h^T u - y_t) = realized - T (best - h^T u)
            cost = R[k, :, -1] - bc.horizon * (best - inst.arms[k] @ h)
            rows.append(dict(inst=name, arm=k, ybar=ybar, J=float(inst.arms[k] @ h), cost=cost,
                             cost_th=tb.switch_cost(inst, np.zeros(inst.arms.shape[1]), inst.arms[k]),
                             rho=tb.spectral_radius(inst.A),
                             complex=bool(np.any(np.abs(np.linalg.eigvals(inst.A).imag) > 1e-9)),
                             nonnormal=float(np.linalg.norm(inst.A @ inst.A.T - inst.A.T @ inst.A))))
    return xr.Dataset({
        "ybar": (("case", "seed"), np.stack([r["ybar"] for r in rows])),
        "J": ("case", [r["J"] for r in rows]),
        "cost": (("case", "seed"), np.stack([r["cost"] for r in rows])),
        "cost_th": ("case", [r["cost_th"] for r in rows]),
        "rho": ("case", [r["rho"] for r in rows]), "complex": ("case", [r["complex"] for r in rows]),
        "nonnormal": ("case", [r["nonnormal"] for r in rows]),
    }, coords={"case": [f"{r['inst']}:{r['arm']}" for r in rows], "inst": ("case", [r["inst"] for r in rows])})


def _z(x, th):
    m, se = mean_se(np.asarray(x, dtype=np.float64), axis=-1)
    return np.abs(m - th) / se, m, se


def claims(ds, cfg):
    z, _, _ = _z(ds.ybar.values, ds.J.values)
    nn = ds.nonnormal.values
    out = [Claim(
        id="steady_state_value",
        statement="holding u, the long-run mean reward is h^T u, h = theta + B^T (I - A)^-T omega "
        f"({ds.sizes['case']} (instance, arm) pairs; {int(ds.complex.sum())} with complex eigenvalues, "
        f"max ||AA^T - A^T A|| = {fmt(nn.max(), 2)})", theory="h^T u", measured=f"max |z| = {fmt(z.max(), 3)}",
        statistic=f"|mean over the 2nd half - h^T u| / SE <= {cfg.n_sigma}", passed=bool(z.max() <= cfg.n_sigma))]
    zc, _, _ = _z(ds.cost.values, ds.cost_th.values)
    out.append(Claim(
        id="transient_cost", statement="the total transient cost of switching from steady state u to u' is "
        "omega^T (I - A)^-2 B (u' - u) (here from x = 0, the steady state of u = 0)", theory="closed form",
        measured=f"max |z| = {fmt(zc.max(), 3)}; costs {fmt(ds.cost_th.values[:4], 3)}...",
        statistic=f"|z| <= {cfg.n_sigma}",
        passed=bool(zc.max() <= cfg.n_sigma)))
    return out


def plot(ds, cfg):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    insts = list(dict.fromkeys(ds.inst.values))
    for i, name in enumerate(insts):
        sel = ds.inst.values == name
        _, m, se = _z(ds.ybar.values[sel], ds.J.values[sel])
        ax1.errorbar(ds.J.values[sel], m, yerr=2 * se, fmt="o", ms=4, color=f"C{i}",
                     label=f"{name} ($\\rho$={ds.rho.values[sel][0]:.2f})")
        _, mc, sec = _z(ds.cost.values[sel], ds.cost_th.values[sel])
        ax2.errorbar(ds.cost_th.values[sel], mc, yerr=2 * sec, fmt="o", ms=4, color=f"C{i}")
    for ax in (ax1, ax2):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax1.set(xlabel=r"theory $J(u)=h^\top u$", ylabel="simulated mean reward (2nd half)",
            title=f"steady-state value ({cfg.seeds} seeds)")
    ax1.legend(fontsize=7)
    ax2.set(xlabel=r"theory $\omega^\top(I-A)^{-2}B(u'-u)$", ylabel=r"simulated $\sum_t (h^\top u - y_t)$",
            title="transient cost of a switch")
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=50", "sim.horizon=500", "sim.log_every=5", "instances=synthetic")},
)
