"""Every schedule quantity in float64, whatever ``jax_enable_x64`` is.

Prediction: the tuned last-iterate bound 2 sqrt(t1 (t2 + t3)) (Defazio et al., see theory/schedules.py) of
linear decay, cosine, WSD with a 20% cooldown (linear and 1-sqrt) and a constant lr is finite for every horizon
T = 1e2 ... 1e5 and equals an independent float64 NumPy evaluation written here (closed-form schedule values, the
bound's suffix sums by an explicit reverse loop; nothing imported from theory/ for it).

Tolerance: relative error <= 1e-9. Both sides are float64; the sums over T <= 1e5 terms carry a rounding error
of order T * eps ~ 1e-11 relative, and the schedules' values differ by a few ulps (cos, sqrt). A float32 path
anywhere breaks this by 1e-7 or more (the cosine's last lrs round to 0 at T >= 2e4 and its bound becomes inf).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from sims import schedule_specs
from sims import schedules as S
from theory import schedules as ts

HORIZONS = (100, 1_000, 10_000, 100_000)


from tests.reference.schedules import ref_schedule, ref_tuned_bound  # noqa: E402


# ---- the suite's schedules ----------------------------------------------------------------------
def suite_schedule(name: str, T: int):
    return {
        "constant": S.constant(1.0),
        "linear": S.linear_decay(1.0, T),
        "cosine": S.cosine(1.0, T),
        "wsd20_linear": S.wsd(1.0, T, decay_fraction=0.2, decay_shape="linear"),
        "wsd20_1-sqrt": S.wsd(1.0, T, decay_fraction=0.2, decay_shape="1-sqrt"),
    }[name]


NAMES = ("linear", "cosine", "wsd20_linear", "wsd20_1-sqrt", "constant")


@pytest.fixture(params=[False, True], ids=["x64_off", "x64_on"])
def x64(request):
    """The result must not depend on the caller's jax_enable_x64."""
    with jax.enable_x64(request.param):
        yield request.param


@pytest.mark.parametrize("name", NAMES)
def test_tuned_bound_float64_against_numpy_reference(name, x64):
    for T in HORIZONS:
        lrs = S.as_array(suite_schedule(name, T), T)
        assert lrs.dtype == np.float64
        np.testing.assert_allclose(lrs, ref_schedule(name, T), rtol=1e-12, atol=1e-15)
        bound, c_star = ts.tuned_bound(lrs)
        assert np.isfinite(bound) and np.isfinite(c_star), (name, T)
        ref = ref_tuned_bound(ref_schedule(name, T))
        assert bound == pytest.approx(ref, rel=1e-9), (name, T)


@pytest.mark.parametrize("name,fraction,shape", [("linear", 1.0, "linear"), ("cosine", 1.0, "cosine"),
                                                 ("constant", 0.0, "linear"), ("wsd20_linear", 0.2, "linear"),
                                                 ("wsd20_1-sqrt", 0.2, "1-sqrt")])
def test_family_schedules_used_by_the_figures_are_float64(name, fraction, shape, x64):
    """The array-parametrized family (what the figures feed to theory/) gives the same bound. WSD's float
    decay start (1 - 0.2) T differs from the integer one by ~1 ulp; 1-sqrt turns that into sqrt(ulp) ~ 1e-8
    at one step, a ~1e-8 / T change of the bound: the tolerance 1e-9 still holds."""
    for T in HORIZONS:
        lrs = S.as_array(S.family_schedule(S.family(1.0, fraction, shape), T), T)
        assert lrs.dtype == np.float64
        assert ts.tuned_bound(lrs)[0] == pytest.approx(ref_tuned_bound(ref_schedule(name, T)), rel=1e-9), (name, T)


def test_float32_would_fail_this_test():
    """Negative control: the same cosine in float32 (the old as_array) loses its last lrs at T = 1e5, so the
    reference comparison above is able to fail."""
    T = 100_000
    lrs32 = np.asarray(0.5 * (1 + np.cos(np.float32(math.pi) * np.arange(T, dtype=np.float32) / np.float32(T))),
                       dtype=np.float32)
    assert lrs32[-1] == 0.0
    with np.errstate(divide="ignore"):
        t1, t2, t3 = (np.asarray(v) for v in _float32_terms(lrs32))
    ref = ref_tuned_bound(ref_schedule("cosine", T))
    assert not np.isfinite(t3) or abs(2 * np.sqrt(t1 * (t2 + t3)) / ref - 1) > 1e-9


def _float32_terms(eta):
    R = np.cumsum(eta[::-1])[::-1]
    Q = np.cumsum((eta * eta)[::-1])[::-1]
    S_ = R[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t3 = 0.5 * np.sum(eta[:-1] * Q[:-1] / (R[1:] * R[:-1]))
    return 1 / (2 * S_), Q[0] / (2 * S_), t3


def test_rewarm_refined_rex_sampled_are_float64(x64):
    """Every other path from a schedule into theory/ returns float64 values equal to their closed forms."""
    rw = S.as_array(S.rewarm(S.cosine(1.0, 100_000), 50_000, 1.0, 100_010, 0, 0.0), 100_010)
    assert rw.dtype == np.float64 and rw[49_999] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.49999)), rel=1e-12)
    rx = S.as_array(S.rex(1.0, 100_000), 100_000)
    z = np.arange(100_000) / 100_000
    # 1 - z near the end is ~1e-5: its float64 rounding is eps / 1e-5 ~ 2e-11 relative (a float32 path: 1e-2)
    np.testing.assert_allclose(rx, ts.rex_profile(z), rtol=1e-10)
    np.testing.assert_allclose(rx, (1 - z) / (0.5 + 0.5 * (1 - z)), rtol=1e-10)
    assert rx[-1] > 0
    w = ts.refine(np.full(2000, 3.0), smooth=False)
    tab = S.as_array(S.table(w), 2000)
    assert tab.dtype == np.float64 and np.array_equal(tab, w)  # exact: no float32 round trip
    sm = S.as_array(S.sampled(S.linear_decay(1.0, 100_000), 10), 100_000)
    assert sm[-1] == pytest.approx(1 - 99_990 / 100_000, rel=1e-12)


@pytest.mark.parametrize("x64_on", [False, True])
def test_rewarm_builds_inside_jit(x64_on):
    """A sim builds its schedule from a static spec while being traced (sims.convex_sgd / river_valley): the
    rewarm's float64 start lr must not need a concrete value from the trace. Same values as outside jit."""
    spec = ("rewarm", ("cosine", 100, 0.0), 50, 2.0, 200, 10, 0.0)
    with jax.enable_x64(x64_on):
        inside = np.asarray(jax.jit(lambda t: schedule_specs.from_spec(spec)(t))(jax.numpy.arange(200)))
    # inside jit the sim's own precision applies: float32 without x64 (absolute rounding <= a few eps32 x the
    # peak 2, ~1e-6), float64 with it (exact to ~1e-15)
    tol = 1e-12 if x64_on else 1e-6
    np.testing.assert_allclose(inside, S.as_array(schedule_specs.from_spec(spec), 200), rtol=tol, atol=tol)


def test_float32_input_to_theory_is_upcast():
    """theory.schedules computes in float64 even from a float32 array."""
    lrs = S.as_array(S.linear_decay(1.0, 1000), 1000)
    b64 = ts.tuned_bound(lrs)[0]
    b32 = ts.tuned_bound(lrs.astype(np.float32))[0]
    assert np.asarray(b32).dtype == np.float64
    assert b32 == pytest.approx(b64, rel=1e-6)  # only the inputs' float32 rounding remains


@pytest.mark.parametrize("call,param", [
    (lambda: S.cosine(1.0, 0), "total_steps"),
    (lambda: S.linear_decay(1.0, -5), "total_steps"),
    (lambda: S.wsd(1.0, 100, decay_fraction=1.5), "decay_fraction"),
    (lambda: S.wsd(1.0, 100, decay_fraction=-0.1), "decay_fraction"),
    (lambda: S.wsd(-1.0, 100), "peak_value"),
    (lambda: S.constant(float("nan")), "peak_value"),
    (lambda: S.constant(float("inf")), "peak_value"),
    (lambda: S.cosine(1.0, 100, final_ratio=float("nan")), "final_ratio"),
    (lambda: S.family(float("inf"), 0.2), "peak_value"),
    (lambda: S.family(0.1, float("nan")), "decay_fraction"),
    (lambda: S.as_array(S.constant(1.0), 0), "n_steps"),
    (lambda: S.table([1.0, float("nan")]), "values"),
    (lambda: ts.tuned_bound(np.array([1.0, np.nan])), "lrs"),
    (lambda: ts.tuned_bound(np.array([1.0, -0.5])), "lrs"),
    (lambda: ts.tuned_bound(np.zeros(5)), "lrs"),
    (lambda: ts.tuned_bound(np.ones(5), D=-1.0), "D"),
    (lambda: ts.tuned_bound(np.ones(5), G=float("inf")), "G"),
    (lambda: ts.constant_bound_terms(0, 0.1), "T"),
    (lambda: ts.constant_bound_terms(10, -0.1), "c"),
])
def test_bad_input_names_the_parameter(call, param):
    with pytest.raises(ValueError, match=param):
        call()
