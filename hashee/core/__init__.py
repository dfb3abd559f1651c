"""Foundations every part builds on: errors, cached artifacts, backbones and assets, the multi-exit encoder,
the cost model (FLOPs and wall-clock), padding, operating points, statistics and DDP helpers."""
