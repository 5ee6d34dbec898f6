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
# 4. Fit the statistics on the training split only; shuffle before batching
# 5. Standardizing fixes the first layer only → batch normalization (lecture 02)

# %% [markdown] slideshow={"slide_type": "notes"}
# This lecture follows the opening of Raschka's lecture slides ("Recap: why we normalize
# inputs for gradient descent", then "normalizing the inputs only affects the first hidden
# layer ... what about the other hidden layers?"), the first slides of Silva's CNN
# slides ("gradient of larger parameter dominates the update") and the UCLA discussion
# sheet's roses (covariate shift between mini-batches). Every claim is measured here on
# the wine and digits data that ship with scikit-learn, and checked by a `claim` in the
# notebook. (`normlab build` prints how long it ran on your machine.)

# %% slideshow={"slide_type": "skip"}
import numpy as np
import sklearn.datasets
import torch

from torch.utils.data import DataLoader, TensorDataset

from normlab import data, models, stats, train
from normlab.notebook import claim, prose
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

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
center = {name: x_raw[:, FEATURES.index(name)].mean() for name in FEATURES}
spread = {name: x_raw[:, FEATURES.index(name)].std() for name in FEATURES}
scale_gap = spread["proline"] / spread["hue"]
claim("the spreads of proline and hue differ by three orders of magnitude",
      bool(1e3 <= scale_gap < 1e4), proline=spread["proline"], hue=spread["hue"])
prose(f"""
Proline is around {center['proline']:.0f} with a spread of about {spread['proline']:.0f}, hue
around {center['hue']:.2f} with a spread of about {spread['hue']:.2f}: their spreads are
{scale_gap:,.0f} times apart. Nothing is wrong with the data: the units are simply different
(mg/l vs a ratio). A model does not know units — it only sees numbers, and gradient descent
will treat a unit step in proline's weight like a unit step in hue's weight.
""")

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
# * at such an $\eta$ the error along the flat direction is multiplied by at least
#   $1 - 2\lambda_{\min}/\lambda_{\max} = 1 - 2/\kappa$ per step: shrinking it by a factor
#   $r$ takes at least about $\tfrac{\kappa}{2}\ln r$ steps.
#
# Silva's CNN slides: "gradient of larger parameter dominates the update".

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Three versions of the same two features

# %% tags=["remove-input"]
prose(rf"""
Color intensity ($s \approx {spread['color_intensity']:.1f}$) and hue
($s \approx {spread['hue']:.2f}$), predicting alcohol, on the training split: raw, only
centered, and standardized $x \mapsto (x-\mu)/\sigma$.
""")

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

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
grid_step = learning_rates[1] / learning_rates[0]
claim("in every row the largest stable rate of the grid lies below 2/lambda_max, within one grid step",
      all(loss.largest_stable_lr / grid_step < sweeps[name].largest_stable_lr <= loss.largest_stable_lr
          for name, loss in losses.items()),
      measured={name: s.largest_stable_lr for name, s in sweeps.items()},
      theory={name: loss.largest_stable_lr for name, loss in losses.items()})
steps = {name: s.best_steps for name, s in sweeps.items()}
claim("raw and centered need hundreds of steps, standardized fewer than ten; centering alone did not help",
      100 <= steps["raw"] < 1000 and 100 <= steps["centered"] < 1000 and 0 < steps["standardized"] < 10
      and steps["centered"] >= steps["raw"], steps=steps)
prose(f"""
Read the table with the students: the measured largest stable rate on the grid sits just
below the theoretical 2/λ_max in every row (within one step of the grid, a factor
{grid_step:.2f}), so the theory is not decoration. Then the step counts: the raw and the
centered problems need hundreds of steps ({steps['raw']} and {steps['centered']}), the
standardized one a handful ({steps['standardized']}). Centering alone did not help here; the
scale mismatch is the culprit.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What gradient descent does in each bowl
#
# The first 25 steps at each version's best learning rate, on contours of $L - L^*$
# (both axes at the same scale, so the ellipses have their true shape).

# %%
paths = {name: gradient_descent(loss, start, sweeps[name].best_lr, steps=25)
         for name, loss in losses.items()}
fig = plot_loss_contours(losses, paths)

# %% tags=["remove-input"] slideshow={"slide_type": "subslide"}
def factors(name):
    """Per-step factors 1 - lr * lambda of the error along the flat and the steep axis."""
    return 1 - sweeps[name].best_lr * np.linalg.eigvalsh(losses[name].hessian)


def distance_left(name, step):
    """Distance to the minimum after `step` steps, as a share of the distance at the start."""
    minimizer = losses[name].minimizer
    return np.linalg.norm(paths[name][step] - minimizer) / np.linalg.norm(start - minimizer)


claim("raw and centered run at the largest stable rate of the grid, the steep axis overshoots "
      "(factor < 0) and after 25 steps more than half the distance is left; standardized is "
      "within a few percent after 5 steps",
      all(sweeps[n].best_lr == sweeps[n].largest_stable_lr and factors(n)[1] < 0 and distance_left(n, 25) > 0.5
          for n in ("raw", "centered")) and distance_left("standardized", 5) < 0.05,
      left_raw=distance_left("raw", 25), left_centered=distance_left("centered", 25),
      left_standardized_5=distance_left("standardized", 5))
prose(rf"""
* **Raw and centered:** the best rate is the largest stable one, so the steep direction
  overshoots at every step (factor $1-\eta\lambda_{{\max}}$ = {factors('raw')[1]:.2f} raw,
  {factors('centered')[1]:.2f} centered): the path zig-zags across the valley. Along the floor
  the factor is {factors('raw')[0]:.3f}: after 25 steps {100 * distance_left('raw', 25):.0f} % of
  the distance to the minimum is left (centered: {100 * distance_left('centered', 25):.0f} %). A
  larger learning rate would speed the crawl but blows up across the valley.
* **Standardized:** much rounder contours; after 5 steps {100 * distance_left('standardized', 5):.0f} %
  of the distance is left.
""")


# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Standardized, yet not round
#
# The standardized bowl is still a little elongated: for two standardized features with
# correlation $\rho$, $H$ is their correlation matrix with eigenvalues $1 \pm \rho$, so
# $\kappa = \frac{1+|\rho|}{1-|\rho|}$. Standardizing fixes scales, not correlations.

# %%
rho = np.corrcoef(two.T)[0, 1]
print(f"rho = {rho:.3f}: (1+|rho|)/(1-|rho|) = {(1 + abs(rho)) / (1 - abs(rho)):.3f}, "
      f"measured kappa = {losses['standardized'].condition_number:.3f}")

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
claim("the standardized bowl's kappa is (1+|rho|)/(1-|rho|)",
      bool(np.isclose(losses["standardized"].condition_number, (1 + abs(rho)) / (1 - abs(rho)), rtol=1e-9)),
      rho=rho, kappa=losses["standardized"].condition_number)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The wider the scale gap, the worse
#
# Pairs with hue as the second feature, raw vs standardized (budget 10,000 steps):

# %%
def steps_text(sweep):
    return f"{sweep.best_steps:,}" if sweep.best_steps > 0 else f"> {sweep.max_steps:,}"


pairs = {}  # (feature, version) -> (loss, sweep)
print(f"{'pair':26s}{'kappa raw':>12s}{'steps raw':>11s}{'kappa std':>11s}{'steps std':>11s}")
for name in ("color_intensity", "alcalinity_of_ash", "magnesium", "proline"):
    x = x_raw[:, [FEATURES.index(name), FEATURES.index("hue")]]
    row = f"{name + ' & hue':26s}"
    for version, values in (("raw", x), ("standardized", (x - x.mean(0)) / x.std(0))):
        loss = QuadraticLoss.from_data(values, alcohol)
        sweep = learning_rate_sweep(loss, start, learning_rates)
        pairs[(name, version)] = loss, sweep
        row += f"{loss.condition_number:12,.0f}{steps_text(sweep):>11s}"
    print(row)

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
def estimated_steps(kappa):
    """Steps at the best rate: the error shrinks by about 1 - 2/kappa per step, and the loss
    gap (quadratic in the error) must shrink by 10^4, i.e. the error by 10^2."""
    return kappa * np.log(1e4) / 4


kappa_proline = pairs[("proline", "raw")][0].condition_number
kappa_color = losses["raw"].condition_number
steps_std = {name: sweep.best_steps for (name, version), (_, sweep) in pairs.items() if version == "standardized"}
claim("with proline and hue kappa is in the millions and the raw problem does not converge in the budget",
      bool(1e6 <= kappa_proline < 1e7) and pairs[("proline", "raw")][1].best_steps == -1, kappa=kappa_proline)
claim("the estimate kappa ln(10^4)/4 is within 10 % of the measured steps for color intensity & hue",
      abs(estimated_steps(kappa_color) / sweeps["raw"].best_steps - 1) < 0.1,
      estimate=estimated_steps(kappa_color), measured=sweeps["raw"].best_steps)
claim("after standardization every pair needs fewer than ten steps",
      all(0 < s < 10 for s in steps_std.values()), steps=steps_std)
prose(f"""
Where does a number of steps come from? At the best rate the error shrinks by about
1 − 2/κ per step, and the loss gap, quadratic in the error, must shrink by 10⁴: about
κ·ln(10⁴)/4 steps. For color intensity & hue that predicts {estimated_steps(kappa_color):.0f}
steps; the sweep measured {sweeps['raw'].best_steps}. With proline and hue, κ ≈
{kappa_proline:,.0f}: about {estimated_steps(kappa_proline) / 1e6:.0f} million steps, far beyond the budget.
After standardization every pair needs fewer than ten ({max(steps_std.values())} at most). This is
the measured version of the BN notes' sentence "gradient descent converges much faster with
feature scaling than without it".
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Real data: a small network on all 13 wine features
#
# A one-hidden-layer MLP (32 ReLU units), trained with the course's training loop
# (`normlab.train.fit`: SGD with Nesterov momentum, `momentum=0.9`, `batch_size=16`) for
# the same budget of 30 epochs on raw and on standardized features, at four learning rates.

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

# %% tags=["remove-input"] slideshow={"slide_type": "subslide"}
class_share = torch.bincount(wine.y_train).double() / len(wine.y_train)
frequency_loss = -(class_share * class_share.log()).sum().item()  # predict the class shares
raw_stuck = [final_loss[(False, lr)] for lr in (1e-3, 1e-2, 1e-1)]
claim("raw: only the tiny rate 1e-4 trains; from 1e-3 up the loss sticks at the class-frequency loss (one seed)",
      best[False] == 1e-4 and all(abs(loss - frequency_loss) < 0.01 for loss in raw_stuck)
      and final_loss[(False, 1e-4)] < frequency_loss - 0.3, raw=raw_stuck, frequency_loss=frequency_loss)
claim("standardized: the best rate is 1000 times raw's, and the best loss is about 0.001",
      np.isclose(best[True] / best[False], 1e3) and final_loss[(True, best[True])] < 0.002,
      best_loss=final_loss[(True, best[True])])
claim("at the same small rate 1e-4 the raw run's training loss is lower (one seed)",
      final_loss[(False, 1e-4)] < final_loss[(True, 1e-4)],
      raw=final_loss[(False, 1e-4)], standardized=final_loss[(True, 1e-4)])
prose(rf"""
* Raw inputs: only tiny learning rates ($\le 10^{{-4}}$) train. From $10^{{-3}}$ up the loss
  sticks at {min(raw_stuck):.3f}–{max(raw_stuck):.3f}, the loss of predicting the class
  frequencies for every wine ({frequency_loss:.3f}).
* Standardized: rates {best[True] / best[False]:,.0f} times larger train, and the best run
  reaches a loss of {final_loss[(True, best[True])]:.4f}.
* At the *same* small rate raw is ahead in this run ({final_loss[(False, 1e-4)]:.2f} against
  {final_loss[(True, 1e-4)]:.2f}: big inputs, big gradients, a larger effective step).
  Standardizing wins by the learning rate it allows — as in the bowl, where
  $2/\lambda_{{\max}}$ set the limit.

Why the raw network gets stuck — its hidden ReLUs: share of units active on at least
one training wine, before and after training:
""")

# %%
x_train_raw = data.load_wine(standardize=False).x_train
torch.manual_seed(0)
untrained = models.mlp(13, 3, hidden=(32,))  # the initialization every run above started from
trained = {f"lr {lr:.0e}": runs[(False, lr)][0] for lr in (1e-4, 1e-3, 1e-2, 1e-1)}
alive = {}
with torch.no_grad():
    for label, model in {"untrained": untrained, **trained}.items():
        hidden = model[:3](x_train_raw)  # Flatten -> Linear -> ReLU
        alive[label] = (hidden > 0).any(0).float().mean().item()
        print(f"raw, {label:9s}: {alive[label]:.2f} of the hidden units alive")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
with torch.no_grad():
    net_input = untrained[:2](x_train_raw)  # Flatten -> Linear
dead = ~(net_input > 0).any(0)
proline_weight = untrained[1].weight[:, FEATURES.index("proline")].detach()
typical_net_input = net_input.abs().median().item()
claim("at initialization the net inputs are in the hundreds, and every dead unit has a negative proline weight",
      100 <= typical_net_input < 1000 and bool((proline_weight[dead] < 0).all()),
      typical_net_input=typical_net_input, dead=int(dead.sum()))
claim("trained at 1e-4 the share of live units stays near its initial value; from 1e-3 up none is alive (one seed)",
      abs(alive["lr 1e-04"] - alive["untrained"]) < 0.1
      and all(alive[f"lr {lr:.0e}"] == 0 for lr in (1e-3, 1e-2, 1e-1)), alive=alive)
prose(f"""
Proline is at least {x_raw[:, FEATURES.index('proline')].min():.0f} on every training wine, so
the first layer's net inputs are in the hundreds (median size {typical_net_input:.0f}) and
proline's term decides their sign: {int(dead.sum())} of the {len(dead)} units are dead (negative on
every wine) before training starts, each of them with a negative proline weight
({int((proline_weight < 0).sum())} units have one). At lr 1e-4 training leaves the share of live
units about where it started ({alive['untrained']:.2f} → {alive['lr 1e-04']:.2f}). From 1e-3 up
the first gradient steps, with inputs in the hundreds, are huge and push the remaining units to
where they are negative for every input: none is alive. Dead ReLUs have zero gradient, and
only the output bias keeps learning — the class frequencies, the loss stuck at
{frequency_loss:.3f}. This is the "gradient of the larger parameter dominates" picture in a real
network. One seed; the numbers are deterministic (fixed seeds).
""")

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

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
own_statistics = data.Standardizer().fit_transform(one_wine)
test_offset = splits.x_test.mean(0).abs().max().item()
claim("a single wine standardized with its own statistics is exactly 0 in every feature",
      bool((own_statistics == 0).all()), values=own_statistics[0].tolist())
claim("the test split's means are close to, not exactly, 0 (within half a training std)",
      0 < test_offset < 0.5, largest=test_offset)
prose(f"""
The test means are up to {test_offset:.2f} training standard deviations away from 0: close to,
not exactly, 0. The third line is the point: at prediction time there is often one sample,
and its own mean is itself — standardizing it with its own statistics erases it: exactly 0
in every feature (its spread is 0, and `Standardizer` replaces a zero spread by 1 instead of
dividing by it). So the statistics must be fixed numbers from training. Batch normalization
will meet exactly this problem in lecture 04 (running statistics, the batch of one).
""")


# %% [markdown] slideshow={"slide_type": "slide"}
# ## Covariate shift between mini-batches: the roses
#
# The UCLA discussion sheet: a rose classifier trained on flowers from two subsets — "red
# rose buds" with wildflowers, and "fully blown roses of different colors" with other
# flowers. The subsets lie in different regions of input space, "This difference in
# distribution is called the covariate shift". Mini-batches drawn from one subset, then
# from the other, show the network a moving input distribution: "This makes the training
# of the rose vs non-rose classifier very slow."
#
# > "An easy way to solve this problem for the input layer is to randomize the data before
# > creating mini-batches." — UCLA discussion sheet

# %% [markdown] slideshow={"slide_type": "notes"}
# The name is older than the roses and than BN. The BN paper (quoted in Silva's CNN
# slides): "When the input distribution to a learning system changes, it is said to
# experience covariate shift (Shimodaira, 2000). This is typically handled via domain
# adaptation (Jiang, 2008)." Schilling's thesis talk puts the two meanings side by side:
# covariate shift, "Distribution of training and test set different", with "solution: data
# preprocessing"; internal covariate shift, the layers' distributions changing during
# training, with "solution: batchnorm!" (the end of this lecture). The roses are a third
# use of the word: a shift between the mini-batches of one training set, which shuffling
# removes.
#
# Be precise about "solution: data preprocessing" — it is the talk's claim, and only half
# true. Standardizing with the training statistics puts training and test inputs through
# the *same* fixed map: it fixes their scales (this lecture), but a test distribution that
# really differs from the training one still differs after the map. Our wine split is
# random (seeded and stratified), so its test means, close to but not exactly 0 on the leakage slide, are sampling
# noise, not a shift. A real shift between training and deployment is what domain
# adaptation is for, as the BN paper says; this course does not measure it.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Measured on digits: batches by class vs shuffled
#
# The same MLP (one hidden layer of 64), the same initialization, 5 epochs at `lr=0.05`,
# seeds 0–2. One arm gets the training set sorted by label and not shuffled (each batch
# holds one or two digits, then the next), the other shuffled batches. Sorting by label
# shifts the labels between batches as well as the inputs — a harsher shift than the roses.

# %%
digits = data.load_digits(flat=True)
by_label = torch.argsort(digits.y_train, stable=True)  # all the 0s, then all the 1s, ...
sorted_loader = DataLoader(TensorDataset(digits.x_train[by_label], digits.y_train[by_label]),
                           batch_size=64, shuffle=False)


def train_digits(shuffled, seed, epochs=5):
    train_loader, val_loader, test_loader = digits.loaders(batch_size=64, seed=seed)
    torch.manual_seed(seed)
    model = models.mlp(64, 10, hidden=(64,))
    history = train.fit(model, train_loader if shuffled else sorted_loader, val_loader,
                        epochs=epochs, lr=0.05, seed=seed, early_stop_patience=epochs, progress=False)
    return history, train.evaluate(model, test_loader)[1]


batch_order = {arm: [train_digits(arm == "shuffled", seed) for seed in (0, 1, 2)]
               for arm in ("shuffled", "by class")}
for arm, results in batch_order.items():
    print(f"{arm:9s} training loss, last epoch: {[round(h.train_loss[-1], 3) for h, _ in results]}"
          f"   test accuracy: {[round(acc, 3) for _, acc in results]}")

# %% tags=["remove-input"] slideshow={"slide_type": "subslide"}
order_verdict = stats.compare([acc for _, acc in batch_order["shuffled"]],
                              [acc for _, acc in batch_order["by class"]],
                              min_effect=stats.ACCURACY_DELTA / 100)  # unpaired: batch orders differ
last_loss = {arm: [h.train_loss[-1] for h, _ in results] for arm, results in batch_order.items()}
claim("shuffled batches are ahead in test accuracy by the verdict rule (seeds 0-2)",
      order_verdict.outcome == "a", diff=order_verdict.diff, margin=order_verdict.margin)
claim("in every seed the last epoch's training loss is at least twice as high with batches by class",
      all(b > 2 * a for a, b in zip(last_loss["shuffled"], last_loss["by class"])), loss=last_loss)
prose(f"""
Over seeds 0–2, shuffling is ahead by the course's verdict rule: test accuracy
{100 * order_verdict.mean_a:.1f} % against {100 * order_verdict.mean_b:.1f} % (difference
{100 * order_verdict.diff:.1f} points, margin {100 * order_verdict.margin:.1f}). And in every seed
the loss the network meets on its training batches in the last epoch is at least twice as
high by class: each batch brings a distribution the batches before it did not show. Randomizing the order fixes the
*input* layer's batches — but not the hidden layers', whose inputs move whenever the
weights before them change.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## "This only fixes the first layer"
#
# > However, normalizing the inputs only affects the first hidden layer ... what about the
# > other hidden layers? — Raschka's lecture slides
#
# The UCLA sheet asks the same after its roses: "But, how do we solve this for the hidden
# layers?"
#
# Layer $k$'s input is the previous layer's output, and that changes whenever the earlier
# weights change. We train an MLP with three hidden layers on standardized digits and
# record, on a fixed probe batch, the mean and spread of each input unit of every layer.

# %%
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

# %% tags=["remove-input"] slideshow={"slide_type": "skip"}
drift = drift_summary(record)
claim("layer 1's input distribution never changes (mean shift 0, spread ratio 1)",
      drift[0]["mean_shift"] == 0 and drift[0]["std_ratio"] == 1, layer_1=drift[0])
claim("every later layer drifts, and the drift grows with depth (mean shift and spread ratio)",
      all(drift[k]["mean_shift"] < drift[k + 1]["mean_shift"] and drift[k]["std_ratio"] < drift[k + 1]["std_ratio"]
          for k in range(len(drift) - 1)), drift=drift)

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
# with noise of *changing* mean and variance injected after every BN layer, "The “noisy”
# BatchNorm model nearly matches the performance of standard BatchNorm model"; they argue
# BN works because it makes the loss landscape smoother.
#
# We measured that the drift exists. Whether it matters is tested in lecture 08 (noisy BN
# on digits, and the smoothness view).

# %% [markdown] slideshow={"slide_type": "notes"}
# Keep the two things apart for the students: (1) the drift is real and measurable — the
# table above; (2) the story "drift is why deep nets train slowly, and BN helps because it
# removes it" is a hypothesis. Exercise 4 measures the drift with BN, and lecture 08
# measures the smoothness view. The sheet's multiple-choice question about what BN fixes
# comes in lecture 02.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary

# %% tags=["remove-input"]
prose(rf"""
* Least squares on features $x$: curvature matrix $H = \frac1n\sum x x^\top$. Feature
  scales $s_j$ enter $H$ squared; $\kappa = \lambda_{{\max}}/\lambda_{{\min}}$ measures how
  elongated the bowl is.
* Gradient descent is stable only for $\eta < 2/\lambda_{{\max}}$ and then needs on the
  order of $\kappa$ steps. Measured: color intensity & hue, {steps['raw']} steps raw →
  {steps['standardized']} standardized; with proline, κ in the millions and more than
  {pairs[('proline', 'raw')][1].max_steps:,} steps raw.
* On the real wine data, a small MLP on raw features trains only at learning rates
  $\le 10^{{-4}}$ (larger ones kill its ReLUs; best loss {final_loss[(False, best[False])]:.2f}
  after 30 epochs); standardized, it trains up to $0.1$ and reaches {final_loss[(True, best[True])]:.4f}.
* Standardize with statistics fitted on the training split; apply the same numbers later.
* Shuffle before batching: batches drawn by class shift the input distribution from batch to
  batch (the UCLA sheet's roses) and cost test accuracy here.
* Standardizing fixes the first layer only: hidden layers' inputs drift during training,
  more with depth ("internal covariate shift" — the BN paper's motivation, disputed).
""")

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
