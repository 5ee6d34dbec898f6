"""The lecture slides, opened in headless Chromium (Playwright) with the network off.

For every lecture: `normlab slides` builds OUT/slides/NN_name.slides.html from the
executed notebook OUT/course/NN_name.ipynb, where OUT is the temporary folder of
conftest's `executed_lectures` (the lectures run once per session, shared with
tests/test_lectures.py; nothing is written to the checkout's build/); Chromium opens it
from disk in an offline browser context, and the test asserts that reveal.js started,
that there is one slide per slide cell of the notebook and one speaker note per notes
cell, that MathJax typeset every formula (no TeX error, no raw `$` left in the text),
that every image loaded, and that every request the page made was for a file on disk.
It saves screenshots of the title slide and of the slide with the most formulas in
OUT/slides/screenshots/ (look at them: nothing should overflow; pytest keeps its last
runs' temporary folders, /tmp/pytest-of-$USER/pytest-current/lectures-build0/), beside
the site's (tests/test_site.py).

Chromium is Debian's (`make test` installs it when missing), driven by Playwright
(tests/browser.py); Playwright's own browsers are never downloaded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from browser import new_page, offline_browser
from normlab_tools import build, slides
from support import LECTURES, ROOT

PAGE_TIMEOUT = 60  # seconds for a page to load, start reveal.js and typeset its math

pytestmark = pytest.mark.slow


# --- what the notebook says the slides must be ----------------------------------------------


def slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def shown_cells(notebook) -> list:
    return [cell for cell in notebook.cells if "remove-cell" not in cell.metadata.get("tags", [])]


def expected_slide_count(notebook) -> int:
    """Slide cells: each 'slide' or 'subslide' cell starts one (reveal.js counts the
    vertical slides of a horizontal one, and nbconvert puts every slide in one); the
    first shown cell starts the first slide whatever its type."""
    cells = [cell for cell in shown_cells(notebook) if slide_type(cell) not in {"skip", "notes"}]
    starts = sum(slide_type(cell) in {"slide", "subslide"} for cell in cells)
    return starts + (1 if cells and slide_type(cells[0]) not in {"slide", "subslide"} else 0)


def expected_notes_count(notebook) -> int:
    return sum(slide_type(cell) == "notes" for cell in shown_cells(notebook))


# --- the page, examined ------------------------------------------------------------------------

READY = """
new Promise((resolve, reject) => {
  const started = Date.now();
  (function poll() {
    if (window.Reveal && Reveal.isReady && Reveal.isReady() && window.MathJax && MathJax.Hub) {
      // after MathJax's start-up, and after whatever it has queued (the first typesetting);
      // the braces matter: a hook that returns MathJax's callback object makes it wait
      MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => resolve(true)); });
    } else if (Date.now() - started > %d) {
      reject(new Error("reveal.js or MathJax did not start: Reveal " + typeof window.Reveal
                       + ", MathJax " + typeof window.MathJax));
    } else { setTimeout(poll, 50); }
  })();
})
""" % (PAGE_TIMEOUT * 1000)

INSPECT = r"""
(() => {
  const leaves = Reveal.getSlides();  // every slide reveal.js shows: the vertical ones
  const count = (root, selector) => root.querySelectorAll(selector).length;
  const text = document.querySelector(".reveal .slides").cloneNode(true);
  // what is not prose: code, TeX sources MathJax keeps in <script>, its hidden MathML copy
  text.querySelectorAll("script, pre, code, .MJX_Assistive_MathML, .MathJax_Preview").forEach(e => e.remove());
  const raw = [];
  const prose = text.textContent;
  for (const match of prose.matchAll(/\$|\\\(|\\\[/g)) {
    raw.push(prose.slice(Math.max(0, match.index - 40), match.index + 40).replace(/\s+/g, " "));
  }
  const mathCounts = leaves.map(slide => count(slide, ".MathJax_CHTML"));
  return {
    total: Reveal.getTotalSlides(),
    notes: count(document, "aside.notes"),
    jax: MathJax.Hub.getAllJax().length,
    texErrors: MathJax.Hub.getAllJax().filter(jax => jax.texError).map(jax => jax.originalText),
    mathErrors: count(document, ".MathJax_CHTML .mjx-merror, .MathJax_CHTML_Error"),
    rawMath: raw,
    images: document.images.length,
    brokenImages: Array.from(document.images).filter(img => !img.complete || img.naturalWidth === 0)
                       .map(img => img.src.slice(0, 80)),
    mathiest: leaves.map((slide, i) => [mathCounts[i], Reveal.getIndices(slide)])
                    .reduce((best, next) => next[0] > best[0] ? next : best)[1],
  };
})()
"""

# Visit every slide, all its fragments shown, and measure what sticks out of it.
OVERFLOW = r"""
(async () => {
  Reveal.configure({transition: "none", fragmentInURL: false});
  const {width, height} = Reveal.getConfig();
  const headingOf = slide => {
    const heading = slide.querySelector("h1, h2, h3");
    if (!heading) return "(no heading)";
    const copy = heading.cloneNode(true);
    copy.querySelectorAll('script[type^="math/tex"]').forEach(tex => tex.replaceWith("$" + tex.textContent + "$"));
    copy.querySelectorAll(".MathJax_CHTML, .MathJax_Preview, .MJX_Assistive_MathML, .anchor-link")
        .forEach(element => element.remove());
    return copy.textContent.trim();
  };
  const found = [];
  for (const slide of Reveal.getSlides()) {
    const {h, v} = Reveal.getIndices(slide);
    Reveal.slide(h, v);
    while (Reveal.nextFragment()) {}
    await new Promise(resolve => MathJax.Hub.Queue(() => requestAnimationFrame(() => resolve())));
    const where = `slide ${h + 1}.${v + 1} "${headingOf(slide)}"`;
    if (slide.scrollHeight > height + 2) found.push(`${where}: ${slide.scrollHeight} px tall (the slide: ${height})`);
    const wide = Math.max(slide.scrollWidth, ...Array.from(slide.querySelectorAll("pre"), pre =>
        pre.scrollWidth > pre.clientWidth + 2 ? width + pre.scrollWidth - pre.clientWidth : 0));
    if (wide > width + 2) found.push(`${where}: ${wide} px wide (the slide: ${width})`);
  }
  Reveal.slide(0, 0);
  return found;
})()
"""


def show(page, indices: dict) -> None:
    """Go to slide (h, v) with all its fragments shown, once MathJax has re-rendered it."""
    page.evaluate(f"""
        new Promise(resolve => {{
          Reveal.configure({{transition: "none", fragmentInURL: false}});
          Reveal.slide({indices["h"]}, {indices["v"]});
          while (Reveal.nextFragment()) {{}}
          // after MathJax's re-rendering and the fragments' fade-in (0.2 s)
          MathJax.Hub.Queue(() => setTimeout(() => requestAnimationFrame(resolve), 400));
        }})""")


def open_deck(browser, path: Path):
    """(page, log): the deck at `path` opened offline, reveal.js started and MathJax done."""
    page, log = new_page(browser, slides.SLIDE_WIDTH, slides.SLIDE_HEIGHT)
    page.set_default_timeout((PAGE_TIMEOUT + 60) * 1000)
    page.goto(path.as_uri(), wait_until="load")
    page.evaluate(READY)
    return page, log


# --- fixtures and the test ----------------------------------------------------------------------


@dataclass
class Slides:
    folder: Path       # OUT/slides: NN_name.slides.html, index.html, vendor/
    course: Path       # OUT/course: the executed notebooks they were made from
    screenshots: Path  # OUT/slides/screenshots


@pytest.fixture(scope="module")
def built_slides(executed_lectures):
    """Every lecture's slides, built the way `normlab slides` does, into the folder of
    conftest's `executed_lectures` (which reuses the notebooks executed there)."""
    options = build.BuildOptions(root=ROOT, out=executed_lectures.out)
    rows = build.run_build(options, steps=[slides.slides_step], progress=False)
    problems = {row.name: row.status for row in rows if row.error}
    assert not problems, f"slides not built: {problems}"
    folder = executed_lectures.out / "slides"
    for old in (folder / "screenshots").glob("*.png"):  # the decks' (tests/test_site.py keeps its own)
        if not old.name.startswith("site-"):
            old.unlink()
    return Slides(folder, executed_lectures.out / "course", folder / "screenshots")


@pytest.fixture(scope="module")
def chromium():
    with offline_browser() as browser:
        yield browser


@dataclass
class Visit:
    """What one lecture's slides did in the browser."""
    found: dict             # INSPECT's answer
    overflowing: list[str]  # OVERFLOW's answer
    requests: list[str]     # every URL the page asked for
    failed: list[str]       # loads that failed, with the reason
    errors: list[str]       # uncaught exceptions and console errors


@pytest.fixture(scope="module")
def visit(built_slides, chromium):
    """visit(source): open the lecture's slides once (later calls reuse the answer), walk
    every slide, and save the two screenshots."""
    visits = {}

    def open_slides(source: Path) -> Visit:
        if source not in visits:
            page, log = open_deck(chromium, built_slides.folder / f"{source.stem}.slides.html")
            found = page.evaluate(INSPECT)
            overflowing = page.evaluate(OVERFLOW)
            built_slides.screenshots.mkdir(parents=True, exist_ok=True)
            show(page, {"h": 0, "v": 0})
            page.screenshot(path=built_slides.screenshots / f"{source.stem}-title.png")
            show(page, found["mathiest"])
            page.screenshot(path=built_slides.screenshots / f"{source.stem}-most-math.png")
            page.context.close()
            visits[source] = Visit(found, overflowing, log.requests, log.failed, log.errors)
        return visits[source]

    return open_slides


def test_the_index_lists_every_lecture_with_its_title(built_slides):
    index = (built_slides.folder / "index.html").read_text()
    for source in LECTURES:
        title = slides.lecture_title(build.read_source(source), source.stem)
        assert f'href="{source.stem}.slides.html"' in index
        assert html.escape(title.split("—")[-1].strip()) in index
    assert not slides.remote_fetches(index)


@pytest.mark.parametrize("source", LECTURES, ids=lambda path: path.stem)
def test_slides_work_offline_with_every_slide_formula_and_image(source, built_slides, visit):
    page = (built_slides.folder / f"{source.stem}.slides.html").as_uri()
    notebook = nbformat.read(built_slides.course / f"{source.stem}.ipynb", as_version=4)
    seen = visit(source)

    assert page in seen.requests, "the request log missed the page itself"
    left_the_machine = [url for url in seen.requests if not re.match(r"^(file|data|blob|about):", url)]
    assert not left_the_machine, f"requests that left the machine: {left_the_machine}"
    assert not seen.failed, f"loads that failed: {seen.failed}"
    assert not seen.errors, f"errors in the page: {seen.errors}"
    assert seen.found["total"] == expected_slide_count(notebook), "slides shown != slide cells in the notebook"
    assert seen.found["notes"] == expected_notes_count(notebook), "speaker notes != notes cells"
    if "$" in "".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown"):
        assert seen.found["jax"] > 0, "the lecture has formulas but MathJax typeset none"
    assert not seen.found["texErrors"] and not seen.found["mathErrors"], f"TeX errors: {seen.found['texErrors']}"
    assert not seen.found["rawMath"], f"math left untypeset: {seen.found['rawMath']}"
    assert not seen.found["brokenImages"], f"broken images: {seen.found['brokenImages']}"
    assert (built_slides.screenshots / f"{source.stem}-title.png").stat().st_size > 10_000
    assert (built_slides.screenshots / f"{source.stem}-most-math.png").stat().st_size > 10_000


def test_pressing_s_opens_the_speaker_view_with_the_slides_notes(built_slides, chromium):
    """The speaker view is a second window (reveal.js's notes plugin) showing the notes of
    the current slide, offline too. Tried on the first lecture with notes."""
    deck = next((built_slides.folder / f"{source.stem}.slides.html" for source in LECTURES
                 if expected_notes_count(nbformat.read(built_slides.course / f"{source.stem}.ipynb", as_version=4))),
                None)
    assert deck is not None, "no lecture has speaker notes (every lecture should)"
    page, log = open_deck(chromium, deck)
    notes = page.evaluate("""(() => {
        const notes = document.querySelector("aside.notes");
        const {h, v} = Reveal.getIndices(notes.closest("section"));
        Reveal.slide(h, v);
        return notes.textContent.replace(/\\s+/g, " ").trim().slice(0, 60);
    })()""")

    with page.expect_popup(timeout=20_000) as opened:  # a real key press: windows open on user input only
        page.keyboard.press("s")
    view = opened.value
    shown = view.evaluate("""new Promise(resolve => {
        const started = Date.now();
        (function poll() {
            const notes = document.querySelector(".speaker-controls-notes .value");
            const text = notes ? notes.textContent.replace(/\\s+/g, " ").trim() : "";
            if (text || Date.now() - started > 10000) resolve(document.title + " | " + text); else setTimeout(poll, 100);
        })();
    })""")
    page.context.close()

    assert shown.startswith("reveal.js - Speaker View")
    assert notes and notes in shown, f"the speaker view shows {shown!r}, not the notes {notes!r}"
    assert not log.left_the_machine(), log.left_the_machine()


@pytest.mark.parametrize("source", LECTURES, ids=lambda path: path.stem)
def test_nothing_sticks_out_of_a_slide(source, visit):
    """Every slide, with all its fragments shown, fits in 1280 x 720: what does not is cut
    off in the room. Split a long slide with a 'subslide' cell, or hide scaffolding code
    with slide_type 'skip' or the tag 'remove-input'."""
    seen = visit(source)

    assert not seen.overflowing, "content outside the slide:\n" + "\n".join(seen.overflowing)
