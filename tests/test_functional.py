"""normlab.functional (NumPy) against torch.nn.functional and finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from normlab import functional as F
from normlab.gradcheck import check_layer, rel_error

SHAPES = [(2, 3), (16, 7), (5, 4, 9), (4, 3, 5, 6), (3, 2, 3, 4, 5), (64, 10)]


def random_case(rng, shape, loc=2.0, scale=3.0):
    c = shape[1]
    x = rng.normal(loc, scale, size=shape)
    gamma, beta = rng.normal(1.0, 0.5, size=c), rng.normal(0.0, 0.5, size=c)
    dout = rng.standard_normal(shape)
    return x, gamma, beta, dout


def torch_grads(fn, x, dout, *params):
    """Output and gradients of fn(x, *params) under torch autograd (float64)."""
    tensors = [torch.tensor(a, requires_grad=True) for a in (x,) + params]
    out = fn(*tensors)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_batchnorm_matches_torch_forward_and_both_backwards(rng, shape, eps):
    x, gamma, beta, dout = random_case(rng, shape)
    out, cache = F.batchnorm_forward(x, gamma, beta, eps)
    ref_out, (dx, dgamma, dbeta) = torch_grads(
        lambda x, g, b: TF.batch_norm(x, None, None, g, b, training=True, eps=eps), x, dout, gamma, beta)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-9)
    for backward in (F.batchnorm_backward, F.batchnorm_backward_fast):
        got = backward(dout, cache)
        for mine, ref in zip(got, (dx, dgamma, dbeta)):
            np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_staged_and_closed_form_backward_agree(rng, shape):
    x, gamma, beta, dout = random_case(rng, shape, loc=-5, scale=0.1)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    for a, b in zip(F.batchnorm_backward(dout, cache), F.batchnorm_backward_fast(dout, cache)):
        assert rel_error(a, b) < 1e-9


def test_batchnorm_statistics_are_per_channel_over_all_other_axes(rng):
    x = rng.normal(size=(6, 3, 4, 5)) * np.array([1.0, 10.0, 100.0])[None, :, None, None]
    out, _ = F.batchnorm_forward(x, np.ones(3), np.zeros(3), eps=0.0)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, atol=1e-10)
    # the normalization is *not* per sample: a single sample's mean is not 0
    assert np.abs(out.mean(axis=(1, 2, 3))).max() > 1e-3


def test_all_ones_upstream_gradient_gives_zero_dx(rng):
    """Why gradient checks need a random upstream gradient: with dout = 1, dx = 0."""
    x, gamma, beta, _ = random_case(rng, (8, 4))
    _, cache = F.batchnorm_forward(x, gamma, beta)
    dx, _, _ = F.batchnorm_backward_fast(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, 0, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 5), (3, 4, 3, 2)])
@pytest.mark.parametrize("backward", [F.batchnorm_backward, F.batchnorm_backward_fast])
def test_batchnorm_finite_differences(rng, shape, backward):
    x, gamma, beta, _ = random_case(rng, shape)
    reports = check_layer(F.batchnorm_forward, backward, {"x": x, "gamma": gamma, "beta": beta})
    assert all(r.passed for r in reports), [str(r) for r in reports]


def test_batchnorm_inference_matches_torch_eval(rng):
    x, gamma, beta, _ = random_case(rng, (5, 3, 4, 4))
    mean, var = rng.normal(size=3), rng.uniform(0.5, 2, size=3)
    got = F.batchnorm_inference(x, gamma, beta, mean, var, eps=1e-5)
    ref = TF.batch_norm(*map(torch.tensor, (x, mean, var, gamma, beta)), training=False, eps=1e-5)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-10)


def test_update_running_is_pytorch_convention():
    assert F.update_running(1.0, 3.0, 0.1) == pytest.approx(0.9 * 1.0 + 0.1 * 3.0)


# ----------------------------------------------------------------------------- variants

@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 6), (3, 4, 5, 2)])
def test_layernorm_matches_torch(rng, shape):
    x = rng.normal(1, 2, size=shape)
    gamma, beta = rng.normal(size=shape[1:]), rng.normal(size=shape[1:])
    dout = rng.standard_normal(shape)
    out, cache = F.layernorm_forward(x, gamma, beta)
    ref_out, refs = torch_grads(lambda x, g, b: TF.layer_norm(x, shape[1:], g, b, 1e-5), x, dout, gamma, beta)
    np.testing.assert_allclose(out, ref_out, atol=1e-9)
    for mine, ref in zip(F.layernorm_backward(dout, cache), refs):
        np.testing.assert_allclose(mine, ref, atol=1e-9)


@pytest.mark.parametrize("shape", [(4, 3, 6), (3, 4, 5, 2), (2, 2, 3, 3, 3)])
def test_instancenorm_matches_torch(rng, shape):
    x, gamma, beta, dout = random_case(rng, shape)
    out, cache = F.instancenorm_forward(x, gamma, beta)
    ref_out, refs = torch_grads(lambda x, g, b: TF.instance_norm(x, weight=g, bias=b, eps=1e-5),
                                x, dout, gamma, beta)
    np.testing.assert_allclose(out, ref_out, atol=1e-9)
    for mine, ref in zip(F.instancenorm_backward(dout, cache), refs):
        np.testing.assert_allclose(mine, ref, atol=1e-9)


@pytest.mark.parametrize("shape,groups", [((4, 6, 5), 3), ((3, 8, 4, 4), 2), ((2, 4, 3, 3, 3), 4), ((5, 6), 2)])
def test_groupnorm_matches_torch(rng, shape, groups):
    x, gamma, beta, dout = random_case(rng, shape)
    out, cache = F.groupnorm_forward(x, gamma, beta, groups)
    ref_out, refs = torch_grads(lambda x, g, b: TF.group_norm(x, groups, g, b, 1e-5), x, dout, gamma, beta)
    np.testing.assert_allclose(out, ref_out, atol=1e-9)
    for mine, ref in zip(F.groupnorm_backward(dout, cache), refs):
        np.testing.assert_allclose(mine, ref, atol=1e-9)


@pytest.mark.parametrize("name", ["layernorm", "instancenorm", "groupnorm"])
def test_variants_finite_differences(rng, name):
    x = rng.normal(size=(3, 4, 3, 2))
    c = 4
    params = (rng.normal(size=x.shape[1:]),) * 2 if name == "layernorm" else (rng.normal(size=c),) * 2
    forward = getattr(F, f"{name}_forward")
    if name == "groupnorm":
        forward = lambda x, gamma, beta: F.groupnorm_forward(x, gamma, beta, 2)  # noqa: E731
    reports = check_layer(forward, getattr(F, f"{name}_backward"),
                          {"x": x, "gamma": params[0].copy(), "beta": params[1].copy()})
    assert all(r.passed for r in reports), [str(r) for r in reports]


def test_layernorm_works_with_a_batch_of_one(rng):
    x = rng.normal(size=(1, 5))
    out, _ = F.layernorm_forward(x, np.ones(5), np.zeros(5))
    assert abs(out.mean()) < 1e-12


# ----------------------------------------------------------------------------- dropout

def test_dropout_is_inverted_and_backward_uses_the_same_mask(rng):
    x = rng.normal(size=(200, 50))
    out, cache = F.dropout_forward(x, 0.3, train=True, rng=np.random.default_rng(0))
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.7)
    assert abs(kept.mean() - 0.7) < 0.01  # 10,000 Bernoulli(0.7): sd 0.0046
    dout = rng.normal(size=x.shape)
    np.testing.assert_allclose(F.dropout_backward(dout, cache), dout * kept / 0.7)


def test_dropout_eval_is_identity(rng):
    x = rng.normal(size=(4, 5))
    out, cache = F.dropout_forward(x, 0.5, train=False)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(F.dropout_backward(x, cache), x)


def test_dropout_finite_differences(rng):
    x = rng.normal(size=(4, 6))
    fixed = np.random.default_rng(7)
    state = fixed.bit_generator.state

    def forward(x):
        fixed.bit_generator.state = state  # the same mask on every call
        return F.dropout_forward(x, 0.4, True, fixed)

    reports = check_layer(forward, lambda d, c: (F.dropout_backward(d, c),), {"x": x})
    assert reports[0].passed, str(reports[0])


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,message", [
    (lambda: F.batchnorm_forward(np.ones(4), np.ones(4), np.zeros(4)), "expected 2D"),
    (lambda: F.batchnorm_forward(np.random.rand(4, 3), np.ones(4), np.zeros(4)), "expected input with 4 channels on axis 1"),
    (lambda: F.batchnorm_forward(np.random.rand(1, 3), np.ones(3), np.zeros(3)), "more than 1 value per channel"),
    (lambda: F.batchnorm_forward(np.ones((4, 3), dtype=int), np.ones(3), np.zeros(3)), "floating-point"),
    (lambda: F.dropout_forward(np.ones((2, 2)), 1.0), "between 0 and 1|in \\[0, 1\\)"),
    (lambda: F.dropout_forward(np.ones((2, 2)), -0.1), "in \\[0, 1\\)"),
    (lambda: F.groupnorm_forward(np.random.rand(2, 6, 3), np.ones(6), np.zeros(6), 4), "divisible by num_groups"),
    (lambda: F.instancenorm_forward(np.random.rand(2, 3), np.ones(3), np.zeros(3)), "expected 3D"),
    (lambda: F.instancenorm_forward(np.random.rand(2, 3, 1), np.ones(3), np.zeros(3)), "more than 1 value"),
])
def test_bad_input_raises_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mismatched_cache_is_refused(rng):
    x, gamma, beta, dout = random_case(rng, (4, 3))
    _, ln_cache = F.layernorm_forward(x, np.ones(3), np.zeros(3))
    _, bn_cache = F.batchnorm_forward(x, gamma, beta)
    with pytest.raises(ValueError, match="cache from batchnorm_forward, got a cache from layernorm"):
        F.batchnorm_backward(dout, ln_cache)
    with pytest.raises(ValueError, match="dout has shape \\(5, 3\\)"):
        F.batchnorm_backward_fast(rng.normal(size=(5, 3)), bn_cache)
    with pytest.raises(ValueError, match="dropout_forward"):
        F.dropout_backward(dout, bn_cache)


def test_the_shared_core_is_public_and_its_two_backward_forms_agree():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 2, 2))
    xhat, centered, var, inv_std = F.normalize_over_axes(x, (0, 2, 3), 1e-5)
    np.testing.assert_allclose(xhat.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(var.squeeze(), x.var(axis=(0, 2, 3)))
    np.testing.assert_allclose(centered * inv_std, xhat)
    _, cache = F.batchnorm_forward(x, np.ones(3), np.zeros(3))
    dxhat = rng.standard_normal(cache.xhat.shape)
    np.testing.assert_allclose(F.dxhat_to_dx_staged(dxhat, cache), F.dxhat_to_dx_closed_form(dxhat, cache),
                               atol=1e-10)


def test_non_inverted_dropout_scales_at_test_time_only():
    x = np.ones((200, 50))
    assert np.array_equal(F.dropout_forward_not_inverted(x, 0.2, train=False), 0.8 * x)
    out = F.dropout_forward_not_inverted(x, 0.2, True, np.random.default_rng(0))
    assert set(np.unique(out)) <= {0.0, 1.0} and abs(out.mean() - 0.8) < 0.02
