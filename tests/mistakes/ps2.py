"""ps2's planted mistakes: each edits one solution cell of the source and names the
test cells it must lose (all others keep full points); `category` marks the mistakes that
exercise a category of hidden tests (support.CATEGORIES). `NOT_APPLICABLE` says, for a
graded function and a category, why the category cannot apply."""

from support import mistake

MISTAKES = [
    mistake("path through the variance forgotten (hidden by all-ones dout)", "ps2_backward",
            "dx = dxhat * inv_std + dvar * 2.0 * (x - mu) / m + dmu / m", "dx = dxhat * inv_std + dmu / m",
            {"ps2_test_backward_dx_2d", "ps2_test_backward_dx_4d"}),
    mistake("4-D: m = N", "ps2_backward", "m = x.size // x.shape[1]", "m = x.shape[0]",
            {"ps2_test_backward_dx_4d"}, True),
    mistake("dgamma from x instead of xhat", "ps2_backward",
            "dgamma = (dout * xhat).sum(axis=axes)", "dgamma = (dout * x).sum(axis=axes)",
            {"ps2_test_backward_params"}),
    mistake("4-D: parameter gradients summed over axis 0 only", "ps2_backward",
            "dbeta = dout.sum(axis=axes)\n    dgamma = (dout * xhat).sum(axis=axes)",
            "dbeta = dout.sum(axis=0)\n    dgamma = (dout * xhat).sum(axis=0)", {"ps2_test_backward_params"}),
    mistake("dvar with (var + eps)^(-1/2) instead of ^(-3/2)", "ps2_backward",
            "* -0.5 * inv_std**3", "* -0.5 * inv_std",
            {"ps2_test_backward_dx_2d", "ps2_test_backward_dx_4d"}),
    mistake("gamma forgotten in dxhat", "ps2_backward",
            "dxhat = dout * gamma.reshape(per_feature)", "dxhat = dout",
            {"ps2_test_backward_dx_2d", "ps2_test_backward_dx_4d"}),
    mistake("wrong sign in dmu", "ps2_backward", "np.sum(-dxhat * inv_std,", "np.sum(dxhat * inv_std,",
            {"ps2_test_backward_dx_2d", "ps2_test_backward_dx_4d"}),
    mistake("dout scaled in place into dxhat (the issue's example)", "ps2_backward",
            "dxhat = dout * gamma.reshape(per_feature)", "dxhat = dout\n    dxhat *= gamma.reshape(per_feature)",
            {"ps2_test_backward_params", "ps2_test_backward_dx_2d", "ps2_test_backward_dx_4d"}, category="in_place"),
    mistake("dx by finite differences (normlab.gradcheck)", "ps2_backward",
            "dx = dxhat * inv_std + dvar * 2.0 * (x - mu) / m + dmu / m",
            "dx = numerical_gradient(lambda v: batchnorm_forward(v, gamma, 0 * gamma, eps)[0], x.copy(), dout)",
            {"ps2_test_backward_params", "ps2_test_backward_dx_2d", "ps2_test_backward_dx_4d"}, category="forbidden"),
    mistake("eps of the cache ignored (1e-5 hard-coded)", "ps2_backward",
            "inv_std = 1.0 / np.sqrt(var + eps)", "inv_std = 1.0 / np.sqrt(var + 1e-5)",
            {"ps2_test_backward_dx_2d", "ps2_test_backward_dx_4d"}, category="edge_case"),
    mistake("closed form: the cache's xhat scaled in place", "ps2_backward_fast",
            "dx = scale * (m * dout - dbeta.reshape(per_feature) - xhat * dgamma.reshape(per_feature))",
            "xhat *= dgamma.reshape(per_feature)\n    dx = scale * (m * dout - dbeta.reshape(per_feature) - xhat)",
            {"ps2_test_fast_2d", "ps2_test_fast_4d"}, category="in_place"),
    mistake("closed form from normlab.functional", "ps2_backward_fast",
            "    return dx, dgamma, dbeta\n",
            "    from normlab import functional\n"
            "    return functional.batchnorm_backward_fast(dout, functional.batchnorm_forward(x, gamma, 0 * gamma, eps)[1])\n",
            {"ps2_test_fast_2d", "ps2_test_fast_4d"}, category="forbidden"),
    mistake("closed form: eps of the cache ignored (1e-5 hard-coded)", "ps2_backward_fast",
            "np.sqrt(var + eps)", "np.sqrt(var + 1e-5)", {"ps2_test_fast_2d", "ps2_test_fast_4d"},
            category="edge_case"),
    mistake("all-ones upstream gradient", "ps2_gradient_check",
            "dout = np.random.default_rng(seed).standard_normal(out.shape)", "dout = np.ones(out.shape)",
            {"ps2_test_gradient_check"}, True),
    mistake("the caller's x perturbed in place by hand (np.asarray made no copy; x + h - 2h + h rounds)",
            "ps2_gradient_check", "np.array(value, dtype=np.float64)", "np.asarray(value, dtype=np.float64)",
            {"ps2_test_gradient_check"}, category="in_place",
            more=(("        numerical = numerical_gradient(f, inputs[name].copy(), dout, h)\n",
                   "        value = inputs[name]\n"
                   "        numerical = np.zeros_like(value)\n"
                   "        for i in np.ndindex(value.shape):\n"
                   "            value[i] += h\n"
                   "            plus = np.sum(f(value) * dout)\n"
                   "            value[i] -= 2 * h\n"
                   "            minus = np.sum(f(value) * dout)\n"
                   "            value[i] += h\n"
                   "            numerical[i] = (plus - minus) / (2 * h)\n"),)),
    mistake("the course library's check_layer", "ps2_gradient_check", "    errors = {}\n",
            "    from normlab.gradcheck import check_layer\n"
            "    reports = check_layer(forward, backward, inputs, seed=seed, h=h)\n"
            "    return {report.name: report.rel_error for report in reports}\n"
            "    errors = {}\n", {"ps2_test_gradient_check"}, category="forbidden"),
    mistake("seed ignored (default_rng(0))", "ps2_gradient_check", "np.random.default_rng(seed)",
            "np.random.default_rng(0)", {"ps2_test_gradient_check"}, category="edge_case"),
    mistake("upstream gradient drawn in x's shape, not out's", "ps2_gradient_check", "standard_normal(out.shape)",
            'standard_normal(inputs["x"].shape)', {"ps2_test_gradient_check"}, category="edge_case"),
    mistake("staged backward computes in float32 (correct)", "ps2_backward", "    m = x.size // x.shape[1]\n",
            "    x, xhat, mu, var, gamma, dout = (np.asarray(a, dtype=np.float32)\n"
            "                                     for a in (x, xhat, mu, var, gamma, dout))\n"
            "    m = x.size // x.shape[1]\n", set(), category="float32"),
    mistake("closed form computes in float32 (correct)", "ps2_backward_fast", "    m = x.size // x.shape[1]\n",
            "    x, xhat, var, gamma, dout = (np.asarray(a, dtype=np.float32) for a in (x, xhat, var, gamma, dout))\n"
            "    m = x.size // x.shape[1]\n", set(), category="float32"),
    mistake("float32 inputs kept", "ps2_gradient_check",
            "np.array(value, dtype=np.float64)", "np.array(value)", {"ps2_test_gradient_check"},
            category="float32"),
    mistake("closed form without gamma", "ps2_backward_fast",
            "scale = gamma.reshape(per_feature) / (m * np.sqrt(var + eps))",
            "scale = 1.0 / (m * np.sqrt(var + eps))", {"ps2_test_fast_2d", "ps2_test_fast_4d"}),
    mistake("closed form: wrong sign of the xhat term", "ps2_backward_fast",
            "- xhat * dgamma.reshape(per_feature)", "+ xhat * dgamma.reshape(per_feature)",
            {"ps2_test_fast_2d", "ps2_test_fast_4d"}),
    mistake("closed form without eps", "ps2_backward_fast", "np.sqrt(var + eps)", "np.sqrt(var)",
            {"ps2_test_fast_2d", "ps2_test_fast_4d"}),
    mistake("closed form, 4-D: m = N", "ps2_backward_fast", "m = x.size // x.shape[1]", "m = x.shape[0]",
            {"ps2_test_fast_4d"}, True),
    mistake("size 2: d var / d a_i = 2 a_i (the 1/2 forgotten)", "ps2_sympy",
            "+ dL_dvar * a1", "+ dL_dvar * 2 * a1", {"ps2_test_sympy_dx", "ps2_test_sympy_limit"}, True,
            more=(("+ dL_dvar * a2", "+ dL_dvar * 2 * a2"),)),
    mistake("size 2: unbiased variance (divide by n - 1 = 1)", "ps2_sympy",
            "var = (a1**2 + a2**2) / 2", "var = a1**2 + a2**2", {"ps2_test_sympy_dx", "ps2_test_sympy_params"},
            more=(("+ dL_dvar * a1", "+ dL_dvar * 2 * a1"), ("+ dL_dvar * a2", "+ dL_dvar * 2 * a2"))),
    mistake("size 2: path through mu forgotten", "ps2_sympy",
            "dL_dx1 = sp.simplify(dL_da1 + dL_dmu / 2)\ndL_dx2 = sp.simplify(dL_da2 + dL_dmu / 2)",
            "dL_dx1 = sp.simplify(dL_da1)\ndL_dx2 = sp.simplify(dL_da2)",
            {"ps2_test_sympy_dx", "ps2_test_sympy_limit"}),
    mistake("size 2: wrong sign of dL/dvar", "ps2_sympy",
            "(-sp.Rational(1, 2))", "sp.Rational(1, 2)", {"ps2_test_sympy_dx", "ps2_test_sympy_limit"}),
    mistake("size 2: dgamma from a instead of p", "ps2_sympy",
            "dL_dgamma = g1 * p1 + g2 * p2", "dL_dgamma = g1 * a1 + g2 * a2", {"ps2_test_sympy_params"}),
    mistake("size 2: dbeta averaged", "ps2_sympy", "dL_dbeta = g1 + g2", "dL_dbeta = (g1 + g2) / 2",
            {"ps2_test_sympy_params"}),
    mistake("size 2: limit not taken", "ps2_sympy",
            'dL_dx1_limit = sp.limit(dL_dx1, epsilon, 0, "+")', "dL_dx1_limit = dL_dx1",
            {"ps2_test_sympy_limit"}),
    mistake("q_all_ones wrong", "ps2_q_all_ones", '\nq_all_ones = "b"', '\nq_all_ones = "a"',
            {"ps2_test_q_all_ones"}),
    mistake("q_sum_zero wrong", "ps2_q_sum_zero", '\nq_sum_zero = "b"', '\nq_sum_zero = "a"',
            {"ps2_test_q_sum_zero"}),
    mistake("q_eps_limit wrong", "ps2_q_eps_limit", '\nq_eps_limit = "a"', '\nq_eps_limit = "b"',
            {"ps2_test_q_eps_limit"}),
]

NOT_APPLICABLE: dict[tuple[str, str], str] = {}
