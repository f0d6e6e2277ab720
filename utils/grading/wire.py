"""Values between the grader and a grading kernel, as data, never pickled.

Both ends run this module: the grader imports it, the kernel gets its source as text
(:mod:`utils.grading.kernel_side`). A value travels as JSON: numbers, strings, bools
and ``None`` as themselves; lists, tuples, dicts and slices as tagged lists; NumPy
arrays and scalars as the bytes of ``np.save(..., allow_pickle=False)`` in base64.
Anything else (a function, a class, an instance) stays where it is: the other end
gets a *handle*, ``{"$h": [side, id]}``, and calls it back through :class:`Peer`.

Identity survives a call: each container or array sent gets a number in the order it
is met; after the call the receiver sends the arguments back (``after``), and an
object that is still the one it received is tagged ``"$same": n``, so the sender
updates its own object in place (a mutated input, an in-place update) or finds its
own object in a result that returns an input.

Only this module's own code is trusted on each side; whatever the kernel sends is
decoded as plain data or as a handle the grader created, nothing else.
"""

import base64
import builtins
import contextlib
import io
import json
import traceback

import numpy as np

_BUILTIN_ERRORS = {
    name: getattr(builtins, name, None)
    for name in [
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "FloatingPointError",
        "IndexError",
        "KeyError",
        "LookupError",
        "MemoryError",
        "NameError",
        "NotImplementedError",
        "OverflowError",
        "RecursionError",
        "RuntimeError",
        "TypeError",
        "UnboundLocalError",
        "ValueError",
        "ZeroDivisionError",
        "StopIteration",
    ]
}


class Memo:
    """The containers and arrays sent in one message, numbered in the order met."""

    def __init__(self):
        self.ids = {}
        self.objs = []

    def add(self, obj):
        self.ids[id(obj)] = len(self.objs)
        self.objs.append(obj)
        return len(self.objs) - 1


class RemoteError(Exception):
    """An exception raised on the other side, under its own type's name."""


def _array_bytes(a: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _array_of(text: str) -> np.ndarray:
    data = base64.b64decode(text.encode("ascii"), validate=True)
    return np.load(io.BytesIO(data), allow_pickle=False)


class Lines:
    """Lines of ASCII JSON out of a byte stream: how each end reads the serve loop's
    socket. :meth:`feed` adds the bytes received; :meth:`pop` gives the next whole
    line, or None, searching only the bytes fed since its last search."""

    def __init__(self):
        self.buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline

    def __len__(self):
        return len(self.buffer)

    def feed(self, chunk):
        self.buffer += chunk

    def pop(self):
        newline = self.buffer.find(b"\n", self._scanned)
        if newline < 0:
            self._scanned = len(self.buffer)
            return None
        line = bytes(self.buffer[:newline])
        del self.buffer[: newline + 1]
        self._scanned = 0
        return line.decode("ascii", "replace")


NOT_SENT = object()  # no such attribute in the other side's last snapshot
_PLAIN = (type(None), bool, int, float, str)


def plain_attributes(obj):
    """The public attributes of an instance that holds only arrays and scalars in
    its ``__dict__`` and reads them the plain way (no ``__getattr__``, no class
    attribute of that name, no ``__getattribute__`` of its own); else none."""
    kind = type(obj)
    attrs = getattr(obj, "__dict__", None)
    if (
        not isinstance(attrs, dict)
        or isinstance(obj, type)
        or callable(obj)
        or kind.__getattribute__ is not object.__getattribute__
        or hasattr(kind, "__getattr__")
        or len(attrs) > 8
    ):
        return []
    names = []
    for name, value in attrs.items():
        if not isinstance(name, str) or name.startswith("_") or hasattr(kind, name):
            continue
        plain = type(value) in _PLAIN or (
            type(value) is np.ndarray
            and not value.dtype.hasobject
            and value.nbytes <= 1 << 18
        )
        if plain:
            names.append(name)
    return names


class Peer:
    """One end of the conversation: its objects behind handles, the other's proxied.

    Args:
        side: ``"g"`` (the grader) or ``"k"`` (the kernel).
        make_proxy: ``make_proxy(hid, info)`` returns this end's stand-in for the
            other end's object ``hid`` (``info``: what it is, in data).
        describe: ``describe(obj)`` returns ``info`` for an object of this end.
    """

    def __init__(self, side, make_proxy, describe, unwrap=None):
        self.side = side
        self.unwrap = unwrap  # a stand-in of this side for an object of the other
        self._next_hid = 0
        self.objects = {}  # hid -> object of this side
        self._ids = {}  # id(object) -> hid
        self.proxies = {}  # hid -> proxy of the other side's object
        self.make_proxy = make_proxy
        self.describe = describe
        self.frames = []  # (arguments received, their numbers) of calls being served
        self.lent = {}  # lend id -> (value, numbers): attributes read by the other
        self._lent_ids = {}  # id(value) -> its lend id
        self.borrowed = {}  # lend id -> (value, objects): attributes read from it
        # arrays that outlive the call they were sent in (a Parameter that keeps
        # the caller's array): this side's, numbered when sent with ``keep``, and
        # this side's copies of the other's, by the other's number
        self.kept = {}  # number -> this side's array
        self._kept_ids = {}  # id(array) -> number
        self.copies = {}  # number -> this side's copy of the other's array
        self._copy_ids = {}  # id(copy) -> number
        self._keeping = False
        self.snap = {}  # the other side's last snapshot (hid -> name -> answer)
        self.read = set()  # handles of this side's objects the other read from
        self._snapped = {}  # (hid, name) -> its value here, read from it
        self.synced = {}  # ("lent" | "borrowed", id) -> its data as both sides hold it

    # ------------------------------------------------------------ handles
    def handle(self, obj):
        hid = self._ids.get(id(obj))
        if hid is None or self.objects.get(hid) is not obj:
            self._next_hid += 1  # never reused: a stale handle finds nothing
            hid = self._next_hid
            self.objects[hid] = obj
            self._ids[id(obj)] = hid
        return hid

    def proxy(self, hid, info):
        found = self.proxies.get(hid)
        if found is None:
            found = self.make_proxy(hid, info)
            self.proxies[hid] = found
        return found

    def own_hid(self, obj):
        """The other side's handle id if ``obj`` is a proxy of this peer, else None."""
        for hid, proxy in self.proxies.items():
            if proxy is obj:
                return hid
        return None

    # ------------------------------------------------------------ encode
    def encode(self, x, sent=None, same=None, keep=False):
        """``x`` as JSON data.

        Args:
            sent: id(obj) -> number, filled in the order containers are met.
            same: id(obj) -> number of the objects received (their sender's own):
                tagged ``$same`` so that the sender updates them in place.
            keep: number each array (``$k``), so that the receiver's copy of it,
                sent back in any later message, is tagged ``$yours`` and read here
                as this very array (the arguments of a check's call: a student's
                object that keeps one is seen to keep the check's own array).
        """
        sent = Memo() if sent is None else sent
        same = {} if same is None else same
        self._keeping = keep
        try:
            return self._enc(x, sent, same)
        finally:
            self._keeping = False

    def _enc(self, x, sent, same):
        if x is None or isinstance(x, (bool, str)):
            return x
        if type(x) is int:
            return x if abs(x) < 2**53 else {"$int": str(x)}
        if type(x) is float:
            return {"$float": repr(x)}
        if isinstance(x, np.generic) and not isinstance(x, np.object_):
            try:
                return {"$sc": _array_bytes(np.asarray(x))}
            except ValueError:
                pass
        if isinstance(x, np.ndarray) and x.dtype.hasobject:
            return self._handle_of(x)
        if isinstance(x, (np.ndarray, list, tuple, dict)) and type(x) in (
            np.ndarray,
            list,
            tuple,
            dict,
        ):
            key = id(x)
            if key in sent.ids:
                return {"$ref": sent.ids[key]}
            sent.add(x)
            out = {}
            if key in same:
                out["$same"] = same[key]
            elif key in self._copy_ids:
                out["$yours"] = self._copy_ids[key]
            elif self._keeping and isinstance(x, np.ndarray):
                out["$k"] = self._keep(x)
            if isinstance(x, np.ndarray):
                out["$nd"] = _array_bytes(x)
                if (
                    x.ndim
                    and x.size > 1
                    and not (x.flags.c_contiguous or x.flags.f_contiguous)
                ):
                    out["strided"] = True
                if not x.flags.writeable:
                    out["readonly"] = True
            elif isinstance(x, list):
                out["$list"] = [self._enc(v, sent, same) for v in x]
            elif isinstance(x, tuple):
                out["$tuple"] = [self._enc(v, sent, same) for v in x]
            else:
                out["$dict"] = [
                    [self._enc(k, sent, same), self._enc(v, sent, same)]
                    for k, v in x.items()
                ]
            return out
        if isinstance(x, slice):
            return {
                "$slice": [self._enc(v, sent, same) for v in (x.start, x.stop, x.step)]
            }
        if isinstance(x, np.dtype):
            return {"$dtype": x.str if x.names is None else str(x)}
        if (
            isinstance(x, type)
            and issubclass(x, np.generic)
            and getattr(np, x.__name__, None) is x
        ):
            return {"$nptype": x.__name__}
        if isinstance(x, type) and x in (int, float, bool, str, complex):
            return {"$type": x.__name__}
        if type(x) is complex:
            return {"$complex": [repr(x.real), repr(x.imag)]}
        return self._handle_of(x)

    def forget(self, handles=True):
        """Drop what was lent and borrowed, and the handles given out so far (the
        other side's then find nothing)."""
        if handles:
            self.objects.clear()
            self._ids.clear()
            self.read.clear()
        self.lent.clear()
        self._lent_ids.clear()
        self.borrowed.clear()
        self.synced.clear()
        for kept in (self.kept, self._kept_ids, self.copies, self._copy_ids):
            kept.clear()

    def _keep(self, x):
        number = self._kept_ids.get(id(x))
        if number is None or self.kept.get(number) is not x:
            number = len(self.kept) + 1
            self.kept[number] = x
            self._kept_ids[id(x)] = number
        return number

    # ------------------------------------------------------------ snapshots
    def snapshot(self):
        """The public attributes of this side's plain objects that the other has
        read an attribute of (a ``Parameter``'s ``data`` and ``grad``: arrays,
        numbers, None), as getattr answers: sent with every message, so that the
        other side reads them without a message each until this side's next
        message (only then can this side's code change them). Only the grader
        sends one: the kernel's objects are read on demand (sending them all, every
        message, cost lab 3 more time than it saved)."""
        snap = {}
        for hid in sorted(self.read):
            obj = self.objects.get(hid)
            entries = {}
            for name in plain_attributes(obj):
                entries[name] = self._lend(getattr(obj, name))
            if entries:
                snap[str(hid)] = entries
        return {"snap": snap} if snap else {}

    def _lend(self, value, tagged=False):
        """A getattr answer for ``value``, lent: kept in step from then on (see
        :meth:`state`). A value with containers or arrays gets a lend id; one lent
        before keeps its id, and with ``tagged`` (an answer the other side reads
        at once, against its copy: :meth:`originals`) its containers are tagged
        ``$same``, so that the other side's copy is updated in place. A snapshot's
        answers are encoded whole: the other side may not have read them yet."""
        bid = self._lent_ids.get(id(value))
        if bid is not None and self.lent[bid][0] is not value:
            bid = None  # an id reused by another object
        same = self.lent[bid][1] if bid is not None and tagged else {}
        memo = Memo()
        answer = {"ok": True, "value": self.encode(value, memo, same)}
        if bid is None and memo.objs:
            bid = len(self.lent) + 1
            ids = {id(o): n for n, o in enumerate(memo.objs)}
            self.lent[bid] = (value, ids, list(memo.objs))
            self._lent_ids[id(value)] = bid
        if bid is not None:
            answer["lend"] = bid
        return answer

    def take_snapshot(self, message):
        """Keep the other side's snapshot that came with ``message``."""
        snap = message.get("snap") if isinstance(message, dict) else None
        self.snap = snap if isinstance(snap, dict) else {}
        self._snapped = {}

    def snapped(self, hid, name):
        """Attribute ``name`` of the other side's object ``hid``, from its last
        snapshot (else ``NOT_SENT``): read again, the same object."""
        key = (hid, name)
        if key in self._snapped:
            return self._snapped[key]
        entries = self.snap.get(str(hid))
        answer = entries.get(name) if isinstance(entries, dict) else None
        if not isinstance(answer, dict) or not answer.get("ok"):
            return NOT_SENT
        try:
            known = self.borrowed.get(int(answer.get("lend")))
        except (TypeError, ValueError):
            known = None
        if known is not None:  # read before: this side's copy, kept in step
            value = known[0]
        else:
            got = []
            value = self.decode(answer.get("value"), got)
            self.take(answer, got, value)
        self._snapped[key] = value
        return value

    # ------------------------------------------------------------ shared data
    def state(self):
        """The data lent and borrowed that changed since both sides last agreed on
        it: sent with every message, so that an attribute read on one side and
        changed in place on either stays the same on both (a layer's ``params``
        updated by the other side). An entry as it was last sent or taken is kept
        (:attr:`synced`): one that encodes the same is not sent again."""
        lent, borrowed = [], []
        for b, (v, ids, _) in self.lent.items():
            self._if_changed(lent, ("lent", b), self.encode(v, None, ids))
        for b, (v, objs) in self.borrowed.items():
            ids = {id(o): n for n, o in enumerate(objs) if o is not None}
            self._if_changed(borrowed, ("borrowed", b), self.encode(v, None, ids))
        return {"lent": lent, "borrowed": borrowed}

    def _if_changed(self, items, key, data):
        if self.synced.get(key) != data:
            self.synced[key] = data
            items.append([key[1], data])

    def apply_state(self, message):
        """Take the other side's :meth:`state` (in place, where it can)."""
        for key in ("lent", "borrowed"):
            for item in message.get(key) or []:
                try:
                    bid, data = item
                    bid = int(bid)
                    if key == "lent":  # the other's own data: our borrowed copy
                        objs, ours = self.borrowed[bid][1], "borrowed"
                    else:  # our own data, as the other side left it
                        objs, ours = self.lent[bid][2], "lent"
                except (KeyError, TypeError, ValueError):
                    continue
                self.synced.pop((ours, bid), None)  # (until decoded whole)
                self.decode(data, None, objs)
                self.synced[(ours, bid)] = data  # both sides hold this now

    def originals(self, answer, objs):
        """The objects an answer's ``$same`` tags refer to: those of an attribute
        lent before (read again, it is the very object read then), else ``objs``."""
        bid = answer.get("lend") if isinstance(answer, dict) else None
        try:
            return self.borrowed[int(bid)][1]
        except (KeyError, TypeError, ValueError):
            return objs

    def take(self, answer, got, value):
        """Note data that an answer lent (an attribute read)."""
        bid = answer.get("lend") if isinstance(answer, dict) else None
        if bid is not None and got:
            self.borrowed[int(bid)] = (value, list(got))

    def _handle_of(self, x):
        if self.unwrap is not None:
            x = self.unwrap(x)
        hid = self.own_hid(x)
        if hid is not None:  # the other side's own object, going home
            return {"$h": ["other", hid]}
        return {"$h": [self.side, self.handle(x)], "info": self.describe(x)}

    # ------------------------------------------------------------ decode
    def decode(self, j, got=None, originals=None):
        """The value of JSON data ``j``.

        Args:
            got: filled with each container or array made, in order (so that the
                receiver can tell later which it still holds).
            originals: this side's objects by the numbers it sent them under: a
                ``$same`` is updated in place and returned as that object.
        """
        got = [] if got is None else got
        return self._dec(j, got, originals or [])

    def _dec(self, j, got, originals):
        if j is None or isinstance(j, (bool, str, int)):
            return j
        if isinstance(j, float):
            return j
        if not isinstance(j, dict):
            raise TypeError(f"not wire data: {type(j).__name__}")
        if "$float" in j:
            return float(j["$float"])
        if "$int" in j:
            return int(j["$int"])
        if "$sc" in j:
            return _array_of(j["$sc"])[()]
        if "$ref" in j:
            return got[int(j["$ref"])]
        if "$slice" in j:
            return slice(*(self._dec(v, got, originals) for v in j["$slice"]))
        if "$dtype" in j:
            return np.dtype(j["$dtype"])
        if "$nptype" in j:
            found = getattr(np, str(j["$nptype"]))
            if not (isinstance(found, type) and issubclass(found, np.generic)):
                raise TypeError("not a NumPy scalar type")
            return found
        if "$type" in j:
            return {"int": int, "float": float, "bool": bool, "str": str}.get(
                j["$type"], complex
            )
        if "$complex" in j:
            return complex(float(j["$complex"][0]), float(j["$complex"][1]))
        if "$h" in j:
            side, hid = j["$h"]
            hid = int(hid)
            if side == "other":  # one of this side's own objects
                if hid not in self.objects:
                    raise KeyError(f"no object {hid} here")
                return self.objects[hid]
            if side == self.side:
                raise ValueError("a handle claims to be this side's own")
            return self.proxy(hid, j.get("info") or {})
        target = None
        if "$same" in j:
            n = int(j["$same"])
            if not 0 <= n < len(originals):
                raise IndexError("an unknown object")
            target = originals[n]
        kept = None  # a kept array: ours ($yours), or our copy of the other's ($k)
        if "$yours" in j:
            kept = self.kept.get(int(j["$yours"]))
        elif "$k" in j:
            kept = self.copies.get(int(j["$k"]))
        slot = len(got)
        got.append(None)
        if "$nd" in j:
            value = _array_of(j["$nd"])
            if j.get("strided") and value.ndim and value.shape[0] > 0:
                wide = np.empty((value.shape[0] * 2, *value.shape[1:]), value.dtype)
                wide[::2] = value
                value = wide[::2]
            if (
                target is None
                and isinstance(kept, np.ndarray)
                and (kept.shape, kept.dtype) == (value.shape, value.dtype)
            ):
                target = kept
            if isinstance(target, np.ndarray):
                if (
                    target.shape == value.shape
                    and target.flags.writeable
                    and not np.array_equal(target, value, equal_nan=_nan_ok(value))
                ):
                    np.copyto(target, value, casting="unsafe")
                value = target
            elif j.get("readonly"):
                value.flags.writeable = False
            if "$k" in j:  # the other's array, kept: our copy stands for it
                self.copies[int(j["$k"])] = value
                self._copy_ids[id(value)] = int(j["$k"])
            got[slot] = value
            return value
        if "$list" in j:
            value = target if isinstance(target, list) else []
            got[slot] = value
            items = [self._dec(v, got, originals) for v in j["$list"]]
            value[:] = items
            return value
        if "$tuple" in j:
            items = tuple(self._dec(v, got, originals) for v in j["$tuple"])
            value = target if isinstance(target, tuple) else items
            got[slot] = value
            return value
        if "$dict" in j:
            value = target if isinstance(target, dict) else {}
            got[slot] = value
            items = [
                (self._dec(k, got, originals), self._dec(v, got, originals))
                for k, v in j["$dict"]
            ]
            if value:
                value.clear()
            value.update(items)
            return value
        raise TypeError(f"unknown wire data: {sorted(j)[:3]}")

    # ------------------------------------------------------------ serve
    def sync(self):
        """The arguments of the call being served, as they are now (or None): sent
        with a question to the other side, whose objects may read them."""
        if not self.frames:
            return None
        pair, ids = self.frames[-1]
        return self.encode(pair, None, ids)

    def serve(self, request):
        """Do what the other side asks with one of this side's objects.

        A request is ``{"op": "call" | "getattr" | "setattr" | "delattr",
        "h": hid, ...}``; the answer ``{"ok": True, "value": ..., "after": ...}`` or
        ``{"ok": False, "error": {...}}``.
        """
        try:
            obj = self.objects[int(request["h"])]
            op = request["op"]
            got = []
            args = kwargs = None
            if op == "callmethod":  # a method's call, in one message
                obj = getattr(obj, str(request["name"]))
                op = "call"
            if op == "call":
                pair = self.decode(request["args"], got)
                args, kwargs = pair
                ids = {id(o): n for n, o in enumerate(got) if o is not None}
                self.frames.append((pair, ids))
                try:
                    value = obj(*args, **kwargs)
                finally:
                    self.frames.pop()
            elif op == "getattr":
                value = getattr(obj, str(request["name"]))
                self.read.add(int(request["h"]))  # in the snapshots from now on
            elif op == "setattr":
                setattr(obj, str(request["name"]), self.decode(request["value"], got))
                value = None
            elif op == "delattr":
                delattr(obj, str(request["name"]))
                value = None
            else:
                raise ValueError(f"unknown operation {op!r}")
            if op == "getattr":
                return self._lend(value, tagged=True)
            same = {id(o): n for n, o in enumerate(got) if o is not None}
            answer = {"ok": True, "value": self.encode(value, None, same)}
            if args is not None:
                answer["after"] = self.encode([list(args), kwargs], None, same)
            return answer
        except Exception as exc:  # noqa: BLE001 - sent to the other side as data
            return {"ok": False, "error": error_data(exc)}


def _nan_ok(a) -> bool:
    return a.dtype.kind in "fc"


_NOT_STUDENT = ("<grader", "<given", "<frozen")


def _frames(exc):
    """The traceback's frames in code that is neither this wire nor a library:
    ``[filename, line number, function, source line]``, outermost first."""
    import linecache

    found = []
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(_NOT_STUDENT) or "/lib/python3" in filename:
            continue
        if "site-packages" in filename or filename.startswith(_OWN_DIR):
            continue
        line = linecache.getline(filename, lineno).strip()
        found.append([filename, lineno, frame.f_code.co_name, line])
    return found[-20:]


try:
    _OWN_DIR = __file__.rsplit("/", 2)[0] + "/"  # utils/ on the grader's side
except NameError:  # the kernel: the source has no file
    _OWN_DIR = "<grader"


def error_data(exc):
    """An exception as data: its type's name, its text, its frames in student code."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a student's exception class may be broken
        text = ""
    try:
        frames = _frames(exc)
    except Exception:  # noqa: BLE001 - a traceback that cannot be read
        frames = []
    data = {"type": type(exc).__name__, "message": text[:2000], "frames": frames}
    for attr in ("name", "nn_hint"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            data[attr] = value
    return data


_REBUILT = "<kernel> "  # starts the file names of the frames rebuilt here


def _raise_through(exc, frames):
    """``exc`` with a traceback through ``frames`` (their lines in ``linecache``), so
    that the check names the student's line as it does in the notebook.

    A rebuilt frame's file name is the other side's, after :data:`_REBUILT`: it never
    names a file of this side, so the lines sent never replace the lines of a real
    file in ``linecache`` (which ``inspect.getsource`` reads), and no line of a file
    here is read into a message. Frames in this side's own package are left out, as
    the checks leave them out in process.
    """
    import linecache

    frames = [f for f in frames if not str(f[0]).startswith(_OWN_DIR)]

    def step(i):
        if i == len(frames):
            raise exc
        filename, lineno, func, line = frames[i]
        filename = _REBUILT + str(filename)
        lineno = max(1, int(lineno))
        entry = linecache.cache.get(filename)
        lines = list(entry[2]) if entry and len(entry) == 4 else []
        lines += ["\n"] * (lineno - len(lines))
        lines[lineno - 1] = str(line) + "\n"
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
        code = compile("\n" * (lineno - 1) + "_nn_step(_nn_i)", filename, "exec")
        if str(func).isidentifier():
            code = code.replace(co_name=str(func))
        exec(code, {"_nn_step": step, "_nn_i": i + 1})  # noqa: S102

    try:
        step(0)
    except BaseException as raised:  # noqa: BLE001 - it is exc, now with its frames
        return raised
    return exc


def rebuild_error(data, known=None):
    """The exception that ``error_data`` described: of a built-in type, or of one of
    ``known`` (``{name: class}``: the exceptions a lab hands out, such as
    ``LazyModuleError``, that a check catches), when it was one by name; else a
    look-alike :class:`RemoteError` of that name."""
    name = str(data.get("type", "Exception"))
    message = str(data.get("message", ""))
    kind = (known or {}).get(name) or _BUILTIN_ERRORS.get(name)
    exc = None
    if isinstance(kind, type) and issubclass(kind, Exception):
        with contextlib.suppress(Exception):  # a constructor that wants more
            exc = kind(message)
    if exc is None:
        exc = type(name if name.isidentifier() else "Error", (RemoteError,), {})(
            message
        )
    for attr in ("name", "nn_hint"):
        if isinstance(data.get(attr), str):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, attr, data[attr])
    frames = data.get("frames")
    if isinstance(frames, list) and frames:
        with contextlib.suppress(Exception):  # frames that cannot be rebuilt: none
            exc = _raise_through(exc, [list(f)[:4] for f in frames])
    return exc


def dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def loads(text: str):
    return json.loads(text)
