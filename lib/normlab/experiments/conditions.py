r"""The experiment conditions: what the seeds claim, and how each claim becomes runs.

A `Condition` is declarative. It names its *arms* (the models compared, e.g. BN and
vanilla), its *cells* (variants such as batch sizes or activations; one unnamed cell
when there are none) and the *comparisons* the scoreboard judges, each with the seed's
claim quoted and the outcome that claim predicts. Settings are overrides of
`BASE_CONFIG`, the thesis talk's training strategy (backup slide "Training strategy for
the experiments"):

* the thesis' MLP (3 hidden layers of 100 units; slide "Models used in the experiments")
  or a small CNN;
* Kaiming initialization, inputs standardized with train statistics;
* cross-entropy, mini-batch SGD with Nesterov momentum 0.9, batch size 64;
* initial learning rate 0.01, halved after 5 epochs without a lower validation loss;
* early stopping after 20 epochs without a lower validation loss.

The quick mode shortens the patience and the number of epochs (see `runner.QUICK`).

A run's configuration is ``BASE_CONFIG | mode | condition.base | quick overrides | the
caller's overrides | cell | arm | seed`` (later wins). Two conditions that ask for the
same configuration share the run: the ReLU baseline, the batch-size-64 cell, the ReLU
cell of the activations and the "before" arm of the BN-position condition are one set
of runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Smoothness probe settings per mode (quick, full): training epochs, probed points.
SMOOTHNESS_SETTINGS = {"quick": {"epochs": 10, "points": 12}, "full": {"epochs": 30, "points": 20}}

__all__ = [
    "BASE_CONFIG",
    "NOISE",
    "Cell",
    "Comparison",
    "Condition",
    "CONDITIONS",
    "THESIS_TALLY",
    "get",
    "names",
]

#: One run's settings before any override: the thesis' training strategy on digits.
BASE_CONFIG: dict = {
    "dataset": "digits",          # digits | mnist | fashion-mnist | cifar10
    "model": "mlp",               # mlp | cnn
    "hidden": [100, 100, 100],    # MLP hidden widths: the thesis' MLP, 3 hidden layers of 100
    "channels": [16, 32],         # CNN conv widths
    "cnn_hidden": 64,             # CNN head width
    "norm": "none",
    "norm_position": "before",
    "activation": "relu",
    "init": "kaiming",
    "init_std": 1.0,
    "dropout": 0.0,
    "num_groups": 4,              # group norm: 4 groups divide every width (100; CNN 16, 32, 64)
    "noise": None,                # BatchNormNoise settings after every BN (noisy BN), or None
    "lr": 0.01,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 0.0,
    "batch_size": 64,
    "lr_factor": 0.5,
    "lr_patience": 5,
    "early_stop_patience": 20,
    "epochs": 100,
    "seed": 0,
    "split_seed": 0,              # the train/val/test split is the same for every seed
    "train_limit": None,          # keep only this many training samples (tests, quick looks)
    "data_limit": None,           # torchvision sets: official training images used
}

#: Default settings of the noisy-BN noise (see `normlab.experiments.noisy.BatchNormNoise`).
NOISE: dict = {"shift": (-0.5, 1.5), "scale": (0.5, 2.5), "jitter": 0.1}

BN = {"norm": "batch"}
VANILLA = {"norm": "none"}
BN_ARMS = {"BN": BN, "vanilla": VANILLA}

# Outcomes of a comparison "A vs B": A ahead, B ahead, or a draw (see scoreboard.compare).
A, B, DRAW = "a", "b", "draw"


@dataclass(frozen=True)
class Cell:
    """One variant of a condition: a label (shown in tables) and its overrides."""

    label: str
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """Arm ``a`` against arm ``b`` on the condition's metric.

    ``expected`` is what the seed predicts, as the set of outcomes that agree with it
    (``"a"``, ``"b"``, ``"draw"``); a dict maps a cell label to such a set (cells not in
    it have no claim); None means the seeds make no claim about this comparison.
    """

    a: str
    b: str
    expected: tuple | dict | None = None

    def expected_for(self, cell_label: str) -> tuple | None:
        if isinstance(self.expected, dict):
            return self.expected.get(cell_label)
        return self.expected


@dataclass(frozen=True)
class Condition:
    """A named experiment from the seeds.

    ``metric`` is ``"test_acc"`` (test accuracy in % at the epoch of best validation
    accuracy) or ``"epoch_ms"`` (an arm's median CPU time of a training epoch, in ms).
    ``tally``: counted in the thesis' "batchnorm 6 - vanilla 1" score.
    ``quick_cells`` / ``quick_overrides``: in quick mode, only these cells, and these
    settings on top (to keep the whole quick grid within its time budget).
    ``rank_arm``: also rank the cells by this arm's mean (the activations table).
    ``paired``: one run per (cell, seed) trains all arms in one process, alternating
    epochs, and records each arm's epoch times (fair timing on a busy machine); the
    run's ``epochs`` are then the timed epochs per arm.
    """

    name: str
    title: str
    description: str
    source: str
    claim: str
    arms: dict
    comparisons: tuple
    cells: tuple = (Cell(""),)
    base: dict = field(default_factory=dict)
    metric: str = "test_acc"
    tally: bool = False
    quick_cells: tuple | None = None
    quick_overrides: dict = field(default_factory=dict)
    rank_arm: str | None = None
    claimed_ranking: tuple | None = None
    paired: bool = False

    def cells_for(self, quick: bool) -> tuple:
        if quick and self.quick_cells is not None:
            return tuple(c for c in self.cells if c.label in self.quick_cells)
        return self.cells


def _batch_cells(sizes):
    return tuple(Cell(f"batch {b}", {"batch_size": b}) for b in sizes)


THESIS = "Schilling, thesis talk 'The Effect of Batch Normalization on Deep Convolutional Neural Networks'"
LECTURE = "Raschka, STAT 479 lecture 11"

CONDITIONS: tuple = (
    Condition(
        name="baseline",
        title="ReLU baseline",
        description="ReLU, Kaiming init, the thesis training strategy; BN before every activation.",
        source=f"{THESIS}, slide 'Batchnorm achieves higher accuracies'",
        claim="Batchnorm beats the vanilla network on all datasets! Score: Batchnorm 1 - vanilla 0",
        arms=BN_ARMS,
        comparisons=(Comparison("BN", "vanilla", (A,)),),
        tally=True,
    ),
    Condition(
        name="sigmoid",
        title="Sigmoid (+ Xavier)",
        description="Sigmoid activations instead of ReLU, Xavier initialization.",
        source=f"{THESIS}, slide 'Batchnorm can handle Sigmoids'",
        claim="Vanilla network is stuck at random guessing and cannot escape; Batchnorm model "
              "converges but with major fluctuations. Score: Batchnorm 2 - vanilla 0",
        arms=BN_ARMS,
        base={"activation": "sigmoid", "init": "xavier"},
        comparisons=(Comparison("BN", "vanilla", (A,)),),
        tally=True,
    ),
    Condition(
        name="lr_x10",
        title="Learning rate x 10",
        description="ReLU baseline with initial learning rate 0.1 instead of 0.01.",
        source=f"{THESIS}, slide 'Batchnorm favors higher learning rates'",
        claim="Batchnorm: higher accuracy & convergence speed than baseline; Vanilla model is "
              "stuck at random guessing... Score: batchnorm 3 - vanilla 0",
        arms=BN_ARMS,
        base={"lr": 0.1},
        comparisons=(Comparison("BN", "vanilla", (A,)),),
        tally=True,
    ),
    Condition(
        name="normal_init",
        title="N(0, 1) init",
        description="ReLU baseline with every weight drawn from N(0, 1) instead of Kaiming.",
        source=f"{THESIS}, slide 'Batchnorm handles arbitrary inits'",
        claim="Batchnorm: smooth learning but worse accuracy than baseline init; Vanilla model "
              "is stuck again. Score: batchnorm 4 - vanilla 0",
        arms=BN_ARMS,
        base={"init": "normal", "init_std": 1.0},
        comparisons=(Comparison("BN", "vanilla", (A,)),),
        tally=True,
    ),
    Condition(
        name="normal_init_shallow",
        title="N(0, 1) init, 2 hidden layers (ablation)",
        description="The N(0, 1) condition on a shallower MLP, 2 hidden layers of 128 instead of "
                    "the thesis' 3 of 100: does the vanilla network still get stuck? (An ablation "
                    "of depth; not in the thesis' score.)",
        source=f"{THESIS}, slide 'Batchnorm handles arbitrary inits', on a shallower network",
        claim="Vanilla model is stuck again (the thesis' claim, made for its deeper networks)",
        arms=BN_ARMS,
        base={"init": "normal", "init_std": 1.0, "hidden": [128, 128]},
        comparisons=(Comparison("BN", "vanilla", None),),
    ),
    Condition(
        name="weight_decay",
        title="Weight decay 5e-4",
        description="ReLU baseline with L2 weight decay 5e-4 (torch SGD weight_decay).",
        source=f"{THESIS}, slide 'Batchnorm likes some weight decay'",
        claim="Both models achieve higher accuracies than baseline models; Batchnorm model "
              "consistently ahead of vanilla counterpart. Score: batchnorm 5 - vanilla 0",
        arms=BN_ARMS,
        base={"weight_decay": 5e-4},
        comparisons=(Comparison("BN", "vanilla", (A,)),),
        tally=True,
    ),
    Condition(
        name="dropout",
        title="Dropout 0.5",
        description="ReLU baseline with dropout (p = 0.5 dropped, i.e. keep probability 0.5) "
                    "after every hidden activation.",
        source=f"{THESIS}, slide 'Batchnorm suffers under dropout'",
        claim="Batchnorm not ahead of vanilla counterpart. Score: batchnorm 5 - vanilla 0 "
              "(we'll call this a draw!)",
        arms=BN_ARMS,
        base={"dropout": 0.5},
        comparisons=(Comparison("BN", "vanilla", (DRAW,)),),
        tally=True,
    ),
    Condition(
        name="batch_size",
        title="Batch sizes 32 ... 1024",
        description="ReLU baseline with batch sizes 2^5 ... 2^10 (learning rate kept at 0.01).",
        source=f"{THESIS}, slide 'Batchnorm can handle all batch sizes'",
        claim="Batchnorm ahead independent of batch size; General trend: smaller batch sizes "
              "work better (for our models). Score: batchnorm 6 - vanilla 0",
        arms=BN_ARMS,
        cells=_batch_cells((32, 64, 128, 256, 512, 1024)),
        comparisons=(Comparison("BN", "vanilla", (A,)),),
        tally=True,
    ),
    Condition(
        name="wall_time",
        title="Wall time per epoch",
        description="Time of a training epoch, BN vs vanilla, for each batch size. Both networks "
                    "train in one process, epochs alternating (BN, vanilla, vanilla, BN, ...) after a "
                    "warm-up epoch, so that both see the same machine load; metric: the median "
                    "CPU time (one torch thread) of a training epoch, lower is better.",
        source=f"{THESIS}, slide 'Batchnorm time overhead noticeable' (Table B.4)",
        claim="Batchnorm time overhead noticeable (mean overhead 15.2% to 19.7%, CNN on GPU); "
              "Score: batchnorm 6 - vanilla 1 (we have to admit defeat here)",
        arms=BN_ARMS,
        cells=_batch_cells((32, 64, 128, 256, 512, 1024)),
        base={"epochs": 10},
        comparisons=(Comparison("BN", "vanilla", (B,)),),
        metric="epoch_ms",
        tally=True,
        paired=True,
    ),
    Condition(
        name="bn_position",
        title="BN before vs after ReLU",
        description="BN between Linear and ReLU (the paper's place) or after the ReLU.",
        source=f"{LECTURE}, benchmark table 'BN -- before or after ReLU?' (CaffeNet on ImageNet)",
        claim="Before: accuracy 0.474; After: accuracy 0.499",
        arms={"after": {"norm": "batch", "norm_position": "after"},
              "before": {"norm": "batch", "norm_position": "before"}},
        comparisons=(Comparison("after", "before", (A,)),),
    ),
    Condition(
        name="activations",
        title="Activations with and without BN",
        description="ReLU, PReLU, ELU, sigmoid, tanh and no activation, each BN vs vanilla "
                    "(Kaiming init throughout, as in a drop-in swap of the activation).",
        source=f"{LECTURE}, benchmark table 'BN and activations' (CaffeNet on ImageNet); "
               f"{THESIS}, conclusion 'activation functions? Can handle them all!'",
        claim="With BN: PReLU 0.503, RReLU 0.500, ReLU 0.499, ELU 0.498, Maxout 0.487, "
              "Sigmoid 0.475, TanH 0.448, No 0.384",
        arms=BN_ARMS,
        cells=tuple(Cell(a, {"activation": a}) for a in ("relu", "prelu", "elu", "sigmoid", "tanh", "none")),
        comparisons=(Comparison("BN", "vanilla", None),),
        rank_arm="BN",
        claimed_ranking=("prelu", "relu", "elu", "sigmoid", "tanh", "none"),
    ),
    Condition(
        name="elu",
        title="BN + ReLU vs vanilla ELU",
        description="The ReLU baseline with BN against the vanilla network with ELU activations.",
        source=f"{THESIS}, backup slide 'Batchnorm + ReLU outperforms ELU'",
        claim="Paper claims that vanilla ELUs outperform ReLU models with batchnorm; We found "
              "that this is not the case (at least for our setup): batchnorm + ReLU: slightly ahead",
        arms={"BN + ReLU": {"norm": "batch", "activation": "relu"},
              "vanilla ELU": {"norm": "none", "activation": "elu"}},
        comparisons=(Comparison("BN + ReLU", "vanilla ELU", (A,)),),
    ),
    Condition(
        name="norms_batch_size",
        title="BN vs GN vs LN across batch sizes",
        description="Batch, group (4 groups) and layer norm before every ReLU, batch sizes 2 ... 256.",
        source="Wu & He (2018), Group normalization, Figure 1 (ResNet-50 on ImageNet), in "
               f"{LECTURE}",
        claim="BN's error increases rapidly when reducing the batch size. GN's computation is "
              "independent of batch sizes, and its error rate is stable despite the batch size "
              "changes. GN has substantially lower error (by 10%) than BN with a batch size of 2.",
        arms={"GN": {"norm": "group"}, "LN": {"norm": "layer"}, "BN": {"norm": "batch"}},
        cells=_batch_cells((2, 4, 8, 16, 32, 64, 128, 256)),
        comparisons=(
            # Wu & He's Figure 1: GN ahead for 2..8 images per GPU, about equal at 16, BN
            # slightly ahead at 32 (24.1% vs 23.6% error). Larger batches are not in it.
            Comparison("GN", "BN", {"batch 2": (A,), "batch 4": (A,), "batch 8": (A,),
                                    "batch 16": (A, DRAW), "batch 32": (B, DRAW)}),
            Comparison("LN", "BN", None),
        ),
        quick_cells=("batch 2", "batch 8", "batch 32", "batch 128"),
        quick_overrides={"epochs": 5},  # batch 2 is 629 steps an epoch: the quick budget's largest item
    ),
    Condition(
        name="noisy_bn",
        title="Noisy BN (Santurkar et al.)",
        description="BN followed by per-unit noise with a random, time-varying non-zero mean "
                    "and non-unit scale (BatchNormNoise; identity at test time), against plain BN "
                    "and vanilla. An extra arm applies the noise's mean scale and shift at test "
                    "time instead of the identity, to separate training from the train/test "
                    "mismatch (no claim in the seeds about it).",
        source="Santurkar et al. (2018), How does batch normalization help optimization?, "
               f"Figure 2 (VGG on CIFAR-10), in {LECTURE}",
        claim="The 'noisy' BatchNorm model nearly matches the performance of standard BatchNorm "
              "model, despite complete distributional instability.",
        arms={"noisy BN": {"norm": "batch", "noise": NOISE},
              "noisy BN (mean at test)": {"norm": "batch", "noise": {**NOISE, "test_time": "mean"}},
              "BN": {"norm": "batch"}, "vanilla": {"norm": "none"}},
        comparisons=(Comparison("noisy BN", "BN", (DRAW,)), Comparison("noisy BN", "vanilla", None),
                     Comparison("noisy BN (mean at test)", "BN", None)),
    ),
)

#: The thesis' own final score over its tally conditions: BN 6, vanilla 1, one draw.
THESIS_TALLY = {"BN": 6, "vanilla": 1, "draw": 1}


def names() -> list[str]:
    return [c.name for c in CONDITIONS]


def get(name: str) -> Condition:
    for condition in CONDITIONS:
        if condition.name == name:
            return condition
    raise KeyError(f"unknown condition {name!r}; known: {', '.join(names())}")
