"""The cohort format: ``cohort.yaml`` (a :class:`CohortSpec`) and ``manifest.parquet``.

Manifest columns
----------------
========================  ===========  ==========================================
column                    required     meaning
========================  ===========  ==========================================
``image_id``              yes          unique string id of the image
``image``                 yes          path relative to ``images_root``
``label``                 yes          diagnosis, one of the cohort's ``labels``
``patient_id``            no           for patient-clustered resampling
``lesion_id``             no           for lesion-clustered resampling
``mask``                  no           lesion mask path relative to ``images_root``
``fitzpatrick``           no           Fitzpatrick type 1-6 (nullable integer)
``fitzpatrick_group``     no           grouped type: ``I-II``, ``III-IV``, ``V-VI``
``monk``                  no           Monk skin tone 1-10 (nullable integer)
``age``                   no           years (float)
``sex``                   no           free text, e.g. ``female``/``male``
``body_site``             no           free text
``split``                 no           ``train``, ``val`` or ``test``
========================  ===========  ==========================================

Any other column is kept as is (e.g. a synthetic cohort's ``true_ita``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fairderm.errors import InputError

REQUIRED_COLUMNS: tuple[str, ...] = ("image_id", "image", "label")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "patient_id", "lesion_id", "mask", "fitzpatrick", "fitzpatrick_group", "monk",
    "age", "sex", "body_site", "split",
)
STRING_COLUMNS: tuple[str, ...] = (
    "image_id", "image", "label", "patient_id", "lesion_id", "mask",
    "fitzpatrick_group", "sex", "body_site", "split",
)
TONE_ATTRIBUTES: tuple[str, ...] = ("fitzpatrick", "fitzpatrick_group", "monk")
FITZPATRICK_GROUPS: tuple[str, ...] = ("I-II", "III-IV", "V-VI")
SPLITS: tuple[str, ...] = ("train", "val", "test")
ROMAN: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI")

MANIFEST_FILE = "manifest.parquet"
SPEC_FILE = "cohort.yaml"


def fitzpatrick_to_group(types: pd.Series) -> pd.Series:
    """Map Fitzpatrick types 1-6 to the groups ``I-II``, ``III-IV``, ``V-VI``."""
    mapping = {1: "I-II", 2: "I-II", 3: "III-IV", 4: "III-IV", 5: "V-VI", 6: "V-VI"}
    return types.map(mapping).astype("string")


class CohortSpec(BaseModel):
    """Contents of ``cohort.yaml``: what the cohort is and how to read it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Short name of the cohort.")
    description: str = Field("", description="What the images are and where they come from.")
    licence: str = Field("unknown", description="Licence of the images and metadata.")
    credit: str = Field("", description="Citation to show wherever the data is used.")
    synthetic: bool = Field(False, description="True for generated (not real) images.")
    images_root: str = Field(
        ".",
        description="Folder the manifest's image paths are relative to; relative to the "
        "cohort folder, or absolute so that large image sets are used in place.",
    )
    labels: list[str] = Field(min_length=1, description="The label set (diagnoses).")
    positive_classes: list[str] = Field(
        default_factory=list,
        description="Labels counted as positive for a binary task (e.g. malignant ones).",
    )
    attributes: list[str] = Field(
        default_factory=list,
        description="Attribute columns to stratify by (tone labels, sex, body site, ...).",
    )
    source_format: str = Field("csv", description="Importer that made the cohort.")
    created_with: str = Field("", description="fairderm version that wrote the cohort.")
    notes: list[str] = Field(
        default_factory=list,
        description="What the importer changed or left out (recoded values, skipped rows).",
    )

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        return labels

    @model_validator(mode="after")
    def _positives_in_labels(self) -> CohortSpec:
        unknown = sorted(set(self.positive_classes) - set(self.labels))
        if unknown:
            raise ValueError(f"positive_classes not in labels: {unknown}")
        return self


SOURCE_ROW = "_source_row"
"""Private column an importer may add: the 1-based row of the source file each
manifest row came from, so that errors name the user's row even after rows
were expanded (several images per case) or filtered. Never written to disk."""


def source_row(frame: pd.DataFrame, position: int) -> int:
    """1-based source row of a frame position (header not counted)."""
    if SOURCE_ROW in frame.columns:
        return int(frame[SOURCE_ROW].iloc[position])
    return int(position) + 1




def _first_bad(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _coerce_int_column(
    frame: pd.DataFrame, column: str, low: int, high: int, what: str, source: str
) -> pd.Series:
    raw = frame[column]
    as_text = raw.astype("string").str.strip()
    missing = as_text.isna() | (as_text == "")
    numeric = pd.to_numeric(as_text.where(~missing), errors="coerce")
    not_number = (~missing & numeric.isna()).to_numpy()
    bad = _first_bad(not_number)
    if bad is not None:
        raise InputError(
            f"{raw.iloc[bad]!r} is not a number ({what} {low}-{high})",
            source=source, row=source_row(frame, bad), column=column,
        )
    fractional = (~missing & (numeric % 1 != 0)).to_numpy()
    out_of_range = (~missing & ((numeric < low) | (numeric > high))).to_numpy()
    bad = _first_bad(fractional | out_of_range)
    if bad is not None:
        raise InputError(
            f"{raw.iloc[bad]} is not a {what} ({low}-{high})",
            source=source, row=source_row(frame, bad), column=column,
        )
    return numeric.astype("Int8")


def validate_manifest(
    frame: pd.DataFrame, spec: CohortSpec, *, source: str = "manifest"
) -> pd.DataFrame:
    """Check a manifest table against the schema and return it with clean dtypes.

    Paths and image files are not checked here (see ``check_images``).

    Raises
    ------
    InputError
        Naming the first offending row and column.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"required column missing: {missing[0]}", source=source, column=missing[0])
    out = frame.reset_index(drop=True).copy()
    for column in STRING_COLUMNS:
        if column in out.columns:
            text = out[column].astype("string").str.strip()
            out[column] = text.mask(text == "")
    for column in REQUIRED_COLUMNS:
        bad = _first_bad(out[column].isna().to_numpy())
        if bad is not None:
            raise InputError("empty value", source=source, row=source_row(out, bad), column=column)
    duplicated = out["image_id"].duplicated(keep="first").to_numpy()
    bad = _first_bad(duplicated)
    if bad is not None:
        first = int(np.flatnonzero((out["image_id"] == out["image_id"].iloc[bad]).to_numpy())[0])
        raise InputError(
            f"duplicate image_id {out['image_id'].iloc[bad]!r} (first at row {source_row(out, first)})",
            source=source, row=source_row(out, bad), column="image_id",
        )
    unknown_label = (~out["label"].isin(spec.labels)).to_numpy()
    bad = _first_bad(unknown_label)
    if bad is not None:
        raise InputError(
            f"label {out['label'].iloc[bad]!r} is not in the cohort's label set {spec.labels}",
            source=source, row=source_row(out, bad), column="label",
        )
    if "fitzpatrick" in out.columns:
        out["fitzpatrick"] = _coerce_int_column(out, "fitzpatrick", 1, 6, "Fitzpatrick type", source)
    if "monk" in out.columns:
        out["monk"] = _coerce_int_column(out, "monk", 1, 10, "Monk skin tone", source)
    if "fitzpatrick_group" in out.columns:
        group = out["fitzpatrick_group"]
        bad = _first_bad((group.notna() & ~group.isin(FITZPATRICK_GROUPS)).to_numpy())
        if bad is not None:
            raise InputError(
                f"{group.iloc[bad]!r} is not a Fitzpatrick group {list(FITZPATRICK_GROUPS)}",
                source=source, row=source_row(out, bad), column="fitzpatrick_group",
            )
    if "split" in out.columns:
        split = out["split"]
        bad = _first_bad((split.notna() & ~split.isin(SPLITS)).to_numpy())
        if bad is not None:
            raise InputError(
                f"{split.iloc[bad]!r} is not a split {list(SPLITS)}",
                source=source, row=source_row(out, bad), column="split",
            )
    if "age" in out.columns:
        age = pd.to_numeric(out["age"].astype("string").str.strip().replace("", pd.NA), errors="coerce")
        bad = _first_bad((out["age"].notna() & age.isna() & (out["age"].astype("string").str.strip() != "")).to_numpy())
        if bad is not None:
            raise InputError(
                f"{out['age'].iloc[bad]!r} is not a number", source=source, row=source_row(out, bad), column="age"
            )
        bad = _first_bad(((age < 0) | (age > 130)).fillna(False).to_numpy())
        if bad is not None:
            raise InputError(
                f"age {age.iloc[bad]} is outside 0-130", source=source, row=source_row(out, bad), column="age"
            )
        out["age"] = age.astype("Float64")
    return out


SplitName = Literal["train", "val", "test"]
