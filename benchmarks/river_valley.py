"""River-valley sweep (schedules x lrs x seeds, one compiled call) vs NumPy vectorized vs bare RNG."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import append_results, timeit
from sims import schedules as S
from sims.river_valley import RiverConfig, make_run
from sims.sweep import noise_chunk_for, sweep

SHAPES = {"constant": (0.0, 0), "cosine": (1.0, 1), "WSD": (0.2, 0), "WSD 1-sqrt": (0.2, 2)}


def numpy_vectorized(lr_table, seeds, a=(10.0, 5.0), sigma=1.0, log_every=100, rng=None):
    """Vectorized over (schedule x lr x seed) runs, Python loop over steps (a careful NumPy user: no river noise
    is drawn, as sigma_river = 0)."""
    rng = rng or np.random.default_rng(0)
    R, T = lr_table.shape
    a = np.asarray(a, np.float32)
    u = np.zeros((R, seeds), np.float32)
    v = np.zeros((R, seeds, a.size), np.float32)
    rec = []
    for t in range(T):
        e = lr_table[:, t][:, None]
        gu = -np.exp(-u)
        u = u - e * gu
        v = v - e[..., None] * (a * v + sigma * rng.standard_normal(v.shape, dtype=np.float32))
        if (t + 1) % log_every == 0:
            rec.append(np.exp(-u) + 0.5 * (a * v * v).sum(-1))
    return np.array(rec)


def main():
    steps, seeds, lrs = 2000, 250, [0.03, 0.1, 0.15]
    cfg = RiverConfig(a=(10.0, 5.0), n_steps=steps, log_every=100)
    fr = [v[0] for v in SHAPES.values()] * len(lrs)
    sh = [v[1] for v in SHAPES.values()] * len(lrs)
    lr_axis = [lr for lr in lrs for _ in SHAPES]
    key = jax.random.key(0)
    run = make_run(cfg)

    def engine():
        sweep(run, {"lr": lr_axis, "decay_fraction": fr, "shape_id": sh}, mode="zip", seeds=seeds, key=key,
              steps=cfg.steps(), progress=False)

    n_runs = len(fr) * seeds
    blk = noise_chunk_for(cfg.log_every, 2)  # sigma_river = 0: the sim draws the 2 hill normals per step

    @jax.jit
    def rng_only(k):
        keys = jax.random.split(k, n_runs)

        def body(acc, b):
            z = jax.vmap(lambda kk: jax.random.normal(jax.random.fold_in(kk, b), (blk, 2)))(keys)
            return acc + z.sum(), None

        return jax.lax.scan(body, jnp.zeros(()), jnp.arange(steps // blk))[0]

    table = np.stack([S.as_array(S.family_schedule(S.family(l, f, S.DECAY_SHAPES[s]), steps), steps)
                      for l, f, s in zip(lr_axis, fr, sh)]).astype(np.float32)
    comp, t_e = timeit(engine)
    _, t_r = timeit(lambda: rng_only(key).block_until_ready())
    t0 = time.perf_counter()
    numpy_vectorized(table, seeds)
    t_np = time.perf_counter() - t0
    n = n_runs * steps
    rows = [("size", f"{len(SHAPES)} schedules x {len(lrs)} lrs x {seeds} seeds x {steps} steps (d = 3)"),
            ("JAX engine (compile + first run)", f"{comp:.2f} s"),
            ("JAX engine, median of 3", f"{t_e:.3f} s = {n / t_e:.3g} steps/s"),
            ("bare RNG (same normals, same chunking)", f"{t_r:.3f} s"),
            ("NumPy vectorized over runs", f"{t_np:.3f} s = {n / t_np:.3g} steps/s"),
            ("speed-up vs NumPy vectorized", f"{t_np / t_e:.2f}x"),
            ("engine / bare RNG", f"{t_e / t_r:.2f}")]
    append_results("River-valley schedule sweep", rows)


if __name__ == "__main__":
    main()
