"""Compile time of each sim's sweep chunk (target: <= 5 s on a CPU), and no recompilation for new values.

For each sim at its figure's quick-preset shapes (hparam points x seeds; the scan length is shortened, which does
not change the compiled program's size: the steps are a `lax.scan`), the first call of one chunk minus the median
of later calls with NEW hparam values is the compile (+ trace) time; the jit cache must not grow on those calls.

Then the trade of XLA's older CPU fusion emitters (``--xla_cpu_use_fusion_emitters=false``, what ``make test``
builds with): the same program compiled both ways in this process (XLA compile only, the trace shared), and each
executable's run time at 10x the scan length (median of 3 calls, the two interleaved), outputs compared bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import jax
import numpy as np

from benchmarks._common import append_results
from sims import bandits, bigram_backcopy, convex_sgd, lion, quadratic, river_valley
from sims.engine.build import Batched
from sims.sweep import batched, execute_chunk, plan


def _cases():
    qa = tuple(np.geomspace(0.1, 10.0, 8).tolist())
    yield ("quadratic (quadratic_sgd)", quadratic.sim(quadratic.QuadraticConfig(a=qa, x0=(1.0,), n_steps=200,
                                                                                 log_every=20)),
           {"decay_fraction": [0.0, 1.0, 0.2], "shape_id": [0, 1, 0]}, {"lr": 0.15}, 2000, False, "zip")
    yield ("river valley (wsd_decay)", river_valley.sim(river_valley.RiverConfig(a=(10.0, 5.0), n_steps=200,
                                                                                 log_every=20)),
           {"lr": [0.01, 0.02, 0.05, 0.1, 0.15, 0.18]}, {"decay_fraction": 0.2}, 2000, False, "grid")
    yield ("bigram LM (bigram_lm_river)", river_valley.lm_sim(river_valley.BigramLMConfig(n_steps=200,
                                                                                          log_every=100)),
           {"lr": [10.0, 20.0]}, {}, 16, False, "grid")
    yield ("convex SGD (schedule_bound_vs_sim)", convex_sgd.sim(convex_sgd.ConvexConfig(n_steps=200,
                                                                                         log_every=100)),
           {"lr": list(3.0 * 2.0 ** (np.arange(-6, 7) / 2))}, {"decay_fraction": 1.0, "shape_id": 0}, 64, False, "grid")
    yield ("Lion-K (lion_box)", lion.sim(lion.LionConfig(problem="rosenbrock", d=2, n_steps=240, log_every=12,
                                                          x0=(3.0, -4.0))),
           {"weight_decay": [0.5, 1.0, 2.0]}, {"lr": 1e-2, "b1": 0.9, "b2": 0.99}, 256, False, "grid")
    yield ("DynLin-UCB, linear path (bandit_regret, float64)",
           bandits.sim(bandits.BanditConfig(instance=("synthetic", "real"),
                                            algorithms=("dynlinucblog", "dynlinucb", "linucb", "linucblog"),
                                            horizon=2000, log_every=20)),
           {"inst": [0, 1], "alg": [0, 1, 2, 3]}, {}, 5, True, "grid")
    yield ("Bigram-Backcopy transformer, 1 layer d = 64 (bb_attention)",
           bigram_backcopy.sim(bigram_backcopy.BBConfig(seq_len=32, batch=64, n_steps=20, log_every=10, d_model=64,
                                                        n_layers=1)),
           {"lr": [3e-3]}, {}, 3, False, "grid")
    yield ("Bigram-Backcopy transformer, 3 layers d = 64 (bb_extreme_tokens)",
           bigram_backcopy.sim(bigram_backcopy.BBConfig(seq_len=16, batch=32, n_steps=20, log_every=10, d_model=64,
                                                        n_layers=3)),
           {"lr": [3e-3]}, {}, 3, False, "grid")


def _longer(cfg, k: int):
    """``cfg`` with k times the steps (or rounds): the same compiled program size, a measurable run time."""
    if hasattr(cfg, "horizon"):
        return dataclasses.replace(cfg, horizon=cfg.horizon * k)
    return dataclasses.replace(cfg, n_steps=cfg.n_steps * k)


_SIM_OF = {river_valley.BigramLMConfig: river_valley.lm_sim, river_valley.RiverConfig: river_valley.sim,
           quadratic.QuadraticConfig: quadratic.sim, convex_sgd.ConvexConfig: convex_sgd.sim, lion.LionConfig: lion.sim,
           bandits.BanditConfig: bandits.sim, bigram_backcopy.BBConfig: bigram_backcopy.sim}


def _emitters_row(name, s, axes, fixed, seeds, x64, mode):
    """Compile and run time of the chunk's program with XLA's default and older CPU fusion emitters."""
    s = _SIM_OF[type(s.cfg)](_longer(s.cfg, 10))
    with jax.enable_x64(x64):
        p = plan(s.run, axes, seeds=seeds, key=jax.random.key(0), steps=s.steps, fixed=fixed, cfg=s.cfg, mode=mode)
        keys = jax.random.split(p.key, seeds)
        hps = {k: np.asarray(v) for k, v in p.flat.items()}
        comp, run, digest, exe = {}, {}, {}, {}
        for new in (True, False):  # XLA's default (new) fusion emitters, then the older ones
            # the engine's own chunk program (sims.engine.build.Batched), built with one more compiler option
            chunk = Batched(s.run, compiler_options={"xla_cpu_use_fusion_emitters": new}).program(p.n_points)
            low = chunk.lower(keys, hps)
            t0 = time.perf_counter()
            exe[new] = low.compile()
            comp[new] = time.perf_counter() - t0
            out = jax.block_until_ready(exe[new](keys, hps))
            digest[new] = hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in jax.tree.leaves(out))).hexdigest()
            run[new] = []
        for _ in range(3):
            for new in (True, False):
                t0 = time.perf_counter()
                jax.block_until_ready(exe[new](keys, hps))
                run[new].append(time.perf_counter() - t0)
    r_new, r_old = float(np.median(run[True])), float(np.median(run[False]))
    return (name.split(":")[0],
            f"XLA compile {comp[True]:.2f} -> {comp[False]:.2f} s ({comp[False] / comp[True]:.2f}x); run "
            f"{r_new:.3f} -> {r_old:.3f} s ({r_old / r_new:.2f}x); "
            f"{'same bits' if digest[True] == digest[False] else 'other rounding'}")


def main():
    rows = []
    for name, s, axes, fixed, seeds, x64, mode in _cases():
        with jax.enable_x64(x64):
            p = plan(s.run, axes, seeds=seeds, key=jax.random.key(0), steps=s.steps, fixed=fixed, cfg=s.cfg,
                     mode=mode)
            t0 = time.perf_counter()
            execute_chunk(p, 0, 0)
            first = time.perf_counter() - t0
            size = batched(s.run)._cache_size()
            later = []
            for k in range(3):  # new hparam values each time: no recompilation
                q = plan(s.run, {a: [v * (1 + 0.01 * (k + 1)) if isinstance(v, float) else v for v in vals]
                                 for a, vals in axes.items()},
                         seeds=seeds, key=jax.random.key(k + 1), steps=s.steps, fixed=fixed, cfg=s.cfg, mode=mode)
                t0 = time.perf_counter()
                execute_chunk(q, 0, 0)
                later.append(time.perf_counter() - t0)
            grew = batched(s.run)._cache_size() - size
        run_t = float(np.median(later))
        comp = first - run_t
        rows.append((f"{name}: {p.n_points} points x {seeds} seeds",
                     f"compile {comp:.2f} s (first call {first:.2f} s, later calls {run_t:.2f} s); "
                     f"recompiled for new values: {'NO' if grew == 0 else f'YES ({grew})'}; "
                     f"{'<= 5 s' if comp <= 5 else 'OVER 5 s'}"))
    append_results("Compile time per sim (one sweep chunk)", rows,
                   "Compile = first call - median of 3 later calls with new hparam values (trace + XLA compile). "
                   "The scan length does not change the compiled program (lax.scan), so shorter runs are timed.")
    append_results("XLA CPU fusion emitters: default -> older (--xla_cpu_use_fusion_emitters=false)",
                   [_emitters_row(*case) for case in _cases()],
                   "The same traced program compiled both ways (XLA time only), with this suite's other compiler "
                   "options; run = median of 3 interleaved calls at 10x the scan length above. `make test` builds "
                   "with the older emitters (compile-bound); figures keep the default (run-bound).")


if __name__ == "__main__":
    main()
