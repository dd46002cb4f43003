"""Open the built book in headless Chromium: pages, figures, cell errors and search."""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from test_book_pipeline import smoke_site

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.book,
    pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                       reason="Chromium not installed: apt-get install chromium chromium-driver"),
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(request):
    html, chapters = smoke_site(request.config)
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", chapters
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fslib-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _pages(chapters):
    return ["book/intro.html", "book/rerun.html", "book/parameters.html", "book/bibliography.html",
            *[f"notebooks/{name}.html" for name in chapters]]


def test_pages_load(site, browser):
    base, chapters = site
    for page in _pages(chapters):
        browser.get(f"{base}/{page}")
        assert browser.find_elements("css selector", "article, main"), f"{page} has no content"
        assert "404" not in browser.title, f"{page} not found"


def test_index_redirects(site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = site
    browser.get(f"{base}/index.html")
    WebDriverWait(browser, 10).until(lambda driver: driver.current_url.endswith("book/intro.html"))
    assert browser.find_elements("css selector", "main h1")


def test_figures_load(site, browser):
    base, chapters = site
    for name in chapters:
        browser.get(f"{base}/notebooks/{name}.html")
        images = browser.find_elements("css selector", "main img")
        assert images, f"{name} shows no figure"
        for image in images:
            loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", image)
            assert loaded, f"{name}: image {image.get_attribute('src')} did not load"


def test_no_cell_errors(site, browser):
    base, chapters = site
    for name in chapters:
        browser.get(f"{base}/notebooks/{name}.html")
        errors = browser.find_elements("css selector", ".output.error, .output.traceback")
        assert not errors, f"{name} shows an error output"
        for block in browser.find_elements("css selector", ".output.stderr"):
            assert "Error" not in block.text, f"{name} shows stderr: {block.text[:200]}"


def test_search_returns_results(site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = site
    browser.get(f"{base}/search.html?q=fourier")
    results = WebDriverWait(browser, 20).until(
        lambda driver: driver.find_elements("css selector", "#search-results li, ul.search li"))
    assert len(results) > 0
