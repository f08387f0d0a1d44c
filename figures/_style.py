"""The figures' one plotting style and shared drawing helpers. Importing this module does not choose a matplotlib
backend (a notebook keeps its own); the CLI entry point selects Agg."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from figures._claims import mean_se

__all__ = ["STYLE", "style", "band", "annotate_diverged"]

STYLE = Path(__file__).resolve().parent / "style.mplstyle"


def style():
    plt.style.use(STYLE)


def band(ax, x, samples, color, label=None, axis: int = 0, lw=1.0):
    """Mean +- 2 SE band of ``samples`` along ``axis``."""
    m, se = mean_se(np.asarray(samples, dtype=np.float64), axis=axis)
    ax.fill_between(x, m - 2 * se, m + 2 * se, color=color, alpha=0.25, lw=0)
    ax.plot(x, m, color=color, lw=lw, label=label)


def annotate_diverged(fig, n_div: int, n_runs: int) -> None:
    """The count of diverged runs, in red below the figure's bottom left (never a silent omission; the tight
    bounding box of the saved PNG takes it in)."""
    fig.text(0.005, -0.01, f"{n_div} of {n_runs} runs diverged (flagged in the data; see the claims for how each "
             "figure treats them)",
             color="C3", fontsize=8, ha="left", va="top")


def footnote(fig, text: str, fontsize: float = 7) -> None:
    """``text`` under the axes, wrapped to the figure's width (the caption line a PNG carries with it)."""
    import textwrap
    width = max(40, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))  # characters per line at this font size
    fig.text(0.5, -0.01, textwrap.fill(text, width), ha="center", va="top", fontsize=fontsize)
