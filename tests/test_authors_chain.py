"""The Bigram-Backcopy authors' chain (Guo et al. 2024; #36 item 4): tiny Shakespeare's character bigram, rebuilt as
integer counts from their ``BBM/data/bos1_d0/meta.pickle`` and committed as ``sims/data/authors_bigram.json``; the
default chain of :class:`sims.bigram_backcopy.BBConfig`.

Predictions and statistics (independent references typed here, nothing imported from sims/ or theory/ for them):
- Tiny Shakespeare has N = 1,115,394 characters: the counts sum to N - 1 bigrams, each character's row total equals
  its unigram count (N x marginal, an integer) except '\\n', the text's last character (one less). Exact integers.
- Its three most frequent characters are ' ', 'e', 't' with frequencies 169892 / N, 94611 / N, 67009 / N
  (``collections.Counter`` of tiny Shakespeare, the char-rnn ``input.txt``): exact to float rounding (1e-12).
- The entropy rate of the chain is 2.4526 nats and differs from the plays' chain (2.4953 nats) by a
  stationary-weighted row total variation of 0.0525 (the numbers #36 states from the authors' pickle; 1e-4).
- The authors' rules (their ``bbm.gen_seq``): x1 from the marginal with the triggers removed; the triggers are the
  marginal's top k. A sampled first token follows that law (chi-square over 20000 draws, p > 1e-3).
- The builder refuses statistics that are not counts; a missing or corrupt file names the rebuild command.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from scipy.stats import chi2 as chi2_dist

from sims import bigram_data as bd
from sims.bigram_backcopy import BBConfig, sample_batch, source_of
from sims.data import make_authors_bigram as mk

N = 1_115_394


def _np_stationary(P):
    w, v = np.linalg.eig(P.T)
    p = np.real(v[:, np.argmin(np.abs(w - 1))])
    return p / p.sum()


def _np_entropy_rate(P):
    p = _np_stationary(P)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(-np.sum(p[:, None] * np.where(P > 0, P * np.log(P), 0.0)))


def test_the_counts_are_tiny_shakespeares():
    rec = json.loads(bd.AUTHORS_FILE.read_text())
    C, marg = np.asarray(rec["counts"]), np.asarray(rec["marginal"])
    assert C.dtype.kind == "i" and C.sum() == N - 1
    n = np.round(marg * N).astype(int)
    assert np.abs(marg * N - n).max() < 1e-6 and n.sum() == N
    rows = C.sum(1)
    nl = rec["vocab"].index("\n")
    assert rows[nl] == n[nl] - 1 and np.array_equal(np.delete(rows, nl), np.delete(n, nl))
    vocab = rec["vocab"]
    top = np.argsort(-marg)[:3]
    assert [vocab[i] for i in top] == [" ", "e", "t"]
    np.testing.assert_allclose(marg[top], np.array([169892, 94611, 67009]) / N, rtol=0, atol=1e-12)
    assert rec["source"]["sha256"] == "f8176ea05aeb83275093efcab4c412e7681c8a814dbe7baaaad84828710a41c3"
    assert rec["source"]["path"] == "BBM/data/bos1_d0/meta.pickle" and "rebuilt" not in rec["command"]


def test_entropy_rate_and_distance_to_the_plays_chain():
    Pa, vocab, _ = bd.authors_bigram()
    Ps, vocab2 = bd.shakespeare_bigram()
    assert vocab == vocab2
    assert abs(_np_entropy_rate(Pa) - 2.4526) < 1e-4 and abs(_np_entropy_rate(Ps) - 2.4953) < 1e-4
    tv = float(np.sum(_np_stationary(Pa) * 0.5 * np.abs(Pa - Ps).sum(1)))
    assert abs(tv - 0.0525) < 1e-4


def test_the_default_task_follows_the_authors_rules():
    cfg = BBConfig(seq_len=8, batch=20000)
    assert cfg.data == "authors"
    P, mask, first = source_of(cfg)
    _, vocab, marg = bd.authors_bigram()
    assert [vocab[i] for i in np.flatnonzero(mask)] == [" ", "e", "t"]
    ref = np.where(mask, 0.0, marg)
    ref /= ref.sum()
    np.testing.assert_allclose(first, ref, atol=1e-15)
    x = np.asarray(sample_batch(cfg, jax.random.key(0), 20000)[0])[:, 1]  # x1 (x0 is BOS)
    obs = np.bincount(x, minlength=65)
    keep = ref * 20000 >= 5
    exp = ref[keep] * 20000
    chi2 = float(np.sum((obs[keep] - exp) ** 2 / exp))
    assert obs[~keep].sum() <= 20000 * ref[~keep].sum() + 5 * np.sqrt(20000 * ref[~keep].sum() + 1)
    assert obs[mask].sum() == 0 and chi2_dist.sf(chi2, keep.sum() - 1) > 1e-3


def test_the_builder_refuses_statistics_that_are_not_counts():
    rec = json.loads(bd.AUTHORS_FILE.read_text())
    C = np.asarray(rec["counts"], float)
    itos = {i: c for i, c in enumerate(rec["vocab"])}
    meta = {"itos": itos, "marginal": rec["marginal"], "cond": (C / C.sum(1, keepdims=True)).tolist()}
    C2, m2 = mk.counts_from_meta(meta)
    assert np.array_equal(C2, np.asarray(rec["counts"])) and np.array_equal(m2, rec["marginal"])
    bad = dict(meta, marginal=(np.asarray(rec["marginal"]) * 0.999 + 0.001 / 65).tolist())
    with pytest.raises(ValueError, match="marginal"):
        mk.counts_from_meta(bad)
    with pytest.raises(ValueError, match="vocabulary"):
        mk.counts_from_meta(dict(meta, itos={**itos, 0: "#"}))


def test_missing_or_corrupt_file_names_the_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.*make_authors_bigram"):
        bd.authors_bigram(tmp_path / "nope.json")
    rec = json.loads(bd.AUTHORS_FILE.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(rec, marginal=rec["marginal"][:10])))
    with pytest.raises(ValueError, match=r"corrupt \(marginal\).*make_authors_bigram"):
        bd.authors_bigram(bad)


def test_several_bos_tokens_and_delimiters_are_the_authors_task():
    """bos_num = 3: every sequence opens with the ids V, V+1, V+2 (their <s_0>, <s_1>, <s_2>), seq_len + 1 tokens in
    all. delimiter_p = 0.2: after a non-trigger character the delimiter D = V + bos_num follows with probability 0.2
    (binomial, 5 SE), a trigger is still followed by the token before it (always, the delimiter included), and after
    D the next token follows the marginal (it is never D or a BOS)."""
    cfg = BBConfig(seq_len=32, bos_num=3, delimiter_p=0.2)
    assert cfg.delimiter == 68 and cfg.n_tokens == 69 and cfg.model().vocab == 69
    x, y, trig, non = (np.asarray(a) for a in sample_batch(cfg, jax.random.key(1), 4000))
    assert x.shape == (4000, 32)
    assert (x[:, :3] == [65, 66, 67]).all() and (x[:, 3:] < 65).any()
    assert not (x[:, 3:] >= 65).all() and not ((x[:, 3:] >= 65) & (x[:, 3:] <= 67)).any()
    assert not trig[:, :3].any() and not non[:, :3].any()
    seq = np.concatenate([x, y[:, -1:]], 1)
    _, mask, _ = source_of(cfg)
    t = np.zeros_like(x, bool)
    t[:, 3:] = (x[:, 3:] < 65) & mask[np.minimum(x[:, 3:], 64)]
    assert np.array_equal(t, trig)
    assert np.array_equal(y[:, 1:][trig[:, 1:]], seq[:, :-2][trig[:, 1:]])  # the back-copy
    from_char = (x < 65) & ~trig & (np.arange(32) >= 3)
    n, k = from_char.sum(), (y[from_char] == 68).sum()
    assert abs(k / n - 0.2) < 5 * np.sqrt(0.2 * 0.8 / n)
    after_d = (x == 68)
    assert after_d.sum() > 1000 and (y[after_d] < 65).all()
    with pytest.raises(ValueError, match="bos_num"):
        BBConfig(seq_len=8, bos_num=7)
    with pytest.raises(ValueError, match="delimiter_p"):
        BBConfig(delimiter_p=1.0)


def test_one_bos_and_no_delimiter_is_the_default_task_unchanged():
    """bos_num = 1, delimiter_p = 0 draw the same sequences as the chain's own sampler with BOS = V (bit for bit)."""
    from sims.bigram_data import backcopy_sequences
    cfg = BBConfig(seq_len=16)
    P, mask, first = (jax.numpy.asarray(a) for a in source_of(cfg))
    ref = np.asarray(backcopy_sequences(jax.random.key(3), P, mask, first, 64, 17, 65))
    x, y, _, _ = sample_batch(cfg, jax.random.key(3), 64)
    assert np.array_equal(np.asarray(x), ref[:, :-1]) and np.array_equal(np.asarray(y), ref[:, 1:])


def test_a_run_with_several_bos_tokens_and_delimiters_records_the_task_it_trains():
    """A short run with bos_num = 2 and delimiter_p = 0.1 (Zipf chain, V = 12): the Bayes loss it records equals the
    NumPy mean of -log Q[x, y] over the evaluation batch's non-trigger, non-BOS positions (Q: the chain extended by the
    delimiter, built here from P and the rule), to float32 rounding; the BOS attention (summed over both BOS keys)
    lies in [0, 1]; nothing diverges."""
    from sims.bigram_backcopy import make_run
    cfg = BBConfig(data="zipf", V=12, seq_len=12, batch=8, eval_batch=16, d_model=16, n_steps=20, log_every=10,
                   bos_num=2, delimiter_p=0.1)
    final, traj = jax.jit(make_run(cfg))(jax.random.key(0), {"lr": jax.numpy.float32(1e-3)})
    P, mask, first = source_of(cfg)
    D, V = 14, 12
    Q = np.zeros((D + 1, D + 1))
    Q[:V, :V], Q[:V, D] = 0.9 * P, 0.1
    w, vv = np.linalg.eig(P.T)
    pi = np.real(vv[:, np.argmin(np.abs(w - 1))])
    Q[D, :V] = pi / pi.sum()
    x, y, trig, non = (np.asarray(a) for a in sample_batch(cfg, jax.random.split(jax.random.key(0), 3)[1], 16))
    ref = float(np.mean(-np.log(Q[x[non], y[non]])))
    assert abs(float(final["oracle_bigram"]) - ref) < 1e-5 * max(1.0, ref)
    b = np.asarray(traj["bos_attn_nontrigger"])
    assert np.all((b >= 0) & (b <= 1 + 1e-6)) and int(final["diverged_step"]) < 0
