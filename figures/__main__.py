"""``python -m figures {list,run,all,show,claims,replot,compare,cache}``: reproduce figures and check their claims.

Exit status: 0 when every claim passes (or is a documented "not reproduced" finding),
1 when a claim fails or a figure's runs diverged (one message each, nothing written for that figure),
2 on bad input (one message, nothing written).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the CLI draws to files; importing a figure elsewhere (a notebook) keeps its backend

from figures import _contract, _core  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: same one-line format, exit 2
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def fields_help(name: str) -> str:
    """Every config field of figure ``name``: quick default, full default, valid range, meaning."""
    fig = _contract.load(name)
    quick, full = fig.presets["quick"], fig.presets["full"]
    lines = [f"config fields of {name} (override with --set KEY=VALUE, nested ones by dotted path; lists "
             "comma-separated; booleans true/false):"]
    fulls = {n: v for n, _, v in _core.walk_fields(full)}
    panels = _core.set_in_panels(quick)
    for n, f, v in _core.walk_fields(quick):
        md = f.metadata
        lines.append(f"  {n}: quick {_short(v)}, full {_short(fulls.get(n))}; "
                     f"{_core._range_text(md)}" + (f". {md['help']}" if md.get("help") else "")
                     + (f" [not in every panel: {panels[n]}]" if n in panels else ""))
    return "\n".join(lines)


def _short(v) -> str:
    """A default as --help prints it: floats to 6 significant digits (1.66667, not 1.6666666666666667)."""
    if isinstance(v, float) and len(repr(v)) > 10:
        return f"{v:.6g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_short(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def show(name: str, preset: str, seeds, sets) -> str:
    """The resolved config of a figure (preset + --seeds + --set), one dotted field per line."""
    cfg = _core.resolve_config(_contract.load(name), preset, seeds, sets)
    return "\n".join([f"# {name} ({preset} preset{', with overrides' if sets or seeds else ''})"]
                     + [f"{n} = {v!r}" for n, _, v in _core.walk_fields(cfg)])


def _parser(run_epilog: str | None = None) -> argparse.ArgumentParser:
    p = _Parser(prog="python -m figures", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="name every figure with its description, paper and typical quick-preset time")

    def common(sp):
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--quick", dest="preset", action="store_const", const="quick", help="quick preset (default)")
        g.add_argument("--full", dest="preset", action="store_const", const="full", help="full, paper-size preset")
        g.add_argument("--tiny", dest="preset", action="store_const", const="tiny",
                       help="tiny preset (seconds; the tests' size: its statistical claims may not hold)")
        sp.set_defaults(preset="quick")
        sp.add_argument("--seeds", type=int, default=None,
                        help="number of seeds (the figure's `seeds` field: its range in `run NAME --help`)")
        sp.add_argument("--out", type=Path, default=None, help=f"output folder (default {_core.OUT_DIR})")
        sp.add_argument("--no-cache", dest="cache", action="store_false",
                        help=f"do not keep finished sweep chunks under OUT/{_core.CACHE_DIR} (default: keep them, "
                        "so that an interrupted run resumes)")
        sp.add_argument("--force", action="store_true",
                        help="run a sweep even when its estimated memory exceeds what is available (default: refuse "
                        "before compute, exit 2)")

    r = sub.add_parser("run", help="run one figure (NAME --help lists its config fields)", epilog=run_epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("name")
    common(r)
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    a = sub.add_parser("all", help="run every figure")
    common(a)
    s = sub.add_parser("show", help="print the resolved config of a figure (preset, --seeds, --set applied)")
    s.add_argument("name")
    common(s)
    s.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    c = sub.add_parser("claims", help="list the claims a figure states (statistic, regime) without running it; "
                       "given a saved run's .nc, evaluate its claims again with the current code (no recompute)")
    c.add_argument("name", nargs="?", default=None,
                   help="a figure (default: every figure), or a saved run's .nc / .claims.json")
    rp = sub.add_parser("replot", help="draw a saved run again from its NetCDF (no recompute); PNG beside it")
    rp.add_argument("file", type=Path, help="a figure's .nc (or its .claims.json)")
    cp = sub.add_parser("compare", help="two runs' configs and claims side by side")
    cp.add_argument("a", type=Path, help="a figure's .claims.json or .nc")
    cp.add_argument("b", type=Path)
    tm = sub.add_parser("timings", help="record the quick-preset times of a `figures all --quick` output folder in "
                        "figures/timings.json (what `list` shows)")
    tm.add_argument("folder", type=Path, help="the output folder of a `python -m figures all --quick` run")
    ca = sub.add_parser("cache", help=f"show (and with --prune clear) the sweep cache OUT/{_core.CACHE_DIR}")
    ca.add_argument("--out", type=Path, default=None, help=f"output folder (default {_core.OUT_DIR})")
    ca.add_argument("--prune", action="store_true", help="delete cached sweeps (all but the --keep newest)")
    ca.add_argument("--keep", type=int, default=0, help="with --prune: keep this many of the newest sweeps (>= 0)")
    return p


def _claim_line(c, name: str) -> str:
    """One claim as the run and claims verbs print it."""
    return f"  [{c.status.value:>14s}] {name}:{c.id}: {c.statement} (theory {c.theory}; sim {c.measured})"


def _other_verbs(args) -> int | None:
    """claims / replot / compare / cache; None for the verbs that run figures."""
    from figures import _api

    if args.cmd == "claims" and args.name and args.name.endswith((".nc", ".claims.json")):
        res = _api.open_run(Path(args.name))
        was = {c.id: c.status.value for c in res.claims}
        for c in _api.recheck(res):
            then = was.get(c.id, "-")
            print(_claim_line(c, res.name) + (f" (the run said: {then})" if then != c.status.value else ""))
        return 0
    if args.cmd == "claims":
        for name in [args.name] if args.name else _contract.names():
            print(f"{name}:")
            for c in _api.claims(name):
                print(f"  {c['id']}: {c.get('statement', '')}\n      statistic: {c.get('statistic', '')}"
                      + (f"\n      regime: {c['regime']}" if c["regime"] else ""))
        return 0
    if args.cmd == "replot":
        print(f"wrote {_api.replot(args.file)}")
        return 0
    if args.cmd == "compare":
        print(_api.compare(args.a, args.b))
        return 0
    if args.cmd == "timings":
        import datetime
        import json
        import os

        got = {}
        for p in sorted(Path(args.folder).glob("*.claims.json")):
            rec = json.loads(p.read_text())
            if rec.get("preset") == "quick" and not rec.get("overrides"):
                got[rec["figure"]] = rec["seconds"]
        missing = sorted(set(_contract.names()) - set(got))
        if missing:
            raise _core.UserError(f"{args.folder} lacks quick-preset runs of {missing}: run `figures all --quick`")
        _TIMINGS.write_text(json.dumps({
            "measured": datetime.date.today().isoformat(), "cpu_count": os.cpu_count(),
            "note": "seconds of each figure's quick preset in one `figures all --quick` run (compile included)",
            "quick_seconds": got}, indent=1) + "\n")
        print(f"wrote {_TIMINGS} ({len(got)} figures, {sum(got.values()) / 60:.1f} min in all)")
        return 0
    if args.cmd == "cache":
        from sims.engine import cache

        if args.keep < 0:
            raise _core.UserError(f"--keep={args.keep} is out of range: must be >= 0")
        root = Path(args.out or _core.OUT_DIR) / _core.CACHE_DIR
        rows = cache.usage(root)
        total = sum(r[2] for r in rows)
        print(f"{root}: {len(rows)} cached sweep(s), {total / 2**20:.1f} MiB")
        for sid, n, size, _ in rows:
            print(f"  {sid}  {n} chunk(s)  {size / 2**20:.2f} MiB")
        if args.prune:
            gone = cache.prune(root, keep=args.keep)
            print(f"pruned {len(gone)} sweep(s)")
        return 0
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    epilog = None
    if len(argv) >= 2 and argv[0] == "run" and argv[1] in _contract.names() and ({"-h", "--help"} & set(argv)):
        epilog = fields_help(argv[1])
    args = _parser(epilog).parse_args(argv)
    # warnings (diverged runs, unreadable cache chunks) as one line each on stderr
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    _progress_lines()
    if args.cmd == "list":
        typical = _typical_seconds()
        for name in _contract.names():
            fig = _contract.load(name)
            t = typical.get(name)
            print(f"{name:22s} {_fmt_time(t):>9s}  {fig.description}  [{fig.paper}]")
        print(f"(time: the quick preset on a 2-core CPU, measured in one `figures all --quick` run ({_TIMINGS.name}); "
              "figures that share an experiment (bb_attention / bb_interventions, subnet_mechanism / subnet_sparsity) "
              "show it once, in the first of the pair: alone, the second takes about the first's time)")
        return 0
    try:
        rc = _other_verbs(args)
    except _core.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if rc is not None:
        return rc
    if args.cmd == "show":
        try:
            print(show(args.name, args.preset, args.seeds, args.sets))
        except _core.UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    names = [args.name] if args.cmd == "run" else list(_contract.names())
    try:
        # validate every requested figure's config before running anything (--seeds by the figure's own range)
        for n in names:
            _core.resolve_config(_contract.load(n), args.preset, args.seeds, getattr(args, "sets", ()))
        _core.check_out_dir(args.out)
    except _core.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from sims.engine.results import ResultCache
    from sims.sweep import options

    with options(results=ResultCache()):  # figures run together share their experiments (one training each)
        return _run_all(args, names)


def _release_compiled() -> None:
    """Drop every compiled program between figures (their results are kept): each XLA CPU executable holds memory
    maps, and one process running every figure ran past the kernel's map limit (LLVM "Cannot allocate memory", a
    segfault, at the 33rd figure; /proc/self/maps grew by ~5,000 per schedule figure and fell back after this)."""
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


def _run_all(args, names) -> int:
    failed = []
    for n in names:
        _release_compiled()
        try:
            claims = _core.run_figure(n, args.preset, args.seeds, getattr(args, "sets", ()), args.out, args.cache,
                                      force=args.force)
        except ValueError as e:  # input only the computation could judge (e.g. a sweep too large): nothing written
            print(f"error: {n}: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            cache = Path(args.out or _core.OUT_DIR) / _core.CACHE_DIR
            keep = (f"finished sweep chunks are kept in {cache}; run the same command again to resume"
                    if cache.is_dir() else "no sweep chunk had finished") if args.cache else "nothing kept (--no-cache)"
            print(f"\ninterrupted during {n}: {keep}", file=sys.stderr)
            return 130
        except _core.Diverged as e:  # reported, never plotted: the next figure still runs
            print(f"error: {n}: {e}", file=sys.stderr)
            failed.append(n)
            continue
        for c in claims:
            print(_claim_line(c, n))
        failed += [c for c in claims if c.status is _core.Status.FAIL]
    out = args.out or _core.OUT_DIR
    print(f"report: {Path(out) / 'REPORT.md'}")
    if failed:
        print(f"{len(failed)} claim(s) FAILED or figure(s) diverged", file=sys.stderr)
        return 1
    return 0


_TIMINGS = Path(__file__).resolve().parent / "timings.json"


def _typical_seconds() -> dict:
    """name -> seconds of the quick preset, as measured by `make figures` on a 2-core CPU (figures/timings.json)."""
    import json

    try:
        return json.loads(_TIMINGS.read_text())["quick_seconds"]
    except (OSError, ValueError, KeyError):
        return {}


def _fmt_time(t) -> str:
    if t is None:
        return "?"
    return f"~{t:.0f} s" if t < 90 else f"~{t / 60:.1f} min"


def _progress_lines() -> None:
    """Progress as periodic lines on stderr when it is not a terminal (a log file), plain, without the warning
    prefix."""
    lg = logging.getLogger("sims.progress")
    if not lg.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        lg.addHandler(h)
        lg.setLevel(logging.INFO)
        lg.propagate = False


def entry() -> None:
    """The console script: like ``python -m figures``. After Ctrl-C it exits at once, without waiting for the
    abandoned compiled chunk (its thread is a daemon; finished chunks are already saved)."""
    rc = main()
    if rc == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(rc)


if __name__ == "__main__":
    entry()
