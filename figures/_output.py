"""Running a figure and writing what it made: ``NAME.png``, ``NAME.nc`` and ``NAME.claims.json`` written
atomically into the output folder (a temporary folder, then renames, claims last), then ``REPORT.md`` refreshed.
Everything is validated before any compute; nothing is written for a figure whose runs diverged."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from figures import _contract
from figures._claims import write_report
from figures._overrides import UserError, resolve_config
from figures._style import annotate_diverged, style

__all__ = ["OUT_DIR", "CACHE_DIR", "check_out_dir", "run_figure"]

log = logging.getLogger("figures")

HERE = Path(__file__).resolve().parent
CACHE_DIR = ".sweep_cache"  # under the output folder: finished sweep chunks, for resuming
# in a checkout: figures/out; installed (pip install .): ./figures-out in the working directory
OUT_DIR = HERE / "out" if (HERE.parent / "Makefile").exists() else Path.cwd() / "figures-out"


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


def run_figure(name: str, preset: str = "quick", seeds: int | None = None, sets=(), out: Path | None = None,
               cache: bool = True, force: bool = False):
    """Compute, check and draw one figure; returns its claims.

    ``cache=True``: every sweep saves its finished chunks under ``OUT/.sweep_cache`` (keyed by config, hparams,
    key, layout and code identity), so an interrupted figure resumes where it stopped when the same command is
    run again, with the same bits. ``force=True``: sweeps larger than the available memory run anyway.
    Experiments shared between figures (one training for two figures) are computed once per
    :class:`~sims.engine.results.ResultCache` in the options: the CLI sets one for a whole run."""
    import jax

    from sims.engine.results import ResultCache
    from sims.sweep import collect_provenance, current, options

    fig_ = _contract.load(name)
    cfg = resolve_config(fig_, preset, seeds, sets)
    out = check_out_dir(out)
    t0 = time.perf_counter()
    results = current().results or ResultCache()
    with options(cache_dir=out / CACHE_DIR if cache else None, allow_large=force, results=results), \
            collect_provenance() as sweeps:
        ds = fig_.compute(cfg)
    claims = fig_.claims(ds, cfg)
    n_runs, n_div = sum(r["n_runs"] for r in sweeps), sum(r["n_diverged"] for r in sweeps)
    for c in claims:
        c.figure = name
        if n_div:  # every claim says how many runs behind it diverged
            c.measured += f" [{n_div} of {n_runs} runs diverged: flagged in the data]"
    if jax.process_index() != 0:  # several processes: each holds the whole data; process 0 draws and writes
        return claims
    import matplotlib.pyplot as plt

    style()
    fig = fig_.plot(ds, cfg)
    if n_div:
        annotate_diverged(fig, n_div, n_runs)
        log.warning("%s: %d of %d runs diverged (flagged in the data, counted in the figure and in each claim)",
                    name, n_div, n_runs)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        _write_outputs(tmp, out, fig_, preset, cfg, ds, fig, claims, t0, sweeps)
    finally:
        plt.close(fig)
        shutil.rmtree(tmp, ignore_errors=True)
    write_report(out)
    return claims


def _write_outputs(tmp, out, fig_, preset, cfg, ds, fig, claims, t0, sweeps):
    from sims.sweep import code_identity, environment

    name = fig_.name
    fig.savefig(tmp / f"{name}.png")
    ds = ds.copy()
    ds.attrs["figure"] = name
    ds.attrs["preset"] = preset
    ds.attrs["figure_config"] = json.dumps(dataclasses.asdict(cfg), default=repr)
    code_id, code_files = code_identity(f"figures.{name}")
    prov = {"code_id": code_id, "code_files": ",".join(code_files), "n_sweeps": len(sweeps),
            "n_runs": sum(r["n_runs"] for r in sweeps), "n_diverged": sum(r["n_diverged"] for r in sweeps),
            "sweeps": json.dumps(sweeps, default=repr)} | environment()
    ds.attrs.update(prov)  # set here, after the figure's own merges: attrs of the parts do not survive those
    ds.to_netcdf(tmp / f"{name}.nc", engine="h5netcdf")
    elapsed = time.perf_counter() - t0
    (tmp / f"{name}.claims.json").write_text(json.dumps({
        "figure": name,
        "paper": fig_.paper,
        "preset": preset,
        "config": dataclasses.asdict(cfg),
        "seconds": round(elapsed, 2),
        "provenance": {k: v for k, v in prov.items() if k != "sweeps"},
        "claims": [c.to_json() for c in claims],
    }, indent=1, default=repr))
    for f in (f"{name}.png", f"{name}.nc", f"{name}.claims.json"):  # the claims last: they point to the data
        os.replace(tmp / f, out / f)
