"""``normlab build``: the whole course into build/."""

from __future__ import annotations

from normlab_tools.commands.arguments import CELL_TIMEOUT, lecture_number, positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "build", help="build the course into build/: executed notebooks and HTML, slides, assignment releases",
        description="Build course/*.py and solutions/*.py into executed notebooks with HTML, the lectures' "
        "slides and every assignment's student release and answer key under build/. Each notebook runs "
        "on this Python.")
    parser.add_argument("numbers", nargs="*", type=lecture_number, metavar="NN",
                        help="build only these lectures (and their solutions), e.g. 01 03")
    parser.add_argument("--root", help="the project folder, holding course/ (default: found from here)")
    parser.add_argument("--out", help="output folder (default: ROOT/build)")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="convert to notebooks and HTML without running them")
    parser.add_argument("--timeout", type=positive_int, default=CELL_TIMEOUT, metavar="S",
                        help=f"seconds allowed per cell (default {CELL_TIMEOUT})")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from normlab_tools import course

    return course.main(args)
