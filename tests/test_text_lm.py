"""The Shakespeare text and the character LM trained on it (sims.text_data, sims.char_lm).

Predictions and statistics:
- The text's bigram counts, counted here with NumPy over the committed text (pairs inside a play, none across
  a recorded break), EQUAL the shipped counts of shakespeare_bigram.json (integers: exact).
- The split and genres are the recipe's: 37 plays, 6 held out (two per genre), 15 / 10 / 12 comedies /
  histories / tragedies.
- The window sampler: each window is a contiguous slice of one play (exact), the same key gives the same windows
  (exact), and the start of a window is uniform over valid starts: the fraction of windows in each play matches
  its share of valid starts (chi-square over 37 plays, 20k windows, p > 1e-3).
- The k-gram entropy on a hand-made text (exact numbers).
- A small model learns English characters: after 800 AdamW steps (d 64, 2 layers, L 64, batch 16) its held-out
  loss is below the bigram cross-entropy of the held-out plays (a bigram counted on the training plays, 2.508
  nats) by at least 0.25 nats (a quarter of a nat: well beyond seed noise, ~0.01 at this size; the quick preset of
  `text_wsd` reaches ~0.55 below it). Measured 2.19 at 600 steps; an untrained model sits near ln 65 = 4.17.
- A model fed only junk (the training plays' bigram chain) cannot beat the bigram on the held-out plays.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from scipy import stats

from sims import bigram_data as bd
from sims import text_data as td
from sims.char_lm import CharLMConfig, evaluation_set, junk_chain, sim
from sims.sweep import sweep


def _count(tokens, starts, breaks):
    t = tokens.astype(np.int64)
    ok = np.ones(t.size, bool)
    ok[starts[:-1]] = False  # no pair across a play's start
    ok[breaks] = False  # nor across a dropped character
    i = np.flatnonzero(ok)
    C = np.zeros((65, 65), np.int64)
    np.add.at(C, (t[i - 1], t[i]), 1)
    return C


def test_the_texts_bigram_counts_are_the_shipped_counts():
    c = td.shakespeare_plays()
    shipped = np.asarray(json.loads(bd.SHAKESPEARE_FILE.read_text())["counts"])
    C = _count(c.text.tokens, c.text.starts, c.breaks)
    assert C.sum() == shipped.sum() > 4_800_000
    np.testing.assert_array_equal(C, shipped)
    # the check can fail: ignoring the breaks adds pairs across dropped characters
    assert (_count(c.text.tokens, c.text.starts, np.array([], np.int64)) != shipped).any()


def test_split_genres_and_source():
    c = td.shakespeare_plays()
    assert len(c.text.plays) == 37 and sum(c.held_out) == 6
    assert {g: c.genres.count(g) for g in td.GENRES} == {"comedy": 15, "history": 10, "tragedy": 12}
    held = [(p, g) for p, g, h in zip(c.text.plays, c.genres, c.held_out) if h]
    assert sorted(g for _, g in held) == ["comedy", "comedy", "history", "history", "tragedy", "tragedy"]
    assert dict(held)["macbeth"] == "tragedy" and dict(held)["henry_v"] == "history"
    assert c.meta["source"]["sha256"] == "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
    assert c.meta["command"] == "python -m sims.data.make_shakespeare_bigram" and "First Folio" in c.meta["recipe"]
    tr, ho = c.select("train"), c.select("held_out")
    assert tr.tokens.size + ho.tokens.size == c.text.tokens.size and not set(tr.plays) & set(ho.plays)
    assert c.select("held_out", "comedy").plays == ("as_you_like_it", "twelfth_night")
    assert ho.decode(ho.tokens[:9]) == "AS YOU LI"


def test_missing_or_corrupt_text_names_the_file_and_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.*python -m sims.data.make_shakespeare_bigram"):
        td.shakespeare_plays(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match=r"bad.npz is corrupt.*make_shakespeare_bigram"):
        td.shakespeare_plays(bad)
    c = td.shakespeare_plays()
    t = c.text
    np.savez(tmp_path / "wrong.npz", tokens=t.tokens[:100], starts=t.starts, breaks=c.breaks,
             plays=np.array(t.plays), genres=np.array(c.genres), held_out=np.array(c.held_out),
             meta=np.array(json.dumps(c.meta)))
    with pytest.raises(ValueError, match=r"wrong.npz is corrupt \(tokens, play bounds"):
        td.shakespeare_plays(tmp_path / "wrong.npz")


def test_windows_lie_inside_one_play_are_deterministic_and_uniform():
    text = td.shakespeare_plays().select("train")
    L, n = 50, 20000
    key = jax.random.key(3)
    w = np.asarray(jax.jit(lambda k: td.sample_windows(k, text, L, n))(key))
    np.testing.assert_array_equal(w, np.asarray(td.sample_windows(key, text, L, n)))  # same key, same windows
    assert w.shape == (n, L + 1) and w.dtype == np.int32
    start = np.asarray(td.window_starts(key, text, L, n))
    np.testing.assert_array_equal(w, text.tokens[start[:, None] + np.arange(L + 1)])  # contiguous slices
    play = np.searchsorted(text.starts, start, side="right") - 1
    assert (start + L + 1 <= text.starts[play + 1]).all()  # never across a play's end
    # uniform over valid starts: windows per play against each play's share of valid starts
    obs = np.bincount(play, minlength=len(text.plays))
    exp = n * (text.lengths - L) / (text.lengths - L).sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    # and within a play: the offset from the play's start is uniform (Kolmogorov-Smirnov on the largest play)
    big = int(np.argmax(obs))
    off = (start[play == big] - text.starts[big]) / (text.lengths[big] - L)
    assert stats.kstest(off, "uniform").pvalue > 1e-3
    # the test can fail: a sampler that ignored play lengths (plays equally likely) is rejected
    assert stats.chisquare(np.full(len(obs), n / len(obs)), exp).pvalue < 1e-6


def test_kgram_entropy_on_a_hand_made_text():
    """Train text 'abab...ac' style: after 'a' the next is 'b' 3 times and 'c' once (k = 1): H = entropy of
    (3/4, 1/4); after 'b' always 'a': H = 0."""
    v = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    enc = lambda s: np.array([v.index(ch) for ch in s], np.uint8)  # noqa: E731
    train = td.Text(enc("abababac"), np.array([0, 8]), ("t",))
    target = td.Text(enc("abx"), np.array([0, 3]), ("u",))
    H = td.kgram_entropy(train, target, 1, min_count=1)
    h_a = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    np.testing.assert_allclose(H[:2], [np.nan, h_a], equal_nan=True)
    assert H[2] == 0.0  # after 'b' always 'a'
    assert np.isnan(td.kgram_entropy(train, target, 1, min_count=5)[1])  # 'a' seen 4 times < 5


def test_evaluation_classes_split_the_positions_by_uncertainty():
    ev = evaluation_set(64, 32, 4, 0.3, 1.5)
    assert ev["x"].shape == (96, 64) and (ev["x"][:, 1:] == ev["y"][:, :-1]).all()
    frac = {c: float((ev["cls"] == i).mean()) for i, c in enumerate(("det", "mid", "unc"))}
    assert 0.05 < frac["det"] < 0.25 and 0.25 < frac["unc"] < 0.5, frac
    assert (ev["cls"][:, :3] == -1).all()  # context before the window
    h = ev["H"]
    assert np.nanmax(h[ev["cls"] == 0]) < 0.3 and np.nanmin(h[ev["cls"] == 2]) > 1.5


@pytest.mark.parametrize("kw, needle", [
    ({"seq_len": 103027}, "seq_len must be < 103027"),
    ({"train_genre": "romance"}, "train_genre"),
    ({"det_max": 2.0, "unc_min": 1.0}, "det_max"),
    ({"n_heads": 3}, "multiple of n_heads"),
    ({"b2": 1.0}, "b2"),
    ({"n_steps": 100, "log_every": 30}, "log_every"),
    ({"schedule": ("nope",)}, "unknown schedule"),
])
def test_bad_config_is_refused(kw, needle):
    with pytest.raises(ValueError, match=needle):
        CharLMConfig(**kw)


def test_a_small_model_learns_english_characters():
    c = td.shakespeare_plays()
    h_bigram = td.bigram_cross_entropy(c.select("train"), c.select("held_out"))
    # context 32 (half the quick preset's): the same loss curve per step at half the cost (measured: 2.12 vs 2.13
    # nats at step 800 over 2 seeds; the bigram's 2.51); the margin is kept
    cfg = CharLMConfig(d_model=64, n_layers=2, seq_len=32, batch=16, n_steps=800, log_every=400, eval_windows=32)
    ds = sweep(sim(cfg), {"lr": [4e-3], "warmup_steps": [30.0]}, seeds=1, key=jax.random.key(0), progress=False)
    first, last = float(ds.loss.isel(step=0).item()), float(ds.loss.isel(step=-1).item())
    print(f"held-out loss {first:.3f} -> {last:.3f}; bigram cross-entropy {h_bigram:.3f}")
    assert not ds.diverged.any()
    assert abs(first - np.log(65)) < 0.5  # untrained: ~ uniform over the 65 characters
    assert 2.45 < h_bigram < 2.6
    assert last < h_bigram - 0.25, f"held-out loss {last:.3f} not 0.25 nats below the bigram's {h_bigram:.3f}"


def test_junk_is_the_training_plays_bigram_and_a_model_fed_only_junk_cannot_beat_the_bigram():
    """Junk = text from the training plays' bigram chain: a model trained on 100% junk learns at most the bigram, so
    its held-out loss stays above the bigram cross-entropy (the best a bigram model does on the held-out plays;
    margin 0.02 nats for the smoothing of the reference), while the same model on clean text goes below it
    (test_a_small_model_learns_english_characters). The chain's rows are the training plays' counts, normalised."""
    P, law = junk_chain()
    text = td.shakespeare_plays().select("train")
    C = _count(text.tokens, text.starts, np.array([], np.int64))
    rows = C.sum(1) > 0
    np.testing.assert_allclose(P[rows], C[rows] / C[rows].sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(law @ P, law, atol=1e-12)
    c = td.shakespeare_plays()
    h_bigram = td.bigram_cross_entropy(c.select("train"), c.select("held_out"))
    # context 32: the junk model has converged onto its plateau by step 500 (2.536 nats at 500 and 600; context 64:
    # 2.551, 2.549), so the test asks whether it can go below the bigram, not whether it trained long enough
    cfg = CharLMConfig(d_model=64, n_layers=2, seq_len=32, batch=16, n_steps=600, log_every=300, eval_windows=32,
                       junk_start=0, junk_steps=600)
    ds = sweep(sim(cfg), {"lr": [4e-3], "warmup_steps": [30.0], "junk_ratio": [1.0]}, seeds=1,
               key=jax.random.key(0), progress=False)
    last = float(ds.loss.isel(step=-1).item())
    print(f"held-out loss after 600 steps of junk: {last:.3f}; bigram cross-entropy {h_bigram:.3f}")
    assert last > h_bigram - 0.02


def test_hedges_g_against_a_hand_computed_value():
    """a = (1, 2, 3), b = (4, 5, 6): pooled sd 1, difference 3, J = 1 - 3 / (4 * 6 - 9) = 0.8: g = 2.4."""
    from figures._claims import hedges_g

    assert abs(hedges_g([1, 2, 3], [4, 5, 6]) - 2.4) < 1e-12
    assert abs(hedges_g([4, 5, 6], [1, 2, 3]) + 2.4) < 1e-12
    with pytest.raises(ValueError, match="2 values"):
        hedges_g([1.0], [2.0, 3.0])


@pytest.mark.parametrize("kw, needle", [
    ({"junk_start": 900, "junk_steps": 200}, "must end by n_steps"),
    ({"junk_steps": -1}, "junk_steps"),
])
def test_bad_junk_phase_is_refused(kw, needle):
    with pytest.raises(ValueError, match=needle):
        CharLMConfig(n_steps=1000, log_every=100, **kw)


@pytest.mark.parametrize("kw, needle", [
    ({"switch_step": 1000}, "switch_step must be < n_steps"),
    ({"switch_step": 500, "train_genre": "history", "second_genre": "history"}, "second_genre must differ"),
    ({"second_genre": "all"}, "second_genre"),
])
def test_bad_genre_switch_is_refused(kw, needle):
    with pytest.raises(ValueError, match=needle):
        CharLMConfig(n_steps=1000, log_every=100, **kw)


@pytest.mark.parametrize("name, sets, needle", [
    ("text_junk", ["ratios=0,1.5"], "ratios"),
    ("text_junk", ["ratios=0,0.5,0.5"], "ratios"),
    ("text_wsd", ["sim.seq_len=200000"], "seq_len"),
    ("text_rewarm", ["sim.second_genre=romance"], "second_genre"),
    ("text_budgets", ["budgets=300,300"], "budgets"),
    ("text_wsd", ["lrs=0.001,0.002"], "lrs"),
])
def test_the_text_figures_refuse_bad_input_with_exit_2_and_write_nothing(tmp_path, name, sets, needle):
    from tests.conftest import run_py

    args = ["-m", "figures", "run", name, "--quick", "--out", str(tmp_path / "out")]
    for s in sets:
        args += ["--set", s]
    r = run_py(args, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_gla_mixer_trains_on_text_too():
    """The char LM with gated linear attention as its token mixer: finite, and its held-out loss falls from ~ln 65 by
    more than 1 nat in 300 steps (the unigram alone is worth ~1.1 nats below ln 65 = 4.17)."""
    cfg = CharLMConfig(attention="gla", d_model=32, n_layers=1, n_heads=2, seq_len=32, batch=16, n_steps=300,
                       log_every=150, eval_windows=16)
    ds = sweep(sim(cfg), {"lr": [4e-3], "warmup_steps": [20.0]}, seeds=1, key=jax.random.key(0), progress=False)
    first, last = float(ds.loss.isel(step=0).item()), float(ds.loss.isel(step=-1).item())
    assert not ds.diverged.any() and np.isfinite(last)
    assert first - last > 1.0, (first, last)


def test_branching_at_a_shared_prefix_is_the_plain_sweep():
    """``char_lm.branch``: arms that differ only from step ``at`` on (junk ratios from junk_start), their prefix trained
    once per seed, give the plain zipped sweep's records and final losses to float32 rounding (the arms run in a batch
    of another shape: bound 1e-5 nats after 60 AdamW steps), with the same dims; ``at`` off the record grid refused."""
    from sims.char_lm import branch, sim
    from sims.sweep import sweep
    cfg = CharLMConfig(d_model=16, n_layers=1, n_heads=1, seq_len=16, batch=4, n_steps=60, log_every=10,
                       junk_start=20, junk_steps=20, eval_windows=16)
    key, fixed, axes = jax.random.key(0), {"lr": 3e-3, "warmup_steps": 5.0}, {"junk_ratio": [0.0, 0.5, 1.0]}
    a = sweep(sim(cfg), axes, mode="zip", fixed=fixed, seeds=2, key=key, progress=False)
    b = branch(cfg, axes, 20, seeds=2, key=key, fixed=fixed)
    assert a.loss.dims == b.loss.dims and a.loss.shape == b.loss.shape == (3, 2, 7)
    np.testing.assert_allclose(b.loss.values, a.loss.values, atol=1e-5)
    np.testing.assert_allclose(b.loss_by_position.values, a.loss_by_position.values, atol=1e-5)
    np.testing.assert_array_equal(b.junk_ratio.values, [0.0, 0.5, 1.0])
    assert not b.diverged.any() and b.attrs["branch_at"] == 20
    with pytest.raises(ValueError, match="at=25"):
        branch(cfg, axes, 25, seeds=2, key=key, fixed=fixed)


def test_branching_with_a_prefix_per_lr_is_the_plain_sweep():
    """``shared=("lr",)``: constant and WSD at two peak lrs (WSD decays over the second half) branch at the decay's
    start, one prefix per lr; records equal the plain sweep's to float32 rounding (1e-5 nats), including the arms'
    different prefixes (lr 1e-3 vs 3e-3 differ by far more than that)."""
    from sims import schedules as S
    from sims.char_lm import branch, sim
    from sims.sweep import sweep
    cfg = CharLMConfig(d_model=16, n_layers=1, n_heads=1, seq_len=16, batch=4, n_steps=60, log_every=10,
                       eval_windows=16)
    lin = float(S.DECAY_SHAPES.index("linear"))
    axes = {"lr": [1e-3, 1e-3, 3e-3, 3e-3], "decay_fraction": [0.0, 0.5, 0.0, 0.5], "shape_id": [lin] * 4,
            "warmup_steps": [5.0] * 4}
    key = jax.random.key(1)
    a = sweep(sim(cfg), axes, mode="zip", seeds=2, key=key, progress=False)
    b = branch(cfg, axes, 30, seeds=2, key=key, shared=("lr",))
    np.testing.assert_allclose(b.loss.values, a.loss.values, atol=1e-5)
    np.testing.assert_allclose(b.lr_t.values, a.lr_t.values, rtol=1e-6)
    assert np.abs(a.loss.values[0, :, 3] - a.loss.values[2, :, 3]).min() > 1e-3  # the two prefixes differ
    with pytest.raises(ValueError, match="shared"):
        branch(cfg, axes, 30, seeds=2, key=key, shared=("momentum",))
