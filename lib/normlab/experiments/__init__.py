r"""The BatchNorm experiments of the course: the seeds' claims, run honestly on our data.

`CONDITIONS` lists the experiments of the thesis talk (ReLU baseline, sigmoid, 10x
learning rate, N(0, 1) init, weight decay, dropout, batch sizes, wall time) and of the
lecture slides (BN before/after ReLU, activations, BN vs GN vs LN across batch sizes,
Santurkar et al.'s noisy BN), each with its claim quoted. `run_scoreboard` trains every
(condition, cell, arm, seed) once, caches each run as a JSON file keyed by its
configuration (resumable), and judges each comparison by a rule on the seed spread
(`RULE`, `compare`). `smoothness` probes the loss and gradient along the gradient
direction (Santurkar et al. §3). `BatchNormNoise` is the noisy-BN noise.

Python::

    from normlab import experiments as ex
    board = ex.run_scoreboard(conditions=["baseline", "sigmoid"], seeds=3, out="build/ex", progress=False)
    print(board.table()); board.tally
    result = ex.smoothness(seeds=2, epochs=5)
    print(result.table())

Command line: ``normlab experiments [--full] [--conditions NAME ...] [--seeds N] [--out DIR]``.

Modules: `conditions` (the declarative list), `runner` (one run, the files, the worker
pool), `scoreboard` (verdicts, tables, files), `landscape` (smoothness), `noisy`, `cli`.
Figures: `normlab.plots.experiments`.
"""

from __future__ import annotations

import importlib

from normlab.experiments.cli import add_parser
from normlab.experiments.conditions import CONDITIONS, THESIS_TALLY, Cell, Comparison, Condition

# Everything else needs torch; it is imported on first use so that `normlab --help`
# stays fast.
_LAZY = {
    "run_scoreboard": "scoreboard", "Scoreboard": "scoreboard", "aggregate": "scoreboard",
    "compare": "scoreboard", "Verdict": "scoreboard", "RULE": "scoreboard", "METRICS": "scoreboard",
    "write_figures": "scoreboard",
    "smoothness": "landscape", "SmoothnessResult": "landscape", "SMOOTHNESS_ARMS": "landscape",
    "BatchNormNoise": "noisy", "add_batchnorm_noise": "noisy",
    "QUICK": "runner", "FULL": "runner", "Settings": "runner", "train_one": "runner", "plan": "runner",
}

__all__ = ["CONDITIONS", "THESIS_TALLY", "Cell", "Comparison", "Condition", "add_parser", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"normlab.experiments.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'normlab.experiments' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
