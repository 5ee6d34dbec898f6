r"""The training loop of the experiments: the thesis talk's "training strategy", seeded.

Mini-batch SGD with Nesterov momentum (:math:`\mu = 0.9`) on the cross-entropy loss,
initial learning rate :math:`\eta = 0.01`, the learning rate multiplied by
``lr_factor = 0.5`` after ``lr_patience = 5`` epochs without a lower validation loss,
and early stopping after ``early_stop_patience = 20`` such epochs. Weight decay
:math:`\lambda` is torch's SGD ``weight_decay``: it adds :math:`\lambda\theta` to every
parameter's gradient, the gradient of :math:`\frac{\lambda}{2}\lVert\theta\rVert^2`.

A run whose loss stops being finite (e.g. learning rate too high without BN) is not an
error but an outcome: it is recorded and flagged ``History.diverged``.

**The lectures' measurements** live here too, so figure modules (`normlab.plots`) only
draw: `train_and_test` trains one fresh model with `fit` and measures it on the test
split, `compare_conditions` repeats that over seeds (mean ± sd and verdicts over the
runs: `normlab.stats`), `batch_size_sweep` trains every norm at every batch size;
`bn_input_variances` measures the variance shift between dropout and batch norm and
`recalibrate_batchnorm` / `with_recalibrated_batchnorm` recompute BN's statistics with
dropout off; `train_mode_accuracy` and `batch_mates_probabilities` show a model left in
training mode; `fit_tracking_weight_norms` records weight norms through training and
`record_layer_inputs` the statistics of every Linear layer's input;
`weight_scale_sweep` trains deep MLPs over a grid of initialization scales (CS231n's
experiment) and `fit_with_diagnostics` records per-layer activation, gradient and update
statistics at every training step (Karpathy's makemore part 3).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import random
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from normlab import models

__all__ = ["History", "fit", "evaluate", "set_seed",
           # quick experiments of the lectures (05, 06): train, test, repeat over seeds
           "RunResult", "train_and_test", "compare_conditions", "batch_size_sweep",
           # batch norm and dropout (06)
           "mlp_with_dropout_after_bn", "BatchNormInputVariance", "bn_input_variances", "recalibrate_batchnorm",
           "with_recalibrated_batchnorm",
           # measurements during or after training (01, 04, 07)
           "train_mode_accuracy", "batch_mates_probabilities", "WeightNormHistory", "fit_tracking_weight_norms",
           "LayerInputRecord", "record_layer_inputs",
           # initialization scale and training-time diagnostics (07)
           "WeightScaleSweep", "weight_scale_sweep", "TrainingDiagnostics", "fit_with_diagnostics"]

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


# --------------------------------------------------------------------------------------
# Quick experiments of lectures 05 and 06: train, test, repeat over seeds; batch norm and dropout
# --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One trained model and what it measured (accuracies in [0, 1], mean cross-entropy).

    ``train_acc`` is measured after training in eval mode on the train split (so
    ``train_acc - test_acc`` is the generalization gap); ``seconds`` is the training time;
    ``seed`` decided the initialization and the order of mini-batches.
    """

    test_acc: float
    test_loss: float
    train_acc: float
    seconds: float
    diverged: bool
    model: nn.Module
    seed: int = 0

    @property
    def gap(self) -> float:
        """Generalization gap: train accuracy minus test accuracy."""
        return self.train_acc - self.test_acc


def train_and_test(build_model: Callable[[], nn.Module], splits, *, batch_size=64, epochs=5, lr=0.01,
                   seed=0, **fit_kwargs) -> RunResult:
    """Seed torch with ``seed``, build a fresh model, train it with `normlab.fit`
    (SGD with Nesterov momentum; no progress bar) and evaluate it on the test split.

    ``splits`` is a `normlab.data.DataSplits`; ``fit_kwargs`` go to ``fit``.
    """
    torch.manual_seed(seed)
    model = build_model()
    train_loader, val_loader, test_loader = splits.loaders(batch_size, seed=seed, eval_batch_size=512)
    start = time.perf_counter()
    history = fit(model, train_loader, val_loader, epochs=epochs, lr=lr, seed=seed, progress=False,
                        **fit_kwargs)
    seconds = time.perf_counter() - start
    test_loss, test_acc = evaluate(model, test_loader)
    train_eval_loader = splits.loaders(512, shuffle=False)[0]
    _, train_acc = evaluate(model, train_eval_loader)
    return RunResult(test_acc, test_loss, train_acc, seconds, history.diverged, model, seed)


def compare_conditions(conditions: dict, splits, seeds=(0, 1, 2), **train_kwargs) -> dict:
    """Run `train_and_test` for every condition and seed.

    ``conditions`` maps a name to a zero-argument model builder, or to a pair
    ``(builder, overrides)`` whose dict ``overrides`` replaces some of ``train_kwargs``
    (e.g. a batch size) for that condition. Returns ``{name: [RunResult per seed]}``.
    """
    results = {}
    for name, condition in conditions.items():
        builder, overrides = condition if isinstance(condition, tuple) else (condition, {})
        results[name] = [train_and_test(builder, splits, seed=seed, **{**train_kwargs, **overrides})
                         for seed in seeds]
    return results


def batch_size_sweep(norms, batch_sizes, splits, *, seeds=(0,), epochs=3, base_lr=0.1, reference_batch=64,
                     hidden=(128, 128), num_groups=8) -> dict:
    r"""Train `normlab.models.mlp` with each norm at each batch size; returns
    ``{norm: {batch_size: [RunResult per seed]}}``.

    Every run sees the same number of epochs, and the learning rate follows the linear
    scaling rule used by Wu & He: :math:`\eta = \eta_0 \cdot B / B_0` with
    ``base_lr`` :math:`\eta_0` at ``reference_batch`` :math:`B_0`.
    """
    in_features = int(np.prod(splits.input_shape))
    sweep = {}
    for norm in norms:
        def build(norm=norm):
            return models.mlp(in_features, splits.num_classes, hidden=hidden, norm=norm, num_groups=num_groups)
        sweep[norm] = {
            batch: [train_and_test(build, splits, batch_size=batch, epochs=epochs,
                                   lr=base_lr * batch / reference_batch, seed=seed) for seed in seeds]
            for batch in batch_sizes
        }
    return sweep


def mlp_with_dropout_after_bn(in_features, num_classes, dropout, hidden=(128, 128), **mlp_kwargs) -> nn.Sequential:
    """`normlab.models.mlp` with batch norm in every hidden layer and one dropout layer
    only after the last BN block, right before the output layer (Li et al. 2019's
    remedy): no BN ever sees dropped-out inputs, so there is no variance shift."""
    model = models.mlp(in_features, num_classes, hidden=hidden, norm="batch", dropout=0.0, **mlp_kwargs)
    model.insert(len(model) - 1, nn.Dropout(dropout))
    return model


_BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)


@dataclass(frozen=True)
class BatchNormInputVariance:
    r"""What one BN layer's input looks like, each a mean over its features.

    ``train_var``: variance over the batch with the model in training mode (dropout on);
    ``test_var``: the same in eval mode (dropout off), i.e. what the layer meets at test
    time; ``running_var``: the variance BN stored during training and uses at test time.
    ``shift`` = running_var / test_var: 1 means no variance shift; above 1, BN divides
    test-time inputs by too large a standard deviation.
    """

    layer: int
    train_var: float
    test_var: float
    running_var: float

    @property
    def shift(self) -> float:
        return self.running_var / self.test_var


@torch.no_grad()
def bn_input_variances(model: nn.Module, x: torch.Tensor, seed=0) -> list[BatchNormInputVariance]:
    """Variance of every BatchNorm layer's input over the batch ``x``, measured once with
    the model in training mode (dropout active) and once in eval mode, next to the
    layer's ``running_var``. The model itself is not changed (training mode runs on a
    copy, so its running statistics stay as they were)."""
    batchnorms = [m for m in model.modules() if isinstance(m, _BATCHNORMS)]

    def input_variances(net, training):
        captured = []
        hooks = [bn.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
                 for bn in net.modules() if isinstance(bn, _BATCHNORMS)]
        net.train(training)
        torch.manual_seed(seed)
        net(x)
        for hook in hooks:
            hook.remove()
        return [float(_feature_variance(t).mean()) for t in captured]

    train_vars = input_variances(copy.deepcopy(model), training=True)
    was_training = model.training
    test_vars = input_variances(model, training=False)
    model.train(was_training)
    return [BatchNormInputVariance(i, tv, ev, float(bn.running_var.mean()))
            for i, (bn, tv, ev) in enumerate(zip(batchnorms, train_vars, test_vars))]


def _feature_variance(t: torch.Tensor) -> torch.Tensor:
    """Unbiased variance per feature/channel over every axis but 1 (what BN stores)."""
    dims = (0,) + tuple(range(2, t.ndim))
    return t.var(dim=dims, correction=1)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size=256) -> nn.Module:
    """Recompute every BN layer's running mean and variance on ``x`` with the rest of the
    model in eval mode (dropout off): reset the statistics, then run the batches with BN
    in training mode and ``momentum=None`` (a cumulative average). Returns the model in
    eval mode; its weights are unchanged."""
    model.eval()
    batchnorms = [m for m in model.modules() if isinstance(m, _BATCHNORMS)]
    momenta = [bn.momentum for bn in batchnorms]
    for bn in batchnorms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    for start in range(0, len(x), batch_size):
        model(x[start:start + batch_size])
    for bn, momentum in zip(batchnorms, momenta):
        bn.momentum = momentum
    return model.eval()


def with_recalibrated_batchnorm(runs, splits, batch_size=256) -> list[RunResult]:
    """Copies of ``runs`` whose models had their BN statistics recomputed on the train
    split with dropout off (`recalibrate_batchnorm`), re-evaluated on the test split and
    the train split. The weights are the trained ones; the original models are untouched."""
    recalibrated = []
    test_loader = splits.loaders(512, shuffle=False)[2]
    train_loader = splits.loaders(512, shuffle=False)[0]
    for run in runs:
        model = recalibrate_batchnorm(copy.deepcopy(run.model), splits.x_train, batch_size)
        test_loss, test_acc = evaluate(model, test_loader)
        _, train_acc = evaluate(model, train_loader)
        recalibrated.append(dataclasses.replace(run, test_acc=test_acc, test_loss=test_loss, train_acc=train_acc,
                                                model=model))
    return recalibrated


# --------------------------------------------------------------------------------------
# The forgotten eval() (lecture 04): predictions that depend on the batch
# --------------------------------------------------------------------------------------


@torch.no_grad()
def train_mode_accuracy(model, x, y, batch_size: int) -> float:
    """Accuracy of ``model`` left in *training* mode, predicting ``x`` in consecutive
    batches of ``batch_size``: each batch is normalized with its own statistics.

    Runs on a deep copy in train mode (the model's running statistics and mode are not
    touched). A last batch of a single sample cannot be normalized in training mode: it
    is joined to the batch before it.
    """
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"training-mode batch norm needs batches of at least 2, got {batch_size!r}")
    if len(x) < 2:
        raise ValueError("need at least 2 samples")
    copy_in_train_mode = copy.deepcopy(model).train()
    starts = list(range(0, len(x), batch_size))
    if len(x) - starts[-1] == 1:
        starts.pop()
    ends = starts[1:] + [len(x)]
    correct = sum(int((copy_in_train_mode(x[a:b]).argmax(dim=1) == y[a:b]).sum())
                  for a, b in zip(starts, ends))
    return correct / len(x)


@torch.no_grad()
def batch_mates_probabilities(model, sample, pool, batch_size: int = 8, trials: int = 5,
                              seed: int = 0) -> torch.Tensor:
    """Class probabilities of one ``sample`` (shape ``(1, ...)``) predicted in training
    mode inside ``trials`` batches, each filled up with ``batch_size - 1`` samples drawn
    without replacement from ``pool``. Returns a ``(trials, num_classes)`` tensor (softmax
    of the sample's logits). In eval mode every row would be the same.

    Runs on a deep copy in train mode; the model is not changed.
    """
    if len(pool) < batch_size - 1:
        raise ValueError(f"the pool has {len(pool)} samples; a batch of {batch_size} needs "
                         f"{batch_size - 1} batch mates")
    copy_in_train_mode = copy.deepcopy(model).train()
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(trials):
        mates = pool[torch.randperm(len(pool), generator=generator)[:batch_size - 1]]
        logits = copy_in_train_mode(torch.cat([sample, mates]))
        rows.append(logits[0].softmax(dim=0))
    return torch.stack(rows)


# --------------------------------------------------------------------------------------
# Weight norms through training (lecture 07)
# --------------------------------------------------------------------------------------


@dataclass
class WeightNormHistory:
    r"""What `fit_tracking_weight_norms` measured.

    ``weight_norms`` (epochs + 1, L): :math:`\lVert W_l \rVert_F` of the L hidden Linear
    layers at the start and after every epoch. ``grad_norms`` (epochs, L): mean over the
    epoch's steps of :math:`\lVert \partial L/\partial W_l \rVert_F` (loss gradient only,
    weight decay not included). ``train_loss``, ``val_acc``: per epoch; ``test_acc`` at the end.
    """

    lr: float
    weight_decay: float
    weight_norms: np.ndarray
    grad_norms: np.ndarray
    train_loss: np.ndarray
    val_acc: np.ndarray
    test_acc: float

    @property
    def effective_lr(self) -> np.ndarray:
        r""":math:`\eta / \lVert W_l \rVert^2`, shape (epochs + 1, L): the step size of a
        scale-invariant layer's *direction* (layers followed by batch norm)."""
        return self.lr / self.weight_norms ** 2


def fit_tracking_weight_norms(model, splits, *, epochs=10, lr=0.1, momentum=0.0, weight_decay=0.0,
                              batch_size=64, seed=0) -> WeightNormHistory:
    r"""Train ``model`` in place on ``splits`` (a `normlab.data.DataSplits`) with mini-batch
    SGD on the cross-entropy loss and record the norms of its hidden Linear weights.

    Update (torch's SGD): :math:`\theta \leftarrow \theta - \eta\,(\nabla_\theta L + \lambda\theta)`
    (with momentum when ``momentum > 0``), so weight decay :math:`\lambda` shrinks every
    parameter by the factor :math:`1 - \eta\lambda` per step. Shuffling is seeded with
    ``seed``; seed the model's initialization yourself. "Hidden" Linear layers are all but
    the last Linear layer of the model.
    """
    set_seed(seed)
    train_loader, val_loader, test_loader = splits.loaders(batch_size, seed=seed)
    hidden = [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

    def norms():
        return [layer.weight.detach().norm().item() for layer in hidden]

    weight_norms, grad_norms, losses, val_accs = [norms()], [], [], []
    for _ in range(epochs):
        model.train()
        grad_sums, loss_sum, steps = np.zeros(len(hidden)), 0.0, 0
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_sums += [layer.weight.grad.norm().item() for layer in hidden]
            optimizer.step()
            loss_sum, steps = loss_sum + loss.item(), steps + 1
        weight_norms.append(norms())
        grad_norms.append(grad_sums / steps)
        losses.append(loss_sum / steps)
        val_accs.append(evaluate(model, val_loader)[1])
    return WeightNormHistory(lr=lr, weight_decay=weight_decay, weight_norms=np.array(weight_norms),
                             grad_norms=np.array(grad_norms), train_loss=np.array(losses),
                             val_acc=np.array(val_accs), test_acc=evaluate(model, test_loader)[1])


# --------------------------------------------------------------------------------------
# Layer inputs drifting during training (lecture 01)
# --------------------------------------------------------------------------------------


@dataclass
class LayerInputRecord:
    """Per-unit statistics of the input of every ``nn.Linear`` during training.

    ``means[k]`` and ``stds[k]`` are arrays (len(steps), fan_in of layer k): the mean and
    (biased) standard deviation over the probe batch of each input unit of Linear layer
    k, at the training steps listed in ``steps``. Layer 0's input is the data itself.
    """

    steps: np.ndarray
    means: list
    stds: list
    losses: np.ndarray  # the mini-batch training loss of every step


def record_layer_inputs(model: nn.Module, x_train, y_train, x_probe, steps=300, lr=0.05,
                        momentum=0.9, batch_size=64, record_every=10, seed=0) -> LayerInputRecord:
    """Train ``model`` with SGD (cross-entropy, mini-batches drawn with replacement from a
    generator seeded with ``seed``) and record the input statistics of every ``nn.Linear``
    on the fixed batch ``x_probe`` every ``record_every`` steps (and before the first).

    The probe passes run without gradients in the model's training mode, so a
    batch-norm layer normalizes the probe with the probe's own statistics, as it would
    a training batch; its running statistics are restored afterwards.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to record")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    generator = torch.Generator().manual_seed(seed)
    recorded_steps, losses = [], []
    means = [[] for _ in linears]
    stds = [[] for _ in linears]

    def probe():
        buffers = {name: b.clone() for name, b in model.named_buffers()}
        captured = {}
        hooks = [layer.register_forward_hook(lambda mod, inp, out, k=k: captured.__setitem__(k, inp[0]))
                 for k, layer in enumerate(linears)]
        with torch.no_grad():
            model(x_probe)
        for hook in hooks:
            hook.remove()
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
        for k in range(len(linears)):
            inputs = captured[k].flatten(1).double()
            means[k].append(inputs.mean(0).numpy())
            stds[k].append(inputs.std(0, correction=0).numpy())

    model.train()
    for step in range(steps + 1):
        if step % record_every == 0 or step == steps:
            probe()
            recorded_steps.append(step)
        if step == steps:
            break
        index = torch.randint(0, len(x_train), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(x_train[index]), y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return LayerInputRecord(np.array(recorded_steps), [np.stack(m) for m in means],
                            [np.stack(s) for s in stds], np.array(losses))



# --------------------------------------------------------------------------------------
# The weight-scale sweep and training-time diagnostics (lecture 07)
# --------------------------------------------------------------------------------------


@dataclass
class WeightScaleSweep:
    """What `weight_scale_sweep` measured. ``best_val_acc[norm]`` and
    ``final_train_loss[norm]`` are arrays of shape (len(scales), len(seeds)): the highest
    validation accuracy after any epoch (eval mode), and the mean mini-batch loss of the
    last epoch (nan where the loss stopped being finite)."""

    scales: np.ndarray
    seeds: tuple
    norms: tuple
    best_val_acc: dict
    final_train_loss: dict
    hidden: tuple
    epochs: int
    lr: float
    batch_size: int


def weight_scale_sweep(splits, scales, *, norms=("none", "batch"), seeds=(0, 1, 2), hidden=(50,) * 7,
                       activation="relu", epochs=5, lr=1e-3, batch_size=50) -> WeightScaleSweep:
    r"""CS231n's weight-scale experiment: train `normlab.models.mlp` with every weight
    (output layer included) drawn from :math:`\mathcal N(0, s^2)`, for each scale ``s``,
    norm and seed, with Adam (``lr``) on mini-batches of ``batch_size``.

    For one seed every scale uses the same random draws, scaled, and every norm sees the
    same batch order, so comparisons can be paired by seed. All networks of one norm are
    trained at once: their parameters are stacked and the one model evaluated with
    ``torch.func.vmap``, which computes what training each alone computes (Adam acts
    elementwise), in a fraction of the time.
    """
    from torch.func import functional_call, stack_module_state, vmap

    scales = np.asarray(scales, dtype=float)
    seeds = tuple(seeds)
    in_features = int(np.prod(splits.input_shape))
    x_train, y_train = splits.x_train.reshape(len(splits.x_train), -1), splits.y_train
    x_val, y_val = splits.x_val.reshape(len(splits.x_val), -1), splits.y_val
    n_train, replicas = len(x_train), len(scales) * len(seeds)
    starts = list(range(0, n_train, batch_size))
    if n_train - starts[-1] == 1:  # a batch of one cannot be batch-normalized: join it to the one before
        starts.pop()
    ends = starts[1:] + [n_train]
    best_val_acc, final_train_loss = {}, {}
    for norm in norms:
        nets = []
        for scale in scales:
            for seed in seeds:
                torch.manual_seed(seed)
                nets.append(models.mlp(in_features, splits.num_classes, hidden=hidden, norm=norm,
                                       activation=activation, init="normal", init_std=float(scale)))
        params, buffers = stack_module_state(nets)
        skeleton = copy.deepcopy(nets[0]).to("meta")

        def forward(p, b, x, skeleton=skeleton):
            return functional_call(skeleton, (p, b), (x,))

        optimizer = torch.optim.Adam(list(params.values()), lr=lr)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        best = torch.zeros(replicas)
        for _ in range(epochs):
            skeleton.train()
            order = torch.stack([torch.randperm(n_train, generator=g) for g in generators]).repeat(len(scales), 1)
            loss_sum = torch.zeros(replicas)
            for start, end in zip(starts, ends):
                index = order[:, start:end]
                logits = vmap(forward)(params, buffers, x_train[index])
                losses = F.cross_entropy(logits.flatten(0, 1), y_train[index].flatten(),
                                         reduction="none").view(replicas, -1).mean(1)
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                optimizer.step()
                loss_sum += losses.detach() * (end - start)
            skeleton.eval()
            with torch.no_grad():
                logits = vmap(forward, in_dims=(0, 0, None))(params, buffers, x_val)
            hits = (logits.argmax(-1) == y_val) & ~logits.isnan().any(-1)
            best = torch.maximum(best, hits.double().mean(1))
        last = (loss_sum / n_train).numpy()
        last[~np.isfinite(last)] = np.nan
        best_val_acc[norm] = best.numpy().reshape(len(scales), len(seeds))
        final_train_loss[norm] = last.reshape(len(scales), len(seeds))
    return WeightScaleSweep(scales, seeds, tuple(norms), best_val_acc, final_train_loss, tuple(hidden), epochs,
                            lr, batch_size)


@dataclass
class TrainingDiagnostics:
    r"""What `fit_with_diagnostics` recorded, one row per SGD step.

    Hidden-layer outputs :math:`h_l` (the inputs of Linear layers 2..L+1), on the step's
    mini-batch in training mode, columns l = 1..L: ``activation_means``,
    ``activation_stds`` (over batch and units) and ``saturation``, the fraction of values
    with :math:`|h| >` ``saturation_threshold`` (tanh's flat tails).
    Weights of every Linear layer (the L hidden ones, then the output layer), before the
    step's update: ``grad_to_data`` :math:`= \operatorname{std}(\partial L/\partial W)/\operatorname{std}(W)`
    and ``update_to_data`` :math:`= \log_{10}\big(\operatorname{std}(\eta\,\partial L/\partial W)/\operatorname{std}(W)\big)`,
    the size of the step relative to the weights (plain SGD: the update is
    :math:`-\eta\,\partial L/\partial W`). ``losses``: the step's mini-batch loss.
    """

    lr: float
    saturation_threshold: float
    losses: np.ndarray
    activation_means: np.ndarray
    activation_stds: np.ndarray
    saturation: np.ndarray
    grad_to_data: np.ndarray
    update_to_data: np.ndarray
    diverged: bool = False

    @property
    def steps(self) -> int:
        return len(self.losses)


def fit_with_diagnostics(model: nn.Module, train_loader, *, epochs=1, lr=0.1,
                         saturation_threshold=0.97) -> TrainingDiagnostics:
    r"""Train ``model`` in place with plain SGD, :math:`W \leftarrow W - \eta\,\partial L/\partial W`,
    on the cross-entropy loss over ``epochs`` passes of ``train_loader`` ((x, y) batches),
    and record at every step the per-layer statistics of `TrainingDiagnostics`
    (Karpathy's makemore part 3). A non-finite loss stops training before its update
    (``diverged``). Seed the model and the loader yourself.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise ValueError("the model needs at least one hidden Linear layer and an output layer")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    outputs = {}
    hooks = [layer.register_forward_pre_hook(lambda _m, args, k=k: outputs.__setitem__(k, args[0].detach()))
             for k, layer in enumerate(linears[1:])]
    rows, losses, diverged = [], [], False
    model.train()
    try:
        for _ in range(epochs):
            for x, y in train_loader:
                loss = F.cross_entropy(model(x), y)
                losses.append(loss.item())
                if not math.isfinite(losses[-1]):
                    diverged = True
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                with torch.no_grad():
                    hidden = [outputs[k].flatten(1) for k in range(len(linears) - 1)]
                    weight_stds = torch.stack([layer.weight.std() for layer in linears])
                    grad_stds = torch.stack([layer.weight.grad.std() for layer in linears])
                    rows.append(torch.cat([torch.stack([h.mean() for h in hidden]).double(),
                                           torch.stack([h.std() for h in hidden]).double(),
                                           torch.stack([(h.abs() > saturation_threshold).double().mean()
                                                        for h in hidden]),
                                           (grad_stds / weight_stds).double()]))
                optimizer.step()
            if diverged:
                break
    finally:
        for hook in hooks:
            hook.remove()
    hidden_count, layer_count = len(linears) - 1, len(linears)
    table = torch.stack(rows).numpy() if rows else np.zeros((0, 3 * hidden_count + layer_count))
    means, stds, saturated, ratios = np.split(table, np.cumsum([hidden_count] * 3), axis=1)
    return TrainingDiagnostics(lr=lr, saturation_threshold=saturation_threshold,
                               losses=np.array(losses[:len(rows)]), activation_means=means, activation_stds=stds,
                               saturation=saturated, grad_to_data=ratios,
                               update_to_data=np.log10(lr * ratios), diverged=diverged)
