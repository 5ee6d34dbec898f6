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
# # Lecture 07 — Initialization, and what BatchNorm changes about it
#
# Where training starts decides whether it starts at all.
#
# 1. Why not start from zero? Symmetry
# 2. Variance preservation: Xavier (Glorot) and Kaiming (He)
# 3. Activations and gradients through 20 layers, with and without BN
# 4. Does BN make the initialization irrelevant? Measured on digits
# 5. Scale invariance $\mathrm{BN}(\alpha Wx + b) = \mathrm{BN}(Wx)$ and the $1/\alpha$ gradient
# 6. Why BN likes weight decay: the effective learning rate $\eta/\lVert W\rVert^2$

# %% [markdown] slideshow={"slide_type": "notes"}
# Seeds: Raschka's lecture slides ("Weight Initialization (Xavier, Kaiming He)"; "if
# BatchNorm is used, initial feature weight choice is less important"), Schilling's thesis
# talk ("Batchnorm handles arbitrary inits", the scale-invariance formulas, "Batchnorm likes
# some weight decay", "variance-preserving still best"), the UCLA discussion sheet (multiple
# choice question 2 on zero initialization) and the BN notes ("sigmoid without / with BN",
# "learning is less affected by parameters initialization"). Every claim is measured here on
# scikit-learn's digits or on random inputs. Budget: about 30 s to run.

# %% slideshow={"slide_type": "skip"}
import numpy as np
import torch

from normlab import data, models, train
from normlab.nn import BatchNorm
from normlab.notebook import show_source
from normlab.plots.depth import (activation_statistics, plot_activation_histograms, plot_depth_profiles,
                                 plot_weight_norms)
from normlab.train import fit_tracking_weight_norms

torch.set_num_threads(1)
digits = data.load_digits(flat=True)  # 8x8 images as 64 standardized pixels, 10 classes
SEEDS = (0, 1, 2)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## A question from the discussion sheet
#
# UCLA discussion sheet, multiple choice question 2:
#
# > **Statement 1:** It is possible to train a network well by initializing all the weights as 0.
# >
# > **Statement 2:** It is possible to train a network well by initializing biases as 0.
#
# (a) 1 true, 2 false  (b) 2 true, 1 false  (c) both true  (d) both false
#
# Let us not guess: train a one-hidden-layer MLP (32 units) on digits both ways.

# %% slideshow={"slide_type": "subslide"}
def symmetry_check(activation, zero_weights, seed=0):
    """Train 64-32-10 on digits; return (largest difference between two hidden units'
    weight rows, norm of the hidden weights, best validation accuracy)."""
    torch.manual_seed(seed)
    net = models.mlp(64, 10, hidden=(32,), activation=activation)  # random W, every bias 0
    if zero_weights:
        with torch.no_grad():
            for layer in (net[1], net[3]):
                layer.weight.zero_()
    train_loader, val_loader, _ = digits.loaders(batch_size=64, seed=seed)
    history = train.fit(net, train_loader, val_loader, epochs=3, seed=seed, progress=False)
    rows = net[1].weight.detach()  # one row of 64 weights per hidden unit
    return (rows - rows[0]).abs().max().item(), rows.norm().item(), history.best_val_acc


# %% slideshow={"slide_type": "subslide"}
print("activation  weights  max|unit_j - unit_1|  ||W1||   val acc")
for activation in ("sigmoid", "relu"):
    for zero in (True, False):
        spread, norm, acc = symmetry_check(activation, zero)
        print(f"{activation:10s}  {'zero' if zero else 'random':7s}  {spread:20.3g}  {norm:6.3f}  {acc:8.3f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Zero weights: every hidden unit is the same unit
#
# With every weight (and bias) 0, all hidden units output the same $h_j = g(0)$. Then
#
# * output weights: $\partial L/\partial W^{(2)}_{kj} = \delta^{(2)}_k\, h_j$ — equal for every unit $j$,
#   so the columns of $W^{(2)}$ stay equal;
# * hidden units: $\delta_j = g'(z_j) \sum_k W^{(2)}_{kj}\,\delta^{(2)}_k$ and
#   $\partial L/\partial w^{(1)}_j = \delta_j\, x$ — equal for every $j$.
#
# Step after step, the units stay identical. Measured: after 3 epochs the 32 sigmoid units
# still have *exactly* equal weights (one unit, copied 32 times); with ReLU, $g(0) = 0$
# kills every gradient into $W^{(1)}$ and the hidden weights never move.
# Random weights with **zero biases** train fine — that is what `models.mlp` does.
#
# **Answer: (b).** Initialization must *break the symmetry*; biases need not.

# %% [markdown] slideshow={"slide_type": "notes"}
# The same argument holds for any constant initialization, not only 0 (exercise 1).
# Biases can start at 0 because the random weights already make the units differ.
# Schilling's thesis talk puts it as "symmetry-breaking and variance-preserving inits
# crucial" — the first half is this slide, the second half is the rest of the lecture.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## How large should random weights be? One layer
#
# $z_j = \sum_{i=1}^{n_\text{in}} w_{ji}\, x_i$ with weights i.i.d., mean 0, independent of
# the inputs. The terms are uncorrelated, so
#
# $$\operatorname{Var}(z_j) = \sum_{i=1}^{n_\text{in}} \operatorname{Var}(w_{ji} x_i)
#   = n_\text{in}\,\operatorname{Var}(w)\,\mathbb E[x^2]
#   \;\overset{\mathbb E x = 0}{=}\; n_\text{in}\,\operatorname{Var}(w)\,\operatorname{Var}(x).$$
#
# Through $L$ layers the variance is multiplied by $(n_\text{in}\operatorname{Var}(w))^L$
# (times what the activations do): anything but a factor 1 explodes or vanishes
# geometrically with depth.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Xavier (Glorot & Bengio, 2010)
#
# * Forward: keep $\operatorname{Var}(z) = \operatorname{Var}(x)$ ⟹ $\operatorname{Var}(w) = 1/n_\text{in}$.
# * Backward: $\delta x_i = \sum_j w_{ji}\,\delta z_j$ ⟹ keep the gradient's variance with $\operatorname{Var}(w) = 1/n_\text{out}$.
# * Compromise: $\displaystyle \operatorname{Var}(w) = \frac{2}{n_\text{in} + n_\text{out}}$,
#   e.g. $w \sim \mathcal U(-a, a)$ with $a = \sqrt{6/(n_\text{in}+n_\text{out})}$ (since $\operatorname{Var} = a^2/3$).
#
# Assumes the activation is the identity near 0 with zero-mean output: true for tanh
# ($\tanh'(0) = 1$), **false for the sigmoid** ($\sigma(z) \approx \tfrac12 + \tfrac z4$).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Kaiming (He et al., 2015): the factor 2 for ReLU
#
# For $z$ symmetric around 0, ReLU keeps the positive half:
# $\mathbb E[\operatorname{relu}(z)^2] = \tfrac12 \operatorname{Var}(z)$. So from one
# pre-activation to the next
#
# $$\operatorname{Var}(z^{(l+1)}) = n_\text{in}\operatorname{Var}(w)\cdot\tfrac12\operatorname{Var}(z^{(l)})
# \quad\Longrightarrow\quad \operatorname{Var}(w) = \frac{2}{n_\text{in}}.$$
#
# Xavier in a ReLU net loses a factor 2 of variance per layer: $2^{-20} \approx 10^{-6}$
# after 20 layers.

# %% slideshow={"slide_type": "subslide"}
torch.manual_seed(0)
z = 3.0 * torch.randn(1_000_000, dtype=torch.float64)
print(f"E[relu(z)^2] / Var(z) = {(z.clamp(min=0) ** 2).mean() / z.var():.4f}   (theory 0.5)")

x = torch.randn(4096, 128, dtype=torch.float64).clamp(min=0)  # ReLU outputs: E[x^2] = 0.5
for name, var_w in (("Xavier", 2 / (128 + 128)), ("Kaiming", 2 / 128)):
    w = var_w ** 0.5 * torch.randn(128, 128, dtype=torch.float64)
    z_next = x @ w.T
    print(f"{name:8s} Var(z) = {z_next.var():.3f}   predicted n_in Var(w) E[x^2] = {128 * var_w * 0.5:.3f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## How `normlab.models` initializes
#
# Normal versions of both; biases 0; the output layer included.

# %%
show_source(models.initialize_weights, docstring=False)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## An experiment through 20 layers
#
# `activation_statistics` builds `models.mlp` with 20 hidden layers of 128 units, sends one
# batch of 128 inputs $x \sim \mathcal N(0, I)$ through it (training mode), and backpropagates
# a cross-entropy loss. Per layer it records the output's histogram, mean and std, and
# $\lVert\partial L/\partial W_l\rVert$.
#
# Four initializations × three activations × {no norm, BN before the activation}:

# %%
INITS = {"N(0, 1)": dict(init="normal", init_std=1.0), "N(0, 0.01²)": dict(init="normal", init_std=0.01),
         "Xavier": dict(init="xavier"), "Kaiming": dict(init="kaiming")}
stats = {(activation, init, norm): activation_statistics(depth=20, width=128, num_samples=128,
                                                         activation=activation, norm=norm, **INITS[init])
         for activation in ("tanh", "sigmoid", "relu") for init in INITS for norm in ("none", "batch")}


def pick(activation, norm, inits=tuple(INITS)):
    return [stats[activation, init, norm] for init in inits]


# %% [markdown] slideshow={"slide_type": "slide"}
# ## tanh, no normalization: four initializations

# %%
fig = plot_activation_histograms(pick("tanh", "none"))

# %% [markdown] slideshow={"slide_type": "notes"}
# Row 1, N(0, 1): $n_\text{in}\operatorname{Var}(w) = 128$, the pre-activations have a
# std of about 11 and tanh sits at ±1 — saturated in every layer.
# Row 2, N(0, 0.01²): $n_\text{in}\operatorname{Var}(w) = 0.0128$, the std shrinks by
# about $\sqrt{0.0128} \approx 0.11$ per layer: 1e-19 at layer 20.
# Row 3, Xavier: tanh is the identity only near 0 and contracts elsewhere, so the std
# shrinks slowly (0.63 → 0.16). Row 4, Kaiming's extra factor 2 compensates that
# contraction better here (PyTorch's recommended gain for tanh is 5/3, in between).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## tanh: activations and gradients through depth

# %%
fig = plot_depth_profiles(pick("tanh", "none"))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Why the tanh gradient grows with N(0, 1)
#
# Too small: activations *and* gradients vanish (≈ 1e-19). Too large (N(0, 1)): the
# units saturate, yet the gradient reaching layer 1 is **huge**, not small. Backward, each
# layer multiplies it by about $\sqrt{n_\text{out}\,\sigma_w^2\,\mathbb E[\tanh'(z)^2]}
# \approx \sqrt{128 \cdot 0.05} \approx 2.5$: saturation shrinks it ($\mathbb E[\tanh'^2] \approx 0.05$),
# the large weights grow it (128) — here the weights win.

# %%
grads = stats["tanh", "N(0, 1)", "none"].weight_grad_norms
print(f"N(0, 1), tanh: ||dL/dW|| = {grads[0]:.2g} at layer 1, {grads[-1]:.2g} at layer 20: "
      f"a factor {(grads[0] / grads[-1]) ** (1 / 19):.2f} per layer")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## ReLU, with and without BN
#
# Rows 1–3 without normalization; row 4 Kaiming with BN before every ReLU.

# %%
relu_rows = pick("relu", "none", ("N(0, 1)", "Xavier", "Kaiming")) + [stats["relu", "Kaiming", "batch"]]
fig = plot_activation_histograms(relu_rows)

# %% [markdown] slideshow={"slide_type": "notes"}
# Look at the x-axes: N(0, 1) reaches 1e18 by layer 20 (the growth factor is
# $\sqrt{128/2} = 8$ per layer), Xavier shrinks by $1/\sqrt2$ per layer, Kaiming keeps the
# scale. About half of every layer is exactly 0 (the panel says how much); the y-axis is cut
# above the other bins. With BN every layer looks like layer 1.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## ReLU: activations and gradients through depth

# %%
fig = plot_depth_profiles(pick("relu", "none"))

# %% [markdown] slideshow={"slide_type": "fragment"}
# The straight lines on the log axes are the geometric factors of the variance formula:
# $n_\text{in}\operatorname{Var}(w)/2$ per layer is 64 (N(0,1)), 0.0064 (N(0, 0.01²)),
# ½ (Xavier), 1 (Kaiming). The gradients follow: 1e18, 1e-22, 1e-3, ≈ 1.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## A deep sigmoid net, with and without BN
#
# The BN notes show "sigmoid without BN / sigmoid with BN"; here through 20 layers.

# %%
sigmoid_rows = pick("sigmoid", "none", ("N(0, 1)", "Xavier")) + [stats["sigmoid", "Xavier", "batch"]]
fig = plot_activation_histograms(sigmoid_rows)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The sigmoid net forgets its input
#
# The histograms of Xavier without BN still have a spread — but it is the spread *between
# units*. The std over the **batch** (how much a unit's output depends on the input):

# %%
fig = plot_depth_profiles(pick("sigmoid", "none", ("Xavier", "Kaiming")) + pick("sigmoid", "batch", ("Xavier",)),
                          spread="sample_stds")

# %% [markdown] slideshow={"slide_type": "notes"}
# Why: sigmoid outputs have mean 1/2, so $z = Wh$ is dominated by $W\cdot\tfrac12\mathbf 1$,
# the same for every input; the input-dependent part is multiplied by $\sigma'(z) \le 1/4$
# per layer. By layer 10 every input gives the same vector (std over the batch ≈ 0), and
# the gradient reaching layer 1 is about 1e-13 (right panel). This is Schilling's "vanilla
# network is stuck" with sigmoids, seen at initialization. BN re-centres and re-scales every
# pre-activation over the batch, so the input-dependent part survives.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## With BN, the initialization does not change the forward pass
#
# Std of the layer-20 output, every init, with BN:

# %%
for activation in ("tanh", "sigmoid", "relu"):
    layer20 = [s.stds[-1] for s in pick(activation, "batch")]
    print(f"{activation:8s}" + "".join(f"  {init} {std:.4f}" for init, std in zip(INITS, layer20)))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## ReLU with BN: the same activations, different gradients

# %%
fig = plot_depth_profiles(pick("relu", "batch"), figsize=(9, 3.4))

# %% [markdown] slideshow={"slide_type": "notes"}
# The four nets share the same random draws (same seed), so their weights differ only by
# a factor per layer — and BN removes exactly that factor (section 5). The std differs in
# the third digit only for N(0, 0.01²), where $\alpha^2\operatorname{Var}(Wx)$ comes close
# to $\epsilon = 10^{-5}$. The *gradients* still differ by init (right panel): that is where
# the initialization keeps mattering. Note also that with BN the weight gradients grow
# toward the input, by about 1.2× per layer here: BN does not make a deep net's gradients
# uniform at initialization (Yang et al. 2019 analyse this "gradient explosion" of deep BN
# nets).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Does it matter for training? The seeds' claims
#
# * Raschka's lecture slides: "if BatchNorm is used, initial feature weight choice is less important".
# * Schilling's thesis talk: "Batchnorm handles arbitrary inits" — with $\mathcal N(0, 1)$ BN
#   learns smoothly but with *worse accuracy* than Kaiming, vanilla "is stuck";
#   conclusion: "variance-preserving still best".
#
# Our test: MLP 64-128-128-128-10 (ReLU) on digits, $\mathcal N(0,1)$ vs Kaiming, with and
# without BN; the thesis' recipe (SGD + Nesterov, $\eta = 0.01$, batch 64) for 5 epochs, 3 seeds.

# %% slideshow={"slide_type": "subslide"}
def init_run(norm, init, seed, epochs=5):
    torch.manual_seed(seed)
    net = models.mlp(64, 10, hidden=(128, 128, 128), norm=norm, init=init, init_std=1.0)
    train_loader, val_loader, test_loader = digits.loaders(batch_size=64, seed=seed)
    history = train.fit(net, train_loader, val_loader, epochs=epochs, seed=seed, progress=False)
    return train.evaluate(net, test_loader)[1], history.diverged


print("norm   init      test accuracy, 3 seeds    mean")
for norm in ("none", "batch"):
    for init in ("normal", "kaiming"):
        runs = [init_run(norm, init, seed) for seed in SEEDS]
        cells = "  ".join(f"{acc:.3f}{'*' if diverged else ' '}" for acc, diverged in runs)
        print(f"{norm:5s}  {init:8s}  {cells}  {np.mean([acc for acc, _ in runs]):.3f}")
print("* the loss became non-finite and training stopped (NaN logits count as wrong)")

# %% [markdown] slideshow={"slide_type": "fragment"}
# Measured: without BN, $\mathcal N(0,1)$ does not train (the loss overflows in two of three
# runs; the third stays at chance, 0.10); with BN it trains, but ends about 11 points below Kaiming.
# Both seeds' claims hold here: BN makes the init *less* important, not unimportant.
# Why would BN + $\mathcal N(0, 1)$ be worse if BN removes the weights' scale? Next.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Scale invariance (Schilling's thesis talk)
#
# BN subtracts the batch mean and divides by the batch std, so a factor $\alpha > 0$ on the
# weights and any bias cancel:
#
# $$\mathrm{BN}\big((\alpha W)x + b\big) = \mathrm{BN}(Wx), \qquad
# \frac{\partial\,\mathrm{BN}((\alpha W)x)}{\partial x} = \frac{\partial\,\mathrm{BN}(Wx)}{\partial x}, \qquad
# \frac{\partial\,\mathrm{BN}((\alpha W)x)}{\partial(\alpha W)} = \frac1\alpha\,\frac{\partial\,\mathrm{BN}(Wx)}{\partial W}.$$
#
# "Larger weights → smaller gradients and vice versa." Silva's CNN slides: BN "can cancel
# out large $W$". (Up to $\epsilon$, which breaks the invariance once
# $\alpha^2\operatorname{Var}(Wx) \approx \epsilon$.)

# %% slideshow={"slide_type": "subslide"}
torch.manual_seed(0)
x = torch.randn(64, 20, dtype=torch.float64, requires_grad=True)
W, b, upstream = (torch.randn(*shape, dtype=torch.float64) for shape in ((8, 20), (8,), (64, 8)))
bn = BatchNorm(8, dtype=torch.float64)  # normlab's own BatchNorm, training mode


def bn_forward_backward(alpha):
    scaled_W = (alpha * W).requires_grad_()
    out = bn(x @ scaled_W.T + b)
    dx, dW = torch.autograd.grad((out * upstream).sum(), (x, scaled_W))
    return out.detach(), dx, dW, scaled_W.detach()


# %% slideshow={"slide_type": "subslide"}
out_1, dx_1, dW_1, _ = bn_forward_backward(1.0)
print("  alpha  max|out - out(1)|  max|dx - dx(1)|  alpha·||dW||/||dW(1)||  cos(W, dW)")
for alpha in (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0):
    out, dx, dW, scaled_W = bn_forward_backward(alpha)
    cosine = (scaled_W * dW).sum() / (scaled_W.norm() * dW.norm())
    print(f"{alpha:7g}  {(out - out_1).abs().max():17.1e}  {(dx - dx_1).abs().max():15.1e}"
          f"  {alpha * dW.norm() / dW_1.norm():22.6f}  {cosine:10.1e}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## What the table shows
#
# * Output and input gradient do not depend on $\alpha$ — up to the $\epsilon$ in
#   $\sqrt{\sigma^2 + \epsilon}$: the deviations grow like $\epsilon/(\alpha^2\operatorname{Var}(Wx))$,
#   1e-6 at $\alpha \ge 1$, 1e-2 at $\alpha = 0.01$, and at $\alpha = 10^{-3}$ the invariance is gone.
# * $\alpha\,\lVert\partial L/\partial(\alpha W)\rVert = \lVert\partial L/\partial W\rVert$: the gradient scales as $1/\alpha$.
# * The gradient is **orthogonal** to $W$ (cosine ≈ 0). Why: $L(\alpha W) = L(W)$ for all
#   $\alpha$; differentiate at $\alpha = 1$: $\langle W, \nabla L(W)\rangle = 0$ (exactly, for $\epsilon = 0$).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The effective learning rate
#
# Only the direction $\hat W = W/\lVert W\rVert$ of a layer followed by BN matters. An SGD
# step $\Delta W = -\eta\,\nabla L(W) = -\eta\,\nabla L(\hat W)/\lVert W\rVert$ is orthogonal
# to $W$, so it turns the direction by
#
# $$\lVert\Delta \hat W\rVert \approx \frac{\lVert\Delta W\rVert}{\lVert W\rVert}
#   = \frac{\eta}{\lVert W\rVert^2}\,\lVert\nabla L(\hat W)\rVert :
# \qquad \eta_\text{eff} = \frac{\eta}{\lVert W \rVert^2}.$$
#
# $\mathcal N(0, 1)$ vs Kaiming ($\operatorname{Var}(w) = 2/n_\text{in}$): $\lVert W\rVert^2$
# is $n_\text{in}/2$ times larger, so the same $\eta$ is a much smaller effective step:

# %%
for init in ("normal", "kaiming"):
    torch.manual_seed(0)
    net = models.mlp(64, 10, hidden=(128, 128, 128), norm="batch", init=init)
    hidden = [m for m in net if isinstance(m, torch.nn.Linear)][:-1]
    print(f"{init:8s} eta_eff = 0.01/||W||^2 per hidden layer: "
          + "  ".join(f"{0.01 / layer.weight.norm() ** 2:.1e}" for layer in hidden))

# %% [markdown] slideshow={"slide_type": "notes"}
# So BN + N(0, 1) is, for the hidden layers, the Kaiming net trained with a learning rate
# 32 to 64 times smaller — a plausible reason for its worse accuracy after 5 epochs.
# Exercise 5 tests this: rescaling the hidden weights to Kaiming's norm changes nothing in
# the forward pass but restores the effective learning rate. (The output layer is not
# followed by BN; N(0, 1) there makes the logits large — the exercise separates the two.)
# This view is from later work (van Laarhoven 2017; Hoffer et al. 2018, "Norm matters";
# Zhang et al. 2019, "Three mechanisms of weight decay regularization").

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Why BN likes weight decay
#
# Without decay, the step is orthogonal to $W$, so the norm can only **grow**:
# $\lVert W - \eta\nabla L\rVert^2 = \lVert W\rVert^2 + \eta^2\lVert\nabla L\rVert^2$ — and
# $\eta_\text{eff}$ only shrinks.
#
# With weight decay $\lambda$ (gradient of $\tfrac\lambda2\lVert W\rVert^2$), every step also
# multiplies $W$ by $1 - \eta\lambda$. For a BN layer that changes *nothing* in the function —
# it shrinks $\lVert W\rVert$, the gradient grows as $1/\lVert W\rVert$ and the effective
# step $\eta/\lVert W\rVert^2$ grows. Weight decay under BN is a learning-rate schedule.
#
# Timescale: $\lVert W\rVert$ shrinks like $e^{-\eta\lambda t}$, i.e. over $1/(\eta\lambda)$ steps.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Measured: ‖W‖ and η/‖W‖² during training
#
# Same MLP on digits, plain SGD with $\eta = 0.1$, 5 epochs (100 steps), 3 seeds.
# Schilling's $\lambda = 5\cdot10^{-4}$ has a timescale of 20 000 steps; to see the effect in
# 100 steps we use $\lambda = 0.03$ (timescale 333 steps). (torch's `weight_decay` acts on
# every parameter, BN's $\gamma, \beta$ and the output layer included.)

# %%
def decay_run(norm, weight_decay, seed, epochs=5):
    torch.manual_seed(seed)
    net = models.mlp(64, 10, hidden=(128, 128, 128), norm=norm)
    return fit_tracking_weight_norms(net, digits, epochs=epochs, lr=0.1, weight_decay=weight_decay, seed=seed)


decay_runs = {(norm, decay): [decay_run(norm, decay, seed) for seed in SEEDS]
              for norm in ("batch", "none") for decay in (0.0, 0.03)}

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## ‖W‖ of hidden layer 2, with and without decay

# %%
fig = plot_weight_norms([decay_runs["batch", 0.0], decay_runs["batch", 0.03]],
                        ["BN, λ = 0", "BN, λ = 0.03"], layer=1)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## And the gradient grew as 1/‖W‖

# %%
print("run            ||W2|| start → end   ||dL/dW2|| first → last epoch   eta_eff start → end")
for decay in (0.0, 0.03):
    h = decay_runs["batch", decay][0]
    print(f"BN, λ = {decay:<5g}  {h.weight_norms[0, 1]:6.2f} → {h.weight_norms[-1, 1]:5.2f}"
          f"   {h.grad_norms[0, 1]:16.3f} → {h.grad_norms[-1, 1]:5.3f}"
          f"   {h.effective_lr[0, 1]:.1e} → {h.effective_lr[-1, 1]:.1e}")

# %% [markdown] slideshow={"slide_type": "notes"}
# Without decay the norm stays practically where it started: the growth per step is
# $\eta^2\lVert\nabla L\rVert^2 \approx 10^{-2}$ or less against $\lVert W\rVert^2 = 256$. With
# decay the norm falls by a quarter and the effective learning rate almost doubles (×1.85;
# the band is the min–max over 3 seeds). The gradient at the end of training is larger with
# decay — the $1/\lVert W\rVert$ of the scale-invariance slide.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Does it help accuracy? "Weight decay: batchnorm always ahead"
#
# Schilling's thesis talk, with $\lambda = 5\cdot10^{-4}$ on MNIST/SVHN/CIFAR: "both models
# achieve higher accuracies than baseline", "batchnorm consistently ahead". Ours: digits,
# the runs above, test accuracy over 3 seeds.

# %% slideshow={"slide_type": "subslide"}
mean_acc = {key: np.mean([h.test_acc for h in runs]) for key, runs in decay_runs.items()}
print("norm   λ      test accuracy, 3 seeds  mean")
for (norm, decay), runs in decay_runs.items():
    accs = "  ".join(f"{h.test_acc:.3f}" for h in runs)
    print(f"{norm:5s}  {decay:<5g}  {accs}   {mean_acc[norm, decay]:.3f}")
for decay in (0.0, 0.03):
    print(f"λ = {decay:<5g} BN ahead by {100 * (mean_acc['batch', decay] - mean_acc['none', decay]):+.1f} points")
for norm in ("batch", "none"):
    print(f"{norm:5s}: decay changes the mean by {100 * (mean_acc[norm, 0.03] - mean_acc[norm, 0.0]):+.1f} points")

# %% [markdown] slideshow={"slide_type": "fragment"}
# Measured here: BN is ahead with and without decay (by 0.8 and 1.8 points): "BN always
# ahead" holds. Decay moved the means by +0.4 points with BN and −0.6 without — but one test
# image of 359 is 0.3 points and the seeds spread over about a point, so "both models achieve
# higher accuracies" is *not* reproduced in runs this short. The sign pattern (BN gains, the
# plain net loses) is what "BN likes weight decay" predicts; here it is within the noise.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# * **Symmetry:** all-zero (or constant) weights make every hidden unit the same unit
#   forever; zero biases are fine. Discussion sheet Q2: (b).
# * **Variance:** $\operatorname{Var}(z) = n_\text{in}\operatorname{Var}(w)\,\mathbb E[x^2]$ per layer,
#   compounded over depth. Xavier $2/(n_\text{in}+n_\text{out})$ for tanh; Kaiming $2/n_\text{in}$ for ReLU.
# * **Through 20 layers:** wrong scales vanish or explode geometrically (1e-22 … 1e18);
#   deep sigmoid nets forget the input; saturated tanh can still explode its gradients.
# * **BN** makes the forward pass independent of each layer's weight scale:
#   $\mathrm{BN}(\alpha Wx + b) = \mathrm{BN}(Wx)$, gradient $\propto 1/\alpha$ and orthogonal to $W$.
#   On digits, BN + $\mathcal N(0,1)$ trains (0.84) where the plain net fails (0.07), but below
#   BN + Kaiming (0.95): variance-preserving still best.
# * **Effective learning rate** $\eta/\lVert W\rVert^2$: it explains BN + $\mathcal N(0,1)$'s slow
#   training (32–64× smaller steps) and "BN likes weight decay": decay shrinks $\lVert W\rVert$
#   and speeds up BN layers (1.85× in 100 steps with λ = 0.03; no clear accuracy gain in runs this short).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **(Discussion sheet, MCQ 2.)** Answer it and justify in two sentences. Then initialize
#    every weight of a 64-32-10 tanh MLP to the *same nonzero* constant 0.05 (biases 0),
#    train 10 epochs on digits and check whether the hidden units stay identical.
# 2. **(Derivation.)** Leaky ReLU $g(z) = \max(z, az)$: show that
#    $\operatorname{Var}(w) = 2/((1 + a^2)\,n_\text{in})$ preserves the variance. Check it
#    numerically for $a = 0.2$ through 20 layers of width 128.
# 3. **(Coding.)** With `activation_statistics`, scan $\sigma$ of $\mathcal N(0,\sigma^2)$
#    for a 20-layer ReLU net (width 128, no norm) and find the $\sigma$ for which the std of
#    layer 20 equals that of layer 1. Compare with Kaiming's $\sqrt{2/128}$.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Exercises (continued)
#
# 4. **(Scale invariance.)** From $f(\alpha w) = f(w)$ for all $\alpha > 0$, derive
#    $\nabla f(\alpha w) = \frac1\alpha\nabla f(w)$ and $\langle w, \nabla f(w)\rangle = 0$.
#    Conclude that plain SGD without weight decay can only increase $\lVert w\rVert$, and check
#    $\lVert w_{t+1}\rVert^2 = \lVert w_t\rVert^2 + \eta^2\lVert\nabla f\rVert^2$ for one step on a BN layer.
# 5. **(Experiment.)** Test the effective-learning-rate explanation of "BN + $\mathcal N(0,1)$ is
#    worse than BN + Kaiming": (a) multiply each hidden weight matrix of the $\mathcal N(0,1)$ BN
#    net by $\sqrt{2/n_\text{in}}$ — check that the training-mode output does not change — and
#    train; (b) instead re-initialize only the output layer with Kaiming. Which recovers the accuracy?
# 6. **(Weight decay timescale.)** With Schilling's $\lambda = 5\cdot10^{-4}$ and $\eta = 0.1$:
#    how many steps until decay alone shrinks $\lVert W\rVert$ by $1/e$? Measure
#    $\lVert W\rVert$ of the BN net after 5 epochs (100 steps) with this $\lambda$ and compare.
