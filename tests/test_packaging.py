"""`pip install .` works from the flat layout: pyproject names every package and the runtime pins agree with
requirements.txt (the install itself was checked by hand: `pip install --no-deps .` into a fresh venv, then
`toy-figures list`; it needs the package registry, so it is not part of `make test`)."""

from __future__ import annotations

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
    assert sorted(pkgs) == ["figures", "sims", "sims.data", "theory"]
    for p in pkgs:
        assert (ROOT / p.replace(".", "/") / "__init__.py").exists()
    for pkg, files in cfg["tool"]["setuptools"]["package-data"].items():
        for f in files:
            assert (ROOT / pkg.replace(".", "/") / f).exists()
    assert cfg["project"]["scripts"]["toy-figures"] == "figures.__main__:main"


def test_runtime_pins_equal_the_development_pins():
    runtime, dev = _pins("requirements-runtime.txt"), _pins("requirements.txt")
    assert runtime and all(dev.get(k) == v for k, v in runtime.items()), (runtime, dev)
    for must in ("jax", "jaxlib", "optax", "numpy", "xarray", "matplotlib", "scipy", "h5netcdf"):
        assert must in runtime
