"""The notebooks themselves: well-formed sources, and the untouched labs.

* Every ``.md`` notebook is a MyST jupytext notebook with no stored outputs, and no
  ``.ipynb`` is committed.
* Every lab, executed untouched with "Run All" semantics (stop at the first error),
  reaches its summary: every check cell reports "not implemented yet", every demo or
  training cell that needs exercises skips with one "waiting for" line, and no cell
  raises. (The solutions are executed by ``make nbval`` in strict mode, where any
  check that does not pass raises, so a broken solution fails CI.)
* Every lab's check functions, its ``LAB.exercises`` and the check cells of its
  solution and its lab name the same exercises, so that none is silently left out
  of the summary and of the catalogue tests.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import types
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from utils.check.core import Lab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    p for d in ("book", "solutions", "labs") for p in (ROOT / d).glob("*.md")
)
NOTEBOOKS = [p for p in NOTEBOOKS if p.name != "intro.md"]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.md"))
LABS = [ROOT / "labs" / p.name for p in SOLUTIONS]  # every lab, 4 and later included
CHECK_IMPORT = re.compile(r"from utils\.check import (lab\d+) as check")
CHECK_CALL = re.compile(r"^check\.(\w+)\(", re.MULTILINE)
LAB_HELPERS = {"summary", "reference", "ready", "results_as_dict"}


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_is_myst_with_no_outputs(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\njupytext:"), "missing the jupytext front matter"
    nb = jupytext.reads(text, fmt="md:myst")
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code cells"
    assert all(not c.get("outputs") for c in code)
    headings = [
        ln
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for ln in cell.source.splitlines()
        if ln.startswith("# ")
    ]
    assert len(headings) == 1, f"one top-level title per page, found {headings}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_code_lines_fit_in_88_columns(path):
    nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt="md:myst")
    long = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > 88
    ]
    assert not long, f"code lines over 88 characters: {long}"


def test_no_ipynb_is_committed():
    tracked = subprocess.run(
        ["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True
    )
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert tracked.stdout.strip() == "", "commit the .md source, never the .ipynb"


def _is_check_cell(source: str) -> bool:
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.startswith("#")]
    return bool(lines) and all(ln.startswith("check.") for ln in lines)


def _text(outputs) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def _check_module(text: str):
    match = CHECK_IMPORT.search(text)
    assert match, "a lab imports its checks: from utils.check import labN as check"
    return importlib.import_module(f"utils.check.{match.group(1)}")


@pytest.mark.notebooks
@pytest.mark.parametrize("path", LABS, ids=_id)
def test_untouched_lab_runs_all_the_way_to_the_summary(path, monkeypatch):
    assert path.exists(), f"{_id(path)} is missing: run `make labs`"
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    monkeypatch.setenv("MPLBACKEND", "agg")
    text = path.read_text(encoding="utf-8")
    exercises = _check_module(text).LAB.exercises

    nb = nbformat.from_dict(jupytext.reads(text, fmt="md:myst"))
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    checked: set[str] = set()
    summary_seen = False
    with client.setup_kernel(env=dict(os.environ)):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:  # Run All would stop here
                pytest.fail(
                    f"Run All stops at cell {index}, which raised {exc.ename} in the "
                    f"untouched lab (guard it with `if check.ready(...):`):\n"
                    f"{cell.source}\n{exc}"
                )
            out = _text(cell.outputs)
            if cell.source.startswith("if check.ready("):
                assert "⏳ waiting for:" in out and "skipping this cell" in out, out
                continue
            if not _is_check_cell(cell.source):
                continue
            if "check.summary()" in cell.source:
                summary_seen = True
                assert f"0 of {len(exercises)} exercises passed" in out, out
                continue
            assert "not implemented yet" in out, f"cell {index}:\n{cell.source}\n{out}"
            assert "passed" not in out.replace("0 of", ""), out
            checked.update(CHECK_CALL.findall(cell.source))
    assert summary_seen, "Run All should reach the last cell, check.summary()"
    assert set(exercises) <= checked, f"never checked: {set(exercises) - checked}"


def exercise_list_problems(module, notebooks: dict[str, str]) -> list[str]:
    """Where a lab's check functions, ``LAB.exercises`` and check cells disagree.

    Args:
        module: the lab's check module (``utils.check.labN``).
        notebooks: name -> MyST text of the notebooks whose check cells to compare
            (the solution and the generated lab).

    Returns:
        One sentence per disagreement; empty when all agree, in the same order.
    """
    functions = {
        name
        for name, value in vars(module).items()
        if isinstance(value, types.FunctionType)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    } - LAB_HELPERS
    exercises = list(module.LAB.exercises)
    problems = []
    if len(set(exercises)) != len(exercises):
        problems.append(f"repeated exercises: {exercises}")
    if functions != set(exercises):
        problems.append(
            f"{module.__name__}: check functions without an entry in LAB.exercises: "
            f"{sorted(functions - set(exercises))}; entries without a check "
            f"function: {sorted(set(exercises) - functions)}"
        )
    for name, text in notebooks.items():
        nb = jupytext.reads(text, fmt="md:myst")
        cells = [
            ex
            for cell in nb.cells
            if cell.cell_type == "code" and _is_check_cell(cell.source)
            for ex in CHECK_CALL.findall(cell.source)
            if ex not in LAB_HELPERS
        ]
        if set(cells) != set(exercises):
            problems.append(
                f"{name}: exercises without a check cell: "
                f"{sorted(set(exercises) - set(cells))}; check cells of no exercise: "
                f"{sorted(set(cells) - set(exercises))}"
            )
        elif list(dict.fromkeys(cells)) != exercises:
            problems.append(
                f"{name}: the check cells run in the order "
                f"{list(dict.fromkeys(cells))}, but LAB.exercises (the summary's "
                f"order) is {exercises}"
            )
    return problems


@pytest.mark.parametrize("path", SOLUTIONS, ids=_id)
def test_checks_exercises_and_check_cells_agree(path):
    """A check missing from LAB.exercises would be left out of the summary and of the
    catalogue tests, and a check cell missing from the lab would never be run."""
    text = path.read_text(encoding="utf-8")
    notebooks = {_id(path): text}
    lab = ROOT / "labs" / path.name
    if lab.exists():
        notebooks[_id(lab)] = lab.read_text(encoding="utf-8")
    assert exercise_list_problems(_check_module(text), notebooks) == []


def test_the_exercise_list_test_fails_on_a_missing_entry():
    from utils.check import lab1

    text = (ROOT / "solutions" / "01-two-layer-net.md").read_text(encoding="utf-8")
    fake = types.ModuleType("fake_lab")
    for exercise in lab1.LAB.exercises:

        def check_function(student):
            return student

        check_function.__module__ = fake.__name__
        setattr(fake, exercise, check_function)
    fake.LAB = Lab("fake", [ex for ex in lab1.LAB.exercises if ex != "softmax"])
    problems = exercise_list_problems(fake, {"solution": text})
    assert any("without an entry in LAB.exercises: ['softmax']" in p for p in problems)
    assert any("check cells of no exercise: ['softmax']" in p for p in problems)
    fake.LAB = Lab("fake", lab1.LAB.exercises)
    assert exercise_list_problems(fake, {"solution": text}) == []


@pytest.mark.notebooks
@pytest.mark.parametrize("path", LABS, ids=_id)
def test_lab_done_with_the_reference_runs_and_says_so(path, monkeypatch):
    """A stuck student can go on: the untouched lab, with `X = check.reference(...)`
    before every check cell, runs every demo and training cell to the summary, which
    lists those exercises as "used the reference", never as passed."""
    assert path.exists(), f"{_id(path)} is missing: run `make labs`"
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    monkeypatch.delenv("MNIST_PATH", raising=False)  # the small digits: quick
    monkeypatch.setenv("NN_DATA_DIR", str(ROOT / ".no-such-cache"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    text = path.read_text(encoding="utf-8")
    lab = _check_module(text).LAB
    nb = nbformat.from_dict(jupytext.reads(text, fmt="md:myst"))
    cells = []
    for cell in nb.cells:
        call = re.match(r"check\.(\w+)\((\w+)", cell.source)
        if cell.cell_type == "code" and call and call.group(1) in lab.references:
            exercise, name = call.groups()
            source = f'{name} = check.reference("{exercise}")'
            cells.append(nbformat.v4.new_code_cell(source))
        cells.append(cell)
    nb.cells = cells
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    with client.setup_kernel(env=dict(os.environ)):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                pytest.fail(f"cell {index} raised {exc.ename}:\n{cell.source}\n{exc}")
            out = _text(cell.outputs)
            assert "waiting for" not in out, f"cell {index} skipped:\n{out}"
    summary = next(
        _text(c.outputs) for c in nb.cells if c.source.strip() == "check.summary()"
    )
    used = len(lab.exercises)  # integration checks given reference pieces too
    assert f"0 of {used} exercises passed, {used} used the reference" in summary, (
        summary
    )
