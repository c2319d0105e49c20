"""The report parser: a corpus of written reports, negations, tags, JSON, out-of-set answers."""

from __future__ import annotations

import pytest

from fairderm.inference import parse_report
from tests.helpers.report_corpus import CORPUS, LABELS


def test_corpus_is_large_and_varied():
    assert len(CORPUS) >= 50
    assert sum("<answer>" in text for text, _ in CORPUS) >= 10
    assert sum("Final diagnosis" in text or "FINAL DIAGNOSIS" in text for text, _ in CORPUS) >= 10
    assert sum(expected is None for _, expected in CORPUS) >= 10


def test_parser_reads_the_corpus_and_never_guesses():
    right, wrong = 0, []
    for text, expected in CORPUS:
        parsed = parse_report(text, LABELS)
        got = parsed.pred if parsed.status == "ok" else None
        if got == expected:
            right += 1
        elif got is not None:
            wrong.append((text, expected, got))
    assert right / len(CORPUS) >= 0.98
    assert wrong == []  # anything not read right must be flagged unparseable, never another label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final diagnosis: not melanoma but a seborrheic keratosis.", "seborrheic_keratosis"),
        ("Final diagnosis: melanoma. Nevus is unlikely.", "melanoma"),
        ("Final diagnosis: nevus; melanoma cannot be excluded.", "nevus"),
        ("The lesion is no melanoma.", None),
        ("Final diagnosis: non-melanoma skin cancer", None),
    ],
)
def test_negated_diagnoses_are_not_taken(text, expected):
    parsed = parse_report(text, LABELS)
    assert (parsed.pred if parsed.status == "ok" else None) == expected


def test_abbreviations_count_only_in_capitals():
    assert parse_report("Final diagnosis: MM", LABELS).pred == "melanoma"
    parsed = parse_report("A 6 mm brown lesion with a regular network.", LABELS)
    assert parsed.status == "unparseable"


def test_answer_tag_wins_over_the_reasoning():
    text = "<think>Melanoma was my first thought, then I saw milia-like cysts.</think><answer>SK</answer>"
    parsed = parse_report(text, LABELS)
    assert (parsed.status, parsed.pred, parsed.source) == (
        "ok",
        "seborrheic_keratosis",
        "answer tag",
    )
    assert parsed.differential == ["melanoma"]


def test_json_answer_gives_diagnosis_and_differential():
    parsed = parse_report('{"final_diagnosis": "BCC", "differential": ["SCC", "melanoma"]}', LABELS)
    assert (parsed.pred, parsed.differential, parsed.source) == ("bcc", ["scc", "melanoma"], "json")


def test_diagnosis_outside_the_label_set_is_unparseable():
    parsed = parse_report("Final diagnosis: actinic keratosis", ["nevus", "melanoma"])
    assert parsed.status == "unparseable" and "not among the labels" in parsed.reason


def test_undecided_answer_is_unparseable_with_reason():
    parsed = parse_report("Final diagnosis: melanoma or nevus", LABELS)
    assert parsed.status == "unparseable" and parsed.reason.startswith(
        "undecided between melanoma or nevus"
    )


@pytest.mark.parametrize(("text", "expected"), [
    ("Final diagnosis: actinic keratosis", "Solar or actinic keratosis"),
    ("Final diagnosis: solar keratosis", "Solar or actinic keratosis"),
    ("Final diagnosis: melanoma", "Melanoma Invasive"),
    ("Final diagnosis: squamous cell carcinoma", "Squamous cell carcinoma, NOS"),
])
def test_isic_diagnosis_3_wordings_are_matched_by_concept(text, expected):
    labels = ["Solar or actinic keratosis", "Melanoma Invasive", "Nevus", "Squamous cell carcinoma, NOS"]
    parsed = parse_report(text, labels)
    assert (parsed.status, parsed.pred) == ("ok", expected), parsed.reason


def test_custom_labels_are_matched_literally():
    parsed = parse_report("Final diagnosis: Lichen planus", ["lichen_planus", "psoriasis"])
    assert parsed.pred == "lichen_planus"
