"""The batch grader: a folder of submitted labs in, one CSV row per student out.

Usage::

    python -m utils.grade 1 submissions/ --out grades/grades.csv
    python -m utils.grade 1 submissions/ --out part1.csv --shard 1/2   # machine 1
    python -m utils.grade 1 submissions/ --out part2.csv --shard 2/2   # machine 2
    python -m utils.grade 1 submissions/ --out grades.csv --resume  # after a kill

A submission is a lab as the student saved it, ``.md`` (Jupytext) or ``.ipynb``: one
file per student (named after the file), or one folder per student holding it (named
after the folder; a student's whole workspace is fine: the file of this lab with work
in it is taken, never a newer version ``make lab`` offered beside it).

How a submission is graded, so that it agrees with the student's ``check.summary()``
and cannot be changed by editing check cells:

1. The grader starts from the pristine lab in ``labs/``. From the submission it takes
   only the *exercise cells*, the cells of the lab that hold ``# YOUR CODE HERE``,
   matched by the functions and classes they define (and by position, to say which
   cell stands where a missing one should be). Every other cell, check cells
   included, comes from the lab. Before each exercise the lab's own stub runs, so a
   name the student deleted is a stub again, not an undefined name.
2. The notebook runs in its own Jupyter kernel (a separate process) with a time limit
   per cell, a time limit for the whole submission and a memory limit
   (``RLIMIT_AS``) on the kernel. Cells run one by one, like Run All, but an error
   does not stop the later exercises. A cell that runs too long is interrupted; a
   kernel that dies (``os._exit``, a segfault, the memory limit), or an exercise cell
   that times out or raises MemoryError, stops the run: the kernel is restarted and
   the notebook runs again, first with only the definitions of that exercise cell
   (imports, functions, classes, constants), then without that cell, so the same
   mistake gets the same grade whichever way it fails. What the kernel prints is
   capped in the kernel (per cell and per submission), before it reaches the grader,
   and again where the grader collects it (:class:`OutputCap`).
3. Results are read as data: a grader cell after the lab's imports makes the lab's
   ``LAB.record`` also emit every check result as a JSON output of the cell that
   produced it, and a last cell emits ``check.results_as_dict()``. No printed text is
   parsed.

The CSV has one column per exercise (``passed``, ``failed``, ``not implemented
yet``, ``used the reference`` or ``error: ...``), ``total`` (exercises passed),
``max``, ``answers`` (written questions answered, ``2 of 3``: read, never graded),
``seconds``, ``notes`` (the reasons, in words) and ``fingerprint`` (for ``--resume``);
cells that a spreadsheet would run as a formula are escaped (:func:`csv_cell`). Rows
are written as each submission finishes (:class:`RowWriter`). Each student also gets
a Markdown feedback file with every check's message as the notebook shows it and each
written question with their answer, and the executed notebook, in the feedback
folder, named by :func:`unique_file_names`; a submission that was not graded gets
one saying why and what to do (:func:`write_ungraded_feedback`). A run removes the
feedback it wrote of students no longer in the folder (:func:`remove_stale_feedback`).

Each kernel runs under bubblewrap where it can (:mod:`utils.grading.sandbox`). For
the labs in :data:`utils.grading.split.SPLIT_LABS` (all five) the checks decide in
the grader's process, the kernel only running the student's code on inputs sent as
data (:mod:`utils.grading.split`; ``NN_GRADE_SPLIT=0`` decides inside the kernel, as
``check.summary()`` does in a notebook: see the README, "For instructors").
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import copy
import csv
import dataclasses
import hashlib
import importlib
import io
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from utils.labgen import ANSWER_STUB, MD_BEGIN, MD_END
from utils.workspace import is_offered

try:  # POSIX only: without it the kernel runs without a memory limit
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

REPO = Path(__file__).resolve().parent.parent
LABS_DIR = REPO / "labs"
STUB_MARK = "# YOUR CODE HERE"
MIME = "application/vnd.nn-grade+json"
GRADER = "__nn_grade__"  # the grader's object inside the kernel
NOTEBOOK_SUFFIXES = (".md", ".ipynb")
MAX_FILE_BYTES = 50 * 2**20
PASSED = "passed"
NOT_RUN = "not run"

_CHECK_IMPORT = re.compile(
    r"^\s*from\s+utils\.check\s+import\s+(\w+)\s+as\s+check\b", re.M
)
_CHECK_CALL = re.compile(r"\bcheck\.(\w+)\s*\(([^)]*)\)")
_DEF_LINE = re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# what an exercise cell has no reason to touch: flagged for the instructor to review
_SUSPICIOUS = [
    (re.compile(r"^\s*check\s*=(?!=)", re.M), "rebinds `check`"),
    (re.compile(r"\bcheck\s*\.\s*\w+(\s*\.\s*\w+)*\s*=(?!=)"), "assigns into `check`"),
    (
        re.compile(r"\butils\s*\.\s*check\b|\bfrom\s+utils\s+import\s+check\b"),
        "imports the check library",
    ),
    (re.compile(r"\butils\s*\.\s*reference\b"), "imports the reference implementation"),
    (
        re.compile(r"\bLAB\b|\bCheckResult\b|\brun_check\b"),
        "uses the checks' internals",
    ),
    (
        re.compile(r"__nn_grade__|sys\s*\.\s*modules|\bbuiltins\b|\bctypes\b"),
        "reaches into the interpreter",
    ),
]


class GradeError(Exception):
    """A problem with the command itself (unknown lab, no submissions, ...)."""


# ------------------------------------------------------------------------- the lab
@dataclass
class ExerciseCell:
    """A cell of the lab that holds ``# YOUR CODE HERE``.

    Attributes:
        index: its position among the lab's cells.
        names: the functions and classes it defines at top level.
        exercises: the exercises (check names) whose checks test those names.
    """

    index: int
    names: list[str]
    exercises: list[str] = field(default_factory=list)


@dataclass
class LabSpec:
    """A pristine lab and what the grader needs to know about it."""

    path: Path
    module: str  # e.g. "utils.check.lab1"
    title: str
    exercises: list[str]
    nb: Any  # nbformat.NotebookNode
    import_cell: int
    exercise_cells: list[ExerciseCell]
    check_cells: dict[int, list[str]]  # cell index -> exercises it checks
    exercise_names: set[str]  # names defined only in exercise cells
    questions: list[Question] = field(default_factory=list)  # written questions

    def describe(self, exercises: Sequence[str]) -> str:
        """``exercise 3 (softmax)`` or ``exercises 1, 2 (relu, relu_grad)``."""
        numbers = [str(self.exercises.index(e) + 1) for e in exercises]
        word = "exercise" if len(numbers) == 1 else "exercises"
        return f"{word} {', '.join(numbers)} ({', '.join(exercises)})"

    def cell_of(self, exercise: str) -> ExerciseCell | None:
        for cell in self.exercise_cells:
            if exercise in cell.exercises:
                return cell
        return None


def available_labs(labs_dir: Path = LABS_DIR) -> list[Path]:
    """The lab files, ``labs/NN-name.md``, in order."""
    return sorted(p for p in labs_dir.glob("[0-9][0-9]-*.md") if p.is_file())


def resolve_lab(lab: str | Path, labs_dir: Path = LABS_DIR) -> Path:
    """The lab file for ``1``, ``01``, ``lab1``, ``01-two-layer-net`` or a path."""
    text = str(lab).strip()
    path = Path(text)
    if path.suffix in NOTEBOOK_SUFFIXES and path.is_file():
        return path
    labs = available_labs(labs_dir)
    digits = re.fullmatch(r"(?:lab)?0*(\d+)", text, re.I)
    for candidate in labs:
        number = int(candidate.name[:2])
        if digits and int(digits.group(1)) == number:
            return candidate
        if text in (candidate.stem, candidate.name):
            return candidate
    known = ", ".join(f"{int(p.name[:2])} ({p.stem})" for p in labs) or "none"
    raise GradeError(f"unknown lab {text!r}: the labs are {known}.")


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a submitted file, and a note when it is not UTF-8.

    A file that is not valid UTF-8 (an editor that saved ``é`` as latin-1) is read as
    latin-1 when it holds no UTF-8 sequence at all, else as UTF-8 with the bad bytes
    replaced by U+FFFD: a comment's accent never costs the whole lab.
    """
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        first = exc.start
    if not _UTF8_SEQUENCE.search(data):
        return data.decode("latin-1"), (
            f"not UTF-8 (byte {first}): read as latin-1 instead"
        )
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return text, (
        f"not valid UTF-8 (byte {first}): {bad} undecodable byte"
        f"{'s' * (bad != 1)} read as U+FFFD"
    )


_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")


def read_notebook(path: Path, notes: list[str] | None = None) -> Any:
    """A notebook from a ``.ipynb`` or a Jupytext ``.md`` file.

    Args:
        path: the file.
        notes: where a note on the file's encoding goes (see :func:`decode_text`).

    Raises:
        GradeError: not a notebook, unreadable, or too large.
    """
    import jupytext
    import nbformat

    if path.suffix not in NOTEBOOK_SUFFIXES:
        raise GradeError(
            f"{path.name} is not a notebook: expected a .md (Jupytext) or .ipynb file."
        )
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise GradeError(f"{path.name} is {size / 2**20:.0f} MB: too large.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text, note = decode_text(path.read_bytes())
            if path.suffix == ".ipynb":
                nb = nbformat.reads(text, as_version=4)
            else:
                nb = jupytext.reads(text, fmt={"extension": path.suffix})
        if note and notes is not None:
            notes.append(f"{path.name} is {note}")
    except GradeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error: say which file
        raise GradeError(
            f"{path.name} cannot be read as a notebook ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})."
        ) from exc
    if not any(c.cell_type == "code" for c in nb.cells):
        raise GradeError(f"{path.name} has no code cells: not a lab notebook.")
    return nb


def defined_names(source: str) -> list[str]:
    """The functions and classes a cell defines at top level, in order.

    Works on cells with syntax errors or IPython magics too (line by line then).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return _DEF_LINE.findall(source)
    return [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]


def load_lab(lab: str | Path, labs_dir: Path = LABS_DIR) -> LabSpec:
    """Read a pristine lab and find its exercise cells, check cells and exercises.

    Raises:
        GradeError: unknown lab, or a lab the grader cannot use.
    """
    path = resolve_lab(lab, labs_dir)
    nb = read_notebook(path)
    import_cell, module = -1, ""
    for i, cell in enumerate(nb.cells):
        found = _CHECK_IMPORT.search(cell.source) if cell.cell_type == "code" else None
        if found:
            import_cell, module = i, f"utils.check.{found.group(1)}"
            break
    if import_cell < 0:
        raise GradeError(
            f"{path.name} has no `from utils.check import labN as check` cell, so it "
            "has no checks to grade."
        )
    lab_obj = importlib.import_module(module).LAB
    exercises = list(lab_obj.exercises)
    exercise_cells: list[ExerciseCell] = []
    other_names: set[str] = set()
    check_cells: dict[int, list[str]] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if STUB_MARK in cell.source:
            exercise_cells.append(ExerciseCell(i, defined_names(cell.source)))
            continue
        other_names.update(defined_names(cell.source))
        checked = [m for m in _CHECK_CALL.findall(cell.source) if m[0] in exercises]
        if checked:
            check_cells[i] = [name for name, _ in checked]
            for name, args in checked:
                _attach(exercise_cells, name, args, i)
    if not exercise_cells:
        raise GradeError(f"{path.name} has no `{STUB_MARK}` cell: nothing to grade.")
    exercise_names = {n for c in exercise_cells for n in c.names} - other_names
    return LabSpec(
        path=path,
        module=module,
        title=lab_obj.title,
        exercises=exercises,
        nb=nb,
        import_cell=import_cell,
        exercise_cells=exercise_cells,
        check_cells=check_cells,
        exercise_names=exercise_names,
        questions=find_questions(nb),
    )


def _attach(cells: list[ExerciseCell], exercise: str, args: str, index: int) -> None:
    """Attach ``exercise`` to the exercise cell defining its check's first argument.

    ``check.module(Module, Parameter)`` belongs to the cell defining ``Module``.
    """
    for arg in re.findall(r"[A-Za-z_]\w*", args):
        for cell in reversed(cells):  # the latest definition before the check
            if arg in cell.names:
                if exercise not in cell.exercises:
                    cell.exercises.append(exercise)
                return
    before = [c for c in cells if c.index < index]
    if before and exercise not in before[-1].exercises:
        before[-1].exercises.append(exercise)


# ------------------------------------------------------------- written answers
ANSWERED = "answered"
UNANSWERED = "not answered"
UNMATCHED = "not found"
_LABEL = re.compile(r"^\*\*\s*Question\s+(\d+)\b[^*]*\*\*", re.I)


@dataclass
class Question:
    """A written question of the lab: the text above one ``*Your answer here.*``.

    Attributes:
        number: its position among the lab's answer regions, from 1.
        paragraphs: the question's paragraphs, as the lab states them.
        label: the number its bold label gives (``**Question 2.**``), else None.
    """

    number: int
    paragraphs: list[str]
    label: int | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


@dataclass
class Answer:
    """What a submission holds under one question.

    Attributes:
        question: the lab's question.
        status: ``answered``, ``not answered`` (empty, or the placeholder) or ``not
            found`` (the question is not in the submission, so nothing under it
            can be told to be its answer).
        text: the student's answer, as Markdown.
        how: how the question was found: ``text`` or ``number`` (its label's).
    """

    question: Question
    status: str
    text: str = ""
    how: str = ""


def _norm(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, without the solutions' answer markers."""
    lines = [ln for ln in text.splitlines() if ln.strip() not in (MD_BEGIN, MD_END)]
    out, block = [], []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line.rstrip())
        elif block:
            out.append("\n".join(block))
            block = []
    return out


def _markdown_runs(nb: Any) -> list[list[str]]:
    """The paragraphs of each run of consecutive Markdown cells (code cells split)."""
    runs: list[list[str]] = [[]]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            runs[-1].extend(_paragraphs(str(cell.source)))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _label(paragraph: str) -> int | None:
    found = _LABEL.match(paragraph.strip())
    return int(found.group(1)) if found else None


def find_questions(nb: Any) -> list[Question]:
    """The lab's written questions, one per ``*Your answer here.*`` paragraph.

    A question is the paragraphs above its placeholder, back to the previous
    placeholder or heading; when one of them starts with a bold ``**Question k.**``
    label, the question starts there (an introduction above it is left out).
    """
    questions: list[Question] = []
    for run in _markdown_runs(nb):
        start = 0
        for i, para in enumerate(run):
            if para.lstrip().startswith("#"):
                start = i + 1
            elif para.strip() == ANSWER_STUB:
                block = run[start:i]
                labelled = [k for k, p in enumerate(block) if _label(p) is not None]
                if labelled:
                    block = block[labelled[-1] :]
                elif block:
                    block = block[-1:]
                questions.append(
                    Question(
                        len(questions) + 1,
                        block,
                        _label(block[0]) if block else None,
                    )
                )
                start = i + 1
    return questions


def written_answers(questions: Sequence[Question], nb: Any) -> list[Answer]:
    """Find each of the lab's questions in a submission and what is written under it.

    A question is found by its first paragraph's text (whitespace aside), else by its
    bold label's number (``**Question 2.**``, for a student who edited the wording).
    Its answer is every Markdown paragraph after it, across Markdown cells, up to the
    next question, heading or code cell, without the ``*Your answer here.*`` line.
    Answers are read, never graded.
    """
    if not questions:
        return []
    runs = _markdown_runs(nb)
    firsts = {_norm(q.paragraphs[0]) for q in questions if q.paragraphs}

    def starts_question(para: str) -> bool:
        return _norm(para) in firsts or _label(para) is not None

    answers = []
    for q in questions:
        place, how = None, ""
        if q.paragraphs:
            place = _locate(runs, lambda p, q=q: _norm(p) == _norm(q.paragraphs[0]))
            how = "text"
        if place is None and q.label is not None:
            place = _locate(runs, lambda p, q=q: _label(p) == q.label)
            how = "number"
        if place is None:
            answers.append(Answer(q, UNMATCHED))
            continue
        run, k = place
        k += 1
        for para in q.paragraphs[1:]:  # the rest of a question of several paragraphs
            if k < len(run) and _norm(run[k]) == _norm(para):
                k += 1
        body = []
        for para in run[k:]:
            if starts_question(para) or para.lstrip().startswith("#"):
                break
            if para.strip() != ANSWER_STUB:
                body.append(para)
        text = "\n\n".join(body).strip()
        answers.append(Answer(q, ANSWERED if text else UNANSWERED, text, how))
    return answers


def _locate(
    runs: list[list[str]], hit: Callable[[str], bool]
) -> tuple[list[str], int] | None:
    for run in runs:
        for k, para in enumerate(run):
            if hit(para):
                return run, k
    return None


def answers_notes(answers: Sequence[Answer]) -> list[str]:
    """A note on the written answers that are missing or could not be matched."""
    if not answers:
        return []
    done = sum(a.status == ANSWERED for a in answers)
    missing = [str(a.question.number) for a in answers if a.status == UNANSWERED]
    lost = [str(a.question.number) for a in answers if a.status == UNMATCHED]
    if not missing and not lost:
        return []
    parts = []
    if missing:
        s = "s" * (len(missing) > 1)
        parts.append(f"no answer to question{s} {', '.join(missing)}")
    if lost:
        s = "s" * (len(lost) > 1)
        parts.append(
            f"question{s} {', '.join(lost)} not found in the submission (text and "
            "label changed or deleted): read it by hand"
        )
    return [f"written answers: {done} of {len(answers)} answered; " + "; ".join(parts)]


# ------------------------------------------------------------------ submissions
@dataclass
class Submission:
    """One student's submission: the notebook to grade, or why there is none."""

    student: str
    path: Path | None
    error: str = ""
    notes: list[str] = field(default_factory=list)
    file_name: str = ""  # its feedback file and work folder: see unique_file_names

    def __post_init__(self) -> None:
        self.file_name = self.file_name or file_name(self.student)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in (
        "__pycache__",
        "__MACOSX",
    )


def _pick(candidates: list[Path], lab: LabSpec, where: str) -> tuple[Path, list[str]]:
    """The one notebook to grade among several, and a note on why that one.

    In order: not a newer version that ``make lab`` offered beside the student's
    (``NN-name.new.md``, :func:`utils.workspace.is_offered`); of this lab (named like
    it, or importing its checks); with work in it (different from the lab as handed
    out, so that a renamed copy beats a fresh one ``make lab`` wrote beside it);
    named like the lab; the newest.
    """
    offered = [p for p in candidates if is_offered(p)]
    pool = [p for p in candidates if p not in offered] or candidates
    own = [
        p for p in pool if p.stem == lab.path.stem or _mentions_module(p, lab.module)
    ]
    not_this = [p for p in pool if own and p not in own]
    pool = own or pool
    worked = [p for p in pool if _has_work(p, lab)] if len(pool) > 1 else pool
    untouched = [p for p in pool if worked and p not in worked]
    pool = sorted(
        worked or pool,
        key=lambda p: (p.stem == lab.path.stem, p.stat().st_mtime, p.suffix == ".md"),
    )
    chosen = pool[-1]
    if len(candidates) == 1:
        return chosen, []
    if len(pool) > 1:
        why = "named like the lab" if chosen.stem == lab.path.stem else "the newest"
        why += " of those with work in them" if untouched else ""
    elif untouched:
        why = "the one with work in it"
    else:
        why = "the only file of this lab"
    skipped = [
        (pool[:-1], "also has work in it"),
        (untouched, "the lab as handed out, no work in it"),
        ([p for p in offered if p != chosen], "a newer version `make lab` offered"),
        (not_this, "another lab"),
    ]
    said = [
        f"{', '.join(p.name for p in paths)} ({what})"
        for paths, what in skipped
        if paths
    ]
    return chosen, [f"graded {chosen.name} ({why}); also in {where}: {'; '.join(said)}"]


def _has_work(path: Path, lab: LabSpec) -> bool:
    """Whether a notebook differs from the pristine lab where a student works.

    A code cell that is not one of the lab's, or a written answer; the lab's own
    note lines and other Markdown do not count.
    """
    try:
        nb = read_notebook(path)
    except GradeError:
        return False
    pristine = {c.source.strip() for c in lab.nb.cells if c.cell_type == "code"}
    for cell in nb.cells:
        source = cell.source.strip()
        if cell.cell_type == "code" and source and source not in pristine:
            return True
    answers = written_answers(lab.questions, nb)
    return any(a.status == ANSWERED for a in answers)


def _mentions_module(path: Path, module: str) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:MAX_FILE_BYTES]
    except OSError:
        return False
    return f"import {module.rsplit('.', 1)[-1]} as check" in text


def find_submissions(folder: Path, lab: LabSpec) -> list[Submission]:
    """Every student's submission in ``folder``, sorted by student name.

    Raises:
        GradeError: the folder does not exist, or holds no submission at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GradeError(f"submissions folder {folder} does not exist (or is a file).")
    by_student: dict[str, list[Path]] = {}
    subs: list[Submission] = []
    for entry in sorted(folder.iterdir()):
        if not _visible(entry):
            continue
        if entry.is_dir():
            notebooks = [
                p
                for p in sorted(entry.rglob("*"))
                if p.suffix in NOTEBOOK_SUFFIXES
                and p.is_file()
                and all(_visible(part) for part in p.relative_to(entry).parents)
                and _visible(p)
                and ".ipynb_checkpoints" not in p.parts
            ]
            if not notebooks:
                subs.append(
                    Submission(
                        entry.name,
                        None,
                        f"the folder {entry.name}/ holds no notebook (.md or .ipynb).",
                    )
                )
                continue
            chosen, notes = _pick(notebooks, lab, f"{entry.name}/")
            subs.append(Submission(entry.name, chosen, notes=notes))
        elif entry.suffix in NOTEBOOK_SUFFIXES:
            by_student.setdefault(entry.stem, []).append(entry)
        else:
            subs.append(
                Submission(
                    entry.stem or entry.name,
                    None,
                    f"{entry.name} is not a notebook: expected a .md (Jupytext) or "
                    ".ipynb file, or a folder per student.",
                )
            )
    for student, paths in by_student.items():
        chosen, notes = _pick(paths, lab, "the submissions folder")
        subs.append(Submission(student, chosen, notes=notes))
    if not subs:
        raise GradeError(
            f"no submissions in {folder}: expected one .md or .ipynb file per student, "
            "or one folder per student holding it."
        )
    names: dict[str, int] = {}
    for sub in subs:  # a student named twice (alice.md and alice/): keep both rows
        names[sub.student] = names.get(sub.student, 0) + 1
        if names[sub.student] > 1:
            sub.student = f"{sub.student} ({names[sub.student]})"
    files = unique_file_names([sub.student for sub in subs])
    for sub in subs:
        sub.file_name = files[sub.student]
    return sorted(subs, key=lambda s: s.student)


def select_shard(subs: list[Submission], shard: tuple[int, int]) -> list[Submission]:
    """Shard ``k`` of ``n`` (1-based): every n-th student of the sorted list."""
    k, n = shard
    return [s for i, s in enumerate(subs) if i % n == k - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not found or not 1 <= int(found.group(1)) <= int(found.group(2)):
        raise GradeError(
            f"--shard expects K/N with 1 <= K <= N, e.g. 1/4; got {text!r}."
        )
    return int(found.group(1)), int(found.group(2))


def parse_size(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"0"`` (no limit) -> bytes."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text), re.I)
    if not found:
        raise GradeError(f"--memory expects a size like 4G or 512M; got {text!r}.")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    return int(float(found.group(1)) * scale[found.group(2).lower()])


# ------------------------------------------------------------- graded notebook
@dataclass
class Matched:
    """What the grader took from a submission for one exercise cell."""

    cell: ExerciseCell
    sources: list[str]  # the student's cells, in their order
    missing: list[str]  # names of the lab cell that no student cell defines
    positions: list[int]  # their positions among the submission's code cells


def _check_module_of(nb: Any) -> str:
    for cell in nb.cells:
        if cell.cell_type == "code":
            found = _CHECK_IMPORT.search(cell.source)
            if found:
                return f"utils.check.{found.group(1)}"
    return ""


def match_exercises(lab: LabSpec, nb: Any) -> tuple[list[Matched], list[str]]:
    """Find the student's cell(s) for each of the lab's exercise cells.

    A student cell belongs to an exercise cell when it defines one of that cell's
    functions or classes. When several cells define them, all are taken in the
    submission's order (the last definition wins, as in Run All).

    Returns:
        The matches, in the lab's order, and notes for the instructor.

    Raises:
        GradeError: the submission is another lab, or none of this lab's exercise
            cells can be found in it.
    """
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    other = _check_module_of(nb)
    if other and other != lab.module:
        raise GradeError(
            f"this is a submission of {other.rsplit('.', 1)[-1]} (it imports {other}), "
            f"not of {lab.path.stem}."
        )
    names = [set(defined_names(src)) for src in code]
    matches, notes = [], []
    for ex_cell in lab.exercise_cells:
        wanted = set(ex_cell.names) & lab.exercise_names or set(ex_cell.names)
        positions = [i for i, found in enumerate(names) if found & wanted]
        defined = set().union(*(names[i] for i in positions)) if positions else set()
        missing = [n for n in ex_cell.names if n in wanted and n not in defined]
        matches.append(
            Matched(ex_cell, [code[i] for i in positions], missing, positions)
        )
    if not any(m.sources for m in matches):
        wanted = ", ".join(sorted(lab.exercise_names))
        raise GradeError(
            f"this does not look like {lab.path.stem}: no cell defines any of its "
            f"exercises ({wanted})."
        )
    firsts = [m.positions[0] for m in matches if m.positions]
    if firsts != sorted(firsts):
        notes.append("the exercise cells are not in the lab's order (graded in order)")
    for k, m in enumerate(matches):
        if len(m.positions) > 1:
            notes.append(
                f"{', '.join(m.cell.names)}: defined in {len(m.positions)} cells, all "
                "run in order (the last definition counts)"
            )
        if m.missing and m.sources:
            notes.append(
                f"{', '.join(m.missing)} not found in the submission (the lab's stub "
                "is used)"
            )
        if m.sources:
            continue
        before = max((p for mm in matches[:k] for p in mm.positions), default=-1)
        after = min((p for mm in matches[k + 1 :] for p in mm.positions), default=None)
        stop = len(code) if after is None else after
        instead = sorted({n for i in range(before + 1, stop) for n in names[i]})
        instead = [n for n in instead if n not in lab.exercise_names]
        where = (
            f"; the cells in its place define {', '.join(instead)} instead"
            if instead
            else ""
        )
        notes.append(
            f"exercise cell for {', '.join(m.cell.names)} not found: no cell defines "
            f"{', '.join(m.missing)}{where}"
        )
    for m in matches:
        for src in m.sources:
            for pattern, what in _SUSPICIOUS:
                if pattern.search(src):
                    notes.append(
                        f"review by hand: the cell for {', '.join(m.cell.names)} {what}"
                    )
    return matches, list(dict.fromkeys(notes))


_SETUP = """\
class _NNGrade:  # added by the batch grader: emits each check's result as data
    def __init__(self, check, nonce):
        from IPython.display import display

        self.check, self.nonce, self._display = check, nonce, display
        self._record = check.LAB.record

    def emit(self, kind, data):
        self._display({{{mime!r}: dict(data, kind=kind, nonce=self.nonce)}}, raw=True)

    def record(self, result):
        self._record(result)
        try:
            data = dict(result.as_dict())
        except Exception:  # an older core: build it
            data = {{"name": result.name, "status": result.status,
                    "message": str(result.message), "hint": str(result.hint)}}
        try:
            data["text"] = result.text()
        except Exception as exc:
            data["text"] = f"{{result.name}}: {{result.status}} ({{exc!r}})"
        self.emit("result", data)

    def final(self):
        lab = self.check.LAB
        try:
            data = dict(self.check.results_as_dict())
        except Exception:
            data = {{}}
        data["summary"] = [[ex, lab.results[ex].status if ex in lab.results
                           else "not run"] for ex in lab.exercises]
        self.emit("final", data)


{grader} = _NNGrade(check, {nonce!r})
check.LAB.record = {grader}.record
del _NNGrade
"""


# what the kernel prints in place of the rest of a cell's output
CAPPED = "[the grader left out the rest of this output: more than {} characters]"
_CAP = """\
def _nn_cap(cell_limit, total_limit, mark):  # added by the batch grader
    import sys

    from IPython import get_ipython

    state = {{"cell": 0, "total": 0, "cut": False}}

    def capped(write):
        def write_capped(text):
            if not isinstance(text, str):
                return write(text)
            room = min(cell_limit - state["cell"], total_limit - state["total"])
            if len(text) <= room:
                state["cell"] += len(text)
                state["total"] += len(text)
                return write(text)
            if room > 0:
                write(text[:room])
                state["cell"] += room
                state["total"] += room
            if not state["cut"]:
                state["cut"] = True
                limit = cell_limit if cell_limit - state["cell"] <= 0 else total_limit
                write("\\n" + mark.format(limit) + "\\n")
            return len(text)

        return write_capped

    def each_cell(*args, **kwargs):
        # IPython sets each stream's write for every cell (and puts it back after):
        # the cap goes around the write that this cell uses
        state["cell"], state["cut"] = 0, False
        for stream in (sys.stdout, sys.stderr):
            stream.write = capped(stream.write)

    get_ipython().events.register("pre_run_cell", each_cell)


_nn_cap({cell!r}, {total!r}, {mark!r})
del _nn_cap
"""


def output_notes(nb: Any, lab: LabSpec) -> list[str]:
    """A note for each cell whose output was cut (in the kernel or by the grader)."""
    marks = (CAPPED.split("{}")[0],)
    notes = []
    for i, cell in enumerate(nb.cells):
        text = "".join(str(out.get("text", "")) for out in cell.get("outputs", []))
        if not any(mark in text for mark in marks):
            continue
        meta = cell.get("metadata", {}).get("nn_grade", {})
        where = f"the cell under '{_heading_before(nb, i) or 'the top'}'"
        if meta.get("role") in ("exercise", "stub"):
            names = lab.exercise_cells[0].names
            for c in lab.exercise_cells:
                if c.index == meta.get("lab_cell"):
                    names = c.names
            where = f"the cell for {', '.join(names)}"
        notes.append(f"output capped: {where} printed too much (the rest left out)")
    return notes


def definitions_only(source: str) -> str:
    """The imports, functions, classes and constant assignments of a cell.

    Used to run an exercise cell again after it killed the kernel: its other
    top-level statements (a test call, ``os._exit``, a huge allocation) are left
    out, so later exercises that use its functions can still be graded.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    lines = source.splitlines()
    kept = []
    for node in tree.body:
        keep = isinstance(
            node,
            (
                ast.Import,
                ast.ImportFrom,
                ast.FunctionDef,
                ast.AsyncFunctionDef,
                ast.ClassDef,
            ),
        )
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            try:
                ast.literal_eval(node.value)
                keep = True
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                keep = False
        if keep:
            first = min(
                [node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]
            )
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n\n\n".join(kept)


def _cell(source: str, role: str, **meta: Any) -> Any:
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nn_grade"] = {"role": role, **meta}
    return cell


def build_notebook(
    lab: LabSpec,
    matches: list[Matched],
    nonce: str,
    skip: set[tuple[str, int]],
    output_limits: tuple[int, int] = (100_000, 1_000_000),
    split_setup: str | None = None,
) -> Any:
    """The pristine lab with the student's exercise cells and the grader's cells.

    Args:
        lab: the lab.
        matches: from :func:`match_exercises`.
        nonce: marks the grader's outputs.
        skip: ``("exercise", k)`` leaves out the student's cells of exercise cell
            ``k`` (the stub stays); ``("cell", i)`` leaves out the lab's cell ``i``.
        output_limits: characters a cell, and the whole notebook, may print; the
            kernel leaves out the rest (so it never reaches the grader).
        split_setup: the kernel's end of the split path (:mod:`utils.grading.split`):
            then the checks run in the grader, and the kernel has no check code.
    """
    nb = copy.deepcopy(lab.nb)
    cap = _CAP.format(cell=output_limits[0], total=output_limits[1], mark=CAPPED)
    cells = [_cell(cap, "setup")]
    if split_setup is not None:  # issue 21: the checks decide in the grader
        cells.append(_cell(split_setup, "setup"))
    by_index = {m.cell.index: (k, m) for k, m in enumerate(matches)}
    for i, cell in enumerate(lab.nb.cells):
        if cell.cell_type != "code":
            cells.append(copy.deepcopy(cell))
            continue
        if i in by_index:
            k, m = by_index[i]
            cells.append(_cell(cell.source, "stub", group=k, lab_cell=i))
            if ("exercise", k) not in skip:
                for j, src in enumerate(m.sources):
                    if ("defs", k) in skip:
                        src = definitions_only(src)
                    cells.append(_cell(src, "exercise", group=k, lab_cell=i, part=j))
            continue
        if ("cell", i) in skip:
            continue
        if i in lab.check_cells:
            # the lab's check cell, with `check` bound again to the real module
            source = f"check = {GRADER}.check\n{cell.source}"
            if split_setup is not None:  # the kernel's stand-in: requests only
                from utils.grading.split import CHECK_PREFIX

                source = CHECK_PREFIX + cell.source
            cells.append(_cell(source, "check", lab_cell=i))
        else:
            cells.append(_cell(cell.source, "other", lab_cell=i))
        if i == lab.import_cell and split_setup is None:
            setup = _SETUP.format(mime=MIME, grader=GRADER, nonce=nonce)
            cells.append(_cell(setup, "setup"))
    final = "None" if split_setup is not None else f"{GRADER}.final()"
    cells.append(_cell(final, "results"))
    nb.cells = cells
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


# ------------------------------------------------------------------ execution
@dataclass
class Limits:
    """Time and memory limits for one submission's kernel."""

    cell_timeout: float = 120.0
    total_timeout: float = 600.0
    memory: int = 4 * 2**30  # bytes of address space (RLIMIT_AS); 0: no limit
    startup_timeout: float = 60.0
    max_restarts: int = 4
    cell_output: int = 100_000  # characters a cell may print (the rest left out)
    total_output: int = 1_000_000  # characters the whole submission may print


@dataclass
class Event:
    """Something that went wrong while running a cell."""

    kind: str  # "timeout", "died", "unresponsive", "total"
    cell: int  # position in the graded notebook
    detail: str = ""


def _limit_process(memory: int, cpu_seconds: int) -> Callable[[], None]:
    """A ``preexec_fn`` that limits the kernel's memory and CPU time, no core file."""

    def apply() -> None:  # runs in the forked child, before exec
        if resource is None:
            return
        for what, value in (
            (resource.RLIMIT_AS, memory),
            (resource.RLIMIT_CPU, cpu_seconds),
            (resource.RLIMIT_CORE, 0),
        ):
            if value is None or (value == 0 and what != resource.RLIMIT_CORE):
                continue
            try:  # a platform that refuses a limit (macOS and RLIMIT_AS): go on
                soft, hard = resource.getrlimit(what)
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(what, (value, hard))
            except (ValueError, OSError):
                pass

    return apply


def kernel_env(mnist_path: str | None = None) -> dict[str, str]:
    """The environment of a grading kernel.

    Checks report rather than raise (``NN_CHECK_STRICT=0``), one BLAS thread per kernel
    (submissions run in parallel), no GUI backend, and this repository's ``utils``.
    """
    env = dict(os.environ)
    env.update(
        NN_CHECK_STRICT="0",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MPLBACKEND="Agg",
        TQDM_DISABLE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO), env.get("PYTHONPATH", "")) if p
        ),
    )
    if mnist_path:
        env["MNIST_PATH"] = str(mnist_path)
    return env


def _signal_name(code: int | None) -> str:
    if code is None:
        return ""
    if code > 128 and code - 128 in signal.valid_signals():  # bwrap: 128 + signal
        code = 128 - code
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        extra = {
            "SIGSEGV": ": a segmentation fault",
            "SIGKILL": ": killed, often for memory",
            "SIGXCPU": ": CPU time limit",
            "SIGABRT": ": aborted",
        }.get(name, "")
        return f"{name}{extra}"
    return f"exit code {code}"


def _make_client_class() -> type:
    from nbclient import NotebookClient

    class _Client(NotebookClient):
        """Keeps at most :class:`OutputCap`'s share of each cell's output.

        Errors and the grader's own results are kept (bounded too, see the cap).
        """

        def output(self, outs, msg, display_id, cell_index):  # noqa: ANN001
            data = msg.get("content", {}).get("data", {})
            if MIME in data and getattr(self, "_nn_split", None) is not None:
                return None  # split path: only the grader writes results
            cap = self.__dict__.get("_nn_cap")
            if cap is None:
                return super().output(outs, msg, display_id, cell_index)
            kept, note = cap.admit(msg, cell_index)
            out = None
            if kept is not None:
                out = super().output(outs, kept, display_id, cell_index)
            if note is not None:
                outs.append(note)
            return out

        def _update_display_id(self, display_id, msg):  # noqa: ANN001
            cap = self.__dict__.get("_nn_cap")
            if cap is None or cap.fits_update(msg):
                super()._update_display_id(display_id, msg)

    return _Client


def _size_of(data: Any) -> int:
    """Characters in a display message's data (a MIME bundle)."""
    if not isinstance(data, dict):
        return len(str(data))
    return sum(
        len(v) if isinstance(v, str) else len(json.dumps(v, default=str))
        for v in data.values()
    )


class OutputCap:
    """The grader's own cap on the output it keeps of one kernel run (issue 22).

    The kernel caps what it prints (see ``_CAP``), but output that bypasses that cap
    (``display()`` of a huge object, ``os.write(1, ...)``, a ``sys.stdout.write`` put
    back) still arrives: of it the grader keeps at most ``cell_limit`` characters a
    cell and ``total_limit`` a run, and drops the rest with the note :data:`CAPPED`,
    so its memory stays bounded whatever a kernel prints (one huge message is read
    in full before it can be dropped, but nothing accumulates). A cell's first error
    is always kept (its value and traceback cut to ``cell_limit`` characters); the
    grader's results (:data:`MIME`) have a budget of their own, ``total_limit``.
    """

    def __init__(self, cell_limit: int, total_limit: int) -> None:
        self.cell_limit = cell_limit
        self.total_limit = total_limit
        self.cells: dict[int, int] = {}  # characters kept per cell
        self.total = 0  # characters kept in all
        self.results = 0  # characters of the grader's results kept
        self.noted: set[int | str] = set()  # cells (or "total") already noted
        self.errors: set[int] = set()  # cells whose first error was kept

    def fits_update(self, msg: dict[str, Any]) -> bool:
        """Whether an update of an earlier display is small enough to keep."""
        return _size_of(msg.get("content", {}).get("data", {})) <= self.cell_limit

    def admit(self, msg: dict[str, Any], cell: int) -> tuple[Any, Any]:
        """The message to keep (cut, or None: dropped) and a note to add (or None)."""
        kind = msg.get("msg_type")
        content = msg.get("content", {})
        if kind == "error" and cell not in self.errors:
            self.errors.add(cell)
            return self._cut_error(msg), None
        data = content.get("data", {})
        if isinstance(data, dict) and MIME in data:
            size = _size_of(data)
            if self.results + size <= self.total_limit:
                self.results += size
                return msg, None
            return None, self._note("results", self.total_limit)
        if kind == "stream":
            size = len(str(content.get("text", "")))
        elif kind == "error":
            size = len(str(content.get("evalue", ""))) + sum(
                len(str(line)) for line in content.get("traceback", [])
            )
        else:
            size = _size_of(data)
        used = self.cells.get(cell, 0)
        room = min(self.cell_limit - used, self.total_limit - self.total)
        if size <= room:
            self.cells[cell] = used + size
            self.total += size
            return msg, None
        # the cell's limit: noted in each cell; the submission's: once, where it ran out
        by_cell = self.cell_limit - used <= self.total_limit - self.total
        key, limit = (cell, self.cell_limit) if by_cell else ("total", self.total_limit)
        kept = None
        if kind == "stream" and room > 0:  # the part that fits
            kept = {**msg, "content": {**content, "text": str(content["text"])[:room]}}
            self.cells[cell] = used + room
            self.total += room
        return kept, self._note(key, limit)

    def _note(self, key: int | str, limit: int) -> Any:
        import nbformat

        if key in self.noted:
            return None
        self.noted.add(key)
        text = "\n" + CAPPED.format(limit) + "\n"
        return nbformat.v4.new_output("stream", name="stderr", text=text)

    def _cut_error(self, msg: dict[str, Any]) -> dict[str, Any]:
        content = msg.get("content", {})
        room = self.cell_limit
        evalue = str(content.get("evalue", ""))[:room]
        room -= len(evalue)
        trace = []
        for line in content.get("traceback", []):
            if room <= 0:
                break
            trace.append(str(line)[:room])
            room -= len(trace[-1])
        return {**msg, "content": {**content, "evalue": evalue, "traceback": trace}}


async def _probe(client: Any, timeout: float) -> bool:
    """Whether the kernel answers a trivial request within ``timeout`` seconds."""
    msg_id = client.kc.execute("pass", store_history=False)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            msg = await client.kc.shell_channel.get_msg(timeout=remaining)
        except queue.Empty:
            return False
        if msg["parent_header"].get("msg_id") == msg_id:
            return True


async def _run_once(
    nb: Any,
    limits: Limits,
    deadline: float,
    workdir: Path,
    env: dict[str, str],
    sandbox: Any = None,
    split: Any = None,
) -> tuple[list[Event], str]:
    """Run the cells of ``nb`` in one fresh kernel, recording errors as outputs.

    ``split`` (a :class:`utils.grading.split.SplitRun`) runs the checks that each
    check cell asks for, in this process.

    Returns:
        The events (timeouts, a dead kernel, ...) and the tail of the kernel's stderr
        when it died.
    """

    client = _make_client_class()(
        nb,
        kernel_name="python3",
        timeout=int(limits.cell_timeout),
        startup_timeout=int(limits.startup_timeout),
        allow_errors=True,
        interrupt_on_timeout=False,
        shutdown_kernel="immediate",
        record_timing=False,
        iopub_timeout=10,
        resources={"metadata": {"path": str(workdir)}},
    )
    client._nn_cap = OutputCap(limits.cell_output, limits.total_output)
    if sandbox is not None:  # --- issue 21: the kernel runs under bwrap
        client.km = sandbox.kernel_manager(workdir)
    client._nn_split = split
    try:
        return await _run_cells(client, nb, limits, deadline, workdir, env)
    finally:
        if sandbox is not None:
            from utils.grading.sandbox import cleanup

            cleanup(client.km)


async def _run_cells(
    client: Any,
    nb: Any,
    limits: Limits,
    deadline: float,
    workdir: Path,
    env: dict[str, str],
) -> tuple[list[Event], str]:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    events: list[Event] = []
    log_path = workdir / "kernel-stderr.txt"
    cpu = int(limits.total_timeout + 60)
    with open(log_path, "ab") as log:
        kwargs = dict(
            env=env,
            cwd=str(workdir),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        if os.name == "posix":
            kwargs["preexec_fn"] = _limit_process(limits.memory, cpu)
        async with client.async_setup_kernel(**kwargs):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining < 1:
                    events.append(Event("total", i))
                    break
                client.timeout = max(1, int(min(limits.cell_timeout, remaining)))
                try:
                    await client.async_execute_cell(cell, i)
                except CellTimeoutError:
                    total = remaining <= limits.cell_timeout
                    events.append(Event("total" if total else "timeout", i))
                    await client.km.interrupt_kernel()
                    if total or not await _probe(client, 10):
                        if not total:
                            events.append(Event("unresponsive", i))
                        break
                except DeadKernelError:
                    process = getattr(client.km.provisioner, "process", None)
                    code = process.poll() if process is not None else None
                    events.append(Event("died", i, _signal_name(code)))
                    break
                split = getattr(client, "_nn_split", None)
                role = cell.metadata.get("nn_grade", {}).get("role")
                if split is not None and role == "check":
                    await split.after_check_cell(client, cell)
                if split is not None and role == "results":
                    split.final(cell)
                if _stops_the_run(cell, i, events):
                    break
    try:
        tail = log_path.read_text(errors="replace").splitlines()
    except OSError:
        tail = []
    tail = [line for line in tail if "without encryption" not in line]
    return events, "\n".join(tail[-15:])


def _stops_the_run(cell: Any, index: int, events: list[Event]) -> bool:
    """Whether a student's exercise cell failed in a way that reruns the notebook.

    A timeout and a MemoryError there are handled like a dead kernel (see
    :func:`_restart_for`): the run stops, and the notebook runs again with only the
    cell's definitions. A MemoryError becomes an event here.
    """
    if cell.metadata.get("nn_grade", {}).get("role") != "exercise":
        return False
    if events and events[-1].kind == "timeout" and events[-1].cell == index:
        return True
    err = _error_of(cell)
    if err and err[0] == "MemoryError":
        events.append(Event("memory", index, "MemoryError"))
        return True
    return False


# kinds of event that rerun the notebook when an exercise cell caused them
RESTARTING = ("died", "unresponsive", "timeout", "memory")


def _restart_for(nb: Any, events: list[Event]) -> Event | None:
    """The event that makes the notebook run again, if any.

    A dead or unresponsive kernel anywhere, or a timeout or MemoryError in a
    student's exercise cell: the same mistake then gets the same grade whichever way
    it fails (the exercise gets ``error: ...``; the others are graded with its
    definitions only).
    """
    for event in events:
        if event.kind in ("died", "unresponsive"):
            return event
        role = nb.cells[event.cell].metadata.get("nn_grade", {}).get("role")
        if event.kind in RESTARTING and role == "exercise":
            return event
    return None


# ------------------------------------------------------------------ results
@dataclass
class Grade:
    """One student's row and feedback."""

    student: str
    submission: str
    statuses: dict[str, str]
    texts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # for the feedback file
    seconds: float = 0.0
    summary: list[tuple[str, str]] | None = None  # check.summary() in the kernel
    answers: list[Answer] | None = None  # the written answers; None: not read
    file_name: str = ""  # the feedback file's name, without suffix
    fingerprint: str = ""  # the submission's and the course's (see fingerprint)

    def __post_init__(self) -> None:
        self.file_name = self.file_name or file_name(self.student)

    @property
    def answered(self) -> str:
        """``2 of 3`` written answers; "" when not read or the lab asks none."""
        if not self.answers:
            return ""
        done = sum(a.status == ANSWERED for a in self.answers)
        return f"{done} of {len(self.answers)}"

    @property
    def total(self) -> int:
        return sum(s == PASSED for s in self.statuses.values())


def _heading_before(nb: Any, index: int) -> str:
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def _error_of(cell: Any) -> tuple[str, str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            trace = _ANSI.sub("", "\n".join(out.get("traceback", [])))
            return out.get("ename", "Error"), out.get("evalue", ""), trace
    return None


def _short_error(ename: str, evalue: str) -> str:
    """``SyntaxError (line 3)``, ``MemoryError``, ``NameError: name 'x' is ...``."""
    line = re.search(r"line (\d+)", evalue or "")
    if ename in ("SyntaxError", "IndentationError", "TabError") and line:
        return f"{ename} (line {line.group(1)})"
    first = (evalue or "").splitlines()[0] if evalue else ""
    if not first or ename == "MemoryError":
        return ename
    return f"{ename}: {first[:80]}"


@dataclass
class Trouble:
    """Timeouts and dead kernels of every attempt, attributed to what they hit."""

    groups: dict[int, str] = field(default_factory=dict)  # exercise cell k -> what
    checks: dict[int, str] = field(default_factory=dict)  # lab check cell -> what
    notes: list[str] = field(default_factory=list)
    out_of_time: bool = False

    def add(self, nb: Any, event: Event, lab: LabSpec, matches: list[Matched]) -> None:
        meta = nb.cells[event.cell].metadata.get("nn_grade", {})
        role, what = meta.get("role"), _event_status(event)
        if event.kind == "total":
            self.out_of_time = True
        group = meta.get("group")
        if role == "check":
            group = _group_of_check(lab, matches, meta.get("lab_cell"))
            if group is None:
                self.checks.setdefault(meta.get("lab_cell"), what)
                return
        if role in ("exercise", "stub") or (role == "check" and group is not None):
            self.groups.setdefault(group, what)
        elif role == "other":
            where = _heading_before(nb, event.cell) or "the top"
            self.notes.append(f"{what} in the cell under '{where}'")
        else:
            self.notes.append(f"{what} in the grader's own cell")


def collect(
    lab: LabSpec, nb: Any, nonce: str, trouble: Trouble, matches: list[Matched]
) -> tuple[dict[str, str], dict[str, str], list[str], list[str], list | None]:
    """Statuses, check texts, notes and details from an executed graded notebook.

    An exercise's status is, in this order: the timeout or dead kernel that hit its
    cells, the error its exercise cell raised (as Run All would stop there), a
    missing exercise cell, and otherwise what its check said.
    """
    results: dict[str, dict] = {}
    final: dict | None = None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get(MIME) if isinstance(out, dict) else None
            if not isinstance(data, dict) or data.get("nonce") != nonce:
                continue
            if data.get("kind") == "result" and data.get("name") in lab.exercises:
                results[data["name"]] = data
            elif data.get("kind") == "final":
                final = data
    reasons: dict[str, str] = {}
    notes: list[str] = []
    details: list[str] = []
    group_cells: dict[int, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nn_grade", {})
        if meta.get("role") == "exercise":
            group_cells.setdefault(meta["group"], []).append(i)
    for k, m in enumerate(matches):
        exs = [e for e in m.cell.exercises if e in lab.exercises]
        what = lab.describe(exs) if exs else f"the cell for {', '.join(m.cell.names)}"
        problem = trouble.groups.get(k, "")
        if not problem:
            for i in group_cells.get(k, []):
                err = _error_of(nb.cells[i])
                if err:
                    problem = _short_error(err[0], err[1])
                    details.append(f"{err[0]} in {what}:\n{_trim(err[2])}")
                    break
        if not m.sources:  # match_exercises has said so in the notes
            problem = "missing (no cell defines " + ", ".join(m.missing) + ")"
        elif problem:
            notes.append(f"{problem} in {what}")
        for e in exs:
            if problem:
                reasons[e] = problem
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nn_grade", {})
        role = meta.get("role")
        err = _error_of(cell)
        if role == "check":
            exs = lab.check_cells.get(meta.get("lab_cell"), [])
            problem = trouble.checks.get(meta.get("lab_cell"), "")
            if not problem and err and not all(e in results for e in exs):
                problem = _short_error(err[0], err[1])
                details.append(
                    f"{err[0]} in the check of {lab.describe(exs)}:\n{_trim(err[2])}"
                )
            if problem:
                for e in exs:
                    reasons.setdefault(e, problem)
        elif role in ("other", "setup", "results") and err:
            where = (
                "the grader's own cell"
                if role != "other"
                else f"the cell under '{_heading_before(nb, i) or 'the top'}'"
            )
            notes.append(f"{_short_error(err[0], err[1])} in {where}")
            details.append(f"{err[0]} in {where}:\n{_trim(err[2])}")
    notes += trouble.notes
    statuses: dict[str, str] = {}
    texts: dict[str, str] = {}
    for ex in lab.exercises:
        if ex in results:
            texts[ex] = str(results[ex].get("text", ""))
        if ex in reasons:
            statuses[ex] = f"error: {reasons[ex]}"
        elif ex in results:
            statuses[ex] = str(results[ex].get("status", NOT_RUN))
        elif trouble.out_of_time:
            statuses[ex] = "error: not run (time limit for the submission reached)"
        else:
            statuses[ex] = NOT_RUN
    if trouble.out_of_time:
        notes.append("time limit for the whole submission reached")
    summary = None
    if final is not None:
        summary = [tuple(row) for row in final.get("summary", [])]
        changed = [
            ex
            for ex, status in summary
            if ex in results and results[ex].get("status") != status
        ]
        if changed:
            notes.append(
                "review by hand: the lab's recorded results of "
                f"{', '.join(changed)} changed after their checks ran (graded from "
                "the checks' own outputs)"
            )
    return statuses, texts, notes, details, summary


def _event_status(event: Event) -> str:
    if event.kind == "timeout":
        return "timeout"
    if event.kind == "unresponsive":
        return "timeout (the kernel did not stop)"
    if event.kind == "died":
        return f"kernel died ({event.detail})" if event.detail else "kernel died"
    if event.kind == "memory":
        return event.detail or "MemoryError"
    return "time limit for the submission reached"


def _trim(trace: str, lines: int = 12) -> str:
    parts = trace.strip().splitlines()
    if len(parts) > lines:
        parts = ["..."] + parts[-lines:]
    return "\n".join(parts)


# ------------------------------------------------------------------ one student
@dataclass
class Settings:
    """Everything :func:`grade_submission` needs besides the submission."""

    lab: LabSpec
    out_dir: Path  # feedback folder
    limits: Limits = field(default_factory=Limits)
    mnist_path: str | None = None
    keep_work: bool = False
    sandbox: Any = None  # a utils.grading.sandbox.Sandbox; None: limits only
    split: bool = False  # the checks decide in the grader (utils.grading.split)


_SAFE_CHAR = re.compile(r"[A-Za-z0-9_-]")
MAX_NAME = 120  # characters of an encoded name before it is shortened


def file_name(student: str) -> str:
    """A file and folder name for a student: unique, reversible, safe anywhere.

    Letters, digits, ``_`` and ``-`` stay; every other character (a space, a dot, a
    slash, ``=``, an accent) becomes ``~XX`` per UTF-8 byte, so ``eve smith`` and
    ``eve_smith`` never share a file (``eve~20smith``, ``eve_smith``) and
    :func:`student_of` gives the name back. A very long name is cut and ends in a hash
    of the whole (still unique; the CSV and the feedback's title keep the name).
    """
    out = "".join(
        ch if _SAFE_CHAR.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode())
        for ch in student
    )
    if len(out) > MAX_NAME:
        digest = hashlib.sha256(student.encode()).hexdigest()[:12]
        out = f"{out[:MAX_NAME]}~~{digest}"
    return out or "~"


def student_of(name: str) -> str:
    """The student a :func:`file_name` stands for (a shortened one: its prefix)."""
    raw = bytearray()
    for m in re.finditer(r"~([0-9A-F]{2})|(.)", name.split("~~", 1)[0], re.S):
        raw += bytes([int(m.group(1), 16)]) if m.group(1) else m.group(2).encode()
    return raw.decode("utf-8", errors="replace")


def unique_file_names(students: Sequence[str]) -> dict[str, str]:
    """:func:`file_name` of each student, unique even on a case-blind file system.

    ``Eve`` and ``eve`` are one file on macOS and Windows: the second gets ``~~2``.
    """
    taken: set[str] = set()
    names: dict[str, str] = {}
    for student in sorted(set(students)):
        base = name = file_name(student)
        k = 1
        while name.casefold() in taken:
            k += 1
            name = f"{base}~~{k}"
        taken.add(name.casefold())
        names[student] = name
    return names


def grade_submission(sub: Submission, settings: Settings) -> Grade:
    """Grade one submission; never raises for anything the submission does."""
    lab = settings.lab
    start = time.monotonic()
    shown = str(sub.path) if sub.path else ""
    if sub.error or sub.path is None:
        return _ungraded(sub, shown, sub.error or "no notebook", start)
    read_notes: list[str] = []
    try:
        submitted = read_notebook(sub.path, read_notes)
        matches, notes = match_exercises(lab, submitted)
    except GradeError as exc:
        return _ungraded(sub, shown, str(exc), start)
    answers = written_answers(lab.questions, submitted)
    notes = sub.notes + read_notes + notes + answers_notes(answers)
    work = settings.out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    # a folder of its own, whatever the name: two kernels never share one
    workdir = Path(tempfile.mkdtemp(prefix=f"{sub.file_name}.", dir=work))
    nonce = secrets.token_hex(8)
    env = kernel_env(settings.mnist_path)
    limits = settings.limits
    deadline = time.monotonic() + limits.total_timeout
    skip: set[tuple[str, int]] = set()
    trouble = Trouble()
    kernel_tail = ""
    nb = None
    for _attempt in range(limits.max_restarts + 1):
        split, split_setup = _split_run(lab, nonce) if settings.split else (None, None)
        nb = build_notebook(
            lab,
            matches,
            nonce,
            skip,
            (limits.cell_output, limits.total_output),
            split_setup,
        )
        try:
            events, tail = asyncio.run(
                _run_once(nb, limits, deadline, workdir, env, settings.sandbox, split)
            )
        except Exception as exc:  # noqa: BLE001 - a kernel that never started
            msg = f"the kernel did not start ({type(exc).__name__}: {exc})"
            if limits.memory:
                msg += "; is --memory too small?"
            return _ungraded(sub, shown, msg, start)
        for event in events:
            trouble.add(nb, event, lab, matches)
        fatal = [e for e in [_restart_for(nb, events)] if e is not None]
        if not fatal:
            break
        if fatal[0].kind == "died":
            kernel_tail = tail or kernel_tail
        meta = nb.cells[fatal[0].cell].metadata.get("nn_grade", {})
        role = meta.get("role")
        group = meta.get("group")
        if role == "check":
            group = _group_of_check(lab, matches, meta["lab_cell"])
        if role in ("exercise", "check") and group is not None:
            # first its definitions only (a top-level statement may be the culprit),
            # then without the student's cells at all: the lab's stub stands in
            level = "exercise" if ("defs", group) in skip else "defs"
            skip.add((level, group))
            exs = [e for e in matches[group].cell.exercises if e in lab.exercises]
            trouble.notes.append(
                "the kernel was restarted and the notebook run again "
                + ("with only the definitions of" if level == "defs" else "without")
                + f" the student's cell for {lab.describe(exs)}"
            )
        elif role in ("check", "other"):
            skip.add(("cell", meta["lab_cell"]))
        else:  # the grader's own cells: the limits are too tight to run at all
            return _ungraded(
                sub,
                shown,
                f"the kernel died in the grader's setup ({fatal[0].detail}); is "
                "--memory too small?",
                start,
            )
        if time.monotonic() >= deadline:
            break
    assert nb is not None
    statuses, texts, more_notes, details, summary = collect(
        lab, nb, nonce, trouble, matches
    )
    notes += more_notes + output_notes(nb, lab)
    if kernel_tail:
        details.append("The kernel's last words:\n" + kernel_tail)
    grade = Grade(
        sub.student,
        shown,
        statuses,
        texts,
        list(dict.fromkeys(notes)),
        details,
        time.monotonic() - start,
        summary,
        answers,
        file_name=sub.file_name,
    )
    _write_outputs(grade, settings, nb)
    if not settings.keep_work:
        shutil.rmtree(workdir, ignore_errors=True)
        _remove_empty(workdir.parent)
    return grade


def _split_run(lab: LabSpec, nonce: str) -> tuple[Any, str]:
    """A fresh split-path run for one kernel, and the kernel's setup cell."""
    from utils.grading import split

    prefix = split.new_prefix()
    given = split_given(lab)
    setup = split.kernel_setup(lab.module, prefix, given)
    return split.SplitRun(lab.module, prefix, nonce, MIME, given), setup


def split_given(lab: LabSpec) -> dict[str, str]:
    """The sources of the pieces that ``lab`` hands out, as its split-path kernel
    rebuilds them: those its import cell imports, with what its code reads of a
    module it imports whole (``stage4.Function``)."""
    from utils.grading import split

    code = "\n".join(c.source for c in lab.nb.cells if c.cell_type == "code")
    imports = lab.nb.cells[lab.import_cell].source
    return split.kernel_given(lab.module, imports, code)


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _group_of_check(lab: LabSpec, matches: list[Matched], lab_cell: int) -> int | None:
    exs = lab.check_cells.get(lab_cell, [])
    for k, m in enumerate(matches):
        if any(e in m.cell.exercises for e in exs):
            return k
    return None


def _ungraded(sub: Submission, shown: str, reason: str, start: float) -> Grade:
    return Grade(
        sub.student,
        shown,
        {},
        notes=[f"not graded: {reason}", *sub.notes],
        seconds=time.monotonic() - start,
        file_name=sub.file_name,
    )


# ------------------------------------------------------------------ output
# what a student can do about each reason a submission was not graded (issue 22)
_ADVICE = (
    (
        "holds no notebook",
        "Put the lab's file (the `.md` you worked in, or an `.ipynb`) in your folder "
        "and hand it in again.",
    ),
    (
        "is not a notebook",
        "Hand in the lab as the `.md` file you worked in (or as an `.ipynb` from "
        "Jupyter): one file per student, or a folder holding it.",
    ),
    (
        "cannot be read as a notebook",
        "The file is damaged, or its notebook format was broken by an edit: open it "
        "in Jupyter to see that it opens, save it, and hand that in again. In a `.md`, "
        "keep the lines that came with the lab around each code cell "
        "(```` ```{code-cell} ```` and ```` ``` ````).",
    ),
    (
        "too large",
        "Clear the outputs (Kernel, Restart Kernel and Clear Outputs), save, and hand "
        "in the lab's file alone.",
    ),
    (
        "no code cells",
        "This is not the lab: hand in the lab file you worked in (it has code cells).",
    ),
    (
        "this is a submission of",
        "This is another lab's file: hand in the file of this lab (its name starts "
        "with the lab's number).",
    ),
    (
        "does not look like",
        "No cell defines this lab's exercises: hand in this lab's file, with your code "
        "in its exercise cells (the ones with `# YOUR CODE HERE`), the functions "
        "keeping their names.",
    ),
    (
        "kernel did not start",
        "Nothing was found wrong with your file: the grader could not start Python "
        "for it. Your instructor grades it again; ask them if this note stays.",
    ),
    (
        "the grader's setup",
        "The grader's own cells could not run (its limits, not your code): your "
        "instructor grades it again; ask them if this note stays.",
    ),
    (
        "grader error",
        "This is a fault of the grader, not of your file: your instructor grades it "
        "again; ask them if this note stays.",
    ),
)
NOT_GRADED = "not graded: "


def ungraded_reason(grade: Grade) -> str | None:
    """Why ``grade``'s submission was not graded (None: it was graded)."""
    if grade.statuses:
        return None
    for note in grade.notes:
        if note.startswith(NOT_GRADED):
            return note[len(NOT_GRADED) :]
    return "no notebook"


def ungraded_advice(reason: str) -> str:
    """What a student can do about ``reason`` (see :data:`_ADVICE`)."""
    for words, advice in _ADVICE:
        if words in reason:
            return advice
    return "Fix what the reason says and hand it in again, or ask your instructor."


def _ungraded_markdown(reason: str) -> list[str]:
    """The feedback's section saying why a submission was not graded."""
    return [
        "## Not graded",
        "",
        f"**Why**: {reason}",
        "",
        f"**What to do**: {ungraded_advice(reason)}",
        "",
    ]


def _is_graders_notebook(path: Path) -> bool:
    """Whether ``path`` is an executed notebook the grader wrote (its cells are
    marked ``nn_grade``)."""
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
        cells = nb.get("cells", []) if isinstance(nb, dict) else []
        return bool(cells) and all(
            "nn_grade" in c.get("metadata", {})
            for c in cells
            if c.get("cell_type") == "code"
        )
    except (OSError, ValueError, AttributeError):
        return False


def write_ungraded_feedback(grade: Grade, settings: Settings) -> None:
    """The feedback file of a submission that was not graded: why, and what to do.

    An executed notebook the grader wrote for this student in an earlier run is
    removed (it would stand beside this feedback, stale).
    """
    if ungraded_reason(grade) is None:
        return
    _write_outputs(grade, settings, None)
    old = settings.out_dir / f"{grade.file_name}.ipynb"
    if old.is_file() and _is_graders_notebook(old):
        old.unlink()


def feedback_markdown(grade: Grade, lab: LabSpec) -> str:
    """The feedback file: the table, each check's message, and what else went wrong."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    statuses = _full_statuses(grade, lab)
    lines = [
        f"# {lab.title}: feedback for {grade.student}",
        "",
        f"Submission: `{grade.submission or '(none)'}`, graded {when}: "
        f"**{grade.total} of {len(lab.exercises)} exercises passed**.",
        "",
        "| # | exercise | status |",
        "|---|---|---|",
    ]
    for k, ex in enumerate(lab.exercises, 1):
        lines.append(f"| {k} | `{ex}` | {statuses[ex]} |")
    reason = ungraded_reason(grade)
    if reason is not None:  # no check ran: why, and what to do, instead
        lines += ["", *_ungraded_markdown(reason)]
    else:
        lines += ["", "## What each check said", ""]
    for k, ex in enumerate(lab.exercises if reason is None else [], 1):
        text = grade.texts.get(ex, "")
        if statuses[ex].startswith("error:"):
            said = f"\n\nThe check, run on what your cell defined anyway:\n{text}"
            text = f"{ex}: {statuses[ex]} (see the notes below)" + (
                said if text else ""
            )
        text = text or f"{ex}: {statuses[ex]}"
        lines += [f"### {k}. {ex}", "", "```text", text, "```", ""]
    lines += _answers_markdown(grade, lab)
    if grade.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in grade.notes] + [""]
    if grade.details:
        lines += ["## Errors", ""]
        for detail in grade.details:
            head, _, body = detail.partition("\n")
            lines += [f"{head}", "", "```text", body, "```", ""]
    lines += [
        "## How this was graded",
        "",
        "Your exercise cells (the ones with `# YOUR CODE HERE`) were put into a fresh "
        "copy of the lab and run from the top in a new kernel, with the lab's own "
        "check cells. Only the exercise cells were taken: code in cells you added "
        "was not run, so keep helpers inside the exercise's cell. An error in one "
        "exercise does not stop the others from being graded.",
        "",
    ]
    if lab.questions:
        lines[-1:] = [
            "",
            "Written answers were read from the Markdown under each question (the "
            "paragraphs up to the next question), for your instructor: the checks do "
            "not grade them.",
            "",
        ]
    return "\n".join(lines)


def _answers_markdown(grade: Grade, lab: LabSpec) -> list[str]:
    """The feedback's section with each question and the student's answer."""
    if not lab.questions or grade.answers is None:
        return []
    lines = [
        "## Written answers",
        "",
        f"{grade.answered} answered; read by your instructor, not graded by the "
        "checks.",
        "",
    ]
    for answer in grade.answers:
        q = answer.question
        quoted = "\n>\n".join(
            "\n".join(f"> {line}" for line in para.splitlines())
            for para in q.paragraphs
        )
        lines += [f"### Question {q.number}", "", quoted or "> (no text)", ""]
        if answer.status == ANSWERED:
            found = (
                " (the question was found by its number: its wording differs from "
                "the lab's)"
                if answer.how == "number"
                else ""
            )
            lines += [f"**Answer**{found}:", "", answer.text, ""]
        elif answer.status == UNANSWERED:
            lines += ["**No answer**: the placeholder is still there, or nothing.", ""]
        else:
            lines += [
                "**Not found**: this question is not in the submission (its text and "
                "label were changed or deleted), so its answer could not be told "
                "apart; your instructor reads the notebook by hand.",
                "",
            ]
    return lines


def _full_statuses(grade: Grade, lab: LabSpec) -> dict[str, str]:
    if grade.statuses:
        return grade.statuses
    return {ex: "error: not graded" for ex in lab.exercises}


def _write_outputs(grade: Grade, settings: Settings, nb: Any | None) -> None:
    import nbformat

    settings.out_dir.mkdir(parents=True, exist_ok=True)
    stem = settings.out_dir / grade.file_name
    Path(f"{stem}.md").write_text(
        feedback_markdown(grade, settings.lab), encoding="utf-8"
    )
    if nb is not None:
        with open(f"{stem}.ipynb", "w", encoding="utf-8") as f:
            nbformat.write(nb, f)


def csv_header(lab: LabSpec) -> list[str]:
    return [
        "student",
        "submission",
        *lab.exercises,
        "total",
        "max",
        "answers",
        "seconds",
        "notes",
        "fingerprint",
    ]


def csv_row(grade: Grade, lab: LabSpec) -> list[str]:
    statuses = _full_statuses(grade, lab)
    return [
        grade.student,
        grade.submission,
        *(statuses[ex] for ex in lab.exercises),
        str(grade.total),
        str(len(lab.exercises)),
        grade.answered,
        f"{grade.seconds:.1f}",
        "; ".join(grade.notes),
        grade.fingerprint,
    ]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula.

    As the OWASP CSV-injection guidance says: a cell starting with ``= + - @``, a tab
    or a carriage return gets a leading single quote (``=1+1`` is shown ``'=1+1``);
    every cell is quoted (see :func:`csv_writer`). :func:`csv_value` undoes it.
    """
    value = str(value)
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def csv_value(cell: str) -> str:
    """The value :func:`csv_cell` escaped (for reading the grader's own CSV back)."""
    if cell.startswith("'") and cell[1:].startswith(_FORMULA_START):
        return cell[1:]
    return cell


def csv_writer(stream: Any) -> Any:
    """A CSV writer that quotes every cell (with :func:`csv_cell`, per OWASP)."""
    return csv.writer(stream, quoting=csv.QUOTE_ALL)


def write_csv(path: Path, grades: list[Grade], lab: LabSpec) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(csv_header(lab))
    for grade in sorted(grades, key=lambda g: g.student):
        writer.writerow([csv_cell(c) for c in csv_row(grade, lab)])
    # issue 21: a temporary name, then renamed into place (never a half-written CSV)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------- rows as they finish
def course_version(lab: LabSpec, limits: Limits, mnist_path: str | None) -> str:
    """A hash of what a grade depends on besides the submission.

    The lab, every file of ``utils/`` (the checks, the reference, this grader) and
    the limits: a change to any of them makes ``--resume`` grade everyone again.
    """
    digest = hashlib.sha256()
    digest.update(lab.path.read_bytes())
    for path in sorted((REPO / "utils").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes())
    numbers = [float(v) for v in dataclasses.astuple(limits)]  # 10 == 10.0
    digest.update(repr((numbers, mnist_path)).encode())
    return digest.hexdigest()[:16]


def fingerprint(sub: Submission, version: str) -> str:
    """A hash of a submission (its file's bytes, which file, why) and the course."""
    digest = hashlib.sha256(f"{version}\0{sub.student}\0{sub.error}".encode())
    digest.update("\0".join(sub.notes).encode())
    if sub.path is not None:
        digest.update(str(sub.path.name).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(sub.path.read_bytes())
    return f"{version}-{digest.hexdigest()[:16]}"


def partial_path(csv_path: Path) -> Path:
    """Where rows go while a run is on: ``grades.partial.csv`` beside ``grades.csv``."""
    return csv_path.with_name(f"{csv_path.stem}.partial{csv_path.suffix or '.csv'}")


def _read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV the grader wrote (escaped cells as they are); [] if none."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [row for row in csv.DictReader(f) if row.get("fingerprint")]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def _grade_from_row(row: dict[str, str], lab: LabSpec, sub: Submission) -> Grade:
    """A :class:`Grade` again from a row of an earlier run (for ``--resume``)."""
    notes = csv_value(row.get("notes", ""))
    seconds = csv_value(row.get("seconds", "0"))
    return Grade(
        sub.student,
        csv_value(row.get("submission", "")),
        {ex: csv_value(row.get(ex, NOT_RUN)) for ex in lab.exercises},
        notes=notes.split("; ") if notes else [],
        seconds=float(seconds) if re.fullmatch(r"\d+(\.\d*)?", seconds) else 0.0,
        file_name=sub.file_name,
        fingerprint=row["fingerprint"],
    )


class RowWriter:
    """Rows written as each submission finishes, renamed into place at the end.

    A run writes ``grades.partial.csv`` (one row per finished submission, flushed to
    disk) and at the end the sorted ``grades.csv`` through a temporary file and an
    atomic rename. A run that starts removes an earlier ``grades.csv``, so a grade
    never sits, stale, beside newer feedback; a killed run leaves only the partial
    file, which ``--resume`` reads back.
    """

    def __init__(self, csv_path: Path, lab: LabSpec, resume: bool) -> None:
        self.csv_path, self.lab = csv_path, lab
        self.partial = partial_path(csv_path)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        self.previous: dict[str, dict[str, str]] = {}
        if resume:  # the finished run, then the killed one (newer) over it
            for path in (csv_path, self.partial):
                for row in _read_rows(path):
                    self.previous[csv_value(row["student"])] = row
        csv_path.unlink(missing_ok=True)
        self.partial.unlink(missing_ok=True)
        self.rows: list[list[str]] = []
        self._file = open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv_writer(self._file)
        self._write(csv_header(lab))

    def reusable(self, sub: Submission, print_: str, feedback_dir: Path) -> bool:
        """Whether the earlier row of ``sub`` still holds (``--resume``)."""
        row = self.previous.get(sub.student)
        if row is None or row.get("fingerprint") != print_:
            return False
        graded = not csv_value(row.get("notes", "")).startswith("not graded")
        return not graded or (feedback_dir / f"{sub.file_name}.md").exists()

    def _write(self, cells: list[str]) -> None:
        self._writer.writerow(cells)
        self._file.flush()
        with contextlib.suppress(OSError):
            os.fsync(self._file.fileno())

    def add(self, grade: Grade) -> None:
        cells = [csv_cell(c) for c in csv_row(grade, self.lab)]
        self.rows.append(cells)
        self._write(cells)

    def finish(self) -> None:
        """The sorted CSV in place (atomically); the partial file removed."""
        self._file.close()
        tmp = self.csv_path.with_name(f".{self.csv_path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv_writer(f)
            writer.writerow(csv_header(self.lab))
            for cells in sorted(self.rows, key=lambda c: csv_value(c[0])):
                writer.writerow(cells)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.csv_path)
        self.partial.unlink(missing_ok=True)

    def close(self) -> None:
        self._file.close()


# ------------------------------------------------------------------ all students
@dataclass
class Report:
    """What :func:`grade` did."""

    grades: list[Grade]
    csv_path: Path
    feedback_dir: Path
    seconds: float
    jobs: int
    reused: int = 0  # rows taken from an earlier run (--resume)
    max_rss_growth: int = 0  # bytes the grader's peak memory grew by in the run
    sandbox_note: str = ""  # one line when the kernels ran without a sandbox
    stale: list[str] = field(default_factory=list)  # feedback files removed
    split_note: str = ""  # one line when the checks decided in the kernels

    @property
    def per_submission(self) -> float:
        return self.seconds / max(1, len(self.grades))


_FILE_NAME = re.compile(r"[A-Za-z0-9_~-]+")  # what file_name and unique_file_names give


def _graders_feedback(path: Path, lab: LabSpec) -> bool:
    """Whether ``path`` is a feedback file the grader wrote for ``lab``: named by
    :func:`file_name`, and a feedback page of this lab (its title line) or an
    executed notebook of it (the grader's cells, with the lab's import cell)."""
    if not (path.is_file() and _FILE_NAME.fullmatch(path.stem)):
        return False
    if path.suffix == ".md":
        try:
            with open(path, encoding="utf-8") as f:
                first = f.readline()
        except (OSError, UnicodeDecodeError):
            return False
        return first.startswith(f"# {lab.title}: feedback for ")
    if path.suffix == ".ipynb" and _is_graders_notebook(path):
        imports = lab.nb.cells[lab.import_cell].source
        with contextlib.suppress(OSError, ValueError):
            nb = json.loads(path.read_text(encoding="utf-8"))
            return any(
                "".join(c.get("source", "")) == imports for c in nb.get("cells", [])
            )
    return False


def remove_stale_feedback(
    feedback_dir: Path, lab: LabSpec, subs: Sequence[Submission]
) -> list[str]:
    """Remove the feedback of students no longer in the submissions folder.

    Only files the grader wrote for this lab go (see :func:`_graders_feedback`):
    anything else in the folder (a person's notes, another lab's feedback, a file
    named otherwise) stays. Call it with every submission, not one shard's.

    Returns:
        The names of the files removed, sorted.
    """
    if not feedback_dir.is_dir():
        return []
    current = {sub.file_name for sub in subs}
    removed = []
    for path in sorted(feedback_dir.iterdir()):
        if path.stem in current or path.suffix not in (".md", ".ipynb"):
            continue
        if _graders_feedback(path, lab):
            path.unlink()
            removed.append(path.name)
    return removed


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def grade(
    lab: str | Path,
    submissions: str | Path,
    out: str | Path = "grades.csv",
    *,
    feedback: str | Path | None = None,
    jobs: int | None = None,
    shard: tuple[int, int] | None = None,
    limits: Limits | None = None,
    mnist_path: str | None = None,
    progress: bool = True,
    labs_dir: Path = LABS_DIR,
    resume: bool = False,
) -> Report:
    """Grade every submission in a folder; write the CSV and the feedback files.

    Args:
        lab: ``1``, ``01``, ``01-two-layer-net`` or a path to a lab file.
        submissions: the folder of submissions (never written to).
        out: the CSV to write.
        feedback: the folder for feedback files (default: ``feedback/`` beside
            the CSV).
        jobs: submissions graded in parallel (default: the number of CPUs).
        shard: ``(k, n)``: grade only shard ``k`` of ``n`` (see :func:`select_shard`).
        limits: time and memory limits per submission.
        mnist_path: an ``mnist.npz`` for the labs' MNIST cells (else ``$MNIST_PATH``;
            without either they fall back to the small digits set).
        progress: show a progress bar over students.
        labs_dir: where the pristine labs are.
        resume: keep the rows of an earlier (or killed) run whose submission and
            course version are unchanged (see :class:`RowWriter`).

    Returns:
        A :class:`Report` with every student's :class:`Grade`.

    Raises:
        GradeError: unknown lab, missing or empty folder, output inside the
            submissions folder, bad options.
    """
    start = time.monotonic()
    spec = load_lab(lab, labs_dir)
    folder = Path(submissions)
    csv_path = Path(out)
    feedback_dir = Path(feedback) if feedback else csv_path.parent / "feedback"
    if folder.is_dir() and (_inside(csv_path, folder) or _inside(feedback_dir, folder)):
        raise GradeError(
            f"the output ({csv_path}, {feedback_dir}) must be outside the submissions "
            f"folder {folder}: submissions are never written to."
        )
    subs = find_submissions(folder, spec)
    # issue 22: no feedback of a student who left stays beside the new feedback
    stale = remove_stale_feedback(feedback_dir, spec, subs)
    if shard is not None:
        subs = select_shard(subs, shard)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(subs)))
    from utils.grading import split  # issue 21: the checks decide here
    from utils.grading.sandbox import detect  # issue 21: confinement

    split_path = split.enabled(spec.module)
    hidden = [folder, feedback_dir, csv_path.parent]
    if split_path:  # no check code and no reference in the kernel
        hidden += [REPO / "utils" / "check", REPO / "utils" / "reference"]
    sandbox, sandbox_note = detect(hidden)
    settings = Settings(
        spec,
        feedback_dir,
        limits or Limits(),
        mnist_path or os.environ.get("MNIST_PATH"),
        sandbox=sandbox,
        split=split_path,
    )
    feedback_dir.mkdir(parents=True, exist_ok=True)
    rss = _max_rss()
    version = course_version(spec, settings.limits, settings.mnist_path)
    rows = RowWriter(csv_path, spec, resume)
    grades: list[Grade] = []
    prints = {s.student: fingerprint(s, version) for s in subs}
    todo = []
    for sub in subs:
        if rows.reusable(sub, prints[sub.student], feedback_dir):
            grades.append(_grade_from_row(rows.previous[sub.student], spec, sub))
            rows.add(grades[-1])
        else:
            todo.append(sub)
    reused = len(grades)
    jobs = max(1, min(jobs, len(todo) or 1))
    try:
        _grade_all(todo, settings, jobs, progress, start, grades, rows, prints)
    finally:
        rows.close()
    rows.finish()
    grades.sort(key=lambda g: g.student)
    return Report(
        grades,
        csv_path,
        feedback_dir,
        time.monotonic() - start,
        jobs,
        reused,
        max(0, _max_rss() - rss),
        sandbox_note,
        stale,
        "" if split_path else split.in_kernel_note(spec.module),
    )


def _max_rss() -> int:
    """The grader's peak resident memory so far, in bytes (0 where unknown)."""
    if resource is None:
        return 0
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _grade_all(
    subs: list[Submission],
    settings: Settings,
    jobs: int,
    progress: bool,
    start: float,
    grades: list[Grade],
    rows: RowWriter,
    prints: dict[str, str],
) -> None:
    """Grade ``subs`` in parallel; each row is written as its submission finishes."""
    from tqdm.auto import tqdm

    spec = settings.lab
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_submission, s, settings): s for s in subs}
        bar = tqdm(
            total=len(futures),
            unit="student",
            desc=spec.path.stem,
            disable=not progress,
        )
        for future in as_completed(futures):
            sub = futures[future]
            try:
                grades.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a grader bug: one row, go on
                grades.append(
                    _ungraded(sub, str(sub.path or ""), f"grader error: {exc!r}", start)
                )
            grades[-1].fingerprint = prints[sub.student]
            write_ungraded_feedback(grades[-1], settings)  # issue 22: why, what to do
            rows.add(grades[-1])
            bar.update(1)
        bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2 for a usage error)."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.grade",
        description="Grade a folder of submitted labs with the labs' own checks.",
    )
    parser.add_argument("lab", help="1, 01, 01-two-layer-net, or a path to a lab file")
    parser.add_argument("submissions", help="one .md/.ipynb or folder per student")
    parser.add_argument("--out", default="grades.csv", help="the CSV to write")
    parser.add_argument(
        "--feedback", default=None, help="feedback folder (default: beside --out)"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="in parallel (default: CPUs)"
    )
    parser.add_argument("--shard", default=None, help="K/N: grade only shard K of N")
    parser.add_argument(
        "--cell-timeout", type=float, default=Limits.cell_timeout, help="seconds"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=Limits.total_timeout,
        help="seconds per submission, all cells and restarts together",
    )
    parser.add_argument(
        "--memory", default="4G", help="address-space limit of each kernel; 0: none"
    )
    parser.add_argument("--mnist", default=None, help="path of mnist.npz")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of an earlier or killed run (same file, same course)",
    )
    args = parser.parse_args(argv)
    try:
        limits = Limits(
            cell_timeout=args.cell_timeout,
            total_timeout=args.timeout,
            memory=parse_size(args.memory),
        )
        shard = parse_shard(args.shard) if args.shard else None
        if args.jobs is not None and args.jobs < 1:
            raise GradeError("--jobs must be at least 1.")
        report = grade(
            args.lab,
            args.submissions,
            args.out,
            feedback=args.feedback,
            jobs=args.jobs,
            shard=shard,
            limits=limits,
            mnist_path=args.mnist,
            progress=not args.quiet,
            resume=args.resume,
        )
    except GradeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.sandbox_note:
        print(report.sandbox_note, file=sys.stderr)
    if report.stale:
        print(
            f"removed {len(report.stale)} feedback file(s) of students no longer in "
            f"{args.submissions}: {', '.join(report.stale)}",
            file=sys.stderr,
        )
    if report.split_note:
        print(report.split_note, file=sys.stderr)
    n = len(report.grades)
    print(
        f"graded {n} submission{'s' * (n != 1)} in {report.seconds:.1f} s "
        f"({report.per_submission:.1f} s per submission, {report.jobs} "
        f"job{'s' * (report.jobs != 1)}): "
        f"{report.csv_path}, feedback in {report.feedback_dir}/"
        + (f" ({report.reused} kept from the earlier run)" if report.reused else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
