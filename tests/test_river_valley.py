"""River valley (Wen et al. 2024): theory closed forms, simulation vs theory, protocols, bad input."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sims import schedule_specs
from sims import schedules as S
from sims.river_valley import RiverConfig, make_run
from sims.sweep import sweep
from theory import quadratic as tq
from theory import river_valley as tr


def test_gradient_flow_closed_form_vs_scipy():
    """Independent reference: solve_ivp of du/dtau = (c/s) e^{-u/s}; rtol 1e-8."""
    c, s, u0 = 2.0, 1.5, 0.3
    tau = np.linspace(0, 50, 11)
    sol = solve_ivp(lambda t, y: [(c / s) * np.exp(-y[0] / s)], (0, 50), [u0], t_eval=tau, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(tr.gradient_flow_river(tau, u0, c, s), sol.y[0], rtol=1e-8)


def test_gd_river_converges_to_flow_at_rate_eta():
    """GD on the river is gradient flow up to O(eta): halving eta halves the error at fixed tau
    (slope of log error vs log eta in [0.9, 1.1])."""
    errs = []
    for eta in (0.2, 0.1, 0.05, 0.025):
        n = int(round(20 / eta))
        u = tr.gd_river(np.full(n, eta))[-1]
        errs.append(abs(u - tr.gradient_flow_river(20.0)))
    slope = np.polyfit(np.log([0.2, 0.1, 0.05, 0.025]), np.log(errs), 1)[0]
    assert 0.9 <= slope <= 1.1, slope


def test_river_ode_kappa0_is_gradient_flow():
    lrs = np.full(500, 0.05)
    np.testing.assert_allclose(tr.river_ode(lrs, (4.0,), 1.0, 0.0), tr.gradient_flow_river(tr.cumulative_lr(lrs)),
                               rtol=1e-6)


def test_hill_excess_is_the_quadratic_theory():
    lrs = np.linspace(0.1, 0.01, 100)
    np.testing.assert_array_equal(tr.hill_excess(lrs, (3.0, 7.0), 0.5), tq.expected_loss(lrs, (3.0, 7.0), 0.5, 0.0))


def test_sim_decomposition_float64_wsd_1sqrt():
    """Straight river, sigma_u = 0: E f_t = l(u_t^GD) + exact hill excess, exactly. Float64, 3000
    seeds, 16 records: |z| <= 4."""
    with jax.enable_x64(True):
        cfg = RiverConfig(a=(8.0, 2.0), sigma_hill=(1.0, 0.5), n_steps=400, log_every=25)
        ds = sweep(make_run(cfg), {"lr": [0.15]}, fixed={"decay_fraction": 0.3, "shape_id": 2}, seeds=3000,
                   key=jax.random.key(2), steps=cfg.steps(), progress=False)
        lrs = S.as_array(S.family_schedule(S.family(0.15, 0.3, "1-sqrt"), 400), 400)
    pred = tr.predicted_loss(lrs, cfg.a, cfg.sigma_hill)[::25]
    L = ds.loss.isel(lr=0).values
    m, se = L.mean(0), L.std(0, ddof=1) / np.sqrt(L.shape[0])
    se[0] = 1e-12
    assert np.max(np.abs(m - pred) / se) < 4


def test_noise_drift_when_sharpness_varies():
    """kappa = 0.4: E u_T matches the river ODE with the noise drift (|z| <= 4) and NOT plain GD."""
    cfg = RiverConfig(a=(4.0,), kappa=0.4, n_steps=1500, log_every=50)
    ds = sweep(make_run(cfg), {"lr": [0.1]}, seeds=2000, key=jax.random.key(0), steps=cfg.steps(), progress=False)
    u = ds.u.isel(lr=0, step=-1).values.astype(float)
    m, se = u.mean(), u.std(ddof=1) / np.sqrt(u.size)
    lrs = np.full(1500, 0.1)
    assert abs(m - tr.river_ode(lrs, (4.0,), 1.0, 0.4)[-1]) < 4 * se
    assert abs(m - tr.gd_river(lrs)[-1]) > 20 * se


def test_wsd_s_protocol_matches_paper_config():
    """Wen et al.'s llama2_*_wsds.yaml: break points 11250, 12500, 23750, 26250, 48750; 53750 steps."""
    p = schedule_specs.wsd_s_protocol([12500, 25000, 50000], 0.1)
    assert [c for _, c in p.checkpoints] == [12500, 26250, 53750] and p.compute == 53750
    lr = S.as_array(schedule_specs.from_spec(p.runs[0]), p.compute)
    starts = [i for i in range(1, lr.size) if lr[i] < 1 and lr[i - 1] == 1]
    assert starts == [11251, 23751, 48751]  # lr(11250) = 1 exactly (progress 0), then decays
    assert schedule_specs.wsd_protocol([12500, 25000, 50000], 0.1).compute == 53750


def test_sim_deterministic_and_protocol_spec_runs():
    cfg = RiverConfig(n_steps=300, log_every=10, schedule=schedule_specs.wsd_s_protocol([100, 200], 0.2).runs[0])
    kw = dict(seeds=4, key=jax.random.key(9), steps=cfg.steps(), progress=False)
    a = sweep(make_run(cfg), {"lr": [0.1]}, **kw)
    b = sweep(make_run(cfg), {"lr": [0.1]}, **kw)
    np.testing.assert_array_equal(a.loss.values, b.loss.values)


def test_loss_dependent_noise_scales_hill_excess():
    """noise='loss': sigma^2 scales with l(u)/l(u0), so the late hill excess is far below the
    additive-noise one at the same lr (ratio ~ l(u_T)/l(u_0) << 1)."""
    out = {}
    for mode in ("additive", "loss"):
        cfg = RiverConfig(a=(10.0,), noise=mode, n_steps=1000, log_every=100)
        ds = sweep(make_run(cfg), {"lr": [0.1]}, seeds=500, key=jax.random.key(0), steps=cfg.steps(), progress=False)
        out[mode] = float(ds.hill_loss.isel(step=-1).mean())
    assert out["loss"] < 0.3 * out["additive"]


@pytest.mark.parametrize("kw", [dict(a=(-1.0,)), dict(a=()), dict(c=0.0), dict(s=-1.0), dict(noise="pink"),
                                dict(sigma_river=-1.0), dict(n_steps=100, log_every=7),
                                dict(schedule=("nope",)), dict(sigma_hill=(1.0, 2.0))])
def test_bad_config(kw):
    with pytest.raises(ValueError):
        RiverConfig(**kw)


@pytest.mark.parametrize("make", [lambda: schedule_specs.wsd_s_protocol([100, 100]),
                                  lambda: schedule_specs.wsd_protocol([]),
                                  lambda: schedule_specs.wsd_s_protocol([100, 200], decay_fraction=1.5),
                                  lambda: schedule_specs.cyclic_cosine_protocol([5, 3]),
                                  lambda: tr.river_loss(1.0, c=-1)])
def test_bad_protocol_input(make):
    with pytest.raises(ValueError):
        make()
