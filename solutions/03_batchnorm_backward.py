# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lecture 03 — worked solutions
#
# Solutions to the exercises of `course/03_batchnorm_backward.py`.

# %%
import numpy as np
import sympy as sp
import torch

from normlab import functional as nf
from normlab import gradcheck, symbolic
from normlab.notebook import claim, prose
from normlab.plots import graphs

torch.set_num_threads(1)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Exercise 1 — the sheet's problem by hand, and why the gradients sum to zero
#
# Backprop through the sheet's graph, from the outputs back (write $s = \sqrt{\sigma^2+\epsilon}$):
#
# 1. $y_i = \gamma p_i + \beta$: $\;\nabla_{p_i}L = \gamma g_i$, $\;\nabla_\gamma L = g_1p_1 + g_2p_2$, $\;\nabla_\beta L = g_1+g_2$.
# 2. $p_i = a_i/s$: $\;\nabla_{\sigma^2}L = -\tfrac12 s^{-3}(\gamma g_1 a_1 + \gamma g_2 a_2)$.
# 3. $a_i$ feeds $p_i$ and $\sigma^2 = \tfrac12(a_1^2+a_2^2)$: $\;\nabla_{a_i}L = \gamma g_i/s + \nabla_{\sigma^2}L\cdot a_i$.
# 4. $\mu$ feeds $a_1, a_2$ with local derivative $-1$: $\;\nabla_\mu L = -(\nabla_{a_1}L + \nabla_{a_2}L)$.
# 5. $x_i$ feeds $a_i$ (derivative 1) and $\mu$ (derivative $\tfrac12$): $\;\nabla_{x_i}L = \nabla_{a_i}L + \tfrac12\nabla_\mu L$.
#
# With $a_2 = -a_1$, $d = x_1 - x_2$, $a_1 = d/2$, $s^2 = \epsilon + d^2/4$:
# $\nabla_{x_2}L = \tfrac12(\nabla_{a_2}L - \nabla_{a_1}L)
# = \tfrac12\big(\gamma(g_2-g_1)/s - \nabla_{\sigma^2}L\cdot d\big)$ and
# $\nabla_{\sigma^2}L = -\tfrac12 s^{-3}\gamma(g_1-g_2)\,d/2$, so
#
# $$\nabla_{x_2}L = \frac{\gamma(g_2-g_1)}{2s}\Big(1 - \frac{d^2}{4s^2}\Big)
# = \frac{\gamma(g_2-g_1)}{2s}\cdot\frac{\epsilon}{s^2}
# = \frac{4\epsilon\gamma(g_2-g_1)}{(4\epsilon+d^2)^{3/2}} = -\nabla_{x_1}L .$$
#
# SymPy agrees:

# %%
G = symbolic.batchnorm_graph(2)
(x1, x2), (g1, g2), gamma, eps = G.x, G.g, G.gamma, G.eps
by_hand_dx2 = 4 * eps * gamma * (g2 - g1) / (4 * eps + (x1 - x2) ** 2) ** sp.Rational(3, 2)
grads = symbolic.batchnorm_gradients(2)
print("dL/dx2 by hand == SymPy:", symbolic.is_equivalent(by_hand_dx2, grads.dx[1]))
print("dL/dx1 + dL/dx2 =", sp.simplify(grads.dx[0] + grads.dx[1]))

# %% tags=["remove-input"]
claim("the hand-derived dL/dx_2 equals SymPy's", symbolic.is_equivalent(by_hand_dx2, grads.dx[1]))
claim("dL/dx_1 + dL/dx_2 is exactly 0 (n = 2)", sp.simplify(grads.dx[0] + grads.dx[1]) == 0)

# %% [markdown]
# **Why $\sum_i \partial L/\partial x_i = 0$ for any $n$.** Add the same constant $c$ to
# every input: $\mu$ grows by $c$ and every $a_i = x_i - \mu$ is unchanged, so $\sigma^2$,
# $p_i$, $y_i$ and $L$ are unchanged. The derivative of $L$ along the direction
# $\mathbf 1 = (1, \dots, 1)$ is therefore 0, and that directional derivative is exactly
# $\sum_i \partial L/\partial x_i$. Check for $n = 3$ (SymPy) and $n = 50$ (NumPy):

# %%
sum_n3 = sp.simplify(sum(symbolic.batchnorm_gradients(3, simplify=False).dx))
print("n = 3, SymPy:", sum_n3)
x, g = rng.standard_normal((50, 1)), rng.standard_normal((50, 1))
_, cache = nf.batchnorm_forward(x, np.ones(1), np.zeros(1))
sum_n50 = nf.batchnorm_backward_fast(g, cache)[0].sum()
print("n = 50, NumPy:", sum_n50)

# %% tags=["remove-input"]
claim("the gradients sum to exactly 0 for n = 3 (SymPy) and to round-off for n = 50 (NumPy)",
      sum_n3 == 0 and abs(sum_n50) < 1e-12, sum_n50=sum_n50)

# %% [markdown]
# ## Exercise 2 — the two constraints, and why $n = 2$ loses everything
#
# Write $c = \gamma/(n s)$, $G = \sum_k g_k$, $H = \sum_k g_k\hat x_k$, so
# $\partial L/\partial x_i = c\,(n g_i - G - \hat x_i H)$. Since $\sum_i\hat x_i = 0$ and
# $\sum_i \hat x_i^2 = n\sigma^2/(\sigma^2+\epsilon)$:
#
# $$\sum_i \hat x_i\frac{\partial L}{\partial x_i} = c\Big(nH - 0 - H\,\frac{n\sigma^2}{\sigma^2+\epsilon}\Big)
# = c\,n H\,\frac{\epsilon}{\sigma^2+\epsilon}\;\xrightarrow{\;\epsilon\to0\;}\;0 .$$
#
# So at $\epsilon = 0$ the gradient vector is orthogonal to $\mathbf 1$ (exercise 1) and to
# $\hat x$. For $n = 2$, $\hat x = (\pm1, \mp1)$ when $\epsilon = 0$: the two vectors
# $(1,1)$ and $(1,-1)$ span the whole plane, and the only vector orthogonal to both is 0.
# For $n = 3$, $\mathbf 1$ and $\hat x$ span a plane in $\mathbb R^3$ and one direction
# is left, so a generic upstream gradient still passes partly. Numerically:

# %%
largest_dx = {}
for n in (2, 3):
    x, g = rng.standard_normal((n, 1)), rng.standard_normal((n, 1))
    _, cache = nf.batchnorm_forward(x, np.ones(1), np.zeros(1), eps=1e-12)
    dx = nf.batchnorm_backward_fast(g, cache)[0]
    largest_dx[n] = np.abs(dx).max()
    print(f"n = {n}: dL/dx = {np.round(dx.ravel(), 6)}, sum = {dx.sum():.1e}, "
          f"sum xhat*dx = {(cache.xhat * dx).sum():.1e}")

# %% tags=["remove-input"]
claim("near eps = 0 the gradient vanishes for n = 2 (below 1e-6) but not for n = 3 (above 1e-2)",
      largest_dx[2] < 1e-6 and largest_dx[3] > 1e-2, largest_dx=largest_dx)

# %% [markdown]
# ## Exercise 3 — which bugs does an all-ones upstream gradient catch?

# %%
def backward_without_mean_route(dout, cache):
    """BUG: drops the route x -> mu (keeps x -> a and x -> sigma^2)."""
    dxhat = dout * cache.gamma
    m = dout.shape[0]
    dvar = np.sum(dxhat * cache.x_centered, axis=0) * -0.5 * cache.inv_std**3
    dx = dxhat * cache.inv_std + dvar * 2.0 * cache.x_centered / m
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def backward_without_variance_route(dout, cache):
    """BUG (the lecture's): treats sigma^2 as a constant."""
    dxhat = dout * cache.gamma
    dx = cache.inv_std * (dxhat - dxhat.mean(axis=0))
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


# %%
x, gamma_, beta_ = rng.standard_normal((6, 4)), rng.standard_normal(4), rng.standard_normal(4)
out, cache = nf.batchnorm_forward(x, gamma_, beta_)
bug_errors = {}
for label, dout in [("all ones", np.ones_like(out)), ("random  ", rng.standard_normal(out.shape))]:
    numerical = gradcheck.numerical_gradient(lambda v: nf.batchnorm_forward(v, gamma_, beta_)[0], x.copy(), dout)
    errors = {bug.__name__: np.abs(bug(dout, cache)[0] - numerical).max()
              for bug in (backward_without_mean_route, backward_without_variance_route)}
    bug_errors[label.strip()] = errors
    print(label, {name: f"{error:.0e}" for name, error in errors.items()})

# %% tags=["remove-input"]
ones, random_ = bug_errors["all ones"], bug_errors["random"]
claim("the all-ones check catches the missing mu route (error above 0.1) and misses the missing sigma^2 route "
      "(error below 1e-6, finite-difference noise)",
      ones["backward_without_mean_route"] > 0.1 and ones["backward_without_variance_route"] < 1e-6, **ones)
claim("a random upstream gradient catches both bugs (errors above 0.1)", min(random_.values()) > 0.1, **random_)

# %% [markdown]
# The all-ones check **catches the missing $\mu$ route** and **misses the missing
# $\sigma^2$ route**. With $g = \mathbf 1$, $\partial L/\partial\hat x = \gamma\mathbf 1$ is
# constant over the batch, so
# - the $\sigma^2$ route contributes $\partial L/\partial\sigma^2 \propto \sum_k \gamma(x_k-\mu) = 0$: dropping it changes nothing — the bug is invisible;
# - the $\mu$ route is what cancels the direct term $\gamma/s$ (the true answer is 0);
#   without it the backward returns $\gamma/s \neq 0$ and the check fails.
#
# A random upstream gradient exercises every route, so it catches both.

# %% [markdown]
# ## Exercise 4 — convolutions: $m = N\cdot H\cdot W$

# %%
inputs = {"x": rng.standard_normal((2, 3, 4, 4)), "gamma": rng.standard_normal(3), "beta": rng.standard_normal(3)}
conv_reports = gradcheck.check_layer(nf.batchnorm_forward, nf.batchnorm_backward_fast, inputs)
for report in conv_reports:
    print(report)

# %% tags=["remove-input"]
claim("batchnorm_backward_fast passes the gradient check on (2, 3, 4, 4) input",
      all(report.passed for report in conv_reports), rel_errors=[report.rel_error for report in conv_reports])

# %% [markdown]
# Statistics are per channel over the batch and both spatial axes, so
# $m = N\cdot H\cdot W = 2\cdot4\cdot4 = 32$ values per channel. Now two $1\times4\times4$
# images, 400 independent trials (as 400 channels), $\epsilon = 10^{-5}$:

# %%
trials = 400
x, g = rng.standard_normal((2, trials, 4, 4)), rng.standard_normal((2, trials, 4, 4))
_, cache = nf.batchnorm_forward(x, np.ones(trials), np.zeros(trials), eps=1e-5)
dx = nf.batchnorm_backward_fast(g, cache)[0]
ratio = np.sqrt((dx**2).sum(axis=(0, 2, 3)) / (g**2).sum(axis=(0, 2, 3)))  # one per channel
print(f"median |dL/dx| / |g| for a batch of two 4x4 images: {np.median(ratio):.3f}")

# %% tags=["remove-input"]
two_scalars = graphs.input_gradient_ratio(2, [1e-5])[0]  # the lecture's n = 2 value at eps = 1e-5
claim("two 4x4 images do not collapse (median ratio above 0.5), unlike two scalars (below 1e-3)",
      np.median(ratio) > 0.5 and two_scalars < 1e-3, images=np.median(ratio), scalars=two_scalars)
mantissa, exponent = f"{two_scalars:.0e}".split("e")
prose(rf"""
No collapse: the median ratio is {np.median(ratio):.2f}, because the count that matters is
$m = 32$, not $N = 2$ (compare the lecture's ${mantissa}\cdot 10^{{{int(exponent)}}}$ for two scalars).
Two *images* per batch still make a well-posed batch norm; two *vectors* (an MLP with
batch size 2) do not.
""")

# %% [markdown]
# ## Exercise 5 — $n = 3$: the limit is not zero, and the surviving fraction
#
# At a concrete point ($x = (0, 1, 3)$, $g = (1, 0, 0)$, $\gamma = 1$), the limit of
# SymPy's own derivative:

# %%
G3 = symbolic.batchnorm_graph(3)
point = {G3.x[0]: 0, G3.x[1]: 1, G3.x[2]: 3, G3.g[0]: 1, G3.g[1]: 0, G3.g[2]: 0, G3.gamma: 1}
dx1 = symbolic.batchnorm_gradients(3, simplify=False).dx[0]
limit = sp.simplify(symbolic.limit_eps_to_zero(dx1.subs(point)))
print("lim_{eps->0} dL/dx_1 =", limit, "=", float(limit))

# %% tags=["remove-input"]
claim("for n = 3 the limit eps -> 0 of dL/dx_1 is not zero", limit != 0, limit=float(limit))

# %% [markdown]
# Non-zero, unlike $n = 2$. The fraction of a random upstream gradient that survives
# ($\lVert\partial L/\partial x\rVert\,s/(|\gamma|\lVert g\rVert)$, i.e. $\lVert Pg\rVert/\lVert g\rVert$)
# has mean square exactly $(n-2)/n$ for an isotropic $g$ (a projection onto $n-2$ of $n$
# dimensions keeps that share of $\mathbb E\lVert g\rVert^2$):

# %%
trials = 4000
mean_square, mean_fraction = {}, {}
for n in (3, 4, 8):
    x, g = rng.standard_normal((n, trials)), rng.standard_normal((n, trials))
    _, cache = nf.batchnorm_forward(x, np.ones(trials), np.zeros(trials), eps=0.0)
    dx = nf.batchnorm_backward_fast(g, cache)[0]
    surviving = np.linalg.norm(dx, axis=0) * np.sqrt(cache.var.ravel()) / np.linalg.norm(g, axis=0)
    mean_square[n], mean_fraction[n] = np.mean(surviving**2), surviving.mean()
    print(f"n = {n}: mean of fraction^2 = {np.mean(surviving**2):.3f}   (n-2)/n = {(n - 2) / n:.3f}   "
          f"mean fraction = {surviving.mean():.3f}   sqrt((n-2)/n) = {np.sqrt((n - 2) / n):.3f}")

# %% tags=["remove-input"]
claim("the mean square of the surviving fraction matches (n-2)/n within 0.02 (n = 3, 4, 8; 4000 trials)",
      all(abs(mean_square[n] - (n - 2) / n) < 0.02 for n in mean_square), mean_square=mean_square)
claim("the mean fraction is lower than sqrt((n-2)/n) for n = 3, 4, 8",
      all(mean_fraction[n] < np.sqrt((n - 2) / n) for n in mean_fraction), mean_fraction=mean_fraction)
prose(rf"""
The mean *square* matches $(n-2)/n$; the mean fraction itself is lower than
$\sqrt{{(n-2)/n}}$ (Jensen's inequality: {mean_fraction[3]:.3f} against {np.sqrt(1 / 3):.3f} for $n = 3$,
{mean_fraction[8]:.3f} against {np.sqrt(6 / 8):.3f} for $n = 8$), hence "about" in the lecture.
""")
