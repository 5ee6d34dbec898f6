"""``normlab build``: the whole course into build/."""

from __future__ import annotations

from normlab_tools.commands.arguments import add_project_arguments, lecture_number, positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "build", help="build the course into build/: executed notebooks and HTML, slides, assignment releases, "
        "the course website",
        description="Build course/*.py and solutions/*.py into executed notebooks with HTML, the lectures' "
        "slides, every assignment's student release and answer key, and the course website (build/site/) "
        "under build/. Each notebook runs on this Python, and only when its code, the library code it "
        "imports, the data it names or the installed versions changed (build/.jupyter_cache); products "
        "whose inputs did not change are kept.")
    parser.add_argument("numbers", nargs="*", type=lecture_number, metavar="NN",
                        help="build only these lectures (and their solutions), e.g. 01 03")
    add_project_arguments(parser, "seconds allowed per cell")
    parser.add_argument("-j", "--jobs", type=positive_int, default=None, metavar="N",
                        help="build N notebooks at once, each in its own process (default: this machine's cores)")
    parser.add_argument("--force", action="store_true",
                        help="run every notebook and rebuild every product, even those the cache says are current")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from normlab_tools import course

    return course.main(args)
