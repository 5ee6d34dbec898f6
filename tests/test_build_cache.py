"""The build's execution cache and its parallel runs, on a tiny project in a temporary folder.

The project has its own library (lib/teachlib, on the kernels' PYTHONPATH) and four
lectures: one imports teachlib.stats, one teachlib.other (which imports
teachlib.helpers), one imports nothing of it, one reads a data file. Each test edits
something and asserts which lectures ran again ("ok") and which came from the cache
("cached"), and that the outputs are the new ones.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from normlab_tools import build, execution_cache, slides
from normlab_tools.build import BuildOptions

HEADER = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""

LECTURES = {
    "01_stats.py": HEADER + """
# %% [markdown] slideshow={"slide_type": "slide"}
# # Means

# %%
from teachlib.stats import mean

print("mean=", mean([1, 2, 3]))
""",
    "02_other.py": HEADER + """
# %% [markdown] slideshow={"slide_type": "slide"}
# # Other

# %%
import teachlib.other

print("twice=", teachlib.other.twice(5))
""",
    "03_plain.py": HEADER + """
# %% [markdown] slideshow={"slide_type": "slide"}
# # Plain

# %%
print("answer=", 6 * 7)
""",
    "04_data.py": HEADER + """
# %% [markdown] slideshow={"slide_type": "slide"}
# # Data

# %%
from pathlib import Path

print("rows=", len(Path("../../data/table.csv").read_text().splitlines()))
""",
}

LIBRARY = {
    "teachlib/__init__.py": '"""A tiny teaching library."""\n',
    "teachlib/stats.py": "def mean(values):\n    return sum(values) / len(values)\n",
    "teachlib/helpers.py": "def double(x):\n    return 2 * x\n",
    "teachlib/other.py": "from .helpers import double\n\n\ndef twice(x):\n    return double(x)\n",
}

COURSE = ["course/01_stats", "course/02_other", "course/03_plain", "course/04_data"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "project"
    for name, text in LECTURES.items():
        (root / "course").mkdir(parents=True, exist_ok=True)
        (root / "course" / name).write_text(text)
    for name, text in LIBRARY.items():
        (root / "lib" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lib" / name).write_text(text)
    (root / "data").mkdir()
    (root / "data" / "table.csv").write_text("a,b\n1,2\n3,4\n")
    monkeypatch.setenv("PYTHONPATH", str(root / "lib"))  # the kernels import teachlib from there
    return root


def build_lectures(root, **options) -> dict[str, str]:
    """Build the lectures (notebooks, HTML, slides); {task: status}."""
    opts = BuildOptions(root=root, out=root / "build", **options)
    rows = build.run_build(opts, steps=[build.notebook_step("course"), slides.slides_step], progress=False)
    return {row.name: row.status for row in rows}


def ran(statuses) -> list[str]:
    """The course notebooks that were executed (not taken from the cache)."""
    return [name for name in COURSE if statuses[name] == "ok"]


def printed(root, stem) -> str:
    notebook = nbformat.read(root / "build" / "course" / f"{stem}.ipynb", as_version=4)
    return "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_nothing_changed_runs_nothing_and_a_touch_is_no_change(project):
    first = build_lectures(project)
    assert ran(first) == COURSE and all(status == "ok" for status in first.values()), first
    pages = {path: execution_cache.file_digest(path) for path in (project / "build").glob("*/*.html")}

    for path in [*(project / "course").iterdir(), *(project / "lib" / "teachlib").iterdir()]:
        os.utime(path)  # a newer modification time, the same content
    again = build_lectures(project)

    assert ran(again) == []
    assert all(again[name] == "cached" for name in again if name.startswith(("course/", "slides/0"))), again
    assert {path: execution_cache.file_digest(path) for path in pages} == pages


def test_editing_a_code_cell_runs_that_notebook_only_and_remakes_its_page_and_slides(project):
    build_lectures(project)
    edit(project / "course" / "03_plain.py", "6 * 7", "6 * 9")

    statuses = build_lectures(project)

    assert ran(statuses) == ["course/03_plain"]
    assert statuses["slides/03_plain"] == "ok" and statuses["slides/01_stats"] == "cached"
    assert "answer= 54" in printed(project, "03_plain")
    assert "answer= 54" in (project / "build" / "slides" / "03_plain.slides.html").read_text()

    edit(project / "course" / "03_plain.py", "6 * 9", "6 * 7")  # back to a version the cache holds
    assert ran(build_lectures(project)) == []
    assert "answer= 42" in printed(project, "03_plain")


def test_editing_markdown_runs_nothing_but_the_pages_show_it(project):
    build_lectures(project)
    edit(project / "course" / "01_stats.py", "# # Means", "# # Means and medians")

    statuses = build_lectures(project)

    assert ran(statuses) == []
    assert "Means and medians" in (project / "build" / "course" / "01_stats.html").read_text()
    assert "Means and medians" in (project / "build" / "slides" / "01_stats.slides.html").read_text()
    assert "mean= 2.0" in printed(project, "01_stats")


def test_editing_a_library_function_runs_the_notebooks_that_import_it(project):
    build_lectures(project)
    edit(project / "lib" / "teachlib" / "stats.py", "return sum(values) / len(values)",
         "return sum(values) / len(values) + 100")

    statuses = build_lectures(project)

    assert ran(statuses) == ["course/01_stats"]
    assert "mean= 102.0" in printed(project, "01_stats")

    # helpers is imported by other (a relative import), which 02 imports
    edit(project / "lib" / "teachlib" / "helpers.py", "return 2 * x", "return 3 * x")
    statuses = build_lectures(project)
    assert ran(statuses) == ["course/02_other"]
    assert "twice= 15" in printed(project, "02_other")

    # the package's __init__ runs on every import of teachlib
    edit(project / "lib" / "teachlib" / "__init__.py", "library", "library, edited")
    assert ran(build_lectures(project)) == ["course/01_stats", "course/02_other"]


def test_editing_the_data_a_notebook_reads_runs_it(project):
    build_lectures(project)
    (project / "data" / "table.csv").write_text("a,b\n1,2\n3,4\n5,6\n")

    statuses = build_lectures(project)

    assert ran(statuses) == ["course/04_data"]
    assert "rows= 4" in printed(project, "04_data")


def test_force_runs_everything(project):
    build_lectures(project)

    statuses = build_lectures(project, force=True)

    assert ran(statuses) == COURSE
    assert all(statuses[f"slides/{name.split('/')[1]}"] == "ok" for name in COURSE)


def test_a_failed_notebook_runs_again_next_build_and_its_slides_do_not_rerun_it(project):
    edit(project / "course" / "03_plain.py", 'print("answer=", 6 * 7)', 'import time\nprint("at", time.time())\n6 / 0')
    statuses = build_lectures(project)
    assert statuses["course/03_plain"].startswith("failed: cell 2 (line 12): ZeroDivisionError")
    assert statuses["slides/03_plain"] == "failed: course/03_plain did not run to the end, so it has no slides"
    first = printed(project, "03_plain")

    again = build_lectures(project)
    assert again["course/03_plain"].startswith("failed: cell 2 (line 12): ZeroDivisionError")
    assert printed(project, "03_plain") != first  # not cached: it ran again, at another time


def test_the_imports_are_followed_through_the_library(project):
    packages = execution_cache.library_packages(project)
    files = execution_cache.library_files({"teachlib.other"}, packages)
    assert [path.name for path in files] == ["__init__.py", "helpers.py", "other.py"]

    notebook = build.read_source(project / "course" / "01_stats.py")
    inputs = execution_cache.with_inputs(notebook, project / "course" / "01_stats.py",
                                         project / "build" / "course", project).metadata[execution_cache.INPUTS_KEY]
    assert sorted(inputs["library"]) == ["teachlib/__init__.py", "teachlib/stats.py"]
    assert inputs["data"] == {} and inputs["runs_in"] == "build/course"


def test_a_new_dependency_version_runs_every_notebook(project, tmp_path):
    """Every build here is a fresh `normlab build` process, as a user runs it (the digest of
    the versions is computed once per process: this test process has imported much else)."""
    site = tmp_path / "site-packages"  # first on the path: another version of tqdm, a dependency
    site.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(project / "lib")])}

    def cli_statuses():
        result = subprocess.run([sys.executable, "-m", "normlab_tools", "build", "--root", str(project), "-j", "1"],
                                capture_output=True, text=True, env=env, timeout=900)
        return {line.split()[0]: line.split()[2] for line in result.stdout.splitlines()[1:]
                if line.startswith("course/")} or result.stdout + result.stderr

    assert cli_statuses() == {name: "ok" for name in COURSE}
    (site / "tqdm-99.0.dist-info").mkdir()
    (site / "tqdm-99.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: tqdm\nVersion: 99.0\n")
    assert cli_statuses() == {name: "ok" for name in COURSE}

    # a distribution the project does not need (tqdm back to the installed version) changes nothing
    (site / "tqdm-99.0.dist-info").rename(site / "notneeded-1.0.dist-info")
    (site / "notneeded-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: notneeded\nVersion: 1.0\n")
    assert cli_statuses() == {name: "cached" for name in COURSE}


SLEEPER = HEADER + """
# %%
import time

start = time.time()
time.sleep(3)
print(f"ran from {start} to {time.time()}")
"""


def test_j2_runs_notebooks_at_once_and_a_failure_stops_nothing(tmp_path):
    root = tmp_path / "project"
    (root / "course").mkdir(parents=True)
    for stem in ("01_a", "02_b"):
        (root / "course" / f"{stem}.py").write_text(SLEEPER)
    (root / "course" / "03_bad.py").write_text(LECTURES["03_plain.py"].replace("6 * 7", "1 / 0"))

    result = subprocess.run([sys.executable, "-m", "normlab_tools", "build", "--root", str(root), "-j", "2"],
                            capture_output=True, text=True, timeout=900)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["notebook", "seconds", "status"]
    assert [line.split()[0] for line in lines[1:8]] == [
        "course/01_a", "course/02_b", "course/03_bad", "slides/vendor", "slides/01_a", "slides/02_b", "slides/03_bad"]
    assert "failed: cell 2 (line 12): ZeroDivisionError" in result.stdout
    assert "2 of 9 failed: course/03_bad, slides/03_bad" in result.stderr
    assert lines[9].split()[::2] == ["site", "ok"]
    spans = []
    for stem in ("01_a", "02_b"):
        text = printed(root, stem)
        start, end = (float(word) for word in text.split()[2::2])
        spans.append((start, end))
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a, f"the two notebooks did not run at the same time: {spans}"


def test_j_must_be_a_positive_number(tmp_path):
    (tmp_path / "course").mkdir()
    result = subprocess.run([sys.executable, "-m", "normlab_tools", "build", "--root", str(tmp_path), "-j", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "expected a whole number > 0, got '0'" in result.stderr


@pytest.mark.slow
def test_a_build_of_the_real_lectures_after_they_ran_runs_none_of_them(executed_lectures):
    """conftest's `executed_lectures` ran every lecture through the execution cache; a build
    of the lectures into the same folder (two processes) finds each of them there."""
    from support import LECTURES, ROOT

    out = executed_lectures.out
    before = {path.name: execution_cache.file_digest(path) for path in (out / "course").glob("*.ipynb")}

    rows = build.run_build(BuildOptions(root=ROOT, out=out, jobs=2), steps=[build.notebook_step("course")],
                           progress=False)

    assert {row.name: row.status for row in rows} == {f"course/{source.stem}": "cached" for source in LECTURES}
    # digests, not bytes: pytest's diff of two executed notebooks runs for hours
    assert {path.name: execution_cache.file_digest(path) for path in (out / "course").glob("*.ipynb")} == before


def test_workers_that_die_at_once_get_a_row_each_and_the_rest_still_runs(tmp_path):
    """Two build processes killed together (os._exit in both): each task gets the row
    'the build process running it died', and the task after them runs in a new pool."""
    import functools

    def step(options):
        return [build.Task("dies/a", functools.partial(os._exit, 3), cost=2.0),
                build.Task("dies/b", functools.partial(os._exit, 3), cost=2.0),
                build.Task("after/c", functools.partial(print, end=""), after=("dies/a", "dies/b"))]

    (tmp_path / "course").mkdir()
    rows = build.run_build(BuildOptions(root=tmp_path, out=tmp_path / "out", jobs=2, execute=False), steps=[step],
                           progress=False)

    assert {row.name: row.error for row in rows} == {"dies/a": "the build process running it died",
                                                     "dies/b": "the build process running it died",
                                                     "after/c": None}


def test_writers_at_once_keep_every_record(tmp_path):
    """Eight threads storing different executed notebooks into one cache at once (as the
    test suite's lecture fixture and `-j` builds do): every notebook is found afterwards and
    no store fails (jupyter-cache's truncation used to delete a record another writer had just
    added, before its file existed: 'Notebook file does not exist for cache record')."""
    from concurrent.futures import ThreadPoolExecutor

    cache = execution_cache.open_cache(tmp_path)

    def notebook(i):
        cell = nbformat.v4.new_code_cell(f"x = {i}", execution_count=1,
                                         outputs=[nbformat.v4.new_output("stream", text=f"{i}\n")])
        return nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: cache.store(notebook(i), uri=f"nb{i}"), range(80)))

    missing = [i for i in range(80) if cache.executed(notebook(i)) is None]
    assert not missing, f"stored but not found: {missing}"


def test_threads_reading_notebooks_inputs_at_once_all_succeed(tmp_path):
    """Two threads at different stack depths working out notebooks' inputs at once (the
    suite's lecture fixture does): CPython 3.11's ast.parse counts its recursion per
    interpreter, so unguarded parses raised 'AST constructor recursion depth mismatch'.
    Objects whose finalizers release the GIL make the threads switch mid-parse, as the
    kernels' clients do during a real build."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from support import ROOT

    modules = sorted((ROOT / "lib" / "normlab").rglob("*.py"))  # code to parse, run where it finds no data
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(path.read_text()) for path in modules])
    (tmp_path / "nb.py").write_text("")

    class SwitchesThreads:
        def __init__(self):
            self.cycle = self  # collected by the garbage collector, at any allocation

        def __del__(self):
            time.sleep(0)

    def inputs(depth):
        if depth:
            return inputs(depth - 1)
        for _ in range(3):
            for _ in range(200):
                SwitchesThreads()
            execution_cache.with_inputs(notebook, tmp_path / "nb.py", tmp_path, tmp_path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(inputs, [0, 4, 0, 4]))  # raises the SystemError if any parse failed


def test_separators_and_system_files_are_not_data(tmp_path):
    """'/'.join(...) once named the whole file system as data (every build hashed 2000 files
    from /); /proc, /sys and /dev entries are the system's state (/proc/self/pagemap never
    ends). A real data file next to them still counts."""
    (tmp_path / "table.csv").write_text("a,b\n")
    code = 'import os\nos.sep == "/"\n"./".join(["a"])\nopen("/proc/self/status")\nopen("/dev/zero")\nopen("table.csv")\n'
    tree = execution_cache._parse(code)

    assert execution_cache.data_files(tree, [tmp_path]) == {(tmp_path / "table.csv").resolve()}


def test_a_notebook_stored_again_is_never_missing_for_a_reader(tmp_path):
    """Two notebooks with the same code (a -j build of two copies) overwrite one record:
    jupyter-cache deletes it, then inserts it again. A reader in between saw a miss (the
    build wrote None in CI: "'NoneType' object has no attribute 'metadata'")."""
    from concurrent.futures import ThreadPoolExecutor

    cache = execution_cache.open_cache(tmp_path)
    cell = nbformat.v4.new_code_cell("x = 1", execution_count=1,
                                     outputs=[nbformat.v4.new_output("stream", text="1\n")])
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    assert cache.store(notebook, uri="first") is not None

    def store(i):
        return cache.store(notebook, uri=f"copy{i}")

    def read(i):
        return cache.executed(notebook)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: (store if i % 2 else read)(i), range(120)))

    assert sum(result is None for result in results) == 0
    assert [cell.outputs[0].text for cell in cache.executed(notebook).cells] == ["1\n"]
