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
# # Bigram-Backcopy: attention sinks and active-dormant heads (Guo et al. 2024)
# Sequences `[BOS, x1, ...]`: after one of the k most frequent tokens (a trigger) the next token copies the
# token before the trigger; otherwise it is a bigram draw. A 1-layer, 1-head transformer learns the copy
# with its attention head (active at triggers) and parks the head on BOS elsewhere (dormant: an attention
# sink with a small BOS value). Train a few seeds in one vmapped call and look at the attention.

# %%
import dataclasses
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from sims.bigram_backcopy import BBConfig, sim, source_of
from sims.sweep import sweep
from theory import bigram as tb

SMALL = os.environ.get("SUITE_SMALL") == "1"
cfg = BBConfig(data="zipf" if SMALL else "authors", V=16 if SMALL else 65,
               seq_len=16 if SMALL else 32, batch=32 if SMALL else 64,
               d_model=32 if SMALL else 64,
               n_steps=400 if SMALL else 2000, log_every=50 if SMALL else 100)
ds = sweep(sim(cfg), {"lr": [3e-3]}, seeds=2 if SMALL else 4, key=jax.random.key(0)).isel(lr=0, layer=0)
P, mask, _ = source_of(cfg)
oracle, frac = tb.backcopy_oracle(P, np.nonzero(mask)[0], cfg.seq_len + 1)
print(f"triggers {np.nonzero(mask)[0]}, trigger fraction {frac:.3f}, Bayes bigram loss {oracle:.3f} nats")
ds[["loss_trigger", "loss_bigram", "bos_attn_nontrigger", "prev_attn_trigger"]].isel(step=-1)

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
axes[0].imshow(ds.attn_map.isel(seed=0), vmin=0, vmax=1)
for q in np.nonzero(ds.attn_map_trigger.isel(seed=0).values)[0]:
    axes[0].plot(-1, q, ">", color="C1")
axes[0].set(title="attention (> marks trigger queries)", xlabel="key", ylabel="query")
for v in ("bos_attn_nontrigger", "bos_attn_trigger", "prev_attn_trigger"):
    axes[1].plot(ds.step, ds[v].mean("seed"), label=v)
axes[1].legend(fontsize=7)
axes[1].set(xlabel="step", title="attention weights over training")
axes[2].plot(ds.step, (ds.bos_value_norm / ds.other_value_norm).mean("seed"))
axes[2].set(xlabel="step", title="value drain: BOS / other value norm", yscale="log")

# %% [markdown]
# Interventions (same evaluation batch): removing the attention hurts only the copy; forcing the head onto
# BOS at non-trigger queries changes nothing; removing the MLP hurts the bigram.

# %%
for k in ("full", "no_attn", "bos_forced", "no_mlp"):
    print(f"{k:11s} trigger {float(ds[k + '_trigger'].mean()):.3f}  bigram {float(ds[k + '_bigram'].mean()):.3f}"
          f"  (Bayes {float(ds.oracle_bigram.mean()):.3f})")

# %% [markdown]
# ## Which component writes the residual peak? (the authors' per-layer ablations, `bb_ablations`)
# `no_attn`, `no_mlp` and `linear_mlp` name the layers without attention, without an MLP, or with a single linear
# map as MLP (the authors' `no_attn`, `no_ffn`, `linear_ffn`). Try your own variant: edit the tuples.

# %%
from sims.bigram_backcopy import train  # noqa: E402

variants = {"full model": ((), (), ()), "no MLP in layer 0": ((), (0, 2), ()),
            "linear MLP in layer 0": ((0, 2), (), (0,))}
base = BBConfig(n_layers=3, seq_len=16, batch=32, d_model=32 if SMALL else 64, n_steps=100 if SMALL else 2000,
                log_every=100)
for name, (na, nm, lm) in variants.items():
    d = train(dataclasses.replace(base, no_attn=na, no_mlp=nm, linear_mlp=lm), 3e-3, 2).isel(step=-1)
    peak = (d.bos_resid_norm / d.other_resid_norm).isel(layer=0).values
    print(f"{name:22s} peak (BOS / other residual after block 0) {np.round(peak, 2)}, "
          f"sink {np.round(d.bos_attn_nontrigger.max('layer').values, 2)}")
