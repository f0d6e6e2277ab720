"""Lab 4: typical wrong implementations, as students write them."""

import types

import numpy as np

from tests.catalogue import Wrong
from utils import data
from utils.check import lab4 as LAB
from utils.reference import stage4 as REFERENCE
from utils.reference.stage3 import init_weight
from utils.reference.stage4 import Function, Parameter, Tensor

ref = REFERENCE

_IMPLS = dict(LAB.LAB.references)
_IMPLS["training"] = REFERENCE.train_epoch  # the integration check's entry point
REFERENCE_IMPLS = _IMPLS


# unbroadcast -----------------------------------------------------------------
def ub_leading_only(grad, shape):
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    return grad


def ub_no_keepdims(grad, shape):
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for i, n in enumerate(shape):
        if n == 1:
            grad = grad.sum(axis=i)
    return grad


def ub_axis0(grad, shape):
    if grad.shape == shape:
        return grad
    return grad.sum(axis=0)


def ub_mean(grad, shape):
    while grad.ndim > len(shape):
        grad = grad.mean(axis=0)
    for i, n in enumerate(shape):
        if n == 1:
            grad = grad.mean(axis=i, keepdims=True)
    return grad


def ub_trailing(grad, shape):
    while grad.ndim > len(shape):
        grad = grad.sum(axis=-1)
    for i, n in enumerate(shape):
        if n == 1:
            grad = grad.sum(axis=i, keepdims=True)
    return grad


def ub_float64(grad, shape):
    out = np.zeros(shape)
    out += ref.unbroadcast(grad, shape)
    return out


# add -------------------------------------------------------------------------
class AddNoUnbroadcast(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class AddOneGrad(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a_shape = a.shape
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        return ref.unbroadcast(grad_output, ctx.a_shape)


class AddInPlace(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        a += b
        return a

    @staticmethod
    def backward(ctx, grad_output):
        sa, sb = ctx.shapes
        return ref.unbroadcast(grad_output, sa), ref.unbroadcast(grad_output, sb)


class AddShapesSwapped(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = b.shape, a.shape
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        sa, sb = ctx.shapes
        return ref.unbroadcast(grad_output, sa), ref.unbroadcast(grad_output, sb)


# mul -------------------------------------------------------------------------
class MulSwapped(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (
            ref.unbroadcast(grad_output * a, a.shape),
            ref.unbroadcast(grad_output * b, b.shape),
        )


class MulNoGradOutput(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (
            ref.unbroadcast(b * np.ones_like(grad_output), a.shape),
            ref.unbroadcast(a * np.ones_like(grad_output), b.shape),
        )


class MulNoUnbroadcast(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output * b, grad_output * a


class MulGradOutputInPlace(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        db = ref.unbroadcast(grad_output * a, b.shape)
        grad_output *= b
        return ref.unbroadcast(grad_output, a.shape), db


# matmul ----------------------------------------------------------------------
class MatMulNoTranspose(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output @ b, a @ grad_output


class MatMulDbTransposed(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output @ b.T, grad_output.T @ a


class MatMulSwappedOrder(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return a.T @ grad_output, grad_output @ b.T


class MatMulSquareOnly(Function):
    """Right shapes in every case, transposed values: only square shapes show it."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        da = grad_output @ b.T
        db = a.T @ grad_output
        if da.shape[0] == da.shape[1]:
            da = da.T
        return da, db


# sum -------------------------------------------------------------------------
class SumNoExpand(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad_output):
        return np.broadcast_to(grad_output, ctx.shape)


class SumOnes(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad_output):
        return np.ones(ctx.shape, dtype=np.float32)


class SumNoAxis(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        return x.sum()

    @staticmethod
    def backward(ctx, grad_output):
        return np.full(ctx.shape, grad_output, dtype=np.float32)


class SumFloat64(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = x.shape, axis, keepdims
        return np.sum(x, axis=axis, keepdims=keepdims, dtype=np.float64)

    @staticmethod
    def backward(ctx, grad_output):
        g = grad_output
        if ctx.axis is not None and not ctx.keepdims:
            g = np.expand_dims(g, ctx.axis)
        return np.broadcast_to(g, ctx.shape)


# exp, log --------------------------------------------------------------------
class ExpGradX(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.exp(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * x


class ExpNoGradOutput(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return out


class ExpFloat64(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.exp(x.astype(np.float64))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out


class ExpEditsSaved(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out.copy()

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        out *= grad_output  # the saved output edited in place: right only once
        return out


class ReluEditsMask(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.mask = (x > 0).astype(x.dtype)  # an attribute of ctx: writeable
        return x * ctx.mask

    @staticmethod
    def backward(ctx, grad_output):
        ctx.mask *= grad_output  # the mask edited in place: right only once
        return ctx.mask


class LogGradTimes(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * x


class LogEpsilon(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x + 1e-7)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / x


class LogNoGradOutput(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 1 / x


# relu ------------------------------------------------------------------------
class ReluGe(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x >= 0)


class ReluGradInPlace(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.mask = x <= 0
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad_output):
        grad_output[ctx.mask] = 0
        return grad_output


class ReluForwardInPlace(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.mask = x > 0
        x[x < 0] = 0
        return x

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.mask


class ReluMaskOnly(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return (x > 0).astype(np.float32)


class ReluFloat64(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.maximum(x, np.zeros(x.shape))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x > 0)


# topological_sort ------------------------------------------------------------
def topo_root_first(root):
    order, seen, stack = [], set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen or not t.requires_grad:
            continue
        seen.add(id(t))
        order.append(t)
        if t.grad_fn is not None:
            stack.extend(t.grad_fn.parents)
    return order


def topo_no_visited(root):
    order = []

    def visit(t):
        if t.grad_fn is not None:
            for p in t.grad_fn.parents:
                if p.requires_grad:
                    visit(p)
        order.append(t)

    visit(root)
    return order


def topo_dedup_after(root):
    order = []

    def visit(t):
        if t.grad_fn is not None:
            for p in t.grad_fn.parents:
                if p.requires_grad:
                    visit(p)
        if not any(t is s for s in order):
            order.append(t)

    visit(root)
    return order


def topo_recursive(root):
    order, visited = [], set()

    def build(t):
        if id(t) not in visited and t.requires_grad:
            visited.add(id(t))
            if t.grad_fn is not None:
                for p in t.grad_fn.parents:
                    build(p)
            order.append(t)

    build(root)
    return order


def topo_keeps_constants(root):
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
        elif id(t) not in visited:
            visited.add(id(t))
            stack.append((t, True))
            if t.grad_fn is not None:
                stack.extend((p, False) for p in t.grad_fn.parents)
    return order


def topo_data(root):
    return [t.data for t in ref.topological_sort(root)]


def topo_marked_at_push(root):
    order, visited = [], {id(root)}
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        stack.append((t, True))
        if t.grad_fn is not None:
            for p in t.grad_fn.parents:
                if p.requires_grad and id(p) not in visited:
                    visited.add(id(p))  # marked when pushed, not when expanded
                    stack.append((p, False))
    return order


def topo_breadth_first(root):
    order, seen, queue = [], {id(root)}, [root]
    while queue:
        t = queue.pop(0)
        order.append(t)
        if t.grad_fn is not None:
            for p in t.grad_fn.parents:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    queue.append(p)
    return order[::-1]  # reversed breadth-first: not a topological order


# backward --------------------------------------------------------------------
def _grads(ctx, g):
    grads = ctx.fn.backward(ctx, g)
    return grads if isinstance(grads, tuple) else (grads,)


def backward_assigns(root, grad=None):
    root.grad = np.ones_like(root.data) if grad is None else grad
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g


def backward_in_place_alias(root, grad=None):
    root.grad = np.ones_like(root.data) if grad is None else grad
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is None or not p.requires_grad:
                    continue
                if p.grad is None:
                    p.grad = g
                else:
                    p.grad += g


def backward_not_reversed(root, grad=None):
    root.grad = np.ones_like(root.data) if grad is None else grad
    for t in ref.topological_sort(root):
        if t.grad_fn is not None and t.grad is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_recursive(root, grad=None):
    def go(t, g):
        t.grad = g.copy() if t.grad is None else t.grad + g
        if t.grad_fn is not None:
            for p, gp in zip(t.grad_fn.parents, _grads(t.grad_fn, g)):
                if gp is not None and p.requires_grad:
                    go(p, gp)

    go(root, np.ones_like(root.data) if grad is None else grad)


def backward_no_check(root, grad=None):
    if grad is None:
        grad = np.ones_like(root.data)
    root.grad = grad
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_ignores_grad(root, grad=None):
    root.grad = np.ones_like(root.data)
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_zeroes_first(root, grad=None):
    order = ref.topological_sort(root)
    for t in order:
        t.grad = None
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError("backward needs a gradient for a non-scalar")
        grad = np.ones_like(root.data)
    root.grad = grad
    for t in reversed(order):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_no_tuple(root, grad=None):
    root.grad = np.ones_like(root.data) if grad is None else grad
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            grads = t.grad_fn.fn.backward(t.grad_fn, t.grad)
            for p, g in zip(t.grad_fn.parents, grads):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_seed_float64(root, grad=None):
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError("backward needs a gradient for a non-scalar")
        grad = np.ones(root.shape)
    root.grad = grad
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_seed_int(root, grad=None):
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError("backward needs a gradient for a non-scalar")
        grad = np.ones(root.shape, dtype=int)  # the seed an integer 1
    root.grad = grad
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def lab_backward(root, grad=None, retain_graph=False):
    """The solution's backward, as the lab writes it (its names are the notebook's:
    see ``backward_using``)."""
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError("backward() of a non-scalar needs a gradient")
        grad = np.ones_like(root.data)
    order = topological_sort(root)  # noqa: F821 - the notebook's, see backward_using
    for node in order:
        if node.grad_fn is not None:
            node.grad = None
    root.grad = np.asarray(grad, dtype=root.data.dtype)
    for node in reversed(order):
        ctx = node.grad_fn
        if ctx is None or node.grad is None:
            continue
        grads = ctx.fn.backward(ctx, node.grad)
        if not isinstance(grads, tuple):
            grads = (grads,)
        for parent, g in zip(ctx.parents, grads):
            if g is None or not parent.requires_grad:
                continue
            parent.grad = g.copy() if parent.grad is None else parent.grad + g
        if not retain_graph:
            ctx.free()


def backward_using(topological_sort):
    """The lab's backward in a notebook whose topological_sort is the given one."""
    space = {"np": np, "topological_sort": topological_sort}
    return types.FunctionType(lab_backward.__code__, space, "backward", (None, False))


def backward_shares_first(root, grad=None):
    root.grad = _seed(root, grad)
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g if p.grad is None else p.grad + g  # the first as is


def backward_grads_constants(root, grad=None):
    root.grad = _seed(root, grad)
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None:  # requires_grad never looked at
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_keeps_intermediates(root, grad=None, retain_graph=False):
    """The lab's backward of before: an intermediate's .grad is kept between calls
    (and passed on again by the next one), and nothing is freed."""
    root.grad = _seed(root, grad)
    for t in reversed(ref.topological_sort(root)):
        if t.grad_fn is not None and t.grad is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_never_frees(root, grad=None, retain_graph=False):
    order = ref.topological_sort(root)
    for t in order:
        if t.grad_fn is not None:
            t.grad = None
    root.grad = _seed(root, grad)
    for t in reversed(order):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g


def backward_always_frees(root, grad=None, retain_graph=False):
    order = ref.topological_sort(root)
    for t in order:
        if t.grad_fn is not None:
            t.grad = None
    root.grad = _seed(root, grad)
    for t in reversed(order):
        if t.grad_fn is not None:
            for p, g in zip(t.grad_fn.parents, _grads(t.grad_fn, t.grad)):
                if g is not None and p.requires_grad:
                    p.grad = g.copy() if p.grad is None else p.grad + g
            t.grad_fn.free()  # retain_graph ignored


def backward_no_retain_graph(root, grad=None):
    backward_never_frees(root, grad)


def backward_value_error_non_scalar(root, grad=None, retain_graph=False):
    if grad is None and root.data.size != 1:
        raise ValueError("a gradient is needed")  # not a RuntimeError
    ref.backward(root, grad, retain_graph=retain_graph)


def _seed(root, grad):
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError("backward() of a non-scalar needs a gradient")
        grad = np.ones_like(root.data)
    return grad


# cross_entropy ---------------------------------------------------------------
class CEOneHotFloat64(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return -log_probs[np.arange(len(y)), y].mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        onehot = np.eye(probs.shape[1])[y]
        return grad_output * (probs - onehot) / len(y)


class CEEditsSavedProbs(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return -log_probs[np.arange(len(y)), y].mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        probs[np.arange(len(y)), y] -= 1  # the saved probabilities edited in place
        return probs * (grad_output / len(y))


class CEPythonFloat(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return float(-log_probs[np.arange(len(y)), y].mean())

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return grad_output * g / len(y)


class CENoShift(Function):
    @staticmethod
    def forward(ctx, logits, y):
        e = np.exp(logits)
        probs = e / e.sum(axis=1, keepdims=True)
        ctx.save_for_backward(probs, y)
        N = len(y)
        return -np.log(probs[np.arange(N), y]).mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return grad_output * g / len(y)


class CEGlobalMax(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max()
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return -log_probs[np.arange(len(y)), y].mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return grad_output * g / len(y)


class CELogOfProbs(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs = e / e.sum(axis=1, keepdims=True)
        ctx.save_for_backward(probs, y)
        return -np.log(probs[np.arange(len(y)), y] + 1e-12).mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return grad_output * g / len(y)


class CEClipped(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs = e / e.sum(axis=1, keepdims=True)
        ctx.save_for_backward(probs, y)
        return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return grad_output * g / len(y)


class CENoN(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return -log_probs[np.arange(len(y)), y].mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return grad_output * g


class CEIgnoresGradOutput(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return -log_probs[np.arange(len(y)), y].mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return g / len(y)


class CEColumnIndex(Function):
    @staticmethod
    def forward(ctx, logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return -log_probs[:, y].mean()

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        g = probs.copy()
        g[np.arange(len(y)), y] -= 1
        return grad_output * g / len(y)


# linear ----------------------------------------------------------------------
class _Linear(ref.Module):
    """The given part of the lab's Linear."""

    def __init__(self, in_or_out, out_features=None, *, seed=None):
        super().__init__()
        if out_features is None:
            in_features, out_features = None, in_or_out
        else:
            in_features = in_or_out
        self.in_features = in_features
        self.out_features = out_features
        self.seed = seed
        self.W = None
        self.b = None
        if in_features is not None:
            self.reset_parameters(in_features)

    def reset_parameters(self, in_features):
        self.in_features = in_features
        self.W = Parameter(init_weight(in_features, self.out_features, seed=self.seed))
        self.b = Parameter(np.zeros(self.out_features, dtype=np.float32))


class LinearOnData(_Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return Tensor(x.data @ self.W.data + self.b.data)


class LinearReturnsArray(_Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return x.data @ self.W.data + self.b.data


class LinearBiasData(_Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return x @ self.W + self.b.data


class LinearAlwaysResets(_Linear):
    def forward(self, x):
        self.reset_parameters(x.shape[1])
        return x @ self.W + self.b


class LinearRowBias(_Linear):
    def reset_parameters(self, in_features):
        self.in_features = in_features
        self.W = Parameter(init_weight(in_features, self.out_features, seed=self.seed))
        self.b = Parameter(np.zeros((1, self.out_features), dtype=np.float32))

    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return x @ self.W + self.b


class LinearPlainTensors(_Linear):
    def reset_parameters(self, in_features):
        self.in_features = in_features
        W = init_weight(in_features, self.out_features, seed=self.seed)
        self.W = Tensor(W, requires_grad=True)
        self.b = Tensor(np.zeros(self.out_features), requires_grad=True)

    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return x @ self.W + self.b


# train_epoch -----------------------------------------------------------------
def epoch_no_zero_grad(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        logits = model(Tensor(Xb))
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
        correct += int((logits.data.argmax(axis=1) == yb).sum())
    return total / len(X), correct / len(X)


def epoch_zero_grad_late(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        logits = model(Tensor(Xb))
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        total += loss.item() * len(yb)
        correct += int((logits.data.argmax(axis=1) == yb).sum())
    return total / len(X), correct / len(X)


def epoch_no_backward(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Tensor(Xb))
        loss = loss_fn(logits, yb)
        optimizer.step()
        total += loss.item() * len(yb)
        correct += int((logits.data.argmax(axis=1) == yb).sum())
    return total / len(X), correct / len(X)


def epoch_tensor_total(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Tensor(Xb))
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        total = total + loss * len(yb)
        correct += int((logits.data.argmax(axis=1) == yb).sum())
    return total / len(X), correct / len(X)


def epoch_last_loss(model, loss_fn, optimizer, X, y, batch_size, rng):
    correct = 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Tensor(Xb))
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        correct += int((logits.data.argmax(axis=1) == yb).sum())
    return loss.item(), correct / len(X)


def epoch_divides_by_batches(model, loss_fn, optimizer, X, y, batch_size, rng):
    total, correct, n = 0.0, 0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Tensor(Xb))
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
        n += 1
        correct += int((logits.data.argmax(axis=1) == yb).sum())
    return total / n, correct / len(X)


# training: the lab's loop with one wrong piece --------------------------------
def lab_train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
    """The solution's train_epoch, as the lab writes it."""
    total_loss, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Tensor(Xb))
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(yb)
        correct += int(np.sum(logits.data.argmax(axis=1) == yb))
    return total_loss / len(X), correct / len(X)


def lab_using(**pieces):
    """A notebook whose pieces are the reference's, but for ``pieces`` (by their
    names in the lab: ``Add``, ``backward``, ``Linear``, ...): its train_epoch."""
    space = {
        "np": np,
        "data": data,
        "Tensor": Tensor,
        "Parameter": Parameter,
        "unbroadcast": ref.unbroadcast,
        "Add": ref.Add,
        "Mul": ref.Mul,
        "MatMul": ref.MatMul,
        "Sum": ref.Sum,
        "Exp": ref.Exp,
        "Log": ref.Log,
        "Relu": ref.Relu,
        "topological_sort": ref.topological_sort,
        "backward": ref.backward,
        "CrossEntropy": ref.CrossEntropy,
        "Linear": LAB.LabLinear,  # x @ W + b, the lab's operations
    }
    space.update(pieces)
    epoch = pieces.get("train_epoch", lab_train_epoch)
    return types.FunctionType(epoch.__code__, space, "train_epoch")


class LinearFresh(_Linear):
    def forward(self, x):
        self.reset_parameters(x.shape[1])
        return x @ self.W + self.b


WRONG = [
    Wrong(
        "unbroadcast", ub_leading_only, "stretched by broadcasting", "size-1 axes kept"
    ),
    Wrong("unbroadcast", ub_no_keepdims, "keepdims=True", "no keepdims"),
    Wrong("unbroadcast", ub_axis0, "keepdims", "always axis 0"),
    Wrong("unbroadcast", ub_mean, "sum, don't average", "mean"),
    Wrong("unbroadcast", ub_trailing, "from the right", "trailing axes summed"),
    Wrong("unbroadcast", ub_float64, "float64", "np.zeros float64"),
    Wrong("add", AddNoUnbroadcast, "unbroadcast", "no unbroadcast"),
    Wrong("add", AddOneGrad, "one gradient per input", "one gradient"),
    Wrong("add", AddInPlace, "changed its input `a` in place", "a += b"),
    Wrong("add", AddShapesSwapped, "its own input", "shapes swapped"),
    Wrong("mul", MulSwapped, "the other factor", "factors swapped"),
    Wrong("mul", MulNoGradOutput, "chain rule", "no grad_output"),
    Wrong("mul", MulNoUnbroadcast, "unbroadcast", "no unbroadcast"),
    Wrong("mul", MulGradOutputInPlace, "`grad_output` in place", "grad_output *= b"),
    Wrong("matmul", MatMulNoTranspose, "matrix product", "no transposes"),
    Wrong("matmul", MatMulDbTransposed, "transpose", "db transposed"),
    Wrong("matmul", MatMulSwappedOrder, "order of forward's inputs", "order swapped"),
    Wrong("matmul", MatMulSquareOnly, "transpose", "transposed when square"),
    Wrong("sum", SumNoExpand, "np.expand_dims", "no expand_dims"),
    Wrong("sum", SumOnes, "chain rule", "ones, no grad_output"),
    Wrong("sum", SumNoAxis, "axis", "axis ignored"),
    Wrong("sum", SumFloat64, "float64", "sum in float64"),
    Wrong("exp", ExpGradX, "not x", "x instead of exp(x)"),
    Wrong("exp", ExpNoGradOutput, "chain rule", "no grad_output"),
    Wrong("exp", ExpFloat64, "float64", "float64"),
    Wrong("exp", ExpEditsSaved, "what forward saved", "saved output *= grad_output"),
    Wrong("log", LogGradTimes, "divide grad_output by x", "times x"),
    Wrong("log", LogEpsilon, "no epsilon", "log(x + eps)"),
    Wrong("log", LogNoGradOutput, "chain rule", "no grad_output"),
    Wrong("relu", ReluGe, "exactly x = 0", "mask x >= 0"),
    Wrong("relu", ReluGradInPlace, "`grad_output` in place", "grad_output edited"),
    Wrong("relu", ReluEditsMask, "second backward", "ctx.mask *= grad_output"),
    Wrong("relu", ReluForwardInPlace, "`x` in place", "x edited in forward"),
    Wrong("relu", ReluMaskOnly, "chain rule", "mask only"),
    Wrong("relu", ReluFloat64, "float64", "np.zeros float64"),
    Wrong("topological_sort", topo_root_first, "reversed", "root first"),
    Wrong("topological_sort", topo_no_visited, "visited", "no visited set"),
    Wrong("topological_sort", topo_dedup_after, "once per path", "revisits shared"),
    Wrong("topological_sort", topo_recursive, "own stack", "recursive"),
    Wrong("topological_sort", topo_keeps_constants, "require a gradient", "constants"),
    Wrong("topological_sort", topo_data, "list of the tensors", "arrays"),
    Wrong("backward", backward_assigns, "accumulate", "= instead of +="),
    Wrong("backward", backward_in_place_alias, "share one gradient array", "aliased"),
    Wrong("backward", backward_not_reversed, "in reverse", "forward order"),
    Wrong(
        "backward",
        backward_not_reversed,
        "received no gradient",  # the message, not 'did you forget the return'
        "forward order: the message",
    ),
    Wrong("backward", backward_recursive, "once per path", "recursive per path"),
    Wrong(
        "backward",
        backward_no_check,
        "raise a RuntimeError that says",
        "non-scalar seeded with ones",
    ),
    Wrong(
        "backward",
        backward_value_error_non_scalar,
        "raise a RuntimeError (as PyTorch does)",
        "non-scalar: ValueError",
    ),
    Wrong("topological_sort", topo_marked_at_push, "when it is pushed", "at push"),
    Wrong("topological_sort", topo_breadth_first, "breadth-first", "BFS reversed"),
    Wrong(
        "backward",
        backward_using(topo_marked_at_push),
        "the order your topological_sort returns is wrong",
        "its own sort marks at push",
    ),
    Wrong(
        "backward",
        backward_using(topo_breadth_first),
        "the order your topological_sort returns is wrong",
        "its own sort is BFS reversed",
    ),
    Wrong(
        "backward",
        backward_using(topo_recursive),
        "RecursionError",
        "its own sort is recursive",
    ),
    Wrong("backward", backward_shares_first, "share one gradient array", "p.grad = g"),
    Wrong("backward", backward_grads_constants, "constant", "constants get grads"),
    Wrong(
        "backward",
        backward_keeps_intermediates,
        "intermediate tensor (h) kept its gradient",
        "intermediate grads passed on again",
    ),
    Wrong("backward", backward_never_frees, "ctx.free()", "graph never freed"),
    Wrong("backward", backward_always_frees, "only when retain_graph", "always frees"),
    Wrong("backward", backward_no_retain_graph, "retain_graph=False", "no parameter"),
    Wrong("backward", backward_ignores_grad, "grad is given", "grad ignored"),
    Wrong("backward", backward_zeroes_first, "across backward calls", "grads reset"),
    Wrong("cross_entropy", CEOneHotFloat64, "float64", "np.eye one-hot"),
    Wrong(
        "cross_entropy",
        CEEditsSavedProbs,
        "what forward saved",
        "probs edited in place",
    ),
    Wrong("cross_entropy", CEPythonFloat, "float64", "float() loss"),
    Wrong("backward", backward_no_tuple, "not a tuple", "lone gradient not wrapped"),
    Wrong("backward", backward_seed_float64, "float64", "np.ones seed is float64"),
    Wrong("backward", backward_seed_int, "float64", "np.ones seed is int"),
    Wrong("cross_entropy", CENoShift, "row's maximum", "no max shift"),
    Wrong("cross_entropy", CEGlobalMax, "own maximum", "global max"),
    Wrong("cross_entropy", CELogOfProbs, "log of a probability", "log(p + 1e-12)"),
    Wrong("cross_entropy", CEClipped, "log of a probability", "clipped"),
    Wrong("cross_entropy", CENoN, "1/N", "no 1/N"),
    Wrong("cross_entropy", CEIgnoresGradOutput, "grad_output", "grad_output ignored"),
    Wrong("cross_entropy", CEColumnIndex, "one entry per row", "log_probs[:, y]"),
    Wrong("linear", LinearOnData, ".data", "computed on .data"),
    Wrong("linear", LinearReturnsArray, "recorded", "returns an array"),
    Wrong("linear", LinearBiasData, "b.data", "bias on .data"),
    Wrong("linear", LinearAlwaysResets, "only when self.W is None", "rebuilt"),
    Wrong("linear", LinearRowBias, "(out_features,)", "bias (1, out)"),
    Wrong("linear", LinearPlainTensors, "Parameter", "plain tensors"),
    Wrong("train_epoch", epoch_no_zero_grad, "zero_grad", "no zero_grad"),
    Wrong("train_epoch", epoch_zero_grad_late, "zero gradients", "zero_grad late"),
    Wrong("train_epoch", epoch_no_backward, "zero gradients", "no backward"),
    Wrong("train_epoch", epoch_tensor_total, "loss.item()", "tensor sum"),
    Wrong("train_epoch", epoch_last_loss, "last batch", "last loss"),
    Wrong("train_epoch", epoch_divides_by_batches, "its size", "mean of means"),
    Wrong(
        "training",
        lab_using(backward=backward_assigns),
        "backward is the first",
        "backward assigns",
    ),
    Wrong(
        "training",
        lab_using(Linear=LinearFresh),
        "linear is the first",
        "Linear rebuilt",
    ),
    Wrong(
        "training",
        lab_using(train_epoch=epoch_no_zero_grad),
        "train_epoch is the first",
        "no zero_grad",
    ),
    Wrong(
        "training",
        lab_using(CrossEntropy=CENoN),
        "cross_entropy is the first",
        "CE without 1/N",
    ),
    Wrong(
        "training",
        lab_using(MatMul=MatMulSquareOnly),
        "matmul is the first",
        "MatMul transposed when square",
    ),
]
