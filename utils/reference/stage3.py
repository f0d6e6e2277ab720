"""Stage 3: modules and optimizers, the design of PyTorch's ``nn`` in NumPy.

The reference implementation for chapter 3 and lab 3. Stage 2's ``Network`` owned a
flat list of layers and called ``update(lr)`` on each. Here a model is a
:class:`Module` whose attributes are layers and parameters, found automatically:

* :class:`Parameter` holds ``data`` and ``grad`` (same shape, float32). Layers add
  (``+=``) into ``grad`` in ``backward``, so gradients must be zeroed before each
  backward pass (:meth:`Module.zero_grad`, :meth:`Optimizer.zero_grad`). With
  ``zero_grad(set_to_none=True)``, as PyTorch does by default since 2.0, ``grad``
  becomes ``None`` instead and the first backward *assigns* its gradient
  (:func:`accumulate_grad`): no pass that fills zeros, no pass that adds to them.
* :class:`Module` registers every ``Parameter`` and sub-``Module`` assigned to it
  (``__setattr__``), in assignment order; :meth:`Module.parameters` walks the tree and
  returns each parameter once, even if it is shared; :meth:`Module.named_parameters`
  gives dotted names (``fc1.W``), which :meth:`Module.state_dict` uses.
* A generic :meth:`Module.backward` runs the submodules' ``backward`` in reverse order
  of registration. That is only right when the submodules are assigned in the order
  ``forward`` calls them and each is used once, on a chain; a layer used twice or a
  skip connection gets silently wrong gradients. Stage 4 (autograd,
  :mod:`utils.reference.stage4`) removes this limit by recording the operations as
  they run.
* :class:`Sequential` and :class:`ModuleList` make the order explicit.
* :class:`Linear` can be lazy: ``Linear(out_features)`` infers ``in_features`` from
  its first input.
* Losses are objects (:class:`CrossEntropyLoss`, :class:`MSELoss`) with ``forward``
  and ``backward``.
* Optimizers update a list of parameters: :class:`SGD` (with momentum) and
  :class:`Adam`. Every rule is written per parameter ``p`` with gradient ``g``:

  - SGD: ``p <- p - lr g``.
  - Momentum (Polyak's heavy ball, in the form of Sutskever et al. and PyTorch):
    ``v <- mu v + g``, ``p <- p - lr v``, with ``v`` starting at 0.
  - Adam (Kingma & Ba, Algorithm 1): at step ``t = 1, 2, ...``
    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``,
    ``p <- p - lr m_hat / (sqrt(v_hat) + eps)``.

* :func:`train_epoch`, :func:`evaluate` and :func:`fit` train a model and record a
  per-epoch history of loss and accuracy.

References:
    PyTorch, ``torch.nn.Module`` and ``torch.optim`` (the design followed here),
    https://pytorch.org/docs/stable/notes/modules.html
    B. T. Polyak, "Some methods of speeding up the convergence of iteration methods",
    USSR Computational Mathematics and Mathematical Physics 4(5), 1964.
    I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the importance of initialization
    and momentum in deep learning", ICML 2013.
    D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    K. He et al., "Delving Deep into Rectifiers", ICCV 2015 (He initialisation).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from utils import data as _data
from utils.reference.stage1 import numerical_gradient, relative_error

DTYPE = np.float32

__all__ = [
    "input_is_data",
    "SGD",
    "Adam",
    "CrossEntropyLoss",
    "Dropout",
    "LazyModuleError",
    "Linear",
    "Loss",
    "MSELoss",
    "Module",
    "ModuleList",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Sequential",
    "StateDictKeyError",
    "accuracy",
    "evaluate",
    "fit",
    "accumulate_grad",
    "gradient_check",
    "init_weight",
    "manual_seed",
    "train_epoch",
]


# --------------------------------------------------------------------------- seeding
_GLOBAL_RNG = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reseed the generator that layers built without ``seed=`` draw from.

    Like ``torch.manual_seed``: two models built (and, for lazy layers, run for the
    first time) in the same order after the same ``manual_seed`` get the same
    weights.
    """
    global _GLOBAL_RNG
    _GLOBAL_RNG = np.random.default_rng(seed)


def _rng(seed: int | None) -> np.random.Generator:
    """A fresh generator for an explicit seed, else the shared one."""
    return _GLOBAL_RNG if seed is None else np.random.default_rng(seed)


def init_weight(
    in_features: int,
    out_features: int,
    *,
    init: str = "he",
    seed: int | None = None,
) -> np.ndarray:
    """A random ``(in_features, out_features)`` float32 weight matrix.

    ``"he"``: ``W ~ N(0, 2 / in)``, which keeps the variance of the activations about
    constant through ReLU layers (He et al., 2015). ``"xavier"``:
    ``W ~ N(0, 2 / (in + out))`` (Glorot & Bengio, 2010).

    Args:
        in_features: fan-in.
        out_features: fan-out.
        init: ``"he"`` or ``"xavier"``.
        seed: a seed for this matrix alone; ``None`` draws from the generator that
            :func:`manual_seed` sets.

    Returns:
        (in_features, out_features) float32.
    """
    if init == "he":
        std = np.sqrt(2.0 / in_features)
    elif init == "xavier":
        std = np.sqrt(2.0 / (in_features + out_features))
    else:
        raise ValueError(f"init must be 'he' or 'xavier', got {init!r}")
    W = _rng(seed).standard_normal((in_features, out_features)) * std
    return W.astype(DTYPE)


# --------------------------------------------------------------------------- Parameter
class Parameter:
    """A trainable array and the gradient of the loss with respect to it.

    Attributes:
        data: the values, float32 by default (a copy of what was given).
        grad: ``dL/d data``, same shape and dtype, starting at 0. Layers *add* into
            it during ``backward`` (:func:`accumulate_grad`), so it must be zeroed
            before each backward pass; ``None`` after ``zero_grad(set_to_none=True)``
            until a backward pass assigns it.
    """

    def __init__(self, data: Any, *, dtype: Any = DTYPE) -> None:
        self.data = np.array(data, dtype=dtype)  # a copy: no aliasing with the caller
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Set the gradient to 0 *in place*: whoever holds ``grad`` sees the zeros.

        With ``set_to_none=True`` (PyTorch's default), ``grad`` becomes ``None``
        instead: the next backward assigns its gradient rather than adding it to
        zeros, which saves two passes over every gradient.
        """
        if set_to_none:
            self.grad = None
        elif self.grad is None:
            self.grad = np.zeros_like(self.data)
        else:
            self.grad.fill(0)

    def astype(self, dtype: Any) -> Parameter:
        """Convert ``data`` and ``grad`` to ``dtype`` (e.g. float64 for a gradient
        check). New arrays: convert before building an optimizer."""
        self.data = self.data.astype(dtype)
        self.grad = None if self.grad is None else self.grad.astype(dtype)
        return self

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype})"


class LazyModuleError(RuntimeError):
    """A lazy layer was asked for its parameters before it saw any input."""


class StateDictKeyError(KeyError):
    """A state dict whose keys do not match the model's parameters."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- Module
class Module:
    """Base class of layers and models: finds its parameters by itself.

    Assigning a :class:`Parameter` or a :class:`Module` to an attribute registers it,
    in assignment order (``self._parameters``, ``self._modules``); anything else is a
    plain attribute. Attribute access is ordinary Python: an unknown name raises
    ``AttributeError``.

    A subclass defines ``forward``, and ``backward`` unless the generic one below is
    right for it (see :meth:`backward`).

    Example::

        class MLP(Module):
            def __init__(self):
                super().__init__()
                self.fc1 = Linear(784, 128)   # registered as "fc1"
                self.act = ReLU()
                self.fc2 = Linear(10)          # lazy: in_features from fc1's output

            def forward(self, x):
                return self.fc2(self.act(self.fc1(x)))

        model = MLP()
        model(X[:1])                           # builds fc2
        [name for name, _ in model.named_parameters()]
        # ['fc1.W', 'fc1.b', 'fc2.W', 'fc2.b']
    """

    _parameters: dict[str, Parameter]
    _modules: dict[str, Module]
    training: bool

    def __init__(self) -> None:
        # object.__setattr__: these three must exist before our __setattr__ runs
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() has run: call "
                f"super().__init__() first in {type(self).__name__}.__init__."
            )
        modules = self.__dict__["_modules"]
        if isinstance(value, Parameter):
            modules.pop(name, None)
            params[name] = value  # a re-assigned name keeps its place
        elif isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
        else:  # a plain attribute (or None) replaces any registration
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # ------------------------------------------------------------ the tree
    def _check_initialized(self, path: str) -> None:
        """Raise :class:`LazyModuleError` if this module cannot list its parameters
        yet. Nothing to check here; lazy layers override it."""

    def named_modules(self, prefix: str = "") -> list[tuple[str, Module]]:
        """Every module of the tree, this one first (named ``prefix``), depth first,
        each once."""
        out: list[tuple[str, Module]] = []
        seen: set[int] = set()

        def visit(module: Module, path: str) -> None:
            if id(module) in seen:
                return
            seen.add(id(module))
            out.append((path, module))
            for name, child in module._modules.items():
                visit(child, f"{path}.{name}" if path else name)

        visit(self, prefix)
        return out

    def modules(self) -> list[Module]:
        """Every module of the tree, this one first, each once."""
        return [m for _, m in self.named_modules()]

    def children(self) -> list[Module]:
        """The direct submodules, in registration order."""
        return list(self._modules.values())

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` for every parameter of the tree, each once.

        A module's own parameters come first, then each submodule's, depth first, in
        registration order. A parameter (or module) reachable under several names
        is listed under the first one only.

        Raises:
            LazyModuleError: if a lazy layer has not seen its first input yet.
        """
        out: list[tuple[str, Parameter]] = []
        seen: set[int] = set()
        for path, module in self.named_modules(prefix):
            module._check_initialized(path or type(module).__name__)
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append((f"{path}.{name}" if path else name, p))
        return out

    def parameters(self) -> list[Parameter]:
        """Every parameter of the tree, each once (what an optimizer needs)."""
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """How many numbers the model learns."""
        return sum(p.size for p in self.parameters())

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every parameter's gradient, in place (``None`` with
        ``set_to_none=True``: see :meth:`Parameter.zero_grad`)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            else:
                p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        """Switch this module and all its submodules to training (or eval) mode."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (e.g. dropout off); same as ``train(False)``."""
        return self.train(False)

    def astype(self, dtype: Any) -> Module:
        """Convert every parameter to ``dtype`` (float64 for a gradient check)."""
        for p in self.parameters():
            p.astype(dtype)
        return self

    # ------------------------------------------------------------ running
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward().")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Generic backward: the submodules' ``backward`` in reverse registration order.

        This is the chain rule for ``forward(x) = m_k(...m_2(m_1(x)))`` where
        ``m_1, ..., m_k`` are the submodules **in the order they were assigned**. It
        assumes that ``forward`` calls each of them exactly once, in that order, each
        on the previous one's output. A layer used twice (its cache holds only the
        last input, and its gradient is propagated once), a skip connection
        (``f(x) + x``: the ``x`` branch is ignored), or layers assigned in another
        order than they are called all give wrong gradients *without any error*.
        Such a model must write its own ``backward`` (or use autograd:
        :mod:`utils.reference.stage4`).

        Args:
            dout: gradient of the loss with respect to the output of ``forward``.

        Returns:
            Gradient of the loss with respect to the input of ``forward``.
        """
        children = self.children()
        if not children:
            raise NotImplementedError(
                f"{type(self).__name__} has no submodules: it must define backward()."
            )
        for module in reversed(children):
            dout = module.backward(dout)
        return dout

    # ------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, np.ndarray]:
        """``{dotted name: copy of the parameter's data}``."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the parameters, in place (optimizers keep working).

        Raises:
            StateDictKeyError: (a ``KeyError``) if a parameter of the model is
                missing from ``state``, or ``state`` has a key the model does not
                know.
            ValueError: if a shape differs.
        """
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing key(s) {missing}")
            if unexpected:
                parts.append(f"unexpected key(s) {unexpected}")
            raise StateDictKeyError(
                f"state dict does not match {type(self).__name__}: "
                + "; ".join(parts)
                + f". The model's keys are {list(own)}."
            )
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(
                    f"state dict key {name!r} has shape {value.shape}, but the "
                    f"model's parameter has shape {p.data.shape}."
                )
        for name, p in own.items():
            p.data[...] = state[name]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to an ``.npz`` file."""
        np.savez(path, **self.state_dict())

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read an ``.npz`` written by :meth:`save` into this model."""
        with np.load(path, allow_pickle=False) as f:
            self.load_state_dict({k: f[k] for k in f.files})

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """What goes between the parentheses of this module's line in ``repr``."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = []
        if not extra:  # a layer's extra_repr describes its parameters; else list them
            lines += [f"({name}): {p!r}" for name, p in self._parameters.items()]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "".join(f"\n  {line}" for line in lines)
        return f"{type(self).__name__}({extra}{body}\n)"


# --------------------------------------------------------------------------- containers
class Sequential(Module):
    """A chain of modules: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    The layers are registered as ``"0"``, ``"1"``, ... in the order given, so the
    order forward and backward use cannot go wrong (names are compared as
    registration order, never sorted: ``"10"`` sorts before ``"2"`` as a string).
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            raise TypeError(
                "pass the layers as separate arguments, Sequential(a, b, c), or "
                "unpack a list: Sequential(*layers)."
            )
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential takes Modules; argument {i} is {type(layer).__name__}."
                )
            setattr(self, str(i), layer)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(list(self._modules.values())):
            dout = layer.backward(dout)
        return dout

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end."""
        setattr(self, str(len(self)), layer)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


class ModuleList(Module):
    """A list of modules, registered as ``"0"``, ``"1"``, ...; it has no forward.

    Use it when a model holds a variable number of layers: a plain Python list
    attribute is *not* registered, so its layers' parameters would be invisible to
    ``parameters()`` and to the optimizer.
    """

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules, got {type(module).__name__}.")
        setattr(self, str(len(self)), module)
        return self

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


# --------------------------------------------------------------------------- layers
def accumulate_grad(p: Parameter, grad: np.ndarray) -> None:
    """``p.grad += grad``, the one way a layer stores a parameter's gradient.

    After ``zero_grad(set_to_none=True)``, ``p.grad`` is ``None`` and ``grad`` is
    assigned (in ``p``'s dtype), not added to an array of zeros. ``grad`` must then
    be a new array that the layer keeps no other reference to (``x.T @ dout`` is).
    """
    if p.grad is None:
        p.grad = grad.astype(p.data.dtype, copy=False)
    else:
        p.grad += grad


class Linear(Module):
    """Affine layer ``out = x @ W + b``, optionally lazy.

    ``Linear(in_features, out_features)`` builds its parameters at once;
    ``Linear(out_features)`` waits for its first input and takes
    ``in_features = x.shape[1]`` from it. Until then, asking for its parameters
    raises :class:`LazyModuleError`.

    Backward, with ``dout = dL/d out`` of shape (N, out):
    ``dW = x.T @ dout`` (in, out), ``db = sum_i dout_i`` (out,), ``dx = dout @ W.T``
    (N, in). ``dW`` and ``db`` are *added* to ``W.grad`` and ``b.grad``.

    A first layer, whose input is the data, takes ``input_grad=False``: nothing
    learns the data, so ``dx`` would be computed for nothing, and it costs as much
    as ``dW`` (for 784-pixel images, the largest product of the backward pass).
    ``backward`` then skips it and returns ``None``, as PyTorch skips the gradient
    of an input that does not require one.

    Args:
        in_or_out: ``in_features`` when ``out_features`` is given, else
            ``out_features`` (lazy).
        out_features: number of outputs.
        init: ``"he"`` (default) or ``"xavier"``, see :func:`init_weight`.
        seed: seed of this layer's weights; ``None`` uses :func:`manual_seed`'s
            generator, drawn when the weights are built.
        input_grad: whether ``backward`` computes and returns ``dx``; ``False``
            for a layer whose input is the data.
    """

    def __init__(
        self,
        in_or_out: int,
        out_features: int | None = None,
        *,
        init: str = "he",
        seed: int | None = None,
        input_grad: bool = True,
    ) -> None:
        super().__init__()
        if out_features is None:
            in_features, out_features = None, in_or_out
        else:
            in_features = in_or_out
        sizes = (("in_features", in_features), ("out_features", out_features))
        for label, value in sizes:
            if value is not None and (
                isinstance(value, bool) or int(value) != value or value < 1
            ):
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if init not in ("he", "xavier"):
            raise ValueError(f"init must be 'he' or 'xavier', got {init!r}")
        self.in_features: int | None = None
        self.out_features = int(out_features)
        self.init = init
        self.seed = seed
        self.input_grad = bool(input_grad)
        self.W: Parameter | None = None
        self.b: Parameter | None = None
        self._x: np.ndarray | None = None
        if in_features is not None:
            self.reset_parameters(int(in_features))

    def reset_parameters(self, in_features: int) -> None:
        """Build ``W`` (in, out), random, and ``b`` (out,), zeros."""
        self.in_features = in_features
        self.W = Parameter(
            init_weight(in_features, self.out_features, init=self.init, seed=self.seed)
        )
        self.b = Parameter(np.zeros(self.out_features, dtype=DTYPE))

    def _check_initialized(self, path: str) -> None:
        if self.W is None:
            raise LazyModuleError(
                f"{path!r} is a lazy Linear(out_features={self.out_features}): it "
                "infers in_features from its first input and has no parameters until "
                "then. Run one forward pass (e.g. model(X[:1])) before asking for "
                "parameters, building an optimizer or loading a state dict."
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2:
            raise ValueError(f"Linear expects a (N, features) array, got {x.shape}.")
        if self.W is None:
            self.reset_parameters(x.shape[1])
        elif x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear(in_features={self.in_features}, out_features="
                f"{self.out_features}) got an input with {x.shape[1]} features, "
                f"shape {x.shape}."
            )
        self._x = x  # (N, in), for backward
        out = x @ self.W.data  # (N, out)
        out += self.b.data  # in place: no second (N, out) array
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._x is None or self.W is None or self.b is None:
            raise RuntimeError("Linear.backward called before forward.")
        accumulate_grad(self.W, self._x.T @ dout)  # W.grad += x^T dout, (in, out)
        accumulate_grad(self.b, dout.sum(axis=0))  # b.grad += sum of dout, (out,)
        if not self.input_grad:
            return None  # the input is the data: no one needs dx
        return dout @ self.W.data.T  # (N, in)

    def extra_repr(self) -> str:
        n_in = "?" if self.in_features is None else self.in_features
        flag = "" if self.input_grad else ", input_grad=False"
        return f"in_features={n_in}, out_features={self.out_features}{flag}"


class ReLU(Module):
    """``max(x, 0)``; backward lets the gradient through where ``x > 0``."""

    def __init__(self) -> None:
        super().__init__()
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0  # (N, D) bool, for backward
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._mask is None:
            raise RuntimeError("ReLU.backward called before forward.")
        return dout * self._mask


class Dropout(Module):
    """Inverted dropout: in training, zero each input with probability ``p`` and
    scale the rest by ``1 / (1 - p)``; in eval mode, the identity.

    The scaling keeps the expected activation the same in both modes (Srivastava et
    al., 2014). It is the layer that makes :meth:`Module.train` / :meth:`Module.eval`
    matter.
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1), got {p}")
        self.p = float(p)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._scale: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        rng = self._rng if self._rng is not None else _GLOBAL_RNG
        keep = rng.random(x.shape) >= self.p
        self._scale = (keep / (1.0 - self.p)).astype(x.dtype)  # (N, D), for backward
        return x * self._scale

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self._scale is None else dout * self._scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------- losses
class Loss:
    """A loss: ``forward(prediction, target) -> float``, then ``backward()``, which
    returns ``dL/dprediction``."""

    def __call__(self, prediction: np.ndarray, target: np.ndarray) -> float:
        return self.forward(prediction, target)

    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropyLoss(Loss):
    """Softmax and mean cross-entropy in one, from logits.

    With ``P = softmax(logits)`` and one-hot (or any probability) targets ``Y``:
    ``L = -(1/N) sum_i sum_j Y_ij log P_ij`` and ``dL/dlogits = (P - Y) / N``.
    ``log P`` is computed as ``z - max(z) - log sum exp(z - max(z))``, which is
    finite for any logits.

    ``target`` is either (N,) integer labels or an (N, C) array of probabilities
    (one-hot rows, for example).
    """

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._target: np.ndarray | None = None

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float:
        if logits.ndim != 2:
            raise ValueError(f"logits must be (N, C), got shape {logits.shape}.")
        N, C = logits.shape
        target = np.asarray(target)
        shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), row max 0
        exp = np.exp(shifted)  # (N, C), in (0, 1]
        sum_exp = exp.sum(axis=1, keepdims=True)  # (N, 1), at least 1
        log_probs = shifted - np.log(sum_exp)  # (N, C), finite
        if target.shape == (N,):
            if not np.issubdtype(target.dtype, np.integer):
                raise TypeError(
                    f"integer class labels expected, got dtype {target.dtype}; for "
                    "probabilities pass an (N, C) array."
                )
            if target.size and (target.min() < 0 or target.max() >= C):
                raise ValueError(f"labels must be in [0, {C}), got {target.min()}..")
            loss = -np.mean(log_probs[np.arange(N), target])
        elif target.shape == (N, C):
            loss = -np.sum(target * log_probs) / N
        else:
            raise ValueError(
                f"target must be (N,) labels or (N, C) probabilities with N={N}, "
                f"C={C}; got shape {target.shape}."
            )
        self._probs = exp / sum_exp  # (N, C), for backward; no second exp
        self._target = target
        return float(loss)

    def backward(self) -> np.ndarray:
        if self._probs is None or self._target is None:
            raise RuntimeError("CrossEntropyLoss.backward called before forward.")
        probs, target = self._probs, self._target
        N = probs.shape[0]
        if target.ndim == 1:
            dlogits = probs.copy()  # (N, C); an index, not a one-hot matrix
            dlogits[np.arange(N), target] -= 1
        else:
            dlogits = (probs - target).astype(probs.dtype, copy=False)
        dlogits /= N
        return dlogits  # (N, C)


class MSELoss(Loss):
    """Mean squared error over every entry: ``L = mean((pred - target)^2)``,
    ``dL/dpred = 2 (pred - target) / size``."""

    def __init__(self) -> None:
        self._diff: np.ndarray | None = None

    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float:
        target = np.asarray(target)
        if target.shape != prediction.shape:
            raise ValueError(
                f"prediction {prediction.shape} and target {target.shape} must have "
                "the same shape."
            )
        self._diff = prediction - target  # for backward
        return float(np.mean(self._diff**2))

    def backward(self) -> np.ndarray:
        if self._diff is None:
            raise RuntimeError("MSELoss.backward called before forward.")
        return 2.0 * self._diff / self._diff.size


# --------------------------------------------------------------------------- optimizers
class Optimizer:
    """Base class: holds the parameters and the learning rate.

    Args:
        params: what ``model.parameters()`` returns: objects with ``data`` and
            ``grad`` arrays of the same shape. Kept as a list, in order.
        lr: learning rate, > 0. It may be changed between steps (a schedule).

    Raises:
        TypeError: if ``params`` is a model rather than its parameters, or an item
            has no ``data``/``grad``.
        ValueError: if ``params`` is empty, holds a parameter twice, or ``lr <= 0``.
    """

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(
                f"{type(self).__name__} takes the parameters, not the model: "
                f"{type(self).__name__}(model.parameters(), lr=...)."
            )
        params = list(params)
        if not params:
            raise ValueError(
                f"{type(self).__name__} got an empty parameter list: nothing to "
                "optimize. Did the model register its layers (assigned as attributes "
                "of a Module, not kept in a plain list)?"
            )
        for i, p in enumerate(params):
            data, grad = getattr(p, "data", None), getattr(p, "grad", 0)
            if not isinstance(data, np.ndarray) or not (
                grad is None or isinstance(grad, np.ndarray)
            ):
                raise TypeError(
                    f"parameter {i} is {type(p).__name__}, not a Parameter (an object "
                    "with `data` and `grad` arrays)."
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError("the same parameter appears twice in the list.")
        if not lr > 0:  # also catches NaN
            raise ValueError(f"the learning rate must be positive, got lr={lr}")
        self.params: list[Parameter] = params
        self.lr = float(lr)

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every parameter's gradient, in place (``None`` with
        ``set_to_none=True``: see :meth:`Parameter.zero_grad`)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            else:
                p.zero_grad()

    def step(self) -> None:
        """Update every parameter from its gradient."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.params)} parameters, lr={self.lr:g})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (heavy-ball) momentum.

    Without momentum: ``p <- p - lr g``. With momentum ``mu``: ``v <- mu v + g``,
    ``p <- p - lr v``, ``v`` starting at 0 and kept from step to step, so ``v`` is a
    running sum of past gradients, ``g_t + mu g_{t-1} + mu^2 g_{t-2} + ...``
    (Polyak 1964; this form is PyTorch's, and equals Sutskever et al.'s
    ``v <- mu v - lr g, p <- p + v`` for a constant ``lr``).

    With ``weight_decay`` ``lam``, each step first shrinks the parameter,
    ``p <- (1 - lr lam) p``, then takes the step above: *decoupled* weight decay
    (Loshchilov & Hutter, 2019), which is not the same as adding ``lam/2 ||p||^2``
    to the loss once momentum or Adam reshape the gradient.

    Args:
        params: the parameters to update.
        lr: learning rate, > 0.
        momentum: ``mu`` in [0, 1); 0 is plain SGD.
        weight_decay: ``lam`` >= 0; 0 is no decay.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.velocities = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        for p, v in zip(self.params, self.velocities, strict=True):
            if p.grad is None:  # no gradient since zero_grad(set_to_none=True)
                continue
            if self.weight_decay:  # decoupled: shrink p, not part of the gradient
                p.data *= 1.0 - self.lr * self.weight_decay
            if self.momentum:
                v *= self.momentum  # in place: the velocity lives on in the list
                v += p.grad
                p.data -= self.lr * v
            else:
                p.data -= self.lr * p.grad


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): momentum on the gradient, scaled per coordinate.

    At step ``t = 1, 2, ...``, for each parameter with gradient ``g`` (``t`` counts
    the steps at which that parameter had a gradient, as in PyTorch)::

        m <- b1 m + (1 - b1) g           running mean of g      (starts at 0)
        v <- b2 v + (1 - b2) g^2         running mean of g^2    (starts at 0)
        m_hat = m / (1 - b1^t)           bias corrections: m, v start at 0, so early
        v_hat = v / (1 - b2^t)           averages are too small by these factors
        p <- p - lr m_hat / (sqrt(v_hat) + eps)

    With ``weight_decay`` ``lam``, each step first shrinks ``p <- (1 - lr lam) p``
    (AdamW, Loshchilov & Hutter, 2019): the decay is not divided by ``sqrt(v_hat)``,
    as an L2 term added to the loss (so to ``g``) would be.

    Args:
        params: the parameters to update.
        lr: learning rate, > 0 (1e-3 is the paper's default).
        betas: ``(b1, b2)``, each in [0, 1).
        eps: added to the denominator, > 0.
        weight_decay: ``lam`` >= 0; 0 is plain Adam.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = float(weight_decay)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.t = 0  # steps taken
        self.steps = [0] * len(self.params)  # per parameter: one skipped is not counted
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        for i, (p, m, v) in enumerate(zip(self.params, self.m, self.v, strict=True)):
            if (
                p.grad is None
            ):  # no gradient since zero_grad(set_to_none=True): skipped,
                continue  # and its own step count does not advance (as PyTorch)
            self.steps[i] += 1
            t = self.steps[i]
            bias1 = 1.0 - b1**t
            bias2 = 1.0 - b2**t
            if self.weight_decay:  # decoupled (AdamW): not scaled by 1 / sqrt(v_hat)
                p.data *= 1.0 - self.lr * self.weight_decay
            g = p.grad
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            m_hat = m / bias1
            v_hat = v / bias2
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# --------------------------------------------------------------------------- training
def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose largest logit is the label. logits (N, C), y (N,)."""
    return float(np.mean(logits.argmax(axis=1) == y))


@contextlib.contextmanager
def input_is_data(model: Module) -> Iterator[Module]:
    """While in the block, ``model``'s first ``Linear`` skips ``dx``: its input is
    the data, and nothing learns the data.

    ``dx`` of the first layer costs as much as its ``dW`` (for 784-pixel images the
    largest product of the backward pass) and no one reads it: PyTorch skips it
    because the data does not require a gradient. Here the training loop says so:
    :func:`train_epoch` (and so :func:`fit`) trains inside this block, so a model
    built the obvious way, ``Sequential(Linear(784, 256), ReLU(), ...)``, gets the
    fast path. Outside it, ``model.backward`` returns ``dx`` as before. The first
    layer is found through nested ``Sequential``s; any other model, or a first
    layer that already has ``input_grad=False``, is left as it is.

    Yields:
        ``model``.
    """
    first: Any = model
    while isinstance(first, Sequential) and len(first):
        first = first[0]
    if not isinstance(first, Linear) or not first.input_grad:
        yield model
        return
    first.input_grad = False
    try:
        yield model
    finally:
        first.input_grad = True


def train_epoch(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """One pass over ``(X, y)`` in shuffled minibatches; one optimizer step each.

    For each batch: zero the gradients, forward, loss, backward (loss then model),
    step, all inside :func:`input_is_data` (the first layer skips ``dx``). The
    batches come from ``data.iterate_minibatches(X, y, batch_size,
    rng=rng)``. The gradients are reset to ``None`` (``set_to_none=True``), so
    that backward assigns them instead of adding them to zeros.

    Returns:
        The mean training loss and accuracy over the epoch's examples, each batch
        measured as it was seen (before its step).
    """
    total_loss, correct, n = 0.0, 0, 0
    with input_is_data(model):  # the batches are data: the first layer skips dx
        for Xb, yb in _data.iterate_minibatches(X, y, batch_size, rng=rng):
            optimizer.zero_grad(set_to_none=True)
            logits = model(Xb)  # (B, C)
            loss = loss_fn(logits, yb)
            model.backward(loss_fn.backward())
            optimizer.step()
            total_loss += loss * len(yb)
            correct += int(np.sum(logits.argmax(axis=1) == yb))
            n += len(yb)
    return total_loss / n, correct / n


def evaluate(
    model: Module,
    loss_fn: Loss,
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int = 2000,
) -> tuple[float, float]:
    """Mean loss and accuracy on ``(X, y)`` in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        for start in range(0, len(X), batch_size):
            Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            logits = model(Xb)
            total_loss += loss_fn(logits, yb) * len(yb)
            correct += int(np.sum(logits.argmax(axis=1) == yb))
    finally:
        model.train(was_training)
    return total_loss / len(X), correct / len(X)


def fit(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    X: np.ndarray,
    y: np.ndarray,
    *,
    num_epochs: int,
    batch_size: int,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    lr_decay: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    epoch_fn: Callable[..., tuple[float, float]] = train_epoch,
    eval_fn: Callable[..., tuple[float, float]] = evaluate,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """Train for ``num_epochs`` epochs and record the history.

    Args:
        model, loss_fn, optimizer: what to train, how to score it, how to update it.
        X, y: training data, (N, D) and (N,).
        num_epochs: passes over the training data.
        batch_size: examples per step.
        X_test, y_test: evaluated after every epoch when given.
        lr_decay: the learning rate is multiplied by this after every epoch (a
            simple exponential schedule; 1 keeps it constant).
        seed: seeds the order of the minibatches (a new order every epoch).
        progress: show a progress bar (``tqdm.auto``: a widget in a notebook).
        epoch_fn: the function that runs one epoch, :func:`train_epoch` by default.
        eval_fn: the function that evaluates on the validation and test data,
            :func:`evaluate` by default (stage 4 passes its own, which records no
            graph).
        X_val, y_val: validation data (``data.train_val_split``), evaluated after
            every epoch when given: the data to tune on.

    Returns:
        ``{"train_loss", "train_acc"}`` and, with validation or test data,
        ``{"val_loss", "val_acc"}``, ``{"test_loss", "test_acc"}``: one value per
        epoch.
    """
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be at least 1, got {num_epochs}")
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"train_loss": [], "train_acc": []}
    evaluated = {
        split: (X_eval, y_eval)
        for split, X_eval, y_eval in (("val", X_val, y_val), ("test", X_test, y_test))
        if X_eval is not None and y_eval is not None
    }
    for split in evaluated:
        history.update({f"{split}_loss": [], f"{split}_acc": []})
    epochs: Iterable[int] = range(num_epochs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(epochs, desc="epochs", unit="epoch")
        epochs = bar
    for _ in epochs:
        model.train()
        train_loss, train_acc = epoch_fn(
            model, loss_fn, optimizer, X, y, batch_size, rng
        )
        history["train_loss"].append(float(train_loss))
        history["train_acc"].append(float(train_acc))
        shown = {"loss": f"{train_loss:.4f}", "acc": f"{train_acc:.4f}"}
        for split, (X_eval, y_eval) in evaluated.items():
            eval_loss, eval_acc = eval_fn(model, loss_fn, X_eval, y_eval)
            history[f"{split}_loss"].append(float(eval_loss))
            history[f"{split}_acc"].append(float(eval_acc))
            shown[f"{split}_acc"] = f"{eval_acc:.4f}"
        if bar is not None:
            bar.set_postfix(shown)
        optimizer.lr *= lr_decay
    if bar is not None:
        bar.close()
    return history


# --------------------------------------------------------------------------- checking
def gradient_check(
    model: Module,
    loss_fn: Loss,
    X: np.ndarray,
    y: np.ndarray,
    h: float = 1e-5,
) -> dict[str, float]:
    """Compare the model's backward with central differences, parameter by parameter.

    Use a float64 model (``model.astype(np.float64)``) and float64 ``X``, and a model
    without randomness (no dropout in training mode).

    Returns:
        ``{name: relative error}``, stage 1's norm-based
        :func:`~utils.reference.stage1.relative_error`: below
        ``GRAD_CHECK_BOUND`` = 1e-6 when backward is right.
    """
    model.zero_grad()
    loss_fn(model(X), y)
    model.backward(loss_fn.backward())
    errors = {}
    for name, p in model.named_parameters():
        # central differences on p.data, perturbed in place and restored
        numeric = numerical_gradient(lambda: loss_fn(model(X), y), p.data, h)
        errors[name] = relative_error(p.grad, numeric)
    return errors
