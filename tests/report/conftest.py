"""Fixtures of the report tests: a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium with the system browser; nothing is downloaded)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from report_helpers import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, Browser


@pytest.fixture(scope="session")
def browser():
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            pytest.fail(f"{binary} not found: install Debian's chromium and chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="profile-dist-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
