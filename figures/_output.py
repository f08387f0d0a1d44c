"""Running a figure and writing what it made.

:func:`compute` runs a figure in Python and returns a :class:`Result` (Dataset, claims, matplotlib Figure, config,
overrides) without writing anything; :func:`run_figure` (the CLI) also writes ``STEM.png``, ``STEM.nc`` and
``STEM.claims.json`` atomically into the output folder (a temporary folder, then renames, claims last) and
refreshes ``REPORT.md`` and ``REPORT.html``. ``STEM`` is the figure's name for a preset as it is; a run with
overrides gets ``NAME.<tag>`` (a hash of the overrides), so it never overwrites the preset's reproduction, and its
report row, claims JSON and PNG caption name the overrides. Everything is validated before any compute; nothing
is written for a figure whose runs diverged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from figures import _contract
from figures._claims import write_report
from figures._overrides import UserError, resolve_config, walk_fields
from figures._style import annotate_diverged, style

__all__ = ["OUT_DIR", "CACHE_DIR", "Result", "check_out_dir", "overrides_of", "stem_of", "compute", "write",
           "run_figure"]

log = logging.getLogger("figures")

HERE = Path(__file__).resolve().parent
CACHE_DIR = ".sweep_cache"  # under the output folder: finished sweep chunks, for resuming
# in a checkout: figures/out; installed (pip install .): ./figures-out in the working directory
OUT_DIR = HERE / "out" if (HERE.parent / "Makefile").exists() else Path.cwd() / "figures-out"


class Result(NamedTuple):
    """One run of a figure: what :func:`compute` returns and :func:`figures.open_run` reads back."""

    name: str
    preset: str
    config: Any  # the figure's resolved Config
    overrides: tuple[str, ...]  # KEY=VALUE of every field that differs from the preset (empty: the reproduction)
    dataset: Any  # xarray.Dataset
    claims: list  # [Claim]
    figure: Any = None  # matplotlib Figure (None until drawn)
    seconds: float = 0.0
    sweeps: tuple = ()  # provenance records of the sweeps it ran

    @property
    def stem(self) -> str:
        return stem_of(self.name, self.overrides)


def check_out_dir(out: Path | None) -> Path:
    """The output folder, checked BEFORE any compute without creating anything: it must be a writable folder,
    or not exist yet under a writable folder. A path that is a file, lies under a file or cannot be written is a
    :class:`UserError`."""
    out = Path(out) if out is not None else OUT_DIR
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"--out {out}: {p} is a file, not a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise UserError(f"--out {out}: {p} is not writable")
            break
    return out


def overrides_of(fig, preset: str, cfg) -> tuple[str, ...]:
    """``KEY=VALUE`` for every field of ``cfg`` that differs from the preset (dotted paths, in field order)."""
    base = {n: v for n, _, v in walk_fields(fig.presets[preset], skip={})}
    return tuple(f"{n}={_short(v)}" for n, _, v in walk_fields(cfg, skip={}) if base.get(n) != v)


def _short(v) -> str:
    if isinstance(v, tuple):
        return ",".join(_short(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def stem_of(name: str, overrides) -> str:
    """The file stem of a run: the figure's name, or ``NAME.<8 hex>`` for a run with overrides."""
    if not overrides:
        return name
    return f"{name}.{hashlib.sha256(json.dumps(list(overrides)).encode()).hexdigest()[:8]}"


def compute(name: str, preset: str = "quick", seeds: int | None = None, sets=(), *, cache_dir=None,
            force: bool = False, draw: bool = True) -> Result:
    """Run figure ``name`` at ``preset`` with ``--seeds`` / ``--set``-style overrides and return its
    :class:`Result`; nothing is written (``cache_dir``: keep finished sweep chunks there, to resume). Claims
    outside their regime are marked *n/a*. Raises :class:`UserError` for bad input (before any compute) and
    :class:`~sims.engine.results.Diverged` when runs diverged that the figure cannot exclude."""
    from sims.engine.results import ResultCache
    from sims.sweep import collect_provenance, current, options

    fig_ = _contract.load(name)
    cfg = resolve_config(fig_, preset, seeds, sets)
    t0 = time.perf_counter()
    results = current().results or ResultCache()
    with options(cache_dir=cache_dir, allow_large=force, results=results), collect_provenance() as sweeps:
        ds = fig_.compute(cfg)
    claims = evaluate_claims(name, ds, cfg, sweeps)
    res = Result(name, preset, cfg, overrides_of(fig_, preset, cfg), ds, claims, None, 0.0, tuple(sweeps))
    if draw:
        res = res._replace(figure=draw_figure(res))
    return res._replace(seconds=time.perf_counter() - t0)


def evaluate_claims(name: str, ds, cfg, sweeps) -> list:
    """Figure ``name``'s claims on its data: each marked *n/a* outside its regime, and, when runs diverged in
    ``sweeps`` (the provenance records of its sweeps), saying how many."""
    fig_ = _contract.load(name)
    claims = fig_.claims(ds, cfg)
    n_runs, n_div = sum(r["n_runs"] for r in sweeps), sum(r["n_diverged"] for r in sweeps)
    for c in claims:
        c.figure = name
        reg = fig_.regime_of(c.id)
        if reg is not None:
            c.regime = reg.text
            if not reg.holds(cfg):
                c.not_applicable = f"outside the claim's regime: {reg.text}"
        if n_div:  # every claim says how many runs behind it diverged
            c.measured += f" [{n_div} of {n_runs} runs diverged: flagged in the data]"
    return claims


def draw_figure(res: Result):
    """The figure's plot of a result, in the suite's style, with the diverged-run count and the overrides below
    it (a modified run says so on its PNG)."""
    fig_ = _contract.load(res.name)
    style()
    fig = fig_.plot(res.dataset, res.config)
    n_runs = sum(r["n_runs"] for r in res.sweeps)
    n_div = sum(r["n_diverged"] for r in res.sweeps)
    if n_div:
        annotate_diverged(fig, n_div, n_runs)
        log.warning("%s: %d of %d runs diverged (flagged in the data, counted in the figure and in each claim)",
                    res.name, n_div, n_runs)
    if res.overrides:
        fig.text(0.995, -0.01, f"modified run: {res.preset} preset + " + ", ".join(res.overrides), color="0.3",
                 fontsize=7, ha="right", va="top", wrap=True)
    return fig


def write(res: Result, out: Path) -> Path:
    """Write a result's PNG, NetCDF and claims JSON atomically into ``out`` and refresh the reports; returns the
    claims file."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{res.stem}.", dir=out))
    fig = res.figure if res.figure is not None else draw_figure(res)
    try:
        _write_outputs(tmp, out, res, fig)
    finally:
        plt.close(fig)
        shutil.rmtree(tmp, ignore_errors=True)
    write_report(out)
    from figures._html import write_html

    write_html(out)
    return out / f"{res.stem}.claims.json"


def run_figure(name: str, preset: str = "quick", seeds: int | None = None, sets=(), out: Path | None = None,
               cache: bool = True, force: bool = False):
    """Compute, check, draw and write one figure (the CLI's ``run``); returns its claims.

    ``cache=True``: every sweep saves its finished chunks under ``OUT/.sweep_cache`` (keyed by config, hparams,
    key, layout and code identity), so an interrupted figure resumes where it stopped when the same command is
    run again, with the same bits. ``force=True``: sweeps larger than the available memory run anyway.
    Experiments shared between figures (one training for two figures) are computed once per
    :class:`~sims.engine.results.ResultCache` in the options: the CLI sets one for a whole run."""
    import jax

    resolve_config(_contract.load(name), preset, seeds, sets)  # bad input: refused before anything else
    out = check_out_dir(out)
    res = compute(name, preset, seeds, sets, cache_dir=out / CACHE_DIR if cache else None, force=force,
                  draw=jax.process_index() == 0)
    if jax.process_index() != 0:  # several processes: each holds the whole data; process 0 draws and writes
        return res.claims
    write(res, out)
    return res.claims


def _write_outputs(tmp, out, res: Result, fig):
    from sims.sweep import code_identity, environment

    fig_ = _contract.load(res.name)
    stem = res.stem
    fig.savefig(tmp / f"{stem}.png")
    ds = res.dataset.copy()
    ds.attrs["figure"] = res.name
    ds.attrs["preset"] = res.preset
    ds.attrs["overrides"] = json.dumps(list(res.overrides))
    ds.attrs["figure_config"] = json.dumps(dataclasses.asdict(res.config), default=repr)
    code_id, code_files = code_identity(f"figures.{res.name}")
    sweeps = list(res.sweeps)
    prov = {"code_id": code_id, "code_files": ",".join(code_files), "n_sweeps": len(sweeps),
            "n_runs": sum(r["n_runs"] for r in sweeps), "n_diverged": sum(r["n_diverged"] for r in sweeps),
            "sweeps": json.dumps(sweeps, default=repr)} | environment()
    ds.attrs.update(prov)  # set here, after the figure's own merges: attrs of the parts do not survive those
    from figures._netcdf import to_netcdf

    to_netcdf(ds, tmp / f"{stem}.nc")
    (tmp / f"{stem}.claims.json").write_text(json.dumps({
        "figure": res.name,
        "paper": fig_.paper,
        "preset": res.preset,
        "overrides": list(res.overrides),
        "config": dataclasses.asdict(res.config),
        "seconds": round(res.seconds, 2),
        "provenance": {k: v for k, v in prov.items() if k != "sweeps"},
        "claims": [c.to_json() for c in res.claims],
    }, indent=1, default=repr))
    for f in (f"{stem}.png", f"{stem}.nc", f"{stem}.claims.json"):  # the claims last: they point to the data
        os.replace(tmp / f, out / f)
