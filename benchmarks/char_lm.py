"""The character LM's training step (sims.char_lm) against the same model in PyTorch on the CPU, one seed, and its
achieved FLOP/s against this CPU's matmul rate.

Both sides train the same model (the shared transformer: pre-LN, learned positions, bias-free multi-head softmax
attention, ReLU MLP 4x, final LayerNorm, untied unembedding; 65 characters) with AdamW (the char LM's b1 0.9,
b2 0.95, eps 1e-8, weight decay 0.1) and gradient clipping at global norm 1, on the SAME pre-sampled windows of
the training plays (sampling outside the timed loop on both sides). The PyTorch loop and the JAX step are
:mod:`benchmarks.bigram_backcopy_torch`'s (``torch_train``, ``jax_trainer``).

    python -m benchmarks.char_lm [--d 64] [--layers 2] [--heads 2] [--seq 64] [--batch 16]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import append_results, timeit
from benchmarks.bigram_backcopy_torch import (
    import_torch,
    jax_trainer,
    matmul_rate,
    shape_parser,
    speed_rows,
    torch_model,
    torch_train,
    train_flops_per_token,
)
from sims import text_data as td
from sims.char_lm import CharLMConfig, optimizer
from sims.sweep import jit


def main(argv=None):
    ap = shape_parser(layers=2, seq=64, batch=16, steps=200)
    ap.add_argument("--heads", type=int, default=2)
    a = ap.parse_args(argv)
    torch = import_torch()
    if torch is None:
        return
    cfg = CharLMConfig(d_model=a.d, n_layers=a.layers, n_heads=a.heads, seq_len=a.seq, batch=a.batch,
                       n_steps=a.steps, log_every=a.steps)
    text = td.shakespeare_plays().select("train")
    w = np.asarray(jax.vmap(lambda k: td.sample_windows(k, text, a.seq, a.batch))(
        jax.random.split(jax.random.key(1), a.steps)))
    xs, ys = w[..., :-1].astype(np.int64), w[..., 1:].astype(np.int64)
    start, train = jax_trainer(cfg.model(), optimizer(cfg, 3e-3))
    p0, o0 = jit(start)(jax.random.key(0))
    one = jit(train)
    xj, yj = jnp.asarray(xs, jnp.int32), jnp.asarray(ys, jnp.int32)
    c1, t1 = timeit(lambda: jax.block_until_ready(one(p0, o0, xj, yj)))
    torch.manual_seed(0)
    trun = torch_train(torch_model(a.d, 65, a.seq, a.layers, a.heads), xs, ys, clip=1.0, lr=3e-3, betas=(0.9, 0.95),
                       eps=1e-8, weight_decay=0.1)
    _, tt = timeit(trun)  # the first call is the warm-up
    tok = a.steps * a.batch * a.seq
    flops_tok = train_flops_per_token(a.d, 65, a.seq, a.layers)
    roof = matmul_rate()
    rows = [("size", f"{a.steps} AdamW steps x batch {a.batch} x {a.seq} characters, d = {a.d}, {a.layers} layers, "
                     f"{a.heads} heads, V = 65"),
            *speed_rows(torch, tt, c1, t1, tok),
            ("ratio JAX / PyTorch (tokens/s)", f"{tt / t1:.2f}x"),
            ("model FLOPs per token (training, estimate)", f"{flops_tok / 1e3:.0f} kFLOP"),
            ("achieved: PyTorch / JAX", f"{tok * flops_tok / tt / 1e9:.1f} / {tok * flops_tok / t1 / 1e9:.1f} GFLOP/s"),
            ("this CPU's matmul rate (1024^3 float32, JAX)", f"{roof / 1e9:.0f} GFLOP/s"),
            ("JAX's share of that rate", f"{tok * flops_tok / t1 / roof:.1%}")]
    append_results(f"Character LM training step vs PyTorch (d = {a.d}, {a.layers} layers, context {a.seq})", rows,
                   "Same model, same AdamW and clipping, same pre-sampled windows; sampling outside the timed loops.")


if __name__ == "__main__":
    main()
