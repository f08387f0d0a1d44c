"""Every registered figure at its quick preset (slow: `make test-all`; `make figures` runs them too)."""

from __future__ import annotations

import pytest

from figures import _core


@pytest.mark.slow
@pytest.mark.parametrize("name", _core.REGISTRY)
def test_figure_quick_preset_has_no_failing_claim(name, tmp_path):
    claims = _core.run_figure(name, "quick", out=tmp_path)
    assert claims, "a figure must state claims"
    assert not [c.id for c in claims if c.status == "FAIL"]
    for suffix in (".png", ".nc", ".claims.json"):
        assert (tmp_path / f"{name}{suffix}").exists()
