# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Radial attention (Li et al. 2025)
# The static mask of Eq. (4): frame distance 2^r keeps a spatial window s / 2^r. Its exact count is a sum over
# frame distances (`theory.radial_attention.nnz`), O(n log n) at fixed tokens per frame; the authors' block mask
# (`sims.radial_attention.block_mask`) is what their kernels run.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from sims import radial_attention as rs
from theory import radial_attention as ra

SMALL = os.environ.get("SUITE_SMALL") == "1"
m = ra.mask(12, 16, sink=True)
print("nnz", int(m.sum()), "closed form", ra.nnz(12, 16, sink=True))
plt.imshow(m, cmap="Greys")

# %%
frames = 2 ** np.arange(3, 9 if SMALL else 12)
for s in (64, 256):
    print(s, [round(ra.density(int(f), s), 4) for f in frames])

# %% [markdown]
# The authors' block mask for Wan 2.1 at 768 x 1280, 69 frames (issue #61 printed sparsity 0.7366323471069336),
# and block-sparse attention by gathering the kept K/V blocks, equal to dense masked attention.

# %%
f, s = rs.wan_geometry(768, 1280, 69)
print("sparsity", rs.sparsity(rs.block_mask(f, s, decay_factor=0.2, revision="3f66894")))
bm = rs.block_mask(8, 48, decay_factor=0.5, block_size=16)
q, k, v = (jax.random.normal(kk, (1, 8 * 48, 2, 8)) for kk in jax.random.split(jax.random.key(0), 3))
dense = rs.attention_dense_masked(q, k, v, rs.token_mask_from_blocks(bm, 16))
print("max |gather - dense|", float(abs(rs.attention_block_sparse(q, k, v, bm, 16) - dense).max()))
