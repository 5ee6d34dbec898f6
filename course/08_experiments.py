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
# # Lecture 08 — The experiments: "batchnorm 6 – vanilla 1"?
#
# Schilling's thesis talk ends with a scoreboard: eight experiments, and batch norm wins
# six of them. We rerun every one of them on our data, over several seeds, with a rule that
# decides who is ahead — and then ask *why* BN helps.
#
# 1. The thesis' claims and our set-up; the verdict rule
# 2. Eight experiments, one slide each: learning curves with error bands
# 3. The scoreboard, row by row against the thesis
# 4. Why does BN work? Internal covariate shift vs a smoother loss landscape
# 5. The thesis' practical recommendations, measured

# %% [markdown] slideshow={"slide_type": "notes"}
# Sources: Schilling's thesis talk (the score slides, Table B.4, the conclusion and the
# backup slides "Training strategy" and "practical recommendations"); the abstracts of
# Ioffe & Szegedy and Santurkar et al. quoted in Silva's CNN slides; Raschka's lecture
# slides ("BatchNorm and internal covariate shift", Santurkar et al.'s Figures 1 and 2); the
# BN notes and the UCLA discussion sheet (the covariate-shift story). Every experiment runs
# through `normlab.experiments`, the same code as the command `normlab experiments`.
# Quick mode trains its runs in this process (`normlab build` prints how long that took on
# your machine); results are cached in `experiments_cache/`, so a re-run only reads them.

# %% slideshow={"slide_type": "skip"} tags=["parameters"]
FULL = False  # True: the complete run (5 seeds, up to 100 epochs, MLP and CNN): tens of minutes on 2 cores

# %% slideshow={"slide_type": "skip"} tags=["remove-input"]
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from IPython.display import Markdown

from normlab import data, models
from normlab import experiments as ex
from normlab import stats
from normlab.experiments import SMOOTHNESS_SETTINGS
from normlab.notebook import claim, prose, show_source
from normlab.plots import experiments as figures

torch.set_num_threads(1)
MODE = "full" if FULL else "quick"
OUT = Path("experiments_cache") / MODE  # finished runs are stored here and reused
SEEDS = 5 if FULL else 3
QUICK_EPOCHS = 10  # quick mode: at most 10 epochs per training run (full mode: 100)
QUICK_BATCH_CELLS = ("batch 32", "batch 64", "batch 256", "batch 1024")  # accuracy runs; timing keeps all six
SMOOTHNESS = SMOOTHNESS_SETTINGS["full"] if FULL else {"epochs": 5, "points": 10}
WORKERS = None if FULL else 1  # quick mode trains in this process: no start-up cost, robust on a busy machine
SETUP = "digits/mlp"  # the setup the figures show (full mode adds digits/cnn)
THESIS_OVERHEAD = {32: 19.7, 64: 19.0, 128: 16.4, 256: 15.5, 512: 15.3, 1024: 15.2}  # Table B.4, %
CHANCE = 10.0  # % test accuracy of guessing one of ten classes
RUN_LABEL = f"{SEEDS} seeds, at most {100 if FULL else QUICK_EPOCHS} epochs"  # what every verdict here rests on


def quick_version(condition):
    """The condition as this lecture's quick mode runs it (full mode ignores quick_*)."""
    if condition.metric != "test_acc":
        return condition  # the timing runs: the library's quick settings
    cells = QUICK_BATCH_CELLS if len(condition.cells) > 1 else condition.quick_cells
    return replace(condition, quick_overrides={**condition.quick_overrides, "epochs": QUICK_EPOCHS}, quick_cells=cells)


def seed_values(condition, arm, cell=""):
    """The metric of every seed of one arm (test accuracy in %, or epoch time in ms)."""
    return [r["value"] for r in board.runs
            if (r["setup"], r["condition"], r["cell"], r["arm"]) == (SETUP, condition, cell, arm)]


def arm_text(condition, arm):
    """'mean ± sd' of one arm of a one-cell condition; the number of cells otherwise."""
    stats = [s for s in board.summary if (s["setup"], s["condition"], s["arm"]) == (SETUP, condition, arm)]
    if len(stats) > 1:
        return f"{len(stats)} cells"
    return f"{stats[0]['mean']:.1f} ± {stats[0]['sd']:.1f} {stats[0]['unit']}"


def row(condition, cell="", a=None):
    """The scoreboard row of one comparison in one cell (the first comparison unless ``a`` names arm A)."""
    return next(r for r in board.rows if (r["setup"], r["condition"], r["cell"]) == (SETUP, condition, cell)
                and (a is None or r["a"] == a))


def verdict_of(r):
    """A scoreboard row's verdict as prose: "BN ahead", "vanilla ahead" or "a draw"."""
    return "a draw" if r["outcome"] == "draw" else r["verdict"]


def mean(condition, arm, cell=""):
    """Mean over seeds of one arm's metric (test accuracy in %, or epoch time in ms)."""
    return float(np.mean(seed_values(condition, arm, cell)))


def gain(condition, arm, reference="baseline"):
    """Mean test accuracy of ``arm`` under ``condition`` minus under ``reference`` (points)."""
    return np.mean(seed_values(condition, arm)) - np.mean(seed_values(reference, arm))


def both_arms(condition):
    """The gain of both arms under ``condition`` against the baseline, as text."""
    return f"BN {gain(condition, 'BN'):+.1f}, vanilla {gain(condition, 'vanilla'):+.1f}"


def verdict_lines(condition):
    """One line per cell: means ± sd over seeds, difference d, margin, verdict, the claim."""
    for r in board.rows:
        if r["setup"] == SETUP and r["condition"] == condition:
            cell = f"{r['cell']:>10s}: " if r["cell"] else ""
            print(f"{cell}{r['a']} {r['mean_a']:.2f} ± {r['sd_a']:.2f} | {r['b']} {r['mean_b']:.2f} ± "
                  f"{r['sd_b']:.2f} {r['unit']} | d = {r['diff']:+.2f}, margin {r['margin']:.2f} "
                  f"-> {r['verdict']} (thesis: {r['expected']})")


# %% [markdown] slideshow={"slide_type": "slide"}
# ## The claims: Schilling's thesis talk
#
# MLP and a deep CNN on MNIST, SVHN, CIFAR-10 and CIFAR-100, on a GPU. BN before every
# activation ("batchnorm") against the same network without it ("vanilla"):
#
# | experiment | the talk says | score |
# |---|---|---|
# | ReLU baseline, Kaiming init | BN beats vanilla on all data sets | 1 – 0 |
# | sigmoid + Xavier | vanilla stuck at random guessing | 2 – 0 |
# | learning rate × 10 ($\eta = 0.1$) | BN faster and better; vanilla stuck | 3 – 0 |
# | $\mathcal N(0, 1)$ init | BN worse than with Kaiming; vanilla stuck | 4 – 0 |
# | weight decay $5\cdot 10^{-4}$ | both better than baseline, BN ahead | 5 – 0 |
# | dropout, keep probability $0.5$ | BN not ahead: "we'll call this a draw" | 5 – 0 |
# | batch sizes $2^5 \dots 2^{10}$ | BN ahead at every batch size | 6 – 0 |
# | time per epoch | BN slower: "mean overhead 15.2% to 19.7%" | **6 – 1** |

# %% [markdown] slideshow={"slide_type": "notes"}
# These are the seed's claims, on its data and hardware — not yet ours. The talk shows one
# run per curve; there is no error band and no rule for "ahead". The backup slide
# "Training strategy for the experiments" gives the recipe we copy below. Note the
# dropout row: the talk writes "keep probability p = 0.5", so half the units are dropped
# (with $p = 0.5$ the two conventions happen to agree).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Our set-up: the thesis' recipe on digits
#
# * Data: scikit-learn's 8×8 digits, 1258 train / 180 validation / 359 test images,
#   standardized with training statistics (`normlab.data`); 10 classes, so guessing
#   scores one in ten.
# * Model: the thesis' MLP, three hidden layers of 100 units (64 → 100 → 100 → 100 → 10),
#   BN before each ReLU (`normlab.models.mlp`).
# * Training (the talk's backup slide): cross-entropy, SGD with Nesterov momentum
#   `momentum=0.9`, batch 64, $\eta = 0.01$, halved after 5 epochs without a better
#   validation loss, early stopping. Every run on one CPU thread, fully seeded: a run is a
#   function of its configuration and seed, and both arms of a seed see the same split
#   and the same order of mini-batches.
# * **Quick mode** (this notebook by default): at most 10 epochs, 3 seeds, batch sizes
#   32, 64, 256, 1024. **Full mode** (`FULL = True`, or `normlab experiments --full`):
#   up to 100 epochs, patience 20, 5 seeds, six batch sizes, MLP and CNN.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The conditions, as the library declares them

# %%
conditions = [quick_version(c) for c in ex.CONDITIONS
              if c.tally or c.name in ("normal_init_shallow", "noisy_bn")]
for c in conditions:
    print(f"{c.name:13s} {c.title:24s} {c.description[:70]}")

# %% [markdown] slideshow={"slide_type": "notes"}
# `normlab.experiments.CONDITIONS` lists every experiment of the seeds with the claim it
# tests quoted word for word (`c.claim`, `c.source`). Each condition overrides a few
# settings of the base configuration, e.g. sigmoid sets activation="sigmoid" and
# init="xavier". `quick_version` only shortens the runs for the lecture's time budget.
# After the thesis' eight, two more: an ablation of depth (the N(0, 1) experiment on a
# shallower MLP, 2 hidden layers of 128) and noisy BN, for the second half of the lecture.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## When is one arm "ahead"? The verdict rule
#
# For arms A (BN) and B (vanilla) with results $m_{A,i}$, $m_{B,i}$ for seeds $i = 1 \dots n$
# — a seed gives both arms the same split and the same order of mini-batches, so the
# comparison is **paired by seed**:
#
# $$d = \bar m_A - \bar m_B, \qquad \mathrm{SE} = \frac{\mathrm{sd}_i(m_{A,i} - m_{B,i})}{\sqrt n},
# \qquad \text{margin} = \max(2\,\mathrm{SE},\ \delta).$$
#
# A ahead if $d > \text{margin}$, B ahead if $d < -\text{margin}$, else a **draw**.
# $\delta = 0.5$ points of test accuracy (one or two test images); for epoch times,
# lower is better and $\delta = 5\,\%$. The accuracy is the test accuracy at the epoch of
# best *validation* accuracy — the model early stopping keeps.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## The rule in the library
#
# `normlab.stats.compare`, the one rule of the course (the lectures' verdicts use it too);
# `ex.compare` only passes it the metric's direction and $\delta$.

# %%
show_source(stats.compare, docstring=False)

# %% [markdown] slideshow={"slide_type": "notes"}
# Why a rule at all: with 3 seeds and a seed spread of about one point, two means differ by
# a point by chance alone. Twice the standard error of the difference is a rough two-sided
# band of $95\,\%$. Pairing by seed leaves out what the two runs of a seed share (an easy
# or a hard order of batches; for the timings, the machine's load during that run), so
# the rule sees smaller effects than an unpaired one would. The rule was fixed before the
# runs (it is in the library, `normlab.stats`, and the scoreboard and lectures 05 and 06
# use it too), and we do not touch it afterwards — exercise 1 asks what a different rule
# would have said. A condition with several cells (batch sizes) takes the verdict of a
# strict majority of its cells.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Running everything
#
# One call trains every (condition, cell, arm, seed) not found in the cache and judges
# every comparison (the BN/vanilla baseline is shared by three conditions; full mode uses
# two worker processes).

# %%
board = ex.run_scoreboard(conditions, seeds=SEEDS, out=OUT, quick=not FULL, workers=WORKERS, progress=False,
                         plots=False)
print(f"{board.runs_trained} runs trained, {board.runs_reused} reused, {board.elapsed_seconds:.0f} s")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The ReLU baseline
#
# Thesis: "Batchnorm beats the vanilla network on all datasets! Score: Batchnorm 1 – vanilla 0".
# Validation accuracy per epoch, mean ± sd over seeds:

# %%
fig = figures.plot_learning_curves(board, "baseline", SETUP)

# %% slideshow={"slide_type": "subslide"}
verdict_lines("baseline")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## "Convergence speed? Slightly faster!"
#
# Per seed: the first epoch with validation accuracy $\geq 95\,\%$ ("-" = never), and
# the training loss of the last epoch.

# %%
val_acc, train_loss = (board.curves(SETUP, "baseline", what) for what in ("val_acc", "train_loss"))
first_epoch, final_loss = {}, {}
for (cell, arm), acc in val_acc.items():
    first_epoch[arm] = [int(np.argmax(run >= 0.95)) + 1 if (run >= 0.95).any() else None for run in acc]
    final_loss[arm] = [float(run[~np.isnan(run)][-1]) for run in train_loss[(cell, arm)]]
    print(f"{arm:8s} 95 % at epoch {' '.join(str(e or '-') for e in first_epoch[arm]):8s}  "
          f"final training loss {np.round(final_loss[arm], 3)}")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
base = row("baseline")
bn_first = sum((b or 99) < (v or 99) for b, v in zip(first_epoch["BN"], first_epoch["vanilla"]))
loss_ratio = np.mean(final_loss["BN"]) / np.mean(final_loss["vanilla"])
claim("BN reaches 95 % validation accuracy first in most seeds", bn_first * 2 > SEEDS,
      seeds_bn_first=bn_first, bn=first_epoch["BN"], vanilla=first_epoch["vanilla"])
claim("yet BN ends with a higher training loss than vanilla", loss_ratio > 1, ratio=loss_ratio)
verdict_word = verdict_of(base)
prose(f"""
Validation accuracy rises faster with BN: it reaches $95\\,\\%$ first in {bn_first} of {SEEDS}
seeds (after {np.mean([e or np.nan for e in first_epoch['BN']]):.1f} epochs on average, vanilla after
{np.mean([e or np.nan for e in first_epoch['vanilla']]):.1f}) — the talk's "slightly faster", which it marks
with an asterisk ("did not have time to show this"); Ioffe & Szegedy's "14 times fewer training
steps" (lecture 02) is the same question on ImageNet, with a far larger answer. Yet BN ends with the *higher* training loss ({loss_ratio:.1f} times vanilla's),
and on the test set the rule calls the baseline **{verdict_word}** ($d = {base['diff']:+.2f}$
points against a margin of {base['margin']:.2f}, {RUN_LABEL}). A BN network fits the training
set less tightly at the same budget: its output depends on the other samples of the batch,
a noise vanilla does not have (the "regularizing effect" the talk names). Keep this in
mind for part 2.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Sigmoid activations, Xavier init
#
# Thesis: "Vanilla network is stuck at random guessing and cannot escape; Batchnorm model
# converges but with major fluctuations. Score: Batchnorm 2 – vanilla 0".

# %%
fig = figures.plot_learning_curves(board, "sigmoid", SETUP)

# %% slideshow={"slide_type": "subslide"}
verdict_lines("sigmoid")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
sig = row("sigmoid")
sig_curves = board.curves(SETUP, "sigmoid", "val_acc")
vanilla_curve = np.nanmean(sig_curves[("", "vanilla")], axis=0) * 100
bn_runs = sig_curves[("", "BN")] * 100
bn_worst_drop = float(np.nanmax(-np.diff(bn_runs, axis=1)))  # largest fall of any seed between two epochs
claim("sigmoid: BN ahead of vanilla by a wide margin", sig["outcome"] == "a" and sig["diff"] > 10,
      diff=sig["diff"], margin=sig["margin"])
claim("sigmoid: vanilla is above chance and still learning at the end", sig["mean_b"] > 2 * CHANCE
      and vanilla_curve[-1] > vanilla_curve[0] + 5, vanilla_test=sig["mean_b"], first=vanilla_curve[0],
      last=vanilla_curve[-1])
prose(f"""
BN ahead by {sig['diff']:.0f} points ({RUN_LABEL}) — reproduced, with the talk's network. "Stuck
at random guessing" only half: vanilla's validation accuracy goes from {vanilla_curve[0]:.0f} % after
the first epoch to {vanilla_curve[-1]:.0f} % after the last (test: {sig['mean_b']:.0f} %; guessing scores
{CHANCE:.0f} %). It learns, slowly. A sigmoid's slope is at most $1/4$, so with variance-preserving
weights such as Xavier's the gradient shrinks by at least a factor of 4 per layer (lecture 07;
larger weights can make up for the slope): three hidden layers already make "slow", and
depth is what turns "slow" into "stuck". The "major fluctuations" of BN do not show here:
the largest drop of any seed's validation accuracy from one epoch to the next is
{bn_worst_drop:.1f} points.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Learning rate × 10
#
# Thesis, with $\eta = 0.1$: "Batchnorm: higher accuracy & convergence speed than baseline;
# Vanilla model is stuck at random guessing... Score: batchnorm 3 – vanilla 0".

# %% tags=["remove-input"]
fig = figures.plot_learning_curves(board, "lr_x10", SETUP)

# %% slideshow={"slide_type": "subslide"}
verdict_lines("lr_x10")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
fast = row("lr_x10")
lr_gain = {arm: ex.compare(seed_values("lr_x10", arm), seed_values("baseline", arm)) for arm in ("BN", "vanilla")}
lr_curves = board.curves(SETUP, "lr_x10", "val_acc")
at_epoch_3 = {arm: 100 * float(np.nanmean(lr_curves[("", arm)][:, 2])) for arm in ("BN", "vanilla")}
claim("lr x 10: vanilla is not stuck (far above chance)", fast["mean_b"] > 80, vanilla=fast["mean_b"])
claim("lr x 10: the per-seed differences vary less than each arm does", fast["se"] * np.sqrt(SEEDS)
      < min(fast["sd_a"], fast["sd_b"]), sd_of_differences=fast["se"] * np.sqrt(SEEDS), sd_bn=fast["sd_a"],
      sd_vanilla=fast["sd_b"])
claim("lr x 10 and lr x 1 are not told apart by the rule for BN", lr_gain["BN"].outcome == "draw",
      diff=lr_gain["BN"].diff, margin=lr_gain["BN"].margin)
verdict_word = verdict_of(fast)
prose(f"""
The verdict is **{verdict_word}** ($d = {fast['diff']:+.2f}$ points, margin {fast['margin']:.2f}): the
per-seed differences are steady even though the spread of each arm is not. But the vanilla
network is not stuck at all: {fast['mean_b']:.0f} % on the test set, and after three epochs both arms
are at {min(at_epoch_3.values()):.0f} % validation accuracy or more (BN {at_epoch_3['BN']:.0f} %, vanilla
{at_epoch_3['vanilla']:.0f} %). Against its own baseline, the larger rate moves BN by
{lr_gain['BN'].diff:+.2f} points and vanilla by {lr_gain['vanilla'].diff:+.2f} — for BN within the margin
({lr_gain['BN'].margin:.2f}), so "higher accuracy than baseline" is not shown at this budget. A
three-layer MLP on standardized 8x8 images has small, well-behaved gradients; the talk's
exploding gradients with ReLU need more depth, or more steps at the large rate.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. $\mathcal N(0, 1)$ initialization
#
# Thesis: "Batchnorm: smooth learning but worse accuracy than baseline init; Vanilla model is
# stuck again. Score: batchnorm 4 – vanilla 0".

# %% tags=["remove-input"]
fig = figures.plot_learning_curves(board, "normal_init", SETUP)

# %% slideshow={"slide_type": "subslide"}
verdict_lines("normal_init")

# %% slideshow={"slide_type": "subslide"}
verdict_lines("normal_init_shallow")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
deep, shallow = row("normal_init"), row("normal_init_shallow")
bn_loss = ex.compare(seed_values("normal_init", "BN"), seed_values("baseline", "BN"))
fan_ins = (64, 100)  # the MLP's fan-ins: the input layer, then the hidden layers
scale = [np.sqrt(fan_in / 2) for fan_in in fan_ins]  # N(0, 1) std over Kaiming's sqrt(2 / fan_in)
torch.manual_seed(0)
digits = data.load_digits(flat=True)
vanilla_net = models.mlp(64, 10, hidden=(100, 100, 100), init="normal", init_std=1.0)
with torch.no_grad():
    logit_sd = float(vanilla_net(torch.as_tensor(digits.x_train, dtype=torch.float32)).std())
claim("N(0, 1) init: vanilla stuck near chance on the thesis' MLP", deep["mean_b"] < 2 * CHANCE,
      vanilla=deep["mean_b"], chance=CHANCE)
claim("N(0, 1) init: BN ahead by a wide margin", deep["outcome"] == "a" and deep["diff"] > 30, diff=deep["diff"])
claim("N(0, 1) init: BN worse than BN with Kaiming init", bn_loss.outcome == "b", diff=bn_loss.diff,
      margin=bn_loss.margin)
claim("with 2 hidden layers of 128, vanilla learns under N(0, 1) init", shallow["mean_b"] > deep["mean_b"] + 30,
      shallow=shallow["mean_b"], deep=deep["mean_b"])
prose(f"""
Both halves of the claim reproduce on the thesis' network ({RUN_LABEL}). Vanilla is stuck:
{deep['mean_b']:.0f} % on the test set, where guessing scores {CHANCE:.0f} %. BN learns
({deep['mean_a']:.0f} %), but {-bn_loss.diff:.0f} points below BN with Kaiming init. Lecture 07
showed the same two effects from the inside.

Why vanilla is stuck: N(0, 1) weights are {scale[0]:.1f} to {scale[1]:.1f} times larger than
Kaiming's ($\\sqrt{{\\text{{fan\\_in}}/2}}$), and a ReLU network passes that factor on layer
after layer: at initialization the logits have a standard deviation of {logit_sd:,.0f}. The softmax is
saturated, and a step of SGD at $\\eta = 0.01$ moves such a network by far more than its
gradient predicts. Why BN is slow: BN makes the layer invariant to the scale of $W$, and
its gradient scales as $1/\\lVert W\\rVert$, so the steps shrink like $\\eta/\\lVert W\\rVert^2$ —
{scale[0] ** 2:.0f} to {scale[1] ** 2:.0f} times smaller (lecture 07's effective learning rate).

Depth matters: the ablation below the verdict trains the same init on the library's
default MLP, two hidden layers of 128, and there vanilla reaches {shallow['mean_b']:.0f} % (verdict:
{shallow['verdict']}). An earlier version of this scoreboard used that shallower network and
reported "vanilla ahead — does not reproduce"; the thesis' own network reproduces the claim.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Weight decay $\lambda = 5\cdot10^{-4}$
#
# Thesis: "Both models achieve higher accuracies than baseline models; Batchnorm model
# consistently ahead of vanilla counterpart. Score: batchnorm 5 – vanilla 0".

# %% tags=["remove-input"]
fig = figures.plot_learning_curves(board, "weight_decay", SETUP)

# %% slideshow={"slide_type": "subslide"}
verdict_lines("weight_decay")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
decay = row("weight_decay")
epochs_run = board.curves(SETUP, "weight_decay", "val_acc")[("", "BN")].shape[1]
steps = epochs_run * int(np.ceil(len(digits.y_train) / 64))
shrink = (1 - 0.01 * 5e-4) ** steps
decay_gain = {arm: ex.compare(seed_values("weight_decay", arm), seed_values("baseline", arm))
              for arm in ("BN", "vanilla")}
claim("weight decay 5e-4: neither arm measurably better than its baseline at this budget",
      all(v.outcome == "draw" for v in decay_gain.values()),
      bn=decay_gain["BN"].diff, vanilla=decay_gain["vanilla"].diff)
verdict_word = verdict_of(decay)
prose(f"""
Compare with the baseline slide: the curves are almost the same. With $\\lambda = 5\\cdot10^{{-4}}$
and $\\eta = 0.01$ the decay multiplies the weights by $1 - \\eta\\lambda$ per step; over the
{steps} steps of these runs that is a factor of {shrink:.4f} — nothing a network notices
(lecture 07 used $\\lambda = 0.03$ to see the effect). Against their baselines the two arms move by
{decay_gain['BN'].diff:+.2f} (BN) and {decay_gain['vanilla'].diff:+.2f} points (vanilla): "both higher than
baseline" is not shown. The BN-vs-vanilla verdict of this row, **{verdict_word}**, is the baseline's
comparison again, up to the one or two test images that move when the weights move a little.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Dropout (half the units dropped)
#
# Thesis: "Both models converge much slower than before, best accuracies! Batchnorm not
# ahead of vanilla counterpart. Score: batchnorm 5 – vanilla 0 (we'll call this a draw!)".

# %%
fig = figures.plot_learning_curves(board, "dropout", SETUP)

# %% slideshow={"slide_type": "subslide"}
verdict_lines("dropout")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
drop = row("dropout")
drop_gain = {arm: ex.compare(seed_values("dropout", arm), seed_values("baseline", arm)) for arm in ("BN", "vanilla")}
claim("dropout: BN and vanilla a draw, as the talk says", drop["outcome"] == "draw", diff=drop["diff"],
      margin=drop["margin"])
claim("dropout: both arms below their baselines at this budget", all(v.outcome == "b" for v in drop_gain.values()),
      bn=drop_gain["BN"].diff, vanilla=drop_gain["vanilla"].diff)
prose(f"""
A draw, as the talk says ($d = {drop['diff']:+.2f}$, margin {drop['margin']:.2f}). "Converge much
slower" shows too; "best accuracies" does not, at this budget: against their baselines
the dropout networks lose {-drop_gain['BN'].diff:.1f} (BN) and {-drop_gain['vanilla'].diff:.1f} points
(vanilla) — after {RUN_LABEL.split(', ')[1]} they are still catching up, and the talk's runs went to
convergence. The talk's guess "batch statistics might be of lower value with dropped
activations": lecture 06 measured the variance shift that dropout before BN causes between
training and test.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Batch sizes
#
# Thesis: "Batchnorm ahead independent of batch size; General trend: smaller batch sizes
# work better (for our models). Score: batchnorm 6 – vanilla 0".

# %%
fig = figures.plot_learning_curves(board, "batch_size", SETUP)

# %% slideshow={"slide_type": "subslide"}
verdict_lines("batch_size")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
batch_rows = [r for r in board.rows if r["setup"] == SETUP and r["condition"] == "batch_size"]
bn_ahead_at = [r["cell"] for r in batch_rows if r["outcome"] == "a"]
vanilla_ahead_at = [r["cell"] for r in batch_rows if r["outcome"] == "b"]
sizes = [int(r["cell"].split()[1]) for r in batch_rows]
steps_per_epoch = {b: int(np.ceil(len(digits.y_train) / b)) for b in sizes}
small_vs_large = {arm: ex.compare(seed_values("batch_size", arm, f"batch {min(sizes)}"),
                                  seed_values("batch_size", arm, f"batch {max(sizes)}")) for arm in ("BN", "vanilla")}
claim("smaller batches are better at a fixed epoch budget, in both arms",
      all(v.outcome == "a" for v in small_vs_large.values()), bn=small_vs_large["BN"].diff,
      vanilla=small_vs_large["vanilla"].diff)
claim("BN is not ahead at every batch size", len(bn_ahead_at) < len(batch_rows), bn_ahead_at=bn_ahead_at)
cells_text = ", ".join(bn_ahead_at) if bn_ahead_at else "no batch size"
vanilla_text = f" and vanilla at {', '.join(vanilla_ahead_at)}" if vanilla_ahead_at else ""
batch_verdict = next(c["verdict"] for c in board.conditions if (c["setup"], c["condition"]) == (SETUP, "batch_size"))
prose(f"""
Smaller batches are better, clearly (batch {min(sizes)} over batch {max(sizes)}:
{small_vs_large['BN'].diff:+.0f} points with BN, {small_vs_large['vanilla'].diff:+.0f} without) — but look
at why: the learning rate is fixed at $\\eta = 0.01$ and so are the epochs, so batch {max(sizes)} takes
{steps_per_epoch[max(sizes)]} steps per epoch where batch {min(sizes)} takes {steps_per_epoch[min(sizes)]}.
Large batches are simply undertrained after the same number of epochs (the talk's long runs
with early stopping hide this only partly). The talk's own reason for mini-batches, "Noisy
updates help escape local minima!", is its claim: these runs cannot tell the noise of small
batches from their larger number of steps. "BN ahead at every batch size" does not hold
here: BN is ahead at {cells_text}{vanilla_text}; the other cells are draws, and the condition takes the majority verdict of its cells: **{batch_verdict}**. Lecture 05
showed the other end: at batch 2–4, BN itself breaks.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Time per epoch: "we have to admit defeat here"
#
# Both networks trained in one process, epochs alternating, CPU time of one thread
# (a fairer clock than wall time on a shared machine); median over epochs, mean ± sd
# over seeds.

# %%
fig = figures.plot_wall_time(board, SETUP)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## BN's overhead: thesis (CNN, GPU) vs ours (MLP, CPU)

# Ours per seed: BN's time over vanilla's *in the same run* (the two arms alternated).

# %%
for r in (r for r in board.rows if r["setup"] == SETUP and r["condition"] == "wall_time"):
    bn, vanilla = seed_values("wall_time", "BN", r["cell"]), seed_values("wall_time", "vanilla", r["cell"])
    per_seed = " ".join(f"{100 * (b / v - 1):+4.0f}" for b, v in zip(bn, vanilla))
    thesis = THESIS_OVERHEAD[int(r["cell"].split()[1])]
    print(f"{r['cell']:>10s}: thesis {thesis:4.1f} %   ours per seed {per_seed} %   verdict: {r['verdict']}")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
time_rows = [r for r in board.rows if r["setup"] == SETUP and r["condition"] == "wall_time"]
overheads = [100 * (b / v - 1) for r in time_rows
             for b, v in zip(seed_values("wall_time", "BN", r["cell"]), seed_values("wall_time", "vanilla", r["cell"]))]
vanilla_cells = sum(r["outcome"] == "b" for r in time_rows)
epoch_ms = {int(r["cell"].split()[1]): mean("wall_time", "vanilla", r["cell"]) for r in time_rows}
claim("BN is slower per epoch in every seed of every cell", min(overheads) > 0, smallest=min(overheads))
claim("an epoch in large batches takes less time than in small ones",
      epoch_ms[max(epoch_ms)] < epoch_ms[min(epoch_ms)] / 2, **{f"batch_{b}_ms": t for b, t in epoch_ms.items()})
prose(f"""
Within each run BN is slower in every cell and every seed: {min(overheads):.0f} % to {max(overheads):.0f} %
more CPU time per epoch, against the talk's "mean overhead 15.2% to 19.7%" (a CNN on a GPU).
Because the two arms of a seed are timed in the same run, epochs alternating, the rule
compares them *paired*: the machine's load, which both arms of a run share, drops out,
and the rule calls vanilla ahead in {vanilla_cells} of {len(time_rows)} cells. (An unpaired rule, which
compares the means over seeds, is swamped on a shared machine by the spread from run to
run.) Timings are the one part of this notebook that changes from run to run. The same
images cost less in larger batches: an epoch of the vanilla network takes {epoch_ms[min(epoch_ms)]:.0f} ms
in batches of {min(epoch_ms)} and {epoch_ms[max(epoch_ms)]:.0f} ms in batches of {max(epoch_ms)} — Ioffe &
Szegedy's "computation over a batch can be much more efficient than m computations for
individual examples" (quoted in Silva's slides), here on one CPU thread.

Where our overhead comes from: a tiny MLP, so BN's per-call work (two reductions over the
batch, the backward through the statistics) is large next to the small matrix products.
The UCLA discussion sheet saw "roughly the same run time needed for each epoch (24-25 s)"
with and without BN for a CNN on CIFAR-10 — there convolutions dominate the time and BN's
elementwise work is a small part; its network and hardware are not stated, so this is
their claim, not ours to check. The talk's footnote: "Your mileage may vary!" (CUDA 7.5,
cuDNN v4).
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The scoreboard
#
# Each row: BN minus vanilla in test accuracy, with the verdict margin as the bar.

# %%
fig = figures.plot_scoreboard(board, SETUP)

# %% slideshow={"slide_type": "subslide"}
for setup, score in board.tally.items():
    print(f"{setup}: batchnorm {score['BN']} – vanilla {score['vanilla']} – draws {score['draw']}"
          f"   (thesis: batchnorm {ex.THESIS_TALLY['BN']} – vanilla {ex.THESIS_TALLY['vanilla']} – draws 1)")


# %% [markdown] slideshow={"slide_type": "slide"}
# ## Row by row: the thesis' score against ours

# %%
table = ["| experiment | BN | vanilla | our verdict (cells BN / draw / vanilla) | thesis | reproduces |",
         "|---|---|---|---|---|---|"]
for c in (c for c in board.conditions if c["setup"] == SETUP and c["tally"]):
    table.append(f"| {c['title']} | {arm_text(c['condition'], 'BN')} | {arm_text(c['condition'], 'vanilla')} "
                 f"| {c['verdict']} ({c['cells']}) | {c['expected']} | **{c['reproduces']}** |")
Markdown("\n".join(table))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
tally_rows = [c for c in board.conditions if c["setup"] == SETUP and c["tally"]]
reproduced = [c["title"] for c in tally_rows if c["reproduces"] == "yes"]
not_reproduced = [c["title"] for c in tally_rows if c["reproduces"] == "no"]
tally_names = {c["condition"] for c in tally_rows}
close_calls = [f"{r['condition']} {r['cell']}".strip() for r in board.rows
               if r["setup"] == SETUP and r["condition"] in tally_names and r["metric"] == "test_acc"
               and abs(abs(r["diff"]) - r["margin"]) < 0.5]
claim("most of the thesis' rows reproduce on its own MLP", len(reproduced) > len(not_reproduced),
      reproduced=reproduced, not_reproduced=not_reproduced)
prose(f"""
Read the table with the previous slides. On the thesis' network, {len(reproduced)} of the
{len(tally_rows)} rows reproduce: {', '.join(reproduced)}. Not reproduced: {', '.join(not_reproduced)}.
Rows whose difference lies within half a point of its margin, so that one test image more
or less, or a different rule (exercise 1), could flip them: {', '.join(close_calls) or 'none'}. This is
quick mode, a short budget ({RUN_LABEL}): run `FULL = True` (or read docs/scoreboards/full.md)
for thesis-length runs before quoting a score.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The talk's side claims, judged by the same rule
#
# The score lines hide more claims: "BN … higher accuracy than baseline", "both models
# achieve higher accuracies than baseline", "smaller batch sizes work better".

# %%
SIDE_CLAIMS = [  # (the talk's claim, arm A as (condition, arm, cell), arm B, the outcome it predicts)
    ("η = 0.1 beats η = 0.01 (BN)", ("lr_x10", "BN"), ("baseline", "BN"), "a"),
    ("N(0,1) init worse than Kaiming (BN)", ("normal_init", "BN"), ("baseline", "BN"), "b"),
    ("weight decay beats baseline (BN)", ("weight_decay", "BN"), ("baseline", "BN"), "a"),
    ("weight decay beats baseline (vanilla)", ("weight_decay", "vanilla"), ("baseline", "vanilla"), "a"),
    ("dropout: best accuracies (BN)", ("dropout", "BN"), ("baseline", "BN"), "a"),
    ("dropout: best accuracies (vanilla)", ("dropout", "vanilla"), ("baseline", "vanilla"), "a"),
    ("batch 32 beats batch 1024 (BN)", ("batch_size", "BN", "batch 32"), ("batch_size", "BN", "batch 1024"), "a"),
    ("batch 32 beats batch 1024 (vanilla)", ("batch_size", "vanilla", "batch 32"),
     ("batch_size", "vanilla", "batch 1024"), "a"),
]
side_verdicts = {}
for side_claim, a, b, expected in SIDE_CLAIMS:
    v = side_verdicts[side_claim] = ex.compare(seed_values(*a), seed_values(*b))
    print(f"{side_claim:38s} d = {v.diff:+6.2f}, margin {v.margin:4.2f} "
          f"-> reproduces: {'yes' if v.outcome == expected else 'no'}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## "Vanilla model is stuck at random guessing"
#
# Guessing scores one in ten. The vanilla network's test accuracy where the talk saw it
# stuck:

# %%
for name in ("sigmoid", "lr_x10", "normal_init"):
    print(f"{name:12s} vanilla {arm_text(name, 'vanilla'):>16s}   (chance {CHANCE:.0f} %)")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
vanilla_mean = {name: mean(name, "vanilla") for name in ("sigmoid", "lr_x10", "normal_init", "normal_init_shallow")}
claim("vanilla stuck near chance only under N(0, 1) init", vanilla_mean["normal_init"] < 2 * CHANCE
      and vanilla_mean["sigmoid"] > 2 * CHANCE and vanilla_mean["lr_x10"] > 80, **vanilla_mean)
prose(f"""
Reproduced for the $\\mathcal N(0, 1)$ init ({vanilla_mean['normal_init']:.0f} %), half for sigmoid
({vanilla_mean['sigmoid']:.0f} %: far behind BN, but learning), not for the large learning rate
({vanilla_mean['lr_x10']:.0f} %). Our reading: the failures the talk shows are failures of *depth* —
vanishing gradients through many sigmoids, exploding activations through many ReLU layers
with large weights or steps. The ablation makes the point: with two hidden layers instead
of three, the same $\\mathcal N(0, 1)$ init leaves vanilla at {vanilla_mean['normal_init_shallow']:.0f} %, not
stuck. Lecture 07 measured the same init from the inside (activations and gradients layer
by layer). The talk's deep CNN and the UCLA sheet's CIFAR-10 example ("79% after 50 epochs
and with batch normalization it increased to 87%"; "the validation loss reduces substantially
with batch normalization") are deeper problems than 8x8 digits: their claims, not measured here.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Part 2 — Why does BN work? The original answer
#
# Ioffe & Szegedy (2015), quoted in Silva's slides:
#
# > "Training Deep Neural Networks is complicated by the fact that the distribution of each
# > layer's inputs changes during training, as the parameters of the previous layers change.
# > […] We refer to this phenomenon as *internal covariate shift*, and address the problem
# > by normalizing layer inputs."
#
# The BN notes and the UCLA discussion sheet tell the same story; so does the thesis talk:
# "Layers can 'focus' on the predictive relationship, rather than adapting to shift in
# layer distributions".

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Doubts in the seeds
#
# * Raschka's slides: "there is actually no guarantee or evidence that BatchNorm helps
#   with covariate shift. In my opinion, BatchNorm just provides additional parameters
#   that will help layers to learn a little bit more independently."
# * Santurkar et al. (2018), quoted in Raschka's and Silva's slides: "such distributional
#   stability of layer inputs has little to do with the success of BatchNorm. Instead, […]
#   it makes the optimization landscape significantly smoother. This smoothness induces a
#   more predictive and stable behavior of the gradients, allowing for faster training."
#
# Two tests from their paper, on our data: **noisy BN** and **the gradient along the gradient**.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Test 1: make the distributions unstable on purpose
#
# After every BN layer, `BatchNormNoise` redraws, at every step and for every unit $j$,
#
# $$y_{ij} = s_j\,x_{ij} + m_j + \tau\,\xi_{ij},\qquad s_j \sim U(0.5, 2.5),\quad
# m_j \sim U(-0.5, 1.5),\quad \xi_{ij}\sim\mathcal N(0,1),\ \tau = 0.1 .$$
#
# If BN helped *by* keeping each layer's input distribution stable, this network should
# train like vanilla. Three steps of the noise on a unit-variance batch:

# %%
torch.manual_seed(0)
noise, z = ex.BatchNormNoise(4), torch.randn(512, 4)  # z: what BN hands on (mean 0, sd 1 per unit)
for step in range(3):
    y = noise(z)
    print(f"step {step}: means {np.round(y.mean(0).numpy(), 2)}   sds {np.round(y.std(0).numpy(), 2)}")

# %% [markdown] slideshow={"slide_type": "notes"}
# Each unit's mean and spread jump at every step: the next layer sees a distribution that
# shifts all the time — much more than the drift of a vanilla network (lecture 01 measured
# that drift). Santurkar et al. do not state their noise parameters in the seed material;
# these are the library's, stated in its docstring. In eval mode the module is the identity
# by default; an extra arm applies the noise's average instead: the mean of
# $U(0.5, 2.5)$ as the scale and the mean of $U(-0.5, 1.5)$ as the shift.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Noisy BN: training loss (mean ± sd over seeds)
#
# Santurkar et al. (Figure 2, in Raschka's slides): "The 'noisy' BatchNorm model nearly
# matches the performance of standard BatchNorm model, despite complete distributional
# instability."

# %%
fig = figures.plot_learning_curves(board, "noisy_bn", SETUP, what="train_loss")

# %% slideshow={"slide_type": "subslide"}
verdict_lines("noisy_bn")

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
noisy_loss = {arm: np.nanmean(curve, axis=0) for (_, arm), curve in
              board.curves(SETUP, "noisy_bn", "train_loss").items()}
noisy_vs_bn, noisy_mean_vs_bn = row("noisy_bn", a="noisy BN"), row("noisy_bn", a="noisy BN (mean at test)")
final = {arm: float(curve[~np.isnan(curve)][-1]) for arm, curve in noisy_loss.items()}
claim("noisy BN trains: its training loss falls to a small fraction of where it started",
      final["noisy BN"] < noisy_loss["noisy BN"][0] / 5, first=noisy_loss["noisy BN"][0], last=final["noisy BN"])
claim("with the identity at test time noisy BN loses against BN", noisy_vs_bn["outcome"] == "b",
      diff=noisy_vs_bn["diff"], margin=noisy_vs_bn["margin"])
claim("with the noise's mean at test time noisy BN and BN are a draw", noisy_mean_vs_bn["outcome"] == "draw",
      diff=noisy_mean_vs_bn["diff"], margin=noisy_mean_vs_bn["margin"])
claim("both BN arms end with a higher training loss than vanilla",
      min(final["BN"], final["noisy BN"]) > final["vanilla"], **final)
prose(f"""
Read the training curves first — that is the optimization question Santurkar et al. ask.
Noisy BN trains: its training loss falls from {noisy_loss['noisy BN'][0]:.2f} after the first epoch to
{final['noisy BN']:.2f} after the last, within a factor of {final['noisy BN'] / final['BN']:.1f} of BN's
({final['BN']:.2f}). Distributions that shift at every step slowed it down, but not to a network that
cannot learn. Then the test accuracies: with the identity at test time noisy BN loses against BN
by {-noisy_vs_bn['diff']:.0f} points (with a seed spread of {noisy_vs_bn['sd_a']:.0f}) — "nearly matches" does not
reproduce in that form. But the layer after the noise was trained on inputs scaled and shifted by
the noise's means; the identity at test time is a train/test mismatch, like dropout without
rescaling (lecture 06). With the noise's mean applied at test time, noisy BN and BN are a draw
($d = {noisy_mean_vs_bn['diff']:+.2f}$, margin {noisy_mean_vs_bn['margin']:.2f}). Our reading: internal
covariate shift — at least its reduction — is not what makes BN work here. (Both BN arms end with a
higher training loss than vanilla, {final['vanilla']:.3f}, as on the baseline slide.)
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Test 2: how far can we trust the gradient?
#
# At points $\theta$ along training, with the batch loss $L$ and $g = \nabla L(\theta)$, step
# along $-g$ with step sizes $\eta \in [0.005, 0.4]$ (same batch, same noise draw):
#
# * loss landscape: $L(\theta - \eta g)$ — its range over $\eta$;
# * gradient predictiveness: $\lVert \nabla L(\theta - \eta g) - g \rVert_2$;
# * effective $\beta$-smoothness: $\max_\eta \lVert \nabla L(\theta - \eta g) - g\rVert_2 / \lVert \eta g\rVert_2$.
#
# Small values: the gradient stays valid further away, so larger steps are safe
# (Santurkar et al., Figure 4 — from their paper, not the seed material).

# %%
smooth = ex.smoothness(arms=("BN", "vanilla", "noisy BN"), seeds=SEEDS, **SMOOTHNESS, out=OUT, progress=False)
print(smooth.table())

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## How far does a step along $-g$ keep paying?
#
# $L(\theta - \eta g) - L(\theta)$, averaged over seeds and probed points:

# %%
change = smooth.loss - smooth.loss0[..., None]  # (arm, seed, point, step size)
print("η        " + "".join(f"{eta:8g}" for eta in smooth.step_sizes))
for arm, values in zip(smooth.arms, change):
    print(f"{arm:9s}" + "".join(f"{v:+8.3f}" for v in values.mean(axis=(0, 1))))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Along the training trajectory

# %%
fig = figures.plot_smoothness(smooth)

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
per_seed = {name: dict(zip(smooth.arms, np.nanmean(values, axis=-1)))  # (arm) -> per-seed means over points
            for name, values in (("grad", smooth.max_grad_change()), ("beta", smooth.beta()),
                                 ("range", smooth.loss_range()))}
grad_verdict = stats.compare(per_seed["grad"]["BN"], per_seed["grad"]["vanilla"], higher_is_better=False, paired=True)
beta_verdict = stats.compare(per_seed["beta"]["BN"], per_seed["beta"]["vanilla"], higher_is_better=False, paired=True)
mean_change = dict(zip(smooth.arms, change.mean(axis=(1, 2))))  # arm -> loss change per step size
grad_ratio = np.mean(per_seed["grad"]["BN"]) / np.mean(per_seed["grad"]["vanilla"])
largest = smooth.step_sizes[-1]
vanilla_best = smooth.step_sizes[int(np.argmin(mean_change["vanilla"]))]
claim("BN's gradient changes less along the gradient than vanilla's (paired over seeds)",
      grad_verdict.outcome == "a", ratio=grad_ratio, margin=grad_verdict.margin)
claim("with BN the loss keeps falling up to the largest probed step",
      bool(np.all(np.diff(mean_change["BN"]) < 0)), change=mean_change["BN"])
claim("vanilla's decrease turns back up before the largest step", vanilla_best < largest, best_step=vanilla_best)
claim("noisy BN's gradient changes the most of the three", np.mean(per_seed["grad"]["noisy BN"]) > max(
      np.mean(per_seed["grad"][arm]) for arm in ("BN", "vanilla")), **{k: np.mean(v) for k, v in per_seed["grad"].items()})
beta_text = {"a": "lower for BN", "b": "lower for vanilla", "draw": "not told apart by the rule"}[beta_verdict.outcome]
prose(f"""
What our measurement says ({SEEDS} seeds, paired): BN's gradient changes along the gradient
by {grad_ratio:.2f} times as much as vanilla's — Santurkar et al.'s direction — and the effective
β-smoothness is {beta_text} ($d = {beta_verdict.diff:+.2f}$, margin {beta_verdict.margin:.2f}). The
loss-range column is *larger* for BN, and the table of loss changes shows why: with BN the loss
keeps falling up to $\\eta = {largest:g}$ ({largest / 0.01:.0f} times the training rate), while vanilla's
decrease is largest at $\\eta = {vanilla_best:g}$ and turns back up after it. A large range here is a
large useful decrease, so that column alone is no smoothness measure. Noisy BN is the least smooth
of the three — yet it trains (test 1). On our data, then: stable distributions are not needed;
a gradient that stays valid over larger steps is part of BN's effect, and it pays off when the
steps are large (experiment 3).
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The thesis' own "why", set against our measurements

# %% tags=["remove-input"]
baseline_word = verdict_of(base)
prose(f"""
| the talk: "why does batchnorm work?" | here |
|---|---|
| "regularizing effect" (different batches) | baseline: BN ends with {loss_ratio:.1f} times vanilla's training loss; test accuracy: {baseline_word} |
| "vanishing and exploding gradients can be avoided due to scale and shift parameters" | sigmoid and $\\mathcal N(0, 1)$: BN far ahead; lecture 07: gradients through depth |
| "more stable gradient propagation" | the gradient changes {grad_ratio:.2f} times as much along the gradient with BN (test 2) |
| "layers can 'focus' … rather than adapting to shift in layer distributions" | noisy BN with the test-time mean: shifting distributions, a draw with BN (test 1) |
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## The thesis' practical recommendations, measured
#
# Each arm's change of mean test accuracy (points) against its own ReLU baseline, with the
# rule's verdict; last rows: BN's lead where convergence was "problematic".

# %% tags=["remove-input"]
def against_baseline(condition, arm):
    """One arm's change of mean test accuracy against its baseline, with the rule's verdict."""
    v = ex.compare(seed_values(condition, arm), seed_values("baseline", arm))
    word = {"a": "better", "b": "worse", "draw": "draw"}[v.outcome]
    return f"{v.diff:+.1f} ({word})"


problematic = {name: row(name) for name in ("sigmoid", "normal_init")}
recommendations = [
    ("Initial learning rate & its decay are crucial", "η × 10", "lr_x10"),
    ("Use ReLU", "sigmoid instead", "sigmoid"),
    ("Use dropout!", "dropout 0.5", "dropout"),
    ("Weight decay helps (conclusion)", "λ = 5e-4", "weight_decay"),
]
table = ["| the talk recommends | measured | BN | vanilla |", "|---|---|---|---|"]
table += [f"| {advice} | {what} | {against_baseline(name, 'BN')} | {against_baseline(name, 'vanilla')} |"
          for advice, what, name in recommendations]
table += [f"| Use batchnorm if convergence seems problematic | BN − vanilla, {name} | {r['diff']:+.1f} | {r['verdict']} |"
          for name, r in problematic.items()]
table += ["| Try residual connections and inception | not measured (an MLP) | | |"]
Markdown("\n".join(table))

# %% tags=["remove-input"] slideshow={"slide_type": "notes"}
sigmoid_loss = {arm: ex.compare(seed_values("sigmoid", arm), seed_values("baseline", arm)) for arm in ("BN", "vanilla")}
claim("ReLU over sigmoid: sigmoid costs vanilla far more than BN",
      -sigmoid_loss["vanilla"].diff > 5 * max(-sigmoid_loss["BN"].diff, 1.0),
      bn=sigmoid_loss["BN"].diff, vanilla=sigmoid_loss["vanilla"].diff)
claim("BN helps where convergence is problematic (sigmoid, N(0, 1) init)",
      all(r["outcome"] == "a" for r in problematic.values()), **{k: r["diff"] for k, r in problematic.items()})
lr_words = {"a": "helps", "b": "hurts", "draw": "does not measurably change"}
if lr_gain["BN"].outcome == lr_gain["vanilla"].outcome:
    lr_text = f"{lr_words[lr_gain['BN'].outcome]} either arm"
else:
    lr_text = f"{lr_words[lr_gain['BN'].outcome]} BN and {lr_words[lr_gain['vanilla'].outcome]} vanilla"
prose(f"""
The larger learning rate {lr_text} at this budget (the rule against each arm's baseline). ReLU over sigmoid holds, hugely so
without BN ({sigmoid_loss['vanilla'].diff:+.0f} points against {sigmoid_loss['BN'].diff:+.1f} with BN). "Use
dropout!" does not show: dropout slows training, and {RUN_LABEL.split(', ')[1]} are not enough to collect its
benefit (the talk's runs went to convergence). Weight decay $5\\cdot 10^{{-4}}$ changes nothing measurable
in {steps} steps. "Use BN if convergence seems problematic" holds for both problematic set-ups
here, sigmoid and the $\\mathcal N(0, 1)$ init. Quote the talk's advice with its conditions: deep
networks, long training, GPUs.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary

# %% tags=["remove-input"]
tally = board.tally[SETUP]
prose(f"""
* A claim needs a rule: $d$ against $\\max(2\\,\\mathrm{{SE}}, \\delta)$ over seeds, paired by seed; with
  {SEEDS} seeds a difference of one or two points can still be a draw.
* The thesis' scoreboard on digits, with the thesis' MLP ({MODE} mode, {RUN_LABEL}): batchnorm
  {tally['BN']} – vanilla {tally['vanilla']} – draws {tally['draw']}, against the talk's "6 – 1". Reproduced:
  {', '.join(reproduced)}.
* "Vanilla stuck at random guessing" reproduces for the $\\mathcal N(0, 1)$ init on the
  thesis' three hidden layers ({vanilla_mean['normal_init']:.0f} %) and not on two
  ({vanilla_mean['normal_init_shallow']:.0f} %): those failures need depth. Smaller batches are better at a
  fixed epoch budget, largely because they take more steps.
* BN per epoch: {min(overheads):.0f} % to {max(overheads):.0f} % slower here, every seed and cell.
* Why BN works: noisy BN (unstable distributions on purpose) trains, and matches BN once the test
  time applies the noise's mean; BN's gradient changes {grad_ratio:.2f} times as much as vanilla's along
  the gradient, and steps {largest / 0.01:.0f} times the learning rate still pay. Internal covariate
  shift is not the explanation on our data; smoothness is part of one.
""")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# 1. **The rule decides.** Re-judge the cached results with other rules: (a) margin
#    $= \max(1\cdot\mathrm{SE}, 0.5)$, (b) margin $= 2\,\mathrm{SE}$ with no minimum effect,
#    (c) $\delta = 1$ point. Which verdicts and which tally change? (Use `board.runs`;
#    nothing needs retraining.)
# 2. **How many seeds?** With a seed spread of $s = 1$ point in both arms, what is the
#    smallest difference the rule calls "ahead" with $n = 3, 5, 10$ seeds? If the dropout
#    row's means and spreads stayed as measured, how many seeds would the rule need to
#    decide it?
# 3. **One more condition.** Run the library's `elu` condition (the talk's backup slide
#    "Batchnorm + ReLU outperforms ELU") with 3 seeds at 10 epochs. Does "batchnorm + ReLU:
#    slightly ahead" reproduce? Compare with lecture 05's verdicts.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ## Exercises (continued)
#
# 4. **Noisy BN at test time.** With $s \sim U(0.5, 2.5)$ and $m \sim U(-0.5, 1.5)$, what mean
#    and spread does the next layer see on average in training, and at test time with the
#    identity? Check with `ex.BatchNormNoise` in train and eval mode (`test_time="identity"`
#    and `"mean"`), and explain the two noisy-BN rows of the scoreboard.
# 5. **Smoothness at a large learning rate.** Rerun `ex.smoothness` for BN and vanilla with
#    `overrides={"lr": 0.1}` (3 seeds, 3 epochs, 8 points). Does BN's advantage in gradient
#    predictiveness grow? Relate it to experiment 3.
# 6. **"SGD: what could possibly go wrong?"** (the talk's backup slide). For
#    $\hat y = x\,w_1 w_2\cdots w_l$ and $\partial L/\partial\hat y = 1$, take one gradient step
#    from $x = w_i = 1$ with $\eta = 0.1$, $l = 10$. Compare the first-order prediction of the
#    change of $\hat y$ with the actual change. What does this say about gradient
#    predictiveness in deep networks, and about Ioffe & Szegedy's "small changes to the
#    network parameters amplify as the network becomes deeper"?
