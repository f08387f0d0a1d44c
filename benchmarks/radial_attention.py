"""Radial attention: dense masked attention (``jax.nn.dot_product_attention`` with a mask) vs the block-sparse
gather form, against block density (decay_factor sweeps the density), same shapes, median of repeats, compile apart.
CPU quick: n = 4096 tokens in geometries of falling density (16 frames x 256 .. 128 x 32); a GPU run (``--full``)
uses n = 32768 (128 frames x 256, block 128): target gather >= 3x dense-masked at density <= 0.15."""

from __future__ import annotations

import sys

import jax

from benchmarks._common import append_results, timeit
from sims import radial_attention as rs


def main(cases=((16, 256, 64, 4.0), (16, 256, 64, 0.25), (32, 128, 64, 1.0), (64, 64, 64, 1.0),
                (128, 32, 32, 1.0)), heads=4, d=64, repeats=3):
    """Each case: (frames, tokens per frame, block, decay_factor); n = frames x tokens (4096 for the CPU cases), so
    the block density falls as frames grow (the radial mask is O(n log n) in frames at fixed tokens)."""
    rows = []
    for frames, tokens, block, decay in cases:
        n = frames * tokens
        ks = jax.random.split(jax.random.key(0), 3)
        q, k, v = (jax.random.normal(kk, (1, n, heads, d)) for kk in ks)
        bm = rs.block_mask(frames, tokens, decay_factor=decay, block_size=block, model_type="hunyuan")
        dens = 1 - rs.sparsity(bm)
        tm = jax.numpy.asarray(rs.token_mask_from_blocks(bm, block))
        dense = jax.jit(lambda q, k, v, tm=tm: rs.attention_dense_masked(q, k, v, tm))
        gather = jax.jit(lambda q, k, v, bm=bm, block=block: rs.attention_block_sparse(q, k, v, bm, block))
        cd, td = timeit(lambda: jax.block_until_ready(dense(q, k, v)), repeats)
        cg, tg = timeit(lambda: jax.block_until_ready(gather(q, k, v)), repeats)
        rows.append((f"n={n} ({frames} frames x {tokens}, block {block}, decay {decay:g}) block density {dens:.3f}",
                     f"dense-masked {td * 1e3:.1f} ms, gather {tg * 1e3:.1f} ms: gather/dense speed {td / tg:.2f}x "
                     f"(first calls {cd:.2f} s, {cg:.2f} s)"))
        print(rows[-1])
    print(append_results(f"Radial attention: dense-masked vs block-sparse gather (H = {heads}, d = {d})", rows,
                         "Median of repeats after a compiling first call."))


if __name__ == "__main__":
    if "--full" in sys.argv:
        main(cases=((128, 256, 128, 1.0), (128, 256, 128, 0.2)), heads=8)
    else:
        main()
