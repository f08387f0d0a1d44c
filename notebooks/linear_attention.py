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
# # Gated linear attention and LightNet (Yang et al. 2024; Qin et al. 2024)
# `sims.linear_attention.gla` computes S_t = Diag(alpha_t) S_{t-1} + k_t^T v_t, o_t = q_t S_t in five ways. Compare
# them with the recurrence, see the float32 overflow of the naive parallel form predicted from the gates alone
# (`theory.linear_attention.predict_finite`), then LightNet's additive decay, whose state is the same for every
# scan order over a 2-D grid.

# %%
import dataclasses
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from sims import lightnet as ln
from sims import linear_attention as la
from theory import linear_attention as th

SMALL = os.environ.get("SUITE_SMALL") == "1"
L = 128 if SMALL else 2048
ks = jax.random.split(jax.random.key(0), 4)
q, k, v = (jax.random.uniform(kk, (L, 32)) for kk in ks[:3])
for nrm in (16.0, 1.0, 0.1):
    g = la.fla_gates(ks[3], (L, 32), nrm)
    ref, _ = la.gla(q, k, v, g, form="recurrent")
    for form, kw in [("parallel", {}), ("naive_parallel", {}), ("chunk", {"chunk_size": 64}),
                     ("chunk", {"chunk_size": 64, "sub_chunk_size": 16})]:
        o, _ = la.gla(q, k, v, g, form=form, **kw)
        err = float(jnp.sqrt(jnp.mean((o - ref) ** 2) / jnp.mean(ref**2)))
        print(f"normalizer {nrm:5g} {form:15s} {str(kw):40s} rel-RMS {err:.2e}  predicted finite: "
              f"{th.predict_finite(g, form, kw.get('chunk_size'), kw.get('sub_chunk_size'))}")

# %% [markdown]
# FLOPs per head (analytic): the chunk form beats the parallel form above L = 2C + 4 d_k d_v / (d_k + d_v).

# %%
Ls = np.array([128, 256, 512, 1024, 2048, 4096])
fig, ax = plt.subplots()
for form in ("recurrent", "chunk", "parallel"):
    ax.loglog(Ls, [th.flops(form, int(n), 64, 64, 64) for n in Ls], "o-", label=form)
ax.axvline(th.chunk_parallel_crossover(64, 64, 64), color="k", ls="--", lw=1)
ax.set(xlabel="L", ylabel="forward FLOPs (one head, d = 64, C = 64)")
ax.legend()

# %% [markdown]
# LightNet: one scan in any order gives the same additive state; a multiplicative decay does not.

# %%
h = w = 6 if SMALL else 16
kk, vv = jax.random.normal(ks[0], (h * w, 16)), jax.random.normal(ks[1], (h * w, 16))
_, S_global = ln.lightnet_global(jnp.zeros_like(kk), kk, vv)
for name, order in ln.scan_orders(h, w, ks[2]).items():
    Sa = ln.scan_state(kk, vv, order, decay="additive")
    Sm = ln.scan_state(kk, vv, order, decay="multiplicative", lam=0.9)
    print(f"{name:13s} additive vs global {float(jnp.abs(Sa - S_global).max()):.1e}   multiplicative norm "
          f"{float(jnp.linalg.norm(Sm)):.3f}")
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, kind in zip(axes, ("additive", "multiplicative", "four-direction")):
    ax.imshow(ln.weight_map(h, w, (h // 2, w // 2), kind=kind, k=kk), cmap="magma")
    ax.set_title(kind)

# %% [markdown]
# ## Multi-query associative recall (MQAR) with each token mixer of the shared transformer
# `sims.mqar`: key-value pairs, then queries of earlier keys; loss and accuracy at the query positions only. The
# recurrent mixers (gla, retnet, linear, lightnet) hold at most d_model pairs per layer in their state; softmax keeps
# every pair. `recall_grid` is the experiment of the `mqar_recall` figure (mixers x widths x pairs x lrs x seeds);
# `best_lr` reads it as Zoology does. Softmax needs ~2400 steps to recall 4 pairs at d = 64 (a plateau, then a jump).

# %%
from sims.mqar import MQARConfig, best_lr, make_batch, recall_grid  # noqa: E402

task = MQARConfig(n_keys=16, n_values=16, n_pairs=1, n_queries=1, seq_len=24, n_steps=40 if SMALL else 3000,
                  log_every=20 if SMALL else 300, batch=16 if SMALL else 64)
tok, tgt, qmask = make_batch(jax.random.key(0), dataclasses.replace(task, n_pairs=4, n_queries=4), 1)
print("tokens ", np.asarray(tok[0]), "\ntargets", np.where(np.asarray(qmask[0]), np.asarray(tgt[0]), -1))
grid = recall_grid(task, ["softmax", "gla"] if SMALL else ["softmax", "gla", "retnet", "linear", "lightnet"],
                   [16] if SMALL else [32, 64], [4] if SMALL else [4, 8], [3e-3], seeds=2, key=jax.random.key(0))
acc, lr = best_lr(grid)
print(acc.mean("seed").to_dataframe(name="accuracy").unstack("pairs").round(3))
