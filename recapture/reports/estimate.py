"""The estimate report: N̂ per model as in the published tables, and how it moves.

Input is ``estimates.json`` — a list of :meth:`PopulationEstimate.to_dict` entries. Optional
parts are read from documented keys (``docs/reports.md``) and shown only when present:
``fitted_frequencies``, ``strata``, ``aic``/``bic`` with ``likelihood_data``, the count
models' ``diagnostics`` (goodness of fit, pattern residuals, dfpopsize),
``extra['dependence_sensitivity']``,
``extra['threshold_sensitivity']``, ``extra['linkage_aware']`` and ``extra['period']``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recapture.errors import InputError
from recapture.estimators.result import PopulationEstimate
from recapture.reports._render import (
    Section,
    absent_section,
    first_key,
    new_figure,
    plot_context,
    render,
    svg,
)
from recapture.reports._render import (
    table_rows as _rows,
)
from recapture.reports.estimate_data import (  # noqa: E402,F401  (part of this module's face)
    FIT_KEYS,
    HI_KEYS,
    K_KEYS,
    LO_KEYS,
    MAX_STRATA_PLOTTED,
    N_KEYS,
    OBS_KEYS,
    THETA_KEYS,
    _f,
    interval_of,
    label_of,
    load_estimates,
    period_of,
)
from recapture.reports.free_text import CODED_VARIABLES, mask_free_text  # noqa: F401


def _summary_section(estimates: list[dict[str, Any]], failed: list[dict[str, Any]]) -> Section:
    rows = []
    for i, est in enumerate(estimates):
        lo, hi, method = interval_of(est)
        rows.append(
            {
                "index": i + 1,
                "period": period_of(est),
                "label": label_of(est),
                "model": est.get("model"),
                "formula": est.get("formula"),
                "population_size": _f(est.get("population_size")),
                "se": _f(est.get("se")),
                "lower": lo,
                "upper": hi,
                "method": method,
                "n_observed": est.get("n_observed"),
                "observed_share": _f(est.get("observed_share")),
                "converged": est.get("converged", True),
                "warnings": list(est.get("warnings") or []),
                "missing": _missing_covariates(est),
            }
        )
    has_period = any(r["period"] for r in rows)
    fig = None
    if rows:
        fig = svg(_forest_plot(rows), "estimates-forest")
    return Section(
        "Estimates", "estimates", rows=rows, has_period=has_period, forest=fig, failed=failed
    )


#: How each rule for unknown covariates treats the persons with an unknown value.
MISSING_RULES = {
    "em": "maximum likelihood (EM): unknown values integrated out, missing at random given the capture history",
    "allocate": "fitted on the complete cases, the others allocated proportionally (biased low)",
}


def _missing_covariates(est: dict[str, Any]) -> dict[str, Any] | None:
    """Share of observed persons with an unknown covariate, per covariate, and the rule."""
    info = (est.get("extra") or {}).get("missing_covariates")
    if not isinstance(info, dict):
        return None
    observed = _f(info.get("observed"))
    unknown = _f(info.get("unknown"))
    per = info.get("per_covariate") or {}
    return {
        "rule": info.get("rule", "?"),
        "how": MISSING_RULES.get(str(info.get("rule")), str(info.get("rule"))),
        "share": unknown / observed if observed > 0 else math.nan,
        "unknown": unknown,
        "per_covariate": [
            {"covariate": c, "unknown": _f(v.get("unknown")), "share": _f(v.get("share"))}
            for c, v in per.items()
            if isinstance(v, dict)
        ],
    }


def _forest_plot(rows: list[dict[str, Any]]):
    height = 0.9 + 0.32 * len(rows)
    with plot_context():
        fig, ax = new_figure(6.8, min(height, 14))
        y = np.arange(len(rows))[::-1]
        n = np.array([r["population_size"] for r in rows])
        lo = np.array([r["lower"] for r in rows])
        hi = np.array([r["upper"] for r in rows])
        obs = np.array([_f(r["n_observed"]) for r in rows])
        ok = np.isfinite(lo) & np.isfinite(hi)
        err = np.vstack([np.where(ok, n - lo, 0), np.where(ok, hi - n, 0)])
        ax.errorbar(n, y, xerr=err, fmt="o", capsize=3, label="N̂ with 95% interval")
        ax.scatter(obs, y, marker="|", s=120, color="#D55E00", label="observed n", zorder=3)
        labels = [
            (f"{r['period']} · " if r["period"] else "") + f"{r['index']}. {r['label']}"[:48]
            for r in rows
        ]
        ax.set_yticks(y, labels)
        _scale_for_spread(ax, "x", np.concatenate([n, obs, lo[ok], hi[ok]]))
        ax.set_xlabel("population size" + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def _scale_for_spread(ax, axis: str, values: np.ndarray) -> None:
    """Log scale when values span more than a factor 20 (an absurd N̂ must not flatten
    the others); thousands separators either way."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size and v.max() / v.min() > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    else:
        (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(_thousands())


def _thousands():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: f"{x:,.0f}")


def _frequency_rows(est: dict[str, Any]) -> list[dict[str, Any]]:
    """Observed and fitted per count k, or per capture history (summed over strata)."""
    rows = _rows(est.get("fitted_frequencies"))
    lists = [str(x) for x in ((est.get("extra") or {}).get("lists") or [])]
    table: dict[str, dict[str, float]] = {}
    for j, row in enumerate(rows):
        if lists and all(name in row for name in lists):
            key = "".join(str(row[name]) for name in lists)
        else:
            key = first_key(row, K_KEYS)
            key = str(j + 1) if key is None else str(key)
        obs, fit = first_key(row, OBS_KEYS), first_key(row, FIT_KEYS)
        if obs is None and fit is None:
            continue
        cell = table.setdefault(key, {"observed": math.nan, "fitted": math.nan})
        for name, value in (("observed", obs), ("fitted", fit)):
            if value is not None and math.isfinite(_f(value)):
                cell[name] = _f(value) + (0.0 if math.isnan(cell[name]) else cell[name])
    out = [{"k": k, **v} for k, v in table.items()]
    if lists:  # histories: most captures first, the unobserved cell (all zeros) last
        out.sort(key=lambda r: (-r["k"].count("1"), r["k"]), reverse=False)
    return out


def _frequencies_section(estimates: list[dict[str, Any]]) -> Section:
    blocks = []
    for i, est in enumerate(estimates):
        table = _frequency_rows(est)
        if not table:
            continue
        chi2 = sum(
            (r["observed"] - r["fitted"]) ** 2 / r["fitted"]
            for r in table
            if r["fitted"] > 0 and math.isfinite(r["observed"])
        )
        lists = (est.get("extra") or {}).get("lists")
        xlabel = (
            ("capture history (" + ", ".join(map(str, lists)) + ")") if lists else "times observed"
        )
        plot = svg(_frequency_plot(table, label_of(est), xlabel), f"freq-{i}")
        blocks.append(
            {
                "index": i + 1,
                "label": label_of(est),
                "period": period_of(est),
                "rows": table,
                "plot": plot,
                "chi2": chi2,
                "histories": bool(lists),
            }
        )
    if not blocks:
        return absent_section(
            "Observed vs fitted",
            "frequencies",
            "no estimate carries fitted frequencies ('fitted_frequencies').",
        )
    return Section("Observed vs fitted", "frequencies", blocks=blocks)


def _frequency_plot(table: list[dict[str, Any]], title: str, xlabel: str):
    with plot_context():
        fig, ax = new_figure(6.4, 3.0)
        x = np.arange(len(table))
        obs = np.array([r["observed"] for r in table])
        fit = np.array([r["fitted"] for r in table])
        ax.bar(x, np.nan_to_num(obs), width=0.6, label="observed", alpha=0.8)
        ax.plot(x, fit, "o-", color="#D55E00", label="fitted")
        ax.set_xticks(x, [str(r["k"]) for r in table])
        positive = np.concatenate([obs[obs > 0], fit[fit > 0]])
        if positive.size and positive.max() / max(positive.min(), 1e-9) > 200:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("persons")
        ax.set_title(title[:70], fontsize=9)
        ax.legend(frameon=False, fontsize=8)
    return fig


def _strata_section(estimates: list[dict[str, Any]], masked: Sequence[str] = ()) -> Section:
    blocks = []
    for i, est in enumerate(estimates):
        rows = []
        for row in _rows(est.get("strata")):
            n_hat = _f(first_key(row, N_KEYS))
            if math.isnan(n_hat):
                continue
            variable = first_key(row, ("variable", "covariate", "name"), "")
            level = first_key(row, ("level", "value", "stratum", "group"), "")
            if isinstance(level, dict):
                level = ", ".join(f"{k}={v}" for k, v in level.items())
            method = est.get("default_interval") or "normal"
            lo_keys = (f"{method}_lower", *LO_KEYS, "lognormal_lower", "normal_lower")
            hi_keys = (f"{method}_upper", *HI_KEYS, "lognormal_upper", "normal_upper")
            rows.append(
                {
                    "variable": str(variable),
                    "level": str(level),
                    "n_observed": first_key(row, ("n_observed", "observed", "n")),
                    "population_size": n_hat,
                    "se": _f(row.get("se")),
                    "lower": _f(first_key(row, lo_keys)),
                    "upper": _f(first_key(row, hi_keys)),
                }
            )
        if not rows:
            continue
        plot = svg(_strata_plot(rows[:MAX_STRATA_PLOTTED], label_of(est)), f"strata-{i}")
        blocks.append(
            {
                "index": i + 1,
                "label": label_of(est),
                "period": period_of(est),
                "rows": rows,
                "plot": plot,
                "truncated": len(rows) > MAX_STRATA_PLOTTED,
            }
        )
    if not blocks:
        return absent_section("N̂ by stratum", "strata", "no estimate carries strata ('strata').")
    return Section(
        "N̂ by stratum",
        "strata",
        blocks=blocks,
        max_plotted=MAX_STRATA_PLOTTED,
        masked=list(masked),
    )


def _strata_plot(rows: list[dict[str, Any]], title: str):
    with plot_context():
        fig, ax = new_figure(6.4, min(1.3 + 0.42 * len(rows), 14))
        y = np.arange(len(rows))[::-1]
        n = np.array([r["population_size"] for r in rows])
        obs = np.array([_f(r["n_observed"]) for r in rows])
        ax.barh(y, n, height=0.6, label="N̂", alpha=0.85)
        if np.isfinite(obs).any():
            ax.barh(y, obs, height=0.3, label="observed n", color="#D55E00", alpha=0.9)
        lo = np.array([r["lower"] for r in rows])
        hi = np.array([r["upper"] for r in rows])
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.errorbar(
                n[ok],
                y[ok],
                xerr=np.vstack([n[ok] - lo[ok], hi[ok] - n[ok]]),
                fmt="none",
                ecolor="black",
                capsize=2,
                lw=0.8,
            )
        ax.set_yticks(
            y,
            [
                _wrap_label(f"{r['variable']}={r['level']}" if r["variable"] else str(r["level"]))
                for r in rows
            ],
        )
        _scale_for_spread(ax, "x", np.concatenate([n, obs]))
        ax.set_xlabel("population size" + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.set_title(title[:70], fontsize=9)
        # above the bars, never on them
        fig.legend(frameon=False, fontsize=8, loc="outside lower center", ncols=2)
    return fig


def _wrap_label(text: str, width: int = 26, lines: int = 3) -> str:
    """A long stratum label (merged levels) on a few short lines, so the axes keep room
    and the label is not clipped; the table below lists it in full."""
    import textwrap

    parts = textwrap.wrap(text, width) or [text]
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1] + "…"
    return "\n".join(parts)


def _comparison_section(estimates: list[dict[str, Any]]) -> Section:
    """AIC/BIC compared only among likelihoods of the same data: the same response over
    the same rows (``likelihood_data``; e.g. Chao's logistic likelihood of the persons seen
    once or twice is not the zero-truncated Poisson's of everyone seen)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    about: dict[tuple, dict[str, Any]] = {}
    for i, est in enumerate(estimates):
        if est.get("aic") is None and est.get("bic") is None:
            continue
        data = est.get("likelihood_data") or {}
        if data.get("key"):
            key: tuple = (period_of(est), data["key"])
        else:  # untagged (older files): never ranked against another model
            key = (period_of(est), "untagged", i)
        about[key] = {
            "response": data.get("response"),
            "covers": data.get("rows"),
            "n": _f(data.get("n")) if data else _f(est.get("n_observed")),
        }
        groups[key].append(
            {
                "index": i + 1,
                "label": label_of(est),
                "formula": est.get("formula"),
                "loglik": _f(est.get("loglik")),
                "aic": _f(est.get("aic")),
                "bic": _f(est.get("bic")),
                "deviance": _f(est.get("deviance")),
                "df_residual": _f(est.get("df_residual")),
                "population_size": _f(est.get("population_size")),
            }
        )
    blocks = []
    for key, rows in groups.items():
        for crit in ("aic", "bic"):
            values = [r[crit] for r in rows if math.isfinite(r[crit])]
            best = min(values) if values else math.nan
            for r in rows:
                r[f"delta_{crit}"] = r[crit] - best if math.isfinite(r[crit]) else math.nan
        rows.sort(key=lambda r: (math.isnan(r["aic"]), r["aic"]))
        blocks.append({"period": key[0], "rows": rows, "ranked": len(rows) > 1, **about[key]})
    blocks.sort(key=lambda b: not b["ranked"])
    if not blocks:
        return absent_section(
            "Model comparison",
            "comparison",
            "no estimate carries AIC or BIC (e.g. Petersen and Chapman do not).",
        )
    return Section("Model comparison", "comparison", blocks=blocks)


def _diagnostics_section(estimates: list[dict[str, Any]]) -> Section:
    """The count models' diagnostics as singleRcapture plots them: a hanging rootogram of
    the frequencies, Pearson residuals of the covariate patterns' mean counts, and the
    leave-one-out change in N̂ (dfpopsize)."""
    blocks = []
    for i, est in enumerate(estimates):
        diag = est.get("diagnostics") or {}
        freq = [
            r
            for r in _rows(est.get("fitted_frequencies"))
            if isinstance(r.get("k"), int) and math.isfinite(_f(r.get("fitted")))
        ]
        resid = [
            r for r in _rows(diag.get("pattern_residuals")) if r.get("pearson_residual") is not None
        ]
        top = _rows(diag.get("dfpopsize_top"))
        if not (freq or resid or top):
            continue
        label = label_of(est)
        gof = diag.get("goodness_of_fit") or {}
        influence = []
        for r in top[:10]:
            where = ", ".join(
                f"{k}={v}" for k, v in r.items() if k not in ("count", "weight", "dfpopsize")
            )
            influence.append(
                {"where": where or "–", "count": r.get("count"), "dfpopsize": _f(r["dfpopsize"])}
            )
        blocks.append(
            {
                "index": i + 1,
                "label": label,
                "period": period_of(est),
                "rootogram": svg(_rootogram(freq, label), f"rootogram-{i}") if freq else None,
                "residuals": svg(_residual_plot(resid, label), f"residuals-{i}") if resid else None,
                "dfpopsize": svg(_dfpopsize_plot(influence, label), f"dfpopsize-{i}")
                if influence
                else None,
                "influence": influence,
                "dfpopsize_method": diag.get("dfpopsize_method"),
                "population_size": _f(est.get("population_size")),
                "gof": {
                    "chi2": _f(gof.get("chi2")),
                    "g": _f(gof.get("g")),
                    "df": gof.get("df"),
                    "p": _f(gof.get("p_value")),
                    "g_p": _f(gof.get("g_p_value")),
                    "cells": " ".join(str(g.get("k")) for g in _rows(gof.get("groups"))),
                }
                if gof.get("groups")
                else None,
            }
        )
    if not blocks:
        return absent_section(
            "Diagnostics of the count models",
            "diagnostics",
            "no single-source count model among the estimates.",
        )
    return Section("Diagnostics of the count models", "diagnostics", blocks=blocks)


def _rootogram(rows: list[dict[str, Any]], title: str):
    """Hanging rootogram (Kleiber & Zeileis 2016): bars of √observed hang from the curve
    √fitted, so a misfit shows as a bar ending off the zero line."""
    with plot_context():
        fig, ax = new_figure(6.4, 3.0)
        k = np.array([r["k"] for r in rows], dtype=float)
        obs = np.sqrt(np.array([_f(r["observed"]) for r in rows]))
        fit = np.sqrt(np.array([_f(r["fitted"]) for r in rows]))
        ax.bar(k, obs, bottom=fit - obs, width=0.7, alpha=0.7, label="√observed (hanging)")
        ax.plot(k, fit, "o-", color="#D55E00", ms=3, label="√fitted")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("times observed k")
        ax.set_ylabel("√frequency")
        ax.set_title(title[:70], fontsize=9)
        ax.legend(frameon=False, fontsize=8)
    return fig


def _residual_plot(rows: list[dict[str, Any]], title: str):
    with plot_context():
        fig, ax = new_figure(6.4, 3.0)
        fit = np.array([_f(r["fitted_mean"]) for r in rows])
        res = np.array([_f(r["pearson_residual"]) for r in rows])
        size = np.array([_f(r["persons"]) for r in rows])
        ax.scatter(fit, res, s=8 + 60 * np.sqrt(size / max(size.max(), 1)), alpha=0.6)
        for bound in (-2, 2):
            ax.axhline(bound, color="grey", ls="--", lw=0.8)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("fitted mean count of the pattern (zero-truncated)")
        ax.set_ylabel("Pearson residual of the mean")
        ax.set_title(title[:70], fontsize=9)
    return fig


def _dfpopsize_plot(rows: list[dict[str, Any]], title: str):
    with plot_context():
        fig, ax = new_figure(6.4, min(1.0 + 0.3 * len(rows), 6))
        y = np.arange(len(rows))[::-1]
        values = np.array([r["dfpopsize"] for r in rows])
        ax.barh(y, values, height=0.6, color=np.where(values > 0, "C0", "#D55E00"))
        ax.set_yticks(y, [f"k={r['count']}: {r['where']}"[:60] for r in rows], fontsize=7)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("N̂ − N̂ without the person")
        ax.set_title(title[:70], fontsize=9)
    return fig


def _curve_rows(data: Any, x_keys: Sequence[str]) -> list[dict[str, float]]:
    out = []
    for row in _rows(data):
        x, n = _f(first_key(row, x_keys)), _f(first_key(row, N_KEYS))
        if math.isfinite(x) and math.isfinite(n):
            out.append(
                {
                    "x": x,
                    "population_size": n,
                    "lower": _f(first_key(row, LO_KEYS)),
                    "upper": _f(first_key(row, HI_KEYS)),
                    "se": _f(row.get("se")),
                }
            )
    out.sort(key=lambda r: r["x"])
    return out


def _curve_plot(
    curves: list[tuple[str, list[dict[str, float]]]],
    xlabel: str,
    *,
    logx: bool = False,
    mark: float | None = None,
    mark_label: str = "",
):
    with plot_context():
        fig, ax = new_figure(6.4, 3.2)
        for j, (label, rows) in enumerate(curves):
            x = np.array([r["x"] for r in rows])
            n = np.array([r["population_size"] for r in rows])
            lo = np.array([r["lower"] for r in rows])
            hi = np.array([r["upper"] for r in rows])
            colour = f"C{j % 8}"
            ax.plot(x, n, "o-", ms=3, color=colour, label=label[:60])
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.sum() >= 2:
                ax.fill_between(x[ok], lo[ok], hi[ok], color=colour, alpha=0.15, lw=0)
        if logx:
            from matplotlib.ticker import FixedLocator, NullFormatter

            ax.set_xscale("log")
            # label the values drawn (0.5, 1, 2, …), not log-axis minor ticks that collide
            # ("3×10⁻¹4×10⁻¹")
            xs = sorted({r["x"] for _, rows in curves for r in rows if r["x"] > 0})
            if xs:
                ax.xaxis.set_major_locator(FixedLocator(xs))
                ax.set_xticks(xs, [f"{v:g}" for v in xs])
            ax.xaxis.set_minor_formatter(NullFormatter())
        if mark is not None:
            ax.axvline(mark, color="grey", ls="--", lw=1)
            ax.annotate(
                mark_label,
                (mark, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -10),
                textcoords="offset points",
                fontsize=8,
                color="grey",
            )
        ax.yaxis.set_major_formatter(_thousands())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("population size")
        ax.legend(frameon=False, fontsize=8)
    return fig


def _sensitivity_section(
    estimates,
    key: str,
    title: str,
    anchor: str,
    xlabel: str,
    x_keys: Sequence[str],
    absent: str,
    **plot_kw,
) -> Section:
    curves, tables, unusable = [], [], []
    for i, est in enumerate(estimates):
        raw = (est.get("extra") or {}).get(key)
        rows = _curve_rows(raw, x_keys)
        if raw and not rows:
            unusable.append(f"{i + 1}. {label_of(est)}")
        if rows:
            label = f"{i + 1}. {label_of(est)}" + (f" ({period_of(est)})" if period_of(est) else "")
            curves.append((label, rows))
            tables.append({"label": label, "rows": rows})
    if not curves:
        if unusable:
            absent = (
                f"extra['{key}'] is present ({'; '.join(unusable)}) but holds no finite N̂ "
                "(the model could not be fitted at these values)."
            )
        return absent_section(title, anchor, absent)
    plot = svg(_curve_plot(curves, xlabel, **plot_kw), anchor)
    return Section(title, anchor, plot=plot, tables=tables)


def _linkage_aware_section(estimates: list[dict[str, Any]]) -> Section:
    rows = []
    for i, est in enumerate(estimates):
        la = (est.get("extra") or {}).get("linkage_aware")
        if not isinstance(la, dict):
            continue
        lo, hi, method = interval_of(est)
        analytic = (est.get("extra") or {}).get("linkage_aware_analytic")
        rows.append(
            {
                "index": i + 1,
                "label": label_of(est),
                "period": period_of(est),
                "analytic": None
                if not isinstance(analytic, dict)
                else {
                    "population_size": _f(first_key(analytic, N_KEYS)),
                    "se": _f(analytic.get("se")),
                    "lower": _f(first_key(analytic, LO_KEYS)),
                    "upper": _f(first_key(analytic, HI_KEYS)),
                    "method": analytic.get("method", "analytic"),
                },
                "naive": {
                    "population_size": _f(est.get("population_size")),
                    "se": _f(est.get("se")),
                    "lower": lo,
                    "upper": hi,
                    "method": method,
                },
                "aware": {
                    "population_size": _f(first_key(la, N_KEYS)),
                    "se": _f(la.get("se")),
                    "lower": _f(first_key(la, LO_KEYS)),
                    "upper": _f(first_key(la, HI_KEYS)),
                    "method": la.get("method", ""),
                },
                "share": _f(la.get("linkage_variance_share")),
            }
        )
    if not rows:
        return absent_section(
            "Linkage-aware interval",
            "linkage-aware",
            "no estimate carries a linkage-aware interval (extra['linkage_aware']).",
        )
    return Section("Linkage-aware interval", "linkage-aware", rows=rows)


def _series_section(estimates: list[dict[str, Any]]) -> Section:
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    periods = []
    for est in estimates:
        period = period_of(est)
        if period is None:
            continue
        if period not in periods:
            periods.append(period)
        lo, hi, _ = interval_of(est)
        by_model[label_of(est)].append(
            {
                "period": period,
                "population_size": _f(est["population_size"]),
                "lower": lo,
                "upper": hi,
            }
        )
    if len(periods) < 2:
        what = f"one period ({periods[0]})" if periods else "no period labels (extra['period'])"
        return absent_section(
            "Series over periods",
            "series",
            f"the run has {what}; a series needs two or more periods.",
        )
    periods.sort()
    pos = {p: j for j, p in enumerate(periods)}
    with plot_context():
        fig, ax = new_figure(6.8, 3.4)
        for j, (label, rows) in enumerate(by_model.items()):
            rows.sort(key=lambda r: pos[r["period"]])
            x = (
                np.array([pos[r["period"]] for r in rows], dtype=float)
                + (j - len(by_model) / 2) * 0.04
            )
            n = np.array([r["population_size"] for r in rows])
            lo = np.array([r["lower"] for r in rows])
            hi = np.array([r["upper"] for r in rows])
            ok = np.isfinite(lo) & np.isfinite(hi)
            err = np.vstack([np.where(ok, n - lo, 0), np.where(ok, hi - n, 0)])
            ax.errorbar(
                x, n, yerr=err, fmt="o-", ms=4, capsize=3, label=label[:50], color=f"C{j % 8}"
            )
        ax.set_xticks(range(len(periods)), periods, rotation=20, ha="right")
        ax.yaxis.set_major_formatter(_thousands())
        ax.set_ylabel("population size")
        ax.legend(frameon=False, fontsize=8)
    table = [{"label": label, "rows": rows} for label, rows in by_model.items()]
    return Section(
        "Series over periods", "series", plot=svg(fig, "series"), periods=periods, tables=table
    )


# ------------------------------------------------------------------------------ public
def estimate_report(
    estimates: str | os.PathLike | Iterable[dict[str, Any] | PopulationEstimate],
    out_path: str | os.PathLike,
    *,
    run_info: dict[str, Any] | None = None,
    title: str = "Population-size estimates",
    show_names: bool = False,
) -> Path:
    """Write the estimate report (one self-contained HTML file) and return its path.

    ``estimates`` is a run directory, an ``estimates.json`` path, or estimates as objects
    or dicts. Sections whose inputs are absent say so instead of disappearing. Strata
    levels of free-text covariates (anything not in :data:`CODED_VARIABLES`) are numbered,
    not shown, unless ``show_names``.
    """
    loaded = load_estimates(estimates)
    if not loaded:
        raise InputError(
            "no estimates to report",
            file=str(estimates) if isinstance(estimates, str | os.PathLike) else None,
        )
    masked: list[str] = []
    if not show_names:
        loaded, masked = mask_free_text(loaded)
    entries = [e for e in loaded if "population_size" in e]
    failed = [
        {"label": label_of(e), "period": period_of(e), "error": e.get("error", "")}
        for e in loaded
        if "population_size" not in e
    ]
    sections = [
        _summary_section(entries, failed),
        _frequencies_section(entries),
        _strata_section(entries, masked),
        _comparison_section(entries),
        _diagnostics_section(entries),
        _sensitivity_section(
            entries,
            "dependence_sensitivity",
            "Dependence sensitivity N̂(θ)",
            "dependence",
            "odds ratio θ between the lists (1 = independence)",
            THETA_KEYS,
            "no estimate carries a dependence sensitivity (extra['dependence_sensitivity']); "
            "it applies to two-list DSE.",
            logx=True,
            mark=1.0,
            mark_label="independence",
        ),
        _sensitivity_section(
            entries,
            "threshold_sensitivity",
            "Threshold sensitivity",
            "threshold",
            "linkage threshold (match probability)",
            ("threshold", "match_weight", "t"),
            "no estimate carries a threshold sensitivity (extra['threshold_sensitivity']).",
        ),
        _linkage_aware_section(entries),
        _series_section(entries),
    ]
    return render(
        "estimate.html",
        out_path,
        report_name="estimates",
        title=title,
        run=run_info or {},
        sections=sections,
        s={x.anchor: x for x in sections},
        show_names=show_names,
    )
