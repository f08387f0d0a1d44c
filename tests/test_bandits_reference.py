"""An independent NumPy reference for the dynamical-linear-bandit agents (DynLin-UCB at both lambdas,
LinUCBAgent, DLinUCBAgent, AR2) (Mussi, Metelli, Restelli 2023).

Written here from the paper's model and the authors' agent equations (marcomussi/DLB, agents.py and
scripts/main.py), per round, with its own constants (h, rho, Phi(A), the epoch lengths, beta_t); it imports
nothing from sims/ or theory/. The instances are the authors' config files' matrices, typed here.

Tests:
1. Fed the JAX run's exact random inputs (``sims.bandits.round_noise``: state and reward noise, the agents'
   uniforms, the first random arm), the reference chooses the same arm in every one of the first 1e4 rounds, and
   the pseudo-regrets agree to 1e-9 relative (float64; the only difference is the order of float operations,
   ~1e-16 per round, summed over 1e4 rounds).
2. Statistically, on independent noise: over 32 seeds each side's mean final pseudo-regret agrees within 3
   standard errors of the difference (a failure rate of ~0.3% per comparison if both are right).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from sims import bandits as sb
from sims.sweep import sweep
from tests.reference.bandits import ARMS, INSTANCES, REF_ALGS, TIE_RTOL, Ref, first_max  # noqa: F401


def _jax(name, alg, T, seeds, key, log_every):
    cfg = sb.BanditConfig(instance=name, algorithms=(alg,), horizon=T, log_every=log_every)
    ds = sweep(sb.make_run(cfg), None, seeds=seeds, key=key, steps=cfg.steps(), progress=False,
               dims={"h_hat": ("c",)})
    return cfg, ds


def test_reference_constants_match_the_papers_numbers():
    """Sanity of the reference itself: the numbers the authors' code prints (h, rho, the epoch count)."""
    s = Ref("synthetic", 1_000_000)
    np.testing.assert_allclose(s.h, [0.5625, 0.5, 1 / 9], rtol=1e-12)
    assert len(s.ends) == 137_206
    r = Ref("real", 1000)
    assert r.rho == pytest.approx(0.667, abs=1e-3) and r.Phi == pytest.approx(2.78, abs=0.01)
    assert ARMS.shape == (6, 3) and set(map(tuple, ARMS)) == {(1, .5, 0), (1, 0, .5), (.5, 1, 0), (0, 1, .5),
                                                              (.5, 0, 1), (0, .5, 1)}


@pytest.mark.parametrize("name", ["synthetic", "real"])
@pytest.mark.parametrize("alg", REF_ALGS)
def test_same_actions_as_the_reference_for_1e4_rounds(name, alg):
    T = 10_000
    key = jax.random.key(11)
    with jax.enable_x64(True):
        cfg, ds = _jax(name, alg, T, 1, key, 1)
        rn = sb.round_noise(cfg, jax.random.fold_in(key, 0))
    jax_arms = ds.arm_played.values[0, 1:]  # record t+1 is taken after round t
    ref = Ref(name, T)
    played, regret = ref.run(alg, rn["x"], rn["y"], rn["u"], rn["a0"])
    mism = np.flatnonzero(played != jax_arms)
    assert mism.size == 0, f"first mismatch at round {mism[:3]}"
    assert float(ds.pseudo_regret.values[0, -1]) == pytest.approx(regret, rel=1e-9)


# ~10 s of CPU each under make test's compile-speed build (~30 s at the default build)
@pytest.mark.parametrize("name", ["synthetic", "real"])
def test_mean_regret_within_3_se_of_the_reference_over_32_seeds(name):
    """Independent noise on each side (the reference draws its own with NumPy): mean final pseudo-regret at
    T = 1000 within 3 SE of the difference, for every reference algorithm."""
    T, S = 1000, 32
    ref = Ref(name, T)
    rng = np.random.default_rng(5)
    for alg in REF_ALGS:
        r = np.array([ref.run(alg, rng.standard_normal((T, 3)), rng.standard_normal(T), rng.uniform(size=T),
                              int(rng.integers(6)))[1] for _ in range(S)])
        with jax.enable_x64(True):
            _, ds = _jax(name, alg, T, S, jax.random.key(21), 100)
        j = ds.pseudo_regret.isel(step=-1).values
        se = math.sqrt(r.var(ddof=1) / S + j.var(ddof=1) / S)
        assert abs(j.mean() - r.mean()) <= 3 * max(se, 1e-9 * max(1.0, abs(r.mean()))), (alg, j.mean(), r.mean(), se)


def test_the_reference_can_fail():
    """Negative control: the same comparison with the reward-noise variance in the radius (3 sigma^2, the
    'exact' option) changes DynLin-UCB's choices within 1e4 rounds, so test 1 detects a wrong radius."""
    T = 10_000
    key = jax.random.key(11)
    with jax.enable_x64(True):
        cfg = sb.BanditConfig(instance="synthetic", algorithms=("dynlinucblog",), horizon=T, log_every=1,
                              noise_variance="exact")
        ds = sweep(sb.make_run(cfg), None, seeds=1, key=key, steps=cfg.steps(), progress=False,
                   dims={"h_hat": ("c",)})
        rn = sb.round_noise(cfg, jax.random.fold_in(key, 0))
    played, _ = Ref("synthetic", T).run("dynlinucblog", rn["x"], rn["y"], rn["u"], rn["a0"])
    assert np.any(played != ds.arm_played.values[0, 1:])
