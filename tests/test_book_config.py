"""The site: offline, strict, labs shown but not run, and its own extension."""

from __future__ import annotations

import copy
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "course_site", ROOT / "book" / "_ext" / "course_site.py"
)
course_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(course_site)
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


# --------------------------------------------------------------------------------------
# The site extension (book/_ext/course_site.py) on a tiny book built without execution
# --------------------------------------------------------------------------------------

REPO_URL = "https://github.com/example-org/nn-course"
NOTEBOOK_HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""
TINY_CHAPTER = (
    NOTEBOOK_HEADER
    + """
# A tiny chapter

Some math, $z = xW + b$.

```{code-cell} ipython3
print(1 + 1)
```

```{exercise}
:label: tiny-exercise

Why?
```

```{solution} tiny-exercise
:class: dropdown

Because.
```
"""
)
TINY_LAB = (
    NOTEBOOK_HEADER
    + "\n# Lab 1: tiny\n\n```{code-cell} ipython3\n"
    + "x = '!pip install git+<repository URL>'\n```\n"
)


def build_tiny_book(tmp_path: Path, url: str) -> Path:
    """Build a two-page book with the real configuration; return its HTML folder."""
    book = tmp_path / "book"
    (book / "labs").mkdir(parents=True)
    config = copy.deepcopy(CONFIG)
    config["execute"]["execute_notebooks"] = "off"
    config["repository"]["url"] = url
    config["sphinx"]["local_extensions"] = {"course_site": str(ROOT / "book" / "_ext")}
    config["html"]["favicon"] = str(ROOT / "book" / config["html"]["favicon"])
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {"caption": "Chapters", "chapters": [{"file": "01-tiny"}]},
            {"caption": "Labs", "chapters": [{"file": "labs/01-tiny"}]},
        ],
    }
    (book / "_toc.yml").write_text(yaml.safe_dump(toc))
    (book / "intro.md").write_text("# Tiny\n\nThe intro.\n")
    (book / "01-tiny.md").write_text(TINY_CHAPTER)
    (book / "labs" / "01-tiny.md").write_text(TINY_LAB)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(book)]
        + ["--warningiserror", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return book / "_build" / "html"


@pytest.fixture(scope="module")
def site_with_links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_book(tmp_path_factory.mktemp("on"), REPO_URL)


@pytest.fixture(scope="module")
def site_without_links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_book(tmp_path_factory.mktemp("off"), "")


def test_launch_links_are_off_by_default():
    assert CONFIG["repository"]["url"] == ""
    assert CONFIG["repository"]["branch"]
    assert "course_site" in CONFIG["sphinx"]["local_extensions"]


def test_launch_links_when_a_repository_is_set(site_with_links: Path):
    chapter = (site_with_links / "01-tiny.html").read_text()
    lab = (site_with_links / "labs" / "01-tiny.html").read_text()
    binder = "https://mybinder.org/v2/gh/example-org/nn-course/main?urlpath="
    colab = (
        "https://colab.research.google.com/github/example-org/nn-course/blob/gh-pages"
    )
    # Binder opens the MyST source in JupyterLab; a lab's source is labs/ at the top
    assert binder + "lab%2Ftree%2Fbook%2F01-tiny.md" in chapter
    assert binder + "lab%2Ftree%2Flabs%2F01-tiny.md" in lab
    # Colab opens the .ipynb written into the published site
    assert colab + "/_sources/01-tiny.ipynb" in chapter
    assert colab + "/_sources/labs/01-tiny.ipynb" in lab
    # the downloaded lab names the repository to install from
    notebook = nbformat.read(site_with_links / "_sources" / "labs" / "01-tiny.ipynb", 4)
    assert f"!pip install git+{REPO_URL}'" in notebook.cells[-1].source
    assert "mybinder.org" not in (site_with_links / "intro.html").read_text()


def test_no_launch_links_without_a_repository(site_without_links: Path):
    for page in site_without_links.rglob("*.html"):
        text = page.read_text()
        assert "mybinder.org" not in text and "colab.research" not in text, page


def test_every_notebook_page_offers_its_ipynb(site_without_links: Path):
    for page, depth in [("01-tiny", ""), ("labs/01-tiny", "../")]:
        html = (site_without_links / f"{page}.html").read_text()
        assert f'href="{depth}_sources/{page}.ipynb"' in html
        notebook = nbformat.read(site_without_links / "_sources" / f"{page}.ipynb", 4)
        nbformat.validate(notebook)
        assert "jupytext" not in notebook.metadata
        assert [c.cell_type for c in notebook.cells].count("code") == 1
        assert all(not c.get("outputs") for c in notebook.cells)


def test_chapter_and_lab_link_to_each_other(site_without_links: Path):
    chapter = (site_without_links / "01-tiny.html").read_text()
    lab = (site_without_links / "labs" / "01-tiny.html").read_text()
    assert re.search(r'course-partner.*?href="labs/01-tiny.html"', chapter, re.S)
    assert re.search(r'course-partner.*?href="../01-tiny.html"', lab, re.S)


def test_each_script_is_loaded_once(site_without_links: Path):
    # sphinx-thebe registers its inline script twice: a SyntaxError in the browser
    chapter = (site_without_links / "01-tiny.html").read_text()
    assert chapter.count("const THEBE_JS_URL") == 1
    assert chapter.count("var togglebuttonSelector") == 1
    assert chapter.count("mathjax/tex-chtml.js") == 1  # and the math still loads


def test_exercise_solutions_are_toggled(site_without_links: Path):
    chapter = (site_without_links / "01-tiny.html").read_text()
    assert 'class="exercise' in chapter
    assert re.search(r'class="[^"]*solution[^"]*dropdown', chapter)


def test_utils_digest_follows_any_change(tmp_path: Path):
    (tmp_path / "utils").mkdir()
    module = tmp_path / "utils" / "plots.py"
    module.write_text("A = 1\n")
    before = course_site.utils_digest(tmp_path / "utils")
    module.write_text("A = 2\n")
    assert course_site.utils_digest(tmp_path / "utils") != before
    assert course_site.utils_digest(tmp_path / "missing") == ""


def test_utils_digest_invalidates_the_environment():
    app_config: dict = {}

    class App:
        def add_config_value(self, name, default, rebuild):
            app_config[name] = rebuild

        def connect(self, *args, **kwargs):
            pass

    course_site.setup(App())
    assert app_config["course_utils_digest"] == "env"


def test_a_non_github_repository_url_is_a_clear_error():
    with pytest.raises(ValueError, match="GitHub repository URL"):
        course_site.github_repo("https://example.org/course")
    assert course_site.github_repo(REPO_URL + ".git") == ("example-org", "nn-course")


def test_chapters_and_labs_pair_by_number():
    docs = {"intro", "01-a", "02-b", "labs/01-a-lab", "labs/02-b"}
    assert course_site.partner("01-a", docs) == "labs/01-a-lab"
    assert course_site.partner("labs/02-b", docs) == "02-b"
    assert course_site.partner("intro", docs) is None


def test_binder_builds_the_course_and_opens_md_as_notebooks():
    binder = ROOT / ".binder"
    assert "-r ../requirements.txt" in (binder / "requirements.txt").read_text()
    post_build = binder / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    script = post_build.read_text()
    assert "--editable ." in script and "jupytext-config set-default-viewer" in script


def test_intro_needs_no_placeholder():
    assert "<this repository>" not in (ROOT / "book" / "intro.md").read_text()
