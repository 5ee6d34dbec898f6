"""``normlab check``: a student's notebook against the visible tests, as the grader runs them."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="run an assignment notebook's visible tests as the grader would",
        usage="normlab check [-h] [ASSIGNMENT] NOTEBOOK",
        description="Run NOTEBOOK (your copy of assignment ASSIGNMENT) top to bottom the way "
        "the grader does (same kernel, same per-cell timeout, stderr in a test cell scores 0) "
        "and print the points of each visible test with the reason it failed. Exit code 0 "
        "when every visible test passes, 1 when some fail, 2 for a wrong or unreadable notebook.")
    parser.add_argument("assignment_or_notebook", metavar="[ASSIGNMENT]",
                        help="the assignment, e.g. ps1 (any case); leave it out to take it from the notebook")
    parser.add_argument("notebook", nargs="?", metavar="NOTEBOOK", help="your notebook, e.g. ps1.ipynb")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from normlab_tools import assignments

    return assignments.check_main(args)
