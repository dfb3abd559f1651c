"""Command lines: ``hashee-bench`` (``hashee_bench``, with ``sweep``'s Hydra callback), ``hashee-report``
(``hashee_report``), the offline assets (``assets``) and the micro-benchmark (``microbench``)."""
