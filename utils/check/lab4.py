"""Checks for lab 4: autograd.

The student writes the pieces of a reverse-mode autograd: ``unbroadcast``, the
operations ``Add``, ``Mul``, ``MatMul``, ``Sum``, ``Exp``, ``Log`` and ``Relu`` as
``Function`` classes (static ``forward(ctx, ...)`` and ``backward(ctx,
grad_output)``, PyTorch's contract), ``topological_sort``, ``backward``, the fused
``CrossEntropy``, a ``Linear`` module without backward, and ``train_epoch``. Each is
compared with :mod:`utils.reference.stage4` on its own:

* an operation runs ``forward`` then ``backward`` on one context, on broadcast
  shapes ((H,) and (1, H) against (N, H), scalars), square shapes where a transposed
  gradient would keep its shape, a batch of one, non-contiguous views, values a
  thousand apart; the float32 dtype must be kept and no input changed;
* ``topological_sort`` and ``backward`` run on graphs built here from the reference
  operations: an MLP loss, a diamond, a tensor used twice by one operation, a
  constant branch, a skip connection around a non-leaf (``h + relu(h @ W2)``: a
  tensor reached by a short and a long path), ``x = x + x`` repeated (thousands of
  paths through a dozen tensors: the visits are *counted*, no timing), a chain
  deeper than Python's recursion limit, a leaf whose gradient already holds an
  earlier backward's; ``backward`` also on ``sum(a + b)`` (no two leaves may share
  a gradient array), on operations that return a gradient for every input
  (constants must get none), on two calls sharing an intermediate (the first with
  ``retain_graph=True``: only the leaves accumulate) and twice on one graph (the
  second must raise: the first freed it);
* ``Linear`` and ``train_epoch`` run with reference tensors and operations, so that
  only the exercise itself is judged;
* ``training`` runs every piece together for three epochs of a small residual
  network (a tensor used twice, a learned scale broadcast over the batch, the last
  batch smaller; :mod:`utils.check.integration`) and names the first piece that
  diverges on its own (a student's ``topological_sort`` alone among the course's
  pieces decides the order that the course's engine walks).

Tensors in these checks are built by :func:`_apply`, a twin of the lab's
``Function.apply`` whose operators call the operations of the run (reference ones,
or the student's in the integration check), so that any tensor the student's code
meets has the lab's interface: ``data``, ``grad``, ``requires_grad``, ``grad_fn``
(a :class:`~utils.reference.stage4.Context` with ``fn``, ``parents``,
``needs_input_grad``).

Usage in the lab::

    from utils.check import lab4 as check
    check.unbroadcast(unbroadcast)
    check.add(Add)
    ...
    check.training(train_epoch)
    check.summary()
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from utils import data
from utils.check.core import (
    Case,
    CheckResult,
    Inputs,
    Lab,
    Mistake,
    Summary,
    agrees,
    run_check,
)
from utils.check.integration import copy_params, diverged_hint, explain_errors
from utils.check.prereq import blame_earlier, blames
from utils.reference import stage3 as _s3
from utils.reference import stage4 as ref


class LabLinear(ref.Linear):
    """The reference ``Linear`` as the lab writes it, ``x @ W + b``: two operations
    of the run's tensors, so that a run exercises the lab's ``MatMul`` and ``Add``
    (the course's ``Linear`` records one fused ``Affine``, which the lab has not)."""

    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return x @ self.W + self.b  # (N, out)


LAB = Lab(
    "Lab 4: autograd",
    [
        "unbroadcast",
        "add",
        "mul",
        "matmul",
        "sum",
        "exp",
        "log",
        "relu",
        "topological_sort",
        "backward",
        "cross_entropy",
        "linear",
        "train_epoch",
        "training",
    ],
    references={
        "unbroadcast": ref.unbroadcast,
        "add": ref.Add,
        "mul": ref.Mul,
        "matmul": ref.MatMul,
        "sum": ref.Sum,
        "exp": ref.Exp,
        "log": ref.Log,
        "relu": ref.Relu,
        "topological_sort": ref.topological_sort,
        "backward": ref.backward,
        "cross_entropy": ref.CrossEntropy,
        "linear": LabLinear,
        "train_epoch": ref.train_epoch,
    },
    module=__name__,
)

_inputs = Inputs(base_seed=4000)
_randn = _inputs.randn


# =========================================================================== the run
# The pieces of one run: exercise name -> implementation. The operators of _Tensor
# call the pieces of the run in progress; outside a run, the reference's.
_REFERENCE_PIECES: dict[str, Any] = dict(LAB.references)
_PIECES: dict[str, Any] = dict(_REFERENCE_PIECES)

# the global names under which a lab (a notebook) holds each piece
_GLOBAL_NAMES = {
    "unbroadcast": "unbroadcast",
    "add": "Add",
    "mul": "Mul",
    "matmul": "MatMul",
    "sum": "Sum",
    "exp": "Exp",
    "log": "Log",
    "relu": "Relu",
    "topological_sort": "topological_sort",
    "backward": "backward",
    "cross_entropy": "CrossEntropy",
    "linear": "Linear",
    "train_epoch": "train_epoch",
}


# what the grader's split path sends as data, not behind a handle (the records of
# utils.grading.wire): a tensor, and the context of the operation that made it, as
# the given stage 4's classes in the kernel, so that a graph crosses in one message.
# (the kernel's class, the class here, a copy here made as, the methods that a copy
# in the kernel calls back here: the operations of the run, and whether each message
# carries its changes: a parameter, which outlives a step)
_CALLS = (
    "__add__",
    "__radd__",
    "__mul__",
    "__rmul__",
    "__matmul__",
    "__rmatmul__",
    "__neg__",
    "__sub__",
    "__rsub__",
    "__truediv__",
    "__rtruediv__",
    "__pow__",
    "__getitem__",
    "sum",
    "mean",
    "exp",
    "log",
    "relu",
    "reshape",
    "transpose",
    "sigmoid",
    "tanh",
    "log_softmax",
    "backward",
)


def _apply(fn: Any, *inputs: Any, **kwargs: Any) -> _Tensor:
    """``fn.apply`` as the lab's ``Function.apply`` does it, making :class:`_Tensor`
    results (only ``fn.forward`` is used, so any Function class works)."""
    tensors = tuple(x if isinstance(x, ref.Tensor) else _Tensor(x) for x in inputs)
    needs = tuple(t.requires_grad for t in tensors)
    record = any(needs) and ref.is_grad_enabled()
    ctx = ref.Context(needs, record)
    out = fn.forward(ctx, *[t.data for t in tensors], **kwargs)
    if type(out) is not np.ndarray or out.dtype.kind != "f":
        out = np.asarray(out)
        out = out if out.dtype.kind == "f" else out.astype(ref.DTYPE)
    result = _Tensor.__new__(_Tensor)
    result.data, result.grad, result.requires_grad, result.grad_fn = (
        out,
        None,
        False,
        None,
    )
    if record:
        result.requires_grad = True
        ctx.fn, ctx.parents = fn, tensors
        result.grad_fn = ctx
    return result


class _Tensor(ref.Tensor):
    """The lab's tensor for the checks: operators call the pieces of the run."""

    def __add__(self, other):
        return _apply(_PIECES["add"], self, other)

    def __radd__(self, other):
        return _apply(_PIECES["add"], other, self)

    def __mul__(self, other):
        return _apply(_PIECES["mul"], self, other)

    def __rmul__(self, other):
        return _apply(_PIECES["mul"], other, self)

    def __matmul__(self, other):
        return _apply(_PIECES["matmul"], self, other)

    def __rmatmul__(self, other):
        return _apply(_PIECES["matmul"], other, self)

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def sum(self, axis=None, keepdims=False):
        return _apply(_PIECES["sum"], self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        total = self.sum(axis=axis, keepdims=keepdims)
        return total * (total.data.size / self.data.size)

    def exp(self):
        return _apply(_PIECES["exp"], self)

    def log(self):
        return _apply(_PIECES["log"], self)

    def relu(self):
        return _apply(_PIECES["relu"], self)

    def backward(self, grad=None, **kwargs):  # kwargs: retain_graph, when given
        _PIECES["backward"](self, grad, **kwargs)


class _Parameter(ref.Parameter, _Tensor):
    """A parameter whose operators are those of :class:`_Tensor`."""


WIRE_RECORDS = (
    ("utils.reference.stage4:Parameter", ref.Parameter, _Parameter, _CALLS, True),
    ("utils.reference.stage4:Tensor", ref.Tensor, _Tensor, _CALLS, False),
    ("utils.reference.stage4:Context", ref.Context, ref.Context, (), False),
)


class _ReLU(ref.Module):
    """ReLU as a module, through the tensor's ``relu`` (the run's ``Relu``)."""

    def forward(self, x):
        return x.relu()


def _cross_entropy(logits, y):
    """The run's fused cross-entropy, applied like the lab's ``cross_entropy``."""
    return _apply(_PIECES["cross_entropy"], logits, y=np.asarray(y))


def _is_ours(obj: Any) -> bool:
    """Whether ``obj`` comes from this course's own code (never patched)."""
    module = getattr(obj, "__module__", "") or ""
    return module.startswith("utils.")


def _namespaces(obj: Any) -> list[dict]:
    """The global namespaces that the code of ``obj`` (a function or a class, the
    student's) looks names up in: usually the notebook's, once."""
    found: dict[int, dict] = {}
    candidates = [obj]
    for klass in getattr(obj, "__mro__", ()):
        if klass is object or _is_ours(klass):
            continue
        for attr in vars(klass).values():
            candidates.append(attr)
            for inner in ("__func__", "fget"):
                candidates.append(getattr(attr, inner, None))
    for c in candidates:
        glob = getattr(c, "__globals__", None)
        if isinstance(glob, dict) and not str(glob.get("__name__", "")).startswith(
            "utils."
        ):
            found[id(glob)] = glob
    return list(found.values())


@contextlib.contextmanager
def _running(pieces: dict[str, Any]) -> Iterator[None]:
    """Make ``pieces`` the run's: the operators of :class:`_Tensor` call them, and
    the names that the pieces' own code looks up (``Tensor``, ``Parameter``,
    ``unbroadcast``, ``topological_sort``, ``backward``) mean the run's."""
    global _PIECES
    if (
        pieces["backward"] is ref.backward
        and pieces["topological_sort"] is not ref.topological_sort
    ):  # the course's engine, walking the order of the run's topological_sort
        pieces = {**pieces, "backward": _engine(pieces["topological_sort"])}
    names = {
        "Tensor": _Tensor,
        "Parameter": _Parameter,
        "unbroadcast": pieces["unbroadcast"],
        "topological_sort": pieces["topological_sort"],
        "backward": pieces["backward"],
    }
    saved: list[tuple[dict, str, Any]] = []
    previous = _PIECES
    try:
        for piece in pieces.values():
            if _is_ours(piece):
                continue
            for space in _namespaces(piece):
                for name, value in names.items():
                    if name in space and all(
                        not (s is space and n == name) for s, n, _ in saved
                    ):
                        saved.append((space, name, space[name]))
                        space[name] = value
        _PIECES = pieces
        yield
    finally:
        _PIECES = previous
        for space, name, value in reversed(saved):
            space[name] = value


def _engine(sort: Callable[[Any], list[Any]]) -> Callable[..., None]:
    """The course's ``backward`` (the same sums, in the same order, as the
    reference's) walking the order that ``sort`` returns: so that a student's
    ``topological_sort``, put alone among the course's pieces, decides the order
    (the reference's ``backward`` would use the reference's own sort)."""

    def backward(root, grad=None, retain_graph=False):
        if grad is None:
            if root.data.size != 1:
                raise RuntimeError("backward() without a gradient needs a scalar.")
            grad = np.ones_like(root.data)
        order = sort(root)
        for t in reversed(order):
            if t.grad_fn is not None:
                t.grad = None  # an intermediate holds this pass's gradient only
        root.grad = np.array(grad, dtype=root.data.dtype)
        for t in reversed(order):
            ctx = t.grad_fn
            if ctx is None or t.grad is None:
                continue
            grads = ctx.fn.backward(ctx, t.grad)
            grads = grads if isinstance(grads, tuple) else (grads,)
            for p, g, needed in zip(
                ctx.parents, grads, ctx.needs_input_grad, strict=False
            ):
                if needed and g is not None:
                    p.grad = (
                        np.array(g, dtype=p.data.dtype)
                        if p.grad is None
                        else p.grad + g
                    )
            if not retain_graph:
                ctx.free()

    return backward


def _with(**student: Any) -> dict[str, Any]:
    """The reference's pieces, with some replaced."""
    return {**_REFERENCE_PIECES, **student}


def _leaf(values: np.ndarray, requires_grad: bool = True) -> _Tensor:
    return _Tensor(values, requires_grad=requires_grad, dtype=values.dtype)


def _as_apply_does(out: Any) -> Any:
    """A number returned by forward, as ``apply`` stores it: ``np.asarray(out)``
    (a Python float becomes a float64 array, which the dtype rule then reports)."""
    if isinstance(out, (int, float, np.number)) and not isinstance(out, bool):
        return np.asarray(out)
    return out


def _plain(x: Any) -> Any:
    """A copy of an array (later steps may change it), anything else as it is."""
    return x.copy() if isinstance(x, np.ndarray) else x


# =========================================================================== operations
def _view(a: np.ndarray, how: str) -> np.ndarray:
    """``a`` as the case wants it: as is, transposed, or every other column."""
    if how == "T":
        return a.T
    if how == "::2":
        return a[..., ::2]
    return a


def _stored(a: np.ndarray, how: str) -> np.ndarray:
    """What to store in a case so that :func:`_view` gives an array like ``a``."""
    if how == "T":
        return np.ascontiguousarray(a.T)
    if how == "::2":
        wide = np.repeat(a, 2, axis=-1)
        wide[..., 1::2] = 7.0  # the skipped columns: never read
        return wide
    return a


def _function_runner(names: tuple[str, ...], views: tuple[str, ...], kwargs: dict):
    """``run(fn, *arrays, grad_output)``: forward on one context, then backward."""

    def run(fn, *args):
        *arrays, grad_output = args
        arrays = [_view(a, how) for a, how in zip(arrays, views, strict=True)]
        ctx = ref.Context((True,) * len(arrays), True)
        out = _as_apply_does(fn.forward(ctx, *arrays, **kwargs))
        pristine = _plain(grad_output)
        grads = fn.backward(ctx, grad_output)
        grads = tuple(map(_plain, grads)) if isinstance(grads, (tuple, list)) else grads
        result: dict[str, Any] = {"the output of forward": _plain(out)}
        if len(names) == 1 and not isinstance(grads, (tuple, list)):
            grads = (grads,)
        if not isinstance(grads, (tuple, list)) or len(grads) != len(names):
            count = len(grads) if isinstance(grads, (tuple, list)) else 1
            result["the number of gradients backward returns"] = (
                f"{count} for {len(names)} input(s)"
            )
            for name in names:  # compared after the count, which differs
                result[f"the gradient backward returns for {name}"] = None
            return result
        result["the number of gradients backward returns"] = (
            f"{len(names)} for {len(names)} input(s)"
        )
        for name, g in zip(names, grads, strict=True):
            result[f"the gradient backward returns for {name}"] = _plain(g)
        again = _backward_again(fn, ctx, pristine)  # what forward saved, read twice
        if len(names) == 1 and not isinstance(again, (tuple, list)):
            again = (again,)
        if isinstance(again, (tuple, list)) and len(again) == len(names):
            for name, g in zip(names, again, strict=True):
                result[f"{SECOND} for {name}"] = _plain(g)
        else:
            result[f"{SECOND}"] = _safe_count(again)
        return result

    return run


SECOND = "the gradient a second backward on the same forward returns"
_SECOND_RAISED = (
    "the first backward ran, a second one on the same forward raised: backward "
    "changed what forward saved in ctx (rebound, transposed or edited in place). "
    "Compute into new arrays and leave ctx as forward left it."
)


def _backward_again(fn, ctx, grad_output):
    """A second backward on the same context; an error in it says so in its hint."""
    try:
        return fn.backward(ctx, grad_output)
    except Exception as exc:
        exc.nn_hint = _SECOND_RAISED
        raise


def _safe_count(grads: Any) -> str:
    count = len(grads) if isinstance(grads, (tuple, list)) else 1
    return f"{count} gradient(s)"


def _hint_second(got, expected, case) -> str:  # noqa: ARG001
    """The first backward right, a second one on the same ctx not: ctx was edited."""
    if not isinstance(got, dict) or not isinstance(expected, dict):
        return ""
    first = [k for k in expected if "backward returns for" in k or "(backward)" in k]
    second = [k for k in expected if k.startswith(SECOND)]
    if not second or not all(agrees(got.get(k), expected[k]) for k in first):
        return ""
    if all(agrees(got.get(k), expected[k]) for k in second):
        return ""
    return (
        "a second backward on the same forward returns other gradients: backward "
        "changed what forward saved in ctx (an in-place -=, *= or slice assignment "
        "on a saved array, say). Compute the gradients into new arrays and leave "
        "ctx as forward left it."
    )


def _hint_entries(got, expected, case) -> str:  # noqa: ARG001
    """Hints from the first gradient that differs: not summed back, transposed."""
    if not isinstance(got, dict) or not isinstance(expected, dict):
        return ""
    for key, exp in expected.items():
        if "gradient backward returns for" not in key or key not in got:
            continue
        g = got[key]
        if not isinstance(g, np.ndarray) or not isinstance(exp, np.ndarray):
            continue
        if agrees(g, exp):
            continue
        who = key.rsplit(" ", 1)[-1]
        if g.shape != exp.shape:
            try:
                summed = ref.unbroadcast(g, exp.shape)
            except ValueError:
                summed = None
            if summed is not None and agrees(summed, exp):
                return (
                    f"the gradient for {who} has the shape of the output, "
                    f"{g.shape}, not of {who}, {exp.shape}: {who} was broadcast in "
                    "forward, so sum its gradient back to its shape (unbroadcast)."
                )
        if g.ndim == 2 and g.shape == exp.T.shape and agrees(g, exp.T):
            return (
                f"the gradient for {who} is transposed: write the shape of each "
                "factor next to it and check which one is transposed, and their "
                "order."
            )
        return ""
    return ""


def _function_cases(
    specs: list[tuple[str, tuple, tuple[str, ...], dict, int]],
    names: tuple[str, ...],
    output_shape: Callable[..., tuple[int, ...]],
) -> list[Case]:
    """Cases from ``(name, input arrays, views, kwargs, seed)``: grad_output is a
    random array of the output's shape."""
    cases = []
    for name, arrays, views, kwargs, seed in specs:
        shape = output_shape(*arrays, **kwargs)
        grad_output = np.asarray(_randn(shape, seed + 50))
        stored = tuple(_stored(a, how) for a, how in zip(arrays, views, strict=True))
        cases.append(
            Case(
                name,
                (*stored, grad_output),
                run=_function_runner(names, views, kwargs),
            )
        )
    return cases


def _broadcast_shape(a, b, **_):
    return np.broadcast_shapes(np.shape(a), np.shape(b))


def _binary_specs(seed: int) -> list[tuple[str, tuple, tuple[str, ...], dict, int]]:
    """Broadcasting cases shared by Add and Mul."""
    r = _randn
    return [
        (
            "(N, H) and (H,): a bias added to every row",
            (r((5, 3), seed), r((3,), seed + 1)),
            ("", ""),
            {},
            seed,
        ),
        (
            "(N, H) and (1, H)",
            (r((4, 3), seed + 2), r((1, 3), seed + 3)),
            ("", ""),
            {},
            seed + 1,
        ),
        (
            "(N, 1) and (1, H): both inputs broadcast",
            (r((4, 1), seed + 4), r((1, 3), seed + 5)),
            ("", ""),
            {},
            seed + 2,
        ),
        (
            "(N, H) and a scalar, shape ()",
            (r((4, 3), seed + 6), np.asarray(r((), seed + 7))),
            ("", ""),
            {},
            seed + 3,
        ),
        (
            "(H,) and (N, H): the broadcast input first",
            (r((3,), seed + 8), r((4, 3), seed + 9)),
            ("", ""),
            {},
            seed + 4,
        ),
        (
            "a batch of one: (1, H) and (H,)",
            (r((1, 3), seed + 10), r((3,), seed + 11)),
            ("", ""),
            {},
            seed + 5,
        ),
        (
            "square (H, H) and a column (H, 1)",
            (r((3, 3), seed + 12), r((3, 1), seed + 13)),
            ("", ""),
            {},
            seed + 6,
        ),
        (
            "(2, N, H) and (N, 1): a leading axis and a stretched one",
            (r((2, 4, 3), seed + 14), r((4, 1), seed + 15)),
            ("", ""),
            {},
            seed + 7,
        ),
        (
            "equal shapes (3, 4), non-contiguous views",
            (r((3, 4), seed + 16), r((3, 4), seed + 17)),
            ("T", "::2"),
            {},
            seed + 8,
        ),
    ]


# ------------------------------------------------------------------------ unbroadcast
def _ub_no_size1(grad, shape):
    extra = grad.ndim - len(shape)
    return grad.sum(axis=tuple(range(extra))) if extra > 0 else grad


def _ub_no_keepdims(grad, shape):
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes) if axes else grad


def _ub_left_aligned(grad, shape):
    extra = grad.ndim - len(shape)
    if extra > 0:  # sums the trailing axes: broadcasting aligns from the right
        grad = grad.sum(axis=tuple(range(len(shape), grad.ndim)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _ub_axis0(grad, shape):
    return grad.sum(axis=0) if grad.shape != tuple(shape) else grad


def _ub_mean(grad, shape):
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.mean(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.mean(axis=axes, keepdims=True) if axes else grad


def unbroadcast(student) -> CheckResult:
    """Check ``unbroadcast(grad, shape)``: ``grad`` summed back to ``shape``."""
    r = _randn
    specs = [
        ("(N, H) back to (H,): a bias", r((5, 3), 0), (3,)),
        ("(N, H) back to (1, H)", r((4, 3), 1), (1, 3)),
        ("(N, H) back to (N, 1)", r((4, 3), 2), (4, 1)),
        ("(N, H) back to a scalar, shape ()", r((4, 3), 3), ()),
        ("square (H, H) back to (H,)", r((3, 3), 4), (3,)),
        ("square (H, H) back to (H, 1)", r((3, 3), 5), (3, 1)),
        ("(2, N, H) back to (N, 1)", r((2, 4, 3), 6), (4, 1)),
        ("(2, N, H) back to (1, H)", r((2, 4, 3), 7), (1, 3)),
        ("shape already right, (4, 3)", r((4, 3), 8), (4, 3)),
        ("a batch of one, (1, H) back to (H,)", r((1, 3), 9), (3,)),
        ("a non-contiguous (N, H) view back to (H,)", r((3, 5), 10), (3,)),
    ]
    cases = []
    for name, grad, shape in specs:
        if "non-contiguous" in name:
            cases.append(Case(name, (grad, shape), run=lambda f, g, s: f(g.T, s)))
        else:
            cases.append(Case(name, (grad, shape)))
    return run_check(
        "unbroadcast",
        student,
        ref.unbroadcast,
        cases,
        arg_names=("grad", "shape"),
        mistakes=[
            Mistake(
                "an axis of size 1 in `shape` was stretched by broadcasting too "
                "(a (1, H) input added to (N, H)): sum over those axes as well, "
                "keeping them (keepdims), not only over the extra leading axes.",
                _ub_no_size1,
            ),
            Mistake(
                "the axes of size 1 must stay in the result: sum over them with "
                "keepdims=True, so that (N, H) goes back to (1, H), not (H,).",
                _ub_no_keepdims,
            ),
            Mistake(
                "broadcasting aligns shapes from the right: the axes it adds are the "
                "leading ones, so sum over the first grad.ndim - len(shape) axes, "
                "not the last ones.",
                _ub_left_aligned,
            ),
            Mistake(
                "summing over axis 0 is right only for a bias; find the axes from the "
                "two shapes: the extra leading axes, and every axis where `shape` "
                "has a 1.",
                _ub_axis0,
            ),
            Mistake(
                "sum, don't average: each copy that broadcasting made received its "
                "own gradient, and the input's gradient is the sum of them all.",
                _ub_mean,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- add
class _AddNoUnbroadcast(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class _AddOneGradient(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shape = a.shape
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        return ref.unbroadcast(grad_output, ctx.shape)


class _AddSwappedShapes(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        sa, sb = ctx.shapes
        return ref.unbroadcast(grad_output, sb), ref.unbroadcast(grad_output, sa)


_NO_UNBROADCAST = (
    "an input that was broadcast in forward must get a gradient of its own shape: "
    "sum grad_output back to each input's shape with unbroadcast (remember the "
    "shapes in forward)."
)


@blames(LAB, "unbroadcast")
def add(student) -> CheckResult:
    """Check ``Add``: forward ``a + b``, backward one gradient per input."""
    return run_check(
        "add",
        student,
        ref.Add,
        _function_cases(_binary_specs(0), ("a", "b"), _broadcast_shape),
        arg_names=("a", "b", "grad_output"),
        hints=[_hint_entries, _hint_second],
        mistakes=[
            Mistake(_NO_UNBROADCAST, _AddNoUnbroadcast),
            Mistake(
                "backward returns one gradient per input of forward: a tuple of two "
                "here, one for a and one for b.",
                _AddOneGradient,
            ),
            Mistake(
                "each gradient goes back to the shape of its own input: the first to "
                "a's shape, the second to b's.",
                _AddSwappedShapes,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- mul
class _MulSwapped(ref.Function):
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


class _MulNoGradOutput(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        shape = grad_output.shape
        return (
            ref.unbroadcast(np.broadcast_to(b, shape), a.shape),
            ref.unbroadcast(np.broadcast_to(a, shape), b.shape),
        )


class _MulNoUnbroadcast(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output * b, grad_output * a


@blames(LAB, "unbroadcast")
def mul(student) -> CheckResult:
    """Check ``Mul``: forward ``a * b``, backward ``(g * b, g * a)`` summed back."""
    return run_check(
        "mul",
        student,
        ref.Mul,
        _function_cases(_binary_specs(20), ("a", "b"), _broadcast_shape),
        arg_names=("a", "b", "grad_output"),
        hints=[_hint_entries, _hint_second],
        mistakes=[
            Mistake(
                "the gradient for a is grad_output times the other factor, b (and "
                "the other way round): d(a b)/da = b.",
                _MulSwapped,
            ),
            Mistake(
                "the chain rule: multiply the local derivative by grad_output, the "
                "gradient that arrives from above.",
                _MulNoGradOutput,
            ),
            Mistake(_NO_UNBROADCAST, _MulNoUnbroadcast),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- matmul
class _MatMulNoTranspose(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output @ b, a @ grad_output


class _MatMulTransposed(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (b @ grad_output.T).T.T, (grad_output.T @ a).T.T


class _MatMulSwappedOrder(ref.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return a.T @ grad_output, grad_output @ b.T


def _matmul_shape(a, b, **_):
    return (a.shape[0], b.shape[1])


@blames(LAB, "unbroadcast")
def matmul(student) -> CheckResult:
    """Check ``MatMul``: forward ``a @ b``, backward ``(g @ b.T, a.T @ g)``."""
    r = _randn
    specs = [
        (
            "(N, D) @ (D, H), all different",
            (r((5, 3), 40), r((3, 4), 41)),
            ("", ""),
            {},
            40,
        ),
        (
            "a batch of one, (1, D) @ (D, H)",
            (r((1, 3), 42), r((3, 2), 43)),
            ("", ""),
            {},
            41,
        ),
        (
            "square (3, 3) @ (3, 3): a transposed gradient keeps its shape",
            (r((3, 3), 44), r((3, 3), 45)),
            ("", ""),
            {},
            42,
        ),
        (
            "(N, D) @ (D, H) with N = H",
            (r((4, 3), 46), r((3, 4), 47)),
            ("", ""),
            {},
            43,
        ),
        (
            "an outer product, (N, 1) @ (1, H)",
            (r((4, 1), 48), r((1, 3), 49)),
            ("", ""),
            {},
            44,
        ),
        ("non-contiguous views", (r((4, 3), 50), r((3, 5), 51)), ("T", "::2"), {}, 45),
        (
            "wide-spread values",
            (r((3, 2), 52, 100.0), r((2, 4), 53, 0.01)),
            ("", ""),
            {},
            46,
        ),
    ]
    return run_check(
        "matmul",
        student,
        ref.MatMul,
        _function_cases(specs, ("a", "b"), _matmul_shape),
        arg_names=("a", "b", "grad_output"),
        hints=[_hint_entries, _hint_second],
        mistakes=[
            Mistake(
                "a transpose is missing: the gradient for a (N, D) comes from "
                "grad_output (N, H) and b (D, H), and only one arrangement of the two "
                "gives (N, D); the same for b (D, H) from a and grad_output.",
                _MatMulNoTranspose,
            ),
            Mistake(
                "the gradient is transposed: check the order of the factors (which "
                "one goes first, which one is transposed).",
                _MatMulTransposed,
            ),
            Mistake(
                "backward returns the gradients in the order of forward's inputs: "
                "first the one for a, then the one for b.",
                _MatMulSwappedOrder,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- sum
class _SumNoExpand(ref.Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad_output):
        return np.broadcast_to(grad_output, ctx.shape).copy()


class _SumOnes(ref.Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad_output):
        return np.ones(ctx.shape, dtype=grad_output.dtype)


class _SumIgnoresAxis(ref.Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        return np.asarray(x.sum())

    @staticmethod
    def backward(ctx, grad_output):
        return np.broadcast_to(grad_output, ctx.shape).copy()


def _sum_shape(x, axis=None, keepdims=False):
    return np.zeros(np.shape(x)).sum(axis=axis, keepdims=keepdims).shape


def sum(student) -> CheckResult:  # noqa: A001 - the exercise is called sum
    """Check ``Sum``: forward ``x.sum(axis, keepdims)``, backward spreads back."""
    r = _randn
    specs = [
        ("all entries, axis=None", (r((5, 3), 60),), ("",), {}, 60),
        ("axis=0 of (N, C)", (r((5, 3), 61),), ("",), {"axis": 0}, 61),
        (
            "square (4, 4), axis=-1: the wrong axis keeps the shape",
            (r((4, 4), 64),),
            ("",),
            {"axis": -1},
            64,
        ),
        ("axis=1 of (N, C)", (r((5, 3), 62),), ("",), {"axis": 1}, 62),
        (
            "axis=1, keepdims=True",
            (r((5, 3), 63),),
            ("",),
            {"axis": 1, "keepdims": True},
            63,
        ),
        ("square (4, 4), axis=0", (r((4, 4), 65),), ("",), {"axis": 0}, 65),
        ("(2, 3, 4), axis=1", (r((2, 3, 4), 66),), ("",), {"axis": 1}, 66),
        ("(2, 3, 4), axis=(0, 2)", (r((2, 3, 4), 67),), ("",), {"axis": (0, 2)}, 67),
        ("a batch of one, (1, C), axis=0", (r((1, 4), 68),), ("",), {"axis": 0}, 68),
        ("a non-contiguous view, axis=0", (r((3, 5), 69),), ("T",), {"axis": 0}, 69),
    ]
    return run_check(
        "sum",
        student,
        ref.Sum,
        _function_cases(specs, ("x",), _sum_shape),
        arg_names=("x", "grad_output"),
        hints=[_hint_entries, _hint_second],
        mistakes=[
            Mistake(
                "without keepdims the summed axes are gone from grad_output: put them "
                "back as axes of size 1 (np.expand_dims) before broadcasting to x's "
                "shape, or the values land along the wrong axis.",
                _SumNoExpand,
            ),
            Mistake(
                "the chain rule: each entry of x receives grad_output's entry (for "
                "its row or column), not 1.",
                _SumOnes,
            ),
            Mistake(
                "pass axis and keepdims on to the sum in forward: the sum is over "
                "`axis` only.",
                _SumIgnoresAxis,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- exp, log
class _ExpOfX(ref.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.exp(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * x


class _ExpNoGradOutput(ref.Function):
    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return out.copy()


class _ExpAsLog(ref.Function):
    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output / out


def _same_shape(x, **_):
    return np.shape(x)


def exp(student) -> CheckResult:
    """Check ``Exp``: forward ``exp(x)``, backward ``g * exp(x)``."""
    r = _randn
    specs = [
        ("(N, D) values", (r((4, 3), 80),), ("",), {}, 80),
        (
            "values from -30 to 30",
            (np.linspace(-30, 30, 12, dtype=np.float32).reshape(3, 4),),
            ("",),
            {},
            81,
        ),
        ("a batch of one", (r((1, 5), 82),), ("",), {}, 82),
        ("a scalar, shape ()", (np.asarray(r((), 83)),), ("",), {}, 83),
        ("a non-contiguous view", (r((3, 4), 84),), ("T",), {}, 84),
    ]
    return run_check(
        "exp",
        student,
        ref.Exp,
        _function_cases(specs, ("x",), _same_shape),
        arg_names=("x", "grad_output"),
        hints=[_hint_entries, _hint_second],
        mistakes=[
            Mistake(
                "the derivative of exp is exp itself, the output of forward (save "
                "it), not x.",
                _ExpOfX,
            ),
            Mistake(
                "the chain rule: multiply the local derivative by grad_output.",
                _ExpNoGradOutput,
            ),
            Mistake(
                "d exp(x)/dx = exp(x): multiply grad_output by the saved output, "
                "don't divide.",
                _ExpAsLog,
            ),
        ],
        record=LAB.record,
    )


class _LogTimesX(ref.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * x


class _LogEps(ref.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x + np.float32(1e-7))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / x


class _LogNoGradOutput(ref.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 1 / x


def log(student) -> CheckResult:
    """Check ``Log``: forward ``log(x)``, backward ``g / x``."""
    rng = _inputs.rng(100)

    def positive(shape, low, high):
        return np.exp(rng.uniform(np.log(low), np.log(high), shape)).astype(np.float32)

    specs = [
        ("values between 0.5 and 3", (positive((4, 3), 0.5, 3),), ("",), {}, 100),
        ("tiny values, 1e-7 to 1e-4", (positive((3, 4), 1e-7, 1e-4),), ("",), {}, 101),
        ("large values, 1e3 to 1e6", (positive((2, 5), 1e3, 1e6),), ("",), {}, 102),
        (
            "a scalar, shape ()",
            (np.float32(2.5) * np.ones((), np.float32),),
            ("",),
            {},
            103,
        ),
        ("a non-contiguous view", (positive((3, 4), 0.1, 10),), ("T",), {}, 104),
    ]
    return run_check(
        "log",
        student,
        ref.Log,
        _function_cases(specs, ("x",), _same_shape),
        arg_names=("x", "grad_output"),
        hints=[_hint_entries, _hint_second],
        mistakes=[
            Mistake(
                "d log(x)/dx = 1/x: divide grad_output by x, don't multiply.",
                _LogTimesX,
            ),
            Mistake(
                "no epsilon inside the log: for tiny x it changes the value "
                "(log(x + 1e-7) is far from log(x) when x is 1e-7). The inputs here "
                "are positive.",
                _LogEps,
            ),
            Mistake(
                "the chain rule: multiply the local derivative by grad_output.",
                _LogNoGradOutput,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- relu
class _ReluAtZero(ref.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x >= 0)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad_output):
        (mask,) = ctx.saved_tensors
        return grad_output * mask


class _ReluMaskOnly(ref.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x > 0)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad_output):
        (mask,) = ctx.saved_tensors
        return mask.astype(grad_output.dtype)


class _ReluPassThrough(ref.Function):
    @staticmethod
    def forward(ctx, x):
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def relu(student) -> CheckResult:
    """Check ``Relu``: forward ``max(x, 0)``, backward ``g * (x > 0)``."""
    r = _randn
    with_zeros = r((4, 5), 120)
    with_zeros[with_zeros < 0.3] = 0.0  # exact zeros: the derivative there is 0
    with_zeros[0, :2] = -1.5
    specs = [
        ("(N, D) with exact zeros", (with_zeros,), ("",), {}, 120),
        (
            "values of ±1000",
            (np.array([[1000.0, -1000.0, 0.5], [-0.5, 999.0, -999.0]], np.float32),),
            ("",),
            {},
            121,
        ),
        ("all negative", (-np.abs(r((3, 3), 122)) - 0.1,), ("",), {}, 122),
        ("a batch of one", (r((1, 6), 123),), ("",), {}, 123),
        ("a non-contiguous view", (r((3, 4), 124),), ("::2",), {}, 124),
    ]
    return run_check(
        "relu",
        student,
        ref.Relu,
        _function_cases(specs, ("x",), _same_shape),
        arg_names=("x", "grad_output"),
        hints=[_hint_entries, _hint_second],
        mistakes=[
            Mistake(
                "at exactly x = 0 the gradient is 0 (as in PyTorch): the entries "
                "where x is 0 must not let grad_output through.",
                _ReluAtZero,
            ),
            Mistake(
                "the chain rule: the mask selects entries of grad_output; multiply "
                "them.",
                _ReluMaskOnly,
            ),
            Mistake(
                "where x <= 0 the output does not depend on x: the gradient there is "
                "0; only the entries where x > 0 let grad_output through.",
                _ReluPassThrough,
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== graphs
class _Graph:
    """A graph built with the reference operations, and what to look at in it.

    Attributes:
        root: the tensor to start from.
        leaves: ``{name: tensor}`` of the tensors whose gradients are compared.
        labels: ``id(tensor) -> name`` for every named tensor (messages).
        grad: the gradient to pass to backward (``None``: the default seed).
    """

    def __init__(self) -> None:
        self.root: _Tensor | None = None
        self.leaves: dict[str, _Tensor] = {}
        self.constants: dict[str, _Tensor] = {}
        self.labels: dict[int, str] = {}
        self.grad: np.ndarray | None = None

    def leaf(self, name: str, values: np.ndarray, requires_grad=True) -> _Tensor:
        t = _leaf(values, requires_grad)
        self.labels[id(t)] = name
        if requires_grad:
            self.leaves[name] = t
        else:
            self.constants[name] = t
        return t

    def name(self, t: Any, name: str) -> Any:
        self.labels[id(t)] = name
        return t

    def label(self, t: Any) -> str:
        if id(t) in self.labels:
            return self.labels[id(t)]
        fn = getattr(getattr(t, "grad_fn", None), "fn", None)
        return f"the output of a {fn.__name__}" if fn is not None else "a tensor"


def _mlp_graph() -> _Graph:
    g = _Graph()
    X = g.leaf("X (the data, no gradient)", _randn((5, 4), 200), requires_grad=False)
    W1 = g.leaf("W1", _randn((4, 3), 201))
    b1 = g.leaf("b1", _randn((3,), 202))
    W2 = g.leaf("W2", _randn((3, 2), 203))
    b2 = g.leaf("b2", _randn((2,), 204))
    h = g.name((g.name(X @ W1, "X @ W1") + b1).relu(), "h")
    logits = g.name(h @ W2 + b2, "logits")
    y = _inputs.labels(5, 2, 205)
    g.root = g.name(_cross_entropy(logits, y), "loss")
    return g


def _diamond_graph() -> _Graph:
    g = _Graph()
    a = g.leaf("a", _randn((3, 2), 210))
    left = g.name(a * 2.0, "a * 2")
    right = g.name(a.exp(), "exp(a)")
    g.root = g.name((left * right).sum(), "sum((a * 2) * exp(a))")
    return g


def _used_twice_graph() -> _Graph:
    g = _Graph()
    x = g.leaf("x", _randn((2, 3), 220))
    w = g.leaf("w", _randn((3,), 221))
    sq = g.name(x * x, "x * x")
    both = g.name(sq + x, "x * x + x")  # x used three times
    g.root = g.name((both * w).sum(), "sum((x * x + x) * w)")
    return g


def _alias_graph() -> _Graph:
    """z = (a + b) * a: Add hands one array to a and b; a is used again after."""
    g = _Graph()
    a = g.leaf("a", _randn((3, 2), 230))
    b = g.leaf("b", _randn((3, 2), 231))
    s = g.name(a + b, "a + b")
    g.root = g.name((s * a).sum(), "sum((a + b) * a)")
    return g


def _alias_graph_2() -> _Graph:
    """The same with the other use of a visited first."""
    g = _Graph()
    a = g.leaf("a", _randn((3, 2), 232))
    b = g.leaf("b", _randn((3, 2), 233))
    s = g.name(a + b, "a + b")
    g.root = g.name((a * s).sum() + (b * 3.0).sum(), "sum(a * (a + b)) + sum(3 b)")
    return g


def _alias_graph_3() -> _Graph:
    """z = (a * 3) * (a + b): backward reaches the Add before the other use of a,
    so a gradient array shared by a and b is added into in place afterwards."""
    g = _Graph()
    a = g.leaf("a", _randn((3, 2), 234))
    b = g.leaf("b", _randn((3, 2), 235))
    s = g.name(a + b, "a + b")
    g.root = g.name(((a * 3.0) * s).sum(), "sum((a * 3) * (a + b))")
    return g


def _constant_branch_graph() -> _Graph:
    g = _Graph()
    a = g.leaf("a", _randn((2, 3), 240))
    c = g.leaf("c (a constant)", _randn((2, 3), 241), requires_grad=False)
    d = g.name(c.exp(), "exp(c), no gradient")
    g.root = g.name((a * d + c).sum(), "sum(a * exp(c) + c)")
    return g


def _doubling_graph(times: int) -> _Graph:
    g = _Graph()
    x = g.leaf("x", np.array([0.5, -1.0], np.float32))
    y = x
    for k in range(times):
        y = g.name(y + y, f"x doubled {k + 1} times")
    g.root = g.name(y.sum(), "the sum")
    return g


def _chain_depth() -> int:
    """Deeper than Python's recursion limit: a recursive walk cannot finish."""
    return sys.getrecursionlimit() + 1000


def _chain_graph(depth: int) -> _Graph:
    g = _Graph()
    x = g.leaf("x", np.array([1.0, 2.0], np.float32))
    y = x
    for _ in range(depth):
        y = _apply(ref.Neg, y)  # -(-(...x)): cheap, and nothing saved
    g.root = g.name(y.sum(), "the sum")
    return g


def _bias_graph() -> _Graph:
    """A non-scalar root with an explicit gradient; a bias broadcast over a batch."""
    g = _Graph()
    x = g.leaf("x", _randn((4, 3), 250))
    W = g.leaf("W", _randn((3, 3), 251))
    b = g.leaf("b", _randn((3,), 252))
    g.root = g.name(x @ W + b, "x @ W + b")
    g.grad = _randn((4, 3), 253)
    return g


def _earlier_grad_graph() -> _Graph:
    """Leaves whose gradient already holds an earlier backward's."""
    g = _Graph()
    W = g.leaf("W", _randn((3, 2), 260))
    b = g.leaf("b", _randn((2,), 261))
    W.grad = _randn((3, 2), 262)
    b.grad = _randn((2,), 263)
    x = _leaf(_randn((4, 3), 264), requires_grad=False)
    g.root = g.name((x @ W + b).relu().sum(), "sum(relu(x @ W + b))")
    return g


def _skip_graph(h_first: bool) -> _Graph:
    """sum(h + relu(h @ W2)), h = x @ W1: a skip connection around a non-leaf. h
    is reached by a short path (the skip) and a long one (through h @ W2): an order
    that places it by the short one lists it after h @ W2, which is made from it."""
    g = _Graph()
    x = g.leaf("x (the data, no gradient)", _randn((4, 3), 280), requires_grad=False)
    W1 = g.leaf("W1", _randn((3, 3), 281))
    W2 = g.leaf("W2", _randn((3, 3), 282))
    h = g.name(x @ W1, "h = x @ W1")
    m = g.name(h @ W2, "h @ W2")
    r = g.name(m.relu(), "relu(h @ W2)")
    s = g.name(h + r if h_first else r + h, "h + relu(h @ W2)")
    g.root = g.name(s.sum(), "sum(h + relu(h @ W2))")
    return g


def _shared_add_graph() -> _Graph:
    """sum(a + b): Add hands one array to both a and b, and nothing else adds to
    either, so a gradient stored as it is leaves a.grad and b.grad one array."""
    g = _Graph()
    a = g.leaf("a", _randn((3, 2), 285))
    b = g.leaf("b", _randn((3, 2), 286))
    g.root = g.name((a + b).sum(), "sum(a + b)")
    return g


class _MatMulEveryGrad(ref.Function):
    """MatMul as the lab writes it: a gradient for every input, needed or not."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output @ b.T, a.T @ grad_output


class _MulEveryGrad(ref.Function):
    """Mul as the lab writes it: a gradient for every input, needed or not."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (
            ref.unbroadcast(grad_output * b, a.shape),
            ref.unbroadcast(grad_output * a, b.shape),
        )


def _every_grad_graph() -> _Graph:
    """sum((X @ W) * c), X and c constants, with operations that return a gradient
    for every input (as the lab's do): only W may receive one."""
    g = _Graph()
    X = g.leaf("X (the data, no gradient)", _randn((3, 4), 290), requires_grad=False)
    W = g.leaf("W", _randn((4, 2), 291))
    c = g.leaf("c (a constant)", _randn((3, 2), 292), requires_grad=False)
    z = g.name(_apply(_MatMulEveryGrad, X, W), "X @ W")
    g.root = g.name(_apply(_MulEveryGrad, z, c).sum(), "sum((X @ W) * c)")
    return g


_GRAPHS: dict[str, Callable[[], _Graph]] = {
    "mlp": _mlp_graph,
    "diamond": _diamond_graph,
    "used twice": _used_twice_graph,
    "alias": _alias_graph,
    "alias 2": _alias_graph_2,
    "alias 3": _alias_graph_3,
    "constant": _constant_branch_graph,
    "doubling": lambda: _doubling_graph(12),
    "doubling 10": lambda: _doubling_graph(10),
    "chain": lambda: _chain_graph(_chain_depth()),
    "bias": _bias_graph,
    "earlier grad": _earlier_grad_graph,
    "skip": lambda: _skip_graph(True),
    "skip, operands swapped": lambda: _skip_graph(False),
    "shared add": _shared_add_graph,
    "every grad": _every_grad_graph,
}


def _build(kind: str) -> _Graph:
    with _running(_REFERENCE_PIECES):
        return _GRAPHS[kind]()


_REFERENCE_SORT = ref.topological_sort


def _reachable(root: Any) -> list[Any]:
    """Every tensor that requires grad reachable from root, by the reference."""
    return _REFERENCE_SORT(root)


class _Counter:
    """Counts reads of ``ctx.parents`` (how often a sort expands each tensor)."""

    def __init__(self) -> None:
        self.reads = 0


def _count_parent_reads(order: list[Any]) -> _Counter:
    """Make every context of the graph count the reads of its ``parents``."""
    counter = _Counter()

    class Counting(ref.Context):
        @property
        def parents(self):
            counter.reads += 1
            return self.__dict__["parents"]

    for t in order:
        ctx = t.grad_fn
        if ctx is not None:
            ctx.__class__ = Counting
    return counter


_NO_RECURSION = "it works on a chain deeper than Python's recursion limit"
_ONE_VISIT = "each tensor's inputs are looked up once, not once per path"
_TOPO_KEYS = (
    "the result is a list of tensors",
    "tensors listed more than once",
    "tensors missing from the order",
    "tensors in the order that should not be there",
    "a tensor listed before one of its inputs",
    "the root is last",
    _ONE_VISIT,
)


def _run_topological_sort(impl, kind: str) -> dict[str, Any]:
    g = _build(kind)
    expected = _reachable(g.root)
    counter = _count_parent_reads(expected)
    try:
        order = impl(g.root)
    except RecursionError:
        return {_NO_RECURSION: False, **dict.fromkeys(_TOPO_KEYS)}
    result: dict[str, Any] = {}
    if kind == "chain":
        result[_NO_RECURSION] = True
    if not isinstance(order, (list, tuple)) or not all(
        isinstance(t, ref.Tensor) for t in order
    ):
        result.update(dict.fromkeys(_TOPO_KEYS))
        result["the result is a list of tensors"] = False
        return result
    result["the result is a list of tensors"] = True
    counts = Counter(id(t) for t in order)
    dupes = sorted({g.label(t) for t in order if counts[id(t)] > 1})[:3]
    result["tensors listed more than once"] = ", ".join(dupes) or "none"
    wanted = {id(t) for t in expected}
    missing = [g.label(t) for t in expected if id(t) not in counts][:3]
    result["tensors missing from the order"] = ", ".join(missing) or "none"
    extra = [g.label(t) for t in order if id(t) not in wanted][:3]
    result["tensors in the order that should not be there"] = ", ".join(extra) or "none"
    position = {}
    for i, t in enumerate(order):
        position.setdefault(id(t), i)
    early = "none"
    for t in order:
        ctx = t.grad_fn
        parents = ctx.__dict__.get("parents", ()) if ctx is not None else ()
        for p in parents:
            if id(p) in wanted and position.get(id(p), -1) > position[id(t)]:
                early = f"{g.label(t)} (before its input {g.label(p)})"
                break
        if early != "none":
            break
    result["a tensor listed before one of its inputs"] = early
    result["the root is last"] = bool(order) and order[-1] is g.root
    result[_ONE_VISIT] = counter.reads <= 3 * len(expected) + 3
    return result


def _topo_reversed(root):
    return list(reversed(ref.topological_sort(root)))


def _topo_revisits(root):
    order = []

    def visit(t):
        if t.grad_fn is not None:
            for p in t.grad_fn.parents:
                if p.requires_grad:
                    visit(p)
        if all(t is not s for s in order):
            order.append(t)

    visit(root)
    return order


def _topo_duplicates(root):
    order = []
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        stack.append((t, True))
        if t.grad_fn is not None:
            stack += [(p, False) for p in t.grad_fn.parents if p.requires_grad]
    return order


def _topo_recursive(root):
    order, seen = [], set()

    def visit(t):
        if id(t) in seen or not t.requires_grad:
            return
        seen.add(id(t))
        if t.grad_fn is not None:
            for p in t.grad_fn.parents:
                visit(p)
        order.append(t)

    visit(root)
    return order


def _topo_with_constants(root):
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t.grad_fn is not None:
            stack += [(p, False) for p in t.grad_fn.parents if id(p) not in seen]
    return order


def _hint_not_a_list(got, expected, case) -> str:  # noqa: ARG001
    if isinstance(got, dict) and got.get("the result is a list of tensors") is False:
        return "return a list of the tensors themselves, in order (not their data)."
    return ""


def _hint_skip(got, expected, case) -> str:  # noqa: ARG001
    if not isinstance(got, dict) or not str(case.args[0]).startswith("skip"):
        return ""
    if got.get("a tensor listed before one of its inputs", "none") != "none":
        return (
            "h is reached by a short path (the skip) and a long one (through h @ W2): "
            "list a tensor only once all its inputs are listed, wherever it was "
            "first reached. Two orders that look right on chains fail here: marking "
            "a tensor visited when it is pushed with its siblings (mark it when you "
            "pop it to expand it), and a breadth-first order reversed (go "
            "depth-first)."
        )
    return ""


def topological_sort(student) -> CheckResult:
    """Check ``topological_sort(root)`` on graphs with shared nodes, constants, many
    paths and a deep chain: the tensors, each once, inputs first, root last."""
    cases = [
        Case("the loss of a small MLP (X requires no gradient)", ("mlp",)),
        Case("a diamond: a feeds two branches that meet again", ("diamond",)),
        Case("x used three times", ("used twice",)),
        Case("a constant branch, exp(c) with c a constant", ("constant",)),
        Case(
            "a skip connection around a non-leaf: h + relu(h @ W2), h = x @ W1",
            ("skip",),
        ),
        Case("the same skip connection, relu(h @ W2) + h", ("skip, operands swapped",)),
        Case(
            "x = x + x, 12 times: 13 tensors, 4096 paths (visits counted)",
            ("doubling",),
        ),
        Case(f"a chain {_chain_depth():,} operations deep", ("chain",)),
    ]
    cases = [Case(c.name, c.args, run=_run_topological_sort) for c in cases]
    return run_check(
        "topological_sort",
        student,
        ref.topological_sort,
        cases,
        hints=[_hint_not_a_list, _hint_skip],
        mistakes=[
            Mistake(
                "the order is reversed: a tensor comes after the tensors it was "
                "computed from (its inputs), and the root comes last; backward walks "
                "the list from the end.",
                _topo_reversed,
            ),
            Mistake(
                "a recursive walk fails on a deep graph (Python's recursion limit is "
                "about 1,000 calls): keep your own stack (a list) of tensors still "
                "to handle.",
                _topo_recursive,
            ),
            Mistake(
                "a tensor reached by several paths is walked into once per path "
                "(x = x + x twenty times would take a million steps): mark it "
                "visited the first time you reach it, and never expand it again.",
                _topo_revisits,
            ),
            Mistake(
                "a tensor reached by several paths is listed once per path: keep a "
                "set of the ids of the tensors already visited, and skip them.",
                _topo_duplicates,
            ),
            Mistake(
                "only tensors that require a gradient belong in the order: skip the "
                "constants (requires_grad False), such as the input data.",
                _topo_with_constants,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- backward
_WRONG_SHAPE_HINT = (
    "the gradient stored for a tensor must have that tensor's shape. A common cause: "
    "an operation with one input returns one array from its backward, not a tuple, "
    "and zip then pairs the input with the array's first row; make a tuple of a "
    "lone gradient before pairing the gradients with ctx.parents."
)


def _count_backward_calls(order: list[Any]) -> dict[int, int]:
    """Make each operation of the graph count the calls of its backward."""
    calls: dict[int, int] = {}
    shapes: dict[int, tuple[int, ...]] = {}
    counting: dict[Any, type] = {}
    for t in order:
        ctx = t.grad_fn
        if ctx is None:
            continue
        fn = ctx.fn
        shapes[id(ctx)] = t.data.shape
        if fn not in counting:

            def counted(ctx, grad_output, _fn=fn):
                calls[id(ctx)] = calls.get(id(ctx), 0) + 1
                shape = shapes.get(id(ctx))
                if np.shape(grad_output) != shape:
                    exc = ValueError(
                        f"{_fn.__name__}.backward was given a gradient of shape "
                        f"{np.shape(grad_output)} for its output of shape {shape}."
                    )
                    exc.nn_hint = _WRONG_SHAPE_HINT
                    raise exc
                return _fn.backward(ctx, grad_output)

            counting[fn] = type(fn.__name__, (fn,), {"backward": staticmethod(counted)})
        ctx.fn = counting[fn]
        calls[id(ctx)] = 0
    return calls


_ONCE = "each operation's backward ran once"
_RAISES = "backward of a non-scalar root without a gradient raises a RuntimeError"
_AGAIN = (
    "a second backward through the same graph (freed by the first) raises a "
    "RuntimeError"
)
_NO_GRAD = "the leaves that received no gradient"
_SEPARATE = "every leaf's gradient is an array of its own (no two share memory)"
_CONSTANTS = "the constants (requires_grad=False) given a gradient"
_RECURSION_HINT = (
    "a recursion went deeper than Python's limit (about 1,000 calls) on a chain "
    "of {depth:,} operations. If your topological_sort is recursive (check."
    "topological_sort says so), keep your own stack there; if backward itself "
    "recurses, loop over the topological order instead."
)
_NEW_ARRAYS = (
    "gradients are added into new arrays (an operation's result is never added into)"
)


def _leaf_results(g: _Graph, calls: dict[int, int] | None) -> dict[str, Any]:
    """The leaves' gradients, and what must hold of them and of the constants."""
    result: dict[str, Any] = {
        _NO_GRAD: ", ".join(n for n, t in g.leaves.items() if t.grad is None) or "none"
    }
    for name, t in g.leaves.items():
        result[f"{name}.grad"] = _plain(t.grad)
    grads = [t.grad for t in g.leaves.values() if isinstance(t.grad, np.ndarray)]
    result[_SEPARATE] = not any(
        np.shares_memory(a, b) for i, a in enumerate(grads) for b in grads[i + 1 :]
    )
    given = [n for n, t in g.constants.items() if t.grad is not None]
    result[_CONSTANTS] = ", ".join(given) or "none"
    if calls is not None:
        result[_ONCE] = all(n == 1 for n in calls.values())
    return result


def _run_backward(impl, kind: str) -> dict[str, Any]:
    if kind == "twice":
        return _run_backward_twice(impl)
    g = _build("mlp" if kind == "again" else kind)
    if kind == "non-scalar":
        try:
            impl(g.root)
        except RuntimeError:
            return {_RAISES: True}
        except NotImplementedError:
            raise
        except Exception as exc:
            exc.nn_hint = (
                "for a non-scalar root without a gradient, raise a RuntimeError "
                "(as PyTorch does) that says a gradient is needed; this error came "
                "from elsewhere in your code."
            )
            raise
        return {_RAISES: False}
    # (the chain's operations are not counted: a chain has one path, and its
    # Neg, a piece the lab hands out, then runs where the student's backward does)
    counted = kind not in ("again", "chain")
    calls = _count_backward_calls(_reachable(g.root)) if counted else None
    try:
        if g.grad is None:
            impl(g.root)
        else:
            impl(g.root, g.grad)
    except RecursionError as exc:
        exc.nn_hint = _RECURSION_HINT.format(depth=_chain_depth())
        raise
    except ValueError as exc:
        if "read-only" not in str(exc):
            raise
        return {_NEW_ARRAYS: False}
    result = _leaf_results(g, calls)
    if kind == "again":
        try:
            impl(g.root)
        except RuntimeError:
            result[_AGAIN] = True
        else:
            result[_AGAIN] = False
    return result


_RETAIN_HINT = (
    "backward takes retain_graph=False, as exercise 9 gives it: "
    "backward(root, grad=None, retain_graph=False). With retain_graph=True it "
    "frees nothing, so that a second backward can go through the same graph."
)


def _run_backward_twice(impl) -> dict[str, Any]:
    """Two backward calls sharing the intermediate h = x @ W, the first with
    retain_graph=True: W.grad must be the sum of both calls' gradients."""
    with _running(_REFERENCE_PIECES):
        g = _Graph()
        x = g.leaf("x (the data, no gradient)", _randn((4, 3), 295), False)
        W = g.leaf("W", _randn((3, 2), 296))
        h = g.name(x @ W, "h = x @ W")
        first = g.name(h.sum(), "sum(h)")
    try:
        impl(first, retain_graph=True)
    except TypeError as exc:
        if "retain_graph" in str(exc):
            exc.nn_hint = _RETAIN_HINT
        raise
    with _running(_REFERENCE_PIECES):
        second = g.name((h * h).sum(), "sum(h * h)")
    try:
        impl(second)
    except RuntimeError as exc:
        exc.nn_hint = (
            "the first backward had retain_graph=True, so the graph must still be "
            "there for the second: free the contexts (ctx.free()) only when "
            "retain_graph is False."
        )
        raise
    return _leaf_results(g, None)


def _non_scalar_graph() -> _Graph:
    g = _Graph()
    x = g.leaf("x", _randn((3, 2), 270))
    g.root = g.name(x * 2.0, "x * 2")
    return g


_GRAPHS["non-scalar"] = _non_scalar_graph


def _seed(root, grad):
    """The seed of a model of a mistake: as the lab asks (these models make other
    mistakes, so that a missing RuntimeError is not taken for theirs)."""
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError("backward() without a gradient needs a scalar.")
        grad = np.ones_like(root.data)
    return grad


def _walk(root, grad, store, *, order=None, reset=True, free=True, wrap=True):
    """A backward with one piece swapped: ``store(parent, g)`` stores a gradient;
    ``order`` the walk (default: the reverse topological order); ``reset`` the
    intermediates' gradients at the start; ``free`` the contexts after use;
    ``wrap`` a lone gradient in a tuple."""
    root.grad = _seed(root, grad)
    topo = _REFERENCE_SORT(root)
    if reset:
        for t in topo:
            if t.grad_fn is not None and t is not root:
                t.grad = None
    for t in reversed(topo) if order is None else order(topo):
        ctx = t.grad_fn
        if ctx is None or t.grad is None:
            continue
        grads = ctx.fn.backward(ctx, t.grad)
        if wrap and not isinstance(grads, tuple):
            grads = (grads,)
        for p, gp in zip(ctx.parents, grads, strict=False):
            store(p, gp)
        if free:
            ctx.free()


def _add_new(p, g):
    if g is not None and p.requires_grad:
        p.grad = g.copy() if p.grad is None else p.grad + g


def _backward_assigns(root, grad=None, retain_graph=False):
    def store(p, g):
        if g is not None and p.requires_grad:
            p.grad = g

    _walk(root, grad, store, free=not retain_graph)


def _backward_aliases(root, grad=None, retain_graph=False):
    def store(p, g):
        if g is None or not p.requires_grad:
            return
        if p.grad is None:
            p.grad = g
        else:
            p.grad += g

    _walk(root, grad, store, free=not retain_graph)


def _backward_shares(root, grad=None, retain_graph=False):
    def store(p, g):
        if g is not None and p.requires_grad:
            p.grad = g if p.grad is None else p.grad + g  # the first one as it is

    _walk(root, grad, store, free=not retain_graph)


def _backward_grads_constants(root, grad=None, retain_graph=False):
    def store(p, g):
        if g is not None:  # the mistake: requires_grad not looked at
            p.grad = g.copy() if p.grad is None else p.grad + g

    _walk(root, grad, store, free=not retain_graph)


def _backward_forward_order(root, grad=None, retain_graph=False):
    _walk(root, grad, _add_new, order=list, free=not retain_graph)


def _backward_per_path(root, grad=None, retain_graph=False):
    def push(t, g):
        t.grad = g.copy() if t.grad is None else t.grad + g
        ctx = t.grad_fn
        if ctx is None:
            return
        grads = ctx.fn.backward(ctx, g)
        grads = grads if isinstance(grads, tuple) else (grads,)
        for p, gp in zip(ctx.parents, grads, strict=True):
            if gp is not None and p.requires_grad:
                push(p, gp)

    push(root, _seed(root, grad))
    if not retain_graph:
        for t in _REFERENCE_SORT(root):
            if t.grad_fn is not None:
                t.grad_fn.free()


def _backward_unwrapped(root, grad=None, retain_graph=False):
    _walk(root, grad, _add_new, wrap=False, free=not retain_graph)


def _backward_resets_leaves(root, grad=None, retain_graph=False):
    for t in _REFERENCE_SORT(root):
        t.grad = None
    _walk(root, grad, _add_new, free=not retain_graph)


def _backward_ignores_grad(root, grad=None, retain_graph=False):
    _seed(root, grad)
    _walk(
        root,
        None if root.data.size == 1 else np.ones_like(root.data),
        _add_new,
        free=not retain_graph,
    )


def _backward_keeps_intermediates(root, grad=None, retain_graph=False):
    _walk(root, grad, _add_new, reset=False, free=not retain_graph)


def _backward_never_frees(root, grad=None, retain_graph=False):  # noqa: ARG001
    _walk(root, grad, _add_new, free=False)


@blames(LAB, "topological_sort")
def backward(student) -> CheckResult:
    """Check ``backward(root, grad=None, retain_graph=False)``: every leaf's
    gradient, accumulated over every use, in an array of its own; none for the
    constants; each operation's backward called once; two calls sharing an
    intermediate (the first retaining the graph) add up in the leaves only; a
    second call through a freed graph raises."""
    cases = [
        Case("the loss of a small MLP", ("mlp",)),
        Case("a diamond: a feeds two branches that meet again", ("diamond",)),
        Case("x used three times", ("used twice",)),
        Case("z = (a + b) * a: a used by Add and by the product", ("alias",)),
        Case("a * (a + b) + 3 b", ("alias 2",)),
        Case(
            "z = (a * 3) * (a + b): Add gives a and b the same array, a gets "
            "another gradient after",
            ("alias 3",),
        ),
        Case("sum(a + b): Add hands a and b one array", ("shared add",)),
        Case("a constant branch", ("constant",)),
        Case(
            "sum((X @ W) * c), X and c constants, with operations that return a "
            "gradient for every input (as the lab's do)",
            ("every grad",),
        ),
        Case(
            "a skip connection around a non-leaf: h + relu(h @ W2), h = x @ W1",
            ("skip",),
        ),
        Case("x = x + x, 10 times: 1024 paths (calls counted)", ("doubling 10",)),
        Case("a non-scalar root with an explicit gradient", ("bias",)),
        Case("leaves that hold an earlier backward's gradient", ("earlier grad",)),
        Case(f"a chain {_chain_depth():,} operations deep", ("chain",)),
        Case("a non-scalar root without a gradient", ("non-scalar",)),
        Case(
            "two backward calls sharing h = x @ W: sum(h) (retain_graph=True), "
            "then sum(h * h)",
            ("twice",),
        ),
        Case("loss.backward() twice on the same graph", ("again",)),
    ]
    cases = [Case(c.name, c.args, run=_run_backward) for c in cases]
    return run_check(
        "backward",
        student,
        ref.backward,
        cases,
        mistakes=[
            Mistake(
                "gradients accumulate across backward calls until zero_grad: don't "
                "reset the leaves' .grad at the start of backward, add to it.",
                _backward_resets_leaves,
            ),
            Mistake(
                "two tensors share one gradient array: Add hands the same array to "
                "both its inputs, and `p.grad = g` stores it as it is for both (a "
                "later `p.grad = p.grad + g` would not undo it). Store a copy of a "
                "tensor's first gradient.",
                _backward_shares,
            ),
            Mistake(
                "a tensor used more than once must receive the sum of the gradients "
                "of all its uses: accumulate into .grad (add to what is there) "
                "rather than assigning, which keeps only the last use.",
                _backward_assigns,
            ),
            Mistake(
                "two tensors share one gradient array: Add returns the same array "
                "for both its inputs, so storing it as it is and adding into it in "
                "place later changes the other tensor's gradient too. Store a copy, "
                "or add into a new array.",
                _backward_aliases,
            ),
            Mistake(
                "walk the topological order in reverse, from the root to the leaves: "
                "a tensor's gradient is complete only once every tensor that used it "
                "has been handled.",
                _backward_forward_order,
            ),
            Mistake(
                "each operation's backward must run once, after its output's "
                "gradient is complete; pushing gradients down every path (recursion "
                "per use) runs it once per path, a million times for x = x + x "
                "twenty times. Use the topological order.",
                _backward_per_path,
            ),
            Mistake(
                "an operation with one input (Relu, Exp, Sum, ...) returns one array "
                "from its backward, not a tuple: zip then pairs the input with the "
                "array's first row. Make a tuple of a lone gradient before pairing "
                "the gradients with ctx.parents.",
                _backward_unwrapped,
            ),
            Mistake(
                "when grad is given, it is the seed: d(something)/d root, of the "
                "root's shape. Only when it is None is the seed a 1.",
                _backward_ignores_grad,
            ),
            Mistake(
                "a constant (requires_grad=False: the data, a fixed mask) was given "
                "a gradient: the lab's operations return one for every input, so "
                "skip the inputs that do not require one.",
                _backward_grads_constants,
            ),
            Mistake(
                "an intermediate tensor (h) kept its gradient from the first "
                "backward, and the second passed it on again: only the leaves "
                "accumulate from one backward to the next. At the start of "
                "backward, set the .grad of every tensor of the order that has a "
                "grad_fn to None (or drop it once passed on).",
                _backward_keeps_intermediates,
            ),
        ],
        hints=[_hint_own_sort(student), _hint_backward_flags],
        record=LAB.record,
    )


def _hint_own_sort(student) -> Callable[[Any, Any, Case], str]:
    """A diagnoser: the student's backward, with the course's topological_sort in
    its notebook, gives the reference's results where it did not with theirs."""

    def hint(got, expected, case) -> str:  # noqa: ARG001
        if not callable(student) or _is_ours(student):
            return ""
        with _running(_with(backward=student)):
            mixed = _run_backward(student, *case.args)
        if not agrees(mixed, expected):
            return ""
        return (
            "your backward gives the right result with the course's "
            "topological_sort, not with yours: the order your topological_sort "
            "returns is wrong for this graph (run check.topological_sort again)."
        )

    return hint


def _hint_backward_flags(got, expected, case) -> str:  # noqa: ARG001
    if not isinstance(got, dict):
        return ""
    if got.get(_RAISES) is False:
        return (
            "only a single number can go without a gradient (the seed 1 means "
            "dL/dL); for a root of any other shape, raise a RuntimeError that says "
            "a gradient is needed."
        )
    if got.get(_AGAIN) is False:
        return (
            "a second backward through the same graph must raise a RuntimeError, "
            "as in PyTorch, not add the same gradients again: after an operation's "
            "backward, free its context (ctx.free()) unless retain_graph is True; "
            "the saved_tensors of a freed context raise one."
        )
    if got.get(_CONSTANTS, "none") != "none":
        return (
            "a constant (requires_grad=False) was given a gradient: skip the inputs "
            "that do not require one."
        )
    if got.get(_SEPARATE) is False:
        return (
            "two leaves share one gradient array: store a copy of a tensor's first "
            "gradient (an operation's backward may hand one array to several "
            "inputs, as Add does)."
        )
    if got.get(_NO_RECURSION) is False:
        return (
            "a recursive backward fails on a deep graph (Python's recursion limit): "
            "loop over the topological order instead."
        )
    if got.get(_NEW_ARRAYS) is False:
        return (
            "an operation's backward may return a read-only or shared array (Sum's is "
            "a broadcast view, Add's goes to both inputs): store a copy of the first "
            "gradient, or add into a new array, never in place into what it returned."
        )
    if got.get(_ONCE) is False:
        return (
            "an operation's backward ran more than once: handle each tensor once, in "
            "reverse topological order, after all its gradient has arrived."
        )
    return ""


# ---------------------------------------------------------------------- cross-entropy
def _run_cross_entropy(fn, logits, y, grad_output):
    ctx = ref.Context((True,), True)
    out = _as_apply_does(fn.forward(ctx, logits, y=y))
    pristine = _plain(grad_output)
    grads = fn.backward(ctx, grad_output)
    if isinstance(grads, (tuple, list)) and len(grads) >= 1:
        grads = grads[0]
    grads = _plain(grads)
    again = _backward_again(fn, ctx, pristine)  # what forward saved, read twice
    if isinstance(again, (tuple, list)) and len(again) >= 1:
        again = again[0]
    return {
        "the loss (forward)": _plain(out),
        "the gradient for the logits (backward)": grads,
        f"{SECOND} for the logits": _plain(again),
    }


def _ce_forward(logits, y, shift=True, row_max=True, mean=True, eps=0.0, columns=False):
    N = logits.shape[0]
    z = logits
    if shift:
        z = z - (logits.max(axis=1, keepdims=True) if row_max else logits.max())
    e = np.exp(z)
    probs = e / e.sum(axis=1, keepdims=True)
    if eps:
        log_p = np.log(probs + np.float32(eps))
    else:
        log_p = z - np.log(e.sum(axis=1, keepdims=True))
    picked = -(log_p[:, y] if columns else log_p[np.arange(N), y])
    return (picked.mean() if mean else picked.sum()).astype(logits.dtype), probs


def _ce_function(
    shift=True,
    row_max=True,
    mean=True,
    eps=0.0,
    scale_n=True,
    use_g=True,
    onehot=True,
    columns=False,
):
    """A CrossEntropy Function with one mistake."""

    class CE(ref.Function):
        @staticmethod
        def forward(ctx, logits, y):
            loss, probs = _ce_forward(logits, y, shift, row_max, mean, eps, columns)
            ctx.save_for_backward(probs, y)
            return np.asarray(loss)

        @staticmethod
        def backward(ctx, grad_output):
            probs, y = ctx.saved_tensors
            N = probs.shape[0]
            grad = probs.copy()
            if onehot:
                grad[np.arange(N), y] -= 1
            if scale_n:
                grad /= N
            return grad * grad_output if use_g else grad

    return CE


def _hint_ce(got, expected, case) -> str:
    if not isinstance(got, dict):
        return ""
    loss = got.get("the loss (forward)")
    grad = got.get("the gradient for the logits (backward)")
    try:
        finite = bool(np.all(np.isfinite(np.asarray(loss, dtype=np.float64)))) and bool(
            np.all(np.isfinite(np.asarray(grad, dtype=np.float64)))
        )
    except (TypeError, ValueError):
        return ""
    if not finite and ("1000" in case.name or "apart" in case.name):
        return (
            "exp of a large logit overflows float32 (and of a very negative one "
            "underflows to 0): subtract each row's own maximum (axis 1, keepdims) "
            "before np.exp, and compute log-probabilities as z - max - "
            "log(sum(exp(z - max))), never as the log of a probability."
        )
    want = expected["the loss (forward)"]
    if not agrees(loss, want) and float(np.asarray(loss)) < float(want):
        return (
            "the loss is too small where a correct class has a tiny probability: an "
            "epsilon, a clip or an underflow to 0 changes its log. Never take the log "
            "of a probability: log-probabilities are z - max - log(sum(exp(z - "
            "max)))."
        )
    return ""


# The operations by the names a notebook gives them. A check that runs its exercise
# among the course's operations (x @ W is the course's MatMul there) names one first
# only where the student's code names it itself (MatMul.apply(x, self.W), Exp.forward):
# only then can that operation's failure be the cause.
_OPERATIONS = tuple(
    (piece, _GLOBAL_NAMES[piece])
    for piece in ("unbroadcast", "add", "mul", "matmul", "sum", "exp", "log", "relu")
)
# what _running makes the run's while a check runs (never the notebook's then)
_SWAPPED = ("unbroadcast", "topological_sort", "backward")


@blames(LAB, *_OPERATIONS)  # forward and backward run on arrays, outside any run
def cross_entropy(student) -> CheckResult:
    """Check ``CrossEntropy``: forward the mean loss, stable at ±1000 and for tiny
    probabilities; backward ``g * (softmax - onehot) / N``."""
    r = _randn
    wide = np.array(
        [
            [1000.0, -1000.0, 0.0, 5.0],
            [-1000.0, -998.0, -999.0, -1000.0],
            [3.0, 1000.0, 999.0, -1000.0],
        ],
        np.float32,
    )
    apart = np.concatenate([r((2, 3), 300) + 600.0, r((2, 3), 301) - 600.0])
    tiny = r((3, 4), 302)
    tiny_y = np.array([0, 1, 2])
    tiny[np.arange(3), tiny_y] -= np.array([30.0, 120.0, 60.0], np.float32)

    def one(value):
        return np.asarray(value, dtype=np.float32)

    specs = [
        ("N=5, C=3", r((5, 3), 303), _inputs.labels(5, 3, 304), one(1.0)),
        ("a batch of one, C=4", r((1, 4), 305), np.array([2]), one(1.0)),
        ("N = C = 3", r((3, 3), 306), np.array([2, 0, 2]), one(1.0)),
        ("logits of ±1000", wide, np.array([1, 0, 3]), one(1.0)),
        ("rows 1200 apart", apart, np.array([0, 2, 1, 1]), one(1.0)),
        (
            "correct classes with probabilities far below 1e-3 (down to 1e-52)",
            tiny,
            tiny_y,
            one(1.0),
        ),
        (
            "grad_output = 2.5, not 1",
            r((4, 3), 307),
            _inputs.labels(4, 3, 308),
            one(2.5),
        ),
        ("int32 labels", r((4, 5), 309), np.array([4, 0, 1, 3], np.int32), one(1.0)),
    ]
    cases = [
        Case(name, (logits, y, g), run=_run_cross_entropy)
        for name, logits, y, g in specs
    ]
    return run_check(
        "cross_entropy",
        student,
        ref.CrossEntropy,
        cases,
        arg_names=("logits", "y", "grad_output"),
        hints=[_hint_ce, _hint_second],
        mistakes=[
            Mistake(
                "e^1000 overflows float32: subtract each row's maximum from the "
                "logits before np.exp (the softmax does not change).",
                _ce_function(shift=False),
            ),
            Mistake(
                "subtract each row's own maximum (max over axis 1, keepdims=True), "
                "not the maximum of the whole batch: a row far below the others "
                "would underflow to zeros, and log(0) is -inf.",
                _ce_function(row_max=False),
            ),
            Mistake(
                "a probability far below 1e-3 is changed by an epsilon (or clipped, "
                "or underflows to 0): compute the log-probabilities as z - max - "
                "log(sum(exp(z - max))), never as the log of a probability.",
                _ce_function(eps=1e-8),
            ),
            Mistake(
                "the loss is the mean over the batch, so its gradient has a 1/N.",
                _ce_function(scale_n=False),
            ),
            Mistake(
                "the chain rule: multiply the gradient by grad_output (2.5 in this "
                "case, 1 when the loss is the root).",
                _ce_function(use_g=False),
            ),
            Mistake(
                "the gradient is softmax minus the one-hot labels: subtract 1 at "
                "each row's correct class.",
                _ce_function(onehot=False),
            ),
            Mistake(
                "the loss is the mean over the batch, not the sum.",
                _ce_function(mean=False),
            ),
            Mistake(
                "pick one entry per row, each row's correct class: index the rows "
                "with 0, 1, ..., N - 1 and the columns with y together (indexing "
                "with y alone picks N whole columns of every row).",
                _ce_function(columns=True),
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== Linear
def _run_linear(cls, in_features, out_features, N, seed, lazy):
    pieces = _with(linear=cls)
    with _running(pieces):
        layer = (
            cls(out_features, seed=seed)
            if lazy
            else cls(in_features, out_features, seed=seed)
        )
        x = _leaf(_randn((N, in_features), seed + 1), requires_grad=False)
        out = layer(x)
        first_W = getattr(layer, "W", None)
        result: dict[str, Any] = {}
        is_tensor = isinstance(out, ref.Tensor)
        result["forward returns a tensor"] = is_tensor
        if not is_tensor:
            return result
        result["the output"] = _plain(out.data)
        result["the parameters it registers"] = [n for n, _ in layer.named_parameters()]
        if out.requires_grad:
            ref.backward(out, _randn(out.shape, seed + 2))
        for name in ("W", "b"):
            p = getattr(layer, name, None)
            result[f"{name}.grad"] = _plain(getattr(p, "grad", None))
        out2 = layer(_leaf(_randn((2, in_features), seed + 3), requires_grad=False))
        result["a second forward keeps the same W"] = getattr(layer, "W", None) is (
            first_W
        )
        result["the output of a second forward"] = _plain(getattr(out2, "data", out2))
    return result


class _LinearOnData(ref.Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return _Tensor(x.data @ self.W.data + self.b.data)


class _LinearBiasOnData(ref.Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return x @ self.W + self.b.data


class _LinearRebuilds(ref.Linear):
    def forward(self, x):
        self.reset_parameters(x.shape[1])
        return x @ self.W + self.b


class _LinearNoBias(ref.Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return x @ self.W


class _LinearRowBias(ref.Linear):
    def reset_parameters(self, in_features):
        super().reset_parameters(in_features)
        self.b = ref.Parameter(np.zeros((1, self.out_features), np.float32))

    def forward(self, x):  # the lab's two operations (the reference's fused one
        if self.W is None:  # would reject the (1, out) bias)
            self.reset_parameters(x.shape[1])
        return x @ self.W + self.b


def _hint_linear(got, expected, case) -> str:  # noqa: ARG001
    if isinstance(got, dict) and got.get("forward returns a tensor") is False:
        return (
            "forward must return a tensor computed from the tensors x, W and b, so "
            "that the operations are recorded; an array computed from their .data "
            "is not part of any graph."
        )
    if isinstance(got, dict) and got.get("the parameters it registers") == []:
        return (
            "W and b must be Parameter objects: a Module registers only Parameters, "
            "and the optimizer gets only what model.parameters() lists."
        )
    return ""


@blames(LAB, *[op for op in _OPERATIONS if op[0] not in _SWAPPED])
def linear(student) -> CheckResult:
    """Check ``Linear``: parameters built once, as Parameters, ``x @ W + b`` on the
    tensors, so that a backward from the output reaches W and b."""
    cases = [
        Case("Linear(4, 3), N=5", (4, 3, 5, 500, False)),
        Case("lazy Linear(3), 6 input features, a batch of one", (6, 3, 1, 510, True)),
        Case("Linear(3, 3), N=3: square", (3, 3, 3, 520, False)),
        Case("lazy Linear(5), 2 input features, N=7", (2, 5, 7, 530, True)),
    ]
    cases = [Case(c.name, c.args, run=_run_linear) for c in cases]
    return run_check(
        "linear",
        student,
        ref.Linear,
        cases,
        hints=[_hint_linear],
        mistakes=[
            Mistake(
                "compute on the tensors, not on their .data: an operation on plain "
                "arrays is not recorded, so no gradient reaches W and b.",
                _LinearOnData,
            ),
            Mistake(
                "b.data is a plain array: the addition is not recorded and b gets "
                "no gradient. Add the Parameter b itself.",
                _LinearBiasOnData,
            ),
            Mistake(
                "build W and b only when self.W is None: building them at every "
                "forward throws away what the optimizer learned.",
                _LinearRebuilds,
            ),
            Mistake("the bias is missing: out = x W + b.", _LinearNoBias),
            Mistake(
                "b has shape (out_features,), one number per output, like stage 3's "
                "(the broadcast does the rest).",
                _LinearRowBias,
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== training
_PAIR = "the return value is a pair (mean loss, accuracy)"
_NUMBER = "the mean loss is a number (not a Tensor)"


def _mlp(Linear, D: int, H: int, C: int, seed: int):
    return ref.Sequential(Linear(D, H, seed=seed), _ReLU(), Linear(H, C, seed=seed + 1))


def _run_train_epoch(impl, X, y, batch_size, seed):
    pieces = _with(train_epoch=impl)
    with _running(pieces):
        C = int(y.max()) + 1
        model = _mlp(ref.Linear, X.shape[1], 6, C, seed)
        optimizer = ref.SGD(model.parameters(), lr=0.5, momentum=0.5)
        rng = np.random.default_rng(seed)
        out = impl(model, _cross_entropy, optimizer, X, y, batch_size, rng)
    pair = isinstance(out, (tuple, list)) and len(out) == 2
    loss = out[0] if pair else out
    result: dict[str, Any] = {_PAIR: pair}
    result[_NUMBER] = not isinstance(loss, ref.Tensor)
    if isinstance(loss, ref.Tensor):
        return result
    result["the mean loss returned"] = loss
    result["the accuracy returned"] = out[1] if pair else None
    result["the parameters after the epoch"] = model.state_dict()
    return result


def _epoch_mistake(
    zero_grad="before",
    shuffle=True,
    last_loss=False,
    backward=True,
    tensor_loss=False,
    per_batch=False,
):
    """A train_epoch with one mistake."""

    def train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
        total, correct, loss = 0.0, 0, None
        batches = (
            data.iterate_minibatches(X, y, batch_size, rng=rng)
            if shuffle
            else data.iterate_minibatches(X, y, batch_size, shuffle=False)
        )
        for Xb, yb in batches:
            if zero_grad == "before":
                optimizer.zero_grad()
            logits = model(_Tensor(Xb))
            loss = loss_fn(logits, yb)
            if backward:
                loss.backward()
            if zero_grad == "after":
                optimizer.zero_grad()
            optimizer.step()
            weight = 1 if per_batch else len(yb)
            total = total + (loss if tensor_loss else loss.item()) * weight
            correct += int(np.sum(logits.data.argmax(axis=1) == yb))
        n_batches = -(-len(X) // batch_size)
        mean = (
            loss.item() if last_loss else total / (n_batches if per_batch else len(X))
        )
        return mean, correct / len(X)

    return train_epoch


def _hint_epoch(got, expected, case) -> str:  # noqa: ARG001
    if not isinstance(got, dict):
        return ""
    if got.get(_PAIR) is False:
        return "return two numbers, the mean loss and the accuracy: `return loss, acc`."
    if got.get(_NUMBER) is False:
        return (
            "the loss is a tensor: add up loss.item(), its value as a Python number; "
            "adding the tensors themselves builds one graph over the whole epoch."
        )
    return ""


# train_epoch gets the course's model, loss and optimizer; besides the operations, the
# notebook's loss (its CrossEntropy, through the given cross_entropy and
# CrossEntropyLoss) and Linear take part where train_epoch names them itself
@blames(
    LAB,
    *[op for op in _OPERATIONS if op[0] not in _SWAPPED],
    ("cross_entropy", "CrossEntropy"),
    ("cross_entropy", "cross_entropy"),
    ("cross_entropy", "CrossEntropyLoss"),
    ("linear", "Linear"),
)
def train_epoch(student) -> CheckResult:
    """Check ``train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng)``."""
    cases = []
    for name, (N, D, C, batch_size), seed in [
        ("25 examples, batches of 8 (the last one smaller)", (25, 5, 3, 8), 0),
        ("30 examples, batches of 10", (30, 4, 2, 10), 1),
        ("12 examples in one batch", (12, 6, 4, 12), 2),
        ("7 examples, batches of 2", (7, 3, 3, 2), 3),
    ]:
        X = _randn((N, D), 600 + seed)
        y = _inputs.rng(610 + seed).integers(0, C, size=N)
        y[:C] = np.arange(C)  # every class present
        cases.append(Case(name, (X, y, batch_size, seed), run=_run_train_epoch))
    return run_check(
        "train_epoch",
        student,
        ref.train_epoch,
        cases,
        hints=[_hint_epoch],
        mistakes=[
            Mistake(
                "call optimizer.zero_grad() at the start of every step: backward adds "
                "into p.grad, so without it each step uses the sum of all the "
                "gradients so far.",
                _epoch_mistake(zero_grad=None),
            ),
            Mistake(
                "the parameters did not learn: every step saw zero gradients. The "
                "order is zero_grad(), forward, loss.backward() (which fills every "
                "p.grad), then optimizer.step().",
                _epoch_mistake(zero_grad="after"),
            ),
            Mistake(
                "shuffle the examples with the generator you are given: "
                "data.iterate_minibatches(X, y, batch_size, rng=rng).",
                _epoch_mistake(shuffle=False),
            ),
            Mistake(
                "return the mean loss over the epoch (weight each batch's loss by its "
                "size, divide by N), not the last batch's loss.",
                _epoch_mistake(last_loss=True),
            ),
            Mistake(
                "weight each batch's loss by its size before dividing by N: the last "
                "batch is smaller, so the mean of the batch means is not the mean "
                "over the examples.",
                _epoch_mistake(per_batch=True),
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- together
_ORDER = tuple(_GLOBAL_NAMES)

_ADVICE = {
    "unbroadcast": (
        "Run check.unbroadcast again: the bias (H,) of every Linear needs it."
    ),
    "add": "Run check.add again: Linear adds a bias of shape (H,) to (N, H).",
    "mul": "Run check.mul again.",
    "matmul": "Run check.matmul again: every Linear is x @ W.",
    "sum": "Run check.sum again.",
    "exp": "Run check.exp again.",
    "log": "Run check.log again.",
    "relu": "Run check.relu again: the hidden layer uses it at every step.",
    "topological_sort": (
        "Its order decides when each gradient is complete; run "
        "check.topological_sort again."
    ),
    "backward": (
        "Here it runs step after step on parameters whose .grad already exists (zeroed "
        "by the optimizer): add into it, and leave nothing behind between calls."
    ),
    "cross_entropy": "Run check.cross_entropy again.",
    "linear": "Its parameters must be built once, and used as tensors.",
    "train_epoch": "Compare your loop with the four steps of exercise 12.",
}


def _pieces(impl: Any) -> dict[str, Any]:
    """The pieces that ``impl`` (the student's train_epoch) sees: the notebook's,
    or the reference's where the notebook has none."""
    if isinstance(impl, dict):
        return impl
    found: dict[str, Any] = {}
    space = getattr(impl, "__globals__", None)
    space = space if isinstance(space, dict) else {}
    if str(space.get("__name__", "")).startswith("utils."):  # the course's loop:
        return _with(train_epoch=impl)  # the reference pieces, LabLinear among them
    for piece, name in _GLOBAL_NAMES.items():
        value = space.get(name)
        found[piece] = value if callable(value) else _REFERENCE_PIECES[piece]
    found["train_epoch"] = impl
    return found


class _Residual(ref.Module):
    """x -> h = relu(fc1 x) -> h + s * relu(fc2 h) -> out: h is used twice (stage
    3's ``Skip``), so its gradient must be accumulated; ``s`` (H,), a learned scale
    of the residual branch, broadcast over the batch, brings in ``Mul``."""

    def __init__(self, Linear, D: int, H: int, C: int, seed: int) -> None:
        super().__init__()
        self.fc1 = Linear(D, H, seed=seed)
        self.fc2 = Linear(H, H, seed=seed + 1)
        self.out = Linear(H, C, seed=seed + 2)
        self.scale = _Parameter(np.linspace(0.5, 1.5, H, dtype=np.float32))

    def forward(self, x):
        if not isinstance(x, ref.Tensor):  # the reference loop passes the array
            x = _Tensor(x)
        h = self.fc1(x).relu()
        h = h + self.fc2(h).relu() * self.scale  # (N, H) * (H,)
        return self.out(h)

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Any]]:
        """Module's order (its own parameter first, then each layer's), asked of
        each layer itself: a student's ``Linear`` graded in its own kernel is not
        a Module of this process, so it is not registered here."""
        head = f"{prefix}." if prefix else ""
        out = [(f"{head}scale", self.scale)]
        for name in ("fc1", "fc2", "out"):
            out += [
                (f"{head}{name}.{n}", p)
                for n, p in getattr(self, name).named_parameters()
            ]
        return out

    def penalty(self):
        """A small L2 penalty on the scale, through ``Mul`` and ``Sum``."""
        return (self.scale * self.scale).sum() * 1e-2


def _run_training(impl, X, y, batch_size, num_epochs, seed):
    """Train a small MLP with the pieces of ``impl``: every epoch's losses, the
    parameters after each epoch."""
    pieces = _pieces(impl)
    losses: list[Any] = []

    def loss_fn(logits, yb):
        loss = _cross_entropy(logits, yb) + model.penalty()
        losses.append(loss.item() if isinstance(loss, ref.Tensor) else loss)
        return loss

    out: dict[str, Any] = {}
    with _running(pieces):
        _s3.manual_seed(seed)
        C = int(y.max()) + 1
        model = _Residual(pieces["linear"], X.shape[1], 8, C, seed)
        optimizer = ref.Adam(model.parameters(), lr=0.05)
        rng = np.random.default_rng(seed)
        for epoch in range(1, num_epochs + 1):
            del losses[:]
            returned = pieces["train_epoch"](
                model, loss_fn, optimizer, X, y, batch_size, rng
            )
            out[f"the loss of every step of epoch {epoch}"] = np.array(
                losses, dtype=np.float64
            )
            pair = isinstance(returned, (tuple, list)) and len(returned) == 2
            mean = returned[0] if pair else returned
            out[
                f"the mean loss returned by epoch {epoch} is a number"
            ] = not isinstance(mean, ref.Tensor)
            if not isinstance(mean, ref.Tensor):
                out[f"the mean loss returned by epoch {epoch}"] = mean
            out[f"the parameters after epoch {epoch}"] = copy_params(model.state_dict())
    return out


def training(student) -> CheckResult:
    """Check that the pieces train together: the notebook's operations, engine,
    loss, ``Linear`` and ``train_epoch``, for three epochs of a small residual MLP
    (a tensor used twice, a scale broadcast over the batch, an L2 penalty; the last
    batch of each epoch smaller), every step's loss, the mean loss returned and the
    parameters compared."""
    X = _randn((26, 5), 700)
    y = _inputs.rng(701).integers(0, 3, size=26)
    y[:3] = np.arange(3)
    run = explain_errors(
        _run_training, student, _ORDER, _pieces, ref.train_epoch, _ADVICE
    )
    cases = [
        Case(
            "a residual MLP 5 → 8 (+ 8) → 3, 26 examples in batches of 8, 3 epochs",
            (X, y, 8, 3, 0),
            run=run,
        ),
    ]
    return blame_earlier(
        LAB,
        "training",
        student,
        [(piece, None) for piece in _TRAINING_USES],  # the notebook's, by _pieces
        lambda record: run_check(
            "training",
            student,
            ref.train_epoch,
            cases,
            rtol=1e-3,
            atol=1e-5,
            hints=[
                diverged_hint(
                    _ORDER, _pieces, student, ref.train_epoch, _run_training, _ADVICE
                )
            ],
            record=record,
        ),
        even_if_passed=True,
    )


# every exercise the training run reaches, in the lab's order (its model and loss
# use no Exp and no Log)
_TRAINING_USES = tuple(piece for piece in _ORDER if piece not in ("exp", "log"))


def summary() -> Summary:
    """The table of lab 4's exercises and which passed."""
    return LAB.summary()
