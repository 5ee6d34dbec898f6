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
# # Lecture 02 — Batch normalization: the forward pass
#
# Lecture 01: standardizing the inputs makes gradient descent's job easy, but only the
# first layer sees standardized inputs. Batch normalization (BN) standardizes the net
# inputs of *hidden* layers, using the statistics of the current mini-batch.
#
# 1. Per-feature mini-batch statistics, $\epsilon$
# 2. Scale and shift: $\gamma$ and $\beta$ (BN can learn the identity)
# 3. The bias before BN is redundant
# 4. BN for convolutional layers: per channel over $N, H, W$
# 5. Where BN sits in a network; what BN is claimed to fix

# %% [markdown] slideshow={"slide_type": "notes"}
# Sources: Raschka's lecture slides (steps 1 and 2, the bias remark, the PyTorch MLP),
# Silva's CNN slides (the BN paper's abstract; "normalize z_{i,k}"; the identity with
# γ = sqrt(σ²+ε), β = μ, and an erratum to it; the Keras examples), Schilling's thesis talk
# (the formula with μ_B, σ_B), the BN notes (and an erratum to them), and the UCLA
# discussion sheet (the paper's headline result; its BN formula, with an erratum; its
# multiple-choice question 6 is exercise 1). Everything is checked numerically against
# the library and against torch.nn, and every statement about a measurement by a `claim`.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Why BN: the result it was introduced with
#
# The BN paper's abstract (Ioffe & Szegedy, 2015, quoted in Silva's CNN slides):
# “Applied to a state-of-the-art image classification model, Batch Normalization achieves
# the same accuracy with 14 times fewer training steps, and beats the original model by a
# significant margin.”
#
# The UCLA discussion sheet: “The authors showed that batch normalization improved the top
# result of ImageNet (2014) by a significant margin using only 7% of the training steps.”
#
# One result seen two ways — $1/14 \approx 7\,\%$ of the steps — on ImageNet, with a
# variant of Inception (GoogLeNet, the 2014 winner). These are the paper's claims, not
# measured here; lecture 08 measures the digits analogue (epochs to a target validation
# accuracy, with and without BN).

# %% [markdown] slideshow={"slide_type": "notes"}
# The abstract goes on (Silva's CNN slides): “Using an ensemble of batch-normalized
# networks, we improve upon the best published result on ImageNet classification:
# reaching 4.9% top-5 validation error (and 4.8% test error), exceeding the accuracy of
# human raters.” Two things to point out to the students: this figure is for an
# *ensemble* of several BN networks, not one network, and "top-5" counts a prediction as
# right when the true class is among the five highest-scoring of ImageNet's 1000. It is
# the paper's claim, not measured in this course (digits has 10 classes).

# %% slideshow={"slide_type": "skip"}
import numpy as np
import torch

from normlab import data, models
from normlab import functional as nf
from normlab.notebook import claim, prose, show_source
from normlab.plots.inputs import plot_batchnorm_statistics

torch.set_num_threads(1)
rng = np.random.default_rng(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The setting: one hidden layer, one mini-batch
#
# A mini-batch of $n$ examples passes a linear layer: net inputs $z_j^{[i]}$ for example
# $i = 1..n$ and hidden unit $j$ — a matrix $Z$ of shape $(n, d)$. BN works on each
# **column** (unit) separately, with the statistics of this mini-batch.
#
# | | Raschka's slides | BN paper, Schilling, UCLA sheet | code (`normlab`) |
# |---|---|---|---|
# | batch size | $n$ | $m$, $\mathcal B$ | `N = x.shape[0]` |
# | batch mean, variance | $\mu_j,\ \sigma_j^2$ | $\mu_\mathcal{B},\ \sigma^2_\mathcal{B}$ | `mu`, `var` |
# | normalized input | $z'^{[i]}_j$ | $\hat x_i$ | `xhat` |
# | output | $a'^{[i]}_j$ | $y_i$ | `out` |

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Step 1: standardize each unit over the mini-batch
#
# $$\mu_j = \frac1n\sum_{i=1}^n z_j^{[i]},\qquad
#   \sigma_j^2 = \frac1n\sum_{i=1}^n \left(z_j^{[i]}-\mu_j\right)^2,\qquad
#   z'^{[i]}_j = \frac{z_j^{[i]}-\mu_j}{\sqrt{\sigma_j^2+\epsilon}}$$
#
# * $\sigma_j^2$ is the **biased** variance (divide by $n$, not $n-1$).
# * $\epsilon$ (e.g. $10^{-5}$) sits **inside** the square root, "for numerical stability"
#   (Raschka's slides).

# %%
z = rng.normal(loc=[5.0, -2.0, 0.0], scale=[10.0, 0.1, 1.0], size=(8, 3))  # n = 8, d = 3 units
eps = 1e-5
mu = z.mean(axis=0)                     # one mean per unit (column)
var = ((z - mu) ** 2).mean(axis=0)      # biased: divides by n
z_hat = (z - mu) / np.sqrt(var + eps)
print("mu          ", mu.round(3))
print("sigma       ", np.sqrt(var).round(3))
print("z_hat mean  ", z_hat.mean(axis=0).round(6))
print("z_hat std   ", z_hat.std(axis=0).round(6))
print("sigma / sqrt(sigma^2 + eps)", (np.sqrt(var) / np.sqrt(var + eps)).round(6))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
sigma = np.sqrt(var)
claim("the standardized units have mean 0 up to rounding",
      bool(np.abs(z_hat.mean(axis=0)).max() < 1e-12), means=z_hat.mean(axis=0).tolist())
claim("the standardized std is sigma/sqrt(sigma^2 + eps) (so the deviation from 1 is eps's), "
      "below 1 to six digits only for the widest unit",
      bool(np.allclose(z_hat.std(axis=0), sigma / np.sqrt(var + eps), rtol=1e-12, atol=0))
      and 1 - z_hat.std(axis=0)[0] < 5e-7 < 1 - z_hat.std(axis=0)[1:].max(),
      stds=z_hat.std(axis=0).tolist())
narrow = int(np.argmin(sigma))
prose(f"""
Three units on wildly different scales (the generator's `scale=[10.0, 0.1, 1.0]`; on this
batch σ = {sigma[0]:.1f}, {sigma[1]:.3f}, {sigma[2]:.2f}) come out with mean 0 (up to rounding,
at most {np.abs(z_hat.mean(axis=0)).max():.0e}) and a standard deviation just below 1. The
deviation is ε's, not a mix-up of sample and population variance (both the variance and
NumPy's `std` divide by n): the output's std is exactly σ/√(σ² + ε), the last line. It is 1
to six digits only for the widest unit; for unit {narrow}, σ² = {var[narrow]:.5f} is only
{var[narrow] / eps:.0f} ε, and its std comes out {z_hat.std(axis=0)[narrow]:.6f}. Exercise 2 asks when
ε stops being negligible. This is lecture 01's standardization, applied to a hidden layer,
with batch statistics.
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Biased or unbiased variance?
#
# NumPy's `var` divides by $n$; torch's `var` by default by $n-1$. BN normalizes with the
# biased one (we check against `torch.nn.BatchNorm1d` below); the $n-1$ version appears
# only in the running average used at test time (lecture 04).

# %%
n = len(z)
print("biased   (1/n)    :", z.var(axis=0).round(5))
print("unbiased (1/(n-1)):", torch.from_numpy(z).var(dim=0).numpy().round(5))
print("ratio n/(n-1) =", n / (n - 1))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Erratum (UCLA discussion sheet).** The sheet writes
# "$BN(\mathbf{x}) = \gamma \odot \frac{\mathbf{x} - \mu_{\mathcal{B}}}{\sigma_{\mathcal{B}}} + \beta$
# where $\mu_{\mathcal{B}}$ and $\sigma_{\mathcal{B}}$ are the sample mean and sample variance of
# the minibatch". Two corrections:
#
# * $\sigma_\mathcal{B}$ is the **standard deviation**, the square root of the variance.
#   Dividing by the variance would not standardize: $(x-\mu)/\sigma^2$ has standard
#   deviation $1/\sigma$, not 1. And the variance is the biased one (divide by $m$).
# * The $\epsilon$ is missing from the formula; the sheet adds it only in its next
#   paragraph ("we add a small constant $\epsilon > 0$ to the variance estimate"). Right:
#   $\gamma \odot (\mathbf x - \mu_\mathcal{B})/\sqrt{\sigma_\mathcal{B}^2 + \epsilon} + \beta$, step 1 and 2.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Why $\epsilon$: a unit that is constant on the batch
#
# A ReLU that is off for every example, or a batch of identical inputs, has
# $\sigma_j^2 = 0$: without $\epsilon$ the normalization is $0/0$.

# %%
constant = np.full((4, 1), 3.0)                      # one unit, the same value 4 times
with np.errstate(invalid="ignore"):                  # silence NumPy's 0/0 warning
    print("without eps:", ((constant - constant.mean(0)) / np.sqrt(constant.var(0))).ravel())
print("with eps:   ", ((constant - constant.mean(0)) / np.sqrt(constant.var(0) + eps)).ravel())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The library's implementation
#
# `normlab.functional.batchnorm_forward(x, gamma, beta, eps)` returns `(out, cache)`; the
# cache is what the backward pass (lecture 03) needs.

# %%
show_source(nf.batchnorm_forward, docstring=False)

# %% [markdown] slideshow={"slide_type": "subslide"}
# It checks its input and passes it to a helper shared with the other normalizations
# (lecture 05), which applies $\gamma, \beta$. The statistics are computed by
# `nf.normalize_over_axes` — the three formulas of step 1:

# %%
show_source(nf.normalize_over_axes)

# %%
out, cache = nf.batchnorm_forward(z, gamma=np.ones(3), beta=np.zeros(3), eps=eps)
print("max |library - by hand| =", np.abs(out - z_hat).max())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Step 2: scale and shift
#
# $$a'^{[i]}_j = \gamma_j\, z'^{[i]}_j + \beta_j$$
#
# $\gamma_j$ (scale) and $\beta_j$ (shift) are **learned** by gradient descent, one pair per
# unit. They are initialized to $\gamma = 1, \beta = 0$: BN starts as plain
# standardization and the network can move away from it.
#
# Why not keep mean 0 and variance 1? Forcing them "can limit the expressive power of the
# network" (the BN notes), e.g. a sigmoid would only ever see its nearly linear middle.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Erratum (BN study note).** The BN notes write the scale and shift as
# $X^{N}=\gamma \circ X+\beta$ — applied to the input $X$ instead of the normalized
# $\hat X = (X-\mu)/\sqrt{\sigma^{2}+\epsilon}$ they compute one line before. As written, the
# normalization would be thrown away: with $\gamma = 1, \beta = 0$ the layer would return
# $X$ itself. The correct formula is step 2 above:
#
# $$X^{N}=\gamma \circ \hat X+\beta .$$

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## BN can learn the identity
#
# Silva's CNN slides: if $\gamma = \sqrt{\sigma^2+\epsilon}$ and $\beta = \mu$, the layer
# returns its input. Check it:

# %%
gamma_identity, beta_identity = np.sqrt(var + eps), mu
out, _ = nf.batchnorm_forward(z, gamma_identity, beta_identity, eps)
print("this batch:    max |out - z| =", np.abs(out - z).max())
other_batch = rng.normal(loc=[5.0, -2.0, 0.0], scale=[10.0, 0.1, 1.0], size=(8, 3))
out_other, _ = nf.batchnorm_forward(other_batch, gamma_identity, beta_identity, eps)
identity_error = np.abs(out_other - other_batch).max(axis=0)
print("another batch: max |out - z| per unit =", identity_error.round(3))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
mu_other, var_other = other_batch.mean(axis=0), other_batch.var(axis=0)
predicted = (mu - mu_other) + (np.sqrt(var + eps) / np.sqrt(var_other + eps) - 1) * (other_batch - mu_other)
claim("the identity holds for the copied batch up to float64 rounding",
      bool(np.abs(out - z).max() < 1e-12), error=np.abs(out - z).max())
claim("on another batch, out - z is exactly the change of batch mean and spread",
      bool(np.abs((out_other - other_batch) - predicted).max() < 1e-12))
claim("the largest error is on unit 0, the unit with the largest scale",
      int(np.argmax(identity_error)) == int(np.argmax(sigma)), errors=identity_error.tolist())
relative = identity_error / sigma
prose(f"""
The identity holds for the batch whose statistics we copied, up to float64 rounding
({np.abs(out - z).max():.0e}), and only approximately for another batch from the same
distribution: γ and β are fixed numbers, while μ and σ change from batch to batch. On the
other batch the layer computes γ(z − μ₂)/√(σ₂² + ε) + β with γ = √(σ₁² + ε), β = μ₁ copied from the
first, so

out − z = (μ₁ − μ₂) + (√(σ₁² + ε)/√(σ₂² + ε) − 1)(z − μ₂)

exactly (checked to rounding): the error is the batch-to-batch change of the mean and the
spread. The largest error, {identity_error.max():.1f}, is unit 0's only because unit 0 has the
largest scale: with n = 8 its batch mean moved from {mu[0]:.2f} to {mu_other[0]:.2f} and its spread
from {sigma[0]:.1f} to {np.sqrt(var_other[0]):.1f}. In units of each unit's own spread the errors are
{relative[0]:.1f}, {relative[1]:.1f} and {relative[2]:.1f}: large for every unit. So BN "can represent the
identity" in the sense that it can undo the *typical* normalization — with γ and β equal to
the population σ and μ. The batch-to-batch noise that remains is what gives BN its slight
regularizing effect (Silva's slides), and what makes it fragile with tiny batches
(lecture 05).
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Erratum (Silva's CNN slides).** The identity slide writes: "if $\gamma = \sqrt{\sigma^2 + \epsilon}$
# and $\beta = \mu$" then "$z_{l\_norm}^{(i)} = z_l^{(i)}$". But $z_{l,\text{norm}}$ is the
# standardized value $(z_l - \mu)/\sqrt{\sigma^2+\epsilon}$ of the line before — it does not
# depend on $\gamma, \beta$ and stays standardized. What equals the input is the layer's
# *output*, the slide's own $\tilde z_l^{(i)} = \gamma\, z_{l,\text{norm}}^{(i)} + \beta$:
#
# $$\tilde z_l^{(i)} = \sqrt{\sigma^2+\epsilon}\;\frac{z_l^{(i)}-\mu}{\sqrt{\sigma^2+\epsilon}} + \mu = z_l^{(i)} .$$

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The bias before BN is redundant
#
# Raschka's slides: "This parameter [$\beta$] makes the bias units redundant." A linear
# layer $z = Wx + b$ followed by BN: the batch mean of $z_j$ is $\mu_j + b_j$, so
#
# $$z_j - \text{mean}(z_j) = (Wx)_j + b_j - (\mu_j + b_j) = (Wx)_j - \mu_j \quad
#   \Rightarrow\quad \mathrm{BN}(Wx + b) = \mathrm{BN}(Wx).$$
#
# $\beta$ plays the bias's role; BN's $\gamma, \beta$ are vectors of the bias's size.

# %%
torch.manual_seed(0)
x = torch.randn(16, 4, dtype=torch.float64)
with_bias = torch.nn.Linear(4, 3, dtype=torch.float64)
torch.nn.init.uniform_(with_bias.bias, -100.0, 100.0)          # a large bias, to be sure
without_bias = torch.nn.Linear(4, 3, bias=False, dtype=torch.float64)
without_bias.weight.data.copy_(with_bias.weight.data)
bn = torch.nn.BatchNorm1d(3, dtype=torch.float64)
out_with, out_without = bn(with_bias(x)), bn(without_bias(x))
print("bias:", with_bias.bias.data.numpy().round(1))
print("max |BN(Wx + b) - BN(Wx)| =", (out_with - out_without).abs().max().item())

# %% [markdown] slideshow={"slide_type": "subslide"}
# The bias does not change the output, so its gradient is zero — training never moves it:

# %%
loss = (out_with * torch.randn_like(out_with)).sum()   # any loss downstream of BN
loss.backward()
print("d loss / d bias =", with_bias.bias.grad.numpy())

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
bias_difference = (out_with - out_without).abs().max().item()
bias_gradient = with_bias.bias.grad.abs().max().item()
bias_size = with_bias.bias.data.abs().max().item()
claim("with and without the bias BN's output agrees, and the bias gradient is zero, up to float64 rounding",
      bias_difference < 1e-12 and bias_gradient < 1e-12, difference=bias_difference, gradient=bias_gradient)
prose(f"""
The output difference ({bias_difference:.0e}) and the gradient ({bias_gradient:.0e}) are zero up to
float64 rounding, for a bias as large as {bias_size:.0f}: rounding, not an exact zero, because
the bias is added and then subtracted again in the mean. That is why normlab.models builds
Linear(..., bias=False) in front of a BatchNorm, and why PyTorch model code usually does the
same: the bias would be a parameter that costs memory and does nothing. Note the random
upstream gradient: with an all-ones upstream gradient, the gradient through BN is zero for
every input, not only the bias (lecture 03).
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Same numbers as PyTorch
#
# In training mode `torch.nn.BatchNorm1d` (for $(N, D)$) and `BatchNorm2d` (for
# $(N, C, H, W)$) normalize with the batch statistics. With the same $\gamma, \beta$:

# %%
torch_differences = {}
for shape, TorchBN in (((32, 5), torch.nn.BatchNorm1d), ((8, 3, 5, 5), torch.nn.BatchNorm2d)):
    x = rng.normal(3.0, 2.0, size=shape)
    gamma, beta = rng.normal(size=shape[1]), rng.normal(size=shape[1])
    ours, _ = nf.batchnorm_forward(x, gamma, beta, eps=1e-5)
    torch_bn = TorchBN(shape[1], eps=1e-5, dtype=torch.float64)   # train mode by default
    with torch.no_grad():
        torch_bn.weight.copy_(torch.from_numpy(gamma))
        torch_bn.bias.copy_(torch.from_numpy(beta))
        theirs = torch_bn(torch.from_numpy(x)).numpy()
    torch_differences[TorchBN.__name__] = np.abs(ours - theirs).max()
    print(f"{TorchBN.__name__} on {shape}: max |ours - torch| = {torch_differences[TorchBN.__name__]:.1e}")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("our implementation matches torch's BatchNorm1d/2d in training mode up to float64 rounding "
      "(so torch normalizes with the biased variance too)",
      max(torch_differences.values()) < 1e-12, differences=torch_differences)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## BN for convolutional layers: per channel
#
# A conv layer applies the same filter at every position, so all $H \times W$ positions of a
# channel are *the same feature*. BN therefore takes one $\mu, \sigma^2$ (and one
# $\gamma, \beta$) **per channel**, over $N \cdot H \cdot W$ values:

# %%
fig = plot_batchnorm_statistics(batch=4, features=5, channels=3, height=3, width=3)

# %% [markdown] slideshow={"slide_type": "subslide"}
# After BN on an $(N, C, H, W)$ batch, every channel has mean 0 and variance 1 over
# $(N, H, W)$; a single position need not:

# %%
images = rng.normal(2.0, 3.0, size=(8, 3, 5, 5)) + np.linspace(0, 4, 5)  # brighter to the right
out, _ = nf.batchnorm_forward(images, np.ones(3), np.zeros(3))
print("per channel, over (N, H, W): mean", out.mean(axis=(0, 2, 3)).round(6),
      " var", out.var(axis=(0, 2, 3)).round(4))
print("channel 0, per column (over N, H):", out[:, 0].mean(axis=(0, 1)).round(2))

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("every channel has mean 0 and variance 1 (up to eps) over (N, H, W), while single columns do not",
      bool(np.abs(out.mean(axis=(0, 2, 3))).max() < 1e-12 and np.abs(out.var(axis=(0, 2, 3)) - 1).max() < 1e-4
           and np.abs(out[:, 0].mean(axis=(0, 1))).max() > 0.1),
      column_means=out[:, 0].mean(axis=(0, 1)).tolist())

# %% [markdown] slideshow={"slide_type": "notes"}
# The alternative — flatten the image and treat every (channel, position) as its own
# feature, as BatchNorm1d on (N, C·H·W) would — gives C·H·W statistics from only N values
# each, C·H·W parameters γ and β instead of C, and treats the same feature differently at
# different positions, which breaks the convolution's translation equivariance. The BN
# paper chose per channel for these reasons. Exercise 3 builds the per-channel version from
# the 2-D one by a reshape.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Where BN sits in a network
#
# Raschka's lecture slides, PyTorch — "batchnorm is in the classic sense placed before the
# activation" (hidden sizes made arguments):

# %%
class MultilayerPerceptron(torch.nn.Module):
    def __init__(self, num_features, num_classes, num_hidden_1=128, num_hidden_2=64):
        super().__init__()
        self.linear_1 = torch.nn.Linear(num_features, num_hidden_1)
        self.linear_1_bn = torch.nn.BatchNorm1d(num_hidden_1)
        self.linear_2 = torch.nn.Linear(num_hidden_1, num_hidden_2)
        self.linear_2_bn = torch.nn.BatchNorm1d(num_hidden_2)
        self.linear_out = torch.nn.Linear(num_hidden_2, num_classes)

    def forward(self, x):
        out = torch.relu(self.linear_1_bn(self.linear_1(x)))   # Linear -> BN -> ReLU
        out = torch.relu(self.linear_2_bn(self.linear_2(out)))
        logits = self.linear_out(out)
        return logits, torch.softmax(logits, dim=1)

# %% [markdown] slideshow={"slide_type": "subslide"}
# On a batch of 128 digits (standardized pixels), at initialization: the net inputs of
# hidden layer 2 before and after BN, per unit.

# %%
digits = data.load_digits(flat=True)
torch.manual_seed(0)
seed_mlp = MultilayerPerceptron(64, 10)
batch = digits.x_train[:128]
with torch.no_grad():
    z2 = seed_mlp.linear_2(torch.relu(seed_mlp.linear_1_bn(seed_mlp.linear_1(batch))))
    z2_bn = seed_mlp.linear_2_bn(z2)
for name, values in (("before BN", z2), ("after BN ", z2_bn)):
    means, stds = values.mean(0), values.std(0, correction=0)
    print(f"{name}: unit means in [{means.min():+.2f}, {means.max():+.2f}], "
          f"unit stds in [{stds.min():.2f}, {stds.max():.2f}]")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
after_means, after_stds = z2_bn.mean(0), z2_bn.std(0, correction=0)
claim("after BN every unit of hidden layer 2 has mean 0 and std 1 on the batch (float32, up to eps)",
      after_means.abs().max().item() < 1e-5 and (after_stds - 1).abs().max().item() < 1e-3,
      largest_mean=after_means.abs().max().item(), largest_std_gap=(after_stds - 1).abs().max().item())

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
a2 = torch.relu(z2_bn)  # what hidden layer 2 hands to the output layer
a2_means, a2_stds = a2.mean(0), a2.std(0, correction=0)
relu_mean, relu_std = 1 / np.sqrt(2 * np.pi), np.sqrt(0.5 - 1 / (2 * np.pi))  # relu(z) for z ~ N(0, 1)
claim("after BN and the ReLU the next layer's inputs are not standardized: every unit's mean is between "
      "0.3 and 0.5, and the stds average within 0.05 of relu(N(0, 1))'s",
      0.3 < a2_means.min().item() and a2_means.max().item() < 0.5 and abs(a2_stds.mean().item() - relu_std) < 0.05,
      means=(a2_means.min().item(), a2_means.max().item()), mean_std=a2_stds.mean().item())
prose(rf"""
Silva's CNN slides: "In practice, we actually normalize $z_{{i,k}}$ which has the same effect as
normalizing X." What BN standardizes is the net input $z$ — before the activation, the BN
paper's choice — not the activation the next layer receives. On this batch that input,
relu(BN($z$)), is not standardized: its unit means are {a2_means.min():.2f} to {a2_means.max():.2f},
all positive, its stds {a2_stds.min():.2f} to {a2_stds.max():.2f} (for $z \sim \mathcal N(0, 1)$,
relu($z$) has mean $1/\sqrt{{2\pi}} \approx$ {relu_mean:.2f} and std {relu_std:.2f}). So normalizing $z$ is
the same *operation* as normalizing the inputs X, one layer down; that it has the same
*effect* on training as lecture 01's standardized inputs is the slides' claim, not shown
here — what BN does for training is lecture 08's question.
""")

# %% [markdown] slideshow={"slide_type": "subslide"}
# `normlab.models.mlp` builds the same stack, without the redundant biases:

# %%
print(models.mlp(64, 10, hidden=(128, 64), norm="batch"))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Before or after the activation?
#
# Silva's CNN slides show both in Keras: `Dense → BatchNormalization → Activation`
# ("[Original Paper]") and `Dense(activation=relu) → BatchNormalization`, and a
# `BatchNormalization` as the very first layer, standardizing the raw inputs. Raschka's
# slides quote a CaffeNet benchmark where *after* ReLU scored higher: accuracy "0.499"
# after against "0.474" before ("As in paper").
# `normlab.models.mlp(..., norm_position="after")` builds the second kind; lecture 05
# measures both.

# %%
print(models.mlp(64, 10, hidden=(128,), norm="batch", norm_position="after"))

# %% [markdown] slideshow={"slide_type": "notes"}
# Note the bias: after the activation, the Linear keeps its bias — the ReLU sits between
# the bias and the BN's mean subtraction, so the bias is no longer cancelled. Exercise 5
# asks for the parameter count.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What is BN claimed to fix?
#
# | claim | seed | where we measure it |
# |---|---|---|
# | keeps net inputs standardized (mean 0, std 1 per unit, up to $\epsilon$) | all | this lecture ✓ |
# | "helps with exploding/vanishing gradient problems" | Raschka's slides | lecture 07 |
# | faster, more stable training; larger learning rates | BN paper, Raschka, Schilling, BN notes, UCLA | lecture 08 |
# | "slight regularization effect" | Silva's slides | lecture 06 (generalization gap, batch 64) |
# | "regularization effect gets weaker as batch size gets larger" | Silva's slides | lecture 06 (measured: not reproduced on digits) |
# | reduces internal covariate shift | BN paper via the seeds | disputed — lectures 01, 08 |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary

# %% tags=["remove-input"]
prose(rf"""
* BN standardizes each unit (column) of a hidden layer's net inputs over the mini-batch:
  $\mu_j$, biased $\sigma_j^2$, and $\epsilon$ inside the square root against
  $\sigma_j^2 = 0$ (which also leaves the output's std slightly below 1).
* It then scales and shifts with learned $\gamma_j, \beta_j$ (initially 1 and 0), applied to
  the *normalized* input. With $\gamma = \sqrt{{\sigma^2+\epsilon}}, \beta = \mu$ it returns its
  input — up to rounding for that batch, approximately for others.
* A bias right before BN cancels (measured in float64: output difference
  {bias_difference:.0e}, bias gradient {bias_gradient:.0e}, i.e. rounding): drop it.
* Conv layers: one $\mu, \sigma^2, \gamma, \beta$ per channel, over $N \cdot H \cdot W$ values.
* Our NumPy implementation matches `torch.nn.BatchNorm1d/2d` in training mode to
  {max(torch_differences.values()):.0e}.
* Classic placement: Linear/Conv → BN → activation (Raschka); after the activation is
  also used (Silva's Keras example) — lecture 05.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **The UCLA discussion sheet, question 6.** Which of the following neural network
#    training challenges can be solved using batch normalization? (a) Overfitting
#    (b) Restrict activations to become too high or low (c) Training is too slow (d) All of
#    the above. Answer, then discuss each option: which does BN do *by construction*, which
#    is an empirical effect, and how would you measure it?
# 2. **When $\epsilon$ is not negligible.** A unit's net inputs have standard deviation
#    $10^{-3}$ on a batch. Predict the standard deviation of BN's output (with $\gamma = 1$,
#    $\epsilon = 10^{-5}$), then check with `nf.batchnorm_forward`. For which spreads does BN
#    stop standardizing?

# %% [markdown] slideshow={"slide_type": "subslide"}
# 3. **Conv BN from the 2-D one.** Write `batchnorm_2d(x, gamma, beta)` for $(N, C, H, W)$
#    input that moves the channel axis last, reshapes to $(N H W, C)$, calls
#    `nf.batchnorm_forward` on that 2-D array and reshapes back. Check it against
#    `nf.batchnorm_forward` on the 4-D input and against `torch.nn.BatchNorm2d`.
# 4. **Invariance.** Show numerically that $\mathrm{BN}(a \odot z + b) = \mathrm{BN}(z)$ for any
#    per-unit $a > 0$ and $b$. What happens for a negative $a_j$? How does this explain the
#    redundant bias, and why does it make the *scale* of the preceding weights irrelevant
#    to the output (lecture 07)?
# 5. **Parameters.** Count the parameters of `models.mlp(64, 10, hidden=(128, 64), norm=...)`
#    for `norm="none"`, `"batch"` with `norm_position="before"` and with `"after"`, and
#    explain every difference. Are BN's running mean and variance parameters?
