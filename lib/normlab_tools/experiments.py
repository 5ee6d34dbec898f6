"""What ``normlab experiments`` runs: the scoreboard, learning curves and smoothness probes, with files and tables."""

from __future__ import annotations

import json
import os
import textwrap
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from normlab.experiments.conditions import CONDITIONS, SMOOTHNESS_SETTINGS
from normlab_tools.errors import UserError

SMOOTHNESS = "smoothness"


@contextmanager
def dask_executor(address: str):
    """A `concurrent.futures` executor on the Dask cluster of `address` (see
    `normlab_tools.dask_cluster.dask_client`), closed on exit."""
    from normlab_tools.dask_cluster import dask_client

    with dask_client(address) as client:
        workers = client.scheduler_info()["workers"]
        print(f"training on the Dask cluster {address}: {len(workers)} worker(s) with "
              f"{sum(w['nthreads'] for w in workers.values())} thread(s) connected")
        yield client.get_executor()


def _list_conditions() -> str:
    lines = []
    for c in CONDITIONS:
        cells = ", ".join(cell.label for cell in c.cells if cell.label)
        lines.append(f"{c.name}: {c.title}" + (" [thesis tally]" if c.tally else ""))
        lines += textwrap.wrap(c.description + (f" Cells: {cells}." if cells else ""), 96,
                               initial_indent="    ", subsequent_indent="    ")
        lines += textwrap.wrap(f'claim: "{c.claim}" ({c.source})', 96, initial_indent="    ",
                               subsequent_indent="      ")
    lines.append(f"{SMOOTHNESS}: loss and gradient change along the gradient, BN vs vanilla (Santurkar et al. §3)")
    return "\n".join(lines)


def main(args) -> int:
    if args.list:
        print(_list_conditions())
        return 0
    known = [c.name for c in CONDITIONS] + [SMOOTHNESS]
    selected = args.conditions or known
    unknown = [n for n in selected if n not in known]
    if unknown:
        raise UserError(f"unknown condition{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                        f"known: {', '.join(known)} (see --list)")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise UserError(f"--data-root {args.data_root!r} is not a folder")

    from normlab.experiments import landscape, runner, scoreboard

    mode = "full" if args.full else "quick"
    out = Path(args.out) if args.out else Path("build") / "experiments" / mode
    overrides = {k: v for k, v in (("epochs", args.epochs), ("train_limit", args.train_limit)) if v is not None}
    base = runner.FULL if args.full else runner.QUICK
    seeds = args.seeds or base.seeds
    setups = list(base.setups)
    if args.full:
        found = runner.find_torchvision_setups(args.data_root)
        setups += found
        if args.data_root is None:
            print("MNIST / CIFAR-10: not searched (give --data-root DIR to add them)")
        else:
            missing = sorted({d for d, _ in runner.TORCHVISION_SETUPS} - {d for d, _ in found})
            print(f"under {args.data_root}: found {sorted({d for d, _ in found}) or 'none'}; "
                  f"not found: {missing or 'none'}")
    names = [n for n in selected if n != SMOOTHNESS]
    start = time.perf_counter()
    timings = {}
    board = None
    if names:
        with dask_executor(args.scheduler) if args.scheduler else nullcontext() as executor:
            settings = runner.with_overrides(base, seeds, overrides)
            epochs = settings.user.get("epochs", settings.overrides["epochs"])
            print(f"{mode} mode: {len(names)} condition(s) on {', '.join('/'.join(s) for s in setups)}, {seeds} "
                  f"seeds, at most {epochs} epochs per run -> {out}")
            board = scoreboard.run_scoreboard(names, seeds=seeds, out=out, quick=not args.full, progress=True,
                                              workers=args.workers, data_root=args.data_root, overrides=overrides,
                                              plots=args.plots, executor=executor)
        timings["scoreboard_seconds"] = round(board.elapsed_seconds, 1)
        timings["runs_trained"], timings["runs_reused"] = board.runs_trained, board.runs_reused
        if args.scheduler:
            timings["scheduler"] = args.scheduler
    if SMOOTHNESS in selected:
        t = time.perf_counter()
        for dataset, model in setups:
            smooth = SMOOTHNESS_SETTINGS[mode]
            epochs = args.epochs or smooth["epochs"]
            result = landscape.smoothness(seeds=seeds, epochs=epochs, points=smooth["points"], dataset=dataset,
                                          model=model, overrides={k: v for k, v in overrides.items() if k != "epochs"},
                                          out=out, progress=True, data_root=args.data_root)
            tag = f"{dataset}-{model}"
            runner.write_json_atomic(out / f"smoothness_{tag}.json", scoreboard._jsonable(result.as_dict()))
            if args.plots:
                import matplotlib.pyplot as plt

                from normlab.plots.experiments import plot_smoothness

                fig = plot_smoothness(result)
                fig.savefig(out / f"smoothness_{tag}.png")
                plt.close(fig)
            print(f"\nSmoothness ({dataset}/{model}, {seeds} seeds, {epochs} epochs; mean over probed steps):")
            print(result.table())
        timings["smoothness_seconds"] = round(time.perf_counter() - t, 1)
    timings["total_seconds"] = round(time.perf_counter() - start, 1)
    timings["load_average_end"] = round(os.getloadavg()[0], 2)
    timings["cpus"] = os.cpu_count()
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.json").write_text(json.dumps(timings, indent=1))
    if board is not None:
        print()
        print(_conditions_table(board))
        for setup, score in board.tally.items():
            print(f"\n{setup}: batchnorm {score['BN']} - vanilla {score['vanilla']} (draws {score['draw']}"
                  f"{', n/a ' + str(score['n/a']) if score['n/a'] else ''}); the thesis: batchnorm 6 - vanilla 1")
        print(f"\n{board.rule}")
    print(f"\nDone in {timings['total_seconds']:.0f} s"
          + (f" ({board.runs_trained} runs trained, {board.runs_reused} reused)" if board else "")
          + f". Results in {out}/ (scoreboard.md, scoreboard.csv, results.csv, results.json"
          + (", curves/" if args.plots and board else "") + ")")
    return 0


def _conditions_table(board) -> str:
    header = ["setup", "condition", "comparison", "verdict", "cells A/draw/B", "seed says", "reproduces"]
    body = [[c["setup"], c["condition"], f"{c['a']} vs {c['b']}", c["verdict"], c["cells"], c["expected"],
             c["reproduces"]] for c in board.conditions]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [header] + body)
