"""Importers from public dermatology datasets (and a user's own table) to cohorts.

Each importer maps a dataset's published metadata schema onto the manifest
schema of :mod:`fairderm.cohort._schema`. Rows keep their source row number
(``_source_row``) and every manifest column remembers the source column it came
from, so that an error names the user's own file, row and column.

Supported formats
-----------------
``pad-ufes-20``
    PAD-UFES-20 (Pacheco et al. 2020): the original ``metadata.csv``
    (``img_id``, ``diagnostic``, ``fitspatrick`` [sic], ...) or the layout of the
    shared subset's ``labels.csv`` (``image``, ``mask``, ``fitzpatrick``, ...).
``ddi``
    Diverse Dermatology Images (Daneshjou et al. 2022): ``ddi_metadata.csv``
    with ``DDI_file``, ``skin_tone`` (12/34/56), ``malignant``, ``disease``.
``fitzpatrick17k``
    Fitzpatrick17k (Groh et al. 2021): ``fitzpatrick17k.csv`` with ``md5hash``,
    ``fitzpatrick_scale`` (-1 = unknown), ``label``, ``three_partition_label``.
``isic``
    ISIC Archive metadata export: ``isic_id``, ``fitzpatrick_skin_type`` (I-VI),
    ``diagnosis`` (or ``diagnosis_1``-``_3``, ``benign_malignant``), ...
``scin``
    SCIN (Ward et al. 2024): ``scin_cases.csv`` with ``scin_labels.csv`` beside it
    (or one merged table): up to three images per case.
``csv``
    A table already in the manifest schema, with ``--map old=new`` renames.
"""

from __future__ import annotations

import ast
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fairderm._io import ensure_new_output_dir, read_table
from fairderm.cohort._schema import (
    REQUIRED_COLUMNS,
    ROMAN,
    SOURCE_ROW,
    CohortSpec,
    fitzpatrick_to_group,
)
from fairderm.cohort._store import Cohort, write_cohort
from fairderm.errors import InputError

_TRUE = {"1", "true", "t", "yes", "y", "malignant"}
_FALSE = {"0", "false", "f", "no", "n", "benign"}


@dataclass
class ImportRequest:
    """What the user asked to import (the CLI's options)."""

    metadata: Path
    images: Path
    out: Path
    name: str | None = None
    label_column: str | None = None
    positive_classes: list[str] | None = None
    column_map: dict[str, str] = field(default_factory=dict)


@dataclass
class Converted:
    """A dataset table converted to manifest rows, plus what the cohort.yaml needs."""

    manifest: pd.DataFrame
    labels: list[str]
    positive_classes: list[str]
    description: str
    licence: str
    credit: str
    source_columns: dict[str, str]
    notes: list[str] = field(default_factory=list)


class _Source:
    """The metadata table with helpers that raise errors naming its rows."""

    def __init__(self, request: ImportRequest, table: pd.DataFrame) -> None:
        self.request = request
        self.path = str(request.metadata)
        self.table = table.reset_index(drop=True)
        self._index: dict[str, str] | None = None

    def require(self, *columns: str) -> None:
        for column in columns:
            if column not in self.table.columns:
                raise InputError(f"required column missing: {column}", source=self.path, column=column)

    def column(self, name: str) -> pd.Series:
        return self.table[name].astype("string").str.strip()

    def fail(self, position: int, column: str, message: str) -> None:
        raise InputError(message, source=self.path, row=position + 1, column=column)

    def recode(
        self, column: str, mapping: dict[str, object], *, missing: set[str] | frozenset[str] = frozenset()
    ) -> pd.Series:
        """Map coded values through ``mapping``; unknown codes are an error naming the row."""
        values = self.column(column)
        out = pd.Series(pd.NA, index=values.index, dtype="object")
        for position, value in enumerate(values):
            if value is pd.NA or value == "" or value.lower() in missing:
                continue
            key = value.lower()
            if key not in mapping:
                self.fail(position, column, f"unknown value {value!r}; expected one of {sorted(mapping)}")
            out.iloc[position] = mapping[key]
        return out

    def find_image(self, name: str) -> str:
        """Path of ``name`` relative to the images folder.

        Tries the name as given, then looks the base name up in an index of the
        folder's files (datasets ship images in sub-folders such as PAD-UFES-20's
        ``imgs_part_1``). A name not found is returned as is; the file check
        then reports it as missing with its row.
        """
        root = self.request.images
        if (root / name).exists() or os.path.isabs(name) or ".." in Path(name).parts:
            return name
        if self._index is None:
            self._index = {}
            for dirpath, _dirs, files in os.walk(root):
                for file in files:
                    rel = os.path.relpath(os.path.join(dirpath, file), root)
                    self._index.setdefault(file, rel)
        return self._index.get(Path(name).name, name)


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame[SOURCE_ROW] = np.arange(1, len(frame) + 1)
    return frame


def _label_set(labels: pd.Series, preferred_order: list[str] | None = None) -> list[str]:
    present = sorted(str(v) for v in labels.dropna().unique())
    if preferred_order:
        ordered = [v for v in preferred_order if v in present]
        return ordered + [v for v in present if v not in ordered]
    return present


def _bool_column(src: _Source, column: str) -> pd.Series:
    return src.recode(column, {**{k: True for k in _TRUE}, **{k: False for k in _FALSE}})


# --------------------------------------------------------------------------- PAD-UFES-20

_PAD_LABELS = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]
_PAD_MALIGNANT = ["BCC", "MEL", "SCC"]


def _convert_pad(src: _Source) -> Converted:
    table = src.table
    shared_layout = "image" in table.columns
    fitz_column = "fitzpatrick" if "fitzpatrick" in table.columns else "fitspatrick"
    if shared_layout:
        src.require("image", "diagnostic")
        image = src.column("image")
        image_id = src.column("img_id") if "img_id" in table.columns else image
    else:
        src.require("img_id", "diagnostic", "patient_id")
        image_id = src.column("img_id")
        image = pd.Series([src.find_image(v) if v is not pd.NA else pd.NA for v in image_id], dtype="string")
    out = pd.DataFrame({
        "image_id": image_id.str.replace(r"\.(png|jpe?g)$", "", regex=True, case=False),
        "image": image,
        "label": src.column("diagnostic").str.upper(),
    })
    passthrough = {
        "patient_id": "patient_id", "lesion_id": "lesion_id", "mask": "mask",
        "age": "age", "region": "body_site", "gender": "sex",
    }
    for source, target in passthrough.items():
        if source in table.columns:
            out[target] = src.column(source)
    if "sex" in out.columns:
        out["sex"] = out["sex"].str.lower()
    if "body_site" in out.columns:
        out["body_site"] = out["body_site"].str.lower()
    if fitz_column in table.columns:
        out["fitzpatrick"] = src.column(fitz_column)
    # Every other column (malignant, biopsed, a user's split, ...) is kept under its own name.
    consumed = {"image", "diagnostic", fitz_column, SOURCE_ROW, *passthrough}
    for extra in table.columns:
        if extra not in consumed and extra not in out.columns:
            out[extra] = src.column(extra)
    return Converted(
        manifest=out,
        labels=_label_set(out["label"], _PAD_LABELS),
        positive_classes=[c for c in _PAD_MALIGNANT if c in set(out["label"].dropna())],
        description="PAD-UFES-20: smartphone photographs of skin lesions (Brazil), "
        "with the clinic's recorded Fitzpatrick type (biopsied lesions only).",
        licence="CC BY 4.0",
        credit="Pacheco, A. G. C. et al. (2020), PAD-UFES-20: a skin lesion dataset composed of "
        "patient data and clinical images collected from smartphones, Mendeley Data, V1, "
        "doi:10.17632/zr7vgbcyr2.1",
        source_columns={
            "image_id": "img_id" if "img_id" in table.columns else "image",
            "image": "image" if shared_layout else "img_id",
            "label": "diagnostic", "fitzpatrick": fitz_column, "body_site": "region", "sex": "gender",
        },
    )


# --------------------------------------------------------------------------- DDI

_DDI_GROUPS = {"12": "I-II", "34": "III-IV", "56": "V-VI"}


def _convert_ddi(src: _Source) -> Converted:
    src.require("DDI_file", "skin_tone", "malignant")
    files = src.column("DDI_file")
    malignant = _bool_column(src, "malignant")
    out = pd.DataFrame({
        "image_id": src.column("DDI_ID") if "DDI_ID" in src.table.columns
        else files.str.replace(r"\.\w+$", "", regex=True),
        "image": pd.Series([src.find_image(v) if v is not pd.NA else pd.NA for v in files], dtype="string"),
        "label": malignant.map({True: "malignant", False: "benign"}).astype("string"),
        "fitzpatrick_group": src.recode("skin_tone", _DDI_GROUPS).astype("string"),
    })
    if "disease" in src.table.columns:
        out["diagnosis"] = src.column("disease")
    return Converted(
        manifest=out,
        labels=["benign", "malignant"],
        positive_classes=["malignant"],
        description="Diverse Dermatology Images (DDI): biopsy-proven clinical images with "
        "Fitzpatrick groups I-II, III-IV, V-VI assigned by dermatologists.",
        licence="DDI Dataset Research Use Agreement (Stanford AIMI)",
        credit="Daneshjou, R. et al. (2022), Disparities in dermatology AI performance on a diverse, "
        "curated clinical image set, Science Advances 8(32), doi:10.1126/sciadv.abq6147",
        source_columns={"image_id": "DDI_ID", "image": "DDI_file", "label": "malignant",
                        "fitzpatrick_group": "skin_tone"},
    )


# --------------------------------------------------------------------------- Fitzpatrick17k

_F17K_SCALE = {str(v): v for v in range(1, 7)}


def _convert_fitzpatrick17k(src: _Source) -> Converted:
    label_column = src.request.label_column or "three_partition_label"
    src.require("md5hash", "fitzpatrick_scale", label_column)
    md5 = src.column("md5hash")
    scale = src.column("fitzpatrick_scale")
    unknown = int((scale == "-1").sum())
    scale = scale.mask(scale == "-1")
    out = pd.DataFrame({
        "image_id": md5,
        "image": pd.Series([src.find_image(f"{v}.jpg") if v is not pd.NA else pd.NA for v in md5],
                           dtype="string"),
        "label": src.column(label_column),
        "fitzpatrick": scale,
    })
    for extra in ("label", "nine_partition_label", "three_partition_label", "fitzpatrick_centaur", "qc"):
        if extra in src.table.columns and extra != label_column:
            out["condition" if extra == "label" else extra] = src.column(extra)
    notes = [f"fitzpatrick_scale -1 (unknown) recorded as missing for {unknown} rows"] if unknown else []
    labels = _label_set(out["label"])
    return Converted(
        manifest=out,
        labels=labels,
        positive_classes=["malignant"] if label_column == "three_partition_label" and "malignant" in labels
        else [],
        description=f"Fitzpatrick17k: clinical atlas images with crowd-sourced Fitzpatrick types; "
        f"label column {label_column!r}.",
        licence="CC BY-NC-SA 3.0 (images from DermaAmin and Atlas Dermatologico)",
        credit="Groh, M. et al. (2021), Evaluating deep neural networks trained on clinical images in "
        "dermatology with the Fitzpatrick 17k dataset, CVPR Workshops",
        source_columns={"image_id": "md5hash", "image": "md5hash", "label": label_column,
                        "fitzpatrick": "fitzpatrick_scale"},
        notes=notes,
    )


# --------------------------------------------------------------------------- ISIC

_ISIC_ROMAN = {r.lower(): i for i, r in enumerate(ROMAN, start=1)}


def _isic_malignant(label: str) -> bool:
    """True for ISIC's malignant wordings, old and current.

    The archive's hierarchical diagnosis (``diagnosis_1``-``_3``) writes
    ``Malignant`` / ``Malignant melanocytic proliferations (Melanoma)`` at the
    upper levels and ``Melanoma Invasive``, ``Melanoma in situ``, ``Melanoma,
    NOS``, ``Basal cell carcinoma``, ``Squamous cell carcinoma, Invasive`` ...
    at the lowest; the older flat ``diagnosis`` writes ``melanoma``,
    ``basal cell carcinoma``, ``squamous cell carcinoma``.
    """
    text = " ".join(label.lower().replace(",", " ").split())
    return text.startswith(("malignant", "melanoma")) or "carcinoma" in text


def _convert_isic(src: _Source) -> Converted:
    src.require("isic_id")
    candidates = [src.request.label_column] if src.request.label_column else [
        "diagnosis", "diagnosis_3", "diagnosis_2", "diagnosis_1", "benign_malignant"]
    label_column = next((c for c in candidates if c in src.table.columns), None)
    if label_column is None:
        raise InputError(f"required column missing: one of {candidates}", source=src.path,
                         column=candidates[0])
    ids = src.column("isic_id")
    out = pd.DataFrame({
        "image_id": ids,
        "image": pd.Series([src.find_image(f"{v}.jpg") if v is not pd.NA else pd.NA for v in ids],
                           dtype="string"),
        "label": src.column(label_column),
    })
    if "fitzpatrick_skin_type" in src.table.columns:
        out["fitzpatrick"] = src.recode("fitzpatrick_skin_type", {**_ISIC_ROMAN, **{str(i): i for i in range(1, 7)}})
    for source, target in {"patient_id": "patient_id", "lesion_id": "lesion_id", "age_approx": "age",
                           "sex": "sex", "anatom_site_general": "body_site"}.items():
        if source in src.table.columns:
            out[target] = src.column(source)
    for extra in ("copyright_license", "attribution", "benign_malignant", "diagnosis_1", "image_type"):
        if extra in src.table.columns and extra != label_column:
            out[extra] = src.column(extra)
    labels = _label_set(out["label"])
    return Converted(
        manifest=out,
        labels=labels,
        positive_classes=[v for v in labels if _isic_malignant(v)],
        description=f"ISIC Archive images; label column {label_column!r}.",
        licence="per image, see the copyright_license column (ISIC Archive)",
        credit="International Skin Imaging Collaboration (ISIC) Archive, https://www.isic-archive.com",
        source_columns={"image_id": "isic_id", "image": "isic_id", "label": label_column,
                        "fitzpatrick": "fitzpatrick_skin_type", "age": "age_approx",
                        "body_site": "anatom_site_general"},
    )


# --------------------------------------------------------------------------- SCIN

_SCIN_FST = {f"fst{i}": i for i in range(1, 7)}
_SCIN_NONE = {"none_identified", "none_selected", "not_gradable", "nan", "none"}


def _top_condition(text: str | None) -> str | None:
    """The most weighted condition of SCIN's ``weighted_skin_condition_label`` dict text."""
    if text is None or text is pd.NA or not str(text).strip():
        return None
    try:
        weights = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        return None
    if not isinstance(weights, dict) or not weights:
        return None
    return max(sorted(weights), key=lambda k: float(weights[k]))


def _convert_scin(src: _Source) -> Converted:
    table = src.table
    if "weighted_skin_condition_label" not in table.columns:
        labels_file = src.request.metadata.parent / "scin_labels.csv"
        if not labels_file.is_file():
            raise InputError(
                "required column missing: weighted_skin_condition_label "
                "(and no scin_labels.csv beside the metadata to merge)",
                source=src.path, column="weighted_skin_condition_label",
            )
        labels_table = read_table(labels_file, what="SCIN labels")
        src.require("case_id")
        if "case_id" not in labels_table.columns:
            raise InputError("required column missing: case_id", source=str(labels_file), column="case_id")
        table = table.merge(labels_table, on="case_id", how="left", suffixes=("", "_labels"))
        src.table = table
    src.require("case_id", "image_1_path")
    condition = [(_top_condition(v)) for v in table["weighted_skin_condition_label"].tolist()]
    fst = src.recode("dermatologist_fitzpatrick_skin_type_label_1", _SCIN_FST, missing=_SCIN_NONE) \
        if "dermatologist_fitzpatrick_skin_type_label_1" in table.columns else None
    monk = src.column("monk_skin_tone_label_us") if "monk_skin_tone_label_us" in table.columns else None
    body_cols = [c for c in table.columns if c.startswith("body_parts_")]
    rows = []
    skipped_unlabelled = 0
    for position in range(len(table)):
        paths = [table[c].iloc[position] for c in ("image_1_path", "image_2_path", "image_3_path")
                 if c in table.columns]
        paths = [str(p).strip() for p in paths if isinstance(p, str) and p.strip()]
        if condition[position] is None:
            skipped_unlabelled += len(paths)
            continue
        site = next((c.removeprefix("body_parts_").lower() for c in body_cols
                     if str(table[c].iloc[position]).strip().upper() in {"YES", "TRUE", "1"}), None)
        for number, path in enumerate(paths, start=1):
            rows.append({
                "image_id": f"{table['case_id'].iloc[position]}_{number}",
                "image": src.find_image(Path(path).name),
                "label": condition[position],
                "patient_id": str(table["case_id"].iloc[position]),
                "fitzpatrick": fst.iloc[position] if fst is not None else pd.NA,
                "monk": _monk_code(monk.iloc[position]) if monk is not None else pd.NA,
                "sex": str(table["sex_at_birth"].iloc[position]).lower()
                if "sex_at_birth" in table.columns else pd.NA,
                "body_site": site,
                "fitzpatrick_self_reported": table["fitzpatrick_skin_type"].iloc[position]
                if "fitzpatrick_skin_type" in table.columns else pd.NA,
                "age_group": table["age_group"].iloc[position] if "age_group" in table.columns else pd.NA,
                SOURCE_ROW: int(table[SOURCE_ROW].iloc[position]),
            })
    out = pd.DataFrame(rows)
    if out.empty:
        raise InputError("no case has a dermatologist condition label", source=src.path,
                         column="weighted_skin_condition_label")
    notes = [f"skipped {skipped_unlabelled} images of cases without a dermatologist condition label"] \
        if skipped_unlabelled else []
    return Converted(
        manifest=out,
        labels=_label_set(out["label"]),
        positive_classes=[],
        description="SCIN: crowd-sourced smartphone images of common skin conditions (USA), "
        "dermatologist-labelled conditions, Fitzpatrick types and Monk tones.",
        licence="SCIN Data Use License (Google)",
        credit="Ward, A. et al. (2024), Creating an empirical dermatology dataset through "
        "crowdsourcing with web search advertisements, JAMA Network Open 7(11)",
        source_columns={"image": "image_1_path", "label": "weighted_skin_condition_label",
                        "fitzpatrick": "dermatologist_fitzpatrick_skin_type_label_1",
                        "monk": "monk_skin_tone_label_us", "patient_id": "case_id"},
        notes=notes,
    )


def _monk_code(value: object) -> object:
    """SCIN stores Monk tones as floats ("3.0"); keep the text of the integer, or NA."""
    try:
        number = float(str(value))
    except ValueError:
        return value  # left as is: manifest validation reports it with its row
    return pd.NA if math.isnan(number) else str(int(number)) if number.is_integer() else str(number)


# --------------------------------------------------------------------------- csv


def _convert_csv(src: _Source) -> Converted:
    mapping = src.request.column_map
    unknown = [old for old in mapping if old not in src.table.columns]
    if unknown:
        raise InputError(f"the column map names a column that is not in the file: {unknown[0]}",
                         source=src.path, column=unknown[0])
    renamed = src.table.rename(columns=mapping)
    src.table = renamed
    label_column = src.request.label_column or "label"
    src.require(*[c if c != "label" else label_column for c in REQUIRED_COLUMNS])
    out = renamed.copy()
    if label_column != "label":
        out = out.rename(columns={label_column: "label"})
    labels = _label_set(out["label"].astype("string").str.strip())
    inverse = {new: old for old, new in mapping.items()}
    if label_column != "label":
        inverse["label"] = label_column
    return Converted(
        manifest=out,
        labels=labels,
        positive_classes=[],
        description=f"Imported from {src.request.metadata.name}.",
        licence="unknown",
        credit="",
        source_columns=inverse,
    )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ImportFormat:
    """A supported metadata format: its name, description and converter."""

    name: str
    summary: str
    convert: Callable[[_Source], Converted]


FORMATS: dict[str, ImportFormat] = {
    f.name: f
    for f in (
        ImportFormat("pad-ufes-20", "PAD-UFES-20 metadata.csv, or the shared subset's labels.csv", _convert_pad),
        ImportFormat("ddi", "Diverse Dermatology Images ddi_metadata.csv", _convert_ddi),
        ImportFormat("fitzpatrick17k", "Fitzpatrick17k fitzpatrick17k.csv", _convert_fitzpatrick17k),
        ImportFormat("isic", "ISIC Archive metadata export (isic_id, fitzpatrick_skin_type, ...)", _convert_isic),
        ImportFormat("scin", "SCIN scin_cases.csv (with scin_labels.csv beside it)", _convert_scin),
        ImportFormat("csv", "your own table in the manifest schema (--map old=new renames)", _convert_csv),
    )
}


def import_cohort(
    format: str,
    metadata: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    label_column: str | None = None,
    positive_classes: list[str] | None = None,
    column_map: dict[str, str] | None = None,
) -> Cohort:
    """Import a dataset's metadata into a new cohort folder.

    Images are used in place: ``images_root`` points at ``images``. Every row
    is validated and every image checked (inside the images folder, present,
    decodable) before anything is written; on any error nothing is written.

    Parameters
    ----------
    format
        One of :data:`FORMATS`.
    metadata
        The dataset's metadata file (CSV, TSV or Parquet).
    images
        Folder the images are in (sub-folders are searched by file name).
    out
        New cohort folder; must not exist or be empty.
    name
        Cohort name (default: the output folder's name).
    label_column
        Source column to use as the label, where the format allows a choice.
    positive_classes
        Labels that form the positive class of a binary task (default: the
        format's malignant classes, if any).
    column_map
        For ``csv``: renames ``{old: new}`` applied before validation.

    Raises
    ------
    InputError
        Naming the file, row and column at fault.
    """
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}", column="format")
    request = ImportRequest(
        metadata=Path(metadata), images=Path(images), out=Path(out), name=name,
        label_column=label_column, positive_classes=positive_classes, column_map=column_map or {},
    )
    if not request.images.is_dir():
        raise InputError("images folder not found", source=str(request.images))
    ensure_new_output_dir(request.out)
    table = read_table(request.metadata, what="metadata")
    if table.empty:
        raise InputError("no data rows (a header alone describes no cases)", source=str(request.metadata))
    source = _Source(request, _numbered(table))
    converted = FORMATS[format].convert(source)
    manifest = converted.manifest
    if SOURCE_ROW not in manifest.columns:
        manifest[SOURCE_ROW] = source.table[SOURCE_ROW].to_numpy()
    if "fitzpatrick" in manifest.columns and "fitzpatrick_group" not in manifest.columns:
        numeric = pd.to_numeric(manifest["fitzpatrick"], errors="coerce")
        manifest["fitzpatrick_group"] = fitzpatrick_to_group(numeric)
    positives = converted.positive_classes if positive_classes is None else positive_classes
    unknown = sorted(set(positives) - set(converted.labels))
    if unknown:
        raise InputError(f"positive class not among the labels {converted.labels}: {unknown[0]}",
                         column="positive_classes")
    notes = list(converted.notes)
    if not positives:
        # Said aloud (the CLI prints every note) and kept in cohort.yaml: without positive classes every binary
        # metric (AUROC, sensitivity, Brier, ...) is unavailable, which would otherwise surface only at audit time.
        notes.append(f"no positive classes: the {format} importer has no default for these labels; "
                     "binary metrics need --positive-classes (e.g. --positive-classes melanoma,bcc)")
    attributes = [c for c in ("fitzpatrick", "fitzpatrick_group", "monk", "sex", "body_site")
                  if c in manifest.columns and manifest[c].notna().any()]
    spec = CohortSpec(
        name=name or request.out.name,
        description=converted.description,
        licence=converted.licence,
        credit=converted.credit,
        labels=converted.labels,
        positive_classes=positives,
        attributes=attributes,
        source_format=format,
        notes=notes,
    )
    try:
        return write_cohort(request.out, spec, manifest, images_root=request.images, source=str(request.metadata))
    except InputError as exc:
        column = converted.source_columns.get(exc.column or "", exc.column)
        raise InputError(exc.reason, source=exc.source, row=exc.row, column=column) from None
