"""normlab.gradcheck: it must pass correct gradients and catch wrong ones."""

import numpy as np
import pytest

from normlab import functional as F
from normlab.gradcheck import check_layer, compare, numerical_gradient, rel_error


def test_rel_error_scale():
    assert rel_error(np.ones(3), np.ones(3)) == 0
    assert rel_error([1.0, 2.0], [1.0, 2.0 + 1e-6]) == pytest.approx(1e-6 / 4.000001, rel=1e-6)
    with pytest.raises(ValueError, match="shapes"):
        rel_error(np.ones(3), np.ones(4))


def test_numerical_gradient_of_a_known_function(rng):
    x = rng.normal(size=(3, 4))
    dout = rng.normal(size=(3, 4))
    grad = numerical_gradient(lambda v: np.sin(v) * v, x.copy(), dout)
    np.testing.assert_allclose(grad, dout * (np.cos(x) * x + np.sin(x)), rtol=1e-7, atol=1e-9)


def test_check_layer_passes_a_correct_backward_and_names_the_worst_entry_of_a_wrong_one(rng):
    inputs = {"x": rng.normal(size=(5, 3)), "gamma": rng.normal(size=3), "beta": rng.normal(size=3)}
    good = check_layer(F.batchnorm_forward, F.batchnorm_backward_fast, inputs)
    assert [r.passed for r in good] == [True, True, True]
    assert max(r.rel_error for r in good) < 1e-7

    def forgot_the_mean_path(dout, cache):  # a plausible mistake: dx = dout * gamma / std only
        _, dgamma, dbeta = F.batchnorm_backward_fast(dout, cache)
        return dout * cache.gamma * cache.inv_std, dgamma, dbeta

    bad = check_layer(F.batchnorm_forward, forgot_the_mean_path, inputs)
    assert not bad[0].passed and bad[1].passed and bad[2].passed
    assert bad[0].rel_error > 1e-2
    assert "MISMATCH" in str(bad[0]) and "worst entry (" in str(bad[0])


def test_compare_reports_the_worst_index():
    analytic = np.array([[1.0, 2.0], [3.0, 4.0]])
    numerical = analytic.copy()
    numerical[1, 0] = 3.5
    report = compare("dx", analytic, numerical)
    assert report.worst_index == (1, 0) and report.analytic == 3.0 and report.numerical == 3.5


def test_integer_input_is_refused():
    with pytest.raises(ValueError, match="floating-point"):
        numerical_gradient(lambda v: v, np.arange(3), np.ones(3))
