"""Quadratic SGD sweep through the engine vs NumPy (vectorized over seeds; per-seed loop) vs bare RNG."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import append_results, timeit
from sims.quadratic import QuadraticConfig, make_run
from sims.sweep import sweep


def numpy_vectorized(seeds, steps, d, lr=0.1, a=1.0, sigma=1.0, log_every=100, rng=None):
    """What a careful NumPy user writes: vectorized over seeds, Python loop over steps."""
    rng = rng or np.random.default_rng(0)
    x = np.zeros((seeds, d), np.float32)
    rec = []
    for t in range(steps):
        x -= lr * (a * x + sigma * rng.standard_normal((seeds, d), dtype=np.float32))
        if (t + 1) % log_every == 0:
            rec.append(0.5 * a * (x * x).sum(1))
    return np.array(rec)


def numpy_per_seed(seeds, steps, d, lr=0.1, a=1.0, sigma=1.0):
    rng = np.random.default_rng(0)
    out = np.empty(seeds)
    for s in range(seeds):
        x = np.zeros(d, np.float32)
        for _ in range(steps):
            x -= lr * (a * x + sigma * rng.standard_normal(d, dtype=np.float32))
        out[s] = 0.5 * a * (x * x).sum()
    return out


def bench(seeds=1000, steps=10_000, d=1, per_seed_sample=10):
    cfg = QuadraticConfig(a=(1.0,) * d, sigma=(1.0,), n_steps=steps, log_every=100)
    key = jax.random.key(0)
    run = make_run(cfg)

    def engine():
        sweep(run, {"lr": [0.1]}, seeds=seeds, key=key, steps=cfg.steps(), progress=False)

    blk = cfg.noise_chunk()  # same chunking as the sim draws its noise

    @jax.jit
    def rng_fn(k):  # the same normals, drawn per chunk of steps exactly as the sim does
        def body(acc, b):
            z = jax.vmap(lambda kk: jax.random.normal(jax.random.fold_in(kk, b), (blk, d)))(keys)
            return acc + z.sum(), None

        keys = jax.random.split(k, seeds)
        return jax.lax.scan(body, jnp.zeros(()), jnp.arange(steps // blk))[0]

    comp_e, t_e = timeit(engine)
    comp_r, t_r = timeit(lambda: rng_fn(key).block_until_ready())
    _, t_np = timeit(lambda: numpy_vectorized(seeds, steps, d), repeats=3)
    _, t_ps = timeit(lambda: numpy_per_seed(per_seed_sample, steps, d), repeats=1)
    t_ps = t_ps * seeds / per_seed_sample
    n = seeds * steps
    rows = [
        ("size", f"{seeds} seeds x {steps} steps, d = {d}"),
        ("JAX engine (compile + first run)", f"{comp_e:.3f} s"),
        ("JAX engine, median of 3", f"{t_e:.3f} s = {n / t_e:.3g} steps/s"),
        ("bare jax.random.normal of the same numbers", f"{t_r:.3f} s (compile {comp_r - t_r:.2f} s)"),
        ("NumPy vectorized over seeds", f"{t_np:.3f} s = {n / t_np:.3g} steps/s"),
        (f"NumPy per-seed loop (timed on {per_seed_sample} seeds, scaled)", f"{t_ps:.1f} s"),
        ("speed-up vs NumPy vectorized", f"{t_np / t_e:.2f}x"),
        ("speed-up vs NumPy per-seed", f"{t_ps / t_e:.0f}x"),
        ("engine time / bare RNG time", f"{t_e / t_r:.2f}"),
    ]
    return rows


def main():
    out = []
    for d in (1, 64):
        rows = bench(d=d)
        out.append(append_results(f"Quadratic SGD sweep, d = {d}", rows,
                                  "Targets (2-core CPU): >= 1x NumPy vectorized and <= 2x bare RNG at d = 1; "
                                  ">= 1.5x NumPy vectorized at d = 64."))
    return out


if __name__ == "__main__":
    main()
