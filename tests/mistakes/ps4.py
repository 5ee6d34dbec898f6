"""ps4's planted mistakes: each edits one solution cell of the source and names the
test cells it must lose (all others keep full points); `category` marks the mistakes that
exercise a category of hidden tests (support.CATEGORIES). `NOT_APPLICABLE` says, for a
graded function and a category, why the category cannot apply."""

from support import mistake

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
    # epochs_to_accuracy
    mistake("0-based epoch", "ps4_epochs_to_accuracy", "enumerate(history.val_acc, start=1)",
            "enumerate(history.val_acc)", {"ps4_test_epochs_to_accuracy"}),
    mistake("training accuracy", "ps4_epochs_to_accuracy", "enumerate(history.val_acc, start=1)",
            "enumerate(history.train_acc, start=1)", {"ps4_test_epochs_to_accuracy"}),
    mistake("reaching the target does not count (>)", "ps4_epochs_to_accuracy", "if accuracy >= target:",
            "if accuracy > target:", {"ps4_test_epochs_to_accuracy"}),
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
    # probe_along_gradient
    mistake("step along +g", "ps4_probe", "theta - eta * g", "theta + eta * g",
            {"ps4_test_probe", "ps4_test_probe_state"}),
    mistake("the given model modified (no copy)", "ps4_probe", "start = copy.deepcopy(model).train()",
            "start = model.train()", {"ps4_test_probe_state"}),
    mistake("probed in the model's own mode (eval: running statistics)", "ps4_probe",
            "start = copy.deepcopy(model).train()", "start = copy.deepcopy(model)", {"ps4_test_probe_state"}),
    mistake("norm of the new gradient, not of the change", "ps4_probe", "float((g_moved - g).norm())",
            "float(g_moved.norm())", {"ps4_test_probe", "ps4_test_probe_state"}),
    mistake("summed instead of mean cross-entropy", "ps4_probe", "loss = F.cross_entropy(network(x), y)",
            'loss = F.cross_entropy(network(x), y, reduction="sum")', {"ps4_test_probe", "ps4_test_probe_state"}),
    mistake("lists returned instead of NumPy arrays", "ps4_probe", "return np.array(losses), np.array(grad_changes)",
            "return losses, grad_changes", {"ps4_test_probe_outcome"}),
]

NOT_APPLICABLE: dict[tuple[str, str], str] = {}
