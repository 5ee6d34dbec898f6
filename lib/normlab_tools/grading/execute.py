"""nbgrader's Execute preprocessor, hardened for hostile notebooks.

`SandboxedExecute` replaces `nbgrader.preprocessors.Execute` in the autograde pipeline
(everything else -- sanitizing, restoring test cells, scoring, the gradebook -- is
nbgrader's). It runs on a `SandboxKernelManager` kernel and adds:

- **a kernel that dies** (``os._exit``, a segfault, a killed kernel, a CPU or memory
  limit) no longer fails the whole submission: the cell that killed it gets an error
  output, every later test cell gets "not run" (0 points), earlier tests keep theirs;
- **a kernel that ignores the interrupt** after a timeout is killed the same way;
- **output limit**: a kernel making more than `Limits.output` bytes of outputs stops
  there (it counts them itself, `kernel_template.limit_outputs`, so a flood stops at the
  same byte however fast the grader reads); the executor counts what arrives the same
  way and kills a kernel that passes the limit anyway;
- **test-helper integrity**: before each test cell a silent probe checks, inside the
  kernel, that the helpers the tests call -- every name the locked cells import from the
  teaching library and a test cell uses (`helper_bindings`), and every public function
  of those modules (`helper_digests`: ``normlab.grading_helpers``,
  ``normlab.references``...) -- are the original functions, and that IPython still runs
  cells and reports errors as usual (no input or AST transformers, custom exception
  handlers, trace functions, patched run_cell). A helper name the notebook rebound is put back (the test then runs
  honestly); anything deeper scores the test 0. Student code runs in the same process
  as the tests, so this is a tripwire for the common tricks, not a proof.

What happened is recorded as typed events (`normlab_tools.grading.events`, one list per
worker process, reset per submission) for the grade's one-line reason.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import signal

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer, default

from normlab_tools.grading.events import Kind, record
from normlab_tools.grading.sandbox.kernel_template import output_size

INTEGRITY_ERROR = "GradingIntegrityError"
NOT_RUN_ERROR = "NotRunError"


# The fingerprint of a function's code, computed the same way by the grader and (inside
# the probe) by the kernel: bytecode, constants (recursively), names. Not marshal: its
# output depends on reference counts.
FINGERPRINT = r'''
def __normlab_fingerprint(code):
    import hashlib
    digest = hashlib.sha256()
    def feed(code):
        digest.update(code.co_code)
        digest.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
        for const in code.co_consts:
            if hasattr(const, "co_code"):
                feed(const)
            else:
                digest.update(repr(const).encode())
    feed(code)
    return digest.hexdigest()
'''


def _fingerprint(code) -> str:
    namespace: dict = {}
    exec(FINGERPRINT, namespace)  # noqa: S102 (our own code)
    return namespace["__normlab_fingerprint"](code)


def _code_lines(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def helper_bindings(cells) -> dict[str, tuple[str, str | None]]:
    """The names the test cells use that the trusted cells import from the teaching
    library: {name: (module, attribute or None for a module)}, e.g. ``assert_close``:
    ``("normlab.grading_helpers", "assert_close")``, ``models``: ``("normlab", "models")``.

    Trusted cells are the locked ones (setup and test cells: nbgrader restores them from
    the source before they run); test cells are those with ``grade``. Read from the
    cells, so a helper a new test calls, from any normlab module, is covered.
    """
    from nbgrader import utils

    imports: dict[str, tuple[str, str | None]] = {}
    used: set[str] = set()
    for cell in cells:
        if cell.cell_type != "code" or not (utils.is_locked(cell) or utils.is_grade(cell)):
            continue
        try:
            tree = ast.parse(_code_lines(cell.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "normlab":
                for alias in node.names:
                    imports[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "normlab":
                        if alias.asname:
                            imports[alias.asname] = (alias.name, None)
                        else:
                            imports["normlab"] = ("normlab", None)
        if utils.is_grade(cell):
            used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return {name: imports[name] for name in sorted(used) if name in imports}


def helper_digests(bindings: dict) -> dict[str, dict[str, list[str]]]:
    """{module: {function: [defining module, fingerprint]}} for every module the bindings
    name or import from: its public functions (and the functions bound by name), as the
    grader sees them."""
    import importlib
    import sys
    import types

    modules: dict[str, dict[str, list[str]]] = {}

    def add(module_name: str) -> types.ModuleType:
        module = importlib.import_module(module_name)
        entries = modules.setdefault(module_name, {})
        for name, value in vars(module).items():
            if name.startswith("_") and name not in names_of.get(module_name, ()):
                continue
            home = getattr(value, "__globals__", {}).get("__name__", "")  # where its code runs
            if isinstance(value, types.FunctionType) and str(value.__module__).split(".")[0] == "normlab" \
                    and home in sys.modules:
                entries[name] = [home, _fingerprint(value.__code__)]
        return module

    names_of: dict[str, set[str]] = {}
    for module_name, attribute in bindings.values():
        if attribute is not None:
            names_of.setdefault(module_name, set()).add(attribute)
    for module_name, attribute in sorted(bindings.values(), key=lambda b: (b[0], b[1] or "")):
        module = add(module_name)
        if attribute and not hasattr(module, attribute):  # `from normlab import models`: a submodule
            importlib.import_module(f"{module_name}.{attribute}")
        target = getattr(module, attribute) if attribute else module
        if isinstance(target, types.ModuleType) and target.__name__.split(".")[0] == "normlab":
            add(target.__name__)
    return modules


PROBE = FINGERPRINT + r'''
def __normlab_probe(user_ns, nonce, modules, bindings):
    import sys
    problems, restored = [], []
    for module_name, functions in modules.items():
        module = sys.modules.get(module_name)
        if module is None:  # not imported yet: the test cell's import loads the original
            continue
        for name, (home, digest) in functions.items():
            function = module.__dict__.get(name)
            code = getattr(function, "__code__", None)
            owner = sys.modules.get(home)
            if code is None or __normlab_fingerprint(code) != digest or owner is None \
                    or function.__globals__ is not owner.__dict__:
                problems.append(module_name + "." + name + " was replaced")
    if not problems:
        for name, (module_name, attribute) in bindings.items():
            module = sys.modules.get(module_name)
            if module is None or name not in user_ns:
                continue
            original = module if attribute is None else module.__dict__.get(attribute)
            if original is not None and user_ns[name] is not original:
                user_ns[name] = original
                restored.append(name)
    helpers = sys.modules.get("normlab.grading_helpers")
    if helpers is not None:
        if helpers.__dict__.get("np") is not sys.modules.get("numpy"):
            problems.append("numpy inside the test helpers was replaced")
        if not problems:
            try:
                helpers.assert_close([1.0, 2.0], [1.0, 3.0], "probe")
                problems.append("assert_close accepts wrong values (numpy was patched?)")
            except AssertionError:
                pass
            except Exception as error:
                problems.append("assert_close fails: " + type(error).__name__)
    shell = get_ipython()
    if shell.custom_exceptions:
        problems.append("a custom exception handler is installed")
    if shell.input_transformers_post or shell.ast_transformers:
        problems.append("input or AST transformers are installed")
    if len(shell.input_transformers_cleanup) != 4:
        problems.append("IPython's input cleanup was changed")
    def replaced(owner, name, modules):
        bound = getattr(owner, name, None)
        function = getattr(bound, "__func__", bound)
        return getattr(bound, "__self__", owner) is not owner or \
            not str(getattr(function, "__module__", "")).startswith(modules)
    for method in ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "showtraceback",
                   "_showtraceback", "transform_cell", "transform_ast", "should_run_async"):
        if replaced(shell, method, ("IPython.", "ipykernel.")):
            problems.append("IPython's " + method + " was replaced")
    for method in ("do_execute", "execute_request"):
        if replaced(shell.kernel, method, ("ipykernel.",)):
            problems.append("the kernel's " + method + " was replaced")
    if sys.gettrace() is not None or sys.getprofile() is not None:
        problems.append("a trace or profile function is installed")
    class ProbeAnswer(AssertionError):
        def _render_traceback_(self):  # IPython's traceback formatting is most of a probe's cost
            return [str(self)]
    raise ProbeAnswer("normlab-probe " + nonce + " " + __import__("json").dumps(
        {"problems": problems, "restored": restored}))
try:
    __normlab_probe(globals(), NONCE, MODULES, BINDINGS)
finally:
    del __normlab_probe, __normlab_fingerprint
'''


def probe_code(nonce: str, digests: dict, bindings: dict) -> str:
    """The probe's code for one test cell; it answers by raising an AssertionError whose
    message is ``normlab-probe NONCE {"problems": [...], "restored": [...]}``."""
    return (PROBE.replace("NONCE", repr(nonce)).replace("MODULES", repr(digests))
            .replace("BINDINGS", repr({name: list(binding) for name, binding in bindings.items()})))


class ConfiguredExecute(Execute):
    """nbgrader's Execute with the kernel manager its config names (``kernel_manager_class``,
    nbclient's trait): nbgrader 0.9's __init__ passes AsyncKernelManager as an argument,
    which wins over any config (a workaround for nbconvert < 7.3.1, which nbclient 0.11
    no longer needs: its default is the same class)."""

    def __init__(self, *args, **kwargs):
        super(Execute, self).__init__(*args, **kwargs)


class SandboxedExecute(ConfiguredExecute):
    """See the module docstring."""

    output_limit = Integer(8 << 20, help="bytes of outputs a notebook may produce").tag(config=True)

    @default("shutdown_kernel")
    def _kill_when_done(self) -> str:
        """Every output is in when the last cell has run, and the kernel's files are
        discarded: kill it rather than ask it to shut down and look every 0.1 s whether
        it has (nbclient's "graceful")."""
        return "immediate"

    def preprocess(self, nb, resources=None, km=None):
        self._dead: str | None = None  # why the kernel is gone
        self._output_bytes = 0
        self._output_over: int | None = None  # index of the cell that went over the limit
        self._bindings = helper_bindings(nb.cells)
        self._digests = helper_digests(self._bindings)
        return super().preprocess(nb, resources, km)

    # --- cells ------------------------------------------------------------------------

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        name = _cell_name(cell, index)
        grade = utils.is_grade(cell)
        if self._dead is not None:
            cell.outputs = []
            if grade:
                cell.outputs.append(_error(NOT_RUN_ERROR, f"not run: {self._dead}"))
            return cell, resources
        integrity = None
        if grade:
            integrity = self._run_probe(name)
            if self._dead is not None:  # the probe found the kernel dead or stuck
                return self.preprocess_cell(cell, resources, index)
        died = stuck = False
        try:
            cell = self.execute_cell(cell, index, store_history=True)
        except DeadKernelError:
            if (self._exit_event() or {}).get("reason") == "output":  # it stopped itself
                self._output_over = index
            else:
                died = True
        except CellTimeoutError:  # no answer even after the interrupt
            stuck = True
        if self._output_over is not None:
            self._kill()
            self._dead = f"{name} printed more than {self.output_limit >> 20} MB of output"
            cell.outputs.append(_error("OutputLimitError", self._dead))
            record(Kind.OUTPUT, name, self._dead)
        elif died:
            self._dead = self._death_reason(name)
            cell.outputs.append(_error("DeadKernelError", f"the kernel died {self._dead}"))
            record(Kind.DEAD, name, self._dead)
        elif stuck:
            self._kill()
            self._dead = f"{name} ran past the {self.timeout} s limit and ignored the interrupt"
            cell.outputs.append(_error("CellTimeoutError", self._dead))
            record(Kind.STUCK, name, "ignored the interrupt")
        else:
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if any(o.ename == "CellTimeoutError" for o in errors):
                record(Kind.TIMEOUT, name, f"{self.timeout} s")
            elif errors and not grade:
                value = _first_line(errors[0].evalue)
                record(Kind.ERROR, name, f"{errors[0].ename}: {value}" if value else errors[0].ename)
        if integrity:
            cell.outputs.append(_error(INTEGRITY_ERROR, integrity))
        return cell, resources

    # --- the probe ---------------------------------------------------------------------------

    def _run_probe(self, name: str) -> str | None:
        """Check the test helpers in the kernel; return why this test cannot be trusted."""
        nonce = secrets.token_hex(8)
        code = probe_code(nonce, self._digests, self._bindings)
        try:
            reply = self._silent(code)
        except DeadKernelError:
            self._dead = self._death_reason(name)
            record(Kind.DEAD, name, self._dead)
            return None
        if reply is None:  # the kernel did not answer: a background thread holding it?
            self._kill()
            self._dead = f"the kernel stopped answering before {name}"
            record(Kind.STUCK, name, "no answer to the grader")
            return None
        content = reply["content"]
        prefix = f"normlab-probe {nonce} "
        if content.get("status") != "error" or not str(content.get("evalue", "")).startswith(prefix):
            verdict = {"problems": ["the kernel no longer reports errors as IPython does"], "restored": []}
        else:
            try:
                verdict = json.loads(content["evalue"][len(prefix):])
            except ValueError:
                verdict = {"problems": ["the probe's answer was altered"], "restored": []}
        if verdict["restored"]:
            record(Kind.RESTORED, name, ", ".join(verdict["restored"]), names=verdict["restored"])
        if verdict["problems"]:
            problem = "; ".join(verdict["problems"])
            record(Kind.TAMPER, name, problem)
            return f"this test was not trusted: {problem}"
        return None

    async def _async_silent(self, code: str):
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False,
                                 stop_on_error=False)
        return await self.async_wait_for_reply(msg_id)

    _silent = run_sync(_async_silent)

    # --- the kernel's end --------------------------------------------------------------------

    def _kill(self) -> None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None:
            process.kill()

    def _exit_event(self) -> dict | None:
        """The kernel template's account of how the dead kernel ended (None: not known)."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return None
        try:
            process.wait(timeout=5)
        except Exception:  # noqa: BLE001 (still running: report what we know)
            pass
        return process.template.exit_event(process.job) if hasattr(process, "template") else None

    def _death_reason(self, name: str) -> str:
        return describe_exit(self._exit_event(), name)

    # --- outputs -----------------------------------------------------------------------------

    def output(self, outs, msg, display_id, cell_index):
        self._output_bytes += output_size(msg.get("msg_type") or msg["header"]["msg_type"], msg.get("content", {}))
        if self._output_bytes > self.output_limit:
            if self._output_over is None:
                self._output_over = cell_index
                self._kill()
            return None
        return super().output(outs, msg, display_id, cell_index)


def describe_exit(event: dict | None, name: str) -> str:
    """One line on why a kernel's process ended."""
    where = f"in {name}"
    if event is None:
        return f"{where} (no exit status)"
    status, reason = int(event.get("status", 0)), event.get("reason")
    if reason == "memory":
        return f"{where}: over the memory limit (killed)"
    if reason == "processes":
        return f"{where}: over the process limit (killed)"
    if reason == "cores":
        return f"{where}: kept more than one CPU core busy (killed)"
    if reason == "output":
        return f"{where}: over the output limit"
    if reason == "template":
        return f"{where}: the grader's kernel template stopped"
    if status >= 128:
        signum = status - 128
        names = {signal.SIGSEGV: "segmentation fault", signal.SIGBUS: "bus error",
                 signal.SIGABRT: "aborted", signal.SIGKILL: "killed", signal.SIGXCPU: "over the CPU time limit",
                 signal.SIGXFSZ: "over the file size limit", signal.SIGTERM: "terminated",
                 signal.SIGFPE: "floating point exception", signal.SIGILL: "illegal instruction"}
        try:
            label = names.get(signum) or signal.Signals(signum).name
        except ValueError:
            label = f"signal {signum}"
        return f"{where}: {label}"
    return f"{where}: the kernel process exited with code {status}"


def _cell_name(cell, index: int) -> str:
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    return grade_id or f"cell {index + 1}"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(text: str) -> str:
    lines = _ANSI.sub("", text or "").strip().splitlines()
    return lines[0][:200] if lines else ""


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


class DropEmptyGraderMetadata(NbGraderPreprocessor):
    """Work around an nbgrader 0.9.6 bug: DeduplicateIds turns the metadata of a
    duplicated cell into ``nbgrader: {}``, on which OverwriteCells.add_missing_task_cells
    (add_missing_cells = True) fails with KeyError: 'grade_id', so a student who
    copy-pasted a test cell could not be graded at all. The extra copy becomes an
    ordinary cell, as DeduplicateIds intends."""

    def preprocess_cell(self, cell, resources, index):
        if cell.metadata.get("nbgrader") == {}:
            del cell.metadata["nbgrader"]
        return cell, resources
