"""ps4's planted mistakes: each edits one solution cell of the source and names the
test cells it must lose (all others keep full points); `category` marks the mistakes that
exercise a category of hidden tests (support.CATEGORIES). `NOT_APPLICABLE` says, for a
graded function and a category, why the category cannot apply."""

from support import mistake

RUN = ("ps4_test_run_basics", "ps4_test_run_settings", "ps4_test_run_outcomes")
PROBE = ("ps4_test_probe", "ps4_test_probe_state", "ps4_test_probe_outcome")

MISTAKES = [
    # run_condition
    mistake("the condition's settings ignored", "ps4_run_condition", "settings = {**BASE, **CONDITIONS[name]}",
            "settings = dict(BASE)", {"ps4_test_run_settings", "ps4_test_run_outcomes"}),
    mistake("model initialization not seeded", "ps4_run_condition", "    torch.manual_seed(seed)\n", "",
            {"ps4_test_run_basics"}),
    mistake("test accuracy measured on the validation split", "ps4_run_condition",
            "_, test_acc = train.evaluate(model, test_loader)", "_, test_acc = train.evaluate(model, val_loader)",
            {"ps4_test_run_basics"}),
    mistake("weight decay not passed to fit", "ps4_run_condition",
            '\n                        weight_decay=settings["weight_decay"], seed=seed',
            "\n                        seed=seed", {"ps4_test_run_settings"}),
    mistake("activation ignored (ReLU always)", "ps4_run_condition", 'activation=settings["activation"],', "",
            {"ps4_test_run_settings", "ps4_test_run_outcomes"}),
    mistake("BASE updated in place with the condition's settings", "ps4_run_condition",
            "settings = {**BASE, **CONDITIONS[name]}", "settings = BASE\n    settings.update(CONDITIONS[name])",
            set(RUN), category="in_place"),
    mistake("the model built by normlab.experiments' runner", "ps4_run_condition",
            'model = models.mlp(64, 10, hidden=HIDDEN, norm=norm, activation=settings["activation"],\n'
            '                       init=settings["init"], dropout=settings["dropout"])',
            "from normlab.experiments import conditions, runner\n"
            '    config = {**conditions.BASE_CONFIG, "hidden": list(HIDDEN), "norm": norm,\n'
            '              **{key: settings[key] for key in ("activation", "init", "dropout")}}\n'
            "    model = runner.build_model(config, (64,), 10)", set(RUN), category="forbidden"),
    mistake("train_limit=None breaks min(train_limit, ...)", "ps4_run_condition",
            'digits_loaders(seed, train_limit, settings["batch_size"])',
            'digits_loaders(seed, min(train_limit, len(digits.y_train)), settings["batch_size"])',
            {"ps4_test_run_basics"}, category="edge_case"),
    mistake("test accuracy as a float32 scalar (correct)", "ps4_run_condition",
            "_, test_acc = train.evaluate(model, test_loader)",
            "_, test_acc = train.evaluate(model, test_loader)\n    test_acc = np.float32(test_acc)", set(),
            category="float32"),
    # epochs_to_accuracy
    mistake("0-based epoch", "ps4_epochs_to_accuracy", "enumerate(history.val_acc, start=1)",
            "enumerate(history.val_acc)", {"ps4_test_epochs_to_accuracy"}),
    mistake("training accuracy", "ps4_epochs_to_accuracy", "enumerate(history.val_acc, start=1)",
            "enumerate(history.train_acc, start=1)", {"ps4_test_epochs_to_accuracy"}),
    mistake("reaching the target does not count (>)", "ps4_epochs_to_accuracy", "if accuracy >= target:",
            "if accuracy > target:", {"ps4_test_epochs_to_accuracy"}),
    mistake("a dummy epoch 0 inserted into the caller's history", "ps4_epochs_to_accuracy",
            "for epoch, accuracy in enumerate(history.val_acc, start=1):",
            "accuracies = history.val_acc\n    accuracies.insert(0, 0.0)  # accuracies[epoch] is the epoch's\n"
            "    for epoch, accuracy in enumerate(accuracies):", {"ps4_test_epochs_to_accuracy"},
            more=(("if accuracy >= target:", "if epoch > 0 and accuracy >= target:"),), category="in_place"),
    mistake("max() of an empty history", "ps4_epochs_to_accuracy",
            "for epoch, accuracy in enumerate(history.val_acc, start=1):",
            "if max(history.val_acc) < target:\n        return None\n"
            "    for epoch, accuracy in enumerate(history.val_acc, start=1):", {"ps4_test_epochs_to_accuracy"},
            category="edge_case"),
    mistake("accuracies compared in float32 (correct)", "ps4_epochs_to_accuracy", "enumerate(history.val_acc, start=1)",
            "enumerate(np.asarray(history.val_acc, dtype=np.float32), start=1)", set(), category="float32"),
    # scoreboard
    mistake("biased variance (ddof=0)", "ps4_scoreboard",
            "se = np.sqrt(bn.var(ddof=1) / len(bn) + vanilla.var(ddof=1) / len(vanilla))",
            "se = np.sqrt(bn.var() / len(bn) + vanilla.var() / len(vanilla))", {"ps4_test_scoreboard_verdicts"}),
    mistake("threshold of one standard error", "ps4_scoreboard", "threshold = max(margin, 2 * se)",
            "threshold = max(margin, se)", {"ps4_test_scoreboard_verdicts"}),
    mistake("margin ignored", "ps4_scoreboard", "threshold = max(margin, 2 * se)", "threshold = 2 * se",
            {"ps4_test_scoreboard_verdicts"}),
    mistake("variance instead of standard error", "ps4_scoreboard",
            "se = np.sqrt(bn.var(ddof=1) / len(bn) + vanilla.var(ddof=1) / len(vanilla))",
            "se = bn.var(ddof=1) / len(bn) + vanilla.var(ddof=1) / len(vanilla)", {"ps4_test_scoreboard_verdicts"}),
    mistake("difference vanilla minus BN", "ps4_scoreboard", "difference = bn.mean() - vanilla.mean()",
            "difference = vanilla.mean() - bn.mean()", {"ps4_test_scoreboard_verdicts", "ps4_test_scoreboard_table"}),
    mistake("tally without the verdicts that did not occur", "ps4_scoreboard",
            'rows, tally = [], {"BN": 0, "vanilla": 0, "draw": 0}', "rows, tally = [], {}",
            {"ps4_test_scoreboard_table"}, more=(("tally[verdict] += 1", "tally[verdict] = tally.get(verdict, 0) + 1"),)),
    mistake("the caller's accuracy arrays centred in place", "ps4_scoreboard",
            "difference = bn.mean() - vanilla.mean()",
            "bn_mean, vanilla_mean = bn.mean(), vanilla.mean()\n        difference = bn_mean - vanilla_mean\n"
            "        bn -= bn_mean\n        vanilla -= vanilla_mean",
            {"ps4_test_scoreboard_verdicts", "ps4_test_scoreboard_table"},
            more=(("se = np.sqrt(bn.var(ddof=1) / len(bn) + vanilla.var(ddof=1) / len(vanilla))",
                   "se = np.sqrt((bn ** 2).sum() / (len(bn) - 1) / len(bn)\n"
                   "                     + (vanilla ** 2).sum() / (len(vanilla) - 1) / len(vanilla))"),
                  ('"BN": float(bn.mean()), "vanilla": float(vanilla.mean())',
                   '"BN": float(bn_mean), "vanilla": float(vanilla_mean)')), category="in_place"),
    mistake("the verdict from normlab.stats.compare", "ps4_scoreboard", "threshold = max(margin, 2 * se)\n"
            "        if difference > threshold:\n"
            '            verdict = "BN"\n'
            "        elif difference < -threshold:\n"
            '            verdict = "vanilla"\n'
            "        else:\n"
            '            verdict = "draw"',
            "from normlab import stats\n"
            '        outcome = stats.compare(bn, vanilla, min_effect=margin).outcome\n'
            '        verdict = {"a": "BN", "b": "vanilla", "draw": "draw"}[outcome]',
            {"ps4_test_scoreboard_verdicts", "ps4_test_scoreboard_table"}, category="forbidden"),
    mistake("a difference equal to the threshold counts (>=)", "ps4_scoreboard", "if difference > threshold:",
            "if difference >= threshold:", {"ps4_test_scoreboard_verdicts"}, category="edge_case",
            more=(("elif difference < -threshold:", "elif difference <= -threshold:"),)),
    mistake("accuracies in float32 (correct)", "ps4_scoreboard",
            "bn, vanilla = np.asarray(arms[\"BN\"], dtype=float), np.asarray(arms[\"vanilla\"], dtype=float)",
            "bn, vanilla = np.asarray(arms[\"BN\"], dtype=np.float32), np.asarray(arms[\"vanilla\"], dtype=np.float32)",
            set(), category="float32"),
    # probe_along_gradient
    mistake("step along +g", "ps4_probe", "theta - eta * g", "theta + eta * g",
            {"ps4_test_probe", "ps4_test_probe_state"}),
    mistake("the given model modified (no copy)", "ps4_probe", "start = copy.deepcopy(model).train()",
            "start = model.train()", {"ps4_test_probe_state", "ps4_test_probe_outcome"}, category="in_place"),
    mistake("the caller's model stepped and left at the last step", "ps4_probe",
            "start = copy.deepcopy(model).train()", "start = model.train()",
            set(PROBE),
            more=(("moved = copy.deepcopy(start)", "moved = start"),), category="in_place"),
    mistake("probed in the model's own mode (eval: running statistics)", "ps4_probe",
            "start = copy.deepcopy(model).train()", "start = copy.deepcopy(model)", {"ps4_test_probe_state"},
            category="edge_case"),
    mistake("normlab.experiments' probe called", "ps4_probe", "    start = copy.deepcopy(model).train()\n",
            "    from normlab.experiments import landscape\n"
            "    return landscape.probe_losses_and_grad_changes(model, x, y, step_sizes)\n",
            set(PROBE), category="forbidden"),
    mistake("float32 arrays returned (correct)", "ps4_probe", "return np.array(losses), np.array(grad_changes)",
            "return np.array(losses, dtype=np.float32), np.array(grad_changes, dtype=np.float32)", set(),
            category="float32"),
    mistake("norm of the new gradient, not of the change", "ps4_probe", "float((g_moved - g).norm())",
            "float(g_moved.norm())", {"ps4_test_probe", "ps4_test_probe_state"}),
    mistake("summed instead of mean cross-entropy", "ps4_probe", "loss = F.cross_entropy(network(x), y)",
            'loss = F.cross_entropy(network(x), y, reduction="sum")', {"ps4_test_probe", "ps4_test_probe_state"}),
    mistake("lists returned instead of NumPy arrays", "ps4_probe", "return np.array(losses), np.array(grad_changes)",
            "return losses, grad_changes", {"ps4_test_probe_outcome"}),
]

NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("ps4_epochs_to_accuracy", "forbidden"): "no course library function finds the first epoch that reaches a "
                                             "target (its test cell still runs under the LIBRARY guard)",
}
