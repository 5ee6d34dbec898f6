r"""Figures (and the small computations behind them) of the backward and inference lectures.

**The computational graph** of batch norm for one neuron and a minibatch of n (the UCLA
discussion sheet's practice problem, n = 2), in the sheet's scalar steps

.. math::
    \mu = \tfrac1n\textstyle\sum_i x_i,\quad a_i = x_i - \mu,\quad
    \sigma^2 = \tfrac1n\textstyle\sum_i a_i^2,\quad p_i = \frac{a_i}{\sqrt{\sigma^2+\epsilon}},
    \quad y_i = \gamma\,p_i + \beta,

and a loss L that receives the upstream gradients :math:`g_i = \partial L/\partial y_i`:
`batchnorm_graph_structure` gives the nodes and edges, `influence_edges` the routes from
one node to L, `draw_batchnorm_graph` draws them.

**How much gradient reaches the input.** At :math:`\epsilon = 0` the input gradient is
:math:`\partial L/\partial x = \frac{\gamma}{\sigma}\,P\,g`, with P the projection that
removes the components of g along :math:`\mathbf 1` and along :math:`\hat x`; two of the
n directions are lost, all of them when n = 2. `input_gradient_ratio` measures
:math:`\lVert \partial L/\partial x\rVert / \lVert g\rVert` against epsilon,
`plot_input_gradient_vs_eps` draws it.

**Running averages.** `running_average_curve` applies PyTorch's update
:math:`r \leftarrow (1-m)\,r + m\,b` batch after batch; `plot_running_averages` draws
such curves, `plot_running_vs_population` compares a network's running statistics with
the exact statistics of its training set.

**The forgotten ``eval()``** is measured in `normlab.train`: `normlab.train.train_mode_accuracy` measures what a model predicts when
it is (wrongly) left in training mode, so that every test batch is normalized with its
own statistics; `normlab.train.batch_mates_probabilities` shows one sample's prediction changing with
the other samples of its batch. Both work on a copy: the model's running statistics
are left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from normlab import functional

__all__ = [
    "GraphNode",
    "batchnorm_graph_structure",
    "descendants",
    "influence_edges",
    "draw_batchnorm_graph",
    "input_gradient_ratio",
    "plot_input_gradient_vs_eps",
    "running_average_curve",
    "plot_running_averages",
    "plot_running_vs_population",
]

# --------------------------------------------------------------------------------------
# The computational graph
# --------------------------------------------------------------------------------------

_NODE_COLORS = {"input": "#cfe2f3", "statistic": "#fce5cd", "intermediate": "#eeeeee",
                "parameter": "#d9ead3", "output": "#cfe2f3", "loss": "#f4cccc"}


@dataclass(frozen=True)
class GraphNode:
    """One node of the drawn graph: its position, its label and what it computes."""

    name: str  # e.g. "x_1", "mu", "sigma2"
    column: float  # left to right = forward order
    row: float  # vertical position
    label: str  # mathtext shown in the box
    operation: str  # mathtext shown under the box ("" for inputs and parameters)
    kind: str  # a key of _NODE_COLORS


def batchnorm_graph_structure(n: int = 2) -> tuple[dict, list]:
    """Nodes and edges of batch norm on n samples of one neuron (the sheet's graph).

    Returns ``(nodes, edges)``: ``nodes`` maps a name to its `GraphNode`, ``edges`` is a
    list of ``(source, target)`` names, an edge meaning "target is computed from source".
    Per sample i: x_i -> mu, x_i -> a_i, mu -> a_i, a_i -> sigma2, a_i -> p_i,
    sigma2 -> p_i, p_i -> y_i, gamma -> y_i, beta -> y_i, y_i -> L: 10 n edges and
    4 n + 5 nodes (x, a, p, y per sample; mu, sigma2, gamma, beta, L once).
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"the graph needs a minibatch of at least 2 samples, got n={n!r}")
    rows = np.linspace(1.0, -1.0, n) * (1.0 if n == 2 else 1.4)
    nodes = {
        "mu": GraphNode("mu", 1, 0, r"$\mu$", r"$\frac{1}{n}\sum x_i$", "statistic"),
        "sigma2": GraphNode("sigma2", 3, 0, r"$\sigma^2$", r"$\frac{1}{n}\sum a_i^2$", "statistic"),
        "gamma": GraphNode("gamma", 5, 0.4, r"$\gamma$", "", "parameter"),
        "beta": GraphNode("beta", 5, -0.4, r"$\beta$", "", "parameter"),
        "L": GraphNode("L", 7, 0, r"$L$", "loss", "loss"),
    }
    edges = []
    for i, row in enumerate(rows, start=1):
        nodes[f"x_{i}"] = GraphNode(f"x_{i}", 0, row, rf"$x_{i}$", "", "input")
        nodes[f"a_{i}"] = GraphNode(f"a_{i}", 2, row, rf"$a_{i}$", rf"$x_{i}-\mu$", "intermediate")
        nodes[f"p_{i}"] = GraphNode(f"p_{i}", 4, row, rf"$p_{i}$",
                                    rf"$a_{i}/\sqrt{{\sigma^2+\epsilon}}$", "intermediate")
        nodes[f"y_{i}"] = GraphNode(f"y_{i}", 6, row, rf"$y_{i}$", rf"$\gamma p_{i}+\beta$", "output")
        edges += [(f"x_{i}", "mu"), (f"x_{i}", f"a_{i}"), ("mu", f"a_{i}"), (f"a_{i}", "sigma2"),
                  (f"a_{i}", f"p_{i}"), ("sigma2", f"p_{i}"), (f"p_{i}", f"y_{i}"),
                  ("gamma", f"y_{i}"), ("beta", f"y_{i}"), (f"y_{i}", "L")]
    return nodes, edges


def descendants(edges: list, start: str) -> set:
    """Every node reachable from ``start`` along the edges (``start`` itself excluded)."""
    children: dict[str, list] = {}
    for source, target in edges:
        children.setdefault(source, []).append(target)
    seen, stack = set(), [start]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def influence_edges(n: int, node: str) -> list:
    """The edges ``(source, target)`` of `batchnorm_graph_structure` (n) along which
    ``node`` influences L: every edge leaving ``node`` or one of its descendants, in the
    graph's edge order (what `draw_batchnorm_graph` draws in red)."""
    nodes, edges = batchnorm_graph_structure(n)
    if node not in nodes:
        raise ValueError(f"unknown node {node!r}; the graph has {', '.join(sorted(nodes))}")
    on_path = {node} | descendants(edges, node)
    return [(s, t) for s, t in edges if s in on_path]


def draw_batchnorm_graph(n: int = 2, highlight: str | None = None, figsize=(9, 4)):
    """Draw `batchnorm_graph_structure` (n) with boxes and arrows; return the Figure.

    Each box shows a node, and under it what the node computes. The edges y_i -> L are
    labelled with the upstream gradients :math:`g_i = \\partial L/\\partial y_i`.
    ``highlight``: a node name (e.g. ``"x_1"``) whose outgoing paths are drawn in red:
    every edge leaving that node or one of its descendants, i.e. every route along which
    it influences L (`influence_edges` lists them).
    """
    nodes, edges = batchnorm_graph_structure(n)
    highlighted = influence_edges(n, highlight) if highlight is not None else []
    on_path = ({highlight} | descendants(edges, highlight)) if highlight else set()
    fig, ax = plt.subplots(figsize=figsize)
    half_width, half_height = 0.32, 0.22
    for node in nodes.values():
        ax.add_patch(FancyBboxPatch((node.column - half_width, node.row - half_height),
                                    2 * half_width, 2 * half_height,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=_NODE_COLORS[node.kind],
                                    edgecolor="#c00000" if node.name in on_path else "0.3",
                                    linewidth=2 if node.name in on_path else 1, zorder=2))
        ax.text(node.column, node.row, node.label, ha="center", va="center", fontsize=14, zorder=3)
        if node.operation:  # on the outer side: above the top row, below the others
            above = node.row > 0
            ax.text(node.column, node.row + (1 if above else -1) * (half_height + 0.06),
                    node.operation, ha="center", va="bottom" if above else "top",
                    fontsize=9, color="0.25", zorder=3)
    for source, target in edges:
        s, t = nodes[source], nodes[target]
        red = (source, target) in highlighted
        start, end = _between_boxes((s.column, s.row), (t.column, t.row), half_width, half_height)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                     shrinkA=0, shrinkB=0, zorder=1,
                                     color="#c00000" if red else "0.45", linewidth=1.8 if red else 1.0))
        if target == "L":
            index = source.split("_")[1]
            ax.text((s.column + t.column) / 2, (s.row + t.row) / 2 + 0.12, rf"$g_{index}$",
                    ha="center", va="bottom", fontsize=11, color="#1f4e79")
    rows = [node.row for node in nodes.values()]
    ax.set_xlim(-0.5, 7.5)
    ax.set_ylim(min(rows) - 0.65, max(rows) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    title = f"Batch norm of one neuron, minibatch of {n}"
    if highlight:
        title += f": every route from ${nodes[highlight].label.strip('$')}$ to $L$"
    ax.set_title(title, fontsize=12)
    fig.tight_layout()
    return fig


def _between_boxes(source, target, half_width, half_height, gap=0.04):
    """End points of an arrow from the border of the source's box to the target's."""
    (x0, y0), (x1, y1) = source, target
    dx, dy = x1 - x0, y1 - y0
    length = np.hypot(dx, dy)
    # distance from a box centre to its border along the direction (dx, dy)
    to_border = min(half_width / abs(dx) if dx else np.inf, half_height / abs(dy) if dy else np.inf)
    t = to_border + gap / length
    return (x0 + t * dx, y0 + t * dy), (x1 - t * dx, y1 - t * dy)


# --------------------------------------------------------------------------------------
# How much of the upstream gradient reaches the input
# --------------------------------------------------------------------------------------


def input_gradient_ratio(batch_size: int, eps_values, trials: int = 400, seed: int = 0) -> np.ndarray:
    r"""Median of :math:`\lVert \partial L/\partial x\rVert / \lVert g\rVert` over random
    minibatches, for each epsilon.

    Each trial draws a minibatch :math:`x \sim \mathcal N(0, 1)^n` of one neuron and an
    upstream gradient :math:`g \sim \mathcal N(0, 1)^n`, with :math:`\gamma = 1`; the
    trials are the features of one ``(batch_size, trials)`` array, so one call of
    `normlab.functional.batchnorm_backward_fast` per epsilon does them all.
    For n = 2 the ratio is
    :math:`4\sqrt2\,\epsilon\,|g_1-g_2| / ((4\epsilon+d^2)^{3/2}\lVert g\rVert)` with
    :math:`d = x_1 - x_2`: it goes to 0 with epsilon. For n > 2 it tends to about
    :math:`\sqrt{(n-2)/n}/\sigma`.
    """
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch norm needs a batch of at least 2, got batch_size={batch_size!r}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, trials))
    upstream = rng.standard_normal((batch_size, trials))
    gamma, beta = np.ones(trials), np.zeros(trials)
    ratios = []
    for eps in np.atleast_1d(eps_values):
        _, cache = functional.batchnorm_forward(x, gamma, beta, float(eps))
        dx, _, _ = functional.batchnorm_backward_fast(upstream, cache)
        per_trial = np.linalg.norm(dx, axis=0) / np.linalg.norm(upstream, axis=0)
        ratios.append(np.median(per_trial))
    return np.array(ratios)


def plot_input_gradient_vs_eps(eps_values, ratios: dict, figsize=(8, 3.6)):
    """Log-log lines of `input_gradient_ratio` against epsilon, one per batch size.

    ``ratios`` maps a batch size n to its array of ratios (one per epsilon).
    Returns the Figure; its axes hold one line per batch size, labelled ``n = ...``.
    """
    fig, ax = plt.subplots(figsize=figsize)
    for n, values in ratios.items():
        ax.loglog(eps_values, values, "o-", label=f"n = {n}")
    ax.axvline(1e-5, color="0.6", linestyle=":", linewidth=1)
    ax.text(1e-5, ax.get_ylim()[0] * 2, "  PyTorch's default ε", fontsize=9, color="0.4")
    ax.set_xlabel("ε")
    ax.set_ylabel(r"median $\|\partial L/\partial x\| \,/\, \|g\|$")
    ax.set_title("How much of the upstream gradient reaches the input ($x \\sim \\mathcal{N}(0,1)$, γ = 1)")
    ax.legend(loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Running averages
# --------------------------------------------------------------------------------------


def running_average_curve(batch_values, momentum: float, initial: float = 0.0) -> np.ndarray:
    r"""The running average after each batch, PyTorch's convention:
    :math:`r_t = (1-m)\,r_{t-1} + m\,b_t` with :math:`r_0` = ``initial``
    (`normlab.functional.update_running`).

    Keras' ``momentum`` is the weight of the *old* value, so Keras' momentum k is this
    function's ``momentum = 1 - k``. Returns an array of the length of batch_values.
    """
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum (PyTorch's convention, the weight of the new batch) must be in "
                         f"(0, 1], got {momentum!r}")
    running, curve = float(initial), []
    for value in batch_values:
        running = functional.update_running(running, float(value), momentum)
        curve.append(running)
    return np.array(curve)


def plot_running_averages(batch_values, curves: dict, target: float | None = None, figsize=(9, 3.8)):
    """The batch statistics as dots and each running-average curve as a line.

    ``curves`` maps a legend label to an array as long as batch_values; ``target`` (e.g.
    the population value) is drawn as a dashed horizontal line. Returns the Figure.
    """
    fig, ax = plt.subplots(figsize=figsize)
    steps = np.arange(1, len(batch_values) + 1)
    ax.plot(steps, batch_values, ".", color="0.65", label="batch statistic")
    for label, curve in curves.items():
        ax.plot(steps, curve, linewidth=2, label=label)
    if target is not None:
        ax.axhline(target, color="k", linestyle="--", linewidth=1, label="population value")
    ax.set_xlabel("training step (batch)")
    ax.set_ylabel("value")
    ax.legend(fontsize=9, loc="lower right")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def plot_running_vs_population(running: dict, population: dict, figsize=(9, 3.8)):
    """Scatter each feature's running statistic against the exact population one.

    ``running`` and ``population`` map a statistic's name (e.g. ``"mean"``,
    ``"variance"``) to a 1-D array over the features (several layers concatenated if
    you like). One panel per name, with the diagonal y = x; variances on log axes.
    Returns the Figure.
    """
    names = list(running)
    fig, axes = plt.subplots(1, len(names), figsize=figsize, squeeze=False)
    for ax, name in zip(axes[0], names):
        pop, run = np.asarray(population[name]), np.asarray(running[name])
        ax.plot(pop, run, ".", alpha=0.6)
        low, high = min(pop.min(), run.min()), max(pop.max(), run.max())
        ax.plot([low, high], [low, high], "k--", linewidth=1)
        if "var" in name:
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FormatStrFormatter("%g"))
                axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"population {name} (whole training set)")
        ax.set_ylabel(f"running {name}")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# The forgotten eval(): predictions that depend on the batch
# --------------------------------------------------------------------------------------


