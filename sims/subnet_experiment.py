"""The bigram-subnetwork experiment (Chang & Bergen 2025) on a Bigram-Backcopy model: train a base model, learn
continuous-sparsification masks that make it match the bigram at several sparsity weights lambda, then analyse the
chosen subnetwork: its necessity (removal vs random same-count masks), its overlap with the optimal-pruning
subnetwork, which MLP computes the bigram, and a residual-stream lens. The figures ``subnet_sparsity`` and
``subnet_mechanism`` plot it; a notebook calls :func:`run` with the same :class:`ExperimentConfig`.

:func:`run` goes through :func:`sims.engine.results.shared`, so two figures run together train once."""

from __future__ import annotations

import dataclasses
import functools
import typing

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from sims import subnetworks as sn
from sims.bigram_backcopy import BBConfig, make_train, sample_batch, source_of
from sims.config import Config, param
from sims.engine.results import Diverged, shared
from sims.sweep import jit
from sims.transformer import apply
from theory import bigram as tb

__all__ = ["ExperimentConfig", "run", "PAPER"]

PAPER = "Chang & Bergen 2025 (arXiv 2504.15471), Sec. 3-5; toy: a 3-layer Bigram-Backcopy transformer"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(Config):
    """``base`` is the Bigram-Backcopy model trained first (at ``base_lr``); ``mask`` the continuous sparsification
    run on it at each of ``lams`` (target: the bigram, then the model itself at the chosen lambda)."""

    SET_BY_FIGURE: typing.ClassVar[dict] = {
        "mask.base": "`base`: the model trained here",
        "mask.target": "bigram at each of `lams`; then model (optimal pruning) at the chosen lambda",
    }
    base: BBConfig = BBConfig(seq_len=16, batch=32, d_model=32, n_layers=3, n_steps=2000, log_every=500)
    mask: sn.SubnetConfig = sn.SubnetConfig(n_steps=2000, log_every=100, lr=0.05, temp_growth=1.003)
    base_lr: float = param(3e-3, gt=0)
    base_seed: int = param(0, ge=0, help="seed of the base model (and of the mask-training data)")
    lams: tuple[float, ...] = param(unique=True, default=(0.3, 1.0, 3.0, 10.0), ge=0, help="sparsity weights lambda")
    seeds: int = param(1, ge=1, help="data orders of the mask training")
    null_samples: int = param(64, ge=8, help="random same-count masks in the ablation null")
    r_target: float = param(0.95, gt=0, lt=1, help="Pearson r that defines a bigram subnetwork")

    def __post_init__(self):
        # the mask run's base IS `base` (one home: `base.*` on the command line), so the resolved config says so
        object.__setattr__(self, "mask", dataclasses.replace(self.mask, base=self.base))
        super().__post_init__()

    def check(self):
        if not 3 <= self.base.n_layers <= 4:
            raise ValueError(f"base.n_layers={self.base.n_layers} is out of range: must be >= 3 and <= 4 (the lens "
                             "claim compares block 1 with an intermediate block)")
        if self.base.bos_num != 1 or self.base.delimiter_p != 0:
            raise ValueError(f"base.bos_num={self.base.bos_num}, base.delimiter_p={self.base.delimiter_p}: the "
                             "subnetwork targets are the one-BOS, delimiter-free task (bos_num 1, delimiter_p 0)")
        if self.mask.n_steps < 100:
            raise ValueError(f"mask.n_steps must be >= 100, got {self.mask.n_steps}")
        if list(self.lams) != sorted(self.lams):
            raise ValueError("lams must be increasing")

    def subnet(self, target) -> sn.SubnetConfig:
        return dataclasses.replace(self.mask, target=target)


FULL = ExperimentConfig(base=BBConfig(seq_len=64, batch=32, d_model=128, n_layers=3, n_steps=10_000, log_every=2500),
                        mask=sn.SubnetConfig(n_steps=6000, log_every=100, lr=0.05, temp_growth=1.001),
                        base_lr=1e-3, lams=(0.1, 0.3, 1.0, 3.0, 10.0, 30.0), seeds=3, null_samples=256)


def run(cfg: ExperimentConfig) -> xr.Dataset:
    """The whole experiment as one Dataset (see the module docstring); shared through the options' result cache.
    Raises :class:`~sims.engine.results.Diverged` when the base model or a mask training diverged."""
    return shared(_run, cfg)


def _run(cfg: ExperimentConfig) -> xr.Dataset:
    key = jax.random.key(cfg.base_seed)
    k_base, k_b, k_m, k_ev, k_fit, k_null = jax.random.split(key, 6)
    base = cfg.base
    params, bfin, _ = jit(make_train(base))(k_base, {"lr": jnp.float32(cfg.base_lr)})
    if float(bfin["diverged_step"]) >= 0:
        raise Diverged("the base model diverged; not analysing it")
    c_b, c_m = cfg.subnet("bigram"), cfg.subnet("model")
    ds_b = sn.sweep_lambda(c_b, params, cfg.lams, seeds=cfg.seeds, key=k_b)
    if bool(ds_b.diverged.any()):
        raise Diverged("bigram mask training diverged for some lambda; not plotting it")
    out = xr.Dataset()
    for v in ("kept_total", "pearson_r", "pearson_r_all", "ce_bigram", "stop_step", "kept_block"):
        out[v] = ds_b[v]
    out["ce_bigram_oracle"] = ds_b.ce_bigram_oracle.isel(lam=0, seed=0)
    out["kept_traj"] = ds_b.kept
    out["undecided_traj"] = ds_b.undecided
    # the analysed subnetwork: largest lambda with r >= r_target in seed 0 (else the best r)
    r0 = ds_b.pearson_r.isel(seed=0).values
    ok = np.nonzero(r0 >= cfg.r_target)[0]
    i_star = int(ok[-1]) if ok.size else int(np.argmax(r0))
    lam_star = float(cfg.lams[i_star])
    out.attrs["lam_star"] = lam_star
    out.attrs["lam_star_meets_target"] = int(ok.size > 0)
    # the optimal-pruning subnetwork (target: the model's own output) at the same lambda
    ds_m = sn.sweep_lambda(c_m, params, [lam_star], seeds=cfg.seeds, key=k_m).isel(lam=0)
    if bool(ds_m.diverged.any()):
        raise Diverged("optimal-pruning mask training diverged; not plotting it")
    out["kept_total_opt"] = ds_m.kept_total
    out["kept_block_opt"] = ds_m.kept_block
    mask_b = ds_b.mask.isel(lam=i_star, seed=0).values
    mask_m = ds_m.mask.isel(seed=0).values
    # held-out evaluation batches
    ev = sample_batch(base, k_ev, 256)
    x, y, trig, _ = ev
    x_fit = sample_batch(base, k_fit, 256)[0]
    # the unigram's loss at the evaluation's non-trigger positions (next token ~ the chain's stationary law): what a
    # model that knows nothing beyond token frequencies reaches; the necessity claim measures against it
    pi = tb.stationary(source_of(base)[0])
    yy_nt = np.asarray(y)[~np.asarray(trig)]
    out_unigram = float(-np.mean(np.log(np.maximum(pi[yy_nt], 1e-30))))
    # surprisal scatter (subsample)
    E = sn.extended_bigram(c_b)
    sub = sn.masked_params(c_b, params, sn.unflatten(c_b, params, jnp.asarray(mask_b, jnp.float32)))
    lp_sub = jax.nn.log_softmax(apply(sub, x, base.model())[0])
    yy = np.asarray(y)
    s_sub = -np.take_along_axis(np.asarray(lp_sub), yy[..., None], -1)[..., 0].ravel()
    s_big = -np.log(np.maximum(E[np.asarray(x), yy], 1e-30)).ravel()
    sel = np.random.default_rng(0).permutation(s_sub.size)[:3000]
    out["scatter_sub"] = ("point", s_sub[sel])
    out["scatter_bigram"] = ("point", s_big[sel])
    out["scatter_trigger"] = ("point", np.asarray(trig).ravel()[sel])
    # necessity: remove the bigram subnetwork vs random same-count subnetworks
    abl = functools.partial(sn.ablation_losses, c_b, params, batch=ev)
    out["full_loss"] = ("pos_type", np.array(abl(jnp.zeros_like(jnp.asarray(mask_b)))))
    out["removed_loss"] = ("pos_type", np.array(abl(jnp.asarray(mask_b))))
    keys = jax.random.split(k_null, cfg.null_samples)
    null = jit(jax.vmap(lambda k: abl(sn.random_same_counts(k, c_b, params, jnp.asarray(mask_b)))))(keys)
    out["null_loss"] = (("null", "pos_type"), np.stack([np.asarray(a) for a in null], -1))
    out = out.assign_coords(pos_type=["trigger", "non-trigger"])
    # per-layer MLP removal in the base model: which MLP computes the bigram
    mlp_rm = [abl(sn.block_mask(c_b, params, [f"L{i}.w1", f"L{i}.w2"])) for i in range(cfg.base.n_layers)]
    out["mlp_removed_loss"] = (("layer", "pos_type"), np.array([[float(a), float(b)] for a, b in mlp_rm]))
    # overlap with the optimal-pruning subnetwork (hypergeometric null per block)
    ov, ov_mean, ov_z = sn.overlap_z(c_b, params, mask_b, mask_m)
    out.attrs.update(overlap=ov, overlap_null_mean=ov_mean, overlap_z=float(ov_z),
                     kept_bigram=int(mask_b.sum()), kept_opt=int(mask_m.sum()))
    # residual-stream lens: full model and the bigram subnetwork
    rec_f, kl_f = sn.lens(c_b, params, x_fit, x)
    rec_s, kl_s = sn.lens(c_b, params, x_fit, x, masks=sn.unflatten(c_b, params, jnp.asarray(mask_b, jnp.float32)))
    out["lens_recall"] = (("model", "depth"), np.stack([rec_f, rec_s]))
    out["lens_kl"] = (("model", "depth"), np.stack([kl_f, kl_s]))
    out = out.assign_coords(model=["full", "bigram subnetwork"], depth=np.arange(cfg.base.n_layers + 1))
    out.attrs["unigram_loss_nontrigger"] = out_unigram
    out.attrs["base_full_trigger"] = float(bfin["full_trigger"])
    out.attrs["base_full_bigram"] = float(bfin["full_bigram"])
    out.attrs["base_oracle_bigram"] = float(bfin["oracle_bigram"])
    return out
