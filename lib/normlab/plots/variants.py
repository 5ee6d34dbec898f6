r"""Figures and quick experiments of the lectures on normalization variants (05) and dropout (06).

**Which entries share a mean and a variance.** Batch, layer, instance and group norm all
compute :math:`\mu = \frac1m\sum_{S} x` and :math:`\sigma^2 = \frac1m\sum_{S}(x-\mu)^2` over
a set :math:`S` of entries of an (N, C, H, W) feature map and differ only in :math:`S`.
`shared_statistics_mask` finds :math:`S` *by running* `normlab.functional`: it adds a
constant to one entry and records which outputs change. Adding a constant to one member
of :math:`S` moves :math:`\mu` and :math:`\sigma^2` of :math:`S`, so every output in
:math:`S` changes and nothing else does. `plot_normalization_cube` draws these sets as in
Wu & He (2018), *Group Normalization*, Figure 2.

**Quick experiments.** `train_and_test` trains one freshly built model with
`normlab.train.fit` and measures it on the test split; `compare_conditions` repeats that
over seeds for named conditions; `summarize` and `results_table` turn the runs into
mean ± standard deviation (over seeds, ddof = 1) next to numbers quoted from the seeds.
`verdict` says whether two conditions differ by more than the seed-to-seed noise.
`batch_size_sweep` and `plot_batch_size_sweep` measure test error against batch size;
`plot_measured_vs_quoted` puts a quoted table and our measurement side by side.

**Dropout.** `dropout_forward_not_inverted` is the original dropout (no scaling in
training, multiply by the keep probability at test time), to compare with the inverted
`normlab.functional.dropout_forward`. `plot_thinned_network` draws one dropout mask on a
small network. For the variance shift between dropout and batch norm:
`mlp_with_dropout_after_bn` (dropout only after the last BN), `bn_input_variances`
(the variance a BN layer's input has in training vs at test time vs what BN stored),
`plot_variance_shift`, and `recalibrate_batchnorm` (recompute BN's running statistics
with dropout switched off).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgba
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from torch import nn

from normlab import _checks, functional, models, train

__all__ = [
    "NORMALIZATIONS",
    "CAFFENET_BN_POSITION",
    "CAFFENET_BN_ACTIVATIONS",
    "CAFFENET_BN_DROPOUT",
    "shared_statistics_mask",
    "plot_normalization_cube",
    "RunResult",
    "train_and_test",
    "compare_conditions",
    "summarize",
    "results_table",
    "difference",
    "verdict",
    "batch_size_sweep",
    "plot_batch_size_sweep",
    "plot_measured_vs_quoted",
    "dropout_forward_not_inverted",
    "plot_thinned_network",
    "mlp_with_dropout_after_bn",
    "BatchNormInputVariance",
    "bn_input_variances",
    "plot_variance_shift",
    "recalibrate_batchnorm",
    "with_recalibrated_batchnorm",
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


def plot_normalization_cube(num_samples=6, num_channels=6, num_positions=6, num_groups=2,
                            figsize=(9, 2.8)):
    """Wu & He's Figure 2: one (N, C, H*W) box per normalization, the entries that share
    one mean and variance in blue (computed by `shared_statistics_mask`).

    Batch norm: one channel, all samples and positions. Layer norm: one sample, all
    channels and positions. Instance norm: one sample and one channel. Group norm: one
    sample and one group of C / num_groups channels. Returns the Figure; its
    ``masks`` attribute holds the four boolean arrays by name.
    """
    fig = plt.figure(figsize=figsize)
    masks = {}
    for i, kind in enumerate(NORMALIZATIONS):
        # the last channel and the first sample lie on the two faces facing the viewer
        mask = shared_statistics_mask(kind, num_samples, num_channels, num_positions, num_groups,
                                      sample=0, channel=num_channels - 1)
        masks[kind] = mask
        ax = fig.add_subplot(1, len(NORMALIZATIONS), i + 1, projection="3d")
        title = _TITLES[kind] + (f" (G={num_groups})" if kind == "group" else "")
        _draw_cube(ax, mask, title)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.02, top=0.92, wspace=0.05)
    fig.masks = masks
    return fig


# --------------------------------------------------------------------------------------
# Quick experiments: train, test, repeat over seeds, tabulate
# --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One trained model and what it measured (accuracies in [0, 1], mean cross-entropy).

    ``train_acc`` is measured after training in eval mode on the train split (so
    ``train_acc - test_acc`` is the generalization gap); ``seconds`` is the training time.
    """

    test_acc: float
    test_loss: float
    train_acc: float
    seconds: float
    diverged: bool
    model: nn.Module

    @property
    def gap(self) -> float:
        """Generalization gap: train accuracy minus test accuracy."""
        return self.train_acc - self.test_acc


def train_and_test(build_model: Callable[[], nn.Module], splits, *, batch_size=64, epochs=5, lr=0.01,
                   seed=0, **fit_kwargs) -> RunResult:
    """Seed torch with ``seed``, build a fresh model, train it with `normlab.train.fit`
    (SGD with Nesterov momentum; no progress bar) and evaluate it on the test split.

    ``splits`` is a `normlab.data.DataSplits`; ``fit_kwargs`` go to ``train.fit``.
    """
    torch.manual_seed(seed)
    model = build_model()
    train_loader, val_loader, test_loader = splits.loaders(batch_size, seed=seed, eval_batch_size=512)
    start = time.perf_counter()
    history = train.fit(model, train_loader, val_loader, epochs=epochs, lr=lr, seed=seed, progress=False,
                        **fit_kwargs)
    seconds = time.perf_counter() - start
    test_loss, test_acc = train.evaluate(model, test_loader)
    train_eval_loader = splits.loaders(512, shuffle=False)[0]
    _, train_acc = train.evaluate(model, train_eval_loader)
    return RunResult(test_acc, test_loss, train_acc, seconds, history.diverged, model)


def compare_conditions(conditions: dict, splits, seeds=(0, 1, 2), **train_kwargs) -> dict:
    """Run `train_and_test` for every condition and seed.

    ``conditions`` maps a name to a zero-argument model builder, or to a pair
    ``(builder, overrides)`` whose dict ``overrides`` replaces some of ``train_kwargs``
    (e.g. a batch size) for that condition. Returns ``{name: [RunResult per seed]}``.
    """
    results = {}
    for name, condition in conditions.items():
        builder, overrides = condition if isinstance(condition, tuple) else (condition, {})
        results[name] = [train_and_test(builder, splits, seed=seed, **{**train_kwargs, **overrides})
                         for seed in seeds]
    return results


def summarize(runs, metric="test_acc") -> tuple[float, float]:
    """Mean and standard deviation (ddof = 1; 0 for a single run) of one metric over runs."""
    values = np.array([getattr(run, metric) for run in runs], dtype=float)
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), spread


def results_table(columns: dict, quoted: dict | None = None, quoted_label="quoted", metric="test_acc") -> str:
    """A Markdown table with one row per condition and one column per experiment.

    ``columns`` maps a column title to ``{condition: [RunResult, ...]}``, or to a pair
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


def difference(runs_a, runs_b, metric="test_acc") -> tuple[float, float]:
    r"""Mean of ``metric`` over ``runs_a`` minus that over ``runs_b``, and the standard error
    of that difference, :math:`\sqrt{s_a^2/n_a + s_b^2/n_b}` (s: std over seeds)."""
    (mean_a, std_a), (mean_b, std_b) = summarize(runs_a, metric), summarize(runs_b, metric)
    return mean_a - mean_b, math.sqrt(std_a**2 / len(runs_a) + std_b**2 / len(runs_b))


def verdict(name_a, runs_a, name_b, runs_b, metric="test_acc") -> str:
    """One sentence comparing two conditions: the difference of means ± its standard error,
    and which is ahead when the difference exceeds two standard errors (a rough rule
    for a handful of seeds, not a significance test); otherwise "no clear winner"."""
    diff, stderr = difference(runs_a, runs_b, metric)
    what = {"test_acc": "test accuracy", "test_loss": "test loss", "gap": "generalization gap"}.get(metric, metric)
    text = f"{what}: {name_a} − {name_b} = {diff:+.3f} ± {stderr:.3f}"
    if abs(diff) <= 2 * stderr:
        return text + " → within the seed-to-seed noise: no clear winner"
    higher_is_better = metric not in _LOWER_IS_BETTER
    ahead = name_a if (diff > 0) == higher_is_better else name_b
    return text + f" → {ahead} ahead"


def batch_size_sweep(norms, batch_sizes, splits, *, seeds=(0,), epochs=3, base_lr=0.1, reference_batch=64,
                     hidden=(128, 128), num_groups=8) -> dict:
    r"""Train `normlab.models.mlp` with each norm at each batch size; returns
    ``{norm: {batch_size: [RunResult per seed]}}``.

    Every run sees the same number of epochs, and the learning rate follows the linear
    scaling rule used by Wu & He: :math:`\eta = \eta_0 \cdot B / B_0` with
    ``base_lr`` :math:`\eta_0` at ``reference_batch`` :math:`B_0`.
    """
    in_features = int(np.prod(splits.input_shape))
    sweep = {}
    for norm in norms:
        def build(norm=norm):
            return models.mlp(in_features, splits.num_classes, hidden=hidden, norm=norm, num_groups=num_groups)
        sweep[norm] = {
            batch: [train_and_test(build, splits, batch_size=batch, epochs=epochs,
                                   lr=base_lr * batch / reference_batch, seed=seed) for seed in seeds]
            for batch in batch_sizes
        }
    return sweep


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


def dropout_forward_not_inverted(x, p, train=True, rng=None):
    """The original (non-inverted) dropout of Srivastava et al.: in training keep each
    unit with probability q = 1 - p and do *not* rescale, out = x * mask, so
    E[out] = q x; at test time out = q x, matching that expectation.

    Compare `normlab.functional.dropout_forward` (inverted): out = x * mask / q in
    training, E[out] = x, and the identity at test time.
    """
    _checks.check_floating(x)
    _checks.check_dropout_p(p)
    keep = 1.0 - p
    if not train:
        return x * keep
    rng = rng if rng is not None else np.random.default_rng()
    return x * (rng.random(x.shape) < keep)


def plot_thinned_network(layer_sizes=(5, 7, 7, 3), p=0.5, seed=2, figsize=(8, 3.2)):
    """A fully connected network before (left) and after (right) one dropout mask on its
    hidden layers: dropped units crossed out, their connections removed.

    Returns the Figure; its ``kept`` attribute lists one boolean array per layer
    (inputs and outputs are always kept).
    """
    rng = np.random.default_rng(seed)
    kept = [np.ones(n, dtype=bool) for n in layer_sizes]
    for layer in range(1, len(layer_sizes) - 1):
        kept[layer] = rng.random(layer_sizes[layer]) >= p
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    for ax, mask, title in ((axes[0], None, "standard network"),
                            (axes[1], kept, f"after dropout (p = {p})")):
        _draw_network(ax, layer_sizes, mask)
        ax.set_title(title, fontsize=11)
    fig.tight_layout()
    fig.kept = kept
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


def mlp_with_dropout_after_bn(in_features, num_classes, dropout, hidden=(128, 128), **mlp_kwargs) -> nn.Sequential:
    """`normlab.models.mlp` with batch norm in every hidden layer and one dropout layer
    only after the last BN block, right before the output layer (Li et al. 2019's
    remedy): no BN ever sees dropped-out inputs, so there is no variance shift."""
    model = models.mlp(in_features, num_classes, hidden=hidden, norm="batch", dropout=0.0, **mlp_kwargs)
    model.insert(len(model) - 1, nn.Dropout(dropout))
    return model


_BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)


@dataclass(frozen=True)
class BatchNormInputVariance:
    r"""What one BN layer's input looks like, each a mean over its features.

    ``train_var``: variance over the batch with the model in training mode (dropout on);
    ``test_var``: the same in eval mode (dropout off), i.e. what the layer meets at test
    time; ``running_var``: the variance BN stored during training and uses at test time.
    ``shift`` = running_var / test_var: 1 means no variance shift; above 1, BN divides
    test-time inputs by too large a standard deviation.
    """

    layer: int
    train_var: float
    test_var: float
    running_var: float

    @property
    def shift(self) -> float:
        return self.running_var / self.test_var


@torch.no_grad()
def bn_input_variances(model: nn.Module, x: torch.Tensor, seed=0) -> list[BatchNormInputVariance]:
    """Variance of every BatchNorm layer's input over the batch ``x``, measured once with
    the model in training mode (dropout active) and once in eval mode, next to the
    layer's ``running_var``. The model itself is not changed (training mode runs on a
    copy, so its running statistics stay as they were)."""
    batchnorms = [m for m in model.modules() if isinstance(m, _BATCHNORMS)]

    def input_variances(net, training):
        captured = []
        hooks = [bn.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
                 for bn in net.modules() if isinstance(bn, _BATCHNORMS)]
        net.train(training)
        torch.manual_seed(seed)
        net(x)
        for hook in hooks:
            hook.remove()
        return [float(_feature_variance(t).mean()) for t in captured]

    train_vars = input_variances(copy.deepcopy(model), training=True)
    was_training = model.training
    test_vars = input_variances(model, training=False)
    model.train(was_training)
    return [BatchNormInputVariance(i, tv, ev, float(bn.running_var.mean()))
            for i, (bn, tv, ev) in enumerate(zip(batchnorms, train_vars, test_vars))]


def _feature_variance(t: torch.Tensor) -> torch.Tensor:
    """Unbiased variance per feature/channel over every axis but 1 (what BN stores)."""
    dims = (0,) + tuple(range(2, t.ndim))
    return t.var(dim=dims, correction=1)


def plot_variance_shift(variances: dict, figsize=(8, 3.2)):
    """Grouped bars per BN layer: the input variance in training, the stored running
    variance, and the variance met at test time; one panel per model in
    ``variances`` (``{title: [BatchNormInputVariance, ...]}``)."""
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


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size=256) -> nn.Module:
    """Recompute every BN layer's running mean and variance on ``x`` with the rest of the
    model in eval mode (dropout off): reset the statistics, then run the batches with BN
    in training mode and ``momentum=None`` (a cumulative average). Returns the model in
    eval mode; its weights are unchanged."""
    model.eval()
    batchnorms = [m for m in model.modules() if isinstance(m, _BATCHNORMS)]
    momenta = [bn.momentum for bn in batchnorms]
    for bn in batchnorms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    for start in range(0, len(x), batch_size):
        model(x[start:start + batch_size])
    for bn, momentum in zip(batchnorms, momenta):
        bn.momentum = momentum
    return model.eval()


def with_recalibrated_batchnorm(runs, splits, batch_size=256) -> list[RunResult]:
    """Copies of ``runs`` whose models had their BN statistics recomputed on the train
    split with dropout off (`recalibrate_batchnorm`), re-evaluated on the test split and
    the train split. The weights are the trained ones; the original models are untouched."""
    recalibrated = []
    test_loader = splits.loaders(512, shuffle=False)[2]
    train_loader = splits.loaders(512, shuffle=False)[0]
    for run in runs:
        model = recalibrate_batchnorm(copy.deepcopy(run.model), splits.x_train, batch_size)
        test_loss, test_acc = train.evaluate(model, test_loader)
        _, train_acc = train.evaluate(model, train_loader)
        recalibrated.append(dataclasses.replace(run, test_acc=test_acc, test_loss=test_loss, train_acc=train_acc,
                                                model=model))
    return recalibrated
