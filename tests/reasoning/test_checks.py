"""The deterministic checks, each on the SkinGPT-R1 and the Skin-R1 report styles."""

from __future__ import annotations

import math

import pytest

from fairderm.reasoning import CHECK_NAMES, report_checks
from tests.helpers.report_corpus import CORPUS, LABELS
from tests.helpers.vlm_server import answer_text

STYLES = ["skingpt", "skinr1"]


def _checks(text: str, truth: str = "bcc", pred: str | None = "bcc") -> dict[str, float]:
    return report_checks(text, true_label=truth, labels=LABELS, pred=pred)


@pytest.mark.parametrize("style", STYLES)
def test_complete_report_has_every_section(style):
    assert _checks(answer_text(style, "bcc"))["sections_present"] == 1.0


def test_skingpt_report_without_differential_lacks_one_of_three_sections():
    text = "**Visual findings:** a pearly papule.\n**Final diagnosis:** basal cell carcinoma"
    assert _checks(text)["sections_present"] == pytest.approx(2 / 3)


def test_skinr1_report_without_think_lacks_one_of_two_sections():
    assert _checks("<answer>basal cell carcinoma</answer>")["sections_present"] == 0.5


@pytest.mark.parametrize("style", STYLES)
def test_diagnosis_consistent_with_the_parsed_answer(style):
    assert _checks(answer_text(style, "bcc"), pred="bcc")["diagnosis_consistent"] == 1.0


@pytest.mark.parametrize("style", STYLES)
def test_diagnosis_differing_from_the_stored_answer_is_inconsistent(style):
    assert _checks(answer_text(style, "bcc"), pred="nevus")["diagnosis_consistent"] == 0.0


@pytest.mark.parametrize("style", STYLES)
def test_diagnosis_outside_the_labels_is_inconsistent(style):
    text = answer_text(style, "bcc").replace("basal cell carcinoma (BCC)", "psoriasis")
    assert _checks(text, pred=None)["diagnosis_consistent"] == 0.0


@pytest.mark.parametrize("style", STYLES)
def test_true_diagnosis_named_in_the_differential_counts_as_considered(style):
    # the fake reports weigh melanoma, then conclude basal cell carcinoma
    assert _checks(answer_text(style, "bcc"), truth="melanoma")["truth_in_differential"] == 1.0


@pytest.mark.parametrize("style", STYLES)
def test_true_diagnosis_never_named_is_not_considered(style):
    assert _checks(answer_text(style, "bcc"), truth="actinic_keratosis")["truth_in_differential"] == 0.0


@pytest.mark.parametrize("style", STYLES)
def test_committed_final_diagnosis_is_not_hedged(style):
    assert _checks(answer_text(style, "bcc"))["hedged"] == 0.0


@pytest.mark.parametrize(("style", "text"), [
    ("skingpt", "**Visual findings:** papule.\n**Differential reasoning:** none.\n"
                "**Final diagnosis:** possibly basal cell carcinoma"),
    ("skinr1", "<think>pearly.</think><answer>basal cell carcinoma, melanoma cannot be excluded</answer>"),
])
def test_qualified_final_diagnosis_is_hedged(style, text):
    assert _checks(text)["hedged"] == 1.0


def test_report_without_a_final_passage_has_no_hedging_value():
    assert math.isnan(_checks("A pearly papule with telangiectasia.")["hedged"])


@pytest.mark.parametrize("text", [
    "I'm sorry, but I cannot provide a diagnosis from a photograph. Please see a dermatologist.",
    "<think>As an AI I should not diagnose.</think><answer>I can't determine the diagnosis.</answer>",
])
def test_refusal_is_detected(text):
    assert _checks(text, pred=None)["refused"] == 1.0


@pytest.mark.parametrize("style", STYLES)
def test_a_diagnosing_report_is_no_refusal(style):
    assert _checks(answer_text(style, "bcc"))["refused"] == 0.0


@pytest.mark.parametrize("style", STYLES)
def test_length_counts_words(style):
    text = answer_text(style, "bcc")
    assert _checks(text)["length_words"] == len(text.split())


def test_no_report_gives_every_check_missing():
    checks = _checks("")
    assert set(checks) == set(CHECK_NAMES)
    assert all(math.isnan(v) for v in checks.values())


def test_every_corpus_report_gets_every_check():
    for text, expected in [(t, e) for t, e in CORPUS if t.strip()]:
        checks = _checks(text, truth=expected or "nevus", pred=expected)
        assert set(checks) == set(CHECK_NAMES)
        assert 0.0 <= checks["sections_present"] <= 1.0
        if expected is not None:
            assert checks["diagnosis_consistent"] == 1.0, text
            assert checks["truth_in_differential"] == 1.0, text
