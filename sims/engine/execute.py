"""Running compiled work: one chunk of a sweep (:func:`execute_chunk`), a call that Ctrl-C interrupts at once
(:func:`interruptible`), and several independent calls at the same time (:func:`concurrent`).

A compiled call cannot be interrupted, and Python handles Ctrl-C only between bytecodes of the main thread, so
the engine runs compiled work in worker threads while the main thread waits in short joins: a KeyboardInterrupt
is raised within ~0.1 s; the abandoned work runs on in daemon threads until it ends or the process exits (the
figures CLI exits at once). Workers run under the caller's context (:func:`sims.engine.options.in_callers_context`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sims.engine import build, distributed
from sims.engine.options import in_callers_context
from sims.engine.plan import SweepPlan

__all__ = ["execute_chunk", "interruptible", "concurrent", "side_by_side"]


def execute_chunk(p: SweepPlan, h0: int, s0: int, sink: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Run hparam points ``h0 ..`` x seeds ``s0 ..`` of the plan over every device of every process; returns
    ``final/NAME`` and ``traj/NAME`` arrays of shape (points, seeds, ...), whole, on every process. ``sink``
    receives the progress ticks of this chunk.

    Device ``g`` of the global device list takes seeds ``s0 + g * s_dev ..`` (``s_dev`` = the plan's seeds per
    device) and runs the one-device program on them; its process launches it (every process makes the same
    call), the outputs form one global array over the mesh, and :func:`~sims.engine.distributed.gather` brings it
    whole to every host. Why not one partitioned program: XLA's CPU backend optimizes a module of several
    partitions differently (jit over the global mesh or ``shard_map``: measured 1-ulp differences in 80 of 440
    records of the quadratic sim against one device), and the bits must not depend on the device count."""
    devices = tuple(jax.devices())
    s_dev = p.seeds_per_chunk // len(devices)
    h_c = p.points_per_chunk
    hp_idx = np.minimum(np.arange(h0, h0 + h_c), p.n_points - 1)  # pad by repeating the last
    hps_host = {k: v[hp_idx] for k, v in p.flat.items()}
    if not hps_host:  # a sweep over seeds alone: vmap needs one mapped leaf (runs ignore this key)
        hps_host = {"__point__": np.zeros(h_c, np.int32)}
    batched = build.batched(p.run)
    program = batched.program(h_c)
    outs = []  # (global position, (final, traj)) of this process's devices, dispatched before any is awaited
    with batched.hub.sink(sink):
        for g, dev in enumerate(devices):
            if dev.process_index != jax.process_index():
                continue
            # extra seeds beyond `seeds` are computed and dropped afterwards
            seed_idx = jnp.arange(s0 + g * s_dev, s0 + (g + 1) * s_dev)
            keys = jax.device_put(jax.vmap(lambda i: jax.random.fold_in(p.key, i))(seed_idx), dev)
            hps = {k: jax.device_put(jnp.asarray(v), dev) for k, v in hps_host.items()}
            outs.append((g, program(keys, hps)))
        jax.block_until_ready([o for _, o in outs])
    nh = min(h_c, p.n_points - h0)
    ns = min(p.seeds_per_chunk, p.seeds - s0)
    final, traj = distributed.gather_chunk([o for _, o in outs], devices)
    cut = lambda x: x[:nh, :ns]  # noqa: E731
    return {f"final/{k}": cut(v) for k, v in final.items()} | {f"traj/{k}": cut(v) for k, v in traj.items()}


def _wait(threads: Sequence[threading.Thread]) -> None:
    for t in threads:
        while t.is_alive():
            t.join(0.1)


def interruptible(fn: Callable, *args):
    """``fn(*args)`` in a worker thread while the main thread waits in short, interruptible joins (see the module
    docstring). Off the main thread ``fn`` simply runs inline (its caller is the one to interrupt)."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    return concurrent([lambda: fn(*args)], max_workers=1)[0]


def side_by_side() -> int:
    """How many independent sweeps (or chunks of one sweep: ``sweep(workers=...)``) a figure runs at once
    (``concurrent(thunks, max_workers=side_by_side())``): 2 on a CPU backend with >= 2 cores in one process, where
    one sweep of small matmuls leaves the second core idle part of the time (two char-LM sweeps at once: 12-19%
    faster than one after the other, 2 cores; the same programs, the same bits), 1 elsewhere (an accelerator runs
    one program at a time, and two sweeps would hold twice the memory; several processes must make the same calls
    in the same order)."""
    if jax.process_count() > 1:
        return 1
    return 2 if jax.default_backend() == "cpu" and (os.cpu_count() or 1) >= 2 else 1


def concurrent(thunks: Sequence[Callable[[], Any]], max_workers: int = 4) -> list:
    """Run independent thunks (each e.g. a sweep) at the same time, at most ``max_workers`` at once, each under the
    caller's context (options, x64, matmul precision, default device); returns their results in order. The first
    exception (in the order of ``thunks``) is raised once all have stopped. Ctrl-C in the main thread raises
    KeyboardInterrupt at once and starts no further thunk."""
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    out: list = [None] * len(thunks)
    errs: dict[int, BaseException] = {}
    stop = threading.Event()
    slots = threading.Semaphore(max_workers)

    def work(i, thunk):
        try:
            if not stop.is_set():
                out[i] = thunk()
        except BaseException as e:  # re-raised in the caller's thread
            errs[i] = e
        finally:
            slots.release()

    threads = []
    try:
        for i, th in enumerate(thunks):
            while not slots.acquire(timeout=0.1):
                pass
            if stop.is_set() or errs:
                slots.release()
                break
            t = threading.Thread(target=in_callers_context(work, i, th), name=f"sweep-work-{i}", daemon=True)
            t.start()
            threads.append(t)
        _wait(threads)
    except BaseException:
        stop.set()
        raise
    if errs:
        raise errs[min(errs)]
    return out
