"""Stage 5: convolutions on the stage-4 autograd, past 99% on MNIST.

The reference implementation for chapter 5 and lab 5. Stage 4 gave an engine in
which a new layer is only a forward pass; this stage adds the layers of a
convolutional network and nothing else: no module here has a backward method, and
the only backward written is that of the new primitive operations.

* :class:`Conv2d` (the ``Function``) is a 2-D cross-correlation, as every deep
  learning library computes it, in the NCHW layout: input ``(N, C, H, W)``, weight
  ``(F, C, kh, kw)``, bias ``(F,)``, output ``(N, F, Ho, Wo)`` with
  ``Ho = (H + 2 padding - kh) // stride + 1``. Forward is *im2col*: every
  ``(C, kh, kw)`` patch of the padded input becomes one row of a matrix, so the
  convolution is one matrix product with the flattened filters. Backward is that
  product's backward, plus *col2im*, which adds each row of the patches' gradient
  back where the patch came from (patches overlap, so the additions pile up), then
  drops the padding.
* :class:`MaxPool` (the ``Function``) takes the largest value of each 2x2 window
  (stride 2); its gradient goes to that one entry of the window. **Ties**: when
  several entries of a window are equal to its maximum, the gradient goes to the
  first of them in row-major order (top-left, top-right, bottom-left,
  bottom-right), as ``np.argmax`` picks it (PyTorch's CPU kernel does the same);
  the others get 0, so the gradient of a window always sums to the gradient of its
  output. An odd last row or column is dropped, as in PyTorch (``floor`` mode).
* :class:`Flatten` is stage 4's ``reshape``: ``(N, C, H, W) -> (N, C * H * W)``, in
  C order (channel, then row, then column), which is PyTorch's order, so weights
  trained there would line up here.
* :func:`cnn` is a small network made of these with stage 4's ``Sequential``.
* :func:`shifted_cosine_epoch` makes the epoch that trains it past 99% on MNIST:
  stage 4's, with random shifts of every batch and a cosine learning rate.

The rule of each operation is the one-line comment at the top of its class.

Built on :mod:`utils.reference.stage4`'s public API only (``Function``,
``Context``, ``Tensor``, ``Parameter``, ``Module``, ``Sequential``, ``Linear``,
``ReLU``, ...).

References:
    K. Chellapilla, S. Puri, P. Simard, "High Performance Convolutional Neural
    Networks for Document Processing", 2006 (im2col: convolution as a matrix
    product).
    Stanford CS231n, "Convolutional Neural Networks",
    https://cs231n.github.io/convolutional-networks/ (shapes, im2col, pooling).
    V. Dumoulin, F. Visin, "A guide to convolution arithmetic for deep learning",
    arXiv:1603.07285 (output sizes with stride and padding).
    Y. LeCun et al., "Gradient-based learning applied to document recognition",
    Proc. IEEE 1998 (LeNet: weight sharing, pooling, MNIST).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from utils import data as _data
from utils.reference import stage3 as _s3
from utils.reference.stage4 import (
    DTYPE,
    Context,
    Function,
    Linear,
    Module,
    Parameter,
    ReLU,
    Sequential,
    Tensor,
)

__all__ = [
    "CNN_CHANNELS",
    "Conv2d",
    "Conv2dFunction",
    "Flatten",
    "MaxPool",
    "MaxPool2d",
    "cnn",
    "col2im",
    "conv2d",
    "conv2d_loops",
    "conv_output_size",
    "flatten",
    "im2col",
    "max_pool2d",
    "shifted_cosine_epoch",
]


# --------------------------------------------------------------------------- shapes
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """``floor((size + 2 padding - kernel) / stride) + 1``, the number of positions
    of a window of ``kernel`` along an axis of ``size`` (Dumoulin and Visin, 2016).

    Raises:
        ValueError: if the window does not fit even once.
    """
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"a kernel of {kernel} does not fit in a size of {size} with padding "
            f"{padding}: the output would be empty."
        )
    return out


def _pair_check(stride: int, padding: int) -> None:
    for name, v, low in (("stride", stride, 1), ("padding", padding, 0)):
        if isinstance(v, bool) or int(v) != v or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")


# --------------------------------------------------------------------------- im2col
def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0):
    """The patches of ``x`` as the rows of a matrix.

    Row ``(n, i, j)`` (in that order: image, output row, output column) holds the
    ``(C, kh, kw)`` window of the padded ``x`` whose top-left corner is at
    ``(i * stride, j * stride)``, flattened channel first, then row, then column:
    the order of a filter ``W[f]`` flattened, so that ``cols @ W.reshape(F, -1).T``
    is the convolution.

    Args:
        x: ``(N, C, H, W)``.
        kh, kw: the window's height and width.
        stride, padding: as in :class:`Conv2d`.

    Returns:
        ``(N * Ho * Wo, C * kh * kw)``, a new array in ``x``'s dtype (stored in
        column-major order, which is faster to fill and to multiply).
    """
    N, C, H, W = x.shape
    Ho = conv_output_size(H, kh, stride, padding)
    Wo = conv_output_size(W, kw, stride, padding)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # (N, C, H', W', kh, kw): a view, every window, no copy yet
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[
        :, :, : (Ho - 1) * stride + 1 : stride, : (Wo - 1) * stride + 1 : stride
    ]
    # the copy happens here, once, laid out (C, kh, kw, N, Ho, Wo) so that it copies
    # whole image rows at a time; its transpose is the (N Ho Wo, C kh kw) matrix
    # (a view in column-major order: the same entries, the same row order)
    cols_t = windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * kh * kw, N * Ho * Wo)
    return cols_t.T


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: each row's entries *added* back where the
    patch came from, then the padding cut off.

    Patches overlap when ``stride < kernel``: an input pixel lies in up to
    ``kh * kw`` patches and receives the sum of its entries in all of them (writing
    instead of adding would keep only the last). The loop runs over the ``kh * kw``
    offsets of the window, each one a strided slice of the whole batch.

    Args:
        cols: ``(N * Ho * Wo, C * kh * kw)``, e.g. ``dL/d cols``.
        x_shape: ``(N, C, H, W)``, the shape of the input that :func:`im2col` got.

    Returns:
        ``(N, C, H, W)`` in ``cols``' dtype.
    """
    N, C, H, W = x_shape
    Ho = conv_output_size(H, kh, stride, padding)
    Wo = conv_output_size(W, kw, stride, padding)
    # (C, kh, kw, N, Ho, Wo): entry [c, a, b, n, i, j] goes to [n, c, i s + a, j s + b]
    patches = cols.T.reshape(C, kh, kw, N, Ho, Wo)
    # summed channel-major, as the patches are laid out: (C, N, H + 2p, W + 2p)
    out = np.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a : a + stride * Ho : stride, b : b + stride * Wo : stride] += (
                patches[:, a, b]
            )
    out = out[:, :, padding : padding + H, padding : padding + W]  # padding cut off
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3))  # (N, C, H, W)


# --------------------------------------------------------------------------- Conv2d
class Conv2dFunction(Function):
    # Y = cols(X) @ Wm^T + b:  dWm = dY^T cols,  db = sum dY,  dX = col2im(dY Wm)
    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray,
        *,
        stride: int = 1,
        padding: int = 0,
    ) -> np.ndarray:
        if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[1]:
            raise ValueError(
                f"conv2d needs an input (N, C, H, W) and a weight (F, C, kh, kw) with "
                f"the same C; got {x.shape} and {weight.shape}."
            )
        N, _, H, W = x.shape
        F, _, kh, kw = weight.shape
        Ho = conv_output_size(H, kh, stride, padding)
        Wo = conv_output_size(W, kw, stride, padding)
        cols = im2col(x, kh, kw, stride, padding)  # (N Ho Wo, C kh kw)
        Wm = weight.reshape(F, -1)  # (F, C kh kw): one filter per row
        out = Wm @ cols.T + bias[:, None]  # (F, N Ho Wo), = (cols @ Wm^T + b)^T
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.geometry = (x.shape, kh, kw, stride, padding)
        # cols only for dW, the weight only for dX: nothing nobody uses
        ctx.save_for_backward(cols if need_w else None, Wm if need_x else None)
        # (F, N, Ho, Wo) -> NCHW, made contiguous for the next layer's windows
        return np.ascontiguousarray(out.reshape(F, N, Ho, Wo).transpose(1, 0, 2, 3))

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> tuple:
        cols, Wm = ctx.saved_tensors
        x_shape, kh, kw, stride, padding = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        F = grad_output.shape[1]
        dY_t = grad_output.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N Ho Wo) = dY^T
        dx = dW = db = None
        if need_w:
            dW = (dY_t @ cols).reshape(F, x_shape[1], kh, kw)  # (F, C, kh, kw)
        if need_b:
            db = dY_t.sum(axis=1)  # (F,)
        if need_x:
            dcols = (Wm.T @ dY_t).T  # (N Ho Wo, C kh kw) = dY Wm, column-major
            dx = col2im(dcols, x_shape, kh, kw, stride, padding)  # (N, C, H, W)
        return dx, dW, db


def conv2d(
    x: Tensor | np.ndarray,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """The convolution of ``x`` (N, C, H, W) with ``weight`` (F, C, kh, kw), plus
    ``bias`` (F,): ``out[n, f, i, j] = b[f] + sum_{c, a, b} W[f, c, a, b]
    xp[n, c, i s + a, j s + b]`` with ``xp`` the input padded by ``padding`` zeros.

    Returns:
        A tensor (N, F, Ho, Wo).
    """
    _pair_check(stride, padding)
    if bias is None:
        bias = np.zeros(weight.shape[0], dtype=weight.data.dtype)
    return Conv2dFunction.apply(
        x, weight, bias, stride=int(stride), padding=int(padding)
    )


# --------------------------------------------------------------------------- pooling
def _corners_2x2(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W) -> (N, C, H // 2, 2, W // 2, 2)``: entry ``[n, c, i, a, j, b]``
    is ``x[n, c, 2 i + a, 2 j + b]`` (an odd last row or column dropped). A view when
    ``H`` and ``W`` are even, a copy otherwise."""
    N, C, H, W = x.shape
    Ho, Wo = H // 2, W // 2
    return x[:, :, : 2 * Ho, : 2 * Wo].reshape(N, C, Ho, 2, Wo, 2)


class MaxPool(Function):
    # c = max over each 2x2 window:  da = dc at the window's (first) maximum, else 0
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[2] < 2 or x.shape[3] < 2:
            raise ValueError(
                f"max pooling 2x2 needs an input (N, C, H, W) with H, W >= 2, got "
                f"{x.shape}."
            )
        w = _corners_2x2(x)  # (N, C, Ho, 2, Wo, 2)
        # the four corners of every window, each a strided view of the whole batch
        tl, tr, bl, br = (w[:, :, :, a, :, b] for a in (0, 1) for b in (0, 1))
        out = np.maximum(np.maximum(tl, tr), np.maximum(bl, br))  # (N, C, Ho, Wo)
        # one mask per corner: is it the window's first maximum in row-major order?
        masks = [tl == out]  # (ties: the first of the equal entries wins)
        taken = masks[0].copy()
        for corner in (tr, bl):
            first = corner == out
            first &= ~taken
            masks.append(first)
            taken |= first
        masks.append(~taken)
        ctx.shape = x.shape
        ctx.save_for_backward(*masks)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: np.ndarray) -> np.ndarray:
        masks = ctx.saved_tensors  # 4 x (N, C, Ho, Wo), bool
        N, C, H, W = ctx.shape
        Ho, Wo = grad_output.shape[2:]
        even = (2 * Ho, 2 * Wo) == (H, W)
        # every entry of dx is written below when H and W are even
        dx = (np.empty if even else np.zeros)((N, C, H, W), dtype=grad_output.dtype)
        # (N, C, Ho, 2, Wo, 2): a view of dx, or for odd sizes a buffer copied in
        dwin = _corners_2x2(dx) if even else np.empty((N, C, Ho, 2, Wo, 2), dx.dtype)
        # each corner gets the output's gradient where it was the maximum, else 0
        for (a, b), mask in zip(((0, 0), (0, 1), (1, 0), (1, 1)), masks, strict=True):
            np.multiply(grad_output, mask, out=dwin[:, :, :, a, :, b])
        if not even:
            dx[:, :, : 2 * Ho, : 2 * Wo] = dwin.reshape(N, C, 2 * Ho, 2 * Wo)
        return dx


def max_pool2d(x: Tensor) -> Tensor:
    """2x2 max pooling with stride 2: ``(N, C, H, W) -> (N, C, H // 2, W // 2)``."""
    return MaxPool.apply(x)


# --------------------------------------------------------------------------- modules
class Conv2d(Module):
    """A convolution layer: ``Conv2d(in_channels, out_channels, kernel_size,
    stride=1, padding=0)``, only a forward.

    ``W`` is ``(out, in, k, k)`` with He initialisation over its fan-in
    ``in * k * k`` (stage 3's ``init_weight``), ``b`` is ``(out,)``, zeros.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _pair_check(stride, padding)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        fan_in = in_channels * kernel_size * kernel_size
        W = _s3.init_weight(fan_in, out_channels, seed=seed)  # (fan_in, out)
        shape = (in_channels, kernel_size, kernel_size, out_channels)
        self.W = Parameter(W.reshape(shape).transpose(3, 0, 1, 2))  # (out, in, k, k)
        self.b = Parameter(np.zeros(out_channels, dtype=DTYPE))

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d(in_channels={self.in_channels}) expects an input (N, "
                f"{self.in_channels}, H, W), got {tuple(x.shape)}."
            )
        return Conv2dFunction.apply(
            x, self.W, self.b, stride=self.stride, padding=self.padding
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size="
            f"{self.kernel_size}, stride={self.stride}, padding={self.padding}"
        )


class MaxPool2d(Module):
    """2x2 max pooling, stride 2, as a module (see :class:`MaxPool` for ties)."""

    def forward(self, x: Tensor) -> Tensor:
        return MaxPool.apply(x)


def flatten(x: Tensor) -> Tensor:
    """``(N, C, H, W) -> (N, C * H * W)`` in C order (channel, row, column): stage
    4's ``reshape``, whose backward reshapes the gradient back."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    return x.reshape(x.shape[0], -1)


class Flatten(Module):
    """:func:`flatten` as a module."""

    def forward(self, x: Tensor) -> Tensor:
        return flatten(x)


class _Images(Module):
    """``(N, H * W)`` rows of pixels -> ``(N, 1, H, W)`` images (stage 4's
    reshape); 4-D input is passed through."""

    def __init__(self, image_shape: tuple[int, int]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)

    def forward(self, x: Tensor | np.ndarray) -> Tensor | np.ndarray:
        if x.ndim == 4:
            return x
        return x.reshape(x.shape[0], 1, *self.image_shape)

    def extra_repr(self) -> str:
        return f"(N, {self.image_shape[0] * self.image_shape[1]}) -> (N, 1, " + (
            f"{self.image_shape[0]}, {self.image_shape[1]})"
        )


CNN_CHANNELS = (16, 32)


def cnn(
    image_shape: tuple[int, int] = (28, 28),
    channels: tuple[int, int] = CNN_CHANNELS,
    num_classes: int = 10,
    hidden: int | None = None,
) -> Sequential:
    """A small LeNet-like network, stage 4's ``Sequential`` of this stage's layers.

    ``(N, H*W)`` or ``(N, 1, H, W)`` -> conv 3x3 (pad 1) -> ReLU -> max pool ->
    conv 3x3 (pad 1) -> ReLU -> max pool -> flatten -> [Linear -> ReLU] -> Linear.

    Args:
        image_shape: ``(H, W)`` of the images (28x28 MNIST, 8x8 digits).
        channels: the two convolutions' output channels.
        num_classes: the number of outputs.
        hidden: the width of a hidden fully connected layer (``None``: none).
    """
    H, W = image_shape
    c1, c2 = channels
    features = c2 * (H // 2 // 2) * (W // 2 // 2)
    layers: list[Module] = [
        _Images(image_shape),
        Conv2d(1, c1, 3, padding=1),  # (N, c1, H, W)
        ReLU(),
        MaxPool2d(),  # (N, c1, H/2, W/2)
        Conv2d(c1, c2, 3, padding=1),  # (N, c2, H/2, W/2)
        ReLU(),
        MaxPool2d(),  # (N, c2, H/4, W/4)
        Flatten(),  # (N, c2 H/4 W/4)
    ]
    if hidden:
        layers += [Linear(features, hidden), ReLU()]
        features = hidden
    layers.append(Linear(features, num_classes))  # (N, classes)
    return Sequential(*layers)


# --------------------------------------------------------------------------- training
def shifted_cosine_epoch(
    lr: float,
    num_steps: int,
    image_shape: tuple[int, int],
    max_shift: int,
) -> Callable[..., tuple[float, float]]:
    """Stage 4's epoch with random shifts and a cosine learning rate, for ``fit``.

    Returns an ``epoch_fn`` for stage 4's :func:`~utils.reference.stage4.fit`,
    called as ``epoch_fn(model, loss_fn, optimizer, X, y, batch_size, rng)`` once
    per epoch. It is :func:`~utils.reference.stage4.train_epoch` with two changes:

    * every batch is moved by ``data.random_shift(Xb, image_shape, max_shift,
      rng)``, a new move for every image at every epoch, drawn from the same
      ``rng`` as the order of the minibatches (after that epoch's permutation);
    * before step ``t`` (counted from 0 over the whole run, across epochs) the
      learning rate is set to half a cosine from ``lr`` down to 0:

          lr_t = lr (1 + cos(pi t / T)) / 2,    t = 0, 1, ..., T - 1,

      with ``T = num_steps``: ``lr`` at the first step, ``lr / 2`` at the middle,
      close to 0 at the last.

    The step counter belongs to the returned function: make a new one for every
    run (a second run with the same one would go past ``T``: it raises there).

    Args:
        lr: the learning rate at the first step (the peak of the schedule).
        num_steps: ``T``, the optimizer steps of the whole run: ``num_epochs *
            ceil(len(X) / batch_size)``.
        image_shape: ``(H, W)`` of the images, for the shifts.
        max_shift: the largest move in pixels, up or down and left or right (0: no
            shift, and no draw from ``rng``).

    Returns:
        ``epoch_fn(model, loss_fn, optimizer, X, y, batch_size, rng)``, which runs
        one epoch and returns the mean training loss and accuracy over it, each
        batch measured before its step.

    Raises:
        ValueError: If ``num_steps < 1``. (``epoch_fn`` raises ``RuntimeError`` at
            a step past ``T``.)
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    steps = iter(range(num_steps))  # t = 0, ..., T - 1 over the whole run

    def epoch_fn(
        model: Module,
        loss_fn: Callable[[Tensor, np.ndarray], Tensor],
        optimizer: _s3.Optimizer,
        X: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        rng: np.random.Generator,
    ) -> tuple[float, float]:
        total_loss, correct = 0.0, 0
        for Xb, yb in _data.iterate_minibatches(X, y, batch_size, rng=rng):
            t = next(steps, None)
            if t is None:
                raise RuntimeError(
                    f"more than num_steps={num_steps} steps: make a new epoch_fn "
                    "for every run, with num_steps = num_epochs * ceil(len(X) / "
                    "batch_size)"
                )
            optimizer.lr = lr * (1 + np.cos(np.pi * t / num_steps)) / 2
            optimizer.zero_grad(set_to_none=True)
            logits = model(_data.random_shift(Xb, image_shape, max_shift, rng))
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(yb)
            correct += int(np.sum(logits.data.argmax(axis=1) == yb))
        return total_loss / len(y), correct / len(y)

    return epoch_fn


# --------------------------------------------------------------------------- testing
def conv2d_loops(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """The convolution by its definition, one output entry at a time (slow: for
    tests of :class:`Conv2d` on small shapes only). Computed in float64."""
    N, C, H, W = x.shape
    F, _, kh, kw = weight.shape
    Ho = conv_output_size(H, kh, stride, padding)
    Wo = conv_output_size(W, kw, stride, padding)
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    total = float(bias[f])
                    for c in range(C):
                        for a in range(kh):
                            for b in range(kw):
                                r = i * stride + a - padding
                                s = j * stride + b - padding
                                if 0 <= r < H and 0 <= s < W:
                                    total += float(weight[f, c, a, b]) * float(
                                        x[n, c, r, s]
                                    )
                    out[n, f, i, j] = total
    return out
