"""The batch grader against submissions that try to fake their grade (issue 21).

Each trick is one small lab 1 submission whose ``relu`` is right only when the trick
works; it must never read ``passed``. The sandbox tests need bubblewrap (``bwrap``)
able to create namespaces; they are skipped, with the reason, where it cannot.
"""

from __future__ import annotations

import csv
import io
import textwrap
import time
from pathlib import Path

import jupytext
import pytest

from tests.test_grade import LIMITS, _with, small  # noqa: F401 - the fixture
from utils import grade as G
from utils.grade import REPO
from utils.grading import sandbox as S
from utils.grading import split

SANDBOX, WHY_NOT = S.detect()
needs_sandbox = pytest.mark.skipif(SANDBOX is None, reason=WHY_NOT or "no sandbox")
RIGHT = "def relu(z):\n    return np.maximum(z, 0)\n"
# a top-level definition, so that the cell is matched to the lab's relu cell
GRAD = "def relu_grad(z):\n    return (z > 0).astype(z.dtype)\n\n\n"


def _tricks(folder: Path, out: Path, root: Path) -> dict[str, str]:
    """Cell sources for the ``relu`` cell: student name -> source."""
    honest = folder / "honest.md"
    outside = root / "outside.txt"
    return {
        # a detached process that outlives the kernel and rewrites the CSV after
        "detached": textwrap.dedent(f"""\
            import subprocess, sys
            script = '''
            import os, time
            for _ in range(150):
                time.sleep(0.1)
                if os.path.exists({str(out)!r}):
                    time.sleep(0.5)
                    open({str(out)!r}, "w").write("student\\\\nhacked\\\\n")
                    break
            '''
            subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            """),
        # copying another student's submission
        "reader": textwrap.dedent(f"""\
            try:
                open({str(honest)!r}).read()
                {RIGHT.replace(chr(10), chr(10) + " " * 16)}
            except OSError:
                pass
            """),
        # writing outside the kernel's folder
        "writer": textwrap.dedent(f"""\
            try:
                open({str(outside)!r}, "w").write("written by a submission")
                {RIGHT.replace(chr(10), chr(10) + " " * 16)}
            except OSError:
                pass
            """),
        # the reference one attribute away, through a piece the lab hands out
        "globals": 'def relu(z):\n    return init_params.__globals__["relu"](z)\n',
        # the reference module, imported or read from the course
        "import_ref": "from utils.reference.stage1 import relu as _r\n\n\n"
        "def relu(z):\n    return _r(z)\n",
        "read_ref": textwrap.dedent(f"""\
            _space = {{}}
            try:
                exec(open({str(REPO / "utils" / "reference" / "stage1.py")!r}).read(),
                     _space)
            except OSError:
                pass


            def relu(z):
                return _space["relu"](z)
            """),
        # any module of the course that holds a relu
        "sys_modules": textwrap.dedent("""\
            import sys

            _found = [m.relu for n, m in list(sys.modules.items())
                      if n.startswith("utils") and callable(getattr(m, "relu", 0))]


            def relu(z):
                return _found[0](z)
            """),
        # the check library patched without naming it: gc, frames, sys.modules
        "gc_patch": textwrap.dedent("""\
            import gc
            import sys

            for _o in gc.get_objects():
                if isinstance(_o, dict) and "compare" in _o and "run_check" in _o:
                    _o["compare"] = lambda *a, **k: None
            _f = sys._getframe()
            while _f is not None:
                for _space in (_f.f_globals, _f.f_locals):
                    if "compare" in _space and callable(_space["compare"]):
                        _space["compare"] = lambda *a, **k: None
                _f = _f.f_back


            def relu(z):
                return z
            """),
        # a NumPy function that a comparison would use
        "numpy_patch": textwrap.dedent("""\
            for _name in ("allclose", "array_equal", "isclose", "all", "any"):
                setattr(np, _name, lambda *a, **k: True)


            def relu(z):
                return z
            """),
        # an IPython hook that rewrites every result after each cell
        "hook": textwrap.dedent("""\
            import gc

            from IPython import get_ipython


            def _all_passed(*args):
                for _o in gc.get_objects():
                    if type(_o).__name__ == "CheckResult":
                        try:
                            _o.status, _o.message, _o.hint = "passed", "", ""
                            _o.cases_passed = _o.cases_total
                        except Exception:
                            pass
                    if type(_o).__name__ == "Lab":
                        for _r in getattr(_o, "results", {}).values():
                            try:
                                _r.status = "passed"
                            except Exception:
                                pass


            get_ipython().events.register("post_run_cell", _all_passed)


            def relu(z):
                return z
            """),
        # the reference handed out by the check library, called from a function
        "calls_reference": "def relu(z):\n    return check.reference('relu')(z)\n",
        # a right relu that closes the kernel's end of the grader's channel
        "closes_channel": textwrap.dedent("""\
            import gc
            import socket


            def relu(z):
                for _o in gc.get_objects():
                    if isinstance(_o, socket.socket):
                        _o.close()
                return np.maximum(z, 0)
            """),
        # a right relu that asks for input while a check runs it
        "asks_input": "def relu(z):\n    input('why?')\n    return np.maximum(z, 0)\n",
        # a relu that never returns when a check calls it (the cell itself is quick)
        "hangs_in_check": "def relu(z):\n    while True:\n        pass\n",
        # a right relu that floods the grader's end of the channel with one endless
        # line (the grader caps a line at split.MAX_LINE, 4 MiB in these tests)
        "floods_channel": textwrap.dedent("""\
            import gc
            import socket


            def relu(z):
                for _o in gc.get_objects():
                    if isinstance(_o, socket.socket):
                        try:
                            _o.sendall(b"x" * (8 << 20))
                        except OSError:
                            pass
                return np.maximum(z, 0)
            """),
    }


TRICKS = [
    "globals",
    "import_ref",
    "read_ref",
    "sys_modules",
    "gc_patch",
    "numpy_patch",
    "hook",
    "calls_reference",
]
NOT_PASSED = ("failed", "not implemented yet", "used the reference")


@pytest.fixture(scope="module")
def tricked(small, tmp_path_factory):  # noqa: F811 - the fixture imported above
    lab, solution, untouched = small
    root = tmp_path_factory.mktemp("tricks")
    folder = root / "submissions"
    folder.mkdir()
    out = root / "out" / "grades.csv"
    jupytext.write(solution, folder / "honest.md")
    for name, source in _tricks(folder, out, root).items():
        cell = GRAD + source
        jupytext.write(_with(untouched, "relu", cell), folder / f"{name}.md")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(split, "MAX_LINE", 4 << 20)
        report = G.grade(lab.path, folder, out, jobs=2, limits=LIMITS, progress=False)
    written = out.read_bytes()
    time.sleep(3)  # the detached process would have rewritten it by now
    return lab, report, out, written, root


def _rows(path: Path | bytes) -> dict[str, dict[str, str]]:
    """The CSV's rows by student: of the file now, or of the bytes the grader wrote
    (without a sandbox a detached process may rewrite the file afterwards)."""
    text = path.decode() if isinstance(path, bytes) else path.read_text("utf-8")
    return {row["student"]: row for row in csv.DictReader(io.StringIO(text))}


@needs_sandbox
def test_the_csv_is_unchanged_by_a_process_a_submission_started(tricked):
    lab, report, out, written, root = tricked
    assert out.read_bytes() == written
    assert _rows(out)["detached"]["relu"] != G.PASSED


@needs_sandbox
def test_no_view_of_other_submissions_and_no_writes_outside(tricked):
    lab, report, out, written, root = tricked
    assert _rows(out)["reader"]["relu"] == "not implemented yet"
    # the write went to the kernel's private /tmp, never to the grader's
    assert not (root / "outside.txt").exists()


@pytest.mark.parametrize("trick", TRICKS)
def test_a_trick_never_passes(tricked, trick):
    """Each trick of issue 21 in the relu cell: failed, not implemented yet or used
    the reference (the checks decide in the grader; no reference in the kernel)."""
    lab, report, out, written, root = tricked
    if trick == "read_ref" and SANDBOX is None:
        pytest.skip("without bubblewrap the reference's files are readable (README)")
    row = _rows(written)[trick]
    # (an import that fails stops the cell: "error: ImportError ...", never passed)
    ok = row["relu"] in NOT_PASSED or row["relu"].startswith("error: ImportError")
    assert ok, (trick, row["relu"], row["notes"])
    if trick == "calls_reference":
        assert row["relu"] == "used the reference"
    # the other exercises are the lab's stubs, whatever the trick did
    others = [row[e] for e in lab.exercises if e not in ("relu", "relu_grad")]
    assert G.PASSED not in others, (trick, row)


def test_the_channel_to_the_grader_survives_the_students_code(tricked):
    """The check's messages go over a socket of the grader while its cell's checks
    run: a student's ``input()`` there is answered, and a student's code that closes
    the socket, floods it, or never returns, fails its own exercise only."""
    lab, report, out, written, root = tricked
    rows = _rows(written)
    assert rows["asks_input"]["relu"] == G.PASSED, rows["asks_input"]["notes"]
    assert rows["asks_input"]["relu_grad"] == G.PASSED, rows["asks_input"]["notes"]
    # the check gets no answer, the kernel is interrupted (by a message: a signal
    # would end bwrap) and the next check cell opens another socket; the same for
    # code stopped by the check's time limit
    for name in ("closes_channel", "hangs_in_check", "floods_channel"):
        row = rows[name]
        assert row["relu"] == "failed" and row["relu_grad"] == G.PASSED, row


def test_an_honest_submission_is_graded_as_before(tricked):
    lab, report, out, written, root = tricked
    row = _rows(written)["honest"]
    assert [row[e] for e in lab.exercises] == [G.PASSED] * len(lab.exercises)
    assert not report.sandbox_note or SANDBOX is None


def test_without_bwrap_the_grader_says_so_in_one_line(monkeypatch):
    monkeypatch.setenv(S.ENV_SWITCH, "0")
    sandbox, note = S.detect()
    assert sandbox is None and "\n" not in note and S.ENV_SWITCH in note
    monkeypatch.setenv(S.ENV_SWITCH, "1")
    monkeypatch.setattr(S.shutil, "which", lambda name: None)
    sandbox, note = S.detect()
    assert sandbox is None and "bubblewrap" in note and "\n" not in note


@needs_sandbox
def test_the_sandbox_hides_the_output_and_keeps_python_visible(tmp_path):
    sandbox, _ = S.detect([tmp_path / "out"])
    argv = sandbox.command(["python", "-V"], tmp_path / "work", tmp_path / "sock")
    assert "--unshare-all" in argv and "--die-with-parent" in argv
    assert argv[argv.index(str((tmp_path / "out").resolve())) - 1] == "--tmpfs"


def test_a_course_under_tmp_is_shown_again_in_the_private_tmp(tmp_path):
    """The private /tmp hides what is under the real one: a course or Python there
    (a clone in /tmp) is bound again, read-only, after it, as in the hidden folders."""
    course = Path("/tmp/some-clone/course")
    venv_python = course / ".venv" / "bin" / "python"  # a symlink: bound with course
    sandbox = S.Sandbox("bwrap", [], [course, venv_python])
    argv = sandbox.command(["python", "-V"], tmp_path / "work", tmp_path / "sock")
    tmpfs = [i for i in range(len(argv) - 1) if argv[i : i + 2] == ["--tmpfs", "/tmp"]]
    shown = [
        i
        for i in range(len(argv) - 2)
        if argv[i : i + 3] == ["--ro-bind", str(course), str(course)]
    ]
    assert len(tmpfs) == 1 and len(shown) == 1 and tmpfs[0] < shown[0]
    assert str(venv_python) not in argv


@pytest.mark.parametrize("confined", [True, False], ids=["sandbox", "no-sandbox"])
def test_the_serve_loop_talks_over_a_socket(confined, small, tmp_path, monkeypatch):  # noqa: F811
    """The kernel's serve loop talks over a Unix socket: in the sandbox's socket
    folder, or without bubblewrap in a folder of the grader's own under the system's
    temporary folder, removed afterwards."""
    import glob
    import tempfile

    from utils.grading import split

    if confined and SANDBOX is None:
        pytest.skip(WHY_NOT or "no sandbox")
    monkeypatch.setenv(S.ENV_SWITCH, "1" if confined else "0")
    paths = []
    listen = split.JupyterTransport.listen
    monkeypatch.setattr(
        split.JupyterTransport,
        "listen",
        lambda self: paths.append(listen(self)) or paths[-1],
    )
    lab, solution, untouched = small
    folder = tmp_path / "submissions"
    folder.mkdir()
    jupytext.write(solution, folder / "honest.md")
    before = set(glob.glob(str(Path(tempfile.gettempdir()) / "nnw-*")))
    out = tmp_path / "out" / "grades.csv"
    report = G.grade(lab.path, folder, out, jobs=1, limits=LIMITS, progress=False)
    row = _rows(out)["honest"]
    assert [row[e] for e in lab.exercises] == [G.PASSED] * len(lab.exercises), row
    assert ("no sandbox" in report.sandbox_note) != confined
    folder = "nng-" if confined else "nnw-"  # a socket per check cell
    assert paths and all(p and folder in p for p in paths), paths
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "nnw-*"))) <= before


def test_a_confined_kernel_is_interrupted_by_a_message(tmp_path):
    """SIGINT to bwrap would end it and the kernel with it (the kernel runs in a
    session of its own): a sandboxed kernel is interrupted on its control channel."""
    km = S.Sandbox("bwrap", [], []).kernel_manager(tmp_path)
    try:
        assert km.kernel_spec.interrupt_mode == "message"
    finally:
        S.cleanup(km)


# lab 4: the stage 4 pieces the lab hands out (Function, Tensor, the ReLU module...)
# are rebuilt in the kernel; an exercise's reference they use is the notebook's own
LAB4_TRICKS = {
    # the reference's Add one attribute away, through the Tensor the lab hands out
    "add": textwrap.dedent("""\
        class Add(Function):
            @staticmethod
            def forward(ctx, a, b):
                return stage4.Tensor.__add__.__globals__["Add"].forward(ctx, a, b)

            @staticmethod
            def backward(ctx, g):
                return stage4.Tensor.__add__.__globals__["Add"].backward(ctx, g)
        """),
    # any function of that name in the kernel that is not the notebook's
    "topological_sort": textwrap.dedent("""\
        import gc

        _found = [o for o in gc.get_objects() if type(o).__name__ == "function"
                  and o.__name__ == "topological_sort" and o.__module__ != "__main__"]


        def topological_sort(root):
            return _found[0](root)
        """),
}


@pytest.mark.notebooks
def test_lab_4_finds_no_reference_in_its_kernel(tmp_path):
    """Lab 4 is graded on the split path: its kernel holds the given stage 4 and
    stage 3 pieces alone, so a submission that reaches for the reference through
    them (or through gc) finds none; the rest of its exercises are graded as the
    solution's."""
    lab = G.load_lab(4)
    solution = jupytext.read(REPO / "solutions" / lab.path.name)
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, source in LAB4_TRICKS.items():
        jupytext.write(
            _with(solution, name if name != "add" else "Add", source),
            folder / f"{name}.md",
        )
    out = tmp_path / "out" / "grades.csv"
    limits = G.Limits(cell_timeout=120, total_timeout=400)
    G.grade(
        lab.path,
        folder,
        out,
        jobs=2,
        limits=limits,
        progress=False,
        mnist_path=str(tmp_path / "no-mnist.npz"),
    )
    rows = _rows(out)
    assert rows["add"]["add"] in NOT_PASSED, rows["add"]["notes"]
    assert rows["topological_sort"]["topological_sort"] in NOT_PASSED
    for row in rows.values():  # the exercises that use neither trick
        assert row["unbroadcast"] == row["matmul"] == row["exp"] == G.PASSED, row
