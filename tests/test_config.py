"""The configuration path (sims.config + figures._core): every field typed, ranged and checked at construction,
the API and the CLI rejecting the same input with the same message; nested configs by dotted path; atomic
outputs and a report that survives a damaged claims file."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from figures import _contract, _core
from figures.__main__ import main as cli_main
from sims.bandits import BanditConfig
from sims.config import Config, check_fields, param
from sims.quadratic import QuadraticConfig
from tests.conftest import run_py


@dataclasses.dataclass(frozen=True)
class Inner(Config):
    lr: float = param(0.1, gt=0, help="peak lr")
    shape: str = param("linear", choices=("linear", "cosine"))


@dataclasses.dataclass(frozen=True)
class Outer(Config):
    sim: Inner = Inner()
    seeds: int = param(4, ge=1)
    grid: tuple[float, ...] = param((0.1, 0.2), gt=0, unique=True)
    bound: float = param(math.inf, gt=0, finite=False)
    flag: bool = False
    label: str | tuple = "a"


@pytest.mark.parametrize("make, needle", [
    (lambda: Inner(lr=-1.0), "lr=-1.0 is out of range: must be > 0"),
    (lambda: Inner(lr=math.nan), "lr=nan is out of range"),
    (lambda: Inner(lr=math.inf), "lr=inf is out of range: must be > 0 (finite)"),
    (lambda: Inner(lr="0.1"), "lr='0.1' has the wrong type: expected float"),
    (lambda: Inner(shape="step"), "shape='step' is out of range: must be one of ['linear', 'cosine']"),
    (lambda: Outer(seeds=2.5), "seeds=2.5 has the wrong type: expected int"),
    (lambda: Outer(seeds=True), "seeds=True has the wrong type"),
    (lambda: Outer(grid=(0.1, -0.2)), "grid=(0.1, -0.2) is out of range"),
    (lambda: Outer(grid=(0.1, "x")), "every entry must be of type float"),
    (lambda: Outer(bound=math.nan), "bound=nan"),
    (lambda: Outer(flag=1), "flag=1 has the wrong type: expected bool"),
    (lambda: Outer(grid=(0.1, 0.2, 0.1)), "grid=(0.1, 0.2, 0.1) repeats [0.1]: must be distinct values"),
])
def test_construction_rejects_bad_fields_naming_them(make, needle):
    with pytest.raises(ValueError) as e:
        make()
    assert needle in str(e.value)


def test_good_values_pass_and_inf_only_where_allowed():
    Outer(bound=math.inf, grid=(1, 2), label=("a", "b"), flag=True)  # ints are reals; a tuple where allowed
    check_fields(Outer())


@pytest.mark.parametrize("make, needle", [
    (lambda: QuadraticConfig(sigma=(math.nan,)), "sigma=(nan,)"),
    (lambda: QuadraticConfig(bound=math.inf), "bound=inf"),
    (lambda: QuadraticConfig(n_steps=1e3), "n_steps=1000.0 has the wrong type"),
    (lambda: BanditConfig(horizon=1e5), "horizon=100000.0 has the wrong type"),
    (lambda: BanditConfig(rho_bar=math.inf), "rho_bar=inf"),
])
def test_sim_configs_reject_nonfinite_and_mistyped_values_from_python(make, needle):
    """Before this, QuadraticConfig accepted NaN/inf from Python (the CLI path alone validated)."""
    with pytest.raises(ValueError) as e:
        make()
    assert needle in str(e.value)


def test_api_and_cli_reject_with_the_same_message():
    mod = _core.load("quadratic_sgd")
    with pytest.raises(ValueError) as api:
        dataclasses.replace(mod.presets["quick"], lr=-0.1)
    with pytest.raises(_core.UserError) as cli:
        _core.resolve_config(mod, "quick", None, ["lr=-0.1"])
    assert str(api.value) == str(cli.value)


def test_nested_fields_by_dotted_path():
    cfg = Outer()
    assert [n for n, _, _ in _core.walk_fields(cfg)] == ["sim.lr", "sim.shape", "seeds", "grid", "bound", "flag",
                                                          "label"]
    k, v = _core.parse_override(cfg, "sim.lr=0.5")
    assert (k, v) == ("sim.lr", 0.5)
    new = _core.replace_path(cfg, k, v)
    assert new.sim.lr == 0.5 and cfg.sim.lr == 0.1
    assert _core.parse_override(cfg, "flag=yes") == ("flag", True)
    assert _core.parse_override(cfg, "label=x,y") == ("label", ("x", "y"))
    assert _core.parse_override(cfg, "label=x") == ("label", "x")
    with pytest.raises(ValueError, match="sim.lr|lr=-1"):
        _core.replace_path(cfg, "sim.lr", -1.0)  # the nested config validates itself
    with pytest.raises(_core.UserError, match="valid keys: sim.lr, sim.shape"):
        _core.parse_override(cfg, "lr=0.1")


def test_show_prints_the_resolved_config(capsys):
    assert cli_main(["show", "bandit_regret", "--full", "--set", "seeds=3"]) == 0
    out = capsys.readouterr().out
    assert "seeds = 3" in out and "sim.horizon = 1000000" in out and "sim.log_every = 10000" in out
    assert "sim.instance" not in out  # set by the figure: not a knob
    assert cli_main(["show", "bandit_regret", "--set", "sim.horizon=nan"]) == 2
    assert cli_main(["show", "bandit_regret", "--set", "sim.instance=real"]) == 2


def _fake_figure(fail_at=None):
    """A figure module whose compute is instant (the output machinery is what is tested)."""
    import matplotlib.pyplot as plt
    import xarray as xr

    @dataclasses.dataclass(frozen=True)
    class Cfg(Config):
        seeds: int = param(2, ge=1)

    def compute(cfg):
        return xr.Dataset({"x": ("seed", np.arange(cfg.seeds, dtype=float))})

    def plot(ds, cfg):
        return plt.figure()

    def claims(ds, cfg):
        return [_core.Claim(id="c", statement="s", theory="1", measured="1", statistic="eq", passed=True)]

    return _core.Figure(name="fake", paper="-", description="a fake", config=Cfg,
                        presets={"tiny": Cfg(), "quick": Cfg(), "full": Cfg()}, compute=compute, claims=claims,
                        plot=plot)


def _use_fake(monkeypatch, fig):
    monkeypatch.setattr(_contract, "load", lambda name: fig)
    monkeypatch.setattr(_contract, "names", lambda: ("fake",))


def test_outputs_are_atomic_an_interrupted_write_keeps_the_old_files(tmp_path, monkeypatch):
    mod = _fake_figure()
    _use_fake(monkeypatch, mod)
    _core.run_figure("fake", out=tmp_path)
    old = {f: (tmp_path / f).read_bytes() for f in ("fake.png", "fake.nc", "fake.claims.json")}
    import xarray as xr

    def boom(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        _core.run_figure("fake", out=tmp_path, sets=["seeds=3"])
    assert {f: (tmp_path / f).read_bytes() for f in old} == old  # the previous complete set, untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_the_netcdf_says_what_made_it(tmp_path, monkeypatch):
    import xarray as xr

    mod = _fake_figure()
    _use_fake(monkeypatch, mod)
    _core.run_figure("fake", out=tmp_path)
    with xr.open_dataset(tmp_path / "fake.nc") as ds:
        for k in ("code_id", "git_commit", "jax_version", "jaxlib_version", "device_kind", "host_cpu", "n_diverged",
                  "sweeps", "figure_config"):
            assert k in ds.attrs, k
    rec = json.loads((tmp_path / "fake.claims.json").read_text())
    assert rec["provenance"]["n_sweeps"] == 0


def test_report_skips_and_names_a_damaged_claims_file(tmp_path):
    good = {"figure": "x", "preset": "quick", "claims": [
        _core.Claim(id="a", statement="s", theory="1", measured="1", statistic="z", passed=True).to_json()]}
    (tmp_path / "x.claims.json").write_text(json.dumps(good))
    (tmp_path / "y.claims.json").write_text(json.dumps(good)[:40])  # truncated by an interrupted write
    rep = _core.write_report(tmp_path).read_text()
    assert "1 claims: 1 pass" in rep and "unreadable claims file(s): y.claims.json" in rep


@pytest.mark.parametrize("setup, needle", [
    (lambda p: p.write_text("x"), "is a file, not a folder"),
    (lambda p: None, None),
])
def test_out_is_checked_before_compute(tmp_path, setup, needle):
    target = tmp_path / "f"
    setup(target)
    if needle is None:
        assert _core.check_out_dir(target / "new" / "dir") == target / "new" / "dir"
        assert not (target / "new").exists()  # checking creates nothing
        return
    with pytest.raises(_core.UserError, match=needle):
        _core.check_out_dir(target / "sub")


def test_cli_out_under_a_file_exits_2_at_once(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_py(["-m", "figures", "run", "quadratic_sgd", "--out", str(f / "out")], timeout=60)
    assert r.returncode == 2 and "is a file, not a folder" in r.stderr and "Traceback" not in r.stderr


def test_diverged_figure_is_reported_not_a_traceback(tmp_path, monkeypatch, capsys):
    """A figure whose runs all diverged (bb_attention --set lr=1e6 raised RuntimeError before) reports one line,
    exits 1 and writes nothing for that figure."""
    mod = _fake_figure()

    def compute(cfg):
        raise _core.Diverged("4 of 4 Bigram-Backcopy runs diverged (lr=1e+06); not plotting them")

    mod = dataclasses.replace(mod, compute=compute)
    _use_fake(monkeypatch, mod)
    assert cli_main(["run", "fake", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "fake: 4 of 4 Bigram-Backcopy runs diverged" in err
    assert not (tmp_path / "o" / "fake.png").exists()


def test_nested_changes_are_checked_together_in_any_order():
    """sim.V=32 alone is invalid for the Shakespeare chain; with sim.data=zipf it is valid, in either order."""
    mod = _core.load("bb_attention")
    for sets in (["sim.V=32", "sim.data=zipf"], ["sim.data=zipf", "sim.V=32"]):
        cfg = _core.resolve_config(mod, "quick", None, sets)
        assert (cfg.sim.data, cfg.sim.V) == ("zipf", 32)
    with pytest.raises(_core.UserError, match="V must be 65 with data='authors'"):
        _core.resolve_config(mod, "quick", None, ["sim.V=32"])
