"""The figures of the suite: one module per figure (``figures/NAME.py``, each declaring ``FIGURE``), a CLI
(``python -m figures --help``) and this Python API:

- ``figures.run(name, preset="quick", *sets, seeds=None, out=None)`` -> a ``Result`` with ``.dataset``
  (xarray), ``.claims``, ``.figure`` (matplotlib), ``.config`` and ``.overrides``; ``sets`` are ``KEY=VALUE``
  strings as ``--set`` takes them; with ``out`` the files are written too.
- ``figures.open_run(path)`` -> the ``Result`` of a saved ``.nc`` (Dataset, Config rebuilt, claims).
- ``figures.replot(result_or_path)`` -> draw again without recomputing.
- ``figures.recheck(result_or_path)`` -> its claims evaluated again by the current code on the saved data.
- ``figures.compare(a, b)`` -> two saved runs' configs and claims side by side (text).
- ``figures.claims(name)`` -> what a figure claims (statement, statistic, regime), without running it.
- ``figures.names()`` -> every figure; ``figures.load(name)`` -> its ``Figure`` (presets, config, functions).

Importing a figure does not choose a matplotlib backend (a notebook keeps its own).
"""

from __future__ import annotations

__all__ = ["run", "open_run", "replot", "recheck", "compare", "claims", "names", "load"]


def __getattr__(name):  # lazy: `python -m figures list` and `import figures.x` stay light
    if name in ("run", "open_run", "replot", "recheck", "compare", "claims"):
        from figures import _api

        return getattr(_api, name)
    if name in ("names", "load"):
        from figures import _contract

        return getattr(_contract, name)
    raise AttributeError(f"module 'figures' has no attribute {name!r}")
