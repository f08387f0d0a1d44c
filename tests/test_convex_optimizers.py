"""The convex testbed's new axes (#35): streaming problems with exact population losses, the optimizers (optax) against
NumPy references, the schedule figures' bad input. References here import nothing from sims/ or theory/."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import schedule_specs
from sims.convex_sgd import ConvexConfig, f_star, make_run, optimizer, population_loss, sim, x_star
from sims.sweep import sweep


def ref_x_star(d, seed, dist):
    """The documented rule: dist times a unit vector from numpy.random.default_rng(data_seed).standard_normal(d)."""
    v = np.random.default_rng(seed).standard_normal(d)
    return dist * v / np.linalg.norm(v)


def mc_loss(problem, x, xs, noise, spectrum, n, seed):
    """Monte Carlo population loss with NumPy: (mean, SE) over n fresh samples."""
    rng = np.random.default_rng(seed)
    d = x.size
    a = rng.standard_normal((n, d))
    if problem == "stream_abs":
        a /= np.linalg.norm(a, axis=1, keepdims=True)
    else:
        a *= np.arange(1, d + 1) ** (-spectrum / 2)
    y = a @ xs + noise * rng.standard_normal(n)
    l = np.abs(a @ x - y) if problem == "stream_abs" else 0.5 * (a @ x - y) ** 2  # noqa: E741
    return l.mean(), l.std() / np.sqrt(n)


@pytest.mark.parametrize("problem", ["stream_abs", "stream_powerlaw"])
@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_population_loss_is_the_monte_carlo_mean(problem, noise):
    """The exact population loss (quadrature / closed form) agrees with a 200k-sample NumPy Monte Carlo mean within
    4 SE at three points (x*, a random point, 2 x*), and f(x*) is f* = sigma sqrt(2/pi) or sigma^2/2."""
    cfg = ConvexConfig(problem=problem, d=12, noise=noise, data_seed=3, dist=1.5)
    xs = ref_x_star(12, 3, 1.5)
    np.testing.assert_allclose(x_star(cfg), xs, rtol=1e-12)
    fs = noise * np.sqrt(2 / np.pi) if problem == "stream_abs" else noise**2 / 2
    assert f_star(cfg) == pytest.approx(fs, rel=1e-12, abs=1e-15)
    with jax.enable_x64(True):
        assert float(population_loss(jnp.asarray(xs), cfg)) == pytest.approx(fs, rel=1e-9, abs=1e-12)
        for i, x in enumerate([np.random.default_rng(9).standard_normal(12), 2 * xs]):
            m, se = mc_loss(problem, x, xs, noise, cfg.spectrum, 200_000, 100 + i)
            assert abs(float(population_loss(jnp.asarray(x), cfg)) - m) < 4 * se, (x, m, se)


def test_stream_abs_gradients_have_norm_one():
    """a uniform on the unit sphere: every stochastic gradient sign(r) a has norm G = 1, so the recorded mean squared
    gradient norm is 1 to float error (this is what makes the bound's G known)."""
    cfg = ConvexConfig(problem="stream_abs", d=7, n_steps=300, log_every=100, batch=1)
    ds = sweep(sim(cfg), {"lr": [0.01]}, fixed={"decay_fraction": 1.0}, seeds=4, key=jax.random.key(0),
               progress=False)
    np.testing.assert_allclose(ds.gsq_cum.isel(step=-1).values / 300, 1.0, rtol=1e-4)


def ref_sgd_second_moment(lam, xs, noise, lrs):
    """The exact E[f(x_t)] - f* of batch-1 SGD on streaming least squares with a ~ N(0, Lambda) (NumPy): the error
    v = x - x* has M = E[v v^T] with M <- M - eta (Lambda M + M Lambda) + eta^2 (2 Lambda M Lambda + tr(Lambda M)
    Lambda + sigma^2 Lambda) (Gaussian fourth moments); f - f* = tr(Lambda M) / 2."""
    L = np.diag(lam)
    M = np.outer(xs, xs)
    for e in lrs:
        M = M - e * (L @ M + M @ L) + e**2 * (2 * L @ M @ L + np.trace(L @ M) * L + noise**2 * L)
    return 0.5 * np.trace(L @ M)


def test_streaming_least_squares_sgd_matches_the_exact_second_moment_recursion():
    """Over 2048 seeds the simulated mean final suboptimality of SGD on stream_powerlaw lies within 4 SE of the
    exact expectation from the second-moment recursion (an independent NumPy reference)."""
    cfg = ConvexConfig(problem="stream_powerlaw", d=10, noise=0.5, spectrum=1.0, n_steps=200, log_every=100)
    lam = np.arange(1, 11, dtype=np.float64) ** -1.0
    lrs = 0.3 * (1 - np.arange(200) / 200)  # linear decay (the WSD family with decay_fraction 1)
    exact = ref_sgd_second_moment(lam, ref_x_star(10, 0, 1.0), 0.5, lrs)
    with jax.enable_x64(True):
        ds = sweep(sim(cfg), {"lr": [0.3]}, fixed={"decay_fraction": 1.0}, seeds=2048, key=jax.random.key(1),
                   progress=False)
    sub = ds.loss.isel(step=-1, lr=0).values - f_star(cfg)
    se = sub.std(ddof=1) / np.sqrt(sub.size)
    assert abs(sub.mean() - exact) < 4 * se, (sub.mean(), exact, se)
    assert exact < 0.5 * float(0.5 * np.sum(lam * ref_x_star(10, 0, 1.0) ** 2))  # it did learn


def ref_updates(kind, grads, lrs, beta=0.9, b1=0.9, b2=0.999, eps=1e-8):
    """Heavy ball (PyTorch form), Nesterov (PyTorch form) and Adam (Kingma & Ba, bias-corrected), in NumPy."""
    x, m, v = np.zeros_like(grads[0]), np.zeros_like(grads[0]), np.zeros_like(grads[0])
    out = []
    for t, (g, e) in enumerate(zip(grads, lrs), start=1):
        if kind == "sgd":
            x = x - e * g
        elif kind == "momentum":
            m = beta * m + g
            x = x - e * m
        elif kind == "nesterov":
            m = beta * m + g
            x = x - e * (g + beta * m)
        else:
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            x = x - e * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        out.append(x)
    return np.array(out)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
def test_each_optimizer_is_its_papers_update(kind):
    """optimizer(cfg, schedule) applied to a fixed gradient sequence equals the NumPy reference (float64, 1e-12)."""
    kw = {"momentum": 0.8} if kind in ("momentum", "nesterov") else ({"b1": 0.7, "b2": 0.95} if kind == "adam" else {})
    cfg = ConvexConfig(problem="stream_abs", optimizer=kind, **kw)
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((30, 5))
    lrs = 0.1 * (1 - np.arange(30) / 30)
    ref = ref_updates(kind, grads, lrs, beta=kw.get("momentum", 0.9), b1=kw.get("b1", 0.9), b2=kw.get("b2", 0.999))
    with jax.enable_x64(True):
        opt = optimizer(cfg, lambda t: 0.1 * (1 - jnp.asarray(t, jnp.float64) / 30))
        x = jnp.zeros(5)
        st = opt.init(x)
        xs = []
        for g in grads:
            u, st = opt.update(jnp.asarray(g), st, x)
            x = x + u
            xs.append(np.asarray(x))
    np.testing.assert_allclose(np.array(xs), ref, rtol=1e-10, atol=1e-12)


def test_streaming_runs_are_deterministic_and_do_not_recompile_for_a_new_lr():
    cfg = ConvexConfig(problem="stream_abs", optimizer="adam", n_steps=50, log_every=10)
    run = jax.jit(make_run(cfg))
    hp = {"lr": jnp.float32(0.01), "decay_fraction": jnp.float32(1.0)}
    a, b, c = run(jax.random.key(0), hp), run(jax.random.key(0), hp), run(jax.random.key(1), hp)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert float(a[0]["loss"]) != float(c[0]["loss"])
    run(jax.random.key(0), {**hp, "lr": jnp.float32(0.03)})
    assert run._cache_size() == 1


@pytest.mark.parametrize("kw, name", [
    ({"optimizer": "rmsprop"}, "optimizer"), ({"optimizer": "momentum", "momentum": 1.0}, "momentum"),
    ({"optimizer": "momentum", "momentum": -0.1}, "momentum"), ({"optimizer": "adam", "b1": 0.0}, "b1"),
    ({"optimizer": "adam", "b2": 1.0}, "b2"), ({"problem": "stream_powerlaw", "spectrum": 0.0}, "spectrum"),
    ({"problem": "stream_powerlaw", "spectrum": -1.0}, "spectrum"), ({"problem": "stream_hinge"}, "problem"),
    ({"momentum": 0.5}, "momentum"), ({"optimizer": "sgd", "b1": 0.5}, "b1"),
    ({"problem": "stream_abs", "spectrum": 2.0}, "spectrum"), ({"problem": "stream_abs", "n": 64}, "n"),
    ({"problem": "logistic", "dist": 2.0}, "dist"), ({"problem": "stream_abs", "d": 1}, "d"),
])
def test_bad_config_is_refused_naming_the_parameter(kw, name):
    """Out of range, unknown, or a knob that would not act for this problem / optimizer: a ValueError naming it."""
    with pytest.raises(ValueError, match=name):
        ConvexConfig(**kw)


def test_step_spec_and_arms_spec_in_the_convex_config():
    spec = ("arms", (("wsd", 90, 1.0, 0.0, "linear"), ("step", (30, 60), 0.1)))
    cfg = ConvexConfig(problem="stream_abs", n_steps=90, log_every=10, schedule=spec)
    f = schedule_specs.schedule_for(spec, {"lr": 2.0, "arm": 1}, 90)
    assert [float(f(t)) for t in (0, 29, 30, 59, 60, 89)] == pytest.approx([2.0, 2.0, 0.2, 0.2, 0.02, 0.02])
    assert dataclasses.replace(cfg, n_steps=100).schedule == spec
    with pytest.raises(ValueError, match="strictly increasing"):
        schedule_specs.from_spec(("step", (60, 30), 0.1))


@pytest.mark.parametrize("fig, bad, name", [
    ("rex_in_class", "budgets=0.25,0.25", "budgets"), ("rex_in_class", "optimizers=adagrad", "optimizers"),
    ("rex_in_class", "problems=abs", "problems"), ("wsd_in_class", "optimizers=sgd,sgd", "optimizers"),
    ("wsd_in_class", "problems=logistic", "problems"), ("wsd_in_class", "sim.momentum=1.5", "momentum"),
    ("rex_in_class", "budgets=0.001,1.0", "budgets"),
])
def test_the_in_class_figures_refuse_bad_input(fig, bad, name):
    from figures._core import load, overrides

    f = load(fig)
    with pytest.raises(ValueError, match=name):
        overrides(f.presets["quick"], bad)


def test_tune_arms_tunes_each_arm_and_refuses_mismatched_arms():
    """Each arm's tuned final mean is the lowest mean of every lr the tuner tried for it, its lr is bracketed
    (interior), and the starting grid is the sweep's (lr, arm, seed) finals; arms with different keys are refused."""
    from sims.convex_sgd import tune_arms

    cfg = ConvexConfig(problem="stream_powerlaw", d=20, noise=0.1, n_steps=100, log_every=50)
    arms = [{"decay_fraction": 1.0, "shape_id": 0}, {"decay_fraction": 0.2, "shape_id": 0}]
    r = tune_arms(cfg, arms, [0.05, 0.1, 0.2, 0.4], seeds=8, key=jax.random.key(0))
    assert r.grid.shape == (4, 2, 8) and r.n_div >= 0
    for a in range(2):
        assert r.tuned.interior[a]
        assert r.tuned.best[a].mean() == pytest.approx(np.nanmin(r.tuned.means[a]), rel=1e-12)
        assert np.all(r.tuned.best[a] >= 0)  # f(x_T) - f* with the exact f*
    with pytest.raises(ValueError, match="same keys"):
        tune_arms(cfg, [{"decay_fraction": 1.0}, {"shape_id": 0}], [0.1, 0.2, 0.4], seeds=2, key=jax.random.key(0))


def test_refine_power_one_is_the_authors_l1_closed_form():
    """theory.schedules.refine(power=1) equals the authors' find_closed_form_schedule with weights G^-1 (a plain loop
    here), rescaled to max 1; power=2 is the default; bad powers are refused."""
    from theory.schedules import refine

    g = np.random.default_rng(0).uniform(0.5, 2.0, 50)
    for p in (1.0, 2.0):
        w = g**-p
        ref = np.array([w[t] * w[t + 1:].sum() if t < 49 else 0.0 for t in range(50)])
        np.testing.assert_allclose(refine(g, smooth=False, power=p), ref / ref.max(), rtol=1e-12)
    np.testing.assert_array_equal(refine(g, smooth=False), refine(g, smooth=False, power=2.0))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="power"):
            refine(g, power=bad)


def test_l1_block_norms_and_the_rewarming_knobs():
    """block_l1_norms is the mean l1 gradient norm per block (on stream_abs, a on the unit sphere: E||a||_1 is
    sqrt(d) E|u| ~ sqrt(2 d / pi) for large d; here checked against NumPy samples within 5%); rewarming refuses a
    learning rate for an optimizer it does not run."""
    from figures._core import load, overrides
    from sims.convex_sgd import block_l1_norms

    cfg = ConvexConfig(problem="stream_abs", d=50, n_steps=400, log_every=100)
    ds = sweep(sim(cfg), {"lr": [0.01]}, fixed={"decay_fraction": 1.0}, seeds=4, key=jax.random.key(0),
               progress=False)
    b = block_l1_norms(ds.g1_cum.isel(lr=0).values, 100)
    a = np.random.default_rng(0).standard_normal((20000, 50))
    ref = np.abs(a / np.linalg.norm(a, axis=1, keepdims=True)).sum(1).mean()
    assert b.shape == (4, 4) and np.allclose(b, ref, rtol=0.05)
    fig = load("rewarming")
    with pytest.raises(ValueError, match="adam_lr"):
        overrides(fig.presets["quick"], "optimizers=sgd", "adam_lr=0.05")
    with pytest.raises(ValueError, match="optimizers"):
        overrides(fig.presets["quick"], "optimizers=rmsprop")
