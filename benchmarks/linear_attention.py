"""GLA forms: forward and forward+backward tokens/s vs L against causal softmax attention
(``jax.nn.dot_product_attention``), same shapes, median of repeats, compile time apart (issue: linear attention).

Shape: batch x heads = 8, d_k = d_v = 64, gates of GLA's layer strength (normalizer 16). On a CPU the recurrent scan
is expected to be the fastest forward (the chunk form's advantage is a tensor-core effect): say what is measured.
A ``--full`` run (L up to 8192) is meant for a GPU.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

from benchmarks._common import append_results, timeit
from sims import linear_attention as la

FORMS = {
    "recurrent": dict(form="recurrent"),
    "chunk C=64 (matmul intra)": dict(form="chunk", chunk_size=64),
    "chunk C=64 c=16 (secondary)": dict(form="chunk", chunk_size=64, sub_chunk_size=16),
    "parallel (log space)": dict(form="parallel"),
}


def _inputs(L, bh=8, d=64):
    ks = jax.random.split(jax.random.key(0), 4)
    q, k, v = (jax.random.normal(kk, (bh, L, d)) for kk in ks[:3])
    return q, k, v, la.fla_gates(ks[3], (bh, L, d), 16.0)


def _softmax(q, k, v, g):
    return jax.nn.dot_product_attention(q[:, :, None], k[:, :, None], v[:, :, None], is_causal=True)[:, :, 0]


def main(lengths=(512, 1024, 2048), repeats=3):
    rows = []
    for L in lengths:
        args = _inputs(L)
        fns = {name: (lambda q, k, v, g, kw=kw: la.gla(q, k, v, g, **kw)[0]) for name, kw in FORMS.items()}
        fns["softmax dot_product_attention (causal)"] = _softmax
        if L > 2048:  # the log-space parallel form materializes block x L x d_k per block: skip at long L on CPU
            fns.pop("parallel (log space)")
        for name, f in fns.items():
            fwd = jax.jit(f)
            bwd = jax.jit(jax.grad(lambda q, k, v, g, f=f: jnp.sum(f(q, k, v, g) ** 2), argnums=(0, 1, 2)))
            c1, t1 = timeit(lambda: jax.block_until_ready(fwd(*args)), repeats)
            c2, t2 = timeit(lambda: jax.block_until_ready(bwd(*args)), repeats)
            tok = 8 * L
            rows.append((f"L={L} {name}", f"fwd {tok / t1 / 1e6:.3g} M tok/s ({t1 * 1e3:.1f} ms; first call "
                         f"{c1:.2f} s), fwd+bwd {tok / t2 / 1e6:.3g} M tok/s ({t2 * 1e3:.1f} ms; first {c2:.2f} s)"))
            print(rows[-1])
    print(append_results("GLA forms vs causal softmax attention (B*H = 8, d_k = d_v = 64, normalizer 16)", rows,
                         "Median of repeats after a first (compiling) call. Tokens/s = B*H*L / time."))


if __name__ == "__main__":
    main((512, 1024, 2048, 4096, 8192) if "--full" in sys.argv else (512, 1024, 2048))
