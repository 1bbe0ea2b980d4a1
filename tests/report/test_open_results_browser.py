"""What a Jupyter cell shows for ``open_results(DIR)``: its _repr_html_ in a page, drawn by a real headless Chromium."""

from __future__ import annotations

from report_helpers import influence_row, write_results

import profile_dist


def test_the_inline_report_draws_its_heatmap(browser, tmp_path):
    rows = [influence_row("human", "human", "helpful", f, c, d, ci=(lo, hi), n_bootstrap=50)
            for f, c, d, lo, hi in (("length", 20, 60, -0.7, -0.3), ("bold", 45, 35, -0.1, 0.3))]
    res = profile_dist.open_results(str(write_results(tmp_path / "results", rows)))
    notebook = tmp_path / "notebook.html"  # a notebook output area is an HTML fragment inside the page
    notebook.write_text(f"<!doctype html><html><body><div class='output'>{res._repr_html_()}</div></body></html>")
    errors = [e for e in browser.open(notebook) if e["level"] == "SEVERE"]
    assert errors == []
    browser.driver.switch_to.frame(browser.driver.find_element("css selector", "iframe"))
    try:
        assert browser.js("return document.querySelectorAll('#heatmap-plots svg.heatmap').length") == 1
        cells = browser.js("return Array.from(document.querySelectorAll('svg.heatmap g.hm-cell')).length")
        assert cells == 2
    finally:
        browser.driver.switch_to.default_content()
