"""ps5's planted mistakes: each edits one solution cell of the source and names the
test cells it must lose (all others keep full points); `category` marks the mistakes that
exercise a category of hidden tests (support.CATEGORIES). `NOT_APPLICABLE` says, for a
graded function and a category, why the category cannot apply."""

from support import mistake

BACKWARD = ("ps5_test_backward_loss", "ps5_test_backward_layer2", "ps5_test_backward_bn", "ps5_test_backward_layer1")
BN_AND_BELOW = {"ps5_test_backward_bn", "ps5_test_backward_layer1"}
CROSS_ENTROPY = {"ps5_test_cross_entropy"}
ONELINE = {"ps5_test_bn_oneline_biased", "ps5_test_bn_oneline_bessel"}
BACKWARD_START = "    c, n = cache, y.shape[0]\n"
CE_START = "    n, k = logits.shape\n"
BN_START = "    n = x.shape[0]\n"

MISTAKES = [
    # network_backward
    mistake("dlogprobs without the mean's 1/n", "ps5_backward", "= -dloss / n", "= -dloss", set(BACKWARD), True),
    mistake("dloss ignored (the upstream gradient taken as 1)", "ps5_backward", "= -dloss / n", "= -1.0 / n",
            set(BACKWARD), category="edge_case"),
    mistake("dcounts without the path through counts_sum", "ps5_backward",
            'g["counts"] = c["counts_sum_inv"] * g["probs"] + g["counts_sum"]',
            'g["counts"] = c["counts_sum_inv"] * g["probs"]', set(BACKWARD)),
    mistake("db2 averaged over the batch instead of summed", "ps5_backward", 'g["b2"] = g["logits"].sum(0)',
            'g["b2"] = g["logits"].mean(0)', {"ps5_test_backward_layer2"}),
    mistake("tanh' from hpreact (1 - hpreact**2) instead of from h", "ps5_backward", '(1.0 - c["h"] ** 2)',
            '(1.0 - c["hpreact"] ** 2)', BN_AND_BELOW),
    mistake("dbndiff2 divided by n, not n - 1 (Bessel's correction forgotten)", "ps5_backward",
            'g["bnvar"] / (n - 1)', 'g["bnvar"] / n', BN_AND_BELOW),
    mistake("dbndiff without the path through bndiff2", "ps5_backward",
            ' + 2 * c["bndiff"] * g["bndiff2"]', "", BN_AND_BELOW),
    mistake("dbnmeani not spread over the n rows", "ps5_backward", 'g["bnmeani"] / n', 'g["bnmeani"]', BN_AND_BELOW),
    mistake("dW1 transposed (dhprebn.T @ x)", "ps5_backward", 'g["W1"] = c["x"].T @ g["hprebn"]',
            'g["W1"] = g["hprebn"].T @ c["x"]', {"ps5_test_backward_layer1"}),
    mistake("the cache's h squared in place (pow_)", "ps5_backward", '(1.0 - c["h"] ** 2)', '(1.0 - c["h"].pow_(2))',
            set(BACKWARD), category="in_place"),
    mistake("autograd for the loss's part", "ps5_backward", BACKWARD_START,
            BACKWARD_START + '    _z = c["logits"].clone().requires_grad_(True)\n'
            "    (dloss * torch.nn.functional.cross_entropy(_z, y)).backward()\n", set(BACKWARD),
            category="forbidden"),
    mistake("the course library's reference gradients", "ps5_backward", BACKWARD_START,
            "    from normlab.references import bn_mlp_gradients as _reference\n"
            '    return {k: torch.as_tensor(v) for k, v in _reference(params, cache["x"], y, dloss=dloss).items()}\n'
            + BACKWARD_START, set(BACKWARD), category="forbidden"),
    mistake("computes in float32", "ps5_backward", BACKWARD_START,
            "    cache = {k: v.float() for k, v in cache.items()}\n"
            "    params = {k: v.float() for k, v in params.items()}\n" + BACKWARD_START, set(BACKWARD),
            category="float32"),
    # cross_entropy_backward
    mistake("not divided by n", "ps5_cross_entropy", "return dloss * (probs - onehot) / n",
            "return dloss * (probs - onehot)", CROSS_ENTROPY, True),
    mistake("dloss ignored", "ps5_cross_entropy", "return dloss * (probs - onehot) / n",
            "return (probs - onehot) / n", CROSS_ENTROPY),
    mistake("softmax without subtracting the row maximum (exp overflows)", "ps5_cross_entropy",
            "shifted = logits - logits.max(1, keepdim=True).values", "shifted = logits", CROSS_ENTROPY,
            category="edge_case"),
    mistake("the logits shifted in place", "ps5_cross_entropy",
            "shifted = logits - logits.max(1, keepdim=True).values",
            "shifted = logits.sub_(logits.max(1, keepdim=True).values)", CROSS_ENTROPY, category="in_place"),
    mistake("autograd through torch's cross_entropy", "ps5_cross_entropy", CE_START,
            CE_START + "    _z = logits.detach().clone().requires_grad_(True)\n"
            "    (dloss * torch.nn.functional.cross_entropy(_z, y)).backward()\n    return _z.grad\n", CROSS_ENTROPY,
            category="forbidden"),
    mistake("computes in float32", "ps5_cross_entropy", CE_START, "    logits = logits.float()\n" + CE_START,
            CROSS_ENTROPY, category="float32"),
    # batchnorm_backward_oneline
    mistake("the n / (n - 1) term missing", "ps5_bn_oneline", "c = n / (n - 1) if unbiased else 1.0", "c = 1.0",
            {"ps5_test_bn_oneline_bessel"}, True),
    mistake("the n / (n - 1) term in torch's batch norm too", "ps5_bn_oneline",
            "c = n / (n - 1) if unbiased else 1.0", "c = n / (n - 1)", {"ps5_test_bn_oneline_biased"}),
    mistake("the variance always divided by n", "ps5_bn_oneline", "/ (n - 1 if unbiased else n)", "/ n",
            {"ps5_test_bn_oneline_bessel"}),
    mistake("the sum of dout missing", "ps5_bn_oneline", "n * dout - dout.sum(0) - c", "n * dout - c", ONELINE),
    mistake("x centred in place", "ps5_bn_oneline", "centred = x - x.mean(0)", "centred = x.sub_(x.mean(0))", ONELINE,
            category="in_place"),
    mistake("autograd through torch's batch_norm (unbiased=False)", "ps5_bn_oneline", BN_START,
            "    if not unbiased:\n        _z = x.detach().clone().requires_grad_(True)\n"
            "        torch.nn.functional.batch_norm(_z, None, None, gamma, None, training=True, eps=eps).backward(dout)\n"
            "        return _z.grad\n" + BN_START, {"ps5_test_bn_oneline_biased"}, category="forbidden"),
    mistake("the course library's reference (unbiased=True)", "ps5_bn_oneline", BN_START,
            "    if unbiased:\n        from normlab.references import bessel_batchnorm_gradients as _reference\n"
            "        return torch.as_tensor(_reference(x.numpy(), gamma.numpy(), gamma.numpy(), eps, dout.numpy())[0],\n"
            "                               dtype=x.dtype)\n" + BN_START, {"ps5_test_bn_oneline_bessel"},
            category="forbidden"),
    mistake("eps left out (a constant feature divides by 0)", "ps5_bn_oneline", "var_inv = (var + eps) ** -0.5",
            "var_inv = var ** -0.5", ONELINE, category="edge_case"),
    mistake("computes in float32", "ps5_bn_oneline", BN_START,
            "    x, dout, gamma = x.float(), dout.float(), gamma.float()\n" + BN_START, ONELINE, category="float32"),
    # Questions
    mistake("q_bias wrong", "ps5_q_bias", '\nq_bias = "a"', '\nq_bias = "d"', {"ps5_test_q_bias"}),
    mistake("q_bessel wrong", "ps5_q_bessel", '\nq_bessel = "c"', '\nq_bessel = "a"', {"ps5_test_q_bessel"}),
    mistake("q_bessel not a letter", "ps5_q_bessel", '\nq_bessel = "c"', '\nq_bessel = "orthogonal"',
            {"ps5_test_q_bessel"}),
]

NOT_APPLICABLE: dict[tuple[str, str], str] = {}
