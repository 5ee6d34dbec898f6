# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Problem set 4 — The batch-norm experiments
#
# *normlab, normalization in deep learning* · about 2–3 hours · **30 points** (18
# autograded, 12 for written answers graded by hand)
#
# Schilling's thesis talk tests batch norm the way a careful practitioner would: one
# network with and one without BN, trained with the same recipe, under conditions that
# make training hard — sigmoid activations, a learning rate $10\times$ larger, weights
# drawn from $\mathcal N(0, 1)$, weight decay, dropout — and keeps score: *"batchnorm 6 –
# vanilla 1"*. Santurkar et al. (2018) then ask *why* BN helps, and answer: not by
# reducing "internal covariate shift", but by making the loss landscape smoother, so
# that the gradient stays predictive over larger steps.
#
# In this problem set you run those experiments yourself, on a budget: the 8×8 digits of
# scikit-learn instead of MNIST and CIFAR, an MLP with three hidden layers of 128 units,
# ten epochs, three seeds. You
#
# 1. write the function that trains one network under one condition (`run_condition`);
# 2. measure convergence speed (`epochs_to_accuracy`);
# 3. run the grid of conditions and seeds, and judge it with a rule that respects the
#    seed-to-seed noise (`scoreboard`);
# 4. measure the smoothness that Santurkar et al. describe (`probe_along_gradient`);
# 5. write down what your numbers say about the thesis's claims (graded by hand).
#
# **Budget.** Run as it is, the whole notebook takes about a minute or two on a laptop
# CPU. While the autograder runs it, the environment variable `NBGRADER_EXECUTION` is
# set and the experiments are shortened (fewer epochs, a subset of the training images,
# fewer seeds) — never skipped. The tests call your functions with their own small
# settings, so they do not depend on your numbers.
#
# **How this is graded.** Visible tests after each function (they say what is wrong),
# hidden tests on the same functions, and your written answers (Part 6), which a TA
# reads. Before you submit, save the notebook (Ctrl-S) and run its last cell: it runs the
# saved notebook the way the grader does, in a separate fresh kernel, and prints the points
# of every visible test. From a terminal, `normlab check ps4.ipynb` does the same.
#
# **Rules.** Write code where it says `# YOUR CODE HERE` and delete the
# `raise NotImplementedError()`. Use `normlab.models.mlp`, `normlab.train.fit` and
# `normlab.train.evaluate` (read their docstrings: `help(train.fit)`), not
# `normlab.experiments`, `normlab.stats` or `normlab.references`, which do these tasks for
# the lectures and the grader: a test that finds your function calling into them fails.
# The tests call your functions on copies of their inputs (models, histories, arrays)
# and fail a function that changes its inputs, or `BASE` and `CONDITIONS`, in place. Write
# your answers in the cells that say "YOUR ANSWER HERE". Do not delete or copy cells; a
# test cell that prints a warning scores 0. *Restart and run all* before you submit.

# %% nbgrader={"grade": false, "grade_id": "ps4_setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import copy
import dataclasses
import inspect
import os
from collections import namedtuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from normlab import data, models, train
from normlab.grading_helpers import assert_close, assert_no_torch_calls, assert_shape, checked_call, describe_mismatch

torch.set_num_threads(1)  # small networks: one thread is as fast, and fair to a shared machine
np.set_printoptions(precision=4, suppress=True)

# While the autograder runs this notebook the experiments are shorter (never skipped).
GRADING = "NBGRADER_EXECUTION" in os.environ
EPOCHS = 3 if GRADING else 10         # training epochs per run
TRAIN_LIMIT = 500 if GRADING else None  # training images used (None: all 1258)
SEEDS = (0, 1) if GRADING else (0, 1, 2)

digits = data.load_digits(flat=True)  # (N, 64) images, standardized with train statistics
HIDDEN = (128, 128, 128)              # the MLP's hidden widths
print(digits)
print(f"budget: {EPOCHS} epochs, {TRAIN_LIMIT or len(digits.y_train)} training images, seeds {SEEDS}")


def digits_loaders(seed, train_limit=None, batch_size=64):
    """(train, val, test) loaders of the digits. The train loader uses the first
    `train_limit` training images (all when None) and reshuffles them every epoch with a
    generator seeded by `seed`; val and test are never shuffled."""
    n = len(digits.y_train) if train_limit is None else train_limit
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(TensorDataset(digits.x_train[:n], digits.y_train[:n]), batch_size=batch_size,
                              shuffle=True, generator=generator)
    val_loader = DataLoader(TensorDataset(digits.x_val, digits.y_val), batch_size=512)
    test_loader = DataLoader(TensorDataset(digits.x_test, digits.y_test), batch_size=512)
    return train_loader, val_loader, test_loader


# One trained network: its History (see help(train.History)), its test accuracy (a float), the model.
Run = namedtuple("Run", ["history", "test_acc", "model"])

# How the tests call your functions (you need not read on): `checked(function, ...)`.
LIBRARY = ("normlab.experiments", "normlab.stats", "normlab.references")  # see the Rules


def _settings():
    """BASE and CONDITIONS entry by entry, copied."""
    entries = {f"BASE[{key!r}]": value for key, value in BASE.items()}
    for name, changes in CONDITIONS.items():
        entries |= {f"CONDITIONS[{name!r}][{key!r}]": value for key, value in changes.items()}
    return copy.deepcopy(entries)


def _state(value):
    """A model's parameters, buffers and mode, or a History's fields, copied."""
    if isinstance(value, nn.Module):
        state = {key: tensor.clone() for key, tensor in value.state_dict().items()}
        return {**state, "model.training": value.training}
    return copy.deepcopy(dataclasses.asdict(value))


def _first_change(before, after):
    """The first entry that differs between two snapshots, in words; None if none does."""
    for key in {**before, **after}:
        old, new = before.get(key, "(missing)"), after.get(key, "(missing)")
        if isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor):
            if not torch.equal(old, new):
                return describe_mismatch(new, old, key, rtol=0, atol=0) or f"{key} changed"
        elif old != new:
            return f"{key} was {old!r} and is now {new!r}"
    return None


def checked(function, *args, **kwargs):
    """`function(*args, **kwargs)` as the tests call it: on copies of the arguments
    (`checked_call`; models and histories copied whole), failing if it changed one of them,
    or BASE and CONDITIONS, in place, or called into LIBRARY."""
    names = list(inspect.signature(function).parameters)
    args = [copy.deepcopy(a) if isinstance(a, (nn.Module, train.History)) else a for a in args]
    watched = {i: _state(a) for i, a in enumerate(args) if isinstance(a, (nn.Module, train.History))}
    settings = _settings()
    result = assert_no_torch_calls(lambda: checked_call(function, *args, **kwargs), forbidden=(), modules=LIBRARY,
                                   what=function.__name__)
    for i, before in watched.items():
        change = _first_change(before, _state(args[i]))
        if change:
            raise AssertionError(f"{function.__name__} modified its argument {names[i]} in place ({change}): "
                                 "work on a copy (copy.deepcopy) and leave the caller's as it was")
    change = _first_change(settings, _settings())
    if change:
        raise AssertionError(f"{function.__name__} modified the given settings in place ({change}): build "
                             "a new dict, {**BASE, **CONDITIONS[name]}, and leave BASE and CONDITIONS as they are")
    return result


def checked_run(*args, **kwargs):
    """`checked(run_condition, ...)`, its result checked to be Run(History, test accuracy, model)."""
    run = checked(run_condition, *args, **kwargs)
    assert isinstance(run, tuple) and len(run) == 3, \
        f"run_condition should return Run(history, test_acc, model), got {type(run).__name__}"
    history, test_acc, model = run
    assert isinstance(history, train.History), \
        f"the history should be what train.fit returns, got {type(history).__name__}"
    assert isinstance(model, nn.Module), f"the model should be the trained nn.Module, got {type(model).__name__}"
    return Run(*run)

# %% [markdown]
# ## The conditions
#
# The thesis's *training strategy* (backup slide): standardized inputs, cross-entropy,
# mini-batch SGD with batch size 64 and Nesterov momentum $\mu = 0.9$, initial learning
# rate $\eta = 0.01$ halved after 5 epochs without improvement — which is exactly what
# `train.fit` does with its defaults (`lr=0.01`, `momentum=0.9`, `nesterov=True`,
# `lr_factor=0.5`, `lr_patience=5`). Its baseline network uses ReLU and Kaiming
# initialization, with BN (when present) *before* every activation — what
# `models.mlp(..., norm="batch")` builds.
#
# Each condition changes a few settings of `BASE`. `lr_x30` is not in the thesis: you
# will see why it is here.

# %% nbgrader={"grade": false, "grade_id": "ps4_conditions", "locked": true, "schema_version": 3, "solution": false, "task": false}
BASE = {"activation": "relu", "init": "kaiming", "lr": 0.01, "weight_decay": 0.0, "dropout": 0.0,
        "batch_size": 64}
CONDITIONS = {
    "baseline": {},
    "sigmoid": {"activation": "sigmoid", "init": "xavier"},
    "lr_x10": {"lr": 0.1},
    "lr_x30": {"lr": 0.3},
    "normal_init": {"init": "normal"},  # every weight from N(0, 1): models.mlp's init_std=1.0
    "weight_decay": {"weight_decay": 5e-4},
    "dropout": {"dropout": 0.5},        # PyTorch's p is the DROP probability; the thesis' keep p = 0.5
}
# What the thesis talk found (its verdict, and its words), per condition.
THESIS = {
    "baseline": ("BN", "Batchnorm beats the vanilla network on all datasets!"),
    "sigmoid": ("BN", "Vanilla network is stuck at random guessing and cannot escape"),
    "lr_x10": ("BN", "Batchnorm: higher accuracy & convergence speed; vanilla model is stuck at random guessing"),
    "lr_x30": (None, "(not in the thesis)"),
    "normal_init": ("BN", "Batchnorm: smooth learning but worse accuracy than baseline; vanilla is stuck again"),
    "weight_decay": ("BN", "Batchnorm model consistently ahead of vanilla counterpart"),
    "dropout": ("draw", "Batchnorm not ahead of vanilla counterpart (we'll call this a draw!)"),
}
for name, settings in CONDITIONS.items():
    changes = ", ".join(f"{key}={value}" for key, value in settings.items()) or "(the baseline)"
    print(f"{name:>13}: {changes:34s} thesis: {THESIS[name][0] or '-':5s} {THESIS[name][1]}")

# %% [markdown]
# ## Part 1 — One run (≈ 30 minutes, 6 points)
#
# **Task (6 points).** Implement `run_condition(name, norm, seed, epochs, train_limit)`:
#
# 1. the settings are `BASE` updated with `CONDITIONS[name]`;
# 2. call `torch.manual_seed(seed)`, then build the network with `models.mlp(64, 10,
#    hidden=HIDDEN, norm=norm, ...)` with the condition's activation, initialization and
#    dropout (`norm` is `"batch"` or `"none"`);
# 3. get the loaders from `digits_loaders(seed, train_limit, batch_size)`;
# 4. train with `train.fit` for `epochs` epochs with the condition's learning rate and
#    weight decay, `seed=seed` and `progress=False`;
# 5. measure the test accuracy with `train.evaluate` on the test loader;
# 6. return `Run(history, test_acc, model)`.
#
# Seeding before building the model makes a run reproducible: the same `seed` gives the
# same initial weights, the same batches in the same order, the same numbers.

# %% nbgrader={"grade": false, "grade_id": "ps4_run_condition", "locked": false, "schema_version": 3, "solution": true, "task": false}
def run_condition(name, norm, seed=0, epochs=EPOCHS, train_limit=TRAIN_LIMIT):
    """Train one MLP of condition `name` ("batch" or "none" normalization) on the first
    `train_limit` training digits (all of them when None); return Run(history, test_acc, model)."""
    ### BEGIN SOLUTION
    settings = {**BASE, **CONDITIONS[name]}
    torch.manual_seed(seed)
    model = models.mlp(64, 10, hidden=HIDDEN, norm=norm, activation=settings["activation"],
                       init=settings["init"], dropout=settings["dropout"])
    train_loader, val_loader, test_loader = digits_loaders(seed, train_limit, settings["batch_size"])
    history = train.fit(model, train_loader, val_loader, epochs=epochs, lr=settings["lr"],
                        weight_decay=settings["weight_decay"], seed=seed, progress=False)
    _, test_acc = train.evaluate(model, test_loader)
    return Run(history, test_acc, model)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps4_test_run_basics", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# checked_run (the setup cell): a Run of (History, test accuracy, model), inputs and settings
# unchanged, no call into normlab.experiments, normlab.stats or normlab.references.
history, test_acc, model = checked_run("baseline", "batch", seed=0, epochs=2, train_limit=300)
assert history.num_epochs == 2, f"epochs=2 but the history has {history.num_epochs} epochs: pass epochs to train.fit"
batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
assert len(batchnorms) == len(HIDDEN), \
    f"norm='batch' should give one BatchNorm1d per hidden layer ({len(HIDDEN)}), found {len(batchnorms)}"
vanilla = checked_run("baseline", "none", seed=0, epochs=1, train_limit=300)
assert not [m for m in vanilla.model.modules() if isinstance(m, nn.BatchNorm1d)], "norm='none': no BatchNorm1d"
# The test accuracy is the model's accuracy on the test split (in eval mode: train.evaluate).
# rtol 1e-6: an accuracy k/n rounded to float32 is within 6e-8 of it (relative), so a float32 one passes.
_, _, test_loader = digits_loaders(0)
assert_close(test_acc, train.evaluate(model, test_loader)[1], "test_acc (train.evaluate(model, test_loader)[1])")
# The same seed gives the same run; another seed gives another one.
again = checked_run("baseline", "batch", seed=0, epochs=2, train_limit=300)
assert again.history.val_loss == history.val_loss, \
    "two runs with seed=0 differ: call torch.manual_seed(seed) before models.mlp, and pass seed to train.fit"
other = checked_run("baseline", "batch", seed=1, epochs=2, train_limit=300)
assert other.history.val_loss != history.val_loss, "seed=0 and seed=1 gave the same run: use the seed argument"
### BEGIN HIDDEN TESTS
import numbers as _numbers

_, _, _test_loader = digits_loaders(0)
_run = checked_run("sigmoid", "none", seed=2, epochs=1, train_limit=200)
assert_close(_run.test_acc, train.evaluate(_run.model, _test_loader)[1], "test_acc of a vanilla sigmoid run")
assert isinstance(_run.test_acc, _numbers.Real), f"test_acc should be a number, got {type(_run.test_acc).__name__}"
_again = checked_run("sigmoid", "none", seed=2, epochs=1, train_limit=200)
assert _again.history.val_loss == _run.history.val_loss, \
    f"two runs with seed=2 differ: val_loss {_run.history.val_loss} and {_again.history.val_loss}"
# train_limit=None: all the training digits, the same run as train_limit=len(digits.y_train).
_all = checked_run("baseline", "none", seed=4, epochs=1, train_limit=None)
_full = checked_run("baseline", "none", seed=4, epochs=1, train_limit=len(digits.y_train))
assert _all.history.val_loss == _full.history.val_loss, (
    f"train_limit=None should train on all {len(digits.y_train)} training digits: val_loss {_all.history.val_loss}, "
    f"with train_limit={len(digits.y_train)} {_full.history.val_loss}")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps4_test_run_settings", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Each condition's settings reach the model and the optimizer.
run = checked_run("sigmoid", "none", seed=0, epochs=1, train_limit=200)
kinds = {type(m).__name__ for m in run.model.modules()}
assert "Sigmoid" in kinds and "ReLU" not in kinds, f"condition 'sigmoid' should use nn.Sigmoid, the model has {kinds}"
first = run.model[1].weight.detach()  # the first Linear layer (after nn.Flatten), 128 x 64
assert abs(float(first.std()) - (2 / (64 + 128)) ** 0.5) < 0.02, (
    f"condition 'sigmoid' uses Xavier initialization (std {(2 / 192) ** 0.5:.3f} in the first layer), "
    f"got {float(first.std()):.3f}")
run = checked_run("normal_init", "batch", seed=0, epochs=1, train_limit=200)
std = float(run.model[1].weight.detach().std())
assert abs(std - 1.0) < 0.1, \
    f"condition 'normal_init' draws every weight from N(0, 1) (models.mlp(..., init='normal')): std {std:.3f}"
run = checked_run("lr_x10", "batch", seed=0, epochs=1, train_limit=200)
assert run.history.lr[0] == 0.1, f"condition 'lr_x10' trains with lr=0.1, the history says {run.history.lr[0]}"
run = checked_run("dropout", "none", seed=0, epochs=1, train_limit=200)
rates = [m.p for m in run.model.modules() if isinstance(m, nn.Dropout)]
assert rates and set(rates) == {0.5}, \
    f"condition 'dropout' puts nn.Dropout(0.5) after every hidden layer, found {rates}"
### BEGIN HIDDEN TESTS
_base = checked_run("baseline", "none", seed=3, epochs=1, train_limit=200)
_decay = checked_run("weight_decay", "none", seed=3, epochs=1, train_limit=200)
assert not torch.equal(_base.model[1].weight, _decay.model[1].weight), \
    "condition 'weight_decay' trained exactly like the baseline: pass weight_decay to train.fit"
_run = checked_run("baseline", "none", seed=3, epochs=1, train_limit=200)
_std = float(_run.model[1].weight.detach().std())
assert abs(_std - (2 / 64) ** 0.5) < 0.02, f"baseline: Kaiming init (std {(2 / 64) ** 0.5:.3f}), got {_std:.3f}"
_dropouts = [m for m in _run.model.modules() if isinstance(m, nn.Dropout)]
assert _run.history.lr[0] == 0.01 and not _dropouts, \
    f"baseline: lr 0.01 and no dropout, got lr {_run.history.lr[0]} and {len(_dropouts)} Dropout layers"
_run = checked_run("lr_x30", "none", seed=3, epochs=1, train_limit=200)
assert _run.history.lr[0] == 0.3, f"condition 'lr_x30' trains with lr=0.3, the history says {_run.history.lr[0]}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps4_test_run_outcomes", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Outcomes that hold for every seed we tried, even on this short budget (3 epochs, 500 images).
run = checked_run("lr_x10", "batch", seed=0, epochs=3, train_limit=500)
assert run.history.val_acc[-1] > 0.8, \
    f"BN at lr x 10 should reach a validation accuracy above 0.8 in 3 epochs, got {run.history.val_acc[-1]:.2f}"
run = checked_run("sigmoid", "none", seed=0, epochs=3, train_limit=500)
assert run.history.best_val_acc < 0.3, (
    f"a vanilla sigmoid network with Xavier init should still be near chance (0.1) after 3 epochs, got "
    f"{run.history.best_val_acc:.2f}")
### BEGIN HIDDEN TESTS
_run = checked_run("sigmoid", "batch", seed=1, epochs=3, train_limit=500)
assert _run.history.val_acc[-1] > 0.5, f"BN with sigmoids: validation accuracy {_run.history.val_acc[-1]:.2f}"
_run = checked_run("normal_init", "none", seed=1, epochs=3, train_limit=500)
assert _run.history.diverged or _run.history.best_val_acc < 0.3, \
    f"vanilla with N(0, 1) init should not train: best validation accuracy {_run.history.best_val_acc:.2f}"
_run = checked_run("lr_x30", "batch", seed=1, epochs=3, train_limit=500)
assert _run.history.val_acc[-1] > 0.8, f"BN at lr x 30: validation accuracy {_run.history.val_acc[-1]:.2f}"
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 — Convergence speed (≈ 10 minutes, 2 points)
#
# The thesis also claims BN converges "slightly faster". One way to measure it: the number
# of epochs a run needs before its validation accuracy first reaches a target.
#
# **Task (2 points).** Implement `epochs_to_accuracy(history, target)`: the number of
# epochs of training after which `history.val_acc` first reached `target` or more
# (1 = after the first epoch), or `None` if it never did.

# %% nbgrader={"grade": false, "grade_id": "ps4_epochs_to_accuracy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def epochs_to_accuracy(history, target=0.9):
    """Epochs trained when the validation accuracy first reached `target` (1-based), or None."""
    ### BEGIN SOLUTION
    for epoch, accuracy in enumerate(history.val_acc, start=1):
        if accuracy >= target:
            return epoch
    return None
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps4_test_epochs_to_accuracy", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
history = train.History(val_acc=[0.5, 0.85, 0.92, 0.95, 0.93], train_acc=[0.6, 0.95, 0.97, 0.99, 1.0])
for target, expected, why in [(0.9, 3, "first reaches it after epoch 3, 1-based"),
                              (0.5, 1, "reaches it after the first epoch: reaching it counts"),
                              (0.99, None, "never reaches it")]:
    got = checked(epochs_to_accuracy, history, target)  # on a copy of history, which must stay as it was
    assert got == expected, f"val_acc {history.val_acc}, target {target}: should be {expected!r} ({why}), got {got!r}"
### BEGIN HIDDEN TESTS
# Multiples of 1/32, exact in float32 too: a solution comparing in float32 meets the same boundaries.
_history = train.History(val_acc=[0.25, 0.75, 0.875, 0.84375, 0.96875],
                         train_acc=[0.3125, 0.90625, 0.9375, 0.96875, 1.0])
for _target, _expected in [(0.875, 3), (0.9375, 5), (0.25, 1), (0.96875, 5), (1.0, None)]:
    _got = checked(epochs_to_accuracy, _history, _target)
    assert _got == _expected, f"val_acc {_history.val_acc}, target {_target}: should be {_expected!r}, got {_got!r}"
_got = checked(epochs_to_accuracy, _history)
assert _got == 5, f"the default target is 0.9: val_acc {_history.val_acc} should give 5, got {_got!r}"
_got = checked(epochs_to_accuracy, train.History(), 0.5)
assert _got is None, f"an empty history (no epoch trained) never reaches a target: None, got {_got!r}"
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 — The grid
#
# Every condition, with and without BN, for each seed in `SEEDS`: this cell calls your
# `run_condition` and collects the test accuracies (and the epochs each run needs to reach
# a validation accuracy of $0.9$).
# It takes most of the notebook's time; it prints each condition as it finishes.

# %% nbgrader={"grade": false, "grade_id": "ps4_grid_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
ARMS = {"BN": "batch", "vanilla": "none"}
results = {name: {arm: [] for arm in ARMS} for name in CONDITIONS}
speeds = {name: {arm: [] for arm in ARMS} for name in CONDITIONS}
print(f"{'condition':>13}  {'arm':8s} test accuracy per seed       epochs to 90 % val. accuracy")
for name in CONDITIONS:
    for arm, norm in ARMS.items():
        for seed in SEEDS:
            run = run_condition(name, norm, seed=seed)
            results[name][arm].append(run.test_acc)
            speeds[name][arm].append(epochs_to_accuracy(run.history, 0.9))
        accuracies = "  ".join(f"{a:.3f}" for a in results[name][arm])
        print(f"{name:>13}  {arm:8s} {accuracies:28s} {speeds[name][arm]}")

# %% [markdown]
# ## Part 4 — Verdicts (≈ 30 minutes, 5 points)
#
# Is BN "ahead" in a condition? The thesis decides by looking at learning curves. With a
# few seeds we can do better than eyeballing: a difference of means counts only if it
# is larger than the noise between seeds. Our rule, for the test accuracies $a_1, \dots,
# a_{n}$ of BN and $b_1, \dots, b_{k}$ of vanilla ($n, k \ge 2$):
#
# $$d = \bar a - \bar b, \qquad \mathrm{se} = \sqrt{\frac{s_a^2}{n} + \frac{s_b^2}{k}},
# \qquad \text{threshold} = \max(\text{margin},\; 2\,\mathrm{se}),$$
#
# with $s^2$ the *unbiased* sample variance (`ddof=1`); the verdict is `"BN"` if
# $d > $ threshold, `"vanilla"` if $d < -$threshold, and `"draw"` otherwise. With many
# seeds, twice the standard error would be roughly a $95\,\%$ interval; with two or three
# it is a rough rule, not a significance test (the standard error itself is uncertain). The
# margin (default `margin=0.01`, one percentage point) says that smaller differences do
# not matter in practice even when they are real. (The lectures' rule,
# `normlab.stats.compare`, refines this one: where both arms of a seed share its split and
# its batch order — as here, through `digits_loaders(seed)` — it takes the standard error
# of the per-seed differences, and its margin is half a percentage point. Here you write
# the simple, unpaired form.)
#
# **Task (5 points).** Implement `scoreboard(results, margin)`. `results` maps each
# condition to `{"BN": [accuracies], "vanilla": [accuracies]}` (like the grid's; lists,
# tuples or NumPy arrays, which `scoreboard` must leave as they are). Return
# `(rows, tally)`:
#
# - `rows`: a list with one dict per condition, in the order of `results`, with the keys
#   `"condition"` (its name), `"BN"` and `"vanilla"` (the mean accuracies), `"difference"`
#   ($d$, BN minus vanilla) and `"verdict"`;
# - `tally`: `{"BN": ..., "vanilla": ..., "draw": ...}`, how many verdicts of each kind
#   (every key present, 0 when none).

# %% nbgrader={"grade": false, "grade_id": "ps4_scoreboard", "locked": false, "schema_version": 3, "solution": true, "task": false}
def scoreboard(results, margin=0.01):
    """Verdict per condition (BN, vanilla or draw: the difference of mean accuracies
    against max(margin, 2 * standard error)); returns (rows, tally)."""
    ### BEGIN SOLUTION
    rows, tally = [], {"BN": 0, "vanilla": 0, "draw": 0}
    for name, arms in results.items():
        bn, vanilla = np.asarray(arms["BN"], dtype=float), np.asarray(arms["vanilla"], dtype=float)
        difference = bn.mean() - vanilla.mean()
        se = np.sqrt(bn.var(ddof=1) / len(bn) + vanilla.var(ddof=1) / len(vanilla))
        threshold = max(margin, 2 * se)
        if difference > threshold:
            verdict = "BN"
        elif difference < -threshold:
            verdict = "vanilla"
        else:
            verdict = "draw"
        tally[verdict] += 1
        rows.append({"condition": name, "BN": float(bn.mean()), "vanilla": float(vanilla.mean()),
                     "difference": float(difference), "verdict": verdict})
    return rows, tally
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps4_test_scoreboard_verdicts", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def verdict_of(bn, vanilla, margin=0.01):
    """The verdict of scoreboard on one condition (called on copies of the accuracies)."""
    result = checked(scoreboard, {"c": {"BN": bn, "vanilla": vanilla}}, margin=margin)
    assert isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], list) and len(result[0]) == 1 \
        and isinstance(result[0][0], dict) and "verdict" in result[0][0], \
        f"scoreboard should return (rows, tally), one row dict with a 'verdict' per condition; got {result!r}"
    return result[0][0]["verdict"]


cases = [
    ([0.95, 0.96, 0.97], [0.10, 0.12, 0.11], "BN", "BN far ahead"),
    ([0.10, 0.12, 0.11], [0.95, 0.96, 0.97], "vanilla", "vanilla far ahead"),
    ([0.975, 0.976, 0.977], [0.970, 0.971, 0.972], "draw",
     "d = 0.005 is below the margin 0.01 (although the seeds agree closely)"),
    ([0.95, 0.60, 0.97], [0.80, 0.81, 0.79], "draw",
     "d = 0.04 but the BN seeds spread widely: se = 0.12, threshold 2 se = 0.24"),
]
for bn, vanilla, expected, why in cases:
    got = verdict_of(bn, vanilla)
    assert got == expected, f"BN {bn} vs vanilla {vanilla}: the verdict should be {expected!r} ({why}), got {got!r}"
### BEGIN HIDDEN TESTS
_cases = [
    ([0.88, 0.94], [0.86, 0.86], 0.01, "draw", "d = 0.05, se = 0.03 with the unbiased variance, threshold 0.06"),
    ([0.895, 0.955], [0.88, 0.88], 0.01, "draw", "d = 0.045, se = 0.03, threshold 2 se = 0.06"),
    ([0.975, 0.975], [0.97, 0.97], 0.001, "BN", "d = 0.005, se = 0 (every seed the same), threshold the margin 0.001"),
    ([0.90, 0.91, 0.92], [0.86, 0.85, 0.84], 0.1, "draw", "d = 0.06, below the margin 0.1"),
    # Exact in binary: d equals the threshold (the margin, se = 0), which is not more than it.
    ([0.75, 0.75], [0.5, 0.5], 0.25, "draw", "d = 0.25 equals the threshold 0.25: not larger, a draw"),
    ([0.5, 0.5], [0.75, 0.75], 0.25, "draw", "d = -0.25 equals minus the threshold: a draw"),
    (np.array([0.5, 0.52]), (0.9, 0.91), 0.01, "vanilla", "accuracies as a NumPy array and a tuple"),
]
for _bn, _vanilla, _margin, _expected, _why in _cases:
    _got = verdict_of(_bn, _vanilla, margin=_margin)
    assert _got == _expected, \
        f"BN {_bn} vs vanilla {_vanilla}, margin {_margin}: the verdict should be {_expected!r} ({_why}), got {_got!r}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps4_test_scoreboard_table", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Test accuracies measured with this notebook's full budget (10 epochs, seeds 0, 1, 2).
measured = {
    "baseline": {"BN": [0.9582, 0.9721, 0.9666], "vanilla": [0.9526, 0.9526, 0.9638]},
    "sigmoid": {"BN": [0.9638, 0.9582, 0.9638], "vanilla": [0.1031, 0.1560, 0.1003]},
    "normal_init": {"BN": [0.8802, 0.8663, 0.8719], "vanilla": [0.1003, 0.0000, 0.1003]},
}
result = checked(scoreboard, measured)  # on a copy of measured, which must stay as it was
assert isinstance(result, tuple) and len(result) == 2, f"scoreboard should return (rows, tally), got {result!r}"
rows, tally = result
assert isinstance(rows, list) and len(rows) == 3 and all(isinstance(row, dict) for row in rows), \
    f"rows should be a list with one dict per condition, got {rows!r}"
assert [row.get("condition") for row in rows] == list(measured), \
    f"rows should follow the order of results: {list(measured)}, got {[row.get('condition') for row in rows]}"
for row in rows:
    assert set(row) == {"condition", "BN", "vanilla", "difference", "verdict"}, \
        f"the keys of a row are condition, BN, vanilla, difference, verdict; got {sorted(row)}"
# rtol 1e-5: float32 rounds each accuracy and each step of a mean by at most 6e-8 (relative), so a
# float32 mean of three is within 3e-7, and a difference larger than 0.3 (as here) within 1e-6.
assert_close(rows[1]["BN"], np.mean(measured["sigmoid"]["BN"]), "the BN mean of 'sigmoid'", rtol=1e-5)
assert_close(rows[1]["difference"], np.mean(measured["sigmoid"]["BN"]) - np.mean(measured["sigmoid"]["vanilla"]),
             "the difference of 'sigmoid' (BN mean minus vanilla mean)", rtol=1e-5)
# BN is ahead where the margin is large; the baseline is within the noise.
assert [row["verdict"] for row in rows] == ["draw", "BN", "BN"], \
    f"verdicts should be draw, BN, BN, got {[row['verdict'] for row in rows]}"
assert tally == {"BN": 2, "vanilla": 0, "draw": 1}, \
    f"tally should be {{'BN': 2, 'vanilla': 0, 'draw': 1}} (every key, 0 when none), got {tally!r}"
### BEGIN HIDDEN TESTS
# The grid's accuracies may come as NumPy arrays: scoreboard works on them without changing them.
_rows, _tally = checked(scoreboard, {"x": {"BN": np.array([0.2, 0.21]), "vanilla": np.array([0.9, 0.92])},
                                     "y": {"BN": [0.5, 0.6, 0.55], "vanilla": [0.5, 0.6, 0.55]}})
assert [_r["condition"] for _r in _rows] == ["x", "y"] and _tally == {"BN": 0, "vanilla": 1, "draw": 1}, \
    f"rows {_rows}, tally {_tally}"
assert_close(_rows[0]["difference"], -0.705, "difference of 'x' (BN minus vanilla)", rtol=1e-5)
assert_close(_rows[0]["vanilla"], 0.91, "vanilla mean of 'x'", rtol=1e-5)
_result = checked(scoreboard, {})
assert _result == ([], {"BN": 0, "vanilla": 0, "draw": 0}), f"no conditions: ([], all zeros), got {_result!r}"
### END HIDDEN TESTS

# %% [markdown]
# Your grid, judged (not graded; the numbers are yours):

# %% nbgrader={"grade": false, "grade_id": "ps4_scoreboard_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
rows, tally = scoreboard(results)
print(f"{'condition':>13}  {'BN':>6}  {'vanilla':>7}  {'d':>7}  {'verdict':8s} {'thesis':8s} "
      f"epochs to 90 % (BN | vanilla)")
for row in rows:
    name = row["condition"]
    print(f"{name:>13}  {row['BN']:6.3f}  {row['vanilla']:7.3f}  {row['difference']:+7.3f}  {row['verdict']:8s} "
          f"{THESIS[name][0] or '-':8s} {speeds[name]['BN']} | {speeds[name]['vanilla']}")
print("tally:", tally, "   (the thesis: batchnorm 6 - vanilla 1, one draw, over its eight conditions)")

# %% [markdown]
# ## Part 5 — The smoothness view (≈ 40 minutes, 5 points)
#
# Santurkar et al. ask how far we can trust a gradient. At parameters $\theta$, take the
# mini-batch loss $L$ and its gradient $g = \nabla L(\theta)$, step along it by various
# step sizes $\eta$, and record, on the same batch:
#
# - the **loss landscape** $L(\theta - \eta g)$: how much the loss changes along the step;
# - the **gradient predictiveness** $\lVert \nabla L(\theta - \eta g) - g \rVert_2$: how much
#   the gradient itself changes. If it stays small, the gradient measured at $\theta$ is
#   still a good direction after a large step — a large learning rate is safe.
#
# Their finding: with BN both vary much less — BN "makes the optimization landscape
# significantly smoother" (their abstract).
#
# **Task (5 points).** Implement `probe_along_gradient(model, x, y, step_sizes)`:
#
# - work on a **copy** of the model (`copy.deepcopy`), put in training mode (as during
#   training: BN with batch statistics). The model you are given must come back
#   unchanged: parameters, buffers (BN's running statistics) and its train/eval mode;
# - the loss is the mean cross-entropy `F.cross_entropy(net(x), y)`; the gradient is over
#   **all** parameters, as one long vector (`torch.autograd.grad`, then concatenate; or
#   `torch.nn.utils.parameters_to_vector`);
# - for each $\eta$ in `step_sizes`: set the parameters to $\theta - \eta g$ (a fresh copy
#   each time, or put $\theta$ back), and record $L(\theta - \eta g)$ and
#   $\lVert \nabla L(\theta - \eta g) - g\rVert_2$;
# - return `(losses, grad_changes)`, two NumPy arrays of shape `(len(step_sizes),)`.
#
# (For networks without dropout; with dropout every forward pass would draw a new mask.)

# %% nbgrader={"grade": false, "grade_id": "ps4_probe", "locked": false, "schema_version": 3, "solution": true, "task": false}
def probe_along_gradient(model, x, y, step_sizes):
    """Loss and gradient change along the negative gradient (Santurkar et al. 2018).

    Returns (losses, grad_changes): L(theta - eta g) and ||grad L(theta - eta g) - g||_2
    for each eta in step_sizes, computed in training mode on copies of `model`.
    """
    ### BEGIN SOLUTION
    def loss_and_gradient(network):
        loss = F.cross_entropy(network(x), y)
        gradients = torch.autograd.grad(loss, list(network.parameters()))
        return loss.item(), torch.cat([g.reshape(-1) for g in gradients])

    start = copy.deepcopy(model).train()
    theta = nn.utils.parameters_to_vector(start.parameters()).detach()
    _, g = loss_and_gradient(start)
    losses, grad_changes = [], []
    for eta in step_sizes:
        moved = copy.deepcopy(start)
        nn.utils.vector_to_parameters(theta - eta * g, moved.parameters())
        loss, g_moved = loss_and_gradient(moved)
        losses.append(loss)
        grad_changes.append(float((g_moved - g).norm()))
    return np.array(losses), np.array(grad_changes)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps4_test_probe", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# A linear softmax classifier on six points; step size 0 first.
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 3))
x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
result = checked(probe_along_gradient, model, x, y, [0.0, 0.01, 0.1, 1.0])  # on a copy of the model
assert isinstance(result, tuple) and len(result) == 2, f"return (losses, grad_changes), got {type(result).__name__}"
losses, grad_changes = result
assert_shape(losses, (4,), "losses")
assert_shape(grad_changes, (4,), "grad_changes")
with torch.no_grad():
    loss0 = F.cross_entropy(model(x), y).item()
# Tolerances: torch computes in float32 (rounding about 1e-7, relative), so rtol 1e-5 and atol 1e-6.
assert_close(losses[0], loss0, "the loss at step size 0", rtol=1e-5,
             hint="the mean cross-entropy of model(x) against y, F.cross_entropy(net(x), y)")
assert_close(grad_changes[0], 0.0, "the gradient change at step size 0", atol=1e-6,
             hint="the norm of the DIFFERENCE between the gradient after the step and g")
assert losses[1] < loss0, \
    f"a small step should lower the loss ({losses[1]:.4f} vs {loss0:.4f}): move to theta - eta * g, against g"
# To first order, L(theta - eta g) = L(theta) - eta |g|^2 (the second-order term is below rtol 1e-4 here).
gradients = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
squared_norm = sum(float((gi ** 2).sum()) for gi in gradients)
assert_close(losses[1], loss0 - 0.01 * squared_norm, "the loss at step size 0.01 (first order)", rtol=1e-4,
             hint="the gradient g is over ALL parameters (weight and bias), and the step is eta * g")
### BEGIN HIDDEN TESTS
from normlab.references import probe_losses_and_grad_changes as _reference_probe


torch.manual_seed(5)
_model = models.mlp(64, 10, hidden=(32, 16), norm="none")
_x, _y = digits.x_train[:40], digits.y_train[:40]
# rtol 1e-4: float32 rounding (about 1e-7) grows through the forward and backward passes of the MLP.
for _got, _expected, _what in zip(checked(probe_along_gradient, _model, _x, _y, (0.05, 0.3)),
                                  _reference_probe(_model, _x, _y, (0.05, 0.3)), ("losses", "grad_changes")):
    assert_close(_got, _expected, f"{_what} of a vanilla MLP", rtol=1e-4, atol=1e-6)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps4_test_probe_state", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The model comes back unchanged: parameters, BN running statistics, eval mode (checked compares
# them before and after the call).
torch.manual_seed(1)
model = models.mlp(64, 10, hidden=(32, 32), norm="batch")
model.eval()
checked(probe_along_gradient, model, digits.x_train[:64], digits.y_train[:64], [0.01, 0.1])
### BEGIN HIDDEN TESTS
from normlab.references import probe_losses_and_grad_changes as _reference_probe


# An eval-mode BN model is probed in training mode (batch statistics).
torch.manual_seed(6)
_model = models.mlp(64, 10, hidden=(32, 16), norm="batch").eval()
_x, _y = digits.x_train[:50], digits.y_train[:50]
for _got, _expected, _what in zip(checked(probe_along_gradient, _model, _x, _y, (0.02, 0.2)),
                                  _reference_probe(_model, _x, _y, (0.02, 0.2)), ("losses", "grad_changes")):
    assert_close(_got, _expected, f"{_what} of an eval-mode BN model (probe it in training mode)", rtol=1e-4,
                 atol=1e-6)
# A model in training mode stays in training mode, its running statistics as they were.
checked(probe_along_gradient, _model.train(), _x, _y, (0.02,))
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps4_test_probe_outcome", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Santurkar et al.'s observation, at initialization, on 128 training digits: the gradient of
# the BN network changes less along the step than the vanilla network's.
x, y = digits.x_train[:128], digits.y_train[:128]
changes = {}
for norm in ("batch", "none"):
    torch.manual_seed(0)
    network = models.mlp(64, 10, hidden=HIDDEN, norm=norm)
    result = checked(probe_along_gradient, network, x, y, [0.01, 0.05, 0.1, 0.2, 0.4])
    assert isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], np.ndarray), \
        f"return (losses, grad_changes), two NumPy arrays (np.array(...)); got {result!r}"
    assert_shape(result[1], (5,), "grad_changes")
    changes[norm] = result[1]
assert changes["batch"].max() < changes["none"].max(), (
    f"largest gradient change: BN {changes['batch'].max():.2f}, vanilla {changes['none'].max():.2f}; "
    "BN's should be smaller")
### BEGIN HIDDEN TESTS
_x, _y = digits.x_train[200:328], digits.y_train[200:328]
_max = {}
for _norm in ("batch", "none"):
    torch.manual_seed(3)
    _network = models.mlp(64, 10, hidden=HIDDEN, norm=_norm)
    _max[_norm] = np.max(checked(probe_along_gradient, _network, _x, _y, [0.05, 0.2, 0.4])[1])
assert _max["batch"] < _max["none"], f"seed 3: largest gradient change {_max}, BN's should be smaller"
### END HIDDEN TESTS

# %% [markdown]
# Now along a training trajectory (not graded): BN and vanilla networks of the baseline
# condition, probed on a fixed batch before training and after a few epochs. For each,
# the spread of the loss over the step sizes (max − min), the largest gradient change, and
# the "effective β-smoothness", the largest gradient change per distance moved,
# $\max_\eta \lVert\nabla L(\theta-\eta g) - g\rVert / (\eta\lVert g\rVert)$.

# %% nbgrader={"grade": false, "grade_id": "ps4_probe_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
STEP_SIZES = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
CHECKPOINTS = (0, 1) if GRADING else (0, 1, 3, 6)  # epochs trained before each probe
x_probe, y_probe = digits.x_train[:128], digits.y_train[:128]


def gradient_norm(network, x, y):
    """||g||, the norm of the mini-batch gradient over all parameters (training mode, on a copy)."""
    network = copy.deepcopy(network).train()
    loss = F.cross_entropy(network(x), y)
    return float(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(network.parameters()))]).norm())


print(f"{'epochs':>6}  {'arm':8s} {'loss range':>10}  {'max grad change':>15}  {'beta-smoothness':>15}")
for arm, norm in ARMS.items():
    torch.manual_seed(0)
    network = models.mlp(64, 10, hidden=HIDDEN, norm=norm)
    train_loader, val_loader, _ = digits_loaders(0, TRAIN_LIMIT)
    trained = 0
    for epochs in CHECKPOINTS:
        if epochs > trained:
            train.fit(network, train_loader, val_loader, epochs=epochs - trained, seed=trained, progress=False)
            trained = epochs
        losses, grad_changes = probe_along_gradient(network, x_probe, y_probe, STEP_SIZES)
        beta = max(change / (eta * gradient_norm(network, x_probe, y_probe))
                   for change, eta in zip(grad_changes, STEP_SIZES))
        print(f"{epochs:6d}  {arm:8s} {losses.max() - losses.min():10.3f}  {grad_changes.max():15.3f}  {beta:15.2f}")

# %% [markdown]
# ## Part 6 — What the numbers say (≈ 45 minutes, 12 points, graded by hand)
#
# Answer in the cells below, in a few sentences each, **quoting your own numbers** from
# the tables above (the TA reads them next to your notebook's output). Clear reasoning
# about what a table can and cannot show earns the points, not agreement with the thesis.
#
# **Question A (4 points) — The scoreboard.** Compare your verdicts with the thesis
# talk's, condition by condition. Which of its claims reproduce on the digits, and which
# do not? For each that does not, give the most likely reason in a sentence (how hard is
# the task for the vanilla network? the budget? the number of seeds? the margin?).

# %% [markdown] nbgrader={"grade": true, "grade_id": "ps4_written_scoreboard", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer* (rubric in brackets). The student quotes their own scoreboard: for each
# condition the two means, $d$ and the verdict. The reference is this answer key's run,
# in the tables above (the full budget: ten epochs, seeds 0–2); a student who ran the same
# code has the same or nearly the same numbers, and a verdict that follows from the
# student's own table is right even where it differs.
#
# Reproduced: **sigmoid + Xavier** (BN far ahead, $d$ of tens of points: the vanilla
# network stays near chance, one digit in ten — "stuck at random guessing" — and never
# reaches a validation accuracy of $0.9$, while BN does within a few epochs); **N(0, 1)
# init** (vanilla at chance or diverged — a diverged run's nan outputs count as wrong, so
# it scores 0 — while BN trains and, as the thesis says, ends clearly below its Kaiming
# baseline); **dropout** (a draw, as the thesis calls it). Not reproduced: **baseline**
# and **weight decay** (draws, $d$ about a point and within the threshold: the digits are
# easy, both networks end close to perfect, there is no room for BN to be ahead; the
# thesis trained harder data sets for much longer; and $\lambda = 5\cdot10^{-4}$ changes
# a ten-epoch run so little that the weight-decay rows nearly repeat the baseline's),
# **lr × 10** (a draw: $\eta = 0.1$ is not yet too large a step for this small network;
# vanilla breaks only at lr × 30, where BN still reaches its baseline accuracy — the claim
# holds, at a different factor). The tally (the scoreboard's last line) then counts BN
# wins only where vanilla training fails, and draws everywhere else — nothing like the
# thesis's "batchnorm 6 – vanilla 1" (and we did not time epochs, the thesis's one defeat).
#
# [1 point: verdicts read correctly with numbers; 2 points: a plausible reason for each
# claim that does not reproduce (easy task / ceiling, budget, learning-rate factor, seeds);
# 1 point: the pattern — BN wins where vanilla training *fails* (saturation, bad init,
# too-large steps), not where both train well.]

# %% [markdown]
# **Question B (3 points) — Learning rate and initialization.** (a) What do `lr_x10` and
# `lr_x30` together say about "batchnorm favors higher learning rates"? (b) Why does the
# BN network train at all from $\mathcal N(0, 1)$ weights, and why does it end *worse* than
# with Kaiming initialization? Use the thesis's sidenote on scale invariance:
# $\mathrm{BN}((\alpha w)^\top x) = \mathrm{BN}(w^\top x)$, and the gradient with respect to
# $\alpha w$ is $1/\alpha$ times the gradient with respect to $w$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "ps4_written_learning_rate", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer* (the student's numbers: the rows `baseline`, `lr_x10`, `lr_x30` and
# `normal_init`). (a) At lr × 10 both networks train about equally well (a draw, both
# near their baseline accuracy); at lr × 30 the vanilla network's loss blows up (a
# diverged run scores 0) or it stays at chance (about one digit in ten), while BN still
# reaches about its baseline accuracy. BN does not make a large learning rate *better*, it
# raises the largest learning rate that still works — the thesis's "10x" is where that
# limit was for its networks, ours lies between $10\times$ and $30\times$. [1 point]
#
# (b) N(0, 1) weights are $\alpha \approx 6$ to $8$ times larger than Kaiming's (std 1
# against $\sqrt{2/64} \approx 0.18$ and $\sqrt{2/128} \approx 0.13$). Without BN the
# activations grow by that factor in every layer, the logits are huge, the softmax
# saturates and the loss overflows or the network is stuck. With BN each layer's output
# does not depend on the scale of its weights, so the forward pass is as tame as with a
# small initialization [1 point]. But the gradients are $1/\alpha$ times smaller while the
# weights are $\alpha$ times larger, so a step of the same learning rate changes the
# weights' *direction* by a factor $\alpha^2 \approx 30$ to $60$ less: the effective
# learning rate $\eta/\lVert w\rVert^2$ is tiny, and in ten epochs the network gets less
# far — its test accuracy stays clearly below the Kaiming baseline's, and it reaches a
# validation accuracy of $0.9$ late or not at all (the epochs column). [1 point]

# %% [markdown]
# **Question C (3 points) — Why does BN help?** Santurkar et al. argue that BN works not
# by reducing internal covariate shift, but by making the loss landscape smoother. What do
# your probe measurements (Part 5) show — all three columns? Do they support the
# smoothness view, and could your experiments tell it apart from the covariate-shift
# explanation? If not, what experiment would?

# %% [markdown] nbgrader={"grade": true, "grade_id": "ps4_written_smoothness", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer* (the student reads the three columns of their probe table, BN against
# vanilla at each checkpoint). The largest gradient change along the step is smaller with
# BN at every checkpoint, by more after some training than at initialization: BN's
# gradient stays predictive over larger steps, which fits its tolerance of lr × 30. The
# other columns are less clear: BN's loss *range* is not smaller (in this answer key it is
# the larger one at every checkpoint; at initialization because along the step BN's loss
# keeps falling while the vanilla loss turns back up — the range mixes "how much the step
# helps" with "how erratic the landscape is"), and the β-smoothness is lower with BN at
# most checkpoints but not at all of them (here it is about the same after one epoch). So
# the evidence supports the smoothness view in part. [2 points: reading all three columns,
# with the caveat]
#
# Our experiments never measure covariate shift, so they cannot rule it out: both
# explanations predict that BN trains better. Santurkar et al.'s "noisy BN" separates
# them: add random, time-varying shifts and scales after every BN layer, so the layer
# inputs' distributions change even more than without BN — the network still trains
# almost as well as with plain BN, so stabilizing the distributions is not what helps.
# [1 point]

# %% [markdown]
# **Question D (2 points) — How sure are you?** Name two features of this set-up that
# could change a verdict, and say for one of them which runs you would add to find out.

# %% [markdown] nbgrader={"grade": true, "grade_id": "ps4_written_caveats", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (1) The budget: ten epochs, so `train.fit`'s early stopping (after 20
# epochs without improvement) never acts, and a verdict can depend on when we stop —
# dropout slows training (its runs reach a validation accuracy of $0.9$ late or not at
# all: the epochs column), so a shorter or a longer run can move its verdict. (2) Three
# seeds: in the close conditions (baseline, weight decay, lr × 10) $d$ is about as large
# as the threshold $\max(\text{margin}, 2\,\mathrm{se})$, so a draw may hide a small real
# difference, and one more seed can change the verdict. Also: the easy data set (both arms close to
# perfect: a ceiling), the margin (`margin=0.01`), the network's depth and width, the
# unpaired standard error (pairing the arms seed by seed would be sharper). To check (2):
# rerun `baseline` and `lr_x10` with 10 seeds (the standard error shrinks by about
# $\sqrt{10/3}$); to check (1): train longer, e.g. `epochs=60`, with the thesis's early
# stopping after 20 epochs without improvement (`train.fit`'s default). [1 point per
# feature, the second only with a concrete check]

# %% [markdown]
# ## Before you submit
#
# 1. *Kernel → Restart Kernel and Run All Cells* (about a minute or two).
# 2. Save the notebook (Ctrl-S) and run the last cell below: it checks the autograded part
#    of the saved file the way the grader does (the written answers are read by a TA).
# 3. Submit `ps4.ipynb`.
#
# **Summary.** On a small problem, BN's advantages show exactly where vanilla training
# fails — saturating activations, weights far too large, learning rates beyond the
# vanilla network's limit — and shrink to nothing where both train well. A verdict needs
# several seeds and a rule that compares the difference with the noise. Santurkar et al.'s
# probe shows BN's gradients changing less along a step, the smoothness that lets it take
# larger steps.

# %% nbgrader={"grade": false, "grade_id": "ps4_check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Save the notebook first (Ctrl-S): this checks the saved file, the way the grader runs it.
from normlab_tools.check import check

check()
