"""Plotly figures of the HTML card, as HTML fragments (plotly.js packed once: :mod:`._plotly`).

Figures are plain plotly JSON dicts written without plotly's Python-side
validation: the graph_objects layer costs about a second per card for
nothing the browser needs.

Labels reach plotly HTML-escaped: plotly.js reads a small HTML subset in text
(``<b>``, ``<a href>``), so an unescaped group name could become markup; the
escaped form is shown as the literal text.
"""

from __future__ import annotations

import html
import re
from typing import Any

from fairderm.cards._blocks import Document, Figure, Section
from fairderm.cards._content import CardData, metric_label, number, short_group
from fairderm.cards._plotly import figure_fragment

_OK_COLOUR = "#2a6f97"
_FLAGGED_COLOUR = "#a0a0a0"
_THRESHOLD_COLOUR = "#b23a48"
_GRID = "#e5e8ee"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif", "size": 12}


def _label(text: Any) -> str:
    return html.escape(str(text), quote=False)


def _layout(**extra: Any) -> dict[str, Any]:
    return {"paper_bgcolor": "white", "plot_bgcolor": "white", "font": _FONT,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 40}, **extra}


def _axis(**extra: Any) -> dict[str, Any]:
    return {"gridcolor": _GRID, "zeroline": False, "automargin": True, **extra}


def _error_bars(
    estimate: list[float], low: list[float | None], high: list[float | None], colour: str | None = _OK_COLOUR
) -> dict[str, Any]:
    """Asymmetric error bars from interval bounds (a missing bound draws no bar on that side)."""
    bars: dict[str, Any] = {
        "type": "data", "symmetric": False,
        "array": [(h if h is not None else e) - e for e, h in zip(estimate, high)],
        "arrayminus": [e - (lo if lo is not None else e) for e, lo in zip(estimate, low)],
    }
    if colour is not None:  # None: the trace's own colour
        bars["color"] = colour
    return bars


def _gate_thresholds(data: CardData, attribute: str) -> dict[str, list[float]]:
    """Thresholds of the gate's per-group rules on this attribute, drawn as dashed lines."""
    found: dict[str, list[float]] = {}
    for rule in (data.gate or {}).get("rules", []):
        settings = rule.get("rule", {}) if isinstance(rule, dict) else {}
        if settings.get("attribute") == attribute and settings.get("metric") and not settings.get("disparity") \
                and number(settings.get("threshold")) is not None:
            found.setdefault(settings["metric"], []).append(float(settings["threshold"]))
    return found


def _forest(data: CardData, attribute: str, metrics: list[str]) -> dict[str, Any] | None:
    """One panel per metric: estimate and 95% interval for each group (flagged groups in grey)."""
    rows = data.rows(attribute)
    metrics = [m for m in metrics if (rows["metric"] == m).any()]
    if not metrics:
        return None
    thresholds = _gate_thresholds(data, attribute)
    width, gap = 1.0 / len(metrics), 0.04
    traces, shapes, annotations, layout = [], [], [], _layout()
    for index, metric in enumerate(metrics):
        suffix = "" if index == 0 else str(index + 1)
        part = [r for r in rows[rows["metric"] == metric].to_dict("records") if number(r["estimate"]) is not None]
        estimate = [float(number(r["estimate"])) for r in part]  # type: ignore[arg-type]
        flagged = [(r["flag"] or "ok") != "ok" for r in part]
        traces.append({
            "type": "scatter", "mode": "markers", "xaxis": f"x{suffix}", "yaxis": "y", "showlegend": False,
            "x": estimate,
            "y": [_label(short_group(str(r["group"]), attribute) + (" †" if f else "")) for r, f in zip(part, flagged)],
            "marker": {"size": 9, "color": [_FLAGGED_COLOUR if f else _OK_COLOUR for f in flagged]},
            "error_x": _error_bars(estimate, [number(r["ci_low"]) for r in part], [number(r["ci_high"]) for r in part]),
            "hovertemplate": "%{y}: %{x:.3f}<extra></extra>",
        })
        start = index * width + (gap / 2 if index else 0)
        end = (index + 1) * width - (gap / 2 if index < len(metrics) - 1 else 0)
        layout[f"xaxis{suffix}"] = _axis(domain=[start, end], anchor="y")
        annotations.append({"text": _label(metric_label(metric, data.top_k)), "x": (start + end) / 2, "y": 1.0,
                            "xref": "paper", "yref": "paper", "yanchor": "bottom", "showarrow": False,
                            "font": {"size": 13}})
        shapes += [{"type": "line", "xref": f"x{suffix}", "yref": "paper", "x0": t, "x1": t, "y0": 0, "y1": 1,
                    "line": {"color": _THRESHOLD_COLOUR, "dash": "dash", "width": 1.5}}
                   for t in thresholds.get(metric, [])]
    layout.update(yaxis=_axis(type="category", autorange="reversed"), shapes=shapes, annotations=annotations,
                  height=130 + 40 * rows["group"].nunique())
    return {"data": traces, "layout": layout}


def _group_sizes(data: CardData, attribute: str) -> dict[str, Any]:
    sizes = data.group_sizes(attribute)
    names = [_label(g) for g in sizes["group"]]
    traces = [{"type": "bar", "x": names, "y": [number(v) for v in sizes["n"]], "name": "cases",
               "marker": {"color": _OK_COLOUR}}]
    if sizes["n_pos"].notna().any():
        traces.append({"type": "bar", "x": names, "y": [number(v) for v in sizes["n_pos"]], "name": "positives",
                       "marker": {"color": "#e07a5f"}})
    layout = _layout(barmode="group", height=320, xaxis=_axis(type="category"), yaxis=_axis(title={"text": "cases"}))
    minimum = number(data.config.get("min_group_size"))
    if minimum is not None:
        layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": minimum, "y1": minimum,
                             "line": {"color": _THRESHOLD_COLOUR, "dash": "dash", "width": 1.5}}]
        layout["annotations"] = [{"text": f"minimum group size {minimum:g}", "xref": "paper", "x": 1, "y": minimum,
                                  "xanchor": "right", "yanchor": "bottom", "showarrow": False}]
    return {"data": traces, "layout": layout}


def _interval(result: dict[str, Any], key: str) -> tuple[float | None, float | None, float | None]:
    value = result.get(key) if isinstance(result.get(key), dict) else {}
    return number(value.get("estimate")), number(value.get("ci_low")), number(value.get("ci_high"))


def _mitigation(data: CardData) -> dict[str, Any] | None:
    methods = (data.run.mitigation or {}).get("methods")
    if not isinstance(methods, dict):
        return None
    traces = []
    for name, result in methods.items():
        if not isinstance(result, dict):
            continue
        gap, gap_low, gap_high = _interval(result, "gap")
        accuracy, acc_low, acc_high = _interval(result, "accuracy")
        if gap is None or accuracy is None:
            continue
        traces.append({
            "type": "scatter", "mode": "markers+text", "x": [gap], "y": [accuracy], "name": _label(name),
            "text": [_label(name)], "textposition": "top center",
            "error_x": _error_bars([gap], [gap_low], [gap_high], colour=None),
            "error_y": _error_bars([accuracy], [acc_low], [acc_high], colour=None),
        })
    if not traces:
        return None
    layout = _layout(height=380, xaxis=_axis(title={"text": "tone gap (best minus worst group accuracy)"}),
                     yaxis=_axis(title={"text": "accuracy"}))
    return {"data": traces, "layout": layout}


def _calibration(data: CardData, attribute: str) -> dict[str, Any] | None:
    curves = data.calibration_curves(attribute)
    if not curves:
        return None
    traces: list[dict[str, Any]] = [{"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": "perfect",
                                     "line": {"color": "#9aa3b2", "dash": "dot"}, "hoverinfo": "skip"}]
    for group, bins in curves.items():
        bins = sorted(bins, key=lambda b: number(b.get("bin")) or 0)
        observed = [float(number(b["observed"])) for b in bins]  # type: ignore[arg-type]
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": _label(group),
            "x": [number(b["mean_confidence"]) for b in bins], "y": observed,
            "error_y": _error_bars(observed, [number(b.get("observed_ci_low")) for b in bins],
                                   [number(b.get("observed_ci_high")) for b in bins], colour=None),
            "hovertemplate": _label(group) + ": predicted %{x:.2f}, observed %{y:.2f}<extra></extra>",
        })
    layout = _layout(height=400, xaxis=_axis(range=[0, 1], title={"text": "mean predicted probability"}),
                     yaxis=_axis(range=[0, 1], title={"text": "observed frequency"}))
    return {"data": traces, "layout": layout}


def _figure(data: CardData, key: str) -> dict[str, Any] | None:
    metrics = data.metric_names[:4]
    if key == "tone_forest" and data.tone_attribute:
        return _forest(data, data.tone_attribute, metrics)
    if key == "group_sizes" and data.tone_attribute:
        return _group_sizes(data, data.tone_attribute)
    if key == "calibration" and data.tone_attribute:
        return _calibration(data, data.tone_attribute)
    if key == "mitigation":
        return _mitigation(data)
    if key.startswith("intersection:"):
        return _forest(data, key.split(":", 1)[1], metrics[:2])
    return None


def _figure_keys(sections: list[Section]) -> list[str]:
    keys = []
    for section in sections:
        keys += [b.key for b in section.blocks if isinstance(b, Figure)]
        keys += _figure_keys(section.subsections)
    return keys


def render_figures(data: CardData, document: Document) -> dict[str, str]:
    """HTML fragment per figure key; the page adds :func:`plotly_loader` once to draw them (no CDN)."""
    fragments: dict[str, str] = {}
    for key in _figure_keys(document.sections):
        figure = _figure(data, key)
        if figure is None:
            continue
        # Stable div ids keep card.html byte-identical across rebuilds of the same run.
        div_id = "figure-" + re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")
        fragments[key] = figure_fragment(figure, div_id, _PLOT_CONFIG)
    return fragments
