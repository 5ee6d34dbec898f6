r"""Runs: one (condition, cell, arm, seed) -> one training run -> one JSON file.

A run is fully described by its configuration (a flat dict, see
`conditions.BASE_CONFIG`). Its file is ``OUT/runs/<key>.json`` where the key is a hash
of that configuration, so

* a finished run is never recomputed (its file exists: resumable after an interrupt);
* two conditions asking for the same configuration share one run;
* changing any setting (epochs, a seed, the code's `VERSION`) makes a new run.

Files are written to a temporary name and renamed (atomic on POSIX), so an interrupted
run never leaves a half-written file.

Each run trains with `normlab.train.fit` (the thesis' training strategy) on one torch
thread, and additionally evaluates the test set after every epoch, so that the result
can be read at the epoch of best validation accuracy. Pending runs go to a pool of
worker processes (forked on Linux, one torch thread each), run in this process, or go to
an ``executor`` the caller gives (any `concurrent.futures.Executor`, e.g. a Dask
cluster's): its workers return each record as data and this process writes the file, so
they need no access to the runs folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset
from tqdm.auto import tqdm

from normlab import data as nldata
from normlab.experiments.conditions import BASE_CONFIG, CONDITIONS, Condition
from normlab.experiments.noisy import add_batchnorm_noise
from normlab.models import mlp, small_cnn
from normlab.train import evaluate, fit, set_seed

__all__ = ["Settings", "QUICK", "FULL", "Job", "plan", "config_key", "train_one", "run_jobs",
           "load_record", "find_torchvision_setups", "VERSION"]

#: Part of every run's key: bump it when a change of this code changes what a run measures.
VERSION = 1

EVAL_BATCH_SIZE = 1024


@dataclass(frozen=True)
class Settings:
    """A mode of the experiments: how many seeds, on which (dataset, model) setups, and
    the settings every run gets on top of `BASE_CONFIG` (``overrides``, before the
    condition's own settings). ``quick`` selects the conditions' quick cells and
    overrides. ``user``: the caller's overrides, after the condition's (e.g. fewer
    epochs for a tiny grid) but before the cell's and the arm's."""

    name: str
    seeds: int
    setups: tuple
    overrides: dict = field(default_factory=dict)
    quick: bool = True
    user: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "seeds": self.seeds, "setups": [list(s) for s in self.setups],
                "overrides": self.overrides, "quick": self.quick, "user": self.user}


#: Default mode: the MLP on digits, 3 seeds, at most 30 epochs, shorter patience.
QUICK = Settings("quick", seeds=3, setups=(("digits", "mlp"),),
                 overrides={"epochs": 30, "lr_patience": 5, "early_stop_patience": 10}, quick=True)

#: --full: 5 seeds, MLP and CNN on digits, the thesis' patience, up to 100 epochs, every cell.
FULL = Settings("full", seeds=5, setups=(("digits", "mlp"), ("digits", "cnn")),
                overrides={"epochs": 100, "lr_patience": 5, "early_stop_patience": 20}, quick=False)

#: Setups added in --full when the data set is found under --data-root.
TORCHVISION_SETUPS = (("mnist", "mlp"), ("mnist", "cnn"), ("cifar10", "cnn"))
#: Official training images used from a torchvision set in --full (2 CPU cores).
TORCHVISION_LIMIT = 10000


@dataclass(frozen=True)
class Job:
    """One run: where it belongs in the tables, and its configuration."""

    setup: str
    condition: str
    cell: str
    arm: str
    seed: int
    config: dict

    @property
    def key(self) -> str:
        return config_key(self.config)

    @property
    def label(self) -> str:
        cell = f" [{self.cell}]" if self.cell else ""
        return f"{self.setup} {self.condition}{cell} {self.arm} seed {self.seed}"


def config_key(config: dict) -> str:
    """A 16-hex-digit hash of the configuration (with `VERSION`), the run's file name."""
    text = json.dumps({**config, "version": VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def setup_name(dataset: str, model: str) -> str:
    return f"{dataset}/{model}"


def plan(conditions, settings: Settings) -> list[Job]:
    """Every job of ``conditions`` (Condition objects) under ``settings``: setups x
    cells x arms x seeds (seeds 0 .. settings.seeds - 1). The arms of a ``paired``
    condition share one run: its config holds every arm's overrides under ``"arms"``."""
    jobs = []
    for dataset, model in settings.setups:
        for condition in conditions:
            extra = condition.quick_overrides if settings.quick else {}
            for cell in condition.cells_for(settings.quick):
                for arm, arm_overrides in condition.arms.items():
                    for seed in range(settings.seeds):
                        config = {**BASE_CONFIG, "dataset": dataset, "model": model}
                        config.update(settings.overrides)
                        config.update(condition.base)
                        config.update(extra)
                        config.update(settings.user)
                        config.update(cell.overrides)
                        if condition.paired:
                            config["experiment"] = "paired_timing"
                            config["arms"] = condition.arms
                        else:
                            config.update(arm_overrides)
                        config["seed"] = seed
                        if dataset in nldata.TORCHVISION_NAMES and config["data_limit"] is None:
                            config["data_limit"] = TORCHVISION_LIMIT
                        config = json.loads(json.dumps(config))  # tuples -> lists: as stored
                        jobs.append(Job(setup_name(dataset, model), condition.name, cell.label, arm, seed, config))
    return jobs


def find_torchvision_setups(data_root) -> list[tuple]:
    """The `TORCHVISION_SETUPS` whose files are present under ``data_root``."""
    if data_root is None:
        return []
    found = []
    for dataset, model in TORCHVISION_SETUPS:
        try:
            nldata._require_files(dataset, os.fspath(data_root))
        except FileNotFoundError:
            continue
        found.append((dataset, model))
    return found


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------

_DATA_CACHE: dict = {}


def _splits(config: dict, data_root):
    flat = config["model"] == "mlp"
    key = (config["dataset"], flat, config["split_seed"], config["data_limit"], os.fspath(data_root or ""))
    if key not in _DATA_CACHE:
        if config["dataset"] == "digits":
            splits = nldata.load_digits(flat=flat, seed=config["split_seed"])
        else:
            if data_root is None:
                raise FileNotFoundError(f"{config['dataset']} needs a data root (--data-root)")
            splits = nldata.load_torchvision(config["dataset"], data_root, flat=flat, seed=config["split_seed"],
                                             limit=config["data_limit"])
        _DATA_CACHE[key] = splits
    splits = _DATA_CACHE[key]
    limit = config["train_limit"]
    x_train, y_train = splits.x_train, splits.y_train
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    return splits, x_train, y_train


def batches(x, y, batch_size, shuffle, seed=0) -> DataLoader:
    """A loader of (x, y) mini-batches taken by tensor indexing, one batch at a time.

    It visits the same samples per epoch as `DataSplits.loaders`, but indexes the
    tensors once per batch instead of once per sample: on small models the per-sample
    path costs more than the model itself, which would hide BN's time overhead. The
    shuffle order follows a ``torch.Generator`` seeded with ``seed``.
    """
    dataset = TensorDataset(x, y)
    sampler = (RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)) if shuffle
               else SequentialSampler(dataset))
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)


def build_model(config: dict, input_shape, num_classes) -> torch.nn.Sequential:
    """The network a configuration describes (weights drawn from torch's global generator)."""
    common = {k: config[k] for k in ("norm", "norm_position", "activation", "init", "init_std", "dropout",
                                     "num_groups")}
    if config["model"] == "mlp":
        model = mlp(int(np.prod(input_shape)), num_classes, hidden=tuple(config["hidden"]), **common)
    elif config["model"] == "cnn":
        model = small_cnn(input_shape[0], num_classes, tuple(input_shape[1:]), channels=tuple(config["channels"]),
                          hidden=config["cnn_hidden"], **common)
    else:
        raise ValueError(f"unknown model {config['model']!r}; choose 'mlp' or 'cnn'")
    if config["noise"]:
        model = add_batchnorm_noise(model, **config["noise"])
    return model


class _ValidateAndTest:
    """The validation loader, plus a test-set evaluation each time it is iterated.

    `fit` validates exactly once per epoch by iterating its ``val_loader`` inside
    `evaluate` (model in eval mode, no gradient); wrapping that loader lets each run
    also record the test loss and accuracy after every epoch without changing `fit`.
    """

    def __init__(self, model, val_loader, test_loader):
        self.model, self.val_loader, self.test_loader = model, val_loader, test_loader
        self.test_loss, self.test_acc = [], []

    def __iter__(self):
        loss, acc = evaluate(self.model, self.test_loader)
        self.test_loss.append(loss)
        self.test_acc.append(acc)
        return iter(self.val_loader)


def train_one(config: dict, data_root=None) -> dict:
    """Train the configuration's model and return the run's record (a JSON-ready dict).

    Seeds: ``set_seed(seed)`` before building the model (initialization), the train
    loader's shuffling, and `fit`'s seed (dropout, noise). The record holds the config,
    the `History`, test loss/accuracy per epoch, and the summary numbers the tables use:
    ``test_acc_at_best`` (test accuracy at the epoch of best validation accuracy),
    ``final_test_acc`` and ``epoch_ms_min`` / ``epoch_ms_median`` (training epochs).
    A ``paired_timing`` configuration goes to `time_arms` instead.

    A run is a function of its configuration and seed: it trains on one torch thread
    whatever the caller set (with more threads torch adds up its reductions in another
    order, and a small-batch BN run amplifies those last bits into other accuracies).
    """
    with one_thread():
        if config.get("experiment") == "paired_timing":
            return time_arms(config, data_root)
        return _train(config, data_root)


def _train(config: dict, data_root) -> dict:
    splits, x_train, y_train = _splits(config, data_root)
    seed = config["seed"]
    set_seed(seed)
    model = build_model(config, splits.input_shape, splits.num_classes)
    train_loader = batches(x_train, y_train, config["batch_size"], shuffle=True, seed=seed)
    val_loader = batches(splits.x_val, splits.y_val, EVAL_BATCH_SIZE, shuffle=False)
    test_loader = batches(splits.x_test, splits.y_test, EVAL_BATCH_SIZE, shuffle=False)
    probe = _ValidateAndTest(model, val_loader, test_loader)
    start = time.perf_counter()
    history = fit(model, train_loader, probe, epochs=config["epochs"], lr=config["lr"], momentum=config["momentum"],
                  nesterov=config["nesterov"], weight_decay=config["weight_decay"], lr_factor=config["lr_factor"],
                  lr_patience=config["lr_patience"], early_stop_patience=config["early_stop_patience"],
                  seed=seed, progress=False)
    seconds = time.perf_counter() - start
    best = max(history.best_epoch, 0)
    epoch_ms = [1000.0 * s for s in history.epoch_seconds]
    return {
        "key": config_key(config),
        "config": config,
        "history": history.as_dict(),
        "test_loss": [_encode(v) for v in probe.test_loss],
        "test_acc": probe.test_acc,
        "best_epoch": best,
        "test_acc_at_best": probe.test_acc[best],
        "val_acc_at_best": history.val_acc[best],
        "final_test_acc": probe.test_acc[-1],
        "epochs_run": history.num_epochs,
        "diverged": history.diverged,
        "stopped_early": history.stopped_early,
        "epoch_ms_min": min(epoch_ms),
        "epoch_ms_median": float(np.median(epoch_ms)),
        "seconds": seconds,
        "num_train": len(y_train),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def time_arms(config: dict, data_root=None) -> dict:
    """Time the training epochs of every arm of ``config["arms"]`` in this one process.

    Each arm's network is built with the same seed and trained with `fit` one epoch at
    a time (each call starts a fresh optimizer: irrelevant for the time, and accuracy is
    not the point here). After one untimed warm-up epoch each, ``epochs`` epochs per arm
    are timed with the arms taking turns, in an order that reverses every round (A B, B A,
    ...), so a change of machine load hits every arm alike.

    Two clocks: the wall time `fit` records (``epoch_ms``) and the CPU time of this
    thread during the training part of the epoch (``epoch_cpu_ms``, from
    `time.thread_time`; torch runs on this one thread). Other processes on a busy
    machine stretch the wall time but hardly the CPU time; on an idle machine the two
    agree. The record holds both, per arm, and their medians.
    """
    splits, x_train, y_train = _splits(config, data_root)
    seed = config["seed"]
    arms = list(config["arms"])
    models, loaders = {}, {}
    for arm in arms:
        arm_config = {**config, **config["arms"][arm]}
        set_seed(seed)
        models[arm] = build_model(arm_config, splits.input_shape, splits.num_classes)
        loaders[arm] = batches(x_train, y_train, config["batch_size"], shuffle=True, seed=seed)
    val_loader = _MarkCpuTime(batches(splits.x_val, splits.y_val, EVAL_BATCH_SIZE, shuffle=False))
    wall = {arm: [] for arm in arms}
    cpu = {arm: [] for arm in arms}
    start = time.perf_counter()
    for round_ in range(config["epochs"] + 1):
        for arm in (arms if round_ % 2 == 0 else arms[::-1]):
            cpu_start = time.thread_time()
            history = fit(models[arm], loaders[arm], val_loader, epochs=1, lr=config["lr"],
                          momentum=config["momentum"], nesterov=config["nesterov"],
                          weight_decay=config["weight_decay"], seed=seed + round_, progress=False)
            if round_ > 0:  # round 0 warms up (allocations, caches)
                wall[arm].append(1000.0 * history.epoch_seconds[0])
                cpu[arm].append(1000.0 * (val_loader.mark - cpu_start))
    return {
        "key": config_key(config),
        "config": config,
        "experiment": "paired_timing",
        "epoch_ms": wall,
        "epoch_cpu_ms": cpu,
        "epoch_ms_median": {arm: float(np.median(t)) for arm, t in wall.items()},
        "epoch_cpu_ms_median": {arm: float(np.median(t)) for arm, t in cpu.items()},
        "epochs_run": config["epochs"],
        "seconds": time.perf_counter() - start,
        "num_train": len(y_train),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


class _MarkCpuTime:
    """A loader that notes this thread's CPU time when iteration starts: `fit` iterates
    its validation loader right after the epoch's training part."""

    def __init__(self, loader):
        self.loader, self.mark = loader, math.nan

    def __iter__(self):
        self.mark = time.thread_time()
        return iter(self.loader)


def _encode(value: float):
    return value if math.isfinite(value) else str(float(value))


# --------------------------------------------------------------------------------------
# Files and the pool
# --------------------------------------------------------------------------------------


def run_path(runs_dir, key) -> Path:
    return Path(runs_dir) / f"{key}.json"


def write_json_atomic(path, data) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see `write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=1))


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``:
    a reader (or an interrupted writer) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def load_record(runs_dir, key) -> dict:
    with open(run_path(runs_dir, key)) as f:
        return json.load(f)


@contextmanager
def one_thread():
    """torch on one thread for the duration (the previous count is restored)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_and_save(args):
    config, runs_dir, data_root = args
    path = run_path(runs_dir, config_key(config))
    if path.exists():  # finished meanwhile (another process on the same folder)
        return config_key(config), 0.0
    record = train_one(config, data_root)
    write_json_atomic(path, record)
    return record["key"], record["seconds"]


def _worker_init():
    torch.set_num_threads(1)


def _cost(job: Job) -> float:
    """Relative cost of a job, to start the longest first: epochs x (steps per epoch + an
    evaluation's worth), x 4 for the CNN, x the arms of a paired timing run."""
    c = job.config
    n = c["train_limit"] or 1258
    steps = math.ceil(n / c["batch_size"]) + 2
    return c["epochs"] * steps * (4 if c["model"] == "cnn" else 1) * len(c.get("arms") or [0])


def run_jobs(jobs, runs_dir, workers=None, progress=True, data_root=None, executor=None) -> tuple[int, int]:
    """Train every job whose file is missing; return ``(trained, reused)`` run counts.

    Jobs with the same key are trained once; the longest start first (so that no long
    run is left alone at the end). ``workers``: processes (default: 2 when there are at least 4 runs to do, else 1;
    never more than the CPU count); 1 trains in this process. ``executor``: a
    `concurrent.futures.Executor` to train on instead (``workers`` is then not used):
    each run is ``train_one(config, data_root)`` there, so ``data_root`` must name the
    same folder on its workers; the records come back as data and are written here.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    unique = {}
    for job in jobs:
        unique.setdefault(job.key, job)
    pending = [job for key, job in unique.items() if not run_path(runs_dir, key).exists()]
    reused = len(unique) - len(pending)
    pending.sort(key=lambda j: (-_cost(j), j.setup, j.condition, j.cell, j.seed, j.arm))
    if workers is None:
        workers = 2 if len(pending) >= 4 else 1
    workers = max(1, min(int(workers), os.cpu_count() or 1, max(len(pending), 1)))
    bar = tqdm(total=len(pending), desc="experiments", unit="run", disable=not progress or not pending)
    args = [(job.config, str(runs_dir), data_root) for job in pending]
    try:
        if executor is not None:
            _train_on(executor, pending, runs_dir, data_root, bar)
        elif workers == 1:  # in this process; train_one pins one torch thread itself
            for job, arg in zip(pending, args):
                _run_and_save(arg)
                bar.set_postfix_str(job.label, refresh=False)
                bar.update()
        else:
            labels = {job.key: job.label for job in pending}
            # fork where there is one: a spawned worker re-runs the caller's script, which
            # without an `if __name__ == "__main__":` guard starts the pool again, forever.
            # The children train with one torch thread, so they never enter an OpenMP
            # region the parent's thread pool left behind (as torch's DataLoader workers).
            method = "fork" if sys.platform == "linux" else "spawn"  # macOS: forking torch is unsafe
            context = multiprocessing.get_context(method)
            pool = context.Pool(workers, initializer=_worker_init)
            try:
                for key, _ in pool.imap_unordered(_run_and_save, args, chunksize=1):
                    bar.set_postfix_str(labels[key], refresh=False)
                    bar.update()
                pool.close()  # let the workers exit normally (they clean up their semaphores)
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
    finally:
        bar.close()
    return len(pending), reused


def _train_on(executor, pending, runs_dir, data_root, bar) -> None:
    """Submit ``train_one`` for every pending job to ``executor`` (longest first) and write
    each record into ``runs_dir`` as it comes back. If one fails or the caller is
    interrupted, the runs not yet started are cancelled; the finished ones stay written."""
    futures = {executor.submit(train_one, job.config, data_root): job for job in pending}
    try:
        for future in as_completed(futures):
            record, job = future.result(), futures[future]
            if record["key"] != job.key:
                raise RuntimeError(f"a worker gave {job.label} the key {record['key']} instead of {job.key}: "
                                   "its normlab (runner.VERSION) is not this one")
            write_json_atomic(run_path(runs_dir, job.key), record)
            bar.set_postfix_str(job.label, refresh=False)
            bar.update()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def with_overrides(settings: Settings, seeds=None, overrides=None) -> Settings:
    """``settings`` with another seed count and the caller's per-run overrides."""
    return replace(settings, seeds=settings.seeds if seeds is None else seeds,
                   user={**settings.user, **(overrides or {})})


def select_conditions(names) -> list[Condition]:
    """Conditions by name, in the order of `CONDITIONS`; ValueError names unknown ones."""
    if names is None:
        return list(CONDITIONS)
    names = list(names)
    known = {c.name for c in CONDITIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown condition{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(c.name for c in CONDITIONS)}")
    return [c for c in CONDITIONS if c.name in names]
