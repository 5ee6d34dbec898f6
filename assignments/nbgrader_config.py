"""nbgrader settings of the normlab course (nbgrader 0.9).

`normlab build` copies this file into the course directory it makes (build/nbgrader/);
put it in any course directory you grade from. The values shared with `normlab check`
(per-cell timeout, benign stderr, kernel manager) come from `normlab_tools.assignments`, so a student's
check and the grader cannot disagree.
"""

import sys

try:
    from normlab_tools import assignments
except ImportError:  # BaseException, so nbgrader cannot swallow it and grade with defaults
    raise SystemExit(
        f"nbgrader_config.py: the normlab package is not importable by {sys.executable}; "
        "grade from the course's environment (e.g. .venv/bin/nbgrader), or every "
        "submission scores 0"
    ) from None

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "normlab"

# Every notebook runs on an IPython kernel of *this* Python (sys.executable), never on
# whatever "python3" kernelspec happens to be installed: nbclient's kernel_manager_class,
# honoured by the autograde pipeline's Execute (nbgrader's own passes its default
# AsyncKernelManager as an argument, which beats any config).
c.Execute.kernel_manager_class = assignments.KERNEL_MANAGER
c.Autograde.autograde_preprocessors = assignments.autograde_preprocessors()
# nbgrader runs `alembic` from PATH to create a gradebook: use this environment's.
assignments.scripts_on_path()

# Seconds per cell (nbgrader's default is 30). An endless loop costs this much per cell.
c.Execute.timeout = assignments.CELL_TIMEOUT

# What replaces ### BEGIN SOLUTION ... ### END SOLUTION in the student release.
c.ClearSolutions.code_stub = {"python": assignments.CODE_STUB}

# Any stderr in a test cell scores it 0. Drop stderr that is not the student's doing.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = assignments.BENIGN_STDERR

# Feedback pages show each test's name, points and message, and the hidden tests' code as
# "# (hidden tests: not shown in feedback)". To show students that code, set
# c.HideHiddenTests.enabled = False.
c.GenerateFeedback.preprocessors = assignments.feedback_preprocessors()

# A test cell a student deleted is put back and run (otherwise it is silently skipped
# and left for manual grading).
c.OverwriteCells.add_missing_cells = True
