"""``normlab check``: a student's notebook against the visible tests, as the grader runs them."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="run an assignment notebook's visible tests as the grader would",
        usage="normlab check [-h] [ASSIGNMENT] NOTEBOOK",
        description="Run NOTEBOOK (your copy of assignment ASSIGNMENT, as saved) through the grader's "
        "own pipeline on the release's tests: a fresh kernel, the same per-cell timeout, deleted or "
        "edited test cells put back, stderr in a test cell scores 0. Prints the points of each "
        "visible test with the reason it failed, the grader's notes and the points left for a TA. "
        "From a cell of the notebook: `from normlab_tools.check import check; check()`. Exit code 0 "
        "when every visible test passes, 1 when some fail, 2 for a wrong or unreadable notebook.")
    parser.add_argument("assignment_or_notebook", metavar="[ASSIGNMENT]",
                        help="the assignment, e.g. ps1 (any case); leave it out to take it from the notebook")
    parser.add_argument("notebook", nargs="?", metavar="NOTEBOOK", help="your notebook, e.g. ps1.ipynb")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from normlab_tools.check import check_main

    return check_main(args)
