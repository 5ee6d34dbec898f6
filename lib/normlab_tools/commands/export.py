"""``normlab export``: a graded assignment's scores in the LMS's import format."""

from __future__ import annotations

from normlab_tools.commands.arguments import COURSE_DIR

FORMATS = ("canvas", "gradescope", "csv")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="scores of a graded assignment for Canvas, Gradescope or a plain CSV",
        description="Write ASSIGNMENT's scores from the course's gradebook (nbgrader export plugins in "
        "normlab_tools.grading.export): Canvas's gradebook-import CSV (reasons in OUT.reasons.csv), "
        "Gradescope's score CSV, both filled from the LMS's roster (every roster student gets a row, "
        "0 without a submission), or a plain CSV (id, name, score, max, late, status, reason).")
    parser.add_argument("assignment", help="the assignment, e.g. ps1")
    parser.add_argument("--to", choices=FORMATS, required=True, help="the format")
    parser.add_argument("--roster", help="the roster CSV exported from the LMS (canvas, gradescope)")
    parser.add_argument("--column", default="", help='Canvas: the assignment column, e.g. "ps1 (4321)" '
                        "(default: the roster column named after the assignment)")
    parser.add_argument("--out", help="the output file (default: ASSIGNMENT-FORMAT.csv here)")
    parser.add_argument("--course-dir", default=str(COURSE_DIR), help=f"the nbgrader course directory "
                        f"(default: {COURSE_DIR})")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from traitlets.config import Config

    from normlab_tools.errors import UserError
    from normlab_tools.grading import course, export

    course_dir = Path(args.course_dir).resolve()
    url = course.db_url(course_dir)
    if not course.on_server(url) and not course.sqlite_path(url).is_file():
        raise UserError(f"no gradebook in {course_dir}: pass the course's --course-dir")
    if args.to in ("canvas", "gradescope") and not args.roster:
        raise UserError(f"--to {args.to} needs --roster FILE, the roster CSV exported from the LMS")
    out = Path(args.out or f"{args.assignment}-{args.to}.csv")
    config = Config()
    config.ExportPlugin.to = str(out)
    config.ExportPlugin.assignment = [args.assignment]
    config.NormlabExportPlugin.course_dir = str(course_dir)
    config.NormlabExportPlugin.roster = args.roster or ""
    config.CanvasExportPlugin.column = args.column
    course.quiet_nbgrader()
    with course.course_gradebook(course_dir) as gradebook:
        export.EXPORTERS[args.to](config=config).export(gradebook)
    print(f"wrote {out}")
    if args.to == "canvas":
        print(f"wrote {export.reasons_path(out)} (the reasons: Canvas's import has no comment column)")
    return 0
