"""Active-dormant head on Bigram-Backcopy: attention maps of a trained 1-layer model (trigger rows attend to the
previous token, the others sink onto BOS), near-oracle loss, and the initialization control."""

from __future__ import annotations

import dataclasses
import functools
import typing

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import xarray as xr

from figures._core import TRAINED_AT_TINY, Claim, Figure, Regime, Validated, fmt, overrides, param
from figures._style import footnote
from sims.bigram_backcopy import METRIC_DEFINITIONS, BBConfig, source_of, train
from sims.sweep import concurrent, side_by_side
from theory import bigram as tb

NAME = "bb_attention"
DESCRIPTION = "Bigram-Backcopy, 1 layer 1 head: attention sink at non-trigger queries, previous-token head at triggers"
PAPER = "Guo, Pai, Bai, Jiao, Jordan, Mei 2024 (arXiv 2410.13835), Sec. 2 (Fig. 2-3)"


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    # 6000 steps: on the Shakespeare chain the sink needs them (at 2000 steps the BOS weight at non-trigger
    # queries was 0.31, 0.82, 0.89 in three seeds; at 6000: 0.96, 0.996, 0.999); the sink deepens with training
    sim: BBConfig = BBConfig(seq_len=32, batch=64, n_steps=6000, log_every=200, d_model=64, n_layers=1)
    seeds: int = param(3, ge=1, help="independently initialized models (one vmapped call)")
    lr: float = param(3e-3, gt=0, help="AdamW step (paper: 3e-4 at d=256, 10k steps)")
    control_seeds: int = param(1, ge=1, help="models of the init control (embeddings N(0, 0.02^2))")
    sink_threshold: float = param(0.9, gt=0, lt=1,
                                  help="dormant_sink: every seed's final BOS weight at non-trigger queries must "
                                       "exceed it (quick 0.9; full 0.75, from the authors' recorded run)")

    SET_IN_PANELS: typing.ClassVar[dict] = {"sim.init": "the init control trains gpt2-initialized models"}

    def bb(self, init: str | None = None) -> BBConfig:
        """The trained models' config: ``sim`` itself, or with another ``init`` (the control)."""
        return self.sim if init is None else dataclasses.replace(self.sim, init=init)


# the claims are about the paper's model: another depth, token mixer or optimizer is an exploration (n/a)
PAPER_MODEL = Regime("the paper's 1-layer softmax head trained by AdamW on the one-BOS task (sim.n_layers=1, "
                     "sim.attention=softmax, sim.optimizer=adamw, sim.bos_num=1, sim.delimiter_p=0); other models "
                     "and tasks are explorations: the plots show layer 0",
                     lambda c: c.sim.n_layers == 1 and c.sim.attention == "softmax" and c.sim.optimizer == "adamw"
                     and c.sim.bos_num == 1 and c.sim.delimiter_p == 0)


# The sink thresholds. quick: 0.9, the paper's Fig. 2 heat map (non-trigger queries on BOS, near 1) and the suite's
# runs (0.96-0.999 at 6000 steps). full (the paper's shape and lr 3e-4, 10k steps): 0.75, below the authors' own
# recorded 1-layer run (their BBM/figures/BBM/dynamics.pt, batch 512, lr 3e-4; their bos_attn, the mean over
# non-trigger queries with the BOS query included, probe_utils.py): 0.78 at 1k, 0.81 at 10k, 0.87 at 199k steps.
PRESETS = {
    "quick": Config(),
    "full": Config(sim=BBConfig(seq_len=256, batch=512, d_model=256, n_steps=10_000, log_every=250, n_layers=1),
                   seeds=4, lr=3e-4, control_seeds=2, sink_threshold=0.75),
}

FINAL = ("full_trigger", "full_bigram", "oracle_bigram", "no_attn_trigger", "no_attn_bigram", "bos_forced_trigger",
         "bos_forced_bigram", "no_mlp_trigger", "no_mlp_bigram")


def compute(cfg):
    # the models and the init control train side by side (sims.sweep.side_by_side: 2 on a CPU), each seed its own
    # chunk: four one-seed runs two at a time instead of three vmapped seeds beside one (~20% less time on 2 cores)
    ds, ctl = concurrent([functools.partial(train, cfg.bb(), cfg.lr, cfg.seeds, split_seeds=True),
                          functools.partial(train, cfg.bb("gpt2"), cfg.lr, cfg.control_seeds, split_seeds=True)],
                         max_workers=side_by_side())
    out = xr.Dataset()
    for v in ("bos_attn_nontrigger", "bos_attn_trigger", "prev_attn_trigger", "bos_value_norm", "other_value_norm",
              "bos_logit_gap"):
        out[v] = ds[v].isel(layer=0)
        out[v + "_ctl"] = ctl[v].isel(layer=0).rename(seed="ctl_seed")
    for v in ("loss_trigger", "loss_bigram"):
        out[v] = ds[v]
    for v in FINAL:
        out[v] = ds[v]
        out[v + "_ctl"] = ctl[v].rename(seed="ctl_seed")
    out["attn_map"] = ds.attn_map.isel(seed=0, layer=0)
    out["attn_map_ctl"] = ctl.attn_map.isel(seed=0, layer=0).rename(q="q_ctl", k="k_ctl")
    out["attn_map_trigger"] = ds.attn_map_trigger.isel(seed=0)
    P, mask, _ = source_of(cfg.sim)
    orc, frac = tb.backcopy_oracle(P, np.nonzero(mask)[0], cfg.sim.seq_len + 1)
    out.attrs["oracle_population"] = orc
    out.attrs["trigger_fraction"] = frac
    return out


def claims(ds, cfg):
    out = []
    lt = ds.full_trigger.values
    ex = ds.full_bigram.values - ds.oracle_bigram.values
    out.append(Claim(id="near_oracle",
                     statement="1 layer, 1 head reaches near-oracle loss at trigger (backcopy) and non-trigger "
                               "(bigram) "
                     "positions",
                     theory="trigger loss 0; bigram loss = Bayes NLL on the same evaluation positions",
                     measured=f"trigger {fmt(lt, 4)}; bigram excess {fmt(ex, 4)} nats (per seed)",
                     statistic="every seed: trigger < 0.05 nats and |bigram excess| < 0.05 nats (2% of H)",
                     passed=bool(np.all(lt < 0.05) and np.all(np.abs(ex) < 0.05))))
    fin = ds.isel(step=-1)
    bn, bt, pv = fin.bos_attn_nontrigger.values, fin.bos_attn_trigger.values, fin.prev_attn_trigger.values
    th = cfg.sink_threshold
    out.append(Claim(id="dormant_sink",
                     statement=f"dormant: at non-trigger queries the head puts > {th:g} of its attention on BOS "
                               "(attention sink; the threshold's source: the presets' comment)",
                     theory=f"> {th:g}", measured=f"{fmt(bn, 3)} (per seed)", statistic=f"every seed > {th:g}",
                     passed=bool(np.all(bn > th))))
    out.append(Claim(id="active_previous_token",
                     statement="active: at trigger queries the head attends to the previous token, little BOS weight",
                     theory="previous token > 0.9, BOS < 0.1",
                     measured=f"previous {fmt(pv, 3)}, BOS {fmt(bt, 3)}",
                     statistic="every seed", passed=bool(np.all(pv > 0.9) and np.all(bt < 0.1))))
    r = fin.bos_value_norm.values / fin.other_value_norm.values
    out.append(Claim(id="value_drain_static",
                     statement="value-state drain: the BOS value norm (after W_o) is far below the other tokens' mean",
                     theory="ratio << 1", measured=f"{fmt(r, 3)} (per seed)", statistic="every seed < 0.5",
                     passed=bool(np.all(r < 0.5))))
    # the reduced dynamics' trends (bb_reduced) in the full model: fits over the second half of training
    t = ds.step.values.astype(np.float64)
    late = t >= t[-1] / 2
    lt_ = np.log(t[late])
    g_sl = np.array([np.polyfit(lt_, g[late], 1)[0] for g in ds.bos_logit_gap.values])
    v_sl = np.array([np.polyfit(lt_, np.log(v[late]), 1)[0] for v in ds.bos_value_norm.values])
    out.append(Claim(id="transformer_follows_reduced_dynamics",
                     statement="the trained head follows the reduced model's trends (bb_reduced): over the second half "
                               "of "
                     "training the BOS attention-logit gap keeps growing in log t and the BOS value norm keeps "
                     "falling (AdamW here, so the GD exponents 1/2 and -1/2 are not expected)",
                     theory="d gap / d log t > 0; d log||v_BOS|| / d log t < 0",
                     measured=f"gap slope {fmt(g_sl, 3)}, value slope {fmt(v_sl, 3)} (per seed)",
                     statistic="least-squares slopes over t in [T/2, T], every seed",
                     passed=bool(np.all(g_sl > 0) and np.all(v_sl < 0))))
    bc = ds.bos_attn_nontrigger_ctl.isel(step=-1).values
    lc = ds.full_trigger_ctl.values
    out.append(Claim(id="init_control",
                     statement="finding (not in the paper): the sink depends on the initialization scale. With N(0, "
                               "0.02^2) "
                     "embeddings (GPT-2 style; the paper's PyTorch code uses N(0, 1)) the task is still solved but "
                     "the head does not sink: non-trigger queries put ~0 weight on BOS",
                     theory="(no prediction in the paper)",
                     measured=f"BOS weight {fmt(bc, 3)}, trigger loss {fmt(lc, 4)}",
                     statistic="recorded: BOS weight < 0.5 and trigger loss < 0.05 in every control seed",
                     passed=bool(np.all(bc < 0.5) and np.all(lc < 0.05))))
    return out


def _map(ax, w, trig, title):
    L = w.shape[0]
    im = ax.imshow(w, cmap="viridis", vmin=0, vmax=1, aspect="equal")
    for q in np.nonzero(trig)[0]:
        ax.plot(-1.1, q, ">", color="C1", ms=4, clip_on=False)
    ax.set(xlabel="key position (0 = BOS)", ylabel="query position", title=title, xlim=(-0.5, L - 0.5))
    return im


def plot(ds, cfg):
    fig, axes = plt.subplots(1, 4, figsize=(18.5, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.1, 1.1]})
    trig = ds.attn_map_trigger.values
    im = _map(axes[0], ds.attn_map.values, trig, "trained head (PyTorch-default init)\n"
              r"$\triangleright$ trigger queries: previous token; others: BOS")
    _map(axes[1], ds.attn_map_ctl.values, trig, "control: embeddings $N(0,0.02^2)$\nsolves the task, no sink")
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label="attention weight")
    ax = axes[2]
    fin = ds.isel(step=-1)
    groups = [("BOS | non-trigger q", "bos_attn_nontrigger"), ("BOS | trigger q", "bos_attn_trigger"),
              ("prev | trigger q", "prev_attn_trigger")]
    x = np.arange(len(groups))
    for j, (_, v) in enumerate(groups):
        a, c = fin[v].values, fin[v + "_ctl"].values
        ax.bar(j - 0.18, a.mean(), 0.34, color="C0", label="PyTorch init" if j == 0 else None)
        ax.bar(j + 0.18, c.mean(), 0.34, color="C2", label="$N(0,0.02^2)$ init" if j == 0 else None)
        ax.plot(np.full(a.size, j - 0.18), a, "k.", ms=4)
        ax.plot(np.full(c.size, j + 0.18), c, "k.", ms=4)
    ax.axhline(cfg.sink_threshold, color="0.4", ls=":", lw=0.8)
    ax.set_xticks(x, [g[0] for g in groups], fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="mean attention weight (final)",
           title=f"{cfg.seeds} seeds, {cfg.sim.data} chain, $d={cfg.sim.d_model}$, $V={cfg.sim.V}$, "
                 f"{cfg.sim.n_steps} AdamW steps")
    ax.legend(fontsize=7, loc="upper center")
    ax = axes[3]
    t = ds.step.values[1:]
    for s_ in range(ds.sizes["seed"]):
        ax.plot(t, ds.bos_logit_gap.values[s_, 1:], color="C0", lw=1.2, label="BOS logit gap" if s_ == 0 else None)
    ax.set(xscale="log", xlabel="training step", ylabel="BOS score - mean other score (non-trigger q)",
           title="reduced-dynamics trends in the trained head")
    # labels at 1, 2, 5 x 10^k as plain numbers (the default minor labels overlapped)
    ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax2 = ax.twinx()
    for s_ in range(ds.sizes["seed"]):
        ax2.plot(t, ds.bos_value_norm.values[s_, 1:], color="C3", lw=1.2, ls="--",
                 label=r"$\|Val_{BOS}\|$" if s_ == 0 else None)
    ax2.set(yscale="log", ylabel=r"$\|Val_{BOS}\|$ (after $W_o$)")
    ax2.grid(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center left")
    footnote(fig, f"Chain: {cfg.sim.data!r}. " + METRIC_DEFINITIONS)
    return fig


FIGURE = Figure(
    name=NAME, paper=PAPER, description=DESCRIPTION, config=Config, compute=compute, claims=claims, plot=plot,
    presets={**PRESETS, "tiny": overrides(
        PRESETS["quick"], "seeds=1", "control_seeds=1", "sim.n_steps=40", "sim.log_every=20", "sim.d_model=16",
        "sim.seq_len=8", "sim.batch=8", "sim.eval_batch=16")},
    not_at_tiny=TRAINED_AT_TINY, regimes={"*": PAPER_MODEL},
)
