r"""The course's data sets as ready-to-train tensors: split, standardized, batched.

Every loader returns a `DataSplits`: train / val / test tensors (float32 inputs, int64
labels) and the statistics of the standardization, which is always *fitted on the
train split only* and then applied unchanged to val and test,

.. math::
    x \mapsto \frac{x - \mu_{\text{train}}}{\sigma_{\text{train}}},

so no information from val or test leaks into training (their means are close to, but
not exactly, 0).

==================  ==========================  =======  ================================
name                one sample                  classes  source
==================  ==========================  =======  ================================
``digits``          (1, 8, 8) image             10       scikit-learn (ships with it)
``digits-flat``     (64,) vector                10       scikit-learn (ships with it)
``wine``            (13,) vector                3        scikit-learn (ships with it)
``mnist``           (1, 28, 28) image           10       torchvision, files on disk
``fashion-mnist``   (1, 28, 28) image           10       torchvision, files on disk
``cifar10``         (3, 32, 32) image           10       torchvision, files on disk
==================  ==========================  =======  ================================

The scikit-learn sets need no download. The torchvision sets are read from files
already on disk (``download=False`` by default); when they are missing the error says
which files, where, and how to get them.
"""

from __future__ import annotations

import gzip
import os
import shutil
import dataclasses
from dataclasses import dataclass

import numpy as np
import sklearn.datasets
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "DataSplits",
    "Standardizer",
    "stratified_split",
    "load_digits",
    "load_wine",
    "load_torchvision",
    "load",
    "NAMES",
    "TORCHVISION_NAMES",
]

TORCHVISION_NAMES = ("mnist", "fashion-mnist", "cifar10")
NAMES = ("digits", "digits-flat", "wine") + TORCHVISION_NAMES


# --------------------------------------------------------------------------------------
# The result: three splits and the statistics used to standardize them
# --------------------------------------------------------------------------------------


@dataclass(repr=False)
class DataSplits:
    """Train / val / test tensors of one data set.

    Inputs are float32 of shape ``(N,) + input_shape``, labels int64 in
    ``[0, num_classes)``. ``mean`` and ``std`` are the statistics fitted on the train
    split and applied to all three (None when the data were not standardized); they
    broadcast against a batch of inputs.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple
    name: str
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None

    def loaders(self, batch_size, seed=0, shuffle=True, eval_batch_size=None):
        """Return ``(train_loader, val_loader, test_loader)``.

        The train loader reshuffles every epoch with a ``torch.Generator`` seeded with
        ``seed``, so two runs with the same seed see the same batches in the same order.
        Val and test are never shuffled; they use ``eval_batch_size`` (default:
        ``batch_size``). Every loader visits each sample exactly once per epoch.
        """
        _check_positive_int(batch_size, "batch_size")
        eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
        _check_positive_int(eval_batch_size, "eval_batch_size")
        _check_int(seed, "seed")
        generator = torch.Generator().manual_seed(seed)
        train = DataLoader(
            TensorDataset(self.x_train, self.y_train),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=0,
        )
        val, test = (
            DataLoader(TensorDataset(x, y), batch_size=eval_batch_size, shuffle=False, num_workers=0)
            for x, y in ((self.x_val, self.y_val), (self.x_test, self.y_test))
        )
        return train, val, test

    def __repr__(self) -> str:
        standardized = "standardized on train" if self.mean is not None else "not standardized"
        return (
            f"DataSplits({self.name!r}: train {len(self.y_train)}, val {len(self.y_val)}, "
            f"test {len(self.y_test)} samples of shape {tuple(self.input_shape)}, "
            f"{self.num_classes} classes, {standardized})"
        )


# --------------------------------------------------------------------------------------
# Standardization
# --------------------------------------------------------------------------------------


class Standardizer:
    """x -> (x - mean) / std with mean and std fitted on one set (the train split).

    ``axes`` are the axes averaged over when fitting and must include 0 (the samples):
    ``(0,)`` gives one mean/std per feature (per pixel, for images), ``(0, 2, 3)`` one
    per channel of ``(N, C, H, W)`` images. The std divides by N (no Bessel
    correction), so the fitted set comes out with std exactly 1.

    A feature whose std is below ``min_std`` is constant on the fitted set; it gets
    std 1 (it is centered, not divided by ~0), so the output has no NaN or inf.

    After `fit`, ``mean`` and ``std`` are float32 tensors of one sample's shape with
    size 1 on the averaged axes, e.g. ``(64,)`` or ``(3, 1, 1)``.
    """

    def __init__(self, axes=(0,), min_std=1e-6):
        axes = tuple(int(a) for a in axes)
        if 0 not in axes or len(set(axes)) != len(axes) or min(axes) < 0:
            raise ValueError(
                f"axes must be distinct non-negative axes including 0 (the samples), got {axes}"
            )
        self.axes = axes
        self.min_std = float(min_std)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> Standardizer:
        """Compute mean and std of x over ``axes`` (in float64, stored as float32)."""
        self._check_input(x)
        if max(self.axes) >= x.ndim:
            raise ValueError(f"axes {self.axes} do not fit an input of shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("cannot fit a Standardizer on an empty set")
        x64 = x.double()
        mean = x64.mean(dim=self.axes, keepdim=True)[0]
        std = x64.std(dim=self.axes, correction=0, keepdim=True)[0]
        std = torch.where(std < self.min_std, torch.ones_like(std), std)
        self.mean, self.std = mean.float(), std.float()
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std with the fitted statistics, as float32."""
        self._check_fitted(x)
        return (x.float() - self.mean) / self.std

    def fit_transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.fit(x).transform(x)

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """z * std + mean: back to the original scale (e.g. to plot an image)."""
        self._check_fitted(z)
        return z.float() * self.std + self.mean

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected a floating-point torch.Tensor, got {got}")
        if x.ndim < 2:
            raise ValueError(
                f"expected a batch of shape (N, ...) with at least 2 dimensions, got {tuple(x.shape)}"
            )

    def _check_fitted(self, x):
        if self.mean is None:
            raise ValueError("this Standardizer is not fitted yet: call fit(x_train) first")
        self._check_input(x)
        if x.ndim != self.mean.ndim + 1 or any(
            m not in (1, n) for m, n in zip(self.mean.shape, x.shape[1:])
        ):
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not match the fitted statistics of "
                f"shape {tuple(self.mean.shape)} (one sample's shape, 1 on averaged axes)"
            )


# --------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------


def stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=0):
    """Seeded split of ``range(len(labels))`` into ``(train, val, test)`` index arrays.

    The val and test splits get ``round(fraction * N)`` samples (at least 1 each), train
    the rest. Each class keeps about its overall share in every split (scikit-learn's
    stratified shuffle split); where a split is too small to hold every class, that cut
    is a plain seeded random one instead. Indices come back sorted.
    """
    labels = np.asarray(labels)
    _check_fractions(val_fraction, test_fraction)
    _check_int(seed, "seed")
    n = len(labels)
    n_test = max(1, round(test_fraction * n))
    n_val = max(1, round(val_fraction * n))
    if n - n_test - n_val < 1:
        raise ValueError(
            f"{n} samples are too few for val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}: the train split would be empty"
        )
    rng = np.random.RandomState(seed)
    rest, test = _carve(np.arange(n), labels, n_test, rng)
    train, val = _carve(rest, labels, n_val, rng)
    return train, val, test


def _carve(indices, labels, size, rng):
    """Split ``indices`` into (kept, carved) with ``size`` carved, stratified if possible."""
    classes, counts = np.unique(labels[indices], return_counts=True)
    can_stratify = counts.min() >= 2 and len(classes) <= size <= len(indices) - len(classes)
    kept, carved = train_test_split(
        indices,
        test_size=size,
        random_state=rng,
        stratify=labels[indices] if can_stratify else None,
    )
    return np.sort(kept), np.sort(carved)


def _make_splits(train, val, test, *, name, num_classes, standardize, axes):
    """Build a DataSplits from three ``(x, y)`` pairs, standardized with train statistics."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = train, val, test
    mean = std = None
    if standardize:
        standardizer = Standardizer(axes).fit(x_train)
        x_train, x_val, x_test = map(standardizer.transform, (x_train, x_val, x_test))
        mean, std = standardizer.mean, standardizer.std
    return DataSplits(
        x_train=x_train.contiguous(),
        y_train=y_train,
        x_val=x_val.contiguous(),
        y_val=y_val,
        x_test=x_test.contiguous(),
        y_test=y_test,
        num_classes=num_classes,
        input_shape=tuple(x_train.shape[1:]),
        name=name,
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------------------
# scikit-learn data sets (shipped with scikit-learn: no download)
# --------------------------------------------------------------------------------------


def load_digits(flat=False, standardize=True, seed=0, val_fraction=0.1, test_fraction=0.2):
    """scikit-learn's handwritten digits: 1797 8x8 grey images, 10 classes.

    Inputs are (N, 1, 8, 8) images, or (N, 64) vectors with ``flat=True``; raw pixel
    values are integers 0..16. Seeded stratified train/val/test split; with
    ``standardize`` each pixel is standardized with train statistics (pixels that are
    always 0 on train keep std 1).
    """
    _check_bool(flat, "flat")
    _check_bool(standardize, "standardize")
    digits = sklearn.datasets.load_digits()
    x = torch.from_numpy(digits.data.astype(np.float32))
    if not flat:
        x = x.reshape(-1, 1, 8, 8)
    y = torch.from_numpy(digits.target.astype(np.int64))
    train, val, test = stratified_split(digits.target, val_fraction, test_fraction, seed)
    return _make_splits(
        (x[train], y[train]), (x[val], y[val]), (x[test], y[test]),
        name="digits-flat" if flat else "digits",
        num_classes=10,
        standardize=standardize,
        axes=(0,),
    )  # fmt: skip


def load_wine(standardize=True, seed=0, val_fraction=0.1, test_fraction=0.2):
    """scikit-learn's wine recognition data: 178 samples, 13 features, 3 classes.

    The features live on very different scales (proline ~ 1000, hue ~ 1): with
    ``standardize=False`` they are kept raw, which is what lecture 01 trains on to show
    why standardizing matters. Otherwise each feature is standardized with train
    statistics. Seeded stratified train/val/test split.
    """
    _check_bool(standardize, "standardize")
    wine = sklearn.datasets.load_wine()
    x = torch.from_numpy(wine.data.astype(np.float32))
    y = torch.from_numpy(wine.target.astype(np.int64))
    train, val, test = stratified_split(wine.target, val_fraction, test_fraction, seed)
    return _make_splits(
        (x[train], y[train]), (x[val], y[val]), (x[test], y[test]),
        name="wine",
        num_classes=3,
        standardize=standardize,
        axes=(0,),
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# torchvision data sets (read from disk; never downloaded unless asked)
# --------------------------------------------------------------------------------------

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")

# name -> (torchvision class name, folder under root, files expected in that folder)
_TORCHVISION_LAYOUT = {
    "mnist": ("MNIST", os.path.join("MNIST", "raw"), _MNIST_FILES),
    "fashion-mnist": ("FashionMNIST", os.path.join("FashionMNIST", "raw"), _MNIST_FILES),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", _CIFAR10_FILES),
}


def load_torchvision(
    name, root, flat=False, standardize=True, seed=0, val_fraction=0.1, download=False, limit=None
):
    """MNIST, Fashion-MNIST or CIFAR-10 through ``torchvision.datasets``.

    The official test split is the test split; val is a seeded (stratified) part of the
    official training split. Images are (N, C, H, W) float32 in [0, 1] (``flat=True``:
    (N, C*H*W)), then, with ``standardize``, standardized per channel with train
    statistics. ``limit`` keeps only that many of the official training images (a
    seeded random subset, before val is carved out) for quick runs; test stays whole.

    Files are read from ``root`` and nothing is downloaded unless ``download=True``.
    Missing files raise a FileNotFoundError naming the files expected and where.
    """
    name = _normalize_name(name)
    if name not in TORCHVISION_NAMES:
        raise ValueError(
            f"unknown torchvision data set {name!r}; known: {', '.join(TORCHVISION_NAMES)}"
        )
    if root is None or not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root must be a directory path (str or os.PathLike), got {root!r}")
    for value, what in ((flat, "flat"), (standardize, "standardize"), (download, "download")):
        _check_bool(value, what)
    _check_fraction(val_fraction, "val_fraction")
    _check_int(seed, "seed")
    if limit is not None:
        _check_positive_int(limit, "limit")
    root = os.fspath(root)

    if not download:
        _require_files(name, root)
    images, labels = _uint8_images_and_labels(
        _torchvision_dataset(name, root, train=True, download=download)
    )
    test_images, test_labels = _uint8_images_and_labels(
        _torchvision_dataset(name, root, train=False, download=download)
    )

    rng = np.random.RandomState(seed)
    keep = np.arange(len(labels))
    if limit is not None and limit < len(keep):
        keep = np.sort(rng.choice(len(keep), size=limit, replace=False))
    n_val = max(1, round(val_fraction * len(keep)))
    if len(keep) - n_val < 1:
        raise ValueError(
            f"{len(keep)} training images are too few to carve val_fraction={val_fraction} "
            "out of them and keep a train split"
        )
    train, val = _carve(keep, labels.numpy(), n_val, rng)
    splits = _make_splits(
        (_to_unit_float(images[train]), labels[train]),
        (_to_unit_float(images[val]), labels[val]),
        (_to_unit_float(test_images), test_labels),
        name=name,
        num_classes=10,
        standardize=standardize,
        axes=(0, 2, 3),
    )
    return _flattened(splits) if flat else splits


def _flattened(splits):
    """The same splits with each sample flattened to a vector; per-channel statistics
    are repeated over the pixels of their channel, so they still broadcast."""
    shape = splits.input_shape
    size = int(np.prod(shape))

    def flat_stat(t):
        return None if t is None else t.expand(shape).reshape(size).contiguous()

    return dataclasses.replace(
        splits,
        x_train=splits.x_train.reshape(-1, size),
        x_val=splits.x_val.reshape(-1, size),
        x_test=splits.x_test.reshape(-1, size),
        input_shape=(size,),
        mean=flat_stat(splits.mean),
        std=flat_stat(splits.std),
    )


def _uint8_images_and_labels(dataset):
    """(N, C, H, W) uint8 images and int64 labels of a torchvision data set.

    Reads the arrays torchvision keeps in ``.data`` and ``.targets`` directly instead
    of going through ``__getitem__`` (one PIL image per sample), which is much slower.
    """
    data = torch.as_tensor(np.asarray(dataset.data))
    if data.ndim == 3:  # MNIST-like: (N, H, W)
        data = data.unsqueeze(1)
    else:  # CIFAR: (N, H, W, C)
        data = data.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    return data, labels


def _to_unit_float(images):
    """uint8 pixels 0..255 -> float32 in [0, 1]."""
    return images.float().div_(255.0).contiguous()


def _torchvision_dataset(name, root, train, download):
    import torchvision.datasets  # imported here: it is slow and only these sets need it

    class_name = _TORCHVISION_LAYOUT[name][0]
    if name == "cifar10":
        dataset_class = _cifar10_without_checksums(torchvision.datasets.CIFAR10)
    else:
        dataset_class = getattr(torchvision.datasets, class_name)
    try:
        return dataset_class(root, train=train, download=download)
    except (RuntimeError, OSError) as error:
        if not download:
            raise
        raise FileNotFoundError(
            f"download=True could not fetch {class_name} into {root!r} ({error}).\n"
            + _how_to_get(name, root)
        ) from error


def _cifar10_without_checksums(cifar10_class):
    """torchvision's CIFAR10, checking that its files exist but not their md5.

    torchvision's CIFAR10 refuses to load unless the md5 of every batch file (and of
    ``batches.meta``) is that of the official release, even with ``download=False``:
    it then raises "Dataset not found or corrupted". That rules out the small files in
    the real CIFAR-10 pickle format the tests write, and any subset of CIFAR-10. This
    subclass keeps torchvision's reading code and drops only the per-file md5 (the
    archive's md5 is still checked by ``download=True``). A truncated or damaged batch
    file still fails, when it is unpickled or reshaped to (N, 3, 32, 32).
    """

    class CIFAR10(cifar10_class):
        train_list = [[filename, None] for filename, _ in cifar10_class.train_list]
        test_list = [[filename, None] for filename, _ in cifar10_class.test_list]
        meta = {**cifar10_class.meta, "md5": None}

    return CIFAR10


def _require_files(name, root):
    """Raise a FileNotFoundError that says what is missing, where, and how to get it.

    torchvision's MNIST readers need the uncompressed idx files; where only the
    ``.gz`` files are present they are decompressed next to them, as torchvision's own
    download step does.
    """
    folder = os.path.join(root, _TORCHVISION_LAYOUT[name][1])
    missing = []
    for filename in _TORCHVISION_LAYOUT[name][2]:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            continue
        if name != "cifar10" and os.path.isfile(path + ".gz"):
            with gzip.open(path + ".gz", "rb") as compressed, open(path, "wb") as out:
                shutil.copyfileobj(compressed, out)
            continue
        missing.append(filename)
    if missing:
        raise FileNotFoundError(
            f"{_TORCHVISION_LAYOUT[name][0]} ({name!r}) not found under root {root!r}: "
            f"missing {', '.join(missing)} in {folder}.\n" + _how_to_get(name, root)
        )


def _how_to_get(name, root):
    class_name, subfolder, files = _TORCHVISION_LAYOUT[name]
    folder = os.path.join(root, subfolder)
    if name == "cifar10":
        expected = (
            f"  {folder}{os.sep}data_batch_1..5, test_batch, batches.meta\n"
            "  (the python version of CIFAR-10, cifar-10-python.tar.gz, extracted in root)"
        )
    else:
        expected = "\n".join(f"  {os.path.join(folder, f)} (or {f}.gz)" for f in files)
    return (
        f"Expected these files:\n{expected}\n"
        f"To get them: on a machine with internet, run "
        f"torchvision.datasets.{class_name}(ROOT, download=True) and copy "
        f"ROOT{os.sep}{subfolder.split(os.sep)[0]} into {root!r}; or pass download=True "
        "where there is network access."
    )


# --------------------------------------------------------------------------------------
# By name
# --------------------------------------------------------------------------------------


def load(name, **kwargs):
    """Load a data set by name: one of `NAMES`.

    ``"digits"``/``"digits-flat"`` go to `load_digits` (flat=False/True), ``"wine"`` to
    `load_wine`, the others to `load_torchvision` (which needs ``root=``). Keyword
    arguments are passed on.
    """
    key = _normalize_name(name)
    if key in ("digits", "digits-flat"):
        flat = key == "digits-flat"
        if kwargs.get("flat", flat) != flat:
            raise ValueError(f"load({name!r}) contradicts flat={kwargs['flat']!r}")
        kwargs["flat"] = flat
        return load_digits(**kwargs)
    if key == "wine":
        return load_wine(**kwargs)
    if key in TORCHVISION_NAMES:
        if kwargs.get("root") is None:
            raise ValueError(
                f"load({name!r}) reads files from disk: pass root=<directory holding them>"
            )
        return load_torchvision(key, **kwargs)
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(NAMES)}")


# --------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------


def _normalize_name(name):
    if not isinstance(name, str):
        raise ValueError(f"expected a data set name (str), got {type(name).__name__}")
    return name.strip().lower().replace("_", "-")


def _check_fraction(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{what} must be a number strictly between 0 and 1, got {value!r}")


def _check_fractions(val_fraction, test_fraction):
    _check_fraction(val_fraction, "val_fraction")
    _check_fraction(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1 to leave a train split, got "
            f"{val_fraction} + {test_fraction} = {val_fraction + test_fraction}"
        )


def _check_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an int, got {value!r}")


def _check_positive_int(value, what):
    _check_int(value, what)
    if value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")


def _check_bool(value, what):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {value!r}")
