"""ps1's planted mistakes: each edits one solution cell of the source and names the
test cells it must lose (all others keep full points); `category` marks the mistakes that
exercise a category of hidden tests (support.CATEGORIES). `NOT_APPLICABLE` says, for a
graded function and a category, why the category cannot apply."""

from support import mistake

BN = {"ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d"}
STANDARDIZE = {"ps1_test_standardize_train", "ps1_test_standardize_splits"}
IDENTITY_STATISTICS = "    beta = x.mean(axis=axes)\n    gamma = np.sqrt(x.var(axis=axes) + eps)\n"

MISTAKES = [
    mistake("kappa from singular values (np.linalg.cond(x))", "ps1_curvature",
            "return float(eigenvalues[-1] / eigenvalues[0])",
            "return float(np.sqrt(eigenvalues[-1] / eigenvalues[0]))", {"ps1_test_curvature"}, True),
    mistake("x @ x.T instead of x.T @ x", "ps1_curvature",
            "hessian = x.T @ x / x.shape[0]", "hessian = x @ x.T / x.shape[0]", {"ps1_test_curvature"}),
    mistake("centred covariance instead of x.T @ x / N", "ps1_curvature",
            "hessian = x.T @ x / x.shape[0]", "hessian = np.cov(x.T, bias=True)", {"ps1_test_curvature"}),
    mistake("x scaled in place by 1 / sqrt(N)", "ps1_curvature", "    hessian = x.T @ x / x.shape[0]\n",
            "    x /= np.sqrt(x.shape[0])\n    hessian = x.T @ x\n", {"ps1_test_curvature"}, category="in_place"),
    mistake("torch's eigvalsh", "ps1_curvature", "eigenvalues = np.linalg.eigvalsh(hessian)",
            "import torch\n    eigenvalues = torch.linalg.eigvalsh(torch.from_numpy(hessian)).numpy()",
            {"ps1_test_curvature"}, category="forbidden"),
    mistake("singular H: the smallest eigenvalue clipped at 1e-12 (a finite kappa, not inf)", "ps1_curvature",
            '    if eigenvalues[0] <= 0:\n        return float("inf")\n'
            "    return float(eigenvalues[-1] / eigenvalues[0])",
            "    return float(eigenvalues[-1] / max(eigenvalues[0], 1e-12))", {"ps1_test_curvature"},
            category="edge_case"),
    mistake("computes in float32 (too few digits for a large condition number)", "ps1_curvature",
            "    hessian = x.T @ x / x.shape[0]\n",
            "    x = x.astype(np.float32)\n    hessian = x.T @ x / x.shape[0]\n",
            {"ps1_test_curvature"}, category="float32"),
    mistake("unbiased std (ddof=1)", "ps1_standardize",
            "    std = x_train.std(axis=0)\n", "    std = x_train.std(axis=0, ddof=1)\n",
            {"ps1_test_standardize_train", "ps1_test_standardize_splits"}),
    mistake("statistics per sample (axis=1)", "ps1_standardize",
            "mean = x_train.mean(axis=0)\n    std = x_train.std(axis=0)",
            "mean = x_train.mean(axis=1, keepdims=True)\n    std = x_train.std(axis=1, keepdims=True)",
            {"ps1_test_standardize_train", "ps1_test_standardize_splits"}),
    mistake("each split standardized with its own statistics", "ps1_standardize",
            "((x - mean) / std for x in (x_train, x_val, x_test))",
            "((x - x.mean(axis=0)) / np.where(x.std(axis=0) < min_std, 1.0, x.std(axis=0))"
            " for x in (x_train, x_val, x_test))", {"ps1_test_standardize_splits"}, True),
    mistake("constant feature divided by 0", "ps1_standardize",
            "    std = np.where(std < min_std, 1.0, std)\n", "", {"ps1_test_standardize_splits"}),
    mistake("threshold hard-coded instead of min_std", "ps1_standardize",
            "np.where(std < min_std, 1.0, std)", "np.where(std < 1e-8, 1.0, std)",
            {"ps1_test_standardize_splits"}, category="edge_case"),
    mistake("inputs modified in place", "ps1_standardize",
            "z_train, z_val, z_test = ((x - mean) / std for x in (x_train, x_val, x_test))",
            "for x in (x_train, x_val, x_test):\n        x -= mean\n        x /= std\n"
            "    z_train, z_val, z_test = x_train, x_val, x_test",
            STANDARDIZE, category="in_place"),
    mistake("scikit-learn's StandardScaler", "ps1_standardize",
            "    z_train, z_val, z_test = ((x - mean) / std for x in (x_train, x_val, x_test))\n"
            "    return z_train, z_val, z_test, mean, std\n",
            "    from sklearn.preprocessing import StandardScaler\n"
            "    scaler = StandardScaler().fit(x_train)\n"
            "    z_train, z_val, z_test = (scaler.transform(x) for x in (x_train, x_val, x_test))\n"
            "    return z_train, z_val, z_test, scaler.mean_, scaler.scale_\n", STANDARDIZE, category="forbidden"),
    mistake("computes in float32 (correct)", "ps1_standardize", "    mean = x_train.mean(axis=0)\n",
            "    x_train, x_val, x_test = (np.asarray(a, dtype=np.float32) for a in (x_train, x_val, x_test))\n"
            "    mean = x_train.mean(axis=0)\n", set(), category="float32"),
    mistake("unbiased variance (ddof=1)", "ps1_bn_forward",
            "var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)",
            "var = x.var(axis=axes, ddof=1, keepdims=True)",
            {"ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d"}),
    mistake("eps outside the square root", "ps1_bn_forward",
            "np.sqrt(var + eps)", "(np.sqrt(var) + eps)",
            {"ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d"}),
    mistake("eps forgotten", "ps1_bn_forward", "np.sqrt(var + eps)", "np.sqrt(var)",
            {"ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d"}),
    mistake("eps argument ignored (1e-5 hard-coded)", "ps1_bn_forward",
            "np.sqrt(var + eps)", "np.sqrt(var + 1e-5)",
            {"ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d"}),
    mistake("statistics per sample (layer norm)", "ps1_bn_forward",
            "axes = (0,) + tuple(range(2, x.ndim))", "axes = tuple(range(1, x.ndim))",
            {"ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d"}),
    mistake("4-D: statistics over N only", "ps1_bn_forward",
            "axes = (0,) + tuple(range(2, x.ndim))", "axes = (0,)", {"ps1_test_bn_forward_4d"}, True),
    mistake("4-D: gamma and beta broadcast along the last axis", "ps1_bn_forward",
            "per_feature = (1, -1) + (1,) * (x.ndim - 2)", "per_feature = (1,) * (x.ndim - 1) + (-1,)",
            {"ps1_test_bn_forward_4d"}),
    mistake("gamma and beta swapped", "ps1_bn_forward",
            "gamma.reshape(per_feature) * xhat + beta.reshape(per_feature)",
            "beta.reshape(per_feature) * xhat + gamma.reshape(per_feature)",
            {"ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d"}),
    mistake("x modified in place", "ps1_bn_forward",
            "xhat = (x - mu) / np.sqrt(var + eps)", "x -= mu\n    xhat = x / np.sqrt(var + eps)",
            BN, category="in_place"),
    mistake("the course library's batchnorm_forward", "ps1_bn_forward",
            "    out = gamma.reshape(per_feature) * xhat + beta.reshape(per_feature)\n",
            "    from normlab import functional\n    out = functional.batchnorm_forward(x, gamma, beta, eps)[0]\n",
            BN, category="forbidden"),
    mistake("a batch of one sample returned unchanged (also a single image)", "ps1_bn_forward",
            "    axes = (0,) + tuple(range(2, x.ndim))\n",
            "    if x.shape[0] == 1:  # one sample: nothing to normalize\n        return x.copy(), {}\n"
            "    axes = (0,) + tuple(range(2, x.ndim))\n", BN, category="edge_case"),
    mistake("computes in float32 (correct)", "ps1_bn_forward", "    axes = (0,) + tuple(range(2, x.ndim))\n",
            "    x = x.astype(np.float32)\n    axes = (0,) + tuple(range(2, x.ndim))\n", set(), category="float32"),
    mistake("identity gamma without eps", "ps1_identity",
            "gamma = np.sqrt(x.var(axis=axes) + eps)", "gamma = x.std(axis=axes)", {"ps1_test_identity"}, True),
    mistake("identity gamma from the unbiased variance", "ps1_identity",
            "x.var(axis=axes)", "x.var(axis=axes, ddof=1)", {"ps1_test_identity"}),
    mistake("identity gamma and beta swapped", "ps1_identity",
            "return gamma, beta", "return beta, gamma", {"ps1_test_identity"}),
    mistake("identity: statistics over axis 0 only", "ps1_identity",
            "axes = (0,) + tuple(range(2, x.ndim))", "axes = 0", {"ps1_test_identity"}),
    mistake("identity: x centred in place", "ps1_identity", IDENTITY_STATISTICS,
            "    beta = x.mean(axis=axes)\n    x -= x.mean(axis=axes, keepdims=True)\n"
            "    gamma = np.sqrt((x ** 2).mean(axis=axes) + eps)\n", {"ps1_test_identity"}, category="in_place"),
    mistake("identity: statistics from torch.var_mean", "ps1_identity", IDENTITY_STATISTICS,
            "    import torch\n    var, mean = torch.var_mean(torch.from_numpy(x), dim=axes, correction=0)\n"
            "    beta, gamma = mean.numpy(), np.sqrt(var.numpy() + eps)\n", {"ps1_test_identity"},
            category="forbidden"),
    mistake("identity: keepdims then squeeze() (shape () for a single feature)", "ps1_identity", IDENTITY_STATISTICS,
            "    beta = x.mean(axis=axes, keepdims=True).squeeze()\n"
            "    gamma = np.sqrt(x.var(axis=axes, keepdims=True) + eps).squeeze()\n", {"ps1_test_identity"},
            category="edge_case"),
    mistake("identity: computes in float32 (correct)", "ps1_identity", "    axes = (0,) + tuple(range(2, x.ndim))\n",
            "    x = x.astype(np.float32)\n    axes = (0,) + tuple(range(2, x.ndim))\n", set(), category="float32"),
    mistake("q_train_only wrong", "ps1_q_train_only", '\nq_train_only = "b"', '\nq_train_only = "c"',
            {"ps1_test_q_train_only"}),
    mistake("q_axes wrong (per channel and position)", "ps1_q_axes", '\nq_axes = "b"', '\nq_axes = "c"',
            {"ps1_test_q_axes"}),
    mistake("q_identity wrong", "ps1_q_identity", '\nq_identity = "b"', '\nq_identity = "c"',
            {"ps1_test_q_identity"}),
    mistake("q_bias wrong", "ps1_q_bias", '\nq_bias = "c"', '\nq_bias = "a"', {"ps1_test_q_bias"}),
    mistake("q_batch_of_one wrong", "ps1_q_batch_of_one", '\nq_batch_of_one = "c"', '\nq_batch_of_one = "d"',
            {"ps1_test_q_batch_of_one"}),
    mistake("q_sheet wrong", "ps1_q_sheet", '\nq_sheet = "d"', '\nq_sheet = "c"', {"ps1_test_q_sheet"}),
    mistake("q_sheet not a letter", "ps1_q_sheet", '\nq_sheet = "d"', '\nq_sheet = "all of the above"',
            {"ps1_test_q_sheet"}),
]

NOT_APPLICABLE: dict[tuple[str, str], str] = {}
