"""The build engine: the course's Jupytext sources become executed notebooks and HTML.

    course/NN_name.py     ->  build/course/NN_name.ipynb     + NN_name.html
    solutions/NN_name.py  ->  build/solutions/NN_name.ipynb  + NN_name.html

A build is a list of steps (`normlab_tools.course.STEPS` for the whole course). A step
looks at the project and returns one `Task` per product, naming the tasks it must come
after; all tasks run under one progress bar, one at a time or in `jobs` worker processes,
a failing task stops nothing else, and each task gives one `Row` of the closing table
("ok": made now, "cached": nothing had to run). This module is the engine and the
notebook step; the slides (`normlab_tools.slides`), the assignments
(`normlab_tools.course`) and the site (`normlab_tools.site`) add theirs.

Nothing is redone that is current: a notebook's outputs come from the execution cache
(`normlab_tools.execution_cache`) when its code and inputs are unchanged, and every
product records in OUT/.stamps/ a content hash of what it was made from (`is_current`).
Modification times are never compared.

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

import functools
import hashlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nbformat
from tqdm import tqdm

from normlab_tools.commands.arguments import CELL_TIMEOUT
from normlab_tools.errors import UserError

# jupytext, nbclient, nbconvert and the kernel manager are imported where they are used:
# a build with nothing to do (every task's quick check passes) never needs them.

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # lib/normlab/build.py -> the project
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: A code cell whose output is all a reader should see (e.g. prose with computed numbers).
REMOVE_INPUT_TAG = "remove-input"


class NotebookSourceError(ValueError):
    """A source file that is not a Jupytext percent-format notebook."""


def read_source(path: Path) -> nbformat.NotebookNode:
    """Read a Jupytext percent-format notebook, or raise NotebookSourceError saying why not."""
    import jupytext

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
    seconds, error = execute(notebook, path_in, Path(cwd) if cwd else path_out.parent, timeout)
    nbformat.write(notebook, path_out)
    return seconds, error


def execute(notebook: nbformat.NotebookNode, source: Path, cwd: Path, timeout: int = CELL_TIMEOUT
            ) -> tuple[float, str | None]:
    """Run `notebook` (read from `source`) in place in folder `cwd`; (seconds, error) as execute_notebook."""
    from nbclient import NotebookClient

    from normlab_tools.kernels import InterpreterKernelManager

    running = {"cell": None}
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_manager_class=InterpreterKernelManager,
        record_timing=False,  # no run times in cell metadata: a fresh run writes what the cache gives back
        resources={"metadata": {"path": str(cwd)}},
        on_cell_execute=lambda cell, cell_index: running.update(cell=cell_index),
    )
    start = time.perf_counter()
    try:
        client.execute()
        error = None
    except Exception as exc:  # a failing notebook is a result, not a crash of the build
        error = _describe(exc, running["cell"], _cell_lines(source, len(notebook.cells)), timeout)
    return time.perf_counter() - start, error


def _cell_lines(path: Path, cell_count: int) -> list[int] | None:
    """The 1-based source line of each cell's '# %%' marker, when every cell has one."""
    lines = [number for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if line.startswith("# %%")]
    return lines if len(lines) == cell_count else None


def _describe(error: Exception, cell_index: int | None, cell_lines: list[int] | None, timeout: int) -> str:
    """One line saying where and what went wrong, then the details (ANSI colours removed)."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

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
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

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
    force: bool = False                             # rebuild everything, cache or not
    jobs: int = 1                                   # tasks run at once (processes)


@dataclass
class Result:
    """What a task did: `error` None or why it failed (first line: summary); `reused`
    when nothing had to run again (outputs from the cache, products up to date)."""
    error: str | None = None
    reused: bool = False


@dataclass
class Task:
    name: str                                   # as shown in the table, e.g. "course/01_input_normalization"
    run: Callable[[], Result | str | None]      # does the work: a Result, or None / an error text
    after: tuple[str, ...] = ()                 # tasks that must finish first (whether or not they failed)
    cost: float = 1.0                           # expected seconds (last run's, else a guess): longest first
    current: Callable[[], bool] | None = None   # a quick check, in the build's own process: nothing to do


@dataclass
class Row:
    name: str
    seconds: float
    error: str | None
    reused: bool = False

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed: " + self.error.splitlines()[0]
        return "cached" if self.reused else "ok"


def lecture_number(path: Path) -> int | None:
    """01 for course/01_input_normalization.py; None for a name without a number prefix."""
    prefix = path.stem.split("_", 1)[0]
    return int(prefix) if prefix.isdigit() else None


def sources(folder: Path, numbers: Sequence[int] = ()) -> list[Path]:
    """The notebook sources in `folder` (none if it is missing), only `numbers` if given."""
    found = sorted(folder.glob("*.py")) if folder.is_dir() else []
    return [path for path in found if not numbers or lecture_number(path) in numbers]


# --- products and their stamps: content hashes, never modification times --------------------

STAMPS = ".stamps"  # OUT/.stamps/<product>.json: what each product was last made from


def digest(*parts: str | bytes) -> str:
    """A hash of texts and bytes, in order."""
    hashed = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hashed.update(len(data).to_bytes(8, "little") + data)
    return hashed.hexdigest()


@functools.cache
def tooling_digest(*modules: str) -> str:
    """A hash of this package's modules (e.g. "build", "slides") and the installed
    distributions: what turns an executed notebook into HTML, slides or the site."""
    from normlab_tools import execution_cache

    here = Path(__file__).parent
    return digest(execution_cache.dependencies_digest(),
                  *(f"{name}\0".encode() + (here / f"{name}.py").read_bytes() for name in modules))


def _stamp_path(out: Path, product: Path) -> Path:
    return out / STAMPS / f"{product.relative_to(out).as_posix()}.json"


def read_stamp(out: Path, product: Path) -> dict:
    """What `product` (a path under `out`) was made from, as recorded; {} when unknown."""
    try:
        return json.loads(_stamp_path(out, product).read_text())
    except (OSError, ValueError):
        return {}


def write_stamp(out: Path, product: Path, **record) -> None:
    path = _stamp_path(out, product)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(record, sort_keys=True))
    temporary.replace(path)


def is_current(out: Path, product: Path, made_from: str) -> bool:
    """Whether `product` exists and was made from inputs hashing to `made_from`."""
    return product.exists() and read_stamp(out, product).get("made_from") == made_from


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file holds it already (its time stays, for tools that look)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


# --- one notebook: executed (or taken from the cache), then its HTML ------------------------


def executed_notebook(source: Path, target: Path, options: BuildOptions, force: bool | None = None,
                      retry_failed: bool = True) -> tuple[bool, str | None]:
    """Write `target`: the Jupytext `source` executed, its outputs from the execution cache
    when its code and inputs match a stored run (see normlab_tools.execution_cache).

    `force` (default: options.force) runs it whatever the cache holds. With
    `retry_failed` off, a notebook that failed with the same inputs before is not run
    again (the slides ask after the course step ran it). Returns (reused, error).
    Raises NotebookSourceError when `source` is not a Jupytext notebook.
    """
    from normlab_tools import execution_cache

    force = options.force if force is None else force
    notebook = read_source(source)
    for index, cell in enumerate(notebook.cells):  # Jupytext makes random ids: same source, same file
        cell.id = f"cell-{index}"
    run_dir = target.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    execution_cache.with_inputs(notebook, source, run_dir, options.root)
    cache = execution_cache.open_cache(options.out)
    key = cache.create_hashed_notebook(notebook)[1]
    inputs = execution_cache.input_record(notebook, source)
    stamp = read_stamp(options.out, target)
    if not force:
        merged = cache.executed(notebook)
        if merged is not None:
            write_if_changed(target, nbformat.writes(merged))
            write_stamp(options.out, target, made_from=key, error=None, seconds=stamp.get("seconds"), **inputs)
            return True, None
        if not retry_failed and target.exists() and stamp.get("made_from") == key and stamp.get("error"):
            return True, stamp["error"]
    seconds, error = execute(notebook, source, run_dir, options.timeout)
    if error is None:
        notebook = cache.store(notebook, uri=str(source))
    notebook.metadata.pop(execution_cache.INPUTS_KEY, None)
    notebook.metadata.pop(execution_cache.FILES_KEY, None)
    write_if_changed(target, nbformat.writes(notebook))
    write_stamp(options.out, target, made_from=key, error=error, seconds=round(seconds, 1), **inputs)
    return False, error


def notebook_is_current(source: Path, target: Path, options: BuildOptions) -> bool:
    """Whether `target` is the executed `source` for today's inputs, told from its stamp
    alone (file digests; no notebook parsed, no cache opened): the quick check that lets
    a no-op build start no process. False whenever in doubt."""
    if options.force or not options.execute or not target.is_file():
        return False
    stamp = read_stamp(options.out, target)
    if stamp.get("error") is not None or "made_from" not in stamp:
        return False
    from normlab_tools import execution_cache

    return execution_cache.unchanged(stamp, source)


def notebook_and_page_are_current(source: Path, target: Path, options: BuildOptions) -> bool:
    """notebook_is_current, and its HTML page was made from it by today's tools."""
    return (notebook_is_current(source, target, options)
            and is_current(options.out, target.with_suffix(".html"),
                           digest(target.read_bytes(), tooling_digest("build"))))


def expected_seconds(out: Path, product: Path, source: Path) -> float:
    """How long making `product` took last time, else a guess from the source's size
    (used only to start the longest tasks first)."""
    recorded = read_stamp(out, product).get("seconds")
    if isinstance(recorded, (int, float)):
        return float(recorded)
    return source.stat().st_size / 1000 if source.exists() else 1.0


def build_notebook(source: Path, target: Path, options: BuildOptions) -> Result:
    """source .py -> target .ipynb (executed unless options.execute is off) -> target .html.
    The HTML is made again only when the notebook or the tools that write it changed."""
    html = target.with_suffix(".html")
    if options.execute:
        reused, error = executed_notebook(source, target, options)
        if error:
            html.unlink(missing_ok=True)  # no stale page beside a failed notebook
            return Result(error)
    else:
        reused = False
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(read_source(source), target)
        write_stamp(options.out, target, made_from="not executed", error=None)
    made_from = digest(target.read_bytes(), tooling_digest("build"))
    if options.force or not is_current(options.out, html, made_from):
        export_html(target, html)
        write_stamp(options.out, html, made_from=made_from)
    return Result(reused=reused)


def notebook_step(folder: str) -> Callable[[BuildOptions], list[Task]]:
    """The step that builds every notebook of ROOT/folder into OUT/folder."""
    return partial(_notebook_tasks, folder)


def _notebook_tasks(folder: str, options: BuildOptions) -> list[Task]:
    tasks = []
    for source in sources(options.root / folder, options.numbers):
        target = options.out / folder / f"{source.stem}.ipynb"
        tasks.append(Task(f"{folder}/{source.stem}", partial(build_notebook, source, target, options),
                          cost=expected_seconds(options.out, target, source),
                          current=partial(notebook_and_page_are_current, source, target, options)))
    return tasks


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
    if options.jobs < 1:
        raise UserError(f"-j needs a whole number of at least 1, got {options.jobs}")


# --- running the tasks: in order, or several processes at once -------------------------------


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def is_current_task(task: Task) -> tuple[Result, float] | None:
    """(a 'cached' result, seconds) when the task's quick check says there is nothing to do."""
    if task.current is None:
        return None
    start = time.perf_counter()
    try:
        current = bool(task.current())
    except Exception:  # a check that cannot tell: do the work
        current = False
    return (Result(reused=True), time.perf_counter() - start) if current else None


def run_task(task: Task) -> tuple[Result, float]:
    """Run one task; its failure is its result, never an exception. (Result, seconds)."""
    start = time.perf_counter()
    try:
        result = task.run()
    except NotebookSourceError as exc:
        result = Result(str(exc))
    except Exception as exc:  # one broken product stops nothing else
        result = Result(f"{type(exc).__name__}: {exc}")
    if not isinstance(result, Result):
        result = Result(result)
    return result, time.perf_counter() - start


def run_build(options: BuildOptions, steps, progress: bool = True) -> list[Row]:
    """Run every task of every step; one row per task, failures included, in the steps' order.

    With options.jobs > 1, tasks run in that many worker processes, each as soon as the
    tasks it comes `after` have finished (failed or not)."""
    check_options(options)
    tasks = [task for step in steps for task in step(options)]
    names = {task.name for task in tasks}
    if options.execute and tasks:
        from normlab_tools import execution_cache

        execution_cache.open_cache(options.out)  # its database made here, not by two workers at once
    results: dict[str, tuple[Result, float]] = {}
    with tqdm(total=len(tasks), desc="normlab build", unit="task", disable=not progress) as bar:
        if options.jobs == 1 or len(tasks) < 2:
            for task in tasks:
                bar.set_postfix_str(task.name)
                results[task.name] = is_current_task(task) or run_task(task)
                bar.update()
        else:
            _run_in_processes(tasks, names, min(options.jobs, len(tasks)), results, bar)
    return [Row(task.name, results[task.name][1], results[task.name][0].error, results[task.name][0].reused)
            for task in tasks]


def _run_in_processes(tasks: list[Task], names: set[str], jobs: int, results: dict, bar) -> None:
    """Run `tasks` in `jobs` processes, each once those it comes after are done."""
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no threads or kernels inherited
    rank = critical_paths(tasks)
    waiting = sorted(tasks, key=lambda task: -rank[task.name])  # the longest chains of work first
    running: dict[Future, Task] = {}
    checked: set[str] = set()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)  # its processes start on the first submit
    try:
        while waiting or running:
            ready = [task for task in waiting if all(name in results or name not in names for name in task.after)]
            quick = [(task, is_current_task(task)) for task in ready if task.name not in checked]
            checked.update(task.name for task in ready)  # checked here, once: no process for no work
            for task, result in quick:
                if result is not None:
                    waiting.remove(task)
                    results[task.name] = result
                    bar.update()
            if any(result is not None for _, result in quick):
                continue  # what waited for them may be ready now
            if not ready and not running:  # they wait on each other: nothing can start
                for task in waiting:
                    results[task.name] = (Result(f"waits for {', '.join(task.after)}, which never finish"), 0.0)
                break
            for task in ready[: max(0, jobs - len(running))]:
                waiting.remove(task)
                running[pool.submit(run_task, task)] = task
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task = running.pop(future, None)
                if task is None:  # already recorded when an earlier future of `done` found the pool broken
                    continue
                try:
                    results[task.name] = future.result()
                except BrokenProcessPool:  # the worker died (killed, out of memory): a new pool for the rest
                    results[task.name] = (Result("the build process running it died"), 0.0)
                    pool.shutdown(wait=False, cancel_futures=True)
                    for lost in list(running):
                        results[running.pop(lost).name] = (Result("the build process running it died"), 0.0)
                    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
                except Exception as exc:  # e.g. a task that cannot be sent to a process
                    results[task.name] = (Result(f"{type(exc).__name__}: {exc}"), 0.0)
                bar.set_postfix_str(task.name)
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def critical_paths(tasks: list[Task]) -> dict[str, float]:
    """Per task: its cost plus the longest chain of costs of the tasks that wait for it."""
    waiting_for: dict[str, list[Task]] = {}
    for task in tasks:
        for name in task.after:
            waiting_for.setdefault(name, []).append(task)
    rank: dict[str, float] = {}

    def of(task: Task, seen: frozenset = frozenset()) -> float:
        if task.name not in rank:
            later = [of(next_task, seen | {task.name}) for next_task in waiting_for.get(task.name, [])
                     if next_task.name not in seen]
            rank[task.name] = task.cost + max(later, default=0.0)
        return rank[task.name]

    for task in tasks:
        of(task)
    return rank


def format_table(rows: Sequence[Row]) -> str:
    """notebook | seconds | status, one line per row."""
    width = max([len("notebook"), *(len(row.name) for row in rows)])
    lines = [f"{'notebook':<{width}}  {'seconds':>7}  status"]
    lines += [f"{row.name:<{width}}  {row.seconds:7.1f}  {row.status}" for row in rows]
    return "\n".join(lines)
