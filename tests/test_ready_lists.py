"""Every demo or training cell's ``check.ready(...)`` lists every exercise the cell
runs, directly or through another function or class of the notebook (issue 17)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("0*.md"))
_CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _analyse(text: str):
    """(deps: name -> names it uses, checked: [(cell index, exercise, object)],
    ready cells: [(cell index, listed exercises, names the cell uses)])."""
    deps: dict[str, set[str]] = {}
    checked, ready = [], []
    for index, source in enumerate(_CELL.findall(text)):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                deps.setdefault(node.name, set()).update(_names(node))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = (
                    node.targets if isinstance(node, ast.Assign) else [node.target]
                )
                for target in targets:
                    for name in _names(target):
                        deps.setdefault(name, set()).update(_names(node.value))
        for call in ast.walk(tree):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "check"
            ):
                continue
            attr = call.func.attr
            if attr == "ready":
                listed = {a.value for a in call.args if isinstance(a, ast.Constant)}
                ready.append((index, listed, _names(tree) - {"check"}))
            else:  # every object checked: check.weight_decay(SGD, Adam) both
                for arg in call.args:
                    if isinstance(arg, ast.Name):
                        checked.append((index, attr, arg.id))
    return deps, checked, ready


def _closure(names: set[str], deps: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += deps.get(name, ())
    return seen


def _problems(text: str) -> list[str]:
    deps, checked, ready = _analyse(text)
    assert ready, "no check.ready cell"
    problems = []
    for index, listed, used in ready:
        reached = _closure(used, deps)
        own = {ex for i, ex, _ in checked if i == index}  # the cell's own check
        needed = {
            ex
            for i, ex, obj in checked
            if i < index and obj in reached and ex not in own
        }
        missing = sorted(needed - listed)
        if missing:
            problems.append(f"cell {index}: check.ready lacks {missing}")
    return problems


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_ready_lists_every_exercise_the_cell_runs(path):
    problems = _problems(path.read_text())
    assert not problems, f"{path.name}: " + "; ".join(problems)


_OMITS = """
```{code-cell} ipython3
class Adam(Optimizer):
    pass
```

```{code-cell} ipython3
check.adam(Adam)
```

```{code-cell} ipython3
check.weight_decay(SGD, Adam)
```

```{code-cell} ipython3
def run(model):
    return Adam(model.parameters())


if check.ready("adam"):
    run(model)
```
"""


def test_an_omitted_exercise_is_found_through_a_function_and_a_second_argument():
    """The last cell runs Adam through run(); weight_decay also checked Adam."""
    assert _problems(_OMITS) == ["cell 3: check.ready lacks ['weight_decay']"]
    ready = 'check.ready("adam"'
    listed = _OMITS.replace(ready, ready + ', "weight_decay"')
    assert _problems(listed) == []
