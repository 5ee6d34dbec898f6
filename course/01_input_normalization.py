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
# # Lecture 01 — Input normalization
#
# Why we standardize the inputs of a network, what it does to gradient descent, and why
# it is not enough: the inputs of the *hidden* layers keep moving.
#
# 1. Features on different scales make the loss surface a narrow valley
# 2. Gradient descent in that valley: paths, stable learning rates, steps to converge
# 3. The same on real data: a small network on the wine data, raw vs standardized
# 4. Fit the statistics on the training split only
# 5. Standardizing fixes the first layer only → batch normalization (lecture 02)

# %% [markdown] slideshow={"slide_type": "notes"}
# This lecture follows the opening of Raschka's lecture slides ("Recap: why we normalize
# inputs for gradient descent", then "normalizing the inputs only affects the first hidden
# layer ... what about the other hidden layers?") and the first slides of Silva's CNN
# slides ("gradient of larger parameter dominates the update"). Every claim is measured
# here on the wine data that ships with scikit-learn. Budget: about 30 s to run.

# %% slideshow={"slide_type": "skip"}
import numpy as np
import sklearn.datasets
import torch

from normlab import data, models, train
from normlab.plots.inputs import (QuadraticLoss, drift_summary, gradient_descent,
                                  learning_rate_sweep, plot_curves, plot_layer_input_drift,
                                  plot_loss_contours)

torch.set_num_threads(1)
FEATURES = sklearn.datasets.load_wine().feature_names

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The data: 13 measurements of 178 wines
#
# `normlab.data.load_wine(standardize=False)` keeps the raw features. Their scales differ
# by three orders of magnitude:

# %%
wine = data.load_wine(standardize=False)
x_raw = wine.x_train.double().numpy()
for name in ("alcohol", "magnesium", "color_intensity", "hue", "proline"):
    column = x_raw[:, FEATURES.index(name)]
    print(f"{name:16s} mean {column.mean():8.2f}   std {column.std():7.2f}")

# %% [markdown] slideshow={"slide_type": "notes"}
# Proline is around 750 with a spread of about 300, hue around 1 with a spread of about 0.2.
# Nothing is wrong with the data: the units are simply different (mg/l vs a ratio).
# A model does not know units — it only sees numbers, and gradient descent will treat a
# unit step in proline's weight like a unit step in hue's weight.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## A model small enough to draw: two features, one linear output
#
# Predict a wine's (centered) alcohol content $y$ from two features $x_1, x_2$ with
# $\hat y = w_1 x_1 + w_2 x_2$ and the mean squared error
#
# $$L(w) = \frac{1}{2n}\sum_{i=1}^n \left(w^\top x^{[i]} - y^{[i]}\right)^2
#        = \tfrac12\, w^\top H w - g^\top w + c,
# \qquad H = \frac1n \sum_i x^{[i]} x^{[i]\top}.$$
#
# $L$ is a quadratic bowl. Its level sets are ellipses whose axes are the eigenvectors of
# $H$; along an eigenvector with eigenvalue $\lambda$ the bowl has curvature $\lambda$.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## What the scale of a feature does to the bowl
#
# $H_{jk} = \frac1n\sum_i x_j^{[i]} x_k^{[i]}$: multiplying feature $j$ by $s$ multiplies
# row and column $j$ of $H$ by $s$. For two centered, uncorrelated features with spreads
# $s_1 \gg s_2$, the curvatures are $s_1^2$ and $s_2^2$, and the **condition number**
#
# $$\kappa = \frac{\lambda_{\max}}{\lambda_{\min}} = \left(\frac{s_1}{s_2}\right)^2 .$$
#
# The ellipses' axes have the ratio $\sqrt\kappa$: a long, narrow valley.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Gradient descent in a narrow valley
#
# $w \leftarrow w - \eta\,\nabla L(w) = w - \eta\,(Hw - g)$. Along an axis with curvature
# $\lambda$ the error is multiplied by $(1 - \eta\lambda)$ at every step, so
#
# * **stable** only if $|1-\eta\lambda_{\max}| < 1$, i.e. $\eta < 2/\lambda_{\max}$ — the
#   steep direction sets the largest learning rate;
# * at such an $\eta$ the flat direction shrinks by at most $1 - 2\lambda_{\min}/\lambda_{\max}$
#   per step: about $\kappa$ steps, up to a log factor.
#
# Silva's CNN slides: "gradient of larger parameter dominates the update".

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Three versions of the same two features
#
# Color intensity ($s \approx 2.3$) and hue ($s \approx 0.23$), predicting alcohol, on the
# training split: raw, only centered, and standardized $x \mapsto (x-\mu)/\sigma$.

# %%
columns = [FEATURES.index("color_intensity"), FEATURES.index("hue")]
alcohol = x_raw[:, FEATURES.index("alcohol")] - x_raw[:, FEATURES.index("alcohol")].mean()
two = x_raw[:, columns]
versions = {
    "raw": two,
    "centered": two - two.mean(0),
    "standardized": (two - two.mean(0)) / two.std(0),
}
losses = {name: QuadraticLoss.from_data(x, alcohol) for name, x in versions.items()}
start = np.zeros(2)
learning_rates = np.geomspace(1e-8, 10, 81)  # a log grid, 8 points per decade
sweeps = {name: learning_rate_sweep(loss, start, learning_rates) for name, loss in losses.items()}

# %% [markdown] slideshow={"slide_type": "subslide"}
# For each version we ran gradient descent from $w = 0$ at every learning rate of the grid
# and counted the steps until the loss gap $L(w_k) - L^*$ fell below $10^{-4}$ of its start.

# %%
print(f"{'':13s}{'kappa':>8s}{'2/lambda_max':>13s}{'largest stable':>15s}{'best lr':>9s}{'steps':>6s}")
for name, loss in losses.items():
    s = sweeps[name]
    print(f"{name:13s}{loss.condition_number:8.1f}{loss.largest_stable_lr:13.3g}"
          f"{s.largest_stable_lr:15.3g}{s.best_lr:9.3g}{s.best_steps:6d}")

# %% [markdown] slideshow={"slide_type": "notes"}
# Read the table with the students: the measured largest stable rate on the grid sits just
# below the theoretical 2/λ_max in every row, so the theory is not decoration. Then the
# step counts: the raw and the centered problems need hundreds of steps, the standardized
# one a handful. Centering alone did not help here; the scale mismatch is the culprit.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What gradient descent does in each bowl
#
# The first 25 steps at each version's best learning rate, on contours of $L - L^*$
# (both axes at the same scale, so the ellipses have their true shape).

# %%
paths = {name: gradient_descent(loss, start, sweeps[name].best_lr, steps=25)
         for name, loss in losses.items()}
fig = plot_loss_contours(losses, paths)

# %% [markdown] slideshow={"slide_type": "subslide"}
# * **Raw and centered:** the steep direction is solved in a few steps; then the path
#   zig-zags across the valley and crawls along its floor. A larger learning rate would
#   speed the crawl but blows up across the valley.
# * **Standardized:** nearly round contours; a few steps reach the minimum.
#
# The standardized bowl is still a little elongated: for two standardized features with
# correlation $\rho$, $H$ is their correlation matrix with eigenvalues $1 \pm \rho$, so
# $\kappa = \frac{1+|\rho|}{1-|\rho|}$. Standardizing fixes scales, not correlations.

# %%
rho = np.corrcoef(two.T)[0, 1]
print(f"rho = {rho:.3f}: (1+|rho|)/(1-|rho|) = {(1 + abs(rho)) / (1 - abs(rho)):.3f}, "
      f"measured kappa = {losses['standardized'].condition_number:.3f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The wider the scale gap, the worse
#
# Pairs with hue as the second feature, raw vs standardized (budget 10,000 steps):

# %%
def steps_text(sweep):
    return f"{sweep.best_steps:,}" if sweep.best_steps > 0 else f"> {sweep.max_steps:,}"


print(f"{'pair':26s}{'kappa raw':>12s}{'steps raw':>11s}{'kappa std':>11s}{'steps std':>11s}")
for name in ("color_intensity", "alcalinity_of_ash", "magnesium", "proline"):
    x = x_raw[:, [FEATURES.index(name), FEATURES.index("hue")]]
    row = f"{name + ' & hue':26s}"
    for version in (x, (x - x.mean(0)) / x.std(0)):
        loss = QuadraticLoss.from_data(version, alcohol)
        sweep = learning_rate_sweep(loss, start, learning_rates)
        row += f"{loss.condition_number:12,.0f}{steps_text(sweep):>11s}"
    print(row)

# %% [markdown] slideshow={"slide_type": "notes"}
# With proline and hue, κ is in the millions: at the best learning rate gradient descent
# would need on the order of κ·ln(10⁴)/4 ≈ 10⁷ steps. After standardization every pair
# needs fewer than about ten. This is the measured version of the BN notes' sentence
# "gradient descent converges much faster with feature scaling than without it".

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Real data: a small network on all 13 wine features
#
# A one-hidden-layer MLP (32 ReLU units), trained with the course's training loop
# (`normlab.train.fit`: SGD with Nesterov momentum 0.9, batch 16) for the same budget of
# 30 epochs on raw and on standardized features, at four learning rates.

# %%
def train_wine(standardize, lr, epochs=30):
    splits = data.load_wine(standardize=standardize)
    train_loader, val_loader, test_loader = splits.loaders(batch_size=16, seed=0)
    torch.manual_seed(0)
    model = models.mlp(13, 3, hidden=(32,))
    history = train.fit(model, train_loader, val_loader, epochs=epochs, lr=lr,
                        early_stop_patience=epochs, progress=False)
    return model, history, train.evaluate(model, test_loader)[1]


runs = {(standardize, lr): train_wine(standardize, lr)
        for standardize in (False, True) for lr in (1e-4, 1e-3, 1e-2, 1e-1)}

# %% [markdown] slideshow={"slide_type": "subslide"}
# Training loss after 30 epochs (lower is better; $\ln 3 \approx 1.10$ is guessing):

# %%
final_loss = {key: history.train_loss[-1] for key, (_, history, _) in runs.items()}
print(f"{'lr':>8s}{'raw':>10s}{'standardized':>14s}")
for lr in (1e-4, 1e-3, 1e-2, 1e-1):
    print(f"{lr:8.0e}{final_loss[(False, lr)]:10.3f}{final_loss[(True, lr)]:14.3f}")
best = {s: min((lr for t, lr in final_loss if t == s), key=lambda lr: final_loss[(s, lr)])
        for s in (False, True)}
for s, label in ((False, "raw"), (True, "standardized")):
    print(f"best {label}: lr {best[s]:.0e}, test accuracy {runs[(s, best[s])][2]:.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The best run of each, epoch by epoch:

# %%
fig = plot_curves({f"raw, lr {best[False]:.0e}": runs[(False, best[False])][1].train_loss,
                   f"standardized, lr {best[True]:.0e}": runs[(True, best[True])][1].train_loss})

# %% [markdown] slideshow={"slide_type": "subslide"}
# * Raw inputs: only tiny learning rates ($\le 10^{-4}$) train. From $10^{-3}$ up the loss
#   sticks near 1.09, the loss of predicting the class frequencies for every wine.
# * Standardized: rates 1000× larger train, and the best run reaches a loss of ~0.001.
# * At the *same* small rate raw is ahead (big inputs, big gradients: a larger effective
#   step). Standardizing wins by the learning rate it allows — as in the bowl, where
#   $2/\lambda_{\max}$ set the limit.
#
# Why the raw network gets stuck — its hidden ReLUs: share of units active on at least
# one training wine, after training:

# %%
x_train_raw = data.load_wine(standardize=False).x_train
for lr in (1e-4, 1e-2):
    hidden = runs[(False, lr)][0][:3](x_train_raw)  # Flatten -> Linear -> ReLU
    print(f"raw, lr {lr:.0e}: {(hidden > 0).any(0).float().mean():.2f} of the hidden units alive")

# %% [markdown] slideshow={"slide_type": "notes"}
# With proline around 750, the first layer's pre-activations are in the hundreds; the
# first gradient steps are huge and push the hidden units to where they are negative for
# every input — dead ReLUs, zero gradient, and only the output bias keeps learning (the
# class frequencies). This is the "gradient of the larger parameter dominates" picture in
# a real network. Numbers are printed above; they are deterministic (fixed seeds).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Fit the statistics on the training split only
#
# $\mu$ and $\sigma$ are parameters of the model, learned from training data. Computing
# them on all data lets the test set leak into training. `normlab.data` fits on train and
# applies the same numbers to val and test, whose means are then close to, not exactly, 0:

# %%
splits = data.load_wine(standardize=True)
print("train means:", splits.x_train.mean(0)[:4].numpy().round(3))
print("test means: ", splits.x_test.mean(0)[:4].numpy().round(3))
one_wine = wine.x_test[:1]
print("one new wine, standardized with its own statistics:",
      data.Standardizer().fit_transform(one_wine)[0, :4].numpy())
print("... and with the training statistics:", splits.x_test[0, :4].numpy().round(2))

# %% [markdown] slideshow={"slide_type": "notes"}
# The second print is the point: at prediction time there is often one sample, and its own
# mean is itself — standardizing it with its own statistics erases it (all zeros). So the
# statistics must be fixed numbers from training. Batch normalization will meet exactly
# this problem in lecture 04 (running statistics, the batch of one).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## "This only fixes the first layer"
#
# > However, normalizing the inputs only affects the first hidden layer ... what about the
# > other hidden layers? — Raschka's lecture slides
#
# Layer $k$'s input is the previous layer's output, and that changes whenever the earlier
# weights change. We train an MLP with three hidden layers on standardized digits and
# record, on a fixed probe batch, the mean and spread of each input unit of every layer.

# %%
digits = data.load_digits(flat=True)
torch.manual_seed(0)
net = models.mlp(64, 10, hidden=(64, 64, 64))
record = train.record_layer_inputs(net, digits.x_train, digits.y_train, x_probe=digits.x_val,
                             steps=300, lr=0.05, record_every=10)

# %% slideshow={"slide_type": "subslide"}
fig = plot_layer_input_drift(record)

# %% [markdown] slideshow={"slide_type": "subslide"}
# How far each layer's input distribution moved in 300 steps (shift of the unit means in
# units of their initial spread; ratio of final to initial spread):

# %%
for row in drift_summary(record):
    print(f"layer {row['layer']} input: mean shift {row['mean_shift']:.2f} sigma, "
          f"spread x {row['std_ratio']:.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# * Layer 1 sees the standardized data: its input distribution never changes.
# * Every later layer sees a moving target, and the drift grows with depth.
#
# **Internal covariate shift** is the name the BN paper (Ioffe & Szegedy, 2015, quoted in
# Silva's CNN slides and Schilling's thesis talk) gives to this: "the change in the
# distribution of network activations due to the change in network parameters during
# training" (the BN notes). Its remedy: standardize the inputs of *every* layer, on each
# mini-batch — batch normalization, lecture 02.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## A claim, not a fact
#
# That drift *slows training* is the BN paper's hypothesis (repeated by the BN notes and
# the UCLA discussion sheet). Raschka's lecture slides add: "there is actually no guarantee
# or evidence that BatchNorm helps with covariate shift", and show Santurkar et al. (2018):
# BN networks trained as well when noise with *changing* mean and variance was injected
# after every BN layer; they argue BN works because it makes the loss landscape smoother.
#
# We measured that the drift exists. Whether it matters is measured in lecture 08 (the
# smoothness view).

# %% [markdown] slideshow={"slide_type": "notes"}
# Keep the two things apart for the students: (1) the drift is real and measurable — the
# table above; (2) the story "drift is why deep nets train slowly, and BN helps because it
# removes it" is a hypothesis. Exercise 4 measures the drift with BN, and lecture 08
# measures the smoothness view. The sheet's multiple-choice question about what BN fixes
# comes in lecture 02.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# * Least squares on features $x$: curvature matrix $H = \frac1n\sum x x^\top$. Feature
#   scales $s_j$ enter $H$ squared; $\kappa = \lambda_{\max}/\lambda_{\min}$ measures how
#   elongated the bowl is.
# * Gradient descent is stable only for $\eta < 2/\lambda_{\max}$ and then needs about
#   $\kappa$ steps. Measured: color intensity & hue, 276 steps raw → 7 standardized; with
#   proline, κ in the millions and more than 10,000 steps raw.
# * On the real wine data, a small MLP on raw features trains only at learning rates
#   $\le 10^{-4}$ (larger ones kill its ReLUs; best loss 0.47 after 30 epochs);
#   standardized, it trains up to $0.1$ and reaches 0.001.
# * Standardize with statistics fitted on the training split; apply the same numbers later.
# * Standardizing fixes the first layer only: hidden layers' inputs drift during training,
#   more with depth ("internal covariate shift" — the BN paper's motivation, disputed).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **Curvature by hand.** Two centered, uncorrelated features have spreads $s_1 = 14$ and
#    $s_2 = 0.23$ (magnesium and hue). What is $H$, what is the largest stable learning rate,
#    and roughly how many gradient-descent steps reduce the error along the flat direction
#    by a factor $10^4$ at $\eta = 1/\lambda_{\max}$? Compare with the table of pairs.
# 2. **Scaling without centering.** Divide the raw color-intensity and hue columns by their
#    standard deviations but do not subtract the means. Compute $\kappa$ and the steps to
#    converge, and do the same for magnesium & hue. When does centering matter, and why?
#    (Hint: what does $H$ look like when a feature's mean is much larger than its spread?)
# 3. **Leakage.** Fit a `normlab.data.Standardizer` on all 178 wines instead of the training
#    split. How far do the fitted means move, in training standard deviations? Why is this
#    wrong even if test accuracy does not change, and what should a deployed model do with
#    a single new wine?

# %% [markdown] slideshow={"slide_type": "subslide"}
# 4. **Drift with batch norm.** Repeat the drift measurement with
#    `models.mlp(64, 10, hidden=(64, 64, 64), norm="batch")` and compare `drift_summary`
#    with the plain network. Does batch norm stop the hidden layers' inputs from moving?
#    Where can the remaining drift come from?
# 5. **Conceptual.** The BN paper says BN helps *because* it reduces internal covariate
#    shift. Describe an experiment that could refute this explanation while keeping BN's
#    benefit, and say what result would refute it (Raschka's slides show one).
