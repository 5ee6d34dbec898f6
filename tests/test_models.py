"""Tests for normlab.models: shapes, layer order, the bias rule, initialization, errors."""

import math

import pytest
import torch
from torch import nn

from normlab.models import ACTIVATIONS, NORM_POSITIONS, count_parameters, mlp, small_cnn

NORM_TYPES = {"batch": (nn.BatchNorm1d, nn.BatchNorm2d), "layer": (nn.LayerNorm,), "group": (nn.GroupNorm,),
              "instance": (nn.InstanceNorm2d,)}
ALL_NORM_TYPES = tuple(t for types in NORM_TYPES.values() for t in types)
ACTIVATION_TYPES = (nn.ReLU, nn.PReLU, nn.ELU, nn.Sigmoid, nn.Tanh)


pytestmark = pytest.mark.usefixtures("one_thread")


def _types(model):
    return [type(m) for m in model]


def _layer_norms(model):
    return [m for m in model if isinstance(m, ALL_NORM_TYPES)]


def _weighted(model):
    return [m for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]


# --------------------------------------------------------------------------------------
# Output shapes, in train and eval mode, for every combination
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group"])
def test_mlp_output_shape(norm, norm_position, activation):
    torch.manual_seed(0)
    model = mlp(64, 10, hidden=(32, 16), norm=norm, norm_position=norm_position, activation=activation,
                dropout=0.5, num_groups=4)
    x = torch.randn(5, 1, 8, 8)  # digits-shaped: the MLP flattens
    assert model(x).shape == (5, 10)
    model.eval()
    assert model(x[:1]).shape == (1, 10)  # batch of one works in eval mode
    assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group", "instance"])
def test_small_cnn_output_shape_on_digits(norm, norm_position, activation):
    torch.manual_seed(0)
    model = small_cnn(1, 10, 8, norm=norm, norm_position=norm_position, activation=activation, dropout=0.5)
    x = torch.randn(4, 1, 8, 8)
    assert model(x).shape == (4, 10)
    model.eval()
    assert model(x[:1]).shape == (1, 10)


@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group", "instance"])
@pytest.mark.parametrize("in_channels, image_size, channels", [
    (1, 28, (8, 16)), (3, 32, (8, 16, 16)), (3, (32, 24), (8, 16)), (1, 7, (8, 16))])
def test_small_cnn_other_image_sizes(norm, in_channels, image_size, channels):
    torch.manual_seed(0)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    model = small_cnn(in_channels, 100, image_size, channels=channels, hidden=32, norm=norm)
    assert model(torch.randn(3, in_channels, h, w)).shape == (3, 100)


def test_mlp_accepts_flat_input_int_hidden_and_no_hidden():
    assert mlp(20, 3, hidden=7)(torch.randn(2, 20)).shape == (2, 3)
    linear = mlp(20, 3, hidden=())
    assert _types(linear) == [nn.Flatten, nn.Linear]


# --------------------------------------------------------------------------------------
# Layer order
# --------------------------------------------------------------------------------------


def test_mlp_layer_order_before_and_after():
    before = mlp(64, 10, hidden=(32, 32), norm="batch", norm_position="before", dropout=0.5)
    assert _types(before) == [nn.Flatten,
                              nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout,
                              nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout,
                              nn.Linear]
    after = mlp(64, 10, hidden=(32,), norm="layer", norm_position="after", activation="tanh")
    assert _types(after) == [nn.Flatten, nn.Linear, nn.Tanh, nn.LayerNorm, nn.Linear]
    plain = mlp(64, 10, hidden=(32,), activation="none")
    assert _types(plain) == [nn.Flatten, nn.Linear, nn.Linear]


@pytest.mark.parametrize("norm", ["batch", "layer", "group"])
@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
@pytest.mark.parametrize("activation", ["relu", "prelu", "sigmoid"])
def test_mlp_norm_sits_where_requested(norm, norm_position, activation):
    model = mlp(64, 10, hidden=(32, 16, 8), norm=norm, norm_position=norm_position, activation=activation,
                num_groups=4)
    layers = list(model)
    linears = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    for i in linears[:-1]:
        first, second = layers[i + 1], layers[i + 2]
        norm_layer, act = (first, second) if norm_position == "before" else (second, first)
        assert isinstance(norm_layer, NORM_TYPES[norm]), _types(model)
        assert isinstance(act, ACTIVATION_TYPES), _types(model)
        width = layers[i].out_features
        if norm == "layer":
            assert norm_layer.normalized_shape == (width,)
        else:
            assert norm_layer.num_features == width if norm == "batch" else norm_layer.num_channels == width
    assert len(_layer_norms(model)) == 3  # none on the output layer


def test_small_cnn_layer_order():
    model = small_cnn(1, 10, 8, norm="batch", dropout=0.5)
    assert _types(model) == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
                             nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
                             nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear]
    after = small_cnn(1, 10, 8, norm="group", norm_position="after", activation="elu", num_groups=4)
    assert _types(after) == [nn.Conv2d, nn.ELU, nn.GroupNorm, nn.MaxPool2d,
                             nn.Conv2d, nn.ELU, nn.GroupNorm, nn.MaxPool2d,
                             nn.Flatten, nn.Linear, nn.ELU, nn.GroupNorm, nn.Linear]
    assert [g.num_groups for g in _layer_norms(after)] == [4, 4, 4]


def test_small_cnn_norm_layers_have_the_right_shapes():
    layer = small_cnn(1, 10, 8, channels=(16, 32), hidden=64, norm="layer")
    assert [m.normalized_shape for m in _layer_norms(layer)] == [(16, 8, 8), (32, 4, 4), (64,)]
    instance = small_cnn(1, 10, 8, norm="instance")
    norms = _layer_norms(instance)
    assert [type(m) for m in norms] == [nn.InstanceNorm2d, nn.InstanceNorm2d]  # the head has no instance norm
    assert all(m.affine and m.num_features == c for m, c in zip(norms, (16, 32)))
    assert _weighted(small_cnn(1, 10, 28, channels=(4, 8)))[2].in_features == 8 * 7 * 7


def test_prelu_has_one_slope_per_feature():
    prelus = [m for m in small_cnn(1, 10, 8, channels=(16, 32), hidden=64, activation="prelu")
              if isinstance(m, nn.PReLU)]
    assert [p.num_parameters for p in prelus] == [16, 32, 64]


# --------------------------------------------------------------------------------------
# The bias rule
# --------------------------------------------------------------------------------------


def test_no_bias_when_batch_norm_directly_follows():
    model = mlp(64, 10, hidden=(32, 32), norm="batch", norm_position="before")
    assert [lin.bias is None for lin in _weighted(model)] == [True, True, False]  # output layer keeps it
    after = mlp(64, 10, hidden=(32, 32), norm="batch", norm_position="after")
    assert all(lin.bias is not None for lin in _weighted(after))
    no_activation = mlp(64, 10, hidden=(32,), norm="batch", norm_position="after", activation="none")
    assert _types(no_activation) == [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.Linear]
    assert _weighted(no_activation)[0].bias is None  # the norm follows directly here too
    cnn = small_cnn(1, 10, 8, norm="batch")
    assert [m.bias is None for m in _weighted(cnn)] == [True, True, True, False]
    instance = small_cnn(1, 10, 8, norm="instance")
    assert [m.bias is None for m in _weighted(instance)] == [True, True, False, False]


def test_bias_kept_before_layer_and_group_norm():
    for model in (mlp(64, 10, hidden=(32,), norm="layer"), mlp(64, 10, hidden=(32,), norm="group"),
                  small_cnn(1, 10, 8, norm="layer"), small_cnn(1, 10, 8, norm="group")):
        assert all(m.bias is not None for m in _weighted(model)), model
    one_channel_groups = small_cnn(1, 10, 8, channels=(8, 8), hidden=16, norm="group", num_groups=8)
    assert [m.bias is None for m in _weighted(one_channel_groups)] == [True, True, False, False]


def test_the_bias_rule_matches_the_math():
    """BN (and instance norm) cancel a per-channel bias exactly; layer norm does not."""
    torch.manual_seed(0)
    x, b = torch.randn(16, 8), torch.randn(8)
    batch_norm, layer_norm = nn.BatchNorm1d(8), nn.LayerNorm(8)
    torch.testing.assert_close(batch_norm(x + b), batch_norm(x), atol=1e-5, rtol=1e-5)
    assert (layer_norm(x + b) - layer_norm(x)).abs().max() > 0.1
    x4, b4 = torch.randn(4, 8, 5, 5), torch.randn(1, 8, 1, 1)
    instance_norm = nn.InstanceNorm2d(8, affine=True)
    torch.testing.assert_close(instance_norm(x4 + b4), instance_norm(x4), atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------
# Initialization
# --------------------------------------------------------------------------------------

# Sample std of n normal draws has relative standard error 1 / sqrt(2n): 0.1% for the
# 512x1024 layer, 1% for the 4608-weight conv. We allow 3% (Linear) and 5% (conv).


def _assert_std(weight, expected, rel):
    w = weight.detach()
    assert abs(w.std().item() - expected) <= rel * expected, (w.std().item(), expected)
    assert abs(w.mean().item()) <= 5 * expected / math.sqrt(w.numel())


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_kaiming_init(norm):
    torch.manual_seed(0)
    model = mlp(512, 256, hidden=(1024,), norm=norm, init="kaiming")
    hidden_layer, output_layer = _weighted(model)
    _assert_std(hidden_layer.weight, math.sqrt(2 / 512), 0.03)
    _assert_std(output_layer.weight, math.sqrt(2 / 1024), 0.03)  # the output layer too
    assert all(not m.bias.any() for m in _weighted(model) if m.bias is not None)


def test_xavier_init():
    torch.manual_seed(0)
    hidden_layer, output_layer = _weighted(mlp(512, 256, hidden=(1024,), activation="sigmoid", init="xavier"))
    _assert_std(hidden_layer.weight, math.sqrt(2 / (512 + 1024)), 0.03)
    _assert_std(output_layer.weight, math.sqrt(2 / (1024 + 256)), 0.03)
    assert not hidden_layer.bias.any() and not output_layer.bias.any()


@pytest.mark.parametrize("init_std", [1.0, 0.05])
def test_normal_init(init_std):
    torch.manual_seed(0)
    model = mlp(512, 256, hidden=(1024,), init="normal", init_std=init_std)
    for layer in _weighted(model):
        _assert_std(layer.weight, init_std, 0.03)
        assert not layer.bias.any()


def test_cnn_init_uses_conv_fan_in():
    torch.manual_seed(0)
    conv1, conv2, fc, out = _weighted(small_cnn(3, 10, 32, channels=(16, 32), hidden=64, init="kaiming"))
    _assert_std(conv2.weight, math.sqrt(2 / (16 * 9)), 0.05)
    _assert_std(fc.weight, math.sqrt(2 / (32 * 8 * 8)), 0.05)
    conv1, conv2, fc, out = _weighted(small_cnn(3, 10, 32, channels=(16, 32), hidden=64, init="xavier"))
    _assert_std(conv2.weight, math.sqrt(2 / (16 * 9 + 32 * 9)), 0.05)
    assert not conv1.bias.any()


def test_norm_layers_start_as_identity_affine():
    model = mlp(64, 10, norm="batch", init="normal")
    for bn in _layer_norms(model):
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and not bn.bias.any()


# --------------------------------------------------------------------------------------
# Errors and count_parameters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"norm": "batchnorm"}, r"unknown norm='batchnorm'; choose one of 'none', 'batch'"),
    ({"norm_position": "middle"}, r"unknown norm_position='middle'"),
    ({"activation": "leaky"}, r"unknown activation='leaky'.*'prelu'"),
    ({"init": "he"}, r"unknown init='he'.*'kaiming', 'xavier', 'normal'"),
    ({"norm": "group", "hidden": (100,)}, r"num_groups=8 .* does not divide hidden layer 0 \(width 100\)"),
    ({"norm": "group", "num_groups": 0}, r"num_groups=0"),
    ({"norm": "group", "hidden": (8,)}, r"one feature in each group"),
    ({"norm": "instance"}, r"norm='instance' is not defined for an MLP.*norm='layer'"),
    ({"dropout": 1.0}, r"dropout probability has to be in \[0, 1\).*got 1.0"),
    ({"dropout": -0.1}, r"dropout probability has to be in \[0, 1\)"),
    ({"dropout": None}, r"dropout is a probability"),
    ({"init": "normal", "init_std": 0.0}, r"init_std .* must be > 0"),
    ({"hidden": (32, 0)}, r"every entry of hidden must be a positive integer, got 0"),
])
def test_mlp_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp(64, 10, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"norm": "group", "channels": (12, 32)}, r"does not divide conv block 0 \(12 channels\)"),
    ({"norm": "group", "hidden": 20}, r"does not divide the head \(width 20\)"),
    ({"image_size": 3}, r"image_size 3x3 is too small for 2 conv blocks.*at least 4"),
    ({"image_size": (32, 4), "channels": (8, 8, 8)}, r"too small for 3 conv blocks"),
    ({"image_size": (8, 8, 8)}, r"image_size must be an int or \(height, width\)"),
    ({"channels": ()}, r"channels must list at least one width"),
    ({"activation": "swish"}, r"unknown activation='swish'"),
    ({"dropout": 1.5}, r"dropout probability"),
])
def test_small_cnn_invalid_arguments(kwargs, match):
    args = {"image_size": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        small_cnn(1, 10, **args)


def test_count_parameters():
    assert count_parameters(mlp(4, 3, hidden=(5,))) == (4 * 5 + 5) + (5 * 3 + 3)
    # Bias dropped (-5), gamma and beta added (+10); running statistics are buffers, not counted.
    assert count_parameters(mlp(4, 3, hidden=(5,), norm="batch")) == 4 * 5 + 2 * 5 + (5 * 3 + 3)
    model = small_cnn(1, 10, 8, channels=(4,), hidden=6)
    assert count_parameters(model) == (9 * 4 + 4) + (4 * 4 * 4 * 6 + 6) + (6 * 10 + 10)
    model[0].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - 9 * 4


def test_initialize_weights_is_public_and_zeroes_biases():
    from normlab.models import initialize_weights

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 300), nn.ReLU(), nn.Linear(300, 10))
    initialize_weights(model, "normal", init_std=0.5)
    assert abs(model[0].weight.std().item() - 0.5) < 0.02
    assert all(layer.bias.abs().sum() == 0 for layer in (model[0], model[2]))
    initialize_weights(model)  # kaiming: std sqrt(2 / fan_in)
    assert abs(model[0].weight.std().item() - math.sqrt(2 / 200)) < 0.01
    with pytest.raises(ValueError, match="unknown init"):
        initialize_weights(model, "orthogonal")
