"""Figures the lectures use, one submodule per topic (import them directly, e.g.
``from normlab.plots.contours import plot_loss_contours``).

Figures are sized for a 1280x720 slide (at most about 10 x 4.5 inches at 100 dpi) and
return the matplotlib Figure so a notebook can show or save it.
"""
