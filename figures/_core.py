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
import math
import time
import typing
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"
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
)


class UserError(ValueError):
    """Bad input from the user: reported as one line, exit status 2, nothing written."""


# --------------------------------------------------------------------------------------
# config fields with ranges
# --------------------------------------------------------------------------------------
def param(default, *, ge=None, gt=None, le=None, lt=None, choices=None, help: str = ""):
    """A dataclass field with a valid range, checked by :func:`validate`."""
    md = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "help": help}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults")
    return dataclasses.field(default=default, metadata=md)


def _range_text(md) -> str:
    parts = []
    if md.get("ge") is not None:
        parts.append(f">= {md['ge']}")
    if md.get("gt") is not None:
        parts.append(f"> {md['gt']}")
    if md.get("le") is not None:
        parts.append(f"<= {md['le']}")
    if md.get("lt") is not None:
        parts.append(f"< {md['lt']}")
    if md.get("choices") is not None:
        parts.append(f"one of {list(md['choices'])}")
    return " and ".join(parts) or "any value"


def validate(cfg) -> None:
    """Check every field against its range; raise :class:`UserError` naming it."""
    for f in dataclasses.fields(cfg):
        md = f.metadata
        v = getattr(cfg, f.name)
        vals = v if isinstance(v, tuple) else (v,)
        for x in vals:
            ok = True
            if md.get("choices") is not None:
                ok = x in md["choices"]
            elif isinstance(x, (int, float)) and not isinstance(x, bool):
                if isinstance(x, float) and not math.isfinite(x):
                    ok = False
                if md.get("ge") is not None and not x >= md["ge"]:
                    ok = False
                if md.get("gt") is not None and not x > md["gt"]:
                    ok = False
                if md.get("le") is not None and not x <= md["le"]:
                    ok = False
                if md.get("lt") is not None and not x < md["lt"]:
                    ok = False
            if not ok:
                raise UserError(f"{f.name}={v!r} is out of range: must be {_range_text(md)}")
    check = getattr(cfg, "check", None)
    if check is not None:
        try:
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


def parse_override(cfg_cls, cfg, item: str) -> tuple[str, Any]:
    """``key=value`` -> (key, typed value) using the dataclass's type hints."""
    if "=" not in item:
        raise UserError(f"--set expects key=value, got {item!r}")
    key, text = item.split("=", 1)
    key = key.strip()
    hints = typing.get_type_hints(cfg_cls)
    names = [f.name for f in dataclasses.fields(cfg)]
    if key not in names:
        raise UserError(f"unknown config key {key!r}; valid keys: {', '.join(names)}")
    tp = hints[key]
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        el = args[0]
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise UserError(f"{key}: expected a comma-separated list of {el.__name__}")
        return key, tuple(_parse_scalar(el, p.strip(), key) for p in parts)
    return key, _parse_scalar(tp, text, key)


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
        cfg = dataclasses.replace(cfg, **changes)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    validate(cfg)
    return cfg


def style():
    plt.style.use(STYLE)


def run_figure(name: str, preset: str = "quick", seeds: int | None = None, sets=(), out: Path | None = None):
    """Compute, check and draw one figure. Returns its claims."""
    import xarray as xr  # noqa: F401  (imported lazily: `figures list` stays fast)

    mod = load(name)
    cfg = resolve_config(mod, preset, seeds, sets)
    out = Path(out) if out is not None else OUT_DIR
    t0 = time.perf_counter()
    ds = mod.compute(cfg)
    claims = mod.claims(ds, cfg)
    for c in claims:
        c.figure = name
    style()
    fig = mod.plot(ds, cfg)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png")
    plt.close(fig)
    ds = ds.copy()
    ds.attrs["figure"] = name
    ds.attrs["preset"] = preset
    ds.attrs["figure_config"] = json.dumps(dataclasses.asdict(cfg), default=repr)
    ds.to_netcdf(out / f"{name}.nc", engine="h5netcdf")
    elapsed = time.perf_counter() - t0
    (out / f"{name}.claims.json").write_text(
        json.dumps(
            {
                "figure": name,
                "paper": mod.PAPER,
                "preset": preset,
                "config": dataclasses.asdict(cfg),
                "seconds": round(elapsed, 2),
                "claims": [dataclasses.asdict(c) | {"status": c.status} for c in claims],
            },
            indent=1,
            default=repr,
        )
    )
    write_report(out)
    return claims


def write_report(out: Path) -> Path:
    """Collect every ``*.claims.json`` in ``out`` into ``REPORT.md``."""
    rows = []
    for p in sorted(out.glob("*.claims.json")):
        rec = json.loads(p.read_text())
        for c in rec["claims"]:
            rows.append((rec["figure"], rec.get("preset", ""), c))
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
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def mean_se(x, dim: str = "seed"):
    """Mean and standard error over ``dim`` of an xarray DataArray (float64; NaNs skipped)."""
    x = x.astype(np.float64)  # float32 accumulation over thousands of seeds is not exact enough
    n = x.count(dim)
    return x.mean(dim), x.std(dim, ddof=1) / np.sqrt(n)


def zscores(samples, theory, axis: int = 0, floor: float = 1e-12):
    """|mean - theory| / SE along ``axis`` (float64). Deterministic entries (SE = 0) use ``floor``
    times max(1, |theory|) as their scale, i.e. they must agree to float rounding."""
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[axis]
    m = x.mean(axis)
    se = x.std(axis, ddof=1) / np.sqrt(n)
    th = np.asarray(theory, dtype=np.float64)
    scale = np.maximum(se, floor * np.maximum(1.0, np.abs(th)))
    return np.abs(m - th) / scale, m, se


def band(ax, x, samples, color, label=None, axis: int = 0, lw=1.0):
    """Mean +- 2 SE band of ``samples`` along ``axis``."""
    s = np.asarray(samples, dtype=np.float64)
    m = s.mean(axis)
    se = s.std(axis, ddof=1) / np.sqrt(s.shape[axis])
    ax.fill_between(x, m - 2 * se, m + 2 * se, color=color, alpha=0.25, lw=0)
    ax.plot(x, m, color=color, lw=lw, label=label)
