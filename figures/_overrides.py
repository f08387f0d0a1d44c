"""A figure's configuration from a preset and ``--set KEY=VALUE`` overrides: parsing by the fields' type hints,
dotted paths into nested configs, the fields a figure sets itself (``SET_BY_FIGURE``: refused as knobs), and one
validation (the configs validate themselves at construction: :class:`sims.config.Config`)."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from sims import config as _config

__all__ = ["UserError", "set_by_figure", "set_in_panels", "walk_fields", "parse_override", "replace_paths",
           "replace_path", "overrides", "resolve_config"]


class UserError(ValueError):
    """Bad input from the user: reported as one line, exit status 2, nothing written."""


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


def set_in_panels(cfg) -> dict[str, str]:
    """Knobs that one panel (or variant) of a figure replaces with its own value while the others use the knob
    (``Config.SET_IN_PANELS``: path -> where and what): still knobs, and ``--help`` says where they do not apply."""
    return dict(getattr(type(cfg), "SET_IN_PANELS", {}))


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


def parse_override(cfg, item: str) -> tuple[str, Any]:
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
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(names)}")
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


def overrides(cfg, *items: str):
    """``cfg`` with ``--set``-style ``KEY=VALUE`` items applied (parsed and validated as on the command line);
    raises :class:`UserError`. Figures write their tiny preset this way."""
    changes = dict(parse_override(cfg, item) for item in items)
    try:
        return replace_paths(cfg, changes)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None


def resolve_config(fig, preset: str = "quick", seeds: int | None = None, sets=()):
    """A figure's (a :class:`~figures._contract.Figure`, or its module) preset + ``--seeds`` + ``--set``
    overrides, validated. Raises :class:`UserError`."""
    fig = getattr(fig, "FIGURE", fig)
    if preset not in fig.presets:
        raise UserError(f"unknown preset {preset!r}; valid: {', '.join(fig.presets)}")
    cfg = fig.presets[preset]
    changes = dict(parse_override(cfg, item) for item in sets)
    if seeds is not None:
        if "seeds" not in {f.name for f in dataclasses.fields(cfg)}:
            raise UserError(f"figure {fig.name} has no seeds parameter")
        changes["seeds"] = seeds
    try:
        return replace_paths(cfg, changes)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
