r"""Activations and gradients through the depth of an MLP, and weight norms through training.

**Through depth.** `activation_statistics` builds a deep `normlab.models.mlp` (``depth``
hidden layers of ``width`` units, a choice of activation, initialization and norm), sends
one batch through it in training mode (batch norm uses the batch's statistics, as at the
first training step) and records, for every hidden layer :math:`l = 1..L`, its output
:math:`h_l` (what the next Linear layer sees):

* the mean and standard deviation of :math:`h_l` over the batch and the units, and a
  histogram of its values;
* the fraction of its units that are *dead* on the batch: 0 for every sample (a ReLU
  unit whose pre-activation is never positive passes no gradient to its weights);
* after one backward pass of the cross-entropy loss, the gradient magnitudes
  :math:`\lVert \partial L / \partial W_l \rVert_F` (the weights of the Linear layer that
  produces :math:`h_l`), relative to :math:`\lVert W_l \rVert_F` (the size of an SGD step
  relative to the weights it changes), and :math:`\operatorname{std}(\partial L / \partial h_l)`.

The variance argument behind Xavier and Kaiming initialization is
:math:`\operatorname{Var}(z_j) = \text{fan\_in}\,\operatorname{Var}(w)\,\mathbb E[x^2]`
for :math:`z = Wx` with independent zero-mean weights; `plot_depth_profiles` shows where
it holds and where it fails, `plot_activation_histograms` shows the distributions.
Computations run in float64: an :math:`\mathcal N(0, 1)`-initialized ReLU net grows its
activations by about :math:`\sqrt{\text{width}/2}` per layer, past float32's range.

**Through training.** `normlab.train.fit_tracking_weight_norms` is a plain mini-batch SGD loop that
records :math:`\lVert W_l\rVert_F` of every hidden Linear layer after every epoch, the
raw material of the "BN likes weight decay" argument: a Linear layer followed by batch
norm is scale-invariant, so its gradient scales as :math:`1/\lVert W\rVert` and a step of
size :math:`\eta` turns its direction by an *effective* learning rate
:math:`\eta / \lVert W \rVert^2` (`normlab.train.WeightNormHistory.effective_lr`); `plot_weight_norms` draws it.

**The initialization scale, and diagnostics during training.** `plot_weight_scale_sweep`
draws `normlab.train.weight_scale_sweep` (CS231n's experiment: best validation accuracy
and final training loss against the scale of the initial weights); `plot_training_diagnostics`
draws `normlab.train.fit_with_diagnostics` (Karpathy's per-layer statistics at every step).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.ticker import PercentFormatter
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from normlab import models

__all__ = [
    "DepthStatistics",
    "activation_statistics",
    "plot_activation_histograms",
    "plot_depth_profiles",
    "plot_weight_norms",
    "plot_weight_scale_sweep",
    "plot_training_diagnostics",
]

# Output range of the bounded activations (used for fixed histogram bins).
_BOUNDED = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


# --------------------------------------------------------------------------------------
# Activations and gradients through depth
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthStatistics:
    """What `activation_statistics` measured, one entry per hidden layer l = 1..depth.

    ``means``, ``stds``: mean and standard deviation of the layer's output over the batch
    and all units. ``sample_stds``: the standard deviation over the batch, averaged over
    the units: how much the layer's output still differs from one input to the next
    (a layer whose units are all different constants has a large ``stds`` but
    ``sample_stds`` near 0: it has forgotten the input). ``hist_fractions`` (depth, bins): fraction of the output values in
    each bin (each row sums to 1); ``hist_edges`` (depth, bins + 1): the bins.
    ``fraction_zero``: fraction of output values exactly 0 (for ReLU: units switched off
    for that sample). ``fraction_dead``: fraction of the layer's units that are 0 for
    every sample of the batch (dead on this batch). ``weight_grad_norms``: Frobenius norm
    of dL/dW of the Linear layer producing the output; ``weight_norms``: Frobenius norm of
    that W; ``output_grad_stds``: std of dL/dh over batch and units.
    """

    activation: str
    init: str
    init_std: float
    norm: str
    means: np.ndarray
    stds: np.ndarray
    sample_stds: np.ndarray
    hist_fractions: np.ndarray
    hist_edges: np.ndarray
    fraction_zero: np.ndarray
    fraction_dead: np.ndarray
    weight_grad_norms: np.ndarray
    weight_norms: np.ndarray
    output_grad_stds: np.ndarray

    @property
    def depth(self) -> int:
        return len(self.means)

    @property
    def relative_grad_norms(self) -> np.ndarray:
        r""":math:`\lVert \partial L/\partial W_l\rVert_F / \lVert W_l\rVert_F`: how far one SGD
        step of learning rate 1 moves :math:`W_l`, relative to its size. Scaling the weights of
        a layer followed by batch norm by :math:`\alpha` scales its gradient by :math:`1/\alpha`,
        this ratio by :math:`1/\alpha^2`; when a layer not followed by BN (the output layer)
        is scaled too, the gradient reaching the layer grows with it (this ratio then scales
        about as :math:`1/\alpha`), while the raw gradient norm hardly changes."""
        return self.weight_grad_norms / self.weight_norms

    @property
    def label(self) -> str:
        """Short description, e.g. ``"tanh, Xavier, no norm"`` or ``"relu, N(0, 0.01²), BN"``."""
        init = {"kaiming": "Kaiming", "xavier": "Xavier"}.get(self.init)
        if init is None:
            init = f"N(0, {self.init_std:g}²)"
        norm = {"none": "no norm", "batch": "BN"}.get(self.norm, f"{self.norm} norm")
        return f"{self.activation}, {init}, {norm}"


def activation_statistics(depth=20, width=128, activation="tanh", init="xavier", init_std=1.0, norm="none",
                          norm_position="before", inputs=None, targets=None, num_samples=256,
                          num_classes=10, bins=40, seed=0) -> DepthStatistics:
    r"""Statistics of every hidden layer's output, and of the gradients, at initialization.

    The network is ``models.mlp(in_features, num_classes, hidden=(width,) * depth, norm=norm,
    norm_position=norm_position, activation=activation, init=init, init_std=init_std)``,
    built after ``torch.manual_seed(seed)`` and run in float64 in training mode.

    ``inputs``: an (N, in_features) batch (e.g. standardized digits); default ``num_samples``
    draws from :math:`\mathcal N(0, I_{\text{width}})`. ``targets``: N class labels for the
    cross-entropy loss whose gradients are measured; default: random labels (at
    initialization the labels carry no structure the network has learned anyway).

    Histogram bins: the output range of sigmoid (0, 1) or tanh (-1, 1) when that is the
    layer's last operation; otherwise from the smallest to the largest value of that layer.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth!r}, width={width!r}")
    generator = torch.Generator().manual_seed(seed)
    if inputs is None:
        inputs = torch.randn(num_samples, width, generator=generator, dtype=torch.float64)
    inputs = torch.as_tensor(inputs, dtype=torch.float64).reshape(len(inputs), -1)
    if targets is None:
        targets = torch.randint(num_classes, (len(inputs),), generator=generator)
    targets = torch.as_tensor(targets, dtype=torch.int64)
    if len(targets) != len(inputs):
        raise ValueError(f"got {len(inputs)} inputs but {len(targets)} targets")

    torch.manual_seed(seed)
    model = models.mlp(inputs.shape[1], num_classes, hidden=(width,) * depth, norm=norm,
                       norm_position=norm_position, activation=activation, init=init,
                       init_std=init_std).double().train()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    outputs = []  # h_1..h_depth: the inputs of Linear layers 2..depth+1

    def keep_input(_module, args):
        args[0].retain_grad()
        outputs.append(args[0])

    handles = [linear.register_forward_pre_hook(keep_input) for linear in linears[1:]]
    try:
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()

    bounded = _BOUNDED.get(activation) if norm == "none" or norm_position == "before" else None
    fractions, edges = zip(*(_histogram(h.detach().numpy().ravel(), bins, bounded) for h in outputs))
    return DepthStatistics(
        activation=activation, init=init, init_std=float(init_std), norm=norm,
        means=np.array([h.detach().mean().item() for h in outputs]),
        stds=np.array([h.detach().std().item() for h in outputs]),
        sample_stds=np.array([h.detach().std(dim=0).mean().item() for h in outputs]),
        hist_fractions=np.stack(fractions), hist_edges=np.stack(edges),
        fraction_zero=np.array([(h == 0).double().mean().item() for h in outputs]),
        fraction_dead=np.array([(h == 0).all(dim=0).double().mean().item() for h in outputs]),
        weight_grad_norms=np.array([linear.weight.grad.norm().item() for linear in linears[:-1]]),
        weight_norms=np.array([linear.weight.detach().norm().item() for linear in linears[:-1]]),
        output_grad_stds=np.array([h.grad.std().item() for h in outputs]),
    )


def _histogram(values, bins, bounds):
    """(fraction of values per bin, bin edges); the range is ``bounds`` or the values' own."""
    low, high = bounds if bounds is not None else (values.min(), values.max())
    if not high > low:  # all values equal (e.g. every unit dead): one bin around them
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return counts / len(values), edges


def _layers_to_show(depth, count):
    """``count`` layer numbers from 1 to depth, evenly spread, first and last included."""
    return sorted({int(round(x)) for x in np.linspace(1, depth, min(count, depth))})


def _label_lines(label):
    """'relu, N(0, 1²), no norm' -> ['relu', 'N(0, 1²)', 'no norm']: short lines for a row label."""
    first, _, rest = label.partition(", ")
    middle, _, last = rest.rpartition(", ")
    return [part for part in (first, middle, last) if part]


def plot_activation_histograms(stats, layers=None, row_labels=None, figsize=None):
    """Histograms of hidden-layer outputs: one row per `DepthStatistics` in ``stats``,
    one column per layer number in ``layers`` (1-based; default: 5 layers spread from the
    first to the last). Each panel gives the layer's standard deviation. Where more than
    10 % of a layer's values are exactly 0 (ReLU), the y-axis is cut above the other bins
    so the spike at 0 does not flatten them, and the panel says how many are 0.
    Returns the Figure (default size 9 inches wide, about 1 inch per row)."""
    stats = [stats] if isinstance(stats, DepthStatistics) else list(stats)
    layers = _layers_to_show(stats[0].depth, 5) if layers is None else list(layers)
    row_labels = [s.label for s in stats] if row_labels is None else list(row_labels)
    figsize = figsize or (9, 0.7 + 1.05 * len(stats))
    fig, axes = plt.subplots(len(stats), len(layers), figsize=figsize, squeeze=False)
    height = figsize[1]  # fixed margins in inches (tight_layout would draw the grid twice)
    fig.subplots_adjust(left=0.09, right=0.99, bottom=0.35 / height, top=1 - 0.35 / height,
                        wspace=0.15, hspace=0.6)
    for row, (s, row_label) in enumerate(zip(stats, row_labels)):
        for col, layer in enumerate(layers):
            ax = axes[row, col]
            fractions, edges = s.hist_fractions[layer - 1], s.hist_edges[layer - 1]
            ax.stairs(fractions, edges, fill=True, color=f"C{row}")
            note = f"σ = {s.stds[layer - 1]:.2g}"
            zero = s.fraction_zero[layer - 1]
            if zero > 0.1:
                others = np.delete(fractions, np.searchsorted(edges, 0.0, side="right") - 1)
                if others.max() > 0:
                    ax.set_ylim(0, 1.6 * others.max())
                note += f"\n{zero:.0%} at 0"
            ax.text(0.97, 0.93, note, transform=ax.transAxes, ha="right", va="top", fontsize=10,
                    bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=1))
            ax.set_yticks([])
            ax.locator_params(axis="x", nbins=3)
            ax.tick_params(labelsize=10)
            ax.xaxis.get_offset_text().set_fontsize(9)
            if row == 0:
                ax.set_title(f"layer {layer}", fontsize=12)
            if col == 0:
                ax.set_ylabel("\n".join(_label_lines(row_label)), fontsize=9)
    return fig


def plot_depth_profiles(stats, spread="stds", gradient="norms", figsize=(9, 3.8)):
    """Two panels, one line per `DepthStatistics`, against the layer number on log scales:
    the spread of each hidden layer's output and the gradient of its weights; the legend
    sits below. ``spread="stds"`` plots the standard deviation over batch and units,
    ``"sample_stds"`` the one over the batch only (how much the output still depends on
    the input). ``gradient="norms"`` plots ||dL/dW_l||, ``"relative"`` ||dL/dW_l|| / ||W_l||
    (`DepthStatistics.relative_grad_norms`: the step relative to the weights). Returns the Figure."""
    if spread not in ("stds", "sample_stds"):
        raise ValueError(f"spread must be 'stds' or 'sample_stds', got {spread!r}")
    if gradient not in ("norms", "relative"):
        raise ValueError(f"gradient must be 'norms' or 'relative', got {gradient!r}")
    stats = [stats] if isinstance(stats, DepthStatistics) else list(stats)
    fig, (ax_act, ax_grad) = plt.subplots(1, 2, figsize=figsize)
    tiny = np.finfo(float).tiny  # a std of exactly 0 cannot sit on a log axis
    for i, s in enumerate(stats):
        layer = np.arange(1, s.depth + 1)
        style = dict(color=f"C{i % 10}", marker="o", markersize=3, label=s.label)
        ax_act.plot(layer, np.maximum(getattr(s, spread), tiny), **style)
        grads = s.weight_grad_norms if gradient == "norms" else s.relative_grad_norms
        ax_grad.plot(layer, np.maximum(grads, tiny), **style)
    ylabel = "std of layer output" if spread == "stds" else "std over the batch"
    ax_act.set(yscale="log", xlabel="hidden layer", ylabel=ylabel, title="activations")
    for ax in (ax_act, ax_grad):  # show at least two decades, so that flat lines look flat
        values = np.concatenate([line.get_ydata() for line in ax.lines])
        low, high = values.min(), values.max()
        if high < 100 * low:
            middle = np.sqrt(low) * np.sqrt(high)
            ax.set_ylim(middle / 10, middle * 10)
    if gradient == "norms":
        ax_grad.set(ylabel=r"$\|\partial L/\partial W_l\|_F$", title="weight gradients")
    else:
        ax_grad.set(ylabel=r"$\|\partial L/\partial W_l\|_F \,/\, \|W_l\|_F$",
                    title="weight gradients relative to the weights")
    ax_grad.set(yscale="log", xlabel="hidden layer")
    columns = min(4, len(stats))
    rows = -(-len(stats) // columns)
    fig.legend(*ax_act.get_legend_handles_labels(), loc="lower center", ncol=columns, fontsize=8, frameon=False)
    legend_height = 0.25 * rows + 0.1  # inches; fixed margins instead of tight_layout (faster)
    fig.subplots_adjust(left=0.09, right=0.98, top=1 - 0.35 / figsize[1],
                        bottom=(legend_height + 0.5) / figsize[1], wspace=0.3)
    return fig


# --------------------------------------------------------------------------------------
# Weight norms through training
# --------------------------------------------------------------------------------------


def plot_weight_norms(histories, labels, layer=0, figsize=(9, 3.4)):
    r"""Two panels, one line per `WeightNormHistory`: :math:`\lVert W\rVert` of hidden layer
    ``layer`` (0-based) and the effective learning rate :math:`\eta/\lVert W\rVert^2`, both
    against the epoch. Histories given as lists (e.g. several seeds of one condition) are
    drawn as their mean with a min-max band. Returns the Figure."""
    fig, (ax_norm, ax_lr) = plt.subplots(1, 2, figsize=figsize)
    for i, (group, label) in enumerate(zip(histories, labels)):
        group = group if isinstance(group, (list, tuple)) else [group]
        for ax, values in ((ax_norm, [h.weight_norms[:, layer] for h in group]),
                           (ax_lr, [h.effective_lr[:, layer] for h in group])):
            values = np.array(values)
            epoch = np.arange(values.shape[1])
            ax.plot(epoch, values.mean(0), color=f"C{i}", label=label)
            if len(values) > 1:
                ax.fill_between(epoch, values.min(0), values.max(0), color=f"C{i}", alpha=0.2)
    ax_norm.set(xlabel="epoch", ylabel=r"$\|W\|_F$", title=f"weight norm, hidden layer {layer + 1}")
    ax_lr.set(xlabel="epoch", ylabel=r"$\eta / \|W\|_F^2$", title="effective learning rate")
    ax_norm.legend(fontsize=8)
    fig.tight_layout()
    return fig



# --------------------------------------------------------------------------------------
# The initialization scale, and diagnostics during training
# --------------------------------------------------------------------------------------

_NORM_NAMES = {"none": "no norm", "batch": "BN"}


def plot_weight_scale_sweep(sweep, reference_scale=None, reference_label="Kaiming", figsize=(9, 3.6)):
    r"""Two panels against the initial weights' scale (log axis), one line per norm of a
    `normlab.train.WeightScaleSweep`: the best validation accuracy (chance marked) and the
    final training loss (log axis; :math:`\ln 10`, the loss of a uniform guess over 10
    classes, marked). Lines are the mean over seeds, bands their min-max; nan losses are
    left out. ``reference_scale``: a dashed vertical line (e.g. Kaiming's
    :math:`\sqrt{2/\text{fan\_in}}`). Returns the Figure."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=figsize)
    for i, norm in enumerate(sweep.norms):
        style = dict(color=f"C{i}", marker="o", markersize=4, label=_NORM_NAMES.get(norm, norm))
        for ax, values in ((ax_acc, sweep.best_val_acc[norm]), (ax_loss, sweep.final_train_loss[norm])):
            with np.errstate(all="ignore"):
                ax.plot(sweep.scales, np.nanmean(values, axis=1), **style)
                ax.fill_between(sweep.scales, np.nanmin(values, axis=1), np.nanmax(values, axis=1),
                                color=f"C{i}", alpha=0.2, linewidth=0)
    ax_acc.axhline(0.1, color="gray", linestyle=":", linewidth=1)
    ax_acc.text(sweep.scales[0], 0.12, "chance", color="gray", fontsize=9)
    ax_loss.axhline(np.log(10), color="gray", linestyle=":", linewidth=1)
    ax_loss.text(sweep.scales[0], np.log(10) * 1.25, r"$\ln 10$ (uniform guess)", color="gray", fontsize=9)
    ax_acc.set(xscale="log", ylim=(0, 1), xlabel="weight scale $s$: $W \\sim \\mathcal{N}(0, s^2)$",
               ylabel="best validation accuracy", title="best validation accuracy")
    ax_loss.set(xscale="log", yscale="log", xlabel="weight scale $s$: $W \\sim \\mathcal{N}(0, s^2)$",
                ylabel="final training loss", title="final training loss")
    for ax in (ax_acc, ax_loss):
        if reference_scale is not None:
            ax.axvline(reference_scale, color="black", linestyle="--", linewidth=1)
        ax.tick_params(labelsize=10)
    if reference_scale is not None:
        ax_acc.text(reference_scale / 1.1, 0.02, reference_label, fontsize=9, ha="right")
    ax_loss.legend(fontsize=9, loc="upper left", title=f"mean, band: {len(sweep.seeds)} seeds", title_fontsize=9)
    fig.tight_layout()
    return fig


_DIAGNOSTICS = {
    "activation_means": "mean of $h_l$",
    "activation_stds": "std of $h_l$",
    "saturation": r"saturated: $|h_l| > 0.97$",
    "grad_to_data": r"$\mathrm{std}(\nabla W)\,/\,\mathrm{std}(W)$",
    "update_to_data": r"$\log_{10}\,\mathrm{std}(\eta\nabla W)/\mathrm{std}(W)$",
}


def plot_training_diagnostics(runs, labels, quantities=("activation_stds", "saturation"), smooth=10,
                              figsize=None):
    r"""Per-layer statistics through training, from `normlab.train.fit_with_diagnostics`:
    one row per quantity (a field of `normlab.train.TrainingDiagnostics`), one column per
    run, one line per layer (light = first, dark = last; "out" = output layer), against
    the step, as a running mean over ``smooth`` steps. Rows share their y-axis so runs
    compare. ``update_to_data`` marks Karpathy's rule of thumb :math:`10^{-3}` (dashed).
    Returns the Figure."""
    runs, labels, quantities = list(runs), list(labels), list(quantities)
    unknown = [q for q in quantities if q not in _DIAGNOSTICS]
    if unknown:
        raise ValueError(f"unknown quantities {unknown}; expected some of {list(_DIAGNOSTICS)}")
    figsize = figsize or (min(10, 1.2 + 2.9 * len(runs)), 0.9 + 1.75 * len(quantities))
    fig, axes = plt.subplots(len(quantities), len(runs), figsize=figsize, squeeze=False, sharey="row",
                             sharex=True)
    cmap = plt.get_cmap("viridis")
    for col, (run, label) in enumerate(zip(runs, labels)):
        for row, quantity in enumerate(quantities):
            ax = axes[row, col]
            values = getattr(run, quantity)
            count = values.shape[1]
            width = max(1, min(smooth, len(values)))
            kernel = np.ones(width) / width
            steps = np.arange(width - 1, len(values)) + 1
            for layer in range(count):
                smoothed = np.convolve(values[:, layer], kernel, mode="valid")
                is_output = quantity in ("grad_to_data", "update_to_data") and layer == count - 1
                name = "out" if is_output else f"layer {layer + 1}"
                color = "C3" if is_output else cmap(0.85 - 0.75 * layer / max(1, count - 1))
                ax.plot(steps, smoothed, color=color, linewidth=1.5, linestyle="--" if is_output else "-",
                        label=name)
            if quantity == "update_to_data":
                ax.axhline(-3, color="gray", linestyle=":", linewidth=1)
            if quantity == "saturation":
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            if row == 0:
                ax.set_title(label, fontsize=11)
            if col == 0:
                ax.set_ylabel(_DIAGNOSTICS[quantity], fontsize=10)
            if row == len(quantities) - 1:
                ax.set_xlabel("training step", fontsize=10)
            ax.tick_params(labelsize=9)
    handles, names = [], []
    for ax in axes[:, 0]:  # every layer name once (the gradient rows add the output layer)
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name not in names:
                handles.append(handle)
                names.append(name)
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9, frameon=False)
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - 0.4 / figsize[1], bottom=0.85 / figsize[1],
                        hspace=0.15, wspace=0.08)
    return fig
