"""The accuracy-versus-gap frontier of an epsilon sweep: a table and a plotly figure."""

from __future__ import annotations

from typing import Any

import pandas as pd

FRONTIER_COLUMNS: list[str] = [
    "method", "epsilon", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "gap", "gap_ci_low",
    "gap_ci_high", "gap_diff_vs_erm", "gap_diff_ci_low", "gap_diff_ci_high", "val_accuracy", "val_gap",
]


def frontier_row(
    method: str, epsilon: float | None, summary: dict[str, Any], validation: dict[str, Any]
) -> dict[str, Any]:
    """One frontier point from a method's evaluation record and its validation point estimates."""
    acc, gap, diff = summary["accuracy"], summary["gap"], summary["gap_diff_vs_erm"]
    return {
        "method": method,
        "epsilon": epsilon,
        "accuracy": acc["estimate"],
        "accuracy_ci_low": acc["ci_low"],
        "accuracy_ci_high": acc["ci_high"],
        "gap": gap["estimate"],
        "gap_ci_low": gap["ci_low"],
        "gap_ci_high": gap["ci_high"],
        "gap_diff_vs_erm": diff["estimate"],
        "gap_diff_ci_low": diff["ci_low"],
        "gap_diff_ci_high": diff["ci_high"],
        "val_accuracy": validation["accuracy"],
        "val_gap": validation["gap"],
    }


def frontier_figure_html(frontier: pd.DataFrame, *, title: str) -> str:
    """A self-contained HTML page (plotly.js inline, no CDN) plotting gap against accuracy.

    The sweep's points are joined in epsilon order; baselines are single
    markers; error bars are the 95% bootstrap intervals on the test split.
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    sweep = frontier[frontier["method"] == "moe_parity"].sort_values("epsilon")
    others = frontier[frontier["method"] != "moe_parity"]

    def add(frame: pd.DataFrame, name: str, mode: str, text: list[str]) -> None:
        figure.add_trace(
            go.Scatter(
                x=frame["accuracy"],
                y=frame["gap"],
                mode=mode,
                name=name,
                text=text,
                textposition="top center",
                error_x={
                    "type": "data", "symmetric": False,
                    "array": frame["accuracy_ci_high"] - frame["accuracy"],
                    "arrayminus": frame["accuracy"] - frame["accuracy_ci_low"],
                },
                error_y={
                    "type": "data", "symmetric": False,
                    "array": frame["gap_ci_high"] - frame["gap"],
                    "arrayminus": frame["gap"] - frame["gap_ci_low"],
                },
            )
        )

    if len(sweep):
        add(sweep, "router with parity constraint (epsilon sweep)", "lines+markers+text",
            [f"eps={e:g}" for e in sweep["epsilon"]])
    for _, row in others.iterrows():
        add(pd.DataFrame([row]), str(row["method"]), "markers+text", [str(row["method"])])
    figure.update_layout(
        title=title,
        xaxis_title="accuracy on the held-out split (95% CI)",
        yaxis_title="gap: best minus worst group accuracy (95% CI)",
        template="plotly_white",
        width=900,
        height=600,
    )
    return figure.to_html(include_plotlyjs=True, full_html=True)
