"""The bandit systems of Mussi et al. (2023): the paper's synthetic and real-data instances by name, their variants
(noise, action set, rho sweeps, random systems), and a user's own system from arrays or from an ``.npz`` / JSON
file, validated (finite values, shapes, spectral radius < 1) with messages naming the field.

A user's system is held as a hashable value (:func:`frozen`: arrays as nested tuples), so a
:class:`sims.bandits.BanditConfig` that holds it is keyed on its content: the compiled program, the sweep's id and
its cache change when any entry of the system changes."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from sims.config import finite_array
from theory import bandits as tb

__all__ = ["INSTANCE_FIELDS", "frozen", "check_arrays", "load_instance", "instance", "pin_file"]


INSTANCE_FIELDS = ("A", "B", "omega", "theta", "sigma_x", "sigma_y", "arms")


def frozen(inst: tb.Instance) -> tb.Instance:
    """A user's system as a hashable value (arrays as nested tuples of floats), validated: what a
    :class:`BanditConfig` holds, so that a cached program and a sweep's id are keyed on the system's content."""
    inst = check_arrays(inst)
    tup = lambda a: tuple(map(tuple, a)) if np.ndim(a) == 2 else tuple(np.asarray(a).tolist())  # noqa: E731
    return tb.Instance(tup(inst.A), tup(inst.B), tup(inst.omega), tup(inst.theta), float(inst.sigma_x),
                       float(inst.sigma_y), tup(inst.arms))


def check_arrays(inst: tb.Instance) -> tb.Instance:
    """Every field finite (named when not), then :func:`theory.bandits.check_instance` (shapes, rho(A) < 1,
    noise >= 0, a non-empty action set)."""
    for f in INSTANCE_FIELDS:
        finite_array(f"instance field {f}", getattr(inst, f))
    return tb.check_instance(inst)


def load_instance(path) -> tb.Instance:
    """A system from an ``.npz`` (arrays A, B, omega, theta, arms; scalars sigma_x, sigma_y) or a ``.json`` (the
    same keys, nested lists), validated: a missing or extra key, a wrong shape, a non-finite value or rho(A) >= 1 is
    a ``ValueError`` naming the file and the field."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"instance file {p} does not exist")
    try:
        if p.suffix == ".npz":
            with np.load(p) as z:
                d = {k: z[k] for k in z.files}
        elif p.suffix == ".json":
            d = json.loads(p.read_text())
        else:
            raise ValueError(f"instance file {p}: expected a .npz or .json file")
    except (OSError, ValueError) as e:
        raise ValueError(f"instance file {p} cannot be read: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"instance file {p}: expected an object with the keys {', '.join(INSTANCE_FIELDS)}")
    missing = [f for f in INSTANCE_FIELDS if f not in d]
    extra = sorted(set(d) - set(INSTANCE_FIELDS))
    if missing or extra:
        raise ValueError(f"instance file {p}: " + (f"missing {missing}" if missing else "") +
                         ("; " if missing and extra else "") + (f"unknown keys {extra}" if extra else "") +
                         f" (keys: {', '.join(INSTANCE_FIELDS)})")
    try:
        inst = tb.Instance(*(np.asarray(d[f], dtype=np.float64) if f not in ("sigma_x", "sigma_y")
                             else float(np.asarray(d[f])) for f in INSTANCE_FIELDS))
        return frozen(inst)
    except (TypeError, ValueError) as e:
        raise ValueError(f"instance file {p}: {e}") from None


def pin_file(name: str) -> str:
    """``file:PATH`` -> ``file:PATH#sha256=<16 hex>`` (the file's content hash), so that a config naming a file is
    keyed on what the file holds (a sweep of an edited file is another sweep); other names unchanged."""
    if not name.startswith("file:") or "#sha256=" in name:
        return name
    p = Path(name[5:])
    if not p.exists():
        raise ValueError(f"instance file {p} does not exist")
    return f"{name}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"


@functools.cache
def instance(name) -> tb.Instance:
    """An instance by name, or a user's system (a :class:`theory.bandits.Instance`, as :func:`frozen` makes it):

    ``synthetic`` (and its limits ``synthetic:B=0``, ``synthetic:omega=0``, ``synthetic:A=0``), ``real``,
    ``synthetic:sigma=<s>`` / ``real:sigma=<s>`` (the authors' configs use s = 0.001, 0.01, 0.1),
    ``synthetic:ball`` / ``real:ball`` (unit-ball action set, 512 directions),
    ``rho=<value>`` (rho sweep at fixed h), ``random=<seed>,<rho>``, ``file:<path>`` (:func:`load_instance`)."""
    if isinstance(name, tb.Instance):
        return check_arrays(name)
    if name.startswith("file:"):
        path, _, pin = name[5:].partition("#sha256=")
        if pin and Path(path).exists() and hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] != pin:
            raise ValueError(f"instance file {path} changed since the config naming it was made (content hash "
                             f"{pin}): make the config again")
        return tb.check_instance(load_instance(path))
    if name == "synthetic":
        return tb.synthetic()
    if name in ("synthetic:B=0", "synthetic:omega=0", "synthetic:A=0"):  # the sanity limits
        s = tb.synthetic()
        field = name.split(":")[1].split("=")[0]
        return tb.check_instance(s._replace(**{field: np.zeros_like(getattr(s, field))}))
    if name == "real":
        return tb.real_data()
    if name.startswith(("synthetic:sigma=", "real:sigma=")):
        base, val = name.split(":sigma=")
        try:
            sig = float(val)
        except ValueError:
            raise ValueError(f"sigma in {name!r} must be a number") from None
        if not (math.isfinite(sig) and sig >= 0):
            raise ValueError(f"sigma in {name!r} must be finite and >= 0")
        return tb.synthetic(sig) if base == "synthetic" else tb.real_data(sig)
    if name in ("synthetic:ball", "real:ball"):  # the unit ball as action set, discretized (512 directions)
        base = tb.synthetic() if name.startswith("synthetic") else tb.real_data()
        return tb.check_instance(base._replace(arms=tb.sphere_arms(512)))
    if name.startswith("rho="):
        return tb.rho_sweep_instance(float(name[4:]))
    if name.startswith("random="):
        s, r = name[7:].split(",")
        return tb.random_instance(int(s), rho=float(r))
    raise ValueError(f"unknown instance {name!r}: synthetic, real, synthetic:sigma=<s>, real:sigma=<s>, rho=<r>, "
                     "random=<seed>,<rho>, file:<path.npz|.json>")
