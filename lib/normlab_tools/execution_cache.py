"""The build's execution cache: a notebook runs again only when what its outputs depend on changed.

jupyter-cache is the store (OUT/.jupyter_cache): it keys an executed notebook by a hash
of its code cells and the notebook metadata it is told to hash. Before the lookup,
`with_inputs` writes into the notebook's metadata (under INPUTS_KEY) content hashes of
everything else the outputs depend on, so a change to any of them is a new key:

- the library code it can import: the modules its code cells import from the project's
  packages (ROOT/lib, and wherever `normlab` is installed), followed through their own
  imports (absolute, relative, inside functions) and their packages' __init__ files;
  a cell that does not parse counts as importing the whole library;
- the data it reads: every string constant of its code that names an existing file
  (absolute, or relative to the folder it runs in, its source's folder or the project;
  a name with a '.' or a '/'), or a folder when the string has a '/' (its first DATA_FILE_LIMIT files); never
  /proc, /sys or /dev; the scikit-learn data sets ship inside scikit-learn, so its version covers them;
- the folder it runs in (its outputs may print or read relative paths);
- the dependency versions: the name and version of every distribution the project needs
  (pyproject's dependencies, followed through their own requirements), and Python's.

Markdown and cell metadata are not part of the key: the executed notebook is the
current source with the cached outputs merged in, so editing prose never re-runs code.
Contents, never modification times: a `touch` re-runs nothing, a revert hits the cache.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import threading
from pathlib import Path

import nbformat

INPUTS_KEY = "normlab_execution_inputs"  # notebook metadata, hashed with the code cells
FILES_KEY = "normlab_input_files"        # notebook metadata, not hashed: input files by absolute path
CACHE_FOLDER = ".jupyter_cache"          # under the build's output folder
DATA_FILE_LIMIT = 2000                   # files hashed per folder a notebook names
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))  # their files are the system's state, not data


@functools.cache
def cache_class():
    """ExecutionCache: jupyter-cache keyed on the code cells, the kernelspec and INPUTS_KEY
    (no cell metadata). Made on first use: a build with nothing to do never imports it."""
    import fcntl

    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.cache.main import JupyterCacheBase

    class ExecutionCache(JupyterCacheBase):
        def create_hashed_notebook(self, nb, nb_metadata=("kernelspec", INPUTS_KEY), cell_metadata=()):
            return super().create_hashed_notebook(nb, nb_metadata=nb_metadata, cell_metadata=cell_metadata)

        def executed(self, notebook: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
            """`notebook` with the outputs of its cached execution merged in, or None (a miss).
            Its markdown and cell metadata are the current ones; INPUTS_KEY is dropped."""
            with self._locked(fcntl.LOCK_SH):
                return self._merged(notebook)

        def store(self, notebook: nbformat.NotebookNode, uri: str) -> nbformat.NotebookNode:
            """Keep a notebook that ran to the end (with INPUTS_KEY in its metadata); returns
            it as `executed` will from now on.

            One writer at a time, and no reader while one writes (a file lock, threads and build
            processes alike): after each write jupyter-cache truncates the cache by reading its
            table twice, so a record another writer added in between was deleted before its file
            existed; and two notebooks with the same code overwrite one record, which another
            process read as missing between the delete and the insert."""
            with self._locked(fcntl.LOCK_EX):
                self.cache_notebook_bundle(CacheBundleIn(notebook, uri), check_validity=False, overwrite=True)
                return self._merged(notebook)

        def _merged(self, notebook):
            try:
                _, merged = self.merge_match_into_notebook(notebook, cell_meta=())
            except KeyError:
                return None
            merged.metadata.pop(INPUTS_KEY, None)
            merged.metadata.pop(FILES_KEY, None)
            return merged

        @contextlib.contextmanager
        def _locked(self, kind):
            with open(Path(self.path) / "store.lock", "a") as lock:  # flock: one per open file, so per thread too
                fcntl.flock(lock, kind)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    return ExecutionCache


def open_cache(out: Path):
    """The cache (an ExecutionCache) of the build into `out` (created on first use)."""
    cache = cache_class()(str(Path(out) / CACHE_FOLDER))
    cache.db  # noqa: B018 - creates the database now, not in two processes at once later
    return cache


# --- what a notebook's outputs depend on ------------------------------------------------------


def with_inputs(notebook: nbformat.NotebookNode, source: Path, run_dir: Path, root: Path) -> nbformat.NotebookNode:
    """`notebook` with its inputs' hashes in its metadata (see the module docstring)."""
    codes = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    trees = [_parse(code) for code in codes]
    packages = library_packages(root)
    if any(tree is None for tree in trees):  # cannot tell what it imports: all of it
        files = sorted({path for folder in packages.values() for path in folder.rglob("*.py")})
    else:
        imported = {name for tree in trees for name in _imports(tree, package=None)}
        files = library_files(imported, packages)
    bases = [Path(run_dir), Path(source).parent, Path(root)]
    homes = [home for home in packages.values() if home.is_dir()]
    data = sorted(path for path in {path for tree in trees if tree is not None for path in data_files(tree, bases)}
                  if path not in files and not any(path.is_relative_to(home) for home in homes))
    run_dir = Path(run_dir).resolve()
    digests = {path: file_digest(path) for path in files}
    for path in data:
        try:
            digests[path] = file_digest(path)
        except OSError:  # named but unreadable (a /proc or /sys entry, no permission): not data it reads
            continue
    data = [path for path in data if path in digests]
    notebook.metadata[INPUTS_KEY] = {
        "runs_in": run_dir.relative_to(Path(root).resolve()).as_posix() if run_dir.is_relative_to(
            Path(root).resolve()) else str(run_dir),
        "library": {_shown(path, packages): digests[path] for path in files},
        "data": {str(path): digests[path] for path in data},
        "dependencies": dependencies_digest(),
    }
    # not hashed (absolute paths): what `unchanged` re-checks without reading the notebook again
    notebook.metadata[FILES_KEY] = {str(path): digest for path, digest in digests.items()}
    return notebook


def input_record(notebook: nbformat.NotebookNode, source: Path) -> dict:
    """What `unchanged` needs to tell, later, that `notebook`'s inputs are the same: the
    source's digest, the files it depends on with theirs, the versions' digest."""
    return {"source": file_digest(source), "files": dict(notebook.metadata.get(FILES_KEY, {})),
            "dependencies": dependencies_digest()}


def unchanged(record: dict, source: Path) -> bool:
    """Whether the source and every file in `record` (input_record's) hold the same bytes
    and the versions are the same: then the notebook's key is the same too, as it is
    made from nothing else (the imports it follows are in those files)."""
    if not record or "files" not in record or record.get("dependencies") != dependencies_digest():
        return False
    if not Path(source).is_file() or record.get("source") != file_digest(source):
        return False
    return all(os.path.isfile(path) and file_digest(Path(path)) == digest for path, digest in record["files"].items())


def library_packages(root: Path) -> dict[str, Path]:
    """Top-level package or module name -> its folder or file: what is in ROOT/lib, and
    the installed `normlab` (a project without lib/ still imports it)."""
    homes = [Path(root) / "lib"]
    spec = importlib.util.find_spec("normlab")
    if spec and spec.submodule_search_locations:
        homes.append(Path(next(iter(spec.submodule_search_locations))).parent)
    found: dict[str, Path] = {}
    for home in homes:
        if not home.is_dir():
            continue
        for entry in sorted(home.iterdir()):
            if entry.is_dir() and (entry / "__init__.py").is_file():
                found.setdefault(entry.name, entry.resolve())
            elif entry.suffix == ".py":
                found.setdefault(entry.stem, entry.resolve())
    return found


def library_files(modules: set[str], packages: dict[str, Path]) -> list[Path]:
    """The library files `modules` load: each module, its packages' __init__ files, and
    everything they import from the library, followed to the end."""
    seen: set[Path] = set()
    pending = sorted(modules)
    while pending:
        name = pending.pop()
        for path, module in _module_files(name, packages):
            if path in seen:
                continue
            seen.add(path)
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            pending += _module_imports(path.read_text(encoding="utf-8"), package)
    return sorted(seen)


def _module_files(name: str, packages: dict[str, Path]) -> list[tuple[Path, str]]:
    """(file, module name) for `name` and its parent packages, if `name` is in the library."""
    parts = name.split(".")
    home = packages.get(parts[0])
    if home is None:
        return []
    if home.is_file():
        return [(home, parts[0])]
    files = []
    folder = home
    for depth in range(1, len(parts) + 1):
        module = ".".join(parts[:depth])
        if (folder / "__init__.py").is_file():
            files.append((folder / "__init__.py", module))
        if depth == len(parts):
            break
        nested = folder / parts[depth]
        if (nested.with_suffix(".py")).is_file():
            files.append((nested.with_suffix(".py"), ".".join(parts[:depth + 1])))
            break
        if not nested.is_dir():
            break
        folder = nested
    return files


@functools.lru_cache(maxsize=512)
def _module_imports(code: str, package: str) -> list[str]:
    """The imports of a library module's code (parsed once per process and content)."""
    tree = _parse(code)
    return [] if tree is None else _imports(tree, package)


def _imports(tree: ast.AST, package: str | None) -> list[str]:
    """Module names an AST imports; `from a import b` gives a and a.b (b may be a module)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return [name for name in names if name]


def data_files(tree: ast.AST, bases: list[Path]) -> set[Path]:
    """Existing files named by the string constants of `tree` (see the module docstring)."""
    found: set[Path] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value
        # a file name has a '.' or a '/' (a name without either, like 'relu', is not looked up)
        if ("." not in text and "/" not in text) or len(text) > 1024 or "\n" in text or "\0" in text \
                or not text.strip().strip("/."):  # "/", "./", "..": a separator or the folder itself
            continue
        for base in [Path("/")] if os.path.isabs(text) else bases:
            candidate = os.path.join(base, text)
            try:
                resolved = Path(candidate).resolve()
                if _is_system(resolved):
                    continue
                if os.path.isfile(candidate):
                    found.add(resolved)
                elif "/" in text and os.path.isdir(candidate) and resolved not in {b.resolve() for b in bases}:
                    found.update(_first_files(resolved, DATA_FILE_LIMIT))
            except OSError:  # a name too long or unreadable: not a file it reads
                continue
    return found


_PARSING = threading.Lock()  # CPython 3.11's ast.parse keeps its recursion depth per interpreter, not per
# thread: two threads parsing at once at different stack depths raise "SystemError: AST constructor recursion
# depth mismatch" (python/cpython#106905; the suite's lecture fixture builds in two threads)


def _is_system(path: Path) -> bool:
    return any(path.is_relative_to(system) for system in SYSTEM_FOLDERS)


def _first_files(folder: Path, limit: int) -> list[Path]:
    """The first `limit` files under `folder` in sorted walk order: a folder like /usr is not listed whole."""
    files = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories.sort()
        for name in sorted(names):
            path = Path(directory, name).resolve()
            if path.is_file() and not _is_system(path):  # a link out of the folder may point anywhere
                files.append(path)
                if len(files) == limit:
                    return files
    return files


def _parse(code: str) -> ast.AST | None:
    """The AST of a cell or module; IPython magics become plain calls first. None: no parse."""
    with _PARSING:
        try:
            return ast.parse(code)
        except SyntaxError:
            pass
        try:
            from IPython.core.inputtransformer2 import TransformerManager

            return ast.parse(TransformerManager().transform_cell(code))
        except SyntaxError:
            return None


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def dependencies_digest() -> str:
    """A hash of Python's version and the name and version of every distribution the
    project depends on, directly or through others (its `Requires-Dist`, followed; all
    installed distributions when the project is not installed)."""
    return hashlib.sha256("\n".join([sys.version, *dependency_versions()]).encode()).hexdigest()


def dependency_versions(project: str = "normlab") -> list[str]:
    """'name==version' of each distribution `project` needs at run time, followed through
    their own requirements (extras left out)."""
    installed: dict = {}
    for dist in importlib.metadata.distributions():  # the first on sys.path is the one imported
        installed.setdefault(_normalized(dist.metadata["Name"] or ""), dist)
    if _normalized(project) not in installed:
        return sorted(f"{name}=={dist.version}" for name, dist in installed.items() if name)
    found, pending = {}, [_normalized(project)]
    while pending:
        name = pending.pop()
        dist = installed.get(name)
        if dist is None or name in found:
            continue
        found[name] = dist.version
        for requirement in dist.requires or []:
            if "extra ==" in requirement.replace('extra=="', 'extra == "'):
                continue
            pending.append(_normalized(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]))
    found.pop(_normalized(project))  # its code is hashed file by file
    return sorted(f"{name}=={version}" for name, version in found.items())


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _shown(path: Path, packages: dict[str, Path]) -> str:
    """A library file as 'normlab/functional.py' (not an absolute path: the key moves with the clone)."""
    for home in packages.values():
        base = home.parent
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)
