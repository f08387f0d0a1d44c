"""Shared benchmark helpers: timing (median of repeats, compile apart), device naming, RESULTS.md."""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from pathlib import Path

import jax

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def timeit(fn, repeats: int = 3):
    """(first-call seconds, median of ``repeats`` later calls). ``fn`` must block on its result."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return first, statistics.median(ts)


def device_line() -> str:
    d = jax.devices()[0]
    import numpy as np
    import optax

    from sims.sweep import build_flags

    flags = build_flags()
    return (f"{d.platform}:{d.device_kind} x{len(jax.devices())}; host {platform.processor() or platform.machine()}; "
            f"jax {jax.__version__}, optax {optax.__version__}, numpy {np.__version__}; "
            f"XLA_FLAGS '{flags['xla_flags']}', suite compiler options {flags['compiler_options']}")


def append_results(title: str, rows: list[tuple[str, str]], notes: str = "") -> str:
    """Print the rows and append them to RESULTS.md as a table (stamped with the time and device)."""
    width = max((len(k) for k, _ in rows), default=0)
    for k, v in rows:
        print(f"  {k:{width}s} {v}")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n## {title}", "", f"{stamp} - {device_line()}", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by `make bench` (newest last).\n")
    with RESULTS.open("a") as f:
        f.write(text)
    return text
