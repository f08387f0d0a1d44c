"""Several processes as one SPMD sweep: after :func:`initialize` (``jax.distributed.initialize``) every process
calls the same ``sweep(...)``; the seed axis of each chunk is split over the global device list ``jax.devices()``
of every process; each process runs the chunk's program on its own devices' seeds, the outputs form one global
array over the mesh (``jax.make_array_from_single_device_arrays``), and
:func:`jax.experimental.multihost_utils.process_allgather` brings it whole to every process, so every process
returns the whole Dataset. Cross-process collectives run over gloo on CPU, NCCL on GPU.

Before the first chunk the processes compare their plans (:func:`agree_on_plan`): a process that runs another
sweep (other arguments, code or ``XLA_FLAGS``) fails at once on every process, with the reason.

Cluster launchers: under SLURM or Open MPI, ``initialize()`` with no arguments finds the coordinator, the process
count and the process id from the environment (``jax.distributed.initialize``'s cluster detection); elsewhere give
``coordinator_address``, ``num_processes`` and ``process_id``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["initialize", "spmd", "shardings", "gather_chunk", "agree_on_plan", "any_missing"]


def initialize(*args, **kwargs) -> None:
    """``jax.distributed.initialize(*args, **kwargs)``, with gloo collectives on CPU (set before the backend
    starts: the default CPU client has none across processes)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU client only; harmless elsewhere
    jax.distributed.initialize(*args, **kwargs)


def spmd() -> bool:
    """True when several processes run this program."""
    return jax.process_count() > 1


def _check_collectives() -> None:
    if spmd() and jax.default_backend() == "cpu" and not jax.config.jax_cpu_collectives_implementation:
        raise RuntimeError("several CPU processes need cross-process collectives: call "
                           "sims.engine.distributed.initialize(...) instead of jax.distributed.initialize(...), or set "
                           "jax.config.update('jax_cpu_collectives_implementation', 'gloo') before it")


@functools.cache
def shardings(devices: tuple) -> tuple[NamedSharding, NamedSharding]:
    """(seeds split over the devices, replicated) on a 1-D mesh ``runs`` of ``devices`` (built once per set)."""
    mesh = jax.make_mesh((len(devices),), ("runs",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))
    return NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())


def gather_chunk(local_outs: list, devices: tuple) -> tuple[dict, dict]:
    """The (final, traj) dicts of a chunk as whole host arrays (points, seeds, ...), from this process's
    per-device outputs (in the order of ``devices``, each (points, seeds per device, ...)). One process:
    concatenated along seeds. Several: one global array per output over the mesh, gathered to every process."""
    if not spmd():
        return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=1), *local_outs)
    _check_collectives()
    seed_sharding = NamedSharding(shardings(devices)[0].mesh, PartitionSpec(None, "runs"))

    def one_leaf(*xs):
        shape = (xs[0].shape[0], xs[0].shape[1] * len(devices)) + xs[0].shape[2:]
        glob = jax.make_array_from_single_device_arrays(shape, seed_sharding, list(xs))
        return np.asarray(multihost_utils.process_allgather(glob, tiled=True))

    return jax.tree.map(one_leaf, *local_outs)


def agree_on_plan(sweep_id: str) -> None:
    """Every process must run the same sweep: compare the plans' ids (a collective), and fail on every process at
    once, naming the first process that differs."""
    if not spmd():
        return
    _check_collectives()
    mine = np.frombuffer(bytes.fromhex(sweep_id), dtype=np.uint8).astype(np.int32)
    ids = np.asarray(multihost_utils.process_allgather(mine))
    for q in range(ids.shape[0]):
        if not np.array_equal(ids[q], mine):
            raise RuntimeError(
                f"process {q} runs a different sweep (plan {bytes(ids[q].astype(np.uint8)).hex()}, here {sweep_id}): "
                "every process must make the same sweep() calls in the same order, with the same arguments, code "
                "and XLA_FLAGS (the build flags are part of the plan: they can change float rounding)")


def any_missing(have: np.ndarray) -> np.ndarray:
    """Per chunk: True where any process lacks it in its cache (then every process computes it: one SPMD program)."""
    have = np.asarray(have, dtype=np.int32)
    if not spmd():
        return have == 0
    return np.asarray(multihost_utils.process_allgather(have)).min(axis=0) == 0
