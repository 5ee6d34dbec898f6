r"""`TunedBatchNorm`: `normlab.nn.BatchNorm` with a training kernel tuned for speed.

Same module (it subclasses `normlab.nn.BatchNorm`: parameters, buffers, state_dict,
eval path and checks), same results (tests/test_nn.py checks values and gradients
against the readable one), and a different ``autograd.Function`` for the training
step: fewer passes over memory and one allocation the size of x per direction.
`benchmarks/bn_kernels.py` measures it. Read `normlab.nn.BatchNorm` to learn batch
norm; read this to see what speed costs in clarity (docs/DESIGN.md explains why).
"""

from __future__ import annotations

import torch

from normlab.nn import BatchNorm

__all__ = ["TunedBatchNorm"]


class _TunedBatchNormTraining(torch.autograd.Function):
    r"""Training-mode batch norm, closed-form backward, tuned for memory traffic.

    Forward, per channel over the m = N * (spatial size) values:
    :math:`y = \gamma (x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta`. Backward:
    :math:`dx = \frac{\gamma}{m\sqrt{\sigma^2+\epsilon}}\,(m\,dy - \sum dy - \hat x \sum dy\,\hat x)`.

    Both work on d = x - s, with s one sample's value per channel: d has the
    magnitude of the spread, not of the mean, so float32 keeps its precision when
    |mean| >> std. Speed comes from memory traffic: each pass writes d into the
    buffer it returns (y, dx) and finishes it in place, so forward and backward
    allocate one tensor the size of x each (a fresh one can cost page faults), and
    only x is saved for the backward.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, running_mean, running_var, factor):
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)
        m = x3.shape[0] * x3.shape[2]
        shift = x3[0, :, 0].view(1, c, 1)
        out = torch.sub(x3, shift)  # d; becomes y in place below
        mean_d = _channel_sum(out) / m
        sum_sq = _channel_sum_of_squares(out, x3, shift)
        var = (sum_sq / m - mean_d * mean_d).clamp_min(0)
        inv_std = torch.rsqrt(var + eps)
        scale = inv_std if weight is None else weight * inv_std
        offset = -mean_d * scale if bias is None else bias - mean_d * scale
        torch.addcmul(offset.view(1, c, 1), out, scale.view(1, c, 1), out=out)
        if running_mean is not None:
            with torch.no_grad():
                running_mean.lerp_(mean_d + shift.view(c), factor)
                running_var.lerp_(var * (m / (m - 1)), factor)
        ctx.save_for_backward(x, weight, mean_d, inv_std)
        ctx.has_bias = bias is not None
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, dout):
        x, weight, mean_d, inv_std = ctx.saved_tensors
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)
        dout3 = dout.reshape(x3.shape)
        m = x3.shape[0] * x3.shape[2]
        shift = x3[0, :, 0].view(1, c, 1)
        dx = torch.sub(x3, shift)  # d; becomes dx in place below
        # The two per-channel sums: sum(dy) and sum(dy * xhat) = inv_std * sum(dy * (d - mean_d)).
        sum_dout = _channel_sum(dout3)
        sum_dout_xhat = inv_std * (_channel_dot(dx, dout3, x3, shift) - mean_d * sum_dout)
        dweight = sum_dout_xhat if weight is not None else None
        dbias = sum_dout if ctx.has_bias else None
        if not ctx.needs_input_grad[0]:
            return None, dweight, dbias, None, None, None, None
        a = inv_std if weight is None else weight * inv_std
        # The closed form expanded per channel: dx = a * dy + b * d + k.
        b = -a * inv_std * sum_dout_xhat / m
        k = -a * sum_dout / m - b * mean_d
        torch.addcmul(k.view(1, c, 1), dx, b.view(1, c, 1), out=dx)
        dx.addcmul_(dout3, a.view(1, c, 1))
        return dx.view(x.shape), dweight, dbias, None, None, None, None


def _channel_sum(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of an (N, C, L) tensor (contiguous inner axis reduced first)."""
    return t.sum(dim=(0, 2)) if t.shape[2] == 1 else t.sum(2).sum(0)


def _channel_sum_of_squares(d: torch.Tensor, x3: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of d * d over axes 0 and 2 of an (N, C, L) tensor, d = x3 - shift."""
    if d.shape[2] > 1:  # a norm along the contiguous axis needs no temporary
        return torch.linalg.vector_norm(d, dim=2).square().sum(0)
    return _channel_dot(d, d, x3, shift)  # a norm along the strided axis 0 is slow


def _channel_dot(d: torch.Tensor, other: torch.Tensor, x3: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of d * other over axes 0 and 2 of (N, C, L) tensors, d = x3 - shift.

    d's own memory is the scratch space, and d is written back afterwards: two passes
    over memory already mapped cost less than a temporary the size of x, which glibc
    often maps fresh from the OS (page faults) and returns on free."""
    total = _channel_sum(d.mul_(other))
    torch.sub(x3, shift, out=d)
    return total


class TunedBatchNorm(BatchNorm):
    """`normlab.nn.BatchNorm` (same arguments, parameters, buffers and eval path) whose
    training step runs `_TunedBatchNormTraining`."""

    _training_kernel = _TunedBatchNormTraining
