"""The dashboard pages that show the cohort's photographs: skin tone, cases and reasoning.

Images come only from inside the cohort's ``images_root`` (:meth:`RunData.image_path`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from scipy.ndimage import binary_erosion

from fairderm._terminal import printable
from fairderm.dashboard import charts
from fairderm.dashboard.run_data import RunData, RunsRoot, case_table
from fairderm.dashboard.views import NOT_AVAILABLE, missing
from fairderm.markdown import escape_markdown

_GALLERY_SIZE = 12


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
        missing("Tone estimates")
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
        missing("Images")
        return
    overlay_available = _healthy_skin_overlay(Image.new("RGB", (8, 8))) is not None
    outline = overlay_available and st.toggle("Outline the skin measured", value=True, key="tone_outline")
    if outline:
        st.caption("Outlined in bluish green: the healthy skin the tone estimate measured (lesion, hair, "
                   "shadows and other exclusions left out); inside the outline the skin keeps its own colour.")
    for group, part in cases.dropna(subset=["tone_group_est"]).groupby("tone_group_est", sort=True):
        st.markdown(f"**{escape_markdown(group)}**")
        _image_row(run, runs, part.head(4), overlay=outline,
                   caption=lambda r: f"ITA {r['ita']:.0f}°" if pd.notna(r.get("ita")) else "")


def _image_row(run: RunData, runs: RunsRoot, rows: pd.DataFrame, *, overlay: bool = False,
               caption: Callable[[pd.Series], str]) -> None:
    columns = st.columns(4)
    for i, (_, row) in enumerate(rows.iterrows()):
        path = run.image_path(str(row["image"]))
        with columns[i % 4]:
            if path is None or not path.is_file():
                st.caption(escape_markdown(f"{row['image_id']}: {_no_image(run)}"))
                continue
            image = Image.open(path)
            shown = (_healthy_skin_overlay(image) if overlay else None) or image
            # captions are Markdown to Streamlit, and image ids and reports come from strangers: shown as text,
            # never as links or remote images
            st.image(shown, caption=escape_markdown(f"{row['image_id']} · {caption(row)}"), width="stretch")


# ---------------------------------------------------------------- Cases
def cases_page(run: RunData, runs: RunsRoot) -> None:
    st.header("Cases")
    cases = case_table(run)
    if cases.empty:
        missing("Predictions")
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
        missing("Report scores (scores.parquet: a spec with a reasoning section)")
        return
    scores = run.scores
    dimensions = [c.removeprefix("judge_") for c in scores.columns
                  if c.startswith("judge_") and c not in _NOT_DIMENSIONS]
    checks = [c for c in scores.columns if c.startswith("check_")]
    choices = dimensions + checks
    if not choices:
        missing("Report scores")
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
            st.image(Image.open(path), caption=escape_markdown(row["image_id"]), width="stretch")
        else:
            st.caption(escape_markdown(f"{row['image_id']}: {_no_image(run)}"))
    with right:
        st.markdown(f"**{escape_markdown(chosen)}: {row[column]:g}** · true {escape_markdown(row.get('label', '?'))} "
                    f"· pred {escape_markdown(row.get('pred', '?'))}")
        report = row.get("text")
        # st.text: a model's or judge's words are shown as written, never as markdown, and printable first
        st.text(printable(report) if isinstance(report, str) else "(no report text)")
        why = row.get(f"why_{chosen}")
        if isinstance(why, str) and why:
            st.text("Judge: " + printable(why))
