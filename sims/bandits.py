r"""Dynamical linear bandits in JAX (Mussi, Metelli, Restelli, ICML 2023): a gymnax-style environment and a
registry of agents, each a pure ``(init, act, update)`` triple run inside one ``lax.scan`` over rounds.

Environment (pure ``reset`` / ``step`` with explicit keys; :class:`EnvParams` holds arrays, so it is
vmappable over instances as well as seeds):

.. math:: y_t = \omega^\top x_t + \theta^\top u_t + \eta_t,\qquad x_{t+1} = Ax_t + Bu_t + \epsilon_t,\quad x_1 = 0 .

Common random numbers: round t of seed s draws its environment noise (and the agents' uniforms) from the same
key whatever the algorithm, so algorithms are compared on identical noise, as the authors' code, which pre-draws
it (``np.random.seed(1)`` in scripts/main.py).

The run list is the authors' (marcomussi/DLB, ``scripts/main.py``: ``to_run_list``), under their names; each
entry of :data:`ALGORITHMS` says which class of ``dynlinucb/experimental/agents.py`` it reproduces and its
radius. Algorithms that share a code path (:data:`PATHS`) differ only in array parameters, so one compiled call
runs them all: ``make_run(cfg)`` takes ``hparams["alg"]``, an index into ``cfg.algorithms``, and a sweep over it
is vmapped over algorithms x seeds.

Noise variance in the radii (``noise_variance``): ``"authors"`` (default) passes :math:`\sigma^2`, the
per-output noise variance, as main.py does; ``"exact"`` passes the variance of the reward noise actually
summed over the m = 3 outputs, :math:`m\sigma^2` (``Instance.sigma_y``).

Where main.py uses ``max(np.linalg.eigvals(A))`` (AR2's alpha, Exp3's M, Batch-Exp3's batch) the real-data A has
complex eigenvalues and the authors' code computes with a complex number whose imaginary part ``math.ceil`` /
``np.random.choice`` later drop; the suite uses its modulus, the spectral radius (as LinearAgent and
DynLinUCBAgent do with ``np.abs``). On the synthetic instance (real eigenvalues) the two coincide.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sims.bandit_agents import PATHS, TIE_RTOL, Agent  # noqa: F401 (re-exported)
from sims.bandit_algorithms import ALGORITHMS, RUN_LIST, Algorithm, Ctx, algorithm_params  # noqa: F401
from sims.bandit_instances import frozen, instance, load_instance, pin_file
from sims.config import Config, param
from sims.sweep import Sim, noise_chunk_for, noise_stream, record_steps, scan_with_records
from theory import bandits as tb

__all__ = ["sim", "EnvParams", "EnvState", "reset", "step", "step_noise", "BanditConfig", "make_run", "instance",
           "load_instance", "frozen", "ALGORITHMS", "PATHS", "env_params", "algorithm_params",
           "NOISE_VARIANCES", "RUN_LIST", "round_noise"]

NOISE_VARIANCES = ("authors", "exact")


class EnvParams(NamedTuple):
    A: jax.Array
    B: jax.Array
    omega: jax.Array
    theta: jax.Array
    sigma_x: jax.Array
    sigma_y: jax.Array


class EnvState(NamedTuple):
    x: jax.Array


def env_params(inst: tb.Instance, dtype=None) -> EnvParams:
    inst = tb.check_instance(inst)
    f = lambda v: jnp.asarray(v, dtype)
    return EnvParams(f(inst.A), f(inst.B), f(inst.omega), f(inst.theta), f(inst.sigma_x), f(inst.sigma_y))


def reset(key, params: EnvParams) -> EnvState:
    """:math:`x_1 = 0` (the key is accepted for the gymnax signature)."""
    del key
    return EnvState(jnp.zeros_like(params.omega))


def step(key, state: EnvState, u, params: EnvParams):
    """One round: returns (next state, reward y_t). The reward uses the state before u acts."""
    kx, ky = jax.random.split(key)
    return step_noise(state, u, params, jax.random.normal(kx, state.x.shape, u.dtype),
                      jax.random.normal(ky, (), u.dtype))


def step_noise(state: EnvState, u, params: EnvParams, xi_x, xi_y):
    """:func:`step` with given standard-normal noise (the simulations pre-draw it per block)."""
    y = params.omega @ state.x + params.theta @ u + params.sigma_y * xi_y
    x = params.A @ state.x + params.B @ u + params.sigma_x * xi_x
    return EnvState(x), y


@dataclasses.dataclass(frozen=True)
class BanditConfig(Config):
    """One compiled bandit run: ``algorithms`` (names from :data:`ALGORITHMS`) must share one code path, and
    ``hparams["alg"]`` picks one of them (vmapped in a sweep).

    ``instance`` and ``noise_variance`` are a name or a tuple of names: a tuple stacks their parameters as arrays
    (instances of one shape), and ``hparams["inst"]`` / ``hparams["nv"]`` index them, so one compiled call runs
    every instance x noise variance x algorithm x seed (a per-instance config would compile once per instance).
    ``rho_bar`` likewise (a float or a tuple, indexed by ``hparams["rb"]``)."""

    instance: str | tuple = param("synthetic", help="instance name (sims.bandits.instance), a user's system "
                                  "(theory.bandits.Instance: arrays) or a tuple of them")
    algorithms: tuple = param(("dynlinucblog",), help="algorithm names sharing one code path (ALGORITHMS)")
    horizon: int = param(100_000, ge=1, le=10**10, help="rounds T")
    log_every: int = param(1000, ge=1, help="record every log_every rounds (divides the horizon)")
    rho_bar: float | tuple = param(-1.0, lt=1, help="the learner's bound on rho(A); < 0: the true rho (as the "
                                   "paper's code); or a tuple")
    noise_variance: str | tuple = param("authors", help="authors: sigma^2 in the radii (main.py); exact: m sigma^2; "
                                        "or a tuple")
    unroll: int = param(1, ge=1, help="inner lax.scan unroll (speed only)")

    def __post_init__(self):
        algs = (self.algorithms,) if isinstance(self.algorithms, str) else tuple(self.algorithms)
        object.__setattr__(self, "algorithms", algs)
        inst = self.instance
        if isinstance(inst, tb.Instance) and not isinstance(inst.A, tuple):  # one user system (arrays)
            inst = frozen(inst)
        elif isinstance(inst, str):
            inst = pin_file(inst)  # a file's system: keyed on its content
        elif not isinstance(inst, tb.Instance):  # a tuple of names / systems
            inst = tuple(frozen(x) if isinstance(x, tb.Instance) and not isinstance(x.A, tuple) else
                         pin_file(x) if isinstance(x, str) else x for x in inst)
            if not inst or len(set(inst)) != len(inst) or not all(isinstance(x, (str, tb.Instance)) for x in inst):
                raise ValueError(f"instance must be a name or a non-empty tuple of distinct names (or of a user's "
                                 f"systems), got {inst!r}")
        object.__setattr__(self, "instance", inst)
        v = self.noise_variance
        if not isinstance(v, str):
            v = tuple(v)
            if not v or len(set(v)) != len(v) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"noise_variance must be a name or a non-empty tuple of distinct names, got {v!r}")
            object.__setattr__(self, "noise_variance", v)
        if not isinstance(self.rho_bar, (int, float)):
            rb = tuple(self.rho_bar)
            if not rb or len(set(rb)) != len(rb):
                raise ValueError(f"rho_bar must be a number or a non-empty tuple of distinct numbers, got {rb!r}")
            object.__setattr__(self, "rho_bar", rb)
        super().__post_init__()  # every field's type and range, then check()

    def check(self):
        """Cross-field rules (every field's type and range: :class:`sims.config.Config`)."""
        algs = self.algorithms
        if not algs:
            raise ValueError("algorithms must name at least one algorithm")
        bad = [a for a in algs if a not in ALGORITHMS]
        if bad:
            raise ValueError(f"unknown algorithm(s) {bad}; valid: {', '.join(ALGORITHMS)}")
        if len(set(algs)) != len(algs):
            raise ValueError(f"algorithms must not repeat a name, got {list(algs)}")
        paths = {ALGORITHMS[a].path for a in algs}
        if len(paths) > 1:
            raise ValueError(f"algorithms {list(algs)} use different code paths {sorted(paths)}: run one "
                             "BanditConfig per path (sims.bandits.PATHS)")
        if not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {self.horizon!r}")
        if self.log_every < 1 or self.horizon % self.log_every:
            raise ValueError(f"log_every ({self.log_every}) must divide the horizon ({self.horizon})")
        for rb in self.rho_bars:
            if not (isinstance(rb, (int, float)) and math.isfinite(rb) and rb < 1):
                raise ValueError(f"rho_bar must be finite and < 1, got {self.rho_bar}")
        bad = [v for v in self.noise_variances if v not in NOISE_VARIANCES]
        if bad:
            raise ValueError(f"noise_variance must be one of {NOISE_VARIANCES}, got {bad[0]!r}")
        shapes = {(instance(n).arms.shape, instance(n).A.shape) for n in self.instances}
        if len(shapes) > 1:
            raise ValueError(f"instance: stacked instances {list(self.instances)} must share arm and state shapes, "
                             f"got {sorted(shapes)}")
        algorithm_params(self)  # every constant (e.g. AR2's epoch with sigma = 0) is checked before any compute

    @property
    def path(self) -> str:
        return ALGORITHMS[self.algorithms[0]].path

    def steps(self):
        return record_steps(self.horizon, self.log_every)

    @property
    def instances(self) -> tuple:
        one = isinstance(self.instance, str) or isinstance(self.instance, tb.Instance)
        return (self.instance,) if one else self.instance

    @property
    def noise_variances(self) -> tuple:
        return (self.noise_variance,) if isinstance(self.noise_variance, str) else self.noise_variance

    @property
    def rho_bars(self) -> tuple:
        return (self.rho_bar,) if isinstance(self.rho_bar, (int, float)) else self.rho_bar

    def rho_used(self, name: str | None = None, k: int = 0) -> float:
        A = instance(name or self.instances[0]).A
        return tb.spectral_radius(A) if self.rho_bars[k] < 0 else self.rho_bars[k]


def _noise_fn(n_x: int, dt):
    def noise(k, m):  # one batched draw per chunk of rounds (these sims are RNG-bound)
        kx, ky, ku = jax.random.split(k, 3)
        return {"x": jax.random.normal(kx, (m, n_x), dt), "y": jax.random.normal(ky, (m,), dt),
                "u": jax.random.uniform(ku, (m,), dt)}

    return noise


def round_noise(cfg: BanditConfig, key) -> dict:
    """The exact random inputs of ``make_run(cfg)(key, hp)`` as NumPy arrays: standard-normal state noise
    ``x`` (T, n), reward noise ``y`` (T,), the agents' uniforms ``u`` (T,) and the first (random) arm ``a0`` of
    the UCB agents. A sweep's seed s uses ``key = jax.random.fold_in(sweep_key, s)``."""
    k0, krun = jax.random.split(key)
    K = instance(cfg.instances[0]).arms.shape[0]
    n_x = instance(cfg.instances[0]).A.shape[0]
    out = noise_stream(krun, _noise_fn(n_x, jnp.zeros(()).dtype), n_steps=cfg.horizon, log_every=cfg.log_every,
                       noise_chunk=noise_chunk_for(cfg.log_every, n_x + 2))
    return {k: np.asarray(v) for k, v in out.items()} | {"a0": int(jax.random.randint(k0, (), 0, K))}


@functools.cache
def make_run(cfg: BanditConfig):
    """``run(key, hparams) -> (final, traj)``. hparams: ``alg`` (index into ``cfg.algorithms``; default 0),
    ``inst`` / ``nv`` / ``rb`` (indices into ``cfg.instances`` / ``cfg.noise_variances`` / ``cfg.rho_bars``;
    default 0), ``noise_scale``
    (multiplies both noise stds; default 1), ``arm`` (for ``constant_arm``)."""
    insts = [instance(n) for n in cfg.instances]
    T = cfg.horizon
    h_all = np.stack([tb.markov_parameter(I) for I in insts])
    best_all = np.array([np.max(I.arms @ h) for I, h in zip(insts, h_all)])
    table = algorithm_params(cfg)
    agent = PATHS[cfg.path]
    env_all = [EnvParams(*(np.asarray(getattr(I, f), np.float64) for f in EnvParams._fields)) for I in insts]
    n_x = insts[0].A.shape[0]
    d = insts[0].arms.shape[1]

    def run(key, hp):
        dt = jnp.zeros(()).dtype  # float64 under x64 (as the figures run it), float32 otherwise
        if dt != jnp.float64 and cfg.path == "dlinucb":
            raise ValueError("dlinucb (gamma = 1 - 1e-9) needs float64: run under jax.enable_x64(True)")
        i = jnp.asarray(hp.get("alg", 0), jnp.int32)
        j = jnp.asarray(hp.get("inst", 0), jnp.int32)
        v = jnp.asarray(hp.get("nv", 0), jnp.int32)
        r = jnp.asarray(hp.get("rb", 0), jnp.int32)
        p = {k: jnp.asarray(a, dt if a.dtype.kind == "f" else None)[j, v, r, i] for k, a in table.items()}
        ns = jnp.asarray(hp.get("noise_scale", 1.0), dt)
        P = jax.tree.map(lambda *a: jnp.asarray(np.stack(a), dt)[j], *env_all)
        P = P._replace(sigma_x=P.sigma_x * ns, sigma_y=P.sigma_y * ns)
        c = {"arms": jnp.asarray(np.stack([I.arms for I in insts]), dt)[j],
             "U": jnp.asarray([np.max(np.linalg.norm(I.arms, axis=1)) for I in insts], dt)[j]}
        h = jnp.asarray(h_all, dt)[j]
        best_val = jnp.asarray(best_all, dt)[j]
        k0, krun = jax.random.split(key)
        s0 = (reset(k0, P), agent.init(k0, p, c), jnp.zeros((), dt), jnp.zeros((), dt), jnp.zeros((), jnp.int32))

        def round_(rand, state, t):
            env, ag, pseudo, realized, _ = state
            # rand depends on (seed, t) only, never on the algorithm: common random numbers
            ag, arm, u = agent.act(ag, t, rand["u"], p, c, hp)
            env, y = step_noise(env, u, P, rand["x"], rand["y"])
            ag = agent.update(ag, u, y, t, p, c)
            return (env, ag, pseudo + (best_val - h @ u), realized + (best_val - y), arm)

        def record(state, t):
            return {"pseudo_regret": state[2], "realized_regret": state[3], "arm_played": state[4]}

        res = scan_with_records(krun, round_, s0, record, n_steps=T, log_every=cfg.log_every, unroll=cfg.unroll,
                                noise=_noise_fn(n_x, dt), noise_chunk=noise_chunk_for(cfg.log_every, n_x + 2))
        ag = res.state[1]
        h_hat = ag.h if hasattr(ag, "h") else jnp.zeros(d, dt)
        return {"pseudo_regret": res.state[2], "realized_regret": res.state[3], "h_hat": h_hat,
                "diverged_step": res.diverged_step}, res.traj

    return run


def sim(cfg: BanditConfig) -> Sim:
    """The sweep bundle of ``cfg``: ``sweep(sim(cfg), axes, seeds=..., key=...)`` (run, config, record steps and
    the names of the outputs' trailing axes)."""
    return Sim.of(make_run(cfg), cfg, {"h_hat": ("coord",)})
