"""The ``tlc-probe`` parser and the one place where exceptions become messages.

Every command module defines ``NAME``, ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``
and ``run(args) -> int``, and may define ``FLAGS``: how the library's parameter names in
an error message read as this command's flags (``mode='resume'`` -> ``--resume``).
:func:`main` turns any exception of a command into one line on stderr,
``tlc-probe <command>: error: <message>``, and exit status 2 (``--debug`` re-raises).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from .._version import __version__
from . import bench, collect, evaluate, plot, reliance, reproduce, shift, train, tune
from .paths import CREATED, remove_empty_created

COMMANDS = (reproduce, train, evaluate, collect, shift, plot, bench, reliance, tune)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error:
    ``tlc-probe <command>: error: <message>``, exit status 2 (``-h`` shows the usage)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tlc-probe`` with one sub-command per module of
    :data:`COMMANDS`."""
    parser = _Parser(
        prog="tlc-probe",
        description="Measure global-statistics drift between patch training and whole-image "
        "inference, and how test-time local conversion (TLC) pulls it back.",
    )
    parser.add_argument("--version", action="version", version=f"tlc-probe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def error_line(command: object, error: BaseException) -> str:
    """``error`` as one line for ``command`` (a command module): the library's parameter
    names replaced by the command's flags (its ``FLAGS``), line breaks folded."""
    text = str(error) or type(error).__name__
    if isinstance(error, KeyError | AttributeError | TypeError | IndexError):
        text = f"{type(error).__name__}: {text}"
    for param, flag in getattr(command, "FLAGS", {}).items():
        # whole identifiers only, never inside a path or another word
        text = re.sub(rf"(?<![\w/.-]){re.escape(param)}(?![\w/-])", flag, text)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tlc-probe`` console script; returns the exit code: 0 on
    success, 2 for bad arguments or any error of the command (one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # usage errors (one line, status 2), --help and --version (0)
        return e.code if isinstance(e.code, int) else 2
    command = args._command
    try:
        return command.run(args)
    except KeyboardInterrupt:
        remove_empty_created()
        print(f"tlc-probe {command.NAME}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        remove_empty_created()  # an --out made for this run and left empty goes again
        if args.debug:
            raise
        print(f"tlc-probe {command.NAME}: error: {error_line(command, e)}", file=sys.stderr)
        return 2
    finally:
        CREATED.clear()


if __name__ == "__main__":
    sys.exit(main())
