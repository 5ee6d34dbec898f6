"""The course website: Sphinx with myst-nb and sphinx-book-theme, from the executed notebooks.

    build/course/*.ipynb, build/solutions/*.ipynb   (executed: nothing runs here)
    build/slides/                                   (the decks, copied in)
    build/nbgrader/release/psK/                     (student releases, zipped)
        ->  build/site/index.html                   (open it from disk or put the folder on any static host)

The pages are made in OUT/.site/src (a Sphinx project written here: conf.py, the home
page with the course map, the assignments page, a copy of each notebook with a line
linking its slides and its .ipynb) and built into OUT/site with `nb_execution_mode =
"off"`; Sphinx keeps its doctrees in OUT/.site/doctrees, so a rebuild reads only the
notebooks that changed (files are rewritten only when their content changes). The
whole step is skipped when nothing it reads has changed (a content hash, build.is_current).

Offline and from file://: the theme's files are local; MathJax is the slides' local copy
(normlab_tools.slides' npm packages) under _static/mathjax; search is Sphinx's own
(searchindex.js, loaded by a script tag), without result summaries (the search page would
fetch each result page for them, which file:// forbids). Every page is scanned for anything it
would fetch from the network, as the slides are, and such a site fails the step.

Assignments: only the student releases nbgrader generated (solutions replaced by stubs,
hidden tests removed) are offered, as psK.zip and as notebooks; a release that still holds
a solution or hidden-test marker fails the step instead of being published.
"""

from __future__ import annotations

import copy
import re
import shutil
import time
import zipfile
from functools import partial
from pathlib import Path

import nbformat

from normlab_tools import build, slides
from normlab_tools.build import BuildOptions, Result, Task

SITE_TITLE = "Normalization in deep learning"
SECRET_MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
MATHJAX = "mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"

CONF = '''# Written by normlab_tools.site: edit that module, not this file.
project = {title!r}
html_title = {title!r}
author = "the normlab course"
html_context = {{"default_mode": "light"}}
extensions = ["myst_nb"]
nb_execution_mode = "off"
nb_render_markdown_format = "myst"
myst_enable_extensions = ["dollarmath", "amsmath"]
html_theme = "sphinx_book_theme"
html_theme_options = {{
    "use_download_button": False,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
}}
html_static_path = ["static"]
html_copy_source = False
html_show_sourcelink = False
html_show_search_summary = False
html_last_updated_fmt = None
mathjax_path = {mathjax!r}
mathjax2_config = {{
    # myst-nb marks notebook pages tex2jax_ignore (no $ in outputs is math); Sphinx's math has class "math"
    "tex2jax": {{"inlineMath": [["\\\\(", "\\\\)"]], "displayMath": [["\\\\[", "\\\\]"]],
                "processClass": "math", "processEscapes": True, "processEnvironments": True}},
    "displayAlign": "center",
}}
exclude_patterns = ["downloads", "static", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
'''


# --- the pages ---------------------------------------------------------------------------------


def first_paragraph(notebook: nbformat.NotebookNode) -> str:
    """The first paragraph of prose after the title (one line), for the course map."""
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", cell.source) if p.strip()]
        for paragraph in paragraphs:
            if not paragraph.startswith(("#", "|", "-", "*", "$$", ">", "```", "<")):
                return " ".join(paragraph.split())
    return ""


def _cell_table_text(text: str) -> str:
    return text.replace("|", "\\|")


def page_notebook(notebook: nbformat.NotebookNode, links: str) -> nbformat.NotebookNode:
    """The notebook as its page shows it: a line of links under its title."""
    page = copy.deepcopy(notebook)
    at = 1 if page.cells and page.cells[0].cell_type == "markdown" and page.cells[0].source.lstrip().startswith("# ") else 0
    page.cells.insert(at, nbformat.v4.new_markdown_cell(links))
    for index, cell in enumerate(page.cells):
        cell.id = f"page-{index}"
    return page


def _done(out: Path, notebook: Path) -> bool:
    """Whether the build made `notebook` and it ran to the end."""
    return notebook.is_file() and build.read_stamp(out, notebook).get("error") is None


def write_sources(options: BuildOptions, src: Path) -> list[str]:
    """Write the Sphinx project into `src`; returns its notebook documents (e.g. 'lectures/01_x')."""
    out = options.out
    lectures = [p for p in sorted((out / "course").glob("*.ipynb")) if _done(out, p)]
    solutions = {p.stem: p for p in sorted((out / "solutions").glob("*.ipynb")) if _done(out, p)}
    documents, rows = [], []
    for path in lectures:
        notebook = nbformat.read(path, as_version=4)
        title = slides.lecture_title(notebook, path.stem)
        number = build.lecture_number(path)
        has_slides = (out / "slides" / f"{path.stem}.slides.html").is_file()
        _copy_bytes(path, src / "downloads" / "lectures" / path.name)
        links = [f"{{download}}`Download the notebook <../downloads/lectures/{path.name}>`"]
        if has_slides:
            links.insert(0, f'<a class="normlab-slides" href="../slides/{path.stem}.slides.html">Slides</a>')
        if path.stem in solutions:
            links.append(f"{{doc}}`Worked solutions <../solutions/{path.stem}>`")
        _write_notebook(src / "lectures" / path.name, page_notebook(notebook, " · ".join(links)))
        documents.append(f"lectures/{path.stem}")
        short = re.sub(r"\$([^$]*)\$", r"\1", slides._LECTURE_PREFIX.sub("", title)).replace("\\", "")
        cells = [f"{number:02d}" if number is not None else "",
                 f"{{doc}}`{_cell_table_text(short)} <lectures/{path.stem}>`<br>{_cell_table_text(first_paragraph(notebook))}",
                 f'<a class="normlab-slides" href="slides/{path.stem}.slides.html">slides</a>' if has_slides else "",
                 f"{{download}}`.ipynb <downloads/lectures/{path.name}>`",
                 f"{{doc}}`solutions <solutions/{path.stem}>`" if path.stem in solutions else ""]
        rows.append("| " + " | ".join(cells) + " |")
    for stem, path in solutions.items():
        notebook = nbformat.read(path, as_version=4)
        _copy_bytes(path, src / "downloads" / "solutions" / path.name)
        links = f"{{download}}`Download the notebook <../downloads/solutions/{path.name}>`"
        if (src / "lectures" / path.name).is_file():
            links = f"{{doc}}`The lecture <../lectures/{stem}>` · " + links
        _write_notebook(src / "solutions" / path.name, page_notebook(notebook, links))
        documents.append(f"solutions/{stem}")
    assignments = write_assignments(out, src)
    lecture_docs = [d for d in documents if d.startswith("lectures/")]
    solution_docs = [d for d in documents if d.startswith("solutions/")]
    index = [f"# {SITE_TITLE}", "",
             "A course on normalization in deep learning: input normalization, batch normalization "
             "(forward, backward, inference), its variants, dropout and initialization. Every lecture is a "
             "notebook, shown here with its outputs; its slides and the notebook itself are a click away, "
             "and the assignments' student versions can be downloaded below. Everything works offline.", "",
             "## Course map", "",
             "| | Lecture | Slides | Notebook | Solutions |", "|---|---|---|---|---|", *rows, "",
             f"Slides: <a href=\"slides/index.html\">all decks</a> (keys: arrows to move, S speaker notes, "
             "F full screen). Assignments: {doc}`assignments`.", "",
             _toctree("Lectures", lecture_docs), _toctree("Worked solutions", solution_docs),
             _toctree("Assignments", ["assignments"])]
    build.write_if_changed(src / "index.md", "\n".join(index) + "\n")
    build.write_if_changed(src / "assignments.md", assignments)
    build.write_if_changed(src / "conf.py", CONF.format(title=SITE_TITLE, mathjax=MATHJAX))
    return documents


def _toctree(caption: str, documents: list[str]) -> str:
    return "\n".join(["```{toctree}", ":hidden:", ":maxdepth: 1", f":caption: {caption}", "", *documents, "```", ""])


def write_assignments(out: Path, src: Path) -> str:
    """src/downloads/psK.zip and the notebooks of each student release; the page's text."""
    lines = ["# Assignments", "",
             "The student versions, as nbgrader releases them: solutions replaced by `# YOUR CODE HERE`, "
             "hidden tests left out. Download one, open it in JupyterLab, and run its last cell to check "
             "your work before you submit.", ""]
    releases = sorted((out / "nbgrader" / "release").glob("ps*"), key=lambda p: (len(p.name), p.name))
    if not releases:
        lines.append("No assignment has been released in this build.")
    for release in releases:
        files = sorted(p for p in release.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
        for path in files:
            if path.suffix in {".ipynb", ".py", ".md", ".txt"}:
                text = path.read_text(encoding="utf-8", errors="replace")
                leaked = [marker for marker in SECRET_MARKERS if marker in text]
                if leaked:
                    raise ValueError(f"{path} holds {', '.join(leaked)}: not a student release, not published")
        archive = src / "downloads" / f"{release.name}.zip"
        _write_zip(archive, release, files)
        notebooks = [p for p in files if p.suffix == ".ipynb"]
        title = release.name
        if notebooks:
            title = slides.lecture_title(nbformat.read(notebooks[0], as_version=4), release.name)
        lines += [f"## {title}", "", f"- {{download}}`{release.name}.zip <downloads/{release.name}.zip>` "
                  f"(the whole release: {len(files)} file{'s' * (len(files) != 1)})"]
        for path in notebooks:
            copy = src / "downloads" / release.name / path.relative_to(release)
            _copy_bytes(path, copy)
            lines.append(f"- {{download}}`{path.name} <downloads/{release.name}/{path.relative_to(release).as_posix()}>`")
        lines.append("")
    return "\n".join(lines) + "\n"


def _write_zip(archive: Path, folder: Path, files: list[Path]) -> None:
    """A zip of `files` under the folder's name, with fixed dates (same files, same bytes)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    temporary = archive.with_suffix(".zip.partial")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in files:
            info = zipfile.ZipInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}", (2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, path.read_bytes())
    if archive.is_file() and archive.read_bytes() == temporary.read_bytes():
        temporary.unlink()
    else:
        temporary.replace(archive)


def _write_notebook(path: Path, notebook: nbformat.NotebookNode) -> None:
    build.write_if_changed(path, nbformat.writes(notebook))


def _copy_bytes(source: Path, target: Path) -> None:
    """Copy unless the target holds the same bytes (Sphinx then sees nothing new)."""
    data = source.read_bytes()
    if target.is_file() and target.read_bytes() == data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _sync_folder(source: Path, target: Path, skip: tuple[str, ...] = ()) -> None:
    """Make `target` a copy of `source`, copying only files whose bytes differ."""
    wanted = set()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts and relative.parts[0] in skip:
            continue
        wanted.add(relative)
        if path.is_file():
            copy = target / relative
            if not (copy.is_file() and copy.stat().st_size == path.stat().st_size
                    and copy.read_bytes() == path.read_bytes()):
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
    if target.is_dir():
        for path in sorted(target.rglob("*"), reverse=True):
            if path.relative_to(target) not in wanted:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def install_mathjax(static: Path) -> None:
    """The slides' local MathJax (the npm package in the cache) into static/mathjax."""
    stamp = static / "mathjax" / ".normlab-assets"
    if stamp.is_file() and stamp.read_text() == slides.assets_key():
        return
    shutil.rmtree(static / "mathjax", ignore_errors=True)
    for source, target in slides.vendor_files(slides.fetch_assets()):
        if target.startswith("mathjax/"):
            (static / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, static / target)
    stamp.write_text(slides.assets_key())


# --- building it -------------------------------------------------------------------------------


def site_inputs(options: BuildOptions) -> str:
    """A hash of everything the site is made from."""
    out = options.out
    parts = [build.tooling_digest("build", "slides", "site")]
    for folder, pattern in (("course", "*.ipynb"), ("solutions", "*.ipynb"), ("slides", "*.html"),
                            ("nbgrader/release", "**/*")):
        for path in sorted((out / folder).glob(pattern)):
            if path.is_file():
                parts += [path.relative_to(out).as_posix(), path.read_bytes(),
                          str(build.read_stamp(out, path).get("error"))]
    return build.digest(*parts)


def build_site(options: BuildOptions) -> Result:
    """OUT/site from what the build made; skipped when its inputs are unchanged."""
    out = options.out
    site = out / "site"
    made_from = site_inputs(options)
    if not options.force and build.is_current(out, site / "index.html", made_from):
        return Result(reused=True)
    start = time.perf_counter()
    src, doctrees = out / ".site" / "src", out / ".site" / "doctrees"
    install_mathjax(src / "static")
    documents = write_sources(options, src)
    for folder in ("lectures", "solutions"):  # pages of notebooks the build no longer has
        for stale in (src / folder).glob("*.ipynb") if (src / folder).is_dir() else []:
            if f"{folder}/{stale.stem}" not in documents:
                stale.unlink()
    warnings = run_sphinx(src, site, doctrees, fresh=options.force, jobs=options.jobs)
    if (out / "slides").is_dir():
        _sync_folder(out / "slides", site / "slides", skip=("screenshots",))
    remote = {page.relative_to(site).as_posix(): urls for page in sorted(site.rglob("*.html"))
              if (urls := slides.remote_fetches(page.read_text(encoding="utf-8", errors="replace")))}
    if remote:
        return Result("the site would fetch from the network: " + "; ".join(f"{page}: {', '.join(urls)}"
                                                                              for page, urls in remote.items()))
    build.write_stamp(out, site / "index.html", made_from=made_from, warnings=warnings,
                      seconds=round(time.perf_counter() - start, 1))
    return Result()


def run_sphinx(src: Path, site: Path, doctrees: Path, fresh: bool = False, jobs: int = 1) -> list[str]:
    """sphinx-build -b html -j JOBS SRC SITE (incremental unless `fresh`); returns its warnings.
    Raises RuntimeError with Sphinx's message when it fails."""
    import io

    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    status, warning = io.StringIO(), io.StringIO()
    try:
        with patch_docutils(src), docutils_namespace():
            app = Sphinx(str(src), str(src), str(site), str(doctrees), "html", status=status, warning=warning,
                         freshenv=fresh, keep_going=True, parallel=jobs)
            app.build(force_all=fresh)
    except Exception as error:
        raise RuntimeError(f"Sphinx failed: {error}\n{warning.getvalue()[-3000:]}") from error
    return [line for line in warning.getvalue().splitlines() if "WARNING" in line or "ERROR" in line]


def site_step(options: BuildOptions) -> list[Task]:
    """The build step: one task, after everything it shows (lectures, solutions, slides, releases)."""
    after = [f"{folder}/{source.stem}" for folder in ("course", "solutions")
             for source in build.sources(options.root / folder, options.numbers)]
    after += ["slides/index"]
    if not options.numbers and (options.root / "assignments" / "source").is_dir():
        after += [f"assignments/{path.name}" for path in sorted((options.root / "assignments" / "source").glob("ps*"))]
    site_stamp = build.read_stamp(options.out, options.out / "site" / "index.html")
    return [Task("site", partial(build_site, options), after=tuple(after), cost=site_stamp.get("seconds", 30.0),
                 current=partial(site_is_current, options))]


def site_is_current(options: BuildOptions) -> bool:
    """The quick check: the site was made from today's inputs."""
    return not options.force and build.is_current(options.out, options.out / "site" / "index.html",
                                                  site_inputs(options))
