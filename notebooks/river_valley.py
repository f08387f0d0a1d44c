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
# # River valleys and WSD (Wen et al. 2024)
# Pick a landscape and schedules, run the sweep (schedules x seeds in one compiled call), and
# compare with theory: river loss at the GD-predicted progress + the exact hill excess.

# %%
import os

import jax
import matplotlib.pyplot as plt

from sims import schedules as S
from sims.river_valley import RiverConfig, sim
from sims.sweep import sweep
from theory import river_valley as tr

SMALL = os.environ.get("SUITE_SMALL") == "1"
cfg = RiverConfig(a=(10.0, 5.0), sigma_hill=(1.0,), n_steps=400 if SMALL else 4000, log_every=20)
schedules = {"constant": (0.0, "linear"), "cosine": (1.0, "cosine"), "WSD 10%": (0.1, "linear"),
             "WSD 10% 1-sqrt": (0.1, "1-sqrt")}

# %%
ds = sweep(sim(cfg), {"decay_fraction": [v[0] for v in schedules.values()],
                     "shape_id": [S.DECAY_SHAPES.index(v[1]) for v in schedules.values()]},
           mode="zip", fixed={"lr": 0.1}, seeds=200 if SMALL else 2000, key=jax.random.key(0))
print("diverged runs:", int(ds.diverged.sum()))

# %%
fig, ax = plt.subplots()
for i, (name, (f, shape)) in enumerate(schedules.items()):
    lrs = S.as_array(S.family_schedule(S.family(0.1, f, shape), cfg.n_steps), cfg.n_steps)
    ax.plot(ds.step, ds.loss.isel(point=i).mean("seed"), label=name)
    ax.plot(ds.step, tr.predicted_loss(lrs, cfg.a, 1.0)[:: cfg.log_every], "k--", lw=0.6)
ax.set_yscale("log")
ax.legend()

# %% [markdown]
# Final losses (simulated vs theory): WSD keeps the lr high for longer (more river progress in
# tau = sum of lrs) and still removes the hill excess in its short decay.

# %%
for i, (name, (f, shape)) in enumerate(schedules.items()):
    lrs = S.as_array(S.family_schedule(S.family(0.1, f, shape), cfg.n_steps), cfg.n_steps)
    sim = float(ds.loss.isel(point=i, step=-1).mean())
    print(f"{name:16s} sim {sim:.5f}  theory {tr.predicted_loss(lrs, cfg.a, 1.0)[-1]:.5f}  tau {lrs.sum():.1f}")
