"""Mapping a model's class names onto a cohort's labels, before any inference."""

from __future__ import annotations

import pytest

from fairderm.errors import InputError
from fairderm.inference import map_classes

PAD_LABELS = ["BCC", "NEV", "ACK", "SEK", "MEL", "SCC"]
SYNTH_LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]


def test_exact_case_insensitive_and_synonym_matches():
    classes = ["Melanoma", "melanocytic_nevus", "Basal cell carcinoma", "seborrhoeic keratosis"]
    assert map_classes(classes, SYNTH_LABELS) == [
        "melanoma",
        "nevus",
        "bcc",
        "seborrheic_keratosis",
    ]
    assert map_classes(
        ["mel", "nevus", "basal cell carcinoma", "actinic keratosis", "SK", "scc"], PAD_LABELS
    ) == ["MEL", "NEV", "BCC", "ACK", "SEK", "SCC"]


def test_explicit_class_map_comes_first():
    assert map_classes(
        ["bkl", "mel"], ["melanoma", "seborrheic_keratosis"], {"bkl": "seborrheic_keratosis"}
    ) == ["seborrheic_keratosis", "melanoma"]


def test_unmappable_classes_are_rejected_naming_each():
    with pytest.raises(InputError, match=r"\['bkl', 'vasc'\] map onto none"):
        map_classes(["mel", "bkl", "nv", "vasc"], SYNTH_LABELS)


def test_class_map_to_unknown_label_is_rejected():
    with pytest.raises(InputError, match="labels the cohort does not have"):
        map_classes(["bkl"], SYNTH_LABELS, {"bkl": "benign_keratosis"})
