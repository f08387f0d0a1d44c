"""Dynamical linear bandits: theory (h, epochs, limits, switch cost), environment vs theory, bad input,
determinism, one compiled call per code path. The independent NumPy reference is tests/test_bandits_reference.py."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from sims import bandits as sb
from sims.bandits import BanditConfig, make_run
from sims.sweep import batched, sweep
from tests.conftest import run_py
from theory import bandits as tb


def test_markov_parameter_equals_truncated_series():
    """h = theta + sum_k B^T (A^T)^k omega (Neumann series, 400 terms) for a non-normal complex instance."""
    inst = tb.random_instance(3, rho=0.9)
    s, P = np.zeros(3), np.eye(inst.A.shape[0])
    for _ in range(400):
        s += inst.B.T @ P.T @ inst.omega
        P = P @ inst.A
    np.testing.assert_allclose(tb.markov_parameter(inst), inst.theta + s, rtol=1e-12, atol=1e-14)


def test_paper_instances():
    """Synthetic: h = (0.5625, 0.5, 0.1111), best arm (1, .5, 0) with 0.8125; real: rho = 0.667, best (1, 0, .5)."""
    s = tb.synthetic()
    np.testing.assert_allclose(tb.markov_parameter(s), [0.5625, 0.5, 1 / 9], rtol=1e-12)
    i, u = tb.optimal_action(s)
    np.testing.assert_allclose(u, [1, 0.5, 0]) and pytest.approx(0.8125) == float(u @ tb.markov_parameter(s))
    r = tb.real_data()
    assert tb.spectral_radius(r.A) == pytest.approx(0.667, abs=1e-3)
    np.testing.assert_allclose(tb.optimal_action(r)[1], [1, 0, 0.5])
    assert len(tb.epoch_ends(0.2, 1_000_000)) == 137_206  # the count the authors' code produces


def test_sanity_limits():
    """B = 0 or omega = 0 -> h = theta; A = 0 -> H_m = 1 and h = theta + B^T omega; unit ball -> h/|h|."""
    s = tb.synthetic()
    assert np.allclose(tb.markov_parameter(s._replace(B=np.zeros((3, 3)))), s.theta)
    assert np.allclose(tb.markov_parameter(s._replace(omega=np.zeros(3))), s.theta)
    z = s._replace(A=np.zeros((3, 3)))
    assert np.allclose(tb.markov_parameter(z), s.theta + s.B.T @ s.omega)
    assert np.all(tb.epoch_lengths(0.0, 50) == 1)
    _, u = tb.optimal_action(s, "ball")
    assert u == pytest.approx(tb.markov_parameter(s) / np.linalg.norm(tb.markov_parameter(s)))


def test_epoch_lengths_keep_transient_below_1_over_m():
    for rho in (0.2, 0.667, 0.95):
        H = tb.epoch_lengths(rho, 5000)
        m = np.arange(1, 5001)
        assert np.all(rho**H < 1 / m + 1e-15)


def test_switch_cost_matches_direct_sum():
    """omega^T (I-A)^-2 B (u' - u) equals the summed mean transient computed by iterating the mean dynamics."""
    inst = tb.random_instance(1, rho=0.85)
    u0, u1 = inst.arms[0], inst.arms[3]
    h = tb.markov_parameter(inst)
    x = np.linalg.solve(np.eye(inst.A.shape[0]) - inst.A, inst.B @ u0)  # steady state of u0
    cost = 0.0
    for _ in range(3000):
        cost += h @ u1 - (inst.omega @ x + inst.theta @ u1)
        x = inst.A @ x + inst.B @ u1
    assert tb.switch_cost(inst, u0, u1) == pytest.approx(cost, rel=1e-9, abs=1e-12)


def test_env_mean_reward_converges_to_h_u():
    """Holding each arm of a non-normal complex instance: second-half mean reward within 4 SE of h^T u."""
    cfg = BanditConfig(instance="random=2,0.9", algorithms=("constant_arm",), horizon=1000, log_every=100)
    inst = sb.instance(cfg.instance)
    with jax.enable_x64(True):
        ds = sweep(make_run(cfg), {"arm": list(range(5))}, seeds=300,
                   key=jax.random.key(0), steps=cfg.steps(), progress=False, dims={"h_hat": ("c",)})
    h = tb.markov_parameter(inst)
    best = float(np.max(inst.arms @ h))
    R = ds.realized_regret.values
    ybar = best - (R[:, :, -1] - R[:, :, 5]) / 500
    m, se = ybar.mean(1), ybar.std(1, ddof=1) / np.sqrt(300)
    assert np.all(np.abs(m - inst.arms @ h) < 4 * se)


def test_gymnax_style_reset_step_vmap_over_instances():
    """step is pure and vmappable over instances (EnvParams stacked) and keys."""
    ps = [sb.env_params(tb.random_instance(i, rho=0.5)) for i in range(3)]
    P = jax.tree.map(lambda *x: np.stack(x), *ps)
    keys = jax.random.split(jax.random.key(0), 3)
    st = jax.vmap(sb.reset)(keys, P)
    st2, y = jax.vmap(sb.step, in_axes=(0, 0, None, 0))(keys, st, np.ones(3), P)
    assert y.shape == (3,) and st2.x.shape == (3, 4)


@pytest.mark.parametrize("limit", ["synthetic:B=0", "synthetic:omega=0"])
def test_limit_h_equals_theta_and_dynlinucb_matches_linucb(limit):
    """B = 0 or omega = 0: h = theta, so both estimators are unbiased for theta (|h_hat - theta| < 0.05 on
    the seed mean) and both play argmax theta^T u most often over the second half (A = 0: test_sanity_limits)."""
    inst = sb.instance(limit)
    assert np.allclose(tb.markov_parameter(inst), inst.theta)
    best = int(np.argmax(inst.arms @ inst.theta))
    for alg in ("dynlinucblog", "linucblog"):
        cfg = BanditConfig(instance=limit, algorithms=(alg,), horizon=20000, log_every=1000, rho_bar=0.2)
        with jax.enable_x64(True):
            ds = sweep(make_run(cfg), None, seeds=3, key=jax.random.key(0), steps=cfg.steps(),
                       progress=False, dims={"h_hat": ("c",)})
        played = ds.arm_played.values[:, 10:].ravel()
        assert np.bincount(played, minlength=6).argmax() == best, alg
        assert np.abs(ds.h_hat.mean("seed").values - inst.theta).max() < 0.05, alg


def test_unit_ball_action_set():
    """Unit ball (discretized by 512 sphere directions): the best grid arm is within 1% of the continuous
    optimum h/|h| (value |h|), and DynLin-UCB's estimate approaches h on it."""
    inst = sb.instance("real:ball")
    h = tb.markov_parameter(inst)
    assert np.max(inst.arms @ h) >= 0.99 * np.linalg.norm(h)
    _, u = tb.optimal_action(inst, "ball")
    assert u @ h == pytest.approx(np.linalg.norm(h))
    cfg = BanditConfig(instance="real:ball", algorithms=("dynlinucblog",), horizon=20000, log_every=1000)
    with jax.enable_x64(True):
        ds = sweep(make_run(cfg), None, seeds=2, key=jax.random.key(0), steps=cfg.steps(),
                   progress=False, dims={"h_hat": ("c",)})
    hh = ds.h_hat.mean("seed").values
    assert np.linalg.norm(hh - h) < 0.1 * np.linalg.norm(h)  # measured ~0.03 |h| at 2e4 rounds
    assert not ds.diverged.any()


def test_determinism():
    cfg = BanditConfig(instance="synthetic", algorithms=("exp3",), horizon=2000, log_every=100)
    kw = dict(seeds=3, key=jax.random.key(1), steps=cfg.steps(), progress=False, dims={"h_hat": ("c",)})
    a = sweep(make_run(cfg), None, **kw)
    b = sweep(make_run(cfg), None, **kw)
    np.testing.assert_array_equal(a.pseudo_regret.values, b.pseudo_regret.values)


@pytest.mark.parametrize("make, msg", [
    (lambda: tb.check_instance(tb.synthetic()._replace(A=np.diag([1.2, 0, 0]))), "rho"),
    (lambda: tb.check_instance(tb.synthetic()._replace(B=np.zeros((2, 3)))), "B"),
    (lambda: tb.check_instance(tb.synthetic()._replace(omega=np.zeros(2))), "omega"),
    (lambda: tb.check_instance(tb.synthetic()._replace(sigma_x=-1.0)), "noise"),
    (lambda: tb.check_instance(tb.synthetic()._replace(arms=np.zeros((0, 3)))), "action set"),
    (lambda: BanditConfig(horizon=0), "horizon"),
    (lambda: BanditConfig(algorithms=("ar3",)), "valid: clairvoyant, dynlinucblog"),
    (lambda: BanditConfig(algorithms=("dynlinucb", "exp3")), "code paths"),
    (lambda: BanditConfig(algorithms=("exp3", "exp3")), "repeat"),
    (lambda: BanditConfig(noise_variance="m"), "noise_variance"),
    (lambda: BanditConfig(instance="synthetic:sigma=0", algorithms=("ar2",)), "sigma"),
    (lambda: BanditConfig(instance="synthetic:sigma=-1"), "sigma"),
    (lambda: BanditConfig(rho_bar=float("nan")), "rho_bar"),
    (lambda: BanditConfig(instance="mars"), "instance"),
    (lambda: tb.epoch_lengths(1.0, 3), "rho_bar"),
    (lambda: BanditConfig(instance=("synthetic", "synthetic:ball")), "share arm and state shapes"),
    (lambda: BanditConfig(instance=("synthetic", "synthetic")), "distinct names"),
    (lambda: BanditConfig(instance=()), "non-empty"),
    (lambda: BanditConfig(noise_variance=("authors", "m")), "noise_variance"),
])
def test_bad_input(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_one_compiled_call_runs_every_linear_variant_without_recompiling():
    """The five LinearAgent-style algorithms share one code path: one sweep over "alg" runs them all; running
    it again with other seeds reuses the executable (no recompilation), and each row equals its solo run."""
    algs = ("dynlinucblog", "linucblog", "dlinucblog", "dynlinucb", "linucb")
    cfg = BanditConfig(instance="synthetic", algorithms=algs, horizon=500, log_every=100)
    kw = dict(seeds=2, key=jax.random.key(3), steps=cfg.steps(), progress=False, dims={"h_hat": ("c",)})
    with jax.enable_x64(True):
        run = make_run(cfg)
        both = sweep(run, {"alg": list(range(5))}, **kw)
        n = batched(run)._cache_size()
        sweep(run, {"alg": list(range(5))}, **(kw | {"key": jax.random.key(4)}))
        assert batched(run)._cache_size() == n
        solo = sweep(make_run(BanditConfig(instance="synthetic", algorithms=("dlinucblog",), horizon=500,
                                           log_every=100)), None, **kw)
    np.testing.assert_array_equal(both.pseudo_regret.isel(alg=2).values, solo.pseudo_regret.values)


@pytest.mark.parametrize("algs", [("dynlinucblog", "linucb"), ("dlinucb",)])
def test_stacked_instances_and_noise_variances_equal_separate_runs(algs):
    """Instances and noise variances stacked as arrays (one compiled call, the figure's layout) give each
    (instance, noise variance, algorithm) exactly the actions and pseudo-regret of its own config."""
    insts, nvs = ("synthetic", "real"), ("authors", "exact")
    kw = dict(seeds=2, key=jax.random.key(5), progress=False, dims={"h_hat": ("c",)})
    with jax.enable_x64(True):
        cfg = BanditConfig(instance=insts, algorithms=algs, horizon=1000, log_every=100, noise_variance=nvs)
        ax = {"inst": [0, 1], "nv": [0, 1], "alg": list(range(len(algs)))}
        st = sweep(make_run(cfg), ax, steps=cfg.steps(), **kw)
        for i, v in ((0, 1), (1, 0)):  # two of the four (instance, noise variance) cells: both indices vary
            one = BanditConfig(instance=insts[i], algorithms=algs, horizon=1000, log_every=100,
                               noise_variance=nvs[v])
            ds = sweep(make_run(one), {"alg": list(range(len(algs)))}, steps=one.steps(), **kw)
            sel = dict(inst=i, nv=v)
            np.testing.assert_array_equal(st.arm_played.isel(sel).values, ds.arm_played.values)
            np.testing.assert_array_equal(st.pseudo_regret.isel(sel).values, ds.pseudo_regret.values)


# ---------------------------------------------------------------------------------------------------------------
# A researcher's own systems and the figure's knobs
# ---------------------------------------------------------------------------------------------------------------
def _save(path, inst):
    np.savez(path, **{f: np.asarray(getattr(inst, f)) for f in tb.Instance._fields})


def test_a_users_system_from_arrays_runs_like_the_named_one_and_is_keyed_on_content(tmp_path):
    """`BanditConfig(instance=Instance(...))` with NumPy arrays (a TypeError before: unhashable) runs the same bits
    as the named instance with the same matrices, and the sweep id (the cache key) follows the content."""
    from sims.bandits import BanditConfig, sim
    from sims.sweep import plan, sweep

    mine = tb.synthetic()
    a = BanditConfig(instance=mine, algorithms=("dynlinucblog",), horizon=300, log_every=30)
    b = BanditConfig(instance="synthetic", algorithms=("dynlinucblog",), horizon=300, log_every=30)
    ka = sweep(sim(a), None, seeds=2, key=jax.random.key(0), progress=False)
    kb = sweep(sim(b), None, seeds=2, key=jax.random.key(0), progress=False)
    np.testing.assert_array_equal(ka.pseudo_regret.values, kb.pseudo_regret.values)
    c = BanditConfig(instance=mine._replace(theta=np.array([0.0, 0.6, 0.1])), algorithms=("dynlinucblog",),
                     horizon=300, log_every=30)
    ids = {plan(sim(x).run, None, seeds=2, key=jax.random.key(0), cfg=x).sweep_id for x in (a, c)}
    assert len(ids) == 2
    # the same system from a file: the same config value; a file's name carries its content hash
    _save(tmp_path / "s.npz", mine)
    from sims.bandits import load_instance

    assert load_instance(tmp_path / "s.npz") == a.instance
    assert "#sha256=" in BanditConfig(instance=f"file:{tmp_path / 's.npz'}", horizon=300, log_every=30).instance


@pytest.mark.parametrize("edit, needle", [
    (lambda I: I._replace(A=np.diag([1.1, 0.0, 0.1])), "spectral radius rho(A) = 1.1 must be < 1"),
    (lambda I: I._replace(theta=np.array([0.0, np.inf, 0.1])), "instance field theta must be finite"),
    (lambda I: I._replace(B=np.ones((2, 3))), "B must have shape (3, d)"),
    (lambda I: I._replace(arms=np.ones((4, 2))), "action set must be a non-empty (K x 3) array"),
])
def test_a_bad_user_system_is_refused_naming_the_field(edit, needle, tmp_path):
    from sims.bandits import BanditConfig, load_instance

    bad = edit(tb.synthetic())
    with pytest.raises(ValueError) as e:
        BanditConfig(instance=bad, horizon=300, log_every=30)
    assert needle in str(e.value)
    _save(tmp_path / "bad.npz", bad)
    with pytest.raises(ValueError) as e:
        load_instance(tmp_path / "bad.npz")
    assert needle in str(e.value) and "bad.npz" in str(e.value)


def test_a_json_system_and_its_key_errors(tmp_path):
    from sims.bandits import load_instance

    I = tb.synthetic()
    d = {f: np.asarray(getattr(I, f)).tolist() for f in tb.Instance._fields}
    (tmp_path / "s.json").write_text(json.dumps(d))
    assert load_instance(tmp_path / "s.json").theta == tuple(I.theta.tolist())
    (tmp_path / "m.json").write_text(json.dumps({k: v for k, v in d.items() if k != "omega"} | {"Q": 1}))
    with pytest.raises(ValueError, match=r"missing \['omega'\]; unknown keys \['Q'\]"):
        load_instance(tmp_path / "m.json")
    with pytest.raises(ValueError, match="expected a .npz or .json file"):
        (tmp_path / "s.txt").write_text("x")
        load_instance(tmp_path / "s.txt")


def test_bandit_regret_instances_and_algorithms_are_knobs(tmp_path):
    """`--set instances=...` (the authors' sigma variants, a file) and `--set algorithms=...` run what they say; the
    real-data claims are n/a without the real instance (exit 0); a bad instance is refused before compute."""
    from figures.__main__ import main as cli_main

    _save(tmp_path / "mine.npz", tb.synthetic(0.1))
    out = tmp_path / "out"
    rc = cli_main(["run", "bandit_regret", "--tiny", "--set", f"instances=synthetic:sigma=0.1,file:{tmp_path}/mine.npz",
                   "--set", "algorithms=dynlinucblog,dynlinucb,exp3", "--out", str(out), "--no-cache"])
    assert rc == 0
    (cj,) = list(out.glob("bandit_regret.*.claims.json"))
    rec = json.loads(cj.read_text())
    status = {c["id"]: c["status"] for c in rec["claims"]}
    assert status["linucb_locks_on_myopic_arm"] == "n/a" and status["no_divergence"] == "pass"
    import xarray as xr

    with xr.open_dataset(cj.with_name(cj.name.replace(".claims.json", ".nc"))) as ds:
        assert list(ds.instance.values) == ["synthetic:sigma=0.1", f"file:{tmp_path}/mine.npz"]
        assert list(ds.algorithm.values) == ["clairvoyant", "exp3", "dynlinucblog", "dynlinucb"]
        # the file holds synthetic(0.1): the same system as the named one, so the same bits (common random numbers)
        a, b = (ds.pseudo_regret.sel(noise_variance="authors", instance=i).values for i in ds.instance.values)
        np.testing.assert_array_equal(a, b)
    _save(tmp_path / "big.npz", tb.synthetic()._replace(A=np.eye(4) * 0.1, B=np.eye(4, 3), omega=np.ones(4)))
    for sets, needle in ((["instances=synthetic,file:/nope.npz"], "does not exist"),
                         ([f"instances=synthetic,file:{tmp_path}/big.npz"], "must share the state"),
                         (["algorithms=dynlinucblog,ucb"], "algorithms=")):
        r = run_py(["-m", "figures", "run", "bandit_regret", "--tiny", *[a for s in sets for a in ("--set", s)],
                    "--out", str(tmp_path / "never")])
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr[-800:]
        assert not (tmp_path / "never").exists()
