"""LR-schedule theory: the last-iterate bound (vs a brute-force loop), tuning, the optimal schedule,
refinement, REX, new schedule constructors, the convex SGD sim, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import schedules as S
from sims.convex_sgd import ConvexConfig, block_grad_norms, make_data, make_run
from sims.sweep import sweep
from theory import schedules as ts


def brute_bound(eta, D, G):
    """The bound written as the paper states it: plain loops, no cumulative sums."""
    T = len(eta)
    S_ = sum(eta)
    t1 = D**2 / (2 * S_)
    t2 = sum(e * e * G * G for e in eta) / (2 * S_)
    t3 = 0.0
    for k in range(T - 1):
        t3 += eta[k] / sum(eta[k + 1:]) * sum(eta[t] ** 2 * G**2 for t in range(k, T)) / sum(eta[k:])
    return t1 + t2 + 0.5 * t3


def test_bound_matches_brute_force_loop_for_random_schedules():
    rng = np.random.default_rng(0)
    etas = rng.uniform(0.01, 1.0, (20, 40))
    vec = ts.last_iterate_bound(etas, D=2.0, G=3.0)
    ref = [brute_bound(list(e), 2.0, 3.0) for e in etas]
    np.testing.assert_allclose(vec, ref, rtol=1e-12)


def test_bound_jax_equals_numpy():
    e = np.random.default_rng(1).uniform(0.01, 1, (5, 30))
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(ts.last_iterate_bound(jnp.asarray(e), xp=jnp)),
                                   ts.last_iterate_bound(e), rtol=1e-12)


def test_constant_closed_form():
    """Schaipp et al.'s constant-lr terms D^2/(2cT), cG^2/2, (c/2)G^2 H_{T-1}, exact to 1e-10."""
    np.testing.assert_allclose(ts.bound_terms(np.full(500, 0.03), 2.0, 1.5),
                               ts.constant_bound_terms(500, 0.03, 2.0, 1.5), rtol=1e-10)


def test_tuned_bound_is_the_minimum_over_peak_lr():
    shape = S.as_array(S.cosine(1.0, 200), 200) + 1e-9
    b, c = ts.tuned_bound(shape)
    grid = np.geomspace(c / 10, c * 10, 4001)
    vals = ts.last_iterate_bound(grid[:, None] * shape[None])
    assert vals.min() == pytest.approx(b, rel=1e-5) and grid[vals.argmin()] == pytest.approx(c, rel=3e-3)


def test_linear_decay_tuned_value_and_optimum():
    """sqrt(T) x tuned bound of linear decay -> 2 (Defazio et al.); at T=100 it is 0.2036 and the
    numerical optimum is below it, within 2%, and close to linear in shape (rel. L2 < 0.1)."""
    b, _ = ts.tuned_bound(S.as_array(S.linear_decay(1.0, 100), 100))
    assert b == pytest.approx(0.2036, abs=1e-4)
    b_big, _ = ts.tuned_bound(S.as_array(S.linear_decay(1.0, 20000), 20000))
    assert b_big * np.sqrt(20000) == pytest.approx(2.0, abs=0.01)
    eta, val = ts.optimal_schedule(60)
    lin = S.as_array(S.linear_decay(1.0, 60), 60) * ts.tuned_bound(S.as_array(S.linear_decay(1.0, 60), 60))[1]
    lb = ts.tuned_bound(lin / lin.max())[0]
    assert val <= lb and val >= 0.97 * lb
    assert np.linalg.norm(eta - lin) / np.linalg.norm(lin) < 0.1


def test_refine_constant_is_exactly_linear_and_shapes():
    w = ts.refine(np.full(300, 2.5), smooth=False)
    np.testing.assert_allclose(w, (299 - np.arange(300)) / 299, atol=1e-14)
    x = np.linspace(0, 1, 400)
    w = ts.refine(1 + 10 * np.exp(-x / 0.05), smooth=False)  # big early norms -> warmup
    assert w[0] < 0.1 and np.argmax(w) > 10
    w_s = ts.refine(np.full(300, 2.5) + np.random.default_rng(0).normal(0, 0.1, 300), smooth=True, n_out=300)
    assert w_s.size == 300 and np.abs(w_s - (1 - np.arange(300) / 300)).max() < 0.1  # smoothing removes noise


def test_rex_values_and_sampling():
    np.testing.assert_allclose(ts.rex_profile([0, 0.25, 0.5, 0.75, 1]), [1, 6 / 7, 2 / 3, 0.4, 0], atol=1e-12)
    np.testing.assert_allclose(S.as_array(S.rex(2.0, 4), 4), 2 * ts.rex_profile([0, 0.25, 0.5, 0.75]), rtol=1e-6)
    lr = S.as_array(S.sampled(S.linear_decay(1.0, 100), 25), 100)
    assert len(np.unique(lr)) == 4 and lr[24] == lr[0]


def test_new_constructors():
    st = S.as_array(S.step_schedule(1.0, [50, 75], 0.1), 100)
    assert st[49] == 1.0 and st[50] == pytest.approx(0.1) and st[99] == pytest.approx(0.01)
    first = S.cosine(1.0, 100, 0.1)
    rw = S.as_array(S.rewarm(first, 100, 2.0, 300, 20, 0.0), 300)
    assert rw[99] == pytest.approx(float(first(99)), rel=1e-6)
    assert rw[100] == pytest.approx(0.1, rel=1e-5) and rw[120] == pytest.approx(2.0, rel=1e-5)
    assert rw[299] < 0.01
    wc = S.as_array(S.warmup_cosine(1.0, 100, 10), 100)
    assert wc[0] == 0 and wc[10] == pytest.approx(1.0)
    tb = S.table([0.3, 0.2, 0.1])
    assert float(tb(10)) == pytest.approx(0.1)


def test_convex_sim_grad_norms_and_optimum():
    """SGD (float64, decaying lr) ends within 5% of f* from SciPy's lstsq; recorded block norms are
    positive RMS values."""
    cfg = ConvexConfig(problem="least_squares", n_steps=3000, log_every=100)
    with jax.enable_x64(True):
        ds = sweep(make_run(cfg), {"lr": [0.3]}, fixed={"decay_fraction": 1.0}, seeds=8, key=jax.random.key(0),
                   steps=cfg.steps(), progress=False)
    A, b = make_data("least_squares", cfg.n, cfg.d, 0, cfg.noise)
    fstar, _ = ts.erm_optimum("least_squares", A, b)
    assert float(ds.loss.isel(step=-1).mean()) == pytest.approx(fstar, rel=0.05)
    g = block_grad_norms(ds.gsq_cum.isel(lr=0).values, 100)
    assert g.shape == (8, 30) and np.all(g > 0)


def test_erm_optimum_lp_for_abs_loss():
    """The LP optimum of mean |Ax - b| is below the loss at lstsq's x and at random points."""
    A, b = make_data("abs", 64, 5, 0, 0.5)
    f, x = ts.erm_optimum("abs", A, b)
    for y in [np.linalg.lstsq(A, b, rcond=None)[0]] + list(np.random.default_rng(0).normal(size=(20, 5))):
        assert f <= np.mean(np.abs(A @ y - b)) + 1e-9


@pytest.mark.parametrize("make", [
    lambda: ts.refine([1.0, 2.0, 0.0]), lambda: ts.refine([1.0]), lambda: ts.refine(np.ones(10), n_out=0),
    lambda: ts.rex_profile([1.5]), lambda: ts.optimal_schedule(1),
    lambda: S.step_schedule(1.0, [50, 40]), lambda: S.step_schedule(1.0, [50], factor=2.0),
    lambda: S.table([]), lambda: S.table([0.1, -0.1]), lambda: S.sampled(S.constant(1.0), 0),
    lambda: S.rewarm(S.constant(1.0), 100, 1.0, 100), lambda: S.warmup_cosine(1.0, 10, 10),
    lambda: ConvexConfig(problem="hinge"), lambda: ConvexConfig(noise=-1.0),
])
def test_bad_input(make):
    with pytest.raises(ValueError):
        make()
