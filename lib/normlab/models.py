r"""Model builders for the experiments: an MLP and a small CNN, with a choice of normalization.

Both are plain ``nn.Sequential`` stacks of ``torch.nn`` layers (fast; easy to print and
inspect). Every hidden layer is

* ``norm_position="before"``: Linear/Conv -> norm -> activation (BN's paper, the thesis)
* ``norm_position="after"``:  Linear/Conv -> activation -> norm

==========  ========================  ===================================  ==========================
``norm``    MLP, on (N, D)            CNN block, on (N, C, H, W)           statistics over
==========  ========================  ===================================  ==========================
batch       ``BatchNorm1d(D)``        ``BatchNorm2d(C)``                   the batch (and H, W)
layer       ``LayerNorm(D)``          ``LayerNorm((C, H, W))``             each sample
group       ``GroupNorm(G, D)``       ``GroupNorm(G, C)``                  each sample and group
instance    refused (see `mlp`)       ``InstanceNorm2d(C, affine=True)``   each sample and channel
==========  ========================  ===================================  ==========================

**The bias becomes redundant.** A Linear/Conv directly followed by batch norm (or
instance norm) gets ``bias=False``: those norms subtract a per-channel mean, which
removes any per-channel constant b exactly, :math:`\mathrm{BN}(Wx + b) = \mathrm{BN}(Wx)`,
and their :math:`\beta` adds a learned constant back. Layer and group norm subtract a
mean *across* channels, so only :math:`b - \bar b` would cancel and the rest changes
the output: there the layer keeps its bias. (Group norm with one channel per group is
instance norm, and drops the bias too.)

Initialization (``init``) sets every Linear/Conv weight, the output layer's included,
and zeroes every bias; norm layers keep :math:`\gamma = 1, \beta = 0`:

* ``"kaiming"``: :math:`W \sim \mathcal N(0, 2/\text{fan\_in})` (He et al., for ReLU)
* ``"xavier"``: :math:`W \sim \mathcal N(0, 2/(\text{fan\_in} + \text{fan\_out}))` (Glorot, for sigmoid/tanh)
* ``"normal"``: :math:`W \sim \mathcal N(0, \text{init\_std}^2)` (the thesis' N(0, 1) condition)

with fan_in = in_features (Linear) or in_channels * 3 * 3 (conv3x3).
"""

from __future__ import annotations

import numbers

from torch import nn

from normlab import _checks

__all__ = ["mlp", "small_cnn", "count_parameters", "initialize_weights",
           "NORMS", "NORM_POSITIONS", "ACTIVATIONS", "INITS"]

NORMS = ("none", "batch", "layer", "group", "instance")
NORM_POSITIONS = ("before", "after")
ACTIVATIONS = ("relu", "prelu", "elu", "sigmoid", "tanh", "none")
INITS = ("kaiming", "xavier", "normal")


def mlp(in_features, num_classes, hidden=(128, 128), norm="none", norm_position="before",
        activation="relu", init="kaiming", init_std=1.0, dropout=0.0, num_groups=8) -> nn.Sequential:
    """Multi-layer perceptron: Flatten, then per hidden width
    ``Linear -> [norm] -> activation -> [dropout]`` (norm after the activation when
    ``norm_position="after"``), then ``Linear(hidden[-1], num_classes)`` giving logits.

    Input: (N, in_features) or anything that flattens to it, e.g. (N, 1, 8, 8) digits.
    ``hidden``: widths of the hidden layers (an int for one layer; ``()`` for none).
    ``norm="instance"`` is refused: instance norm normalizes each channel over its
    spatial positions, and a hidden vector has one value per channel, so every output
    would be the constant beta. (``torch.nn.InstanceNorm1d`` on 2-D input silently does
    something else: it reads (N, D) as one unbatched (C, L) sample.) Use ``"layer"``,
    which normalizes each sample over its features, or `small_cnn`.
    """
    hidden = _check_widths(hidden, "hidden", allow_empty=True)
    _check_positive_int(in_features, "in_features")
    _check_positive_int(num_classes, "num_classes")
    _check_choices(norm, norm_position, activation, init, init_std, dropout)
    if norm == "instance":
        raise ValueError(
            "norm='instance' is not defined for an MLP: instance norm normalizes each channel "
            "over its spatial positions, and a hidden vector has only one value per channel "
            "(every output would be the constant beta); use norm='layer' (each sample over its "
            "features) or small_cnn"
        )
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = in_features
    for i, width in enumerate(hidden):
        where = f"hidden layer {i} (width {width})"
        norm_layer = _vector_norm(norm, width, num_groups, where)
        layers.append(nn.Linear(width_in, width, bias=_needs_bias(norm_layer, norm_position, activation)))
        layers += _norm_and_activation(norm_layer, norm_position, activation, width)
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    layers.append(nn.Linear(width_in, num_classes))
    model = nn.Sequential(*layers)
    initialize_weights(model, init, init_std)
    return model


def small_cnn(in_channels, num_classes, image_size, channels=(16, 32), hidden=64, norm="none",
              norm_position="before", activation="relu", init="kaiming", init_std=1.0, dropout=0.0,
              num_groups=8) -> nn.Sequential:
    """Small CNN: per entry of ``channels`` a block
    ``Conv2d(3x3, padding 1) -> [norm] -> activation -> MaxPool2d(2)`` (norm after the
    activation when ``norm_position="after"``), then the head
    ``Flatten -> Linear(., hidden) -> [norm] -> activation -> [dropout] -> Linear(hidden, num_classes)``.

    Input: (N, in_channels, H, W) with ``image_size = H`` (square) or ``(H, W)``; each
    block halves H and W (rounding down): 8x8 -> 4x4 -> 2x2, 28x28 -> 14x14 -> 7x7.
    Block norms are in the module docstring's table; the head's hidden layer gets the
    vector version (BatchNorm1d, LayerNorm, GroupNorm), and none for ``"instance"``
    (a vector has no spatial positions). Dropout sits in the head only, after its
    hidden activation.
    """
    _check_positive_int(in_channels, "in_channels")
    _check_positive_int(num_classes, "num_classes")
    channels = _check_widths(channels, "channels", allow_empty=False)
    _check_positive_int(hidden, "hidden")
    _check_choices(norm, norm_position, activation, init, init_std, dropout)
    height, width = _check_image_size(image_size, len(channels))
    layers: list[nn.Module] = []
    channels_in = in_channels
    for i, channels_out in enumerate(channels):
        norm_layer = _image_norm(norm, channels_out, height, width, num_groups,
                                 f"conv block {i} ({channels_out} channels)")
        layers.append(nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1,
                                bias=_needs_bias(norm_layer, norm_position, activation)))
        layers += _norm_and_activation(norm_layer, norm_position, activation, channels_out)
        layers.append(nn.MaxPool2d(2))
        channels_in, height, width = channels_out, height // 2, width // 2
    layers.append(nn.Flatten())
    head_norm = None if norm == "instance" else _vector_norm(norm, hidden, num_groups, f"the head (width {hidden})")
    layers.append(nn.Linear(channels_in * height * width, hidden,
                            bias=_needs_bias(head_norm, norm_position, activation)))
    layers += _norm_and_activation(head_norm, norm_position, activation, hidden)
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, num_classes))
    model = nn.Sequential(*layers)
    initialize_weights(model, init, init_std)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (weights, biases, gamma/beta, PReLU slopes); buffers
    such as BatchNorm's running statistics are not parameters and are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


def _vector_norm(norm, width, num_groups, where):
    """The norm layer for (N, width) input, or None."""
    if norm == "none":
        return None
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    if norm == "group":
        _check_groups(num_groups, width, where)
        if width // num_groups == 1:
            raise ValueError(
                f"num_groups={num_groups} puts one feature in each group of {where}: a group "
                "of one value normalizes to 0 (the output would be the constant beta); use "
                "fewer groups"
            )
        return nn.GroupNorm(num_groups, width)
    raise AssertionError(norm)  # "instance" is handled by the callers


def _image_norm(norm, channels, height, width, num_groups, where):
    """The norm layer for (N, channels, height, width) input, or None."""
    if norm == "none":
        return None
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.LayerNorm((channels, height, width))
    if norm == "group":
        _check_groups(num_groups, channels, where)
        return nn.GroupNorm(num_groups, channels)
    return nn.InstanceNorm2d(channels, affine=True)


def _removes_channel_bias(norm_layer) -> bool:
    """True when the norm subtracts a mean per channel, so a per-channel bias before it
    cancels exactly: batch norm, instance norm, group norm with one channel per group."""
    if isinstance(norm_layer, nn.GroupNorm):
        return norm_layer.num_groups == norm_layer.num_channels
    return isinstance(norm_layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d))


def _needs_bias(norm_layer, norm_position, activation) -> bool:
    """False when the Linear/Conv is directly followed by a norm that cancels its bias."""
    follows_directly = norm_position == "before" or activation == "none"
    return not (norm_layer is not None and follows_directly and _removes_channel_bias(norm_layer))


def _norm_and_activation(norm_layer, norm_position, activation, width) -> list[nn.Module]:
    act = _activation(activation, width)
    ordered = [norm_layer, act] if norm_position == "before" else [act, norm_layer]
    return [m for m in ordered if m is not None]


def _activation(name, width):
    if name == "none":
        return None
    if name == "prelu":
        return nn.PReLU(width)  # one learned slope per feature/channel, initially 0.25
    return {"relu": nn.ReLU, "elu": nn.ELU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[name]()


def initialize_weights(model: nn.Module, init: str = "kaiming", init_std: float = 1.0) -> None:
    """Initialize every Linear and Conv2d layer of ``model`` in place: weights by ``init``
    ("kaiming": He normal, fan_in, for ReLU; "xavier": Glorot normal; "normal":
    N(0, init_std²)), biases to zero. `mlp` and `small_cnn` call it."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(map(repr, INITS))}")
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            if init == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_normal_(module.weight)
            else:
                nn.init.normal_(module.weight, mean=0.0, std=init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------


def _check_choices(norm, norm_position, activation, init, init_std, dropout) -> None:
    for name, value, allowed in (("norm", norm, NORMS), ("norm_position", norm_position, NORM_POSITIONS),
                                 ("activation", activation, ACTIVATIONS), ("init", init, INITS)):
        if value not in allowed:
            raise ValueError(f"unknown {name}={value!r}; choose one of {', '.join(map(repr, allowed))}")
    if init == "normal" and not (isinstance(init_std, numbers.Real) and init_std > 0):
        raise ValueError(f"init_std is the standard deviation of init='normal' and must be > 0, got {init_std!r}")
    if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool):
        raise ValueError(f"dropout is a probability in [0, 1), got {dropout!r}")
    _checks.check_dropout_p(dropout)


def _check_groups(num_groups, width, where) -> None:
    if not isinstance(num_groups, numbers.Integral) or num_groups <= 0 or width % num_groups:
        raise ValueError(f"num_groups={num_groups!r} must be a positive divisor of the width of "
                         f"every normalized layer, but does not divide {where}")


def _check_positive_int(value, name) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_widths(widths, name, allow_empty) -> tuple:
    if isinstance(widths, numbers.Integral):
        widths = (widths,)
    widths = tuple(widths)
    if not widths and not allow_empty:
        raise ValueError(f"{name} must list at least one width, got ()")
    for w in widths:
        _check_positive_int(w, f"every entry of {name}")
    return widths


def _check_image_size(image_size, num_blocks) -> tuple:
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    for s in size:
        _check_positive_int(s, "image_size")
    smallest = min(size)
    if smallest < 2 ** num_blocks:
        raise ValueError(f"image_size {size[0]}x{size[1]} is too small for {num_blocks} conv blocks: "
                         f"each halves the image, so it needs at least {2 ** num_blocks} pixels a side")
    return size
