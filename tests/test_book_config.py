"""The site's configuration: offline, strict, and the labs shown but not run."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())


def test_cell_errors_fail_the_build():
    sphinx = CONFIG["sphinx"]["config"]
    assert sphinx["nb_execution_raise_on_error"] is True
    assert CONFIG["execute"].get("allow_errors", False) is False
    assert "suppress_warnings" not in sphinx


def test_math_and_widgets_need_no_network():
    assert "sphinx-mathjax-offline" in CONFIG["sphinx"]["extra_extensions"]
    assert CONFIG["sphinx"]["config"]["nb_ipywidgets_js"] == {}


def test_labs_are_rendered_not_executed_and_ipynb_excluded():
    assert "labs/*" in CONFIG["execute"]["exclude_patterns"]
    assert "**.ipynb" in CONFIG["exclude_patterns"]


def test_toc_lists_every_chapter_and_every_lab():
    files = [ch["file"] for part in TOC["parts"] for ch in part["chapters"]]
    chapters = sorted(p.stem for p in (ROOT / "book").glob("0*.md"))
    labs = sorted(f"labs/{p.stem}" for p in (ROOT / "labs").glob("*.md"))
    assert sorted(f for f in files if not f.startswith("labs/")) == chapters
    assert sorted(f for f in files if f.startswith("labs/")) == labs
