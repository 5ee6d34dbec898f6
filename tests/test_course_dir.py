"""The grading course directory lives outside build/, survives `make clean`, and is made
from the project's assignments when missing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from normlab_tools.commands.arguments import COURSE_DIR_VARIABLE, default_course_dir

ROOT = Path(__file__).resolve().parents[1]


def test_default_is_outside_build_and_survives_make_clean(tmp_path, monkeypatch):
    monkeypatch.delenv(COURSE_DIR_VARIABLE, raising=False)
    default = default_course_dir()
    assert "build" not in default.parts
    (tmp_path / "build" / "nbgrader").mkdir(parents=True)
    kept = tmp_path / default / "gradebook.db"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"manual grades")
    subprocess.run(["make", "-f", str(ROOT / "Makefile"), "clean"], cwd=tmp_path, check=True,
                   capture_output=True)
    assert not (tmp_path / "build").exists()  # make clean really ran
    assert kept.read_bytes() == b"manual grades"


def test_the_variable_names_the_course_dir(tmp_path):
    env = dict(os.environ, **{COURSE_DIR_VARIABLE: str(tmp_path / "kept")})
    out = subprocess.run([sys.executable, "-c", "from normlab_tools.commands.arguments import COURSE_DIR; "
                          "print(COURSE_DIR)"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "kept")


def test_a_missing_course_dir_is_made_from_the_assignments(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    from normlab_tools.assignments import COURSE_ID, scripts_on_path
    from normlab_tools.grading import course

    monkeypatch.chdir(tmp_path)
    scripts_on_path()
    course_dir = default_course_dir().resolve()
    assert not course_dir.exists()
    notebooks = course.prepare_course(course_dir, "ps1")
    assert notebooks == ["ps1"]
    assert (course_dir / "source" / "ps1" / "ps1.ipynb").is_file()
    assert (course_dir / "nbgrader_config.py").read_text() == \
        (ROOT / "assignments" / "nbgrader_config.py").read_text()
    with Gradebook(course.db_url(course_dir), course_id=COURSE_ID) as gradebook:
        points = gradebook.find_assignment("ps1").max_score
    assert points == 25
