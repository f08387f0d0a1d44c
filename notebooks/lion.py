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
# # Lion-K solves a constrained problem (Chen et al. 2024)
# Lion with weight decay lambda (optax's `weight_decay`, multiplied by the lr) minimizes f subject
# to ||x||_inf <= 1/lambda. Sweep lambda x eps x seeds in one compiled call and compare the limit
# with SciPy's L-BFGS-B.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from sims.lion import LionConfig, sim
from sims.sweep import sweep
from theory import lion as tl

SMALL = os.environ.get("SUITE_SMALL") == "1"
cfg = LionConfig(problem="rosenbrock", d=2, n_steps=2000 if SMALL else 20000, log_every=20, x0_scale=3.0)
ds = sweep(sim(cfg), {"weight_decay": [1 / 0.6, 1 / 0.3], "lr": [1e-2, 3e-3]}, seeds=8, key=jax.random.key(0))
ds

# %%
f, _ = tl.problem("rosenbrock", 2)
for lam in ds.weight_decay.values:
    ref = tl.solve_composite(f, tl.get_kappa("l1"), lam, 2)
    xbar = ds.x.sel(weight_decay=lam).isel(step=slice(-20, None)).mean(("step", "seed"))
    print(f"lambda={lam:.3g}: L-BFGS-B {ref.round(4)}, Lion (time/seed-averaged) per eps:\n{xbar.values.round(4)}")

# %%
fig, ax = plt.subplots()
for i, lam in enumerate(ds.weight_decay.values):
    tr = ds.x.sel(weight_decay=lam).isel(lr=0, seed=0)
    ax.plot(tr.sel(coord=0), tr.sel(coord=1), color=f"C{i}", label=f"lambda={lam:.3g}")
    r = 1 / lam
    ax.add_patch(plt.Rectangle((-r, -r), 2 * r, 2 * r, fill=False, ec=f"C{i}", ls="--"))
ax.set_aspect("equal")
ax.legend()
print("diverged:", int(ds.diverged.sum()), "- max box excess at the end:",
      float(np.max(np.abs(ds.x.isel(step=-1)) - 1 / ds.weight_decay)))
