# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Design a schedule, score it under the bound, simulate it
# The last-iterate bound of Defazio et al. (theory/schedules.py) scores any schedule; tuning the
# peak lr is closed form. Then run SGD with it on a noisy convex problem.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from sims import schedules as S
from sims.convex_sgd import ConvexConfig, make_data, sim
from sims.sweep import sweep
from theory import schedules as ts

SMALL = os.environ.get("SUITE_SMALL") == "1"
T = 500 if SMALL else 2000
mine = S.wsd(1.0, T, decay_fraction=0.3, decay_shape="1-sqrt", warmup_steps=T // 50)
designs = {"mine: warmup + WSD 30% 1-sqrt": mine, "linear decay": S.linear_decay(1.0, T), "cosine": S.cosine(1.0, T)}
arrs = {k: np.maximum(S.as_array(v, T), 1e-12) for k, v in designs.items()}
for k, a in arrs.items():
    b, c = ts.tuned_bound(a)
    print(f"{k:32s} tuned bound x sqrt(T) = {b * np.sqrt(T):.4f} at peak lr {c:.4f} (D = G = 1)")

# %%
cfg = ConvexConfig(problem="logistic", n_steps=T, log_every=T // 20)
A, b = make_data(cfg.problem, cfg.n, cfg.d, cfg.data_seed, cfg.noise)
fstar, _ = ts.erm_optimum(cfg.problem, A, b)
fig, ax = plt.subplots()
for k, a in arrs.items():
    c = cfg.__class__(**{**cfg.__dict__, "schedule": ("table", tuple(np.round(a, 12).tolist()))})
    ds = sweep(sim(c), {"lr": [1.5, 3.0, 6.0]}, seeds=16 if SMALL else 64, key=jax.random.key(0))
    fin = ds.loss.isel(step=-1).mean("seed") - fstar
    ax.plot(ds.lr, fin, "o-", label=k)
ax.set(xscale="log", yscale="log", xlabel="peak lr", ylabel="final f - f*")
ax.legend()

# %% [markdown]
# ## Inside the bound's class, with the papers' optimizers
# `stream_abs` draws a fresh sample every step (a uniform on the unit sphere: every stochastic gradient has norm
# G = 1; x0 = 0, ||x*|| = D = 1), so the bound's prediction is absolute. `tune_arms` puts each schedule at its own
# tuned peak lr (the experiment of the `wsd_in_class` and `rex_in_class` figures). Change `optimizer`
# (sgd, momentum, nesterov, adam) or `d` (the problem is sharper as d falls) and rerun.

# %%
from sims.convex_sgd import tune_arms  # noqa: E402

arms = {"cosine": {"decay_fraction": 1.0, "shape_id": S.DECAY_SHAPES.index("cosine")},
        "WSD 20% linear": {"decay_fraction": 0.2, "shape_id": S.DECAY_SHAPES.index("linear")}}
Ts = 400 if SMALL else 2000
for opt, centre in (("sgd", 0.02), ("adam", 0.002)):
    c = ConvexConfig(problem="stream_abs", d=100, noise=0.1, n_steps=Ts, log_every=Ts // 10, optimizer=opt)
    r = tune_arms(c, list(arms.values()), centre * 2.0 ** (np.arange(-3, 4) / 2), seeds=16 if SMALL else 64,
                  key=jax.random.key(1))
    fin = r.tuned.best.mean(-1)
    print(f"{opt:5s}: tuned final f - f*: " + ", ".join(f"{k} {v:.2e} (lr {lr:.3g})" for k, v, lr in
                                                         zip(arms, fin, r.tuned.best_lr))
          + f"; WSD / cosine - 1 = {100 * (fin[1] / fin[0] - 1):+.1f}%")
shapes = np.stack([S.as_array(S.family_schedule(S.family(1.0, a["decay_fraction"], S.DECAY_SHAPES[a["shape_id"]]),
                                                Ts), Ts) for a in arms.values()])
b = ts.tuned_bound(shapes)[0]
print(f"the tuned bound: WSD / cosine - 1 = {100 * (b[1] / b[0] - 1):+.1f}%")
