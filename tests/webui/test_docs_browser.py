"""The API's documentation page works offline: Swagger UI's files come from the installed package."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from webui_support import Api, api, catalogue_dir  # noqa: F401  (fixtures are used by name)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def test_the_docs_page_names_no_address_outside_the_api(api: Api) -> None:
    page = httpx.get(f"{api.url}/docs", timeout=30)
    assert page.status_code == 200
    links = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: *['"]([^'"]+)['"]""", page.text)
    urls = [a or b for a, b in links]
    assert urls and all(u.startswith("/") for u in urls), urls
    for url in urls:
        assert httpx.get(f"{api.url}{url}", timeout=30).status_code == 200, url


@pytest.fixture
def offline_browser() -> Iterator[object]:
    """Headless Chromium that can reach 127.0.0.1 and nothing else (every other host fails)."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="glimpse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        # Every name resolves nowhere except loopback: a CDN script would fail to load.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.browser
def test_swagger_ui_renders_the_operations_without_internet(api: Api, offline_browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    offline_browser.get(f"{api.url}/docs")
    operations = WebDriverWait(offline_browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path") or None
    )
    paths = {op.text.replace("\u200b", "") for op in operations}
    assert {"/v1/search", "/v1/search/image", "/v1/items/{item_id}"} <= paths
