"""What figure modules and the CLI import, gathered from the modules that hold it (one concern each):

- :mod:`figures._contract`: the :class:`Figure` contract, the registry (:func:`names`, :func:`load`);
- :mod:`figures._overrides`: presets + ``--set`` overrides, :class:`UserError`;
- :mod:`figures._claims`: :class:`Claim`, :class:`Status`, statistics helpers, ``REPORT.md``;
- :mod:`figures._output`: :func:`run_figure` and its atomic outputs;
- :mod:`figures._style`: the plotting style and drawing helpers.
"""

from __future__ import annotations

from figures._claims import Claim, Status, fmt, hedges_g, mean_se, write_report, zscores
from figures._contract import TRAINED_AT_TINY, Figure, Regime, float64, load, names
from figures._output import CACHE_DIR, OUT_DIR, check_out_dir, run_figure
from figures._overrides import (
    UserError,
    overrides,
    parse_override,
    replace_path,
    replace_paths,
    resolve_config,
    set_by_figure,
    set_in_panels,
    walk_fields,
)
from figures._style import annotate_diverged, band, style
from sims.config import Config as Validated  # base of every figure Config: validated at construction
from sims.config import param
from sims.config import range_text as _range_text
from sims.engine.results import Diverged

__all__ = ["Claim", "Status", "fmt", "hedges_g", "mean_se", "zscores", "write_report", "Figure", "Regime",
           "TRAINED_AT_TINY", "float64", "load", "names", "CACHE_DIR", "OUT_DIR", "check_out_dir", "run_figure",
           "UserError",
           "overrides", "parse_override", "replace_path", "replace_paths", "resolve_config", "set_by_figure",
           "set_in_panels", "walk_fields", "annotate_diverged", "band", "style", "Validated", "param", "_range_text",
           "Diverged"]
