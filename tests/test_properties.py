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


@given(p=st.floats(0.0, 0.9), seed=seeds)
def test_dropout_preserves_the_expectation(p, seed):
    """Each entry of the mean of K inverted-dropout draws has mean x and standard deviation
    |x| sqrt(p / ((1 - p) K)); with K = 4000 and 20 entries, 6 standard deviations bound
    the error with failure probability < 1e-7 per example (normal approximation)."""
    x = torch.linspace(-2, 2, 20, dtype=torch.float64)
    torch.manual_seed(seed)
    drop = nl.Dropout(p)
    mean = drop(x.expand(DRAWS, -1)).mean(0)
    bound = 6 * x.abs() * np.sqrt(p / ((1 - p) * DRAWS)) + 1e-12
    assert torch.all((mean - x).abs() <= bound), (mean - x).abs().max()
    rng = np.random.default_rng(seed)
    out = np.stack([F.dropout_forward(x.numpy(), p, True, rng)[0] for _ in range(DRAWS)]).mean(0)
    assert np.all(np.abs(out - x.numpy()) <= bound.numpy())


@given(p=st.floats(0.0, 0.95, exclude_max=True), seed=seeds)
def test_dropout_is_the_identity_in_eval(p, seed):
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(nl.Dropout(p).eval()(x), x)
    assert np.array_equal(F.dropout_forward(x.numpy(), p, train=False)[0], x.numpy())
