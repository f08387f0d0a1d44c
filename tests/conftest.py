"""Shared test fixtures. Tests state the prediction, the statistic and why the tolerance is what it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# pytest-xdist starts one JAX process per worker: on a GPU each would preallocate 75% of the memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def getkey():
    """A fresh typed key per call (equinox style), deterministic per test."""
    state = {"key": jax.random.key(1234)}

    def _next():
        state["key"], sub = jax.random.split(state["key"])
        return sub

    return _next


def interrupt_after_first_chunk(args, out: Path, env: dict) -> tuple[int, str, float]:
    """Start ``python args... --out OUT``, send SIGINT once a first sweep chunk is saved under OUT/.sweep_cache,
    and return (exit status, stderr, seconds from the signal to the exit)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, *args, "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    cache = out / ".sweep_cache"
    t0 = time.time()
    while not list(cache.rglob("chunk_*.npz")) and proc.poll() is None and time.time() - t0 < 300:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    t_sig = time.time()
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err, time.time() - t_sig


def run_py(args, env_extra=None, timeout=600, cwd=ROOT):
    """Run ``python args...`` in a subprocess with the repo on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["MPLBACKEND"] = "Agg"
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
