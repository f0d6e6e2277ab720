"""Lab 5: typical wrong implementations, as students write them."""

import types

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tests.catalogue import Wrong
from utils.check import lab5 as LAB
from utils.reference import stage4 as nn
from utils.reference import stage5 as REFERENCE
from utils.reference.stage4 import Function

ref = REFERENCE
# the notebook's names, which lab_using replaces in its copy of lab_cnn's globals
Conv2dFunction, MaxPool, flatten = ref.Conv2dFunction, ref.MaxPool, ref.flatten


class _ConvLayer(nn.Module):
    """The lab's Conv2d, on the notebook's Conv2dFunction (``fn``)."""

    def __init__(self, fn, C, F, seed):
        super().__init__()
        self.fn = fn
        rng = np.random.default_rng(seed)
        self.W = nn.Parameter(rng.standard_normal((F, C, 3, 3)) * np.sqrt(2 / (9 * C)))
        self.b = nn.Parameter(np.zeros(F))

    def forward(self, x):
        return self.fn.apply(x, self.W, self.b, stride=1, padding=1)


class _Apply(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def lab_cnn(image_shape=(28, 28), channels=(8, 16)):
    """The lab's cnn, built on the notebook's pieces (this function's globals)."""
    H, W = image_shape
    c1, c2 = channels
    return nn.Sequential(
        _Apply(lambda x: nn.Tensor(x).reshape(len(x), 1, H, W)),
        _ConvLayer(Conv2dFunction, 1, c1, 0),
        _Apply(lambda x: x.relu()),
        _Apply(MaxPool.apply),
        _ConvLayer(Conv2dFunction, c1, c2, 1),
        _Apply(lambda x: x.relu()),
        _Apply(MaxPool.apply),
        _Apply(flatten),
        nn.Linear(c2 * (H // 4) * (W // 4), 10),
    )


def lab_using(**pieces):
    """A notebook whose pieces are the reference's, but for ``pieces`` (by their
    names in the lab): its ``cnn``."""
    space = {
        "np": np,
        "nn": nn,
        "_ConvLayer": _ConvLayer,
        "_Apply": _Apply,
        "Conv2dFunction": ref.Conv2dFunction,
        "MaxPool": ref.MaxPool,
        "flatten": ref.flatten,
    }
    space.update(pieces)
    return types.FunctionType(lab_cnn.__code__, space, "cnn")


_IMPLS = dict(LAB.LAB.references)
_IMPLS["training"] = lab_using()
REFERENCE_IMPLS = _IMPLS


def _sizes(x_shape, kh, kw, stride, padding):
    _, _, H, W = x_shape
    return (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1


# im2col ----------------------------------------------------------------------
def im2col_channels_last(x, kh, kw, stride=1, padding=0):
    N = x.shape[0]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.transpose(0, 2, 3, 4, 5, 1).reshape(N * win.shape[2] * win.shape[3], -1)


def im2col_no_padding(x, kh, kw, stride=1, padding=0):
    N, C = x.shape[:2]
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C * kh * kw)


def im2col_no_stride(x, kh, kw, stride=1, padding=0):
    C = x.shape[1]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C * kh * kw)


def im2col_positions_swapped(x, kh, kw, stride=1, padding=0):
    C = x.shape[1]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.transpose(0, 3, 2, 1, 4, 5).reshape(-1, C * kh * kw)


def im2col_float64(x, kh, kw, stride=1, padding=0):
    return ref.im2col(x.astype(np.float64), kh, kw, stride, padding)


# col2im ----------------------------------------------------------------------
def _patches(cols, x_shape, kh, kw, stride, padding):
    N, C, _, _ = x_shape
    Ho, Wo = _sizes(x_shape, kh, kw, stride, padding)
    return cols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2), Ho, Wo


def col2im_overwrites(cols, x_shape, kh, kw, stride=1, padding=0):
    N, C, H, W = x_shape
    p, Ho, Wo = _patches(cols, x_shape, kh, kw, stride, padding)
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a : a + stride * Ho : stride, b : b + stride * Wo : stride] = p[
                :, :, a, b
            ]
    return out[:, :, padding : padding + H, padding : padding + W]


def col2im_keeps_padding(cols, x_shape, kh, kw, stride=1, padding=0):
    N, C, H, W = x_shape
    p, Ho, Wo = _patches(cols, x_shape, kh, kw, stride, padding)
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a : a + stride * Ho : stride, b : b + stride * Wo : stride] += p[
                :, :, a, b
            ]
    return out


def col2im_no_stride(cols, x_shape, kh, kw, stride=1, padding=0):
    N, C, H, W = x_shape
    p, Ho, Wo = _patches(cols, x_shape, kh, kw, stride, padding)
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a : a + Ho, b : b + Wo] += p[:, :, a, b]
    return out[:, :, padding : padding + H, padding : padding + W]


def col2im_crops_wrong_side(cols, x_shape, kh, kw, stride=1, padding=0):
    N, C, H, W = x_shape
    p, Ho, Wo = _patches(cols, x_shape, kh, kw, stride, padding)
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a : a + stride * Ho : stride, b : b + stride * Wo : stride] += p[
                :, :, a, b
            ]
    return out[:, :, :H, :W]


# conv2d ----------------------------------------------------------------------
class _Conv(Function):
    @staticmethod
    def forward(ctx, x, W, b, stride=1, padding=0):
        F, C, kh, kw = W.shape
        N = x.shape[0]
        Ho, Wo = _sizes(x.shape, kh, kw, stride, padding)
        cols = ref.im2col(x, kh, kw, stride, padding)
        ctx.save_for_backward(cols, W)
        ctx.geometry = (x.shape, stride, padding)
        out = cols @ W.reshape(F, -1).T + b
        return out.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)


class ConvNoPaddingInBackward(_Conv):
    @staticmethod
    def backward(ctx, grad_output):
        cols, W = ctx.saved_tensors
        x_shape, stride, padding = ctx.geometry
        F, C, kh, kw = W.shape
        dY = grad_output.transpose(0, 2, 3, 1).reshape(-1, F)
        dW = (dY.T @ cols).reshape(W.shape)
        N, _, H, Wd = x_shape
        padded = (N, C, H + 2 * padding, Wd + 2 * padding)
        dx = ref.col2im(dY @ W.reshape(F, -1), padded, kh, kw, stride, 0)
        return dx, dW, dY.sum(axis=0)


class ConvBiasMean(_Conv):
    @staticmethod
    def backward(ctx, grad_output):
        cols, W = ctx.saved_tensors
        x_shape, stride, padding = ctx.geometry
        F, C, kh, kw = W.shape
        dY = grad_output.transpose(0, 2, 3, 1).reshape(-1, F)
        dx = ref.col2im(dY @ W.reshape(F, -1), x_shape, kh, kw, stride, padding)
        return dx, (dY.T @ cols).reshape(W.shape), dY.mean(axis=0)


class ConvWrongReshapeOfDY(_Conv):
    """grad_output reshaped to (N Ho Wo, F) without moving F last first."""

    @staticmethod
    def backward(ctx, grad_output):
        cols, W = ctx.saved_tensors
        x_shape, stride, padding = ctx.geometry
        F, C, kh, kw = W.shape
        dY = grad_output.reshape(-1, F)
        dx = ref.col2im(dY @ W.reshape(F, -1), x_shape, kh, kw, stride, padding)
        return dx, (dY.T @ cols).reshape(W.shape), dY.sum(axis=0)


class ConvDWTransposed(_Conv):
    @staticmethod
    def backward(ctx, grad_output):
        cols, W = ctx.saved_tensors
        x_shape, stride, padding = ctx.geometry
        F, C, kh, kw = W.shape
        dY = grad_output.transpose(0, 2, 3, 1).reshape(-1, F)
        dx = ref.col2im(dY @ W.reshape(F, -1), x_shape, kh, kw, stride, padding)
        return dx, (cols.T @ dY).reshape(W.shape), dY.sum(axis=0)


class ConvForwardNCHWWrong(_Conv):
    """Forward reshapes (N Ho Wo, F) straight to (N, F, Ho, Wo)."""

    @staticmethod
    def forward(ctx, x, W, b, stride=1, padding=0):
        F, C, kh, kw = W.shape
        N = x.shape[0]
        Ho, Wo = _sizes(x.shape, kh, kw, stride, padding)
        cols = ref.im2col(x, kh, kw, stride, padding)
        ctx.save_for_backward(cols, W)
        ctx.geometry = (x.shape, stride, padding)
        return (cols @ W.reshape(F, -1).T + b).reshape(N, F, Ho, Wo)

    backward = ConvDWTransposed.backward  # the rest as in the right layer


# max_pool --------------------------------------------------------------------
class _Pool(Function):
    @staticmethod
    def forward(ctx, x):
        N, C, H, W = x.shape
        Ho, Wo = H // 2, W // 2
        win = x[:, :, : 2 * Ho, : 2 * Wo].reshape(N, C, Ho, 2, Wo, 2)
        out = win.max(axis=(3, 5))
        ctx.save_for_backward(x, out)
        return out


class PoolSpreadToWindow(_Pool):
    @staticmethod
    def backward(ctx, grad_output):
        x, _ = ctx.saved_tensors
        g = grad_output.repeat(2, axis=2).repeat(2, axis=3)
        dx = np.zeros_like(x)
        dx[:, :, : g.shape[2], : g.shape[3]] = g
        return dx


class PoolAverage(_Pool):
    @staticmethod
    def backward(ctx, grad_output):
        return PoolSpreadToWindow.backward(ctx, grad_output) / 4


class PoolMaskAllTies(_Pool):
    @staticmethod
    def backward(ctx, grad_output):
        x, out = ctx.saved_tensors
        up = out.repeat(2, axis=2).repeat(2, axis=3)
        g = grad_output.repeat(2, axis=2).repeat(2, axis=3)
        dx = np.zeros_like(x)
        h, w = up.shape[2:]
        dx[:, :, :h, :w] = g * (x[:, :, :h, :w] == up)
        return dx


class PoolLastTie(_Pool):
    """Ties to the last maximum of the window (argmax of the reversed window)."""

    @staticmethod
    def backward(ctx, grad_output):
        x, _ = ctx.saved_tensors
        N, C, H, W = x.shape
        Ho, Wo = H // 2, W // 2
        win = x[:, :, : 2 * Ho, : 2 * Wo].reshape(N, C, Ho, 2, Wo, 2)
        win = win.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, 4)
        last = 3 - win[..., ::-1].argmax(axis=-1)
        d = np.zeros_like(win)
        np.put_along_axis(d, last[..., None], grad_output[..., None], -1)
        d = d.reshape(N, C, Ho, Wo, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        dx = np.zeros_like(x)
        dx[:, :, : 2 * Ho, : 2 * Wo] = d.reshape(N, C, 2 * Ho, 2 * Wo)
        return dx


class PoolNoCrop(_Pool):
    """Assumes even sizes: fails on an odd one."""

    @staticmethod
    def backward(ctx, grad_output):
        x, out = ctx.saved_tensors
        up = out.repeat(2, axis=2).repeat(2, axis=3)
        g = grad_output.repeat(2, axis=2).repeat(2, axis=3)
        return g * (x == up)


# flatten ---------------------------------------------------------------------
def flatten_channels_last(x):
    return x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)


def flatten_everything(x):
    return x.reshape(-1)


def flatten_data(x):
    return nn.Tensor(x.data.reshape(x.shape[0], -1))


def flatten_returns_array(x):
    return x.data.reshape(x.shape[0], -1)


def flatten_columns_first(x):
    return x.transpose(0, 1, 3, 2).reshape(x.shape[0], -1)


WRONG = [
    Wrong("im2col", im2col_channels_last, "channel first", "patch order (kh, kw, C)"),
    Wrong("im2col", im2col_no_padding, "padding", "padding ignored"),
    Wrong("im2col", im2col_no_stride, "stride", "stride ignored"),
    Wrong("im2col", im2col_positions_swapped, "wrong order", "rows (n, j, i)"),
    Wrong("im2col", im2col_float64, "float64", "float64 result"),
    Wrong("col2im", col2im_overwrites, "added, not written", "= instead of +="),
    Wrong("col2im", col2im_keeps_padding, "padding", "padding not cut off"),
    Wrong("col2im", col2im_no_stride, "stride", "stride ignored"),
    Wrong("col2im", col2im_crops_wrong_side, "at", "padding cut on one side"),
    Wrong(
        "conv2d", ConvNoPaddingInBackward, "padding", "padding forgotten in backward"
    ),
    Wrong("conv2d", ConvBiasMean, "not the mean", "bias gradient a mean"),
    Wrong("conv2d", ConvDWTransposed, "transpose", "dW as cols^T dY"),
    Wrong(
        "conv2d", ConvWrongReshapeOfDY, "returns for x", "grad_output reshaped in NCHW"
    ),
    Wrong("conv2d", ConvForwardNCHWWrong, "output of forward", "output not transposed"),
    Wrong("max_pool", PoolSpreadToWindow, "not to all four", "gradient to the window"),
    Wrong("max_pool", PoolAverage, "average pooling", "gradient / 4"),
    Wrong("max_pool", PoolMaskAllTies, "tie", "ties to every maximum"),
    Wrong("max_pool", PoolLastTie, "first of them", "ties to the last maximum"),
    Wrong("max_pool", PoolNoCrop, "could not be broadcast", "odd size not cropped"),
    Wrong("flatten", flatten_channels_last, "wrong order", "NHWC order"),
    Wrong("flatten", flatten_everything, "batch axis", "flattened to one vector"),
    Wrong("flatten", flatten_data, "x.data", "flattens the data, not recorded"),
    Wrong("flatten", flatten_returns_array, "tensor", "returns an array"),
    Wrong("flatten", flatten_columns_first, "wrong order", "H and W swapped"),
    Wrong(
        "training",
        lab_using(Conv2dFunction=ConvBiasMean),
        "conv2d",
        "a conv whose bias gradient is a mean",
    ),
    Wrong(
        "training",
        lab_using(MaxPool=PoolAverage),
        "max_pool",
        "average pooling gradient",
    ),
    Wrong(
        "training",
        lab_using(flatten=flatten_channels_last),
        "flatten",
        "channels-last flatten",
    ),
]
