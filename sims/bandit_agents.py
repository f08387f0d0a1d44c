"""The code paths of the bandit agents: pure ``(init, act, update)`` triples (:class:`Agent`) run inside the one
``lax.scan`` over rounds of :func:`sims.bandits.make_run`; ``p`` is one algorithm's row of parameters (arrays, from
:func:`sims.bandit_algorithms.algorithm_params`), ``c`` the instance's arrays, so the algorithms that share a path
are one compiled call vmapped over them (:data:`PATHS`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Agent", "PATHS", "TIE_RTOL"]

_BIG = 1e30  # AR2's "not yet" (the authors' np.inf): finite, so the sweep's divergence check stays meaningful


class Agent(NamedTuple):
    init: Callable  # (key, p, ctx) -> state
    act: Callable  # (state, t, u01, p, ctx, hp) -> (state, arm index, action vector)
    update: Callable  # (state, u, y, t, p, ctx) -> state


TIE_RTOL = 1e-12  # UCB scores this close (relative) are one tie: rounding noise, not information


def _ucb(arms, h, M, beta):
    """argmax_k h^T a_k + beta sqrt(a_k^T M a_k), ties to the lowest index as np.argmax. Permuted arms give
    mathematically equal scores (e.g. the synthetic instance's early rounds); scores within TIE_RTOL of the
    maximum count as tied, so the choice does not depend on the order of float operations."""
    quad = jnp.einsum("kd,de,ke->k", arms, M, arms)
    score = arms @ h + beta * jnp.sqrt(jnp.maximum(quad, 0.0))
    top = jnp.max(score)
    return jnp.argmax(score >= top - TIE_RTOL * jnp.abs(top))


class LinState(NamedTuple):
    V_inv: jax.Array
    b: jax.Array
    h: jax.Array
    arm: jax.Array


def _lin_init(key, p, c):
    d = c["arms"].shape[1]
    a0 = jax.random.randint(key, (), 0, c["arms"].shape[0])
    dt = c["arms"].dtype
    return LinState(jnp.eye(d, dtype=dt) / p["lam"], jnp.zeros(d, dt), jnp.zeros(d, dt), a0)


def _lin_act(s, t, u01, p, c, hp):
    arms = c["arms"]
    d = arms.shape[1]
    tf = t.astype(arms.dtype)
    x = tf * c["U"] ** 2 / (d * p["lam"])
    x = jnp.where(p["disc"] > 0, x * (1 - p["gamma"] ** (2 * tf)) / (1 - p["gamma"] ** 2), x)
    inner = p["L"] + d / 2 * jnp.log(1 + x)
    beta = p["a0"] + p["a1"] * jnp.log(math.e * (tf + 1)) + jnp.sqrt(2 * p["s2"] * inner)
    ucb = _ucb(arms, s.h, s.V_inv, beta)
    arm = jnp.where((t > 0) & p["is_new"][t], ucb, s.arm).astype(jnp.int32)
    return s._replace(arm=arm), arm, arms[arm]


def _lin_update(s, u, y, t, p, c):
    upd = p["is_end"][t]
    Vu = s.V_inv @ u  # Sherman-Morrison: (V + u u^T)^{-1} = V^{-1} - V^{-1}u u^T V^{-1} / (1 + u^T V^{-1} u)
    V_inv = jnp.where(upd, s.V_inv - jnp.outer(Vu, Vu) / (1.0 + u @ Vu), s.V_inv)
    b = jnp.where(upd, s.b + u * y, s.b)
    return s._replace(V_inv=V_inv, b=b, h=jnp.where(upd, V_inv @ b, s.h))


class DState(NamedTuple):
    V: jax.Array
    V_inv: jax.Array  # inverse of V, computed once per round (in update) and read by act
    Vt: jax.Array
    b: jax.Array
    h: jax.Array
    arm: jax.Array


def _d_init(key, p, c):
    d = c["arms"].shape[1]
    dt = c["arms"].dtype
    a0 = jax.random.randint(key, (), 0, c["arms"].shape[0])
    V = p["lam"] * jnp.eye(d, dtype=dt)
    return DState(V, _spd_inv(V), p["lam"] * jnp.eye(d, dtype=dt), jnp.zeros(d, dt), jnp.zeros(d, dt), a0)


def _spd_inv(M):
    """Inverse of a small symmetric positive-definite matrix by Gauss-Jordan elimination unrolled over its (static)
    size: plain jnp ops, no LAPACK call per round (SPD: no pivoting needed). Float64 agrees with np.linalg.inv to
    ~1e-15 relative for the well-conditioned Gram matrices here."""
    d = M.shape[0]
    A = jnp.concatenate([M, jnp.eye(d, dtype=M.dtype)], axis=1)
    for k in range(d):
        A = A.at[k].set(A[k] / A[k, k])
        A = A - jnp.outer(A[:, k].at[k].set(0.0), A[k])
    return A[:, d:]


def _d_act(s, t, u01, p, c, hp):
    arms = c["arms"]
    d = arms.shape[1]
    tf = t.astype(arms.dtype)
    g = p["gamma"]
    lam_t = g ** (-tf) * p["lam"]
    beta = p["theta"] * jnp.sqrt(lam_t) + p["sigma"] * jnp.sqrt(2 * p["L"] + d * jnp.log(
        1 + 1.5**2 * (1 - g ** (2 * tf)) / (d * lam_t * (1 - g**2))))
    Vi = s.V_inv
    ucb = _ucb(arms, s.h, Vi @ s.Vt @ Vi, beta)
    arm = jnp.where(t > 0, ucb, s.arm).astype(jnp.int32)
    return s._replace(arm=arm), arm, arms[arm]


def _d_update(s, u, y, t, p, c):
    d = u.shape[0]
    g = p["gamma"]
    lam_t = g ** (-t.astype(u.dtype)) * p["lam"]
    eye = jnp.eye(d, dtype=u.dtype)
    V = g * s.V + jnp.outer(u, u) + (1 - g) * lam_t * eye
    Vt = g**2 * s.Vt + jnp.outer(u, u) + (1 - g**2) * lam_t * eye
    b = g * s.b + u * y
    V_inv = _spd_inv(V)
    return s._replace(V=V, V_inv=V_inv, Vt=Vt, b=b, h=V_inv @ b)


class ExpState(NamedTuple):
    G: jax.Array
    p: jax.Array
    acc: jax.Array
    arm: jax.Array


def _e_init(key, p, c):
    K = c["arms"].shape[0]
    dt = c["arms"].dtype
    return ExpState(jnp.zeros(K, dt), jnp.full((K,), 1.0 / K, dt), jnp.zeros((), dt), jnp.zeros((), jnp.int32))


def _e_act(s, t, u01, p, c, hp):
    K = c["arms"].shape[0]
    draw = jnp.minimum(jnp.searchsorted(jnp.cumsum(s.p), u01 * jnp.sum(s.p)), K - 1)  # np.random.choice(p=...)
    arm = jnp.where(t % p["batch"] == 0, draw, s.arm).astype(jnp.int32)
    return s._replace(arm=arm), arm, c["arms"][arm]


def _e_update(s, u, y, t, p, c):
    K = c["arms"].shape[0]
    feed = (t >= p["offset"]) & ((t - p["offset"]) % p["batch"] == 0)
    r = ((s.acc + y) / p["batch"] + 2 * p["M"]) / (4 * p["M"])
    G = s.G.at[s.arm].add(jnp.where(feed, r / s.p[s.arm], 0.0))
    prob = (1 - p["gamma"]) * jax.nn.softmax(p["eta"] * G) + p["gamma"] / K
    return s._replace(G=G, p=jnp.where(feed, prob, s.p), acc=jnp.where(feed, 0.0, s.acc + y))


class AR2State(NamedTuple):
    s: jax.Array  # epoch index (1-based)
    tau: jax.Array  # last round each arm was played (1-based t0), _BIG if never
    tau_trig: jax.Array  # round each arm was triggered, _BIG if not
    est: jax.Array  # estimated rewards, _BIG if never played
    last: jax.Array
    last_last: jax.Array


def _a_init(key, p, c):
    K = c["arms"].shape[0]
    dt = c["arms"].dtype
    big = jnp.full((K,), _BIG, dt)
    return AR2State(jnp.ones((), dt), big, big, big, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _a_act(s, t, u01, p, c, hp):
    K = c["arms"].shape[0]
    t0 = (t + 1).astype(c["arms"].dtype)
    explore_end = K + (s.s - 1) * p["epoch"]
    explore = t0 <= explore_end
    e_arm = jnp.clip(explore_end - t0, 0, K - 1).astype(jnp.int32)
    i_sup = jnp.where(s.est[s.last] >= s.est[s.last_last], s.last, s.last_last)
    a = p["alpha"]
    width = p["c1"] * p["sigma"] * jnp.sqrt(jnp.maximum((a**2 - a ** (2 * (t0 - s.tau + 1))) / (1 - a**2), 0.0))
    idx = jnp.arange(K)
    new_trig = (idx != i_sup) & (s.tau_trig >= _BIG) & (s.est[i_sup] - s.est <= width)
    tau_trig = jnp.where(new_trig, t0, s.tau_trig)
    any_trig = jnp.any(tau_trig < _BIG)
    tied = tau_trig == jnp.min(tau_trig)
    n_tied = jnp.sum(tied)
    j = jnp.minimum(jnp.floor(u01 * n_tied), n_tied - 1)  # np.random.choice over the tied arms, index order
    pick = jnp.argmax(jnp.cumsum(tied) > j)
    d_arm = jnp.where(any_trig & (t0 % 2 == 1), pick, i_sup).astype(jnp.int32)
    arm = jnp.where(explore, e_arm, d_arm)
    tau_trig = jnp.where(explore, s.tau_trig, tau_trig)
    return s._replace(tau_trig=tau_trig, last_last=s.last, last=arm), arm, c["arms"][arm]


def _a_update(s, u, y, t, p, c):
    K = c["arms"].shape[0]
    t0 = (t + 1).astype(c["arms"].dtype)
    a = p["alpha"]
    tau = s.tau.at[s.last].set(t0)
    early = t0 < K + (s.s - 1) * p["epoch"]
    decayed = (s.est * a).at[s.last].set(a * y)
    e_early = s.est.at[s.last].set(a ** (K - t0 + tau[s.last] - 1) * y)
    est = jnp.where(early, e_early, decayed)
    ep = jnp.where(~early & (t0 % p["epoch"] == 0), s.s + 1, s.s)
    return s._replace(tau=tau, est=est, s=ep)


class FixState(NamedTuple):
    arm: jax.Array


def _f_init(key, p, c):
    return FixState(jnp.asarray(p["arm"], jnp.int32))


def _f_act(s, t, u01, p, c, hp):
    arm = jnp.where(p["arm"] == -2, jnp.asarray(hp.get("arm", 0)), p["arm"]).astype(jnp.int32)
    u = jnp.where(p["arm"] == -1, p["u"].astype(c["arms"].dtype), c["arms"][jnp.maximum(arm, 0)])
    return s._replace(arm=arm), arm, u


def _f_update(s, u, y, t, p, c):
    return s


PATHS: Mapping[str, Agent] = MappingProxyType({
    "linear": Agent(_lin_init, _lin_act, _lin_update),
    "dlinucb": Agent(_d_init, _d_act, _d_update),
    "exp3": Agent(_e_init, _e_act, _e_update),
    "ar2": Agent(_a_init, _a_act, _a_update),
    "fixed": Agent(_f_init, _f_act, _f_update),
})
