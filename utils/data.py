"""The course's data: synthetic edge patches, scikit-learn digits and MNIST.

Everything returns plain NumPy arrays: images flattened to ``(n, d)`` float32
in ``[0, 1]`` and integer labels ``(n,)`` int64.

* :func:`make_edge_patches` -- tiny seeded 5x5 "is there a vertical edge?" task.
* :func:`load_digits` -- scikit-learn's bundled 8x8 digits (always offline).
* :func:`load_mnist` -- MNIST from a local ``mnist.npz``, a cache, or a one-time
  download from OpenML, with an optional fallback to the digits.
* :func:`train_val_split` and :meth:`Dataset.with_validation` -- a seeded,
  stratified validation set carved out of the training set, for every choice made
  while training (learning rate, epochs, schedule); the test set is for the end.
* :func:`one_hot` and :func:`iterate_minibatches` -- small training helpers.

Every data problem raises :class:`DataError` with a message that says what to do.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "DataError",
    "Dataset",
    "iterate_minibatches",
    "load_digits",
    "load_mnist",
    "make_edge_patches",
    "one_hot",
    "random_shift",
    "train_val_split",
]

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_IMAGE_SHAPE = (28, 28)
MNIST_N_TRAIN = 60_000
DEFAULT_CACHE_DIR = Path("~/.cache/nn-from-scratch")
CACHE_FILENAME = "mnist.npz"

# What a broken or unreadable .npz raises while opening or reading an array.
_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error)


class DataError(RuntimeError):
    """A data set is missing, unreadable or malformed; the message says the fix."""


# --------------------------------------------------------------------------------------
# Synthetic edge patches
# --------------------------------------------------------------------------------------


def _step_profiles(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """Random 1-D step profiles: intensity ``a`` before a boundary, ``b`` after.

    Args:
        rng: Random generator.
        m: Number of profiles.
        size: Length of each profile.

    Returns:
        ``(m, size)`` float64 array; the boundary ``k`` is in ``1..size-1`` and
        ``|a - b| >= 0.4`` with either polarity.
    """
    low = rng.uniform(0.0, 0.6, m)
    high = rng.uniform(low + 0.4, 1.0)
    flip = rng.random(m) < 0.5
    a = np.where(flip, high, low)
    b = np.where(flip, low, high)
    k = rng.integers(1, size, m)
    before = np.arange(size)[None, :] < k[:, None]
    return np.where(before, a[:, None], b[:, None])


def make_edge_patches(
    n: int, *, size: int = 5, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Make a seeded binary task: does a small grayscale patch hold a vertical edge?

    Positives (label 1) have a vertical step edge: columns left of a random
    boundary ``k`` in ``1..size-1`` have intensity ``a``, the others ``b``, with
    ``|a - b| >= 0.4`` and either polarity. Negatives (label 0) are half uniform
    patches and half *horizontal* edges built the same way on rows, so a model
    has to look at vertical structure, not just at contrast. Gaussian noise is
    added and the result clipped to ``[0, 1]``. Classes are balanced (they differ
    by at most one when ``n`` is odd) and the examples are shuffled.

    Args:
        n: Number of patches.
        size: Side length of a square patch.
        noise: Standard deviation of the Gaussian pixel noise.
        seed: Seed for ``np.random.default_rng``; the same seed gives the same data.

    Returns:
        ``(X, y)``: ``X`` of shape ``(n, size * size)`` float32 in ``[0, 1]`` (row
        major, so ``X[i].reshape(size, size)`` is the patch) and ``y`` of shape
        ``(n,)`` int64 in ``{0, 1}``.

    Raises:
        ValueError: If ``n < 0``, ``size < 2`` or ``noise < 0``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 2:
        raise ValueError(f"size must be >= 2 to hold an edge, got {size}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    n_pos = n // 2
    n_uniform = (n - n_pos) // 2
    n_horizontal = n - n_pos - n_uniform

    vertical = _step_profiles(rng, n_pos, size)[:, None, :]  # varies along columns
    horizontal = _step_profiles(rng, n_horizontal, size)[:, :, None]  # along rows
    uniform = rng.uniform(0.0, 1.0, n_uniform)[:, None, None]
    shape = (size, size)
    patches = np.concatenate(
        [
            np.broadcast_to(vertical, (n_pos, *shape)),
            np.broadcast_to(uniform, (n_uniform, *shape)),
            np.broadcast_to(horizontal, (n_horizontal, *shape)),
        ]
    )
    patches = patches + rng.normal(0.0, noise, patches.shape)
    X = np.clip(patches, 0.0, 1.0).reshape(n, size * size).astype(np.float32)
    y = np.concatenate([np.ones(n_pos, np.int64), np.zeros(n - n_pos, np.int64)])
    order = rng.permutation(n)
    return X[order], y[order]


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------


@dataclass(repr=False)
class Dataset:
    """An image classification data set split into train and test parts.

    Attributes:
        name: ``"mnist"`` or ``"digits"``.
        X_train: ``(n_train, d)`` float32 images flattened, scaled to ``[0, 1]``.
        y_train: ``(n_train,)`` int64 labels.
        X_test: ``(n_test, d)`` float32 images.
        y_test: ``(n_test,)`` int64 labels.
        image_shape: ``(height, width)`` with ``height * width == d``.
        num_classes: Number of classes.
        note: A sentence on where the data came from.
        X_val: ``(n_val, d)`` float32 validation images, carved out of the training
            set by :meth:`with_validation` (``None`` until then).
        y_val: ``(n_val,)`` int64 validation labels (``None`` until then).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    num_classes: int = 10
    note: str = ""
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        d = int(np.prod(self.image_shape))
        if (self.X_val is None) != (self.y_val is None):
            raise DataError(
                f"Dataset {self.name!r}: give both X_val and y_val, or neither."
            )
        splits = ("train", "test") if self.X_val is None else ("train", "val", "test")
        for split in splits:
            X = getattr(self, f"X_{split}")
            y = getattr(self, f"y_{split}")
            if X.ndim != 2 or X.shape[1] != d:
                raise DataError(
                    f"Dataset {self.name!r}: X_{split} has shape {X.shape}; expected "
                    f"(n, {d}) for images of shape {tuple(self.image_shape)}."
                )
            if y.shape != (X.shape[0],):
                raise DataError(
                    f"Dataset {self.name!r}: y_{split} has shape {y.shape}; expected "
                    f"({X.shape[0]},), one label per row of X_{split}."
                )

    @property
    def n_features(self) -> int:
        """Number of pixels per image, ``d``."""
        return int(self.X_train.shape[1])

    def describe(self) -> str:
        """Summarize the data set in one line: what it is and how big.

        Where the files were read from stays in ``note`` (and the ``repr``): this
        line is printed on the course site, which must not show the builder's
        machine.

        Returns:
            E.g. ``"mnist: 60000 train / 10000 test images of 28x28, 10 classes."``,
            or ``"mnist: 54000 train / 6000 validation / 10000 test images ..."``
            with a validation set.
        """
        h, w = self.image_shape
        val = "" if self.y_val is None else f"{len(self.y_val)} validation / "
        return (
            f"{self.name}: {len(self.y_train)} train / {val}{len(self.y_test)} test "
            f"images of {h}x{w}, {self.num_classes} classes."
        )

    def with_validation(self, val_size: float | int = 0.1, *, seed: int = 0) -> Dataset:
        """A copy whose training set is split into training and validation parts.

        The split is :func:`train_val_split`'s: seeded and stratified. The test set
        is unchanged; tune on ``X_val`` and measure on ``X_test`` once, at the end.

        Args:
            val_size: a fraction of the training set in (0, 1), or a number of
                examples.
            seed: seed of the split.

        Returns:
            A new :class:`Dataset` with ``X_val``, ``y_val`` and a smaller
            ``X_train``, ``y_train``.

        Raises:
            ValueError: If the data set already has a validation set, or as
                :func:`train_val_split`.
        """
        if self.X_val is not None:
            raise ValueError(
                f"{self.name} already has a validation set of {len(self.y_val)} "
                "images; split the original data set instead."
            )
        X_train, X_val, y_train, y_val = train_val_split(
            self.X_train, self.y_train, val_size, seed=seed
        )
        return replace(self, X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val)

    def __repr__(self) -> str:
        def arr(a: np.ndarray) -> str:
            return f"{a.shape} {a.dtype}"

        val = (
            ""
            if self.X_val is None
            else f"X_val={arr(self.X_val)}, y_val={arr(self.y_val)}, "
        )
        return (
            f"Dataset(name={self.name!r}, X_train={arr(self.X_train)}, "
            f"y_train={arr(self.y_train)}, {val}X_test={arr(self.X_test)}, "
            f"y_test={arr(self.y_test)}, image_shape={tuple(self.image_shape)}, "
            f"num_classes={self.num_classes}, note={self.note!r})"
        )


def load_digits(*, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """Load scikit-learn's bundled 8x8 handwritten digits (works offline).

    Args:
        test_size: Fraction of the 1797 images put in the test split.
        seed: Seed of the stratified split.

    Returns:
        A :class:`Dataset` named ``"digits"`` with pixels scaled from 0..16 to
        ``[0, 1]`` float32 and ``image_shape == (8, 8)``.

    Raises:
        ValueError: If ``test_size`` is not strictly between 0 and 1.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    images, labels = sk_load_digits(return_X_y=True)
    X = (images / 16.0).astype(np.float32)
    y = labels.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    return Dataset(
        name="digits",
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        image_shape=(8, 8),
        num_classes=10,
        note=(
            f"scikit-learn's bundled 8x8 digits ({len(y_train)} train, "
            f"{len(y_test)} test)"
        ),
    )


# --------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------


def _read_mnist_file(path: Path) -> dict[str, np.ndarray]:
    """Read and validate an MNIST ``.npz`` file.

    Args:
        path: The file, or a directory holding ``mnist.npz``.

    Returns:
        The four arrays keyed by :data:`MNIST_KEYS`, images as ``(n, 28, 28)`` or
        ``(n, 784)``.

    Raises:
        DataError: If the file is missing, unreadable, corrupt or malformed.
    """
    if path.is_dir():
        path = path / CACHE_FILENAME
    if not path.exists():
        raise DataError(f"MNIST file {path} does not exist.")
    redo = "delete it and download it again (or point MNIST_PATH to a good copy)"
    corrupt = f"it looks truncated or corrupt: {redo}"
    try:
        # Open the file here: np.load leaks its own handle when the archive is bad.
        with open(path, "rb") as handle:
            try:
                loaded = np.load(handle, allow_pickle=False)
            except _READ_ERRORS as exc:
                raise DataError(
                    f"MNIST file {path} could not be opened as an .npz archive "
                    f"({exc}); {corrupt}."
                ) from exc
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise DataError(
                    f"MNIST file {path} holds a single array, not an .npz archive "
                    f"with the arrays {', '.join(MNIST_KEYS)}."
                )
            with loaded:
                missing = [key for key in MNIST_KEYS if key not in loaded.files]
                if missing:
                    raise DataError(
                        f"MNIST file {path} lacks the array(s) {', '.join(missing)} "
                        f"(it has {', '.join(loaded.files) or 'none'}); an MNIST "
                        f".npz must hold {', '.join(MNIST_KEYS)}."
                    )
                try:
                    arrays = {key: loaded[key] for key in MNIST_KEYS}
                except _READ_ERRORS as exc:
                    raise DataError(
                        f"MNIST file {path} could not be read ({exc}); {corrupt}."
                    ) from exc
    except OSError as exc:  # opening the file itself: permissions, a device, ...
        raise DataError(f"MNIST file {path} cannot be read: {exc}.") from exc
    _validate_mnist(arrays, path)
    return arrays


def _validate_mnist(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Check shapes, dtypes and value ranges of MNIST arrays.

    Args:
        arrays: The arrays keyed by :data:`MNIST_KEYS`.
        path: The file they came from, for messages.

    Raises:
        DataError: Naming the offending array, its shape and what was expected.
    """
    h, w = MNIST_IMAGE_SHAPE
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if not (x.ndim == 3 and x.shape[1:] == (h, w)) and not (
            x.ndim == 2 and x.shape[1] == h * w
        ):
            raise DataError(
                f"MNIST file {path}: array x_{split} has shape {x.shape}; expected "
                f"(n, {h}, {w}) or (n, {h * w}) images."
            )
        if len(x) == 0:
            raise DataError(f"MNIST file {path}: array x_{split} holds no images.")
        if y.shape != (len(x),):
            raise DataError(
                f"MNIST file {path}: array y_{split} has shape {y.shape}; expected "
                f"({len(x)},), one label per image of x_{split}."
            )
        if not (
            np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
        ):
            raise DataError(
                f"MNIST file {path}: array x_{split} has dtype {x.dtype}; expected "
                f"uint8 pixels."
            )
        if x.min() < 0 or x.max() > 255:
            raise DataError(
                f"MNIST file {path}: array x_{split} has pixel values in "
                f"[{x.min()}, {x.max()}]; expected 0..255."
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(
                f"MNIST file {path}: array y_{split} has dtype {y.dtype}; expected "
                f"integer labels 0..9."
            )
        if y.min() < 0 or y.max() > 9:
            raise DataError(
                f"MNIST file {path}: array y_{split} has labels in "
                f"[{y.min()}, {y.max()}]; expected 0..9."
            )


def _mnist_dataset(arrays: dict[str, np.ndarray], note: str) -> Dataset:
    """Turn validated MNIST arrays into a :class:`Dataset` (flatten, scale).

    Args:
        arrays: Validated arrays keyed by :data:`MNIST_KEYS`.
        note: Where they came from; the split sizes are appended.

    Returns:
        The data set with ``X`` as ``(n, 784)`` float32 in ``[0, 1]``.
    """

    def scale(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float32)
        # Float files already in [0, 1] are kept; everything else is 0..255.
        if np.issubdtype(x.dtype, np.integer) or flat.max() > 1.0:
            flat /= np.float32(255.0)
        return flat

    y_train = arrays["y_train"].astype(np.int64)
    y_test = arrays["y_test"].astype(np.int64)
    return Dataset(
        name="mnist",
        X_train=scale(arrays["x_train"]),
        y_train=y_train,
        X_test=scale(arrays["x_test"]),
        y_test=y_test,
        image_shape=MNIST_IMAGE_SHAPE,
        num_classes=10,
        note=f"{note} ({len(y_train)} train, {len(y_test)} test)",
    )


def _cache_file(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where the cached ``mnist.npz`` lives.

    Args:
        cache_dir: Explicit directory, else env ``NN_DATA_DIR``, else
            ``~/.cache/nn-from-scratch``.

    Returns:
        The path of the cache file (which may not exist).
    """
    if cache_dir is None:
        cache_dir = os.environ.get("NN_DATA_DIR") or DEFAULT_CACHE_DIR
    return Path(cache_dir).expanduser() / CACHE_FILENAME


def _download_mnist(cache_file: Path) -> dict[str, np.ndarray]:
    """Download MNIST from OpenML and save it to ``cache_file``.

    Args:
        cache_file: Where to write the ``.npz`` (atomically, via a temporary file).

    Returns:
        The arrays keyed by :data:`MNIST_KEYS` (uint8; images ``(n, 28, 28)``).

    Raises:
        DataError: If the download fails (offline, server error, ...).
    """
    import importlib.util

    from sklearn.datasets import fetch_openml

    parser = "pandas" if importlib.util.find_spec("pandas") else "liac-arff"
    try:
        with warnings.catch_warnings():
            # sklearn warns on each retry; a final failure is reported below.
            warnings.filterwarnings("ignore", message="A network error occurred")
            bunch = fetch_openml("mnist_784", version=1, as_frame=False, parser=parser)
    except Exception as exc:  # network, HTTP, server and parser errors all vary
        raise DataError(f"downloading MNIST from OpenML failed ({exc})") from exc
    images = np.asarray(bunch.data).astype(np.uint8).reshape(-1, *MNIST_IMAGE_SHAPE)
    labels = np.asarray(bunch.target).astype(np.int64).astype(np.uint8)
    n = MNIST_N_TRAIN
    arrays = {
        "x_train": images[:n],
        "y_train": labels[:n],
        "x_test": images[n:],
        "y_test": labels[n:],
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=cache_file.parent, prefix=".mnist-", suffix=".npz.part"
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez_compressed(handle, **arrays)
            os.replace(tmp_name, cache_file)
        finally:
            if os.path.exists(tmp_name):
                os.remove(tmp_name)
    except OSError as exc:
        warnings.warn(
            f"MNIST was downloaded but could not be cached at {cache_file} ({exc}); "
            f"it will be downloaded again next time. Set NN_DATA_DIR or pass "
            f"cache_dir= to a writable directory.",
            stacklevel=3,
        )
    return arrays


def _how_to_get_mnist(cache_file: Path) -> str:
    return (
        "To use MNIST, set the environment variable MNIST_PATH to an mnist.npz file "
        "holding the uint8 arrays x_train, y_train, x_test, y_test (images "
        f"(n, 28, 28) or (n, 784), labels 0..9), or put that file at {cache_file}, "
        "or call load_mnist() once with an internet connection (download=True) so "
        "it is downloaded from OpenML and cached there. To go on without MNIST, "
        "call load_mnist(fallback=True) or load_digits() for scikit-learn's 8x8 "
        "digits."
    )


def _fallback_to_digits(reason: str) -> Dataset:
    """Warn that MNIST is unavailable and return the digits instead.

    Args:
        reason: Why MNIST is not available.

    Returns:
        :func:`load_digits` with a ``note`` explaining the fallback.
    """
    data = load_digits()
    # the warning is shown in notebooks and on the site: no home directory in it
    reason = reason.replace(str(Path.home()), "~")
    data.note = (
        f"MNIST not available ({reason}); using scikit-learn's 8x8 digits instead "
        f"({len(data.y_train)} train, {len(data.y_test)} test)"
    )
    warnings.warn(
        f"{data.note}. Results will differ from the MNIST ones in the text: the "
        f"images are 8x8 (64 inputs) instead of 28x28 (784 inputs). Set MNIST_PATH "
        f"to an mnist.npz file, or run load_mnist() once online, to use MNIST.",
        stacklevel=3,
    )
    return data


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    fallback: bool = False,
) -> Dataset:
    """Load MNIST (60000 train / 10000 test handwritten digits, 28x28).

    Sources, in order:

    1. ``path`` (an ``.npz`` file, or a directory holding ``mnist.npz``);
    2. the environment variable ``MNIST_PATH``;
    3. the cache file ``mnist.npz`` in ``cache_dir``, else in the environment
       variable ``NN_DATA_DIR``, else in ``~/.cache/nn-from-scratch``;
    4. if ``download``, OpenML's ``mnist_784`` through scikit-learn, split
       60000/10000 in order and saved to the cache so the next call is fast.

    An explicit file (1 or 2) that is missing or broken raises
    :class:`DataError` rather than silently using something else. A broken cache
    file is replaced by a fresh download when ``download`` is true.

    The ``.npz`` format: arrays ``x_train, y_train, x_test, y_test``; images
    uint8 ``(n, 28, 28)`` or ``(n, 784)``, labels integers 0..9.

    Args:
        path: Explicit MNIST ``.npz`` file.
        cache_dir: Directory of the cache file.
        download: Whether to download MNIST when no file is found.
        fallback: If MNIST cannot be loaded, warn and return :func:`load_digits`
            (with a ``note`` saying so) instead of raising.

    Returns:
        A :class:`Dataset` named ``"mnist"`` with ``X`` as ``(n, 784)`` float32 in
        ``[0, 1]`` and ``y`` int64; or the digits when falling back.

    Raises:
        DataError: If MNIST cannot be loaded and ``fallback`` is false.
    """
    explicit: Path | None = None
    if path is not None:
        explicit, origin = Path(path).expanduser(), "the path argument"
    elif os.environ.get("MNIST_PATH"):
        explicit, origin = Path(os.environ["MNIST_PATH"]).expanduser(), "MNIST_PATH"
    if explicit is not None:
        try:
            arrays = _read_mnist_file(explicit)
        except DataError as exc:
            if fallback:
                problem = f"{str(exc).rstrip('.')} (given by {origin})"
                return _fallback_to_digits(problem)
            instead = "unset MNIST_PATH" if origin == "MNIST_PATH" else "pass no path"
            raise DataError(
                f"{str(exc).rstrip('.')} (given by {origin}). Fix or replace the "
                f"file, or {instead} to use the cache or a download."
            ) from exc
        return _mnist_dataset(arrays, f"MNIST from {explicit}")

    cache_file = _cache_file(cache_dir)
    problems: list[str] = []
    if cache_file.exists():
        try:
            arrays = _read_mnist_file(cache_file)
        except DataError as exc:
            problems.append(str(exc).rstrip("."))
            if download:
                warnings.warn(
                    f"Ignoring the broken MNIST cache: {exc} Downloading it again.",
                    stacklevel=2,
                )
        else:
            return _mnist_dataset(arrays, f"MNIST from {cache_file}")
    else:
        problems.append(f"no MNIST_PATH and no cached file {cache_file}")

    if download:
        try:
            arrays = _download_mnist(cache_file)
        except DataError as exc:
            problems.append(str(exc))
        else:
            return _mnist_dataset(
                arrays, f"MNIST downloaded from OpenML, cached at {cache_file}"
            )
    else:
        problems.append("download=False")

    reason = "; ".join(problems)
    if fallback:
        return _fallback_to_digits(reason)
    raise DataError(
        f"MNIST is not available: {reason}. {_how_to_get_mnist(cache_file)}"
    )


# --------------------------------------------------------------------------------------
# Training helpers
# --------------------------------------------------------------------------------------


def train_val_split(
    X: np.ndarray, y: np.ndarray, val_size: float | int = 0.1, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carve a validation set out of a training set: seeded and stratified.

    Every choice made while training (learning rate, number of epochs, schedule)
    is a choice made by looking at some data; made on the test set, it makes the
    test score optimistic. The validation set takes that role, and the test set is
    used once, at the end.

    Stratified: each class keeps its share of the examples in both parts (the
    ``n_val`` places are shared out in proportion to the class counts, the
    remainders going to the largest fractional parts), so a small validation set
    is not short of a class by bad luck. Within each class the examples are drawn
    with ``np.random.default_rng(seed)``; both parts keep the original order.

    Args:
        X: ``(N, ...)`` inputs.
        y: ``(N,)`` integer labels.
        val_size: a fraction of ``N`` in (0, 1) (rounded to a count), or a number
            of examples in [1, N - 1].
        seed: seed of the draw: the same seed gives the same split.

    Returns:
        ``X_train, X_val, y_train, y_val`` (as scikit-learn's
        ``train_test_split``): disjoint, together every example exactly once.

    Raises:
        ValueError: If the lengths differ, ``y`` is not 1-D integer labels, or
            ``val_size`` leaves either part empty.
    """
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(
            f"X and y must have the same length, got {len(X)} and {len(y)}"
        )
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"train_val_split expects integer labels of shape (N,), got {y.shape} "
            f"{y.dtype}"
        )
    n = len(y)
    if isinstance(val_size, bool) or not isinstance(
        val_size, int | float | np.integer | np.floating
    ):
        raise ValueError(f"val_size must be a number, got {val_size!r}")
    if isinstance(val_size, int | np.integer):
        n_val = int(val_size)
    elif 0 < val_size < 1:
        n_val = int(round(float(val_size) * n))
    else:
        raise ValueError(
            f"val_size must be a fraction in (0, 1) or a number of examples, "
            f"got {val_size!r}"
        )
    if not 1 <= n_val <= n - 1:
        raise ValueError(
            f"val_size={val_size!r} gives {n_val} validation examples out of {n}: "
            "both parts must have at least one"
        )
    classes, y_index = np.unique(y, return_inverse=True)
    counts = np.bincount(y_index, minlength=len(classes))  # (K,)
    share = counts * (n_val / n)  # (K,) ideal number of each class in validation
    per_class = np.floor(share).astype(np.int64)
    leftover = n_val - int(per_class.sum())
    by_remainder = np.argsort(-(share - per_class), kind="stable")
    per_class[by_remainder[:leftover]] += 1
    rng = np.random.default_rng(seed)
    is_val = np.zeros(n, dtype=bool)
    for k in range(len(classes)):
        members = np.flatnonzero(y_index == k)
        is_val[rng.choice(members, size=per_class[k], replace=False)] = True
    return X[~is_val], X[is_val], y[~is_val], y[is_val]


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Encode integer labels as one-hot rows.

    Args:
        y: ``(N,)`` integer labels in ``[0, num_classes)``.
        num_classes: Number of classes ``C``.

    Returns:
        ``(N, C)`` float32 with a single 1 per row.

    Raises:
        ValueError: If ``y`` is not a 1-D integer array, ``num_classes < 1`` or a
            label is outside ``[0, num_classes)``.
    """
    y = np.asarray(y)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if y.ndim != 1:
        raise ValueError(f"one_hot expects 1-D labels of shape (N,), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"one_hot expects integer class labels, got dtype {y.dtype}; use "
            f"y.astype(np.int64) if the values are whole numbers"
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must be in [0, {num_classes}), got values in "
            f"[{y.min()}, {y.max()}]"
        )
    out = np.zeros((len(y), num_classes), dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def iterate_minibatches(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate once over ``(X, y)`` in minibatches (one epoch).

    Arguments are checked when the function is called, not at the first batch.

    Args:
        X: ``(N, ...)`` inputs.
        y: ``(N, ...)`` targets.
        batch_size: Examples per batch; the last batch may be smaller.
        shuffle: Visit the examples in a random order.
        seed: Seed for a fresh generator (same order on every call).
        rng: Generator to draw the permutation from (a new order each call).
            Give at most one of ``seed`` and ``rng``; with neither, the order is
            unseeded.

    Returns:
        An iterator of ``(X_batch, y_batch)``; every example appears exactly once.

    Raises:
        ValueError: If ``batch_size < 1``, the lengths of ``X`` and ``y`` differ,
            or both ``seed`` and ``rng`` are given.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(X) != len(y):
        raise ValueError(
            f"X and y must have the same length, got {len(X)} and {len(y)}"
        )
    if seed is not None and rng is not None:
        raise ValueError("give at most one of seed and rng")
    n, batch_size = len(X), int(batch_size)
    order: np.ndarray | None = None
    if shuffle:
        generator = rng if rng is not None else np.random.default_rng(seed)
        order = generator.permutation(n)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, n, batch_size):
            if order is None:
                yield X[start : start + batch_size], y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                yield X[idx], y[idx]

    return batches()


def random_shift(
    X: np.ndarray,
    image_shape: tuple[int, int],
    max_shift: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Every image moved by its own random whole number of pixels, at most
    ``max_shift`` up or down and left or right, zeros filled in (data augmentation:
    a digit moved by a pixel is the same digit).

    Args:
        X: ``(N, H * W)`` rows of pixels or ``(N, 1, H, W)`` images.
        image_shape: ``(H, W)``.
        max_shift: the largest move, in pixels (0: ``X`` is returned as it is).
        rng: draws the moves.

    Returns:
        A new array of ``X``'s shape and dtype (``X`` itself when ``max_shift`` is 0).
    """
    if max_shift == 0:
        return X
    N, (H, W), k = len(X), image_shape, max_shift
    padded = np.pad(X.reshape(N, H, W), ((0, 0), (k, k), (k, k)))  # (N, H+2k, W+2k)
    # (N, 2k+1, 2k+1, H, W): every placement of an H x W window, a view
    placements = sliding_window_view(padded, (H, W), axis=(1, 2))
    dy, dx = rng.integers(0, 2 * k + 1, size=(2, N))  # one move per image
    return placements[np.arange(N), dy, dx].reshape(X.shape)
