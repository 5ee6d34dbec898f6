r"""SymPy derivations: the backward pass of batch norm, for one neuron, done by computer algebra.

The computational graph for a minibatch :math:`x_1, \dots, x_n` (the discussion sheet's
notation, scalar equations throughout):

.. math::
    \mu = \frac1n\sum_i x_i,\quad a_i = x_i - \mu,\quad \sigma^2 = \frac1n\sum_i a_i^2,\quad
    p_i = \frac{a_i}{\sqrt{\sigma^2+\epsilon}},\quad y_i = \gamma\,p_i + \beta

With upstream gradients :math:`g_i = \partial L/\partial y_i` we take the loss
:math:`L = \sum_i g_i\,y_i`, which has exactly those upstream gradients, and let SymPy
differentiate :math:`L` through the graph. The result equals the closed form

.. math::
    \frac{\partial L}{\partial x_i} = \frac{\gamma}{n\sqrt{\sigma^2+\epsilon}}
    \Big(n\,g_i - \sum_j g_j - p_i \sum_j g_j\,p_j\Big),\quad
    \frac{\partial L}{\partial \gamma} = \sum_i g_i\,p_i,\quad
    \frac{\partial L}{\partial \beta} = \sum_i g_i .
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

import sympy as sp

gamma, beta = sp.symbols("gamma beta", real=True)
eps = sp.Symbol("epsilon", positive=True)


@dataclass(frozen=True)
class BatchNormGraph:
    """The symbols and intermediate expressions of batch norm on n samples of one neuron."""

    n: int
    x: tuple  # inputs x_1..x_n
    g: tuple  # upstream gradients g_i = dL/dy_i
    mu: sp.Expr  # (1/n) sum x_i
    a: tuple  # a_i = x_i - mu
    var: sp.Expr  # sigma^2 = (1/n) sum a_i^2  (biased)
    p: tuple  # p_i = a_i / sqrt(sigma^2 + eps), the normalized x-hat
    y: tuple  # y_i = gamma p_i + beta
    loss: sp.Expr  # L = sum g_i y_i
    gamma: sp.Symbol = gamma
    beta: sp.Symbol = beta
    eps: sp.Symbol = eps


class Gradients(NamedTuple):
    dx: list  # dL/dx_i
    dgamma: sp.Expr
    dbeta: sp.Expr


def batchnorm_graph(n: int) -> BatchNormGraph:
    """Build the graph above for a minibatch of n (calls with the same n share symbols)."""
    x = sp.symbols(f"x_1:{n + 1}", real=True)
    g = sp.symbols(f"g_1:{n + 1}", real=True)
    mu = sum(x) / n
    a = tuple(x_i - mu for x_i in x)
    var = sum(a_i**2 for a_i in a) / n
    p = tuple(a_i / sp.sqrt(var + eps) for a_i in a)
    y = tuple(gamma * p_i + beta for p_i in p)
    loss = sum(g_i * y_i for g_i, y_i in zip(g, y))
    return BatchNormGraph(n, x, g, mu, a, var, p, y, loss)


def batchnorm_gradients(n: int, simplify: bool = True) -> Gradients:
    """dL/dx_i, dL/dgamma, dL/dbeta by ``sympy.diff`` of L through the graph.

    ``simplify=True`` runs ``sympy.simplify`` on each: under a second for n = 2 (giving
    the textbook forms), but it grows fast with n; use ``simplify=False`` for n >= 4.
    """
    G = batchnorm_graph(n)
    tidy = sp.simplify if simplify else (lambda e: e)
    return Gradients([tidy(sp.diff(G.loss, x_i)) for x_i in G.x],
                     tidy(sp.diff(G.loss, gamma)), tidy(sp.diff(G.loss, beta)))


def two_sample_textbook_forms() -> Gradients:
    r"""The answer to the sheet's problem (n = 2), with :math:`d = x_1 - x_2`:

    .. math::
        \frac{\partial L}{\partial x_1} = -\frac{\partial L}{\partial x_2}
            = \frac{4\epsilon\gamma(g_1-g_2)}{(4\epsilon + d^2)^{3/2}},\quad
        \frac{\partial L}{\partial \gamma} = \frac{(g_1-g_2)\,d}{\sqrt{4\epsilon + d^2}},\quad
        \frac{\partial L}{\partial \beta} = g_1 + g_2 .

    Here :math:`\sigma^2 = d^2/4` and :math:`p_{1,2} = \pm d/\sqrt{4\epsilon+d^2}`, so as
    :math:`\epsilon \to 0` the outputs become :math:`\pm\gamma + \beta` whatever x is,
    and dL/dx -> 0 (for x_1 != x_2).
    """
    (x1, x2), (g1, g2) = batchnorm_graph(2).x, batchnorm_graph(2).g
    d = x1 - x2
    dx1 = 4 * eps * gamma * (g1 - g2) / (4 * eps + d**2) ** sp.Rational(3, 2)
    return Gradients([dx1, -dx1], (g1 - g2) * d / sp.sqrt(4 * eps + d**2), g1 + g2)


def limit_eps_to_zero(expr):
    """The one-sided limit epsilon -> 0+ (SymPy treats the x_i as distinct)."""
    return sp.limit(expr, eps, 0, "+")


def closed_form_dx(n: int) -> list:
    r""":math:`\frac{\gamma}{n\sqrt{\sigma^2+\epsilon}}(n g_i - \sum_j g_j - p_i\sum_j g_j p_j)`
    for i = 1..n, in the symbols of ``batchnorm_graph(n)``."""
    G = batchnorm_graph(n)
    sum_g, sum_gp = sum(G.g), sum(g_j * p_j for g_j, p_j in zip(G.g, G.p))
    return [gamma / (n * sp.sqrt(G.var + eps)) * (n * g_i - sum_g - p_i * sum_gp)
            for g_i, p_i in zip(G.g, G.p)]


def check_closed_form(n: int) -> bool:
    r"""Prove that autodiff's dL/dx_i equals `closed_form_dx` for every i.

    Trick: substitute :math:`\epsilon = s^2 - \sigma^2` (s > 0) *after* differentiating.
    Every :math:`\sqrt{\sigma^2+\epsilon}` becomes s, the difference becomes a polynomial
    in the x_i, g_i, gamma and 1/s, and ``expand`` decides if it is 0 — much faster
    than ``simplify`` on the difference in epsilon, or on the dL/dx_i themselves
    (lecture 03 times it).
    Since :math:`(x, \epsilon) \mapsto (x, s)` is a bijection onto s > sigma, this
    proves the identity for every :math:`\epsilon > 0`.
    """
    G = batchnorm_graph(n)
    s = sp.Symbol("s", positive=True)
    autodiff = batchnorm_gradients(n, simplify=False).dx
    for auto, closed in zip(autodiff, closed_form_dx(n)):
        difference = (auto - closed).subs(eps, s**2 - G.var)
        if sp.expand(difference) != 0 and sp.simplify(difference) != 0:
            return False
    return True


def is_equivalent(expr_a, expr_b, points: int = 8, rtol: float = 1e-9, seed: int = 0) -> bool:
    """Decide whether two expressions are equal for all values of their symbols.

    Symbols are matched by name (a student's ``Symbol('x_1')`` is our real ``x_1``).
    First ``simplify(a - b) == 0``; if simplify cannot show that, evaluate both at
    `points` random rational points (30 digits; symbols declared positive get positive
    values) and accept iff they agree within `rtol` at every one.
    """
    a, b = _match_symbols_by_name(sp.sympify(expr_a), sp.sympify(expr_b))
    if sp.simplify(a - b) == 0:
        return True
    rng, agreed = random.Random(seed), 0
    for _ in range(10 * points):
        point = {s: _random_value(s, rng) for s in a.free_symbols | b.free_symbols}
        va, vb = (sp.N(e.xreplace(point), 30) for e in (a, b))
        if not (va.is_number and vb.is_number):
            return False  # an undefined function or the like: cannot be decided
        if not (va.is_finite and vb.is_finite):
            continue  # hit a pole: draw another point
        va, vb = complex(va), complex(vb)
        if abs(va - vb) > rtol * max(abs(va), abs(vb)) + 1e-15:
            return False
        agreed += 1
        if agreed == points:
            return True
    return False


def _match_symbols_by_name(a, b):
    """Replace same-named symbols by one of them, preferring positive, then real ones."""
    symbols = sorted(a.free_symbols | b.free_symbols,
                     key=lambda s: (s.is_positive is not True, s.is_real is not True, str(s)))
    canonical = {}
    for s in symbols:
        canonical.setdefault(s.name, s)
    rename = {s: canonical[s.name] for s in symbols}
    return a.xreplace(rename), b.xreplace(rename)


def _random_value(symbol, rng):
    numerator = rng.randint(1, 500) if symbol.is_nonnegative else rng.randint(-500, 500)
    return sp.Rational(numerator, 97)


def check_against_autograd(n: int, trials: int = 10, seed: int = 0, simplify: bool = False) -> float:
    """Max |symbolic - torch autograd| over all gradients at `trials` random float64 points.

    The symbolic gradients are lambdified; torch differentiates the same forward pass
    written with plain tensor ops. eps is drawn log-uniformly from [1e-5, 1e-1].
    """
    import numpy as np
    import torch

    G, grads = batchnorm_graph(n), batchnorm_gradients(n, simplify=simplify)
    symbolic = sp.lambdify([G.x, G.g, gamma, beta, eps],
                           [*grads.dx, grads.dgamma, grads.dbeta], modules="numpy", cse=True)
    rng, worst = np.random.default_rng(seed), 0.0
    for _ in range(trials):
        x_val, g_val, (gamma_val, beta_val) = rng.normal(size=n), rng.normal(size=n), rng.normal(size=2)
        eps_val = 10 ** rng.uniform(-5, -1)
        x, w, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True)
                   for v in (x_val, gamma_val, beta_val))
        mu = x.mean()
        y = w * (x - mu) / torch.sqrt(((x - mu) ** 2).mean() + eps_val) + b
        (y * torch.from_numpy(g_val)).sum().backward()
        expected = np.array([*x.grad.tolist(), w.grad.item(), b.grad.item()])
        got = np.array(symbolic(x_val, g_val, gamma_val, beta_val, eps_val), dtype=float)
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst
