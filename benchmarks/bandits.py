"""DynLin-UCB: the vmapped JAX run vs a NumPy per-round loop of the same algorithm (the authors' structure)."""

from __future__ import annotations

import math
import time

import jax
import numpy as np

from benchmarks._common import append_results, timeit
from sims.bandits import BanditConfig, instance, make_run
from sims.sweep import sweep
from theory import bandits as tb


def numpy_dynlinucb(inst: tb.Instance, T: int, lam: float, first_arm: int, noise_x=None, noise_y=None):
    """One trial, a Python loop over rounds (as marcomussi/DLB's LinearAgent + DynLinEnvironment).
    Returns the arm index played each round."""
    A, B, om, th, arms = inst.A, inst.B, inst.omega, inst.theta, inst.arms
    K, d = arms.shape
    rho = tb.spectral_radius(A)
    c1, c2, sig2, U = tb.dynlin_constants(inst, rho, tb.phi(A))  # the authors' sigma^2 (main.py)
    ends = set(tb.epoch_ends(rho, T).tolist())
    x = np.zeros(A.shape[0])
    V = lam * np.eye(d)
    b = np.zeros(d)
    h = np.zeros(d)
    arm = first_arm
    played = np.empty(T, dtype=np.int64)
    for t in range(T):
        if t > 0 and (t - 1) in ends:
            beta = c1 * math.sqrt(lam) + c2 / math.sqrt(lam) * math.log(math.e * (t + 1)) + math.sqrt(
                2 * sig2 * (math.log(T) + d / 2 * math.log(1 + t * U**2 / (d * lam))))
            Vi = np.linalg.inv(V)
            arm = int(np.argmax(arms @ h + beta * np.sqrt(np.einsum("kd,de,ke->k", arms, Vi, arms))))
        u = arms[arm]
        y = om @ x + th @ u + (0.0 if noise_y is None else noise_y[t])
        x = A @ x + B @ u + (0.0 if noise_x is None else noise_x[t])
        if t in ends:
            V += np.outer(u, u)
            b += u * y
            h = np.linalg.solve(V, b)
        played[t] = arm
    return played


def main(seeds=10, T=100_000):
    inst = instance("real")
    cfg = BanditConfig(instance="real", algorithms=("dynlinucb",), horizon=T, log_every=T // 100)
    key = jax.random.key(0)
    with jax.enable_x64(True):
        run = make_run(cfg)

        def engine():
            sweep(run, None, seeds=seeds, key=key, steps=cfg.steps(), progress=False)

        comp, t_jax = timeit(engine)
    rng = np.random.default_rng(0)
    n_trials = 1  # the loop is timed on one trial of T rounds and scaled to `seeds` trials
    t0 = time.perf_counter()
    for _ in range(n_trials):
        numpy_dynlinucb(inst, T, 1.0, 0, rng.normal(0, inst.sigma_x, (T, 3)), rng.normal(0, inst.sigma_y, T))
    t_np = (time.perf_counter() - t0) * seeds / n_trials
    rows = [("size", f"DynLin-UCB, real-data instance, {seeds} seeds x {T} rounds"),
            ("JAX (compile + first run)", f"{comp:.2f} s"),
            ("JAX, median of 3", f"{t_jax:.3f} s = {seeds * T / t_jax:.3g} rounds/s"),
            ("NumPy per-round loop (1 trial timed, scaled)", f"{t_np:.1f} s = {seeds * T / t_np:.3g} rounds/s"),
            ("speed-up", f"{t_np / t_jax:.0f}x")]
    append_results("Dynamical linear bandits", rows, "Target: >= 100x at 10 seeds x 1e5 rounds on the 2-core CPU.")


if __name__ == "__main__":
    main()
