"""Instance-level early-exit baselines, each in its own file, built on `hashee`."""
