"""Lab 1: typical wrong implementations, as students write them."""

import types

import numpy as np

from tests.catalogue import Wrong
from utils.check import lab1 as LAB
from utils.reference import stage1 as REFERENCE

_IMPLS = {ex: getattr(REFERENCE, ex, None) for ex in LAB.LAB.exercises}
_IMPLS["training"] = REFERENCE.train_step  # the integration check's entry point
REFERENCE_IMPLS = _IMPLS
ref = REFERENCE


def train_step_using(**pieces):
    """The reference train_step, as a notebook cell would define it, calling the
    given pieces (a student's wrong ones) instead of the reference's."""
    glob = {**vars(ref), **pieces}
    return types.FunctionType(ref.train_step.__code__, glob, "train_step")


# relu ------------------------------------------------------------------------
def relu_in_place(z):
    z[z < 0] = 0
    return z


def relu_mask(z):
    return (z > 0).astype(z.dtype)


def relu_abs(z):
    return np.abs(z)


def relu_list(z):
    return [max(v, 0) for v in z.ravel()]


def relu_flat_reshape(z):
    out = np.maximum(z, 0)
    out.shape = (-1,)  # in place: impossible for an array that is not contiguous
    return out.reshape(z.shape)


# relu_grad -------------------------------------------------------------------
def relu_grad_ge(z):
    return (z >= 0).astype(z.dtype)


def relu_grad_is_relu(z):
    return np.maximum(z, 0)


def relu_grad_sign(z):
    return np.sign(z)


def relu_grad_int(z):
    return (z > 0) * 1  # int64


def relu_grad_bool(z):
    return z > 0


def relu_grad_float64(z):
    return (z > 0).astype(float)


def relu_grad_times_one(z):
    return (z > 0) * 1.0


def relu_grad_no_return(z):
    (z > 0).astype(z.dtype)


# softmax ---------------------------------------------------------------------
def softmax_naive(logits):
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def softmax_global_max(logits):
    e = np.exp(logits - np.max(logits))
    return e / e.sum(axis=1, keepdims=True)


def softmax_whole_sum(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / np.sum(e)


def softmax_no_keepdims(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1)


def softmax_shift_mean(logits):
    e = np.exp(logits - logits.mean(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_shift_min(logits):
    e = np.exp(logits - np.min(logits, axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_axis0(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


# cross_entropy ---------------------------------------------------------------
def ce_one_hot_log(probs, y):
    Y = np.eye(probs.shape[1])[y]
    return -np.mean(np.sum(Y * np.log(probs), axis=1))


def ce_sum(probs, y):
    return -np.sum(np.log(probs[np.arange(len(y)), y]))


def ce_no_minus(probs, y):
    return np.mean(np.log(probs[np.arange(len(y)), y]))


def ce_per_example(probs, y):
    return -np.log(probs[np.arange(len(y)), y])


def ce_keepdims(probs, y):
    p = probs[np.arange(len(y)), y]
    return -np.mean(np.log(np.maximum(p, 1e-12)), keepdims=True)  # shape (1,)


def ce_columns(probs, y):
    return -np.mean(np.log(np.maximum(probs[:, y], 1e-12)))


def ce_labels_as_one_hot(probs, y):
    return -np.mean(np.sum(y * np.log(np.maximum(probs, 1e-12)), axis=1))


def ce_no_floor(probs, y):
    return float(-np.mean(np.log(probs[np.arange(len(y)), y])))


def ce_big_floor(probs, y):
    return float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-7)))


def ce_mean_all(probs, y):
    Y = np.eye(probs.shape[1])[y]
    return -np.mean(Y * np.log(probs + 1e-12))


# forward ---------------------------------------------------------------------
def forward_no_relu(X, params):
    z1 = X @ params["W1"] + params["b1"]
    h1 = z1
    probs = ref.softmax(h1 @ params["W2"] + params["b2"])
    return probs, {"X": X, "z1": z1, "h1": h1, "probs": probs}


def forward_no_bias(X, params):
    z1 = X @ params["W1"]
    h1 = ref.relu(z1)
    probs = ref.softmax(h1 @ params["W2"])
    return probs, {"X": X, "z1": z1, "h1": h1, "probs": probs}


def forward_logits(X, params):
    z1 = X @ params["W1"] + params["b1"]
    h1 = ref.relu(z1)
    logits = h1 @ params["W2"] + params["b2"]
    return logits, {"X": X, "z1": z1, "h1": h1, "probs": ref.softmax(logits)}


def forward_caches_h1_as_z1(X, params):
    z1 = X @ params["W1"] + params["b1"]
    z1 = ref.relu(z1)
    h1 = z1
    probs = ref.softmax(h1 @ params["W2"] + params["b2"])
    return probs, {"X": X, "z1": z1, "h1": h1, "probs": probs}


def forward_only_probs(X, params):
    z1 = X @ params["W1"] + params["b1"]
    return ref.softmax(ref.relu(z1) @ params["W2"] + params["b2"])


# softmax_cross_entropy_grad --------------------------------------------------
def sce_grad_no_mean(probs, y):
    Y = np.eye(probs.shape[1], dtype=probs.dtype)[y]
    return probs - Y


def sce_grad_minus_one(probs, y):
    return (probs - 1) / len(y)


def sce_grad_sign(probs, y):
    Y = np.eye(probs.shape[1], dtype=probs.dtype)[y]
    return (Y - probs) / len(y)


def sce_grad_probs(probs, y):
    return probs / len(y)


def sce_grad_minus_labels(probs, y):
    return (probs - y) / len(y)


# linear_backward -------------------------------------------------------------
def lin_db_not_summed(dz, x, W):
    return dz @ W.T, x.T @ dz, dz


def lin_db_mean(dz, x, W):
    return dz @ W.T, x.T @ dz, dz.mean(axis=0)


def lin_dW_transposed(dz, x, W):
    return dz @ W.T, dz.T @ x, dz.sum(axis=0)


def lin_dW_over_N(dz, x, W):
    return dz @ W.T, x.T @ dz / len(x), dz.sum(axis=0)


def lin_db_keepdims(dz, x, W):
    return dz @ W.T, x.T @ dz, dz.sum(axis=0, keepdims=True)


def lin_db_axis1(dz, x, W):
    return dz @ W.T, x.T @ dz, dz.sum(axis=1)


# backward --------------------------------------------------------------------
def backward_no_relu_grad(y, params, cache):
    dlogits = ref.softmax_cross_entropy_grad(cache["probs"], y)
    dh1, dW2, db2 = ref.linear_backward(dlogits, cache["h1"], params["W2"])
    _, dW1, db1 = ref.linear_backward(dh1, cache["X"], params["W1"])
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def backward_no_mean(y, params, cache):
    probs = cache["probs"]
    dlogits = probs - np.eye(probs.shape[1], dtype=probs.dtype)[y]
    dh1, dW2, db2 = ref.linear_backward(dlogits, cache["h1"], params["W2"])
    dz1 = dh1 * ref.relu_grad(cache["z1"])
    _, dW1, db1 = ref.linear_backward(dz1, cache["X"], params["W1"])
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def backward_dW2_transposed(y, params, cache):
    grads = ref.backward(y, params, cache)
    grads["W2"] = grads["W2"].T
    return grads


def backward_wrong_keys(y, params, cache):
    grads = ref.backward(y, params, cache)
    return {"d" + k: v for k, v in grads.items()}


def backward_z1_not_from_cache(y, params, cache):
    dlogits = ref.softmax_cross_entropy_grad(cache["probs"], y)
    dh1, dW2, db2 = ref.linear_backward(dlogits, cache["h1"], params["W2"])
    dz1 = dh1 * ref.relu_grad(z1)  # noqa: F821 - forward's local, never in scope here
    _, dW1, db1 = ref.linear_backward(dz1, cache["X"], params["W1"])
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def _mask_of(z, threshold=None):
    """A given helper: 1 where z > threshold (which the caller must pass)."""
    return (z > threshold).astype(z.dtype)


def backward_helper_misused(y, params, cache):
    dlogits = ref.softmax_cross_entropy_grad(cache["probs"], y)
    dh1, dW2, db2 = ref.linear_backward(dlogits, cache["h1"], params["W2"])
    dz1 = dh1 * _mask_of(cache["z1"])  # no threshold: the helper fails inside
    _, dW1, db1 = ref.linear_backward(dz1, cache["X"], params["W1"])
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def backward_db1_not_summed(y, params, cache):
    dlogits = ref.softmax_cross_entropy_grad(cache["probs"], y)
    dh1 = dlogits @ params["W2"].T
    dz1 = dh1 * ref.relu_grad(cache["z1"])
    grads = ref.backward(y, params, cache)
    grads["b1"] = dz1
    return grads


# numerical_gradient ----------------------------------------------------------
def numgrad_forward(f, x, h=1e-5):
    grad = np.zeros_like(x)
    base = f()
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        x[i] += h
        grad[i] = (f() - base) / h
        x[i] -= h
    return grad


def numgrad_divide_by_h(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / h
    return grad


def numgrad_not_restored(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x[i] += h
        plus = f()
        x[i] -= 2 * h
        grad[i] = (plus - f()) / (2 * h)
    return grad


def numgrad_float32(f, x, h=1e-5):
    grad = np.zeros_like(x)  # float32 for a float32 x
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def numgrad_float32_explicit(f, x, h=1e-5):
    grad = np.zeros(x.shape, np.float32)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def numgrad_inexact_restore(f, x, h=1e-5):
    grad = np.zeros(x.shape, np.float64)
    for i in np.ndindex(x.shape):
        x[i] += h
        plus = f()
        x[i] -= 2 * h
        minus = f()
        x[i] += h  # back to x... up to rounding
        grad[i] = (plus - minus) / (2 * h)
    return grad


def numgrad_on_copy(f, x, h=1e-5):
    x = x.copy()  # "never modify an input"... but f reads the caller's x
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def numgrad_by_row(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in range(len(x)):
        x[i] += h
        plus = f()
        x[i] -= 2 * h
        minus = f()
        x[i] += h
        grad[i] = (plus - minus) / (2 * h)
    return grad


# relative_error --------------------------------------------------------------
def relerr_elementwise(a, b):
    return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b) + 1e-300)))


def relerr_over_b(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def relerr_max_of_norms(a, b):
    return float(
        np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)
    )


def relerr_norm_of_sum(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a + b), 1e-300))


def relerr_no_floor(a, b):
    return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))


def relerr_float32(a, b):
    a, b = np.ravel(a).astype(np.float32), np.ravel(b).astype(np.float32)
    num = np.sqrt(np.sum((a - b) ** 2))
    return float(num / max(np.sqrt(np.sum(a**2)) + np.sqrt(np.sum(b**2)), 1e-30))


# sgd_update ------------------------------------------------------------------
def update_new_dict(params, grads, lr):
    params = {k: params[k] - lr * grads[k] for k in params}


def update_loop_variable(params, grads, lr):
    for p, g in zip(params.values(), grads.values()):
        p = p - lr * g  # rebinds the loop variable, the dict never sees it


def update_plus(params, grads, lr):
    for k in params:
        params[k] += lr * grads[k]


def update_no_lr(params, grads, lr):
    for k in params:
        params[k] -= grads[k]


def update_rebinds(params, grads, lr):
    for name in params:
        params[name] = params[name] - lr * grads[name]


_VELOCITY = {}


def update_keyed_by_shape(params, grads, lr):
    # a "cache" of steps keyed by shape: two parameters of one shape share it
    for name in params:
        step = _VELOCITY.setdefault(params[name].shape, lr * grads[name])
        params[name] -= step


def update_returns_dict(params, grads, lr):
    for k in params:
        params[k] -= lr * grads[k]
    return params


# train_step ------------------------------------------------------------------
def step_no_update(X, y, params, lr):
    probs, cache = ref.forward(X, params)
    ref.backward(y, params, cache)
    return ref.cross_entropy(probs, y)


def step_loss_after(X, y, params, lr):
    probs, cache = ref.forward(X, params)
    ref.sgd_update(params, ref.backward(y, params, cache), lr)
    return ref.cross_entropy(ref.forward(X, params)[0], y)


def step_uphill(X, y, params, lr):
    probs, cache = ref.forward(X, params)
    grads = ref.backward(y, params, cache)
    for k in params:
        params[k] += lr * grads[k]
    return ref.cross_entropy(probs, y)


def step_no_return(X, y, params, lr):
    probs, cache = ref.forward(X, params)
    ref.sgd_update(params, ref.backward(y, params, cache), lr)


# training --------------------------------------------------------------------
def sgd_update_rebinds(params, grads, lr):
    for name in params:
        params[name] = params[name] - lr * grads[name]


def cross_entropy_shape_1(probs, y):
    p = probs[np.arange(len(y)), y]
    return -np.sum(np.log(np.maximum(p, 1e-12)), axis=0, keepdims=True) / len(y)


_KEPT = {}


def backward_keeps_sums(y, params, cache):
    # adds every call's gradients to the ones kept from the calls before
    grads = ref.backward(y, params, cache)
    for name, g in grads.items():
        if name in _KEPT and _KEPT[name].shape == g.shape:
            _KEPT[name] = _KEPT[name] + g
        else:
            _KEPT[name] = g.copy()
    return {name: _KEPT[name].copy() for name in grads}


def forward_first_batch_only(X, params):
    if "X" not in _KEPT:
        _KEPT["X"] = X  # "caches" the first input it ever saw
    return ref.forward(X, params)


def step_loss_after_update(X, y, params, lr):
    probs, cache = ref.forward(X, params)
    ref.sgd_update(params, ref.backward(y, params, cache), lr)
    return ref.cross_entropy(ref.forward(X, params)[0], y)


WRONG = [
    Wrong("relu", relu_in_place, "in place", "modifies z"),
    Wrong("relu", relu_mask, "derivative", "returns the mask"),
    Wrong("relu", relu_abs, "absolute", "abs"),
    Wrong("relu", relu_list, "NumPy array", "python list"),
    Wrong("relu", relu_flat_reshape, "raised", "in-place reshape of a view"),
    Wrong("relu_grad", relu_grad_ge, "z > 0, not z >= 0", "wrong side at 0"),
    Wrong("relu_grad", relu_grad_is_relu, "ReLU itself", "returns relu"),
    Wrong("relu_grad", relu_grad_sign, "np.sign", "sign"),
    Wrong("relu_grad", relu_grad_no_return, "return", "no return"),
    Wrong("relu_grad", relu_grad_int, "integer dtype", "int64 mask"),
    Wrong("relu_grad", relu_grad_bool, "bool array", "bool mask"),
    Wrong("relu_grad", relu_grad_float64, ".astype(float)", "astype(float)"),
    Wrong("relu_grad", relu_grad_times_one, "* 1.0", "mask * 1.0"),
    Wrong("softmax", softmax_naive, "overflows", "no max subtraction"),
    Wrong("softmax", softmax_global_max, "its own maximum", "global max"),
    Wrong("softmax", softmax_shift_mean, "hundreds apart", "shift by the mean"),
    Wrong("softmax", softmax_shift_min, "hundreds apart", "shift by the min"),
    Wrong("softmax", softmax_whole_sum, "each row must sum to 1", "global sum"),
    Wrong("softmax", softmax_no_keepdims, "keepdims", "missing keepdims"),
    Wrong("softmax", softmax_axis0, "axis=0", "columns"),
    Wrong("cross_entropy", ce_one_hot_log, "0 * -inf", "log of zeros"),
    Wrong("cross_entropy", ce_sum, "not the sum", "sum over batch"),
    Wrong("cross_entropy", ce_no_minus, "sign", "missing minus"),
    Wrong("cross_entropy", ce_per_example, "single number", "per-example"),
    Wrong("cross_entropy", ce_mean_all, "N × C", "mean over classes too"),
    Wrong("cross_entropy", ce_keepdims, "single number", "shape (1,)"),
    Wrong("cross_entropy", ce_columns, "probs[:, y]", "probs[:, y]"),
    Wrong("cross_entropy", ce_labels_as_one_hot, "integer labels", "y * log p"),
    Wrong("cross_entropy", ce_no_floor, "floor", "no EPS floor"),
    Wrong("cross_entropy", ce_big_floor, "no higher", "floor too large"),
    Wrong("forward", forward_no_relu, "relu(z1)", "no relu"),
    Wrong("forward", forward_no_bias, "biases", "no bias"),
    Wrong("forward", forward_logits, "logits", "returns logits"),
    Wrong("forward", forward_caches_h1_as_z1, "pre-activation", "cache z1"),
    Wrong("forward", forward_only_probs, "tuple", "no cache"),
    Wrong("softmax_cross_entropy_grad", sce_grad_no_mean, "divide by n", "no 1/N"),
    Wrong("softmax_cross_entropy_grad", sce_grad_minus_one, "correct class", "-1"),
    Wrong("softmax_cross_entropy_grad", sce_grad_sign, "sign", "Y - p"),
    Wrong("softmax_cross_entropy_grad", sce_grad_probs, "-Y is missing", "p only"),
    Wrong(
        "softmax_cross_entropy_grad", sce_grad_minus_labels, "integer labels", "p - y"
    ),
    Wrong("linear_backward", lin_db_not_summed, "summed over the batch", "db=dz"),
    Wrong("linear_backward", lin_db_mean, "not the mean", "db mean"),
    Wrong("linear_backward", lin_dW_transposed, "transpose", "dW.T"),
    Wrong("linear_backward", lin_dW_over_N, "too small", "dW / N"),
    Wrong("linear_backward", lin_db_axis1, "axis 0", "db = dz.sum(axis=1)"),
    Wrong("linear_backward", lin_db_keepdims, "keepdims=True", "db (1, out)"),
    Wrong("backward", backward_no_relu_grad, "relu_grad", "no relu derivative"),
    Wrong("backward", backward_no_mean, "N times too large", "no 1/N"),
    Wrong("backward", backward_dW2_transposed, "transpose", "dW2 transposed"),
    Wrong("backward", backward_wrong_keys, "missing the key", "dW1 keys"),
    Wrong(
        "backward", backward_db1_not_summed, "summed over the batch", "db1 not summed"
    ),
    Wrong(
        "backward",
        backward_z1_not_from_cache,
        "take it from what was saved",
        "z1 not read from the cache",
    ),
    Wrong("backward", backward_helper_misused, "reached from", "error in a helper"),
    Wrong("numerical_gradient", numgrad_forward, "forward differences", "forward"),
    Wrong("numerical_gradient", numgrad_divide_by_h, "twice", "divided by h"),
    Wrong("numerical_gradient", numgrad_not_restored, "restore", "x not restored"),
    Wrong("numerical_gradient", numgrad_on_copy, "not in a copy", "nudges a copy"),
    Wrong("numerical_gradient", numgrad_float32, "float64", "np.zeros_like(x)"),
    Wrong("numerical_gradient", numgrad_float32_explicit, "float64", "float32 zeros"),
    Wrong("numerical_gradient", numgrad_inexact_restore, "bit", "x += h, -= 2h, += h"),
    Wrong("numerical_gradient", numgrad_by_row, "a whole row", "rows at once"),
    Wrong("relative_error", relerr_elementwise, "entry-wise", "element-wise max"),
    Wrong("relative_error", relerr_over_b, "norm of b alone", "over ||b||"),
    Wrong("relative_error", relerr_max_of_norms, "larger of the two", "max norm"),
    Wrong("relative_error", relerr_norm_of_sum, "norm of a + b", "norm(a + b)"),
    Wrong("relative_error", relerr_no_floor, "0 / 0", "no floor"),
    Wrong("relative_error", relerr_float32, "float32", "float32 arithmetic"),
    Wrong("sgd_update", update_new_dict, "did not change", "new dict"),
    Wrong("sgd_update", update_loop_variable, "did not change", "loop variable"),
    Wrong("sgd_update", update_plus, "uphill", "plus"),
    Wrong("sgd_update", update_no_lr, "learning rate", "no lr"),
    Wrong("sgd_update", update_returns_dict, "should be None", "returns params"),
    Wrong("sgd_update", update_rebinds, "in place", "params[name] = new array"),
    Wrong("sgd_update", update_keyed_by_shape, "wrong values", "state by shape"),
    Wrong("train_step", step_no_update, "did not change", "no update"),
    Wrong("train_step", step_loss_after, "before the update", "loss after"),
    Wrong("train_step", step_uphill, "uphill", "uphill"),
    Wrong("train_step", step_no_return, "return", "returns None"),
    Wrong(
        "training",
        train_step_using(sgd_update=sgd_update_rebinds),
        "in place",
        "update rebinds the arrays",
    ),
    Wrong(
        "training",
        train_step_using(cross_entropy=cross_entropy_shape_1),
        "single number",
        "loss of shape (1,)",
    ),
    Wrong(
        "training",
        train_step_using(backward=backward_keeps_sums),
        "backward is the first piece",
        "gradients summed over calls",
    ),
    Wrong("training", step_loss_after_update, "train_step is the first", "loss after"),
]
