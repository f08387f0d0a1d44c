"""Shared figure machinery: validated config fields, claims, running a figure, the report.

A figure module defines ``NAME``, ``DESCRIPTION``, ``PAPER``, a frozen dataclass ``Config``
(fields made with :func:`param`, so every value has a checked range), ``PRESETS`` with a
``"quick"`` and a ``"full"`` config, and three functions::

    compute(cfg) -> xarray.Dataset      # uses the sweep engine
    claims(ds, cfg) -> list[Claim]      # theory vs measurement
    plot(ds, cfg) -> matplotlib Figure

:func:`run_figure` validates everything before it computes or writes anything, then writes
``NAME.png``, ``NAME.nc`` and ``NAME.claims.json`` into the output folder and refreshes
``REPORT.md`` there.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import shutil
import tempfile
import time
import types
import typing
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sims import config as _config  # noqa: E402

log = logging.getLogger("figures")

HERE = Path(__file__).resolve().parent
CACHE_DIR = ".sweep_cache"  # under the output folder: finished sweep chunks, for resuming
# in a checkout: figures/out; installed (pip install .): ./figures-out in the working directory
OUT_DIR = HERE / "out" if (HERE.parent / "Makefile").exists() else Path.cwd() / "figures-out"
STYLE = HERE / "style.mplstyle"

# every registered figure, in the order `figures all` runs them (module names in figures/)
REGISTRY: tuple[str, ...] = (
    "quadratic_sgd",
    "river_landscape",
    "river_schedules",
    "wsd_decay",
    "wsd_s_budgets",
    "bigram_lm_river",
    "lion_box",
    "lion_lyapunov",
    "lion_kkt",
    "schedule_gallery",
    "schedule_bound_vs_sim",
    "refined_schedule",
    "rex_budgets",
    "rewarming",
    "bandit_regret",
    "bandit_rho",
    "bandit_env",
    "bb_attention",
    "bb_interventions",
    "bb_extreme_tokens",
    "bb_reduced",
    "subnet_sparsity",
    "subnet_mechanism",
    "gla_stability",
    "lightnet_maps",
    "radial_mask",
)


class UserError(ValueError):
    """Bad input from the user: reported as one line, exit status 2, nothing written."""


class Diverged(RuntimeError):
    """Runs diverged where the figure cannot exclude them (e.g. every seed of a trained model): reported as one
    line naming the count and the setting, exit status 1, nothing written for that figure."""


# --------------------------------------------------------------------------------------
# config fields with ranges
# --------------------------------------------------------------------------------------
param = _config.param  # fields with ranges live in the core (sims.config) so that sims use them too
_range_text = _config.range_text
Validated = _config.Config  # base of every figure Config: validated at construction


def validate(cfg) -> None:
    """Check every field against its type and range, then the config's ``check()``; raise :class:`UserError`
    naming the parameter (the same message the API raises at construction)."""
    try:
        _config.check_fields(cfg)
        check = getattr(cfg, "check", None)
        if check is not None:
            check()
    except ValueError as e:
        raise UserError(str(e)) from None


def _parse_scalar(tp, text: str, name: str):
    try:
        if tp is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
    except ValueError:
        pass
    raise UserError(f"{name}={text!r}: expected a value of type {tp.__name__}")


def set_by_figure(cfg) -> dict[str, str]:
    """Dotted fields of the nested sim configs that a figure sets itself (``Config.SET_BY_FIGURE``: path -> from
    what), e.g. ``{"sim.n_steps": "each budget of `budgets`"}``: they are not knobs of the figure."""
    return dict(getattr(type(cfg), "SET_BY_FIGURE", {}))


def walk_fields(cfg, prefix: str = "", *, skip: dict | None = None):
    """(dotted name, field, value) of every leaf field of a config, nested configs by dotted path; fields the
    figure sets itself (:func:`set_by_figure`) are left out."""
    skip = set_by_figure(cfg) if skip is None else skip
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        name = f"{prefix}{f.name}"
        if name in skip:
            continue
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            yield from walk_fields(v, f"{name}.", skip=skip)
        else:
            yield name, f, v


def _parse_typed(tp, text: str, key: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tup = [a for a in args if typing.get_origin(a) is tuple or a is tuple]
        if "," in text and tup:
            return _parse_typed(tup[0], text, key)
        scal = [a for a in args if a in (bool, int, float, str)]
        for a in scal:
            try:
                return _parse_scalar(a, text, key)
            except UserError:
                continue
        raise UserError(f"{key}={text!r}: expected {' or '.join(getattr(a, '__name__', str(a)) for a in args)}")
    if origin is tuple or tp is tuple:
        args = typing.get_args(tp)
        el = args[0] if args else str
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise UserError(f"{key}: expected a comma-separated list of {el.__name__}")
        return tuple(_parse_scalar(el, p.strip(), key) for p in parts)
    return _parse_scalar(tp, text, key)


def parse_override(cfg_cls, cfg, item: str) -> tuple[str, Any]:
    """``key=value`` -> (key, typed value) using the dataclass's type hints; ``key`` may be a dotted path into
    nested configs (``sim.lr=0.1``)."""
    if "=" not in item:
        raise UserError(f"--set expects key=value, got {item!r}")
    key, text = item.split("=", 1)
    key = key.strip()
    derived = set_by_figure(cfg)
    if key in derived:
        raise UserError(f"{key} is set by the figure ({derived[key]}): not a knob of this figure")
    names = [n for n, _, _ in walk_fields(cfg)]
    if key not in names:
        raise UserError(f"unknown config key {key!r}; valid keys: {', '.join(names)}")
    owner = cfg
    for part in key.split(".")[:-1]:
        owner = getattr(owner, part)
    tp = _config.field_hints(type(owner))[key.split(".")[-1]]
    return key, _parse_typed(tp, text, key)


def replace_paths(cfg, changes: dict):
    """``dataclasses.replace`` with dotted keys: every change to one nested config is applied in ONE rebuild of
    it (so ``sim.data=zipf`` and ``sim.V=32`` are checked together, in any order); each rebuilt config
    validates itself."""
    top, nested = {}, {}
    for k, v in changes.items():
        head, _, rest = k.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = v
        else:
            top[head] = v
    for head, sub in nested.items():
        try:
            top[head] = replace_paths(getattr(cfg, head), sub)
        except ValueError as e:  # name the nested config the message is about
            raise ValueError(f"{head}: {e}") from None
    return dataclasses.replace(cfg, **top)


def replace_path(cfg, key: str, value):
    """:func:`replace_paths` with one change."""
    return replace_paths(cfg, {key: value})


# --------------------------------------------------------------------------------------
# claims
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Claim:
    """One checked statement.

    ``passed`` says whether the measurement agrees with the prediction under ``statistic``.
    A paper claim that does not hold in the toy after bugs were ruled out carries a
    ``finding`` (why, with numbers): it is reported as *not reproduced* instead of failing.
    """

    id: str
    statement: str
    theory: str
    measured: str
    statistic: str
    passed: bool
    finding: str = ""
    figure: str = ""

    @property
    def status(self) -> str:
        if self.passed:
            return "pass"
        return "not reproduced" if self.finding else "FAIL"


def fmt(x, digits: int = 4) -> str:
    if isinstance(x, (list, tuple, np.ndarray)):
        return "[" + ", ".join(fmt(v, digits) for v in np.ravel(x)) + "]"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


# --------------------------------------------------------------------------------------
# running figures
# --------------------------------------------------------------------------------------
def load(name: str):
    if name not in REGISTRY:
        raise UserError(f"unknown figure {name!r}; known figures: {', '.join(REGISTRY)}")
    return importlib.import_module(f"figures.{name}")


def resolve_config(mod, preset: str = "quick", seeds: int | None = None, sets=()):
    """Preset + ``--seeds`` + ``--set`` overrides, validated. Raises :class:`UserError`."""
    if preset not in mod.PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid: {', '.join(mod.PRESETS)}")
    cfg = mod.PRESETS[preset]
    changes = {}
    for item in sets:
        k, v = parse_override(mod.Config, cfg, item)
        changes[k] = v
    if seeds is not None:
        if "seeds" not in {f.name for f in dataclasses.fields(cfg)}:
            raise UserError(f"figure {mod.NAME} has no seeds parameter")
        changes["seeds"] = seeds
    try:
        cfg = replace_paths(cfg, changes)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    validate(cfg)
    return cfg


def style():
    plt.style.use(STYLE)


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


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_figure(name: str, preset: str = "quick", seeds: int | None = None, sets=(), out: Path | None = None,
               cache: bool = True, force: bool = False):
    """Compute, check and draw one figure. Returns its claims.

    Outputs are atomic: the PNG, NetCDF and claims JSON are written into a temporary folder inside ``out`` and
    then renamed into place (claims last), so an interruption leaves either the previous complete file or the new
    one, never a truncated one; ``REPORT.md`` is rebuilt the same way.

    ``cache=True``: every sweep saves its finished chunks under ``OUT/.sweep_cache`` (keyed by config, hparams,
    key, layout and code identity), so an interrupted figure resumes where it stopped when the same command is
    run again, with the same bits. ``force=True``: sweeps larger than the available memory run anyway."""
    import xarray as xr  # noqa: F401  (imported lazily: `figures list` stays fast)

    mod = load(name)
    cfg = resolve_config(mod, preset, seeds, sets)
    out = check_out_dir(out)
    from sims.sweep import allow_large, collect_provenance, default_cache

    t0 = time.perf_counter()
    with collect_provenance() as sweeps, default_cache(out / CACHE_DIR if cache else None), \
            allow_large(force):
        ds = mod.compute(cfg)
    claims = mod.claims(ds, cfg)
    n_runs, n_div = sum(r["n_runs"] for r in sweeps), sum(r["n_diverged"] for r in sweeps)
    for c in claims:
        c.figure = name
        if n_div:  # every claim says how many runs behind it diverged
            c.measured += f" [{n_div} of {n_runs} runs diverged: flagged in the data]"
    import jax

    if jax.process_index() != 0:  # several processes (jax.distributed): each holds the whole data; one draws, writes
        return claims
    style()
    fig = mod.plot(ds, cfg)
    if n_div:
        annotate_diverged(fig, n_div, n_runs)
        log.warning("%s: %d of %d runs diverged (flagged in the data, counted in the figure and in each claim)",
                    name, n_div, n_runs)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        _write_outputs(tmp, out, name, mod, preset, cfg, ds, fig, claims, t0, sweeps)
    finally:
        plt.close(fig)
        shutil.rmtree(tmp, ignore_errors=True)
    write_report(out)
    return claims


def _write_outputs(tmp, out, name, mod, preset, cfg, ds, fig, claims, t0, sweeps):
    from sims.sweep import code_identity, environment

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
    (tmp / f"{name}.claims.json").write_text(
        json.dumps(
            {
                "figure": name,
                "paper": mod.PAPER,
                "preset": preset,
                "config": dataclasses.asdict(cfg),
                "seconds": round(elapsed, 2),
                "provenance": {k: v for k, v in prov.items() if k != "sweeps"},
                "claims": [dataclasses.asdict(c) | {"status": c.status} for c in claims],
            },
            indent=1,
            default=repr,
        )
    )
    for f in (f"{name}.png", f"{name}.nc", f"{name}.claims.json"):  # the claims last: they point to the data
        os.replace(tmp / f, out / f)


def write_report(out: Path) -> Path:
    """Collect every ``*.claims.json`` in ``out`` into ``REPORT.md`` (written atomically). A claims file that
    cannot be read (truncated, not JSON, wrong layout) is skipped and named in the report."""
    rows = []
    unreadable = []
    for p in sorted(out.glob("*.claims.json")):
        try:
            rec = json.loads(p.read_text())
            got = [(rec["figure"], rec.get("preset", ""), c) for c in rec["claims"]]
            for _, _, c in got:
                c["status"], c["id"], c["statement"]  # noqa: B018  (the fields the table needs)
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(p.name)
            continue
        rows += got
    lines = [
        "# Claim report",
        "",
        "Generated by `python -m figures`; one row per claim. *not reproduced* marks a paper claim",
        "that does not hold in the toy (the reason is in the last column).",
        "",
        "| figure | claim | statement | theory | simulated | statistic | status | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    for fig, preset, c in rows:
        lines.append(
            f"| {fig} ({preset}) | {esc(c['id'])} | {esc(c['statement'])} | {esc(c['theory'])} | "
            f"{esc(c['measured'])} | {esc(c['statistic'])} | **{c['status']}** | {esc(c.get('finding', ''))} |"
        )
    n_fail = sum(c["status"] == "FAIL" for _, _, c in rows)
    n_nr = sum(c["status"] == "not reproduced" for _, _, c in rows)
    lines += ["", f"{len(rows)} claims: {len(rows) - n_fail - n_nr} pass, {n_nr} not reproduced, {n_fail} fail."]
    if unreadable:
        lines += ["", f"Skipped {len(unreadable)} unreadable claims file(s): {', '.join(unreadable)} (rerun those "
                  "figures)."]
    path = out / "REPORT.md"
    _write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def float64(fn):
    """Run ``fn`` (a figure's ``compute``, or a worker of it) with ``jax.enable_x64(True)``: the one place where a
    figure asks for float64 (the flag is thread-local, so a worker thread needs it too)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import jax

        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper


def annotate_diverged(fig, n_div: int, n_runs: int) -> None:
    """The count of diverged runs, in red below the figure's bottom left (never a silent omission; the tight
    bounding box of the saved PNG takes it in)."""
    fig.text(0.005, -0.01, f"{n_div} of {n_runs} runs diverged (flagged in the data; see the claims for how each "
             "figure treats them)",
             color="C3", fontsize=8, ha="left", va="top")


def mean_se(x, dim: str = "seed", *, axis=None, skipna: bool = False):
    """The mean and its standard error (std with ddof = 1 over sqrt(n)): the one stats helper of the figures.

    An xarray DataArray: over ``dim``, in float64 (float32 accumulation over thousands of seeds is not exact
    enough), NaNs skipped and not counted. A NumPy array: over ``axis`` (None: every entry), in the array's dtype;
    ``skipna=True`` skips non-finite entries (e.g. runs masked out with ``where(~diverged)``) and counts only the
    finite ones in n."""
    if hasattr(x, "dims"):
        x = x.astype(np.float64)
        n = x.count(dim)
        return x.mean(dim), x.std(dim, ddof=1) / np.sqrt(n)
    x = np.asarray(x)
    if skipna:
        return np.nanmean(x, axis), np.nanstd(x, axis, ddof=1) / np.sqrt(np.sum(np.isfinite(x), axis))
    n = x.size if axis is None else x.shape[axis]
    return x.mean(axis), x.std(axis, ddof=1) / np.sqrt(n)


def zscores(samples, theory, axis: int = 0, floor: float = 1e-12):
    """|mean - theory| / SE along ``axis`` (float64). Deterministic entries (SE = 0) use ``floor``
    times max(1, |theory|) as their scale, i.e. they must agree to float rounding."""
    m, se = mean_se(np.asarray(samples, dtype=np.float64), axis=axis)
    th = np.asarray(theory, dtype=np.float64)
    scale = np.maximum(se, floor * np.maximum(1.0, np.abs(th)))
    return np.abs(m - th) / scale, m, se


def band(ax, x, samples, color, label=None, axis: int = 0, lw=1.0):
    """Mean +- 2 SE band of ``samples`` along ``axis``."""
    m, se = mean_se(np.asarray(samples, dtype=np.float64), axis=axis)
    ax.fill_between(x, m - 2 * se, m + 2 * se, color=color, alpha=0.25, lw=0)
    ax.plot(x, m, color=color, lw=lw, label=label)
