"""The synthetic cohort generator: patients, lesions and photographs with known truth.

A cohort is planned in one pass from the seed (patients, their skin colour,
their lesions and how many photographs of each), then the photographs are
rendered in parallel, each from its own seed derived from ``(seed, index)``
with :class:`numpy.random.SeedSequence`, so the output does not depend on the
number of workers. See :mod:`fairderm.cohort._synth_render` for the image
model and :mod:`fairderm.cohort._synth_colour` for the skin colour model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fairderm._io import atomic_output_dir, atomic_write_parquet, ensure_new_output_dir
from fairderm._processes import default_workers, worker_context
from fairderm._version import __version__
from fairderm.cohort._schema import (
    MANIFEST_FILE,
    SPEC_FILE,
    CohortSpec,
    fitzpatrick_to_group,
    validate_manifest,
)
from fairderm.cohort._store import Cohort, load_cohort
from fairderm.cohort._synth_colour import (
    A_STAR_MEAN,
    A_STAR_SD,
    B_STAR_MEAN,
    B_STAR_SD,
    ITA_RANGES,
    ita_degrees,
    nearest_monk,
)
from fairderm.cohort._synth_render import (
    LABELS,
    POSITIVE_CLASSES,
    SUN_EXPOSED_SITES,
    ImagePlan,
    render_image,
)
from fairderm.errors import InputError

IMAGES_DIR = "images"
MASKS_DIR = "masks"
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
GENERATOR_VERSION = 3
"""Bumped whenever the same seed would give different images."""

BODY_SITES: tuple[str, ...] = (
    "face", "nose", "ear", "scalp", "neck", "chest", "back", "abdomen", "arm", "forearm", "hand",
    "thigh", "leg",
)
_SITE_BASE = np.array(
    [0.12, 0.03, 0.02, 0.02, 0.05, 0.13, 0.20, 0.07, 0.07, 0.09, 0.03, 0.07, 0.10]
)
# Where each diagnosis tends to occur (BCC on the sun-exposed head and neck,
# melanoma on the back and legs, naevi on the trunk), as multipliers.
_SITE_TILT: dict[str, dict[str, float]] = {
    "nevus": {"back": 1.4, "chest": 1.4, "abdomen": 1.4, "face": 0.7},
    "melanoma": {"back": 1.5, "leg": 1.8},
    "bcc": {"face": 2.5, "nose": 4.0, "ear": 3.0, "neck": 1.5, "scalp": 2.0},
    "seborrheic_keratosis": {"chest": 1.4, "back": 1.4, "face": 1.3},
}
_LABEL_BASE = np.array([0.30, 0.20, 0.30, 0.20])

ProgressCallback = Callable[[int, int], None]


def _check_whole(value: object, name: str, option: str, low: int, high: int | None = None) -> None:
    """Refuse anything but a whole number in [low, high], naming the option."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"in {low}-{high}" if high is not None else f">= {low}"
        raise InputError(f"{name} must be a whole number {bound}, got {value!r}", column=option)


def _check_options(n: int, seed: int, image_size: int, workers: int | None) -> None:
    """Validate the generator's whole-number options, naming the option at fault."""
    _check_whole(n, "n (number of images)", "--n", 1)
    _check_whole(seed, "seed", "--seed", 0)
    _check_whole(image_size, "image_size (pixels)", "image_size", 64, 1024)
    if workers is not None:
        _check_whole(workers, "workers", "--workers", 1)


def _check_weights(tone_weights: Sequence[float] | None, name: str) -> np.ndarray:
    """Validate 6 Fitzpatrick I-VI weights (``name`` is the option); return them normalised."""
    if tone_weights is None:
        return np.full(6, 1 / 6)
    option = "--" + name.replace("_", "-")
    try:
        weights = np.asarray(list(tone_weights), dtype=np.float64)
    except (TypeError, ValueError):
        message = f"{name} must be 6 numbers, got {tone_weights!r}"
        raise InputError(message, column=option) from None
    if weights.shape != (6,):
        message = f"{name} needs 6 weights (Fitzpatrick I-VI), got {weights.size}"
        raise InputError(message, column=option)
    if not np.all(np.isfinite(weights)):
        raise InputError(f"{name} must be finite numbers (no NaN or infinity)", column=option)
    if np.any(weights < 0):
        raise InputError(f"{name} must not be negative", column=option)
    if weights.sum() <= 0:
        raise InputError(f"{name} must not all be zero", column=option)
    return weights / weights.sum()


def _sample_label(rng: np.random.Generator, age: float) -> str:
    # Naevi are diagnosed younger, keratinocyte lesions and melanoma older.
    tilt = np.exp(np.array([-(age - 50) / 25, (age - 50) / 60, (age - 50) / 40, (age - 50) / 30]))
    weights = _LABEL_BASE * tilt
    return LABELS[int(rng.choice(len(LABELS), p=weights / weights.sum()))]


def _sample_site(rng: np.random.Generator, label: str) -> str:
    tilt = np.array([_SITE_TILT[label].get(site, 1.0) for site in BODY_SITES])
    weights = _SITE_BASE * tilt
    return BODY_SITES[int(rng.choice(len(BODY_SITES), p=weights / weights.sum()))]


def _site_colour(rng: np.random.Generator, fitzpatrick: int, base: tuple[float, float, float],
                 site: str) -> tuple[tuple[float, float, float], float]:
    """True (L*, a*, b*) and ITA of a patient's skin at one body site.

    Sun-exposed sites are a little darker, yellower and redder (facultative
    pigmentation); the ITA stays inside the patient's type category.
    """
    base_ita, base_a, base_b = base
    low, high = ITA_RANGES[fitzpatrick - 1]
    exposed = site in SUN_EXPOSED_SITES
    shift = -2.5 if exposed else 0.5
    ita = float(np.clip(base_ita + shift + rng.normal(0, 1.2), low + 0.2, high - 0.2))
    b_star = base_b + (0.6 if exposed else 0.0) + rng.normal(0, 0.4)
    a_star = base_a + (1.5 if site in {"face", "nose", "ear"} else 0.0) + rng.normal(0, 0.4)
    lightness = 50.0 + b_star * math.tan(math.radians(ita))
    return (round(lightness, 3), round(a_star, 3), round(b_star, 3)), ita


def plan_cohort(n: int, seed: int, weights: np.ndarray,
                eval_weights: np.ndarray | None = None) -> tuple[list[ImagePlan], pd.DataFrame]:
    """Draw patients, lesions and photographs; return render plans and the manifest stub.

    With ``eval_weights`` the train split (``SPLIT_FRACTIONS[0]`` of the
    images) comes from patients drawn with ``weights`` and the val and test
    splits from patients drawn with ``eval_weights``, halved by patient.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    plans: list[ImagePlan] = []
    rows: list[dict[str, Any]] = []
    patient = lesion = 0
    n_train = n if eval_weights is None else round(n * SPLIT_FRACTIONS[0])
    first_eval_patient = None
    while len(plans) < n:
        if len(plans) >= n_train and first_eval_patient is None:
            first_eval_patient = patient
        drawing = weights if first_eval_patient is None else eval_weights
        fitzpatrick = int(rng.choice(6, p=drawing)) + 1
        sex = "female" if rng.random() < 0.5 else "male"
        age = float(np.clip(np.round(rng.normal(56, 16)), 18, 92))
        low, high = ITA_RANGES[fitzpatrick - 1]
        base = (
            low + (high - low) * rng.beta(1.6, 1.6),
            rng.normal(A_STAR_MEAN[fitzpatrick - 1], A_STAR_SD),
            float(np.clip(rng.normal(B_STAR_MEAN[fitzpatrick - 1], B_STAR_SD), 9.0, 24.0)),
        )
        # at most four photographs per patient, and none across the train/evaluation boundary
        room = min(4, (n_train if first_eval_patient is None else n) - len(plans))
        for _ in range(int(rng.choice([1, 2, 3], p=[0.7, 0.22, 0.08]))):
            if room == 0:
                break
            label = _sample_label(rng, age)
            site = _sample_site(rng, label)
            true_lab, ita = _site_colour(rng, fitzpatrick, base, site)
            shots = min(room, int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15])))
            for _ in range(shots):
                index = len(plans)
                plans.append(ImagePlan(index, lesion, label, site, sex, age, true_lab, ita))
                rows.append({
                    "patient_id": f"synth_p{patient:05d}", "lesion_id": f"synth_l{lesion:05d}",
                    "label": label, "fitzpatrick": fitzpatrick, "age": age, "sex": sex,
                    "body_site": site,
                    "true_L": true_lab[0], "true_a": true_lab[1], "true_b": true_lab[2],
                })
            room -= shots
            lesion += 1
        patient += 1
    frame = pd.DataFrame(rows)
    ita = ita_degrees(frame["true_L"].to_numpy(), frame["true_b"].to_numpy())
    frame["true_ita"] = np.round(ita, 3)
    if eval_weights is None:
        frame["split"] = _patient_split(rng, frame)
    else:
        evaluation = np.arange(len(frame)) >= n_train
        split = np.full(len(frame), "train", dtype=object)
        val_share = SPLIT_FRACTIONS[1] / (SPLIT_FRACTIONS[1] + SPLIT_FRACTIONS[2])
        split[evaluation] = _patient_split(rng, frame[evaluation], (0.0, val_share))
        frame["split"] = split
    return plans, frame


def _patient_split(rng: np.random.Generator, frame: pd.DataFrame,
                   cuts: tuple[float, float] | None = None) -> np.ndarray:
    """train/val/test by patient (60/20/20, or the cumulative ``cuts``), stratified by Fitzpatrick type.

    Stratifying keeps the rarest types present in every split even under
    strongly skewed ``tone_weights``.
    """
    patients = frame.drop_duplicates("patient_id")[["patient_id", "fitzpatrick"]]
    split_of: dict[str, str] = {}
    cut_train, cut_val = cuts or (SPLIT_FRACTIONS[0], SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])
    for fitzpatrick in range(1, 7):
        ids = patients.loc[patients["fitzpatrick"] == fitzpatrick, "patient_id"].to_numpy()
        order = ids[rng.permutation(ids.size)]
        quantile = (np.arange(order.size) + 0.5) / max(order.size, 1)
        for patient_id, q in zip(order, quantile):
            split_of[patient_id] = "train" if q < cut_train else ("val" if q < cut_val else "test")
    return frame["patient_id"].map(split_of).to_numpy()


def _render_chunk(
    plans: list[ImagePlan], seed: int, size: int, staging: str, digits: int
) -> list[dict[str, Any]]:
    """Render and write a run of images; return their manifest records (worker entry point)."""
    records = []
    for plan in plans:
        rendering = render_image(plan, seed=seed, size=size)
        stem = f"synth_{plan.index:0{digits}d}"
        Path(staging, IMAGES_DIR, f"{stem}.jpg").write_bytes(rendering.jpeg)
        Path(staging, MASKS_DIR, f"{stem}.png").write_bytes(rendering.mask_png)
        records.append({"index": plan.index, **rendering.record})
    return records


def _render_all(plans: list[ImagePlan], seed: int, size: int, staging: Path, workers: int,
                progress: ProgressCallback | None) -> list[dict[str, Any]]:
    total = len(plans)
    digits = max(5, len(str(total - 1)))
    chunk = max(1, min(16, total // (workers * 4) or 1))
    chunks = [plans[i:i + chunk] for i in range(0, total, chunk)]
    records: list[dict[str, Any]] = []
    if progress is not None:
        progress(0, total)
    if workers == 1 or len(chunks) == 1:
        for part in chunks:
            records += _render_chunk(part, seed, size, str(staging), digits)
            if progress is not None:
                progress(len(records), total)
        return records
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=worker_context()) as pool:
        pending = {
            pool.submit(_render_chunk, part, seed, size, str(staging), digits) for part in chunks
        }
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    records += future.result()
                if progress is not None:
                    progress(len(records), total)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return records


def _cohort_spec(n: int, seed: int, weights: np.ndarray, size: int,
                 eval_weights: np.ndarray | None = None) -> CohortSpec:
    weight_text = ",".join(f"{w:.4g}" for w in weights)
    return CohortSpec(
        name=f"synthetic-seed{seed}-n{n}",
        description=(
            f"SYNTHETIC clinical-photo-like images ({n} images, {size} px) generated by fairderm's "
            "synthetic cohort generator: not real patients. True skin colour per image is known "
            "(true_L, true_a, true_b, true_ita), lesions are rendered per diagnosis and skin tone, "
            "and photographic confounders are recorded per image."
        ),
        licence="CC0-1.0 (synthetic, generated by fairderm)",
        credit="Synthetic data generated by fairderm (fairderm.cohort.synthesize_cohort); "
        "no real patients.",
        synthetic=True,
        images_root=".",
        labels=list(LABELS),
        positive_classes=list(POSITIVE_CLASSES),
        attributes=["fitzpatrick", "fitzpatrick_group", "monk", "sex", "age", "body_site"],
        source_format="synthetic",
        created_with=f"fairderm {__version__}",
        notes=[
            f"generator version {GENERATOR_VERSION}, seed {seed}, "
            f"Fitzpatrick I-VI weights {weight_text}",
            "skin colour drawn per Fitzpatrick type inside the Chardon 1991 / Del Bino 2006 ITA "
            "categories (I >55, II 41-55, III 28-41, IV 10-28, V -30-10, VI < -30)",
            "split is by patient, stratified by Fitzpatrick type (about 60/20/20)"
            if eval_weights is None else
            "split is by patient: train (60% of images) from patients drawn with the weights above; val and "
            "test (20% each, stratified by Fitzpatrick type) from patients drawn with evaluation weights "
            + ",".join(f"{w:.4g}" for w in eval_weights),
        ],
    )


def synthesize_cohort(
    out: str | os.PathLike[str],
    *,
    n: int = 600,
    seed: int = 0,
    tone_weights: Sequence[float] | None = None,
    eval_tone_weights: Sequence[float] | None = None,
    image_size: int = 256,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> Cohort:
    """Generate a synthetic dermatology cohort with known skin colour and lesion masks.

    Patients get a Fitzpatrick type drawn with ``tone_weights`` and a true
    skin colour inside that type's ITA category (Chardon 1991; Del Bino et al.
    2006); each has 1-3 lesions (naevus, melanoma, basal cell carcinoma,
    seborrhoeic keratosis) photographed 1-3 times, at most four photographs per
    patient. Photographs carry the confounders of real clinical photos
    (illuminant cast, exposure, white ruler or paper, ink circles, hair,
    specular sheen, vignetting, surgical drape, blur, JPEG), each recorded in
    the manifest.

    Parameters
    ----------
    out
        New cohort folder; must not exist or be empty. Nothing is left behind
        on failure.
    n
        Number of images.
    seed
        Random seed; the same seed gives byte-identical images and manifest,
        whatever the number of workers.
    tone_weights
        Relative weights of Fitzpatrick types I-VI (6 non-negative numbers,
        not all zero), drawn per patient; default uniform.
    eval_tone_weights
        Weights of types I-VI for the validation and test splits (20% of the
        images each), e.g. uniform: tone-imbalanced training data with
        evaluation sets enriched for the rare tones, as dermatology fairness
        benchmarks are built (Daneshjou et al. 2022, DDI), so that model
        selection and the audit see enough of every group. Default: every
        split is drawn with ``tone_weights``.
    image_size
        Side of the square images in pixels.
    workers
        Processes rendering images; default one per CPU core.
    progress
        Called as ``progress(done, total)`` as images finish.

    Returns
    -------
    Cohort
        The loaded cohort: ``images/``, ``masks/``, ``cohort.yaml`` (with
        ``synthetic: true``) and ``manifest.parquet``.

    Raises
    ------
    InputError
        For a bad option (naming it) or an existing non-empty ``out``.
    """
    _check_options(n, seed, image_size, workers)
    weights = _check_weights(tone_weights, "tone_weights")
    eval_weights = _check_weights(eval_tone_weights, "eval_tone_weights") if eval_tone_weights is not None else None
    out = ensure_new_output_dir(out)
    workers = int(workers or default_workers())
    plans, frame = plan_cohort(int(n), int(seed), weights, eval_weights)
    digits = max(5, len(str(n - 1)))
    spec = _cohort_spec(int(n), int(seed), weights, int(image_size), eval_weights)
    with atomic_output_dir(out) as staging:
        (staging / IMAGES_DIR).mkdir()
        (staging / MASKS_DIR).mkdir()
        records = _render_all(plans, int(seed), int(image_size), staging, workers, progress)
        confounders = pd.DataFrame(records).sort_values("index").drop(columns="index")
        stems = [f"synth_{i:0{digits}d}" for i in range(n)]
        manifest = pd.concat([
            pd.DataFrame({
                "image_id": stems,
                "image": [f"{IMAGES_DIR}/{s}.jpg" for s in stems],
                "mask": [f"{MASKS_DIR}/{s}.png" for s in stems],
            }),
            frame,
            confounders.reset_index(drop=True),
        ], axis=1)
        manifest["fitzpatrick_group"] = fitzpatrick_to_group(manifest["fitzpatrick"])
        lab = manifest[["true_L", "true_a", "true_b"]].to_numpy()
        manifest["monk"] = nearest_monk(lab)
        manifest = validate_manifest(
            manifest[_column_order(manifest)], spec, source="synthesize_cohort"
        )
        spec_text = yaml.safe_dump(
            spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True
        )
        (staging / SPEC_FILE).write_text(spec_text, encoding="utf-8")
        provenance = {
            "generator": "fairderm.cohort.synthesize_cohort",
            "generator_version": GENERATOR_VERSION,
            "fairderm_version": __version__,
            "n": int(n), "seed": int(seed), "image_size": int(image_size),
            "tone_weights": [float(w) for w in weights],
            "eval_tone_weights": None if eval_weights is None else [float(w) for w in eval_weights],
            "split_fractions": list(SPLIT_FRACTIONS),
        }
        atomic_write_parquet(staging / MANIFEST_FILE, manifest, metadata_json=provenance)
    return load_cohort(out)


_LEADING_COLUMNS = (
    "image_id", "image", "mask", "label", "patient_id", "lesion_id", "fitzpatrick",
    "fitzpatrick_group", "monk", "age", "sex", "body_site", "split",
    "true_L", "true_a", "true_b", "true_ita",
)


def _column_order(manifest: pd.DataFrame) -> list[str]:
    return list(_LEADING_COLUMNS) + [c for c in manifest.columns if c not in _LEADING_COLUMNS]
