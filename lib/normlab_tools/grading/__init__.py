"""Autograding a class: ``normlab grade psK SUBMISSIONS [--course-dir DIR] [--workers N]
[--timeout S] [--force] [--no-sandbox]``.

Built on nbgrader: its gradebook (SQLite), its autograde pipeline (sanitize, restore
test cells, execute, score) and its feedback are used as they are; what this package
adds is intake, a sandbox, parallelism, a safe way into the gradebook, and resumable
runs.

Modules
-------
``intake``   SUBMISSIONS (folder per student, flat ``<student>_<anything>.ipynb``, or a
             zip of either) -> one `Submission` per validated student id.
``run``      the command: the course directory, planning, the gradebook, grades.csv,
             the summary.
``pool``     worker processes (``python -m normlab_tools.grading.jobs``).
``jobs``     one student, inside a worker: nbgrader autograde + feedback in a private
             course directory.
``execute``  nbgrader's Execute, hardened (dead kernels, stuck kernels, output limit,
             test-helper integrity probe).
``sandbox``  bubblewrap, the worker's kernel template, and the kernel manager nbgrader
             drives.
``zygote``   the kernel template process (runs inside bubblewrap).

The design (sandbox, speed, gradebook safety, re-runs, hostile submissions): docs/grading.md.
"""
