"""Tests of normlab.plots.graphs: the drawn BN graph, the gradient-vs-epsilon measurement,
running-average curves and their figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from normlab import train  # noqa: E402
from normlab.plots import graphs  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- the computational graph


@pytest.mark.parametrize("n", [2, 3, 5])
def test_graph_has_the_sheets_nodes_and_edges(n):
    nodes, edges = graphs.batchnorm_graph_structure(n)
    assert len(nodes) == 4 * n + 5
    assert len(edges) == 10 * n == len(set(edges))
    assert all(s in nodes and t in nodes for s, t in edges)
    # every input reaches every output through mu and sigma^2: BN is not elementwise
    for i in range(1, n + 1):
        assert {f"y_{j}" for j in range(1, n + 1)} <= graphs.descendants(edges, f"x_{i}")
    # the parameters reach the outputs directly, and nothing flows back into the inputs
    assert graphs.descendants(edges, "gamma") == {f"y_{j}" for j in range(1, n + 1)} | {"L"}
    assert not any(t.startswith("x_") for _, t in edges)


def test_graph_refuses_a_batch_of_one():
    with pytest.raises(ValueError, match="at least 2"):
        graphs.batchnorm_graph_structure(1)


def test_drawing_has_one_box_per_node_and_one_arrow_per_edge():
    fig = graphs.draw_batchnorm_graph(2)
    ax = fig.axes[0]
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 13  # one per node (4 n + 5)
    assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) == 20
    labels = {t.get_text() for t in ax.texts}
    assert {r"$g_1$", r"$g_2$", r"$\sigma^2$", r"$\mu$"} <= labels


def test_highlight_marks_every_route_from_x1_and_none_from_x2():
    fig = graphs.draw_batchnorm_graph(2, highlight="x_1")
    highlighted = set(graphs.influence_edges(2, "x_1"))
    assert ("x_1", "mu") in highlighted and ("mu", "a_2") in highlighted  # x_1 reaches y_2
    assert ("sigma2", "p_2") in highlighted and ("y_2", "L") in highlighted
    assert ("x_2", "a_2") not in highlighted and ("gamma", "y_1") not in highlighted
    red = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)
           and matplotlib.colors.to_hex(p.get_edgecolor()) == "#c00000"]
    assert len(red) == len(highlighted) == 14
    with pytest.raises(ValueError, match="unknown node"):
        graphs.draw_batchnorm_graph(2, highlight="z_9")


# ---------------------------------------------------------------- gradient vs epsilon


def test_two_sample_gradient_vanishes_with_eps_but_larger_batches_keep_theirs():
    eps = np.array([1e-1, 1e-3, 1e-5, 1e-7])
    two = graphs.input_gradient_ratio(2, eps, trials=300)
    eight = graphs.input_gradient_ratio(8, eps, trials=300)
    assert np.all(np.diff(two) < 0) and two[-1] < 1e-5  # ~ 4 eps / |d|^3 -> 0
    assert np.all(eight > 0.7)  # about sqrt(6/8) / sigma: most of the gradient survives
    assert eight[-1] / eight[1] == pytest.approx(1.0, rel=1e-3)  # flat once eps << sigma^2


def test_two_sample_ratio_matches_the_closed_form():
    rng = np.random.default_rng(0)  # the same draws as input_gradient_ratio(seed=0)
    x, g = rng.standard_normal((2, 50)), rng.standard_normal((2, 50))
    eps = 1e-3
    d = x[0] - x[1]
    exact = 4 * np.sqrt(2) * eps * np.abs(g[0] - g[1]) / ((4 * eps + d**2) ** 1.5 * np.linalg.norm(g, axis=0))
    assert graphs.input_gradient_ratio(2, [eps], trials=50)[0] == pytest.approx(np.median(exact))


def test_gradient_plot_has_one_line_per_batch_size():
    eps = np.logspace(-6, 0, 4)
    fig = graphs.plot_input_gradient_vs_eps(eps, {n: graphs.input_gradient_ratio(n, eps, trials=20)
                                                  for n in (2, 8)})
    labels = [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["n = 2", "n = 8"]


# ---------------------------------------------------------------- running averages


def test_running_average_curve_is_pytorchs_update():
    curve = graphs.running_average_curve([2.0, 4.0, 3.0], momentum=0.1, initial=0.0)
    np.testing.assert_allclose(curve, [0.2, 0.58, 0.822])
    # Keras' momentum 0.99 is PyTorch's 0.01; momentum 1 keeps only the last batch
    assert graphs.running_average_curve([5.0, 7.0], momentum=1.0)[-1] == 7.0
    with pytest.raises(ValueError, match="momentum"):
        graphs.running_average_curve([1.0], momentum=0.0)


def test_running_average_forgets_its_start_at_rate_one_minus_momentum():
    steps = 100
    for momentum in (0.1, 0.01):
        curve = graphs.running_average_curve(np.full(steps, 3.0), momentum, initial=0.0)
        assert curve[-1] == pytest.approx(3.0 * (1 - (1 - momentum) ** steps))


def test_running_average_plot_draws_batches_curves_and_target():
    values = np.linspace(0, 1, 10)
    curves = {"a": graphs.running_average_curve(values, 0.1), "b": graphs.running_average_curve(values, 0.5)}
    fig = graphs.plot_running_averages(values, curves, target=0.5)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["batch statistic", "a", "b", "population value"]
    np.testing.assert_allclose(fig.axes[0].get_lines()[2].get_ydata(), curves["b"])


def test_running_vs_population_plot_has_a_panel_per_statistic_with_log_variance():
    rng = np.random.default_rng(0)
    mean, var = rng.normal(size=20), rng.uniform(0.5, 2, size=20)
    fig = graphs.plot_running_vs_population({"mean": mean + 0.01, "variance": var * 1.1},
                                            {"mean": mean, "variance": var})
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xscale() == "linear" and fig.axes[1].get_yscale() == "log"
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), var * 1.1)


# ---------------------------------------------------------------- the forgotten eval()


def _tiny_model(norm=True):
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers = [nn.Linear(4, 8, bias=not norm)] + ([nn.BatchNorm1d(8)] if norm else []) + [nn.ReLU(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def _data(n=21):
    import torch

    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=generator) * 3 + 1, torch.randint(0, 3, (n,), generator=generator)


def test_train_mode_accuracy_leaves_the_model_alone_and_uses_batch_statistics():
    import torch

    model, (x, y) = _tiny_model().eval(), _data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    whole_batch = train.train_mode_accuracy(model, x, y, batch_size=len(x))
    with torch.no_grad():
        expected = (_tiny_model().train()(x).argmax(1) == y).float().mean().item()
    assert whole_batch == pytest.approx(expected)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert 0 <= train.train_mode_accuracy(model, x, y, batch_size=4) <= 1  # 21 = 5*4 + 1: last joined
    with pytest.raises(ValueError, match="at least 2"):
        train.train_mode_accuracy(model, x, y, batch_size=1)


def test_without_batch_norm_the_batch_does_not_matter():
    import torch

    model, (x, y) = _tiny_model(norm=False), _data()
    accuracies = {train.train_mode_accuracy(model, x, y, b) for b in (2, 5, 21)}
    assert len(accuracies) == 1
    rows = train.batch_mates_probabilities(model, x[:1], x[1:], batch_size=5, trials=4)
    torch.testing.assert_close(rows, rows[:1].expand_as(rows))


def test_batch_mates_change_a_bn_models_prediction_but_not_its_state():
    import torch

    model, (x, _) = _tiny_model().eval(), _data()
    before = model[1].running_mean.clone()
    rows = train.batch_mates_probabilities(model, x[:1], x[1:], batch_size=4, trials=6, seed=3)
    assert rows.shape == (6, 3)
    torch.testing.assert_close(rows.sum(1), torch.ones(6))
    assert (rows.max(0).values - rows.min(0).values).max() > 1e-3  # the batch mates matter
    assert torch.equal(model[1].running_mean, before) and not model.training
