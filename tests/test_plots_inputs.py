"""The figures and helpers of lectures 01 and 02 (normlab.plots.inputs)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from normlab import models  # noqa: E402
from normlab.train import record_layer_inputs  # noqa: E402
from normlab.plots.inputs import (  # noqa: E402
    QuadraticLoss,
    drift_summary,
    gradient_descent,
    learning_rate_sweep,
    plot_batchnorm_statistics,
    plot_curves,
    plot_layer_input_drift,
    plot_loss_contours,
    statistic_groups,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def two_scale_problem(rng, scale=30.0, n=200):
    """Two centered features, the first `scale` times wider than the second."""
    x = rng.normal(size=(n, 2)) * np.array([scale, 1.0])
    x -= x.mean(0)
    y = x @ np.array([0.1, -2.0]) + 0.1 * rng.normal(size=n)
    return x, y - y.mean()


def test_quadratic_loss_matches_the_mean_squared_error_and_its_gradient(rng):
    x, y = two_scale_problem(rng)
    loss = QuadraticLoss.from_data(x, y)
    w = rng.normal(size=2)
    assert loss(w) == pytest.approx(np.mean((x @ w - y) ** 2) / 2)
    assert np.allclose(loss.gradient(w), x.T @ (x @ w - y) / len(y))
    assert np.allclose(loss.minimizer, np.linalg.lstsq(x, y, rcond=None)[0])
    assert loss.gap(w) == pytest.approx(loss(w) - loss(loss.minimizer))


def test_raw_bowl_is_more_elongated_than_the_standardized_one_and_needs_more_steps(rng):
    x, y = two_scale_problem(rng)
    raw = QuadraticLoss.from_data(x, y)
    standardized = QuadraticLoss.from_data(x / x.std(0), y)
    assert raw.condition_number > 100 * standardized.condition_number
    assert raw.condition_number == pytest.approx(30.0**2, rel=0.5)
    lrs = np.geomspace(1e-6, 10, 61)
    raw_sweep = learning_rate_sweep(raw, np.zeros(2), lrs, max_steps=5000)
    standardized_sweep = learning_rate_sweep(standardized, np.zeros(2), lrs, max_steps=5000)
    assert 0 < standardized_sweep.best_steps < 20 < 10 * standardized_sweep.best_steps < raw_sweep.best_steps
    # The largest stable rate on the grid sits just below the theory's 2 / lambda_max.
    for loss, sweep in ((raw, raw_sweep), (standardized, standardized_sweep)):
        grid_ratio = lrs[1] / lrs[0]
        assert loss.largest_stable_lr / grid_ratio < sweep.largest_stable_lr < loss.largest_stable_lr
        assert sweep.diverged[lrs > loss.largest_stable_lr * 1.01].all()


def test_sweep_reports_no_convergence_within_budget(rng):
    x, y = two_scale_problem(rng, scale=1000.0)
    sweep = learning_rate_sweep(QuadraticLoss.from_data(x, y), np.zeros(2), np.geomspace(1e-8, 1, 17),
                                max_steps=50)
    assert sweep.best_steps == -1 and np.isnan(sweep.best_lr)


def test_gradient_descent_path_and_contour_figure(rng):
    x, y = two_scale_problem(rng, scale=5.0)
    losses = {"raw": QuadraticLoss.from_data(x, y), "standardized": QuadraticLoss.from_data(x / x.std(0), y)}
    paths = {name: gradient_descent(loss, np.zeros(2), 1.0 / loss.eigenvalues[-1], 10)
             for name, loss in losses.items()}
    assert paths["raw"].shape == (11, 2) and np.all(paths["raw"][0] == 0)
    assert losses["raw"].gap(paths["raw"][-1]) < losses["raw"].gap(paths["raw"][0])
    fig = plot_loss_contours(losses, paths)
    assert len(fig.axes) == 2
    for ax, path in zip(fig.axes, paths.values()):
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) == len(path)]
        assert lines and np.allclose(lines[0].get_xdata(), path[:, 0])
        assert ax.collections, "the panel has no contours"
    assert "κ = " in fig.axes[0].get_title()


def test_plot_curves_draws_one_line_per_curve():
    fig = plot_curves({"a": [1.0, 0.5, 0.2], "b": [1.0, 0.9, 0.8]})
    assert len(fig.axes[0].get_lines()) == 2


def test_first_layer_input_never_drifts_but_hidden_inputs_do():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    model = models.mlp(8, 2, hidden=(16, 16))
    record = record_layer_inputs(model, x, y, x_probe=x[:64], steps=40, lr=0.1, record_every=10)
    assert list(record.steps) == [0, 10, 20, 30, 40] and len(record.losses) == 40
    assert [m.shape for m in record.means] == [(5, 8), (5, 16), (5, 16)]
    summary = drift_summary(record)
    assert summary[0]["mean_shift"] == 0 and summary[0]["std_ratio"] == pytest.approx(1.0)
    assert summary[1]["mean_shift"] > 0.01 and summary[2]["mean_shift"] > 0.01
    fig = plot_layer_input_drift(record, units=4)
    assert len(fig.axes) == 6 and len(fig.axes[0].get_lines()) == 4


def test_recording_leaves_batchnorm_running_statistics_to_training_alone():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = models.mlp(4, 2, hidden=(8,), norm="batch")
    record_layer_inputs(model, x, y, x_probe=x[:32] + 100.0, steps=0)
    bn = model[2]
    assert torch.all(bn.running_mean == 0) and int(bn.num_batches_tracked) == 0


def test_statistic_groups_number_entries_by_channel_for_batchnorm():
    groups = statistic_groups((2, 3, 4, 5), (0, 2, 3))
    assert groups.shape == (2, 3, 4, 5)
    for c in range(3):
        assert np.all(groups[:, c] == groups[0, c, 0, 0])
    assert len(np.unique(groups)) == 3
    assert len(np.unique(statistic_groups((2, 3, 4, 5), (2, 3)))) == 6  # instance norm: per (n, c)


def test_batchnorm_statistics_figure_colours_channels():
    fig = plot_batchnorm_statistics(batch=3, features=4, channels=2, height=2, width=2)
    left, right = fig.axes
    assert len(np.unique(left.get_images()[0].get_array())) == 4
    canvas = np.ma.filled(right.get_images()[0].get_array().astype(float), np.nan)
    assert set(np.unique(canvas[~np.isnan(canvas)])) == {0.0, 1.0}
