"""The one way `normlab grade` and `normlab experiments` reach a Dask cluster (--scheduler)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import warnings

from normlab_tools.errors import UserError

CONNECT_SECONDS = 5  # how long --scheduler waits for its scheduler to answer
WORKERS_SECONDS = 30  # how long it then waits for the first worker
MAX_LOCAL_WORKERS = 32


def scheduler_address(text: str) -> str:
    """argparse type of --scheduler: a scheduler's address (tcp://host:port) or local:N."""
    count = re.fullmatch(r"local:(\d+)", text)
    if text.startswith("local:") and not (count and 1 <= int(count[1]) <= MAX_LOCAL_WORKERS):
        raise argparse.ArgumentTypeError(f"local:N starts N Dask workers on this machine, N between 1 and "
                                         f"{MAX_LOCAL_WORKERS}; got {text!r}")
    if not text.startswith("local:") and not re.fullmatch(r"([a-z]+://)?\S+:\d+", text):
        raise argparse.ArgumentTypeError(f"expected a scheduler address like tcp://host:8786 or local:N, got {text!r}")
    return text


@contextlib.contextmanager
def dask_client(address: str):
    """A `distributed.Client` with at least one worker, closed on exit: of the scheduler at
    `address`, or for local:N of N worker processes started here (one thread each). A
    scheduler that does not answer within CONNECT_SECONDS, or has no worker within
    WORKERS_SECONDS, is a UserError saying what to start."""
    from distributed import Client, LocalCluster

    try:
        scheduler_address(address)
    except argparse.ArgumentTypeError as error:  # a caller other than the command line
        raise UserError(f"--scheduler: {error}") from None
    with contextlib.ExitStack() as stack:
        if address.startswith("local:"):
            with warnings.catch_warnings():  # its HTTP server moving off a busy port 8787: not our business
                warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
                cluster = stack.enter_context(LocalCluster(
                    n_workers=int(address.removeprefix("local:")), threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR))
            yield stack.enter_context(Client(cluster))
            return
        try:
            client = stack.enter_context(Client(address, timeout=CONNECT_SECONDS))
        except (OSError, TimeoutError, ValueError, TypeError) as error:
            raise UserError(f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS} s ({error}). "
                            f"Start one with `dask scheduler` and its workers with `dask worker {address}`, check "
                            "the address and port it printed, or use --scheduler local:N") from None
        try:
            client.wait_for_workers(1, timeout=WORKERS_SECONDS)
        except TimeoutError:
            raise UserError(f"the Dask scheduler at {address} has no workers after {WORKERS_SECONDS} s; "
                            f"start some with `dask worker {address}`") from None
        yield client
