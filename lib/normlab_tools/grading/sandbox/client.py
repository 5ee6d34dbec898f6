"""The kernel manager and client nbgrader drives in a grading worker.

`SandboxKernelManager` is the interpreter's kernel manager
(`normlab_tools.kernels.InterpreterKernelManager`) whose provisioner asks the worker's
kernel template (`normlab_tools.grading.sandbox.bubblewrap.KernelTemplate`) to fork a
kernel instead of spawning ``python -m ipykernel``; nbgrader and nbclient drive it like
any other kernel (interrupt on timeout, kill, shutdown). In a sandbox the ZeroMQ ipc
sockets live in the kernel's private tmpfs and are reached through ``/proc/<pid>/root``.
`SandboxKernelClient` refuses messages over `MAX_MESSAGE` bytes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import signal
import time
import uuid
from pathlib import Path

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import channel_socket_types
from jupyter_client.provisioning import LocalProvisioner
from traitlets import default

from normlab_tools.grading.sandbox.bubblewrap import SANDBOX_SOCKETS, KernelTemplate
from normlab_tools.kernels import InterpreterKernelManager

MiB = 1 << 20
MAX_MESSAGE = 64 * MiB  # largest single message the grader accepts from a kernel
POLL = 0.005  # seconds between two looks at a starting or ending kernel (jupyter_client: 0.1)
SOCKET_WAIT = 60  # seconds a kernel may take to open its sockets

# --- the kernel manager nbgrader uses ---------------------------------------------------------

_TEMPLATE: KernelTemplate | None = None  # the worker's template; set by `use_template`
_FILES: dict = {}  # files for the next kernel's working folder (relative path -> base64)


def use_template(template: KernelTemplate | None) -> None:
    global _TEMPLATE
    _TEMPLATE = template


def set_kernel_files(files: dict) -> None:
    """The files the next kernel finds in its working folder (the submission's data files)."""
    global _FILES
    _FILES = dict(files)


class JobProcess:
    """What LocalProvisioner expects of a Popen, for a kernel living in the template."""

    stdin = stdout = stderr = None

    def __init__(self, template: KernelTemplate, job: str, pid: int):
        self.template, self.job, self.pid = template, job, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            event = self.template.exit_event(self.job)
            if event is not None:
                self.returncode = int(event["status"])
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("kernel", timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            self.template.signal(self.job, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class TemplateProvisioner(LocalProvisioner):
    """Launches the kernel by asking the worker's template for one."""

    async def launch_kernel(self, cmd: list[str], **kwargs) -> dict:
        km = self.parent
        template = _TEMPLATE
        if template is None:
            raise RuntimeError("no kernel template: call normlab_tools.grading.sandbox.client.use_template first")
        info = km.get_connection_info()
        connection = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in info.items()}
        job, pid = template.start_kernel(connection, _FILES)
        self.process = JobProcess(template, job, pid)
        self.pid, self.pgid = pid, None
        self.cwd = kwargs.get("cwd")
        if template.settings.sandbox:  # the sockets are in the kernel's private tmpfs
            info = dict(info, ip=f"/proc/{pid}/root{SANDBOX_SOCKETS}/kernel")
        self.connection_info = info
        await self._sockets_open(info)
        return info

    async def _sockets_open(self, info: dict) -> None:
        """Wait until the kernel has bound its ipc sockets (or died). A client connecting
        earlier retries only every 100 ms (ZeroMQ's reconnect interval), and an IOPub
        subscription that arrives after the kernel's first status message costs
        jupyter_client's wait_for_ready another 0.2 s round."""
        paths = [f"{info['ip']}-{info[key]}" for key in ("shell_port", "iopub_port", "stdin_port",
                                                          "control_port", "hb_port")]
        deadline = time.monotonic() + SOCKET_WAIT
        while not all(os.path.exists(path) for path in paths):
            if self.process.poll() is not None or time.monotonic() > deadline:
                return  # nbclient's wait_for_ready reports the dead or silent kernel
            await asyncio.sleep(POLL)

    async def wait(self) -> int | None:
        while await self.poll() is None:
            await asyncio.sleep(POLL)
        return await super().wait()

    async def cleanup(self, restart: bool = False) -> None:
        if isinstance(self.process, JobProcess):
            self.process.template.forget(self.process.job)
        await super().cleanup(restart)


class SandboxKernelManager(InterpreterKernelManager):
    """The interpreter's kernel manager, with kernels forked from the worker's template (see
    the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"
        self.transport_encryption = "disabled"  # ipc inside the kernel's private tmpfs

    async def _async_pre_start_kernel(self, **kw):
        template = _TEMPLATE
        self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
        if template is not None and template.settings.sandbox:
            self.ip = f"{SANDBOX_SOCKETS}/kernel"
        else:
            base = Path(template.work_dir if template else "/tmp") / "sockets"
            base.mkdir(parents=True, exist_ok=True)
            self.ip = str(base / f"{self.kernel_id[:8]}")
        if self.provisioner is None:
            self.provisioner = TemplateProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec,
                                                 parent=self)
        return await super()._async_pre_start_kernel(**kw)

    @default("client_class")
    def _default_client_class(self):
        return "normlab_tools.grading.sandbox.client.SandboxKernelClient"

    async def _async_wait(self, pollinterval: float = POLL) -> None:
        """Wait for the kernel's end, looking every `POLL` seconds (not every 0.1 s)."""
        while await self._async_is_alive():
            await asyncio.sleep(min(pollinterval, POLL))


class SandboxKernelClient(AsyncKernelClient):
    """A kernel client that refuses messages over `MAX_MESSAGE` bytes: a kernel printing a
    gigabyte in one go cannot make the grader hold it (ZeroMQ drops the connection and
    reconnects; the executor's output limit handles the rest)."""

    def _create_connected_socket(self, channel, identity=None):
        sock = self.context.socket(channel_socket_types[channel])
        sock.linger = 1000
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        if identity:
            sock.identity = identity
        sock.connect(self._make_url(channel))
        return sock
