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
# # Lecture 06 — worked solutions
#
# Solutions to the five exercises of `course/06_dropout.py`. Every number below is
# computed here (small MLPs on the digits, about 20 s in all).

# %%
import copy
import dataclasses
import math

import numpy as np
import torch
from IPython.display import Markdown
from torch import nn

from normlab import data, gradcheck, models, train
from normlab import functional as nf
from normlab.plots import variants

torch.set_num_threads(1)
torch.manual_seed(0)
digits = data.load_digits(flat=True)

# %% [markdown]
# ## Exercise 1 — What batch normalization "solves" (UCLA discussion sheet)
#
# The sheet's intended answer is **(d) all of the above**; each option deserves a caveat.
#
# **(b) activations too high or too low** — yes, by construction: after BN each feature
# has mean $\beta$ and standard deviation $\gamma$ over the batch, whatever the weights.
# A 10-layer ReLU MLP with $\mathcal N(0, 1)$ weights at initialization, one batch:

# %%
def hidden_output_stds(norm):
    torch.manual_seed(0)
    model = models.mlp(64, 10, hidden=(128,) * 10, norm=norm, init="normal", init_std=1.0).double()
    stds, x = [], digits.x_train[:256].double()
    for layer in model:
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            stds.append(x.std().item())
    return stds


for norm in ("none", "batch"):
    print(f"{norm:6s}", " ".join(f"{s:9.2e}" for s in hidden_output_stds(norm)[::3]), "(layers 1, 4, 7, 10)")

# %% [markdown]
# Without BN the activations grow by about $\sqrt{128/2} = 8$ per layer; with BN they
# stay of order 1.
#
# **(a) overfitting** and **(c) training is too slow** — measured on the lecture's MLP
# (no dropout, 6 epochs, 3 seeds), with and without BN:

# %%
plain_vs_bn = train.compare_conditions({"no BN": lambda: models.mlp(64, 10),
                                           "BN": lambda: models.mlp(64, 10, norm="batch")}, digits, epochs=6)
Markdown(variants.results_table({"test accuracy": plain_vs_bn, "train accuracy": (plain_vs_bn, "train_acc"),
                                 "generalization gap": (plain_vs_bn, "gap")}))

# %% [markdown]
# **(c)** Faster training is what Schilling's talk and the UCLA sheet report (higher
# accuracy for the same number of epochs, larger usable learning rates — lecture 08). On
# this small, easy problem the difference after six epochs is small; check it against the
# spread in the table before calling it.
#
# **(a)** BN has a slight regularizing effect (Silva's slides: "slight regularization effect
# … weaker as batch size gets larger"; the lecture measured a smaller generalization gap
# with BN), but it does not remove overfitting: the BN network still reaches a train
# accuracy a few points above its test accuracy. "Solved" is too strong for (a);
# "reduced" is what we can measure.

# %% [markdown]
# ## Exercise 2 — Keep probability
#
# Keras' `Dropout(.2)` takes the *drop* probability, so `keep_prob = 0.8`. Each of the ten
# entries is zeroed independently with probability 0.2: the number of zeros is
# Binomial(10, 0.2), with mean $10 \cdot 0.2 = 2$ and
# $P(\text{exactly one zero}) = 10 \cdot 0.2 \cdot 0.8^9 \approx 0.268$.
# The kept values are divided by 0.8, i.e. multiplied by 1.25, so each entry keeps its
# expectation ($0.8 \cdot 1.25\,x = x$). Simulated with `nf.dropout_forward`:

# %%
numbers = np.arange(10, dtype=np.float64).reshape(5, 2)
rng = np.random.default_rng(0)
zeros = np.array([(nf.dropout_forward(numbers + 1, 0.2, True, rng)[0] == 0).sum() for _ in range(20_000)])
print(f"mean number of zeros {zeros.mean():.3f} (exact 2)")
print(f"P(exactly one zero)  {np.mean(zeros == 1):.3f} (exact {10 * 0.2 * 0.8**9:.3f})")

# %% [markdown]
# (`numbers + 1` so that the input 0 is not mistaken for a dropped entry.) In Silva's
# output only the last entry, 9, became 0, and 0 stayed 0 — it is impossible to tell
# whether it was dropped.

# %% [markdown]
# ## Exercise 3 — Forgetting the test-time scale
#
# A non-inverted dropout module; `scale_at_test=False` simulates the forgotten
# multiplication by $q$:

# %%
class NonInvertedDropout(nn.Module):
    """Train: x * mask with mask ~ Bernoulli(1 - p), no rescaling. Eval: x * (1 - p)."""

    def __init__(self, p=0.5, scale_at_test=True):
        super().__init__()
        self.p, self.scale_at_test = p, scale_at_test

    def forward(self, x):
        keep = 1.0 - self.p
        if self.training:
            return x * torch.empty_like(x).bernoulli_(keep)
        return x * keep if self.scale_at_test else x

# %%
def mlp_with(dropout_module):
    model = models.mlp(64, 10, dropout=0.5)
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Dropout):
            model[index] = dropout_module()
    return model


runs = train.compare_conditions({"inverted (nn.Dropout)": lambda: models.mlp(64, 10, dropout=0.5),
                                    "non-inverted": lambda: mlp_with(NonInvertedDropout)}, digits, epochs=8)

# %% [markdown]
# The forgotten scale needs no retraining: switch it off in the trained non-inverted models.

# %%
test_loader = digits.loaders(512, shuffle=False)[2]
runs["non-inverted, scale forgotten"] = []
for run in runs["non-inverted"]:
    forgetful = copy.deepcopy(run.model)
    for layer in forgetful:
        if isinstance(layer, NonInvertedDropout):
            layer.scale_at_test = False
    loss, accuracy = train.evaluate(forgetful, test_loader)
    runs["non-inverted, scale forgotten"].append(dataclasses.replace(run, test_acc=accuracy, test_loss=loss))
Markdown(variants.results_table({"test accuracy": runs, "test loss": (runs, "test_loss")}))

# %% [markdown]
# %%
print(variants.verdict("inverted", runs["inverted (nn.Dropout)"], "non-inverted", runs["non-inverted"]))
print(variants.verdict("scale kept", runs["non-inverted"], "scale forgotten", runs["non-inverted, scale forgotten"]))

# %% [markdown]
# **Inverted vs non-inverted.** The two describe the same family of networks — a
# non-inverted network equals an inverted one whose next-layer weights are multiplied by
# $q$ — and agree in expectation (lecture). They do *not* train the same under SGD with the
# same initialization and learning rate: in the non-inverted network the layer after each
# dropout sees inputs $q$ times smaller, so its weight gradients are $q$ times smaller, and
# the reparametrization changes the effective learning rate. In our 8-epoch runs that
# shows: the non-inverted networks are behind. One more practical reason for inverted
# dropout: the learning rate you tuned without dropout stays roughly right.
#
# **The forgotten scale.** At test time every layer after a dropout then receives inputs
# $1/q = 2$ times larger than their training expectation. In our run the change of accuracy
# is within the seed noise and the loss hardly changes (it can even drop: an undertrained
# network has timid logits, and doubling them can help the loss by accident). The
# mismatch is a bug regardless — its size depends on the network, so do not rely on luck.

# %% [markdown]
# ## Exercise 4 — The variance shift as a function of $p$
#
# For $a = \text{ReLU}(z)$, $z \sim \mathcal N(0, 1)$: $\mu = 1/\sqrt{2\pi}$,
# $\mathbb E[a^2] = 1/2$, $\sigma^2 = 1/2 - 1/(2\pi)$. With keep probability $q = 1 - p$,
#
# $$\frac{\operatorname{Var}_\text{train}}{\operatorname{Var}_\text{test}} =
# \frac{\mathbb E[a^2]/q - \mu^2}{\sigma^2},$$
#
# and a BN layer right after the dropout divides test-time inputs by the training standard
# deviation, so it shrinks its outputs by $\sqrt{\operatorname{Var}_\text{test}/\operatorname{Var}_\text{train}}$.

# %%
a = np.maximum(np.random.default_rng(1).standard_normal(200_000), 0)
mu, second_moment = 1 / math.sqrt(2 * math.pi), 0.5
print("   p   measured   formula   BN output scale at test")
for p in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
    dropped = nf.dropout_forward(a, p, True, np.random.default_rng(2))[0]
    measured = dropped.var() / a.var()
    formula = (second_moment / (1 - p) - mu**2) / (second_moment - mu**2)
    print(f"{p:4.1f} {measured:10.3f} {formula:9.3f} {1 / math.sqrt(formula):12.3f}")

# %% [markdown]
# At $p = 0.5$ the variance is 2.5 times larger in training and BN's test-time outputs
# come out at about 0.63 of their intended scale. The shift grows quickly with $p$, one
# reason why small dropout rates are gentler to a following BN (Li et al. 2019 make the
# same observation).

# %% [markdown]
# ## Exercise 5 — Gradient check of dropout
#
# `dropout_backward` must return `dout * mask` with the mask of the forward pass. A finite
# difference calls the forward function many times, so each call must draw the *same*
# mask: re-seed the generator in every call.

# %%
def forward(x):
    return nf.dropout_forward(x, p=0.3, train=True, rng=np.random.default_rng(7))


def backward(dout, cache):
    return (nf.dropout_backward(dout, cache),)


x = np.random.default_rng(0).standard_normal((4, 5))
(report,) = gradcheck.check_layer(forward, backward, {"x": x})
print(report)

# %% [markdown]
# A relative error of about $10^{-10}$ or below: dropout is linear in $x$ for a fixed mask,
# so the centred difference is exact up to round-off. With an unseeded generator the masks
# of the $\pm h$ calls would differ and the check would report a wildly wrong "gradient".
