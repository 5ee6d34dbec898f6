"""Tests for normlab.experiments: the verdict rule, a tiny grid end to end, resuming,
the command line, the smoothness probes and the noisy-BN module.

Grids here are tiny (2 seeds, 1-2 epochs, ~100 training samples, one process), so the
numbers mean nothing; the tests check the machinery.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from normlab_tools import cli
from normlab.experiments import conditions, landscape, runner
from normlab.experiments.noisy import BatchNormNoise, add_batchnorm_noise
from normlab.experiments.scoreboard import RULE, compare, run_scoreboard
from normlab.models import mlp

TINY = {"epochs": 2, "train_limit": 96}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def count_trainings(monkeypatch):
    """Count the calls of `fit` made by the runner (the real fit still runs)."""
    calls = []
    real_fit = runner.fit

    def counting_fit(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(runner, "fit", counting_fit)
    return calls


# --------------------------------------------------------------------------------------
# The verdict rule on synthetic numbers
# --------------------------------------------------------------------------------------


def test_verdict_ahead_behind_and_draw():
    bn, vanilla = [97.0, 97.4, 96.6], [95.0, 95.4, 94.6]
    assert compare(bn, vanilla).outcome == "a"
    assert compare(vanilla, bn).outcome == "b"
    assert compare(bn, [v + 1.6 for v in vanilla]).outcome == "draw"  # 0.4 pp apart: inside delta
    assert compare([90, 99, 94], [92, 96, 95]).outcome == "draw"  # wide spread of the per-seed differences


def test_the_scoreboard_pairs_by_seed_so_what_a_seed_shares_drops_out():
    # seed 1 is a hard seed for both arms: unpaired, its spread hides BN's steady +1 point
    bn, vanilla = [97.0, 92.0, 96.0], [96.0, 91.0, 95.0]
    assert compare(bn, vanilla).outcome == "a" and compare(bn, vanilla).se == 0.0
    assert compare(bn, vanilla, paired=False).outcome == "draw"


def test_verdict_margin_is_the_larger_of_two_standard_errors_and_half_a_point():
    v = compare([97.0, 98.0], [95.0, 95.0])
    se = np.std([2.0, 3.0], ddof=1) / math.sqrt(2)  # of the per-seed differences
    assert v.se == pytest.approx(se) and v.margin == pytest.approx(2 * se) and v.diff == pytest.approx(2.5)
    assert v.outcome == "a"  # 2.5 > 2 * 0.5
    flat = compare([95.6, 95.6], [95.0, 95.0])  # no spread: the 0.5 pp floor decides
    assert flat.se == 0 and flat.margin == 0.5 and flat.outcome == "a"
    assert compare([95.4, 95.4], [95.0, 95.0]).outcome == "draw"


def test_verdict_for_times_prefers_the_faster_arm_and_needs_two_seeds():
    slower_bn = compare([12.0, 12.2, 11.8], [10.0, 10.1, 9.9], metric="epoch_ms")
    assert slower_bn.outcome == "b"  # vanilla ahead: faster
    assert compare([10.2, 10.3], [10.0, 10.1], metric="epoch_ms").outcome == "draw"  # within 5 %
    assert compare([97.0], [90.0, 91.0]).outcome == "n/a"
    assert "2 x SE" in RULE and "best validation accuracy" in RULE


def test_the_scoreboard_and_the_lectures_share_one_verdict_rule():
    """scoreboard.compare is normlab.stats.compare with the metric's direction and delta."""
    from normlab import stats
    from normlab.experiments import scoreboard

    assert scoreboard.Verdict is stats.Verdict
    a, b = [97.0, 97.4, 96.6], [95.0, 95.4, 94.6]
    assert compare(a, b) == stats.compare(a, b, min_effect=0.5, paired=True)
    assert compare(a, b, metric="epoch_ms") == stats.compare(a, b, higher_is_better=False, min_effect_relative=0.05,
                                                             paired=True)
    assert RULE.startswith(stats.RULE)  # the rule is stated once, in normlab.stats
    assert stats.mean_sd([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)), 2)
    assert math.isnan(stats.mean_sd([1.0])[1]) and math.isnan(stats.standard_error([1.0], [2.0, 3.0]))
    assert stats.standard_error([1.0, 3.0], [0.0, 0.0]) == pytest.approx(1.0)
    assert stats.paired_standard_error([1.0, 3.0], [0.0, 2.0]) == 0.0
    with pytest.raises(ValueError, match="same number"):
        stats.compare([1.0, 2.0], [1.0, 2.0, 3.0], paired=True)


# --------------------------------------------------------------------------------------
# Conditions and run keys
# --------------------------------------------------------------------------------------


def test_conditions_quote_a_claim_and_name_their_compared_arms():
    assert [c.name for c in conditions.CONDITIONS if c.tally] == [
        "baseline", "sigmoid", "lr_x10", "normal_init", "weight_decay", "dropout", "batch_size", "wall_time"]
    for c in conditions.CONDITIONS:
        assert c.claim and c.source and c.description
        for comparison in c.comparisons:
            assert {comparison.a, comparison.b} <= set(c.arms)


def test_identical_configurations_share_one_run_and_any_change_makes_a_new_one():
    jobs = runner.plan([conditions.get("baseline"), conditions.get("activations")], runner.QUICK)
    key = {(j.condition, j.cell, j.arm, j.seed): j.key for j in jobs}
    assert key[("baseline", "", "BN", 0)] == key[("activations", "relu", "BN", 0)]
    assert key[("baseline", "", "BN", 0)] != key[("baseline", "", "BN", 1)]
    assert key[("baseline", "", "BN", 0)] != key[("baseline", "", "vanilla", 0)]
    longer = runner.plan([conditions.get("baseline")], runner.with_overrides(runner.QUICK, overrides={"epochs": 31}))
    assert longer[0].key != jobs[0].key


def test_unknown_condition_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="unknown condition 'nope'.*baseline"):
        run_scoreboard(["nope"], out="unused", progress=False)


# --------------------------------------------------------------------------------------
# A tiny grid end to end, and resuming
# --------------------------------------------------------------------------------------


def test_tiny_grid_writes_every_file_with_the_right_shape(tmp_path, count_trainings):
    board = run_scoreboard(["baseline", "dropout"], seeds=2, out=tmp_path, progress=False, workers=1,
                           overrides=TINY)
    assert len(count_trainings) == 8  # 2 conditions x 2 arms x 2 seeds
    assert board.runs_trained == 8 and board.runs_reused == 0
    for name in ("results.csv", "summary.csv", "scoreboard.csv", "scoreboard.md", "results.json",
                 "curves/digits-mlp_baseline.png", "curves/digits-mlp_dropout.png", "scoreboard_digits-mlp.png"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "runs").glob("*.json"))) == 8
    assert not list((tmp_path / "runs").glob(".tmp-*"))

    assert [(r["condition"], r["a"], r["b"]) for r in board.rows] == [("baseline", "BN", "vanilla"),
                                                                      ("dropout", "BN", "vanilla")]
    assert len(board.summary) == 4 and len(board.runs) == 8
    for row in board.rows:
        assert row["n_a"] == row["n_b"] == 2
        assert row["verdict"] in ("BN ahead", "vanilla ahead", "draw")
        assert row["outcome"] == compare([r["value"] for r in board.runs if r["condition"] == row["condition"]
                                          and r["arm"] == "BN"],
                                         [r["value"] for r in board.runs if r["condition"] == row["condition"]
                                          and r["arm"] == "vanilla"]).outcome
    score = board.tally["digits/mlp"]
    assert score["BN"] + score["vanilla"] + score["draw"] + score["n/a"] == 2

    lines = (tmp_path / "scoreboard.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("setup,condition,cell,a,b,")
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 9
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rule"] == RULE and len(saved["rows"]) == 2 and saved["settings"]["seeds"] == 2
    assert "Verdict rule" in (tmp_path / "scoreboard.md").read_text()
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert len(record["test_acc"]) == record["epochs_run"] == len(record["history"]["val_acc"])
    assert record["test_acc_at_best"] == record["test_acc"][record["best_epoch"]]


def test_resume_skips_finished_runs_and_trains_only_new_ones(tmp_path, count_trainings):
    run_scoreboard(["baseline"], seeds=2, out=tmp_path, progress=False, workers=1, overrides=TINY, plots=False)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    assert len(count_trainings) == 4

    again = run_scoreboard(["baseline"], seeds=2, out=tmp_path, progress=False, workers=1, overrides=TINY,
                           plots=False)
    assert len(count_trainings) == 4  # nothing retrained
    assert again.runs_trained == 0 and again.runs_reused == 4
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")} == files

    more = run_scoreboard(["baseline"], seeds=3, out=tmp_path, progress=False, workers=1, overrides=TINY,
                          plots=False)
    assert len(count_trainings) == 6  # only seed 2 of each arm
    assert more.runs_trained == 2 and more.runs_reused == 4
    assert more.rows[0]["n_a"] == 3


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "runs" / "abc.json"

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        runner.write_json_atomic(target, {"a": 1})
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_wall_time_arms_share_one_paired_run_timed_in_cpu_milliseconds(tmp_path):
    board = run_scoreboard(["wall_time"], seeds=2, out=tmp_path, progress=False, workers=1,
                           overrides={"epochs": 1, "train_limit": 64}, plots=True)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 6 * 2  # cells x seeds, both arms in one run
    assert [r["cell"] for r in board.rows] == [f"batch {b}" for b in (32, 64, 128, 256, 512, 1024)]
    for row in board.rows:
        assert row["metric"] == "epoch_ms" and row["mean_a"] > 0 and row["mean_b"] > 0
        assert "overhead" in row["notes"]
    assert (tmp_path / "wall_time_digits-mlp.png").is_file()


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------


def test_cli_runs_a_tiny_grid_into_out(tmp_path, capsys):
    code = cli.main(["experiments", "--conditions", "baseline", "--seeds", "2", "--epochs", "1",
                     "--train-limit", "64", "--workers", "1", "--no-plots", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "BN vs vanilla" in out and "batchnorm" in out and "Verdict rule" in out
    assert (tmp_path / "scoreboard.md").is_file() and (tmp_path / "timing.json").is_file()
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4


def test_cli_names_an_unknown_condition_and_exits_2(tmp_path, capsys):
    code = cli.main(["experiments", "--conditions", "baseline", "bogus", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown condition 'bogus'" in err and "baseline" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_cli_refuses_a_non_positive_seed_count(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["experiments", "--seeds", "0"])
    assert exit_info.value.code == 2


def test_cli_lists_conditions_with_their_claims(capsys):
    assert cli.main(["experiments", "--list"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "smoothness" in out and "we have to admit defeat" in out


# --------------------------------------------------------------------------------------
# Smoothness
# --------------------------------------------------------------------------------------


def test_smoothness_returns_finite_arrays_of_the_documented_shapes(tmp_path, monkeypatch):
    kwargs = dict(seeds=2, epochs=1, points=3, step_sizes=(0.01, 0.1), overrides={"train_limit": 192},
                  out=tmp_path, progress=False)
    result = landscape.smoothness(**kwargs)
    assert result.arms == ("BN", "vanilla")
    assert result.loss.shape == result.grad_change.shape == (2, 2, 3, 2)
    assert result.loss0.shape == result.grad_norm.shape == (2, 2, 3)
    assert result.train_loss.shape == (2, 2, 3)  # 192 samples / batch 64 = 3 steps
    assert list(result.steps) == [0, 1, 2]
    for values in (result.loss, result.grad_change, result.loss_range(), result.max_grad_change(), result.beta()):
        assert np.isfinite(values).all()
    assert (result.grad_change > 0).all() and (result.beta() > 0).all()
    assert {row["arm"] for row in result.summary()} == {"BN", "vanilla"}
    json.dumps(result.as_dict())

    def no_training(*args):
        raise AssertionError("cached smoothness runs must be reused")

    monkeypatch.setattr(landscape, "_probe_run", no_training)
    cached = landscape.smoothness(**kwargs)
    np.testing.assert_array_equal(cached.loss, result.loss)


def test_smoothness_refuses_more_points_than_training_steps():
    with pytest.raises(ValueError, match="more than the 2 training steps"):
        landscape.smoothness(seeds=1, epochs=1, points=3, overrides={"train_limit": 96}, progress=False)


def test_smoothness_probes_leave_the_trained_network_untouched():
    torch.manual_seed(0)
    model = mlp(8, 3, hidden=(16,), norm="batch")
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss0, grad_norm, losses, changes = landscape._probe(model, x, y, (0.01, 0.1), probe_seed=1)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert len(losses) == len(changes) == 2 and grad_norm > 0
    assert changes[0] < changes[1]  # a longer step moves the gradient more (smooth, tiny model)


# --------------------------------------------------------------------------------------
# Noisy batch norm
# --------------------------------------------------------------------------------------


def test_batchnorm_noise_changes_training_outputs_and_is_the_identity_in_eval():
    torch.manual_seed(0)
    noise = BatchNormNoise(5)
    x = torch.randn(64, 5)
    y1, y2 = noise(x), noise(x)
    assert not torch.allclose(y1, x) and not torch.allclose(y1, y2)  # resampled every call
    # a non-zero mean and a non-unit scale, per unit: far from x's own mean 0 / std 1
    shift = (y1 - x).mean(0)
    assert (shift.abs() > 0.01).all()
    noise.eval()
    assert torch.equal(noise(x), x)
    images = torch.randn(4, 5, 3, 3)
    noise.train()
    out = noise(images)
    assert out.shape == images.shape
    per_channel_scale = (out - out.mean((0, 2, 3), keepdim=True)).std((0, 2, 3)) / images.std((0, 2, 3))
    assert not torch.allclose(per_channel_scale, torch.ones(5), atol=0.05)


def test_add_batchnorm_noise_puts_noise_after_every_batchnorm_and_keeps_eval_outputs():
    torch.manual_seed(0)
    plain = mlp(8, 3, hidden=(16, 16), norm="batch")
    noisy = add_batchnorm_noise(plain)
    kinds = [type(m) for m in noisy]
    assert kinds.count(BatchNormNoise) == 2
    for i, kind in enumerate(kinds):
        if kind is BatchNormNoise:
            assert kinds[i - 1] is nn.BatchNorm1d
    x = torch.randn(10, 8)
    plain.eval()
    noisy.eval()
    torch.testing.assert_close(noisy(x), plain(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="no BatchNorm"):
        add_batchnorm_noise(mlp(8, 3, hidden=(16,)))
    with pytest.raises(ValueError, match="low <= high"):
        BatchNormNoise(4, scale=(2.0, 1.0))


@pytest.mark.slow
def test_two_worker_processes_give_the_same_runs_as_one(tmp_path):
    """The pool path: same files, same numbers as training in this process."""
    one = run_scoreboard(["baseline"], seeds=2, out=tmp_path / "one", progress=False, workers=1, overrides=TINY,
                         plots=False)
    two = run_scoreboard(["baseline"], seeds=2, out=tmp_path / "two", progress=False, workers=2, overrides=TINY,
                         plots=False)
    assert two.runs_trained == 4
    assert [r["value"] for r in two.runs] == [r["value"] for r in one.runs]


@pytest.mark.slow
def test_a_script_without_a_main_guard_runs_two_workers(tmp_path):
    """A spawned pool re-ran such a script in every worker and never finished."""
    script = tmp_path / "unguarded.py"
    script.write_text("from normlab.experiments import run_scoreboard\n"
                      f"board = run_scoreboard(['baseline'], seeds=2, out={str(tmp_path / 'out')!r}, "
                      f"progress=False, workers=2, overrides={TINY!r}, plots=False)\n"
                      "print('trained', board.runs_trained)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "trained 4"


def test_batchnorm_noise_can_apply_its_mean_at_test_time():
    noise = BatchNormNoise(3, scale=(1.0, 2.0), shift=(0.0, 1.0), test_time="mean").eval()
    x = torch.randn(4, 3)
    torch.testing.assert_close(noise(x), 1.5 * x + 0.5)
    with pytest.raises(ValueError, match="test_time"):
        BatchNormNoise(3, test_time="sometimes")


def test_paired_verdict_leaves_out_the_load_both_arms_of_a_run_share():
    # BN is 10% slower in every run, but the runs saw very different machine loads
    vanilla = [10.0, 20.0, 15.0]
    bn = [11.0, 22.0, 16.5]
    assert compare(bn, vanilla, metric="epoch_ms", paired=False).outcome == "draw"  # unpaired: the load swamps it
    paired = compare(bn, vanilla, metric="epoch_ms")
    assert paired.outcome == "b" and paired.se == pytest.approx(np.std([1.0, 2.0, 1.5], ddof=1) / math.sqrt(3))


@pytest.mark.slow
def test_full_mode_adds_the_torchvision_sets_found_under_data_root(tmp_path):
    """--full trains on MNIST / CIFAR-10 too when their files are on disk (tiny files here,
    in the real formats, written by test_data's helpers)."""
    from support import tiny_cifar10 as _tiny_cifar10, tiny_mnist as _tiny_mnist

    assert runner.find_torchvision_setups(tmp_path) == []
    _tiny_mnist(tmp_path, "MNIST", n_train=120, n_test=40)
    _tiny_cifar10(tmp_path, per_batch=24, n_test=40)
    assert runner.find_torchvision_setups(tmp_path) == list(runner.TORCHVISION_SETUPS)
    board = run_scoreboard(["baseline"], seeds=2, out=tmp_path / "out", quick=False, progress=False, workers=1,
                           data_root=tmp_path, overrides={"epochs": 1, "train_limit": 64}, plots=False)
    setups = {row["setup"] for row in board.rows}
    assert setups == {"digits/mlp", "digits/cnn", "mnist/mlp", "mnist/cnn", "cifar10/cnn"}
    assert board.runs_trained == 5 * 2 * 2  # setups x arms x seeds
