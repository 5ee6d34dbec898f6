r"""Numerical gradient checks: centred finite differences and a readable report.

For a scalar loss :math:`L(x) = \sum_k g_k\, f(x)_k` with a *random* upstream gradient
:math:`g` (an all-ones g hides errors: BatchNorm's true dx for it is exactly zero),

.. math::
    \frac{\partial L}{\partial x_i} \approx \frac{L(x + h e_i) - L(x - h e_i)}{2h},

whose error is :math:`O(h^2)`. Compare with ``rel_error``; in float64 with h = 1e-5 a
correct analytic gradient gives about 1e-8 or less, a wrong one about 1e-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rel_error(a, b) -> float:
    """max |a - b| / max(1e-8, |a| + |b|): 0 for equal arrays, ~1 for unrelated ones."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))) if a.size else 0.0


def numerical_gradient(f, x, dout, h=1e-5):
    """Centred-difference gradient of ``sum(f(x) * dout)`` with respect to the array x.

    f is called with x perturbed in place (one entry at a time) and must return an
    array of the shape of dout. x is restored afterwards.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected a floating-point x, got dtype {x.dtype}")
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * dout)
        x[i] = old - h
        minus = np.sum(f(x) * dout)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


@dataclass
class GradCheckReport:
    """The outcome of comparing an analytic gradient with a numerical one."""

    name: str
    rel_error: float
    worst_index: tuple
    analytic: float
    numerical: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.rel_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "MISMATCH"
        return (f"{self.name}: rel_error {self.rel_error:.2e} ({verdict}, tolerance "
                f"{self.tolerance:.0e}); worst entry {self.worst_index}: analytic "
                f"{self.analytic:.6g} vs numerical {self.numerical:.6g}")


def compare(name, analytic, numerical, tolerance=1e-6) -> GradCheckReport:
    """Relative error of two gradients and the entry where they differ most."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numerical = np.asarray(numerical, dtype=np.float64)
    if analytic.shape != numerical.shape:
        raise ValueError(f"{name}: analytic gradient has shape {analytic.shape}, "
                         f"numerical has {numerical.shape}")
    per_entry = np.abs(analytic - numerical) / np.maximum(1e-8, np.abs(analytic) + np.abs(numerical))
    worst = np.unravel_index(np.argmax(per_entry), per_entry.shape) if per_entry.size else ()
    worst = tuple(int(i) for i in worst)
    return GradCheckReport(name, float(per_entry.max()) if per_entry.size else 0.0, worst,
                           float(analytic[worst]) if per_entry.size else 0.0,
                           float(numerical[worst]) if per_entry.size else 0.0, tolerance)


def check_layer(forward, backward, inputs: dict, *, seed=0, h=1e-5, tolerance=1e-6):
    """Gradient-check a CS231n-style layer against finite differences.

    forward(**inputs) -> (out, cache); backward(dout, cache) -> tuple of gradients, in
    the order of ``inputs``. Draws a random upstream gradient, then returns one
    `GradCheckReport` per input (float64 inputs recommended).
    """
    rng = np.random.default_rng(seed)
    out, cache = forward(**inputs)
    dout = rng.standard_normal(np.shape(out))
    analytic = backward(dout, cache)
    if len(analytic) != len(inputs):
        raise ValueError(f"backward returned {len(analytic)} gradients for {len(inputs)} inputs "
                         f"({', '.join(inputs)})")
    reports = []
    for (name, value), grad in zip(inputs.items(), analytic):
        def f(v, name=name):
            return forward(**{**inputs, name: v})[0]
        numerical = numerical_gradient(f, np.array(value, dtype=np.float64), dout, h)
        reports.append(compare(name, grad, numerical, tolerance))
    return reports
