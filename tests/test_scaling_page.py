"""docs/scaling.md follows from its own measurements.

The page is written by benchmarks/scaling.py (not scanned for typed numbers: it is a
record with its command and date). Here its measured inputs are read back from the page
and its tables computed again from them: a measurement edited without the arithmetic, or
the arithmetic without the measurement, fails. The arithmetic is also checked for what
the page says it means, independently of the script's formulas.
"""

from __future__ import annotations

import importlib.util
import math
import re

import pytest

from support import ROOT

PAGE = ROOT / "docs" / "scaling.md"


def load_script():
    spec = importlib.util.spec_from_file_location("scaling_benchmark", ROOT / "benchmarks" / "scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scaling = load_script()


def measured_inputs(text: str) -> dict:
    """The values of the page's measured-inputs table, by key."""
    values = {}
    for key, _, fmt in scaling.MEASURED:
        match = re.search(rf"^\| `{key}` \| ([^|]+) \|", text, re.MULTILINE)
        assert match, f"the page has no row for {key}"
        values[key] = int(match.group(1)) if fmt == "{}" else float(match.group(1))
    return values


def tables_not_on_the_page(text: str) -> list[str]:
    """The tables computed from the page's measured inputs that the page does not show."""
    return [table for table in scaling.tables(measured_inputs(text)) if table not in text]


def test_every_table_of_the_page_follows_from_its_measured_inputs():
    missing = tables_not_on_the_page(PAGE.read_text(encoding="utf-8"))
    assert not missing, "the page's tables differ from the arithmetic on its inputs:\n" + "\n\n".join(missing)


def test_the_arithmetic_means_what_the_page_says():
    measured = measured_inputs(PAGE.read_text(encoding="utf-8"))
    derived = scaling.plan(measured)
    s, o, p, n = derived["s"], derived["o"], derived["p"], scaling.SUBMISSIONS
    assert s > 0 and p >= 0
    # the line through the two one-worker runs' CPU seconds
    assert o + measured["n_small"] * (s + p) == pytest.approx(measured["cpu_small_w1"])
    assert o + measured["n_large"] * (s + p) == pytest.approx(measured["cpu_large_w1"])
    for target in derived["targets"]:
        budget = 60 * target["minutes"] - o
        workers = target["workers"]
        if workers is None:
            continue
        assert math.ceil(n / workers) * s <= budget  # these workers finish in time ...
        assert workers == 1 or math.ceil(n / (workers - 1)) * s > budget  # ... and one fewer would not
        graders = target["graders"]
        assert graders * budget >= n * p and (graders == 1 or (graders - 1) * budget < n * p)
    minutes = [c["minutes"] for c in derived["clusters"]]
    assert minutes == sorted(minutes, reverse=True)  # more workers never take longer


def test_a_measurement_edited_on_the_page_fails_the_check():
    text = PAGE.read_text(encoding="utf-8")
    row = re.search(r"^\| `wall_large_w1` \| ([^|]+) \|", text, re.MULTILINE)
    edited = text.replace(row.group(0), f"| `wall_large_w1` | {float(row.group(1)) + 30:.1f} |")
    assert tables_not_on_the_page(edited)
