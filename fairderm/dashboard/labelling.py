"""fairderm tone labelling page: one image at a time, answered by keyboard (Streamlit).

Start it with ``fairderm tone label COHORT --tone TONE.parquet --out labels.csv``
or ``streamlit run fairderm/dashboard/labelling.py -- COHORT labels.csv --labeller ID``.
It shows the first image without an answer, the scale's descriptions (or the
Monk swatches), a zoom on the skin the tone estimator measured as healthy, and
the progress. Every answer is written to the labels file at once (a temporary
file and a rename, so the file is valid at every moment) with the labeller id
and the UTC time; a restart resumes at the first image without an answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Streamlit runs this file as a script: the fairderm package it sits in is
# the one imported (an uninstalled checkout too), never another install.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
if str(_PACKAGE_PARENT) not in sys.path:
    sys.path.insert(0, str(_PACKAGE_PARENT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402
from PIL import Image  # noqa: E402

from fairderm.cohort import Cohort, load_cohort  # noqa: E402
from fairderm.dashboard.labelling_views import (  # noqa: E402
    BACK_KEY,
    FORWARD_KEY,
    answer_buttons,
    healthy_skin_zoom,
    monk_swatches_html,
    scale_descriptions,
)
from fairderm.errors import InputError  # noqa: E402
from fairderm.tone import ToneLabels, healthy_skin_mask, read_tone_labels, record_answer  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="labelling.py")
    parser.add_argument("cohort")
    parser.add_argument("labels")
    parser.add_argument("--labeller", default="labeller")
    return parser.parse_args(sys.argv[1:])


@st.cache_resource(show_spinner=False)
def _cohort(root: str) -> Cohort:
    return load_cohort(root)


@st.cache_data(show_spinner="Finding healthy skin…", max_entries=64)
def _zoom(image_path: str, mask_path: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    with Image.open(image_path) as image:
        rgb = np.asarray(image.convert("RGB"))
    lesion = None
    if mask_path is not None and Path(mask_path).is_file():
        with Image.open(mask_path) as mask:
            lesion = np.asarray(mask.convert("L").resize((rgb.shape[1], rgb.shape[0]))) > 0
    crop, caption = healthy_skin_zoom(rgb, healthy_skin_mask(rgb), lesion)
    return rgb, crop, caption


def _read(labels_path: str, cohort_root: str) -> ToneLabels:
    return read_tone_labels(labels_path, _cohort(cohort_root))


def _answer(labels_path: str, cohort_root: str, position: int, value: str, labeller: str) -> None:
    # read the file again: it is the only state that survives a restart
    labels = record_answer(labels_path, _read(labels_path, cohort_root), position, value, labeller)
    st.session_state["position"] = labels.next_unlabelled(after=position)


def _move(step: int, total: int) -> None:
    current = st.session_state.get("position")
    start = total if current is None else current
    st.session_state["position"] = min(max(start + step, 0), total - 1)


def main() -> None:
    st.set_page_config(page_title="fairderm tone labelling", layout="wide")
    args = _arguments()
    try:
        cohort = _cohort(args.cohort)
        labels = _read(args.labels, args.cohort)
    except InputError as exc:
        st.error(f"Refused: {exc}")
        st.stop()
    total = len(labels.frame)
    if "position" not in st.session_state:
        st.session_state["position"] = labels.next_unlabelled()
    position = st.session_state["position"]
    answered = int(labels.answered().sum())
    st.title(f"Skin tone labelling ({labels.scale.replace('_', ' ')})")
    st.progress(answered / max(total, 1), text=f"{answered} of {total} answered · labeller {args.labeller}")
    if position is None:
        st.success(f"All {total} images are answered; the labels are in {args.labels}.")
        st.button("Back", key="back", shortcut=BACK_KEY, on_click=_move, args=(-1, total))
        return
    row = labels.frame.iloc[position]
    image_id = str(row["image_id"])
    st.subheader(f"Image {position + 1} of {total}")
    manifest = cohort.manifest.set_index(cohort.manifest["image_id"].astype(str))
    image_path = cohort.image_path(str(manifest.loc[image_id, "image"]))
    mask_value = manifest.loc[image_id, "mask"] if "mask" in manifest.columns else None
    mask_path = None if pd.isna(mask_value) else str(cohort.image_path(str(mask_value)))
    rgb, crop, caption = _zoom(str(image_path), mask_path)
    picture, zoom, scale = st.columns([3, 2, 3])
    current = "" if pd.isna(row["label"]) else f" · current answer: {row['label']}"
    picture.image(rgb, caption=f"{image_id}{current}", width="stretch")
    zoom.image(Image.fromarray(crop).resize((320, 320), Image.Resampling.LANCZOS), caption=caption)
    with scale:
        if labels.scale == "monk":
            st.markdown(monk_swatches_html(), unsafe_allow_html=True)
        for line in scale_descriptions(labels.scale):
            st.markdown(f"- {line}")
        st.caption("Keys: the digit of a value (Monk 10: 0), X cannot tell, ← back, → forward.")
    buttons = answer_buttons(labels.scale, labels.categories)
    # "Cannot tell" gets twice the width so that its text is not cut on the ten-value Monk scale
    for column, button in zip(st.columns([1] * (len(buttons) - 1) + [2]), buttons):
        column.button(button.text, key=f"answer-{button.value}", shortcut=button.key, on_click=_answer,
                      args=(args.labels, args.cohort, position, button.value, args.labeller),
                      width="stretch")
    back, forward, _ = st.columns([1, 1, 6])
    back.button("Back", key="back", shortcut=BACK_KEY, on_click=_move, args=(-1, total))
    forward.button("Forward", key="forward", shortcut=FORWARD_KEY, on_click=_move, args=(1, total))


main()
