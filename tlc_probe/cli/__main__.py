"""``python -m tlc_probe.cli``: the ``tlc-probe`` command."""

import sys

from .main import main

sys.exit(main())
