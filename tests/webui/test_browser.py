"""The web UI in a real headless Chromium: `glimpse serve` + `glimpse ui` as processes, driven as a person would."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from glimpse.webui.formatting import point_time
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


@pytest.fixture(scope="module")
def ui_url(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`glimpse ui` on a free port, pointed at the running API (one for this module's tests)."""
    port = free_port()
    args = ["ui", "--host", "127.0.0.1", "--port", str(port), "--api-url", api.url]
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    process = launch(args, port, "/_stcore/health", child_env(), log)
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
    # "Relevant only" is on by default; off, every product and moment is shown, ranked.
    relevant_only_off(browser)
    box = browser.find_element(By.CSS_SELECTOR, 'input[aria-label="Search"]')
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
    # Why each matched: the shoes' catalogue text holds "shoes", marked in the card's line.
    marked = [
        m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, ".st-key-results .glimpse-why mark")
    ]
    assert "shoes" in marked or "red" in marked, marked


def relevant_only_off(browser) -> None:
    """Turn the sidebar's "Relevant only" (on by default, as checked here) off, and wait for it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    checkbox = ".st-key-relevant_input input[type=checkbox]"
    toggle = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, checkbox))
    assert toggle.is_selected()
    browser.find_element(By.CSS_SELECTOR, ".st-key-relevant_input label").click()
    WebDriverWait(browser, 30).until(lambda d: not d.find_element(By.CSS_SELECTOR, checkbox).is_selected())


def submit_query(browser, ui_url: str, text: str, relevant_only: bool = True) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(ui_url)
    box = WebDriverWait(browser, 90).until(
        lambda d: d.find_element(By.CSS_SELECTOR, 'input[aria-label="Search"]')
    )
    if not relevant_only:
        relevant_only_off(browser)
        box = browser.find_element(By.CSS_SELECTOR, 'input[aria-label="Search"]')
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def button_with_text(browser, text: str):
    """The button whose own label is ``text`` (Streamlit puts the icon's name in the text too)."""
    from selenium.webdriver.common.by import By

    for button in browser.find_elements(By.TAG_NAME, "button"):
        if button.text.strip().splitlines()[-1:] == [text]:
            return button
    return None


def test_play_starts_the_video_from_the_api_at_its_best_match(api, ui_url, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    # A query whose moment's best match lies past the start (with the seeded tiny model, "blue"
    # lands nearest the video's second scene), so playing from 0 would be caught.
    moments = httpx.post(f"{api.url}/v1/search", json={"q": "blue", "media": "video"}, timeout=60).json()
    latest = max(moments["results"], key=lambda r: r["best_time"])  # the one furthest into the video
    assert latest["best_time"] >= 1
    submit_query(browser, ui_url, "blue", relevant_only=False)  # every moment, as the API was asked
    label = f"Play {point_time(latest['best_time'])}"
    WebDriverWait(browser, 90).until(lambda d: button_with_text(d, label)).click()

    def playing(driver) -> list | None:
        state = driver.execute_script(
            "const v = document.querySelector('video');"
            "return v && [v.currentSrc, v.paused, v.currentTime, v.muted, v.error && v.error.code];"
        )
        return state if state and not state[1] and state[2] > 0 else None

    try:
        source, _paused, position, muted, error = WebDriverWait(browser, 60).until(playing)
    finally:
        browser.save_screenshot(str(artifacts_dir() / "webui-player.png"))
    # Straight from the API (which answers range requests), not relayed by the UI server.
    assert source == f"{api.url}/v1/media/{latest['id']}"
    assert position >= int(latest["best_time"]) and muted and error is None


def test_an_upload_that_is_not_an_image_shows_the_apis_message(ui_url, browser, tmp_path):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fake = tmp_path / "notes.jpg"
    fake.write_text("These are my shopping notes, not a picture.\n" * 20)
    browser.get(ui_url)
    # The search box is drawn last of the form: the page has settled before the expander is used.
    WebDriverWait(browser, 90).until(lambda d: d.find_element(By.CSS_SELECTOR, 'input[aria-label="Search"]'))
    expander = browser.find_element(By.XPATH, "//summary[contains(., 'Search with an image')]")
    expander.click()
    picker = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, 'input[type="file"]'))
    picker.send_keys(str(fake))

    def answered(driver) -> str | None:
        page = driver.find_element(By.TAG_NAME, "body").text
        return page if "did not accept notes.jpg" in page or "Traceback" in page else None

    try:
        page = WebDriverWait(browser, 120).until(answered)
    except TimeoutException as exc:
        page = browser.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"no answer to the upload on the page:\n{page}") from exc
    finally:
        browser.save_screenshot(str(artifacts_dir() / "webui-refused-upload.png"))
    assert "not an image in an accepted format" in page
    assert "Traceback" not in page and "UnidentifiedImageError" not in page


def test_the_detail_table_wraps_long_values_inside_its_column(ui_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    submit_query(browser, ui_url, "boot")

    def card_position(driver) -> list[int] | None:
        """[position] of the boot's card once it is drawn (a list: position 0 is an answer too)."""
        cards = driver.find_elements(By.CSS_SELECTOR, ".st-key-results .glimpse-title")
        titles = [e.get_attribute("title") for e in cards]
        return [titles.index("Blue leather boot")] if "Blue leather boot" in titles else None

    [position] = WebDriverWait(browser, 90).until(card_position)
    browser.find_element(By.CSS_SELECTOR, f".st-key-open-results-{position} button").click()
    # The boot's shop link is one long unbroken URL: the table must wrap it, not scroll.
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-details table a"))
    try:
        overflow = browser.execute_script(
            "const box = document.querySelector('.st-key-details');"
            "const table = box.querySelector('table');"
            "const wide = [...box.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1);"
            "return [table.getBoundingClientRect().right - box.getBoundingClientRect().right, wide.length];"
        )
    finally:
        browser.save_screenshot(str(artifacts_dir() / "webui-detail.png"))
    assert overflow[0] <= 1 and overflow[1] == 0, overflow
