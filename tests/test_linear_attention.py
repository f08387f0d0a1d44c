"""Gated linear attention and LightNet: every form against an independent float64 NumPy recurrence
(tests/reference/linear_attention.py), gradients against autodiff of the recurrence, the closed-form gate gradient,
the float32 stability boundary predicted from the gates alone, special cases, and LightNet's identities.

The statistic is fla's: rel-RMS = ||x - ref||_rms / ||ref||_rms. Tolerances: float32 <= 1e-5 (a sum of L terms
rounded at 6e-8 each; measured 5e-8 .. 8e-7 for L = 2048), float64 <= 1e-12 (measured ~1e-15)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import lightnet as ln
from sims import linear_attention as la
from tests.reference import linear_attention as ref
from theory import linear_attention as th

FORMS = [("recurrent", {}), ("parallel", {}), ("naive_parallel", {}), ("chunk", {"chunk_size": 64}),
         ("chunk", {"chunk_size": 64, "sub_chunk_size": 16}), ("chunk", {"chunk_size": 16, "sub_chunk_size": 4}),
         ("chunk", {"chunk_size": 16, "sub_chunk_size": 8})]
IDS = ["recurrent", "parallel", "naive_parallel", "chunk64", "chunk64/16", "chunk16/4", "chunk16/8"]


def relrms(x, r):
    x, r = np.asarray(x, np.float64), np.asarray(r, np.float64)
    return float(np.sqrt(np.mean((x - r) ** 2)) / np.sqrt(np.mean(r**2)))


def inputs(L, dk, dv, normalizer, dtype=jnp.float32, seed=0, lead=()):
    ks = jax.random.split(jax.random.key(seed), 5)
    q = jax.random.uniform(ks[0], lead + (L, dk), dtype)  # fla's test inputs: U(0, 1)
    k = jax.random.uniform(ks[1], lead + (L, dk), dtype)
    v = jax.random.uniform(ks[2], lead + (L, dv), dtype)
    g = la.fla_gates(ks[3], lead + (L, dk), normalizer, dtype)
    S0 = jax.random.uniform(ks[4], lead + (dk, dv), dtype)
    return q, k, v, g, S0


# ---------------------------------------------------------------------------------------------------------------
# G1: every form equals the float64 NumPy recurrence (float32 <= 1e-5, float64 <= 1e-12), d_k != d_v
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form, kw", FORMS, ids=IDS)
@pytest.mark.parametrize("normalizer", [16.0, 1.0, 0.1])
def test_every_form_equals_the_numpy_recurrence_float32(form, kw, normalizer):
    q, k, v, g, S0 = inputs(200, 24, 40, normalizer, lead=(2,))  # L not a multiple of 64: padding exercised
    o, S = la.gla(q, k, v, g, form=form, initial_state=S0, **kw)
    if not th.predict_finite(g, form, kw.get("chunk_size"), kw.get("sub_chunk_size")):
        assert not bool(jnp.isfinite(o).all())  # G4: the unstable forms fail exactly where predicted
        return
    for b in range(2):
        ro, rS = ref.gla_recurrence(q[b], k[b], v[b], g[b], S0[b])
        assert relrms(o[b], ro) <= 1e-5 and relrms(S[b], rS) <= 1e-5, (relrms(o[b], ro), relrms(S[b], rS))


_LONG = [f for f in FORMS if f[0] != "naive_parallel"][:4]


@pytest.mark.parametrize("form, kw", [pytest.param(*f, marks=() if f[1].get("sub_chunk_size") else pytest.mark.slow)
                                      for f in _LONG], ids=IDS[:2] + IDS[3:5])
def test_long_sequences_l2048_float32_and_float64(form, kw):
    """L = 2048 at the strongest gate that every stable form survives (normalizer 1 for the matmul chunk: its
    within-chunk decay at C = 64 is ~ -30 > -88.72), float32 and float64."""
    for dtype, tol in ((jnp.float32, 1e-5), (jnp.float64, 1e-12)):
        with jax.enable_x64(dtype == jnp.float64):
            q, k, v, g, _ = inputs(2048, 16, 24, 1.0, dtype, seed=1)
            o, S = la.gla(q, k, v, g, form=form, **kw)
            assert o.dtype == dtype
            ro, rS = ref.gla_recurrence(q, k, v, g)
            assert relrms(o, ro) <= tol and relrms(S, rS) <= tol, (dtype, relrms(o, ro), relrms(S, rS))


def test_float64_every_form_short():
    with jax.enable_x64(True):
        q, k, v, g, S0 = inputs(96, 8, 12, 16.0, jnp.float64, seed=2)
        ro, rS = ref.gla_recurrence(q, k, v, g, S0)
        for form, kw in FORMS:
            o, S = la.gla(q, k, v, g, form=form, initial_state=S0, **kw)
            assert relrms(o, ro) <= 1e-12 and relrms(S, rS) <= 1e-12, (form, kw)


# ---------------------------------------------------------------------------------------------------------------
# G2, G3: gradients
# ---------------------------------------------------------------------------------------------------------------
def _grads(form, q, k, v, g, W, **kw):
    loss = lambda q, k, v, g: jnp.sum(W * la.gla(q, k, v, g, form=form, **kw)[0])
    return jax.grad(loss, argnums=(0, 1, 2, 3))(q, k, v, g)


@pytest.mark.parametrize("form, kw", [("chunk", {"chunk_size": 64, "sub_chunk_size": 16}),
                                      ("chunk", {"chunk_size": 32}), ("parallel", {})],
                         ids=["chunk64/16", "chunk32", "parallel"])
def test_gradients_equal_autodiff_of_the_recurrence(form, kw):
    """G2: dq, dk, dv, dlog_alpha of the chunk form equal autodiff of the recurrence, <= 1e-5 in float32 (measured
    2e-7 .. 1.3e-6 at L = 512)."""
    q, k, v, g, _ = inputs(256, 16, 24, 1.0, seed=3)
    W = jax.random.normal(jax.random.key(9), (256, 24))
    want = _grads("recurrent", q, k, v, g, W)
    got = _grads(form, q, k, v, g, W, **kw)
    for name, a, b in zip("q k v log_alpha".split(), got, want):
        assert relrms(a, b) <= 1e-5, (name, relrms(a, b))


def test_vmapped_gradient_with_two_sub_chunks_runs_and_equals_the_recurrence():
    """``jit(vmap(grad))`` over a seed-like leading axis with C / c = 2 sub-chunks (the shared transformer's setting
    at L = 16) equals the recurrence's gradient per example (<= 1e-5, float32, as G2). Guards the two-sub-chunk
    branch of ``_intra_secondary``: the general batched einsum crashed XLA's CPU backend here (jaxlib 0.10.2,
    segmentation fault in a YNNPACK fusion; 3 or 4 sub-chunks ran), which kills this test's worker if it returns."""
    q, k, v, g, _ = inputs(16, 64, 64, 16.0, seed=4, lead=(3, 2))
    W = jax.random.normal(jax.random.key(8), (3, 2, 16, 64))
    got = jax.jit(jax.vmap(lambda *a: _grads("chunk", *a, chunk_size=16, sub_chunk_size=8)))(q, k, v, g, W)
    want = jax.vmap(lambda *a: _grads("recurrent", *a))(q, k, v, g, W)
    for name, a, b in zip("q k v log_alpha".split(), got, want):
        assert relrms(a, b) <= 1e-5, (name, relrms(a, b))


@pytest.mark.parametrize("form, kw", FORMS, ids=IDS)
@pytest.mark.parametrize("values", ["identity", "random"])
def test_every_form_under_jit_without_an_initial_state(form, kw, values):
    """Compiled (``jit``) with no initial state, at the transformer's shape (batch 64, 1 head, L 16, d_k 64; values
    the identity, which gives A itself, or random), every form equals the float64 NumPy recurrence (<= 1e-5,
    float32, as G1). Guards against XLA's CPU backend (jaxlib 0.10.2, YNNPACK fusions) computing the
    initial-state term from a zeros constant as garbage (errors ~1e27 under jit, right eagerly): the forms now
    leave that term out when there is no state; the GLA transformer's attention maps and BOS-forced evaluation
    read it."""
    q, k, _, g, _ = inputs(16, 64, 16, 16.0, seed=7, lead=(64, 1))
    v = jnp.broadcast_to(jnp.eye(16), (64, 1, 16, 16)) if values == "identity" else inputs(16, 64, 16, 16.0, seed=8,
                                                                                        lead=(64, 1))[2]
    o, S = jax.jit(lambda *a: la.gla(*a, form=form, **kw))(q, k, v, g)
    if not th.predict_finite(g, form, kw.get("chunk_size"), kw.get("sub_chunk_size")):
        return  # the unstable forms' failure is G1's test
    for b in (0, 31, 63):
        ro, rS = ref.gla_recurrence(q[b, 0], k[b, 0], v[b, 0], g[b, 0])
        assert relrms(o[b, 0], ro) <= 1e-5 and relrms(S[b, 0], rS) <= 1e-5, (b, relrms(o[b, 0], ro))


def test_closed_form_gate_gradient_equals_autodiff():
    """G3 (Sec. 4.3): d log b_t = q_t * dq_t - k_t * dk_t and d log alpha_t = sum_{i >= t} d log b_i, with zero
    initial state; float64, rel-RMS <= 1e-10 (measured 5e-15). The App. sign (opposite) fails by O(1)."""
    with jax.enable_x64(True):
        q, k, v, g, _ = inputs(300, 8, 12, 1.0, jnp.float64, seed=4)
        W = jax.random.normal(jax.random.key(5), (300, 12), jnp.float64)
        dq, dk, _, dg = _grads("recurrent", q, k, v, g, W)
        closed = np.cumsum((np.asarray(q * dq - k * dk))[::-1], axis=0)[::-1]
        assert relrms(closed, dg) <= 1e-10
        wrong = np.cumsum((np.asarray(k * dk - q * dq))[::-1], axis=0)[::-1]
        assert relrms(wrong, dg) > 1.0


# ---------------------------------------------------------------------------------------------------------------
# G4: the float32 stability boundary, predicted from the gates alone, then asserted
# ---------------------------------------------------------------------------------------------------------------
def test_stability_boundary_is_predicted_from_the_gates_alone():
    """On a grid of (normalizer, chunk size): predicted finite/non-finite from min cumulative log gate (naive) or
    within-chunk cumulative log decay (chunk without sub-chunking); the log-space and secondary-chunked forms are
    finite everywhere. Settings within log(d_k L) of the boundary are marginal and skipped (none on this grid)."""
    L, dk, dv = 256, 16, 16
    checked = 0
    for nrm in (32.0, 16.0, 4.0, 1.0, 0.3, 0.1):
        q, k, v, g, _ = inputs(L, dk, dv, nrm, seed=6)
        for form, C, c in [("naive_parallel", None, None), ("chunk", 16, None), ("chunk", 64, None),
                           ("chunk", 128, None), ("chunk", 128, 16), ("parallel", None, None)]:
            kw = {} if C is None else {"chunk_size": C, "sub_chunk_size": c}
            margin = th.boundary_margin(g, form, C) if c is None else np.inf
            if abs(margin) < np.log(dk * L):
                continue
            o, _ = la.gla(q, k, v, g, form=form, **kw)
            assert bool(jnp.isfinite(o).all()) == th.predict_finite(g, form, C, c), (nrm, form, C, c, margin)
            checked += 1
    assert checked >= 30
    # both outcomes occur on the grid (the test could fail either way)
    g1 = inputs(L, dk, dv, 0.3, seed=6)[3]  # mean log gate -0.48 / 0.3: within-chunk decay -26 at C = 16, -103 at 64
    assert th.predict_finite(g1, "chunk", 16) and not th.predict_finite(g1, "chunk", 64)
    assert not th.predict_finite(g1, "naive_parallel")
    assert th.predict_finite(inputs(L, dk, dv, 32.0)[3], "naive_parallel")


# ---------------------------------------------------------------------------------------------------------------
# G5: special cases
# ---------------------------------------------------------------------------------------------------------------
def test_unit_gates_are_linear_attention_and_scalar_gates_are_retnet():
    q, k, v, _, _ = inputs(64, 8, 8, 1.0, seed=7)
    L = 64
    M = np.tril(np.ones((L, L)))
    o, _ = la.gla(q, k, v, jnp.zeros_like(q), form="chunk", chunk_size=16)
    lin = (np.asarray(q, np.float64) @ np.asarray(k, np.float64).T * M) @ np.asarray(v, np.float64)  # Eq. (1)
    assert relrms(o, lin) <= 1e-6
    gam = 0.9
    o, _ = la.gla(q, k, v, jnp.full_like(q, np.log(gam)), form="chunk", chunk_size=16, sub_chunk_size=4)
    t = np.arange(L)
    D = np.where(t[:, None] >= t[None, :], gam ** (t[:, None] - t[None, :]).clip(0), 0.0)  # RetNet's decay mask
    ret = (np.asarray(q, np.float64) @ np.asarray(k, np.float64).T * D) @ np.asarray(v, np.float64)
    assert relrms(o, ret) <= 1e-6


def test_chunk_size_l_is_the_parallel_form_and_1_the_recurrent():
    q, k, v, g, S0 = inputs(64, 8, 8, 4.0, seed=8)
    full, _ = la.gla(q, k, v, g, form="chunk", chunk_size=64, sub_chunk_size=64, initial_state=S0)
    par, _ = la.gla(q, k, v, g, form="parallel", initial_state=S0)
    one, _ = la.gla(q, k, v, g, form="chunk", chunk_size=1, initial_state=S0)
    rec, _ = la.gla(q, k, v, g, form="recurrent", initial_state=S0)
    assert relrms(full, par) <= 1e-6 and relrms(one, rec) <= 1e-6


@pytest.mark.parametrize("form, kw", FORMS[:2] + FORMS[3:5], ids=IDS[:2] + IDS[3:5])
def test_state_passing_equals_one_run(form, kw):
    """Running [x1; x2] equals running x2 from the final state of x1 (fla issue #20: packed sequences)."""
    q, k, v, g, _ = inputs(160, 8, 12, 4.0, seed=9)
    o, S = la.gla(q, k, v, g, form=form, **kw)
    o1, S1 = la.gla(q[:96], k[:96], v[:96], g[:96], form=form, **kw)
    o2, S2 = la.gla(q[96:], k[96:], v[96:], g[96:], form=form, initial_state=S1, **kw)
    assert relrms(jnp.concatenate([o1, o2]), o) <= 1e-6 and relrms(S2, S) <= 1e-6


# ---------------------------------------------------------------------------------------------------------------
# G6, G7: FLOPs, parameter count, zero-logit gate
# ---------------------------------------------------------------------------------------------------------------
def test_flop_crossover_and_counts():
    assert th.chunk_parallel_crossover(64, 64, 64) == 256.0
    for L in (128, 255, 257, 4096):
        chunk, par = th.flops("chunk", L, 64, 64, 64), th.flops("parallel", L, 64, 64)
        assert (chunk < par) == (L > 256)
    assert th.flops("recurrent", 10, 3, 5) == 5 * 10 * 3 * 5


def test_gla_layer_parameter_count_and_zero_logit_gate():
    for d in (16, 64, 256):
        p = la.init_gla_layer(jax.random.key(0), d)
        n = sum(x.size for x in jax.tree.leaves(p))
        assert n == th.gla_layer_params(d) == 4 * d * d + 25.5 * d
    assert abs(th.zero_logit_gate() - 0.9576) < 5e-5 and abs(th.gate_memory(th.zero_logit_gate()) - 23.6) < 0.05
    p = la.init_gla_layer(jax.random.key(0), 32)
    x = jnp.zeros((10, 32))
    _, log_alpha = la.gla_layer(p._replace(bg=jnp.zeros(16)), x, n_heads=2)
    assert np.allclose(np.exp(np.asarray(log_alpha)), th.zero_logit_gate(), rtol=1e-6)


def test_gla_layer_forms_agree_and_are_causal():
    p = la.init_gla_layer(jax.random.key(1), 32)
    x = jax.random.normal(jax.random.key(2), (3, 100, 32))
    y, _ = la.gla_layer(p, x, n_heads=4, form="chunk", chunk_size=32, sub_chunk_size=8)
    yr, _ = la.gla_layer(p, x, n_heads=4, form="recurrent")
    assert y.shape == x.shape and relrms(y, yr) <= 1e-5
    # the future does not leak: outputs before position 60 are unchanged to float rounding (the projections'
    # matmuls may round rows differently when other rows change), those after change by O(1)
    y2, _ = la.gla_layer(p, x.at[:, 60:].set(0.0), n_heads=4)
    assert relrms(y2[:, :60], y[:, :60]) <= 1e-6 and relrms(y2[:, 60:], y[:, 60:]) > 0.1


# ---------------------------------------------------------------------------------------------------------------
# LightNet
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["recurrent", "parallel", "chunk"])
def test_lightnet_causal_equals_the_prefix_softmax_average(form):
    """L1: the GLA-form mixer (lambda_t = u_{t-1}/u_t, key delta_t/u_t) equals the direct prefix softmax average
    per channel (measured 2.3e-7)."""
    ks = jax.random.split(jax.random.key(10), 3)
    q, k, v = (jax.random.normal(kk, (200, d)) for kk, d in zip(ks, (16, 16, 8)))
    o = ln.lightnet_causal(q, k, v, form=form, chunk_size=64)
    assert relrms(o, ref.prefix_softmax_average(q, k, v)) <= 1e-5


def test_additive_state_is_order_free_and_multiplicative_is_not():
    """L2: the additive final state is the same for every flattening of a 16 x 16 grid (<= 1e-5; measured
    6e-7) and equals the global softmax state; L3: a multiplicative decay (lambda = 0.9) is order-dependent:
    relative difference >= 0.1 from the row-major state for every other order (measured 0.8 .. 1.4)."""
    ks = jax.random.split(jax.random.key(11), 3)
    k, v = jax.random.normal(ks[0], (256, 32)), jax.random.normal(ks[1], (256, 32))
    orders = ln.scan_orders(16, 16, ks[2])
    assert set(orders) == {"row-major", "column-major", "snake", "random"}
    _, Sg = ln.lightnet_global(jnp.zeros_like(k), k, v)
    rm = ln.scan_state(k, v, orders["row-major"], decay="multiplicative", lam=0.9)
    for name, order in orders.items():
        assert relrms(ln.scan_state(k, v, order, decay="additive"), Sg) <= 1e-5, name
        if name != "row-major":
            Sm = ln.scan_state(k, v, order, decay="multiplicative", lam=0.9)
            assert float(jnp.linalg.norm(Sm - rm) / jnp.linalg.norm(rm)) >= 0.1, name


def test_additive_decay_saturates_as_one_over_t():
    """L4: E[1 - lambda_t] = 1/t exactly for exchangeable keys. Statistic: mean of t (1 - lambda_t) over 256
    channels x 16 seeds (N(0, 1) keys, delta = e^k lognormal), within 4 SE of 1 at t = 2, 17, 257, 4096."""
    k = jax.random.normal(jax.random.key(12), (16, 4096, 256))
    for t in (2, 17, 257, 4096):  # 1 - lambda_t = e^{k_t} / sum_{s <= t} e^{k_s}, at the four t only
        one_minus_lam = np.asarray(jnp.exp(k[:, t - 1] - jax.nn.logsumexp(k[:, :t], axis=1)), np.float64)
        x = one_minus_lam / th.additive_decay_mean(t)
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert abs(x.mean() - 1.0) <= 4 * se, (t, x.mean(), se)


def test_md_lrpe_is_relative_and_matches_the_closed_form():
    """L5: scores <phi(q_s), phi(k_t)> are unchanged by a common shift of both multi-indices (float32 rel <= 1e-5)
    and equal sum_c q_c k_c cos(theta_c (s - t)_{a(c)}) from theory (independent closed form)."""
    ks = jax.random.split(jax.random.key(13), 3)
    d, grid = 12, (5, 7)
    x = jax.random.normal(ks[0], (35, d))
    y = jax.random.normal(ks[1], (35, d))
    theta = 1.0 / (10.0 ** (jnp.arange(6) / 6))
    idx = np.stack(np.unravel_index(np.arange(35), grid), axis=1)
    S = ln.md_lrpe(x, idx, theta) @ ln.md_lrpe(y, idx, theta).T
    S2 = ln.md_lrpe(x, idx + np.array([3, -11]), theta) @ ln.md_lrpe(y, idx + np.array([3, -11]), theta).T
    assert relrms(S2, S) <= 1e-5
    for s, t in [(0, 0), (3, 17), (34, 2), (20, 20)]:
        want = th.lrpe_score(np.asarray(x[s]), np.asarray(y[t]), idx[s] - idx[t], np.asarray(theta))
        assert abs(float(S[s, t]) - want) <= 1e-5 * max(1.0, abs(want))


def test_md_tpe_equals_explicit_toeplitz_matmuls():
    """L6: per axis, the mixing is y = T x with T[t, s] = c lambda^(t - s) (t >= s) along that axis; MD-TPE is
    the sum over axes (float32 rel <= 1e-5)."""
    grid, d = (6, 9), 4
    x = jax.random.normal(jax.random.key(14), (54, d))
    lam, coef = (0.7, 0.4), (1.3, -0.5)
    xg = np.asarray(x, np.float64).reshape(6, 9, d)
    y0 = np.einsum("ts,swc->twc", ref.toeplitz_causal(6, lam[0], coef[0]), xg)
    y1 = np.einsum("ts,hsc->htc", ref.toeplitz_causal(9, lam[1], coef[1]), xg)
    assert relrms(ln.tpe_axis(x, grid, 0, lam[0], coef[0]), y0.reshape(54, d)) <= 1e-5
    assert relrms(ln.md_tpe(x, grid, lam, coef), (y0 + y1).reshape(54, d)) <= 1e-5


# ---------------------------------------------------------------------------------------------------------------
# bad input, determinism, no recompilation
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, needle", [
    (lambda a: {**a, "form": "fast"}, "form"),
    (lambda a: {**a, "sub_chunk_size": 5}, "sub_chunk_size"),
    (lambda a: {**a, "chunk_size": 0}, "chunk_size"),
    (lambda a: {**a, "log_alpha": a["log_alpha"].at[3, 2].set(0.1)}, "log_alpha"),
    (lambda a: {**a, "log_alpha": a["log_alpha"].at[3, 2].set(jnp.nan)}, "log_alpha"),
    (lambda a: {**a, "k": a["k"][:, :4]}, "same shape"),
    (lambda a: {**a, "v": a["v"][:10]}, "v must have shape"),
    (lambda a: {**a, "q": a["q"].astype(jnp.bfloat16)}, "one dtype"),
    (lambda a: {**a, "initial_state": jnp.zeros((3, 3))}, "initial_state"),
])
def test_bad_input_is_a_value_error_naming_the_parameter(change, needle):
    q, k, v, g, _ = inputs(32, 8, 6, 1.0)
    args = change({"q": q, "k": k, "v": v, "log_alpha": g, "form": "chunk", "chunk_size": 16, "sub_chunk_size": 4,
                   "initial_state": None})
    with pytest.raises(ValueError, match=needle):
        la.gla(args.pop("q"), args.pop("k"), args.pop("v"), args.pop("log_alpha"), **args)


def test_grid_shape_must_match_and_lightnet_helpers_refuse_bad_input():
    x = jnp.zeros((10, 4))
    with pytest.raises(ValueError, match="grid"):
        ln.tpe_axis(x, (3, 3), 0, 0.5, 1.0)
    with pytest.raises(ValueError, match="index"):
        ln.md_lrpe(x, np.zeros((9, 2), int), jnp.ones(2))
    with pytest.raises(ValueError, match="decay"):
        ln.scan_state(x, x, np.arange(10), decay="both")
    with pytest.raises(ValueError, match="normalizer"):
        la.fla_gates(jax.random.key(0), (4, 4), 0.0)


def test_deterministic_and_no_recompilation():
    q, k, v, g, _ = inputs(128, 8, 8, 1.0)
    f = jax.jit(lambda q, k, v, g: la.gla(q, k, v, g, form="chunk", chunk_size=32, sub_chunk_size=8))
    a = f(q, k, v, g)
    b = f(q, k, v, g)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    with jax.log_compiles():
        pass
    n0 = f._cache_size()
    f(q * 2, k, v, g * 0.5)  # new values, same shapes: no new trace
    assert f._cache_size() == n0 == 1


# ---------------------------------------------------------------------------------------------------------------
# the "gla" token mixer of the shared transformer, and the figures' claims at a tiny size
# ---------------------------------------------------------------------------------------------------------------
def test_transformer_gla_mixer_paths_agree_and_are_causal():
    """The mixer's output by the chunk form equals A @ v with A from the log-space parallel form (one-hot values),
    in value and gradient; the first positions do not see later tokens."""
    from sims.transformer import TransformerConfig, apply, init

    cfg = TransformerConfig(vocab=11, max_len=24, d_model=16, n_heads=2, attention="gla")
    p = init(jax.random.key(0), cfg)
    x = jax.random.randint(jax.random.key(1), (3, 24), 0, 11)
    none = jnp.zeros(x.shape, bool)  # force_bos with no query forced: the A @ v path
    la_, inter = apply(p, x, cfg)
    lb, _ = apply(p, x, cfg, force_bos=none)
    assert relrms(la_, lb) <= 1e-5
    w = inter["attn"][0]
    assert np.allclose(np.asarray(w.sum(-1)), 1.0, atol=1e-5) and float(jnp.triu(w[0, 0], 1).max()) == 0.0
    lc, _ = apply(p, x.at[:, 12:].set(0), cfg)
    assert relrms(lc[:, :12], la_[:, :12]) <= 1e-5
