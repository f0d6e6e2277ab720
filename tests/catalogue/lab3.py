"""Lab 3: typical wrong implementations, as students write them."""

import types

import numpy as np

from tests.catalogue import Wrong
from utils import data
from utils.check import lab3 as LAB  # noqa: F401 - read by tests/test_catalogue.py
from utils.reference import stage3 as REFERENCE
from utils.reference.stage3 import (
    SGD,
    Adam,
    Dropout,
    Linear,
    Module,
    Parameter,
    Sequential,
)

REFERENCE_IMPLS = {
    "parameter": REFERENCE.Parameter,
    "module": REFERENCE.Module,
    "sequential": REFERENCE.Sequential,
    "linear": REFERENCE.Linear,
    "sgd": REFERENCE.SGD,
    "momentum": REFERENCE.SGD,
    "adam": REFERENCE.Adam,
    "weight_decay": REFERENCE.SGD,
    "dropout": REFERENCE.Dropout,
    "train_epoch": REFERENCE.train_epoch,
    "training": REFERENCE.train_epoch,
}


# parameter -------------------------------------------------------------------
class ParamNoCast(Parameter):
    def __init__(self, data):
        self.data = np.asarray(data)
        self.grad = np.zeros_like(self.data)


class ParamGradZeros64(Parameter):
    def __init__(self, data):
        self.data = np.asarray(data, dtype=np.float32)
        self.grad = np.zeros(self.data.shape)


class ParamZeroGradNewArray(Parameter):
    def zero_grad(self):
        self.grad = np.zeros_like(self.grad)


class ParamZeroGradRebinds(Parameter):
    def zero_grad(self):
        self.grad = np.zeros(self.data.shape, dtype=np.float32)


class ParamZeroGradTimesZero(Parameter):
    def zero_grad(self):
        self.grad = self.grad * 0


class ParamGradAliasesData(Parameter):
    def __init__(self, data):
        self.data = np.asarray(data, dtype=np.float32)
        self.grad = self.data


class ParamZeroGradScalar(Parameter):
    def zero_grad(self):
        self.grad = 0


# module ----------------------------------------------------------------------
class ModuleNoRecursion(Module):
    def parameters(self):
        return list(self._parameters.values())


class ModuleTwoLevels(Module):
    def parameters(self):
        params = list(self._parameters.values())
        for m in self._modules.values():
            for p in m._parameters.values():
                params.append(p)
        return params


class ModuleNoDedup(Module):
    def parameters(self):
        params = []
        for p in self._parameters.values():
            params.append(p)
        for m in self._modules.values():
            params.extend(m.parameters())
        return params


class ModuleForgetsAttribute(Module):
    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value


class ModuleTypeEquals(Module):
    def __setattr__(self, name, value):
        if type(value) is Parameter:
            self._parameters[name] = value
        elif type(value) is Module:
            self._modules[name] = value
        object.__setattr__(self, name, value)


class ModuleGenerator(Module):
    """A generator of parameters is fine; this one lists a shared one twice."""

    def parameters(self):
        yield from self._parameters.values()
        for m in self._modules.values():
            yield from m.parameters()


# sequential ------------------------------------------------------------------
class SeqBackwardSameOrder(Sequential):
    def backward(self, dout):
        for layer in self._modules.values():
            dout = layer.backward(dout)
        return dout


class SeqBackwardSameDout(Sequential):
    def backward(self, dout):
        layers = list(self._modules.values())
        for layer in reversed(layers):
            dx = layer.backward(dout)
        return dx


class SeqForwardSameX(Sequential):
    def forward(self, x):
        for layer in self._modules.values():
            out = layer(x)
        return out


class SeqForwardNoReturn(Sequential):
    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)


# linear ----------------------------------------------------------------------
class LinearAssignsGrads(Linear):
    def backward(self, dout):
        self.W.grad = self._x.T @ dout
        self.b.grad = np.sum(dout, axis=0)
        return dout @ self.W.data.T


class LinearInitEveryTime(Linear):
    def forward(self, x):
        self.reset_parameters(x.shape[1])
        self._x = x
        return x @ self.W.data + self.b.data


class LinearNoBias(Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        self._x = x
        return x @ self.W.data


class LinearBatchAsFeatures(Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[0])
        self._x = x
        return x @ self.W.data + self.b.data


class LinearDbMean(Linear):
    def backward(self, dout):
        self.W.grad += self._x.T @ dout
        self.b.grad += np.mean(dout, axis=0)
        return dout @ self.W.data.T


# sgd -------------------------------------------------------------------------
class SGDPlus(SGD):
    def step(self):
        for p in self.params:
            p.data += self.lr * p.grad


class SGDNoLr(SGD):
    def step(self):
        for p in self.params:
            p.data -= p.grad


class SGDLoopVariable(SGD):
    def step(self):
        for p in self.params:
            w = p.data
            w = w - self.lr * p.grad


class SGDReturnInLoop(SGD):
    def step(self):
        for p in self.params:
            p.data -= self.lr * p.grad
            return


# momentum --------------------------------------------------------------------
class MomentumNewVelocity(SGD):
    def step(self):
        for p in self.params:
            v = np.zeros_like(p.data)
            v = self.momentum * v + p.grad
            p.data -= self.lr * v


class MomentumRebind(SGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            v = self.momentum * v + p.grad  # a new array: the list keeps the old
            p.data -= self.lr * v


class MomentumEMA(SGD):
    def step(self):
        for i, p in enumerate(self.params):
            self.velocities[i] = (
                self.momentum * self.velocities[i] + (1 - self.momentum) * p.grad
            )
            p.data -= self.lr * self.velocities[i]


class MomentumUnused(SGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            v = self.momentum * v + p.grad
            p.data -= self.lr * p.grad


class MomentumOldVelocity(SGD):
    def step(self):
        for i, p in enumerate(self.params):
            p.data -= self.lr * self.velocities[i]
            self.velocities[i] = self.momentum * self.velocities[i] + p.grad


# adam ------------------------------------------------------------------------
class AdamNoCorrection(Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for i, p in enumerate(self.params):
            self.m[i] = b1 * self.m[i] + (1 - b1) * p.grad
            self.v[i] = b2 * self.v[i] + (1 - b2) * p.grad**2
            p.data -= self.lr * self.m[i] / (np.sqrt(self.v[i]) + self.eps)


class AdamNoIncrement(Adam):
    def step(self):
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            self.m[i] = b1 * self.m[i] + (1 - b1) * p.grad
            self.v[i] = b2 * self.v[i] + (1 - b2) * p.grad**2
            m_hat = self.m[i] / (1 - b1 ** (self.t + 1))
            v_hat = self.v[i] / (1 - b2 ** (self.t + 1))
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamEpsInSqrt(Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for i, p in enumerate(self.params):
            self.m[i] = b1 * self.m[i] + (1 - b1) * p.grad
            self.v[i] = b2 * self.v[i] + (1 - b2) * p.grad**2
            m_hat = self.m[i] / (1 - b1**self.t)
            v_hat = self.v[i] / (1 - b2**self.t)
            p.data -= self.lr * m_hat / np.sqrt(v_hat + self.eps)


class AdamLocalState(Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v):
            m = b1 * m + (1 - b1) * p.grad
            v = b2 * v + (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamGradNotSquared(Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for i, p in enumerate(self.params):
            self.m[i] = b1 * self.m[i] + (1 - b1) * p.grad
            self.v[i] = b2 * self.v[i] + (1 - b2) * p.grad
            m_hat = self.m[i] / (1 - b1**self.t)
            v_hat = self.v[i] / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# weight_decay ----------------------------------------------------------------
class SGDDecayAsL2(SGD):
    def step(self):
        for p, v in zip(self.params, self.velocities, strict=True):
            g = p.grad + self.weight_decay * p.data  # L2 in the loss
            if self.momentum:
                v *= self.momentum
                v += g
                p.data -= self.lr * v
            else:
                p.data -= self.lr * g


class SGDDecayForgotten(SGD):
    def step(self):
        for p in self.params:
            p.data -= self.lr * p.grad


class SGDDecayNoLr(SGD):
    def step(self):
        for p, v in zip(self.params, self.velocities, strict=True):
            p.data *= 1 - self.weight_decay
            if self.momentum:
                v *= self.momentum
                v += p.grad
                p.data -= self.lr * v
            else:
                p.data -= self.lr * p.grad


class SGDDecayAfterStep(SGD):
    def step(self):
        for p, v in zip(self.params, self.velocities, strict=True):
            if self.momentum:
                v *= self.momentum
                v += p.grad
                p.data -= self.lr * v
            else:
                p.data -= self.lr * p.grad
            p.data *= 1 - self.lr * self.weight_decay


# dropout ---------------------------------------------------------------------
class DropoutNoScale(Dropout):
    def forward(self, x):
        if not self.training:
            return x
        self.mask = (self._rng.random(x.shape) >= self.p).astype(x.dtype)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask if self.training else dout


class DropoutAlways(Dropout):
    def forward(self, x):
        keep = self._rng.random(x.shape) >= self.p
        self.scale = (keep / (1 - self.p)).astype(x.dtype)
        return x * self.scale

    def backward(self, dout):
        return dout * self.scale


class DropoutKeepsP(Dropout):
    def forward(self, x):
        if not self.training or self.p == 0:
            self.scale = None
            return x
        keep = self._rng.random(x.shape) < self.p
        self.scale = (keep / self.p).astype(x.dtype)
        return x * self.scale

    def backward(self, dout):
        return dout if self.scale is None else dout * self.scale


class DropoutBackwardIdentity(Dropout):
    def backward(self, dout):
        return dout


class DropoutBackwardNewMask(Dropout):
    def backward(self, dout):
        if not self.training or self.p == 0:
            return dout
        keep = self._rng.random(dout.shape) >= self.p
        return dout * (keep / (1 - self.p)).astype(dout.dtype)


class DropoutScalesCacheInBackward(Dropout):
    def backward(self, dout):
        if self._scale is None:
            return dout
        self._scale *= dout  # the cached mask edited in place: right only once
        return self._scale


class LinearEditsCachedInput(Linear):
    def backward(self, dout):
        self._x = self._x.T  # (in, N): the cache rebound, read wrongly next time
        self.W.grad += self._x @ dout
        self.b.grad += dout.sum(axis=0)
        return dout @ self.W.data.T


class DropoutStaleMask(Dropout):
    scale = None

    def forward(self, x):
        if not self.training or self.p == 0:
            return x  # self.scale still holds the last training forward's mask
        keep = self._rng.random(x.shape) >= self.p
        self.scale = (keep / (1 - self.p)).astype(x.dtype)
        return x * self.scale

    def backward(self, dout):
        return dout if self.scale is None else dout * self.scale


# linear: a lazy layer silently missing from parameters() ----------------------
class LinearLazyNoGuard(Linear):
    def _check_initialized(self, path):
        pass  # W is None: parameters() just lists nothing for this layer


# train_epoch -----------------------------------------------------------------
def epoch_no_zero_grad(model, loss_fn, optimizer, X, y, batch_size, rng):
    losses, correct = [], 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        logits = model(Xb)
        losses.append(loss_fn(logits, yb))
        model.backward(loss_fn.backward())
        optimizer.step()
        correct += np.sum(np.argmax(logits, axis=1) == yb)
    return np.mean(losses), correct / len(y)


def epoch_zero_grad_before_step(model, loss_fn, optimizer, X, y, batch_size, rng):
    losses, correct = [], 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        logits = model(Xb)
        losses.append(loss_fn(logits, yb))
        model.backward(loss_fn.backward())
        optimizer.zero_grad()
        optimizer.step()
        correct += np.sum(np.argmax(logits, axis=1) == yb)
    return np.mean(losses), correct / len(y)


def epoch_no_shuffle(model, loss_fn, optimizer, X, y, batch_size, rng):
    losses, correct = [], 0
    for start in range(0, len(X), batch_size):
        Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
        optimizer.zero_grad()
        logits = model(Xb)
        losses.append(loss_fn(logits, yb))
        model.backward(loss_fn.backward())
        optimizer.step()
        correct += np.sum(np.argmax(logits, axis=1) == yb)
    return np.mean(losses), correct / len(y)


def epoch_last_loss(model, loss_fn, optimizer, X, y, batch_size, rng):
    correct = 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        correct += np.sum(np.argmax(logits, axis=1) == yb)
    return loss, correct / len(y)


def epoch_no_return(model, loss_fn, optimizer, X, y, batch_size, rng):
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        loss_fn(model(Xb), yb)
        model.backward(loss_fn.backward())
        optimizer.step()


# new kinds of mistakes (issues 7 and 14) ------------------------------------
class ParamZeroGradInPlaceTimesZero(Parameter):
    def zero_grad(self):
        self.grad *= 0  # in place, but inf * 0 is NaN


class ParamNoCopy(Parameter):
    def __init__(self, data):
        self.data = np.asarray(data, dtype=np.float32)  # the caller's array itself
        self.grad = np.zeros_like(self.data)


class ModuleSetattrRecursion(Module):
    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        setattr(self, name, value)  # calls __setattr__ again, forever


class SeqPlainList(Sequential):
    def __init__(self, *layers):
        Module.__init__(self)
        object.__setattr__(self, "layers", list(layers))  # never registered

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


class SeqSortedNames(Sequential):
    def forward(self, x):
        for name in sorted(self._modules):
            x = self._modules[name](x)
        return x

    def backward(self, dout):
        for name in sorted(self._modules, reverse=True):
            dout = self._modules[name].backward(dout)
        return dout


class LinearLocalGrads(Linear):
    def backward(self, dout):
        dW = self._x.T @ dout  # noqa: F841 - computed, never added into W.grad
        db = dout.sum(axis=0)  # noqa: F841
        return dout @ self.W.data.T


class LinearMatmulParameter(Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        self._x = x
        return x @ self.W + self.b  # Parameters, not their data


class SGDNewData(SGD):
    def step(self):
        for p in self.params:
            p.data = p.data - self.lr * p.grad  # a new array each step


class MomentumByShape(SGD):
    def step(self):
        if not hasattr(self, "by_shape"):
            self.by_shape = {}
        for p in self.params:
            v = self.by_shape.setdefault(p.data.shape, np.zeros_like(p.data))
            v *= self.momentum
            v += p.grad
            p.data -= self.lr * v


class AdamTZero(Adam):
    def step(self):
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        self.t += 1  # too late: the first step divided by 1 - b**0 = 0


class AdamByShape(Adam):
    def step(self):
        if not hasattr(self, "by_shape"):
            self.by_shape = {}
        b1, b2 = self.betas
        self.t += 1
        for p in self.params:
            zeros = (np.zeros_like(p.data), np.zeros_like(p.data))
            m, v = self.by_shape.setdefault(p.data.shape, zeros)
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def epoch_step_first(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        optimizer.step()
        model.backward(loss_fn.backward())
        total += loss * len(yb)
        correct += int(np.sum(logits.argmax(axis=1) == yb))
    return total / len(X), correct / len(X)


def epoch_backward_loss(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        model.backward(loss)  # the loss value, not its gradient
        optimizer.step()
        total += loss * len(yb)
        correct += int(np.sum(logits.argmax(axis=1) == yb))
    return total / len(X), correct / len(X)


def epoch_unweighted(model, loss_fn, optimizer, X, y, batch_size, rng):
    losses, correct = [], 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        losses.append(loss_fn(logits, yb))
        model.backward(loss_fn.backward())
        optimizer.step()
        correct += int(np.sum(logits.argmax(axis=1) == yb))
    return float(np.mean(losses)), correct / len(X)


def epoch_mean_of_batch_accuracies(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, accs = 0.0, []
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        total += loss * len(yb)
        accs.append(np.mean(logits.argmax(axis=1) == yb))  # unweighted
    return total / len(X), float(np.mean(accs))


def epoch_accuracy_after_step(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        total += loss * len(yb)
        correct += int(np.sum(model(Xb).argmax(axis=1) == yb))  # the model after
    return total / len(X), correct / len(X)


def epoch_drops_last(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct, n = 0.0, 0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        if len(yb) < batch_size:
            continue  # skips the last, smaller batch
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        total += loss * len(yb)
        correct += int(np.sum(logits.argmax(axis=1) == yb))
        n += len(yb)
    return total / n, correct / n


def lab_train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
    """The solution's train_epoch, as the lab writes it: zero_grad() in place."""
    total_loss, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        total_loss += loss * len(yb)
        correct += int(np.sum(logits.argmax(axis=1) == yb))
    return total_loss / len(X), correct / len(X)


class LinearAddsIntoGrad(Linear):
    """The lab's Linear: += into p.grad, as exercise 4 prescribes (a gradient that
    zero_grad(set_to_none=True) made None would crash it)."""

    def backward(self, dout):
        self.W.grad += self._x.T @ dout
        self.b.grad += dout.sum(axis=0)
        return dout @ self.W.data.T


def epoch_using(epoch=None, **classes):
    """A train_epoch (the reference's, or ``epoch``), as a notebook cell defines it,
    in a notebook whose classes (Sequential, SGD, Adam, ...) are the given ones."""
    glob = {**vars(REFERENCE), "np": np, "data": data, **classes}
    code = (epoch or REFERENCE.train_epoch).__code__
    return types.FunctionType(code, glob, "train_epoch")


WRONG = [
    Wrong("parameter", ParamNoCast, "float32", "data not cast"),
    Wrong("parameter", ParamGradZeros64, "and the dtype", "grad float64"),
    Wrong("parameter", ParamNoCopy, "*copy*", "np.asarray: no copy"),
    Wrong("parameter", ParamZeroGradInPlaceTimesZero, "inf * 0", "grad *= 0"),
    Wrong("parameter", ParamZeroGradNewArray, "in place", "zero_grad new array"),
    Wrong("parameter", ParamZeroGradTimesZero, "in place", "zero_grad grad * 0"),
    Wrong(
        "parameter",
        ParamZeroGradRebinds,
        "zeroed p.grad in place",  # the message says so, not that something overflowed
        "zero_grad rebinds to new zeros",
    ),
    Wrong("parameter", ParamGradAliasesData, "one array", "grad is data"),
    Wrong("parameter", ParamZeroGradScalar, "by a number", "grad = 0"),
    Wrong("module", ModuleNoRecursion, "submodules", "own parameters only"),
    Wrong("module", ModuleTwoLevels, "one level down", "not recursive"),
    Wrong("module", ModuleNoDedup, "only once", "shared listed twice"),
    Wrong("module", ModuleGenerator, "only once", "generator, shared twice"),
    Wrong("module", ModuleForgetsAttribute, "object.__setattr__", "attr not set"),
    Wrong("module", ModuleTypeEquals, "isinstance", "type() == Module"),
    Wrong("module", ModuleSetattrRecursion, "calls itself", "setattr recursion"),
    Wrong("sequential", SeqBackwardSameOrder, "reverse order", "backward not reversed"),
    Wrong("sequential", SeqBackwardSameDout, "returned by the layer after", "no chain"),
    Wrong("sequential", SeqForwardSameX, "into the next", "forward no chain"),
    Wrong("sequential", SeqForwardNoReturn, "return", "forward returns None"),
    Wrong("sequential", SeqPlainList, "registered", "layers in a plain list"),
    Wrong("sequential", SeqSortedNames, "'10'", "names sorted as strings"),
    Wrong("linear", LinearAssignsGrads, "+=", "grads assigned"),
    Wrong("linear", LinearInitEveryTime, "only the first time", "re-initialised"),
    Wrong("linear", LinearNoBias, "bias is missing", "no bias"),
    Wrong("linear", LinearBatchAsFeatures, "don't fit", "x.shape[0]"),
    Wrong("linear", LinearDbMean, "not the mean", "db mean"),
    Wrong("linear", LinearMatmulParameter, "p.data", "x @ self.W"),
    Wrong("linear", LinearLocalGrads, "never added", "grads in local names"),
    Wrong("linear", LinearLazyNoGuard, "LazyModuleError", "lazy, silently no params"),
    Wrong("sgd", SGDPlus, "uphill", "plus"),
    Wrong("sgd", SGDNoLr, "learning rate is missing", "no lr"),
    Wrong("sgd", SGDLoopVariable, "did not change", "rebinds a local"),
    Wrong("sgd", SGDReturnInLoop, "only the first parameter", "return in loop"),
    Wrong("sgd", SGDNewData, "in place", "p.data = p.data - ..."),
    Wrong("momentum", MomentumNewVelocity, "persist between steps", "new velocity"),
    Wrong("momentum", MomentumRebind, "persist between steps", "rebinds v"),
    Wrong("momentum", MomentumEMA, "exponential average", "dampened"),
    Wrong("momentum", MomentumUnused, "plain SGD", "velocity unused"),
    Wrong("momentum", MomentumNewVelocity, "plain SGD", "new velocity: plain SGD"),
    Wrong("momentum", MomentumOldVelocity, "velocity first", "old velocity"),
    Wrong("momentum", MomentumByShape, "same shape", "velocity per shape"),
    Wrong("adam", AdamNoCorrection, "bias correction", "no bias correction"),
    Wrong("adam", AdamNoIncrement, "grow by one", "t never incremented"),
    Wrong("adam", AdamEpsInSqrt, "outside the square root", "eps inside sqrt"),
    Wrong("adam", AdamLocalState, "persist between steps", "m, v rebound"),
    Wrong("adam", AdamGradNotSquared, "squared", "v of g"),
    Wrong("adam", AdamTZero, "t must be 1", "t = 0 at the first step"),
    Wrong("adam", AdamByShape, "same shape", "m, v per shape"),
    Wrong("weight_decay", SGDDecayAsL2, "L2 regularisation", "decay in the gradient"),
    Wrong("weight_decay", SGDDecayForgotten, "did not shrink", "decay ignored"),
    Wrong("weight_decay", SGDDecayNoLr, "learning rate", "decay without lr"),
    Wrong("weight_decay", SGDDecayAfterStep, "after the gradient step", "decay after"),
    Wrong("dropout", DropoutNoScale, "not scaled", "no 1/(1-p)"),
    Wrong("dropout", DropoutAlways, "eval mode", "drops in eval"),
    Wrong("dropout", DropoutKeepsP, "probability of dropping", "keeps with p"),
    Wrong("dropout", DropoutBackwardIdentity, "unchanged", "backward identity"),
    Wrong("dropout", DropoutBackwardNewMask, "new mask", "backward new mask"),
    Wrong("dropout", DropoutStaleMask, "last training forward", "stale mask in eval"),
    Wrong("dropout", DropoutScalesCacheInBackward, "second backward", "mask *= dout"),
    Wrong(
        "linear",
        LinearEditsCachedInput,
        "a second one on the same forward",
        "cache transposed in backward",
    ),
    Wrong("train_epoch", epoch_no_zero_grad, "zero_grad", "no zero_grad"),
    Wrong("train_epoch", epoch_zero_grad_before_step, "before backward", "zero late"),
    Wrong("train_epoch", epoch_no_shuffle, "shuffle", "no shuffling"),
    Wrong("train_epoch", epoch_last_loss, "last batch", "last loss"),
    Wrong("train_epoch", epoch_no_return, "return two numbers", "returns None"),
    Wrong("train_epoch", epoch_step_first, "right after backward", "step first"),
    Wrong(
        "train_epoch",
        epoch_backward_loss,
        "with respect to the output",
        "backward(loss)",
    ),
    Wrong("train_epoch", epoch_unweighted, "weight each batch", "mean of batch means"),
    Wrong(
        "train_epoch",
        epoch_mean_of_batch_accuracies,
        "weight each batch",
        "mean of batch accuracies",
    ),
    Wrong("train_epoch", epoch_accuracy_after_step, "second forward", "acc after"),
    Wrong("training", epoch_using(SGD=MomentumByShape), "SGD is the first", "by shape"),
    Wrong("training", epoch_using(Adam=AdamByShape), "Adam is the first", "by shape"),
    Wrong(
        "training",
        epoch_using(Sequential=SeqPlainList),
        "model classes (parameter, module, sequential, linear) is the first",
        "layers not registered",
    ),
    Wrong("training", epoch_drops_last, "train_epoch is the first", "drops last"),
    Wrong(
        "training",
        epoch_using(lab_train_epoch, Linear=LinearAddsIntoGrad, SGD=SGDPlus),
        "SGD is the first",
        "a Linear that += into grad, and SGD uphill",
    ),
    Wrong(
        "training",
        epoch_using(Linear=LinearAddsIntoGrad, SGD=MomentumByShape),
        "SGD is the first",
        "a Linear that += into grad, SGD by shape, the course's set_to_none loop",
    ),
]
