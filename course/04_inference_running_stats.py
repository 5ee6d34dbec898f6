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
# The BN study note: "Ideal solution: Compute μ and σ using the whole training set",
# but "it is difficult in pratice" (the training set is too large, training could be
# online); "Practical solution: Compute the moving average of μ and σ of the batches
# during training". (PyTorch averages the variance σ², not σ.) We will do both on the
# digits data and compare, instead of taking either on faith.

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
from normlab.notebook import claim, prose, show_source
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

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("after one step the running mean has moved a fraction momentum = 0.1 of the way from 0 to the batch mean",
      torch.allclose(bn.running_mean, 0.1 * batch.mean(dim=0)), running_mean=bn.running_mean.tolist(),
      batch_mean=batch.mean(dim=0).tolist())
claim("in eval mode sample 0 gets the same output alone and in the batch",
      torch.equal(bn(batch)[0], bn(batch[:1])[0]))

# %% [markdown] slideshow={"slide_type": "notes"}
# After one step the running mean has moved only a fraction `momentum=0.1` of the way
# from 0 towards the batch mean: a freshly built model in eval mode normalizes with
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
# Same exponential moving average, with $k = 1 - m$: **Keras' `momentum=0.99` is PyTorch's
# `momentum=0.01`**, PyTorch's `0.1` is Keras' `0.9`.

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Erratum (Raschka's STAT 479 lecture 11 slides).** The slides write the **Keras form**
# `running_mean = momentum * running_mean + (1 - momentum) * sample_mean` and say
# *"momentum is typically ~0.1"* — the PyTorch value. Taken literally, that keeps $0.1$ of
# the history and $0.9$ of the newest batch (PyTorch `momentum=0.9`). In that form the
# value should be about $0.9$ (Keras' default: `0.99`).

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

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
by_hand = graphs.running_average_curve(batch_means, 0.1)
claim("PyTorch's running mean over means 2, 4, 3 is 0.2, 0.58, 0.822, as computed by hand",
      np.allclose(by_hand, [0.2, 0.58, 0.822]), curve=list(by_hand))

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
forget = {m: int(np.ceil(np.log(0.01) / np.log(1 - m))) for m in (0.1, 0.01, 0.9)}
print("steps until the initial 0 weighs < 1 %:", forget)

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
pytorch_curve, keras_curve, slides_curve = curves.values()
momentum_of = dict(zip(("pytorch", "keras", "slides"), conventions.values()))
tail_std = dict(zip(momentum_of, (c[100:].std() for c in curves.values())))
stationary_std = {k: 0.5 * np.sqrt(m / (2 - m)) for k, m in momentum_of.items()}  # sigma_batch = 0.5
batch_std = noisy_means[100:].std()
claim("after 200 steps Keras' 0.99 still sits well below 3 (more than 5 of its stationary noise stds)",
      3 - keras_curve[199] > 5 * stationary_std["keras"], step_200=keras_curve[199], noise=stationary_std["keras"])
claim("the slides' formula with 0.1 is almost as noisy as one batch mean (std over steps 101..200 above 0.8 of theirs)",
      tail_std["slides"] > 0.8 * batch_std, curve_std=tail_std["slides"], batch_std=batch_std)
prose(rf"""
- $m = 0.1$: forgets the start after {forget[0.1]} steps, averages over ~$1/m = 10$ batches.
- Keras' `0.99`: a memory of ~100 batches, smooth, but it needs {forget[0.01]} steps to forget
  its initial value — after 200 steps it still sits at {keras_curve[199]:.2f}, well below 3.
- The slides' formula with `0.1`: no averaging to speak of; over steps 101–200 its std is
  {tail_std["slides"]:.2f}, against {batch_std:.2f} for the batch means themselves.
""")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
claim("the measured std over steps 101..200 is within 30 % of the stationary EMA noise for m = 0.1 and 0.9 (seed 0)",
      all(abs(tail_std[k] / stationary_std[k] - 1) < 0.3 for k in ("pytorch", "slides")),
      measured=tail_std, stationary=stationary_std)
claim("the Keras column is mostly its slow climb: its std is over 3 times its stationary noise",
      tail_std["keras"] > 3 * stationary_std["keras"], measured=tail_std["keras"], stationary=stationary_std["keras"])
prose(rf"""
The stationary noise of an EMA with weight m on the new value is
σ_batch·sqrt(m/(2−m)): {stationary_std["pytorch"]:.3f} for `m = 0.1`, {stationary_std["slides"]:.3f} for
`m = 0.9` — the last column measured {tail_std["pytorch"]:.3f} and {tail_std["slides"]:.3f} (one
sample of 100 steps). The Keras column ({tail_std["keras"]:.3f}, against a stationary
{stationary_std["keras"]:.3f}) is mostly its slow climb, not noise. Practical consequence of
Keras' `0.99`: a short fine-tuning run leaves the moving statistics close to their initial
values (the Keras curve after 200 steps), so eval mode normalizes with stale statistics.
""")

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

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
unbiased = x.var(dim=0, unbiased=True)
claim("with momentum=1.0 normlab's and torch's running_var are the unbiased batch variance (float64)",
      torch.allclose(ours.running_var, unbiased, rtol=1e-12) and torch.allclose(torchs.running_var, unbiased, rtol=1e-12))
claim("the biased batch variance is 15/16 of the unbiased one", torch.allclose(x.var(dim=0, unbiased=False), unbiased * 15 / 16))

# %% [markdown] slideshow={"slide_type": "notes"}
# For a conv layer m = N·H·W, so the correction m/(m−1) is negligible; for an MLP with
# batch 2 it is a factor 2. normlab.nn.BatchNorm matches torch's buffers up to float64
# round-off (tests/test_nn.py checks outputs, gradients and buffers in float64).

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

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("with momentum=None the running mean is the mean of the batch means",
      torch.allclose(bn_cumulative.running_mean, torch.stack(batch_stats).mean(dim=0)))

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
mean_gaps, variance_ratios = [], []
for layer, (r, p) in enumerate(zip(running_bns, population_bns), start=1):
    mean_gap = ((r.running_mean - p.running_mean).abs() / p.running_var.sqrt()).max()
    ratio = r.running_var / p.running_var
    mean_gaps.append(mean_gap.item())
    variance_ratios.append(ratio)
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
correct = {}  # correctly classified samples: {statistics: (val, test)}
for label, m in [("running averages (momentum 0.1)", model), ("population statistics", population_model)]:
    (_, val_acc), (_, test_acc) = train.evaluate(m, val_loader), train.evaluate(m, test_loader)
    correct[label.split()[0]] = (round(val_acc * len(val_loader.dataset)), round(test_acc * len(test_loader.dataset)))
    print(f"{label:32s} val {val_acc:.3f}   test {test_acc:.3f}")

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
largest_gap = max(mean_gaps)
ratio_range = (min(r.min().item() for r in variance_ratios), max(r.max().item() for r in variance_ratios))
differ = [abs(a - b) for a, b in zip(correct["running"], correct["population"])]
claim("running and population statistics are close: means within 0.1 std, variance ratios within 0.6 .. 1.5 (one seed)",
      largest_gap < 0.1 and 0.6 < ratio_range[0] and ratio_range[1] < 1.5, mean_gap=largest_gap, ratios=ratio_range)
claim("the accuracies with running and with population statistics differ by at most one sample (one seed)",
      max(differ) <= 1, correct=correct)
prose(rf"""
On this model the two are close: means within {largest_gap:.2f} standard deviations, variances
between {ratio_range[0]:.2f} and {ratio_range[1]:.2f} times the population's feature by feature,
and the accuracies differ by {differ[0]} of {len(val_loader.dataset)} validation and {differ[1]} of
{len(test_loader.dataset)} test samples (one seed). The running averages lag the weights by
about $1/m = 10$ batches, over which late-training weights move little. The gap can grow
when the weights still move fast at the end of training (large learning rate, few steps)
or with long memories such as Keras' `0.99`. The recomputed statistics cost one forward
pass: a cheap safe default.
""")

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

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
flipped = [row.argmax().item() for row in random_mates if row.argmax().item() != label]
p_true = random_mates[:, label]
claim("in eval mode the digit is classified correctly", eval_probabilities.argmax().item() == label)
claim("in train mode its prediction changes with its batch mates: at least one of 5 random batches flips it",
      len(flipped) >= 1, predictions=[row.argmax().item() for row in random_mates])
claim("mates that share its label flip the prediction, with a lower probability for the true label than "
      "any random batch gives (one trial)",
      same_label_mates[0].argmax().item() != label and same_label_mates[0, label].item() < p_true.min().item(),
      same_label=same_label_mates[0, label].item(), random=p_true.tolist())
prose(rf"""
Eval mode: a {label} whatever the batch. Train mode: {len(flipped)} of 5 random batches {"flips" if len(flipped) == 1 else "flip"} it
(to {", ".join(map(str, flipped))}), p(true label) ranges from {p_true.min():.2f} to {p_true.max():.2f};
its same-label mates make it a {same_label_mates[0].argmax().item()}.

Same-label batch mates are a bad case (here worse than any of the random batches):
the features that make this a "{label}" are shared by the whole batch, so subtracting the
batch mean removes exactly them. This is also why a test set sorted by class gives
very poor train-mode accuracy (exercise 3 measures it).
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The whole test set, left in train mode
#
# Accuracy when every test batch is normalized with its own statistics:

# %%
train_mode = {}
for batch_size in (2, 4, 8, 32, len(splits.y_test)):
    train_mode[batch_size] = train.train_mode_accuracy(model, splits.x_test, splits.y_test, batch_size)
    print(f"train mode, test batches of {batch_size:3d}: accuracy {train_mode[batch_size]:.3f}")
eval_accuracy = train.evaluate(model, test_loader)[1]
print(f"eval mode (running statistics)    : accuracy {eval_accuracy:.3f}")

# %% tags=["remove-input"] slideshow={"slide_type": "fragment"}
sizes = sorted(train_mode)
largest_batches_gap = max(abs(train_mode[b] - eval_accuracy) for b in sizes if b >= 32)
claim("train-mode accuracy drops most for tiny test batches: it rises with the batch size from 2 to 32 (one seed)",
      all(train_mode[a] < train_mode[b] for a, b in zip(sizes[:4], sizes[1:4])), accuracies=train_mode)
claim("from batches of 32 on, train mode is within a point of eval mode (one seed)",
      largest_batches_gap < 0.01, gap=largest_batches_gap, eval=eval_accuracy)
prose(rf"""
Tiny test batches hurt most: {train_mode[2]:.3f} with batches of 2 and {train_mode[4]:.3f} with 4,
against {eval_accuracy:.3f} in eval mode; from 32 on, train mode is within
{100 * largest_batches_gap:.1f} points of it. And a forward pass in train mode is not harmless:
it **updates the running statistics** with test data. (`train_mode_accuracy` works on a
copy for that reason.)
""")

# %%
polluted = copy.deepcopy(model).train()
with torch.no_grad():
    polluted(splits.x_test[:8])
shift = (polluted[2].running_mean - model[2].running_mean).abs().max()
print(f"one test batch in train mode moved running_mean by up to {shift:.3f}")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("one test batch in train mode moves the running mean", shift.item() > 0, shift=shift.item())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Classic bug 2: a batch of one
#
# In train mode a single sample has no variance to normalize with ($\hat x = 0$ for
# every input); PyTorch refuses, and so does `normlab`. In eval mode it is fine:

# %%
refused = []
for layer in (nn.BatchNorm1d(3), nlnn.BatchNorm(3)):
    try:
        layer.train()(torch.randn(1, 3))
    except ValueError as error:
        refused.append(type(layer).__name__)
        print(f"{type(layer).__name__} train: ValueError: {error}")
    print(f"{type(layer).__name__} eval : output shape {tuple(layer.eval()(torch.randn(1, 3)).shape)}")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("torch's BatchNorm1d and normlab's BatchNorm both refuse a batch of one in train mode",
      refused == ["BatchNorm1d", "BatchNorm"], refused=refused)

# %% [markdown] slideshow={"slide_type": "fragment"}
# `BatchNorm2d` on one image of $H\times W$ pixels does **not** complain: it normalizes
# each channel over that image's $H\cdot W$ pixels — silently an instance norm of a
# single image, with its own statistics. (The typical case: the last, smaller batch of an
# epoch; `DataLoader(drop_last=True)` avoids a batch of one.)

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
one_image = torch.randn(1, 3, 4, 4)
with torch.no_grad():
    as_batch_norm, as_instance_norm = nn.BatchNorm2d(3).train()(one_image), nn.InstanceNorm2d(3)(one_image)
claim("BatchNorm2d in train mode on one image is an instance norm of that image",
      torch.allclose(as_batch_norm, as_instance_norm, atol=1e-5),
      max_difference=(as_batch_norm - as_instance_norm).abs().max().item())

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
    largest_logit = model(splits.x_test).abs().max().item()
before, after = (min(t) * 1e6 for t in seconds.values())
print(f"layers {len(model)} -> {len(folded)};  max |logit difference| {gap:.1e} (float32 round-off)")
print(f"parameters {models.count_parameters(model)} -> {models.count_parameters(folded)};  "
      f"buffers {sum(b.numel() for b in model.buffers())} -> {sum(b.numel() for b in folded.buffers())}")
print(f"eval forward of the test set: {before:.0f} us -> {after:.0f} us (indicative: best of 21, shared machine)")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
removed_parameters = models.count_parameters(model) - models.count_parameters(folded)
claim("folding changes the logits only by float32 round-off (relative to the largest logit, below 1e-5)",
      gap / largest_logit < 1e-5, gap=gap, largest_logit=largest_logit)
claim("folding leaves no buffers", sum(b.numel() for b in folded.buffers()) == 0)
claim("the folded model's eval forward was faster (one timing run, best of 21)", after < before,
      before_us=before, after_us=after)

# %% [markdown] slideshow={"slide_type": "notes"}
# Folding only works in eval mode (fixed statistics) and only into the layer *before*
# BN when nothing nonlinear sits in between. A BN after the ReLU can be folded into the
# Linear *after* it instead (exercise 5). Deployment toolchains do this automatically;
# the saving is one elementwise pass per BN layer and its buffers.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary

# %% tags=["remove-input"]
claim("running and population statistics give the same test accuracy (one seed)",
      correct["running"][1] == correct["population"][1], correct=correct)
prose(rf"""
- Train mode: batch statistics, buffers updated. Eval mode: a fixed affine map per feature, no batch dependence.
- Running average, PyTorch: $r \leftarrow (1-m)r + m\,b$, default $m = 0.1$. Keras writes $k\,r + (1-k)\,b$ with $k = 1 - m$, default $k = 0.99$ (PyTorch's $m = 0.01$). Raschka's slides mix the Keras formula with the PyTorch value.
- `running_var` is fed the **unbiased** batch variance ($m/(m-1)$ times the one used to normalize); `momentum=None` averages all batches equally.
- Population statistics recomputed after training (one full-batch train-mode pass, `update_bn`): on our digits MLP close to the running averages (means within {largest_gap:.2f} std, variances {ratio_range[0]:.2f}–{ratio_range[1]:.2f} times the population's) and the same test accuracy (one seed).
- Forgetting `eval()`: one digit's prediction flips with its batch mates; accuracy drops most for tiny test batches ({train_mode[2]:.3f} with batches of 2, against {eval_accuracy:.3f}); train-mode passes also pollute the buffers.
- A batch of one: error in train mode, fine in eval mode.
- Folding: Linear+BN → one Linear, equal outputs up to round-off, {removed_parameters} fewer parameters and no buffers; one elementwise pass less per BN (eval forward {before:.0f} → {after:.0f} µs in one timing run: indicative).
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **(Conventions.)** (a) Which PyTorch `momentum` reproduces Keras' default `momentum=0.99`?
#    (b) From `running_mean = 0` and a constant batch mean of 3, how many steps until the
#    running mean is within $1\,\%$ of 3 with PyTorch's default and with Keras' default?
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
