"""The `normlab` command: one entry point for instructors, students and TAs.

Each subcommand is a module of `normlab_tools.commands` with ``add_parser(subparsers)``
(its arguments, handler in ``args.handler``).
"""

from __future__ import annotations

import argparse
import sys

from normlab import __version__
from normlab_tools.commands import build, check, experiments, export, feedback, grade, slides
from normlab_tools.errors import UserError

COMMANDS = [build, slides, check, grade, export, feedback, experiments]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normlab",
        description="normlab: a course on normalization in deep learning. "
        "Build the course, check an assignment, grade a class, export its grades and feedback, run the experiments.",
    )
    parser.add_argument("--version", action="version", version=f"normlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"normlab {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"normlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
