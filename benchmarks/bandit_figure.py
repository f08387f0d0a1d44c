"""The whole `bandit_regret` figure at its full preset against the authors' code (marcomussi/DLB).

Suite: ``figures.bandit_regret.compute`` at the full preset (the authors' horizon 1e6 and 10 trials, both
instances, all ten runs plus the clairvoyant and the noise-variance pair), timed once end to end, compile
included (a second full run would double a ten-minute benchmark).

Authors: their own classes (agents.py, environment.py), imported from a copy of their repository whose path the
user passes (``DLB_PATH=/path/to/DLB`` or ``main(dlb=...)``; their code is not vendored), constructed exactly as
scripts/main.py does, each timed for one trial at three horizons on both instances; the time per trial is fitted as
a + b T and extrapolated to T = 1e6 and 10 trials (their loop is per round, so linear in rounds and trials).
Their code predates numpy 2 (it assigns a (1, 1) array into a float array element); a thin proxy of ``np`` in
their module turns such size-1 assignments into scalars and changes nothing else (measured overhead: one
``ndarray.__setitem__`` per arm per round).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._common import append_results

HORIZONS = (5_000, 10_000, 20_000)  # the horizons their agents are timed at (one trial each; least-squares a + b T)


class _Scalarizing(np.ndarray):
    def __setitem__(self, i, v):
        if isinstance(v, np.ndarray) and v.size == 1 and np.ndim(np.ndarray.__getitem__(self, i)) == 0:
            v = v.item()
        np.ndarray.__setitem__(self, i, v)


class _NumpyProxy:
    """``np`` for the authors' module under numpy 2: ``zeros`` returns arrays that accept size-1 arrays as
    scalars; everything else is numpy itself."""

    def __getattr__(self, k):
        return getattr(np, k)

    @staticmethod
    def zeros(*a, **k):
        return np.zeros(*a, **k).view(_Scalarizing)


def _authors_agents(dlb: Path, cfg: dict, T: int):
    """Their ten agents for one config, built as scripts/main.py builds them (with their complex max(eigvals)
    where main.py has it). Returns name -> zero-argument constructor, plus the environment class and inputs."""
    sys.path.insert(0, str(dlb))
    agents = importlib.import_module("dynlinucb.experimental.agents")
    agents.np = _NumpyProxy()
    env_mod = importlib.import_module("dynlinucb.experimental.environment")
    spectr = importlib.import_module("dynlinucb.core.utils").spectr
    A, B, C, D = (np.array(cfg[k]) for k in "ABCD")
    sigma, p = cfg["noise_sigma"], cfg["p"]
    om = np.ones((1, p))
    import itertools

    ll = []
    for pi in itertools.permutations(range(p)):
        budget, u = cfg["max_daily_budget"] - p * cfg["min_camp_budget"], np.ones(p) * cfg["min_camp_budget"]
        for i in range(p):
            delta = min(budget, cfg["max_camp_budget"] - u[i])
            u[pi[i]] += delta
            budget -= delta
        ll.append(u.copy())
    arms = np.unique(np.array(ll), axis=0)
    K = arms.shape[0]
    import warnings

    warnings.filterwarnings("ignore")  # as main.py (complex -> float casts)
    srad = max(np.linalg.eigvals(A))
    omega = np.linalg.norm(om @ C, 2)
    u_val = max(np.linalg.norm(a) for a in arms)
    b_val = np.linalg.norm(B, 2)
    phi = spectr(A)
    theta = np.linalg.norm(om @ D, 2)
    ar2_alpha = max(np.linalg.eigvals(A))
    ar2_ep = math.ceil(K * ar2_alpha ** (-3) * sigma ** (-3))
    ar2_c0 = np.sqrt(4 * np.log(1 / (ar2_alpha * sigma)) + 4 * np.log(ar2_ep) + 2 * np.log(4 * K))
    g = min(1, np.sqrt(K * np.log(K) / ((math.e - 1) * 2 * T / 3)))
    M = (theta + omega * b_val / (1 - srad)) * u_val
    aux, s = 0, 0
    while s < T:
        aux += 1
        s += 1 + math.floor(np.log(aux) / np.log(1 / srad))
    bs = math.ceil(np.log(aux) / np.log(1 / srad))
    bg = min(1, np.sqrt(K * np.log(K) / ((math.e - 1) * 2 * (T / bs) / 3)))
    a = agents
    lin = (K, p, arms, T, np.log(T), srad, omega, theta, u_val, b_val, phi, sigma**2, 1.0 / T)
    make = {
        "exp3": lambda: a.Exp3Agent(K, gamma=g, eta=g / K, max_reward=4 * M, add_factor=2 * M),
        "batchexp3": lambda: a.BatchExp3Agent(K, gamma=bg, eta=bg / K, max_reward=4 * M, add_factor=2 * M,
                                              batch_size=bs, horizon=T, method="mean"),
        "dynlinucblog": lambda: a.LinearAgent(*lin, dynlinucb=True),
        "linucblog": lambda: a.LinearAgent(*lin, linucb=True),
        "dlinucblog": lambda: a.LinearAgent(*lin, gamma=0.999999, dlinucb=True),
        "dynlinucb": lambda: a.DynLinUCBAgent(K, p, arms, T, 1, srad, omega, theta, u_val, b_val, phi, sigma**2),
        "linucb": lambda: a.LinUCBAgent(K, p, arms, T, 1, theta, cfg["max_daily_budget"], sigma),
        "dlinucb": lambda: a.DLinUCBAgent(K, p, arms, T, 1, theta, cfg["max_daily_budget"], 0.999999999, sigma),
        "ar2": lambda: a.AR2Agent(K, ar2_alpha, ar2_ep, ar2_c0, sigma),
    }
    if len(cfg["expert"]) == p:
        make["expert"] = lambda: a.ExpertAgent(K, cfg["expert"], min_action=0, max_action=1, max_global=1.5)
    return make, env_mod.DynLinEnvironment, (A, B, C, D, p, om, arms, sigma)


def _time_authors(dlb: Path, config: str, T: int) -> float:
    """Seconds for one trial of T rounds of each of their agents, summed (their Runner's loop, inlined)."""
    cfg = json.loads((dlb / "config" / f"{config}.json").read_text())
    make, Env, (A, B, C, D, p, om, arms, sigma) = _authors_agents(dlb, cfg, T)
    rng = np.random.default_rng(1)
    noise, out = rng.normal(0, sigma, (1, T, cfg["n"])), rng.normal(0, sigma, (1, T, cfg["m"]))
    total = 0.0
    for mk in make.values():
        env = Env(A, B, C, D, cfg["n"], p, cfg["m"], T, noise, out, 1, om)
        agent = mk()
        t0 = time.perf_counter()
        env.reset(0)
        agent.reset()
        for _ in range(T):
            act = agent.pull_arm()
            u = act.reshape(p, 1) if isinstance(act, np.ndarray) else arms[act].reshape(p, 1)
            agent.update(env.step(u)[0, 0])
        total += time.perf_counter() - t0
    return total


def main(dlb: str | None = None):
    import jax

    from figures import bandit_regret as fig

    cfg = fig.PRESETS["full"]
    dlb = dlb or os.environ.get("DLB_PATH")
    rows = [("size", f"bandit_regret full preset: 2 instances x {len(fig.ALGS)} runs (+ 2 noise-variance runs) x "
                     f"{cfg.seeds} seeds x {cfg.horizon:g} rounds; one compiled call per code path "
                     f"({len(fig.sb.PATHS)}), instances stacked as arrays, calls on a thread pool of "
                     f"{os.cpu_count()} workers")]
    t0 = time.perf_counter()
    ds = fig.compute(cfg)
    jax.block_until_ready(ds.pseudo_regret.values)
    t_suite = time.perf_counter() - t0
    rows.append(("suite, whole figure compute (compile included, one run)", f"{t_suite:.0f} s"))
    if dlb is None:
        rows.append(("authors' code", "not timed: pass DLB_PATH=/path/to/a/copy/of/marcomussi/DLB"))
    else:
        path = Path(dlb)
        per_inst = []
        for config in ("testcase_synt_sigma0dot01", "testcase_realdata"):
            ts = [_time_authors(path, config, T) for T in HORIZONS]
            b, a = np.polyfit(np.asarray(HORIZONS, float), np.asarray(ts), 1)
            per_inst.append(max(a, 0.0) + b * cfg.horizon)
            rows.append((f"authors, {config}: one trial of all agents at T = " + ", ".join(f"{T:g}" for T in HORIZONS),
                         ", ".join(f"{t:.1f} s" for t in ts) + f" (fit: {a:.2f} s + {b * 1e3:.3f} ms/round)"))
        t_auth = sum(per_inst) * cfg.seeds
        rows.append(("authors, whole figure (extrapolated linearly to T = 1e6 x 10 trials x 2 instances)",
                     f"{t_auth:.0f} s = {t_auth / 3600:.2f} h"))
        rows.append(("speed-up (suite vs authors, same machine, same session)", f"{t_auth / t_suite:.0f}x"))
    append_results("bandit_regret, whole figure vs the authors' code", rows,
                   "Target (DLB issue): >= 200x on the 2-core CPU; >= 2000x on a GPU. The authors' time is "
                   "extrapolated from one trial at three horizons by a least-squares line (their loop is linear in "
                   "rounds and trials).")


if __name__ == "__main__":
    main()
