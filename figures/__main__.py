"""``python -m figures {list,run,all,show}``: reproduce figures and check their claims.

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
    for n, f, v in _core.walk_fields(quick):
        md = f.metadata
        lines.append(f"  {n}: quick {v!r}, full {fulls.get(n)!r}; "
                     f"{_core._range_text(md)}" + (f". {md['help']}" if md.get("help") else ""))
    return "\n".join(lines)


def show(name: str, preset: str, seeds, sets) -> str:
    """The resolved config of a figure (preset + --seeds + --set), one dotted field per line."""
    cfg = _core.resolve_config(_contract.load(name), preset, seeds, sets)
    return "\n".join([f"# {name} ({preset} preset{', with overrides' if sets or seeds else ''})"]
                     + [f"{n} = {v!r}" for n, _, v in _core.walk_fields(cfg)])


def _parser(run_epilog: str | None = None) -> argparse.ArgumentParser:
    p = _Parser(prog="python -m figures", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="name every figure with its description and paper")

    def common(sp):
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--quick", dest="preset", action="store_const", const="quick", help="quick preset (default)")
        g.add_argument("--full", dest="preset", action="store_const", const="full", help="full, paper-size preset")
        sp.set_defaults(preset="quick")
        sp.add_argument("--seeds", type=int, default=None, help="number of seeds (>= 1)")
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
    return p


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
        for name in _contract.names():
            fig = _contract.load(name)
            print(f"{name:28s} {fig.description}  [{fig.paper}]")
        return 0
    if args.cmd == "show":
        try:
            print(show(args.name, args.preset, args.seeds, args.sets))
        except _core.UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    names = [args.name] if args.cmd == "run" else list(_contract.names())
    try:
        # validate every requested figure's config before running anything
        if args.seeds is not None and args.seeds < 1:
            raise _core.UserError(f"--seeds={args.seeds} is out of range: must be >= 1")
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


def _run_all(args, names) -> int:
    failed = []
    for n in names:
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
            print(f"  [{c.status.value:>14s}] {n}:{c.id}: {c.statement} (theory {c.theory}; sim {c.measured})")
        failed += [c for c in claims if c.status is _core.Status.FAIL]
    out = args.out or _core.OUT_DIR
    print(f"report: {Path(out) / 'REPORT.md'}")
    if failed:
        print(f"{len(failed)} claim(s) FAILED or figure(s) diverged", file=sys.stderr)
        return 1
    return 0


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
