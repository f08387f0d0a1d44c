"""The chunk cache: each finished chunk of a sweep saved as ``CACHE_DIR/<sweep_id>/chunk_h<H>_s<S>.npz``, written
atomically, so an interrupted sweep resumes where it stopped with the same bits. A damaged file is recomputed.
:func:`usage` and :func:`prune` show and clear a cache folder."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from sims.engine.plan import SweepPlan

__all__ = ["chunk_path", "load", "save", "usage", "prune"]

log = logging.getLogger("sims.sweep")


def chunk_path(p: SweepPlan, cache_dir, h0: int, s0: int) -> Path | None:
    return None if cache_dir is None else Path(cache_dir) / p.sweep_id / f"chunk_h{h0}_s{s0}.npz"


def load(p: SweepPlan, cache_dir, h0: int, s0: int) -> dict | None:
    """A finished chunk from the cache, or None (absent or unreadable: it is recomputed)."""
    path = chunk_path(p, cache_dir, h0, s0)
    if path is None or not path.exists():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # a damaged file is not data
        log.warning("sweep cache: unreadable chunk %s is recomputed", path)
        return None


def save(p: SweepPlan, cache_dir, h0: int, s0: int, res: dict) -> None:
    """Save a chunk atomically (temporary file, then rename): an interruption loses only the chunk in flight."""
    path = chunk_path(p, cache_dir, h0, s0)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **res)
    os.replace(tmp, path)


def usage(cache_dir) -> list[tuple[str, int, int, float]]:
    """(sweep id, chunk files, bytes, last modified as a POSIX time) of every sweep in ``cache_dir``, newest first."""
    root = Path(cache_dir)
    rows = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir():
                files = list(d.glob("*.npz"))
                rows.append((d.name, len(files), sum(f.stat().st_size for f in files),
                             max((f.stat().st_mtime for f in files), default=d.stat().st_mtime)))
    return sorted(rows, key=lambda r: -r[3])


def prune(cache_dir, keep: int = 0) -> list[str]:
    """Delete every cached sweep in ``cache_dir`` but the ``keep`` most recently written; returns the ids removed."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    gone = [r[0] for r in usage(cache_dir)[keep:]]
    for sid in gone:
        shutil.rmtree(Path(cache_dir) / sid, ignore_errors=True)
    return gone
