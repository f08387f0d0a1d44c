"""Every registered figure: its claims at a tiny size in the fast suite, and at its quick preset (slow).

The tiny sizes run each figure's whole path (config -> compute -> claims -> plot -> files) in seconds, so a refactor
that breaks a claim's computation fails `make test`. At a tiny size some statistical claims cannot hold (too few
seeds or steps for the effect, or a trained model that has not yet formed a sink): those are listed per figure in
``NOT_AT_TINY`` with the reason; every other claim must pass. The quick-preset claims (`make figures`, and the
slow test below) are the science; the tiny runs guard the code.
"""

from __future__ import annotations

import pytest

from figures import _core

# --set overrides that make each figure run in seconds (quadratic_sgd: the CLI test runs it at 400 seeds x 400
# steps and asserts every claim passes; gla_stability and lightnet_maps: tests/test_linear_attention.py)
TINY: dict[str, list[str]] = {
    "river_landscape": ["seeds=200", "sim.n_steps=400", "sim.log_every=20"],
    "river_schedules": ["seeds=200", "sim.n_steps=400", "sim.log_every=20"],
    "wsd_decay": ["seeds=200", "sim.n_steps=400", "sim.log_every=20", "lrs=0.05,0.15", "fractions=0.1,0.5,1.0"],
    "wsd_s_budgets": ["seeds=200", "budgets=500,1000"],
    "bigram_lm_river": ["seeds=4", "sim.n_steps=800", "sim.log_every=100", "lanczos_k=32"],
    "lion_box": ["seeds=16", "kkt.n_steps=1200", "box.n_steps=1200", "lambdas=1.0"],
    "lion_lyapunov": ["lrs=1e-2,1e-3", "n_steps=400", "ode_time=2.0"],
    "lion_kkt": ["lrs=3e-2,3e-3", "ode_time=10.0", "seeds=2", "kappa_lr=3e-3"],
    "schedule_gallery": [],
    "schedule_bound_vs_sim": ["seeds=16", "sim.n_steps=400", "half_octaves=3", "problems=abs",
                              "bound_horizons=100,1000"],
    "refined_schedule": ["seeds=16", "sim.n_steps=400", "problems=abs", "data_seeds=0", "half_octaves=2"],
    "rex_budgets": ["seeds=16", "full_steps=400", "budgets=0.25,1.0", "problems=abs", "half_octaves=3"],
    "rewarming": ["seeds=4", "sim.n_steps=1200", "sim.shift_step=600"],
    "bandit_regret": ["seeds=2", "horizon=5000", "n_records=10"],
    "bandit_rho": ["seeds=2", "horizon=2000", "rhos=0.5,0.9", "misspec_factors=0.5,1.0"],
    "bandit_env": ["seeds=50", "horizon=500", "instances=synthetic"],
    "bb_attention": ["seeds=1", "control_seeds=1", "sim.n_steps=400", "sim.log_every=200"],
    "bb_interventions": ["seeds=1", "control_seeds=1", "sim.n_steps=400", "sim.log_every=200"],
    "bb_extreme_tokens": ["seeds=1", "sim.n_steps=400", "sim.log_every=200"],
    "bb_reduced": ["n_steps=10000", "lrs=1.0"],
    "subnet_sparsity": ["base.n_steps=400", "n_steps=200", "lams=1.0", "null_samples=8"],
    "subnet_mechanism": ["base.n_steps=400", "n_steps=200", "lams=1.0", "null_samples=8"],
    "radial_mask": ["max_log2_frames=6", "error_frames=16", "error_s=8,16", "hunyuan_frames=61"],
}
NOT_AT_TINY: dict[str, dict[str, str]] = {}


def test_every_figure_has_a_tiny_size():
    covered = set(TINY) | {"quadratic_sgd", "gla_stability", "lightnet_maps"}
    assert covered == set(_core.REGISTRY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_claims_at_a_tiny_size(name, tmp_path):
    claims = _core.run_figure(name, "quick", sets=TINY[name], out=tmp_path, cache=False)
    assert claims, "a figure must state claims"
    assert len({c.id for c in claims}) == len(claims)
    allowed = NOT_AT_TINY.get(name, {})
    assert not set(allowed) - {c.id for c in claims}, "NOT_AT_TINY names a claim the figure does not state"
    bad = [(c.id, c.status, c.measured) for c in claims if c.id not in allowed and c.status != "pass"]
    assert not bad
    for suffix in (".png", ".nc", ".claims.json"):
        assert (tmp_path / f"{name}{suffix}").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", _core.REGISTRY)
def test_figure_quick_preset_has_no_failing_claim(name, tmp_path):
    claims = _core.run_figure(name, "quick", out=tmp_path)
    assert claims, "a figure must state claims"
    assert not [c.id for c in claims if c.status == "FAIL"]
    for suffix in (".png", ".nc", ".claims.json"):
        assert (tmp_path / f"{name}{suffix}").exists()
