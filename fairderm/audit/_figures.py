"""``figures/``: per-group metrics with intervals and reliability curves, from ``metrics.json``.

Files
-----
``figures/metrics.html``
    One self-contained page (plotly.js packed inline, no network request): for each
    metric, the estimate and 95% interval of every group, groups flagged
    ``insufficient`` drawn hollow; then the reliability curves per group when
    ``metrics.json`` has calibration data.
``figures/<metric>.json``, ``figures/reliability.json``
    The same figures as plotly JSON, for the dashboard or a notebook
    (``plotly.io.from_json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from fairderm._io import atomic_write_text
from fairderm.cards import figure_fragment, plotly_loader
from fairderm.metrics import EvaluationResult, GroupRow
from fairderm.runs import RunFolder


def interval_figure(rows: list[GroupRow], metric: str) -> Any:
    """A forest plot: one row per group, estimate and interval of ``metric``."""
    import plotly.graph_objects as go

    rows = [r for r in rows if r.metric == metric and r.estimate is not None]
    figure = go.Figure()
    for flag, symbol in (("ok", "circle"), ("insufficient", "circle-open")):
        chosen = [r for r in rows if (r.flag == "insufficient") == (flag == "insufficient")]
        if not chosen:
            continue
        estimate = [r.estimate for r in chosen]
        low = [r.ci_low for r in chosen]
        high = [r.ci_high for r in chosen]
        figure.add_trace(go.Scatter(
            x=estimate,
            y=[f"{r.key} (n={r.n})" for r in chosen],
            mode="markers",
            marker={"symbol": symbol, "size": 10},
            name="enough cases" if flag == "ok" else "too few cases (insufficient)",
            error_x={
                "type": "data", "symmetric": False,
                "array": [(h - e) if h is not None else 0 for e, h in zip(estimate, high)],
                "arrayminus": [(e - lo) if lo is not None else 0 for e, lo in zip(estimate, low)],
            },
        ))
    figure.update_layout(
        title=f"{metric} by group (95% interval)", xaxis_title=metric, height=120 + 28 * max(1, len(rows)),
        margin={"l": 260, "r": 30, "t": 50, "b": 40}, template="plotly_white",
    )
    return figure


def reliability_figure(calibration: pd.DataFrame) -> Any | None:
    """Reliability curves (mean confidence against observed frequency per bin, with its interval), one per group.

    ``calibration`` is :attr:`EvaluationResult.calibration` (one row per
    attribute, group, kind and bin); None when it has no bins.
    """
    import plotly.graph_objects as go

    needed = {"group", "kind", "bin", "mean_confidence", "observed"}
    if calibration is None or calibration.empty or not needed <= set(calibration.columns):
        return None
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                                name="perfect calibration"))
    several_kinds = calibration["kind"].nunique() > 1
    for (group, kind), bins in calibration.groupby(["group", "kind"], sort=False):
        bins = bins.sort_values("bin")
        observed = bins["observed"].to_numpy(float)
        error = None
        if {"observed_ci_low", "observed_ci_high"} <= set(bins.columns):
            error = {"type": "data", "symmetric": False, "thickness": 1,
                     "array": (bins["observed_ci_high"].to_numpy(float) - observed).tolist(),
                     "arrayminus": (observed - bins["observed_ci_low"].to_numpy(float)).tolist()}
        figure.add_trace(go.Scatter(  # lists, not arrays: the JSON files stay readable without plotly
            x=bins["mean_confidence"].to_numpy(float).tolist(), y=observed.tolist(), error_y=error,
            mode="lines+markers", name=f"{group} ({kind})" if several_kinds else str(group),
            customdata=bins["n"].tolist() if "n" in bins else None,
            hovertemplate="confidence %{x:.3f}<br>observed %{y:.3f}<br>n=%{customdata}<extra></extra>"
            if "n" in bins else None,
        ))
    figure.update_layout(title="Reliability by group (observed frequency with its 95% interval)",
                         xaxis_title="mean predicted probability", yaxis_title="observed frequency",
                         template="plotly_white", height=480)
    return figure


def figure_files(metrics: EvaluationResult) -> dict[str, str]:
    """The contents of ``figures/`` for a run's metrics, by file name."""
    import plotly.io as pio

    rows = metrics.by_group()
    figures = [(name, interval_figure(rows, name)) for name in metrics.metric_names]
    reliability = reliability_figure(metrics.calibration)
    if reliability is not None:
        figures.append(("reliability", reliability))
    files = {}
    parts = []
    for name, figure in figures:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        files[f"{safe}.json"] = pio.to_json(figure, pretty=False)
        # stable div ids keep the page byte-identical when verify renders it again
        parts.append(figure_fragment(json.loads(files[f"{safe}.json"]), f"figure-{safe}"))
    # plotly.js packed once, after the figures: the page opens offline
    files["metrics.html"] = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>fairderm figures</title></head><body>"
        + "".join(parts) + plotly_loader() + "</body></html>\n"
    )
    return files


def write_figures(run_dir: Path, out: Path) -> list[str]:
    """Write the figures of a run folder's ``metrics.json`` into ``out``; returns the file names."""
    files = figure_files(RunFolder(run_dir).metrics())
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return list(files)
