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
# # Bigram subnetworks by continuous sparsification (Chang & Bergen 2025)
# Train a small Bigram-Backcopy transformer (its full behaviour is NOT bigram: it copies after triggers), then
# learn a mask over its block weights whose output matches the TRUE bigram distribution. One compiled call
# sweeps the sparsity weight lambda.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from sims import subnetworks as sn
from sims.bigram_backcopy import BBConfig, make_train, sample_batch

SMALL = os.environ.get("SUITE_SMALL") == "1"
base = BBConfig(data="zipf" if SMALL else "authors", V=16 if SMALL else 65,
                seq_len=8 if SMALL else 16, batch=32, d_model=16 if SMALL else 32,
                n_layers=2 if SMALL else 3, n_steps=200 if SMALL else 2000, log_every=100)
params, fin, _ = jax.jit(make_train(base))(jax.random.key(0), {"lr": jnp.float32(3e-3)})
print(f"base model: trigger loss {float(fin['full_trigger']):.3f}, bigram loss {float(fin['full_bigram']):.3f} "
      f"(Bayes {float(fin['oracle_bigram']):.3f})")

# %%
cfg = sn.SubnetConfig(base=base, n_steps=300 if SMALL else 2000, temp_growth=1.01 if SMALL else 1.003)
ds = sn.sweep_lambda(cfg, params, [0.3, 1.0, 3.0, 10.0], seeds=1, key=jax.random.key(1)).isel(seed=0)
ds[["kept_total", "pearson_r", "ce_bigram", "stop_step"]].to_dataframe()

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot(ds.lam, ds.kept_total, "o-", label="kept fraction")
axes[0].plot(ds.lam, ds.pearson_r, "s-", label="Pearson r (surprisal vs bigram)")
axes[0].set(xscale="log", xlabel="lambda")
axes[0].legend()
lam = float(ds.lam[np.nonzero(ds.pearson_r.values > 0.95)[0][-1]]) if (ds.pearson_r > 0.95).any() else 0.3
axes[1].bar(range(ds.sizes["block"]), ds.kept_block.sel(lam=lam))
axes[1].set_xticks(range(ds.sizes["block"]), [str(b) for b in ds.block.values], rotation=60, fontsize=7)
axes[1].set(title=f"kept fraction per block, lambda={lam:g}")

# %% [markdown]
# Necessity: remove the subnetwork from the full model, against random subnetworks with the same per-block counts.

# %%
batch = sample_batch(base, jax.random.key(2), 128)
mask = jnp.asarray(ds.mask.sel(lam=lam).values)
removed = sn.ablation_losses(cfg, params, mask, batch)
null = jax.vmap(lambda k: sn.ablation_losses(cfg, params, sn.random_same_counts(k, cfg, params, mask), batch))(
    jax.random.split(jax.random.key(3), 32))
print(f"non-trigger loss: bigram subnetwork removed {float(removed[1]):.3f}; random null "
      f"{float(null[1].mean()):.3f} +- {float(null[1].std()):.3f}")

# %% [markdown]
# The whole experiment the figures `subnet_sparsity` and `subnet_mechanism` run is one public function,
# `sims.subnet_experiment.run(cfg)`, with the figure's own config: here its tiny preset (SMALL) or its quick preset,
# with any field changed as on the command line (`overrides(cfg, "lams=1.0,3.0")`).

# %%
from figures import subnet_sparsity  # noqa: E402
from figures._core import overrides  # noqa: E402
from sims import subnet_experiment  # noqa: E402

fig_cfg = subnet_sparsity.FIGURE.presets["tiny" if SMALL else "quick"]
fig_cfg = overrides(fig_cfg, "lams=0.3,1.0" if SMALL else "lams=0.3,1.0,3.0")
exp = subnet_experiment.run(fig_cfg)
lam_star = exp.attrs["lam_star"]
print(f"lambda* = {lam_star:g}; kept {float(exp.kept_total.isel(seed=0).sel(lam=lam_star)):.3f}; removing it: "
      f"{exp.removed_loss.values.round(3)} vs full {exp.full_loss.values.round(3)} (trigger, non-trigger)")
