"""Diagnosis names: synonyms, abbreviations, and mapping a model's classes onto a cohort's labels.

The same vocabulary serves two purposes: mapping a classifier's class names
(``MEL``, ``Melanoma``, ``melanocytic_nevus``) onto a cohort's labels before
inference, and reading diagnoses out of the free text a vision-language
model writes (:mod:`fairderm.inference._report`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from fairderm.errors import InputError

# concept -> names a clinician or a dataset uses for it. Names are matched
# case-insensitively on word boundaries; ABBREVIATIONS below only in upper case.
CONCEPT_NAMES: dict[str, tuple[str, ...]] = {
    "melanoma": (
        "melanoma",
        "melanomas",
        "malignant melanoma",
        "melanoma in situ",
        "mel",
        "mm",
        "cutaneous melanoma",
        "superficial spreading melanoma",
        "nodular melanoma",
        "lentigo maligna melanoma",
        "lentigo maligna",
        "acral lentiginous melanoma",
        "amelanotic melanoma",
    ),
    "nevus": (
        "nevus",
        "naevus",
        "nevi",
        "naevi",
        "nev",
        "nv",
        "mole",
        "moles",
        "melanocytic nevus",
        "melanocytic naevus",
        "benign nevus",
        "benign naevus",
        "compound nevus",
        "junctional nevus",
        "intradermal nevus",
        "dermal nevus",
        "dysplastic nevus",
        "atypical nevus",
        "atypical naevus",
        "dysplastic naevus",
        "common nevus",
        "blue nevus",
        "spitz nevus",
        "melanocytic nevi",
        "nevocytic nevus",
        "benign melanocytic lesion",
        "benign mole",
    ),
    "bcc": (
        "bcc",
        "basal cell carcinoma",
        "basal cell carcinomas",
        "basal-cell carcinoma",
        "basalioma",
        "basal cell cancer",
        "basal cell epithelioma",
        "rodent ulcer",
    ),
    "scc": (
        "scc",
        "squamous cell carcinoma",
        "squamous cell carcinomas",
        "squamous-cell carcinoma",
        "cutaneous squamous cell carcinoma",
        "cscc",
        "squamous cell cancer",
        "keratoacanthoma",
    ),
    "seborrheic_keratosis": (
        "seborrheic keratosis",
        "seborrhoeic keratosis",
        "seborrheic keratoses",
        "seborrhoeic keratoses",
        "sk",
        "sek",
        "seb k",
        "seborrheic wart",
        "seborrhoeic wart",
        "basal cell papilloma",
        "seborrheic_keratosis",
    ),
    "actinic_keratosis": (
        "actinic keratosis",
        "actinic keratoses",
        "solar keratosis",
        "solar keratoses",
        "ak",
        "ack",
        "actinic_keratosis",
        "senile keratosis",
    ),
    "dermatofibroma": ("dermatofibroma", "df", "benign fibrous histiocytoma"),
    "vascular_lesion": (
        "vascular lesion",
        "vasc",
        "angioma",
        "hemangioma",
        "haemangioma",
        "cherry angioma",
        "pyogenic granuloma",
        "angiokeratoma",
    ),
}

# Short names that are ordinary words or units in lower case ("mm", "sk"):
# in free text they count only when written in capitals.
ABBREVIATIONS: frozenset[str] = frozenset(
    {"mel", "mm", "nev", "nv", "bcc", "scc", "cscc", "sk", "sek", "ak", "ack", "df", "vasc"}
)


def normalise_name(name: str) -> str:
    """Lower case, with ``_``, ``-`` and runs of spaces turned into one space."""
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower()).strip()


_NAME_TO_CONCEPT: dict[str, str] = {
    normalise_name(alias): concept
    for concept, aliases in CONCEPT_NAMES.items()
    for alias in aliases
}
for _concept in CONCEPT_NAMES:
    _NAME_TO_CONCEPT.setdefault(normalise_name(_concept), _concept)


# Qualifiers ISIC's diagnosis_3 adds to a diagnosis ("Melanoma Invasive", "Squamous cell carcinoma, NOS");
# they do not change which diagnosis it is.
_QUALIFIERS = re.compile(r"\b(?:invasive|nos|not otherwise specified)\b")


def concept_of(name: str) -> str | None:
    """The concept a diagnosis name stands for, or None when unknown.

    Tries the name itself, then the name without punctuation and ISIC's
    qualifiers (``invasive``, ``NOS``), then, for a name offering synonyms
    (``Solar or actinic keratosis``), each alternative with the shared head
    noun: a concept is returned only when every alternative names the same
    known one.
    """
    key = normalise_name(name)
    if key in _NAME_TO_CONCEPT:
        return _NAME_TO_CONCEPT[key]
    plain = normalise_name(_QUALIFIERS.sub(" ", re.sub(r"[,;()/]", " ", key)))
    if plain in _NAME_TO_CONCEPT:
        return _NAME_TO_CONCEPT[plain]
    parts = [part.strip() for part in plain.split(" or ")]
    if len(parts) < 2 or not all(parts):
        return None
    head = parts[-1].split()[-1]
    candidates = [part if part.endswith(head) else f"{part} {head}" for part in parts]
    concepts = {_NAME_TO_CONCEPT.get(c) for c in candidates}
    return concepts.pop() if len(concepts) == 1 else None


def label_for_name(name: str, labels: Sequence[str]) -> str | None:
    """The cohort label ``name`` refers to: exact, then case-insensitive, then synonym match.

    Returns None when no label matches (or when a synonym would match two
    labels, which only a cohort with duplicate concepts can cause).
    """
    if name in labels:
        return name
    key = normalise_name(name)
    folded = [label for label in labels if normalise_name(label) == key]
    if len(folded) == 1:
        return folded[0]
    concept = concept_of(name)
    if concept is None:
        return None
    same = [label for label in labels if concept_of(label) == concept]
    return same[0] if len(same) == 1 else None


def map_classes(
    classes: Sequence[str],
    labels: Sequence[str],
    explicit: Mapping[str, str] | None = None,
    *,
    source: str = "model",
) -> list[str]:
    """Map a model's classes onto a cohort's labels, before any inference.

    Parameters
    ----------
    classes
        The model's class names, in its output order.
    labels
        The cohort's label set.
    explicit
        User-given ``model class -> cohort label`` pairs, tried first.
    source
        Named in the error message (the model path or backend).

    Returns
    -------
    list of str
        The cohort label of each model class (several classes may map onto
        one label; their probabilities are then summed).

    Raises
    ------
    InputError
        Naming every class that maps onto no label, or an explicit mapping
        that names a label the cohort does not have.
    """
    explicit = dict(explicit or {})
    bad_targets = sorted({t for t in explicit.values() if t not in labels})
    if bad_targets:
        raise InputError(
            f"class map names labels the cohort does not have: {bad_targets} (labels: {list(labels)})",
            source=source,
        )
    mapped: list[str] = []
    unmapped: list[str] = []
    for name in classes:
        target = explicit.get(str(name)) or label_for_name(str(name), labels)
        if target is None:
            unmapped.append(str(name))
        else:
            mapped.append(target)
    if unmapped:
        raise InputError(
            f"model classes {unmapped} map onto none of the cohort's labels {list(labels)}; "
            "give them with --class-map CLASS=LABEL",
            source=source,
        )
    return mapped
