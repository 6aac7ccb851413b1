"""Reports: content, absent sections, no personal data by default, CLI."""

from __future__ import annotations

import math
import re

import polars as pl
import pytest

from recapture.cli import main
from recapture.errors import InputError
from recapture.estimators.result import PopulationEstimate
from recapture.io import read_json
from recapture.reports import estimate_report, linkage_report, validation_report, write_reports
from recapture.reports.example import write_demo_run, write_example_run
from recapture.reports.linkage import _clusters_section


def shared_run(factory, kind: str):
    """A run and its default reports, built once per session (test_reports_browser.py
    uses the same directories): ``demo`` is made by the real stages, ``example`` is
    synthetic with every optional section."""
    run = factory.getbasetemp() / f"reports-{kind}-run"
    reports = {
        name: run / "reports" / f"{name}.html"
        for name in ("validation", "linkage", "explorer", "estimates")
    }
    if not all(p.exists() for p in reports.values()):
        if kind == "demo":
            write_demo_run(run, 2500, seed=1)
        else:
            write_example_run(run, 1200, seed=5)
        reports = write_reports(run)
    return run, reports


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return shared_run(tmp_path_factory, "example")[0]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return shared_run(tmp_path_factory, "example")[1]


def _text(path) -> str:
    return path.read_text(encoding="utf-8")


def test_every_report_is_written_and_self_contained(reports):
    assert set(reports) == {"validation", "linkage", "explorer", "estimates"}
    for path in reports.values():
        html = _text(path)
        assert html.startswith("<!doctype html>")
        # nothing fetched: no external src/href, no stylesheet link, no CSS url()/@import
        assert not re.search(r'(src|href)\s*=\s*"(?!#|data:)', html)
        assert "@import" not in html and not re.search(r"url\((?!#)", html)
        if path.name == "explorer.html":  # the one page with a script: inline, no fetch
            assert "<script src" not in html and "fetch(" not in html
            assert "XMLHttpRequest" not in html and "import(" not in html
            continue
        assert "<script" not in html.lower()
        assert html.count("<svg") >= 4


@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory):
    """Reports of a run made by the real stages (simulate → validate → link → estimate)."""
    return shared_run(tmp_path_factory, "demo")


@pytest.mark.parametrize("which", ["demo", "example"])
def test_no_personal_data_in_default_reports(which, run_dir, reports, demo_reports):
    if which == "demo":
        run_dir, reports = demo_reports
    records = pl.read_parquet(run_dir / "records.parquet")
    secrets = set()
    for col in (
        "family_name_raw",
        "given_name_raw",
        "birth_date_raw",
        "v_number",
        "v_number_raw",
        "family_name",
        "given_name",
    ):
        secrets |= {v for v in records[col].drop_nulls().unique().to_list() if len(v) >= 4}
    secrets |= {d.isoformat() for d in records["birth_date"].drop_nulls().unique().to_list()}
    # a person may be called Chao like the estimator: words of model names are not leaks
    models = " ".join(
        f"{e.get('model')} {e.get('description')}" for e in read_json(run_dir / "estimates.json")
    )
    secrets -= set(re.findall(r"\w+", models))
    assert len(secrets) > 30
    for name, path in reports.items():
        html = _text(path)
        # style sheets hold CSS words only ('stroke-linecap: butt' is not Mr Butt)
        markup = re.sub(r"<style[^>]*>.*?</style>", "", html, flags=re.S)
        assert not _whole_words_found(secrets, markup), f"{name} report shows personal data"
        assert 'id="names-banner"' not in html


def _whole_words_found(values: set[str], text: str) -> list[str]:
    """Values that occur in ``text`` as whole words (a name inside 'missing' is no leak)."""
    tokens = set(re.findall(r"[\w.\-]+", text))
    found = []
    for value in values:
        parts = re.findall(r"[\w.\-]+", value)
        if parts and all(p in tokens for p in parts):
            if re.search(rf"(?<![\w.\-]){re.escape(value)}(?![\w.\-])", text):
                found.append(value)
    return sorted(found)


def test_show_names_puts_names_in_the_sample_and_a_banner_on_top(run_dir, tmp_path):
    path = linkage_report(run_dir, tmp_path / "linkage.html", show_names=True)
    html = _text(path)
    banner = html.index('id="names-banner"')
    assert banner < html.index("<h1>")
    records = pl.read_parquet(run_dir / "records.parquet", columns=["family_name_raw"])
    names = set(records["family_name_raw"].unique().to_list())
    sample = html[html.index('id="sample"') : html.index('id="truth"')]
    assert any(n in sample for n in names)


def test_validation_report_counts_reconcile(run_dir, tmp_path):
    html = _text(validation_report(run_dir, tmp_path / "v.html"))
    kept = pl.read_parquet(run_dir / "records.parquet").height
    quarantined = pl.read_parquet(run_dir / "quarantine.parquet")
    assert f"{kept + quarantined.height:,}" in html
    assert f"{kept:,}" in html
    # each reason with its count: reasons explode, so counts sum beyond the rows
    per_reason = quarantined.explode("reasons").group_by("reasons").len()
    for reason, n in per_reason.iter_rows():
        row = re.search(rf"<code>{re.escape(reason)}</code>.*?</tr>", html, re.S).group(0)
        assert f">{n:,}<" in row
    # an unrecognised nationality string is free text: counted by default, listed only
    # with show_names
    assert "Soviet-Unie" not in html
    named = _text(validation_report(run_dir, tmp_path / "v2.html", show_names=True))
    assert "Soviet-Unie" in named


def test_validation_report_without_quarantine_says_so(run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "records.parquet").write_bytes((run_dir / "records.parquet").read_bytes())
    html = _text(validation_report(run, tmp_path / "v.html"))
    assert "Not available: no quarantine.parquet" in html


def test_estimate_report_shows_the_published_table_and_says_what_is_absent(tmp_path):
    est = PopulationEstimate(
        model="ztp",
        description="Zero-truncated Poisson regression",
        population_size=12691.45,
        se=2809.5,
        n_observed=2036,
    )
    html = _text(estimate_report([est], tmp_path / "e.html"))
    lo, hi = est.confint()
    for value in (12691.45, 2809.5, lo, hi, 2036):
        assert f"{round(value):,}" in html
    assert f"{100 * 2036 / 12691.45:.1f}%" in html
    for key in (
        "fitted frequencies",
        "strata",
        "AIC or BIC",
        "dependence_sensitivity",
        "threshold_sensitivity",
        "linkage_aware",
        "two or more periods",
        "no single-source count model",
    ):
        assert key in html, key
    assert html.count('class="absent"') == 8


def test_estimate_report_reads_the_documented_optional_keys(tmp_path):
    est = PopulationEstimate(
        model="dse",
        description="DSE [A][B]",
        population_size=58000,
        se=6000,
        n_observed=12000,
        aic=10.0,
        bic=12.0,
        extra={
            "dependence_sensitivity": [
                {"theta": t, "population_size": 58000 * t} for t in (0.5, 1, 2)
            ],
            "threshold_sensitivity": [
                {"threshold": t, "population_size": 50000 + 1e4 * t, "lower": 40000, "upper": 70000}
                for t in (0.3, 0.6, 0.9)
            ],
            "linkage_aware": {
                "method": "multiple imputation",
                "population_size": 59123,
                "se": 7000,
                "lower": 46001,
                "upper": 73002,
                "linkage_variance_share": 0.27,
            },
            "period": "2017",
        },
    )
    later = PopulationEstimate(
        model="dse",
        description="DSE [A][B]",
        population_size=61000,
        se=6000,
        n_observed=12500,
        extra={"period": "2018"},
    )
    html = _text(estimate_report([est, later], tmp_path / "e.html"))
    assert 'class="absent"' in html  # frequencies and strata are absent
    for anchor in ("dependence", "threshold", "series"):
        section = html[html.index(f'<section id="{anchor}">') :]
        section = section[: section.index("</section>")]
        assert "<svg" in section and "Not available" not in section
    assert "59,123" in html and "46,001 – 73,002" in html and "27.0%" in html


def test_estimate_report_rejects_malformed_input(tmp_path):
    (tmp_path / "estimates.json").write_text('[{"model": "x"}]')
    with pytest.raises(InputError, match="population_size"):
        estimate_report(tmp_path, tmp_path / "e.html")


def test_chained_cluster_is_flagged_with_its_chain_and_conflict():
    # records 0..4 chained by strong links, 0–4 scored as clearly different people;
    # records 5,6,7 a clique
    chain = [(0, 1, 0.99), (1, 2, 0.95), (2, 3, 0.9), (3, 4, 0.97), (0, 4, 0.001)]
    clique = [(5, 6, 0.99), (5, 7, 0.99), (6, 7, 0.98)]
    pairs = pl.DataFrame(
        chain + clique, schema=["record_id_l", "record_id_r", "match_probability"], orient="row"
    )
    clusters = pl.DataFrame(
        {"record_id": list(range(8)), "source": ["police"] * 8, "person_id": [0] * 5 + [1] * 3}
    )
    section = _clusters_section(pairs, clusters, 0.5, None)
    first, second = section.suspects[0], section.suspects[1]
    assert (first["person_id"], first["conflicts"], first["chain"], first["links"]) == (0, 1, 4, 4)
    assert math.isclose(first["weakest_link"], 0.9)
    assert math.isclose(first["density"], 4 / 10)
    assert (second["person_id"], second["conflicts"], second["chain"]) == (1, 0, 1)


def test_linkage_report_with_truth_counts_confusion(run_dir, reports):
    html = _text(reports["linkage"])
    pairs = pl.read_parquet(run_dir / "pairs.parquet")
    truth = pl.read_parquet(run_dir / "truth" / "records.parquet")
    ids = pl.read_parquet(
        run_dir / "records.parquet", columns=["record_id", "source", "source_key"]
    )
    ent = ids.join(truth, on=["source", "source_key"]).select("record_id", "person_id")
    lab = pairs.join(
        ent.rename({"record_id": "record_id_l", "person_id": "a"}), on="record_id_l"
    ).join(ent.rename({"record_id": "record_id_r", "person_id": "b"}), on="record_id_r")
    accepted = lab["match_probability"].to_numpy() >= 0.5
    same = (lab["a"] == lab["b"]).to_numpy()
    tp, fp = int((accepted & same).sum()), int((accepted & ~same).sum())
    section = html[html.index('<section id="truth">') :]
    assert (
        f'<td>linked (p ≥ threshold)</td><td class="n">{tp:,}</td><td class="n">{fp:,}</td>'
        in section
    )


def test_write_reports_skips_stages_not_run_and_fails_on_empty_dir(run_dir, tmp_path):
    only = tmp_path / "only_estimates"
    only.mkdir()
    (only / "estimates.json").write_text((run_dir / "estimates.json").read_text())
    assert set(write_reports(only)) == {"estimates"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="nothing to report"):
        write_reports(empty)


def test_cli_report(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "estimates.json").write_text((run_dir / "estimates.json").read_text())
    assert main(["--quiet", "report", str(run), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "out" / "estimates.html")]
    assert (tmp_path / "out" / "estimates.html").stat().st_size > 10_000
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_reports_are_reproducible(tmp_path):
    est = PopulationEstimate(
        model="chao",
        population_size=1234.5,
        se=100.0,
        n_observed=900,
        fitted_frequencies=[
            {"k": 1, "observed": 500, "fitted": 510.0},
            {"k": 2, "observed": 60, "fitted": 58.0},
        ],
    )
    a = _text(estimate_report([est], tmp_path / "a.html"))
    b = _text(estimate_report([est], tmp_path / "b.html"))
    strip = re.compile(r"generated [^<]*")
    assert a.count("<svg") == 3  # forest, frequencies, rootogram
    assert strip.sub("", a) == strip.sub("", b)


def test_linkage_report_of_a_real_run_shows_rules_model_and_truth(demo_reports):
    run, reports = demo_reports
    html = _text(reports["linkage"])
    metrics = read_json(run / "linkage_metrics.json")
    model = read_json(run / "linkage_model.json")
    for rule in metrics["blocking_rules"]:
        cells = (
            f"<td>{rule['rule']}</td><td><code>{', '.join(rule['keys'])}</code></td>"
            f'<td class="n">{rule["pairs"]:,}</td>'
        )
        assert cells in html
    for comp in model["comparisons"]:
        assert f"<h3>{comp['name']} <small>" in html
        for level in comp["levels"]:
            assert f'<td class="n">{level["match_weight"]:,.2f}</td>' in html
    truth = html[html.index('<section id="truth">') : html.index('<section id="review">')]
    assert "Not available" not in truth and "<svg" in truth


def test_fast_clustering_metrics_equal_the_evaluation_module(demo_reports):
    from recapture.linkage import evaluation
    from recapture.reports.linkage import _truth_for, clustering_metrics

    run, _ = demo_reports
    clusters = pl.read_parquet(run / "clusters.parquet", columns=["record_id", "person_id"])
    truth = _truth_for(run, None, None).rename({"true_person": "entity"})
    entity = clusters.join(truth, on="record_id", how="left", maintain_order="left")[
        "entity"
    ].to_numpy()
    induced, cluster = clustering_metrics(clusters["person_id"].to_numpy(), entity)
    assert (
        induced
        == evaluation.pairwise_metrics_from_clusters(clusters, truth, entity_col="entity").to_dict()
    )
    expected = evaluation.cluster_metrics(clusters, truth, entity_col="entity").to_dict()
    assert cluster.keys() == expected.keys()
    for key, value in expected.items():
        assert cluster[key] == pytest.approx(value, rel=1e-12), key
    assert (
        cluster["mixed_clusters"] + cluster["split_persons"] > 0
    )  # the demo linkage is not perfect


@pytest.mark.parametrize("n_pairs", [0, 5])
def test_linkage_report_with_only_pairs_and_clusters(run_dir, tmp_path, n_pairs):
    run = tmp_path / "run"
    run.mkdir()
    pairs = pl.read_parquet(run_dir / "pairs.parquet")
    pairs = pairs.filter(pl.col("match_probability") > 0.99).head(n_pairs)
    pairs.write_parquet(run / "pairs.parquet")
    (run / "clusters.parquet").write_bytes((run_dir / "clusters.parquet").read_bytes())
    html = _text(linkage_report(run, tmp_path / "l.html"))
    assert "Not available: no linkage_model.json" in html
    assert "Not available: no truth table" in html
    assert "Not available: no threshold" in html  # the pair sample needs the threshold
    assert html.count("<svg") == (
        1 if n_pairs == 0 else 4
    )  # cluster sizes; + blocking, weights, expected


def test_sensitivity_without_finite_values_says_so(tmp_path):
    est = PopulationEstimate(
        model="loglinear",
        population_size=500.0,
        se=50.0,
        n_observed=400,
        extra={"dependence_sensitivity": [{"theta": 2.0, "population_size": math.nan}]},
    )
    html = _text(estimate_report([est], tmp_path / "e.html"))
    assert "is present (1. loglinear) but holds no finite N̂" in html


def test_rare_unrecognised_nationality_strings_are_counted_not_shown(run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = pl.read_parquet(run_dir / "records.parquet")
    misplaced = pl.col("record_id") == records["record_id"][0]
    records = records.with_columns(
        pl.when(misplaced)
        .then(pl.lit("Jansen Pieter"))
        .otherwise("nationality_raw")
        .alias("nationality_raw"),
        pl.when(misplaced).then(None).otherwise("nationality_iso3").alias("nationality_iso3"),
    )
    records.write_parquet(run / "records.parquet")
    html = _text(validation_report(run, tmp_path / "v.html", show_names=True))
    assert "Jansen" not in html
    assert "1 strings held by fewer than 3 records each (1 records) are not shown" in html
    assert "Soviet-Unie" in html
    default = _text(validation_report(run, tmp_path / "v0.html"))
    assert "Jansen" not in default and "Soviet-Unie" not in default
    assert "are counted, not shown" in default


def test_clerical_review_section_matches_the_review_module(run_dir, reports):
    from recapture.linkage.review import review_error_rates

    html = _text(reports["linkage"])
    section = html[html.index('<section id="review">') :]
    est = review_error_rates(run_dir / "review_labels.csv")
    assert f"{est.n_labelled:,} decided labels" in section
    assert (
        f'<td>precision above the threshold</td><td class="n">{100 * est.precision:.2f}%</td>'
        in section
    )
    assert "<svg" in section


def test_plot_warnings_are_a_note_and_silent_under_quiet(capfd):
    """matplotlib's layout warnings never print their source line; under --quiet nothing."""
    from recapture import progress
    from recapture.reports._render import new_figure, plot_context, svg

    def draw():
        with plot_context():
            fig, ax = new_figure(1.0, 0.4)
            ax.set_yticks([0, 1], ["a very long stratum label " * 6, "x"])
            ax.set_title("title " * 40)
        return fig

    progress.set_quiet(True)
    try:
        svg(draw(), "tiny")
    finally:
        progress.set_quiet(False)
    assert capfd.readouterr().err == ""
    svg(draw(), "tiny")
    err = capfd.readouterr().err
    assert "note: plot 'tiny'" in err and "savefig" not in err and "Warning" not in err
