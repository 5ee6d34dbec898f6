"""What happened while a submission ran: typed events, for the grade's one-line reason.

The executor (`normlab_tools.grading.execute`) and the job (`jobs`) record `Event`s; they
travel from the worker to the parent as dicts (`Event.to_dict` / `Event.from_dict`) and
`report.describe` turns them into the reason. A new kind of event is a new `Kind` and a
clause in `report.describe`, never a string to match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(str, Enum):
    OUTPUT = "output"  # the notebook went over the output limit (kernel killed)
    DEAD = "dead"  # the kernel died (detail: why, from its exit status)
    TIMEOUT = "timeout"  # a cell ran past the time limit and was interrupted
    STUCK = "stuck"  # a cell ran past the limit and did not stop, or the kernel stopped answering
    ERROR = "error"  # a cell that is not a test raised (detail: "Name: message")
    TAMPER = "tamper"  # the probe found the test helpers or IPython altered: the test scores 0
    RESTORED = "restored"  # the probe put back helper names the notebook rebound (names)
    FEEDBACK = "feedback"  # nbgrader generate_feedback failed
    CRASH = "crash"  # the grader itself failed on this submission (detail: traceback)


@dataclass
class Event:
    kind: Kind
    cell: str = ""  # grade_id or "cell N"
    detail: str = ""
    names: list[str] = field(default_factory=list)  # RESTORED: the helper names put back

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "cell": self.cell, "detail": self.detail, "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        return cls(Kind(data["kind"]), data.get("cell", ""), data.get("detail", ""), list(data.get("names", [])))


RECORDED: list[Event] = []  # this worker process's events for the current submission


def record(kind: Kind, cell: str = "", detail: str = "", names=()) -> None:
    RECORDED.append(Event(kind, cell, detail, list(names)))


def reset() -> None:
    RECORDED.clear()
