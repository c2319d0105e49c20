"""One function per dashboard page; each takes the loaded run(s) and draws it.

Pages only read: every file goes through :mod:`fairderm.dashboard.run_data`, which
refuses paths outside the runs folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from scipy.ndimage import binary_erosion

from fairderm._terminal import printable
from fairderm.dashboard import charts
from fairderm.dashboard.run_data import DOWNLOADABLE, RunData, RunsRoot, case_table, paired_differences
from fairderm.errors import InputError
from fairderm.metrics import GroupKey
from fairderm.runs import METRICS_FILE

NOT_AVAILABLE = "not available in this run"
_GALLERY_SIZE = 12


def _missing(what: str) -> None:
    st.info(f"{what}: {NOT_AVAILABLE}.")


def _single_attributes(groups: pd.DataFrame) -> list[str]:
    if groups.empty or "attribute" not in groups:
        return []
    return sorted(a for a in groups["attribute"].dropna().unique() if a != "all" and "&" not in a)


def _short(group: str) -> str:
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
        _missing("Gate verdict")
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
        _missing("Group metrics")
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
    """Why a group's metrics were flagged, in the metrics engine's terms (fairderm.metrics, "Flags")."""
    first = part.iloc[0]
    flags = set(part["flag"])
    n = int(first["n"])
    n_pos = None if pd.isna(first.get("n_pos")) else int(first["n_pos"])
    if flags != {"insufficient"}:
        return f"n={n}, flag {', '.join(sorted(flags))}"
    min_n, min_pos = config.get("min_group_size"), config.get("min_positives")
    if min_n is not None and n < min_n:
        return f"n={n}, fewer than {min_n} cases"
    if min_pos is not None and n_pos is not None and n_pos < min_pos:
        return f"n={n} but {n_pos} positives, fewer than {min_pos}"
    if min_pos is not None and n_pos is not None and n - n_pos < min_pos:
        return f"n={n} but {n - n_pos} negatives, fewer than {min_pos}"
    return (f"n={n}: fewer than {min_pos} cases in the metric's denominator (e.g. predicted positives), "
            "or the metric undefined in over 1% of bootstrap resamples")


# ---------------------------------------------------------------- Disparities
def disparities(run: RunData, runs: RunsRoot) -> None:
    st.header("Disparities")
    groups = run.table("groups")
    attributes = _single_attributes(groups)
    if not attributes:
        _missing("Per-group metrics")
        return
    c1, c2, c3 = st.columns(3)
    metric = c1.selectbox("Metric", sorted(groups["metric"].unique()), key="disp_metric")
    attribute = c2.selectbox("Attribute", attributes, key="disp_attribute")
    mode = c3.radio("Estimates", ["raw", "case-mix adjusted"], horizontal=True, key="disp_mode")
    rows = groups[(groups["metric"] == metric) & (groups["attribute"].isin([attribute, "all"]))]
    _basis_note(groups, attribute)
    plotted = rows.assign(group=rows["group"].map(_short))
    if "basis" in plotted and plotted["basis"].eq("bounded").any():
        # a bounded group has no estimate: its range is drawn around the range's midpoint
        bounded = plotted["basis"].eq("bounded")
        plotted.loc[bounded, "estimate"] = (plotted.loc[bounded, "ci_low"] + plotted.loc[bounded, "ci_high"]) / 2
    st.plotly_chart(charts.interval_plot(plotted, title=f"{metric} per group (95% CI; range where bounded)"),
                    key="disp_groups")
    table = run.table("disparities")
    if table.empty:
        _missing("Disparities")
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
            st.plotly_chart(charts.interval_plot(diffs.assign(group=diffs["group"].map(_short)), zero=0.0,
                                                 title=f"Difference from {_short(str(reference))} (forest plot)"),
                            key="disp_forest")
    else:
        adjusted = run.table("case_mix")
        if adjusted.empty or "attribute" not in adjusted:
            _missing("Case-mix adjusted estimates")
        else:
            adj = adjusted[adjusted["attribute"] == attribute].copy()
            value = next((c for c in ("adjusted_or", "odds_ratio", "estimate") if c in adj), None)
            adj = adj.rename(columns={value: "estimate"}) if value else adj.iloc[0:0]
            if adj.empty:
                st.info("No case-mix adjusted estimates for this attribute.")
            else:
                reference = _short(str(adj["reference"].iloc[0])) if "reference" in adj else "the reference"
                adjusted_for = adj["adjusted_for"].iloc[0] if "adjusted_for" in adj else None
                st.plotly_chart(charts.interval_plot(
                    adj.assign(group=adj["group"].map(_short)), zero=1.0, log_x=True,
                    title=f"Odds ratio of a correct prediction vs {reference}, adjusted (95% CI)"),
                    key="disp_case_mix")
                if adjusted_for is not None:
                    st.caption(f"Adjusted for: {', '.join(map(str, adjusted_for))}. Case-mix adjustment is for "
                               "accuracy; the metric selector does not apply here.")
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
        _missing("Intersectional metrics")
        return
    c1, c2, c3 = st.columns(3)
    first = c1.selectbox("Rows", attributes, key="int_rows")
    second = c2.selectbox("Columns", [a for a in attributes if a != first], key="int_cols")
    metric = c3.selectbox("Metric", sorted(groups["metric"].unique()), key="int_metric")
    key = next((a for a in crossed if set(a.split("&")) == {first, second}), None)
    if key is None:
        st.info(f"The run has no intersection of {first} and {second}.")
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
        _missing("Reliability curves")
    else:
        if attribute and "attribute" in curves:
            curves = curves[curves["attribute"].isin([attribute, "all"])]
        if "kind" in curves and curves["kind"].nunique() > 1:
            kind = st.selectbox("Curve", sorted(curves["kind"].dropna().unique()), key="cal_kind")
            curves = curves[curves["kind"] == kind]
        st.plotly_chart(charts.reliability_plot(curves.assign(group=curves["group"].map(_short)), x=x, y=y),
                        key="cal_curves")
    groups = run.table("groups")
    ece = groups[groups["metric"].str.lower().eq("ece")] if not groups.empty else groups
    if attribute and not ece.empty:
        ece = ece[ece["attribute"].isin([attribute, "all"])]
    if ece.empty:
        _missing("Expected calibration error")
    else:
        st.plotly_chart(charts.interval_plot(ece.assign(group=ece["group"].map(_short)),
                                             title="Expected calibration error per group (95% CI)"),
                        key="cal_ece")


# ---------------------------------------------------------------- Skin tone
HEALTHY_SKIN_OUTLINE = (0, 158, 115)
"""Okabe-Ito bluish green: the outline of the skin the tone estimate measured."""


def _healthy_skin_overlay(image: Image.Image) -> Image.Image | None:
    """The image with the outline of the skin the tone estimator measured as healthy.

    Only the mask's edge is drawn: the skin being judged keeps its own colour.
    """
    try:
        from fairderm import tone
    except ImportError:
        return None
    mask_fn: Callable | None = getattr(tone, "healthy_skin_mask", None)
    if mask_fn is None:
        return None
    try:
        mask = np.asarray(mask_fn(np.asarray(image.convert("RGB"))), dtype=bool)
    except Exception:  # noqa: BLE001 - an unexpected signature must not break the page
        return None
    pixels = np.asarray(image.convert("RGB")).astype(float)
    if mask.shape != pixels.shape[:2]:
        # The estimator may work on a downscaled copy: bring its mask to the image size.
        scaled = Image.fromarray(mask.astype(np.uint8) * 255).resize(image.size, Image.Resampling.NEAREST)
        mask = np.asarray(scaled) > 127
    width = max(1, round(max(mask.shape) / 150))  # about 1 px per 150 px, visible at thumbnail size
    edge = mask & ~binary_erosion(mask, iterations=width, border_value=0)
    pixels[edge] = HEALTHY_SKIN_OUTLINE
    return Image.fromarray(pixels.astype(np.uint8))


def skin_tone(run: RunData, runs: RunsRoot) -> None:
    st.header("Skin tone")
    tone = run.tone
    if tone is None:
        _missing("Tone estimates")
        return
    counts = tone["status"].value_counts()
    c1, c2, c3 = st.columns(3)
    c1.metric("Images", len(tone))
    c2.metric("Abstained", int(counts.get("abstain", 0)))
    c3.metric("Errors", int(counts.get("error", 0)))
    merged = tone.merge(run.manifest, on="image_id", how="left") if run.manifest is not None else tone
    labelled = next((c for c in ("fitzpatrick_group", "monk", "fitzpatrick") if c in merged), None)
    if labelled is None:
        st.info(f"No labelled tone column: {run.cohort_note or 'the cohort has none'}.")
    else:
        st.plotly_chart(charts.ita_distribution(merged[merged["status"] == "ok"], group=labelled), key="tone_ita")
        if "fitzpatrick" in merged and "fitzpatrick_est" in merged:
            ok = merged.dropna(subset=["fitzpatrick", "fitzpatrick_est"])
            truth, est = ok["fitzpatrick"].astype(int), ok["fitzpatrick_est"].astype(int)
            a1, a2 = st.columns(2)
            a1.metric("Exact agreement (Fitzpatrick)", f"{(truth == est).mean():.1%}")
            a2.metric("Within one type", f"{((truth - est).abs() <= 1).mean():.1%}")
            st.plotly_chart(charts.confusion_heatmap(pd.crosstab(truth, est),
                                                     title="Labelled against estimated Fitzpatrick type"),
                            key="tone_confusion")
    if run.tone_validation:
        st.subheader("Estimator validation")
        st.json(run.tone_validation, expanded=False)
    if int((tone["status"] != "ok").sum()):
        st.subheader("Abstentions")
        st.dataframe(tone[tone["status"] != "ok"].groupby(["status", "reason"]).size()
                     .rename("images").reset_index(), hide_index=True)
    st.subheader("Example images per estimated tone group")
    cases = case_table(run)
    if cases.empty or "image" not in cases or "tone_group_est" not in cases:
        _missing("Images")
        return
    overlay_available = _healthy_skin_overlay(Image.new("RGB", (8, 8))) is not None
    outline = overlay_available and st.toggle("Outline the skin measured", value=True, key="tone_outline")
    if outline:
        st.caption("Outlined in bluish green: the healthy skin the tone estimate measured (lesion, hair, "
                   "shadows and other exclusions left out); inside the outline the skin keeps its own colour.")
    for group, part in cases.dropna(subset=["tone_group_est"]).groupby("tone_group_est", sort=True):
        st.markdown(f"**{group}**")
        _image_row(run, runs, part.head(4), overlay=outline,
                   caption=lambda r: f"ITA {r['ita']:.0f}°" if pd.notna(r.get("ita")) else "")


def _image_row(run: RunData, runs: RunsRoot, rows: pd.DataFrame, *, overlay: bool = False,
               caption: Callable[[pd.Series], str]) -> None:
    columns = st.columns(4)
    for i, (_, row) in enumerate(rows.iterrows()):
        path = run.image_path(str(row["image"]))
        with columns[i % 4]:
            if path is None or not path.is_file():
                st.caption(f"{row['image_id']}: {_no_image(run)}")
                continue
            image = Image.open(path)
            shown = (_healthy_skin_overlay(image) if overlay else None) or image
            st.image(shown, caption=f"{row['image_id']} · {caption(row)}", width="stretch")


# ---------------------------------------------------------------- Cases
def cases_page(run: RunData, runs: RunsRoot) -> None:
    st.header("Cases")
    cases = case_table(run)
    if cases.empty:
        _missing("Predictions")
        return
    c1, c2, c3, c4 = st.columns(4)
    tone_groups = sorted(cases["tone_group"].dropna().unique()) if "tone_group" in cases else []
    tone_label = "Tone group (estimated)" if "tone_group_est" in cases else "Tone group (labelled)"
    group = c1.selectbox(tone_label, ["all", *tone_groups], key="cases_group")
    diagnoses = sorted(cases["label"].dropna().unique()) if "label" in cases else []
    diagnosis = c2.selectbox("Diagnosis", ["all", *diagnoses], key="cases_diagnosis")
    low, high = c3.slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.05, key="cases_conf")
    errors_only = c4.checkbox("Errors only", value="correct" in cases, key="cases_errors")
    shown = cases
    if group != "all":
        shown = shown[shown["tone_group"] == group]
    if diagnosis != "all":
        shown = shown[shown["label"] == diagnosis]
    if "confidence" in shown:
        shown = shown[shown["confidence"].between(low, high)]
    if errors_only and "correct" in shown:
        shown = shown[~shown["correct"]]
    st.caption(f"{len(shown)} of {len(cases)} cases match; the gallery shows the first {_GALLERY_SIZE}.")
    if "image" in shown:
        for start in range(0, min(len(shown), _GALLERY_SIZE), 4):
            _image_row(run, runs, shown.iloc[start:start + 4], caption=_case_caption)
    else:
        st.info(f"Images: {run.cohort_note or NOT_AVAILABLE}.")
    columns = [c for c in ("image_id", "label", "pred", "confidence", "tone_group", "status", "text")
               if c in shown]
    st.dataframe(shown[columns].head(500), hide_index=True)


def _no_image(run: RunData) -> str:
    if run.images_root is None:
        return f"image not shown: {run.cohort_note or NOT_AVAILABLE}"
    return "image not found inside the cohort's images_root"


def _case_caption(row: pd.Series) -> str:
    truth = row.get("label", "?")
    confidence = row.get("confidence")
    text = f"true {truth} · pred {row.get('pred')}"
    if confidence is not None and pd.notna(confidence):
        text += f" ({confidence:.2f})"
    report = row.get("text")
    if isinstance(report, str) and report:
        text += f" · “{report[:80]}”"
    return text


# ---------------------------------------------------------------- Reasoning
_NOT_DIMENSIONS = ("judge_key", "judge_latency_s", "judge_attempts")


def reasoning(run: RunData, runs: RunsRoot) -> None:
    st.header("Reasoning")
    if run.scores is None:
        _missing("Report scores (scores.parquet: a spec with a reasoning section)")
        return
    scores = run.scores
    dimensions = [c.removeprefix("judge_") for c in scores.columns
                  if c.startswith("judge_") and c not in _NOT_DIMENSIONS]
    checks = [c for c in scores.columns if c.startswith("check_")]
    choices = dimensions + checks
    if not choices:
        _missing("Report scores")
        return
    c1, c2 = st.columns(2)
    chosen = c1.selectbox("Score", choices, key="reasoning_score")
    count = c2.slider("Reports per group", 1, 8, 3, key="reasoning_count")
    column = chosen if chosen.startswith("check_") else f"judge_{chosen}"
    metric = f"mean_score:{chosen.removeprefix('check_')}"
    groups = run.table("groups")
    if not groups.empty and "metric" in groups:
        rows = groups[groups["metric"] == metric]
        if not rows.empty:
            st.dataframe(rows[[c for c in ("attribute", "group", "estimate", "ci_low", "ci_high", "n", "flag")
                               if c in rows]], hide_index=True)
    cases = case_table(run)
    keep = [c for c in cases.columns if c not in scores.columns or c == "image_id"]
    joined = scores.merge(cases[keep], on="image_id", how="left") if not cases.empty else scores
    joined = joined[joined[column].notna()]
    errors = int((scores["status"] == "error").sum())
    if errors:
        st.warning(f"{errors} reports have no judge scores (the judge's answer was unusable; see scores.parquet).")
    tone = joined["tone_group"] if "tone_group" in joined else pd.Series("all", index=joined.index)
    st.caption(f"The {count} lowest-scored reports of each tone group on {chosen}, with the judge's justification.")
    for group, part in joined.assign(_group=tone.fillna("missing")).groupby("_group", sort=True):
        st.subheader(str(group))
        for _, row in part.sort_values(column, kind="stable").head(count).iterrows():
            _scored_report(run, runs, row, chosen, column)


def _scored_report(run: RunData, runs: RunsRoot, row: pd.Series, chosen: str, column: str) -> None:
    left, right = st.columns([1, 3])
    path = run.image_path(str(row["image"])) if isinstance(row.get("image"), str) else None
    with left:
        if path is not None and path.is_file():
            st.image(Image.open(path), caption=str(row["image_id"]), width="stretch")
        else:
            st.caption(f"{row['image_id']}: {_no_image(run)}")
    with right:
        st.markdown(f"**{chosen}: {row[column]:g}** · true {row.get('label', '?')} · pred {row.get('pred', '?')}")
        report = row.get("text")
        # st.text: a model's or judge's words are shown as written, never as markdown, and printable first
        st.text(printable(report) if isinstance(report, str) else "(no report text)")
        why = row.get(f"why_{chosen}")
        if isinstance(why, str) and why:
            st.text("Judge: " + printable(why))


# ---------------------------------------------------------------- Mitigation
def _interval(record: dict | None) -> tuple[float, float, float]:
    record = record or {}
    return tuple(float(record.get(k, np.nan)) if record.get(k) is not None else np.nan
                 for k in ("estimate", "ci_low", "ci_high"))  # type: ignore[return-value]


def mitigation(run: RunData, runs: RunsRoot) -> None:
    st.header("Mitigation")
    methods = (run.mitigation or {}).get("methods")
    if not methods:
        _missing("Mitigation results (mitigation.json)")
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
            per_group.append({"method": name, "group": _short(group), "estimate": est, "ci_low": lo, "ci_high": hi})
    frame = pd.DataFrame(summary)
    st.plotly_chart(charts.frontier_plot(frame), key="mit_frontier")
    st.dataframe(frame.round(4), hide_index=True)
    if per_group:
        st.plotly_chart(charts.grouped_intervals(pd.DataFrame(per_group), series="method",
                                                 title="Per-group accuracy by method (95% CI)"), key="mit_groups")


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
        _missing("Per-group metrics in one of the runs")
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
    st.plotly_chart(charts.grouped_intervals(long.assign(group=long["group"].map(_short)), series="run",
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
            st.plotly_chart(charts.interval_plot(chosen.assign(group=chosen["group"].map(_short)), zero=0.0,
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
        _missing("Model card")
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
