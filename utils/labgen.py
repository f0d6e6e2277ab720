"""Generate the student labs from the solutions.

Every lab is written once, complete, in ``solutions/``. The parts a student writes sit
between two marker lines (nbgrader's convention)::

    def relu(z):
        \"\"\"Element-wise max(z, 0).\"\"\"
        # BEGIN SOLUTION
        return np.maximum(z, 0)
        # END SOLUTION

In the lab, the region becomes a stub at the indentation of the ``BEGIN`` line::

    def relu(z):
        \"\"\"Element-wise max(z, 0).\"\"\"
        # YOUR CODE HERE
        raise NotImplementedError("relu")

Everything outside the markers (signatures, docstrings, comments, the check cells) is
copied unchanged. The stub names the enclosing function so that the error a student
sees says which exercise is missing.

Usage::

    python -m utils.labgen solutions labs          # write labs/*.md
    python -m utils.labgen solutions labs --check  # exit 1 if labs/ is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = "# YOUR CODE HERE"
GENERATED_NOTE = (
    "<!-- Generated from solutions/{name} by `make labs`: edit that file, not this "
    "one. -->"
)

_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)|^(\s*)class\s+(\w+)")


class MarkerError(ValueError):
    """A solution whose ``BEGIN``/``END SOLUTION`` markers do not pair up."""


@dataclass
class Region:
    begin: int  # 0-based line index of BEGIN
    end: int  # 0-based line index of END
    indent: str


def find_regions(lines: list[str], source: str = "<solution>") -> list[Region]:
    """Locate the marked regions; raise :class:`MarkerError` if they don't pair up."""
    regions: list[Region] = []
    open_at: int | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == BEGIN:
            if open_at is not None:
                raise MarkerError(
                    f"{source}:{i + 1}: '{BEGIN}' inside the region opened at line "
                    f"{open_at + 1}: regions cannot be nested."
                )
            open_at = i
        elif stripped == END:
            if open_at is None:
                raise MarkerError(f"{source}:{i + 1}: '{END}' without a '{BEGIN}'.")
            indent = lines[open_at][
                : len(lines[open_at]) - len(lines[open_at].lstrip())
            ]
            regions.append(Region(open_at, i, indent))
            open_at = None
        elif BEGIN.lower() in stripped.lower() or END.lower() in stripped.lower():
            raise MarkerError(
                f"{source}:{i + 1}: a marker must stand alone on its line, exactly "
                f"'{BEGIN}' or '{END}'; found {stripped!r}."
            )
    if open_at is not None:
        raise MarkerError(
            f"{source}:{open_at + 1}: '{BEGIN}' is never closed by '{END}'."
        )
    return regions


def _enclosing_name(lines: list[str], begin: int) -> str | None:
    """The qualified name of the function (or class) whose body holds line ``begin``.

    A method is named with its class, ``Linear.forward``, so that the error a student
    sees says which of several ``forward`` stubs it came from.
    """
    names: list[str] = []
    indent = len(lines[begin]) - len(lines[begin].lstrip())
    for j in range(begin - 1, -1, -1):
        if lines[j].startswith("```"):
            break  # reached the start of the code cell
        match = _DEF.match(lines[j])
        if match:
            def_indent = len(
                match.group(1) if match.group(1) is not None else match.group(3)
            )
            if def_indent < indent:
                names.insert(0, match.group(2) or match.group(4))
                indent = def_indent
    return ".".join(names) or None


def make_lab(text: str, name: str = "<solution>") -> str:
    """Turn one solution notebook (MyST text) into the student lab."""
    lines = text.splitlines()
    regions = find_regions(lines, name)
    if not regions:
        raise MarkerError(f"{name}: no '{BEGIN}' region: nothing for a student to do.")
    out: list[str] = []
    pos = 0
    for region in regions:
        out.extend(lines[pos : region.begin])
        what = _enclosing_name(lines, region.begin)
        label = f'"{what}"' if what else ""
        out.append(f"{region.indent}{STUB}")
        out.append(f"{region.indent}raise NotImplementedError({label})")
        pos = region.end + 1
    out.extend(lines[pos:])
    return _add_note("\n".join(out) + "\n", name)


def _add_note(text: str, name: str) -> str:
    """Put the 'generated file' note just after the jupytext front matter."""
    note = GENERATED_NOTE.format(name=Path(name).name)
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            head, rest = text[: end + 5], text[end + 5 :]
            return f"{head}\n{note}\n{rest}"
    return f"{note}\n\n{text}"


def generate(src: Path, dst: Path, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) ``dst/*.md`` from ``src/*.md``.

    Returns:
        The names of the labs that were out of date (``check``) or written.
    """
    changed = []
    solutions = sorted(src.glob("*.md"))
    if not solutions:
        raise FileNotFoundError(f"no solution notebooks (*.md) in {src}")
    expected_names = set()
    for path in solutions:
        lab = make_lab(path.read_text(encoding="utf-8"), path.name)
        target = dst / path.name
        expected_names.add(target.name)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != lab:
            changed.append(target.name)
            if not check:
                dst.mkdir(parents=True, exist_ok=True)
                target.write_text(lab, encoding="utf-8")
    for stray in sorted(dst.glob("*.md")) if dst.exists() else []:
        if stray.name not in expected_names:
            changed.append(stray.name)
            if not check:
                stray.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solutions", type=Path, help="folder of solution notebooks")
    parser.add_argument("labs", type=Path, help="folder to write the labs into")
    parser.add_argument(
        "--check", action="store_true", help="only report labs that are out of date"
    )
    args = parser.parse_args(argv)
    try:
        changed = generate(args.solutions, args.labs, check=args.check)
    except (MarkerError, FileNotFoundError) as exc:
        sys.stderr.write(f"labgen: {exc}\n")
        return 2
    if args.check:
        if changed:
            sys.stderr.write(
                "labgen: labs/ is out of date for: "
                + ", ".join(changed)
                + "\nRun `make labs` and commit the result.\n"
            )
            return 1
        sys.stdout.write(f"labgen: {args.labs} is up to date.\n")
        return 0
    sys.stdout.write(
        f"labgen: wrote {len(changed)} lab(s) to {args.labs}"
        + (": " + ", ".join(changed) if changed else "")
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
