"""Radial attention: the exact count of Eq. (4) (R1), O(n log n) (R2), equal compute per band (R3), the masked-softmax
L1 identity (R4), the exponent of the dropped mass under planted decay (R5), the port of the authors' block mask
against the sparsity users report (R6), the energy-decay fit (R7), block-sparse attention = dense masked attention,
and bad input. References are brute force (the n x n mask summed; the authors' token-level construction)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import radial_attention as rs
from theory import radial_attention as ra


@pytest.mark.parametrize("f, s", [(1, 5), (3, 1), (5, 3), (12, 16), (17, 7), (33, 4), (9, 40), (40, 9), (64, 2)])
@pytest.mark.parametrize("sink", [False, True])
def test_closed_form_count_equals_brute_force(f, s, sink):
    """R1: exact integer equality (21816 at f = 12, s = 16 without the sink, as the notes' prototype)."""
    assert ra.nnz(f, s, sink=sink) == int(ra.mask(f, s, sink=sink).sum())
    m = ra.mask(f, s, sink=sink)
    for i, k in [(0, 0), (f - 1, s - 1), (f // 2, s // 3)]:
        assert np.array_equal(ra.mask_row(f, s, i, k, sink=sink), m[i * s + k])
    assert np.array_equal(m, m.T) or sink  # Eq. (4) is symmetric; the sink column block is not


def test_known_count_and_large_geometry_is_instant():
    assert ra.nnz(12, 16) == 21816
    n = ra.nnz(1000, 4000)  # 4e6 tokens: a sum over 1000 distances
    assert 0 < n <= ra.quoted_nnz_bound(1000, 4000)


def test_o_n_log_n_band_and_quoted_bound():
    """R2: nnz / (s n log2(n/s)) stays within [1.9, 2.9] for f = 8 .. 1024 at s in {64, 256} (measured 1.95 ..
    2.76), nnz <= 4 s^2 f log2 f (the quoted bound; measured ratio 0.49 .. 0.69), density falls with f."""
    for s in (64, 256):
        dens = []
        for f in (8, 16, 32, 64, 128, 256, 512, 1024):
            n = f * s
            z = ra.nnz(f, s)
            assert 1.9 <= z / (s * n * np.log2(n / s)) <= 2.9, (s, f)
            assert z <= ra.quoted_nnz_bound(f, s)
            dens.append(ra.density(f, s))
        assert np.all(np.diff(dens) < 0)


def test_each_band_costs_about_the_same():
    """R3: at f = s = 256, the full bands r = 0 .. 5 hold within a factor 1.3 of each other (measured 49.7M ..
    59.2M); the last bands are only partly inside the video."""
    b = ra.band_nnz(256, 256)
    full = np.array([b[r] for r in range(6)], float)
    assert full.max() / full.min() <= 1.3
    assert sum(b.values()) == ra.nnz(256, 256)


def test_renormalised_masked_softmax_l1_is_twice_the_dropped_mass():
    """R4: ||p~ - p||_1 = 2 (mass outside), p~ from JAX's masked attention weights, p from the full softmax
    (float64; equality to 1e-12)."""
    with jax.enable_x64(True):
        f, s = 12, 16
        m = ra.mask(f, s)
        logits = jax.random.normal(jax.random.key(0), (f * s, f * s), jnp.float64) * 3
        p = np.asarray(jax.nn.softmax(logits, -1))
        pt = np.asarray(jax.nn.softmax(jnp.where(jnp.asarray(m), logits, -jnp.inf), -1))
        l1 = np.abs(pt - p).sum(-1)
        assert np.allclose(l1, 2 * np.where(m, 0.0, p).sum(-1), rtol=0, atol=1e-12)
        a, b = ra.renormalised_l1(p[5], m[5])
        assert abs(a - b) <= 1e-12 and b > 0


def test_dropped_mass_follows_the_predicted_exponent():
    """R5: under planted decay p ~ exp(-alpha |df| - beta |dk|) (f = 64), 2 x dropped mass / exp(-min_r(alpha 2^r
    + beta s / 2^r)) stays within [0.1, 20] (a prefactor: the count of dropped entries at the minimum), over
    (alpha, beta, s) where the prediction spans 1e-2 .. 1e-9; the centre query."""
    f = 64
    ratios = []
    for alpha, beta in [(1.0, 0.5), (0.5, 0.2), (0.3, 0.3)]:
        for s in (16, 32, 64, 128):
            i, k = f // 2, s // 2
            row = ra.mask_row(f, s, i, k)
            fj, lj = np.repeat(np.arange(f), s), np.tile(np.arange(s), f)
            lp = -alpha * np.abs(fj - i) - beta * np.abs(lj - k)
            p = np.exp(lp - lp.max())
            p /= p.sum()
            pred = np.exp(-ra.predicted_log_dropped(alpha, beta, s))
            if pred > 1e-12:
                ratios.append(2 * p[~row].sum() / pred)
    assert len(ratios) >= 8 and 0.1 <= min(ratios) and max(ratios) <= 20, ratios


def test_energy_decay_fit_recovers_the_planted_rates():
    """R7: logits -alpha |df| - beta |dk| + N(0, 0.1^2); least squares of log p on the two distances recovers alpha,
    beta within 5% and R^2 > 0.985 (the paper's pass line)."""
    rng = np.random.default_rng(0)
    f, s, alpha, beta = 32, 64, 0.7, 0.15
    fj, lj = np.repeat(np.arange(f), s), np.tile(np.arange(s), f)
    df, dk = np.abs(fj - 10), np.abs(lj - 20)
    lp = -alpha * df - beta * dk + 0.1 * rng.standard_normal(f * s)
    logp = lp - np.log(np.exp(lp).sum())
    X = np.stack([np.ones_like(df), df, dk], 1).astype(float)
    coef, *_ = np.linalg.lstsq(X, logp, rcond=None)
    r2 = 1 - np.sum((logp - X @ coef) ** 2) / np.sum((logp - logp.mean()) ** 2)
    assert abs(-coef[1] - alpha) <= 0.05 * alpha and abs(-coef[2] - beta) <= 0.05 * beta and r2 > 0.985


# ---------------------------------------------------------------------------------------------------------------
# the port of the authors' block mask
# ---------------------------------------------------------------------------------------------------------------
def test_fast_block_construction_equals_the_authors_construction():
    """The interval-length shrink equals padding the token mask and running shrinkMaskStrict, on 300 random pairs
    (sizes, offsets, distances, decay factors, sink, both revisions)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        s, B = int(rng.integers(1, 500)), int(rng.choice([8, 16, 64, 128]))
        args = (int(rng.integers(0, 40)), int(rng.integers(0, B)), int(rng.integers(0, B)), s,
                float(rng.choice([0.05, 0.2, 1.0])), B, bool(rng.random() < 0.2), bool(rng.random() < 0.5))
        assert np.array_equal(rs._pair_blocks(*args), rs._pair_blocks_dense(*args)), args


def test_block_mask_reproduces_the_sparsity_users_report():
    """R6: issue #61 (Wan 2.1, 768 x 1280, 69 frames, decay_factor 0.2; code of that period): printed sparsity
    0.7366323471069336 (float32 in torch), and it saturates (the same at a smaller decay factor). HEAD (full
    neighbouring frames) is denser."""
    f, s = rs.wan_geometry(768, 1280, 69)
    assert (f, s) == (18, 3840)
    old = rs.sparsity(rs.block_mask(f, s, decay_factor=0.2, revision="3f66894"))
    assert abs(old - 0.7366323471069336) <= 1e-6
    assert rs.sparsity(rs.block_mask(f, s, decay_factor=0.02, revision="3f66894")) == old
    assert rs.sparsity(rs.block_mask(f, s, decay_factor=0.2)) < old


def test_block_mask_gives_the_readme_9x_for_hunyuan():
    """R6: the README's "about 9x less attention compute" for HunyuanVideo at ~500 frames, 720p (497 frames: 125
    latent frames x 3600 tokens, decay 0.95, no sink): 1 / density of the block mask within [8, 10]."""
    f, s = rs.hunyuan_geometry(720, 1280, 497)
    bm = rs.block_mask(f, s, decay_factor=0.95, model_type="hunyuan")
    assert 8.0 <= 1.0 / (1.0 - rs.sparsity(bm)) <= 10.0


def test_block_sparse_gather_equals_dense_masked_attention():
    f, s, B = 8, 48, 16
    bm = rs.block_mask(f, s, decay_factor=0.5, block_size=B, model_type="wan")
    tm = rs.token_mask_from_blocks(bm, B)
    ks = jax.random.split(jax.random.key(1), 3)
    q, k, v = (jax.random.normal(kk, (2, f * s, 3, 8)) for kk in ks)
    dense = rs.attention_dense_masked(q, k, v, tm)
    sparse = rs.attention_block_sparse(q, k, v, bm, B)
    assert float(jnp.abs(dense - sparse).max()) <= 1e-5


@pytest.mark.parametrize("call, needle", [
    (lambda: ra.mask(0, 4), "frames"),
    (lambda: ra.nnz(4, 0), "tokens_per_frame"),
    (lambda: ra.nnz(4.5, 3), "frames"),
    (lambda: rs.block_mask(4, 256, decay_factor=0.0), "decay_factor"),
    (lambda: rs.block_mask(4, 256, decay_factor=0.5, model_type="mochi"), "model_type"),
    (lambda: rs.block_mask(4, 256, decay_factor=0.5, block_size=0), "block_size"),
    (lambda: rs.block_mask(4, 256, decay_factor=0.5, revision="main"), "revision"),
    (lambda: rs.attention_block_sparse(jnp.zeros((1, 100, 1, 4)), jnp.zeros((1, 100, 1, 4)),
                                       jnp.zeros((1, 100, 1, 4)), np.ones((6, 6), bool), 16), "blocks of"),
])
def test_bad_input_names_the_parameter(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()
