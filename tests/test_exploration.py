"""Exploration as a user does it: the figures' Python API (run, open_run, replot, compare, claims), the CLI verbs
for the same, runs with overrides kept apart from the reproduction, the HTML report in a real browser, CF metadata
and compression of the NetCDF, the sweep cache's show / prune, typical times in `figures list`, Ctrl-C of
concurrent calls, and the small input checks (did-you-mean, short floats, non-finite hparams)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import figures
from figures import _core
from figures.__main__ import main as cli_main
from tests.conftest import ROOT, interrupt_after_first_chunk, run_py

CHEAP = "schedule_gallery"  # closed forms only: a run takes seconds


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    base = figures.run(CHEAP, "tiny", out=out)
    mod = figures.run(CHEAP, "tiny", "T=300", out=out)
    return out, base, mod


def test_run_returns_data_claims_figure_and_names_its_overrides(two_runs):
    out, base, mod = two_runs
    assert base.overrides == () and base.stem == CHEAP and base.dataset.sizes and base.figure is not None
    assert mod.overrides == ("T=300",) and mod.config.T == 300 and mod.stem.startswith(CHEAP + ".")
    assert all(c.status is _core.Status.PASS for c in base.claims + mod.claims)
    # the modified run never takes the reproduction's file names
    for suffix in (".png", ".nc", ".claims.json"):
        assert (out / f"{CHEAP}{suffix}").exists() and (out / f"{mod.stem}{suffix}").exists()
    rec = json.loads((out / f"{mod.stem}.claims.json").read_text())
    assert rec["overrides"] == ["T=300"] and rec["preset"] == "tiny"
    assert f"| {CHEAP} (tiny + T=300) |" in (out / "REPORT.md").read_text()


def test_a_saved_run_comes_back_with_its_config_and_replots(two_runs):
    out, _, mod = two_runs
    back = figures.open_run(out / f"{mod.stem}.nc")
    assert back.config == mod.config and back.overrides == mod.overrides and back.name == CHEAP
    assert [c.id for c in back.claims] == [c.id for c in mod.claims]
    png = out / f"{mod.stem}.png"
    png.unlink()
    assert figures.replot(out / f"{mod.stem}.nc") == png and png.stat().st_size > 0


def test_recheck_reports_an_edited_claim_on_the_saved_data(two_runs, monkeypatch, capsys):
    """recheck evaluates the current claims code on the saved data: unchanged code gives the run's own claims; a
    claim whose statistic was edited (here: every claim made to fail) says so beside what the run said, and the
    claims file is untouched."""
    import dataclasses

    from figures import _contract

    out, _, mod = two_runs
    nc, cj = out / f"{mod.stem}.nc", out / f"{mod.stem}.claims.json"
    before = cj.read_bytes()
    again = figures.recheck(nc)
    assert [(c.id, c.status, c.measured) for c in again] == [(c.id, c.status, c.measured) for c in mod.claims]
    fig = _contract.load(CHEAP)

    def stricter(ds, cfg):
        cs = fig.claims(ds, cfg)
        for c in cs:
            c.passed = False
        return cs

    edited = dataclasses.replace(fig, claims=stricter)
    real_load = _contract.load
    monkeypatch.setattr(_contract, "load", lambda name: edited if name == CHEAP else real_load(name))
    assert all(c.status is _core.Status.FAIL for c in figures.recheck(nc))
    assert cli_main(["claims", str(nc)]) == 0
    assert capsys.readouterr().out.count("(the run said: pass)") == len(mod.claims)
    assert cj.read_bytes() == before


def test_compare_names_config_and_claim_differences(two_runs):
    out, base, mod = two_runs
    text = figures.compare(out / f"{CHEAP}.claims.json", out / f"{mod.stem}.claims.json")
    assert "T: A 200 | B 300" in text
    assert "* refine_shape" in text  # its measurement differs between the runs


def test_claims_are_listed_without_running():
    listed = figures.claims("wsd_decay")
    assert [c["id"] for c in listed] == ["decay_drop_exact", "decay_drop_is_hill_excess", "wsd_beats_cosine",
                                         "optimal_decay_fraction"]
    assert listed[1]["regime"].startswith("a stationary stable phase") and listed[0]["regime"] == ""


def test_cli_verbs_claims_replot_compare_cache(two_runs, capsys):
    out, _, mod = two_runs
    assert cli_main(["claims", "wsd_decay"]) == 0
    assert "decay_drop_is_hill_excess" in capsys.readouterr().out
    assert cli_main(["replot", str(out / f"{mod.stem}.nc")]) == 0
    assert f"{mod.stem}.png" in capsys.readouterr().out
    assert cli_main(["compare", str(out / f"{CHEAP}.claims.json"), str(out / f"{mod.stem}.claims.json")]) == 0
    assert "T: A 200 | B 300" in capsys.readouterr().out
    assert cli_main(["replot", str(out / "missing.nc")]) == 2
    assert "no such file" in capsys.readouterr().err
    # a saved run's claims evaluated again by the current code: each with its status and measurement
    assert cli_main(["claims", str(out / f"{mod.stem}.nc")]) == 0
    shown = capsys.readouterr().out
    assert shown.count("[          pass]") == len(mod.claims) and "the run said" not in shown


def test_cache_shows_and_prunes(tmp_path, capsys):
    cache = tmp_path / _core.CACHE_DIR
    for sid, n in (("aaaa", 2), ("bbbb", 1)):
        (cache / sid).mkdir(parents=True)
        for i in range(n):
            np.savez(cache / sid / f"chunk_h0_s{i}.npz", x=np.zeros(100))
        time.sleep(0.01)
    assert cli_main(["cache", "--out", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "2 cached sweep(s)" in shown and "aaaa  2 chunk(s)" in shown
    assert cli_main(["cache", "--out", str(tmp_path), "--prune", "--keep", "1"]) == 0
    assert "pruned 1 sweep(s)" in capsys.readouterr().out
    assert [p.name for p in cache.iterdir()] == ["bbbb"]  # the newest kept
    assert cli_main(["cache", "--out", str(tmp_path), "--prune", "--keep", "-1"]) == 2


def test_list_shows_each_figures_measured_quick_time():
    r = run_py(["-m", "figures", "list"])
    assert r.returncode == 0, r.stderr
    timings = json.loads((ROOT / "figures" / "timings.json").read_text())["quick_seconds"]
    assert set(timings) == set(_core.names())  # measured for every figure
    for line in r.stdout.splitlines()[:-1]:
        assert "~" in line.split()[1], line


def test_netcdf_is_compressed_and_every_variable_has_long_name_and_units(two_runs):
    import h5py
    import xarray as xr

    out, _, _ = two_runs
    with xr.open_dataset(out / f"{CHEAP}.nc", engine="h5netcdf") as ds:
        for v in list(ds.data_vars) + list(ds.coords):
            assert ds[v].attrs.get("long_name") and ds[v].attrs.get("units"), v
    with h5py.File(out / f"{CHEAP}.nc") as f:
        comp = [f[k].compression for k in f if isinstance(f[k], h5py.Dataset) and f[k].ndim and f[k].size > 1
                and f[k].dtype.kind in "fiub" and not k.startswith("_")]
    assert comp and all(c == "gzip" for c in comp)


def test_html_report_loads_in_a_real_browser(two_runs, tmp_path):
    """The page works offline: every image decodes and the claim count on the page equals the claims files'."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium): the HTML report is not browser-tested")
    out, _, _ = two_runs
    page = out / "REPORT.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # no CDN, nothing fetched
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                        "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = r.stdout
    n_img = html.count("<img ")
    n_claims = sum(len(json.loads(p.read_text())["claims"]) for p in out.glob("*.claims.json"))
    assert n_img == 2 and f'data-images="{n_img}"' in dom and f'data-images-loaded="{n_img}"' in dom, dom[:500]
    assert f'data-claims="{n_claims}"' in dom and dom.count('class="claim"') == n_claims


def test_ctrl_c_stops_concurrent_calls_within_a_second():
    """`concurrent` (the engine's way to run several compiled calls at once, e.g. bandit_regret's code paths): the
    main thread waits in short joins, so SIGINT raises KeyboardInterrupt at once although both calls (60 s
    stand-ins) still run, and no further call starts."""
    code = ("import time, sys\nfrom sims.sweep import concurrent\nprint('ready', flush=True)\nt = time.time()\n"
            "try:\n    concurrent([lambda: time.sleep(60)] * 3, max_workers=2)\nexcept KeyboardInterrupt:\n"
            "    print(f'interrupted {time.time() - t:.3f}', flush=True)\n    sys.exit(0)\nsys.exit(3)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    o, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert float(o.split()[-1]) < 2.0, o


def test_concurrent_returns_in_order_and_raises_the_first_error():
    from sims.sweep import concurrent

    assert concurrent([lambda i=i: i * i for i in range(5)], max_workers=2) == [0, 1, 4, 9, 16]
    with pytest.raises(ZeroDivisionError):
        concurrent([lambda: 1, lambda: 1 / 0])
    with pytest.raises(ValueError, match="max_workers"):
        concurrent([], max_workers=0)
    with jax.enable_x64(True):  # the caller's JAX context reaches the workers
        assert concurrent([lambda: jax.numpy.zeros(()).dtype])[0] == np.float64


def test_small_input_checks(capsys):
    with pytest.raises(_core.UserError, match="did you mean 'lambdas'"):
        _core.resolve_config(_core.load("lion_box"), "quick", None, ["lamdbas=1"])
    # --seeds uses the figure's own range: the same message as --set seeds=
    assert cli_main(["run", "wsd_decay", "--seeds", "1", "--out", "/tmp/unused"]) == 2
    a = capsys.readouterr().err
    assert cli_main(["run", "wsd_decay", "--set", "seeds=1", "--out", "/tmp/unused"]) == 2
    assert a == capsys.readouterr().err and "must be >= 2" in a
    r = run_py(["-m", "figures", "run", "lion_box", "--help"])
    assert "lambdas: quick (1.66667, 3.33333)" in r.stdout and "1.6666666666666667" not in r.stdout


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_hparam_is_bad_input(bad):
    from sims.quadratic import QuadraticConfig, sim
    from sims.sweep import sweep

    cfg = QuadraticConfig(a=(1.0,), n_steps=20, log_every=10)
    with pytest.raises(ValueError, match="hparam 'lr' has a non-finite value"):
        sweep(sim(cfg), {"lr": [0.1, bad]}, seeds=2, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="hparam 'decay_fraction' has a non-finite value"):
        sweep(sim(cfg), {"lr": [0.1]}, fixed={"decay_fraction": bad}, seeds=2, key=jax.random.key(0),
              progress=False)


def test_claims_json_stores_numbers_as_numbers(two_runs):
    from figures._claims import numbers

    assert numbers("[0.0105, 0.0129, 3e-5]; max |z| = 1.129") == [[0.0105, 0.0129, 3e-5], 1.129]
    assert numbers("L2 distance 0.0214 of 1-sqrt at x0=-2, inf") == [0.0214, -2, "inf"]
    out, _, _ = two_runs
    rec = json.loads((out / f"{CHEAP}.claims.json").read_text())
    c = next(c for c in rec["claims"] if c["id"] == "rex_profile")
    assert c["theory_values"] == [[1, 0.857, 0.667, 0.4]] and isinstance(c["measured_values"][0][1], float)


def test_ctrl_c_during_concurrent_sweeps_keeps_finished_chunks_and_resumes_to_the_same_bits(tmp_path):
    """bandit_regret runs its code paths concurrently: SIGINT stops the figure at once (exit 130, nothing written
    but the finished chunks), and the same command resumes to the bits of an uninterrupted run."""
    import os

    import xarray as xr

    args = ["-m", "figures", "run", "bandit_regret", "--tiny", "--set", "sim.horizon=40000", "--set",
            "sim.log_every=4000", "--set", "algorithms=dynlinucblog,exp3,ar2"]
    out = tmp_path / "out"
    rc, err, after = interrupt_after_first_chunk(args, out, dict(os.environ, MPLBACKEND="Agg"))
    assert after < 5.0
    assert rc == 130, err[-2000:]
    cache = out / _core.CACHE_DIR
    assert "interrupted during bandit_regret" in err and "run the same command again" in err
    kept = {p: p.stat().st_mtime_ns for p in cache.rglob("chunk_*.npz")}
    assert 1 <= len(kept) < 4 and not list(out.glob("bandit_regret*.nc"))
    r = run_py([*args, "--out", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # loaded, not recomputed
    ref = run_py([*args, "--out", str(tmp_path / "ref"), "--no-cache"])
    assert ref.returncode == 0
    (a,) = list(out.glob("bandit_regret*.nc"))
    with xr.open_dataset(a) as x, xr.open_dataset(tmp_path / "ref" / a.name) as y:
        for v in ("pseudo_regret", "realized_regret"):
            np.testing.assert_array_equal(x[v].values, y[v].values)


def test_the_interrupt_message_names_the_cache_only_when_it_exists(tmp_path, monkeypatch, capsys):
    """Ctrl-C before any sweep chunk finished: the message says so instead of naming a folder that was never
    made."""
    import figures._output as output

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "run_figure", interrupted)
    monkeypatch.setattr(_core, "run_figure", interrupted)
    assert cli_main(["run", CHEAP, "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert "no sweep chunk had finished" in err and ".sweep_cache" not in err
    (tmp_path / "o" / _core.CACHE_DIR).mkdir(parents=True)
    assert cli_main(["run", CHEAP, "--out", str(tmp_path / "o")]) == 130
    assert f"kept in {tmp_path / 'o' / _core.CACHE_DIR}" in capsys.readouterr().err
