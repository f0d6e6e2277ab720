"""Chapters teach, labs practise: no chapter shows unfolded what a lab asks for.

A lab exercise is a function or method of ``solutions/NN-*.md`` whose code holds a
``# BEGIN SOLUTION`` / ``# END SOLUTION`` block; its reference is the object of the same
qualified name in ``utils/reference/stageN.py``. A chapter may show that reference only
folded, inside a MyST dropdown admonition::

    ````{admonition} The course's implementation: try lab N first
    :class: dropdown

    ```{literalinclude} ../utils/reference/stageN.py
    :pyobject: Name
    ```
    ````

preceded by one plain line that names the object and its file, since JupyterLab (which
opens the chapters' ``.md`` as notebooks) renders neither admonitions nor
``literalinclude``. These tests parse ``book/*.md`` and fail on:

- a ``literalinclude`` of an exercise's reference (or of a class holding one) outside a
  dropdown;
- a code block (``code-cell``, ``python``, ...) outside a dropdown that contains the
  whole body of an exercise, as the solution writes it or as the reference does;
- a ``literalinclude`` (folded or not) whose preceding line does not name its object and
  file, or a fold whose title names another lab than the exercise's.

The checker itself is tested on small made-up chapters, so that it can fail.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.md"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]-*.md"))
REFERENCE = "utils/reference/stage{}.py"
FOLD_TITLE = re.compile(r"The course's implementation: try lab (\d+) first")
OPENING = re.compile(r"^(`{3,}|~{3,}|:{3,})\s*(\{[\w-]+\}|[\w+-]*)\s*(.*)$")
MIN_BODY_LINES = 2  # a one-line body (``return x @ W``) is a formula, not a solution


@dataclass
class Block:
    """One fenced block of a MyST file: a directive or a code block."""

    kind: str  # "{literalinclude}", "{admonition}", "{code-cell}", "python", ...
    argument: str
    start: int  # index of the opening line
    options: dict[str, str] = field(default_factory=dict)
    body: list[str] = field(default_factory=list)
    parents: list[Block] = field(default_factory=list)

    @property
    def folded(self) -> bool:
        """Inside a dropdown (an admonition, a solution or a dropdown directive)."""
        return any(
            p.kind == "{dropdown}" or "dropdown" in p.options.get("class", "").split()
            for p in self.parents
        )


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, nested ones included, in order of opening."""
    blocks: list[Block] = []
    stack: list[tuple[str, Block]] = []
    in_options = False
    for i, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stack:
            fence, top = stack[-1]
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                stack.pop()
                in_options = False
                continue
            if top.kind.startswith("{") and in_options:
                option = re.match(r"^:([\w-]+):\s*(.*)$", stripped)
                if option:
                    top.options[option[1]] = option[2]
                    continue
                in_options = False
        match = OPENING.match(stripped)
        # inside a code block (not a directive) nothing opens: its text is code
        if match and match[2] and not (stack and not stack[-1][1].kind.startswith("{")):
            block = Block(match[2], match[3], i, parents=[b for _, b in stack])
            blocks.append(block)
            stack.append((match[1], block))
            in_options = block.kind.startswith("{")
            continue
        for _, open_block in stack[-1:]:
            open_block.body.append(line)
    return blocks


def _normalise(lines: list[str]) -> list[str]:
    """Code lines without comments, blank lines or indentation."""
    out = []
    for line in lines:
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    return out


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _code_cells(text: str) -> list[str]:
    return ["\n".join(b.body) for b in parse_blocks(text) if b.kind == "{code-cell}"]


def _qualnames(tree: ast.AST) -> dict[str, ast.AST]:
    """Every function and class of a module by its dotted qualified name."""
    found: dict[str, ast.AST] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.ClassDef):
                found[prefix + child.name] = child
                walk(child, f"{prefix}{child.name}.")

    walk(tree, "")
    return found


def _body_lines(source: str, node: ast.AST) -> list[str]:
    """A function's body as normalised lines, its docstring left out."""
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    ):
        body = body[1:]
    if not body:
        return []
    lines = source.splitlines()[body[0].lineno - 1 : body[-1].end_lineno]
    return _normalise(lines)


@dataclass(frozen=True)
class Exercise:
    lab: int
    name: str  # qualified, e.g. "Linear.forward"
    solution: tuple[str, ...]  # the lines between BEGIN and END SOLUTION, normalised


def exercises_of(lab: int, text: str) -> list[Exercise]:
    """The functions of a solution notebook that hold a solution block."""
    found = []
    for cell in _code_cells(text):
        if "BEGIN SOLUTION" not in cell:
            continue
        source = "\n".join(
            "pass" if line.lstrip().startswith(("%", "!")) else line
            for line in cell.splitlines()
        )
        lines = source.splitlines()
        for name, node in _qualnames(ast.parse(source)).items():
            if not isinstance(node, ast.FunctionDef):
                continue
            inside = lines[node.lineno - 1 : node.end_lineno]
            solution, keep = [], False
            for line in inside:
                if "END SOLUTION" in line:
                    keep = False
                elif "BEGIN SOLUTION" in line:
                    keep = True
                elif keep:
                    solution.append(line)
            nested = any(
                isinstance(n, ast.FunctionDef) and n is not node for n in ast.walk(node)
            )
            if solution and not nested:
                found.append(Exercise(lab, name, tuple(_normalise(solution))))
    return found


@cache
def all_exercises() -> tuple[Exercise, ...]:
    found = []
    for path in SOLUTIONS:
        found += exercises_of(int(path.name[:2]), path.read_text())
    return tuple(found)


@cache
def reference_objects(stage: int) -> tuple[str, dict[str, ast.AST]]:
    path = ROOT / REFERENCE.format(stage)
    source = path.read_text() if path.exists() else ""
    return source, _qualnames(ast.parse(source))


def covered(stage: int, pyobject: str, exercises) -> list[Exercise]:
    """The exercises of lab ``stage`` whose reference a literalinclude shows."""
    return [
        e
        for e in exercises
        if e.lab == stage and (e.name == pyobject or e.name.startswith(pyobject + "."))
    ]


def _include_target(block: Block) -> tuple[int, str] | None:
    match = re.search(r"utils/reference/stage(\d+)\.py$", block.argument.strip())
    if not match or "pyobject" not in block.options:
        return None
    return int(match[1]), block.options["pyobject"]


def _paragraph_before(lines: list[str], start: int, blocks: list[Block]) -> str:
    """The text before line ``start``, past blank lines and sibling includes."""
    starts = {b.start: b for b in blocks if not b.parents}
    i = start - 1
    while i >= 0:
        line = lines[i].strip()
        if not line:
            i -= 1
            continue
        # a closing fence: skip back over the top-level block it closes
        opened = [
            b
            for b in starts.values()
            if b.start < i and b.kind == "{literalinclude}" and _ends_at(lines, b, i)
        ]
        if opened:
            i = opened[-1].start - 1
            continue
        break
    paragraph = []
    while i >= 0 and lines[i].strip():
        paragraph.insert(0, lines[i].strip())
        i -= 1
    return " ".join(paragraph)


def _ends_at(lines: list[str], block: Block, i: int) -> bool:
    """Whether the top-level block closes on line ``i``."""
    return block.start + len(block.options) + len(block.body) + 1 == i


def problems_of(text: str, exercises=None) -> list[str]:
    """What a chapter shows of the labs' exercises, and where (empty: nothing)."""
    exercises = all_exercises() if exercises is None else exercises
    lines = text.splitlines()
    blocks = parse_blocks(text)
    problems = []
    bodies = []  # (exercise, normalised lines) to look for in code blocks
    for exercise in exercises:
        if len(exercise.solution) >= MIN_BODY_LINES:
            bodies.append((exercise, list(exercise.solution), "solution"))
        source, objects = reference_objects(exercise.lab)
        node = objects.get(exercise.name)
        if node is not None:
            body = _body_lines(source, node)
            if len(body) >= MIN_BODY_LINES:
                bodies.append((exercise, body, "reference"))
    for block in blocks:
        where = f"line {block.start + 1}"
        if block.kind == "{literalinclude}":
            target = _include_target(block)
            if target is None:
                continue
            stage, pyobject = target
            shown = covered(stage, pyobject, exercises)
            if shown and not block.folded:
                names = ", ".join(e.name for e in shown)
                problems.append(
                    f"{where}: literalinclude of {pyobject} (stage {stage}) is not "
                    f"folded, and lab {stage} asks for {names}"
                )
            if shown and block.folded:
                titles = [
                    FOLD_TITLE.search(p.argument)
                    for p in block.parents
                    if p.kind == "{admonition}"
                ]
                if not any(t and int(t[1]) == stage for t in titles):
                    problems.append(
                        f"{where}: the fold around {pyobject} is not titled "
                        f'"The course\'s implementation: try lab {stage} first"'
                    )
            outer = block.parents[0] if block.parents else block
            before = _paragraph_before(lines, outer.start, blocks)
            name = pyobject.split(".")[-1]
            if REFERENCE.format(stage) not in before or name not in before:
                problems.append(
                    f"{where}: in JupyterLab the literalinclude of {pyobject} shows "
                    f"nothing: the line before it should name `{pyobject}` and "
                    f"`{REFERENCE.format(stage)}`, but reads {before[-120:]!r}"
                )
        elif not block.folded and not block.kind.startswith("{admonition"):
            code = _normalise(block.body)
            for exercise, body, origin in bodies:
                if _contains(code, body):
                    problems.append(
                        f"{where}: this {block.kind} block shows the whole body of "
                        f"lab {exercise.lab}'s {exercise.name} (as the {origin} "
                        "writes it) unfolded"
                    )
    return problems


def test_the_solutions_have_exercises_with_references():
    exercises = all_exercises()
    labs = {e.lab for e in exercises}
    assert labs == {int(p.name[:2]) for p in SOLUTIONS}
    for lab in labs:
        _, objects = reference_objects(lab)
        names = [e.name for e in exercises if e.lab == lab]
        found = [n for n in names if n in objects]
        assert len(found) >= len(names) / 2, (lab, names, sorted(objects)[:20])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_folds_what_the_labs_ask_for(chapter: Path):
    problems = problems_of(chapter.read_text())
    assert not problems, f"{chapter.name}:\n  " + "\n  ".join(problems)


def test_chapters_fold_something():
    """The folds exist, so the browser test's 'folds open on a click' is not empty."""
    folds = sum(
        1
        for chapter in CHAPTERS
        for block in parse_blocks(chapter.read_text())
        if block.kind == "{admonition}" and FOLD_TITLE.search(block.argument)
    )
    assert folds >= len(CHAPTERS)


# --------------------------------------------------------------------------------------
# The checker on made-up chapters
# --------------------------------------------------------------------------------------

SOFTMAX = Exercise(
    1,
    "softmax",
    (
        "shifted = logits - logits.max(axis=1, keepdims=True)",
        "exp = np.exp(shifted)",
        "return exp / exp.sum(axis=1, keepdims=True)",
    ),
)
NAMED = "The course's version is `softmax` in `utils/reference/stage1.py`.\n\n"
BARE = "```{literalinclude} ../utils/reference/stage1.py\n:pyobject: softmax\n```\n"
FOLDED = (
    "````{admonition} The course's implementation: try lab 1 first\n"
    ":class: dropdown\n\n" + BARE + "````\n"
)


def test_checker_accepts_a_named_fold():
    assert problems_of("Intro.\n\n" + NAMED + FOLDED, [SOFTMAX]) == []


def test_checker_rejects_an_unfolded_include():
    problems = problems_of("Intro.\n\n" + NAMED + BARE, [SOFTMAX])
    assert len(problems) == 1 and "not folded" in problems[0]


def test_checker_rejects_a_fold_titled_for_another_lab():
    wrong = FOLDED.replace("try lab 1", "try lab 2")
    problems = problems_of(NAMED + wrong, [SOFTMAX])
    assert len(problems) == 1 and "try lab 1 first" in problems[0]


def test_checker_rejects_an_include_jupyterlab_cannot_show():
    problems = problems_of("Putting it together:\n\n" + FOLDED, [SOFTMAX])
    assert len(problems) == 1 and "JupyterLab" in problems[0]


@pytest.mark.parametrize("fence", ["```{code-cell} ipython3", "```python"])
def test_checker_rejects_a_pasted_body(fence: str):
    pasted = (
        f"{fence}\ndef softmax(logits):\n"
        "    shifted = logits - logits.max(axis=1, keepdims=True)  # stable\n"
        "\n    exp = np.exp(shifted)\n"
        "    return exp / exp.sum(axis=1, keepdims=True)\n```\n"
    )
    problems = problems_of(pasted, [SOFTMAX])
    assert problems and "whole body" in problems[0]
    # folded, the same block is fine
    fold = (
        "````{admonition} The course's implementation: try lab 1 first\n"
        ":class: dropdown\n\n" + pasted + "````\n"
    )
    assert problems_of(fold, [SOFTMAX]) == []


def test_checker_ignores_a_part_of_a_body():
    part = "```python\nexp = np.exp(shifted)\n```\n"
    assert problems_of(part, [SOFTMAX]) == []


def test_exercises_are_read_from_solution_blocks():
    text = (
        '```{code-cell} ipython3\ndef relu(z):\n    """Doc."""\n'
        "    # BEGIN SOLUTION\n    out = np.maximum(z, 0)\n    return out\n"
        "    # END SOLUTION\n\n\ndef given(x):\n    return x\n```\n"
    )
    (exercise,) = exercises_of(1, text)
    assert exercise.name == "relu"
    assert exercise.solution == ("out = np.maximum(z, 0)", "return out")
