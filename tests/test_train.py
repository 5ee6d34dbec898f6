"""Tests for normlab.train on tiny synthetic problems (no dependence on normlab.data)."""

import copy
import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from normlab.models import mlp
from normlab.train import History, evaluate, fit, set_seed


pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n, num_classes=4, dim=8, seed=0):
    """Linearly separable: class k is N(4 e_k, I) in `dim` dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = torch.randn(n, dim, generator=g) + 4.0 * F.one_hot(y, dim).float()
    return TensorDataset(x, y)


def loaders(n_train=256, n_val=128, batch_size=32, seed=0):
    train = DataLoader(blobs(n_train, seed=seed), batch_size=batch_size, shuffle=True)
    val = DataLoader(blobs(n_val, seed=seed + 1), batch_size=64)
    return train, val


class Frozen(nn.Module):
    """A model that cannot improve: its only trainable parameter does not affect the output
    (its gradient is 0), so the validation loss is exactly the same every epoch."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 4).requires_grad_(False)
        self.unused = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.linear(x) + 0.0 * self.unused


class ModeProbe(nn.Module):
    """Records (training, grad enabled) at every forward call."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.inner(x)


def test_fit_learns_a_separable_problem():
    set_seed(0)
    train, val = loaders()
    history = fit(mlp(8, 4, hidden=(16,)), train, val, epochs=10, lr=0.05, progress=False)
    assert history.val_acc[-1] > 0.95 and history.train_acc[-1] > 0.95
    assert history.val_loss[-1] < history.val_loss[0]
    assert not history.diverged and not history.stopped_early
    assert history.num_epochs == 10
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"):
        assert len(getattr(history, name)) == 10
    assert all(s > 0 for s in history.epoch_seconds)
    assert history.lr[0] == 0.05
    assert history.best_val_acc == max(history.val_acc) == history.val_acc[history.best_epoch]
    assert history.val_acc.index(history.best_val_acc) == history.best_epoch  # the first best epoch


def test_fit_records_what_evaluate_measures():
    set_seed(0)
    train, val = loaders()
    model = mlp(8, 4, hidden=(16,), norm="batch", dropout=0.5)
    history = fit(model, train, val, epochs=2, progress=False)
    assert (history.val_loss[-1], history.val_acc[-1]) == evaluate(model, val)


def test_fit_is_sgd_with_nesterov_momentum_and_weight_decay():
    """One epoch of fit equals the same epoch written out with torch.optim.SGD."""
    set_seed(0)
    train, val = loaders()
    model = mlp(8, 4, hidden=(16,), norm="batch", dropout=0.2)
    reference = copy.deepcopy(model)
    fit(model, train, val, epochs=1, lr=0.03, momentum=0.8, weight_decay=1e-2, seed=3, progress=False)
    torch.manual_seed(3)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.03, momentum=0.8, nesterov=True, weight_decay=1e-2)
    reference.train()
    for x, y in train:
        optimizer.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        optimizer.step()
    for p, q in zip(model.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_fit_trains_in_train_mode_and_validates_in_eval_mode_without_grad():
    set_seed(0)
    train, val = loaders(n_train=64, n_val=64, batch_size=16)  # 4 training batches, 1 val batch
    probe = ModeProbe(mlp(8, 4, hidden=(8,), norm="batch"))
    probe.eval()  # fit must switch to train mode itself
    fit(probe, train, val, epochs=3, progress=False)
    assert probe.calls == ([(True, True)] * 4 + [(False, False)]) * 3


def test_same_seed_same_history_different_seed_different():
    train, val = loaders()
    set_seed(0)
    model = mlp(8, 4, hidden=(16,), dropout=0.3)

    def run(seed):
        return fit(copy.deepcopy(model), train, val, epochs=3, seed=seed, progress=False)

    first, again, other = run(0), run(0), run(1)
    assert first.train_loss == again.train_loss and first.val_loss == again.val_loss
    assert first.train_acc == again.train_acc and first.val_acc == again.val_acc
    assert first.train_loss != other.train_loss  # shuffling and dropout follow the seed
    assert first.val_loss != other.val_loss


@pytest.mark.parametrize("lr_patience, expected", [
    (1, [0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625]),
    (2, [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]),
])
def test_learning_rate_halves_after_a_plateau(lr_patience, expected):
    # Epoch 0 sets the best validation loss; every later epoch fails to improve on it.
    train, val = loaders(n_train=32, n_val=32)
    history = fit(Frozen(), train, val, epochs=6, lr=0.1, lr_patience=lr_patience, progress=False)
    assert history.lr == expected
    assert len(set(history.val_loss)) == 1


def test_learning_rate_stays_while_improving():
    set_seed(0)
    train, val = loaders()
    history = fit(mlp(8, 4, hidden=(16,)), train, val, epochs=4, lr=0.01, lr_patience=1, progress=False)
    assert all(b < a for a, b in zip(history.val_loss, history.val_loss[1:]))  # improving every epoch
    assert history.lr == [0.01] * 4


def test_early_stopping_stops():
    train, val = loaders(n_train=32, n_val=32)
    history = fit(Frozen(), train, val, epochs=50, early_stop_patience=3, progress=False)
    assert history.stopped_early and not history.diverged
    assert history.num_epochs == 4  # the best epoch, then 3 without improvement
    assert history.best_epoch == 0


def test_weight_decay_shrinks_the_weights():
    train, val = loaders(n_train=32, n_val=32, batch_size=32)
    model = Frozen()  # the loss gradient of `unused` is 0, so only the decay moves it
    fit(model, train, val, epochs=3, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.5, progress=False)
    torch.testing.assert_close(model.unused.detach(), torch.tensor([(1 - 0.1 * 0.5) ** 3]))


def test_diverging_run_is_reported_not_raised():
    set_seed(0)
    train, val = loaders()
    model = mlp(8, 4, hidden=(64, 64), init="normal", init_std=1.0)
    history = fit(model, train, val, epochs=20, lr=1e3, progress=False)
    assert history.diverged and not history.stopped_early
    assert history.num_epochs < 20
    assert not math.isfinite(history.train_loss[-1]) or not math.isfinite(history.val_loss[-1])
    assert 0.0 <= history.train_acc[-1] <= 1.0 and 0.0 <= history.val_acc[-1] <= 1.0
    assert all(len(getattr(history, k)) == history.num_epochs for k in ("val_acc", "lr", "epoch_seconds"))
    json.dumps(history.as_dict(), allow_nan=False)  # still strict JSON


def test_non_finite_training_loss_stops_before_updating():
    """A nan in the last training batch: the epoch ends there, without a nan update."""
    data = blobs(64)
    x, y = data.tensors[0].clone(), data.tensors[1]
    x[-1, 0] = float("nan")
    train = DataLoader(TensorDataset(x, y), batch_size=16)  # no shuffle: the nan comes last
    _, val = loaders(n_val=64)
    set_seed(0)
    model = mlp(8, 4, hidden=(16,))
    history = fit(model, train, val, epochs=5, progress=False)
    assert history.diverged and history.num_epochs == 1
    assert math.isnan(history.train_loss[0])
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the nan batch was not applied
    assert math.isfinite(history.val_loss[0]) and (history.val_loss[0], history.val_acc[0]) == evaluate(model, val)


def test_non_finite_validation_loss_also_counts_as_divergence():
    train, _ = loaders(n_train=64)
    x = torch.full((4, 8), float("inf"))  # stands in for weights that overflowed at the epoch's end
    val = DataLoader(TensorDataset(x, torch.zeros(4, dtype=torch.long)), batch_size=4)
    history = fit(mlp(8, 4, hidden=(16,)), train, val, epochs=5, progress=False)
    assert history.diverged and history.num_epochs == 1
    assert math.isfinite(history.train_loss[0]) and not math.isfinite(history.val_loss[0])


def test_nan_logits_count_as_wrong():
    x = torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [5.0, float("inf")]])
    y = torch.tensor([1, 0, 1])  # right, nan (argmax would say 0: "right"), right by +inf
    loss, acc = evaluate(nn.Identity(), DataLoader(TensorDataset(x, y), batch_size=3))
    assert math.isnan(loss) and acc == pytest.approx(2 / 3)


def test_batch_norm_survives_where_vanilla_diverges():
    """The course's point, as a smoke test: the same lr with BN stays finite."""
    set_seed(0)
    train, val = loaders()
    model = mlp(8, 4, hidden=(64, 64), norm="batch", init="normal", init_std=1.0)
    history = fit(model, train, val, epochs=3, lr=1e3, progress=False)
    assert not history.diverged


def test_evaluate_restores_the_mode_and_uses_eval_mode_without_grad():
    _, val = loaders(n_val=64)
    probe = ModeProbe(mlp(8, 4, hidden=(8,), norm="batch", dropout=0.5))
    probe.train()
    loss, acc = evaluate(probe, val)
    assert probe.training and all(m.training for m in probe.modules())
    assert probe.calls == [(False, False)]
    probe.eval()
    assert evaluate(probe, val) == (loss, acc)  # deterministic: eval mode, no dropout
    assert not probe.training


def test_evaluate_computes_mean_loss_and_accuracy():
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    y = torch.tensor([0, 0, 0])
    loader = DataLoader(TensorDataset(x, y), batch_size=2)  # uneven batches: mean over samples
    loss, acc = evaluate(nn.Identity(), loader)
    expected = F.cross_entropy(x, y).item()
    assert loss == pytest.approx(expected) and acc == pytest.approx(2 / 3)


def test_history_round_trips_through_json():
    history = History(train_loss=[1.5, float("nan")], train_acc=[0.5, 0.25], val_loss=[1.25, float("inf")],
                      val_acc=[0.5, 0.1], lr=[0.01, 0.01], epoch_seconds=[0.1, 0.2], best_val_acc=0.5,
                      best_epoch=0, stopped_early=False, diverged=True)
    text = json.dumps(history.as_dict(), allow_nan=False)
    restored = History.from_dict(json.loads(text))
    assert restored.as_dict() == history.as_dict()
    assert math.isnan(restored.train_loss[1]) and restored.val_loss[1] == math.inf
    assert restored.diverged and restored.best_epoch == 0 and restored.lr == [0.01, 0.01]
    finite = History(train_loss=[0.5], train_acc=[1.0], val_loss=[0.25], val_acc=[1.0], lr=[0.1],
                     epoch_seconds=[0.3], best_val_acc=1.0, best_epoch=0)
    assert History.from_dict(json.loads(json.dumps(finite.as_dict()))) == finite
    with pytest.raises(ValueError, match="unknown History fields"):
        History.from_dict({"train_losses": []})


def test_progress_bar_can_be_turned_off(capsys):
    train, val = loaders(n_train=32, n_val=32)
    fit(Frozen(), train, val, epochs=2, progress=True, desc="frozen-run")
    err = capsys.readouterr().err
    assert "frozen-run" in err and "val_acc" in err and "loss" in err
    fit(Frozen(), train, val, epochs=2, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_set_seed_seeds_python_numpy_and_torch():
    set_seed(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.parametrize("kwargs, match", [
    ({"momentum": 0.0}, r"nesterov=True needs momentum > 0"),
    ({"epochs": 0}, r"epochs must be an integer >= 1"),
    ({"lr": 0.0}, r"lr must be > 0"),
    ({"lr_patience": 0}, r"lr_patience .* >= 1"),
    ({"early_stop_patience": 0}, r"early_stop_patience .* >= 1"),
    ({"lr_factor": 2.0}, r"lr_factor .* \(0, 1\]"),
    ({"weight_decay": -1.0}, r"weight_decay must be >= 0"),
])
def test_fit_invalid_arguments(kwargs, match):
    train, val = loaders(n_train=32, n_val=32)
    with pytest.raises(ValueError, match=match):
        fit(Frozen(), train, val, progress=False, **kwargs)


# --------------------------------------------------------------------------------------
# Training-time diagnostics and the weight-scale sweep (lecture 07)
# --------------------------------------------------------------------------------------


def test_fit_with_diagnostics_records_what_a_hand_computation_gives():
    from normlab.train import fit_with_diagnostics

    torch.manual_seed(0)
    model = mlp(4, 3, hidden=(5, 5), activation="tanh", init="normal", init_std=1.5)  # large: some |h| > 0.97
    x, y = torch.randn(16, 4), torch.arange(16) % 3
    reference = copy.deepcopy(model)
    lr, threshold = 0.3, 0.97
    got = fit_with_diagnostics(model, [(x, y)], epochs=2, lr=lr, saturation_threshold=threshold)
    linears = [m for m in reference if isinstance(m, nn.Linear)]
    for step in range(2):
        h1 = torch.tanh(linears[0](x))
        h2 = torch.tanh(linears[1](h1))
        loss = F.cross_entropy(linears[2](h2), y)
        reference.zero_grad()
        loss.backward()
        with torch.no_grad():
            assert got.losses[step] == pytest.approx(loss.item(), rel=1e-6)
            for k, h in enumerate((h1, h2)):
                assert got.activation_means[step, k] == pytest.approx(h.mean().item(), abs=1e-6)
                assert got.activation_stds[step, k] == pytest.approx(h.std().item(), rel=1e-5)
                assert got.saturation[step, k] == (h.abs() > threshold).double().mean().item()
            for k, layer in enumerate(linears):  # W before this step's update
                ratio = layer.weight.grad.std() / layer.weight.std()
                assert got.grad_to_data[step, k] == pytest.approx(ratio.item(), rel=1e-5)
                expected = torch.log10((lr * layer.weight.grad).std() / layer.weight.std()).item()
                assert got.update_to_data[step, k] == pytest.approx(expected, abs=1e-5)
            for p in reference.parameters():  # plain SGD
                p -= lr * p.grad
    assert 0 < got.saturation.max() < 1  # the test exercises the threshold
    assert got.steps == 2 and not got.diverged
    assert got.activation_means.shape == (2, 2) and got.grad_to_data.shape == (2, 3)
    for a, b in zip(model.parameters(), reference.parameters()):  # the model was trained by that rule
        torch.testing.assert_close(a, b)


def test_fit_with_diagnostics_stops_at_a_non_finite_loss():
    from normlab.train import fit_with_diagnostics

    torch.manual_seed(0)
    model = mlp(4, 3, hidden=(5,), activation="tanh")
    batch = (torch.randn(8, 4), torch.arange(8) % 3)
    fine = fit_with_diagnostics(copy.deepcopy(model), [batch], epochs=1)
    with torch.no_grad():
        model[-1].weight[0, 0] = math.nan
    broken = fit_with_diagnostics(model, [batch, batch], epochs=3)
    assert fine.steps == 1 and not fine.diverged
    assert broken.diverged and broken.steps == 0 and broken.update_to_data.shape == (0, 2)


def test_weight_scale_sweep_equals_training_each_net_alone():
    from normlab.data import DataSplits
    from normlab.train import weight_scale_sweep

    g = torch.Generator().manual_seed(0)
    x = torch.randn(70, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes
    splits = DataSplits(x[:41], y[:41], x[41:], y[41:], x[41:], y[41:], num_classes=3, input_shape=(6,), name="toy")
    scales, seeds, hidden, epochs, lr, batch = (0.05, 0.5), (0, 3), (8, 8), 3, 1e-2, 10
    sweep = weight_scale_sweep(splits, scales, seeds=seeds, hidden=hidden, epochs=epochs, lr=lr, batch_size=batch)
    starts = [0, 10, 20, 30]  # 41 samples: the last batch of one joins the batch before it
    for norm in ("none", "batch"):
        for i, scale in enumerate(scales):
            for j, seed in enumerate(seeds):
                torch.manual_seed(seed)
                net = mlp(6, 3, hidden=hidden, norm=norm, init="normal", init_std=scale)
                optimizer = torch.optim.Adam(net.parameters(), lr=lr)
                generator = torch.Generator().manual_seed(seed)
                best = 0.0
                for _ in range(epochs):
                    net.train()
                    order, loss_sum = torch.randperm(41, generator=generator), 0.0
                    for start, end in zip(starts, starts[1:] + [41]):
                        index = order[start:end]
                        loss = F.cross_entropy(net(x[index]), y[index])
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                        loss_sum += loss.item() * len(index)
                    best = max(best, evaluate(net, [(splits.x_val, splits.y_val)])[1])
                assert sweep.best_val_acc[norm][i, j] == pytest.approx(best, abs=1e-9), (norm, scale, seed)
                assert sweep.final_train_loss[norm][i, j] == pytest.approx(loss_sum / 41, rel=1e-4)
    assert sweep.best_val_acc["batch"].shape == (2, 2)
    # the sweep is not trivially flat: scale and norm change the outcome
    assert len({round(v, 4) for norm in sweep.norms for v in sweep.final_train_loss[norm].ravel()}) == 8
