"""The web UI in a real headless Chromium: `glimpse serve` + `glimpse ui` as processes, a query typed + Enter."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from webui_support import (  # noqa: F401  (fixtures are used by name)
    PRODUCTS,
    REPO,
    Api,
    api,
    catalogue_dir,
    child_env,
    free_port,
    launch,
    stop,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)",
    ),
]


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("GLIMPSE_ARTIFACTS") or REPO / ".artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def ui_url(api: Api, tmp_path: Path) -> Iterator[str]:
    """`glimpse ui` on a free port, pointed at the running API."""
    port = free_port()
    args = ["ui", "--host", "127.0.0.1", "--port", str(port), "--api-url", api.url]
    process = launch(args, port, "/_stcore/health", child_env(), tmp_path / "ui.log")
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        stop(process)
        assert process.returncode is not None


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="glimpse-chromium-")
    options = webdriver.ChromeOptions()
    # Debian's browser and driver, named explicitly so Selenium never tries to download one.
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_typing_a_query_and_enter_shows_result_thumbnails_in_the_browser(ui_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(ui_url)
    box = WebDriverWait(browser, 90).until(
        lambda d: d.find_element(By.CSS_SELECTOR, 'input[aria-label="Search"]')
    )
    box.send_keys("red shoes")
    box.send_keys(Keys.ENTER)

    titles = [title for _f, _c, title, _p, _cat in PRODUCTS]

    def settled_results(driver) -> tuple[list, str] | None:
        """Every product card and every video moment rendered, each with its thumbnail decoded.

        Streamlit renders the grid element by element, so thumbnails and text are read in the same
        poll: counting images first and reading the page later raced a card still being drawn.
        """
        images = driver.find_elements(By.CSS_SELECTOR, ".st-key-results img")
        page = driver.find_element(By.TAG_NAME, "body").text
        # naturalWidth > 0: the bytes really arrived and decoded, not just an <img> tag.
        loaded = [
            i
            for i in images
            if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
        ]
        cards = len(titles) + page.count("harbour.mp4")
        every_title = all(title in page for title in titles)
        return (loaded, page) if every_title and len(loaded) == len(images) == cards else None

    try:
        thumbnails, page = WebDriverWait(browser, 90).until(settled_results)
    finally:
        # The screenshot is the artifact a person looks at, whether the wait succeeded or not.
        browser.save_screenshot(str(artifacts_dir() / "webui-results.png"))
    assert len(thumbnails) > len(titles), "the video moments have thumbnails too"
    assert all(title in page for title in titles)
    assert "$59.00" in page and "Traceback" not in page
