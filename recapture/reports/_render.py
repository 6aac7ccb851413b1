"""Shared machinery of the reports: Jinja2 environment, inline SVG plots, number formats.

Every report is one self-contained HTML file: the stylesheet is inlined from
``templates/style.css`` and every plot is an inline SVG written by matplotlib, so the page
opens offline and fetches nothing (no scripts, fonts or images from anywhere).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers; figures are rendered to SVG text only

import jinja2  # noqa: E402
from markupsafe import Markup  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from recapture import __version__, progress  # noqa: E402
from recapture.io import atomic_write  # noqa: E402

#: Plot colours (colour-blind safe, print well in grey).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, uses the reader's fonts
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # shipped with matplotlib: same metrics everywhere
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=list(COLOURS)),
}


def new_figure(width: float = 6.4, height: float = 3.4, **subplots: Any) -> tuple[Figure, Any]:
    """A figure not registered with pyplot (no global state, safe in threads)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    with matplotlib.rc_context(_RC):
        axes = fig.subplots(**subplots)
    return fig, axes


def plot_context():
    """rc settings under which plots are drawn (use as ``with plot_context():``)."""
    return matplotlib.rc_context(_RC)


def svg(fig: Figure, key: str) -> Markup:
    """The figure as inline SVG markup.

    ``key`` salts the SVG's internal ids, so several plots on one page never share an id
    and the output is byte-for-byte reproducible.
    """
    buf = io.StringIO()
    # matplotlib's layout warnings would print a source line to stderr: one note instead,
    # and none under --quiet
    with (
        warnings.catch_warnings(record=True) as caught,
        matplotlib.rc_context({**_RC, "svg.hashsalt": f"recapture-{key}"}),
    ):
        warnings.simplefilter("always")
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    for w in {str(w.message) for w in caught}:
        progress.info(f"  note: plot '{key}': {w}")
    text = buf.getvalue()
    start = text.find("<svg")
    text = text[start:]
    # Let CSS scale the plot to the column width; the viewBox keeps its proportions.
    marks = sum(
        len(ax.lines) + len(ax.patches) + len(ax.collections) + len(ax.images) for ax in fig.axes
    )
    text = text.replace("<svg ", f'<svg role="img" aria-label="{key}" data-marks="{marks}" ', 1)
    return Markup(text)


# ------------------------------------------------------------------------------ formats
def fmt_int(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{round(float(value)):,}"


def fmt_num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "–" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    return f"{x:,.{digits}f}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    x = float(value)
    if not math.isfinite(x):
        return "–"
    return f"{100 * x:.{digits}f}%"


def fmt_sci(value: Any, digits: int = 3) -> str:
    """Small probabilities (u values) readably: 0.0123 or 1.2e-05."""
    if value is None:
        return "–"
    x = float(value)
    if not math.isfinite(x):
        return "–"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}f}"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("recapture.reports", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(int=fmt_int, num=fmt_num, pct=fmt_pct, sci=fmt_sci)
    return env


_ENV: jinja2.Environment | None = None


def render(template: str, out_path: str | Path, **context: Any) -> Path:
    """Render ``template`` with ``context`` and write it atomically to ``out_path``."""
    global _ENV
    if _ENV is None:
        _ENV = _env()
    context.setdefault("show_names", False)
    context.setdefault("run", {})
    html = _ENV.get_template(template).render(
        version=__version__,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )
    return atomic_write(out_path, lambda tmp: tmp.write_text(html, encoding="utf-8"))


class Section:
    """One part of a report that may be absent; the page says why when it is."""

    def __init__(self, title: str, anchor: str, absent: str | None = None, **content: Any):
        self.title = title
        self.anchor = anchor
        self.absent = absent
        self.content = content

    @property
    def available(self) -> bool:
        return self.absent is None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["content"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def absent_section(title: str, anchor: str, reason: str) -> Section:
    return Section(title, anchor, absent=reason)


def first_key(row: dict[str, Any], names: Iterable[str], default: Any = None) -> Any:
    """The value of the first of ``names`` present in ``row`` (tolerates naming variants)."""
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    return default


def table_rows(data: Any) -> list[dict[str, Any]]:
    """Rows from a list of dicts or a dict of equal-length lists (columns)."""
    if data is None:
        return []
    if isinstance(data, dict):
        if data and all(isinstance(v, list | tuple) for v in data.values()):
            n = min(len(v) for v in data.values())
            return [{k: v[i] for k, v in data.items()} for i in range(n)]
        for key in ("rows", "values", "table", "grid"):
            if isinstance(data.get(key), list):
                return table_rows(data[key])
        return []
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    return []
