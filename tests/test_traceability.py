"""docs/traceability.md, the seed → lecture table, checked against the lectures' sources.

Every row names one or more files of course/ or solutions/ and, in the same order, one
anchor per file: a short phrase that must occur in that file's source. Matching ignores
case, collapses whitespace and strips Jupytext's comment markers ("# ") at line starts, so
an anchor may run over a line break of a markdown cell. The seeds themselves live outside
the repository; the table must have a section for each of the five, with at least the
number of rows given in SEEDS, and a status of measured / claim / errata in every row.

A lecture rewrite that removes an anchored passage fails here, naming the row; fix the
anchor, or drop the row (and report the claim as uncovered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "traceability.md"
STATUSES = ("measured", "claim", "errata")

# seed number -> (file name, a word its section title must contain, minimum number of rows).
# The minimums follow what the seeds contain: Raschka's slides and Schilling's talk make
# dozens of distinct claims (formulas, benchmark tables, eight experiments with side notes
# and recommendations); Silva's slides fewer, much of them quoted abstracts; the UCLA sheet
# is two pages of prose plus exercises; the study note is a one-page summary.
SEEDS = {
    "000": ("000_2db00c2b3cba05ff.txt", "Raschka", 25),
    "001": ("001_8fce59d4ae137a97.txt", "Schilling", 30),
    "002": ("002_bfcb44ced5096608.txt", "Silva", 20),
    "003": ("003_54d2c696bd2ef791.txt", "UCLA", 12),
    "004": ("004_811f44c9a3d0c7e1.txt", "study note", 15),
}

SECTION = re.compile(r"^## Seed (\d{3}) — (.+)$")
CODE = re.compile(r"`([^`]+)`")


@dataclass
class Row:
    seed: str
    line: int
    claim: str
    files: list[str]
    status: str
    anchors: list[str]


@dataclass
class Section:
    seed: str
    title: str
    description: str
    rows: list[Row]


def parse(text: str) -> dict[str, Section]:
    """The sections of the table file, by seed number, with their rows."""
    sections: dict[str, Section] = {}
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        heading = SECTION.match(line)
        if heading:
            current = Section(heading.group(1), heading.group(2), "", [])
            sections[current.seed] = current
            continue
        if current is None:
            continue
        if not current.description and line.startswith("`") and not line.startswith("|"):
            current.description = line
            continue
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| claim |"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4:
            raise ValueError(f"line {number}: expected 4 cells, found {len(cells)}: {line}")
        claim, files, status, anchors = cells
        current.rows.append(Row(current.seed, number, claim, CODE.findall(files), status, CODE.findall(anchors)))
    return sections


def normalized(text: str) -> str:
    """Lower case, Jupytext comment markers stripped at line starts, whitespace collapsed."""
    lines = (re.sub(r"^\s*#\s?", "", line) for line in text.splitlines())
    return " ".join(" ".join(lines).split()).lower()


def problems(text: str, root: Path = ROOT) -> list[str]:
    """Everything wrong with a table text, as one message per problem (empty: all good)."""
    found, sources = [], {}
    try:
        sections = parse(text)
    except ValueError as error:
        return [str(error)]
    for seed, (file_name, title_word, minimum) in SEEDS.items():
        section = sections.get(seed)
        if section is None:
            found.append(f"no section for seed {seed} ({file_name})")
            continue
        if title_word.lower() not in section.title.lower():
            found.append(f"seed {seed}: title {section.title!r} does not name {title_word!r}")
        if file_name not in section.description:
            found.append(f"seed {seed}: the line under the title does not give the file name {file_name}")
        if len(section.rows) < minimum:
            found.append(f"seed {seed}: {len(section.rows)} rows, at least {minimum} expected")
    for section in sections.values():
        for row in section.rows:
            where = f"line {row.line} (seed {row.seed})"
            if not (row.claim.startswith('"') and row.claim.count('"') >= 2):
                found.append(f"{where}: the claim is not quoted: {row.claim[:60]}")
            if row.status not in STATUSES:
                found.append(f"{where}: status {row.status!r} is not one of {STATUSES}")
            if not row.files:
                found.append(f"{where}: no lecture named")
            if len(row.files) != len(row.anchors):
                found.append(f"{where}: {len(row.files)} files but {len(row.anchors)} anchors")
                continue
            for file_name, anchor in zip(row.files, row.anchors):
                path = root / file_name
                if not (file_name.startswith(("course/", "solutions/")) and path.is_file()):
                    found.append(f"{where}: {file_name} is not a file of course/ or solutions/")
                    continue
                if file_name not in sources:
                    sources[file_name] = normalized(path.read_text(encoding="utf-8"))
                if normalized(anchor) not in sources[file_name]:
                    found.append(f"{where}: anchor {anchor!r} not found in {file_name}")
    return found


@pytest.fixture(scope="module")
def table_text():
    return TABLE.read_text(encoding="utf-8")


def test_every_row_is_anchored_in_its_lectures(table_text):
    assert problems(table_text) == []


def test_each_seed_has_a_section_with_enough_rows(table_text):
    sections = parse(table_text)
    assert set(sections) == set(SEEDS)
    for seed, (_, _, minimum) in SEEDS.items():
        assert len(sections[seed].rows) >= minimum, seed


def test_statuses_are_the_three_words(table_text):
    rows = [row for section in parse(table_text).values() for row in section.rows]
    assert rows and {row.status for row in rows} <= set(STATUSES)
    assert all(row.files and len(row.files) == len(row.anchors) for row in rows)


def test_normalization_joins_comment_lines():
    source = "# %% [markdown]\n# the gradient of larger\n#   parameter DOMINATES\n#\n# the update\nx = 1  # keep\n"
    assert "gradient of larger parameter dominates the update" in normalized(source)
    assert "x = 1 # keep" in normalized(source)


def _replace_first_anchor(text: str, replacement: str) -> tuple[str, str]:
    """The table with the anchor of its first row replaced; and the anchor replaced."""
    row = next(row for section in parse(text).values() for row in section.rows)
    lines = text.splitlines(keepends=True)
    original = row.anchors[0]
    cells = lines[row.line - 1].split("|")
    assert f"`{original}`" in cells[4]
    cells[4] = cells[4].replace(f"`{original}`", f"`{replacement}`", 1)
    lines[row.line - 1] = "|".join(cells)
    return "".join(lines), original


def test_the_checker_fails_on_a_planted_wrong_anchor(table_text, tmp_path):
    planted, original = _replace_first_anchor(table_text, "a phrase that no lecture of this course contains")
    copy = tmp_path / "traceability.md"
    copy.write_text(planted, encoding="utf-8")
    new = set(problems(copy.read_text(encoding="utf-8"))) - set(problems(table_text))
    assert len(new) == 1 and "a phrase that no lecture of this course contains" in new.pop()
    # the same anchor in other case and spacing still matches
    reflowed, _ = _replace_first_anchor(table_text, original.upper().replace(" ", "  ", 1))
    assert problems(reflowed) == problems(table_text)


def test_the_checker_fails_on_other_planted_mistakes(table_text):
    first = next(row for section in parse(table_text).values() for row in section.rows)
    line = table_text.splitlines()[first.line - 1]
    cases = {
        "status": line.replace(f"| {first.status} |", "| proven |"),
        "file": line.replace(f"`{first.files[0]}`", "`course/99_missing.py`", 1),
        "claim": line.replace(first.claim, first.claim.strip('"'), 1),
    }
    baseline = set(problems(table_text))
    for what, wrong in cases.items():
        assert set(problems(table_text.replace(line, wrong, 1))) - baseline, what
    assert set(problems(table_text.replace("## Seed 003", "## Not a seed", 1))) - baseline  # a section missing
