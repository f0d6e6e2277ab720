"""The grader's split path (issue 21) gives the checks' in-process results.

Every catalogued implementation (the reference and each wrong one) goes through the
wire exactly as in grading: the student's side runs the kernel's end of the wire
(:class:`utils.grading.split.Loopback`, the same messages as a kernel, in a thread),
the check runs in the grader's process on a proxy. Its result must be the one the
check gives in process: lab 1 entirely (status, cases, message's first line, hint),
labs 2 to 5 by status and cases (two of lab 2's wrong implementations test
``isinstance(layer, ref.Linear)``, which only the in-process run can see, and class
state shared by both runs in one process changes which piece a hint names; in lab 3
the results that one check module keeps of earlier exercises decide which of them a
message blames).
"""

from __future__ import annotations

import importlib
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from utils.grading import split as S
from utils.grading import wire

SPLIT = ["lab1", "lab2", "lab3", "lab4", "lab5"]
# labs whose checks agree through the wire but that are not in SPLIT_LABS yet
WIRE_ONLY: list[str] = []


def _entries(lab: str):
    cat = importlib.import_module(f"tests.catalogue.{lab}")
    items = [(ex, cat.REFERENCE_IMPLS[ex], "reference") for ex in cat.LAB.LAB.exercises]
    items += [(w.exercise, w.impl, w.why) for w in cat.WRONG]
    return cat, items


def _given(lab: str) -> dict:
    """The given pieces' sources of ``lab`` (``lab4``), as the grader makes them."""
    from utils import grade as G

    return G.split_given(G.load_lab(int(lab[-1])))


def _loopback_run(lab: str):
    """A split run of ``lab`` whose 'kernel' is a thread of this process, and the
    lab's catalogue. Both ends name the given pieces alike (here they are the very
    same objects: the 'kernel' is this process)."""
    module = f"utils.check.{lab}"
    given = _given(lab)
    run = S.SplitRun(module, S.new_prefix(), "nonce", "application/x-test", given)
    run.transport = S.Loopback(run.prefix, module)
    run.transport.remote.peer.set_given(S.given_objects(given), send=False)
    return run, _entries(lab)[0]


def _check_through(run, exercise: str, impl):
    """The check of ``exercise`` run by the grader's side on ``impl``, an object of
    the 'kernel': in a thread, as in the grader (its own deadline, not SIGALRM's)."""
    proxy = run.peer.decode(run.transport.kernel_object(impl))
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run._check, exercise, [proxy], {}).result()


def _key(result, full: bool):
    if not full:
        return result.status, result.cases_passed
    first = (result.message or "").split("\n")[0]
    return result.status, result.cases_passed, first, result.hint


# the catalogue is wrong on purpose (a softmax without the max overflows), and here
# the kernel side runs in this process, so its NumPy warnings reach pytest
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("lab", SPLIT)
def test_both_paths_give_the_same_result_on_the_catalogue(lab):
    module = f"utils.check.{lab}"
    assert (module in S.SPLIT_LABS) == (lab not in WIRE_ONLY)
    cat, items = _entries(lab)
    in_process = S.fresh_check_module(module)
    run, _ = _loopback_run(lab)
    differ = []
    for exercise, impl, why in items:
        getattr(cat, "_KEPT", {}).clear()  # a catalogue's global state, per run
        here = getattr(in_process, exercise)(impl)
        getattr(cat, "_KEPT", {}).clear()
        there = _check_through(run, exercise, impl)
        if _key(here, lab == "lab1") != _key(there, lab == "lab1"):
            differ.append(f"{exercise} ({why}): {here.text()}\n  vs {there.text()}")
    assert not differ, "\n".join(differ)


def test_values_cross_the_wire_as_data_with_their_identity():
    peer = wire.Peer("g", lambda hid, info: None, lambda obj: {})
    a = np.arange(6, dtype=np.float32).reshape(2, 3).T  # not contiguous
    value = {"a": a, "b": [a, np.float32(2.5), 3, "x", None, (1.5, slice(1, 4))]}
    text = wire.dumps(peer.encode(value))
    assert "pickle" not in text and "\\u0000" not in text
    got = peer.decode(wire.loads(text))
    assert got["b"][0] is got["a"]  # the same array twice stays one array
    assert not got["a"].flags.c_contiguous and got["a"].dtype == np.float32
    np.testing.assert_array_equal(got["a"], a)
    assert type(got["b"][1]) is np.float32 and got["b"][5] == (1.5, slice(1, 4))


def test_an_object_array_is_never_unpickled():
    with pytest.raises(ValueError):
        wire._array_of(_pickled_array())


def _pickled_array() -> str:
    import base64
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    return base64.b64encode(buf.getvalue()).decode()


def test_the_kernel_gets_the_given_pieces_alone():
    """Lab 1 hands out init_params and GRAD_CHECK_BOUND: rebuilt from their source,
    with NumPy and nothing else of the reference."""
    import jupytext

    from utils import grade as G

    lab = G.load_lab(1)
    source = lab.nb.cells[lab.import_cell].source
    refs = S.fresh_check_module(lab.module).LAB.references.values()
    given = S.given_pieces(source, list(refs))
    assert list(given) == ["utils.reference.stage1"]
    space: dict = {}
    exec(given["utils.reference.stage1"], space)  # noqa: S102 - the course's source
    names = {k for k in space if not k.startswith("__")}
    assert names == {"np", "annotations", "init_params", "GRAD_CHECK_BOUND"}
    params = space["init_params"](3, 4, 2, seed=0)
    assert params["W1"].shape == (3, 4)
    with pytest.raises(ValueError, match="exercise's reference"):
        S.given_pieces("from utils.reference.stage1 import relu", list(refs))
    assert jupytext  # (the lab is read with jupytext above)


def test_every_lab_is_split_and_a_run_without_says_so_in_one_line(monkeypatch):
    assert all(S.enabled(f"utils.check.lab{n}") for n in range(1, 6))
    monkeypatch.setenv(S.ENV_SWITCH, "0")
    assert not S.enabled("utils.check.lab5")
    note = S.in_kernel_note("utils.check.lab5")
    assert "\n" not in note and "inside each student's kernel" in note
    assert "the split path is off" in note


class _Holder:
    """A kernel object whose array attribute is changed in place by a method."""

    def __init__(self) -> None:
        self.grad = np.ones(3, dtype=np.float32)

    def zero_grad(self) -> None:
        self.grad[...] = 0


def test_an_attribute_read_twice_is_one_object_kept_in_step():
    """``p.grad is held`` (lab 3's in-place checks): an attribute read again is the
    very array read before, and a method that changes it in the kernel changes it
    here too."""
    run = S.SplitRun("utils.check.lab1", S.new_prefix(), "nonce", "x/test")
    run.transport = S.Loopback(run.prefix, "utils.check.lab1")
    run.kernel_left = 30.0
    p = run.peer.decode(run.transport.kernel_object(_Holder()))
    held = p.grad
    assert p.grad is held
    held[0] = 5.0  # changed here: the kernel sees it
    p.zero_grad()
    assert p.grad is held and not held.any()


def test_a_kernel_frame_named_after_a_course_file_leaves_its_source_alone():
    """An error's frames come from the kernel with the file names it gives them. One
    that names a file of the grader (a catalogue class's frame in the reference
    module, or a forged one) must not put the kernel's lines into the grader's
    ``linecache`` for that file: ``inspect.getsource`` of a class there (the pieces
    a lab hands out) then found no class, and no line of the grader's files may be
    read into a message."""
    import inspect
    import linecache

    from utils.reference import stage2

    source = inspect.getsource(stage2.CrossEntropy)
    secret = str(Path(__file__).resolve())  # a file of the grader, not in utils/
    frames = [[stage2.__file__, 3, "forward", "x = 1"], [secret, 1, "f", "y = 2"]]
    exc = wire.rebuild_error({"type": "ValueError", "message": "m", "frames": frames})
    assert isinstance(exc, ValueError)
    assert inspect.getsource(stage2.CrossEntropy) == source
    first = Path(secret).read_text().splitlines()[0]
    assert linecache.getline(secret, 1) == first + "\n"
    names = [f.f_code.co_filename for f, _ in traceback.walk_tb(exc.__traceback__)]
    assert not any(n in (stage2.__file__, secret) for n in names)
    assert any(n.endswith(secret) for n in names)  # the student's frame, renamed


def test_the_given_pieces_of_lab_3_keep_their_order_and_constants():
    """Lab 3 hands out classes derived from others it hands out (CrossEntropyLoss
    from Loss), a dtype constant (DTYPE = np.float32) and a module-level random
    generator: rebuilt with each base before its subclass, the dtype by its name
    and the generator in its state as on import. Its `fit` names the train_epoch
    exercise's reference as a default: the kernel gets a stub in its place, and
    `evaluate` (not an exercise) before `fit`."""
    refs = S.fresh_check_module("utils.check.lab3").LAB.references.values()
    source = (
        "from utils.reference.stage3 import CrossEntropyLoss, LazyModuleError, "
        "Optimizer, fit, init_weight, manual_seed"
    )
    given = S.given_pieces(source, list(refs))["utils.reference.stage3"]
    space: dict = {"__name__": "given"}
    exec(given, space)  # noqa: S102 - the course's source
    assert issubclass(space["CrossEntropyLoss"], space["Loss"])
    assert space["DTYPE"] is np.float32
    from utils.reference import stage3

    fresh = np.random.default_rng(0).random(3)
    np.testing.assert_array_equal(space["_GLOBAL_RNG"].random(3), fresh)
    assert stage3  # (its generator may have been used: the copy's is as on import)
    stub = space["fit"].__kwdefaults__["epoch_fn"]
    assert stub is space["train_epoch"] and stub is not stage3.train_epoch
    assert "iterate_minibatches" not in given  # nothing of the reference's body
    with pytest.raises(NotImplementedError, match="pass your own train_epoch"):
        stub()
    assert space["fit"].__kwdefaults__["eval_fn"].__name__ == "evaluate"


@pytest.mark.parametrize("exercise", ["sgd", "momentum", "adam", "weight_decay"])
def test_an_optimizer_reads_the_checks_parameters_without_a_message_each(exercise):
    """The grader sends the attributes of its plain objects (a Parameter's data and
    grad), once read, with each message: a student's `step` reads them in the
    kernel, which asks the grader only for its first read of each (72 messages
    before), and the in-place updates still reach the check."""
    run, cat = _loopback_run("lab3")
    served = []
    serve = run._serve
    run._serve = lambda message: served.append(message.get("op")) or serve(message)
    result = _check_through(run, exercise, cat.REFERENCE_IMPLS[exercise])
    assert result.status == "passed", result.text()
    assert served.count("getattr") <= 12, served  # a first read of each Parameter
    assert wire.plain_attributes(np.zeros(1)) == []  # arrays, functions: not theirs
    assert wire.plain_attributes(S.fresh_check_module) == []


def test_a_plain_instances_sets_ride_on_the_next_message():
    """The module check makes each Parameter with ``object.__new__`` and sets its
    ``data`` and ``grad``: a plain instance's sets go with the next message, and
    read back as the value set meanwhile; a Module's (its ``__setattr__`` is the
    student's) still go one message each, when made."""
    run, cat = _loopback_run("lab3")
    asked = []
    call = run.call
    run.call = lambda request, *a, **k: (
        asked.append((request.get("op"), request.get("name"))) or call(request, *a, **k)
    )
    result = _check_through(run, "module", cat.REFERENCE_IMPLS["module"])
    assert result.status == "passed", result.text()
    assert ("setattr", "data") not in asked and ("getattr", "data") not in asked
    assert ("setattr", "W") in asked  # the student's Module.__setattr__ runs now
    assert not run.sets  # all sent
    assert not S._deferrable({"plain": True, "cattrs": ["data"]}, "data")
    assert not S._deferrable({"methods": []}, "data")


def test_lines_are_framed_across_chunks():
    """The serve loop's socket carries one JSON line per message: a line split
    over several reads comes out whole, two in one read come out one by one."""
    lines = wire.Lines()
    lines.feed(b'{"a":')
    assert lines.pop() is None and len(lines) == 5
    lines.feed(b'1}\n{"b":2}\n{"c"')
    assert lines.pop() == '{"a":1}' and lines.pop() == '{"b":2}'
    assert lines.pop() is None
    lines.feed(b":3}\n")
    assert lines.pop() == '{"c":3}' and len(lines) == 0
