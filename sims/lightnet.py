r"""LightNet's additive decay ("You Only Scan Once", Qin et al., arXiv 2405.21022) as a linear recurrence over a
matrix state, computed by :func:`sims.linear_attention.gla`.

LightNet (the paper body was not retrievable; reconstructed from the fla / xmixers code and the ICLR reviews, see
``../shared/research/linear_attention.md`` section 2): additive decay :math:`u_t = u_{t-1} + \delta_t`,
:math:`\delta = \exp(k)`, :math:`\lambda_t = u_{t-1}/u_t`, key :math:`\delta_t / u_t`, so that
:math:`S_t = \sum_{s \le t} \mathrm{softmax}_{s \le t}(k_{\cdot c}) v_s` per key channel :math:`c`
(:func:`lightnet_causal`); its global, order-free form over any grid (:func:`lightnet_global`); MD-LRPE
(:func:`md_lrpe`) and the mixing part of MD-TPE (:func:`tpe_axis`, :func:`md_tpe`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from sims.linear_attention import gla

__all__ = ["lightnet_causal", "additive_decay", "lightnet_global", "scan_state", "scan_orders", "weight_map", "md_lrpe",
           "tpe_axis", "md_tpe"]


def lightnet_causal(q, k, v, *, form: str = "recurrent", chunk_size: int = 64, sub_chunk_size: int | None = 16):
    r"""LightNet's causal token mixer in GLA form: :math:`z_t = \log \sum_{s \le t} e^{k_s}` (per channel),
    :math:`\tilde k_t = e^{k_t - z_t}`, :math:`\log\lambda_t = z_{t-1} - z_t`, then :func:`gla`, so that
    :math:`o_t = q_t \sum_{s \le t} \mathrm{softmax}_{s \le t}(k)^\top v_s`. The first gate multiplies the zero
    initial state only; it is set to 1 (log 0) so that the log-space forms never see -inf - (-inf)."""
    kt, log_lam = additive_decay(k)
    return gla(q, kt, v, log_lam, form=form, chunk_size=chunk_size, sub_chunk_size=sub_chunk_size)[0]


def additive_decay(k):
    """(keys delta_t / u_t, log lambda_t = z_{t-1} - z_t) of the additive decay along axis -2, z = log u."""
    z = jax.lax.cumlogsumexp(k, axis=k.ndim - 2)
    zprev = jnp.concatenate([z[..., :1, :], z[..., :-1, :]], axis=-2)
    return jnp.exp(k - z), jnp.minimum(zprev - z, 0.0)  # min: <= 0 exactly; guards cumlogsumexp's rounding


def lightnet_global(q, k, v):
    r"""The additive decay's global form over any set of positions (a flattened grid of any dimension):
    :math:`S = \sum_s \mathrm{softmax}_s(k)^\top v_s` per key channel, :math:`o_t = q_t S`: one pass, no order.
    ``q, k``: (..., N, d_k), ``v``: (..., N, d_v). Returns ``(o, S)``."""
    w = jax.nn.softmax(k, axis=-2)
    S = jnp.einsum("...nc,...nv->...cv", w, v)
    return jnp.einsum("...nc,...cv->...nv", q, S), S


def scan_state(k, v, order, *, decay: str = "additive", lam: float = 0.9):
    r"""The final state of ONE scan over the positions in ``order`` (a permutation of range(N)).

    ``"additive"`` (LightNet): :math:`S \leftarrow \lambda_t S + \beta_t k\text{-weights}`, normalised so that
    :math:`S = \sum_{s} e^{k_s}/u \cdot v_s`: a running softmax, the same for every order (L2).
    ``"multiplicative"``: :math:`S \leftarrow \lambda S + (1 - \lambda) k_s^\top v_s` with constant ``lam``:
    recent positions weigh more, so the result depends on the order (L3)."""
    if decay not in ("additive", "multiplicative"):
        raise ValueError(f"decay must be 'additive' or 'multiplicative', got {decay!r}")
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam must be in (0, 1), got {lam}")
    order = jnp.asarray(order)
    ks, vs = k[..., order, :], v[..., order, :]
    if decay == "additive":
        kt, g = additive_decay(ks)
    else:
        kt = (1.0 - lam) * ks
        g = jnp.full_like(ks, math.log(lam))
    _, S = gla(jnp.zeros_like(ks), kt, vs, g, form="recurrent")  # the final state of the recurrence
    return S


def scan_orders(h: int, w: int, key=None) -> dict[str, np.ndarray]:
    """Flattenings of an (h, w) grid: row-major, column-major, snake (boustrophedon) and, with a key, random."""
    idx = np.arange(h * w).reshape(h, w)
    snake = np.concatenate([r if i % 2 == 0 else r[::-1] for i, r in enumerate(idx)])
    out = {"row-major": idx.reshape(-1), "column-major": idx.T.reshape(-1), "snake": snake}
    if key is not None:
        out["random"] = np.asarray(jax.random.permutation(key, h * w))
    return out


def weight_map(h: int, w: int, centre: tuple[int, int], *, kind: str, lam: float = 0.9, k=None):
    r"""How much each grid position contributes to the centre token's state (an (h, w) map summing to 1):
    ``"additive"``: :math:`\mathrm{softmax}_s(k_s)` over ALL positions (mean over key channels): no direction;
    ``"multiplicative"``: one row-major causal scan, weight :math:`(1-\lambda)\lambda^{t-s}` for positions before
    the centre; ``"four-direction"``: the mean of four such scans (row-major and column-major, both ways)."""
    n = h * w
    t_flat = centre[0] * w + centre[1]
    if kind == "additive":
        if k is None:
            raise ValueError("kind='additive' needs keys k of shape (h*w, d_k)")
        return np.asarray(jax.nn.softmax(k, axis=0).mean(-1)).reshape(h, w)

    def one(order):
        pos = np.empty(n, int)
        pos[order] = np.arange(n)
        dt = pos[t_flat] - pos
        wts = np.where(dt >= 0, (1 - lam) * lam ** np.maximum(dt, 0), 0.0)
        return wts / wts.sum()

    o = scan_orders(h, w)
    if kind == "multiplicative":
        return one(o["row-major"]).reshape(h, w)
    if kind == "four-direction":
        ws = [one(o["row-major"]), one(o["row-major"][::-1]), one(o["column-major"]), one(o["column-major"][::-1])]
        return np.mean(ws, axis=0).reshape(h, w)
    raise ValueError(f"kind must be 'additive', 'multiplicative' or 'four-direction', got {kind!r}")


def md_lrpe(x, index, theta):
    r"""MD-LRPE (cosine form, xopes ``ops/lrpe/cosine/_md``): multi-index :math:`s = (s_1..s_m)`,
    :math:`\Theta_s = \mathrm{concat}_j(s_j \theta)[:d]`, :math:`\phi(x_s) = [x_s \odot \cos\Theta_s,
    x_s \odot \sin\Theta_s] \in R^{2d}`, so that :math:`\langle\phi(q_s), \phi(k_t)\rangle = \sum_c q_c k_c
    \cos(\Theta_{s,c} - \Theta_{t,c})` depends on :math:`s - t` only. ``x``: (..., N, d); ``index``: (N, m)
    integers; ``theta``: (ceil(d / m),)."""
    index = jnp.asarray(index)
    d = x.shape[-1]
    if index.ndim != 2 or index.shape[0] != x.shape[-2]:
        raise ValueError(f"index must have shape (N, m) with N = {x.shape[-2]} positions, got {index.shape}")
    m = index.shape[1]
    if theta.shape != (-(-d // m),):
        raise ValueError(f"theta must have shape ({-(-d // m)},) = (ceil(d / m),), got {theta.shape}")
    Th = jnp.concatenate([index[:, j, None] * theta[None, :] for j in range(m)], axis=-1)[:, :d].astype(x.dtype)
    return jnp.concatenate([x * jnp.cos(Th), x * jnp.sin(Th)], axis=-1)


def tpe_axis(x, grid: tuple[int, ...], axis: int, lam, coef):
    r"""The mixing part of TPE along one grid axis (xmixers ``pes/tpe.py``): :math:`y_t = \sum_{s \le t}
    c \lambda^{t-s} x_s` along ``axis`` of the grid (a causal Toeplitz / EMA mixer), per channel ``lam`` in
    (0, 1) and ``coef`` (shape (d,) or scalar). ``x``: (..., N, d) with N = prod(grid)."""
    grid = tuple(int(g) for g in grid)
    if int(np.prod(grid)) != x.shape[-2]:
        raise ValueError(f"grid {grid} has {int(np.prod(grid))} positions but x has {x.shape[-2]}")
    if not 0 <= axis < len(grid):
        raise ValueError(f"axis must be in [0, {len(grid)}), got {axis}")
    lead = x.shape[:-2]
    xg = x.reshape(lead + grid + (x.shape[-1],))
    ax = len(lead) + axis
    xs = jnp.moveaxis(xg, ax, 0)

    def step(y, xt):
        y = lam * y + xt
        return y, y

    _, ys = jax.lax.scan(step, jnp.zeros_like(xs[0]), xs)
    return (coef * jnp.moveaxis(ys, 0, ax)).reshape(x.shape)


def md_tpe(x, grid: tuple[int, ...], lam, coef):
    """MD-TPE's mixing: the sum over grid axes of :func:`tpe_axis` (``lam``, ``coef``: one entry per axis)."""
    if len(lam) != len(grid) or len(coef) != len(grid):
        raise ValueError(f"lam and coef need one entry per grid axis ({len(grid)}), got {len(lam)} and {len(coef)}")
    return sum(tpe_axis(x, grid, a, lam[a], coef[a]) for a in range(len(grid)))
