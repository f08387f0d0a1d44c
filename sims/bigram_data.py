"""Bigram (Markov) data sampled on device with ``jax.random``; shared by every bigram-data topic.

* :func:`shakespeare_bigram` -- the character bigram of Shakespeare's plays over tiny Shakespeare's 65
  characters, from the committed ``sims/data/shakespeare_bigram.json``.
* :func:`authors_bigram` -- the chain of the Bigram-Backcopy authors' runs (Guo et al. 2024: tiny Shakespeare's
  bigram counts, rebuilt from their ``BBM/data/bos1_d0/meta.pickle``), from ``sims/data/authors_bigram.json``.
* :func:`make_transition` -- seeded generators of transition matrices (Dirichlet rows, Zipf-like
  rows, or the river-valley *mixed-uncertainty* rows of Wen et al. 2024, Sec. 4), or
  :func:`from_counts`.
* :func:`sample_pairs` -- i.i.d. (x, y) with x ~ pi, y ~ P[x] (fresh every step).
* :func:`sample_sequences` -- Markov sequences ``[BOS, x1, ...]``.

Exact oracle quantities (stationary law, conditional entropy) live in ``theory/bigram.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from theory.bigram import check_transition, stationary

__all__ = ["shakespeare_bigram", "SHAKESPEARE_FILE", "authors_bigram", "AUTHORS_FILE", "backcopy_source",
           "make_transition", "from_counts", "sample_pairs", "sample_sequences", "mixed_uncertainty"]


def make_transition(seed: int, V: int = 64, kind: str = "dirichlet", alpha: float = 0.1, zipf: float = 1.0):
    """A V x V transition matrix from a seeded NumPy generator (float64, rows sum to 1).

    ``dirichlet``: rows ~ Dirichlet(alpha); ``zipf``: row x puts mass ∝ 1/rank^zipf on a random
    permutation of the vocabulary.
    """
    if not isinstance(V, (int, np.integer)) or V < 2:
        raise ValueError(f"V must be an integer >= 2, got {V!r}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    if kind == "dirichlet":
        P = rng.dirichlet(np.full(V, alpha), size=V)
        P = np.maximum(P, 1e-12)
    elif kind == "zipf":
        w = 1.0 / np.arange(1, V + 1) ** zipf
        P = np.stack([w[np.argsort(rng.permutation(V))] for _ in range(V)])
    else:
        raise ValueError(f"kind must be 'dirichlet' or 'zipf', got {kind!r}")
    return P / P.sum(1, keepdims=True)


SHAKESPEARE_FILE = Path(__file__).resolve().parent / "data" / "shakespeare_bigram.json"
_REBUILD = "python -m sims.data.make_shakespeare_bigram"
AUTHORS_FILE = Path(__file__).resolve().parent / "data" / "authors_bigram.json"
_REBUILD_AUTHORS = "python -m sims.data.make_authors_bigram --repo PATH"
TINY_SHAKESPEARE_VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@functools.cache
def _shakespeare(path: str, what: str = "Shakespeare bigram data", rebuild: str = _REBUILD):
    """(counts, vocab, sha256 prefix, the record) of a committed counts file; errors name the file and ``rebuild``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"the {what} {p} is missing; rebuild it with `{rebuild}`")
    try:
        rec = json.loads(p.read_text())
        C = np.asarray(rec["counts"], dtype=np.int64)
        vocab = rec["vocab"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"the {what} {p} is corrupt ({e}); rebuild it with `{rebuild}`") from None
    if vocab != TINY_SHAKESPEARE_VOCAB or C.shape != (65, 65) or (C < 0).any() or C.sum() == 0:
        raise ValueError(f"the {what} {p} is corrupt (vocabulary or counts); rebuild it with `{rebuild}`")
    return C, vocab, hashlib.sha256(p.read_bytes()).hexdigest()[:16], rec


def shakespeare_bigram(path: str | Path | None = None) -> tuple[np.ndarray, str]:
    """``(P, vocab)``: the character bigram of Shakespeare's 37 plays (the ``shakespeare`` 0.6 package's
    modern-spelling texts; recipe in ``sims/data/make_shakespeare_bigram.py``) over tiny Shakespeare's vocabulary
    ``vocab`` (65 characters, sorted). ``P`` is (65, 65) float64, row-stochastic: counts row-normalized. The one
    row with no counts, ``'$'`` (absent from the plays), is uniform; ``'$'`` has stationary probability 0, so
    it never occurs in sampled sequences. A missing or corrupt file raises an error naming it and the command
    that rebuilds it."""
    C, vocab, _, _ = _shakespeare(str(path or SHAKESPEARE_FILE))
    return from_counts(C), vocab


def authors_bigram(path: str | Path | None = None) -> tuple[np.ndarray, str, np.ndarray]:
    """``(P, vocab, marginal)``: the character chain of the Bigram-Backcopy authors' runs (Guo et al. 2024, their
    ``BBM/data/bos1_d0/meta.pickle``: tiny Shakespeare, 1,115,394 characters; recipe in
    ``sims/data/make_authors_bigram.py``). ``P`` (65, 65) row-normalized integer counts (every row has counts);
    ``marginal`` the unigram frequencies, the law their first token is drawn from (triggers removed). A missing
    or corrupt file raises an error naming it and the command that rebuilds it."""
    what = "authors' bigram data"
    C, vocab, _, rec = _shakespeare(str(path or AUTHORS_FILE), what, _REBUILD_AUTHORS)
    try:
        marg = np.asarray(rec["marginal"], np.float64)
    except (KeyError, TypeError, ValueError):
        marg = np.zeros(0)
    if marg.shape != (65,) or (marg < 0).any() or abs(marg.sum() - 1) > 1e-9 or (C.sum(1) == 0).any():
        raise ValueError(f"the {what} {path or AUTHORS_FILE} is corrupt (marginal); rebuild it with "
                         f"`{_REBUILD_AUTHORS}`")
    return from_counts(C), vocab, marg


def from_counts(counts):
    """Row-normalized counts (rows with no counts become uniform)."""
    C = np.asarray(counts, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or np.any(C < 0):
        raise ValueError("counts must be a square matrix of non-negative numbers")
    s = C.sum(1, keepdims=True)
    return np.where(s > 0, C / np.where(s > 0, s, 1), 1.0 / C.shape[0])


def mixed_uncertainty(seed: int, V: int = 32, frac_deterministic: float = 0.5, support=(2, 16)):
    """Rows of two kinds (Wen et al. 2024, Sec. 4): *deterministic* rows (next token fixed,
    entropy 0) and *uncertain* rows (uniform over ``k`` random tokens, k in ``support``).
    Returns (P, is_deterministic)."""
    if not 0 <= frac_deterministic <= 1:
        raise ValueError(f"frac_deterministic must lie in [0, 1], got {frac_deterministic}")
    if V < 2:
        raise ValueError(f"V must be >= 2, got {V}")
    lo, hi = support
    if not 1 <= lo <= hi <= V:
        raise ValueError(f"support must satisfy 1 <= lo <= hi <= V, got {support}")
    rng = np.random.default_rng(seed)
    n_det = int(round(frac_deterministic * V))
    det = np.zeros(V, bool)
    det[rng.permutation(V)[:n_det]] = True
    P = np.zeros((V, V))
    for x in range(V):
        if det[x]:
            P[x, rng.integers(V)] = 1.0
        else:
            k = int(rng.integers(lo, hi + 1))
            P[x, rng.choice(V, k, replace=False)] = 1.0 / k
    # make the chain irreducible: a tiny uniform mix would break determinism, so instead the
    # sampler draws x from pi of the *uniformly restarted* chain (see sample_pairs' x_law)
    return P, det


def sample_pairs(key, P, x_law, batch: int):
    """``batch`` i.i.d. pairs: x ~ x_law, y ~ P[x]. All arrays; jit/vmap friendly."""
    kx, ky = jax.random.split(key)
    x = jax.random.categorical(kx, jnp.log(jnp.maximum(x_law, 1e-30)), shape=(batch,))
    y = jax.random.categorical(ky, jnp.log(jnp.maximum(P[x], 1e-30)))
    return x, y


def sample_sequences(key, P, first_law, batch: int, length: int, bos: int):
    """Markov sequences ``[BOS, x1, ..., x_{length-1}]`` of shape (batch, length), x1 ~ first_law
    (Bigram-Backcopy without triggers)."""
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    return _sequences(key, P, jnp.zeros(P.shape[0], bool), first_law, batch, length, bos)


def law(P, restart: float = 0.0):
    """Stationary law of P (with optional uniform restarts, for chains that are not irreducible)."""
    P = check_transition(P)
    V = P.shape[0]
    return stationary((1 - restart) * P + restart / V)


def backcopy_sequences(key, P, triggers_mask, first_law, batch: int, length: int, bos: int):
    """Bigram-Backcopy (Guo et al. 2024): ``[BOS, x1, ...]`` where after a trigger the next token copies the
    token before the trigger, otherwise a bigram draw. Shape (batch, length); fresh every call."""
    if length < 3:
        raise ValueError(f"sequence length must be >= 3, got {length}")
    return _sequences(key, P, triggers_mask, first_law, batch, length, bos)


def _cdf(P):
    """Row-wise cumulative sums of ``P`` (2-D) for inverse-CDF sampling, set to exactly 1 from each row's last
    positive entry on: with ``u`` in (0, 1], ``#{j: cdf[j] < u}`` is then always an index of positive probability
    (cdf[j] >= u > cdf[j-1] implies P[j] > 0), whatever the float rounding of the sums."""
    c = jnp.cumsum(P, axis=-1)
    V = P.shape[-1]
    last = V - 1 - jnp.argmax(P[:, ::-1] > 0, axis=-1)
    return jnp.where(jnp.arange(V) >= last[:, None], 1.0, c)


def _sequences(key, P, triggers_mask, first_law, batch, length, bos):
    # inverse-CDF sampling from ONE uniform draw for the whole batch (one per token): the law of every token is
    # the chain's, as with a Gumbel-argmax categorical per position, at 1/V of the random numbers and one RNG call
    # site (each site is ~0.2 s of CPU compile in a training loop that samples fresh batches)
    cdf = _cdf(P)
    cdf1 = _cdf(first_law[None, :])[0]
    u = 1.0 - jax.random.uniform(key, (length - 1, batch, 1), dtype=cdf.dtype)  # in (0, 1]
    x1 = jnp.sum(cdf1 < u[0], axis=-1)

    def step(carry, u_t):
        prev, cur = carry
        draw = jnp.sum(cdf[cur] < u_t, axis=-1)
        nxt = jnp.where(triggers_mask[cur], prev, draw)
        return (cur, nxt), nxt

    _, rest = jax.lax.scan(step, (jnp.full((batch,), bos), x1), u[1:])
    return jnp.concatenate([jnp.full((batch, 1), bos), x1[:, None], rest.T], axis=1)


@functools.cache
def backcopy_source(V: int, k: int, seed: int, zipf: float, data: str = "zipf"):
    """The Bigram-Backcopy task's chain: (P, trigger mask, law of x1).

    ``data="authors"`` (the default of :class:`sims.bigram_backcopy.BBConfig`): the chain of the authors' runs
    (:func:`authors_bigram`: tiny Shakespeare's character bigram, V = 65), with their rules: triggers the k most
    frequent tokens of the unigram marginal, x1 drawn from the marginal without the triggers (their
    ``bbm.gen_seq``). ``"shakespeare"``: the character bigram of the 37 plays (:func:`shakespeare_bigram`, V = 65);
    ``"zipf"``: seeded Zipf-like rows; for these two the triggers are the k most frequent tokens under the
    stationary law and x1 is drawn from the stationary law without the triggers (the marginal of a long text: the
    two rules differ by 2e-6 in total variation on the authors' chain). ``seed`` and ``zipf`` act on Zipf only.
    Both Shakespeare chains have the triggers ' ', 'e', 't' at k = 3."""
    if data in ("authors", "shakespeare"):
        P, _, marg = authors_bigram() if data == "authors" else (*shakespeare_bigram(), None)
        if V != P.shape[0]:
            raise ValueError(f"V must be {P.shape[0]} for the {data} chain, got {V}")
    else:
        P, marg = make_transition(seed, V=V, kind="zipf", zipf=zipf), None
    if marg is None:
        marg = stationary(P)
    if not 0 < k < V:
        raise ValueError(f"number of triggers k must satisfy 0 < k < V={V}, got {k}")
    trig = np.sort(np.argsort(-marg, kind="stable")[:k])  # the k most frequent: theory.bigram.triggers_of's rule
    mask = np.zeros(V, bool)
    mask[trig] = True
    first = marg * ~mask
    return P, mask, first / first.sum()
