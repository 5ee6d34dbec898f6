"""ps3's planted mistakes: each edits one solution cell of the source and names the
test cells it must lose (all others keep full points); `category` marks the mistakes that
exercise a category of hidden tests (support.CATEGORIES). `NOT_APPLICABLE` says, for a
graded function and a category, why the category cannot apply."""

from support import mistake

RUNNING = ("ps3_test_running_mean", "ps3_test_running_var", "ps3_test_running_cumulative")
BN = ("ps3_test_bn_state", "ps3_test_bn_train", "ps3_test_bn_running", "ps3_test_bn_eval",
      "ps3_test_bn_momentum_none")
LN = ("ps3_test_layernorm", "ps3_test_layernorm_shapes")
GN = ("ps3_test_groupnorm", "ps3_test_groupnorm_limits")
DROPOUT = ("ps3_test_dropout_train", "ps3_test_dropout_eval", "ps3_test_dropout_expectation")
RUNNING_UPDATE = ("    new_mean = (1 - factor) * running_mean + factor * batch_mean\n"
                  "    new_var = (1 - factor) * running_var + factor * batch_var\n"
                  "    return new_mean, new_var, count")
LN_DIMS = "        dims = tuple(range(x.dim() - len(self.normalized_shape), x.dim()))"

MISTAKES = [
    # update_running_stats
    mistake("Keras momentum (running = momentum * running + (1 - momentum) * batch)", "ps3_running",
            "new_mean = (1 - factor) * running_mean + factor * batch_mean",
            "new_mean = factor * running_mean + (1 - factor) * batch_mean", set(RUNNING), True,
            more=(("new_var = (1 - factor) * running_var + factor * batch_var",
                   "new_var = factor * running_var + (1 - factor) * batch_var"),)),
    mistake("biased running variance", "ps3_running", "batch_var = x.var(axis=axes) * n / (n - 1)",
            "batch_var = x.var(axis=axes)", {"ps3_test_running_var", "ps3_test_running_cumulative"}),
    mistake("num_batches_tracked not counted", "ps3_running", "count = num_batches_tracked + 1",
            "count = num_batches_tracked", {"ps3_test_running_mean", "ps3_test_running_cumulative"}),
    mistake("cumulative factor 1 / (count + 1): the current batch counted twice", "ps3_running",
            "factor = 1.0 / count if", "factor = 1.0 / (count + 1) if", {"ps3_test_running_cumulative"}),
    mistake("4-D: statistics over N only", "ps3_running", "axes = (0,) + tuple(range(2, x.ndim))", "axes = (0,)",
            set(RUNNING)),
    mistake("4-D: unbiased correction with n = N", "ps3_running", "n = x.size // x.shape[1]", "n = x.shape[0]",
            {"ps3_test_running_var", "ps3_test_running_cumulative"}),
    mistake("the caller's running buffers updated in place", "ps3_running", RUNNING_UPDATE,
            "    running_mean *= 1 - factor\n    running_mean += factor * batch_mean\n"
            "    running_var *= 1 - factor\n    running_var += factor * batch_var\n"
            "    return running_mean, running_var, count", set(RUNNING), category="in_place"),
    mistake("torch's batch_norm updates the buffers", "ps3_running", RUNNING_UPDATE,
            "    new_mean, new_var = torch.tensor(running_mean), torch.tensor(running_var)\n"
            "    torch.nn.functional.batch_norm(torch.tensor(x), new_mean, new_var, training=True, momentum=factor)\n"
            "    return new_mean.numpy(), new_var.numpy(), count", set(RUNNING), category="forbidden"),
    mistake("the course library's update_running", "ps3_running", RUNNING_UPDATE,
            "    from normlab.functional import update_running\n"
            "    return update_running(running_mean, batch_mean, factor), update_running(running_var, batch_var, "
            "factor), count", set(RUNNING), category="forbidden"),
    mistake("momentum=0.0 taken for None (momentum or 1 / count)", "ps3_running",
            "factor = 1.0 / count if momentum is None else momentum", "factor = momentum or 1.0 / count",
            {"ps3_test_running_cumulative"}, category="edge_case"),
    mistake("float32 statistics (correct)", "ps3_running", "    axes = (0,) + tuple(range(2, x.ndim))",
            "    x = x.astype(np.float32)\n    axes = (0,) + tuple(range(2, x.ndim))", set(), category="float32"),
    # BatchNorm
    mistake("biased running variance", "ps3_batchnorm", "factor * var * n / (n - 1)", "factor * var",
            {"ps3_test_bn_running", "ps3_test_bn_eval", "ps3_test_bn_momentum_none"}, True),
    mistake("Keras momentum", "ps3_batchnorm", "self.running_mean.mul_(1 - factor).add_(factor * mean)",
            "self.running_mean.mul_(factor).add_((1 - factor) * mean)",
            {"ps3_test_bn_running", "ps3_test_bn_eval", "ps3_test_bn_momentum_none"},
            more=(("self.running_var.mul_(1 - factor).add_(factor * var * n / (n - 1))",
                   "self.running_var.mul_(factor).add_((1 - factor) * var * n / (n - 1))"),)),
    mistake("batch statistics in eval mode", "ps3_batchnorm", "if self.training or not self.track_running_stats:",
            "if True:", {"ps3_test_bn_eval"}),
    mistake("num_batches_tracked not counted", "ps3_batchnorm", "                self.num_batches_tracked += 1\n",
            "", {"ps3_test_bn_train", "ps3_test_bn_running", "ps3_test_bn_momentum_none"}),
    mistake("eps outside the square root", "ps3_batchnorm", "torch.sqrt(var.view(shape) + self.eps)",
            "(torch.sqrt(var.view(shape)) + self.eps)", set(BN) - {"ps3_test_bn_state"}),
    mistake("running statistics carry autograd history", "ps3_batchnorm",
            "                with torch.no_grad():\n"
            "                    self.running_mean.mul_(1 - factor).add_(factor * mean)\n"
            "                    self.running_var.mul_(1 - factor).add_(factor * var * n / (n - 1))\n",
            "                self.running_mean = (1 - factor) * self.running_mean + factor * mean\n"
            "                self.running_var = (1 - factor) * self.running_var + factor * var * n / (n - 1)\n",
            set(BN) - {"ps3_test_bn_state"}),
    mistake("4-D: statistics over N only", "ps3_batchnorm", "dims = [0] + list(range(2, x.dim()))", "dims = [0]",
            set(BN) - {"ps3_test_bn_state"}),
    mistake("running statistics as plain attributes, not buffers", "ps3_batchnorm",
            'self.register_buffer("running_mean", torch.zeros(num_features))',
            "self.running_mean = torch.zeros(num_features)", {"ps3_test_bn_state", "ps3_test_bn_eval"},
            more=(('self.register_buffer("running_var", torch.ones(num_features))',
                   "self.running_var = torch.ones(num_features)"),
                  ('self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))',
                   "self.num_batches_tracked = torch.tensor(0, dtype=torch.long)"))),
    mistake("weight and bias as plain tensors, not parameters", "ps3_batchnorm",
            "self.weight = nn.Parameter(torch.ones(num_features))", "self.weight = torch.ones(num_features)",
            set(BN), more=(("self.bias = nn.Parameter(torch.zeros(num_features))",
                            "self.bias = torch.zeros(num_features)"),)),
    mistake("the input normalized in place (x.sub_(mean).div_(std))", "ps3_batchnorm",
            "out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)",
            "out = x.sub_(mean.view(shape)).div_(torch.sqrt(var.view(shape) + self.eps))",
            set(BN) - {"ps3_test_bn_state"}, category="in_place"),
    mistake("torch's batch_norm", "ps3_batchnorm", "        dims = [0] + list(range(2, x.dim()))\n",
            "        factor = self.momentum\n"
            "        if self.training and self.track_running_stats:\n"
            "            self.num_batches_tracked += 1\n"
            "            if self.momentum is None:\n"
            "                factor = 1.0 / float(self.num_batches_tracked)\n"
            "        return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,\n"
            "                                        self.training or not self.track_running_stats, factor or 0.0,\n"
            "                                        self.eps)\n", set(BN), True, category="forbidden"),
    mistake("eval mode without running statistics reads the missing buffers", "ps3_batchnorm",
            "if self.training or not self.track_running_stats:", "if self.training:", {"ps3_test_bn_eval"},
            category="edge_case"),
    mistake("computes in float32 (x = x.float())", "ps3_batchnorm", "        dims = [0] + list(range(2, x.dim()))",
            "        x = x.float()\n        dims = [0] + list(range(2, x.dim()))", set(BN) - {"ps3_test_bn_state"},
            category="float32"),
    # LayerNorm
    mistake("normalized over the last axis only", "ps3_layernorm",
            "dims = tuple(range(x.dim() - len(self.normalized_shape), x.dim()))", "dims = (x.dim() - 1,)",
            {"ps3_test_layernorm_shapes"}, True),
    mistake("normalized over the batch (batch norm)", "ps3_layernorm",
            "dims = tuple(range(x.dim() - len(self.normalized_shape), x.dim()))", "dims = (0,)", set(LN)),
    mistake("unbiased variance", "ps3_layernorm", "var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)",
            "var = x.var(dim=dims, keepdim=True)", set(LN)),
    mistake("affine parameters only over the last axis", "ps3_layernorm",
            "nn.Parameter(torch.ones(self.normalized_shape))", "nn.Parameter(torch.ones(self.normalized_shape[-1]))",
            {"ps3_test_layernorm_shapes"}, more=(("nn.Parameter(torch.zeros(self.normalized_shape))",
                                                  "nn.Parameter(torch.zeros(self.normalized_shape[-1]))"),)),
    mistake("eps outside the square root", "ps3_layernorm", "torch.sqrt(var + self.eps)",
            "(torch.sqrt(var) + self.eps)", set(LN)),
    mistake("the input normalized in place", "ps3_layernorm", "out = (x - mean) / torch.sqrt(var + self.eps)",
            "out = x.sub_(mean).div_(torch.sqrt(var + self.eps))", set(LN), category="in_place"),
    mistake("torch's layer_norm", "ps3_layernorm", LN_DIMS,
            "        return nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)\n"
            + LN_DIMS, set(LN), True, category="forbidden"),
    mistake("normalized over every axis but the batch, not the last len(normalized_shape)", "ps3_layernorm",
            LN_DIMS, "        dims = tuple(range(1, x.dim()))", set(LN), category="edge_case"),
    mistake("computes in float32 (x = x.float())", "ps3_layernorm", LN_DIMS, "        x = x.float()\n" + LN_DIMS,
            set(LN), category="float32"),
    # GroupNorm
    mistake("groups of interleaved channels (c % G)", "ps3_groupnorm",
            "grouped = x.reshape(n, self.num_groups, -1)",
            "grouped = x.reshape(n, -1, self.num_groups, *x.shape[2:]).transpose(1, 2).reshape(n, self.num_groups, -1)",
            {"ps3_test_groupnorm"}, True,
            more=(("out = normalized.reshape(x.shape)",
                   "out = normalized.reshape(n, self.num_groups, -1, *x.shape[2:]).transpose(1, 2).reshape(x.shape)"),)),
    mistake("statistics per position (channels of the group only)", "ps3_groupnorm",
            "grouped = x.reshape(n, self.num_groups, -1)",
            "grouped = x.reshape(n, self.num_groups, x.shape[1] // self.num_groups, -1)", set(GN)),
    mistake("statistics over the batch too", "ps3_groupnorm", "mean = grouped.mean(dim=2, keepdim=True)",
            "mean = grouped.mean(dim=(0, 2), keepdim=True)", set(GN),
            more=(("var = ((grouped - mean) ** 2).mean(dim=2, keepdim=True)",
                   "var = ((grouped - mean) ** 2).mean(dim=(0, 2), keepdim=True)"),)),
    mistake("weight and bias per group instead of per channel", "ps3_groupnorm",
            "nn.Parameter(torch.ones(num_channels))", "nn.Parameter(torch.ones(num_groups))", {"ps3_test_groupnorm"},
            more=(("nn.Parameter(torch.zeros(num_channels))", "nn.Parameter(torch.zeros(num_groups))"),)),
    mistake("the input normalized in place (grouped is a view of x)", "ps3_groupnorm",
            "normalized = (grouped - mean) / torch.sqrt(var + self.eps)",
            "normalized = grouped.sub_(mean).div_(torch.sqrt(var + self.eps))", set(GN), category="in_place"),
    mistake("torch's group_norm", "ps3_groupnorm", "        n = x.shape[0]\n",
            "        return nn.functional.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)\n"
            "        n = x.shape[0]\n", set(GN), category="forbidden"),
    mistake("affine parameters shaped for (N, C, H, W) only", "ps3_groupnorm",
            "shape = [1, -1] + [1] * (x.dim() - 2)", "shape = [1, -1, 1, 1]", {"ps3_test_groupnorm"},
            category="edge_case"),
    mistake("computes in float32 (x = x.float())", "ps3_groupnorm", "        n = x.shape[0]\n",
            "        x = x.float()\n        n = x.shape[0]\n", set(GN), category="float32"),
    # Dropout
    mistake("kept units scaled by 1 / p instead of 1 / (1 - p)", "ps3_dropout", "return x * mask / keep",
            "return x * mask / self.p", {"ps3_test_dropout_train", "ps3_test_dropout_expectation"}, True),
    mistake("kept units not scaled", "ps3_dropout", "return x * mask / keep", "return x * mask",
            {"ps3_test_dropout_train", "ps3_test_dropout_expectation"}),
    mistake("dropout active in eval mode", "ps3_dropout", "if not self.training or self.p == 0:",
            "if self.p == 0:", {"ps3_test_dropout_eval"}),
    mistake("p used as the keep probability", "ps3_dropout", "(torch.rand_like(x) < keep)",
            "(torch.rand_like(x) < self.p)", {"ps3_test_dropout_train", "ps3_test_dropout_expectation"}),
    mistake("one mask for the whole batch", "ps3_dropout", "torch.rand_like(x)", "torch.rand_like(x[:1])",
            {"ps3_test_dropout_train", "ps3_test_dropout_expectation"}),
    mistake("reseeded inside forward: the same mask at every call", "ps3_dropout", "        keep = 1.0 - self.p\n",
            "        torch.manual_seed(0)\n        keep = 1.0 - self.p\n", {"ps3_test_dropout_expectation"}),
    mistake("the input masked in place", "ps3_dropout", "return x * mask / keep", "return x.mul_(mask).div_(keep)",
            {"ps3_test_dropout_train", "ps3_test_dropout_expectation"}, category="in_place"),
    mistake("torch's dropout", "ps3_dropout", "        if not self.training or self.p == 0:",
            "        return nn.functional.dropout(x, self.p, self.training)\n"
            "        if not self.training or self.p == 0:", set(DROPOUT), True, category="forbidden"),
    mistake("the course library's Dropout", "ps3_dropout", "        if not self.training or self.p == 0:",
            "        from normlab import nn as nlnn\n"
            "        return nlnn.Dropout(self.p).train(self.training)(x)\n"
            "        if not self.training or self.p == 0:", set(DROPOUT), category="forbidden"),
    mistake("a mask for (N, D) input only", "ps3_dropout", "torch.rand_like(x)",
            "torch.rand(x.shape[0], x.shape[1], dtype=x.dtype)", {"ps3_test_dropout_train"}, category="edge_case"),
    mistake("a float32 mask (correct)", "ps3_dropout", "mask = (torch.rand_like(x) < keep).to(x.dtype)",
            "mask = (torch.rand_like(x) < keep).float()", set(), category="float32"),
    # Questions
    mistake("q_keras wrong", "ps3_q_keras", '\nq_keras = "b"', '\nq_keras = "a"', {"ps3_test_q_keras"}),
    mistake("q_forgot_eval wrong", "ps3_q_forgot_eval", '\nq_forgot_eval = "b"', '\nq_forgot_eval = "a"',
            {"ps3_test_q_forgot_eval"}),
    mistake("q_batch_independent wrong", "ps3_q_batch_independent", '\nq_batch_independent = "b"',
            '\nq_batch_independent = "d"', {"ps3_test_q_batch_independent"}),
    mistake("q_dropout_bn wrong", "ps3_q_dropout_bn", '\nq_dropout_bn = "b"', '\nq_dropout_bn = "a"',
            {"ps3_test_q_dropout_bn"}),
    mistake("q_dropout_bn not a letter", "ps3_q_dropout_bn", '\nq_dropout_bn = "b"',
            '\nq_dropout_bn = "variance shift"', {"ps3_test_q_dropout_bn"}),
]

NOT_APPLICABLE: dict[tuple[str, str], str] = {}
