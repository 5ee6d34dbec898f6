"""Per-student state files: COURSE/grading/psK/state/<student>.json.

Written after a student's grades are committed and their files are in place: the
fingerprint of what was graded (so a re-run skips it), the status and the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def state_path(state_dir: Path, student: str) -> Path:
    return state_dir / "state" / f"{student}.json"


def read_state(state_dir: Path, student: str) -> dict | None:
    try:
        return json.loads(state_path(state_dir, student).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(state_dir: Path, student: str, state: dict) -> None:
    path = state_path(state_dir, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(temporary, path)
