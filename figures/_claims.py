"""Claims: one checked statement each (typed status, built by keyword), the statistics helpers the figures share,
and ``REPORT.md`` collected from the claims files of an output folder."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import re
from pathlib import Path

import numpy as np

__all__ = ["Status", "Claim", "numbers", "fmt", "mean_se", "hedges_g", "zscores", "write_report", "write_text_atomic"]


class Status(enum.Enum):
    """A claim's outcome."""

    PASS = "pass"
    NOT_REPRODUCED = "not reproduced"  # the paper's claim does not hold in the toy: the finding says why
    NOT_APPLICABLE = "n/a"  # the run's settings lie outside the claim's regime: the reason says which
    FAIL = "FAIL"


@dataclasses.dataclass(kw_only=True)
class Claim:
    """One checked statement, built by keyword (theory and measured cannot be swapped by position).

    ``passed`` says whether the measurement agrees with the prediction under ``statistic``. A paper claim that
    does not hold in the toy after bugs were ruled out carries a ``finding`` (why, with numbers): it is reported
    as *not reproduced* instead of failing. ``regime`` says the settings the claim is about (the figure's
    :class:`~figures._contract.Regime`); a run outside them sets ``not_applicable`` (the reason), and the claim is
    reported as *n/a*, whatever the measurement (which is kept).
    """

    id: str
    statement: str
    theory: str
    measured: str
    statistic: str
    passed: bool
    finding: str = ""
    figure: str = ""
    regime: str = ""
    not_applicable: str = ""

    def __post_init__(self):
        self.passed = bool(self.passed)

    @property
    def status(self) -> Status:
        if self.not_applicable:
            return Status.NOT_APPLICABLE
        if self.passed:
            return Status.PASS
        return Status.NOT_REPRODUCED if self.finding else Status.FAIL

    def to_json(self) -> dict:
        """The claim as JSON: every field, the status, and the numbers of ``theory`` and ``measured`` as numbers
        (``theory_values`` / ``measured_values``: the numbers in the text, in order; a bracketed list stays a
        list), for tools that compare runs."""
        return dataclasses.asdict(self) | {"status": self.status.value, "theory_values": numbers(self.theory),
                                           "measured_values": numbers(self.measured)}


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan"


def numbers(text: str) -> list:
    """The numbers in a claim's text, in order, as JSON numbers (inf / nan as strings); ``[a, b, c]`` stays one
    list. Words that contain digits (``L2``, ``x0``, ``1-sqrt``) are not numbers."""
    out: list = []
    for m in re.finditer(r"\[([^\[\]]*)\]|(?<![\w.])(" + _NUM + r")(?![\w]|-[A-Za-z])", str(text)):
        if m.group(1) is not None:
            inner = [_num(v) for v in re.findall(r"(?<![\w.])(" + _NUM + r")(?![\w])", m.group(1))]
            if inner:
                out.append(inner)
        else:
            out.append(_num(m.group(2)))
    return out


def _num(s: str):
    v = float(s)
    if not math.isfinite(v):
        return str(v)
    return int(v) if re.fullmatch(r"[-+]?\d+", s) else v


def fmt(x, digits: int = 4) -> str:
    if isinstance(x, (list, tuple, np.ndarray)):
        return "[" + ", ".join(fmt(v, digits) for v in np.ravel(x)) + "]"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


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


def hedges_g(a, b) -> float:
    r"""Hedges' g of ``b`` against ``a`` (two 1-D samples, e.g. one value per seed): the difference of means over
    the pooled standard deviation (ddof = 1), times the small-sample correction
    :math:`J = 1 - 3 / (4(n_a + n_b) - 9)` (Hedges 1981). Positive when ``b`` is larger."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        raise ValueError(f"Hedges' g needs >= 2 values per sample, got {na} and {nb}")
    sp = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    return float((b.mean() - a.mean()) / sp * (1 - 3 / (4 * (na + nb) - 9)))


def zscores(samples, theory, axis: int = 0, floor: float = 1e-12):
    """|mean - theory| / SE along ``axis`` (float64). Deterministic entries (SE = 0) use ``floor``
    times max(1, |theory|) as their scale, i.e. they must agree to float rounding."""
    m, se = mean_se(np.asarray(samples, dtype=np.float64), axis=axis)
    th = np.asarray(theory, dtype=np.float64)
    scale = np.maximum(se, floor * np.maximum(1.0, np.abs(th)))
    return np.abs(m - th) / scale, m, se


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(out: Path) -> Path:
    """Collect every ``*.claims.json`` in ``out`` into ``REPORT.md`` (written atomically). A claims file that
    cannot be read (truncated, not JSON, wrong layout) is skipped and named in the report."""
    rows = []
    unreadable = []
    for p in sorted(out.glob("*.claims.json")):
        try:
            rec = json.loads(p.read_text())
            label = rec.get("preset", "") + "".join(f" + {o}" for o in rec.get("overrides", []))
            got = [(rec["figure"], label, c) for c in rec["claims"]]
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
        note = c.get("not_applicable") or c.get("finding", "")
        lines.append(
            f"| {fig} ({preset}) | {esc(c['id'])} | {esc(c['statement'])} | {esc(c['theory'])} | "
            f"{esc(c['measured'])} | {esc(c['statistic'])} | **{c['status']}** | {esc(note)} |"
        )
    count = {st: sum(c["status"] == st.value for _, _, c in rows) for st in Status}
    n_na = count[Status.NOT_APPLICABLE]
    lines += ["", f"{len(rows)} claims: {count[Status.PASS]} pass, {count[Status.NOT_REPRODUCED]} not reproduced, "
              f"{count[Status.FAIL]} fail" + (f", {n_na} n/a (outside their regime)." if n_na else ".")]
    if unreadable:
        lines += ["", f"Skipped {len(unreadable)} unreadable claims file(s): {', '.join(unreadable)} (rerun those "
                  "figures)."]
    path = out / "REPORT.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
