"""Argument types and defaults shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

CELL_TIMEOUT = 600  # seconds a lecture cell may run in `normlab build` / `normlab slides`
COURSE_DIR = Path("build") / "nbgrader"  # the nbgrader course directory `normlab build` makes


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
