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
# # Problem set 1 — Input normalization and the batch-norm forward pass
#
# *normlab, normalization in deep learning* · about 2–3 hours · **25 points**
#
# Gradient descent is slow when the features of the input live on very different
# scales, and standardizing the inputs fixes that — but only for the first layer. Batch
# normalization applies the same idea to the inputs of *every* layer, using statistics
# of the current mini-batch. In this problem set you
#
# 1. measure why feature scales matter (the curvature of the loss) and standardize a
#    real data set correctly, with statistics of the training split only;
# 2. implement the batch-norm forward pass in NumPy, for fully connected activations
#    `(N, D)` and for convolutional feature maps `(N, C, H, W)`;
# 3. answer a few conceptual questions about what batch norm does.
#
# **How this is graded.** Every function you write has test cells right after it.
# The tests you see are *visible tests*: they check the basics and tell you what is
# wrong. The grader also runs *hidden tests* on the same function (other shapes, other
# values of `eps`, random inputs, the edge cases the docstrings promise, float32 inputs),
# so passing the visible tests is necessary, not sufficient. Every test calls your
# function on copies of its inputs and fails if your function changes them in place, and
# every test fails if your function calls one of the implementations the rules forbid.
#
# To check your work, save the notebook (Ctrl-S) and run the last cell of the notebook: it
# runs the saved notebook the way the grader does, in a separate fresh kernel, and prints
# the points of every visible test. From a terminal, `normlab check ps1.ipynb` does the same.
#
# **Rules.**
# - Write your code where it says `# YOUR CODE HERE` and delete the
#   `raise NotImplementedError()` line. Do not rename functions or change their arguments.
# - Use NumPy only in the graded functions: no `torch`, no `sklearn`, and not the course
#   library's own implementations (`normlab.functional`, `normlab.data.Standardizer`,
#   `normlab.references`): the tests watch for them.
# - Leave the inputs as they are: compute new arrays (`x = x - mu`, not `x -= mu`).
# - Do not delete or copy cells; the grader puts test cells back from its own copy.
# - A test cell that prints a warning scores 0, so fix warnings (for example a
#   division by zero) instead of ignoring them.
# - *Restart the kernel and run all cells* before you submit.

# %% nbgrader={"grade": false, "grade_id": "ps1_setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine as wine_description

from normlab.data import load_wine
from normlab.grading_helpers import (assert_choice, assert_close, assert_no_torch_calls, assert_shape, checked_call,
                                     hint_if)

# True while the autograder runs this notebook: the demonstrations then run shorter.
GRADING = "NBGRADER_EXECUTION" in os.environ
np.set_printoptions(precision=4, suppress=True)
# What the rules forbid inside your functions: torch, scikit-learn and the course library's
# own implementations (the tests run your functions under this watch).
NUMPY_ONLY = {"forbidden": ("torch",),
              "modules": ("sklearn", "normlab.functional", "normlab.data", "normlab.references")}
# Where float32 is allowed (standardizing, batch norm): it keeps about 7 significant digits;
# on these tests' inputs a float32 computation moves standardized values and batch-norm
# outputs of order 1 by up to about 2e-6 (measured). rtol 1e-4 and atol 1e-5 leave a margin
# of five or more; every mistake the tests look for is off by far more.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}


def checked(function, *args, **kwargs):
    """function(*args, **kwargs) as every test calls it: on copies of the arguments
    (AssertionError naming an argument it modified in place), watched for NUMPY_ONLY."""
    return assert_no_torch_calls(lambda: checked_call(function, *args, **kwargs), **NUMPY_ONLY,
                                 what=f"your {function.__name__}")


def kappa_of(x):
    """curvature_condition_number(x), checked, and checked to be one number."""
    kappa = checked(curvature_condition_number, x)
    assert kappa is not None and np.ndim(kappa) == 0 and np.isrealobj(kappa), \
        f"curvature_condition_number should return one number (a float), got {kappa!r}"
    return float(kappa)


def standardized(x_train, x_val, x_test, **options):
    """standardize_splits(...), checked; its result checked to be the five arrays
    (z_train, z_val, z_test, mean, std) with the shapes of the docstring."""
    result = checked(standardize_splits, x_train, x_val, x_test, **options)
    assert isinstance(result, tuple) and len(result) == 5, \
        f"standardize_splits should return (z_train, z_val, z_test, mean, std), got {type(result).__name__} " \
        f"of length {len(result) if hasattr(result, '__len__') else '-'}"
    features = np.shape(x_train)[1]
    shapes = (np.shape(x_train), np.shape(x_val), np.shape(x_test), (features,), (features,))
    for value, name, shape in zip(result, ("z_train", "z_val", "z_test", "mean", "std"), shapes):
        assert_shape(value, shape, name)
    return result


def normalized(x, gamma, beta, **options):
    """batchnorm_forward(x, gamma, beta, ...), checked; its result checked to be a pair
    (out, cache) with out of x's shape. Returns out."""
    result = checked(batchnorm_forward, x, gamma, beta, **options)
    assert isinstance(result, tuple) and len(result) == 2, \
        f"batchnorm_forward should return a pair (out, cache), got {type(result).__name__}"
    assert_shape(result[0], np.shape(x), "out")
    return result[0]


def identity_of(x, **options):
    """identity_parameters(x, ...), checked; its result checked to be (gamma, beta) of
    shape (x.shape[1],)."""
    result = checked(identity_parameters, x, **options)
    assert isinstance(result, tuple) and len(result) == 2, \
        f"identity_parameters should return a pair (gamma, beta), got {type(result).__name__}"
    for value, name in zip(result, ("gamma", "beta")):
        assert_shape(value, (np.shape(x)[1],), f"{name} for x of shape {np.shape(x)}")
    return result

# %% [markdown]
# ## Part 1 — Input normalization (≈ 1 hour, 8 points)
#
# ### 1.1 The wine data
#
# The UCI wine data set describes 178 wines by 13 chemical measurements; the task is to
# tell the three cultivars apart. `normlab.data.load_wine` splits it into train,
# validation and test sets (stratified, seeded). We ask for the raw features, because
# standardizing them is your job.

# %% nbgrader={"grade": false, "grade_id": "ps1_wine", "locked": true, "schema_version": 3, "solution": false, "task": false}
wine = load_wine(standardize=False, seed=0)
x_train, y_train = wine.x_train.numpy().astype(np.float64), wine.y_train.numpy()
x_val, y_val = wine.x_val.numpy().astype(np.float64), wine.y_val.numpy()
x_test, y_test = wine.x_test.numpy().astype(np.float64), wine.y_test.numpy()
feature_names = wine_description().feature_names
print(wine)
print(f"{'feature':>30}  {'min':>8}  {'max':>8}  {'mean':>8}  {'std':>8}")
for name, column in zip(feature_names, x_train.T):
    print(f"{name:>30}  {column.min():8.2f}  {column.max():8.2f}  {column.mean():8.2f}  {column.std():8.2f}")

# %% [markdown]
# Proline is in the hundreds to thousands, hue around 1, the nonflavanoid phenols a
# fraction of 1: the standard deviations (last column) of the features lie more than
# three orders of magnitude apart.
#
# ### 1.2 Why scale matters: the curvature of the loss
#
# Take the simplest model, a linear regression $\hat y = Xw$ (no bias, to keep it short)
# with the mean squared error
#
# $$L(w) = \frac{1}{2N}\lVert Xw - y\rVert^2, \qquad \nabla L(w) = \frac1N X^\top (Xw - y),
# \qquad H = \nabla^2 L = \frac1N X^\top X .$$
#
# The Hessian $H$ is the same everywhere. Gradient descent with step size $\eta$
# diverges unless $\eta < 2/\lambda_{\max}(H)$, and then the error along the flattest
# direction only shrinks by a factor $1 - \eta\lambda_{\min}$ per step. So the number of
# steps grows with the **condition number**
#
# $$\kappa = \frac{\lambda_{\max}(H)}{\lambda_{\min}(H)} .$$
#
# Geometrically: the contours of $L$ are ellipses whose axes have length ratio
# $\sqrt{\kappa}$. A large $\kappa$ means long, thin valleys in which gradient descent
# zig-zags.
#
# **Task (2 points).** Implement `curvature_condition_number(x)`: the condition number
# of $H = X^\top X / N$ for a data matrix `x` of shape `(N, D)`. `np.linalg.eigvalsh`
# returns the eigenvalues of a symmetric matrix. (The singular values $s$ of $X$ and the
# eigenvalues of $H$ are related by $\lambda = s^2/N$.) Compute in float64, NumPy's
# default here: the condition numbers of raw features are large, and float32 keeps only
# about 7 significant digits.

# %% nbgrader={"grade": false, "grade_id": "ps1_curvature", "locked": false, "schema_version": 3, "solution": true, "task": false}
def curvature_condition_number(x):
    """Condition number lambda_max / lambda_min of H = x.T @ x / N.

    x: (N, D) with N >= D, left unchanged. Returns a float (inf if H is singular, e.g. when
    a feature is 0 in every sample).
    """
    ### BEGIN SOLUTION
    hessian = x.T @ x / x.shape[0]
    eigenvalues = np.linalg.eigvalsh(hessian)
    if eigenvalues[0] <= 0:
        return float("inf")
    return float(eigenvalues[-1] / eigenvalues[0])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps1_test_curvature", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Two features on scales 1 and 2: H = diag(1, 4) / 2, so kappa = 4 (the singular values of x
# are 1 and 2; their ratio is the square root of kappa).
kappa = kappa_of(np.array([[1.0, 0.0], [0.0, 2.0]]))
assert_close(kappa, 4.0, "curvature_condition_number([[1, 0], [0, 2]])",
             hint=hint_if(kappa, 2.0, "the ratio of H's eigenvalues, not of x's singular values (their square roots)"))
# kappa does not depend on N: the data stacked twice have the same H = x.T @ x / N.
example = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
assert_close(kappa_of(np.vstack([example, example])), kappa_of(example),
             "kappa of the data stacked twice (the same H, so the same kappa)")
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(101)
for _x in (_rng.normal(size=(40, 5)) + 3.0, _rng.normal(size=(30, 3)) * np.array([1.0, 10.0, 100.0])):
    _eig = np.linalg.eigvalsh(_x.T @ _x / len(_x))
    assert_close(kappa_of(_x), _eig[-1] / _eig[0], f"kappa of random data of shape {_x.shape}", rtol=1e-6)
# A feature that is 0 in every sample: H has the eigenvalue 0, so kappa is inf (the docstring).
_kappa = kappa_of(np.array([[1.0, 0.0, 2.0], [2.0, 0.0, 1.0], [3.0, 0.0, -1.0]]))
assert _kappa == np.inf, \
    f"x with a feature that is 0 in every sample has a singular H: kappa should be inf, got {_kappa:.6g}"
### END HIDDEN TESTS

# %% [markdown]
# Now look at the wine data: the raw features, and the same features after a
# standardization (done quickly here with the mean and standard deviation of each
# feature; you will write the proper version next).

# %% nbgrader={"grade": false, "grade_id": "ps1_curvature_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
quick = (x_train - x_train.mean(axis=0)) / x_train.std(axis=0)
print(f"kappa, raw features:          {curvature_condition_number(x_train):.3g}")
print(f"kappa, standardized features: {curvature_condition_number(quick):.3g}")

# %% [markdown]
# Standardizing shrinks $\kappa$ by orders of magnitude, but not down to 1: what is left
# comes from correlations between features, which rescaling cannot remove.
#
# ### 1.3 Standardizing with statistics of the training split
#
# Standardizing maps each feature $j$ to
#
# $$z_j = \frac{x_j - \mu_j}{\sigma_j},$$
#
# with $\mu_j$ and $\sigma_j$ the mean and standard deviation of feature $j$
# **on the training split**. The validation and test splits are transformed with the
# *same* $\mu$ and $\sigma$: they stand for data we have not seen yet, so they must not
# influence anything we fit, including the preprocessing. Use the *biased* standard
# deviation (divide by $N$, NumPy's default `ddof=0`), as scikit-learn's
# `StandardScaler` does.
#
# A feature that is constant on the training split has $\sigma_j = 0$. Dividing by it
# would produce `inf` or `nan`; instead use $\sigma_j = 1$ for such a feature (it is
# only centered). "Constant" means $\sigma_j$ < `min_std`.
#
# **Task (5 points).** Implement `standardize_splits`. It must not modify its inputs.

# %% nbgrader={"grade": false, "grade_id": "ps1_standardize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def standardize_splits(x_train, x_val, x_test, min_std=1e-8):
    """Standardize every feature with the mean and standard deviation of the train split.

    x_train: (N_train, D), x_val: (N_val, D), x_test: (N_test, D).
    mean = x_train.mean(axis=0); std = x_train.std(axis=0) (biased, divides by N_train),
    replaced by 1 where it is below min_std. Each split becomes (x - mean) / std.
    Returns (z_train, z_val, z_test, mean, std); mean and std have shape (D,). The inputs
    are left unchanged.
    """
    ### BEGIN SOLUTION
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std < min_std, 1.0, std)
    z_train, z_val, z_test = ((x - mean) / std for x in (x_train, x_val, x_test))
    return z_train, z_val, z_test, mean, std
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps1_test_standardize_train", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# A small example you can check by hand: two samples, two features.
small_train = np.array([[1.0, 10.0], [3.0, 30.0]])
small_val, small_test = np.array([[2.0, 40.0]]), np.array([[5.0, 0.0], [1.0, 20.0]])
z_tr, z_va, z_te, mean, std = standardized(small_train, small_val, small_test)
assert_close(mean, [2.0, 20.0], "mean", **FLOAT32,
             hint=hint_if(mean, [5.5, 16.5], "one mean per feature: average over the samples (axis 0)"))
assert_close(std, [1.0, 10.0], "std", **FLOAT32,
             hint=hint_if(std, [np.sqrt(2.0), np.sqrt(200.0)], "the biased standard deviation (ddof=0, NumPy's "
                                                                "default), not ddof=1"))
assert_close(z_tr, [[-1.0, -1.0], [1.0, 1.0]], "z_train", **FLOAT32)
# On the wine data every standardized training feature has mean 0 and std 1.
z_tr, z_va, z_te, mean, std = standardized(x_train, x_val, x_test)
assert_close(np.mean(z_tr, axis=0), np.zeros(x_train.shape[1]), "mean of each z_train feature", **FLOAT32)
assert_close(np.std(z_tr, axis=0), np.ones(x_train.shape[1]), "std of each z_train feature", **FLOAT32)
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(102)
_tr = _rng.normal(size=(5, 4)) * np.array([1.0, 100.0, 0.01, 7.0]) + np.array([0.0, 1e3, -2.0, 5.0])
_va, _te = _rng.normal(size=(3, 4)), _rng.normal(size=(2, 4))
for _dtype in (np.float64, np.float32):
    _z_tr, _, _, _mean, _std = standardized(_tr.astype(_dtype), _va.astype(_dtype), _te.astype(_dtype))
    _t = _tr.astype(_dtype).astype(np.float64)
    _what = f"for x_train of shape {_tr.shape} in {np.dtype(_dtype).name}"
    assert_close(_mean, _t.mean(axis=0), f"mean {_what}", **FLOAT32)
    assert_close(_std, _t.std(axis=0), f"std (biased, ddof=0) {_what}", **FLOAT32)
    assert_close(_z_tr, (_t - _t.mean(axis=0)) / _t.std(axis=0), f"z_train {_what}", **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps1_test_standardize_splits", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The small example again: validation and test data use the TRAIN mean [2, 20] and std [1, 10].
small_train = np.array([[1.0, 10.0], [3.0, 30.0]])
small_val, small_test = np.array([[2.0, 40.0]]), np.array([[5.0, 0.0], [1.0, 20.0]])
z_tr, z_va, z_te, mean, std = standardized(small_train, small_val, small_test)
assert_close(z_va, [[0.0, 2.0]], "z_val", **FLOAT32,
             hint=hint_if(z_va, [[0.0, 0.0]], "transform the validation split with the TRAIN mean and std, not its "
                                              "own"))
assert_close(z_te, [[3.0, -2.0], [-1.0, 0.0]], "z_test", **FLOAT32,
             hint=hint_if(z_te, [[1.0, -1.0], [-1.0, 1.0]], "transform the test split with the TRAIN mean and std, "
                                                            "not its own"))
# A feature that is constant on the training split is centered, not divided by 0.
constant = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
z_tr, z_va, z_te, mean, std = standardized(constant, np.array([[2.0, 6.0]]), np.array([[2.0, 4.0]]))
assert_close(std, [np.sqrt(2.0 / 3.0), 1.0], "std with a constant second feature", **FLOAT32,
             hint=hint_if(std, [np.sqrt(2.0 / 3.0), 0.0], "use 1 where the std is below min_std"))
assert_close(z_va, [[0.0, 1.0]], "z_val with a constant feature", **FLOAT32)
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(103)
_tr, _va, _te = _rng.normal(size=(6, 3)), _rng.normal(size=(4, 3)) + 2.0, _rng.normal(size=(5, 3)) - 1.0
_, _z_va, _z_te, _, _ = standardized(_tr, _va, _te)
_m, _s = _tr.mean(axis=0), _tr.std(axis=0)
assert_close(_z_va, (_va - _m) / _s, "z_val for random splits", **FLOAT32)
assert_close(_z_te, (_te - _m) / _s, "z_test for random splits", **FLOAT32)
# min_std is the threshold: a feature with std 1e-7 counts as constant for min_std=1e-6, not for 1e-8.
_tiny = np.array([[0.0], [2e-7]])
_, _, _, _, _std = standardized(_tiny, np.ones((1, 1)), np.ones((1, 1)), min_std=1e-6)
assert_close(_std, [1.0], "std of a feature with std 1e-7 and min_std=1e-6 (below min_std: replaced by 1)")
_, _, _, _, _std = standardized(_tiny, np.ones((1, 1)), np.ones((1, 1)), min_std=1e-8)
assert_close(_std, [1e-7], "std of a feature with std 1e-7 and min_std=1e-8 (not below min_std: kept)",
             rtol=1e-4, atol=0.0)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.4 What standardizing buys: gradient descent on the wine data
#
# Below, a linear softmax classifier is trained by full-batch gradient descent on the
# raw and on your standardized features, each with a small and the largest reasonable
# step size. (On the raw features the loss already rises for a few steps at $10^{-5}$
# before it comes down, and with a step size much above that it jumps up and down instead
# of settling: the proline direction is that steep.)

# %% nbgrader={"grade": false, "grade_id": "ps1_gd_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
def softmax_regression_losses(x, y, lr, steps, num_classes=3):
    """Full-batch gradient descent on the cross-entropy of a linear softmax classifier
    (weights and bias start at 0). Returns the training loss before each step."""
    n, d = x.shape
    weights, bias = np.zeros((d, num_classes)), np.zeros(num_classes)
    onehot = np.eye(num_classes)[y]
    losses = []
    for _ in range(steps):
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        losses.append(-np.mean(np.log(probs[np.arange(n), y])))
        grad = (probs - onehot) / n
        weights -= lr * x.T @ grad
        bias -= lr * grad.sum(axis=0)
    return np.array(losses)


STEPS = 50 if GRADING else 500  # the grader only needs the code to run
z_train, z_val, z_test, _, _ = standardize_splits(x_train, x_val, x_test)
fig, ax = plt.subplots(figsize=(7, 4))
for data, name, rates in ((x_train, "raw", (1e-6, 1e-5)), (z_train, "standardized", (0.1, 1.0))):
    for lr in rates:
        losses = softmax_regression_losses(data, y_train, lr, STEPS)
        ax.plot(losses, label=f"{name}, lr = {lr:g}")
        print(f"{name:>12}, lr = {lr:<6g}: loss after {STEPS} steps {losses[-1]:.3f}")
ax.set(xlabel="step", ylabel="training loss", yscale="log", title="Gradient descent on wine")
ax.legend()
plt.show()

# %% [markdown]
# **Question 1 (1 point).** Why are $\mu$ and $\sigma$ computed on the training split
# only, and then applied unchanged to the validation and test splits?
#
# - (a) It is faster: the training split is the only one loaded during training.
# - (b) Statistics of the validation or test data would leak information about the
#   held-out data into the model, so the validation and test scores would no longer
#   estimate performance on truly new data.
# - (c) The training split is larger, so its statistics are more accurate; otherwise it
#   would make no difference.
# - (d) Standardizing each split with its own statistics gives every split mean 0 and
#   std 1, which is what the model expects; the training statistics are only a shortcut.
#
# Answer with one letter, e.g. `q_train_only = "a"`.

# %% nbgrader={"grade": false, "grade_id": "ps1_q_train_only", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_train_only = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_train_only = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps1_test_q_train_only", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_train_only, "abcd", "q_train_only")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_train_only: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 — The batch-norm forward pass (≈ 1 hour 15 minutes, 12 points)
#
# Standardizing the inputs only helps the first layer: the inputs of the next layers
# are activations, whose distribution changes whenever the weights before them change.
# Batch normalization (Ioffe & Szegedy, 2015) standardizes them too, using the
# statistics of the current mini-batch. For a mini-batch of $m$ values
# $x^{(1)}, \dots, x^{(m)}$ of one feature:
#
# $$\mu = \frac1m \sum_{i=1}^m x^{(i)}, \qquad
# \sigma^2 = \frac1m \sum_{i=1}^m \left(x^{(i)} - \mu\right)^2, \qquad
# \hat x^{(i)} = \frac{x^{(i)} - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
# y^{(i)} = \gamma\,\hat x^{(i)} + \beta .$$
#
# - The variance is the **biased** one (divide by $m$, not $m-1$), as in the paper and in
#   PyTorch's training mode.
# - $\epsilon$ (typically $10^{-5}$) goes **inside** the square root; it keeps the
#   division finite when a feature is (nearly) constant in the batch.
# - $\gamma$ and $\beta$ are learned, one pair per feature: they let the layer choose
#   the scale and mean of its output.
#
# **Which values count as "one feature".** For fully connected activations of shape
# `(N, D)`, feature $d$ is column $d$: $m = N$. For convolutional feature maps of shape
# `(N, C, H, W)`, a channel is one feature: the statistics of channel $c$ are taken over
# all samples *and all positions*, $m = N \cdot H \cdot W$, and $\gamma, \beta$ have
# shape `(C,)` — because a convolution applies the same filter at every position. In
# both cases: **over every axis except axis 1**.
#
# **Task (10 points).** Implement `batchnorm_forward` for both layouts. Return
# `(out, cache)` where `cache` holds what a backward pass will need (in problem set 2
# you will use $x$, $\hat x$, $\mu$, $\sigma^2$, $\gamma$ and $\epsilon$); the tests only look
# at `out`. Do not modify `x`.
#
# *Hints:* `axes = (0,) + tuple(range(2, x.ndim))` are the axes to average over;
# `keepdims=True` keeps the statistics broadcastable against `x`; $\gamma$ needs the shape
# `(1, C, 1, 1)` (or `(1, D)`) to broadcast along axis 1.

# %% nbgrader={"grade": false, "grade_id": "ps1_bn_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalization in training mode, with the statistics of this mini-batch.

    x: (N, D) or (N, C, H, W), any N >= 1, left unchanged; gamma, beta: (D,) or (C,).
    Per feature (axis 1), over every other axis (m = N or N*H*W values):
        mu = mean, var = biased variance (divides by m),
        xhat = (x - mu) / sqrt(var + eps), out = gamma * xhat + beta.
    Returns (out, cache); out has the shape of x.
    """
    ### BEGIN SOLUTION
    axes = (0,) + tuple(range(2, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mu) / np.sqrt(var + eps)
    per_feature = (1, -1) + (1,) * (x.ndim - 2)
    out = gamma.reshape(per_feature) * xhat + beta.reshape(per_feature)
    cache = {"x": x, "xhat": xhat, "mu": mu, "var": var, "gamma": gamma, "eps": eps}
    return out, cache
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps1_test_bn_forward_2d", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
# By hand: features [1, 3] and [2, 6] have means 2 and 4, biased variances 1 and 4,
# so with eps = 0, gamma = 1 and beta = 0 every output is -1 or +1.
out = normalized(np.array([[1.0, 2.0], [3.0, 6.0]]), np.ones(2), np.zeros(2), eps=0.0)
half = np.sqrt(0.5)  # what the unbiased variances 2 and 8 would give
assert_close(out, [[-1.0, -1.0], [1.0, 1.0]], "out", **FLOAT32,
             hint=hint_if(out, [[-1.0, 1.0], [-1.0, 1.0]], "statistics per feature (column, axis 0), not per sample")
             or hint_if(out, [[-half, -half], [half, half]], "the biased variance (divide by m, np.var's default), "
                                                             "not m - 1"))
# Random data: with gamma and beta, each output feature has mean beta and std gamma
# (up to the tiny eps).
rng = np.random.default_rng(0)
x = rng.normal(loc=3.0, scale=2.0, size=(8, 3))
gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 5.0])
out = normalized(x, gamma, beta)
assert_close(np.mean(out, axis=0), beta, "mean of each output feature", **FLOAT32)
assert_close(np.std(out, axis=0), gamma, "std of each output feature", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_batchnorm as _torch_batchnorm

_rng = np.random.default_rng(105)
for _shape, _eps, _dtype in (((3, 4), 1e-5, np.float64), ((6, 5), 0.5, np.float64), ((2, 3), 1e-5, np.float64),
                             ((4, 2), 2.0, np.float64), ((16, 3), 1e-5, np.float32)):
    _x = (_rng.normal(size=_shape) * 0.5 + 2.0).astype(_dtype)
    _gamma, _beta = _rng.normal(size=_shape[1]).astype(_dtype), _rng.normal(size=_shape[1]).astype(_dtype)
    _out = normalized(_x, _gamma, _beta, eps=_eps)
    _x64, _g64, _b64 = (_a.astype(np.float64) for _a in (_x, _gamma, _beta))
    _centred, _var = _x64 - _x64.mean(axis=0), _x64.var(axis=0)
    _hint = (hint_if(_out, _g64 * _centred / (np.sqrt(_var) + _eps) + _b64, "eps belongs inside the square root: "
                                                                             "sqrt(var + eps)")
             or hint_if(_out, _g64 * _centred / np.sqrt(_var + 1e-5) + _b64, "use the eps argument")
             ) if _eps > 0.1 else ""
    assert_close(_out, _torch_batchnorm(_x64, _g64, _b64, _eps),
                 f"out for x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}", **FLOAT32, hint=_hint)
# A batch of one sample: each feature's only value is its own mean, so xhat = 0 and out = beta.
_out = normalized(np.array([[3.0, -1.0, 7.0]]), np.array([2.0, 0.5, 1.0]), np.array([0.1, 0.2, 0.3]))
assert_close(_out, [[0.1, 0.2, 0.3]], "out for a batch of one sample (N = 1)", **FLOAT32)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ps1_test_bn_forward_4d", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
# By hand: one channel, two samples, 1 x 2 positions. The channel's 4 values 0, 2, 4, 6
# have mean 3 and biased variance (9 + 1 + 1 + 9) / 4 = 5.
x = np.array([0.0, 2.0, 4.0, 6.0]).reshape(2, 1, 1, 2)
out = normalized(x, np.ones(1), np.zeros(1), eps=0.0)
assert_close(out, (np.array([-3.0, -1.0, 1.0, 3.0]) / np.sqrt(5.0)).reshape(2, 1, 1, 2), "out", **FLOAT32,
             hint=hint_if(out, np.array([-1.0, -1.0, 1.0, 1.0]).reshape(2, 1, 1, 2),
                          "one mean and variance per channel, over the batch AND all positions: axes (0, 2, 3)"))
# Random feature maps: each output channel has mean beta and std gamma over (N, H, W).
rng = np.random.default_rng(1)
x = rng.normal(loc=-1.0, scale=3.0, size=(4, 3, 5, 2))
gamma, beta = np.array([2.0, 1.0, 0.5]), np.array([1.0, 0.0, -2.0])
out = normalized(x, gamma, beta)
assert_close(np.mean(out, axis=(0, 2, 3)), beta, "mean of each output channel over (N, H, W)", **FLOAT32)
assert_close(np.std(out, axis=(0, 2, 3)), gamma, "std of each output channel over (N, H, W)", **FLOAT32)
### BEGIN HIDDEN TESTS
from normlab.references import torch_batchnorm as _torch_batchnorm

_rng = np.random.default_rng(104)
for _shape, _eps, _dtype in (((3, 4, 2, 5), 1e-5, np.float64), ((2, 2, 3, 3), 0.5, np.float64),
                             ((5, 3, 1, 1), 1e-3, np.float64), ((1, 3, 4, 4), 1e-5, np.float64),
                             ((8, 3, 4, 4), 1e-5, np.float32)):
    _x = (_rng.normal(size=_shape) * 2.0 + 1.0).astype(_dtype)
    _gamma, _beta = _rng.normal(size=_shape[1]).astype(_dtype), _rng.normal(size=_shape[1]).astype(_dtype)
    _out = normalized(_x, _gamma, _beta, eps=_eps)
    _x64, _g64, _b64 = (_a.astype(np.float64) for _a in (_x, _gamma, _beta))
    _what = f"out for x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}"
    if _shape[0] == 1:
        _what += " (a single image: each channel still has H * W values)"
    assert_close(_out, _torch_batchnorm(_x64, _g64, _b64, _eps), _what, **FLOAT32)
### END HIDDEN TESTS

# %% [markdown]
# The hidden tests compare your output with PyTorch's. You can do that yourself:
# in training mode, `torch.nn.BatchNorm1d` and `BatchNorm2d` compute exactly this
# (their `weight` is $\gamma$, their `bias` is $\beta$).

# %% nbgrader={"grade": false, "grade_id": "ps1_torch_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
import torch

rng = np.random.default_rng(2)
for shape, layer in (((16, 5), torch.nn.BatchNorm1d(5)), ((8, 3, 4, 4), torch.nn.BatchNorm2d(3))):
    x = rng.normal(size=shape)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(rng.normal(size=shape[1])))
        layer.bias.copy_(torch.from_numpy(rng.normal(size=shape[1])))
    layer = layer.double().train()
    expected = layer(torch.from_numpy(x)).detach().numpy()
    mine, _ = batchnorm_forward(x, layer.weight.detach().numpy(), layer.bias.detach().numpy(), eps=layer.eps)
    print(f"{type(layer).__name__} on {shape}: largest difference {np.abs(mine - expected).max():.2e}")


# %% [markdown]
# ### 2.2 Batch norm can undo itself
#
# Normalizing every layer's inputs could limit what the network can represent: a
# sigmoid that only ever sees inputs of mean 0 and variance 1 stays in its nearly linear
# part. That is what $\gamma$ and $\beta$ are for. With the right values the layer gives
# back exactly its input, so the network loses nothing it could express before, and
# gradient descent can move $\gamma$ and $\beta$ towards whatever scale and mean work best.
#
# **Task (2 points).** Implement `identity_parameters(x, eps)`: the $\gamma$ and $\beta$
# (shape `(D,)` or `(C,)`) for which `batchnorm_forward(x, gamma, beta, eps)` returns `x`
# itself, for this mini-batch `x` of shape `(N, D)` or `(N, C, H, W)`. Derive them from
# the formulas above; compute the statistics here directly (do not call
# `batchnorm_forward`).

# %% nbgrader={"grade": false, "grade_id": "ps1_identity", "locked": false, "schema_version": 3, "solution": true, "task": false}
def identity_parameters(x, eps=1e-5):
    """gamma, beta of shape (x.shape[1],) with batchnorm_forward(x, gamma, beta, eps)[0] == x.

    x: (N, D) or (N, C, H, W), any N >= 1 and any number of features (one too), left unchanged.
    """
    ### BEGIN SOLUTION
    axes = (0,) + tuple(range(2, x.ndim))
    beta = x.mean(axis=axes)
    gamma = np.sqrt(x.var(axis=axes) + eps)
    return gamma, beta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ps1_test_identity", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand, the batch of Part 2 with eps = 0: means 2 and 4, standard deviations 1 and 2.
gamma, beta = identity_of(np.array([[1.0, 2.0], [3.0, 6.0]]), eps=0.0)
assert_close(gamma, [1.0, 2.0], "gamma", **FLOAT32,
             hint=hint_if(gamma, [2.0, 4.0], "return (gamma, beta) in this order: gamma undoes the division by "
                                             "sqrt(var + eps), beta the subtraction of the mean")
             or hint_if(gamma, [np.sqrt(2.0), np.sqrt(8.0)], "batch norm divides by the biased variance (m, not "
                                                              "m - 1)"))
assert_close(beta, [2.0, 4.0], "beta", **FLOAT32)
# Feature maps: batch norm with your gamma and beta gives back x.
x = np.arange(24.0).reshape(2, 3, 2, 2)
gamma, beta = identity_of(x)
xhat = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
assert_close(np.reshape(gamma, (1, 3, 1, 1)) * xhat + np.reshape(beta, (1, 3, 1, 1)), x,
             "batch norm of x with your gamma and beta (should give back x)", **FLOAT32)
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(106)
for _shape, _eps, _dtype in (((5, 3), 0.5, np.float64), ((3, 2, 4, 3), 0.25, np.float64), ((4, 3), 1e-5, np.float64),
                             ((1, 3), 1e-5, np.float64), ((6, 1), 0.5, np.float64), ((2, 1, 3, 3), 1e-5, np.float64),
                             ((16, 3), 0.5, np.float32)):
    _x = (_rng.normal(size=_shape) * 3.0 - 2.0).astype(_dtype)
    _x64, _axes = _x.astype(np.float64), (0,) + tuple(range(2, _x.ndim))
    _gamma, _beta = identity_of(_x, eps=_eps)
    _what = f"x of shape {_shape} in {np.dtype(_dtype).name}, eps={_eps}"
    assert_close(_beta, _x64.mean(axis=_axes), f"beta for {_what}", **FLOAT32)
    assert_close(_gamma, np.sqrt(_x64.var(axis=_axes) + _eps), f"gamma for {_what}", **FLOAT32)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.3 The bias before batch norm is redundant
#
# A linear layer followed by batch norm computes $\mathrm{BN}(Wx + b)$. Adding the same
# $b_j$ to every sample of feature $j$ adds $b_j$ to its mean too, and the subtraction of
# the mean removes it again. Check it with your own function (not graded):

# %% nbgrader={"grade": false, "grade_id": "ps1_bias_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(3)
inputs, weights, bias = rng.normal(size=(32, 10)), rng.normal(size=(10, 4)), rng.normal(size=4) * 10
gamma, beta = np.ones(4), np.zeros(4)
with_bias, _ = batchnorm_forward(inputs @ weights + bias, gamma, beta)
without_bias, _ = batchnorm_forward(inputs @ weights, gamma, beta)
print(f"largest difference with and without the bias: {np.abs(with_bias - without_bias).max():.1e}")

# %% [markdown]
# This is why `nn.Linear(..., bias=False)` or `nn.Conv2d(..., bias=False)` is the usual
# choice before a batch-norm layer; $\beta$ takes over the bias's role.
#
# ## Part 3 — Concepts (5 points)
#
# Answer each question with one letter in quotes, e.g. `q_axes = "a"`.
#
# **Question 2.** A convolutional layer produces activations of shape
# `(N, C, H, W) = (32, 64, 8, 8)`. In training mode, `torch.nn.BatchNorm2d(64)` computes
# how many means, each over how many numbers?
#
# - (a) 32 means, each over 64·8·8 numbers: one per sample.
# - (b) 64 means, each over 32·8·8 numbers: one per channel, over the batch and all positions.
# - (c) 64·8·8 means, each over 32 numbers: one per channel and position.
# - (d) one mean over all 32·64·8·8 numbers.

# %% nbgrader={"grade": false, "grade_id": "ps1_q_axes", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_axes = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_axes = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps1_test_q_axes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_axes, "abcd", "q_axes")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_axes: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 3.** Why does batch norm have the learnable $\gamma$ and $\beta$ at all?
#
# - (a) They make the forward pass cheaper to compute.
# - (b) They let the layer choose the scale and mean of its output, up to undoing the
#   normalization entirely ($\gamma = \sqrt{\sigma^2+\epsilon}$, $\beta = \mu$), so
#   normalizing does not restrict what the network can represent.
# - (c) They prevent a division by zero when the variance is 0.
# - (d) They store the running mean and variance used at test time.

# %% nbgrader={"grade": false, "grade_id": "ps1_q_identity", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_identity = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_identity = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps1_test_q_identity", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_identity, "abcd", "q_identity")
### BEGIN HIDDEN TESTS
assert answer == "b", "q_identity: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 4.** A layer computes $z = Wx + b$ and feeds $z$ to batch norm (training
# mode). What is the effect of the bias $b$ on the output of batch norm?
#
# - (a) The output is shifted by $b$.
# - (b) The output is shifted by $\gamma b$.
# - (c) None: the mean subtraction removes it, so $b$ can be dropped and $\beta$ plays its role.
# - (d) It increases the variance, so the output shrinks.

# %% nbgrader={"grade": false, "grade_id": "ps1_q_bias", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_bias = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_bias = "c"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps1_test_q_bias", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_bias, "abcd", "q_bias")
### BEGIN HIDDEN TESTS
assert answer == "c", "q_bias: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 5.** In training mode, a fully connected batch-norm layer receives a
# mini-batch of a single sample, `x` of shape `(1, D)`, with $\epsilon > 0$. What does it
# output?
#
# - (a) `x` unchanged.
# - (b) $\gamma x$.
# - (c) $\beta$, whatever `x` is: each feature's only value is its own mean, so $\hat x = 0$.
#   (That is why PyTorch refuses a training batch with one value per channel.)
# - (d) `nan`, because the variance is 0.

# %% nbgrader={"grade": false, "grade_id": "ps1_q_batch_of_one", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_batch_of_one = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_batch_of_one = "c"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps1_test_q_batch_of_one", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_batch_of_one, "abcd", "q_batch_of_one")
### BEGIN HIDDEN TESTS
assert answer == "c", "q_batch_of_one: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# **Question 6** (from the discussion sheet). Which of the following neural-network
# training challenges can be addressed with batch normalization?
#
# - (a) Overfitting
# - (b) Activations becoming too high or too low
# - (c) Training is too slow
# - (d) All of the above

# %% nbgrader={"grade": false, "grade_id": "ps1_q_sheet", "locked": false, "schema_version": 3, "solution": true, "task": false}
# q_sheet = "a", "b", "c" or "d"
### BEGIN SOLUTION
q_sheet = "d"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ps1_test_q_sheet", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
answer = assert_choice(q_sheet, "abcd", "q_sheet")
### BEGIN HIDDEN TESTS
assert answer == "d", "q_sheet: not the right choice"
### END HIDDEN TESTS

# %% [markdown]
# ## Before you submit
#
# 1. *Kernel → Restart Kernel and Run All Cells*: everything must run top to bottom.
# 2. Save the notebook (Ctrl-S) and run the last cell below: it checks the saved notebook the
#    way the grader does (from a terminal: `normlab check ps1.ipynb`).
# 3. Submit `ps1.ipynb`.
#
# **Summary.** Features on different scales make the loss surface ill-conditioned (on
# the wine data, standardizing shrinks the condition number $\kappa$ by orders of
# magnitude), and gradient descent crawls. Standardizing with training statistics fixes
# the input layer; batch norm repeats it for every layer, per feature, with mini-batch
# statistics over every axis but the feature axis, a biased variance and $\epsilon$
# inside the square root.
# $\gamma$ and $\beta$ give the layer back its freedom, and make the preceding bias
# redundant. Next, in problem set 2: the backward pass.

# %% nbgrader={"grade": false, "grade_id": "ps1_check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Save the notebook first (Ctrl-S): this checks the saved file, the way the grader runs it.
from normlab_tools.check import check

check()
