"""Each report of a demo-like run, opened in headless Chromium as a reader would."""

from __future__ import annotations

import os

import pytest
from test_reports import shared_run  # pytest puts tests/ on sys.path (prepend import mode)

from recapture.reports.browser import Chromium, find_chromium

#: Plots each report must show: the demo run is made by the real stages (one period, no
#: quarantine at this size); the example run has every optional section.
EXPECTED_PLOTS = {
    ("demo", "validation"): {"rows", "completeness", "birth-dates", "timeline"},
    ("demo", "linkage"): {
        "blocking",
        "model-weights",
        "weights",
        "expected",
        "cluster-sizes",
        "precision-recall",
        "calibration",
    },
    ("demo", "estimates"): {"estimates", "frequencies-1", "strata-1", "dependence"},
    ("example", "validation"): {"rows", "quarantine", "completeness", "birth-dates", "timeline"},
    ("example", "linkage"): {
        "blocking",
        "weights",
        "precision-recall",
        "calibration",
        "review-calibration",
    },
    ("example", "estimates"): {
        "estimates",
        "frequencies-1",
        "strata-1",
        "dependence",
        "threshold",
        "series",
    },
}


@pytest.fixture(scope="module")
def chromium():
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return binary


@pytest.fixture(scope="module")
def browser(chromium):
    with Chromium(chromium) as session:
        yield session


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return {kind: shared_run(tmp_path_factory, kind)[1] for kind in ("demo", "example")}


@pytest.mark.parametrize(("run", "name"), sorted(EXPECTED_PLOTS))
def test_report_renders_cleanly_in_chromium(browser, reports, run, name):
    path = reports[run][name]
    shot = path.with_suffix(".png")
    check = browser.check(path, shot)
    assert check.console_errors == []
    assert check.network_requests == []
    names = {p["name"] for p in check.plots}
    assert EXPECTED_PLOTS[run, name] <= names, EXPECTED_PLOTS[run, name] - names
    assert check.empty_plots == []
    assert not check.names_banner
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000


def test_the_check_catches_errors_and_requests(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><html><head><link rel="icon" href="data:,"></head><body>'
        '<figure class="plot" data-plot="empty"><svg width="10" height="10"></svg></figure>'
        '<img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body></html>'
    )
    check = browser.check(page)
    assert any("boom" in e for e in check.console_errors)
    assert check.network_requests == ["http://127.0.0.1:9/x.png"]
    assert check.empty_plots == ["empty"]


@pytest.fixture(scope="module")
def wide_browser(chromium):
    with Chromium(chromium, window=(1920, 1200)) as session:
        yield session


REPORT_NAMES = ("validation", "linkage", "explorer", "estimates")


@pytest.mark.parametrize("width", [1280, 1920])
@pytest.mark.parametrize("run", ["demo", "example"])
def test_no_horizontal_overflow(browser, wide_browser, reports, run, width, tmp_path):
    """At 1280 and 1920 px no page is wider than the window (navigation, tables and plots
    wrap or scroll inside their own box)."""
    session = browser if width == 1280 else wide_browser
    for name in REPORT_NAMES:
        check = session.check(reports[run][name], tmp_path / f"{run}-{name}-{width}.png")
        assert check.console_errors == [], (name, check.console_errors)
        assert check.network_requests == [], name
        assert check.overflow_px <= 0, f"{name} at {width} px overflows by {check.overflow_px} px"
        wide = session.evaluate(
            "Array.from(document.querySelectorAll('nav.toc, table, figure')).filter("
            "function (e) { var r = e.getBoundingClientRect(); return r.right > "
            "document.documentElement.clientWidth + 1; }).map(function (e) { return e.tagName; })"
        )
        assert wide == [], (name, wide)


_COLLECT_ERRORS = (
    "window.__errors = []; window.addEventListener('error', function (e) "
    "{ window.__errors.push(String(e.message)); }); true"
)


def test_explorer_controls(browser, reports, tmp_path):
    """Every control of the explorer works: pairs -> waterfall adds up to the match weight;
    slider -> the grid's numbers (themselves checked against a relink in test_explorer.py);
    patterns, clusters, EM and filters redraw without a script error."""
    import json

    check = browser.check(reports["demo"]["explorer"])
    assert check.console_errors == [] and check.network_requests == []
    assert browser.evaluate(_COLLECT_ERRORS)
    data = browser.evaluate("JSON.stringify(window.recaptureExplorer.data.grid.rows)")
    grid = json.loads(data)
    # pick pairs from the table: the bars add up to the pair's match weight
    n_rows = browser.evaluate("document.querySelectorAll('#pair-table tbody tr').length")
    assert n_rows > 0
    for k in sorted({0, n_rows // 2, n_rows - 1}):
        got = json.loads(
            browser.evaluate(
                f"(function () {{ var tr = document.querySelectorAll('#pair-table tbody tr')[{k}];"
                " tr.click(); var k = parseInt(tr.dataset.k, 10);"
                " var bars = Array.from(document.querySelectorAll('#wf-chart rect.wf-bar'))"
                ".map(function (r) { return parseFloat(r.dataset.bits); });"
                " return JSON.stringify({bars: bars, weight: window.recaptureExplorer.data.pairs.weight[k],"
                " shown: document.getElementById('wf-weight').textContent,"
                " sum: document.getElementById('wf-sum').textContent,"
                " selected: tr.classList.contains('selected')}); })()"
            )
        )
        assert got["selected"]
        assert len(got["bars"]) >= 4
        assert sum(got["bars"]) == pytest.approx(got["weight"], abs=1e-6)
        assert float(got["shown"]) == pytest.approx(got["weight"], abs=1e-6)
        assert float(got["sum"]) == pytest.approx(got["weight"], abs=1e-6)
    # every filter of the pair list
    for mode in ("all", "linked", "unlinked", "band"):
        browser.evaluate(
            f"var s = document.getElementById('pair-filter'); s.value = '{mode}';"
            " s.dispatchEvent(new Event('change')); true"
        )
    # move the threshold over the whole grid: the numbers shown are the grid's
    for i, row in enumerate(grid):
        shown = json.loads(
            browser.evaluate(
                f"var s = document.getElementById('thr'); s.value = '{i}';"
                " s.dispatchEvent(new Event('input'));"
                " JSON.stringify(['thr-p', 'thr-links', 'thr-persons', 'thr-precision', 'thr-chapman']"
                ".map(function (id) { return document.getElementById(id).textContent; }))"
            )
        )
        assert float(shown[0]) == row["threshold"]
        assert int(shown[1].replace(",", "")) == row["links"]
        assert int(shown[2].replace(",", "")) == row["persons"]
        assert float(shown[3]) == pytest.approx(row["expected_precision"], abs=5e-5)
        assert int(shown[4].replace(",", "")) == round(row["chapman"])
    # a pattern's example opens in the waterfall
    title = browser.evaluate(
        "document.querySelector('#pattern-table button.ex').click();"
        " document.getElementById('wf-title').textContent"
    )
    assert title.startswith("Pair ")
    for how in ("weight", "near", "count"):
        browser.evaluate(
            f"var s = document.getElementById('pattern-sort'); s.value = '{how}';"
            " s.dispatchEvent(new Event('change')); true"
        )
    # every cluster draws a graph with its records and a verdict
    n_clusters = browser.evaluate("document.querySelectorAll('#cluster-pick option').length")
    for i in range(min(n_clusters, 10)):
        drawn = json.loads(
            browser.evaluate(
                f"var s = document.getElementById('cluster-pick'); s.value = '{i}';"
                " s.dispatchEvent(new Event('change'));"
                " JSON.stringify([document.querySelectorAll('#cluster-chart circle').length,"
                f" window.recaptureExplorer.data.clusters[{i}].records.length,"
                " document.getElementById('cluster-verdict').textContent])"
            )
        )
        assert drawn[0] == drawn[1] and drawn[2]
    # every comparison's EM paths
    n_comps = browser.evaluate("document.querySelectorAll('#em-comp option').length")
    for i in range(n_comps):
        paths = browser.evaluate(
            f"var s = document.getElementById('em-comp'); s.value = '{i}';"
            " s.dispatchEvent(new Event('change'));"
            " document.querySelectorAll('#em-m path, #em-u path').length"
        )
        assert paths >= 2
    assert browser.evaluate("document.querySelectorAll('#tf-charts svg').length") >= 1
    assert browser.evaluate("JSON.stringify(window.__errors)") == "[]"
    browser.screenshot(tmp_path / "explorer-after.png")
