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
# # Lecture 02 — worked solutions
#
# Solutions to the exercises of `course/02_batchnorm_forward.py`. Every number is computed
# here with fixed seeds.

# %%
import numpy as np
import torch
from torch import nn

from normlab import data, models, stats, train
from normlab import functional as nf
from normlab.notebook import claim, prose

torch.set_num_threads(1)
rng = np.random.default_rng(0)
digits = data.load_digits(flat=True)

# %% [markdown]
# ## Exercise 1 — the UCLA discussion sheet, question 6
#
# *Which of the following neural network training challenges can be solved using batch
# normalization? (a) Overfitting (b) Restrict activations to become too high or low
# (c) Training is too slow (d) All of the above.*
#
# **Answer: (d)**, the answer the question is built for — but the three parts are of very
# different strength, and it pays to know which is which:
#
# * **(b) is true by construction.** Whatever the weights, BN's output has per-unit batch
#   mean $\beta$ and standard deviation $\approx\gamma$; activations cannot blow up or die
#   out from layer to layer *at the BN layers*.
# * **(c) is an empirical effect**, often large: BN allows larger learning rates and makes
#   training less sensitive to initialization (Raschka's slides, Schilling's thesis talk,
#   the BN notes). It is not guaranteed: at a small learning rate BN can even be slower.
# * **(a) is a side effect.** The batch-to-batch noise of $\mu_\mathcal{B}, \sigma_\mathcal{B}$
#   regularizes "slightly" (Silva's slides), less for larger batches. Schilling's thesis
#   talk reports near-zero training losses — overfitting — *with* BN on every data set. BN
#   is not a cure for overfitting; dropout, weight decay, data are.
#
# Measured below on digits (one seed — lecture 08 uses several).

# %% [markdown]
# **(b)** A 6-hidden-layer ReLU MLP with weights drawn from $\mathcal N(0, 1)$ (Schilling's
# bad-initialization condition): spread of each hidden layer's activations at initialization.

# %%
batch = digits.x_train[:256]
activation_std = {}
for norm in ("none", "batch"):
    torch.manual_seed(0)
    net = models.mlp(64, 10, hidden=(256,) * 6, norm=norm, init="normal", init_std=1.0)
    activation_std[norm], h = [], batch
    with torch.no_grad():
        for layer in net:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                activation_std[norm].append(h.std().item())
    print(f"{norm:5s} activation std per hidden layer: {', '.join(f'{v:.3g}' for v in activation_std[norm])}")

# %% tags=["remove-input"]
growth = np.array(activation_std["none"][1:]) / np.array(activation_std["none"][:-1])
relu_of_normal = np.sqrt(0.5 - 1 / (2 * np.pi))  # std of max(0, Z) for Z ~ N(0, 1)
claim("without BN the activations grow by about sqrt(256/2) per layer (within 10 %), to about 10^6",
      bool(np.all(np.abs(growth / np.sqrt(256 / 2) - 1) < 0.1)) and 1e5 < activation_std["none"][-1] < 1e7,
      growth=growth.tolist())
claim("with BN every hidden layer's activations have the spread of a ReLU of a standard normal (within 0.02)",
      all(abs(v - relu_of_normal) < 0.02 for v in activation_std["batch"]), stds=activation_std["batch"])
prose(rf"""
Without BN the activations grow by a factor of {growth.min():.1f} to {growth.max():.1f} per layer —
$\sqrt{{256/2}} \approx 11.3$: fan-in 256, and a ReLU keeps half of the second moment — to
{activation_std["none"][-1]:.1e} in the last layer; with BN they stay at
{min(activation_std["batch"]):.3f}–{max(activation_std["batch"]):.3f} in every layer, the spread of a
ReLU of a standard normal, $\sqrt{{1/2 - 1/(2\pi)}} \approx {relu_of_normal:.3f}$.
""")

# %% [markdown]
# **(c) and (a)** Three hidden layers of 128 (Kaiming init), the course's training loop, 15
# epochs, at three learning rates, seeds 0, 1 and 2 (each seed fixes the initial weights and
# the order of the mini-batches, the same for both networks):

# %%
seeds = (0, 1, 2)
histories = {}
for lr in (0.01, 0.1, 1.0):
    for norm in ("none", "batch"):
        for seed in seeds:
            train_loader, val_loader, _ = digits.loaders(batch_size=64, seed=seed)
            torch.manual_seed(seed)
            net = models.mlp(64, 10, hidden=(128, 128, 128), norm=norm)
            histories[(lr, norm, seed)] = train.fit(net, train_loader, val_loader, epochs=15, lr=lr, seed=seed,
                                                    progress=False)
print(f"{'lr':>5s} {'norm':6s}{'seed':>5s}{'loss ep. 3':>11s}{'loss ep. 15':>12s}{'train acc':>10s}{'val acc':>8s}")
for (lr, norm, seed), history in histories.items():
    if history.diverged:
        print(f"{lr:5.2f} {norm:6s}{seed:5d}  diverged in epoch {history.num_epochs}")
    else:
        print(f"{lr:5.2f} {norm:6s}{seed:5d}{history.train_loss[2]:11.4f}{history.train_loss[-1]:12.4f}"
              f"{history.train_acc[-1]:10.3f}{history.val_acc[-1]:8.3f}")

# %% tags=["remove-input"]
def per_seed(lr, norm, value):
    """value(history) for each seed, in the order of `seeds`."""
    return [value(histories[(lr, norm, seed)]) for seed in seeds]


def fails(history):
    """Diverged (a non-finite loss), or still at chance: validation accuracy below 20 % after 15 epochs."""
    return history.diverged or history.val_acc[-1] < 0.2


plain_fails = per_seed(1.0, "none", fails)
bn_at_1 = per_seed(1.0, "batch", lambda h: (not h.diverged) and h.val_acc[-1])
claim("at lr 1 the plain network fails in every seed (diverges or stays at chance) and the BN network "
      "trains in every seed (validation accuracy above 90 %)",
      all(plain_fails) and all(bn_at_1) and min(bn_at_1) > 0.9, plain_fails=plain_fails, bn_val_acc=bn_at_1)
early = stats.compare(per_seed(0.1, "batch", lambda h: h.train_loss[2]), per_seed(0.1, "none", lambda h: h.train_loss[2]),
                      higher_is_better=False, paired=True)
late = stats.compare(per_seed(0.1, "none", lambda h: h.train_loss[-1]), per_seed(0.1, "batch", lambda h: h.train_loss[-1]),
                     higher_is_better=False, paired=True)
claim("at lr 0.1 BN's training loss is lower at epoch 3 and the plain network's at epoch 15 (verdict rule, 3 seeds)",
      early.outcome == "a" and late.outcome == "a", epoch_3=early, epoch_15=late)
slow_start = [bool(np.all(np.array(histories[(0.01, "none", s)].train_loss) < np.array(histories[(0.01, "batch", s)].train_loss)))
              for s in seeds]
claim("at lr 0.01 the plain network's training loss is lower in every epoch, in every seed", all(slow_start),
      per_seed=slow_start)
final_train_acc = min(h.train_acc[-1] for (lr, _, _), h in histories.items() if lr < 1)
val_verdict = {lr: stats.compare([100 * a for a in per_seed(lr, "batch", lambda h: h.val_acc[-1])],
                                 [100 * a for a in per_seed(lr, "none", lambda h: h.val_acc[-1])],
                                 min_effect=stats.ACCURACY_DELTA, paired=True) for lr in (0.01, 0.1)}
claim("at lr 0.01 and 0.1 both networks reach at least 99 % training accuracy; on validation accuracy "
      "BN is ahead at 0.01 and the two are a draw at 0.1 (verdict rule, 3 seeds)",
      final_train_acc >= 0.99 and val_verdict[0.01].outcome == "a" and val_verdict[0.1].outcome == "draw",
      train_acc=final_train_acc, val_verdict=val_verdict)
val_images = len(digits.y_val)
prose(rf"""
* **(c)**: at $\eta = 1$ the plain network fails in all three seeds (it diverges, or it
  stays at chance) and the BN network trains (validation
  accuracy {100 * min(bn_at_1):.1f}–{100 * max(bn_at_1):.1f} %); at $\eta = 0.1$ BN is ahead early
  (training loss at epoch 3: {early.mean_a:.3f} against {early.mean_b:.3f}, mean of three seeds) but the
  plain network is lower by epoch 15 ({late.mean_a:.4f} against {late.mean_b:.4f}); at $\eta = 0.01$ —
  the thesis' initial learning rate — the *plain* network's training loss is lower in every
  epoch of every seed. "BN makes training faster" is true in the sense "BN lets you use a
  larger learning rate", not at every learning rate.
* **(a)**: at $\eta = 0.01$ and $0.1$ both networks reach a training accuracy of at least
  {100 * final_train_acc:.1f} % (over the last epoch's batches). On the {val_images} validation images,
  BN is ahead at $\eta = 0.01$ ({val_verdict[0.01].mean_a:.1f} % against {val_verdict[0.01].mean_b:.1f} %,
  a difference of {val_verdict[0.01].diff:.1f} points against a margin of {val_verdict[0.01].margin:.1f}) and
  the two are a draw at $\eta = 0.1$ ({val_verdict[0.1].mean_a:.1f} % against {val_verdict[0.1].mean_b:.1f} %).
  Both fit the training set almost perfectly, so on this data BN's network generalizes at
  least as well as the plain one: it does not cause overfitting, and at the small learning
  rate it even helps a little. Lecture 08 measures this on the thesis' set-up.
""")

# %% [markdown]
# ## Exercise 2 — when $\epsilon$ is not negligible
#
# The output of BN with $\gamma = 1$ has standard deviation
# $\sqrt{\sigma^2/(\sigma^2+\epsilon)}$. For $\sigma = 10^{-3}$: $\sigma^2 = 10^{-6}$ and
# $\sqrt{10^{-6}/(1.1\cdot 10^{-5})} = \sqrt{1/11} \approx 0.302$.

# %%
print(f"{'input std':>10s}{'predicted':>11s}{'measured':>10s}")
gaps = []
for spread in (1e-4, 1e-3, 3e-3, 1e-2, 1e-1, 1.0):
    z = rng.normal(0.0, 1.0, size=(256, 1))
    z = (z - z.mean()) / z.std() * spread          # exactly this batch standard deviation
    out, _ = nf.batchnorm_forward(z, np.ones(1), np.zeros(1), eps=1e-5)
    predicted = np.sqrt(spread**2 / (spread**2 + 1e-5))
    print(f"{spread:10.0e}{predicted:11.3f}{out.std():10.3f}")
    gaps.append(abs(out.std() - predicted))
claim("the formula sqrt(sigma^2/(sigma^2 + eps)) predicts BN's output std at every spread", max(gaps) < 1e-9,
      largest_gap=max(gaps))

# %% [markdown]
# BN stops standardizing when $\sigma^2$ is not large compared with $\epsilon$, i.e. for
# spreads below about $\sqrt{\epsilon} \approx 3\cdot10^{-3}$ (at $\sigma = \sqrt\epsilon$ the output
# std is $1/\sqrt2$). Tiny units are shrunk rather than blown up — which is the purpose of
# $\epsilon$ (no division by ~0), but it means "BN output has unit variance" is only true
# for units whose spread is well above $\sqrt\epsilon$.

# %% [markdown]
# ## Exercise 3 — conv BN from the 2-D one

# %%
def batchnorm_2d(x, gamma, beta, eps=1e-5):
    """BN for (N, C, H, W): channels last, flatten to (N*H*W, C), 2-D BN, and back."""
    n, c, h, w = x.shape
    columns = x.transpose(0, 2, 3, 1).reshape(-1, c)        # one row per (sample, position)
    out, _ = nf.batchnorm_forward(columns, gamma, beta, eps)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2)


x = rng.normal(1.0, 2.0, size=(6, 4, 5, 7))
gamma, beta = rng.normal(size=4), rng.normal(size=4)
ours = batchnorm_2d(x, gamma, beta)
library, _ = nf.batchnorm_forward(x, gamma, beta)
torch_bn = nn.BatchNorm2d(4, dtype=torch.float64)
with torch.no_grad():
    torch_bn.weight.copy_(torch.from_numpy(gamma))
    torch_bn.bias.copy_(torch.from_numpy(beta))
    reference = torch_bn(torch.from_numpy(x)).numpy()
print("max |reshape version - library| =", np.abs(ours - library).max())
print("max |reshape version - torch|   =", np.abs(ours - reference).max())
claim("the reshape version matches the library and torch up to float64 rounding",
      np.abs(ours - library).max() < 1e-12 and np.abs(ours - reference).max() < 1e-12)

# %% [markdown]
# The reshape makes the point of the lecture's figure explicit: for BN, a conv layer's
# feature map is just a batch of $N \cdot H \cdot W$ vectors with $C$ features each.

# %% [markdown]
# ## Exercise 4 — invariance
#
# $\mathrm{mean}(a_j z_j + b_j) = a_j\mu_j + b_j$ and $\mathrm{var}(a_j z_j + b_j) = a_j^2\sigma_j^2$, so
#
# $$\frac{a_j z_j + b_j - (a_j\mu_j + b_j)}{\sqrt{a_j^2\sigma_j^2 + \epsilon}}
#   = \frac{a_j}{|a_j|}\cdot\frac{z_j - \mu_j}{\sqrt{\sigma_j^2 + \epsilon/a_j^2}}
#   \approx \operatorname{sign}(a_j)\,\frac{z_j-\mu_j}{\sqrt{\sigma_j^2+\epsilon}} .$$
#
# Equal up to how $\epsilon$ enters; exactly equal for $\epsilon = 0$.

# %%
z = rng.normal(3.0, 2.0, size=(32, 4))
a, b = np.array([0.01, 1.0, 7.0, -2.0]), rng.normal(0.0, 50.0, size=4)
ones, zeros = np.ones(4), np.zeros(4)
reference, _ = nf.batchnorm_forward(z, ones, zeros)
transformed, _ = nf.batchnorm_forward(a * z + b, ones, zeros)
print("max |BN(az+b) - BN(z)| per unit:", np.abs(transformed - reference).max(axis=0).round(4))
print("unit 3 (a = -2): max |BN(az+b) + BN(z)| =", np.abs(transformed[:, 3] + reference[:, 3]).max().round(6))
flat, _ = nf.batchnorm_forward(0.0 * z + b, ones, np.full(4, 0.5))
print("a = 0: output", flat[0].round(3), "(= beta for every sample)")

# %% tags=["remove-input"]
difference = np.abs(transformed - reference).max(axis=0)
unit_var = z.var(axis=0)
claim("a > 0: the outputs agree to 1e-5 for a = 1 and 7, differ by a few hundredths for a = 0.01; "
      "a < 0 flips the sign; a = 0 gives beta",
      bool(difference[1:3].max() < 1e-5 and 0.01 < difference[0] < 0.1
           and np.abs(transformed[:, 3] + reference[:, 3]).max() < 1e-4 and np.allclose(flat, 0.5, atol=1e-9)),
      difference=difference.tolist())
prose(rf"""
* $a_j > 0$: same output. The unit with $a = 0.01$ differs by a few hundredths
  ({difference[0]:.3f}): its variance, $0.01^2 \cdot \sigma^2$ = {1e-4 * unit_var[0]:.1e} (here $\sigma^2$ =
  {unit_var[0]:.2f}), is no longer huge compared with $\epsilon$, so $\epsilon/a^2$ is
  {100 * 1e-5 / 1e-4 / unit_var[0]:.1f} % of $\sigma^2$ — exercise 2 again.
* $a_j < 0$: the unit's output flips sign, $\mathrm{{BN}}(-z) = -\mathrm{{BN}}(z)$ (up to the same
  $\epsilon/a^2$ effect, {np.abs(transformed[:, 3] + reference[:, 3]).max():.0e} here).
* $a_j = 0$: the unit is constant, normalizes to 0, and the output is $\beta_j$ for every
  sample — all information is gone.
""")

# %% [markdown]
# **Bias.** $z = Wx + b$ is the case $a = 1$: BN removes $b$ exactly — the lecture's redundant
# bias. **Weight scale.** Scaling the weights, $W \to \alpha W$ with $\alpha > 0$, is the case
# $a_j = \alpha$ for every unit: $\mathrm{BN}(\alpha W x) = \mathrm{BN}(Wx)$, so the output does not
# depend on the scale of the preceding weights — only on their direction. Lecture 07
# follows this to the gradient, which scales like $1/\alpha$ (Schilling's thesis talk).

# %% [markdown]
# ## Exercise 5 — parameters

# %%
counts = {}
for label, kwargs in (("no norm", dict(norm="none")),
                      ("BN before activation", dict(norm="batch", norm_position="before")),
                      ("BN after activation", dict(norm="batch", norm_position="after"))):
    net = models.mlp(64, 10, hidden=(128, 64), **kwargs)
    buffers = sum(b.numel() for b in net.buffers())
    counts[label] = models.count_parameters(net), buffers
    print(f"{label:22s} parameters {counts[label][0]:6d}   buffers {buffers}")

# %% tags=["remove-input"]
claim("the counts are the ones derived below",
      counts == {"no norm": (17_226, 0), "BN before activation": (17_418, 386), "BN after activation": (17_610, 386)},
      counts=counts)

# %% [markdown]
# * **No norm:** $64\cdot128 + 128 + 128\cdot64 + 64 + 64\cdot10 + 10 = 17{,}226$.
# * **BN before the activation:** the two hidden Linear layers lose their biases
#   ($-128 - 64$) and each BN adds $\gamma$ and $\beta$ ($+2\cdot128 + 2\cdot64 = +384$):
#   $17{,}226 - 192 + 384 = 17{,}418$. Net cost of BN: one extra vector per layer.
# * **BN after the activation:** the ReLU sits between bias and BN, so the bias is not
#   cancelled and stays: $17{,}226 + 384 = 17{,}610$.
# * **Running mean and variance are not parameters**: they are *buffers* — saved in the
#   `state_dict`, but not trained by gradient descent (they are averages updated in the
#   forward pass, lecture 04). Per BN layer: running mean and variance ($2 \times$ width)
#   plus the counter `num_batches_tracked`: $2\cdot128 + 1 + 2\cdot64 + 1 = 386$ for either
#   placement.
