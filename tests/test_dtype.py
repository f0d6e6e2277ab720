"""float32 end to end: after a training step, every parameter, gradient and
activation of every stage is float32 (no silent promotion to float64).

A float64 scalar (``lr``, ``1 / N``) or a float64 constant array mixed into a float32
computation promotes the result to float64 and halves the speed of everything after
it, without any error: this file is where that would show.
"""

from __future__ import annotations

import numpy as np
import pytest

from utils.reference import stage1, stage2, stage3

F32 = np.dtype(np.float32)
N, D, H1, H2, C = 16, 12, 8, 6, 4


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((N, D), dtype=np.float32), rng.integers(0, C, N)


def _assert_f32(named: dict[str, object]) -> None:
    wrong = {
        name: getattr(a, "dtype", type(a).__name__)
        for name, a in named.items()
        if getattr(a, "dtype", None) != F32
    }
    assert not wrong, f"not float32: {wrong}"


# --------------------------------------------------------------------------- stage 1
def test_stage1_train_step_is_float32():
    X, y = _data()
    params = stage1.init_params(D, H1, C)
    probs, cache = stage1.forward(X, params)
    grads = stage1.backward(y, params, cache)
    stage1.sgd_update(params, grads, 0.1)
    _assert_f32({f"cache {k}": v for k, v in cache.items()})
    _assert_f32({f"grad {k}": v for k, v in grads.items()})
    _assert_f32({f"param {k}": v for k, v in params.items()})
    _assert_f32({"dlogits": stage1.softmax_cross_entropy_grad(probs, y)})
    stage1.train_step(X, y, params, lr=0.1)
    _assert_f32({f"param {k} after train_step": v for k, v in params.items()})


# --------------------------------------------------------------------------- stage 2
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_stage2_train_step_is_float32(activation, input_grad):
    X, y = _data(1)
    net = stage2.Network([D, H1, H2, C], activation, input_grad=input_grad)
    net.train_step(X, y, lr=0.1)
    _assert_f32({f"param {k}": v for k, v in net.params().items()})
    _assert_f32({f"grad {k}": v for k, v in net.grads().items()})
    acts = {}
    out = X
    for i, layer in enumerate(net.layers):
        out = layer.forward(out)
        acts[f"output of layer {i} ({layer!r})"] = out
    net.loss_layer.forward(out, y)
    acts["probs"] = net.loss_layer.probs
    _assert_f32(acts)
    dout = net.loss_layer.backward()
    douts = {"dlogits": dout}
    for i, layer in reversed(list(enumerate(net.layers))):
        dout = layer.backward(dout)
        if dout is not None:
            douts[f"gradient into layer {i}"] = dout
    _assert_f32(douts)
    assert (dout is None) == (not input_grad)


def test_stage2_mse_and_softmax_layers_are_float32():
    rng = np.random.default_rng(2)
    pred = rng.standard_normal((N, C)).astype(np.float32)
    target = rng.standard_normal((N, C)).astype(np.float32)
    mse = stage2.MSE()
    mse.forward(pred, target)
    softmax = stage2.Softmax()
    s = softmax.forward(pred)
    _assert_f32({"MSE grad": mse.backward(), "softmax": s})
    _assert_f32({"softmax grad": softmax.backward(target)})


# --------------------------------------------------------------------------- stage 3
def _stage3_model(input_grad: bool) -> stage3.Sequential:
    return stage3.Sequential(
        stage3.Linear(D, H1, seed=0, input_grad=input_grad),
        stage3.ReLU(),
        stage3.Dropout(0.25, seed=1),
        stage3.Linear(H2, seed=2),
        stage3.ReLU(),
        stage3.Linear(C, seed=3),
    )


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_stage3_train_step_is_float32(optimizer, input_grad):
    X, y = _data(3)
    model = _stage3_model(input_grad)
    model(X)  # builds the lazy layers
    params = model.parameters()
    opt = {
        "sgd": lambda: stage3.SGD(params, lr=0.1),
        "momentum": lambda: stage3.SGD(params, lr=0.1, momentum=0.9),
        "adam": lambda: stage3.Adam(params, lr=1e-3),
    }[optimizer]()
    loss_fn = stage3.CrossEntropyLoss()
    acts = {}
    for _ in range(2):  # two steps: the optimizer's state is used, not just created
        opt.zero_grad()
        out = X
        for i, layer in enumerate(model):
            out = layer(out)
            acts[f"output of layer {i} ({type(layer).__name__})"] = out
        loss_fn(out, y)
        dout = loss_fn.backward()
        douts = {"dlogits": dout}
        for i, layer in reversed(list(enumerate(model))):
            dout = layer.backward(dout)
            if dout is not None:
                douts[f"gradient into layer {i}"] = dout
        opt.step()
    assert (dout is None) == (not input_grad)
    _assert_f32(acts)
    _assert_f32(douts)
    _assert_f32({f"{k}.data": p.data for k, p in model.named_parameters()})
    _assert_f32({f"{k}.grad": p.grad for k, p in model.named_parameters()})
    state = {}
    for name in ("velocities", "m", "v"):
        for i, a in enumerate(getattr(opt, name, [])):
            state[f"optimizer {name}[{i}]"] = a
    _assert_f32(state)


def test_stage3_fit_is_float32():
    X, y = _data(4)
    model = _stage3_model(False)
    model(X)
    opt = stage3.SGD(model.parameters(), lr=0.1, momentum=0.5)
    stage3.fit(
        model,
        stage3.CrossEntropyLoss(),
        opt,
        X,
        y,
        num_epochs=2,
        batch_size=5,
        progress=False,
    )
    _assert_f32({f"{k}.data": p.data for k, p in model.named_parameters()})
    _assert_f32({f"{k}.grad": p.grad for k, p in model.named_parameters()})


def test_stage3_mse_loss_is_float32():
    rng = np.random.default_rng(5)
    pred = rng.standard_normal((N, C)).astype(np.float32)
    loss_fn = stage3.MSELoss()
    loss_fn(pred, rng.standard_normal((N, C)).astype(np.float32))
    _assert_f32({"MSELoss grad": loss_fn.backward()})


# --------------------------------------------------------------------------- stage 4
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_stage4_train_step_is_float32(optimizer):
    stage4 = pytest.importorskip("utils.reference.stage4")
    X, y = _data(6)
    model = stage4.Sequential(
        stage4.Linear(D, H1),
        stage4.ReLU(),
        stage4.Linear(H1, H2),
        stage4.ReLU(),
        stage4.Linear(H2, C),
    )
    params = model.parameters()
    opt = (
        stage4.SGD(params, lr=0.1)
        if optimizer == "sgd"
        else stage4.Adam(params, lr=1e-3)
    )
    for _ in range(2):  # two steps: the optimizer's state is used, not just created
        opt.zero_grad()
        loss = stage4.cross_entropy(model(stage4.Tensor(X)), y)
        graph = stage4.topological_sort(loss)
        loss.backward()
        opt.step()
    _assert_f32({f"tensor {i} of the graph": t.data for i, t in enumerate(graph)})
    _assert_f32(
        {
            f"gradient of tensor {i}": t.grad
            for i, t in enumerate(graph)
            if t.grad is not None
        }
    )
    _assert_f32({f"parameter {i}": p.data for i, p in enumerate(params)})
    _assert_f32({f"parameter {i} grad": p.grad for i, p in enumerate(params)})
    assert all(p.grad is not None for p in params)
