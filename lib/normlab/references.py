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
`bessel_batchnorm_gradients`   autograd through batch norm normalized with the unbiased variance
`bn_mlp_forward`               the BN-MLP of makemore part 4, one torch op per line (autograd-ready)
`bn_mlp_gradients`             ``loss.backward(dloss)`` through it: the gradient of every intermediate
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
    "bessel_batchnorm_gradients",
    "bn_mlp_forward",
    "bn_mlp_gradients",
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


def bessel_batchnorm_gradients(x, gamma, beta, eps, dout):
    """``(dx, dgamma, dbeta)`` of batch norm on x of shape (N, D) normalized with the
    *unbiased* (Bessel-corrected) batch variance, y = gamma (x - mean) / sqrt(var_unbiased + eps) + beta
    (the forward of makemore part 4): autograd through ``torch.Tensor.var(unbiased=True)``,
    ``.backward(dout)``."""
    xt, gt, bt = (torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in (x, gamma, beta))
    xhat = (xt - xt.mean(dim=0)) / torch.sqrt(xt.var(dim=0, unbiased=True) + eps)
    (gt * xhat + bt).backward(torch.tensor(np.asarray(dout, dtype=np.float64)))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


BN_MLP_PARAMETERS = ("W1", "b1", "bngain", "bnbias", "W2", "b2")


def bn_mlp_forward(params, x, y, eps=1e-5):
    """The batch-norm MLP of Karpathy's makemore part 4, one torch operation per line, every
    intermediate kept (``retain_grad``) so autograd gives its gradient. Returns a dict
    name -> tensor (the parameters too, as float64 leaves that require grad), with "loss":

        hprebn = x W1 + b1;  bnmeani = sum_i hprebn / n;  bndiff = hprebn - bnmeani;  bndiff2 = bndiff**2
        bnvar = sum_i bndiff2 / (n - 1)   (Bessel-corrected);  bnvar_inv = (bnvar + eps)**-0.5
        bnraw = bndiff bnvar_inv;  hpreact = bngain bnraw + bnbias;  h = tanh(hpreact);  logits = h W2 + b2
        logit_maxes = max_j logits;  norm_logits = logits - logit_maxes;  counts = exp(norm_logits)
        counts_sum = sum_j counts;  counts_sum_inv = 1 / counts_sum;  probs = counts counts_sum_inv
        logprobs = log(probs);  loss = -mean_i logprobs[i, y_i]

    params: dict with W1 (D, H), b1 (H,), bngain (H,), bnbias (H,), W2 (H, K), b2 (K,); x (n, D); y (n,) labels."""
    t = {name: torch.tensor(np.asarray(params[name], dtype=np.float64), requires_grad=True)
         for name in BN_MLP_PARAMETERS}
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n = x.shape[0]
    t["hprebn"] = x @ t["W1"] + t["b1"]
    t["bnmeani"] = t["hprebn"].sum(0, keepdim=True) / n
    t["bndiff"] = t["hprebn"] - t["bnmeani"]
    t["bndiff2"] = t["bndiff"] ** 2
    t["bnvar"] = t["bndiff2"].sum(0, keepdim=True) / (n - 1)
    t["bnvar_inv"] = (t["bnvar"] + eps) ** -0.5
    t["bnraw"] = t["bndiff"] * t["bnvar_inv"]
    t["hpreact"] = t["bngain"] * t["bnraw"] + t["bnbias"]
    t["h"] = torch.tanh(t["hpreact"])
    t["logits"] = t["h"] @ t["W2"] + t["b2"]
    t["logit_maxes"] = t["logits"].max(1, keepdim=True).values
    t["norm_logits"] = t["logits"] - t["logit_maxes"]
    t["counts"] = t["norm_logits"].exp()
    t["counts_sum"] = t["counts"].sum(1, keepdim=True)
    t["counts_sum_inv"] = t["counts_sum"] ** -1
    t["probs"] = t["counts"] * t["counts_sum_inv"]
    t["logprobs"] = t["probs"].log()
    t["loss"] = -t["logprobs"][torch.arange(n), y].mean()
    for name, value in t.items():
        if name not in BN_MLP_PARAMETERS:
            value.retain_grad()
    return t


def bn_mlp_gradients(params, x, y, eps=1e-5, dloss=1.0):
    """dict name -> gradient (NumPy, float64) of every intermediate and parameter of
    `bn_mlp_forward` (all but "loss") for the upstream gradient ``dloss`` of the loss:
    autograd, ``loss.backward(dloss)``."""
    t = bn_mlp_forward(params, x, y, eps)
    t["loss"].backward(torch.tensor(float(dloss), dtype=torch.float64))
    return {name: value.grad.numpy() for name, value in t.items() if name != "loss"}
