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
# computed here, and every statement about a measurement is checked by a `claim` (small
# MLPs on the digits).

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
from normlab.notebook import claim, prose
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


output_stds = {norm: hidden_output_stds(norm) for norm in ("none", "batch")}
for norm, stds in output_stds.items():
    print(f"{norm:6s}", " ".join(f"{s:9.2e}" for s in stds[::3]), "(layers 1, 4, 7, 10)")

# %% tags=["remove-input"]
plain = output_stds["none"]
growth = (plain[-1] / plain[1]) ** (1 / (len(plain) - 2))  # per layer, from layer 2 on (fan-in 128)
claim("without BN the activations grow by about 8 per layer (between 6 and 10), with BN they stay of order 1",
      6 < growth < 10 and all(0.1 < s < 10 for s in output_stds["batch"]), growth=growth,
      bn_stds=output_stds["batch"])
prose(f"""
Without BN the activations grow by about $\\sqrt{{128/2}} = 8$ per layer (measured: a factor
{growth:.1f} per layer from layer 2 to layer 10); with BN they stay of order 1.

**(a) overfitting** and **(c) training is too slow** — measured on the lecture's MLP
(no dropout, 6 epochs, 3 seeds), with and without BN:
""")

# %%
plain_vs_bn = train.compare_conditions({"no BN": lambda: models.mlp(64, 10),
                                           "BN": lambda: models.mlp(64, 10, norm="batch")}, digits, epochs=6)
Markdown(variants.results_table({"test accuracy": plain_vs_bn, "train accuracy": (plain_vs_bn, "train_acc"),
                                 "generalization gap": (plain_vs_bn, "gap")}))

# %% tags=["remove-input"]
bn_test = variants.compare_runs(plain_vs_bn["BN"], plain_vs_bn["no BN"])
bn_gap = variants.compare_runs(plain_vs_bn["BN"], plain_vs_bn["no BN"], "gap")
claim("6 epochs, seeds 0-2: BN vs no BN on test accuracy is a draw", bn_test.outcome == "draw",
      diff=bn_test.diff, margin=bn_test.margin)
claim("6 epochs, seeds 0-2: BN has the smaller generalization gap, yet still a gap of over 2 points",
      bn_gap.outcome == "a" and bn_gap.mean_a > 0.02, bn_gap=bn_gap.mean_a, plain_gap=bn_gap.mean_b)
prose(f"""
**(c)** Faster training is what Schilling's talk and the UCLA sheet report (higher
accuracy for the same number of epochs, larger usable learning rates — lecture 08). On
this small, easy problem the difference after six epochs is {100 * bn_test.diff:+.1f} points of
test accuracy, within the verdict rule's margin of {100 * bn_test.margin:.1f}: a draw (seeds 0–2).

**(a)** BN has a slight regularizing effect (Silva's slides: "slight regularization effect"
that gets "weaker as batch size gets larger"; here, as in the lecture, BN's generalization
gap is the smaller one, {100 * bn_gap.mean_a:.1f} against {100 * bn_gap.mean_b:.1f} points), but it does not
remove overfitting: the BN network still reaches a train accuracy {100 * bn_gap.mean_a:.1f} points
above its test accuracy. "Solved" is too strong for (a); "reduced" is what we can measure.
""")

# %% [markdown]
# ## Exercise 2 — Keep probability
#
# Keras' `Dropout(.2)` takes the *drop* probability, so `keep_prob = 0.8`. Each of the ten
# entries is zeroed independently with probability $p = 0.2$: the number of zeros is
# $\text{Binomial}(10, 0.2)$, with mean $10 \cdot 0.2 = 2$ and
# $P(\text{exactly one zero}) = 10 \cdot 0.2 \cdot 0.8^9 \approx 0.268$.
# The kept values are divided by $0.8$, i.e. multiplied by $1.25$, so each entry keeps its
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

# %%
print(variants.verdict("inverted", runs["inverted (nn.Dropout)"], "non-inverted", runs["non-inverted"]))
print(variants.verdict("scale kept", runs["non-inverted"], "scale forgotten", runs["non-inverted, scale forgotten"]))

# %% tags=["remove-input"]
inverted_vs_not = variants.compare_runs(runs["inverted (nn.Dropout)"], runs["non-inverted"])
forgotten = {m: variants.compare_runs(runs["non-inverted"], runs["non-inverted, scale forgotten"], m)
             for m in ("test_acc", "test_loss")}
claim("8 epochs, seeds 0-2: the non-inverted networks are behind the inverted ones",
      inverted_vs_not.outcome == "a", diff=inverted_vs_not.diff, margin=inverted_vs_not.margin)
claim("seeds 0-2: forgetting the scale costs accuracy by the verdict rule, but only about a point (under 2)",
      forgotten["test_acc"].outcome == "a" and forgotten["test_acc"].diff < 0.02,
      diff=forgotten["test_acc"].diff, margin=forgotten["test_acc"].margin)
claim("seeds 0-2: with the scale forgotten the mean test loss does not rise (it drops)",
      forgotten["test_loss"].mean_b < forgotten["test_loss"].mean_a,
      loss_kept=forgotten["test_loss"].mean_a, loss_forgotten=forgotten["test_loss"].mean_b)
prose(f"""
**Inverted vs non-inverted.** The two describe the same family of networks — a
non-inverted network equals an inverted one whose next-layer weights are multiplied by
$q$ — and agree in expectation (lecture). They do *not* train the same under SGD with the
same initialization and learning rate: in the non-inverted network the layer after each
dropout sees inputs $q$ times smaller, so its weight gradients are $q$ times smaller, and
the reparametrization changes the effective learning rate. In our 8-epoch runs (seeds 0–2)
that shows: the non-inverted networks are behind by {100 * inverted_vs_not.diff:.1f} points of test
accuracy. One more practical reason for inverted dropout: the learning rate you tuned
without dropout stays roughly right.

**The forgotten scale.** At test time every layer after a dropout then receives inputs
$1/q = 2$ times larger than their training expectation. In our run forgetting it costs
{100 * forgotten["test_acc"].diff:.2f} points of accuracy, just beyond the verdict rule's margin of
{100 * forgotten["test_acc"].margin:.2f}, and the mean test loss even drops, from
{forgotten["test_loss"].mean_a:.3f} to {forgotten["test_loss"].mean_b:.3f} (an undertrained network has timid
logits, and doubling them can help the loss by accident). The mismatch is a bug
regardless — its size depends on the network, so do not rely on luck.
""")

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
ratio = {}
for p in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
    dropped = nf.dropout_forward(a, p, True, np.random.default_rng(2))[0]
    measured = dropped.var() / a.var()
    formula = (second_moment / (1 - p) - mu**2) / (second_moment - mu**2)
    ratio[p] = (measured, formula)
    print(f"{p:4.1f} {measured:10.3f} {formula:9.3f} {1 / math.sqrt(formula):12.3f}")

# %% tags=["remove-input"]
claim("the measured ratios match the formula within 2 % for every p", all(abs(m / f - 1) < 0.02
      for m, f in ratio.values()), ratios=ratio)
measured_half, formula_half = ratio[0.5]
prose(f"""
At $p = 0.5$ the variance is {formula_half:.2f} times as large in training (measured:
{measured_half:.2f}), and BN's test-time outputs come out at {1 / math.sqrt(formula_half):.2f} of their intended
scale. The shift grows quickly with $p$, one reason why small dropout rates are gentler to
a following BN (Li et al. 2019 make the same observation).
""")

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
claim("the gradient check passes with a relative error of round-off size (below 1e-8)",
      report.rel_error < 1e-8, rel_error=report.rel_error)
print(report)

# %% [markdown]
# A relative error far below the tolerance, of round-off size: dropout is linear in $x$
# for a fixed mask, so the centred difference is exact up to round-off. With an unseeded generator the masks
# of the $\pm h$ calls would differ and the check would report a wildly wrong "gradient".
