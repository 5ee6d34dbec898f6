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
# # Problem set 2 — The batch-norm backward pass
#
# *normlab, normalization in deep learning* · about 2–3 hours · **25 points**
#
# In problem set 1 you wrote the forward pass of batch normalization. To train with it
# we need its gradients. They are more interesting than those of most layers: every
# output depends on *every* input of the mini-batch, through the mean $\mu$ and the
# variance $\sigma^2$. In this problem set you
#
# 1. derive and implement the backward pass node by node (the staged chain rule);
# 2. write a gradient check that cannot be fooled, and use it;
# 3. simplify the gradient to a closed form and implement that faster version;
# 4. do the discussion sheet's size-2 mini-batch problem exactly, in SymPy;
# 5. answer three conceptual questions.
#
# **How this is graded.** As in problem set 1: the tests after each function are
# visible tests; the grader also runs hidden tests (other shapes, other `eps`, random
# upstream gradients, the edge cases the docstrings promise, float32 inputs). Every test
# calls your function on copies of its inputs and fails if your function changes them in
# place, and every test fails if your function calls what the rules forbid.
#
# To check your work, save the notebook (Ctrl-S) and run the last cell of the notebook: it
# runs the saved notebook the way the grader does, in a separate fresh kernel, and prints
# the points of every visible test. From a terminal, `normlab check ps2.ipynb` does the same.
#
# **Rules.** Write your code where it says `# YOUR CODE HERE` and delete the
# `raise NotImplementedError()`. NumPy (and SymPy in Part 4) only: no `torch`, no
# automatic differentiation, and not the course library's own batch-norm functions
# (`normlab.functional`, `normlab.symbolic`, `normlab.references`) or its whole gradient
# check (`normlab.gradcheck.check_layer`; its `numerical_gradient` and `rel_error` are
# yours to use). Leave the inputs as they are (`x = x - mu`, not `x -= mu`). Do not
# delete or copy cells. A test cell that prints a warning scores 0. *Restart and run all*
# before you submit.

# %% nbgrader={"grade": false, "grade_id": "ps2_setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numbers
import os
import time

import numpy as np
import sympy as sp

from normlab.gradcheck import numerical_gradient, rel_error
from normlab.grading_helpers import (assert_choice, assert_close, assert_equivalent, assert_expression,
                                     assert_no_torch_calls, assert_shape, checked_call, hint_if, substitute)

# True while the autograder runs this notebook: the timing demonstration then runs shorter.
GRADING = "NBGRADER_EXECUTION" in os.environ
np.set_printoptions(precision=4, suppress=True)
# What the rules forbid inside your backward functions: torch, and the course library's own
# batch norm, references and finite differences (the tests run your functions under this).
NUMPY_ONLY = {"forbidden": ("torch",),
              "modules": ("normlab.functional", "normlab.symbolic", "normlab.references", "normlab.gradcheck")}
# gradient_check may use numerical_gradient and rel_error, not the library's whole check.
CHECK_RULES = {"forbidden": ("torch",), "modules": ("normlab.functional", "normlab.symbolic", "normlab.references"),
               "functions": ("normlab.gradcheck.check_layer", "normlab.gradcheck.compare")}
# A backward pass may compute in float32: it keeps about 7 significant digits; on these
# tests' inputs a float32 computation moves each gradient entry g by up to about
# 5e-6 * (1 + |g|) (measured). rtol 1e-4 and atol 1e-5 leave a margin of two or more;
# every mistake the tests look for is off by far more.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}


def gradients(backward, dout, cache):
    """backward(dout, cache) as every test calls it: on copies of dout and the cache
    (AssertionError if it changes them in place), under NUMPY_ONLY; the result checked to be
    a triple (dx, dgamma, dbeta) with dx of x's shape (the tests of dgamma and dbeta compare
    them, shapes included)."""
    result = assert_no_torch_calls(lambda: checked_call(backward, dout, cache), **NUMPY_ONLY,
                                   what=f"your {backward.__name__}")
    assert isinstance(result, tuple) and len(result) == 3, \
        f"{backward.__name__} should return a triple (dx, dgamma, dbeta), got {type(result).__name__}"
    assert_shape(result[0], np.shape(cache["x"]), f"dx for x of shape {np.shape(cache['x'])}")
    return result


def relative_errors(forward, backward, x, gamma, beta, **options):
    """gradient_check as every test calls it: on copies of x, gamma and beta (AssertionError
    if it changes them in place), under CHECK_RULES; the result checked to be a dict of
    three numbers."""
    errors = assert_no_torch_calls(lambda: checked_call(gradient_check, forward, backward, x, gamma, beta, **options),
                                   **CHECK_RULES, what="your gradient_check")
    assert isinstance(errors, dict) and set(errors) == {"x", "gamma", "beta"}, \
        f'gradient_check should return a dict with keys "x", "gamma", "beta", got {errors!r}'
    for name, error in errors.items():
        assert isinstance(error, numbers.Real), f"the relative error of {name} should be a number, got {error!r}"
    return {name: float(error) for name, error in errors.items()}

# %% [markdown]
# ## The forward pass, given
#
# This is the forward pass of problem set 1 (for `(N, D)` and `(N, C, H, W)` input,
# statistics over every axis but 1). Its `cache` is a dictionary; your backward
# functions read what they need from it. Note that `mu` and `var` keep their reduced
# axes (shape `(1, D)` or `(1, C, 1, 1)`), so they broadcast against `x`.

# %% nbgrader={"grade": false, "grade_id": "ps2_forward", "locked": true, "schema_version": 3, "solution": false, "task": false}
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch norm in training mode. Returns (out, cache); cache holds
    x, xhat, mu, var (biased; both of shape (1, C) or (1, C, 1, 1)), gamma and eps."""
    axes = (0,) + tuple(range(2, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mu) / np.sqrt(var + eps)
    per_feature = (1, -1) + (1,) * (x.ndim - 2)
    out = gamma.reshape(per_feature) * xhat + beta.reshape(per_feature)
    cache = {"x": x, "xhat": xhat, "mu": mu, "var": var, "gamma": gamma, "eps": eps}
    return out, cache


# %% [markdown]
# ## Part 1 — Backward by the staged chain rule (≈ 1 hour, 8 points)
#
# Write the forward pass of one feature as a graph of small steps, for the $m$ values
# $x_i$ of the feature in the mini-batch ($m = N$, or $N \cdot H \cdot W$ for feature maps):
#
# $$\mu = \frac1m\sum_i x_i \quad\to\quad
# \sigma^2 = \frac1m\sum_i (x_i-\mu)^2 \quad\to\quad
# \hat x_i = \frac{x_i-\mu}{\sqrt{\sigma^2+\epsilon}} \quad\to\quad
# y_i = \gamma\,\hat x_i + \beta .$$
#
# Backpropagation walks the graph backwards. Given the upstream gradient
# `dout` $= \partial L/\partial y_i$:
#
# 1. $\dfrac{\partial L}{\partial \beta} = \sum_i \dfrac{\partial L}{\partial y_i}$ and
#    $\dfrac{\partial L}{\partial \gamma} = \sum_i \dfrac{\partial L}{\partial y_i}\,\hat x_i$
#    (the sums run over every axis but 1).
# 2. $\dfrac{\partial L}{\partial \hat x_i} = \gamma\,\dfrac{\partial L}{\partial y_i}$.
# 3. $\dfrac{\partial L}{\partial \sigma^2}$: $\sigma^2$ enters every $\hat x_i$. Differentiate
#    $(\sigma^2+\epsilon)^{-1/2}$ and sum over $i$.
# 4. $\dfrac{\partial L}{\partial \mu}$: $\mu$ enters every $\hat x_i$ directly, *and*
#    $\sigma^2$. (The second contribution turns out to be zero — can you see why?)
# 5. $\dfrac{\partial L}{\partial x_i}$ collects **three** paths, as on the lecture slides:
#
# $$\frac{\partial L}{\partial x_i} = \frac{\partial L}{\partial \hat x_i}\frac{\partial \hat x_i}{\partial x_i}
# + \frac{\partial L}{\partial \sigma^2}\frac{\partial \sigma^2}{\partial x_i}
# + \frac{\partial L}{\partial \mu}\frac{\partial \mu}{\partial x_i} .$$
#
# Derive steps 3–5 on paper first, then implement them one line each, keeping the
# names `dxhat`, `dvar`, `dmu`: when a test fails you can print them.
#
# **Task (8 points).** Implement `batchnorm_backward(dout, cache)` for `(N, D)` and
# `(N, C, H, W)` input, returning `(dx, dgamma, dbeta)` with the shapes of `x`, `gamma`
# and `beta`. Use `keepdims=True` in the sums that feed later steps.

# %% nbgrader={"grade": false, "grade_id": "ps2_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_backward(dout, cache):
    """Gradients of batch norm by the staged chain rule: through xhat, var and mu.

    dout: upstream gradient, shape of x; cache: from batchnorm_forward, with its eps. Both are
    left unchanged. Returns (dx, dgamma, dbeta).
    """
    ### BEGIN SOLUTION
    x, xhat, mu, var, gamma, eps = (cache[k] for k in ("x", "xhat", "mu", "var", "gamma", "eps"))
    axes = (0,) + tuple(range(2, x.ndim))
    m = x.size // x.shape[1]
    per_feature = (1, -1) + (1,) * (x.ndim - 2)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dxhat = dout * gamma.reshape(per_feature)
    inv_std = 1.0 / np.sqrt(var + eps)
    dvar = np.sum(dxhat * (x - mu), axis=axes, keepdims=True) * -0.5 * inv_std**3
    dmu = np.sum(-dxhat * inv_std, axis=axes, keepdims=True) + dvar * np.mean(-2.0 * (x - mu), axis=axes, keepdims=True)
    dx = dxhat * inv_std + dvar * 2.0 * (x - mu) / m + dmu / m
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps2_test_backward_params", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# dgamma and dbeta, against finite differences of the forward pass, for a random
# upstream gradient (never all ones: see Part 2).
rng = np.random.default_rng(0)
for shape in ((5, 3), (2, 3, 2, 4)):
    x = rng.normal(loc=1.0, scale=2.0, size=shape)
    gamma, beta, dout = rng.normal(size=shape[1]), rng.normal(size=shape[1]), rng.normal(size=shape)
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = gradients(batchnorm_backward, dout, cache)
    dgamma_num = numerical_gradient(lambda g: batchnorm_forward(x, g, beta)[0], gamma.copy(), dout)
    dbeta_num = numerical_gradient(lambda b: batchnorm_forward(x, gamma, b)[0], beta.copy(), dout)
    axes = (0,) + tuple(range(2, x.ndim))
    assert_close(dbeta, dbeta_num, f"dbeta for x of shape {shape} (against finite differences)", **FLOAT32)
    assert_close(dgamma, dgamma_num, f"dgamma for x of shape {shape} (against finite differences)", **FLOAT32,
                 hint=hint_if(dgamma, (dout * x).sum(axis=axes), "dgamma sums dout * xhat, not dout * x"))
### BEGIN HIDDEN TESTS
from normlab.references import torch_batchnorm_gradients as _torch_gradients

_rng = np.random.default_rng(201)
for _shape, _eps, _dtype in (((7, 4), 0.5, np.float64), ((3, 2, 3, 2), 1e-5, np.float64),
                             ((16, 3, 2, 2), 1e-5, np.float32)):
    _x, _dout = (_rng.normal(size=_shape) * 3.0).astype(_dtype), _rng.normal(size=_shape).astype(_dtype)
    _gamma, _beta = _rng.normal(size=_shape[1]).astype(_dtype), _rng.normal(size=_shape[1]).astype(_dtype)
    _got = gradients(batchnorm_backward, _dout, batchnorm_forward(_x, _gamma, _beta, _eps)[1])
    _expected = _torch_gradients(*(np.asarray(_a, dtype=np.float64) for _a in (_x, _gamma, _beta)), _eps,
                                 _dout.astype(np.float64))
    for _what, _a, _b in zip(("dgamma", "dbeta"), _got[1:], _expected[1:]):
        assert_close(_a, _b, f"{_what} for x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}",
                     **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps2_test_backward_dx_2d", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(1)
x = rng.normal(loc=-1.0, scale=2.0, size=(6, 4))
gamma, beta, dout = rng.normal(size=4), rng.normal(size=4), rng.normal(size=(6, 4))
_, cache = batchnorm_forward(x, gamma, beta)
dx, _, _ = gradients(batchnorm_backward, dout, cache)
# Adding a constant to a feature's inputs does not change batch norm's output, so each
# feature's gradient sums to 0 over the batch.
assert_close(np.sum(dx, axis=0), np.zeros(4), "dx summed over the batch (one value per feature)", **FLOAT32)
dx_num = numerical_gradient(lambda v: batchnorm_forward(v, gamma, beta)[0], x.copy(), dout)
assert_close(dx, dx_num, "dx (against finite differences)", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_batchnorm_gradients as _torch_gradients

_rng = np.random.default_rng(202)
for _shape, _eps, _dtype in (((8, 3), 1e-5, np.float64), ((3, 5), 0.5, np.float64), ((2, 2), 1e-3, np.float64),
                             ((64, 3), 1e-5, np.float32)):
    _x, _dout = (_rng.normal(size=_shape) * 2.0 + 1.0).astype(_dtype), _rng.normal(size=_shape).astype(_dtype)
    _gamma, _beta = _rng.normal(size=_shape[1]).astype(_dtype), _rng.normal(size=_shape[1]).astype(_dtype)
    _got = gradients(batchnorm_backward, _dout, batchnorm_forward(_x, _gamma, _beta, _eps)[1])
    _expected = _torch_gradients(*(np.asarray(_a, dtype=np.float64) for _a in (_x, _gamma, _beta)), _eps,
                                 _dout.astype(np.float64))
    for _what, _a, _b in (("dx", _got[0], _expected[0]),):
        assert_close(_a, _b, f"{_what} for x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}",
                     **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps2_test_backward_dx_4d", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(2)
x = rng.normal(loc=2.0, scale=1.5, size=(2, 3, 4, 2))
gamma, beta, dout = rng.normal(size=3), rng.normal(size=3), rng.normal(size=x.shape)
_, cache = batchnorm_forward(x, gamma, beta)
dx, _, _ = gradients(batchnorm_backward, dout, cache)
# Each channel's gradient sums to 0 over the batch and all positions (m = N * H * W values).
assert_close(np.sum(dx, axis=(0, 2, 3)), np.zeros(3), "dx summed over axes (0, 2, 3) (one value per channel)",
             **FLOAT32)
dx_num = numerical_gradient(lambda v: batchnorm_forward(v, gamma, beta)[0], x.copy(), dout)
assert_close(dx, dx_num, "dx for (N, C, H, W) input (against finite differences)", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_batchnorm_gradients as _torch_gradients

_rng = np.random.default_rng(203)
for _shape, _eps, _dtype in (((4, 2, 3, 5), 1e-5, np.float64), ((2, 3, 2, 2), 0.5, np.float64),
                             ((1, 2, 4, 4), 1e-5, np.float64), ((8, 3, 4, 4), 1e-5, np.float32)):
    _x, _dout = (_rng.normal(size=_shape) * 1.0 - 1.0).astype(_dtype), _rng.normal(size=_shape).astype(_dtype)
    _gamma, _beta = _rng.normal(size=_shape[1]).astype(_dtype), _rng.normal(size=_shape[1]).astype(_dtype)
    _got = gradients(batchnorm_backward, _dout, batchnorm_forward(_x, _gamma, _beta, _eps)[1])
    _expected = _torch_gradients(*(np.asarray(_a, dtype=np.float64) for _a in (_x, _gamma, _beta)), _eps,
                                 _dout.astype(np.float64))
    for _what, _a, _b in (("dx", _got[0], _expected[0]),):
        assert_close(_a, _b, f"{_what} for x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}",
                     **FLOAT32)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 — A gradient check that cannot be fooled (≈ 30 minutes, 3 points)
#
# The tests above compare your gradients with **finite differences**. For a scalar loss
# $L(x) = \sum_k g_k\, f(x)_k$, where $g$ is the upstream gradient,
#
# $$\frac{\partial L}{\partial x_j} \approx \frac{L(x + h e_j) - L(x - h e_j)}{2h},$$
#
# with an error of order $h^2$. `normlab.gradcheck.numerical_gradient(f, x, dout, h)`
# computes exactly this for every entry $j$ of an array `x`, and
# `normlab.gradcheck.rel_error(a, b)` compares two arrays (about $10^{-8}$ or less for a
# correct gradient in float64, $10^{-1}$ or more for a wrong one).
#
# Two details decide whether such a check means anything:
#
# - **The upstream gradient must be random.** A tempting shortcut is `dout = np.ones(...)`,
#   i.e. checking the gradient of `out.sum()`. For batch norm that is useless: the sum of
#   each output feature is $m\beta$ whatever $x$ is, so the true $\partial L/\partial x$ is
#   **exactly zero**, and a backward pass that returns zeros, or any expression that
#   vanishes for a constant `dout`, passes.
# - **Use float64.** With $h = 10^{-5}$, float32 rounding ($\approx 10^{-7}$ relative)
#   swamps the differences; convert the inputs with `np.asarray(a, dtype=np.float64)` first.
#
# **Task (3 points).** Implement `gradient_check(forward, backward, x, gamma, beta)` for
# any layer with the interface above: `forward(x, gamma, beta)` returns `(out, cache)`
# and `backward(dout, cache)` returns `(dx, dgamma, dbeta)`. Draw the upstream gradient
# from a standard normal with `np.random.default_rng(seed)`, and return a dictionary of
# relative errors `{"x": ..., "gamma": ..., "beta": ...}`.

# %% nbgrader={"grade": false, "grade_id": "ps2_gradient_check", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gradient_check(forward, backward, x, gamma, beta, seed=0, h=1e-5):
    """Relative errors between backward's gradients and centred finite differences.

    forward(x, gamma, beta) -> (out, cache), out of any shape; backward(dout, cache) ->
    (dx, dgamma, dbeta). Draws dout from a standard normal with NumPy's default_rng(seed), in
    the shape of out.
    Computes in float64 whatever the inputs' dtype; x, gamma and beta are left unchanged.
    Returns {"x": rel_error, "gamma": rel_error, "beta": rel_error}.
    """
    ### BEGIN SOLUTION
    inputs = {name: np.array(value, dtype=np.float64)
              for name, value in (("x", x), ("gamma", gamma), ("beta", beta))}
    out, cache = forward(inputs["x"], inputs["gamma"], inputs["beta"])
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    analytic = dict(zip(inputs, backward(dout, cache)))
    errors = {}
    for name in inputs:
        def f(value, name=name):
            arguments = {**inputs, name: value}
            return forward(arguments["x"], arguments["gamma"], arguments["beta"])[0]
        numerical = numerical_gradient(f, inputs[name].copy(), dout, h)
        errors[name] = rel_error(analytic[name], numerical)
    return errors
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps2_test_gradient_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# A layer whose gradients are easy: y = gamma * x + beta, feature by feature.
def scale_forward(x, gamma, beta):
    return gamma * x + beta, (x, gamma)


def scale_backward(dout, cache):
    x, gamma = cache
    return dout * gamma, (dout * x).sum(axis=0), dout.sum(axis=0)


def scale_backward_wrong_dgamma(dout, cache):
    x, gamma = cache
    return dout * gamma, dout.sum(axis=0), dout.sum(axis=0)


rng = np.random.default_rng(3)
x, gamma, beta = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3)
errors = relative_errors(scale_forward, scale_backward, x, gamma, beta)
for name, error in errors.items():
    assert error < 1e-7, f"correct gradients, but the relative error of {name} is {error:.2e} (should be below 1e-7)"
errors = relative_errors(scale_forward, scale_backward_wrong_dgamma, x, gamma, beta)
assert errors["gamma"] > 1e-2, \
    f"a wrong dgamma went unnoticed: relative error {errors['gamma']:.2e} (should be above 1e-2)"
assert errors["x"] < 1e-7 and errors["beta"] < 1e-7, f"only dgamma is wrong, but the relative errors are {errors}"
### BEGIN HIDDEN TESTS
def _center_forward(x, gamma, beta):
    return gamma * (x - x.mean(axis=0)) + beta, (x, gamma)


def _center_backward_zero_dx(dout, cache):  # a wrong dx that an all-ones dout cannot see
    x, gamma = cache
    return np.zeros_like(dout), (dout * (x - x.mean(axis=0))).sum(axis=0), dout.sum(axis=0)


def _row_sum_forward(x, gamma, beta):  # one output per sample: out has another shape than x
    return (gamma * x + beta).sum(axis=1), (x, gamma)


def _row_sum_backward(dout, cache):
    x, gamma = cache
    return dout[:, None] * gamma, (dout[:, None] * x).sum(axis=0), np.full(gamma.shape, dout.sum())


_rng = np.random.default_rng(204)
_x, _gamma, _beta = _rng.normal(size=(6, 2)), _rng.normal(size=2), _rng.normal(size=2)
_errors = relative_errors(_center_forward, _center_backward_zero_dx, _x, _gamma, _beta)
assert _errors["x"] > 1e-2, f"a dx of zeros passed the check (relative error {_errors['x']:.2e})"
_errors = relative_errors(scale_forward, scale_backward, *(_a.astype(np.float32) for _a in (_x, _gamma, _beta)))
assert max(_errors.values()) < 1e-6, f"float32 inputs, correct gradients, but relative errors {_errors}"
_errors = relative_errors(scale_forward, scale_backward_wrong_dgamma, _x, _gamma, _beta, seed=7)
assert _errors["gamma"] > 1e-2 and _errors["x"] < 1e-7, f"seed=7, only dgamma wrong: relative errors {_errors}"
_errors = relative_errors(_row_sum_forward, _row_sum_backward, _x, _gamma, _beta)
assert max(_errors.values()) < 1e-7, \
    f"a layer with one output per sample (out of shape (6,)), correct gradients, but relative errors {_errors}"
# The upstream gradient comes from default_rng(seed): the same for one seed, another for another.
_drawn = []


def _recording_backward(dout, cache):
    _drawn.append(np.array(dout, dtype=np.float64))
    return scale_backward(dout, cache)


_first = {}
for _seed in (7, 7, 8):
    _drawn.clear()
    relative_errors(scale_forward, _recording_backward, _x, _gamma, _beta, seed=_seed)
    assert _drawn, "gradient_check never called backward"
    if _seed in _first:
        assert np.array_equal(_drawn[0], _first[_seed]), "two checks with seed=7 drew different upstream gradients"
    _first.setdefault(_seed, _drawn[0])
assert not np.allclose(_first[7], _first[8]), \
    "seed=7 and seed=8 drew the same upstream gradient: draw it with np.random.default_rng(seed)"
### END HIDDEN TESTS

# %% [markdown]
# Now check your `batchnorm_backward` with it, and see the all-ones trap for yourself
# (not graded):

# %% nbgrader={"grade": false, "grade_id": "ps2_gradient_check_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(4)
x, gamma, beta = rng.normal(size=(8, 5)), rng.normal(size=5), rng.normal(size=5)
errors = gradient_check(batchnorm_forward, batchnorm_backward, x, gamma, beta)
print("relative errors of your batchnorm_backward:", ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
_, cache = batchnorm_forward(x, gamma, beta)
dx_for_ones, _, _ = batchnorm_backward(np.ones_like(x), cache)
print(f"largest |dx| for an all-ones upstream gradient: {np.abs(dx_for_ones).max():.1e}")

# %% [markdown]
# ## Part 3 — The closed form (≈ 45 minutes, 5 points)
#
# The staged backward pass makes several passes over the data. Substituting
# $\partial L/\partial\sigma^2$ and $\partial L/\partial\mu$ into the formula for
# $\partial L/\partial x_i$ and using $\sum_i (x_i - \mu) = 0$ collapses it into one
# expression. Do it on paper: you should arrive at
#
# $$\frac{\partial L}{\partial x_i} = \frac{\gamma}{m\sqrt{\sigma^2+\epsilon}}
# \left( m\,\frac{\partial L}{\partial y_i} - \sum_j \frac{\partial L}{\partial y_j}
# - \hat x_i \sum_j \frac{\partial L}{\partial y_j}\,\hat x_j \right),$$
#
# in which the two sums are $\partial L/\partial\beta$ and $\partial L/\partial\gamma$,
# already computed. (Reading it: the gradient of a normalized layer is the upstream
# gradient with its mean and its component along $\hat x$ removed — normalization makes
# the output blind to shifting and scaling the input.)
#
# **Task (5 points).** Implement `batchnorm_backward_fast(dout, cache)` with this formula,
# for `(N, D)` and `(N, C, H, W)` input, without the intermediate `dvar` and `dmu`.

# %% nbgrader={"grade": false, "grade_id": "ps2_backward_fast", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_backward_fast(dout, cache):
    """The same gradients as batchnorm_backward, from the closed form. Returns (dx, dgamma, dbeta).

    dout and cache as for batchnorm_backward (the cache's eps), both left unchanged.
    """
    ### BEGIN SOLUTION
    x, xhat, var, gamma, eps = (cache[k] for k in ("x", "xhat", "var", "gamma", "eps"))
    axes = (0,) + tuple(range(2, x.ndim))
    m = x.size // x.shape[1]
    per_feature = (1, -1) + (1,) * (x.ndim - 2)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    scale = gamma.reshape(per_feature) / (m * np.sqrt(var + eps))
    dx = scale * (m * dout - dbeta.reshape(per_feature) - xhat * dgamma.reshape(per_feature))
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps2_test_fast_2d", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(5)
x = rng.normal(loc=3.0, scale=0.5, size=(7, 3))
gamma, beta, dout = rng.normal(size=3), rng.normal(size=3), rng.normal(size=x.shape)
_, cache = batchnorm_forward(x, gamma, beta)
dx, dgamma, dbeta = gradients(batchnorm_backward_fast, dout, cache)
assert_close(np.sum(dx, axis=0), np.zeros(3), "dx summed over the batch (one value per feature)", **FLOAT32)
dx_num = numerical_gradient(lambda v: batchnorm_forward(v, gamma, beta)[0], x.copy(), dout)
assert_close(dx, dx_num, "dx (against finite differences)", **FLOAT32)
assert_close(dgamma, (dout * cache["xhat"]).sum(axis=0), "dgamma", **FLOAT32)
assert_close(dbeta, dout.sum(axis=0), "dbeta", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_batchnorm_gradients as _torch_gradients

_rng = np.random.default_rng(205)
for _shape, _eps, _dtype in (((5, 4), 0.5, np.float64), ((2, 3), 1e-5, np.float64), ((16, 2), 1e-3, np.float64),
                             ((64, 3), 1e-5, np.float32)):
    _x, _dout = (_rng.normal(size=_shape) * 1.0).astype(_dtype), _rng.normal(size=_shape).astype(_dtype)
    _gamma, _beta = _rng.normal(size=_shape[1]).astype(_dtype), _rng.normal(size=_shape[1]).astype(_dtype)
    _got = gradients(batchnorm_backward_fast, _dout, batchnorm_forward(_x, _gamma, _beta, _eps)[1])
    _expected = _torch_gradients(*(np.asarray(_a, dtype=np.float64) for _a in (_x, _gamma, _beta)), _eps,
                                 _dout.astype(np.float64))
    for _what, _a, _b in zip(("dx", "dgamma", "dbeta"), _got, _expected):
        assert_close(_a, _b, f"{_what} for x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}",
                     **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps2_test_fast_4d", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(6)
x = rng.normal(size=(3, 2, 2, 3))
gamma, beta, dout = rng.normal(size=2), rng.normal(size=2), rng.normal(size=x.shape)
_, cache = batchnorm_forward(x, gamma, beta)
dx, dgamma, dbeta = gradients(batchnorm_backward_fast, dout, cache)
assert_close(np.sum(dx, axis=(0, 2, 3)), np.zeros(2), "dx summed over axes (0, 2, 3) (one value per channel)",
             **FLOAT32)
dx_num = numerical_gradient(lambda v: batchnorm_forward(v, gamma, beta)[0], x.copy(), dout)
assert_close(dx, dx_num, "dx for (N, C, H, W) input (against finite differences)", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_batchnorm_gradients as _torch_gradients

_rng = np.random.default_rng(206)
for _shape, _eps, _dtype in (((4, 3, 2, 5), 1e-5, np.float64), ((2, 2, 3, 3), 0.5, np.float64),
                             ((1, 2, 4, 4), 1e-5, np.float64), ((8, 3, 4, 4), 1e-5, np.float32)):
    _x, _dout = (_rng.normal(size=_shape) * 2.0).astype(_dtype), _rng.normal(size=_shape).astype(_dtype)
    _gamma, _beta = _rng.normal(size=_shape[1]).astype(_dtype), _rng.normal(size=_shape[1]).astype(_dtype)
    _got = gradients(batchnorm_backward_fast, _dout, batchnorm_forward(_x, _gamma, _beta, _eps)[1])
    _expected = _torch_gradients(*(np.asarray(_a, dtype=np.float64) for _a in (_x, _gamma, _beta)), _eps,
                                 _dout.astype(np.float64))
    for _what, _a, _b in zip(("dx", "dgamma", "dbeta"), _got, _expected):
        assert_close(_a, _b, f"{_what} for x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}",
                     **FLOAT32)
### END HIDDEN TESTS

# %% [markdown]
# How much faster is it? (Not graded; the numbers depend on your machine.)

# %% nbgrader={"grade": false, "grade_id": "ps2_timing_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The grader only needs the code to run: fewer, smaller repetitions.
REPEATS, SHAPE = (2, (16, 8, 8, 8)) if GRADING else (50, (256, 64, 8, 8))
rng = np.random.default_rng(7)
x = rng.normal(size=SHAPE)
gamma, beta, dout = rng.normal(size=SHAPE[1]), rng.normal(size=SHAPE[1]), rng.normal(size=SHAPE)
_, cache = batchnorm_forward(x, gamma, beta)
seconds = {}
for backward in (batchnorm_backward, batchnorm_backward_fast):
    start = time.perf_counter()
    for _ in range(REPEATS):
        backward(dout, cache)
    seconds[backward.__name__] = (time.perf_counter() - start) / REPEATS
    print(f"{backward.__name__:>24}: {1e3 * seconds[backward.__name__]:6.1f} ms")
print(f"speed-up: {seconds['batchnorm_backward'] / seconds['batchnorm_backward_fast']:.2f}x")

# %% [markdown]
# ## Part 4 — A mini-batch of two, exactly (≈ 45 minutes, 6 points)
#
# The discussion sheet's practice problem: batch norm of **one neuron** over a
# mini-batch of **two** inputs $x^{(1)}, x^{(2)}$, written as scalar equations,
#
# $$\mu = \tfrac12\big[x^{(1)} + x^{(2)}\big],\quad a^{(i)} = x^{(i)} - \mu,\quad
# \sigma^2 = \tfrac12\big[(a^{(1)})^2 + (a^{(2)})^2\big],\quad
# p^{(i)} = \frac{a^{(i)}}{\sqrt{\sigma^2+\epsilon}},\quad y^{(i)} = \gamma p^{(i)} + \beta,$$
#
# with upstream gradients $\nabla_{y^{(1)}}L$ and $\nabla_{y^{(2)}}L$. Compute
# $\nabla_{x^{(1)}}L$, $\nabla_{x^{(2)}}L$, $\nabla_\gamma L$, $\nabla_\beta L$ by
# **backpropagation**: one SymPy expression per node of the graph, from the output back to
# the inputs, exactly as you would on paper (`dL_dp1`, `dL_dvar`, `dL_da1`, `dL_dmu`, ...).
# SymPy does the algebra; `sp.simplify` tidies the result.
#
# **Use these symbols** (defined in the next cell) and no others — the grader compares
# your expressions with its own by the symbols' names, so any correct form scores:
#
# | math | Python | SymPy name |
# |---|---|---|
# | $x^{(1)}, x^{(2)}$ | `x1`, `x2` | `x_1`, `x_2` |
# | $\nabla_{y^{(1)}}L, \nabla_{y^{(2)}}L$ | `g1`, `g2` | `g_1`, `g_2` |
# | $\gamma, \beta$ | `gamma`, `beta` | `gamma`, `beta` |
# | $\epsilon$ | `epsilon` | `epsilon` |
#
# The forward pass is written out for you in the solution cell.
#
# **Task (6 points).** Set `dL_dx1`, `dL_dx2`, `dL_dgamma`, `dL_dbeta` (5 points), and
# `dL_dx1_limit`, the limit of `dL_dx1` as $\epsilon \to 0^+$ (1 point; `sp.limit(expr,
# epsilon, 0, "+")`, with $x^{(1)} \ne x^{(2)}$). The cell after yours compares your
# result with `sp.diff` of the loss $L = g_1 y^{(1)} + g_2 y^{(2)}$ (whose upstream
# gradients are exactly $g_1, g_2$): a useful check, not a replacement for the
# backpropagation.

# %% nbgrader={"grade": false, "grade_id": "ps2_symbols", "locked": true, "schema_version": 3, "solution": false, "task": false}
x1, x2 = sp.symbols("x_1 x_2", real=True)
g1, g2 = sp.symbols("g_1 g_2", real=True)  # the upstream gradients dL/dy1, dL/dy2
gamma, beta = sp.symbols("gamma beta", real=True)
epsilon = sp.Symbol("epsilon", positive=True)
SYMBOLS = {"x_1": "x1", "x_2": "x2", "g_1": "g1", "g_2": "g2", "gamma": "gamma", "beta": "beta",
           "epsilon": "epsilon"}

# %% nbgrader={"grade": false, "grade_id": "ps2_sympy", "locked": false, "schema_version": 3, "solution": true, "task": false}
# The forward pass, node by node, as on the sheet.
mu = (x1 + x2) / 2
a1, a2 = x1 - mu, x2 - mu
var = (a1**2 + a2**2) / 2
p1, p2 = a1 / sp.sqrt(var + epsilon), a2 / sp.sqrt(var + epsilon)
y1, y2 = gamma * p1 + beta, gamma * p2 + beta
# The backward pass, node by node, from y back to x: set dL_dbeta, dL_dgamma, then
# dL_dp1, dL_dp2, dL_dvar, dL_da1, dL_da2, dL_dmu, and finally dL_dx1, dL_dx2 and
# dL_dx1_limit.
### BEGIN SOLUTION
# y_i = gamma p_i + beta.
dL_dbeta = g1 + g2
dL_dgamma = g1 * p1 + g2 * p2
dL_dp1, dL_dp2 = gamma * g1, gamma * g2
# p_i = a_i (var + eps)^(-1/2): var reaches both p_i.
dL_dvar = (dL_dp1 * a1 + dL_dp2 * a2) * (-sp.Rational(1, 2)) * (var + epsilon) ** sp.Rational(-3, 2)
# a_i reaches p_i directly and var (d var / d a_i = a_i).
dL_da1 = dL_dp1 / sp.sqrt(var + epsilon) + dL_dvar * a1
dL_da2 = dL_dp2 / sp.sqrt(var + epsilon) + dL_dvar * a2
# mu reaches both a_i with d a_i / d mu = -1; x_i reaches a_i (1) and mu (1/2).
dL_dmu = -(dL_da1 + dL_da2)
dL_dx1 = sp.simplify(dL_da1 + dL_dmu / 2)
dL_dx2 = sp.simplify(dL_da2 + dL_dmu / 2)
dL_dgamma = sp.simplify(dL_dgamma)
dL_dx1_limit = sp.limit(dL_dx1, epsilon, 0, "+")
### END SOLUTION
print("dL/dx1 =", dL_dx1)
print("dL/dgamma =", dL_dgamma)
print("limit of dL/dx1 as epsilon -> 0+:", dL_dx1_limit)

# %% nbgrader={"grade": false, "grade_id": "ps2_sympy_check_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Not graded: compare with SymPy's own differentiation of L = g1 y1 + g2 y2, at a few
# random points (exact rational arithmetic).
mu_ = (x1 + x2) / 2
var_ = ((x1 - mu_) ** 2 + (x2 - mu_) ** 2) / 2
y1_, y2_ = (gamma * (xi - mu_) / sp.sqrt(var_ + epsilon) + beta for xi in (x1, x2))
loss = g1 * y1_ + g2 * y2_
rng = np.random.default_rng(8)
points = [{s: sp.Rational(int(rng.integers(1, 200)), 13) for s in (x1, x2, g1, g2, gamma, beta, epsilon)}
          for _ in range(3)]
for name, mine, variable in (("dL_dx1", dL_dx1, x1), ("dL_dx2", dL_dx2, x2),
                             ("dL_dgamma", dL_dgamma, gamma), ("dL_dbeta", dL_dbeta, beta)):
    difference = sp.sympify(mine) - sp.diff(loss, variable)
    same = all(abs(complex(difference.subs(point).evalf())) < 1e-12 for point in points)
    print(f"{name}: {'agrees with' if same else 'DIFFERS from'} sp.diff")

# %% nbgrader={"grade": true, "grade_id": "ps2_test_sympy_dx", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
assert_expression(dL_dx1, SYMBOLS, "dL_dx1")
assert_expression(dL_dx2, SYMBOLS, "dL_dx2")
# Shifting both inputs by the same amount changes nothing, so the two gradients cancel.
assert_equivalent(dL_dx1 + dL_dx2, 0, "dL_dx1 + dL_dx2",
                  hint="the gradient of a normalized output sums to 0 over the batch; check the dL/dmu path")
# With equal upstream gradients the true gradient is 0 (the all-ones trap of Part 2).
assert_equivalent(substitute(dL_dx1, g_2=g1), 0, "dL_dx1 with g_2 = g_1",
                  hint="for g_1 = g_2 the loss is g_1 (y_1 + y_2) = 2 g_1 beta: it does not depend on x")
### BEGIN HIDDEN TESTS
from normlab.symbolic import two_sample_textbook_forms

_reference = two_sample_textbook_forms()
assert_equivalent(dL_dx1, _reference.dx[0], "dL_dx1")
assert_equivalent(dL_dx2, _reference.dx[1], "dL_dx2")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps2_test_sympy_params", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert_expression(dL_dgamma, SYMBOLS, "dL_dgamma")
assert_expression(dL_dbeta, SYMBOLS, "dL_dbeta")
assert_equivalent(substitute(dL_dgamma, g_2=g1), 0, "dL_dgamma with g_2 = g_1",
                  hint="the two normalized values p1 and p2 always sum to 0")
### BEGIN HIDDEN TESTS
from normlab.symbolic import two_sample_textbook_forms

_reference = two_sample_textbook_forms()
assert_equivalent(dL_dgamma, _reference.dgamma, "dL_dgamma")
assert_equivalent(dL_dbeta, _reference.dbeta, "dL_dbeta")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps2_test_sympy_limit", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
assert_expression(dL_dx1_limit, SYMBOLS, "dL_dx1_limit")
assert "epsilon" not in {s.name for s in sp.sympify(dL_dx1_limit).free_symbols}, \
    "dL_dx1_limit still depends on epsilon: take the limit epsilon -> 0+"
### BEGIN HIDDEN TESTS
assert_equivalent(dL_dx1_limit, 0, "dL_dx1_limit")
### END HIDDEN TESTS

# %% [markdown]
# Look at what you found: with $d = x^{(1)} - x^{(2)}$ the gradient is
# $\frac{4\epsilon\gamma(g_1 - g_2)}{(4\epsilon + d^2)^{3/2}}$ (your form may look
# different), which vanishes as $\epsilon \to 0$. With two samples the normalized values
# are $\pm d/\sqrt{d^2 + 4\epsilon} \approx \pm 1$ whatever the inputs are, so the output
# hardly depends on $x$ — a reason very small batches train badly.
#
# ## Part 5 — Concepts (3 points)
#
# Answer each question with one letter in quotes, e.g. `q_all_ones = "a"`.
#
# **Question 1.** A classmate checks a batch-norm backward pass with
# `dout = np.ones_like(out)` and finite differences; everything agrees, yet the network
# does not train. What is the most likely explanation?
#
# - (a) Finite differences are too inaccurate to check batch norm.
# - (b) For a constant upstream gradient the true $\partial L/\partial x$ of batch norm
#   is exactly 0, so the check only shows that their `dx` vanishes then; a wrong `dx`
#   (e.g. one missing the path through $\sigma^2$) passes too.
# - (c) The all-ones gradient is too large and overflows.
# - (d) Batch norm has no gradient with respect to its input.

# %% nbgrader={"grade": false, "grade_id": "ps2_q_all_ones", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_all_ones = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_all_ones = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps2_test_q_all_ones", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_all_ones, "abcd", "q_all_ones")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_all_ones: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 2.** For every feature, $\sum_i \partial L/\partial x_i = 0$ over the
# mini-batch, whatever the upstream gradient. Why?
#
# - (a) Because $\sum_i \hat x_i = 0$.
# - (b) Because adding the same constant to every $x_i$ of a feature changes its mean by
#   that constant and nothing else, so the output does not change: the gradient has no
#   component along the all-ones direction.
# - (c) Because $\gamma$ and $\beta$ absorb the gradient.
# - (d) It is a rounding artefact; the exact sum is small but not zero.

# %% nbgrader={"grade": false, "grade_id": "ps2_q_sum_zero", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_sum_zero = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_sum_zero = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps2_test_q_sum_zero", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_sum_zero, "abcd", "q_sum_zero")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_sum_zero: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 3.** In Part 4 (a mini-batch of two), what happens as $\epsilon \to 0$?
#
# - (a) The outputs tend to $\beta \pm \gamma$ whatever $x^{(1)} \ne x^{(2)}$ are, and
#   $\partial L/\partial x^{(i)} \to 0$: the layer stops passing information about $x$.
# - (b) The outputs blow up, because the variance is divided by 0.
# - (c) Nothing changes: $\epsilon$ is only there for numerical safety.
# - (d) The gradient $\partial L/\partial x^{(i)}$ tends to $g_i\,\gamma$.

# %% nbgrader={"grade": false, "grade_id": "ps2_q_eps_limit", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_eps_limit = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_eps_limit = "a"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps2_test_q_eps_limit", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_eps_limit, "abcd", "q_eps_limit")
### BEGIN HIDDEN TESTS
assert answer == "a", "q_eps_limit: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# ## Before you submit
#
# 1. *Kernel → Restart Kernel and Run All Cells*.
# 2. Save (Ctrl-S) and run the last cell of the notebook (the check).
# 3. Submit `ps2.ipynb`.
#
# **Summary.** Batch norm's backward pass follows its graph: $\partial L/\partial\beta$ and
# $\partial L/\partial\gamma$ are sums over the batch; $\partial L/\partial x$ collects the
# direct path and the paths through $\mu$ and $\sigma^2$, and simplifies to the closed form
# $\frac{\gamma}{m\sqrt{\sigma^2+\epsilon}}(m\,g - \sum g - \hat x\sum g\hat x)$. Check
# gradients with finite differences and a *random* upstream gradient, in float64. Tiny
# mini-batches starve the gradient: with two samples it vanishes as $\epsilon \to 0$.

# %% nbgrader={"grade": false, "grade_id": "ps2_check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Save the notebook first (Ctrl-S): this checks the saved file, the way the grader runs it.
from normlab_tools.check import check

check()
