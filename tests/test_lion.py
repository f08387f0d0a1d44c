"""Lion-K (Chen et al. 2024): optax parity, symbol mapping, phase-1 bound under adversarial gradients,
Lyapunov monotonicity, KKT limits against SciPy, ODE order, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.lion import LionConfig, averaged_limit, lion_kappa, make_run, ode_solve, scale_by_lion_kappa
from sims.sweep import sweep
from theory import lion as tl


def _run(opt, params, grads):
    s = opt.init(params)
    for g in grads:
        u, s = opt.update(g, s, params)
        params = optax.apply_updates(params, u)
    return params


def test_l1_matches_optax_lion_bit_for_bit():
    """kappa = l1 is optax.lion exactly (pytree params, a schedule, weight decay), 100 steps."""
    p = {"w": jnp.linspace(-2, 2, 7), "b": jnp.array([[0.3, -0.2]])}
    k = jax.random.key(0)
    grads = [jax.tree.map(lambda v, i=i: jax.random.normal(jax.random.fold_in(k, i), v.shape), p) for i in range(100)]
    sched = optax.cosine_decay_schedule(3e-2, 100)
    a = _run(optax.lion(sched, b1=0.8, b2=0.95, weight_decay=0.7), p, grads)
    b = _run(lion_kappa(sched, "l1", b1=0.8, b2=0.95, weight_decay=0.7), p, grads)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_symbol_mapping_one_step_by_hand():
    """Paper: x1 = x0 + eps (dK(b1 m0 - (1-b1) g) - lam x0) with m0 = 0, i.e. optax (lr=eps, wd=lam):
    x1 = x0 - eps (sign(g) + lam x0). The weight decay is multiplied by the lr."""
    x0, g, eps, lam = jnp.array([2.0, -0.5, 0.1]), jnp.array([0.3, -1.0, 0.0]), 0.1, 0.5
    x1 = _run(lion_kappa(eps, "l1", weight_decay=lam), x0, [g])
    np.testing.assert_allclose(x1, x0 + eps * (jnp.sign(-(1 - 0.9) * g) - lam * x0), rtol=1e-6)
    np.testing.assert_allclose(x1, x0 - eps * (jnp.sign(g) + lam * x0), rtol=1e-6)


def test_box_radius_is_one_over_weight_decay():
    """Stationary under sign pressure +1: x -> 1/lam (not 1/(eps*lam)). Constant gradient -1."""
    x = _run(lion_kappa(0.05, "l1", weight_decay=4.0), jnp.zeros(1), [jnp.array([-1.0])] * 2000)
    assert float(x[0]) == pytest.approx(1 / 4.0, rel=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    x0=st.lists(st.floats(-50, 50), min_size=3, max_size=3),
    grads=st.lists(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), min_size=1, max_size=60),
    eps=st.floats(1e-3, 0.2),
    lam=st.floats(0.1, 5.0),
    kappa=st.sampled_from(["l1", "huber", "logcosh", "l2", "relativistic"]),
)
def test_phase1_bound_adversarial_gradients(x0, grads, eps, lam, kappa):
    """Whatever the gradients (hypothesis-generated), for eps*lam <= 1 and |dK| <= 1 per coordinate:
    excess_t <= (1 - eps lam)^t excess_0 per coordinate, and a coordinate inside stays inside
    (tolerance: float64 rounding, 1e-9 relative)."""
    if eps * lam > 1:
        eps = 1 / lam
    with jax.enable_x64(True):
        opt = lion_kappa(eps, kappa, weight_decay=lam)
        x = jnp.asarray(x0, jnp.float64)
        s = opt.init(x)
        ex0 = np.maximum(np.abs(np.asarray(x0)) - 1 / lam, 0)
        inside = np.abs(np.asarray(x0)) <= 1 / lam
        for t, g in enumerate(grads, start=1):
            u, s = opt.update(jnp.asarray(g, jnp.float64), s, x)
            x = optax.apply_updates(x, u)
            ex = np.maximum(np.abs(np.asarray(x)) - 1 / lam, 0)
            assert np.all(ex <= (1 - eps * lam) ** t * ex0 + 1e-9 * (1 + ex0)), (t, ex)
            assert np.all(ex[inside] <= 1e-9)
            inside |= ex <= 0


def test_no_weight_decay_no_box():
    """Negative control: lam = 0 and a constant push: x grows without bound (linearly)."""
    x = _run(lion_kappa(0.1, "l1", weight_decay=0.0), jnp.zeros(1), [jnp.array([-1.0])] * 500)
    assert float(x[0]) == pytest.approx(50.0, rel=1e-5)


def test_kkt_limit_quadratic_vs_lbfgsb():
    """Box-constrained quadratic (d=4): time-averaged Lion limit within 2 eps of L-BFGS-B, float64."""
    f, _ = tl.problem("quadratic", 4)
    ref = tl.solve_composite(f, tl.get_kappa("l1"), 1.0, 4)
    with jax.enable_x64(True):
        xbar, _ = averaged_limit(LionConfig(problem="quadratic", d=4, n_steps=20000, log_every=200, x0_scale=3.0),
                                 3e-3, 1.0, key=jax.random.key(0), seeds=2)
    assert np.abs(xbar - ref).max() <= 2 * 3e-3


def test_l2_kappa_solves_ball_problem():
    """kappa = l2: the limit is the minimizer over the ball ||x||_2 <= 1/lam (SciPy SLSQP), smooth, no chatter."""
    f, _ = tl.problem("quadratic", 4)
    ref = tl.solve_composite(f, tl.get_kappa("l2"), 1.0, 4)
    assert np.linalg.norm(ref) == pytest.approx(1.0, abs=1e-6)  # the constraint is active
    with jax.enable_x64(True):
        xbar, _ = averaged_limit(LionConfig(problem="quadratic", d=4, kappa="l2", n_steps=20000, log_every=200,
                                            x0_scale=1.0), 3e-3, 1.0, key=jax.random.key(0))
    assert np.abs(xbar - ref).max() < 1e-5


def test_lyapunov_monotone_smooth_ode_and_violation():
    """Quadratic K, Heun: H non-increasing to 1e-12 for eps*gamma = 0.5; rises by > 0.1 for eps*gamma = 3."""
    with jax.enable_x64(True):
        f, _ = tl.problem("quadratic", 2)
        K = tl.get_kappa("quadratic")
        for look, ok in ((0.5, True), (3.0, False)):
            tr = ode_solve(f, "quadratic", jnp.array([0.2, -0.3]), jnp.zeros(2), alpha=1.0, gamma=1.0, look=look,
                           lam=1.0, dt=2e-3, n_steps=5000)
            H = np.array([tl.lyapunov(float(f(x)), x, m, K, 1.0, 1.0, 1.0, look)
                          for x, m in zip(np.asarray(tr.x), np.asarray(tr.m))])
            rise = np.clip(np.diff(H), 0, None).sum()
            assert (rise <= 1e-12) if ok else (rise > 0.1)


@pytest.mark.parametrize("scheme, order", [("euler", 1), ("heun", 2)])
def test_ode_scheme_order(scheme, order):
    """Global error at t=2 vs a dt=1e-4 Heun reference, smooth K (logcosh): log-log slope within 0.3
    of the scheme's order (diffrax's test_ode_order style)."""
    with jax.enable_x64(True):
        f, _ = tl.problem("quadratic", 2)
        kw = dict(alpha=1.0, gamma=1.0, look=0.3, lam=1.0)
        x0, m0 = jnp.array([0.4, -0.2]), jnp.zeros(2)
        ref = ode_solve(f, "logcosh", x0, m0, dt=1e-4, n_steps=20000, scheme="heun", record_every=20000, **kw).x[-1]
        dts = np.array([0.04, 0.02, 0.01, 0.005])
        errs = [float(jnp.abs(ode_solve(f, "logcosh", x0, m0, dt=dt, n_steps=int(round(2 / dt)), scheme=scheme,
                                        record_every=int(round(2 / dt)), **kw).x[-1] - ref).max()) for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.3, slope


def test_sweep_determinism_and_jitted_step_no_recompile():
    cfg = LionConfig(problem="logistic", d=4, n_steps=200, log_every=20, x0_scale=2.0, grad_noise=0.5)
    kw = dict(fixed={"weight_decay": 1.0}, seeds=3, key=jax.random.key(1), steps=cfg.steps(), progress=False)
    a = sweep(make_run(cfg), {"lr": [1e-2, 3e-2]}, **kw)
    b = sweep(make_run(cfg), {"lr": [1e-2, 3e-2]}, **kw)
    np.testing.assert_array_equal(a.x.values, b.x.values)
    opt = scale_by_lion_kappa("huber")
    step = jax.jit(opt.update)
    s = opt.init(jnp.zeros(3))
    for i in range(3):
        _, s = step(jnp.full(3, float(i)), s)
    assert step._cache_size() == 1


@pytest.mark.parametrize("make, msg", [
    (lambda: lion_kappa(1e-2, weight_decay=-0.1), "lambda"),
    (lambda: lion_kappa(0.0), "epsilon"),
    (lambda: lion_kappa(-1e-2), "epsilon"),
    (lambda: lion_kappa(1e-2, b1=1.0), "b1"),
    (lambda: lion_kappa(1e-2, b2=-0.1), "b2"),
    (lambda: lion_kappa(1e-2, kappa="linf"), "kappa"),
    (lambda: LionConfig(kappa="nope"), "kappa"),
    (lambda: LionConfig(problem="nope"), "problem"),
    (lambda: tl.box_excess_bound([2.0], 1.0, 2.0, 1), "lr \\* lam"),
    (lambda: ode_solve(lambda x, xp: x @ x, "l1", jnp.zeros(2), jnp.zeros(2), alpha=1, gamma=1, look=0, lam=1,
                       dt=0.1, n_steps=10, scheme="rk9"), "scheme"),
])
def test_bad_input(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()
