"""Autograding a class: ``normlab grade psK SUBMISSIONS [--course-dir DIR] [--workers N]
[--timeout S] [--force] [--no-sandbox]``.

Built on nbgrader: its gradebook (SQLite), its autograde pipeline (sanitize, restore
test cells, execute, score) and its feedback are used as they are; what this package
adds is intake, a sandbox, parallelism, a safe way into the gradebook, and resumable
runs.

Modules
-------
``intake``     SUBMISSIONS (folder per student, flat ``<student>_<anything>.ipynb``, Canvas's
               or Gradescope's download, or a zip of any) -> one `Submission` per
               student (a problem instead of a refusal), and what was skipped.
``students``   ids as found, the safe internal ids nbgrader uses, the registry.
``course``     the course directory: prepared for the assignment, the job template's
               gradebook, the settings' fingerprint, the lock.
``planning``   a `Plan` per submission (files, fingerprint, notes, problem); who is graded.
``gradebook``  the course's gradebook: results merged in, zeros recorded, scores read.
``state``      per-student state files (what was graded, status, reason).
``events``     typed events of a submission's run (`Kind`, `Event`).
``report``     reasons (`describe`), grades.csv, failure feedback, the summary.
``run``        the command: the steps above in order (`grade_class`, `grade_main`).
``pool``       worker processes (``python -m normlab_tools.grading.jobs``).
``jobs``       one student, inside a worker: nbgrader autograde + feedback in a private
               course directory.
``export``     `normlab export` / `normlab feedback`: nbgrader ExportPlugins for Canvas,
               Gradescope and CSV, the feedback zip named for the LMS.
``execute``    nbgrader's Execute, hardened (dead kernels, stuck kernels, output limit,
               test-helper integrity probe).
``sandbox``    a sub-package: ``bubblewrap`` (the sandbox and the worker's handle on its
               kernel template), ``kernel_template`` (the process that pre-imports and
               forks kernels), ``client`` (the kernel manager and client nbgrader drives).

The design (sandbox, speed, gradebook safety, re-runs, hostile submissions): docs/grading.md.
"""
