"""Bigram data (theory/bigram.py, sims/bigram_data.py), the bigram LM of Wen et al. Sec. 4, HVP + Lanczos."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import bigram_data as bd
from sims.river_valley import BigramLMConfig, bigram_population_loss, hvp, lanczos, make_lm_run
from sims.sweep import sweep
from theory import bigram as tb


def test_stationary_and_entropy_against_brute_force():
    """pi from lstsq equals the power-iteration limit; H(X'|X) equals a direct double sum."""
    P = bd.make_transition(0, V=12, kind="dirichlet", alpha=0.5)
    pi = tb.stationary(P)
    p = np.full(12, 1 / 12)
    for _ in range(5000):
        p = p @ P
    np.testing.assert_allclose(pi, p, atol=1e-10)
    H = -sum(pi[x] * P[x, y] * np.log(P[x, y]) for x in range(12) for y in range(12) if P[x, y] > 0)
    assert tb.conditional_entropy(P) == pytest.approx(H, rel=1e-12)


def test_sampled_pairs_follow_the_chain():
    """Empirical transition frequencies of 400k pairs match P within 5 binomial SE (per cell)."""
    P = bd.make_transition(1, V=6, kind="zipf")
    law = tb.stationary(P)
    x, y = bd.sample_pairs(jax.random.key(0), jnp.asarray(P), jnp.asarray(law), 400_000)
    C = np.zeros((6, 6))
    np.add.at(C, (np.asarray(x), np.asarray(y)), 1)
    n = C.sum(1, keepdims=True)
    se = np.sqrt(P * (1 - P) / n)
    assert np.all(np.abs(C / n - P) <= 5 * se + 1e-12)
    np.testing.assert_allclose(n[:, 0] / n.sum(), law, atol=5 * np.sqrt(0.25 / 400_000))


def test_sequences_shape_and_bos():
    P = bd.make_transition(2, V=5)
    s = bd.sample_sequences(jax.random.key(1), jnp.asarray(P), jnp.full(5, 0.2), 3, 7, bos=5)
    assert s.shape == (3, 7) and np.all(np.asarray(s[:, 0]) == 5) and np.all(np.asarray(s[:, 1:]) < 5)


def test_sequences_follow_the_chain_and_never_take_a_zero_probability_step():
    """Inverse-CDF sampling (one uniform per token): the empirical transition frequencies of 4000 sequences x 50
    tokens match P within 5 binomial SE per cell, and a transition of probability exactly 0 never occurs, also
    where the zeros are a row's first or last entries (the cdf's edges) and x1's law has zeros."""
    P = np.array(bd.make_transition(3, V=6, kind="zipf"))
    P[0, 0] = P[0, 5] = P[3, 5] = P[5, 0] = 0.0  # zeros at both edges of the cdf
    P[2, 1:5] = 0.0  # a row with mass only at its two edges
    P /= P.sum(1, keepdims=True)
    first = np.array([0.0, 0.5, 0.0, 0.25, 0.25, 0.0])
    s = np.asarray(bd.sample_sequences(jax.random.key(4), jnp.asarray(P), jnp.asarray(first), 4000, 51, bos=6))
    assert np.all(first[s[:, 1]] > 0)
    C = np.zeros((6, 6))
    np.add.at(C, (s[:, 1:-1].ravel(), s[:, 2:].ravel()), 1)
    assert C[P == 0].sum() == 0
    n = C.sum(1, keepdims=True)
    se = np.sqrt(P * (1 - P) / n)
    assert np.all(np.abs(C / n - P) <= 5 * se + 1e-12)


def test_population_loss_oracle():
    """At the Bayes logits log P the loss equals the conditional entropy (exact)."""
    P = bd.make_transition(3, V=8, alpha=1.0)
    pi = tb.stationary(P)
    assert tb.population_loss(np.log(P), P, pi) == pytest.approx(tb.conditional_entropy(P), rel=1e-10)
    tot, _ = bigram_population_loss(jnp.asarray(np.log(P)), jnp.asarray(P), jnp.asarray(pi))
    assert float(tot) == pytest.approx(tb.conditional_entropy(P), rel=1e-5)


def test_lanczos_matches_eigh_top_eigenpairs():
    """Independent reference: numpy eigh of the dense Hessian (jax.hessian) of the LM loss, float64.
    With k = n Lanczos steps the Ritz values are the eigenvalues (rtol 1e-6 on the top 10)."""
    with jax.enable_x64(True):
        P, law, _ = BigramLMConfig(V=6, support=(2, 4)).source()
        W = jax.random.normal(jax.random.key(0), (36,)) * 0.5
        f = lambda w: bigram_population_loss(w.reshape(6, 6), jnp.asarray(P), jnp.asarray(law))[0]
        Hd = np.asarray(jax.hessian(f)(W))
        ev = np.sort(np.linalg.eigvalsh(Hd))[::-1]
        np.testing.assert_allclose(np.asarray(hvp(f, W, jnp.eye(36)[3])), Hd[:, 3], rtol=1e-10, atol=1e-14)
        rv, Q = lanczos(lambda v: hvp(f, W, v), 36, 36, jax.random.key(1))
    np.testing.assert_allclose(rv[:10], ev[:10], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(Q[:, :5].T @ Q[:, :5], np.eye(5), atol=1e-8)


def test_lm_river_behaviour_small():
    """At constant lr the deterministic rows' excess keeps falling (x < 0.6 from 1/4 to the end)."""
    cfg = BigramLMConfig(V=16, n_steps=1200, log_every=100)
    ds = sweep(make_lm_run(cfg), {"lr": [10.0]}, seeds=4, key=jax.random.key(0), steps=cfg.steps(), progress=False)
    det = ds.excess_det.isel(lr=0).mean("seed").values
    assert det[-1] < 0.6 * det[3] and not ds.diverged.any()


@pytest.mark.parametrize("make", [
    lambda: tb.check_transition([[0.5, 0.6], [0.5, 0.5]]),
    lambda: tb.check_transition([[1.0]]),
    lambda: tb.check_transition([[1.5, -0.5], [0.5, 0.5]]),
    lambda: tb.check_transition(np.ones((2, 3)) / 3),
    lambda: bd.make_transition(0, V=1),
    lambda: bd.make_transition(0, kind="pareto"),
    lambda: bd.mixed_uncertainty(0, frac_deterministic=1.5),
    lambda: bd.sample_sequences(jax.random.key(0), jnp.eye(3), jnp.ones(3) / 3, 2, 1, bos=3),
    lambda: BigramLMConfig(V=1),
    lambda: lanczos(lambda v: v, 4, 5, jax.random.key(0)),
])
def test_bad_input(make):
    with pytest.raises(ValueError):
        make()
