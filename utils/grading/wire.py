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

A few classes travel as *records* instead (a lab 4 ``Tensor`` and the ``Context``
of its operation, named by the check module's ``WIRE_RECORDS``): their fields as
data, numbered, so that the other side keeps one copy of each and a graph crosses in
one message; later messages carry only the fields that changed (a gradient set), and
the fields of records that persist (a ``Parameter``) go with every message once
changed. A copy's methods may call its original (the check's operations). The
pieces a lab hands out, which both sides build from the same source, go from the
grader by name (``{"$given": "module:name"}``) and are read as the kernel's own.

Only this module's own code is trusted on each side; whatever the kernel sends is
decoded as plain data, a record's fields, a given piece by name or a handle the
grader created, nothing else.
"""

import base64
import builtins
import contextlib
import gc
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
    """An array as text: ``~dtype;shape;bytes`` for a C-ordered array of numbers
    (a tenth of ``np.load``'s time for a small one), else ``np.save``'s bytes (which
    keep a Fortran order), both in base64."""
    kind = a.dtype
    if a.flags.c_contiguous and kind.kind in "biufc" and kind.names is None:
        shape = ",".join(map(str, a.shape))
        raw = base64.b64encode(a.tobytes()).decode("ascii")
        return f"~{kind.str};{shape};{raw}"
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _array_of(text: str) -> np.ndarray:
    if text.startswith("~"):
        name, shape, raw = text[1:].split(";", 2)
        kind = np.dtype(name)
        if kind.kind not in "biufc" or kind.names is not None or kind.str != name:
            raise TypeError(f"not an array of numbers: {name!r}")
        dims = tuple(int(d) for d in shape.split(",")) if shape else ()
        data = base64.b64decode(raw.encode("ascii"), validate=True)
        if any(d < 0 for d in dims) or int(np.prod(dims)) * kind.itemsize != len(data):
            raise ValueError("an array whose bytes do not fill its shape")
        return np.frombuffer(data, kind).reshape(dims).copy()
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


_SLOTS = {}  # class -> the names of its slots


def _slots(kind):
    found = _SLOTS.get(kind)
    if found is None:
        names = []
        for klass in kind.__mro__:
            declared = vars(klass).get("__slots__", ())
            declared = (declared,) if isinstance(declared, str) else declared
            names += [n for n in declared if n not in ("__dict__", "__weakref__")]
        found = _SLOTS[kind] = tuple(dict.fromkeys(names))
    return found


def record_fields(obj):
    """A record's fields: its slots that are set, then its ``__dict__``."""
    fields = []
    for name in _slots(type(obj)):
        try:
            fields.append((name, object.__getattribute__(obj, name)))
        except AttributeError:
            continue
    attrs = vars(obj) if hasattr(obj, "__dict__") else None
    if isinstance(attrs, dict):
        fields += [(k, v) for k, v in attrs.items() if isinstance(k, str)]
    return fields


def set_field(obj, name, value):
    """Set a record's field as it is stored (a slot, or its ``__dict__``), past any
    property of its class; False for a name that is not a field's."""
    if not (isinstance(name, str) and name.isidentifier()) or name.startswith("__"):
        return False
    if name in _slots(type(obj)):
        try:
            if object.__getattribute__(obj, name) is value:
                return True
        except AttributeError:
            pass
        object.__setattr__(obj, name, value)
        return True
    attrs = vars(obj) if hasattr(obj, "__dict__") else None
    if not isinstance(attrs, dict):
        return False
    if attrs.get(name, NOT_SENT) is not value:
        attrs[name] = value
    return True


def _token(value):
    """What a field holds, to tell whether it changed since it was last sent: the
    same object with the same bytes (an array changed in place is changed)."""
    if type(value) in _PLAIN:
        return (type(value).__name__, value)
    if type(value) is np.ndarray:
        return ("a", id(value), value.shape, value.dtype.str, hash(value.tobytes()))
    if type(value) in (tuple, list) and len(value) <= 64:
        return (type(value).__name__, id(value), tuple(map(_token, value)))
    return ("o", id(value))


def _holds(value):
    """Whether a field's value is or holds objects that may be records."""
    if type(value) in (tuple, list):
        return any(_holds(v) for v in value)
    return not (type(value) in _PLAIN or isinstance(value, (np.ndarray, np.generic)))


_PROPERTIES = {}  # class -> the names of its properties


def _watched(obj):
    """The fields of ``obj``'s ``__dict__`` that its class reads through a property
    (a check that counts the reads of ``ctx.parents``): the other side counts its
    reads of them, and they are read here as often."""
    kind = type(obj)
    props = _PROPERTIES.get(kind)
    if props is None:
        props = _PROPERTIES[kind] = frozenset(
            n
            for klass in kind.__mro__
            for n, v in vars(klass).items()
            if isinstance(v, property)
        )
    if not props or not hasattr(obj, "__dict__"):
        return []
    return sorted(n for n in vars(obj) if n in props)


def _replay_reads(obj, reads, budget):
    """Read ``obj``'s watched fields as often as the other side read them, at most
    ``budget[0]`` reads in all (one message cannot keep this side busy)."""
    if not isinstance(reads, dict):
        return
    for name, count in reads.items():
        if isinstance(name, str) and name in _watched(obj) and type(count) is int:
            count = max(0, min(count, budget[0]))
            budget[0] -= count
            for _ in range(count):
                getattr(obj, name)


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
        self._proxy_ids = {}  # id(proxy) -> hid
        self._infos = {}  # hid -> what our object is (describe), as first sent
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
        # records: this side's objects of a few classes (a tensor, the context of the
        # operation that made it) that travel as their fields, not behind a handle,
        # numbered so that the other side keeps one copy of each in step: a graph
        # crosses once, and a walk over it costs no message (see _enc_record)
        # (kind, class, calls): this side's objects sent as records; calls: the
        # methods that the other side's copy calls back here
        self.record_kinds = ()
        # make_record(kind, watched, calls, obj=None): a new copy of the other's
        # record here, or ``obj`` counting the reads of the fields ``watched``
        self.make_record = None
        self.rec_full = True  # send the changed fields of records the other holds
        self.rec_objs = {}  # number -> this side's object sent as a record
        self._rec_ids = {}  # id(object) -> its number
        self._next_rec = 0  # never reused: a stale number finds nothing
        self.rec_copies = {}  # number -> this side's copy of the other's record
        self._rec_copy_ids = {}  # id(copy) -> number
        self.rec_agreed = {}  # ("own" | "other", number) -> {field: token}
        self.rec_reads = {}  # id(copy) -> {field: reads} of the watched fields
        self._rec_queue = []  # records met by encode whose fields are still to send
        self._rec_slots = None  # while decoding: number -> (record, key of its fields)
        self._replays = [0]
        self.state_kinds = set()  # kinds of record whose changes go with every message
        self._state_keys = []  # ("own" | "other", number) of those records
        # the pieces both sides have, by "module:name" (a lab's given classes, the
        # kernel's rebuilt from the grader's source): the grader sends its own by
        # name, and the kernel reads it as its own (a Neg of a graph: no handle)
        self.given = {}  # name -> this side's object
        self._given_ids = {}  # id(object) -> its name

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
            self.set_proxy(hid, found)
        return found

    def set_proxy(self, hid, obj):
        """Make ``obj`` this side's stand-in for the other side's object ``hid``."""
        self.proxies[hid] = obj
        self._proxy_ids[id(obj)] = hid

    def own_hid(self, obj):
        """The other side's handle id if ``obj`` is a proxy of this peer, else None."""
        hid = self._proxy_ids.get(id(obj))
        return hid if hid is not None and self.proxies.get(hid) is obj else None

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
        outer, self._rec_queue = self._rec_queue, []
        try:
            with _no_collection():
                return self._encode_all(x, sent, same)
        finally:
            self._keeping = False
            self._rec_queue = outer

    def _encode_all(self, x, sent, same):
        value = self._enc(x, sent, same)
        # the records' fields, after the value and one record after another (a
        # chain of 2,000 operations is no recursion 2,000 deep): [number, fields]
        recs, queue = [], self._rec_queue
        while len(recs) < len(queue):
            number, obj, fresh, agreed_key = queue[len(recs)]
            recs.append([number, self._rec_fields(obj, fresh, agreed_key, sent, same)])
        return {"$recs": recs, "$v": value} if recs else value

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
        name = self._given_ids.get(id(x))
        if name is not None and self.given.get(name) is x:
            return {"$given": name}
        kind = self._record_kind(x)
        if kind is not None:
            return self._enc_record(x, kind, sent, same)
        return self._handle_of(x)

    def set_given(self, objects, send=True):
        """This side's given pieces, ``{"module:name": object}`` (see :attr:`given`),
        read as such when the other side sends one by name, and sent by name only
        with ``send`` (the grader's: the kernel's go as handles, so that a class of
        the kernel's, its ``Sequential``, is still built there)."""
        self.given = dict(objects)
        self._given_ids = {id(v): k for k, v in self.given.items()} if send else {}

    def forget(self, handles=True):
        """Drop what was lent and borrowed, and the handles given out so far (the
        other side's then find nothing)."""
        if handles:
            self.objects.clear()
            self._ids.clear()
            self.read.clear()
            self._infos.clear()
        self.lent.clear()
        self._lent_ids.clear()
        self.borrowed.clear()
        self.synced.clear()
        for kept in (self.kept, self._kept_ids, self.copies, self._copy_ids):
            kept.clear()
        for records in (self.rec_objs, self._rec_ids, self.rec_copies):
            records.clear()
        for records in (self._rec_copy_ids, self.rec_agreed, self.rec_reads):
            records.clear()
        self._state_keys.clear()

    def _keep(self, x):
        number = self._kept_ids.get(id(x))
        if number is None or self.kept.get(number) is not x:
            number = len(self.kept) + 1
            self.kept[number] = x
            self._kept_ids[id(x)] = number
        return number

    # ------------------------------------------------------------ records
    def _record_kind(self, x):
        """``"copy"`` for this side's copy of the other's record, the kind of one of
        this side's objects sent as a record, or None (a handle)."""
        n = self._rec_copy_ids.get(id(x))
        if n is not None and self.rec_copies.get(n) is x:
            return "copy"
        for kind, cls, _ in self.record_kinds:
            if isinstance(x, cls):
                return kind
        return None

    def _enc_record(self, x, kind, sent, same):
        """A record: ``{"$R": n, "kind": ...}`` for one of ours, ``{"$r": n}`` for a
        copy going home; with ``"f"``, its fields (``__slots__`` and ``__dict__``):
        all of them the first time, then those whose token changed and those that
        hold records (their own changes are inside), unless :attr:`rec_full` is off
        (a question asked in the middle of a call: only new records get fields).
        A copy also reports how often the fields its original watches were read."""
        key = id(x)
        if key in sent.ids:
            return {"$ref": sent.ids[key]}
        sent.add(x)
        if kind == "copy":
            n = self._rec_copy_ids[key]
            out, agreed_key, fresh = {"$r": n}, ("other", n), False
            reads = self.rec_reads.pop(key, None)
            if reads:
                out["reads"] = reads
        else:
            n = self._rec_ids.get(key)
            fresh = n is None or self.rec_objs.get(n) is not x
            if fresh:
                self._next_rec += 1
                n = self._next_rec
                self.rec_objs[n], self._rec_ids[key] = x, n
                if kind in self.state_kinds:
                    self._state_keys.append(("own", n))
            out, agreed_key = {"$R": n, "kind": kind}, ("own", n)
            calls = next((c for k, _, c in self.record_kinds if k == kind), ())
            if fresh and calls:
                out["calls"] = list(calls)
            watch = _watched(x)
            if watch:
                out["watch"] = watch
        if fresh or self.rec_full:
            self._rec_queue.append((sent.ids[key], x, fresh, agreed_key))
        return out

    def _rec_fields(self, x, fresh, agreed_key, sent, same):
        agreed = self.rec_agreed.setdefault(agreed_key, {})
        fields = []
        for name, value in record_fields(x):
            token = _token(value)
            if not fresh and agreed.get(name) == token and not _holds(value):
                continue
            agreed[name] = token
            fields.append([name, self._enc(value, sent, same)])
        return fields

    def _dec_record(self, j, got, originals):
        """The object a record names, its fields set from the data (in place)."""
        slot = len(got)
        got.append(None)
        if "$r" in j:  # one of ours, home again
            n = int(j["$r"])
            obj = self.rec_objs.get(n)
            if obj is None:
                raise KeyError(f"no record {n} here")
            agreed_key = ("own", n)
            _replay_reads(obj, j.get("reads"), self._replays)
        else:
            n = int(j["$R"])
            watch = [str(w) for w in j.get("watch") or []]
            obj = self.rec_copies.get(n)
            if obj is None:
                if self.make_record is None:
                    raise TypeError("no records are taken here")
                calls = [str(c) for c in j.get("calls") or []]
                obj = self.make_record(str(j.get("kind")), watch, calls)
                self.rec_copies[n], self._rec_copy_ids[id(obj)] = obj, n
                if str(j.get("kind")) in self.state_kinds:
                    self._state_keys.append(("other", n))
            elif watch and self.make_record is not None:
                self.make_record(None, watch, None, obj)  # watch these too now
            agreed_key = ("other", n)
        got[slot] = obj
        if self._rec_slots is not None:
            self._rec_slots[slot] = (obj, agreed_key)
        return obj

    def _dec_fields(self, item, got, originals):
        number, fields = item
        obj, agreed_key = self._rec_slots[int(number)]
        agreed = self.rec_agreed.setdefault(agreed_key, {})
        for name, data in fields:
            value = self._dec(data, got, originals)
            if set_field(obj, name, value):
                agreed[str(name)] = _token(value)

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
        out = {"lent": lent, "borrowed": borrowed}
        recs = self._changed_state()
        if recs:
            out["recs"] = recs
        return out

    def _changed_state(self):
        """The records of the kinds in :attr:`state_kinds` (a model's parameters:
        they outlive a step, and either side's code may change them, an optimizer
        here, a backward there) whose fields changed since both sides agreed on
        them, as data; None if none did."""
        changed = []
        for key in self._state_keys:
            obj = (self.rec_objs if key[0] == "own" else self.rec_copies).get(key[1])
            agreed = self.rec_agreed.get(key, {})
            if any(agreed.get(k) != _token(v) for k, v in record_fields(obj)):
                changed.append(obj)
        if not changed:
            return None
        full, self.rec_full = self.rec_full, True
        try:
            return self.encode(changed)
        finally:
            self.rec_full = full

    def _if_changed(self, items, key, data):
        if self.synced.get(key) != data:
            self.synced[key] = data
            items.append([key[1], data])

    def apply_state(self, message):
        """Take the other side's :meth:`state` (in place, where it can)."""
        if message.get("recs"):
            self.decode(message["recs"])
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
        hid = self.handle(x)
        info = self._infos.get(hid)
        if info is None:
            info = self._infos[hid] = self.describe(x)
        return {"$h": [self.side, hid], "info": info}

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
        originals = originals or []
        self._replays = [1 << 18]  # reads of watched fields this decode may replay
        outer, self._rec_slots = self._rec_slots, {}  # number -> (record, its key)
        try:
            with _no_collection():
                if not (isinstance(j, dict) and "$recs" in j and "$v" in j):
                    return self._dec(j, got, originals)
                value = self._dec(j["$v"], got, originals)
                for item in j["$recs"]:  # the records' fields, in the order sent
                    self._dec_fields(item, got, originals)
                return value
        finally:
            self._rec_slots = outer

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
        if "$R" in j or "$r" in j:
            return self._dec_record(j, got, originals)
        if "$given" in j:  # a piece both sides have: this side's own
            name = str(j["$given"])
            if name not in self.given:
                raise KeyError(f"no given piece {name!r} here")
            return self.given[name]
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


@contextlib.contextmanager
def _no_collection():
    """No cyclic garbage collection meanwhile: a message of a big graph makes
    thousands of containers, each allocation a step towards a full pass over every
    object (a third of the time of a 2,000-node graph's message, measured)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def dumps(data) -> str:
    with _no_collection():
        return json.dumps(data, separators=(",", ":"), allow_nan=False)


def loads(text: str):
    with _no_collection():
        return json.loads(text)
