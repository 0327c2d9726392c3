"""``python -m tlc_probe.cli``: the ``tlc-probe`` command."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
