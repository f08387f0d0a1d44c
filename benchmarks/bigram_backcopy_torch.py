"""Bigram-Backcopy training step: this suite's JAX model against the same model in PyTorch (CPU), one seed, and
vmapped seeds against sequential runs.

Both sides train the same pre-LN transformer (learned positions, bias-free attention, ReLU MLP 4x, final
LayerNorm, untied unembedding; PyTorch's default init) with AdamW (b1 0.9, b2 0.99, eps 1e-8, weight decay 1e-4)
on the SAME pre-sampled batches (data sampling is outside the timed loop on both sides). PyTorch runs the loop a
careful user writes (``torch.set_num_threads(os.cpu_count())``, ``zero_grad(set_to_none=True)``, fused AdamW
where the build has it); JAX runs the suite's step (:func:`sims.bigram_backcopy.make_train`'s: the parameters as
one flat vector for the optimizer, compiled by :func:`sims.sweep.jit`) under ``lax.scan`` over the steps in one
compiled call, the parameters and optimizer state donated. PyTorch is installed only for benchmarks
(``requirements-bench.txt``; ``make bench`` installs it).

    python -m benchmarks.bigram_backcopy_torch [--d 64] [--layers 1] [--seeds 8]
"""

from __future__ import annotations

import argparse
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from benchmarks._common import append_results, timeit
from sims.bigram_backcopy import BBConfig, optimizer, sample_batch
from sims.sweep import jit
from sims.transformer import apply, init


def jax_trainer(mcfg, opt):
    """(start(key) -> (params, opt state), train(params, opt state, xs, ys) -> (params, opt state, losses)): the
    suite's step for the transformer config ``mcfg`` and optax optimizer ``opt``, scanned over pre-sampled
    batches."""
    unravel = ravel_pytree(init(jax.random.key(0), mcfg))[1]  # the layout only (as make_train: one flat vector)

    def loss_fn(p, x, y):
        logits, _ = apply(unravel(p), x, mcfg)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1))

    def train(params, ost, xs, ys):
        def step(state, xy):
            p, o = state
            loss, g = jax.value_and_grad(loss_fn)(p, *xy)
            upd, o = opt.update(g, o, p)
            return (optax.apply_updates(p, upd), o), loss

        (p, o), losses = jax.lax.scan(step, (params, ost), (xs, ys))
        return p, o, losses

    def start(key):
        p = ravel_pytree(init(key, mcfg))[0]
        return p, opt.init(p)

    return start, train


def train_flops_per_token(d: int, V: int, L: int, n_layers: int) -> float:
    """Training FLOPs per token of the shared transformer (forward x 3): the block matmuls (12 d^2 per layer), the
    unembedding and the causal attention's two L x d products."""
    return 3 * (2 * (n_layers * 12 * d * d + d * V) + n_layers * 2 * 2 * L * d)


def matmul_rate() -> float:
    """The practical limit: this CPU's float32 matmul rate (1024^3 in JAX, FLOP/s)."""
    A = jnp.ones((1024, 1024), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    _, t_mm = timeit(lambda: mm(A).block_until_ready())
    return 2 * 1024**3 / t_mm


def torch_model(d: int, V: int, L: int, n_layers: int, n_heads: int = 1):
    """The shared transformer (sims.transformer, softmax mixer, MLP) in PyTorch: vocabulary V, context L."""
    import torch
    from torch import nn

    dh = d // n_heads

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
            self.w1, self.w2 = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)

        def forward(self, x, causal):
            h = self.ln1(x)
            B, T, _ = h.shape
            q, k, v = (f(h).view(B, T, n_heads, dh).transpose(1, 2) for f in (self.q, self.k, self.v))
            s = q @ k.transpose(-1, -2) / math.sqrt(dh)
            w = torch.softmax(s.masked_fill(~causal[:T, :T], float("-inf")), -1)
            x = x + self.o((w @ v).transpose(1, 2).reshape(B, T, d))
            return x + self.w2(torch.relu(self.w1(self.ln2(x))))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, d), nn.Embedding(L, d)
            self.blocks = nn.ModuleList(Block() for _ in range(n_layers))
            self.ln_f, self.unembed = nn.LayerNorm(d), nn.Linear(d, V, bias=False)
            self.register_buffer("causal", torch.tril(torch.ones(L, L, dtype=torch.bool)))

        def forward(self, x):
            h = self.tok(x) + self.pos.weight[: x.shape[1]]
            for b in self.blocks:
                h = b(h, self.causal)
            return self.unembed(self.ln_f(h))

    return Model()


def torch_train(model, xs: np.ndarray, ys: np.ndarray, clip: float = 0.0, **kw):
    """A careful user's PyTorch loop over the pre-sampled batches: AdamW(**kw) (fused where the build has it),
    gradient clipping to ``clip`` (0: none)."""
    import torch

    try:
        opt = torch.optim.AdamW(model.parameters(), fused=True, **kw)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(model.parameters(), **kw)
    X, Y = torch.from_numpy(xs), torch.from_numpy(ys)
    loss_f = torch.nn.CrossEntropyLoss()

    def run():
        for t in range(X.shape[0]):
            opt.zero_grad(set_to_none=True)
            loss = loss_f(model(X[t]).flatten(0, 1), Y[t].flatten())
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        return float(loss.detach())

    return run


def speed_rows(torch, tt: float, c1: float, t1: float, tok: int) -> list:
    """The rows every PyTorch-vs-JAX table shares: PyTorch's median time, JAX's compile and median (tokens/s)."""
    return [("PyTorch " + torch.__version__ + f" ({torch.get_num_threads()} threads), median of 3",
             f"{tt:.3f} s = {tok / tt:.3g} tokens/s"),
            ("JAX one seed (compile + first run)", f"{c1:.2f} s"),
            ("JAX one seed, median of 3", f"{t1:.3f} s = {tok / t1:.3g} tokens/s")]


def shape_parser(*, layers: int, seq: int, batch: int, steps: int) -> argparse.ArgumentParser:
    """The benchmarks' shape options (width, layers, sequence, batch, steps) with their defaults."""
    ap = argparse.ArgumentParser()
    for name, v in (("--d", 64), ("--layers", layers), ("--seq", seq), ("--batch", batch), ("--steps", steps)):
        ap.add_argument(name, type=int, default=v)
    return ap


def import_torch():
    """PyTorch with one thread per core, or None (with the install hint printed) where it is not installed."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: pip install -r requirements-bench.txt (make bench does)")
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def main(argv=None):
    ap = shape_parser(layers=1, seq=32, batch=64, steps=100)
    ap.add_argument("--seeds", type=int, default=8)
    a = ap.parse_args(argv)
    torch = import_torch()
    if torch is None:
        return
    cfg = BBConfig(seq_len=a.seq, batch=a.batch, d_model=a.d, n_layers=a.layers, n_steps=a.steps,
                   log_every=a.steps)
    keys = jax.random.split(jax.random.key(1), a.steps)
    xs, ys = jax.vmap(lambda k: sample_batch(cfg, k, cfg.batch)[:2])(keys)
    xs, ys = np.asarray(xs, np.int64), np.asarray(ys, np.int64)
    start, train = jax_trainer(cfg.model(), optimizer(cfg, 3e-3))
    start1 = jit(start)
    one = jit(train, donate_argnums=(0, 1))
    seeds = jax.random.split(jax.random.key(0), a.seeds)
    vm = jit(jax.vmap(train, in_axes=(0, 0, None, None)), donate_argnums=(0, 1))
    xj, yj = jnp.asarray(xs, jnp.int32), jnp.asarray(ys, jnp.int32)

    def jax_one():
        p, o = start1(seeds[0])
        jax.block_until_ready(one(p, o, xj, yj))

    def jax_seq():
        for k in seeds:
            p, o = start1(k)
            jax.block_until_ready(one(p, o, xj, yj))

    vstart = jit(jax.vmap(start))

    def jax_vmap():
        p, o = vstart(seeds)
        jax.block_until_ready(vm(p, o, xj, yj))

    c1, t1 = timeit(jax_one)
    cv, tv = timeit(jax_vmap)
    _, ts = timeit(jax_seq)
    torch.manual_seed(0)
    trun = torch_train(torch_model(cfg.d_model, cfg.V + 1, cfg.seq_len, cfg.n_layers, cfg.n_heads), xs, ys,
                       lr=3e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-4)
    _, tt = timeit(trun)  # the first call is the warm-up (allocator, first-call dispatch)
    tok = a.steps * a.batch * a.seq
    flops_tok = train_flops_per_token(a.d, cfg.V + 1, a.seq, a.layers)
    roof = matmul_rate()
    rows = [("size", f"{a.steps} AdamW steps x batch {a.batch} x {a.seq} tokens, d = {a.d}, {a.layers} layer(s), "
                     f"V = {cfg.V + 1}"),
            *speed_rows(torch, tt, c1, t1, tok),
            ("per-seed ratio JAX / PyTorch", f"{tt / t1:.2f}x"),
            (f"JAX {a.seeds} seeds vmapped (compile + first run)", f"{cv:.2f} s"),
            (f"JAX {a.seeds} seeds vmapped, median of 3", f"{tv:.3f} s = {a.seeds * tok / tv:.3g} tokens/s"),
            (f"JAX {a.seeds} seeds sequential, median of 3", f"{ts:.3f} s = {a.seeds * tok / ts:.3g} tokens/s"),
            ("vmapped / sequential", f"{ts / tv:.2f}x"),
            ("model FLOPs per token (training, estimate)", f"{flops_tok / 1e3:.0f} kFLOP"),
            ("achieved: PyTorch / JAX one seed / JAX vmapped", f"{tok * flops_tok / tt / 1e9:.0f} / "
             f"{tok * flops_tok / t1 / 1e9:.0f} / {a.seeds * tok * flops_tok / tv / 1e9:.0f} GFLOP/s"),
            ("this CPU's matmul rate (1024^3 float32, JAX)", f"{roof / 1e9:.0f} GFLOP/s")]
    append_results(f"Bigram-Backcopy training step vs PyTorch (d = {a.d}, {a.layers} layer(s))", rows,
                   "Same model, same AdamW, same pre-sampled batches; data sampling outside the timed loops.")


if __name__ == "__main__":
    main()
