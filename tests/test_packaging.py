"""`pip install .` works from the flat layout: pyproject names every package and the runtime pins agree with
requirements.txt; the package installs (pip, setuptools from requirements.txt, no registry: --no-deps
--no-build-isolation) into an empty folder and a figure runs from another folder, importing only the installed
copy. (Into a fresh venv with its dependencies from the registry it was checked by hand.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            k, v = line.split("==")
            out[k.strip().lower()] = v.strip()
    return out


def test_pyproject_builds_the_three_packages_with_their_data():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cfg["build-system"]["build-backend"] == "setuptools.build_meta"
    pkgs = cfg["tool"]["setuptools"]["packages"]
    # every package of the three (sub-packages such as sims.engine too): a forgotten one breaks `pip install .`
    found = sorted(".".join(q.parent.relative_to(ROOT).parts) for top in ("sims", "theory", "figures")
                   for q in (ROOT / top).rglob("__init__.py"))
    assert sorted(pkgs) == found and {"figures", "sims", "sims.data", "sims.engine", "theory"} <= set(found)
    for p in pkgs:
        assert (ROOT / p.replace(".", "/") / "__init__.py").exists()
    for pkg, files in cfg["tool"]["setuptools"]["package-data"].items():
        for f in files:
            assert (ROOT / pkg.replace(".", "/") / f).exists()
    assert cfg["project"]["scripts"]["toy-theory"] == "figures.__main__:entry"


def test_runtime_pins_equal_the_development_pins():
    runtime, dev = _pins("requirements-runtime.txt"), _pins("requirements.txt")
    assert runtime and all(dev.get(k) == v for k, v in runtime.items()), (runtime, dev)
    for must in ("jax", "jaxlib", "optax", "numpy", "xarray", "matplotlib", "scipy", "h5netcdf"):
        assert must in runtime


def test_pip_install_then_a_figure_runs_from_another_folder(tmp_path):
    src = tmp_path / "src"  # a copy of what the build reads: the checkout stays free of build/ and *.egg-info
    src.mkdir()
    for f in ("pyproject.toml", "requirements-runtime.txt", "README.md"):
        shutil.copy(ROOT / f, src / f)
    for pkg in ("sims", "theory", "figures"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "out"))
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-compile", "--target", str(site), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (site / "figures" / "style.mplstyle").exists()
    assert (site / "sims" / "data" / "shakespeare_bigram.json").exists()
    assert (site / "sims" / "data" / "shakespeare_plays.npz").exists()
    assert {"toy-theory", "toy-figures"} <= {p.name for p in (site / "bin").iterdir()}
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site), "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "-c", "import figures, sims, theory; print(figures.__file__)"], cwd=work,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(str(site)), (r.stdout, r.stderr)
    r = subprocess.run([sys.executable, "-m", "figures", "run", "schedule_gallery", "--out", "figs"], cwd=work,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {"schedule_gallery.png", "schedule_gallery.nc", "REPORT.md"} <= {p.name for p in (work / "figs").iterdir()}
