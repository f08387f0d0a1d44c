"""The text of Shakespeare's 37 plays for the character language model (:mod:`sims.char_lm`), and windows of it
sampled on device.

* :func:`shakespeare_plays` -- the committed ``sims/data/shakespeare_plays.npz`` (the same source, cleaning and
  65-character vocabulary as the bigram counts of :func:`sims.bigram_data.shakespeare_bigram`; recipe in
  ``sims/data/make_shakespeare_bigram.py``): per play its characters, genre (First Folio grouping) and split
  (six held-out plays, two per genre).
* :meth:`Corpus.select` -- the plays of a split and genre as one :class:`Text` (concatenated, with play bounds).
* :func:`sample_windows` -- random windows of ``L + 1`` characters inside one play each (never across a play's
  end), deterministic per key and vmappable over seeds.
* :func:`eval_windows` -- fixed, evenly spaced evaluation windows (no key: every run of a sweep is scored on the
  same characters, so that schedules are compared paired).
* :func:`kgram_entropy` -- the conditional uncertainty of each character given the k characters before it,
  estimated on other text (the classes of the river-valley per-token split).
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Corpus", "Text", "shakespeare_plays", "TEXT_FILE", "GENRES", "SPLITS", "sample_windows",
           "window_starts", "eval_windows", "kgram_entropy", "bigram_cross_entropy"]

TEXT_FILE = Path(__file__).resolve().parent / "data" / "shakespeare_plays.npz"
_REBUILD = "python -m sims.data.make_shakespeare_bigram"
GENRES = ("comedy", "history", "tragedy")
SPLITS = ("train", "held_out")
_VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Text(NamedTuple):
    """Plays concatenated: ``tokens`` (uint8 indices into the vocabulary) and ``starts`` (n_plays + 1 offsets);
    ``plays`` names them."""

    tokens: np.ndarray
    starts: np.ndarray
    plays: tuple

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def decode(self, ids) -> str:
        return "".join(_VOCAB[int(i)] for i in np.asarray(ids).ravel())


class Corpus(NamedTuple):
    """The committed text: every play's characters, genre and split; ``sha256`` of the file (its identity)."""

    text: Text
    genres: tuple
    held_out: tuple
    vocab: str
    breaks: np.ndarray
    meta: dict
    sha256: str

    def select(self, split: str = "train", genre: str = "all") -> Text:
        """The plays of ``split`` ("train", "held_out" or "all") and ``genre`` ("all" or one of GENRES)."""
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split must be one of {(*SPLITS, 'all')}, got {split!r}")
        if genre not in (*GENRES, "all"):
            raise ValueError(f"genre must be 'all' or one of {GENRES}, got {genre!r}")
        keep = [i for i, (g, h) in enumerate(zip(self.genres, self.held_out))
                if (genre == "all" or g == genre) and (split == "all" or h == (split == "held_out"))]
        st = self.text.starts
        parts = [self.text.tokens[st[i]:st[i + 1]] for i in keep]
        starts = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
        return Text(np.concatenate(parts), starts, tuple(self.text.plays[i] for i in keep))


@functools.cache
def _load(path: str) -> Corpus:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"the Shakespeare text {p} is missing; rebuild it with `{_REBUILD}`")
    raw = p.read_bytes()
    try:
        with np.load(p, allow_pickle=False) as z:
            tokens, starts, breaks = z["tokens"], z["starts"], z["breaks"]
            plays, genres, held = (tuple(z[k].tolist()) for k in ("plays", "genres", "held_out"))
            meta = json.loads(str(z["meta"]))
    except (ValueError, KeyError, OSError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"the Shakespeare text {p} is corrupt ({e}); rebuild it with `{_REBUILD}`") from None
    ok = (tokens.dtype == np.uint8 and tokens.size > 0 and int(tokens.max()) < 65 and starts[0] == 0
          and starts[-1] == tokens.size and np.all(np.diff(starts) > 0) and len(plays) == len(starts) - 1
          == len(genres) == len(held) and set(genres) <= set(GENRES) and meta.get("vocab") == _VOCAB)
    if not ok:
        raise ValueError(f"the Shakespeare text {p} is corrupt (tokens, play bounds or vocabulary); rebuild it with "
                         f"`{_REBUILD}`")
    return Corpus(Text(tokens, starts.astype(np.int64), plays), genres, tuple(bool(h) for h in held), _VOCAB,
                  breaks, meta, hashlib.sha256(raw).hexdigest()[:16])


def shakespeare_plays(path: str | Path | None = None) -> Corpus:
    """The committed text of the 37 plays (module docstring). A missing or corrupt file raises an error naming it
    and the command that rebuilds it."""
    return _load(str(TEXT_FILE if path is None else path))


def _valid_starts(text: Text, L: int) -> np.ndarray:
    n = text.lengths - L  # windows of L + 1 characters starting at 0 .. len - L - 1
    if (n < 1).any():
        short = text.plays[int(np.argmin(n))]
        raise ValueError(f"seq_len={L} is too long: the play {short!r} has only {int(text.lengths.min())} characters")
    return n


def window_starts(key, text: Text, L: int, batch: int):
    """``(batch,)`` offsets into ``text.tokens`` of windows of ``L + 1`` characters, each inside one play, uniform
    over all valid starts of all plays (a play is drawn with probability proportional to its valid starts)."""
    n = _valid_starts(text, L)
    cum = np.concatenate([[0], np.cumsum(n)])
    u = jax.random.randint(key, (batch,), 0, int(cum[-1]))
    play = jnp.searchsorted(jnp.asarray(cum[1:]), u, side="right")
    return jnp.asarray(text.starts[:-1])[play] + (u - jnp.asarray(cum[:-1])[play])


def sample_windows(key, text: Text, L: int, batch: int):
    """``(batch, L + 1)`` int32 windows of ``text`` at :func:`window_starts`. Deterministic per key; ``text`` is a
    NumPy constant of the program, so the function vmaps over keys."""
    start = window_starts(key, text, L, batch)
    return jnp.asarray(text.tokens)[start[:, None] + jnp.arange(L + 1)].astype(jnp.int32)


def eval_windows(text: Text, L: int, n: int) -> np.ndarray:
    """``n`` fixed windows (their start offsets into ``text.tokens``), evenly spaced over the valid starts of all
    plays (no key: the same characters for every run)."""
    nv = _valid_starts(text, L)
    cum = np.concatenate([[0], np.cumsum(nv)])
    u = ((np.arange(n) + 0.5) * cum[-1] / n).astype(np.int64)
    play = np.searchsorted(cum[1:], u, side="right")
    return text.starts[:-1][play] + (u - cum[:-1][play])


def _contexts(seg: np.ndarray, k: int) -> np.ndarray:
    code = np.zeros(seg.size - k, np.int64)
    for j in range(k):
        code = code * 65 + seg[j:seg.size - k + j]
    return code


def kgram_entropy(train: Text, target: Text, k: int, min_count: int = 20) -> np.ndarray:
    """Per character of ``target`` (float64, aligned with ``target.tokens``): the entropy (nats) of the next
    character given the k characters before it, estimated by counting in ``train``; NaN where the context was
    seen fewer than ``min_count`` times in ``train`` or lies before the play's start."""
    codes, nexts = [], []
    for a, b in zip(train.starts[:-1], train.starts[1:]):
        seg = train.tokens[a:b].astype(np.int64)
        codes.append(_contexts(seg, k))
        nexts.append(seg[k:])
    joint, cnt = np.unique(np.concatenate(codes) * 65 + np.concatenate(nexts), return_counts=True)
    ctx, inv = np.unique(joint // 65, return_inverse=True)
    tot = np.bincount(inv, weights=cnt)
    p = cnt / tot[inv]
    H = np.bincount(inv, weights=-p * np.log(p))
    out = np.full(target.tokens.size, np.nan)
    for a, b in zip(target.starts[:-1], target.starts[1:]):
        c = _contexts(target.tokens[a:b].astype(np.int64), k)
        i = np.minimum(np.searchsorted(ctx, c), ctx.size - 1)
        hit = (ctx[i] == c) & (tot[i] >= min_count)
        out[a + k:b] = np.where(hit, H[i], np.nan)
    return out


def bigram_cross_entropy(train: Text, target: Text, alpha: float = 0.5) -> float:
    """Cross-entropy (nats per character) on ``target`` of the bigram model counted on ``train`` (add-``alpha``
    smoothing; pairs inside plays): the bigram entropy rate a character LM must beat."""
    C = np.full((65, 65), alpha)
    for a, b in zip(train.starts[:-1], train.starts[1:]):
        s = train.tokens[a:b].astype(np.int64)
        np.add.at(C, (s[:-1], s[1:]), 1)
    logP = np.log(C / C.sum(1, keepdims=True))
    nll, n = 0.0, 0
    for a, b in zip(target.starts[:-1], target.starts[1:]):
        s = target.tokens[a:b].astype(np.int64)
        nll -= logP[s[:-1], s[1:]].sum()
        n += s.size - 1
    return nll / n
