"""Figures the lectures use, one submodule per topic (import them directly, e.g.
``from normlab.plots.inputs import plot_loss_contours``).

A figure function takes data and returns a matplotlib Figure, nothing more: what a
lecture measures comes from a public function elsewhere (training runs and measurements
during training in `normlab.train`, mean ± sd and verdicts in `normlab.stats`, the
scoreboard in `normlab.experiments`) or from a small pure function next to the figure
(e.g. `variants.normalization_masks`), and the lecture passes its result to the plot.

Figures are sized for a 1280x720 slide (at most about 10 x 4.5 inches at 100 dpi).
"""
