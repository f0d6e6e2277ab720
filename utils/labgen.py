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

Written answers (a lab's closing questions) are marked in Markdown with HTML comments,
which render as nothing in the solution::

    **Question 1.** Why subtract the row's maximum before ``exp``?

    <!-- BEGIN SOLUTION -->
    Because ``exp`` overflows above about 88 in float32, ...
    <!-- END SOLUTION -->

In the lab, such a region becomes one placeholder line, ``*Your answer here.*``.

Everything outside the markers (signatures, docstrings, comments, the check cells) is
copied unchanged. The stub names the enclosing function so that the error a student
sees says which exercise is missing.

Every lab starts with a note that says where it comes from and carries a *version*,
the first 16 hex digits of the SHA-256 of the lab without that note line. The version
proves that a file in ``labs/`` is exactly what the generator wrote: ``make labs``
overwrites or deletes only such files, and refuses, naming the file, to touch one that
was edited by hand or that it never wrote (a student's copy, say). Students work on
their own copies elsewhere (see :mod:`utils.workspace`), which compare the version to
tell when the course has a newer lab.

Usage::

    python -m utils.labgen solutions labs          # write labs/*.md
    python -m utils.labgen solutions labs --check  # exit 1 if labs/ is out of date
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = "# YOUR CODE HERE"
MD_BEGIN = "<!-- BEGIN SOLUTION -->"
MD_END = "<!-- END SOLUTION -->"
ANSWER_STUB = "*Your answer here.*"
GENERATED_NOTE = (
    "<!-- Generated from solutions/{name} by `make labs`: edit that file, not this "
    "one. Version {version}. -->"
)
_NOTE = re.compile(
    r"^<!-- Generated from solutions/(?P<name>\S+) by `make labs`: edit that file, "
    r"not this one\. Version (?P<version>[0-9a-f]{16})\. -->\n",
    re.MULTILINE,
)

_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)|^(\s*)class\s+(\w+)")


class MarkerError(ValueError):
    """A solution whose ``BEGIN``/``END SOLUTION`` markers do not pair up."""


class NotGeneratedError(ValueError):
    """A file in the labs folder that ``make labs`` did not write, or was edited."""


@dataclass
class Region:
    begin: int  # 0-based line index of BEGIN
    end: int  # 0-based line index of END
    indent: str
    markdown: bool = False  # an answer in Markdown (HTML-comment markers), not code


def find_regions(lines: list[str], source: str = "<solution>") -> list[Region]:
    """Locate the marked regions; raise :class:`MarkerError` if they don't pair up.

    Code regions open with ``# BEGIN SOLUTION`` and close with ``# END SOLUTION``;
    Markdown regions with ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``.
    A region must close with the kind of marker that opened it.
    """
    regions: list[Region] = []
    open_at: int | None = None
    open_md = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped in (BEGIN, MD_BEGIN):
            if open_at is not None:
                raise MarkerError(
                    f"{source}:{i + 1}: '{stripped}' inside the region opened at line "
                    f"{open_at + 1}: regions cannot be nested."
                )
            open_at, open_md = i, stripped == MD_BEGIN
        elif stripped in (END, MD_END):
            if open_at is None:
                raise MarkerError(
                    f"{source}:{i + 1}: '{stripped}' without a '{BEGIN}' or "
                    f"'{MD_BEGIN}'."
                )
            if (stripped == MD_END) != open_md:
                opened = MD_BEGIN if open_md else BEGIN
                raise MarkerError(
                    f"{source}:{i + 1}: '{stripped}' closes the region that "
                    f"'{opened}' opened at line {open_at + 1}: use the matching end "
                    "marker."
                )
            indent = lines[open_at][
                : len(lines[open_at]) - len(lines[open_at].lstrip())
            ]
            regions.append(Region(open_at, i, indent, open_md))
            open_at = None
        elif BEGIN.lower() in stripped.lower() or END.lower() in stripped.lower():
            raise MarkerError(
                f"{source}:{i + 1}: a marker must stand alone on its line, exactly "
                f"'{BEGIN}' or '{END}'; found {stripped!r}."
            )
        elif stripped.startswith("<!--") and (
            "begin solution" in stripped.lower() or "end solution" in stripped.lower()
        ):
            raise MarkerError(
                f"{source}:{i + 1}: a marker must stand alone on its line, exactly "
                f"'{MD_BEGIN}' or '{MD_END}'; found {stripped!r}."
            )
    if open_at is not None:
        closer = MD_END if open_md else END
        raise MarkerError(
            f"{source}:{open_at + 1}: '{lines[open_at].strip()}' is never closed by "
            f"'{closer}'."
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
    if not any(not region.markdown for region in regions):
        raise MarkerError(f"{name}: no '{BEGIN}' region: nothing for a student to do.")
    out: list[str] = []
    pos = 0
    for region in regions:
        out.extend(lines[pos : region.begin])
        if region.markdown:
            out.append(f"{region.indent}{ANSWER_STUB}")
            pos = region.end + 1
            continue
        what = _enclosing_name(lines, region.begin)
        label = f'"{what}"' if what else ""
        out.append(f"{region.indent}{STUB}")
        out.append(f"{region.indent}raise NotImplementedError({label})")
        pos = region.end + 1
    out.extend(lines[pos:])
    return _add_note("\n".join(out) + "\n", name)


def _digest(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _add_note(text: str, name: str) -> str:
    """Put the 'generated file' note, with the version, after the front matter.

    The version is the digest of the lab without the note line, so that
    :func:`lab_version` can recompute it from the file alone.
    """
    note = "{note}"
    if text.startswith("---\n") and text.find("\n---\n", 4) != -1:
        end = text.find("\n---\n", 4)
        head, rest = text[: end + 5], text[end + 5 :]
        template = f"{head}\n{note}\n{rest}"
    else:
        template = f"{note}\n\n{text}"
    version = _digest(template.replace(note + "\n", "", 1))
    filled = GENERATED_NOTE.format(name=Path(name).name, version=version)
    return template.replace(note, filled, 1)


def lab_version(text: str) -> str | None:
    """The version of a generated lab, or None if ``make labs`` did not write it.

    Returns:
        The version in the file's note when the rest of the file still hashes to it;
        None when there is no note, or the file was changed after it was generated.
    """
    match = _NOTE.search(text)
    if match is None:
        return None
    rest = text[: match.start()] + text[match.end() :]
    return match["version"] if _digest(rest) == match["version"] else None


def generate(src: Path, dst: Path, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) ``dst/*.md`` from ``src/*.md``.

    Only ``dst/*.md`` is touched (never a subfolder or another kind of file), and of
    those only files this generator wrote and nobody changed since (see
    :func:`lab_version`): a lab to update, or one whose solution is gone. Everything
    is checked before anything is written, so a refusal changes nothing.

    Returns:
        The names of the labs that were out of date (``check``) or written/removed.

    Raises:
        NotGeneratedError: (not with ``check``) a file that would be overwritten or
            removed was edited by hand or never generated; the message names it.
    """
    solutions = sorted(src.glob("*.md"))
    if not solutions:
        raise FileNotFoundError(f"no solution notebooks (*.md) in {src}")
    labs = {p.name: make_lab(p.read_text(encoding="utf-8"), p.name) for p in solutions}
    existing = {p.name: p for p in sorted(dst.glob("*.md"))} if dst.is_dir() else {}
    to_write = [name for name in labs if _read(existing.get(name)) != labs[name]]
    to_remove = [name for name in existing if name not in labs]
    changed = sorted(to_write + to_remove)
    if check:
        return changed
    refused = [
        _refusal(existing[name], replaced=name in labs)
        for name in changed
        if name in existing and not _safe_to_replace(existing[name], labs.get(name))
    ]
    if refused:
        raise NotGeneratedError(
            "\n".join(refused)
            + "\nNothing was written. If it is your work, move it into your own "
            "workspace (labs/my-work/, where `make lab` opens your copies); to "
            "discard it, delete it. Then run `make labs` again."
        )
    for name in to_write:
        dst.mkdir(parents=True, exist_ok=True)
        (dst / name).write_text(labs[name], encoding="utf-8")
    for name in to_remove:
        existing[name].unlink()
    return changed


def _read(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8") if path is not None else None


def _without_note(text: str) -> str:
    """``text`` without its 'generated' note line (of this or an older labgen)."""
    return re.sub(
        r"^<!-- Generated from solutions/.*-->\n", "", text, count=1, flags=re.M
    )


def _safe_to_replace(path: Path, new: str | None) -> bool:
    """Whether overwriting (``new``) or deleting (None) ``path`` loses nothing.

    True for a lab this generator wrote and nobody changed, and for a file that
    differs from the new lab in its note line only (a lab written before notes
    carried a version).
    """
    text = _read(path) or ""
    if lab_version(text) is not None:
        return True
    return new is not None and _without_note(text) == _without_note(new)


def _refusal(path: Path, replaced: bool) -> str:
    """One line saying which file `make labs` leaves alone, and why."""
    text = _read(path) or ""
    how = (
        "was changed after `make labs` wrote it"
        if "<!-- Generated from solutions/" in text
        else "was not written by `make labs`"
    )
    act = "overwrite" if replaced else "delete"
    return f"labgen: {path} {how}, so it will not {act} it."


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
    except NotGeneratedError as exc:
        sys.stderr.write(f"{exc}\n")
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
