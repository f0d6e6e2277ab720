"""Lab 2: typical wrong implementations, as students write them.

In the lab the constructors are given (``Linear.__init__``, ``Network.__init__``) and
the student writes the methods, so the wrong classes below subclass the reference
and override what a student would have written.
"""

import numpy as np

from tests.catalogue import Wrong
from utils.check import lab2 as LAB
from utils.reference import stage2 as REFERENCE

ref = REFERENCE
Layer = ref.Layer

_IMPLS = {
    "linear_forward": ref.Linear,
    "linear_backward": ref.Linear,
    "relu": ref.ReLU,
    "sigmoid": ref.Sigmoid,
    "tanh": ref.Tanh,
    "softmax": ref.Softmax,
    "softmax_cross_entropy": ref.SoftmaxCrossEntropy,
    "mse": ref.MSE,
    "zeros": ref.zeros,
    "glorot_uniform": ref.glorot_uniform,
    "he_normal": ref.he_normal,
    "network_forward": ref.Network,
    "network_backward": ref.Network,
    "network_update": ref.Network,
    "train_step": ref.Network,
    "train_epoch": ref.train_epoch,
    "training": ref.Network,
}
REFERENCE_IMPLS = {ex: _IMPLS[ex] for ex in LAB.LAB.exercises}


# linear_forward ---------------------------------------------------------------
class LinearNoBias(ref.Linear):
    def forward(self, x):
        self.x = x
        return x @ self.W


class LinearWT(ref.Linear):
    def forward(self, x):
        self.x = x
        return x @ self.W.T + self.b


class LinearWithRelu(ref.Linear):
    def forward(self, x):
        self.x = x
        return np.maximum(0, x @ self.W + self.b)


class LinearNoCache(ref.Linear):
    def forward(self, x):
        return x @ self.W + self.b


class LinearCachesOutput(ref.Linear):
    def forward(self, x):
        out = x @ self.W + self.b
        self.x = out
        return out


class LinearNoReturn(ref.Linear):
    def forward(self, x):
        self.x = x
        self.out = x @ self.W + self.b


class LinearBiasOnWeights(ref.Linear):
    def forward(self, x):
        self.x = x
        return x @ (self.W + self.b)


# linear_backward --------------------------------------------------------------
class LinearDbNotSummed(ref.Linear):
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout
        return dout @ self.W.T


class LinearDbMean(ref.Linear):
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = np.mean(dout, axis=0)
        return dout @ self.W.T


class LinearDWTransposed(ref.Linear):
    def backward(self, dout):
        self.dW = dout.T @ self.x
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class LinearDWOverN(ref.Linear):
    def backward(self, dout):
        N = dout.shape[0]
        self.dW = self.x.T @ dout / N
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class LinearDxNoTranspose(ref.Linear):
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W


class LinearBackwardCachedOutput(ref.Linear):
    """Caches the output in forward; backward itself is right."""

    def forward(self, x):
        self.x = x @ self.W + self.b
        return self.x


class LinearBackwardNoReturn(ref.Linear):
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)


class LinearBackwardTransposesCache(ref.Linear):
    """Caches x transposed at its first backward: a second one reads it wrongly."""

    def backward(self, dout):
        self.x = self.x.T  # (in, N): the cache rebound
        self.dW = self.x @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class SigmoidEditsCache(Layer):
    def forward(self, x):
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout):
        self.out *= 1 - self.out  # the cache edited in place: s (1 - s)
        return dout * self.out


class TanhEditsCache(Layer):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        self.out **= 2  # the cache edited in place
        return dout * (1 - self.out)


class ReLUMaskRebound(Layer):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        self.mask = dout * self.mask  # the cache replaced by the result
        return self.mask


# relu -------------------------------------------------------------------------
class ReLUMaskOnly(Layer):
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        return (self.x > 0).astype(dout.dtype)


class ReLUOutGe0(Layer):
    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, dout):
        return dout * (self.out >= 0)


class ReLUGeZero(Layer):
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * (self.x >= 0)


class ReLUTimesOutput(Layer):
    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, dout):
        return dout * self.out


class ReLUInPlace(Layer):
    def forward(self, x):
        x[x < 0] = 0
        self.out = x
        return x

    def backward(self, dout):
        return dout * (self.out > 0)


# sigmoid ----------------------------------------------------------------------
class SigmoidNaive(Layer):
    def forward(self, x):
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class SigmoidWhereBothBranches(Layer):
    def forward(self, x):
        self.out = np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class SigmoidGradFromInput(Layer):
    def forward(self, x):
        self.x = x
        return _sigmoid(x)

    def backward(self, dout):
        return dout * self.x * (1 - self.x)


class SigmoidNoDout(Layer):
    def forward(self, x):
        self.out = _sigmoid(x)
        return self.out

    def backward(self, dout):
        return self.out * (1 - self.out)


class SigmoidGradIsS(Layer):
    def forward(self, x):
        self.out = _sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * self.out


# tanh -------------------------------------------------------------------------
class TanhNaive(Layer):
    def forward(self, x):
        self.out = (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out**2)


class TanhGradFromInput(Layer):
    def forward(self, x):
        self.x = x
        return np.tanh(x)

    def backward(self, dout):
        return dout * (1 - self.x**2)


class TanhNoSquare(Layer):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out)


class TanhNoDout(Layer):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return 1 - self.out**2


# softmax ----------------------------------------------------------------------
def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxJacobianFromInput(Layer):
    def forward(self, x):
        self.x = x
        return _softmax(x)

    def backward(self, dout):
        s = self.x
        return s * (dout - np.sum(dout * s, axis=1, keepdims=True))


class SoftmaxDiagonalOnly(Layer):
    def forward(self, x):
        self.s = _softmax(x)
        return self.s

    def backward(self, dout):
        return dout * self.s * (1 - self.s)


class SoftmaxNoKeepdims(Layer):
    def forward(self, x):
        self.s = _softmax(x)
        return self.s

    def backward(self, dout):
        return self.s * (dout - np.sum(dout * self.s, axis=1))


class SoftmaxSumAxis0(Layer):
    def forward(self, x):
        self.s = _softmax(x)
        return self.s

    def backward(self, dout):
        return self.s * (dout - np.sum(dout * self.s, axis=0, keepdims=True))


class SoftmaxNaive(Layer):
    def forward(self, x):
        e = np.exp(x)
        self.s = e / np.sum(e, axis=1, keepdims=True)
        return self.s

    def backward(self, dout):
        return self.s * (dout - np.sum(dout * self.s, axis=1, keepdims=True))


# softmax_cross_entropy --------------------------------------------------------
class SCENoMean(ref.SoftmaxCrossEntropy):
    def backward(self):
        N, C = self.probs.shape
        Y = np.eye(C, dtype=self.probs.dtype)[self.y]
        return self.probs - Y


class SCELossSum(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        self.probs = _softmax(logits)
        self.y = y
        return -np.sum(np.log(self.probs[np.arange(len(y)), y]))


class SCEMinusOne(ref.SoftmaxCrossEntropy):
    def backward(self):
        return (self.probs - 1) / len(self.y)


class SCEOneHotLog(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        self.probs = _softmax(logits)
        self.y = y
        Y = np.eye(logits.shape[1])[y]
        return -np.mean(np.sum(Y * np.log(self.probs), axis=1))


class SCENaiveSoftmax(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        e = np.exp(logits)
        self.probs = e / e.sum(axis=1, keepdims=True)
        self.y = y
        return -np.mean(np.log(self.probs[np.arange(len(y)), y]))


class SCEPerExample(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        self.probs = _softmax(logits)
        self.y = y
        return -np.log(self.probs[np.arange(len(y)), y])


# mse --------------------------------------------------------------------------
class MSENoTwo(ref.MSE):
    def backward(self):
        return self.diff / self.diff.size


class MSEGradOverN(ref.MSE):
    def backward(self):
        return 2 * self.diff / self.diff.shape[0]


class MSESign(ref.MSE):
    def forward(self, pred, target):
        self.diff = target - pred
        return float(np.mean(self.diff**2))


class MSESum(ref.MSE):
    def forward(self, pred, target):
        self.diff = pred - target
        return float(np.sum(self.diff**2))


class MSEPerExampleSum(ref.MSE):
    def forward(self, pred, target):
        self.diff = pred - target
        return float(np.mean(np.sum(self.diff**2, axis=1)))

    def backward(self):
        return 2 * self.diff / len(self.diff)


# zeros ------------------------------------------------------------------------
def zeros_float64(fan_in, fan_out, rng=None):
    return np.zeros((fan_in, fan_out))


def zeros_int(fan_in, fan_out, rng=None):
    return np.zeros((fan_in, fan_out), dtype=int)


def zeros_bool(fan_in, fan_out, rng=None):
    return np.zeros((fan_in, fan_out), dtype=bool)


def zeros_transposed(fan_in, fan_out, rng=None):
    return np.zeros((fan_out, fan_in), dtype=np.float32)


def zeros_two_args(fan_in, fan_out, rng=None):
    return np.zeros(fan_in, fan_out)


def zeros_list(fan_in, fan_out, rng=None):
    return [[0.0] * fan_out for _ in range(fan_in)]


def zeros_ones(fan_in, fan_out, rng=None):
    return np.ones((fan_in, fan_out), dtype=np.float32)


# glorot_uniform ---------------------------------------------------------------
def glorot_fan_in(fan_in, fan_out, rng):
    limit = np.sqrt(6 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def glorot_std_as_limit(fan_in, fan_out, rng):
    limit = np.sqrt(2 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def glorot_normal(fan_in, fan_out, rng):
    std = np.sqrt(2 / (fan_in + fan_out))
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32)


def glorot_float64(fan_in, fan_out, rng):
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def glorot_global_random(fan_in, fan_out, rng):
    limit = np.sqrt(6 / (fan_in + fan_out))
    return np.random.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


def glorot_positive(fan_in, fan_out, rng):
    limit = np.sqrt(6 / (fan_in + fan_out))
    return (rng.random((fan_in, fan_out)) * limit).astype(np.float32)


def glorot_no_sqrt(fan_in, fan_out, rng):
    limit = 6 / (fan_in + fan_out)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


# he_normal --------------------------------------------------------------------
def he_variance_as_std(fan_in, fan_out, rng):
    return (rng.standard_normal((fan_in, fan_out)) * (2 / fan_in)).astype(np.float32)


def he_fan_out(fan_in, fan_out, rng):
    std = np.sqrt(2 / fan_out)
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32)


def he_no_two(fan_in, fan_out, rng):
    std = np.sqrt(1 / fan_in)
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32)


def he_uniform(fan_in, fan_out, rng):
    limit = np.sqrt(6 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def he_own_generator(fan_in, fan_out, rng):
    rng = np.random.default_rng(0)
    std = np.sqrt(2 / fan_in)
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32)


def he_float64(fan_in, fan_out, rng):
    return rng.normal(0, np.sqrt(2 / fan_in), size=(fan_in, fan_out))


def he_no_return(fan_in, fan_out, rng):
    W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)
    W.astype(np.float32)


# network_forward --------------------------------------------------------------
class NetForwardReversed(ref.Network):
    def forward(self, X):
        for layer in reversed(self.layers):
            X = layer.forward(X)
        return X


class NetForwardNoActivations(ref.Network):
    def forward(self, X):
        for layer in self.layers:
            if isinstance(layer, ref.Linear):
                X = layer.forward(X)
        return X


class NetForwardNotChained(ref.Network):
    def forward(self, X):
        for layer in self.layers:
            out = layer.forward(X)
        return out


class NetForwardSoftmax(ref.Network):
    def forward(self, X):
        for layer in self.layers:
            X = layer.forward(X)
        return _softmax(X)


# network_backward -------------------------------------------------------------
class NetBackwardNotReversed(ref.Network):
    def backward(self, dlogits):
        dout = dlogits
        for layer in self.layers:
            dout = layer.backward(dout)
        return dout


class NetBackwardNotChained(ref.Network):
    def backward(self, dlogits):
        for layer in reversed(self.layers):
            dX = layer.backward(dlogits)
        return dX


class NetBackwardSkipsActivations(ref.Network):
    def backward(self, dlogits):
        dout = dlogits
        for layer in reversed(self.layers):
            if layer.params:
                dout = layer.backward(dout)
        return dout


class NetBackwardNoReturn(ref.Network):
    def backward(self, dlogits):
        dout = dlogits
        for layer in reversed(self.layers):
            dout = layer.backward(dout)


# network_update ---------------------------------------------------------------
class NetUpdateRebinds(ref.Network):
    def update(self, lr):
        for layer in self.layers:
            for name in layer.params:
                p = layer.params[name]
                p = p - lr * layer.grads[name]


class NetUpdatePlus(ref.Network):
    def update(self, lr):
        for layer in self.layers:
            for name in layer.params:
                layer.params[name] += lr * layer.grads[name]


class NetUpdateNoLr(ref.Network):
    def update(self, lr):
        for layer in self.layers:
            for name in layer.params:
                layer.params[name] -= layer.grads[name]


class NetUpdateWeightsOnly(ref.Network):
    def update(self, lr):
        for layer in self.layers:
            if isinstance(layer, ref.Linear):
                layer.W -= lr * layer.dW


class NetUpdateReturnInLoop(ref.Network):
    def update(self, lr):
        for layer in self.layers:
            for name in layer.params:
                layer.params[name] -= lr * layer.grads[name]
            return


class NetUpdateIsinstance(ref.Network):
    """Right with the student's own layers, but only through their class."""

    def update(self, lr):
        for layer in self.layers:
            if isinstance(layer, StudentLinear):
                layer.W -= lr * layer.dW
                layer.b -= lr * layer.db


class StudentLinear(ref.Linear):
    """Stands for the lab's own Linear class."""


# train_step -------------------------------------------------------------------
class StepNoUpdate(ref.Network):
    def train_step(self, X, y, lr):
        logits = self.forward(X)
        loss = self.loss_layer.forward(logits, y)
        self.backward(self.loss_layer.backward())
        return loss


class StepUpdateBeforeBackward(ref.Network):
    def train_step(self, X, y, lr):
        logits = self.forward(X)
        loss = self.loss_layer.forward(logits, y)
        self.update(lr)
        self.backward(self.loss_layer.backward())
        return loss


class StepLossAfter(ref.Network):
    def train_step(self, X, y, lr):
        logits = self.forward(X)
        self.loss_layer.forward(logits, y)
        self.backward(self.loss_layer.backward())
        self.update(lr)
        return self.loss_layer.forward(self.forward(X), y)


class StepSoftmaxFirst(ref.Network):
    def train_step(self, X, y, lr):
        probs = _softmax(self.forward(X))
        loss = self.loss_layer.forward(probs, y)
        self.backward(self.loss_layer.backward())
        self.update(lr)
        return loss


class StepNoReturn(ref.Network):
    def train_step(self, X, y, lr):
        logits = self.forward(X)
        self.loss_layer.forward(logits, y)
        self.backward(self.loss_layer.backward())
        self.update(lr)


# train_epoch ------------------------------------------------------------------
def epoch_drops_last(net, X, y, batch_size, lr, rng):
    order = rng.permutation(len(X))
    losses = []
    for i in range(len(X) // batch_size):
        idx = order[i * batch_size : (i + 1) * batch_size]
        losses.append(net.train_step(X[idx], y[idx], lr))
    return np.mean(losses)


def epoch_no_shuffle(net, X, y, batch_size, lr, rng):
    losses = []
    for start in range(0, len(X), batch_size):
        Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
        losses.append(net.train_step(Xb, yb, lr))
    return np.mean(losses)


def epoch_shuffles_separately(net, X, y, batch_size, lr, rng):
    X = X[rng.permutation(len(X))]
    y = y[rng.permutation(len(y))]
    losses = []
    for start in range(0, len(X), batch_size):
        Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
        losses.append(net.train_step(Xb, yb, lr))
    return np.mean(losses)


def epoch_sum(net, X, y, batch_size, lr, rng):
    order = rng.permutation(len(X))
    total = 0.0
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        total += net.train_step(X[idx], y[idx], lr)
    return total


def epoch_last_loss(net, X, y, batch_size, lr, rng):
    order = rng.permutation(len(X))
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        loss = net.train_step(X[idx], y[idx], lr)
    return loss


def epoch_shuffles_in_place(net, X, y, batch_size, lr, rng):
    order = rng.permutation(len(X))
    X[:] = X[order]
    y[:] = y[order]
    losses = []
    for start in range(0, len(X), batch_size):
        Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
        losses.append(net.train_step(Xb, yb, lr))
    return np.mean(losses)


def epoch_fixed_lr(net, X, y, batch_size, lr, rng):
    order = rng.permutation(len(X))
    losses = []
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        losses.append(net.train_step(X[idx], y[idx], 0.1))
    return np.mean(losses)


# new kinds of mistakes (issues 7 and 14) ------------------------------------
class LinearAccumulates(ref.Linear):
    def backward(self, dout):
        self.dW += self.x.T @ dout  # stage 2 never zeroes dW: it grows every batch
        self.db += dout.sum(axis=0)
        return dout @ self.W.T


class LinearLocalGrads(ref.Linear):
    def backward(self, dout):
        dW = self.x.T @ dout  # noqa: F841 - the mistake: never stored in the layer
        db = dout.sum(axis=0)  # noqa: F841
        return dout @ self.W.T


class LinearDbKeepdims(ref.Linear):
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0, keepdims=True)  # (1, out)
        return dout @ self.W.T


class LinearDbAxis1(ref.Linear):
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=1)
        return dout @ self.W.T


class SoftmaxShiftMean(Layer):
    def forward(self, x):
        e = np.exp(x - x.mean(axis=1, keepdims=True))
        self.s = e / e.sum(axis=1, keepdims=True)
        return self.s

    def backward(self, dout):
        s = self.s
        return s * (dout - np.sum(dout * s, axis=1, keepdims=True))


class SoftmaxGlobalMax(Layer):
    def forward(self, x):
        e = np.exp(x - x.max())  # the whole array's maximum, not each row's
        self.s = e / e.sum(axis=1, keepdims=True)
        return self.s

    def backward(self, dout):
        s = self.s
        return s * (dout - np.sum(dout * s, axis=1, keepdims=True))


class SCEGlobalMax(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        e = np.exp(logits - logits.max())  # the whole array's maximum
        self.probs = e / e.sum(axis=1, keepdims=True)
        self.y = y
        return -np.mean(np.log(self.probs[np.arange(len(y)), y]))


class SCEShape1(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        super().forward(logits, y)
        p = self.probs[np.arange(len(y)), y]
        return -np.mean(np.log(np.maximum(p, 1e-12)), keepdims=True)  # shape (1,)


class SCEBigFloor(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        super().forward(logits, y)
        p = self.probs[np.arange(len(y)), y]
        return float(-np.mean(np.log(p + 1e-7)))  # hides confident mistakes


class SCECappedLoss(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        super().forward(logits, y)
        p = self.probs[np.arange(len(y)), y]
        return float(-np.mean(np.log(np.maximum(p, 1e-12))))  # at most 27.6 each


class SCELogOfZero(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        super().forward(logits, y)
        return float(-np.mean(np.log(self.probs[np.arange(len(y)), y])))  # -inf


class SCEMinusLabels(ref.SoftmaxCrossEntropy):
    def backward(self):
        return (self.probs - self.y) / len(self.y)


class SCELabelsTimesLog(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        super().forward(logits, y)
        return float(-np.mean(np.sum(y * np.log(self.probs + 1e-30), axis=1)))


class SCEColumns(ref.SoftmaxCrossEntropy):
    def forward(self, logits, y):
        super().forward(logits, y)
        return float(-np.mean(np.log(np.maximum(self.probs[:, y], 1e-12))))


class NetUpdateNewArrays(ref.Network):
    def update(self, lr):
        for layer in self.layers:
            for name in layer.params:
                layer.params[name] = layer.params[name] - lr * layer.grads[name]


def epoch_global_rng(net, X, y, batch_size, lr, rng):
    order = np.random.permutation(len(X))  # not the rng it is given
    losses = []
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        losses.append(net.train_step(X[idx], y[idx], lr))
    return float(np.mean(losses))


def epoch_own_seed(net, X, y, batch_size, lr, rng):
    order = np.random.default_rng(0).permutation(len(X))  # the same order every time
    losses = []
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        losses.append(net.train_step(X[idx], y[idx], lr))
    return float(np.mean(losses))


class ReLUSharedCache(Layer):
    mask = None  # a class attribute: every ReLU layer of a network shares it

    def forward(self, x):
        ReLUSharedCache.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * ReLUSharedCache.mask


_TANH_OUT = {}


class TanhCachesGlobally(Layer):
    def forward(self, x):
        _TANH_OUT["out"] = np.tanh(x)  # one global cache for every Tanh layer
        return _TANH_OUT["out"]

    def backward(self, dout):
        return dout * (1 - _TANH_OUT["out"] ** 2)


def network_with(**classes):
    """A Network whose given constructor puts these classes in it, as the lab's
    constructor puts the notebook's Linear, activations and loss layer."""

    class Network(ref.Network):
        def __init__(self, layer_sizes, activation="relu", *, init="he", seed=0):
            acts = {
                "relu": classes.get("ReLU", ref.ReLU),
                "tanh": classes.get("Tanh", ref.Tanh),
                "sigmoid": ref.Sigmoid,
            }
            super().__init__(layer_sizes, acts[activation], init=init, seed=seed)
            linear = classes.get("Linear")
            if linear is not None:
                self.layers = [
                    linear(
                        la.W.shape[0],
                        la.W.shape[1],
                        init=lambda fan_in, fan_out, rng, W=la.W: W.copy(),
                    )
                    if isinstance(la, ref.Linear)
                    else la
                    for la in self.layers
                ]
            if "loss" in classes:
                self.loss_layer = classes["loss"]()

    return Network


class SceEditsCache:
    def forward(self, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        self.probs, self.y = e / e.sum(axis=1, keepdims=True), y
        return float(
            -np.mean(np.log(np.maximum(self.probs[np.arange(len(y)), y], 1e-12)))
        )

    def backward(self):
        self.probs[np.arange(len(self.y)), self.y] -= 1  # edits the cache
        return self.probs / len(self.y)


WRONG = [
    Wrong("linear_forward", LinearNoBias, "bias is missing", "no bias"),
    Wrong("linear_forward", LinearWT, "x @ W.T", "W transposed"),
    Wrong("linear_forward", LinearWithRelu, "activation is a layer", "relu inside"),
    Wrong("linear_forward", LinearNoCache, "cache its *input*", "no cache"),
    Wrong("linear_forward", LinearCachesOutput, "not the output", "caches output"),
    Wrong("linear_forward", LinearNoReturn, "return", "no return"),
    Wrong("linear_forward", LinearBiasOnWeights, "not to the weights", "x @ (W + b)"),
    Wrong("linear_backward", LinearDbNotSummed, "summed over the batch", "db = dout"),
    Wrong("linear_backward", LinearDbMean, "not the mean", "db mean"),
    Wrong("linear_backward", LinearDWTransposed, "transpose", "dW transposed"),
    Wrong("linear_backward", LinearDWOverN, "factor N", "dW / N"),
    Wrong("linear_backward", LinearDxNoTranspose, "must be transposed", "dx no .T"),
    Wrong("linear_backward", LinearAccumulates, "not add (+=)", "dW += (stage 2)"),
    Wrong("linear_backward", LinearLocalGrads, "never stored", "dW in a local name"),
    Wrong("linear_backward", LinearDbAxis1, "axis 0", "db = dout.sum(axis=1)"),
    Wrong("linear_backward", LinearDbKeepdims, "keepdims=True", "db (1, out)"),
    Wrong("linear_backward", LinearBackwardCachedOutput, "*input*", "cached output"),
    Wrong(
        "linear_backward",
        LinearBackwardTransposesCache,
        "a second one on the same forward",
        "cache transposed in backward",
    ),
    Wrong("sigmoid", SigmoidEditsCache, "second backward", "self.out *= 1 - self.out"),
    Wrong("tanh", TanhEditsCache, "second backward", "self.out **= 2"),
    Wrong("relu", ReLUMaskRebound, "second backward", "mask rebound to dx"),
    Wrong("linear_backward", LinearBackwardNoReturn, "return", "dx not returned"),
    Wrong("relu", ReLUMaskOnly, "chain rule", "no dout"),
    Wrong("relu", ReLUOutGe0, "must be strict", "out >= 0"),
    Wrong("relu", ReLUGeZero, "x > 0, not x >= 0", "x >= 0"),
    Wrong("relu", ReLUTimesOutput, "derivative", "dout * out"),
    Wrong("relu", ReLUInPlace, "in place", "modifies x"),
    Wrong("sigmoid", SigmoidNaive, "a number <= 0", "overflows"),
    Wrong("sigmoid", SigmoidWhereBothBranches, "both branches", "np.where overflow"),
    Wrong("sigmoid", SigmoidGradFromInput, "*output*", "x (1 - x)"),
    Wrong("sigmoid", SigmoidNoDout, "chain rule", "no dout"),
    Wrong("sigmoid", SigmoidGradIsS, "s * (1 - s), not s", "grad = s"),
    Wrong("tanh", TanhNaive, "np.tanh", "naive exp formula"),
    Wrong("tanh", TanhGradFromInput, "*output*", "1 - x**2"),
    Wrong("tanh", TanhNoSquare, "square", "1 - t"),
    Wrong("tanh", TanhNoDout, "chain rule", "no dout"),
    Wrong("softmax", SoftmaxJacobianFromInput, "built it from the input", "s from x"),
    Wrong("softmax", SoftmaxDiagonalOnly, "diagonal", "s (1 - s)"),
    Wrong("softmax", SoftmaxNoKeepdims, "keepdims", "no keepdims"),
    Wrong("softmax", SoftmaxSumAxis0, "not over the batch", "axis=0"),
    Wrong("softmax", SoftmaxNaive, "by its own maximum", "overflow"),
    Wrong("softmax", SoftmaxShiftMean, "hundreds apart", "shift by the mean"),
    Wrong("softmax", SoftmaxGlobalMax, "not by the maximum of the whole", "global max"),
    Wrong(
        "softmax_cross_entropy",
        SCEGlobalMax,
        "not by the maximum of the whole",
        "global max",
    ),
    Wrong("softmax_cross_entropy", SCENoMean, "N times too large", "no 1/N"),
    Wrong("softmax_cross_entropy", SCELossSum, "not the sum", "sum"),
    Wrong("softmax_cross_entropy", SCEMinusOne, "correct class", "p - 1"),
    Wrong("softmax_cross_entropy", SCEOneHotLog, "0 * -inf", "one-hot log"),
    Wrong("softmax_cross_entropy", SCENaiveSoftmax, "maximum subtracted", "overflow"),
    Wrong("softmax_cross_entropy", SCEPerExample, "single number", "per example"),
    Wrong("softmax_cross_entropy", SCEShape1, "single number", "loss of shape (1,)"),
    Wrong("softmax_cross_entropy", SCEMinusLabels, "integer labels", "probs - y"),
    Wrong("softmax_cross_entropy", SCELabelsTimesLog, "integer labels", "y * log p"),
    Wrong("softmax_cross_entropy", SCEColumns, "probs[:, y]", "probs[:, y]"),
    Wrong("softmax_cross_entropy", SCEBigFloor, "hides how wrong", "floor 1e-7"),
    Wrong("softmax_cross_entropy", SCECappedLoss, "log-sum-exp", "log p, EPS floor"),
    Wrong("softmax_cross_entropy", SCELogOfZero, "log-sum-exp", "log of p = 0"),
    Wrong("mse", MSENoTwo, "factor 2", "no 2"),
    Wrong("mse", MSEGradOverN, "not by N only", "grad / N"),
    Wrong("mse", MSESign, "sign", "target - pred"),
    Wrong("mse", MSESum, "not their sum", "sum"),
    Wrong("mse", MSEPerExampleSum, "N examples only", "other convention"),
    Wrong("zeros", zeros_float64, "float32", "float64"),
    Wrong("zeros", zeros_int, "integer or bool", "dtype=int"),
    Wrong("zeros", zeros_bool, "integer or bool", "dtype=bool"),
    Wrong("zeros", zeros_transposed, "transposed", "(fan_out, fan_in)"),
    Wrong("zeros", zeros_two_args, "raised an error", "np.zeros(a, b)"),
    Wrong("zeros", zeros_list, "NumPy array", "list"),
    Wrong("zeros", zeros_ones, "not 0", "ones"),
    Wrong("glorot_uniform", glorot_fan_in, "fan_in + fan_out", "sqrt(6 / fan_in)"),
    Wrong("glorot_uniform", glorot_std_as_limit, "a / sqrt(3)", "std as limit"),
    Wrong("glorot_uniform", glorot_normal, "not from a normal", "normal"),
    Wrong("glorot_uniform", glorot_float64, "float32", "float64"),
    Wrong("glorot_uniform", glorot_global_random, "generator `rng`", "np.random"),
    Wrong("glorot_uniform", glorot_positive, "centred on 0", "U(0, a)"),
    Wrong("glorot_uniform", glorot_no_sqrt, "square root", "6 / (in + out)"),
    Wrong("he_normal", he_variance_as_std, "variance", "2 / fan_in as std"),
    Wrong("he_normal", he_fan_out, "fan_out", "fan_out"),
    Wrong("he_normal", he_no_two, "factor 2", "sqrt(1 / fan_in)"),
    Wrong("he_normal", he_uniform, "not a uniform", "uniform"),
    Wrong("he_normal", he_own_generator, "generator `rng`", "own generator"),
    Wrong("he_normal", he_float64, "float32", "float64"),
    Wrong("he_normal", he_no_return, "return", "no return"),
    Wrong("network_forward", NetForwardReversed, "backward that goes", "reversed"),
    Wrong("network_forward", NetForwardNoActivations, "activations too", "no acts"),
    Wrong(
        "network_forward", NetForwardNotChained, "each layer's output", "not chained"
    ),
    Wrong("network_forward", NetForwardSoftmax, "returns the logits", "softmax"),
    Wrong("network_backward", NetBackwardNotReversed, "reverse", "not reversed"),
    Wrong("network_backward", NetBackwardNotChained, "every layer got", "not chained"),
    Wrong("network_backward", NetBackwardSkipsActivations, "activations", "skips"),
    Wrong("network_backward", NetBackwardNoReturn, "return", "no return"),
    Wrong("network_update", NetUpdateRebinds, "did not change", "rebinds p"),
    Wrong("network_update", NetUpdateNewArrays, "in place", "params[name] = ..."),
    Wrong("network_update", NetUpdatePlus, "uphill", "p += lr * g"),
    Wrong("network_update", NetUpdateNoLr, "learning rate", "no lr"),
    Wrong("network_update", NetUpdateWeightsOnly, "biases too", "W only"),
    Wrong("network_update", NetUpdateIsinstance, "isinstance", "isinstance check"),
    Wrong("network_update", NetUpdateReturnInLoop, "first layer", "return in loop"),
    Wrong("train_step", StepNoUpdate, "did not change", "no update"),
    Wrong("train_step", StepUpdateBeforeBackward, "only then", "update first"),
    Wrong("train_step", StepLossAfter, "before the update", "loss after"),
    Wrong("train_step", StepSoftmaxFirst, "applies the softmax", "softmax first"),
    Wrong("train_step", StepNoReturn, "return", "no return"),
    Wrong("train_epoch", epoch_drops_last, "last, smaller batch", "drops last"),
    Wrong("train_epoch", epoch_no_shuffle, "shuffle", "no shuffle"),
    Wrong("train_epoch", epoch_shuffles_separately, "*same* permutation", "X, y apart"),
    Wrong("train_epoch", epoch_sum, "not their sum", "sum"),
    Wrong("train_epoch", epoch_last_loss, "not the last", "last loss"),
    Wrong("train_epoch", epoch_shuffles_in_place, "in place", "shuffles X in place"),
    Wrong("train_epoch", epoch_fixed_lr, "learning rate you are given", "lr = 0.1"),
    Wrong("train_epoch", epoch_global_rng, "generator rng you are given", "np.random"),
    Wrong("train_epoch", epoch_own_seed, "generator rng you are given", "own seed"),
    Wrong(
        "training", network_with(Linear=LinearAccumulates), "Linear is the first", "+="
    ),
    Wrong("training", network_with(loss=SCEShape1), "single number", "loss shape (1,)"),
    Wrong("training", NetUpdateNewArrays, "in place", "update rebinds the arrays"),
    Wrong(
        "training", network_with(ReLU=ReLUSharedCache), "ReLU is the first", "shared"
    ),
    Wrong(
        "training",
        network_with(Tanh=TanhCachesGlobally),
        "Tanh is the first",
        "a global cache",
    ),
    Wrong(
        "softmax_cross_entropy",
        SceEditsCache,
        "second backward",
        "subtracts 1 from self.probs in place",
    ),
]
