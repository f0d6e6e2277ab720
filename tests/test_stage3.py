"""Unit tests of the stage-3 reference: modules, losses, optimizers, saving, training,
and its agreement with stage 2's layered ``Network``."""

from __future__ import annotations

import numpy as np
import pytest

from utils.reference import stage3 as nn
from utils.reference.stage3 import (
    SGD,
    Adam,
    CrossEntropyLoss,
    Dropout,
    LazyModuleError,
    Linear,
    Module,
    ModuleList,
    MSELoss,
    Parameter,
    ReLU,
    Sequential,
)


def _randn(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _labels(n, c, seed=0):
    return np.random.default_rng(seed).integers(0, c, size=n)


class MLP(Module):
    def __init__(self, hidden=5, classes=3):
        super().__init__()
        self.fc1 = Linear(hidden)
        self.act = ReLU()
        self.fc2 = Linear(classes)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


# --------------------------------------------------------------------------- Parameter
def test_parameter_is_float32_copy_with_zero_grad():
    source = np.arange(6, dtype=np.float64).reshape(2, 3)
    p = Parameter(source)
    assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    assert p.shape == (2, 3) and p.size == 6
    assert np.array_equal(p.grad, np.zeros((2, 3)))
    p.data[0, 0] = 100
    assert source[0, 0] == 0, "Parameter must copy its data"
    assert "Parameter(shape=(2, 3)" in repr(p)


def test_zero_grad_is_in_place():
    p = Parameter(np.ones(3))
    held = p.grad
    p.grad += 2
    p.zero_grad()
    assert held is p.grad and not held.any()


def test_set_to_none_assigns_then_adds_and_optimizers_skip_none():
    """zero_grad(set_to_none=True): the first backward assigns its gradient (no
    zero fill, no += pass), the second adds; steps equal the in-place path's, and
    an optimizer skips a parameter that got no gradient, as PyTorch's do."""
    X, y = _randn((6, 4)), _labels(6, 3)
    models = [
        Sequential(Linear(4, 5, seed=0), ReLU(), Linear(5, 3, seed=1)) for _ in range(2)
    ]
    opts = [SGD(m.parameters(), lr=0.1, momentum=0.9) for m in models]
    for _ in range(3):
        for model, opt, to_none in zip(models, opts, (False, True), strict=True):
            opt.zero_grad(set_to_none=to_none)
            assert all((p.grad is None) == to_none for p in model.parameters())
            loss_fn = CrossEntropyLoss()
            loss_fn(model(X), y)
            model.backward(loss_fn.backward())
            opt.step()
    state, params = models[0].state_dict(), models[1].parameters()
    for (name, a), b in zip(state.items(), params, strict=True):
        np.testing.assert_array_equal(a, b.data, err_msg=name)
        assert b.grad.dtype == np.float32
    # a second backward before the next zero_grad adds to the assigned gradient
    model = models[1]
    model.zero_grad(set_to_none=True)
    loss_fn = CrossEntropyLoss()
    loss_fn(model(X), y)
    dout = loss_fn.backward()
    model.backward(dout)
    first = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.backward(dout)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[name], rtol=1e-6)
    # no gradient at all: the optimizers leave the parameter alone
    p = Parameter(np.ones(3))
    for opt in (SGD([p], lr=0.1, momentum=0.5), Adam([p], lr=0.1)):
        opt.zero_grad(set_to_none=True)
        opt.step()
        np.testing.assert_array_equal(p.data, np.ones(3))
    p.zero_grad()  # in place again: zeros are recreated
    assert p.grad is not None and not p.grad.any()


# --------------------------------------------------------------------------- Module
def test_registration_order_and_dotted_names():
    model = MLP()
    model(_randn((2, 4)))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    assert list(model._modules) == ["fc1", "act", "fc2"]
    assert model.parameters()[0] is model.fc1.W
    assert model.num_parameters() == 4 * 5 + 5 + 5 * 3 + 3


def test_plain_attributes_are_not_registered():
    model = Module()
    model.note = "text"
    model.array = np.zeros(3)
    model.layers = [Linear(2, 2)]  # a plain list: invisible, as documented
    assert model.parameters() == [] and model.children() == []


def test_shared_parameter_and_module_are_listed_once():
    class Tied(Module):
        def __init__(self):
            super().__init__()
            self.enc = Linear(3, 3, seed=0)
            self.dec = Linear(3, 3, seed=1)
            self.dec.W = self.enc.W  # tied weights
            self.again = self.enc  # one module under two names

    model = Tied()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["enc.W", "enc.b", "dec.b"]
    assert len(model.parameters()) == 3
    assert len(model.modules()) == 3  # Tied, enc, dec


def test_reassignment_keeps_position_and_none_unregisters():
    model = Module()
    model.a = Parameter(np.zeros(1))
    model.b = Parameter(np.zeros(2))
    model.a = Parameter(np.ones(3))
    assert [n for n, _ in model.named_parameters()] == ["a", "b"]
    assert model.a.shape == (3,)
    model.a = None
    assert [n for n, _ in model.named_parameters()] == ["b"]
    model.sub = Linear(2, 2)
    del model.sub
    assert model.children() == []


def test_unknown_attribute_raises_attribute_error():
    model = MLP()
    with pytest.raises(AttributeError):
        _ = model.no_such_layer
    assert getattr(model, "no_such_layer", "default") == "default"


def test_assigning_before_init_says_call_super_init():
    class Forgot(Module):
        def __init__(self):
            self.fc = Linear(2, 2)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Forgot()


def test_repr_prints_the_tree():
    model = Sequential(Linear(4, 3), ReLU(), Sequential(Linear(2), Dropout(0.1)))
    text = repr(model)
    assert text.splitlines()[0] == "Sequential("
    assert "(0): Linear(in_features=4, out_features=3)" in text
    assert "(1): ReLU()" in text
    assert "  (2): Sequential(" in text
    assert "    (0): Linear(in_features=?, out_features=2)" in text
    assert "    (1): Dropout(p=0.1)" in text


def test_train_eval_switch_the_whole_tree():
    model = Sequential(Linear(3, 3), Sequential(Dropout(0.5)))
    assert model.eval() is model
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="forward"):
        Module()(np.zeros((1, 1)))


def test_module_zero_grad_zeros_every_gradient():
    model = Sequential(Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1))
    loss_fn = CrossEntropyLoss()
    loss_fn(model(_randn((5, 3))), _labels(5, 2))
    model.backward(loss_fn.backward())
    assert any(p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())


# --------------------------------------------------------------------------- backward
def _check_model(model, seed=0):
    X = _randn((6, 4), seed, np.float64)
    y = _labels(6, 3, seed)
    model(X[:1])  # build lazy layers
    model.astype(np.float64)
    return nn.gradient_check(model, CrossEntropyLoss(), X, y)


def test_generic_backward_is_right_for_a_chain():
    nn.manual_seed(0)
    errors = _check_model(MLP())
    assert max(errors.values()) < 1e-6, errors


def test_generic_backward_equals_sequential():
    X, y = _randn((7, 4), 3), _labels(7, 3, 3)
    nn.manual_seed(1)  # lazy layers draw their weights at the first forward
    mlp = MLP()
    mlp(X)
    nn.manual_seed(1)
    seq = Sequential(Linear(5), ReLU(), Linear(3))
    seq(X)
    for model in (mlp, seq):
        loss_fn = CrossEntropyLoss()
        loss_fn(model(X), y)
        model.dx = model.backward(loss_fn.backward())
    np.testing.assert_allclose(mlp.dx, seq.dx, rtol=1e-6)
    for p, q in zip(mlp.parameters(), seq.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_generic_backward_is_silently_wrong_for_a_layer_used_twice():
    class Twice(Module):
        def __init__(self):
            super().__init__()
            self.fc = Linear(4, 4, seed=0)
            self.act = ReLU()
            self.out = Linear(4, 3, seed=1)

        def forward(self, x):
            return self.out(self.act(self.fc(self.act(self.fc(x)))))

    errors = _check_model(Twice())
    assert errors["fc.W"] > 1e-2, errors  # wrong, and nothing raised


def test_generic_backward_is_silently_wrong_for_a_skip_connection():
    class Skip(Module):
        def __init__(self):
            super().__init__()
            self.fc1 = Linear(4, 4, seed=0)
            self.act1 = ReLU()
            self.fc2 = Linear(4, 4, seed=1)
            self.act2 = ReLU()
            self.fc3 = Linear(4, 3, seed=2)

        def forward(self, x):
            h = self.act1(self.fc1(x))
            return self.fc3(self.act2(self.fc2(h)) + h)  # h skips fc2

    errors = _check_model(Skip())
    assert errors["fc1.W"] > 1e-2, errors


def test_backward_without_submodules_is_not_implemented():
    with pytest.raises(NotImplementedError, match="backward"):
        Module().backward(np.zeros((1, 1)))


# --------------------------------------------------------------------------- containers
def test_sequential_order_indexing_and_errors():
    layers = [Linear(2, 2, seed=i) for i in range(12)]
    seq = Sequential(*layers)
    assert [n for n, _ in seq.named_parameters()][-2:] == ["11.W", "11.b"]
    assert len(seq) == 12 and seq[10] is layers[10] and list(seq) == layers
    assert isinstance(seq[:3], Sequential) and len(seq[:3]) == 3
    assert sorted(str(i) for i in range(12))[2] == "10"  # why names are never sorted
    with pytest.raises(TypeError, match=r"Sequential\(\*layers\)"):
        Sequential(layers)
    with pytest.raises(TypeError, match="argument 1"):
        Sequential(Linear(2, 2), np.tanh)


def test_module_list_registers_its_modules():
    class Deep(Module):
        def __init__(self, sizes):
            super().__init__()
            self.hidden = ModuleList(Linear(n) for n in sizes)

        def forward(self, x):
            for layer in self.hidden:
                x = layer(x)
            return x

    model = Deep([4, 3, 2])
    model(_randn((2, 5)))
    names = [n for n, _ in model.named_parameters()]
    assert names == [f"hidden.{i}.{p}" for i in range(3) for p in "Wb"]
    assert len(model.hidden) == 3 and model.hidden[1].out_features == 3
    with pytest.raises(TypeError):
        model.hidden.append("not a module")


# --------------------------------------------------------------------------- Linear
def test_lazy_linear_infers_in_features():
    model = Sequential(Linear(784, 128), ReLU(), Linear(32), ReLU(), Linear(10))
    lazy = r"'2' is a lazy Linear\(out_features=32\)"
    with pytest.raises(LazyModuleError, match=lazy):
        model.parameters()
    with pytest.raises(LazyModuleError, match="forward pass"):
        SGD(model.parameters(), lr=0.1)
    out = model(_randn((3, 784)))
    assert out.shape == (3, 10) and out.dtype == np.float32
    shapes = [p.shape for p in model.parameters()]
    assert shapes == [(784, 128), (128,), (128, 32), (32,), (32, 10), (10,)]


def test_linear_checks_sizes_and_inputs():
    with pytest.raises(ValueError, match="out_features"):
        Linear(0)
    with pytest.raises(ValueError, match="in_features"):
        Linear(-1, 3)
    with pytest.raises(ValueError, match="init"):
        Linear(2, 3, init="uniform")
    layer = Linear(3, 2)
    with pytest.raises(ValueError, match="4 features"):
        layer(np.zeros((1, 4), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        Linear(3, 2).backward(np.zeros((1, 2), np.float32))


def test_linear_backward_accumulates():
    layer = Linear(4, 3, seed=0)
    x, d1, d2 = _randn((5, 4), 1), _randn((5, 3), 2), _randn((5, 3), 3)
    layer(x)
    dx = layer.backward(d1)
    layer.backward(d2)
    np.testing.assert_allclose(dx, d1 @ layer.W.data.T, rtol=1e-6)
    np.testing.assert_allclose(layer.W.grad, x.T @ (d1 + d2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.b.grad, (d1 + d2).sum(0), rtol=1e-5, atol=1e-6)


def test_manual_seed_makes_models_repeatable():
    nn.manual_seed(3)
    a = Sequential(Linear(4, 3), ReLU(), Linear(2))
    a(np.zeros((1, 4), np.float32))
    nn.manual_seed(3)
    b = Sequential(Linear(4, 3), ReLU(), Linear(2))
    b(np.zeros((1, 4), np.float32))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    explicit = Linear(4, 3, seed=7).W.data
    np.testing.assert_array_equal(explicit, nn.init_weight(4, 3, seed=7))
    assert abs(nn.init_weight(400, 300, seed=0).std() - np.sqrt(2 / 400)) < 2e-3


def test_dropout_scales_in_training_and_is_identity_in_eval():
    drop = Dropout(0.5, seed=0)
    x = np.ones((200, 50), np.float32)
    out = drop(x)
    assert set(np.unique(out)) <= {0.0, 2.0} and abs(out.mean() - 1) < 0.05
    np.testing.assert_array_equal(drop.backward(x), out)
    drop.eval()
    assert drop(x) is x and drop.backward(x) is x
    with pytest.raises(ValueError):
        Dropout(1.0)


# --------------------------------------------------------------------------- losses
def test_cross_entropy_labels_and_one_hot_agree():
    logits, y = _randn((6, 4), 5), _labels(6, 4, 5)
    a, b = CrossEntropyLoss(), CrossEntropyLoss()
    la = a(logits, y)
    lb = b(logits, np.eye(4, dtype=np.float32)[y])
    assert isinstance(la, float) and la == pytest.approx(lb, rel=1e-6)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-6, atol=1e-7)
    assert a.backward().dtype == np.float32


def test_cross_entropy_gradient_matches_differences():
    logits, y = _randn((4, 3), 6, np.float64), _labels(4, 3, 6)
    loss_fn = CrossEntropyLoss()
    loss_fn(logits, y)
    analytic = loss_fn.backward()
    numeric = np.zeros_like(logits)
    for i in np.ndindex(logits.shape):
        old = logits[i]
        logits[i] = old + 1e-6
        plus = CrossEntropyLoss()(logits, y)
        logits[i] = old - 1e-6
        minus = CrossEntropyLoss()(logits, y)
        logits[i] = old
        numeric[i] = (plus - minus) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_cross_entropy_is_finite_for_huge_logits_and_checks_targets():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], np.float32)
    loss_fn = CrossEntropyLoss()
    loss = loss_fn(logits, np.array([1, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(loss_fn.backward()))
    with pytest.raises(ValueError, match="target"):
        loss_fn(logits, np.zeros((2, 2)))
    with pytest.raises(TypeError, match="integer"):
        loss_fn(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels"):
        loss_fn(logits, np.array([0, 3]))


def test_mse_loss_and_gradient():
    pred, target = _randn((3, 2), 7), _randn((3, 2), 8)
    loss_fn = MSELoss()
    assert loss_fn(pred, target) == pytest.approx(np.mean((pred - target) ** 2))
    np.testing.assert_allclose(loss_fn.backward(), 2 * (pred - target) / 6, rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(pred, target[:2])


# --------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1), lambda p: Adam(p)])
def test_optimizer_errors(make):
    with pytest.raises(ValueError, match="empty parameter list"):
        make([])
    with pytest.raises(TypeError, match=r"model.parameters\(\)"):
        make(Linear(2, 2))
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="twice"):
        make([p, p])
    with pytest.raises(TypeError, match="not a Parameter"):
        make([np.zeros(2)])


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")])
def test_non_positive_learning_rate_is_refused(lr):
    for cls in (SGD, Adam):
        with pytest.raises(ValueError, match="learning rate must be positive"):
            cls([Parameter(np.zeros(2))], lr=lr)
    with pytest.raises(ValueError, match="momentum"):
        SGD([Parameter(np.zeros(2))], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam([Parameter(np.zeros(2))], betas=(0.9, 1.0))


def _run(opt_cls, grads, **kwargs):
    p = Parameter(np.ones(3))
    opt = opt_cls([p], **kwargs)
    data_before = p.data
    for g in grads:
        opt.zero_grad()
        p.grad += g
        opt.step()
    assert p.data is data_before, "updates must be in place"
    return p.data.astype(np.float64)


def test_sgd_and_momentum_follow_their_rules():
    grads = [np.array([1.0, -2.0, 0.5]), np.array([0.5, 0.0, -1.0]), np.zeros(3)]
    expected = np.ones(3) - 0.1 * sum(grads)
    np.testing.assert_allclose(_run(SGD, grads, lr=0.1), expected, rtol=1e-6)
    v, p = np.zeros(3), np.ones(3)
    for g in grads:
        v = 0.9 * v + g
        p = p - 0.1 * v
    np.testing.assert_allclose(_run(SGD, grads, lr=0.1, momentum=0.9), p, rtol=1e-6)


def test_adam_follows_kingma_and_ba():
    grads = [np.array([1.0, -2.0, 1e-3]), np.array([0.5, 0.0, -1.0]), np.ones(3)]
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    m, v, p = np.zeros(3), np.zeros(3), np.ones(3)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(_run(Adam, grads, lr=lr), p, rtol=1e-6)
    # the first step moves every coordinate by about lr, whatever its scale
    first = _run(Adam, grads[:1], lr=lr)
    np.testing.assert_allclose(np.abs(first - 1), lr, rtol=1e-4)


# --------------------------------------------------------------------------- saving
def test_state_dict_round_trip_through_npz(tmp_path):
    nn.manual_seed(0)
    model = MLP()
    model(_randn((1, 4)))
    path = tmp_path / "mlp.npz"
    model.save(path)
    nn.manual_seed(1)
    other = MLP()
    other(_randn((1, 4)))
    held = other.fc1.W.data
    opt = SGD(other.parameters(), lr=0.1)
    other.load(path)
    assert other.fc1.W.data is held, "loading must copy in place"
    for (n1, p), (n2, q) in zip(
        model.named_parameters(), other.named_parameters(), strict=True
    ):
        assert n1 == n2
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.params[0] is other.fc1.W
    state = model.state_dict()
    state["fc1.W"][...] = 0  # a copy: the model is untouched
    assert model.fc1.W.data.any()


def test_load_state_dict_errors():
    model = Sequential(Linear(3, 2, seed=0), ReLU(), Linear(2, 2, seed=1))
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "2.b"}
    with pytest.raises(KeyError, match=r"missing key\(s\) \['2.b'\]"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected key\(s\) \['3.W'\]"):
        model.load_state_dict({**state, "3.W": np.zeros(2)})
    with pytest.raises(ValueError, match="'0.W' has shape"):
        model.load_state_dict({**state, "0.W": np.zeros((2, 3))})
    with pytest.raises(LazyModuleError):
        Sequential(Linear(2)).load_state_dict({})


# --------------------------------------------------------------------------- training
def _blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centers = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]])
    X = (centers[y] + rng.standard_normal((n, 2))).astype(np.float32)
    return X, y


def _train(model_fn, opt_fn, num_epochs=5, **kwargs):
    X, y = _blobs()
    nn.manual_seed(0)
    model = model_fn()
    model(X[:1])
    return nn.fit(
        model,
        CrossEntropyLoss(),
        opt_fn(model.parameters()),
        X[:200],
        y[:200],
        num_epochs=num_epochs,
        batch_size=20,
        X_test=X[200:],
        y_test=y[200:],
        progress=False,
        **kwargs,
    )


def test_fit_learns_and_records_history():
    history = _train(
        lambda: Sequential(Linear(16), ReLU(), Linear(3)),
        lambda p: Adam(p, lr=0.01),
        lr_decay=0.9,
    )
    assert set(history) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    assert all(len(v) == 5 for v in history.values())
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["test_acc"][-1] > 0.85


def test_subclass_and_sequential_train_to_the_same_numbers():
    opt = lambda p: SGD(p, lr=0.1, momentum=0.9)  # noqa: E731
    a = _train(lambda: MLP(hidden=8), opt, num_epochs=3)
    b = _train(lambda: Sequential(Linear(8), ReLU(), Linear(3)), opt, num_epochs=3)
    assert a == b


def test_evaluate_restores_the_mode():
    model = Sequential(Linear(2, 3, seed=0), Dropout(0.5, seed=0), Linear(3, 3, seed=1))
    X, y = _blobs(50)
    loss1, acc1 = nn.evaluate(model, CrossEntropyLoss(), X, y, batch_size=7)
    assert model.training
    loss2, _ = nn.evaluate(model.eval(), CrossEntropyLoss(), X, y)
    assert not model.training and loss1 == pytest.approx(loss2, rel=1e-6)
    assert 0 <= acc1 <= 1
    with pytest.raises(ValueError, match="num_epochs"):
        nn.fit(
            model,
            CrossEntropyLoss(),
            SGD(model.parameters(), 0.1),
            X,
            y,
            num_epochs=0,
            batch_size=10,
            progress=False,
        )


def test_float32_end_to_end():
    model = Sequential(Linear(4, 8, seed=0), ReLU(), Linear(8, 3, seed=1))
    loss_fn = CrossEntropyLoss()
    logits = model(_randn((5, 4)))
    loss_fn(logits, _labels(5, 3))
    dx = model.backward(loss_fn.backward())
    assert logits.dtype == dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


# --------------------------------------------------------------------------- stage 2
def test_agrees_with_stage_2_network():
    """The same weights give the same loss and gradients as stage 2's Network."""
    stage2 = pytest.importorskip("utils.reference.stage2")
    sizes = [6, 5, 4, 3]
    X, y = _randn((8, 6), 11), _labels(8, 3, 11)
    net = stage2.Network(sizes, seed=4)
    model = Sequential(Linear(6, 5), ReLU(), Linear(5, 4), ReLU(), Linear(4, 3))
    for name, value in net.params().items():  # copy stage 2's weights over
        index, attr = name.split(".")
        getattr(model[int(index)], attr).data[...] = value
    for layer in model:
        if isinstance(layer, Linear):
            layer.b.data[...] = _randn(layer.b.shape, 12)  # non-zero biases
    for name, value in model.state_dict().items():
        net.params()[name][...] = value

    loss2 = net.loss(X, y)
    dx2 = net.backward(net.loss_layer.backward())
    loss_fn = CrossEntropyLoss()
    loss3 = loss_fn(model(X), y)
    dx3 = model.backward(loss_fn.backward())
    assert loss3 == pytest.approx(loss2, rel=1e-5)
    np.testing.assert_allclose(dx3, dx2, rtol=1e-5, atol=1e-7)
    grads3 = {name: p.grad for name, p in model.named_parameters()}
    assert list(grads3) == list(net.grads())
    for name, grad2 in net.grads().items():
        np.testing.assert_allclose(grads3[name], grad2, rtol=1e-5, atol=1e-7)

    # one step of plain SGD moves both to the same weights
    net.update(0.1)
    SGD(model.parameters(), lr=0.1).step()
    for name, value in net.params().items():
        np.testing.assert_allclose(model.state_dict()[name], value, rtol=1e-6)


def test_same_seed_same_weights_as_stage_2():
    """Seeded alike, stage 2's Network and a stage-3 Sequential draw the same He
    weights, layer after layer, from one generator."""
    stage2 = pytest.importorskip("utils.reference.stage2")
    net = stage2.Network([6, 5, 4, 3], seed=9)
    nn.manual_seed(9)
    model = Sequential(Linear(6, 5), ReLU(), Linear(4), ReLU(), Linear(3))
    model(np.zeros((1, 6), np.float32))
    for name, value in net.params().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)


def test_fit_records_validation_data_as_val():
    from utils import data

    X, y = data.make_edge_patches(200, seed=0)
    X_tr, X_val, y_tr, y_val = data.train_val_split(X, y, 0.25, seed=0)
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(25, 8), nn.ReLU(), nn.Linear(2))
    model(X_tr[:1])
    optimizer = nn.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    history = nn.fit(
        model, loss_fn, optimizer, X_tr, y_tr, num_epochs=2, batch_size=32,
        X_val=X_val, y_val=y_val, progress=False,
    )  # fmt: skip
    assert set(history) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert history["val_acc"][-1] == nn.evaluate(model, loss_fn, X_val, y_val)[1]


def test_weight_decay_is_decoupled():
    """SGD: the same as an L2 term in the gradient without momentum, not with it;
    Adam: the parameter shrinks by (1 - lr lam), apart from the normalised step."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 4)).astype(np.float32)
    grad = rng.standard_normal((3, 4)).astype(np.float32)

    def stepped(cls, **kwargs):
        p = nn.Parameter(data)
        p.grad[...] = grad
        opt = cls([p], **kwargs)
        opt.step()
        p.grad[...] = grad
        opt.step()
        return p.data

    lr, lam = 0.1, 0.5
    plain = stepped(nn.SGD, lr=lr, weight_decay=lam)
    expected = data.copy()
    for _ in range(2):
        expected = expected - lr * (grad + lam * expected)  # L2: same for plain SGD
    np.testing.assert_allclose(plain, expected, rtol=1e-6)
    assert plain.dtype == np.float32

    adam = stepped(nn.Adam, lr=lr, weight_decay=lam)
    no_decay = nn.Parameter(data)
    opt = nn.Adam([no_decay], lr=lr)
    expected = data.copy()
    for _ in range(2):
        no_decay.data[...] = expected * (1 - lr * lam)  # shrink, then Adam's step
        no_decay.grad[...] = grad
        opt.step()
        expected = no_decay.data.copy()
    np.testing.assert_allclose(adam, expected, rtol=1e-6)

    with pytest.raises(ValueError, match="weight_decay"):
        nn.SGD([nn.Parameter(data)], lr=0.1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        nn.Adam([nn.Parameter(data)], weight_decay=-1.0)


def test_adam_step_count_per_parameter():
    """Adam keeps a step count per parameter (as PyTorch): a parameter with no
    gradient at a step is skipped and its bias correction is not advanced."""
    a = Parameter([1.0], dtype=np.float64)
    b = Parameter([1.0], dtype=np.float64)
    opt = Adam([a, b], lr=0.1)
    a.grad, b.grad = np.array([2.0]), None
    opt.step()
    np.testing.assert_array_equal(b.data, [1.0])
    a.grad, b.grad = np.array([2.0]), np.array([3.0])
    opt.step()
    # b's first step: m_hat = g, v_hat = g^2, so it moves by lr * g / (|g| + eps)
    np.testing.assert_allclose(b.data, [1.0 - 0.1 * 3.0 / (3.0 + 1e-8)], rtol=1e-12)
    # a's second step with the same g: m_hat = g, v_hat = g^2 again
    np.testing.assert_allclose(a.data, [1.0 - 2 * 0.1 * 2.0 / (2.0 + 1e-8)], rtol=1e-12)
    assert opt.steps == [2, 1]


def test_train_epoch_skips_the_first_layers_input_gradient_by_default():
    """A model built the obvious way trains on the fast path: inside train_epoch the
    first Linear (found through nested Sequentials) returns no dx, and afterwards
    backward returns dx again; the other layers keep theirs."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    nn.manual_seed(0)
    model = Sequential(Sequential(Linear(4, 5), ReLU()), Linear(3))
    model(X[:1])
    first, last = model[0][0], model[1]
    seen: list[tuple[bool, bool]] = []
    original = first.backward
    first.backward = lambda dout: (
        seen.append((first.input_grad, last.input_grad)) or original(dout)
    )
    optimizer = nn.SGD(model.parameters(), lr=0.1)
    nn.train_epoch(model, CrossEntropyLoss(), optimizer, X, y, 4, rng)
    assert seen == [(False, True)] * 3  # 3 batches
    assert first.input_grad is True
    loss_fn = CrossEntropyLoss()
    loss_fn(model(X), y)
    assert model.backward(loss_fn.backward()).shape == X.shape


def test_input_is_data_restores_the_flag_after_an_error_and_leaves_others():
    layer = Linear(4, 2)
    with pytest.raises(ZeroDivisionError), nn.input_is_data(Sequential(layer)):
        assert layer.input_grad is False
        1 / 0  # noqa: B018
    assert layer.input_grad is True
    explicit = Linear(4, 2, input_grad=False)
    with nn.input_is_data(Sequential(explicit)):
        pass
    assert explicit.input_grad is False  # the user's choice is kept
    relu_first = Sequential(ReLU(), Linear(4, 2))
    with nn.input_is_data(relu_first):  # dx of the Linear is needed by nothing,
        assert relu_first[1].input_grad is True  # but only a first Linear is told
