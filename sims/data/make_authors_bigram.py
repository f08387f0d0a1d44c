"""Build ``sims/data/authors_bigram.json``: the character bigram chain of the Active-Dormant authors' Bigram-Backcopy
runs (Guo et al. 2024), rebuilt as integer counts from the statistics their repository ships.

Source: ``BBM/data/bos1_d0/meta.pickle`` of github.com/GuoTianYu2000/Active-Dormant-Attention (the data of every
``task_name=bbm`` script: ``data_args.bos_num=1 data_args.delimiter_p=0``), read from a local clone whose path is
the argument or the ``BBM_PATH`` environment variable (the repository root or its ``BBM`` folder; a bare clone is
read at its HEAD)::

    python -m sims.data.make_authors_bigram --repo /path/to/Active-Dormant-Attention

The pickle holds, over their 67 tokens (tiny Shakespeare's 65 characters, ``<s_0>`` = BOS 65, ``<d>`` = delimiter
66), the unigram marginal (``marginal``) and the row-normalized bigram counts (``cond``), both counted from tiny
Shakespeare (``input.txt`` of char-rnn, N = 1,115,394 characters). Recipe (also stored in the file):
1. unigram counts n_i = round(N * marginal_i) (every n_i is within 1e-6 of an integer: checked);
2. bigram counts c_ij = round(cond_ij * r_i) with r_i = n_i, less one for the text's last character (``'\\n'``):
   every product is within 1e-6 of an integer and the rebuilt rows, normalized, equal ``cond`` to 1e-12 (checked);
3. only the 65 characters are kept: their BOS row (= the marginal) and the never-emitted delimiter are the task's,
   not the chain's (``sims.bigram_backcopy`` adds BOS itself);
4. the marginal is stored beside the counts (the law of their first token, triggers removed).
The pickle is read with an unpickler that admits only builtin containers and numbers. Nothing is downloaded at
import or test time: the committed JSON is the data; the pickle's sha256 and the repository commit are recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "authors_bigram.json"
META = "BBM/data/bos1_d0/meta.pickle"
N_TINY_SHAKESPEARE = 1_115_394
VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RECIPE = __doc__.split("Recipe (also stored in the file):\n", 1)[1].split("The pickle is read", 1)[0].rstrip()


class _Plain(pickle.Unpickler):
    def find_class(self, module, name):  # no code objects: the meta is dicts, lists, strings and numbers
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the authors' meta.pickle")


def counts_from_meta(meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(counts (65, 65) int64, marginal (65,) float64) from the authors' meta dict (recipe in the module docstring);
    a ValueError when the statistics are not counts of a text of N_TINY_SHAKESPEARE characters."""
    itos = {int(k): v for k, v in meta["itos"].items()}
    if "".join(itos[i] for i in range(65)) != VOCAB:
        raise ValueError("the authors' first 65 tokens are not tiny Shakespeare's vocabulary")
    marg = np.asarray(meta["marginal"], np.float64)[:65]
    cond = np.asarray(meta["cond"], np.float64)[:65, :65]
    n = marg * N_TINY_SHAKESPEARE
    if np.abs(n - np.round(n)).max() > 1e-6:
        raise ValueError("the authors' marginal is not a count over N_TINY_SHAKESPEARE characters")
    rows = np.round(n).astype(np.int64)
    rows[VOCAB.index("\n")] -= 1  # the text's last character starts no bigram
    c = cond * rows[:, None]
    if np.abs(c - np.round(c)).max() > 1e-6:
        raise ValueError("the authors' conditionals are not counts over the unigram counts")
    C = np.round(c).astype(np.int64)
    if np.abs(C / C.sum(1, keepdims=True) - cond).max() > 1e-12:
        raise ValueError("the rebuilt counts do not reproduce the authors' conditionals")
    return C, marg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=os.environ.get("BBM_PATH"),
                    help="a local clone of Active-Dormant-Attention (default: $BBM_PATH)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    if not a.repo:
        ap.error("give --repo or set BBM_PATH to a local clone of GuoTianYu2000/Active-Dormant-Attention")
    root = Path(a.repo)
    root = root.parent if root.name == "BBM" else root
    src = root / META
    if src.exists():
        raw = src.read_bytes()
    else:  # a bare clone (no work tree): read the file from its HEAD
        got = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{META}"], capture_output=True)
        if got.returncode:
            ap.error(f"{src} does not exist: --repo (or BBM_PATH) must be a clone of Active-Dormant-Attention")
        raw = got.stdout
    C, marg = counts_from_meta(_Plain(io.BytesIO(raw)).load())
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    rec = {"vocab": VOCAB, "counts": C.tolist(), "marginal": marg.tolist(),
           "source": {"repository": "github.com/GuoTianYu2000/Active-Dormant-Attention", "commit": commit,
                      "path": META, "sha256": hashlib.sha256(raw).hexdigest(), "text": "tiny Shakespeare",
                      "n_chars": N_TINY_SHAKESPEARE},
           "recipe": RECIPE, "command": "python -m sims.data.make_authors_bigram --repo PATH"}
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, separators=(",", ":")))
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {int(C.sum())} bigrams over {len(VOCAB)} characters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
