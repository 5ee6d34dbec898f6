"""nbgrader's Execute preprocessor, hardened for hostile notebooks.

`SandboxedExecute` replaces `nbgrader.preprocessors.Execute` in the autograde pipeline
(everything else -- sanitizing, restoring test cells, scoring, the gradebook -- is
nbgrader's). It runs on a `SandboxKernelManager` kernel and adds:

- **a kernel that dies** (``os._exit``, a segfault, a killed kernel, a CPU or memory
  limit) no longer fails the whole submission: the cell that killed it gets an error
  output, every later test cell gets "not run" (0 points), earlier tests keep theirs;
- **a kernel that ignores the interrupt** after a timeout is killed the same way;
- **output limit**: a kernel sending more than `Limits.output` bytes of outputs is
  killed; what it sent beyond the limit is dropped;
- **test-helper integrity**: before each test cell a silent probe checks, inside the
  kernel, that the helpers the tests call (``normlab.grading_helpers``) are the
  original functions and that IPython still runs cells and reports errors as usual
  (no input or AST transformers, custom exception handlers, trace functions, patched
  run_cell). A helper name the notebook rebound is put back (the test then runs
  honestly); anything deeper scores the test 0. Student code runs in the same process
  as the tests, so this is a tripwire for the common tricks, not a proof.

What happened is recorded as typed events (`normlab_tools.grading.events`, one list per
worker process, reset per submission) for the grade's one-line reason.
"""

from __future__ import annotations

import json
import re
import secrets
import signal

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Integer

from normlab_tools.grading.events import Kind, record

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


def _helper_digests() -> dict:
    """The fingerprint of each function in normlab.grading_helpers, as the grader sees it."""
    from normlab import grading_helpers

    namespace: dict = {}
    exec(FINGERPRINT, namespace)  # noqa: S102 (our own code)
    return {name: namespace["__normlab_fingerprint"](getattr(grading_helpers, name).__code__)
            for name in grading_helpers.__all__}


PROBE = FINGERPRINT + r'''
def __normlab_probe(user_ns, nonce, expected):
    import sys
    problems, restored = [], []
    helpers = sys.modules.get("normlab.grading_helpers")
    if helpers is not None:
        for name, digest in expected.items():
            function = helpers.__dict__.get(name)
            code = getattr(function, "__code__", None)
            if code is None or __normlab_fingerprint(code) != digest \
                    or function.__globals__ is not helpers.__dict__:
                problems.append("normlab.grading_helpers." + name + " was replaced")
            elif name in user_ns and user_ns[name] is not function:
                user_ns[name] = function
                restored.append(name)
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
    raise AssertionError("normlab-probe " + nonce + " " + __import__("json").dumps(
        {"problems": problems, "restored": restored}))
try:
    __normlab_probe(globals(), NONCE, EXPECTED)
finally:
    del __normlab_probe, __normlab_fingerprint
'''


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
    probe_tests = Bool(True, help="check the test helpers before each test cell").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._dead: str | None = None  # why the kernel is gone
        self._output_bytes = 0
        self._output_over: int | None = None  # index of the cell that went over the limit
        self._digests = _helper_digests() if self.probe_tests else {}
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
        if grade and self.probe_tests:
            integrity = self._run_probe(name)
            if self._dead is not None:  # the probe found the kernel dead or stuck
                return self.preprocess_cell(cell, resources, index)
        died = stuck = False
        try:
            cell = self.execute_cell(cell, index, store_history=True)
        except DeadKernelError:
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
        code = PROBE.replace("NONCE", repr(nonce)).replace("EXPECTED", repr(self._digests))
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

    def _death_reason(self, name: str) -> str:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        event = None
        if process is not None:
            try:
                process.wait(timeout=5)
            except Exception:  # noqa: BLE001 (still running: report what we know)
                pass
            event = process.template.exit_event(process.job) if hasattr(process, "template") else None
        return describe_exit(event, name)

    # --- outputs -----------------------------------------------------------------------------

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(json.dumps(content.get("data") or content.get("text") or content.get("traceback") or ""))
        self._output_bytes += size
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
