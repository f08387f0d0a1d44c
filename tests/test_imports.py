"""The suite's import rules, read from the source by the AST (nothing is imported to check them).

1. ``theory/`` is the independent reference: it never imports ``sims`` or ``figures``.
2. ``sims/`` never imports ``figures``.
3. A topic module imports only the shared core and its own topic (no copy-paste, but no hidden coupling either):
   the topic of each module is declared in :data:`TOPIC` below; a new module must be declared there.
4. ``tests/reference/`` (the independent NumPy references) imports neither ``sims``, ``theory`` nor ``figures``.

Each rule is checked by :func:`violations`, which is itself tested on a planted violation (it can fail).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ("sims", "theory", "figures")

# The shared machinery every topic may import (sweep engine, configuration, shared libraries of the field).
CORE = {
    "sims.sweep",  # the sweep engine's public face (its modules: sims.engine.*, all core)
    "sims.tree",  # arms that share their first steps, trained once (a sweep as a tree of segments)
    "sims.tune",  # the lr tuner (schedules compared at each one's own optimum)
    "sims.config",  # configuration fields (param, validation)
    "sims.schedules",  # the schedule library (optax) used by every optimization topic
    "sims.schedule_specs",  # schedules named by data (specs, the multi-budget protocols)
    "sims.linear_attention",  # the linear-attention operators: also the shared transformer's "gla" token mixer
    "sims.bigram_data",  # the shared data: bigram Markov chains (river-valley LM, Bigram-Backcopy, subnetworks)
    "sims.text_data",  # the shared data: the text of Shakespeare's plays (the char LM; the chain's source)
    "sims.transformer",  # the ONE shared transformer (Bigram-Backcopy, subnetworks, the char LM, MQAR)
    "sims.lightnet",  # LightNet's additive decay: also a token mixer of the shared transformer
}
# module -> topic. One topic per paper family; its sims and theory modules share it.
TOPIC = {
    "sims.bandits": "bandits", "sims.bandit_instances": "bandits", "sims.bandit_algorithms": "bandits",
    "sims.bandit_agents": "bandits", "theory.bandits": "bandits",
    "sims.bigram_backcopy": "bigram",
    "sims.subnetworks": "bigram", "sims.subnet_experiment": "bigram", "theory.bigram": "bigram",
    "theory.bigram_backcopy": "bigram",
    "sims.convex_sgd": "schedules", "theory.schedules": "schedules",
    "sims.quadratic": "river", "sims.river_valley": "river", "theory.quadratic": "river",
    "theory.river_valley": "river",
    "sims.lion": "lion", "theory.lion": "lion",
    "sims.linear_attention": "linear_attention", "sims.lightnet": "linear_attention", "sims.mqar": "linear_attention",
    "theory.linear_attention": "linear_attention",
    "sims.radial_attention": "radial_attention", "theory.radial_attention": "radial_attention",
    "sims.char_lm": "text",
}


def imported_modules(source: str, package: str = "") -> set[str]:
    """Absolute names of every module a source file imports (``from a import b`` counts ``a`` and ``a.b``;
    relative imports are resolved against ``package``)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in parts + [base] if p)
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m}


def _suite_module(name: str) -> str | None:
    """The suite module an import name refers to (``pkg.mod``, or ``pkg.sub.mod`` inside a sub-package such as
    ``sims.engine``), or None for third-party imports."""
    parts = name.split(".")
    if parts[0] not in SUITE:
        return None
    for i in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:i])
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return ".".join(parts[:i])
    return parts[0]


def in_core(module: str) -> bool:
    return module in CORE or module.startswith("sims.engine")


def violations(module: str, source: str) -> list[str]:
    """Every rule broken by ``source``, the text of module ``module`` (e.g. ``sims.bandits``)."""
    bad = []
    pkg = module.split(".")[0]
    targets = {}
    for imp in sorted(imported_modules(source, module.rsplit(".", 1)[0])):
        tgt = _suite_module(imp)
        if tgt is not None and "." in tgt:  # skip third party and bare packages (`from sims import x` is sims.x)
            targets.setdefault(tgt, imp)
    for tgt, imp in sorted(targets.items()):
        top = tgt.split(".")[0]
        if module.startswith("tests.reference") and top in SUITE:
            bad.append(f"{module} imports {imp}: the independent references import none of {SUITE}")
        elif pkg == "theory" and top in ("sims", "figures"):
            bad.append(f"{module} imports {imp}: theory/ never imports sims/ or figures/")
        elif pkg == "sims" and top == "figures":
            bad.append(f"{module} imports {imp}: sims/ never imports figures/")
        elif module in TOPIC and not in_core(tgt) and top in ("sims", "theory"):
            if TOPIC.get(tgt) != TOPIC[module]:
                bad.append(f"{module} (topic {TOPIC[module]}) imports {imp} (topic {TOPIC.get(tgt)}): a topic "
                           "imports only the core and its own topic")
    return bad


def _modules():
    for pkg in ("sims", "sims/engine", "theory"):
        for p in sorted((ROOT / pkg).glob("*.py")):
            if p.stem != "__init__":
                yield f"{pkg.replace('/', '.')}.{p.stem}", p
    for p in sorted((ROOT / "tests" / "reference").glob("*.py")):
        yield f"tests.reference.{p.stem}", p


MODULES = dict(_modules())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_import_rules(module):
    assert violations(module, MODULES[module].read_text()) == []


def test_every_topic_module_is_declared():
    undeclared = [m for m in MODULES if not m.startswith("tests.") and m not in TOPIC and not in_core(m)]
    assert undeclared == [], f"declare the topic of {undeclared} in tests/test_imports.py"


@pytest.mark.parametrize("module, source, expected", [
    ("theory.lion", "from sims import lion\n", "theory/ never imports sims/"),
    ("theory.lion", "import figures._core\n", "theory/ never imports sims/"),
    ("sims.lion", "from figures._core import param\n", "sims/ never imports figures/"),
    ("sims.lion", "from sims.bandits import instance\n", "a topic imports only the core"),
    ("sims.bandits", "from theory import lion as tl\n", "a topic imports only the core"),
    ("tests.reference.bandits", "from theory.bandits import synthetic\n", "independent references"),
    ("tests.reference.bandits", "import sims.sweep\n", "independent references"),
])
def test_the_checker_catches_planted_violations(module, source, expected):
    bad = violations(module, source)
    assert len(bad) == 1 and expected in bad[0], bad


def test_allowed_imports_pass():
    assert violations("sims.bandits", "from sims.sweep import sweep\nfrom theory import bandits as tb\n") == []
    assert violations("sims.river_valley", "from sims import schedules\nimport numpy as np\n") == []
