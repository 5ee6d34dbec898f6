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
# # Lecture 07 — Worked solutions
#
# Solutions to the exercises of `course/07_initialization.py`. Every number below is
# computed here, on scikit-learn's digits or on random inputs, with fixed seeds.

# %%
import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from normlab import data, models, stats, train
from normlab.nn import BatchNorm
from normlab.notebook import claim, prose
from normlab.plots.depth import activation_statistics
from normlab.train import fit_tracking_weight_norms

torch.set_num_threads(1)
digits = data.load_digits(flat=True)
SEEDS = (0, 1, 2)

# %% [markdown]
# ## Exercise 1 — zero and constant initialization (discussion sheet, MCQ 2)
#
# **Answer: (b)** — statement 2 is true, statement 1 is false. With all weights 0 every
# hidden unit computes the same value and receives the same gradient, so the units stay
# identical forever and the layer is worth one unit (with ReLU or tanh, $g(0) = 0$, the
# hidden weights do not even move). Zero *biases* are harmless: the random weights already
# make the units differ (`normlab.models.mlp` initializes every bias to 0).
#
# A *nonzero* constant does not help: the argument only needs all units to start equal.

# %%
torch.manual_seed(0)
net = models.mlp(64, 10, hidden=(32,), activation="tanh")
with torch.no_grad():
    for layer in (net[1], net[3]):
        layer.weight.fill_(0.05)  # the same constant everywhere; biases are already 0
train_loader, val_loader, _ = digits.loaders(batch_size=64, seed=0)
history = train.fit(net, train_loader, val_loader, epochs=10, progress=False)
hidden_rows = net[1].weight.detach()
unit_spread, moved = (hidden_rows - hidden_rows[0]).abs().max().item(), (hidden_rows - 0.05).norm().item()
print(f"max difference between two hidden units' weights: {unit_spread:.2g}")
print(f"the weights did move: ||W1 - 0.05|| = {moved:.3f}")
print(f"best validation accuracy: {history.best_val_acc:.3f}")

# %% tags=["remove-input"]
claim("the 32 hidden units moved but are still exactly equal after 10 epochs; the accuracy stays far below "
      "a trained net's (under 0.5)", unit_spread == 0.0 and moved > 0 and history.best_val_acc < 0.5,
      unit_spread=unit_spread, moved=moved, best_val_acc=history.best_val_acc)
prose(rf"""
The 32 hidden units moved — together: they are still exactly equal, so the network is a
one-hidden-unit network, copied 32 times, and its accuracy shows it (best validation
accuracy {history.best_val_acc:.2f}, where random weights reach far more in fewer epochs).
""")

# %% [markdown]
# ## Exercise 2 — Kaiming for leaky ReLU
#
# For $z$ symmetric around 0 with variance $v$, $g(z) = \max(z, az)$ gives
#
# $$\mathbb E[g(z)^2] = \mathbb E[z^2\,;\,z > 0] + a^2\,\mathbb E[z^2\,;\,z < 0] = \tfrac12 v + \tfrac12 a^2 v
#   = \frac{1 + a^2}{2}\,v .$$
#
# With $\operatorname{Var}(z^{(l+1)}) = n_\text{in}\operatorname{Var}(w)\,\mathbb E[g(z^{(l)})^2]$,
# the variance is preserved iff $\operatorname{Var}(w) = \dfrac{2}{(1 + a^2)\,n_\text{in}}$
# ($a = 0$: Kaiming for ReLU; $a = 1$: the identity, $1/n_\text{in}$). This is the gain
# $\sqrt{2/(1+a^2)}$ of `torch.nn.init.kaiming_normal_(w, a=a, nonlinearity="leaky_relu")`.

# %%
def leaky_std_ratio(var_w_times_fan_in, a=0.2, depth=20, width=128, seed=0):
    """std(layer 20) / std(layer 1) of the pre-activations of a bias-free leaky-ReLU net
    with Var(w) = var_w_times_fan_in / width, for one random network and input batch."""
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(256, width, generator=generator, dtype=torch.float64)
    stds = []
    for _ in range(depth):
        w = (var_w_times_fan_in / width) ** 0.5 * torch.randn(width, width, generator=generator, dtype=torch.float64)
        z = h @ w.T
        stds.append(z.std().item())
        h = F.leaky_relu(z, negative_slope=a)
    return stds[-1] / stds[0]


a = 0.2
leaky = {}  # name -> (geometric mean of the ratio over 8 nets, min, max, theory)
for name, c in (("Xavier", 1.0), ("Kaiming (ReLU)", 2.0), ("leaky 2/(1+a²)", 2 / (1 + a ** 2))):
    ratios = np.array([leaky_std_ratio(c, a, seed=seed) for seed in range(8)])
    theory = (c * (1 + a ** 2) / 2) ** (19 / 2)
    leaky[name] = (np.exp(np.log(ratios).mean()), ratios.min(), ratios.max(), theory)
    print(f"{name:15s} n_in Var(w) = {c:.3f}: std ratio layer 20 / layer 1 over 8 nets: geometric mean "
          f"{leaky[name][0]:.3g} (min {ratios.min():.3g}, max {ratios.max():.3g}); theory {theory:.3g}")

# %% tags=["remove-input"]
xavier_leaky, kaiming_leaky, formula_leaky = leaky.values()
scatter = [high / low for _, low, high, _ in leaky.values()]
below = [mean / theory for mean, _, _, theory in leaky.values()]
claim("Xavier's measured geometric mean is close to the theory (within 20 %)",
      abs(xavier_leaky[0] / xavier_leaky[3] - 1) < 0.2, xavier=xavier_leaky)
claim("single networks scatter over more than the factor sqrt(1.04)^19 that separates Kaiming from the "
      "leaky formula; the geometric means are in the predicted order, the leaky formula's the closer to 1",
      min(scatter) > kaiming_leaky[3] / formula_leaky[3]
      and xavier_leaky[0] < formula_leaky[0] < kaiming_leaky[0]
      and abs(np.log(formula_leaky[0])) < abs(np.log(kaiming_leaky[0])), scatter=scatter, leaky=leaky)
claim("all three geometric means lie below the theory, by about the same factor (within 5 %)",
      max(below) < 1 and max(below) < 1.05 * min(below), measured_over_theory=below)
prose(rf"""
The theory predicts the factor per layer $\sqrt{{n_\text{{in}}\operatorname{{Var}}(w)\,(1+a^2)/2}}$:
Xavier loses $\sqrt{{0.52}} \approx 0.72$ per layer — $0.72^{{19}} \approx 0.002$ after 19 layers;
measured {xavier_leaky[0]:.4f} (geometric mean). Plain Kaiming gains only $\sqrt{{1.04}} \approx 1.02$ per
layer ($1.02^{{19}} \approx 1.45$ after 19 layers), the leaky-ReLU formula exactly 1. That factor
$1.02$ per layer in the std is smaller than the scatter of single networks of width 128 (their
ratios span a factor of about {np.mean(scatter):.1f} between the 8 networks), so one network
cannot tell Kaiming from the leaky formula; the geometric means over 8 networks are in the
predicted order ({xavier_leaky[0]:.3g} < {formula_leaky[0]:.3g} < {kaiming_leaky[0]:.3g}; the leaky formula's is the closer
one to 1). All three lie below the theory (measured / theory about {np.mean(below):.2f} for each), as
expected at finite width: the average of the logarithm of a random factor is below the
logarithm of its average. Width is what shrinks the scatter.
""")

# %% [markdown]
# ## Exercise 3 — the σ that preserves the scale of a 20-layer ReLU net
#
# Theory: $\sigma^2 = 2/n_\text{in} = 2/128$, $\sigma = 0.125$; the std then changes by the
# factor $(\sigma^2 n_\text{in}/2)^{1/2}$ per layer, $(64\sigma^2)^{19/2}$ from layer 1 to 20.

# %%
sigmas = np.geomspace(0.08, 0.2, 13)
ratios = np.array([
    (lambda s: s.stds[-1] / s.stds[0])(activation_statistics(depth=20, width=128, activation="relu",
                                                             init="normal", init_std=sigma, num_samples=256))
    for sigma in sigmas
])
for sigma, ratio in zip(sigmas, ratios):
    print(f"sigma = {sigma:.4f}   std(layer 20) / std(layer 1) = {ratio:9.3g}   theory {(64 * sigma ** 2) ** 9.5:9.3g}")
best = np.interp(0.0, np.log(ratios), np.log(sigmas))  # log ratio is increasing in log sigma
print(f"ratio 1 at sigma ≈ {np.exp(best):.4f}; Kaiming: sqrt(2/128) = {np.sqrt(2 / 128):.4f}")

# %% tags=["remove-input"]
crossing = np.exp(best)
network_factor = ratios / (64 * sigmas ** 2) ** 9.5  # measured / theory, one value per sigma
claim("the crossing is within 5 % of Kaiming's sigma = 0.125", abs(crossing / 0.125 - 1) < 0.05, crossing=crossing)
claim("measured / theory is the same factor at every sigma (one network: the same draws, scaled; to 1e-4)",
      network_factor.max() / network_factor.min() - 1 < 1e-4, factors=list(network_factor))
prose(rf"""
The measured crossing, $\sigma \approx$ {crossing:.4f}, is {100 * abs(crossing / 0.125 - 1):.1f} % from Kaiming's $0.125$. Every
$\sigma$ uses the same random draws, scaled, and the biases are 0, so this one network's
ratio is the theory's times one factor, {network_factor.mean():.2f} at every $\sigma$: a random network of finite
width deviates from the expectation, and the crossing moves by that factor's 19th root. The
steepness is the lesson: a $\sigma$ only $20\,\%$ off changes the scale after 20 layers by
$1.2^{{19}} \approx 32$ times.
""")

# %% [markdown]
# ## Exercise 4 — scale invariance and the growth of ‖w‖
#
# Let $f(\alpha w) = f(w)$ for all $\alpha > 0$.
#
# * Differentiate with respect to $w$: $\alpha\,\nabla f(\alpha w) = \nabla f(w)$, so
#   $\nabla f(\alpha w) = \frac1\alpha\nabla f(w)$.
# * Differentiate with respect to $\alpha$ at $\alpha = 1$: $\langle w, \nabla f(w)\rangle = 0$.
# * One plain SGD step $w' = w - \eta\nabla f(w)$:
#   $\lVert w'\rVert^2 = \lVert w\rVert^2 - 2\eta\langle w, \nabla f(w)\rangle + \eta^2\lVert\nabla f(w)\rVert^2
#   = \lVert w\rVert^2 + \eta^2\lVert\nabla f(w)\rVert^2 \ge \lVert w\rVert^2$.
#
# So without weight decay the norm of a layer followed by BN can only grow (and its
# effective learning rate $\eta/\lVert w\rVert^2$ only shrink). Numerically, with $\epsilon = 0$
# so that the invariance is exact:

# %%
torch.manual_seed(0)
x = torch.randn(64, 20, dtype=torch.float64)
labels = torch.randint(5, (64,))
head = torch.randn(5, 8, dtype=torch.float64)  # a fixed layer after BN, then cross-entropy
bn = BatchNorm(8, eps=0.0, dtype=torch.float64)
W = torch.randn(8, 20, dtype=torch.float64, requires_grad=True)
loss = F.cross_entropy(bn(x @ W.T) @ head.T, labels)
(grad,) = torch.autograd.grad(loss, W)
eta = 0.5
W_next = W.detach() - eta * grad
print(f"<W, grad> / (||W|| ||grad||) = {(W.detach() * grad).sum() / (W.norm() * grad.norm()):.1e}")
print(f"||W'||^2 = {W_next.norm() ** 2:.10f}")
print(f"||W||^2 + eta^2 ||grad||^2 = {W.detach().norm() ** 2 + eta ** 2 * grad.norm() ** 2:.10f}")

# %% [markdown]
# ## Exercise 5 — why is BN + N(0, 1) worse than BN + Kaiming?
#
# Two differences: (i) the hidden layers' weights are $\sqrt{n_\text{in}/2}$ times larger, which
# BN removes from the forward pass but which makes their effective learning rate
# $n_\text{in}/2$ = 32–64 times smaller; (ii) the output layer is not followed by BN, so its
# $\mathcal N(0,1)$ weights give large logits. Separate the two:

# %%
def hidden_linears(net):
    return [m for m in net if isinstance(m, nn.Linear)][:-1]


def bn_normal_net(seed, fix_hidden, fix_output):
    torch.manual_seed(seed)
    net = models.mlp(64, 10, hidden=(128, 128, 128), norm="batch", init="normal", init_std=1.0)
    with torch.no_grad():
        if fix_hidden:  # to Kaiming's scale: Var(w) = 2 / n_in
            for layer in hidden_linears(net):
                layer.weight.mul_((2 / layer.in_features) ** 0.5)
        if fix_output:
            nn.init.kaiming_normal_(net[-1].weight, nonlinearity="relu")
    return net


# The rescaling of the hidden layers does not change the training-mode output:
batch = digits.x_train[:64]
before = copy.deepcopy(bn_normal_net(0, False, False)).train()(batch)
after = copy.deepcopy(bn_normal_net(0, True, False)).train()(batch)
print(f"max |output change| after rescaling the hidden weights: {(after - before).abs().max():.1e}"
      f" (outputs of size {before.abs().max():.0f})")

# %%
def test_accuracy(net, seed, epochs=5):
    train_loader, val_loader, test_loader = digits.loaders(batch_size=64, seed=seed)
    train.fit(net, train_loader, val_loader, epochs=epochs, seed=seed, progress=False)
    return train.evaluate(net, test_loader)[1]


variants = {"BN + N(0, 1)": (False, False), "(a) hidden weights rescaled": (True, False),
            "(b) output layer Kaiming": (False, True), "(a) and (b)": (True, True)}
accuracies = {}
for name, (fix_hidden, fix_output) in variants.items():
    accuracies[name] = [test_accuracy(bn_normal_net(seed, fix_hidden, fix_output), seed) for seed in SEEDS]
    print(f"{name:28s} {'  '.join(f'{a:.3f}' for a in accuracies[name])}   mean {np.mean(accuracies[name]):.3f}")
kaiming = []
for seed in SEEDS:
    torch.manual_seed(seed)
    kaiming.append(test_accuracy(models.mlp(64, 10, hidden=(128, 128, 128), norm="batch"), seed))
print(f"{'BN + Kaiming (reference)':28s} {'  '.join(f'{a:.3f}' for a in kaiming)}   mean {np.mean(kaiming):.3f}")


def verdict(values_a, values_b):
    """The course's verdict rule on test accuracies, paired by seed (same split and batch order)."""
    return stats.compare(values_a, values_b, min_effect=stats.ACCURACY_DELTA / 100, paired=True)


hidden_vs_kaiming = verdict(accuracies["(a) hidden weights rescaled"], kaiming)
output_vs_normal = verdict(accuracies["(b) output layer Kaiming"], accuracies["BN + N(0, 1)"])
normal_vs_kaiming = verdict(accuracies["BN + N(0, 1)"], kaiming)
for label, v in (("(a) vs BN + Kaiming", hidden_vs_kaiming), ("(b) vs BN + N(0, 1)", output_vs_normal),
                 ("BN + N(0, 1) vs BN + Kaiming", normal_vs_kaiming)):
    print(f"{label:30s} diff {100 * v.diff:+.1f} ± {100 * v.se:.1f} points, margin {100 * v.margin:.1f}: {v.outcome}")

# %% tags=["remove-input"]
claim("seeds 0-2, verdict rule: BN + Kaiming ahead of BN + N(0, 1); rescaling the hidden weights (a) is not "
      "behind BN + Kaiming; fixing only the output layer (b) is a draw with BN + N(0, 1)",
      normal_vs_kaiming.outcome == "b" and hidden_vs_kaiming.outcome in ("a", "draw")
      and output_vs_normal.outcome == "draw",
      a_vs_kaiming=hidden_vs_kaiming, b_vs_normal=output_vs_normal, normal_vs_kaiming=normal_vs_kaiming)
recovered = (f"ahead of it by {100 * hidden_vs_kaiming.diff:.1f} points" if hidden_vs_kaiming.outcome == "a"
             else f"a draw with it ({100 * hidden_vs_kaiming.diff:+.1f} points)")
prose(rf"""
Rescaling the hidden weights — a change the forward pass cannot see (up to $\epsilon$) —
recovers the whole gap of {-100 * normal_vs_kaiming.diff:.1f} points to BN + Kaiming: (a) ends {recovered}, by
the verdict rule over seeds 0–2. Fixing only the output layer recovers little
({100 * output_vs_normal.diff:+.1f} points against BN + $\mathcal N(0,1)$, a draw). So with BN the
initialization still matters, mainly through the **effective learning rate** of the
scale-invariant layers: $\mathcal N(0,1)$ weights make every step $n_\text{{in}}/2$ times
smaller in angle. Raising the learning rate of those layers (or weight decay, which
shrinks the norm over time) would have the same effect.
""")

# %% [markdown]
# ## Exercise 6 — the timescale of weight decay
#
# Decay alone multiplies $W$ by $1 - \eta\lambda$ per step, so $\lVert W\rVert$ falls by
# $1/e$ after $t = -1/\ln(1 - \eta\lambda) \approx 1/(\eta\lambda)$ steps: with $\eta = 0.1$ and
# $\lambda = 5\cdot10^{-4}$, **20 000 steps** — 1000 epochs of digits at 20 steps per epoch,
# and even on Schilling's MNIST (≈ 850 steps per epoch at batch 64) about 24 epochs.

# %%
eta, decay, epochs = 0.1, 5e-4, 5
steps = epochs * len(digits.loaders(batch_size=64)[0])
print(f"steps to shrink by 1/e: {-1 / np.log(1 - eta * decay):.0f}; this run has {steps} steps")
norm_ratio = {}
for weight_decay in (0.0, decay):
    torch.manual_seed(0)
    net = models.mlp(64, 10, hidden=(128, 128, 128), norm="batch")
    h = fit_tracking_weight_norms(net, digits, epochs=epochs, lr=eta, weight_decay=weight_decay, seed=0)
    norm_ratio[weight_decay] = h.weight_norms[-1, 1] / h.weight_norms[0, 1]
    print(f"λ = {weight_decay:<6g} ||W2|| {h.weight_norms[0, 1]:.3f} → {h.weight_norms[-1, 1]:.3f}"
          f"  (ratio {norm_ratio[weight_decay]:.4f};"
          f" decay alone predicts {(1 - eta * weight_decay) ** steps:.4f})")

# %% tags=["remove-input"]
predicted = (1 - eta * decay) ** steps
claim("with Schilling's lambda the norm shrinks by less than 1 % in 100 steps, about what decay alone "
      "predicts times the growth without decay (within 0.1 %)",
      1 - norm_ratio[decay] < 0.01 and abs(norm_ratio[decay] / (predicted * norm_ratio[0.0]) - 1) < 1e-3,
      ratio=norm_ratio, predicted=predicted)
prose(rf"""
With Schilling's $\lambda$ the norm shrinks by {100 * (1 - norm_ratio[decay]):.2f} % in our {steps} steps: decay alone
predicts {100 * (1 - predicted):.2f} %, and the gradient's own contribution ($+\eta^2\lVert\nabla L\rVert^2$ per
step, which grew the norm by {100 * (norm_ratio[0.0] - 1):.2f} % without decay) makes up the difference: both are
tiny against $\mathbb E\lVert W\rVert^2 = 128 \cdot 128 \cdot 2/128 = 256$. The effective-learning-rate effect of such a
small $\lambda$ needs long training (many thousands of steps), which is what the thesis'
runs had; that is why the lecture used $\lambda = 0.03$ to see it within 100 steps.
""")

# %% [markdown]
# ## Exercises 7–10 — d2l.ai's batch-norm exercises, measured
#
# The exercises of the batch-normalization chapter of *Dive into Deep Learning* (d2l.ai):
# a "lite" batch norm that only removes the mean or only the variance, frozen $\gamma$ and
# $\beta$, the largest learning rate that still trains with and without BN, and BN in every
# layer against BN in some. d2l asks them for LeNet on Fashion-MNIST; here they run on
# digits, on a deeper MLP than the lecture's so that BN has something to do:
# `models.mlp(64, 10, hidden=(64,) * 6)` (ReLU, Kaiming), trained with `train.fit`'s recipe
# (SGD with Nesterov momentum, batches of 64), seeds 0–2, every verdict by the course's
# rule (paired by seed: the arms of a seed share its split and batch order).

# %%
DEEP = (64,) * 6


def deep_mlp(norm="none"):
    return models.mlp(64, 10, hidden=DEEP, norm=norm)


def seed_runs(build, lr, epochs=5):
    """`train.train_and_test` for seeds 0-2 (a run whose loss became non-finite stops there; NaN logits count wrong)."""
    return [train.train_and_test(build, digits, epochs=epochs, lr=lr, seed=seed) for seed in SEEDS]


def seed_accuracies(runs):
    return [run.test_acc for run in runs]


# %% [markdown]
# ### Exercise 9 first — the largest learning rate that trains
#
# A learning rate *trains* when no seed's loss becomes non-finite and every seed reaches a
# best validation accuracy of at least $0.8$ within 3 epochs (chance is $0.1$). We go up a
# half-decade grid and stop at the first rate that fails.

# %%
def largest_stable_lr(norm, rates=10 ** np.arange(-2, 1.01, 0.5), epochs=3):
    """Go up ``rates``; return (the last rate that trains, {rate: [(best val acc, diverged) per seed]})."""
    tried, largest = {}, None
    for lr in rates:
        runs = []
        for seed in SEEDS:
            torch.manual_seed(seed)
            net = deep_mlp(norm)
            train_loader, val_loader, _ = digits.loaders(batch_size=64, seed=seed)
            history = train.fit(net, train_loader, val_loader, epochs=epochs, lr=lr, seed=seed, progress=False)
            runs.append((history.best_val_acc, history.diverged))
        tried[lr] = runs
        if any(diverged or acc < 0.8 for acc, diverged in runs):
            break
        largest = lr
    return largest, tried


stable = {norm: largest_stable_lr(norm) for norm in ("none", "batch")}
for norm, (largest, tried) in stable.items():
    for lr, runs in tried.items():
        print(f"{norm:5s} lr = {lr:6.3g}: " + "  ".join(f"{acc:.2f}{' (diverged)' if d else ''}" for acc, d in runs))
    print(f"{norm:5s} largest learning rate that trains: {largest:.3g}\n")

# %% tags=["remove-input"]
lr_plain, lr_bn = stable["none"][0], stable["batch"][0]
plain_failure, bn_failure = (list(stable[norm][1].values())[-1] for norm in ("none", "batch"))
plain_diverged = sum(d for _, d in plain_failure)
claim("the largest learning rate that trains (3 seeds, 3 epochs) is at least 3 times larger with BN; at the next rate "
      "up the plain net's loss becomes non-finite in at least one seed, and the BN net reaches at most 0.5 in every seed",
      lr_bn >= 3 * lr_plain and plain_diverged > 0 and max(a for a, _ in bn_failure) <= 0.5,
      plain=lr_plain, bn=lr_bn, plain_failure=plain_failure, bn_failure=bn_failure)
prose(rf"""
Without BN the largest rate that trains is $\eta$ = {lr_plain:.3g}; one half-decade up the loss becomes
non-finite in {plain_diverged} of 3 seeds. With BN it is $\eta$ = {lr_bn:.3g}, {lr_bn / lr_plain:.0f} times larger; at the next rate the BN net
{"diverges" if any(d for _, d in bn_failure) else "stays finite but learns little"} (best validation accuracy at most {max(a for a, _ in bn_failure):.2f},
chance being $0.1$).
This is "Batchnorm favors higher learning rates" (Schilling's thesis talk) and "Allow higher
learning rates" (the BN study note), measured on this net; lecture 08 measures the same at
the thesis' rates. The exercises below use $\eta = 0.3$, a rate the plain net does not survive,
so each variant shows which part of BN buys that stability.
""")

# %% [markdown]
# ### Exercise 7 — "lite" batch norm: only the mean, or only the variance
#
# A minimal module with a switch for each of BN's two steps (running statistics as
# `torch.nn.BatchNorm1d` keeps them, for eval mode). With both switches on it is batch norm:

# %%
class PartialBatchNorm(nn.Module):
    r"""y = γ·(x − μ_B)/sqrt(σ²_B + ε) + β over the batch, with either step switchable off:
    ``subtract_mean=False`` keeps x − μ_B as x, ``divide_std=False`` skips the division."""

    def __init__(self, num_features, subtract_mean=True, divide_std=True, eps=1e-5, momentum=0.1):
        super().__init__()
        self.subtract_mean, self.divide_std, self.eps, self.momentum = subtract_mean, divide_std, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        if self.training:
            mean, var = x.mean(0), x.var(0, correction=0)
            with torch.no_grad():  # torch's convention: the running variance is unbiased
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * len(x) / (len(x) - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        if self.subtract_mean:
            x = x - mean
        if self.divide_std:
            x = x / torch.sqrt(var + self.eps)
        return x * self.weight + self.bias


def with_partial_batchnorm(subtract_mean, divide_std):
    net = deep_mlp("batch")
    for index, module in enumerate(net):
        if isinstance(module, nn.BatchNorm1d):
            net[index] = PartialBatchNorm(module.num_features, subtract_mean, divide_std)
    return net


torch.manual_seed(0)
probe, reference = PartialBatchNorm(8), nn.BatchNorm1d(8)
batches = [3 * torch.randn(32, 8) + 1 for _ in range(3)]
train_gap = max((probe(b) - reference(b)).abs().max().item() for b in batches)
probe.eval(), reference.eval()
eval_gap = (probe(batches[0]) - reference(batches[0])).abs().max().item()
print(f"full PartialBatchNorm vs torch.nn.BatchNorm1d: max difference {train_gap:.1e} (training), {eval_gap:.1e} (eval)")

# %% tags=["remove-input"]
claim("with both steps on, PartialBatchNorm is torch's BatchNorm1d (to 1e-5, training and eval mode)",
      train_gap < 1e-5 and eval_gap < 1e-5, train_gap=train_gap, eval_gap=eval_gap)

# %%
LR = 0.3
arms = {"no norm": deep_mlp,
        "full BN": lambda: with_partial_batchnorm(True, True),
        "mean only": lambda: with_partial_batchnorm(True, False),
        "variance only": lambda: with_partial_batchnorm(False, True)}
lite_runs = {name: seed_runs(build, LR) for name, build in arms.items()}
lite = {name: seed_accuracies(runs) for name, runs in lite_runs.items()}


def versus_full(values, full):
    """The verdict rule on test accuracy, paired by seed; A = the variant, B = full BN."""
    return stats.compare(values, full, min_effect=stats.ACCURACY_DELTA / 100, paired=True)


verdict_words = {"a": "ahead of full BN", "b": "behind full BN", "draw": "a draw with full BN", "n/a": "no verdict"}
for name, values in lite.items():
    v = versus_full(values, lite["full BN"])
    print(f"{name:14s} " + "  ".join(f"{a:.3f}" for a in values) + f"   mean {np.mean(values):.3f}"
          + ("" if name == "full BN" else f"   {100 * v.diff:+.1f} ± {100 * v.se:.1f} points: {verdict_words[v.outcome]}"))

# %% tags=["remove-input"]
mean_only, variance_only = versus_full(lite["mean only"], lite["full BN"]), versus_full(lite["variance only"], lite["full BN"])
claim("lr 0.3, seeds 0-2: the plain net and mean-only BN stay at or below chance (test accuracy at most 0.15) in every "
      "seed, mean-only BN's loss becoming non-finite in every seed; variance-only BN trains in every seed (above 0.5) "
      "and is behind full BN by the verdict rule",
      max(lite["no norm"] + lite["mean only"]) <= 0.15 and all(run.diverged for run in lite_runs["mean only"])
      and min(lite["variance only"]) > 0.5 and variance_only.outcome == "b", lite=lite, variance_only=variance_only)
prose(rf"""
At $\eta = 0.3$ subtracting the mean alone does not help: its loss becomes non-finite in every
seed and it ends at a test accuracy of at most {max(lite["mean only"]):.3f} (NaN logits count as wrong), no
better than the plain net (at most {max(lite["no norm"]):.3f}). Dividing by the batch std alone keeps training
alive (test accuracy {min(lite["variance only"]):.2f}–{max(lite["variance only"]):.2f}) but ends {-100 * variance_only.diff:.1f} points below full BN's
{np.mean(lite["full BN"]):.3f} (verdict rule: {verdict_words[variance_only.outcome]}). So the stability at a large rate comes
from the **division**. Our reading, not measured separately: the division takes the scale of
the weights out of the forward pass (lecture 07, section 5), so nothing else stops the
activations from growing step after step; and without the centring a ReLU after BN can stay on
(or off) for most of the batch until $\beta$ has learned the shift, which costs accuracy.
""")

# %% [markdown]
# ### Exercise 8 — frozen $\gamma$ and $\beta$
#
# Keep every BN layer's $\gamma = 1$, $\beta = 0$ (`requires_grad_(False)`: the optimizer skips
# them) and train as before:

# %%
def frozen_affine_mlp():
    net = deep_mlp("batch")
    for module in net:
        if isinstance(module, nn.BatchNorm1d):
            module.weight.requires_grad_(False)
            module.bias.requires_grad_(False)
    return net


frozen = seed_accuracies(seed_runs(frozen_affine_mlp, LR))
frozen_vs_full = versus_full(frozen, lite["full BN"])
print("frozen γ, β     " + "  ".join(f"{a:.3f}" for a in frozen) + f"   mean {np.mean(frozen):.3f}   "
      f"{100 * frozen_vs_full.diff:+.1f} ± {100 * frozen_vs_full.se:.1f} points: {verdict_words[frozen_vs_full.outcome]}")

# %% tags=["remove-input"]
claim("lr 0.3, seeds 0-2: frozen gamma and beta are a draw with full BN by the verdict rule",
      frozen_vs_full.outcome == "draw", frozen=frozen, verdict=frozen_vs_full)
prose(rf"""
Frozen: {np.mean(frozen):.3f} against {np.mean(lite["full BN"]):.3f} ({100 * frozen_vs_full.diff:+.1f} points, {verdict_words[frozen_vs_full.outcome]}). On this
net and budget the learned affine adds nothing measurable. A likely reason (not measured): the
Linear layer after each ReLU can rescale what it receives, which leaves $\gamma$ little to do. What
they are for is representational: with $\gamma = \sigma_B$, $\beta = \mu_B$ BN can undo
itself, and with $\beta$ a unit can choose how often its ReLU is on (with $\beta = 0$ it is on
exactly when the unit is above its batch mean). d2l's question of what changes has, on digits, the answer: nothing we can measure
in 5 epochs.
""")

# %% [markdown]
# ### Exercise 10 — BN in every layer, or in some
#
# Insert `torch.nn.BatchNorm1d` after chosen Linear layers of the plain net (their biases stay;
# BN cancels them) and compare with BN after every one of the six:

# %%
def batchnorm_after(layers):
    """The plain deep MLP with BN after hidden Linear layers ``layers`` (0-based)."""
    net = deep_mlp("none")
    positions = [index for index, module in enumerate(net) if isinstance(module, nn.Linear)][:-1]
    for layer in sorted(layers, reverse=True):
        net.insert(positions[layer] + 1, nn.BatchNorm1d(DEEP[layer]))
    return net


placements = {"first layer only": [0], "last layer only": [5], "every other (1, 3, 5)": [0, 2, 4]}
placed = {name: seed_accuracies(seed_runs(lambda layers=layers: batchnorm_after(layers), LR))
          for name, layers in placements.items()}
placed_verdicts = {name: versus_full(values, lite["full BN"]) for name, values in placed.items()}
for name, values in placed.items():
    v = placed_verdicts[name]
    print(f"{name:22s} " + "  ".join(f"{a:.3f}" for a in values) + f"   mean {np.mean(values):.3f}   "
          f"{100 * v.diff:+.1f} ± {100 * v.se:.1f} points: {verdict_words[v.outcome]}")

# %% tags=["remove-input"]
claim("lr 0.3, seeds 0-2: BN after the first layer only does not train (mean test accuracy below 0.5); BN after the "
      "last hidden layer only, and after every other layer, are not behind BN in every layer",
      np.mean(placed["first layer only"]) < 0.5 and placed_verdicts["last layer only"].outcome in ("a", "draw")
      and placed_verdicts["every other (1, 3, 5)"].outcome in ("a", "draw"), placed=placed,
      verdicts=placed_verdicts)
prose(rf"""
Where BN sits matters more than how many there are. After the first layer only, the net fails at
this rate (mean test accuracy {np.mean(placed["first layer only"]):.2f}); after the **last** hidden layer only it
matches BN everywhere ({np.mean(placed["last layer only"]):.3f}, {verdict_words[placed_verdicts["last layer only"].outcome]}), and so does every other layer
({np.mean(placed["every other (1, 3, 5)"]):.3f}, {verdict_words[placed_verdicts["every other (1, 3, 5)"].outcome]}). A likely reason (not measured here): ReLU is positively
homogeneous, $\operatorname{{relu}}(\alpha z) = \alpha\operatorname{{relu}}(z)$, so a BN before the output layer removes
the growth of every layer below it from the logits (up to their biases), while a BN at the
bottom leaves the five layers above it free to blow up. So "BN in every layer" is not needed
for stability here; one BN in the right place is.
""")
