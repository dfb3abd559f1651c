"""The methods of this package: the base LightningModule (``base``), the full model, HashEE, and their
encoder-decoder versions. The baselines are the top-level ``baselines`` package (never imported here)."""
