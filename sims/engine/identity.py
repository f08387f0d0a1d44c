"""What made a result: the identity of the code (hash of the suite's source files a run imports), the config as
stable JSON, and the environment (versions, device, git commit, build flags). Every Dataset carries them, and the
sweep cache key hashes them, so a cached chunk is never reused after the code or the build changed."""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import os
import platform
import subprocess
import threading
from pathlib import Path
from typing import Any

import jax

from sims.engine.build import build_flags

__all__ = ["code_identity", "config_to_json", "environment", "git_commit", "SUITE_ROOT", "module_path"]

SUITE_ROOT = Path(__file__).resolve().parents[2]
# CPython 3.11's ast.parse is not safe to call from several threads at once ("AST constructor recursion depth
# mismatch", seen with concurrent sweeps whose code identity was not yet cached): one parse at a time
_PARSE_LOCK = threading.Lock()
SUITE_PACKAGES = ("sims", "theory", "figures")


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=SUITE_ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except Exception:  # pragma: no cover - git missing
        return "unknown"


def module_path(module: str) -> Path | None:
    """The source file of a suite module (``pkg.mod`` -> pkg/mod.py, a package -> its ``__init__.py``), or None."""
    parts = module.split(".")
    if parts[0] not in SUITE_PACKAGES:
        return None
    base = SUITE_ROOT.joinpath(*parts)
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def _resolve(name: str) -> str | None:
    """The longest prefix of an imported dotted name that is a suite module (``sims.engine.plan.plan`` ->
    ``sims.engine.plan``)."""
    parts = name.split(".")
    for i in range(len(parts), 1, -1):
        m = ".".join(parts[:i])
        if module_path(m) is not None:
            return m
    return None


def _suite_imports(module: str) -> set[str]:
    """Suite modules imported by the source of ``module``, read by the AST (a package imports its ``__init__``)."""
    path = module_path(module)
    if path is None:
        return set()
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(p for p in up + [base] if p)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            m = _resolve(n)
            if m is not None:
                out.add(m)
    return out


@functools.cache
def code_identity(module: str) -> tuple[str, tuple[str, ...]]:
    """(sha256[:16] of the source files, their paths) of ``module`` and every suite module it imports,
    transitively. Modules outside the suite (a user's notebook) contribute their name only."""
    seen, todo = set(), [module]
    with _PARSE_LOCK:
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            todo += sorted(_suite_imports(m) - seen)
    h = hashlib.sha256()
    files = []
    for m in sorted(seen):
        path = module_path(m)
        h.update(m.encode())
        if path is not None:
            h.update(path.read_bytes())
            files.append(str(path.relative_to(SUITE_ROOT)))
    return h.hexdigest()[:16], tuple(files)


def config_to_json(cfg: Any) -> str:
    """A stable JSON string for a config (dataclass, NamedTuple or mapping)."""
    if dataclasses.is_dataclass(cfg):
        cfg = dataclasses.asdict(cfg)
    elif hasattr(cfg, "_asdict"):
        cfg = cfg._asdict()
    return json.dumps(cfg, sort_keys=True, default=repr)


def host_cpu() -> str:
    """The host CPU's model, core count and the vector instruction sets XLA's CPU kernels choose their code paths by
    (so float rounding, and with it chaotic runs such as the transformers', can differ between hosts), from
    ``/proc/cpuinfo`` where there is one, else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read(1 << 16)
    except OSError:
        return platform.processor() or platform.machine()
    field = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in info.splitlines()[:40]) if v}
    flags = set(field.get("flags", "").split())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16") if f in flags]
    return f"{field.get('model name', platform.machine())}; {os.cpu_count()} cores; {' '.join(isa) or 'no avx2'}"


def environment() -> dict:
    """What ran the computation: JAX/jaxlib versions, device, host CPU, process count, git commit, build flags."""
    import jaxlib

    d = jax.devices()[0]
    return {"jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__, "device_kind": d.device_kind,
            "platform": d.platform, "device_count": jax.device_count(), "process_count": jax.process_count(),
            "host_cpu": host_cpu(), "git_commit": git_commit(),
            "build_flags": json.dumps(build_flags(), sort_keys=True)}
