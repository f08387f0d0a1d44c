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
# # Dynamical linear bandits (Mussi et al. 2023)
# Build an instance, check its cumulative Markov parameter h, then run DynLin-UCB against LinUCB
# (seeds vmapped, rounds in one lax.scan) and plot the pseudo-regret.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from sims.bandits import BanditConfig, instance, sim
from sims.sweep import sweep
from theory import bandits as tb

jax.config.update("jax_enable_x64", True)
SMALL = os.environ.get("SUITE_SMALL") == "1"
T = 20_000 if SMALL else 300_000
inst = instance("real")
h = tb.markov_parameter(inst)
print("rho(A) =", round(tb.spectral_radius(inst.A), 3), " Phi(A) =", round(tb.phi(inst.A), 3), " h =", h.round(4))
print("arm values h^T u:", (inst.arms @ h).round(4))
print("myopic arm (argmax theta^T u):", inst.arms[np.argmax(inst.arms @ inst.theta)])

# %%
fig, ax = plt.subplots()
for alg in ("dynlinucblog", "linucblog", "clairvoyant"):
    cfg = BanditConfig(instance="real", algorithms=(alg,), horizon=T, log_every=T // 100)
    ds = sweep(sim(cfg), None, seeds=4, key=jax.random.key(0))
    R = ds.pseudo_regret
    ax.plot(ds.step, R.mean("seed"), label=alg)
    print(alg, "final h_hat (seed mean):", ds.h_hat.mean("seed").values.round(3))
ax.set(xlabel="round", ylabel="pseudo-regret")
ax.legend()

# %% [markdown]
# Your own system: pass the arrays (validated: finite values, shapes, rho(A) < 1) as a `theory.bandits.Instance`;
# the config is keyed on its content, so a cached sweep is never reused for an edited system. From the command
# line the same system can be a file: `--set instances=file:my_system.npz` (keys A, B, omega, theta, arms,
# sigma_x, sigma_y).

# %%
mine = tb.Instance(A=np.array([[0.5, 0.2], [0.0, 0.3]]), B=np.eye(2), omega=np.array([1.0, -0.5]),
                   theta=np.array([0.2, 0.4]), sigma_x=0.01, sigma_y=0.01,
                   arms=np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]))
cfg = BanditConfig(instance=mine, algorithms=("dynlinucblog",), horizon=T // 10, log_every=T // 100)
ds = sweep(sim(cfg), None, seeds=4, key=jax.random.key(1))
h_mine = tb.markov_parameter(mine)
print("h =", h_mine.round(3), "; best arm", mine.arms[np.argmax(mine.arms @ h_mine)],
      "; final pseudo-regret (seed mean):", float(ds.pseudo_regret.isel(step=-1).mean()))
