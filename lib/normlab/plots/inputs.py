r"""Figures and helpers of lectures 01 (input normalization) and 02 (batch norm forward).

Three topics:

* **Loss surfaces of a linear model.** The least-squares loss of a linear model is a
  quadratic,

  .. math::
      L(w) = \frac{1}{2n}\lVert Xw - y\rVert^2 = \tfrac12 w^\top H w - g^\top w + c,
      \qquad H = \tfrac1n X^\top X,\quad g = \tfrac1n X^\top y,

  whose level sets are ellipses with axis ratio :math:`\sqrt{\kappa}`,
  :math:`\kappa = \lambda_{\max}(H)/\lambda_{\min}(H)`. Gradient descent
  :math:`w \leftarrow w - \eta\,(Hw - g)` is stable only for
  :math:`\eta < 2/\lambda_{\max}` and then needs about :math:`\kappa` steps:
  `QuadraticLoss`, `gradient_descent`, `learning_rate_sweep`, `plot_loss_contours`.
* **Hidden layers' inputs during training** ("internal covariate shift"):
  `normlab.train.record_layer_inputs` measures, `drift_summary` and
  `plot_layer_input_drift` summarize and draw.
* **Which entries share batch-norm statistics**: `statistic_groups`,
  `plot_batchnorm_statistics`. Also `plot_curves` for a few learning curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

if TYPE_CHECKING:
    from normlab.train import LayerInputRecord

__all__ = [
    "QuadraticLoss",
    "gradient_descent",
    "SweepResult",
    "learning_rate_sweep",
    "plot_loss_contours",
    "plot_curves",
    "drift_summary",
    "plot_layer_input_drift",
    "statistic_groups",
    "plot_batchnorm_statistics",
]


# --------------------------------------------------------------------------------------
# Quadratic losses and gradient descent
# --------------------------------------------------------------------------------------


@dataclass
class QuadraticLoss:
    r"""The least-squares loss of a linear model without intercept,
    :math:`L(w) = \frac{1}{2n}\lVert Xw - y\rVert^2 = \tfrac12 w^\top H w - g^\top w + c`.

    Build it with `from_data`. ``hessian`` is H = XᵀX/n (d, d), ``linear`` is
    g = Xᵀy/n (d,), ``constant`` is c = yᵀy/(2n).
    """

    hessian: np.ndarray
    linear: np.ndarray
    constant: float

    @classmethod
    def from_data(cls, x, y) -> "QuadraticLoss":
        """The loss of ŷ = x @ w on data x (n, d) with targets y (n,), in float64."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"expected x of shape (n, d) and y of shape (n,), got {x.shape} and {y.shape}")
        n = x.shape[0]
        return cls(x.T @ x / n, x.T @ y / n, float(y @ y / (2 * n)))

    def __call__(self, w) -> np.ndarray:
        """L(w) for one weight vector (d,) or a stack of them (..., d)."""
        w = np.asarray(w, dtype=np.float64)
        return 0.5 * np.einsum("...i,ij,...j->...", w, self.hessian, w) - w @ self.linear + self.constant

    def gradient(self, w) -> np.ndarray:
        """∇L(w) = H w − g, for (d,) or (..., d)."""
        return np.asarray(w, dtype=np.float64) @ self.hessian - self.linear

    @property
    def minimizer(self) -> np.ndarray:
        """w* = H⁻¹ g."""
        return np.linalg.solve(self.hessian, self.linear)

    def gap(self, w) -> np.ndarray:
        """L(w) − L(w*) = ½ (w − w*)ᵀ H (w − w*), exact (no cancellation)."""
        e = np.asarray(w, dtype=np.float64) - self.minimizer
        return 0.5 * np.einsum("...i,ij,...j->...", e, self.hessian, e)

    @property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of H, ascending: the curvatures along the ellipses' axes."""
        return np.linalg.eigvalsh(self.hessian)

    @property
    def condition_number(self) -> float:
        """κ = λ_max / λ_min; the contours' axis ratio is √κ."""
        eigenvalues = self.eigenvalues
        return float(eigenvalues[-1] / eigenvalues[0])

    @property
    def largest_stable_lr(self) -> float:
        """2 / λ_max: gradient descent diverges along the steepest axis for η above it."""
        return float(2.0 / self.eigenvalues[-1])


def gradient_descent(loss: QuadraticLoss, w0, lr: float, steps: int) -> np.ndarray:
    """The path of w ← w − lr · ∇L(w) from w0: an array (steps + 1, d), w0 first."""
    path = [np.asarray(w0, dtype=np.float64)]
    for _ in range(steps):
        path.append(path[-1] - lr * loss.gradient(path[-1]))
    return np.stack(path)


@dataclass
class SweepResult:
    """Gradient descent at each learning rate of a sweep.

    ``steps[i]`` is the first step at which the loss gap fell below ``tol`` times the
    initial gap (-1: not within ``max_steps``); ``diverged[i]`` says the gap grew past
    1e6 times the initial gap (or stopped being finite).
    """

    lrs: np.ndarray
    steps: np.ndarray
    diverged: np.ndarray
    tol: float
    max_steps: int

    @property
    def largest_stable_lr(self) -> float:
        """The largest learning rate of the sweep that did not diverge (nan if none)."""
        stable = self.lrs[~self.diverged]
        return float(stable.max()) if stable.size else math.nan

    @property
    def best_lr(self) -> float:
        """The learning rate that converged in the fewest steps (nan if none converged)."""
        return float(self.lrs[self._best]) if self._best is not None else math.nan

    @property
    def best_steps(self) -> int:
        """Fewest steps to converge over the sweep; -1 if no rate converged."""
        return int(self.steps[self._best]) if self._best is not None else -1

    @property
    def _best(self):
        converged = np.flatnonzero(self.steps > 0)
        return converged[np.argmin(self.steps[converged])] if converged.size else None


def learning_rate_sweep(loss: QuadraticLoss, w0, lrs, tol=1e-4, max_steps=10_000) -> SweepResult:
    """Run gradient descent from w0 at every learning rate in ``lrs`` (all at once) and
    count the steps until :math:`L(w_k) - L^* \\le \\text{tol}\\,(L(w_0) - L^*)`.

    A run whose gap exceeds 1e6 times the initial gap is marked diverged and frozen.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    hessian, minimizer = loss.hessian, loss.minimizer
    error = np.tile(np.asarray(w0, dtype=np.float64) - minimizer, (len(lrs), 1))  # w - w*
    gap0 = float(loss.gap(w0))
    steps = np.full(len(lrs), -1)
    diverged = np.zeros(len(lrs), dtype=bool)
    step_sizes = lrs.copy()  # set to 0 once a run has converged or diverged
    for step in range(1, max_steps + 1):
        curvature_times_error = error @ hessian
        error -= step_sizes[:, None] * curvature_times_error  # gradient = H (w - w*)
        gap = 0.5 * np.einsum("ij,ij->i", error @ hessian, error)
        running = step_sizes > 0
        blew_up = running & ~(gap <= 1e6 * gap0)  # also catches nan
        diverged |= blew_up
        steps[running & ~blew_up & (gap <= tol * gap0)] = step
        step_sizes[blew_up | (steps > 0)] = 0.0
        if not step_sizes.any():
            break
    return SweepResult(lrs, steps, diverged, tol, max_steps)


def plot_loss_contours(losses: dict, paths: dict | None = None, figsize=(9, 3.4), levels=8):
    """One panel per loss: contours of L(w) − L* around the minimizer (equal axis scales,
    so the ellipses have their true shape), the gradient descent path on top.

    ``losses``: title -> `QuadraticLoss` of two weights; ``paths``: title -> array
    (steps + 1, 2). Contour levels are geometric in the gap, so a round bowl shows
    evenly spaced circles. Returns the Figure.
    """
    paths = paths or {}
    fig, axes = plt.subplots(1, len(losses), figsize=figsize, squeeze=False)
    for ax, (title, loss) in zip(axes[0], losses.items()):
        center = loss.minimizer
        path = paths.get(title)
        points = np.vstack([center[None], path]) if path is not None else center[None]
        radius = 1.1 * max(np.abs(points - center).max(), 1e-12)
        grid = np.linspace(-radius, radius, 201)
        w1, w2 = np.meshgrid(center[0] + grid, center[1] + grid)
        gap = loss.gap(np.stack([w1, w2], axis=-1))
        top = gap.max() if path is None else max(float(loss.gap(path[0])), gap.min() * 10)
        ax.contour(w1, w2, gap, levels=np.geomspace(top * 1e-3, top, levels), colors="0.6",
                   linewidths=0.8)
        if path is not None:
            ax.plot(path[:, 0], path[:, 1], "o-", color="C3", markersize=2.5, linewidth=1)
        ax.plot(*center, "k*", markersize=9)
        ax.set_aspect("equal")
        ax.set_xlim(center[0] - radius, center[0] + radius)
        ax.set_ylim(center[1] - radius, center[1] + radius)
        steps = f", {len(path) - 1} GD steps" if path is not None else ""
        ax.set_title(f"{title}\nκ = {loss.condition_number:,.0f}{steps}", fontsize=10)
        ax.set_xlabel("$w_1$")
        ax.set_ylabel("$w_2$")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def plot_curves(curves: dict, xlabel="epoch", ylabel="training loss", logy=True, figsize=(7, 3.5)):
    """A few learning curves on one axis: label -> sequence of values. Returns the Figure."""
    fig, ax = plt.subplots(figsize=figsize)
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# The inputs of hidden layers during training
# --------------------------------------------------------------------------------------


def drift_summary(record: LayerInputRecord) -> list:
    r"""How far each layer's input distribution moved from the first to the last record.

    For each Linear layer k a dict with

    * ``mean_shift``: :math:`\overline{|\mu_T - \mu_0|} / \overline{\sigma_0}` — the
      average move of the units' means, in units of their average initial spread;
    * ``std_ratio``: :math:`\overline{\sigma_T} / \overline{\sigma_0}` — how much the
      spread grew (1: unchanged).
    """
    summary = []
    for k, (means, stds) in enumerate(zip(record.means, record.stds)):
        spread0 = max(stds[0].mean(), 1e-12)
        summary.append({
            "layer": k + 1,
            "mean_shift": float(np.abs(means[-1] - means[0]).mean() / spread0),
            "std_ratio": float(stds[-1].mean() / spread0),
        })
    return summary


def plot_layer_input_drift(record: LayerInputRecord, units=6, figsize=(9, 4)):
    """Mean (top row) and standard deviation (bottom row) over the probe batch of the
    first ``units`` input units of each Linear layer, against the training step.
    One column per layer; layer 1's input is the data. Returns the Figure."""
    layers = len(record.means)
    fig, axes = plt.subplots(2, layers, figsize=figsize, sharex=True, squeeze=False)
    for k in range(layers):
        for row, values, what in ((0, record.means[k], "mean"), (1, record.stds[k], "std")):
            ax = axes[row, k]
            ax.plot(record.steps, values[:, :units], linewidth=1)
            ax.tick_params(labelsize=7)
            if k == 0:
                ax.set_ylabel(f"input {what}\nper unit", fontsize=9)
            if row == 0:
                ax.set_title("layer 1 input (data)" if k == 0 else f"layer {k + 1} input", fontsize=10)
            else:
                ax.set_xlabel("training step", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Which entries share batch-norm statistics
# --------------------------------------------------------------------------------------


def statistic_groups(shape, axes) -> np.ndarray:
    """An integer array of ``shape``: entries with the same number share one mean and
    one variance when the statistics are taken over ``axes``.

    Batch norm reduces over every axis but 1, so ``statistic_groups((N, C, H, W),
    (0, 2, 3))`` numbers each entry by its channel.
    """
    shape = tuple(shape)
    axes = tuple(a % len(shape) for a in axes)
    kept = [n if a not in axes else 1 for a, n in enumerate(shape)]
    ids = np.arange(int(np.prod(kept))).reshape(kept)
    return np.broadcast_to(ids, shape).copy()


def plot_batchnorm_statistics(batch=4, features=5, channels=3, height=3, width=3, figsize=(9, 3.6)):
    """Which entries batch norm averages together, in colour.

    Left: a (N, D) batch of vectors — each column (feature) has its own μ and σ².
    Right: a (N, C, H, W) batch of images drawn as N rows of C small H×W maps — all
    N·H·W entries of one channel share one μ and σ². Returns the Figure; each panel's
    image holds the group numbers of `statistic_groups`.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, gridspec_kw={"width_ratios": [1, 1.6]})
    vector_groups = statistic_groups((batch, features), (0,))
    colors = ListedColormap(plt.get_cmap("tab10").colors[:max(features, channels)])
    left.imshow(vector_groups, cmap=colors, vmin=-0.5, vmax=colors.N - 0.5)
    left.set_title(f"BatchNorm1d: ({batch}, {features})\none μ, σ² per column", fontsize=10)
    left.set_xticks(range(features), [f"j={j}" for j in range(features)], fontsize=8)
    left.set_yticks(range(batch), [f"i={i}" for i in range(batch)], fontsize=8)
    _grid_lines(left, batch, features, 1, 1)

    image_groups = statistic_groups((batch, channels, height, width), (0, 2, 3))
    gap = 1  # blank pixels between maps
    canvas = np.full((batch * (height + gap) - gap, channels * (width + gap) - gap), np.nan)
    for i in range(batch):
        for c in range(channels):
            top, start = i * (height + gap), c * (width + gap)
            canvas[top:top + height, start:start + width] = image_groups[i, c]
    right.imshow(canvas, cmap=colors, vmin=-0.5, vmax=colors.N - 0.5)
    right.set_title(f"BatchNorm2d: ({batch}, {channels}, {height}, {width})\n"
                    f"one μ, σ² per channel, over N·H·W = {batch * height * width} values", fontsize=10)
    right.set_xticks([c * (width + gap) + (width - 1) / 2 for c in range(channels)],
                     [f"channel {c}" for c in range(channels)], fontsize=8)
    right.set_yticks([i * (height + gap) + (height - 1) / 2 for i in range(batch)],
                     [f"sample {i}" for i in range(batch)], fontsize=8)
    for spine in right.spines.values():
        spine.set_visible(False)
    for i in range(batch):  # thin white lines between the pixels of each map
        for c in range(channels):
            top, start = i * (height + gap) - 0.5, c * (width + gap) - 0.5
            for r in range(1, height):
                right.plot([start, start + width], [top + r, top + r], color="white", linewidth=0.8)
            for col in range(1, width):
                right.plot([start + col, start + col], [top, top + height], color="white", linewidth=0.8)
    fig.tight_layout()
    return fig


def _grid_lines(ax, rows, cols, row_step, col_step):
    for r in np.arange(-0.5, rows, row_step):
        ax.axhline(r, color="white", linewidth=1.5)
    for c in np.arange(-0.5, cols, col_step):
        ax.axvline(c, color="white", linewidth=1.5)
