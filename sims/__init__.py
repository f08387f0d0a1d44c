"""JAX simulations. Each topic is one module (``sims/quadratic.py``, ...); shared machinery in
``sims/sweep.py`` (sweep engine + the one training loop) and ``sims/schedules.py``."""
