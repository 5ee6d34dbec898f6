"""`normlab slides`: reveal.js slides of the lectures that work offline, with speaker notes.

    build/course/NN_name.ipynb  ->  build/slides/NN_name.slides.html
                                    build/slides/index.html     (lists the lectures)
                                    build/slides/vendor/        (reveal.js, MathJax, jQuery, require.js)

Slides are made from the EXECUTED notebooks in build/course/, so plots appear. In
`normlab build` the course step has just made them; `normlab slides NN` takes a lecture's
outputs from the build's execution cache when its code and inputs are unchanged, else
executes it first (`--rerun` always does), and remakes a deck only when its notebook or
this module changed.

Slide structure comes from the cells' slideshow metadata, as in Jupyter: slide_type
'slide' starts a new horizontal slide, 'subslide' a vertical one below it, 'fragment'
appears on the next key press, 'notes' are speaker notes (press S in the browser),
'skip' is left out. Cell tags hide scaffolding: 'remove-cell' drops the cell,
'remove-input' keeps only its output, 'remove-output' keeps only its code.

Offline: every file the slides load is under build/slides/, referenced by relative URL,
so the folder can be copied to a laptop and opened from disk (file://). The JavaScript
comes from the npm registry's packages, pinned in ASSETS: `npm install` runs once into a
cache outside the project (~/.cache/normlab/slides-assets-<hash>, or $NORMLAB_CACHE),
and the files the slides need are copied from there into build/slides/vendor/. Nothing
is committed to the repository and nothing is fetched from a CDN: nbconvert's slides
template loads reveal.js, MathJax, jQuery and require.js from CDNs and imports mermaid
from one; the template below points the first four at vendor/ and drops mermaid and the
widget manager. As a last check every slide page is scanned for anything it would fetch
from the network (scripts, style sheets, images, CSS imports), and such a page fails.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from html.parser import HTMLParser
from pathlib import Path

import nbformat

from normlab_tools import build
from normlab_tools.build import BuildOptions, Task
from normlab_tools.errors import UserError

# The npm packages the slides load, pinned: nbconvert 7's slides template is written
# for these versions.
ASSETS = {"reveal.js": "4.0.2", "jquery": "2.2.4", "requirejs": "2.1.10", "mathjax": "2.7.7"}
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 720
REMOVE_CELL_TAGS = {"remove-cell"}
REMOVE_INPUT_TAGS = {build.REMOVE_INPUT_TAG}
REMOVE_OUTPUT_TAGS = {"remove-output"}

# Where each package's files go in build/slides/vendor/, as the slide pages refer to them.
REVEAL_PREFIX = "vendor/reveal.js"
JQUERY_URL = "vendor/jquery/jquery.min.js"
REQUIRE_JS_URL = "vendor/requirejs/require.js"
MATHJAX_URL = "vendor/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"

# nbconvert's reveal template with the network taken out and our reveal.js settings.
TEMPLATE = r"""
{%- extends 'reveal/index.html.j2' -%}

{#- nbconvert imports mermaid from a CDN on every page; the lectures have no diagrams. -#}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}

{#- The widget manager also comes from a CDN; slides show widgets' static output only. -#}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}

{%- block html_head_js_mathjax -%}
{{ super() }}
<script type="text/x-mathjax-config">
// nbconvert turns on automatic line breaking; MathJax breaks formulas on the (hidden,
// zero-width) slides it typesets at load, and table cells never grow back. A slide has
// a fixed width, so break only where the author did.
MathJax.Hub.Config({CommonHTML: {linebreaks: {automatic: false}}});
</script>
{%- endblock html_head_js_mathjax -%}

{%- block html_head_css -%}
<style type="text/css">
{{ resources.normlab_css }}
</style>
{%- endblock html_head_css -%}

{% block footer_js %}
<script>
require(
    {waitSeconds: 15},
    ["{{ resources.reveal.url_prefix }}/dist/reveal.js", "{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"],
    function (Reveal, RevealNotes) {
        window.Reveal = Reveal;  // require.js keeps it private; the browser test asks it
        Reveal.initialize({
            controls: true,
            progress: true,
            hash: true,
            center: false,
            transition: "{{ resources.reveal.transition }}",
            slideNumber: "{{ resources.reveal.number }}",
            width: {{ resources.reveal.width }},
            height: {{ resources.reveal.height }},
            margin: 0.02,
            plugins: [RevealNotes]
        });
        // MathJax measures formulas on hidden slides as zero-sized: re-render on arrival.
        Reveal.on("slidechanged", function (event) {
            if (window.MathJax && MathJax.Hub.getAllJax(event.currentSlide).length) {
                MathJax.Hub.Queue(["Rerender", MathJax.Hub, event.currentSlide]);
            }
        });
    }
);
</script>
{% endblock footer_js %}
"""

# Sized for a 1280 x 720 slide: text a room can read, code that fits, plots that fit.
CSS = """
:root {
    --jp-content-font-size1: 21px;
    --jp-ui-font-size1: 19px;
    --jp-code-font-size: 16px;
}
.reveal .slides > section > section { padding: 8px 0; }
.reveal .slides h1, .reveal .slides h2, .reveal .slides h3 { text-transform: none; margin-bottom: 0.35em; }
.reveal .slides h1 { font-size: 1.9em; }
.reveal .slides h2 { font-size: 1.45em; }
.reveal .jp-RenderedHTMLCommon p { margin-bottom: 0.45em; line-height: 1.35; }
.reveal .jp-RenderedHTMLCommon li { line-height: 1.35; }
.reveal .jp-Cell { padding: 2px 0; }
.reveal .jp-InputArea-editor { background: #f5f5f5; }
.reveal div.highlight > pre { padding: 0.3em 0.5em; line-height: 1.3; }
.reveal .jp-OutputArea-output pre { line-height: 1.3; }
.reveal .jp-OutputArea-output img { max-height: 460px; width: auto; max-width: 100%; }
"""


# --- the JavaScript: npm packages in a cache, copied into build/slides/vendor -------------


def assets_key() -> str:
    """A short hash of the pinned packages: a new pin means a new cache folder."""
    return hashlib.sha256(json.dumps(ASSETS, sort_keys=True).encode()).hexdigest()[:12]


def cache_root() -> Path:
    """$NORMLAB_CACHE, else $XDG_CACHE_HOME/normlab, else ~/.cache/normlab."""
    if os.environ.get("NORMLAB_CACHE"):
        return Path(os.environ["NORMLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "normlab"


def _installed_versions(node_modules: Path) -> dict[str, str | None]:
    versions = {}
    for package in ASSETS:
        manifest = node_modules / package / "package.json"
        versions[package] = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
    return versions


def fetch_assets(cache: Path | None = None) -> Path:
    """The node_modules folder holding ASSETS, installed with npm on first use.

    The packages go to CACHE/slides-assets-<hash of ASSETS>/node_modules and are reused
    from there. Raises UserError when npm is missing or cannot install them (offline).
    """
    folder = (cache or cache_root()) / f"slides-assets-{assets_key()}"
    node_modules = folder / "node_modules"
    if _installed_versions(node_modules) == ASSETS:
        return node_modules
    npm = shutil.which("npm")
    specs = [f"{name}@{version}" for name, version in ASSETS.items()]
    if npm is None:
        raise UserError(f"the slides need npm to fetch {', '.join(specs)} once into {folder}; "
                        "install Node.js and npm (Debian: apt-get install npm) and try again")
    staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [npm, "install", "--prefix", str(staging), "--no-save", "--no-package-lock", "--no-audit",
               "--no-fund", "--ignore-scripts", "--loglevel=error", "--fetch-retries=1", *specs]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        failure = None if result.returncode == 0 else (result.stderr or result.stdout).strip()
    except subprocess.TimeoutExpired:
        failure = "npm gave no answer within 10 minutes"
    if failure is None and _installed_versions(staging / "node_modules") != ASSETS:
        failure = f"npm installed {_installed_versions(staging / 'node_modules')}, not {ASSETS}"
    if failure is not None:
        shutil.rmtree(staging, ignore_errors=True)
        last_lines = " | ".join(failure.splitlines()[-3:])
        raise UserError(f"npm could not install {' '.join(specs)} into {folder} (offline? the npm "
                        f"registry is needed once, then the cache is used): {last_lines}")
    if _installed_versions(node_modules) != ASSETS:  # else another build finished first
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    shutil.rmtree(staging, ignore_errors=True)
    return node_modules


_NOT_TEX_FONTS = {"Asana-Math", "Gyre-Pagella", "Gyre-Termes", "Latin-Modern", "Neo-Euler", "STIX", "STIX-Web"}


def _wanted(package: str, relative: str) -> str | None:
    """Where `relative` (a file of `package`) goes under vendor/, or None to leave it out.

    Only what the slides can load: MathJax without its unpacked sources, its other
    configurations, non-TeX fonts and image fonts (71 MB -> about 20 MB)."""
    parts = relative.split("/")
    if relative.endswith(".map") or relative.endswith(".esm.js"):
        return None
    if package == "reveal.js":
        return f"reveal.js/{relative}" if parts[0] in {"dist", "plugin"} or relative == "LICENSE" else None
    if package == "jquery":
        return f"jquery/{parts[-1]}" if relative in {"dist/jquery.min.js", "LICENSE.txt"} else None
    if package == "requirejs":
        return "requirejs/require.js" if relative == "require.js" else None
    if package == "mathjax":
        if parts[0] in {"MathJax.js", "LICENSE", "extensions", "localization"}:
            return f"mathjax/{relative}"
        if parts[0] == "config":
            keep = relative in {"config/TeX-AMS_CHTML-full.js", "config/Safe.js"} or parts[1] == "local"
            return f"mathjax/{relative}" if keep else None
        if parts[0] in {"jax", "fonts"}:
            if _NOT_TEX_FONTS & set(parts) or {"png", "eot", "svg"} & set(parts[:-1]):
                return None
            return f"mathjax/{relative}"
    return None


def vendor_files(node_modules: Path) -> Iterator[tuple[Path, str]]:
    """(file in the cache, its path under vendor/) for every file the slides need."""
    for package in ASSETS:
        root = node_modules / package
        for path in sorted(root.rglob("*")):
            target = _wanted(package, path.relative_to(root).as_posix()) if path.is_file() else None
            if target:
                yield path, target


def install_vendor(slides_dir: Path, node_modules: Path | None = None) -> Path:
    """Copy the slides' JavaScript into slides_dir/vendor (skipped when it is there already)."""
    vendor = slides_dir / "vendor"
    stamp = vendor / ".normlab-assets"
    if stamp.is_file() and stamp.read_text() == assets_key():
        return vendor
    node_modules = node_modules or fetch_assets()
    shutil.rmtree(vendor, ignore_errors=True)
    for source, target in vendor_files(node_modules):
        (vendor / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, vendor / target)
    stamp.write_text(assets_key())
    return vendor


# --- one lecture's slides -----------------------------------------------------------------


def lecture_title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The first '# ' heading of the first markdown cells, e.g. 'Lecture 3 — Batch norm, backward'."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def for_slides(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without the cells, inputs and outputs its tags remove, and with each
    cell's consecutive printed outputs in one block (as a notebook shows them)."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor, TagRemovePreprocessor

    remover = TagRemovePreprocessor(remove_cell_tags=REMOVE_CELL_TAGS, remove_input_tags=REMOVE_INPUT_TAGS,
                                    remove_all_outputs_tags=REMOVE_OUTPUT_TAGS)
    notebook, _ = remover.preprocess(notebook, {})
    notebook, _ = CoalesceStreamsPreprocessor().preprocess(notebook, {})
    return notebook


def make_exporter():
    """nbconvert's SlidesExporter with this module's template and settings."""
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(
        reveal_url_prefix=REVEAL_PREFIX, reveal_theme="white", reveal_transition="slide",
        reveal_number="c/t", reveal_width=str(SLIDE_WIDTH), reveal_height=str(SLIDE_HEIGHT),
        jquery_url=JQUERY_URL, require_js_url=REQUIRE_JS_URL, mathjax_url=MATHJAX_URL,
        exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
        extra_template_basedirs=[],  # never a template from the current directory
    )
    exporter.raw_template = TEMPLATE
    return exporter


class _Fetches(HTMLParser):
    """Collects what a page would load: script, style sheet, image, frame and media URLs."""

    ATTRIBUTES = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("embed", "src"),
                  ("source", "src"), ("audio", "src"), ("video", "src"), ("video", "poster"), ("object", "data")}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self._in_code = 0  # inline <script>/<style> text

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if (tag, name) in self.ATTRIBUTES and value:
                if not (tag == "link" and dict(attrs).get("rel", "") in {"canonical", "alternate"}):
                    self.urls.append(value)
        if tag in {"script", "style"}:
            self._in_code += 1

    def handle_endtag(self, tag):
        if tag in {"script", "style"} and self._in_code:
            self._in_code -= 1

    def handle_data(self, data):
        if self._in_code:
            self.urls += re.findall(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)""", data)
            self.urls += re.findall(r"""url\(\s*['"]?((?:https?:)?//[^'")\s]+)""", data)
            self.urls += re.findall(r"""import\s*(?:[\w{}\s,*]+from\s*)?['"]((?:https?:)?//[^'"]+)['"]""", data)


def remote_fetches(page: str) -> list[str]:
    """The URLs in an HTML page that would be fetched from the network when it is opened."""
    parser = _Fetches()
    parser.feed(page)
    return sorted({url for url in parser.urls if re.match(r"^([a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE)
                   and not url.lower().startswith("file:")})


def export_slides(notebook_path: Path, slides_path: Path) -> str:
    """Write the slides of a saved notebook; returns the lecture's title.

    Raises ValueError when the page would fetch anything from the network."""
    notebook = for_slides(nbformat.read(notebook_path, as_version=4))
    title = lecture_title(notebook, notebook_path.stem)
    notebook.metadata["title"] = title
    page, _ = make_exporter().from_notebook_node(
        notebook, resources={"metadata": {"path": str(notebook_path.parent), "name": notebook_path.stem},
                             "normlab_css": CSS})
    remote = remote_fetches(page)
    if remote:
        raise ValueError(f"{notebook_path.name}: the slides would fetch from the network: {', '.join(remote)} "
                         "(put images and files next to the lecture instead)")
    slides_path.parent.mkdir(parents=True, exist_ok=True)
    slides_path.write_text(page, encoding="utf-8")
    return title


def build_lecture_slides(source: Path, options: BuildOptions, rerun: bool = False) -> build.Result:
    """One task: the executed notebook of `source` (OUT/course/, from the execution cache
    or run now; see build.executed_notebook), then its slides in OUT/slides/, made again
    only when that notebook or the slides' tools changed.

    In `normlab build` the course step has just made the notebook, so this finds it in
    the cache (or its failure recorded) and runs nothing; `rerun` runs it again."""
    target = options.out / "course" / f"{source.stem}.ipynb"
    page = options.out / "slides" / f"{source.stem}.slides.html"
    if options.execute:
        reused, error = build.executed_notebook(source, target, options, force=rerun, retry_failed=rerun)
    else:
        reused, error = False, None
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(build.read_source(source), target)
    if error:
        page.unlink(missing_ok=True)
        what = "did not run to the end" if reused else f"failed: {error}"
        return build.Result(f"course/{source.stem} {what}, so it has no slides")
    made_from = build.digest(target.read_bytes(), build.tooling_digest("build", "slides"))
    if rerun or options.force or not build.is_current(options.out, page, made_from):
        export_slides(target, page)
        build.write_stamp(options.out, page, made_from=made_from)
        return build.Result(reused=False)
    return build.Result(reused=True)


# --- the index page -------------------------------------------------------------------------

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>normlab — lecture slides</title>
<style>
body {{ font-family: "Source Sans Pro", "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 46em;
       margin: 3em auto; padding: 0 1em; color: #222; line-height: 1.5; }}
h1 {{ font-weight: 600; }}
ol {{ padding-left: 0; list-style: none; }}
li {{ margin: 0.6em 0; font-size: 1.2em; }}
.number {{ display: inline-block; width: 2.2em; color: #888; }}
a {{ color: #2a76dd; text-decoration: none; }}
a:hover {{ text-decoration: underline; }}
.keys {{ color: #555; border-top: 1px solid #ddd; padding-top: 1em; margin-top: 2em; }}
kbd {{ border: 1px solid #bbb; border-radius: 3px; padding: 0 0.3em; background: #f7f7f7; }}
</style>
</head>
<body>
<h1>Normalization in deep learning — slides</h1>
<ol>
{items}
</ol>
<p class="keys">In a slide show: <kbd>→</kbd>/<kbd>Space</kbd> next, <kbd>↓</kbd> the slides below,
<kbd>S</kbd> speaker notes (a second window), <kbd>F</kbd> full screen, <kbd>Esc</kbd> overview.
Everything here works offline: copy the whole folder, open this page from disk.</p>
</body>
</html>
"""

_TITLE = re.compile(r"<title>(.*?)(?: slides)?</title>", re.DOTALL)
_LECTURE_PREFIX = re.compile(r"^Lecture\s+\d+\s*[—–:-]\s*")


def write_index(slides_dir: Path) -> Path:
    """build/slides/index.html: a link to every lecture's slides in the folder, with its title."""
    slides_dir.mkdir(parents=True, exist_ok=True)
    index = slides_dir / "index.html"
    index.write_text(render_index(slides_dir), encoding="utf-8")
    return index


def render_index(slides_dir: Path) -> str:
    """The text of write_index's page."""
    items = []
    for page in sorted(slides_dir.glob("*.slides.html")):
        stem = page.name.removesuffix(".slides.html")
        match = _TITLE.search(page.read_text(encoding="utf-8")[:20000])
        title = html.unescape(match.group(1).strip()) if match else stem
        title = _LECTURE_PREFIX.sub("", title)  # the number is shown in its own column
        number = build.lecture_number(Path(stem))
        items.append(f'<li><span class="number">{f"{number:02d}" if number is not None else ""}</span>'
                     f'<a href="{html.escape(page.name)}">{html.escape(title)}</a></li>')
    return INDEX.format(items="\n".join(items))


# --- the build step and the command ---------------------------------------------------------


def slides_are_current(source: Path, options: BuildOptions, rerun: bool = False) -> bool:
    """The quick check (build.Task.current): the lecture's notebook is current and its deck
    was made from it by today's tools."""
    target = options.out / "course" / f"{source.stem}.ipynb"
    page = options.out / "slides" / f"{source.stem}.slides.html"
    return (not rerun and build.notebook_is_current(source, target, options)
            and build.is_current(options.out, page, build.digest(target.read_bytes(),
                                                                 build.tooling_digest("build", "slides"))))


def _vendor_is_current(slides_dir: Path) -> bool:
    stamp = slides_dir / "vendor" / ".normlab-assets"
    return stamp.is_file() and stamp.read_text() == assets_key()


def _index_is_current(slides_dir: Path) -> bool:
    index = slides_dir / "index.html"
    return index.is_file() and index.read_text(encoding="utf-8") == render_index(slides_dir)


def _vendor_task(slides_dir: Path) -> build.Result:
    stamp = slides_dir / "vendor" / ".normlab-assets"
    current = stamp.is_file() and stamp.read_text() == assets_key()
    try:
        install_vendor(slides_dir)
    except UserError as error:
        return build.Result(str(error))
    return build.Result(reused=current)


def _index_task(slides_dir: Path) -> build.Result:
    index = slides_dir / "index.html"
    before = index.read_bytes() if index.is_file() else None
    write_index(slides_dir)
    return build.Result(reused=index.read_bytes() == before)


def slides_step(options: BuildOptions, rerun: bool = False) -> list[Task]:
    """The build step: vendor/ (the JavaScript), one task per lecture (after the lecture's
    course task, when the build has one), then index.html. `rerun`: execute them again."""
    slides_dir = options.out / "slides"
    lectures = build.sources(options.root / "course", options.numbers)
    names = [f"slides/{source.stem}" for source in lectures]
    return [Task("slides/vendor", partial(_vendor_task, slides_dir), current=partial(_vendor_is_current, slides_dir)),
            *(Task(name, partial(build_lecture_slides, source, options, rerun), after=(f"course/{source.stem}",),
                   cost=2.0, current=partial(slides_are_current, source, options, rerun))
              for name, source in zip(names, lectures)),
            Task("slides/index", partial(_index_task, slides_dir), after=tuple(names),
                 current=partial(_index_is_current, slides_dir))]


def main(args: argparse.Namespace) -> int:
    if args.assets_only:
        print(f"slides' JavaScript: {fetch_assets()}")
        return 0
    root = Path(args.root).resolve() if args.root else build.find_root()
    options = BuildOptions(root=root, out=Path(args.out).resolve() if args.out else root / "build",
                           numbers=args.numbers, execute=args.execute, timeout=args.timeout)
    build.check_options(options)
    fetch_assets()  # a UserError here (no npm, offline) is one clear line, before any work
    rows = build.run_build(options, steps=[partial(slides_step, rerun=args.rerun)])
    failed = [row for row in rows if row.error]
    for row in failed:
        if "\n" in row.error.strip():
            print(f"\n=== {row.name} failed ===\n{row.error.rstrip()}", file=sys.stderr)
    print(build.format_table(rows))
    index = options.out / "slides" / "index.html"
    if failed:
        print(f"normlab slides: {len(failed)} of {len(rows)} failed: {', '.join(row.name for row in failed)}",
              file=sys.stderr)
        return 1
    print(f"slides in {index.parent}; open {index} (works offline)")
    return 0
