"""Helpers of the report tests: a headless Chromium wrapper, the page's embedded data, hand-written results directories."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profile_dist import schema

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags that work as root in a container, with no network chatter of the browser's own.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1280,900",
)


class Browser:
    """One headless Chromium; pages open from file:// as a user would open an attachment."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, html: Path) -> list[dict[str, Any]]:
        """Load the page; return what it logged to the console while loading."""
        self.driver.get_log("browser")  # drop anything left from the previous page
        self.driver.set_window_size(1280, 900)
        self.driver.get(html.resolve().as_uri())
        return self.driver.get_log("browser")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def console(self) -> list[dict[str, Any]]:
        return self.driver.get_log("browser")

    def screenshot(self, name: str) -> Path:
        """Whole-page screenshot at laptop width, kept under test-artifacts/ (gitignored)."""
        ARTIFACTS.mkdir(exist_ok=True)
        height = int(self.js("return Math.ceil(document.documentElement.scrollHeight)"))
        self.driver.set_window_size(1280, min(max(height, 900), 16000))
        self.js("window.scrollTo(0, 0)")
        path = ARTIFACTS / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"screenshot {path} failed"
        self.driver.set_window_size(1280, 900)
        return path


def embedded_data(html: str) -> dict[str, Any]:
    """The JSON the page carries (what its plots are drawn from)."""
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert match, "report.html has no embedded data block"
    return json.loads(match.group(1))


def influence_row(labeler: str, setting: str, task: str, factor: str, c: int, d: int, t: int = 0,
                  ci: tuple[float | None, float | None] = (None, None), n_bootstrap: int = 0) -> dict[str, Any]:
    tau = (c - d) / (c + d) if c + d else None
    return {
        "labeler": labeler, "setting": setting, "task": task, "factor": factor, "n_pairs": c + d + t,
        "n_concordant": c, "n_discordant": d, "n_ties": t, "tau": tau, "tau_a": (c - d) / (c + d + t) if c + d + t else None,
        "relevance": (c + d) / (c + d + t) if c + d + t else None, "p_preferred_more": None if tau is None else (1 + tau) / 2,
        "ci_low": ci[0], "ci_high": ci[1], "n_bootstrap": n_bootstrap,
    }


def write_results(directory: Path, influence: list[dict[str, Any]], replicates: list[dict[str, Any]] | None = None,
                  manifest: dict[str, Any] | None = None) -> Path:
    """A reduce output directory written by hand (the tables the report reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(influence, schema=schema.INFLUENCE), directory / "influence.parquet")
    pq.write_table(schema.ALIGNMENT.empty_table(), directory / "alignment.parquet")
    pq.write_table(schema.SKIPPED.empty_table(), directory / "skipped.parquet")
    if replicates is not None:
        pq.write_table(pa.Table.from_pylist(replicates, schema=schema.REPLICATES), directory / "replicates.parquet")
    if manifest is not None:
        (directory / "_manifest.json").write_text(json.dumps(manifest))
    return directory
