"""Where a Bigram-Backcopy training step's time goes on this CPU: ``jax.profiler`` traces the suite's compiled step
(the benchmark's JAX side: :func:`benchmarks.bigram_backcopy_torch.jax_trainer`, flat parameters, AdamW, a
``lax.scan`` over steps) and each XLA op of the trace is put in a class by what its computation holds in the
optimized HLO: matmul (a ``dot``), softmax / exp (``exponential``), layer norm (``rsqrt``), the optimizer (an op
over the flat parameter vector), layout (copies, transposes), other elementwise. Reported per step, with the
achieved FLOP/s of the model's matmuls (counted from the shapes) against the machine's measured matmul peak.

    python -m benchmarks.profile_transformer [--shape paper|quick] [--steps N]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import append_results
from benchmarks.bigram_backcopy_torch import jax_trainer
from sims.bigram_backcopy import BBConfig, sample_batch
from sims.sweep import jit

SHAPES = {"paper": dict(d_model=256, seq_len=256, batch=512), "quick": dict(d_model=64, seq_len=32, batch=64)}
CLASSES = ("matmul", "softmax / exp", "layer norm", "optimizer (flat vector)", "layout (copy / transpose)",
           "other elementwise / reduce")


def _computations(hlo: str) -> dict[str, str]:
    """name -> body text of every computation of an optimized HLO module."""
    out, name, body = {}, None, []
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if m and not line.startswith(" "):
            name, body = m.group(1), []
        elif line.startswith("}") and name:
            out[name] = "\n".join(body)
            name = None
        elif name:
            body.append(line)
    return out


def classify(hlo: str, n_params: int) -> dict[str, str]:
    """HLO instruction name -> op class (see the module docstring)."""
    comps = _computations(hlo)
    cls = {}
    for text in comps.values():
        for line in text.splitlines():
            m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+)", line)
            if not m:
                continue
            op, shape = m.group(1), m.group(2)
            called = re.findall(r"calls=%?([\w.\-]+)", line)
            inner = line + "\n" + "\n".join(comps.get(c, "") for c in called)
            if " dot(" in inner or "custom-call" in inner and "matmul" in inner:
                c = "matmul"
            elif "exponential(" in inner:
                c = "softmax / exp"
            elif "rsqrt(" in inner:
                c = "layer norm"
            elif re.search(rf"f32\[{n_params}\]", shape):
                c = "optimizer (flat vector)"
            elif (re.search(r"\b(copy|transpose)\(", inner)
                  and not re.search(r"\b(add|multiply|subtract|divide)\(", inner)):
                c = "layout (copy / transpose)"
            else:
                c = "other elementwise / reduce"
            cls[op] = c
    return cls


def matmul_flops(d: int, L: int, B: int, V: int) -> float:
    """FLOPs of one training step's matmuls (forward x 3 for forward + backward), 1 layer, 1 head, MLP 4d."""
    fwd = 2 * B * L * (4 * d * d + 8 * d * d + d * V) + 2 * 2 * B * L * L * d
    return 3.0 * fwd


def measure_peak(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of one large float32 matmul in XLA on this machine (median of repeats)."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(ts))


def profile(shape: str, steps: int) -> list[tuple[str, str]]:
    kw = SHAPES[shape]
    cfg = BBConfig(n_layers=1, n_steps=steps, log_every=steps, **kw)
    start, train = jax_trainer(cfg)
    keys = jax.random.split(jax.random.key(1), steps)
    xs, ys = jax.vmap(lambda k: sample_batch(cfg, k, cfg.batch)[:2])(keys)
    p, o = start(jax.random.key(0))
    f = jit(train, donate_argnums=(0, 1))
    hlo = f.lower(p, o, xs, ys).compile().as_text()
    t0 = time.perf_counter()
    p, o, loss = f(p, o, xs, ys)
    jax.block_until_ready(loss)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    p, o, loss = f(p, o, xs, ys)
    jax.block_until_ready(loss)
    t_step = (time.perf_counter() - t0) / steps
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            p, o, loss = f(p, o, xs, ys)
            jax.block_until_ready(loss)
        ev = json.load(gzip.open(glob.glob(tmp + "/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
    cls = classify(hlo, int(p.size))
    per = dict.fromkeys(CLASSES, 0.0)
    n_ops = 0
    for e in ev:
        name = e.get("args", {}).get("hlo_op")
        if e.get("ph") == "X" and name and e.get("args", {}).get("hlo_module") == "jit_train":
            per[cls.get(name, "other elementwise / reduce")] += e["dur"] / 1e6
            n_ops += 1
    total = sum(per.values())
    flops = matmul_flops(cfg.d_model, cfg.seq_len, cfg.batch, cfg.V + 1)
    peak = measure_peak()
    rows = [("shape", f"{shape}: d {cfg.d_model}, L {cfg.seq_len}, batch {cfg.batch}, 1 layer, 1 head, AdamW; "
                      f"{steps} steps per call"),
            ("step (wall, median of one call / steps)", f"{t_step * 1e3:.1f} ms (first call {t_first:.1f} s)"),
            ("XLA op time in the trace, per step", f"{total / steps * 1e3:.1f} ms in {n_ops // steps} ops")]
    rows += [(f"  {c}", f"{per[c] / steps * 1e3:.1f} ms ({100 * per[c] / max(total, 1e-12):.0f}%)") for c in CLASSES]
    mm = per["matmul"] / steps
    rows += [("model matmul FLOPs per step (shapes)", f"{flops / 1e9:.2f} GFLOP"),
             ("achieved: whole step / matmul ops alone",
              f"{flops / t_step / 1e9:.0f} / {flops / max(mm, 1e-12) / 1e9:.0f} GFLOP/s"),
             ("measured matmul peak (XLA, 2048^2 float32)", f"{peak / 1e9:.0f} GFLOP/s"),
             ("step at the peak / measured step", f"{flops / peak * 1e3:.1f} ms / {t_step * 1e3:.1f} ms "
                                                  f"({flops / peak / t_step:.0%} of the peak)")]
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=tuple(SHAPES) + ("both",), default="both")
    ap.add_argument("--steps", type=int, default=0, help="steps per compiled call (default: 2 paper, 50 quick)")
    a = ap.parse_args(argv)
    for shape in (SHAPES if a.shape == "both" else (a.shape,)):
        rows = profile(shape, a.steps or (2 if shape == "paper" else 50))
        append_results(f"Transformer step profile ({shape} shape): time per op class (jax.profiler)", rows,
                       notes="Op classes from the optimized HLO of the step: a fusion counts as matmul if it holds a "
                             "dot. FLOPs: QKV + O (4 d^2), MLP (8 d^2), unembedding, scores and mixing (2 L d), "
                             "x3 for forward + backward.")


if __name__ == "__main__":
    main()
