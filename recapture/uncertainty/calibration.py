"""Recalibrating match probabilities with a clerical review before imputing links.

Multiple imputation is only as honest as the match probabilities it draws from. Fellegi–
Sunter probabilities under conditional independence are often over-confident: pairs scored
0.95 may be true matches a third of the time. A labelled review sample of candidate pairs
(stratified by probability band, as :mod:`recapture.linkage.review` exports it) fixes this
with Platt scaling: a logistic regression of the label on the model's log-odds,

    logit p' = a + b · logit p   (+ an intercept shift per pair group, e.g. within vs across sources),

with a light ridge pull towards the identity (a = 0, b = 1) so that a small or perfectly
separated sample cannot produce 0/1 probabilities. Sampling on the score does not bias a
model of the label given the score, so the fit is unweighted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import optimize

from recapture.errors import InputError

_EPS = 1e-9


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Recalibration:
    """logit p' = intercept + shift[group] + slope · logit p."""

    intercept: float
    slope: float
    group_shifts: dict[str, float] = field(default_factory=dict)
    group_column: str | None = None
    n_labelled: int = 0
    n_matches: int = 0

    def transform(self, probability, groups=None) -> np.ndarray:
        eta = self.intercept + self.slope * _logit(probability)
        if self.group_shifts and groups is not None:
            shift = pl.Series(np.asarray(groups).astype(str)).replace_strict(
                self.group_shifts, default=0.0, return_dtype=pl.Float64
            )
            eta = eta + shift.to_numpy()
        return np.clip(1.0 / (1.0 + np.exp(-eta)), 0.0, 1.0)

    def apply(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """Pairs with recalibrated ``match_probability`` (the model's kept as
        ``match_probability_model``)."""
        groups = pairs[self.group_column].to_numpy() if self.group_column else None
        new = self.transform(pairs["match_probability"].to_numpy(), groups)
        return pairs.with_columns(
            pl.col("match_probability").alias("match_probability_model"),
            pl.Series("match_probability", new),
        )

    def to_dict(self) -> dict:
        return {
            "intercept": self.intercept,
            "slope": self.slope,
            "group_shifts": dict(self.group_shifts),
            "group_column": self.group_column,
            "n_labelled": self.n_labelled,
            "n_matches": self.n_matches,
        }


def fit_recalibration(
    labelled: pl.DataFrame,
    *,
    label: str = "is_match",
    group_column: str | None = None,
    ridge: float = 0.05,
) -> Recalibration:
    """Platt scaling from labelled pairs (``match_probability`` and a boolean ``label``)."""
    for col in ("match_probability", label, *([group_column] if group_column else [])):
        if col not in labelled.columns:
            raise InputError(f"labelled pairs need column {col!r}", column=col)
    y = labelled[label].cast(pl.Float64).to_numpy()
    if y.size < 10 or y.sum() < 2 or (y.size - y.sum()) < 2:
        raise InputError(
            "need at least 10 labelled pairs with at least 2 matches and 2 non-matches",
            column=label,
        )
    x = _logit(labelled["match_probability"].to_numpy())
    levels: list[str] = []
    if group_column:
        levels = sorted(str(v) for v in labelled[group_column].unique().to_list())[1:]
        gcode = labelled[group_column].cast(pl.String).to_numpy()
        design = np.column_stack(
            [np.ones_like(x), x, *[(gcode == lv).astype(float) for lv in levels]]
        )
    else:
        design = np.column_stack([np.ones_like(x), x])
    prior = np.zeros(design.shape[1])
    prior[1] = 1.0

    def objective(beta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ beta
        loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        mu = 1.0 / (1.0 + np.exp(-eta))
        grad = design.T @ (y - mu)
        d = beta - prior
        return -loglik + ridge * float(d @ d), -grad + 2 * ridge * d

    res = optimize.minimize(objective, prior.copy(), jac=True, method="BFGS")
    beta = res.x
    shifts = {lv: float(b) for lv, b in zip(levels, beta[2:], strict=True)}
    return Recalibration(
        intercept=float(beta[0]),
        slope=float(beta[1]),
        group_shifts=shifts,
        group_column=group_column,
        n_labelled=int(y.size),
        n_matches=int(y.sum()),
    )


def pair_kind(
    pairs: pl.DataFrame, records: pl.DataFrame, *, name: str = "pair_kind"
) -> pl.DataFrame:
    """Add ``pair_kind`` = 'within:<source>' or 'across' (for a group-wise recalibration)."""
    src = records.select("record_id", "source")
    out = pairs.join(
        src.rename({"record_id": "record_id_l", "source": "_sl"}), on="record_id_l", how="left"
    )
    out = out.join(
        src.rename({"record_id": "record_id_r", "source": "_sr"}), on="record_id_r", how="left"
    )
    return out.with_columns(
        pl.when(pl.col("_sl") == pl.col("_sr"))
        .then(pl.lit("within:") + pl.col("_sl"))
        .otherwise(pl.lit("across"))
        .alias(name)
    ).drop("_sl", "_sr")
