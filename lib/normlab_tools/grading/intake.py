"""Reading a class's submissions: folders, LMS downloads (Canvas, Gradescope), zips; student ids.

Accepted layouts of SUBMISSIONS (a folder, or a .zip of one):

    nbgrader's submitted/ layout      alice/ps1/ps1.ipynb   (plus any data files)
    a folder per student              alice/ps1.ipynb, José García/whatever.ipynb
    flat files                        alice_ps1.ipynb, bob_12345_attempt_2.ipynb
                                      (the student id is the part before the first "_")
    Canvas's "Download Submissions"   garciajose_LATE_12345_678901_ps1.ipynb: flat files named
                                      {lastfirst}_[LATE_|late_]{user id}_{file id}_{name as uploaded}
    Gradescope's "Export Submissions" submission_metadata.yml and a submission_<id>/ folder per
                                      submission; the metadata names each one's submitters
                                      (:name:, :sid:, :email:) and when it was made (:created_at:)

A zip is extracted safely (no absolute paths, no "..", bounded size and file count; a
symbolic link is never created: its student's row says so); a zip or folder holding a
single wrapper folder is read from inside it.

Nothing here stops the class. A student id is kept exactly as found (spaces, accents:
`students.internal_id` gives nbgrader a safe one); a submission that cannot be graded (a
symbolic link, an unreadable name, two submissions for one student, a Gradescope
submission without its folder) is a `Submission` with a `problem`: 0 points and that
reason in its row. Entries that are not a student's (hidden, operating-system junk, a
stray file) are listed in `Intake.skipped` with why, for the summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from normlab_tools.errors import UserError
from normlab_tools.grading import students

JUNK = {"__MACOSX", ".DS_Store", "Thumbs.db", ".ipynb_checkpoints", "desktop.ini", ".git", "__pycache__"}
MAX_ZIP_BYTES = 4 << 30  # uncompressed size of a submissions zip
MAX_ZIP_FILES = 100_000
MAX_SUBMISSION_BYTES = 64 << 20  # one student's files
MAX_ID_LENGTH = 128
CANVAS_FILE = re.compile(r"(?P<lastfirst>[^_]+)_(?P<late>LATE_|late_)?(?P<user_id>\d+)_(?P<file_id>\d+)_(?P<name>.+)")
GRADESCOPE_METADATA = "submission_metadata.yml"
GRADESCOPE_FOLDER = re.compile(r"submission_\d+")
NOT_A_LINK = "a symbolic link (not followed): upload the file itself"


@dataclass
class Submission:
    """One student's files, as found in SUBMISSIONS."""

    student: str  # the internal id nbgrader and the file system use (`students.internal_id`)
    origin: str  # where it came from, for messages (relative to SUBMISSIONS)
    files: dict[str, Path] = field(default_factory=dict)  # relative path -> file
    info: students.Student | None = None  # the id as found, the LMS's ids, the late flag
    problem: str | None = None  # why it cannot be graded: 0 points and this reason

    @property
    def id(self) -> str:
        """The id as found, shown in every output."""
        return self.info.id if self.info else self.student


@dataclass
class Intake:
    """What SUBMISSIONS holds: a submission per student, and what was not one."""

    submissions: list[Submission]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (entry, why it is not graded)
    layout: str = "folders"  # folders | canvas | gradescope (the LMS of most submissions)


def read_submissions(path: Path, extract_to: Path, due: datetime | None = None) -> Intake:
    """Every submission under `path` (folder or zip), sorted by id, and what was skipped.

    `due`: the deadline, for the late flag of a Gradescope export (Canvas marks late files
    itself). Raises UserError only when `path` is unusable or holds no submission at all.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    links: set[Path] = set()
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path} is neither a folder nor a zip file")
        root, links = extract_zip(path, extract_to)
    else:
        root = path
    root, skipped = _unwrap(root)
    if (root / GRADESCOPE_METADATA).is_file():
        found, more = _scan_gradescope(root, links, due)
    else:
        found, more = _scan(root, links)
    skipped += more
    found = _one_per_student(found)
    if not found:
        listed = "".join(f"\n  {entry}: {why}" for entry, why in skipped[:10])
        raise UserError(f"no submissions in {path}: expected a folder per student, <student>_<anything>.ipynb "
                        "files, or an LMS download (Canvas, Gradescope)" + (f"; skipped:{listed}" if listed else ""))
    kinds = [s.info.lms for s in found if s.info and s.info.lms]
    layout = max(set(kinds), key=kinds.count) if kinds else "folders"
    return Intake(sorted(found, key=lambda s: (s.id.casefold(), s.id)), skipped, layout)


def _skip_reason(entry: Path) -> str | None:
    """Why a top-level entry is not a student's (junk, hidden), or None."""
    if entry.name in JUNK or entry.name.startswith("._"):
        return "operating-system or editor junk, not a submission"
    if entry.name.startswith("."):
        return ("hidden (its name starts with '.'), not graded: if it is a student's, remove the dot "
                "and grade again")
    return None


def _shown(entry: Path, root: Path | None = None) -> str:
    name = entry.relative_to(root).as_posix() if root else entry.name
    return name + ("/" if entry.is_dir() and not entry.is_symlink() else "")


def _unwrap(root: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Look inside a lone wrapper folder ("ps1 submissions/", "assignment_123_export/")."""
    top, skipped = root, []
    while not (root / GRADESCOPE_METADATA).is_file():
        entries = sorted(root.iterdir())
        kept = [p for p in entries if _skip_reason(p) is None]
        if len(kept) != 1 or not kept[0].is_dir() or kept[0].is_symlink() or _looks_like_student(kept[0]):
            break
        skipped += [(_shown(p, top), _skip_reason(p)) for p in entries if p is not kept[0]]
        root = kept[0]
    return root, skipped


def _looks_like_student(folder: Path) -> bool:
    """A lone folder is one student's (not a wrapper) when it holds a psK folder or a
    single notebook, and no LMS download."""
    children = [p for p in folder.iterdir() if _skip_reason(p) is None]
    if (folder / GRADESCOPE_METADATA).exists() or any(CANVAS_FILE.fullmatch(p.name) for p in children):
        return False
    if any(p.is_dir() and re.fullmatch(r"ps\d+", p.name) for p in children):
        return True
    return sum(p.suffix == ".ipynb" for p in children) == 1 and not any(p.is_dir() for p in children)


def readable_id(found: str) -> tuple[str, str | None]:
    """(the id to show, why it cannot be used or None) for a name found in SUBMISSIONS:
    bytes that are not UTF-8 and control characters become '?' in what is shown."""
    shown = found.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    shown = "".join("?" if c == "\ufffd" or unicodedata.category(c) in ("Cc", "Cs") else c for c in shown)
    if shown != found:
        return shown, (f"unreadable student id {shown!r} (not UTF-8 text, or control characters): "
                       "rename it and grade again")
    if not found.strip():
        return found, "empty student id: rename it and grade again"
    if len(found) > MAX_ID_LENGTH:
        return found[:MAX_ID_LENGTH], f"student id longer than {MAX_ID_LENGTH} characters: rename it and grade again"
    return found, None


def _new(found: str, origin: str, **info) -> Submission:
    shown, problem = readable_id(found)
    internal = students.internal_id(shown)
    return Submission(internal, origin, {}, students.Student(internal=internal, id=shown, **info), problem)


def _files(folder: Path, links: set[Path]) -> tuple[dict[str, Path], list[str]]:
    """(relative path -> file, linked paths) of a student's folder; hidden files and junk
    inside it are left out, symbolic links are never followed."""
    files, linked = {}, []
    for directory, folders, names in os.walk(folder):
        base = Path(directory)
        folders[:] = sorted(d for d in folders if not (d.startswith(".") or d in JUNK))
        for name in list(folders):
            if (base / name).is_symlink():
                linked.append((base / name).relative_to(folder).as_posix())
                folders.remove(name)
        for name in sorted(names):
            if name.startswith(".") or name in JUNK:
                continue
            path = base / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink() or path in links:
                linked.append(relative)
            elif path.is_file():
                files[relative] = path
    return files, linked


def _linked(linked: list[str]) -> str:
    return f"{', '.join(linked[:3])}{' and more' if len(linked) > 3 else ''}: {NOT_A_LINK}"


def _scan(root: Path, links: set[Path]) -> tuple[list[Submission], list[tuple[str, str]]]:
    found, skipped, canvas = [], [], {}
    for entry in sorted(root.iterdir()):
        why = _skip_reason(entry)
        if why:
            skipped.append((_shown(entry), why))
            continue
        link = entry.is_symlink() or entry in links
        if entry.is_dir() and not link:
            submission = _new(entry.name, entry.name + "/")
            submission.files, linked = _files(entry, links)
            if linked and not submission.problem:
                submission.problem = _linked(linked)
            found.append(submission)
        elif match := CANVAS_FILE.fullmatch(entry.name):
            canvas.setdefault(match["user_id"], []).append((entry, match, link))
        elif entry.name.endswith(".ipynb") or link:
            student = entry.name[:-len(".ipynb")].split("_", 1)[0] if entry.name.endswith(".ipynb") else entry.name
            submission = _new(student, entry.name)
            if link:
                submission.problem = submission.problem or _linked([entry.name])
            else:
                submission.files = {entry.name: entry}
            found.append(submission)
        else:
            skipped.append((entry.name, "not a notebook (.ipynb) nor a student's folder"))
    found += _canvas_submissions(canvas)
    return found, skipped


def _canvas_submissions(canvas: dict) -> list[Submission]:
    """One submission per Canvas user id: every file of theirs in the download."""
    names = [items[0][1]["lastfirst"].casefold() for items in canvas.values()]
    found = []
    for user_id, items in sorted(canvas.items()):
        items.sort(key=lambda item: item[0].name)
        lastfirst = items[0][1]["lastfirst"]
        shown = lastfirst if names.count(lastfirst.casefold()) == 1 else f"{lastfirst} ({user_id})"
        submission = _new(shown, ", ".join(entry.name for entry, _, _ in items), name=lastfirst, lms="canvas",
                          lms_ids={"user_id": user_id, "file_id": items[0][1]["file_id"]},
                          late=any(match["late"] for _, match, _ in items),
                          files=[entry.name for entry, _, _ in items])
        linked = [entry.name for entry, _, link in items if link]
        submission.files = {match["name"]: entry for entry, match, link in items if not link}
        if linked and not submission.problem:
            submission.problem = _linked(linked)
        found.append(submission)
    return found


def _scan_gradescope(root: Path, links: set[Path], due: datetime | None) -> tuple[list[Submission], list]:
    """A submission per submitter named in submission_metadata.yml (a group's members share
    its files), from its submission_<id>/ folder."""
    import yaml

    metadata_path = root / GRADESCOPE_METADATA
    try:
        metadata = yaml.safe_load(metadata_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()
        raise UserError(f"cannot read Gradescope's {metadata_path}: {first[0] if first else error}; "
                        "export the submissions from Gradescope again") from None
    if not isinstance(metadata, dict):
        raise UserError(f"{metadata_path} is not Gradescope's submission metadata (submission_<id>: with its "
                        ":submitters:); export the submissions from Gradescope again")
    found, skipped, people = [], [], []
    for key, entry in metadata.items():
        submitters = entry.get(":submitters") if isinstance(entry, dict) else None
        if not isinstance(submitters, list) or not submitters:
            skipped.append((f"{GRADESCOPE_METADATA}: {key}", "no :submitters: listed, so no student to grade it for"))
            continue
        for submitter in submitters:
            person = submitter if isinstance(submitter, dict) else {}
            name, sid, email = (str(person.get(k) or "").strip() for k in (":name", ":sid", ":email"))
            people.append((str(key), entry, name, sid, email))
    names = [(name or sid or email).casefold() for _, _, name, sid, email in people]
    for key, entry, name, sid, email in people:
        shown = name or sid or email
        if not shown:
            skipped.append((f"{GRADESCOPE_METADATA}: {key}", "a submitter without :name:, :sid: or :email:"))
            continue
        if names.count(shown.casefold()) > 1:
            shown = f"{shown} ({sid or email or key})"
        created = _time(entry.get(":created_at"))
        ids = {k: v for k, v in (("submission_id", key.removeprefix("submission_")), ("sid", sid),
                                 ("email", email)) if v}
        submission = _new(shown, f"{key}/", name=name, lms="gradescope", lms_ids=ids,
                          late=bool(due and created and created > due), files=[key],
                          submitted_at=created.isoformat() if created else "")
        folder = root / key
        if folder.is_symlink() or folder in links:
            submission.problem = submission.problem or _linked([key])
        elif not folder.is_dir():
            submission.problem = submission.problem or f"its folder {key}/ is not in the export: export it again"
        else:
            submission.files, linked = _files(folder, links)
            if linked and not submission.problem:
                submission.problem = _linked([f"{key}/{path}" for path in linked])
        found.append(submission)
    for entry in sorted(root.iterdir()):
        if entry.name == GRADESCOPE_METADATA or entry.name in metadata:
            continue
        skipped.append((_shown(entry), _skip_reason(entry) or f"not in {GRADESCOPE_METADATA}: no student to grade it for"))
    return found, skipped


def _time(value) -> datetime | None:
    """A Gradescope :created_at: (YAML may have read it as a datetime already), zone-aware."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    match = re.fullmatch(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?", str(value or "").strip())
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    return datetime.fromisoformat(f"{day}T{clock}.{(fraction or '0')[:6].ljust(6, '0')}{zone}")


def parse_due(text: str) -> datetime:
    """--due: an ISO date and time; without a zone it is this machine's local time."""
    try:
        due = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--due {text!r} is not a date and time like 2026-12-01T23:59 (ISO 8601)") from None
    return due if due.tzinfo else due.astimezone()


def _one_per_student(found: list[Submission]) -> list[Submission]:
    """Two submissions whose ids are equal up to case (one folder on a case-insensitive disk)
    stay one student with a problem: grading either would be a guess."""
    groups: dict[str, list[Submission]] = {}
    for submission in found:
        groups.setdefault(submission.id.casefold(), []).append(submission)
    kept = []
    for group in groups.values():
        group.sort(key=lambda s: s.origin)
        first = group[0]
        if len(group) > 1:
            first.problem = (f"{len(group)} submissions for this student ({'; '.join(s.origin for s in group)}): "
                             "keep one and grade again")
        kept.append(first)
    return kept


def extract_zip(path: Path, target: Path) -> tuple[Path, set[Path]]:
    """Extract `path` into `target` (replaced), refusing anything that could escape it.
    A symbolic link is never created: an empty file stands in its place, and its path is
    returned among the links, so the student it belongs to is told."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    links: set[Path] = set()
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
            destination = target.joinpath(*parts) if parts else target
            if stat.S_ISLNK(mode):
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.touch()
                links.add(destination)
                continue
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
    return target, links

# --- one submission's notebook ---------------------------------------------------------------


def choose_notebooks(submission: Submission, expected: list[str], assignment: str) -> tuple[dict, list[str], str | None]:
    """Match the submission's files to the assignment's notebooks.

    Returns (files to submit: relative path -> file, notes, problem). A notebook under
    another name is accepted when the assignment has one notebook and the submission
    holds exactly one (or exactly one that carries this assignment's cells).
    """
    files = dict(submission.files)
    if not files:
        return {}, [], "an empty submission: no files" if submission.origin.endswith("/") else "no files"
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
        if Path(source).is_symlink():  # never read through a link
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    os.utime(target)
