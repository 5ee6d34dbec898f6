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
# # Problem set 5 — Backpropagation through a whole batch-norm network, by hand
#
# *normlab, normalization in deep learning* · about 2–3 hours · **25 points**
#
# In problem set 2 you wrote batch norm's backward pass for one layer. Here you
# backpropagate through a *whole* network, tensor by tensor, the way Andrej Karpathy does
# it in *makemore part 4 ("Becoming a backprop ninja")*: a two-layer MLP with batch norm
# and `tanh`, trained on the 8×8 digits. Every intermediate tensor of the forward pass gets
# its gradient, and every gradient is compared with what autograd computes. In this
# problem set you
#
# 1. backpropagate through the network one intermediate at a time (the staged chain rule);
# 2. collapse the cross-entropy backward into one line;
# 3. collapse batch norm's backward into one line — for the batch norm of the course
#    (variance divided by $n$) and for Karpathy's, whose variance is Bessel-corrected
#    (divided by $n-1$), which adds a factor $\frac{n}{n-1}$;
# 4. train the network with your backward pass instead of autograd;
# 5. answer two conceptual questions.
#
# **How this is graded.** The test cells after each part are *visible tests*: they compare
# your gradients with autograd's and print, for every tensor, whether they agree exactly,
# approximately and by how much (Karpathy's `cmp`). The grader also runs *hidden tests*
# on the same code: other sizes, batches of two, random upstream gradients, the edge cases
# the docstrings promise, float32 inputs. Every test calls your code on copies of its
# inputs and fails if your code changes them in place, and every test fails if your code
# calls one of the implementations the rules below forbid.
#
# To check your work, save the notebook (Ctrl-S) and run the last cell of the notebook: it
# runs the saved notebook the way the grader does, in a separate fresh kernel, and prints
# the points of every visible test. From a terminal, `normlab check ps5.ipynb` does the same.
#
# **Rules.**
# - Write your code where it says `# YOUR CODE HERE` and delete the
#   `raise NotImplementedError()` line. Do not rename functions or arguments.
# - Compute every gradient by hand with tensor operations (`@`, `sum`, `exp`, `max`,
#   `one_hot`, ...). Do **not** use autograd (`.backward()`, `torch.autograd`), torch's
#   `cross_entropy` / `nll_loss` / `batch_norm`, or the course library (`normlab.references`,
#   `normlab.functional`, `normlab.nn`): the tests watch for them.
# - Leave the inputs as they are: compute new tensors (`x = x - mean`, not `x -= mean`).
# - Compute in the dtype of the inputs (float64 in most tests, float32 in some).
# - Do not delete or copy cells. A test cell that prints a warning scores 0.
# - *Restart the kernel and run all cells* before you submit.

# %% nbgrader={"grade": false, "grade_id": "ps5_setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import os

import numpy as np
import torch

from normlab import data
from normlab.grading_helpers import (assert_choice, assert_close, assert_gradients_close, assert_no_torch_calls,
                                     assert_shape, checked_call, gradient_table, hint_if)
from normlab.references import bn_mlp_forward, bn_mlp_gradients

torch.set_num_threads(1)
GRADING = "NBGRADER_EXECUTION" in os.environ
STEPS = 30 if GRADING else 1000  # training steps of Part 4 (shortened when graded)

FORBIDDEN = ("backward", "autograd", "cross_entropy", "nll_loss", "batch_norm")  # autograd, torch's own
COURSE_LIBRARY = ("normlab.functional", "normlab.nn", "normlab.references")
# Where float32 is allowed: it keeps about 7 significant digits, and the gradients here
# are sums of a few dozen products of order 1; rtol 1e-4 and atol 1e-5 leave a wide
# margin, and every mistake the tests look for is off by far more.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}
EXACT = {"rtol": 1e-9, "atol": 1e-12}  # float64 against autograd: only the order of the sums differs

# The forward pass's intermediates, in the order they are computed (normlab.references.bn_mlp_forward).
INTERMEDIATES = ("hprebn", "bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv", "bnraw", "hpreact", "h", "logits",
                 "logit_maxes", "norm_logits", "counts", "counts_sum", "counts_sum_inv", "probs", "logprobs")
# The gradients network_backward returns, in the order the backward pass computes them; the test cells check them group by group.
LOSS_PART = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes", "logits")
LAYER2_PART = ("h", "W2", "b2")
BN_PART = ("hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff", "bnmeani", "hprebn")
LAYER1_PART = ("W1", "b1")

digits = data.load_digits(flat=True)  # (N, 64) images, standardized with train statistics


def init_params(inputs=64, hidden=64, classes=10, seed=0, dtype=torch.float64):
    """W1, b1, bngain, bnbias, W2, b2 as Karpathy initializes them for this exercise: nothing
    exactly 0 or 1, so a gradient that forgets a term cannot pass by luck."""
    g = torch.Generator().manual_seed(seed)
    return {"W1": torch.randn(inputs, hidden, generator=g, dtype=dtype) * (5 / 3) / inputs ** 0.5,
            "b1": torch.randn(hidden, generator=g, dtype=dtype) * 0.1,
            "bngain": 1.0 + 0.1 * torch.randn(hidden, generator=g, dtype=dtype),
            "bnbias": 0.1 * torch.randn(hidden, generator=g, dtype=dtype),
            "W2": torch.randn(hidden, classes, generator=g, dtype=dtype) * 0.1,
            "b2": torch.randn(classes, generator=g, dtype=dtype) * 0.1}


def forward_cache(params, x, y, dtype=torch.float64):
    """The forward pass (bn_mlp_forward): its intermediates and x as plain tensors of `dtype`
    (no autograd history), and the loss."""
    t = bn_mlp_forward(params, x, y)
    cache = {name: t[name].detach().to(dtype) for name in INTERMEDIATES}
    cache["x"] = torch.as_tensor(np.asarray(x), dtype=dtype)
    return cache, float(t["loss"].detach())


def network_case(n=32, hidden=64, seed=0, dloss=1.0, dtype=torch.float64):
    """A test's inputs: (cache, params, y, dloss) for a batch of n digits, and autograd's gradients."""
    x, y = digits.x_train[seed * n:(seed + 1) * n].double(), digits.y_train[seed * n:(seed + 1) * n]
    params = init_params(x.shape[1], hidden, 10, seed=seed)
    cache, _ = forward_cache(params, x, y, dtype)
    expected = bn_mlp_gradients(params, x, y, dloss=dloss)
    return (cache, {k: v.to(dtype) for k, v in params.items()}, torch.as_tensor(y), dloss), expected


def from_scratch(run, what):
    """run(), watched: AssertionError if it uses autograd, torch's own loss or batch norm, or the course library."""
    return assert_no_torch_calls(run, forbidden=FORBIDDEN, modules=COURSE_LIBRARY, what=what)


def check_dtype(out, dtype, what):
    """AssertionError unless the tensor `out` has the inputs' dtype."""
    if isinstance(out, torch.Tensor) and out.dtype != dtype:
        raise AssertionError(f"{what} has dtype {out.dtype} but the inputs are {dtype}: compute in the inputs' dtype "
                             "(no .float() or .double())")


def backward_of(cache, params, y, dloss=1.0):
    """network_backward as every test calls it: on copies of its inputs (AssertionError if it
    changes one), watched by from_scratch."""
    grads = from_scratch(lambda: checked_call(network_backward, cache, params, y, dloss), "your network_backward")
    assert isinstance(grads, dict), f"network_backward should return a dict name -> gradient, got {type(grads).__name__}"
    for name, value in grads.items():
        check_dtype(value, cache["logprobs"].dtype, f"network_backward's d{name}")
    return grads


def dlogits_of(logits, y, dloss=1.0):
    """cross_entropy_backward as every test calls it: on copies, watched, its shape checked."""
    out = from_scratch(lambda: checked_call(cross_entropy_backward, logits, y, dloss), "your cross_entropy_backward")
    assert_shape(out, tuple(logits.shape), "cross_entropy_backward's result")
    check_dtype(out, logits.dtype, "cross_entropy_backward's result")
    return out


def dx_of(dout, x, gamma, eps=1e-5, unbiased=True):
    """batchnorm_backward_oneline as every test calls it: on copies, watched, its shape checked."""
    out = from_scratch(lambda: checked_call(batchnorm_backward_oneline, dout, x, gamma, eps, unbiased),
                       "your batchnorm_backward_oneline")
    assert_shape(out, tuple(x.shape), "batchnorm_backward_oneline's result")
    check_dtype(out, x.dtype, "batchnorm_backward_oneline's result")
    return out


def check_properties(dx, x, unbiased, what):
    """dx sums to 0 over the batch and is orthogonal to xhat, per feature."""
    xhat = (x - x.mean(0)) / x.var(0, unbiased=unbiased).sqrt()
    assert_close(dx.sum(0), np.zeros(x.shape[1]), f"{what}: dx.sum(0)", atol=1e-10)
    # Only the last term's factor breaks this one alone: name it.
    assert_close((dx * xhat).sum(0), np.zeros(x.shape[1]), f"{what}: (dx * xhat).sum(0)",
                 atol=1e-10, hint=f"the last term's factor: {'n / (n - 1) with' if unbiased else '1 without'} "
                                  "Bessel's correction")


def check_part(names, case, what, tolerance=EXACT):
    """network_backward's gradients of `names` for one case, compared with autograd's."""
    args, expected = case
    assert_gradients_close(backward_of(*args), expected, names, what, **tolerance)

# %% [markdown]
# ## The network
#
# A batch of $n$ digits $x$ ($n \times 64$) goes through one hidden layer of 64 units with
# batch norm and `tanh`, then a linear layer to 10 logits and the cross-entropy loss. The
# forward pass is written out one operation per line, so that every line is one step
# of the chain rule backwards (this is `normlab.references.bn_mlp_forward`):
#
# ```python
# hprebn = x @ W1 + b1                              # (n, 64)
# bnmeani = hprebn.sum(0, keepdim=True) / n         # (1, 64) batch mean
# bndiff = hprebn - bnmeani
# bndiff2 = bndiff ** 2
# bnvar = bndiff2.sum(0, keepdim=True) / (n - 1)    # Bessel-corrected: n - 1, not n
# bnvar_inv = (bnvar + eps) ** -0.5
# bnraw = bndiff * bnvar_inv                        # x-hat
# hpreact = bngain * bnraw + bnbias                 # bngain, bnbias: (64,)
# h = torch.tanh(hpreact)
# logits = h @ W2 + b2                              # (n, 10)
# logit_maxes = logits.max(1, keepdim=True).values  # subtracted for numerical stability
# norm_logits = logits - logit_maxes
# counts = norm_logits.exp()
# counts_sum = counts.sum(1, keepdim=True)
# counts_sum_inv = counts_sum ** -1
# probs = counts * counts_sum_inv                   # softmax
# logprobs = probs.log()
# loss = -logprobs[range(n), y].mean()
# ```
#
# Two rules do most of the work. **Broadcasting and summing are each other's backward**: a
# tensor of shape $(1, 64)$ or $(n, 1)$ used against an $(n, 64)$ one gets the *sum* of
# the gradient over the broadcast axis. **A tensor used twice gets the sum of both
# gradients** (`bndiff` feeds `bndiff2` and `bnraw`; `counts` feeds `counts_sum` and
# `probs`). Check every shape: a gradient has the shape of its tensor.

# %% nbgrader={"grade": false, "grade_id": "ps5_network_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
(example_cache, example_params, example_y, _), _ = network_case(n=32, seed=0)
for name in ("x",) + INTERMEDIATES:
    print(f"{name:<15} {tuple(example_cache[name].shape)}")

# %% [markdown]
# ## Part 1 — Backpropagation tensor by tensor (≈ 75 minutes, 13 points)
#
# **Task (13 points).** Implement `network_backward`: the gradient of the loss with respect to
# every intermediate of the forward pass, from `logprobs` back to `hprebn`, and to every
# parameter. Go backwards through the forward pass one line at a time; each line needs the
# gradient of its output (already computed) and the values the cache holds. Hints:
#
# - $\partial\,\text{loss}/\partial\,\text{logprobs}$ is $-1/n$ at the $n$ entries
#   `[i, y[i]]` and 0 elsewhere, times the upstream gradient `dloss` (1 for the loss itself).
# - `logits.max(1)` sends its gradient to the entry where the maximum is
#   (`torch.nn.functional.one_hot(logits.max(1).indices, num_classes)`).
# - $\frac{d}{dx} x^{-1/2} = -\tfrac12 x^{-3/2}$, and `bnvar_inv ** 3` is
#   $(\text{bnvar} + \varepsilon)^{-3/2}$: you do not need $\varepsilon$.
# - $\tanh' = 1 - \tanh^2$, and the cache holds $h = \tanh(\text{hpreact})$.

# %% nbgrader={"grade": false, "grade_id": "ps5_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def network_backward(cache, params, y, dloss=1.0):
    """The gradient of dloss * loss with respect to every intermediate of bn_mlp_forward and every parameter, by hand.

    cache: dict name -> tensor (n, ...) of the forward pass's intermediates (INTERMEDIATES)
    and the input "x"; params: dict with W1, b1, bngain, bnbias, W2, b2; y: (n,) labels,
    n >= 2; dloss: the upstream gradient of the loss (a number; 1.0 for the loss itself).
    Returns a dict name -> gradient (the shape and dtype of the tensor) for every name of
    LOSS_PART, LAYER2_PART, BN_PART and LAYER1_PART. The inputs are left unchanged.
    """
    ### BEGIN SOLUTION
    c, n = cache, y.shape[0]
    g = {}
    g["logprobs"] = torch.zeros_like(c["logprobs"])
    g["logprobs"][torch.arange(n), y] = -dloss / n
    g["probs"] = g["logprobs"] / c["probs"]
    g["counts_sum_inv"] = (c["counts"] * g["probs"]).sum(1, keepdim=True)
    g["counts_sum"] = -c["counts_sum"] ** -2 * g["counts_sum_inv"]
    g["counts"] = c["counts_sum_inv"] * g["probs"] + g["counts_sum"]
    g["norm_logits"] = c["counts"] * g["counts"]
    g["logit_maxes"] = -g["norm_logits"].sum(1, keepdim=True)
    at_max = torch.nn.functional.one_hot(c["logits"].max(1).indices, c["logits"].shape[1]).to(c["logits"].dtype)
    g["logits"] = g["norm_logits"] + at_max * g["logit_maxes"]
    g["h"] = g["logits"] @ params["W2"].T
    g["W2"] = c["h"].T @ g["logits"]
    g["b2"] = g["logits"].sum(0)
    g["hpreact"] = (1.0 - c["h"] ** 2) * g["h"]
    g["bngain"] = (c["bnraw"] * g["hpreact"]).sum(0)
    g["bnbias"] = g["hpreact"].sum(0)
    g["bnraw"] = params["bngain"] * g["hpreact"]
    g["bnvar_inv"] = (c["bndiff"] * g["bnraw"]).sum(0, keepdim=True)
    g["bnvar"] = -0.5 * c["bnvar_inv"] ** 3 * g["bnvar_inv"]
    g["bndiff2"] = torch.ones_like(c["bndiff2"]) * g["bnvar"] / (n - 1)
    g["bndiff"] = c["bnvar_inv"] * g["bnraw"] + 2 * c["bndiff"] * g["bndiff2"]
    g["bnmeani"] = -g["bndiff"].sum(0, keepdim=True)
    g["hprebn"] = g["bndiff"] + g["bnmeani"] / n
    g["W1"] = c["x"].T @ g["hprebn"]
    g["b1"] = g["hprebn"].sum(0)
    return g
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps5_test_backward_loss", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The loss's part, logprobs back to logits, on a batch of 32 digits, against autograd.
args, expected = network_case(n=32, seed=0)
grads = backward_of(*args)
print(gradient_table(grads, expected, LOSS_PART))
assert_gradients_close(grads, expected, LOSS_PART, "network_backward, batch of 32 digits", **EXACT)
# The logits' gradient is the softmax minus the one-hot labels, over n: every row sums to 0.
assert_close(grads["logits"].sum(1), np.zeros(32), "the rows of dlogits summed", atol=1e-12)
### BEGIN HIDDEN TESTS
for _n, _seed, _dloss, _dtype, _tolerance in ((8, 3, -0.7, torch.float64, EXACT), (2, 4, 1.0, torch.float64, EXACT),
                                             (64, 1, 2.5, torch.float64, EXACT),
                                             (32, 2, 1.0, torch.float32, FLOAT32)):
    check_part(LOSS_PART, network_case(n=_n, hidden=16, seed=_seed, dloss=_dloss, dtype=_dtype),
               f"network_backward, n = {_n}, dloss = {_dloss}, {_dtype}", _tolerance)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps5_test_backward_layer2", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The second linear layer: dh, dW2, db2.
args, expected = network_case(n=32, seed=0)
grads = backward_of(*args)
print(gradient_table(grads, expected, LAYER2_PART))
assert_gradients_close(grads, expected, LAYER2_PART, "network_backward, batch of 32 digits", **EXACT)
### BEGIN HIDDEN TESTS
for _n, _seed, _dloss, _dtype, _tolerance in ((8, 3, -0.7, torch.float64, EXACT), (2, 4, 1.0, torch.float64, EXACT),
                                             (32, 2, 1.0, torch.float32, FLOAT32)):
    check_part(LAYER2_PART, network_case(n=_n, hidden=16, seed=_seed, dloss=_dloss, dtype=_dtype),
               f"network_backward, n = {_n}, dloss = {_dloss}, {_dtype}", _tolerance)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps5_test_backward_bn", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
# tanh and batch norm, hpreact back to hprebn.
args, expected = network_case(n=32, seed=0)
grads = backward_of(*args)
print(gradient_table(grads, expected, BN_PART))
assert_gradients_close(grads, expected, BN_PART, "network_backward, batch of 32 digits", **EXACT)
### BEGIN HIDDEN TESTS
for _n, _seed, _dloss, _dtype, _tolerance in ((8, 3, -0.7, torch.float64, EXACT), (2, 4, 1.0, torch.float64, EXACT),
                                             (64, 1, 2.5, torch.float64, EXACT),
                                             (32, 2, 1.0, torch.float32, FLOAT32)):
    check_part(BN_PART, network_case(n=_n, hidden=16, seed=_seed, dloss=_dloss, dtype=_dtype),
               f"network_backward, n = {_n}, dloss = {_dloss}, {_dtype}", _tolerance)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps5_test_backward_layer1", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The first linear layer: dW1, db1. Batch norm subtracts the batch mean, so b1 cannot change
# the loss: autograd's db1 is 0 up to rounding, and yours should be too.
args, expected = network_case(n=32, seed=0)
grads = backward_of(*args)
print(gradient_table(grads, expected, LAYER1_PART))
assert_gradients_close(grads, expected, ("W1",), "network_backward, batch of 32 digits", **EXACT)
assert_close(grads["b1"], np.zeros(64), "db1 (b1 is cancelled by batch norm's mean)", atol=1e-12)
### BEGIN HIDDEN TESTS
for _n, _seed, _dloss, _dtype, _tolerance in ((8, 3, -0.7, torch.float64, EXACT), (2, 4, 1.0, torch.float64, EXACT),
                                             (32, 2, 1.0, torch.float32, FLOAT32)):
    check_part(LAYER1_PART, network_case(n=_n, hidden=16, seed=_seed, dloss=_dloss, dtype=_dtype),
               f"network_backward, n = {_n}, dloss = {_dloss}, {_dtype}", _tolerance)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 — The cross-entropy backward in one line (≈ 20 minutes, 4 points)
#
# Eight lines of Part 1, from `logprobs` back to `logits`, collapse into one. With
# $p = \mathrm{softmax}(\text{logits})$ row by row,
#
# $$\frac{\partial\,\text{loss}}{\partial\,\text{logits}_{ij}} = \frac{1}{n}\left(p_{ij} - [\,j = y_i\,]\right):$$
#
# the probabilities, minus 1 at the right class, over $n$. Compute the softmax stably:
# subtract each row's maximum before `exp`, as the forward pass does.
#
# **Task (4 points).** Implement `cross_entropy_backward`.

# %% nbgrader={"grade": false, "grade_id": "ps5_cross_entropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cross_entropy_backward(logits, y, dloss=1.0):
    """d(dloss * loss)/dlogits for loss = mean_i -log softmax(logits)[i, y_i]:
    dloss * (softmax(logits) - one_hot(y)) / n.

    logits: (n, K), any finite values (also large ones: exp must not overflow, so subtract
    each row's maximum first); y: (n,) labels; dloss: the upstream gradient (a number).
    Returns an (n, K) tensor of the logits' dtype; logits are left unchanged.
    """
    ### BEGIN SOLUTION
    n, k = logits.shape
    shifted = logits - logits.max(1, keepdim=True).values
    probs = shifted.exp() / shifted.exp().sum(1, keepdim=True)
    onehot = torch.nn.functional.one_hot(y, k).to(logits.dtype)
    return dloss * (probs - onehot) / n
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps5_test_cross_entropy", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# By hand: logits [0, 0] and [0, ln 3] give probabilities [1/2, 1/2] and [1/4, 3/4]; with
# labels 0 and 1, dlogits = ([1/2 - 1, 1/2], [1/4, 3/4 - 1]) / 2.
logits = torch.tensor([[0.0, 0.0], [0.0, np.log(3.0)]], dtype=torch.float64)
dlogits = dlogits_of(logits, torch.tensor([0, 1]))
assert_close(dlogits, [[-0.25, 0.25], [0.125, -0.125]], "cross_entropy_backward by hand",
             hint=hint_if(dlogits, [[-0.5, 0.5], [0.25, -0.25]], "divide by n: the loss is the MEAN over the batch"))
# On the network's logits, against autograd (the gradient of Part 1's dlogits).
(cache, _, y, _), expected = network_case(n=32, seed=0)
assert_close(dlogits_of(cache["logits"], y), expected["logits"], "dlogits of a batch of 32 digits", **EXACT)
### BEGIN HIDDEN TESTS
for _n, _seed, _dloss, _dtype, _tolerance in ((8, 3, -0.7, torch.float64, EXACT), (2, 4, 1.0, torch.float64, EXACT),
                                             (32, 2, 1.0, torch.float32, FLOAT32)):
    (_cache, _, _y, _), _expected = network_case(n=_n, hidden=16, seed=_seed, dloss=_dloss, dtype=_dtype)
    assert_close(dlogits_of(_cache["logits"], _y, _dloss), _expected["logits"],
                 f"dlogits, n = {_n}, dloss = {_dloss}, {_dtype}", **_tolerance)
# Large logits: exp(1000) overflows; softmax is unchanged when a row is shifted by a constant.
_logits = torch.tensor([[1000.0, 999.0, 0.0], [-5.0, 1000.0, 1000.0]], dtype=torch.float64)
_p = torch.softmax(_logits - 1000.0, dim=1)
_onehot = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).double()
assert_close(dlogits_of(_logits, torch.tensor([0, 2])), (_p - _onehot) / 2, "dlogits of logits near 1000", **EXACT)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 — Batch norm's backward in one line (≈ 40 minutes, 6 points)
#
# Ten lines of Part 1, from `hpreact` back to `hprebn`, collapse into one too. Write
# $\hat x = (x - \mu)\,/\sqrt{\sigma^2 + \varepsilon}$ (`bnraw`), $y = \gamma \hat x + \beta$
# and $g = \partial\,\text{loss}/\partial y$ (`dhpreact`). For the batch norm of the course,
# whose variance divides by $n$ (lecture 03, problem set 2),
#
# $$\frac{\partial\,\text{loss}}{\partial x_i} = \frac{\gamma}{n\sqrt{\sigma^2+\varepsilon}}
# \Big(n\,g_i - \sum_j g_j - \hat x_i \sum_j g_j \hat x_j\Big).$$
#
# Karpathy's forward pass divides the variance by $n - 1$ (Bessel's correction). The same
# derivation then gives one more factor in the last term:
#
# $$\frac{\partial\,\text{loss}}{\partial x_i} = \frac{\gamma}{n\sqrt{\sigma^2+\varepsilon}}
# \Big(n\,g_i - \sum_j g_j - \frac{n}{n-1}\,\hat x_i \sum_j g_j \hat x_j\Big),$$
#
# with $\sigma^2$ the unbiased variance. (Where does $\frac{n}{n-1}$ come from? With the
# unbiased variance, $\sum_j \hat x_j^2 = n - 1$ instead of $n$; the factor makes
# $\sum_i \hat x_i\,\partial\text{loss}/\partial x_i = 0$ again.) In both cases the
# gradient sums to zero over the batch and is orthogonal to $\hat x$: shifting all
# inputs together, or scaling them about their mean, does not change the output.
#
# **Task (6 points).** Implement `batchnorm_backward_oneline` for both variances.

# %% nbgrader={"grade": false, "grade_id": "ps5_bn_oneline", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_backward_oneline(dout, x, gamma, eps=1e-5, unbiased=True):
    """dx of batch norm y = gamma * xhat + beta, xhat = (x - mean) / sqrt(var + eps), over the batch axis of x (n, D):
    dx = gamma / (n sqrt(var + eps)) * (n dout - sum_i dout - c * xhat * sum_i dout xhat),
    with var divided by n - 1 and c = n / (n - 1) when `unbiased` (makemore part 4), var divided by n and c = 1
    otherwise (torch.nn.BatchNorm1d in training mode).

    dout, x: (n, D), n >= 2; gamma: (D,); also a feature that is constant over the batch
    (var = 0: xhat = 0, finite thanks to eps). Returns dx, (n, D) of x's dtype; the inputs
    are left unchanged.
    """
    ### BEGIN SOLUTION
    n = x.shape[0]
    centred = x - x.mean(0)
    var = (centred ** 2).sum(0) / (n - 1 if unbiased else n)
    var_inv = (var + eps) ** -0.5
    xhat = centred * var_inv
    c = n / (n - 1) if unbiased else 1.0
    return gamma * var_inv / n * (n * dout - dout.sum(0) - c * xhat * (dout * xhat).sum(0))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps5_test_bn_oneline_biased", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# torch's batch norm (variance over n), unbiased=False: the properties, then autograd
# through torch.nn.functional.batch_norm.
from normlab.references import torch_batchnorm_gradients

g = torch.Generator().manual_seed(5)
x = torch.randn(16, 4, generator=g, dtype=torch.float64) * 2 + 1
gamma = torch.randn(4, generator=g, dtype=torch.float64)
dout = torch.randn(16, 4, generator=g, dtype=torch.float64)
dx = dx_of(dout, x, gamma, eps=0.0, unbiased=False)
check_properties(dx, x, False, "unbiased=False")
expected, _, _ = torch_batchnorm_gradients(x.numpy(), gamma.numpy(), np.zeros(4), 1e-5, dout.numpy())
assert_close(dx_of(dout, x, gamma, eps=1e-5, unbiased=False), expected, "dx, unbiased=False, against torch", **EXACT)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(51)
for _shape, _eps, _dtype, _tolerance in (((2, 3), 1e-5, torch.float64, EXACT), ((7, 5), 0.5, torch.float64, EXACT),
                                         ((64, 8), 1e-3, torch.float32, FLOAT32)):
    _x = (torch.randn(*_shape, generator=_g, dtype=torch.float64) * 3 - 1)
    _gamma, _dout = torch.randn(_shape[1], generator=_g, dtype=torch.float64), torch.randn(*_shape, generator=_g,
                                                                                              dtype=torch.float64)
    _expected, _, _ = torch_batchnorm_gradients(_x.numpy(), _gamma.numpy(), np.zeros(_shape[1]), _eps, _dout.numpy())
    assert_close(dx_of(_dout.to(_dtype), _x.to(_dtype), _gamma.to(_dtype), _eps, False), _expected,
                 f"dx, unbiased=False, {_shape}, eps = {_eps}, {_dtype}", **_tolerance)
# A constant feature (variance 0): xhat = 0, and dx = gamma * (dout - mean dout) / sqrt(eps).
_x = torch.randn(6, 3, generator=_g, dtype=torch.float64)
_x[:, 1] = 2.5
_dout = torch.randn(6, 3, generator=_g, dtype=torch.float64)
_expected, _, _ = torch_batchnorm_gradients(_x.numpy(), np.ones(3), np.zeros(3), 1e-5, _dout.numpy())
assert_close(dx_of(_dout, _x, torch.ones(3, dtype=torch.float64), 1e-5, False), _expected,
             "dx, unbiased=False, feature 1 constant", **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps5_test_bn_oneline_bessel", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Karpathy's batch norm (variance over n - 1), unbiased=True: the properties, then the network
# of Part 1: from autograd's dhpreact, the one line gives autograd's dhprebn.
g = torch.Generator().manual_seed(5)
x = torch.randn(16, 4, generator=g, dtype=torch.float64) * 2 + 1
gamma = torch.randn(4, generator=g, dtype=torch.float64)
dout = torch.randn(16, 4, generator=g, dtype=torch.float64)
dx = dx_of(dout, x, gamma, eps=0.0, unbiased=True)
check_properties(dx, x, True, "unbiased=True")
(cache, params, y, _), expected = network_case(n=32, seed=0)
dhprebn = dx_of(torch.from_numpy(expected["hpreact"]), cache["hprebn"], params["bngain"], eps=1e-5, unbiased=True)
assert_close(dhprebn, expected["hprebn"], "dhprebn of the network (unbiased=True), against autograd", **EXACT)
### BEGIN HIDDEN TESTS
from normlab.references import bessel_batchnorm_gradients

_g = torch.Generator().manual_seed(52)
for _shape, _eps, _dtype, _tolerance in (((2, 3), 1e-5, torch.float64, EXACT), ((7, 5), 0.5, torch.float64, EXACT),
                                         ((64, 8), 1e-3, torch.float32, FLOAT32)):
    _x = (torch.randn(*_shape, generator=_g, dtype=torch.float64) * 3 - 1)
    _gamma, _dout = torch.randn(_shape[1], generator=_g, dtype=torch.float64), torch.randn(*_shape, generator=_g,
                                                                                              dtype=torch.float64)
    _expected, _, _ = bessel_batchnorm_gradients(_x.numpy(), _gamma.numpy(), np.zeros(_shape[1]), _eps, _dout.numpy())
    assert_close(dx_of(_dout.to(_dtype), _x.to(_dtype), _gamma.to(_dtype), _eps, True), _expected,
                 f"dx, unbiased=True, {_shape}, eps = {_eps}, {_dtype}", **_tolerance)
_x = torch.randn(6, 3, generator=_g, dtype=torch.float64)
_x[:, 1] = 2.5
_dout = torch.randn(6, 3, generator=_g, dtype=torch.float64)
_expected, _, _ = bessel_batchnorm_gradients(_x.numpy(), np.ones(3), np.zeros(3), 1e-5, _dout.numpy())
assert_close(dx_of(_dout, _x, torch.ones(3, dtype=torch.float64), 1e-5, True), _expected,
             "dx, unbiased=True, feature 1 constant", **FLOAT32)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 — Training with your backward pass
#
# Nothing to write here: the cell below trains the network with stochastic gradient
# descent on mini-batches of 32 digits, twice from the same initialization and on the same
# batches — once with the gradients of your `network_backward`, once with autograd's — and
# prints the training loss and how far apart the two sets of parameters end up. If your
# backward pass is right, the two runs are the same run, up to rounding. (When the
# notebook is graded it trains for only a few steps.)

# %% nbgrader={"grade": false, "grade_id": "ps5_train_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
def train(gradients_of, steps=STEPS, lr=0.1, batch_size=32, seed=0):
    """SGD on the digits with the given gradient function; returns the parameters and the loss of every step."""
    params = init_params(seed=seed)
    batches = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        index = torch.randint(0, len(digits.y_train), (batch_size,), generator=batches)
        x, y = digits.x_train[index].double(), digits.y_train[index]
        grads, loss = gradients_of(params, x, y)
        params = {name: value - lr * torch.as_tensor(grads[name], dtype=value.dtype) for name, value in params.items()}
        losses.append(loss)
    return params, losses


def manual_gradients(params, x, y):
    cache, loss = forward_cache(params, x, y)
    return network_backward(cache, params, y), loss


def autograd_gradients(params, x, y):
    return bn_mlp_gradients(params, x, y), float(bn_mlp_forward(params, x, y)["loss"].detach())


manual_params, manual_losses = train(manual_gradients)
autograd_params, autograd_losses = train(autograd_gradients)
tenth = max(1, STEPS // 10)
print(f"training loss, averaged over the first and the last {tenth} steps: {np.mean(manual_losses[:tenth]):.3f} -> "
      f"{np.mean(manual_losses[-tenth:]):.3f}")
print("largest difference between the parameters trained by hand and by autograd:",
      f"{max(float((manual_params[k] - autograd_params[k]).abs().max()) for k in manual_params):.2e}")

# %% [markdown]
# ## Part 5 — Concepts (2 points)
#
# Answer each question with one letter in quotes, e.g. `q_bias = "a"`.
#
# **Question 1.** Why is the gradient of `b1` zero (up to rounding)?
#
# - (a) `b1` adds the same number to every sample of a column; batch norm subtracts the
#   column's batch mean, so the loss does not depend on `b1` at all.
# - (b) `b1` was initialized close to zero.
# - (c) `tanh` saturates, so no gradient reaches the first layer.
# - (d) Rounding: in exact arithmetic it would be as large as `dW1`.

# %% nbgrader={"grade": false, "grade_id": "ps5_q_bias", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_bias = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_bias = "a"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps5_test_q_bias", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_bias, "abcd", "q_bias")
### BEGIN HIDDEN TESTS
assert answer == "a", "q_bias: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 2.** You drop the factor $\frac{n}{n-1}$ from the one-line backward of
# Karpathy's (Bessel-corrected) batch norm. What changes?
#
# - (a) Nothing: the factor only matters at test time.
# - (b) Only `dbngain` changes.
# - (c) $\sum_i \hat x_i\,\partial\text{loss}/\partial x_i$ is no longer 0: the gradient
#   now asks to rescale the inputs about their mean, which cannot change the normalized
#   output. The error is largest for small batches and vanishes as $n$ grows.
# - (d) $\sum_i \partial\text{loss}/\partial x_i$ is no longer 0.

# %% nbgrader={"grade": false, "grade_id": "ps5_q_bessel", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_bessel = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_bessel = "c"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps5_test_q_bessel", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_bessel, "abcd", "q_bessel")
### BEGIN HIDDEN TESTS
assert answer == "c", "q_bessel: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# ## Before you submit
#
# 1. *Kernel → Restart Kernel and Run All Cells*.
# 2. Save the notebook (Ctrl-S) and run the last cell below: it checks the saved notebook the
#    way the grader does (from a terminal: `normlab check ps5.ipynb`).
# 3. Submit `ps5.ipynb`.
#
# **Summary.** Backpropagation is the forward pass read backwards, one line at a time:
# each line's local derivative times the gradient of its output, summed over the axes a
# tensor was broadcast along and over every place a tensor is used. Comparing every
# intermediate with autograd finds a mistake where it is made. The staged gradients
# collapse into closed forms: $(p - \text{one-hot})/n$ for softmax and cross-entropy, and
# for batch norm a gradient that sums to zero and is orthogonal to $\hat x$ — with a
# factor $\frac{n}{n-1}$ on the last term when the variance is Bessel-corrected.

# %% nbgrader={"grade": false, "grade_id": "ps5_check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Save the notebook first (Ctrl-S): this checks the saved file, the way the grader runs it.
from normlab_tools.check import check

check()
