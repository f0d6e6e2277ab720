"""Checks for lab 5: convolutions on the autograd.

The student writes ``im2col`` and ``col2im`` (plain array functions), the
convolution as a stage-4 ``Function`` (``Conv2dFunction``: forward by im2col and one
matrix product, backward by that product's rule and col2im), 2x2 max pooling as a
``Function`` (``MaxPool``: the gradient to the first maximum of each window, in
row-major order) and ``flatten``. Each is compared with
:mod:`utils.reference.stage5` on its own:

* ``im2col`` and ``col2im`` on uneven shapes (N = 1, C > 1 so that the order inside
  a patch shows, non-square kernels, stride 2 and 3, padding 1 and 2);
* the two ``Function`` s run ``forward`` then ``backward`` on one context with a
  random ``grad_output``, so that every gradient is compared; max pooling also on
  windows whose maximum is tied, and on an odd size (the last row dropped);
* ``flatten`` on a tensor that requires a gradient: the output and the gradient
  that reaches the input;
* ``training`` runs the student's pieces together in a small CNN for two epochs
  (Adam, the last batch smaller) and compares every step's loss and the
  parameters, naming the first piece that diverges on its own.

Usage in the lab::

    from utils.check import lab5 as check
    check.im2col(im2col)
    ...
    check.training(cnn)
    check.summary()
"""

from __future__ import annotations

from typing import Any

import numpy as np

from utils.check.core import (
    Case,
    CheckResult,
    Inputs,
    Lab,
    Mistake,
    Summary,
    _reference_for,
    finish,
    run_check,
    used_reference,
)
from utils.check.integration import copy_params, diverged_hint, explain_errors
from utils.reference import stage4 as nn
from utils.reference import stage5 as ref

# what the grader's split path sends as data (utils.grading.wire's records): stage
# 4's tensors and contexts, as in lab 4; a copy's methods are stage 4's own there
WIRE_RECORDS = (
    ("utils.reference.stage4:Parameter", nn.Parameter, nn.Parameter, (), True),
    ("utils.reference.stage4:Tensor", nn.Tensor, nn.Tensor, (), False),
    ("utils.reference.stage4:Context", nn.Context, nn.Context, (), False),
)

LAB = Lab(
    "Lab 5: convolutions",
    ["im2col", "col2im", "conv2d", "max_pool", "flatten", "training"],
    references={
        "im2col": ref.im2col,
        "col2im": ref.col2im,
        "conv2d": ref.Conv2dFunction,
        "max_pool": ref.MaxPool,
        "flatten": ref.flatten,
    },
    module=__name__,
)

_inputs = Inputs(base_seed=5000)
_randn = _inputs.randn

# (x shape, kh, kw, stride, padding): C > 1 (patch order), N = 1, uneven sizes
_GEOMETRIES = [
    ((2, 3, 5, 6), 3, 3, 1, 0),
    ((1, 2, 7, 5), 3, 2, 2, 1),
    ((3, 1, 4, 4), 2, 2, 2, 0),
    ((2, 2, 5, 5), 3, 3, 1, 1),
    ((1, 2, 6, 7), 2, 3, 3, 2),
]


def _geometry_name(shape, kh, kw, stride, padding) -> str:
    return f"x {shape}, a {kh}x{kw} window, stride {stride}, padding {padding}"


# =========================================================================== im2col
def _im2col_channels_last(x, kh, kw, stride=1, padding=0):
    cols = ref.im2col(x, kh, kw, stride, padding)
    C = x.shape[1]
    return cols.reshape(-1, C, kh, kw).transpose(0, 2, 3, 1).reshape(len(cols), -1)


def _im2col_no_padding(x, kh, kw, stride=1, padding=0):  # noqa: ARG001
    return ref.im2col(x, kh, kw, stride, 0)


def _im2col_no_stride(x, kh, kw, stride=1, padding=0):  # noqa: ARG001
    return ref.im2col(x, kh, kw, 1, padding)


def _im2col_columns_first(x, kh, kw, stride=1, padding=0):
    N, _, H, W = x.shape
    Ho = ref.conv_output_size(H, kh, stride, padding)
    Wo = ref.conv_output_size(W, kw, stride, padding)
    cols = ref.im2col(x, kh, kw, stride, padding)
    return cols.reshape(N, Ho, Wo, -1).transpose(0, 2, 1, 3).reshape(len(cols), -1)


_PATCH_ORDER = (
    "the entries of one row are in the wrong order: flatten each patch channel "
    "first, then row, then column, (C, kh, kw), the order of a filter W[f] "
    "flattened."
)


def im2col(student) -> CheckResult:
    """Check ``im2col(x, kh, kw, stride, padding)``: one patch per row."""
    cases = [
        Case(_geometry_name(s, kh, kw, st, p), (_randn(s, i), kh, kw, st, p))
        for i, (s, kh, kw, st, p) in enumerate(_GEOMETRIES)
    ]
    return run_check(
        "im2col",
        student,
        ref.im2col,
        cases,
        arg_names=("x", "kh", "kw", "stride", "padding"),
        mistakes=[
            Mistake(_PATCH_ORDER, _im2col_channels_last),
            Mistake(
                "the padding is missing: pad x with `padding` zeros on each side of "
                "its last two axes (np.pad) before taking the windows.",
                _im2col_no_padding,
            ),
            Mistake(
                "the stride is missing: keep every stride-th window along both "
                "spatial axes ([::stride]).",
                _im2col_no_stride,
            ),
            Mistake(
                "the rows are in the wrong order: row (n, i, j) is image n, output "
                "row i, output column j, with j changing fastest.",
                _im2col_columns_first,
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== col2im
def _col2im_overwrites(cols, x_shape, kh, kw, stride=1, padding=0):
    N, C, H, W = x_shape
    Ho = ref.conv_output_size(H, kh, stride, padding)
    Wo = ref.conv_output_size(W, kw, stride, padding)
    p = cols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a : a + stride * Ho : stride, b : b + stride * Wo : stride] = p[
                :, :, a, b
            ]
    return out[:, :, padding : padding + H, padding : padding + W]


def _col2im_keeps_padding(cols, x_shape, kh, kw, stride=1, padding=0):
    N, C, H, W = x_shape
    padded = (N, C, H + 2 * padding, W + 2 * padding)
    if padding == 0:
        return ref.col2im(cols, x_shape, kh, kw, stride, 0)
    # the padded gradient, as col2im without the last step
    full = np.zeros(padded, dtype=cols.dtype)
    full[:, :, padding:-padding, padding:-padding] = 0
    Ho = ref.conv_output_size(H, kh, stride, padding)
    Wo = ref.conv_output_size(W, kw, stride, padding)
    p = cols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    for a in range(kh):
        for b in range(kw):
            full[:, :, a : a + stride * Ho : stride, b : b + stride * Wo : stride] += p[
                :, :, a, b
            ]
    return full


def _col2im_no_stride(cols, x_shape, kh, kw, stride=1, padding=0):
    N, C, H, W = x_shape
    Ho = ref.conv_output_size(H, kh, stride, padding)
    Wo = ref.conv_output_size(W, kw, stride, padding)
    p = cols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a : a + Ho, b : b + Wo] += p[:, :, a, b]
    return out[:, :, padding : padding + H, padding : padding + W]


def col2im(student) -> CheckResult:
    """Check ``col2im(cols, x_shape, kh, kw, stride, padding)``: the adjoint of
    im2col, overlapping patches added."""
    cases = []
    for i, (s, kh, kw, st, p) in enumerate(_GEOMETRIES):
        n_rows = len(ref.im2col(np.zeros(s, np.float32), kh, kw, st, p))
        cols = _randn((n_rows, s[1] * kh * kw), 40 + i)
        cases.append(Case(_geometry_name(s, kh, kw, st, p), (cols, s, kh, kw, st, p)))
    return run_check(
        "col2im",
        student,
        ref.col2im,
        cases,
        arg_names=("cols", "x_shape", "kh", "kw", "stride", "padding"),
        mistakes=[
            Mistake(
                "overlapping patches must be added, not written: a pixel that lies "
                "in several patches gets the sum of its entries in all of them "
                "(+=, not =).",
                _col2im_overwrites,
            ),
            Mistake(
                "the padding must be cut off at the end: return the gradient of x "
                "itself, shape x_shape, not of the padded x.",
                _col2im_keeps_padding,
            ),
            Mistake(
                "the stride is missing: the patch of output (i, j) starts at "
                "(i * stride, j * stride).",
                _col2im_no_stride,
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== Functions
def _function_runner(names: tuple[str, ...], kwargs: dict):
    """``run(fn, *arrays, grad_output)``: forward on one context, then backward."""

    def run(fn, *args):
        *arrays, grad_output = args
        ctx = nn.Context((True,) * len(arrays), True)
        out = fn.forward(ctx, *arrays, **kwargs)
        grads = fn.backward(ctx, grad_output)
        result: dict[str, Any] = {"the output of forward": np.array(out, copy=True)}
        if len(names) == 1 and not isinstance(grads, (tuple, list)):
            grads = (grads,)
        if not isinstance(grads, (tuple, list)) or len(grads) != len(names):
            count = len(grads) if isinstance(grads, (tuple, list)) else 1
            result["the number of gradients backward returns"] = (
                f"{count} for {len(names)} input(s)"
            )
            return result
        result["the number of gradients backward returns"] = (
            f"{len(names)} for {len(names)} input(s)"
        )
        for name, g in zip(names, grads, strict=True):
            result[f"the gradient backward returns for {name}"] = (
                np.array(g, copy=True) if isinstance(g, np.ndarray) else g
            )
        return result

    return run


class _ConvForward(ref.Conv2dFunction):
    """Shared by the conv mistakes: the reference forward."""


class _ConvBackwardNoPadding(_ConvForward):
    @staticmethod
    def backward(ctx, grad_output):
        dx, dW, db = ref.Conv2dFunction.backward(ctx, grad_output)
        x_shape, kh, kw, stride, padding = ctx.geometry
        if padding:  # col2im as if there were no padding: the padded shape
            cols, Wm = ctx.saved_tensors
            F = grad_output.shape[1]
            dY = grad_output.transpose(0, 2, 3, 1).reshape(-1, F)
            N, C, H, W = x_shape
            padded = (N, C, H + 2 * padding, W + 2 * padding)
            dx = ref.col2im(dY @ Wm, padded, kh, kw, stride, 0)
        return dx, dW, db


class _ConvBiasMean(_ConvForward):
    @staticmethod
    def backward(ctx, grad_output):
        dx, dW, _ = ref.Conv2dFunction.backward(ctx, grad_output)
        return dx, dW, grad_output.mean(axis=(0, 2, 3))


class _ConvWeightTransposedRows(_ConvForward):
    @staticmethod
    def backward(ctx, grad_output):
        dx, dW, db = ref.Conv2dFunction.backward(ctx, grad_output)
        F, C, kh, kw = dW.shape
        flat = dW.reshape(F, C * kh * kw)
        # dY^T cols computed as cols^T dY and reshaped without transposing back
        return dx, flat.T.reshape(F, C, kh, kw), db


class _ConvNoGradOutputBias(_ConvForward):
    @staticmethod
    def backward(ctx, grad_output):
        dx, dW, _ = ref.Conv2dFunction.backward(ctx, grad_output)
        F = grad_output.shape[1]
        per = grad_output[:, :, :, :].size // F
        return dx, dW, np.full(F, per, dtype=grad_output.dtype)


def conv2d(student) -> CheckResult:
    """Check ``Conv2dFunction``: forward ``(N, F, Ho, Wo)``, backward ``dx, dW, db``."""
    cases = []
    specs = [
        ((2, 3, 5, 6), (4, 3, 3, 3), 1, 0),
        ((1, 2, 7, 5), (3, 2, 3, 2), 2, 1),
        ((3, 3, 6, 6), (3, 3, 3, 3), 1, 1),  # F = C, square: a transpose keeps shape
        ((2, 1, 6, 7), (2, 1, 2, 3), 3, 2),
    ]
    for i, (xs, ws, stride, padding) in enumerate(specs):
        x = _randn(xs, 80 + i)
        W = _randn(ws, 90 + i)
        b = _randn(ws[0], 100 + i)
        Ho = ref.conv_output_size(xs[2], ws[2], stride, padding)
        Wo = ref.conv_output_size(xs[3], ws[3], stride, padding)
        g = _randn((xs[0], ws[0], Ho, Wo), 110 + i)
        kwargs = {"stride": stride, "padding": padding}
        name = f"x {xs}, W {ws}, stride {stride}, padding {padding}"
        cases.append(
            Case(name, (x, W, b, g), run=_function_runner(("x", "W", "b"), kwargs))
        )
    return run_check(
        "conv2d",
        student,
        ref.Conv2dFunction,
        cases,
        arg_names=("x", "W", "b", "grad_output"),
        mistakes=[
            Mistake(
                "the gradient for x has the padded shape: col2im with the layer's "
                "padding cuts it off; backward must use the same stride and padding "
                "as forward (keep them in ctx).",
                _ConvBackwardNoPadding,
            ),
            Mistake(
                "the bias is added at every position of every image: its gradient is "
                "the sum of grad_output over the batch and both spatial axes, not "
                "the mean.",
                _ConvBiasMean,
            ),
            Mistake(
                "the weights' gradient is dY^T @ cols, (F, C kh kw), reshaped to "
                "(F, C, kh, kw); cols^T @ dY is its transpose.",
                _ConvWeightTransposedRows,
            ),
            Mistake(
                "the chain rule: the bias's gradient is grad_output summed, not a "
                "count of positions.",
                _ConvNoGradOutputBias,
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== pooling
class _PoolSpread(ref.MaxPool):
    @staticmethod
    def backward(ctx, grad_output):
        N, C, H, W = ctx.shape
        g = np.repeat(np.repeat(grad_output, 2, axis=2), 2, axis=3)
        dx = np.zeros((N, C, H, W), dtype=grad_output.dtype)
        dx[:, :, : g.shape[2], : g.shape[3]] = g
        return dx


class _PoolAverage(ref.MaxPool):
    @staticmethod
    def backward(ctx, grad_output):
        return _PoolSpread.backward(ctx, grad_output) / 4


class _PoolTiesToAll(ref.MaxPool):
    @staticmethod
    def forward(ctx, x):
        out = ref.MaxPool.forward(ctx, x)
        ctx.x = x
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, out = ctx.x, ctx.out
        Ho, Wo = out.shape[2:]
        up = np.repeat(np.repeat(out, 2, axis=2), 2, axis=3)
        g = np.repeat(np.repeat(grad_output, 2, axis=2), 2, axis=3)
        dx = np.zeros_like(x)
        crop = x[:, :, : 2 * Ho, : 2 * Wo]
        dx[:, :, : 2 * Ho, : 2 * Wo] = g * (crop == up)
        return dx


def _tied(shape, seed) -> np.ndarray:
    """Values with ties: integers 0..3, so many windows have a tied maximum."""
    return _inputs.rng(seed).integers(0, 4, size=shape).astype(np.float32)


def _hint_ties(got, expected, case) -> str:  # noqa: ARG001
    """On the tied case (the others passed): the rule for ties."""
    if "tied" in case.name:
        return (
            "the values are right where the maximum is unique: where several "
            "entries of a window tie for it, only the first of them (row-major, as "
            "np.argmax picks it) gets the gradient."
        )
    return ""


def max_pool(student) -> CheckResult:
    """Check ``MaxPool``: 2x2 windows, stride 2; the gradient to the first maximum
    of each window (row-major), 0 elsewhere."""
    specs = [
        ("distinct values, (2, 3, 4, 6)", _randn((2, 3, 4, 6), 130)),
        (
            "a batch of one, odd size (1, 2, 5, 7): last row and column dropped",
            _randn((1, 2, 5, 7), 131),
        ),
        ("tied maxima in many windows, (2, 2, 4, 4)", _tied((2, 2, 4, 4), 132)),
    ]
    cases = []
    for i, (name, x) in enumerate(specs):
        N, C, H, W = x.shape
        g = _randn((N, C, H // 2, W // 2), 140 + i)
        cases.append(Case(name, (x, g), run=_function_runner(("x",), {})))
    return run_check(
        "max_pool",
        student,
        ref.MaxPool,
        cases,
        arg_names=("x", "grad_output"),
        hints=[_hint_ties],
        mistakes=[
            Mistake(
                "the gradient goes to the maximum of each window only (the entry "
                "that forward kept), not to all four entries.",
                _PoolSpread,
            ),
            Mistake(
                "that is the gradient of average pooling: in max pooling the one "
                "entry that forward kept gets all of grad_output, the others 0.",
                _PoolAverage,
            ),
            Mistake(
                "where several entries of a window tie for the maximum, only the "
                "first of them (row-major: top-left, top-right, bottom-left, "
                "bottom-right; what np.argmax picks) gets the gradient.",
                _PoolTiesToAll,
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== flatten
def _run_flatten(flatten, x, weights):
    X = nn.Tensor(x, requires_grad=True)
    out = flatten(X)
    result: dict[str, Any] = {
        "the type of what flatten returns": "Tensor",
        "the output": None,
        "whether the output is part of the graph": "yes",
        "the gradient that reaches x": None,
    }
    if not isinstance(out, nn.Tensor):
        result["the type of what flatten returns"] = (
            f"{type(out).__name__}, not a Tensor (reshape the tensor: x.reshape(...))"
        )
        return result
    result["the output"] = np.array(out.data, copy=True)
    if not out.requires_grad:
        result["whether the output is part of the graph"] = (
            "no: computed from x.data, not recorded"
        )
        return result
    (out * weights.reshape(out.shape)).sum().backward()
    result["the gradient that reaches x"] = X.grad
    return result


def _flatten_nhwc(x):
    return x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)


def _flatten_all(x):
    return x.reshape(-1)


def _flatten_data(x):
    return nn.Tensor(x.data.reshape(x.shape[0], -1))


def _flatten_swap_hw(x):
    return x.transpose(0, 1, 3, 2).reshape(x.shape[0], -1)


def flatten(student) -> CheckResult:
    """Check ``flatten``: ``(N, C, H, W) -> (N, C*H*W)`` in C order, recorded."""
    cases = []
    for i, shape in enumerate([(2, 3, 4, 5), (1, 4, 3, 3), (3, 2, 2, 6)]):
        x = _randn(shape, 150 + i)
        w = _randn((shape[0], int(np.prod(shape[1:]))), 160 + i)
        cases.append(Case(f"x {shape}", (x, w), run=_run_flatten))
    return run_check(
        "flatten",
        student,
        ref.flatten,
        cases,
        arg_names=("x",),
        mistakes=[
            Mistake(
                "the features are in the wrong order: keep the NCHW order (channel, "
                "then row, then column), x.reshape(N, -1), without moving the "
                "channels last.",
                _flatten_nhwc,
            ),
            Mistake(
                "keep the batch axis: (N, C, H, W) becomes (N, C * H * W), one row "
                "per image, not one long vector.",
                _flatten_all,
            ),
            Mistake(
                "reshape the tensor itself, not x.data: an operation on the plain "
                "array is not recorded, so no gradient reaches the layers below.",
                _flatten_data,
            ),
            Mistake(
                "the features are in the wrong order: rows before columns, "
                "x.reshape(N, -1) as it is.",
                _flatten_swap_hw,
            ),
        ],
        record=LAB.record,
    )


# =========================================================================== training
_GLOBAL_NAMES = {
    "conv2d": "Conv2dFunction",
    "max_pool": "MaxPool",
    "flatten": "flatten",
}
_ORDER = tuple(_GLOBAL_NAMES)
_REFERENCE_PIECES = {k: LAB.references[k] for k in _ORDER}
_ADVICE = {
    "conv2d": "Run check.conv2d (and check.im2col, check.col2im) again.",
    "max_pool": "Run check.max_pool again.",
    "flatten": "Run check.flatten again.",
}
_apply = nn.Function.apply.__func__  # apply for any Function class, as the lab's


def _pieces(impl: Any) -> dict[str, Any]:
    """The pieces that ``impl`` (the lab's ``cnn``) sees: the notebook's, or the
    reference's where the notebook has none."""
    if isinstance(impl, dict):
        return impl
    if impl is _reference_cnn:
        return dict(_REFERENCE_PIECES)
    space = getattr(impl, "__globals__", None)
    space = space if isinstance(space, dict) else {}
    found = {}
    for piece, name in _GLOBAL_NAMES.items():
        value = space.get(name)
        found[piece] = value if value is not None else _REFERENCE_PIECES[piece]
    return found


class _TinyCNN(nn.Module):
    """(N, 1, 6, 6) -> conv 3x3 pad 1 -> relu -> pool -> conv 3x3 stride 2 pad 1
    -> relu -> flatten -> linear, with the run's pieces."""

    def __init__(self, pieces: dict[str, Any], seed: int) -> None:
        super().__init__()
        self.pieces = pieces
        rng = np.random.default_rng(seed)
        self.W1 = nn.Parameter(rng.standard_normal((3, 1, 3, 3)) * 0.5)
        self.b1 = nn.Parameter(rng.standard_normal(3) * 0.1)
        self.W2 = nn.Parameter(rng.standard_normal((4, 3, 3, 3)) * 0.3)
        self.b2 = nn.Parameter(rng.standard_normal(4) * 0.1)
        self.fc = nn.Linear(16, 3, seed=seed)

    def forward(self, x):
        conv, pool, flat = (self.pieces[k] for k in _ORDER)
        h = _apply(conv, x, self.W1, self.b1, stride=1, padding=1).relu()
        h = _apply(pool, h)  # (N, 3, 3, 3)
        h = _apply(conv, h, self.W2, self.b2, stride=2, padding=1).relu()  # (N,4,2,2)
        return self.fc(flat(h))


_BUILT = "cnn((6, 6), (3, 4)) on 14 images: the logits' shape, the parameter count"


def _built(impl: Any, X: np.ndarray) -> np.ndarray:
    """What the lab's ``cnn`` builds (the reference's when ``impl`` is the reference
    or a dict of pieces): the shape of its logits on ``X``, its parameter count."""
    build = ref.cnn if impl is _reference_cnn or isinstance(impl, dict) else impl
    model = build((6, 6), (3, 4))
    # (a model that a kernel of the grader's split path built is not a Module of
    # this process: its stand-in here has the Module's methods)
    if not isinstance(model, nn.Module) and not (
        callable(model) and callable(getattr(model, "parameters", None))
    ):
        raise TypeError(
            f"cnn((6, 6), (3, 4)) returned a {type(model).__name__}, not a model "
            "(a Module, such as the Sequential the given cnn builds)."
        )
    with nn.no_grad():
        logits = model(X.reshape(len(X), -1))  # (N, 10)
    if not isinstance(logits, nn.Tensor):
        raise TypeError(
            f"the model that cnn built returned a {type(logits).__name__}, not a "
            "Tensor of logits."
        )
    count = sum(int(np.size(p.data)) for p in model.parameters())
    return np.array([*logits.shape, count])


def _run_training(impl, X, y, batch_size, num_epochs, seed):
    out: dict[str, Any] = {_BUILT: _built(impl, X)}
    pieces = _pieces(impl)
    model = _TinyCNN(pieces, seed)
    optimizer = nn.Adam(model.parameters(), lr=0.02)
    rng = np.random.default_rng(seed)
    for epoch in range(1, num_epochs + 1):
        losses = []
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        out[f"the loss of every step of epoch {epoch}"] = np.array(losses)
        out[f"the parameters after epoch {epoch}"] = copy_params(model.state_dict())
    return out


def _reference_cnn() -> None:
    """Stands for the lab's ``cnn`` in the reference run (its globals have no
    pieces, so the reference's are used; the model is the reference's ``cnn``)."""


def training(student) -> CheckResult:
    """Check that the pieces train together: the notebook's ``cnn`` builds a model
    that gives logits of the right shape; its ``Conv2dFunction``, ``MaxPool`` and
    ``flatten`` in a small CNN, two epochs of Adam (the last batch smaller), every
    step's loss and the parameters compared."""
    pieces = _pieces(student) if callable(student) else {}
    if any(_reference_for(p) for p in pieces.values()):
        # trained with a piece that check.reference handed out: never "passed"
        return finish(used_reference("training"), LAB.record)
    X = _randn((14, 1, 6, 6), 700)
    y = _inputs.rng(701).integers(0, 3, size=14)
    # an exception of the student's code names the piece that raises alone
    run = explain_errors(
        _run_training, student, _ORDER, _pieces, _reference_cnn, _ADVICE
    )
    cases = [
        Case(
            "a CNN (1, 6, 6) → conv 3 → pool → conv 4, stride 2 → 3 classes, 14 "
            "images in batches of 4, 2 epochs",
            (X, y, 4, 2, 0),
            run=run,
        )
    ]
    return run_check(
        "training",
        student,
        _reference_cnn,
        cases,
        rtol=1e-3,
        atol=1e-5,
        hints=[
            diverged_hint(
                _ORDER, _pieces, student, _reference_cnn, _run_training, _ADVICE
            )
        ],
        record=LAB.record,
    )


def summary() -> Summary:
    """The table of lab 5's exercises and which passed."""
    return LAB.summary()
