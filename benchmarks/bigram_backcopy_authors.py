"""The suite's Bigram-Backcopy training step against the Active-Dormant authors' own PyTorch model on this CPU.

The authors' side imports ``Transformer`` / ``ModelArgs`` from their repository's ``BBM/model.py`` (a local copy of
GuoTianYu2000/Active-Dormant-Attention: set ``BBM_PATH`` to its ``BBM`` folder; their code is imported, never
copied here) and runs the body of ``BBM/train_main.py``'s loop: ``zero_grad``, forward, ``F.cross_entropy`` on the
flattened logits, ``backward``, ``AdamW(lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-4).step()``, without their
wandb logging, checkpointing and multi-worker data loader (their full loop costs more). Both sides train 1 layer,
1 head, pre-LN, MLP 4d on the same pre-sampled batches, with ``torch.set_num_threads(os.cpu_count())``; the suite
runs :func:`benchmarks.bigram_backcopy_torch.jax_trainer`'s step (flat parameters, AdamW, ``lax.scan`` over the
steps in one compiled call). Compile apart; the two codes' timed calls interleaved; medians of the repeats.

    BBM_PATH=/path/to/Active-Dormant-Attention/BBM python -m benchmarks.bigram_backcopy_authors [--shape paper|quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks._common import append_results
from benchmarks.bigram_backcopy_torch import jax_trainer
from sims.bigram_backcopy import BBConfig, sample_batch
from sims.sweep import jit

SHAPES = {"paper": dict(d_model=256, seq_len=256, batch=512, steps=2, repeats=3, lr=3e-4),
          "quick": dict(d_model=64, seq_len=32, batch=64, steps=50, repeats=5, lr=3e-3)}


def authors_model_path() -> Path:
    """The authors' BBM folder from ``BBM_PATH``; a missing or wrong path is an error naming the variable."""
    p = os.environ.get("BBM_PATH")
    if not p:
        raise SystemExit("error: set BBM_PATH to the BBM folder of a local copy of "
                         "GuoTianYu2000/Active-Dormant-Attention (it holds model.py)")
    path = Path(p)
    if not (path / "model.py").is_file():
        raise SystemExit(f"error: BBM_PATH={p} has no model.py (expected the repository's BBM folder)")
    return path


def authors_trainer(cfg: BBConfig, lr: float, xs: np.ndarray, ys: np.ndarray):
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(authors_model_path()))
    import model as bbm  # the authors' BBM/model.py

    torch.manual_seed(0)
    args = bbm.ModelArgs(vocab_size=cfg.V + 1, n_layers=1, dim=cfg.d_model, n_heads=1, max_length=cfg.seq_len)
    net = bbm.Transformer(args)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4, betas=(0.9, 0.99), eps=1e-8)
    X, Y = torch.from_numpy(np.asarray(xs)).long(), torch.from_numpy(np.asarray(ys)).long()

    def run():
        for t in range(X.shape[0]):  # train_main.py's loop body
            opt.zero_grad()
            pred = net(X[t])
            loss = F.cross_entropy(pred.flatten(0, 1), Y[t].flatten(0, 1))
            loss.backward()
            opt.step()
        return float(loss.detach())

    return run


def compare(shape: str) -> list[tuple[str, str]]:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    s = SHAPES[shape]
    cfg = BBConfig(seq_len=s["seq_len"], batch=s["batch"], d_model=s["d_model"], n_layers=1, n_steps=s["steps"],
                   log_every=s["steps"])
    keys = jax.random.split(jax.random.key(1), s["steps"])
    xs, ys = jax.vmap(lambda k: sample_batch(cfg, k, cfg.batch)[:2])(keys)
    xs, ys = np.asarray(xs)[:, :, : cfg.seq_len], np.asarray(ys)[:, :, : cfg.seq_len]
    start, train = jax_trainer(cfg)
    f = jit(train, donate_argnums=(0, 1))
    state = list(start(jax.random.key(0)))

    def suite():
        state[0], state[1], loss = f(state[0], state[1], xs, ys)
        jax.block_until_ready(loss)

    authors = authors_trainer(cfg, s["lr"], xs, ys)
    t0 = time.perf_counter()
    suite()  # compile + first run
    t_compile = time.perf_counter() - t0
    authors()  # warm up
    ts, ta = [], []
    for _ in range(s["repeats"]):  # interleaved
        t0 = time.perf_counter()
        suite()
        ts.append((time.perf_counter() - t0) / s["steps"])
        t0 = time.perf_counter()
        authors()
        ta.append((time.perf_counter() - t0) / s["steps"])
    ms, ma = statistics.median(ts), statistics.median(ta)
    return [("shape", f"{shape}: d {cfg.d_model}, L {cfg.seq_len}, batch {cfg.batch}, 1 layer, 1 head, AdamW; "
                      f"{s['steps']} steps per timed call, {s['repeats']} interleaved repeats; "
                      f"{os.cpu_count()} threads each"),
            ("suite step (median)", f"{ms * 1e3:.1f} ms (compile + first call {t_compile:.1f} s)"),
            ("authors' step (median)", f"{ma * 1e3:.1f} ms (torch {torch.__version__})"),
            ("authors / suite", f"{ma / ms:.2f}x (the suite is faster above 1)")]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=tuple(SHAPES) + ("both",), default="both")
    a = ap.parse_args(argv)
    authors_model_path()
    for shape in (SHAPES if a.shape == "both" else (a.shape,)):
        append_results(f"Bigram-Backcopy step vs the authors' PyTorch model ({shape} shape)", compare(shape))


if __name__ == "__main__":
    main()
