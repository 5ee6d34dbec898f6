"""``normlab feedback``: the students' feedback pages in one archive the LMS can attach."""

from __future__ import annotations

from normlab_tools.commands.arguments import COURSE_DIR


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "feedback", help="zip a graded assignment's feedback HTML, named so the LMS attaches each to its student",
        description="Write every graded student's feedback page (COURSE/feedback/<student>/ASSIGNMENT/*.html) "
        "into one zip: Canvas students named with their download prefix {lastfirst}_{user_id}_{submission_id}_, "
        "others with their id as found.")
    parser.add_argument("assignment", help="the assignment, e.g. ps1")
    parser.add_argument("--zip", dest="zip_path", nargs="?", const="", required=True, metavar="OUT.zip",
                        help="the archive (default: ASSIGNMENT-feedback.zip here)")
    parser.add_argument("--course-dir", default=str(COURSE_DIR), help=f"the nbgrader course directory "
                        f"(default: {COURSE_DIR})")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from normlab_tools.errors import UserError
    from normlab_tools.grading import export

    course_dir = Path(args.course_dir).resolve()
    if not (course_dir / "grading" / args.assignment / "state").is_dir():
        raise UserError(f"{args.assignment} has not been graded in {course_dir}: "
                        f"run normlab grade {args.assignment} SUBMISSIONS --course-dir {args.course_dir}")
    out = Path(args.zip_path or f"{args.assignment}-feedback.zip")
    written, without = export.feedback_zip(course_dir, args.assignment, out)
    print(f"wrote {out}: {written} feedback page(s)")
    if without:
        print(f"no feedback page for {len(without)} graded student(s): {', '.join(without)}", file=sys.stderr)
    return 0
