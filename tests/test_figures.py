"""Every figure: its contract, its claims at its ``tiny`` preset in the fast suite, and at its quick preset (slow).

The tiny presets (declared in each figure's ``FIGURE``) run each figure's whole path (config -> compute -> claims ->
plot -> files) in seconds, so a refactor that breaks a claim's computation fails `make test`. At a tiny size some
statistical claims cannot hold (too few seeds or steps for the effect, or a trained model that has not yet formed a
sink): the figure lists those in ``FIGURE.not_at_tiny`` with the reason (``"*"``: none can; then only that each
claim is stated is checked); every other claim must pass or be a documented *not reproduced*. The quick-preset
claims (`make figures`, and the slow test below) are the science; the tiny runs guard the code.
"""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

from figures import _contract, _core

ROOT = Path(__file__).resolve().parents[1]
NAMES = _core.names()


def test_the_registry_is_the_figure_files():
    """Adding a figure is adding one file: the registry is derived from figures/*.py (not a hand-kept list), and
    every such module declares a valid contract named after itself."""
    files = sorted(p.stem for p in (ROOT / "figures").glob("*.py") if not p.stem.startswith("_"))
    assert list(NAMES) == files and len(files) >= 26
    for name in files:
        assert _contract.contract_errors(importlib.import_module(f"figures.{name}")) == [], name


def test_a_module_without_a_valid_contract_is_named():
    bare = types.ModuleType("figures.not_a_figure")
    assert _contract.contract_errors(bare) == ["figures.not_a_figure declares no FIGURE = Figure(...)"]
    wrong = types.ModuleType("figures.other")
    wrong.FIGURE = _core.load("lion_box")
    assert "FIGURE.name is 'lion_box'" in _contract.contract_errors(wrong)[0]
    fig = _core.load("lion_box")
    with pytest.raises(TypeError, match="presets lack \\['tiny'\\]"):
        _contract.Figure(name="x", paper="p", description="d", config=fig.config,
                         presets={k: v for k, v in fig.presets.items() if k != "tiny"},
                         compute=fig.compute, claims=fig.claims, plot=fig.plot)
    with pytest.raises(TypeError, match="preset 'quick' is a int"):
        _contract.Figure(name="x", paper="p", description="d", config=fig.config, presets={**fig.presets, "quick": 3},
                         compute=fig.compute, claims=fig.claims, plot=fig.plot)


@pytest.mark.parametrize("name", NAMES)
def test_claims_at_the_tiny_preset(name, tmp_path):
    fig = _core.load(name)
    claims = _core.run_figure(name, "tiny", out=tmp_path, cache=False)
    assert claims, "a figure must state claims"
    assert len({c.id for c in claims}) == len(claims)
    assert all(c.statement and c.theory and c.measured and c.statistic for c in claims)
    allowed = dict(fig.not_at_tiny)
    assert not set(allowed) - {c.id for c in claims} - {"*"}, "not_at_tiny names a claim the figure does not state"
    if "*" not in allowed:
        # "not reproduced" is a claim that ran and failed with its documented finding (the paper's claim does not
        # hold in the toy): at a tiny size that is allowed; FAIL is not
        bad = [(c.id, c.measured) for c in claims if c.id not in allowed and c.status is _core.Status.FAIL]
        assert not bad
    for suffix in (".png", ".nc", ".claims.json"):
        assert (tmp_path / f"{name}{suffix}").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_figure_quick_preset_has_no_failing_claim(name, tmp_path):
    claims = _core.run_figure(name, "quick", out=tmp_path)
    assert claims, "a figure must state claims"
    assert not [c.id for c in claims if c.status is _core.Status.FAIL]
    for suffix in (".png", ".nc", ".claims.json"):
        assert (tmp_path / f"{name}{suffix}").exists()
