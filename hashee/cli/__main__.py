"""``python -m hashee.cli``: the ``hashee-bench`` command."""

from hashee.cli.hashee_bench import main

main()
