"""The output limit, counted inside real sandboxed kernels forked by the kernel template.

A kernel counts its own outputs (`kernel_template.limit_outputs`) and exits with
`OUTPUT_LIMIT_STATUS` at the write that passes `Limits.output`, so a flood stops at the
same byte whether or not the grader keeps up. These tests never read the kernel's
outputs while it floods: a limit counted only by the grader would never trip here (the
kernel's sockets drop what the grader does not read), and the cell would finish.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from normlab_tools.grading.execute import describe_exit
from normlab_tools.grading.sandbox import bubblewrap, client
from normlab_tools.grading.sandbox.kernel_template import OUTPUT_LIMIT_STATUS, output_size

LIMIT = 1 << 20  # bytes of outputs each test kernel may make
FLOODS = {
    "print": "for _ in range(3000):\n    print('x' * 1_000_000)",
    "stderr": "import sys\nfor _ in range(3000):\n    sys.stderr.write('x' * 100_000)",
    "file descriptor": "import os\nfor _ in range(3000):\n    os.write(1, b'x' * 100_000)",  # C's stdout
    "display": "from IPython.display import display\nfor _ in range(3000):\n"
               "    display({'text/plain': 'x' * 100_000}, raw=True)",
    "result": "'x' * 2_000_000",
    "traceback": "raise ValueError('x' * 2_000_000)",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    settings = bubblewrap.TemplateSettings(sandbox=True, preload=[], limits=bubblewrap.Limits(output=LIMIT),
                                           uid=bubblewrap.kernel_uid(0))
    template = bubblewrap.KernelTemplate(settings, forbidden=[], work_dir=tmp_path_factory.mktemp("kernels"))
    template.start()
    client.use_template(template)
    yield template
    client.use_template(None)
    template.stop()


async def run_unread(code: str, timeout: float = 60) -> tuple[dict | None, dict | None]:
    """Run `code` in a new sandboxed kernel without reading its outputs; return (the
    execute reply, or None if the kernel ended first; the template's exit event, if it did)."""
    manager = client.SandboxKernelManager()
    await manager.start_kernel()
    kernel = manager.client()
    kernel.start_channels()
    try:
        await kernel.wait_for_ready(timeout=60)
        msg_id = kernel.execute(code)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = manager.provisioner.process
            if process.poll() is not None:
                return None, process.template.exit_event(process.job)
            try:
                reply = await kernel.get_shell_msg(timeout=0.2)
            except Exception:  # noqa: BLE001 (queue.Empty: no reply yet)
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply, None
        raise AssertionError(f"neither a reply nor an exit within {timeout} s")
    finally:
        kernel.stop_channels()
        await manager.shutdown_kernel(now=True)


@pytest.mark.parametrize("kind", FLOODS)
def test_a_flood_stops_the_kernel_at_the_limit_without_the_grader_reading(template, kind):
    reply, event = asyncio.run(run_unread(FLOODS[kind]))
    assert reply is None, f"the cell finished: {reply['content'].get('status')}"
    assert (event["status"], event["reason"]) == (OUTPUT_LIMIT_STATUS, "output")
    assert describe_exit(event, "cell 3") == "in cell 3: over the output limit"


def test_the_limit_is_exact_and_counted_as_the_grader_counts(template):
    """`LIMIT` characters of text (with print's newline) are allowed; one more is not."""
    text = "x" * (LIMIT - 1)
    assert output_size("stream", {"text": text + "\n"}) == LIMIT
    reply, event = asyncio.run(run_unread(f"print('x' * {LIMIT - 1})"))
    assert event is None and reply["content"]["status"] == "ok"
    reply, event = asyncio.run(run_unread(f"print('x' * {LIMIT - 1})\nprint(end='y')"))
    assert reply is None and event["reason"] == "output"

