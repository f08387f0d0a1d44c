"""Every notebook (jupytext percent .py) runs top to bottom through a Jupyter kernel (jupytext reads it,
nbclient executes it in an ipykernel, as JupyterLab would), with the small preset, no cell raising, from its own
folder and without PYTHONPATH: `make` installs the suite into its virtual environment (editable), as a new user
gets it from a fresh clone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert NOTEBOOKS


# every notebook, the two transformer ones too (they train models: 24 s of CPU together under `make test`'s
# compile-speed build, ~70 s at the default build)
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_a_kernel(nb: Path, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    # the kernel is a child process: it inherits these (the small preset); no PYTHONPATH: the suite must be
    # installed, and the kernel starts in notebooks/ as JupyterLab's would
    monkeypatch.setenv("SUITE_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    notebook = jupytext.read(nb)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(nb.parent)}})
    client.execute()  # raises CellExecutionError naming the cell and its traceback
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells)
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors


def test_the_suite_imports_from_any_folder_without_pythonpath(tmp_path):
    """A script kept outside the repository and `python -m figures list` from another folder work from the venv
    that `make` built (the suite installed in editable mode), with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = tmp_path / "mine.py"
    script.write_text("import sims.sweep, theory.quadratic, figures\nprint(sims.sweep.__file__)\n")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and str(ROOT) in r.stdout, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "figures", "list"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "wsd_decay" in r.stdout, r.stderr[-2000:]


def test_the_lab_requirements_bring_ipywidgets():
    """tqdm's notebook bar needs ipywidgets (without it: TqdmWarning: IProgress not found)."""
    names = [line.split("==")[0].strip().lower() for line in (ROOT / "requirements-lab.txt").read_text().splitlines()
             if "==" in line and not line.startswith("#")]
    assert "ipywidgets" in names

