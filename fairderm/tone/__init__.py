"""Skin-tone estimation for dermatology photographs.

Healthy-skin ITA (Chardon 1991) after colour constancy, with the lesion,
hair, ink, rulers, highlights, background and dark borders excluded; an
interval and an abstention with a reason for every image; Fitzpatrick,
Chardon and Monk scales; calibration on labelled images; validation against
labels. See ``docs/tone.md`` for the method and its measured accuracy.

Public API
----------
estimate_tone, measure_image
    Tone of every image of a cohort (a DataFrame), or of one file.
healthy_skin_mask
    The pixels of a photograph (an array) that are measured as healthy skin.
write_tone, read_tone, read_tone_table, ToneTable, ToneProvenance
    Tone tables as Parquet with provenance.
validate_tone, ToneValidation
    Agreement with tone labels, with bootstrap intervals.
fit_calibration, load_calibration, ToneCalibration, published_categories
    Ordinal ITA cut-points fitted on labelled images, kept only when they
    beat the published mapping out of fold.
ToneParameters, ImageTone
    Estimator settings and a single image's measurement.
ita_degrees, ita_to_chardon, ita_to_fitzpatrick, lab_to_monk, fitzpatrick_group
    The scales.
icc1
    Label-free consistency: ICC(1) of ITA across a patient's photographs.
measurement_repeatability, REPEATABILITY_IS_NOT_ACCURACY, tone_probabilities, tone_cut_points, group_cut_points
    What the intervals say about the strata: the share of measured images
    whose ITA, varied within its interval, stays in its group (repeatability,
    not accuracy), and per-image type probabilities (over
    ``FITZPATRICK_TYPE_NAMES``; ``DEFAULT_ITA_CUT_POINTS`` without provenance).
new_label_sample, draw_label_sample, labels_from_column, read_tone_labels, write_labels, record_answer,
ToneLabels, CANNOT_TELL
    Validation labels: a sample stratified by estimated group with inclusion
    probabilities (the draw itself: ``draw_label_sample``), a manifest column's partial labels, the labels CSV.
fit_tone_model, learned_tone_frame, load_tone_model, ToneModel, LearnedToneReport
    A stratifier learned from labels (image features and colour), scored
    out of fold beside the colour estimate.
"""

from __future__ import annotations

from fairderm.tone._calibration import ToneCalibration, fit_calibration, load_calibration, published_categories
from fairderm.tone._color import ita_degrees, srgb8_to_lab
from fairderm.tone._estimate import ESTIMATOR_VERSION, EXTRA_COLUMNS, TONE_COLUMNS, estimate_tone
from fairderm.tone._labels import (
    CANNOT_TELL,
    ToneLabels,
    draw_label_sample,
    labels_from_column,
    new_label_sample,
    read_tone_labels,
    record_answer,
    write_labels,
)
from fairderm.tone._learn import LearnedToneReport, ToneModel, fit_tone_model, learned_tone_frame, load_tone_model
from fairderm.tone._measure import measure_image
from fairderm.tone._pipeline import ImageTone, ToneParameters, healthy_skin_mask
from fairderm.tone._provenance import DEFAULT_ITA_CUT_POINTS, ToneProvenance, ToneTable
from fairderm.tone._scales import (
    CHARDON_CATEGORIES,
    DEFAULT_FITZPATRICK_SCHEME,
    FITZPATRICK_CUTPOINTS,
    MONK_HEX,
    fitzpatrick_group,
    ita_to_chardon,
    ita_to_fitzpatrick,
    lab_to_monk,
)
from fairderm.tone._store import align_to_cohort, read_tone, read_tone_table, write_tone
from fairderm.tone._uncertainty import (
    FITZPATRICK_TYPE_NAMES,
    REPEATABILITY_IS_NOT_ACCURACY,
    group_cut_points,
    measurement_repeatability,
    tone_cut_points,
    tone_probabilities,
)
from fairderm.tone._validation import LABEL_COLUMNS, ToneValidation, icc1, validate_tone

__all__ = [
    "CANNOT_TELL",
    "CHARDON_CATEGORIES",
    "DEFAULT_FITZPATRICK_SCHEME",
    "DEFAULT_ITA_CUT_POINTS",
    "ESTIMATOR_VERSION",
    "EXTRA_COLUMNS",
    "FITZPATRICK_CUTPOINTS",
    "FITZPATRICK_TYPE_NAMES",
    "LABEL_COLUMNS",
    "MONK_HEX",
    "REPEATABILITY_IS_NOT_ACCURACY",
    "TONE_COLUMNS",
    "ImageTone",
    "LearnedToneReport",
    "ToneCalibration",
    "ToneLabels",
    "ToneModel",
    "ToneParameters",
    "ToneProvenance",
    "ToneTable",
    "ToneValidation",
    "align_to_cohort",
    "draw_label_sample",
    "estimate_tone",
    "fit_calibration",
    "fit_tone_model",
    "fitzpatrick_group",
    "group_cut_points",
    "healthy_skin_mask",
    "icc1",
    "ita_degrees",
    "ita_to_chardon",
    "ita_to_fitzpatrick",
    "lab_to_monk",
    "labels_from_column",
    "learned_tone_frame",
    "load_calibration",
    "load_tone_model",
    "measure_image",
    "measurement_repeatability",
    "new_label_sample",
    "published_categories",
    "read_tone",
    "read_tone_labels",
    "read_tone_table",
    "record_answer",
    "srgb8_to_lab",
    "tone_cut_points",
    "tone_probabilities",
    "validate_tone",
    "write_labels",
    "write_tone",
]
