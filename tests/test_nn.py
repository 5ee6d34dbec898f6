"""normlab.nn against torch.nn: outputs, gradients, running statistics, state_dict;
normlab.nn_tuned.TunedBatchNorm against the readable normlab.nn.BatchNorm."""

import itertools

import pytest
import torch
from torch import nn

from normlab import nn as nl
from normlab.nn_tuned import TunedBatchNorm

TORCH_BN = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
SHAPES = [(7, 4), (16, 3), (5, 4, 6), (4, 3, 5, 6), (8, 2, 3, 3), (2, 3, 2, 3, 4)]
CONFIGS = list(itertools.product([0.1, 0.5, None], [True, False], [True, False]))  # momentum, affine, track


def pair(shape, momentum, affine, track, dtype=torch.float64, reference=None):
    """Our BatchNorm and `reference` (default: torch's) with the same random γ and β."""
    c = shape[1]
    kwargs = dict(eps=1e-5, momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype)
    ours, ref = nl.BatchNorm(c, **kwargs), (reference or TORCH_BN[len(shape)])(c, **kwargs)
    if affine:
        with torch.no_grad():
            for p in ("weight", "bias"):
                value = torch.randn(c, dtype=dtype)
                getattr(ours, p).copy_(value)
                getattr(ref, p).copy_(value)
    return ours, ref


def run_step(module, x, dout):
    x = x.clone().requires_grad_(True)
    out = module(x)
    out.backward(dout)
    grads = [x.grad] + [p.grad.clone() for p in module.parameters()]
    for p in module.parameters():
        p.grad = None
    return out.detach(), grads


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum,affine,track", CONFIGS)
def test_batchnorm_matches_torch_over_training_and_eval(shape, momentum, affine, track):
    ours, ref = pair(shape, momentum, affine, track)
    for step in range(4):
        x = torch.randn(shape, dtype=torch.float64) * (step + 1) + step
        dout = torch.randn(shape, dtype=torch.float64)
        (out_a, grads_a), (out_b, grads_b) = run_step(ours, x, dout), run_step(ref, x, dout)
        torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-9)
        for ga, gb in zip(grads_a, grads_b):
            torch.testing.assert_close(ga, gb, rtol=0, atol=1e-9)
    for name, buffer in ref.named_buffers():
        torch.testing.assert_close(getattr(ours, name), buffer, rtol=0, atol=1e-12)
    ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64) + 3
    dout = torch.randn(shape, dtype=torch.float64)
    (out_a, grads_a), (out_b, grads_b) = run_step(ours, x, dout), run_step(ref, x, dout)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-9)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, rtol=0, atol=1e-9)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum,affine,track", CONFIGS)
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_tuned_batchnorm_equals_the_readable_one(shape, momentum, affine, track, dtype, atol):
    """Same grid as the torch comparison: outputs, gradients of x, γ, β, and buffers."""
    readable, tuned = pair(shape, momentum, affine, track, dtype, reference=TunedBatchNorm)
    for step in range(4):
        x = torch.randn(shape, dtype=dtype) * (step + 1) + step
        dout = torch.randn(shape, dtype=dtype)
        (out_a, grads_a), (out_b, grads_b) = run_step(tuned, x, dout), run_step(readable, x, dout)
        torch.testing.assert_close(out_a, out_b, rtol=0, atol=atol)
        assert len(grads_a) == len(grads_b) == (3 if affine else 1)
        for ga, gb in zip(grads_a, grads_b):
            torch.testing.assert_close(ga, gb, rtol=0, atol=atol)
    buffers = dict(readable.named_buffers())
    assert list(dict(tuned.named_buffers())) == list(buffers) and (len(buffers) == 3) == track
    for name, buffer in buffers.items():
        torch.testing.assert_close(getattr(tuned, name), buffer, rtol=0, atol=atol)
    if track:
        assert int(tuned.num_batches_tracked) == 4


def test_tuned_batchnorm_is_the_same_module_with_another_training_kernel():
    assert issubclass(TunedBatchNorm, nl.BatchNorm)
    assert TunedBatchNorm._training_kernel is not nl.BatchNorm._training_kernel
    assert list(TunedBatchNorm(4).state_dict()) == list(nl.BatchNorm(4).state_dict())
    model = nn.Sequential(nn.Linear(3, 4), TunedBatchNorm(4))
    model(torch.randn(8, 3))
    assert [type(m) for m in nl.fold_sequential(model.eval())] == [nn.Linear]


def test_running_variance_is_unbiased_and_num_batches_counted():
    bn = nl.BatchNorm(3, momentum=1.0, dtype=torch.float64)
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    bn(x)
    torch.testing.assert_close(bn.running_var, x.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True))
    torch.testing.assert_close(bn.running_mean, x.mean(dim=(0, 2)))
    assert int(bn.num_batches_tracked) == 1


def test_momentum_none_is_the_cumulative_average():
    bn = nl.BatchNorm(2, momentum=None, dtype=torch.float64)
    batches = [torch.randn(10, 2, dtype=torch.float64) + i for i in range(5)]
    for b in batches:
        bn(b)
    torch.testing.assert_close(bn.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0))
    assert int(bn.num_batches_tracked) == 5


def test_state_dict_keys_and_cross_loading():
    ours, ref = nl.BatchNorm(4), nn.BatchNorm2d(4)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.train()(torch.randn(8, 4, 3, 3))
    ours.load_state_dict(ref.state_dict())
    ours.eval(), ref.eval()
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("bn_class", [nl.BatchNorm, TunedBatchNorm])
def test_batchnorm_autograd_gradcheck(bn_class):
    for shape, affine in [((6, 3), True), ((3, 2, 4, 3), True), ((4, 2, 5), False)]:
        bn = bn_class(shape[1], affine=affine, dtype=torch.float64)
        if affine:
            with torch.no_grad():
                bn.weight.normal_()
                bn.bias.normal_()
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        params = tuple(bn.parameters())

        def f(x, *p):
            return torch.func.functional_call(bn, dict(zip(["weight", "bias"], p)), (x,))

        assert torch.autograd.gradcheck(f, (x,) + params, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("bn_class", [nl.BatchNorm, TunedBatchNorm])
def test_float32_batchnorm_is_accurate_with_a_large_mean(bn_class):
    """A large common offset must not destroy precision (catastrophic cancellation).

    Measured against the float64 result of the same float32 input: normlab's shifted
    formulation (both kernels) errs ~1e-6 here, torch's float32 kernel ~4e-3.
    """
    x = torch.randn(64, 8, 5, 5) * 0.01 + 1000.0
    exact = nn.BatchNorm2d(8, dtype=torch.float64)(x.double())
    ours_error = (bn_class(8)(x).double() - exact).abs().max().item()
    torch_error = (nn.BatchNorm2d(8)(x).double() - exact).abs().max().item()
    assert ours_error < 1e-3
    assert ours_error <= torch_error


def test_eval_output_does_not_depend_on_the_rest_of_the_batch():
    bn = nl.BatchNorm(3)
    for _ in range(10):
        bn(torch.randn(16, 3) * 2 + 1)
    bn.eval()
    x = torch.randn(8, 3)
    torch.testing.assert_close(bn(x)[:1], bn(x[:1]))  # a batch of one works in eval
    bn.train()
    assert not torch.allclose(bn(x)[:2], bn(x[:2]))


# ----------------------------------------------------------------------------- variants

@pytest.mark.parametrize("shape,normalized", [((5, 7), (7,)), ((3, 4, 6), (6,)), ((2, 3, 4, 5), (3, 4, 5))])
def test_layernorm_matches_torch(shape, normalized):
    ours, ref = nl.LayerNorm(normalized, dtype=torch.float64), nn.LayerNorm(normalized, dtype=torch.float64)
    with torch.no_grad():
        for p in ("weight", "bias"):
            v = torch.randn(normalized, dtype=torch.float64)
            getattr(ours, p).copy_(v)
            getattr(ref, p).copy_(v)
    x, dout = torch.randn(shape, dtype=torch.float64) * 3, torch.randn(shape, dtype=torch.float64)
    (oa, ga), (ob, gb) = run_step(ours, x, dout), run_step(ref, x, dout)
    torch.testing.assert_close(oa, ob, rtol=0, atol=1e-9)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert list(ours.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("shape,groups", [((4, 6), 3), ((3, 6, 5), 2), ((2, 8, 4, 4), 4), ((2, 4, 2, 3, 3), 1), ((2, 4, 3, 3), 4)])
def test_groupnorm_matches_torch(shape, groups):
    c = shape[1]
    ours, ref = nl.GroupNorm(groups, c, dtype=torch.float64), nn.GroupNorm(groups, c, dtype=torch.float64)
    with torch.no_grad():
        for p in ("weight", "bias"):
            v = torch.randn(c, dtype=torch.float64)
            getattr(ours, p).copy_(v)
            getattr(ref, p).copy_(v)
    x, dout = torch.randn(shape, dtype=torch.float64) + 2, torch.randn(shape, dtype=torch.float64)
    (oa, ga), (ob, gb) = run_step(ours, x, dout), run_step(ref, x, dout)
    torch.testing.assert_close(oa, ob, rtol=0, atol=1e-9)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_dropout_matches_torch_under_the_same_seed(p):
    x = torch.randn(50, 40)
    ours, ref = nl.Dropout(p), nn.Dropout(p)
    torch.manual_seed(3)
    a = ours(x)
    torch.manual_seed(3)
    b = ref(x)
    torch.testing.assert_close(a, b)
    ours.eval(), ref.eval()
    assert torch.equal(ours(x), x)


# ----------------------------------------------------------------------------- folding

@pytest.mark.parametrize("make_layer,shape", [
    (lambda: nn.Linear(6, 5), (10, 6)),
    (lambda: nn.Linear(6, 5, bias=False), (10, 6)),
    (lambda: nn.Conv1d(3, 5, 3, padding=1), (4, 3, 9)),
    (lambda: nn.Conv2d(3, 5, 3, stride=2, bias=False), (4, 3, 9, 9)),
    (lambda: nn.Conv3d(2, 5, 2), (2, 2, 4, 4, 4)),
])
@pytest.mark.parametrize("bn_class", [nl.BatchNorm, "torch"])
def test_fold_batchnorm_equals_layer_then_bn_in_eval(make_layer, shape, bn_class):
    layer = make_layer()
    bn = nl.BatchNorm(5) if bn_class is nl.BatchNorm else TORCH_BN[len(shape)](5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
    for _ in range(5):
        bn(layer(torch.randn(shape) * 2 + 1))  # train: accumulate running statistics
    bn.eval()
    folded = fold_and_check = nl.fold_batchnorm(layer, bn)
    x = torch.randn(shape) * 2 + 1
    with torch.no_grad():
        torch.testing.assert_close(fold_and_check(x), bn(layer(x)), rtol=0, atol=1e-5)
    assert isinstance(folded, type(layer))


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,message", [
    (lambda: nl.BatchNorm(3)(torch.randn(3)), r"expected 2D to 5D input .*got 1D"),
    (lambda: nl.BatchNorm(3)(torch.randn(2, 3, 1, 1, 1, 1)), r"got 6D"),
    (lambda: nl.BatchNorm(3)(torch.randn(4, 5)), "expected input with 3 channels"),
    (lambda: nl.BatchNorm(3)(torch.randn(1, 3)), "Expected more than 1 value per channel when training"),
    (lambda: nl.BatchNorm(3)(torch.ones(4, 3, dtype=torch.long)), "floating-point"),
    (lambda: nl.Dropout(1.0), r"\[0, 1\)"),
    (lambda: nl.Dropout(-0.5), r"\[0, 1\)"),
    (lambda: nl.GroupNorm(4, 6), "divisible by num_groups"),
    (lambda: nl.GroupNorm(2, 6)(torch.randn(2, 4, 3)), "expected input with 6 channels"),
    (lambda: nl.LayerNorm(5)(torch.randn(3, 4)), r"expected input with shape \[\*, 5\]"),
    (lambda: nl.fold_batchnorm(nn.Linear(3, 4), nl.BatchNorm(5)), "5 features but the layer has 4"),
    (lambda: nl.fold_batchnorm(nn.Linear(3, 4), nl.BatchNorm(4, track_running_stats=False)), "no running statistics"),
    (lambda: nl.fold_batchnorm(nn.ReLU(), nl.BatchNorm(4)), "expected an nn.Linear"),
])
def test_bad_input_raises_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_batch_of_one_in_eval_mode_is_fine():
    bn = nl.BatchNorm(3).eval()
    assert bn(torch.randn(1, 3)).shape == (1, 3)


def test_fold_sequential_folds_every_layer_bn_pair_and_keeps_the_rest():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 5 * 5, 6), nl.BatchNorm(6), nn.ReLU(), nn.Linear(6, 3))
    for _ in range(3):
        model(torch.randn(8, 1, 5, 5))
    model.eval()
    folded = nl.fold_sequential(model)
    assert [type(m) for m in folded] == [nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    x = torch.randn(4, 1, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=0, atol=1e-5)
