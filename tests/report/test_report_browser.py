"""report.html opened in a real headless Chromium: the demo (its simulated model's sources, LLM factors and gap
marked as simulated), AlpacaEval data, and a corpus with a planted script. Each page must load with no console error, draw every plot its data calls for, and show
a cell's deciding pairs on click; corpus text must stay text. Screenshots land in test-artifacts/."""

from __future__ import annotations

import base64
import json
import math
import random
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_helpers import ARTIFACTS, embedded_data
from selenium.webdriver.common.by import By
from selenium.webdriver.common.print_page_options import PrintOptions

from profile_dist import schema
from profile_dist.factors import all_factors
from profile_dist.workflows.demo import run_demo
from profile_dist.workflows.job import CorpusConfig, JobConfig, run_job
from profile_dist.report import build_report

pytestmark = pytest.mark.usefixtures("ray_session")

PLANTED = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>not bold</b>'
EVIL_LABELER = "<em>m2</em>"


def severe(entries: list[dict]) -> list[dict]:
    return [e for e in entries if e["level"] == "SEVERE"]


def expected_plots(data: dict) -> dict[str, int]:
    """How many SVG plots of each kind the page's own data calls for (all tasks, all sources shown)."""
    tasks = {r["task"] for r in data["influence"]}
    aligned = {a["task"] for a in data["alignment"] if a["metric"] == "spearman_rho"}
    plots = {"svg.legend-scale": 1, "svg.heatmap": len(tasks), "svg.forest": len(tasks), "svg.alignment": len(aligned),
             "svg.gap": 1 if data["gaps"]["alignment"] else 0}
    sources_with_adjusted = {(a["task"], a["labeler"], a["setting"]) for a in data["adjusted"]}
    plots["svg.adjusted"] = len(sources_with_adjusted)
    plots["svg.drift"] = len({(p["task"], p["labeler"], p["setting"]) for p in data["drift"]["points"]}) if data["drift"] else 0
    return plots


def check_page(browser, html: Path, name: str) -> dict:
    """Open, screenshot, no console errors, every plot drawn with a real size; returns the embedded data."""
    data = embedded_data(html.read_text())
    logged = browser.open(html)
    assert browser.js("return document.documentElement.getAttribute('data-rendered')") == "true"
    assert browser.screenshot(name).stat().st_size > 10_000
    assert not severe(logged + browser.console()), logged
    for selector, count in expected_plots(data).items():
        sizes = browser.js("return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getBoundingClientRect().width * e.getBoundingClientRect().height)", selector)
        assert len(sizes) == count, f"{name}: {selector}: {len(sizes)} drawn, {count} expected"
        assert all(size > 1000 for size in sizes), f"{name}: {selector} drawn with no size: {sizes}"
    cells = browser.js("return document.querySelectorAll('g.hm-cell').length")
    assert cells == len(data["influence"])
    return data


def click_cell(browser, data: dict, labeler: str, setting: str, factor: str, task: str = "helpful") -> list:
    """Click a heatmap cell as a user would; return the deciding pairs shown for it."""
    selector = f'g.hm-cell[data-task="{task}"][data-labeler="{labeler}"][data-setting="{setting}"][data-factor="{factor}"]'
    cell = browser.js("return document.querySelector(arguments[0])", selector)
    assert cell is not None, selector
    browser.js("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    panel = browser.driver.find_element(By.CSS_SELECTOR, "#cell-pairs .pairs-cell")
    assert panel.get_attribute("data-factor") == factor and panel.get_attribute("data-source") == f"{labeler}/{setting}"
    assert browser.js("return document.querySelectorAll(arguments[0] + '.selected').length", selector) == 1
    shown = panel.find_elements(By.CSS_SELECTOR, "article.pair")
    expected = [e for e in data["examples"] if (e["task"], e["labeler"], e["setting"], e["factor"]) == (task, labeler, setting, factor)]
    assert [a.get_attribute("data-pair-id") for a in shown] == [e["pair_id"] for e in expected]
    return shown


# --- the demo corpus ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory) -> Path:
    return Path(run_demo(str(tmp_path_factory.mktemp("demo")), bootstrap=50, say=lambda line: None, progress=False))


def test_demo_report_in_chromium(browser, demo_results):
    html = demo_results / "report.html"
    data = check_page(browser, html, "report-demo")
    text = lambda selector: browser.js("return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)", selector)

    # The simulated model: a banner, and a mark on each of its sources, on each LLM factor's rows and on the gap.
    banner = browser.driver.find_element(By.ID, "simulated-banner")
    assert banner.is_displayed() and "sim-model, sim-rater are simulated models" in banner.text
    llm_factors = {f.name for f in all_factors() if f.kind != "rule"} & {r["factor"] for r in data["influence"]}
    assert {"fluency", "facts"} <= llm_factors
    for plot in ("svg.heatmap", "svg.forest"):
        labels = dict(zip(browser.js(f"return Array.from(document.querySelectorAll('{plot} text.factor-label')).map(e => e.getAttribute('data-factor'))"),
                          text(f"{plot} text.factor-label")))
        assert set(labels) == {r["factor"] for r in data["influence"]}
        assert {f for f, shown in labels.items() if shown == f"{f} (simulated)"} == llm_factors, plot
        assert {f for f, shown in labels.items() if shown == f} == set(labels) - llm_factors, plot
        assert set(browser.js(f"return Array.from(document.querySelectorAll('{plot} text.factor-label.simulated')).map(e => e.getAttribute('data-factor'))")) == llm_factors
    assert sorted(text("svg.heatmap text.source-setting")) == ["evaluation (simulated)", "generation (simulated)", "human"]
    for labeler, setting, factor, simulated in (("human", "human", "fluency", "true"), ("human", "human", "length", "false"),
                                                 ("sim-model", "generation", "length", "true")):
        cell = f'g.hm-cell[data-labeler="{labeler}"][data-setting="{setting}"][data-factor="{factor}"]'
        assert browser.js("return document.querySelector(arguments[0]).getAttribute('data-simulated')", cell) == simulated
    # The generation-evaluation gap is drawn for the simulated model, and says so.
    assert data["gaps"]["alignment"] and browser.js("return document.querySelectorAll('#gap-plots svg.gap').length") == 1
    assert text("#gap-plots text.gap-model.simulated") == ["sim-model (simulated) (task helpful)"]
    gap_rows = browser.js("return Array.from(document.querySelectorAll('#gap-plots table.gap-factors tr[data-simulated=\"true\"] td:nth-child(2)')).map(e => e.textContent)")
    assert gap_rows and set(gap_rows) == {"sim-model (simulated)"}
    assert "No model appears both as judge" not in browser.js("return document.getElementById('alignment').textContent")
    browser.js("document.getElementById('alignment').scrollIntoView()")
    browser.screenshot("report-demo-gap")
    assert browser.js("return document.querySelectorAll('#examples-list article.pair').length") > 0  # top findings' pairs, for print
    shown = click_cell(browser, data, "human", "human", "length")
    assert shown, "the demo's human/length cell has deciding pairs"
    first = data["examples"][[e["pair_id"] for e in data["examples"]].index(shown[0].get_attribute("data-pair-id"))]
    texts = [browser.js("return arguments[0].textContent", e) for e in shown[0].find_elements(By.CSS_SELECTOR, "pre.response")]
    assert texts == [first["preferred"]["text"], first["other"]["text"]]
    browser.screenshot("report-demo-clicked")

    # Sort factors by strongest |tau|: rows follow the data's order.
    browser.js("const s = document.getElementById('factor-sort'); s.value = 'strongest'; s.dispatchEvent(new Event('change'))")
    strongest = {}
    for r in data["influence"]:
        if r["tau"] is not None:
            strongest[r["factor"]] = max(strongest.get(r["factor"], -1), abs(r["tau"]))
    order = browser.js("""return Array.from(document.querySelectorAll('svg.heatmap g.hm-cell[data-source="human/human"]'))
                          .sort((a, b) => a.querySelector('rect').getAttribute('y') - b.querySelector('rect').getAttribute('y'))
                          .map(g => g.getAttribute('data-factor'))""")
    defined = [f for f in order if f in strongest]
    assert defined == sorted(strongest, key=lambda f: (-strongest[f], f))

    # Filter a source out: its column, forest markers and alignment disappear; back in, they return.
    box = browser.driver.find_element(By.CSS_SELECTOR, '#source-filter input[data-source="sim-model/evaluation"]')
    assert box.find_element(By.XPATH, "..").text.strip() == "sim-model/evaluation (simulated)"
    box.click()
    assert browser.js("""return document.querySelectorAll('[data-source="sim-model/evaluation"]:not(input)').length""") == 0
    assert browser.js("return document.querySelectorAll('svg.alignment').length") == 1  # human vs the writer remain
    box.click()
    assert browser.js("""return document.querySelectorAll('g.hm-cell[data-source="sim-model/evaluation"]').length""") > 0
    assert not severe(browser.console())

    # Printable: the print stylesheet hides the controls, and Chromium prints the page to a real PDF.
    browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert browser.js("return getComputedStyle(document.getElementById('controls')).display") == "none"
    browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    pdf = base64.b64decode(browser.driver.print_page(PrintOptions()))
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
    (ARTIFACTS / "report-demo.pdf").write_bytes(pdf)


# --- AlpacaEval -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alpaca_results(tmp_path_factory, shared_data) -> Path:
    files = [str(shared_data / "alpaca_eval" / name) for name in (
        "alpaca-7b.alpaca_eval_gpt4.annotations.json.gz", "alpaca-7b_concise.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz")]
    job = JobConfig(output=str(tmp_path_factory.mktemp("alpaca")), corpora=[CorpusConfig(name="alpaca_eval", format="alpaca_eval", input=files)], bootstrap=50)
    return Path(run_job(job, progress=False))


def test_alpaca_eval_report_in_chromium(browser, alpaca_results):
    data = check_page(browser, alpaca_results / "report.html", "report-alpaca-eval")
    shown = click_cell(browser, data, "alpaca_eval_gpt4", "evaluation", "length")
    assert len(shown) == 3
    # The GPT-4 judge prefers the longer response: every pair shown has a longer preferred response.
    for article in shown:
        heads = [h.text for h in article.find_elements(By.CSS_SELECTOR, "h4")]
        preferred, other = (float(h.rsplit("= ", 1)[1]) for h in heads)
        assert preferred > other
    browser.screenshot("report-alpaca-eval-clicked")
    assert not severe(browser.console())


# --- a planted script, HTML in names, and every optional section -------------------------------------------------


def planted_rows() -> list[dict]:
    """Pairs with varied style, labelled by hidden utilities: humans like short on-topic answers, m1 as judge
    likes length and lists, m1 as writer likes length and bold; the oddly named m2 flips a coin."""
    rng = random.Random(5)
    utilities = {("human", "human"): {"words": -0.1, "topic": 2.0}, ("m1", "evaluation"): {"words": 0.1, "list": 1.5},
                 ("m1", "generation"): {"words": 0.15, "bold": 1.5}, (EVIL_LABELER, "evaluation"): {}}

    def response(topic: str) -> tuple[str, dict]:
        style = {"words": rng.randint(3, 30), "topic": rng.random() < 0.5, "list": rng.random() < 0.4, "bold": rng.random() < 0.4}
        words = ([topic, "is", "done", "like", "this:"] if style["topic"] else ["Consider", "unrelated", "matters:"])
        body = " ".join(rng.choice(["step", "idea", "detail", "note", "tip"]) for _ in range(style["words"]))
        text = ("**Key:** " if style["bold"] else "") + " ".join(words) + ("\n- " + body.replace(" tip ", "\n- tip ") if style["list"] else " " + body)
        return text, style

    rows = []
    for i in range(40):
        topic = f"topic{i}"
        (a, sa), (b, sb) = response(topic), response(topic)
        for (labeler, setting), weights in utilities.items():
            margin = sum(w * (float(sa[k]) - float(sb[k])) for k, w in weights.items())
            label = "a" if rng.random() < 1 / (1 + math.exp(-margin)) else "b"
            rows.append({"prompt": f"How about {topic} <b>now</b> & <!-- then -->?", "response_a": a, "response_b": b, "label": label,
                         "labeler": labeler, "setting": setting, "task": "helpful"})
    # A second task, so the task filter has something to filter.
    for i in range(30):
        (a, sa), (b, sb) = response(f"post{i}"), response(f"post{i}")
        for labeler, setting in (("human", "human"), ("m1", "evaluation")):
            rows.append({"prompt": f"Summarise post{i}", "response_a": a, "response_b": b, "task": "summarization",
                         "label": "a" if sa["words"] < sb["words"] else "b", "labeler": labeler, "setting": setting})
    # The planted response is the longest of all, preferred by m1 as judge: it tops m1's length cell.
    rows.append({"prompt": "Planted <script>alert('prompt')</script>", "response_a": PLANTED + " filler" * 200,
                 "response_b": "short", "label": "a", "labeler": "m1", "setting": "evaluation", "task": "helpful"})
    return rows


@pytest.fixture(scope="module")
def planted_results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    corpus = root / "planted.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in planted_rows()))
    results = Path(run_job(JobConfig(output=str(root / "job"), corpora=[CorpusConfig(name="planted", format="pairs", input=[str(corpus)])], bootstrap=50,
                                       alignment_factors="all"), progress=False))  # rule factors: compare them all
    # Adjusted effects beside plain tau (a table the reduce may write): one factor's sign flips.
    influence = pl.read_parquet(results / "influence.parquet").to_dicts()
    adjusted = []
    for r in influence:
        row = {name: None for name in schema.ADJUSTED.names}
        flip = -1 if r["factor"] == "novel_words" else 1
        tau = r["tau"]
        row.update({k: r[k] for k in ("labeler", "setting", "task", "factor")}, tau=tau, n_length_matched_decided=0, n_bt_pairs=10,
                   length_controlled_tau=None if tau is None else flip * tau * 0.5, bt_coef=None if tau is None else flip * tau * 2,
                   bt_coef_ci_low=None if tau is None else flip * tau * 2 - 0.3, bt_coef_ci_high=None if tau is None else flip * tau * 2 + 0.3,
                   disagreement="sign flips once other factors are held fixed (length)" if flip < 0 else "")
        adjusted.append(row)
    pq.write_table(pa.Table.from_pylist(adjusted, schema=schema.ADJUSTED), results / "adjusted.parquet")
    # An earlier audit of the same sources: the same tables with every tau lower.
    earlier = root / "last-week" / "results"
    earlier.mkdir(parents=True)
    shutil.copy(results / "replicates.parquet", earlier / "replicates.parquet")
    shifted = [{**r, "tau": None if r["tau"] is None else max(-1.0, r["tau"] - 0.2)} for r in influence]
    pq.write_table(pa.Table.from_pylist(shifted, schema=schema.INFLUENCE), earlier / "influence.parquet")
    # The nightly audit's alignment change table, as it writes it beside the results.
    alignment = pl.read_parquet(results / "alignment.parquet").to_dicts()
    changes = [{"task": a["task"], "source_x": a["source_x"], "source_y": a["source_y"], "metric": a["metric"], "value_previous": 0.0,
                "value_current": a["value"], "change": a["value"], "ci_low": a["ci_low"], "ci_high": a["ci_high"],
                "significant": bool(a["ci_low"] is not None and (a["ci_low"] > 0 or a["ci_high"] < 0)), "drop": None if a["value"] is None else -a["value"],
                "n_replicates": 50} for a in alignment]
    pq.write_table(pa.Table.from_pylist(changes, schema=schema.DRIFT_ALIGNMENT), results / "drift_alignment.parquet")
    build_report(str(results), history=[str(earlier)])
    return results


def test_planted_script_stays_text_and_every_section_renders(browser, planted_results):
    html = planted_results / "report.html"
    source = html.read_text()
    assert "<script>window.__pwned" not in source and "<em>m2</em>" not in source  # escaped in the file itself
    data = check_page(browser, html, "report-planted")
    assert data["adjusted"] and data["drift"] and data["gaps"]["alignment"]
    assert browser.js("return window.__pwned === undefined")
    header = browser.driver.find_element(By.CSS_SELECTOR, "header.page p.meta")
    assert f"{EVIL_LABELER}/evaluation" in header.text and not header.find_elements(By.TAG_NAME, "em")
    assert browser.js("return Array.from(document.querySelectorAll('svg.heatmap title')).some(t => t.textContent === arguments[0])", f"{EVIL_LABELER}/evaluation")

    # The task filter: one task's plots only, then all again.
    assert browser.js("return document.querySelectorAll('svg.heatmap').length") == 2
    browser.js("const s = document.getElementById('task-filter'); s.value = 'summarization'; s.dispatchEvent(new Event('change'))")
    assert browser.js("return Array.from(document.querySelectorAll('svg.heatmap, svg.forest, svg.alignment')).map(e => e.getAttribute('data-task'))") == ["summarization"] * 3
    browser.js("const s = document.getElementById('task-filter'); s.value = ''; s.dispatchEvent(new Event('change'))")
    assert browser.js("return document.querySelectorAll('svg.heatmap').length") == 2

    shown = click_cell(browser, data, "m1", "evaluation", "length")
    preferred = shown[0].find_element(By.CSS_SELECTOR, ".preferred pre.response")
    assert browser.js("return arguments[0].textContent", preferred).startswith(PLANTED)
    assert not preferred.find_elements(By.CSS_SELECTOR, "*"), "planted markup became elements"
    assert browser.js("return document.querySelectorAll('#cell-pairs script, #cell-pairs img, #examples-list img').length") == 0
    prompt = shown[0].find_element(By.CSS_SELECTOR, "pre.prompt")
    assert browser.js("return arguments[0].textContent", prompt) == "Planted <script>alert('prompt')</script>"
    assert browser.js("return window.__pwned === undefined")

    # The adjusted panel marks the flipped factor; drift lists the change; the gap names m1.
    assert browser.js("return document.querySelectorAll('svg.adjusted rect.disagree').length") > 0
    assert "novel_words" in browser.driver.find_element(By.CSS_SELECTOR, "#adjusted-plots").text or \
        browser.js("return Array.from(document.querySelectorAll('svg.adjusted text')).some(t => t.textContent === 'novel_words')")
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "table.drift-changes tr")
    assert len(rows) - 1 == len(data["drift"]["changes"]) > 0
    shown_alignment = browser.driver.find_elements(By.CSS_SELECTOR, "table.drift-alignment tr")
    spearman = [a for a in data["drift"]["alignment_changes"] if a["metric"] == "spearman_rho" and a["change"] is not None]
    assert len(shown_alignment) - 1 == len(spearman) > 0
    assert "m1" in browser.driver.find_element(By.CSS_SELECTOR, "#gap-plots").text
    # The alignment section names the factor set its comparisons used, per task.
    notes = [e.text for e in browser.driver.find_elements(By.CSS_SELECTOR, "#alignment p.alignment-note")]
    assert any(n.startswith("Task helpful: Factors compared (every reduced factor)") for n in notes)
    browser.screenshot("report-planted-clicked")
    assert not severe(browser.console())
