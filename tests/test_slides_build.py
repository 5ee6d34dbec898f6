"""`normlab slides` without a browser: the page it writes, the cache of npm packages, the
index, and the errors. (tests/test_slides.py opens the real lectures in Chromium.)"""

import json
import re
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from normlab_tools import slides
from normlab_tools.errors import UserError


def cell(kind, source, slide_type=None, tags=(), outputs=()):
    made = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source, outputs=list(outputs))
    if slide_type:
        made.metadata["slideshow"] = {"slide_type": slide_type}
    if tags:
        made.metadata["tags"] = list(tags)
    return made


@pytest.fixture
def lecture(tmp_path):
    printed = [new_output("stream", name="stdout", text="first line\n"),
               new_output("stream", name="stdout", text="second line\n")]
    notebook = new_notebook(cells=[
        cell("markdown", "# Lecture 9 — Tiny $\\mu$\n\nThe mean $\\mu = \\frac1n\\sum_i x_i$.", "slide"),
        cell("markdown", "Say the *mean* first.", "notes"),
        cell("code", "import scaffolding_only", "skip"),
        cell("code", "secret_helper = 1", tags=["remove-cell"]),
        cell("markdown", "## Second slide", "slide"),
        cell("code", "hidden_source = 2\nprint('shown output')", tags=["remove-input"],
             outputs=[new_output("stream", name="stdout", text="shown output\n")]),
        cell("markdown", "## Below it", "subslide"),
        cell("code", "print('twice')", outputs=printed),
    ])
    path = tmp_path / "09_tiny.ipynb"
    nbformat.write(notebook, path)
    return path


def test_a_lecture_becomes_slides_that_load_only_local_files(lecture, tmp_path):
    page_path = tmp_path / "slides" / "09_tiny.slides.html"

    title = slides.export_slides(lecture, page_path)

    page = page_path.read_text()
    assert title == "Lecture 9 — Tiny $\\mu$"
    assert slides.remote_fetches(page) == []
    assert "mermaid" not in page
    for url in ("vendor/reveal.js/dist/reveal.js", "vendor/jquery/jquery.min.js", "vendor/requirejs/require.js",
                "vendor/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe", "vendor/reveal.js/plugin/notes/notes.js"):
        assert url in page
    assert "width: 1280" in page and "height: 720" in page
    assert page.count('<aside class="notes">') == 1 and "Say the <em>mean</em> first." in page
    assert "scaffolding_only" not in page and "secret_helper" not in page and "hidden_source" not in page
    assert "shown output" in page
    assert "first line\nsecond line" in page  # one block, not two


def test_a_remote_image_in_a_lecture_fails_the_slides(lecture, tmp_path):
    notebook = nbformat.read(lecture, as_version=4)
    notebook.cells.append(cell("markdown", "![a plot](https://example.org/plot.png)"))
    nbformat.write(notebook, lecture)

    with pytest.raises(ValueError, match="would fetch from the network: https://example.org/plot.png"):
        slides.export_slides(lecture, tmp_path / "out.slides.html")


def test_remote_fetches_finds_what_a_page_would_load_and_ignores_links():
    page = """<html><head>
    <script src="https://cdn.example/a.js"></script><script src="vendor/local.js"></script>
    <link rel="stylesheet" href="//cdn.example/b.css"><link rel="stylesheet" href="vendor/c.css">
    <style>@import url(https://fonts.example/d.css); .x { background: url("data:image/png;base64,AA"); }</style>
    <script type="module">import mermaid from 'https://cdn.example/mermaid.mjs';</script>
    </head><body><a href="https://example.org/read-more">a link is not a fetch</a>
    <img src="data:image/png;base64,AAAA"><img src="http://example.org/e.png"></body></html>"""

    assert slides.remote_fetches(page) == ["//cdn.example/b.css", "http://example.org/e.png",
                                           "https://cdn.example/a.js", "https://cdn.example/mermaid.mjs",
                                           "https://fonts.example/d.css"]


def fake_packages(node_modules, versions):
    for name, version in versions.items():
        (node_modules / name).mkdir(parents=True)
        (node_modules / name / "package.json").write_text(json.dumps({"name": name, "version": version}))


def test_cached_packages_are_used_without_npm(tmp_path, monkeypatch):
    folder = tmp_path / f"slides-assets-{slides.assets_key()}"
    fake_packages(folder / "node_modules", slides.ASSETS)
    monkeypatch.setattr(slides.shutil, "which", lambda name: None)  # no npm at all

    assert slides.fetch_assets(tmp_path) == folder / "node_modules"


def test_without_npm_the_error_says_what_to_install(tmp_path, monkeypatch):
    fake_packages(tmp_path / f"slides-assets-{slides.assets_key()}" / "node_modules",
                  {**slides.ASSETS, "mathjax": "3.0.0"})  # a wrong version is no cache
    monkeypatch.setattr(slides.shutil, "which", lambda name: None)

    with pytest.raises(UserError, match=r"need npm .* apt-get install npm"):
        slides.fetch_assets(tmp_path)


def test_when_npm_fails_the_error_says_so_and_leaves_no_half_cache(tmp_path, monkeypatch):
    failing_npm = tmp_path / "npm"
    failing_npm.write_text("#!/bin/sh\necho 'npm error network request failed (ENOTFOUND)' >&2\nexit 1\n")
    failing_npm.chmod(0o755)
    monkeypatch.setattr(slides.shutil, "which", lambda name: str(failing_npm))

    with pytest.raises(UserError, match=r"npm could not install .*offline.*ENOTFOUND"):
        slides.fetch_assets(tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


def test_vendor_keeps_what_the_slides_load_and_leaves_out_the_rest():
    assert slides._wanted("mathjax", "MathJax.js") == "mathjax/MathJax.js"
    assert slides._wanted("mathjax", "config/TeX-AMS_CHTML-full.js") == "mathjax/config/TeX-AMS_CHTML-full.js"
    assert slides._wanted("mathjax", "fonts/HTML-CSS/TeX/woff/MathJax_Main-Regular.woff")
    assert slides._wanted("mathjax", "unpacked/MathJax.js") is None
    assert slides._wanted("mathjax", "fonts/HTML-CSS/STIX-Web/woff/STIXMathJax_Main-Regular.woff") is None
    assert slides._wanted("mathjax", "fonts/HTML-CSS/TeX/png/Main/Regular/050/0041.png") is None
    assert slides._wanted("reveal.js", "dist/theme/white.css") == "reveal.js/dist/theme/white.css"
    assert slides._wanted("reveal.js", "dist/reveal.js.map") is None
    assert slides._wanted("jquery", "dist/jquery.min.js") == "jquery/jquery.min.js"
    assert slides._wanted("requirejs", "require.js") == "requirejs/require.js"


def test_the_index_lists_the_slides_in_the_folder_by_number_with_titles(lecture, tmp_path):
    folder = tmp_path / "slides"
    slides.export_slides(lecture, folder / "09_tiny.slides.html")
    (folder / "02_other.slides.html").write_text("<title>Lecture 2 &amp; more slides</title>")

    index = slides.write_index(folder).read_text()

    assert index.index("02_other.slides.html") < index.index("09_tiny.slides.html")
    assert ">Lecture 2 &amp; more</a>" in index and ">Tiny $\\mu$</a>" in index  # no "Lecture 9 — "
    assert slides.remote_fetches(index) == []


def test_an_unknown_lecture_number_is_one_clear_line(tmp_path):
    (tmp_path / "course").mkdir()
    result = subprocess.run([sys.executable, "-m", "normlab_tools", "slides", "07", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 2
    assert result.stderr.strip() == f"normlab slides: no lecture numbered 07 in {tmp_path / 'course'} (lectures: none)"


def test_jupyterlab_rise_is_installed_and_enabled_for_live_slides():
    """Instructors present a lecture live in JupyterLab with jupyterlab-rise (README), from the
    same slideshow metadata the reveal.js decks use."""
    result = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                            capture_output=True, text=True, timeout=120)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    line = next((line for line in listing.splitlines() if "jupyterlab-rise" in line), "")
    assert "enabled" in line and "OK" in line, listing
    jupytext = next((line for line in listing.splitlines() if "jupyterlab-jupytext" in line), "")
    assert "enabled" in jupytext and "OK" in jupytext, "JupyterLab must open the lectures' .py files as notebooks"
