"""Tests of the stage-2 reference: layers, losses, initialisers, the network.

Every backward is compared with central differences in float64, the activations
and the softmax are checked for overflow at ±1000, and the layered network is
checked to give *exactly* the loss, gradients and updates of stage 1's hand-written
two-layer network when both hold the same weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from utils import data
from utils.reference import stage1, stage2
from utils.reference.stage2 import (
    MSE,
    CrossEntropy,
    Linear,
    Network,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
    glorot_uniform,
    gradient_check,
    he_normal,
    numerical_gradient,
    relative_error,
    zeros,
)

TOL = 1e-7  # relative error of float64 back-propagation against central differences


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _layer_gradient_errors(layer, x: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Relative errors of dx and of every parameter's gradient, for a scalar L.

    L = sum(forward(x) * R) with a fixed random R, so dL/d(out) = R.
    """
    R = _rng(seed + 100).standard_normal(layer.forward(x).shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * R))

    loss()
    dx = layer.backward(R)
    analytic = {name: g.copy() for name, g in layer.grads.items()}
    errors = {"x": relative_error(dx, numerical_gradient(loss, x))}
    for name, p in layer.params.items():
        errors[name] = relative_error(analytic[name], numerical_gradient(loss, p))
    return errors


# --------------------------------------------------------------------------- Linear
def test_linear_shapes_dtypes_and_cache():
    layer = Linear(4, 3, seed=1)
    x = _rng().standard_normal((5, 4)).astype(np.float32)
    out = layer.forward(x)
    assert out.shape == (5, 3) and out.dtype == np.float32
    assert layer.x is x, "Linear must cache its input"
    dout = _rng(1).standard_normal((5, 3)).astype(np.float32)
    dx = layer.backward(dout)
    assert dx.shape == (5, 4) and layer.dW.shape == (4, 3) and layer.db.shape == (3,)
    assert dx.dtype == layer.dW.dtype == layer.db.dtype == np.float32
    np.testing.assert_allclose(layer.dW, x.T @ dout, rtol=1e-6)
    np.testing.assert_allclose(layer.db, dout.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(dx, dout @ layer.W.T, rtol=1e-6)


def test_linear_attributes_are_the_dict_entries():
    layer = Linear(3, 2)
    assert layer.W is layer.params["W"] and layer.b is layer.params["b"]
    layer.forward(np.ones((2, 3), np.float32))
    layer.backward(np.ones((2, 2), np.float32))
    assert layer.dW is layer.grads["W"] and layer.db is layer.grads["b"]
    new = np.zeros((3, 2), np.float32)
    layer.W = new
    assert layer.params["W"] is new


@pytest.mark.parametrize("init", ["he", "glorot", "zeros", glorot_uniform])
def test_linear_init_by_name_or_function(init):
    layer = Linear(6, 4, init=init, seed=3)
    assert layer.W.shape == (6, 4) and layer.W.dtype == np.float32
    assert np.all(layer.b == 0)


def test_linear_unknown_init_raises():
    with pytest.raises(ValueError, match="unknown init"):
        Linear(2, 2, init="orthogonal")


def test_linear_gradients_numerically():
    layer = Linear(5, 3, seed=2, dtype=np.float64)
    layer.b = _rng(3).standard_normal(3)
    x = _rng(4).standard_normal((4, 5))
    for name, err in _layer_gradient_errors(layer, x).items():
        assert err < TOL, f"d{name}: relative error {err:.2e}"


# ------------------------------------------------------------------------ activations
@pytest.mark.parametrize("cls", [ReLU, Sigmoid, Tanh, Softmax])
def test_activation_gradients_numerically(cls):
    x = _rng(5).standard_normal((4, 6)) * 2  # no exact zeros: ReLU's kink
    err = _layer_gradient_errors(cls(), x)["x"]
    assert err < TOL, f"{cls.__name__}: relative error {err:.2e}"


@pytest.mark.parametrize("cls", [ReLU, Sigmoid, Tanh, Softmax])
def test_activations_have_no_parameters(cls):
    layer = cls()
    assert layer.params == {} and layer.grads == {}


@pytest.mark.parametrize("cls", [ReLU, Sigmoid, Tanh, Softmax])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_stable_at_1000(cls, dtype):
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 999.0, 3.0]], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        out = cls().forward(x)
        layer = cls()
        layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    assert out.dtype == dtype and np.all(np.isfinite(out)) and np.all(np.isfinite(dx))


def test_activation_values():
    x = np.array([[-1000.0, -1.0, 0.0, 2.0, 1000.0]], np.float32)
    np.testing.assert_allclose(ReLU().forward(x), [[0, 0, 0, 2, 1000]])
    expected = [[0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-2)), 1.0]]
    np.testing.assert_allclose(Sigmoid().forward(x), expected, rtol=1e-6)
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x.astype(np.float64)), 1e-6)
    relu = ReLU()
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0, 0, 0, 1, 1]])


def test_activations_do_not_modify_input():
    x = _rng(6).standard_normal((3, 4)).astype(np.float32)
    before = x.copy()
    for cls in (ReLU, Sigmoid, Tanh, Softmax):
        layer = cls()
        layer.forward(x)
        layer.backward(np.ones_like(x))
        np.testing.assert_array_equal(x, before)


def test_softmax_rows_sum_to_one():
    x = _rng(7).standard_normal((5, 4)).astype(np.float32) * 10
    s = Softmax().forward(x)
    np.testing.assert_allclose(s.sum(axis=1), 1, rtol=1e-6)


def test_softmax_jvp_equals_explicit_jacobian():
    x = _rng(8).standard_normal((3, 4))
    dout = _rng(9).standard_normal((3, 4))
    layer = Softmax()
    s = layer.forward(x)
    J = np.einsum("nj,jk->njk", s, np.eye(4)) - np.einsum("nj,nk->njk", s, s)
    np.testing.assert_allclose(layer.backward(dout), np.einsum("nj,njk->nk", dout, J))


# --------------------------------------------------------------------------- losses
def test_softmax_cross_entropy_gradient_numerically():
    logits = _rng(10).standard_normal((5, 3))
    y = _rng(11).integers(0, 3, 5)
    loss_layer = SoftmaxCrossEntropy()
    loss_layer.forward(logits, y)
    analytic = loss_layer.backward()
    numeric = numerical_gradient(lambda: loss_layer.forward(logits, y), logits)
    assert relative_error(analytic, numeric) < TOL


def test_softmax_cross_entropy_accepts_one_hot():
    logits = _rng(12).standard_normal((6, 4)).astype(np.float32)
    y = _rng(13).integers(0, 4, 6)
    a, b = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    loss_int = a.forward(logits, y)
    loss_hot = b.forward(logits, data.one_hot(y, 4))
    assert loss_int == pytest.approx(loss_hot, rel=1e-6)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-6)


def test_softmax_cross_entropy_value_and_stability():
    logits = np.zeros((4, 5), np.float32)
    assert SoftmaxCrossEntropy().forward(logits, np.arange(4)) == pytest.approx(
        np.log(5), rel=1e-6
    )
    huge = np.array([[1000.0, -1000.0, 0.0], [0.0, 200.0, 0.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        loss_layer = SoftmaxCrossEntropy()
        loss = loss_layer.forward(huge, np.array([0, 1]))
        grad = loss_layer.backward()
    assert loss == pytest.approx(0.0, abs=1e-6) and np.all(np.isfinite(grad))


def _exact_cross_entropy(logits, y):
    """PyTorch's cross_entropy, written independently: mean of logsumexp(z) - z_y,
    or -mean sum_j Y_j log_softmax(z)_j for rows of probabilities, in float64."""
    z = np.asarray(logits, np.float64)
    log_softmax = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    if y.ndim == 1:
        return float(-np.mean(log_softmax[np.arange(len(y)), y]))
    return float(-np.mean(np.sum(y * log_softmax, axis=1)))


def test_softmax_cross_entropy_exact_at_large_logits():
    """Confidently wrong examples: the true loss is in the hundreds, not capped near
    -log(EPS) = 27.6 as log(max(p, EPS)) would be."""
    logits = np.array(
        [[0.0, 200.0, 0.0], [500.0, 0.0, -500.0], [-300.0, 300.0, 299.0]], np.float32
    )
    y = np.array([0, 2, 0])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        loss_layer = SoftmaxCrossEntropy()
        loss = loss_layer.forward(logits, y)
        grad = loss_layer.backward()
    by_hand = (200.0 + 1000.0 + (600.0 + np.log1p(np.exp(-1.0)))) / 3
    assert loss == pytest.approx(by_hand, rel=1e-6)
    assert loss == pytest.approx(_exact_cross_entropy(logits, y), rel=1e-6)
    assert loss > 100 > -np.log(stage2.EPS)
    assert np.all(np.isfinite(grad))
    # one-hot and soft targets: the same exact value
    Y = data.one_hot(y, 3)
    assert SoftmaxCrossEntropy().forward(logits, Y) == pytest.approx(loss, rel=1e-6)
    soft = np.array([[0.5, 0.5, 0], [0.2, 0.3, 0.5], [0, 0.9, 0.1]], np.float32)
    assert SoftmaxCrossEntropy().forward(logits, soft) == pytest.approx(
        _exact_cross_entropy(logits, soft), rel=1e-6
    )


def test_softmax_cross_entropy_matches_pytorch_if_installed():
    torch = pytest.importorskip("torch")
    logits = _rng(20).standard_normal((6, 4)) * 300
    y = _rng(21).integers(0, 4, 6)
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(logits), torch.tensor(y)
    ).item()
    assert SoftmaxCrossEntropy().forward(logits, y) == pytest.approx(expected, 1e-9)


def test_softmax_cross_entropy_gradient_is_stage_1s_bit_for_bit():
    logits = _rng(22).standard_normal((7, 5)).astype(np.float32) * 50
    y = _rng(23).integers(0, 5, 7)
    loss_layer = SoftmaxCrossEntropy()
    loss_layer.forward(logits, y)
    probs = stage1.softmax(logits)
    np.testing.assert_array_equal(loss_layer.probs, probs)
    np.testing.assert_array_equal(
        loss_layer.backward(), stage1.softmax_cross_entropy_grad(probs, y)
    )


def test_fused_equals_softmax_then_cross_entropy():
    logits = _rng(14).standard_normal((8, 5))
    y = _rng(15).integers(0, 5, 8)
    fused = SoftmaxCrossEntropy()
    loss_fused = fused.forward(logits, y)
    softmax, ce = Softmax(), CrossEntropy()
    loss_unfused = ce.forward(softmax.forward(logits), y)
    assert loss_fused == pytest.approx(loss_unfused, rel=1e-12)
    np.testing.assert_allclose(fused.backward(), softmax.backward(ce.backward()), 1e-10)


def test_cross_entropy_gradient_numerically():
    probs = Softmax().forward(_rng(16).standard_normal((4, 3)))
    y = _rng(17).integers(0, 3, 4)
    ce = CrossEntropy()
    ce.forward(probs, y)
    numeric = numerical_gradient(lambda: ce.forward(probs, y), probs)
    assert relative_error(ce.backward(), numeric) < TOL


def test_mse_is_mean_over_all_entries_and_its_gradient():
    pred = _rng(18).standard_normal((4, 3))
    target = _rng(19).standard_normal((4, 3))
    mse = MSE()
    assert mse.forward(pred, target) == pytest.approx(np.mean((pred - target) ** 2))
    analytic = mse.backward()
    numeric = numerical_gradient(lambda: mse.forward(pred, target), pred)
    assert relative_error(analytic, numeric) < TOL


# --------------------------------------------------------------------------- init
def test_zeros():
    W = zeros(3, 5)
    assert W.shape == (3, 5) and W.dtype == np.float32 and not W.any()


@pytest.mark.parametrize(
    ("init", "std"),
    [
        (glorot_uniform, lambda fi, fo: np.sqrt(2 / (fi + fo))),
        (he_normal, lambda fi, fo: np.sqrt(2 / fi)),
    ],
)
def test_random_initialisers_statistics(init, std):
    fan_in, fan_out = 400, 300
    W = init(fan_in, fan_out, _rng(20))
    assert W.shape == (fan_in, fan_out) and W.dtype == np.float32
    assert abs(W.mean()) < 0.01 * std(fan_in, fan_out)
    assert W.std() == pytest.approx(std(fan_in, fan_out), rel=0.02)
    np.testing.assert_array_equal(W, init(fan_in, fan_out, _rng(20)))


def test_glorot_within_limit():
    W = glorot_uniform(50, 70, _rng(21))
    assert np.abs(W).max() <= np.sqrt(6 / 120)


def test_he_normal_matches_stage1_init():
    params = stage1.init_params(7, 5, 3, seed=4)
    net = Network([7, 5, 3], seed=4)
    np.testing.assert_array_equal(net.params()["0.W"], params["W1"])
    np.testing.assert_array_equal(net.params()["2.W"], params["W2"])


# --------------------------------------------------------------------------- network
def test_network_structure_and_names():
    net = Network([784, 128, 64, 10])
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [Linear, ReLU, Linear, ReLU, Linear]
    assert [layer.W.shape for layer in net.layers[::2]] == [
        (784, 128),
        (128, 64),
        (64, 10),
    ]
    assert list(net.params()) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert all(p.dtype == np.float32 for p in net.params().values())
    assert net.params()["2.W"] is net.layers[2].W
    assert isinstance(net.loss_layer, SoftmaxCrossEntropy)
    assert repr(net).startswith("Network(Linear(784, 128) -> ReLU()")


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", Tanh])
def test_network_activation_choice(activation):
    net = Network([3, 4, 4, 2], activation)
    expected = Tanh if activation is Tanh else stage2.ACTIVATIONS[activation]
    assert [type(la) for la in net.layers[1::2]] == [expected, expected]


def test_network_single_layer_is_softmax_regression():
    net = Network([4, 3])
    assert len(net.layers) == 1 and isinstance(net.layers[0], Linear)


def test_network_needs_two_sizes():
    with pytest.raises(ValueError):
        Network([5])


def test_network_seed_is_reproducible():
    a, b, c = Network([5, 4, 3], seed=1), Network([5, 4, 3], seed=1), Network([5, 4, 3])
    np.testing.assert_array_equal(a.params()["0.W"], b.params()["0.W"])
    assert not np.array_equal(a.params()["0.W"], c.params()["0.W"])
    assert not np.allclose(a.params()["0.W"][:4, :4], a.params()["2.W"][:4, :3][:, :1])


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_whole_network_gradient_check(activation):
    net = Network([6, 5, 4, 3], activation, seed=3, dtype=np.float64)
    for layer in net.layers[::2]:
        layer.b = _rng(22).standard_normal(layer.b.shape) * 0.1
    X = _rng(23).standard_normal((7, 6))
    y = _rng(24).integers(0, 3, 7)
    errors = gradient_check(net, X, y)
    assert list(errors) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert max(errors.values()) < TOL, errors


def test_network_backward_returns_input_gradient():
    net = Network([4, 5, 3], seed=5, dtype=np.float64)
    X = _rng(25).standard_normal((3, 4))
    y = np.array([0, 2, 1])
    net.loss(X, y)
    dX = net.backward(net.loss_layer.backward())
    numeric = numerical_gradient(lambda: net.loss(X, y), X)
    assert relative_error(dX, numeric) < TOL


def test_update_and_train_step():
    net = Network([5, 4, 3], seed=6)
    X = _rng(26).standard_normal((8, 5)).astype(np.float32)
    y = _rng(27).integers(0, 3, 8)
    before = {k: v.copy() for k, v in net.params().items()}
    loss0 = net.loss(X, y)
    returned = net.train_step(X, y, lr=0.1)
    assert returned == loss0, "train_step returns the loss before the update"
    grads = net.grads()
    for k, p in net.params().items():
        np.testing.assert_allclose(p, before[k] - 0.1 * grads[k], rtol=1e-6, atol=1e-7)
        assert p.dtype == np.float32
    losses = [net.train_step(X, y, lr=0.1) for _ in range(50)]
    assert losses[-1] < 0.5 * loss0


# --------------------------------------------------------------------------- stage 1
@pytest.mark.parametrize(
    ("D", "H", "C", "N", "seed"), [(25, 16, 2, 32, 0), (7, 5, 3, 1, 1)]
)
def test_agrees_exactly_with_stage1(D, H, C, N, seed):
    """Same weights: bit-for-bit the same probabilities, gradients and updated
    weights; the same loss to rounding (stage 2 takes it by log-sum-exp from the
    logits, stage 1 as the log of a probability)."""
    rng = _rng(30 + seed)
    X = rng.standard_normal((N, D)).astype(np.float32)
    y = rng.integers(0, C, N)
    params = stage1.init_params(D, H, C, seed=seed)
    params["b1"] = (rng.standard_normal(H) * 0.1).astype(np.float32)
    params["b2"] = (rng.standard_normal(C) * 0.1).astype(np.float32)
    net = Network([D, H, C], seed=99)
    for ours, theirs in [("0.W", "W1"), ("0.b", "b1"), ("2.W", "W2"), ("2.b", "b2")]:
        net.params()[ours][...] = params[theirs]

    probs, cache = stage1.forward(X, params)
    loss1 = stage1.cross_entropy(probs, y)
    grads1 = stage1.backward(y, params, cache)
    loss2 = net.loss(X, y)
    net.backward(net.loss_layer.backward())
    grads2 = net.grads()
    assert loss2 == pytest.approx(loss1, rel=1e-6)
    np.testing.assert_array_equal(net.loss_layer.probs, probs)
    for ours, theirs in [("0.W", "W1"), ("0.b", "b1"), ("2.W", "W2"), ("2.b", "b2")]:
        np.testing.assert_array_equal(grads2[ours], grads1[theirs])

    for _ in range(3):
        loss1 = stage1.train_step(X, y, params, 0.5)
        assert net.train_step(X, y, 0.5) == pytest.approx(loss1, rel=1e-6)
    for ours, theirs in [("0.W", "W1"), ("0.b", "b1"), ("2.W", "W2"), ("2.b", "b2")]:
        np.testing.assert_array_equal(net.params()[ours], params[theirs])


# --------------------------------------------------------------------------- training
def test_train_epoch_visits_every_example_once():
    class Recorder:
        def __init__(self):
            self.seen = []

        def train_step(self, X, y, lr):
            self.seen.append(y.copy())
            return float(len(y))

    net = Recorder()
    y = np.arange(10)
    loss = stage2.train_epoch(net, np.zeros((10, 2)), y, 4, 0.1, _rng(31))
    assert [len(b) for b in net.seen] == [4, 4, 2]
    assert sorted(np.concatenate(net.seen)) == list(range(10))
    assert loss == pytest.approx(10 / 3)


def test_fit_learns_edge_patches():
    X, y = data.make_edge_patches(600, seed=0)
    X_test, y_test = data.make_edge_patches(300, seed=1)
    net = Network([25, 16, 2], seed=0)
    history = stage2.fit(
        net, X, y, num_epochs=30, batch_size=32, lr=0.2, X_test=X_test, y_test=y_test
    )
    assert set(history) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    assert all(len(v) == 30 for v in history.values())
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["test_acc"][-1] > 0.9


def test_zero_init_never_breaks_symmetry():
    X, y = data.make_edge_patches(200, seed=2)
    net = Network([25, 8, 2], init="zeros")
    for _ in range(20):
        net.train_step(X, y, 0.5)
    W1 = net.layers[0].W
    assert not W1.any(), "with zeros and ReLU the first layer never gets a gradient"


def test_fit_accepts_a_learning_rate_schedule():
    seen = []

    class Recorder(Network):
        def train_step(self, X, y, lr):
            seen.append(lr)
            return 0.0

    X, y = data.make_edge_patches(8, seed=3)
    stage2.fit(Recorder([25, 2]), X, y, num_epochs=3, batch_size=8, lr=lambda e: e)
    assert seen == [0, 1, 2]


# --------------------------------------------------------------------------- bench
def test_benchmark_variants_agree():
    """The three backward computations the chapter times give the same gradient."""
    from utils.benchmarks.stage2 import softmax_cross_entropy_backward_variants

    grads = [fn() for fn in softmax_cross_entropy_backward_variants(N=16, C=5).values()]
    for g in grads[1:]:
        np.testing.assert_allclose(g, grads[0], rtol=1e-5, atol=1e-7)


def test_fit_records_validation_and_test_separately():
    X, y = data.make_edge_patches(300, seed=0)
    X_tr, X_val, y_tr, y_val = data.train_val_split(X, y, 0.2, seed=0)
    net = Network([25, 8, 2], seed=0)
    history = stage2.fit(
        net, X_tr, y_tr, num_epochs=2, batch_size=32, lr=0.1, X_val=X_val, y_val=y_val
    )
    assert set(history) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert history["val_acc"][-1] == net.accuracy(X_val, y_val)
    assert history["val_loss"][-1] == net.loss(X_val, y_val)
    both = stage2.fit(
        Network([25, 8, 2], seed=0), X_tr, y_tr, num_epochs=1, batch_size=32,
        lr=0.1, X_val=X_val, y_val=y_val, X_test=X[:10], y_test=y[:10],
    )  # fmt: skip
    assert set(both) == {"train_loss", "train_acc", "val_loss", "val_acc",
                         "test_loss", "test_acc"}  # fmt: skip


def test_train_step_skips_the_input_gradient_by_default():
    """The default network trains on the fast path: train_step never computes
    dL/dX (nothing reads it), and backward on its own still returns it."""
    net = Network([4, 5, 3], seed=7)
    X = _rng(28).standard_normal((6, 4)).astype(np.float32)
    y = _rng(29).integers(0, 3, 6)
    first = net.layers[0]
    calls = []
    original = first.backward
    first.backward = lambda dout: calls.append(first.input_grad) or original(dout)
    net.train_step(X, y, lr=0.1)
    assert calls == [False] and first.input_grad is True
    net.loss(X, y)
    assert net.backward(net.loss_layer.backward()).shape == X.shape
