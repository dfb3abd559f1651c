"""What one run leaves behind: the results.json contract (``results``), its identity (``identity``: config
and code fingerprints, how a run is named), W&B logging (``logger``) and the summary table (``summary``)."""
