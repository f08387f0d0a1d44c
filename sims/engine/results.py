"""Sharing an experiment's result between figures: a config-keyed cache held in the options, and the error an
experiment raises when its runs diverged where it cannot exclude them.

``shared(fn, *args)`` returns ``fn(*args)``, computed once per (function, arguments) inside a block that set
``options(results=ResultCache())`` (the figures CLI does, for a whole ``figures all``); elsewhere it simply calls
``fn``. The arguments are the experiment's frozen configs and scalars (hashable), so the key is the config.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sims.engine.options import current

__all__ = ["Diverged", "ResultCache", "shared"]


class Diverged(RuntimeError):
    """Runs diverged where the experiment cannot exclude them (e.g. every seed of a trained model): the figures
    CLI reports it as one line naming the count and the setting, exit status 1, nothing written for that figure."""


class ResultCache:
    """Results of experiments keyed by (function, arguments); thread-safe, each computed once (a second caller of
    the same key waits for the first)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._done: dict = {}
        self._busy: dict = {}

    def get(self, fn: Callable, *args) -> Any:
        key = (fn.__module__, fn.__qualname__, args)
        while True:
            with self._lock:
                if key in self._done:
                    return self._done[key]
                ev = self._busy.get(key)
                if ev is None:
                    ev = self._busy[key] = threading.Event()
                    break
            ev.wait()
        try:
            out = fn(*args)
            with self._lock:
                self._done[key] = out
            return out
        finally:
            with self._lock:
                self._busy.pop(key, None)
            ev.set()

    def __len__(self) -> int:
        return len(self._done)


def shared(fn: Callable, *args) -> Any:
    """``fn(*args)`` through the options' :class:`ResultCache` when one is set, else computed directly."""
    cache = current().results
    return fn(*args) if cache is None else cache.get(fn, *args)
