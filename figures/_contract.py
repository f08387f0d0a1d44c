"""The figure contract and the registry derived from it.

Each figure module ``figures/NAME.py`` declares one :class:`Figure` named ``FIGURE``: its name, paper,
description, config class, presets (``tiny`` for the tests, ``quick`` for ``make figures``, ``full`` at paper
scale), and three functions::

    compute(cfg) -> xarray.Dataset      # uses the sweep engine / the experiments in sims/
    claims(ds, cfg) -> list[Claim]      # theory vs measurement
    plot(ds, cfg) -> matplotlib Figure

The registry is every module of ``figures/`` whose name does not start with ``_`` (``python -m figures all``
runs them in alphabetical order); adding a figure is adding one file. :func:`contract_errors` says what a module
lacks.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from figures._overrides import UserError

__all__ = ["Figure", "Regime", "PRESET_NAMES", "TRAINED_AT_TINY", "names", "load", "contract_errors",
           "declared_claims", "float64"]

HERE = Path(__file__).resolve().parent
PRESET_NAMES = ("tiny", "quick", "full")
# the not_at_tiny of the trained-transformer figures
TRAINED_AT_TINY = MappingProxyType({"*": "a transformer trained for a few steps at d = 16 has not formed its "
                                          "mechanism yet: the claims run and state a status"})


class Regime(NamedTuple):
    """The settings a claim is about: ``text`` says them (shown by ``figures claims NAME`` and in the claims JSON);
    ``holds(cfg)`` is False for a run outside them, whose claim is then reported *n/a* with ``text`` as the
    reason instead of pass / FAIL (an exploratory run outside a paper's setting is not a failed reproduction)."""

    text: str
    holds: Callable[[Any], bool]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Figure:
    """One figure: what it reproduces and how (see the module docstring).

    ``not_at_tiny``: claim id -> why it cannot hold at the tiny size (too few seeds or steps for the effect);
    ``{"*": why}`` when none of the figure's claims can (a trained model that has not formed its mechanism yet).
    Every other claim must pass or be a documented *not reproduced* at the tiny size (the tests hold this).
    ``regimes``: claim id (or ``"*"``: every claim) -> the :class:`Regime` it is about."""

    name: str
    paper: str
    description: str
    config: type
    presets: Mapping[str, object]
    compute: Callable
    claims: Callable
    plot: Callable
    not_at_tiny: Mapping[str, str] = dataclasses.field(default_factory=dict)
    regimes: Mapping[str, Regime] = dataclasses.field(default_factory=dict)

    def regime_of(self, claim_id: str) -> Regime | None:
        return self.regimes.get(claim_id) or self.regimes.get("*")

    def __post_init__(self):
        missing = [p for p in PRESET_NAMES if p not in self.presets]
        if missing:
            raise TypeError(f"figure {self.name}: presets lack {missing} (need {list(PRESET_NAMES)})")
        for k, v in self.presets.items():
            if not isinstance(v, self.config):
                raise TypeError(f"figure {self.name}: preset {k!r} is a {type(v).__name__}, not its config "
                                f"{self.config.__name__}")
        for f in ("compute", "claims", "plot"):
            if not callable(getattr(self, f)):
                raise TypeError(f"figure {self.name}: {f} is not callable")


def names() -> tuple[str, ...]:
    """Every figure, from the files in ``figures/`` (alphabetical)."""
    return tuple(sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_")))


def contract_errors(module) -> list[str]:
    """What keeps ``module`` from being a figure (empty when it is one)."""
    name = module.__name__.rsplit(".", 1)[-1]
    fig = getattr(module, "FIGURE", None)
    if not isinstance(fig, Figure):
        return [f"figures.{name} declares no FIGURE = Figure(...)"]
    if fig.name != name:
        return [f"figures.{name}: FIGURE.name is {fig.name!r}, not the module's name"]
    return []


@functools.cache
def load(name: str) -> Figure:
    """The :class:`Figure` of ``figures/NAME.py``; an unknown name is a :class:`UserError` listing the known ones."""
    if name not in names():
        raise UserError(f"unknown figure {name!r}; known figures: {', '.join(names())}")
    module = importlib.import_module(f"figures.{name}")
    errs = contract_errors(module)
    if errs:
        raise TypeError("; ".join(errs))
    return module.FIGURE


def _text(node) -> str:
    """The text of a claim field as written: a string literal, an f-string (its template), or the expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
                       for v in node.values)
    return "{" + ast.unparse(node) + "}"


def declared_claims(fig: Figure) -> list[dict]:
    """The claims a figure states, read from the source of its ``claims`` function without running it: id,
    statement and statistic as written (``{...}`` marks a value filled in at run time), and the regime."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(fig.claims)))
    out = []
    for node in ast.walk(tree):
        f = getattr(node, "func", None)
        if isinstance(node, ast.Call) and (getattr(f, "id", None) or getattr(f, "attr", None)) == "Claim":
            kw = {k.arg: _text(k.value) for k in node.keywords if k.arg in ("id", "statement", "statistic")}
            if "id" in kw:
                reg = fig.regime_of(kw["id"])
                out.append(kw | {"regime": reg.text if reg else "", "line": node.lineno})
    return sorted(out, key=lambda c: c["line"])


def float64(fn):
    """Run ``fn`` (a figure's ``compute``, or a worker of it) with ``jax.enable_x64(True)``: the one place where a
    figure asks for float64 (the flag is thread-local, so a worker thread needs it too)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import jax

        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper
