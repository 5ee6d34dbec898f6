"""Hypothesis properties of the normalization layers (the invariances the lectures teach)."""

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from normlab import functional as F
from normlab import nn as nl

seeds = st.integers(0, 2**31 - 1)


@given(alpha=st.floats(0.01, 100.0), seed=seeds, n=st.integers(3, 32), d_in=st.integers(1, 6), d_out=st.integers(1, 6))
def test_batchnorm_is_scale_invariant_and_its_weight_gradient_scales_as_one_over_alpha(alpha, seed, n, d_in, d_out):
    """BN(alpha W x + b) = BN(W x) for alpha > 0, and dL/d(alpha W) = (1/alpha) dL/dW.

    Exact with eps = 0 (with eps > 0, BN_eps(alpha z) = BN_{eps/alpha^2}(z)).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    weight = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    bias = torch.randn(d_out, generator=g, dtype=torch.float64)
    upstream = torch.randn(n, d_out, generator=g, dtype=torch.float64)
    bn = nl.BatchNorm(d_out, eps=0.0, dtype=torch.float64)

    def output_and_weight_grad(w, b):
        w = w.clone().requires_grad_(True)
        out = bn(x @ w.T + b)
        out.backward(upstream)
        return out.detach(), w.grad

    plain, grad_plain = output_and_weight_grad(weight, 0.0)
    scaled, grad_scaled = output_and_weight_grad(alpha * weight, bias)
    torch.testing.assert_close(scaled, plain, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(grad_scaled, grad_plain / alpha, rtol=1e-6, atol=1e-9 / alpha)


@given(seed=seeds, n=st.integers(1, 4), c=st.integers(1, 6), h=st.integers(1, 4), w=st.integers(2, 4))
def test_groupnorm_with_one_group_is_layernorm_over_chw(seed, n, c, h, w):
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3 + 1
    group = nl.GroupNorm(1, c, dtype=torch.float64)
    layer = nl.LayerNorm((c, h, w), dtype=torch.float64)
    torch.testing.assert_close(group(x), layer(x), rtol=0, atol=1e-10)


@given(seed=seeds, n=st.integers(1, 4), c=st.integers(1, 6), h=st.integers(1, 4), w=st.integers(2, 4))
def test_groupnorm_with_c_groups_is_instancenorm(seed, n, c, h, w):
    rng = np.random.default_rng(seed)
    x = rng.normal(1, 3, size=(n, c, h, w))
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    dout = rng.normal(size=x.shape)
    out_g, cache_g = F.groupnorm_forward(x, gamma, beta, num_groups=c)
    out_i, cache_i = F.instancenorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out_g, out_i, atol=1e-10)
    for a, b in zip(F.groupnorm_backward(dout, cache_g), F.instancenorm_backward(dout, cache_i)):
        np.testing.assert_allclose(a, b, atol=1e-10)


DRAWS = 4000
FAILURE_PROBABILITY = 1e-9


def bernstein_bound(x, p, draws=DRAWS, delta=FAILURE_PROBABILITY):
    """|mean of `draws` inverted-dropout outputs - x| <= bound with probability >= 1 - delta.

    One output is x / (1 - p) with probability 1 - p, else 0: mean x, variance
    x^2 p / (1 - p), range |x| / (1 - p). Bernstein's inequality holds for every p
    (also tiny p, where a normal approximation of the rare drops fails).
    """
    log_term = np.log(2 / delta)
    variance, spread = x**2 * p / (1 - p), np.abs(x) / (1 - p)
    return np.sqrt(2 * variance * log_term / draws) + 2 * spread * log_term / (3 * draws) + 1e-12


@given(p=st.floats(0.0, 0.9), seed=seeds)
def test_dropout_preserves_the_expectation(p, seed):
    """The mean of many dropout draws stays within a Bernstein bound of x (non-inverted
    dropout, whose mean is (1 - p) x, falls outside it for p >= 0.05)."""
    x = torch.linspace(-2, 2, 20, dtype=torch.float64)
    bound = torch.from_numpy(bernstein_bound(x.numpy(), p))
    torch.manual_seed(seed)
    mean = nl.Dropout(p)(x.expand(DRAWS, -1)).mean(0)
    assert torch.all((mean - x).abs() <= bound), (mean - x).abs().max()
    rng = np.random.default_rng(seed)
    out = np.stack([F.dropout_forward(x.numpy(), p, True, rng)[0] for _ in range(DRAWS)]).mean(0)
    assert np.all(np.abs(out - x.numpy()) <= bound.numpy())


def test_the_dropout_bound_catches_non_inverted_dropout():
    x = np.linspace(-2, 2, 20)
    for p in (0.05, 0.5, 0.9):
        assert np.all(p * np.abs(x[np.abs(x) > 0.5]) > bernstein_bound(x[np.abs(x) > 0.5], p))


@given(p=st.floats(0.0, 0.95, exclude_max=True), seed=seeds)
def test_dropout_is_the_identity_in_eval(p, seed):
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(nl.Dropout(p).eval()(x), x)
    assert np.array_equal(F.dropout_forward(x.numpy(), p, train=False)[0], x.numpy())
