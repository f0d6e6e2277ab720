"""Matplotlib helpers for the course notebooks: training curves, image grids and
computation graphs.

Every function builds a new figure with :mod:`matplotlib.pyplot` and returns the
:class:`~matplotlib.figure.Figure`; none calls ``plt.show()``, so they work
with any backend (including ``Agg`` in tests). In a notebook the figure is shown
at the end of the cell; end the line with ``;`` (or assign the result) so it is
not shown twice. Close figures you no longer need with ``plt.close(fig)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch
from matplotlib.ticker import MaxNLocator

__all__ = [
    "draw_graph",
    "draw_layer_caches",
    "show_layer_histograms",
    "plot_curves",
    "plot_history",
    "show_images",
    "show_misclassified",
    "show_predictions",
    "show_weights",
]

_CELL = 1.3  # inches per image in a grid
_TITLE_SPACE = 0.5  # inches for a figure title


def _is_accuracy(key: str) -> bool:
    return "acc" in key.lower()


def _plot_series(ax: Axes, series: dict[str, Sequence[float]], xlabel: str) -> None:
    for label, values in series.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend()


def plot_history(
    history: dict[str, Sequence[float]], *, title: str | None = None
) -> Figure:
    """Plot a training history: losses on the left, accuracies on the right.

    Keys containing ``"acc"`` (``"train_acc"``, ``"test_acc"``, ``"acc"``, ...) go
    to the accuracy axes; every other key (``"train_loss"``, ``"loss"``, ...) to
    the loss axes. A panel is only drawn when it has curves. The x axis counts
    the recorded values from 1 (epochs or steps).

    Args:
        history: Name -> values per epoch/step.
        title: Figure title.

    Returns:
        The figure, with one or two axes.

    Raises:
        ValueError: If ``history`` is empty.
    """
    if not history:
        raise ValueError("plot_history needs at least one curve, got an empty dict")
    losses = {k: v for k, v in history.items() if not _is_accuracy(k)}
    accuracies = {k: v for k, v in history.items() if _is_accuracy(k)}
    panels = [
        (p, name) for p, name in ((losses, "loss"), (accuracies, "accuracy")) if p
    ]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False
    )
    for ax, (series, name) in zip(axes[0], panels, strict=True):
        _plot_series(ax, series, "epoch")
        ax.set_ylabel(name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(
    curves: dict[str, Sequence[float]],
    *,
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    logy: bool = False,
) -> Figure:
    """Plot several labelled curves on one axes (x counts from 1).

    Args:
        curves: Label -> values.
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.
        title: Axes title.
        logy: Use a logarithmic y axis.

    Returns:
        The figure, with one axes.

    Raises:
        ValueError: If ``curves`` is empty.
    """
    if not curves:
        raise ValueError("plot_curves needs at least one curve, got an empty dict")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _plot_series(ax, curves, xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _as_images(images: np.ndarray, image_shape: tuple[int, int] | None) -> np.ndarray:
    """Reshape ``(n, d)`` or ``(n, h, w)`` input to ``(n, h, w)``.

    Args:
        images: The images.
        image_shape: ``(h, w)``; needed for ``(n, d)`` input unless ``d`` is a
            perfect square.

    Returns:
        ``(n, h, w)`` array.

    Raises:
        ValueError: If the shapes do not fit.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        if image_shape is not None and images.shape[1:] != tuple(image_shape):
            raise ValueError(
                f"images have shape {images.shape} but image_shape is {image_shape}"
            )
        return images
    if images.ndim != 2:
        raise ValueError(
            f"images must be (n, d) with image_shape, or (n, h, w); got {images.shape}"
        )
    d = images.shape[1]
    if image_shape is None:
        side = math.isqrt(d)
        if side * side != d:
            raise ValueError(
                f"images have {d} pixels, not a square number; pass image_shape"
            )
        image_shape = (side, side)
    h, w = image_shape
    if h * w != d:
        raise ValueError(
            f"images of shape {images.shape} have {d} pixels, but image_shape "
            f"{tuple(image_shape)} needs {h * w}"
        )
    return images.reshape(len(images), h, w)


def _image_grid(n: int, ncols: int, suptitle: str | None) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` tick-less axes in a grid of at most ``ncols`` columns.

    Args:
        n: Number of images (>= 1).
        ncols: Maximum number of columns.
        suptitle: Figure title.

    Returns:
        The figure and its ``n`` axes (unused grid cells are removed).
    """
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    height = rows * _CELL + (_TITLE_SPACE if suptitle else 0.0) + 0.3
    fig, grid = plt.subplots(rows, cols, figsize=(cols * _CELL, height), squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    axes = axes[:n]
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    return fig, axes


def _gray_limits(images: np.ndarray) -> tuple[float, float]:
    """Shared color limits: ``[0, 1]`` for data in that range, else min/max."""
    lo, hi = float(np.min(images)), float(np.max(images))
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def show_images(
    images: np.ndarray,
    *,
    image_shape: tuple[int, int] | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    suptitle: str | None = None,
) -> Figure:
    """Show images in a grid without ticks, on one shared color scale.

    Args:
        images: ``(n, d)`` flattened images (with ``image_shape``, optional when
            ``d`` is a square) or ``(n, h, w)``.
        image_shape: ``(h, w)`` of one image.
        titles: One title per image.
        ncols: Maximum number of columns.
        cmap: Matplotlib colormap.
        suptitle: Figure title.

    Returns:
        The figure, with one axes per image.

    Raises:
        ValueError: If there are no images, the shapes do not fit, or the number
            of titles differs from the number of images.
    """
    imgs = _as_images(images, image_shape)
    n = len(imgs)
    if n == 0:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    vmin, vmax = _gray_limits(imgs)
    fig, axes = _image_grid(n, ncols, suptitle)
    for i, ax in enumerate(axes):
        ax.imshow(imgs[i], cmap=cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def show_weights(
    W: np.ndarray,
    image_shape: tuple[int, int],
    *,
    ncols: int = 8,
    max_units: int = 32,
    title: str | None = None,
) -> Figure:
    """Show the columns of a weight matrix as images (e.g. first-layer filters).

    Uses a diverging colormap (blue negative, red positive, white zero) on one
    color scale symmetric around 0, shared by all units so they are comparable.

    Args:
        W: ``(d, k)`` weights; column ``j`` holds the input weights of unit ``j``.
        image_shape: ``(h, w)`` with ``h * w == d``.
        ncols: Maximum number of columns.
        max_units: Show at most this many units (the first ones).
        title: Figure title.

    Returns:
        The figure, with one axes per unit shown.

    Raises:
        ValueError: If ``W`` is not 2-D or its rows do not match ``image_shape``.
    """
    W = np.asarray(W)
    h, w = image_shape
    if W.ndim != 2:
        raise ValueError(f"W must be a (d, k) matrix, got shape {W.shape}")
    if W.shape[0] != h * w:
        hint = " (did you mean W.T?)" if W.shape[1] == h * w else ""
        raise ValueError(
            f"W has shape {W.shape} but image_shape {tuple(image_shape)} needs "
            f"{h * w} rows{hint}"
        )
    if max_units < 1:
        raise ValueError(f"max_units must be >= 1, got {max_units}")
    k = min(W.shape[1], max_units)
    if k == 0:
        raise ValueError("W has no columns to show")
    units = W[:, :k].T.reshape(k, h, w)
    limit = float(np.max(np.abs(units))) or 1.0
    fig, axes = _image_grid(k, ncols, title)
    for j, ax in enumerate(axes):
        ax.imshow(units[j], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"unit {j}", fontsize=8)
    fig.tight_layout()
    return fig


def _labels(y: np.ndarray) -> np.ndarray:
    """Class indices from labels ``(n,)`` or scores/one-hot ``(n, C)``."""
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y


def _prediction_grid(
    X: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    image_shape: tuple[int, int],
    indices: np.ndarray,
    title: str | None,
) -> Figure:
    imgs = _as_images(X, image_shape)
    vmin, vmax = _gray_limits(imgs[indices])
    fig, axes = _image_grid(len(indices), 8, title)
    for ax, i in zip(axes, indices, strict=True):
        ax.imshow(imgs[i], cmap="gray", vmin=vmin, vmax=vmax)
        wrong = y_pred[i] != y_true[i]
        ax.set_title(
            f"pred {y_pred[i]} / true {y_true[i]}",
            fontsize=8,
            color="red" if wrong else "black",
        )
    fig.tight_layout()
    return fig


def _check_predictions(
    X: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, max_images: int
) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    if not len(X) == len(y_true) == len(y_pred):
        raise ValueError(
            f"X, y_true and y_pred must have the same length, got {len(X)}, "
            f"{len(y_true)} and {len(y_pred)}"
        )
    return y_true, y_pred


def show_predictions(
    X: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    image_shape: tuple[int, int],
    *,
    max_images: int = 16,
    title: str | None = None,
) -> Figure:
    """Show the first images titled ``"pred p / true t"``, in red when wrong.

    Args:
        X: ``(n, d)`` or ``(n, h, w)`` images.
        y_true: ``(n,)`` labels (or ``(n, C)`` one-hot).
        y_pred: ``(n,)`` predicted labels (or ``(n, C)`` scores; argmax is used).
        image_shape: ``(h, w)`` of one image.
        max_images: Show at most this many images.
        title: Figure title.

    Returns:
        The figure, with one axes per image shown.

    Raises:
        ValueError: If the lengths differ or there is nothing to show.
    """
    y_true, y_pred = _check_predictions(X, y_true, y_pred, max_images)
    k = min(len(X), max_images)
    if k < 1:
        raise ValueError("show_predictions needs at least one image")
    return _prediction_grid(X, y_true, y_pred, image_shape, np.arange(k), title)


def show_misclassified(
    X: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    image_shape: tuple[int, int],
    *,
    max_images: int = 16,
) -> Figure:
    """Show the first misclassified images, titled ``"pred p / true t"`` in red.

    Args:
        X: ``(n, d)`` or ``(n, h, w)`` images.
        y_true: ``(n,)`` labels (or ``(n, C)`` one-hot).
        y_pred: ``(n,)`` predicted labels (or ``(n, C)`` scores; argmax is used).
        image_shape: ``(h, w)`` of one image.
        max_images: Show at most this many images.

    Returns:
        The figure: one axes per image shown, or a single axes saying
        "no mistakes" when every prediction is right.

    Raises:
        ValueError: If the lengths differ or ``max_images < 1``.
    """
    y_true, y_pred = _check_predictions(X, y_true, y_pred, max_images)
    wrong = np.flatnonzero(y_pred != y_true)
    if len(wrong) == 0:
        fig, ax = plt.subplots(figsize=(3, 1.5))
        ax.text(0.5, 0.5, f"no mistakes ({len(X)} images)", ha="center", va="center")
        ax.set_axis_off()
        return fig
    shown = wrong[:max_images]
    title = (
        f"{len(wrong)} of {len(X)} misclassified"
        f"{f' (first {len(shown)} shown)' if len(shown) < len(wrong) else ''}"
    )
    return _prediction_grid(X, y_true, y_pred, image_shape, shown, title)


# --------------------------------------------------------------------------- graphs
_GRAPH_COLORS = {
    "leaf": "#c7e9c0",  # a leaf that requires grad: a parameter
    "constant": "#e0e0e0",  # data, labels, numbers: no gradient
    "op": "#fdd9a0",  # an operation, labelled with its output's shape
}


def _graph_parents(t: Any) -> tuple[Any, ...] | None:
    """The input tensors of the operation that made ``t``; ``None`` for a leaf."""
    ctx = getattr(t, "grad_fn", None)
    return None if ctx is None else tuple(ctx.parents)


def _graph_nodes(root: Any, max_nodes: int) -> list[Any]:
    """Every tensor ``root`` depends on (constants included), parents first, each
    once; iterative, like a topological sort."""
    order: list[Any] = []
    seen = {id(root)}
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        t, i = stack[-1]
        parents = _graph_parents(t) or ()
        while i < len(parents):
            p = parents[i]
            i += 1
            if id(p) not in seen:
                seen.add(id(p))
                if len(seen) > max_nodes:
                    raise ValueError(
                        f"the graph has more than max_nodes={max_nodes} tensors: too "
                        "many to draw legibly (raise max_nodes to draw it anyway)."
                    )
                stack[-1] = (t, i)
                stack.append((p, 0))
                break
        else:
            stack.pop()
            order.append(t)
    return order


def draw_graph(
    tensor: Any,
    ax: Axes | None = None,
    *,
    names: Any = None,
    title: str | None = None,
    max_nodes: int = 200,
) -> Figure:
    """Draw the computation graph that produced ``tensor``, with matplotlib only.

    Each operation is an orange box with its name and its output's shape (the
    tensor it made); leaves are boxes with their shape: green for those that
    require a gradient (parameters), grey for constants (data, labels, numbers).
    Columns are topological layers: an operation stands one column right of its
    rightmost input operation, a leaf just left of its first use, ``tensor`` (outlined)
    on the right. ``backward()`` walks these arrows from right to left.

    Args:
        tensor: a stage-4 ``Tensor`` (any object with ``data``, ``requires_grad``
            and ``grad_fn.fn`` / ``grad_fn.parents`` works).
        ax: draw into these axes; a new figure otherwise.
        names: labels for leaves: a mapping (or pairs) name -> tensor or array,
            e.g. ``dict(model.named_parameters())`` or ``{"X": X}`` (a constant
            is matched by its array).
        title: a title for the axes.
        max_nodes: refuse graphs with more tensors than this.

    Returns:
        The figure.

    Raises:
        TypeError: if ``tensor`` is not a tensor.
        ValueError: if the graph has more than ``max_nodes`` tensors.
    """
    if not hasattr(tensor, "data") or not hasattr(tensor, "grad_fn"):
        raise TypeError(
            f"draw_graph takes a Tensor (with data and grad_fn), got "
            f"{type(tensor).__name__}."
        )
    label_of: dict[int, str] = {}
    if names is not None:
        pairs = names.items() if hasattr(names, "items") else names
        for name, obj in pairs:
            label_of.setdefault(id(obj), str(name))
            label_of.setdefault(id(getattr(obj, "data", obj)), str(name))
    nodes = _graph_nodes(tensor, max_nodes)

    # columns: an operation one right of its rightmost input operation; a leaf one
    # left of its first (leftmost) use
    column: dict[int, int] = {}
    for t in nodes:
        parents = _graph_parents(t)
        if parents is not None:
            column[id(t)] = 1 + max(
                (column[id(p)] for p in parents if _graph_parents(p) is not None),
                default=0,
            )
    for t in nodes:
        for p in _graph_parents(t) or ():
            if _graph_parents(p) is None:
                column[id(p)] = min(column.get(id(p), column[id(t)]), column[id(t)] - 1)
    column.setdefault(id(tensor), 0)
    first = min(column.values())
    layers: dict[int, list[Any]] = {}
    for t in nodes:
        layers.setdefault(column[id(t)] - first, []).append(t)
    n_cols, n_rows = max(layers) + 1, max(len(v) for v in layers.values())

    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * n_cols), 0.8 * n_rows + 1.2))
        fig.subplots_adjust(left=0.01, right=0.99)
    else:
        fig = ax.figure
    half_w, half_h = 0.42, 0.25  # a box, in column and row units
    position: dict[int, tuple[float, float]] = {}
    for col, members in layers.items():
        for row, t in enumerate(members):
            x, y = float(col), (len(members) - 1) / 2 - row
            shape = tuple(np.shape(t.data))
            if _graph_parents(t) is not None:
                ctx = t.grad_fn
                op = getattr(getattr(ctx, "fn", None), "__name__", type(ctx).__name__)
                text, kind = f"{op}\n{shape}", "op"
            else:
                name = label_of.get(id(t), label_of.get(id(t.data), ""))
                kind = "leaf" if getattr(t, "requires_grad", False) else "constant"
                text = f"{name}\n{shape}" if name else f"{shape}"
            is_root = t is tensor
            ax.add_patch(
                FancyBboxPatch(
                    (x - half_w, y - half_h),
                    2 * half_w,
                    2 * half_h,
                    boxstyle="round,pad=0,rounding_size=0.08"
                    if kind != "op"
                    else "square,pad=0",
                    fc=_GRAPH_COLORS[kind],
                    ec="black" if is_root else "#555555",
                    lw=2.0 if is_root else 0.8,
                    zorder=3,
                )
            )
            ax.text(x, y, text, ha="center", va="center", fontsize=8, zorder=4)
            position[id(t)] = (x, y)
    arcs = False
    for t in nodes:
        parents = _graph_parents(t)
        if parents is None:
            continue
        x1, y1 = position[id(t)]
        drawn: dict[int, int] = {}
        for p in parents:
            k = drawn.get(id(p), 0)  # x + x: two arrows, bent apart
            drawn[id(p)] = k + 1
            x0, y0 = position[id(p)]
            start, end, bend = (x0 + half_w, y0), (x1 - half_w, y1), 0.35 * k
            if x1 - x0 > 1.5:  # over more than one column: top to top, arcing over
                start, end = (x0, y0 + half_h), (x1, y1 + half_h)
                bend += min(0.3, 0.6 / (x1 - x0))
                arcs = True
            ax.annotate(
                "",
                xy=end,
                xytext=start,
                zorder=2,
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "#444444",
                    "lw": 0.8,
                    "shrinkA": 0,
                    "shrinkB": 0,
                    "connectionstyle": f"arc3,rad={-bend}",
                },
            )
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(-n_rows / 2, n_rows / 2 + (0.6 if arcs else 0.0))
    ax.set_axis_off()
    legend = [
        Patch(
            fc=_GRAPH_COLORS["leaf"], ec="#555555", label="parameter (requires grad)"
        ),
        Patch(fc=_GRAPH_COLORS["constant"], ec="#555555", label="constant"),
        Patch(fc=_GRAPH_COLORS["op"], ec="#555555", label="operation, output shape"),
    ]
    ax.legend(
        handles=legend,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    if title:
        ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- layers
def draw_layer_caches(
    layers: Sequence[tuple[str, Sequence[str], str]],
    *,
    signals: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a chain of layers: what each caches in forward and uses in backward.

    One box per layer, left to right in the order of the forward pass. Above the
    row, forward arrows carry the values between layers (``signals``); inside each
    box, the arrays its ``forward`` keeps; below it, the formula its ``backward``
    evaluates with them; under the row, backward arrows carry the gradients right
    to left (``d`` + the signal's name).

    Args:
        layers: ``(name, cached, backward)`` per layer: its name, the names (with
            shapes, say) of the arrays its forward caches, and its backward formula.
        signals: ``len(layers) + 1`` names of the values passed between layers
            (input first, output last); ``x0, x1, ...`` by default.
        title: Figure title.

    Returns:
        The figure, with one axes.

    Raises:
        ValueError: If ``layers`` is empty or ``signals`` has the wrong length.
    """
    if not layers:
        raise ValueError("draw_layer_caches needs at least one layer")
    n = len(layers)
    if signals is None:
        signals = [f"x{i}" for i in range(n + 1)]
    if len(signals) != n + 1:
        raise ValueError(
            f"signals must name the {n + 1} values around {n} layers, got "
            f"{len(signals)}"
        )
    fig, ax = plt.subplots(figsize=(max(6.0, 2.6 * n + 1.0), 4.2))
    width, gap = 2.0, 0.6
    x_of = [i * (width + gap) for i in range(n)]
    for (name, cached, backward), x in zip(layers, x_of, strict=True):
        ax.add_patch(
            FancyBboxPatch(
                (x, 0.0), width, 1.6,
                boxstyle="round,pad=0.03,rounding_size=0.1",
                fc="#e8f0fb", ec="#555555",
            )
        )  # fmt: skip
        ax.text(x + width / 2, 1.38, name, ha="center", va="center", weight="bold")
        cache_text = "\n".join(cached) if cached else "(nothing)"
        ax.text(
            x + width / 2, 0.72, "caches:\n" + cache_text, ha="center",
            va="center", fontsize=8, color="#1f4e8c",
        )  # fmt: skip
        ax.text(
            x + width / 2, -0.55, backward, ha="center", va="center", fontsize=8,
            color="#8c2d1f", wrap=True,
        )  # fmt: skip
    arrow = {"arrowstyle": "-|>", "lw": 1.0, "shrinkA": 2, "shrinkB": 2}
    lefts = [x_of[0] - gap] + [x + width for x in x_of]
    rights = [x_of[0]] + [x + width + gap for x in x_of]
    for i, label in enumerate(signals):
        a, b = lefts[i], rights[i]
        if i == 0:
            a, b = x_of[0] - 0.9, x_of[0]
        elif i == n:
            a, b = x_of[-1] + width, x_of[-1] + width + 0.9
        ax.annotate("", (b, 1.1), (a, 1.1), arrowprops={**arrow, "color": "#1f4e8c"})
        ax.text((a + b) / 2, 1.25, label, ha="center", fontsize=8, color="#1f4e8c")
        ax.annotate("", (a, 0.3), (b, 0.3), arrowprops={**arrow, "color": "#8c2d1f"})
        ax.text((a + b) / 2, 0.12, "d" + label, ha="center", fontsize=8,
                color="#8c2d1f")  # fmt: skip
    ax.text(x_of[0] - 0.9, 1.85, "forward →", fontsize=9, color="#1f4e8c")
    ax.text(x_of[0] - 0.9, -1.15, "← backward: uses the cache", fontsize=9,
            color="#8c2d1f")  # fmt: skip
    ax.set_xlim(x_of[0] - 1.0, x_of[-1] + width + 1.0)
    ax.set_ylim(-1.3, 2.1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def show_layer_histograms(
    values: dict[str, np.ndarray],
    *,
    xlabel: str = "value",
    bins: int = 40,
    title: str | None = None,
) -> Figure:
    """One histogram per layer, side by side: activations or gradients per layer.

    Each panel's title gives the layer's name, the standard deviation and the
    fraction of exact zeros (dead ReLUs show as a spike at 0 and a large fraction;
    vanishing gradients as a standard deviation that shrinks layer after layer).

    Args:
        values: Layer name -> array of any shape (flattened).
        xlabel: Label of the x axes.
        bins: Bins per histogram.
        title: Figure title.

    Returns:
        The figure, with one axes per layer.

    Raises:
        ValueError: If ``values`` is empty.
    """
    if not values:
        raise ValueError("show_layer_histograms needs at least one layer")
    n = len(values)
    fig, axes = plt.subplots(
        1, n, figsize=(2.4 * n + 0.6, 2.8 + _TITLE_SPACE), squeeze=False
    )
    for ax, (name, array) in zip(axes[0], values.items(), strict=True):
        flat = np.asarray(array, dtype=np.float64).ravel()
        zeros = float(np.mean(flat == 0)) if flat.size else 0.0
        ax.hist(flat, bins=bins, color="#4c72b0")
        std = float(flat.std()) if flat.size else 0.0
        ax.set_title(f"{name}\nstd {std:.2g}, zeros {zeros:.0%}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
