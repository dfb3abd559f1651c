"""A sweep's report: collect the runs (``collect``), aggregate over seeds (``aggregate``), render markdown,
HTML and CSV (``render``), plots (``plots``), statistics (``statistics``), per-exit heads (``diagnostics``),
W&B (``wandb_report``), all of it written by ``build``."""
