"""Cohorts: a folder with ``cohort.yaml`` and ``manifest.parquet``.

Public API
----------
Cohort, CohortSpec
    The loaded cohort and its description.
load_cohort, write_cohort
    Read and (atomically) write cohort folders.
validate_manifest, check_images
    Schema and file checks, raising :class:`fairderm.InputError` naming the row and column.
import_cohort, FORMATS
    Importers from public datasets' metadata (and a user's own table).
describe_cohort
    Counts by label and tone, missingness, patients, image sizes.
parse_filter, CaseFilter
    Case filters (``split == 'test' and fitzpatrick in (5, 6)``), parsed by
    fairderm and never evaluated as code.
synthesize_cohort, WHITE_REFERENCE_REFLECTANCE
    Synthetic cohort with known true skin colour, lesion masks and recorded confounders;
    the luminance factor of its rulers and paper (tell the tone estimator:
    ``ToneParameters(white_reflectance=WHITE_REFERENCE_REFLECTANCE)``).
"""

from __future__ import annotations

from fairderm.cohort._describe import CohortDescription, describe_cohort
from fairderm.cohort._filter import CaseFilter, parse_filter
from fairderm.cohort._images import MAX_IMAGE_PIXELS, check_images, checked_image_path, image_problem, resolve_inside
from fairderm.cohort._importers import FORMATS, import_cohort
from fairderm.cohort._schema import (
    FITZPATRICK_GROUPS,
    MANIFEST_FILE,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SPEC_FILE,
    TONE_ATTRIBUTES,
    CohortSpec,
    fitzpatrick_to_group,
    validate_manifest,
)
from fairderm.cohort._store import Cohort, load_cohort, write_cohort
from fairderm.cohort._synth import synthesize_cohort
from fairderm.cohort._synth_render import WHITE_REFERENCE_REFLECTANCE

__all__ = [
    "FITZPATRICK_GROUPS",
    "FORMATS",
    "MANIFEST_FILE",
    "MAX_IMAGE_PIXELS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SPEC_FILE",
    "TONE_ATTRIBUTES",
    "WHITE_REFERENCE_REFLECTANCE",
    "CaseFilter",
    "Cohort",
    "CohortDescription",
    "CohortSpec",
    "check_images",
    "checked_image_path",
    "describe_cohort",
    "fitzpatrick_to_group",
    "image_problem",
    "import_cohort",
    "load_cohort",
    "parse_filter",
    "resolve_inside",
    "synthesize_cohort",
    "validate_manifest",
    "write_cohort",
]
