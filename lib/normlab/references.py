"""The references the assignments' tests compare students' answers against.

Every test cell that checks against PyTorch (or the library) imports its reference from
here (``from normlab.references import torch_batchnorm``), so a reference is written once
and is itself tested (tests/test_references.py, against the NumPy layers of
`normlab.functional` and finite differences). Each function is plain and public (listed
in ``__all__``), takes and returns NumPy arrays (float64 in, float64 out), and wraps one
torch function:

=============================  =====================================================
reference                      wraps
=============================  =====================================================
`torch_batchnorm`              ``torch.nn.functional.batch_norm``, training mode
`torch_batchnorm_gradients`    the same, ``.backward(dout)``: (dx, dgamma, dbeta)
`torch_running_stats`          the buffers of ``torch.nn.BatchNorm1d`` / ``BatchNorm2d``
`probe_losses_and_grad_changes`  ``normlab.experiments.landscape``'s smoothness probe
=============================  =====================================================

Like `normlab.grading_helpers`, nothing here prints or warns (nbgrader scores a test cell
that writes to stderr as 0).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "torch_batchnorm",
    "torch_batchnorm_gradients",
    "torch_running_stats",
    "probe_losses_and_grad_changes",
]


def torch_batchnorm(x, gamma, beta, eps):
    """Batch norm's training-mode output for x of shape (N, D) or (N, C, *spatial):
    ``torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)``."""
    return F.batch_norm(torch.from_numpy(np.asarray(x)), None, None, torch.from_numpy(np.asarray(gamma)),
                        torch.from_numpy(np.asarray(beta)), training=True, eps=eps).numpy()


def torch_batchnorm_gradients(x, gamma, beta, eps, dout):
    """``(dx, dgamma, dbeta)`` of batch norm in training mode for the upstream gradient
    ``dout``: autograd through ``torch.nn.functional.batch_norm``, ``.backward(dout)``."""
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps).backward(torch.from_numpy(np.asarray(dout)))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


def torch_running_stats(batches, momentum=0.1):
    """``(running_mean, running_var, num_batches_tracked)`` of a fresh float64
    ``torch.nn.BatchNorm1d`` (batches of shape (N, C) or (N, C, L)) or ``BatchNorm2d``
    ((N, C, H, W)) after one training-mode forward pass on each batch in turn;
    ``momentum=None`` is the cumulative average."""
    batches = [np.asarray(b, dtype=np.float64) for b in batches]
    layer = (torch.nn.BatchNorm2d if batches[0].ndim == 4 else torch.nn.BatchNorm1d)
    bn = layer(batches[0].shape[1], momentum=momentum).double()
    with torch.no_grad():
        for batch in batches:
            bn(torch.from_numpy(batch))
    return bn.running_mean.numpy().copy(), bn.running_var.numpy().copy(), int(bn.num_batches_tracked)


def probe_losses_and_grad_changes(model, x, y, step_sizes, probe_seed=0):
    """The losses L(theta - eta g) and gradient changes |grad(theta - eta g) - g| for each
    eta in ``step_sizes`` (two arrays), on a training-mode copy of ``model``: the library's
    smoothness probe, ``normlab.experiments.landscape.probe_losses_and_grad_changes``
    (autograd and ``torch.nn.functional.cross_entropy``)."""
    from normlab.experiments import landscape  # the experiments' modules load only when probed

    return landscape.probe_losses_and_grad_changes(model, x, y, step_sizes, probe_seed)
