r"""PyTorch normalization modules written from scratch.

They match ``torch.nn.BatchNorm1d/2d/3d``, ``LayerNorm``, ``GroupNorm`` and ``Dropout``
exactly (outputs, gradients, running statistics, ``state_dict`` keys) without calling
torch's own ``batch_norm`` / ``layer_norm`` / ``group_norm`` kernels.
BatchNorm is written to be read: each step of the forward on its own line, and the
closed-form backward of `normlab.functional` beside it in an ``autograd.Function``.
`normlab.nn_tuned.TunedBatchNorm` is the same layer with a kernel tuned for speed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from normlab import _checks

__all__ = ["BatchNorm", "LayerNorm", "GroupNorm", "Dropout", "fold_batchnorm", "fold_sequential"]


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """View a (C,) tensor as (1, C, 1, ...) to broadcast against an ndim-D input."""
    return t.view((1, -1) + (1,) * (ndim - 2))


class _BatchNormTraining(torch.autograd.Function):
    r"""Training-mode batch norm, per channel over the m values of each channel.

    Forward, one step a line: :math:`\mu = \mathrm{mean}(x)`, :math:`c = x - \mu`,
    :math:`\sigma^2 = \mathrm{mean}(c^2)`, :math:`\hat x = c/\sqrt{\sigma^2+\epsilon}`,
    :math:`y = \gamma\hat x + \beta`. Backward, the closed form:
    :math:`d\beta = \sum dy`, :math:`d\gamma = \sum dy\,\hat x`,
    :math:`dx = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}\,(dy - \mathrm{mean}(dy) - \hat x\,\mathrm{mean}(dy\,\hat x))`.
    The statistics are taken of x - s, s one sample of each channel (same c and σ², and
    d = x - s is as small as the spread), so float32 keeps its digits when |mean| >> std.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, running_mean, running_var, momentum):
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)                 # (N, C, L): statistics over axes 0 and 2
        m = x3.shape[0] * x3.shape[2]            # values per channel
        shift = x3[:1, :, :1]                    # s: one sample of each channel
        d = x3 - shift
        mean_d = d.mean(dim=(0, 2), keepdim=True)            # mean(x) - s
        centred = d - mean_d                                  # c = x - mean(x)
        var = (centred * centred).mean(dim=(0, 2), keepdim=True)  # σ², biased
        inv_std = torch.rsqrt(var + eps)                      # 1 / sqrt(σ² + ε)
        xhat = centred * inv_std
        gamma = 1.0 if weight is None else _per_channel(weight, 3)
        beta = 0.0 if bias is None else _per_channel(bias, 3)
        y = gamma * xhat + beta
        if running_mean is not None:  # bookkeeping: momentum-weighted, unbiased variance
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * (mean_d + shift).view(c))
                running_var.mul_(1 - momentum).add_(momentum * var.view(c) * (m / (m - 1)))
        ctx.save_for_backward(xhat, inv_std, weight)
        ctx.x_shape, ctx.has_bias = x.shape, bias is not None
        return y.view(x.shape)

    @staticmethod
    @once_differentiable  # the saved x̂ carries no graph: no second derivative
    def backward(ctx, dy):
        xhat, inv_std, weight = ctx.saved_tensors
        dy = dy.reshape(xhat.shape)
        m = xhat.shape[0] * xhat.shape[2]
        dbeta = dy.sum(dim=(0, 2))              # ∂y/∂β = 1
        dgamma = (dy * xhat).sum(dim=(0, 2))    # ∂y/∂γ = x̂
        gamma = 1.0 if weight is None else _per_channel(weight, 3)
        # dx = γ/σ · (dy - mean(dy) - x̂ · mean(dy x̂)), reusing dβ = Σ dy and dγ = Σ dy x̂.
        dx = gamma * inv_std * (dy - _per_channel(dbeta, 3) / m - xhat * _per_channel(dgamma, 3) / m)
        return (dx.view(ctx.x_shape), dgamma if weight is not None else None,
                dbeta if ctx.has_bias else None, None, None, None, None)


class BatchNorm(nn.Module):
    """Batch normalization for (N, C) up to (N, C, D, H, W) input, like torch.nn.BatchNormNd.

    Training: normalize with the mini-batch statistics over every axis but 1 and update
    running_mean <- (1 - momentum) * running_mean + momentum * batch_mean, and
    running_var likewise with the *unbiased* batch variance (m / (m - 1) times the
    biased one used for normalizing). ``momentum=None`` gives the cumulative average
    (factor 1 / num_batches_tracked). Eval: normalize with the running statistics.
    """

    _training_kernel = _BatchNormTraining  # an autograd.Function; TunedBatchNorm swaps it

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def forward(self, x):
        _checks.check_floating(x)
        _checks.check_rank(x, 2, 5, layout="(N, C, *spatial)")
        _checks.check_channels(x, self.num_features, "num_features")
        use_batch_stats = self.training or self.running_mean is None
        if not use_batch_stats:
            scale = torch.rsqrt(self.running_var + self.eps)
            if self.weight is not None:
                scale = self.weight * scale
            shift = -self.running_mean * scale
            if self.bias is not None:
                shift = shift + self.bias
            return x * _per_channel(scale, x.ndim) + _per_channel(shift, x.ndim)
        _checks.check_values_per_channel(x)
        factor, running_mean, running_var = 0.0, None, None
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            running_mean, running_var = self.running_mean, self.running_var
        return self._training_kernel.apply(x, self.weight, self.bias, self.eps,
                                           running_mean, running_var, factor)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


def _normalize(x: torch.Tensor, dims, eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over ``dims`` (biased variance), by autograd ops."""
    mean = x.mean(dim=dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dim=dims, keepdim=True)
    return centered * torch.rsqrt(var + eps)


class LayerNorm(nn.Module):
    """Layer normalization over the last ``len(normalized_shape)`` axes of each sample,
    with elementwise affine parameters of shape ``normalized_shape``, like torch.nn.LayerNorm."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(self.normalized_shape, **factory)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape, **factory)) if elementwise_affine and bias else None

    def forward(self, x):
        _checks.check_floating(x)
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(
                f"expected input with shape [*, {', '.join(map(str, self.normalized_shape))}], "
                f"but got input of size {list(x.shape)}"
            )
        out = _normalize(x, tuple(range(x.ndim - k, x.ndim)), self.eps)
        if self.weight is not None:
            out = out * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(nn.Module):
    """Group normalization, like torch.nn.GroupNorm: the C channels split into
    ``num_groups`` groups; each (sample, group) is normalized over its channels and
    spatial positions; per-channel affine. num_groups = 1 is LayerNorm over (C, H, W),
    num_groups = C is InstanceNorm."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        _checks.check_groups(num_channels, num_groups)
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(num_channels, **factory)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels, **factory)) if affine else None

    def forward(self, x):
        _checks.check_floating(x)
        _checks.check_rank(x, 2, layout="(N, C, *spatial)")
        _checks.check_channels(x, self.num_channels, "num_channels")
        n = x.shape[0]
        grouped = x.reshape(n, self.num_groups, -1)
        out = _normalize(grouped, (2,), self.eps).view(x.shape)
        if self.affine:
            out = out * _per_channel(self.weight, x.ndim) + _per_channel(self.bias, x.ndim)
        return out

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class Dropout(nn.Module):
    """Inverted dropout, like torch.nn.Dropout: in training zero each unit with
    probability p and scale the kept ones by 1 / (1 - p); the identity in eval.

    Draws its mask as torch does (``bernoulli_(1 - p)`` on a tensor like the input),
    so under the same seed it gives torch's exact output.
    """

    def __init__(self, p=0.5):
        super().__init__()
        _checks.check_dropout_p(p)
        self.p = p

    def forward(self, x):
        _checks.check_floating(x)
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self):
        return f"p={self.p}"


_FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@torch.no_grad()
def fold_batchnorm(layer: nn.Module, bn: nn.Module) -> nn.Module:
    r"""Fold an eval-mode BatchNorm into the Linear/Conv layer before it.

    With :math:`s = \gamma/\sqrt{\text{running\_var}+\epsilon}`:
    :math:`W' = s\,W` (per output channel) and :math:`b' = s\,(b - \text{running\_mean}) + \beta`,
    so ``folded(x) == bn(layer(x))`` in eval mode with one layer instead of two.
    Works with `BatchNorm` and ``torch.nn.BatchNorm1d/2d/3d``.
    """
    if not isinstance(layer, _FOLDABLE):
        raise ValueError(f"expected an nn.Linear or nn.Conv1d/2d/3d layer, got {type(layer).__name__}")
    if getattr(bn, "running_mean", None) is None:
        raise ValueError("the BatchNorm has no running statistics (track_running_stats=False): "
                         "its eval output depends on the batch and cannot be folded")
    out_features = layer.weight.shape[0]
    if bn.running_mean.shape[0] != out_features:
        raise ValueError(f"the BatchNorm has {bn.running_mean.shape[0]} features but the layer "
                         f"has {out_features} output channels")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale
    if bn.bias is not None:
        new_bias = new_bias + bn.bias
    folded = _copy_layer_with_bias(layer)
    folded.weight.copy_(layer.weight * scale.view((-1,) + (1,) * (layer.weight.ndim - 1)))
    folded.bias.copy_(new_bias)
    return folded


_BATCHNORMS = (BatchNorm, nn.modules.batchnorm._BatchNorm)


def fold_sequential(model: nn.Sequential) -> nn.Sequential:
    """A copy of an nn.Sequential for inference with every (Linear/Conv, BatchNorm) pair
    folded into one layer by `fold_batchnorm`; other modules are kept as they are."""
    layers, modules, i = [], list(model), 0
    while i < len(modules):
        if (i + 1 < len(modules) and isinstance(modules[i], _FOLDABLE)
                and isinstance(modules[i + 1], _BATCHNORMS)):
            layers.append(fold_batchnorm(modules[i], modules[i + 1]))
            i += 2
        else:
            layers.append(modules[i])
            i += 1
    return nn.Sequential(*layers).eval()


def _copy_layer_with_bias(layer):
    factory = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features, bias=True, **factory)
    return type(layer)(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                       padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                       bias=True, padding_mode=layer.padding_mode, **factory)

