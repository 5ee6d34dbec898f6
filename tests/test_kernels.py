"""Every notebook runs on this interpreter's IPython, whatever 'python3' kernelspec is installed.

`normlab_tools.kernels.InterpreterKernelManager` is the one way a kernel is started; the
course's nbgrader_config.py makes nbgrader use it, so even the plain ``nbgrader
autograde`` command (no normlab code of ours driving it) grades on this interpreter.
Each test installs a 'python3' kernelspec that cannot start, first on JUPYTER_PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBGRADER = Path(sys.executable).parent / "nbgrader"


@pytest.fixture
def bogus_python3(tmp_path, monkeypatch):
    """JUPYTER_PATH with a 'python3' kernelspec whose interpreter does not exist."""
    data = tmp_path / "jupyter"
    spec = data / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (elsewhere)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(data))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == "/nonexistent/python"
    return data


def test_the_kernel_manager_starts_this_interpreter(bogus_python3):
    from nbclient import NotebookClient

    from normlab_tools.kernels import InterpreterKernelManager

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.prefix)")],
                                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})
    NotebookClient(notebook, timeout=60, kernel_manager_class=InterpreterKernelManager).execute()
    assert os.path.realpath(notebook.cells[0].outputs[0].text.strip()) == os.path.realpath(sys.prefix)


CELLS = [  # (source, nbgrader metadata)
    ("import sys", {"grade": False, "grade_id": "ps1_setup", "locked": True, "solution": False}),
    ("def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION",
     {"grade": False, "grade_id": "ps1_answer", "locked": False, "solution": True}),
    ("assert answer() == 42", {"grade": True, "grade_id": "ps1_test_answer", "locked": True, "points": 2,
                               "solution": False}),
    (f"import os\nassert os.path.realpath(sys.prefix) == {os.path.realpath(sys.prefix)!r}, sys.executable",
     {"grade": True, "grade_id": "ps1_test_interpreter", "locked": True, "points": 3, "solution": False}),
]


def test_plain_nbgrader_autograde_runs_on_this_interpreter(tmp_path, bogus_python3):
    """`nbgrader generate_assignment` and `nbgrader autograde` from the course's config:
    the submission scores 5 of 5 although 'python3' names an interpreter that does not exist."""
    course = tmp_path / "course"
    (course / "source" / "ps1").mkdir(parents=True)
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", course)
    cells = [nbformat.v4.new_code_cell(source, metadata={"nbgrader": {**meta, "schema_version": 3}})
             for source, meta in CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, course / "source" / "ps1" / "ps1.ipynb")
    env = {**os.environ, "PATH": f"{NBGRADER.parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def nbgrader(*args):
        done = subprocess.run([str(NBGRADER), *args], cwd=course, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    nbgrader("generate_assignment", "ps1", "--force")
    released = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", as_version=4)
    released.cells[1].source = "def answer():\n    return 42"
    (course / "submitted" / "alice" / "ps1").mkdir(parents=True)
    nbformat.write(released, course / "submitted" / "alice" / "ps1" / "ps1.ipynb")
    nbgrader("autograde", "ps1", "--student", "alice")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="normlab") as gradebook:
        submission = gradebook.find_submission("ps1", "alice")
        scores = {grade.name: grade.score for grade in submission.notebooks[0].grades}
    assert scores == {"ps1_test_answer": 2.0, "ps1_test_interpreter": 3.0}
    graded = nbformat.read(course / "autograded" / "alice" / "ps1" / "ps1.ipynb", as_version=4)
    assert not [o for c in graded.cells for o in c.get("outputs", []) if o.output_type == "error"]
