"""normlab.references, the references the assignments' tests grade against, checked against
independent computations: the NumPy layers of normlab.functional, finite differences,
and batch norm's running averages and the probe written out by hand. A wrong reference
(eps outside the square root, a biased running variance, a step along +g, ...) fails here."""

import copy
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from normlab import functional, references
from normlab.gradcheck import numerical_gradient

SHAPES_AND_EPS = [((4, 3), 1e-5), ((6, 5), 0.5), ((2, 2), 2.0), ((3, 2, 4, 5), 1e-5), ((2, 3, 3, 1), 0.5),
                  ((5, 2, 7), 1e-3)]


def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 2.0 + 1.0
    return x, rng.normal(size=shape[1]), rng.normal(size=shape[1]), rng.normal(size=shape)


def test_a_plain_module_of_public_functions():
    """What the grader fingerprints: every name in __all__ is a function defined here, and
    every public function defined here is in __all__."""
    defined = {name for name, value in vars(references).items() if inspect.isfunction(value)
               and value.__module__ == references.__name__ and not name.startswith("_")}
    assert set(references.__all__) == defined
    assert len(references.__all__) == len(set(references.__all__))
    for name in references.__all__:
        assert inspect.getdoc(getattr(references, name)), f"{name} has no docstring"


@pytest.mark.parametrize("shape, eps", SHAPES_AND_EPS)
def test_torch_batchnorm_equals_the_numpy_layer(shape, eps):
    x, gamma, beta, _ = _inputs(shape, seed=len(shape) + int(eps * 10))
    x_before = x.copy()
    got = references.torch_batchnorm(x, gamma, beta, eps)
    assert got.dtype == np.float64 and got.shape == shape
    np.testing.assert_allclose(got, functional.batchnorm_forward(x, gamma, beta, eps)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(x, x_before)


def test_torch_batchnorm_by_hand():
    """Features [1, 3] and [2, 6]: means 2 and 4, biased variances 1 and 4; eps = 0.5 inside the root."""
    out = references.torch_batchnorm(np.array([[1.0, 2.0], [3.0, 6.0]]), np.array([1.0, 2.0]),
                                     np.array([0.0, 1.0]), 0.5)
    expected = np.array([[-1.0 / np.sqrt(1.5), 1.0 - 2.0 * 2.0 / np.sqrt(4.5)],
                         [1.0 / np.sqrt(1.5), 1.0 + 2.0 * 2.0 / np.sqrt(4.5)]])
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("shape, eps", SHAPES_AND_EPS)
def test_torch_batchnorm_gradients_equal_finite_differences(shape, eps):
    x, gamma, beta, dout = _inputs(shape, seed=10 + len(shape))
    dx, dgamma, dbeta = references.torch_batchnorm_gradients(x, gamma, beta, eps, dout)
    assert dx.shape == shape and dgamma.shape == dbeta.shape == (shape[1],)

    def forward(v=x, g=gamma, b=beta):
        return functional.batchnorm_forward(v, g, b, eps)[0]

    np.testing.assert_allclose(dx, numerical_gradient(lambda v: forward(v=v), x.copy(), dout), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numerical_gradient(lambda g: forward(g=g), gamma.copy(), dout),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dbeta, numerical_gradient(lambda b: forward(b=b), beta.copy(), dout),
                               rtol=1e-5, atol=1e-7)
    # and the library's staged backward pass, to float64 precision
    for mine, theirs in zip(functional.batchnorm_backward(dout, functional.batchnorm_forward(x, gamma, beta, eps)[1]),
                            (dx, dgamma, dbeta)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-8, atol=1e-10)


def _running_by_hand(batches, momentum):
    """Batch norm's buffers written out: per channel over every axis but 1, the unbiased
    variance, PyTorch's momentum (the weight of the new batch), 1/count when None."""
    mean, var = np.zeros(batches[0].shape[1]), np.ones(batches[0].shape[1])
    for count, batch in enumerate(batches, start=1):
        axes = (0,) + tuple(range(2, batch.ndim))
        n = batch.size // batch.shape[1]
        factor = 1.0 / count if momentum is None else momentum
        mean = functional.update_running(mean, batch.mean(axis=axes), factor)
        var = functional.update_running(var, batch.var(axis=axes) * n / (n - 1), factor)
    return mean, var


@pytest.mark.parametrize("shape", [(8, 3), (5, 4, 3, 2), (2, 5), (4, 2, 6)])
@pytest.mark.parametrize("momentum", [0.1, 0.75, None])
def test_torch_running_stats_by_hand(shape, momentum):
    rng = np.random.default_rng(len(shape))
    batches = [rng.normal(size=shape) * rng.uniform(0.5, 3.0) + rng.normal() for _ in range(4)]
    copies = [b.copy() for b in batches]
    mean, var, count = references.torch_running_stats(batches, momentum=momentum)
    expected_mean, expected_var = _running_by_hand(batches, momentum)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var, expected_var, rtol=1e-10)
    assert count == 4 and isinstance(count, int)
    for batch, before in zip(batches, copies):
        np.testing.assert_array_equal(batch, before)


def test_torch_running_stats_momentum_one_is_the_last_batch():
    """Momentum 1: the last batch's mean and unbiased variance. [1, 3] and [2, 6]: means 2
    and 4, unbiased variances 2 and 8."""
    mean, var, count = references.torch_running_stats([np.zeros((3, 2)), np.array([[1.0, 2.0], [3.0, 6.0]])],
                                                      momentum=1.0)
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(var, [2.0, 8.0])
    assert count == 2


def _probe_by_hand(model, x, y, step_sizes):
    """L(theta - eta g) and |grad L(theta - eta g) - g| with g over all parameters, on a
    training-mode copy, written with torch.autograd.grad."""
    net = copy.deepcopy(model).train()
    params = list(net.parameters())
    theta = [p.detach().clone() for p in params]
    g = torch.autograd.grad(F.cross_entropy(net(x), y), params)
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, t, gi in zip(params, theta, g):
                p.copy_(t - eta * gi)
        loss = F.cross_entropy(net(x), y)
        moved = torch.autograd.grad(loss, params)
        losses.append(float(loss.detach()))
        changes.append(float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(moved, g)))))
    return np.array(losses), np.array(changes)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_probe_by_hand(norm):
    from normlab import models

    torch.manual_seed(3)
    model = models.mlp(6, 3, hidden=(8,), norm=norm).double().eval()
    x, y = torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 3, (12,))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    steps = (0.0, 0.05, 0.5)
    losses, changes = references.probe_losses_and_grad_changes(model, x, y, steps)
    expected_losses, expected_changes = _probe_by_hand(model, x, y, steps)
    assert isinstance(losses, np.ndarray) and isinstance(changes, np.ndarray)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-8)
    np.testing.assert_allclose(changes, expected_changes, rtol=1e-7, atol=1e-10)
    assert changes[0] == pytest.approx(0.0, abs=1e-12) and losses[1] < losses[0]
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


# --- ps5: the Bessel-corrected batch norm and makemore part 4's BN-MLP --------------------------


def _bn_mlp_inputs(seed, n=6, d=5, hidden=4, classes=3):
    rng = np.random.default_rng(seed)
    params = {"W1": rng.normal(size=(d, hidden)), "b1": rng.normal(size=hidden),
              "bngain": rng.normal(size=hidden) + 1.0, "bnbias": rng.normal(size=hidden),
              "W2": rng.normal(size=(hidden, classes)), "b2": rng.normal(size=classes)}
    return params, rng.normal(size=(n, d)), rng.integers(0, classes, n)


@pytest.mark.parametrize("n, eps", [(4, 1e-5), (2, 0.5), (7, 2.0)])
def test_bessel_batchnorm_gradients_match_finite_differences(n, eps):
    """The forward written out in NumPy (variance divided by n - 1), differentiated numerically."""
    x, gamma, beta, _ = _inputs((n, 3), seed=n)
    dout = np.random.default_rng(n + 10).normal(size=x.shape)

    def forward(x, gamma, beta):
        centred = x - x.mean(axis=0)
        return gamma * centred / np.sqrt((centred ** 2).sum(axis=0) / (n - 1) + eps) + beta

    dx, dgamma, dbeta = references.bessel_batchnorm_gradients(x, gamma, beta, eps, dout)
    np.testing.assert_allclose(dx, numerical_gradient(lambda v: forward(v, gamma, beta), x.copy(), dout),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numerical_gradient(lambda v: forward(x, v, beta), gamma.copy(), dout),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dbeta, dout.sum(axis=0), rtol=1e-12)
    # Not torch's training-mode batch norm, which divides by n: the gradients differ.
    assert not np.allclose(dx, references.torch_batchnorm_gradients(x, gamma, beta, eps, dout)[0])


def test_bn_mlp_forward_is_the_network_written_with_torch_functions():
    params, x, y = _bn_mlp_inputs(seed=1)
    t = references.bn_mlp_forward(params, x, y, eps=1e-3)
    p = {name: torch.tensor(value) for name, value in params.items()}
    pre = torch.tensor(x) @ p["W1"] + p["b1"]
    hpreact = p["bngain"] * (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=True) + 1e-3) + p["bnbias"]
    logits = torch.tanh(hpreact) @ p["W2"] + p["b2"]
    torch.testing.assert_close(t["logits"], logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(t["loss"], F.cross_entropy(logits, torch.tensor(y)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dloss", [1.0, -0.7])
def test_bn_mlp_gradients_match_finite_differences(dloss):
    """Each parameter's gradient against central differences of the loss (h = 1e-6), times dloss;
    the intermediates' against the chain rule written out where it is one line."""
    params, x, y = _bn_mlp_inputs(seed=2)
    grads = references.bn_mlp_gradients(params, x, y, eps=1e-5, dloss=dloss)

    def loss(ps):
        return float(references.bn_mlp_forward(ps, x, y, eps=1e-5)["loss"].detach())

    for name in ("W1", "bngain", "bnbias", "W2", "b2"):
        numerical = np.zeros_like(params[name])
        for index in np.ndindex(params[name].shape):
            plus, minus = copy.deepcopy(params), copy.deepcopy(params)
            plus[name][index] += 1e-6
            minus[name][index] -= 1e-6
            numerical[index] = dloss * (loss(plus) - loss(minus)) / 2e-6
        np.testing.assert_allclose(grads[name], numerical, rtol=1e-5, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(grads["b1"], 0.0, atol=1e-12)  # batch norm cancels the bias before it
    t = references.bn_mlp_forward(params, x, y)
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(grads["logits"], dloss * (t["probs"].detach().numpy() - onehot) / len(y),
                               rtol=1e-10, atol=1e-12)
    assert set(grads) == set(t) - {"loss"}
