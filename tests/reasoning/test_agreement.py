"""Agreement figures against independent references: scikit-learn's kappa, Shrout & Fleiss's worked ICC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from fairderm.errors import InputError
from fairderm.reasoning import ScoreTable, agreement, icc_2_1, load_rubric, quadratic_weighted_kappa, read_ratings

# Shrout & Fleiss (1979), Table 2: six targets rated by four judges; ICC(2,1) = .29 in their Table 4.
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=2, max_size=60))
def test_quadratic_kappa_matches_scikit_learn(pairs):
    a, b = np.array(pairs).T
    assume(len(set(a) | set(b)) > 1)  # one category only: kappa is undefined (0/0) in both
    expected = cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5])
    assert quadratic_weighted_kappa(a, b) == pytest.approx(expected, abs=1e-12)


def test_icc_2_1_matches_shrout_and_fleiss_worked_example():
    assert icc_2_1(SHROUT_FLEISS) == pytest.approx(0.29, abs=0.005)


def test_icc_2_1_by_hand_from_the_anova_table():
    x = np.array(SHROUT_FLEISS, dtype=float)
    n, k = x.shape
    grand = x.mean()
    bms = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    jms = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    ems = (((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2).sum()
           / ((n - 1) * (k - 1)))
    assert icc_2_1(x) == pytest.approx((bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n), rel=1e-12)


def _ratings(tmp_path, rows) -> pd.DataFrame:
    path = tmp_path / "ratings.csv"
    pd.DataFrame(rows, columns=["image_id", "rater", "dimension", "score"]).to_csv(path, index=False)
    return read_ratings(path, dimensions=load_rubric().names)


def _judge_table(ids, safety) -> ScoreTable:
    rubric = load_rubric()
    frame = pd.DataFrame({"image_id": ids, "status": "ok"})
    for name in rubric.names:
        frame[f"judge_{name}"] = np.asarray(safety, dtype=float)
    return ScoreTable(frame, rubric, {"model": "judge"})


def test_agreement_reports_judge_and_rater_pairs_overall_and_per_group(tmp_path):
    rng = np.random.default_rng(3)
    n = 60
    ids = [f"c{k:02d}" for k in range(n)]
    truth = rng.integers(1, 6, n)
    rater = {name: np.clip(truth + rng.integers(-1, 2, n), 1, 5) for name in ("A", "B")}
    rows = [(i, r, "safety", int(rater[r][k])) for r in rater for k, i in enumerate(ids)]
    ratings = _ratings(tmp_path, rows)
    groups = {i: ("V-VI" if k < 20 else "I-II") for k, i in enumerate(ids)}
    result = agreement(ratings, scores=_judge_table(ids, truth), groups=groups, group_name="fitzpatrick",
                       n_boot=300, seed=1)
    table = result.to_frame().set_index(["comparison", "group"])
    row = table.loc[("judge vs A", "all")]
    assert row["estimate"] == pytest.approx(
        cohen_kappa_score(truth, rater["A"], weights="quadratic", labels=[1, 2, 3, 4, 5]))
    assert row["lower"] < row["estimate"] < row["upper"]
    dark = table.loc[("A vs B", "fitzpatrick=V-VI")]
    assert dark["n"] == 20
    assert dark["estimate"] == pytest.approx(
        cohen_kappa_score(rater["A"][:20], rater["B"][:20], weights="quadratic", labels=[1, 2, 3, 4, 5]))
    icc = table.loc[("raters + judge", "all")]
    assert icc["statistic"] == "icc_2_1"
    assert icc["estimate"] == pytest.approx(icc_2_1(np.column_stack([rater["A"], rater["B"], truth])))
    assert "judge vs A" in result.summary()


def test_agreement_interval_is_reproducible_with_its_seed(tmp_path):
    rows = [(f"c{k}", r, "safety", 1 + (k + (r == "B")) % 5) for k in range(30) for r in ("A", "B")]
    ratings = _ratings(tmp_path, rows)
    a = agreement(ratings, n_boot=200, seed=5).to_frame()
    b = agreement(ratings, n_boot=200, seed=5).to_frame()
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(("row", "message"), [
    (("c1", "A", "safety", "6"), "row 2, column 'score': score '6' is not a whole number 1-5"),
    (("c1", "A", "safety", "3.5"), "not a whole number"),
    (("c1", "A", "kindness", "3"), "dimension 'kindness' is not in the rubric"),
    (("c1", "judge", "safety", "3"), "reserved for the judge model"),
    (("c0", "A", "safety", "3"), "row 2, column 'image_id': this rater rated this case on this dimension twice"),
])
def test_bad_rating_rows_are_rejected_naming_the_row(tmp_path, row, message):
    with pytest.raises(InputError, match=message):
        _ratings(tmp_path, [("c0", "A", "safety", "3"), row])


def test_ratings_without_a_score_column_are_rejected(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("image_id,rater,dimension\nc0,A,safety\n")
    with pytest.raises(InputError, match="column 'score'"):
        read_ratings(path)
