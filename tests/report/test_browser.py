"""The report page in a real browser (Debian's headless chromium through selenium): no console error, no
request, every chart drew marks for every run, the question table holds the right rows and its filter works;
a 1280x900 screenshot is saved (pytest's tmp path, and $MLXSFT_ARTIFACTS when set)."""

from __future__ import annotations

import struct

import pytest

from mlxsft.report import write_report
from tests.report.browser import chromium, screenshot, severe_logs
from tests.report.runs import COUNTS, QUESTIONS, fake_run

CURVES = ("loss-step", "loss-tokens", "learning-rate", "grad-norm", "throughput", "memory")

# per chart: the runs it should draw (data-runs) and those with at least one mark of non-zero size
DRAWN = """
return Array.from(document.querySelectorAll('svg.chart')).map(function (svg) {
  var drawn = {};
  svg.querySelectorAll('.mark').forEach(function (m) {
    var b = m.getBBox();
    if (b.width > 0 || b.height > 0) drawn[m.getAttribute('data-run')] = true;
  });
  return {chart: svg.getAttribute('data-chart'), runs: svg.getAttribute('data-runs'),
          drawn: Object.keys(drawn).sort().join(' '), width: svg.getBoundingClientRect().width};
});
"""
VISIBLE = "return Array.from(document.querySelectorAll('#questions-r0 tbody tr')).filter(r => !r.hidden).length"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    a = fake_run(root / "alpha", steps=60, name="alpha")
    b = fake_run(root / "beta", steps=40, seed=2.0, compare=False, name="beta")
    return write_report([a, b], root / "report.html")


@pytest.fixture(scope="module")
def driver(page):
    with chromium() as d:
        d.get(page.resolve().as_uri())
        yield d


def test_no_console_errors_and_no_requests(driver):
    assert severe_logs(driver) == []
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_every_chart_drew_marks_for_every_run(driver):
    charts = {c["chart"]: c for c in driver.execute_script(DRAWN)}
    for name in CURVES:  # both runs overlaid
        assert charts[name]["runs"] == "r0 r1" and charts[name]["drawn"] == "r0 r1", charts[name]
    for name in ("lengths-r0", "lengths-r1", "memory-plan-r0", "memory-plan-r1"):  # each run's own
        assert charts[name]["drawn"] == charts[name]["runs"] == name[-2:], charts[name]
    assert all(c["width"] > 200 for c in charts.values())  # laid out, not collapsed


def test_tables_hold_the_right_counts(driver):
    from selenium.webdriver.common.by import By

    assert driver.execute_script(VISIBLE) == len(QUESTIONS)
    assert driver.find_element(By.CSS_SELECTOR, '.filters[data-table="questions-r0"] .shown').text == str(len(QUESTIONS))
    categories = driver.find_elements(By.CSS_SELECTOR, "table.categories tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in categories] == ["extract", "knowledge", "rewrite", "all"]
    all_row = [td.text for td in categories[-1].find_elements(By.TAG_NAME, "td")]
    assert all_row == ["all", "6", "2", "4", str(COUNTS["win"]), str(COUNTS["regression"]), str(COUNTS["unchanged"])]
    assert driver.find_elements(By.ID, "questions-r1") == []  # beta has no compare.json ...
    assert "beta: no compare.json" in driver.find_element(By.ID, "questions").text.replace("/beta:", "beta:")


def test_the_filter_narrows_the_table(driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    box = driver.find_element(By.CSS_SELECTOR, '.filters[data-table="questions-r0"]')
    outcome, category = (Select(box.find_element(By.NAME, n)) for n in ("outcome", "category"))
    shown = box.find_element(By.CLASS_NAME, "shown")
    for value, n in COUNTS.items():
        outcome.select_by_value(value)
        assert driver.execute_script(VISIBLE) == n and shown.text == str(n), value
    outcome.select_by_value("win")
    category.select_by_value("rewrite")  # two rewrite wins (boxes, the hostile one)
    assert driver.execute_script(VISIBLE) == 2
    verdict = Select(box.find_element(By.NAME, "verdict"))
    outcome.select_by_value("")
    category.select_by_value("")
    verdict.select_by_value("right")
    assert driver.execute_script(VISIBLE) == 4 == int(shown.text)
    verdict.select_by_value("")
    assert driver.execute_script(VISIBLE) == len(QUESTIONS)
    assert severe_logs(driver) == []


def test_screenshot_at_1280_by_900(driver, tmp_path):
    driver.execute_script("window.scrollTo(0, 0)")
    png = screenshot(driver, tmp_path / "report-browser-test.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1280, 900)
