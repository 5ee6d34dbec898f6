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
# # Lecture 04 — worked solutions
#
# Solutions to the exercises of `course/04_inference_running_stats.py`.

# %%
import numpy as np
import torch
from torch import nn

from normlab import data, models, train
from normlab import nn as nlnn
from normlab.notebook import claim, prose
from normlab.plots import graphs

torch.set_num_threads(1)
_ = torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1 — conventions
#
# (a) Keras keeps $k = 0.99$ of the old value; PyTorch's `momentum` is the weight of the
# new batch, so Keras' `momentum=0.99` is PyTorch's $m = 1 - 0.99 = 0.01$.
#
# (b) From 0 with a constant batch value 3, after $t$ steps the running mean is
# $3\,(1 - (1-m)^t)$. Within $1\,\%$ of 3 means $(1-m)^t \le 0.01$, i.e.
# $t \ge \ln 0.01/\ln(1-m)$: 44 steps for $m = 0.1$, 459 for $m = 0.01$.

# %%
steps = {}
for m in (0.1, 0.01):
    curve = graphs.running_average_curve(np.full(1000, 3.0), momentum=m)
    first = int(np.argmax(curve >= 0.99 * 3.0)) + 1
    steps[m] = (first, int(np.ceil(np.log(0.01) / np.log(1 - m))))
    print(f"PyTorch momentum {m}: within 1 % after {first} steps (formula {steps[m][1]})")

# %% tags=["remove-input"]
claim("the running mean is within 1 % of 3 after 44 steps for m = 0.1 and 459 for m = 0.01, as the formula says",
      steps == {0.1: (44, 44), 0.01: (459, 459)}, steps=steps)

# %% [markdown]
# (c) The slides' formula `momentum * running + (1 - momentum) * sample` with `momentum=0.1`
# keeps $0.1$ of the old value: PyTorch `momentum=0.9`, an average over about one batch.
# The intended value in that (Keras) form is about `0.9` (or Keras' default `0.99`).

# %% [markdown]
# ## Exercise 2 — the cumulative average of variances
#
# With `momentum=None` the factor at step $t$ is $1/t$: $r_t = (1-\tfrac1t)r_{t-1} + \tfrac1t v_t$.
# By induction, if $r_{t-1} = \frac{1}{t-1}\sum_{j<t} v_j$ then
# $r_t = \frac{t-1}{t}\cdot\frac{1}{t-1}\sum_{j<t}v_j + \frac1t v_t = \frac1t\sum_{j\le t}v_j$.
# So `running_var` is the mean of the unbiased batch variances $v_t$.
#
# The pooled unbiased variance of all $km$ values splits into within-batch and
# between-batch parts:
# $$s^2_{\text{pooled}} = \frac{(m-1)\sum_t v_t + m\sum_t(\mu_t-\bar\mu)^2}{km-1},$$
# so the two differ by the spread of the **batch means**, which the average of
# within-batch variances never sees.

# %%
bn = nlnn.BatchNorm(1, momentum=None).double()
batches = [torch.randn(16, 1, dtype=torch.float64) + shift for shift in (0.0, 1.0, 2.0, 3.0)]
for batch in batches:
    bn(batch)
pooled = torch.cat(batches)
print(f"running_var                      {bn.running_var.item():.4f}")
print(f"mean of unbiased batch variances {torch.stack([b.var() for b in batches]).mean().item():.4f}")
print(f"pooled unbiased variance         {pooled.var().item():.4f}   (includes the spread of the means)")

# %% tags=["remove-input"]
mean_of_variances = torch.stack([b.var() for b in batches]).mean()
claim("with momentum=None running_var is the mean of the unbiased batch variances",
      torch.allclose(bn.running_var, mean_of_variances), running_var=bn.running_var.item(),
      mean_of_variances=mean_of_variances.item())
claim("the pooled variance is larger: it includes the spread of the batch means",
      pooled.var().item() > bn.running_var.item(), pooled=pooled.var().item(), running_var=bn.running_var.item())

# %% [markdown]
# With i.i.d. batches from a fixed distribution the batch means agree up to noise and both
# estimate the same variance. During training they do not: the weights (and so the
# batch means) move, and with sorted or non-shuffled data the batches differ on purpose.

# %% [markdown]
# ## Exercise 3 — the forgotten `eval()` on a test set sorted by label

# %%
splits = data.load_digits(flat=True)
torch.manual_seed(0)
model = models.mlp(64, 10, hidden=(128, 128), norm="batch")
train_loader, val_loader, test_loader = splits.loaders(batch_size=32, seed=0)
train.fit(model, train_loader, val_loader, epochs=10, lr=0.05, progress=False)
order = torch.argsort(splits.y_test, stable=True)
x_sorted, y_sorted = splits.x_test[order], splits.y_test[order]
accuracy = {"shuffled": train.train_mode_accuracy(model, splits.x_test, splits.y_test, 32),
            "sorted": train.train_mode_accuracy(model, x_sorted, y_sorted, 32),
            "eval": train.evaluate(model, test_loader)[1]}
print(f"train mode, shuffled order, batches of 32 : {accuracy['shuffled']:.3f}")
print(f"train mode, sorted by label, batches of 32: {accuracy['sorted']:.3f}")
print(f"eval mode                                 : {accuracy['eval']:.3f}")

# %% tags=["remove-input"]
claim("sorted by label, train-mode accuracy collapses (more than 30 points below eval mode; one seed)",
      accuracy["sorted"] < accuracy["eval"] - 0.3, **accuracy)
claim("shuffled batches of 32 in train mode are within a point of eval mode (one seed)",
      abs(accuracy["shuffled"] - accuracy["eval"]) < 0.01, **accuracy)
prose(rf"""
Sorted by label, most batches hold a single class, and train-mode accuracy falls to
{accuracy["sorted"]:.3f}. Batch norm subtracts the batch mean of every feature, i.e. exactly
what the digits of the batch have in common — the evidence for their class — and rescales
the rest. The network then sees "the differences between several 3s" instead of "a 3" and
guesses. Shuffled batches of 32 have statistics close to the training batches', so their
accuracy ({accuracy["shuffled"]:.3f}) is close to eval mode's ({accuracy["eval"]:.3f}); eval mode
does not care about order at all.
""")

# %% [markdown]
# ## Exercise 4 — folding a CNN
#
# Every `Conv2d`/`Linear` directly followed by a `BatchNorm2d`/`BatchNorm1d` folds, so the
# lecture's `normlab.nn.fold_sequential` (it accepts any batch-norm class) folds the CNN
# as it is:

# %%
images = data.load_digits()
torch.manual_seed(0)
cnn = models.small_cnn(1, 10, 8, norm="batch")
cnn_loaders = images.loaders(batch_size=32, seed=0)
train.fit(cnn, cnn_loaders[0], cnn_loaders[1], epochs=3, lr=0.05, progress=False)
cnn.eval()
folded_cnn = nlnn.fold_sequential(cnn)
with torch.no_grad():
    gap = (cnn(images.x_test) - folded_cnn(images.x_test)).abs().max().item()
print(f"test accuracy {train.evaluate(cnn, cnn_loaders[2])[1]:.3f};  max |logit difference| after folding {gap:.1e}")
print(f"parameters {models.count_parameters(cnn)} -> {models.count_parameters(folded_cnn)} "
      f"(removed {models.count_parameters(cnn) - models.count_parameters(folded_cnn)})")

# %% tags=["remove-input"]
with torch.no_grad():
    largest_logit = cnn(images.x_test).abs().max().item()
removed = models.count_parameters(cnn) - models.count_parameters(folded_cnn)
bn_channels = [m.num_features for m in cnn if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
claim("the folded CNN's eval outputs agree up to float32 round-off (relative to the largest logit, below 1e-5)",
      gap / largest_logit < 1e-5, gap=gap, largest_logit=largest_logit)
claim("folding removed C parameters per BN layer: 16 + 32 + 64 = 112",
      bn_channels == [16, 32, 64] and removed == sum(bn_channels) == 112, removed=removed, channels=bn_channels)

# %% [markdown]
# Each BN brings $2C$ parameters ($\gamma, \beta$); folding turns them into the $C$ biases
# the bias-free Conv/Linear did not have, a net saving of $C$ per layer:
# $16 + 32 + 64 = 112$ here, plus all running buffers.

# %% [markdown]
# ## Exercise 5 — BN after the activation folds into the *next* layer
#
# In eval mode $\mathrm{BN}(h) = s\odot h + t$ with $s = \gamma/\sqrt{\mathrm{running\_var}+\epsilon}$
# and $t = \beta - s\odot\mathrm{running\_mean}$. The next Linear computes
# $$W_2(s\odot h + t) + b_2 = \underbrace{W_2\,\mathrm{diag}(s)}_{W_2'}\,h + \underbrace{W_2\,t + b_2}_{b_2'} .$$
# (It cannot go into the Linear *before*: the ReLU between them is not affine.)

# %%
@torch.no_grad()
def fold_into_next(bn, linear):
    """One Linear equal to linear(bn(h)) for an eval-mode BatchNorm1d followed by a Linear."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    t = bn.bias - s * bn.running_mean
    folded = nn.Linear(linear.in_features, linear.out_features)
    folded.weight.copy_(linear.weight * s)  # scales column j by s_j: W diag(s)
    folded.bias.copy_(linear.bias + linear.weight @ t)
    return folded


# %%
torch.manual_seed(0)
after = models.mlp(64, 10, hidden=(128, 128), norm="batch", norm_position="after")
print(after)
train.fit(after, train_loader, val_loader, epochs=3, lr=0.05, progress=False)
after.eval()
modules = list(after)  # Flatten, Linear, ReLU, BN, Linear, ReLU, BN, Linear
folded_after = nn.Sequential(*modules[:3], fold_into_next(modules[3], modules[4]),
                             modules[5], fold_into_next(modules[6], modules[7])).eval()
with torch.no_grad():
    gap = (after(splits.x_test) - folded_after(splits.x_test)).abs().max().item()
    largest_logit = after(splits.x_test).abs().max().item()
print(f"max |logit difference| {gap:.1e}")

# %% tags=["remove-input"]
claim("BN after the activation, folded into the next Linear, gives the same logits up to float32 round-off "
      "(relative to the largest logit, below 1e-5)", gap / largest_logit < 1e-5, gap=gap, largest_logit=largest_logit)
