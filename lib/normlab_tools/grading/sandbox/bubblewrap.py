"""Sandboxed kernels for grading: bubblewrap around a kernel template ("template").

Each grading worker starts one template (`normlab_tools.grading.sandbox.kernel_template`) inside bubblewrap:

    bwrap --unshare-pid --unshare-net --unshare-ipc --unshare-uts --die-with-parent
          --ro-bind (system folders, the Python installation, the venv, normlab's code)
          --dev /dev --proc /proc --tmpfs /tmp (read-only) --remount-ro /
          -- python -m normlab_tools.grading.sandbox.kernel_template

so the template and every kernel it forks see no network, a read-only file system made
only of what Python needs -- not the course directory, the gradebook, the assignment
source, the submissions or any other student's files -- and a pid namespace of their
own. For each submission the template forks a kernel in fresh user, mount and pid
namespaces with a private, size-limited tmpfs as its home and working folder, its own
uid (one per worker when the grader runs as root, so the process limit is per kernel),
rlimits on CPU time, data size, processes, file size and open files, no capabilities,
and a watchdog over the job's processes, memory and CPU cores (details in
`normlab_tools.grading.sandbox.kernel_template`).

The grader talks to the kernel over ZeroMQ ipc sockets that live in the kernel's
private tmpfs; it reaches them through ``/proc/<pid>/root`` of the job, so no folder of
the grading machine is writable from a kernel (the kernel manager that does so:
`normlab_tools.grading.sandbox.client`). `KernelTemplate` is the worker's handle on its
template process: start it, ask it for kernels, watch them exit.

With ``--no-sandbox`` the template runs as a plain process: the kernels still fork from it
(same speed) and get the rlimits, but no namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


SANDBOX_SCRATCH = "/scratch"  # the kernel's home and working folder (a private tmpfs)
SANDBOX_SOCKETS = "/run/kernel"  # its ZeroMQ ipc sockets (a private tmpfs)
TEMPLATE_HOME = "/run/template"  # the template's own writable folder, hidden from kernels
SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"]
UID_BASE = 2_000_000  # see kernel_uid
GiB = 1 << 30
MiB = 1 << 20


@dataclass
class Limits:
    """Per-kernel limits. `memory`, `processes` and `cores` are watched over the job's
    whole process tree by the template (a fork bomb multiplies per-process rlimits); the
    others are rlimits of each process."""

    cpu_seconds: int = 600  # RLIMIT_CPU
    data: int = 2 * GiB  # RLIMIT_DATA per process, on top of the preloaded modules' data
    memory: int = 3 * GiB  # private memory of all the job's processes together (watched)
    processes: int = 16  # processes of the job (watched)
    threads: int = 128  # processes and threads of the job's uid (RLIMIT_NPROC, when root)
    cores: float = 1.5  # CPU time per second of wall time, over a few seconds (watched)
    file_size: int = 64 * MiB  # RLIMIT_FSIZE: largest file a kernel may write
    scratch: int = 256 * MiB  # size of the private tmpfs (home, cwd, TMPDIR, /dev/shm)
    open_files: int = 256
    output: int = 8 * MiB  # notebook outputs a kernel may send (counted in the kernel and by the executor)

    def as_request(self, rlimit_nproc: bool) -> dict:
        return {"cpu": self.cpu_seconds, "data": self.data, "fsize": self.file_size,
                "nofile": self.open_files, "nproc": self.threads if rlimit_nproc else None,
                "memory": self.memory, "processes": self.processes, "cores": self.cores,
                "scratch": self.scratch, "output": self.output}


def kernel_uid(slot: int) -> int | None:
    """The uid of a worker's kernels when grading as root (None otherwise): one of its own
    per worker, so that RLIMIT_NPROC counts only that worker's kernel. A process has 64
    slots: a local pool's workers take 0-31 of their grader's pid, a Dask worker 63 of its own."""
    return UID_BASE + 64 * os.getpid() + slot if os.geteuid() == 0 else None


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def check_sandbox() -> str:
    """Return the bwrap executable after checking it can build a sandbox; else raise
    SandboxUnavailable saying why, in one line."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"sandboxed grading needs Linux (this is {sys.platform})")
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: "
                                 "apt-get install bubblewrap)")
    probe = subprocess.run([bwrap, "--unshare-pid", "--unshare-net", "--die-with-parent",
                            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox here ({reason}); "
                                 "unprivileged user namespaces may be disabled")
    return bwrap


# --- the template, seen from the worker --------------------------------------------------------


@dataclass
class TemplateSettings:
    sandbox: bool
    preload: list[str]
    limits: Limits = field(default_factory=Limits)
    uid: int | None = None  # the kernels' uid (root only); None: the grader's own
    readable: list[str] = field(default_factory=list)  # extra folders kernels may read


def _python_paths() -> list[str]:
    """Folders a kernel needs: this interpreter's installation, the venv, its
    site-packages and the folders their .pth files add (editable installs such as
    normlab's own lib/), as real paths. Not sys.path at large: it holds the grader's
    working folder or script folder."""
    import site

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(Path(__file__).resolve().parents[2])}  # the folder holding the normlab package
    paths.update(sysconfig.get_paths().values())
    site_dirs = set(site.getsitepackages()) | {site.getusersitepackages()} if site.ENABLE_USER_SITE else set(
        site.getsitepackages())
    paths.update(site_dirs)
    for folder in site_dirs:
        for pth in Path(folder).glob("*.pth") if os.path.isdir(folder) else []:
            for line in pth.read_text(errors="replace").splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import ")) and os.path.isabs(line):
                    paths.add(line)
    found = set()
    for path in paths:
        for variant in (path, os.path.realpath(path)):
            if os.path.isdir(variant):
                found.add(os.path.normpath(variant))
            elif os.path.isfile(variant):  # a zip on sys.path
                found.add(os.path.dirname(os.path.normpath(variant)))
    return sorted(found)


def _outermost(paths) -> list[str]:
    """Drop paths inside other paths of the list."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def bwrap_command(bwrap: str, settings: TemplateSettings, forbidden: list[str]) -> list[str]:
    """The bubblewrap command line that runs the template.

    `forbidden` are folders kernels must never see (course directory, submissions, work
    folders); if one lies inside a folder that has to be bound, it is hidden under an
    empty read-only tmpfs.
    """
    command = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() == 0:
        # Privileged bwrap keeps root's capabilities unless told otherwise: the template
        # keeps only what it needs to give each kernel its own uid and to watch it.
        command += ["--cap-drop", "ALL"] + [arg for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_SYS_PTRACE")
                                            for arg in ("--cap-add", cap)]
    binds = _outermost([p for p in _python_paths() + settings.readable if not p.startswith("/proc")])
    system = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            system.append(path)
    binds = _outermost(system + binds)
    under_tmp = [p for p in binds if p == "/tmp" or p.startswith("/tmp/")]
    if "/tmp" in binds:
        raise SandboxUnavailable("the Python installation is /tmp itself; cannot build a sandbox")
    # An empty /tmp first: parent folders made below it (say /tmp/clone for a venv at
    # /tmp/clone/.venv) must not be hidden under it again.
    command += ["--perms", "0555", "--tmpfs", "/tmp"]
    # Parent folders bwrap has to create get mode 0755 (it makes them 0700 otherwise: the
    # kernels' uid could not reach a venv in /root/... or /tmp/clone/...).
    made = {"/", "/tmp"}
    for path in binds:
        parents = list(Path(path).parents)[::-1]
        for parent in parents:
            parent = str(parent)
            if parent not in made and not any(parent == b or parent.startswith(b + "/") for b in binds):
                command += ["--perms", "0755", "--dir", parent]
                made.add(parent)
    for path in binds:
        command += ["--ro-bind", path, path]
    for path in sorted(set(forbidden)):
        if any(path == b or path.startswith(b + "/") for b in binds) and os.path.isdir(path):
            command += ["--perms", "0555", "--tmpfs", path, "--remount-ro", path]
    command += ["--dev", "/dev", "--proc", "/proc",
                "--dir", SANDBOX_SCRATCH, "--dir", SANDBOX_SOCKETS,
                "--perms", "0700", "--tmpfs", TEMPLATE_HOME]
    if under_tmp:
        command += ["--remount-ro", "/tmp"]
    command += ["--remount-ro", "/", "--chdir", "/"]
    return command


def _template_environment(home: str) -> dict:
    """Environment of the template while it imports (the kernels get their own)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.update(_common_environment())
    env.update({"HOME": home, "MPLCONFIGDIR": os.path.join(home, "matplotlib"),
                "IPYTHONDIR": os.path.join(home, "ipython")})
    return env


def _common_environment() -> dict:
    return {
        # one thread per library: no thread pools exist when the template forks, and two
        # workers on two cores do not fight over them
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONDONTWRITEBYTECODE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }


def kernel_environment(scratch: str) -> dict:
    """Environment of a submission's kernel: nothing of the grader's but PATH and the
    grading flag."""
    env = _common_environment()
    scripts = os.path.dirname(sys.executable)
    env.update({
        "PATH": os.pathsep.join([scripts, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": scratch, "TMPDIR": os.path.join(scratch, "tmp"),
        "IPYTHONDIR": os.path.join(scratch, ".ipython"),
        "MPLCONFIGDIR": os.path.join(scratch, ".config", "matplotlib"),
        "XDG_CONFIG_HOME": os.path.join(scratch, ".config"),
        "XDG_CACHE_HOME": os.path.join(scratch, ".cache"),
    })
    if "NBGRADER_EXECUTION" in os.environ:
        env["NBGRADER_EXECUTION"] = os.environ["NBGRADER_EXECUTION"]
    return env


class TemplateError(RuntimeError):
    pass


class KernelTemplate:
    """A worker's handle on its template: start it, ask for kernels, watch them exit."""

    def __init__(self, settings: TemplateSettings, forbidden: list[str], work_dir: Path):
        self.settings = settings
        self.forbidden = forbidden
        self.work_dir = Path(work_dir)  # host folder for --no-sandbox kernels' scratch
        self.process: subprocess.Popen | None = None
        self._events: dict[str, dict] = {}
        self._exits: dict[str, dict] = {}
        self._started: dict[str, int] = {}
        self._cond = threading.Condition()
        self.ready: dict = {}

    # lifecycle

    def start(self, timeout: float = 300) -> dict:
        if self.settings.sandbox:
            command = bwrap_command(check_sandbox(), self.settings, self.forbidden)
            home = TEMPLATE_HOME
        else:
            command = []
            home = str(self.work_dir / "template-home")
            os.makedirs(home, exist_ok=True)
        payload = {"sandbox": self.settings.sandbox, "preload": self.settings.preload}
        command += [sys.executable, "-m", "normlab_tools.grading.sandbox.kernel_template", json.dumps(payload)]
        env = _template_environment(home)  # bwrap passes it on
        self._exits.clear()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, cwd="/",
                                        start_new_session=True)
        threading.Thread(target=self._read_events, args=(self.process,), daemon=True).start()
        threading.Thread(target=self._drain_stderr, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + timeout
        with self._cond:
            while "ready" not in self._events:
                if self.process.poll() is not None:
                    raise TemplateError(f"the kernel template did not start: {self._stderr_tail()}")
                if time.monotonic() > deadline:
                    raise TemplateError("the kernel template did not start within "
                                      f"{timeout:.0f} s: {self._stderr_tail()}")
                self._cond.wait(0.2)
            self.ready = self._events.pop("ready")
        return self.ready

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    _stderr_lines: list[str] = []

    def _drain_stderr(self, process) -> None:
        lines = []
        self._stderr_lines = lines
        for raw in process.stderr:
            lines.append(raw.decode(errors="replace").rstrip())
            del lines[:-20]

    def _stderr_tail(self) -> str:
        time.sleep(0.1)
        return " | ".join(self._stderr_lines[-3:]) or "no message"

    def _read_events(self, process) -> None:
        for raw in process.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                kind = event.get("event")
                if kind == "ready":
                    self._events["ready"] = event
                elif kind == "started":
                    self._started[event["job"]] = event["pid"]
                elif kind == "exit":
                    self._exits[event["job"]] = event
                self._cond.notify_all()
        with self._cond:  # the template is gone: so is every job it had
            for job in list(self._started):
                self._exits.setdefault(job, {"event": "exit", "job": job, "status": 137,
                                             "reason": "template", "error": ""})
            self._cond.notify_all()

    def _send(self, request: dict) -> None:
        if not self.alive():
            raise TemplateError("the kernel template is not running")
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()

    # jobs

    def start_kernel(self, connection: dict, files: dict) -> tuple[str, int]:
        """Fork a kernel; return (job id, host pid of its first process)."""
        if not self.alive():
            self.start()
        job = uuid.uuid4().hex[:12]
        limits = self.settings.limits
        if self.settings.sandbox:
            scratch, sockets = SANDBOX_SCRATCH, SANDBOX_SOCKETS
        else:
            base = self.work_dir / "kernels" / job
            scratch, sockets = str(base / "scratch"), str(base / "sockets")
            os.makedirs(scratch, mode=0o700)
            os.makedirs(sockets, mode=0o700)
        request = {"op": "start", "job": job, "connection": connection, "files": files,
                   "env": kernel_environment(scratch), "scratch": scratch, "sockets": sockets,
                   "limits": limits.as_request(rlimit_nproc=self.settings.uid is not None),
                   "uid": self.settings.uid, "gid": self.settings.uid,
                   "hide": [TEMPLATE_HOME], "reachable": os.geteuid() != 0}
        with self._cond:
            self._send(request)
            deadline = time.monotonic() + 60
            while job not in self._started:
                if not self.alive() or time.monotonic() > deadline:
                    raise TemplateError(f"the kernel template did not fork a kernel: {self._stderr_tail()}")
                self._cond.wait(0.2)
            pid = self._started[job]
        if self.settings.sandbox:
            pid = _host_pid(pid, self.process.pid)
        return job, pid

    def exit_event(self, job: str) -> dict | None:
        with self._cond:
            return self._exits.get(job)

    def signal(self, job: str, signum: int) -> None:
        with self._cond:
            if job in self._exits or not self.alive():
                return
            if signum == signal.SIGKILL:
                self._send({"op": "kill", "job": job})
            else:
                self._send({"op": "signal", "job": job, "signal": int(signum)})

    def forget(self, job: str) -> None:
        with self._cond:
            self._started.pop(job, None)
            self._exits.pop(job, None)
        if not self.settings.sandbox:
            shutil.rmtree(self.work_dir / "kernels" / job, ignore_errors=True)


def _host_pid(namespace_pid: int, ancestor: int, timeout: float = 10) -> int:
    """The pid, in our pid namespace, of the process that is `namespace_pid` in the
    sandbox's namespace and descends from `ancestor` (the bwrap process)."""
    deadline = time.monotonic() + timeout
    while True:
        table = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/status") as f:
                    status = f.read()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            nspids = fields.get("NSpid", "").split()
            table[int(name)] = (int(fields.get("PPid", "0")), [int(p) for p in nspids])
        for pid, (_, nspids) in table.items():
            if len(nspids) >= 2 and nspids[1] == namespace_pid:
                parent, hops = pid, 0
                while parent in table and hops < 8:
                    parent, hops = table[parent][0], hops + 1
                    if parent == ancestor:
                        return pid
        if time.monotonic() > deadline:
            raise TemplateError(f"cannot find the kernel process {namespace_pid} of the sandbox")
        time.sleep(0.02)
