"""One sweep over two JAX processes (multi-controller, `jax.distributed` on 127.0.0.1, gloo collectives) equals the
single-process sweep bit for bit.

Each chunk is one SPMD program over the global mesh of both processes' devices: the seed axis is sharded over
them, each process feeds its shard, and the outputs are gathered with `process_allgather`, so every process
returns the whole Dataset. Each seed's key is fold_in(key, seed) and each run is independent, so the bits do not
depend on the number of processes (nor on the chunk layout, which follows the global device count).
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
from sims.engine.distributed import initialize
initialize(f"127.0.0.1:{sys.argv[1]}", num_processes=2, process_id=int(sys.argv[2]), initialization_timeout=60)
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
    finally:  # a failed process leaves the other blocked in a collective: never leave it behind
        for p in procs:
            if p.poll() is None:
                p.kill()
    for out in outs:  # every process holds the whole sweep
        with xr.open_dataset(out) as ds:
            assert ds.attrs["process_count"] == 2 and ds.attrs["device_count"] == 2
            assert ds.attrs["n_chunks"] >= 2 and ds.attrs["chunks_computed"] == ds.attrs["n_chunks"]
            for v in ref.data_vars:
                assert np.array_equal(ds[v].values, ref[v].values, equal_nan=True), v
            for c in ref.coords:
                assert np.array_equal(ds[c].values, ref[c].values), c


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="two CPU processes on 127.0.0.1 (the workers force CPU)")
def test_processes_built_with_other_xla_flags_refuse_at_once(tmp_path):
    """XLA flags can change float rounding, so they are part of the plan: two processes whose XLA_FLAGS differ run
    different sweeps, and each says so before computing (a collective compares the plans), naming XLA_FLAGS."""
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


ONE_PROCESS_TWO_DEVICES = """
import sys
import jax
from tests.test_multiprocess import AXES, CFG, MAX_BYTES, SEEDS
from sims.quadratic import sim
from sims.sweep import sweep
assert jax.device_count() == 2
sweep(sim(CFG), AXES, seeds=SEEDS, key=jax.random.key(7), max_bytes=MAX_BYTES, progress=False).to_netcdf(sys.argv[1])
"""


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="forced host devices are a CPU feature")
def test_two_devices_in_one_process_give_the_one_device_result_bit_for_bit(tmp_path):
    """Each device runs the one-device program on the batch one device alone would (the layout's seeds per device
    do not depend on the device count), so splitting a chunk over devices does not change the bits. Planted check:
    running each chunk as one program partitioned over the 2-device mesh (jit with sharded inputs, or shard_map)
    gave 1-ulp differences in 80 of 440 records (XLA's CPU backend optimizes a multi-partition module otherwise)."""
    ref = sweep(sim(CFG), AXES, seeds=SEEDS, key=jax.random.key(7), max_bytes=MAX_BYTES, progress=False)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"}
    r = subprocess.run([sys.executable, "-c", ONE_PROCESS_TWO_DEVICES, str(tmp_path / "two.nc")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    with xr.open_dataset(tmp_path / "two.nc") as ds:
        assert ds.attrs["device_count"] == 2
        for v in ref.data_vars:
            assert np.array_equal(ds[v].values, ref[v].values, equal_nan=True), v

