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
# # A character LM on Shakespeare's plays (Wen et al. 2024 on text)
# The text is the 37 plays (the same characters as the Bigram-Backcopy chain), split by play: six held-out plays,
# two per genre. Train the shared transformer with AdamW under a schedule, seeds vmapped in one compiled call, and
# look at the held-out loss split by how uncertain the text itself is at each position.

# %%
import os

import jax
import matplotlib.pyplot as plt

from sims import schedules as S
from sims import text_data as td
from sims.char_lm import CharLMConfig, branch, sim
from sims.sweep import sweep

SMALL = os.environ.get("SUITE_SMALL") == "1"
corpus = td.shakespeare_plays()
held = corpus.select("held_out")
print("held-out plays:", held.plays)
print(held.decode(held.tokens[2000:2200]))
print("bigram cross-entropy on the held-out plays:",
      round(td.bigram_cross_entropy(corpus.select("train"), held), 4), "nats/char")

# %% [markdown]
# Constant lr vs WSD (20% linear decay) at one peak lr. The same key for both: the stable phase is the same run, so
# `branch` trains it once and continues both arms from it (the plain `sweep(sim(cfg), axes, mode="zip", ...)` gives
# the same Dataset to float rounding; `sims.tree.tree` is the general form, for arms that split at several steps).

# %%
cfg = CharLMConfig(d_model=32 if SMALL else 64, n_layers=1 if SMALL else 2, seq_len=32 if SMALL else 64, batch=16,
                   n_steps=200 if SMALL else 1000, log_every=20 if SMALL else 50, eval_windows=16 if SMALL else 64)
ds = branch(cfg, {"decay_fraction": [0.0, 0.2], "shape_id": [S.DECAY_SHAPES.index("linear")] * 2},
            at=int(0.8 * cfg.n_steps), fixed={"lr": 4e-3, "warmup_steps": 20.0}, seeds=2, key=jax.random.key(0))
print("diverged runs:", int(ds.diverged.sum()))

# %%
fig, axs = plt.subplots(1, 2, figsize=(10, 3.5))
for i, name in enumerate(["constant", "WSD 20%"]):
    r = ds.isel(point=i).mean("seed")
    axs[0].plot(ds.step[1:], r.loss[1:], label=name)
    for var, ls in (("loss_det", ":"), ("loss_unc", "--")):
        axs[1].plot(ds.step[1:], r[var][1:], ls=ls, color=f"C{i}", label=f"{name}: {var}")
axs[0].set(xlabel="step", ylabel="held-out loss (nats/char)")
axs[1].set(xlabel="step", yscale="log")
axs[0].legend()
axs[1].legend(fontsize=7)

# %% [markdown]
# How much the model uses its context: the held-out loss at each window position (position 0 sees one character).

# %%
plt.plot(ds.loss_by_position.isel(point=1).mean("seed"))
plt.xlabel("position in the window")
plt.ylabel("loss (nats/char)")

# %% [markdown]
# Junk data (the "brain rot" toy): pretrain on clean text, then a junk phase where a share of every batch is text
# from the plays' own bigram chain, then clean healing. The junk ratio is an hparam: every ratio is one program.

# %%
jc = CharLMConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, seq_len=cfg.seq_len, batch=16,
                  n_steps=120 if SMALL else 900, log_every=20 if SMALL else 50, eval_windows=cfg.eval_windows,
                  junk_start=40 if SMALL else 400, junk_steps=40 if SMALL else 250)
dj = sweep(sim(jc), {"junk_ratio": [0.0, 0.5, 1.0]}, fixed={"lr": 3e-3, "warmup_steps": 20.0}, seeds=2,
           key=jax.random.key(1))
for r in dj.junk_ratio.values:
    plt.plot(dj.step, dj.loss.sel(junk_ratio=r).mean("seed"), label=f"junk ratio {r:g}")
plt.axvspan(jc.junk_start, jc.junk_start + jc.junk_steps, color="0.9")
plt.xlabel("step")
plt.ylabel("clean held-out loss")
plt.legend()

# %% [markdown]
# Rewarming after a genre switch (comedies -> histories): the arms (continue at the floor, rewarm to a peak) are
# hparams of `sims.schedule_specs.rewarm_family`, one compiled program.

# %%
rc = CharLMConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, seq_len=cfg.seq_len, batch=16,
                  n_steps=120 if SMALL else 800, log_every=20 if SMALL else 40, eval_windows=cfg.eval_windows,
                  train_genre="comedy", switch_step=60 if SMALL else 400, second_genre="history")
dr = sweep(sim(rc), {"rewarm_peak": [0.1, 1.0]}, fixed={"lr": 4e-3, "final_ratio": 0.1, "rewarm_warmup": 5.0},
           seeds=2, key=jax.random.key(2))
fig, axs = plt.subplots(1, 2, figsize=(10, 3.5))
for p in dr.rewarm_peak.values:
    axs[0].plot(dr.step, dr.loss_history.sel(rewarm_peak=p).mean("seed"), label=f"peak {p:g} x lr")
    axs[1].plot(dr.step, dr.loss_comedy.sel(rewarm_peak=p).mean("seed"), label=f"peak {p:g} x lr")
axs[0].set(title="new genre (histories)", xlabel="step")
axs[1].set(title="old genre (comedies)", xlabel="step")
axs[0].legend()
