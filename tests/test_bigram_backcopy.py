"""Groundwork for the Bigram-Backcopy topic: data, exact oracle, the shared transformer, the training run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import bigram_data as bd
from sims.bigram_backcopy import BBConfig, make_run
from sims.sweep import sweep
from sims.transformer import TransformerConfig, apply, init
from theory import bigram as tb


def test_backcopy_rule_and_oracle_match_sampling():
    """After a trigger the next token copies the one before it (exact); the pair-chain oracle equals the
    empirical mean row entropy at non-trigger positions (20k sequences: within 4 SE)."""
    P = bd.make_transition(0, V=16, kind="dirichlet", alpha=0.5)  # rows of different entropies
    mask = np.zeros(16, bool)
    mask[tb.triggers_of(P, 3)] = True
    first = tb.stationary(P) * ~mask
    first /= first.sum()
    assert tb.row_entropy(P).std() > 0.1
    s = np.asarray(bd.backcopy_sequences(jax.random.key(0), jnp.asarray(P), jnp.asarray(mask), jnp.asarray(first),
                                         20000, 24, 16))
    prev, cur, nxt = s[:, 1:-2], s[:, 2:-1], s[:, 3:]
    assert np.all(nxt[mask[cur]] == prev[mask[cur]])
    assert not np.any(mask[s[:, 1]])  # x1 is never a trigger
    H = tb.row_entropy(P)
    c = s[:, 1:23]
    vals = H[c][~mask[c]]
    orc, frac = tb.backcopy_oracle(P, np.nonzero(mask)[0], 24)
    assert abs(vals.mean() - orc) < 4 * vals.std() / np.sqrt(vals.size)
    assert abs(mask[c].mean() - frac) < 0.01


def test_transformer_is_causal_and_interventions_act():
    cfg = TransformerConfig(vocab=10, max_len=8, d_model=16, n_layers=2, n_heads=2)
    p = init(jax.random.key(0), cfg)
    x = jax.random.randint(jax.random.key(1), (2, 8), 0, 10)
    lg, inter = apply(p, x, cfg)
    x2 = x.at[:, 5].set((x[:, 5] + 1) % 10)
    lg2, _ = apply(p, x2, cfg)
    np.testing.assert_allclose(lg[:, :5], lg2[:, :5], atol=1e-6)  # the future does not leak
    assert not np.allclose(lg[:, 5:], lg2[:, 5:])
    w = inter["attn"][0]
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert float(jnp.abs(jnp.triu(w[0, 0], 1)).max()) == 0.0
    _, forced = apply(p, x, cfg, force_bos=jnp.ones((2, 8), bool))
    np.testing.assert_allclose(forced["attn"][0][..., 0], 1.0)
    lg0, _ = apply(p, x, cfg, zero_attn=True, zero_mlp=True)
    assert not np.allclose(lg0, lg)
    relu = TransformerConfig(vocab=10, max_len=8, d_model=16, attention="relu")
    _, ir = apply(init(jax.random.key(0), relu), x, relu)
    assert float(ir["attn"][0].min()) >= 0.0


def test_bb_training_learns_backcopy_quickly():
    """A tiny 1-layer model learns to copy after triggers: trigger-position loss falls below 0.5 nats
    (from ~log V) in 300 Adam steps; records and intervention losses are finite."""
    cfg = BBConfig(V=12, seq_len=16, batch=32, n_steps=300, log_every=100, d_model=32, eval_batch=32)
    ds = sweep(make_run(cfg), {"lr": [3e-3]}, seeds=1, key=jax.random.key(0), steps=cfg.steps(), progress=False,
               dims={"attn_map": ("q", "k"), "attn_map_trigger": ("q",)})
    lt = ds.loss_trigger.isel(lr=0, seed=0).values
    assert lt[0] > 1.5 and lt[-1] < 0.5
    assert np.isfinite(ds.no_attn_trigger.values).all() and not ds.diverged.any()
    # removing the attention output destroys the copy (the rule is attention's job)
    assert float(ds.no_attn_trigger.mean()) > 2 * float(ds.full_trigger.mean())


@pytest.mark.parametrize("make", [lambda: BBConfig(k_triggers=0), lambda: BBConfig(V=1), lambda: BBConfig(seq_len=2),
                                  lambda: BBConfig(optimizer="lamb"), lambda: TransformerConfig(d_model=10, n_heads=3),
                                  lambda: TransformerConfig(attention="linear"), lambda: tb.triggers_of(np.eye(3), 3),
                                  lambda: tb.backcopy_oracle(np.eye(3), [0], 2)])
def test_bad_input(make):
    with pytest.raises(ValueError):
        make()
