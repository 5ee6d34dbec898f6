"""A run is a function of its configuration and seed.

The same small grid (the baseline and BN / GN / LN at batch sizes down to 2, where BN
amplifies the last bits of a sum into other accuracies) is trained twice, each time by
`normlab experiments` in a fresh process: once in that process with torch allowed two
threads, once on two worker processes. Every number of every run record is compared
exactly, except the timings (seconds, epoch times, the finishing clock), which are
measurements of the machine, not of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TIMING_KEYS = {"seconds", "epoch_ms_min", "epoch_ms_median", "finished", "epoch_seconds",
               "epoch_cpu_ms", "epoch_cpu_ms_median", "epoch_cpu_ms_min"}


def without_timings(value):
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def train_grid(out, workers, threads):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "normlab_tools", "experiments", "--conditions", "baseline", "norms_batch_size",
               "--seeds", "2", "--epochs", "2", "--train-limit", "160", "--workers", str(workers),
               "--no-plots", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return {path.name: json.loads(path.read_text()) for path in sorted((out / "runs").glob("*.json"))}


@pytest.mark.slow
def test_a_grid_trained_twice_in_fresh_processes_with_1_and_2_workers_gives_the_same_numbers(tmp_path):
    in_process = train_grid(tmp_path / "one", workers=1, threads=2)
    on_workers = train_grid(tmp_path / "two", workers=2, threads=1)
    # 2 seeds x (baseline: BN, vanilla + 4 quick batch cells x BN, GN, LN; batch 64's BN is not among them)
    assert len(in_process) == 2 * (2 + 4 * 3)
    assert in_process.keys() == on_workers.keys()
    for name, record in in_process.items():
        assert record["torch_threads"] == 1
        assert without_timings(record) == without_timings(on_workers[name]), (
            f"{record['config']['norm']} at batch {record['config']['batch_size']}, seed {record['config']['seed']}: "
            "the same configuration and seed gave other numbers")
    batch_2 = [r for r in in_process.values() if r["config"]["batch_size"] == 2 and r["config"]["norm"] == "batch"]
    assert batch_2 and all(len(r["test_acc"]) == 2 for r in batch_2)  # the cells that varied are in the grid
