"""The sweep engine, one concern per module (the public face is :mod:`sims.sweep`):

- :mod:`~sims.engine.options`: the options a sweep runs under (one frozen object in one context variable);
- :mod:`~sims.engine.loop`: the training loop every sim uses (``scan_with_records``);
- :mod:`~sims.engine.build`: XLA options, build flags, the compiled sweep program;
- :mod:`~sims.engine.plan`: hparam points, chunk layout, memory estimate, sweep id;
- :mod:`~sims.engine.identity`: code identity, config JSON, environment (provenance);
- :mod:`~sims.engine.cache`: the chunk cache (resume after Ctrl-C; prune);
- :mod:`~sims.engine.results`: a config-keyed cache of experiment results shared between figures;
- :mod:`~sims.engine.progress`: the progress bar / log lines fed from inside compiled chunks;
- :mod:`~sims.engine.execute`: one chunk, Ctrl-C-interruptible calls, concurrent calls;
- :mod:`~sims.engine.distributed`: several processes as one SPMD program per chunk;
- :mod:`~sims.engine.assemble`: chunks -> one self-describing Dataset; provenance collectors.
"""
