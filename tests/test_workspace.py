"""A student's work is never lost: the workspace, `make labs`, `make clean`, updates.

The unit tests drive :func:`utils.workspace.prepare` on temporary folders. The last
test plays a student in a temporary copy of the repository (the files git would
commit; the real tree is never touched) and runs the real `make` targets there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from utils import labgen, workspace

ROOT = Path(__file__).resolve().parent.parent

SOLUTION = """---
jupytext:
  text_representation:
    format_name: myst
---

# Lab {n}

```{{code-cell}} ipython3
def relu(z):
    # BEGIN SOLUTION
    return np.maximum(z, 0)
    # END SOLUTION
```
"""


def _course(tmp_path: Path, extra: str = "") -> Path:
    """Write labs/ for two solutions (``extra`` appended to each) and return it."""
    src, labs = tmp_path / "solutions", tmp_path / "labs"
    src.mkdir(exist_ok=True)
    for n in (1, 2):
        (src / f"0{n}-lab.md").write_text(SOLUTION.format(n=n) + extra)
    labgen.generate(src, labs)
    return labs


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the workspace's record, by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != workspace.STATE
    }


def _solve(path: Path) -> None:
    text = path.read_text()
    assert "# YOUR CODE HERE" in text
    path.write_text(text.replace("# YOUR CODE HERE", "# my answer", 1))


def test_first_run_copies_every_lab_with_a_note_for_students(tmp_path):
    labs = _course(tmp_path)
    work = tmp_path / "work"
    report = workspace.prepare(labs, work)
    assert report.copied == ["01-lab.md", "02-lab.md"]
    mine = (work / "01-lab.md").read_text()
    assert mine == workspace.student_copy((labs / "01-lab.md").read_text(), "01-lab.md")
    assert "Your copy of the lab 01-lab.md" in mine
    assert "edit that file" not in mine  # the note for instructors is gone
    version = labgen.lab_version((labs / "01-lab.md").read_text())
    assert f"Course version {version}." in mine
    again = workspace.prepare(labs, work)
    assert again.copied == [] and again.current == ["01-lab.md", "02-lab.md"]
    assert "All 2 labs are of the current version." in "\n".join(again.lines())


def test_a_started_lab_is_never_overwritten_the_new_one_goes_beside_it(tmp_path):
    labs = _course(tmp_path)
    work = tmp_path / "work"
    workspace.prepare(labs, work)
    _solve(work / "01-lab.md")
    (work / "01-mine.md").write_text("my own notebook\n")
    (work / "02-lab.ipynb").write_text('{"cells": []}')  # 02 is paired: leave it
    before = _files(work)

    labs = _course(tmp_path, extra="\nA correction.\n")
    report = workspace.prepare(labs, work)
    assert set(report.offered) == {"01-lab.md", "02-lab.md"}
    assert report.offered["01-lab.md"] == work / "01-lab.new.md"
    after = _files(work)
    assert {k: after[k] for k in before} == before
    assert workspace.is_offered(report.offered["01-lab.md"])
    new = (work / "01-lab.new.md").read_text()
    assert "A correction." in new and "# YOUR CODE HERE" in new
    text = "\n".join(report.lines())
    assert "01-lab.md: the course has a newer version" in text
    assert "01-lab.new.md" in text and "Yours is unchanged" in text

    # the next run writes nothing and reminds the student
    report = workspace.prepare(labs, work)
    assert (
        report.offered == {} and report.waiting["01-lab.md"] == work / "01-lab.new.md"
    )
    assert _files(work) == after

    # a newer version replaces an offered file left unchanged...
    labs = _course(tmp_path, extra="\nA second correction.\n")
    workspace.prepare(labs, work)
    assert "A second correction." in (work / "01-lab.new.md").read_text()
    # ...but not one the student edited: that one stays, the next goes beside it
    (work / "01-lab.new.md").write_text("merging by hand\n")
    labs = _course(tmp_path, extra="\nA third correction.\n")
    report = workspace.prepare(labs, work)
    assert (work / "01-lab.new.md").read_text() == "merging by hand\n"
    assert report.offered["01-lab.md"] == work / "01-lab.new-2.md"
    assert "A third correction." in (work / "01-lab.new-2.md").read_text()
    assert _files(work)["01-lab.md"] == before["01-lab.md"]


@pytest.mark.parametrize(
    ("name", "offered"),
    [
        ("01-lab.new.md", True),
        ("01-lab.new-2.md", True),
        ("01-lab.new.ipynb", True),
        ("01-lab.md", False),
        ("01-lab.ipynb", False),
        ("01-renewal.md", False),
        ("01-lab.newer.md", False),
    ],
)
def test_offered_files_are_told_apart_from_the_students(name, offered):
    assert workspace.is_offered(Path(name)) is offered


def test_an_unchanged_copy_is_updated_in_place(tmp_path):
    labs = _course(tmp_path)
    work = tmp_path / "work"
    workspace.prepare(labs, work)
    labs = _course(tmp_path, extra="\nA correction.\n")
    report = workspace.prepare(labs, work)
    assert report.updated == ["01-lab.md", "02-lab.md"] and report.offered == {}
    assert "A correction." in (work / "01-lab.md").read_text()
    assert not list(work.glob("*.new*.md"))
    assert "you had not changed it" in "\n".join(report.lines())


def test_a_deleted_copy_comes_back_and_a_lost_record_loses_nothing(tmp_path):
    labs = _course(tmp_path)
    work = tmp_path / "work"
    workspace.prepare(labs, work)
    (work / "02-lab.md").unlink()
    _solve(work / "01-lab.md")
    mine = (work / "01-lab.md").read_bytes()
    (work / workspace.STATE).write_text("{not json")
    report = workspace.prepare(labs, work)
    assert report.copied == ["02-lab.md"]
    assert (work / "01-lab.md").read_bytes() == mine
    # without a record, a copy that differs is treated as started
    assert report.offered == {"01-lab.md": work / "01-lab.new.md"}
    assert json.loads((work / workspace.STATE).read_text())["01-lab.md"]["version"]


def test_main_reports_a_missing_labs_folder(tmp_path, capsys):
    assert workspace.main(["--labs", str(tmp_path), "--work", str(tmp_path / "w")]) == 2
    assert "run `make labs` first" in capsys.readouterr().err


def test_clean_removes_generated_notebooks_only(tmp_path, capsys):
    plain = tmp_path / "a.ipynb"
    plain.write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": []}]}))
    saved = tmp_path / "b.ipynb"
    saved.write_text(
        json.dumps({"cells": [{"cell_type": "code", "outputs": [{"text": "42"}]}]})
    )
    broken = tmp_path / "c.ipynb"
    broken.write_text("{")
    other = tmp_path / "d.md"
    other.write_text("x")
    args = [str(p) for p in (plain, saved, broken, other, tmp_path / "missing.ipynb")]
    assert workspace.main(["--clean", *args]) == 0
    assert not plain.exists() and saved.exists() and broken.exists() and other.exists()
    out = capsys.readouterr().out
    assert f"kept {saved}: it has outputs" in out


# ---------------------------------------------------------------------------
# the student, end to end, with the real make targets in a copy of the repository


def _copy_repository(dst: Path) -> None:
    """Copy the files a clone would have (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)


def _make(repo: Path, *args: str, path: str | None = None):
    venv = Path(sys.prefix)
    env = {**os.environ, "PATH": path or os.environ.get("PATH", "")}
    env.pop("MAKEFLAGS", None)
    return subprocess.run(
        # the repository's own .venv, not reinstalled: -o marks its stamp up to date
        [
            "make",
            "--no-print-directory",
            f"VENV={venv}",
            "-o",
            f"{venv}/.installed-stamp",
        ]
        + list(args),
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


needs_tools = pytest.mark.skipif(
    shutil.which("make") is None
    or shutil.which("git") is None
    or not (ROOT / ".git").exists()
    or not (Path(sys.prefix) / "bin" / "python").exists(),
    reason="needs make, git, a git checkout and a virtual environment",
)


@needs_tools
def test_a_student_never_loses_work(tmp_path):
    repo = tmp_path / "course"
    _copy_repository(repo)
    labs = sorted(p.name for p in (repo / "labs").glob("*.md"))
    assert len(labs) >= 3
    first, second, third = labs[:3]
    work = repo / "labs" / "my-work"

    # make lab's preparation step copies every lab, once
    run = _make(repo, "lab-prepare")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in work.glob("*.md")) == labs
    assert f"{first}: copied into your workspace" in run.stdout

    # the student solves an exercise, adds files of their own, saves a notebook
    _solve(work / first)
    (work / "my-notes.md").write_text("what I learnt\n")
    (work / "data").mkdir()
    (work / "data" / "points.csv").write_text("1,2\n")
    saved = {"cells": [{"cell_type": "code", "source": "1+1", "outputs": [{"t": 2}]}]}
    (work / first.replace(".md", ".ipynb")).write_text(json.dumps(saved))
    # old habits: a file of their own in labs/, and a lab edited in place
    (repo / "labs" / "01-mine.md").write_text("my answers\n")
    _solve(repo / "labs" / third)
    (repo / "labs" / first.replace(".md", ".ipynb")).write_text(json.dumps(saved))
    theirs = _files(work)

    # make labs refuses, naming the files, and changes nothing
    in_labs = {n: (repo / "labs" / n).read_bytes() for n in ("01-mine.md", third)}
    run = _make(repo, "labs")
    assert run.returncode != 0
    assert "labs/01-mine.md was not written by `make labs`" in run.stderr
    assert f"labs/{third} was changed after `make labs` wrote it" in run.stderr
    assert {n: (repo / "labs" / n).read_bytes() for n in in_labs} == in_labs
    # the student follows the advice: their file into the workspace, the edit dropped
    (repo / "labs" / "01-mine.md").rename(work / "01-mine.md")
    (repo / "labs" / third).unlink()
    theirs["01-mine.md"] = b"my answers\n"
    run = _make(repo, "labs")
    assert run.returncode == 0, run.stderr
    assert _files(work) == theirs

    # make clean removes what the course generates, by its paths, and nothing else
    generated = [
        repo / "book" / "_build" / "html" / "index.html",
        repo / "solutions" / first.replace(".md", ".ipynb"),
        repo / "utils" / "__pycache__" / "x.pyc",
    ]
    for path in generated:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": []}]}))
    run = _make(repo, "clean")
    assert run.returncode == 0, run.stderr
    assert not any(path.exists() for path in generated)
    assert (repo / "labs" / first.replace(".md", ".ipynb")).exists()  # has outputs
    assert "it has outputs" in run.stdout
    assert _files(work) == theirs

    # the course corrects two labs; the student started one of them, and never
    # changed their copy of the other (which is not their work, so it may be updated)
    untouched = theirs.pop(second)
    assert untouched == workspace.student_copy(
        (repo / "labs" / second).read_text(), second
    ).encode("utf-8")
    for name in (first, second):
        solution = repo / "solutions" / name
        solution.write_text(solution.read_text() + "\nA correction from the course.\n")
    run = _make(repo, "labs")
    assert run.returncode == 0, run.stderr
    run = _make(repo, "lab-prepare")
    assert run.returncode == 0, run.stderr
    new = work / first.replace(".md", ".new.md")
    assert f"{first}: the course has a newer version" in run.stdout
    assert new.name in run.stdout
    assert f"{second}: updated to the newer version (you had not changed it)" in (
        run.stdout
    )
    lab = (repo / "labs" / first).read_text()
    assert new.read_text() == workspace.student_copy(lab, first)
    assert "A correction from the course." in new.read_text()
    assert "A correction from the course." in (work / second).read_text()
    after = _files(work)
    assert {k: after[k] for k in theirs} == theirs  # every student file, byte for byte

    # running it again writes nothing new and reminds them
    run = _make(repo, "lab-prepare")
    assert run.returncode == 0, run.stderr
    assert "still waiting beside yours" in run.stdout
    assert _files(work) == after


@needs_tools
@pytest.mark.parametrize(("uid", "flag"), [("0", True), ("1000", False)])
def test_make_lab_passes_allow_root_only_as_root(tmp_path, uid, flag):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (fake / "id").chmod(0o755)
    run = _make(ROOT, "-n", "lab", path=f"{fake}:{os.environ.get('PATH', '')}")
    assert run.returncode == 0, run.stderr
    jupyter = [ln for ln in run.stdout.splitlines() if "jupyter lab" in ln]
    assert jupyter and ("--allow-root" in jupyter[0]) is flag
    assert ("Running as root" in run.stdout) is flag
    assert "--ServerApp.root_dir=labs/my-work" in jupyter[0]


def test_the_grader_takes_the_students_own_file_from_a_workspace(tmp_path):
    """A student's workspace, handed in as is, is graded from their copy of the lab."""
    grade = pytest.importorskip("utils.grade")
    labs, work = tmp_path / "labs", tmp_path / "submissions" / "alice"
    labs.mkdir()
    lab = sorted((ROOT / "labs").glob("01-*.md"))[0]
    shutil.copy2(lab, labs / lab.name)
    workspace.prepare(labs, work)
    _solve(work / lab.name)
    (labs / lab.name).write_text(lab.read_text() + "\nA correction.\n")
    offered = workspace.prepare(labs, work).offered[lab.name]
    os.utime(offered, (2e9, 2e9))  # the offered file is the newest in the folder
    spec = grade.load_lab(lab.stem, ROOT / "labs")
    [sub] = grade.find_submissions(tmp_path / "submissions", spec)
    assert sub.student == "alice" and sub.path == work / lab.name
    matches, _ = grade.match_exercises(spec, grade.read_notebook(sub.path))
    assert all(m.sources and not m.missing for m in matches)
