r"""Statistics over seeds: mean ± sd, standard errors, and the verdict rule.

Used by the experiments' scoreboard (`normlab.experiments.scoreboard`) and by every
lecture that states which of two conditions is ahead, so a verdict means the same
thing everywhere.

**The verdict rule** (stated here once; `RULE` is the same in one paragraph). For arm A
against arm B, with one value of a metric per seed,

.. math::
    d = \bar m_A - \bar m_B, \qquad
    \text{margin} = \max(2\,\mathrm{SE},\ \delta).

**Paired by seed** where the two arms of a seed share what the seed decides (the same
train/validation/test split and the same order of mini-batches, or one run timing both
arms): SE is the standard error of the per-seed differences,
:math:`\mathrm{sd}(a - b)/\sqrt n`, which leaves out what a pair shares. Otherwise
(unpaired) :math:`\mathrm{SE} = \sqrt{s_A^2 / n_A + s_B^2 / n_B}`. :math:`s` is the
sample standard deviation across seeds (ddof = 1). When lower is better, :math:`d` is
taken the other way round (:math:`\bar m_B - \bar m_A`). **A ahead** if
:math:`d > \text{margin}`, **B ahead** if :math:`d < -\text{margin}`, otherwise a
**draw**. :math:`\delta` is the smallest difference that counts:
`ACCURACY_DELTA` (0.5 percentage points) for accuracies, `TIME_DELTA_FRACTION` (5 %)
of B's mean for times, 0 for other metrics unless a caller says. With fewer than two
seeds in an arm the spread is unknown and the verdict is "n/a".

This is a rough rule for a handful of seeds, not a significance test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["mean_sd", "standard_error", "paired_standard_error", "Verdict", "compare", "RULE",
           "ACCURACY_DELTA", "TIME_DELTA_FRACTION"]

#: δ for accuracies: half a percentage point (0.005 for accuracies given as fractions).
ACCURACY_DELTA = 0.5
#: δ for times: 5 % of B's mean.
TIME_DELTA_FRACTION = 0.05

RULE = (
    "Verdict rule, per comparison A vs B, over the seeds: d = mean(A) - mean(B) (for times and "
    "losses d = mean(B) - mean(A): lower is better); SE = sd(A - B)/sqrt(n), the standard error of "
    "the per-seed differences, where both arms of a seed share its data split and mini-batch order "
    "(or one run times both), else sqrt(sd_A^2/n_A + sd_B^2/n_B), with sd the sample standard "
    "deviation across seeds; margin = max(2 x SE, delta), delta = 0.5 percentage points of "
    "accuracy or 5% of B's mean time. A ahead if d > margin, B ahead if d < -margin, else draw "
    "(n/a with fewer than 2 seeds)."
)


def mean_sd(values) -> tuple[float, float, int]:
    """``(mean, sd, n)`` of ``values``: sd is the sample standard deviation (ddof = 1),
    nan with fewer than two values; the mean is nan for no values."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    sd = float(values.std(ddof=1)) if n >= 2 else math.nan
    return mean, sd, n


def standard_error(values_a, values_b) -> float:
    r"""Standard error of the difference of two independent means,
    :math:`\sqrt{s_A^2/n_A + s_B^2/n_B}` (nan with fewer than two values in an arm)."""
    _, sd_a, n_a = mean_sd(values_a)
    _, sd_b, n_b = mean_sd(values_b)
    if n_a < 2 or n_b < 2:
        return math.nan
    return math.sqrt(sd_a**2 / n_a + sd_b**2 / n_b)


def paired_standard_error(values_a, values_b) -> float:
    r"""Standard error of the mean per-pair difference, :math:`\mathrm{sd}(a - b)/\sqrt n`.
    Raises ValueError when the two arms have different lengths."""
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"paired values need the same number of seeds, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return math.nan
    return float(np.std(a - b, ddof=1)) / math.sqrt(len(a))


@dataclass(frozen=True)
class Verdict:
    """The outcome of `compare`: ``outcome`` is "a", "b", "draw" or "n/a"; ``diff`` is
    oriented so that positive favours A."""

    outcome: str
    diff: float
    se: float
    margin: float
    mean_a: float
    sd_a: float
    n_a: int
    mean_b: float
    sd_b: float
    n_b: int


def compare(values_a, values_b, *, higher_is_better=True, min_effect=0.0, min_effect_relative=0.0,
            paired=False) -> Verdict:
    """Apply the verdict rule (module docstring) to per-seed values of arms A and B.

    ``min_effect`` (absolute, in the values' unit) plus ``min_effect_relative`` times
    B's mean is δ; the margin is max(2·SE, δ). ``paired``: ``values_a[i]`` and
    ``values_b[i]`` were measured together; SE is then that of the differences.
    """
    mean_a, sd_a, n_a = mean_sd(values_a)
    mean_b, sd_b, n_b = mean_sd(values_b)
    diff = (mean_a - mean_b) if higher_is_better else (mean_b - mean_a)
    if n_a < 2 or n_b < 2:
        return Verdict("n/a", diff, math.nan, math.nan, mean_a, sd_a, n_a, mean_b, sd_b, n_b)
    se = paired_standard_error(values_a, values_b) if paired else standard_error(values_a, values_b)
    margin = max(2 * se, min_effect + min_effect_relative * abs(mean_b))
    outcome = "a" if diff > margin else "b" if diff < -margin else "draw"
    return Verdict(outcome, diff, se, margin, mean_a, sd_a, n_a, mean_b, sd_b, n_b)
