"""The whole `wsd_s_budgets` figure at its full preset (WSD-S / WSD / cyclic cosine over budgets 12.5k, 25k,
50k, 10,000 seeds each) end to end, against the NumPy a careful user would write for the same runs.

JAX: `run_figure("wsd_s_budgets", "full")` timed twice in one process (no sweep cache): the first call includes
tracing and compiling every run's program, the second reuses them, so first - second is the compile time.
NumPy: each protocol run vectorized over seeds with a Python loop over steps (`river_numpy`), timed on
``np_seeds`` seeds and scaled linearly to the preset's seeds (the per-step work is proportional to the seeds at
these sizes; the Python loop overhead is then < 10%, so the scaled time is a lower bound for NumPy).

    python -m benchmarks.wsd_s_figure [--np-seeds 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import append_results
from figures import _core
from sims import schedule_specs
from sims import schedules as S


def river_numpy(lrs, seeds, a=(10.0, 5.0), sigma=1.0, rng=None):
    """SGD on the straight river valley f = exp(-u) + sum_i a_i v_i^2 / 2, hill noise sigma, float32, vectorized
    over seeds (the same update as sims.river_valley with sigma_river = 0)."""
    rng = rng or np.random.default_rng(0)
    a = np.asarray(a, np.float32)
    u = np.zeros(seeds, np.float32)
    v = np.zeros((seeds, a.size), np.float32)
    for e in lrs.astype(np.float32):
        u = u + e * np.exp(-u)
        v = v - e * (a * v + sigma * rng.standard_normal(v.shape, dtype=np.float32))
    return np.exp(-u) + 0.5 * (a * v * v).sum(-1)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--np-seeds", type=int, default=1000)
    a = ap.parse_args(argv)
    cfg = _core.load("wsd_s_budgets").presets["full"]
    times = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            _core.run_figure("wsd_s_budgets", "full", out=Path(out), cache=False)
            times.append(time.perf_counter() - t0)
    from figures import wsd_s_budgets as mod

    protos = mod._protocols(cfg)
    t_np, steps = 0.0, 0
    for p in protos.values():
        for spec, n in zip(p.runs, p.n_steps):
            lrs = cfg.lr * S.as_array(schedule_specs.from_spec(spec), n)
            t0 = time.perf_counter()
            river_numpy(lrs, a.np_seeds, cfg.sim.a, cfg.sim.sigma_hill[0])
            t_np += time.perf_counter() - t0
            steps += n
    scale = cfg.seeds / a.np_seeds
    t_np_full = t_np * scale
    rows = [("size", f"3 protocols over budgets {cfg.budgets}, {steps} steps in all per seed, {cfg.seeds} seeds "
                     f"({steps * cfg.seeds:.3g} SGD steps)"),
            ("JAX figure end to end, first call (compile included)", f"{times[0]:.1f} s"),
            ("JAX figure end to end, second call (compiled)", f"{times[1]:.1f} s"),
            ("compile + trace (first - second)", f"{times[0] - times[1]:.1f} s"),
            (f"NumPy, the same runs at {a.np_seeds} seeds", f"{t_np:.1f} s"),
            (f"NumPy scaled to {cfg.seeds} seeds", f"{t_np_full:.0f} s"),
            ("ratio NumPy / JAX (first call, compile included)", f"{t_np_full / times[0]:.2f}x"),
            ("ratio NumPy / JAX (compiled)", f"{t_np_full / times[1]:.2f}x")]
    append_results("Whole figure: wsd_s_budgets --full vs NumPy", rows,
                   "JAX includes everything the figure does (claims, plot, NetCDF); NumPy only the SGD runs.")


if __name__ == "__main__":
    main()
