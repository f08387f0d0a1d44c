"""The figures CLI end to end (subprocess): list, run with --set, bad input -> exit 2, nothing written."""

from __future__ import annotations

import json
import os

import pytest

from figures import _core
from tests.conftest import run_py


def test_list_names_every_figure():
    r = run_py(["-m", "figures", "list"])
    assert r.returncode == 0, r.stderr
    for name in _core.names():
        assert name in r.stdout


def test_run_with_set_writes_png_nc_claims_and_report(tmp_path):
    out = tmp_path / "out"
    r = run_py(["-m", "figures", "run", "quadratic_sgd", "--quick", "--seeds", "400", "--set", "sim.n_steps=400",
                "--set", "lr_grid=0.1,1.0,2.5", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    # a run with overrides is written as quadratic_sgd.<tag>.*: never over the preset's reproduction
    (cj,) = list(out.glob("quadratic_sgd.*.claims.json"))
    stem = cj.name[: -len(".claims.json")]
    for suffix in (".png", ".nc", ".claims.json"):
        assert (out / f"{stem}{suffix}").stat().st_size > 0
    assert not (out / "quadratic_sgd.png").exists()
    rec = json.loads(cj.read_text())
    assert rec["overrides"] == ["sim.n_steps=400", "seeds=400", "lr_grid=0.1,1,2.5"]
    assert rec["config"]["seeds"] == 400 and rec["config"]["lr_grid"] == [0.1, 1.0, 2.5]
    assert all(c["status"] == "pass" for c in rec["claims"])
    report = (out / "REPORT.md").read_text()
    assert "divergence_boundary" in report and "| **pass** |" in report
    # lr = 2.5 > 2/a diverges on purpose: 400 seeds of the lr sweep (+ none of the 3 schedules' 400): counted in
    # every claim, in the data's attrs and on stderr, never silently
    n_div = "400 of 2400 runs diverged"
    assert all(n_div in c["measured"] for c in rec["claims"])
    assert f"warning: quadratic_sgd: {n_div}" in r.stderr
    # the saved run keeps its sweeps' records: a replot or recheck still counts the diverged runs
    import figures

    back = figures.open_run(out / f"{stem}.nc")
    assert sum(s["n_diverged"] for s in back.sweeps) == 400
    assert all(n_div in c.measured for c in figures.recheck(back))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "no_such_figure"], "unknown figure"),
        (["run", "quadratic_sgd", "--set", "lr=-0.1"], "lr=-0.1 is out of range"),
        (["run", "quadratic_sgd", "--set", "seeds=0"], "seeds"),
        (["run", "quadratic_sgd", "--seeds", "0"], "seeds"),
        (["run", "quadratic_sgd", "--set", "nope=1"], "unknown config key"),
        (["run", "quadratic_sgd", "--set", "sim.n_steps=ten"], "sim.n_steps"),
        (["run", "quadratic_sgd", "--set", "sim.n_steps"], "key=value"),
        (["run", "quadratic_sgd", "--set", "sim.n_steps=1001"], "multiple of log_every"),
        (["run", "river_landscape", "--set", "sim.curvature=0.5"], "sim.curvature is set by the figure"),
        (["run", "wsd_s_budgets", "--set", "sim.n_steps=100"], "sim.n_steps is set by the figure"),
        (["run", "river_landscape", "--set", "sim.a=10,5"], "sim.a and sim.sigma_hill must hold one value"),
        (["run", "quadratic_sgd", "--bogus"], "unrecognized"),
        (["run", "schedule_bound_vs_sim", "--set", "bound_horizons=100,100"], "strictly increasing"),
        (["run", "schedule_bound_vs_sim", "--set", "bound_horizons=100,1000000000"], "bound_horizons"),
        (["run", "quadratic_sgd", "--set", "lr_grid=0.1,0.1"], "lr_grid=(0.1, 0.1) repeats [0.1]"),
        (["run", "rex_budgets", "--set", "problems=logistic,logistic"], "must be distinct values"),
        (["run", "gla_stability", "--set", "sub_chunk_size=5"], "sub_chunk_size=5 is out of range"),
        (["run", "gla_stability", "--set", "normalizers=1,0"], "normalizers"),
        (["run", "radial_mask", "--set", "rates=1,2,3"], "(alpha, beta) pairs"),
        (["run", "radial_mask", "--set", "hunyuan_frames=61"], "must include 497"),
        (["run", "lightnet_maps", "--set", "lam=1.0"], "lam"),
        (["run", "bb_extreme_tokens", "--seeds", "1"], "seeds=1 is out of range: must be >= 2"),
    ],
)
def test_bad_input_exit_2_nothing_written(tmp_path, capsys, args, needle):
    """In-process (the CLI's main): a subprocess per case cost ~4 s of interpreter and JAX start-up each; the real
    process exit status is checked once below."""
    from figures.__main__ import main as cli_main

    out = tmp_path / "out"
    try:
        rc = cli_main([*args, "--out", str(out)])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err
    assert not out.exists()


def test_bad_input_exits_2_from_a_real_process(tmp_path):
    out = tmp_path / "out"
    r = run_py(["-m", "figures", "run", "quadratic_sgd", "--set", "lr=-0.1", "--out", str(out)])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "lr=-0.1 is out of range" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_validate_rejects_nonfinite_and_reports_range():
    mod = _core.load("quadratic_sgd")
    with pytest.raises(_core.UserError, match=r"sigma=.*must be >= 0"):
        _core.resolve_config(mod, "quick", None, ["sim.sigma=-1"])
    with pytest.raises(_core.UserError, match="lr=nan"):
        _core.resolve_config(mod, "quick", None, ["lr=nan"])
    with pytest.raises(_core.UserError, match="preset"):
        _core.resolve_config(mod, "medium")


def test_claim_status_and_report(tmp_path):
    """FAIL vs 'not reproduced' (a documented finding) vs pass, as the report shows them."""
    c = [_core.Claim(id="a", statement="s", theory="1", measured="1", statistic="z", passed=True),
         _core.Claim(id="b", statement="s", theory="1", measured="2", statistic="z", passed=False),
         _core.Claim(id="c", statement="s", theory="1", measured="2", statistic="z", passed=False,
                     finding="toy too small")]
    assert [x.status.value for x in c] == ["pass", "FAIL", "not reproduced"]
    with pytest.raises(TypeError):  # by keyword only: theory and measured cannot be swapped by position
        _core.Claim("a", "s", "1", "1", "z", True)
    (tmp_path / "x.claims.json").write_text(json.dumps(
        {"figure": "x", "preset": "quick", "claims": [x.to_json() for x in c]}))
    rep = _core.write_report(tmp_path).read_text()
    assert "**not reproduced**" in rep and "**FAIL**" in rep and "1 pass, 1 not reproduced, 1 fail" in rep


def test_run_help_lists_every_config_field_with_defaults_and_range():
    """`run NAME --help` names each field of the figure's Config, its quick and full defaults and its range."""
    r = run_py(["-m", "figures", "run", "schedule_bound_vs_sim", "--help"])
    assert r.returncode == 0, r.stderr
    assert "bound_horizons: quick (100, 1000, 10000, 100000), full (100, 1000, 10000, 100000); >= 2 and <= 10000000" \
        in r.stdout
    cfg = _core.load("schedule_bound_vs_sim").presets["quick"]
    names = [n for n, _, _ in _core.walk_fields(cfg)]
    assert "sim.n_steps" in names and "seeds" in names  # the nested sim config's fields, by dotted path
    for name in names:
        assert f"  {name}: quick " in r.stdout
    for name in _core.set_by_figure(cfg):  # set by the figure itself (per problem / schedule): not a knob
        assert name not in names and f"  {name}: quick " not in r.stdout


def test_ctrl_c_keeps_finished_chunks_and_the_rerun_resumes_to_the_same_bits(tmp_path):
    """SIGINT once the first sweep's chunk is saved: exit 130 with a message; the same command again loads that
    chunk (it is not recomputed: its file is unchanged) and finishes; the data equal an uninterrupted run's."""

    import numpy as np
    import xarray as xr

    from tests.conftest import ROOT, interrupt_after_first_chunk

    args = ["-m", "figures", "run", "quadratic_sgd", "--seeds", "500", "--set", "sim.n_steps=3000"]
    out = tmp_path / "out"
    env = {"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin",
           "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}  # the same compiler flags as this process: the same bits
    rc, err, after = interrupt_after_first_chunk(args, out, env)
    cache = out / ".sweep_cache"
    assert after < 5.0  # the chunk in flight is abandoned, not waited for
    assert rc == 130, err[-2000:]
    assert "interrupted during quadratic_sgd" in err and "run the same command again" in err
    assert not list(out.glob("quadratic_sgd*.nc"))  # nothing half-written
    kept = {p: p.stat().st_mtime_ns for p in cache.rglob("chunk_*.npz")}
    assert len(kept) == 1
    r = run_py([*args, "--out", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # loaded, not recomputed
    ref = run_py([*args, "--out", str(tmp_path / "ref"), "--no-cache"])
    assert ref.returncode == 0 and not (tmp_path / "ref" / ".sweep_cache").exists()
    (nc,) = list(out.glob("quadratic_sgd.*.nc"))  # a run with overrides: NAME.<tag>.nc, the same tag in both
    with xr.open_dataset(nc) as a, xr.open_dataset(tmp_path / "ref" / nc.name) as b:
        for v in a.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values)


def test_ctrl_c_interrupts_a_long_compiled_call_within_a_second():
    """`interruptible` runs the chunk in a worker thread: SIGINT raises KeyboardInterrupt in the main thread at
    once although the call (here a 60 s stand-in) is still running."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    code = ("import time, sys\nfrom sims.sweep import interruptible\nprint('ready', flush=True)\nt = time.time()\n"
            "try:\n    interruptible(time.sleep, 60)\nexcept KeyboardInterrupt:\n"
            "    print(f'interrupted {time.time() - t:.3f}', flush=True)\n    sys.exit(0)\nsys.exit(3)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert float(out.split()[-1]) < 2.0, out  # vs 60 s for the call itself


def test_running_every_figure_releases_compiled_programs_between_figures(tmp_path, monkeypatch):
    """`figures all` drops the compiled programs before each figure (one process compiling every figure's programs ran
    out of memory maps at the 33rd figure); a figure's results are unaffected. Stubbed figures: counts the calls."""
    import argparse

    import jax

    from figures import __main__ as cli
    from figures import _core

    calls = []
    monkeypatch.setattr(jax, "clear_caches", lambda: calls.append("clear"))
    monkeypatch.setattr(_core, "run_figure", lambda n, *a, **k: calls.append(n) or [])
    args = argparse.Namespace(preset="tiny", seeds=None, sets=(), out=str(tmp_path), cache=False, force=False)
    assert cli._run_all(args, ["a", "b", "c"]) == 0
    assert calls == ["clear", "a", "clear", "b", "clear", "c"]
