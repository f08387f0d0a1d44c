"""Benchmarks (`make bench`): steps/s of vmapped sweeps vs NumPy and vs bare RNG; results in RESULTS.md."""
