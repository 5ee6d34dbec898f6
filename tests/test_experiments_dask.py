"""`normlab experiments --scheduler`: runs trained on a Dask cluster are the runs trained here.

A real cluster: a `dask scheduler` and two `dask worker` processes on 127.0.0.1, started
by the `dask_scheduler` fixture on free ports and stopped at the end. The same small grid
(the baseline and BN / GN / LN down to batch 2, where BN turns the last bits of a sum
into other accuracies) is trained by `normlab experiments` in a fresh process here, on
that cluster and on ``--scheduler local:2``; every number of every run record (timings
aside, see test_determinism) and the scoreboard must be the same.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from normlab.experiments import runner
from normlab.experiments.scoreboard import run_scoreboard
from normlab_tools import cli
from normlab_tools.dask_cluster import CONNECT_SECONDS
from test_determinism import without_timings

GRID = ["--conditions", "baseline", "norms_batch_size", "--seeds", "2", "--epochs", "2", "--train-limit", "96"]
RUNS = 2 * (2 + 4 * 3)  # seeds x (baseline: BN, vanilla + 4 quick batch cells x BN, GN, LN)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_grid(out, *where) -> dict:
    """`normlab experiments` on GRID in a fresh process (``where``: --workers or
    --scheduler); the run records by file name, and the scoreboard's CSV."""
    command = [sys.executable, "-m", "normlab_tools", "experiments", *GRID, *where, "--no-plots", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    records = {path.name: json.loads(path.read_text()) for path in sorted((out / "runs").glob("*.json"))}
    return {"records": records, "scoreboard": (out / "scoreboard.csv").read_text(), "stdout": done.stdout}


def assert_same_runs(there: dict, here: dict) -> None:
    assert len(here["records"]) == RUNS and there["records"].keys() == here["records"].keys()
    for name, record in here["records"].items():
        assert there["records"][name]["torch_threads"] == 1
        assert without_timings(there["records"][name]) == without_timings(record), (
            f"{record['config']['norm']} at batch {record['config']['batch_size']}, seed {record['config']['seed']}: "
            "the cluster gave other numbers than this machine")
    assert there["scoreboard"] == here["scoreboard"]


@pytest.fixture(scope="module")
def grid_trained_here(tmp_path_factory):
    return train_grid(tmp_path_factory.mktemp("here"), "--workers", "1")


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory):
    """The address of a `dask scheduler` with two `dask worker` processes (one thread
    each) on 127.0.0.1; each is its own process group, ended with it at the end."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask-logs")
    address = f"tcp://127.0.0.1:{free_port()}"
    commands = [[sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", address.rpartition(":")[2], "--no-dashboard"]]
    commands += [[sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                  "--nworkers", "1", "--nthreads", "1", "--no-dashboard"]] * 2
    processes = []
    try:
        for index, command in enumerate(commands):
            with open(logs / f"process{index}.log", "w") as log:
                processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.mark.slow
def test_a_grid_trained_on_a_dask_scheduler_with_two_workers_is_the_grid_trained_here(
        tmp_path, dask_scheduler, grid_trained_here):
    there = train_grid(tmp_path, "--scheduler", dask_scheduler)
    assert f"training on the Dask cluster {dask_scheduler}: 2 worker(s)" in there["stdout"]
    assert_same_runs(there, grid_trained_here)
    assert json.loads((tmp_path / "timing.json").read_text())["scheduler"] == dask_scheduler


@pytest.mark.slow
def test_a_grid_trained_on_a_local_dask_cluster_is_the_grid_trained_here(tmp_path, grid_trained_here):
    there = train_grid(tmp_path, "--scheduler", "local:2")
    assert "training on the Dask cluster local:2: 2 worker(s) with 2 thread(s)" in there["stdout"]
    assert_same_runs(there, grid_trained_here)


def test_an_unreachable_scheduler_is_a_clear_message_before_anything_runs(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    code = cli.main(["experiments", *GRID, "--scheduler", address, "--no-plots", "--out", str(tmp_path)])
    seconds = time.perf_counter() - start
    assert code == 2
    captured = capsys.readouterr()
    assert f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS} s" in captured.err
    assert "dask scheduler" in captured.err and "Traceback" not in captured.err
    assert "mode:" not in captured.out  # nothing started
    assert not (tmp_path / "runs").exists()
    assert seconds < CONNECT_SECONDS + 15


@pytest.mark.parametrize("flags", [["--scheduler", "local:0"], ["--scheduler", "nowhere"],
                                   ["--scheduler", "local:2", "--workers", "2"]])
def test_a_bad_scheduler_flag_is_refused_by_the_parser(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["experiments", *flags])
    assert exit_info.value.code == 2
    assert "--scheduler" in capsys.readouterr().err


def test_any_executor_trains_the_records_this_process_trains(tmp_path):
    """The teaching library takes any concurrent.futures executor: the records come back
    as data and are written by the caller."""
    tiny = {"epochs": 1, "train_limit": 64}
    here = run_scoreboard(["baseline"], seeds=1, out=tmp_path / "here", progress=False, workers=1, overrides=tiny,
                          plots=False)
    with ThreadPoolExecutor(1) as executor:
        there = run_scoreboard(["baseline"], seeds=1, out=tmp_path / "there", progress=False, overrides=tiny,
                               plots=False, executor=executor)
    assert there.runs_trained == 2
    for job in here.jobs:
        assert (without_timings(runner.load_record(tmp_path / "there" / "runs", job.key))
                == without_timings(runner.load_record(tmp_path / "here" / "runs", job.key)))


def test_a_run_failing_on_the_executor_raises_here_and_leaves_no_half_file(tmp_path):
    settings = runner.with_overrides(runner.QUICK, 1, {"epochs": 1, "train_limit": 64})
    jobs = runner.plan(runner.select_conditions(["baseline"]), settings)
    broken = replace(jobs[0], config={**jobs[0].config, "model": "bogus"})
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="unknown model 'bogus'"):
        runner.run_jobs([broken, *jobs], tmp_path, progress=False, executor=executor)
    assert not list(tmp_path.glob(".tmp-*"))
