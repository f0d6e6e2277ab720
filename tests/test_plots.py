"""Tests of utils.plots: every helper returns a Figure with the expected axes."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import same_color  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils.plots import (  # noqa: E402
    plot_curves,
    plot_history,
    show_images,
    show_misclassified,
    show_predictions,
    show_weights,
)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def image_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.images]


def test_plot_history_losses_and_accuracies() -> None:
    history = {
        "train_loss": [1.0, 0.5, 0.3],
        "test_loss": [1.1, 0.6, 0.4],
        "train_acc": [0.5, 0.8, 0.9],
        "test_acc": [0.4, 0.7, 0.85],
    }
    fig = plot_history(history, title="run")
    assert isinstance(fig, Figure)
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 2
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "accuracy"
    assert {t.get_text() for t in acc_ax.get_legend().get_texts()} == {
        "train_acc",
        "test_acc",
    }
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [1, 2, 3])
    assert fig.get_suptitle() == "run"


@pytest.mark.parametrize(
    "history, n_axes",
    [
        ({"loss": [3, 2, 1]}, 1),
        ({"acc": [0.1, 0.5]}, 1),
        ({"loss": [1], "acc": [0]}, 2),
    ],
)
def test_plot_history_subsets(history: dict, n_axes: int) -> None:
    assert len(plot_history(history).axes) == n_axes


def test_plot_history_empty() -> None:
    with pytest.raises(ValueError):
        plot_history({})


def test_plot_curves() -> None:
    fig = plot_curves(
        {"sgd": [3.0, 2.0, 1.0], "adam": np.array([3.0, 1.0, 0.5, 0.2])},
        xlabel="epoch",
        title="optimizers",
        logy=True,
    )
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"
    assert ax.get_title() == "optimizers"


def test_show_images_flat_and_3d() -> None:
    flat = np.random.default_rng(0).random((10, 64), dtype=np.float32)
    fig = show_images(flat, image_shape=(8, 8), ncols=4, suptitle="digits")
    assert len(fig.axes) == 10 and len(image_axes(fig)) == 10
    assert all(not ax.get_xticks().size for ax in fig.axes)
    fig = show_images(flat.reshape(10, 8, 8), titles=[str(i) for i in range(10)])
    assert len(fig.axes) == 10 and fig.axes[3].get_title() == "3"
    assert len(show_images(flat[:3]).axes) == 3  # square d: shape inferred


def test_show_images_errors() -> None:
    with pytest.raises(ValueError, match="image_shape"):
        show_images(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="titles"):
        show_images(np.zeros((2, 4, 4)), titles=["a"])
    with pytest.raises(ValueError):
        show_images(np.zeros((0, 16)))


def test_show_weights_symmetric_diverging() -> None:
    W = np.random.default_rng(0).normal(size=(25, 40)).astype(np.float32)
    fig = show_weights(W, (5, 5), max_units=12, title="layer 1")
    assert len(fig.axes) == 12
    image = fig.axes[0].images[0]
    vmin, vmax = image.get_clim()
    assert vmin == pytest.approx(-vmax) and vmax > 0
    assert len(show_weights(W[:, :3], (5, 5)).axes) == 3
    assert len(show_weights(np.zeros((25, 2)), (5, 5)).axes) == 2
    with pytest.raises(ValueError, match="W.T"):
        show_weights(W.T, (5, 5))


def test_show_predictions_titles_and_colors() -> None:
    X = np.random.default_rng(0).random((20, 64), dtype=np.float32)
    y_true = np.arange(20) % 10
    y_pred = y_true.copy()
    y_pred[1] = 7
    fig = show_predictions(X, y_true, y_pred, (8, 8), max_images=6, title="preds")
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title() == "pred 0 / true 0"
    assert fig.axes[1].get_title() == "pred 7 / true 1"
    assert same_color(fig.axes[1].title.get_color(), "red")
    assert not same_color(fig.axes[0].title.get_color(), "red")


def test_show_predictions_accepts_scores() -> None:
    X = np.zeros((3, 4, 4))
    scores = np.eye(3)[[2, 0, 1]]
    fig = show_predictions(X, np.array([2, 0, 0]), scores, (4, 4))
    assert [ax.get_title() for ax in fig.axes][2] == "pred 1 / true 0"


def test_show_misclassified() -> None:
    X = np.random.default_rng(0).random((30, 784), dtype=np.float32)
    y_true = np.zeros(30, dtype=np.int64)
    y_pred = y_true.copy()
    y_pred[[3, 8, 20]] = [1, 2, 3]
    fig = show_misclassified(X, y_true, y_pred, (28, 28))
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == [
        "pred 1 / true 0",
        "pred 2 / true 0",
        "pred 3 / true 0",
    ]
    assert len(show_misclassified(X, y_true, y_pred, (28, 28), max_images=2).axes) == 2


def test_show_misclassified_no_mistakes() -> None:
    y = np.arange(5)
    fig = show_misclassified(np.zeros((5, 16)), y, y, (4, 4))
    (ax,) = fig.axes
    assert "no mistakes" in ax.texts[0].get_text()


def test_show_predictions_length_mismatch() -> None:
    with pytest.raises(ValueError, match="same length"):
        show_predictions(np.zeros((5, 16)), np.zeros(5), np.zeros(4), (4, 4))


def test_draw_graph_boxes_every_tensor_in_topological_columns() -> None:
    from utils.plots import draw_graph
    from utils.reference import stage4

    X = np.ones((4, 3), dtype=np.float32)
    W = stage4.Parameter(np.ones((3, 2)))
    b = stage4.Parameter(np.zeros(2))
    loss = stage4.cross_entropy((X @ W + b).relu(), np.array([0, 1, 0, 1]))
    fig = draw_graph(loss, names={"W": W, "b": b, "X": X}, title="small")
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text()]  # annotations (arrows) are ""
    texts = [t.get_text() for t in labels]
    # X, W, b; MatMul, Add, Relu, CrossEntropy: one box (patch) and label each
    assert len(ax.patches) == len(texts) == 7
    assert {"X\n(4, 3)", "W\n(3, 2)", "b\n(2,)", "MatMul\n(4, 2)"} <= set(texts)
    assert "CrossEntropy\n()" in texts
    x_of = {t.get_text().split("\n")[0]: t.get_position()[0] for t in labels}
    assert x_of["MatMul"] < x_of["Add"] < x_of["Relu"] < x_of["CrossEntropy"]
    assert x_of["W"] < x_of["MatMul"] and x_of["b"] < x_of["Add"]
    assert ax.get_title() == "small"
    arrows = [t for t in ax.texts if not t.get_text()]
    assert len(arrows) == 6  # X, W -> MatMul; MatMul, b -> Add; -> Relu; -> CE


def test_draw_graph_into_given_axes_and_refuses_bad_input() -> None:
    from utils.plots import draw_graph
    from utils.reference import stage4

    x = stage4.Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(3):
        y = y + y  # each Add uses y twice: two arrows
    fig, ax = plt.subplots()
    assert draw_graph(y, ax=ax) is fig
    assert len([t for t in ax.texts if t.get_text()]) == 4
    assert len([t for t in ax.texts if not t.get_text()]) == 6
    with pytest.raises(TypeError, match="Tensor"):
        draw_graph(np.ones(3))
    with pytest.raises(ValueError, match="max_nodes"):
        draw_graph(y, max_nodes=2)


def test_draw_layer_caches_names_every_layer_signal_and_cache() -> None:
    from utils.plots import draw_layer_caches

    layers = [
        ("Linear", ["x (N, 25)"], "dW = xᵀ dout"),
        ("ReLU", ["out (N, 16)"], "dx = dout ⊙ [out > 0]"),
        ("SoftmaxCrossEntropy", ["probs (N, 2)", "y (N,)"], "(probs − Y) / N"),
    ]
    fig = draw_layer_caches(layers, signals=["X", "z", "h", "loss"], title="t")
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in ["Linear", "ReLU", "x (N, 25)", "y (N,)", "dW = xᵀ dout", "dz", "dX"]:
        assert word in texts
    assert len(fig.axes) == 1
    default = draw_layer_caches([("Linear", [], "dx = dout Wᵀ")])
    assert "(nothing)" in " ".join(t.get_text() for t in default.axes[0].texts)
    with pytest.raises(ValueError, match="at least one layer"):
        draw_layer_caches([])
    with pytest.raises(ValueError, match="signals"):
        draw_layer_caches(layers, signals=["X", "loss"])


def test_show_layer_histograms_one_panel_per_layer_with_zero_share() -> None:
    from utils.plots import show_layer_histograms

    values = {"relu 1": np.array([0.0, 0.0, 1.0, 2.0]), "relu 2": np.zeros((3, 2))}
    fig = show_layer_histograms(values, xlabel="activation", title="t")
    assert len(fig.axes) == 2
    assert "zeros 50%" in fig.axes[0].get_title()
    assert "zeros 100%" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="at least one layer"):
        show_layer_histograms({})
