"""``normlab experiments``: the BatchNorm-vs-vanilla scoreboard, learning curves, smoothness."""

from __future__ import annotations

import argparse

from normlab_tools.commands.arguments import positive_int
from normlab_tools.dask_cluster import scheduler_address


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "experiments", help="run the BatchNorm experiments: the scoreboard, learning curves, smoothness",
        description="Reproduce the seeds' BatchNorm claims (thesis talk scoreboard, lecture benchmarks, "
        "Santurkar et al.) over several seeds on the embedded digits data, with a verdict per condition "
        "by a rule on the seed spread. Finished runs in OUT/runs are reused (resumable).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Use --list to see the conditions, each with the claim it tests.")
    parser.add_argument("--full", action="store_true",
                        help="the whole grid: 5 seeds, up to 100 epochs with the thesis' patience (5/20), every "
                        "cell, MLP and CNN on digits, and MNIST / CIFAR-10 when found under --data-root")
    parser.add_argument("--conditions", nargs="+", metavar="NAME",
                        help="run only these conditions (default: all of them and 'smoothness')")
    parser.add_argument("--seeds", type=positive_int, metavar="N", help="seeds per cell (default 3; --full 5)")
    parser.add_argument("--out", metavar="DIR",
                        help="output folder (default build/experiments/quick or build/experiments/full)")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding MNIST/ or cifar-10-batches-py/ (--full)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, metavar="N",
                       help="worker processes, one torch thread each (default 2 when there are 4+ runs to do)")
    where.add_argument("--scheduler", type=scheduler_address, metavar="ADDRESS",
                       help="train the runs on the Dask cluster whose scheduler is at ADDRESS (tcp://host:port), "
                       "or with local:N on N worker processes here; every number is the same as trained locally. "
                       "The smoothness probes run in this process")
    parser.add_argument("--epochs", type=positive_int, metavar="N", help="override the maximum epochs of every run")
    parser.add_argument("--train-limit", type=positive_int, metavar="N",
                        help="train on only the first N training samples (quick looks, tests)")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG figures")
    parser.add_argument("--list", action="store_true", help="list the conditions and their claims, then exit")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from normlab_tools import experiments

    return experiments.main(args)
