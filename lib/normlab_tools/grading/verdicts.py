"""Why a graded cell lost its points, in words: one rule for `normlab check`, grades.csv,
the summary and the students' feedback.

A test cell scores 0 (nbgrader's rule) when it raises or writes to stderr; the reason is
the exception's first line (for a bare ``assert``, the failing line), "wrote to stderr:
..." or "timed out after S s"; a cell a TA has still to grade is "waiting for manual
grading", never a lost point.
"""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NOT_ANSWERED = "not answered yet (replace the `raise NotImplementedError()`)"


def cell_failure(cell, points, max_points) -> str | None:
    """Why an executed test cell lost points: its error, else its stderr, else a partial score."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return describe_error(output)
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            first = output.get("text", "").strip().splitlines()
            return "wrote to stderr (a test cell that does scores 0): " + (first[0][:200] if first else "")
    if points is not None and max_points and points < max_points:
        return f"partial credit {points:g} of {max_points:g}"
    return None


def describe_error(output) -> str:
    """An error output in one or a few lines: the exception and its message."""
    ename, evalue = output.get("ename", "Error"), ANSI.sub("", output.get("evalue") or "").strip()
    if ename == "NotImplementedError":
        return NOT_ANSWERED
    if ename in ("CellTimeoutError", "KeyboardInterrupt"):  # the grader interrupts a cell at its time limit
        return "timed out: interrupted at the cell's time limit" + (f" ({evalue})" if evalue else "")
    if ename == "NameError":
        return f"NameError: {evalue} (did the cell defining it run without errors?)"
    if evalue:
        return f"{ename}: {evalue}"
    # A bare `assert condition`: show the failing line of the test cell.
    lines = [ANSI.sub("", line) for line in output.get("traceback", [])]
    arrows = [line for chunk in lines for line in chunk.splitlines() if line.lstrip().startswith("---->")]
    where = re.sub(r"^\s*---->\s*\d*\s*", "", arrows[-1]).strip() if arrows else ""
    return f"{ename}" + (f" at: {where}" if where else "")


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def lost_text(lost: list[tuple[str, str]], shown: int = 4) -> str:
    """"lost points on a, b (why), c (why) and N more": the first `shown` cells, each run of
    cells that lost their points for the same reason named once."""
    groups: list[tuple[list[str], str]] = []
    for gid, why in lost[:shown]:
        if groups and groups[-1][1] == why:
            groups[-1][0].append(gid)
        else:
            groups.append(([gid], why))
    text = ", ".join(", ".join(ids) + (f" ({why})" if why else "") for ids, why in groups)
    return "lost points on " + text + (f" and {len(lost) - shown} more" if len(lost) > shown else "")


def lost_points(notebooks, scores: dict, pending: set) -> list[tuple[str, str]]:
    """(grade_id, why) of every autograded cell that lost points, in notebook order.

    `notebooks`: the autograded notebooks (nbformat objects); `scores`: grade_id ->
    points; `pending`: the grade_ids still waiting for a TA (never counted as lost).
    """
    from nbgrader import utils

    lost = []
    for notebook in notebooks:
        for cell in notebook.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            gid = meta.get("grade_id")
            if not utils.is_grade(cell) or gid in pending:
                continue
            max_points = float(meta.get("points", 0))
            points = scores.get(gid, 0.0)
            if points < max_points:
                why = cell_failure(cell, points, max_points) if cell.cell_type == "code" else None
                lost.append((gid, first_line(why or f"scored {points:g} of {max_points:g}")))
    return lost
