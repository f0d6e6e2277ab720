"""Tests of utils.data: edge patches, digits, MNIST loading, batching helpers.

Nothing here touches the network or the real cache: the environment variables
are cleared, HOME points to a temporary directory, and ``download`` is False
(or ``fetch_openml`` is replaced by a fake).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from utils import data
from utils.data import (
    DataError,
    Dataset,
    iterate_minibatches,
    load_digits,
    load_mnist,
    make_edge_patches,
    one_hot,
)

N_TRAIN, N_TEST = 50, 20


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.delenv("NN_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tests must not download anything")

    monkeypatch.setattr("sklearn.datasets.fetch_openml", no_network)


def mnist_arrays(
    n_train: int = N_TRAIN, n_test: int = N_TEST, *, flat: bool = False, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (784,) if flat else (28, 28)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # a file object: np.savez adds no suffix
        np.savez(handle, **(mnist_arrays() if arrays is None else arrays))
    return path


# ------------------------------------------------------------------ edge patches


def test_edge_patches_shapes_dtypes_range() -> None:
    X, y = make_edge_patches(101, seed=3)
    assert X.shape == (101, 25) and X.dtype == np.float32
    assert y.shape == (101,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert set(np.unique(y)) == {0, 1}
    assert abs(int(y.sum()) - (101 - int(y.sum()))) <= 1  # balanced
    X7, _ = make_edge_patches(10, size=7)
    assert X7.shape == (10, 49)


def test_edge_patches_balanced_and_shuffled() -> None:
    _, y = make_edge_patches(1000)
    assert y.sum() == 500
    assert not (np.all(y[:500] == 1) or np.all(y[:500] == 0))


def test_edge_patches_deterministic_per_seed() -> None:
    X1, y1 = make_edge_patches(200, seed=5)
    X2, y2 = make_edge_patches(200, seed=5)
    X3, y3 = make_edge_patches(200, seed=6)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


def test_edge_patches_structure_without_noise() -> None:
    X, y = make_edge_patches(600, noise=0.0, seed=2)
    patches = X.reshape(-1, 5, 5)
    rows_equal = np.all(
        patches == patches[:, :1, :], axis=(1, 2)
    )  # varies along columns only
    cols_equal = np.all(
        patches == patches[:, :, :1], axis=(1, 2)
    )  # varies along rows only
    uniform = rows_equal & cols_equal
    # Positives: a vertical step of contrast >= 0.4.
    pos = patches[y == 1]
    assert np.all(rows_equal[y == 1]) and not np.any(uniform[y == 1])
    contrast = np.abs(np.diff(pos[:, 0, :], axis=1)).max(axis=1)
    assert contrast.min() >= 0.4 - 1e-6
    assert np.all((np.abs(np.diff(pos[:, 0, :], axis=1)) > 1e-6).sum(axis=1) == 1)
    # Negatives: half uniform, half horizontal edges.
    neg_uniform = uniform[y == 0]
    neg_horizontal = cols_equal[y == 0] & ~neg_uniform
    assert np.all(neg_uniform | neg_horizontal)
    assert neg_uniform.sum() == neg_horizontal.sum() == 150
    # Both polarities occur.
    left_brighter = pos[:, 0, 0] > pos[:, 0, -1]
    assert 0 < left_brighter.sum() < len(pos)


def test_edge_patches_not_linearly_trivial_but_learnable_by_small_mlp() -> None:
    X, y = make_edge_patches(3000, seed=0)
    Xtr, ytr, Xte, yte = X[:2000], y[:2000], X[2000:], y[2000:]
    rng = np.random.default_rng(0)
    W1 = rng.normal(0, np.sqrt(2 / 25), (25, 8)).astype(np.float32)
    b1 = np.zeros(8, np.float32)
    W2 = rng.normal(0, np.sqrt(2 / 8), (8, 2)).astype(np.float32)
    b2 = np.zeros(2, np.float32)
    Y = one_hot(ytr, 2)
    for _ in range(150):  # plain full-batch gradient descent
        z = Xtr @ W1 + b1
        h = np.maximum(z, 0)
        logits = h @ W2 + b2
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        d = (p - Y) / len(Xtr)
        dh = (d @ W2.T) * (z > 0)
        W2 -= 0.5 * h.T @ d
        b2 -= 0.5 * d.sum(axis=0)
        W1 -= 0.5 * Xtr.T @ dh
        b1 -= 0.5 * dh.sum(axis=0)
    pred = (np.maximum(Xte @ W1 + b1, 0) @ W2 + b2).argmax(axis=1)
    assert (pred == yte).mean() >= 0.95


@pytest.mark.parametrize(
    "kwargs", [{"n": -1}, {"n": 10, "size": 1}, {"n": 10, "noise": -0.1}]
)
def test_edge_patches_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_edge_patches(**kwargs)


# ------------------------------------------------------------------ digits


def test_load_digits() -> None:
    ds = load_digits()
    assert ds.name == "digits" and ds.image_shape == (8, 8) and ds.num_classes == 10
    assert ds.X_train.dtype == np.float32 and ds.X_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.X_train.shape[1] == 64
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert len(ds.y_test) == pytest.approx(0.25 * 1797, abs=1)
    assert ds.X_train.min() >= 0.0 and ds.X_train.max() <= 1.0
    assert ds.X_train.max() == 1.0
    # stratified: every class in both splits, in similar proportions
    frac = np.bincount(ds.y_test, minlength=10) / np.bincount(ds.y_train, minlength=10)
    assert np.all(np.abs(frac - 1 / 3) < 0.05)
    assert "digits" in ds.note
    again = load_digits()
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    assert not np.array_equal(ds.y_test, load_digits(seed=1).y_test)


def test_load_digits_bad_test_size() -> None:
    with pytest.raises(ValueError, match="test_size"):
        load_digits(test_size=1.5)


def test_dataset_describe_and_repr() -> None:
    ds = load_digits()
    line = ds.describe()
    assert "\n" not in line and "digits" in line and "8x8" in line
    assert str(len(ds.y_train)) in line and str(len(ds.y_test)) in line
    text = repr(ds)
    assert "float32" in text and len(text) < 400
    assert ds.n_features == 64


def test_dataset_checks_shapes() -> None:
    X, y = np.zeros((4, 64), np.float32), np.zeros(4, np.int64)
    with pytest.raises(DataError, match="X_train"):
        Dataset("digits", X[:, :10], y, X, y, (8, 8))
    with pytest.raises(DataError, match="y_test"):
        Dataset("digits", X, y, X, y[:3], (8, 8))


# ------------------------------------------------------------------ MNIST


@pytest.mark.parametrize("flat", [False, True])
def test_load_mnist_from_path(tmp_path: Path, flat: bool) -> None:
    arrays = mnist_arrays(flat=flat)
    path = write_npz(tmp_path / "m.npz", arrays)
    ds = load_mnist(path, download=False)
    assert ds.name == "mnist" and ds.image_shape == (28, 28) and ds.num_classes == 10
    assert ds.X_train.shape == (N_TRAIN, 784) and ds.X_test.shape == (N_TEST, 784)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    expected = arrays["x_train"].reshape(N_TRAIN, 784) / 255.0
    np.testing.assert_allclose(ds.X_train, expected, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert str(path) in ds.note and f"{N_TRAIN} train" in ds.note
    # the line the chapters print names the data set and its size, never a path
    assert str(path) not in ds.describe() and f"{N_TRAIN} train" in ds.describe()


def test_load_mnist_path_may_be_directory_and_str(tmp_path: Path) -> None:
    write_npz(tmp_path / "d" / "mnist.npz")
    assert load_mnist(tmp_path / "d", download=False).X_train.shape == (N_TRAIN, 784)
    assert load_mnist(str(tmp_path / "d" / "mnist.npz")).name == "mnist"


def test_load_mnist_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_npz(tmp_path / "env.npz")
    monkeypatch.setenv("MNIST_PATH", str(path))
    ds = load_mnist(download=False)
    assert ds.name == "mnist" and str(path) in ds.note


def test_path_argument_wins_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "missing.npz"))
    path = write_npz(tmp_path / "arg.npz")
    assert str(path) in load_mnist(path, download=False).note


def test_load_mnist_from_cache_dir(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_npz(cache / "mnist.npz")
    ds = load_mnist(cache_dir=cache, download=False)
    assert ds.name == "mnist" and str(cache / "mnist.npz") in ds.note


def test_load_mnist_from_nn_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_npz(tmp_path / "dd" / "mnist.npz")
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "dd"))
    assert load_mnist(download=False).X_test.shape == (N_TEST, 784)


def test_load_mnist_default_cache_under_home(tmp_path: Path) -> None:
    write_npz(tmp_path / "home" / ".cache" / "nn-from-scratch" / "mnist.npz")
    assert load_mnist(download=False).name == "mnist"


def test_explicit_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nope.npz", download=False)


def test_env_missing_path_raises_even_with_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_npz(tmp_path / "cache" / "mnist.npz")
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "nope.npz"))
    with pytest.raises(DataError, match="MNIST_PATH"):
        load_mnist(cache_dir=tmp_path / "cache", download=False)


def test_explicit_missing_path_with_fallback_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="MNIST not available"):
        ds = load_mnist(tmp_path / "nope.npz", download=False, fallback=True)
    assert ds.name == "digits" and "nope.npz" in ds.note


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.97, 0.999])
def test_truncated_file(tmp_path: Path, compressed: bool, keep: float) -> None:
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as handle:
        (np.savez_compressed if compressed else np.savez)(handle, **mnist_arrays())
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        load_mnist(path, download=False)
    assert str(path) in str(info.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError, match="corrupt"):
        load_mnist(path, download=False)


def test_single_npy_array_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros((3, 784), np.uint8))
    with pytest.raises(DataError, match="not an .npz archive"):
        load_mnist(path, download=False)


def test_wrong_image_shape(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    arrays["x_train"] = np.zeros((N_TRAIN, 27, 27), np.uint8)
    path = write_npz(tmp_path / "m.npz", arrays)
    with pytest.raises(DataError, match=r"x_train has shape \(50, 27, 27\)"):
        load_mnist(path, download=False)


def test_missing_key(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    del arrays["y_test"]
    path = write_npz(tmp_path / "m.npz", arrays)
    with pytest.raises(DataError, match="y_test"):
        load_mnist(path, download=False)


def test_label_count_mismatch(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    arrays["y_train"] = arrays["y_train"][:-1]
    path = write_npz(tmp_path / "m.npz", arrays)
    with pytest.raises(DataError, match=r"y_train has shape \(49,\); expected \(50,\)"):
        load_mnist(path, download=False)


def test_labels_out_of_range(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    arrays["y_test"][0] = 10
    path = write_npz(tmp_path / "m.npz", arrays)
    with pytest.raises(DataError, match="0..9"):
        load_mnist(path, download=False)


def test_nothing_available_raises_with_instructions(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_mnist(cache_dir=tmp_path / "empty", download=False)
    message = str(info.value)
    assert "MNIST_PATH" in message and "x_train" in message
    assert str(tmp_path / "empty" / "mnist.npz") in message


def test_nothing_available_fallback_to_digits(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="8x8 digits"):
        ds = load_mnist(cache_dir=tmp_path / "empty", download=False, fallback=True)
    assert ds.name == "digits" and ds.image_shape == (8, 8)
    assert ds.X_train.shape[1] == 64
    assert ds.note.startswith("MNIST not available")
    assert "8x8 digits instead" in ds.note


def test_broken_cache_without_download_raises(tmp_path: Path) -> None:
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="corrupt"):
        load_mnist(cache_dir=tmp_path, download=False)


def fake_openml(
    n_train: int, n_test: int
) -> tuple[Callable[..., object], list[dict], dict[str, np.ndarray]]:
    """A stand-in for sklearn's fetch_openml, its call log and the arrays."""
    arrays = mnist_arrays(n_train, n_test, flat=True, seed=7)

    class Bunch:
        data = np.concatenate([arrays["x_train"], arrays["x_test"]]).astype(float)
        target = np.concatenate([arrays["y_train"], arrays["y_test"]]).astype(str)

    calls: list[dict] = []

    def fetch_openml(name: str, **kwargs: object) -> Bunch:
        calls.append({"name": name, **kwargs})
        return Bunch()

    return fetch_openml, calls, arrays


def test_download_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch, calls, arrays = fake_openml(N_TRAIN, N_TEST)
    monkeypatch.setattr("sklearn.datasets.fetch_openml", fetch)
    monkeypatch.setattr(data, "MNIST_N_TRAIN", N_TRAIN)
    cache = tmp_path / "cache"
    ds = load_mnist(cache_dir=cache)
    assert len(calls) == 1 and calls[0]["name"] == "mnist_784"
    assert ds.X_train.shape == (N_TRAIN, 784) and ds.X_test.shape == (N_TEST, 784)
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert "OpenML" in ds.note
    with np.load(cache / "mnist.npz") as saved:
        assert sorted(saved.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert saved["x_train"].dtype == np.uint8
        assert saved["x_train"].shape == (N_TRAIN, 28, 28)
    assert [p.name for p in cache.iterdir()] == ["mnist.npz"]  # no temporary left
    again = load_mnist(cache_dir=cache)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.X_train, ds.X_train)


def test_broken_cache_is_downloaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch, calls, _ = fake_openml(N_TRAIN, N_TEST)
    monkeypatch.setattr("sklearn.datasets.fetch_openml", fetch)
    monkeypatch.setattr(data, "MNIST_N_TRAIN", N_TRAIN)
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.warns(UserWarning, match="broken MNIST cache"):
        ds = load_mnist(cache_dir=tmp_path)
    assert ds.name == "mnist" and len(calls) == 1
    assert load_mnist(cache_dir=tmp_path, download=False).name == "mnist"


def test_download_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr("sklearn.datasets.fetch_openml", offline)
    with pytest.raises(DataError, match="OpenML failed") as info:
        load_mnist(cache_dir=tmp_path)
    assert "MNIST_PATH" in str(info.value)
    with pytest.warns(UserWarning):
        assert load_mnist(cache_dir=tmp_path, fallback=True).name == "digits"


# ------------------------------------------------------------------ one_hot


def test_one_hot() -> None:
    y = np.array([0, 2, 1, 2])
    out = one_hot(y, 3)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[y])
    assert one_hot(np.array([], dtype=np.int64), 5).shape == (0, 5)


@pytest.mark.parametrize(
    "y, num_classes, match",
    [
        (np.array([0.0, 1.5]), 3, "integer"),
        (np.array([0, 3]), 3, r"\[0, 3\)"),
        (np.array([-1, 0]), 3, r"\[0, 3\)"),
        (np.array([[0, 1]]), 3, "1-D"),
        (np.array([0, 1]), 0, "num_classes"),
    ],
)
def test_one_hot_errors(y: np.ndarray, num_classes: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        one_hot(y, num_classes)


# ------------------------------------------------------------------ minibatches


def test_minibatches_cover_each_example_once() -> None:
    X = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(100)
    batches = list(iterate_minibatches(X, y, 32, seed=0))
    assert [len(yb) for _, yb in batches] == [32, 32, 32, 4]
    seen = np.concatenate([yb for _, yb in batches])
    np.testing.assert_array_equal(np.sort(seen), y)
    assert not np.array_equal(seen, y)  # shuffled
    for Xb, yb in batches:  # pairs stay aligned
        np.testing.assert_array_equal(Xb[:, 0], yb)


def test_minibatches_no_shuffle_keeps_order() -> None:
    X, y = np.zeros((10, 2)), np.arange(10)
    got = [yb.tolist() for _, yb in iterate_minibatches(X, y, 4, shuffle=False)]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_minibatches_seeded_and_rng() -> None:
    X, y = np.zeros((50, 1)), np.arange(50)

    def order(**kwargs: object) -> np.ndarray:
        return np.concatenate([yb for _, yb in iterate_minibatches(X, y, 8, **kwargs)])

    np.testing.assert_array_equal(order(seed=3), order(seed=3))
    assert not np.array_equal(order(seed=3), order(seed=4))
    rng = np.random.default_rng(0)
    first, second = order(rng=rng), order(rng=rng)  # a new permutation per epoch
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, order(rng=np.random.default_rng(0)))


@pytest.mark.parametrize(
    "X, y, batch_size, kwargs",
    [
        (np.zeros((5, 2)), np.zeros(5), 0, {}),
        (np.zeros((5, 2)), np.zeros(5), 2.5, {}),
        (np.zeros((5, 2)), np.zeros(4), 2, {}),
        (np.zeros((5, 2)), np.zeros(5), 2, {"seed": 0, "rng": np.random.default_rng()}),
    ],
)
def test_minibatches_errors_are_eager(
    X: np.ndarray, y: np.ndarray, batch_size: int, kwargs: dict
) -> None:
    with pytest.raises(ValueError):
        iterate_minibatches(X, y, batch_size, **kwargs)  # no iteration needed


def test_fallback_warning_hides_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.delenv("NN_DATA_DIR", raising=False)
    with pytest.warns(UserWarning, match="8x8 digits") as record:
        ds = load_mnist(download=False, fallback=True)
    message = str(record[0].message)
    assert str(tmp_path) not in message and str(tmp_path) not in ds.note
    assert "~/.cache" in message


# ------------------------------------------------------------------ validation


def test_train_val_split_sizes_disjoint_and_complete() -> None:
    X = np.arange(200, dtype=np.float32).reshape(100, 2)
    y = np.repeat(np.arange(4), 25)
    X_tr, X_val, y_tr, y_val = data.train_val_split(X, y, 0.2, seed=0)
    assert (len(X_tr), len(X_val), len(y_tr), len(y_val)) == (80, 20, 80, 20)
    ids_tr, ids_val = X_tr[:, 0] // 2, X_val[:, 0] // 2  # row numbers
    assert not set(ids_tr) & set(ids_val)
    assert sorted([*ids_tr, *ids_val]) == list(range(100))
    np.testing.assert_array_equal(y[ids_val.astype(int)], y_val)  # rows stay paired
    assert np.all(np.diff(ids_tr) > 0) and np.all(np.diff(ids_val) > 0)  # order kept
    assert X_val.dtype == np.float32 and y_val.dtype == y.dtype


def test_train_val_split_is_seeded() -> None:
    X = np.random.default_rng(0).standard_normal((300, 3))
    y = np.random.default_rng(1).integers(0, 5, 300)
    a = data.train_val_split(X, y, 50, seed=3)
    b = data.train_val_split(X, y, 50, seed=3)
    c = data.train_val_split(X, y, 50, seed=4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1])


def test_train_val_split_is_stratified() -> None:
    y = np.repeat(np.arange(3), [600, 300, 100])  # unbalanced: 60%, 30%, 10%
    X = np.arange(1000)
    for val_size in (0.1, 0.25, 37):
        _, _, y_tr, y_val = data.train_val_split(X, y, val_size, seed=0)
        n_val = len(y_val)
        counts = np.bincount(y_val, minlength=3)
        # each class within one example of its exact share
        assert np.all(np.abs(counts - np.array([0.6, 0.3, 0.1]) * n_val) < 1)
        assert counts.sum() == n_val == (val_size if val_size >= 1 else 1000 * val_size)
        np.testing.assert_array_equal(
            np.bincount(y_tr, minlength=3) + counts, [600, 300, 100]
        )


@pytest.mark.parametrize(
    ("val_size", "match"),
    [
        (0, "at least one"),
        (1.0, "fraction"),
        (100, "at least one"),
        (-0.1, "fraction"),
        ("10%", "number"),
        (True, "number"),
    ],
)
def test_train_val_split_bad_sizes(val_size: object, match: str) -> None:
    X, y = np.zeros((100, 2)), np.zeros(100, np.int64)
    with pytest.raises(ValueError, match=match):
        data.train_val_split(X, y, val_size)


def test_train_val_split_bad_labels() -> None:
    with pytest.raises(ValueError, match="same length"):
        data.train_val_split(np.zeros((5, 2)), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="integer labels"):
        data.train_val_split(np.zeros((5, 2)), np.zeros((5, 2), np.int64))


def test_dataset_with_validation_on_the_digits() -> None:
    ds = load_digits()
    split = ds.with_validation(0.2, seed=0)
    assert ds.X_val is None and ds.y_val is None  # the original is untouched
    n = len(ds.y_train)
    assert len(split.y_val) == round(0.2 * n) and len(split.y_train) == n - len(
        split.y_val
    )
    assert split.X_val.shape[1] == 64 and split.X_val.dtype == np.float32
    np.testing.assert_array_equal(split.X_test, ds.X_test)
    # disjoint: no validation image is also a training image of the split
    train_rows = {row.tobytes() for row in split.X_train}
    assert not any(row.tobytes() in train_rows for row in split.X_val)
    # stratified: all ten classes, each within one of its share
    share = np.bincount(ds.y_train, minlength=10) * len(split.y_val) / n
    assert np.all(np.abs(np.bincount(split.y_val, minlength=10) - share) < 1)
    line = split.describe()
    assert f"{len(split.y_val)} validation" in line and "\n" not in line
    assert "X_val=" in repr(split)
    with pytest.raises(ValueError, match="already has a validation set"):
        split.with_validation(0.1)


def test_dataset_validation_arrays_come_in_pairs() -> None:
    X, y = np.zeros((4, 64), np.float32), np.zeros(4, np.int64)
    with pytest.raises(DataError, match="both X_val and y_val"):
        Dataset("digits", X, y, X, y, (8, 8), X_val=X)
    with pytest.raises(DataError, match="y_val"):
        Dataset("digits", X, y, X, y, (8, 8), X_val=X, y_val=y[:2])
