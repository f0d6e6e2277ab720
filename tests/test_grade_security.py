"""The batch grader against submissions that try to fake their grade (issue 21).

Each trick is one small lab 1 submission whose ``relu`` is right only when the trick
works; it must never read ``passed``. The sandbox tests need bubblewrap (``bwrap``)
able to create namespaces; they are skipped, with the reason, where it cannot.
"""

from __future__ import annotations

import csv
import textwrap
import time
from pathlib import Path

import jupytext
import pytest

from tests.test_grade import LIMITS, _with, small  # noqa: F401 - the fixture
from utils import grade as G
from utils.grading import sandbox as S

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
    }


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
    report = G.grade(lab.path, folder, out, jobs=2, limits=LIMITS, progress=False)
    written = out.read_bytes()
    time.sleep(3)  # the detached process would have rewritten it by now
    return lab, report, out, written, root


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


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


def test_an_honest_submission_is_graded_as_before(tricked):
    lab, report, out, written, root = tricked
    row = _rows(out)["honest"]
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
