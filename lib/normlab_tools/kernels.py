"""The one way a notebook's kernel is started: IPython on this interpreter.

`normlab build`, `normlab check`, the answer keys and grading all run notebooks on an
IPython kernel of the interpreter running the command (``sys.executable``), never on
whatever 'python3' kernelspec is installed first (a user's ~/.local one wins over the
environment's; grading on a Python without torch scores everyone 0).

nbclient's ``kernel_manager_class`` trait selects the manager: build and the answer keys
pass `InterpreterKernelManager` to `NotebookClient`, and the course's nbgrader_config.py
sets ``c.Execute.kernel_manager_class = KERNEL_MANAGER``, so `normlab check`, the
unsandboxed grader and the plain ``nbgrader autograde`` command use it too. The
sandbox's kernel manager (`normlab_tools.grading.sandbox.client`) is a subclass whose
kernels are forked from the worker's kernel template instead.
"""

from __future__ import annotations

import sys

import zmq
from ipykernel.kernelspec import get_kernel_dict
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

KERNEL_MANAGER = "normlab_tools.kernels.InterpreterKernelManager"  # for traitlets config files


class InterpreterKernelManager(AsyncKernelManager):
    """Starts an IPython kernel on this interpreter (sys.executable), whatever kernelspec
    the notebook names; its traffic is CurveZMQ-encrypted when pyzmq can (else ipykernel
    warns on every start that it runs over TCP without encryption)."""

    @default("transport_encryption")
    def _encrypt_when_possible(self) -> str:
        return "auto" if zmq.has("curve") else "disabled"

    @property
    def kernel_spec(self) -> KernelSpec:
        if self._kernel_spec is None:
            ipykernel_spec = get_kernel_dict()  # argv starts with sys.executable
            self._kernel_spec = KernelSpec(
                argv=ipykernel_spec["argv"],
                display_name=f"Python ({sys.executable})",
                language="python",
                metadata=ipykernel_spec["metadata"],  # says whether it supports encryption
            )
        return self._kernel_spec
