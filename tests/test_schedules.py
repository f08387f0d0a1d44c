"""Schedules: optax agreement, family == constructors, properties (hypothesis), bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sims import schedules as S

T = 1000


def _arr(s, n=T + 5):
    return np.asarray(jax.vmap(s)(jnp.arange(n)), dtype=np.float64)


def test_cosine_is_optax_cosine():
    np.testing.assert_allclose(_arr(S.cosine(0.3, T, 0.1)), _arr(optax.cosine_decay_schedule(0.3, T, 0.1)), rtol=1e-6)


@pytest.mark.parametrize("shape", S.DECAY_SHAPES)
@pytest.mark.parametrize("frac", [0.0, 0.1, 0.5, 1.0])
def test_family_equals_wsd_constructor(shape, frac):
    """The vmappable family and the optax-built WSD are the same schedule (float32 rounding)."""
    m = 0.1
    a = _arr(S.wsd(0.2, T, decay_fraction=frac, decay_shape=shape, final_ratio=m))
    b = _arr(S.family_schedule(S.family(0.2, frac, shape, m), T))
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)


def test_family_is_vmappable_over_shape_and_fraction():
    fams = S.Family(jnp.full(3, 0.1), jnp.array([0.0, 1.0, 0.2]), jnp.array([0, 1, 2]), jnp.zeros(3), jnp.zeros(3))
    lrs = jax.vmap(lambda f: jax.vmap(S.family_schedule(f, T))(jnp.arange(T + 1)))(fams)
    np.testing.assert_allclose(lrs[0], 0.1)  # constant
    np.testing.assert_allclose(lrs[1], _arr(optax.cosine_decay_schedule(0.1, T), T + 1), rtol=1e-5, atol=1e-8)
    assert float(lrs[2, 799]) == pytest.approx(0.1) and float(lrs[2, T]) == pytest.approx(0.0, abs=1e-7)


@settings(max_examples=40, deadline=None)
@given(peak=st.floats(1e-4, 10), frac=st.floats(0, 1), m=st.floats(0.01, 1), shape=st.sampled_from(S.DECAY_SHAPES),
       warm=st.integers(0, 50))
@example(peak=1.0, frac=0.004481105416379928, m=0.03125, shape="linear", warm=0)  # a 4.5-step decay (float32 bound)
def test_family_properties(peak, frac, m, shape, warm):
    """After warmup the lr is non-increasing, starts at the peak, stays in [m*peak, peak]
    (exponential: floor max(m, 1e-3)), and ends at m*peak when there is a decay phase."""
    lr = _arr(S.family_schedule(S.family(peak, frac, shape, m, warm), T), T + 1)
    post = lr[warm:]
    assert np.all(np.diff(post) <= 1e-6 * peak)
    assert np.all(lr <= peak * (1 + 1e-6))
    assert np.all(post >= m * peak * (1 - 1e-5))
    if frac * T >= 1 and T * (1 - frac) >= warm:
        # float32: the decay's start T(1 - frac) is rounded by up to ulp(T)/2, which moves the progress at step T
        # by ulp(T)/(frac T); for a decay of a few steps this exceeds the 1e-4 relative term (hypothesis found
        # frac T = 4.5 steps, m = 0.031: error 5.7e-6 = 1.8e-4 relative, within the bound below)
        ulp = float(np.spacing(np.float32(T)))
        assert abs(lr[T] - m * peak) <= 1e-4 * m * peak + 2 * peak * ulp / (frac * T)


def test_cyclic_cosine_restarts():
    lr = _arr(S.cyclic_cosine(1.0, [100, 300], 0.1), 300)
    assert lr[0] == pytest.approx(1.0) and lr[99] == pytest.approx(0.1, abs=1e-3)
    assert lr[100] == pytest.approx(1.0) and lr[299] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize(
    "make, msg",
    [
        (lambda: S.constant(-0.1), "peak_value"),
        (lambda: S.constant(0.0), "peak_value"),
        (lambda: S.wsd(0.1, T, decay_fraction=1.5), "decay_fraction"),
        (lambda: S.wsd(0.1, T, decay_fraction=-0.1), "decay_fraction"),
        (lambda: S.wsd(0.1, T, warmup_steps=950, decay_fraction=0.1), "warmup_steps"),
        (lambda: S.wsd(0.1, 0), "total_steps"),
        (lambda: S.wsd(0.1, T, decay_shape="square"), "decay_shape"),
        (lambda: S.wsd(0.1, T, decay_shape="inverse", final_ratio=0.0), "final_ratio"),
        (lambda: S.cosine(0.1, T, final_ratio=2.0), "final_ratio"),
        (lambda: S.cyclic_cosine(0.1, [100, 50]), "budgets"),
        (lambda: S.cyclic_cosine(0.1, []), "budgets"),
        (lambda: S.family(0.1, decay_fraction=2.0), "decay_fraction"),
        (lambda: S.family_from_hparams({}, 10), "lr"),
    ],
)
def test_bad_input(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def _rewarm_reference(lr, m, p, W, switch, total):
    """NumPy, typed from the formula of Gupta et al.'s protocol: cosine lr -> m lr over [0, switch); then a linear
    warmup m lr -> p lr over W steps and a cosine p lr -> m lr until total."""
    t = np.arange(total, dtype=np.float64)
    first = m + (1 - m) * 0.5 * (1 + np.cos(np.pi * np.minimum(t, switch) / switch))
    s = t - switch
    warm = np.clip(s / W, 0, 1) if W > 0 else np.ones_like(t)
    cos = 0.5 * (1 + np.cos(np.pi * np.clip((s - W) / (total - switch - W), 0, 1)))
    return lr * np.where(t < switch, first, m + (p - m) * warm * cos)


from sims import schedule_specs as ss  # noqa: E402


@pytest.mark.parametrize("p, W", [(1.0, 0.0), (0.5, 20.0), (0.1, 0.0), (2.0, 50.0)])
def test_rewarm_family_matches_the_reference_and_vmaps(p, W):
    hp = {"lr": 0.3, "final_ratio": 0.1, "rewarm_peak": p, "rewarm_warmup": W}
    got = S.as_array(ss.rewarm_family(hp, 100, 300), 300)
    np.testing.assert_allclose(got, _rewarm_reference(0.3, 0.1, p, W, 100, 300), rtol=1e-12, atol=1e-15)
    assert 0.03 <= got[99] < 0.0301 and 0.03 <= got[-1] < 0.0301  # at the floor at the switch and at the end
    assert abs(got[100:].max() - max(p, 0.1) * 0.3) < 1e-12  # the rewarming peak is reached
    # arrays of arms in one program: vmapped over (peak, warmup)
    arms = {"lr": jnp.full(3, 0.3), "final_ratio": jnp.full(3, 0.1), "rewarm_peak": jnp.array([0.1, 0.5, 1.0]),
            "rewarm_warmup": jnp.array([0.0, 20.0, 50.0])}
    v = jax.vmap(lambda h: ss.rewarm_family(h, 100, 300)(jnp.arange(300)))(arms)
    np.testing.assert_allclose(np.asarray(v)[2], _rewarm_reference(0.3, 0.1, 1.0, 50.0, 100, 300), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(v)[0, 100:], 0.03, rtol=1e-5)  # peak = floor: continue at the floor


def test_rewarm_family_refuses_a_switch_after_the_end():
    with pytest.raises(ValueError, match="total_steps"):
        ss.rewarm_family({"lr": 1.0, "rewarm_peak": 1.0}, 300, 300)


def test_an_arms_spec_selects_each_arms_schedule_by_the_arm_hparam():
    """("arms", specs) with hp["arm"] = i is specs[i] (times lr), at every step and under vmap over the arm; with
    hp["warmup_steps"] a linear warmup multiplies it."""
    from sims import schedule_specs as ss

    specs = (("wsd", 100, 0.2, 0.1, "linear"), ("cosine", 60, 0.1), ("constant",), ("wsd_s", (40, 80), 0.1, 0.1,
                                                                                     "linear"))
    t = jnp.arange(120)
    for i, sp in enumerate(specs):
        got = ss.schedule_for(("arms", specs), {"lr": 0.5, "arm": i}, 120)(t)
        np.testing.assert_allclose(got, 0.5 * np.asarray(ss.from_spec(sp)(t)), rtol=1e-6)
    v = jax.vmap(lambda a: ss.schedule_for(("arms", specs), {"lr": 0.5, "arm": a}, 120)(t))(jnp.arange(4))
    np.testing.assert_allclose(v[1], 0.5 * np.asarray(ss.from_spec(specs[1])(t)), rtol=1e-6)
    w = ss.schedule_for(("constant",), {"lr": 2.0, "warmup_steps": 10.0}, 120)(t)
    np.testing.assert_allclose(w[:12], 2.0 * np.minimum(1, np.arange(12) / 10), rtol=1e-6)
    with pytest.raises(ValueError, match="arms spec"):
        ss.check_spec(("arms", ()))
    with pytest.raises(ValueError, match="unknown schedule spec"):
        ss.check_spec(("arms", (("nope",),)))
    with pytest.raises(ValueError, match="selects by hp"):
        ss.from_spec(("arms", specs))
