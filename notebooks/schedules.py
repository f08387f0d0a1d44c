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
