"""The student's workspace: their own copies of the labs, which no course command edits.

``labs/`` holds what ``make labs`` generates, for instructors, CI and the site. A
student works in a git-ignored folder, by default ``labs/my-work/``. ``make lab`` runs
:func:`prepare` (``python -m utils.workspace``) and then opens JupyterLab there:

* a lab the student does not have yet is copied in (the first time);
* a copy the student has not changed (byte for byte what was copied, with no paired
  ``.ipynb`` beside it) is replaced by a newer version of its lab, since that loses
  nothing;
* a lab the student has started is never written to: when the course has a newer
  version, it is written *beside* theirs, ``NN-name.new.md``, and :func:`prepare` says
  so (and reminds them while that file is there). A ``.new.md`` that the student
  edited is never overwritten either: a later version goes to ``NN-name.new-2.md``.

What was copied and offered is recorded in ``.labs.json`` in the workspace (the
version of each lab from :func:`utils.labgen.lab_version`, and the SHA-256 of every
file written), so a later run knows which files are still exactly as written.
Nothing else in the workspace is read, written or deleted.

Usage::

    python -m utils.workspace                       # labs/ -> labs/my-work/
    python -m utils.workspace --labs labs --work ~/my-labs
    python -m utils.workspace --clean a.ipynb ...   # what `make clean` runs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from utils.labgen import lab_version

DEFAULT_WORK = Path("labs") / "my-work"
_OFFERED = re.compile(r".+\.new(?:-\d+)?\.(?:md|ipynb)")
STATE = ".labs.json"
COPY_NOTE = (
    "<!-- Your copy of the lab {name}: `make lab` never overwrites it once you have "
    "changed it. Course version {version}. -->"
)


@dataclass
class Report:
    """What :func:`prepare` did, one list of lab names per kind of event.

    Attributes:
        copied: labs copied into the workspace for the first time.
        updated: unchanged copies replaced by a newer version of their lab.
        offered: started labs with a newer version, mapped to the file written
            beside the student's (this run).
        waiting: started labs whose newer version, offered earlier, is still
            beside theirs (name to file).
        current: labs whose copy is of the current version.
    """

    work: Path
    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    offered: dict[str, Path] = field(default_factory=dict)
    waiting: dict[str, Path] = field(default_factory=dict)
    current: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as sentences for the terminal."""
        out = [
            f"Your work lives in {self.work}/: no course command changes a file "
            "you have edited there."
        ]
        if not (self.copied or self.updated or self.offered or self.waiting):
            out.append(f"  All {len(self.current)} labs are of the current version.")
        out += [f"  {name}: copied into your workspace." for name in self.copied]
        out += [
            f"  {name}: updated to the newer version (you had not changed it)."
            for name in self.updated
        ]
        out += [
            f"  {name}: the course has a newer version of this lab. Yours is "
            f"unchanged; the new one is beside it, in {path.name}: compare the two "
            "and copy what you need into yours."
            for name, path in self.offered.items()
        ]
        out += [
            f"  {name}: a newer version is still waiting beside yours, in "
            f"{path.name} (delete that file once you have what you need)."
            for name, path in self.waiting.items()
        ]
        return out


def is_offered(path: Path) -> bool:
    """Whether ``path`` is a newer version offered beside a student's lab.

    ``NN-name.new.md``, ``NN-name.new-2.md`` (and the ``.ipynb`` that jupytext pairs
    with them) are the course's text, not the student's work: a grader collecting a
    student's workspace should take ``NN-name.md`` or ``NN-name.ipynb`` instead.
    """
    return _OFFERED.fullmatch(path.name) is not None


def student_copy(lab: str, name: str) -> str:
    """The text a student's copy starts from: the lab, with a note for students.

    The generated lab's note ("edit solutions/..., not this file") would mislead in
    the student's copy, so it is replaced by one that says whose file it is.
    """
    version = lab_version(lab) or _sha(lab.encode("utf-8"))[:16]
    lines = lab.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("<!-- Generated from solutions/"):
            lines[i] = COPY_NOTE.format(name=name, version=version) + "\n"
            break
    return "".join(lines)


def prepare(labs: Path, work: Path) -> Report:
    """Bring the workspace ``work`` up to date with the labs in ``labs``.

    Args:
        labs: the folder of generated labs (``labs/``).
        work: the student's workspace; created if missing.

    Returns:
        A :class:`Report` of what was copied, updated and offered.

    Raises:
        FileNotFoundError: ``labs`` holds no ``*.md`` lab.
    """
    sources = sorted(labs.glob("*.md"))
    if not sources:
        raise FileNotFoundError(f"no labs (*.md) in {labs}: run `make labs` first")
    work.mkdir(parents=True, exist_ok=True)
    state = _load_state(work / STATE)
    report = Report(work=work)
    for source in sources:
        name = source.name
        lab = source.read_text(encoding="utf-8")
        version = lab_version(lab) or _sha(lab.encode("utf-8"))[:16]
        text = student_copy(lab, name).encode("utf-8")
        entry = state.setdefault(name, {})
        offers: dict[str, str] = entry.setdefault("offered", {})
        mine = work / name
        if not mine.exists():
            _write(mine, text)
            entry.update(version=version, copied=_sha(text))
            report.copied.append(name)
        elif entry.get("version") == version:
            report.current.append(name)
        elif _untouched(mine, entry) and not mine.with_suffix(".ipynb").exists():
            _write(mine, text)
            entry.update(version=version, copied=_sha(text))
            report.updated.append(name)
        elif mine.read_bytes() == text:
            entry.update(version=version, copied=_sha(text))
            report.current.append(name)
        else:
            path = _offer(work, mine, text, offers)
            entry["version"] = version
            report.offered[name] = path
        if name in report.current:
            waiting = [work / n for n in offers if (work / n).exists()]
            if waiting:
                report.waiting[name] = waiting[-1]  # the latest offered
    _save_state(work / STATE, state)
    return report


def _offer(work: Path, mine: Path, text: bytes, offers: dict[str, str]) -> Path:
    """Write ``text`` beside ``mine`` under the first name that loses nothing.

    ``NN-name.new.md``, then ``NN-name.new-2.md``, ...: a name is free when no file
    has it, or when the file there is one written earlier and left unchanged.
    """
    stem = mine.name[: -len(".md")]
    n = 1
    while True:
        candidate = work / (f"{stem}.new.md" if n == 1 else f"{stem}.new-{n}.md")
        if not candidate.exists():
            break
        current = candidate.read_bytes()
        if current == text or _sha(current) == offers.get(candidate.name):
            break
        n += 1
    if not candidate.exists() or candidate.read_bytes() != text:
        _write(candidate, text)
    offers[candidate.name] = _sha(text)
    return candidate


def _untouched(path: Path, entry: dict) -> bool:
    """Whether ``path`` is byte for byte the copy recorded in ``entry``."""
    return "copied" in entry and _sha(path.read_bytes()) == entry["copied"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    """Write a new file (the callers have checked that nothing is lost)."""
    path.write_bytes(data)


def _load_state(path: Path) -> dict:
    """The record of earlier runs; empty (so that nothing counts as untouched) if
    it is missing or unreadable."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _save_state(path: Path, state: dict) -> None:
    path.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n", "utf-8")


def remove_generated_notebooks(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Delete the given ``.ipynb`` files, but only those with no outputs.

    ``make notebooks`` writes an ``.ipynb`` without outputs beside every notebook;
    one with outputs was saved from Jupyter (jupytext pairs ``.md`` with ``.ipynb``)
    and may hold someone's work, so it stays, as does one that is not valid JSON.

    Returns:
        The files removed and the files kept (missing files are in neither).
    """
    removed, kept = [], []
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            continue
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            has_outputs = any(cell.get("outputs") for cell in cells)
        except (OSError, ValueError, AttributeError):
            has_outputs = True
        if has_outputs:
            kept.append(path)
        else:
            path.unlink()
            removed.append(path)
    return removed, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", type=Path, default=Path("labs"))
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument(
        "--clean",
        type=Path,
        nargs="*",
        metavar="IPYNB",
        help="instead: delete these generated .ipynb files, keeping any with outputs",
    )
    args = parser.parse_args(argv)
    if args.clean is not None:
        _, kept = remove_generated_notebooks(args.clean)
        for path in kept:
            sys.stdout.write(
                f"workspace: kept {path}: it has outputs, so it was saved from "
                "Jupyter and may be someone's work (delete it yourself if not).\n"
            )
        return 0
    try:
        report = prepare(args.labs, args.work.expanduser())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"workspace: {exc}\n")
        return 2
    sys.stdout.write("\n".join(report.lines()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
