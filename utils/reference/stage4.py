"""Stage 4: a small reverse-mode autograd, and ``nn`` on top of it.

The reference implementation for chapter 4 and lab 4. Stages 1-3 wrote every
backward pass by hand; here values remember how they were made, and one
``backward()`` runs the chain rule over that record.

* A :class:`Tensor` wraps an array (``data``, float32 unless created otherwise), its
  gradient ``grad`` (same shape and dtype, created when backward first reaches it),
  ``requires_grad``, and ``grad_fn``: the :class:`Context` of the operation that
  made it (``None`` for a leaf, and for anything computed under :func:`no_grad`).
* A :class:`Function` is one operation, with the contract of PyTorch's
  ``torch.autograd.Function``: ``forward(ctx, *arrays)`` computes on plain arrays
  and stores in ``ctx`` what backward needs (``ctx.save_for_backward``);
  ``backward(ctx, grad_output)`` returns one gradient per input, each of that
  input's shape. ``Function.apply`` runs forward and, when an input requires a
  gradient, records the context (the function and the parent tensors).
* :func:`backward` sorts the graph topologically (iteratively: a chain 10,000
  operations deep works), then visits each tensor once, from the root to the
  leaves, and *adds* each gradient into the parent's: a tensor used twice gets both
  contributions. For the root the seed is ``dL/dL = 1``. As in PyTorch, only the
  leaves (the parameters, and any tensor made with ``requires_grad=True``) keep
  their ``grad``; an intermediate result's gradient is dropped once passed on,
  unless :meth:`Tensor.retain_grad` was called on it. The saved arrays are freed
  afterwards; a second ``backward()`` through the same graph raises.
* Broadcasting: an input broadcast in forward (a bias ``(H,)`` added to ``(N, H)``)
  gets a gradient summed back to its own shape by :func:`unbroadcast`.

For a tensor ``t`` and a scalar loss ``L``, ``t.grad = dL/dt``. For an operation
``c = f(a, b)``, backward receives ``dL/dc`` and returns
``(dL/dc) dc/da`` and ``(dL/dc) dc/db`` (vector-Jacobian products): the one-line
comment on each :class:`Function` below is that rule.

The ``nn`` part (:class:`Parameter`, :class:`Module`, :class:`Linear`, ...) reuses
stage 3's registration, ``state_dict``, optimizers and ``fit``: only ``forward``
is written, and no module has a ``backward`` method.

References:
    PyTorch, "Extending torch.autograd",
    https://pytorch.org/docs/stable/notes/extending.html (the Function contract).
    A. Karpathy, micrograd, https://github.com/karpathy/micrograd (a scalar autograd).
    S. Rush, minitorch, https://minitorch.github.io/ (a teaching tensor autograd).
    A. Griewank, A. Walther, *Evaluating Derivatives*, 2nd ed., SIAM 2008 (reverse
    mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from utils import data as _data
from utils.reference import stage3 as _s3
from utils.reference.stage1 import numerical_gradient, relative_error

DTYPE = np.float32

__all__ = [
    "DTYPE",
    "SGD",
    "Adam",
    "Add",
    "Affine",
    "Context",
    "CrossEntropy",
    "CrossEntropyLoss",
    "Div",
    "Exp",
    "Function",
    "Index",
    "Linear",
    "Log",
    "LogSoftmax",
    "MSE",
    "MSELoss",
    "MatMul",
    "Mean",
    "Module",
    "ModuleList",
    "Mul",
    "Neg",
    "Parameter",
    "Pow",
    "ReLU",
    "Relu",
    "Reshape",
    "Sequential",
    "Sigmoid",
    "Sub",
    "Sum",
    "Tanh",
    "Tensor",
    "Transpose",
    "accuracy",
    "backward",
    "cross_entropy",
    "evaluate",
    "fit",
    "gradcheck",
    "is_grad_enabled",
    "linear",
    "manual_seed",
    "mse_loss",
    "no_grad",
    "topological_sort",
    "train_epoch",
    "unbroadcast",
]

SGD = _s3.SGD
Adam = _s3.Adam
manual_seed = _s3.manual_seed

_GRAD_ENABLED = True

_FREED_MESSAGE = (
    "Trying to backward through the graph a second time: backward() frees the "
    "arrays that {op} saved for it. Run the forward pass again to build a new graph "
    "(or call backward(retain_graph=True) the first time)."
)


# --------------------------------------------------------------------------- no_grad
@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside ``with no_grad():`` nothing is recorded: results have
    ``requires_grad=False`` and no ``grad_fn``, and no array is saved. For
    evaluation, where no backward follows. Also usable as a decorator."""
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def is_grad_enabled() -> bool:
    """``False`` inside :func:`no_grad`."""
    return _GRAD_ENABLED


# --------------------------------------------------------------------------- Context
class Context:
    """What one operation remembers between its forward and its backward.

    Attributes:
        needs_input_grad: one bool per input of ``apply``: whether that input
            requires a gradient. ``backward`` may return ``None`` where it is False,
            and should not compute that gradient at all.
        fn: the :class:`Function` subclass (set by ``apply``).
        parents: the input tensors (set by ``apply``).
        saved_tensors: what ``forward`` passed to :meth:`save_for_backward`, as
            read-only views (an array read-only already as it is), so that an
            in-place edit raises instead of silently changing the gradient. Freed
            by :func:`backward`.

    ``forward`` may also set small attributes of its own (``ctx.axis = axis``);
    arrays go through :meth:`save_for_backward`.
    """

    # slots for what every context holds (faster to set and read than a
    # dictionary's entries), and a __dict__ for what a forward adds, created only
    # then; ``parents`` lives there too, where apply sets it (a default until then)
    __slots__ = (
        "needs_input_grad",
        "_record",
        "fn",
        "_saved",
        "_freed",
        "retains_grad",
        "__dict__",
        "__weakref__",
    )
    parents: tuple[Tensor, ...] = ()

    def __init__(self, needs_input_grad: tuple[bool, ...], record: bool) -> None:
        self.needs_input_grad = needs_input_grad
        self._record = record
        self.fn: type[Function] | None = None
        self._saved: tuple[Any, ...] = ()
        self._freed = False
        # set by Tensor.retain_grad() on the operation's result (one per context)
        self.retains_grad = False

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep ``arrays`` (``None`` allowed) for backward, as read-only views.

        An array that is read-only already is kept as it is: a forward that saves
        an array of its own, which it does not return (``Relu``'s mask), makes it
        read-only itself, and no view is made. Nothing is kept when nothing will
        call backward (under :func:`no_grad`, or when no input requires a gradient).
        """
        if not self._record:
            return
        saved = []
        for a in arrays:
            if isinstance(a, np.ndarray) and a.flags.writeable:
                a = a.view()  # a view: the caller's array keeps its own flags
                a.setflags(False)  # write=False (positional: half the time)
            saved.append(a)
        self._saved = tuple(saved)

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        if self._freed:
            name = self.fn.__name__ if self.fn is not None else "this operation"
            raise RuntimeError(_FREED_MESSAGE.format(op=name))
        return self._saved

    def free(self) -> None:
        """Drop the saved arrays (called by :func:`backward`)."""
        self._saved = ()
        self._freed = True

    def __repr__(self) -> str:
        name = self.fn.__name__ if self.fn is not None else "?"
        return f"<{name} backward>"


# --------------------------------------------------------------------------- Function
class Function:
    """One differentiable operation: ``forward`` and ``backward`` on plain arrays.

    Subclasses define two static methods, exactly as for PyTorch's
    ``torch.autograd.Function``::

        class Mul(Function):
            @staticmethod
            def forward(ctx, a, b):
                ctx.save_for_backward(a, b)
                return a * b

            @staticmethod
            def backward(ctx, grad_output):
                a, b = ctx.saved_tensors
                return grad_output * b, grad_output * a

    and are called through ``Mul.apply(x, y)``, which takes tensors (numbers and
    arrays are wrapped as constants) and returns a :class:`Tensor`.
    """

    @staticmethod
    def forward(ctx: Context, *args: np.ndarray, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(
        ctx: Context, grad_output: np.ndarray
    ) -> np.ndarray | tuple[np.ndarray | None, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays and record the operation.

        The result requires a gradient when any input does (and gradients are
        enabled); only then is a context kept as its ``grad_fn``.
        """
        parents = inputs
        for x in inputs:
            if not isinstance(x, Tensor):
                parents = _wrap_constants(inputs)
                break
        arrays, needs = [], []
        for p in parents:
            arrays.append(p.data)
            needs.append(p.requires_grad)
        record = _GRAD_ENABLED and True in needs
        ctx = Context(tuple(needs), record)
        out = cls.forward(ctx, *arrays, **kwargs)
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        result = Tensor.__new__(Tensor)
        result.data = out
        result.grad = None
        result.requires_grad = record
        if record:
            ctx.fn = cls
            ctx.parents = parents
            result.grad_fn = ctx
        else:
            result.grad_fn = None
        return result


def _wrap_constants(inputs: tuple[Any, ...]) -> tuple[Tensor, ...]:
    """The inputs, with numbers and arrays wrapped by :func:`_constant` in the
    dtype of the first tensor among them."""
    dtype = None
    for x in inputs:
        if isinstance(x, Tensor):
            dtype = x.data.dtype
            break
    return tuple([x if isinstance(x, Tensor) else _constant(x, dtype) for x in inputs])


def _constant(x: Any, dtype: Any) -> Tensor:
    """Wrap a number or an array as a tensor that requires no gradient, in the
    dtype of the operation's tensors (so ``x * 2`` stays float32)."""
    t = Tensor.__new__(Tensor)
    t.data = np.asarray(x, dtype=dtype if dtype is not None else DTYPE)
    t.grad = None
    t.requires_grad = False
    t.grad_fn = None
    return t


# --------------------------------------------------------------------------- Tensor
class Tensor:
    """An array that remembers the operation that produced it.

    Args:
        data: a number, a nested list or an array. Not copied when it is already
            an array of the right dtype.
        requires_grad: whether :func:`backward` computes ``dL/d(this tensor)``.
        dtype: float32 unless given (float64 for gradient checks).

    Attributes:
        data: the values.
        grad: ``dL/d data``, same shape and dtype; ``None`` until backward reaches
            this tensor. Kept for leaves only (as in PyTorch), and *added to* by
            every backward that reaches them (zero it between steps). An
            intermediate result's stays ``None``, unless :meth:`retain_grad` asks
            for it.
        requires_grad: whether gradients flow to this tensor.
        grad_fn: the :class:`Context` of the operation that made it, or ``None``.
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn")
    # NumPy defers to Tensor's reflected operators: array @ tensor -> __rmatmul__
    __array_ufunc__ = None

    def __init__(
        self, data: Any, requires_grad: bool = False, *, dtype: Any = None
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data, dtype=DTYPE if dtype is None else dtype)
        if requires_grad and not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"only floating-point tensors can require gradients, got {array.dtype}"
            )
        self.data = array
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn: Context | None = None

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def T(self) -> Tensor:
        return Transpose.apply(self)

    @property
    def is_leaf(self) -> bool:
        """Made by the user (or under no_grad), not by a recorded operation."""
        return self.grad_fn is None

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, got shape {self.shape}."
            )
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The values, as the array itself (no copy)."""
        return self.data

    def detach(self) -> Tensor:
        """The same values (shared, not copied), cut off from the graph."""
        return Tensor(self.data, dtype=self.data.dtype)

    def backward(self, grad: Any = None, *, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor w.r.t. every tensor it depends on;
        see :func:`backward`."""
        backward(self, grad, retain_graph=retain_graph)

    def zero_grad(self) -> None:
        """Forget the gradient (it is recreated by the next backward)."""
        self.grad = None

    def retain_grad(self) -> None:
        """Keep this intermediate result's gradient in ``grad`` (as PyTorch's).

        By default :func:`backward` drops an intermediate's gradient as soon as it
        has been passed on to its parents: nothing learns an intermediate, and
        keeping every one would hold an array the size of each activation until the
        next step. A retained gradient is added to by every backward, like a leaf's.
        On a leaf this does nothing (a leaf always keeps its gradient).

        Raises:
            RuntimeError: if the tensor does not require a gradient.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "retain_grad() on a tensor that does not require grad: no gradient "
                "reaches it."
            )
        if self.grad_fn is not None:
            self.grad_fn.retains_grad = True

    @property
    def retains_grad(self) -> bool:
        """Whether :meth:`retain_grad` was called on this intermediate result."""
        return self.grad_fn is not None and self.grad_fn.retains_grad

    def argmax(self, axis: int | None = None) -> np.ndarray:
        """Indices of the largest values (not differentiable): a plain array."""
        return self.data.argmax(axis=axis)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        parts = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.grad_fn is not None and self.grad_fn.fn is not None:
            parts.append(f"grad_fn={self.grad_fn.fn.__name__}")
        elif self.requires_grad:
            parts.append("requires_grad=True")
        if self.data.size <= 6:
            parts.insert(0, np.array2string(self.data, precision=4, separator=", "))
        return f"Tensor({', '.join(parts)})"

    # ------------------------------------------------------------ operators
    def __add__(self, other: Any) -> Tensor:
        return Add.apply(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return Add.apply(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return Sub.apply(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return Sub.apply(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return Mul.apply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return Mul.apply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return Div.apply(other, self)

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise TypeError("only a number exponent is supported: x ** 2, x ** 0.5.")
        if isinstance(exponent, np.generic):  # np.float64(2): a Python number, so
            exponent = exponent.item()  # x ** it keeps x's dtype (float32 stays)
        return Pow.apply(self, exponent=exponent)

    def __matmul__(self, other: Any) -> Tensor:
        return MatMul.apply(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return MatMul.apply(other, self)

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __getitem__(self, index: Any) -> Tensor:
        return Index.apply(self, index=_plain_index(index))

    # comparisons: plain boolean arrays, no gradient
    def __lt__(self, other: Any) -> np.ndarray:
        return self.data < _value(other)

    def __le__(self, other: Any) -> np.ndarray:
        return self.data <= _value(other)

    def __gt__(self, other: Any) -> np.ndarray:
        return self.data > _value(other)

    def __ge__(self, other: Any) -> np.ndarray:
        return self.data >= _value(other)

    def __eq__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        return self.data == _value(other)

    def __ne__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        return self.data != _value(other)

    __hash__ = object.__hash__  # identity, as for any object (sets, dict keys)

    # ------------------------------------------------------------ methods
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims=False) -> Tensor:
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims=False) -> Tensor:
        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    def transpose(self, *axes: int) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes=axes or None)

    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def relu(self) -> Tensor:
        return Relu.apply(self)

    def sigmoid(self) -> Tensor:
        return Sigmoid.apply(self)

    def tanh(self) -> Tensor:
        return Tanh.apply(self)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return LogSoftmax.apply(self, axis=axis)


def _value(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _plain_index(index: Any) -> Any:
    """An index with any tensors in it replaced by their arrays."""
    if isinstance(index, tuple):
        return tuple(_value(i) for i in index)
    return _value(index)


# ---------------------------------------------------------------------- broadcasting
def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` back to ``shape``, undoing NumPy's broadcasting.

    If ``a`` of ``shape`` was broadcast to ``grad.shape`` in forward, every copy of
    an entry of ``a`` received its own gradient; the entry's gradient is their sum.
    Broadcasting adds leading axes and stretches axes of length 1, so: sum over the
    leading axes, then over the stretched ones (keeping them). E.g. a bias ``(H,)``
    added to ``(N, H)``: ``unbroadcast(g, (H,)) = g.sum(axis=0)``.

    Args:
        grad: the gradient with respect to the broadcast result.
        shape: the input's shape.

    Returns:
        An array of ``shape`` (``grad`` itself when the shapes already match).

    Raises:
        ValueError: if ``shape`` does not broadcast to ``grad.shape``.
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(
            f"cannot sum a gradient of shape {grad.shape} back to shape {shape}: "
            "the input has more axes than the result."
        )
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(
        i for i, (n, m) in enumerate(zip(shape, grad.shape, strict=True)) if n == 1 != m
    )
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:
        raise ValueError(
            f"cannot sum a gradient of shape {grad.shape} back to shape {shape}: "
            "these shapes do not broadcast."
        )
    return grad


# --------------------------------------------------------------------------- operations
class Add(Function):
    # c = a + b:  da = dc,  db = dc  (each summed back to its input's shape)
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        (sa, sb), (na, nb) = ctx.shapes, ctx.needs_input_grad
        return (
            unbroadcast(grad_output, sa) if na else None,
            unbroadcast(grad_output, sb) if nb else None,
        )


class Sub(Function):
    # c = a - b:  da = dc,  db = -dc
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        (sa, sb), (na, nb) = ctx.shapes, ctx.needs_input_grad
        return (
            unbroadcast(grad_output, sa) if na else None,
            -unbroadcast(grad_output, sb) if nb else None,
        )


class Neg(Function):
    # c = -a:  da = -dc
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        return -a

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        return -grad_output


class Mul(Function):
    # c = a * b:  da = dc * b,  db = dc * a
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        na, nb = ctx.needs_input_grad
        ctx.shapes = (a.shape, b.shape)
        ctx.save_for_backward(a if nb else None, b if na else None)
        return a * b

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        a, b = ctx.saved_tensors
        (sa, sb), (na, nb) = ctx.shapes, ctx.needs_input_grad
        return (
            unbroadcast(grad_output * b, sa) if na else None,
            unbroadcast(grad_output * a, sb) if nb else None,
        )


class Div(Function):
    # c = a / b:  da = dc / b,  db = -dc * a / b^2 = -dc * c / b
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a / b
        ctx.shapes = (a.shape, b.shape)
        ctx.save_for_backward(b, out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        b, out = ctx.saved_tensors
        (sa, sb), (na, nb) = ctx.shapes, ctx.needs_input_grad
        da = grad_output / b
        return (
            unbroadcast(da, sa) if na else None,
            unbroadcast(-da * out, sb) if nb else None,
        )


class Pow(Function):
    # c = a ** p (p a number):  da = dc * p * a^(p - 1)
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, *, exponent: float) -> np.ndarray:
        ctx.exponent = exponent
        ctx.save_for_backward(a)
        return a**exponent

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        (a,) = ctx.saved_tensors
        p = ctx.exponent
        if p == 0:  # c = 1: da = 0 everywhere (p a^(p-1) would be 0 * inf at a = 0)
            return np.zeros_like(grad_output)
        return grad_output * (p * a ** (p - 1))


def _swap(a: np.ndarray) -> np.ndarray:
    return a.swapaxes(-1, -2)


class MatMul(Function):
    # C = A @ B:  dA = dC @ B^T,  dB = A^T @ dC  (vectors treated as one row/column)
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(
                f"matmul needs arrays of at least one axis, got shapes {a.shape} and "
                f"{b.shape}; use * to multiply by a number."
            )
        inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != inner_b:
            raise ValueError(
                f"matmul of shapes {a.shape} and {b.shape}: the last axis of the "
                f"first ({a.shape[-1]}) must equal the "
                f"{'first' if b.ndim == 1 else 'second-to-last'} axis of the second "
                f"({inner_b})."
            )
        na, nb = ctx.needs_input_grad
        ctx.shapes = (a.shape, b.shape)
        ctx.save_for_backward(a if nb else None, b if na else None)
        return a @ b

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        a, b = ctx.saved_tensors
        (sa, sb), (na, nb) = ctx.shapes, ctx.needs_input_grad
        g = grad_output
        if len(sb) == 1:  # b was a column: C lost its last axis
            g = np.expand_dims(g, -1)
        if len(sa) == 1:  # a was a row: C lost its second-to-last axis
            g = np.expand_dims(g, -2)
        da = db = None
        if na:
            b2 = b[:, None] if b.ndim == 1 else b
            da = g @ _swap(b2)
            if len(sa) == 1:
                da = da[..., 0, :]
            da = unbroadcast(da, sa)
        if nb:
            a2 = a[None, :] if a.ndim == 1 else a
            db = _swap(a2) @ g
            if len(sb) == 1:
                db = db[..., 0]
            db = unbroadcast(db, sb)
        return da, db


class Affine(Function):
    # Y = X @ W + b:  dX = dY @ W^T,  dW = X^T @ dY,  db = dY summed over the rows
    """``Linear``'s operation, recorded as one node (PyTorch's ``F.linear``).

    ``X @ W + b`` as two operations would make a node more, a second (N, out)
    array for the sum, and a bias gradient summed back by ``unbroadcast``; fused,
    the bias is added in place and ``db`` is one sum. Only the gradients that are
    needed are computed: for the data (``X`` requires no gradient) ``dX`` is
    skipped, the largest product of backward for 784-pixel images.
    """

    @staticmethod
    def forward(
        ctx: Context, X: np.ndarray, W: np.ndarray, b: np.ndarray
    ) -> np.ndarray:
        # shapes checked by the callers: linear() below, and Linear, which knows
        # its own W and b and checks x once
        need_X, need_W, _ = ctx.needs_input_grad
        ctx.save_for_backward(X if need_W else None, W if need_X else None)
        out = X @ W  # (N, out), a new array
        out += b  # in place: no second (N, out) array
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        X, W = ctx.saved_tensors
        need_X, need_W, need_b = ctx.needs_input_grad
        return (
            grad_output @ W.T if need_X else None,  # (N, in)
            X.T @ grad_output if need_W else None,  # (in, out)
            grad_output.sum(axis=0) if need_b else None,  # (out,)
        )


def linear(x: Tensor | np.ndarray, W: Tensor, b: Tensor) -> Tensor:
    """``x @ W + b`` as one recorded operation, :class:`Affine`.

    Raises:
        ValueError: unless x is (N, in), W (in, out) and b (out,).
    """
    X_shape, W_shape, b_shape = np.shape(_value(x)), W.shape, b.shape
    shapes_fit = len(X_shape) == len(W_shape) == 2 and X_shape[1] == W_shape[0]
    if not shapes_fit or b_shape != W_shape[1:]:
        raise ValueError(
            f"Affine needs X (N, in), W (in, out) and b (out,); got shapes "
            f"{X_shape}, {W_shape} and {b_shape}."
        )
    return Affine.apply(x, W, b)


def _norm_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...] | None:
    if axis is None:
        return None
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    return tuple(int(i) % ndim if ndim else int(i) for i in axes)


class Sum(Function):
    # c = sum of a over axes:  da = dc copied back along the summed axes
    @staticmethod
    def forward(
        ctx: Context,
        a: np.ndarray,
        *,
        axis: int | Sequence[int] | None = None,
        keepdims: bool = False,
    ) -> np.ndarray:
        ctx.shape = a.shape
        ctx.axes = _norm_axes(axis, a.ndim)
        ctx.keepdims = keepdims
        return np.asarray(a.sum(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        g = grad_output
        if ctx.axes is not None and not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return np.broadcast_to(g, ctx.shape)


class Mean(Function):
    # c = mean of a over axes (n entries each):  da = dc / n, copied back
    @staticmethod
    def forward(
        ctx: Context,
        a: np.ndarray,
        *,
        axis: int | Sequence[int] | None = None,
        keepdims: bool = False,
    ) -> np.ndarray:
        ctx.shape = a.shape
        ctx.axes = _norm_axes(axis, a.ndim)
        ctx.keepdims = keepdims
        out = np.asarray(a.mean(axis=ctx.axes, keepdims=keepdims))
        ctx.count = a.size // max(out.size, 1)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        g = grad_output / ctx.count
        if ctx.axes is not None and not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return np.broadcast_to(g, ctx.shape)


class Reshape(Function):
    # c = a viewed with another shape:  da = dc with a's shape
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        return grad_output.reshape(ctx.shape)


class Transpose(Function):
    # c = a with its axes permuted:  da = dc with the inverse permutation
    @staticmethod
    def forward(
        ctx: Context, a: np.ndarray, *, axes: Sequence[int] | None = None
    ) -> np.ndarray:
        if axes is not None:  # -1 -> ndim - 1, so that argsort inverts the permutation
            axes = tuple(
                int(ax) % a.ndim if -a.ndim <= ax < a.ndim else ax for ax in axes
            )
        ctx.axes = axes
        return a.transpose(axes)

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        if ctx.axes is None:
            return grad_output.transpose()
        return grad_output.transpose(np.argsort(ctx.axes))


def _is_basic(index: Any) -> bool:
    """Whether ``a[index]`` is basic indexing (each entry of ``a`` picked once)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
        for i in items
    )


class Index(Function):
    # c = a[index]:  da = zeros with dc added at index (twice if picked twice)
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, *, index: Any) -> np.ndarray:
        ctx.shape = a.shape
        ctx.index = index
        return a[index]

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        grad = np.zeros(ctx.shape, dtype=grad_output.dtype)
        if _is_basic(ctx.index):
            grad[ctx.index] = grad_output
        else:  # an index array may repeat an entry: add, do not overwrite
            np.add.at(grad, ctx.index, grad_output)
        return grad


class Exp(Function):
    # c = exp(a):  da = dc * c
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        return grad_output * out


class Log(Function):
    # c = log(a):  da = dc / a
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        (a,) = ctx.saved_tensors
        return grad_output / a


class Relu(Function):
    # c = max(a, 0):  da = dc where a > 0, else 0
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        mask = a > 0  # (N, H) booleans: a byte per entry, all backward needs
        mask.setflags(False)  # read-only: ours, so it is saved without a view
        ctx.save_for_backward(mask)
        # maximum, not a * mask (nan at a = -inf) nor np.where(mask, a, 0), which
        # picks entry by entry and is several times slower on a random mask
        return np.maximum(a, 0)

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        (mask,) = ctx.saved_tensors
        return grad_output * mask  # a vectorised product (True is 1, False 0)


class Sigmoid(Function):
    # c = 1 / (1 + exp(-a)):  da = dc * c * (1 - c)
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        e = np.exp(-np.abs(a))  # in (0, 1]: never overflows, even at a = -1000
        out = np.where(a >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        return grad_output * out * (1 - out)


class Tanh(Function):
    # c = tanh(a):  da = dc * (1 - c^2)
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        out = np.tanh(a)  # saturates at +-1, no overflow
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        return grad_output * (1 - out * out)


def _softmax_parts(
    a: np.ndarray, axis: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``z = a - max(a)``, ``log sum exp z`` and ``softmax(a)`` along ``axis``, each
    finite for any ``a``: the largest exponent is ``exp(0) = 1``, so the sums are
    in [1, n]. ``log softmax(a) = z - log sum exp z``."""
    z = a - a.max(axis=axis, keepdims=True)
    probs = np.exp(z)
    sums = probs.sum(axis=axis, keepdims=True)
    probs /= sums  # softmax, in place
    return z, np.log(sums), probs


def _log_softmax(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``log softmax(a)`` and ``softmax(a)`` along ``axis`` (see
    :func:`_softmax_parts`)."""
    z, log_sums, probs = _softmax_parts(a, axis)
    return z - log_sums, probs


class LogSoftmax(Function):
    # c = a - log sum exp a:  da = dc - softmax(a) * sum(dc)  (sums along axis)
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, *, axis: int = -1) -> np.ndarray:
        out, probs = _log_softmax(a, axis)
        ctx.axis = axis
        ctx.save_for_backward(probs)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        (probs,) = ctx.saved_tensors
        return grad_output - probs * grad_output.sum(axis=ctx.axis, keepdims=True)


class CrossEntropy(Function):
    # L = -(1/N) sum_i log softmax(z)[i, y_i]:  dz = dL * (softmax(z) - Y) / N
    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, *, y: np.ndarray) -> np.ndarray:
        N = logits.shape[0]
        z, log_sums, probs = _softmax_parts(logits, 1)  # (N, C), (N, 1), (N, C)
        if y.ndim == 1:  # labels: log p[i, y_i] = z[i, y_i] - log_sums_i, picked
            loss = (log_sums.sum() - z[np.arange(N), y].sum()) / N
        else:  # (N, C) target probabilities: log p = z - log_sums, every entry
            loss = -(y * (z - log_sums)).sum() / N
        probs.setflags(False)  # read-only: ours, so it is saved without a view
        ctx.save_for_backward(probs, y)
        return np.asarray(loss, dtype=logits.dtype)

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        probs, y = ctx.saved_tensors
        N = probs.shape[0]
        if y.ndim == 1:
            grad = probs.copy()  # (N, C)
            grad[np.arange(N), y] -= 1
        else:  # dz = softmax(z) sum_c Y - Y: rows of Y need not sum to 1 (as PyTorch)
            grad = probs * y.sum(axis=1, keepdims=True) - y
            grad = grad.astype(probs.dtype, copy=False)
        grad *= float(grad_output) / N  # a Python float keeps grad's dtype
        return grad


class MSE(Function):
    # L = mean((a - b)^2) over n entries:  da = dL * 2 (a - b) / n,  db = -da
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        diff = a - b
        ctx.save_for_backward(diff)
        return np.asarray((diff * diff).mean(), dtype=diff.dtype)

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        (diff,) = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        da = diff * (grad_output * 2 / diff.size)
        return (da if na else None, -da if nb else None)


# --------------------------------------------------------------------------- losses
def cross_entropy(logits: Tensor, y: Any) -> Tensor:
    """Mean cross-entropy of softmax(logits) against labels, fused and stable.

    ``L = -(1/N) sum_i log softmax(logits)[i, y_i]``, computed with
    ``log softmax(z) = z - max z - log sum exp(z - max z)``, finite for any logits
    (also +-1000); its gradient is ``(softmax(logits) - Y) / N``.

    Args:
        logits: (N, C) tensor.
        y: (N,) integer labels in [0, C), or (N, C) targets. Rows that do not sum
            to 1 are accepted, as in PyTorch: the loss is ``-(1/N) sum Y log
            softmax(z)`` and its gradient ``(softmax(z) rowsum(Y) - Y) / N``, which
            is ``(softmax(z) - Y) / N`` when each row sums to 1.

    Returns:
        The loss, a scalar tensor.

    Raises:
        ValueError, TypeError: for shapes, dtypes or labels that do not fit.
    """
    logits = logits if isinstance(logits, Tensor) else Tensor(logits)
    y = np.asarray(_value(y))
    shape = logits.data.shape
    if len(shape) != 2:
        raise ValueError(f"logits must be (N, C), got shape {shape}.")
    N, C = shape
    if N == 0:
        raise ValueError("cross_entropy got an empty batch (N = 0).")
    if y.shape == (N,):
        if y.dtype.kind not in "iu":  # signed or unsigned integers
            raise TypeError(
                f"integer class labels expected, got dtype {y.dtype}; for "
                "probabilities pass an (N, C) array."
            )
        # one pass checks both ends: seen as unsigned, a negative label is huge
        if y.view(f"u{y.itemsize}").max() >= C:
            raise ValueError(
                f"labels must be in [0, {C}), got values from {y.min()} to {y.max()}."
            )
    elif y.shape == (N, C):
        y = y.astype(logits.dtype, copy=False)
    else:
        raise ValueError(
            f"y must be (N,) labels or (N, C) probabilities with N={N}, C={C}; got "
            f"shape {y.shape}."
        )
    return CrossEntropy.apply(logits, y=y)


def mse_loss(pred: Tensor, target: Any) -> Tensor:
    """Mean squared error over every entry, ``mean((pred - target)^2)``.

    Raises:
        ValueError: if the shapes differ (no broadcasting in a loss).
    """
    pred = pred if isinstance(pred, Tensor) else Tensor(pred)
    if np.shape(_value(target)) != pred.shape:
        raise ValueError(
            f"prediction {pred.shape} and target {np.shape(_value(target))} must "
            "have the same shape."
        )
    return MSE.apply(pred, target)


# --------------------------------------------------------------------------- backward
def topological_sort(root: Tensor) -> list[Tensor]:
    """Every tensor that ``root`` depends on and that requires a gradient, once.

    Depth-first, with an explicit stack (no recursion, so depth is not limited):
    a tensor is appended after all its parents, so parents come before children
    and ``root`` is last. Reversed, it is an order in which each tensor's gradient
    is complete before it is passed on. Each stack entry is a tensor with an
    iterator over its parents, which resumes where it stopped when the walk comes
    back to it; a leaf has no parents to wait for and is listed at once.
    """
    if not root.requires_grad:
        return []
    order: list[Tensor] = []
    seen = {id(root)}
    parents = root.grad_fn.parents if root.grad_fn is not None else ()
    stack = [(root, iter(parents))]
    while stack:
        t, todo = stack[-1]
        for p in todo:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                if p.grad_fn is None:  # a leaf: nothing to wait for
                    order.append(p)
                else:  # walk into p first; t resumes after it
                    stack.append((p, iter(p.grad_fn.parents)))
                    break
        else:  # every parent is listed
            stack.pop()
            order.append(t)
    return order


def _operations(root: Tensor) -> list[Tensor]:
    """The results of recorded operations that ``root`` depends on, ``root`` first:
    the tensors of ``reversed(topological_sort(root))`` that have a ``grad_fn``, in
    the same order, by the same depth-first walk.

    What :func:`backward` visits. A leaf has no operation to run (its gradient is
    complete when an operation passes it on), so the walk neither lists nor
    remembers the leaves; and it checks on the way that no operation was freed.

    Raises:
        RuntimeError: if an earlier backward freed the arrays an operation saved.
    """
    order: list[Tensor] = []
    freed = None
    seen = {id(root)}
    stack = [(root, iter(root.grad_fn.parents))]
    while stack:
        t, todo = stack[-1]
        for p in todo:
            # grad_fn first: a leaf or a constant is passed over on one test
            if p.grad_fn is not None and p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                stack.append((p, iter(p.grad_fn.parents)))  # walk into p first
                break
        else:  # every operation before t is listed
            stack.pop()
            order.append(t)
            if t.grad_fn._freed:
                freed = t.grad_fn  # the last listed: the first that backward meets
    if freed is not None:
        raise RuntimeError(_FREED_MESSAGE.format(op=freed.fn.__name__))
    order.reverse()
    return order


def _checked(grad: Any, t: Tensor, source: str | type[Function]) -> np.ndarray:
    """``grad`` as an array of ``t``'s dtype, after checking that it has ``t``'s
    shape.

    Raises:
        ValueError: if the shape is not ``t``'s, naming the operation (``source``:
            the :class:`Function` whose backward returned it, or a description).
    """
    if type(grad) is not np.ndarray:
        grad = np.asarray(grad)
    if grad.shape != t.data.shape:
        if isinstance(source, type):
            source = f"{source.__name__}.backward"
        raise ValueError(
            f"{source} returned a gradient of shape {grad.shape} for an input of "
            f"shape {t.data.shape}: a gradient must have its input's shape (sum a "
            "broadcast gradient back with unbroadcast)."
        )
    if grad.dtype != t.data.dtype:  # float32 tensors keep float32 gradients
        grad = grad.astype(t.data.dtype)
    return grad


def _accumulate(t: Tensor, grad: Any, source: str | type[Function]) -> None:
    """``t.grad += grad``, for a gradient that is passed on as well: the seed of a
    leaf root, and an intermediate that :meth:`Tensor.retain_grad` keeps. The first
    gradient is copied, so that two tensors never share a gradient array. (The
    leaves' gradients are stored by :func:`backward` itself, which keeps a
    :func:`_fresh` array without a copy.)

    Raises:
        ValueError: if the shape is not ``t``'s (see :func:`_checked`).
    """
    checked = _checked(grad, t, source)
    if t.grad is None:
        t.grad = checked.copy()
    else:
        t.grad += checked


def backward(root: Tensor, grad: Any = None, *, retain_graph: bool = False) -> None:
    """Reverse-mode differentiation: ``t.grad += d root / d t`` for every leaf ``t``
    of the graph that requires a gradient.

    Each operation is run once, in reverse topological order (:func:`_operations`),
    so that its result's gradient has received the contributions of all its uses
    before the operation's backward passes it on. The gradients of intermediate
    results are held in a dictionary for this pass only and dropped once passed on
    (PyTorch's rule): only the leaves, which an optimizer updates, keep ``grad``,
    and an intermediate keeps it only after :meth:`Tensor.retain_grad`.

    Args:
        root: the tensor to differentiate, usually a scalar loss.
        grad: ``d(something)/d root``, of root's shape; may be omitted for a scalar
            root (the seed is then 1, since ``dL/dL = 1``).
        retain_graph: keep the saved arrays, to call backward again.

    Raises:
        RuntimeError: if ``root`` does not require a gradient, if ``grad`` is
            omitted for a non-scalar, or if the graph was already freed by an
            earlier backward.
        ValueError: if a gradient has the wrong shape (the message names the
            operation).
    """
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: none of the tensors "
            "it was computed from has requires_grad=True (or it was computed under "
            "no_grad)."
        )
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a scalar, got shape "
                f"{root.shape}: reduce it to a loss first (e.g. .sum() or .mean()), "
                "or pass grad= of the same shape."
            )
        # dL/dL = 1 (np.ones, a Python function, takes four times longer)
        grad = np.array(1, root.data.dtype)
        if root.data.ndim:  # a one-element (1, 1, ...) root
            grad = grad.reshape(root.data.shape)
    else:
        grad = _checked(_value(grad), root, "backward(grad=...)")
    if root.grad_fn is None:  # a leaf differentiated with respect to itself
        _accumulate(root, grad, "backward(grad=...)")
        return
    # the operations' results, root first (a leaf has no operation to run); all
    # listed, and checked not freed, before any gradient is added, so that a freed
    # graph raises without changing a single .grad
    results = _operations(root)
    # dL/dt of this pass for the intermediate results t, by id(t): a tensor's entry
    # is complete when the loop reaches it, and removed there
    pending = {id(root): grad}
    for t in results:
        ctx = t.grad_fn
        fn = ctx.fn
        grad_output = pending.pop(id(t))
        if ctx.retains_grad:
            _accumulate(t, grad_output, fn)  # a copy: grad_output is passed on
        grads = fn.backward(ctx, grad_output)
        if type(grads) is not tuple:
            grads = (grads,)
        parents = ctx.parents
        if len(grads) != len(parents):
            raise ValueError(
                f"{fn.__name__}.backward returned {len(grads)} gradient(s) for "
                f"{len(parents)} input(s): one per input (None where no input "
                "gradient is needed)."
            )
        # (no strict=True: the lengths are checked above, and a zip called with a
        # keyword is built several times slower)
        for parent, g, needed in zip(parents, grads, ctx.needs_input_grad):  # noqa: B905
            if not needed:
                continue
            data = parent.data  # g must be an array of its shape and dtype
            if (
                type(g) is not np.ndarray
                or g.shape != data.shape
                or g.dtype != data.dtype
            ):
                if g is None:
                    raise ValueError(
                        f"{fn.__name__}.backward returned None for an input that "
                        "requires a gradient."
                    )
                g = _checked(g, parent, fn)  # raises for a wrong shape
            if parent.grad_fn is not None:  # an intermediate: held for this pass only
                key = id(parent)
                held = pending.get(key)
                # a second use adds into a new array: g may be shared (Add hands
                # one array to both inputs), so it is never changed in place
                pending[key] = g if held is None else held + g
            elif parent.grad is not None:  # a leaf keeps its gradient: t.grad += g
                parent.grad += g
            elif _fresh(g, grad_output, grads):
                parent.grad = g  # the leaf's own: no one else holds g
            else:
                parent.grad = g.copy()  # two tensors never share a gradient array
        if not retain_graph:
            ctx.free()


def _fresh(g: np.ndarray, grad_output: np.ndarray, grads: tuple) -> bool:
    """Whether a leaf may keep the gradient ``g`` without a copy: a new writeable
    array (not a view, not the gradient the operation received and passed on, as
    ``Add`` does, and not handed to another input of the operation too)."""
    if g is grad_output or g.base is not None or not g.flags.writeable:
        return False
    uses = 0
    for other in grads:
        if other is g:
            uses += 1
    return uses == 1


# --------------------------------------------------------------------------- gradcheck
def gradcheck(f: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-5) -> float:
    """Compare ``backward()`` with central differences, in float64.

    ``f(*inputs)`` must return a tensor. A non-scalar output ``y`` is checked
    through ``sum(y * R)`` for a fixed random ``R``, which involves every entry of
    the Jacobian. Each input that requires a gradient is temporarily converted to
    float64 (``f`` sees the same tensor objects, so ``f`` may also use them
    through a model), then restored with its gradient.

    Args:
        f: a function of the inputs returning a tensor.
        inputs: tensors; those with ``requires_grad`` are checked.
        eps: the step ``h`` of ``(f(x + h) - f(x - h)) / 2h``; 1e-5 as in stages 1
            and 3: in float64 the rounding error of the difference is about
            1e-16 / h and the truncation error about h^2, balanced near 1e-5.

    Returns:
        The largest relative error ``||a - n|| / (||a|| + ||n||)`` over all
        inputs, stage 1's metric: below ``GRAD_CHECK_BOUND`` = 1e-6 means agreement.
    """
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one input with requires_grad=True.")
    saved = [(t, t.data, t.grad) for t in checked]
    try:
        for t in checked:
            t.data = t.data.astype(np.float64)
            t.grad = None
        out = f(*inputs)
        if not isinstance(out, Tensor):
            raise TypeError(f"f must return a Tensor, got {type(out).__name__}.")
        weights = np.random.default_rng(0).standard_normal(out.shape)
        backward(out, weights.astype(out.dtype))
        analytic = [
            t.grad if t.grad is not None else np.zeros_like(t.data) for t in checked
        ]

        def value() -> float:
            with no_grad():
                return float(np.sum(f(*inputs).data.astype(np.float64) * weights))

        errors = [
            relative_error(a, numerical_gradient(value, t.data, eps))
            for t, a in zip(checked, analytic, strict=True)
        ]
    finally:
        for t, data, grad in saved:
            t.data, t.grad = data, grad
    return max(errors)


# --------------------------------------------------------------------------- nn
class Parameter(Tensor, _s3.Parameter):
    """A tensor that a model learns: ``requires_grad=True``, data a float32 copy.

    Also a stage-3 ``Parameter``, so that stage 3's ``Module`` registers it and
    stage 3's optimizers update it (``p.data -= lr * p.grad``). Its ``grad`` starts
    at zeros and ``zero_grad`` zeroes it in place, as in stage 3;
    ``zero_grad(set_to_none=True)`` sets it to ``None``, and the next backward
    assigns the new gradient array (:func:`backward`) instead of adding it to
    zeros.
    """

    def __init__(self, data: Any, *, dtype: Any = DTYPE) -> None:
        array = np.array(_value(data), dtype=dtype)  # a copy: no aliasing
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"a Parameter must be floating point, got {array.dtype}")
        self.data = array
        self.grad = np.zeros_like(array)
        self.requires_grad = True
        self.grad_fn = None

    # stage 3's: zeroed in place, or ``None`` with ``set_to_none=True`` (Tensor's
    # own zero_grad, first in the method order, always forgets the gradient)
    zero_grad = _s3.Parameter.zero_grad

    def astype(self, dtype: Any) -> Parameter:
        """Convert ``data`` and ``grad`` to ``dtype`` (float64 for a gradient
        check). New arrays: convert before building an optimizer."""
        self.data = self.data.astype(dtype)
        self.grad = (
            np.zeros_like(self.data) if self.grad is None else (self.grad.astype(dtype))
        )
        return self

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module(_s3.Module):
    """Stage 3's ``Module`` (registration, ``parameters``, ``state_dict``, ``train``
    and ``eval``, ...) with only ``forward``: autograd differentiates it.

    There is no ``backward`` method: ``loss.backward()`` reaches every parameter
    through the graph that ``forward`` recorded, whatever the model's shape.
    """

    @property
    def backward(self) -> Any:  # hides stage 3's method: hasattr(m, "backward") False
        raise AttributeError(
            f"{type(self).__name__} has no backward(): in stage 4 a model only "
            "defines forward; call loss.backward() on the loss tensor."
        )


class Sequential(Module, _s3.Sequential):
    """A chain of modules, ``Sequential(a, b, c)(x) == c(b(a(x)))`` (stage 3's)."""

    def __getitem__(self, index: int | slice) -> Any:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]


class ModuleList(Module, _s3.ModuleList):
    """A list of modules that registers them (stage 3's), without forward."""


class Linear(Module, _s3.Linear):
    """Affine layer ``out = x @ W + b``, stage 3's ``Linear`` without backward.

    Same signature: ``Linear(in_features, out_features)``, or lazy
    ``Linear(out_features)``; ``W`` is (in, out), ``b`` is (out,). The input may be
    a tensor or an array (the data, which requires no gradient, so ``dL/dx`` is
    never computed for it). ``forward`` records one :class:`Affine` operation, as
    PyTorch's ``nn.Linear`` records ``F.linear``.
    """

    def reset_parameters(self, in_features: int) -> None:
        """Build ``W`` (in, out), random, and ``b`` (out,), zeros."""
        self.in_features = in_features
        self.W = Parameter(
            _s3.init_weight(
                in_features, self.out_features, init=self.init, seed=self.seed
            )
        )
        self.b = Parameter(np.zeros(self.out_features, dtype=DTYPE))

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        shape = x.shape
        if len(shape) != 2:
            raise ValueError(f"Linear expects a (N, features) input, got {shape}.")
        if self.W is None:
            self.reset_parameters(shape[1])
        elif shape[1] != self.in_features:
            raise ValueError(
                f"Linear(in_features={self.in_features}, out_features="
                f"{self.out_features}) got an input with {shape[1]} features, "
                f"shape {shape}."
            )
        # x @ W + b as one recorded operation (as PyTorch's F.linear): a node
        # instead of two, the bias added in place, and no dx when x is the data
        return Affine.apply(x, self.W, self.b)  # (N, out)


class ReLU(Module):
    """``max(x, 0)`` as a module."""

    def forward(self, x: Tensor) -> Tensor:
        return Relu.apply(x)


class CrossEntropyLoss(Module):
    """:func:`cross_entropy` as a module: ``loss_fn(logits, y)`` is a scalar tensor."""

    def forward(self, logits: Tensor, y: Any) -> Tensor:
        return cross_entropy(logits, y)


class MSELoss(Module):
    """:func:`mse_loss` as a module."""

    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        return mse_loss(prediction, target)


# --------------------------------------------------------------------------- training
def accuracy(logits: Tensor | np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose largest logit is the label. logits (N, C), y (N,)."""
    return float(np.mean(np.asarray(_value(logits)).argmax(axis=1) == y))


def train_epoch(
    model: Module,
    loss_fn: Callable[[Tensor, np.ndarray], Tensor],
    optimizer: _s3.Optimizer,
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """One pass over ``(X, y)`` in shuffled minibatches; one optimizer step each.

    For each batch: zero the gradients, forward, loss, ``loss.backward()``, step.
    Stage 3's loop with the one line that changes: no ``model.backward``.

    Returns:
        The mean training loss and accuracy over the epoch, each batch measured
        before its step.
    """
    total_loss, correct, n = 0.0, 0, 0
    for Xb, yb in _data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad(set_to_none=True)  # backward assigns each gradient
        logits = model(Xb)  # (B, C) tensor
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(yb)
        correct += int(np.sum(logits.data.argmax(axis=1) == yb))
        n += len(yb)
    return total_loss / n, correct / n


def evaluate(
    model: Module,
    loss_fn: Callable[[Tensor, np.ndarray], Tensor],
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int = 2000,
) -> tuple[float, float]:
    """Mean loss and accuracy on ``(X, y)``, in eval mode and under
    :func:`no_grad` (nothing is recorded); the mode is restored."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        with no_grad():
            for start in range(0, len(X), batch_size):
                Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
                logits = model(Xb)
                total_loss += loss_fn(logits, yb).item() * len(yb)
                correct += int(np.sum(logits.data.argmax(axis=1) == yb))
    finally:
        model.train(was_training)
    return total_loss / len(X), correct / len(X)


def fit(
    model: Module,
    loss_fn: Callable[[Tensor, np.ndarray], Tensor],
    optimizer: _s3.Optimizer,
    X: np.ndarray,
    y: np.ndarray,
    **kwargs: Any,
) -> dict[str, list[float]]:
    """Stage 3's ``fit`` with this stage's :func:`train_epoch` and :func:`evaluate`.

    Keyword arguments are stage 3's: ``num_epochs``, ``batch_size``, ``X_val``,
    ``y_val`` (evaluated after every epoch: the data to tune on), ``X_test``,
    ``y_test``, ``lr_decay``, ``seed``, ``progress``.

    Returns:
        ``{"train_loss", "train_acc"}`` and, with validation or test data,
        ``{"val_loss", "val_acc"}``, ``{"test_loss", "test_acc"}``: one value per
        epoch.
    """
    kwargs.setdefault("epoch_fn", train_epoch)
    kwargs.setdefault("eval_fn", evaluate)
    return _s3.fit(model, loss_fn, optimizer, X, y, **kwargs)
