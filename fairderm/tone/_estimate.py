"""Tone estimation over a cohort: one record per image, never a crash, on this machine or on Ray.

Every image gets a row. Failures are per image: an unreadable file is
``error``, a readable image without enough healthy skin (or without colour)
is ``abstain``, each with its reason, and the other images are unaffected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fairderm._engine import Engine
from fairderm._io import sha256_json
from fairderm._processes import default_workers
from fairderm._version import __version__
from fairderm.cohort import Cohort
from fairderm.errors import InputError
from fairderm.tone._calibration import GROUP_REPRESENTATIVE_TYPE, ToneCalibration
from fairderm.tone._pipeline import ToneParameters
from fairderm.tone._run import BlockStore, ProgressCallback, measure_items
from fairderm.tone._scales import (
    DEFAULT_FITZPATRICK_SCHEME,
    fitzpatrick_cutpoints,
    fitzpatrick_group,
    ita_to_chardon,
    ita_to_fitzpatrick,
    lab_to_monk,
)

TONE_COLUMNS: tuple[str, ...] = (
    "image_id", "ita", "ita_low", "ita_high", "skin_fraction", "fitzpatrick_est", "monk_est",
    "status", "reason", "method",
)
"""The contract columns of a tone table, in order."""
EXTRA_COLUMNS: tuple[str, ...] = (
    "fitzpatrick_group_est", "chardon_est", "skin_L", "skin_a", "skin_b", "lesion_fraction", "constancy",
    "exposure_correction",
)
"""Further columns fairderm writes: the estimated group, Chardon category, skin colour, diagnostics (among them the
stops by which a white reference corrected the exposure)."""
STATUSES: tuple[str, ...] = ("ok", "abstain", "error")
METHODS: tuple[str, ...] = ("fairderm", "stone")
ESTIMATOR_VERSION = "fairderm-ita/5"

def _lesion_mask_paths(cohort: Cohort, lesion_masks: bool, method: str) -> list[str | None]:
    """Per image, the lesion mask file to use (None: segment the lesion)."""
    if not lesion_masks:
        return [None] * len(cohort.manifest)
    if method != "fairderm":
        raise InputError("lesion masks are used by the fairderm method only", column="lesion_masks")
    if "mask" not in cohort.manifest.columns:
        raise InputError("the manifest has no 'mask' column: no lesion masks to use",
                         source=cohort.manifest_path, column="mask")
    return [None if path is None else str(path) for path in cohort.mask_paths()]


def method_name(
    method: str, scheme: str, calibration: ToneCalibration | None, *, lesion_masks: bool = False
) -> str:
    """The ``method`` column: estimator, where the lesion came from, and how ITA became a Fitzpatrick type."""
    base = ESTIMATOR_VERSION if method == "fairderm" else "stone/skin-tone-classifier;lesion-masked"
    if lesion_masks:
        base += ";lesion=cohort-masks"
    if calibration is not None:
        return f"{base};{calibration.scale}=calibrated:{calibration.sha256[:12]}"
    return f"{base};fitzpatrick={scheme}"


def tone_frame(
    image_ids: Sequence[str],
    records: list[dict[str, Any]],
    *,
    method: str,
    scheme: str = DEFAULT_FITZPATRICK_SCHEME,
    calibration: ToneCalibration | None = None,
    lesion_masks: bool = False,
) -> pd.DataFrame:
    """Assemble per-image records into the tone table (contract columns first)."""
    raw = pd.DataFrame.from_records(records)
    ok = raw["status"].eq("ok").to_numpy()
    ita = np.where(ok, raw["ita"].to_numpy(dtype=np.float64), np.nan)
    frame = pd.DataFrame({"image_id": pd.Series(list(image_ids), dtype="string")})
    for column in ("ita", "ita_low", "ita_high"):
        frame[column] = np.where(ok, raw[column].to_numpy(dtype=np.float64), np.nan)
    frame["skin_fraction"] = raw["skin_fraction"].to_numpy(dtype=np.float64)
    fitzpatrick = ita_to_fitzpatrick(ita, scheme)
    lab = np.array(raw[["skin_L", "skin_a", "skin_b"]].to_numpy(dtype=np.float64))
    lab[~ok] = np.nan
    monk = lab_to_monk(lab)
    if method == "stone":
        monk = pd.Series(raw["monk"].to_numpy(), dtype="Int8").mask(~ok)
    group = fitzpatrick_group(fitzpatrick)
    if calibration is not None:
        index = calibration.apply(ita)
        known = index >= 0
        if calibration.scale == "fitzpatrick":
            fitzpatrick = pd.Series(np.where(known, index + 1, 0), dtype="Int8").mask(~known)
            group = fitzpatrick_group(fitzpatrick)
        elif calibration.scale == "fitzpatrick_group":
            names = np.array(calibration.categories, dtype=object)
            group = pd.Series(np.where(known, names[np.maximum(index, 0)], None), dtype="string")
            fitzpatrick = pd.Series(group.map(GROUP_REPRESENTATIVE_TYPE), dtype="Int8")
        else:
            monk = pd.Series(np.where(known, index + 1, 0), dtype="Int8").mask(~known)
    frame["fitzpatrick_est"] = fitzpatrick.to_numpy()
    frame["fitzpatrick_est"] = frame["fitzpatrick_est"].astype("Int8")
    frame["monk_est"] = pd.Series(monk.to_numpy(), dtype="Int8")
    frame["status"] = raw["status"].astype("string").to_numpy()
    frame["reason"] = raw["reason"].fillna("").astype("string").to_numpy()
    name = method_name(method, scheme, calibration, lesion_masks=lesion_masks)
    frame["method"] = pd.Series([name] * len(frame), dtype="string")
    frame["fitzpatrick_group_est"] = pd.Series(group.to_numpy(), dtype="string")
    frame["chardon_est"] = ita_to_chardon(ita).to_numpy()
    frame["chardon_est"] = frame["chardon_est"].astype("string")
    for column in ("skin_L", "skin_a", "skin_b"):
        frame[column] = lab[:, ("skin_L", "skin_a", "skin_b").index(column)]
    frame["lesion_fraction"] = raw["lesion_fraction"].to_numpy(dtype=np.float64)
    frame["constancy"] = raw["constancy"].fillna("none").astype("string").to_numpy()
    frame["exposure_correction"] = raw["exposure_correction"].to_numpy(dtype=np.float64)
    return frame


def estimate_tone(
    cohort: Cohort,
    *,
    calibration: ToneCalibration | None = None,
    workers: int | None = None,
    method: str = "fairderm",
    progress: ProgressCallback | None = None,
    parameters: ToneParameters | None = None,
    fitzpatrick_scheme: str = DEFAULT_FITZPATRICK_SCHEME,
    lesion_masks: bool = False,
    engine: Engine | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Estimate the skin tone of every image of a cohort.

    Parameters
    ----------
    cohort
        The cohort (see :func:`fairderm.cohort.load_cohort`).
    calibration
        Fitted cut-points (:func:`fit_calibration`) replacing the published
        ones for the calibration's scale.
    workers
        Processes to use (default: :func:`fairderm._processes.default_workers`);
        with a Ray instance started here, its CPUs.
    method
        ``fairderm`` (healthy-skin ITA) or ``stone`` (skin-tone-classifier
        with the lesion masked out; needs the ``[stone]`` extra).
    progress
        Called as ``progress(done, total)`` while images are measured.
    parameters
        Estimator settings (:class:`ToneParameters`).
    fitzpatrick_scheme
        Published ITA cut-points for ``fitzpatrick_est``: ``groh`` (default)
        or ``kinyanjui``.
    lesion_masks
        Use the cohort's lesion masks (manifest column ``mask``) instead of
        segmenting the lesion. An image without a mask is segmented as
        usual; a mask that is missing on disk or does not fit its
        photograph makes that image an ``error`` with the reason.
    engine
        Where the images are measured (:class:`fairderm._engine.Engine`):
        this machine's process pool (default) or Ray, whose stateless tasks
        measure one block of images each. The table is the same.
    checkpoint
        A folder where each finished block of images is kept as it
        finishes, so that a killed run, started again with the same
        settings, measures only the blocks it had not finished. It is
        removed once the table is made.

    Returns
    -------
    pandas.DataFrame
        One row per manifest row, in manifest order, columns
        :data:`TONE_COLUMNS` then :data:`EXTRA_COLUMNS`. The settings are in
        ``frame.attrs["fairderm_tone"]`` and are written by :func:`write_tone`.
    """
    if method not in METHODS:
        raise InputError(f"unknown tone method {method!r}; choose one of {list(METHODS)}", column="method")
    fitzpatrick_cutpoints(fitzpatrick_scheme)
    if method == "stone":
        from fairderm.tone._stone import require_stone

        require_stone()
    params = parameters or ToneParameters()
    if workers is not None and workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}", column="workers")
    engine = engine or Engine()
    if engine.is_ray and engine.address is None and engine.cpus is None:
        engine = engine.model_copy(update={"cpus": workers})
    workers = workers or default_workers()
    items = list(zip([str(p) for p in cohort.image_paths()], _lesion_mask_paths(cohort, lesion_masks, method)))
    root = str(cohort.images_root)
    store = None
    if checkpoint is not None:
        identity = {"estimator": ESTIMATOR_VERSION, "method": method, "parameters": params.to_dict(), "root": root,
                    "items": items, "block_size": engine.block_size, "fairderm_version": __version__}
        store = BlockStore(checkpoint, sha256_json(identity))
    records = measure_items(items, params, method, root, engine=engine, workers=workers, progress=progress,
                            checkpoint=store)
    if store is not None:
        store.remove()
    frame = tone_frame(
        cohort.manifest["image_id"].astype(str).tolist(), records,
        method=method, scheme=fitzpatrick_scheme, calibration=calibration, lesion_masks=lesion_masks,
    )
    frame.attrs["fairderm_tone"] = {
        "estimator": ESTIMATOR_VERSION if method == "fairderm" else "stone",
        "method": method,
        "fitzpatrick_scheme": None if calibration is not None and calibration.scale == "fitzpatrick"
        else fitzpatrick_scheme,
        "parameters": params.to_dict(),
        "lesion_masks": lesion_masks,
        "calibration": None if calibration is None else {
            "sha256": calibration.sha256, "scale": calibration.scale, "cutpoints": list(calibration.cutpoints),
        },
        "fairderm_version": __version__,
    }
    return frame
