r"""Figures and quick experiments of the lectures on normalization variants (05) and dropout (06).

**Which entries share a mean and a variance.** Batch, layer, instance and group norm all
compute :math:`\mu = \frac1m\sum_{S} x` and :math:`\sigma^2 = \frac1m\sum_{S}(x-\mu)^2` over
a set :math:`S` of entries of an (N, C, H, W) feature map and differ only in :math:`S`.
`shared_statistics_mask` finds :math:`S` *by running* `normlab.functional`: it adds a
constant to one entry and records which outputs change. Adding a constant to one member
of :math:`S` moves :math:`\mu` and :math:`\sigma^2` of :math:`S`, so every output in
:math:`S` changes and nothing else does. `normalization_masks` computes one mask per normalization and `plot_normalization_cube`
draws these sets as in Wu & He (2018), *Group Normalization*, Figure 2.

**Quick experiments.** The runs come from `normlab.train` (`train_and_test`,
`compare_conditions`, `batch_size_sweep`); here `summarize` and `results_table` turn them
into mean ± standard deviation (over seeds, ddof = 1) next to numbers quoted from the
seeds, and `verdict` states the course's verdict rule (`normlab.stats.compare`): whether
two conditions differ by more than the seed-to-seed noise. `plot_batch_size_sweep` draws
test error against batch size; `plot_measured_vs_quoted` puts a quoted table and our
measurement side by side.

**Dropout.** `dropout_keep_masks` draws one dropout mask per layer and
`plot_thinned_network` draws it on a small network (the original, non-inverted dropout
is `normlab.functional.dropout_forward_not_inverted`). For the variance shift between
dropout and batch norm, `normlab.train.bn_input_variances` measures and
`plot_variance_shift` draws it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgba
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from normlab import functional, stats

__all__ = [
    "NORMALIZATIONS",
    "CAFFENET_BN_POSITION",
    "CAFFENET_BN_ACTIVATIONS",
    "CAFFENET_BN_DROPOUT",
    "shared_statistics_mask",
    "normalization_masks",
    "plot_normalization_cube",
    "summarize",
    "compare_runs",
    "results_table",
    "difference",
    "verdict",
    "plot_batch_size_sweep",
    "plot_measured_vs_quoted",
    "dropout_keep_masks",
    "plot_thinned_network",
    "plot_variance_shift",
]

NORMALIZATIONS = ("batch", "layer", "instance", "group")

# The caffenet benchmark tables quoted in Raschka's lecture slides (ImageNet, 128 px
# images; accuracy), github.com/ducha-aiki/caffenet-benchmark/blob/master/batchnorm.md.
CAFFENET_BN_POSITION = {"before": 0.474, "before + scale&bias": 0.478, "after": 0.499,
                        "after + scale&bias": 0.493}
CAFFENET_BN_ACTIVATIONS = {"relu": 0.499, "rrelu": 0.500, "prelu": 0.503, "elu": 0.498, "maxout": 0.487,
                           "sigmoid": 0.475, "tanh": 0.448, "none": 0.384}
# BN and dropout: ReLU, dropout in the fully connected layers fc6 and fc7 only.
CAFFENET_BN_DROPOUT = {"dropout 0.5": 0.499, "dropout 0.2": 0.527, "dropout 0": 0.513}
_LOWER_IS_BETTER = ("test_loss", "gap")
_TITLES = {"batch": "Batch Norm", "layer": "Layer Norm", "instance": "Instance Norm", "group": "Group Norm"}
_HIGHLIGHT = "#3b78c2"
_PLAIN = "#f4f4f4"


# --------------------------------------------------------------------------------------
# Which entries share one mean and variance: the cube figure
# --------------------------------------------------------------------------------------


def _normalize_with(kind, x, num_groups):
    """Output of the named normalization (gamma = 1, beta = 0) on (N, C, H, W) input."""
    channels = x.shape[1]
    gamma, beta = np.ones(channels), np.zeros(channels)
    if kind == "batch":
        return functional.batchnorm_forward(x, gamma, beta)[0]
    if kind == "layer":
        shape = x.shape[1:]
        return functional.layernorm_forward(x, np.ones(shape), np.zeros(shape))[0]
    if kind == "instance":
        return functional.instancenorm_forward(x, gamma, beta)[0]
    if kind == "group":
        return functional.groupnorm_forward(x, gamma, beta, num_groups)[0]
    raise ValueError(f"unknown normalization {kind!r}; choose one of {', '.join(map(repr, NORMALIZATIONS))}")


def shared_statistics_mask(kind, num_samples=6, num_channels=6, num_positions=6, num_groups=2,
                           sample=0, channel=0, seed=0) -> np.ndarray:
    """Boolean array (N, C, H*W): True where an entry is normalized with the same mean and
    variance as entry ``(sample, channel, 0)``.

    Found by running `normlab.functional` on random input x of shape
    (N, C, H*W, 1) twice, the second time with 10 added to x[sample, channel, 0]: the
    entries whose output changes are exactly those sharing the statistics. ``kind`` is
    one of `NORMALIZATIONS`; ``num_groups`` is used by group norm.
    """
    x = np.random.default_rng(seed).standard_normal((num_samples, num_channels, num_positions, 1))
    shifted = x.copy()
    shifted[sample, channel, 0, 0] += 10.0
    changed = ~np.isclose(_normalize_with(kind, x, num_groups), _normalize_with(kind, shifted, num_groups),
                          rtol=0.0, atol=1e-9)
    return changed[..., 0]


def _draw_cube(ax, mask, title):
    """The three faces of the (N, C, H*W) box that face the viewer, one square per entry,
    the entries of ``mask`` in blue. Axes: x = C, y = N (sample 0 in front), z = H,W."""
    num_samples, num_channels, num_positions = mask.shape
    quads, colors = [], []

    def add(corners, highlighted, brightness):
        quads.append(corners)
        base = np.array(to_rgba(_HIGHLIGHT if highlighted else _PLAIN))
        colors.append(np.clip(base * [brightness, brightness, brightness, 1.0], 0, 1))

    for c in range(num_channels):  # front face: sample 0
        for z in range(num_positions):
            add([(c, 0, z), (c + 1, 0, z), (c + 1, 0, z + 1), (c, 0, z + 1)], mask[0, c, z], 0.92)
    for n in range(num_samples):  # right face: the last channel
        for z in range(num_positions):
            x = num_channels
            add([(x, n, z), (x, n + 1, z), (x, n + 1, z + 1), (x, n, z + 1)], mask[n, -1, z], 0.75)
    for c in range(num_channels):  # top face: the last position
        for n in range(num_samples):
            z = num_positions
            add([(c, n, z), (c + 1, n, z), (c + 1, n + 1, z), (c, n + 1, z)], mask[n, c, -1], 1.0)
    ax.add_collection3d(Poly3DCollection(quads, facecolors=colors, edgecolors=(0.3, 0.3, 0.3, 0.8),
                                         linewidths=0.5))
    ax.set(xlim=(0, num_channels), ylim=(0, num_samples), zlim=(0, num_positions))
    ax.text(num_channels / 2, -0.6, -0.9, "C", fontsize=13, ha="center", va="top")
    ax.text(num_channels + 0.7, num_samples / 2, -0.9, "N", fontsize=13, ha="left", va="top")
    ax.text(-0.5, 0, num_positions / 2, "H, W", fontsize=13, ha="right", va="center")
    ax.set_box_aspect((num_channels, num_samples, num_positions), zoom=0.86)
    ax.view_init(elev=20, azim=-60)
    ax.set_axis_off()
    ax.set_title(title, fontsize=12, pad=-2)


def normalization_masks(num_samples=6, num_channels=6, num_positions=6, num_groups=2) -> dict:
    """``{kind: mask}`` for every kind of `NORMALIZATIONS`: `shared_statistics_mask` of the
    first sample and the *last* channel (the two faces of the cube facing the viewer)."""
    return {kind: shared_statistics_mask(kind, num_samples, num_channels, num_positions, num_groups,
                                         sample=0, channel=num_channels - 1)
            for kind in NORMALIZATIONS}


def plot_normalization_cube(masks: dict, num_groups=2, figsize=(9, 2.8)):
    """Wu & He's Figure 2: one (N, C, H*W) box per normalization, the entries that share
    one mean and variance in blue; ``masks`` is `normalization_masks` (``{kind: boolean
    array (N, C, H*W)}``), ``num_groups`` only labels the group-norm panel.

    Batch norm: one channel, all samples and positions. Layer norm: one sample, all
    channels and positions. Instance norm: one sample and one channel. Group norm: one
    sample and one group of C / num_groups channels. Returns the Figure.
    """
    fig = plt.figure(figsize=figsize)
    for i, (kind, mask) in enumerate(masks.items()):
        ax = fig.add_subplot(1, len(masks), i + 1, projection="3d")
        title = _TITLES.get(kind, kind) + (f" (G={num_groups})" if kind == "group" else "")
        _draw_cube(ax, mask, title)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.02, top=0.92, wspace=0.05)
    return fig


# --------------------------------------------------------------------------------------
# Quick experiments: train, test, repeat over seeds, tabulate
# --------------------------------------------------------------------------------------


def summarize(runs, metric="test_acc") -> tuple[float, float]:
    """Mean and standard deviation (`normlab.stats.mean_sd`, ddof = 1; shown as 0 for a
    single run) of one metric over runs."""
    mean, sd, n = stats.mean_sd([getattr(run, metric) for run in runs])
    return mean, (sd if n > 1 else 0.0)


def results_table(columns: dict, quoted: dict | None = None, quoted_label="quoted", metric="test_acc") -> str:
    """A Markdown table with one row per condition and one column per experiment.

    ``columns`` maps a column title to ``{condition: [normlab.train.RunResult, ...]}``, or to a pair
    ``(that dict, metric name)`` to show another metric in that column (rows are the
    conditions in order of first appearance); each cell is the metric (default
    ``metric``) as mean ± std over seeds, "–" where a column lacks the condition.
    ``quoted`` (``{condition: number}``) adds a first column of numbers quoted from a
    seed document.
    """
    columns = {title: spec if isinstance(spec, tuple) else (spec, metric) for title, spec in columns.items()}
    rows = list(dict.fromkeys(name for results, _ in columns.values() for name in results))
    header = ["condition"] + ([quoted_label] if quoted is not None else []) + list(columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in rows:
        cells = [name]
        if quoted is not None:
            cells.append(f"{quoted[name]:.3f}" if name in quoted else "–")
        for results, column_metric in columns.values():
            if name in results:
                mean, spread = summarize(results[name], column_metric)
                cells.append(f"{mean:.3f} ± {spread:.3f}")
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_runs(runs_a, runs_b, metric="test_acc") -> stats.Verdict:
    """The course's verdict rule (`normlab.stats.compare`) on one metric of two lists of
    runs: paired by seed when both lists hold the same seeds (`normlab.train` gives the
    two arms of a seed the same split and mini-batch order), unpaired otherwise; δ = half a
    percentage point for accuracies (0.005 here, accuracies are fractions), 0 for the
    loss and the generalization gap."""
    values_a, values_b = _values(runs_a, metric), _values(runs_b, metric)
    paired = [run.seed for run in runs_a] == [run.seed for run in runs_b]
    delta = stats.ACCURACY_DELTA / 100 if metric.endswith("acc") else 0.0
    return stats.compare(values_a, values_b, higher_is_better=metric not in _LOWER_IS_BETTER,
                         min_effect=delta, paired=paired)


def difference(runs_a, runs_b, metric="test_acc") -> tuple[float, float]:
    """Mean of ``metric`` over ``runs_a`` minus that over ``runs_b``, and the standard error
    of that difference as the verdict rule takes it (`compare_runs`: paired by seed where
    the seeds match; nan with fewer than two runs in a condition)."""
    result = compare_runs(runs_a, runs_b, metric)
    return result.mean_a - result.mean_b, result.se


def verdict(name_a, runs_a, name_b, runs_b, metric="test_acc") -> str:
    """One sentence comparing two conditions with the course's verdict rule
    (`compare_runs`): the difference of means ± its standard error, and which is ahead
    when the difference exceeds the margin, max(2 SE, δ); otherwise "no clear winner"."""
    result = compare_runs(runs_a, runs_b, metric)
    diff = result.mean_a - result.mean_b
    what = {"test_acc": "test accuracy", "test_loss": "test loss", "gap": "generalization gap"}.get(metric, metric)
    if result.outcome == "n/a":
        return f"{what}: {name_a} − {name_b} = {diff:+.3f} → fewer than two seeds: no verdict"
    text = f"{what}: {name_a} − {name_b} = {diff:+.3f} ± {result.se:.3f} (margin {result.margin:.3f})"
    if result.outcome == "draw":
        return text + " → within the margin: no clear winner"
    return text + f" → {name_a if result.outcome == 'a' else name_b} ahead"


def _values(runs, metric):
    return [float(getattr(run, metric)) for run in runs]


def plot_batch_size_sweep(sweep: dict, figsize=(6.5, 3.4)):
    """Test error (%) against batch size, one line per norm, batch size decreasing to the
    right as in Wu & He's Figure 1; error bars are the std over seeds when there are
    several. Returns the Figure (one line per norm)."""
    fig, ax = plt.subplots(figsize=figsize)
    markers = {"batch": "o", "group": "s", "layer": "^", "none": "x", "instance": "D"}
    for norm, by_batch in sweep.items():
        batches = sorted(by_batch, reverse=True)
        stats = [summarize(by_batch[b]) for b in batches]
        error = [100 * (1 - mean) for mean, _ in stats]
        spread = [100 * s for _, s in stats]
        label = _TITLES.get(norm, norm) if norm != "none" else "no norm"
        ax.errorbar(range(len(batches)), error, yerr=spread if any(spread) else None,
                    marker=markers.get(norm, "o"), capsize=3, label=label)
    ax.set_xticks(range(len(batches)), [str(b) for b in batches])
    ax.set_xlabel("batch size (images per step)")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_measured_vs_quoted(results: dict, quoted: dict, quoted_title="quoted", measured_title="measured",
                            figsize=(9, 3.4)):
    """Two bar charts side by side: the quoted accuracies (left) and our measured test
    accuracy, mean ± std over seeds (right), for the conditions of ``results`` in order.

    The two panels have their own y-axes: quoted and measured numbers come from
    different data sets, so compare the *orderings*, not the values.
    """
    names = list(results)
    fig, (ax_quoted, ax_measured) = plt.subplots(1, 2, figsize=figsize)
    quoted_values = [quoted.get(name, np.nan) for name in names]
    ax_quoted.bar(range(len(names)), quoted_values, color="#999999")
    stats = [summarize(results[name]) for name in names]
    means = [m for m, _ in stats]
    ax_measured.bar(range(len(names)), means, yerr=[s for _, s in stats], capsize=3, color=_HIGHLIGHT)
    for ax, values, title in ((ax_quoted, quoted_values, quoted_title), (ax_measured, means, measured_title)):
        finite = [v for v in values if np.isfinite(v)]
        low, high = min(finite), max(finite)
        margin = max(0.02, 0.25 * (high - low))
        ax.set_ylim(max(0.0, low - margin), min(1.0, high + margin))
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(title, fontsize=11)
        ax.set_ylabel("accuracy")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------


def dropout_keep_masks(layer_sizes=(5, 7, 7, 3), p=0.5, seed=2) -> list:
    """One dropout mask per layer of a fully connected network: a boolean array per layer,
    True where the unit is kept (each hidden unit with probability 1 - p, drawn from a
    generator seeded with ``seed``; inputs and outputs are always kept)."""
    rng = np.random.default_rng(seed)
    kept = [np.ones(n, dtype=bool) for n in layer_sizes]
    for layer in range(1, len(layer_sizes) - 1):
        kept[layer] = rng.random(layer_sizes[layer]) >= p
    return kept


def plot_thinned_network(kept, p=0.5, figsize=(8, 3.2)):
    """A fully connected network before (left) and after (right) one dropout mask on its
    hidden layers: dropped units crossed out, their connections removed. ``kept`` is
    `dropout_keep_masks` (one boolean array per layer); ``p`` labels the right panel.
    Returns the Figure.
    """
    layer_sizes = [len(k) for k in kept]
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    for ax, mask, title in ((axes[0], None, "standard network"),
                            (axes[1], kept, f"after dropout (p = {p})")):
        _draw_network(ax, layer_sizes, mask)
        ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def _draw_network(ax, layer_sizes, kept):
    tallest = max(layer_sizes)
    positions = [np.linspace(-(n - 1) / 2, (n - 1) / 2, n) * (tallest / max(n, 1)) ** 0.3
                 for n in layer_sizes]
    for layer in range(len(layer_sizes) - 1):
        for i, y0 in enumerate(positions[layer]):
            for j, y1 in enumerate(positions[layer + 1]):
                if kept is None or (kept[layer][i] and kept[layer + 1][j]):
                    ax.plot([layer, layer + 1], [y0, y1], color="#888888", lw=0.6, zorder=1)
    for layer, ys in enumerate(positions):
        for i, y in enumerate(ys):
            alive = kept is None or kept[layer][i]
            ax.scatter(layer, y, s=220, zorder=2, edgecolor="black",
                       color=_HIGHLIGHT if alive else "white")
            if not alive:
                ax.scatter(layer, y, s=120, marker="x", color="#c0392b", zorder=3, linewidths=2)
    ax.set_xlim(-0.4, len(layer_sizes) - 0.6)
    ax.axis("off")


def plot_variance_shift(variances: dict, figsize=(8, 3.2)):
    """Grouped bars per BN layer: the input variance in training, the stored running
    variance, and the variance met at test time; one panel per model in
    ``variances`` (``{title: [normlab.train.BatchNormInputVariance, ...]}``)."""
    fig, axes = plt.subplots(1, len(variances), figsize=figsize, squeeze=False, sharey=True)
    width = 0.27
    for ax, (title, layers) in zip(axes[0], variances.items()):
        idx = np.arange(len(layers))
        ax.bar(idx - width, [v.train_var for v in layers], width, label="training (dropout on)", color="#e67e22")
        ax.bar(idx, [v.running_var for v in layers], width, label="running_var (BN uses at test)",
               color="#999999")
        ax.bar(idx + width, [v.test_var for v in layers], width, label="test (dropout off)", color=_HIGHLIGHT)
        ax.set_xticks(idx, [f"BN {v.layer + 1}" for v in layers])
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("variance of BN input")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


