"""The options a sweep runs under, as one frozen object held in one context variable.

Nothing here is module-level mutable state: :data:`OPTIONS` is a :class:`contextvars.ContextVar` whose value is an
immutable :class:`Options`. :func:`options` sets it for a block (the figures CLI: cache folder, --force, a
provenance collector); a sweep's own arguments win over it. Worker threads the engine starts run in a copy of the
caller's context (:func:`in_callers_context`), together with JAX's thread-local settings (x64, default matmul
precision, default device), so a sweep started inside ``with jax.enable_x64(True)`` computes in float64 in every
thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax

__all__ = ["Options", "OPTIONS", "current", "options", "in_callers_context"]


@dataclasses.dataclass(frozen=True)
class Options:
    """What a sweep needs besides its plan.

    cache_dir: folder of finished sweep chunks (resume after an interruption); None: no cache.
    progress: show a progress bar (terminal / Jupyter) or periodic log lines (stderr redirected).
    allow_large: run a sweep whose estimated memory exceeds what is available (the CLI's ``--force``).
    collectors: lists that receive one provenance record per finished sweep (:func:`sims.engine.provenance.collect`).
    results: a :class:`sims.engine.results.ResultCache` that experiments share trained results through, or None.
    """

    cache_dir: str | os.PathLike | None = None
    progress: bool = True
    allow_large: bool = False
    collectors: tuple = ()
    results: Any = None


OPTIONS: contextvars.ContextVar[Options] = contextvars.ContextVar("toy_theory_sweep_options", default=Options())  # noqa: B039 (frozen)


def current() -> Options:
    """The options in force in this context."""
    return OPTIONS.get()


@contextlib.contextmanager
def options(**changes) -> Iterator[Options]:
    """Within the block, sweeps run under the current options with ``changes`` applied (unknown names are a
    ``TypeError``); the previous options come back on exit, also after an exception."""
    token = OPTIONS.set(dataclasses.replace(OPTIONS.get(), **changes))
    try:
        yield OPTIONS.get()
    finally:
        OPTIONS.reset(token)


def in_callers_context(fn: Callable, *args, **kwargs) -> Callable[[], Any]:
    """A thunk that runs ``fn(*args, **kwargs)`` in another thread under the caller's context: the context
    variables (these options among them) and JAX's thread-local settings, read now, in the caller's thread."""
    ctx = contextvars.copy_context()
    x64 = bool(jax.config.jax_enable_x64)
    prec = jax.config.jax_default_matmul_precision
    dev = jax.config.jax_default_device

    def thunk():
        with jax.enable_x64(x64), jax.default_matmul_precision(prec), jax.default_device(dev):
            return ctx.run(fn, *args, **kwargs)

    return thunk
