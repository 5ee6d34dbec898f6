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

# %% [markdown] slideshow={"slide_type": "slide"}
# # Lecture 03 — Batch norm, backward
#
# In a ReLU layer, output $i$ depends on input $i$ only. In batch norm, **every output
# depends on every input of the minibatch**, through the batch mean $\mu$ and variance
# $\sigma^2$. So the backward pass has to route gradient through $\mu$ and $\sigma^2$.
#
# Today:
# 1. the computational graph (the discussion sheet's minibatch of 2)
# 2. the chain rule through $\mu$ and $\sigma^2$, then $\partial L/\partial\gamma$ and $\partial L/\partial\beta$
# 3. the closed form
# 4. the size-2 exercise solved with SymPy, and what the answer says about tiny batches
# 5. gradient checks, general $n$, and speed

# %% [markdown] slideshow={"slide_type": "notes"}
# Start from lecture 2's forward pass. The one idea to carry through the hour: the
# statistics are functions of the whole batch, so the Jacobian of BN is a dense n×n
# block per feature, not a diagonal. Everything else (the three terms, the closed form,
# the vanishing gradient at n = 2) follows from that.

# %% slideshow={"slide_type": "skip"}
import time
import timeit

import numpy as np
import sympy as sp
import torch
from IPython.display import Math, display

from normlab import functional as nf
from normlab import gradcheck, symbolic
from normlab.notebook import claim, prose, show_source
from normlab.plots import graphs

torch.set_num_threads(1)
rng = np.random.default_rng(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The forward pass of one neuron, as scalar steps
#
# The UCLA discussion sheet's practice problem writes batch norm of **one neuron** on a
# minibatch $x_1, \dots, x_n$ as a composition of scalar functions:
#
# $$
# \mu = \frac1n\sum_i x_i,\qquad a_i = x_i - \mu,\qquad
# \sigma^2 = \frac1n\sum_i a_i^2,\qquad
# p_i = \frac{a_i}{\sqrt{\sigma^2+\epsilon}},\qquad y_i = \gamma\,p_i + \beta .
# $$
#
# ($p_i$ is the normalized $\hat x_i$ of lecture 2.) Upstream, the rest of the network
# hands us $g_i = \partial L/\partial y_i$. We want $\partial L/\partial x_i$,
# $\partial L/\partial\gamma$, $\partial L/\partial\beta$.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The computational graph, $n = 2$
#
# Part (a) of the sheet's problem: draw it.

# %%
graphs.draw_batchnorm_graph(2);

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Every route from $x_1$ to the loss
#
# $x_1$ reaches **both** outputs: directly through $a_1$, through $\mu$ (into $a_1$ and
# $a_2$), and through $\sigma^2$ (into $p_1$ and $p_2$).

# %%
graphs.draw_batchnorm_graph(2, highlight="x_1");
print(f"{len(graphs.influence_edges(2, 'x_1'))} of 20 edges carry x_1's influence to L")

# %% [markdown] slideshow={"slide_type": "notes"}
# Backprop rule for a DAG (Schilling's thesis talk: "backprop works for any
# (differentiable) computational DAG!"): a node's gradient is the sum over its outgoing
# edges of (child's gradient × local derivative). x_1 has two outgoing edges (to a_1 and
# to μ); a_1 has two (to p_1 and to σ²); μ has two (to a_1 and a_2). That is why the
# formula on the next slides has three terms.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The easy part: $\gamma$ and $\beta$
#
# $\gamma$ and $\beta$ are shared by all $n$ samples, so their gradients **sum** over the
# batch (Raschka's lecture slides, "Backprop for BatchNorm Parameters"):
#
# $$
# \frac{\partial L}{\partial\beta} = \sum_{i=1}^n \frac{\partial L}{\partial y_i}\cdot 1 = \sum_i g_i,
# \qquad
# \frac{\partial L}{\partial\gamma} = \sum_{i=1}^n \frac{\partial L}{\partial y_i}\cdot p_i = \sum_i g_i\,\hat x_i .
# $$
#
# For a layer of $D$ features these are $D$-vectors, summed over the batch axis (and
# over $H, W$ for a convolution: statistics and parameters are per channel).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The hard part: $\partial L/\partial x_i$ — Raschka's formula
#
# Raschka's lecture slides apply the multivariable chain rule, with $\mu$ and $\sigma^2$
# as intermediate variables:
#
# $$
# \frac{\partial L}{\partial x_i}
# = \boxed{\frac{\partial L}{\partial \hat x_i}}\cdot\frac{1}{\sqrt{\sigma^2+\epsilon}}
# + \boxed{\frac{\partial L}{\partial \mu}}\cdot\frac{1}{n}
# + \boxed{\frac{\partial L}{\partial \sigma^2}}\cdot\frac{2(x_i-\mu)}{n}
# $$
#
# and stop: *"you can solve the remaining terms as an ungraded HW exercise"*. We solve them.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## A factor 2
#
# The derivative of $\sigma^2$ with respect to $x_i$ (for fixed $\mu$) has a **2**:

# %%
x1, x2, x3, mu = sp.symbols("x_1 x_2 x_3 mu", real=True)
var_for_fixed_mu = ((x1 - mu) ** 2 + (x2 - mu) ** 2 + (x3 - mu) ** 2) / 3
sp.diff(var_for_fixed_mu, x1)  # n = 3:  2 (x_1 - mu) / n

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("d(sigma^2)/dx_1 for fixed mu is 2 (x_1 - mu)/n (n = 3), not 1 (x_1 - mu)/n",
      sp.simplify(sp.diff(var_for_fixed_mu, x1) - 2 * (x1 - mu) / 3) == 0)

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Erratum (Raschka's STAT 479 lecture 11 slides).** The last factor of the slide's
# chain rule reads "$1(z_j^{(2)} - \mu_j)/n$"; it is $2(z_j^{(2)[i]} - \mu_j)/n$, a **2**
# (and the sample index $[i]$). The slide's $1/\sigma_j$ is right for its own forward
# pass, which has no $\epsilon$; with $\epsilon$ it is $1/\sqrt{\sigma_j^2+\epsilon}$.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Working out the three boxes
#
# With $s = \sqrt{\sigma^2+\epsilon}$ and sums over the batch $k = 1..n$:
#
# $$
# \frac{\partial L}{\partial \hat x_i} = \gamma\,g_i
# \qquad
# \frac{\partial L}{\partial \sigma^2} = \sum_k \frac{\partial L}{\partial \hat x_k}\,(x_k-\mu)\cdot\left(-\tfrac12\right)s^{-3}
# $$
#
# $$
# \frac{\partial L}{\partial \mu} = \sum_k \frac{\partial L}{\partial \hat x_k}\cdot\frac{-1}{s}
# \;+\; \frac{\partial L}{\partial \sigma^2}\cdot\underbrace{\frac{-2}{n}\sum_k (x_k-\mu)}_{=\,0}
# $$
#
# Order matters: $\partial L/\partial\sigma^2$ first, because $\sigma^2$ is computed from
# $\mu$. Its contribution to $\partial L/\partial\mu$ happens to vanish, since the
# deviations from the mean sum to zero.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The staged backward in the library
#
# `normlab.functional.batchnorm_backward` does exactly these steps, one node at a time
# (here the part after $\partial L/\partial\hat x = \gamma\,g$):

# %%
show_source(nf.dxhat_to_dx_staged, docstring=False)

# %% [markdown] slideshow={"slide_type": "notes"}
# Walk through the three lines against the three boxes: dvar, then dmu (with the
# vanishing term still written out, as the graph has it), then the sum of the three
# routes. `axes` are the batch axes — (0,) for (N, D) input, (0, 2, 3) for images — and
# `m` is the number of values per feature, n or N·H·W.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The closed form
#
# Substitute the boxes and use $\hat x_k = (x_k-\mu)/s$,
# $\sum_k g_k = \partial L/\partial\beta$, $\sum_k g_k\hat x_k = \partial L/\partial\gamma$:
#
# $$
# \frac{\partial L}{\partial x_i}
# = \frac{\gamma}{n\,s}\Big(n\,g_i \;-\; \sum_k g_k \;-\; \hat x_i \sum_k g_k\,\hat x_k\Big)
# = \frac{\gamma}{n\sqrt{\sigma^2+\epsilon}}\Big(n\,g_i - \frac{\partial L}{\partial\beta} - \hat x_i\,\frac{\partial L}{\partial\gamma}\Big)
# $$
#
# In words: take the upstream gradient, **remove its mean** and **remove its component
# along $\hat x$** (exactly a projection at $\epsilon = 0$, where $\lVert\hat x\rVert^2 = n$),
# and scale by $\gamma/s$.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The closed form in the library
#
# It reuses the parameter gradients it has to compute anyway:

# %%
show_source(nf.batchnorm_backward_fast, docstring=False)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The sheet's problem (b), step by step with SymPy
#
# Backprop through the graph node by node, $n = 2$. Intermediate values stay symbols
# ($a_1, a_2, \sigma^2$) so each step reads like the hand computation:

# %%
G = symbolic.batchnorm_graph(2)
(x1, x2), (g1, g2), gamma, beta, eps = G.x, G.g, G.gamma, G.beta, G.eps
a1, a2, var = sp.symbols("a_1 a_2 sigma^2", real=True)
s = sp.sqrt(var + eps)
dp1, dp2 = gamma * g1, gamma * g2                    # y_i = gamma p_i + beta
dgamma, dbeta = g1 * a1 / s + g2 * a2 / s, g1 + g2    # gamma, beta feed both y_i
dvar = (dp1 * a1 + dp2 * a2) * (-sp.Rational(1, 2)) * (var + eps) ** sp.Rational(-3, 2)
da1 = dp1 / s + dvar * a1                              # a_1 -> p_1 and a_1 -> sigma^2 = (a_1^2 + a_2^2)/2
da2 = dp2 / s + dvar * a2
dmu = -(da1 + da2)                                     # mu -> a_1, a_2
dx1, dx2 = da1 + dmu / 2, da2 + dmu / 2                # x_i -> a_i and x_i -> mu
display(Math(r"\dfrac{\partial L}{\partial\sigma^2} = " + sp.latex(dvar).replace(r"\frac", r"\dfrac")))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Substitute and simplify
#
# Now put in $a_{1,2} = \pm(x_1-x_2)/2$ and $\sigma^2 = (x_1-x_2)^2/4$:

# %%
values = {a1: (x1 - x2) / 2, a2: (x2 - x1) / 2, var: (x1 - x2) ** 2 / 4}
tidy = {sp.expand((x1 - x2) ** 2): (x1 - x2) ** 2}  # write the square as a square
answer = {name: sp.simplify(expr.subs(values)).subs(tidy) for name, expr in
          [("x_1", dx1), ("x_2", dx2), (r"\gamma", dgamma), (r"\beta", dbeta)]}

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The answer, $n = 2$

# %% tags=["remove-input"]
for name, expr in answer.items():
    display(Math(rf"\frac{{\partial L}}{{\partial {name}}} = " + sp.latex(expr)))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Check the answer
#
# Two independent checks: SymPy differentiating the whole loss $L = \sum_i g_i y_i$ in
# one go, and the textbook forms stored in `normlab.symbolic`:

# %%
autodiff = symbolic.batchnorm_gradients(2)
textbook = symbolic.two_sample_textbook_forms()
for mine, auto, book in zip(answer.values(), [*autodiff.dx, autodiff.dgamma, autodiff.dbeta],
                            [*textbook.dx, textbook.dgamma, textbook.dbeta]):
    print(symbolic.is_equivalent(mine, auto), symbolic.is_equivalent(mine, book))

# %% [markdown] slideshow={"slide_type": "notes"}
# Let students try (b) by hand first — it is the sheet's exercise and the ps2
# derivation. The node-by-node cell is the hand computation; simplify only at the end.
# Point out dL/dx_2 = -dL/dx_1 and dL/dβ = g_1 + g_2 before moving on.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Read the answer
#
# $$
# \frac{\partial L}{\partial x_1} = -\frac{\partial L}{\partial x_2}
# = \frac{4\epsilon\,\gamma\,(g_1-g_2)}{\big(4\epsilon+(x_1-x_2)^2\big)^{3/2}}
# $$
#
# - The two gradients **sum to zero**: moving both inputs by the same amount changes nothing.
# - The numerator is **$4\epsilon$**. Without $\epsilon$ the gradient would be exactly zero:

# %%
print("limit eps -> 0 of dL/dx_1:", symbolic.limit_eps_to_zero(answer["x_1"]))
d = sp.Symbol("d", real=True)  # d = x_1 - x_2
print("limit eps -> 0 of p_1 = d/sqrt(4 eps + d^2):", symbolic.limit_eps_to_zero(d / sp.sqrt(4 * eps + d**2)))

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("without eps the n = 2 gradient dL/dx_1 is exactly zero",
      symbolic.limit_eps_to_zero(answer["x_1"]) == 0)
claim("without eps the n = 2 normalized value p_1 is d/|d| = +-1",
      sp.simplify(symbolic.limit_eps_to_zero(d / sp.sqrt(4 * eps + d**2)) - d / sp.Abs(d)) == 0)

# %% [markdown] slideshow={"slide_type": "fragment"}
# With two samples, the normalized values are $p_{1,2} = \pm\,d/\sqrt{4\epsilon+d^2} \approx \pm 1$
# **whatever $x$ is**: the outputs are $\beta \pm \gamma$, a constant. A layer whose
# output does not depend on its input passes no gradient back. Only $\gamma$ and $\beta$ learn.

# %% [markdown] slideshow={"slide_type": "notes"}
# The one exception: if |x_1 - x_2| is comparable to sqrt(eps) (`sqrt(1e-5) ≈ 0.003`),
# the gradient is not small but huge: at d = 0 it is γ(g_1 - g_2)/(2 sqrt(eps)),
# `1/(2 sqrt(1e-5)) ≈ 158` times γ(g_1 - g_2). So a batch of two either blocks the
# gradient or amplifies noise.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Why: the gradient is a projection
#
# From the closed form, for any $n$:
#
# $$
# \sum_i \frac{\partial L}{\partial x_i} = 0
# \qquad\text{and}\qquad
# \sum_i \hat x_i\,\frac{\partial L}{\partial x_i} = \frac{\epsilon}{\sigma^2+\epsilon}\cdot\frac{\gamma}{s}\sum_i g_i\hat x_i \to 0 .
# $$
#
# At $\epsilon = 0$ the input gradient is $(\gamma/\sigma)\,P g$, with $P$ the
# projection onto the $n-2$ directions orthogonal to $\mathbf 1$ and $\hat x$.
# **For $n = 2$ there are no directions left.** For a random $g$ (independent
# $\mathcal N(0,1)$ entries) the projection keeps on average a share $(n-2)/n$ of
# $\lVert g\rVert^2$, so roughly $\sqrt{(n-2)/n}$ of its norm survives. Check at
# $\epsilon = 0$ on 2000 random batches of 8 (the columns):

# %%
x, g = rng.standard_normal((8, 2000)), rng.standard_normal((8, 2000))
_, cache = nf.batchnorm_forward(x, np.ones(2000), np.zeros(2000), eps=0.0)
dx, _, _ = nf.batchnorm_backward_fast(g, cache)
surviving = np.linalg.norm(dx, axis=0) * np.sqrt(cache.var.ravel()) / np.linalg.norm(g, axis=0)
print(f"max |sum_i dx_i| = {np.abs(dx.sum(0)).max():.0e},  max |sum_i xhat_i dx_i| = "
      f"{np.abs((cache.xhat * dx).sum(0)).max():.0e}")
print(f"mean surviving fraction^2 = {np.mean(surviving**2):.3f}   (n-2)/n = {6 / 8:.3f}")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
largest_sums = {"sum_i dx_i": np.abs(dx.sum(0)).max(), "sum_i xhat_i dx_i": np.abs((cache.xhat * dx).sum(0)).max()}
claim("at eps = 0 both sums are zero up to float64 round-off (2000 batches of 8)",
      max(largest_sums.values()) < 1e-12, **largest_sums)
claim("the mean surviving share of |g|^2 is (n-2)/n = 0.75 for n = 8 (2000 batches)",
      abs(np.mean(surviving**2) - 6 / 8) < 0.02, mean_share=np.mean(surviving**2))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## How much gradient reaches $x$: $n = 2$ versus $n = 8$
#
# Median of $\lVert\partial L/\partial x\rVert / \lVert g\rVert$ over 400 random
# minibatches ($x, g \sim \mathcal N(0,1)$, $\gamma = 1$):

# %%
eps_values = np.array([1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])  # literals: exact powers of ten
ratios = {n: graphs.input_gradient_ratio(n, eps_values) for n in (2, 4, 8, 32)}
print(" eps     n = 2      n = 8")
for i in (8, 6, 4, 3, 0):
    print(f"{eps_values[i]:.0e}  {ratios[2][i]:.1e}   {ratios[8][i]:.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The same, as a picture

# %%
graphs.plot_input_gradient_vs_eps(eps_values, ratios);

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
def sci(value):
    r"""A measured value as LaTeX, 6.1e-05 -> $6\cdot 10^{-5}$."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return rf"${mantissa}\cdot 10^{{{int(exponent)}}}$"


at_default = {n: ratios[n][eps_values.tolist().index(1e-5)] for n in (2, 8)}
claim("at eps = 1e-5 a batch of two passes almost no gradient (median ratio below 1e-3), "
      "a batch of eight almost all of it (above 0.9); 400 random batches",
      at_default[2] < 1e-3 and at_default[8] > 0.9, ratio_2=at_default[2], ratio_8=at_default[8])
prose(rf"""
At PyTorch's default $\epsilon = 10^{{-5}}$ the median ratio is {sci(at_default[2])} for a batch
of two and {at_default[8]:.2f} for a batch of eight. **One reason tiny batches hurt BN.**
(Raschka's slides show Wu & He's ImageNet result that BN's error "increases rapidly"
for small batches — their claim; lecture 5 measures batch-size effects on our data.)
For a conv layer the count is $m = N\cdot H\cdot W$ per channel, so two images of
$8\times 8$ still give $m = 128$ values.
""")

# %% [markdown] slideshow={"slide_type": "notes"}
# The other reasons (noisy statistics, a train/test gap between batch and running
# statistics) are lecture 4 and 5 material. This one is pure algebra: two values always
# normalize to ±1. Note the median hides the rare batches with x_1 ≈ x_2 where the
# gradient explodes instead.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Gradient check: finite differences
#
# Centred differences $\frac{L(x+h e_i)-L(x-h e_i)}{2h}$, error $O(h^2)$;
# `gradcheck.check_layer` draws a **random** upstream gradient. Float64, $h=10^{-5}$:
# a correct gradient gives a relative error of about $10^{-8}$ or less, a wrong one about $10^{-1}$.

# %%
inputs = {"x": rng.standard_normal((6, 4)), "gamma": rng.standard_normal(4), "beta": rng.standard_normal(4)}
reports = {}
for backward in (nf.batchnorm_backward, nf.batchnorm_backward_fast):
    print(backward.__name__)
    reports[backward.__name__] = gradcheck.check_layer(nf.batchnorm_forward, backward, inputs)
    for report in reports[backward.__name__]:
        print("   ", report)

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
worst_rel_error = max(report.rel_error for checks in reports.values() for report in checks)
claim("staged and closed-form backward both pass, with relative errors of 1e-8 or less",
      worst_rel_error <= 1e-8, worst_rel_error=worst_rel_error)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Never check with an all-ones upstream gradient
#
# With $g = \mathbf 1$ the loss is $\sum_i y_i = n\beta + \gamma\sum_i\hat x_i = n\beta$:
# it does not depend on $x$, so the **true** $\partial L/\partial x$ is $0$. A backward
# with a bug that also returns $0$ passes. This one forgets the route through $\sigma^2$:

# %%
def backward_without_variance_route(dout, cache):
    """BUG: treats sigma^2 as a constant; only the routes x -> a and x -> mu."""
    dxhat = dout * cache.gamma
    dx = cache.inv_std * (dxhat - dxhat.mean(axis=0))
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Same bug, two upstream gradients

# %%
x, gamma_, beta_ = inputs["x"], inputs["gamma"], inputs["beta"]
out, cache = nf.batchnorm_forward(x, gamma_, beta_)
checked = {}
for label, dout in [("all ones", np.ones_like(out)), ("random  ", rng.standard_normal(out.shape))]:
    numerical = gradcheck.numerical_gradient(lambda v: nf.batchnorm_forward(v, gamma_, beta_)[0], x.copy(), dout)
    correct, buggy = (np.abs(backward(dout, cache)[0] - numerical).max()
                      for backward in (nf.batchnorm_backward, backward_without_variance_route))
    checked[label.strip()] = {"numerical": np.abs(numerical).max(), "correct": correct, "buggy": buggy}
    print(f"{label}: max|numerical dx| {np.abs(numerical).max():.0e}   max|error| correct {correct:.0e}, buggy {buggy:.0e}")

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
ones, random_ = checked["all ones"], checked["random"]
loss_ones = out.sum()                          # L = sum_i y_i = n * sum_j beta_j
x_part = (gamma_ * cache.xhat.sum(axis=0)).sum()  # gamma * sum_i xhat_i: 0 on paper
claim("with all ones the finite differences return exactly 0", ones["numerical"] == 0.0, **ones)
claim("with all ones both backward passes return only round-off (below 1e-12), so the check passes the bug",
      max(ones["correct"], ones["buggy"]) < 1e-12, **ones)
claim("with a random upstream gradient the correct backward matches (below 1e-8) and the bug is off by order one "
      "(more than 0.1)", random_["correct"] < 1e-8 and random_["buggy"] > 0.1, **random_)
prose(rf"""
With all ones the true gradient is exactly 0, and the finite differences return exactly
{ones["numerical"]:.0f} (why: speaker notes). Both backward passes return round-off, at most
{sci(max(ones["correct"], ones["buggy"]))}: the check passes the bug. With a random upstream
gradient the correct backward is off by {sci(random_["correct"])}, the bug by {random_["buggy"]:.2f}:
order one.
""")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
prose(rf"""
Why the finite differences give exactly 0, not merely something small: every perturbed
loss is the same float64 number, L = n·Σ_j β_j = {loss_ones:.4f}. Its only x-dependent part,
γ·Σ_i x̂_i, is zero on paper and {sci(abs(x_part))} in floating point, far below the spacing of
float64 numbers near L ({sci(np.spacing(loss_ones))}), so L(x + h e_i) and L(x − h e_i) round to
the same number.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## General $n$: a proof, not a test
#
# `symbolic.check_closed_form(n)` lets SymPy differentiate the graph for $n$ samples and
# shows that the result equals the closed form exactly (for every $\epsilon > 0$):

# %%
proofs = {}
for n in (2, 3, 4):
    start = time.perf_counter()
    proofs[n] = symbolic.check_closed_form(n)
    print(f"n = {n}: closed form proved {proofs[n]}  ({time.perf_counter() - start:.2f} s)")
autograd_gap = symbolic.check_against_autograd(4)
print(f"symbolic vs torch autograd, n = 4: max difference {autograd_gap:.1e}")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("SymPy proves the closed form for n = 2, 3, 4", all(proofs.values()), proved=list(proofs.values()))
claim("symbolic and torch autograd agree up to float64 round-off (n = 4)", autograd_gap < 1e-12, gap=autograd_gap)

# %% [markdown] slideshow={"slide_type": "notes"}
# The trick inside check_closed_form: after differentiating, substitute eps = s² - σ².
# Every square root becomes s and the difference is a polynomial, which `expand` can
# decide. Calling `simplify` on the raw expressions instead is much slower (not run here).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Staged versus closed form: speed
#
# The staged version makes more passes over the data (and more temporaries). A quick,
# **indicative** timing on this machine (float32, one thread, best of 7 — the machine
# is shared, so numbers move; the real benchmark is `python benchmarks/bn_kernels.py`):

# %%
speedup = {}
for shape in [(256, 1024), (32, 64, 16, 16)]:
    x32, g32 = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)
    _, cache = nf.batchnorm_forward(x32, np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32))
    staged, fast = (min(timeit.repeat(lambda: backward(g32, cache), number=1, repeat=7))
                    for backward in (nf.batchnorm_backward, nf.batchnorm_backward_fast))
    speedup[shape] = staged / fast
    print(f"{str(shape):18s} staged {staged * 1e3:6.2f} ms   closed form {fast * 1e3:6.2f} ms"
          f"   ratio {staged / fast:.1f}x")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("the closed form is faster than the staged backward on both shapes (one timing run, best of 7)",
      min(speedup.values()) > 1, speedup=list(speedup.values()))

# %% [markdown] slideshow={"slide_type": "notes"}
# Same arithmetic result (the gradient check above), fewer sweeps. normlab.nn.BatchNorm
# uses the closed form inside a torch.autograd.Function; torch's own kernel does the
# same in C++. The benchmark script also compares those and a plain copy of the tensor.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary

# %% tags=["remove-input"]
prose(rf"""
- BN's outputs depend on the **whole minibatch**; backprop routes gradient through $\mu$ and $\sigma^2$ (three terms).
- $\partial L/\partial\beta = \sum_i g_i$, $\partial L/\partial\gamma = \sum_i g_i\hat x_i$ (sums over the batch).
- Closed form: $\partial L/\partial x = \frac{{\gamma}}{{n s}}\,(n g - \sum g - \hat x \sum g\hat x)$ — remove the mean and the $\hat x$ component of $g$.
- $n = 2$: $\partial L/\partial x_1 = 4\epsilon\gamma(g_1-g_2)/(4\epsilon+(x_1-x_2)^2)^{{3/2}} \to 0$ as $\epsilon\to 0$ — two values always normalize to $\pm1$. Measured at $\epsilon = 10^{{-5}}$: a median {sci(at_default[2])} of the gradient's norm passes, against {at_default[8]:.2f} for $n = 8$.
- Check gradients with finite differences and a **random** upstream gradient; all-ones hides bugs.
- Staged and closed form both pass the finite-difference check (worst relative error {sci(worst_rel_error)}); SymPy proves the closed form for $n \le 4$; the closed form was {min(speedup.values()):.1f} to {max(speedup.values()):.1f} times faster here (one timing run on a shared machine: indicative).
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **(The sheet, by hand.)** Backpropagate through the sheet's graph by hand to get
#    $\nabla_{x^{(2)}}L$. Show that $\nabla_{x^{(1)}}L + \nabla_{x^{(2)}}L = 0$, and explain
#    why $\sum_i \partial L/\partial x_i = 0$ must hold for *any* batch size.
# 2. **(Conceptual.)** From the closed form, show that $\sum_i \hat x_i\,\partial L/\partial x_i \to 0$
#    as $\epsilon \to 0$. Use the two constraints to explain, without SymPy, why the
#    gradient vanishes for $n = 2$ but not for $n = 3$.
# 3. **(Which bugs does all-ones catch?)** Write a backward that drops the route through
#    $\mu$ (keep the $\sigma^2$ route). Check it against finite differences with an all-ones
#    and with a random upstream gradient. Which of the two bugs (this one, and the lecture's)
#    does the all-ones check catch, and why?
# 4. **(Convolutions.)** Gradient-check `batchnorm_backward_fast` on input of shape
#    $(2, 3, 4, 4)$. What is $m$ here? Measure $\lVert\partial L/\partial x\rVert/\lVert g\rVert$
#    for a batch of **two** $1\times 4\times 4$ images at $\epsilon = 10^{-5}$: does the
#    $n = 2$ collapse happen?
# 5. **(SymPy, $n = 3$.)** Compute $\lim_{\epsilon\to0}\partial L/\partial x_1$ for $n = 3$
#    and show it is not zero. Then measure the surviving fraction
#    $\lVert\partial L/\partial x\rVert\,s/(|\gamma|\,\lVert g\rVert)$ for $n = 3, 4, 8$ and
#    compare with $\sqrt{(n-2)/n}$.
