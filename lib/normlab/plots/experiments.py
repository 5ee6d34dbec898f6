"""Figures of the BatchNorm experiments (lecture 08): learning curves with error bands,
the scoreboard as a forest plot, BN's time overhead, and the smoothness probes.

Each function takes a `normlab.experiments.Scoreboard` (or `SmoothnessResult`) and
returns a matplotlib Figure sized for a 1280x720 slide (10 x 4.5 inches at 128 dpi).
Bands are mean ± one standard deviation over seeds.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_learning_curves", "plot_scoreboard", "plot_wall_time", "plot_smoothness", "FIGSIZE"]

FIGSIZE = (10, 4.5)
DPI = 128
ARM_COLORS = {"BN": "tab:blue", "vanilla": "tab:orange", "noisy BN": "tab:green",
              "noisy BN (mean at test)": "tab:olive", "GN": "tab:green",
              "LN": "tab:purple", "before": "tab:blue", "after": "tab:red", "BN + ReLU": "tab:blue",
              "vanilla ELU": "tab:orange"}
CURVE_LABELS = {"val_acc": "validation accuracy", "val_loss": "validation loss", "train_loss": "training loss",
                "train_acc": "training accuracy", "test_acc": "test accuracy"}


def _setup_of(scoreboard, setup):
    setups = list(dict.fromkeys(job.setup for job in scoreboard.jobs))
    if setup is None:
        return setups[0]
    if setup not in setups:
        raise ValueError(f"no runs for setup {setup!r}; the scoreboard has {setups}")
    return setup


def _band(ax, series, color, label):
    """Mean ± sd over the rows of ``series`` (seeds x epochs, nan after a run stopped)."""
    with np.errstate(all="ignore"), _quiet():
        mean = np.nanmean(series, axis=0)
        sd = np.nanstd(series, axis=0, ddof=1) if len(series) > 1 else np.zeros_like(mean)
    epochs = np.arange(1, len(mean) + 1)
    ax.plot(epochs, mean, color=color, label=label, lw=1.5)
    ax.fill_between(epochs, mean - np.nan_to_num(sd), mean + np.nan_to_num(sd), color=color, alpha=0.2, lw=0)


@contextmanager
def _quiet():
    """Silence numpy's "mean of empty slice" (epochs where every run had stopped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def plot_learning_curves(scoreboard, condition, setup=None, what="val_acc", max_cells=8):
    """One panel per cell of ``condition``: ``what`` per epoch for every arm, mean ± sd
    over seeds (a run that stopped early drops out of the mean after its last epoch)."""
    setup = _setup_of(scoreboard, setup)
    curves = scoreboard.curves(setup, condition, what)
    if not curves:
        raise ValueError(f"no runs of condition {condition!r} on {setup}")
    cells = list(dict.fromkeys(cell for cell, _ in curves))[:max_cells]
    arms = list(dict.fromkeys(arm for _, arm in curves))
    cols = min(len(cells), 4)
    rows = math.ceil(len(cells) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=FIGSIZE, dpi=DPI, squeeze=False, sharey=True)
    for ax, cell in zip(axes.flat, cells):
        for i, arm in enumerate(arms):
            color = ARM_COLORS.get(arm, f"C{i}")
            series = curves[(cell, arm)]
            _band(ax, 100 * series if what.endswith("acc") else series, color, arm)
        ax.set_title(cell or condition, fontsize=10)
        ax.grid(alpha=0.3)
        if what.endswith("loss"):
            ax.set_yscale("log")
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    unit = " (%)" if what.endswith("acc") else ""
    for ax in axes[:, 0]:
        ax.set_ylabel(CURVE_LABELS.get(what, what) + unit)
    axes.flat[0].legend(fontsize=8, loc="lower right" if what.endswith("acc") else "upper right")
    title = next((c["title"] for c in scoreboard.conditions if c["condition"] == condition), condition)
    fig.suptitle(f"{title} ({setup}): {CURVE_LABELS.get(what, what)}, mean ± sd over seeds", fontsize=11)
    fig.tight_layout()
    return fig


def plot_scoreboard(scoreboard, setup=None):
    """Forest plot of the accuracy comparisons: each row's difference mean(A) - mean(B)
    with its margin max(2 SE, 0.5 pp) as an error bar; colour = verdict."""
    setup = _setup_of(scoreboard, setup)
    rows = [r for r in scoreboard.rows if r["setup"] == setup and r["metric"] == "test_acc"]
    colors = {"a": "tab:blue", "b": "tab:orange", "draw": "grey", "n/a": "lightgrey"}
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        margin = 0.0 if r["margin"] is None or math.isnan(r["margin"]) else r["margin"]
        ax.errorbar(r["diff"], yi, xerr=margin, fmt="o", color=colors[r["outcome"]], ms=4, capsize=2, lw=1)
    ax.axvline(0, color="black", lw=0.8)
    labels = [f"{r['condition']} {r['cell']}".strip() + f": {r['a']} vs {r['b']}" for r in rows]
    ax.set_yticks(y, labels, fontsize=6 if len(rows) > 20 else 8)
    ax.set_xscale("symlog", linthresh=2)
    ax.set_xlabel("mean(A) - mean(B), test accuracy (percentage points); bar: the verdict margin")
    ax.set_title(f"Scoreboard ({setup}): blue = A ahead, orange = B ahead, grey = draw", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_wall_time(scoreboard, setup=None, condition="wall_time"):
    """Median CPU time of a training epoch (ms) per batch size, BN vs vanilla (mean ± sd over seeds),
    with BN's overhead above the bars."""
    setup = _setup_of(scoreboard, setup)
    rows = [r for r in scoreboard.rows if r["setup"] == setup and r["condition"] == condition]
    if not rows:
        raise ValueError(f"no {condition!r} results on {setup}")
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    x = np.arange(len(rows))
    width = 0.38
    for offset, side in ((-width / 2, "a"), (width / 2, "b")):
        arm = rows[0][side]
        means = [r[f"mean_{side}"] for r in rows]
        sds = [0 if r[f"sd_{side}"] is None or math.isnan(r[f"sd_{side}"]) else r[f"sd_{side}"] for r in rows]
        ax.bar(x + offset, means, width, yerr=sds, capsize=2, label=arm, color=ARM_COLORS.get(arm))
    for xi, r in zip(x, rows):
        overhead = 100 * (r["mean_a"] / r["mean_b"] - 1)
        ax.annotate(f"{overhead:+.0f}%", (xi, max(r["mean_a"], r["mean_b"])), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(x, [r["cell"] for r in rows])
    ax.set_ylabel("CPU time of a training epoch (ms)")
    ax.set_title(f"Time per epoch ({setup}, one CPU thread): BN's overhead above the bars", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_smoothness(result):
    """Santurkar et al.'s Figure 4 on our data: the range of the loss and of the gradient
    change along the gradient direction at each probed step (shaded between the
    smallest and largest step size, averaged over seeds), and the effective
    β-smoothness (mean ± sd over seeds)."""
    fig, axes = plt.subplots(1, 3, figsize=FIGSIZE, dpi=DPI)
    steps = result.steps
    for i, arm in enumerate(result.arms):
        color = ARM_COLORS.get(arm, f"C{i}")
        with _quiet():
            for ax, values in ((axes[0], result.loss[i]), (axes[1], result.grad_change[i])):
                low = np.nanmean(np.nanmin(values, axis=-1), axis=0)
                high = np.nanmean(np.nanmax(values, axis=-1), axis=0)
                ax.fill_between(steps, low, high, color=color, alpha=0.3, lw=0, label=arm)
                ax.plot(steps, low, color=color, lw=0.8)
                ax.plot(steps, high, color=color, lw=0.8)
            beta = result.beta()[i]
            mean = np.nanmean(beta, axis=0)
            sd = np.nanstd(beta, axis=0, ddof=1) if result.seeds > 1 else np.zeros_like(mean)
        axes[2].plot(steps, mean, color=color, label=arm)
        axes[2].fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
    titles = ("loss landscape: L(θ - ηg)", "gradient predictiveness: ‖∇L(θ - ηg) - g‖",
              "effective β-smoothness")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Moving along the gradient, η from {result.step_sizes.min():g} to {result.step_sizes.max():g} "
                 f"({result.seeds} seeds)", fontsize=10)
    fig.tight_layout()
    return fig
