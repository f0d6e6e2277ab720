"""The stage-1 reference: correct against first principles, not only against itself."""

from __future__ import annotations

import numpy as np
import pytest

from utils import data
from utils.reference import stage1 as nn


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 5))
    y = rng.integers(0, 3, 7)
    params = nn.init_params(5, 4, 3, seed=1, dtype=np.float64)
    params["b1"] += 0.1
    return X, y, params


def test_init_shapes_dtype_and_scale():
    params = nn.init_params(784, 128, 10, seed=0)
    assert {k: v.shape for k, v in params.items()} == {
        "W1": (784, 128),
        "b1": (128,),
        "W2": (128, 10),
        "b2": (10,),
    }
    assert all(v.dtype == np.float32 for v in params.values())
    assert abs(params["W1"].std() - np.sqrt(2 / 784)) < 0.005


def test_softmax_is_stable_and_normalised():
    logits = np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        probs = nn.softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[1], 1 / 3, rtol=1e-6)
    assert probs[0, 0] > probs[0, 1] > probs[0, 2] >= 0


def test_cross_entropy_known_values():
    probs = np.array([[0.5, 0.5], [0.0, 1.0]])
    assert nn.cross_entropy(probs, np.array([0, 1])) == pytest.approx(np.log(2) / 2)
    assert np.isfinite(nn.cross_entropy(probs, np.array([0, 0])))  # p = 0 is floored


def test_backward_matches_numerical_gradient(small):
    X, y, params = small
    _, cache = nn.forward(X, params)
    grads = nn.backward(y, params, cache)
    for name in params:
        numeric = nn.numerical_gradient(lambda: nn.loss_fn(X, y, params), params[name])
        assert nn.relative_error(grads[name], numeric) < 1e-7, name


def test_forward_caches_what_backward_needs_and_leaves_inputs_alone(small):
    X, y, params = small
    before = {k: v.copy() for k, v in params.items()}
    X_before = X.copy()
    probs, cache = nn.forward(X, params)
    assert set(cache) == {"X", "z1", "h1", "probs"}
    assert cache["probs"] is probs
    np.testing.assert_array_equal(X, X_before)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_training_learns_the_edge_patches():
    X, y = data.make_edge_patches(1000, seed=0)
    X_test, y_test = data.make_edge_patches(500, seed=1)
    params = nn.init_params(25, 8, 2, seed=0)
    losses = [nn.train_step(X, y, params, 0.5) for _ in range(300)]
    assert losses[-1] < losses[0] / 5
    assert nn.accuracy(X_test, y_test, params) >= 0.95
    assert all(v.dtype == np.float32 for v in params.values())


def test_relative_error_is_the_norm_based_metric():
    a = np.array([1.0, 2.0, 2.0])  # norm 3
    assert nn.relative_error(a, a) == 0.0
    assert nn.relative_error(a, np.zeros(3)) == 1.0
    assert nn.relative_error(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0
    assert nn.relative_error(a, -a) == 1.0
    # ||a - b|| / (||a|| + ||b||) on all entries at once, any shape
    b = a + np.array([0.0, 0.0, 1e-3])
    expected = 1e-3 / (3.0 + np.linalg.norm(b))
    assert nn.relative_error(a, b) == pytest.approx(expected, rel=1e-12)
    assert nn.relative_error(a.reshape(3, 1), b) == pytest.approx(expected, rel=1e-12)
    # scale-free, and not thrown off by one tiny entry that is mostly noise
    assert nn.relative_error(1e6 * a, 1e6 * b) == pytest.approx(expected, rel=1e-9)
    tiny = np.array([1.0, 1e-12]), np.array([1.0, -1e-12])
    assert nn.relative_error(*tiny) < 1e-11


def test_gradient_check_bound_separates_right_from_wrong(small):
    X, y, params = small
    _, cache = nn.forward(X, params)
    grads = nn.backward(y, params, cache)
    numeric = nn.numerical_gradient(lambda: nn.loss_fn(X, y, params), params["W2"])
    assert nn.relative_error(grads["W2"], numeric) < nn.GRAD_CHECK_BOUND / 10
    # forgetting the 1/N of the mean: far above the bound
    wrong = grads["W2"] * len(y)
    assert nn.relative_error(wrong, numeric) > 1e4 * nn.GRAD_CHECK_BOUND


def test_every_stage_uses_stage_1s_metric():
    from utils.reference import stage2, stage3, stage4

    assert stage2.relative_error is nn.relative_error
    assert stage3.relative_error is nn.relative_error
    assert stage4.relative_error is nn.relative_error
