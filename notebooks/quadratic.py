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
# # SGD on a quadratic valley
# Run a sweep (lrs x seeds in one compiled call), open the Dataset, compare with the exact
# recursion of `theory/quadratic.py`. Set `SUITE_SMALL=1` for a tiny run (the tests do).

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from sims.quadratic import QuadraticConfig, sim
from sims.sweep import sweep
from theory import quadratic as th

SMALL = os.environ.get("SUITE_SMALL") == "1"
seeds = 200 if SMALL else 4000
cfg = QuadraticConfig(a=(1.0,), sigma=(1.0,), x0=(2.0,), n_steps=300 if SMALL else 3000, log_every=10)

# %%
ds = sweep(sim(cfg), {"lr": [0.05, 0.2, 0.8, 1.5, 2.2]}, seeds=seeds, key=jax.random.key(0))
ds

# %% [markdown]
# Diverged runs are flagged, never plotted silently:

# %%
print("diverged per lr:", ds.diverged.sum("seed").to_series().to_dict())

# %%
fig, ax = plt.subplots()
for lr in ds.lr.values:
    if ds.diverged.sel(lr=lr).any():
        continue
    m = ds.loss.sel(lr=lr).mean("seed")
    ax.plot(ds.step, m, label=f"lr={lr:g}")
    exact = th.expected_loss(np.full(cfg.n_steps, lr), cfg.a, cfg.sigma, cfg.x0)[:: cfg.log_every]
    ax.plot(ds.step, exact, "k--", lw=0.8)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("E f")
ax.legend()

# %%
final = ds.loss.isel(step=-1).where(~ds.diverged).mean("seed")
print(np.c_[ds.lr.values, final.values, th.stationary_loss(ds.lr.values, 1.0, 1.0)])
