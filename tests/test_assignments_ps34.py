"""Problem sets 3 and 4 end to end with real nbgrader, on the machinery of conftest.py and
support.py that test_assignments.py uses too.

Slow tests (``-m slow``) make an nbgrader course per problem set, once per session
(conftest's `nbgrader_course`: the release generated, no answer key: ps4's trains for
minutes) and check, per problem set: the
source scores full autograded marks (ps4's written answers wait for manual grading), the
release scores 0 and needs no manual grading, and nbgrader validate sees every test pass
without stderr. For ps3, one plausible mistake per graded class or function goes through
nbgrader and loses exactly its own test cells' points. In one grading kernel per problem
set (ps4 in grading mode, where its training is short): each solution cell replaced by its
release stub loses exactly its own test cells (a function's tests depend on that function
only), and every planted mistake of the catalogue `MISTAKES` loses exactly its `loses`.
"""

from __future__ import annotations

import re

import pytest

from normlab_tools import assignments
from support import cell_by_id, copy_notebook, graded, mistake, plant, source_notebook

ASSIGNMENTS = ["ps3", "ps4"]
TOTAL_POINTS = {"ps3": 30, "ps4": 30}
MANUAL_POINTS = {"ps3": 0, "ps4": 12}

RUNNING = ("ps3_test_running_mean", "ps3_test_running_var", "ps3_test_running_cumulative")
BN = ("ps3_test_bn_state", "ps3_test_bn_train", "ps3_test_bn_running", "ps3_test_bn_eval",
      "ps3_test_bn_momentum_none")
LN = ("ps3_test_layernorm", "ps3_test_layernorm_shapes")
GN = ("ps3_test_groupnorm", "ps3_test_groupnorm_limits")

MISTAKES = {
    "ps3": [
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
                {"ps3_test_bn_running", "ps3_test_bn_eval"}),
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
    ],
    "ps4": [
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
    ],
}


# --- helpers (the shared ones are in support.py and conftest.py) --------------------------------


def expected_scores(assignment_id, loses=frozenset()):
    """Autograded cells: full points unless lost; written answers: 0 until a TA grades them."""
    notebook = source_notebook(assignment_id)
    scores = {gid: (0.0 if gid in loses else float(p)) for gid, p in graded(notebook, "code").items()}
    return scores | {gid: 0.0 for gid in graded(notebook, "markdown")}


def owners(notebook):
    """grade_id of every autograded test cell -> the solution cell it tests: the last one before it."""
    owner, result = None, {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            owner = meta["grade_id"]
        elif cell.cell_type == "code" and meta.get("grade"):
            result[meta["grade_id"]] = owner
    return result


def released(notebook):
    """A copy of the notebook with nbgrader's release stubs in place of the solutions."""
    from nbgrader.preprocessors import ClearSolutions

    return ClearSolutions(code_stub={"python": assignments.CODE_STUB}).preprocess(copy_notebook(notebook), {})[0]


# --- fast: the sources -------------------------------------------------------------------------


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_source_metadata(assignment_id):
    notebook = source_notebook(assignment_id)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "duplicate grade_ids"
    assert all(gid.startswith(assignment_id + "_") for gid in ids), "every grade_id names its assignment"
    tests, written = graded(notebook, "code"), graded(notebook, "markdown")
    assert all(points > 0 for points in {**tests, **written}.values())
    assert sum(tests.values()) + sum(written.values()) == TOTAL_POINTS[assignment_id]
    assert sum(written.values()) == MANUAL_POINTS[assignment_id]
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            assert meta["locked"] and not meta["solution"], meta["grade_id"]
        if meta.get("grade") and cell.cell_type == "markdown":  # a written answer, graded by hand
            assert meta["solution"] and not meta["locked"], meta["grade_id"]
        if meta.get("solution") and cell.cell_type == "code":
            assert "### BEGIN SOLUTION" in cell.source and not meta["locked"], meta["grade_id"]
        if cell.cell_type == "code" and not meta.get("solution"):
            assert "BEGIN SOLUTION" not in cell.source, meta.get("grade_id")
    solution_cells = {c.metadata.nbgrader["grade_id"] for c in notebook.cells
                      if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    assert {m.cell for m in MISTAKES[assignment_id]} == solution_cells, "every solution cell has planted mistakes"
    if assignment_id == "ps3":
        functions = {cell for cell in solution_cells if not cell.startswith("ps3_q_")}
        assert {m.cell for m in MISTAKES["ps3"] if m.nbgrader} == functions, \
            "one mistake per graded class or function goes through nbgrader"


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_every_test_cell_is_covered_by_a_mistake(assignment_id):
    caught = set().union(*(m.loses for m in MISTAKES[assignment_id]))
    assert caught == set(graded(source_notebook(assignment_id), "code"))


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_mistakes_lose_only_their_own_tests(assignment_id):
    """A mistake in a function can only cost the test cells of that function."""
    owner = owners(source_notebook(assignment_id))
    for m in MISTAKES[assignment_id]:
        assert m.loses and all(owner[gid] == m.cell for gid in m.loses), m.name


def test_ps4_shortens_training_when_graded():
    """Under NBGRADER_EXECUTION the experiments run with fewer epochs, images and seeds."""
    setup = cell_by_id(source_notebook("ps4"), "ps4_setup").source
    assert 'GRADING = "NBGRADER_EXECUTION" in os.environ' in setup
    for name in ("EPOCHS", "TRAIN_LIMIT", "SEEDS"):
        assert re.search(rf"^{name} = .+ if GRADING else ", setup, re.M), name


# --- slow: the real nbgrader pipeline -------------------------------------------------------------


@pytest.fixture
def course(nbgrader_course, assignment_id):
    """The problem set's course (conftest), its release generated once per session."""
    course = nbgrader_course(assignment_id)
    course.release()
    return course


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_release(course, assignment_id):
    release = course.path("release").read_text()
    assert "BEGIN SOLUTION" not in release and "BEGIN HIDDEN TESTS" not in release
    assert "raise NotImplementedError()" in release
    assert "not the right choice" not in release and "_reference_probe" not in release  # hidden tests are gone
    notebook = course.notebook("release")
    for gid in graded(source_notebook(assignment_id), "markdown"):
        assert cell_by_id(notebook, gid).source == "YOUR ANSWER HERE", gid


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_source_full_marks_release_zero(course, assignment_id):
    scores, needs_manual = course.grade("perfect", course.notebook("source"))
    assert scores == expected_scores(assignment_id)
    assert needs_manual == bool(MANUAL_POINTS[assignment_id])  # the written answers wait for a TA
    scores, needs_manual = course.grade("blank", course.notebook("release"))
    assert scores == {gid: 0.0 for gid in expected_scores(assignment_id)} and not needs_manual


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_validate_source_no_stderr(course, assignment_id):
    """nbgrader validate (in-process) passes the source: every test passes, no stderr."""
    from nbgrader.validator import Validator

    validator = Validator(config=assignments.load_course_config(course.dir))
    assert validator.validate(str(course.path("source"))) == {}


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ["ps3"])
@pytest.mark.parametrize("m", [m for m in MISTAKES["ps3"] if m.nbgrader], ids=lambda m: m.cell)
def test_ps3_planted_mistake_loses_only_its_points(course, assignment_id, m):
    student = re.sub(r"\W+", "_", m.name)[:40]
    scores, _ = course.grade(student, plant(source_notebook("ps3"), m))
    assert scores == expected_scores("ps3", m.loses)


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_tests_depend_only_on_their_function_and_mistake_catalogue(assignment_id, grading_kernel):
    """In one grading kernel (conftest's `grading_kernel`, NBGRADER_EXECUTION=autograde),
    the namespace emptied before each notebook by deleting the user's names (the cheaper
    reset: ~50 notebooks here); the ungraded demonstrations (*_demo, among them ps4's
    grid of experiments) are skipped, so no test may depend on them.

    1. Each solution cell alone answered, every other one left as its release stub (raise
       NotImplementedError): its own tests (the test cells after it) pass and all others
       fail. So a function's tests depend on that function only (and the given cells), and
       the source's answers pass their tests.
    2. So each planted mistake in `MISTAKES` needs only its own function's tests: it must
       lose exactly its `loses` cells.
    """
    source = source_notebook(assignment_id)
    owner = owners(source)
    stubs = released(source)

    def lost(notebook, tests=None):
        """The test cells that fail (raise or write to stderr): all of them, or only `tests`."""
        cells = []
        for i, c in enumerate(notebook.cells):
            gid = c.metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
            if c.cell_type != "code" or gid.endswith("_demo"):
                continue
            if tests is None or gid not in owner or gid in tests:
                cells.append((gid, c.source))
        failed = grading_kernel.failed(cells, reset="names")
        return {gid for gid in owner if failed.get(gid)}

    failures = []
    for function in sorted(set(owner.values())):
        notebook = copy_notebook(stubs)
        cell_by_id(notebook, function).source = cell_by_id(source, function).source
        others = {gid for gid, f in owner.items() if f != function}
        got = lost(notebook)
        if got != others:
            failures.append(f"only {function} answered: lost {sorted(got)}, expected all tests but its own")
    for m in MISTAKES[assignment_id]:
        got = lost(plant(source, m), tests={gid for gid, f in owner.items() if f == m.cell})
        if got != m.loses:
            failures.append(f"{m.name}: lost {sorted(got)}, expected {sorted(m.loses)}")
    assert not failures, "\n".join(failures)
