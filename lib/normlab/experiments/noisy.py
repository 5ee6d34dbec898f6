r""""Noisy" batch norm (Santurkar et al., 2018, §2.1): BN followed by time-varying noise.

Santurkar et al. test whether BN works by keeping the distribution of each layer's
input stable ("reducing internal covariate shift"). They add noise right after every BN
layer so that the distributions become *unstable* on purpose: every step, every unit
gets a random non-zero mean and a non-unit variance, different at the next step. If BN
worked by stabilizing distributions, this network should train like the vanilla one;
they find it trains like BN.

`BatchNormNoise` is that noise, as a module placed after a batch-norm layer. In
training mode, at every forward call (every step) and for every unit :math:`j` (a
feature of (N, D) input, a channel of (N, C, ...) input) it draws the step's noise
distribution

.. math::
    s_j \sim U(\text{scale}), \qquad m_j \sim U(\text{shift}),

and returns, for every element :math:`x_{ij}` of that unit,

.. math::
    y_{ij} = s_j \, x_{ij} + m_j + \tau\, \xi_{ij}, \qquad \xi_{ij} \sim \mathcal N(0, 1)
    \text{ i.i.d.}

With the defaults (`NOISE`: scale ~ U(0.5, 2.5), shift ~ U(-0.5, 1.5), τ = 0.1) the
scale has mean 1.5 and the shift mean 0.5: a unit that BN brought to mean β and
standard deviation γ leaves with mean :math:`s_j\beta + m_j` and standard deviation
about :math:`s_j\gamma`, both redrawn at the next step. The paper does not give its
noise parameters in the seed material; these are ours, stated here.

In eval mode the module is the identity by default (``test_time="identity"``): at test
time the network is the plain BN network with its running statistics. Note that the
layer after it was trained on inputs scaled by :math:`s_j` (mean 1.5) and shifted by
:math:`m_j` (mean 0.5), so the identity is *not* what it saw on average; with
``test_time="mean"`` the module applies the noise's expectation instead,
:math:`y = \mathbb E[s]\, x + \mathbb E[m]` (as inverted dropout keeps each unit's
expectation the same in training and test).
"""

from __future__ import annotations

import torch
from torch import nn

from normlab.experiments.conditions import NOISE

__all__ = ["BatchNormNoise", "add_batchnorm_noise"]

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class BatchNormNoise(nn.Module):
    r"""Per-unit, per-step random scale and shift (plus small i.i.d. jitter) in training;
    identity in eval. See the module docstring for the formula.

    ``scale`` and ``shift`` are ``(low, high)`` ranges of the uniform distributions of
    :math:`s_j` and :math:`m_j`; ``jitter`` is τ. ``test_time``: ``"identity"`` or
    ``"mean"`` (eval mode applies :math:`\mathbb E[s]\,x + \mathbb E[m]`). Randomness
    comes from torch's global generator (so `normlab.train.fit`'s seed makes a run
    reproducible).
    """

    def __init__(self, num_features, scale=NOISE["scale"], shift=NOISE["shift"], jitter=NOISE["jitter"],
                 test_time="identity"):
        super().__init__()
        if test_time not in ("identity", "mean"):
            raise ValueError(f"test_time must be 'identity' or 'mean', got {test_time!r}")
        self.test_time = test_time
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        self.scale = _check_range(scale, "scale")
        self.shift = _check_range(shift, "shift")
        if not jitter >= 0:
            raise ValueError(f"jitter is a standard deviation and must be >= 0, got {jitter!r}")
        self.jitter = float(jitter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            if self.test_time == "identity":
                return x
            return sum(self.scale) / 2 * x + sum(self.shift) / 2
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected input of shape (N, {self.num_features}, ...), got {tuple(x.shape)}")
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        s = _uniform(self.scale, shape, x)
        m = _uniform(self.shift, shape, x)
        y = s * x + m
        if self.jitter:
            y = y + self.jitter * torch.randn_like(x)
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, scale=U{self.scale}, shift=U{self.shift}, jitter={self.jitter}, "
                f"test_time={self.test_time!r}")


def add_batchnorm_noise(model: nn.Sequential, **noise) -> nn.Sequential:
    """A new ``nn.Sequential`` with a `BatchNormNoise` right after every BatchNorm layer
    of ``model`` (the layers themselves are shared, not copied). ``noise`` goes to
    `BatchNormNoise` (scale, shift, jitter, test_time)."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"expected an nn.Sequential (e.g. from normlab.models), got {type(model).__name__}")
    layers = []
    for layer in model:
        layers.append(layer)
        if isinstance(layer, _BATCHNORMS):
            layers.append(BatchNormNoise(layer.num_features, **noise))
    if len(layers) == len(model):
        raise ValueError("the model has no BatchNorm layer to put noise after")
    return nn.Sequential(*layers)


def _uniform(bounds, shape, like):
    low, high = bounds
    return low + (high - low) * torch.rand(shape, dtype=like.dtype, device=like.device)


def _check_range(bounds, name):
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {bounds!r}") from None
    if not low <= high:
        raise ValueError(f"{name} must have low <= high, got {bounds!r}")
    return (low, high)
