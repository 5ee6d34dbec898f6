"""`normlab build`: the whole course, as a list of build steps.

    course/NN_name.py     ->  build/course/NN_name.ipynb     + NN_name.html
    solutions/NN_name.py  ->  build/solutions/NN_name.ipynb  + NN_name.html
    course/NN_name.py     ->  build/slides/NN_name.slides.html (offline reveal.js)
    assignments/source/psK ->  build/nbgrader/release/psK, build/answers/psK
    all of the above       ->  build/site/index.html (the course website, normlab_tools.site)

The engine and the notebook step are `normlab_tools.build`; the slides step is
`normlab_tools.slides`; the assignments step is below.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from normlab_tools import build, site, slides
from normlab_tools.assignments import assignment_ids, build_assignments
from normlab_tools.build import BuildOptions, Row, Task, find_root, format_table, run_build


def assignments_step(options: BuildOptions) -> list[Task]:
    """Per assignment: the nbgrader student release and the answer key (normlab_tools.assignments),
    one assignment at a time (they share nbgrader's gradebook). Left out when lectures are
    selected by number or the project has no assignments."""
    if options.numbers or not (options.root / "assignments" / "nbgrader_config.py").is_file():
        return []
    ids = assignment_ids(options.root)
    folder = options.root / "assignments" / "source"
    return [Task(f"assignments/{aid}", partial(build_assignment, aid, options),
                 after=(f"assignments/{ids[i - 1]}",) if i else (),
                 cost=build.expected_seconds(options.out, options.out / "nbgrader" / "release" / aid,
                                             folder / aid / f"{aid}.py"),
                 current=partial(assignment_is_current, aid, options))
            for i, aid in enumerate(ids)]


def _assignment_tooling() -> str:
    return build.tooling_digest("build", "course", "assignments", "kernels")


def assignment_is_current(assignment_id: str, options: BuildOptions) -> bool:
    """The quick check: the release and answer key exist and every file they were made from
    (recorded in the release's stamp: sources, settings, library and data files) holds the
    same bytes, with the same versions and tools."""
    from normlab_tools import execution_cache

    release = options.out / "nbgrader" / "release" / assignment_id
    if options.force or not (options.out / "answers" / assignment_id).exists() or not release.exists():
        return False
    stamp = build.read_stamp(options.out, release)
    folder = options.root / "assignments" / "source" / assignment_id
    sources = {str(path) for path in folder.rglob("*") if path.is_file()}
    recorded = stamp.get("files", {})
    return (stamp.get("tooling") == _assignment_tooling()
            and stamp.get("dependencies") == execution_cache.dependencies_digest()
            and sources <= set(recorded)
            and all(os.path.isfile(path) and execution_cache.file_digest(Path(path)) == digest
                    for path, digest in recorded.items()))


def assignment_inputs(assignment_id: str, options: BuildOptions) -> str:
    """A hash of what an assignment's release and answer key are made from: its source
    folder, the course's nbgrader settings, the library code its notebooks import, the
    installed versions and the tools that build them."""
    from normlab_tools import execution_cache

    return _assignment_inputs(assignment_id, options)[0]


def _assignment_inputs(assignment_id: str, options: BuildOptions) -> tuple[str, dict]:
    """(assignment_inputs' hash, {file: digest} of every file in it) for the stamp."""
    from normlab_tools import execution_cache

    folder = options.root / "assignments" / "source" / assignment_id
    config = options.root / "assignments" / "nbgrader_config.py"
    parts = [config.read_bytes()]
    files = {str(config): execution_cache.file_digest(config)}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        parts += [path.relative_to(folder).as_posix(), path.read_bytes()]
        files[str(path)] = execution_cache.file_digest(path)
        if path.suffix == ".py":
            notebook = execution_cache.with_inputs(build.read_source(path), path, folder, options.root)
            parts.append(json.dumps(notebook.metadata[execution_cache.INPUTS_KEY], sort_keys=True))
            files.update(notebook.metadata[execution_cache.FILES_KEY])
    return build.digest(*parts, _assignment_tooling()), files


def build_assignment(assignment_id: str, options: BuildOptions) -> build.Result:
    """The release and answer key of one assignment, unless they are current."""
    release = options.out / "nbgrader" / "release" / assignment_id
    answers = options.out / "answers" / assignment_id
    made_from, files = _assignment_inputs(assignment_id, options)
    if not options.force and answers.exists() and build.is_current(options.out, release, made_from):
        return build.Result(reused=True)
    start = time.perf_counter()
    rows = build_assignments(options.root, options.out, only=[assignment_id])
    failed = [f"{row.name}: {row.status}" for row in rows if row.status != "ok"]
    if failed:
        return build.Result("; ".join(failed))
    from normlab_tools import execution_cache

    build.write_stamp(options.out, release, made_from=made_from, seconds=round(time.perf_counter() - start, 1),
                      files=files, dependencies=execution_cache.dependencies_digest(), tooling=_assignment_tooling())
    return build.Result()


STEPS: list[Callable[[BuildOptions], list[Task]]] = [
    build.notebook_step("course"), build.notebook_step("solutions"), slides.slides_step, assignments_step,
    site.site_step]


def build_course(options: BuildOptions, progress: bool = True) -> list[Row]:
    """Every step of the course build; one row per product, failures included."""
    return run_build(options, STEPS, progress=progress)


def main(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve() if args.root else find_root()
    options = BuildOptions(root=root, out=Path(args.out).resolve() if args.out else root / "build",
                           numbers=args.numbers, execute=args.execute, timeout=args.timeout,
                           force=args.force, jobs=args.jobs or build.default_jobs())
    rows = build_course(options)
    failed = [row for row in rows if row.error]
    for row in failed:
        if "\n" in row.error.strip():  # the traceback, where there is more than the summary
            print(f"\n=== {row.name} failed ===\n{row.error.rstrip()}", file=sys.stderr)
    print(format_table(rows) if rows else "nothing to build")
    if failed:
        print(f"normlab build: {len(failed)} of {len(rows)} failed: {', '.join(row.name for row in failed)}",
              file=sys.stderr)
        return 1
    print(f"all {len(rows)} built into {options.out}")
    return 0
