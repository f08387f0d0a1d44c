"""SGD on a quadratic: simulation vs the exact moment recursion (theory/quadratic.py)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sims import schedules
from sims.quadratic import QuadraticConfig, make_run
from sims.sweep import sweep
from theory import quadratic as th


def test_theory_recursion_matches_brute_force_numpy():
    """Independent reference: the moment recursion equals a NumPy Monte-Carlo of 200k paths
    (float64). Statistic: z-score of the mean loss at 5 times; 5 SE (5 comparisons)."""
    rng = np.random.default_rng(0)
    a = np.array([0.5, 3.0])
    lrs = np.linspace(0.3, 0.01, 60)
    x = np.tile([1.0, -2.0], (200_000, 1))
    losses = [0.5 * (a * x**2).sum(1)]
    for e in lrs:
        x = x - e * (a * x + 0.7 * rng.standard_normal(x.shape))
        losses.append(0.5 * (a * x**2).sum(1))
    losses = np.array(losses)
    exact = th.expected_loss(lrs, a, 0.7, [1.0, -2.0])
    for t in (1, 5, 20, 40, 60):
        se = losses[t].std() / np.sqrt(losses.shape[1])
        assert abs(losses[t].mean() - exact[t]) < 5 * se, t


def test_stationary_closed_form_is_the_recursion_limit():
    """Exact: iterating the recursion at constant eta converges to eta s^2/(2(2 - eta a))."""
    for eta in (0.01, 0.5, 1.5, 1.99):
        v = th.expected_loss(np.full(20000, eta), 1.0, 1.3, 0.0)[-1]
        assert v == pytest.approx(float(th.stationary_loss(eta, 1.0, 1.3)), rel=1e-9)
    assert np.isinf(th.stationary_loss(2.0, 1.0, 1.0))


def test_sim_matches_exact_recursion_float64_any_schedule():
    """Float64 sim, WSD-cosine schedule on d=3: mean loss within 4 SE of the exact recursion at
    every record (21 records; family-wise false alarm ~ 21 * 6e-5)."""
    with jax.enable_x64(True):
        cfg = QuadraticConfig(a=(0.3, 2.0, 9.0), sigma=(1.0, 0.5, 2.0), x0=(2.0,), n_steps=400, log_every=20)
        hp = {"lr": [0.12], "decay_fraction": [0.4], "shape_id": [1], "final_ratio": [0.05]}
        ds = sweep(make_run(cfg), hp, mode="zip", seeds=4000, key=jax.random.key(3), steps=cfg.steps(),
                   cfg=cfg, progress=False)
        assert ds.loss.dtype == np.float64
        fam = schedules.family(0.12, 0.4, "cosine", 0.05)
        lrs = schedules.as_array(schedules.family_schedule(fam, cfg.n_steps), cfg.n_steps)
    exact = th.expected_loss(lrs, cfg.a, cfg.sigma, 2.0)[:: cfg.log_every]
    loss = ds.loss.isel(point=0).values
    m, se = loss.mean(0), loss.std(0, ddof=1) / np.sqrt(loss.shape[0])
    se[0] = 1e-12  # deterministic start
    z = np.abs(m - exact) / se
    assert z.max() < 4, z


def test_divergence_flag_is_exactly_the_critical_lr():
    """Prediction: divergence iff eta > 2/max(a) = 0.5. Lrs on both sides, all seeds."""
    cfg = QuadraticConfig(a=(1.0, 4.0), n_steps=3000, log_every=100)
    lrs = [0.3, 0.45, 0.49, 0.51, 0.6]
    ds = sweep(make_run(cfg), {"lr": lrs}, seeds=64, key=jax.random.key(0), steps=cfg.steps(), progress=False)
    flagged = ds.diverged.all("seed").values
    none = ~ds.diverged.any("seed").values
    pred = th.diverges(np.array(lrs), (1.0, 4.0))
    assert np.array_equal(flagged, pred) and np.array_equal(none, ~pred)
    assert ds.attrs["n_diverged"] == 2 * 64
    # a diverged run's step is where |x| first passed the bound: later for lr closer to 2/a
    steps = ds.diverged_step.median("seed").values
    assert steps[3] > steps[4] > 0


@pytest.mark.parametrize(
    "kw",
    [dict(a=()), dict(a=(1.0, -1.0)), dict(sigma=(-1.0,)), dict(sigma=(1.0, 2.0, 3.0), a=(1.0, 2.0)),
     dict(n_steps=100, log_every=7), dict(bound=0.0)],
)
def test_bad_config(kw):
    with pytest.raises(ValueError):
        QuadraticConfig(**kw)


@pytest.mark.parametrize(
    "args",
    [dict(lrs=[-0.1], a=1.0, sigma=1.0, x0=0.0), dict(lrs=[0.1], a=0.0, sigma=1.0, x0=0.0),
     dict(lrs=[0.1], a=1.0, sigma=-1.0, x0=0.0)],
)
def test_theory_bad_input(args):
    with pytest.raises(ValueError):
        th.expected_loss(**args)
