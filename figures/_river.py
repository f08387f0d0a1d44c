"""Shared by the river-valley figures: the sim fields their theory fixes (``theory.river_valley``: a straight river
l(u) = exp(-u) with additive hill noise, started at (0, 0)), so they are not knobs of those figures."""

from __future__ import annotations

STRAIGHT_RIVER: dict[str, str] = {
    "sim.c": "1: the theory's river l(u) = exp(-u)",
    "sim.s": "1: the theory's river l(u) = exp(-u)",
    "sim.u0": "0: the theory starts at (u, v) = (0, 0)",
    "sim.v0": "0: the theory starts at (u, v) = (0, 0)",
    "sim.kappa": "0: the theory's hills have constant sharpness",
    "sim.curvature": "0: the theory's river is straight",
    "sim.noise": "additive: the theory's hill noise",
    "sim.sigma_river": "0: the theory has no river noise (plain GD along u)",
}
