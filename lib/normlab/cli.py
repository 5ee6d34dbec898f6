"""The `normlab` command: one entry point for instructors, students and TAs.

Each subcommand lives in the module that does the work and registers itself here
through an ``add_parser(subparsers)`` function returning the handler.
"""

from __future__ import annotations

import argparse
import sys

from normlab import __version__

# Modules that contribute a subcommand through `add_parser(subparsers)`.
SUBCOMMAND_MODULES: list[str] = ["build", "assignments", "experiments", "grading", "slides"]


class UserError(Exception):
    """A problem with what the user asked for: printed as one clear line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normlab",
        description="normlab: a course on normalization in deep learning. "
        "Build the course, check an assignment, grade a class, run the experiments.",
    )
    parser.add_argument("--version", action="version", version=f"normlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        module = __import__(f"normlab.{module_name}", fromlist=["add_parser"])
        module.add_parser(subparsers)
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
