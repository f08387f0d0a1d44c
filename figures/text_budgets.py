"""Several budgets from one run on real text: WSD-S vs WSD (one branch per budget) vs cyclic cosine vs a cosine run per
budget, for the character LM on Shakespeare's plays (Wen et al. 2024, Sec. 5)."""

from __future__ import annotations

import dataclasses
import typing

import jax
import matplotlib.pyplot as plt
import numpy as np

from figures._core import TRAINED_AT_TINY, Claim, Diverged, Figure, Validated, fmt, mean_se, overrides, param
from figures._text import FULL_MODEL, QUICK_MODEL, TINY_MODEL, refuse_schedule
from sims import schedule_specs as ss
from sims import schedules as S
from sims.char_lm import CharLMConfig, by_schedule

NAME = "text_budgets"
DESCRIPTION = "char LM: WSD-S / WSD / cyclic cosine checkpoints at several budgets vs a cosine run per budget"
PAPER = "Wen et al. 2024 (arXiv 2410.05192), Sec. 5, on text"
METHODS = ("WSD-S", "WSD", "cyclic cosine", "cosine per budget")


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """``sim`` is the character LM; every protocol over ``budgets`` is one arm (the ``("arms", ...)`` schedule spec),
    run up to its last checkpoint, the pieces that arms run at the same lrs trained once (:func:`sims.tree.tree`)."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {"sim.schedule": "the protocols' unit-peak specs (one arm each)",
                                            "sim.n_steps": "the WSD-S protocol's last checkpoint"}
    sim: CharLMConfig = CharLMConfig(**QUICK_MODEL, n_steps=630, log_every=30, eval_windows=32)
    seeds: int = param(3, ge=2, le=256, help="models per arm")
    budgets: tuple[int, ...] = param((300, 600), ge=1, unique=True, help="budgets T_k (ascending; paper: 12.5k, 25k, "
                                                                        "50k)")
    decay_fraction: float = param(0.1, gt=0, lt=1, help="decay = f T_k (paper: 0.1)")
    final_ratio: float = param(0.1, ge=0, lt=1, help="lr at the end of a decay / cosine (paper: 0.1)")
    lr: float = param(3e-3, gt=0, le=1, help="peak lr of every protocol (text_wsd's tuned lr at the quick shape)")
    warmup_steps: int = param(30, ge=0, help="linear warmup in front of every protocol")
    key_seed: int = param(0, ge=0)

    def check(self):
        S.check_budgets(self.budgets)
        refuse_schedule(self)
        if self.warmup_steps >= self.budgets[0] * (1 - self.decay_fraction):
            raise ValueError("warmup_steps must end before the first decay")
        steps = [c for _, c in self.checkpoints()]
        if any(c % self.sim.log_every for c in steps):
            raise ValueError(f"sim.log_every ({self.sim.log_every}) must divide every checkpoint {steps}")
        self.run_config()  # the sim as the figure runs it: validated here, before anything is computed

    def run_config(self) -> CharLMConfig:
        """``sim`` with the figure's fields: the protocols' arms and the WSD-S protocol's steps."""
        specs = tuple(s for p in self.protocols().values() for s in p.runs)
        return dataclasses.replace(self.sim, n_steps=self.protocols()["WSD-S"].compute, schedule=("arms", specs))

    def protocols(self) -> dict:
        wsds = ss.wsd_s_protocol(self.budgets, self.decay_fraction, self.final_ratio)
        cosines = tuple(("cosine", T, self.final_ratio) for T in self.budgets)
        return {"WSD-S": wsds, "WSD": ss.wsd_protocol(self.budgets, self.decay_fraction, self.final_ratio),
                "cyclic cosine": ss.cyclic_cosine_protocol([c for _, c in wsds.checkpoints], self.final_ratio),
                "cosine per budget": ss.Protocol("cosine per budget", cosines, tuple(self.budgets),
                                                 tuple(enumerate(self.budgets)), sum(self.budgets))}

    def checkpoints(self) -> list:
        """(arm index, step) of every protocol's checkpoints, in METHODS x budget order."""
        out, base = [], 0
        for p in self.protocols().values():
            out += [(base + r, step) for r, step in p.checkpoints]
            base += len(p.runs)
        return out


PRESETS = {
    "quick": Config(),
    # paper budgets; checkpoints 48750 and 53750 (WSD-S) need log_every | 1250
    "full": Config(sim=CharLMConfig(**FULL_MODEL, n_steps=53750, log_every=1250), budgets=(12500, 25000, 50000),
                   lr=1e-3, warmup_steps=500),
}


def compute(cfg):
    sc = cfg.run_config()
    arms = list(range(len(sc.schedule[1])))
    # the arms differ only by their schedules: a piece two arms run at the same lrs is trained once (sims.tree):
    # WSD's branches share the main run, WSD's first checkpoint is WSD-S's; each arm stops at its last checkpoint
    ends = [max(s for a, s in cfg.checkpoints() if a == arm) for arm in arms]
    ds = by_schedule(sc, {"arm": [float(a) for a in arms]}, ends=ends,
                     fixed={"lr": cfg.lr, "warmup_steps": float(cfg.warmup_steps)}, seeds=cfg.seeds,
                     key=jax.random.key(cfg.key_seed))  # one key: common random numbers across arms
    ds = ds.swap_dims(point="arm").assign_coords(arm=arms)
    if ds.diverged.any():
        raise Diverged(f"{int(ds.diverged.sum())} char-LM runs diverged at lr {cfg.lr:g}")
    ck = cfg.checkpoints()
    loss = np.stack([ds.loss.sel(arm=a, step=s).values for a, s in ck]).reshape(len(METHODS), len(cfg.budgets), -1)
    out = ds.drop_vars([v for v in ds.data_vars if v not in ("loss", "lr_t", "diverged")])
    out["ckpt_loss"] = (("method", "budget", "seed"), loss)
    out["ckpt_step"] = (("method", "budget"), np.array([s for _, s in ck]).reshape(len(METHODS), -1))
    out["compute_steps"] = ("method", [p.compute for p in cfg.protocols().values()])
    return out.assign_coords(method=list(METHODS), budget=list(cfg.budgets))


def claims(ds, cfg):
    out = []
    L = ds.ckpt_loss.values.astype(np.float64)  # method, budget, seed

    def pair(i, j):  # method j - method i at each budget: mean, SE
        d = L[j] - L[i]
        return d.mean(1), d.std(1, ddof=1) / np.sqrt(d.shape[1])

    rows = []
    for name, (i, j), stmt in (("wsd_s_beats_wsd", (0, 1), "WSD-S <= WSD"),
                               ("wsd_beats_cyclic_cosine", (1, 2), "WSD <= cyclic cosine")):
        m, se = pair(i, j)
        ok = bool(np.all(m >= -2 * se))
        rows.append((name, stmt, m, se, ok))
    for name, stmt, m, se, ok in rows:
        out.append(Claim(
            id=name,
            statement=f"at every budget, at equal total compute, {stmt} (paper: WSD-S <= WSD <= cyclic cosine)",
            theory="Wen et al. Sec. 5: the river progress of the stable phase is kept across decays (WSD-S), and a "
                   "short decay beats a long cosine cycle",
            measured="; ".join(f"T={b}: {fmt(a, 3)} +- {fmt(s, 2)}" for b, a, s in zip(cfg.budgets, m, se))
                     + " (second - first, nats)",
            statistic="paired differences (common random numbers) >= -2 SE at every budget", passed=ok))
    m, se = pair(3, 0)  # WSD-S - cosine per budget
    comp = ds.compute_steps.values
    out.append(Claim(
        id="wsd_s_vs_cosine_per_budget",
        statement="WSD-S's checkpoints are as good as a separate cosine run per budget, at a fraction of the compute",
        theory=f"compute: WSD-S {comp[0]} steps for all budgets vs {comp[3]} for the cosine runs",
        measured="WSD-S - cosine: " + "; ".join(f"T={b}: {fmt(a, 3)} +- {fmt(s, 2)}"
                                                 for b, a, s in zip(cfg.budgets, m, se)),
        statistic="WSD-S - cosine <= 2 SE at every budget", passed=bool(np.all(m <= 2 * se))))
    return out


def plot(ds, cfg):
    fig, axs = plt.subplots(1, 2, figsize=(12, 4))
    steps = ds.step.values
    protos = cfg.protocols()
    cols = {m: f"C{i}" for i, m in enumerate(METHODS)}
    arm = 0
    for name, p in protos.items():
        for r in range(len(p.runs)):
            ck = [s for rr, s in p.checkpoints if rr == r]
            end = max(ck)
            sel = steps <= end
            lab = name if r == 0 else None
            m = ds.loss.sel(arm=arm).mean("seed").values
            axs[0].plot(steps[sel][1:], m[sel][1:], color=cols[name], lw=1.2 if name == "WSD-S" else 0.9, label=lab,
                        ls=":" if name == "cosine per budget" else "-")
            axs[0].plot(ck, [m[list(steps).index(c)] for c in ck], "o", color=cols[name], ms=4)
            arm += 1
    lo = float(ds.ckpt_loss.mean("seed").min())
    axs[0].set(xlabel="step", ylabel="held-out loss (nats/char)", ylim=(lo - 0.05, lo + 0.6),
               title=f"char LM, peak lr {cfg.lr:g} (dots: checkpoints)")
    axs[0].legend(fontsize=7)
    for i, name in enumerate(METHODS):
        m, se = mean_se(ds.ckpt_loss.isel(method=i))
        axs[1].errorbar(np.array(cfg.budgets) + 0.01 * max(cfg.budgets) * (i - 1.5), m, yerr=se, marker="o", capsize=2,
                        color=cols[name], label=f"{name} ({int(ds.compute_steps.values[i])} steps in all)")
    axs[1].set(xlabel="budget T_k (steps)", ylabel="checkpoint loss (nats/char)",
               title="one checkpoint per budget (mean +- SE)")
    axs[1].set_xticks(list(cfg.budgets), [str(b) for b in cfg.budgets])
    axs[1].legend(fontsize=7)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=2", *TINY_MODEL, "budgets=40,80", "sim.log_every=2", "warmup_steps=4")},
    not_at_tiny=TRAINED_AT_TINY,
)
