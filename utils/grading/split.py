"""The split path (issue 21): the checks decide in the grader, not in the kernel.

The kernel runs the lab as before, but with a stand-in of the check module
(:mod:`utils.grading.kernel_side`): ``check.relu(relu)`` there only notes the request.
After each check cell the grader asks the kernel for those requests and runs the real
check (a fresh copy of ``utils.check.labN``, its own ``LAB``) in its own process,
with a :class:`Remote` in place of the student's function. Each call of it sends the
inputs to the kernel as data (:mod:`utils.grading.wire`, no pickle), runs the
student's function there, and brings back the result and the arguments as the call
left them (so mutated inputs and in-place updates are seen). The references, the
comparison, the hints and the result never enter the kernel; the grader writes the
result into the executed notebook itself, and the kernel's own grader-typed outputs
are dropped. The kernel has no check code and no reference: the pieces a lab hands
out (``init_params``) are rebuilt there from their source, alone in a module.

Labs in :data:`SPLIT_LABS` take this path; the others still decide in the kernel.
``NN_GRADE_SPLIT=0`` turns it off.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dis
import functools
import importlib.util
import inspect
import os
import re
import secrets
import select
import shutil
import socket
import sys
import tempfile
import textwrap
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from utils.grading import wire

SPLIT_LABS = (
    "utils.check.lab1",
    "utils.check.lab2",
    "utils.check.lab3",
    "utils.check.lab4",
    "utils.check.lab5",
)
ENV_SWITCH = "NN_GRADE_SPLIT"
REMOTE = "__nn_remote__"  # the kernel's end, a global of the kernel
MAX_LINE = 1 << 28  # bytes of one message from the kernel's serve loop (256 MiB)
_HERE = Path(__file__).resolve().parent


def enabled(module: str) -> bool:
    """Whether the lab whose check module is ``module`` is graded on the split path."""
    off = os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "no", "off")
    return module in SPLIT_LABS and not off


def in_kernel_note(module: str) -> str:
    """One line for a run whose checks decided inside the students' kernels."""
    lab = module.rsplit(".", 1)[-1]
    why = "the split path is off" if module in SPLIT_LABS else "not split yet"
    return (
        f"{lab}: the checks still decide inside each student's kernel ({why}); a "
        "submission that patches them can fake its results: see the README"
    )


class KernelGone(BaseException):  # noqa: N818 - not an Exception: no check catches it
    """The kernel died or stopped answering during a check."""


class RemoteTimeout(BaseException):  # noqa: N818
    """Raised as the check core's CheckTimeout (imported lazily)."""


# ------------------------------------------------------------------ given pieces
def _default_names(func: Any) -> set[str]:
    """The module-level names of a function's default values that are functions or
    classes (``epoch_fn=train_epoch``): its ``def`` reads them, not its code."""
    home = vars(sys.modules.get(getattr(func, "__module__", ""), types))
    values = list(func.__defaults__ or ()) + list((func.__kwdefaults__ or {}).values())
    return {
        v.__name__
        for v in values
        if (inspect.isfunction(v) or inspect.isclass(v)) and home.get(v.__name__) is v
    }


def _names_used(obj: Any) -> set[str]:
    """The global names the code of a function or class may read, with those its
    defaults name."""
    codes = []
    names: set[str] = set()
    if inspect.isfunction(obj):
        codes.append(obj.__code__)
        names |= _default_names(obj)
    elif inspect.isclass(obj):
        for attr in vars(obj).values():
            attr = getattr(attr, "__func__", attr)
            if inspect.isfunction(attr):
                codes.append(attr.__code__)
                names |= _default_names(attr)
        codes += [b for b in obj.__bases__ if b is not object]  # type: ignore[misc]
    while codes:
        code = codes.pop()
        if isinstance(code, type):
            names.add(code.__name__)
            continue
        names.update(
            str(ins.argval)
            for ins in dis.get_instructions(code)
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")
        )
        codes += [c for c in code.co_consts if inspect.iscode(c)]
    return names


def _numpy_name(value: Any) -> str:
    """``value``'s name in NumPy when it is one of NumPy's scalar types, else ''."""
    name = getattr(value, "__name__", "")
    is_type = isinstance(value, type) and issubclass(value, np.generic)
    return name if is_type and getattr(np, str(name), None) is value else ""


def _initial_state(module: types.ModuleType, name: str, rng: Any) -> dict:
    """The state of the random generator ``module.name`` right after the module's
    import (a fresh copy of it is run), not as the grader's own use left it."""
    spec = importlib.util.spec_from_file_location(
        f"{module.__name__}__fresh", getattr(module, "__file__", "") or ""
    )
    with contextlib.suppress(Exception):  # no file: the state as it is
        assert spec is not None and spec.loader is not None
        copy = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(copy)
        fresh = getattr(copy, name)
        if isinstance(fresh, np.random.Generator):
            return fresh.bit_generator.state
    return rng.bit_generator.state


def _bases_first(defs: dict[str, tuple[str, list[str]]]) -> list[str]:
    """The sources of ``defs`` in an order that defines a class after its bases and a
    function after the functions its defaults name."""
    ordered: list[str] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        if name in seen or name not in defs:
            return
        seen.add(name)
        source, bases = defs[name]
        for base in bases:
            add(base)
        ordered.append(source)

    for name in defs:
        add(name)
    return ordered


_GIVEN = "_nn_given"  # in a given module's namespace: the given modules built so far
_REFERENCE = "utils.reference"


# in the kernel, in place of an exercise's reference that a given piece uses (the
# ReLU module's Relu, fit's train_epoch): the notebook's own of that name, else an
# error that says so
_YOURS = """
class _nn_yours:
    def __init__(self, name, why):
        self.__name__, self._why = name, why

    def _own(self):
        import sys

        found = getattr(sys.modules.get("__main__"), self.__name__, None)
        if found is None or found is self:
            raise NotImplementedError(self._why)
        return found

    def __call__(self, *args, **kwargs):
        return self._own()(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._own(), name)

    def __repr__(self):
        return f"<{self.__name__}: the notebook's own>"
"""


def _decorator_reads(node: ast.FunctionDef | ast.ClassDef) -> frozenset[str]:
    """The names that the decorators of a ``def`` or ``class`` read."""
    return frozenset(
        n.id
        for d in node.decorator_list
        for n in ast.walk(d)
        if isinstance(n, ast.Name)
    )


@functools.lru_cache(maxsize=32)
def _top_level_defs(filename: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Each top-level ``def`` and ``class`` of a file by name: its source, decorators
    included, and the names its decorators read. The file is parsed once
    (``inspect.getsource`` parses the whole module again for each class)."""
    text = Path(filename).read_text()
    lines = text.splitlines(keepends=True)
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            source = "".join(lines[first - 1 : node.end_lineno])
            found[node.name] = (source, _decorator_reads(node))
    return found


def _source_of(value: Any) -> tuple[str, frozenset[str]]:
    """The source of a function or class of the course, and the names its
    decorators read (``contextlib`` for ``@contextlib.contextmanager``)."""
    inner = inspect.unwrap(value) if inspect.isfunction(value) else value
    home = sys.modules.get(getattr(inner, "__module__", ""))
    filename = getattr(home, "__file__", None)
    found = _top_level_defs(filename).get(inner.__name__) if filename else None
    if found is not None:
        return found
    source = inspect.getsource(value)  # not at the top of its module
    node = ast.parse(textwrap.dedent(source)).body[0]
    return source, _decorator_reads(node)  # type: ignore[arg-type]


def _is_reference_module(value: Any) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__.startswith(
        _REFERENCE + "."
    )


def _module_attrs(obj: Any, alias: str) -> set[str]:
    """The attributes that the code of ``obj`` (a function, or a class's methods)
    reads of its global ``alias`` (a module: ``_s3.Module``)."""
    codes = [getattr(obj, "__code__", None)]
    if inspect.isclass(obj):
        codes = [
            getattr(getattr(a, "__func__", a), "__code__", None)
            for a in vars(obj).values()
        ]
    found: set[str] = set()
    codes = [c for c in codes if inspect.iscode(c)]
    while codes:
        code = codes.pop()
        ins = list(dis.get_instructions(code))
        for a, b in zip(ins, ins[1:], strict=False):
            loads = a.opname in ("LOAD_GLOBAL", "LOAD_NAME") and a.argval == alias
            if loads and b.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                found.add(str(b.argval))
        codes += [c for c in code.co_consts if inspect.iscode(c)]
    return found


def given_pieces(
    import_source: str, forbidden: Any = (), uses_source: str = ""
) -> dict[str, str]:
    """Source that rebuilds, in the kernel, the pieces the lab imports from the
    reference (``from utils.reference.stage1 import GRAD_CHECK_BOUND, init_params``),
    with the constants and helpers they use, in a namespace with NumPy alone:
    ``{module: source}``, each module after those it uses.

    A reference module the lab imports whole (``from utils.reference import
    stage4``) is given with the attributes that ``uses_source`` (the lab's code)
    reads of it (``stage4.Function``); one that a piece reads through an alias
    (``_s3.Module``) is given with what the pieces read of it. Such a module is
    never imported in the kernel: it is the given module of that name.

    An exercise's reference (``forbidden``) that a piece only uses (lab 3's
    ``fit(..., epoch_fn=train_epoch)``) becomes a stub that raises
    ``NotImplementedError`` when called: the piece works with the student's own
    function passed in, and the kernel never holds the reference.

    Raises:
        ValueError: a piece the lab imports is an exercise's reference
            (``forbidden``), or is not a function, a class or a constant.
    """
    import builtins

    tree = ast.parse(import_source)
    asked: dict[str, list[str]] = {}  # module -> names the lab imports from it
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            _REFERENCE
        ):
            asked.setdefault(node.module, []).extend(a.name for a in node.names)
    banned = {id(x) for x in forbidden}
    todo: list[tuple[str, str]] = [(m, n) for m, names in asked.items() for n in names]
    done: set[tuple[str, str]] = set()
    blocks: dict[str, list[str]] = {}
    defs: dict[str, dict[str, tuple[str, list[str]]]] = {}  # module -> name -> def
    needs: dict[str, set[str]] = {}  # module -> the given modules it reads
    homes: dict[tuple[str, str], Any] = {}  # (module, name) -> where to read it
    while todo:
        module, name = todo.pop(0)
        if (module, name) in done or name in ("np", "annotations"):
            continue
        done.add((module, name))
        real = homes.get((module, name)) or importlib.import_module(module)
        out = blocks.setdefault(module, [])
        value = getattr(real, name)
        direct = name in asked.get(module, ())
        if id(value) in banned and direct:
            raise ValueError(f"{module}.{name} is an exercise's reference")
        if id(value) in banned:  # used by a piece: the notebook's own, when it has one
            why = f"{name} is an exercise of this lab: pass your own {name}"
            out.insert(0, f"{name} = _nn_yours({name!r}, {why!r})")
            continue
        if _is_reference_module(value):  # the given one of that name, with what
            # the lab or a piece reads of it
            target = value.__name__
            needs.setdefault(module, set()).add(target)
            out.insert(0, f"{name} = {_GIVEN}[{target!r}]")
            if direct:  # the lab's own code reads it: stage4.Function
                pattern = rf"\b{re.escape(name)}\.([A-Za-z_]\w*)"
                todo += [
                    (target, a) for a in sorted(set(re.findall(pattern, uses_source)))
                ]
            continue
        if isinstance(value, (int, float, str, bool)):
            out.insert(0, f"{name} = {value!r}")
        elif isinstance(value, types.ModuleType):
            out.insert(0, f"import {value.__name__} as {name}")
        elif _numpy_name(value):  # a dtype such as np.float32
            out.insert(0, f"{name} = np.{_numpy_name(value)}")
        elif isinstance(value, np.random.Generator):  # as on import
            state = _initial_state(real, name, value)
            out.insert(
                0,
                f"{name} = np.random.Generator(np.random.{state['bit_generator']}"
                f"())\n{name}.bit_generator.state = {state!r}",
            )
        elif inspect.isfunction(value) or inspect.isclass(value):
            home = sys.modules.get(getattr(value, "__module__", ""), real)
            bases = [b.__name__ for b in getattr(value, "__bases__", ())]
            methods = [getattr(a, "__func__", a) for a in vars(value).values()]
            for func in [value] if inspect.isfunction(value) else methods:
                if inspect.isfunction(func):  # its defaults before it
                    bases += sorted(_default_names(func))
            source, decorators = _source_of(value)
            defs.setdefault(module, {})[name] = (source, bases)
            used = _names_used(value) | decorators
            used |= {
                n
                for b in getattr(value, "__bases__", ())
                for n, v in vars(home).items()
                if _is_reference_module(v) and getattr(v, b.__name__, 0) is b
            }  # class Module(_s3.Module): the alias its base is read through
            for n in sorted(used):
                if n not in vars(home) or hasattr(builtins, n):
                    continue
                homes.setdefault((module, n), home)
                todo.append((module, n))
                alias = vars(home)[n]
                if _is_reference_module(alias):  # what this piece reads of it
                    attrs = _module_attrs(value, n) | {
                        b.__name__
                        for b in getattr(value, "__bases__", ())
                        if getattr(alias, b.__name__, 0) is b
                    }
                    todo += [(alias.__name__, a) for a in sorted(attrs)]
        else:
            raise ValueError(f"cannot hand {module}.{name} to the kernel alone")
    sources = {}
    head = ["from __future__ import annotations", "import numpy as np", ""]
    for module in _modules_first(list(blocks), needs):
        body = blocks[module] + _bases_first(defs.get(module, {}))
        yours = [_YOURS] if any("_nn_yours(" in b for b in body) else []
        sources[module] = "\n".join(head + yours + body)
    return sources


def given_objects(sources: dict[str, str]) -> dict[str, Any]:
    """The grader's own objects of the given pieces (:func:`given_pieces`' sources),
    ``{"module:name": object}``: the classes and functions defined there (not the
    stubs), which the kernel rebuilt from the same source. Found once per lab."""
    return dict(_given_objects(tuple(sources.items())))


@functools.lru_cache(maxsize=16)
def _given_objects(sources: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module, source in sources:
        real = importlib.import_module(module)
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                value = getattr(real, node.name, None)
                if inspect.isfunction(value) or inspect.isclass(value):
                    found[f"{module}:{node.name}"] = value
    return found


def _modules_first(modules: list[str], needs: dict[str, set[str]]) -> list[str]:
    """``modules`` in an order that builds each after the given modules it reads."""
    ordered: list[str] = []

    def add(module: str, path: tuple[str, ...] = ()) -> None:
        if module in ordered or module in path:
            return
        for dep in sorted(needs.get(module, ())):
            add(dep, (*path, module))
        if module in modules:
            ordered.append(module)

    for module in modules:
        add(module)
    return ordered


def kernel_given(check_module: str, import_source: str, uses_source: str = "") -> dict:
    """The given pieces' sources for a lab (:func:`given_pieces`), made once per
    lab and process."""
    return dict(_kernel_given(check_module, import_source, uses_source))


@functools.lru_cache(maxsize=16)
def _kernel_given(check_module: str, import_source: str, uses_source: str) -> dict:
    refs = fresh_check_module(check_module).LAB.references.values()
    return given_pieces(import_source, list(refs), uses_source)


def kernel_setup(check_module: str, prefix: str, given: dict[str, str]) -> str:
    """The first cell of a split-path notebook: the kernel's end of the wire, and
    the given pieces (:func:`kernel_given`), each module built from its source
    alone, after the given modules it reads."""
    code = (
        (_HERE / "wire.py").read_text()
        + "\n\n"
        + (_HERE / "kernel_side.py").read_text()
    )
    return (
        "def _nn_setup(code, prefix, module, given):  # added by the batch grader\n"
        "    import types\n"
        "    space = {'__name__': '__nn_wire__'}\n"
        "    exec(compile(code, '<grader wire>', 'exec'), space)\n"
        "    built = {}\n"
        "    for name, source in given.items():\n"
        f"        alone = {{'__name__': name, {_GIVEN!r}: built}}\n"
        "        exec(compile(source, '<given ' + name + '>', 'exec'), alone)\n"
        "        skip = ('np', 'annotations')\n"
        "        built[name] = types.ModuleType(name)\n"
        "        built[name].__dict__.update({k: v for k, v in alone.items()\n"
        "                                     if k[:1] != '_' and k not in skip})\n"
        "    return space['KernelRemote'](prefix, module, built)\n\n\n"
        f"{REMOTE} = _nn_setup({code!r}, {prefix!r}, {check_module!r}, {given!r})\n"
        "del _nn_setup\n"
    )


CHECK_PREFIX = f"check = {REMOTE}.shim\n"


# ------------------------------------------------------------------ proxies
class _Code:
    def __init__(self, names: list[str]):
        self.co_names = tuple(str(n) for n in names)


class _Globals(dict):
    """A function's globals as the check sees them: each name asked of the kernel."""

    def __init__(self, run: SplitRun, hid: int):
        super().__init__()
        self._run, self._hid = run, hid

    def get(self, name, default=None):  # noqa: ANN001
        value = self._run.call({"op": "global", "h": self._hid, "name": str(name)})
        return default if value is None else value

    def __getitem__(self, name):  # noqa: ANN001
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name) -> bool:  # noqa: ANN001
        return self.get(name) is not None


def _deferrable(info: dict, name: str) -> bool:
    """Whether setting ``name`` on the kernel's instance described by ``info`` can
    wait for the next message: a plain instance (``object``'s ``__setattr__`` and
    ``__getattribute__``, a ``__dict__``, no class attribute of that name), where a
    set runs no code of the student's and reads back as the value set. (The kernel
    says so; if it lies, it only gets its sets later: the grader's values are the
    grader's.)"""
    return (
        info.get("plain") is True
        and not name.startswith("_")
        and name not in (info.get("cattrs") or ())
    )


class Remote:
    """The grader's stand-in for an object of the kernel (the student's function).

    Calling it runs the student's object in the kernel on a copy of the arguments sent
    as data; attributes are read and set there. ``__globals__`` and ``__code__``
    answer what the checks ask of a function (the notebook's names it uses).
    """

    def __init__(self, run: SplitRun, hid: int, info: dict):
        d = self.__dict__
        d["_nn"] = (run, hid, info)
        marks = info.get("reference")
        if marks:
            d["__nn_reference_for__"] = frozenset(str(m) for m in marks)

    def __call__(self, *args, **kwargs):
        run, hid, _ = self.__dict__["_nn"]
        return run.call({"op": "call", "h": hid}, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "_nn":
            raise AttributeError(name)
        run, hid, info = self.__dict__["_nn"]
        was = self.__dict__.get("_nn_set", {}).get(name)
        if was is not None and was[0] == run.sent:  # set or read, nothing sent since
            return was[1]
        if name in info.get("methods", ()):  # read and called in one message

            def method(*args: Any, **kwargs: Any) -> Any:
                request = {"op": "callmethod", "h": hid, "name": name}
                return run.call(request, args, kwargs)

            method.__name__ = method.__qualname__ = name
            return method
        before = run.sent
        value = run.call({"op": "getattr", "h": hid, "name": name})
        if _deferrable(info, name):  # read again before a message: the same value
            if run.sent == before + 1:  # this read alone: it ran no student code
                run.sent = before
            self.__dict__.setdefault("_nn_set", {})[name] = (run.sent, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        run, hid, info = self.__dict__["_nn"]
        if _deferrable(info, name):  # sent with the next message, cached till then
            run.defer(hid, name, value)
            self.__dict__.setdefault("_nn_set", {})[name] = (run.sent, value)
            return
        run.call({"op": "setattr", "h": hid, "name": name}, value=value)

    def __delattr__(self, name: str) -> None:
        run, hid, _ = self.__dict__["_nn"]
        self.__dict__.get("_nn_set", {}).pop(name, None)
        run.call({"op": "delattr", "h": hid, "name": name})

    @property
    def __globals__(self) -> dict:
        run, hid, _ = self.__dict__["_nn"]
        return _Globals(run, hid)

    @property
    def __code__(self) -> _Code:
        info = self.__dict__["_nn"][2]
        if "co_names" not in info:
            raise AttributeError("__code__")
        return _Code(info["co_names"])

    @property
    def __name__(self) -> str:
        return str(self.__dict__["_nn"][2].get("name", "object"))

    def __repr__(self) -> str:
        return f"<{self.__name__} (in the kernel)>"


class _RemoteClassMeta(type):
    """The type of the grader's stand-in for a class of the kernel.

    A check's own subclass of such a class (``class Traced(M)``, lab 3) is made in
    the kernel, as a subclass of the kernel's class: its methods are the check's
    functions, which the kernel calls back here (see :func:`_kernel_subclass`).
    """

    def __new__(mcls, name, bases, ns, **kwargs):  # noqa: ANN001, ANN204, N804
        if "_nn" in ns:  # a stand-in, made by remote_class
            return super().__new__(mcls, name, bases, ns, **kwargs)
        return _kernel_subclass(name, bases, ns)

    def __call__(cls, *args, **kwargs):  # an instance built in the kernel
        run, hid, _ = cls.__dict__["_nn"]
        return run.call({"op": "call", "h": hid}, args, kwargs)

    def __getattr__(cls, name: str):
        if name.startswith("__") or name == "_nn":
            raise AttributeError(name)
        run, hid, _ = cls.__dict__["_nn"]
        return run.call({"op": "getattr", "h": hid, "name": name})


def _kernel_subclass(name: str, bases: tuple, ns: dict) -> type:
    """``class Traced(M): ...`` in a check, ``M`` a kernel class: the class is made in
    the kernel (so that the student's code sees a true subclass of its ``M``), each
    of its methods calling the check's function of that name here. What the methods
    record (a trace of calls) stays in the grader; the kernel only calls them."""
    if len(bases) != 1 or not isinstance(bases[0], _RemoteClassMeta):
        raise TypeError("a subclass of a kernel class has that class as its only base")
    run, hid, _ = bases[0].__dict__["_nn"]
    methods = {k: v for k, v in ns.items() if inspect.isfunction(v)}
    cls = run.call({"op": "subclass", "h": hid, "name": name}, [methods], {})
    if not isinstance(cls, _RemoteClassMeta):
        raise TypeError("the kernel did not make the subclass")
    if "__classcell__" in ns:
        ns["__classcell__"].cell_contents = cls
    return cls


class _KernelInit:
    """``M.__init__`` of a kernel class ``M``, as a check calls it on an instance
    (``M.__init__(self)`` in a subclass's ``__init__``): the kernel's, run there.
    Not a function, so that no search of a class's globals finds the grader's."""

    def __init__(self, run: SplitRun, hid: int) -> None:
        self._nn = (run, hid)

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        run, hid = self._nn
        request = {"op": "callmethod", "h": hid, "name": "__init__"}
        return run.call(request, (obj, *args), kwargs)

    @property
    def __globals__(self) -> dict:
        """The names the kernel class's methods see (a check looks for the
        notebook's ``Parameter`` there), each asked of the kernel."""
        run, hid = self._nn
        return _Globals(run, hid)


class _KernelIter:
    """``iter(obj)`` of an instance of a kernel class that is iterable there (a
    generator): the kernel's items, as a list."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self

        def items() -> Any:
            inst = obj._nn_target()
            run, hid, _ = inst.__dict__["_nn"]
            return iter(run.call({"op": "iterate", "h": hid}))

        return items


class _Lazy:
    """An instance of a kernel class, here: one sent by the kernel, or one made with
    ``object.__new__(cls)`` by a check that skips ``__init__`` (its twin in the
    kernel is then made on first use, and this object stands for it from then on).
    Attributes are the kernel's; calling it calls the kernel's object."""

    def _nn_target(self) -> Any:
        d = self.__dict__
        if "_nn_inst" not in d:
            run, hid, _ = type(self).__dict__["_nn"]
            twin = run.call({"op": "new", "h": hid})
            inst = twin.__dict__["_nn_inst"]
            d["_nn_inst"] = inst
            run.peer.set_proxy(inst.__dict__["_nn"][1], self)  # the kernel's, here
        return d["_nn_inst"]

    def __getattr__(self, name: str):
        if name.startswith("__") or name.startswith("_nn"):
            raise AttributeError(name)
        return getattr(self._nn_target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._nn_target(), name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._nn_target()(*args, **kwargs)


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, _Lazy):
        obj._nn_target()  # its twin in the kernel exists: obj is its stand-in
    return obj


def remote_class(run: SplitRun, hid: int, info: dict) -> type:
    """A class standing in for the kernel's class ``hid``, with stand-ins of the
    kernel class's bases as its bases (``__mro__`` names the kernel's classes)."""
    name = str(info.get("name", "")) or "Class"
    name = name if name.isidentifier() else "Class"
    ns: dict[str, Any] = {
        "__module__": "builtins",
        "_nn": (run, hid, info),
        "__init__": _KernelInit(run, hid),
    }
    if info.get("iter") is True:
        ns["__iter__"] = _KernelIter()
    marks = info.get("reference")
    if marks:
        ns["__nn_reference_for__"] = frozenset(str(m) for m in marks)
    bases = []
    building = run.building  # a kernel's class claiming to derive from itself
    building.add(hid)
    try:
        for data in info.get("bases") or []:
            if isinstance(data, dict) and data.get("$h", [None, hid])[1] in building:
                continue
            with contextlib.suppress(Exception):  # not a class: left out
                base = run.peer.decode(data)
                if isinstance(base, _RemoteClassMeta) and base not in bases:
                    bases.append(base)
    finally:
        building.discard(hid)
    try:
        return _RemoteClassMeta(name, tuple(bases) or (_Lazy,), ns)
    except TypeError:  # bases that make no MRO here
        return _RemoteClassMeta(name, (_Lazy,), ns)


_PROXY_TYPES: dict[str, type] = {}


def _proxy_type(name: str) -> type:
    """A Remote subclass named like the kernel object's type (for messages)."""
    name = name if name.isidentifier() else "object"
    if name not in _PROXY_TYPES:
        _PROXY_TYPES[name] = type(name, (Remote,), {"__module__": "builtins"})
    return _PROXY_TYPES[name]


# ------------------------------------------------------------------ fresh checks
_LOCK = threading.Lock()


def fresh_check_module(module: str) -> types.ModuleType:
    """A new copy of ``utils.check.labN``, with a ``LAB`` of its own."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    name = f"{module}__grade_{secrets.token_hex(4)}"
    copy_spec = importlib.util.spec_from_file_location(name, spec.origin)
    assert copy_spec is not None and copy_spec.loader is not None
    mod = importlib.util.module_from_spec(copy_spec)
    with _LOCK:
        sys.modules[name] = mod
        try:
            copy_spec.loader.exec_module(mod)
        finally:
            sys.modules.pop(name, None)
    return mod


def known_errors(checks: types.ModuleType) -> dict[str, type]:
    """The exception classes of the reference modules a check module uses, by name:
    an error of one of these names raised in the kernel (where the lab's given copy
    of it is) is rebuilt here as that class, which the checks catch."""
    found = {}
    for value in vars(checks).values():
        home = getattr(value, "__name__", "")
        if isinstance(value, types.ModuleType) and home.startswith("utils.reference"):
            for name, obj in vars(value).items():
                if (
                    isinstance(obj, type)
                    and issubclass(obj, Exception)
                    and obj.__module__ == home
                ):
                    found[name] = obj
    return found


# ------------------------------------------------------------------ transports
class JupyterTransport:
    """The kernel's channels: execute requests out, ``input()`` prompts back.

    While the kernel's serve loop runs, its prompts and the grader's replies go over
    a Unix socket of their own (:meth:`listen`), one line of JSON each, instead of
    the Jupyter stdin channel (signed messages, and a flush of the kernel's output
    streams per prompt): lab 3's solution waited 0.35 s for the kernel over its 762
    messages, against 1.03 s through stdin. The stdin channel is still watched, for
    the student's own ``input()`` and for the end of the execution. A reply goes
    back the way the last prompt came.
    """

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._lines = wire.Lines()
        self._from_socket = False  # where the last prompt came from
        self._own_folder: str | None = None
        self._path = ""  # the listening socket's file

    def listen(self) -> str | None:
        """Listen on a new Unix socket that the kernel can reach; its path, or None
        (no Unix sockets here, or a path too long for one)."""
        self.close()
        folder = getattr(getattr(self.client, "km", None), "_nn_sockets", None)
        if folder is None:  # no sandbox: the kernel sees this machine's /tmp
            folder = self._own_folder = tempfile.mkdtemp(prefix="nnw-")
        path = os.path.join(str(folder), f"w{secrets.token_hex(4)}")
        if len(path) > 100 or not hasattr(socket, "AF_UNIX"):
            return None
        try:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(1)
        except OSError:
            return None
        self._listener, self._path = listener, path
        return path

    def close(self) -> None:
        """Close the socket (the kernel's loop has ended, or is to)."""
        for sock in (self._listener, self._conn):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._listener = self._conn = None
        self._lines, self._from_socket = wire.Lines(), False
        if self._own_folder is not None:
            shutil.rmtree(self._own_folder, ignore_errors=True)
            self._own_folder = None

    def _line(self, seconds: float) -> str | None:
        """The kernel's next line on the socket, waiting up to ``seconds``; None if
        none came (or the socket closed: the stdin channel then says why). A line
        longer than :data:`MAX_LINE` closes the socket (the check then times out):
        the grader's memory is not the kernel's to fill."""
        end = time.monotonic() + seconds
        while True:
            line = self._lines.pop()
            if line is not None:
                return line
            if len(self._lines) > MAX_LINE:
                self.close()
                return None
            sock = self._conn or self._listener
            if sock is None:
                return None
            left = end - time.monotonic()
            ready, _, _ = select.select([sock], [], [], max(0.0, left))
            if not ready:
                return None
            try:
                if sock is self._listener:  # the kernel's loop connects: only once
                    self._conn, _ = sock.accept()
                    self._conn.settimeout(30.0)  # a send never blocks the grader
                    sock.close()
                    self._listener = None
                    with contextlib.suppress(OSError):  # no second connection
                        os.unlink(self._path)
                    continue
                chunk = sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:  # closed: its loop has ended
                self.close()
                return None
            self._lines.feed(chunk)

    def _await(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def execute(self, payload: str) -> str:
        code = f"{REMOTE}.serve({payload!r})"
        return self.client.kc.execute(
            code,
            silent=True,
            store_history=False,
            allow_stdin=True,
            user_expressions={"nn": f"{REMOTE}.last"},
        )

    def input(self, text: str) -> None:
        if self._from_socket and self._conn is not None:
            try:
                self._conn.sendall(text.encode("ascii") + b"\n")  # ASCII JSON
                return
            except OSError:
                self.close()
        self.client.kc.input(text)

    def interrupt(self) -> None:
        self._await(self.client.km.interrupt_kernel())

    def next(self, msg_id: str, seconds: float) -> tuple[str, Any]:
        if self._listener is None and self._conn is None:
            self._from_socket = False
            return self._await(self._next(msg_id, seconds))
        end = time.monotonic() + seconds
        while True:
            line = self._line(min(0.02, max(0.0, end - time.monotonic())))
            if line is not None:
                self._from_socket = True
                return "input", {"content": {"prompt": line}}
            kind, msg = self._await(self._next(msg_id, 0.001))  # stdin, the end
            if kind != "timeout" or time.monotonic() >= end:
                self._from_socket = False
                return kind, msg

    async def _next(self, msg_id: str, seconds: float) -> tuple[str, Any]:
        """The next stdin request, or ``("reply", msg)`` when the execution ended."""
        import zmq
        import zmq.asyncio

        kc = self.client.kc
        poller = getattr(self, "_poller", None)
        if poller is None:
            poller = self._poller = zmq.asyncio.Poller()
            poller.register(kc.stdin_channel.socket, zmq.POLLIN)
            poller.register(kc.shell_channel.socket, zmq.POLLIN)
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return "timeout", None
            ready = dict(await poller.poll(int(min(left, 1.0) * 1000) + 1))
            if kc.stdin_channel.socket in ready:
                msg = await kc.stdin_channel.get_msg(timeout=1)
                return "input", msg
            if kc.shell_channel.socket in ready:
                msg = await kc.shell_channel.get_msg(timeout=1)
                if msg["parent_header"].get("msg_id") == msg_id:
                    return "reply", msg
                continue
            if not ready and not await self.client.km.is_alive():
                return "dead", None


def kernel_namespace() -> dict:
    """The kernel's end of the wire, run in this process (for :class:`Loopback`)."""
    code = (
        (_HERE / "wire.py").read_text()
        + "\n\n"
        + (_HERE / "kernel_side.py").read_text()
    )
    space: dict = {"__name__": "__nn_wire__"}
    exec(compile(code, "<grader wire>", "exec"), space)  # noqa: S102 - our own source
    return space


class Loopback:
    """The kernel's end in a thread of this process, with the very same messages
    (tests: every catalogued implementation through the wire, without a kernel)."""

    def __init__(self, prefix: str, check_module: str) -> None:
        import queue

        space = kernel_namespace()
        self._queue = queue
        self.to_grader: Any = queue.Queue()
        self.to_kernel: Any = queue.Queue()
        self.remote = space["KernelRemote"](
            prefix, check_module, {}, install=False, ask=self._prompt
        )

    def _prompt(self, prompt: str) -> str:
        self.to_grader.put(("input", {"content": {"prompt": prompt}}))
        return self.to_kernel.get()

    def kernel_object(self, obj: Any) -> Any:
        """The wire data that names ``obj``, an object of the 'kernel'."""
        return self.remote.peer.encode(obj)

    def execute(self, payload: str) -> str:
        def run() -> None:
            try:
                self.remote.serve(payload)
            finally:
                text = {"status": "ok", "data": {"text/plain": repr(self.remote.last)}}
                reply = {"content": {"user_expressions": {"nn": text}}}
                self.to_grader.put(("reply", reply))

        threading.Thread(target=run, daemon=True).start()
        return "loopback"

    def input(self, text: str) -> None:
        self.to_kernel.put(text)

    def interrupt(self) -> None:  # a thread cannot be interrupted: tests avoid it
        pass

    def next(self, msg_id: str, seconds: float) -> tuple[str, Any]:
        try:
            return self.to_grader.get(timeout=seconds)
        except self._queue.Empty:
            return "timeout", None


# ------------------------------------------------------------------ the run
class SplitRun:
    """One kernel's checks, decided here.

    Args:
        module: the lab's check module, ``utils.check.lab1``.
        prefix: what starts the kernel's protocol prompts.
        nonce: marks the results the grader writes into the notebook.
        mime: the MIME type of those results.
    """

    def __init__(
        self, module: str, prefix: str, nonce: str, mime: str, given: Any = None
    ) -> None:
        self.module_name = module
        self.checks = fresh_check_module(module)
        self.prefix, self.nonce, self.mime = prefix, nonce, mime
        self.peer = wire.Peer("g", self._proxy, self._describe, _unwrap)
        # (kind, class, made as, calls, state): the check module's WIRE_RECORDS
        self.records = tuple(getattr(self.checks, "WIRE_RECORDS", ()))
        self.peer.record_kinds = tuple(
            (k, c, calls) for k, c, _, calls, _ in self.records
        )
        self.peer.make_record = self._make_record
        self.peer.state_kinds = {k for k, _, _, _, state in self.records if state}
        self.peer.set_given(given_objects(given or {}))
        self.transport: Any = None
        self.depth = 0
        self.kernel_left = 0.0  # seconds the kernel may still take in this check
        self.used_reference = False
        self.dead = False
        self.looping = False  # the kernel waits in its serve loop for requests
        self.building: set[int] = set()  # kernel classes whose stand-in is being made
        self.errors = known_errors(self.checks)
        self.sent = 0  # messages sent to the kernel (a deferred set's cache: till one)
        self.sets: list = []  # deferred sets: [hid, name, value as data]
        from utils.check.core import TIMEOUT_S

        # the check's time limit counts the kernel's time only (the student's code
        # and the wire there), not the grader's own work on the results
        self.check_seconds = TIMEOUT_S + 1

    def _proxy(self, hid: int, info: dict) -> Any:
        if info.get("kind") == "class":
            return remote_class(self, hid, info)
        if isinstance(info.get("cls"), dict):  # an instance: of its class's stand-in
            cls = self.peer.decode(info["cls"])
            if isinstance(cls, _RemoteClassMeta):
                inst = object.__new__(cls)
                inst.__dict__["_nn_inst"] = Remote(self, hid, info)
                return inst
        return _proxy_type(str(info.get("type", "object")))(self, hid, info)

    def _make_record(self, kind: str, watch: Any, calls: Any, obj: Any = None) -> Any:
        """A copy, here, of the kernel's record of ``kind`` (a tensor that the
        student's code made), as the check's own class for it."""
        if obj is not None:
            return obj
        for name, _, made, _, _ in self.records:
            if name == kind:
                return made.__new__(made)
        raise TypeError(f"no record of kind {kind!r} here")

    @staticmethod
    def _describe(obj: Any) -> dict:
        name = getattr(obj, "__name__", None)
        name = name if isinstance(name, str) else type(obj).__name__
        kind = type(obj)
        methods = [
            n
            for n in dir(kind)
            if not n.startswith("_")
            and callable(getattr(kind, n, None))
            and not isinstance(getattr(kind, n, None), type)
        ]
        return {"name": name, "type": kind.__name__, "methods": methods[:200]}

    # -------------------------------------------------------------- channel
    def _execute(self, payload: str) -> str:
        self.sent += 1
        return self.transport.execute(payload)

    def _input(self, text: str) -> None:
        self.sent += 1
        self.transport.input(text)

    def defer(self, hid: int, name: str, value: Any) -> None:
        """A set of an attribute of a plain kernel instance, for the next message."""
        self.sets.append([hid, name, self.peer.encode(value)])

    def _take_sets(self) -> dict:
        sets, self.sets = self.sets, []
        return {"sets": sets} if sets else {}

    def _next(self, msg_id: str, seconds: float) -> tuple[str, Any]:
        return self.transport.next(msg_id, seconds)

    def _interrupt(self) -> None:
        self.transport.interrupt()

    def call(
        self,
        request: dict,
        args: Any = None,
        kwargs: Any = None,
        value: Any = wire.Memo,
    ) -> Any:
        """Ask the kernel about one of its objects; answer its questions meanwhile."""
        from utils.check.core import CheckTimeout

        if self.dead:
            raise KernelGone("the kernel is gone")
        memo = wire.Memo()
        full, self.peer.rec_full = self.peer.rec_full, True  # our records as they are
        try:
            if value is not wire.Memo:  # (a marker: no value given)
                request = dict(request, value=self.peer.encode(value, memo))
            if args is not None:
                args = self.peer.encode([list(args), dict(kwargs)], memo, keep=True)
                request = dict(request, args=args)
            request = dict(
                request,
                **self._take_sets(),
                **self.peer.snapshot(),
                **self.peer.state(),
            )
        finally:
            self.peer.rec_full = full
        top = self.depth == 0
        if top and getattr(self, "forget_next", False):
            request["forget"], self.forget_next = True, False
            request["records"] = [[k, state] for k, _, _, _, state in self.records]
        if top:
            if self.looping:  # the kernel's serve loop: one round trip
                self._input(wire.dumps({"kind": "req", **request}))
            else:
                self.msg_id = self._execute(wire.dumps(request))  # ASCII JSON
        else:
            self._input(wire.dumps({"kind": "req", **request}))
        self.depth += 1
        try:
            while True:
                left = max(0.05, self.kernel_left)
                waited = time.monotonic()
                kind, msg = self._next(self.msg_id, left)
                self.kernel_left -= time.monotonic() - waited
                if kind == "timeout":
                    raise CheckTimeout(self.check_seconds)
                if kind == "reply" and top:  # the answer, in the execute reply
                    message = self._from_reply(msg)
                    self.peer.apply_state(message)
                    break
                if kind in ("dead", "reply"):
                    self.dead = kind == "dead"
                    self.looping = False
                    raise KernelGone("the kernel stopped answering the grader")
                prompt = str(msg["content"].get("prompt", ""))
                if not prompt.startswith(self.prefix):
                    (self._input(""))  # the student's own input()
                    continue
                message = wire.loads(prompt[len(self.prefix) :])
                self.peer.apply_state(message)
                if message.get("kind") == "resp":
                    break
                if "sync" in message:  # the kernel's copies of our arguments, now
                    self.peer.decode(message["sync"], None, memo.objs)
                self.peer.rec_full = False  # an answer in the kernel's call: our
                try:  # records there stay as they are (ours go with our next call)
                    served = self._serve(message)
                finally:
                    self.peer.rec_full = True
                answer = dict(
                    served,
                    **self._take_sets(),
                    **self.peer.snapshot(),
                    **self.peer.state(),
                )
                self._input(wire.dumps({"kind": "resp", **answer}))
        except BaseException:
            if top:
                self._recover()
            raise
        finally:
            self.depth -= 1
        if not message.get("ok"):
            raise wire.rebuild_error(message.get("error", {}), self.errors)
        if "after" in message:
            self.peer.decode(message["after"], None, memo.objs)
        got: list = []
        value = self.peer.decode(
            message.get("value"), got, self.peer.originals(message, memo.objs)
        )
        self.peer.take(message, got, value)
        return value

    def _from_reply(self, msg: Any) -> dict:
        """The kernel's answer from an execute reply's user expression (a string
        literal, read with ``ast.literal_eval``: never evaluated)."""
        try:
            found = msg["content"]["user_expressions"]["nn"]["data"]["text/plain"]
            text = ast.literal_eval(found)
        except (KeyError, TypeError, ValueError, SyntaxError, MemoryError) as exc:
            raise KernelGone(f"no answer from the kernel ({exc!r})") from None
        if not isinstance(text, str) or not text.startswith(self.prefix):
            raise KernelGone("no answer from the kernel")
        message = wire.loads(text[len(self.prefix) :])
        if not isinstance(message, dict):
            raise KernelGone("no answer from the kernel")
        return message

    def _finish_top(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            kind, _ = self._next(self.msg_id, end - time.monotonic())
            if kind == "input":
                (self._input(""))
                continue
            if kind == "dead":
                self.dead = True
            return

    def start_loop(self) -> None:
        """Start the kernel's serve loop (one execute request): the requests of the
        checks then go as replies to its prompts (over the transport's socket where
        it has one), much cheaper than an execute request each."""
        if self.dead or self.looping:
            return
        listen = getattr(self.transport, "listen", None)
        path = listen() if listen is not None else None
        request = {"op": "loop", "h": 0, **({"sock": path} if path else {})}
        self.msg_id = self._execute(wire.dumps(request))
        kind, msg = self._next(self.msg_id, 30.0)
        prompt = str(msg["content"].get("prompt", "")) if kind == "input" else ""
        if prompt.startswith(self.prefix):
            try:
                first = wire.loads(prompt[len(self.prefix) :])
            except ValueError:
                first = None
            if isinstance(first, dict) and first.get("kind") == "idle":
                self.looping = True
                return
        if kind in ("input", "timeout"):  # not the loop: stop whatever runs
            self._recover()
        self.dead = kind == "dead"

    def stop_loop(self) -> None:
        """End the kernel's serve loop (its execute request then ends)."""
        if not self.looping:
            return
        self.looping = False
        self._input(wire.dumps({"kind": "stop"}))
        self._finish_top(10.0)
        self._close_channel()

    def _close_channel(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def _recover(self) -> None:
        """After a timeout: interrupt the kernel and wait for it to be idle again."""
        self.looping = False
        if self.dead:
            return
        try:
            self._interrupt()
        except Exception:  # noqa: BLE001 - a kernel already gone
            self.dead = True
            return
        self._finish_top(10.0)
        self._close_channel()

    def _serve(self, message: dict) -> dict:
        """A question of the kernel about one of the grader's objects."""
        if message.get("op") == "reference":
            name = str(message.get("name", ""))
            impl = self.checks.LAB.references.get(name)
            if impl is None:
                error = ValueError(f"no reference implementation for {name!r}")
                return {"ok": False, "error": wire.error_data(error)}
            self.used_reference = True
            hid = self.peer.handle(impl)
            return self.peer.serve({**message, "op": "call", "h": hid})
        op, name = message.get("op"), str(message.get("name", ""))
        if op == "recmethod":  # a method of one of our records, on the kernel's copy
            return self._serve_record(message, name)
        named = op in ("getattr", "callmethod")
        if op not in ("call", "getattr", "callmethod") or (
            named and name.startswith("_")
        ):
            # no way from an object the grader lends to its class or module
            error = ValueError("the kernel may only call the grader's objects")
            return {"ok": False, "error": wire.error_data(error)}
        return self.peer.serve(message)

    def _serve_record(self, message: dict, name: str) -> dict:
        """The kernel's copy of one of our records calls a method of the original
        (a tensor's operator: the check's operations): only one its kind forwards."""
        try:
            obj = self.peer.rec_objs[int(message["r"])]
        except (KeyError, TypeError, ValueError):
            obj = None
        calls = [c for _, cls, _, c, _ in self.records if isinstance(obj, cls)]
        if obj is None or not calls or name not in calls[0]:
            error = ValueError(f"the kernel may not call {name!r} of that record")
            return {"ok": False, "error": wire.error_data(error)}
        hid = self.peer.handle(obj)
        return self.peer.serve({**message, "op": "callmethod", "h": hid})

    # -------------------------------------------------------------- checks
    async def after_check_cell(self, client: Any, cell: Any) -> None:
        """Run, here, the checks that the cell just run asked for."""
        self.transport = JupyterTransport(client, asyncio.get_running_loop())
        if self.dead:
            return
        try:
            await asyncio.to_thread(self.start_loop)
            await self._checks_of_cell(cell)
        finally:
            await asyncio.to_thread(self.stop_loop)
            self._close_channel()  # (a loop that never started, a dead kernel)

    async def _checks_of_cell(self, cell: Any) -> None:
        try:
            self.kernel_left = 30.0
            pending = await asyncio.to_thread(self.call, {"op": "pending", "h": 0})
        except BaseException:  # noqa: BLE001 - no requests: nothing to check
            return
        if not isinstance(pending, list):
            return
        for item in pending:
            if not (isinstance(item, list) and len(item) == 3):
                continue
            name, args, kwargs = item
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                continue
            result = await asyncio.to_thread(self._check, str(name), args, kwargs)
            if result is None:
                continue
            self._write(cell, result)
            statuses = {result.name: result.status}
            try:
                self.kernel_left = 30.0
                await asyncio.to_thread(
                    self.call, {"op": "status", "h": 0, "statuses": statuses}
                )
            except BaseException:  # noqa: BLE001 - the kernel is gone: said below
                pass

    def _check(self, name: str, args: list, kwargs: dict) -> Any:
        from utils.check.core import FAILED, CheckFailed, CheckResult, used_reference

        lab = self.checks.LAB
        if name not in lab.exercises:
            return None
        # only the kernel's own objects are checked, never one of the grader's
        args = [
            a if isinstance(a, (Remote, _RemoteClassMeta)) or not callable(a) else None
            for a in args
        ]
        self.peer.forget()  # the grader's objects of an earlier check: gone
        self.used_reference = False
        self.kernel_left = self.check_seconds
        self.forget_next = True  # the kernel forgets too, with the first request
        try:
            result = getattr(self.checks, name)(*args, **kwargs)
        except CheckFailed:  # strict mode in the grader's environment
            result = lab.results[name]
        except KernelGone:
            result = CheckResult(
                name,
                FAILED,
                0,
                0,
                "The kernel stopped while your code ran for this check (it died or "
                "did not answer).",
            )
        if self.used_reference:
            result = used_reference(name)
        lab.record(result)
        return result

    def _write(self, cell: Any, result: Any) -> None:
        import nbformat

        data = dict(result.as_dict())
        data["text"] = result.text()
        data.update(kind="result", nonce=self.nonce)
        cell.outputs.append(
            nbformat.v4.new_output(
                "display_data",
                data={self.mime: data, "text/plain": result.text()},
            )
        )

    def final(self, cell: Any) -> None:
        """The grader's summary, written into the last cell."""
        import nbformat

        lab = self.checks.LAB
        data = dict(lab.results_as_dict())
        data["summary"] = [[ex, lab.status(ex)] for ex in lab.exercises]
        data.update(kind="final", nonce=self.nonce)
        cell.outputs.append(
            nbformat.v4.new_output("display_data", data={self.mime: data})
        )


def new_prefix() -> str:
    return f"\x00nn-wire-{secrets.token_hex(4)}:"


__all__ = ["SplitRun", "enabled", "kernel_setup", "CHECK_PREFIX", "np"]
