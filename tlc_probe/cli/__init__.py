"""The ``tlc-probe`` command line: one module per command (``add_arguments`` / ``run``),
assembled and guarded by :mod:`tlc_probe.cli.main`."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
