"""Lion-K sweep (seeds x lambda x epsilon, one compiled call) vs a NumPy vectorized implementation."""

from __future__ import annotations

import time

import jax
import numpy as np

from benchmarks._common import append_results, timeit
from sims.lion import LionConfig, make_run
from sims.sweep import sweep
from theory import lion as tl


def numpy_lion(x0, A, b, lrs, lams, steps, b1=0.9, b2=0.99, noise=0.1, rng=None):
    """Vectorized over (runs, d): the same Lion on a quadratic with noisy gradients."""
    rng = rng or np.random.default_rng(0)
    x = x0.copy()
    mu = np.zeros_like(x)
    for _ in range(steps):
        g = (x - b) @ A.T + noise * rng.standard_normal(x.shape, dtype=np.float32)
        c = (1 - b1) * g + b1 * mu
        x = x - lrs[:, None] * (np.sign(c) + lams[:, None] * x)
        mu = b2 * mu + (1 - b2) * g
    return x


def main():
    d, steps, seeds = 16, 5000, 64
    lams, lrs = [0.5, 1.0, 2.0, 4.0], [1e-3, 3e-3, 1e-2]
    cfg = LionConfig(problem="quadratic", d=d, n_steps=steps, log_every=100, x0_scale=3.0, grad_noise=0.1)
    key = jax.random.key(0)

    def engine():
        sweep(make_run(cfg), {"weight_decay": lams, "lr": lrs}, seeds=seeds, key=key, steps=cfg.steps(),
              progress=False, dims={"x": ("c",), "m": ("c",)})

    comp, t_e = timeit(engine)
    _, data = tl.problem("quadratic", d)
    L, E = np.meshgrid(lams, lrs, indexing="ij")
    runs = L.size * seeds
    x0 = np.random.default_rng(0).standard_normal((runs, d)).astype(np.float32) * 3
    t0 = time.perf_counter()
    numpy_lion(x0, data["A"].astype(np.float32), data["b"].astype(np.float32), np.repeat(E.ravel(), seeds).astype(
        np.float32), np.repeat(L.ravel(), seeds).astype(np.float32), steps)
    t_np = time.perf_counter() - t0
    n = runs * steps
    rows = [("size", f"{len(lams)} lambdas x {len(lrs)} eps x {seeds} seeds x {steps} steps, d = {d}"),
            ("JAX engine (compile + first run)", f"{comp:.2f} s"),
            ("JAX engine, median of 3", f"{t_e:.3f} s = {n / t_e:.3g} steps/s"),
            ("NumPy vectorized over runs", f"{t_np:.3f} s = {n / t_np:.3g} steps/s"),
            ("speed-up vs NumPy vectorized", f"{t_np / t_e:.2f}x")]
    append_results("Lion-K sweep", rows)


if __name__ == "__main__":
    main()
