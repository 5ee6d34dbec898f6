"""The course website, built by the build's site step and opened in Chromium (Playwright)
with the network off.

The site is made from conftest's `executed_lectures` (the lectures run once per session;
nothing runs again: the build finds them in its execution cache), the solutions converted
without running (their pages are the same kind of page; tests/test_lectures.py runs them),
the slides (reused when tests/test_slides.py made them) and the nbgrader student releases
of conftest's `nbgrader_course`. Every page is opened from disk (file://): it must load
with no request leaving the machine, no failed load and no script error, and typeset
every formula; every internal link must resolve to a file; search must find
`running_var`. Screenshots of the home page and one lecture page are saved beside the
slides' (OUT/slides/screenshots/): look at them.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from browser import new_page, offline_browser
from normlab_tools import build, site, slides
from normlab_tools.assignments import assignment_ids
from support import LECTURES, ROOT, SOLUTIONS

PAGE_TIMEOUT_MS = 60_000

# After MathJax's start-up and everything it queued: every formula typeset.
MATH_DONE = """() => new Promise(resolve => {
  if (!window.MathJax || !MathJax.Hub) { resolve(false); return; }
  MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => resolve(true)); });
})"""

INSPECT = r"""() => {
  const maths = Array.from(document.querySelectorAll("span.math, div.math"));
  const visible = document.querySelector("main") || document.body;
  return {
    title: document.title,
    math: maths.length,
    untypeset: maths.filter(m => !m.querySelector(".MathJax_CHTML, .MathJax_Display, .MathJax"))
                    .map(m => m.textContent.slice(0, 60)),
    mathErrors: document.querySelectorAll(".mjx-merror, .MathJax_Error, .MathJax_CHTML_Error").length,
    links: Array.from(document.querySelectorAll("a[href]"), a => a.href),
    images: Array.from(document.images).filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src.slice(0, 80)),
    text: visible.innerText.slice(0, 100000),
  };
}"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built_site(executed_lectures, nbgrader_course):
    """OUT/site, made by the build's steps into the folder of `executed_lectures`."""
    out = executed_lectures.out
    for aid in assignment_ids(ROOT):
        release = nbgrader_course(aid).release() / "release" / aid
        shutil.copytree(release, out / "nbgrader" / "release" / aid, dirs_exist_ok=True)
    solutions = build.run_build(build.BuildOptions(root=ROOT, out=out, execute=False),
                                steps=[build.notebook_step("solutions")], progress=False)
    rows = build.run_build(build.BuildOptions(root=ROOT, out=out),
                           steps=[build.notebook_step("course"), slides.slides_step, site.site_step], progress=False)
    problems = {row.name: row.status for row in [*solutions, *rows] if row.error}
    assert not problems, problems
    statuses = {row.name: row.status for row in rows}
    assert all(statuses[f"course/{source.stem}"] == "cached" for source in LECTURES), statuses
    return out / "site"


@pytest.fixture(scope="module")
def browser():
    with offline_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def visits(built_site, browser):
    """Every HTML page of the site (the slide decks aside: tests/test_slides.py), opened
    once: {relative path: (INSPECT's answer, its PageLog)}."""
    found = {}
    for path in sorted(built_site.rglob("*.html")):
        relative = path.relative_to(built_site).as_posix()
        if relative.startswith(("slides/", "_static/", "_downloads/")):
            continue
        page, log = new_page(browser, 1280, 900)
        page.goto(path.as_uri(), wait_until="load", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_function("document.readyState === 'complete'")
        typeset = page.evaluate(MATH_DONE)
        answer = page.evaluate(INSPECT)
        answer["mathjax"] = typeset
        if relative in {"index.html", "lectures/02_batchnorm_forward.html"}:
            shots = built_site.parent / "slides" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shots / f"site-{relative.replace('/', '-').removesuffix('.html')}.png")
        page.context.close()
        found[relative] = (answer, log)
    return found


def test_every_lecture_solution_and_the_assignments_have_a_page(built_site):
    for source in LECTURES:
        assert (built_site / "lectures" / f"{source.stem}.html").is_file()
        assert (built_site / "slides" / f"{source.stem}.slides.html").is_file()
    for source in SOLUTIONS:
        assert (built_site / "solutions" / f"{source.stem}.html").is_file()
    assert (built_site / "assignments.html").is_file() and (built_site / "search.html").is_file()


def test_every_page_loads_offline_with_its_math_typeset(visits, built_site):
    assert len(visits) >= len(LECTURES) + len(SOLUTIONS) + 3
    for relative, (found, log) in visits.items():
        page_uri = (built_site / relative).as_uri()
        assert page_uri in log.requests, f"{relative}: the request log missed the page itself"
        assert not log.left_the_machine(), f"{relative}: requests that left the machine: {log.left_the_machine()}"
        assert not log.failed, f"{relative}: loads that failed: {log.failed}"
        assert not log.errors, f"{relative}: errors in the page: {log.errors}"
        assert found["mathjax"] or not found["math"], f"{relative}: MathJax did not start"
        assert not found["untypeset"], f"{relative}: formulas left as TeX: {found['untypeset']}"
        assert not found["mathErrors"], f"{relative}: TeX errors"
        assert not found["images"], f"{relative}: broken images: {found['images']}"
    for source in LECTURES:  # every lecture has formulas; the page shows them typeset
        found, _ = visits[f"lectures/{source.stem}.html"]
        assert found["math"] > 0, f"{source.stem}: no formula on its page"
        assert "Slides" in found["text"] and "Download the notebook" in found["text"]


def test_every_internal_link_resolves_to_a_file(visits):
    broken = []
    for relative, (found, _) in visits.items():
        for link in found["links"]:
            url = urlparse(link)
            if url.scheme != "file":
                continue
            if not Path(unquote(url.path)).exists():
                broken.append(f"{relative} -> {link}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_the_home_page_maps_the_course_with_pages_slides_and_notebooks(visits, built_site):
    found, _ = visits["index.html"]
    links = {unquote(urlparse(link).path) for link in found["links"]}
    for source in LECTURES:
        title = slides.lecture_title(build.read_source(source), source.stem)
        assert str(built_site / "lectures" / f"{source.stem}.html") in links
        assert str(built_site / "slides" / f"{source.stem}.slides.html") in links
        assert any(link.endswith(f"/{source.stem}.ipynb") for link in links), f"no .ipynb download of {source.stem}"
        shown = found["text"].translate(str.maketrans("“”‘’", "\"\"''"))  # smart quotes
        assert slides._LECTURE_PREFIX.sub("", title).split("$")[0].strip() in shown
    downloads = [Path(link) for link in links if link.endswith(".ipynb")]
    for path in downloads:
        notebook = nbformat.read(path, as_version=4)
        assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path


def test_the_assignments_page_offers_the_student_releases_only(visits, built_site, nbgrader_course):
    found, _ = visits["assignments.html"]
    zips = sorted((Path(unquote(urlparse(link).path)) for link in found["links"] if link.endswith(".zip")),
                  key=lambda path: path.name)
    assert [path.stem for path in zips] == sorted(assignment_ids(ROOT))
    for archive in zips:
        release = nbgrader_course(archive.stem).path("release")
        with zipfile.ZipFile(archive) as bundle:
            names = bundle.namelist()
            assert f"{archive.stem}/{release.name}" in names
            text = bundle.read(f"{archive.stem}/{release.name}").decode()
        assert text == release.read_text()  # the release itself, byte for byte
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert not list(built_site.rglob("answers")), "an answer key was published"


def test_search_finds_running_var(built_site, browser):
    page, log = new_page(browser, 1280, 900)
    page.goto((built_site / "search.html").as_uri() + "?q=running_var", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector("ul.search li", timeout=PAGE_TIMEOUT_MS)
    results = page.eval_on_selector_all("ul.search li a", "links => links.map(a => a.href)")
    page.context.close()

    assert any("/lectures/04_inference_running_stats.html" in link for link in results), results
    assert not log.left_the_machine() and not log.errors, (log.left_the_machine(), log.errors)


def test_the_screenshots_are_saved_beside_the_slides(visits, built_site):
    shots = built_site.parent / "slides" / "screenshots"
    for name in ("site-index.png", "site-lectures-02_batchnorm_forward.png"):
        assert (shots / name).stat().st_size > 20_000, name


# --- without a browser: what the site step refuses -------------------------------------------


def test_a_release_holding_a_solution_is_not_published(tmp_path):
    out = tmp_path / "build"
    release = out / "nbgrader" / "release" / "ps1"
    release.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    nbformat.write(notebook, release / "ps1.ipynb")
    (tmp_path / "course").mkdir()

    rows = build.run_build(build.BuildOptions(root=tmp_path, out=out), steps=[site.site_step], progress=False)

    assert rows[0].status.startswith("failed: ValueError: ")
    assert "ps1.ipynb holds ### BEGIN SOLUTION: not a student release, not published" in rows[0].status
    assert not (out / "site" / "index.html").exists()
