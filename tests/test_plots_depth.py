"""Tests for normlab.plots.depth: statistics through depth, weight norms through training, figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from normlab import data, models  # noqa: E402
from normlab.train import fit_tracking_weight_norms  # noqa: E402
from normlab.plots.depth import (  # noqa: E402
    activation_statistics,
    plot_activation_histograms,
    plot_depth_profiles,
    plot_weight_norms,
)

SMALL = dict(depth=8, width=64, num_samples=128)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_shapes_and_histograms_are_fractions():
    s = activation_statistics(activation="tanh", init="xavier", bins=30, **SMALL)
    assert s.depth == 8
    for name in ("means", "stds", "sample_stds", "fraction_zero", "fraction_dead", "weight_grad_norms",
                 "weight_norms", "relative_grad_norms", "output_grad_stds"):
        assert getattr(s, name).shape == (8,), name
    assert s.hist_fractions.shape == (8, 30) and s.hist_edges.shape == (8, 31)
    np.testing.assert_allclose(s.hist_fractions.sum(axis=1), 1.0)
    # tanh output: fixed bins over (-1, 1)
    assert s.hist_edges[:, 0] == pytest.approx(-1.0) and s.hist_edges[:, -1] == pytest.approx(1.0)
    assert s.label == "tanh, Xavier, no norm"


def test_small_init_vanishes_and_kaiming_preserves_relu():
    small = activation_statistics(activation="tanh", init="normal", init_std=0.01, **SMALL)
    assert small.stds[-1] < 1e-5 * small.stds[0]  # shrinks by ~0.01 * sqrt(64) per layer
    assert small.label == "tanh, N(0, 0.01²), no norm"
    xavier = activation_statistics(activation="relu", init="xavier", **SMALL)
    kaiming = activation_statistics(activation="relu", init="kaiming", **SMALL)
    assert xavier.stds[-1] < 0.1 * xavier.stds[0]  # loses a factor ~sqrt(2) per layer
    assert 0.3 < kaiming.stds[-1] / kaiming.stds[0] < 3
    assert kaiming.fraction_zero[0] == pytest.approx(0.5, abs=0.1)  # ReLU zeroes about half


def test_batchnorm_makes_the_forward_pass_independent_of_the_weight_scale():
    # Same seed: the N(0, 1) and N(0, 0.1²) nets have the same weights up to a factor 10,
    # and BN(alpha W x) = BN(W x) up to eps (which matters once alpha^2 Var(Wx) nears eps).
    big = activation_statistics(activation="relu", init="normal", init_std=1.0, norm="batch", **SMALL)
    small = activation_statistics(activation="relu", init="normal", init_std=0.1, norm="batch", **SMALL)
    np.testing.assert_allclose(big.stds, small.stds, rtol=1e-3)
    np.testing.assert_allclose(big.hist_fractions, small.hist_fractions, atol=0.02)
    assert big.label.endswith("BN")


def test_batchnorm_gradients_relative_to_the_weights_scale_as_one_over_alpha_squared():
    # A BN layer's dL/dW scales as 1/alpha, but the output layer (no BN) has the same init and
    # scales the gradient reaching the layers by about alpha: the raw gradient norms nearly
    # agree, relative to W (which scales as alpha) they differ by about 1/alpha.
    big = activation_statistics(activation="relu", init="normal", init_std=1.0, norm="batch", **SMALL)
    small = activation_statistics(activation="relu", init="normal", init_std=0.1, norm="batch", **SMALL)
    np.testing.assert_allclose(big.weight_norms, 10 * small.weight_norms, rtol=1e-6)  # float32 draws
    np.testing.assert_allclose(big.relative_grad_norms, big.weight_grad_norms / big.weight_norms)
    assert np.all(small.relative_grad_norms > 5 * big.relative_grad_norms)
    assert np.all(small.weight_grad_norms < 2 * big.weight_grad_norms)
    assert np.all(big.weight_grad_norms < 2 * small.weight_grad_norms)


def test_dead_units_relu_without_bias_scale_free_and_none_with_batchnorm():
    deep = dict(SMALL, depth=20)
    plain = {init: activation_statistics(activation="relu", init=init, **deep) for init in ("kaiming", "xavier")}
    normed = activation_statistics(activation="relu", init="kaiming", norm="batch", **deep)
    assert plain["kaiming"].fraction_dead[-1] > 0  # deep ReLU nets lose units for a whole batch
    assert np.all(plain["kaiming"].fraction_dead <= plain["kaiming"].fraction_zero + 1e-12)
    # zero biases and relu(a z) = a relu(z): the weights' scale cannot change which units are dead
    np.testing.assert_array_equal(plain["kaiming"].fraction_dead, plain["xavier"].fraction_dead)
    assert np.all(normed.fraction_dead == 0)  # BN centres every unit over the batch


def test_deep_sigmoid_forgets_its_input_without_batchnorm():
    plain = activation_statistics(activation="sigmoid", init="xavier", **SMALL)
    normed = activation_statistics(activation="sigmoid", init="xavier", norm="batch", **SMALL)
    assert plain.sample_stds[-1] < 0.05 * plain.sample_stds[0]
    assert normed.sample_stds[-1] > 0.5 * normed.sample_stds[0]


def test_given_inputs_and_errors():
    x = torch.randn(32, 10)
    s = activation_statistics(depth=3, width=16, inputs=x, targets=torch.zeros(32, dtype=torch.long))
    assert s.depth == 3
    with pytest.raises(ValueError, match="targets"):
        activation_statistics(depth=3, width=16, inputs=x, targets=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="depth"):
        activation_statistics(depth=0)


def test_histogram_figure_grid_and_relu_spike_cut():
    stats = [activation_statistics(activation="relu", init="kaiming", **SMALL),
             activation_statistics(activation="tanh", init="xavier", **SMALL)]
    fig = plot_activation_histograms(stats, layers=[1, 4, 8])
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["layer 1", "layer 4", "layer 8"]
    relu_ax = axes[0, 0]
    assert relu_ax.get_ylim()[1] < stats[0].hist_fractions[0].max()  # spike at 0 is cut
    assert any("at 0" in t.get_text() for t in relu_ax.texts)
    assert fig.get_size_inches()[0] <= 10 and fig.get_size_inches()[1] <= 4.5


def test_profile_figure_draws_one_line_per_condition():
    stats = [activation_statistics(activation="relu", init=init, **SMALL) for init in ("xavier", "kaiming")]
    fig = plot_depth_profiles(stats, spread="sample_stds")
    ax_act, ax_grad = fig.axes[:2]
    assert len(ax_act.lines) == len(ax_grad.lines) == 2
    np.testing.assert_allclose(ax_act.lines[1].get_ydata(), stats[1].sample_stds)
    np.testing.assert_allclose(ax_grad.lines[0].get_ydata(), stats[0].weight_grad_norms)
    with pytest.raises(ValueError, match="spread"):
        plot_depth_profiles(stats, spread="variance")
    relative = plot_depth_profiles(stats, gradient="relative")
    np.testing.assert_allclose(relative.axes[1].lines[0].get_ydata(), stats[0].relative_grad_norms)
    assert "relative" in relative.axes[1].get_title()
    with pytest.raises(ValueError, match="gradient"):
        plot_depth_profiles(stats, gradient="outputs")


@pytest.fixture(scope="module")
def digits():
    return data.load_digits(flat=True)


def _train(splits, norm, weight_decay, seed=0):
    torch.manual_seed(seed)
    model = models.mlp(64, 10, hidden=(32, 32), norm=norm)
    return fit_tracking_weight_norms(model, splits, epochs=2, lr=0.1, weight_decay=weight_decay, seed=seed)


def test_weight_decay_shrinks_scale_invariant_weights_and_raises_the_effective_lr(digits):
    plain = _train(digits, "batch", 0.0)
    decayed = _train(digits, "batch", 0.05)
    assert plain.weight_norms.shape == (3, 2) and plain.grad_norms.shape == (2, 2)
    assert plain.val_acc.shape == (2,) and 0 <= plain.test_acc <= 1
    # Without decay the gradient is orthogonal to W, so plain SGD can only grow ||W||.
    assert np.all(np.diff(plain.weight_norms, axis=0) >= -1e-4)
    assert np.all(decayed.weight_norms[-1] < plain.weight_norms[-1])
    np.testing.assert_allclose(decayed.effective_lr, 0.1 / decayed.weight_norms ** 2)
    assert np.all(decayed.effective_lr[-1] > plain.effective_lr[-1])


def test_weight_norm_figure_lines_and_bands(digits):
    groups = [[_train(digits, "batch", 0.0, seed) for seed in (0, 1)], _train(digits, "batch", 0.05)]
    fig = plot_weight_norms(groups, ["no decay", "decay"])
    ax_norm, ax_lr = fig.axes
    assert len(ax_norm.lines) == len(ax_lr.lines) == 2
    assert len(ax_norm.collections) == 1  # a band only for the group of two seeds
    np.testing.assert_allclose(ax_lr.lines[1].get_ydata(), groups[1].effective_lr[:, 0])


# --------------------------------------------------------------------------------------
# The weight-scale sweep and training-time diagnostics
# --------------------------------------------------------------------------------------


def test_plot_weight_scale_sweep_draws_the_mean_over_seeds_against_the_scale():
    from normlab.plots.depth import plot_weight_scale_sweep
    from normlab.train import WeightScaleSweep

    scales = np.array([1e-3, 1e-2, 1e-1])
    acc = {"none": np.array([[0.1, 0.1], [0.5, 0.7], [0.9, 0.8]]), "batch": np.array([[0.6, 0.8]] * 3)}
    loss = {"none": np.array([[2.3, 2.3], [1.0, np.nan], [0.2, 0.4]]), "batch": np.array([[0.5, 0.7]] * 3)}
    sweep = WeightScaleSweep(scales, (0, 1), ("none", "batch"), acc, loss, (50,), 5, 1e-3, 50)
    fig = plot_weight_scale_sweep(sweep, reference_scale=0.2)
    ax_acc, ax_loss = fig.axes
    assert ax_acc.get_xscale() == "log" and ax_loss.get_xscale() == "log" and ax_loss.get_yscale() == "log"
    lines = [line for line in ax_acc.lines if len(line.get_xdata()) == 3]
    np.testing.assert_allclose(lines[0].get_ydata(), [0.1, 0.6, 0.85])
    np.testing.assert_allclose(lines[1].get_ydata(), [0.7, 0.7, 0.7])
    loss_lines = [line for line in ax_loss.lines if len(line.get_xdata()) == 3]
    np.testing.assert_allclose(loss_lines[0].get_ydata(), [2.3, 1.0, 0.3])  # the nan seed left out
    assert [t.get_text() for t in ax_loss.get_legend().get_texts()] == ["no norm", "BN"]
    assert any(np.allclose(line.get_xdata(), 0.2) for line in ax_acc.lines)  # the reference scale


def test_plot_training_diagnostics_has_a_panel_per_quantity_and_run_and_smooths():
    from normlab.plots.depth import plot_training_diagnostics
    from normlab.train import TrainingDiagnostics

    steps = 30
    ramp = np.arange(steps, dtype=float)[:, None] * np.array([[1.0, 2.0]])  # 2 hidden layers
    ratios = np.full((steps, 3), 1e-2)
    run = TrainingDiagnostics(lr=0.1, saturation_threshold=0.97, losses=np.ones(steps), activation_means=ramp,
                              activation_stds=ramp, saturation=ramp / 100, grad_to_data=ratios,
                              update_to_data=np.log10(0.1 * ratios))
    fig = plot_training_diagnostics([run, run, run], ["a", "b", "c"], ("activation_means", "update_to_data"),
                                    smooth=5)
    assert len(fig.axes) == 6
    top_left = fig.axes[0]
    layer_lines = top_left.get_lines()
    assert len(layer_lines) == 2
    np.testing.assert_allclose(layer_lines[1].get_ydata(), 2.0 * (np.arange(4, steps) - 2.0))  # running mean of 5
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    update_panel = fig.axes[3]
    assert len(update_panel.get_lines()) == 4  # 2 hidden layers, the output layer, and the -3 guide
    assert any(np.allclose(line.get_ydata(), -3) for line in update_panel.get_lines())
    with pytest.raises(ValueError, match="unknown quantities"):
        plot_training_diagnostics([run], ["a"], ("loss_of_everything",))
