"""Progress of a sweep: a bar in run-steps that moves once per block of ``log_every`` steps inside a compiled chunk.

The loop (:func:`sims.engine.loop.scan_with_records`) emits a host callback at the end of some blocks. A compiled
program is cached and reused by every sweep of the same run, so the callback cannot close over one sweep's bar;
it closes over the :class:`Hub` of the program being traced (:func:`tracing`, a context variable read at trace
time), and each chunk points that hub at its own sink for as long as it runs. A run traced outside a sweep program
(a user's own ``jax.jit``) has no hub and no callback at all. Only the progress display depends on this: the
callback reads no state, so the numbers are the same with or without it.

With stderr a terminal or in Jupyter: a tqdm bar. Otherwise (a log file): a line every ``LOG_EVERY_S`` seconds
with steps done, rate and ETA.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Hub", "tracing", "current_hub", "Bar", "TICKS"]

log = logging.getLogger("sims.progress")  # INFO lines; the figures CLI shows them

TICKS = 10  # progress callbacks per run (each costs ~1-2 ms of a CPU chunk; benchmarks/RESULTS.md)
LOG_EVERY_S = 30.0  # seconds between progress lines when stderr is not a terminal

_TRACING: contextvars.ContextVar = contextvars.ContextVar("toy_theory_tracing_hub", default=None)


class Hub:
    """The host end of one compiled program's progress callback: forwards block indices to the sinks of the chunks
    in flight (none: dropped). Unordered and idempotent: a sink keeps the largest index it has seen. Chunks of one
    program that run at once (``sweep(workers=...)``) cannot be told apart by their ticks: every sink in flight
    gets every tick (they run at about the same pace; each chunk is credited in full when it ends)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sinks: list[Callable[[int], None]] = []

    def tick(self, b) -> None:
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink(int(b))

    @contextlib.contextmanager
    def sink(self, fn: Callable[[int], None] | None) -> Iterator[None]:
        if fn is None:
            yield
            return
        with self._lock:
            self._sinks.append(fn)
        try:
            yield
        finally:
            with self._lock:
                self._sinks.remove(fn)


@contextlib.contextmanager
def tracing(hub: Hub) -> Iterator[None]:
    """While a sweep program is traced, loops inside it report to ``hub``."""
    token = _TRACING.set(hub)
    try:
        yield
    finally:
        _TRACING.reset(token)


def current_hub() -> Hub | None:
    """The hub of the program being traced, or None outside a sweep program."""
    return _TRACING.get()


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython ZMQ shell), not merely when ipykernel was imported (a test runner
    that drove a kernel imports it too)."""
    if "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Bar:
    """Progress in run-steps (points x seeds x steps), advanced per block of ``log_every`` steps, with steps/s and
    ETA: tqdm in a terminal or Jupyter, periodic log lines otherwise."""

    def __init__(self, total_steps: int, n_blocks: int, per_run: int, desc: str = "sweep"):
        self.n_blocks, self.per_run, self.total = max(n_blocks, 1), per_run, total_steps
        self.lock = threading.Lock()
        self.done = 0  # steps credited so far
        self.t0 = self.last = time.monotonic()
        self.desc = desc
        self.bar = None
        in_kernel = _in_notebook()
        if in_kernel or sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, desc=desc, unit="step", unit_scale=True, leave=False,
                            disable=False if in_kernel else None)

    def _credit(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            log.info("%s: %d of %d run-steps (%.0f%%), %.3g steps/s, ETA %.0f s", self.desc, self.done,
                        self.total, 100 * self.done / max(self.total, 1), rate, eta)

    def chunk(self, runs: int) -> Callable[[int], None]:
        """The sink of a chunk of ``runs`` runs: block index -> credit. Several chunks may be in flight at once."""
        credited = [0]  # steps credited to this chunk so far

        def sink(b: int) -> None:
            steps = runs * (min(b + 1, self.n_blocks) * self.per_run // self.n_blocks)
            with self.lock:
                if steps > credited[0]:
                    self._credit(steps - credited[0])
                    credited[0] = steps

        sink.credited = credited
        return sink

    def finish_chunk(self, runs: int, sink: Callable[[int], None] | None = None) -> None:
        """Credit the rest of a finished chunk (all of it when it came from the cache: no ``sink``)."""
        with self.lock:
            done = sink.credited[0] if sink is not None else 0
            self._credit(runs * self.per_run - done)
            if sink is not None:
                sink.credited[0] = runs * self.per_run

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
