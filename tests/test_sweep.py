"""The sweep engine: determinism, chunk/device invariance, no recompilation, resume, NaN flags."""

from __future__ import annotations

import json
import os
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from sims import sweep as sw
from sims.engine import build, identity, progress
from sims.engine import plan as plan_mod
from sims.quadratic import QuadraticConfig, make_run
from tests.conftest import run_py

CFG = QuadraticConfig(a=(1.0, 3.0), sigma=(0.5,), x0=(1.0,), n_steps=200, log_every=20)
AXES = {"lr": [0.05, 0.1, 0.2, 0.3]}


def _sweep(**kw):
    kw.setdefault("seeds", 10)
    kw.setdefault("key", jax.random.key(7))
    kw.setdefault("progress", False)
    return sw.sweep(make_run(CFG), AXES, steps=CFG.steps(), cfg=CFG, **kw)


def _patch_program(monkeypatch, fn):
    """Make every sweep chunk call ``fn(keys, hps)`` instead of the compiled program."""
    class Fake:
        hub = progress.Hub()

        def program(self, n_points):
            return fn

    monkeypatch.setattr(build, "batched", lambda run: Fake())


def test_dataset_layout_and_attrs():
    ds = _sweep()
    assert ds.loss.dims == ("lr", "seed", "step")
    assert ds.loss.shape == (4, 10, 11)
    np.testing.assert_array_equal(ds.step.values, np.arange(0, 201, 20))
    for k in ("config", "jax_version", "device_kind", "device_count", "host_cpu", "git_commit", "sweep_id"):
        assert k in ds.attrs
    assert "cores" in ds.attrs["host_cpu"]  # the model, the core count and the vector instruction sets
    assert json.loads(ds.attrs["config"])["n_steps"] == 200


def test_same_key_same_bits_and_other_key_differs():
    a, b = _sweep(), _sweep()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    c = _sweep(key=jax.random.key(8))
    assert not np.array_equal(a.loss.values, c.loss.values)


def test_chunking_does_not_change_bits():
    """Seed s always gets fold_in(key, s): a sweep split into many small chunks (tiny memory
    bound) gives the very same bits as one chunk."""
    one = _sweep()
    many = _sweep(max_bytes=200)  # forces one run per chunk
    np.testing.assert_array_equal(one.loss.values, many.loss.values)


def test_grid_and_zip_modes():
    g = sw.sweep(make_run(CFG), {"lr": [0.1, 0.2], "decay_fraction": [0.0, 0.5, 1.0]}, seeds=3,
                 key=jax.random.key(0), steps=CFG.steps(), progress=False)
    assert g.loss.dims == ("lr", "decay_fraction", "seed", "step")
    z = sw.sweep(make_run(CFG), {"lr": [0.1, 0.2], "decay_fraction": [0.0, 0.5]}, mode="zip", seeds=3,
                 key=jax.random.key(0), steps=CFG.steps(), progress=False)
    assert z.loss.dims == ("point", "seed", "step")
    # same (lr, frac) and same seeds -> same bits in both layouts (common random numbers)
    np.testing.assert_array_equal(z.loss.isel(point=1).values, g.loss.sel(lr=0.2, decay_fraction=0.5).values)


def test_no_recompile_when_hparam_values_change():
    """Changing hparam values (same shapes) must reuse the compiled executable."""
    traces = []
    base = make_run(CFG)

    def run(key, hp):
        traces.append(1)  # Python side effect: runs only when JAX traces
        return base(key, hp)

    kw = dict(seeds=6, key=jax.random.key(0), steps=CFG.steps(), progress=False)
    sw.sweep(run, {"lr": [0.1, 0.2]}, **kw)
    n = len(traces)
    sw.sweep(run, {"lr": [0.05, 0.3]}, **kw)
    sw.sweep(run, {"lr": [0.01, 0.02]}, **{**kw, "key": jax.random.key(5)})
    assert len(traces) == n  # eval_shape traces once per sweep? no: it is cached with the jit too
    fn = sw.batched(run)
    assert fn._cache_size() == 1


def test_one_point_chunks_skip_the_outer_vmap_with_the_same_bits():
    """A chunk of one hparam point runs ``jit(vmap(run))`` (no size-1 outer vmap: ~30% faster when RNG-bound); the
    river valley's per-seed program is the same, so a one-point sweep equals that point's row of a three-point
    sweep bit for bit, and only the one-point executable was compiled for it."""
    from sims import river_valley as rv

    s = rv.sim(rv.RiverConfig(a=(10.0, 5.0), n_steps=200, log_every=20))
    kw = dict(seeds=16, key=jax.random.key(0), steps=s.steps, progress=False, fixed={"decay_fraction": 0.2})
    one = sw.sweep(s.run, {"lr": [0.05]}, **kw)
    assert sw.batched(s.run).one._cache_size() == 1 and sw.batched(s.run).many._cache_size() == 0
    three = sw.sweep(s.run, {"lr": [0.1, 0.05, 0.15]}, **kw).isel(lr=[1])
    for v in one.data_vars:
        np.testing.assert_array_equal(one[v].values, three[v].values, err_msg=v)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the option is for XLA's CPU backend")
def test_suite_jit_compiles_at_o2_on_cpu_unless_xla_flags_say_otherwise(monkeypatch):
    """``sims.sweep.jit`` asks XLA's CPU backend for -O2 (less compile time at the same run time: its docstring), and
    leaves the level to the user when XLA_FLAGS names it (``make test`` runs at -O0); other jit options pass through
    and the caller's compiler options win."""
    seen = []
    monkeypatch.setattr(jax, "jit", lambda fn, **kw: seen.append(kw) or fn)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    sw.jit(lambda x: x)
    sw.jit(lambda x: x, compiler_options={"xla_backend_optimization_level": 1})
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    sw.jit(lambda x: x, donate_argnums=0)
    assert seen == [{"compiler_options": {"xla_backend_optimization_level": 2}},
                    {"compiler_options": {"xla_backend_optimization_level": 1}}, {"donate_argnums": 0}]


def test_make_run_is_cached_per_config():
    assert make_run(CFG) is make_run(QuadraticConfig(a=(1.0, 3.0), sigma=(0.5,), x0=(1.0,), n_steps=200,
                                                     log_every=20))


def test_resume_after_interruption(tmp_path, monkeypatch):
    """Interrupt after 2 of 4 chunks; the rerun computes only the 2 missing chunks and the
    Dataset is identical to an uninterrupted sweep."""
    full = _sweep(max_bytes=600)  # 52 B per run -> 11 runs per chunk: one hparam point (10 seeds)
    calls = {"n": 0}
    real = sw.batched(make_run(CFG))

    def flaky(keys, hps):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(keys, hps)

    _patch_program(monkeypatch, flaky)
    with pytest.raises(KeyboardInterrupt):
        _sweep(max_bytes=600, cache_dir=tmp_path)
    saved = list(tmp_path.rglob("chunk_*.npz"))
    assert len(saved) == 2 and not list(tmp_path.rglob("*.tmp.npz"))
    calls["n"] = -100  # no more interruptions
    resumed = _sweep(max_bytes=600, cache_dir=tmp_path)
    assert calls["n"] == -100 + 2  # only the two missing chunks ran
    xr.testing.assert_identical(full.drop_attrs(), resumed.drop_attrs())


def test_nan_is_flagged_with_its_step():
    """A run that turns non-finite at step 37 is flagged diverged at exactly that step."""

    def step(k, x, t):
        return jnp.where(t == 36, jnp.nan, x + 1.0)

    def run(key, hp):
        res = sw.scan_with_records(key, step, jnp.zeros(()), lambda s, t: {"x": s}, n_steps=100, log_every=10)
        return {"diverged_step": res.diverged_step}, res.traj

    ds = sw.sweep(run, None, seeds=2, key=jax.random.key(0), steps=sw.record_steps(100, 10),
                  progress=False)
    assert ds.diverged.all() and (ds.diverged_step == 37).all()
    assert ds.attrs["n_diverged"] == 2


@pytest.mark.parametrize("leaf,value,expect", [
    ("b", np.nan, 37), ("b", np.inf, 37), ("a", -np.inf, 37), ("a", 2e3, 37), ("c", -2e3, 37),
    ("a", 1e3, -1),  # |x| == bound is not beyond it
])
def test_divergence_check_over_many_leaves_and_dtypes(leaf, value, expect):
    """The divergence step of a state with several leaves (float32, float64 arrays, an int counter): the first
    step where ANY element of ANY float leaf is non-finite or beyond the bound (|x| > 1e3), whatever the leaf;
    records are the states after 0, 10, ..., 100 steps (x + 1 per step) until the freeze."""

    def step(k, st, t):
        new = {"a": st["a"] + 1.0, "b": st["b"] + 1.0, "c": st["c"] + 1.0, "n": st["n"] + 1}
        return {**new, leaf: jnp.where(t >= 36, new[leaf].at[0].set(value), new[leaf])}  # held from step 37 on

    with jax.enable_x64(True):
        st0 = {"a": jnp.zeros(3, jnp.float32), "b": jnp.zeros((2, 2), jnp.float64), "c": jnp.zeros(1, jnp.float32),
               "n": jnp.zeros((), jnp.int32)}
        res = jax.jit(lambda k: sw.scan_with_records(k, step, st0, lambda s, t: {"n": s["n"], "t": t}, n_steps=100,
                                                     log_every=10, bound=1e3))(jax.random.key(0))
    assert int(res.diverged_step) == expect
    np.testing.assert_array_equal(res.traj["t"], np.arange(0, 101, 10))
    n_expected = np.minimum(np.arange(0, 101, 10), 37) if expect > 0 else np.arange(0, 101, 10)
    np.testing.assert_array_equal(res.traj["n"], n_expected)  # frozen at the first bad state


def test_fallback_divergence_from_records():
    """Without a diverged_step output, the engine flags the first non-finite record."""

    def run(key, hp):
        x = jnp.where(jnp.arange(5) >= 3, jnp.inf, 1.0) * hp["lr"]
        return {}, {"x": x}

    ds = sw.sweep(run, {"lr": [1.0, 2.0]}, seeds=2, key=jax.random.key(0), steps=np.arange(5) * 10,
                  progress=False)
    assert (ds.diverged_step == 30).all()


@pytest.mark.parametrize(
    "kw, msg",
    [(dict(seeds=0), "seeds"), (dict(mode="cross"), "mode"), (dict(max_bytes=0), "max_bytes"),
     (dict(fixed={"lr": 0.1}), "both swept and fixed")],
)
def test_bad_sweep_input(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _sweep(**kw)


def test_zip_needs_equal_lengths():
    with pytest.raises(ValueError, match="equally long"):
        sw.sweep(make_run(CFG), {"lr": [0.1, 0.2], "decay_fraction": [0.0]}, mode="zip", seeds=2,
                 key=jax.random.key(0))


def test_loop_bad_input():
    with pytest.raises(ValueError, match="multiple"):
        sw.record_steps(100, 7)
    with pytest.raises(ValueError, match="n_steps"):
        sw.record_steps(0, 1)


SHARD_SCRIPT = textwrap.dedent(
    """
    import sys, jax, numpy as np
    from sims.quadratic import QuadraticConfig, make_run
    from sims.sweep import sweep
    n_dev = int(sys.argv[2])
    assert len(jax.devices()) == n_dev, jax.devices()
    cfg = QuadraticConfig(a=(1.0, 3.0), sigma=(0.5,), x0=(1.0,), n_steps=200, log_every=20)
    ds = sweep(make_run(cfg), {"lr": [0.05, 0.1, 0.2]}, seeds=10, key=jax.random.key(7), steps=cfg.steps(),
               progress=False)
    assert ds.attrs["device_count"] == n_dev
    np.save(sys.argv[1], ds.loss.values)
    """
)


def test_sharded_equals_unsharded(tmp_path):
    """4 forced host devices (seed axis padded 10 -> 12 and sharded) give the same bits as 1 device.
    Both runs are CPU subprocesses, so the comparison holds on a GPU machine too."""
    script = tmp_path / "s.py"
    script.write_text(SHARD_SCRIPT)
    out = {}
    for n in (4, 1):
        out[n] = tmp_path / f"loss{n}.npy"
        r = run_py([str(script), str(out[n]), str(n)],
                   {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"})
        assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out[4]), np.load(out[1]))


# ---- tune_lr: comparisons at each schedule's own tuned lr ------------------------------------------
def _bowl(opt, diverge_above=np.inf, seeds=8):
    """Deterministic bowl in log lr, (log lr - log opt_a)^2, one optimum per arm; NaN above a divergence lr."""
    calls = []

    def evaluate(lr, arm):
        calls.append(len(lr))
        v = (np.log(lr) - np.log(np.asarray(opt)[arm])) ** 2
        v = np.where(lr > diverge_above, np.nan, v)
        return np.repeat(v[:, None], seeds, axis=1)

    return evaluate, calls


def test_tune_lr_grows_the_grid_until_the_optimum_is_interior():
    """Optima far outside the starting grid (x30 above, /40 below) are reached by extension and bracketed;
    the refinement puts the best within a quarter octave (x2^(1/4)) of the true optimum."""
    ev, calls = _bowl([30.0, 0.025])
    tu = sw.tune_lr(ev, 2, [0.5, 0.7071, 1.0, 1.414, 2.0], max_extend=12)
    assert tu.interior.all()
    assert np.all(np.abs(np.log2(tu.best_lr / np.array([30.0, 0.025]))) <= 0.25 + 1e-9)
    assert tu.best.shape == (2, 8)
    ev2, _ = _bowl([30.0, 0.025])
    short = sw.tune_lr(ev2, 2, [0.5, 0.7071, 1.0, 1.414, 2.0], max_extend=2)
    assert not short.interior.any()  # not enough extensions: reported, not hidden


def test_tune_lr_divergence_brackets_from_above_and_initial_is_not_rerun():
    ev, calls = _bowl([100.0], diverge_above=3.0)
    grid = [0.5, 1.0, 2.0]
    init = ev(np.array(grid), np.zeros(3, int))[:, None, :]
    calls.clear()
    tu = sw.tune_lr(ev, 1, grid, factor=2.0, initial=init)
    assert tu.interior[0] and tu.best_lr[0] == pytest.approx(2.0 * 2**0.5)  # refined between 2 and 4 (diverged)
    assert calls and calls[0] == 1  # the starting grid came from `initial`


@pytest.mark.parametrize("kw", [dict(lrs=[1.0, 1.0, 2.0]), dict(lrs=[1.0, 2.0]), dict(lrs=[0.0, 1.0, 2.0]),
                                dict(lrs=[1.0, 2.0, np.nan])])
def test_tune_lr_bad_grid(kw):
    with pytest.raises(ValueError, match="lrs"):
        sw.tune_lr(_bowl([1.0])[0], 1, **kw)


# ---- plan / validation / provenance (architecture issue) ----
def test_misspelt_hparam_is_an_error_not_a_dimension():
    """The run reads ``lr``; ``lrr`` would otherwise be an extra dimension of identical runs."""
    with pytest.raises(ValueError, match=r"\['lrr'\] are not read by the run.*reads \[.*'lr'"):
        sw.sweep(make_run(CFG), {"lrr": [0.1, 0.2]}, fixed={"lr": 0.1}, seeds=2, key=jax.random.key(0),
                 progress=False)
    with pytest.raises(ValueError, match="not read"):
        sw.plan(make_run(CFG), {"lr": [0.1]}, fixed={"noise_scale": 1.0}, seeds=2, key=jax.random.key(0))


@pytest.mark.parametrize("axes, mode, match", [
    ({"lr": [0.1, 0.1]}, "grid", r"'lr' repeats the value\(s\) \[0.1\]"),
    ({"lr": [0.1, 0.2, 0.1], "decay_fraction": [0.0, 0.5, 0.0]}, "zip", r"repeats the point\(s\) \[\(0.1, 0.0\)\]"),
])
def test_repeated_hparam_values_are_an_error(axes, mode, match):
    with pytest.raises(ValueError, match=match):
        sw.plan(make_run(CFG), axes, mode=mode, seeds=2, key=jax.random.key(0))


def test_zip_may_repeat_a_value_in_distinct_points():
    p = sw.plan(make_run(CFG), {"lr": [0.1, 0.1], "decay_fraction": [0.0, 0.5]}, mode="zip", seeds=2,
                key=jax.random.key(0))
    assert p.n_points == 2


def test_dataset_says_what_made_it():
    ds = sw.sweep(make_run(CFG), {"lr": [0.1, 0.2]}, fixed={"decay_fraction": 0.5}, seeds=2,
                  key=jax.random.key(0), cfg=CFG, steps=CFG.steps(), progress=False)
    assert json.loads(ds.attrs["fixed_hparams"]) == {"decay_fraction": 0.5}
    assert "sims/quadratic.py" in ds.attrs["code_files"] and "sims/sweep.py" in ds.attrs["code_files"]
    assert "theory/quadratic.py" not in ds.attrs["code_files"] or "theory" in open(
        identity.SUITE_ROOT / "sims" / "quadratic.py").read()
    for k in ("code_id", "jaxlib_version", "dtype", "x64", "platform", "process_count", "build_flags"):
        assert k in ds.attrs, k
    assert ds.attrs["code_id"] == sw.code_identity("sims.quadratic")[0]
    assert json.loads(ds.attrs["build_flags"]) == {"xla_flags": os.environ.get("XLA_FLAGS", ""),
                                                   "compiler_options": sw.compiler_options()}


def test_other_xla_flags_are_another_sweep(monkeypatch):
    """XLA flags can change float rounding (make test's -O0 against make figures' -O2: ~1 ulp), so a cached chunk
    built under other flags must not be resumed into a sweep: the flags are part of the sweep id (the cache key)."""
    def sweep_id():
        return sw.plan(make_run(CFG), AXES, seeds=10, key=jax.random.key(0), steps=CFG.steps(), cfg=CFG).sweep_id

    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    a, a2 = sweep_id(), sweep_id()
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false")
    b = sweep_id()
    monkeypatch.delenv("XLA_FLAGS")
    c = sweep_id()  # no flags: the suite's own -O2 option on a CPU
    assert a == a2 and len({a, b, c}) == 3


def test_code_identity_changes_with_the_source(tmp_path, monkeypatch):
    """The hash covers the sim's module and the suite modules it imports: editing one changes it."""
    root = tmp_path
    (root / "sims").mkdir()
    (root / "sims" / "a.py").write_text("from sims import b\n")
    (root / "sims" / "b.py").write_text("X = 1\n")
    (root / "sims" / "eng").mkdir()  # a sub-package (like sims.engine): its modules count too
    (root / "sims" / "eng" / "__init__.py").write_text("")
    (root / "sims" / "eng" / "c.py").write_text("from sims.eng.d import Y\n")
    (root / "sims" / "eng" / "d.py").write_text("Y = 1\n")
    (root / "sims" / "b.py").write_text("from sims.eng import c\nX = 1\n")
    monkeypatch.setattr(identity, "SUITE_ROOT", root)
    sw.code_identity.cache_clear()
    try:
        h1, files = sw.code_identity("sims.a")
        assert files == ("sims/a.py", "sims/b.py", "sims/eng/__init__.py", "sims/eng/c.py", "sims/eng/d.py")
        sw.code_identity.cache_clear()
        (root / "sims" / "eng" / "d.py").write_text("Y = 2\n")
        h2, _ = sw.code_identity("sims.a")
        assert h1 != h2
    finally:
        sw.code_identity.cache_clear()


def test_cache_is_not_reused_after_the_code_changed(tmp_path, monkeypatch):
    """Same sweep, other code identity -> another cache entry, recomputed."""
    _sweep(cache_dir=tmp_path)
    first = {p.parent.name for p in tmp_path.rglob("chunk_*.npz")}
    monkeypatch.setattr(plan_mod, "code_identity", lambda m: ("edited-code", ()))
    _sweep(cache_dir=tmp_path)
    both = {p.parent.name for p in tmp_path.rglob("chunk_*.npz")}
    assert len(first) == 1 and len(both) == 2


def test_a_damaged_cache_chunk_is_recomputed(tmp_path):
    full = _sweep(cache_dir=tmp_path)
    for p in tmp_path.rglob("chunk_*.npz"):
        p.write_bytes(b"truncated")
    again = _sweep(cache_dir=tmp_path)
    xr.testing.assert_identical(full.drop_attrs(), again.drop_attrs())


def test_provenance_is_collected_across_sweeps():
    with sw.collect_provenance() as recs:
        _sweep(seeds=2)
        sw.sweep(make_run(CFG), {"lr": [1e3]}, seeds=3, key=jax.random.key(0), progress=False)
    assert len(recs) == 2
    assert recs[0]["n_runs"] == 8 and recs[1]["n_runs"] == 3
    assert recs[1]["n_diverged"] == 3  # lr = 1000 on curvature 3 diverges


def test_a_sweep_larger_than_memory_is_refused_before_compute(monkeypatch):
    """1e9 seeds x 52 bytes per run cannot be held: refused at planning, with the estimate and the knobs."""
    calls = []
    _patch_program(monkeypatch, lambda *a: calls.append(1))
    with pytest.raises(ValueError, match=r"need about .* GiB \(1000000000 seeds x 4 hparam points"):
        _sweep(seeds=10**9)
    assert calls == []


def test_force_lets_a_sweep_over_the_memory_estimate_be_planned(monkeypatch):
    """`allow_large()` (the CLI's --force) skips only the memory refusal: the plan is laid out in chunks that each
    fit max_bytes. The available memory is patched to 1 MiB so that a normal sweep exceeds it."""
    monkeypatch.setattr(plan_mod, "available_memory", lambda: 2**20)
    run = make_run(CFG)
    with pytest.raises(ValueError, match="--force to run anyway"):
        sw.plan(run, {"lr": [0.1, 0.2]}, seeds=20_000, key=jax.random.key(0))
    with sw.options(allow_large=True):
        p = sw.plan(run, {"lr": [0.1, 0.2]}, seeds=20_000, key=jax.random.key(0))
    assert p.n_points == 2 and p.seeds == 20_000


def test_progress_advances_per_block_inside_one_compiled_chunk(monkeypatch):
    """The bar moves once per block of log_every steps (a callback from the scan, through the program's hub), not
    once per chunk, counts each block once for the whole vmapped chunk (not once per run), and ends exactly at
    points x seeds x n_steps run-steps. The numbers are those of a sweep without a bar."""
    credits, ticks = [], []
    monkeypatch.setattr(progress.Bar, "_credit", lambda self, n: credits.append(n))
    real_tick = progress.Hub.tick
    monkeypatch.setattr(progress.Hub, "tick", lambda self, b: (ticks.append(int(b)), real_tick(self, b)))
    build.batched.cache_clear()  # retrace so that the callback in the compiled scan is the patched one
    try:
        ds = sw.sweep(make_run(CFG), AXES, seeds=6, key=jax.random.key(7), steps=CFG.steps(), cfg=CFG, progress=True,
                      steps_per_run=CFG.n_steps)
    finally:
        build.batched.cache_clear()
    n_blocks = CFG.n_steps // CFG.log_every
    assert sorted(ticks) == list(range(n_blocks))  # one chunk, one call per block
    assert len(credits) >= n_blocks  # per block (a last partial credit may follow)
    assert sum(credits) == len(AXES["lr"]) * 6 * CFG.n_steps
    ref = sw.sweep(make_run(CFG), AXES, seeds=6, key=jax.random.key(7), steps=CFG.steps(), cfg=CFG, progress=False)
    xr.testing.assert_identical(ds.drop_attrs(), ref.drop_attrs())


def test_progress_lines_when_stderr_is_not_a_terminal(monkeypatch):
    """Redirected to a file, progress is periodic log lines (done, rate, ETA), not a silent bar."""
    import logging

    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    lg = logging.getLogger("sims.progress")
    h = Keep()
    lg.addHandler(h)
    monkeypatch.setattr(lg, "level", logging.INFO)
    try:
        _sweep(progress=True, steps_per_run=CFG.n_steps)
    finally:
        lg.removeHandler(h)
    assert lines and "run-steps" in lines[-1] and "steps/s" in lines[-1] and "ETA" in lines[-1]


def test_a_run_traced_outside_a_sweep_has_no_progress_callback():
    """The progress callback exists only in sweep programs: a user's own jit of a run compiles none (no host
    round-trip)."""
    run = make_run(CFG)
    text = jax.jit(run).lower(jax.random.key(0), {"lr": jnp.float32(0.1)}).as_text()
    assert "callback" not in text
    prog = build.Batched(run)
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    assert "callback" in prog.many.lower(keys, {"lr": jnp.ones(2)}).as_text()


def test_the_chunk_thread_keeps_the_callers_jax_context():
    """Chunks run in a worker thread (for a prompt Ctrl-C); JAX's context managers are thread-local, so the
    worker must run under the caller's: a sweep inside enable_x64(True) computes in float64 (it silently ran in
    float32 before this was handled), one outside in float32."""
    cfg = QuadraticConfig(a=(1.0,), sigma=(0.5,), x0=(1.0,), n_steps=20, log_every=10)
    with jax.enable_x64(True):
        ds = sw.sweep(make_run(cfg), {"lr": [0.1]}, seeds=2, key=jax.random.key(0), steps=cfg.steps(), progress=False)
    assert ds.loss.dtype == np.float64 and ds.attrs["x64"] == 1
    ds = sw.sweep(make_run(cfg), {"lr": [0.1]}, seeds=2, key=jax.random.key(0), steps=cfg.steps(), progress=False)
    assert ds.loss.dtype == np.float32


def test_a_loop_split_at_a_record_step_continues_the_same_random_stream():
    """``span``: running steps [0, 40) and then [40, 100) from the state after 40 steps gives exactly the whole loop's
    state and records (a random walk: every step adds its own key's normal draw; equality is exact, float32), and
    a span off the record grid is refused."""
    key = jax.random.key(3)

    def step(k, s, t):
        return s + jax.random.normal(k) * (1 + t)

    rec = lambda s, t: {"x": s, "t": t}  # noqa: E731
    whole = sw.scan_with_records(key, step, jnp.zeros(()), rec, n_steps=100, log_every=10)
    a = sw.scan_with_records(key, step, jnp.zeros(()), rec, n_steps=100, log_every=10, span=(0, 40))
    b = sw.scan_with_records(key, step, a.state, rec, n_steps=100, log_every=10, span=(40, 100))
    assert float(b.state) == float(whole.state)
    np.testing.assert_array_equal(np.concatenate([a.traj["x"][:-1], b.traj["x"]]), whole.traj["x"])
    np.testing.assert_array_equal(b.traj["t"], np.arange(40, 101, 10))
    for bad in ((0, 45), (50, 40), (0, 110)):
        with pytest.raises(ValueError, match="span"):
            sw.scan_with_records(key, step, jnp.zeros(()), rec, n_steps=100, log_every=10, span=bad)


def test_chunks_side_by_side_give_the_bits_of_the_same_chunks_one_after_the_other():
    """``chunk_seeds=1`` lays each seed out as its own chunk; ``workers=2`` runs two chunks at once (the same
    compiled program, so the same bits as ``workers=1``); and seed s is still fold_in(key, s): for the quadratic
    sim (whose per-seed program does not depend on the batch size) equal to one vmapped chunk."""
    p = sw.plan(make_run(CFG), AXES, seeds=5, key=jax.random.key(7), chunk_seeds=1)
    assert p.seeds_per_chunk == jax.device_count() and len(p.chunks) == -(-5 // jax.device_count())
    one_by_one = _sweep(seeds=5, chunk_seeds=1)
    side = _sweep(seeds=5, chunk_seeds=1, workers=2)
    xr.testing.assert_identical(one_by_one.drop_attrs(), side.drop_attrs())
    np.testing.assert_array_equal(side.loss.values, _sweep(seeds=5).loss.values)
    assert side.attrs["chunks_computed"] == len(p.chunks)


def test_chunks_side_by_side_compile_their_program_once():
    """Chunks that start at once share one compile of their program: ``build.batched`` hands every chunk the one
    program (a lock around its cache; ``functools.cache`` alone built two programs when two chunks asked at once,
    each compiled: 2 compiles seen in the test suite), and jit compiles one program once. Counted by program name
    (other tests can leave small eager-op programs to compile here)."""
    import time

    from jax import monitoring

    compiles = []

    def count(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(kw.get("fun_name"))

    cfg = QuadraticConfig(a=(1.0, 2.0, 3.0), sigma=(0.5,), x0=(1.0,), n_steps=60, log_every=20)
    base = make_run(cfg)

    def run(key, hp):
        time.sleep(0.3)  # a slow trace: the chunks' first calls overlap, as a transformer's long trace makes them
        return base(key, hp)

    kw = dict(seeds=4, key=jax.random.key(0), steps=cfg.steps(), progress=False, chunk_seeds=1)
    monitoring.register_event_duration_secs_listener(count)
    try:
        sw.sweep(run, {"lr": [0.1]}, workers=4, **kw)
    finally:
        monitoring.unregister_event_duration_listener(count)
        build.batched.cache_clear()
    assert compiles.count("jit(one)") == 1, compiles


def test_progress_of_chunks_in_flight_at_once_sums_to_the_whole_sweep(monkeypatch):
    """Two chunks of one program in flight: every tick reaches both sinks (they cannot be told apart), each chunk
    is credited at most its own run-steps, and the bar ends at points x seeds x n_steps exactly."""
    credits = []
    monkeypatch.setattr(progress.Bar, "_credit", lambda self, n: credits.append(n))
    bar = progress.Bar(total_steps=2 * 3 * 100, n_blocks=10, per_run=100)
    hub = progress.Hub()
    a, b = bar.chunk(3), bar.chunk(3)
    with hub.sink(a), hub.sink(b):
        for i in range(4):
            hub.tick(i)
    assert credits == [30, 30, 30, 30, 30, 30, 30, 30]  # each sink: 3 runs x 10 steps per block
    bar.finish_chunk(3, a)
    with hub.sink(b):
        hub.tick(2)  # an older tick: no credit
    bar.finish_chunk(3, b)
    assert sum(credits) == 600 and all(c >= 0 for c in credits)
    hub.tick(9)  # no sink in flight: dropped
    assert sum(credits) == 600


@pytest.mark.parametrize("kw, msg", [(dict(workers=0), "workers"), (dict(workers=True), "workers"),
                                     (dict(workers=1.5), "workers"), (dict(chunk_seeds=0), "chunk_seeds"),
                                     (dict(chunk_seeds=2.0), "chunk_seeds")])
def test_bad_workers_or_chunk_seeds(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _sweep(**kw)


def test_several_processes_run_one_sweep_at_a_time(monkeypatch):
    """Chunks in threads would reach the processes' collectives in different orders: with several processes
    side_by_side() is 1 and workers > 1 is refused before any compute."""
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    assert sw.side_by_side() == 1
    with pytest.raises(ValueError, match="processes share this sweep"):
        _sweep(workers=2)
