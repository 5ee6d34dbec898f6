"""The figures and quick experiments of lectures 05 (variants) and 06 (dropout)."""

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from normlab import data, functional, models, train  # noqa: E402
from normlab.plots import variants  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    """The flat digits with the train split cut to 400 samples, to keep training short."""
    full = data.load_digits(flat=True)
    return dataclasses.replace(full, x_train=full.x_train[:400], y_train=full.y_train[:400])


def _small_mlp():
    return models.mlp(64, 10, hidden=(16,), norm="batch")


# --------------------------------------------------------------------------------------
# The cube
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, expected", [
    ("batch", lambda n, c, hw, g: n * hw),
    ("layer", lambda n, c, hw, g: c * hw),
    ("instance", lambda n, c, hw, g: hw),
    ("group", lambda n, c, hw, g: c // g * hw),
])
def test_shared_statistics_mask_has_the_size_of_the_normalized_set(kind, expected):
    n, c, hw, g = 3, 4, 5, 2
    mask = variants.shared_statistics_mask(kind, n, c, hw, num_groups=g, sample=1, channel=2)
    assert mask.shape == (n, c, hw)
    assert mask.sum() == expected(n, c, hw, g)
    assert mask[1, 2, 0]


def test_shared_statistics_mask_lies_along_the_right_axes():
    batch = variants.shared_statistics_mask("batch", 3, 4, 5, channel=2)
    assert batch[:, 2, :].all() and not np.delete(batch, 2, axis=1).any()
    layer = variants.shared_statistics_mask("layer", 3, 4, 5, sample=1)
    assert layer[1].all() and not np.delete(layer, 1, axis=0).any()
    group = variants.shared_statistics_mask("group", 3, 4, 5, num_groups=2, sample=0, channel=3)
    assert group[0, 2:].all() and not group[0, :2].any() and not group[1:].any()


def test_each_shared_set_is_standardized_by_its_normalization():
    """The masked entries of the normalized output have mean 0 and variance 1 — the
    defining property of the set the mask claims to be."""
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 1)) * 3 + 2
    for kind in variants.NORMALIZATIONS:
        mask = variants.shared_statistics_mask(kind, 3, 4, 5, num_groups=2)
        out = variants._normalize_with(kind, x, num_groups=2)[..., 0]
        assert abs(out[mask].mean()) < 1e-9
        assert out[mask].var() == pytest.approx(1.0, abs=1e-4)


def test_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match="unknown normalization"):
        variants.shared_statistics_mask("weight")


def test_normalization_cube_has_four_3d_panels_with_the_right_masks():
    masks = variants.normalization_masks(num_samples=4, num_channels=4, num_positions=3, num_groups=2)
    fig = variants.plot_normalization_cube(masks, num_groups=2)
    assert len(fig.axes) == 4
    assert all(ax.name == "3d" for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["Batch Norm", "Layer Norm", "Instance Norm", "Group Norm (G=2)"]
    sizes = {kind: int(mask.sum()) for kind, mask in masks.items()}
    assert sizes == {"batch": 12, "layer": 12, "instance": 3, "group": 6}
    # the highlighted channel is the last one (the face towards the viewer)
    assert masks["batch"][:, -1, :].all()


# --------------------------------------------------------------------------------------
# Quick experiments
# --------------------------------------------------------------------------------------


def test_train_and_test_is_deterministic_and_learns(digits):
    first = train.train_and_test(_small_mlp, digits, epochs=4, lr=0.05, seed=1)
    second = train.train_and_test(_small_mlp, digits, epochs=4, lr=0.05, seed=1)
    assert first.test_acc == second.test_acc and first.test_loss == second.test_loss
    assert first.test_acc > 0.5  # chance is 0.1
    assert first.gap == pytest.approx(first.train_acc - first.test_acc)
    assert not first.diverged


def test_compare_conditions_runs_every_seed_and_applies_overrides(digits):
    results = train.compare_conditions(
        {"default": _small_mlp, "tiny lr": (_small_mlp, {"lr": 1e-6})}, digits, seeds=(0, 1), epochs=1)
    assert list(results) == ["default", "tiny lr"]
    assert all(len(runs) == 2 for runs in results.values())
    assert variants.summarize(results["default"])[0] > variants.summarize(results["tiny lr"])[0]


def _runs(*accuracies, seeds=None):
    seeds = range(len(accuracies)) if seeds is None else seeds
    return [train.RunResult(a, 1 - a, 1.0, 0.0, False, None, seed) for a, seed in zip(accuracies, seeds)]


def test_summarize_and_difference():
    mean, spread = variants.summarize(_runs(0.5, 0.7))
    assert mean == pytest.approx(0.6) and spread == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert variants.summarize(_runs(0.4)) == (pytest.approx(0.4), 0.0)
    diff, stderr = variants.difference(_runs(0.9, 0.9), _runs(0.5, 0.7))  # paired: seeds 0, 1 in both
    assert diff == pytest.approx(0.3) and stderr == pytest.approx(np.std([0.4, 0.2], ddof=1) / np.sqrt(2))
    diff, stderr = variants.difference(_runs(0.9, 0.9, seeds=(5, 6)), _runs(0.5, 0.7))  # other seeds: unpaired
    assert diff == pytest.approx(0.3) and stderr == pytest.approx(np.sqrt(0.02 / 2))


def test_verdict_names_a_winner_only_beyond_two_standard_errors():
    assert "a ahead" in variants.verdict("a", _runs(0.90, 0.91, 0.92), "b", _runs(0.80, 0.81, 0.82))
    assert "no clear winner" in variants.verdict("a", _runs(0.80, 0.90), "b", _runs(0.82, 0.86))
    # for the loss lower is better: a's losses (0.08..0.10) are below b's (0.18..0.20)
    assert "a ahead" in variants.verdict("a", _runs(0.90, 0.91, 0.92), "b", _runs(0.80, 0.81, 0.82),
                                         metric="test_loss")
    # and for the generalization gap (train 1.0 - test): a's gaps are the smaller ones
    assert "a ahead" in variants.verdict("a", _runs(0.90, 0.91, 0.92), "b", _runs(0.80, 0.81, 0.82),
                                         metric="gap")


def test_verdict_uses_the_course_rule_and_needs_two_seeds():
    from normlab import stats

    a, b = _runs(0.90, 0.91, 0.92), _runs(0.80, 0.81, 0.82)
    rule = stats.compare([r.test_acc for r in a], [r.test_acc for r in b], min_effect=0.005, paired=True)
    assert variants.compare_runs(a, b) == rule
    assert rule.outcome == "a" and f"± {rule.se:.3f} (margin {rule.margin:.3f})" in variants.verdict("a", a, "b", b)
    # half a percentage point is the smallest accuracy difference that counts, as on the scoreboard
    assert variants.compare_runs(_runs(0.904, 0.904), _runs(0.90, 0.90)).outcome == "draw"
    assert "no verdict" in variants.verdict("a", _runs(0.9), "b", _runs(0.5, 0.6))


def test_results_table_has_a_row_per_condition_and_the_quoted_column():
    table = variants.results_table({"measured": {"relu": _runs(0.9, 0.92), "tanh": _runs(0.8, 0.8)},
                                    "loss": ({"relu": _runs(0.9, 0.92)}, "test_loss")},
                                   quoted=variants.CAFFENET_BN_ACTIVATIONS, quoted_label="caffenet")
    lines = table.splitlines()
    assert lines[0] == "| condition | caffenet | measured | loss |"
    assert len(lines) == 4
    assert lines[2].startswith("| relu | 0.499 | 0.910 ± 0.014 | 0.090 ± 0.014")
    assert lines[3].endswith("| – |")


def test_batch_size_sweep_and_its_plot(digits):
    sweep = train.batch_size_sweep(["batch", "layer"], [32, 8], digits, epochs=1, hidden=(16,))
    assert set(sweep) == {"batch", "layer"} and set(sweep["batch"]) == {32, 8}
    fig = variants.plot_batch_size_sweep(sweep)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    error = 100 * (1 - sweep["batch"][32][0].test_acc)
    assert lines[0].get_ydata()[0] == pytest.approx(error)  # batch size decreases to the right


def test_plot_measured_vs_quoted_has_one_bar_per_condition():
    results = {"relu": _runs(0.95, 0.96), "tanh": _runs(0.94, 0.95), "none": _runs(0.9, 0.91)}
    fig = variants.plot_measured_vs_quoted(results, variants.CAFFENET_BN_ACTIVATIONS)
    quoted_ax, measured_ax = fig.axes
    assert [p.get_height() for p in quoted_ax.patches] == [0.499, 0.448, 0.384]
    assert [p.get_height() for p in measured_ax.patches] == pytest.approx([0.955, 0.945, 0.905])


# --------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------


def test_non_inverted_and_inverted_dropout_have_the_same_train_test_relation():
    x = np.array([1.0, -2.0, 3.0])
    rng = np.random.default_rng(0)
    plain = np.mean([functional.dropout_forward_not_inverted(x, 0.25, True, rng) for _ in range(20000)], axis=0)
    inverted = np.mean([functional.dropout_forward(x, 0.25, True, rng)[0] for _ in range(20000)], axis=0)
    np.testing.assert_allclose(plain, functional.dropout_forward_not_inverted(x, 0.25, False), atol=0.03)
    np.testing.assert_allclose(inverted, functional.dropout_forward(x, 0.25, False)[0], atol=0.03)
    masked = functional.dropout_forward_not_inverted(x, 0.5, True, np.random.default_rng(1))
    assert set(np.round(masked / x, 12)) <= {0.0, 1.0}  # no rescaling in training
    with pytest.raises(ValueError):
        functional.dropout_forward_not_inverted(x, 1.0)


def test_thinned_network_keeps_inputs_and_outputs():
    kept = variants.dropout_keep_masks(layer_sizes=(4, 6, 3), p=0.5, seed=0)
    fig = variants.plot_thinned_network(kept, p=0.5)
    assert len(fig.axes) == 2
    assert kept[0].all() and kept[-1].all()
    assert [len(k) for k in kept] == [4, 6, 3]
    assert not kept[1].all()  # this seed drops something


def test_mlp_with_dropout_after_bn_places_one_dropout_after_the_last_batchnorm():
    model = train.mlp_with_dropout_after_bn(64, 10, 0.3)
    kinds = [type(m) for m in model]
    assert kinds.count(nn.Dropout) == 1
    dropout_at = kinds.index(nn.Dropout)
    last_bn = max(i for i, k in enumerate(kinds) if k is nn.BatchNorm1d)
    assert last_bn < dropout_at == len(model) - 2 and model[dropout_at].p == 0.3


def test_variance_shift_appears_behind_dropout_and_recalibration_removes_it():
    torch.manual_seed(0)
    model = models.mlp(20, 3, hidden=(32, 32), norm="batch", dropout=0.5)
    x = torch.randn(512, 20)
    model.train()
    with torch.no_grad():
        for _ in range(60):  # let the running statistics converge on training-mode inputs
            model(x)
    before = [layer.shift for layer in train.bn_input_variances(model, x)]
    assert before[0] == pytest.approx(1.0, abs=0.1)  # no dropout in front of BN 1
    assert before[1] > 1.3  # BN 2 stored the larger training variance
    running_var = model[6].running_var.clone()
    train.bn_input_variances(model, x)
    assert torch.equal(model[6].running_var, running_var)  # measuring does not train
    train.recalibrate_batchnorm(model, x)
    after = [layer.shift for layer in train.bn_input_variances(model, x)]
    assert after[1] == pytest.approx(1.0, abs=0.05)
    assert not model.training and model[2].momentum == 0.1


def test_plot_variance_shift_has_three_bars_per_layer():
    layers = [train.BatchNormInputVariance(0, 1.0, 1.0, 1.0), train.BatchNormInputVariance(1, 2.0, 1.0, 2.0)]
    fig = variants.plot_variance_shift({"a": layers, "b": layers})
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 6
    assert layers[1].shift == 2.0


def test_with_recalibrated_batchnorm_keeps_the_weights_and_the_originals(digits):
    build = lambda: models.mlp(64, 10, hidden=(16, 16), norm="batch", dropout=0.5)  # noqa: E731
    runs = train.compare_conditions({"d": build}, digits, seeds=(0,), epochs=1)["d"]
    original = runs[0].model
    running_var = original[6].running_var.clone()
    (recalibrated,) = train.with_recalibrated_batchnorm(runs, digits)
    assert torch.equal(original[6].running_var, running_var)
    assert torch.equal(recalibrated.model[1].weight, original[1].weight)
    assert not torch.equal(recalibrated.model[6].running_var, running_var)
    assert 0.0 <= recalibrated.test_acc <= 1.0
