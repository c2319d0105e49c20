"""Plotly figures for the dashboard, in the Okabe-Ito colour-blind-safe palette.

Pure functions of tidy frames (no Streamlit), so that they can be tested
and reused. Intervals are drawn as error bars from ``ci_low`` to ``ci_high``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the
# common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
INSUFFICIENT_GREY = "#BBBBBB"
_LAYOUT = dict(template="plotly_white", colorway=OKABE_ITO, height=380,
               margin=dict(l=10, r=10, t=40, b=10), font=dict(size=13))


def _errors(frame: pd.DataFrame) -> dict:
    return dict(type="data", symmetric=False,
                array=(frame["ci_high"] - frame["estimate"]).clip(lower=0).tolist(),
                arrayminus=(frame["estimate"] - frame["ci_low"]).clip(lower=0).tolist())


def interval_plot(frame: pd.DataFrame, *, label: str = "group", title: str = "",
                  zero: float | None = None, log_x: bool = False) -> go.Figure:
    """Horizontal point-and-interval plot (a forest plot when ``zero`` is set).

    Rows whose ``flag`` is not ``ok`` are drawn grey: their interval rests on
    too few cases to read.
    """
    fig = go.Figure()
    ok = frame["flag"].eq("ok") if "flag" in frame else pd.Series(True, index=frame.index)
    for mask, colour, name in ((ok, OKABE_ITO[0], "estimate (95% CI)"),
                               (~ok, INSUFFICIENT_GREY, "insufficient n")):
        part = frame[mask]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(x=part["estimate"], y=part[label].astype(str), mode="markers",
                                 marker=dict(color=colour, size=10), error_x={**_errors(part), "color": colour},
                                 name=name))
    if zero is not None:
        fig.add_vline(x=zero, line_dash="dash", line_color="#555555")
    fig.update_layout(title=title, **_LAYOUT)
    fig.update_yaxes(autorange="reversed", type="category")
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def intersection_heatmap(frame: pd.DataFrame, *, rows: str, cols: str, title: str = "") -> go.Figure:
    """Heatmap of estimates over two attributes; cells with insufficient n are grey.

    Each cell's text gives the estimate, ``n`` and the interval width.
    """
    ok = frame["flag"].eq("ok")
    values = frame.assign(value=frame["estimate"].where(ok)).pivot(index=rows, columns=cols, values="value")
    width = (frame["ci_high"] - frame["ci_low"])
    text_frame = frame.assign(text=[
        f"{e:.2f}<br>n={n}<br>±{w / 2:.2f}" + ("" if good else "<br>insufficient")
        for e, n, w, good in zip(frame["estimate"], frame["n"], width, ok)])
    text = text_frame.pivot(index=rows, columns=cols, values="text").reindex_like(values)
    fig = go.Figure(go.Heatmap(z=values.to_numpy(dtype=float), x=values.columns.astype(str),
                               y=values.index.astype(str), text=text.to_numpy(), texttemplate="%{text}",
                               colorscale="Viridis", hoverongaps=False, colorbar=dict(title="estimate")))
    fig.update_layout(title=title, **_LAYOUT)
    fig.update_layout(plot_bgcolor=INSUFFICIENT_GREY)
    fig.update_xaxes(showgrid=False, title=cols)
    fig.update_yaxes(showgrid=False, title=rows)
    return fig


def reliability_plot(frame: pd.DataFrame, *, x: str, y: str, group: str = "group") -> go.Figure:
    """Reliability curves (observed against predicted) per group, with the diagonal."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(color="#777777", dash="dash")))
    for i, (name, part) in enumerate(frame.groupby(group, sort=True)):
        part = part.sort_values(x)
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="lines+markers", name=str(name),
                                 line=dict(color=OKABE_ITO[i % len(OKABE_ITO)])))
    fig.update_layout(title="Reliability curves", xaxis_title="mean predicted confidence",
                      yaxis_title="observed frequency", **_LAYOUT)
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return fig


def ita_distribution(frame: pd.DataFrame, *, group: str) -> go.Figure:
    """Box plots of ITA (degrees; Chardon 1991) per labelled tone group."""
    fig = go.Figure()
    for i, (name, part) in enumerate(frame.groupby(group, sort=True)):
        fig.add_trace(go.Box(y=part["ita"], name=str(name), marker_color=OKABE_ITO[i % len(OKABE_ITO)],
                             boxpoints=False))
    fig.update_layout(title=f"ITA by {group}", yaxis_title="ITA (degrees)", showlegend=False, **_LAYOUT)
    return fig


def confusion_heatmap(table: pd.DataFrame, *, title: str) -> go.Figure:
    """Counts of labelled (rows) against estimated (columns) tone."""
    fig = go.Figure(go.Heatmap(z=table.to_numpy(dtype=float), x=table.columns.astype(str),
                               y=table.index.astype(str), text=table.to_numpy(), texttemplate="%{text}",
                               colorscale="Blues", colorbar=dict(title="cases")))
    fig.update_layout(title=title, **_LAYOUT)
    fig.update_xaxes(title="estimated", type="category")
    fig.update_yaxes(title="labelled", type="category", autorange="reversed")
    return fig


def frontier_plot(frame: pd.DataFrame) -> go.Figure:
    """Accuracy against gap per mitigation method, both with intervals."""
    fig = go.Figure()
    for i, row in enumerate(frame.itertuples()):
        fig.add_trace(go.Scatter(
            x=[row.gap], y=[row.accuracy], mode="markers+text", text=[row.method], textposition="top center",
            name=row.method, marker=dict(size=12, color=OKABE_ITO[i % len(OKABE_ITO)]),
            error_x=dict(type="data", symmetric=False, array=[row.gap_high - row.gap],
                         arrayminus=[row.gap - row.gap_low]),
            error_y=dict(type="data", symmetric=False, array=[row.accuracy_high - row.accuracy],
                         arrayminus=[row.accuracy - row.accuracy_low])))
    fig.update_layout(title="Accuracy against worst-group gap (lower gap, higher accuracy is better)",
                      xaxis_title="accuracy gap between tone groups", yaxis_title="overall accuracy", **_LAYOUT)
    return fig


def grouped_intervals(frame: pd.DataFrame, *, series: str, label: str = "group", title: str = "") -> go.Figure:
    """Point-and-interval per group, one colour per ``series`` (e.g. method or run).

    The series of a group are set side by side along the group axis
    (``orientation="h"``); with the default orientation Plotly would shift
    them along the estimate axis instead, drawing equal estimates apart.
    """
    fig = go.Figure()
    for i, (name, part) in enumerate(frame.groupby(series, sort=False)):
        fig.add_trace(go.Scatter(x=part["estimate"], y=part[label].astype(str), mode="markers", name=str(name),
                                 orientation="h",
                                 marker=dict(size=10, color=OKABE_ITO[i % len(OKABE_ITO)]),
                                 error_x={**_errors(part), "color": OKABE_ITO[i % len(OKABE_ITO)]}))
    fig.update_layout(title=title, scattermode="group", **_LAYOUT)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def finite(values: pd.Series) -> np.ndarray:
    """Finite values of a numeric series (NaN and infinities dropped)."""
    array = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return array[np.isfinite(array)]
