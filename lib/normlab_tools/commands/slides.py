"""``normlab slides``: offline reveal.js decks of the lectures."""

from __future__ import annotations

from normlab_tools.commands.arguments import add_project_arguments, lecture_number


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "slides", help="build reveal.js slides of the lectures into build/slides/ (offline, speaker notes)",
        description="Build reveal.js slides of course/*.py into build/slides/, from the executed "
        "notebooks in build/course/ (taken from the build's execution cache when the lecture's code and inputs "
        "are unchanged, else executed first). "
        "reveal.js, MathJax, jQuery and require.js are fetched once with npm into a cache and "
        "copied into build/slides/vendor/, so the slides work offline.")
    parser.add_argument("numbers", nargs="*", type=lecture_number, metavar="NN",
                        help="only these lectures, e.g. 01 03 (default: all)")
    add_project_arguments(parser, "seconds allowed per cell when a lecture runs")
    parser.add_argument("--rerun", action="store_true",
                        help="execute the lectures again even when build/course/ has them")
    parser.add_argument("--assets-only", action="store_true",
                        help="only fetch reveal.js, MathJax, jQuery and require.js into the cache (npm)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from normlab_tools import slides

    return slides.main(args)
