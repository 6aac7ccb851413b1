"""The linkage report's section on the estimates: threshold range and linkage-aware
interval beside the model interval, and which of linkage and model dominates."""

from __future__ import annotations

import html as html_lib
import math
import re

from test_reports import shared_run  # pytest puts tests/ on sys.path (prepend import mode)

from recapture.io import read_json, write_json
from recapture.reports.linkage_impact import impact_rows, impact_section

PIPELINE = """
[run]
dir = "run"
seed = 3
as_of = "2019-01-01"

[[sources]]
path = "world/police.csv"
definition = "police"

[[sources]]
path = "world/iom.csv"
definition = "iom"

[[periods]]
start = 2017-07-01
end = 2018-06-30
label = "2017/18"

[persons]
age_breaks = [40]

[[estimators]]
name = "ztp"
model = "ztpoisson"
formula = "~ sex"
count = "n_police"

[[estimators]]
name = "chapman"
model = "chapman"
lists = ["police", "iom"]
linkage_uncertainty = false

[uncertainty]
imputations = 4
thresholds = [0.3, 0.8]
analytic = false
workers = 1

[reports]
enabled = true
"""


def _section_text(path) -> str:
    page = path.read_text(encoding="utf-8")
    start = page.index('<section id="estimate-impact">')
    part = page[start : page.index("</section>", start)]
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", part)))


def _estimate(n, lo, hi, *, thresholds=None, aware=None, **extra):
    entry = {
        "model": "ztpoisson",
        "description": "Zero-truncated Poisson regression",
        "population_size": n,
        "se": (hi - lo) / 3.92,
        "default_interval": "normal",
        "intervals": {"normal": {"lower": lo, "upper": hi, "level": 0.95}},
        "extra": dict(extra),
    }
    if thresholds is not None:
        entry["extra"]["threshold_sensitivity"] = [
            {"threshold": t, "population_size": v} for t, v in thresholds
        ]
    if aware is not None:
        entry["extra"]["linkage_aware"] = aware
    return entry


def test_a_real_run_reports_what_its_estimates_json_holds(simulated_world, make_project):
    from recapture.pipelines.run import run_pipeline

    project = make_project(simulated_world(2500, 8), PIPELINE)
    result = run_pipeline(project / "pipeline.toml")
    ztp, chapman = result.estimates
    text = _section_text(result.run_dir / "reports" / "linkage.html")

    table = [r["population_size"] for r in ztp["extra"]["threshold_sensitivity"]]
    finite = [v for v in table if math.isfinite(v)]
    assert len(table) == 3  # the grid and the run's own threshold (0.5)
    assert f"{round(min(finite)):,} – {round(max(finite)):,}" in text
    aware = ztp["extra"]["linkage_aware"]
    assert aware["M"] == 4
    assert f"{round(aware['lower']):,} – {round(aware['upper']):,}" in text
    assert f"{100 * aware['linkage_variance_share']:.1f}%" in text
    iv = ztp["intervals"][ztp["default_interval"]]
    assert f"{round(iv['lower']):,} – {round(iv['upper']):,}" in text
    # the verdict follows the documented rule, and the sentence names the estimate
    width = iv["upper"] - iv["lower"]
    linkage = aware["linkage_variance_share"] > 0.5 or max(finite) - min(finite) > width
    verdict = "linkage" if linkage else "model"
    (row,) = [r for r in impact_rows(result.estimates) if r["label"].startswith("ztp")]
    assert row["verdict"] == verdict
    assert ("The linkage dominates" if linkage else "The model's own sampling error") in text
    # an estimator without linkage uncertainty is listed as not assessed
    assert "not assessed: 2. Chapman" in text
    assert "threshold_sensitivity" not in chapman["extra"]


def test_linkage_dominates_when_thresholds_move_more_than_the_interval(tmp_path):
    moves = _estimate(1000, 900, 1100, thresholds=[(0.3, 800), (0.5, 1000), (0.9, 1300)])
    steady = _estimate(
        2000,
        1800,
        2200,
        thresholds=[(0.3, 1990), (0.5, 2000), (0.9, 2020)],
        aware={
            "method": "multiple_imputation",
            "M": 20,
            "lower": 1790,
            "upper": 2210,
            "linkage_variance_share": 0.1,
        },
    )
    shared = _estimate(
        3000,
        2900,
        3100,
        aware={
            "method": "multiple_imputation",
            "M": 20,
            "lower": 2700,
            "upper": 3300,
            "linkage_variance_share": 0.8,
        },
    )
    bare = _estimate(500, 400, 600)
    rows = impact_rows([moves, steady, shared, bare])
    assert [r["verdict"] for r in rows] == ["linkage", "model", "linkage", "unknown"]
    assert rows[0]["thresholds"]["lower"] == 800 and rows[0]["thresholds"]["upper"] == 1300
    assert rows[0]["thresholds"]["at_upper"] == 0.9
    assert "250%" in rows[0]["reason"]  # 500 of a 200-wide interval
    assert "10%" in rows[1]["reason"] and "8%" in rows[1]["reason"]

    run = tmp_path / "run"
    run.mkdir()
    write_json([moves, steady, shared, bare], run / "estimates.json")
    section = impact_section(run)
    assert section.available
    assert section.summary.startswith("The linkage dominates the uncertainty of 1. ")
    assert "3. " in section.summary and "sampling error that of 2. " in section.summary
    assert "not assessed: 4. " in section.summary


def test_absent_failed_and_unfitted_estimates_say_so(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert "no estimates.json" in impact_section(run).absent

    (run / "estimates.json").write_text("{not json", encoding="utf-8")
    assert "unreadable" in impact_section(run).absent

    failed = _estimate(1000, 900, 1100, aware={"error": "ValueError: too sparse"})
    nan_only = _estimate(1000, 900, 1100, thresholds=[(0.3, float("nan")), (0.5, float("nan"))])
    write_json([failed, nan_only, {"model": "chao", "error": "no data"}], run / "estimates.json")
    rows = impact_rows(read_json(run / "estimates.json"))
    assert len(rows) == 2  # the failed fit has no N̂ to compare
    assert rows[0]["aware"] is None and rows[0]["aware_error"] == "ValueError: too sparse"
    assert rows[1]["thresholds"]["finite"] == 0
    assert {r["verdict"] for r in rows} == {"unknown"}
    assert "is not known" in impact_section(run).summary


def test_the_example_run_shows_the_section(tmp_path_factory):
    _, reports = shared_run(tmp_path_factory, "example")
    text = _section_text(reports["linkage"])
    assert "Not available" not in text
    assert "multiple imputation" in text and "4 of 4 thresholds" in text
