"""The kernel template process of one grading worker: pre-imports, then forks kernels.

Run as ``python -m normlab_tools.grading.sandbox.kernel_template SETTINGS_JSON`` (inside bubblewrap unless the
grade runs with --no-sandbox). It imports what every submission's kernel would import
anyway -- ipykernel, IPython and the modules the assignment's source imports (numpy,
torch through normlab.data, matplotlib, scikit-learn...) -- once, then forks one kernel
per submission: a fork costs milliseconds where a fresh ``python -m ipykernel`` with
those imports costs seconds of CPU.

Protocol: one JSON object per line on stdin (requests) and stdout (events).

    -> {"op": "start", "job": ID, "connection": {...}, "env": {...}, "files": {...},
        "limits": {...}, "uid": UID|null, "gid": GID|null, "sandbox": bool,
        "scratch": PATH, "sockets": PATH}
    -> {"op": "signal", "job": ID, "signal": N}     (forwarded to the kernel)
    -> {"op": "kill", "job": ID}                     (the job's whole process tree)
    <- {"event": "ready", "preloaded": [...], "failed": {...}}
    <- {"event": "started", "job": ID, "pid": PID}   (PID in this process's pid namespace)
    <- {"event": "exit", "job": ID, "status": N,
        "reason": "memory"|"processes"|"cores"|"output"|null,
        "error": "..."}                              (N: exit code, 128 + signal if killed)

Each job is three processes:

    C  (child of the template)  drops to the job's uid, then unshare()s a new user, mount,
                              pid, IPC and UTS namespace (sandbox mode); waits for I.
    I  (pid 1 of the new pid namespace)  mounts private tmpfs on the scratch and socket
                              folders (size-limited), forks K, reaps orphans, forwards
                              SIGINT/SIGTERM to K, exits with K's status. When I dies the
                              kernel kills every process of the namespace (fork bombs,
                              daemons: nothing outlives the job).
    K  (the kernel)           sets rlimits (CPU, data size, processes, file size, open
                              files, no core), drops every capability, runs IPKernelApp;
                              counts its outputs and exits with OUTPUT_LIMIT_STATUS at
                              the output limit (`limit_outputs`).

The template also watches the job: the number of its processes, their private memory
together (a fork bomb multiplies per-process rlimits) and the CPU cores they keep busy;
over a limit it kills the job and reports why. Only one job runs at a time per template.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import importlib
import json
import os
import select
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 1, 4, 24, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
WATCH_INTERVAL = 0.2  # seconds between two looks at a job's memory and process count
OUTPUT_LIMIT_STATUS = 86  # the kernel's exit status when its outputs pass limits["output"]
OUTPUT_MESSAGES = {"display_data", "update_display_data", "execute_result", "error"}  # besides streams

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source, target: str, fstype, flags: int, data=None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


# --- inside the job -----------------------------------------------------------------------


def _job_child(request: dict, error_fd: int) -> None:
    """C: leave the template's identity and namespaces, fork I, wait for it."""
    os.setsid()
    uid, gid = request.get("uid"), request.get("gid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # needed to write our own uid_map
    if request["sandbox"]:
        real_uid, real_gid = os.getuid(), os.getgid()
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS),
               "unshare")
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{real_uid} {real_uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{real_gid} {real_gid} 1")
    pid = os.fork()
    if pid == 0:
        _run(_job_init, request, error_fd)
    os.close(error_fd)
    if request["sandbox"]:
        _drop_capabilities()
    # The grader reaches the kernel's sockets through /proc/<C>/root: without root, that
    # needs C to stay dumpable. The kernel cannot signal C from its pid namespace; C holds
    # no capabilities and no file descriptors of the template by now.
    _libc.prctl(PR_SET_DUMPABLE, 1 if request.get("reachable") else 0, 0, 0, 0)
    forward = lambda signum, frame: _signal_quietly(pid, signum)  # noqa: E731
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        os._exit(127)
    os._exit(_exit_code(status))


def _job_init(request: dict, error_fd: int) -> None:
    """I: private mounts, then fork the kernel and act as the namespace's init."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    scratch, sockets, limits = request["scratch"], request["sockets"], request["limits"]
    if request["sandbox"]:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        mode = "mode=0700"
        _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits['scratch']},{mode}")
        _mount("tmpfs", sockets, "tmpfs", MS_NOSUID | MS_NODEV, f"size=1m,{mode}")
        if os.path.isdir("/dev/shm"):
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits['scratch']},mode=0700")
        for hidden in request.get("hide", []):  # e.g. the template's own writable folder
            if os.path.isdir(hidden):
                _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0500")
    for folder in ("work", "tmp", ".ipython", ".config"):
        os.makedirs(os.path.join(scratch, folder), mode=0o700, exist_ok=True)
    work = os.path.join(scratch, "work")
    for relative, encoded in request.get("files", {}).items():
        target = os.path.normpath(os.path.join(work, relative))
        if not target.startswith(work + os.sep):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(base64.b64decode(encoded))
    kernel = os.fork()
    if kernel == 0:
        _run(_job_kernel, request, error_fd)
    os.close(error_fd)
    forward = lambda signum, frame: _signal_quietly(kernel, signum)  # noqa: E731
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    if request["sandbox"]:
        _drop_capabilities()
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(127)
        if pid == kernel:
            os._exit(_exit_code(status))


def _job_kernel(request: dict, error_fd: int) -> None:
    """K: limits, no capabilities, then the IPython kernel."""
    import resource

    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    limits = request["limits"]
    data = limits.get("data")
    if data is not None:  # on top of what the preloaded modules already hold
        data += _status_bytes("VmData")
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_CPU", limits.get("cpu")),
                        ("RLIMIT_DATA", data), ("RLIMIT_FSIZE", limits.get("fsize")),
                        ("RLIMIT_NOFILE", limits.get("nofile")), ("RLIMIT_NPROC", limits.get("nproc"))):
        if value is not None and hasattr(resource, name):
            kind = getattr(resource, name)
            hard = resource.getrlimit(kind)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            # CPU: SIGXCPU at the soft limit, SIGKILL a few seconds later
            resource.setrlimit(kind, (value, value + 5 if name == "RLIMIT_CPU" else value))
    if request["sandbox"]:
        _drop_capabilities()
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the template ignores it
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(os.path.join(request["scratch"], "work"))
    connection_file = os.path.join(request["sockets"], "kernel.json")
    with open(connection_file, "w") as f:
        json.dump(request["connection"], f)
    from ipykernel.kernelapp import IPKernelApp

    sys.path.insert(0, "")  # like any kernel: modules next to the notebook import
    app = IPKernelApp.instance()
    app.initialize(["-f", connection_file, "--HistoryManager.hist_file=:memory:",
                    "--IPKernelApp.log_level=CRITICAL"])
    if limits.get("output") is not None:
        limit_outputs(app.session, limits["output"])
    os.close(error_fd)
    app.start()
    os._exit(0)


def output_size(msg_type: str, content: dict) -> int:
    """What one output counts against the output limit: a stream's characters, else the
    JSON of its data (display, result) or traceback (error). The grader counts the same."""
    if msg_type == "stream":
        return len(content.get("text") or "")
    return len(json.dumps(content.get("data") or content.get("traceback") or ""))


def limit_outputs(session, limit: int) -> None:
    """Count the kernel's outputs where they are made -- each write to stdout or stderr
    (Python's or, through ipykernel's pipe, the C library's), each other output as it is
    sent -- and exit with OUTPUT_LIMIT_STATUS at the write that passes `limit` bytes.

    ipykernel sends stream text in flushes whose size depends on how fast the grader
    reads; counted there, a flood of prints could fill the kernel's memory (or pass the
    grader's message size limit) first, and be graded differently from run to run."""
    import threading

    lock, used = threading.Lock(), [0]

    def spend(size: int) -> None:
        with lock:
            used[0] += size
            over = used[0] > limit
        if over:
            os._exit(OUTPUT_LIMIT_STATUS)

    for stream in (sys.stdout, sys.stderr):
        def write(text, _write=stream.write):
            spend(len(text) if isinstance(text, str) else 0)
            return _write(text)
        stream.write = write

    def send(socket, msg_or_type, content=None, *args, _send=session.send, **kwargs):
        if isinstance(msg_or_type, dict):
            msg_type, body = msg_or_type.get("header", {}).get("msg_type"), msg_or_type.get("content")
        else:
            msg_type, body = msg_or_type, content
        if msg_type in OUTPUT_MESSAGES:
            spend(output_size(msg_type, body or {}))
        return _send(socket, msg_or_type, content, *args, **kwargs)
    session.send = send


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _run(function, request: dict, error_fd: int) -> None:
    """Run one stage of the job in a forked process; never return into the template's loop."""
    try:
        function(request, error_fd)
    except BaseException as error:  # report why the job could not start, then leave
        try:
            os.write(error_fd, f"{type(error).__name__}: {error}"[:2000].encode())
        except OSError:
            pass
    os._exit(126)


def _signal_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


# --- the template ------------------------------------------------------------------------------


CPU_WINDOW = 3.0  # seconds over which a job's CPU use is averaged
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Job:
    def __init__(self, job_id: str, pid: int, error_fd: int, limits: dict):
        self.id, self.pid, self.error_fd, self.limits = job_id, pid, error_fd, limits
        self.reason = None
        self.next_watch = time.monotonic() + WATCH_INTERVAL
        self.cpu_samples: list[tuple[float, float]] = []  # (wall, CPU seconds of live processes)


def _job_processes(template: int) -> list[int]:
    """Every process of this pid namespace but its init, the template and our parent chain:
    with one job at a time, they are the job's."""
    mine = {template, 1, os.getppid()}
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in mine:
            pids.append(int(name))
    return pids


def _private_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            total = 0
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
            return total
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime, all threads
    except (OSError, ValueError, IndexError):
        return 0.0


def _watch(job: Job, sandboxed: bool) -> None:
    """Kill the job when its processes are too many, use too much memory together, or
    keep more than `cores` CPU cores busy (a fork bomb or a thread storm would slow the
    other workers' kernels down, and could change another student's grade)."""
    if not sandboxed:  # outside a pid namespace we cannot tell the job's processes apart
        return
    pids = _job_processes(os.getpid())
    now = time.monotonic()
    job.cpu_samples.append((now, sum(_cpu_seconds(pid) for pid in pids)))
    job.cpu_samples = [s for s in job.cpu_samples if now - s[0] <= CPU_WINDOW]
    (start, used_start), (_, used_now) = job.cpu_samples[0], job.cpu_samples[-1]
    if len(pids) > job.limits.get("processes", 1 << 30):
        job.reason = "processes"
    elif sum(_private_bytes(pid) for pid in pids) > job.limits.get("memory", 1 << 62):
        job.reason = "memory"
    elif now - start >= CPU_WINDOW * 0.9 and used_now - used_start > job.limits.get("cores", 1e9) * (now - start):
        job.reason = "cores"
    else:
        return
    _kill_job(job)


def _preload(modules: list[str]) -> tuple[list[str], dict]:
    loaded, failed = [], {}
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except BaseException as error:  # a module the kernel will import itself, if it can
            failed[name] = f"{type(error).__name__}: {error}"
    return loaded, failed


# What IPKernelApp.initialize imports in every kernel (measured: ~150 modules, a quarter of
# a second of CPU per kernel when left to the fork, most of it ipykernel's debugger, which
# loads debugpy).
KERNEL_MODULES = ["ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
                  "IPython", "IPython.core.completerlib", "IPython.core.debugger", "IPython.core.oinspect",
                  "IPython.extensions.storemagic", "sqlite3", "tornado.platform.asyncio"]


def _warm_caches() -> None:
    """Fill, once, the per-process caches every kernel would fill again: inspect's map of
    module files (IPython's first traceback in a kernel walks all ~2600 loaded modules and
    resolves their paths, a tenth of a second) and the processor name debugpy asks
    ``uname -p`` for."""
    import inspect
    import platform

    inspect.getmodule(None, "<normlab-warm-up>")
    platform.uname().processor  # noqa: B018 (cached on the result)


def main(argv: list[str]) -> int:
    if sys.path and sys.path[0] == os.getcwd():  # `python -m` put our cwd there; kernels add ''
        del sys.path[0]
    settings = json.loads(argv[0]) if argv else {}
    sandboxed = bool(settings.get("sandbox"))
    loaded, failed = _preload([*KERNEL_MODULES, *settings.get("preload", [])])
    _warm_caches()
    # Kernels are forked from this process: nothing of a job may reach it (ptrace, /proc/mem).
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _emit({"event": "ready", "preloaded": loaded, "failed": failed,
           "threads": len(os.listdir("/proc/self/task"))})
    jobs: dict[int, Job] = {}
    by_id: dict[str, Job] = {}
    stdin = sys.stdin.buffer
    buffer = b""
    # A job's end wakes the loop at once (its exit event is what the grader waits for
    # after killing a kernel), not at the next look at the jobs.
    child_exited, wake = os.pipe()
    os.set_blocking(child_exited, False)
    os.set_blocking(wake, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake)
    while True:
        timeout = WATCH_INTERVAL if jobs else None
        ready, _, _ = select.select([stdin, child_exited], [], [], timeout)
        if child_exited in ready:
            while True:
                try:
                    if not os.read(child_exited, 512):
                        break
                except BlockingIOError:
                    break
        if stdin in ready:
            chunk = os.read(stdin.fileno(), 1 << 16)
            if not chunk:  # the worker is gone: so are we (bwrap kills the rest)
                for job in jobs.values():
                    _kill_job(job)
                os._exit(0)  # no interpreter teardown of torch & co.
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    _handle(json.loads(line), jobs, by_id, sandboxed)
        _reap(jobs, by_id)
        now = time.monotonic()
        for job in list(jobs.values()):
            if job.reason is None and now >= job.next_watch:
                job.next_watch = now + WATCH_INTERVAL
                _watch(job, sandboxed)


def _handle(request: dict, jobs: dict, by_id: dict, sandboxed: bool) -> None:
    op, job_id = request.get("op"), request.get("job")
    if op == "start":
        request["sandbox"] = sandboxed
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)  # the template's; its descriptor is closed below
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(read_fd)
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.closerange(3, write_fd)
                os.closerange(write_fd + 1, 65536)
            except BaseException:
                os._exit(125)
            _run(_job_child, request, write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        job = Job(job_id, pid, read_fd, request.get("limits", {}))
        jobs[pid] = by_id[job_id] = job
        _emit({"event": "started", "job": job_id, "pid": pid})
    elif op in ("signal", "kill") and job_id in by_id:
        job = by_id[job_id]
        if op == "kill":
            job.reason = job.reason or "killed"
            _kill_job(job)
        else:  # C forwards it to I, I to the kernel
            _signal_quietly(job.pid, int(request["signal"]))


def _kill_job(job: Job) -> None:
    """SIGKILL the job's process group (C, I, the kernel and what did not leave the group);
    in a sandbox, I's death also takes everything in its pid namespace with it."""
    try:
        os.killpg(job.pid, signal.SIGKILL)
    except OSError:
        _signal_quietly(job.pid, signal.SIGKILL)


def _reap(jobs: dict, by_id: dict) -> None:
    while jobs:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        job = jobs.pop(pid, None)
        if job is None:
            continue
        by_id.pop(job.id, None)
        try:
            error = os.read(job.error_fd, 4000).decode(errors="replace")
        except OSError:
            error = ""
        os.close(job.error_fd)
        reason = job.reason if job.reason != "killed" else None
        if reason is None and _exit_code(status) == OUTPUT_LIMIT_STATUS:
            reason = "output"
        _emit({"event": "exit", "job": job.id, "status": _exit_code(status), "reason": reason,
               "error": error})


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    sys.exit(main(sys.argv[1:]))
