"""The built site in a real browser: headless Chromium loads every page.

Run by ``make browser-test`` after ``make book`` (both are part of ``make test``). It
serves ``book/_build/html`` on 127.0.0.1 and, on every page of ``_toc.yml``, asserts
that MathJax typeset every formula (no raw ``$`` or ``\\(`` left in the text), that
every image loaded, that no request left the machine, that the console shows no
error, and that the page shows nothing of the machine that built it. It checks that
the navigation reaches every chapter and lab, and saves a full-page screenshot of
each page at desktop and phone width under ``book/_build/screenshots/``.

Chromium is Debian's ``chromium`` and ``chromium-driver`` packages (``make
browser-test`` installs them when missing and it runs as root).
"""

from __future__ import annotations

import base64
import functools
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
        save_screenshot(driver, SHOTS / name / f"{page.replace('/', '--')}.png")
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


def test_pages_have_math_and_figures(driver, base_url: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    """The chapters have formulas, images and folded solutions (guards the test)."""
    total_formulas = total_images = total_solutions = 0
    for page in PAGES:
        if page.startswith("labs/") or page == PAGES[0]:
            continue
        load(driver, f"{base_url}{page}.html")
        total_formulas += driver.execute_script(RAW_MATH_JS)["formulas"]
        total_images += driver.execute_script("return document.images.length")
        # an exercise's solution starts folded, and opens on a click
        solutions = driver.find_elements("css selector", ".solution.dropdown")
        for solution in solutions:
            body = solution.find_element("css selector", ".admonition-title ~ *")
            assert not body.is_displayed(), f"{page}: a solution is shown unfolded"
            solution.find_element("css selector", "button.toggle-button").click()
            try:  # it unfolds with an animation
                WebDriverWait(driver, 10).until(lambda _, b=body: b.is_displayed())
            except TimeoutException:
                pytest.fail(f"{page}: a solution does not open on a click")
        total_solutions += len(solutions)
    assert total_formulas > 0 and total_images > 0 and total_solutions > 0


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
