"""A figure's Dataset written as NetCDF (h5netcdf), compressed, with CF ``long_name`` and ``units`` on every
variable and coordinate that does not carry them yet (so xarray's own plots are labelled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["describe", "to_netcdf"]

# name (or name suffix) -> (long_name, units); CF: "1" is dimensionless
KNOWN = {
    "loss": ("loss", "nats"),
    "diverged": ("run diverged (non-finite or out of bound)", "1"),
    "diverged_step": ("first diverged step (-1: finite)", "steps"),
    "step": ("optimizer step", "steps"),
    "seed": ("seed index", "1"),
    "lr": ("learning rate", "1"),
    "point": ("hparam point", "1"),
    "pseudo_regret": ("cumulative pseudo-regret", "reward"),
    "realized_regret": ("cumulative realized regret", "reward"),
    "pred": ("theory prediction", "1"),
}


def describe(name: str) -> tuple[str, str]:
    """(long_name, units) of a variable: from :data:`KNOWN` (exact name, then a known suffix such as ``_loss``), else
    its name in words, dimensionless."""
    if name in KNOWN:
        return KNOWN[name]
    for key, (long, units) in KNOWN.items():
        if name.endswith("_" + key):
            return f"{name[: -len(key) - 1].replace('_', ' ')} {long}", units
    return name.replace("_", " "), "1"


def to_netcdf(ds, path: Path, complevel: int = 4) -> None:
    """Write ``ds`` to ``path`` compressed (zlib ``complevel``) with CF ``long_name`` / ``units`` filled in."""
    ds = ds.copy()
    for name in list(ds.data_vars) + list(ds.coords):
        attrs = ds[name].attrs
        long, units = describe(str(name))
        attrs.setdefault("long_name", long)
        attrs.setdefault("units", units)
    enc = {v: {"zlib": True, "complevel": complevel} for v in list(ds.data_vars) + list(ds.coords)
           if (np.issubdtype(ds[v].dtype, np.number) or ds[v].dtype == bool) and ds[v].ndim}
    ds.to_netcdf(path, engine="h5netcdf", encoding=enc)
