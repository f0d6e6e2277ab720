"""Checks for lab 3: modules and optimizers.

The exercises are classes (and one function), so each case builds an object from the
student's class, uses it the way a model or a training loop would (a tree of modules
with a shared parameter, an 11-module Sequential, several optimizer steps on fixed
gradients for parameters of which two share a shape, two backward passes in a row,
...) and returns what to compare with :mod:`utils.reference.stage3`. Updates defined
as in place (an optimizer's step) must keep the caller's arrays.

The last check, :func:`training`, is the integration check: a model of the
notebook's classes trained by its ``train_epoch`` with its ``SGD`` and ``Adam`` (see
:mod:`utils.check.integration`).

Usage in the lab::

    from utils.check import lab3 as check
    check.parameter(Parameter)
    check.module(Module, Parameter)
    ...
    check.training(train_epoch)
    check.summary()
"""

from __future__ import annotations

from typing import Any

import numpy as np

from utils import data
from utils.check.core import (
    SECOND_DX,
    Case,
    CheckResult,
    Inputs,
    Lab,
    Mistake,
    Summary,
    array_refs,
    backward_again,
    rebound,
    require_in_place,
    run_check,
    second_dx_hint,
)
from utils.check.integration import diverged_hint, explain_errors, find_global
from utils.check.prereq import blame_earlier, blames
from utils.reference import stage3 as ref

LAB = Lab(
    "Lab 3: modules and optimizers",
    [
        "parameter",
        "module",
        "sequential",
        "linear",
        "sgd",
        "momentum",
        "adam",
        "weight_decay",
        "dropout",
        "train_epoch",
        "training",
    ],
    references={
        "parameter": ref.Parameter,
        "module": ref.Module,
        "sequential": ref.Sequential,
        "linear": ref.Linear,
        "sgd": ref.SGD,
        "momentum": ref.SGD,
        "adam": ref.Adam,
        "weight_decay": ref.SGD,
        "dropout": ref.Dropout,
        "train_epoch": ref.train_epoch,
    },
    module=__name__,
)


_randn = Inputs(base_seed=3000).randn


# --------------------------------------------------------------------------- parameter
def _snapshot(x: Any) -> Any:
    """A copy of an array (later steps of a case may change the original)."""
    return x.copy() if isinstance(x, np.ndarray) else x


COPY_KEY = "the caller's array unchanged after p.data changes (p.data is a copy)"
SAME_GRAD_KEY = (
    "p.zero_grad() zeroed p.grad in place (an old reference to it sees the zeros)"
)
ZEROED_KEY = "p.grad after p.zero_grad(), when it held 1.5 everywhere and one inf"


def _zeroed(grad: Any) -> str:
    """What ``zero_grad`` left in ``p.grad``, in words (the inf is the check's, so
    a NaN means ``inf * 0``, not an overflow of the student's)."""
    if not isinstance(grad, np.ndarray):
        return f"a {type(grad).__name__}, not an array"
    if np.isnan(grad).any():
        return "NaN where the inf was (inf * 0 is NaN)"
    if not np.all(grad == 0):
        return "not all zeros"
    return "all zeros"


def _run_parameter(cls, values):
    given = values
    before = np.array(values, copy=True)
    p = cls(values)
    out: dict[str, Any] = {
        "p.data": _snapshot(p.data),
        "p.data.dtype": str(getattr(p.data, "dtype", type(p.data).__name__)),
        "p.grad": _snapshot(p.grad),
        "p.grad.dtype": str(getattr(p.grad, "dtype", type(p.grad).__name__)),
    }
    grad = p.grad
    if isinstance(grad, np.ndarray) and grad.shape == np.shape(p.data):
        grad[...] = 1.5  # as if a backward pass had accumulated into it
        grad.flat[0] = np.inf  # a diverged step: zero_grad must clear it too
        held = grad  # what an optimizer or a layer holding p.grad would still see
        p.zero_grad()
        out[SAME_GRAD_KEY] = p.grad is held
        out[ZEROED_KEY] = _zeroed(p.grad)
    data = p.data
    if isinstance(data, np.ndarray) and data.size and data.flags.writeable:
        data += 1  # as an optimizer step does, in place
    out[COPY_KEY] = bool(np.array_equal(np.asarray(given), before))
    return out


class _ParamNoCopy(ref.Parameter):
    def __init__(self, data):
        self.data = np.asarray(data, dtype=np.float32)  # the caller's array itself
        self.grad = np.zeros_like(self.data)


class _ParamKeepsDtype(ref.Parameter):
    def __init__(self, data):
        self.data = np.array(data)
        self.grad = np.zeros_like(self.data)


class _ParamGradFloat64(ref.Parameter):
    def __init__(self, data):
        self.data = np.array(data, dtype=np.float32)
        self.grad = np.zeros(self.data.shape)


class _ParamGradIsData(ref.Parameter):
    def __init__(self, data):
        self.data = np.array(data, dtype=np.float32)
        self.grad = self.data


class _ParamZeroReplaces(ref.Parameter):
    def zero_grad(self):
        self.grad = np.zeros_like(self.data)


class _ParamZeroTimesZero(ref.Parameter):
    def zero_grad(self):
        self.grad *= 0


class _ParamZeroNewTimesZero(ref.Parameter):
    def zero_grad(self):
        self.grad = self.grad * 0


class _ParamZeroScalar(ref.Parameter):
    def zero_grad(self):
        self.grad = 0


def parameter(student) -> CheckResult:
    """Check ``Parameter(data)``: float32 ``data``, a zero ``grad``, and a
    ``zero_grad`` that works in place."""
    cases = [
        Case("a (2, 3) float64 array", (_randn((2, 3), 0).astype(np.float64),)),
        Case("a Python list of 4 numbers", ([0.5, -1.0, 2.0, 3.25],)),
        Case("a (3, 2) integer array", (np.arange(6).reshape(3, 2),)),
        Case("a (5,) float32 array", (_randn((5,), 1),)),
        Case("a (3, 4) float32 array, not contiguous", (_randn((4, 3), 2).T,)),
    ]
    return run_check(
        "parameter",
        student,
        ref.Parameter,
        [Case(c.name, c.args, run=_run_parameter) for c in cases],
        mistakes=[
            Mistake(
                "p.data must be a float32 *copy* of what it is given: a float32 "
                "array is otherwise stored as is, and every update of p.data (an "
                "optimizer step) changes the caller's array too.",
                _ParamNoCopy,
            ),
            Mistake(
                "convert the data to float32 (a dtype argument when you make the "
                "array): lists and float64 arrays would otherwise stay float64 "
                "(twice the memory and slower matrix products).",
                _ParamKeepsDtype,
            ),
            Mistake(
                "`np.zeros(shape)` is float64; the gradient must have the shape "
                "*and the dtype* of the data (there is a zeros function that copies "
                "both from an array).",
                _ParamGradFloat64,
            ),
            Mistake(
                "`self.grad = self.data` makes both names refer to one array: the "
                "gradient must be a new array of zeros, shaped like the data.",
                _ParamGradIsData,
            ),
            Mistake(
                "zero the gradient in place, writing 0 into the existing array: "
                "assigning a new array leaves whoever still holds the old one (an "
                "optimizer, a layer) with stale gradients.",
                _ParamZeroReplaces,
            ),
            Mistake(
                "multiplying by 0 does not clear an inf or a NaN (inf * 0 is NaN), "
                "and a step that diverged leaves some in the gradient: write zeros "
                "into the array instead.",
                _ParamZeroTimesZero,
            ),
            Mistake(
                "`self.grad = self.grad * 0` neither clears an inf or a NaN (inf * 0 "
                "is NaN) nor changes the array that others (an optimizer, a layer) "
                "hold: write zeros into the existing array, in place.",
                _ParamZeroNewTimesZero,
            ),
            Mistake(
                "`self.grad = 0` replaces the array by a number: write 0 into the "
                "existing array instead, in place.",
                _ParamZeroScalar,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- module
def _find_global(cls, name: str, default: Any) -> Any:
    """``name`` as seen by the methods of ``cls`` (the notebook's, for a student)."""
    for klass in getattr(cls, "__mro__", ()):
        for attr in vars(klass).values():
            glob = getattr(attr, "__globals__", None)
            if glob is not None and isinstance(glob.get(name), type):
                return glob[name]
    return default


def _new_param(P, values: np.ndarray):
    """A parameter of class ``P`` without running ``P.__init__`` (the module check
    must not depend on the student's ``Parameter``)."""
    p = object.__new__(P)
    p.data = values.astype(np.float32)
    p.grad = np.zeros_like(p.data)
    return p


def _label(obj, labels: dict[int, str]) -> str:
    if id(obj) in labels:
        return labels[id(obj)]
    if isinstance(obj, np.ndarray):
        return "an array (return the Parameter objects, not their data)"
    return f"a {type(obj).__name__} object"


def _module_tree(M, P, kind: str):
    """Build a small tree of modules from the classes ``M`` and ``P``.

    Returns the top module, the labels of the parameters created, and the parameter
    that ``model.first_W`` should be.
    """
    labels: dict[int, str] = {}

    def param(label: str, shape, seed: int):
        p = _new_param(P, _randn(shape, seed))
        labels[id(p)] = label
        return p

    class Leaf(M):
        def __init__(self, label: str, seed: int, W=None):
            M.__init__(self)
            self.W = W if W is not None else param(f"{label}.W", (3, 2), seed)
            self.b = param(f"{label}.b", (2,), seed + 1)

    class NoParams(M):
        def __init__(self):
            M.__init__(self)
            self.scale = 2.0  # a plain attribute

    class Block(M):
        def __init__(self, label: str, seed: int):
            M.__init__(self)
            self.fc1 = Leaf(f"{label}.fc1", seed)
            self.act = NoParams()
            self.fc2 = Leaf(f"{label}.fc2", seed + 2)

    class Net(M):
        def __init__(self):
            M.__init__(self)
            if kind == "nested":
                self.scale = param("scale", (2,), 10)
                self.note = "a plain attribute"
                self.mean = np.zeros(3, np.float32)  # an array, not a Parameter
                self.encoder = Block("encoder", 20)
                self.head = Leaf("head", 30)
            elif kind == "shared":
                shared = param("embed.W", (3, 2), 40)
                embed = Leaf("embed", 41, W=shared)
                self.embed = embed
                self.note = "a plain attribute"
                self.decoder = Leaf("decoder", 50, W=shared)  # tied weights
                self.again = embed  # one module under two names
            else:  # "reassigned"
                self.scale = param("old scale", (2,), 70)
                self.fc = Leaf("old fc", 60)
                self.note = "a plain attribute"
                self.scale = param("scale", (2,), 90)
                self.fc = Block("fc", 80)

    return Net(), labels


def _run_module(M, P, kind: str):
    model, labels = _module_tree(M, P, kind)
    first = {
        "nested": ("encoder", "fc1", "W"),
        "shared": ("embed", "W"),
        "reassigned": ("fc", "fc1", "W"),
    }[kind]
    try:
        obj = model
        for name in first:
            obj = getattr(obj, name)
        attribute_ok = labels.get(id(obj)) == ".".join(first)
    except AttributeError:
        attribute_ok = False
    return {
        "self._parameters (names)": list(getattr(model, "_parameters", {})),
        "self._modules (names)": list(getattr(model, "_modules", {})),
        "parameters()": [_label(p, labels) for p in model.parameters()],
        f"model.{'.'.join(first)} is the Parameter assigned": attribute_ok,
        "model.note": getattr(model, "note", "(missing)"),
        "an unknown attribute raises AttributeError": not hasattr(model, "no_such"),
    }


class _ModuleShallow(ref.Module):
    def parameters(self):
        return list(self._parameters.values())


class _ModuleOneLevel(ref.Module):
    def parameters(self):
        params = list(self._parameters.values())
        for module in self._modules.values():
            params += list(module._parameters.values())
        return params


class _ModuleDuplicates(ref.Module):
    def parameters(self):
        params = list(self._parameters.values())
        for module in self._modules.values():
            params += module.parameters()
        return params


class _ModuleNoSetattr(ref.Module):
    def __setattr__(self, name, value):
        if isinstance(value, ref.Parameter):
            self._parameters[name] = value
        elif isinstance(value, ref.Module):
            self._modules[name] = value


class _ModuleTypeIs(ref.Module):
    def __setattr__(self, name, value):
        if type(value) is ref.Parameter:
            self._parameters[name] = value
        elif type(value) is ref.Module:
            self._modules[name] = value
        object.__setattr__(self, name, value)


class _ModuleAllInParameters(ref.Module):
    def __setattr__(self, name, value):
        if isinstance(value, (ref.Parameter, ref.Module)):
            self._parameters[name] = value
        object.__setattr__(self, name, value)

    def parameters(self):
        return list(self._parameters.values())


@blames(LAB, ("parameter", "Parameter"))
def module(student, parameter_cls=None) -> CheckResult:
    """Check ``Module.__setattr__`` (registration) and ``Module.parameters()``.

    Args:
        student: the student's ``Module`` class.
        parameter_cls: the student's ``Parameter`` class (the one their
            ``__setattr__`` recognises); found in the notebook when not given.
    """
    P = parameter_cls or _find_global(student, "Parameter", ref.Parameter)

    def run(M, kind):
        return _run_module(M, P if M is student else ref.Parameter, kind)

    cases = [
        Case("a model with a nested block", ("nested",), run=run),
        Case("a shared parameter and a module under two names", ("shared",), run=run),
        Case("attributes assigned twice", ("reassigned",), run=run),
    ]
    return run_check(
        "module",
        student,
        ref.Module,
        cases,
        mistakes=[
            Mistake(
                "parameters() must also collect the parameters of the submodules in "
                "self._modules, recursively (call their parameters()).",
                _ModuleShallow,
            ),
            Mistake(
                "a shared parameter (or a module registered under two names) must be "
                "listed only once: skip a parameter already in the list (the same "
                "object, not an equal one), or the optimizer updates it twice per "
                "step.",
                _ModuleDuplicates,
            ),
            Mistake(
                "parameters() stops one level down: a submodule's submodules have "
                "parameters too; collect them recursively by calling each "
                "submodule's parameters().",
                _ModuleOneLevel,
            ),
            Mistake(
                "register the value, then still set the attribute itself, through "
                "the base class's __setattr__ (object.__setattr__), otherwise "
                "`model.fc1` does not exist.",
                _ModuleNoSetattr,
            ),
            Mistake(
                "use isinstance(value, Module): a layer is a *subclass* of Module, "
                "and `type(value) is Module` is False for it.",
                _ModuleTypeIs,
            ),
            Mistake(
                "submodules go in self._modules, parameters in self._parameters; "
                "parameters() returns Parameters only (walk into the submodules).",
                _ModuleAllInParameters,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- sequential
def _module_base(cls) -> type:
    """The ``Module`` class that ``cls`` derives from (the student's in a notebook)."""
    for klass in getattr(cls, "__mro__", ())[1:]:
        if klass.__name__ == "Module":
            return klass
    return ref.Module


def _traced(M, inner, index: int, calls: list[str]):
    """A module of class ``M`` (a subclass, built without its ``__init__`` running
    any student code beyond ``M.__init__``) that runs the reference layer ``inner``
    and records its calls."""

    class Traced(M):
        def forward(self, x):
            calls.append(f"forward of layer {index}")
            return inner.forward(x)

        def backward(self, dout):
            calls.append(f"backward of layer {index}")
            return inner.backward(dout)

    layer = object.__new__(Traced)
    M.__init__(layer)
    return layer


def _run_sequential(Seq, shapes, seed, nested=False):
    M = _module_base(Seq)
    calls: list[str] = []
    inner = []
    for i, (n_in, n_out) in enumerate(shapes):
        inner.append(ref.Linear(n_in, n_out, seed=seed + i))
        if i < len(shapes) - 1:
            inner.append(ref.ReLU())
    for i, layer in enumerate(inner):
        if isinstance(layer, ref.Linear):
            layer.b.data[...] = _randn(layer.b.shape, seed + 10 + i, 0.1)
    traced = [_traced(M, layer, i, calls) for i, layer in enumerate(inner)]
    if nested and len(traced) >= 3:
        model = Seq(traced[0], Seq(*traced[1:-1]), traced[-1])
    else:
        model = Seq(*traced)
    N = 1 if seed % 2 else 5
    x = _randn((N, shapes[0][0]), seed + 20)
    out = model(x)
    dout = _randn(np.shape(out), seed + 21) if isinstance(out, np.ndarray) else None
    dx = model.backward(dout) if dout is not None else None
    linears = [layer for layer in inner if isinstance(layer, ref.Linear)]
    labels = {id(layer): f"layer {i}" for i, layer in enumerate(traced)}
    if nested and len(traced) >= 3:
        labels[id(model._modules.get("1", None))] = "the inner Sequential"
    registered = getattr(model, "_modules", {})
    return {
        "the modules registered in self._modules, in order": [
            labels.get(id(m), type(m).__name__) for m in dict(registered).values()
        ],
        "output of forward": out,
        "the order of the calls": calls,
        "dx returned by backward": dx,
        "dW of the first layer": linears[0].W.grad,
        "dW of the last layer": linears[-1].W.grad,
    }


class _SeqBackwardForwardOrder(ref.Sequential):
    def backward(self, dout):
        for layer in self._modules.values():
            dout = layer.backward(dout)
        return dout


class _SeqBackwardNoChain(ref.Sequential):
    def backward(self, dout):
        dx = dout
        for layer in reversed(list(self._modules.values())):
            dx = layer.backward(dout)
        return dx


class _SeqSortedNames(ref.Sequential):
    def forward(self, x):
        for name in sorted(self._modules):  # "10" sorts before "2"
            x = self._modules[name](x)
        return x

    def backward(self, dout):
        for name in sorted(self._modules, reverse=True):
            dout = self._modules[name].backward(dout)
        return dout


class _SeqPlainList(ref.Sequential):
    def __init__(self, *layers):
        ref.Module.__init__(self)
        object.__setattr__(self, "layers", list(layers))  # not registered

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


class _SeqForwardNoChain(ref.Sequential):
    def forward(self, x):
        out = x
        for layer in self._modules.values():
            out = layer(x)
        return out


@blames(LAB, ("parameter", "Parameter"), ("module", "Module"))
def sequential(student) -> CheckResult:
    """Check ``Sequential.forward`` and ``Sequential.backward``."""
    cases = [
        Case("Linear(4, 4), ReLU, Linear(4, 4)", ([(4, 4), (4, 4)], 0)),
        Case("Linear(5, 3), ReLU, Linear(3, 2), a batch of one", ([(5, 3), (3, 2)], 1)),
        Case("three Linear layers, 6 → 5 → 4 → 3", ([(6, 5), (5, 4), (4, 3)], 2)),
        Case("a single Linear(3, 2)", ([(3, 2)], 4)),
        Case(
            "a Sequential inside a Sequential",
            ([(4, 5), (5, 4), (4, 3)], 6),
            {"nested": True},
        ),
        Case(
            "a deep model: 6 Linear and 5 ReLU, 11 modules, named 0 to 10",
            ([(4, 4)] * 6, 8),
        ),
    ]
    return run_check(
        "sequential",
        student,
        ref.Sequential,
        [Case(c.name, c.args, c.kwargs, run=_run_sequential) for c in cases],
        mistakes=[
            Mistake(
                "the layers must be registered as submodules (assigned as attributes "
                "through your Module's __setattr__, under the names 0, 1, 2, ...): "
                "kept in a plain list, they are invisible to parameters(), and an "
                "optimizer would get no parameters.",
                _SeqPlainList,
            ),
            Mistake(
                "with more than ten layers, sorting the names as strings puts '10' "
                "before '2': go through the layers in the order they were "
                "registered, which is the order self._modules keeps.",
                _SeqSortedNames,
            ),
            Mistake(
                "backward must visit the layers in reverse order, last layer first.",
                _SeqBackwardForwardOrder,
            ),
            Mistake(
                "each layer's backward must receive the gradient returned by the "
                "layer after it, and the last one computed is what backward returns.",
                _SeqBackwardNoChain,
            ),
            Mistake(
                "feed each layer's output into the next one, and return the last "
                "layer's output.",
                _SeqForwardNoChain,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- linear
LAZY_KEY = "parameters() of a lazy Linear before its first forward"


def _run_linear(cls, sizes, seed, scenario):
    layer = cls(*sizes, seed=seed)
    if scenario == "lazy parameters":
        try:
            found = layer.parameters()
        except ref.LazyModuleError:
            return {LAZY_KEY: "raises LazyModuleError"}
        return {LAZY_KEY: f"returns {len(list(found))} parameters, no error"}
    n_in = sizes[0] if len(sizes) == 2 else 4
    N = 1 if scenario == "one" else 5
    x = _randn((N, n_in), seed + 1)
    out = layer(x)
    result: dict[str, Any] = {"output of forward": out, "W.data": layer.W.data}
    if scenario == "update":
        layer.W.data -= 0.5  # as an optimizer step would, in place
        layer.b.data += 0.25
        result["output of a second forward, after W and b changed"] = layer(
            _randn((N, n_in), seed + 2)
        )
        return result
    dout = _randn(np.shape(out), seed + 3)
    result["dx returned by backward"] = layer.backward(dout)
    if scenario == "twice":
        result["dx returned by backward"] = _copied(result["dx returned by backward"])
        result[SECOND_DX] = backward_again(layer, _randn(np.shape(out), seed + 4))
        result["W.grad after two backward passes"] = layer.W.grad
        result["b.grad after two backward passes"] = layer.b.grad
    else:
        result["W.grad"] = layer.W.grad
        result["b.grad"] = layer.b.grad
    return result


class _LinearLazySilent(ref.Linear):
    def _check_initialized(self, path):
        pass  # the mistake: W and b are None, so they are silently not listed


class _LinearAssigns(ref.Linear):
    def backward(self, dout):
        self.W.grad = self._x.T @ dout
        self.b.grad = dout.sum(axis=0)
        return dout @ self.W.data.T


class _LinearLocalGrads(ref.Linear):
    def backward(self, dout):
        dW = self._x.T @ dout  # noqa: F841 - the mistake: never added into W.grad
        db = dout.sum(axis=0)  # noqa: F841
        return dout @ self.W.data.T


class _LinearReinit(ref.Linear):
    def forward(self, x):
        self.reset_parameters(x.shape[1])
        self._x = x
        return x @ self.W.data + self.b.data


class _LinearNoBias(ref.Linear):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        self._x = x
        return x @ self.W.data


class _LinearDbMean(ref.Linear):
    def backward(self, dout):
        self.W.grad += self._x.T @ dout
        self.b.grad += dout.mean(axis=0)
        return dout @ self.W.data.T


@blames(LAB, ("parameter", "Parameter"), ("module", "Module"))
def linear(student) -> CheckResult:
    """Check the lazy ``Linear``: ``forward`` (building W and b at the first call)
    and ``backward`` (adding into ``W.grad`` and ``b.grad``, returning dx)."""
    cases = [
        Case("lazy Linear(3), input (5, 4)", ((3,), 0, "plain")),
        Case("Linear(4, 3), sizes given", ((4, 3), 10, "plain")),
        Case("lazy Linear(2), a batch of one", ((2,), 20, "one")),
        Case("lazy Linear(3), W and b changed between forwards", ((3,), 30, "update")),
        Case("Linear(4, 3), two backward passes in a row", ((4, 3), 40, "twice")),
        Case(
            "lazy Linear(3), parameters() asked before any forward",
            ((3,), 50, "lazy parameters"),
        ),
    ]
    return run_check(
        "linear",
        student,
        ref.Linear,
        [Case(c.name, c.args, run=_run_linear) for c in cases],
        mistakes=[
            Mistake(
                "add into the gradients (+=), in place: a parameter used twice (or "
                "two batches between zero_grad calls) must accumulate, and `=` would "
                "also replace the array that the optimizer reads.",
                _LinearAssigns,
            ),
            Mistake(
                "W.grad and b.grad are still zeros: the gradients were computed into "
                "local names and never added into the parameters' grad arrays, "
                "where the optimizer reads them.",
                _LinearLocalGrads,
            ),
            Mistake(
                "build W and b only the first time, while they do not exist yet: "
                "building them at every forward throws away what the optimizer "
                "learned.",
                _LinearReinit,
            ),
            Mistake(
                "the bias is missing: out = x W + b.",
                _LinearNoBias,
            ),
            Mistake(
                "db is the sum over the batch, not the mean: the 1/N is already "
                "inside dout.",
                _LinearDbMean,
            ),
            Mistake(
                "a lazy Linear has no W and b before its first forward, so listing "
                "its parameters then must be an error (LazyModuleError, as the given "
                "parameters() override raises), never a silently shorter list: an "
                "optimizer built from it would never update that layer.",
                _LinearLazySilent,
            ),
        ],
        hints=[_second_dx_hint],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- optimizers
_OPT_NAMES = ("W", "b", "W2")


def _opt_params(seed: int) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Initial values of three parameters (two of one shape: state kept per shape, or
    shared, shows) and, for 4 steps, their gradients."""
    values = [_randn((3, 4), seed), _randn((4,), seed + 1), _randn((3, 4), seed + 2)]
    grads = [
        [_randn(v.shape, seed + 10 * k + i) for i, v in enumerate(values)]
        for k in range(1, 5)
    ]
    return values, grads


def _run_optimizer(cls, values, grads, kwargs):
    params = [ref.Parameter(v) for v in values]
    opt = cls(params, **kwargs)
    result: dict[str, Any] = {}
    for k, step_grads in enumerate(grads, start=1):
        for p, g in zip(params, step_grads, strict=True):
            p.grad[...] = g  # in place, as a backward pass after zero_grad would
        arrays = array_refs([p.data for p in params])
        opt.step()
        require_in_place(arrays, [p.data for p in params], "parameters' data")
        for name, p in zip(_OPT_NAMES, params, strict=True):
            result[f"{name}.data after step {k}"] = p.data.copy()
    result["W.grad after the last step (step must not change it)"] = params[0].grad
    return result


def _optimizer_cases(configs) -> list[Case]:
    cases = []
    for name, seed, kwargs, scale in configs:
        values, grads = _opt_params(seed)
        grads = [[g * scale for g in step] for step in grads]
        if "zero" in name:
            grads[2] = [np.zeros_like(g) for g in grads[2]]
        cases.append(Case(name, (values, grads, kwargs), run=_run_optimizer))
    return cases


class _MomentumByShape(ref.SGD):
    def step(self):
        if not hasattr(self, "by_shape"):
            self.by_shape = {}
        for p in self.params:
            v = self.by_shape.setdefault(p.data.shape, np.zeros_like(p.data))
            v *= self.momentum
            v += p.grad
            p.data -= self.lr * v


class _AdamByShape(ref.Adam):
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


class _AdamTZero(ref.Adam):
    def step(self):
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**self.t)  # t = 0 at the first step: 1 - b**0 = 0
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        self.t += 1


_BY_SHAPE = (
    "two parameters of the same shape share one {state} here: keep one per "
    "parameter (a list parallel to self.params, made in __init__), never one per "
    "shape or one for all."
)


class _SGDUphill(ref.SGD):
    def step(self):
        for p in self.params:
            p.data += self.lr * p.grad


class _SGDNoLr(ref.SGD):
    def step(self):
        for p in self.params:
            p.data -= p.grad


class _SGDRebinds(ref.SGD):
    def step(self):
        for p in self.params:
            data = p.data
            data = data - self.lr * p.grad  # noqa: F841 - the mistake: a new array


class _SGDFirstOnly(ref.SGD):
    def step(self):
        for p in self.params:
            p.data -= self.lr * p.grad
            return


def sgd(student) -> CheckResult:
    """Check ``SGD(params, lr).step()``: ``p.data -= lr * p.grad`` for every p."""
    return run_check(
        "sgd",
        student,
        ref.SGD,
        _optimizer_cases(
            [
                ("lr=0.1, 4 steps", 0, {"lr": 0.1}, 1.0),
                ("lr=0.5, 4 steps", 1, {"lr": 0.5}, 1.0),
                ("lr=0.01, large gradients", 2, {"lr": 0.01}, 100.0),
            ]
        ),
        mistakes=[
            Mistake(
                "the parameters moved uphill: gradient descent steps against the "
                "gradient.",
                _SGDUphill,
            ),
            Mistake(
                "the learning rate is missing: the step is the gradient scaled by "
                "self.lr.",
                _SGDNoLr,
            ),
            Mistake(
                "the parameters did not change: `data = data - ...` makes a new "
                "array and rebinds a local name; update each parameter's data "
                "itself, in place.",
                _SGDRebinds,
            ),
            Mistake(
                "only the first parameter changed: is there a `return` inside the "
                "loop? Update every parameter in self.params.",
                _SGDFirstOnly,
            ),
        ],
        record=LAB.record,
    )


class _MomentumForgets(ref.SGD):
    def step(self):
        for p in self.params:
            v = np.zeros_like(p.data)
            v = self.momentum * v + p.grad
            p.data -= self.lr * v


class _MomentumAverage(ref.SGD):
    def step(self):
        for p, v in zip(self.params, self.velocities, strict=True):
            v *= self.momentum
            v += (1 - self.momentum) * p.grad
            p.data -= self.lr * v


class _MomentumStaleVelocity(ref.SGD):
    def step(self):
        for p, v in zip(self.params, self.velocities, strict=True):
            p.data -= self.lr * v
            v *= self.momentum
            v += p.grad


@blames(LAB, ("sgd", None))
def momentum(student) -> CheckResult:
    """Check ``SGD(params, lr, momentum).step()``: ``v = mu v + g; p -= lr v``."""
    return run_check(
        "momentum",
        student,
        ref.SGD,
        _optimizer_cases(
            [
                ("lr=0.1, momentum=0.9, 4 steps", 3, {"lr": 0.1, "momentum": 0.9}, 1.0),
                (
                    "lr=0.05, momentum=0.5, a zero gradient at step 3",
                    4,
                    {"lr": 0.05, "momentum": 0.5},
                    1.0,
                ),
                ("lr=0.2, momentum=0, plain SGD", 5, {"lr": 0.2, "momentum": 0}, 1.0),
            ]
        ),
        mistakes=[
            Mistake(
                "these are plain SGD steps: the velocity never builds up. It must "
                "persist between steps: create it once, in __init__, and update it "
                "in place in step. Note that `v = self.momentum * v + p.grad` only "
                "rebinds a local name: the list keeps the old array.",
                _MomentumForgets,
            ),
            Mistake(_BY_SHAPE.format(state="velocity"), _MomentumByShape),
            Mistake(
                "that is an exponential average, with a (1 - momentum) factor on the "
                "gradient; classic momentum adds the whole gradient to the decayed "
                "velocity.",
                _MomentumAverage,
            ),
            Mistake(
                "update the velocity first, then step with the new velocity, not "
                "with the one from the step before.",
                _MomentumStaleVelocity,
            ),
        ],
        record=LAB.record,
    )


class _AdamNoBiasCorrection(ref.Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad**2
            p.data -= self.lr * m / (np.sqrt(v) + self.eps)


class _AdamStepStuck(ref.Adam):
    def step(self):
        b1, b2 = self.betas
        t = 1
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class _AdamEpsInside(ref.Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / np.sqrt(v_hat + self.eps)


class _AdamForgets(ref.Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for p in self.params:
            m = (1 - b1) * p.grad
            v = (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class _AdamNotSquared(ref.Adam):
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def adam(student) -> CheckResult:
    """Check ``Adam(params, lr, betas, eps).step()`` over several steps."""
    return run_check(
        "adam",
        student,
        ref.Adam,
        _optimizer_cases(
            [
                ("lr=0.01, default betas and eps, 4 steps", 6, {"lr": 0.01}, 1.0),
                (
                    "lr=0.1, betas=(0.8, 0.9), eps=1e-3, small gradients",
                    7,
                    {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-3},
                    1e-3,
                ),
                (
                    "lr=0.001, a zero gradient at step 3",
                    8,
                    {"lr": 0.001},
                    1.0,
                ),
            ]
        ),
        mistakes=[
            Mistake(
                "at the first step t must be 1: with t = 0 the bias correction "
                "divides by 1 - β^0 = 0, and m / 0, v / 0 give inf and NaN (nothing "
                "overflowed). Increase t before the bias correction.",
                _AdamTZero,
            ),
            Mistake(
                "the bias correction is missing: m and v start at 0, so divide them "
                "by (1 - β1^t) and (1 - β2^t) before the update.",
                _AdamNoBiasCorrection,
            ),
            Mistake(_BY_SHAPE.format(state="pair of moments m, v"), _AdamByShape),
            Mistake(
                "the step count t must grow by one at every step, before the bias "
                "correction: the corrections 1 - β^t depend on it.",
                _AdamStepStuck,
            ),
            Mistake(
                "eps goes outside the square root: it is added to the square root "
                "of v_hat, not under it.",
                _AdamEpsInside,
            ),
            Mistake(
                "m and v must persist between steps: create them once in __init__ "
                "and update them in place; made afresh at each step they forget the "
                "past gradients.",
                _AdamForgets,
            ),
            Mistake(
                "v is the running mean of the *squared* gradient, element by element.",
                _AdamNotSquared,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------- weight decay
class _L2InGradient:
    """The mistake, for either optimizer: the decay added to the gradient (L2 in the
    loss), so that momentum and Adam's scaling act on it too."""

    def step(self):
        lam, self.weight_decay = self.weight_decay, 0.0
        saved = [p.grad.copy() for p in self.params]
        for p in self.params:
            p.grad += lam * p.data
        super().step()
        for p, g in zip(self.params, saved, strict=True):
            p.grad[...] = g
        self.weight_decay = lam


class _SGDL2(_L2InGradient, ref.SGD):
    pass


class _AdamL2(_L2InGradient, ref.Adam):
    pass


class _SGDDecayIgnored(ref.SGD):
    def step(self):
        lam, self.weight_decay = self.weight_decay, 0.0
        super().step()
        self.weight_decay = lam


class _AdamDecayIgnored(ref.Adam):
    def step(self):
        lam, self.weight_decay = self.weight_decay, 0.0
        super().step()
        self.weight_decay = lam


class _SGDDecayNoLr(ref.SGD):
    def step(self):
        lam, self.weight_decay = self.weight_decay, 0.0
        for p in self.params:
            p.data *= np.float32(1.0 - lam)
        super().step()
        self.weight_decay = lam


class _SGDDecayAfter(ref.SGD):
    def step(self):
        lam, self.weight_decay = self.weight_decay, 0.0
        super().step()
        for p in self.params:
            p.data *= np.float32(1.0 - self.lr * lam)
        self.weight_decay = lam


class _ReferenceSGD(ref.SGD):
    """The reference SGD as its own class: never taken for the student's."""


# the Adam that goes with the reference and with each SGD mistake (the same mistake in
# both optimizers); any other SGD class is the student's, with the student's Adam
_ADAM_OF = {
    _ReferenceSGD: ref.Adam,
    _SGDL2: _AdamL2,
    _SGDDecayIgnored: _AdamDecayIgnored,
    _SGDDecayNoLr: ref.Adam,
    _SGDDecayAfter: ref.Adam,
}


@blames(LAB, ("sgd", None), ("momentum", None), ("adam", "Adam"))
def weight_decay(student, adam_cls=None) -> CheckResult:
    """Check decoupled weight decay (``weight_decay=``) in ``SGD`` and ``Adam``.

    ``check.weight_decay(SGD, Adam)``: each step first shrinks every parameter,
    ``p <- (1 - lr lam) p``, then takes its usual step (AdamW's decoupled decay, not
    an L2 term in the gradient). Cases: plain SGD, SGD with momentum and a zero
    gradient at step 3 (the decay alone), Adam with small gradients (where L2 and
    decoupled decay differ most); three parameters, two of one shape.

    Args:
        student: the student's ``SGD`` class.
        adam_cls: the student's ``Adam``; found in the notebook when not given.
    """
    A = adam_cls or _find_global(student, "Adam", ref.Adam)

    def run(S, values, grads, kwargs):
        kwargs = dict(kwargs)
        if kwargs.pop("adam", False):
            S = _ADAM_OF.get(S, A)
        return _run_optimizer(S, values, grads, kwargs)

    configs = [
        ("SGD, lr=0.1, weight_decay=0.5, 4 steps", 40, {"weight_decay": 0.5}, 1.0),
        (
            "SGD, momentum=0.9, weight_decay=0.1, a zero gradient at step 3",
            41,
            {"momentum": 0.9, "weight_decay": 0.1},
            1.0,
        ),
        (
            "Adam, lr=0.01, weight_decay=0.2, small gradients",
            42,
            {"lr": 0.01, "weight_decay": 0.2, "adam": True},
            1e-3,
        ),
    ]
    configs = [(n, s, {"lr": 0.1, **kw}, sc) for n, s, kw, sc in configs]
    cases = [Case(c.name, c.args, run=run) for c in _optimizer_cases(configs)]
    return run_check(
        "weight_decay",
        student,
        _ReferenceSGD,
        cases,
        mistakes=[
            Mistake(
                "this is L2 regularisation in the loss: the decay term was added to "
                "the gradient, so momentum accumulates it and Adam divides it by "
                "sqrt(v_hat). Decoupled weight decay shrinks the parameter itself, "
                "apart from the gradient step.",
                _SGDL2,
            ),
            Mistake(
                "the parameters did not shrink: weight_decay is stored but never "
                "used in step.",
                _SGDDecayIgnored,
            ),
            Mistake(
                "the decay is not scaled by the learning rate: each step shrinks "
                "the parameter by the factor (1 - lr·λ).",
                _SGDDecayNoLr,
            ),
            Mistake(
                "the decay shrank the parameter after the gradient step: shrink the "
                "value the step starts from, before the gradient update.",
                _SGDDecayAfter,
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- dropout
def _run_dropout(cls, p, seed, scenario):
    layer = cls(p, seed=seed)
    x = _randn((6, 8), seed + 1, 2.0)
    out: dict[str, Any] = {}
    if scenario == "eval":
        layer.eval()
    if scenario == "train then eval":  # the mask of a training forward must not stay
        out["output of a training forward"] = layer(x)
        layer.eval()
        x = _randn((6, 8), seed + 2, 2.0)
    if scenario == "twice":
        out["output of a first forward"] = layer(x)
        x = _randn((6, 8), seed + 2, 2.0)
    out["output of forward"] = _copied(layer(x))
    dout = _randn((6, 8), seed + 3)
    out["dx returned by backward"] = _copied(layer.backward(dout))
    out[SECOND_DX] = backward_again(layer, dout)  # the cache read twice
    return out


def _copied(value):
    """An array copied (a later call may edit it in place), anything else as it is."""
    return value.copy() if isinstance(value, np.ndarray) else value


_second_dx_hint = second_dx_hint(
    "dx returned by backward", "an in-place *= on the cached mask or input"
)


class _DropoutNoScale(ref.Dropout):
    def forward(self, x):
        out = super().forward(x)
        return out * np.float32(1.0 - self.p) if self.training else out

    def backward(self, dout):
        dx = super().backward(dout)
        return dx * np.float32(1.0 - self.p) if self.training else dx


class _DropoutInEval(ref.Dropout):
    def forward(self, x):
        training = self.training
        object.__setattr__(self, "training", True)
        try:
            return super().forward(x)
        finally:
            object.__setattr__(self, "training", training)


class _DropoutKeepP(ref.Dropout):
    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        keep = self._rng.random(x.shape) < self.p
        self._scale = (keep / self.p).astype(x.dtype)
        return x * self._scale


class _DropoutStaleMask(ref.Dropout):
    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x  # the mistake: the training forward's mask stays cached
        return super().forward(x)


class _DropoutBackwardPlain(ref.Dropout):
    def backward(self, dout):
        return dout


class _DropoutNewMask(ref.Dropout):
    def backward(self, dout):
        if self._scale is None:
            return dout
        keep = self._rng.random(dout.shape) >= self.p
        return dout * (keep / (1.0 - self.p)).astype(dout.dtype)


@blames(LAB, ("parameter", "Parameter"), ("module", "Module"))
def dropout(student) -> CheckResult:
    """Check ``Dropout(p, seed=...)``: inverted dropout.

    In training, a new mask at each forward (``self.rng.random(x.shape) >= p`` keeps
    an entry), the kept entries scaled by ``1 / (1 - p)``, backward through the same
    scaled mask; in eval mode (and for ``p = 0``) the identity, forward and backward.
    Cases: p = 0.5, 0.2 (two forwards in a row), 0.75, 0, eval mode, and a backward
    after a training forward then an eval forward (no stale mask).
    """
    cases = [
        Case("p=0.5, training, input (6, 8)", (0.5, 60, "train")),
        Case("p=0.2, two forwards in a row (a new mask each)", (0.2, 61, "twice")),
        Case("p=0.5, eval mode (model.eval())", (0.5, 62, "eval")),
        Case("p=0, training: nothing dropped", (0.0, 63, "train")),
        Case("p=0.75, training", (0.75, 64, "train")),
        Case(
            "p=0.5, a training forward, then eval mode: forward and backward",
            (0.5, 65, "train then eval"),
        ),
    ]
    return run_check(
        "dropout",
        student,
        ref.Dropout,
        [Case(c.name, c.args, run=_run_dropout) for c in cases],
        mistakes=[
            Mistake(
                "the kept entries are not scaled: inverted dropout divides them by "
                "the probability of keeping, so that the expected activation is the "
                "same in training and in eval mode.",
                _DropoutNoScale,
            ),
            Mistake(
                "entries are dropped in eval mode too: dropout is the identity when "
                "self.training is False (after model.eval()).",
                _DropoutInEval,
            ),
            Mistake(
                "p is the probability of dropping an entry, not of keeping it.",
                _DropoutKeepP,
            ),
            Mistake(
                "backward passes dout through unchanged: a dropped entry had no "
                "effect on the output, so its gradient is zero, and a kept one "
                "carries the same scale as in forward (cache what forward used).",
                _DropoutBackwardPlain,
            ),
            Mistake(
                "backward drew a new mask: it must use the mask of its forward pass "
                "(cached), not draw another.",
                _DropoutNewMask,
            ),
            Mistake(
                "after a forward in eval mode (or with p = 0), backward still used "
                "the mask of the last training forward: an identity forward must "
                "also reset the cached mask (to None), so that backward lets dout "
                "through unchanged.",
                _DropoutStaleMask,
            ),
        ],
        hints=[_second_dx_hint],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- training
def _run_train_epoch(impl, X, y, batch_size, seed):
    C = int(y.max()) + 1
    model = ref.Sequential(
        ref.Linear(X.shape[1], 6, seed=seed),
        ref.ReLU(),
        ref.Linear(6, C, seed=seed + 1),
    )
    loss_fn = ref.CrossEntropyLoss()
    optimizer = ref.SGD(model.parameters(), lr=0.5, momentum=0.5)
    rng = np.random.default_rng(seed)
    out = impl(model, loss_fn, optimizer, X, y, batch_size, rng)
    pair = isinstance(out, (tuple, list)) and len(out) == 2
    result: dict[str, Any] = {
        _PAIR: pair,
        "the mean loss returned": out[0] if pair else out,
        "the accuracy returned": out[1] if pair else None,
    }
    result["the parameters after the epoch"] = model.state_dict()
    return result


_PAIR = "the return value is a pair (mean loss, accuracy)"


def _hint_pair(got, expected, case) -> str:
    if isinstance(got, dict) and got.get(_PAIR) is False:
        return "return two numbers, the mean loss and the accuracy, as a pair."
    return ""


def _train_epoch_mistake(
    zero_grad="before",
    shuffle=True,
    last_loss=False,
    unweighted=(),
    acc_after_step=False,
):
    """A train_epoch with one mistake: where zero_grad goes (``"before"`` the forward
    pass, ``"after"`` backward, or ``None``), no shuffling, the last batch's loss
    returned instead of the mean, the mean of the batches' values unweighted by
    their sizes (``unweighted`` names them: ``"loss"``, ``"acc"``), or the accuracy
    measured by a second forward pass after the step."""

    def train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
        total, loss, correct, losses, accs = 0.0, 0.0, 0, [], []
        batches = (
            data.iterate_minibatches(X, y, batch_size, rng=rng)
            if shuffle
            else data.iterate_minibatches(X, y, batch_size, shuffle=False)
        )
        for Xb, yb in batches:
            if zero_grad == "before":
                optimizer.zero_grad()
            logits = model(Xb)
            loss = loss_fn(logits, yb)
            model.backward(loss_fn.backward())
            if zero_grad == "after":
                optimizer.zero_grad()
            optimizer.step()
            total += loss * len(yb)
            losses.append(loss)
            if acc_after_step:
                logits = model(Xb)
            correct += int(np.sum(logits.argmax(axis=1) == yb))
            accs.append(float(np.mean(logits.argmax(axis=1) == yb)))
        mean_loss = loss if last_loss else total / len(X)
        if "loss" in unweighted:
            mean_loss = float(np.mean(losses))
        acc = float(np.mean(accs)) if "acc" in unweighted else correct / len(X)
        return mean_loss, acc

    return train_epoch


def _epoch_data(N: int, D: int, C: int, seed: int):
    X = _randn((N, D), seed)
    y = np.random.default_rng(4000 + seed).integers(0, C, size=N)
    return X, y


# The check hands train_epoch the course's model, loss and optimizer: an exercise of
# the notebook takes part only where train_epoch names its class itself (builds an
# SGD or a Linear of its own), and is then named first when the check fails.
_EPOCH_NAMES = (
    ("parameter", "Parameter"),
    ("module", "Module"),
    ("sequential", "Sequential"),
    ("linear", "Linear"),
    ("sgd", "SGD"),
    ("momentum", "SGD"),
    ("adam", "Adam"),
    ("weight_decay", "SGD"),
    ("weight_decay", "Adam"),
    ("dropout", "Dropout"),
)


@blames(LAB, *_EPOCH_NAMES)
def train_epoch(student) -> CheckResult:
    """Check ``train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng)``."""
    cases = []
    for name, (N, D, C, batch_size), seed in [
        ("24 examples, batches of 8", (24, 5, 3, 8), 0),
        ("30 examples, batches of 10", (30, 4, 2, 10), 1),
        ("12 examples in one batch", (12, 6, 4, 12), 2),
        ("20 examples, batches of 4", (20, 3, 3, 4), 3),
        ("10 examples, batches of 4: the last batch has 2", (10, 4, 3, 4), 4),
    ]:
        X, y = _epoch_data(N, D, C, seed)
        cases.append(Case(name, (X, y, batch_size, seed), run=_run_train_epoch))
    return run_check(
        "train_epoch",
        student,
        ref.train_epoch,
        cases,
        hints=[_hint_pair],
        mistakes=[
            Mistake(
                "call optimizer.zero_grad() at the start of every step: backward "
                "adds into p.grad, so without it each step uses the sum of all the "
                "gradients so far.",
                _train_epoch_mistake(zero_grad=None),
            ),
            Mistake(
                "every step saw only zeros, so nothing learned: the step must come "
                "right after backward, which fills p.grad, and zero_grad before "
                "backward, never between backward and step.",
                _train_epoch_mistake(zero_grad="after"),
            ),
            Mistake(
                "shuffle the examples with the generator you are given, as the "
                "exercise shows (iterate_minibatches with rng=rng).",
                _train_epoch_mistake(shuffle=False),
            ),
            Mistake(
                "return the mean loss over the epoch (weight each batch's loss by "
                "its size, divide by N), not the last batch's loss.",
                _train_epoch_mistake(last_loss=True),
            ),
            *[
                Mistake(
                    "when the last batch is smaller, the mean of the batches' values "
                    "is not the mean over the examples: weight each batch's loss "
                    "and accuracy by its number of examples.",
                    _train_epoch_mistake(unweighted=which),
                )
                for which in (("loss",), ("acc",), ("loss", "acc"))
            ],
            Mistake(
                "measure the accuracy from the logits of this batch's forward pass, "
                "as the loss: a second forward pass after the step measures a model "
                "that has already learned from the batch.",
                _train_epoch_mistake(acc_after_step=True),
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- together
_MODEL = "the model classes (Parameter, Module, Sequential, Linear)"
_PIECES = (_MODEL, "SGD", "Adam", "train_epoch")

_ADVICE = {
    _MODEL: (
        "Training runs forward and backward through the same model again and again: "
        "Linear adds each batch's gradients into p.grad (which zero_grad clears), "
        "Sequential visits every layer in order, and parameters() lists every "
        "parameter once."
    ),
    "SGD": (
        "Step against the gradient, lr times it, for every parameter, updating "
        "p.data in place; with momentum, keep one velocity per parameter (two "
        "parameters have the same shape here), from step to step."
    ),
    "Adam": (
        "Keep one pair m, v per parameter (two parameters have the same shape "
        "here), count t once per step, and update p.data in place."
    ),
    "train_epoch": (
        "For every batch, the last smaller one included: zero_grad() (in place: "
        "your Linear adds into p.grad), forward, loss, backward, step; and the mean "
        "loss weighted by the batches' sizes."
    ),
}


def _course_train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
    """The course's ``train_epoch`` under the lab's contract: ``zero_grad()`` zeroes
    every ``p.grad`` in place, as the lab's ``Parameter`` does, because the lab's
    ``Linear`` adds into ``p.grad`` (``+=``). The reference's ``train_epoch`` sets
    the gradients to ``None`` instead (``set_to_none=True``), which only a layer
    that assigns a first gradient (the reference's ``accumulate_grad``) can take: a
    student's ``Linear`` among the course's pieces would crash on it, and the check
    would blame the model for a mistake elsewhere."""
    total_loss, correct, n = 0.0, 0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()  # in place, the lab's contract
        logits = model(Xb)  # (B, C)
        loss = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        total_loss += loss * len(yb)
        correct += int(np.sum(logits.argmax(axis=1) == yb))
        n += len(yb)
    return total_loss / n, correct / n


def _lab_pieces(impl) -> dict:
    """The classes ``train_epoch``'s notebook defines (else the reference's)."""
    if isinstance(impl, dict):
        return impl
    if impl is _course_train_epoch:
        return {
            _MODEL: (ref.Sequential, ref.Linear, ref.ReLU),
            "SGD": ref.SGD,
            "Adam": ref.Adam,
            "train_epoch": impl,
        }
    model = tuple(
        find_global(impl, name, getattr(ref, name), type)
        for name in ("Sequential", "Linear", "ReLU")
    )
    return {
        _MODEL: model,
        "SGD": find_global(impl, "SGD", ref.SGD, type),
        "Adam": find_global(impl, "Adam", ref.Adam, type),
        "train_epoch": impl,
    }


_PARAM_NAMES = ("0.W", "0.b", "2.W", "2.b", "4.W", "4.b")


def _run_training(impl, optimizer, kwargs, seed, X, y, batch_size, num_epochs):
    """``num_epochs`` epochs of ``train_epoch``; every loss, accuracy, parameter."""
    pieces = _lab_pieces(impl)
    Seq, Lin, Act = pieces[_MODEL]
    D = X.shape[1]
    model = Seq(
        Lin(D, 4, seed=seed),
        Act(),
        Lin(4, 4, seed=seed + 1),
        Act(),
        Lin(3, seed=seed + 2),
    )
    model(X[:1])  # builds the lazy last layer
    params = list(model.parameters())
    names = (
        _PARAM_NAMES
        if len(params) == 6
        else [f"parameter {i}" for i in range(len(params))]
    )
    opt = pieces[optimizer](params, **kwargs)
    loss_fn = ref.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"the number of parameters of the model": len(params)}
    for epoch in range(1, num_epochs + 1):
        arrays = array_refs([p.data for p in params])
        returned = pieces["train_epoch"](model, loss_fn, opt, X, y, batch_size, rng)
        # a result, not an exception: the piece that rebinds is then named
        path = rebound(arrays, [p.data for p in params])
        out[
            f"after epoch {epoch}, every p.data is the array it was (updated in place)"
        ] = path is None
        pair = isinstance(returned, (tuple, list)) and len(returned) == 2
        out[f"the mean loss of epoch {epoch}"] = returned[0] if pair else returned
        out[f"the accuracy of epoch {epoch}"] = returned[1] if pair else None
        for name, p in zip(names, params, strict=True):
            out[f"{name} after epoch {epoch}"] = np.array(p.data, copy=True)
    return out


def training(student) -> CheckResult:
    """Check that the pieces train together: a model of the notebook's
    ``Sequential``, ``Linear`` and ``ReLU`` (so its ``Module`` and ``Parameter``
    too), trained by its ``train_epoch`` with its ``SGD`` (momentum) and its
    ``Adam`` for two epochs each, the last batch smaller; every loss, accuracy and
    parameter compared with the reference's.

    The model has two parameters of each shape, so optimizer state kept per shape
    shows; each exercise's check used a fresh object, here one model and one
    optimizer go through every step, as in the training cells.
    """
    cases = []
    for name, optimizer, kwargs, (N, D), batch_size, seed in [
        (
            "SGD with momentum 0.9: 10 examples, batches of 4, 4 and 2, two epochs",
            "SGD",
            {"lr": 0.1, "momentum": 0.9},
            (10, 4),
            4,
            10,
        ),
        (
            "Adam: 7 examples, batches of 3, 3 and 1, two epochs",
            "Adam",
            {"lr": 0.01},
            (7, 5),
            3,
            20,
        ),
    ]:
        X = _randn((N, D), 600 + seed)
        y = np.random.default_rng(600 + seed).integers(0, 3, size=N)
        cases.append(Case(name, (optimizer, kwargs, seed, X, y, batch_size, 2)))
    # the course's pieces run as the lab's contract states: zero_grad in place
    course = _course_train_epoch
    run = explain_errors(_run_training, student, _PIECES, _lab_pieces, course, _ADVICE)
    return blame_earlier(
        LAB,
        "training",
        student,
        [(piece, None) for piece in _TRAINING_USES],  # the notebook's, by _lab_pieces
        lambda record: run_check(
            "training",
            student,
            course,
            [Case(c.name, c.args, run=run) for c in cases],
            hints=[
                diverged_hint(
                    _PIECES, _lab_pieces, student, course, _run_training, _ADVICE
                )
            ],
            record=record,
        ),
        even_if_passed=True,
    )


# every exercise the training run reaches, in the lab's order: Parameter and Module
# under Sequential, Linear and the given ReLU; SGD with momentum; Adam (weight decay
# and Dropout are not used)
_TRAINING_USES = (
    "parameter",
    "module",
    "sequential",
    "linear",
    "sgd",
    "momentum",
    "adam",
    "train_epoch",
)


def summary() -> Summary:
    """The table of lab 3's exercises and which passed."""
    return LAB.summary()
