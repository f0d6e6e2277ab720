"""Sphinx extension for the course site (loaded by ``book/_config.yml``).

It does four things that Jupyter Book 1 does not do on its own:

1. **A notebook to take away.** Every notebook page (chapters and labs, MyST
   Markdown) gets a ``.ipynb`` converted from its source by jupytext at build time
   and written next to the ``.md`` under ``_sources/``; the page's download menu
   offers it. Nothing generated is committed.
2. **Launch links, off by default.** When ``repository.url`` in ``_config.yml``
   names a GitHub repository, every notebook page links to Binder (JupyterLab on
   the page's ``.md``, opened as a notebook by jupytext: see ``.binder/``) and to
   Colab (on the page's generated ``.ipynb``, as published with the site on the
   ``gh-pages`` branch by ``ghp-import``). With ``repository.url: ""`` there are
   none.
3. **Chapters and labs link to each other.** Pages pair by their number: chapter
   ``NN-name`` and lab ``labs/NN-name`` (the same two digits). Each gets a "see
   also" box under its title that links to the other, so a new stage only needs
   its chapter and its lab in ``_toc.yml``.
4. **Fresh outputs when ``utils/`` changes.** A digest of ``utils/**/*.py`` is a
   configuration value that invalidates the environment, so a change anywhere in
   ``utils/`` makes Sphinx re-read, and myst-nb re-execute, every chapter.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

BINDER_URL = "https://mybinder.org"
COLAB_URL = "https://colab.research.google.com"
CHAPTER = re.compile(r"^(\d\d)-[^/]+$")
LAB = re.compile(r"^labs/(\d\d)-[^/]+$")


def utils_digest(utils_dir: Path) -> str:
    """Hash every Python file under ``utils_dir`` (names and contents).

    Args:
        utils_dir: The ``utils`` package folder.

    Returns:
        A hex SHA-256 digest; ``""`` when the folder does not exist.
    """
    if not utils_dir.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(utils_dir.rglob("*.py")):
        digest.update(path.relative_to(utils_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def github_repo(url: str) -> tuple[str, str] | None:
    """Split ``https://github.com/<org>/<repo>`` into ``(org, repo)``.

    Args:
        url: The repository URL from ``repository.url``.

    Returns:
        ``(org, repo)``, or ``None`` when ``url`` is empty.

    Raises:
        ValueError: If ``url`` is set but is not a GitHub repository URL.
    """
    url = (url or "").strip()
    if not url:
        return None
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    if match is None:
        raise ValueError(
            f"repository.url in book/_config.yml is {url!r}: launch links need a "
            "GitHub repository URL such as https://github.com/<org>/<repo>, or "
            '"" to switch them off.'
        )
    return match.group(1), match.group(2)


def launch_links(
    pagename: str, url: str, branch: str, path_to_book: str, site_branch: str
) -> dict[str, str]:
    """The Binder and Colab links of one notebook page.

    Binder opens JupyterLab on the page's MyST source in the repository (a lab's
    source is ``labs/NN-name.md``, which ``make book`` copies into the book).
    Colab opens the ``.ipynb`` generated at build time, published with the site.

    Args:
        pagename: Sphinx docname, e.g. ``"labs/01-two-layer-net"``.
        url: ``repository.url``.
        branch: ``repository.branch``, the branch Binder builds.
        path_to_book: ``repository.path_to_book``, the book's folder in the
            repository.
        site_branch: The branch the built site is published on (``gh-pages``).

    Returns:
        ``{"Binder": ..., "Colab": ...}``, or ``{}`` when ``url`` is empty.
    """
    parts = github_repo(url)
    if parts is None:
        return {}
    org, repo = parts
    book = path_to_book.strip("/")
    # a lab's source is labs/NN-name.md at the top of the repository
    in_book = not LAB.match(pagename) and book
    source = f"{book}/{pagename}.md" if in_book else f"{pagename}.md"
    binder = (
        f"{BINDER_URL}/v2/gh/{org}/{repo}/{quote(branch, safe='')}"
        f"?urlpath={quote('lab/tree/' + source, safe='')}"
    )
    colab = (
        f"{COLAB_URL}/github/{org}/{repo}/blob/{site_branch}/_sources/{pagename}.ipynb"
    )
    return {"Binder": binder, "Colab": colab}


def _is_notebook(app: Sphinx, pagename: str) -> bool:
    return "kernelspec" in app.env.metadata.get(pagename, {})


def _set_utils_digest(app: Sphinx, config: Config) -> None:
    config.course_utils_digest = utils_digest(Path(app.srcdir).parent / "utils")


def _offer_ipynb(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """Write the page's ``.ipynb`` under ``_sources`` and offer it for download."""
    if not _is_notebook(app, pagename):
        return
    import jupytext  # noqa: PLC0415 (only needed when building notebook pages)

    notebook = jupytext.read(app.env.doc2path(pagename))
    notebook.metadata.pop("jupytext", None)  # opens in plain Jupyter, no pairing
    url = app.config.html_theme_options.get("repository_url", "")
    if github_repo(url) is not None:
        # the labs' first cell says how to install the course in Colab
        for cell in notebook.cells:
            cell.source = cell.source.replace("git+<repository URL>", f"git+{url}")
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, target, fmt="ipynb")
    context["ipynb_source"] = f"{pagename}.ipynb"


def _add_launch_buttons(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """Add the Binder/Colab group to the page header when a repository is set."""
    if not _is_notebook(app, pagename):
        return
    options = app.config.html_theme_options
    links = launch_links(
        pagename,
        options.get("repository_url", ""),
        options.get("repository_branch", "") or "main",
        options.get("path_to_docs", ""),
        app.config.course_site_branch,
    )
    if not links:
        return
    icons = {
        "Binder": "_static/images/logo_binder.svg",
        "Colab": "_static/images/logo_colab.png",
    }
    context["header_buttons"].append(
        {
            "type": "group",
            "tooltip": "Launch interactive content",
            "icon": "fas fa-rocket",
            "label": "launch-buttons",
            "buttons": [
                {
                    "type": "link",
                    "text": name,
                    "tooltip": f"Launch on {name}",
                    "icon": icons[name],
                    "url": link,
                    "label": f"launch-{name.lower()}-button",
                }
                for name, link in links.items()
            ],
        }
    )


def partner(docname: str, docnames: set[str]) -> str | None:
    """The lab of a chapter, or the chapter of a lab, paired by number.

    Args:
        docname: E.g. ``"01-two-layer-net"`` or ``"labs/01-two-layer-net"``.
        docnames: Every document of the book.

    Returns:
        The partner's docname, or ``None`` when there is none.
    """
    if match := CHAPTER.match(docname):
        pattern = LAB
    elif match := LAB.match(docname):
        pattern = CHAPTER
    else:
        return None
    number = match.group(1)
    found = sorted(d for d in docnames if (m := pattern.match(d)) and m[1] == number)
    return found[0] if found else None


def _link_partner(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Put a "see also" box linking chapter and lab under the page title."""
    if app.builder.format != "html":
        return
    other = partner(docname, set(app.env.found_docs))
    if other is None:
        return
    title = app.env.titles[other].astext()
    if LAB.match(other):
        before, after = "Write this chapter's code yourself, with checks: ", "."
    else:
        before, after = "This lab goes with the chapter ", "."
    uri = app.builder.get_relative_uri(docname, other)
    para = nodes.paragraph()
    para += nodes.Text(before)
    para += nodes.reference("", title, internal=True, refuri=uri)
    para += nodes.Text(after)
    box = addnodes.seealso()
    box["classes"].append("course-partner")
    box += para
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not isinstance(section[0], nodes.title):
        return
    section.insert(1, box)


def _drop_duplicate_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """Keep one copy of each script of the page.

    sphinx-thebe registers its inline configuration (``const THEBE_JS_URL = ...``)
    twice, and the browser reports the second copy as a SyntaxError on every page.
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique: list[Any] = []
    for script in scripts:
        # the two copies differ only in filename, None or "", for an inline script
        attributes = getattr(script, "attributes", {})
        key = (
            getattr(script, "filename", script) or "",
            tuple(sorted((k, str(v)) for k, v in attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # in place: this list is the builder's, which later handlers (MathJax) extend
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the configuration values and event handlers."""
    app.add_config_value("course_utils_digest", "", "env")
    app.add_config_value("course_site_branch", "gh-pages", "html")
    app.connect("config-inited", _set_utils_digest)
    app.connect("doctree-resolved", _link_partner)
    # before the theme builds its download menu (priority 501), and after it
    app.connect("html-page-context", _offer_ipynb, priority=400)
    app.connect("html-page-context", _add_launch_buttons, priority=510)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=450)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
