"""`normlab build` on a tiny project: what is built, what is reported, what the kernel is."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from normlab_tools.build import BuildOptions, execute_notebook, find_root, format_table
from normlab_tools.course import build_course

HEADER = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""

GOOD = HEADER + """
# %% [markdown] slideshow={"slide_type": "slide"}
# # A good lecture: $\\mu = \\frac{1}{m}\\sum_i x_i$

# %%
import os
import sys

print("executable=" + sys.executable)
print("cwd=" + os.getcwd())

# %%
6 * 7
"""

BAD = HEADER + """
# %%
x = 1

# %%
raise ValueError("boom in the second cell")

# %%
print("never reached")
"""

SLOW = HEADER + """
# %%
import time

time.sleep(30)
"""


def outputs_text(notebook_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def printed(notebook_path, key):
    """The value the good notebook printed as key=value."""
    for line in outputs_text(notebook_path).splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{notebook_path.name} printed no {key}=")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "course").mkdir(parents=True)
    (root / "solutions").mkdir()
    (root / "course" / "01_good.py").write_text(GOOD)
    (root / "course" / "02_bad.py").write_text(BAD)
    (root / "solutions" / "01_good.py").write_text(GOOD)
    return root


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "normlab_tools", "build", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_api_builds_the_good_notebooks_and_reports_the_failing_one(project):
    rows = build_course(BuildOptions(root=project, out=project / "build"), progress=False)

    assert [row.name for row in rows] == ["course/01_good", "course/02_bad", "solutions/01_good",
                                          "slides/vendor", "slides/01_good", "slides/02_bad", "slides/index", "site"]
    good, bad, solution = rows[:3]
    slides = {row.name: row.status for row in rows[3:7]}
    assert rows[7].status == "ok"  # the site shows what was built: the good lecture and its solutions
    assert sorted(p.name for p in (project / "build" / "site" / "lectures").glob("*.html")) == ["01_good.html"]
    assert slides["slides/01_good"] == slides["slides/index"] == "ok"
    assert slides["slides/02_bad"] == "failed: course/02_bad did not run to the end, so it has no slides"
    assert (project / "build" / "slides" / "01_good.slides.html").exists()
    assert good.error is None and solution.error is None and good.status == "ok"
    for folder in ("course", "solutions"):
        notebook = project / "build" / folder / "01_good.ipynb"
        assert "42" in outputs_text(notebook)
        assert Path(printed(notebook, "cwd")) == (project / "build" / folder).resolve()
        html = (project / "build" / folder / "01_good.html").read_text()
        assert "executable=" in html and "42" in html and "\\frac{1}{m}" in html

    # BAD's cell 2 starts at line 12 of the source: the header is 7 lines, then a blank line.
    assert bad.status == "failed: cell 2 (line 12): ValueError: boom in the second cell"
    assert "raise ValueError" in bad.error  # the traceback follows the summary line
    saved = project / "build" / "course" / "02_bad.ipynb"
    assert "boom in the second cell" in json.dumps(nbformat.read(saved, as_version=4).cells[1].outputs)
    assert "never reached" not in outputs_text(saved)
    assert not (project / "build" / "course" / "02_bad.html").exists()

    table = format_table(rows)
    assert table.splitlines()[0].split() == ["notebook", "seconds", "status"]
    assert "course/02_bad" in table and "failed: cell 2 (line 12): ValueError" in table


def test_cli_runs_notebooks_on_this_python_ignoring_an_installed_python3_kernelspec(project, tmp_path):
    # A 'python3' kernelspec that cannot start: the build must not use it.
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (elsewhere)", "language": "python"}))
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter")}

    result = run_cli("--root", str(project), env=env)

    assert result.returncode == 1, result.stderr
    assert "2 of 8 failed: course/02_bad, slides/02_bad" in result.stderr
    assert "failed: cell 2 (line 12): ValueError: boom in the second cell" in result.stdout
    good = project / "build" / "course" / "01_good.ipynb"
    assert printed(good, "executable") == sys.executable
    assert (project / "build" / "course" / "01_good.html").exists()
    assert (project / "build" / "solutions" / "01_good.html").exists()


def test_cli_builds_only_the_selected_lectures_and_their_solutions(project):
    result = run_cli("01", "--root", str(project), "--out", str(project / "out"))

    assert result.returncode == 0, result.stderr
    built = sorted(path.relative_to(project / "out").as_posix() for path in (project / "out").rglob("*.*")
                   if "vendor" not in path.parts and path.relative_to(project / "out").parts[0] in {"course", "slides", "solutions"})
    assert built == ["course/01_good.html", "course/01_good.ipynb", "slides/01_good.slides.html", "slides/index.html",
                     "solutions/01_good.html", "solutions/01_good.ipynb"]
    assert "02_bad" not in result.stdout
    assert (project / "out" / "site" / "lectures" / "01_good.html").is_file()


def test_cli_names_an_unknown_lecture_number_and_builds_nothing(project):
    result = run_cli("01", "09", "--root", str(project))

    assert result.returncode == 2
    assert "no lecture numbered 09" in result.stderr and "lectures: 01, 02" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "build").exists()


def test_cli_says_when_there_is_no_course_folder(tmp_path):
    result = run_cli("--root", str(tmp_path))

    assert result.returncode == 2
    assert result.stderr.strip() == f"normlab build: {tmp_path} has no course/ folder (is --root the project folder?)"


def test_a_file_that_is_not_jupytext_is_one_failed_row_and_no_execute_skips_the_kernel(project):
    (project / "course" / "03_plain.py").write_text('print("a plain script")\n')

    rows = build_course(BuildOptions(root=project, out=project / "build", execute=False), progress=False)

    status = {row.name: row.status for row in rows}
    assert status["course/03_plain"] == ("failed: 03_plain.py: no '# jupyter: kernelspec:' header, "
                                         "so not a Jupytext notebook (write it with `jupytext --to py:percent`)")
    assert status["course/01_good"] == status["course/02_bad"] == "ok"  # not executed, so no failure
    assert outputs_text(project / "build" / "course" / "01_good.ipynb") == ""
    assert (project / "build" / "course" / "02_bad.html").exists()


def test_a_cell_over_the_timeout_is_stopped_and_reported(tmp_path):
    source = tmp_path / "01_slow.py"
    source.write_text(SLOW)

    seconds, error = execute_notebook(source, tmp_path / "out" / "01_slow.ipynb", timeout=1)

    assert error.splitlines()[0] == "cell 1 (line 9): timed out after 1 s"
    assert seconds < 20
    assert (tmp_path / "out" / "01_slow.ipynb").exists()


def test_the_project_root_is_found_from_a_subfolder(project, monkeypatch):
    (project / "course" / "deep").mkdir()
    monkeypatch.chdir(project / "course" / "deep")

    assert find_root().resolve() == project.resolve()


def test_the_build_releases_every_assignment_unless_lectures_are_selected(tmp_path):
    from normlab_tools.course import STEPS, assignments_step

    root = Path(__file__).resolve().parents[1]
    assert assignments_step in STEPS
    tasks = assignments_step(BuildOptions(root=root, out=tmp_path))
    assert [task.name for task in tasks] == ["assignments/ps1", "assignments/ps2", "assignments/ps3", "assignments/ps4",
                                            "assignments/ps5"]
    assert assignments_step(BuildOptions(root=root, out=tmp_path, numbers=[1])) == []


PROSE = HEADER + """
# %%
error = 0.3712

# %% tags=["remove-input"]
from normlab.notebook import claim, prose

claim("the error is large", error > 0.3, error=error)
prose(f"The measured error is {100 * error:.1f} %.")
"""


def test_prose_cells_show_only_their_rendered_text_in_notebook_and_html(tmp_path):
    root = tmp_path / "project"
    (root / "course").mkdir(parents=True)
    (root / "course" / "01_prose.py").write_text(PROSE)
    rows = build_course(BuildOptions(root=root, out=root / "build"), progress=False)
    assert [row.error for row in rows if row.name == "course/01_prose"] == [None], rows
    notebook = nbformat.read(root / "build" / "course" / "01_prose.ipynb", as_version=4)
    prose_cell = notebook.cells[1]
    assert prose_cell.metadata["jupyter"]["source_hidden"] is True  # JupyterLab shows only the output
    assert prose_cell.outputs[0]["data"]["text/markdown"] == "The measured error is 37.1 %."
    html = (root / "build" / "course" / "01_prose.html").read_text()
    assert "The measured error is 37.1 %." in html
    assert "the error is large" not in html and "0.3712" in html  # the prose cell's code is left out, the other kept


def test_a_claim_that_stops_holding_fails_the_build_naming_it(tmp_path):
    root = tmp_path / "project"
    (root / "course").mkdir(parents=True)
    (root / "course" / "01_prose.py").write_text(PROSE.replace("error = 0.3712", "error = 0.1090"))
    rows = build_course(BuildOptions(root=root, out=root / "build"), progress=False)
    failed = [row for row in rows if row.error and row.name == "course/01_prose"]
    assert len(failed) == 1
    first_line = failed[0].error.splitlines()[0]
    assert "ClaimError" in first_line and "the error is large" in first_line and "error = 0.109" in first_line
