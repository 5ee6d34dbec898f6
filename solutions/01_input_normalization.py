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
# # Lecture 01 — worked solutions
#
# Solutions to the exercises of `course/01_input_normalization.py`. Every number is
# computed here (fixed seeds, same data splits as the lecture).

# %%
import numpy as np
import sklearn.datasets
import torch
from torch import nn

from normlab import data, models
from normlab.notebook import claim, prose
from normlab.plots.inputs import QuadraticLoss, drift_summary, learning_rate_sweep
from normlab.train import record_layer_inputs

torch.set_num_threads(1)
FEATURES = sklearn.datasets.load_wine().feature_names
wine = data.load_wine(standardize=False)
x_raw = wine.x_train.double().numpy()
alcohol = x_raw[:, FEATURES.index("alcohol")] - x_raw[:, FEATURES.index("alcohol")].mean()
learning_rates = np.geomspace(1e-8, 10, 81)


def pair(name):
    """The raw training columns (name, hue)."""
    return x_raw[:, [FEATURES.index(name), FEATURES.index("hue")]]


# %% [markdown]
# ## Exercise 1 — curvature by hand
#
# For centered features, $H = \frac1n\sum_i x^{[i]}x^{[i]\top}$ is the covariance matrix.
# Uncorrelated with spreads $s_1 = 14$, $s_2 = 0.23$:
#
# $$H = \begin{pmatrix} s_1^2 & 0 \\ 0 & s_2^2 \end{pmatrix}
#     = \begin{pmatrix} 196 & 0 \\ 0 & 0.0529 \end{pmatrix},\qquad
#   \kappa = \frac{196}{0.0529} \approx 3705 .$$
#
# * Largest stable learning rate: $\eta < 2/\lambda_{\max} = 2/196 \approx 0.0102$.
# * At $\eta = 1/\lambda_{\max}$ the steep direction is solved in one step; the flat one
#   shrinks by $1 - \lambda_{\min}/\lambda_{\max} = 1 - 1/\kappa$ per step. To shrink it by
#   $10^4$: $k = \ln(10^4) / (-\ln(1 - 1/\kappa)) \approx \kappa \ln(10^4) \approx 34{,}000$ steps.
#
# Check by running gradient descent on exactly this $H$, and compare with the real
# (correlated, centered) magnesium and hue columns:

# %%
def steps_to_shrink_flat_direction(hessian, factor=1e4, max_steps=100_000):
    """GD at lr = 1/lambda_max on L = w'Hw/2 from w = (1, 1); steps until the error along
    the flattest eigenvector is below 1/factor of its start."""
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    w, lr = np.ones(2), 1.0 / eigenvalues[-1]
    flat = eigenvectors[:, 0]
    start = abs(w @ flat)
    for step in range(1, max_steps + 1):
        w = w - lr * hessian @ w
        if abs(w @ flat) < start / factor:
            return step
    return -1


by_hand = np.diag([14.0**2, 0.23**2])
kappa_by_hand = by_hand[0, 0] / by_hand[1, 1]
formula_steps, by_hand_steps = kappa_by_hand * np.log(1e4), steps_to_shrink_flat_direction(by_hand)
print(f"by hand: kappa {kappa_by_hand:.0f}, formula {formula_steps:,.0f} steps, measured {by_hand_steps:,}")
centered = pair("magnesium") - pair("magnesium").mean(0)
real = centered.T @ centered / len(centered)
kappa_real = np.linalg.eigvalsh(real)[-1] / np.linalg.eigvalsh(real)[0]
real_steps = steps_to_shrink_flat_direction(real)
print(f"real centered magnesium & hue: kappa {kappa_real:,.0f}, measured {real_steps:,} steps")

# %%
raw_loss = QuadraticLoss.from_data(pair("magnesium"), alcohol)
lecture_sweeps = {name: learning_rate_sweep(QuadraticLoss.from_data(x, alcohol), np.zeros(2), learning_rates)
                  for name, x in (("raw", pair("magnesium")), ("centered", centered))}
lecture_steps = {name: sweep.best_steps for name, sweep in lecture_sweeps.items()}
best_rate = lecture_sweeps["centered"].best_lr * np.linalg.eigvalsh(real)[-1]  # in units of 1/lambda_max
spreads, rho = centered.std(0), np.corrcoef(centered.T)[0, 1]
claim("the formula kappa ln(10^4) and the simulation agree (within 0.1 %)",
      abs(formula_steps / by_hand_steps - 1) < 1e-3, formula=formula_steps, measured=by_hand_steps)
claim("the real centered pair has a slightly larger kappa than the uncorrelated one by hand",
      kappa_by_hand < kappa_real < 1.1 * kappa_by_hand, by_hand=kappa_by_hand, real=kappa_real)
claim("by the lecture's criterion the centered pair converges within the 10,000-step budget, the raw pair does not",
      0 < lecture_steps["centered"] < 10_000 and lecture_steps["raw"] == -1, steps=lecture_steps)
prose(f"""
The formula and the simulation agree ({formula_steps:,.0f} and {by_hand_steps:,} steps). The real
centered pair has a slightly larger $\\kappa$ ({kappa_real:,.0f}): the training split's spreads are
{spreads[0]:.1f} and {spreads[1]:.2f}, and the two are weakly correlated ($\\rho$ = {rho:.2f}). The
lecture's table showed the *raw* pair, $\\kappa$ ≈ {raw_loss.condition_number:,.0f}: the uncentered
means make it {raw_loss.condition_number / kappa_real:.0f} times worse still (exercise 2).

The step counts depend on the criterion. This exercise's — the error along the flat
direction shrunk by $10^4$ at $\\eta = 1/\\lambda_{{\\max}}$ — takes {real_steps:,} steps for the centered
pair. The lecture's table counted until the loss gap fell below $10^{{-4}}$ of its start, at the
best rate of the grid: the gap is quadratic in the error (shrinking it by $10^4$ shrinks the
error by only $10^2$), and the best rate is larger, {best_rate:.2f}/$\\lambda_{{\\max}}$, so that takes
far fewer — {lecture_steps['centered']:,} steps for the
centered pair (exercise 2's table), within the lecture's budget of 10,000, while the raw pair
does not converge within it.
""")

# %% [markdown]
# ## Exercise 2 — scaling without centering
#
# Four versions of two pairs: raw, scaled only ($x/\sigma$), centered only ($x-\mu$),
# standardized. The last column is each feature's mean in units of its spread, $\mu/\sigma$.

# %%
print(f"{'':32s}{'kappa':>10s}{'steps':>9s}   mean/std of the two features")
table = {}  # (feature, version) -> (kappa, steps, loss)
for name in ("color_intensity", "magnesium"):
    x = pair(name)
    versions = {"raw": x, "scaled only": x / x.std(0), "centered only": x - x.mean(0),
                "standardized": (x - x.mean(0)) / x.std(0)}
    for version, values in versions.items():
        loss = QuadraticLoss.from_data(values, alcohol)
        steps = learning_rate_sweep(loss, np.zeros(2), learning_rates).best_steps
        table[(name, version)] = loss.condition_number, steps, loss
        print(f"{name[:9] + ' & hue, ' + version:32s}{loss.condition_number:10,.1f}"
              f"{(str(steps) if steps > 0 else '>10000'):>9s}   {(values.mean(0) / values.std(0)).round(2)}")

# %%
kappa = {key: value[0] for key, value in table.items()}
steps = {key: value[1] for key, value in table.items()}
mean_in_spreads = {name: pair(name).mean(0) / pair(name).std(0) for name in ("color_intensity", "magnesium")}
curvatures = {version: np.linalg.eigvalsh(table[("color_intensity", version)][2].hessian)
              for version in ("raw", "centered only")}
lift_min, lift_max = (curvatures["raw"][i] / curvatures["centered only"][i] for i in (0, 1))
claim("scaling alone leaves kappa in the tens; centering alone leaves magnesium & hue in the thousands "
      "and makes color intensity & hue worse; only both give a handful of steps",
      all(10 < kappa[(n, "scaled only")] < 100 for n in mean_in_spreads)
      and 1_000 < kappa[("magnesium", "centered only")] < 10_000 and 1_000 < steps[("magnesium", "centered only")] < 10_000
      and kappa[("color_intensity", "centered only")] > kappa[("color_intensity", "raw")]
      and all(0 < steps[(n, "standardized")] < 10 for n in mean_in_spreads),
      kappa=kappa, steps=steps)
claim("for color intensity & hue the mean term lifts the smallest curvature by a larger factor than the largest",
      lift_min > lift_max, lift_min=lift_min, lift_max=lift_max)
all_means = np.concatenate(list(mean_in_spreads.values()))
prose(rf"""
**When centering matters.** Without centering, $H = \Sigma + m m^\top$ (covariance plus
the outer product of the mean vector $m$). If the means are large compared with the
spreads, $mm^\top$ dominates: one huge eigenvalue $\approx \lVert m\rVert^2$ along the
direction of $m$ (moving both weights together shifts every prediction by about the
same amount), and the rest of the curvature comes from the small spreads. So:

* Scaling alone fixes the *scale* mismatch but leaves means of {all_means.min():.0f}–{all_means.max():.0f}
  spreads: $\kappa$ still {kappa[("color_intensity", "scaled only")]:.0f} (color intensity) and
  {kappa[("magnesium", "scaled only")]:.0f} (magnesium), {steps[("color_intensity", "scaled only")]} and
  {steps[("magnesium", "scaled only")]} steps.
* Centering alone fixes the mean problem but not the scales: for magnesium & hue it
  still leaves $\kappa$ ≈ {kappa[("magnesium", "centered only")]:,.0f} ({steps[("magnesium", "centered only")]:,}
  steps); for color intensity & hue centering alone even makes $\kappa$ worse
  ({kappa[("color_intensity", "raw")]:.0f} → {kappa[("color_intensity", "centered only")]:.0f}): there $m$ also has a
  component along the covariance's flat direction, so $mm^\top$ lifts the smallest curvature
  by a factor {lift_min:.1f} and the largest by only {lift_max:.1f}.
* Only both together give $\kappa$ of {kappa[("color_intensity", "standardized")]:.1f} and
  {kappa[("magnesium", "standardized")]:.1f} and a handful of steps ({steps[("color_intensity", "standardized")]} and
  {steps[("magnesium", "standardized")]}).

Scaling is the bigger lever when the spreads differ a lot; centering matters whenever a
feature's mean is large compared with its spread (magnesium: {mean_in_spreads["magnesium"][0]:.0f} spreads). In a
network with a bias, a constant input offset is exactly this "mean direction" problem.
""")

# %% [markdown]
# ## Exercise 3 — leakage

# %%
everything = torch.cat([wine.x_train, wine.x_val, wine.x_test])
from_train = data.Standardizer().fit(wine.x_train)
from_all = data.Standardizer().fit(everything)
shift = ((from_all.mean - from_train.mean) / from_train.std).abs()
print("fitted means moved by (in train stds): max", round(shift.max().item(), 3),
      " mean", round(shift.mean().item(), 3))
print("test-set means, train-fitted:", from_train.transform(wine.x_test).mean(0)[:4].numpy().round(3))
print("test-set means, all-fitted:  ", from_all.transform(wine.x_test).mean(0)[:4].numpy().round(3))

# %% tags=["remove-input"]
claim("the fitted means move by a few hundredths of a training standard deviation",
      0.01 <= shift.mean().item() and shift.max().item() < 0.1, largest=shift.max().item(), mean=shift.mean().item())
prose(f"""
The means move by a few hundredths of a standard deviation (on average {shift.mean().item():.2f}, at
most {shift.max().item():.2f}) — small; we did not measure what it does to test accuracy, because it
is wrong whatever it does:
""")

# %% [markdown]
# * **Why.** μ and σ are learned parameters of the pipeline. Computing them with the test
#   rows lets the test set influence the model, so the test score no longer measures
#   performance on *unseen* data. The effect grows when the test set is large relative to
#   the training set or drawn from a shifted distribution, and it compounds with other
#   fitted preprocessing (imputation, PCA, feature selection).
# * **A single new wine.** Standardize it with the *stored* training μ and σ. Its own
#   statistics are useless: the mean of one sample is the sample, so $(x - \mu)/\sigma$ would
#   be $0/0$ (the lecture showed `Standardizer` turning it into all zeros). The same issue
#   returns for batch norm at test time (lecture 04: running statistics).

# %% [markdown]
# ## Exercise 4 — drift with batch norm
#
# The lecture's digits run (same seed, learning rate, steps, probe), with and without BN.

# %%
digits = data.load_digits(flat=True)


def drift_run(norm):
    torch.manual_seed(0)
    net = models.mlp(64, 10, hidden=(64, 64, 64), norm=norm)
    record = record_layer_inputs(net, digits.x_train, digits.y_train, x_probe=digits.x_val,
                                 steps=300, lr=0.05, record_every=10)
    return record


records = {norm: drift_run(norm) for norm in ("none", "batch")}
for norm, record in records.items():
    cells = [f"L{row['layer']}: {row['mean_shift']:.2f} / x{row['std_ratio']:.2f}" for row in drift_summary(record)]
    print(f"{norm:6s} mean shift / spread ratio   " + "   ".join(cells))

# %% tags=["remove-input"]
drift = {norm: drift_summary(record)[1:] for norm, record in records.items()}  # layers 2-4
layer_shifts = {norm: [row["mean_shift"] for row in rows] for norm, rows in drift.items()}
ratios = {norm: [row["std_ratio"] for row in rows] for norm, rows in drift.items()}
claim("with BN every hidden layer's input drifts less than without, and still drifts (one seed)",
      all(0 < b < n for b, n in zip(layer_shifts["batch"], layer_shifts["none"])) and max(ratios["batch"]) < max(ratios["none"])
      and max(ratios["batch"]) < 4 / 3, shifts=layer_shifts, ratios=ratios)
prose(f"""
Measured (one seed): with BN the inputs of layers 2–4 drift much less (mean shifts of
{min(layer_shifts['batch']):.2f}–{max(layer_shifts['batch']):.2f} initial spreads instead of
{min(layer_shifts['none']):.2f}–{max(layer_shifts['none']):.2f}; spreads grow by at most a factor
{max(ratios['batch']):.2f} instead of up to {max(ratios['none']):.2f}). But they still drift. Batch
norm fixes the batch mean and standard deviation of each unit's *output* at $\\beta_j$ and
(up to $\\epsilon$) $|\\gamma_j|$ — and
""")

# %% [markdown]
# * $\gamma$ and $\beta$ are trained, so those targets move (deliberately: they are how the
#   network chooses its own input distribution);
# * the recorded Linear input is the ReLU of BN's output; its mean and spread depend on
#   $\gamma, \beta$ in a nonlinear way;
# * BN fixes two moments per unit, not the whole distribution (its shape, and the
#   correlations between units, still change).
#
# So BN *reduces* this kind of drift here; it does not remove it. Whether reducing it is
# what makes training easier is exercise 5.

# %% [markdown]
# ## Exercise 5 — testing the covariate-shift explanation
#
# **Experiment (Santurkar et al., 2018, shown in Raschka's slides).** Train three networks:
# without BN, with BN, and with BN followed by *injected* noise — after every BN layer,
# multiply by a random scale and add a random shift, drawn anew at every step, so the
# inputs of the next layer have a deliberately unstable distribution. If the explanation
# "BN helps because it stabilizes layer input distributions" were right, the noisy BN
# network should train like the network without BN (or worse). **Refutation:** the noisy
# network trains about as well as standard BN although its layer inputs drift as much as (or
# more than) without BN. Santurkar et al. found exactly that on VGG/CIFAR-10.
#
# A small version on digits (noise scale $\sim U(0.5, 1.5)$, shift $\sim U(-1, 1)$ per unit
# and step, identity in eval mode):

# %%
class NoisyShift(nn.Module):
    """Multiply each unit by a fresh random scale and add a fresh random shift (train only)."""

    def __init__(self, width, generator):
        super().__init__()
        self.width, self.generator = width, generator

    def forward(self, x):
        if not self.training:
            return x
        scale = torch.empty(self.width).uniform_(0.5, 1.5, generator=self.generator)
        shift = torch.empty(self.width).uniform_(-1.0, 1.0, generator=self.generator)
        return x * scale + shift


# %%
torch.manual_seed(0)
noisy = models.mlp(64, 10, hidden=(64, 64, 64), norm="batch")
generator = torch.Generator().manual_seed(1)
noisy = nn.Sequential(*[layer for module in noisy for layer in
                        ((module, NoisyShift(module.num_features, generator))
                         if isinstance(module, nn.BatchNorm1d) else (module,))])
records["noisy batch"] = record_layer_inputs(noisy, digits.x_train, digits.y_train, x_probe=digits.x_val,
                                             steps=300, lr=0.05, record_every=10)
for norm, record in records.items():
    shifts = [f"{row['mean_shift']:.2f}" for row in drift_summary(record)[1:]]
    print(f"{norm:12s} mean training loss, last 50 steps {np.mean(record.losses[-50:]):.4f}   "
          f"mean shift of layers 2-4: {', '.join(shifts)}")

# %% tags=["remove-input"]
late_loss = {norm: float(np.mean(record.losses[-50:])) for norm, record in records.items()}
noisy_shifts = [row["mean_shift"] for row in drift_summary(records["noisy batch"])[1:]]
claim("the injected noise makes layers 2-4 drift more than in the BN network, and its late training loss "
      "is higher than either other network's (one seed)",
      all(n > b for n, b in zip(noisy_shifts, layer_shifts["batch"]))
      and late_loss["noisy batch"] > max(late_loss["none"], late_loss["batch"]), loss=late_loss, shifts=noisy_shifts)
prose(f"""
What this small run says, honestly (one seed): the injected noise does make the hidden
inputs drift more than in the BN network, and it also slows training here (mean training
loss over the last 50 of the 300 steps {late_loss['noisy batch']:.3f}, against {late_loss['batch']:.3f} with plain
BN and {late_loss['none']:.4f} without) — on an easy task where the plain network already trains
well, with a learning rate chosen for the plain network. So this miniature neither
reproduces Santurkar et al.'s finding nor refutes it: deciding needs their setting (a VGG
network on CIFAR-10, where BN's gain is large) and several seeds. Lecture 08 repeats the
test with several seeds and measures the alternative explanation, the smoothness of the
loss along the gradient.
""")
