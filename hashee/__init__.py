"""hashee-bench: a benchmark harness for hash-based and instance-level early exit.

One sub-package per part, imports pointing one way (a package imports only the ones above it here):

- :mod:`hashee.core`: errors, cached artifacts, backbone loading, the multi-exit encoder, the cost model,
  operating points, statistics, DDP helpers;
- :mod:`hashee.hashes`: token hashes (tables, orderings, layer assignment, calibration, cache);
- :mod:`hashee.tasks`: task specs, data options, readers, sources, splits, metrics, ROUGE;
- :mod:`hashee.data`: batching and padding, the classification and seq2seq data modules;
- :mod:`hashee.seq2seq`: encoder-decoder layouts (BERT2BERT, BART), the network, generation, its cost;
- :mod:`hashee.methods`: the method base class, the full model, HashEE and their seq2seq variants
  (the baselines live in the top-level ``baselines`` package, wired in by Hydra ``_target_`` strings:
  ``hashee`` never imports them);
- :mod:`hashee.runs`: the results.json contract, run identity, W&B logging and the summary table;
- :mod:`hashee.experiments`: the shared run steps, one module per experiment, the dispatcher;
- :mod:`hashee.reports`: collecting, aggregating and rendering a sweep's report;
- :mod:`hashee.cli`: the ``hashee-bench`` and ``hashee-report`` commands, sweeps, the micro-benchmark.

Package ``__init__`` modules hold no code: import what you use from its module.
"""

__version__ = "0.1.0"
