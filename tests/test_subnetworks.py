"""Bigram subnetworks (continuous sparsification) on a Bigram-Backcopy base model."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import subnetworks as sn
from sims.bigram_backcopy import BBConfig, make_train, sample_batch
from sims.transformer import apply

BASE = BBConfig(data="zipf", V=8, seq_len=8, batch=16, d_model=16, n_layers=2, n_steps=300, log_every=100,
                eval_batch=32)


@functools.cache
def base_params():
    p, _, _ = jax.jit(make_train(BASE))(jax.random.key(0), {"lr": jnp.float32(3e-3)})
    return p


def cfg(**kw):
    return sn.SubnetConfig(base=BASE, n_steps=kw.pop("n_steps", 300), log_every=100, **kw)


def test_masks_act_exactly():
    """All-ones masks give the base model bit for bit; zero masks on both MLP matrices = removing the MLPs."""
    c, p = cfg(), base_params()
    x = sample_batch(BASE, jax.random.key(1), 4)[0]
    full = apply(p, x, BASE.model())[0]
    ones = sn.unflatten(c, p, jnp.ones(int(sn.block_sizes(c, p).sum())))
    np.testing.assert_array_equal(np.asarray(apply(sn.masked_params(c, p, ones), x, BASE.model())[0]), np.asarray(full))
    rm = 1.0 - sn.block_mask(c, p, ["L0.w1", "L0.w2", "L1.w1", "L1.w2"]).astype(jnp.float32)
    no_mlp = apply(sn.masked_params(c, p, sn.unflatten(c, p, rm)), x, BASE.model())[0]
    np.testing.assert_allclose(np.asarray(no_mlp), np.asarray(apply(p, x, BASE.model(), zero_mlp=True)[0]), atol=1e-5)


def test_random_masks_keep_block_counts_and_overlap_null_is_hypergeometric():
    """Random same-count masks keep every block's count exactly; the overlap z-score of two independent random
    masks against the analytic hypergeometric null has mean 0 and sd 1 (400 pairs: |mean| < 4/20, sd in
    [0.85, 1.15], i.e. ~4 SE of a sample sd)."""
    c, p = cfg(), base_params()
    sizes = sn.block_sizes(c, p)
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.random(int(sizes.sum())) < 0.1)
    b = jnp.asarray(rng.random(int(sizes.sum())) < 0.3)
    draw = jax.jit(jax.vmap(lambda k, m: sn.random_same_counts(k, c, p, m), in_axes=(0, None)))
    ra = np.asarray(draw(jax.random.split(jax.random.key(0), 400), a))
    rb = np.asarray(draw(jax.random.split(jax.random.key(1), 400), b))
    edges = np.cumsum(np.r_[0, sizes])
    for lo, hi in zip(edges[:-1], edges[1:]):
        assert np.all(ra[:, lo:hi].sum(1) == int(np.asarray(a)[lo:hi].sum()))
    z = np.array([sn.overlap_z(c, p, ra[i], rb[i])[2] for i in range(400)])
    assert abs(z.mean()) < 0.2 and 0.85 < z.std() < 1.15
    assert sn.overlap_z(c, p, a, a)[2] > 10  # a mask overlaps itself far above the null


def test_lens_ends():
    """Depth 0 (embeddings) recalls the current token perfectly; at the last depth the ridge map from the final
    residual to itself is exact up to the ridge penalty: KL < 1e-3."""
    c, p = cfg(), base_params()
    xf = sample_batch(BASE, jax.random.key(2), 64)[0]
    xe = sample_batch(BASE, jax.random.key(3), 64)[0]
    rec, kl = sn.lens(c, p, xf, xe)
    assert rec[0] == 1.0 and kl[-1] < 1e-3 and kl[0] > 10 * kl[-1]


def test_sparsification_end_to_end():
    """lambda sweep in one call: the kept fraction falls with lambda; lambda = 0 keeps the bigram fit (r > 0.9);
    the stop rule fires (fewer than 1% of kept masks undecided); same key -> same masks."""
    c = cfg(n_steps=600, temp_growth=1.01)
    p = base_params()
    ds = sn.sweep_lambda(c, p, [0.0, 3.0, 30.0], seeds=1, key=jax.random.key(5))
    kept = ds.kept_total.isel(seed=0).values
    assert kept[0] > kept[1] > kept[2]
    assert float(ds.pearson_r.sel(lam=0.0).isel(seed=0)) > 0.9
    assert int(ds.stop_step.sel(lam=0.0).isel(seed=0)) > 0
    again = sn.sweep_lambda(c, p, [0.0, 3.0, 30.0], seeds=1, key=jax.random.key(5))
    np.testing.assert_array_equal(ds.mask.values, again.mask.values)


@pytest.mark.parametrize("make", [
    lambda: cfg(maskable=()), lambda: cfg(maskable=("wz",)), lambda: cfg(maskable=("wq", "wq")),
    lambda: cfg(target="trigram"), lambda: cfg(lr=0.0), lambda: cfg(temp_growth=0.9), lambda: cfg(undecided_stop=1.0),
    lambda: sn.check_lambda([1.0, -0.5]), lambda: sn.block_mask(cfg(), base_params(), ["L5.w1"]),
    lambda: sn.SubnetConfig(base=BBConfig(mlp=False), maskable=("w1",))])
def test_bad_input(make):
    with pytest.raises(ValueError):
        make()


def test_mask_run_does_not_recompile_for_a_new_lambda():
    c, p = cfg(n_steps=100), base_params()
    run = jax.jit(sn.make_run(c, p))
    run(jax.random.key(0), {"lam": jnp.float32(1.0)})
    run(jax.random.key(1), {"lam": jnp.float32(5.0)})
    assert run._cache_size() == 1
