"""Figure scripts, one module per figure; ``python -m figures --help``."""
