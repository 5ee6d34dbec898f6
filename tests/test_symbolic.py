"""Tests of normlab.symbolic: the SymPy derivation of batch norm's backward pass."""

import time

import pytest
import sympy as sp

from normlab import symbolic as S

G2 = S.batchnorm_graph(2)
(x1, x2), (g1, g2) = G2.x, G2.g
gamma, beta, eps = G2.gamma, G2.beta, G2.eps
d = x1 - x2
TEXTBOOK_DX1 = 4 * eps * gamma * (g1 - g2) / (4 * eps + d**2) ** sp.Rational(3, 2)


@pytest.fixture(scope="module")
def grads2():
    return S.batchnorm_gradients(2)


def _dx1_with_unbiased_variance():
    """The same graph but sigma^2 = sum a_i^2 / (n - 1): a plausible wrong derivation."""
    var_unbiased = sum(a_i**2 for a_i in G2.a) / (G2.n - 1)
    y = [gamma * a_i / sp.sqrt(var_unbiased + eps) + beta for a_i in G2.a]
    return sp.diff(sum(g_i * y_i for g_i, y_i in zip(G2.g, y)), x1)


# ---------------------------------------------------------------- the graph and n = 2


def test_graph_matches_the_sheet():
    assert S.is_equivalent(G2.mu, (x1 + x2) / 2)
    assert S.is_equivalent(G2.var, d**2 / 4)
    assert S.is_equivalent(G2.p[0], d / sp.sqrt(d**2 + 4 * eps))
    assert S.is_equivalent(G2.loss, g1 * G2.y[0] + g2 * G2.y[1])


def test_two_sample_gradients_are_the_textbook_forms(grads2):
    textbook = S.two_sample_textbook_forms()
    assert S.is_equivalent(textbook.dx[0], TEXTBOOK_DX1)
    for got, want in zip([*grads2.dx, grads2.dgamma, grads2.dbeta],
                         [*textbook.dx, textbook.dgamma, textbook.dbeta]):
        assert S.is_equivalent(got, want)
    assert sp.simplify(grads2.dx[0] - TEXTBOOK_DX1) == 0  # simplify alone gets there
    assert grads2.dbeta == g1 + g2


def test_unsimplified_gradients_are_the_textbook_forms_too():
    raw, textbook = S.batchnorm_gradients(2, simplify=False), S.two_sample_textbook_forms()
    assert S.is_equivalent(raw.dx[0], textbook.dx[0])
    assert S.is_equivalent(raw.dgamma, textbook.dgamma)


def test_input_gradients_sum_to_zero(grads2):
    assert sp.simplify(grads2.dx[0] + grads2.dx[1]) == 0
    assert S.is_equivalent(sum(S.batchnorm_gradients(3, simplify=False).dx), 0)


def test_two_sample_forms_are_wrong_if_derived_for_the_wrong_input(grads2):
    assert not S.is_equivalent(grads2.dx[1], TEXTBOOK_DX1)


# ---------------------------------------------------------------- epsilon -> 0


def test_input_gradient_vanishes_as_eps_goes_to_zero(grads2):
    assert S.limit_eps_to_zero(grads2.dx[0]) == 0
    assert S.limit_eps_to_zero(grads2.dx[1]) == 0


def test_eps_to_zero_outputs_are_plus_minus_gamma_plus_beta():
    # p_1 -> sign(x_1 - x_2): y no longer depends on the size of x at all.
    assert S.is_equivalent(S.limit_eps_to_zero(G2.p[0]), sp.sign(d))
    assert S.is_equivalent(S.limit_eps_to_zero(G2.y[1]), -gamma * sp.sign(d) + beta)


def test_dgamma_tends_to_the_sign_and_simplify_alone_cannot_show_it(grads2):
    limit = S.limit_eps_to_zero(grads2.dgamma)  # (g1-g2)(x1-x2)/sqrt(x1^2 - 2x1x2 + x2^2)
    assert sp.simplify(limit - (g1 - g2) * sp.sign(d)) != 0  # so the numeric fallback decides
    assert S.is_equivalent(limit, (g1 - g2) * sp.sign(d))
    assert not S.is_equivalent(limit, g1 - g2)


def test_equal_inputs_blow_up_like_one_over_sqrt_eps(grads2):
    at_equal = grads2.dx[0].subs(x1, x2)
    assert S.is_equivalent(at_equal, gamma * (g1 - g2) / (2 * sp.sqrt(eps)))
    assert S.limit_eps_to_zero(at_equal) == sp.oo * sp.sign(gamma * (g1 - g2))


def test_three_samples_keep_a_gradient_at_eps_zero():
    point = dict(zip(S.batchnorm_graph(3).x + S.batchnorm_graph(3).g, [0, 1, 3, 1, -2, 5]))
    point[gamma] = 1
    dx1 = S.closed_form_dx(3)[0].subs(point)
    assert S.limit_eps_to_zero(dx1) != 0  # unlike n = 2, where sigma is |x1 - x2| / 2


# ---------------------------------------------------------------- is_equivalent, as a grader


def _student_symbols():
    """Plain symbols, as a student might type them: no assumptions."""
    return sp.symbols("x_1 x_2 g_1 g_2 gamma epsilon")


def _staged_chain_rule_dx1():
    """dL/dx1 assembled node by node as in the sheet: through p, sigma^2 and mu."""
    s = sp.sqrt(G2.var + eps)
    dp = [gamma * g1, gamma * g2]
    dvar = sum(dp_i * a_i for dp_i, a_i in zip(dp, G2.a)) * sp.Rational(-1, 2) / s**3
    dmu = -sum(dp) / s + dvar * sum(-2 * a_i for a_i in G2.a) / 2
    return dp[0] / s + dvar * 2 * G2.a[0] / 2 + dmu / 2


def _rearranged_correct_forms():
    X1, X2, G1, G2_, GAM, EPS = _student_symbols()
    return {
        "negative power": 4 * eps * gamma * (g1 - g2) * (4 * eps + d**2) ** sp.Rational(-3, 2),
        "in sigma^2 + eps": gamma * (g1 - g2) * eps / (2 * (eps + d**2 / 4) ** sp.Rational(3, 2)),
        "x2 - x1": -4 * eps * gamma * (g2 - g1) / ((x2 - x1) ** 2 + 4 * eps) ** sp.Rational(3, 2),
        "expanded": (4 * eps * gamma * g1 - 4 * eps * gamma * g2)
        / ((4 * eps + x1**2 - 2 * x1 * x2 + x2**2) * sp.sqrt(4 * eps + x1**2 - 2 * x1 * x2 + x2**2)),
        "floats": 0.5 * gamma * (g1 - g2) * eps * (eps + 0.25 * d**2) ** -1.5,
        "staged chain rule": _staged_chain_rule_dx1(),
        "closed form": S.closed_form_dx(2)[0],
        "plain symbols": 4 * EPS * GAM * (G1 - G2_) / (4 * EPS + (X1 - X2) ** 2) ** sp.Rational(3, 2),
    }


def _plausible_wrong_forms():
    X1, X2, G1, G2_, GAM, EPS = _student_symbols()
    return {
        "missing eps": 4 * gamma * (g1 - g2) / (d**2) ** sp.Rational(3, 2),
        "eps only in the numerator": 4 * eps * gamma * (g1 - g2) / sp.Abs(d) ** 3,
        "wrong sign": -TEXTBOOK_DX1,
        "2 eps instead of 4 eps": 4 * eps * gamma * (g1 - g2) / (2 * eps + d**2) ** sp.Rational(3, 2),
        "2 eps in the numerator": 2 * eps * gamma * (g1 - g2) / (4 * eps + d**2) ** sp.Rational(3, 2),
        "power 1/2 not 3/2": 4 * eps * gamma * (g1 - g2) / sp.sqrt(4 * eps + d**2),
        "unbiased variance, derived": _dx1_with_unbiased_variance(),
        "unbiased variance, typed": sp.sqrt(2) * eps * gamma * (g1 - g2) / (2 * eps + d**2) ** sp.Rational(3, 2),
        "no mean or variance path": gamma * g1 / sp.sqrt(G2.var + eps),
        "missing gamma": 4 * eps * (g1 - g2) / (4 * eps + d**2) ** sp.Rational(3, 2),
        "x1 + x2 typo": 4 * eps * gamma * (g1 - g2) / (4 * eps + (x1 + x2) ** 2) ** sp.Rational(3, 2),
        "plain symbols, wrong sign": 4 * EPS * GAM * (G2_ - G1) / (4 * EPS + (X1 - X2) ** 2) ** sp.Rational(3, 2),
    }


@pytest.mark.parametrize("name", list(_rearranged_correct_forms()))
def test_is_equivalent_accepts_correct_forms(name):
    assert S.is_equivalent(_rearranged_correct_forms()[name], TEXTBOOK_DX1)
    assert S.is_equivalent(TEXTBOOK_DX1, _rearranged_correct_forms()[name])


@pytest.mark.parametrize("name", list(_plausible_wrong_forms()))
def test_is_equivalent_rejects_wrong_forms(name):
    assert not S.is_equivalent(_plausible_wrong_forms()[name], TEXTBOOK_DX1)
    assert not S.is_equivalent(TEXTBOOK_DX1, _plausible_wrong_forms()[name])


def test_is_equivalent_on_the_other_gradients():
    textbook = S.two_sample_textbook_forms()
    assert S.is_equivalent((x2 - x1) * (g2 - g1) / sp.sqrt(4 * eps + d**2), textbook.dgamma)
    assert S.is_equivalent(sum(g_i * p_i for g_i, p_i in zip(G2.g, G2.p)), textbook.dgamma)
    assert not S.is_equivalent((g1 - g2) * sp.sign(d), textbook.dgamma)  # the eps = 0 value
    assert not S.is_equivalent((g1 - g2) * d / sp.sqrt(2 * eps + d**2), textbook.dgamma)
    assert S.is_equivalent(g2 + g1, textbook.dbeta)
    assert not S.is_equivalent((g1 + g2) / 2, textbook.dbeta)
    assert S.is_equivalent(0, 0) and not S.is_equivalent(1, 0)


def test_is_equivalent_refuses_what_it_cannot_evaluate():
    assert not S.is_equivalent(sp.Function("f")(x1), TEXTBOOK_DX1)


# ---------------------------------------------------------------- the closed form for general n


def test_closed_form_matches_the_two_sample_answer():
    assert S.is_equivalent(S.closed_form_dx(2)[0], TEXTBOOK_DX1)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_closed_form_equals_autodiff(n):
    start = time.perf_counter()
    assert S.check_closed_form(n)
    assert time.perf_counter() - start < 10


def test_closed_form_check_fails_for_a_wrong_closed_form(monkeypatch):
    def without_the_variance_term(n):
        G = S.batchnorm_graph(n)
        return [G.gamma / (n * sp.sqrt(G.var + G.eps)) * (n * g_i - sum(G.g)) for g_i in G.g]

    monkeypatch.setattr(S, "closed_form_dx", without_the_variance_term)
    assert not S.check_closed_form(3)


# ---------------------------------------------------------------- against torch autograd


@pytest.mark.parametrize("n", [2, 3, 5])
def test_symbolic_gradients_match_torch_autograd(n):
    assert S.check_against_autograd(n, trials=20, seed=n) < 1e-10


def test_simplified_two_sample_gradients_match_torch_autograd():
    assert S.check_against_autograd(2, trials=20, seed=7, simplify=True) < 1e-10


def test_autograd_check_catches_wrong_gradients(monkeypatch):
    right = S.batchnorm_gradients

    def unbiased_dx1(n, simplify=True):
        grads = right(n, simplify)
        return S.Gradients([_dx1_with_unbiased_variance(), grads.dx[1]], grads.dgamma, grads.dbeta)

    monkeypatch.setattr(S, "batchnorm_gradients", unbiased_dx1)
    assert S.check_against_autograd(2, trials=5, seed=0) > 1e-3
