"""``recapture estimate``: fit population-size estimators to persons.parquet (a thin wrapper
over :func:`recapture.estimators.estimate` and the linkage-aware intervals)."""

from __future__ import annotations

import argparse
from pathlib import Path

from recapture import progress
from recapture.cli import command

#: estimate options that are not estimator options (everything else is passed on by name)
_ESTIMATE_CLI_ONLY = {
    "command",
    "debug",
    "quiet",
    "_run",
    "_inputs",
    "input",
    "model",
    "out",
    "level",
    "missing",
    "merge_sparse_levels",
    "imputations",
    "imputation_workers",
    "thresholds",
    "analytic_linkage",
    "records",
    "pairs",
    "clusters",
}


def _run_estimate(args: argparse.Namespace) -> int:
    from recapture.io import read_table, write_json
    from recapture.pipelines.run import ConfiguredEstimator

    options = {k: v for k, v in vars(args).items() if k not in _ESTIMATE_CLI_ONLY and v is not None}
    if options.get("reference"):
        options["reference"] = _parse_reference(options["reference"])
    if args.merge_sparse_levels:
        options["merge_sparse_levels"] = args.merge_sparse_levels
    estimator = ConfiguredEstimator(args.model, options, args.missing)
    result = estimator.fit(read_table(args.input))
    if args.imputations or args.thresholds or args.analytic_linkage:
        result = _linkage_aware(args, estimator, result)
    print(result.summary(level=args.level))
    excluded = result.diagnostics.get("rows_with_zero_count_excluded")
    if excluded:
        print(f"  ({excluded:,} rows with count 0 left out: not seen by this source)")
    for row in result.extra.get("dependence_sensitivity") or []:
        print(
            f"  θ = {row['theta']:<6g} N̂ {row['population_size']:>12,.1f}  "
            f"({row['interval']} {row['lower']:,.1f} – {row['upper']:,.1f})"
        )
    aware = result.extra.get("linkage_aware")
    if aware:
        lo, hi = result.confint(None, args.level)
        print(
            f"  linkage: model interval {lo:,.1f} – {hi:,.1f}; linkage-aware ({aware.get('method')}) "
            f"N̂ {aware['population_size']:,.1f}, {aware['lower']:,.1f} – {aware['upper']:,.1f}"
            + (
                f", {aware['linkage_variance_share']:.1%} of the variance from linkage"
                if aware.get("linkage_variance_share") is not None
                else ""
            )
        )
    for row in result.extra.get("threshold_sensitivity") or []:
        print(
            f"  threshold {row['threshold']:<5g} N̂ {row['population_size']:>12,.1f}  "
            f"({row['lower']:,.1f} – {row['upper']:,.1f})"
        )
    if args.out:
        payload = result.to_dict(level=args.level)
        payload["input"] = str(args.input)
        write_json(payload, args.out)
        progress.info(f"estimate written to {args.out}")
    return 0


def _linkage_aware(args: argparse.Namespace, estimator, result):
    """Linkage-aware interval and threshold sensitivity from the run directory's linkage."""
    from recapture.persons import persons_rules
    from recapture.uncertainty import (
        UncertaintyOptions,
        linkage_aware_estimate,
        read_linkage_inputs,
    )

    inputs = read_linkage_inputs(
        args.input, records=args.records, pairs=args.pairs, clusters=args.clusters
    )
    thresholds = [float(t) for t in args.thresholds.split(",")] if args.thresholds else []
    options = UncertaintyOptions(
        imputations=args.imputations or 0,
        thresholds=thresholds,
        workers=args.imputation_workers,
        analytic=args.analytic_linkage,
        seed=args.seed if args.seed is not None else 0,
        level=args.level,
    )
    options.check(where="--")
    sources, rules = persons_rules(args.input)
    listed = estimator.options.get("lists") or ""
    lists = [
        c.strip().removeprefix("in_")
        for c in (listed.split(",") if isinstance(listed, str) else listed)
        if c
    ]
    return linkage_aware_estimate(
        result,
        estimator=estimator,
        options=options,
        sources=sources,
        rules=rules,
        lists=lists if lists and len(lists) == 2 else None,
        seed=options.seed or 0,
        **inputs,
    )


def _parse_reference(items: list[str]) -> dict[str, str]:
    from recapture.errors import ConfigError

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--reference expects VARIABLE=LEVEL, got {item!r}", key="reference")
        var, level = item.split("=", 1)
        out[var.strip()] = level.strip()
    return out


@command("estimate", "fit population-size estimators to persons.parquet")(_run_estimate)
def _add_estimate(p: argparse.ArgumentParser) -> None:
    from recapture.estimators import MODELS

    models = ", ".join(sorted(MODELS))
    p.add_argument("input", type=Path, help="persons.parquet (or a Parquet/CSV table)")
    p.add_argument("--model", required=True, metavar="NAME", help=f"estimator: {models}")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="FILE",
        help="write the estimate as JSON here (estimates.json)",
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.set_defaults(
        _inputs=(("input", "file"), ("records", "file"), ("pairs", "file"), ("clusters", "file"))
    )
    single = p.add_argument_group("single-source count models (ztpoisson … chao)")
    single.add_argument(
        "--formula", help="covariates of log λ, e.g. '~ sex + age_class' (default '~ 1')"
    )
    single.add_argument(
        "--count-col",
        dest="count",
        help="column with each person's number of captures, e.g. n_police",
    )
    single.add_argument("--weights", help="frequency-weight column (aggregated input)")
    single.add_argument("--offset", help="offset column on the log scale, e.g. log days at risk")
    single.add_argument(
        "--reference",
        action="append",
        metavar="VAR=LEVEL",
        help="reference level of a factor (repeatable)",
    )
    single.add_argument(
        "--strata",
        action="append",
        metavar="COLUMN",
        help="report N̂ by level of this column (repeatable; default: the factors of the formula)",
    )
    single.add_argument(
        "--omega-formula",
        dest="omega_formula",
        help="formula of logit ω (one-inflated models; default '~ 1')",
    )
    single.add_argument(
        "--alpha-formula", dest="alpha_formula", help="formula of log α (ztnegbin; default '~ 1')"
    )
    single.add_argument(
        "--information",
        choices=["observed", "expected"],
        help="information matrix for the variance",
    )
    single.add_argument(
        "--penalty",
        choices=["firth", "ridge"],
        help="penalised fit (finite where ML runs to a boundary; default ML)",
    )
    single.add_argument(
        "--variance",
        choices=["analytic", "bootstrap"],
        help="standard error of N̂ (default analytic)",
    )
    single.add_argument(
        "--bootstrap-type",
        dest="bootstrap_type",
        choices=["parametric", "semiparametric", "nonparametric"],
        help="resampling scheme (default parametric)",
    )
    single.add_argument("--replicates", type=int, help="bootstrap replicates (default 1000)")
    single.add_argument("--seed", type=int, help="seed of the bootstrap")
    single.add_argument("--workers", type=int, help="processes for the bootstrap (default 1)")
    single.add_argument(
        "--bootstrap-penalty",
        dest="bootstrap_penalty",
        choices=["firth", "ridge", "none"],
        help="refit of diverging bootstrap replicates (default firth; none keeps the ML refits)",
    )
    single.add_argument(
        "--interval",
        choices=["normal", "lognormal", "bootstrap", "profile", "dark_lognormal", "bias_reduced"],
        help="interval shown (default: bias_reduced for models with covariates, else normal "
        "for the count models and profile for the log-linear ones; bootstrap with --variance bootstrap)",
    )
    multi = p.add_argument_group(
        "multiple systems (loglinear, petersen, chapman, closedp, closedp0)"
    )
    multi.add_argument(
        "--lists",
        help="comma-separated 0/1 capture columns (default: every in_* column); --weights names the count column of an aggregated table",
    )
    multi.add_argument(
        "--terms",
        help="log-linear model, e.g. '[in_police,region][in_iom,region]' or 'A*B + C' (default: main effects)",
    )
    multi.add_argument("--covariates", help="comma-separated covariates that stratify the table")
    multi.add_argument(
        "--partial-covariates",
        dest="partial_covariates",
        help="covariates missing for some people (observed in one source only), fitted by EM",
    )
    multi.add_argument(
        "--passive",
        action="append",
        metavar="COVARIATE=LIST",
        help="passive covariate linked to one list: breaks N̂ down without changing it (repeatable)",
    )
    multi.add_argument(
        "--search",
        choices=["stepwise", "exhaustive", "sparsemse"],
        help="choose the log-linear model (hierarchical; sparsemse: SparseMSE's p-value rule)",
    )
    multi.add_argument(
        "--criterion",
        choices=["aic", "bic"],
        help="criterion of --search stepwise/exhaustive (default aic)",
    )
    multi.add_argument(
        "--max-order",
        dest="max_order",
        type=int,
        help="highest interaction order searched (default 2)",
    )
    multi.add_argument(
        "--pthresh", type=float, help="p-value threshold of --search sparsemse (default 0.02)"
    )
    multi.add_argument(
        "--empty-overlaps",
        dest="empty_overlaps",
        choices=["drop", "keep"],
        help="interactions of lists that never overlap: drop their cells (SparseMSE, default) or keep them",
    )
    multi.add_argument(
        "--heterogeneity",
        help="add Rcapture's heterogeneity to a log-linear model: Chao (LB), Poisson2, Darroch, Gamma3.5",
    )
    multi.add_argument(
        "--closed-model",
        dest="closed_model",
        help="Rcapture model of closedp/closedp0, e.g. Mt, 'Mh Chao (LB)', 'Mth Darroch' (closedp0 counts: --count-col, frequencies: --weights)",
    )
    multi.add_argument(
        "--dependence-thetas",
        dest="dependence_thetas",
        metavar="THETAS",
        help="odds ratios θ between two lists for the dependence sensitivity, e.g. 0.5,1,2",
    )
    cov = p.add_argument_group("covariates of persons")
    cov.add_argument(
        "--missing",
        choices=["em", "allocate", "level"],
        default=None,
        help="persons with an unknown covariate: maximum likelihood with the unknown values "
        "integrated out (em, default; missing at random given the capture history), fit on "
        "the others and allocate them proportionally (allocate: biased low), or keep "
        "'unknown' as a level (level: diverges)",
    )
    cov.add_argument(
        "--merge-sparse-levels",
        dest="merge_sparse_levels",
        type=int,
        metavar="K",
        help="merge covariate levels with fewer than K informative persons "
        "(seen twice; in both lists)",
    )
    link = p.add_argument_group(
        "linkage uncertainty (persons.parquet of a run; docs/linkage-uncertainty.md)"
    )
    link.add_argument(
        "--imputations",
        type=int,
        metavar="M",
        help="draw M linkages from the match probabilities, refit, combine by Rubin's rules",
    )
    link.add_argument(
        "--imputation-workers",
        dest="imputation_workers",
        type=int,
        metavar="W",
        help="processes for the imputations (default: all cores)",
    )
    link.add_argument(
        "--thresholds",
        metavar="P,P,…",
        help="match thresholds for a sensitivity table, e.g. 0.3,0.5,0.9",
    )
    link.add_argument(
        "--analytic-linkage",
        dest="analytic_linkage",
        action="store_true",
        help="Ding–Fienberg / Di Consiglio–Tuoto corrected two-list estimate",
    )
    link.add_argument(
        "--records", type=Path, help="records.parquet (default: beside the persons file)"
    )
    link.add_argument("--pairs", type=Path, help="pairs.parquet (default: beside the persons file)")
    link.add_argument(
        "--clusters", type=Path, help="clusters.parquet (default: beside the persons file)"
    )
