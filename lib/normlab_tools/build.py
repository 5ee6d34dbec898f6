"""The build engine: the course's Jupytext sources become executed notebooks and HTML.

    course/NN_name.py     ->  build/course/NN_name.ipynb     + NN_name.html
    solutions/NN_name.py  ->  build/solutions/NN_name.ipynb  + NN_name.html

A build is a list of steps (`normlab_tools.course.STEPS` for the whole course). A step
looks at the project and returns one `Task` per product; all tasks run under one
progress bar, a failing task stops nothing else, and each task gives one `Row` of the
closing table. This module is the engine and the notebook step; the slides
(`normlab_tools.slides`) and the assignments (`normlab_tools.assignments`) add theirs.

Notebooks run top to bottom on an IPython kernel of the interpreter running the build
(`sys.executable`, `normlab_tools.kernels.InterpreterKernelManager`), never on whatever
'python3' kernelspec is installed, and in the output folder (build/course/), the folder
students run them in, so relative paths behave the same for both.

HTML uses nbconvert's default 'lab' template. Text, code, outputs (plots are base64
PNGs) and CSS are inside the file; markdown images are embedded when found. What it
loads from cdnjs: MathJax 2.7.7 (always; offline the formulas stay raw TeX) and
require.js 2.1.10 (always; only JavaScript outputs such as widgets use it), plus
mermaid.js only when a notebook has mermaid diagrams and the widget renderer only when
it has widget state. Pointing these at local copies is the offline-slides step's job.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from tqdm import tqdm

from normlab_tools.commands.arguments import CELL_TIMEOUT
from normlab_tools.errors import UserError
from normlab_tools.kernels import InterpreterKernelManager

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # lib/normlab/build.py -> the project
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: A code cell whose output is all a reader should see (e.g. prose with computed numbers).
REMOVE_INPUT_TAG = "remove-input"


class NotebookSourceError(ValueError):
    """A source file that is not a Jupytext percent-format notebook."""


def read_source(path: Path) -> nbformat.NotebookNode:
    """Read a Jupytext percent-format notebook, or raise NotebookSourceError saying why not."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        notebook = jupytext.reads(text, fmt="py:percent")
    except Exception as error:  # jupytext and YAML raise many kinds
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NotebookSourceError(f"{Path(path).name}: not a Jupytext notebook ({reason})") from error
    if "kernelspec" not in notebook.metadata:
        raise NotebookSourceError(f"{Path(path).name}: no '# jupyter: kernelspec:' header, "
                                  "so not a Jupytext notebook (write it with `jupytext --to py:percent`)")
    if not re.search(r"^# %%", text, re.MULTILINE):
        raise NotebookSourceError(f"{Path(path).name}: no '# %%' cell markers (Jupytext percent format)")
    for cell in notebook.cells:  # prose rendered by a code cell: JupyterLab shows it collapsed to its output
        if cell.cell_type == "code" and REMOVE_INPUT_TAG in cell.metadata.get("tags", ()):
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    return notebook


def execute_notebook(path_in, path_out, timeout: int = CELL_TIMEOUT, cwd=None) -> tuple[float, str | None]:
    """Execute the Jupytext notebook `path_in` top to bottom and save it with outputs as `path_out`.

    The kernel runs this interpreter, in `cwd` (default: the folder of
    `path_out`), with `timeout` seconds per cell. The notebook is saved also when a cell
    fails, with the outputs up to and including the error. Returns (seconds, error): error
    is None, or a text whose first line says where and what, e.g.
    "cell 3 (line 14): ZeroDivisionError: division by zero", followed by the traceback.
    Raises NotebookSourceError when `path_in` is not a Jupytext notebook.
    """
    path_in, path_out = Path(path_in), Path(path_out)
    notebook = read_source(path_in)
    path_out.parent.mkdir(parents=True, exist_ok=True)
    running = {"cell": None}
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_manager_class=InterpreterKernelManager,
        resources={"metadata": {"path": str(Path(cwd) if cwd else path_out.parent)}},
        on_cell_execute=lambda cell, cell_index: running.update(cell=cell_index),
    )
    start = time.perf_counter()
    try:
        client.execute()
        error = None
    except Exception as exc:  # a failing notebook is a result, not a crash of the build
        error = _describe(exc, running["cell"], _cell_lines(path_in, len(notebook.cells)), timeout)
    seconds = time.perf_counter() - start
    nbformat.write(notebook, path_out)
    return seconds, error


def _cell_lines(path: Path, cell_count: int) -> list[int] | None:
    """The 1-based source line of each cell's '# %%' marker, when every cell has one."""
    lines = [number for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if line.startswith("# %%")]
    return lines if len(lines) == cell_count else None


def _describe(error: Exception, cell_index: int | None, cell_lines: list[int] | None, timeout: int) -> str:
    """One line saying where and what went wrong, then the details (ANSI colours removed)."""
    if cell_index is None:
        where = "kernel"
    else:
        where = f"cell {cell_index + 1}" + (f" (line {cell_lines[cell_index]})" if cell_lines else "")
    if isinstance(error, CellExecutionError):
        what = f"{error.ename}: {error.evalue}" if error.evalue else error.ename
    elif isinstance(error, CellTimeoutError):
        what = f"timed out after {timeout} s"
    elif isinstance(error, DeadKernelError):
        what = "the kernel died"
    else:
        what = f"{type(error).__name__}: {error}"
    first_line = f"{where}: {what}".splitlines()[0]
    return first_line + "\n" + _ANSI.sub("", str(error))


def export_html(notebook_path: Path, html_path: Path) -> None:
    """Write an HTML page of a saved notebook (lab template, markdown images embedded;
    the code of cells tagged remove-input left out, their output kept)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(embed_images=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={REMOVE_INPUT_TAG}), enabled=True)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"path": str(notebook_path.parent)}})
    html_path.write_text(body, encoding="utf-8")


# --- the build: options, steps, tasks, rows -------------------------------------------------


@dataclass
class BuildOptions:
    root: Path                                      # the project: holds course/
    out: Path                                       # usually ROOT/build
    numbers: list[int] = field(default_factory=list)  # lecture numbers to build; empty: all
    execute: bool = True
    timeout: int = CELL_TIMEOUT


@dataclass
class Task:
    name: str                      # as shown in the table, e.g. "course/01_input_normalization"
    run: Callable[[], str | None]  # does the work; returns None or an error (first line: summary)


@dataclass
class Row:
    name: str
    seconds: float
    error: str | None

    @property
    def status(self) -> str:
        return "ok" if self.error is None else "failed: " + self.error.splitlines()[0]


def lecture_number(path: Path) -> int | None:
    """01 for course/01_input_normalization.py; None for a name without a number prefix."""
    prefix = path.stem.split("_", 1)[0]
    return int(prefix) if prefix.isdigit() else None


def sources(folder: Path, numbers: Sequence[int] = ()) -> list[Path]:
    """The notebook sources in `folder` (none if it is missing), only `numbers` if given."""
    found = sorted(folder.glob("*.py")) if folder.is_dir() else []
    return [path for path in found if not numbers or lecture_number(path) in numbers]


def build_notebook(source: Path, target: Path, options: BuildOptions) -> str | None:
    """source .py -> target .ipynb (executed unless options.execute is off) -> target .html."""
    html = target.with_suffix(".html")
    if options.execute:
        _, error = execute_notebook(source, target, options.timeout)
        if error:
            html.unlink(missing_ok=True)  # no stale page beside a failed notebook
            return error
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(read_source(source), target)
    export_html(target, html)
    return None


def notebook_step(folder: str) -> Callable[[BuildOptions], list[Task]]:
    """The step that builds every notebook of ROOT/folder into OUT/folder."""
    def plan(options: BuildOptions) -> list[Task]:
        return [Task(f"{folder}/{source.stem}",
                     partial(build_notebook, source, options.out / folder / f"{source.stem}.ipynb", options))
                for source in sources(options.root / folder, options.numbers)]
    return plan



def find_root(start: Path | None = None) -> Path:
    """The project root: the first folder holding course/, from `start` (default: the
    current directory) upwards, else the project this package was installed from."""
    start = Path.cwd() if start is None else Path(start)
    for folder in [start, *start.resolve().parents, PACKAGE_ROOT]:
        if (folder / "course").is_dir():
            return folder
    raise UserError(f"no course/ folder in {start} or its parents, nor in {PACKAGE_ROOT}; "
                    "run from the project folder or pass --root DIR")


def check_options(options: BuildOptions) -> None:
    """Raise UserError for what cannot be built: no course/ folder, an unknown lecture number."""
    course = options.root / "course"
    if not course.is_dir():
        raise UserError(f"{options.root} has no course/ folder (is --root the project folder?)")
    known = sorted({lecture_number(path) for path in sources(course)} - {None})
    unknown = [number for number in options.numbers if number not in known]
    if unknown:
        raise UserError(f"no lecture numbered {', '.join(f'{n:02d}' for n in unknown)} in {course} "
                        f"(lectures: {', '.join(f'{n:02d}' for n in known) or 'none'})")


def run_build(options: BuildOptions, steps, progress: bool = True) -> list[Row]:
    """Run every task of every step; one row per task, failures included."""
    check_options(options)
    tasks = [task for step in steps for task in step(options)]
    rows = []
    with tqdm(tasks, desc="normlab build", unit="notebook", disable=not progress) as bar:
        for task in bar:
            bar.set_postfix_str(task.name)
            start = time.perf_counter()
            try:
                error = task.run()
            except NotebookSourceError as exc:
                error = str(exc)
            except Exception as exc:  # one broken product stops nothing else
                error = f"{type(exc).__name__}: {exc}"
            rows.append(Row(task.name, time.perf_counter() - start, error))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """notebook | seconds | status, one line per row."""
    width = max([len("notebook"), *(len(row.name) for row in rows)])
    lines = [f"{'notebook':<{width}}  {'seconds':>7}  status"]
    lines += [f"{row.name:<{width}}  {row.seconds:7.1f}  {row.status}" for row in rows]
    return "\n".join(lines)
