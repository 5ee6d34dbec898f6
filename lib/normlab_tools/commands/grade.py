"""``normlab grade``: autograde a class's submissions."""

from __future__ import annotations

from normlab_tools.commands.arguments import COURSE_DIR
from normlab_tools.dask_cluster import scheduler_address


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "grade", help="autograde a class's submissions (nbgrader, in parallel, sandboxed)",
        description="Autograde every submission of ASSIGNMENT with nbgrader: each student's notebook runs "
        "in a sandboxed kernel (no network, read-only system, private scratch folder, CPU/memory/process/"
        "output limits), several students at a time; grades go into the course's gradebook, "
        "grades.csv and feedback HTML. A re-run grades only new or changed submissions.")
    parser.add_argument("assignment", help="the assignment, e.g. ps1")
    parser.add_argument("submissions", help="a folder with a folder per student (nbgrader's submitted/ "
                        "layout), a folder of <student>_<anything>.ipynb files, Canvas's Download Submissions "
                        "or Gradescope's Export Submissions, or a zip of any of them")
    parser.add_argument("--course-dir", default=str(COURSE_DIR),
                        help=f"the nbgrader course directory (default: {COURSE_DIR}, or $NORMLAB_COURSE_DIR; "
                        "outside build/, so make clean keeps it; created from the project's assignments/ if needed)")
    where = parser.add_mutually_exclusive_group()  # students graded here, or on a cluster
    where.add_argument("--workers", type=int, default=1, help="students graded at once (default 1; "
                        "one per core is a good choice)")
    where.add_argument("--scheduler", metavar="ADDRESS", type=scheduler_address,
                        help="grade on a Dask cluster instead of --workers local processes: the address of a "
                        "running Dask scheduler (e.g. tcp://host:8786; its workers need this Python environment "
                        "and bubblewrap, not this machine's files), or local:N to start N Dask workers here")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds a cell may run (default: the course's nbgrader_config.py, 60)")
    parser.add_argument("--force", action="store_true", help="regrade every submission, changed or not")
    parser.add_argument("--student", metavar="ID", help="regrade this one student (the id as in grades.csv), "
                        "changed or not; manual grades given in formgrader are kept")
    parser.add_argument("--due", metavar="TIME", help="the deadline, e.g. 2026-12-01T23:59 (local time unless "
                        "a zone is given): a Gradescope submission made after it is marked late "
                        "(Canvas marks late files itself)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run students' code without a sandbox (only for submissions you trust)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from normlab_tools.grading import run

    return run.grade_main(args)
