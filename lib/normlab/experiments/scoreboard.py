r"""From finished runs to the scoreboard: means over seeds, the verdict rule, the tally.

**The verdict rule** is `normlab.stats.compare` (stated there): for each comparison of
arm A against arm B (e.g. BN vs vanilla) in one cell, over the seeds, paired by seed —
both arms of a seed train on the same split with the same order of mini-batches (the
train loader's shuffling follows the seed), and the wall-time condition times both arms
in one run — with δ = 0.5 percentage points of accuracy or 5 % of B's mean time.

**The accuracy** is the test accuracy at the epoch of best validation accuracy: the
model early stopping would keep, chosen without looking at the test set. The final
epoch would penalize a run for the epochs it trained past its best (up to the early-
stopping patience), and the best test epoch would select on the test set.

A condition with several cells (batch sizes) gets the verdict that a strict majority of
its cells has, else a draw. The tally counts the conditions the thesis counts: BN ahead
is a point for BN, vanilla ahead a point for vanilla.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from normlab import stats
from normlab.stats import Verdict, mean_sd
from normlab.experiments import runner
from normlab.experiments.conditions import CONDITIONS, THESIS_TALLY, Condition
from normlab.experiments.runner import write_json_atomic, write_text_atomic

__all__ = ["Metric", "METRICS", "Verdict", "compare", "RULE", "Scoreboard", "aggregate", "run_scoreboard",
           "write_figures"]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    higher_is_better: bool
    min_effect: float          # absolute, in the metric's unit
    min_effect_relative: float  # fraction of B's mean

    def value(self, record: dict, arm: str) -> float:
        """The metric of ``arm`` in a run record (a paired record holds every arm)."""
        if self.name == "test_acc":
            return 100.0 * record["test_acc_at_best"]
        if record.get("experiment") == "paired_timing":
            return record["epoch_cpu_ms_median"][arm]
        return record["epoch_ms_median"]


METRICS = {
    "test_acc": Metric("test_acc", "test accuracy at the best-validation epoch", "%", True, stats.ACCURACY_DELTA, 0.0),
    "epoch_ms": Metric("epoch_ms", "median CPU time of a training epoch (one thread)", "ms", False, 0.0,
                       stats.TIME_DELTA_FRACTION),
}

RULE = (
    stats.RULE + " Here every comparison is paired by seed. Epoch time = median CPU time of a training "
    "epoch on one torch thread. Accuracy = test accuracy at the epoch of best validation accuracy "
    "(the model early stopping keeps, chosen without the test set). A condition with several cells "
    "takes the verdict of a strict majority of its cells, else draw."
)


def compare(values_a, values_b, metric="test_acc", paired=True) -> Verdict:
    """Apply the verdict rule (`normlab.stats.compare`) to per-seed values of arms A and
    B, with the metric's direction and minimal effect δ; ``paired``: ``values_a[i]`` and
    ``values_b[i]`` come from the same seed (the scoreboard's case)."""
    metric = METRICS[metric] if isinstance(metric, str) else metric
    return stats.compare(values_a, values_b, higher_is_better=metric.higher_is_better,
                         min_effect=metric.min_effect, min_effect_relative=metric.min_effect_relative,
                         paired=paired)


def _outcome_text(outcome, a, b):
    return {"a": f"{a} ahead", "b": f"{b} ahead", "draw": "draw", "n/a": "n/a"}[outcome]


def _majority(outcomes):
    counts = Counter(o for o in outcomes if o != "n/a")
    if not counts:
        return "n/a"
    top, count = counts.most_common(1)[0]
    return top if count * 2 > len(outcomes) else "draw"


@dataclass
class Scoreboard:
    """What `aggregate` computed. Lists of plain dicts (one per table row):

    ``rows``: one per (setup, condition, cell, comparison), with means, spreads,
    margin, verdict, the seed's expectation and whether it reproduces;
    ``conditions``: one per (setup, condition, comparison) with the condition's verdict;
    ``tally``: per setup, the thesis-style score over the tally conditions;
    ``summary``: one per (setup, condition, cell, arm): mean ± sd of the metric, epochs,
    diverged runs; ``runs``: one per (setup, condition, cell, arm, seed).
    ``records`` maps a run key to its record (learning curves); ``jobs`` are the jobs.
    """

    rows: list
    conditions: list
    tally: dict
    summary: list
    runs: list
    rankings: list
    settings: dict = field(default_factory=dict)
    rule: str = RULE
    elapsed_seconds: float = math.nan
    runs_trained: int = 0
    runs_reused: int = 0
    load_average: dict = field(default_factory=dict)
    out: Path | None = None
    records: dict = field(default_factory=dict, repr=False)
    jobs: list = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ tables

    def markdown(self) -> str:
        """The scoreboard as Markdown: the rule, the tally, the conditions and the cells."""
        lines = [f"# BatchNorm scoreboard ({self.settings.get('name', '?')} mode)", ""]
        if not math.isnan(self.elapsed_seconds):
            load = self.load_average
            busy = (f"; load average {load['start']:.2f} at start, {load['end']:.2f} at end on "
                    f"{load['cpus']} CPUs" if load else "")
            lines += [f"Training took {self.elapsed_seconds:.0f} s (wall time): {self.runs_trained} runs trained, "
                      f"{self.runs_reused} reused{busy}.", ""]
        lines += [self.rule, ""]
        for setup, score in self.tally.items():
            lines.append(f"**{setup}: batchnorm {score['BN']} - vanilla {score['vanilla']} "
                         f"(draws {score['draw']}, n/a {score['n/a']})**; the thesis: batchnorm "
                         f"{THESIS_TALLY['BN']} - vanilla {THESIS_TALLY['vanilla']} (1 draw).")
        lines += ["", "## Conditions", ""]
        lines.append(_md_table(
            ["setup", "condition", "comparison", "verdict", "cells (A / draw / B)", "seed says", "reproduces"],
            [[c["setup"], c["title"], f"{c['a']} vs {c['b']}", c["verdict"], c["cells"], c["expected"],
              c["reproduces"]] for c in self.conditions]))
        lines += ["", "## Cells", ""]
        lines.append(_md_table(
            ["setup", "condition", "cell", "A", "B", "mean A ± sd", "mean B ± sd", "diff", "margin", "verdict",
             "seed says", "reproduces", "notes"],
            [[r["setup"], r["condition"], r["cell"], r["a"], r["b"], _pm(r["mean_a"], r["sd_a"], r["unit"]),
              _pm(r["mean_b"], r["sd_b"], r["unit"]), _num(r["diff"]), _num(r["margin"]), r["verdict"],
              r["expected"], r["reproduces"], r["notes"]] for r in self.rows]))
        if self.rankings:
            lines += ["", "## Rankings", ""]
            for r in self.rankings:
                lines.append(f"- {r['setup']} {r['condition']} ({r['arm']}), measured: {r['measured']}; "
                             f"the seed's table: {r['claimed']}")
        lines += ["", "## Every arm", ""]
        lines.append(_md_table(
            ["setup", "condition", "cell", "arm", "metric", "mean ± sd", "n", "epochs", "diverged"],
            [[s["setup"], s["condition"], s["cell"], s["arm"], s["metric"], _pm(s["mean"], s["sd"], s["unit"]),
              s["n"], f"{s['epochs_mean']:.1f}", s["diverged"]] for s in self.summary]))
        return "\n".join(lines) + "\n"

    def _repr_markdown_(self):
        return self.markdown()

    def table(self, condition=None) -> str:
        """The cells table as aligned plain text (optionally one condition)."""
        rows = [r for r in self.rows if condition is None or r["condition"] == condition]
        header = ["setup", "condition", "cell", "A vs B", "mean A ± sd", "mean B ± sd", "verdict", "seed says",
                  "reproduces"]
        body = [[r["setup"], r["condition"], r["cell"], f"{r['a']} vs {r['b']}", _pm(r["mean_a"], r["sd_a"], r["unit"]),
                 _pm(r["mean_b"], r["sd_b"], r["unit"]), r["verdict"], r["expected"], r["reproduces"]] for r in rows]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [header] + body)

    def __str__(self) -> str:
        return self.table()

    # ------------------------------------------------------------------ curves

    def curves(self, setup, condition, what="val_acc") -> dict:
        """``{(cell, arm): array (seeds, epochs)}`` of a per-epoch quantity (``val_acc``,
        ``val_loss``, ``train_loss``, ``train_acc``, ``test_acc``), padded with nan after
        a run stopped."""
        grouped = defaultdict(list)
        for job in self.jobs:
            if job.setup == setup and job.condition == condition:
                record = self.records[job.key]
                series = record["test_acc"] if what == "test_acc" else record["history"][what]
                grouped[(job.cell, job.arm)].append([float(v) for v in series])
        out = {}
        for key, series in grouped.items():
            length = max(len(s) for s in series)
            out[key] = np.array([s + [math.nan] * (length - len(s)) for s in series])
        return out

    # ------------------------------------------------------------------ files

    def as_dict(self) -> dict:
        return {
            "settings": self.settings, "rule": self.rule, "elapsed_seconds": self.elapsed_seconds,
            "runs_trained": self.runs_trained, "runs_reused": self.runs_reused, "load_average": self.load_average,
            "tally": self.tally, "thesis_tally": THESIS_TALLY, "conditions": self.conditions, "rows": self.rows,
            "rankings": self.rankings, "summary": self.summary, "runs": self.runs,
        }

    def write(self, out) -> list[Path]:
        """Write results.csv (per run), summary.csv (per arm), scoreboard.csv (per cell
        comparison), scoreboard.md and results.json into ``out``; return the paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, rows in (("results.csv", self.runs), ("summary.csv", self.summary), ("scoreboard.csv", self.rows)):
            paths.append(out / name)
            write_text_atomic(out / name, _csv(rows))
        write_text_atomic(out / "scoreboard.md", self.markdown())
        write_json_atomic(out / "results.json", _jsonable(self.as_dict()))
        return paths + [out / "scoreboard.md", out / "results.json"]


def aggregate(jobs, records, settings=None, conditions=()) -> Scoreboard:
    """Build the `Scoreboard` of ``jobs`` from their ``records`` (key -> run record).
    ``conditions``: Condition objects of the jobs that are not in `CONDITIONS`."""
    by_condition = {c.name: c for c in (*CONDITIONS, *conditions)}
    values = defaultdict(dict)  # (setup, condition, cell, arm) -> {seed: record}
    cells_of = defaultdict(list)  # (setup, condition) -> cell labels in order
    runs = []
    for job in jobs:
        record = records[job.key]
        values[(job.setup, job.condition, job.cell, job.arm)][job.seed] = record
        if job.cell not in cells_of[(job.setup, job.condition)]:
            cells_of[(job.setup, job.condition)].append(job.cell)
        runs.append(_run_row(job, record, METRICS[by_condition[job.condition].metric]))

    summary, rows, condition_rows, rankings, tally = [], [], [], [], {}
    for setup in dict.fromkeys(job.setup for job in jobs):
        score = {"BN": 0, "vanilla": 0, "draw": 0, "n/a": 0}
        for name in dict.fromkeys(job.condition for job in jobs if job.setup == setup):
            condition, cells = by_condition[name], cells_of[(setup, name)]
            metric = METRICS[condition.metric]

            def per_seed(cell, arm):
                recs = values[(setup, name, cell, arm)]
                return recs, [metric.value(recs[seed], arm) for seed in sorted(recs)]

            for cell in cells:
                for arm in condition.arms:
                    recs, vals = per_seed(cell, arm)
                    mean, sd, n = mean_sd(vals)
                    summary.append({
                        "setup": setup, "condition": name, "cell": cell, "arm": arm, "metric": metric.name,
                        "unit": metric.unit, "mean": mean, "sd": sd, "n": n,
                        "epochs_mean": float(np.mean([r["epochs_run"] for r in recs.values()])),
                        "diverged": f"{sum(r.get('diverged', False) for r in recs.values())}/{n}",
                    })
            for index, comparison in enumerate(condition.comparisons):
                cell_rows = []
                for cell in cells:
                    recs_a, recs_b = values[(setup, name, cell, comparison.a)], values[(setup, name, cell, comparison.b)]
                    seeds = sorted(set(recs_a) & set(recs_b))  # paired by seed
                    va = [metric.value(recs_a[seed], comparison.a) for seed in seeds]
                    vb = [metric.value(recs_b[seed], comparison.b) for seed in seeds]
                    verdict = compare(va, vb, metric)
                    expected = comparison.expected_for(cell)
                    cell_rows.append({
                        "setup": setup, "condition": name, "cell": cell, "a": comparison.a, "b": comparison.b,
                        "metric": metric.name, "unit": metric.unit, "mean_a": verdict.mean_a, "sd_a": verdict.sd_a,
                        "n_a": verdict.n_a, "mean_b": verdict.mean_b, "sd_b": verdict.sd_b, "n_b": verdict.n_b,
                        "diff": verdict.diff, "se": verdict.se, "margin": verdict.margin, "outcome": verdict.outcome,
                        "verdict": _outcome_text(verdict.outcome, comparison.a, comparison.b),
                        "expected": _expected_text(expected, comparison),
                        "reproduces": _reproduces(verdict.outcome, expected),
                        "notes": _notes(metric, comparison, recs_a, recs_b, verdict),
                    })
                rows += cell_rows
                counted = condition.tally and index == 0
                row = _condition_row(setup, condition, comparison, cell_rows, counted)
                condition_rows.append(row)
                if counted:
                    score[{"a": "BN", "b": "vanilla"}.get(row["outcome"], row["outcome"])] += 1
            if condition.rank_arm:
                means = {cell: mean_sd(per_seed(cell, condition.rank_arm)[1])[0] for cell in cells}
                order = sorted(means, key=lambda c: -means[c])
                rankings.append({
                    "setup": setup, "condition": name, "arm": condition.rank_arm,
                    "measured": " > ".join(f"{c} {means[c]:.1f}" for c in order),
                    "claimed": " > ".join(condition.claimed_ranking or ()),
                })
        if sum(score.values()):
            tally[setup] = score
    settings = settings.as_dict() if hasattr(settings, "as_dict") else (settings or {})
    return Scoreboard(rows=rows, conditions=condition_rows, tally=tally, summary=summary, runs=runs,
                      rankings=rankings, settings=settings, records=records, jobs=list(jobs))


def _condition_row(setup, condition, comparison, cell_rows, counted) -> dict:
    """A condition's verdict: that of a strict majority of its cells, else a draw. With a
    claim per cell, "reproduces" counts the cells whose claim reproduces."""
    outcomes = [r["outcome"] for r in cell_rows]
    overall = _majority(outcomes)
    counts = Counter(outcomes)
    if isinstance(comparison.expected, dict):
        judged = [r["reproduces"] for r in cell_rows if r["reproduces"] in ("yes", "no")]
        expected, reproduces = "per cell", f"{judged.count('yes')} of {len(judged)} cells"
    else:
        expected = _expected_text(comparison.expected, comparison)
        reproduces = _reproduces(overall, comparison.expected)
    return {
        "setup": setup, "condition": condition.name, "title": condition.title, "a": comparison.a,
        "b": comparison.b, "outcome": overall, "verdict": _outcome_text(overall, comparison.a, comparison.b),
        "cells": f"{counts['a']} / {counts['draw']} / {counts['b']}" + (
            f" / n/a {counts['n/a']}" if counts["n/a"] else ""),
        "expected": expected, "reproduces": reproduces, "claim": condition.claim, "source": condition.source,
        "tally": counted,
    }


def _run_row(job, record, metric) -> dict:
    """One line of results.csv: the run's place, its metric and its summary numbers."""
    row = {"setup": job.setup, "condition": job.condition, "cell": job.cell, "arm": job.arm, "seed": job.seed,
           "key": job.key, "metric": metric.name, "value": round(metric.value(record, job.arm), 4)}
    paired = record.get("experiment") == "paired_timing"
    for name in ("test_acc_at_best", "val_acc_at_best", "final_test_acc", "best_epoch", "epochs_run", "diverged",
                 "stopped_early", "epoch_ms_median", "epoch_cpu_ms_median", "seconds"):
        value = record.get(name)
        if paired and isinstance(value, dict):
            value = value[job.arm]
        row[name] = round(value, 4) if isinstance(value, float) else value
    return row


CHANCE = 10.0  # % accuracy of guessing: every data set here has 10 classes


def _notes(metric, comparison, ra, rb, verdict) -> str:
    """Diverged runs, arms near chance (within 5 points), BN's time overhead."""
    notes = []
    for arm, recs, mean in ((comparison.a, ra, verdict.mean_a), (comparison.b, rb, verdict.mean_b)):
        diverged = sum(r.get("diverged", False) for r in recs.values())
        if diverged:
            notes.append(f"{arm} diverged in {diverged}/{len(recs)}")
        if metric.name == "test_acc" and mean < CHANCE + 5:
            notes.append(f"{arm} near chance")
    if metric.name == "epoch_ms" and verdict.mean_b > 0:
        notes.append(f"{comparison.a} overhead {100 * (verdict.mean_a / verdict.mean_b - 1):+.0f}%")
    return "; ".join(notes)


def _expected_text(expected, comparison) -> str:
    if not expected:
        return "no claim"
    return " or ".join(_outcome_text(o, comparison.a, comparison.b) for o in expected)


def _reproduces(outcome, expected) -> str:
    if not expected:
        return "-"
    if outcome == "n/a":
        return "n/a"
    return "yes" if outcome in expected else "no"


def _num(x):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.2f}"


def _pm(mean, sd, unit):
    if isinstance(mean, float) and math.isnan(mean):
        return "nan"
    spread = "" if isinstance(sd, float) and math.isnan(sd) else f" ± {sd:.2f}"
    return f"{mean:.2f}{spread}"


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def _csv(rows) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def _jsonable(obj):
    """nan/inf -> None (strict JSON), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj



# --------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------


def run_scoreboard(conditions=None, seeds=None, out=None, quick=True, progress=True, workers=None,
                   data_root=None, overrides=None, plots=True, executor=None) -> Scoreboard:
    """Run (or reuse) every run of ``conditions`` and return the `Scoreboard`.

    ``conditions``: names from `CONDITIONS` or `Condition` objects (default: all).
    ``seeds``: per cell (default 3, with ``quick=False`` 5). ``quick=False`` is the
    ``--full`` mode: more epochs, the thesis' patience, every cell, the CNN too, and
    MNIST / CIFAR-10 when their files are under ``data_root``. ``overrides`` set run
    settings on top (e.g. ``{"epochs": 2, "train_limit": 200}`` for a tiny grid).
    ``out`` (default ``build/experiments/quick`` or ``.../full``) receives runs/,
    results.csv, summary.csv, scoreboard.csv, scoreboard.md, results.json and, with
    ``plots``, curves/*.png. Finished runs found in ``out/runs`` are not recomputed.
    ``workers``: processes (default 2 when there are 4+ runs to do; 1 = this process),
    forked on Linux, so scripts and notebooks need no ``__main__`` guard (elsewhere
    spawned: there a script needs ``if __name__ == "__main__":``). ``executor``: any
    `concurrent.futures.Executor` to train the runs on instead of ``workers``, e.g. a
    Dask cluster's ``client.get_executor()``; the records, and so every number, are the
    same as trained here (see `runner.run_jobs`).
    """
    settings = runner.QUICK if quick else runner.FULL
    if not quick:
        settings = replace(settings, setups=settings.setups + tuple(runner.find_torchvision_setups(data_root)))
    if seeds is not None and not (isinstance(seeds, int) and seeds >= 1):
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    settings = runner.with_overrides(settings, seeds, overrides)
    selected = _conditions(conditions)
    out = Path(out) if out is not None else Path("build") / "experiments" / settings.name
    jobs = runner.plan(selected, settings)
    load_start = _load()
    start = time.perf_counter()
    trained, reused = runner.run_jobs(jobs, out / "runs", workers=workers, progress=progress, data_root=data_root,
                                      executor=executor)
    elapsed = time.perf_counter() - start
    records = {job.key: runner.load_record(out / "runs", job.key) for job in jobs}
    board = aggregate(jobs, records, settings, selected)
    board.elapsed_seconds, board.runs_trained, board.runs_reused = elapsed, trained, reused
    board.load_average = {"start": load_start, "end": _load(), "cpus": os.cpu_count()}
    board.out = out
    board.write(out)
    if plots:
        write_figures(board, out)
    return board


def write_figures(board: Scoreboard, out) -> list[Path]:
    """Save the learning curves of every condition (out/curves/<setup>_<condition>.png),
    the forest plot (out/scoreboard_<setup>.png) and the wall-time bars."""
    import matplotlib.pyplot as plt

    from normlab.plots import experiments as figures

    out = Path(out)
    (out / "curves").mkdir(parents=True, exist_ok=True)
    paths = []

    def save(fig, path):
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)

    setups = list(dict.fromkeys(job.setup for job in board.jobs))
    for setup in setups:
        tag = setup.replace("/", "-")
        names = list(dict.fromkeys(job.condition for job in board.jobs if job.setup == setup))
        for name in names:
            if any(r["condition"] == name and r["metric"] == "epoch_ms" for r in board.rows):
                save(figures.plot_wall_time(board, setup, name), out / f"{name}_{tag}.png")
            else:
                save(figures.plot_learning_curves(board, name, setup), out / "curves" / f"{tag}_{name}.png")
        if any(r["setup"] == setup and r["metric"] == "test_acc" for r in board.rows):
            save(figures.plot_scoreboard(board, setup), out / f"scoreboard_{tag}.png")
    return paths


def _conditions(conditions):
    if conditions is None:
        return list(CONDITIONS)
    if isinstance(conditions, (str, Condition)):
        conditions = [conditions]
    names = [c for c in conditions if isinstance(c, str)]
    objects = [c for c in conditions if isinstance(c, Condition)]
    return runner.select_conditions(names) + objects if names else objects


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return math.nan
