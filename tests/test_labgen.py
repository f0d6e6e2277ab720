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


def test_generate_writes_checks_and_removes_strays(tmp_path):
    src, dst = tmp_path / "solutions", tmp_path / "labs"
    src.mkdir()
    (src / "01-a.md").write_text(SOLUTION)
    assert labgen.generate(src, dst, check=True) == ["01-a.md"]
    assert labgen.generate(src, dst) == ["01-a.md"]
    assert labgen.generate(src, dst, check=True) == []
    (dst / "old.md").write_text("stale")
    assert labgen.main([str(src), str(dst), "--check"]) == 1
    assert labgen.main([str(src), str(dst)]) == 0
    assert not (dst / "old.md").exists()
    (src / "02-b.md").write_text("# BEGIN SOLUTION\n")
    assert labgen.main([str(src), str(dst)]) == 2


def test_labs_are_up_to_date_with_solutions():
    stale = labgen.generate(ROOT / "solutions", ROOT / "labs", check=True)
    assert not stale, f"labs/ is out of date for {stale}: run `make labs`"
