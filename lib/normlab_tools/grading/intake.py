"""Reading a class's submissions: folders, flat LMS downloads, zips; student ids.

Accepted layouts of SUBMISSIONS (a folder, or a .zip of one):

    nbgrader's submitted/ layout      alice/ps1/ps1.ipynb   (plus any data files)
    a folder per student              alice/ps1.ipynb, alice/whatever.ipynb
    flat files (an LMS download)      alice_ps1.ipynb, bob_12345_attempt_2.ipynb
                                      (the student id is the part before the first "_")

A zip is extracted safely (no absolute paths, no "..", no links, bounded size and file
count); a zip holding a single top folder is read from inside it.

Student ids must look like ``[A-Za-z0-9][A-Za-z0-9._-]*`` (at most 64 characters): no
path separators, no "..", nothing hidden. Two submissions with the same id, or with ids
that differ only in case (they would share a folder on a case-insensitive disk), are
refused. Problems are collected and reported together, before anything is graded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from normlab_tools.errors import UserError

STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
JUNK = {"__MACOSX", ".DS_Store", "Thumbs.db", ".ipynb_checkpoints", "desktop.ini"}
MAX_ZIP_BYTES = 4 << 30  # uncompressed size of a submissions zip
MAX_ZIP_FILES = 100_000
MAX_SUBMISSION_BYTES = 64 << 20  # one student's files


@dataclass
class Submission:
    """One student's files, as found in SUBMISSIONS."""

    student: str
    origin: str  # where it came from, for messages (relative to SUBMISSIONS)
    files: dict[str, Path] = field(default_factory=dict)  # relative path -> file


def read_submissions(path: Path, extract_to: Path) -> list[Submission]:
    """All submissions under `path` (folder or zip), sorted by student id.

    Raises UserError listing every invalid or colliding student id.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path} is neither a folder nor a zip file")
        root = extract_zip(path, extract_to)
    else:
        root = path
    submissions, problems = _scan(root, unwrap=path.is_file())
    seen: dict[str, Submission] = {}
    for submission in submissions:
        key = submission.student.lower()
        if key in seen:
            other = seen[key]
            problems.append(f"two submissions for student {submission.student!r}: "
                            f"{other.origin} and {submission.origin}")
        else:
            seen[key] = submission
    if problems:
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise UserError(f"{len(problems)} problem(s) with the submissions in {path} (nothing was graded):\n  "
                        + "\n  ".join(shown))
    if not submissions:
        raise UserError(f"no submissions in {path}: expected a folder per student or "
                        "<student>_<anything>.ipynb files")
    return sorted(seen.values(), key=lambda s: s.student)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in JUNK


def _scan(root: Path, unwrap: bool) -> tuple[list[Submission], list[str]]:
    entries = sorted(p for p in root.iterdir() if _visible(p))
    # A zip often wraps everything in one folder ("ps1 submissions/"): look inside it.
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() and (
            check_student_id(entries[0].name) or (unwrap and not _looks_like_student(entries[0]))):
        return _scan(entries[0], unwrap)
    submissions, problems = [], []
    for entry in entries:
        origin = entry.name
        if entry.is_symlink():
            problems.append(f"{origin}: a symbolic link (not followed)")
        elif entry.is_dir():
            problem = check_student_id(entry.name)
            if problem:
                problems.append(f"{origin}/: {problem}")
                continue
            submission = Submission(entry.name, origin + "/")
            for file in sorted(entry.rglob("*")):
                relative = file.relative_to(entry)
                if any(not _visible(Path(part)) for part in relative.parts):
                    continue
                if file.is_symlink():
                    problems.append(f"{origin}/{relative}: a symbolic link (not followed)")
                elif file.is_file():
                    submission.files[relative.as_posix()] = file
            submissions.append(submission)
        elif entry.suffix == ".ipynb":
            student = entry.stem.split("_", 1)[0]
            problem = check_student_id(student)
            if problem:
                problems.append(f"{origin}: {problem}")
                continue
            submissions.append(Submission(student, origin, {entry.name: entry}))
    return submissions, problems


def _looks_like_student(folder: Path) -> bool:
    """A lone top folder in a zip is one student's (not a wrapper) when it holds a psK
    folder or a single notebook."""
    children = [p for p in folder.iterdir() if _visible(p)]
    if any(p.is_dir() and re.fullmatch(r"ps\d+", p.name) for p in children):
        return True
    return sum(p.suffix == ".ipynb" for p in children) == 1 and not any(p.is_dir() for p in children)


def check_student_id(student: str) -> str | None:
    """Why `student` is not a usable id, or None."""
    if not STUDENT_ID.fullmatch(student):
        shown = student if len(student) <= 40 else student[:40] + "..."
        return (f"invalid student id {shown!r} (use letters, digits, '.', '_' or '-', "
                "starting with a letter or digit, at most 64 characters)")
    return None


def extract_zip(path: Path, target: Path) -> Path:
    """Extract `path` into `target` (replaced), refusing anything that could escape it."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise UserError(f"{path} is not a readable zip file ({error})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_FILES:
            raise UserError(f"{path} holds {len(members)} files (more than {MAX_ZIP_FILES})")
        total = sum(m.file_size for m in members)
        if total > MAX_ZIP_BYTES:
            raise UserError(f"{path} would extract to {total >> 20} MB (more than {MAX_ZIP_BYTES >> 20} MB)")
        for member in members:
            name = member.filename.replace("\\", "/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            mode = member.external_attr >> 16
            if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name):
                raise UserError(f"{path}: entry {member.filename!r} points outside the archive")
            if stat.S_ISLNK(mode):
                continue  # links are never extracted
            destination = target.joinpath(*parts) if parts else target
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(destination, "wb") as out:
                copied = 0
                while chunk := source.read(1 << 20):
                    copied += len(chunk)
                    if copied > member.file_size:  # a lying header
                        raise UserError(f"{path}: entry {member.filename!r} is larger than declared")
                    out.write(chunk)
    return target


# --- one submission's notebook ---------------------------------------------------------------


def choose_notebooks(submission: Submission, expected: list[str], assignment: str) -> tuple[dict, list[str], str | None]:
    """Match the submission's files to the assignment's notebooks.

    Returns (files to submit: relative path -> file, notes, problem). A notebook under
    another name is accepted when the assignment has one notebook and the submission
    holds exactly one (or exactly one that carries this assignment's cells).
    """
    files = dict(submission.files)
    # nbgrader layout: alice/ps1/... -> the files of ps1/ (and nothing of alice/ps2/)
    prefix = f"{assignment}/"
    if any(re.fullmatch(r"ps\d+", name.split("/", 1)[0]) for name in files if "/" in name):
        files = {name[len(prefix):]: p for name, p in files.items() if name.startswith(prefix)}
    notebooks = {name: p for name, p in files.items() if name.endswith(".ipynb")}
    others = {name: p for name, p in files.items() if not name.endswith(".ipynb")}
    chosen, notes = {}, []
    missing = [nb for nb in expected if f"{nb}.ipynb" not in notebooks]
    for nb in expected:
        if f"{nb}.ipynb" in notebooks:
            chosen[f"{nb}.ipynb"] = notebooks[f"{nb}.ipynb"]
    if missing and len(expected) == 1:
        candidates = list(notebooks)
        if len(candidates) > 1:
            candidates = [n for n in candidates if _carries(notebooks[n], assignment)]
        if len(candidates) == 1:
            chosen[f"{expected[0]}.ipynb"] = notebooks[candidates[0]]
            if submission.origin.endswith("/"):  # flat files are renamed by design
                notes.append(f"graded {candidates[0]} as {expected[0]}.ipynb")
            missing = []
    if missing:
        found = ", ".join(sorted(notebooks)) or "none"
        return {}, notes, f"no {', '.join(m + '.ipynb' for m in missing)} in the submission (notebooks found: {found})"
    size = sum(p.stat().st_size for p in list(chosen.values()) + list(others.values()))
    if size > MAX_SUBMISSION_BYTES:
        return {}, notes, f"submission too large ({size >> 20} MB, more than {MAX_SUBMISSION_BYTES >> 20} MB)"
    chosen.update(others)  # data files, and nbgrader's timestamp.txt (late penalties)
    return chosen, notes, None


def _carries(path: Path, assignment: str) -> bool:
    try:
        return f'"grade_id": "{assignment}_' in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def notebook_problem(path: Path, assignment: str) -> str | None:
    """Why the file cannot be graded as a notebook of `assignment` (one line), or None."""
    import nbformat

    data = path.read_bytes()
    if not data.strip():
        return "empty file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not a notebook (not UTF-8 text)"
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return f"invalid JSON at line {error.lineno}, column {error.colno} ({error.msg})"
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # noqa: BLE001 (any reason nbformat gives)
        first = str(error).strip().splitlines()
        return f"not a valid Jupyter notebook ({first[0][:120] if first else type(error).__name__})"
    ids = [cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in notebook.cells]
    ids = [gid for gid in ids if isinstance(gid, str)]
    if not any(gid.startswith(assignment + "_") for gid in ids):
        owners = sorted({m.group(1) for gid in ids if (m := re.match(r"(ps\d+)_", gid))})
        if owners:
            return f"wrong notebook: a notebook of {owners[0]}, not {assignment}"
        return f"wrong notebook: it has none of {assignment}'s cells"
    return None


def digest(files: dict[str, Path], extra: str = "") -> str:
    """A fingerprint of a submission's files (names and contents) and the grading settings."""
    h = hashlib.sha256(extra.encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        with open(files[name], "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def place(files: dict[str, Path], target: Path) -> None:
    """Copy a submission into nbgrader's submitted/<student>/<assignment>/ (replaced)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name, source in files.items():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    os.utime(target)
