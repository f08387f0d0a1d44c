"""One sweep over two JAX processes (multi-controller, `jax.distributed` on 127.0.0.1) equals the single-process
sweep bit for bit.

Each process computes its share of the chunks (round-robin over the plan's chunk list), publishes them through the
coordinator's key-value store and assembles the whole Dataset, so every process returns the same data. The
chunk layout does not depend on the number of processes, so neither do the bits (each seed's key is
fold_in(key, seed) and each run is independent).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import xarray as xr

from sims.quadratic import QuadraticConfig, sim
from sims.sweep import sweep
from tests.conftest import ROOT

CFG = QuadraticConfig(a=(0.5, 2.0, 8.0), sigma=(1.0,), x0=(1.0,), n_steps=300, log_every=30)
AXES = {"lr": [0.05, 0.1, 0.2]}
SEEDS = 40
MAX_BYTES = 1_500  # small chunks (~15 runs): the plan has several, so both processes compute some

WORKER = """
import sys
import jax
jax.distributed.initialize(f"127.0.0.1:{sys.argv[1]}", num_processes=2, process_id=int(sys.argv[2]),
                           initialization_timeout=60)
from tests.test_multiprocess import AXES, CFG, MAX_BYTES, SEEDS
from sims.quadratic import sim
from sims.sweep import sweep
ds = sweep(sim(CFG), AXES, seeds=SEEDS, key=jax.random.key(7), max_bytes=MAX_BYTES, progress=False)
ds.to_netcdf(sys.argv[3])
jax.distributed.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="two CPU processes on 127.0.0.1 (the workers force CPU)")
def test_two_processes_give_the_single_process_result_bit_for_bit(tmp_path):
    ref = sweep(sim(CFG), AXES, seeds=SEEDS, key=jax.random.key(7), max_bytes=MAX_BYTES, progress=False)
    assert ref.attrs["n_chunks"] >= 4
    port = str(_free_port())
    outs = [tmp_path / f"p{i}.nc" for i in range(2)]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}  # the same compiler flags as this process: the same bits
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, port, str(i), str(outs[i])], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err[-3000:]
    finally:  # a failed process leaves the other blocked on the key-value store: never leave it behind
        for p in procs:
            if p.poll() is None:
                p.kill()
    for out in outs:  # every process holds the whole sweep
        with xr.open_dataset(out) as ds:
            assert ds.attrs["process_count"] == 2
            assert 0 < ds.attrs["chunks_computed_here"] < ref.attrs["n_chunks"]
            for v in ref.data_vars:
                assert np.array_equal(ds[v].values, ref[v].values, equal_nan=True), v
            for c in ref.coords:
                assert np.array_equal(ds[c].values, ref[c].values), c


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="two CPU processes on 127.0.0.1 (the workers force CPU)")
def test_processes_built_with_other_xla_flags_refuse_at_once(tmp_path):
    """XLA flags can change float rounding, so they are part of the plan: two processes whose XLA_FLAGS differ run
    different sweeps, and each says so before computing (seconds, not the exchange timeout), naming XLA_FLAGS."""
    port = str(_free_port())
    flags = os.environ.get("XLA_FLAGS", "")
    procs = []
    for i, extra in enumerate(("", " --xla_cpu_enable_fast_min_max=false")):
        env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags + extra}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, port, str(i), str(tmp_path / f"p{i}.nc")],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode != 0
            assert "runs a different sweep" in err and "XLA_FLAGS" in err, err[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert not any((tmp_path / f"p{i}.nc").exists() for i in range(2))
