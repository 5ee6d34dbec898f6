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
# # Lecture 04 — Batch norm at inference: running statistics
#
# In training, batch norm normalizes each feature with the **minibatch's** mean and
# variance. At test time there may be one image at a time, and a prediction must not
# depend on which other images happen to share its batch.
#
# *"$\mu_{\mathcal B}$ and $\sigma_{\mathcal B}$ are replaced with population statistics at
# test time!"* (Schilling's thesis talk).
#
# Today: train vs eval mode · running averages (PyTorch vs Keras momentum) · the
# unbiased running variance · population statistics after training · the classic bugs ·
# folding BN into the layer before it.

# %% [markdown] slideshow={"slide_type": "notes"}
# The BN notes put it as "ideal solution: compute μ and σ on the whole training set —
# but difficult in practice (training set too large, online training); practical
# solution: moving average during training". We will do both on the digits data and
# compare, instead of taking either on faith.

# %% slideshow={"slide_type": "skip"}
import copy
import timeit

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from normlab import data, models, train
from normlab import functional as nf
from normlab import nn as nlnn
from normlab.notebook import show_source
from normlab.plots import graphs

torch.set_num_threads(1)
_ = torch.manual_seed(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Two modes
#
# | | `model.train()` | `model.eval()` |
# |---|---|---|
# | normalize with | the batch's $\mu_{\mathcal B}, \sigma^2_{\mathcal B}$ | the buffers `running_mean`, `running_var` |
# | updates the buffers | yes, every forward pass | no |
# | output of sample $i$ depends on | the whole batch | sample $i$ only |
#
# In eval mode BN is a fixed **affine map per feature**:
# $y = \gamma\,\dfrac{x - \mathrm{running\_mean}}{\sqrt{\mathrm{running\_var}+\epsilon}} + \beta$.

# %% slideshow={"slide_type": "fragment"}
show_source(nf.batchnorm_inference, docstring=False)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The same sample, alone and in a batch

# %%
bn = nlnn.BatchNorm(3)
batch = torch.randn(6, 3) * 2 + 5
bn.train()
in_batch = bn(batch)[0]
print("train: sample 0 in a batch of 6:", in_batch.detach().numpy().round(3))
print("buffers after that step:", bn.running_mean.numpy().round(3), int(bn.num_batches_tracked))
bn.eval()
print("eval : sample 0 in the batch    :", bn(batch)[0].detach().numpy().round(3))
print("eval : sample 0 alone           :", bn(batch[:1])[0].detach().numpy().round(3))

# %% [markdown] slideshow={"slide_type": "notes"}
# After one step the running mean has moved only 10 % of the way from 0 towards the
# batch mean (momentum 0.1): a freshly built model in eval mode normalizes with
# statistics that are mostly still the initial 0 and 1. In eval mode, alone or in a
# batch gives the same numbers — that is the point.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Running averages: two conventions for one formula
#
# PyTorch (`torch.nn.BatchNorm1d`, default `momentum=0.1`; `normlab` follows it):
# $$\text{running} \leftarrow (1-m)\cdot\text{running} + m\cdot\text{batch}$$
#
# Keras (`tf.keras.layers.BatchNormalization`, default `momentum=0.99`, per its docs):
# $$\text{running} \leftarrow k\cdot\text{running} + (1-k)\cdot\text{batch}$$
#
# Same exponential moving average, with $k = 1 - m$: **Keras' 0.99 is PyTorch's 0.01**,
# PyTorch's 0.1 is Keras' 0.9.

# %% [markdown] slideshow={"slide_type": "fragment"}
# Raschka's lecture slides write the **Keras form** `momentum * running + (1 - momentum) * sample`
# and say *"momentum is typically ~0.1"* — the PyTorch value. Taken literally, that
# keeps 10 % of the history and 90 % of the newest batch.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## A numeric example
#
# Three batches with means 2, 4, 3; the running mean starts at 0 (PyTorch's initial value):

# %%
batch_means = [2.0, 4.0, 3.0]
conventions = {"PyTorch momentum 0.1": 0.1,
               "Keras momentum 0.99 (= PyTorch 0.01)": 0.01,
               "slides' formula with momentum 0.1 (= PyTorch 0.9)": 0.9}
for label, pytorch_momentum in conventions.items():
    curve = graphs.running_average_curve(batch_means, pytorch_momentum)
    print(f"{label:52s}", "  ".join(f"{v:.4f}" for v in curve))

# %% [markdown] slideshow={"slide_type": "fragment"}
# By hand, PyTorch: $0.9\cdot 0 + 0.1\cdot 2 = 0.2$, then $0.9\cdot 0.2 + 0.1\cdot 4 = 0.58$,
# then $0.9\cdot 0.58 + 0.1\cdot 3 = 0.822$. (Every curve from `running_average_curve`
# is `normlab.functional.update_running` applied batch after batch.)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## 200 noisy batches
#
# Batch means drawn from $\mathcal N(3, 0.5^2)$; the population mean is 3.

# %%
noisy_means = np.random.default_rng(0).normal(3.0, 0.5, size=200)
curves = {label: graphs.running_average_curve(noisy_means, m) for label, m in conventions.items()}
graphs.plot_running_averages(noisy_means, curves, target=3.0);

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## What the curves say

# %%
print(f"{'':52s} step 50  step 200  std over 101..200")
for label, curve in curves.items():
    print(f"{label:52s} {curve[49]:6.2f}  {curve[199]:7.2f}  {curve[100:].std():8.3f}")
print("steps until the initial 0 weighs < 1 %:",
      {m: int(np.ceil(np.log(0.01) / np.log(1 - m))) for m in (0.1, 0.01, 0.9)})

# %% [markdown] slideshow={"slide_type": "fragment"}
# - $m = 0.1$: forgets the start after ~44 steps, averages over ~$1/m = 10$ batches.
# - Keras' $0.99$: a memory of ~100 batches, smooth, but it needs ~459 steps to forget
#   its initial value — after 200 steps it still sits well below 3.
# - The slides' formula with 0.1: no averaging to speak of, as noisy as one batch.

# %% [markdown] slideshow={"slide_type": "notes"}
# The stationary noise of an EMA with weight m on the new value is
# σ_batch·sqrt(m/(2−m)): 0.115 for m = 0.1, 0.45 for m = 0.9 — compare the last column
# (one sample of 100 steps; the Keras column is mostly its slow climb, not noise).
# Practical consequence of Keras' 0.99: a short fine-tuning run leaves the moving
# statistics biased toward their initial values, and eval accuracy lags train accuracy.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The running variance is the *unbiased* one
#
# Normalizing uses the biased batch variance $\frac1m\sum(x-\mu)^2$ (lecture 2). The
# running variance estimates the population's, so PyTorch feeds it the **unbiased**
# $\frac{1}{m-1}\sum(x-\mu)^2$. With `momentum=1.0` the buffer is exactly the last batch's:

# %%
x = torch.randn(16, 3, dtype=torch.float64) * 2 + 5
ours, torchs = (nlnn.BatchNorm(3, momentum=1.0).double(), nn.BatchNorm1d(3, momentum=1.0).double())
ours(x), torchs(x)
print("normlab running_var    :", ours.running_var.numpy().round(4))
print("torch   running_var    :", torchs.running_var.detach().numpy().round(4))
print("unbiased batch variance:", x.var(dim=0, unbiased=True).numpy().round(4))
print("biased   batch variance:", x.var(dim=0, unbiased=False).numpy().round(4), " (ratio 15/16)")

# %% [markdown] slideshow={"slide_type": "notes"}
# For a conv layer m = N·H·W, so the correction m/(m−1) is negligible; for an MLP with
# batch 2 it is a factor 2. normlab.nn.BatchNorm matches torch's buffers exactly
# (tests/test_nn.py checks outputs, gradients and buffers in float64).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## `momentum=None`: the cumulative average
#
# With `momentum=None` the update factor is $1/t$ at step $t$ (`num_batches_tracked`),
# so the buffer is the plain **mean of all batch statistics so far** — no forgetting:

# %%
bn_cumulative = nlnn.BatchNorm(2, momentum=None)
batch_stats = []
for step in range(5):
    batch_k = torch.randn(8, 2) + step  # a drifting feature
    batch_stats.append(batch_k.mean(dim=0))
    bn_cumulative(batch_k)
print("running_mean           :", bn_cumulative.running_mean.numpy().round(4))
print("mean of the batch means:", torch.stack(batch_stats).mean(dim=0).numpy().round(4))

# %% [markdown] slideshow={"slide_type": "fragment"}
# Useful **after** training: reset the buffers, set `momentum=None` and run the training
# data through once. During training it would average over stale weights.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## A real model: running vs population statistics
#
# An MLP (64 → 128 → 128 → 10, BN before ReLU) on scikit-learn's digits, 10 epochs:

# %%
splits = data.load_digits(flat=True)
torch.manual_seed(0)
model = models.mlp(64, 10, hidden=(128, 128), norm="batch")
train_loader, val_loader, test_loader = splits.loaders(batch_size=32, seed=0)
history = train.fit(model, train_loader, val_loader, epochs=10, lr=0.05, progress=False)
print(f"val accuracy after {history.num_epochs} epochs: {history.val_acc[-1]:.3f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Exact population statistics, recomputed
#
# The ideal of the BN notes and Raschka's slides ("can also use global training set mean
# and variance"): with the **final** weights, one forward pass in training mode over the
# whole training set as a single batch, `momentum=None` after a reset — no gradients,
# no optimizer step. `torch.optim.swa_utils.update_bn` does exactly that:

# %%
population_model = copy.deepcopy(model)
update_bn([splits.x_train], population_model)  # one batch: all 1258 training samples
running_bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
population_bns = [m for m in population_model if isinstance(m, nn.BatchNorm1d)]
for layer, (r, p) in enumerate(zip(running_bns, population_bns), start=1):
    mean_gap = ((r.running_mean - p.running_mean).abs() / p.running_var.sqrt()).max()
    ratio = r.running_var / p.running_var
    print(f"BN {layer}: max |mean gap| = {mean_gap:.3f} std;  running/population variance "
          f"{ratio.min():.2f} .. {ratio.max():.2f} (median {ratio.median():.2f})")

# %% [markdown] slideshow={"slide_type": "notes"}
# Why one batch of everything: each BN layer's input depends on how the layers before it
# normalize. In one full-batch pass every layer normalizes with full-training-set
# statistics, exactly what it will use in eval mode, so the recomputed statistics are
# consistent all the way up. Averaging over minibatches would mix in minibatch noise.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Feature by feature

# %%
def concatenated(bns, name):
    return torch.cat([getattr(b, name) for b in bns]).detach().numpy()


graphs.plot_running_vs_population(
    {"mean": concatenated(running_bns, "running_mean"), "variance": concatenated(running_bns, "running_var")},
    {"mean": concatenated(population_bns, "running_mean"), "variance": concatenated(population_bns, "running_var")});

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Does it matter for accuracy?

# %%
for label, m in [("running averages (momentum 0.1)", model), ("population statistics", population_model)]:
    (_, val_acc), (_, test_acc) = train.evaluate(m, val_loader), train.evaluate(m, test_loader)
    print(f"{label:32s} val {val_acc:.3f}   test {test_acc:.3f}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# On this model the two are close: means within 0.1 standard deviations, variances
# within about ±30 % feature by feature, and the accuracies differ by at most one sample
# (see the table above). The running averages lag the weights by ~10 batches, and after
# 10 epochs the weights move slowly. The gap grows when the weights still move fast at
# the end of training (large learning rate, few steps) or with long memories such as
# Keras' 0.99. The recomputed statistics cost one forward pass: a cheap safe default.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Classic bug 1: forgetting `model.eval()`
#
# Raschka's slides: *"don't forget `model.train()` and `model.eval()` in training and
# test loops"*. In train mode a prediction depends on **who else is in the batch**. One
# test digit, five random batches of 8, and one batch whose mates share its label:

# %%
sample, label = splits.x_test[:1], int(splits.y_test[0])
others = splits.x_test[1:]
random_mates = train.batch_mates_probabilities(model, sample, others, batch_size=8, trials=5)
same_label = others[splits.y_test[1:] == label][:7]
same_label_mates = train.batch_mates_probabilities(model, sample, same_label, batch_size=8, trials=1)
with torch.no_grad():
    eval_probabilities = model.eval()(sample).softmax(dim=1)
print(f"true label {label};  eval mode: predicts {eval_probabilities.argmax().item()} "
      f"(p = {eval_probabilities.max():.3f}) in any batch")
for name, rows in [("random batch mates", random_mates), ("mates with label " + str(label), same_label_mates)]:
    for row in rows:
        print(f"  train mode, {name:20s}: predicts {row.argmax().item()} (p = {row.max():.3f})")

# %% [markdown] slideshow={"slide_type": "notes"}
# Same-label batch mates are the worst case: the features that make this a "1" are
# shared by the whole batch, so subtracting the batch mean removes exactly them. This is
# also why a test set sorted by class gives terrible train-mode accuracy.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The whole test set, left in train mode
#
# Accuracy when every test batch is normalized with its own statistics:

# %%
for batch_size in (2, 4, 8, 32, len(splits.y_test)):
    accuracy = train.train_mode_accuracy(model, splits.x_test, splits.y_test, batch_size)
    print(f"train mode, test batches of {batch_size:3d}: accuracy {accuracy:.3f}")
print(f"eval mode (running statistics)    : accuracy {train.evaluate(model, test_loader)[1]:.3f}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# And a forward pass in train mode is not harmless: it **updates the running statistics**
# with test data. (`train_mode_accuracy` works on a copy for that reason.)

# %%
polluted = copy.deepcopy(model).train()
with torch.no_grad():
    polluted(splits.x_test[:8])
shift = (polluted[2].running_mean - model[2].running_mean).abs().max()
print(f"one test batch in train mode moved running_mean by up to {shift:.3f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Classic bug 2: a batch of one
#
# In train mode a single sample has no variance to normalize with ($\hat x = 0$ for
# every input); PyTorch refuses, and so does `normlab`. In eval mode it is fine:

# %%
for layer in (nn.BatchNorm1d(3), nlnn.BatchNorm(3)):
    try:
        layer.train()(torch.randn(1, 3))
    except ValueError as error:
        print(f"{type(layer).__name__} train: ValueError: {error}")
    print(f"{type(layer).__name__} eval : output shape {tuple(layer.eval()(torch.randn(1, 3)).shape)}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# `BatchNorm2d` on one image of $H\times W$ pixels does **not** complain: it normalizes
# each channel over that image's $H\cdot W$ pixels — silently an instance norm of a
# single image, with its own statistics. (The typical case: the last, smaller batch of an
# epoch; `DataLoader(drop_last=True)` avoids a batch of one.)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Folding BN into the layer before it
#
# In eval mode, Linear (or Conv) followed by BN is two affine maps in a row, so it is one:
# with $s = \gamma/\sqrt{\mathrm{running\_var}+\epsilon}$ per output channel,
# $$W' = s\,W, \qquad b' = s\,(b - \mathrm{running\_mean}) + \beta .$$
# `normlab.nn.fold_batchnorm(layer, bn)` returns that single layer. Fold the whole MLP:

# %%
show_source(nlnn.fold_sequential, docstring=False)


# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Same outputs, fewer layers

# %%
model.eval()
folded = nlnn.fold_sequential(model)
seconds = {model: [], folded: []}
with torch.no_grad():
    gap = (model(splits.x_test) - folded(splits.x_test)).abs().max().item()
    for _ in range(21):  # take turns, keep the best: load on the machine hits both alike
        for m in seconds:
            seconds[m].append(timeit.timeit(lambda: m(splits.x_test), number=10) / 10)
before, after = (min(t) * 1e6 for t in seconds.values())
print(f"layers {len(model)} -> {len(folded)};  max |logit difference| {gap:.1e} (float32 round-off)")
print(f"parameters {models.count_parameters(model)} -> {models.count_parameters(folded)};  "
      f"buffers {sum(b.numel() for b in model.buffers())} -> {sum(b.numel() for b in folded.buffers())}")
print(f"eval forward of the test set: {before:.0f} us -> {after:.0f} us (indicative: best of 21, shared machine)")

# %% [markdown] slideshow={"slide_type": "notes"}
# Folding only works in eval mode (fixed statistics) and only into the layer *before*
# BN when nothing nonlinear sits in between. A BN after the ReLU can be folded into the
# Linear *after* it instead (exercise 5). Deployment toolchains do this automatically;
# the saving is one elementwise pass per BN layer and its buffers.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - Train mode: batch statistics, buffers updated. Eval mode: a fixed affine map per feature, no batch dependence.
# - Running average, PyTorch: $r \leftarrow (1-m)r + m\,b$, $m = 0.1$. Keras writes $k\,r + (1-k)\,b$ with $k = 0.99$ ($= 1 - m$). Raschka's slides mix the Keras formula with the PyTorch value.
# - `running_var` is fed the **unbiased** batch variance ($m/(m-1)$ times the one used to normalize); `momentum=None` averages all batches equally.
# - Population statistics recomputed after training (one full-batch train-mode pass, `update_bn`): on our digits MLP close to the running averages (means within 0.1 std, variances within ~±30 %) and the same test accuracy.
# - Forgetting `eval()`: one digit's prediction flips with its batch mates; accuracy drops most for tiny test batches (measured above); train-mode passes also pollute the buffers.
# - A batch of one: error in train mode, fine in eval mode.
# - Folding: Linear+BN → one Linear, equal outputs up to round-off, 256 fewer parameters and no buffers; the eval forward saves one elementwise pass per BN (measured above; small next to the matrix products).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **(Conventions.)** (a) Which PyTorch `momentum` reproduces Keras' default 0.99?
#    (b) From `running_mean = 0` and a constant batch mean of 3, how many steps until the
#    running mean is within 1 % of 3 with PyTorch's default and with Keras' default?
#    (c) Which PyTorch momentum is Raschka's slides' formula with "momentum ~0.1"?
# 2. **(Cumulative average.)** With `momentum=None`, after $k$ batches of equal size,
#    show that `running_var` is the mean of the $k$ unbiased batch variances. Is that the
#    unbiased variance of all $k\cdot m$ values pooled? Verify numerically with batches
#    whose means differ, and explain the gap.
# 3. **(Forgotten eval.)** Sort the test set by label and measure the train-mode accuracy
#    with batches of 32 (`train.train_mode_accuracy`). Compare with the shuffled order
#    and with eval mode, and explain.
# 4. **(Folding a CNN.)** Train `models.small_cnn(1, 10, 8, norm="batch")` on the digits
#    images for 3 epochs, fold every Conv2d+BatchNorm2d and the head's Linear+BatchNorm1d,
#    and check that the eval outputs agree. How many parameters did folding remove?
# 5. **(BN after the activation.)** For `Linear → ReLU → BN → Linear`, BN cannot be folded
#    into the first Linear. Derive how to fold it into the *second* Linear
#    ($W_2' = W_2\,\mathrm{diag}(s)$, $b_2' = ?$), implement it, and verify on a
#    `models.mlp(..., norm_position="after")`.
