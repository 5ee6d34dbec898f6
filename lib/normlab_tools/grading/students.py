"""Who the students are: the id a TA knows them by, and the safe id nbgrader uses.

A student's id is kept exactly as it came (a folder name such as "José García", an LMS
user id) and appears that way in every output. nbgrader and the file system need ids
like ``[A-Za-z0-9][A-Za-z0-9._-]*``: an id that is not one gets an internal id, its
ASCII letters and digits plus a hash of the original (``Jos_Garc_a-3f2a9c1d``), unique
for the class and stable from run to run. The registry,
``COURSE/grading/students.json``, maps internal ids back, with what the LMS said of the
student (name, its ids, a late flag, the downloaded file names)::

    {"Jos_Garc_a-3f2a9c1d": {"id": "José García", "name": "José García", "lms": "gradescope",
                             "lms_ids": {"submission_id": "678", "sid": "12345", "email": "jg@example.edu"},
                             "late": true, "submitted_at": "2026-12-02T09:15:00+00:00",
                             "files": ["submission_678"]}}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REGISTRY = Path("grading") / "students.json"


@dataclass
class Student:
    """One student as the TA and the LMS know them."""

    internal: str  # the id nbgrader and the file system use
    id: str  # as found, preserved exactly in every output
    name: str = ""  # a display name, when the LMS gives one
    lms: str = ""  # "canvas", "gradescope", or "" for a plain folder
    lms_ids: dict = field(default_factory=dict)  # the LMS's own ids (user_id, submission_id, sid, email, ...)
    late: bool = False  # the LMS marked the submission late (Gradescope: made after --due)
    submitted_at: str = ""  # when the LMS says it was submitted (Gradescope's :created_at:), ISO 8601
    files: list = field(default_factory=list)  # the file names in the download, for re-upload naming


def internal_id(original: str) -> str:
    """The id nbgrader uses for `original`: itself when it is a safe id, else its ASCII
    letters, digits, '.', '_' and '-' (others become '_') and 8 hex digits of its hash."""
    if SAFE_ID.fullmatch(original):
        return original
    ascii_text = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-")[:48] or "student"
    if not stem[0].isalnum():
        stem = "s" + stem
    return f"{stem}-{hashlib.sha256(original.encode('utf-8')).hexdigest()[:8]}"


def read_registry(course_dir: Path) -> dict[str, Student]:
    """internal id -> Student, from the course's registry (empty when there is none)."""
    try:
        data = json.loads((Path(course_dir) / REGISTRY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    known = set(Student.__dataclass_fields__) - {"internal"}
    return {internal: Student(internal=internal, **{k: v for k, v in entry.items() if k in known})
            for internal, entry in data.items() if isinstance(entry, dict) and "id" in entry}


def update_registry(course_dir: Path, students: list[Student]) -> None:
    """Add or replace these students in the registry (written atomically)."""
    registry = read_registry(course_dir)
    registry.update({s.internal: s for s in students})
    path = Path(course_dir) / REGISTRY
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {internal: {k: v for k, v in asdict(s).items() if k != "internal"}
            for internal, s in sorted(registry.items())}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def display_id(registry: dict[str, Student], internal: str) -> str:
    """The id to show for an internal id: the original, or the internal id itself."""
    student = registry.get(internal)
    return student.id if student else internal
