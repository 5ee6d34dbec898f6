"""The assertions of the assignments' test cells: they pass quietly and fail with a message
that says what is wrong."""

import numpy as np
import pytest
import sympy as sp
import torch

from normlab import nn as nl
from normlab.grading_helpers import (assert_choice, assert_choices, assert_close, assert_equivalent,
                                     assert_expression, assert_no_torch_calls, assert_shape, checked_call,
                                     assert_gradients_close, describe_mismatch, gradient_table, hint_if,
                                     substitute)


def fails_with(call, *args, **kwargs):
    with pytest.raises(AssertionError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_close_arrays_pass():
    assert describe_mismatch([1.0, 2.0], np.array([1.0, 2.0 + 1e-12])) is None
    assert_close(np.ones((2, 3)), np.ones((2, 3)), "out")


def test_message_names_the_first_differing_entry():
    got = np.array([[1.0, 2.0], [3.0, 4.5]])
    message = fails_with(assert_close, got, [[1.0, 2.0], [3.0, 4.0]], "out", hint="divide by m")
    assert message.splitlines()[0] == "out[1, 1] should be 4 but is 4.5"
    assert "1 of 4 entries differ" in message and "hint: divide by m" in message


def test_message_for_shape_none_and_nan():
    assert fails_with(assert_close, np.ones((3, 2)), np.ones((2, 3)), "dx") == \
        "dx has shape (3, 2) but should have shape (2, 3)"
    assert "did you forget a `return`" in fails_with(assert_close, None, [1.0], "out")
    assert "NaN or infinite" in fails_with(assert_close, [1.0, np.nan], [1.0, 2.0], "z")
    assert "should be an array of numbers" in fails_with(assert_close, "abc", [1.0], "out")
    assert fails_with(assert_close, 2.0, 4.0, "kappa") == "kappa should be 4 but is 2"
    assert fails_with(assert_close, np.inf, 4.0, "kappa").startswith("kappa is inf: a division by zero")
    assert fails_with(assert_shape, np.ones(3), (3, 1), "gamma") == "gamma has shape (3,) but should have shape (3, 1)"


def test_torch_tensors_are_accepted():
    assert_close(torch.ones(2, dtype=torch.float64, requires_grad=True), [1.0, 1.0], "out")


def test_choice():
    assert assert_choice(" (B) ", "abcd") == "b"
    assert "one of 'a', 'b', 'c', 'd'" in fails_with(assert_choice, "e", "abcd", "q1")
    assert 'a letter in quotes' in fails_with(assert_choice, 2, "abcd", "q1")
    assert assert_choices("a, c", "abcd") == frozenset("ac")
    assert assert_choices({"B", "d"}, "abcd") == frozenset("bd")
    assert "empty" in fails_with(assert_choices, [], "abcd", "q2")


def test_expression_symbols_are_checked_by_name():
    x = sp.Symbol("x_1")
    allowed = {"x_1": "x1", "epsilon": "epsilon"}
    assert assert_expression(x**2 + sp.Symbol("epsilon", positive=True), allowed, "e") is not None
    message = fails_with(assert_expression, sp.Symbol("x1") + x, allowed, "dL_dx1")
    assert "uses the symbol(s) x1" in message and "build it from x1, epsilon" in message
    assert "unevaluated" in fails_with(assert_expression, sp.Derivative(x**2, x), allowed, "d")
    assert "SymPy expression" in fails_with(assert_expression, "x_1", allowed, "d")


def test_equivalent_accepts_any_correct_form_and_names_a_point():
    eps, x1, x2 = sp.Symbol("epsilon", positive=True), sp.Symbol("x_1", real=True), sp.Symbol("x_2")
    d = x1 - x2
    assert_equivalent(4 * eps / (4 * eps + d**2) ** sp.Rational(3, 2),
                      4 * eps / sp.sqrt(4 * eps + d**2) ** 3, "dx")
    message = fails_with(assert_equivalent, d, -d, "dx", hint="sign")
    assert message.startswith("dx is not the right expression: at x_1=3, x_2=1 it gives 2 but should give -2")
    assert "hint: sign" in message


def test_substitute_by_name():
    g1, g2 = sp.Symbol("g_1", real=True), sp.Symbol("g_2")
    assert substitute(g1 - g2, g_2=g1) == 0


def test_assert_no_torch_calls():
    """ps3's hidden tests' check that a module is written from scratch."""
    x = torch.randn(6, 3, 2, requires_grad=True)
    for layer in (torch.nn.BatchNorm1d(3), torch.nn.GroupNorm(3, 3), torch.nn.InstanceNorm1d(3)):
        with pytest.raises(AssertionError, match=r"calls torch\.nn\.functional\.\w+_norm"):
            assert_no_torch_calls(lambda: layer(x).sum().backward(), what="it")
    with pytest.raises(AssertionError, match="calls torch.native_batch_norm"):
        assert_no_torch_calls(lambda: torch.native_batch_norm(x, None, None, None, None, True, 0.1, 1e-5))
    with pytest.raises(AssertionError, match="your Dropout calls torch.nn.functional.dropout"):
        assert_no_torch_calls(lambda: torch.nn.Dropout(0.5)(x), forbidden=("dropout",), what="your Dropout")
    # the library's own modules pass what ps3's hidden tests ask (vector_norm is not a norm layer)
    for layer in (nl.BatchNorm(3), nl.GroupNorm(3, 3), nl.LayerNorm(2), nl.Dropout(0.5)):
        assert_no_torch_calls(lambda: layer(x).sum().backward(),
                              forbidden=("batch_norm", "layer_norm", "group_norm", "instance_norm", "dropout"))
    assert assert_no_torch_calls(lambda: 42) == 42


def test_checked_call_names_the_argument_modified_in_place():
    def center(x, y):
        x -= x.mean(axis=0)
        return x + y

    x, y = np.array([[1.0, 2.0], [3.0, 6.0]]), np.ones(2)
    message = fails_with(checked_call, center, x, y)
    assert message.startswith("test_checked_call_names_the_argument_modified_in_place.<locals>.center "
                              "modified its argument x in place (x[0, 0] was 1 and is now -1)")
    assert np.array_equal(x, [[1.0, 2.0], [3.0, 6.0]]), "the caller's array is never touched"
    assert np.array_equal(checked_call(center, x, y, may_change=("x",)), [[0.0, -1.0], [2.0, 3.0]])


def test_checked_call_looks_inside_dicts_and_tensors():
    def backward(dout, cache):
        cache["x"][0] = 0.0
        return dout

    cache = {"x": np.ones(3)}
    assert "cache['x'][0] was 1 and is now 0" in fails_with(checked_call, backward, np.ones(3), cache)
    assert cache["x"][0] == 1.0

    def scale(t):
        t.mul_(2)
        return t

    assert "t[0] was 1 and is now 2" in fails_with(checked_call, scale, torch.tensor([1.0, 2.0]))
    assert torch.equal(checked_call(lambda t: t * 2, torch.tensor([1.0, 2.0])), torch.tensor([2.0, 4.0]))


def test_forbidden_modules_are_caught_by_their_python_calls():
    from normlab import functional

    x = np.random.default_rng(0).normal(size=(4, 3))
    message = fails_with(assert_no_torch_calls, lambda: functional.batchnorm_forward(x, np.ones(3), np.zeros(3)),
                         forbidden=(), modules=("normlab.functional",), what="your batchnorm_forward")
    assert message.startswith("your batchnorm_forward calls normlab.functional.batchnorm_forward")
    assert assert_no_torch_calls(lambda: (x - x.mean(0)).sum(), forbidden=(), modules=("normlab.functional",)) \
        == pytest.approx(0.0)


def test_hint_only_where_the_output_is_the_mistakes():
    hint = "the biased variance, not ddof=1"
    assert hint_if(np.array([1.0, 2.0]) * np.sqrt(2.0), [1.4142136, 2.8284271], hint) == hint
    assert hint_if(np.array([1.0, 2.5]), [1.4142136, 2.8284271], hint) == ""  # another mistake: no hint
    assert hint_if(np.ones(3), [1.4142136, 2.8284271], hint) == ""  # another shape
    assert hint_if(None, [1.0], hint) == "" and hint_if("b", [1.0], hint) == ""


def test_forbidden_functions_by_name_and_rounding_changes_in_place():
    from normlab import gradcheck

    x = np.random.default_rng(1).normal(size=(3, 2))
    allowed = assert_no_torch_calls(lambda: gradcheck.rel_error(x, x), forbidden=(),
                                    functions=("normlab.gradcheck.check_layer",))
    assert allowed == 0.0
    message = fails_with(assert_no_torch_calls,
                         lambda: gradcheck.check_layer(lambda x: (2 * x, None), lambda d, c: (2 * d,), {"x": x}),
                         forbidden=(), functions=("normlab.gradcheck.check_layer",), what="your gradient_check")
    assert message.startswith("your gradient_check calls normlab.gradcheck.check_layer")

    def nudge(v):
        v[0] = np.nextafter(v[0], np.inf)

    message = fails_with(checked_call, nudge, np.array([0.1, 0.2]))
    assert "v[0] was 0.1 and is now 0.10000000000000002" in message


def test_gradient_table_and_assert_gradients_close():
    expected = {"a": np.array([1.0, 2.0]), "b": np.array([[3.0]])}
    got = {"a": np.array([1.0, 2.0 + 1e-12]), "b": np.array([[3.0]])}
    table = gradient_table(got, expected, ["a", "b"]).splitlines()
    assert table[1].split()[:3] == ["a", "False", "True"] and table[2].split()[:3] == ["b", "True", "True"]
    assert_gradients_close(got, expected, ["a", "b"])
    message = fails_with(assert_gradients_close, {"a": got["a"], "b": np.array([[4.0]])}, expected, ["a", "b"])
    assert message.splitlines()[0] == "gradients: db[0, 0] should be 3 but is 4"
    assert "b" in message.splitlines()[-1] and "False" in message.splitlines()[-1]
    assert fails_with(assert_gradients_close, {"a": got["a"]}, expected, ["a", "b"]).startswith(
        "gradients: no gradient for 'b'")
    assert "shape (2,), should be (1, 1)" in fails_with(assert_gradients_close, {"a": got["a"], "b": got["a"]},
                                                         expected, ["a", "b"])
    assert "should be a dict" in fails_with(assert_gradients_close, [1.0], expected, ["a"])
