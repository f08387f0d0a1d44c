"""One sweep in one process against the same sweep in two JAX processes on this machine (multi-controller,
``sims.engine.distributed.initialize`` on 127.0.0.1, gloo collectives): wall time of the sweep (compile apart: the
first call is timed separately, then the median of 3 calls), and whether the bits agree.

The two processes share this machine's cores (each process's XLA runs its own thread pool), so on a 2-core CPU
the ideal is 1x: the row shows what the multi-process path costs, not a speed-up. On a cluster the processes are
on different hosts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from benchmarks._common import append_results

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import hashlib, json, statistics, sys, time
import jax
n = int(sys.argv[1])
if n > 1:
    from sims.engine.distributed import initialize
    initialize(f"127.0.0.1:{sys.argv[2]}", num_processes=n, process_id=int(sys.argv[3]), initialization_timeout=60)
from sims.river_valley import RiverConfig, sim
from sims.sweep import sweep
cfg = RiverConfig(a=(10.0, 5.0), sigma_hill=(1.0,), n_steps=2000, log_every=20)
def once():
    t0 = time.perf_counter()
    ds = sweep(sim(cfg), {"lr": [0.02, 0.05, 0.1, 0.15]}, fixed={"decay_fraction": 0.2}, seeds=2048,
               key=jax.random.key(0), progress=False)
    return time.perf_counter() - t0, ds
first, ds = once()
ts = [once()[0] for _ in range(3)]
digest = hashlib.sha256(ds.loss.values.tobytes()).hexdigest()[:16]
print(json.dumps({"first": first, "median": statistics.median(ts), "digest": digest, "chunks": ds.attrs["n_chunks"]}))
if n > 1:
    jax.distributed.shutdown()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(n: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    port = str(_port())
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(n), port, str(i)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    out = []
    for p in procs:
        o, e = p.communicate(timeout=1200)
        if p.returncode:
            raise RuntimeError(e[-2000:])
        out.append(json.loads(o.strip().splitlines()[-1]))
    return out


def main():
    one = _run(1)[0]
    two = _run(2)
    t2 = max(r["median"] for r in two)
    same = all(r["digest"] == one["digest"] for r in two)
    rows = [("sweep", "river valley, 4 lrs x 2048 seeds x 2000 steps (8192 runs), one chunk per device"),
            ("1 process: first call (compile + run) / median of 3", f"{one['first']:.2f} s / {one['median']:.2f} s"),
            ("2 processes: first call / median of 3 (slowest process)",
             f"{max(r['first'] for r in two):.2f} s / {t2:.2f} s"),
            ("2 processes / 1 process (median)", f"{t2 / one['median']:.2f}x the time"),
            ("bits", "identical" if same else f"DIFFER ({one['digest']} vs {[r['digest'] for r in two]})"),
            ("cores", str(os.cpu_count()))]
    append_results("Multi-process sweep: 1 vs 2 JAX processes on one machine (SPMD, gloo)", rows,
                   notes="Both processes share this machine's cores, so the time cannot halve here; the row measures "
                         "the cost of the multi-process path (plan agreement, per-device dispatch, process_allgather "
                         "of the outputs) against one process. Hash: sha256 of the loss array.")


if __name__ == "__main__":
    main()
