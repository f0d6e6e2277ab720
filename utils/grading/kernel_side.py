"""What the grader puts into a grading kernel for the split path (as source text).

The kernel gets, before the lab's first cell, the source of :mod:`utils.grading.wire`
and of this module, run in a namespace of their own, and then::

    __nn_remote__ = KernelRemote(prefix, given)

which puts into ``sys.modules``:

- ``utils.check.labN``: a *stand-in* of the check module. ``check.relu(relu)`` only
  notes that the grader is to check ``relu`` (the grader runs the check in its own
  process after the cell); ``check.ready`` reads the statuses the grader sends back;
  ``check.reference(name)`` gives a placeholder that the grader answers for (and
  grades ``used the reference``). No check code and no reference is in the kernel.
- the reference module(s) the lab imports its given pieces from (``init_params``),
  holding those pieces only, rebuilt from their source in a namespace of their own.

The grader talks to it with ``__nn_remote__.serve(payload)`` (an execute request);
the kernel answers, and asks the grader about the grader's objects, through
prompts that start with ``prefix``: lines on the grader's Unix socket while its
serve loop runs (``{"op": "loop", "sock": path}``), else ``input()``.

Nothing here is trusted by the grader: a student's code can change all of it, and
all it gains is to send other data back, as its own answer.
"""

# This file is not imported in the kernel: its source runs after wire.py's, in one
# namespace (Peer, Memo, dumps, loads, rebuild_error, np are defined there).

import builtins as _builtins
import socket as _socket
import sys as _sys
import types as _types

_KINDS = {}


def _grader_type(name):
    """A subclass of _GraderObject named like the grader's object's type."""
    name = name if isinstance(name, str) and name.isidentifier() else "object"
    if name not in _KINDS:
        _KINDS[name] = type(name, (_GraderObject,), {})
    return _KINDS[name]


class _GraderObject:
    """The kernel's stand-in for an object of the grader (a function a check passes,
    the placeholder of a reference): every use is a question to the grader."""

    def __init__(self, remote, hid, info):
        object.__setattr__(self, "_nn", (remote, hid, info))

    def __call__(self, *args, **kwargs):
        remote, hid, _ = object.__getattribute__(self, "_nn")
        return remote.ask({"op": "call", "h": hid}, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        remote, hid, info = object.__getattribute__(self, "_nn")
        found = remote.peer.snapped(hid, name)
        if found is not NOT_SENT:  # noqa: F821 - sent with the grader's last message
            return found
        if name in info.get("methods", ()):  # called in one message, not two

            def method(*args, **kwargs):
                request = {"op": "callmethod", "h": hid, "name": name}
                return remote.ask(request, args, kwargs)

            method.__name__ = name
            return method
        return remote.ask({"op": "getattr", "h": hid, "name": name})

    @property
    def __name__(self):  # a Function class's name, in a message of the course's
        return str(object.__getattribute__(self, "_nn")[2].get("name", "object"))

    def __repr__(self):
        info = object.__getattribute__(self, "_nn")[2]
        return f"<{info.get('name', 'object')} (the grader's)>"


def _instance_of_class(obj):
    """Whether ``obj`` is an instance of a class (not a function, not the grader's)."""
    plain = (
        _types.FunctionType,
        _types.BuiltinFunctionType,
        _types.MethodType,
        _GraderObject,
        _Reference,
    )
    return not isinstance(obj, plain) and type(obj).__module__ != "builtins"


def _bridge(name, fn):
    """A method that calls the grader's function ``fn`` (a check's method)."""

    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    method.__name__ = name
    return method


def _forwarded(name, remote):
    """A method of the copy of a grader's record that calls its original there (a
    tensor's operators: the operations of the check's run)."""

    def method(self, *args, **kwargs):
        peer = remote.peer
        n = peer._rec_copy_ids.get(id(self))
        if n is None or peer.rec_copies.get(n) is not self:
            raise RuntimeError("this tensor belongs to a check that has ended")
        return remote.ask({"op": "recmethod", "r": n, "name": name}, args, kwargs)

    method.__name__ = method.__qualname__ = name
    return method


def _counted(name, reads):
    """A property for the field ``name`` that counts its reads in ``reads``."""

    def get(self):
        counts = reads.setdefault(id(self), {})
        counts[name] = counts.get(name, 0) + 1
        attrs = self.__dict__
        return attrs[name] if name in attrs else getattr(type(self)._nn_base, name)

    def put(self, value):
        self.__dict__[name] = value

    return property(get, put)


class _Reference:
    """What ``check.reference(name)`` gives while grading: the grader's reference,
    called through the grader (the exercise then reads ``used the reference``)."""

    def __init__(self, remote, name):
        self._remote, self._name = remote, name
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self._remote.ask({"op": "reference", "name": self._name}, args, kwargs)


class _CheckShim(_types.ModuleType):
    """The check module as the kernel sees it: requests, statuses, no check code."""

    def __init__(self, remote, name):
        super().__init__(name)
        self._remote = remote
        self._pending = []
        self._statuses = {}

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        pending = self._pending

        def request(*args, **kwargs):
            pending.append([attr, list(args), dict(kwargs)])

        request.__name__ = attr
        return request

    def ready(self, *names):
        waiting = [
            n
            for n in names
            if self._statuses.get(n) not in ("passed", "used the reference")
        ]
        if waiting:
            print(f"⏳ waiting for: {', '.join(waiting)}; skipping this cell.")
        return not waiting

    def reference(self, name):
        self._statuses[name] = "used the reference"
        return _Reference(self._remote, name)

    def summary(self):
        return "\n".join(f"{k}: {v}" for k, v in self._statuses.items())

    def results_as_dict(self):
        return {
            "exercises": [{"name": k, "status": v} for k, v in self._statuses.items()]
        }


class _SocketLine:
    """A prompt to the grader over its Unix socket: one line out, one line back."""

    def __init__(self, sock):
        self.sock, self.lines = sock, Lines()  # noqa: F821 - wire.py's

    @classmethod
    def connect(cls, path):
        if not isinstance(path, str):
            return None
        try:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.connect(path)
        except (OSError, AttributeError):
            return None
        return cls(sock)

    def __call__(self, text):
        self.sock.sendall(text.encode("ascii") + b"\n")
        while (line := self.lines.pop()) is None:
            chunk = self.sock.recv(1 << 20)
            if not chunk:  # the grader closed it: nothing more to serve
                return ""
            self.lines.feed(chunk)
        return line

    def close(self):
        self.sock.close()


class KernelRemote:
    """The kernel's end of the split path."""

    def __init__(self, prefix, check_module, given, install=True, ask=None):
        self.prefix = prefix
        self.last = ""
        self._ask = ask  # how to prompt the grader; None: input(), as set per request
        self.peer = Peer("k", self._proxy, self._describe)  # noqa: F821
        self.peer.make_record = self._make_record
        self._copies_of = {}  # (class, calls, watched) -> the class of such copies
        self.shim = _CheckShim(self, check_module)
        if not install:
            return
        _sys.modules[check_module] = self.shim
        package, _, leaf = check_module.rpartition(".")
        self._install(package, leaf, self.shim)
        named = {}
        for module, pieces in given.items():  # a module, or its pieces by name
            fake = pieces
            if not isinstance(fake, _types.ModuleType):
                fake = _types.ModuleType(module)
                fake.__dict__.update(pieces)
            for name, value in vars(fake).items():
                if isinstance(value, (type, _types.FunctionType)):
                    named[f"{module}:{name}"] = value
            _sys.modules[module] = fake
            package, _, leaf = module.rpartition(".")
            self._install(package, leaf, fake)
        self.peer.set_given(named, send=False)

    @staticmethod
    def _install(package, leaf, module):
        parts = package.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in _sys.modules:
                _sys.modules[name] = _types.ModuleType(name)
                _sys.modules[name].__path__ = []
        setattr(_sys.modules[package], leaf, module)
        if "." in package:
            parent, _, last = package.rpartition(".")
            setattr(_sys.modules[parent], last, _sys.modules[package])

    # ------------------------------------------------------------ objects
    def _proxy(self, hid, info):
        return _grader_type(info.get("type"))(self, hid, info)

    def _describe(self, obj):
        info = {
            "kind": "class"
            if isinstance(obj, type)
            else "callable"
            if callable(obj)
            else "object",
            "name": str(getattr(obj, "__name__", "") or type(obj).__name__),
            "type": type(obj).__name__,
        }
        plain = info["kind"] == "object" and not isinstance(
            obj, (_GraderObject, _Reference)
        )
        if plain or (info["kind"] == "callable" and _instance_of_class(obj)):
            info["cls"] = self.peer.encode(type(obj))  # (a module is callable)
        if info["kind"] == "class":  # its bases: the grader's stand-in has theirs
            info["bases"] = [
                self.peer.encode(b) for b in obj.__bases__ if b is not object
            ]
            info["iter"] = callable(getattr(obj, "__iter__", None))
        if plain:
            kind = type(obj)
            info["plain"] = (
                kind.__setattr__ is object.__setattr__
                and kind.__getattribute__ is object.__getattribute__
                and not hasattr(kind, "__getattr__")
                and isinstance(getattr(obj, "__dict__", None), dict)
                and not any("__slots__" in vars(k) for k in kind.__mro__[:-1])
            )
            if info["plain"]:  # a set of one of these names may run code
                info["cattrs"] = [n for n in dir(kind) if not n.startswith("_")]
        if isinstance(obj, _Reference):
            info["reference"] = [obj._name]
        elif info["kind"] != "class" and not isinstance(obj, _GraderObject):
            # the methods of its class: the grader calls them in one message each
            kind = type(obj)
            info["methods"] = [
                n
                for n in dir(kind)
                if not n.startswith("_")
                and isinstance(getattr(kind, n, None), _types.FunctionType)
            ][:200]
        codes = []
        code = getattr(obj, "__code__", None)
        if isinstance(code, _types.CodeType):
            codes.append(code)
        for klass in getattr(obj, "__mro__", ()) if isinstance(obj, type) else ():
            for attr in vars(klass).values():
                code = getattr(attr, "__code__", None)
                if isinstance(code, _types.CodeType):
                    codes.append(code)
        if codes:
            info["co_names"] = sorted({n for c in codes for n in c.co_names})
        return info

    def _make_record(self, kind, watch, calls, obj=None):
        """A new copy of the grader's record of ``kind`` (``module:Class``, a class
        of the given pieces), or ``obj``: of a subclass whose methods ``calls``
        call the grader's object, and that counts the reads of the fields
        ``watch`` (reported to the grader with the record)."""
        if obj is None:
            base = self._record_class(kind)
        else:
            base = getattr(type(obj), "_nn_base", type(obj))
            calls = getattr(type(obj), "_nn_calls", ())
        key = (base, tuple(calls or ()), tuple(watch or ()))
        made = self._copies_of.get(key)
        if made is None:
            ns = {"__slots__": (), "_nn_base": base, "_nn_calls": key[1]}
            for name in key[1]:
                if isinstance(name, str) and name.isidentifier():
                    ns[name] = _forwarded(name, self)
            for name in key[2]:
                ns[name] = _counted(name, self.peer.rec_reads)
            made = self._copies_of[key] = type(base.__name__, (base,), ns)
        if obj is None:
            return made.__new__(made)
        obj.__class__ = made
        return obj

    @staticmethod
    def _record_class(kind):
        module, _, name = str(kind).partition(":")
        cls = getattr(_sys.modules.get(module), name, None)
        if not isinstance(cls, type):
            raise TypeError(f"no class {kind} here")
        return cls

    def _take_records(self, spec):
        """The kinds of record the grader takes: ours of those classes go as data."""
        kinds, state = [], set()
        for item in spec if isinstance(spec, list) else []:
            try:
                kind, keep = item
                kinds.append((str(kind), self._record_class(kind), ()))
            except (TypeError, ValueError):
                continue
            if keep:
                state.add(str(kind))
        self.peer.record_kinds = tuple(kinds)
        self.peer.state_kinds = state

    def _global(self, obj, name):
        spaces = []
        glob = getattr(obj, "__globals__", None)
        if isinstance(glob, dict):
            spaces.append(glob)
        for klass in getattr(obj, "__mro__", ()) if isinstance(obj, type) else ():
            for attr in vars(klass).values():
                glob = getattr(attr, "__globals__", None)
                if isinstance(glob, dict):
                    spaces.append(glob)
        for space in spaces:
            value = space.get(name)
            if value is not None and callable(value):
                return value
        return None

    # ------------------------------------------------------------ the channel
    def _send(self, data):
        data = dict(data, **self.peer.state())  # shared data, as it is now
        prompt = self._ask or _builtins.input
        reply = prompt(self.prefix + dumps(data))  # noqa: F821
        message = loads(reply) if reply else {}  # noqa: F821
        self.peer.take_snapshot(message)
        self._apply_sets(message)
        return message

    def _apply_sets(self, message):
        """The grader's sets of attributes of plain instances, deferred to this
        message (applied before anything else in it)."""
        for item in (message.get("sets") if isinstance(message, dict) else 0) or []:
            try:
                hid, name, data = item
                obj = self.peer.objects[int(hid)]
                setattr(obj, str(name), self.peer.decode(data))
            except Exception:  # noqa: BLE001, S112 - a stale handle: nothing to set
                continue

    def _answer(self, request):
        op = request.get("op")
        try:
            if op == "forget":  # a new check: nothing lent or borrowed any more
                self.peer.forget(handles=False)
                return {"ok": True, "value": None}
            if op == "pending":
                pending, self.shim._pending[:] = list(self.shim._pending), []
                return {"ok": True, "value": self.peer.encode(pending)}
            if op == "status":
                self.shim._statuses.update(request.get("statuses", {}))
                return {"ok": True, "value": None}
            if op == "new":  # an instance without __init__ (object.__new__(cls))
                cls = self.peer.objects[int(request["h"])]
                return {"ok": True, "value": self.peer.encode(cls.__new__(cls))}
            if op == "subclass":  # a check's subclass of one of our classes
                base = self.peer.objects[int(request["h"])]
                methods = self.peer.decode(request["args"])[0][0]
                ns = {
                    str(k): _bridge(str(k), fn)
                    for k, fn in methods.items()
                    if str(k).isidentifier() and isinstance(fn, _GraderObject)
                }
                cls = type(str(request.get("name", "Sub")), (base,), ns)
                return {"ok": True, "value": self.peer.encode(cls)}
            if op == "iterate":  # for x in obj, in a check
                obj = self.peer.objects[int(request["h"])]
                return {"ok": True, "value": self.peer.encode(list(obj))}
            if op == "global":
                obj = self.peer.objects[int(request["h"])]
                found = self._global(obj, str(request["name"]))
                return {"ok": True, "value": self.peer.encode(found)}
        except Exception as exc:  # noqa: BLE001 - sent to the grader as data
            return {"ok": False, "error": error_data(exc)}  # noqa: F821
        return self.peer.serve(request)

    def serve(self, payload):
        """One request of the grader (an execute request runs this)."""
        self.last = ""  # until this request is answered: a raise leaves no answer
        request = loads(payload)  # noqa: F821
        self.peer.take_snapshot(request)
        self._apply_sets(request)
        self._take_state(request)
        if request.get("op") == "loop":
            answer = self._loop(request.get("sock"))
        else:
            answer = self._answer(request)
        # read by the grader from the execute reply (a user expression)
        self.last = self.prefix + dumps(  # noqa: F821
            dict({"kind": "resp", **answer}, **self.peer.state())
        )

    def _take_state(self, request):
        """Apply the grader's state that comes with a request."""
        if request.get("forget"):  # a new check: nothing lent or borrowed any more
            self.peer.forget(handles=False)
            self._take_records(request.get("records"))
        self.peer.apply_state(request)

    def _loop(self, path=None):
        """Serve the grader's requests, each the reply to a prompt, until it stops:
        over the grader's Unix socket at ``path`` if it can connect, else through
        ``input()``."""
        line = _SocketLine.connect(path) if self._ask is None else None
        if line is not None:
            self._ask = line
        try:
            message = self._send({"kind": "idle"})
            while message.get("kind") == "req":
                self._take_state(message)
                message = self._send({"kind": "resp", **self._answer(message)})
        finally:
            if line is not None:
                self._ask = None
                line.close()
        return {"ok": True, "value": None}

    def ask(self, request, args=None, kwargs=None):
        """Ask the grader about one of its objects; serve its questions meanwhile."""
        memo = Memo()  # noqa: F821
        full, self.peer.rec_full = self.peer.rec_full, False  # a question in the
        try:  # middle of a call: the grader's records there stay as they are (their
            if args is not None:  # state goes with the answer to its call)
                args = self.peer.encode([list(args), kwargs], memo)
                request = dict(request, args=args)
            sync = self.peer.sync()
        finally:
            self.peer.rec_full = full
        if sync is not None:
            request = dict(request, sync=sync)
        message = self._send({"kind": "req", **request})
        self.peer.apply_state(message)
        while message.get("kind") != "resp":
            message = self._send({"kind": "resp", **self._answer(message)})
            self.peer.apply_state(message)
        if not message.get("ok"):
            raise rebuild_error(message.get("error", {}))  # noqa: F821
        if "after" in message:
            self.peer.decode(message["after"], None, memo.objs)
        got = []
        value = self.peer.decode(
            message.get("value"), got, self.peer.originals(message, memo.objs)
        )
        self.peer.take(message, got, value)
        return value
