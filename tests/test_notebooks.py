"""Every notebook (jupytext percent .py) runs top to bottom with the small preset, no errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, run_py

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(nb: Path, tmp_path):
    r = run_py([str(nb)], {"SUITE_SMALL": "1"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
