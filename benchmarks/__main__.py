"""`python -m benchmarks [NAME ...]`: run benchmarks and append to benchmarks/RESULTS.md."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("quadratic", "river_valley", "lion", "schedules", "bandits", "bandit_figure", "bigram_backcopy",
              "bigram_backcopy_torch", "compile_times", "wsd_s_figure", "linear_attention", "radial_attention",
              "multiprocess", "char_lm")


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    for n in names:
        if n not in BENCHMARKS:
            print(f"error: unknown benchmark {n!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
    for n in names:
        print(f"== {n}")
        importlib.import_module(f"benchmarks.{n}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
