"""The batch grader (utils/grade.py) on submissions generated from the solutions.

No notebook is committed: every submission is made here, in a temporary folder, from
``solutions/`` and ``labs/``. Most tests grade a *small* lab 1 (the lab without its
data, demo and training cells) so that a kernel per submission stays cheap; one test
grades the full solution and the untouched lab of every lab, on the digits fallback.
The time is in kernels (about 1.5 s to start one, plus the lab's imports): the tests
grade two at a time and keep timeouts short.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import pytest

from utils import grade as G
from utils import workspace

REPO = Path(__file__).resolve().parent.parent
LAB1 = "01-two-layer-net"
JOBS = 2
# short limits: the endless loop costs one cell timeout
LIMITS = G.Limits(cell_timeout=10, total_timeout=240, memory=2 * 2**30)

ANSWER = G.ANSWER_STUB
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
    """Keep the import cell, the exercise and check cells, and the summary.

    The import cell loses matplotlib and the plots, which only the dropped cells use
    (about 1 s of CPU time per kernel).
    """
    keep = {lab.import_cell, *(c.index for c in lab.exercise_cells), *lab.check_cells}
    small = copy.deepcopy(nb)
    small.cells = [
        cell
        for i, cell in enumerate(small.cells)
        if cell.cell_type == "markdown" or i in keep or "check.summary()" in cell.source
    ]
    (imports,) = [
        c for c in small.cells if c.source == nb.cells[lab.import_cell].source
    ]
    for line in ("import matplotlib.pyplot as plt\n", ", plots\n"):
        assert line in imports.source
        imports.source = imports.source.replace(line, "\n" if "," in line else "")
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


def _prepend(nb, name: str, extra: str):
    nb = copy.deepcopy(nb)
    i = _code_source(nb, name)
    nb.cells[i].source = extra + "\n" + nb.cells[i].source
    return nb


# one mistake at the top of the softmax cell, four ways to fail: the same grade
SAME_MISTAKE = {
    "same-sleep": "import time\n\ntime.sleep(60)\n",
    "same-sigint": "import signal\nimport time\n\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)\n",
    "same-memory": "big = np.zeros(3 * 2**30, np.uint8)\n",
    "same-exit": "import os\n\nos._exit(1)\n",
}


def _questions_cell(nb) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and "**Question 1.**" in cell.source:
            return i
    raise KeyError("**Question 1.**")


def _answers_edited(untouched):
    """Question 1 answered in place, question 2 reworded (its label kept) and
    answered, question 3 deleted with its placeholder."""
    nb = copy.deepcopy(untouched)
    cell = nb.cells[_questions_cell(nb)]
    head, q2 = cell.source.split("**Question 2.**")
    q2, _ = q2.split("**Question 3.**")
    head = head.replace(ANSWER, "Twice per entry: too slow to train with.", 1)
    cell.source = head + "**Question 2.** Reworded by me.\n\nNot in float32.\n"
    return nb


def _answer_split_off(solution, untouched):
    """The untouched questions with question 1's answer in a Markdown cell of its
    own (Jupyter's split cell) and the solution's code."""
    nb = copy.deepcopy(solution)
    i = _questions_cell(nb)
    text = untouched.cells[_questions_cell(untouched)].source
    first, rest = text.split(ANSWER, 1)
    nb.cells[i : i + 1] = [
        nbformat.v4.new_markdown_cell(first),
        nbformat.v4.new_markdown_cell("An answer in a cell of its own."),
        nbformat.v4.new_markdown_cell(rest),
    ]
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
    wrong = _with(solution, "softmax", WRONG_SOFTMAX)
    wrong.cells[_questions_cell(wrong)] = _answers_edited(untouched).cells[
        _questions_cell(untouched)
    ]
    loop = _answer_split_off(solution, untouched)
    return {
        "full": solution,
        "untouched": untouched,
        "wrong": wrong,
        "tampered": tampered,
        "loop": _append(loop, "softmax", "while True:\n    pass\n"),
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
        **{k: _prepend(solution, "softmax", v) for k, v in SAME_MISTAKE.items()},
        # 50 MB in one print, then 10 MB in many
        "chatty": _append(
            _append(solution, "relu", 'print("x" * 50_000_000)\n'),
            "softmax",
            'for _ in range(100_000):\n    print("y" * 99)\n',
        ),
    }


# exercises that call a broken one (forward calls relu, train_step calls everything)
# may fail with it, as they would in the student's notebook: "" accepts any status
ANY = ""
EXPECTED = {  # student -> {exercise: status}; every other exercise "passed"
    "untouched": {ex: "not implemented yet" for ex in G.load_lab(1).exercises},
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
    "same-sleep": {"softmax": "error: timeout"},
    "same-sigint": {"softmax": "error: timeout"},
    "same-memory": {"softmax": "error: MemoryError"},
    "same-exit": {"softmax": "error: kernel died (exit code 1)"},
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
    "latin1": "latin1.md is not UTF-8 (byte",
    "dave": "graded 01-mine.md (the one with work in it); also in dave/: "
    f"{LAB1}.md (the lab as handed out, no work in it); {LAB1}.new.md (a newer "
    "version `make lab` offered)",
}
UNGRADED = {  # student -> words of the feedback's "what to do"
    "other-lab": "This is another lab's file",
    "notes": "Hand in the lab as the `.md` file",
    "broken": "open it in Jupyter to see that it opens",
    "empty-folder": "in your folder",
    "malformed": "This is not the lab",
}
ANSWERS = {  # student -> the CSV's `answers` and words its notes must contain
    "full": ("3 of 3", ""),
    "tampered": ("3 of 3", ""),
    "untouched": (
        "0 of 3",
        "written answers: 0 of 3 answered; no answer to questions 1, 2, 3",
    ),
    "wrong": ("2 of 3", "question 3 not found in the submission"),
    "loop": ("1 of 3", "written answers: 1 of 3 answered; no answer to questions 2, 3"),
    "notes": ("", ""),
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
    _renamed_workspace(folder / "dave", lab, solution)
    (folder / "empty-folder").mkdir()
    (folder / "other-lab.md").write_text(
        (REPO / "labs" / "02-layered-network.md").read_text()
    )
    (folder / "notes.txt").write_text("not a notebook\n")
    (folder / "broken.ipynb").write_text("{ this is not json")
    (folder / "malformed.md").write_text("# My lab\n\nOnly prose, the code lost.\n")
    (folder / ".DS_Store").write_text("ignored")
    # names that one sanitised name would merge, and one a spreadsheet would run
    jupytext.write(solution, folder / "eve smith.md")
    jupytext.write(_with(solution, "softmax", WRONG_SOFTMAX), folder / "eve_smith.md")
    jupytext.write(solution, folder / "=1+1.md")
    # an editor that saved a comment's é as latin-1 (and the rest as it could)
    latin = folder / "latin1.md"
    jupytext.write(_append(solution, "relu", "# café au lait\n"), latin)
    latin.write_bytes(latin.read_text().encode("latin-1", errors="replace"))
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    for k in range(n_total - len(names)):  # the rest of the class
        nb = _with(solution, "softmax", WRONG_SOFTMAX) if k % 2 else solution
        jupytext.write(nb, folder / f"student{k:02d}.md")


def _renamed_workspace(dave: Path, lab, solution) -> None:
    """Dave worked in a renamed copy; `make lab` then wrote a fresh lab beside it and
    offered a newer version."""
    dave.mkdir()
    jupytext.write(solution, dave / "01-mine.md")
    text = lab.path.read_text()
    (dave / f"{LAB1}.md").write_text(workspace.student_copy(text, f"{LAB1}.md"))
    (dave / f"{LAB1}.new.md").write_text(text)
    (dave / ".labs.json").write_text("{}")
    old = time.time() - 3600  # his work is older than the fresh copies
    os.utime(dave / "01-mine.md", (old, old))


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
    for student in UNGRADED:
        assert all(rows[student][ex] == "error: not graded" for ex in lab.exercises)
    assert all(rows["dave"][ex] == "passed" for ex in lab.exercises)
    for student, (answers, words) in ANSWERS.items():
        row = rows[student]
        assert row["answers"] == answers, (student, row["answers"], row["notes"])
        assert words in row["notes"], (student, row["notes"])
        if not words:
            assert "written answers" not in row["notes"], (student, row["notes"])
    assert rows["student00"]["total"] == str(len(lab.exercises))
    assert rows["student01"]["softmax"] == "failed"


def test_the_same_mistake_scores_the_same(graded):
    """A sleep, a sleep deaf to SIGINT, a MemoryError and os._exit at the top of one
    exercise cell: that exercise gets `error: ...`, the others are graded with its
    definitions only, so every way gives the same row."""
    lab, report, *_ = graded
    rows = _rows(report.csv_path)
    ignore = ("student", "submission", "seconds", "notes", "answers", "fingerprint")
    ignore += ("softmax",)
    same = [{k: v for k, v in rows[s].items() if k not in ignore} for s in SAME_MISTAKE]
    assert all(row == same[0] for row in same), same
    assert same[0]["total"] == str(len(lab.exercises) - 1)
    for student in SAME_MISTAKE:
        assert rows[student]["softmax"].startswith("error: "), rows[student]
        assert (
            "only the definitions of the student's cell for exercise 3"
            in (rows[student]["notes"])
        ), rows[student]["notes"]


def test_kernel_output_is_capped(graded):
    """50 MB printed in a cell reach neither the feedback nor the grader's memory."""
    lab, report, *_ = graded
    row = _rows(report.csv_path)["chatty"]
    assert row["total"] == str(len(lab.exercises)), row["notes"]
    assert (
        "output capped: the cell for relu, relu_grad printed too much" in row["notes"]
    )
    assert "output capped: the cell for softmax printed too much" in row["notes"]
    out = report.feedback_dir
    assert (out / "chatty.ipynb").stat().st_size < 2 * LIMITS.total_output
    assert (out / "chatty.md").stat().st_size < 100_000
    grown = report.max_rss_growth
    assert grown < 50 * 2**20, f"the grader grew by {grown / 2**20:.0f} MB"


# output that bypasses the kernel's cap, in one huge message and in many small ones
BYPASS = {
    "relu": "from IPython.display import display\n\n"
    'display("x" * 50_000_000)\nfor _ in range(40):\n    display("d" * 50_000)\n',
    "softmax": 'import os\n\nos.write(1, b"o" * 50_000_000)\n',
    "cross_entropy": "import sys\n\nfor _ in range(40):\n"
    '    type(sys.stdout).write(sys.stdout, "w" * 50_000)\n    sys.stdout.flush()\n',
}
CELL, TOTAL = 100_000, 250_000  # the third cell meets the submission's limit
GRADE_IN_A_PROCESS = f"""\
import sys
from utils import grade as G

limits = G.Limits(cell_timeout=10, total_timeout=240, memory=2 * 2**30,
                  cell_output={CELL}, total_output={TOTAL})
report = G.grade(sys.argv[1], sys.argv[2], sys.argv[3], jobs=1, limits=limits,
                 progress=False)
print(report.max_rss_growth)
"""


def _kept(cell) -> int:
    """Characters of a cell's output the grader counts (not its own results)."""
    size = 0
    for out in cell.get("outputs", []):
        if G.MIME in out.get("data", {}):
            continue  # a result (and its text) the grader itself wrote
        data = out.get("data", {})
        size += len(str(out.get("text", ""))) + sum(len(str(v)) for v in data.values())
    return size


def test_output_past_the_kernels_cap_is_capped_by_the_grader(small, tmp_path):
    """display() of 50 MB, os.write(1, 50 MB) (which ipykernel forwards) and the
    stream's own write, in a process of its own (a fresh peak memory, and a kernel
    that captures fd 1 as outside pytest): each cell keeps at most the cell limit,
    the notes say so, and the grader's memory grows by less than one such message
    read a few times, not by what was printed."""
    lab, solution, _ = small
    nb = solution
    for name, extra in BYPASS.items():
        nb = _append(nb, name, extra)
    subs = tmp_path / "subs"
    subs.mkdir()
    jupytext.write(nb, subs / "loud.md")
    out = tmp_path / "out" / "grades.csv"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    run = subprocess.run(
        [sys.executable, "-c", GRADE_IN_A_PROCESS, str(lab.path), str(subs), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    grown = int(run.stdout.split()[-1])
    row = _rows(out)["loud"]
    assert row["total"] == str(len(lab.exercises)), row["notes"]
    for words in ("relu, relu_grad", "softmax", "cross_entropy"):
        assert f"output capped: the cell for {words} printed too much" in row["notes"]
    executed = nbformat.read(out.parent / "feedback" / "loud.ipynb", as_version=4)
    sizes = [_kept(cell) for cell in executed.cells]
    assert max(sizes) < CELL + 200, sizes
    assert sum(sizes) < TOTAL + 3 * 200, sizes
    (last,) = [c for c in executed.cells if "type(sys.stdout)" in c.source]
    assert G.CAPPED.format(TOTAL) in json.dumps(last.outputs)  # the submission's
    assert (out.parent / "feedback" / "loud.md").stat().st_size < 100_000
    print(f"[grade] the grader grew by {grown / 2**20:.0f} MB")
    assert grown < 200 * 2**20, f"the grader grew by {grown / 2**20:.0f} MB"


def test_colliding_names_keep_their_own_files(graded):
    """`eve smith` and `eve_smith` share no feedback file (nor work folder)."""
    lab, report, *_ = graded
    rows = _rows(report.csv_path)
    assert rows["eve smith"]["softmax"] == "passed"
    assert rows["eve_smith"]["softmax"] == "failed"
    by = {g.student: g for g in report.grades}
    names = {by[s].file_name for s in ("eve smith", "eve_smith")}
    assert len(names) == 2
    for student in ("eve smith", "eve_smith"):
        stem = by[student].file_name
        assert G.student_of(stem) == student
        text = (report.feedback_dir / f"{stem}.md").read_text()
        assert f"feedback for {student}\n" in text
        assert all("kernel did not start" not in n for n in by[student].notes), by[
            student
        ].notes
    assert G.unique_file_names(["Eve", "eve"]) == {"Eve": "Eve", "eve": "eve~~2"}
    long = "x" * 300
    assert len(G.file_name(long)) < 150 and G.file_name(long) != G.file_name(long[1:])


def test_csv_cells_are_never_formulas(graded, small):
    """OWASP: a cell starting with = + - @ (tab, CR) is quoted with a leading '."""
    lab, report, *_ = graded
    text = report.csv_path.read_text()
    assert '"\'=1+1"' in text  # the student column, readable
    assert '"=1+1"' not in text
    rows = _rows(report.csv_path)
    assert rows["'=1+1"]["total"] == str(len(lab.exercises))
    assert (report.feedback_dir / f"{G.file_name('=1+1')}.md").exists()
    lab, *_ = small
    grade = G.Grade("@x", "-y", {}, notes=['=HYPERLINK("http://e.vil")'])
    buffer = io.StringIO()
    writer = G.csv_writer(buffer)
    writer.writerow([G.csv_cell(c) for c in G.csv_row(grade, lab)])
    cells = next(csv.reader(io.StringIO(buffer.getvalue())))
    assert cells[:2] == ["'@x", "'-y"]
    assert cells[-2] == '\'=HYPERLINK("http://e.vil")'
    assert [G.csv_value(c) for c in cells[:2]] == ["@x", "-y"]
    assert G.csv_cell("\tx") == "'\tx" and G.csv_cell("\rx") == "'\rx"
    assert G.csv_cell("a=b") == "a=b"


def test_non_utf8_submission_is_graded(graded):
    lab, report, *_ = graded
    row = _rows(report.csv_path)["latin1"]
    assert row["total"] == str(len(lab.exercises)), row["notes"]
    assert "read as latin-1" in row["notes"]
    assert G.decode_text("é".encode() + b"\xe9")[1].endswith("read as U+FFFD")


def test_submissions_untouched_and_feedback_written(graded):
    lab, report, _, before, after, folder = graded
    assert before == after  # nothing written, moved or deleted in the submissions
    out = report.feedback_dir
    assert not G._inside(out, folder)
    text = (out / "wrong.md").read_text()
    assert "❌ softmax" in text and "✅ relu" in text  # the notebook's own messages
    assert "Twice per entry: too slow to train with." in text  # written answers
    assert "**Answer** (the question was found by its number" in text
    assert "Not in float32." in text and "**Not found**" in text
    assert "An answer in a cell of its own." in (out / "loop.md").read_text()
    assert "**No answer**" in (out / "untouched.md").read_text()
    assert "Two per entry" in (out / "full.md").read_text()
    assert (out / "loop.ipynb").exists()
    assert not (out / "work").exists()  # kernels' working folders are cleaned up


def test_tampering_changes_nothing(graded):
    """Edited check cells and a fake `check` do not make a wrong relu pass."""
    lab, report, *_ = graded
    row = _rows(report.csv_path)["tampered"]
    assert row["relu"] == "failed"
    assert "rebinds `check`" in row["notes"]


def test_two_shards_equal_one_run(graded, tmp_path):
    """--shard 1/2 and 2/2 (two machines; two at once here), concatenated, give the
    rows of one run."""
    lab, report, _, _, _, folder = graded
    subset = tmp_path / "subset"
    subset.mkdir()
    # sorted, shard 1 gets full and other-lab, shard 2 notes and wrong: one kernel each
    for stem in ("full", "notes", "other-lab", "wrong"):
        (path,) = folder.glob(f"{stem}.*")
        (subset / path.name).write_bytes(path.read_bytes())

    def argv(k: int) -> list[str]:
        out = str(tmp_path / f"shard{k}.csv")
        options = ["--jobs", "1", "--quiet", "--cell-timeout", "10", "--memory", "2G"]
        return [str(lab.path), str(subset), "--out", out, "--shard", f"{k}/2", *options]

    # shard 2 as the command, in a process of its own; shard 1 meanwhile in this
    # one (a process pays about 2 s of CPU to import nbformat's JSON schema checks)
    process = subprocess.Popen(
        [sys.executable, "-m", "utils.grade", *argv(2)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert G.main(argv(1)) == 0
    finally:
        _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    rows = {}
    for k in (1, 2):
        part = _rows(tmp_path / f"shard{k}.csv")
        assert len(part) == 2
        rows.update(part)
    assert sorted(rows) == ["full", "notes", "other-lab", "wrong"]
    one_run = _rows(report.csv_path)
    ignore = ("submission", "seconds", "fingerprint")  # other limits
    for student, row in rows.items():
        want = {k: v for k, v in one_run[student].items() if k not in ignore}
        assert {k: v for k, v in row.items() if k not in ignore} == want


def _kill_kernels_under(folder: Path) -> None:
    """Kill (by pid) the kernels a killed grader left running in ``folder``."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if G._inside(cwd, folder):
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds kernels in /proc")
def test_kill_mid_run_then_resume(small, tmp_path):
    """kill -9 mid-run leaves the rows done so far and no stale grades.csv; a rerun
    with --resume keeps them and grades the rest; a changed file is graded again."""
    lab, solution, _ = small
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("ann", "bob", "cy"):
        jupytext.write(solution, subs / f"{name}.md")
    out = tmp_path / "out" / "grades.csv"
    out.parent.mkdir()
    out.write_text("student,relu\nann,stale\n")  # an earlier run's grades
    partial = G.partial_path(out)
    options = ["--jobs", "1", "--quiet", "--cell-timeout", "10", "--memory", "2G"]
    argv = [str(lab.path), str(subs), "--out", str(out), *options]
    process = subprocess.Popen(
        [sys.executable, "-m", "utils.grade", *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if partial.exists() and len(_rows(partial)) >= 1:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        _kill_kernels_under(tmp_path / "out")
    assert not out.exists()  # no stale grade beside the new feedback
    same = G.Limits(cell_timeout=10, memory=2 * 2**30)  # the command's
    done = _rows(partial)
    assert 1 <= len(done) < 3 and all(
        r["total"] == str(len(lab.exercises)) for r in done.values()
    )
    report = G.grade(
        lab.path, subs, out, jobs=JOBS, limits=same, progress=False, resume=True
    )
    assert report.reused == len(done)
    rows = _rows(out)
    assert sorted(rows) == ["ann", "bob", "cy"] and not partial.exists()
    assert all(r["total"] == str(len(lab.exercises)) for r in rows.values())
    changed = sorted(done)[0]
    jupytext.write(_with(solution, "softmax", WRONG_SOFTMAX), subs / f"{changed}.md")
    report = G.grade(
        lab.path, subs, out, jobs=JOBS, limits=same, progress=False, resume=True
    )
    assert report.reused == 2
    assert _rows(out)[changed]["softmax"] == "failed"


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
def test_command_line_errors(tmp_path, capsys, args, words):
    """In-process (the shard test runs the command as a process)."""
    subs, empty = tmp_path / "subs", tmp_path / "empty"
    subs.mkdir()
    empty.mkdir()
    (subs / "a.md").write_text("x")
    paths = {"subs": subs, "empty": empty, "missing": tmp_path / "nope"}
    argv = [a.format(**paths) for a in args]
    assert G.main(argv) == 2
    stderr = capsys.readouterr().err
    assert words in stderr, stderr


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
    """The grader agrees with check.summary() in the notebook, on every lab.

    The point is the exercises' statuses, not the accuracy MNIST reaches (the
    notebooks' own tests run them on MNIST): the kernels get an MNIST_PATH that does
    not exist, so the labs' training cells fall back to the small digits set at
    once, without a download. The eight submissions are graded two at a time,
    longest first.
    """
    start = time.monotonic()
    no_mnist = str(tmp_path / "no-mnist.npz")
    runs = []
    for lab_path in _every_lab():
        for kind, source in (
            ("solution", REPO / "solutions" / lab_path.name),
            ("untouched", lab_path),
        ):
            folder = tmp_path / lab_path.stem / kind
            folder.mkdir(parents=True)
            (folder / f"{kind}.md").write_text(source.read_text())
            runs.append((lab_path, kind, folder))
    runs.sort(key=lambda run: run[1] != "solution")  # the long ones first

    def one(run):
        lab_path, kind, folder = run
        report = G.grade(
            lab_path,
            folder,
            folder.parent / f"{kind}.csv",
            jobs=1,
            limits=G.Limits(cell_timeout=300, total_timeout=600),
            mnist_path=no_mnist,
            progress=False,
        )
        return run, report.grades[0]

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        done = list(pool.map(one, runs))
    timings = []
    for (lab_path, kind, _), g in done:
        lab = G.load_lab(lab_path)
        # a check cell that waits (check.ready) for the exercises it uses is skipped
        waits = {
            ex
            for i, exs in lab.check_cells.items()
            if "check.ready(" in lab.nb.cells[i].source
            for ex in exs
        }
        want = {
            ex: "passed"
            if kind == "solution"
            else ("not run" if ex in waits else "not implemented yet")
            for ex in lab.exercises
        }
        assert g.statuses == want, (g.statuses, g.notes)
        assert g.summary is not None  # the same as check.summary() in the kernel
        assert dict(g.summary) == g.statuses
        assert g.answered == ("3 of 3" if kind == "solution" else "0 of 3"), g.notes
        timings.append(f"{lab_path.stem[:2]} {kind} {g.seconds:.1f} s")
    seconds = time.monotonic() - start
    with capsys.disabled():
        print(
            f"\n[grade] every lab, solution + untouched (digits fallback), "
            f"{JOBS} at a time: {', '.join(timings)}; {seconds:.1f} s in all, "
            f"{seconds / len(runs):.1f} s per submission"
        )


def test_feedback_markdown_for_an_ungraded_submission(small, tmp_path):
    lab, _, _ = small
    grade = G.Grade("zoe", "", {}, notes=["not graded: x.pdf is not a notebook"])
    text = G.feedback_markdown(grade, lab)
    assert "error: not graded" in text and "x.pdf is not a notebook" in text
    assert nbformat  # the notebooks written beside it are nbformat 4


def test_ungraded_submissions_get_feedback_saying_why(graded):
    """Not a notebook, unreadable, another lab, no code cells, an empty folder: a
    feedback file says why and what to do (no check's section)."""
    lab, report, *_ = graded
    by = {g.student: g for g in report.grades}
    for student, advice in UNGRADED.items():
        text = (report.feedback_dir / f"{by[student].file_name}.md").read_text()
        reason = G.ungraded_reason(by[student])
        assert f"## Not graded\n\n**Why**: {reason}\n" in text, text
        assert "**What to do**: " in text and advice in text, (student, text)
        assert "## What each check said" not in text
        assert not (report.feedback_dir / f"{by[student].file_name}.ipynb").exists()


def test_ungraded_feedback_replaces_an_earlier_notebook(small, tmp_path):
    """A kernel that did not start: the feedback says it is the grader's side; the
    executed notebook an earlier run wrote for that student goes, nothing else."""
    lab, solution, _ = small
    settings = G.Settings(lab, tmp_path)
    reason = "the kernel did not start (RuntimeError: x); is --memory too small?"
    grade = G.Grade("zoe", "zoe.md", {}, notes=[f"not graded: {reason}"])
    grade.file_name = "zoe"
    earlier = G.build_notebook(lab, G.match_exercises(lab, solution)[0], "n", set())
    nbformat.write(earlier, tmp_path / "zoe.ipynb")
    nbformat.write(solution, tmp_path / "zoe2.ipynb")  # a person's notebook
    G.write_ungraded_feedback(grade, settings)
    text = (tmp_path / "zoe.md").read_text()
    assert "Nothing was found wrong with your file" in text
    assert not (tmp_path / "zoe.ipynb").exists()
    assert (tmp_path / "zoe2.ipynb").exists()
    graded = G.Grade("ann", "ann.md", {"relu": "passed"})
    graded.file_name = "ann"
    G.write_ungraded_feedback(graded, settings)  # a graded one: nothing written
    assert not (tmp_path / "ann.md").exists()


def test_stale_feedback_of_students_who_left_is_removed(small, tmp_path, capsys):
    """A run removes the feedback the grader wrote for this lab of students no
    longer in the folder, and nothing else: a person's file, another lab's feedback,
    a file named outside the grader's scheme; a shard keeps the other shards'."""
    lab, solution, _ = small
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("bob", "cy"):  # not notebooks: graded without a kernel
        (subs / f"{name}.txt").write_text("my lab\n")
    out = tmp_path / "out"
    feedback = out / "feedback"
    feedback.mkdir(parents=True)
    ann = G.Grade("ann", "ann.md", {ex: "passed" for ex in lab.exercises})
    (feedback / "ann.md").write_text(G.feedback_markdown(ann, lab))
    earlier = G.build_notebook(lab, G.match_exercises(lab, solution)[0], "n", set())
    nbformat.write(earlier, feedback / "ann.ipynb")
    kept = {
        "notes.md": "# My notes on the class\n",
        "carl.md": f"# {G.load_lab(2).title}: feedback for carl\n",
        "dan smith.md": f"# {lab.title}: feedback for dan smith\n",
        "bob.md": f"# {lab.title}: feedback for bob\n\nan earlier run\n",
    }
    for name, text in kept.items():
        (feedback / name).write_text(text)
    nbformat.write(solution, feedback / "mine.ipynb")
    argv = [str(lab.path), str(subs), "--out", str(out / "grades.csv"), "--quiet"]
    assert G.main(argv) == 0
    assert "removed 2 feedback file(s) of students no longer in" in (
        capsys.readouterr().err
    )
    assert not (feedback / "ann.md").exists() and not (feedback / "ann.ipynb").exists()
    for name, text in kept.items():
        if name != "bob.md":
            assert (feedback / name).read_text() == text
    assert (feedback / "mine.ipynb").exists()
    assert "## Not graded" in (feedback / "bob.md").read_text()  # graded again
    (subs / "bob.txt").unlink()
    (subs / "dee.txt").write_text("my lab\n")
    csv_path = out / "grades.csv"
    report = G.grade(lab.path, subs, csv_path, shard=(2, 2), progress=False)
    assert [g.student for g in report.grades] == ["dee"]
    assert report.stale == ["bob.md"]  # bob left
    report = G.grade(lab.path, subs, csv_path, shard=(1, 2), progress=False)
    assert [g.student for g in report.grades] == ["cy"] and report.stale == []
    assert (feedback / "dee.md").exists()  # shard 2's feedback stays


def test_written_answers_found_by_text_number_or_not_at_all(small):
    lab, solution, untouched = small
    assert [q.label for q in lab.questions] == [1, 2, 3]
    assert lab.questions[0].text.startswith("**Question 1.**")

    def statuses(nb):
        return [(a.status, a.text) for a in G.written_answers(lab.questions, nb)]

    assert statuses(untouched) == [(G.UNANSWERED, "")] * 3
    assert [s for s, _ in statuses(solution)] == [G.ANSWERED] * 3
    assert "BEGIN SOLUTION" not in statuses(solution)[0][1]
    edited = G.written_answers(lab.questions, _answers_edited(untouched))
    assert [(a.status, a.text) for a in edited] == [
        (G.ANSWERED, "Twice per entry: too slow to train with."),
        (G.ANSWERED, "Not in float32."),
        (G.UNMATCHED, ""),
    ]
    assert [a.how for a in edited] == ["text", "number", ""]
    assert G.answers_notes(edited) == [
        "written answers: 2 of 3 answered; question 3 not found in the submission "
        "(text and label changed or deleted): read it by hand"
    ]
    split = statuses(_answer_split_off(solution, untouched))
    assert split[0] == (G.ANSWERED, "An answer in a cell of its own.")
    assert split[1:] == [(G.UNANSWERED, "")] * 2
    below = copy.deepcopy(untouched)  # written under the placeholder, not over it
    cell = below.cells[_questions_cell(below)]
    cell.source = cell.source.replace(ANSWER, f"{ANSWER}\n\nMine.", 1)
    assert statuses(below)[0] == (G.ANSWERED, "Mine.")
    no_text = copy.deepcopy(untouched)
    no_text.cells = [c for c in no_text.cells if c.cell_type == "code"]
    assert statuses(no_text) == [(G.UNMATCHED, "")] * 3
    assert G.written_answers([], untouched) == []
    assert G.Grade("x", "", {}, answers=[]).answered == ""  # a lab without questions


def test_pick_the_file_with_work_in_it(small, tmp_path):
    """A renamed copy beats a fresh one; offered versions are never graded."""
    lab, solution, untouched = small
    _renamed_workspace(tmp_path / "dave", lab, solution)
    frank = tmp_path / "frank"  # work in two files: the one named like the lab
    frank.mkdir()
    jupytext.write(_with(solution, "softmax", WRONG_SOFTMAX), frank / "01-mine.md")
    jupytext.write(solution, frank / f"{LAB1}.md")
    old = time.time() - 3600
    os.utime(frank / f"{LAB1}.md", (old, old))
    gina = tmp_path / "gina"  # answered a question only: that is work too
    gina.mkdir()
    answered = _answers_edited(untouched)
    jupytext.write(answered, gina / "01-answers.md")
    jupytext.write(untouched, gina / f"{LAB1}.md")
    jupytext.write(solution, gina / f"{LAB1}.new.md")
    by = {s.student: s for s in G.find_submissions(tmp_path, lab)}
    assert by["dave"].path.name == "01-mine.md"
    assert "(the one with work in it)" in by["dave"].notes[0]
    assert by["frank"].path.name == f"{LAB1}.md"
    assert by["frank"].notes == [
        f"graded {LAB1}.md (named like the lab); also in frank/: 01-mine.md (also "
        "has work in it)"
    ]
    assert by["gina"].path.name == "01-answers.md"
    assert G._has_work(gina / "01-answers.md", lab)
    assert not G._has_work(gina / f"{LAB1}.md", lab)
