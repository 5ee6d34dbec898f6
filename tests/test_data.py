"""Tests of normlab.data: splits, standardization, loaders, and the torchvision readers.

The torchvision tests write tiny data sets in the real on-disk formats (MNIST idx-ubyte
files, CIFAR-10 python pickles) into tmp_path: nothing is ever downloaded.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import sklearn.datasets
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from normlab import data
from normlab.data import DataSplits, Standardizer, stratified_split
from support import tiny_cifar10, tiny_mnist

SPLITS = ("train", "val", "test")


def xs(splits: DataSplits, split: str) -> torch.Tensor:
    return getattr(splits, f"x_{split}")


def ys(splits: DataSplits, split: str) -> torch.Tensor:
    return getattr(splits, f"y_{split}")


def sorted_rows(a) -> np.ndarray:
    """Rows of a 2-D array in lexicographic order: compares two sets of rows as multisets."""
    a = np.asarray(a)
    return a[np.lexsort(a.T[::-1])]


# --------------------------------------------------------------------------------------
# scikit-learn data sets: shapes, splits, stratification, seeds
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loader, name, shape, num_classes, n_total",
    [
        (lambda **k: data.load_digits(**k), "digits", (1, 8, 8), 10, 1797),
        (lambda **k: data.load_digits(flat=True, **k), "digits-flat", (64,), 10, 1797),
        (lambda **k: data.load_wine(**k), "wine", (13,), 3, 178),
        (lambda **k: data.load("digits", **k), "digits", (1, 8, 8), 10, 1797),
        (lambda **k: data.load("digits-flat", **k), "digits-flat", (64,), 10, 1797),
        (lambda **k: data.load("wine", **k), "wine", (13,), 3, 178),
    ],
)
def test_sklearn_sets_shapes_dtypes_and_classes(loader, name, shape, num_classes, n_total):
    splits = loader()
    assert splits.name == name
    assert splits.input_shape == shape
    assert splits.num_classes == num_classes
    assert sum(len(ys(splits, s)) for s in SPLITS) == n_total
    for s in SPLITS:
        x, y = xs(splits, s), ys(splits, s)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(y),) + shape
        assert set(y.tolist()) == set(range(num_classes))  # every class in every split
    assert splits.mean.shape == splits.std.shape
    assert name in repr(splits) and "standardized on train" in repr(splits)


def test_split_sizes_follow_the_fractions():
    splits = data.load_digits(val_fraction=0.25, test_fraction=0.15)
    assert len(splits.y_val) == round(0.25 * 1797)
    assert len(splits.y_test) == round(0.15 * 1797)
    assert len(splits.y_train) == 1797 - round(0.25 * 1797) - round(0.15 * 1797)


@pytest.mark.parametrize("flat", [False, True])
def test_digits_splits_are_disjoint_and_cover_the_data_set(flat):
    splits = data.load_digits(flat=flat, standardize=False, seed=3)
    source = sklearn.datasets.load_digits()
    with_labels = np.concatenate(
        [
            np.concatenate([xs(splits, s).reshape(len(ys(splits, s)), -1), ys(splits, s)[:, None]], 1)
            for s in SPLITS
        ]
    )
    expected = np.concatenate([source.data, source.target[:, None]], 1)
    np.testing.assert_array_equal(sorted_rows(with_labels), sorted_rows(expected))


def test_stratified_split_indices_are_disjoint_sorted_and_cover():
    labels = sklearn.datasets.load_digits().target
    train, val, test = stratified_split(labels, 0.1, 0.2, seed=0)
    everything = np.concatenate([train, val, test])
    assert len(everything) == len(labels)
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(labels)))
    for idx in (train, val, test):
        np.testing.assert_array_equal(idx, np.sort(idx))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(5, 300),
    num_classes=st.integers(1, 6),
    val_fraction=st.floats(0.01, 0.45),
    test_fraction=st.floats(0.01, 0.45),
    seed=st.integers(0, 2**31 - 1),
)
def test_stratified_split_partitions_any_labels(n, num_classes, val_fraction, test_fraction, seed):
    labels = np.random.default_rng(seed).integers(0, num_classes, size=n)
    n_val, n_test = max(1, round(val_fraction * n)), max(1, round(test_fraction * n))
    if n - n_val - n_test < 1:
        with pytest.raises(ValueError, match="train split would be empty"):
            stratified_split(labels, val_fraction, test_fraction, seed)
        return
    train, val, test = stratified_split(labels, val_fraction, test_fraction, seed)
    assert (len(val), len(test), len(train)) == (n_val, n_test, n - n_val - n_test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(n))


@pytest.mark.parametrize("load", [data.load_digits, data.load_wine])
def test_stratification_keeps_each_class_share_in_every_split(load):
    splits = load(standardize=False)
    all_labels = torch.cat([ys(splits, s) for s in SPLITS])
    share = torch.bincount(all_labels).double() / len(all_labels)
    for s in SPLITS:
        y = ys(splits, s)
        counts = torch.bincount(y, minlength=splits.num_classes).double()
        # stratified: each class count is within one sample of its share of the split
        assert torch.all((counts - share * len(y)).abs() <= 1.0 + 1e-9), (s, counts, share * len(y))


@pytest.mark.parametrize("load", [data.load_digits, data.load_wine])
def test_same_seed_same_splits_different_seed_different_splits(load):
    a, b, c = load(seed=7), load(seed=7), load(seed=8)
    for s in SPLITS:
        assert torch.equal(xs(a, s), xs(b, s)) and torch.equal(ys(a, s), ys(b, s))
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    for s in SPLITS:  # same sizes, other samples
        assert xs(a, s).shape == xs(c, s).shape and not torch.equal(xs(a, s), xs(c, s))
    assert not torch.equal(a.mean, c.mean)  # a different train split, different statistics


# --------------------------------------------------------------------------------------
# Standardization: fitted on train only
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "load", [data.load_wine, lambda **k: data.load_digits(flat=True, **k), data.load_digits]
)
def test_standardization_uses_train_statistics_for_every_split(load):
    raw, std = load(standardize=False, seed=5), load(standardize=True, seed=5)
    assert raw.mean is None and raw.std is None and "not standardized" in repr(raw)
    train = raw.x_train.double().numpy().reshape(len(raw.y_train), -1)
    mean = train.mean(axis=0)
    sd = train.std(axis=0)  # divides by N
    sd_safe = np.where(sd == 0, 1.0, sd)
    np.testing.assert_allclose(std.mean.double().numpy().reshape(-1), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std.std.double().numpy().reshape(-1), sd_safe, rtol=1e-6)
    for s in SPLITS:
        x_raw = xs(raw, s).double().numpy().reshape(len(ys(raw, s)), -1)
        expected = (x_raw - mean) / sd_safe
        got = xs(std, s).double().numpy().reshape(len(ys(std, s)), -1)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(ys(raw, s), ys(std, s))

    z = std.x_train.double().reshape(len(std.y_train), -1)
    varying = torch.from_numpy(sd > 0)
    assert z.mean(0).abs().max() < 1e-5
    np.testing.assert_allclose(z.std(0, correction=0)[varying].numpy(), 1.0, rtol=1e-5)
    # val and test were NOT re-centered on their own statistics
    for s in ("val", "test"):
        zs = xs(std, s).double().reshape(len(ys(std, s)), -1)
        assert zs.mean(0)[varying].abs().max() > 1e-2


def test_constant_pixels_give_std_one_and_no_nan():
    for flat in (False, True):
        splits = data.load_digits(flat=flat)
        std = splits.std.reshape(-1)
        constant = splits.x_train.reshape(len(splits.y_train), -1).std(0) == 0
        assert constant[0]  # pixel (0, 0) is blank in every digit
        assert torch.all(std[constant] == 1.0)
        for s in SPLITS:
            assert torch.isfinite(xs(splits, s)).all()


def test_standardizer_per_feature_with_a_constant_column():
    x = torch.tensor([[1.0, 5.0, 10.0], [3.0, 5.0, 30.0], [5.0, 5.0, 20.0]])
    st_ = Standardizer().fit(x)
    torch.testing.assert_close(st_.mean, torch.tensor([3.0, 5.0, 20.0]))
    expected_std = torch.tensor([np.sqrt(8 / 3), 1.0, np.sqrt(200 / 3)]).float()
    torch.testing.assert_close(st_.std, expected_std)
    z = st_.transform(x)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z[:, 1], torch.zeros(3))
    torch.testing.assert_close(z.std(0, correction=0)[[0, 2]], torch.ones(2))
    # new data is transformed with the fitted statistics, not its own
    new = torch.tensor([[3.0, 6.0, 20.0]])
    torch.testing.assert_close(st_.transform(new), torch.tensor([[0.0, 1.0, 0.0]]))
    torch.testing.assert_close(st_.inverse_transform(z), x)


def test_standardizer_per_channel():
    x = torch.randn(16, 3, 4, 4) * torch.tensor([1.0, 10.0, 100.0]).view(1, 3, 1, 1) + 7.0
    st_ = Standardizer(axes=(0, 2, 3)).fit(x)
    assert st_.mean.shape == st_.std.shape == (3, 1, 1)
    z = st_.transform(x)
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std((0, 2, 3), correction=0), torch.ones(3), atol=1e-5, rtol=0)


def test_standardizer_rejects_bad_use():
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().transform(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="including 0"):
        Standardizer(axes=(1,))
    with pytest.raises(ValueError, match="floating-point"):
        Standardizer().fit(torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="does not match"):
        Standardizer().fit(torch.randn(4, 3)).transform(torch.randn(4, 5))


def test_wine_raw_scales_differ_by_more_than_100x():
    raw = data.load_wine(standardize=False)
    scale = raw.x_train.abs().mean(0)
    assert scale.max() / scale.min() > 100
    spread = raw.x_train.std(0)
    assert spread.max() / spread.min() > 100
    standardized = data.load_wine().x_train.std(0, correction=0)
    torch.testing.assert_close(standardized, torch.ones(13), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------


def _epoch(loader):
    xb, yb = zip(*loader)
    return torch.cat(xb), torch.cat(yb)


def test_loaders_are_reproducible_and_cover_each_split_once_per_epoch():
    splits = data.load_wine()
    train_a, val_a, test_a = splits.loaders(batch_size=16, seed=1, eval_batch_size=50)
    train_b, _, _ = splits.loaders(batch_size=16, seed=1)
    train_c, _, _ = splits.loaders(batch_size=16, seed=2)
    xa, ya = _epoch(train_a)
    xb, yb = _epoch(train_b)
    xc, yc = _epoch(train_c)
    assert [len(b[1]) for b in train_b][:-1] == [16] * (len(train_b) - 1)
    assert [len(b[1]) for b in val_a] == [len(splits.y_val)]  # one batch of <= 50
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # same seed, same order
    assert not torch.equal(ya, yc) or not torch.equal(xa, xc)  # other seed, other order
    assert not torch.equal(xa, splits.x_train)  # shuffled
    # exactly once per epoch: the same multiset of (features, label) rows
    rows = lambda x, y: sorted_rows(torch.cat([x, y[:, None].float()], 1).numpy())  # noqa: E731
    np.testing.assert_array_equal(rows(xa, ya), rows(splits.x_train, splits.y_train))
    # a second epoch is a new permutation of the same samples
    xa2, ya2 = _epoch(train_a)
    assert not torch.equal(xa2, xa)
    np.testing.assert_array_equal(rows(xa2, ya2), rows(splits.x_train, splits.y_train))

    # val and test keep their order
    assert torch.equal(_epoch(val_a)[0], splits.x_val) and torch.equal(_epoch(test_a)[1], splits.y_test)


def test_loaders_without_shuffle_keep_the_train_order():
    splits = data.load_digits(flat=True)
    train, _, _ = splits.loaders(batch_size=100, shuffle=False)
    x, y = _epoch(train)
    assert torch.equal(x, splits.x_train) and torch.equal(y, splits.y_train)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: data.load("imagenet"), "unknown data set 'imagenet'; known: digits, digits-flat, wine"),
        (lambda: data.load_torchvision("svhn", "/tmp"), "known: mnist, fashion-mnist, cifar10"),
        (lambda: data.load("digits-flat", flat=False), "contradicts"),
        (lambda: data.load("mnist"), "root="),
        (lambda: data.load_digits(val_fraction=0), "val_fraction"),
        (lambda: data.load_digits(val_fraction=1.0), "val_fraction"),
        (lambda: data.load_digits(test_fraction=-0.1), "test_fraction"),
        (lambda: data.load_wine(val_fraction=0.5, test_fraction=0.5), "below 1"),
        (lambda: data.load_wine(val_fraction=0.6, test_fraction=0.7), "below 1"),
        (lambda: data.load_wine(seed=1.5), "seed"),
        (lambda: data.load_digits(flat="yes"), "flat"),
        (lambda: data.load_torchvision("mnist", "/tmp", val_fraction=0), "val_fraction"),
        (lambda: data.load_torchvision("mnist", "/tmp", limit=0), "limit"),
        (lambda: data.load_torchvision("mnist", None), "root"),
        (lambda: data.load_wine().loaders(batch_size=0), "batch_size"),
        (lambda: data.load_wine().loaders(batch_size=4, eval_batch_size=-1), "eval_batch_size"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------------------
# torchvision data sets, written in their real on-disk formats
# --------------------------------------------------------------------------------------

MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _train_val_rows(splits):
    """All train and val samples as rows of (pixel values * 255, label)."""
    x = torch.cat([xs(splits, s).reshape(len(ys(splits, s)), -1) for s in ("train", "val")])
    y = torch.cat([splits.y_train, splits.y_val])
    return sorted_rows(np.concatenate([np.round(x.numpy() * 255), y[:, None].numpy()], 1))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_format_round_trips_exactly(tmp_path, name):
    written = tiny_mnist(tmp_path, MNIST_FOLDERS[name])
    splits = data.load_torchvision(name, tmp_path, standardize=False, val_fraction=0.2)
    assert splits.name == name and splits.num_classes == 10 and splits.input_shape == (1, 28, 28)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (80, 20, 30)
    for s in SPLITS:
        assert xs(splits, s).dtype == torch.float32 and ys(splits, s).dtype == torch.int64
    # the official test split, in its order, scaled to [0, 1]
    test_images, test_labels = written["t10k"]
    expected = torch.from_numpy(test_images.astype(np.float32) / np.float32(255))[:, None]
    assert torch.equal(splits.x_test, expected)
    assert torch.equal(splits.y_test, torch.from_numpy(test_labels))
    # train + val are the official train split, each image with its own label
    images, labels = written["train"]
    np.testing.assert_array_equal(
        _train_val_rows(splits), sorted_rows(np.concatenate([images.reshape(100, -1), labels[:, None]], 1))
    )
    # 10 per class in the written train split: the val split is stratified, 2 per class
    assert torch.equal(torch.bincount(splits.y_val), torch.full((10,), 2))


def test_mnist_through_load_standardized_per_channel_and_flat(tmp_path):
    tiny_mnist(tmp_path, "MNIST")
    splits = data.load("mnist", root=tmp_path, val_fraction=0.2)
    assert splits.mean.shape == splits.std.shape == (1, 1, 1)
    assert abs(splits.x_train.double().mean()) < 1e-5
    assert abs(splits.x_train.double().std(correction=0) - 1) < 1e-5
    assert abs(splits.x_test.double().mean()) > 1e-4  # test uses the train statistics
    raw = data.load("mnist", root=tmp_path, val_fraction=0.2, standardize=False)
    torch.testing.assert_close(splits.mean.double(), raw.x_train.double().mean().reshape(1, 1, 1))
    torch.testing.assert_close((raw.x_test - splits.mean) / splits.std, splits.x_test)

    flat = data.load("mnist", root=tmp_path, val_fraction=0.2, flat=True)
    assert flat.input_shape == (784,) and flat.x_train.shape == (80, 784)
    assert flat.mean.shape == (784,)
    assert torch.equal(flat.x_test, splits.x_test.reshape(-1, 784))
    torch.testing.assert_close((raw.x_test.reshape(-1, 784) - flat.mean) / flat.std, flat.x_test)


def test_mnist_gz_files_alone_are_enough(tmp_path):
    written = tiny_mnist(tmp_path, "MNIST", gz=True)
    assert not os.path.exists(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte")
    splits = data.load_torchvision("mnist", tmp_path, standardize=False)
    assert torch.equal(splits.y_test, torch.from_numpy(written["t10k"][1]))


def test_limit_caps_the_training_images_with_a_seed(tmp_path):
    tiny_mnist(tmp_path, "FashionMNIST")
    a = data.load_torchvision("fashion-mnist", tmp_path, limit=40, val_fraction=0.25, seed=1)
    b = data.load_torchvision("fashion-mnist", tmp_path, limit=40, val_fraction=0.25, seed=1)
    c = data.load_torchvision("fashion-mnist", tmp_path, limit=40, val_fraction=0.25, seed=2)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (30, 10, 30)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_val, b.x_val)
    assert not torch.equal(a.x_train, c.x_train)
    big = data.load_torchvision("fashion-mnist", tmp_path, limit=10_000, standardize=False)
    assert len(big.y_train) + len(big.y_val) == 100


def test_cifar10_pickles_round_trip_exactly(tmp_path):
    written = tiny_cifar10(tmp_path)
    splits = data.load_torchvision("cifar10", tmp_path, standardize=False, val_fraction=0.2)
    assert splits.input_shape == (3, 32, 32) and splits.num_classes == 10
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (40, 10, 20)
    rows, labels = written["test"]
    # a row is 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    expected = torch.from_numpy(rows.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255))
    assert torch.equal(splits.x_test, expected)
    assert torch.equal(splits.y_test, torch.from_numpy(labels))
    assert splits.x_test[0, 1, 2, 3] == rows[0, 1024 + 2 * 32 + 3] / np.float32(255)
    train_rows, train_labels = written["train"]
    np.testing.assert_array_equal(
        _train_val_rows(splits), sorted_rows(np.concatenate([train_rows, train_labels[:, None]], 1))
    )


def test_cifar10_standardized_per_channel_on_train(tmp_path):
    tiny_cifar10(tmp_path)
    raw = data.load("cifar10", root=tmp_path, standardize=False, seed=4)
    splits = data.load("cifar10", root=tmp_path, seed=4)
    assert splits.mean.shape == splits.std.shape == (3, 1, 1)
    channel_mean = raw.x_train.double().mean((0, 2, 3)).reshape(3, 1, 1)
    torch.testing.assert_close(splits.mean.double(), channel_mean)
    train_channel_mean = splits.x_train.double().mean((0, 2, 3))
    torch.testing.assert_close(train_channel_mean, torch.zeros(3).double(), atol=1e-5, rtol=0)
    torch.testing.assert_close((raw.x_val - splits.mean) / splits.std, splits.x_val)


def test_plain_torchvision_cifar10_refuses_files_that_fail_its_md5_check(tmp_path):
    """Why load_torchvision reads CIFAR-10 through a subclass without the md5 check."""
    import torchvision

    tiny_cifar10(tmp_path)
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(tmp_path, train=True, download=False)


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "mnist",
            [os.path.join("MNIST", "raw", "train-images-idx3-ubyte"), "t10k-labels-idx1-ubyte", ".gz"],
        ),
        ("fashion-mnist", [os.path.join("FashionMNIST", "raw", "t10k-images-idx3-ubyte")]),
        (
            "cifar10",
            [os.path.join("cifar-10-batches-py", "data_batch_1..5"), "test_batch", "batches.meta"],
        ),
    ],
)
def test_missing_files_raise_an_error_naming_them(tmp_path, name, expected):
    root = tmp_path / "nothing-here"
    with pytest.raises(FileNotFoundError) as info:
        data.load_torchvision(name, root)
    message = str(info.value)
    assert os.path.join(str(root), expected[0]) in message  # the full path under root
    for fragment in expected[1:]:
        assert fragment in message
    assert repr(str(root)) in message
    assert "download=True" in message and "internet" in message
    assert not root.exists()  # nothing was created, let alone downloaded


def test_one_missing_file_is_named(tmp_path):
    tiny_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="missing data_batch_3 in"):
        data.load_torchvision("cifar10", tmp_path)
