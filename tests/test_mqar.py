"""MQAR (#36, item 1): the generator against its definition (NumPy checks), the recurrent token mixers of the shared
transformer against NumPy references, bad input, determinism. References import nothing from sims/ or theory/."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.mqar import MQARConfig, make_batch, make_run
from sims.transformer import TransformerConfig, apply, init


def test_the_generator_is_the_task():
    """Distinct keys in the pairs, values from the value tokens, every query repeats a key of its sequence (distinct
    keys) and its target is that key's value; the filler elsewhere; exactly n_queries query positions after the
    pairs; deterministic per key, different for another key."""
    cfg = MQARConfig(n_keys=16, n_values=8, n_pairs=6, n_queries=4, seq_len=24)
    tok, tgt, m = (np.asarray(a) for a in make_batch(jax.random.key(0), cfg, 200))
    for x, y, q in zip(tok, tgt, m):
        keys, vals = x[0:12:2], x[1:12:2]
        assert len(set(keys)) == 6 and keys.max() < 16 and np.all((vals >= 16) & (vals < 24))
        assert q.sum() == 4 and not q[:12].any()
        lookup = dict(zip(keys, vals))
        qk = x[q]
        assert len(set(qk)) == 4 and all(y[i] == lookup[x[i]] for i in np.flatnonzero(q))
        assert np.all(x[12:][~q[12:]] == 24)  # the filler
    again = np.asarray(make_batch(jax.random.key(0), cfg, 200)[0])
    other = np.asarray(make_batch(jax.random.key(1), cfg, 200)[0])
    assert np.array_equal(tok, again) and not np.array_equal(tok, other)
    # keys are drawn uniformly: each key token appears in ~ 200 x 6 / 16 sequences
    counts = np.bincount(tok[:, 0:12:2].ravel(), minlength=16)
    assert counts.min() > 40 and counts.max() < 110


def _np_ln(x):
    m = x.mean(-1, keepdims=True)
    return (x - m) / np.sqrt(((x - m) ** 2).mean(-1, keepdims=True) + 1e-5)


@pytest.mark.parametrize("mixer", ["retnet", "linear", "lightnet"])
def test_the_recurrent_mixers_effective_attention_is_the_papers(mixer):
    """One block: the recorded effective attention A_ts (``scores``) equals the NumPy definition, q_t . k_s times
    the decay product from s+1 to t: RetNet gamma_h^(t-s) with gamma_h = 1 - 2^(-5-h); unit gates 1; LightNet's
    additive decay with keys exp(k_s) / sum_{r <= t} exp(k_r) (per channel: A_ts = sum_c q_tc e^(k_sc) / u_tc)."""
    cfg = TransformerConfig(vocab=12, max_len=10, d_model=16, n_layers=1, n_heads=2, attention=mixer, init="gpt2")
    p = init(jax.random.key(0), cfg)
    toks = jnp.asarray(np.random.default_rng(0).integers(0, 12, (2, 10)))
    with jax.enable_x64(False):
        _, inter = apply(p, toks, cfg)
    P = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    x = P["tok"][np.asarray(toks)] + P["pos"][:10]
    h = _np_ln(x) * P["blocks"][0]["ln1"]["g"] + P["blocks"][0]["ln1"]["b"]
    H, dh = 2, 8
    q = (h @ P["blocks"][0]["wq"]).reshape(2, 10, H, dh) / np.sqrt(dh)
    k = (h @ P["blocks"][0]["wk"]).reshape(2, 10, H, dh)
    ref = np.zeros((2, H, 10, 10))
    for b in range(2):
        for hh in range(H):
            for t in range(10):
                for s in range(t + 1):
                    if mixer == "lightnet":
                        u = np.exp(k[b, : t + 1, hh]).sum(0)  # (dh,) the prefix sums at t
                        ref[b, hh, t, s] = np.sum(q[b, t, hh] * np.exp(k[b, s, hh]) / u)
                    else:
                        gamma = 1 - 2.0 ** (-5 - hh) if mixer == "retnet" else 1.0
                        ref[b, hh, t, s] = q[b, t, hh] @ k[b, s, hh] * gamma ** (t - s)
    np.testing.assert_allclose(np.asarray(inter["scores"][0], np.float64), ref, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("kw, name", [
    ({"n_queries": 9, "n_pairs": 8}, "n_queries"), ({"n_pairs": 12, "n_queries": 8, "seq_len": 31}, "seq_len"),
    ({"n_pairs": 20, "n_keys": 16, "n_queries": 4, "seq_len": 64}, "n_pairs"),
    ({"d_model": 30, "n_heads": 4}, "d_model"),
    ({"attention": "relu"}, "attention"), ({"n_pairs": 0}, "n_pairs"), ({"n_steps": 10, "log_every": 3}, "log_every"),
])
def test_bad_config_is_refused_naming_the_parameter(kw, name):
    with pytest.raises(ValueError, match=name):
        MQARConfig(**kw)


def test_a_run_is_deterministic_and_does_not_recompile_for_a_new_lr():
    cfg = MQARConfig(attention="gla", n_keys=8, n_values=8, n_pairs=3, n_queries=3, seq_len=12, d_model=16,
                     n_steps=4, log_every=2, batch=4, eval_batch=8)
    run = jax.jit(make_run(cfg))
    a, b = run(jax.random.key(0), {"lr": jnp.float32(1e-3)}), run(jax.random.key(0), {"lr": jnp.float32(1e-3)})
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert 0 <= float(a[0]["accuracy"]) <= 1 and np.isfinite(float(a[0]["loss"]))
    run(jax.random.key(0), {"lr": jnp.float32(3e-3)})
    assert run._cache_size() == 1


def test_recall_grid_shapes_and_the_best_lr_reading():
    """One tiny grid: dims (mixer, width, pairs, lr, seed); the best-lr reading picks, per setting, the lr whose
    seed-mean accuracy is highest (checked against a NumPy argmax over the same numbers)."""
    from sims.mqar import best_lr, recall_grid
    task = MQARConfig(n_keys=8, n_values=8, n_pairs=1, n_queries=1, seq_len=12, d_model=16, n_steps=4, log_every=2,
                      batch=4, eval_batch=8)
    ds = recall_grid(task, ["softmax", "retnet"], [8], [2], [1e-3, 1e-2], seeds=2, key=jax.random.key(0))
    assert ds.accuracy.dims == ("mixer", "width", "pairs", "lr", "seed")
    assert ds.accuracy.shape == (2, 1, 1, 2, 2) and ds.attrs["seq_len"] == 12
    assert list(ds.mixer.values) == ["softmax", "retnet"]  # the caller's order, not sorted
    a = ds.accuracy.values
    acc, lr = best_lr(ds)
    i = np.argmax(a.mean(-1), axis=-1)
    np.testing.assert_array_equal(acc.values, np.take_along_axis(a, i[..., None, None], 3)[..., 0, :])
    np.testing.assert_array_equal(lr.values, np.asarray([1e-3, 1e-2])[i])


@pytest.mark.parametrize("kw, name", [
    ({"mixers": ["softmax", "softmax"]}, "mixers"), ({"mixers": ["relu"]}, "mixers"), ({"widths": []}, "widths"),
    ({"lrs": [-1.0]}, "lrs"), ({"pairs": [8]}, "seq_len"), ({"widths": [15]}, "n_heads"),
])
def test_recall_grid_refuses_bad_input_before_computing(kw, name):
    from sims.mqar import recall_grid
    task = MQARConfig(n_keys=8, n_values=8, n_pairs=1, n_queries=1, seq_len=12, d_model=16, n_steps=4, log_every=2)
    args = {"mixers": ["softmax"], "widths": [16], "pairs": [2], "lrs": [1e-3], **kw}
    with pytest.raises(ValueError, match=name):
        recall_grid(task, args["mixers"], args["widths"], args["pairs"], args["lrs"], seeds=2, key=jax.random.key(0))


@pytest.mark.parametrize("item, needle", [
    ("task.d_model=32", "set by the figure"), ("pairs=20", "n_keys"), ("pairs=9", "seq_len"),
    ("widths=31", "n_heads"), ("widths=32,32", "widths"), ("mixers=relu", "mixers"), ("seeds=1", "seeds"),
])
def test_the_figure_refuses_what_it_sets_and_bad_grids(item, needle):
    from figures._overrides import UserError, overrides
    from figures.mqar_recall import PRESETS
    with pytest.raises((UserError, ValueError), match=needle):
        overrides(PRESETS["quick"], item)
