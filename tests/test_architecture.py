"""Architecture rules read from the source by the AST (nothing is imported to check them):

1. No module-level mutable state in ``sims/``: no module-level assignment of a list, dict, set, counter,
   ``itertools.count`` or ``collections`` container (compiled-program caches are ``functools.cache`` functions;
   options live in one context variable, :mod:`sims.engine.options`).
2. No import of JAX's private ``jax._src`` anywhere in the suite (the public multi-process API only).
3. Every module in ``sims/`` and ``figures/`` is short enough to read in one sitting (MAX_LINES).

Each checker is tested on a planted violation (it can fail).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# modules over MAX_LINES today, with the line count they may not grow past (split them, then remove the entry)
OVER_LIMIT: dict[str, int] = {}

_MUTABLE_CALLS = {"list", "dict", "set", "defaultdict", "OrderedDict", "Counter", "deque", "count", "WeakKeyDictionary",
                  "WeakValueDictionary", "WeakSet", "bytearray"}


def _call_name(node) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def mutable_globals(source: str) -> list[str]:
    """Names assigned a mutable container at module level (annotated or not; ALL_CAPS constants included)."""
    bad = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        mutable = isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)) or (
            isinstance(value, ast.Call) and _call_name(value) in _MUTABLE_CALLS)
        if mutable:
            for t in targets:
                name = getattr(t, "id", ast.unparse(t))
                if name != "__all__":
                    bad.append(f"{name} (line {node.lineno})")
    return bad


def private_jax_imports(source: str) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        bad += [n for n in names if n == "jax._src" or n.startswith("jax._src.")]
    return sorted(set(bad))


def _files(*dirs):
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


SIMS = {str(p.relative_to(ROOT)): p for p in _files("sims")}
ALL = {str(p.relative_to(ROOT)): p for p in _files("sims", "theory", "figures", "benchmarks", "tests", "notebooks")}
SHORT = {str(p.relative_to(ROOT)): p for p in _files("sims", "figures")}


@pytest.mark.parametrize("path", sorted(SIMS))
def test_no_module_level_mutable_state_in_sims(path):
    assert mutable_globals(SIMS[path].read_text()) == []


@pytest.mark.parametrize("path", sorted(ALL))
def test_no_private_jax_import(path):
    assert private_jax_imports(ALL[path].read_text()) == []


@pytest.mark.parametrize("path", sorted(SHORT))
def test_modules_are_short(path):
    n = len(SHORT[path].read_text().splitlines())
    assert n <= OVER_LIMIT.get(path, MAX_LINES), f"{path} has {n} lines (limit {MAX_LINES}): split it by concern"


@pytest.mark.parametrize("source, n_bad", [
    ("_X: list = []\n", 1), ("_CACHE = {}\n", 1), ("_N = itertools.count()\n", 1), ("S = set()\n", 1),
    ("import collections\nD = collections.defaultdict(list)\n", 1), ("X = (1, 2)\nY = frozenset()\n", 0),
    ("__all__ = ['a']\n", 0), ("def f():\n    x = []\n", 0),
])
def test_the_state_checker_catches_planted_state(source, n_bad):
    assert len(mutable_globals(source)) == n_bad


def test_the_private_import_checker_catches_planted_imports():
    assert private_jax_imports("from jax._src import distributed\n") == ["jax._src", "jax._src.distributed"]
    assert private_jax_imports("import jax._src.core as c\n") == ["jax._src.core"]
    assert private_jax_imports("from jax.experimental import multihost_utils\n") == []
