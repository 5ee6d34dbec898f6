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
# 7. The weight-scale sweep (CS231n), and watching training layer by layer (Karpathy)

# %% [markdown] slideshow={"slide_type": "notes"}
# Seeds: Raschka's lecture slides ("Weight Initialization (Xavier, Kaiming He)"; "if
# BatchNorm is used, initial feature weight choice is less important"), Schilling's thesis
# talk ("Batchnorm handles arbitrary inits", the scale-invariance formulas, "Batchnorm likes
# some weight decay", "variance-preserving still best"), the UCLA discussion sheet (multiple
# choice question 2 on zero initialization; its remark on the sigmoid's gradient, with an
# erratum) and the BN notes ("sigmoid without / with BN", "learning is less affected by
# parameters initialization"). Every statement about a measurement is measured here on
# scikit-learn's digits or on random inputs and checked by a `claim`; the seeds' claims the
# lecture does not measure (gradient clipping, the Gaussian prior behind weight decay, very
# deep nets in training) are marked as such where they come up.
#
# Beyond the seeds, section 7 adds what the best public material on the topic has: the
# weight-scale sweep of Stanford's CS231n (assignment 2, the batch-normalization notebook) and
# the training-time diagnostics of Andrej Karpathy's "Building makemore part 3"; exercises 7–10
# are d2l.ai's batch-normalization exercises, measured in the solutions.

# %% slideshow={"slide_type": "skip"}
import math

import numpy as np
import torch

from normlab import data, models, stats, train
from normlab.nn import BatchNorm
from normlab.notebook import claim, prose, show_source
from normlab.plots import variants
from normlab.plots.depth import (activation_statistics, plot_activation_histograms, plot_depth_profiles,
                                 plot_training_diagnostics, plot_weight_norms, plot_weight_scale_sweep)
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
symmetry = {(activation, zero): symmetry_check(activation, zero)
            for activation in ("sigmoid", "relu") for zero in (True, False)}
print("activation  weights  max|unit_j - unit_1|  ||W1||   val acc")
for (activation, zero), (spread, norm, acc) in symmetry.items():
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
# Step after step, the units stay identical.

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
zero_acc = max(symmetry["sigmoid", True][2], symmetry["relu", True][2])
random_acc = min(symmetry["sigmoid", False][2], symmetry["relu", False][2])
claim("after 3 epochs from zero weights the 32 sigmoid units still have exactly equal weights, though they moved",
      symmetry["sigmoid", True][0] == 0.0 and symmetry["sigmoid", True][1] > 0, sigmoid_zero=symmetry["sigmoid", True])
claim("with ReLU and zero weights the hidden weights never move (exactly 0 after 3 epochs)",
      symmetry["relu", True][1] == 0.0, relu_zero=symmetry["relu", True])
claim("zero weights stay at chance (10 classes), random weights with zero biases train (one seed)",
      zero_acc < 0.15 and random_acc > 0.5, zero_acc=zero_acc, random_acc=random_acc)
prose(rf"""
Measured: after 3 epochs the 32 sigmoid units still have *exactly* equal weights — they moved
($\lVert W^{{(1)}}\rVert$ = {symmetry["sigmoid", True][1]:.3f}), all together: one unit, copied 32
times; with ReLU, $g(0) = 0$ kills every gradient into $W^{{(1)}}$ and the hidden weights stay
exactly 0. Both stay at chance (validation accuracy at most {zero_acc:.2f}). Random weights with
**zero biases** train ({random_acc:.2f} or more after 3 epochs) — that is what `models.mlp` does.

**Answer: (b).** Initialization must *break the symmetry*; biases need not.
""")

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
profiles = {(activation, init, norm): activation_statistics(depth=20, width=128, num_samples=128,
                                                            activation=activation, norm=norm, **INITS[init])
            for activation in ("tanh", "sigmoid", "relu") for init in INITS for norm in ("none", "batch")}


def pick(activation, norm, inits=tuple(INITS)):
    return [profiles[activation, init, norm] for init in inits]


# %% [markdown] slideshow={"slide_type": "slide"}
# ## tanh, no normalization: four initializations

# %%
fig = plot_activation_histograms(pick("tanh", "none"))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
big, small, xavier, kaiming = pick("tanh", "none")
# the next layer's pre-activation: n_in Var(w) E[h^2], with E[h^2] = std^2 + mean^2 of this layer's output
tanh_pre_std = np.sqrt(128 * 1.0 * (big.stds[:-1] ** 2 + big.means[:-1] ** 2)).mean()
small_factor = (small.stds[-1] / small.stds[0]) ** (1 / 19)
settled = kaiming.stds[4:]
claim("tanh, N(0, 0.01²): the std shrinks by about sqrt(0.0128) per layer (within 5 %)",
      abs(small_factor / 0.0128 ** 0.5 - 1) < 0.05, factor=small_factor)
claim("tanh, N(0, 1): saturated in every layer (pre-activation std above 5)", tanh_pre_std > 5,
      pre_activation_std=tanh_pre_std)
claim("tanh, Xavier: the std shrinks slowly, to less than half of layer 1's by layer 20 but not geometrically "
      "(still above a tenth)", 0.1 * xavier.stds[0] < xavier.stds[-1] < 0.5 * xavier.stds[0], stds=list(xavier.stds))
claim("tanh, Kaiming: the std settles (layers 5-20 within 5 % of each other)",
      settled.max() < 1.05 * settled.min(), stds=list(kaiming.stds))
prose(rf"""
Row 1, N(0, 1): $n_\text{{in}}\operatorname{{Var}}(w) = 128$, the pre-activations have a
std of about {tanh_pre_std:.0f} and tanh sits at ±1 — saturated in every layer.
Row 2, N(0, 0.01²): $n_\text{{in}}\operatorname{{Var}}(w) = 0.0128$, the std shrinks by
about $\sqrt{{0.0128}} \approx 0.11$ per layer (measured: {small_factor:.3f}): {small.stds[-1]:.0e} at layer 20.
Row 3, Xavier: tanh is the identity only near 0 and contracts elsewhere, so the std
shrinks slowly ({xavier.stds[0]:.2f} → {xavier.stds[-1]:.2f}). Row 4, Kaiming: its extra factor 2 of
variance compensates that contraction here — the std settles at {settled.mean():.2f}. In terms of
the gain $g$ in $\operatorname{{std}}(w) = g/\sqrt{{n_\text{{in}}}}$ (square layers): Xavier is $g = 1$, Kaiming
$g = \sqrt 2 \approx 1.41$, and PyTorch's recommended gain for tanh,
`torch.nn.init.calculate_gain("tanh")` $= 5/3 \approx 1.67$, is larger than both — not in between.
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## tanh: activations and gradients through depth

# %%
fig = plot_depth_profiles(pick("tanh", "none"))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Why the tanh gradient grows with N(0, 1)
#
# Too small: activations *and* gradients vanish. Too large (N(0, 1)): the units saturate,
# yet the gradient reaching layer 1 is **huge**, not small. Backward, each layer multiplies
# it by about $\sqrt{n_\text{out}\,\sigma_w^2\,\mathbb E[\tanh'(z)^2]}$: saturation shrinks it
# (small $\mathbb E[\tanh'(z)^2]$), the large weights grow it ($n_\text{out}\sigma_w^2 = 128$).

# %%
grads = profiles["tanh", "N(0, 1)", "none"].weight_grad_norms
measured_factor = (grads[0] / grads[-1]) ** (1 / 19)
torch.manual_seed(0)
z = tanh_pre_std * torch.randn(1_000_000, dtype=torch.float64)  # pre-activations of the saturated net
tanh_slope2 = ((1 - torch.tanh(z) ** 2) ** 2).mean().item()  # E[tanh'(z)^2]
predicted_factor = (128 * tanh_slope2) ** 0.5
print(f"N(0, 1), tanh: ||dL/dW|| = {grads[0]:.2g} at layer 1, {grads[-1]:.2g} at layer 20: "
      f"a factor {measured_factor:.2f} per layer")
print(f"E[tanh'(z)^2] = {tanh_slope2:.3f} for z ~ N(0, {tanh_pre_std:.1f}^2): predicted factor "
      f"sqrt(128 E[tanh'^2]) = {predicted_factor:.2f}")

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
small_grads = profiles["tanh", "N(0, 0.01²)", "none"].weight_grad_norms
claim("tanh, N(0, 1): the gradient grows toward the input, by the predicted factor per layer (within 10 %)",
      measured_factor > 1 and abs(measured_factor / predicted_factor - 1) < 0.1,
      measured=measured_factor, predicted=predicted_factor)
claim("tanh, N(0, 0.01²): the gradients vanish in every layer (below 1e-15)", bool(small_grads.max() < 1e-15),
      largest=small_grads.max())
prose(rf"""
Here $\mathbb E[\tanh'(z)^2] \approx {tanh_slope2:.3f}$, so the factor is about
$\sqrt{{128 \cdot {tanh_slope2:.3f}}} \approx {predicted_factor:.2f}$ — measured {measured_factor:.2f}: the weights win.
With N(0, 0.01²) the gradients are below {small_grads.max():.0e} in every layer.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## ReLU, with and without BN
#
# Rows 1–3 without normalization; row 4 Kaiming with BN before every ReLU.

# %%
relu_rows = pick("relu", "none", ("N(0, 1)", "Xavier", "Kaiming")) + [profiles["relu", "Kaiming", "batch"]]
fig = plot_activation_histograms(relu_rows)

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
relu_big, relu_xavier, relu_kaiming, relu_bn = relu_rows
per_layer = {s.label: (s.stds[-1] / s.stds[0]) ** (1 / 19) for s in relu_rows}
zeros = np.concatenate([s.fraction_zero for s in relu_rows])
claim("relu, N(0, 1): the std grows by about sqrt(128/2) = 8 per layer (within 10 %)",
      abs(per_layer[relu_big.label] / 8 - 1) < 0.1, factor=per_layer[relu_big.label])
claim("relu, Xavier: the std shrinks by about 1/sqrt(2) per layer (within 10 %)",
      abs(per_layer[relu_xavier.label] * 2 ** 0.5 - 1) < 0.1, factor=per_layer[relu_xavier.label])
claim("relu, Kaiming keeps the scale: layer 20's std within a factor 2 of layer 1's",
      0.5 < relu_kaiming.stds[-1] / relu_kaiming.stds[0] < 2, stds=list(relu_kaiming.stds))
claim("relu: about half of every layer's values are exactly 0 (between 35 % and 65 %)",
      bool(np.all((zeros > 0.35) & (zeros < 0.65))), lowest=zeros.min(), highest=zeros.max())
claim("relu with BN: every layer looks like layer 1 (std within 5 %)",
      bool(np.all(np.abs(relu_bn.stds / relu_bn.stds[0] - 1) < 0.05)), stds=list(relu_bn.stds))
prose(rf"""
Look at the x-axes: N(0, 1) reaches {relu_big.stds[-1]:.0e} by layer 20 (the growth factor is
$\sqrt{{128/2}} = 8$ per layer; measured {per_layer[relu_big.label]:.1f}), Xavier shrinks by $1/\sqrt2$ per
layer (measured {per_layer[relu_xavier.label]:.2f}), Kaiming keeps the scale ({relu_kaiming.stds[0]:.2f} at layer 1,
{relu_kaiming.stds[-1]:.2f} at layer 20). Between {100 * zeros.min():.0f} % and {100 * zeros.max():.0f} % of each layer's
values are exactly 0 (the panel says how much); the y-axis is cut above the other bins. With BN
every layer looks like layer 1 (σ = {relu_bn.stds.min():.2f} to {relu_bn.stds.max():.2f}).
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Dead ReLUs
#
# Schilling's thesis talk: "ReLUs cause so-called *dead neurons*" — "**Batchnorm** scales and
# shifts activations and thus helps to prevent dead neurons". A unit is *dead* on a batch
# when its output is 0 for every sample: no gradient reaches its weights. Counted on 256
# training digits, through the 20-layer ReLU net of the last slides, per layer:

# %%
digit_batch, digit_labels = digits.x_train[:256], digits.y_train[:256]
dead = {(init, norm): activation_statistics(depth=20, width=128, activation="relu", norm=norm, inputs=digit_batch,
                                            targets=digit_labels, **INITS[init]).fraction_dead
        for init in ("N(0, 1)", "Kaiming") for norm in ("none", "batch")}
print("fraction of dead units   " + "".join(f"  layer {layer:2d}" for layer in (1, 5, 10, 15, 20)))
for (init, norm), fraction in dead.items():
    print(f"{init:8s} {'BN' if norm == 'batch' else 'no norm':8s}        "
          + "".join(f"  {fraction[layer - 1]:8.3f}" for layer in (1, 5, 10, 15, 20)))

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
plain_dead = dead["Kaiming", "none"]
claim("without BN, dead units appear with depth (none in layer 1, more than 10 % in layer 20), "
      "the same units for N(0, 1) and Kaiming; with BN no unit is dead in any layer (256 digits, one net)",
      plain_dead[0] == 0 and plain_dead[-1] > 0.1 and bool(np.array_equal(plain_dead, dead["N(0, 1)", "none"]))
      and all(not fraction.any() for (_, norm), fraction in dead.items() if norm == "batch"),
      dead=dead)
prose(rf"""
Without BN, dead units come with depth — none in layer 1, {100 * plain_dead[9]:.0f} % in layer 10,
{100 * plain_dead[-1]:.0f} % in layer 20 — the same units for N(0, 1) and Kaiming. With BN: none, in any layer.
""")

# %% [markdown] slideshow={"slide_type": "notes"}
# Why the init does not matter here: the biases are 0 and $\operatorname{relu}(\alpha z) = \alpha\operatorname{relu}(z)$,
# so the weights' scale cannot change which units are off — depth does. Why BN prevents
# them: each pre-activation is centred over the batch, so it is positive for some samples
# (unless it is constant). Schilling's claim holds here at initialization; units dying
# *during* training (e.g. at a large learning rate) are not measured in this lecture.

# %% [markdown] slideshow={"slide_type": "notes"}
# The same slide of Schilling's talk names a second remedy against the exploding gradients of
# unbounded ReLUs: "Another approach: gradient clipping". Clipping rescales the gradient
# before the step whenever its norm exceeds a threshold $c$ (in PyTorch,
# `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=c)`): it bounds the size of
# every step, whatever the gradient does, but leaves the activations — and dead units — as
# they are. It repairs the update, where BN and a variance-preserving init repair the
# forward pass. The talk's claim; clipping is not measured in this course.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## ReLU: activations and gradients through depth

# %%
fig = plot_depth_profiles(pick("relu", "none"))

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
relu_plain = pick("relu", "none")
grad_level = {s.label: 10 ** np.log10(s.weight_grad_norms).mean() for s in relu_plain}
grad_spread = {s.label: s.weight_grad_norms.max() / s.weight_grad_norms.min() for s in relu_plain}
claim("relu, no norm: the gradient norms are flat across depth (within a factor 10 from layer 1 to 20), "
      "at levels ordered like the variance factors", max(grad_spread.values()) < 10
      and list(np.argsort(list(grad_level.values()))) == [1, 2, 3, 0], spread=grad_spread, level=grad_level)
prose(rf"""
Straight lines on log axes: the variance formula's factor $n_\text{{in}}\operatorname{{Var}}(w)/2$
per layer, $64$ (N(0,1)), $0.0064$ (N(0, 0.01²)), $\tfrac12$ (Xavier), $1$ (Kaiming). The gradient
norms are flat across depth, at about {", ".join(f"{level:.0e}" for level in grad_level.values())} in that order.
""")

# %% [markdown] slideshow={"slide_type": "notes"}
# Why the gradient norms are flat: the backward pass applies the same factor per layer in
# reverse, so every layer's gradient gets the same product of factors.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## A deep sigmoid net, with and without BN
#
# The BN notes show "sigmoid without BN / sigmoid with BN"; here through 20 layers.

# %%
sigmoid_rows = pick("sigmoid", "none", ("N(0, 1)", "Xavier")) + [profiles["sigmoid", "Xavier", "batch"]]
fig = plot_activation_histograms(sigmoid_rows)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The sigmoid net forgets its input
#
# The histograms of Xavier without BN still have a spread — but it is the spread *between
# units*. The std over the **batch** (how much a unit's output depends on the input):

# %%
fig = plot_depth_profiles(pick("sigmoid", "none", ("Xavier", "Kaiming")) + pick("sigmoid", "batch", ("Xavier",)),
                          spread="sample_stds")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
sig_xavier, sig_bn = profiles["sigmoid", "Xavier", "none"], profiles["sigmoid", "Xavier", "batch"]
claim("sigmoid, Xavier, no norm: by layer 10 the std over the batch is below 1e-4 of layer 1's, while the "
      "spread between units stays; the gradient reaching layer 1 is below 1e-8 of layer 20's; with BN the "
      "std over the batch survives (layer 20 above half of layer 1)",
      sig_xavier.sample_stds[9] < 1e-4 * sig_xavier.sample_stds[0] and sig_xavier.stds[-1] > 0.05
      and sig_xavier.weight_grad_norms[0] < 1e-8 * sig_xavier.weight_grad_norms[-1]
      and sig_bn.sample_stds[-1] > 0.5 * sig_bn.sample_stds[0],
      sample_stds=list(sig_xavier.sample_stds), grads=list(sig_xavier.weight_grad_norms))
prose(rf"""
Why: sigmoid outputs have mean 1/2, so $z = Wh$ is dominated by $W\cdot\tfrac12\mathbf 1$,
the same for every input; the input-dependent part is multiplied by $\sigma'(z) \le 1/4$
per layer. By layer 10 every input gives practically the same vector (std over the batch
{sig_xavier.sample_stds[9]:.0e}, against {sig_xavier.sample_stds[0]:.2f} in layer 1, while the units still differ by
σ = {sig_xavier.stds[9]:.2f}), and the gradient reaching layer 1 is about {sig_xavier.weight_grad_norms[0]:.0e} (right panel).
This is Schilling's "vanilla network is stuck" with sigmoids, seen at initialization. BN
re-centres and re-scales every pre-activation over the batch, so the input-dependent part
survives (std over the batch {sig_bn.sample_stds[-1]:.2f} at layer 20).
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Erratum (UCLA discussion sheet).** The sheet: it is very hard to use "the sigmoid, where
# the gradient is close to zero for inputs outside the range (-1,1)". At the edges of that
# range the gradient is far from zero: $\sigma'(\pm 1) = \sigma(1)\,(1-\sigma(1)) \approx 0.197$,
# about $79\,\%$ of its maximum $\sigma'(0) = 1/4$. It falls below $0.05$, a fifth of the
# maximum, only beyond $\lvert z\rvert \approx 2.89$. Saturation is real for large inputs
# (tanh with $\mathcal N(0, 1)$ weights, above); what hurts a deep sigmoid net even near 0 is
# that $\sigma' \le 1/4$ multiplies the input-dependent part at *every* layer (last slide).

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
def sigmoid_slope(z):
    return torch.sigmoid(torch.as_tensor(z, dtype=torch.float64)) * (1 - torch.sigmoid(torch.as_tensor(z, dtype=torch.float64)))


grid = torch.linspace(0, 10, 100_001, dtype=torch.float64)
slope_edge = sigmoid_slope(1.0).item()
threshold = grid[sigmoid_slope(grid) < 0.05].min().item()  # sigma' decreases in |z|: the first z below 0.05
claim("the erratum's numbers: sigma'(1) is about 0.197, 79 % of sigma'(0) = 1/4, and sigma' < 0.05 only beyond |z| = 2.89",
      abs(slope_edge - 0.197) < 5e-4 and round(100 * slope_edge / 0.25) == 79 and 2.885 < threshold < 2.895,
      slope_edge=slope_edge, threshold=threshold)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## With BN, the initialization does not change the forward pass
#
# Std of the layer-20 output, every init, with BN:

# %%
for activation in ("tanh", "sigmoid", "relu"):
    layer20 = [s.stds[-1] for s in pick(activation, "batch")]
    print(f"{activation:8s}" + "".join(f"  {init} {std:.4f}" for init, std in zip(INITS, layer20)))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
bn_profiles = {activation: pick(activation, "batch") for activation in ("tanh", "sigmoid", "relu")}
# all layers, relative to N(0, 1): the same draws scaled, so only eps can make a difference
same_draws = max(np.abs(s.stds / rows[0].stds - 1).max() for rows in bn_profiles.values() for s in rows[2:])
small_init = max(np.abs(rows[1].stds / rows[0].stds - 1).max() for rows in bn_profiles.values())
claim("with BN, N(0, 1), Xavier and Kaiming give the same std in every layer (to 1e-3); N(0, 0.01²) differs more, "
      "by less than 1 %", same_draws < 1e-3 and same_draws < small_init < 0.01,
      xavier_kaiming=same_draws, small=small_init)
prose(rf"""
The four nets share the same random draws (same seed), so their weights differ only by
a factor per layer — and BN removes exactly that factor (section 5): N(0, 1), Xavier and
Kaiming give the same std in every layer to {same_draws:.0e} (relative). Only N(0, 0.01²) differs, by
up to {100 * small_init:.1f} %, because there $\alpha^2\operatorname{{Var}}(Wx)$ comes close to $\epsilon = 10^{{-5}}$.
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## ReLU with BN: the same activations, different steps
#
# Right: the gradient relative to the weights, $\lVert\partial L/\partial W_l\rVert / \lVert W_l\rVert$ —
# how far one SGD step moves a layer, relative to its size.

# %%
fig = plot_depth_profiles(pick("relu", "batch"), gradient="relative", figsize=(9, 3.4))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
relu_bn_rows = pick("relu", "batch")
raw = np.array([s.weight_grad_norms for s in relu_bn_rows])
relative = np.array([s.relative_grad_norms for s in relu_bn_rows])
raw_spread = (raw.max(0) / raw.min(0)).max()
relative_spread = (relative[1] / relative[0]).min()  # N(0, 0.01²) against N(0, 1), the smallest over layers
bn_growth = (raw[3, 0] / raw[3, -1]) ** (1 / 19)
claim("relu with BN: the raw gradient norms of the four inits agree within a factor 2 at every layer, "
      "but relative to the weights N(0, 0.01²) moves every layer more than 30 times as far as N(0, 1)",
      raw_spread < 2 and relative_spread > 30, raw_spread=raw_spread, relative_spread=relative_spread)
claim("relu, Kaiming with BN: the weight gradients grow toward the input (by more than 1.1 per layer)",
      bn_growth > 1.1, growth=bn_growth)
prose(rf"""
The raw gradient norms $\lVert\partial L/\partial W_l\rVert$ hardly differ between the four inits (at most
a factor {raw_spread:.1f} apart at any layer): a BN layer's gradient does scale as $1/\alpha$
(section 5), but the output layer, not followed by BN, has the same init, and its
$\alpha$-times larger weights send an $\alpha$-times larger gradient back. Relative to the
weights, what an SGD step changes, the inits differ (right panel): N(0, 0.01²) moves every
layer at least {relative_spread:.0f} times as far as N(0, 1). That is where the initialization keeps
mattering — the effective learning rate of section 6. Note also that with BN the weight
gradients grow toward the input, by about {bn_growth:.2f} per layer here (Kaiming): BN does not make
a deep net's gradients uniform at initialization (Yang et al. 2019 analyse this "gradient
explosion" of deep BN nets).
""")

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
def init_runs(norm, init):
    """Seeds 0-2 of the 64-128-128-128-10 MLP, 5 epochs of SGD + Nesterov at lr=0.01, batch 64."""
    def build():
        return models.mlp(64, 10, hidden=(128, 128, 128), norm=norm, init=init, init_std=1.0)
    return [train.train_and_test(build, digits, batch_size=64, epochs=5, lr=0.01, seed=seed) for seed in SEEDS]


init_results = {(norm, init): init_runs(norm, init) for norm in ("none", "batch") for init in ("normal", "kaiming")}
print("norm   init      test accuracy, 3 seeds    mean")
for (norm, init), runs in init_results.items():
    cells = "  ".join(f"{run.test_acc:.3f}{'*' if run.diverged else ' '}" for run in runs)
    print(f"{norm:5s}  {init:8s}  {cells}  {variants.summarize(runs)[0]:.3f}")
print("* the loss became non-finite and training stopped (NaN logits count as wrong)")
print(variants.verdict("BN + N(0,1)", init_results["batch", "normal"], "plain + N(0,1)", init_results["none", "normal"]))
print(variants.verdict("BN + N(0,1)", init_results["batch", "normal"], "BN + Kaiming", init_results["batch", "kaiming"]))

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
plain_normal, bn_normal = init_results["none", "normal"], init_results["batch", "normal"]
bn_vs_plain = variants.compare_runs(bn_normal, plain_normal)
bn_normal_vs_kaiming = variants.compare_runs(bn_normal, init_results["batch", "kaiming"])
diverged = sum(run.diverged for run in plain_normal)
claim("seeds 0-2, N(0, 1) weights: the plain net does not train — every run diverges or ends at chance "
      "(test accuracy at most 0.15)", all(run.diverged or run.test_acc <= 0.15 for run in plain_normal),
      test_acc=[run.test_acc for run in plain_normal], diverged=[run.diverged for run in plain_normal])
claim("seeds 0-2, N(0, 1) weights: BN trains, ahead of the plain net by the verdict rule",
      bn_vs_plain.outcome == "a" and bn_vs_plain.mean_a > 0.5, mean_bn=bn_vs_plain.mean_a,
      mean_plain=bn_vs_plain.mean_b)
claim("seeds 0-2, with BN: Kaiming ahead of N(0, 1) by the verdict rule (BN + N(0, 1) is worse)",
      bn_normal_vs_kaiming.outcome == "b", diff=bn_normal_vs_kaiming.diff, margin=bn_normal_vs_kaiming.margin)
chance_accs = [run.test_acc for run in plain_normal if not run.diverged]
stuck = f"the loss overflows in {diverged} of 3 runs" + (
    f", the rest end at chance (test accuracy {max(chance_accs):.2f})" if chance_accs else "")
prose(rf"""
Measured (seeds 0–2): without BN, $\mathcal N(0,1)$ does not train — {stuck}.
With BN it trains, to {bn_vs_plain.mean_a:.2f} mean test accuracy, but ends
{-100 * bn_normal_vs_kaiming.diff:.0f} points below BN + Kaiming ({bn_normal_vs_kaiming.mean_b:.2f}; verdict rule: Kaiming
ahead). Both seeds' claims hold here: BN makes the init *less* important, not unimportant.
Why would BN + $\mathcal N(0, 1)$ be worse if BN removes the weights' scale? Next.
""")

# %% [markdown] slideshow={"slide_type": "notes"}
# The BN notes list as BN's first benefit: "Reduce training times, and make very deep net
# trainable". This lecture looks at the second half only at initialization — through 20
# layers BN keeps every layer's activations at layer 1's scale and no ReLU dead, and a deep
# sigmoid net with BN keeps its input — and trains only the three-hidden-layer MLP above. That BN
# makes a *very deep* net trainable is the notes' claim, not measured here: training deep
# nets with and without BN over several seeds costs more run time than this lecture has.
# Lecture 08 measures training speed on the thesis' MLP.

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
invariance = {}  # alpha -> (output deviation, input-gradient deviation, alpha ||dW|| / ||dW(1)||, cosine)
print("  alpha  max|out - out(1)|  max|dx - dx(1)|  alpha·||dW||/||dW(1)||  cos(W, dW)")
for alpha in (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0):
    out, dx, dW, scaled_W = bn_forward_backward(alpha)
    cosine = (scaled_W * dW).sum() / (scaled_W.norm() * dW.norm())
    invariance[alpha] = ((out - out_1).abs().max().item(), (dx - dx_1).abs().max().item(),
                         (alpha * dW.norm() / dW_1.norm()).item(), cosine.item())
    print(f"{alpha:7g}  {invariance[alpha][0]:17.1e}  {invariance[alpha][1]:15.1e}"
          f"  {invariance[alpha][2]:22.6f}  {invariance[alpha][3]:10.1e}")

# %% tags=["remove-input"] slideshow={"slide_type": "subslide"}
deviation = {alpha: max(values[:2]) for alpha, values in invariance.items()}
claim("the deviation from alpha = 1 grows like 1/alpha^2 from alpha = 0.1 to 0.01 (a factor 50 to 200), stays "
      "below 1e-5 for alpha >= 10, and is above 0.1 at alpha = 1e-3",
      50 < deviation[1e-2] / deviation[0.1] < 200 and max(deviation[10.0], deviation[100.0]) < 1e-5
      and deviation[1e-3] > 0.1, deviation=deviation)
claim("alpha ||dL/d(alpha W)|| = ||dL/dW|| to 1e-4 for alpha >= 0.1",
      all(abs(values[2] - 1) < 1e-4 for alpha, values in invariance.items() if alpha >= 0.1),
      ratios={alpha: values[2] for alpha, values in invariance.items()})
claim("the gradient is orthogonal to W: |cosine| below 1e-6 for alpha >= 1",
      all(abs(values[3]) < 1e-6 for alpha, values in invariance.items() if alpha >= 1),
      cosines={alpha: values[3] for alpha, values in invariance.items()})
prose(rf"""
## What the table shows

* Output and input gradient do not depend on $\alpha$ — up to the $\epsilon$ in
  $\sqrt{{\sigma^2 + \epsilon}}$, whose effect grows like $\epsilon/(\alpha^2\operatorname{{Var}}(Wx))$ as $\alpha$
  shrinks: the deviation from $\alpha = 1$ is {deviation[0.1]:.0e} at $\alpha = 0.1$, {deviation[1e-2]:.0e} at
  $\alpha = 0.01$, and at $\alpha = 10^{{-3}}$ ({deviation[1e-3]:.1f}) the invariance is gone. For $\alpha \ge 10$ it
  stays at {max(deviation[10.0], deviation[100.0]):.0e}: the $\epsilon$-effect of the reference $\alpha = 1$ itself.
* $\alpha\,\lVert\partial L/\partial(\alpha W)\rVert = \lVert\partial L/\partial W\rVert$ (to six digits for
  $\alpha \ge 0.1$): the gradient scales as $1/\alpha$.
* The gradient is **orthogonal** to $W$ (cosine {invariance[1.0][3]:.0e} at $\alpha = 1$, again $\epsilon$'s doing).
  Why: $L(\alpha W) = L(W)$ for all $\alpha$; differentiate at $\alpha = 1$:
  $\langle W, \nabla L(W)\rangle = 0$ (exactly, for $\epsilon = 0$).
""")

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
eta_eff = {}
for init in ("normal", "kaiming"):
    torch.manual_seed(0)
    net = models.mlp(64, 10, hidden=(128, 128, 128), norm="batch", init=init)
    hidden = [m for m in net if isinstance(m, torch.nn.Linear)][:-1]
    eta_eff[init] = np.array([0.01 / layer.weight.norm().item() ** 2 for layer in hidden])
    print(f"{init:8s} eta_eff = 0.01/||W||^2 per hidden layer: " + "  ".join(f"{lr:.1e}" for lr in eta_eff[init]))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
lr_ratio = eta_eff["kaiming"] / eta_eff["normal"]
claim("BN + N(0, 1)'s hidden layers have an effective learning rate n_in/2 (32, 64, 64) times smaller "
      "than Kaiming's (within 15 %)", bool(np.all(np.abs(lr_ratio / np.array([32, 64, 64]) - 1) < 0.15)),
      ratio=list(lr_ratio))
prose(rf"""
So BN + N(0, 1) is, for the hidden layers, the Kaiming net trained with a learning rate
{lr_ratio.min():.0f} to {lr_ratio.max():.0f} times smaller (theory: $n_\text{{in}}/2$ = 32 and 64) — a plausible
reason for its worse accuracy after 5 epochs.
Exercise 5 tests this: rescaling the hidden weights to Kaiming's norm changes nothing in
the forward pass but restores the effective learning rate. (The output layer is not
followed by BN; N(0, 1) there makes the logits large — the exercise separates the two.)
This view is from later work (van Laarhoven 2017; Hoffer et al. 2018, "Norm matters";
Zhang et al. 2019, "Three mechanisms of weight decay regularization").
""")

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

# %% [markdown] slideshow={"slide_type": "notes"}
# Where weight decay comes from: Schilling's backup slide on $L_2$ weight decay reads it as
# "Gaussian prior on weights" and "Perform MAP instead of MLE". MAP maximizes
# $\log p(\text{data}\mid w) + \log p(w)$; with the prior $w \sim \mathcal N(0, s^2 I)$,
# $-\log p(w) = \lVert w\rVert^2/(2s^2) + \text{const}$. Divide the objective by the number $n$
# of training examples: the summed negative log-likelihood (the cross-entropy) becomes the
# mean loss, and the prior becomes $\tfrac\lambda2\lVert w\rVert^2$ with $\lambda = 1/(n s^2)$. The
# talk then asks "Independent of batchnorm?" — this slide is the answer for a layer followed
# by BN: its loss does not depend on $\lVert W\rVert$ (up to $\epsilon$), so a prior on the size of
# $W$ says nothing about the function the net computes; what decay changes is the step
# size. The prior reading still holds for weights not followed by BN, e.g. the output layer.
# The MAP view is the talk's (and standard); it is not measured.

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
# ## And the gradient: larger where ‖W‖ is smaller

# %%
print("run            ||W2|| start → end   ||dL/dW2|| first → last epoch   eta_eff start → end")
for decay in (0.0, 0.03):
    h = decay_runs["batch", decay][0]
    print(f"BN, λ = {decay:<5g}  {h.weight_norms[0, 1]:6.2f} → {h.weight_norms[-1, 1]:5.2f}"
          f"   {h.grad_norms[0, 1]:16.3f} → {h.grad_norms[-1, 1]:5.3f}"
          f"   {h.effective_lr[0, 1]:.1e} → {h.effective_lr[-1, 1]:.1e}")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
plain_runs, decayed_runs = decay_runs["batch", 0.0], decay_runs["batch", 0.03]
step_growth = max(0.1 ** 2 * h.grad_norms[:, 1].max() ** 2 for h in plain_runs)  # eta^2 ||grad||^2, epoch means
start_norm2 = np.mean([h.weight_norms[0, 1] ** 2 for h in plain_runs])
plain_change = max(abs(h.weight_norms[-1, 1] / h.weight_norms[0, 1] - 1) for h in plain_runs)
norm_drop = np.mean([1 - h.weight_norms[-1, 1] / h.weight_norms[0, 1] for h in decayed_runs])
lr_gain = np.mean([h.effective_lr[-1, 1] / h.effective_lr[0, 1] for h in decayed_runs])
grad_gain = [d.grad_norms[-1, 1] / p.grad_norms[-1, 1] for d, p in zip(decayed_runs, plain_runs)]
inverse_norm = [p.weight_norms[-1, 1] / d.weight_norms[-1, 1] for d, p in zip(decayed_runs, plain_runs)]
claim("BN, hidden layer 2, seeds 0-2: without decay ||W|| changes by less than 1 %; with decay it falls by "
      "more than a fifth and the effective learning rate grows by more than half",
      plain_change < 0.01 and norm_drop > 0.2 and lr_gain > 1.5, plain_change=plain_change, drop=norm_drop,
      lr_gain=lr_gain)
claim("seeds 0-2: the last epoch's gradient of hidden layer 2 is larger with decay, but by less than "
      "1/||W|| alone would give", all(1 < g < n for g, n in zip(grad_gain, inverse_norm)),
      grad_gain=grad_gain, inverse_norm=inverse_norm)
prose(rf"""
Without decay the norm stays practically where it started (it moves by at most
{100 * plain_change:.1f} %): the growth per step is $\eta^2\lVert\nabla L\rVert^2$, at most {step_growth:.0e} here,
against $\lVert W\rVert^2 \approx$ {start_norm2:.0f}. With decay the norm falls by {100 * norm_drop:.0f} % and the
effective learning rate grows by a factor {lr_gain:.2f} (means over seeds 0–2; the band is their
min–max). The gradient of the last epoch is larger with decay in every seed — the
$1/\lVert W\rVert$ of the scale-invariance slide — though by less (a factor {min(grad_gain):.2f} to
{max(grad_gain):.2f}) than the smaller norm alone (a factor {np.mean(inverse_norm):.2f}) would give: the two
nets are no longer at the same point of training.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Does it help accuracy? "Batchnorm likes some weight decay"
#
# Schilling's thesis talk, with $\lambda = 5\cdot10^{-4}$ on MNIST/SVHN/CIFAR: "batchnorm: always
# ahead", "Both models achieve higher accuracies than baseline models", "Batchnorm model
# consistently ahead of vanilla counterpart". Ours: digits, the runs above, test accuracy over
# seeds 0–2, compared by the course's verdict rule (paired by seed: both arms of a seed share
# its split and batch order).

# %% slideshow={"slide_type": "subslide"}
def decay_verdict(runs_a, runs_b):
    """The verdict rule on test accuracy, paired by seed (delta: half a percentage point)."""
    return stats.compare([h.test_acc for h in runs_a], [h.test_acc for h in runs_b],
                         min_effect=stats.ACCURACY_DELTA / 100, paired=True)


bn_vs_plain_decay = {decay: decay_verdict(decay_runs["batch", decay], decay_runs["none", decay]) for decay in (0.0, 0.03)}
decay_effect = {norm: decay_verdict(decay_runs[norm, 0.03], decay_runs[norm, 0.0]) for norm in ("batch", "none")}
words = {"a": "A ahead", "b": "B ahead", "draw": "draw", "n/a": "no verdict"}
print("norm   λ      test accuracy, 3 seeds  mean")
for (norm, decay), runs in decay_runs.items():
    accs = "  ".join(f"{h.test_acc:.3f}" for h in runs)
    print(f"{norm:5s}  {decay:<5g}  {accs}   {np.mean([h.test_acc for h in runs]):.3f}")
for name, verdicts in (("A = BN, B = plain", bn_vs_plain_decay), ("A = λ 0.03, B = λ 0", decay_effect)):
    for key, v in verdicts.items():
        print(f"{name}, {key!s:5}: A − B = {100 * v.diff:+.1f} ± {100 * v.se:.1f} points "
              f"(margin {100 * v.margin:.1f}) → {words[v.outcome]}")

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
n_test = len(digits.y_test)
claim("seeds 0-2, verdict rule: BN ahead of the plain net with decay (0.03); without decay BN's mean is "
      "higher but within the margin (a draw)", bn_vs_plain_decay[0.03].outcome == "a"
      and bn_vs_plain_decay[0.0].outcome == "draw" and bn_vs_plain_decay[0.0].diff > 0,
      without=bn_vs_plain_decay[0.0], with_decay=bn_vs_plain_decay[0.03])
claim("seeds 0-2, verdict rule: decay moves BN's mean up but within the margin (a draw), and the plain "
      "net without decay is ahead of the plain net with decay", decay_effect["batch"].outcome == "draw"
      and decay_effect["batch"].diff > 0 and decay_effect["none"].outcome == "b",
      bn=decay_effect["batch"], plain=decay_effect["none"])
prose(rf"""
Measured (seeds 0–2, verdict rule): BN is ahead with decay ({100 * bn_vs_plain_decay[0.03].diff:+.1f} points), a draw
without ({100 * bn_vs_plain_decay[0.0].diff:+.1f}, margin {100 * bn_vs_plain_decay[0.0].margin:.1f}). Decay itself: BN {100 * decay_effect["batch"].diff:+.1f} points (a
draw), plain {100 * decay_effect["none"].diff:+.1f} (the plain net *without* decay ahead).
""")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
prose(rf"""
So "batchnorm: always ahead" is reproduced with decay only, and "Both models achieve higher
accuracies" is *not* reproduced in runs this short, with a $\lambda$ 60 times the thesis':
here decay costs the plain net {-decay_effect["none"].diff * n_test:.0f} of {n_test} test images on average and
gains BN less than the margin. The sign pattern (BN gains a little, the plain net loses) is
what "BN likes weight decay" predicts.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The weight-scale sweep (CS231n, assignment 2)
#
# CS231n's batch-norm notebook (Stanford CS231n, assignment 2, "Batch normalization and
# initialization") trains a deep net from $W \sim \mathcal N(0, s^2)$ for scales $s$ on a log
# grid, with and without BN, and plots the best validation accuracy and the final training
# loss against $s$. Ours, on digits:
#
# * `models.mlp` with 7 hidden ReLU layers of 50 units (8 Linear layers, CS231n's shape);
#   every weight, the output layer's included, from $\mathcal N(0, s^2)$;
# * 13 scales from $10^{-4}$ to $1$, three per decade; seeds 0–2 (bands: min–max);
# * Adam, $\eta = 10^{-3}$, batches of 50, as in CS231n; 5 epochs (CS231n: 10, on 1000 images).
#
# For one seed every scale uses the same random draws, scaled, and both arms share the
# split and the batch order, so the comparison per scale is paired by seed.

# %% slideshow={"slide_type": "subslide"}
SCALES = np.logspace(-4, 0, 13)  # 1e-4 ... 1, three per decade
sweep = train.weight_scale_sweep(digits, SCALES, norms=("none", "batch"), seeds=SEEDS, hidden=(50,) * 7,
                                 epochs=5, lr=1e-3, batch_size=50)
kaiming_scale = np.sqrt(2 / 50)  # Kaiming's std for the hidden layers (fan_in 50)
fig = plot_weight_scale_sweep(sweep, reference_scale=kaiming_scale, reference_label=r"Kaiming $\sqrt{2/50}$")

# %% slideshow={"slide_type": "subslide"}
sweep_verdicts = [stats.compare(sweep.best_val_acc["batch"][i], sweep.best_val_acc["none"][i],
                                min_effect=stats.ACCURACY_DELTA / 100, paired=True) for i in range(len(SCALES))]
print("    scale   best val acc: no norm   BN      final loss: no norm   BN       verdict (A = BN)")
for i, (scale, v) in enumerate(zip(SCALES, sweep_verdicts)):
    print(f"{scale:9.1e}  {v.mean_b:20.3f}  {v.mean_a:6.3f}  {np.nanmean(sweep.final_train_loss['none'][i]):19.3g}"
          f"  {np.nanmean(sweep.final_train_loss['batch'][i]):6.3g}   {100 * v.diff:+5.1f} ± {100 * v.se:.1f} → "
          f"{words[v.outcome]}")

# %% tags=["remove-input"] slideshow={"slide_type": "subslide"}
mean_acc = {norm: sweep.best_val_acc[norm].mean(axis=1) for norm in sweep.norms}
trains = {norm: SCALES[mean_acc[norm] >= 0.8] for norm in sweep.norms}  # "trains": mean best accuracy >= 0.8
span = {norm: trains[norm].max() / trains[norm].min() for norm in sweep.norms}
bn_ahead = SCALES[[v.outcome == "a" for v in sweep_verdicts]]
plain_ahead = SCALES[[v.outcome == "b" for v in sweep_verdicts]]
sweep_draws = SCALES[[v.outcome == "draw" for v in sweep_verdicts]]
stuck = SCALES <= 0.0101  # scales up to 1e-2
plain_stuck_loss = np.abs(sweep.final_train_loss["none"][stuck] - np.log(10)).max()
exploded = sweep.final_train_loss["none"][SCALES > 0.3]
claim("seeds 0-2: without BN the net trains (mean best validation accuracy >= 0.8) only within a factor 3 of "
      "Kaiming's scale; with BN over a range of scales more than 10 times as wide (max/min)",
      len(trains["none"]) > 0 and bool(np.all(np.abs(np.log(trains["none"] / kaiming_scale)) < np.log(3)))
      and span["batch"] > 10 * span["none"], trains=trains, span=span)
claim("seeds 0-2: without BN every scale up to 1e-2 stays at chance in every seed (best validation accuracy at "
      "most 0.11, final loss within 1e-3 of ln 10)",
      bool(sweep.best_val_acc["none"][stuck].max() <= 0.11) and plain_stuck_loss < 1e-3,
      acc=sweep.best_val_acc["none"][stuck].max(), loss_gap=plain_stuck_loss)
claim("seeds 0-2: without BN the final loss explodes (above 10 in every seed) at the scales above 0.3; BN's is lower "
      "there in every seed", bool(np.all(exploded > 10))
      and bool(np.all(sweep.final_train_loss["batch"][SCALES > 0.3] < exploded)),
      plain=exploded, bn=sweep.final_train_loss["batch"][SCALES > 0.3])
claim("seeds 0-2, verdict rule per scale: BN ahead at more than half of the scales, the plain net ahead only within a "
      "factor 2 of Kaiming's scale", len(bn_ahead) > len(SCALES) / 2
      and bool(np.all(np.abs(np.log(plain_ahead / kaiming_scale)) < np.log(2))),
      bn_ahead=list(bn_ahead), plain_ahead=list(plain_ahead))


def scale_list(scales):
    return ", ".join(f"{s:.2g}" for s in scales) if len(scales) else "none"


prose(rf"""
Measured (seeds 0–2, best validation accuracy, mean ≥ 0.8 counted as "trains"):

* **Without BN** the net trains only at $s$ = {scale_list(trains["none"])}, around Kaiming's
  $\sqrt{{2/50}} \approx$ {kaiming_scale:.2f}. Up to $s = 10^{{-2}}$ it never leaves chance: the signal
  vanishes through 8 layers and the loss stays at $\ln 10$ (to {plain_stuck_loss:.0e}). Above $s = 0.3$ it
  explodes: final losses of {exploded.min():.0f} and more, where BN's are at most {np.nanmax(sweep.final_train_loss["batch"][SCALES > 0.3]):.2f}.
* **With BN** it trains from $s$ = {trains["batch"].min():.2g} to {trains["batch"].max():.2g}, a range {span["batch"]:.0f} times
  wide (max/min) against {span["none"]:.1f} without.
* Verdict rule per scale (paired by seed): BN ahead at {len(bn_ahead)} of {len(SCALES)} scales; the plain
  net ahead at {scale_list(plain_ahead)}; a draw at {scale_list(sweep_draws)}.
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Why BN still fails at both ends
#
# BN does not make the scale irrelevant; two things we met earlier take over at the ends:
#
# * **Small $s$: the $\epsilon$.** A hidden layer after BN and ReLU sees
#   $\operatorname{Var}(Wh) = 50\, s^2\, \mathbb E[h^2] \approx 25\, s^2$, and
#   $\mathrm{BN}$ divides by $\sqrt{\operatorname{Var} + \epsilon}$: once $25 s^2 \lesssim \epsilon = 10^{-5}$
#   it no longer rescales, and the signal shrinks layer after layer as without BN.
# * **Large $s$: the step relative to the weights.** Adam's step is about $\eta$ per weight,
#   whatever the gradient, so it turns a BN layer's direction by about $\eta/s$ per step: at $s = 1$,
#   $10^{-3}$ per step. And the output layer, not followed by BN, starts with logits of
#   size $\sqrt{50 \cdot \mathbb E[h^2]}\, s$, confidently wrong.
#
# So the right init still matters with BN: "less important", as Raschka's slides say.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Both ends, measured at initialization
#
# The sweep's BN nets (seed 0) at initialization, on 256 training digits in training mode:

# %% slideshow={"slide_type": "skip"}
def logit_std(scale):
    """Std of the logits of the sweep's BN net (seed 0) at initialization, training mode."""
    torch.manual_seed(0)
    net = models.mlp(64, 10, hidden=(50,) * 7, norm="batch", init="normal", init_std=scale)
    with torch.no_grad():
        return net(digit_batch).std().item()


at_init = {scale: (activation_statistics(depth=7, width=50, activation="relu", norm="batch", init="normal",
                                         init_std=scale, inputs=digit_batch, targets=digit_labels).stds[-1],
                   logit_std(scale)) for scale in SCALES}

# %%
print("    scale   std of hidden layer 7   std of the logits")
for scale, (hidden_std, logits) in at_init.items():
    print(f"{scale:9.1e}  {hidden_std:21.2g}  {logits:18.3g}")

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
eps_scale = np.sqrt(1e-5 / 25)
reference_std = at_init[SCALES[8]][0]  # s = 1e-2
below_eps = [at_init[scale][0] for scale in SCALES if scale < eps_scale]
settled = [at_init[scale][0] for scale in SCALES if scale >= 0.0099]
logit_per_scale = [at_init[scale][1] / scale for scale in SCALES if scale >= 0.0099]
claim("BN at initialization (seed 0): below sqrt(eps/25) the last hidden layer's std is less than a tenth of its value "
      "at s = 1e-2; from 1e-2 up it is the same within 1 %",
      max(below_eps) < 0.1 * reference_std and max(settled) / min(settled) - 1 < 0.01,
      below=below_eps, settled=settled)
claim("BN at initialization (seed 0): from s = 1e-2 up the logits' std is proportional to s (std/s constant within "
      "1 %), above 3 at s = 1", max(logit_per_scale) / min(logit_per_scale) - 1 < 0.01 and at_init[SCALES[-1]][1] > 3,
      per_scale=logit_per_scale)
prose(rf"""
$25 s^2 = \epsilon$ at $s \approx$ {eps_scale:.1e}: below it the last hidden layer's std is
{max(below_eps):.0e} or less, against {reference_std:.2f} from $s = 10^{{-2}}$ up, where BN makes every scale the same (within
{100 * (max(settled) / min(settled) - 1):.1f} %).
The logits, after the one layer BN does not touch, grow as {np.mean(logit_per_scale):.2f}$\,s$: a std of
{at_init[SCALES[-1]][1]:.1f} at $s = 1$.
""")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
small = SCALES < eps_scale
claim("seeds 0-2: BN's mean best accuracy at every scale below sqrt(eps/25) is more than 0.2 below its best",
      bool(np.all(mean_acc["batch"][small] < mean_acc["batch"].max() - 0.2)), small=mean_acc["batch"][small],
      best=mean_acc["batch"].max())
claim("seeds 0-2: from BN's best scale upwards its mean best accuracy falls at every step of the grid",
      bool(np.all(np.diff(mean_acc["batch"][mean_acc["batch"].argmax():]) < 0)), acc=list(mean_acc["batch"]))
prose(rf"""
Below $s \approx$ {eps_scale:.1e} BN's mean best accuracy is at most
{mean_acc["batch"][small].max():.2f}, against {mean_acc["batch"].max():.2f} at its best scale ($s$ = {SCALES[mean_acc["batch"].argmax()]:.2g}).
From there upwards it falls at every grid step, to {mean_acc["batch"][-1]:.2f} at $s = 1$. Schilling's thesis
talk titles its $\mathcal N(0, 1)$ experiment "Batchnorm handles arbitrary inits": on this grid BN handles
a range of scales {span["batch"]:.0f} times wide, not arbitrary ones. With 5 epochs instead of CS231n's
10, the large-scale end has even less time to recover; that more epochs would move it is not measured here.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Watching a network train (Karpathy, makemore part 3)
#
# Andrej Karpathy's "Building makemore part 3" checks a net's health *during* training, at
# every step and for every layer:
#
# * the mean and std of each hidden layer's output $h_l$, and its **saturation**: the
#   fraction with $|h| > 0.97$, where $\tanh' = 1 - h^2 < 0.06$;
# * the **gradient-to-weight** ratio $\operatorname{std}(\nabla W)/\operatorname{std}(W)$ and the
#   **update-to-data** ratio $\log_{10}\big(\operatorname{std}(\eta\nabla W)/\operatorname{std}(W)\big)$:
#   how much one step changes the weights, relative to their size (his rule of thumb: about $-3$).
#
# Ours: a tanh MLP on digits with 5 hidden layers of 64 units (every fan_in is 64), plain
# SGD with $\eta = 0.1$, batches of 64, 15 epochs (300 steps), seed 0; two inits, each
# without and with BN: Karpathy's gain $5/3$, $\operatorname{std}(w) = \tfrac53/\sqrt{64}$, and
# $\mathcal N(0, 1)$ (a gain of 8).

# %% slideshow={"slide_type": "subslide"}
DIAGNOSED = {"gain 5/3": 5 / 3 / 8, "N(0, 1)": 1.0}  # std of the initial weights
diagnostics = {}
for init_name, init_std in DIAGNOSED.items():
    for norm in ("none", "batch"):
        torch.manual_seed(0)
        net = models.mlp(64, 10, hidden=(64,) * 5, norm=norm, activation="tanh", init="normal", init_std=init_std)
        train_loader = digits.loaders(batch_size=64, seed=0)[0]
        diagnostics[f"{'BN' if norm == 'batch' else 'no norm'}, {init_name}"] = train.fit_with_diagnostics(
            net, train_loader, epochs=15, lr=0.1)


def window(run, quantity, steps):
    """Per-layer mean of a diagnostic over a window of steps."""
    return getattr(run, quantity)[steps].mean(axis=0)


first, last = slice(0, 20), slice(-20, None)  # the first and the last 20 steps

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Activations during training

# %%
fig = plot_training_diagnostics(diagnostics.values(), diagnostics.keys(), ("activation_stds", "saturation"))

# %% tags=["remove-input"] slideshow={"slide_type": "subslide"}
saturated = {name: (window(run, "saturation", first), window(run, "saturation", last))
             for name, run in diagnostics.items()}
gaussian_tail = 2 * (1 - 0.5 * (1 + math.erf(math.atanh(0.97) / math.sqrt(2))))  # P(|z| > artanh 0.97)
bn_saturation = max(np.max(saturated[name]) for name in diagnostics if name.startswith("BN"))
claim("seed 0: without BN, N(0, 1) saturates more than 70 % of every layer's values in the first and the last 20 "
      "steps; with BN, at either init, every layer stays at most 1.25 times the Gaussian tail P(|z| > artanh 0.97)",
      bool(np.min(saturated["no norm, N(0, 1)"]) > 0.7) and bn_saturation < 1.25 * gaussian_tail,
      plain=saturated["no norm, N(0, 1)"], bn_max=bn_saturation, tail=gaussian_tail)
plain_gain = saturated["no norm, gain 5/3"]
claim("seed 0: without BN, gain 5/3 saturates between 3 % and 30 % per layer, layer 1 the most",
      bool(np.min(plain_gain) > 0.03 and np.max(plain_gain) < 0.3)
      and np.argmax(plain_gain[0]) == 0 and np.argmax(plain_gain[1]) == 0, saturated=plain_gain)
stds_plain = window(diagnostics["no norm, N(0, 1)"], "activation_stds", last)
means_all = max(np.abs(window(run, "activation_means", steps)).max() for run in diagnostics.values()
                for steps in (first, last))
claim("seed 0: training does not bring the saturation of the plain N(0, 1) net down (last 20 steps at least the "
      "first 20, averaged over layers); every run's layer means stay within 0.1 of 0 (first and last 20 steps)",
      saturated["no norm, N(0, 1)"][1].mean() >= saturated["no norm, N(0, 1)"][0].mean() and means_all < 0.1,
      saturated=saturated["no norm, N(0, 1)"], largest_mean=means_all)
prose(rf"""
## What the activations show

Without BN, $\mathcal N(0, 1)$ puts {100 * np.min(saturated["no norm, N(0, 1)"]):.0f}–{100 * np.max(saturated["no norm, N(0, 1)"]):.0f} % of every layer's values on tanh's flat
tails (std of $h$ about {stds_plain.mean():.2f}, most values near ±1), and training does not bring it down.
Karpathy's gain $5/3$ keeps it at {100 * np.min(plain_gain):.0f}–{100 * np.max(plain_gain):.0f} %, layer 1 the most. With BN, at either init,
every layer stays at {100 * bn_saturation:.1f} % or less: BN hands tanh pre-activations of mean 0 and
std 1 (γ and β start at 1 and 0), and a standard normal exceeds $\operatorname{{artanh}}(0.97) \approx 2.09$ with
probability {100 * gaussian_tail:.1f} %. The means of $h$ stay near 0 everywhere (at most {means_all:.2f} in
absolute value, per layer over 20 steps): tanh is odd.
""")

# %% [markdown] slideshow={"slide_type": "notes"}
# Schilling's thesis talk, in its sidenote on saturating nonlinearities: "Activations stuck in
# saturated regime", and "Batchnorm's scale and shift parameters push activations to
# non-saturated regime!". The figure shows both during training, for tanh: the plain net with
# $\mathcal N(0, 1)$ weights stays saturated for all 300 steps, the BN nets never get there. (At
# initialization it is BN's standardization that does it, with $\gamma = 1$, $\beta = 0$; the
# scale and shift are learned later.)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Updates during training
#
# With plain SGD the update-to-data ratio is $\log_{10}(\eta \cdot \text{gradient-to-weight})$:
# one panel shows both. Dashed red: the output layer; dotted: Karpathy's $10^{-3}$.

# %%
fig = plot_training_diagnostics(diagnostics.values(), diagnostics.keys(), ("update_to_data",))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The gradient-to-weight ratio, first and last 20 steps

# %%
print("std(grad)/std(W), mean over the first → the last 20 steps: layers 1..5, then the output layer")
for name, run in diagnostics.items():
    print(f"{name:18s}" + "  ".join(f"{a:.3f}→{b:.3f}" for a, b in zip(window(run, "grad_to_data", first),
                                                                      window(run, "grad_to_data", last))))

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
update = {name: (window(run, "update_to_data", first)[:-1], window(run, "update_to_data", last)[:-1])
          for name, run in diagnostics.items()}  # hidden layers only
plain_spread = update["no norm, N(0, 1)"][0][0] - update["no norm, N(0, 1)"][0][-1]
bn_spread = max(np.ptp(update[name][0]) for name in diagnostics if name.startswith("BN"))
bn_gap = update["BN, gain 5/3"][0] - update["BN, N(0, 1)"][0]
final_loss = {name: run.losses[last].mean() for name, run in diagnostics.items()}
claim("seed 0, first 20 steps: without BN, N(0, 1) layer 1's update-to-data ratio is more than 10 times layer 5's; "
      "with BN the hidden layers lie within 0.2 decades of each other at either init",
      plain_spread > 1 and bn_spread < 0.2, plain_spread=plain_spread, bn_spread=bn_spread)
claim("seed 0: with BN, N(0, 1) makes every hidden layer's relative update smaller than gain 5/3 does (by 0.3 to 1 "
      "decade in the first 20 steps) and ends below Karpathy's 1e-3 in every hidden layer",
      bool(np.all((bn_gap > 0.3) & (bn_gap < 1))) and bool(np.all(update["BN, N(0, 1)"][1] < -3)),
      gap=bn_gap, last=update["BN, N(0, 1)"][1])
claim("seed 0: the loss of the last 20 steps without BN at N(0, 1) is more than 5 times BN's at N(0, 1)",
      final_loss["no norm, N(0, 1)"] > 5 * final_loss["BN, N(0, 1)"], loss=final_loss)
prose(rf"""
* Without BN, $\mathcal N(0, 1)$: the saturated tanh layers pass gradients unevenly: in the
  first 20 steps layer 1 moves $10^{{{plain_spread:.1f}}}$ times as fast, relative to its size, as layer 5.
  With BN every hidden layer moves at the same relative rate (within {bn_spread:.2f} decades).
* With BN, $\mathcal N(0, 1)$ moves every hidden layer {10 ** bn_gap.min():.1f}–{10 ** bn_gap.max():.1f} times more slowly than gain
  $5/3$: BN removed the weights' scale from the forward pass, not from the step — the effective
  learning rate of section 6. By the end it is below Karpathy's $10^{{-3}}$ ({update["BN, N(0, 1)"][1].max():.1f} or less).
* Loss over the last 20 steps: {final_loss["no norm, N(0, 1)"]:.2f} without BN at $\mathcal N(0, 1)$, {final_loss["BN, N(0, 1)"]:.2f} with;
  {final_loss["no norm, gain 5/3"]:.3f} and {final_loss["BN, gain 5/3"]:.3f} at gain $5/3$.
""")

# %% [markdown] slideshow={"slide_type": "notes"}
# Karpathy's lecture reads these plots as a checklist: layer statistics that drift or
# saturate mean a bad init or a missing normalization; update-to-data ratios far above
# $10^{-3}$ mean too large a learning rate, far below it too small a one (or, with BN, weights
# that grew too large); layers at very different ratios train at different speeds. The
# $10^{-3}$ is his rule of thumb, not a law: on digits the well-initialized nets here start above it
# and train fine. What is measured here is one seed of one small net.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# * **Symmetry:** all-zero (or constant) weights make every hidden unit the same unit
#   forever; zero biases are fine. Discussion sheet Q2: (b).
# * **Variance:** $\operatorname{Var}(z) = n_\text{in}\operatorname{Var}(w)\,\mathbb E[x^2]$ per layer,
#   compounded over depth. Xavier $2/(n_\text{in}+n_\text{out})$ for tanh; Kaiming $2/n_\text{in}$ for ReLU.
# * **Through 20 layers:** wrong scales vanish or explode geometrically (by many orders of
#   magnitude); deep sigmoid nets forget the input; saturated tanh can still explode its
#   gradients; deep ReLU nets have dead units, BN before the ReLU none.
# * **BN** makes the forward pass independent of each layer's weight scale:
#   $\mathrm{BN}(\alpha Wx + b) = \mathrm{BN}(Wx)$, gradient $\propto 1/\alpha$ and orthogonal to $W$.
#   On digits, BN + $\mathcal N(0,1)$ trains where the plain net does not, but BN + Kaiming is
#   ahead: variance-preserving still best.
# * **Effective learning rate** $\eta/\lVert W\rVert^2$: it explains BN + $\mathcal N(0,1)$'s slow
#   training ($n_\text{in}/2$ times smaller steps) and "BN likes weight decay": decay shrinks
#   $\lVert W\rVert$ and speeds up BN layers (measured with $\lambda = 0.03$; in runs this short decay
#   gave no accuracy gain by the verdict rule, and BN was ahead only with decay).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Summary (continued)
#
# * **The weight-scale sweep (CS231n):** without BN the deep MLP trains only near Kaiming's
#   scale, stuck at chance below it and exploding above it; with BN over a far wider range of
#   scales, but not all: $\epsilon$ stops the rescaling at the small end, and at the large end
#   the steps are small relative to the weights and the logits large.
# * **Diagnostics during training (Karpathy):** per-layer saturation, activation std and
#   update-to-data ratio show a bad init at a glance. BN keeps tanh out of its flat tails and
#   every hidden layer at the same relative step; with large weights those steps are small (the
#   effective learning rate again).
# * **d2l's exercises** (solutions): the division by the batch std is what lets BN survive
#   a large learning rate; one BN before the output layer does as well as BN everywhere there.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **(Discussion sheet, MCQ 2.)** Answer it and justify in two sentences. Then initialize
#    every weight of a 64-32-10 tanh MLP to the *same nonzero* constant $0.05$ (biases 0),
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

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Exercises (continued): d2l.ai's batch-norm chapter
#
# From the exercises of the batch-normalization chapter of *Dive into Deep Learning* (d2l.ai),
# on digits with `models.mlp(64, 10, hidden=(64,) * 6)` (ReLU, Kaiming), `train.fit`'s recipe, seeds 0–2:
#
# 7. **("Lite" BN.)** Write a BN that only subtracts the batch mean, and one that only divides
#    by the batch std. At $\eta = 0.3$, which of the two keeps training alive, and how close
#    does it come to full BN?
# 8. **(Frozen $\gamma, \beta$.)** Keep $\gamma = 1$, $\beta = 0$ in every BN layer. What changes?
# 9. **(Learning rate.)** Go up a half-decade grid of learning rates from $10^{-2}$: what is the
#    largest rate at which every seed still trains (3 epochs), with and without BN?
# 10. **(Where.)** BN after the first hidden layer only, after the last only, after every other
#     one, against after every one, at $\eta = 0.3$.
