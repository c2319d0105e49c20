"""One function per dashboard page; each takes the loaded run(s) and draws it.

Pages only read: every file goes through :mod:`fairderm.dashboard.run_data`, which
refuses paths outside the runs folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from fairderm._terminal import printable
from fairderm.cards import baseline_fallbacks, levelling_down_rows
from fairderm.dashboard import charts
from fairderm.dashboard.run_data import DOWNLOADABLE, RunData, RunsRoot, paired_differences
from fairderm.errors import InputError
from fairderm.markdown import escape_markdown
from fairderm.metrics import GroupKey, reasons_by_metric
from fairderm.runs import METRICS_FILE

NOT_AVAILABLE = "not available in this run"
_GALLERY_SIZE = 12


def missing(what: str) -> None:
    st.info(f"{what}: {NOT_AVAILABLE}.")


def _single_attributes(groups: pd.DataFrame) -> list[str]:
    if groups.empty or "attribute" not in groups:
        return []
    return sorted(a for a in groups["attribute"].dropna().unique() if a != "all" and "&" not in a)


def short_group(group: str) -> str:
    """``fitzpatrick_est=V-VI`` -> ``V-VI`` for axis labels (intersections keep their full name); a bare name
    (mitigation.json's groups) stays as it is."""
    return GroupKey.parse(group).label if "=" in group else group


# ---------------------------------------------------------------- Overview
def overview(run: RunData, runs: RunsRoot) -> None:
    st.header("Overview")
    gate = run.gate
    if gate:
        verdict = str(gate.get("verdict", "unknown"))
        colour = {"PASS": "green", "INSUFFICIENT_EVIDENCE": "orange"}.get(verdict, "red")
        st.markdown(f"### Gate verdict: :{colour}[{verdict}]")
        st.caption("Rules are judged on interval bounds, not point estimates.")
        rules = pd.DataFrame.from_records(gate.get("rules", []))
        if not rules.empty:
            # Nested details (the rule as written, per-group results) go to the JSON view below.
            scalar = [c for c in rules if not rules[c].map(lambda v: isinstance(v, (dict, list))).any()]
            first = [c for c in ("verdict", "id", "name", "text") if c in scalar]
            st.dataframe(rules[first + [c for c in scalar if c not in first]], hide_index=True)
            with st.expander("Rules in full (gate.json)"):
                st.json(gate.get("rules", []), expanded=False)
    else:
        missing("Gate verdict")
    groups = run.table("groups")
    cases = run.predictions
    config = run.metrics.config
    c1, c2, c3 = st.columns(3)
    c1.metric("Cases", len(cases) if cases is not None else "n/a")
    cohort = (run.spec or {}).get("cohort")
    cohort_path = cohort.get("path") if isinstance(cohort, dict) else cohort
    c2.metric("Cohort", Path(str(cohort_path)).name if cohort_path else "n/a")
    c3.metric("Bootstrap resamples", config.get("n_boot", "n/a"))
    st.subheader("Group sizes")
    if groups.empty:
        missing("Group metrics")
    else:
        sizes = (groups.drop_duplicates(["attribute", "group"])[["attribute", "group", "n", "n_pos", "flag"]]
                 .reset_index(drop=True))
        st.dataframe(sizes, hide_index=True)
    st.subheader("Warnings")
    warnings = _warnings(run, groups)
    for text in warnings:
        st.warning(text)
    if not warnings:
        st.success("No insufficient groups, abstentions or unparseable answers.")


def _warnings(run: RunData, groups: pd.DataFrame) -> list[str]:
    found = []
    if not groups.empty and "flag" in groups:
        flagged = groups[groups["flag"] != "ok"]
        if len(flagged):
            config = run.metrics.config
            parts = [f"{group} ({', '.join(part['metric'])}): {_not_judged_reason(part, config)}"
                     for (_, group), part in flagged.groupby(["attribute", "group"], sort=False)]
            found.append(f"{len(parts)} group(s) with metrics not judged: " + "; ".join(parts))
    if run.tone is not None and "status" in run.tone:
        abstain = int((run.tone["status"] != "ok").sum())
        if abstain:
            found.append(f"Tone estimator abstained or failed on {abstain} of {len(run.tone)} images.")
    if run.predictions is not None and "status" in run.predictions:
        counts = run.predictions["status"].value_counts()
        for status in ("unparseable", "error"):
            if counts.get(status, 0):
                found.append(f"{counts[status]} prediction(s) with status '{status}' (excluded from metrics).")
    return found


def _not_judged_reason(part: pd.DataFrame, config: dict) -> str:
    """Why a group's metrics were not judged: the metrics engine's rule, metric by metric where reasons differ."""
    reasons = reasons_by_metric(part.to_dict("records"), min_group_size=config.get("min_group_size"),
                                min_positives=config.get("min_positives"))
    n = None if pd.isna(part["n"].iloc[0]) else int(part["n"].iloc[0])
    says_size = any(reason.startswith(f"{n} case") for reason in reasons)
    prefix = "" if n is None or says_size else f"n={n}: "
    if len(reasons) == 1:
        return prefix + next(iter(reasons))
    return prefix + "; ".join(f"{', '.join(metrics)}: {reason}" for reason, metrics in reasons.items())


# ---------------------------------------------------------------- Disparities
def disparities(run: RunData, runs: RunsRoot) -> None:
    st.header("Disparities")
    groups = run.table("groups")
    attributes = _single_attributes(groups)
    if not attributes:
        missing("Per-group metrics")
        return
    c1, c2, c3 = st.columns(3)
    metric = c1.selectbox("Metric", sorted(groups["metric"].unique()), key="disp_metric")
    attribute = c2.selectbox("Attribute", attributes, key="disp_attribute")
    mode = c3.radio("Estimates", ["raw", "case-mix adjusted"], horizontal=True, key="disp_mode")
    rows = groups[(groups["metric"] == metric) & (groups["attribute"].isin([attribute, "all"]))]
    _basis_note(groups, attribute)
    plotted = rows.assign(group=rows["group"].map(short_group))
    if "basis" in plotted and plotted["basis"].eq("bounded").any():
        # a bounded group has no estimate: its range is drawn around the range's midpoint
        bounded = plotted["basis"].eq("bounded")
        plotted.loc[bounded, "estimate"] = (plotted.loc[bounded, "ci_low"] + plotted.loc[bounded, "ci_high"]) / 2
    st.plotly_chart(charts.interval_plot(plotted, title=f"{metric} per group (95% CI; range where bounded)"),
                    key="disp_groups")
    table = run.table("disparities")
    if table.empty:
        missing("Disparities")
        return
    if "attribute" not in table:
        table["attribute"] = attribute
    sel = table[(table["metric"] == metric) & (table["attribute"] == attribute)]
    if mode == "raw":
        diffs = sel[sel["kind"] == "diff_vs_ref"]
        if diffs.empty:
            st.info("No differences from a reference group for this metric and attribute.")
        else:
            reference = diffs["reference"].iloc[0] if "reference" in diffs else "the reference"
            st.plotly_chart(charts.interval_plot(diffs.assign(group=diffs["group"].map(short_group)), zero=0.0,
                                                 title=f"Difference from {short_group(str(reference))} (forest plot)"),
                            key="disp_forest")
    else:
        adjusted = run.table("case_mix")
        if adjusted.empty or "attribute" not in adjusted:
            missing("Case-mix adjusted estimates")
        else:
            adj = adjusted[adjusted["attribute"] == attribute].copy()
            value = next((c for c in ("adjusted_or", "odds_ratio", "estimate") if c in adj), None)
            adj = adj.rename(columns={value: "estimate"}) if value else adj.iloc[0:0]
            if adj.empty:
                st.info("No case-mix adjusted estimates for this attribute.")
            else:
                reference = short_group(str(adj["reference"].iloc[0])) if "reference" in adj else "the reference"
                adjusted_for = adj["adjusted_for"].iloc[0] if "adjusted_for" in adj else None
                st.plotly_chart(charts.interval_plot(
                    adj.assign(group=adj["group"].map(short_group)), zero=1.0, log_x=True,
                    title=f"Odds ratio of a correct prediction vs {reference}, adjusted (95% CI)"),
                    key="disp_case_mix")
                if adjusted_for is not None:
                    covariates = escape_markdown(", ".join(map(str, adjusted_for)))
                    st.caption(f"Adjusted for: {covariates}. Case-mix adjustment is for accuracy; the metric "
                               "selector does not apply here.")
                st.dataframe(adj.drop(columns=["adjusted_for"], errors="ignore"), hide_index=True)
    summary = sel[sel["kind"].isin(["gap", "ratio", "eod", "dpd"])]
    st.subheader("Gap and ratio")
    if summary.empty:
        st.info("No gap or ratio for this metric and attribute.")
    else:
        shown = [c for c in ("kind", "group", "reference", "estimate", "ci_low", "ci_high", "flag") if c in summary]
        st.caption("gap = reference (best) minus group (worst); ratio = worst over best, both with intervals.")
        st.dataframe(summary[shown].round(4), hide_index=True)
    tests = run.table("tests")
    if not tests.empty and "attribute" in tests:
        st.subheader("Tests")
        chosen = tests[(tests["attribute"] == attribute) & (tests["metric"] == metric)]
        st.dataframe(chosen.drop(columns=["groups"], errors="ignore"), hide_index=True)


def _basis_note(groups: pd.DataFrame, attribute: str) -> None:
    """Say how the attribute's groups are known: estimated strata can hide a disparity."""
    if "basis" not in groups:
        return
    basis = set(groups.loc[groups["attribute"] == attribute, "basis"].dropna())
    others = sorted(a for a in groups["attribute"].dropna().unique()
                    if a.split(":")[0] == attribute and a != attribute)
    if "estimated" in basis:
        text = (f"{attribute} groups are estimated from colour (about half of clinical photographs land in the "
                "dermatologists' group), so differences between them are blurred and a real disparity can look "
                "small.")
        st.warning(text + (f" Compare {', '.join(others)}." if others else
                           " This run has no corrected or bounded figures by true group."))
    elif "corrected" in basis:
        st.info("By true group: the estimated strata corrected with validation labels; the intervals carry the "
                "estimate's errors and the validation sample's size.")
    elif "bounded" in basis:
        st.info("By true group, bounded: no labels, so each value is a range that the data allow under an error "
                "model of the estimate (widened for sampling error); the dot marks the range's middle, not an "
                "estimate.")


# ---------------------------------------------------------------- Intersections


def intersections(run: RunData, runs: RunsRoot) -> None:
    st.header("Intersections")
    groups = run.table("groups")
    attributes = _single_attributes(groups)
    crossed = sorted(a for a in groups.get("attribute", pd.Series(dtype=str)).dropna().unique() if "&" in a)
    if len(attributes) < 2 or not crossed:
        missing("Intersectional metrics")
        return
    c1, c2, c3 = st.columns(3)
    first = c1.selectbox("Rows", attributes, key="int_rows")
    second = c2.selectbox("Columns", [a for a in attributes if a != first], key="int_cols")
    metric = c3.selectbox("Metric", sorted(groups["metric"].unique()), key="int_metric")
    key = next((a for a in crossed if set(a.split("&")) == {first, second}), None)
    if key is None:
        st.info(f"The run has no intersection of {escape_markdown(first)} and {escape_markdown(second)}.")
        return
    cells = groups[(groups["attribute"] == key) & (groups["metric"] == metric)].copy()
    parts = cells["group"].map(lambda g: dict(GroupKey.parse(g)))
    cells[first] = parts.map(lambda d: d.get(first))
    cells[second] = parts.map(lambda d: d.get(second))
    st.plotly_chart(charts.intersection_heatmap(cells, rows=first, cols=second,
                                                title=f"{metric}: estimate, n and ±half-width; grey = insufficient n"),
                    key="int_heatmap")
    st.dataframe(cells[["group", "estimate", "ci_low", "ci_high", "n", "flag"]], hide_index=True)


# ---------------------------------------------------------------- Calibration
_X_NAMES = ("mean_confidence", "mean_predicted", "confidence", "predicted")
_Y_NAMES = ("observed", "fraction_positive", "accuracy", "frequency")


def calibration(run: RunData, runs: RunsRoot) -> None:
    st.header("Calibration")
    curves = run.table("calibration")
    attributes = _single_attributes(run.table("groups"))
    attribute = st.selectbox("Attribute", attributes, key="cal_attribute") if attributes else None
    x = next((c for c in _X_NAMES if c in curves), None)
    y = next((c for c in _Y_NAMES if c in curves), None)
    if curves.empty or x is None or y is None:
        missing("Reliability curves")
    else:
        if attribute and "attribute" in curves:
            curves = curves[curves["attribute"].isin([attribute, "all"])]
        if "kind" in curves and curves["kind"].nunique() > 1:
            kind = st.selectbox("Curve", sorted(curves["kind"].dropna().unique()), key="cal_kind")
            curves = curves[curves["kind"] == kind]
        st.plotly_chart(charts.reliability_plot(curves.assign(group=curves["group"].map(short_group)), x=x, y=y),
                        key="cal_curves")
    groups = run.table("groups")
    ece = groups[groups["metric"].str.lower().eq("ece")] if not groups.empty else groups
    if attribute and not ece.empty:
        ece = ece[ece["attribute"].isin([attribute, "all"])]
    if ece.empty:
        missing("Expected calibration error")
    else:
        st.plotly_chart(charts.interval_plot(ece.assign(group=ece["group"].map(short_group)),
                                             title="Expected calibration error per group (95% CI)"),
                        key="cal_ece")


# ---------------------------------------------------------------- Mitigation
def _interval(record: dict | None) -> tuple[float, float, float]:
    record = record or {}
    return tuple(float(record.get(k, np.nan)) if record.get(k) is not None else np.nan
                 for k in ("estimate", "ci_low", "ci_high"))  # type: ignore[return-value]


def mitigation(run: RunData, runs: RunsRoot) -> None:
    st.header("Mitigation")
    methods = (run.mitigation or {}).get("methods")
    if not methods:
        missing("Mitigation results (mitigation.json)")
        return
    summary, per_group = [], []
    for name, result in methods.items():
        acc, gap, diff = _interval(result.get("accuracy")), _interval(result.get("gap")), \
            _interval(result.get("gap_diff_vs_erm"))
        summary.append({"method": name, "accuracy": acc[0], "accuracy_low": acc[1], "accuracy_high": acc[2],
                        "gap": gap[0], "gap_low": gap[1], "gap_high": gap[2],
                        "gap_diff_vs_erm": diff[0], "diff_low": diff[1], "diff_high": diff[2]})
        for group, record in (result.get("groups") or {}).items():
            est, lo, hi = _interval(record)
            per_group.append({"method": name, "group": short_group(group), "estimate": est, "ci_low": lo,
                              "ci_high": hi})
    frame = pd.DataFrame(summary)
    st.plotly_chart(charts.frontier_plot(frame), key="mit_frontier")
    st.dataframe(frame.round(4), hide_index=True)
    if per_group:
        st.plotly_chart(charts.grouped_intervals(pd.DataFrame(per_group), series="method",
                                                 title="Per-group accuracy by method (95% CI)"), key="mit_groups")
    levelling = levelling_down_rows(run.mitigation)
    if levelling:
        st.subheader("Against ERM: worst and best group")
        st.caption("Paired change in accuracy of ERM's worst and best tone groups, and overall; a method levels "
                   "down when its best group's whole interval is below 0 (Zietlow et al. 2022).")
        st.dataframe(pd.DataFrame(levelling, columns=["method", "worst group", "its change", "best group",
                                                      "its change ", "overall change", "levelled down"]),
                     hide_index=True)
    for fallback in baseline_fallbacks(run.mitigation):
        st.warning(escape_markdown(printable(fallback)))  # the reason is an exception's text: shown, not rendered


# ---------------------------------------------------------------- Compare runs
def compare(run: RunData, runs: RunsRoot, other: RunData | None) -> None:
    st.header("Compare runs")
    if other is None:
        st.info("Choose a second run in the sidebar to compare with.")
        return
    st.markdown(f"**A** = `{run.run_id}` · **B** = `{other.run_id}`")
    same = _same_cases(run, other)
    if same is False:
        st.warning("The two runs are not on the same cases: differences mix model and cohort changes.")
    a, b = run.table("groups"), other.table("groups")
    if a.empty or b.empty:
        missing("Per-group metrics in one of the runs")
        return
    keys = ["attribute", "group", "metric"]
    joined = a.merge(b, on=keys, suffixes=("_a", "_b"))
    metric = st.selectbox("Metric", sorted(joined["metric"].unique()), key="cmp_metric")
    attributes = sorted(a for a in joined["attribute"].unique() if "&" not in a and a != "all")
    attribute = st.selectbox("Attribute", attributes, key="cmp_attribute")
    sel = joined[(joined["metric"] == metric) & (joined["attribute"].isin([attribute, "all"]))]
    long = pd.concat([
        sel.assign(run="A", estimate=sel["estimate_a"], ci_low=sel["ci_low_a"], ci_high=sel["ci_high_a"]),
        sel.assign(run="B", estimate=sel["estimate_b"], ci_low=sel["ci_low_b"], ci_high=sel["ci_high_b"]),
    ])
    st.plotly_chart(charts.grouped_intervals(long.assign(group=long["group"].map(short_group)), series="run",
                                             title=f"{metric}: run A and run B (95% CI each)"), key="cmp_groups")
    st.subheader("Paired differences B − A")
    st.caption("Both models scored on the same bootstrap replicates of the same cases "
               "(fairderm.metrics.compare on the stored predictions), so the interval reflects the pairing.")
    n_boot = st.number_input("Bootstrap resamples", min_value=100, max_value=5000, value=500, step=100,
                             key="cmp_boot")
    if st.button("Compute paired intervals", key="cmp_paired") or st.session_state.get("cmp_done") == (
            run.run_id, other.run_id, n_boot):
        try:
            diffs = _paired((run.run_id, other.run_id, _stamp(run), _stamp(other)), run, other, int(n_boot))
        except InputError as exc:
            st.warning(f"No paired intervals: {exc}")
        else:
            st.session_state["cmp_done"] = (run.run_id, other.run_id, n_boot)
            chosen = diffs[(diffs["metric"] == metric) & (diffs["attribute"].isin([attribute, "all"]))]
            chosen = chosen.rename(columns={"difference": "estimate"})
            st.plotly_chart(charts.interval_plot(chosen.assign(group=chosen["group"].map(short_group)), zero=0.0,
                                                 title=f"{metric}: B − A with paired 95% CI"), key="cmp_paired_plot")
            st.dataframe(chosen.rename(columns={"estimate": "difference"}).round(4), hide_index=True)
    else:
        diff = sel.assign(difference=sel["estimate_b"] - sel["estimate_a"])
        st.caption("Until computed: differences of point estimates only (no interval).")
        st.dataframe(diff[["group", "estimate_a", "estimate_b", "difference", "n_a", "n_b"]].round(4),
                     hide_index=True)


def _stamp(run: RunData) -> float:
    return (run.path / METRICS_FILE).stat().st_mtime


@st.cache_data(show_spinner="Paired bootstrap…", max_entries=8)
def _paired(key: tuple, _run: RunData, _other: RunData, n_boot: int) -> pd.DataFrame:
    # ``key`` (run ids and metrics.json times) stands in for the unhashable runs.
    return paired_differences(_run, _other, n_boot=n_boot)


def _same_cases(a: RunData, b: RunData) -> bool | None:
    if a.predictions is None or b.predictions is None:
        return None
    return set(a.predictions["image_id"]) == set(b.predictions["image_id"])


# ---------------------------------------------------------------- Model card
def model_card(run: RunData, runs: RunsRoot) -> None:
    st.header("Model card")
    if run.card_md is None:
        missing("Model card")
    else:
        body = re.sub(r"\A---\n.*?\n---\n", "", run.card_md, flags=re.S)
        # The card escapes user strings itself; raw HTML stays off here as a second guard.
        st.markdown(body, unsafe_allow_html=False)
    st.subheader("Downloads")
    columns = st.columns(len(DOWNLOADABLE))
    for column, name in zip(columns, DOWNLOADABLE):
        path = runs.file(run.run_id, name)
        with column:
            if path.is_file():
                st.download_button(name, path.read_bytes(), file_name=name, key=f"dl_{name}")
            else:
                st.caption(f"{name}: {NOT_AVAILABLE}")
