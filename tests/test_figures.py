"""Every figure: its contract, its claims at its ``tiny`` preset in the fast suite, and at its quick preset (slow).

The tiny presets (declared in each figure's ``FIGURE``) run each figure's whole path (config -> compute -> claims ->
plot -> files) in seconds, so a refactor that breaks a claim's computation fails `make test`. At a tiny size some
statistical claims cannot hold (too few seeds or steps for the effect, or a trained model that has not yet formed a
sink): the figure lists those in ``FIGURE.not_at_tiny`` with the reason (``"*"``: none can; then only that each
claim is stated is checked); every other claim must pass or be a documented *not reproduced*. The quick-preset
claims (`make figures`, and the slow test below) are the science; the tiny runs guard the code.
"""

from __future__ import annotations

import ast
import importlib
import json
import types
from pathlib import Path

import pytest

from figures import _api, _contract, _core

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
    # the saved NetCDF holds what the claims read: evaluated again from it, every claim says the same
    again = _api.recheck(tmp_path / f"{name}.nc")
    assert [(c.id, c.status, c.measured) for c in again] == [(c.id, c.status, c.measured) for c in claims]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_figure_quick_preset_has_no_failing_claim(name, tmp_path):
    claims = _core.run_figure(name, "quick", out=tmp_path)
    assert claims, "a figure must state claims"
    assert not [c.id for c in claims if c.status is _core.Status.FAIL]
    for suffix in (".png", ".nc", ".claims.json"):
        assert (tmp_path / f"{name}{suffix}").exists()


def _path_of(node, alias):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        if node.id in ("cfg", "self") and parts:
            return ".".join(reversed(parts))
        if node.id in alias:
            return ".".join([alias[node.id]] + list(reversed(parts)))
    return None


def fields_set_in_source(source: str) -> set[str]:
    """Dotted config paths a figure's source sets itself: every ``replace(X, k=...)`` whose ``X`` is ``cfg.a`` /
    ``self.a`` (a Config method) or a local name bound to one (``rc = cfg.sim``)."""
    out = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        alias = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                p = _path_of(node.value, alias)
                if p:
                    alias[node.targets[0].id] = p
        for node in ast.walk(fn):
            f = getattr(node, "func", None)
            if isinstance(node, ast.Call) and (getattr(f, "attr", None) or getattr(f, "id", None)) == "replace" \
                    and node.args:
                p = _path_of(node.args[0], alias)
                if p:
                    out |= {f"{p}.{k.arg}" for k in node.keywords if k.arg}
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_knob_help_lists_is_used_as_listed(name):
    """A knob that `--help` lists must change what runs: a field the figure replaces itself (per variant, per panel)
    is declared, either as not a knob (``SET_BY_FIGURE``: refused by --set with the reason) or as a knob that one
    panel does not use (``SET_IN_PANELS``: --help says where). Every declared path names a real field."""
    fig = _core.load(name)
    declared = set(getattr(fig.config, "SET_BY_FIGURE", {})) | set(getattr(fig.config, "SET_IN_PANELS", {}))
    source = (ROOT / "figures" / f"{name}.py").read_text()
    undeclared = sorted(fields_set_in_source(source) - declared)
    assert not undeclared, f"{name} sets {undeclared} itself: declare them in SET_BY_FIGURE or SET_IN_PANELS"
    leaves = {n for n, _, _ in _core.walk_fields(fig.presets["quick"], skip={})}
    every = leaves | {".".join(n.split(".")[:i]) for n in leaves for i in range(1, n.count(".") + 1)}
    assert declared <= every, sorted(declared - every)


def test_the_knob_checker_catches_a_planted_override():
    src = ("def compute(cfg):\n    rc = cfg.sim\n    a = dataclasses.replace(rc, n_steps=5)\n"
           "    b = dataclasses.replace(cfg.base, lr=1.0)\n\nclass C:\n    def bb(self):\n"
           "        return replace(self.sim, init='x')\n")
    assert fields_set_in_source(src) == {"sim.n_steps", "base.lr", "sim.init"}


def test_a_run_outside_a_claims_regime_is_not_applicable(tmp_path):
    """bb_attention's claims are about the paper's 1-layer softmax model: a 2-layer GLA run is an exploration, so
    every claim reports n/a with the regime as the reason (not FAIL), and the CLI exits 0."""
    from figures.__main__ import main as cli_main

    fig = _core.load("bb_attention")
    cfg = _core.overrides(fig.presets["tiny"], "sim.n_layers=2", "sim.attention=gla")
    assert not fig.regime_of("near_oracle").holds(cfg) and fig.regime_of("near_oracle").holds(fig.presets["quick"])
    rc = cli_main(["run", "bb_attention", "--tiny", "--set", "sim.n_layers=2", "--set", "sim.attention=gla",
                   "--out", str(tmp_path), "--no-cache"])
    assert rc == 0
    (cj,) = list(tmp_path.glob("bb_attention.*.claims.json"))
    rec = json.loads(cj.read_text())
    assert rec["overrides"] == ["sim.n_layers=2", "sim.attention=gla"]
    assert {c["status"] for c in rec["claims"]} == {"n/a"}
    assert all("1-layer softmax" in c["not_applicable"] for c in rec["claims"])
    assert not (tmp_path / "bb_attention.png").exists()  # a modified run never takes the reproduction's name
