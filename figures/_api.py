"""The figures in Python: run one, read a saved run back, re-plot it, compare two runs, list what a figure claims.
Re-exported by :mod:`figures` (``help(figures)``)."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

from figures import _contract
from figures._claims import Claim
from figures._output import CACHE_DIR, Result, check_out_dir, compute, draw_figure, evaluate_claims, write
from figures._overrides import UserError, walk_fields

__all__ = ["run", "open_run", "replot", "recheck", "compare", "claims", "config_from_dict"]


def run(name: str, preset: str = "quick", *sets: str, seeds: int | None = None, out=None, cache: bool = True,
        force: bool = False) -> Result:
    """Run figure ``name`` at ``preset`` with ``KEY=VALUE`` overrides (as ``--set`` on the command line) and return
    its :class:`Result` (``.dataset``, ``.claims``, ``.figure``, ``.config``, ``.overrides``). With ``out``, also
    write its files there (as the CLI does; a run with overrides is written as ``NAME.<tag>.*``, never over the
    preset's files) and keep finished sweep chunks under ``out/.sweep_cache`` so that a rerun resumes.

    Example: ``r = figures.run("wsd_decay", "quick", "sim.n_steps=1000", "seeds=500")``."""
    out = check_out_dir(out) if out is not None else None
    res = compute(name, preset, seeds, sets, cache_dir=(out / CACHE_DIR) if (out is not None and cache) else None,
                  force=force)
    if out is not None:
        write(res, out)
    return res


def config_from_dict(cls, d: dict):
    """A figure's (or any nested) config rebuilt from ``dataclasses.asdict`` JSON: nested configs by their field
    type, lists back to tuples; validated as at construction."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        tp = hints.get(f.name)
        if isinstance(v, dict) and dataclasses.is_dataclass(tp):
            v = config_from_dict(tp, v)
        elif isinstance(v, list):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        kw[f.name] = v
    return cls(**kw)


def open_run(path) -> Result:
    """A saved run (``STEM.nc``, or its ``STEM.claims.json``) back as a :class:`Result`: the Dataset, the Config
    rebuilt from the file (validated), the overrides, its sweeps' provenance records (diverged runs counted), and
    the claims from the claims file beside it (if any); ``.figure`` is None until :func:`replot`."""
    import xarray as xr

    path = Path(path)
    nc = path.with_name(path.name[: -len(".claims.json")] + ".nc") if path.name.endswith(".claims.json") else path
    if not nc.exists():
        raise UserError(f"{nc}: no such file (a figure's NetCDF, written by `python -m figures run`)")
    ds = xr.load_dataset(nc, engine="h5netcdf")
    name = ds.attrs.get("figure")
    if name is None or "figure_config" not in ds.attrs:
        raise UserError(f"{nc} was not written by a figure (no 'figure' / 'figure_config' attribute)")
    fig = _contract.load(name)
    cfg = config_from_dict(fig.config, json.loads(ds.attrs["figure_config"]))
    overrides = tuple(json.loads(ds.attrs.get("overrides", "[]")))
    cj = nc.with_name(nc.name[: -len(".nc")] + ".claims.json")
    claims_, seconds = [], 0.0
    if cj.exists():
        rec = json.loads(cj.read_text())
        fields = {f.name for f in dataclasses.fields(Claim)}
        claims_ = [Claim(**{k: v for k, v in c.items() if k in fields}) for c in rec["claims"]]
        seconds = float(rec.get("seconds", 0.0))
    sweeps = tuple(json.loads(ds.attrs.get("sweeps", "[]")))  # a replot still shows how many runs diverged
    return Result(name, ds.attrs.get("preset", "?"), cfg, overrides, ds, claims_, None, seconds, sweeps)


def replot(run_or_path, out=None):
    """Draw a run again without recomputing: a :class:`Result` or a saved ``.nc``. With ``out`` (a folder), or
    when given a path, the PNG is written (beside the NetCDF by default) and its path returned with the figure."""
    res = run_or_path if isinstance(run_or_path, Result) else open_run(run_or_path)
    fig = draw_figure(res)
    if out is None and not isinstance(run_or_path, Result):
        out = Path(run_or_path).parent
    if out is None:
        return fig
    import os

    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{res.stem}.png"
    tmp = png.with_name(f".{png.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, png)
    plt.close(fig)
    return png


def recheck(run_or_path) -> list[Claim]:
    """A saved run's claims evaluated again by the current code on its saved data (no recompute, nothing written):
    after a claim's statistic or threshold was edited, what it says of the run. The claims file keeps what the run
    itself said (compare the two: ``python -m figures claims FILE.nc``)."""
    res = run_or_path if isinstance(run_or_path, Result) else open_run(run_or_path)
    return evaluate_claims(res.name, res.dataset, res.config, res.sweeps)


def claims(name: str) -> list[dict]:
    """The claims figure ``name`` states (id, statement, statistic, regime), read from its source without running
    it."""
    return _contract.declared_claims(_contract.load(name))


def _rec(path) -> dict:
    p = Path(path)
    if p.suffix == ".nc":
        p = p.with_name(p.name[: -len(".nc")] + ".claims.json")
    if not p.exists():
        raise UserError(f"{p}: no such claims file")
    try:
        return json.loads(p.read_text())
    except ValueError:
        raise UserError(f"{p}: not a claims file (unreadable JSON)") from None


def compare(a, b) -> str:
    """Two runs side by side (their claims JSON or NetCDF): the config fields that differ, then each claim's
    status and measurement in both, differences marked."""
    ra, rb = _rec(a), _rec(b)
    lines = [f"A: {a} ({ra['figure']}, {ra.get('preset')}{''.join(' + ' + o for o in ra.get('overrides', []))}; "
             f"{ra.get('seconds', '?')} s)",
             f"B: {b} ({rb['figure']}, {rb.get('preset')}{''.join(' + ' + o for o in rb.get('overrides', []))}; "
             f"{rb.get('seconds', '?')} s)", ""]
    if ra["figure"] != rb["figure"]:
        lines.append(f"(different figures: {ra['figure']} vs {rb['figure']})")
    fig = _contract.load(ra["figure"])
    try:
        ca = {n: v for n, _, v in walk_fields(config_from_dict(fig.config, ra["config"]), skip={})}
        cb = {n: v for n, _, v in walk_fields(config_from_dict(_contract.load(rb["figure"]).config, rb["config"]),
                                              skip={})}
        diff = [(k, ca.get(k), cb.get(k)) for k in dict.fromkeys(list(ca) + list(cb)) if ca.get(k) != cb.get(k)]
    except (TypeError, ValueError):
        diff = [("config", ra["config"], rb["config"])] if ra["config"] != rb["config"] else []
    lines.append("config differences:" if diff else "configs: identical")
    lines += [f"  {k}: A {va!r} | B {vb!r}" for k, va, vb in diff]
    lines.append("")
    cla = {c["id"]: c for c in ra["claims"]}
    clb = {c["id"]: c for c in rb["claims"]}
    for cid in dict.fromkeys(list(cla) + list(clb)):
        x, y = cla.get(cid, {}), clb.get(cid, {})
        mark = "  " if (x.get("status"), x.get("measured")) == (y.get("status"), y.get("measured")) else "* "
        lines.append(f"{mark}{cid}: A [{x.get('status', '-')}] {x.get('measured', '-')}")
        lines.append(f"  {' ' * len(cid)}  B [{y.get('status', '-')}] {y.get('measured', '-')}")
    return "\n".join(lines)
