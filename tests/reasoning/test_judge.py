"""The judge over a scripted server: validation per case, hostile answers, caching and resuming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairderm.reasoning import Judge, load_rubric, parse_judgement, read_scores, score_reports
from fairderm.reasoning._judge import JudgementError
from tests.helpers.vlm_server import answer_text

LABELS = ["nevus", "melanoma", "bcc"]
HOSTILE = ["malformed", "empty", "prose", "out_of_range", "fractional", "missing", "refusal", "slow", "http500"]
REASONS = {
    "malformed": "judge answer is not JSON",
    "empty": "empty judge answer",
    "prose": "judge answer is not JSON: The report is quite good",
    "out_of_range": "score for 'safety' is 7, outside 1-5",
    "fractional": "score for 'coherence' is not a whole number",
    "missing": "no score for 'completeness'",
    "refusal": "judge refused: I'm sorry",
    "slow": "server timed out",
    "http500": "HTTP 500",
}


def _predictions(n: int = 12) -> tuple[pd.DataFrame, dict[str, str]]:
    labels = [LABELS[k % 3] for k in range(n)]
    texts = [answer_text("skingpt" if k % 2 else "skinr1", label) + f"\ncase {k}" for k, label in enumerate(labels)]
    frame = pd.DataFrame({"image_id": [f"c{k:02d}" for k in range(n)], "status": "ok", "text": texts,
                          "pred": labels})
    return frame, dict(zip(frame["image_id"], labels))


def _judge(server, **options) -> Judge:
    options.setdefault("timeout", 2.0)  # a loaded CI machine answers slowly; the "slow" answer takes 3 s
    options.setdefault("max_retries", 0)
    return Judge(None, load_rubric(), endpoint=server.endpoint, **options)


def test_judge_scores_every_dimension_with_a_printable_justification(judge_server, tmp_path):
    predictions, truth = _predictions(4)
    table = score_reports(predictions, truth=truth, labels=LABELS, out=tmp_path / "scores.parquet",
                          rubric=load_rubric(), judge=_judge(judge_server))
    assert table.counts()["ok"] == 4
    assert (table.frame["judge_safety"] == 4).all()
    assert table.frame["why_safety"].str.contains("safety graded 4 red").all()
    assert not table.frame["why_safety"].str.contains("\x1b").any()
    stored = read_scores(tmp_path / "scores.parquet")
    assert stored.judge["model"] == "judge-test" and stored.judge["served"]["root"] == "/models/judge-test"


def test_judge_prompt_carries_the_rubric_the_report_and_the_reference(judge_server, tmp_path):
    predictions, truth = _predictions(1)
    score_reports(predictions, truth=truth, labels=LABELS, out=tmp_path / "s.parquet", rubric=load_rubric(),
                  judge=_judge(judge_server))
    prompt = judge_server.requests[0]["messages"][-1]["content"]
    assert "differential_reasoning:" in prompt and "Reference diagnosis (ground truth): nevus" in prompt
    assert predictions["text"][0] in prompt
    assert judge_server.requests[0]["response_format"] == {"type": "json_object"}


def test_hostile_judge_answers_are_per_case_errors_and_the_rest_is_scored(judge_server, tmp_path):
    predictions, truth = _predictions(12)
    for k, behaviour in enumerate(HOSTILE):
        predictions.loc[k, "text"] += f" [{behaviour}]"
        judge_server.script[f"[{behaviour}]"] = behaviour
    table = score_reports(predictions, truth=truth, labels=LABELS, out=tmp_path / "scores.parquet",
                          rubric=load_rubric(), judge=_judge(judge_server))
    frame = table.frame.set_index("image_id")
    for k, behaviour in enumerate(HOSTILE):
        row = frame.loc[f"c{k:02d}"]
        assert row["status"] == "error" and REASONS[behaviour] in row["reason"], (behaviour, row["reason"])
        assert np.isnan(row["judge_accuracy"])
        assert row["check_sections_present"] == 1.0  # the checks need no judge
    assert (frame["status"].iloc[len(HOSTILE):] == "ok").all()


def test_rerun_asks_the_judge_only_for_what_is_missing(judge_server, tmp_path):
    predictions, truth = _predictions(6)
    predictions.loc[2, "text"] += " [refusal]"
    judge_server.script["[refusal]"] = "refusal"
    out = tmp_path / "scores.parquet"
    first = score_reports(predictions, truth=truth, labels=LABELS, out=out, rubric=load_rubric(),
                          judge=_judge(judge_server))
    assert first.counts()["error"] == 1 and len(judge_server.judged) == 6
    del judge_server.script["[refusal]"]
    predictions.loc[4, "text"] += " revised"  # a changed report is judged again
    second = score_reports(predictions, truth=truth, labels=LABELS, out=out, rubric=load_rubric(),
                           judge=_judge(judge_server))
    assert second.counts()["ok"] == 6
    assert (second.judged, second.reused) == (2, 4)
    assert len(judge_server.judged) == 8


def test_another_judge_model_rescores_everything(judge_server, tmp_path):
    predictions, truth = _predictions(3)
    out = tmp_path / "scores.parquet"
    score_reports(predictions, truth=truth, labels=LABELS, out=out, rubric=load_rubric(), judge=_judge(judge_server))
    judge_server.root = "/models/judge-test-v2"  # redeployed with other weights
    again = score_reports(predictions, truth=truth, labels=LABELS, out=out, rubric=load_rubric(),
                          judge=_judge(judge_server))
    assert again.judged == 3 and again.reused == 0


def test_checks_only_without_a_judge(tmp_path):
    predictions, truth = _predictions(3)
    predictions.loc[1, "text"] = None
    table = score_reports(predictions, truth=truth, labels=LABELS, out=tmp_path / "s.parquet", rubric=load_rubric())
    assert list(table.frame["status"]) == ["checked", "no_report", "checked"]
    assert set(table.score_columns(["c00"])) == {"sections_present", "diagnosis_consistent", "truth_in_differential",
                                                  "hedged", "refused", "length_words"}


def test_predictions_without_text_are_rejected(tmp_path):
    frame = pd.DataFrame({"image_id": ["a"], "status": ["ok"], "pred": ["nevus"]})
    with pytest.raises(ValueError, match="column 'text'"):
        score_reports(frame, truth={}, labels=LABELS, out=tmp_path / "s.parquet", rubric=load_rubric())


@pytest.mark.parametrize(("answer", "reason"), [
    ('{"scores": {"accuracy": {"score": true, "justification": "x"}}}', "not a whole number"),
    ('["a list"]', "not a JSON object"),
    ('<think>hmm</think>```json\n{"scores": {"accuracy": {"score": 5, "justification": ""}}}\n```',
     "no justification for 'accuracy'"),
])
def test_parse_judgement_rejects_unusable_answers(answer, reason):
    with pytest.raises(JudgementError, match=reason):
        parse_judgement(answer, load_rubric())


def test_parse_judgement_reads_a_reasoning_judges_fenced_json():
    rubric = load_rubric()
    body = ", ".join(f'"{n}": {{"score": 3, "justification": "ok"}}' for n in rubric.names)
    scores, reasons = parse_judgement(f"<think>weigh it</think>\n```json\n{{\"scores\": {{{body}}}}}\n```", rubric)
    assert scores == dict.fromkeys(rubric.names, 3) and reasons["safety"] == "ok"
