r"""The training loop of the experiments: the thesis talk's "training strategy", seeded.

Mini-batch SGD with Nesterov momentum (:math:`\mu = 0.9`) on the cross-entropy loss,
initial learning rate :math:`\eta = 0.01`, the learning rate multiplied by
``lr_factor = 0.5`` after ``lr_patience = 5`` epochs without a lower validation loss,
and early stopping after ``early_stop_patience = 20`` such epochs. Weight decay
:math:`\lambda` is torch's SGD ``weight_decay``: it adds :math:`\lambda\theta` to every
parameter's gradient, the gradient of :math:`\frac{\lambda}{2}\lVert\theta\rVert^2`.

A run whose loss stops being finite (e.g. learning rate too high without BN) is not an
error but an outcome: it is recorded and flagged ``History.diverged``.
"""

from __future__ import annotations

import math
import numbers
import random
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

__all__ = ["History", "fit", "evaluate", "set_seed"]

_PER_EPOCH = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds")


@dataclass
class History:
    """What `fit` measured, one entry per epoch in each list.

    ``train_loss``/``train_acc``: mean over the epoch's mini-batches, in train mode, as
    the weights change (not a re-evaluation at the end of the epoch).
    ``val_loss``/``val_acc``: `evaluate` on the validation set after the epoch.
    ``lr``: the learning rate used during the epoch.
    ``epoch_seconds``: wall time of the epoch's training part (validation excluded).
    ``best_val_acc`` is the highest validation accuracy and ``best_epoch`` its index in
    the lists (0-based; -1 before any epoch): ``val_acc[best_epoch] == best_val_acc``.
    ``stopped_early``: early stopping ended the run; ``diverged``: a loss was not finite.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_val_acc: float = 0.0
    best_epoch: int = -1
    stopped_early: bool = False
    diverged: bool = False

    @property
    def num_epochs(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict:
        """Plain dict for ``json.dump``; nan and ±inf losses become the strings
        ``"nan"``, ``"inf"``, ``"-inf"`` (strict JSON has no such numbers)."""
        return {key: ([_encode(v) for v in value] if isinstance(value, list) else value)
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """Inverse of `as_dict`."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown History fields {sorted(unknown)}; expected some of {sorted(known)}")
        values = {key: ([float(v) for v in value] if key in _PER_EPOCH else value) for key, value in data.items()}
        return cls(**values)


def _encode(value: float):
    return value if math.isfinite(value) else str(float(value))  # "nan", "inf", "-inf"


def set_seed(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and torch's (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` over ``loader``'s (x, y)
    batches, in eval mode and without gradients; the model's train/eval mode is
    restored afterwards. A sample whose logits contain a nan counts as misclassified."""
    was_training = model.training
    model.eval()
    try:
        device = _device_of(model)
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += _num_correct(logits, y)
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the loader yielded no samples")
    return loss_sum / count, correct / count


def fit(model: nn.Module, train_loader, val_loader, *, epochs=30, lr=0.01, momentum=0.9, nesterov=True,
        weight_decay=0.0, lr_factor=0.5, lr_patience=5, early_stop_patience=20, seed=0, progress=True,
        desc=None) -> History:
    """Train ``model`` in place with SGD and return its `History`.

    Each epoch: train mode, one pass over ``train_loader``; then `evaluate` on
    ``val_loader``. An epoch *improves* when its validation loss is strictly below every
    earlier one. After ``lr_patience`` epochs in a row without improvement the learning
    rate is multiplied by ``lr_factor`` (and the count restarts); after
    ``early_stop_patience`` such epochs in a row training stops (``stopped_early``). The
    model keeps its last weights. ``set_seed(seed)`` runs first, so shuffling and dropout
    are reproducible; seed the model's initialization yourself before building it.

    A non-finite training loss ends the epoch at once (no update with it): the epoch is
    recorded with that loss, the accuracy of the batches seen and a validation pass,
    ``diverged`` is set and training stops. A non-finite validation loss does the same.
    """
    _check_fit_args(epochs, lr, momentum, nesterov, weight_decay, lr_factor, lr_patience, early_stop_patience)
    set_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                                weight_decay=weight_decay)
    device = _device_of(model)
    history = History()
    best_val_loss = math.inf
    epochs_without_improvement = lr_epochs_without_improvement = 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, unit="epoch")
    for _ in bar:
        current_lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        train_loss, train_acc = _train_epoch(model, train_loader, optimizer, device)
        seconds = time.perf_counter() - start
        val_loss, val_acc = evaluate(model, val_loader)
        history.diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
        _record(history, train_loss, train_acc, val_loss, val_acc, current_lr, seconds)
        bar.set_postfix(loss=f"{train_loss:.4f}", acc=f"{train_acc:.3f}",
                        val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}", lr=f"{current_lr:.3g}")
        if history.diverged:
            break
        if val_loss < best_val_loss:
            best_val_loss = val_loss
            epochs_without_improvement = lr_epochs_without_improvement = 0
            continue
        epochs_without_improvement += 1
        lr_epochs_without_improvement += 1
        if epochs_without_improvement >= early_stop_patience:
            history.stopped_early = True
            break
        if lr_epochs_without_improvement >= lr_patience:
            for group in optimizer.param_groups:
                group["lr"] *= lr_factor
            lr_epochs_without_improvement = 0
    bar.close()
    return history


def _train_epoch(model, loader, optimizer, device) -> tuple[float, float]:
    """One pass in train mode; returns (mean batch loss, accuracy) over the samples seen.
    Stops at the first non-finite batch loss, without updating, and returns that loss."""
    model.train()
    loss_sum, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        batch_loss = loss.item()
        correct += _num_correct(logits, y)
        count += len(y)
        if not math.isfinite(batch_loss):
            return batch_loss, correct / count
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += batch_loss * len(y)
    if count == 0:
        raise ValueError("train_loader yielded no samples")
    return loss_sum / count, correct / count


def _record(history, train_loss, train_acc, val_loss, val_acc, lr, seconds) -> None:
    for name, value in zip(_PER_EPOCH, (train_loss, train_acc, val_loss, val_acc, lr, seconds)):
        getattr(history, name).append(float(value))
    if val_acc > history.best_val_acc or history.best_epoch < 0:
        history.best_val_acc, history.best_epoch = float(val_acc), history.num_epochs - 1


def _num_correct(logits: torch.Tensor, y: torch.Tensor) -> int:
    """Samples whose largest logit is the label's; a row holding a nan predicts nothing
    and counts as wrong (argmax would pick the nan's index)."""
    hits = (logits.argmax(dim=1) == y) & ~logits.isnan().any(dim=1)
    return int(hits.sum())


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _check_fit_args(epochs, lr, momentum, nesterov, weight_decay, lr_factor, lr_patience, early_stop_patience):
    checks = (
        (isinstance(epochs, numbers.Integral) and epochs >= 1, f"epochs must be an integer >= 1, got {epochs!r}"),
        (lr > 0, f"lr must be > 0, got {lr!r}"),
        (0 <= momentum < 1, f"momentum must be in [0, 1), got {momentum!r}"),
        (not (nesterov and momentum == 0), "nesterov=True needs momentum > 0 (Nesterov is a kind of "
                                           "momentum); pass nesterov=False for plain SGD"),
        (weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay!r}"),
        (0 < lr_factor <= 1, f"lr_factor multiplies the learning rate on a plateau and must be in "
                             f"(0, 1], got {lr_factor!r}"),
        (isinstance(lr_patience, numbers.Integral) and lr_patience >= 1,
         f"lr_patience counts epochs without improvement and must be an integer >= 1, got {lr_patience!r}"),
        (isinstance(early_stop_patience, numbers.Integral) and early_stop_patience >= 1,
         f"early_stop_patience counts epochs without improvement and must be an integer >= 1, "
         f"got {early_stop_patience!r}"),
    )
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
