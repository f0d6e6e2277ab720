"""Every asserted accuracy clears its target by at least half a point.

A notebook that asserts ``test_acc >= target`` right at the target fails on the first
unlucky change, and a student whose correct code rounds differently may miss it. So
every cell of a chapter or a lab solution that asserts an accuracy against ``target``
also prints one line,

    target 97.0%: validation 97.92% (+0.92 points), test 98.05% (+1.05 points)

and on the MNIST copy CI uses, both margins must be at least ``MIN_MARGIN`` points.

The chapters' numbers are read from the site that ``make book`` built (it executes
every chapter), so nothing is retrained here: the test is skipped when the site has
not been built, and a page trained on the 8x8 digits fallback (no MNIST) is not held
to MNIST's margins.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "book" / "_build" / "html"
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.md"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]-*.md"))
MIN_MARGIN = 0.5  # points of accuracy
# chapters allowed a smaller margin, with the reason (the chapter states its margin)
SHORT_MARGIN_OK = {
    "05-convolutions": (
        "issue 20 fixes the target at 99.0%, and 99.5% is out of reach in the minute "
        "the chapter may run on a 2-core machine"
    ),
}
ASSERTS = re.compile(r"assert\s+\w*acc\w*\s*>=\s*target")
PRINTS = 'f"target {target:.1%}: validation {'
MARGIN_LINE = re.compile(
    r"target (\d+(?:\.\d+)?)%: validation (\d+\.\d+)% \([^)]*\), "
    r"test (\d+\.\d+)% \([^)]*\)"
)
CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)\n```", re.S)


def asserting_cells(path: Path) -> list[str]:
    return [c for c in CELL.findall(path.read_text()) if ASSERTS.search(c)]


def margins(text: str) -> list[tuple[float, float, float]]:
    """(target, validation, test) of every margin line in a page's text, in %."""
    return [tuple(map(float, m)) for m in MARGIN_LINE.findall(text)]


@pytest.mark.parametrize(
    "path", CHAPTERS + SOLUTIONS, ids=lambda p: p.parent.name + "/" + p.stem
)
def test_every_asserted_accuracy_prints_its_margins(path: Path):
    for cell in asserting_cells(path):
        assert PRINTS in cell, (
            f"{path.name}: a cell asserts an accuracy against its target without "
            f"printing the margins line ({PRINTS}...):\n{cell[:300]}"
        )


def test_chapters_assert_accuracies():
    """The margin checks below have something to check."""
    assert sum(len(asserting_cells(p)) for p in CHAPTERS) >= len(CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_margins_on_mnist(chapter: Path):
    page = SITE / f"{chapter.stem}.html"
    if not page.exists():
        pytest.skip(f"{page} is not built: run `make book` (with MNIST_PATH)")
    if page.stat().st_mtime < chapter.stat().st_mtime:
        pytest.skip(f"{page} is older than {chapter.name}: run `make book` again")
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
    found = margins(text)
    expected = len(asserting_cells(chapter))
    assert len(found) == expected, (
        f"{page.name}: {expected} asserted accuracies, {len(found)} margin lines"
    )
    if "mnist: " not in text:
        pytest.skip(f"{page.name} ran on the digits fallback: MNIST was not available")
    problems = short_margins(found)
    if problems and chapter.stem in SHORT_MARGIN_OK:
        reason = SHORT_MARGIN_OK[chapter.stem]
        assert "margin" in text, f"{page.name} must state its thin margin ({reason})"
        pytest.xfail(f"{'; '.join(problems)}: {reason}")
    assert not problems, f"{page.name}: " + "; ".join(problems)


def short_margins(found: list[tuple[float, float, float]]) -> list[str]:
    """The accuracies that clear their target by less than MIN_MARGIN points."""
    problems = []
    for target, val, test in found:
        for name, acc in [("validation", val), ("test", test)]:
            if acc - target < MIN_MARGIN - 1e-9:
                problems.append(
                    f"{name} accuracy {acc:.2f}% clears the target {target:.1f}% by "
                    f"{acc - target:.2f} points, less than {MIN_MARGIN}"
                )
    return problems


def test_margin_line_is_parsed():
    line = "target 97.5%: validation 98.10% (+0.60 points), test 97.80% (+0.30 points)"
    assert margins(line) == [(97.5, 98.10, 97.80)]
    assert margins("target 97%: test 98%") == []


def test_a_short_margin_is_reported():
    # lab 1 before this test: validation below the target, test 0.15 points above
    problems = short_margins(
        margins(
            "target 97.0%: validation 96.47% (-0.53 points), test 97.15% (+0.15 points)"
        )
    )
    assert len(problems) == 2 and "0.15 points" in problems[1]
    assert short_margins([(97.0, 97.5, 97.6)]) == []
