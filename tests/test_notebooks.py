"""The notebooks themselves: well-formed sources, and the untouched labs.

* Every ``.md`` notebook is a MyST jupytext notebook with no stored outputs, and no
  ``.ipynb`` is committed.
* Every lab, executed untouched, reports "not implemented yet" from every check cell,
  raises nothing but the stubs' ``NotImplementedError`` elsewhere, and checks every
  exercise of its lab. (The solutions are executed by ``make nbval`` in strict mode,
  where any check that does not pass raises, so a broken solution fails CI.)
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    p for d in ("book", "solutions", "labs") for p in (ROOT / d).glob("*.md")
)
NOTEBOOKS = [p for p in NOTEBOOKS if p.name != "intro.md"]
LABS = sorted((ROOT / "labs").glob("*.md"))
CHECK_IMPORT = re.compile(r"from utils\.check import (lab\d+) as check")


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


@pytest.mark.notebooks
@pytest.mark.parametrize("path", LABS, ids=_id)
def test_untouched_lab_says_not_implemented_yet(path, monkeypatch):
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    monkeypatch.setenv("MPLBACKEND", "agg")
    text = path.read_text(encoding="utf-8")
    match = CHECK_IMPORT.search(text)
    assert match, "a lab imports its checks: from utils.check import labN as check"
    exercises = importlib.import_module(f"utils.check.{match.group(1)}").LAB.exercises

    nb = jupytext.reads(text, fmt="md:myst")
    nb = nbformat.from_dict(nb)
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
            is_check = _is_check_cell(cell.source)
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                assert not is_check, f"check cell {index} raised: {exc}"
                assert exc.ename == "NotImplementedError", (
                    f"cell {index} raised {exc.ename}, not a stub's "
                    f"NotImplementedError:\n{cell.source}\n{exc}"
                )
                continue
            if not is_check:
                continue
            out = _text(cell.outputs)
            if "check.summary()" in cell.source:
                summary_seen = True
                assert f"0 of {len(exercises)} exercises passed" in out, out
                continue
            assert "not implemented yet" in out, f"cell {index}:\n{cell.source}\n{out}"
            assert "passed" not in out.replace("0 of", ""), out
            checked.update(re.findall(r"check\.(\w+)\(", cell.source))
    assert summary_seen, "the lab should end with check.summary()"
    assert set(exercises) <= checked, f"never checked: {set(exercises) - checked}"
