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
pool), `scoreboard` (verdicts, tables, files), `landscape` (smoothness), `noisy`. The command is `normlab_tools.experiments`.
Figures: `normlab.plots.experiments`.
"""

from __future__ import annotations

from normlab.experiments.conditions import CONDITIONS, SMOOTHNESS_SETTINGS, THESIS_TALLY, Cell, Comparison, Condition
from normlab.experiments.landscape import SMOOTHNESS_ARMS, SmoothnessResult, smoothness
from normlab.experiments.noisy import BatchNormNoise, add_batchnorm_noise
from normlab.experiments.runner import FULL, QUICK, Settings, plan, train_one
from normlab.experiments.scoreboard import METRICS, RULE, Scoreboard, Verdict, aggregate, compare, run_scoreboard, write_figures

__all__ = ["CONDITIONS", "SMOOTHNESS_SETTINGS", "THESIS_TALLY", "Cell", "Comparison", "Condition",
           "SMOOTHNESS_ARMS", "SmoothnessResult", "smoothness", "BatchNormNoise", "add_batchnorm_noise",
           "FULL", "QUICK", "Settings", "plan", "train_one",
           "METRICS", "RULE", "Scoreboard", "Verdict", "aggregate", "compare", "run_scoreboard", "write_figures"]
