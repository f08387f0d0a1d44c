"""Radial attention: dense masked attention (``jax.nn.dot_product_attention`` with a mask) vs the block-sparse
gather form, against block density (decay_factor sweeps the density), same shapes, median of repeats, compile apart.
CPU quick: n = 4096 tokens (16 frames x 256, block 64); a GPU run (``--full``) uses n = 32768 (128 frames x 256,
block 128): target gather >= 3x dense-masked at density <= 0.15."""

from __future__ import annotations

import sys

import jax

from benchmarks._common import append_results, timeit
from sims import radial_attention as rs


def main(frames=16, tokens=256, block=64, heads=4, d=64, repeats=3):
    n = frames * tokens
    ks = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(kk, (1, n, heads, d)) for kk in ks)
    rows = []
    for decay in (4.0, 1.0, 0.25, 0.05):
        bm = rs.block_mask(frames, tokens, decay_factor=decay, block_size=block, model_type="hunyuan")
        dens = 1 - rs.sparsity(bm)
        tm = jax.numpy.asarray(rs.token_mask_from_blocks(bm, block))
        dense = jax.jit(lambda q, k, v, tm=tm: rs.attention_dense_masked(q, k, v, tm))
        gather = jax.jit(lambda q, k, v, bm=bm: rs.attention_block_sparse(q, k, v, bm, block))
        cd, td = timeit(lambda: jax.block_until_ready(dense(q, k, v)), repeats)
        cg, tg = timeit(lambda: jax.block_until_ready(gather(q, k, v)), repeats)
        rows.append((f"n={n} decay={decay:g} block density {dens:.3f}",
                     f"dense-masked {td * 1e3:.1f} ms, gather {tg * 1e3:.1f} ms: gather/dense speed {td / tg:.2f}x "
                     f"(first calls {cd:.2f} s, {cg:.2f} s)"))
        print(rows[-1])
    print(append_results(f"Radial attention: dense-masked vs block-sparse gather (n = {n}, block {block}, H = {heads},"
                         f" d = {d})", rows, "Median of repeats after a compiling first call."))


if __name__ == "__main__":
    if "--full" in sys.argv:
        main(frames=128, tokens=256, block=128, heads=8)
    else:
        main()
