"""Configuration fields with a type, a default, a valid range and a one-line meaning, checked at construction.

Every config of the suite (a sim's static config, a figure's Config) is a frozen dataclass. Fields made with
:func:`param` carry their range; :func:`check_fields` validates EVERY field of a config against its type
annotation (an ``int`` field takes an integer, a ``float`` field a finite number unless ``finite=False``, a tuple
field a tuple of such values, a ``bool`` field a bool) and its range, and raises ``ValueError`` naming the field,
the value and the valid range. A config calls it from ``__post_init__`` (or inherits :class:`Config`), so the
Python API and the CLI reject the same inputs with the same message, before anything is computed.

Example::

    @dataclasses.dataclass(frozen=True)
    class MyConfig(Config):
        lr: float = param(0.1, gt=0, help="peak learning rate")
        n_steps: int = param(1000, ge=1, le=10**9)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from typing import Any

import numpy as np

__all__ = ["param", "range_text", "check_fields", "Config", "field_hints", "finite_array"]


def param(default, *, ge=None, gt=None, le=None, lt=None, choices=None, finite: bool = True, unique: bool = False,
          help: str = ""):
    """A dataclass field with a valid range (``ge``/``gt``/``le``/``lt`` bounds or ``choices``) and its meaning.
    ``finite=False`` lets a float field take +-inf (never NaN); ``unique=True``: a tuple of settings (each becomes
    a run, a sweep point or a coordinate), so a repeated value is refused."""
    md = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "finite": finite, "unique": unique,
          "help": help}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults")
    return dataclasses.field(default=default, metadata=md)


def range_text(md) -> str:
    """The valid range of a field's metadata, in words."""
    parts = []
    for k, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if md.get(k) is not None:
            parts.append(f"{op} {md[k]}")
    if md.get("choices") is not None:
        parts.append(f"one of {list(md['choices'])}")
    if md.get("unique"):
        parts.append("distinct values")
    return " and ".join(parts) or "any value"


@functools.cache
def field_hints(cls) -> dict[str, Any]:
    """Resolved type annotations of a dataclass (cached per class)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved: no type check for that class
        return {}


def _kinds(tp) -> tuple[type, ...] | None:
    """Scalar kinds an annotation admits (None: unchecked)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        out = []
        for a in typing.get_args(tp):
            k = _kinds(a)
            if k is None:
                return None
            out += list(k)
        return tuple(out)
    if tp in (bool, int, float, str) or tp is type(None):
        return (tp,)
    if origin is tuple:
        return (tuple,)
    return None


def _element_type(tp):
    args = typing.get_args(tp)
    return args[0] if args and (len(args) == 1 or args[-1] is Ellipsis) else None


def _scalar_ok(x, kind) -> bool:
    if kind is bool:
        return isinstance(x, bool)
    if kind is int:
        return isinstance(x, numbers.Integral) and not isinstance(x, bool)
    if kind is float:
        return isinstance(x, numbers.Real) and not isinstance(x, bool)
    if kind is str:
        return isinstance(x, str)
    if kind is type(None):
        return x is None
    return True


def _bad_number(x, md) -> bool:
    if not isinstance(x, numbers.Real) or isinstance(x, bool):
        return False
    if isinstance(x, float) or not isinstance(x, numbers.Integral):
        xf = float(x)
        if math.isnan(xf) or (md.get("finite", True) and math.isinf(xf)):
            return True
    for k, ok in (("ge", lambda a, b: a >= b), ("gt", lambda a, b: a > b), ("le", lambda a, b: a <= b),
                  ("lt", lambda a, b: a < b)):
        if md.get(k) is not None and not ok(x, md[k]):
            return True
    return False


def check_fields(cfg) -> None:
    """Validate every field of the dataclass ``cfg``; raise ``ValueError`` naming the first bad one."""
    hints = field_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        md = f.metadata
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):  # a nested config validated itself at construction
            continue
        tp = hints.get(f.name)
        kinds = _kinds(tp) if tp is not None else None
        if kinds is not None and not any(_scalar_ok(v, k) if k is not tuple else isinstance(v, tuple)
                                         for k in kinds):
            names = " or ".join("tuple" if k is tuple else k.__name__ for k in kinds)
            raise ValueError(f"{f.name}={v!r} has the wrong type: expected {names}")
        vals = v if isinstance(v, tuple) else (v,)
        if md.get("unique") and isinstance(v, tuple) and len(set(v)) != len(v):
            dup = sorted({x for x in v if v.count(x) > 1}, key=str)
            raise ValueError(f"{f.name}={v!r} repeats {dup}: must be distinct values")
        el = _element_type(tp) if isinstance(v, tuple) and tp is not None else None
        if isinstance(v, tuple) and typing.get_origin(tp) in (typing.Union, types.UnionType):
            el = next((_element_type(a) for a in typing.get_args(tp) if typing.get_origin(a) is tuple), None)
        for x in vals:
            if el in (int, float, bool, str) and not _scalar_ok(x, el):
                raise ValueError(f"{f.name}={v!r}: every entry must be of type {el.__name__}")
            if md.get("choices") is not None:
                if x not in md["choices"]:
                    raise ValueError(f"{f.name}={v!r} is out of range: must be {range_text(md)}")
            elif _bad_number(x, md):
                extra = "" if not md.get("finite", True) else " (finite)"
                raise ValueError(f"{f.name}={v!r} is out of range: must be {range_text(md)}{extra}")


class Config:
    """Base of a validated frozen-dataclass config: construction runs :func:`check_fields` and then the
    config's own ``check()`` (cross-field rules), both raising ``ValueError`` naming the parameter."""

    def __post_init__(self):
        check_fields(self)
        check = getattr(self, "check", None)
        if check is not None:
            check()


def finite_array(name: str, v) -> np.ndarray:
    """``v`` as a float64 array; a ``ValueError`` naming ``name`` unless every entry is a finite number."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {v!r}") from None
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return a
