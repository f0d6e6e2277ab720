"""Stage 5 reference: the convolution against its definition (a direct loop), every
new operation against central differences (stage 4's gradcheck, float64), pooling
ties, and the CNN's shapes and dtype."""

from __future__ import annotations

import numpy as np
import pytest

from utils import data
from utils.reference import stage4 as nn
from utils.reference import stage5
from utils.reference.stage1 import GRAD_CHECK_BOUND

# (N, C, H, W), (F, kh, kw), stride, padding: uneven sizes, N = 1, stride > 1,
# non-square kernels, padding wider than the stride
SHAPES = [
    ((2, 3, 5, 6), (4, 3, 3), 1, 0),
    ((1, 1, 4, 4), (1, 2, 2), 2, 0),
    ((3, 2, 7, 5), (3, 3, 2), 2, 1),
    ((2, 1, 6, 6), (2, 3, 3), 1, 1),
    ((1, 2, 5, 5), (5, 1, 3), 3, 2),
]


def _arrays(shape, fshape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    N, C, H, W = shape
    F, kh, kw = fshape
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((F, C, kh, kw)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b


@pytest.mark.parametrize(("shape", "fshape", "stride", "padding"), SHAPES)
def test_conv2d_matches_the_direct_loop(shape, fshape, stride, padding):
    x, w, b = _arrays(shape, fshape, np.float64)
    out = stage5.conv2d(
        nn.Tensor(x, dtype=np.float64),
        nn.Tensor(w, dtype=np.float64),
        nn.Tensor(b, dtype=np.float64),
        stride=stride,
        padding=padding,
    )
    expected = stage5.conv2d_loops(x, w, b, stride, padding)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("shape", "fshape", "stride", "padding"), SHAPES)
def test_conv2d_gradcheck(shape, fshape, stride, padding):
    x, w, b = _arrays(shape, fshape, np.float64, seed=1)
    X = nn.Tensor(x, requires_grad=True, dtype=np.float64)
    W = nn.Tensor(w, requires_grad=True, dtype=np.float64)
    B = nn.Tensor(b, requires_grad=True, dtype=np.float64)
    err = nn.gradcheck(
        lambda X, W, B: stage5.conv2d(X, W, B, stride=stride, padding=padding), X, W, B
    )
    assert err < GRAD_CHECK_BOUND


@pytest.mark.parametrize(("shape", "fshape", "stride", "padding"), SHAPES)
def test_col2im_is_the_adjoint_of_im2col(shape, fshape, stride, padding):
    # <im2col(x), c> = <x, col2im(c)>: col2im adds overlapping patches
    _, kh, kw = fshape
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    cols = stage5.im2col(x, kh, kw, stride, padding)
    c = rng.standard_normal(cols.shape)
    back = stage5.col2im(c, shape, kh, kw, stride, padding)
    assert back.shape == shape
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-10)


def test_conv2d_float32_kept_and_no_input_grad_for_data():
    x, w, b = _arrays((2, 3, 6, 6), (4, 3, 3), np.float32)
    W = nn.Tensor(w, requires_grad=True)
    out = stage5.conv2d(x, W, nn.Tensor(b, requires_grad=True), padding=1)
    assert out.dtype == np.float32
    out.sum().backward()
    assert W.grad.dtype == np.float32 and W.grad.shape == w.shape


@pytest.mark.parametrize("shape", [(2, 3, 4, 6), (1, 1, 5, 7), (3, 2, 2, 2)])
def test_maxpool_forward_and_gradcheck(shape):
    rng = np.random.default_rng(3)
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape)
    x = x / x.size  # distinct values: no ties, so the gradient is defined
    out = stage5.max_pool2d(nn.Tensor(x, dtype=np.float64))
    N, C, H, W = shape
    expected = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2)
    np.testing.assert_array_equal(out.data, expected.max(axis=(3, 5)))
    X = nn.Tensor(x, requires_grad=True, dtype=np.float64)
    assert nn.gradcheck(stage5.max_pool2d, X) < GRAD_CHECK_BOUND


def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order():
    x = np.array(
        [
            [
                [[1.0, 2.0], [2.0, 0.0]],
            ]
        ],
        dtype=np.float32,
    )  # (1, 1, 2, 2)
    x = np.concatenate([x, np.zeros_like(x)], axis=3)  # second window all zeros
    X = nn.Tensor(x, requires_grad=True)
    stage5.max_pool2d(X).sum().backward()
    np.testing.assert_array_equal(X.grad[0, 0], [[0, 1, 1, 0], [0, 0, 0, 0]])


def test_flatten_is_c_order_and_gradcheck():
    x = np.random.default_rng(4).standard_normal((2, 3, 2, 2))
    X = nn.Tensor(x, requires_grad=True, dtype=np.float64)
    out = stage5.Flatten()(X)
    np.testing.assert_array_equal(out.data, x.reshape(2, 12))
    assert nn.gradcheck(lambda X: stage5.Flatten()(X), X) < GRAD_CHECK_BOUND


def test_cnn_gradcheck_every_parameter_float64():
    nn.manual_seed(0)
    model = stage5.cnn((8, 8), channels=(3, 4), hidden=5)
    params = list(model.parameters())
    for p in params:
        p.astype(np.float64)
    X = np.random.default_rng(5).random((3, 64))
    y = np.array([0, 3, 9])
    err = nn.gradcheck(lambda *_: nn.cross_entropy(model(X), y), *params)
    assert err < GRAD_CHECK_BOUND


def test_cnn_shapes_dtype_and_no_backward_method():
    nn.manual_seed(0)
    model = stage5.cnn((28, 28))
    X = np.random.default_rng(6).random((5, 784), dtype=np.float32)
    logits = model(X)
    assert logits.shape == (5, 10) and logits.dtype == np.float32
    nn.cross_entropy(logits, np.arange(5)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name
    assert not hasattr(model, "backward")
    assert model[1].W.shape == (16, 1, 3, 3)


def test_bad_input_gets_a_clear_message():
    conv = stage5.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="in_channels=3"):
        conv(np.zeros((2, 1, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        conv(np.zeros((2, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="stride"):
        stage5.Conv2d(1, 1, 3, stride=0)


def test_bench_cnn_row_trains():
    from utils.benchmarks import throughput

    batches, _ = throughput.make_batches(2, 16)
    step = throughput.stage5_step(throughput.init_weights(throughput.SIZES), lr=0.1)
    X, y = batches[0]
    losses = [step(X, y) for _ in range(5)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    rows = {i.key: i for i in throughput.implementations()}
    assert rows["g"].make is not None and rows["g"].baseline == "g"


def test_random_shift_moves_each_image_by_at_most_max_shift():
    rng = np.random.default_rng(0)
    X = rng.random((50, 6 * 7), dtype=np.float32) + 1  # no zero pixels
    out = data.random_shift(X, (6, 7), 1, np.random.default_rng(1))
    assert out.shape == X.shape and out.dtype == X.dtype
    imgs, moved = X.reshape(-1, 6, 7), out.reshape(-1, 6, 7)
    seen = set()
    for img, m in zip(imgs, moved, strict=True):
        found = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if np.array_equal(
                m[max(dy, 0) : 6 + min(dy, 0), max(dx, 0) : 7 + min(dx, 0)],
                img[max(-dy, 0) : 6 + min(-dy, 0), max(-dx, 0) : 7 + min(-dx, 0)],
            )
            and np.count_nonzero(m == 0) == (6 * abs(dx) + 7 * abs(dy) - abs(dx * dy))
        ]
        assert len(found) == 1
        seen.add(found[0])
    assert len(seen) == 9  # every move is drawn
    assert data.random_shift(X, (6, 7), 0, rng) is X


class _LrLog(nn.Adam):
    """Adam that records the learning rate of every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs: list[float] = []

    def step(self):
        self.lrs.append(self.lr)
        super().step()


class _InputLog(nn.Module):
    """Passes its input on and keeps a copy: the batches the model was given."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(np.array(x))
        return x


def _tiny_run(max_shift=1):
    """Two epochs of a 4x4-image linear model on 10 examples, 5 steps each."""
    rng = np.random.default_rng(0)
    X = rng.random((10, 16), dtype=np.float32)
    y = rng.integers(0, 3, size=10)
    nn.manual_seed(0)
    model = nn.Sequential(_InputLog(), nn.Linear(16, 3))
    optimizer = _LrLog(model.parameters(), lr=0.1)
    num_epochs, batch_size = 2, 2
    num_steps = num_epochs * -(-len(y) // batch_size)
    epoch_fn = stage5.shifted_cosine_epoch(0.1, num_steps, (4, 4), max_shift)
    history = nn.fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        X,
        y,
        num_epochs=num_epochs,
        batch_size=batch_size,
        epoch_fn=epoch_fn,
        progress=False,
    )
    return X, model, optimizer, history, epoch_fn


def test_shifted_cosine_epoch_schedule_and_what_fit_expects():
    _, model, optimizer, history, epoch_fn = _tiny_run()
    lrs = np.array(optimizer.lrs)
    assert len(lrs) == 10  # one per step, counted across the two epochs
    np.testing.assert_allclose(lrs, 0.1 * (1 + np.cos(np.pi * np.arange(10) / 10)) / 2)
    assert lrs[0] == pytest.approx(0.1)  # lr at the first step
    assert lrs[5] == pytest.approx(0.05)  # lr / 2 at the middle
    assert 0 < lrs[-1] < 0.003  # near 0 at the last
    assert np.all(np.diff(lrs) < 0)
    for key in ("train_loss", "train_acc"):
        assert len(history[key]) == 2 and all(np.isfinite(history[key]))
    assert all(0 <= acc <= 1 for acc in history["train_acc"])
    # called directly, as fit calls it: (loss, accuracy); past T steps it says so
    X, y = np.zeros((2, 16), dtype=np.float32), np.array([0, 1])
    with pytest.raises(RuntimeError, match="num_steps=10"):
        epoch_fn(
            model, nn.CrossEntropyLoss(), optimizer, X, y, 2, np.random.default_rng(0)
        )
    epoch_fn = stage5.shifted_cosine_epoch(0.1, 1, (4, 4), 1)
    loss, acc = epoch_fn(
        model, nn.CrossEntropyLoss(), optimizer, X, y, 2, np.random.default_rng(0)
    )
    assert isinstance(loss, float) and isinstance(acc, float) and 0 <= acc <= 1
    with pytest.raises(ValueError, match="num_steps"):
        stage5.shifted_cosine_epoch(0.1, 0, (4, 4), 1)


@pytest.mark.parametrize("max_shift", [0, 1])
def test_shifted_cosine_epoch_draws_the_shifts_from_fits_generator(max_shift):
    """The notebooks' numbers depend on the order of the draws: each epoch, fit's
    generator gives the permutation of the examples, then one shift per batch, in
    the order of the batches (none with max_shift 0)."""
    X, model, *_ = _tiny_run(max_shift)
    rng = np.random.default_rng(0)  # fit's seed=0
    expected = []
    for _ in range(2):
        order = rng.permutation(len(X))
        for start in range(0, len(X), 2):
            Xb = X[order[start : start + 2]]
            expected.append(data.random_shift(Xb, (4, 4), max_shift, rng))
    seen = model[0].inputs
    assert len(seen) == len(expected) == 10
    for got, want in zip(seen, expected, strict=True):
        np.testing.assert_array_equal(got, want)
