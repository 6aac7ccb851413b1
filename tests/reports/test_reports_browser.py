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
