"""The sweep engine: one compiled ``jit(vmap(vmap(run)))`` call per chunk of (hparams x seeds) (``jit(vmap(run))``
for a chunk of one hparam point).

A simulation is ``make_run(cfg) -> run(key, hparams) -> (final, traj)`` where

* ``cfg`` is a static, hashable config (a frozen dataclass);
* ``key`` is a typed PRNG key (``jax.random.key``), ``hparams`` a dict of scalar arrays;
* ``final`` is a dict of per-run arrays, ``traj`` a dict of arrays whose leading axis is the
  record axis (``step``).

:func:`scan_with_records` is the one training loop every sim uses (``lax.scan`` in blocks of
``log_every`` steps, exact divergence step); :func:`sweep` executes a sweep over named hparam
axes and seeds and returns an :class:`xarray.Dataset`.

Random numbers: seed ``s`` of a sweep gets ``fold_in(key, s)`` whatever the hparams or the
chunking (common random numbers across hparams), and step ``t`` of a run gets
``fold_in(run_key, t // log_every)`` split over the block. The result is therefore the same
bits whatever the chunk size or device count.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.sharding import NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

Array = jax.Array
RunFn = Callable[[Array, Mapping[str, Array]], tuple[dict, dict]]

__all__ = [
    "LoopOut",
    "scan_with_records",
    "record_steps",
    "check_loop",
    "noise_chunk_for",
    "noise_stream",
    "sweep",
    "Sim",
    "plan",
    "SweepPlan",
    "execute_chunk",
    "interruptible",
    "allow_large",
    "cache_load",
    "cache_save",
    "assemble",
    "code_identity",
    "collect_provenance",
    "default_cache",
    "environment",
    "batched",
    "jit",
    "config_to_json",
    "tune_lr",
    "Tuned",
]


# --------------------------------------------------------------------------------------
# The shared loop
# --------------------------------------------------------------------------------------
class LoopOut(NamedTuple):
    """What :func:`scan_with_records` returns."""

    state: Any  # final state
    traj: dict  # records, leading axis = n_steps // log_every + 1 (step 0 included)
    diverged_step: Array  # int32, first step whose state is non-finite or out of bound; -1 if none


def record_steps(n_steps: int, log_every: int) -> np.ndarray:
    """Step coordinates of the records made by :func:`scan_with_records`."""
    check_loop(n_steps, log_every)
    return np.arange(0, n_steps + 1, log_every)


def noise_chunk_for(log_every: int, width: int, cap: int = 128) -> int:
    """Steps of noise per RNG call for a state of ``width`` numbers: the largest divisor of
    ``log_every`` that is <= ``cap / width``, so that one chunk of noise for ~1000 vmapped runs
    stays in cache (speed only; the bits depend on it, the statistics do not)."""
    top = max(1, cap // max(width, 1))
    return max(k for k in range(1, log_every + 1) if log_every % k == 0 and k <= top)


def check_loop(n_steps: int, log_every: int) -> None:
    """Valid step grid: n_steps >= 1, log_every >= 1, n_steps a multiple of log_every."""
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if not isinstance(log_every, (int, np.integer)) or log_every < 1:
        raise ValueError(f"log_every must be an integer >= 1, got {log_every!r}")
    if n_steps % log_every:
        raise ValueError(
            f"n_steps ({n_steps}) must be a multiple of log_every ({log_every})"
        )


def _block_key(key: Array, b, j) -> Array:
    """The key of sub-block ``j`` of record block ``b`` (one noise draw each): shared by the loop and
    :func:`noise_stream` so that both derive the same bits."""
    return jax.random.fold_in(jax.random.fold_in(key, b), j)


def _bad(state, bound: float | None) -> Array:
    """True where any leaf of ``state`` is non-finite (or exceeds ``bound`` in abs value)."""
    # One reduction per dtype over all leaves (max |x|: NaN propagates through max, inf is > any bound), not two
    # per leaf: a transformer's params + optimizer state have dozens of leaves, and each reduction is its own
    # compiled kernel (measured: 984 -> 771 kernels, ~-3 s of CPU compile for the Bigram-Backcopy run).
    by_dtype: dict = {}
    for x in jax.tree.leaves(state):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact) and x.size:
            by_dtype.setdefault(x.dtype, []).append(jnp.abs(x).ravel())
    bad = jnp.asarray(False)
    for parts in by_dtype.values():
        m = jnp.max(jnp.concatenate(parts) if len(parts) > 1 else parts[0])
        bad = bad | (~jnp.isfinite(m) if bound is None else ~(m <= bound))
    return bad


_TICKS = 10  # progress callbacks per run (at most ~2x this; each costs ~1-2 ms of a CPU chunk: 20 cost ~8% of a
# 0.3 s river-valley chunk, 5 nothing measurable)
_PROGRESS: list = []  # the sink of the chunk in flight: called with the block index as each block finishes


def _tick(b) -> None:
    """Host side of the per-block progress callback (runs in XLA's thread; a no-op outside a sweep)."""
    if _PROGRESS:
        _PROGRESS[-1](int(b))


def scan_with_records(
    key: Array,
    step_fn: Callable[[Array, Any, Array], Any],
    init_state: Any,
    record_fn: Callable[[Any, Array], dict],
    *,
    n_steps: int,
    log_every: int,
    bound: float | None = None,
    freeze_on_divergence: bool = True,
    noise: Callable[[Array, int], Any] | None = None,
    noise_chunk: int | None = None,
    unroll: int = 1,
) -> LoopOut:
    """Run ``state <- step_fn(rand_t, state, t)`` for ``t = 0..n_steps-1`` and record.

    ``rand_t`` is a fresh key per step, or, when ``noise(block_key, log_every)`` is given, the
    slice ``t`` of the noise that function draws once per ``noise_chunk`` steps (default
    ``log_every``): one batched RNG call instead of a key split per step, since these sims are
    RNG-bound. Choose ``noise_chunk`` so that a chunk of noise for all vmapped runs stays in cache.

    ``record_fn(state, t)`` is evaluated at step 0 and after every ``log_every`` steps. The
    divergence step is exact (checked every step): the first ``t + 1`` whose state is non-finite
    or has a leaf with ``|x| > bound``. With ``freeze_on_divergence`` the state stops updating
    from then on (records keep the last bad state) so that a diverged run costs no NaN storms.
    """
    check_loop(n_steps, log_every)
    n_blocks = n_steps // log_every
    tick_every = max(1, n_blocks // _TICKS)

    def one_step(carry, inp):
        state, div = carry
        k, t = inp
        new = step_fn(k, state, t)
        bad = _bad(new, bound)
        div = jnp.where((div < 0) & bad, (t + 1).astype(div.dtype), div)
        if freeze_on_divergence:
            # keep the first bad state: later steps would only produce inf/nan
            frozen = div >= 0
            new = jax.tree.map(lambda n, o: jnp.where(frozen & (div < t + 1), o, n), new, state)
        return (new, div), None

    if noise_chunk is None or noise is None:
        noise_chunk = log_every
    if noise_chunk < 1 or log_every % noise_chunk:
        raise ValueError(f"noise_chunk ({noise_chunk}) must divide log_every ({log_every})")
    n_sub = log_every // noise_chunk

    def sub_block(carry, j_b):
        j, b = j_b
        skey = _block_key(key, b, j)
        rand = noise(skey, noise_chunk) if noise is not None else jax.random.split(skey, noise_chunk)
        ts = (b * log_every + j * noise_chunk + jnp.arange(noise_chunk)).astype(jnp.int32)
        return jax.lax.scan(one_step, carry, (rand, ts), unroll=unroll)

    def run_block(carry, b):
        js = jnp.arange(n_sub, dtype=jnp.int32)
        carry, _ = jax.lax.scan(sub_block, carry, (js, jnp.full((n_sub,), b, jnp.int32)))
        # progress: the block index only (not batched, so one call for a whole vmapped chunk; unordered and
        # idempotent: the sink keeps the largest index seen), at most ~_TICKS times a run (a host callback costs
        # ~0.5 ms on CPU). It reads no state: the numbers are unchanged.
        jax.lax.cond(((b + 1) % tick_every == 0) | (b == n_blocks - 1),
                     lambda: jax.debug.callback(_tick, b, ordered=False), lambda: None)
        return carry

    def block(carry, b):
        # record the state after b blocks, then run block b (none after the last record): one copy of record_fn
        # in the compiled program instead of two (a record before the loop and one in it), the same numbers
        rec = record_fn(carry[0], b * log_every)
        carry = jax.lax.cond(b < n_blocks, run_block, lambda c, _: c, carry, b)
        return carry, rec

    div0 = jnp.where(_bad(init_state, bound), 0, -1).astype(jnp.int32)
    (state, div), traj = jax.lax.scan(block, (init_state, div0), jnp.arange(n_blocks + 1, dtype=jnp.int32))
    return LoopOut(state, traj, div)


def noise_stream(key: Array, noise: Callable[[Array, int], Any], *, n_steps: int, log_every: int,
                 noise_chunk: int | None = None) -> Any:
    """The per-step noise :func:`scan_with_records` feeds to ``step_fn`` when given ``noise`` (same key, same
    chunking), materialized: a pytree of (n_steps, ...) arrays. For independent references that must see the
    simulation's exact random inputs (e.g. a NumPy re-implementation fed the same noise)."""
    check_loop(n_steps, log_every)
    noise_chunk = noise_chunk or log_every
    if noise_chunk < 1 or log_every % noise_chunk:
        raise ValueError(f"noise_chunk ({noise_chunk}) must divide log_every ({log_every})")
    n_sub = log_every // noise_chunk
    bs, js = np.meshgrid(np.arange(n_steps // log_every), np.arange(n_sub), indexing="ij")
    keys = jax.vmap(lambda b, j: _block_key(key, b, j))(jnp.asarray(bs.ravel(), jnp.int32),
                                                          jnp.asarray(js.ravel(), jnp.int32))
    draws = jax.vmap(lambda k: noise(k, noise_chunk))(keys)
    return jax.tree.map(lambda x: x.reshape((n_steps,) + x.shape[2:]), draws)


# --------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------
_BATCHED: dict[Any, Callable] = {}


def _opt_level_set_by_user() -> bool:
    return "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", "")


def compiler_options() -> dict:
    """The XLA options :func:`jit` adds to every program here: on a CPU, LLVM at -O2 instead of XLA's default -O3,
    unless ``XLA_FLAGS`` sets ``--xla_backend_optimization_level`` itself (``make test`` sets -O0); none elsewhere.

    Why: the CPU backend compiles one LLVM kernel per fusion, and a transformer step has hundreds; -O2 cuts the
    Bigram-Backcopy compile by 1.1-1.8 s (4.7-5.0 -> 3.0-3.6 s of XLA time, 1 layer) at the same run time
    (benchmarks/RESULTS.md). The numbers: the same bits for the river valley, the quadratic, Lion, the bandits and
    the softmax and ReLU transformers (checked); within float rounding elsewhere (bigram LM 2e-7, convex SGD 1e-6
    relative; the GLA transformer's training then drifts apart as any chaotic run does). XLA's older CPU fusion
    emitters (``XLA_FLAGS=--xla_cpu_use_fusion_emitters=false``, as ``make test`` builds) compile in 55-73% of the
    time, but their programs run up to 1.75x longer (transformer 1.1-1.2x, quadratic and bigram LM 1.7x), so they
    are the user's choice for short runs (``python -m benchmarks.compile_times`` measures both), not the default.
    """
    if jax.default_backend() == "cpu" and not _opt_level_set_by_user():
        return {"xla_backend_optimization_level": 2}
    return {}


def build_flags() -> dict:
    """What decides a compiled program's rounding besides the code: the user's ``XLA_FLAGS`` and
    :func:`compiler_options`. Recorded with every result and hashed into the sweep cache key, so that a sweep
    resumed under other flags recomputes instead of mixing chunks from two builds."""
    return {"xla_flags": os.environ.get("XLA_FLAGS", ""), "compiler_options": compiler_options()}


def jit(fn: Callable, **kw) -> Callable:
    """``jax.jit`` with the suite's :func:`compiler_options` (the caller's ``compiler_options`` win)."""
    opts = compiler_options()
    if opts:
        kw["compiler_options"] = {**opts, **kw.get("compiler_options", {})}
    return jax.jit(fn, **kw)


class _Batched:
    """``jit(vmap(vmap(run)))`` for a chunk of several hparam points; for a chunk of ONE point, ``jit(vmap(run))``
    with that point's values as scalars (the result still has the size-1 point axis). A size-1 outer vmap costs
    ~30% of an RNG-bound run (river valley: 99-111 against 73-76 ns per seed-step, benchmarks/RESULTS.md), and
    one-point sweeps are common (a schedule per sweep in wsd_s_budgets, a lambda per subnetwork run). The numbers:
    the same bits where the per-seed program is the same (tested on the river valley and the bandits); a batched
    matmul may round differently by an ulp (the transformer)."""

    def __init__(self, run: RunFn, **jit_kw):
        over_seeds = jax.vmap(run, in_axes=(0, None))
        self.many = jit(jax.vmap(over_seeds, in_axes=(None, 0)), **jit_kw)

        def one(keys, hps):
            out = over_seeds(keys, {k: v[0] for k, v in hps.items()})
            return jax.tree.map(lambda x: x[None], out)

        self.one = jit(one, **jit_kw)

    def program(self, n_points: int) -> Callable:
        """The compiled function for a chunk of ``n_points`` hparam points."""
        return self.one if n_points == 1 else self.many

    def __call__(self, keys, hps):
        n = {int(np.shape(v)[0]) for v in hps.values()}
        return self.program(n.pop() if len(n) == 1 else 0)(keys, hps)

    def _cache_size(self) -> int:
        return self.many._cache_size() + self.one._cache_size()


def batched(run: RunFn) -> Callable:
    """The compiled sweep chunk: outer axis hparams, inner axis seeds (keys shared across hparams); see
    :class:`_Batched` (one-point chunks skip the outer vmap). Compiled with :func:`jit`'s options.

    Cached per ``run`` object, so calling a sweep again with other hparam *values* (same shapes)
    reuses the compiled executable.
    """
    fn = _BATCHED.get(run)
    if fn is None:
        fn = _Batched(run)
        _BATCHED[run] = fn
    return fn


def _hparam_points(
    axes: Mapping[str, Sequence[float]], mode: str
) -> tuple[dict[str, np.ndarray], list[str], list[int]]:
    """Flatten named axes into P points. Returns (flat values per name, dims, shape)."""
    if mode not in ("grid", "zip"):
        raise ValueError(f"mode must be 'grid' or 'zip', got {mode!r}")
    if not axes:
        return {}, [], []
    vals = {k: np.asarray(v) for k, v in axes.items()}
    for k, v in vals.items():
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"hparam axis {k!r} must be a non-empty 1-D list of values")
    if mode == "grid":
        for k, v in vals.items():
            u, n = np.unique(v, return_counts=True)
            if (n > 1).any():
                raise ValueError(f"hparam axis {k!r} repeats the value(s) {u[n > 1].tolist()}: each value once")
        names = list(vals)
        shape = [vals[k].size for k in names]
        mesh = np.meshgrid(*[vals[k] for k in names], indexing="ij")
        return {k: m.reshape(-1) for k, m in zip(names, mesh)}, names, shape
    sizes = {v.size for v in vals.values()}
    if len(sizes) != 1:
        raise ValueError(f"mode='zip' needs equally long hparam lists, got sizes {sorted(sizes)}")
    pts = list(zip(*[v.tolist() for v in vals.values()]))
    if len(set(pts)) != len(pts):
        dup = sorted({q for q in pts if pts.count(q) > 1})
        raise ValueError(f"mode='zip' repeats the point(s) {dup} of ({', '.join(vals)}): each point once")
    return vals, ["point"], [sizes.pop()]


@functools.cache
def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except Exception:  # pragma: no cover - git missing
        return "unknown"


_SUITE_ROOT = Path(__file__).resolve().parents[1]
_SUITE_PACKAGES = ("sims", "theory", "figures")


def _suite_imports(module: str) -> set[str]:
    """Suite modules (``pkg.mod``) imported by the source of ``module``, read by the AST."""
    path = _SUITE_ROOT / Path(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return set()
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] in _SUITE_PACKAGES and len(parts) > 1 and (_SUITE_ROOT / parts[0] / f"{parts[1]}.py").exists():
                out.add(".".join(parts[:2]))
    return out


@functools.cache
def code_identity(module: str) -> tuple[str, tuple[str, ...]]:
    """(sha256[:16] of the source files, their paths) of ``module`` and every suite module it imports,
    transitively. A sweep's cache key and provenance carry it, so a cached sweep is never reused after the code
    that made it changed. Modules outside the suite (a user's notebook) contribute their name only."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += sorted(_suite_imports(m) - seen)
    h = hashlib.sha256()
    files = []
    for m in sorted(seen):
        path = _SUITE_ROOT / Path(*m.split(".")).with_suffix(".py")
        h.update(m.encode())
        if path.exists():
            h.update(path.read_bytes())
            files.append(str(path.relative_to(_SUITE_ROOT)))
    return h.hexdigest()[:16], tuple(files)


def config_to_json(cfg: Any) -> str:
    """A stable JSON string for a config (dataclass, NamedTuple or mapping)."""
    if dataclasses.is_dataclass(cfg):
        cfg = dataclasses.asdict(cfg)
    elif hasattr(cfg, "_asdict"):
        cfg = cfg._asdict()
    return json.dumps(cfg, sort_keys=True, default=repr)


def _chunk_sizes(per_run_bytes: int, n_points: int, n_seeds: int, n_dev: int, max_bytes: int):
    """Seeds per chunk (multiple of n_dev) and hparam points per chunk under ``max_bytes``."""
    max_runs = max(n_dev, max_bytes // max(per_run_bytes, 1))
    s_pad = -(-n_seeds // n_dev) * n_dev
    s_c = min(s_pad, max(n_dev, (max_runs // n_dev) * n_dev))
    h_c = max(1, min(n_points, max_runs // s_c))
    return s_c, h_c


class _ReadLog(dict):
    """The hparams dict given to a run while it is traced for shapes: records the names the run reads.
    Iteration, ``keys``/``items``/``values`` and copying count as reading every name."""

    def __init__(self, d):
        super().__init__(d)
        self.read: set[str] = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.read.add(k)
        return super().get(k, default)

    def __contains__(self, k):
        self.read.add(k)
        return super().__contains__(k)

    def _all(self):
        self.read |= set(super().keys())

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()


def _available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


_TRACED: dict[Any, tuple] = {}


def _trace_info(run: RunFn, one_hp: dict) -> tuple[Any, set[str]]:
    """(output shapes, hparam names read) of ``run`` for hparams of these names/dtypes, traced once per run
    object and hparam signature (a repeated sweep does not trace again)."""
    sig = (run, tuple(sorted((k, str(v.dtype), v.shape) for k, v in one_hp.items())), jax.config.jax_enable_x64)
    hit = _TRACED.get(sig)
    if hit is None:
        read: set[str] = set()

        def traced(k, hp):
            log_ = _ReadLog(hp)
            out = run(k, log_)
            read.update(log_.read)
            return out

        hit = _TRACED[sig] = (jax.eval_shape(traced, jax.random.key(0), one_hp), frozenset(read))
    return hit


# --------------------------------------------------------------------------------------
# Provenance of every sweep run inside a figure (survives the figures' merges / concats)
# --------------------------------------------------------------------------------------
_COLLECTORS: list[list] = []
_COLLECT_LOCK = threading.Lock()


@contextlib.contextmanager
def collect_provenance():
    """Collect the provenance record of every sweep run inside the block (any thread): yields a list of dicts
    (``sweep_id``, ``code_id``, ``config``, ``axes``, ``fixed``, ``n_runs``, ``n_diverged``, ...)."""
    records: list = []
    with _COLLECT_LOCK:
        _COLLECTORS.append(records)
    try:
        yield records
    finally:
        with _COLLECT_LOCK:
            _COLLECTORS.remove(records)


_DEFAULT_CACHE: list = []  # a stack: the innermost default_cache() wins


@contextlib.contextmanager
def default_cache(cache_dir):
    """Sweeps inside the block that are not given ``cache_dir`` use this one (the figures CLI points it at
    ``OUT/.sweep_cache`` so that an interrupted figure resumes). ``None`` disables the default."""
    _DEFAULT_CACHE.append(cache_dir)
    try:
        yield
    finally:
        _DEFAULT_CACHE.pop()


def environment() -> dict:
    """What ran the computation: JAX/jaxlib versions, device, git commit."""
    import jaxlib

    d = jax.devices()[0]
    return {"jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__, "device_kind": d.device_kind,
            "platform": d.platform, "device_count": jax.device_count(), "process_count": jax.process_count(),
            "git_commit": _git_commit(), "build_flags": json.dumps(build_flags(), sort_keys=True)}


# --------------------------------------------------------------------------------------
# The sweep: plan -> execute (chunks) with a cache -> assemble
# --------------------------------------------------------------------------------------
class Sim(NamedTuple):
    """A simulation bundle: the run function and what a sweep needs to label its outputs, so that a call is
    ``sweep(sim, axes, seeds=..., key=...)``. Sim modules build it with ``sim(cfg)``."""

    run: RunFn
    cfg: Any  # the static config (recorded in the Dataset, hashed into the cache key)
    steps: np.ndarray | None  # the record steps (coordinate ``step``)
    dims: Mapping[str, tuple] = {}  # names of trailing axes of outputs, e.g. {"x": ("coord",)}
    steps_per_run: int | None = None  # for the progress bar's steps/s

    @classmethod
    def of(cls, run: RunFn, cfg: Any, dims: Mapping[str, tuple] | None = None) -> Sim:
        """The bundle of a config with ``steps()`` and ``n_steps`` (or ``horizon``)."""
        n = getattr(cfg, "n_steps", None) or getattr(cfg, "horizon", None)
        return cls(run, cfg, cfg.steps(), dict(dims or {}), n)


@dataclasses.dataclass(frozen=True, eq=False)
class SweepPlan:
    """Everything a sweep will do, decided and validated before any compute (see :func:`plan`)."""

    run: RunFn
    axes: dict
    fixed: dict
    mode: str
    seeds: int
    key: Array
    steps: np.ndarray | None
    dims: dict
    coords: dict
    cfg: Any
    flat: dict  # name -> (n_points,) hparam values (swept and fixed), cast
    hp_dims: list
    hp_shape: list
    n_points: int
    seeds_per_chunk: int
    points_per_chunk: int
    per_run_bytes: int
    dtype: np.dtype
    n_dev: int
    sweep_id: str
    code_id: str
    code_files: tuple
    steps_per_run: int | None

    @property
    def chunks(self) -> list[tuple[int, int]]:
        return list(itertools.product(range(0, self.n_points, self.points_per_chunk),
                                      range(0, self.seeds, self.seeds_per_chunk)))



def plan(
    run: RunFn,
    axes: Mapping[str, Sequence[float]] | None = None,
    *,
    seeds: int,
    key: Array,
    steps: np.ndarray | None = None,
    mode: str = "grid",
    fixed: Mapping[str, float] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    cfg: Any = None,
    max_bytes: int = 256 * 2**20,
    steps_per_run: int | None = None,
    dtype: Any = None,
) -> SweepPlan:
    """Validate a sweep and lay it out in chunks, without computing it (arguments as :func:`sweep`).

    Raises ``ValueError`` for: seeds < 1; an hparam both swept and fixed; a swept axis with a repeated value
    (grid) or a repeated point (zip); an hparam name the run never reads (a misspelt name would otherwise be an
    extra, identical dimension)."""
    if not isinstance(seeds, (int, np.integer)) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
    axes = dict(axes or {})
    fixed = dict(fixed or {})
    overlap = set(axes) & set(fixed)
    if overlap:
        raise ValueError(f"hparams {sorted(overlap)} are both swept and fixed")
    flat, hp_dims, hp_shape = _hparam_points(axes, mode)
    n_points = int(np.prod(hp_shape)) if hp_shape else 1
    fdtype = np.dtype(dtype or jnp.zeros(()).dtype)

    def _cast(v):
        v = np.asarray(v)
        return v.astype(fdtype) if np.issubdtype(v.dtype, np.floating) else v

    flat_all = {k: _cast(v) for k, v in flat.items()}
    flat_all.update({k: np.full((n_points,), _cast(v)) for k, v in fixed.items()})

    # shapes only: the per-run output size, and which hparam names the run reads
    one_hp = {k: jnp.asarray(v[0]) for k, v in flat_all.items()}
    out_shape, read = _trace_info(run, one_hp)
    unread = sorted(set(flat_all) - read)
    if unread:
        raise ValueError(f"hparam(s) {unread} are not read by the run (misspelt?); it reads "
                         f"{sorted(read) or 'no hparams'}")
    per_run_bytes = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(out_shape))
    need = 2 * per_run_bytes * n_points * int(seeds)  # the chunks and the assembled arrays
    avail = _available_memory()
    if avail is not None and need > avail and not (_ALLOW_LARGE and _ALLOW_LARGE[-1]):
        raise ValueError(
            f"the sweep's outputs need about {need / 2**30:.3g} GiB ({int(seeds)} seeds x {n_points} hparam points x "
            f"{per_run_bytes} bytes per run, twice while assembling) but {avail / 2**30:.3g} GiB of memory is "
            "available: lower seeds, the number of points, n_steps or raise log_every (--force to run anyway)")
    n_dev = len(jax.local_devices())  # this process's devices: the layout does not depend on the process count
    s_c, h_c = _chunk_sizes(per_run_bytes, n_points, seeds, n_dev, max_bytes)
    code_id, code_files = code_identity(getattr(run, "__module__", "") or "")
    key_data = np.asarray(jax.random.key_data(key))
    sweep_id = hashlib.sha256(json.dumps({
        "cfg": config_to_json(cfg),
        "axes": {k: np.asarray(v).tolist() for k, v in axes.items()},
        "fixed": {k: np.asarray(v).tolist() for k, v in fixed.items()},
        "mode": mode, "seeds": seeds, "key": key_data.tolist(), "layout": [s_c, h_c],
        "dtype": str(fdtype), "x64": bool(jax.config.jax_enable_x64), "code": code_id,
        "run": getattr(run, "__qualname__", repr(run)),
        "jax": jax.__version__, "platform": jax.devices()[0].platform, "n_dev": n_dev, "build": build_flags(),
    }, sort_keys=True).encode()).hexdigest()[:16]
    return SweepPlan(run, axes, fixed, mode, int(seeds), key, steps, dict(dims or {}), dict(coords or {}), cfg,
                     flat_all, hp_dims, hp_shape, n_points, s_c, h_c, per_run_bytes, fdtype, n_dev, sweep_id, code_id,
                     code_files, steps_per_run)


def interruptible(fn: Callable, *args):
    """``fn(*args)`` in a worker thread while the main thread waits in short, interruptible joins.

    A compiled call cannot be interrupted, and Python handles Ctrl-C only between bytecodes of the main thread,
    so a long chunk would delay a KeyboardInterrupt until it ends. Here the KeyboardInterrupt is raised at once
    (within ~0.1 s); the abandoned chunk runs on in a daemon thread until it finishes or the process exits (the
    figures CLI exits at once), and only it is lost: finished chunks are already in the cache. Off the main
    thread (thread pools) ``fn`` simply runs inline."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    box: dict = {}
    # JAX's context managers (enable_x64, default_matmul_precision, default_device) are thread-local: the worker
    # runs under the caller's values, or a sweep inside `with jax.enable_x64(True)` would compute in float32
    x64 = bool(jax.config.jax_enable_x64)
    prec = jax.config.jax_default_matmul_precision
    dev = jax.config.jax_default_device

    def target():
        try:
            with jax.enable_x64(x64), jax.default_matmul_precision(prec), jax.default_device(dev):
                box["out"] = fn(*args)
        except BaseException as e:  # re-raised in the caller's thread
            box["err"] = e

    t = threading.Thread(target=target, name="sweep-chunk", daemon=True)
    t.start()
    while t.is_alive():
        t.join(0.1)
    if "err" in box:
        raise box["err"]
    return box["out"]


_ALLOW_LARGE: list = []  # a stack, like _DEFAULT_CACHE: the figures CLI's --force pushes True


@contextlib.contextmanager
def allow_large(flag: bool = True):
    """Inside the block, a sweep whose estimated memory exceeds what the machine has available runs anyway
    (the CLI's ``--force``); by default it is refused before any compute."""
    _ALLOW_LARGE.append(bool(flag))
    try:
        yield
    finally:
        _ALLOW_LARGE.pop()


@functools.cache
def _shardings(devices: tuple) -> tuple[NamedSharding, NamedSharding]:
    """(seeds split over the devices, replicated): built once per device set, not per chunk."""
    mesh = jax.make_mesh((len(devices),), ("runs",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))
    return NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())


def execute_chunk(p: SweepPlan, h0: int, s0: int) -> dict[str, np.ndarray]:
    """Run hparam points ``h0 ..`` x seeds ``s0 ..`` of the plan in one compiled call (sharded over devices
    along seeds); returns ``final/NAME`` and ``traj/NAME`` arrays of shape (points, seeds, ...)."""
    seed_sharding, repl = _shardings(tuple(jax.local_devices()))
    h_c, s_c = p.points_per_chunk, p.seeds_per_chunk
    hp_idx = np.minimum(np.arange(h0, h0 + h_c), p.n_points - 1)  # pad by repeating the last
    seed_idx = np.arange(s0, s0 + s_c)  # extra seeds beyond `seeds` are dropped afterwards
    keys = jax.vmap(lambda i: jax.random.fold_in(p.key, i))(jnp.asarray(seed_idx))
    keys = jax.device_put(keys, seed_sharding)
    hps = {k: jax.device_put(jnp.asarray(v[hp_idx]), repl) for k, v in p.flat.items()}
    if not hps:  # a sweep over seeds alone: vmap needs one mapped leaf (runs ignore this key)
        hps = {"__point__": jax.device_put(jnp.zeros(h_c, jnp.int32), repl)}
    final, traj = batched(p.run)(keys, hps)
    jax.block_until_ready((final, traj))
    nh = min(h_c, p.n_points - h0)
    ns = min(s_c, p.seeds - s0)
    cut = lambda x: np.asarray(x)[:nh, :ns]  # noqa: E731
    return {f"final/{k}": cut(v) for k, v in final.items()} | {f"traj/{k}": cut(v) for k, v in traj.items()}


def _chunk_path(p: SweepPlan, cache_dir, h0: int, s0: int) -> Path | None:
    return None if cache_dir is None else Path(cache_dir) / p.sweep_id / f"chunk_h{h0}_s{s0}.npz"


def cache_load(p: SweepPlan, cache_dir, h0: int, s0: int) -> dict | None:
    """A finished chunk from the cache, or None (absent or unreadable: it is recomputed)."""
    path = _chunk_path(p, cache_dir, h0, s0)
    if path is None or not path.exists():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # a damaged file is not data
        log.warning("sweep cache: unreadable chunk %s is recomputed", path)
        return None


def cache_save(p: SweepPlan, cache_dir, h0: int, s0: int, res: dict) -> None:
    """Save a chunk atomically (temporary file, then rename): an interruption loses only the chunk in flight."""
    path = _chunk_path(p, cache_dir, h0, s0)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **res)
    os.replace(tmp, path)


def sweep(
    run: RunFn | Sim,
    axes: Mapping[str, Sequence[float]] | None = None,
    *,
    seeds: int,
    key: Array,
    steps: np.ndarray | None = None,
    mode: str = "grid",
    fixed: Mapping[str, float] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    cfg: Any = None,
    max_bytes: int = 256 * 2**20,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    steps_per_run: int | None = None,
    dtype: Any = None,
) -> xr.Dataset:
    """Run ``run`` over named hparam ``axes`` x ``seeds`` and return an ``xarray.Dataset``:
    :func:`plan`, then :func:`execute_chunk` per chunk (through the cache), then :func:`assemble`.

    Args:
      run: ``run(key, hparams) -> (final, traj)`` (see module docstring), or a :class:`Sim` bundle (it supplies
        ``steps``, ``cfg``, ``dims`` and ``steps_per_run``).
      axes: name -> 1-D values. ``mode='grid'``: the Cartesian product (one dim per name);
        ``mode='zip'``: equal-length lists zipped into one dim ``point``. Repeated values are an error.
      seeds: number of seeds (>= 1). Seed ``s`` uses ``fold_in(key, s)``.
      key: typed PRNG key.
      steps: coordinate of the record axis of ``traj`` (dim ``step``).
      fixed: hparams held constant (not swept) passed to every run (recorded in ``attrs['fixed_hparams']``).
      dims: extra dim names for trailing axes of a variable (``{"x": ("coord",)}``).
      coords: coordinates for extra dims.
      cfg: the static config (stored in attrs and hashed for the resume cache).
      max_bytes: memory bound on one chunk's outputs; chunks split (hparam x seed).
      cache_dir: if given, each chunk is saved there as it finishes and a rerun of the same sweep (same config,
        hparams, key, layout AND code identity) loads finished chunks instead of recomputing them.
      progress: a tqdm bar (terminal or Jupyter) in run-steps, advanced per block of ``log_every`` steps, with
        steps/s and ETA (exact with ``steps_per_run``).
      dtype: dtype to cast float hparams to (default: jax's default float).

    The returned Dataset has ``diverged`` (bool) and ``diverged_step`` (int, -1 if finite) per run;
    ``attrs['n_diverged']`` counts them and a warning is logged when any diverged. Its attrs say what made it:
    the config, fixed hparams, code identity (hash of the sim's source files), git commit, JAX/jaxlib versions,
    device and dtype.
    """
    if isinstance(run, Sim):  # the bundle supplies what the caller did not
        steps = run.steps if steps is None else steps
        cfg = run.cfg if cfg is None else cfg
        dims = {**run.dims, **(dims or {})}
        steps_per_run = steps_per_run or run.steps_per_run
        run = run.run
    p = plan(run, axes, seeds=seeds, key=key, steps=steps, mode=mode, fixed=fixed, dims=dims, coords=coords, cfg=cfg,
             max_bytes=max_bytes, steps_per_run=steps_per_run, dtype=dtype)
    if cache_dir is None and _DEFAULT_CACHE:
        cache_dir = _DEFAULT_CACHE[-1]
    chunks = p.chunks
    # several JAX processes (jax.distributed): each computes every n-th chunk, then they exchange them
    n_proc, me = jax.process_count(), jax.process_index()
    mine = [c for i, c in enumerate(chunks) if i % n_proc == me]
    call = _announce(p) if n_proc > 1 else None
    results: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    bar = _Bar(p) if progress else None
    for h0, s0 in mine:
        res = cache_load(p, cache_dir, h0, s0)
        runs = min(p.points_per_chunk, p.n_points - h0) * min(p.seeds_per_chunk, p.seeds - s0)
        if res is None:
            sink = bar.chunk(runs) if bar is not None else (lambda b: None)
            _PROGRESS.append(sink)
            try:
                res = interruptible(execute_chunk, p, h0, s0)
            finally:
                _PROGRESS.remove(sink)
            cache_save(p, cache_dir, h0, s0, res)
        if bar is not None:
            bar.finish_chunk(runs)
        results[(h0, s0)] = res
    if bar is not None:
        bar.close()
    if n_proc > 1:
        for (h0, s0), res in exchange_chunks(p, results, chunks, call).items():
            cache_save(p, cache_dir, h0, s0, res)
            results[(h0, s0)] = res
    ds = assemble(p, results)
    ds.attrs["chunks_computed_here"] = len(mine)
    return ds


EXCHANGE_TIMEOUT_S = 24 * 3600  # how long a process waits for another's chunks (a long sweep elsewhere)
_EXCHANGES = itertools.count()  # every process calls sweep() in the same order (SPMD), so the n-th call matches


def _client():
    from jax._src import distributed  # the client of jax.distributed.initialize (no public accessor)

    client = distributed.global_state.client
    if client is None:
        raise RuntimeError("jax.process_count() > 1 but jax.distributed is not initialized")
    return client


def _announce(p: SweepPlan) -> str:
    """Publish this process's plan id for its n-th sweep before computing (so a process that runs a different
    sweep is found at once, not after a timeout). Returns the tag of this call."""
    tag = f"toy-theory/sweep-call/{next(_EXCHANGES)}"
    _client().key_value_set(f"{tag}/plan/{jax.process_index()}", p.sweep_id)
    return tag


def exchange_chunks(p: SweepPlan, results: Mapping[tuple[int, int], dict], chunks, tag: str) -> dict:
    """Multi-controller JAX: publish this process's chunks through the coordinator's key-value store and fetch
    every other chunk of the plan (blocking until the process that computes it has published it). Returns the
    fetched chunks. The store carries ~10 MB/s on one machine (measured: 64 MiB in 6.5 s); for sweeps with
    outputs of many GiB, give the processes a shared ``cache_dir`` instead (each chunk is saved there too)."""
    client = _client()
    for q in range(jax.process_count()):
        other = client.blocking_key_value_get(f"{tag}/plan/{q}", EXCHANGE_TIMEOUT_S * 1000)
        if other != p.sweep_id:
            raise RuntimeError(f"process {q} runs a different sweep (plan {other}, here {p.sweep_id}): every process "
                               "must make the same sweep() calls in the same order, with the same arguments, code and "
                               "XLA_FLAGS (the build flags are part of the plan: they can change float rounding)")
    for (h0, s0), res in results.items():
        buf = io.BytesIO()
        np.savez(buf, **res)
        client.key_value_set_bytes(f"{tag}/{h0}_{s0}", buf.getvalue())
    got = {}
    for h0, s0 in chunks:
        if (h0, s0) not in results:
            data = client.blocking_key_value_get_bytes(f"{tag}/{h0}_{s0}", EXCHANGE_TIMEOUT_S * 1000)
            with np.load(io.BytesIO(data)) as z:
                got[(h0, s0)] = {k: z[k] for k in z.files}
    return got


class _Bar:
    """A tqdm bar in run-steps (points x seeds x steps), advanced per block of ``log_every`` steps by the
    callback in :func:`scan_with_records` (so a one-chunk sweep moves too), with steps/s and ETA; in a terminal
    and in Jupyter (``tqdm.auto``); off when stderr is neither."""

    def __init__(self, p: SweepPlan):
        import sys

        from tqdm.auto import tqdm

        per_run = p.steps_per_run or 1
        in_kernel = "ipykernel" in sys.modules
        self.n_blocks = max(len(p.steps) - 1, 1) if p.steps is not None else 1
        self.per_run = per_run
        self.lock = threading.Lock()
        self.bar = tqdm(total=per_run * p.n_points * p.seeds, desc="sweep", unit="step", unit_scale=True,
                        leave=False, disable=False if in_kernel else None)
        self.done = 0  # steps credited to finished chunks
        self.partial = 0  # steps credited so far to the chunk in flight

    def chunk(self, runs: int) -> Callable[[int], None]:
        self.partial = 0

        def sink(b: int) -> None:
            steps = runs * (min(b + 1, self.n_blocks) * self.per_run // self.n_blocks)
            with self.lock:
                if steps > self.partial:
                    self.bar.update(steps - self.partial)
                    self.partial = steps
        return sink

    def finish_chunk(self, runs: int) -> None:
        """Credit the rest of a finished chunk (all of it when it came from the cache)."""
        with self.lock:
            self.bar.update(runs * self.per_run - self.partial)
            self.partial = 0

    def close(self) -> None:
        self.bar.close()


def assemble(p: SweepPlan, results: Mapping[tuple[int, int], dict]) -> xr.Dataset:
    """The chunks' arrays ([points, seeds, ...]) as one self-describing Dataset."""
    hp_blocks = sorted({h for h, _ in results})
    seed_blocks = sorted({s for _, s in results})
    names = list(results[(hp_blocks[0], seed_blocks[0])].keys())
    full = {}
    for name in names:
        rows = [np.concatenate([results[(h0, s0)][name] for s0 in seed_blocks], axis=1) for h0 in hp_blocks]
        full[name] = np.concatenate(rows, axis=0)
    ds = _to_dataset(full, hp_dims=p.hp_dims, hp_shape=p.hp_shape, axes=p.axes, mode=p.mode, seeds=p.seeds,
                     steps=p.steps, dims=p.dims, coords=p.coords)
    fixed = {k: np.asarray(v).tolist() for k, v in p.fixed.items()}
    n_div = int(ds.diverged.sum())
    ds.attrs.update({
        "config": config_to_json(p.cfg),
        "fixed_hparams": json.dumps(fixed, sort_keys=True),
        "sweep_id": p.sweep_id,
        "code_id": p.code_id,
        "code_files": ",".join(p.code_files),
        "dtype": str(p.dtype),
        "x64": int(bool(jax.config.jax_enable_x64)),
        "n_diverged": n_div,
        "n_chunks": len(p.chunks),
    } | environment())
    record = {"sweep_id": p.sweep_id, "code_id": p.code_id, "config": config_to_json(p.cfg),
              "axes": {k: np.asarray(v).tolist() for k, v in p.axes.items()}, "fixed": fixed, "mode": p.mode,
              "seeds": p.seeds, "n_runs": int(ds.diverged.size), "n_diverged": n_div, "dtype": str(p.dtype)}
    with _COLLECT_LOCK:
        for c in _COLLECTORS:
            c.append(record)
    if n_div:
        log.warning("sweep %s: %d of %d runs diverged", p.sweep_id, n_div, ds.diverged.size)
    return ds


def _to_dataset(full, *, hp_dims, hp_shape, axes, mode, seeds, steps, dims, coords):
    data_vars = {}
    lead = list(hp_dims) + ["seed"]
    lead_shape = list(hp_shape) + [seeds]
    div_step = None
    traj_finite = None
    for name, arr in full.items():
        kind, var = name.split("/", 1)
        arr = arr.reshape(lead_shape + list(arr.shape[2:]))
        rest = []
        if kind == "traj":
            rest = ["step"]
            fin = np.isfinite(arr) if np.issubdtype(arr.dtype, np.inexact) else np.ones(arr.shape, bool)
            fin = fin.reshape(lead_shape + [arr.shape[len(lead_shape)], -1]).all(-1)
            traj_finite = fin if traj_finite is None else traj_finite & fin
        extra = list(dims.get(var, ()))
        n_extra = arr.ndim - len(lead) - len(rest)
        if len(extra) < n_extra:
            extra = extra + [f"{var}_dim{i}" for i in range(len(extra), n_extra)]
        if kind == "final" and var == "diverged_step":
            div_step = arr
            continue
        data_vars[var] = (lead + rest + extra[:n_extra], arr)
    if div_step is None:
        # fall back to the first non-finite record
        if traj_finite is not None:
            bad = ~traj_finite
            first = np.argmax(bad, axis=-1)
            rec = np.asarray(steps) if steps is not None else np.arange(bad.shape[-1])
            div_step = np.where(bad.any(-1), rec[first], -1)
        else:
            div_step = np.full(lead_shape, -1)
    data_vars["diverged_step"] = (lead, div_step.astype(np.int64))
    data_vars["diverged"] = (lead, div_step >= 0)
    cds: dict[str, Any] = {"seed": np.arange(seeds)}
    if mode == "grid":
        cds.update({k: np.asarray(v) for k, v in axes.items()})
    elif axes:
        cds["point"] = np.arange(hp_shape[0])
        cds.update({k: ("point", np.asarray(v)) for k, v in axes.items()})
    if steps is not None:
        cds["step"] = np.asarray(steps)
    cds.update(coords)
    return xr.Dataset(data_vars, coords=cds)

# --------------------------------------------------------------------------------------
# Tuning a peak lr per schedule (comparisons at each schedule's own optimum)
# --------------------------------------------------------------------------------------
class Tuned(NamedTuple):
    """What :func:`tune_lr` returns, per arm (schedule): every lr tried, the best one and whether it is
    bracketed (interior)."""

    lrs: tuple  # per arm: sorted 1-D array of every lr evaluated
    means: tuple  # per arm: mean final value at those lrs (inf where any seed diverged)
    best_lr: np.ndarray  # (n_arms,)
    best: np.ndarray  # (n_arms, seeds): the per-seed finals at best_lr
    interior: np.ndarray  # (n_arms,) bool: a worse (or diverged) lr was evaluated on each side of best_lr


def tune_lr(evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], n_arms: int, lrs: Sequence[float], *,
            factor: float = 2**0.5, max_extend: int = 8, refine: bool = True, initial=None) -> Tuned:
    """Tune the peak lr of ``n_arms`` schedules on a log grid that grows until each optimum is interior.

    ``evaluate(lr, arm) -> finals`` takes two 1-D arrays of equal length P (the (lr, arm) pairs to run, e.g.
    one zipped sweep) and returns the (P, seeds) final values (NaN/inf where a run diverged; lower is
    better). Starting from the grid ``lrs`` (ratio ``factor`` between neighbours), each arm whose best mean is
    at an edge of its grid gets one more point beyond that edge, up to ``max_extend`` times; an lr at which
    any seed diverged counts as worse than every finite one (it brackets the optimum from above). With
    ``refine``, the points halfway (in log lr) between each best and its neighbours are evaluated last.
    ``interior`` reports whether each optimum is bracketed; the caller says so in its claims. ``initial``, if
    given, holds the (len(lrs), n_arms, seeds) finals of the starting grid already computed (not run again).
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    if lrs.ndim != 1 or lrs.size < 3 or not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
        raise ValueError("lrs must be at least 3 finite values > 0")
    if np.any(np.diff(lrs) <= 0):
        raise ValueError("lrs must be strictly increasing (no repeated value)")
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1, got {n_arms}")
    seen: list[dict[float, np.ndarray]] = [{} for _ in range(n_arms)]

    def run(pairs):
        pairs = [(float(lr), a) for lr, a in pairs if float(lr) not in seen[a]]
        if not pairs:
            return
        lr = np.array([p[0] for p in pairs])
        arm = np.array([p[1] for p in pairs], dtype=np.int64)
        fin = np.asarray(evaluate(lr, arm), dtype=np.float64)
        if fin.ndim != 2 or fin.shape[0] != len(pairs):
            raise ValueError(f"evaluate must return (P, seeds) finals, got shape {fin.shape} for P = {len(pairs)}")
        for (v, a), f in zip(pairs, fin):
            seen[a][v] = f

    def table(a):
        x = np.array(sorted(seen[a]))
        f = np.stack([seen[a][v] for v in x])
        m = np.where(np.all(np.isfinite(f), axis=1), f.mean(axis=1), np.inf)
        return x, m

    if initial is not None:
        init = np.asarray(initial, dtype=np.float64)
        if init.ndim != 3 or init.shape[:2] != (lrs.size, n_arms):
            raise ValueError(f"initial must have shape (len(lrs), n_arms, seeds), got {init.shape}")
        for i, v in enumerate(lrs):
            for a in range(n_arms):
                seen[a][float(v)] = init[i, a]
    run([(v, a) for a in range(n_arms) for v in lrs])
    for _ in range(max_extend):
        new = []
        for a in range(n_arms):
            x, m = table(a)
            i = int(np.argmin(m))
            if not np.isfinite(m[i]):
                continue  # every lr diverged: nothing to bracket
            if i == 0:
                new.append((x[0] / factor, a))
            elif i == x.size - 1 and np.isfinite(m[-1]):
                new.append((x[-1] * factor, a))
        if not new:
            break
        run(new)
    if refine:
        new = []
        for a in range(n_arms):
            x, m = table(a)
            i = int(np.argmin(m))
            if 0 < i < x.size - 1 and np.isfinite(m[i]):
                new += [(np.sqrt(x[i - 1] * x[i]), a), (np.sqrt(x[i] * x[i + 1]), a)]
        run(new)
    out_x, out_m, best_lr, best, interior = [], [], [], [], []
    for a in range(n_arms):
        x, m = table(a)
        i = int(np.argmin(m))
        out_x.append(x)
        out_m.append(m)
        best_lr.append(x[i])
        best.append(seen[a][x[i]])
        interior.append(bool(0 < i < x.size - 1 and np.isfinite(m[i])))
    return Tuned(tuple(out_x), tuple(out_m), np.array(best_lr), np.stack(best), np.array(interior))
