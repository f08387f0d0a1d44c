"""Shared by the character-LM figures (``text_*``): their presets' model shapes and the schedule field they fix."""

from __future__ import annotations

from types import MappingProxyType

# the quick presets' model (a 2-core CPU trains it at ~75 steps/s per seed) and the paper-like shape for a GPU
QUICK_MODEL = MappingProxyType({"d_model": 64, "n_layers": 2, "n_heads": 2, "seq_len": 64, "batch": 16})
FULL_MODEL = MappingProxyType({"d_model": 256, "n_layers": 6, "n_heads": 8, "seq_len": 256, "batch": 64,
                               "eval_windows": 256})
# the tiny presets' model (make test): the claims run and state a status
TINY_MODEL = ("sim.d_model=16", "sim.n_layers=1", "sim.n_heads=1", "sim.seq_len=16", "sim.batch=4",
              "sim.eval_windows=8")
SCHEDULE_SET = MappingProxyType({"sim.schedule": "the schedule family of the figure's arms, from hparams"})


def refuse_schedule(cfg) -> None:
    """The figures set the char LM's schedule through hparams: a static ``sim.schedule`` would replace every arm's."""
    if cfg.sim.schedule:
        raise ValueError(f"sim.schedule is set by this figure (SET_BY_FIGURE); got {cfg.sim.schedule!r}")
