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
# # Problem set 3 — Inference, variants and dropout as `torch.nn` modules
#
# *normlab, normalization in deep learning* · about 2–3 hours · **30 points**
#
# In problem sets 1 and 2 you wrote batch norm's forward and backward passes for a
# mini-batch. A layer that trains is only half of the story: at test time there may be
# one image at a time, and a prediction must not depend on which other images share
# its batch. *"$\mu_{\mathcal B}$ and $\sigma_{\mathcal B}$ are replaced with population
# statistics at test time"* (Schilling's thesis talk); in practice, with running
# averages collected during training (the BN notes: "compute the moving average of
# $\mu$ and $\sigma$ of the batches during training"). In this problem set you
#
# 1. update batch norm's running statistics exactly as PyTorch does (NumPy);
# 2. write a complete `BatchNorm` module that can replace `torch.nn.BatchNorm1d` and
#    `BatchNorm2d`: parameters, buffers, train and eval mode, `state_dict`;
# 3. write `LayerNorm` and `GroupNorm`, which normalize each sample on its own;
# 4. write inverted dropout;
# 5. answer four conceptual questions.
#
# **How this is graded.** The test cells after each part are *visible tests*; they say
# what is wrong (which output, which entry, expected and got). The grader also runs
# *hidden tests* on the same code: other shapes and options, the edge cases the
# docstrings promise, more steps, comparisons with `torch.nn` in float64 and in float32.
# Every test calls your code on copies of its inputs and fails if your code changes them
# in place, and every test fails if your code calls one of the implementations the rules
# below forbid.
#
# To check your work, save the notebook (Ctrl-S) and run the last cell of the notebook: it
# runs the saved notebook the way the grader does, in a separate fresh kernel, and prints
# the points of every visible test. From a terminal, `normlab check ps3.ipynb` does the same.
#
# **Rules.**
# - Write your code where it says `# YOUR CODE HERE` and delete the
#   `raise NotImplementedError()` line. Do not rename classes, functions or arguments.
# - Build the modules from basic tensor operations (`mean`, `sum`, `sqrt`, `reshape`,
#   `rand_like`, ...). Do **not** call `torch.nn.functional.batch_norm` / `layer_norm` /
#   `group_norm` / `dropout`, `torch.nn.BatchNorm1d` and friends, or the course
#   library (`normlab.nn`, `normlab.functional`, `normlab.references`): the tests watch
#   for them. Autograd computes the gradients for you (you wrote them by hand in problem set 2).
# - Leave the inputs as they are: compute new arrays and tensors (`x = x - mean`, not
#   `x -= mean`). Only batch norm's buffers change, and only in training mode.
# - Your modules compute in the dtype of their input, as torch's do (`.double()` makes
#   them float64, and a float32 input gives a float32 output).
# - Do not delete or copy cells. A test cell that prints a warning scores 0.
# - *Restart the kernel and run all cells* before you submit.

# %% nbgrader={"grade": false, "grade_id": "ps3_setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from torch import nn

from normlab.grading_helpers import (assert_choice, assert_close, assert_no_torch_calls, assert_shape, checked_call,
                                     describe_mismatch)

torch.set_num_threads(1)
np.set_printoptions(precision=4, suppress=True)

FORBIDDEN = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "dropout")  # torch's own implementations
COURSE_LIBRARY = ("normlab.functional", "normlab.nn", "normlab.references")
# Where float32 is allowed: it keeps about 7 significant digits, and a sum of a few hundred
# values in another order (torch's kernels, NumPy's pairwise sums) moves results of order 1
# by up to about 2e-6 (measured on these tests' inputs). rtol 1e-4 and atol 1e-5 leave a
# margin of ten; every mistake the tests look for is off by far more.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}


def from_scratch(run, what):
    """run(), watched: AssertionError if it calls one of the FORBIDDEN torch functions or the course library."""
    return assert_no_torch_calls(run, forbidden=FORBIDDEN, modules=COURSE_LIBRARY, what=what)


def hint_if(got, wrong, hint):
    """`hint` if `got` is what the mistake it names gives (`wrong`, worked out by hand), else ""."""
    try:
        return hint if describe_mismatch(got, wrong, rtol=1e-4, atol=1e-6) is None else ""
    except AssertionError:  # not an array of numbers: no hint
        return ""


def running_step(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    """update_running_stats as every test calls it: on copies of its inputs (AssertionError
    if it changes one), watched by from_scratch, its result checked to be a triple of (C,) arrays."""
    result = from_scratch(lambda: checked_call(update_running_stats, running_mean, running_var, num_batches_tracked,
                                               x, momentum=momentum), "your update_running_stats")
    assert isinstance(result, tuple) and len(result) == 3, \
        f"update_running_stats should return a triple (running_mean, running_var, num_batches_tracked), got {result!r}"
    for name, value in zip(("running_mean", "running_var"), result):
        assert_shape(value, np.shape(running_mean), f"the returned {name} (one value per channel)")
    return result

# %% [markdown]
# ## Part 1 — Running statistics (≈ 30 minutes, 5 points)
#
# In training mode a batch-norm layer normalizes with the statistics of the current
# mini-batch, and on the side keeps an exponential moving average of them in two
# *buffers*, `running_mean` and `running_var` (initially 0 and 1). In evaluation mode it
# normalizes with the buffers instead. PyTorch's update after each training batch, per
# channel, is
#
# $$\text{running\_mean} \leftarrow (1 - m)\cdot\text{running\_mean} + m\cdot\mu_{\mathcal B},
# \qquad
# \text{running\_var} \leftarrow (1 - m)\cdot\text{running\_var} + m\cdot\frac{n}{n-1}\,\sigma^2_{\mathcal B},$$
#
# with three details that are easy to get wrong:
#
# - **The momentum $m$ is the weight of the new batch** (default `momentum=0.1`). Keras
#   writes the same average the other way round,
#   `running = momentum * running + (1 - momentum) * batch`, with its default
#   `momentum=0.99`, i.e. PyTorch's `momentum=0.01`. Raschka's lecture slides write the
#   Keras formula next to PyTorch's typical value "~0.1" — which, taken literally, keeps
#   only a tenth of the history at every step. We use PyTorch's convention throughout.
# - **The running variance is fed the *unbiased* batch variance**: the layer normalizes
#   with the biased $\sigma^2_{\mathcal B}$ (divide by $n$, the number of values per channel:
#   $N$, or $N\cdot H\cdot W$ for feature maps), but the buffer receives $\frac{n}{n-1}\sigma^2_{\mathcal B}$,
#   an unbiased estimate of the population variance.
# - **`momentum=None` means a cumulative average**: the layer counts the batches it has
#   seen in a third buffer, `num_batches_tracked`, and uses $m = 1/\text{num\_batches\_tracked}$,
#   counting the current batch. After $k$ batches each buffer is then the plain average
#   of the $k$ batch values. (`num_batches_tracked` is counted whatever the momentum.)
#
# **Task (5 points).** Implement `update_running_stats` in NumPy. It returns the new
# values and must not modify its inputs.

# %% nbgrader={"grade": false, "grade_id": "ps3_running", "locked": false, "schema_version": 3, "solution": true, "task": false}
def update_running_stats(running_mean, running_var, num_batches_tracked, x, momentum=0.1):
    """One training step's update of batch norm's buffers, as torch.nn.BatchNorm1d/2d does it.

    running_mean, running_var: (C,); num_batches_tracked: int; x: the batch, (N, C) or
    (N, C, H, W), statistics per channel (axis 1) over the n = N or N*H*W values.
    factor = momentum, or 1 / (num_batches_tracked + 1) when momentum is None;
    running_mean <- (1 - factor) * running_mean + factor * batch mean,
    running_var  <- (1 - factor) * running_var  + factor * unbiased batch variance.
    Returns (new_running_mean, new_running_var, num_batches_tracked + 1); the inputs are left unchanged.
    """
    ### BEGIN SOLUTION
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    batch_mean = x.mean(axis=axes)
    batch_var = x.var(axis=axes) * n / (n - 1)
    count = num_batches_tracked + 1
    factor = 1.0 / count if momentum is None else momentum
    new_mean = (1 - factor) * running_mean + factor * batch_mean
    new_var = (1 - factor) * running_var + factor * batch_var
    return new_mean, new_var, count
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps3_test_running_mean", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand: channels with values [1, 3] and [2, 6] have batch means 2 and 4. From
# running_mean = 0 with momentum 0.1: 0.9 * 0 + 0.1 * [2, 4] = [0.2, 0.4] (Keras' formula,
# 0.1 * 0 + 0.9 * [2, 4], would give [1.8, 3.6]).
x = np.array([[1.0, 2.0], [3.0, 6.0]])
mean, var, count = running_step(np.zeros(2), np.ones(2), 0, x, momentum=0.1)
assert_close(mean, [0.2, 0.4], "running_mean after one step from 0", **FLOAT32,
             hint=hint_if(mean, [1.8, 3.6], "PyTorch's momentum is the weight of the NEW batch: (1 - momentum) * "
                                            "running + momentum * batch (Keras writes momentum * running + "
                                            "(1 - momentum) * batch)"))
assert count == 1, f"num_batches_tracked should go from 0 to 1, got {count!r}"
# A second step, with batch means 1 and 2: 0.9 * [0.2, 0.4] + 0.1 * [1, 2] = [0.28, 0.56].
mean, var, count = running_step(mean, var, count, np.array([[0.0, 0.0], [2.0, 4.0]]), momentum=0.1)
assert_close(mean, [0.28, 0.56], "running_mean after a second step", **FLOAT32)
assert count == 2, f"num_batches_tracked should go from 1 to 2, got {count!r}"
# Feature maps: one mean per channel, over the batch and all positions.
x = np.arange(24.0).reshape(2, 3, 2, 2)
mean, _, _ = running_step(np.zeros(3), np.ones(3), 0, x, momentum=0.5)
assert_close(mean, 0.5 * x.mean(axis=(0, 2, 3)),
             "running_mean for (N, C, H, W) input, momentum 0.5 (per channel, over axes 0, 2 and 3)", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_running_stats as _torch_running_stats

_rng = np.random.default_rng(301)
for _shape, _momentum, _dtype in (((8, 3), 0.1, np.float64), ((5, 4, 3, 2), 0.3, np.float64),
                                  ((6, 2), 0.75, np.float64), ((16, 3, 2, 2), 0.1, np.float32)):
    _batches = [(_rng.normal(size=_shape) * 2.0 + _rng.normal()).astype(_dtype) for _ in range(3)]
    _mean_ref, _, _ = _torch_running_stats(_batches, momentum=_momentum)
    _mean, _var, _count = np.zeros(_shape[1]), np.ones(_shape[1]), 0
    for _b in _batches:
        _mean, _var, _count = running_step(_mean, _var, _count, _b, momentum=_momentum)
    _what = f"input {_shape} in {np.dtype(_dtype).name}, momentum {_momentum}"
    assert_close(_mean, _mean_ref, f"running_mean after 3 steps, {_what}", **FLOAT32)
    assert _count == 3, f"num_batches_tracked after 3 steps is {_count!r}, {_what}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_running_var", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# With momentum 1 the buffers are replaced by this batch's values: the batch above has
# biased variances 1 and 4, unbiased (n = 2) 2 and 8.
x = np.array([[1.0, 2.0], [3.0, 6.0]])
mean, var, _ = running_step(np.zeros(2), np.ones(2), 0, x, momentum=1.0)
assert_close(mean, [2.0, 4.0], "running_mean with momentum 1", **FLOAT32)
assert_close(var, [2.0, 8.0], "running_var with momentum 1", **FLOAT32,
             hint=hint_if(var, [1.0, 4.0], "the buffer gets the UNBIASED batch variance: n / (n - 1) times the "
                                           "biased one"))
mean, var, _ = running_step(np.zeros(2), np.ones(2), 0, x, momentum=0.1)
assert_close(var, [1.1, 1.7], "running_var after one step from 1 (0.9 * 1 + 0.1 * [2, 8])", **FLOAT32)
# Feature maps: channel 0 holds 0, 2, 4, 6 (n = 4 values: biased variance 5, unbiased 20/3;
# with n = N = 2 the "correction" would give 10).
x = np.array([0.0, 2.0, 4.0, 6.0]).reshape(2, 1, 1, 2)
_, var, _ = running_step(np.zeros(1), np.ones(1), 0, x, momentum=1.0)
assert_close(var, [20.0 / 3.0], "running_var for (N, C, H, W) input", **FLOAT32,
             hint=hint_if(var, [10.0], "for feature maps n = N * H * W values per channel, so the correction is "
                                       "n / (n - 1)"))
### BEGIN HIDDEN TESTS
from normlab.references import torch_running_stats as _torch_running_stats

_rng = np.random.default_rng(302)
for _shape, _momentum, _dtype in (((8, 3), 0.1, np.float64), ((3, 4, 2, 3), 0.3, np.float64),
                                  ((2, 5), 0.5, np.float64), ((1, 2, 3, 3), 0.4, np.float64),
                                  ((16, 3, 2, 2), 0.1, np.float32)):
    _batches = [(_rng.normal(size=_shape) * _rng.uniform(0.5, 3.0)).astype(_dtype) for _ in range(3)]
    _, _var_ref, _ = _torch_running_stats(_batches, momentum=_momentum)
    _mean, _var, _count = np.zeros(_shape[1]), np.ones(_shape[1]), 0
    for _b in _batches:
        _mean, _var, _count = running_step(_mean, _var, _count, _b, momentum=_momentum)
    assert_close(_var, _var_ref, f"running_var after 3 steps, input {_shape} in {np.dtype(_dtype).name}, "
                                 f"momentum {_momentum}", **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_running_cumulative", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# momentum=None: batches with means 2, 4 and 3 give running means 2, 3 (the average of
# 2 and 4), 3 (the average of all three). The initial 0 is forgotten at the first step;
# with the factor 1 / (num_batches_tracked + 2), which counts the current batch twice,
# the first step would give 1.
mean, var, count = np.zeros(1), np.ones(1), 0
for step, (batch_mean, expected) in enumerate(((2.0, 2.0), (4.0, 3.0), (3.0, 3.0)), start=1):
    x = np.array([[batch_mean - 1.0], [batch_mean + 1.0]])
    mean, var, count = running_step(mean, var, count, x, momentum=None)
    assert_close(mean, [expected], f"running_mean with momentum=None after {step} batch(es)", **FLOAT32,
                 hint=hint_if(mean, [1.0], "factor = 1 / num_batches_tracked, counting the current batch once: "
                                           "1, 1/2, 1/3, ...") if step == 1 else "")
assert count == 3, f"num_batches_tracked should be 3 after three batches, got {count!r}"
assert_close(var, [2.0], "running_var with momentum=None (every batch has unbiased variance 2)", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_running_stats as _torch_running_stats

_rng = np.random.default_rng(303)
for _shape, _dtype in (((6, 3), np.float64), ((2, 3, 3, 2), np.float64), ((16, 3), np.float32)):
    _batches = [(_rng.normal(size=_shape) * _rng.uniform(0.5, 2.0) + _rng.normal()).astype(_dtype) for _ in range(4)]
    _mean_ref, _var_ref, _ = _torch_running_stats(_batches, momentum=None)
    _mean, _var, _count = np.zeros(_shape[1]), np.ones(_shape[1]), 0
    for _b in _batches:
        _mean, _var, _count = running_step(_mean, _var, _count, _b, momentum=None)
    _what = f"momentum=None, 4 steps, input {_shape} in {np.dtype(_dtype).name}"
    assert_close(_mean, _mean_ref, f"running_mean, {_what}", **FLOAT32)
    assert_close(_var, _var_ref, f"running_var, {_what}", **FLOAT32)
# Continuing from 5 tracked batches: factor 1/6.
_mean, _var, _count = running_step(np.full(1, 6.0), np.ones(1), 5, np.array([[0.0], [0.0]]), momentum=None)
assert_close(_mean, [5.0], "running_mean continuing after 5 batches (5/6 * 6 + 1/6 * 0)", **FLOAT32)
assert _count == 6, f"num_batches_tracked from 5 should become 6, got {_count!r}"
# momentum=0.0 is a weight like any other, not None: the buffers keep their values, the count goes on.
_mean, _var, _count = running_step(np.full(2, 3.0), np.full(2, 5.0), 4, np.array([[0.0, 1.0], [2.0, 9.0]]),
                                   momentum=0.0)
assert_close(_mean, [3.0, 3.0], "running_mean after a step with momentum=0.0 (the new batch has weight 0)", **FLOAT32)
assert_close(_var, [5.0, 5.0], "running_var after a step with momentum=0.0", **FLOAT32)
assert _count == 5, f"num_batches_tracked from 4 should become 5 with momentum=0.0, got {_count!r}"
### END HIDDEN TESTS

# %% [markdown]
# How do the two conventions behave? Below, the running mean follows batch means drawn
# around 3 (not graded; it uses your function).

# %% nbgrader={"grade": false, "grade_id": "ps3_running_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(0)
batches = [rng.normal(3.0, 1.0, size=(32, 1)) for _ in range(60)]
for label, momentum in (("PyTorch default, momentum=0.1", 0.1), ("Keras default 0.99 = PyTorch 0.01", 0.01),
                        ("cumulative, momentum=None", None)):
    mean, var, count = np.zeros(1), np.ones(1), 0
    trace = []
    for batch in batches:
        mean, var, count = update_running_stats(mean, var, count, batch, momentum)
        trace.append(mean[0])
    print(f"{label:36s} after 10, 30, 60 batches: " + ", ".join(f"{trace[i]:.3f}" for i in (9, 29, 59)))

# %% [markdown]
# With `momentum=0.01` the buffer still remembers its initial 0 after 60 batches (the
# initial value's weight is still $0.99^{60} \approx 0.55$); the cumulative average is
# the best estimate for a fixed distribution (the plain average of every batch seen) but
# never forgets the early, untrained batches of a real network.
#
# ## Part 2 — A complete batch-norm module (≈ 1 hour, 10 points)
#
# Now the real thing: a `torch.nn.Module` that can stand in for `torch.nn.BatchNorm1d`
# (input `(N, C)` or `(N, C, L)`) and `torch.nn.BatchNorm2d` (input `(N, C, H, W)`) —
# one class for all of them, statistics per channel over every axis but 1.
#
# **What it holds.** Exactly what torch's layers hold, under the same names, so that a
# `state_dict` saved from one loads into the other:
#
# | name | kind | shape, initial value | when |
# |---|---|---|---|
# | `weight` ($\gamma$), `bias` ($\beta$) | `nn.Parameter` (learned) | `(C,)`, ones and zeros | `affine=True`; else `register_parameter(name, None)` |
# | `running_mean`, `running_var` | buffer (`self.register_buffer`) | `(C,)`, zeros and ones | `track_running_stats=True`; else `register_buffer(name, None)` |
# | `num_batches_tracked` | buffer | a 0-dim `torch.long` tensor, 0 | as above |
#
# Buffers are saved in the `state_dict` and follow `.double()` and `.to(device)`, but the
# optimizer never sees them. Keep the arguments as attributes too (`num_features`, `eps`,
# `momentum`, `affine`, `track_running_stats`), as torch does.
#
# **What it computes.**
#
# - *Training mode* (`module.train()`, the default): normalize with the batch mean and
#   the **biased** batch variance, $y = \gamma\,(x - \mu_{\mathcal B})/\sqrt{\sigma^2_{\mathcal B} + \epsilon} + \beta$;
#   if `track_running_stats`, also count the batch in `num_batches_tracked` and update the
#   running statistics as in Part 1. The update is bookkeeping, not part of the model's
#   computation: do it in place (`.mul_`, `.add_`, `.copy_`) under `torch.no_grad()`, so the
#   buffers never carry autograd history.
# - *Evaluation mode* (`module.eval()`): normalize with `running_mean` and `running_var`,
#   and leave the buffers alone. The output of a sample then no longer depends on its batch.
# - With `track_running_stats=False` there are no buffers and the layer uses batch
#   statistics in both modes (as torch does).
#
# Write the running-statistics update again here, in torch (do not call
# `update_running_stats`: each part is graded on its own). The gradients come from
# autograd: just write the forward computation with differentiable tensor operations.
#
# **Task (10 points).** Complete `BatchNorm`.

# %% nbgrader={"grade": false, "grade_id": "ps3_batchnorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
class BatchNorm(nn.Module):
    """Batch normalization for (N, C), (N, C, L) or (N, C, H, W) input, like
    torch.nn.BatchNorm1d / BatchNorm2d, from basic tensor operations.

    Train: batch statistics (biased variance) over every axis but 1; buffers updated
    with momentum (PyTorch convention; None = cumulative average) and the unbiased
    batch variance; num_batches_tracked counted. Eval: running statistics.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        ### BEGIN SOLUTION
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            mean = x.mean(dim=dims)
            var = ((x - mean.view(shape)) ** 2).mean(dim=dims)
            if self.training and self.track_running_stats:
                n = x.numel() // x.shape[1]
                self.num_batches_tracked += 1
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                with torch.no_grad():
                    self.running_mean.mul_(1 - factor).add_(factor * mean)
                    self.running_var.mul_(1 - factor).add_(factor * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out
        ### END SOLUTION


# %% [markdown]
# The tests compare your module with torch's, side by side, in float64 (and the hidden
# tests also in float32, with a tolerance for its rounding). The helpers in the next cell
# build such a pair (with the same random $\gamma$ and $\beta$), run your module the way
# every test does (`checked_forward`: on a copy of the input, which must stay unchanged,
# watched for the forbidden implementations, the output checked to have the input's shape
# and dtype) and compare one forward and backward pass, with a random upstream gradient;
# you can use them yourself.

# %% nbgrader={"grade": false, "grade_id": "ps3_test_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def paired(mine, reference, seed=0, dtype=torch.float64):
    """Both modules in `dtype`, with the same random weight and bias (if they have them)."""
    mine, reference = mine.to(dtype), reference.to(dtype)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("weight", "bias"):
            theirs = getattr(reference, name, None)
            if theirs is not None:
                value = torch.randn(theirs.shape, generator=generator, dtype=torch.float64).to(dtype)
                theirs.copy_(value)
                assert getattr(mine, name, None) is not None, f"your module has no parameter {name!r}"
                getattr(mine, name).copy_(value)
    return mine, reference


def first_change(before, after, name):
    """Where tensor `after` differs from `before` ("name[i, j] was a and is now b"), or None."""
    if after is None or before.shape != after.shape:
        now = "None" if after is None else f"of shape {tuple(after.shape)}"
        return f"{name} was a tensor of shape {tuple(before.shape)} and is now {now}"
    changed = torch.nonzero(before != after)
    if not len(changed):
        return None
    i = tuple(changed[0].tolist())
    return f"{name}{list(i)} was {before[i].item():.6g} and is now {after[i].item():.6g}"


def checked_forward(module, x, what):
    """module(x) as every test calls it: on a copy of x that keeps x's autograd graph, watched by
    from_scratch. AssertionError unless x stays unchanged, the state stays unchanged (only the
    buffers may change, in training mode, and without autograd history) and the output is a
    tensor of x's shape and dtype."""
    name = type(module).__name__
    state = {key: value.clone() for key, value in module.state_dict().items()}
    seen = x.clone()  # not a leaf: an in-place change of it is no autograd error, and is caught below
    out = from_scratch(lambda: module(seen), f"your {name}")
    changed = first_change(x.detach(), seen.detach(), "x")
    assert not changed, (f"{what}: {name}.forward modified its input in place ({changed}): compute new tensors "
                         "(x = x - mean, not x -= mean) and leave the caller's as it was")
    may_change = {key for key, _ in module.named_buffers()} if module.training else set()
    now = module.state_dict()
    for key, before in state.items():
        changed = None if key in may_change else first_change(before, now.get(key), key)
        assert not changed, (f"{what}: {key} changed during a forward pass in "
                             f"{'training' if module.training else 'eval'} mode ({changed}): only the buffers "
                             "may change, and only in training mode")
    for key, buffer in module.named_buffers():
        assert not buffer.requires_grad, (f"{what}: the buffer {key} carries autograd history: update the buffers "
                                          "in place under torch.no_grad()")
    assert isinstance(out, torch.Tensor), f"{what}: the output should be a tensor, got {type(out).__name__}"
    assert_shape(out, tuple(x.shape), f"{what}: output")
    assert out.dtype == x.dtype, (f"{what}: the output has dtype {out.dtype} but the input has {x.dtype}: compute "
                                  "in the input's dtype (no .float(); new tensors with dtype=x.dtype or "
                                  "torch.*_like(x))")
    return out


def compare_step(mine, reference, x, what, seed=0):
    """One forward (checked_forward) and backward pass of both modules on x, upstream gradient
    random; AssertionError at the first difference (output, input gradient, parameter gradients).
    Tolerances: float64 agrees to rounding, float32 within FLOAT32."""
    float32 = x.dtype == torch.float32
    output_tolerance = FLOAT32 if float32 else {"rtol": 1e-7, "atol": 1e-9}
    gradient_tolerance = FLOAT32 if float32 else {"rtol": 1e-6, "atol": 1e-9}
    x_mine, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, expected = checked_forward(mine, x_mine, what), reference(x_ref)
    assert_close(out, expected.detach(), f"{what}: output", **output_tolerance)
    assert out.requires_grad, f"{what}: the output has no autograd graph (did you detach it, or use torch.no_grad()?)"
    dout = torch.randn(expected.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(x.dtype)
    out.backward(dout)
    expected.backward(dout)
    assert x_mine.grad is not None, f"{what}: no gradient reached the input (did you detach it?)"
    assert_close(x_mine.grad, x_ref.grad, f"{what}: gradient with respect to the input", **gradient_tolerance)
    for name in ("weight", "bias"):
        if getattr(reference, name, None) is not None:
            assert_close(getattr(mine, name).grad, getattr(reference, name).grad, f"{what}: gradient of {name}",
                         **gradient_tolerance)


def random_input(shape, seed=0, scale=2.0, shift=1.0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * scale + shift).to(dtype)


# %% nbgrader={"grade": true, "grade_id": "ps3_test_bn_state", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Parameters and buffers, as in torch.nn.BatchNorm1d(4).
mine, theirs = BatchNorm(4).state_dict(), nn.BatchNorm1d(4).state_dict()
assert set(mine) == set(theirs), (
    f"state_dict keys are {sorted(mine)} but should be {sorted(theirs)}: weight and bias are "
    "nn.Parameter, the running statistics and num_batches_tracked are buffers (self.register_buffer)")
for key, expected in theirs.items():
    assert mine[key].shape == expected.shape, \
        f"{key} has shape {tuple(mine[key].shape)}, should be {tuple(expected.shape)}"
    assert mine[key].dtype == expected.dtype, f"{key} has dtype {mine[key].dtype}, should be {expected.dtype}"
    assert_close(mine[key], expected, f"initial {key}")
names = [name for name, _ in BatchNorm(4).named_parameters()]
assert sorted(names) == ["bias", "weight"], \
    f"the learned parameters should be weight and bias only, got {names} (running statistics are buffers)"
# Without affine parameters or running statistics.
for options in ({"affine": False}, {"track_running_stats": False}):
    mine, theirs = BatchNorm(3, **options).state_dict(), nn.BatchNorm1d(3, **options).state_dict()
    assert set(mine) == set(theirs), \
        f"BatchNorm(3, {options}): state_dict keys {sorted(mine)}, should be {sorted(theirs)}"
# A state_dict saved from torch's layer loads into yours.
layer = BatchNorm(4)
layer.load_state_dict(nn.BatchNorm1d(4, momentum=0.3).state_dict())
for attribute, value in (("num_features", 4), ("eps", 1e-5), ("momentum", 0.1), ("affine", True),
                         ("track_running_stats", True)):
    assert getattr(layer, attribute, None) == value, f"BatchNorm(4).{attribute} should be {value!r}"
### BEGIN HIDDEN TESTS
_layer = BatchNorm(5, eps=1e-3, momentum=None, affine=False).double()
assert _layer.eps == 1e-3 and _layer.momentum is None and _layer.affine is False, "arguments kept as attributes"
assert _layer.running_mean.dtype == torch.float64, "running_mean should follow .double(): make it a buffer"
assert _layer.num_batches_tracked.dtype == torch.long, "num_batches_tracked should stay torch.long"
assert _layer.weight is None and _layer.bias is None, "affine=False: weight and bias are None"
assert len(list(_layer.parameters())) == 0, "affine=False: no parameters"
_layer = BatchNorm(3, track_running_stats=False)
assert _layer.running_mean is None and _layer.num_batches_tracked is None, \
    "track_running_stats=False: running_mean, running_var and num_batches_tracked are None"
# A forward pass in each mode calls no forbidden implementation (the other tests check its values).
for _mode in ("training", "eval"):
    _layer = BatchNorm(3).double().train(_mode == "training")
    from_scratch(lambda: _layer(random_input((4, 3), seed=55)), f"your BatchNorm ({_mode} mode)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_bn_train", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# By hand, eps = 1: the channels [1, 3] and [10, 30] have batch means 2 and 20 and biased
# variances 1 and 100, so xhat = ±1 / sqrt(1 + 1) and ±10 / sqrt(100 + 1). (With eps outside
# the square root: ±1 / (1 + 1) and ±10 / (10 + 1); with the unbiased variances 2 and 200:
# ±1 / sqrt(3) and ±10 / sqrt(201).)
x = torch.tensor([[1.0, 10.0], [3.0, 30.0]], dtype=torch.float64)
with torch.no_grad():
    out = checked_forward(BatchNorm(2, eps=1.0).double(), x, "BatchNorm(2, eps=1) of [[1, 10], [3, 30]]")
xhat = np.array([1 / 2 ** 0.5, 10 / 101 ** 0.5])
assert_close(out, [-xhat, xhat], "BatchNorm(2, eps=1) of [[1, 10], [3, 30]], training mode",
             hint=hint_if(out, [[-1 / 2, -10 / 11], [1 / 2, 10 / 11]], "eps goes inside the square root: "
                                                                      "sqrt(var + eps)")
             or hint_if(out, [[-3 ** -0.5, -10 / 201 ** 0.5], [3 ** -0.5, 10 / 201 ** 0.5]],
                        "normalize with the BIASED variance (divide by n); the unbiased one only feeds running_var"))
# Outputs and gradients equal torch's, for each input layout.
for shape, reference in (((8, 3), nn.BatchNorm1d(3)), ((4, 3, 5), nn.BatchNorm1d(3)),
                         ((2, 3, 4, 4), nn.BatchNorm2d(3))):
    mine, reference = paired(BatchNorm(3), reference, seed=len(shape))
    compare_step(mine, reference, random_input(shape, seed=len(shape)), f"train mode, input {shape}")
### BEGIN HIDDEN TESTS
for _shape, _options in (((6, 4), {"eps": 0.5}), ((3, 2, 3, 5), {"eps": 1e-3, "affine": False}),
                         ((5, 2, 7), {"track_running_stats": False}), ((2, 4, 3, 3), {"momentum": None}),
                         ((1, 3, 2, 2), {})):
    _cls = nn.BatchNorm2d if len(_shape) == 4 else nn.BatchNorm1d
    _mine, _ref = paired(BatchNorm(_shape[1], **_options), _cls(_shape[1], **_options), seed=31)
    compare_step(_mine, _ref, random_input(_shape, seed=32, scale=3.0), f"train mode, input {_shape}, {_options}")
# A constant channel: its xhat is 0, its output the bias.
_x = random_input((6, 3), seed=33)
_x[:, 1] = 2.5
_mine, _ref = paired(BatchNorm(3), nn.BatchNorm1d(3), seed=34)
compare_step(_mine, _ref, _x, "train mode, channel 1 constant")
# float32, the modules' default dtype (tolerance FLOAT32).
for _shape, _cls in (((16, 4), nn.BatchNorm1d), ((4, 3, 3, 3), nn.BatchNorm2d)):
    _mine, _ref = paired(BatchNorm(_shape[1]), _cls(_shape[1]), seed=35, dtype=torch.float32)
    compare_step(_mine, _ref, random_input(_shape, seed=36, scale=3.0, dtype=torch.float32),
                 f"train mode, float32 input {_shape}")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_bn_running", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand: one training step of BatchNorm(2) (momentum 0.1) on [[1, 10], [3, 30]], whose
# channels have batch means 2 and 20 and unbiased variances 2 and 200: running_mean =
# 0.9 * 0 + 0.1 * [2, 20] = [0.2, 2], running_var = 0.9 * 1 + 0.1 * [2, 200] = [1.1, 20.9].
# (Keras' formula gives [1.8, 18] and [1.9, 180.1]; the biased variances give [1, 10.9].)
layer = BatchNorm(2).double()
for name in ("running_mean", "running_var", "num_batches_tracked"):
    assert getattr(layer, name, None) is not None, f"BatchNorm(2) has no buffer {name} (see ps3_test_bn_state)"
with torch.no_grad():
    checked_forward(layer, torch.tensor([[1.0, 10.0], [3.0, 30.0]], dtype=torch.float64),
                    "BatchNorm(2), a training step on [[1, 10], [3, 30]]")
keras = "PyTorch's momentum is the weight of the NEW batch: (1 - momentum) * running + momentum * batch"
assert_close(layer.running_mean, [0.2, 2.0], "running_mean after one step on [[1, 10], [3, 30]]",
             hint=hint_if(layer.running_mean, [1.8, 18.0], keras))
assert_close(layer.running_var, [1.1, 20.9], "running_var after one step on [[1, 10], [3, 30]]",
             hint=hint_if(layer.running_var, [1.9, 180.1], keras)
             or hint_if(layer.running_var, [1.0, 10.9], "running_var is fed the UNBIASED batch variance, "
                                                        "n / (n - 1) times the one used to normalize"))
assert int(layer.num_batches_tracked) == 1, \
    f"num_batches_tracked should be 1 after one training step, got {int(layer.num_batches_tracked)}"
# Three training steps (forward and backward): the buffers follow torch's.
for shape, reference in (((8, 3), nn.BatchNorm1d(3)), ((2, 3, 4, 4), nn.BatchNorm2d(3))):
    mine, reference = paired(BatchNorm(3), reference)
    for step in range(3):
        compare_step(mine, reference, random_input(shape, seed=10 + step, shift=step), f"step {step}, input {shape}")
    assert int(mine.num_batches_tracked) == 3, \
        f"num_batches_tracked should be 3 after three training steps, got {int(mine.num_batches_tracked)}"
    assert_close(mine.running_mean, reference.running_mean, f"running_mean after 3 steps, input {shape}")
    assert_close(mine.running_var, reference.running_var, f"running_var after 3 steps, input {shape}")
### BEGIN HIDDEN TESTS
for _shape, _momentum in (((5, 2, 6), 0.3), ((3, 4, 2, 2), 0.05), ((16, 3), 0.9)):
    _cls = nn.BatchNorm2d if len(_shape) == 4 else nn.BatchNorm1d
    _mine, _ref = paired(BatchNorm(_shape[1], momentum=_momentum), _cls(_shape[1], momentum=_momentum), seed=34)
    for _step in range(4):
        compare_step(_mine, _ref, random_input(_shape, seed=40 + _step, scale=1.0 + _step), f"step {_step}")
    assert_close(_mine.running_mean, _ref.running_mean, f"running_mean, input {_shape}, momentum {_momentum}")
    assert_close(_mine.running_var, _ref.running_var, f"running_var, input {_shape}, momentum {_momentum}")
    assert int(_mine.num_batches_tracked) == 4, "num_batches_tracked after 4 steps"
# float32 (tolerance FLOAT32).
_mine, _ref = paired(BatchNorm(3), nn.BatchNorm2d(3), seed=35, dtype=torch.float32)
for _step in range(3):
    compare_step(_mine, _ref, random_input((4, 3, 2, 2), seed=44 + _step, dtype=torch.float32),
                 f"float32, step {_step}")
assert_close(_mine.running_mean, _ref.running_mean, "running_mean after 3 float32 steps", **FLOAT32)
assert_close(_mine.running_var, _ref.running_var, "running_var after 3 float32 steps", **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_bn_eval", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand, eps = 0: with running_mean [1, 10] and running_var [4, 100], eval mode maps
# [[1, 10], [3, 30]] to [[0, 0], [1, 2]] (the batch's own statistics would give [[-1, -1], [1, 1]]).
layer = BatchNorm(2, eps=0.0).double()
for name in ("running_mean", "running_var"):
    assert getattr(layer, name, None) is not None, f"BatchNorm(2) has no buffer {name} (see ps3_test_bn_state)"
with torch.no_grad():
    layer.running_mean.copy_(torch.tensor([1.0, 10.0]))
    layer.running_var.copy_(torch.tensor([4.0, 100.0]))
    out = checked_forward(layer.eval(), torch.tensor([[1.0, 10.0], [3.0, 30.0]], dtype=torch.float64),
                          "BatchNorm(2, eps=0), eval mode, of [[1, 10], [3, 30]]")
assert_close(out, [[0.0, 0.0], [1.0, 2.0]], "BatchNorm(2, eps=0) in eval mode, running_mean [1, 10], running_var "
                                            "[4, 100], of [[1, 10], [3, 30]]",
             hint=hint_if(out, [[-1.0, -1.0], [1.0, 1.0]], "in eval mode normalize with running_mean and "
                                                          "running_var, not the batch's statistics"))
# Train a few steps, then evaluate: outputs and gradients equal torch's in eval mode, and
# the buffers stay as they are (checked_forward).
for shape, reference in (((8, 3), nn.BatchNorm1d(3)), ((2, 3, 4, 4), nn.BatchNorm2d(3))):
    mine, reference = paired(BatchNorm(3), reference)
    for step in range(3):
        compare_step(mine, reference, random_input(shape, seed=20 + step, shift=2.0), f"training step {step}")
    mine.eval()
    reference.eval()
    compare_step(mine, reference, random_input(shape, seed=30), f"eval mode, input {shape}")
    # In eval mode a sample's output does not depend on its batch.
    x = random_input(shape, seed=31)
    with torch.no_grad():
        alone, in_batch = checked_forward(mine, x[:1], "eval mode, sample 0"), checked_forward(mine, x, "eval mode")
    assert_close(alone, in_batch[:1], f"eval mode: sample 0 alone vs in its batch, input {shape}")
### BEGIN HIDDEN TESTS
_mine, _ref = paired(BatchNorm(4, eps=0.1, momentum=0.5), nn.BatchNorm1d(4, eps=0.1, momentum=0.5), seed=35)
for _step in range(2):
    compare_step(_mine, _ref, random_input((6, 4), seed=50 + _step, scale=3.0, shift=-1.0), f"step {_step}")
_mine.eval()
_ref.eval()
compare_step(_mine, _ref, random_input((5, 4), seed=52), "eval mode, eps 0.1, momentum 0.5")
# Without affine parameters, input (N, C, L).
_mine, _ref = paired(BatchNorm(3, affine=False), nn.BatchNorm1d(3, affine=False), seed=36)
for _step in range(2):
    compare_step(_mine, _ref, random_input((4, 3, 5), seed=53 + _step), f"affine=False, step {_step}")
_mine.eval()
_ref.eval()
compare_step(_mine, _ref, random_input((2, 3, 5), seed=55), "eval mode, affine=False, input (2, 3, 5)")
# Without running statistics, eval mode uses the batch statistics, like torch.
_mine, _ref = paired(BatchNorm(3, track_running_stats=False), nn.BatchNorm2d(3, track_running_stats=False), seed=36)
_mine.eval()
_ref.eval()
compare_step(_mine, _ref, random_input((2, 3, 3, 3), seed=54), "eval mode, track_running_stats=False")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_bn_momentum_none", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# momentum=None: the cumulative average of all batches so far.
mine, reference = paired(BatchNorm(2, momentum=None), nn.BatchNorm1d(2, momentum=None))
for step in range(4):
    compare_step(mine, reference, random_input((6, 2), seed=60 + step, shift=step), f"momentum=None, step {step}")
    assert_close(mine.running_mean, reference.running_mean,
                 f"running_mean after {step + 1} batch(es), momentum=None (the average of the batch means)")
assert int(mine.num_batches_tracked) == 4, "num_batches_tracked after 4 batches"
assert_close(mine.running_var, reference.running_var, "running_var after 4 batches, momentum=None")
### BEGIN HIDDEN TESTS
_mine, _ref = paired(BatchNorm(3, momentum=None), nn.BatchNorm2d(3, momentum=None), seed=37)
for _step in range(3):
    compare_step(_mine, _ref, random_input((2, 3, 2, 3), seed=70 + _step, scale=1.0 + _step), f"step {_step}")
assert_close(_mine.running_mean, _ref.running_mean, "running_mean, 4-D input, momentum=None")
assert_close(_mine.running_var, _ref.running_var, "running_var, 4-D input, momentum=None")
### END HIDDEN TESTS

# %% [markdown]
# Your layer is a drop-in replacement. A quick look (not graded): a small network with
# `torch.nn.BatchNorm1d` and the same network with your `BatchNorm`, loaded from the
# first one's `state_dict`, give the same outputs in eval mode, up to float32 round-off.

# %% nbgrader={"grade": false, "grade_id": "ps3_dropin_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
with_torch = nn.Sequential(nn.Linear(5, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
with_yours = nn.Sequential(nn.Linear(5, 8, bias=False), BatchNorm(8), nn.ReLU(), nn.Linear(8, 2))
for _ in range(5):  # a few training-mode passes move the running statistics
    with_torch(torch.randn(16, 5) * 2 + 1)
with_yours.load_state_dict(with_torch.state_dict())
with_torch.eval()
with_yours.eval()
x = torch.randn(4, 5)
with torch.no_grad():
    print("largest difference of the eval outputs:", float((with_torch(x) - with_yours(x)).abs().max()))

# %% [markdown]
# ## Part 3 — Layer norm and group norm (≈ 40 minutes, 7 points)
#
# Batch norm needs a batch: its statistics mix the samples, so it behaves differently in
# training and at test time, and badly with tiny batches. Layer norm (Ba et al., 2016) and
# group norm (Wu & He, 2018) compute the same $\hat x = (x-\mu)/\sqrt{\sigma^2+\epsilon}$
# (biased variance) over a different set of entries — **within one sample** — so they
# need no running statistics and do the same thing in both modes (Raschka's slides show
# Wu & He's cube figure):
#
# | layer | statistics over, for each sample | $\gamma$, $\beta$ |
# |---|---|---|
# | `LayerNorm(normalized_shape)` | the last `len(normalized_shape)` axes, e.g. `D` of `(N, D)` or `(N, L, D)`, or `(C, H, W)` of `(N, C, H, W)` | shape `normalized_shape`, elementwise |
# | `GroupNorm(G, C)` | each group of $C/G$ **consecutive** channels, together with all positions | shape `(C,)`, per channel |
#
# `GroupNorm(1, C)` normalizes each sample over all of `(C, H, W)` (layer norm without
# its elementwise affine); `GroupNorm(C, C)` normalizes each channel of each sample over
# its positions (instance norm).
#
# *Hint for group norm:* reshape `x` to `(N, G, -1)`; the statistics are then over the
# last axis.
#
# **Task (7 points).** Complete `LayerNorm` (3 points) and `GroupNorm` (4 points), with
# the parameters named and shaped as torch's (`weight` ones, `bias` zeros; none when
# `elementwise_affine=False` / `affine=False`).

# %% nbgrader={"grade": false, "grade_id": "ps3_layernorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LayerNorm(nn.Module):
    """Layer normalization, like torch.nn.LayerNorm: each sample is normalized over its
    last len(normalized_shape) axes; weight and bias have shape normalized_shape."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        ### BEGIN SOLUTION
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        dims = tuple(range(x.dim() - len(self.normalized_shape), x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.elementwise_affine:
            out = out * self.weight + self.bias
        return out
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps3_test_layernorm", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand, eps = 0: the sample [1, 3] has mean 2 and (biased) standard deviation 1, the
# sample [10, 30] mean 20 and standard deviation 10. (Normalizing each feature over the
# batch would give [[-1, -1], [1, 1]]; the unbiased variance ±1 / sqrt(2) everywhere.)
with torch.no_grad():
    out = checked_forward(LayerNorm(2, eps=0.0), torch.tensor([[1.0, 3.0], [10.0, 30.0]]),
                          "LayerNorm(2, eps=0) of [[1, 3], [10, 30]]")
assert_close(out, [[-1.0, 1.0], [-1.0, 1.0]], "LayerNorm(2, eps=0) of [[1, 3], [10, 30]]", **FLOAT32,
             hint=hint_if(out, [[-1.0, -1.0], [1.0, 1.0]], "each sample (row) is normalized over its own features, "
                                                          "not each feature over the batch")
             or hint_if(out, [[-2 ** -0.5, 2 ** -0.5]] * 2, "normalize with the BIASED variance (divide by the "
                                                            "number of values)"))
# With eps = 1: [1, 3] has variance 1, so xhat = ±1 / sqrt(1 + 1) (eps outside the square root: ±1 / 2).
with torch.no_grad():
    out = checked_forward(LayerNorm(2, eps=1.0), torch.tensor([[1.0, 3.0]]), "LayerNorm(2, eps=1) of [[1, 3]]")
assert_close(out, [[-2 ** -0.5, 2 ** -0.5]], "LayerNorm(2, eps=1) of [[1, 3]]", **FLOAT32,
             hint=hint_if(out, [[-0.5, 0.5]], "eps goes inside the square root: sqrt(var + eps)"))
assert sorted(LayerNorm(5).state_dict()) == ["bias", "weight"], "LayerNorm's state_dict holds weight and bias"
assert_shape(LayerNorm(5).weight, (5,), "LayerNorm(5).weight")
assert not list(LayerNorm(5, elementwise_affine=False).parameters()), "elementwise_affine=False: no parameters"
# Against torch: (N, D), and (N, L, D) with normalized over the last axis, as in a transformer.
for shape in ((6, 5), (2, 4, 5)):
    mine, reference = paired(LayerNorm(5), nn.LayerNorm(5), seed=len(shape))
    compare_step(mine, reference, random_input(shape, seed=len(shape)), f"LayerNorm(5), input {shape}")
### BEGIN HIDDEN TESTS
for _shape, _options in (((4, 7), {"eps": 0.5}), ((3, 2, 6), {"elementwise_affine": False}), ((1, 7), {})):
    _mine, _ref = paired(LayerNorm(_shape[-1], **_options), nn.LayerNorm(_shape[-1], **_options), seed=38)
    compare_step(_mine, _ref, random_input(_shape, seed=80, scale=4.0, shift=-2.0), f"input {_shape}, {_options}")
# A constant sample: its xhat is 0, its output the bias.
_x = random_input((3, 6), seed=81)
_x[1] = -1.5
_mine, _ref = paired(LayerNorm(6), nn.LayerNorm(6), seed=41)
compare_step(_mine, _ref, _x, "LayerNorm(6), sample 1 constant")
# float32, the modules' default dtype (tolerance FLOAT32).
_mine, _ref = paired(LayerNorm(6), nn.LayerNorm(6), seed=42, dtype=torch.float32)
compare_step(_mine, _ref, random_input((8, 3, 6), seed=82, scale=3.0, dtype=torch.float32),
             "LayerNorm(6), float32 input (8, 3, 6)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_layernorm_shapes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# normalized_shape with several axes: (C, H, W), or only (H, W), of (N, C, H, W) feature maps.
for normalized_shape in ((3, 4, 4), (4, 4)):
    mine, reference = paired(LayerNorm(normalized_shape), nn.LayerNorm(normalized_shape), seed=5)
    assert_shape(mine.weight, normalized_shape, f"LayerNorm({normalized_shape}).weight")
    compare_step(mine, reference, random_input((2, 3, 4, 4), seed=6),
                 f"LayerNorm({normalized_shape}), input (2, 3, 4, 4)")
### BEGIN HIDDEN TESTS
_mine, _ref = paired(LayerNorm([2, 3], eps=1e-3), nn.LayerNorm([2, 3], eps=1e-3), seed=39)
compare_step(_mine, _ref, random_input((4, 5, 2, 3), seed=83), "LayerNorm([2, 3]), input (4, 5, 2, 3)")
_mine, _ref = paired(LayerNorm((3, 4, 4)), nn.LayerNorm((3, 4, 4)), seed=43, dtype=torch.float32)
compare_step(_mine, _ref, random_input((2, 3, 4, 4), seed=84, dtype=torch.float32),
             "LayerNorm((3, 4, 4)), float32 input (2, 3, 4, 4)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ps3_groupnorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
class GroupNorm(nn.Module):
    """Group normalization, like torch.nn.GroupNorm, for (N, C) or (N, C, *positions) input:
    the C channels form num_groups groups of C / num_groups consecutive channels; each
    (sample, group) is normalized over its channels and all positions; weight and bias
    have shape (C,), per channel."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_channels={num_channels} is not divisible by num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        ### BEGIN SOLUTION
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        n = x.shape[0]
        grouped = x.reshape(n, self.num_groups, -1)
        mean = grouped.mean(dim=2, keepdim=True)
        var = ((grouped - mean) ** 2).mean(dim=2, keepdim=True)
        normalized = (grouped - mean) / torch.sqrt(var + self.eps)
        out = normalized.reshape(x.shape)
        if self.affine:
            shape = [1, -1] + [1] * (x.dim() - 2)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps3_test_groupnorm", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# By hand, eps = 0: 4 channels in 2 groups, one position. Sample [1, 3, 10, 30]: group
# (1, 3) has mean 2 and std 1, group (10, 30) mean 20 and std 10. (Groups of interleaved
# channels, (1, 10) and (3, 30), would give [-1, -1, 1, 1].)
with torch.no_grad():
    out = checked_forward(GroupNorm(2, 4, eps=0.0), torch.tensor([[1.0, 3.0, 10.0, 30.0]]),
                          "GroupNorm(2, 4, eps=0) of [[1, 3, 10, 30]]")
assert_close(out, [[-1.0, 1.0, -1.0, 1.0]], "GroupNorm(2, 4, eps=0) of [[1, 3, 10, 30]]", **FLOAT32,
             hint=hint_if(out, [[-1.0, -1.0, 1.0, 1.0]], "a group is C / G CONSECUTIVE channels: channels 0-1 and "
                                                        "2-3 here"))
layer = GroupNorm(2, 6)
assert sorted(layer.state_dict()) == ["bias", "weight"], "GroupNorm's state_dict holds weight and bias"
assert_shape(layer.weight, (6,), "GroupNorm(2, 6).weight (one per channel)")
# Against torch, with random weight and bias.
for groups, shape in ((2, (3, 6, 4, 4)), (3, (4, 6)), (2, (2, 6, 5))):
    mine, reference = paired(GroupNorm(groups, 6), nn.GroupNorm(groups, 6), seed=groups)
    compare_step(mine, reference, random_input(shape, seed=len(shape)), f"GroupNorm({groups}, 6), input {shape}")
### BEGIN HIDDEN TESTS
for _groups, _shape, _options in ((4, (2, 8, 3, 3), {"eps": 0.5}), (3, (3, 6, 2, 5), {"affine": False}),
                                  (2, (5, 4, 3), {}), (2, (1, 4, 2, 3), {})):
    _mine, _ref = paired(GroupNorm(_groups, _shape[1], **_options), nn.GroupNorm(_groups, _shape[1], **_options),
                         seed=40)
    compare_step(_mine, _ref, random_input(_shape, seed=83, scale=3.0), f"GroupNorm({_groups}), input {_shape}")
# A constant group (channels 0 and 1 of every sample): its xhat is 0, its output the bias.
_x = random_input((2, 4, 3), seed=84)
_x[:, :2] = 0.5
_mine, _ref = paired(GroupNorm(2, 4), nn.GroupNorm(2, 4), seed=44)
compare_step(_mine, _ref, _x, "GroupNorm(2, 4), group 0 constant")
# float32, the modules' default dtype (tolerance FLOAT32).
_mine, _ref = paired(GroupNorm(3, 6), nn.GroupNorm(3, 6), seed=45, dtype=torch.float32)
compare_step(_mine, _ref, random_input((3, 6, 4, 4), seed=85, scale=3.0, dtype=torch.float32),
             "GroupNorm(3, 6), float32 input (3, 6, 4, 4)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_groupnorm_limits", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
x = random_input((3, 4, 5, 5), seed=7)
with torch.no_grad():
    # One group: layer norm over (C, H, W) of each sample.
    assert_close(checked_forward(GroupNorm(1, 4, affine=False).double(), x, "GroupNorm(1, 4)"),
                 nn.LayerNorm((4, 5, 5), elementwise_affine=False).double()(x),
                 "GroupNorm(1, 4) vs LayerNorm((4, 5, 5))")
    # One channel per group: instance norm, each channel of each sample over its positions.
    assert_close(checked_forward(GroupNorm(4, 4, affine=False).double(), x, "GroupNorm(4, 4)"),
                 nn.InstanceNorm2d(4).double()(x), "GroupNorm(4, 4) vs InstanceNorm2d(4)")
    # Nothing is shared between samples: sample 0 alone gives the same output.
    layer = GroupNorm(2, 4, affine=False).double()
    alone = checked_forward(layer, x[:1], "GroupNorm(2, 4), sample 0")
    in_batch = checked_forward(layer, x, "GroupNorm(2, 4)")
assert_close(alone, in_batch[:1], "GroupNorm: sample 0 alone vs in its batch",
             hint="statistics are per sample: never average over the batch axis")
### BEGIN HIDDEN TESTS
_x = random_input((2, 6, 3, 2), seed=86)
with torch.no_grad():
    assert_close(checked_forward(GroupNorm(6, 6, affine=False).double(), _x, "GroupNorm(6, 6)"),
                 nn.InstanceNorm2d(6).double()(_x), "GroupNorm(6, 6) vs InstanceNorm2d(6)")
    assert_close(checked_forward(GroupNorm(1, 6, eps=0.1, affine=False).double(), _x, "GroupNorm(1, 6, eps=0.1)"),
                 nn.LayerNorm((6, 3, 2), eps=0.1, elementwise_affine=False).double()(_x),
                 "GroupNorm(1, 6, eps=0.1) vs LayerNorm((6, 3, 2), eps=0.1)")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 — Inverted dropout (≈ 25 minutes, 4 points)
#
# Dropout (Srivastava et al., 2014) zeroes each unit independently with probability $p$
# during training. PyTorch's `p` is the probability to **drop**; Silva's slides use the
# **keep** probability `keep_prob` $= 1 - p$. In *inverted* dropout the kept units are
# divided by the keep probability during training,
#
# $$y = \frac{x \odot \text{mask}}{1 - p}, \qquad \text{mask}_i \sim \text{Bernoulli}(1 - p),$$
#
# so that $\mathbb E[y] = x$, and at test time the layer is the identity ("we do **not**
# drop units at test time", Schilling's slides): no rescaling to remember at deployment.
# Every entry of the input gets its own mask value — every sample and every feature.
#
# **Task (4 points).** Complete `Dropout` for $0 \le p < 1$.

# %% nbgrader={"grade": false, "grade_id": "ps3_dropout", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Dropout(nn.Module):
    """Inverted dropout, like torch.nn.Dropout, for input of any shape: in training, zero
    each entry with probability p (0 <= p < 1), a new mask at every call, and divide the
    kept ones by 1 - p; in eval mode, the identity."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        ### BEGIN SOLUTION
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        mask = (torch.rand_like(x) < keep).to(x.dtype)
        return x * mask / keep
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps3_test_dropout_train", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
x = torch.rand(400, 250, dtype=torch.float64) + 0.5  # no zeros in the input
layer = Dropout(p=0.2)
layer.train()
with torch.no_grad():
    out = checked_forward(layer, x, "Dropout(p=0.2), training mode")
dropped = out == 0
fraction = float(dropped.double().mean())
assert abs(fraction - 0.2) < 0.01, (
    f"Dropout(p=0.2) zeroed {fraction:.3f} of the entries, should be about 0.2"
    + (": p is the probability to DROP (the keep probability is 1 - p)" if abs(fraction - 0.8) < 0.01 else ""))
scale = out[~dropped] / x[~dropped]
assert_close(out[~dropped], x[~dropped] / 0.8, "the kept entries of Dropout(p=0.2)",
             hint=f"the kept entries are x times {float(scale[0]):.4g}: inverted dropout divides them by the keep "
                  "probability 1 - p = 0.8" if torch.allclose(scale, scale[0]) else "")
# Every entry has its own mask value: samples 0, 2, 4, ... and 1, 3, 5, ... are dropped in
# the same places only by chance (about 0.8 * 0.8 + 0.2 * 0.2 = 68 % of the entries).
agreement = float((dropped[0::2] == dropped[1::2]).double().mean())
assert agreement < 0.9, (
    f"the samples were dropped in the same places ({agreement:.0%} of the entries agree): draw one mask "
    "value for every entry of x (torch.rand_like(x)), not one mask for the whole batch")
with torch.no_grad():
    assert_close(checked_forward(Dropout(p=0.0).train(), x, "Dropout(p=0), training mode"), x,
                 "Dropout(p=0) in training mode")
### BEGIN HIDDEN TESTS
torch.manual_seed(1)
# float32 and feature maps (N, C, H, W) too: every entry of any shape has its own mask value.
for _p, _shape in ((0.5, (300, 300)), (0.7, (300, 300)), (0.05, (300, 300)), (0.4, (50, 8, 15, 15))):
    _x = torch.rand(_shape) + 1.0
    with torch.no_grad():
        _out = checked_forward(Dropout(p=_p).train(), _x, f"Dropout(p={_p}), input {_shape}")
    _dropped = _out == 0
    _fraction = float(_dropped.double().mean())
    assert abs(_fraction - _p) < 0.01, f"Dropout(p={_p}), input {_shape}: zeroed {_fraction:.3f} of the entries"
    assert_close(_out[~_dropped], _x[~_dropped] / (1 - _p), f"kept entries of Dropout(p={_p}), input {_shape}",
                 **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_dropout_eval", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
x = torch.rand(50, 40, dtype=torch.float64) + 0.5
layer = Dropout(p=0.5)
layer.eval()
with torch.no_grad():
    assert_close(checked_forward(layer, x, "Dropout(p=0.5), eval mode"), x, "Dropout(p=0.5) in eval mode",
                 hint="at test time inverted dropout is the identity: no mask and no scaling")
### BEGIN HIDDEN TESTS
_x = torch.randn(20, 3, 4)
assert_close(checked_forward(Dropout(p=0.9).eval(), _x, "Dropout(p=0.9), eval mode, 3-D input"), _x,
             "Dropout(p=0.9) in eval mode, 3-D input")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps3_test_dropout_expectation", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Averaged over many draws, inverted dropout leaves every entry unchanged: E[y] = x. The
# draws: 4000 copies of x in one batch (each entry has its own mask value), in two calls.
torch.manual_seed(2)
x = torch.linspace(-2.0, 2.0, 40, dtype=torch.float64).reshape(4, 10)
layer = Dropout(p=0.3).train()
with torch.no_grad():
    first, second = (checked_forward(layer, x.repeat(2000, 1), "Dropout(p=0.3), 2000 copies of x") for _ in range(2))
# Two calls drop the same entries only by chance (about 0.7 * 0.7 + 0.3 * 0.3 = 58 % of them).
agreement = float(((first == 0) == (second == 0)).double().mean())
assert agreement < 0.9, (
    f"two calls of Dropout dropped the same entries ({agreement:.0%} agree): draw a new mask at every call "
    "(do not set a seed inside forward, do not keep a mask from an earlier call)")
average = torch.cat([first, second]).reshape(4000, 4, 10).mean(dim=0)
assert_close(average, x, "Dropout(p=0.3) of x, averaged over 4000 draws", rtol=0.1, atol=0.08)
### BEGIN HIDDEN TESTS
torch.manual_seed(3)
_x = torch.ones(2000, 50, dtype=torch.float64)
with torch.no_grad():
    _out = checked_forward(Dropout(p=0.5).train(), _x, "Dropout(p=0.5), training mode")
_kept = (_out != 0).double()
# Each sample has its own mask: two samples agree on about half of the entries, not all.
_agreement = float((_kept[0::2] == _kept[1::2]).double().mean())
assert abs(_agreement - 0.5) < 0.05, \
    f"masks of different samples agree on {_agreement:.2f} of the entries: draw one mask value per entry"
_x = torch.randn(30, 20, dtype=torch.float64, requires_grad=True)
_out = checked_forward(Dropout(p=0.4).train(), _x, "Dropout(p=0.4), training mode")
_out.backward(torch.ones_like(_out))
assert_close(_x.grad, (_out != 0).double() / 0.6, "gradient of Dropout(p=0.4)")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 — Concepts (4 points)
#
# Answer each question with one letter in quotes, e.g. `q_keras = "a"`.
#
# **Question 1.** A Keras model uses `BatchNormalization(momentum=0.99)`. Which `momentum`
# of `torch.nn.BatchNorm1d` gives the same running averages?
#
# - (a) `momentum=0.99`
# - (b) `momentum=0.01`
# - (c) `momentum=0.1`
# - (d) `momentum=0.9`

# %% nbgrader={"grade": false, "grade_id": "ps3_q_keras", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_keras = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_keras = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps3_test_q_keras", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_keras, "abcd", "q_keras")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_keras: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 2.** You evaluate a trained network with batch norm on the test set, in
# batches of 16, inside `with torch.no_grad():`, but forget `model.eval()`. What happens?
#
# - (a) Nothing: without gradients, batch norm uses its running statistics anyway.
# - (b) Each prediction depends on the other 15 images of its batch, and every test
#   batch also moves `running_mean` and `running_var`.
# - (c) PyTorch raises an error because the model is in training mode.
# - (d) Only the speed changes: the predictions are the same.

# %% nbgrader={"grade": false, "grade_id": "ps3_q_forgot_eval", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_forgot_eval = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_forgot_eval = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps3_test_q_forgot_eval", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_forgot_eval, "abcd", "q_forgot_eval")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_forgot_eval: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 3.** In *training* mode, which layers give a sample the same output whatever
# the other samples of its mini-batch are?
#
# - (a) Batch norm only.
# - (b) Layer norm and group norm.
# - (c) Batch norm and group norm.
# - (d) All three.

# %% nbgrader={"grade": false, "grade_id": "ps3_q_batch_independent", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_batch_independent = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_batch_independent = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps3_test_q_batch_independent", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_batch_independent, "abcd", "q_batch_independent")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_batch_independent: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 4.** A network has `Dropout(p)` directly before a batch-norm layer. Why can
# its test accuracy suffer?
#
# - (a) The kept units are multiplied by $1/(1-p)$, which shifts the mean that batch norm sees.
# - (b) In training, the dropped-and-rescaled activations have a larger variance than the
#   same activations at test time; `running_var` stores the training variance, so at test
#   time batch norm shrinks its inputs (the "variance shift").
# - (c) The running statistics are not updated while dropout is active.
# - (d) Dropout and batch norm cannot be used in the same network.

# %% nbgrader={"grade": false, "grade_id": "ps3_q_dropout_bn", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_dropout_bn = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_dropout_bn = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps3_test_q_dropout_bn", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_dropout_bn, "abcd", "q_dropout_bn")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_dropout_bn: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# ## Before you submit
#
# 1. *Kernel → Restart Kernel and Run All Cells*.
# 2. Save the notebook (Ctrl-S) and run the last cell below: it checks the saved notebook the
#    way the grader does (from a terminal: `normlab check ps3.ipynb`).
# 3. Submit `ps3.ipynb`.
#
# **Summary.** Batch norm keeps two running averages for inference, updated with the
# weight `momentum` on the new batch (PyTorch; Keras' `momentum=0.99` is PyTorch's
# `momentum=0.01`), fed with the *unbiased* batch variance, and counted in
# `num_batches_tracked` (`momentum=None`: the cumulative average). In eval mode it is a
# fixed affine map per channel; the buffers are part of the `state_dict` but not
# parameters. Layer and group norm compute the same
# normalization within each sample — over the last axes, or over groups of consecutive
# channels with their positions — so they need no running statistics. Inverted dropout
# divides by the keep probability $1-p$ in training and does nothing at test time.

# %% nbgrader={"grade": false, "grade_id": "ps3_check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Save the notebook first (Ctrl-S): this checks the saved file, the way the grader runs it.
from normlab_tools.check import check

check()
