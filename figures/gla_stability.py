"""GLA's forms in float32: the overflow boundary predicted from the gates alone (G4), and cost vs length (G6)."""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from figures._core import Claim, Figure, Validated, fmt, overrides, param
from sims import linear_attention as la
from theory import linear_attention as th

NAME = "gla_stability"
DESCRIPTION = "GLA forms in float32: error vs gate strength x chunk size, predicted overflow boundary; cost vs L"
PAPER = "Yang et al. 2024, Gated Linear Attention (arXiv 2312.06635), Sec. 4.1-4.3"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    L: int = param(512, ge=16, le=16384, help="sequence length of the stability grid")
    d_k: int = param(16, ge=1, le=1024, help="key dimension")
    d_v: int = param(24, ge=1, le=1024, help="value dimension (!= d_k on purpose)")
    normalizers: tuple[float, ...] = param((64.0, 16.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.1), gt=0, unique=True,
                                           help="gate normalizers (log alpha = logsigmoid(U(0,1)) / normalizer)")
    chunk_sizes: tuple[int, ...] = param((8, 16, 32, 64, 128, 256), ge=1, unique=True,
                                         help="chunk sizes of the matmul chunk form")
    sub_chunk_size: int = param(16, ge=1, help="c of the secondary-chunked form (chunk 64)")
    lengths: tuple[int, ...] = param((256, 512, 1024, 2048), ge=16, unique=True,
                                     help="sequence lengths of the timing panel")
    timing_batch: int = param(8, ge=1, help="batch x heads of the timing panel")
    timing_repeats: int = param(3, ge=1, help="repeats per timing (the median is shown)")
    key_seed: int = param(0, ge=0, help="PRNG seed of the inputs")

    def check(self):
        if 64 % self.sub_chunk_size:
            raise ValueError(f"sub_chunk_size={self.sub_chunk_size} is out of range: must divide 64")


PRESETS = {"quick": Config(),
           "full": Config(L=2048, d_k=64, d_v=64, lengths=(512, 1024, 2048, 4096, 8192), timing_repeats=5)}


def _inputs(cfg, nrm, L, dk, dv, lead=()):
    ks = jax.random.split(jax.random.fold_in(jax.random.key(cfg.key_seed), int(nrm * 1000)), 4)
    q, k = (jax.random.uniform(kk, lead + (L, dk)) for kk in ks[:2])
    v = jax.random.uniform(ks[2], lead + (L, dv))
    return q, k, v, la.fla_gates(ks[3], lead + (L, dk), nrm)


def compute(cfg: Config) -> xr.Dataset:
    nrms, Cs = list(cfg.normalizers), list(cfg.chunk_sizes)
    err_chunk = np.zeros((len(nrms), len(Cs)))
    margin_chunk = np.zeros_like(err_chunk)
    err_naive, margin_naive, err_par, err_sec, min_logb = (np.zeros(len(nrms)) for _ in range(5))
    for i, nrm in enumerate(nrms):
        q, k, v, g = _inputs(cfg, nrm, cfg.L, cfg.d_k, cfg.d_v)
        with jax.enable_x64(True):  # the reference: the recurrence in float64 on the same float32 inputs
            ref, _ = la.gla(*(jnp.asarray(np.asarray(a, np.float64)) for a in (q, k, v, g)), form="recurrent")
            ref = np.asarray(ref)
        for j, C in enumerate(Cs):
            err_chunk[i, j] = la.rel_rms(la.gla(q, k, v, g, form="chunk", chunk_size=C)[0], ref)
            margin_chunk[i, j] = th.boundary_margin(g, "chunk", C)
        err_naive[i] = la.rel_rms(la.gla(q, k, v, g, form="naive_parallel")[0], ref)
        margin_naive[i] = th.boundary_margin(g, "naive_parallel")
        min_logb[i] = th.min_cumulative_log_gate(g)
        err_par[i] = la.rel_rms(la.gla(q, k, v, g, form="parallel")[0], ref)
        err_sec[i] = la.rel_rms(la.gla(q, k, v, g, form="chunk", chunk_size=64, sub_chunk_size=cfg.sub_chunk_size)[0],
                             ref)
    # cost vs L: analytic FLOPs (theory) and measured forward time (this device; median of repeats, compile apart)
    forms = {"recurrent": dict(form="recurrent"), "chunk (C=64, matmul)": dict(form="chunk", chunk_size=64),
             f"chunk (C=64, c={cfg.sub_chunk_size})": dict(form="chunk", chunk_size=64,
                                                          sub_chunk_size=cfg.sub_chunk_size),
             "parallel (log space)": dict(form="parallel")}
    names = list(forms) + ["softmax (dot_product_attention)"]
    times = np.zeros((len(names), len(cfg.lengths)))
    for j, L in enumerate(cfg.lengths):
        q, k, v, g = _inputs(cfg, 16.0, L, 64, 64, lead=(cfg.timing_batch,))
        fns = [jax.jit(lambda q, k, v, g, kw=kw: la.gla(q, k, v, g, **kw)[0]) for kw in forms.values()]
        fns.append(jax.jit(lambda q, k, v, g: jax.nn.dot_product_attention(q[:, :, None], k[:, :, None],
                                                                           v[:, :, None], is_causal=True)))
        for i, f in enumerate(fns):
            jax.block_until_ready(f(q, k, v, g))  # compile apart
            ts = []
            for _ in range(cfg.timing_repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(f(q, k, v, g))
                ts.append(time.perf_counter() - t0)
            times[i, j] = np.median(ts)
    Ls = np.asarray(cfg.lengths)
    flops = np.stack([[th.flops(f, L, 64, 64, 64) for L in Ls] for f in ("recurrent", "chunk", "parallel")])
    return xr.Dataset(
        {"err_chunk": (("normalizer", "chunk_size"), err_chunk), "margin_chunk": (("normalizer", "chunk_size"),
                                                                                   margin_chunk),
         "err_naive": ("normalizer", err_naive), "margin_naive": ("normalizer", margin_naive),
         "min_log_b": ("normalizer", min_logb), "err_parallel": ("normalizer", err_par),
         "err_secondary": ("normalizer", err_sec),
         "time": (("form", "length"), times), "flops": (("flop_form", "length"), flops)},
        coords={"normalizer": nrms, "chunk_size": Cs, "form": names, "length": Ls,
                "flop_form": ["recurrent", "chunk", "parallel"]},
        attrs={"device": str(jax.devices()[0]), "timing_shape": f"batch x heads {cfg.timing_batch}, d_k = d_v = 64"})


def claims(ds: xr.Dataset, cfg: Config) -> list[Claim]:
    out = []
    band = np.log(cfg.d_k * cfg.L)  # marginal settings: within log(d_k L) of the boundary (see theory)
    m = np.concatenate([ds.margin_chunk.values.ravel(), ds.margin_naive.values])
    fin = np.isfinite(np.concatenate([ds.err_chunk.values.ravel(), ds.err_naive.values]))
    clear = np.abs(m) >= band
    agree = (fin == (m > 0))[clear]
    out.append(Claim(
        id="stability_boundary_predicted",
        statement="float32 finiteness of the naive parallel form and of the matmul chunk form is predicted from the "
                  "gates "
        "alone (min cumulative / within-chunk log decay > -88.72)",
        theory=f"{int(clear.sum())} settings away from the boundary",
        measured=f"{int(agree.sum())} of {int(clear.sum())} agree; "
        f"{int((~fin).sum())} non-finite; {int((~clear).sum())} marginal (|margin| < log(d_k L) = {band:.1f})",
        statistic="all agree; both outcomes present",
        passed=bool(agree.all() and fin[clear].any() and (~fin[clear]).any())))
    worst = float(max(ds.err_parallel.max(), ds.err_secondary.max()))
    out.append(Claim(
        id="log_space_forms_stable",
        statement="the log-space parallel form (Eq. 4) and the secondary-chunked form (Sec. 4.3) are finite and "
                  "accurate "
        "for every gate, down to the strongest",
        theory="rel-RMS <= 1e-5 (float32) vs the float64 recurrence",
        measured=f"max rel-RMS {fmt(worst, 2)}; min log b = {fmt(float(ds.min_log_b.min()), 4)}", statistic="<= 1e-5",
        passed=bool(worst <= 1e-5)))
    ok = ds.err_chunk.values[np.isfinite(ds.err_chunk.values)]
    out.append(Claim(
        id="matmul_chunk_accurate_where_finite",
        statement="where the matmul chunk form is finite it is as accurate as the recurrence",
        theory="rel-RMS <= 1e-5 (float32)",
        measured=f"max rel-RMS {fmt(float(ok.max()), 2)} over {ok.size} finite settings",
        statistic="<= 1e-5", passed=bool(ok.size and ok.max() <= 1e-5)))
    return out


def plot(ds: xr.Dataset, cfg: Config):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    e = np.log10(np.where(np.isfinite(ds.err_chunk.values), ds.err_chunk.values, np.nan))
    im = ax.imshow(e, aspect="auto", origin="lower", cmap="viridis", vmin=-8, vmax=-5)
    bad = ~np.isfinite(ds.err_chunk.values)
    yy, xx = np.nonzero(bad)
    ax.plot(xx, yy, "x", color="C3", ms=9, mew=2)
    ax.contour(ds.margin_chunk.values, levels=[0.0], colors="w", linewidths=2, linestyles="--")
    ax.set_xticks(range(ds.chunk_size.size), ds.chunk_size.values)
    ax.set_yticks(range(ds.normalizer.size), [f"{v:g}" for v in ds.normalizer.values])
    ax.set_xlabel("chunk size C (intra-chunk part by one matmul)")
    ax.set_ylabel("gate normalizer (smaller: stronger decay)")
    ax.set_title("matmul chunk form: log10 rel-RMS error\n(x: non-finite; dashed: predicted boundary, within-chunk "
                 "log decay = -88.72)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[1]
    x = -ds.min_log_b.values
    for name, v, mk in (("naive parallel (Q*B)(K/B)^T", ds.err_naive, "o"), ("parallel, log space (Eq. 4)",
                                                                              ds.err_parallel, "s"),
                        (f"chunk 64, sub-chunk {cfg.sub_chunk_size} (Sec. 4.3)", ds.err_secondary, "^")):
        y = np.where(np.isfinite(v.values), v.values, np.nan)
        ax.loglog(x, y, mk + "-", label=name)
        nf = ~np.isfinite(v.values)
        if nf.any():
            ax.loglog(x[nf], np.full(nf.sum(), 3e-5), "x", color="C3", ms=9, mew=2)
    ax.axvline(th.F32_EXP_MAX, color="k", ls="--", lw=1)
    ax.text(th.F32_EXP_MAX * 1.1, 1.5e-5, "-log b = 88.72:\nnaive form overflows", fontsize=8)
    ax.plot([], [], "x", color="C3", label="non-finite (drawn at 3e-5)")
    ax.set_xlabel("-min_t log b_t (cumulative decay over the sequence)")
    ax.set_ylabel("rel-RMS vs float64 recurrence")
    ax.set_title(f"forms in float32, L = {cfg.L}")
    ax.legend(fontsize=7)
    ax = axes[2]
    L = ds.length.values
    for i, f in enumerate(ds.form.values):
        ax.loglog(L, ds.time.values[i] * 1e3, "o-", label=f)
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("forward time (ms), median")
    ax.set_title(f"cost vs L on {ds.attrs['device'].split(':')[0]} (B*H = {cfg.timing_batch}, d = 64)", fontsize=9)
    ax2 = ax.twinx()
    for i, f in enumerate(ds.flop_form.values):
        ax2.loglog(L, ds.flops.values[i], ls=":", color="0.4", lw=1)
        ax2.text(L[-1], ds.flops.values[i, -1], f" {f} FLOPs", fontsize=7, color="0.3", va="center")
    ax2.set_ylabel("analytic FLOPs (dotted)", color="0.4")
    ax.axvline(th.chunk_parallel_crossover(64, 64, 64), color="0.5", lw=0.8)
    ax.legend(fontsize=7, loc="upper left")
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "L=128", "normalizers=16,0.1", "chunk_sizes=16,64", "lengths=32", "timing_repeats=1")},
)
