"""No measured number typed by hand: the scan of the course's prose.

A lecture must never state a number its own outputs no longer show, so a measured figure
is rendered from the computation (`normlab.notebook.prose`, in a code cell tagged
remove-input) and never typed into Markdown. This test reads every Markdown cell of the
lectures, solutions and assignments and every Markdown page of docs/ and the README, and
fails on anything that looks like a measured result typed by hand:

* a decimal number (``0.998824``, ``5.8``), a percentage (``37 %``, ``10.9%``), or a
  factor (``5×``, ``5x``, ``five times``, ``3-fold``) in plain prose.

What is not prose is not read: LaTeX math (``$...$``, ``$$...$$``), code (inline and
fenced), quotations ("…", “…”: the seeds' own numbers, quoted with their source), HTML
comments and the section numbers of headings (``### 1.2``). So the conventions are: a constant or setting is written as math or code
($p = 0.5$, ``lr=0.1``), a seed's number is quoted, a measured number comes from a
prose cell. ``ALLOWED`` lists the few phrases that are neither, each with its reason.

Not scanned: docs/scoreboards/*.md (the output of ``normlab experiments``, saved with the
command and the date it ran) and benchmarks/README.md (the record of measured timings,
each table with its command and date) — records of a run, not prose about one; and
docs/traceability.md, a table of the seeds' own claims (their words and numbers, no
measurement of ours), checked by tests/test_traceability.py.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Phrases with a number that is not a measurement, and why they may stay as text.
ALLOWED = {
    "0.5 percentage points": "the verdict rule's delta, a definition (normlab.stats.ACCURACY_DELTA)",
    "5 % of B's mean": "the verdict rule's delta for times, a definition (normlab.stats.TIME_DELTA_FRACTION)",
    "5 % of the slower": "the verdict rule's delta for times, a definition",
    "Python 3.11": "a version, not a measurement",
    "reveal.js 4.0.2": "a version, not a measurement",
    "MathJax 2.7.7": "a version, not a measurement",
    "require.js 2.1.10": "a version, not a measurement",
    "nbgrader 0.9": "a version, not a measurement",
    "torch 2.14": "a version, not a measurement",
}

#: Pages of docs/ that are not prose about our measurements (see the module docstring).
NOT_SCANNED = {
    "traceability.md",
    "scaling.md",  # a record written by benchmarks/scaling.py, with its command and date (like the scoreboards)
}

_NUMBER_WORDS = r"(?:two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|fifty|hundred)"
SUSPECT = re.compile(  # the longest reading first: "37.0 %" is a percentage, not the decimal 37.0
    r"(?<![\w.])\d+(?:\.\d+)?\s?%"            # a percentage: 37 %, 10.9%
    r"|(?<![\w.])\d+(?:\.\d+)?\s?[×x](?!\w)"  # a factor: 5×, 14x
    r"|(?<![\w.])\d+(?:\.\d+)?-fold"           # 3-fold
    r"|(?<![\w.])\d+\.\d+(?![\w.])"             # a decimal: 0.998824, 5.8
    rf"|\b{_NUMBER_WORDS}\s+times\b",          # five times (larger, fewer ...)
    re.IGNORECASE,
)

_NOT_PROSE = re.compile(
    r"```.*?```"            # fenced code
    r"|\$\$.*?\$\$"         # display math
    r"|\$[^$\n]+\$"         # inline math
    r"|`[^`\n]+`"           # inline code
    r"|<!--.*?-->"          # HTML comments
    r'|"[^"\n]*"'           # quotations: the seeds' words and numbers
    r"|“[^”]*”"
    r"|\([^()\n]*\.(?:png|svg|html|ipynb|py|md)\)"  # link targets
    r"|https?://\S+"
    r"|^\s*#+\s*\d+(?:\.\d+)*\.?(?=\s)",  # the section number of a heading: ### 1.2 ...
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Finding:
    path: str
    where: str
    number: str
    context: str

    def __str__(self) -> str:
        return f"{self.path} ({self.where}): {self.number!r} in “…{self.context}…”"


def hand_typed_numbers(text: str) -> list[tuple[str, str]]:
    """``(number, context)`` for every suspect number in the prose of Markdown ``text``."""
    prose = _NOT_PROSE.sub(lambda m: " " * len(m.group()), text)
    for phrase in ALLOWED:
        prose = prose.replace(phrase, " " * len(phrase))
    found = []
    for match in SUSPECT.finditer(prose):
        start, end = max(0, match.start() - 40), match.end() + 40
        found.append((match.group().strip(), " ".join(text[start:end].split())))
    return found


def markdown_cells(path: Path) -> list[tuple[str, str]]:
    """``(where, markdown)`` of a Jupytext .py, an .ipynb or a Markdown page."""
    if path.suffix == ".md":
        return [("page", path.read_text(encoding="utf-8"))]
    notebook = (jupytext.read(path, fmt="py:percent") if path.suffix == ".py"
                else nbformat.read(path, as_version=4))
    return [(f"cell {index + 1}", cell.source) for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "markdown"]


def scanned_files(root: Path = ROOT) -> list[Path]:
    files = sorted((root / "course").glob("*.py")) + sorted((root / "solutions").glob("*.py"))
    files += sorted((root / "assignments" / "source").glob("*/*.py"))
    files += [page for page in sorted((root / "docs").glob("*.md")) if page.name not in NOT_SCANNED]
    files += [root / "README.md", root / "assignments" / "README.md"]
    return [path for path in files if path.is_file()]


def scan(root: Path = ROOT) -> list[Finding]:
    findings = []
    for path in scanned_files(root):
        for where, text in markdown_cells(path):
            findings += [Finding(str(path.relative_to(root)), where, number, context)
                         for number, context in hand_typed_numbers(text)]
    return findings


def test_no_measured_number_is_typed_into_the_prose():
    findings = scan()
    assert not findings, (
        f"{len(findings)} number(s) in Markdown look like measured results typed by hand; render a "
        "measured number from the computation (normlab.notebook.prose), write a constant as math or "
        "code, quote a seed's number — or, if none of these, add the phrase to ALLOWED with why:\n"
        + "\n".join(map(str, findings)))


@pytest.mark.parametrize("planted, number", [
    ("BN's error is 37.0 % at batch 2.", "37.0 %"),
    ("The output std is 0.998824 here.", "0.998824"),
    ("BN's error is about five times larger at batch 2.", "five times"),
    ("BN trains 14× faster in our run.", "14×"),
])
def test_a_hand_typed_number_planted_in_a_copy_of_a_lecture_fails_the_scan(tmp_path, planted, number):
    root = tmp_path / "project"
    (root / "course").mkdir(parents=True)
    lecture = sorted((ROOT / "course").glob("*.py"))[4]
    shutil.copy(lecture, root / "course" / lecture.name)
    assert scan(root) == [], "the copy is clean before planting"
    with open(root / "course" / lecture.name, "a", encoding="utf-8") as f:
        f.write(f'\n# %% [markdown]\n# In our run: {planted}\n')
    findings = scan(root)
    assert [f.number for f in findings] == [number]
    assert findings[0].path == f"course/{lecture.name}" and planted.split()[0] in findings[0].context


def test_math_code_quotes_and_prose_cells_are_not_flagged():
    text = ('With $p = 0.5$ and `lr=0.1`, the seed says "GN has lower error (by 10%)"; '
            "we ran 3 seeds of 20 epochs, batch 64, in 2018's set-up.")
    assert hand_typed_numbers(text) == []
    assert [n for n, _ in hand_typed_numbers("BN is 1.5x slower, 12 % worse")] == ["1.5x", "12 %"]


@pytest.mark.parametrize("lecture", sorted((ROOT / "course").glob("*.py")), ids=lambda path: path.stem)
def test_every_lecture_renders_its_measurements_and_asserts_its_claims(lecture):
    """Each lecture measures something, so each says it through prose cells and claims."""
    notebook = jupytext.read(lecture, fmt="py:percent")
    prose_cells = [cell for cell in notebook.cells if cell.cell_type == "code" and "prose(" in cell.source]
    assert prose_cells, f"{lecture.name}: no prose cell renders a measured number"
    assert all("remove-input" in cell.metadata.get("tags", ()) for cell in prose_cells), (
        f"{lecture.name}: a prose cell without the remove-input tag shows its code on the slides")
    assert any("claim(" in cell.source for cell in notebook.cells if cell.cell_type == "code"), (
        f"{lecture.name}: no claim about a measurement is asserted")
