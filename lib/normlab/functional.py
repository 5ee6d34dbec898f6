r"""NumPy reference implementations of the normalization layers, written to be read.

Every layer has a forward function returning ``(out, cache)`` and a backward function
taking ``(dout, cache)`` and returning ``(dx, dgamma, dbeta)`` (CS231n style).
Shapes: ``x`` is ``(N, D)`` or ``(N, C, *spatial)``; axis 1 is the feature/channel axis.

All four normalizations compute, over some set of axes :math:`A` with :math:`m`
elements each,

.. math::
    \mu = \frac{1}{m}\sum_{A} x,\quad \sigma^2 = \frac{1}{m}\sum_{A}(x-\mu)^2,\quad
    \hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}},\quad y = \gamma\,\hat x + \beta

and differ only in :math:`A`:

==============  =============================================  ==================
layer           statistics over (A)                            gamma / beta shape
==============  =============================================  ==================
batch norm      every axis but 1: (N,) or (N, H, W)            (C,)
layer norm      every axis but 0: (D,) or (C, H, W)            x.shape[1:]
instance norm   the spatial axes (H, W) of each sample/channel (C,)
group norm      (C/G, H, W) of each sample and group           (C,)
==============  =============================================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normlab import _checks


@dataclass
class NormCache:
    """What a normalization's backward pass needs from its forward pass.

    ``xhat``, ``x_centered``, ``var`` and ``inv_std`` live in the *normalization
    layout* (the input itself, or for group norm the input viewed as
    ``(N, G, C/G, *spatial)``); ``axes`` are the reduced axes in that layout.
    """

    kind: str
    xhat: np.ndarray
    x_centered: np.ndarray
    var: np.ndarray
    inv_std: np.ndarray
    eps: float
    axes: tuple
    gamma: np.ndarray
    input_shape: tuple
    param_axes: tuple  # axes of the input summed to get dgamma and dbeta


@dataclass
class DropoutCache:
    mask: np.ndarray | None  # already divided by the keep probability; None in eval
    p: float
    train: bool


# --------------------------------------------------------------------------------------
# The shared core: normalize over some axes, and its two backward passes.
# --------------------------------------------------------------------------------------


def normalize_over_axes(x, axes, eps):
    """The core every normalization shares: statistics over ``axes`` (kept as size-1 axes).

    Returns ``(xhat, x_centered, var, inv_std)``: ``xhat = (x - mu) / sqrt(var + eps)``,
    ``x - mu``, the biased variance and ``1 / sqrt(var + eps)``. The public forward
    functions only choose ``axes``.
    """
    mu = x.mean(axis=axes, keepdims=True)
    x_centered = x - mu
    var = (x_centered**2).mean(axis=axes, keepdims=True)  # biased: divides by m
    inv_std = 1.0 / np.sqrt(var + eps)
    return x_centered * inv_std, x_centered, var, inv_std


def _count(shape, axes) -> int:
    return int(np.prod([shape[a] for a in axes]))


def dxhat_to_dx_staged(dxhat, cache: NormCache):
    r"""dL/dx from dL/dxhat by the chain rule through the graph ``x -> (mu, var) -> xhat``,
    one node at a time (``cache`` from a forward function; used by `batchnorm_backward`).

    .. math::
        \frac{\partial L}{\partial \sigma^2} = \sum_A \frac{\partial L}{\partial \hat x}
            (x-\mu)\cdot\left(-\tfrac12\right)(\sigma^2+\epsilon)^{-3/2}

        \frac{\partial L}{\partial \mu} = \sum_A \frac{\partial L}{\partial \hat x}
            \frac{-1}{\sqrt{\sigma^2+\epsilon}}
            + \frac{\partial L}{\partial \sigma^2}\,\frac{1}{m}\sum_A -2(x-\mu)

        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial \hat x}
            \frac{1}{\sqrt{\sigma^2+\epsilon}}
            + \frac{\partial L}{\partial \sigma^2}\,\frac{2(x-\mu)}{m}
            + \frac{\partial L}{\partial \mu}\,\frac{1}{m}
    """
    axes, xc, inv_std = cache.axes, cache.x_centered, cache.inv_std
    m = _count(xc.shape, axes)
    dvar = np.sum(dxhat * xc, axis=axes, keepdims=True) * -0.5 * inv_std**3
    dmu = np.sum(-dxhat * inv_std, axis=axes, keepdims=True) + dvar * np.mean(
        -2.0 * xc, axis=axes, keepdims=True
    )
    return dxhat * inv_std + dvar * 2.0 * xc / m + dmu / m


def dxhat_to_dx_closed_form(dxhat, cache: NormCache):
    r"""dL/dx from dL/dxhat as `dxhat_to_dx_staged`, simplified to one line (used by
    the layer, instance and group norm backward functions):

    .. math::
        \frac{\partial L}{\partial x} = \frac{1}{m\sqrt{\sigma^2+\epsilon}}
        \left(m\,\frac{\partial L}{\partial \hat x} - \sum_A \frac{\partial L}{\partial \hat x}
        - \hat x \sum_A \frac{\partial L}{\partial \hat x}\,\hat x\right)
    """
    axes, xhat = cache.axes, cache.xhat
    m = _count(xhat.shape, axes)
    return (cache.inv_std / m) * (
        m * dxhat
        - dxhat.sum(axis=axes, keepdims=True)
        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True)
    )


def _backward(dout, cache: NormCache, kind: str, dxhat_to_dx):
    _check_cache(dout, cache, kind)
    xhat = cache.xhat.reshape(cache.input_shape)
    dbeta = dout.sum(axis=cache.param_axes)
    dgamma = (dout * xhat).sum(axis=cache.param_axes)
    gamma = _broadcastable(cache.gamma, cache.input_shape, cache.param_axes)
    dxhat = (dout * gamma).reshape(cache.xhat.shape)
    dx = dxhat_to_dx(dxhat, cache).reshape(cache.input_shape)
    return dx, dgamma, dbeta


def _broadcastable(param, input_shape, param_axes):
    """Reshape a parameter so it broadcasts against the input (size 1 on param_axes)."""
    shape = [1 if a in param_axes else n for a, n in enumerate(input_shape)]
    return param.reshape(shape)


def _check_cache(dout, cache, kind: str):
    if not isinstance(cache, NormCache) or cache.kind != kind:
        got = cache.kind if isinstance(cache, NormCache) else type(cache).__name__
        raise ValueError(f"expected a cache from {kind}_forward, got a cache from {got}")
    if tuple(dout.shape) != tuple(cache.input_shape):
        raise ValueError(
            f"dout has shape {tuple(dout.shape)} but the cached forward input had shape "
            f"{tuple(cache.input_shape)}; pass the cache of this layer's own forward call"
        )


def _forward(x, gamma, beta, eps, kind, norm_shape, axes, param_axes):
    xhat, x_centered, var, inv_std = normalize_over_axes(x.reshape(norm_shape), axes, eps)
    xhat_x = xhat.reshape(x.shape)
    out = (
        _broadcastable(gamma, x.shape, param_axes) * xhat_x
        + _broadcastable(beta, x.shape, param_axes)
    )
    cache = NormCache(kind, xhat, x_centered, var, inv_std, eps, axes, gamma, x.shape, param_axes)
    return out, cache


def _all_but_channel(ndim):
    return (0,) + tuple(range(2, ndim))


def _check_channel_params(x, gamma, beta):
    _checks.check_floating(x)
    _checks.check_rank(x, 2, layout="(N, D) or (N, C, *spatial)")
    _checks.check_channels(x, len(gamma))
    _checks.check_param_shape(gamma, (x.shape[1],), "gamma")
    _checks.check_param_shape(beta, (x.shape[1],), "beta")


# --------------------------------------------------------------------------------------
# Batch normalization
# --------------------------------------------------------------------------------------


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch norm: statistics of the mini-batch, per channel.

    x: (N, D) or (N, C, *spatial); gamma, beta: (C,). Statistics over every axis but 1,
    so m = N (or N*H*W). Returns ``(out, cache)``, out of the shape of x.
    """
    _check_channel_params(x, gamma, beta)
    _checks.check_values_per_channel(x)
    axes = _all_but_channel(x.ndim)
    return _forward(x, gamma, beta, eps, "batchnorm", x.shape, axes, axes)


def batchnorm_backward(dout, cache):
    """Batch norm backward by the staged chain rule (through mu and var).

    Returns ``(dx, dgamma, dbeta)``: dbeta = sum(dout), dgamma = sum(dout * xhat)
    over every axis but 1; dx node by node as in `dxhat_to_dx_staged`.
    """
    return _backward(dout, cache, "batchnorm", dxhat_to_dx_staged)


def batchnorm_backward_fast(dout, cache):
    r"""Batch norm backward in closed form; the same result as `batchnorm_backward`.

    Since :math:`\sum dxhat = \gamma\,d\beta` and :math:`\sum dxhat\,\hat x = \gamma\,d\gamma`,
    the closed form reuses the parameter gradients:

    .. math::
        \frac{\partial L}{\partial x} = \frac{\gamma}{m\sqrt{\sigma^2+\epsilon}}
        \left(m\,\frac{\partial L}{\partial y} - d\beta - \hat x\, d\gamma\right)
    """
    _check_cache(dout, cache, "batchnorm")
    axes, xhat = cache.axes, cache.xhat
    m = _count(xhat.shape, axes)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    per_channel = (1, -1) + (1,) * (dout.ndim - 2)
    dx = m * dout
    dx -= dbeta.reshape(per_channel)
    dx -= xhat * dgamma.reshape(per_channel)
    dx *= (cache.gamma * cache.inv_std.reshape(-1) / m).reshape(per_channel)
    return dx, dgamma, dbeta


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Eval-mode batch norm: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.

    Each sample is normalized on its own with fixed statistics: no batch dependence.
    """
    _check_channel_params(x, gamma, beta)
    axes = _all_but_channel(x.ndim)
    scale = gamma / np.sqrt(running_var + eps)
    shift = beta - running_mean * scale
    return _broadcastable(scale, x.shape, axes) * x + _broadcastable(shift, x.shape, axes)


def update_running(running, batch, momentum):
    """Exponential moving average, PyTorch's convention.

    running <- (1 - momentum) * running + momentum * batch.
    (Keras writes the same update with its `momentum` = 1 - PyTorch's momentum.)
    """
    return (1.0 - momentum) * running + momentum * batch


# --------------------------------------------------------------------------------------
# Layer, instance and group normalization
# --------------------------------------------------------------------------------------


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer norm: statistics of each sample over all its features (every axis but 0).

    x: (N, D) or (N, C, *spatial); gamma, beta: x.shape[1:] (elementwise, as in
    ``torch.nn.LayerNorm(x.shape[1:])``). Works the same with a batch of one.
    """
    _checks.check_floating(x)
    _checks.check_rank(x, 2, layout="(N, D) or (N, C, *spatial)")
    _checks.check_param_shape(gamma, x.shape[1:], "gamma")
    _checks.check_param_shape(beta, x.shape[1:], "beta")
    axes = tuple(range(1, x.ndim))
    return _forward(x, gamma, beta, eps, "layernorm", x.shape, axes, (0,))


def layernorm_backward(dout, cache):
    """Layer norm backward in closed form; returns ``(dx, dgamma, dbeta)``."""
    return _backward(dout, cache, "layernorm", dxhat_to_dx_closed_form)


def instancenorm_forward(x, gamma, beta, eps=1e-5):
    """Instance norm: statistics of each (sample, channel) over the spatial axes.

    x: (N, C, *spatial) with at least one spatial axis; gamma, beta: (C,).
    """
    _check_channel_params(x, gamma, beta)
    _checks.check_rank(x, 3, layout="(N, C, *spatial)")
    _checks.check_values_per_channel(x[:1])  # m = H*W must exceed 1
    axes = tuple(range(2, x.ndim))
    return _forward(x, gamma, beta, eps, "instancenorm", x.shape, axes, _all_but_channel(x.ndim))


def instancenorm_backward(dout, cache):
    """Instance norm backward in closed form; returns ``(dx, dgamma, dbeta)``."""
    return _backward(dout, cache, "instancenorm", dxhat_to_dx_closed_form)


def groupnorm_forward(x, gamma, beta, num_groups, eps=1e-5):
    """Group norm: split the C channels into G groups; statistics of each
    (sample, group) over its C/G channels and the spatial axes.

    x: (N, C, *spatial) or (N, C); gamma, beta: (C,). G = 1 is layer norm over
    (C, H, W) with per-channel affine; G = C is instance norm.
    """
    _check_channel_params(x, gamma, beta)
    n, c = x.shape[:2]
    _checks.check_groups(c, num_groups)
    norm_shape = (n, num_groups, c // num_groups) + tuple(x.shape[2:])
    axes = tuple(range(2, len(norm_shape)))
    return _forward(x, gamma, beta, eps, "groupnorm", norm_shape, axes, _all_but_channel(x.ndim))


def groupnorm_backward(dout, cache):
    """Group norm backward in closed form; returns ``(dx, dgamma, dbeta)``."""
    return _backward(dout, cache, "groupnorm", dxhat_to_dx_closed_form)


# --------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------


def dropout_forward(x, p, train=True, rng=None):
    """Inverted dropout: zero each unit with probability p and divide the kept ones by
    the keep probability 1 - p, so E[out] = x and eval mode is the identity.

    rng: a ``np.random.Generator`` (default: a fresh unseeded one).
    """
    _checks.check_floating(x)
    _checks.check_dropout_p(p)
    if not train or p == 0:
        return x.copy(), DropoutCache(None, p, train)
    rng = rng if rng is not None else np.random.default_rng()
    keep = 1.0 - p
    mask = (rng.random(x.shape) < keep) / keep
    return x * mask, DropoutCache(mask, p, train)


def dropout_backward(dout, cache):
    """dx = dout * mask (the same scaled mask as the forward pass)."""
    if not isinstance(cache, DropoutCache):
        raise ValueError(f"expected a cache from dropout_forward, got {type(cache).__name__}")
    if cache.mask is None:
        return dout.copy()
    if dout.shape != cache.mask.shape:
        raise ValueError(
            f"dout has shape {tuple(dout.shape)} but the dropout mask has shape "
            f"{tuple(cache.mask.shape)}"
        )
    return dout * cache.mask


def dropout_forward_not_inverted(x, p, train=True, rng=None):
    """The original (non-inverted) dropout of Srivastava et al.: in training keep each
    unit with probability q = 1 - p and do *not* rescale, out = x * mask, so
    E[out] = q x; at test time out = q x, matching that expectation.

    Compare `dropout_forward` (inverted): out = x * mask / q in
    training, E[out] = x, and the identity at test time.
    """
    _checks.check_floating(x)
    _checks.check_dropout_p(p)
    keep = 1.0 - p
    if not train:
        return x * keep
    rng = rng if rng is not None else np.random.default_rng()
    return x * (rng.random(x.shape) < keep)
