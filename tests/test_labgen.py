"""The lab generator: stubs, markers, and labs/ kept in sync with solutions/."""

from __future__ import annotations

from pathlib import Path

import pytest

from utils import labgen

ROOT = Path(__file__).resolve().parent.parent

SOLUTION = '''---
jupytext:
  text_representation:
    format_name: myst
---

# A lab

```{code-cell} ipython3
def relu(z):
    """Element-wise max(z, 0)."""
    # a comment above the marker stays
    # BEGIN SOLUTION
    return np.maximum(z, 0)
    # END SOLUTION


class Layer:
    def forward(self, x):
        # BEGIN SOLUTION
        self.x = x
        return x
        # END SOLUTION
```

```{code-cell} ipython3
# BEGIN SOLUTION
lr = 0.1
# END SOLUTION
check.relu(relu)
```
'''


def test_regions_become_stubs_and_the_rest_stays():
    lab = labgen.make_lab(SOLUTION, "x.md")
    assert "np.maximum" not in lab and "self.x = x" not in lab and "lr = 0.1" not in lab
    assert '    # YOUR CODE HERE\n    raise NotImplementedError("relu")' in lab
    assert (
        '        # YOUR CODE HERE\n        raise NotImplementedError("Layer.forward")'
        in lab
    )
    assert "# YOUR CODE HERE\nraise NotImplementedError()\ncheck.relu(relu)" in lab
    assert '"""Element-wise max(z, 0)."""' in lab
    assert "# a comment above the marker stays" in lab
    assert "BEGIN SOLUTION" not in lab and "END SOLUTION" not in lab
    # the note comes right after the front matter, which stays first
    assert lab.startswith("---\njupytext:")
    assert "Generated from solutions/x.md" in lab


def test_generated_lab_is_valid_python_per_cell():
    lab = labgen.make_lab(SOLUTION, "x.md")
    cells = lab.split("```{code-cell} ipython3\n")[1:]
    for cell in cells:
        compile(cell.split("```")[0], "<cell>", "exec")


ANSWERS = """# A lab

```{code-cell} ipython3
def f(x):
    # BEGIN SOLUTION
    return x
    # END SOLUTION
```

## Questions

**Question 1.** Why?

<!-- BEGIN SOLUTION -->
Because the solution says so,
over two lines.
<!-- END SOLUTION -->

**Question 2.** And then?

  <!-- BEGIN SOLUTION -->
  An indented answer.
  <!-- END SOLUTION -->
"""


def test_markdown_answers_become_a_placeholder():
    lab = labgen.make_lab(ANSWERS, "q.md")
    assert "Because the solution" not in lab and "indented answer" not in lab
    assert "SOLUTION" not in lab
    assert "**Question 1.** Why?\n\n*Your answer here.*\n\n**Question 2.**" in lab
    assert "\n  *Your answer here.*\n" in lab  # at the marker's indentation
    assert '# YOUR CODE HERE\n    raise NotImplementedError("f")' in lab


def test_markdown_markers_render_as_nothing_in_the_solution():
    # HTML comments: MyST and Jupyter show nothing for the marker lines themselves
    for marker in (labgen.MD_BEGIN, labgen.MD_END):
        assert marker.startswith("<!--") and marker.endswith("-->")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# BEGIN SOLUTION\nx\n# END SOLUTION\n<!-- BEGIN SOLUTION -->\n", "never"),
        ("<!-- BEGIN SOLUTION -->\nx\n# END SOLUTION\n", "matching end marker"),
        ("# BEGIN SOLUTION\nx\n<!-- END SOLUTION -->\n", "matching end marker"),
        ("<!-- END SOLUTION -->\n", "without a"),
        ("<!-- BEGIN SOLUTION-->\nx\n<!-- END SOLUTION -->\n", "alone on its line"),
        ("<!-- BEGIN SOLUTION -->\nx\n<!-- END SOLUTION -->\n", "nothing for a"),
    ],
)
def test_bad_markdown_markers_are_reported(text, message):
    with pytest.raises(labgen.MarkerError, match=message):
        labgen.make_lab(text, "bad.md")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n# END SOLUTION\n", "without a"),
        (
            "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n# END SOLUTION\n",
            "nested",
        ),
        ("x = 1  # BEGIN SOLUTION\n# END SOLUTION\n", "alone on its line"),
        ("x = 1\n", "no '# BEGIN SOLUTION' region"),
    ],
)
def test_bad_markers_are_reported_with_the_line(text, message):
    with pytest.raises(labgen.MarkerError, match=message):
        labgen.make_lab(text, "bad.md")


def test_generate_writes_checks_and_removes_its_own_strays(tmp_path):
    src, dst = tmp_path / "solutions", tmp_path / "labs"
    src.mkdir()
    (src / "01-a.md").write_text(SOLUTION)
    (src / "02-old.md").write_text(SOLUTION)
    assert labgen.generate(src, dst, check=True) == ["01-a.md", "02-old.md"]
    assert labgen.generate(src, dst) == ["01-a.md", "02-old.md"]
    assert labgen.generate(src, dst, check=True) == []
    (src / "02-old.md").unlink()  # a solution renamed or removed
    assert labgen.main([str(src), str(dst), "--check"]) == 1
    assert labgen.main([str(src), str(dst)]) == 0
    assert not (dst / "02-old.md").exists()
    (src / "02-b.md").write_text("# BEGIN SOLUTION\n")
    assert labgen.main([str(src), str(dst)]) == 2


def test_a_generated_lab_carries_a_version_that_detects_edits():
    lab = labgen.make_lab(SOLUTION, "x.md")
    version = labgen.lab_version(lab)
    assert version is not None and f"Version {version}." in lab
    assert labgen.lab_version(lab.replace("# YOUR CODE HERE", "x = 1", 1)) is None
    assert labgen.lab_version(lab + "\nmore\n") is None
    assert labgen.lab_version(SOLUTION) is None  # no note at all
    other = labgen.make_lab(SOLUTION.replace("A lab", "Another lab"), "x.md")
    assert labgen.lab_version(other) not in (None, version)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_make_labs_refuses_to_touch_what_it_did_not_write(tmp_path, capsys):
    src, dst = tmp_path / "solutions", tmp_path / "labs"
    src.mkdir()
    (src / "01-a.md").write_text(SOLUTION)
    (src / "02-b.md").write_text(SOLUTION)
    labgen.generate(src, dst)
    # a student's own file, a lab edited in place, and files labgen never looks at
    (dst / "01-mine.md").write_text("my answers\n")
    edited = (
        (dst / "02-b.md")
        .read_text()
        .replace("# YOUR CODE HERE\n    raise", "return np.maximum(z, 0)\n    raise", 1)
    )
    (dst / "02-b.md").write_text(edited)
    (dst / "01-a.ipynb").write_text("{}")
    (dst / "my-work").mkdir()
    (dst / "my-work" / "01-a.md").write_text("mine\n")
    (src / "01-a.md").write_text(SOLUTION + "\nA correction.\n")
    before = _snapshot(dst)

    assert labgen.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert f"{dst / '01-mine.md'} was not written by `make labs`" in err
    assert "will not delete it" in err
    assert f"{dst / '02-b.md'} was changed after `make labs` wrote it" in err
    assert "will not overwrite it" in err
    assert "Nothing was written" in err and "labs/my-work/" in err
    assert _snapshot(dst) == before  # not even the lab that was safe to update
    assert (dst / "my-work" / "01-a.md").read_text() == "mine\n"
    with pytest.raises(labgen.NotGeneratedError):
        labgen.generate(src, dst)
    # --check reports them as out of date, and touches nothing
    assert labgen.main([str(src), str(dst), "--check"]) == 1
    assert _snapshot(dst) == before

    # once the student's files are out of the way, make labs works again
    (dst / "01-mine.md").rename(dst / "my-work" / "01-mine.md")
    (dst / "02-b.md").unlink()
    assert labgen.main([str(src), str(dst)]) == 0
    assert "A correction." in (dst / "01-a.md").read_text()
    assert (dst / "01-a.ipynb").read_text() == "{}"
    assert (dst / "my-work" / "01-mine.md").read_text() == "my answers\n"


def test_a_lab_from_before_versions_is_replaced_when_only_its_note_differs(tmp_path):
    src, dst = tmp_path / "solutions", tmp_path / "labs"
    src.mkdir()
    dst.mkdir()
    (src / "01-a.md").write_text(SOLUTION)
    lab = labgen.make_lab(SOLUTION, "01-a.md")
    old_note = (
        "<!-- Generated from solutions/01-a.md by `make labs`: edit that file, not "
        "this one. -->"
    )
    lines = [
        old_note if ln.startswith("<!-- Generated") else ln for ln in lab.split("\n")
    ]
    (dst / "01-a.md").write_text("\n".join(lines))
    assert labgen.generate(src, dst) == ["01-a.md"]
    assert (dst / "01-a.md").read_text() == lab
    # but not once someone edited it
    (dst / "01-a.md").write_text("\n".join(lines).replace("A lab", "My lab"))
    with pytest.raises(labgen.NotGeneratedError, match="was changed after"):
        labgen.generate(src, dst)


def test_labs_are_up_to_date_with_solutions():
    stale = labgen.generate(ROOT / "solutions", ROOT / "labs", check=True)
    assert not stale, f"labs/ is out of date for {stale}: run `make labs`"
