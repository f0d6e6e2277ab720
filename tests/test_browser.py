"""The built site in a real browser: headless Chromium loads every page.

Run by ``make browser-test`` after ``make book`` (both are part of ``make test``). It
serves ``book/_build/html`` on 127.0.0.1 and, on every page of ``_toc.yml``, asserts
that MathJax typeset every formula (no raw ``$`` or ``\\(`` left in the text), that
every image loaded, that no request left the machine, that the console shows no
error, and that the page shows nothing of the machine that built it; every
exercise's solution, and every fold of a chapter that holds the course's
implementation of a lab exercise ("The course's implementation: try lab N first"),
starts folded and opens on a click to show its code (the test waits for its fade-in,
and fails with what it saw when it stays folded or invisible). It checks
that the navigation reaches every chapter and lab, and saves a full-page screenshot
of each page at desktop and phone width under ``book/_build/screenshots/``.

Chromium is Debian's ``chromium`` and ``chromium-driver`` packages (``make
browser-test`` installs them when missing and it runs as root).
"""

from __future__ import annotations

import base64
import functools
import html
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "book" / "_build" / "html"
SHOTS = ROOT / "book" / "_build" / "screenshots"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
MAX_SHOT_HEIGHT = 50000  # px; longer pages are cut there
INSTALL = (
    "install Debian's headless browser: `apt-get update && apt-get install -y "
    "chromium chromium-driver` (as root; `make browser-test` does it), or set "
    "CHROMIUM and CHROMEDRIVER to their paths"
)
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
]

pytestmark = pytest.mark.skipif(
    not os.environ.get("NN_BROWSER_TEST"),
    reason="the browser test needs the built site: run `make browser-test`",
)


def toc_pages() -> list[str]:
    """Every page of the book, in reading order (docnames, e.g. ``labs/01-...``)."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


PAGES = toc_pages()
CHAPTER = re.compile(r"^\d\d-")  # chapters have formulas and figures; labs, formulas

# Text nodes outside code, scripts and typeset math: raw TeX must not be left there.
RAW_MATH_JS = r"""
const skip = "pre, code, script, style, mjx-container, .highlight, .cell_output, "
  + "textarea, .MathJax";
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const found = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const parent = node.parentElement;
  if (!parent || parent.closest(skip)) continue;
  const text = node.textContent;
  const match = text.match(/\$|\\\(|\\\)|\\\[|\\\]|\\begin\{/);
  if (match) found.push(text.slice(Math.max(0, match.index - 40), match.index + 40));
}
const untypeset = [...document.querySelectorAll(".math")]
  .filter(e => !e.querySelector("mjx-container"))
  .map(e => e.textContent.slice(0, 80));
const errors = [...document.querySelectorAll("mjx-merror, [data-mjx-error]")]
  .map(e => e.getAttribute("data-mjx-error") || e.textContent.slice(0, 80));
return {raw: found, untypeset: untypeset, errors: errors,
        formulas: document.querySelectorAll("mjx-container").length};
"""

# Resolves once MathJax has typeset the page (at once when the page has no math),
# and every image has loaded or failed.
WAIT_JS = r"""
const done = arguments[arguments.length - 1];
document.querySelectorAll("img[loading=lazy]").forEach(i => { i.loading = "eager"; });
const images = [...document.images].map(i => i.complete ? null
  : new Promise(r => { i.addEventListener("load", r);
                        i.addEventListener("error", r); }));
const math = (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise : Promise.resolve();
Promise.all([math, ...images]).then(() => done(true), e => done(String(e)));
"""

BROKEN_IMAGES_JS = r"""
return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => i.currentSrc || i.src || i.outerHTML.slice(0, 120));
"""

NAV_LINKS_JS = r"""
return [...document.querySelectorAll("nav.bd-links a.reference.internal")]
  .map(a => a.href);
"""


# An exercise's solution (sphinx-exercise, ``:class: dropdown``), folded by
# sphinx-togglebutton: a click on its title or button removes ``toggle-hidden``, and
# the content then fades in (a 0.3 s CSS transition of opacity from 0, which
# Selenium counts as not displayed), so the test waits for the end state.
SOLUTION = ".solution.dropdown"
SOLUTION_HTML = re.compile(r'class="[^"]*\bsolution\b[^"]*\bdropdown\b')
# A chapter's fold of the course's implementation: a MyST admonition with
# ``:class: dropdown``, folded by sphinx-togglebutton in the same way.
FOLD = ".admonition.dropdown:not(.solution)"
FOLD_HTML = re.compile(r'class="dropdown admonition"')
FOLD_TITLE = "The course's implementation: try lab"
SOLUTION_TIMEOUT = 10.0  # s; a loaded machine can stall the animation for seconds
SOLUTION_STATE_JS = r"""
const solution = arguments[0];
const body = solution.querySelector(":scope > .admonition-title ~ *");
const button = solution.querySelector(":scope > .admonition-title .toggle-button");
if (!body || !button) return null;
const style = getComputedStyle(body);
return {folded: solution.classList.contains("toggle-hidden"),
        expanded: button.getAttribute("aria-expanded"),
        opacity: style.opacity, visibility: style.visibility,
        height: Math.round(body.getBoundingClientRect().height)};
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site without logging every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    if not (SITE / "index.html").exists():
        pytest.fail(f"{SITE} has no index.html: run `make book` first")
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    chromedriver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail(f"Chromium or its driver is missing: {INSTALL}")
    profile = tempfile.mkdtemp(prefix="nn-browser-test-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    service = webdriver.ChromeService(executable_path=chromedriver)
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def build_machine_paths() -> set[str]:
    """Folders of the machine that built the site, which no page may show."""
    paths = {str(ROOT), str(Path.home()) + "/"}
    for variable in ("MNIST_PATH", "NN_DATA_DIR"):
        if os.environ.get(variable):
            folder = Path(os.environ[variable]).expanduser().resolve().parent
            if len(folder.parts) > 2:  # never "/" or "/work" alone
                paths.add(str(folder))
    return paths


def requested_urls(browser) -> list[str]:
    """URLs of every request the pages made since the last call."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console_errors(browser) -> list[str]:
    """Console messages of level error since the last call."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def save_screenshot(browser, path: Path) -> None:
    """A PNG of the whole page (not just the window), cut at MAX_SHOT_HEIGHT."""
    metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {
        "x": 0,
        "y": 0,
        "width": size["width"],
        "height": min(size["height"], MAX_SHOT_HEIGHT),
        "scale": 1,
    }
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def load(browser, url: str) -> None:
    browser.get(url)
    result = browser.execute_async_script(WAIT_JS)
    assert result is True, f"{url}: waiting for MathJax and images failed: {result}"


def solution_state(browser, solution) -> dict | None:
    """Whether a solution is folded, and how visible its content is right now."""
    return browser.execute_script(SOLUTION_STATE_JS, solution)


def is_open(browser, solution, body) -> bool:
    """Unfolded, the fade-in finished, and Selenium sees the content."""
    state = solution_state(browser, solution)
    return bool(
        state
        and not state["folded"]
        and state["expanded"] == "true"
        and state["opacity"] == "1"
        and state["visibility"] == "visible"
        and state["height"] > 0
        and body.is_displayed()
    )


def open_solution(browser, solution, timeout: float = SOLUTION_TIMEOUT) -> str | None:
    """Click a folded solution's toggle button as a reader would, and wait for it.

    Args:
        browser: The WebDriver, on a loaded page.
        solution: The solution's admonition element.
        timeout: Seconds to wait for each of: the button clickable, the solution
            unfolded, its content fully visible.

    Returns:
        ``None`` once the solution shows its content; otherwise what went wrong.
    """
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    name = f"solution {solution.get_attribute('id')!r}"
    state = solution_state(browser, solution)
    if state is None:
        return f"{name} has no content or no toggle button"
    body = solution.find_element("css selector", ":scope > .admonition-title ~ *")
    if not state["folded"] or body.is_displayed():
        return f"{name} is shown unfolded before any click"
    button = solution.find_element("css selector", "button.toggle-button")
    # in the middle of the window, clear of the sticky header and the
    # back-to-top button
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    wait = WebDriverWait(browser, timeout, poll_frequency=0.05)
    try:
        wait.until(lambda _: button.is_displayed() and button.is_enabled())
        button.click()
    except TimeoutException:
        return f"{name}: its toggle button is not clickable after {timeout:g} s"
    except WebDriverException as error:
        return f"{name}: clicking its toggle button failed: {error.msg}"
    try:
        wait.until(lambda _: not solution_state(browser, solution)["folded"])
    except TimeoutException:
        return (
            f"{name} stays folded after a click on its toggle button (class "
            f"toggle-hidden still set {timeout:g} s later)"
        )
    try:
        wait.until(lambda _: is_open(browser, solution, body))
    except TimeoutException:
        state = solution_state(browser, solution)
        return (
            f"{name} unfolded but its content is still not visible {timeout:g} s "
            f"after the click (aria-expanded {state['expanded']}, opacity "
            f"{state['opacity']}, visibility {state['visibility']}, height "
            f"{state['height']} px)"
        )
    return None


def first_page_with_solutions(browser, base_url: str) -> str:
    """Load, at desktop width, the first page whose HTML has a folded solution."""
    for page in PAGES:
        if SOLUTION_HTML.search((SITE / f"{page}.html").read_text()):
            browser.set_window_size(*WIDTHS["desktop"])
            load(browser, f"{base_url}{page}.html")
            return page
    pytest.fail("no page of the site has an exercise with a folded solution")


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(driver, base_url: str, page: str):
    requested_urls(driver), console_errors(driver)  # start with empty logs
    url = f"{base_url}{page}.html"
    problems = []
    for name, (width, height) in WIDTHS.items():
        driver.set_window_size(width, height)
        load(driver, url)
        math = driver.execute_script(RAW_MATH_JS)
        if math["raw"]:
            problems.append(f"{name}: raw TeX left in the text: {math['raw'][:3]}")
        if math["untypeset"]:
            problems.append(f"{name}: formulas not typeset: {math['untypeset'][:3]}")
        if math["errors"]:
            problems.append(f"{name}: MathJax errors: {math['errors'][:3]}")
        broken = driver.execute_script(BROKEN_IMAGES_JS)
        if broken:
            problems.append(f"{name}: images that did not load: {broken}")
        # guards the checks above against passing on a page with nothing to check
        images = driver.execute_script("return document.images.length")
        if CHAPTER.match(page) and not (math["formulas"] and images):
            problems.append(
                f"{name}: a chapter with {math['formulas']} typeset formulas and "
                f"{images} images"
            )
        if page.startswith("labs/") and not math["formulas"]:
            problems.append(f"{name}: a lab without a typeset formula")
        save_screenshot(driver, SHOTS / name / f"{page.replace('/', '--')}.png")
        # every exercise's solution starts folded (as in the screenshot) and opens
        # on a click
        for solution in driver.find_elements("css selector", SOLUTION):
            problem = open_solution(driver, solution)
            if problem:
                problems.append(f"{name}: {problem}")
        # every fold of the course's implementation too, and it shows code
        for fold in driver.find_elements("css selector", FOLD):
            problem = open_solution(driver, fold)
            if problem:
                problems.append(f"{name}: fold: {problem}")
            elif not fold.find_elements("css selector", ".highlight pre"):
                problems.append(f"{name}: fold {fold.text[:60]!r} opened on no code")
    # chrome:// and data: URLs are the browser's own; any network URL must be ours
    network = ("http:", "https:", "ws:", "wss:", "ftp:")
    outside = [
        u
        for u in requested_urls(driver)
        if u.startswith(network) and not u.startswith(base_url)
    ]
    if outside:
        problems.append(f"requests that left the machine: {sorted(set(outside))}")
    errors = console_errors(driver)
    if errors:
        problems.append(f"console errors: {errors}")
    source = driver.page_source
    for private in build_machine_paths():
        if private in source:
            problems.append(f"the page shows a path of the build machine: {private}")
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


def test_chapters_have_folded_solutions():
    """Some chapter poses an exercise with a folded solution, so the per-page check
    that every solution opens on a click is not an empty promise."""
    if not SITE.is_dir():
        pytest.fail(f"{SITE} does not exist: run `make book` first")
    found = {
        page: len(SOLUTION_HTML.findall((SITE / f"{page}.html").read_text()))
        for page in PAGES
        if CHAPTER.match(page)
    }
    assert sum(found.values()) > 0, f"no folded exercise solution: {found}"


def test_chapters_fold_the_course_implementations():
    """Every chapter folds the code its lab asks for, titled for that lab, so the
    per-page check that every fold opens on a click is not an empty promise."""
    if not SITE.is_dir():
        pytest.fail(f"{SITE} does not exist: run `make book` first")
    missing = []
    for page in PAGES:
        if not CHAPTER.match(page):
            continue
        text = (SITE / f"{page}.html").read_text()
        folds = len(FOLD_HTML.findall(text))
        # Sphinx's smart quotes turn the title's ' into a right single quote
        title = f"{FOLD_TITLE} {int(page[:2])} first"
        if not folds or title not in html.unescape(text).replace("\u2019", "'"):
            missing.append(f"{page}: {folds} folds")
    assert not missing, f"chapters without a fold of their lab's code: {missing}"


def test_a_folded_implementation_opens_on_a_click(driver, base_url: str):
    """Chapter 1's first fold starts closed, its code hidden, and opens on a click."""
    driver.set_window_size(*WIDTHS["desktop"])
    load(driver, f"{base_url}{PAGES[1]}.html")
    folds = driver.find_elements("css selector", FOLD)
    assert folds, f"{PAGES[1]} has no fold of the course's implementation"
    code = folds[0].find_element("css selector", ".highlight pre")
    assert not code.is_displayed(), "the fold's code is visible before any click"
    assert open_solution(driver, folds[0]) is None
    assert code.is_displayed() and "def " in code.text, code.text[:80]


def test_a_slow_unfold_is_waited_for(driver, base_url: str):
    """A solution that takes seconds to fade in still counts as opening (no race)."""
    page = first_page_with_solutions(driver, base_url)
    driver.execute_script(
        "const s = document.createElement('style');"
        "s.textContent = '.admonition.toggle .admonition-title ~ * "
        "{ transition: opacity 2s, height 2s !important; }';"
        "document.head.appendChild(s);"
    )
    solution = driver.find_elements("css selector", SOLUTION)[0]
    assert open_solution(driver, solution) is None, page


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        # the click never reaches sphinx-togglebutton's handler on the title
        (
            "document.addEventListener('click', e => { if (e.target.closest("
            "'.admonition-title')) e.stopPropagation(); }, true);",
            "stays folded after a click",
        ),
        # the solution unfolds but its content never becomes visible
        (
            "const s = document.createElement('style');"
            "s.textContent = '.admonition.toggle .admonition-title ~ * "
            "{ opacity: 0 !important; }'; document.head.appendChild(s);",
            "content is still not visible",
        ),
    ],
    ids=["click-ignored", "content-invisible"],
)
def test_a_solution_that_does_not_open_fails(
    driver, base_url: str, breakage: str, expected: str
):
    """The solution check is not a tautology: a broken toggle is reported."""
    first_page_with_solutions(driver, base_url)
    driver.execute_script(breakage)
    solution = driver.find_elements("css selector", SOLUTION)[0]
    problem = open_solution(driver, solution, timeout=1.0)
    assert problem is not None and expected in problem, problem


def test_navigation_reaches_every_chapter_and_lab(driver, base_url: str):
    driver.set_window_size(*WIDTHS["desktop"])
    load(driver, f"{base_url}index.html")
    in_nav = {
        re.sub(r"\.html(#.*)?$", "", h[len(base_url) :])
        for h in driver.execute_script(NAV_LINKS_JS)
    }
    missing = [p for p in PAGES[1:] if p not in in_nav]
    assert not missing, f"the sidebar does not link to: {missing}"
    # the "next" links walk the whole book in the order of _toc.yml
    visited = [PAGES[0]]
    for _ in PAGES[1:]:
        nxt = driver.find_elements("css selector", "a.right-next")
        assert nxt, f"{visited[-1]} has no link to the next page"
        nxt[0].click()
        visited.append(
            re.sub(r"\.html(#.*)?$", "", driver.current_url[len(base_url) :])
        )
    assert visited == PAGES


def test_no_file_of_the_site_shows_the_build_machine():
    """Pages, downloads and the search index: no path of the machine that built them."""
    if not SITE.is_dir():
        pytest.fail(f"{SITE} does not exist: run `make book` first")
    private = build_machine_paths()
    found = []
    for path in SITE.rglob("*"):
        if path.suffix not in {".html", ".ipynb", ".md", ".js", ".txt"}:
            continue
        if path.relative_to(SITE).parts[0] == "_static":  # third-party assets
            continue
        text = path.read_text(errors="replace")
        found += [f"{path.relative_to(SITE)}: {p}" for p in private if p in text]
    assert not found, "build-machine paths on the site:\n" + "\n".join(found)
