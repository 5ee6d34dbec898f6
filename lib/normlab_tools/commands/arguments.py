"""Argument types and defaults shared by the subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

CELL_TIMEOUT = 600  # seconds a lecture cell may run in `normlab build` / `normlab slides`
COURSE_DIR_VARIABLE = "NORMLAB_COURSE_DIR"  # a TA sets it once (e.g. in ~/.bashrc) to keep grades elsewhere


def default_course_dir() -> Path:
    """The grading course directory: $NORMLAB_COURSE_DIR, else nbgrader-course/ in the
    current folder (outside build/, which `make clean` deletes)."""
    return Path(os.environ.get(COURSE_DIR_VARIABLE) or "nbgrader-course")


COURSE_DIR = default_course_dir()  # where `normlab grade` keeps the gradebook (never build/)


def lecture_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a lecture number like 01")
    return int(text)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}")
    return value


def add_project_arguments(parser, timeout_help: str) -> None:
    """--root, --out, --no-execute and --timeout: how `build` and `slides` find the project."""
    parser.add_argument("--root", help="the project folder, holding course/ (default: found from here)")
    parser.add_argument("--out", help="output folder (default: ROOT/build)")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="convert without running the notebooks (no outputs, no plots)")
    parser.add_argument("--timeout", type=positive_int, default=CELL_TIMEOUT, metavar="S",
                        help=f"{timeout_help} (default {CELL_TIMEOUT})")
