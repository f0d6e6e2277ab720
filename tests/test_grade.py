"""The batch grader (utils/grade.py) on submissions generated from the solutions.

No notebook is committed: every submission is made here, in a temporary folder, from
``solutions/`` and ``labs/``. Most tests grade a *small* lab 1 (the lab without its
data, demo and training cells) so that a kernel per submission stays cheap; one test
grades the full solution and the untouched lab of every lab.
"""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

from utils import grade as G

REPO = Path(__file__).resolve().parent.parent
LAB1 = "01-two-layer-net"
JOBS = 2
# short limits: the endless loop costs one cell timeout
LIMITS = G.Limits(cell_timeout=15, total_timeout=240, memory=2 * 2**30)

WRONG_SOFTMAX = '''\
def softmax(logits):
    """Forgets to subtract the row maximum: overflows on large logits."""
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)
'''


def _code_source(nb, name: str) -> int:
    """Index of the code cell of ``nb`` that defines ``name``."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and name in G.defined_names(cell.source):
            return i
    raise KeyError(name)


def _small(nb, lab: G.LabSpec):
    """Keep the import cell, the exercise and check cells, and the summary."""
    keep = {lab.import_cell, *(c.index for c in lab.exercise_cells), *lab.check_cells}
    small = copy.deepcopy(nb)
    small.cells = [
        cell
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown" or i in keep or "check.summary()" in cell.source
    ]
    return small


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small lab 1 and its solution, cell for cell."""
    root = tmp_path_factory.mktemp("small")
    full_lab = G.load_lab(1)
    lab_nb = jupytext.read(REPO / "labs" / f"{LAB1}.md")
    sol_nb = jupytext.read(REPO / "solutions" / f"{LAB1}.md")
    assert len(lab_nb.cells) == len(sol_nb.cells)
    lab_path = root / f"{LAB1}.md"
    jupytext.write(_small(lab_nb, full_lab), lab_path)
    solution = _small(sol_nb, full_lab)
    return G.load_lab(lab_path), solution, jupytext.read(lab_path)


def _with(nb, name: str, source: str | None):
    """A copy of ``nb`` whose cell defining ``name`` is replaced (None: deleted)."""
    nb = copy.deepcopy(nb)
    i = _code_source(nb, name)
    if source is None:
        del nb.cells[i]
    else:
        nb.cells[i].source = source
    return nb


def _append(nb, name: str, extra: str):
    nb = copy.deepcopy(nb)
    i = _code_source(nb, name)
    nb.cells[i].source += "\n" + extra
    return nb


def _crafted(lab: G.LabSpec, solution, untouched) -> dict[str, object]:
    """student name -> notebook (or raw text for files that are not notebooks)."""
    tampered = _append(  # a wrong relu, and a `check` that accepts anything
        solution,
        "relu",
        "def relu(z):\n    return z\n\n\nclass _Fake:\n"
        "    def __getattr__(self, name):\n        return lambda *a, **k: None\n\n\n"
        "check = _Fake()\n",
    )
    for cell in tampered.cells:  # and every check cell of theirs says it passed
        if cell.cell_type == "code" and cell.source.startswith("check."):
            cell.source = 'print("✅ all passed")'
    return {
        "full": solution,
        "untouched": untouched,
        "wrong": _with(solution, "softmax", WRONG_SOFTMAX),
        "tampered": tampered,
        "loop": _append(solution, "softmax", "while True:\n    pass\n"),
        "exit": _append(solution, "cross_entropy", "import os\n\nos._exit(1)\n"),
        "segfault": _append(
            solution,
            "softmax_cross_entropy_grad",
            "import ctypes\n\nctypes.string_at(0)\n",
        ),
        # lazily allocated: without the kernel's memory limit this would succeed
        "memory": _append(solution, "forward", "big = np.zeros(3 * 2**30, np.uint8)\n"),
        "syntax": _append(solution, "linear_backward", "def oops(:\n    pass\n"),
        "deleted": _with(solution, "sgd_update", None),
    }


# exercises that call a broken one (forward calls relu, train_step calls everything)
# may fail with it, as they would in the student's notebook: "" accepts any status
ANY = ""
EXPECTED = {  # student -> {exercise: status}; every other exercise "passed"
    "untouched": "not implemented yet",
    "wrong": {"softmax": "failed", "forward": ANY, "train_step": ANY, "training": ANY},
    "tampered": {
        "relu": "failed",
        **dict.fromkeys(["forward", "backward", "train_step", "training"], ANY),
    },
    "loop": {"softmax": "error: timeout"},
    "exit": {"cross_entropy": "error: kernel died (exit code 1)"},
    "segfault": {"softmax_cross_entropy_grad": "error: kernel died (SIGSEGV"},
    "memory": {"forward": "error: MemoryError"},
    "syntax": {
        "linear_backward": "error: SyntaxError (line",
        **dict.fromkeys(["backward", "train_step", "training"], ANY),
    },
    "deleted": {
        "sgd_update": "error: missing (no cell defines sgd_update)",
        **dict.fromkeys(["train_step", "training"], ANY),
    },
}
NOTES = {  # student -> words its notes must contain
    "loop": "timeout in exercise 3 (softmax)",
    "exit": "kernel died (exit code 1) in exercise 4 (cross_entropy)",
    "segfault": "run again with only the definitions of the student's cell for",
    "tampered": "review by hand",
    "deleted": "exercise cell for sgd_update not found",
    "other-lab": "not graded: this is a submission of lab2",
    "notes": "not graded: notes.txt is not a notebook",
    "broken": "not graded: broken.ipynb cannot be read",
    "empty-folder": "holds no notebook",
}


def _write_submissions(folder: Path, lab, solution, untouched, n_total: int) -> None:
    folder.mkdir()
    crafted = _crafted(lab, solution, untouched)
    for i, (name, nb) in enumerate(crafted.items()):
        suffix = ".ipynb" if i % 2 else ".md"  # both formats
        jupytext.write(nb, folder / f"{name}{suffix}")
    # a workspace-like folder: the lab beside another lab and a newer offer
    carol = folder / "carol"
    carol.mkdir()
    jupytext.write(solution, carol / f"{LAB1}.md")
    (carol / "02-layered-network.md").write_text(
        (REPO / "labs" / "02-layered-network.md").read_text()
    )
    (folder / "empty-folder").mkdir()
    (folder / "other-lab.md").write_text(
        (REPO / "labs" / "02-layered-network.md").read_text()
    )
    (folder / "notes.txt").write_text("not a notebook\n")
    (folder / "broken.ipynb").write_text("{ this is not json")
    (folder / ".DS_Store").write_text("ignored")
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    for k in range(n_total - len(names)):  # the rest of the class
        nb = _with(solution, "softmax", WRONG_SOFTMAX) if k % 2 else solution
        jupytext.write(nb, folder / f"student{k:02d}.md")


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(small, tmp_path_factory):
    """One run over 30 submissions: the crafted ones and the rest of a class."""
    lab, solution, untouched = small
    root = tmp_path_factory.mktemp("class")
    folder = root / "submissions"
    _write_submissions(folder, lab, solution, untouched, 30)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    start = time.monotonic()
    report = G.grade(
        lab.path,
        folder,
        root / "out" / "grades.csv",
        jobs=JOBS,
        limits=LIMITS,
        progress=False,
    )
    seconds = time.monotonic() - start
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return lab, report, seconds, before, after, folder


def test_thirty_submissions_finish(graded, capsys):
    lab, report, seconds, *_ = graded
    assert len(report.grades) == 30
    with capsys.disabled():
        print(
            f"\n[grade] 30 submissions of the small lab 1 in {seconds:.1f} s with "
            f"{JOBS} jobs: {seconds / 30:.1f} s per submission"
        )


def test_crafted_submissions(graded):
    lab, report, *_ = graded
    rows = _rows(report.csv_path)
    full = rows["full"]
    assert all(full[ex] == "passed" for ex in lab.exercises), full
    assert full["total"] == str(len(lab.exercises)) == full["max"]
    assert all(rows["carol"][ex] == "passed" for ex in lab.exercises)
    for student, expected in EXPECTED.items():
        row = rows[student]
        for ex in lab.exercises:
            want = expected if isinstance(expected, str) else expected.get(ex, "passed")
            assert row[ex].startswith(want), (student, ex, row[ex], row["notes"])
    for student, words in NOTES.items():
        assert words in rows[student]["notes"], (student, rows[student]["notes"])
    for student in ("other-lab", "notes", "broken", "empty-folder"):
        assert all(rows[student][ex] == "error: not graded" for ex in lab.exercises)
    assert rows["student00"]["total"] == str(len(lab.exercises))
    assert rows["student01"]["softmax"] == "failed"


def test_submissions_untouched_and_feedback_written(graded):
    lab, report, _, before, after, folder = graded
    assert before == after  # nothing written, moved or deleted in the submissions
    out = report.feedback_dir
    assert not G._inside(out, folder)
    text = (out / "wrong.md").read_text()
    assert "❌ softmax" in text and "✅ relu" in text  # the notebook's own messages
    assert (out / "loop.ipynb").exists()
    assert not (out / "work").exists()  # kernels' working folders are cleaned up


def test_tampering_changes_nothing(graded):
    """Edited check cells and a fake `check` do not make a wrong relu pass."""
    lab, report, *_ = graded
    row = _rows(report.csv_path)["tampered"]
    assert row["relu"] == "failed"
    assert "rebinds `check`" in row["notes"]


def test_two_shards_equal_one_run(graded, tmp_path):
    """--shard 1/2 and 2/2 on two machines, concatenated, give the same rows."""
    lab, report, _, _, _, folder = graded
    subset = tmp_path / "subset"
    subset.mkdir()
    for stem in ("full", "wrong", "untouched", "notes"):
        (path,) = folder.glob(f"{stem}.*")
        (subset / path.name).write_bytes(path.read_bytes())
    rows = {}
    for k in (1, 2):
        out = tmp_path / f"shard{k}.csv"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "utils.grade",
                str(lab.path),
                str(subset),
                "--out",
                str(out),
                "--shard",
                f"{k}/2",
                "--jobs",
                "2",
                "--quiet",
                "--cell-timeout",
                "15",
                "--memory",
                "2G",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        part = _rows(out)
        assert len(part) == 2
        rows.update(part)
    one_run = _rows(report.csv_path)
    ignore = ("submission", "seconds")
    for student, row in rows.items():
        want = {k: v for k, v in one_run[student].items() if k not in ignore}
        assert {k: v for k, v in row.items() if k not in ignore} == want


@pytest.mark.parametrize(
    "args, words",
    [
        (["9", "{subs}"], "unknown lab '9'"),
        (["1", "{empty}"], "no submissions"),
        (["1", "{missing}"], "does not exist"),
        (["1", "{subs}", "--out", "{subs}/grades.csv"], "outside the submissions"),
        (["1", "{subs}", "--shard", "3/2"], "--shard expects K/N"),
        (["1", "{subs}", "--memory", "lots"], "--memory expects a size"),
    ],
)
def test_command_line_errors(tmp_path, args, words):
    subs, empty = tmp_path / "subs", tmp_path / "empty"
    subs.mkdir()
    empty.mkdir()
    (subs / "a.md").write_text("x")
    paths = {"subs": subs, "empty": empty, "missing": tmp_path / "nope"}
    argv = [a.format(**paths) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "utils.grade", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert words in done.stderr, done.stderr


def test_matching_by_names_and_position(small):
    lab, solution, _ = small
    nb = copy.deepcopy(solution)
    i = _code_source(nb, "softmax")
    nb.cells[i].source = nb.cells[i].source.replace("def softmax(", "def my_softmax(")
    matches, notes = G.match_exercises(lab, nb)
    assert "the cells in its place define my_softmax instead" in "; ".join(notes)
    assert [m.missing for m in matches if m.missing] == [["softmax"]]
    nb = copy.deepcopy(solution)
    i, j = _code_source(nb, "forward"), _code_source(nb, "cross_entropy")
    nb.cells[i], nb.cells[j] = nb.cells[j], nb.cells[i]
    matches, notes = G.match_exercises(lab, nb)
    assert "not in the lab's order" in "; ".join(notes)
    assert all(m.sources for m in matches)
    with pytest.raises(G.GradeError, match="submission of lab2"):
        G.match_exercises(lab, jupytext.read(REPO / "labs" / "02-layered-network.md"))
    assert G.defined_names("def f(:\n  pass\nclass K:\n  pass\n") == ["f", "K"]
    source = (
        "import os\nEPS = 1e-3\nX = f()\n\n@d\ndef f(x):\n    return x\n\nos._exit(1)\n"
    )
    assert (
        G.definitions_only(source)
        == "import os\n\n\nEPS = 1e-3\n\n\n@d\ndef f(x):\n    return x"
    )


def _every_lab() -> list[Path]:
    return G.available_labs()


@pytest.mark.notebooks
def test_every_lab_solution_passes_and_untouched_lab_is_not_implemented(
    tmp_path, capsys
):
    """The grader agrees with check.summary() in the notebook, on every lab."""
    start = time.monotonic()
    timings = []
    for lab_path in _every_lab():
        folder = tmp_path / lab_path.stem
        folder.mkdir()
        (folder / "solution.md").write_text(
            (REPO / "solutions" / lab_path.name).read_text()
        )
        (folder / "untouched.md").write_text(lab_path.read_text())
        report = G.grade(
            lab_path,
            folder,
            tmp_path / f"{lab_path.stem}.csv",
            jobs=JOBS,
            limits=G.Limits(cell_timeout=300, total_timeout=600),
            progress=False,
        )
        by = {g.student: g for g in report.grades}
        solution, untouched = by["solution"], by["untouched"]
        assert all(s == "passed" for s in solution.statuses.values()), solution.notes
        assert all(s == "not implemented yet" for s in untouched.statuses.values()), (
            untouched.statuses
        )
        for g in (solution, untouched):  # the same as check.summary() in the kernel
            assert g.summary is not None
            assert dict(g.summary) == g.statuses
        timings.append(f"{lab_path.stem} {report.per_submission:.1f} s")
    with capsys.disabled():
        data = "MNIST" if os.environ.get("MNIST_PATH") else "digits fallback"
        print(
            f"\n[grade] every lab, solution + untouched ({data}), per submission: "
            f"{', '.join(timings)}; {time.monotonic() - start:.1f} s in all"
        )


def test_feedback_markdown_for_an_ungraded_submission(small, tmp_path):
    lab, _, _ = small
    grade = G.Grade("zoe", "", {}, notes=["not graded: x.pdf is not a notebook"])
    text = G.feedback_markdown(grade, lab)
    assert "error: not graded" in text and "x.pdf is not a notebook" in text
    assert nbformat  # the notebooks written beside it are nbformat 4
