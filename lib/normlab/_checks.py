"""Input checks shared by the NumPy (`functional`) and PyTorch (`nn`) layers.

Each check raises a `ValueError` that says what was expected and what was given,
using torch's wording where torch has one. They work on anything with `.ndim`,
`.shape` and `.dtype` (NumPy arrays and torch tensors alike).
"""

from __future__ import annotations

import math


def _is_floating(x) -> bool:
    dtype = x.dtype
    if hasattr(dtype, "is_floating_point"):  # torch.dtype
        return dtype.is_floating_point
    return getattr(dtype, "kind", "") == "f"  # numpy dtype


def check_floating(x, what: str = "input") -> None:
    """Refuse integer or boolean input: normalizing it would silently truncate."""
    if not _is_floating(x):
        raise ValueError(
            f"expected a floating-point {what}, got dtype {x.dtype}; "
            "convert it first, e.g. x.astype(np.float64) or x.float()"
        )


def check_rank(x, min_ndim: int, max_ndim: int | None = None, layout: str = "") -> None:
    """Torch's wording: 'expected 2D or 3D input (got 1D input)'."""
    max_ndim = max_ndim if max_ndim is not None else x.ndim
    if not (min_ndim <= x.ndim <= max_ndim):
        if min_ndim == max_ndim:
            want = f"{min_ndim}D"
        elif max_ndim == min_ndim + 1:
            want = f"{min_ndim}D or {max_ndim}D"
        else:
            want = f"{min_ndim}D to {max_ndim}D"
        hint = f" laid out as {layout}" if layout else ""
        raise ValueError(f"expected {want} input{hint} (got {x.ndim}D input of shape {tuple(x.shape)})")


def check_channels(x, num_features: int, what: str = "gamma/beta") -> None:
    """The channel axis (axis 1) must have one entry per parameter."""
    if x.shape[1] != num_features:
        raise ValueError(
            f"expected input with {num_features} channels on axis 1 (the size of {what}), "
            f"got input of shape {tuple(x.shape)} with {x.shape[1]} channels"
        )


def check_param_shape(param, shape: tuple, name: str) -> None:
    if param is not None and tuple(param.shape) != tuple(shape):
        raise ValueError(f"expected {name} of shape {tuple(shape)}, got shape {tuple(param.shape)}")


def check_values_per_channel(x) -> None:
    """A training batch needs more than one value per channel, or its variance is 0.

    Torch's wording: 'Expected more than 1 value per channel when training'.
    """
    values = math.prod(x.shape) // x.shape[1]
    if values <= 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, "
            f"got input of shape {tuple(x.shape)}; use a batch of 2 or more, or eval mode"
        )


def check_dropout_p(p: float) -> None:
    if not (0.0 <= p < 1.0):
        raise ValueError(
            f"dropout probability has to be in [0, 1) (the keep probability 1 - p "
            f"divides the kept units), but got {p}"
        )


def check_groups(num_channels: int, num_groups: int) -> None:
    if num_groups <= 0 or num_channels % num_groups != 0:
        raise ValueError(
            f"num_channels must be divisible by num_groups: got {num_channels} channels "
            f"and {num_groups} groups"
        )
