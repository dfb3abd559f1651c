"""``python -m hashee.assets ...`` (``make mpnet``): kept as the asset command's name; the code is :mod:`hashee.cli.assets`."""

import sys

from hashee.cli.assets import main

if __name__ == "__main__":
    sys.exit(main())
