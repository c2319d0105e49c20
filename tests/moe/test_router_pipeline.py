"""train_router end to end on planted features: artefacts, evaluation shape, reload, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fairderm.errors import InputError
from fairderm.moe import load_router, router_output, train_router
from fairderm.tone import read_tone, tone_probabilities
from tests.helpers.planted_router import GROUP_NAMES, QUICK, make_planted_cohort

METHODS = {"erm", "moe", "moe_parity", "expgrad", "threshold", "reweight"}
TRIPLE = {"estimate", "ci_low", "ci_high"}


def test_router_folder_holds_every_artefact(planted_router) -> None:
    names = {p.relative_to(planted_router.out).as_posix() for p in planted_router.out.rglob("*") if p.is_file()}
    assert {
        "model.safetensors", "config.json", "evaluation.json", "constraints.json", "training_log.jsonl",
        "frontier.csv", "frontier.html", "predictions.parquet",
        "models/erm.safetensors", "models/moe.safetensors", "models/reweight.safetensors",
    } <= names


def test_evaluation_json_has_the_issue_shape_for_all_six_methods(planted_router) -> None:
    evaluation = json.loads((planted_router.out / "evaluation.json").read_text())
    assert set(evaluation["methods"]) == METHODS
    for record in evaluation["methods"].values():
        for key in ("accuracy", "gap", "gap_diff_vs_erm"):
            assert set(record[key]) >= TRIPLE
        assert set(record["groups"]) == set(GROUP_NAMES)
        for group in record["groups"].values():
            assert set(group) >= TRIPLE
            assert group["ci_low"] - 1e-9 <= group["estimate"] <= group["ci_high"] + 1e-9
    assert evaluation["methods"]["erm"]["gap_diff_vs_erm"] == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert evaluation["verdict"].startswith("moe_parity vs ERM")


def test_gap_is_best_minus_worst_ranked_group(planted_router) -> None:
    evaluation = planted_router.evaluation
    ranked = evaluation["config"]["gap_groups"]
    unranked = evaluation["config"]["unranked_groups"]
    assert set(ranked) | set(unranked) == set(GROUP_NAMES)  # cases without a group are not a tone group
    for record in evaluation["methods"].values():
        estimates = [record["groups"][g]["estimate"] for g in ranked]
        assert record["gap"]["estimate"] == pytest.approx(max(estimates) - min(estimates))
    for group, n in unranked.items():
        assert n < evaluation["config"]["min_group_size"]
        assert group in evaluation["verdict"]


def test_constraint_report_gives_value_epsilon_multiplier_per_group(planted_router) -> None:
    records = planted_router.evaluation["constraints"]["records"]
    assert [r["group"] for r in records] == list(GROUP_NAMES)
    for record in records:
        assert {"value", "epsilon", "multiplier", "satisfied", "n_val"} <= set(record)
        assert record["epsilon"] == 0.02
        assert record["multiplier"] >= 0
        assert record["satisfied"] == (record["value"] <= record["epsilon"] + 1e-12)
    on_disk = json.loads((planted_router.out / "constraints.json").read_text())
    assert on_disk["records"] == records


def test_training_log_has_multipliers_for_every_parity_step(planted_router) -> None:
    lines = (planted_router.out / "training_log.jsonl").read_text().splitlines()
    parity = [json.loads(line) for line in lines if json.loads(line)["method"] == "moe_parity"]
    assert parity and [r["step"] for r in parity] == list(range(len(parity)))
    assert all(set(r["multipliers"]) == set(GROUP_NAMES) for r in parity)


def test_frontier_has_the_baselines_and_the_swept_epsilon(planted_router) -> None:
    frontier = planted_router.frontier
    parity = frontier[frontier["method"] == "moe_parity"]
    assert sorted(parity["epsilon"]) == [0.02, 0.05]
    assert set(frontier["method"]) >= METHODS
    assert "plotly" in (planted_router.out / "frontier.html").read_text().lower()


@pytest.mark.parametrize("method", [None, "erm", "moe"])
def test_saved_router_reproduces_its_test_predictions(planted_router, planted_cohort, method) -> None:
    model, config = load_router(planted_router.out, method=method)
    stored = pd.read_parquet(planted_router.out / "predictions.parquet")
    stored = stored[(stored["method"] == (method or "moe_parity")) & (stored["split"] == "test")]
    rows = planted_cohort.manifest["image_id"].isin(stored["image_id"]).to_numpy()
    tone = tone_probabilities(
        read_tone(planted_cohort.tone), cut_points=tuple(config["tone_input"]["ita_cut_points"])
    )
    with torch.no_grad():
        features = torch.as_tensor(planted_cohort.features[rows])
        logits = router_output(model, features, torch.as_tensor(tone[rows])).logits
    probs = torch.softmax(logits, dim=-1).numpy()
    expected = stored.set_index("image_id").loc[planted_cohort.manifest["image_id"][rows]]
    assert np.allclose(probs, expected[[f"prob_{c}" for c in config["classes"]]].to_numpy(), atol=1e-5)


@pytest.mark.slow
def test_same_seed_gives_the_same_router_and_evaluation(planted_router, planted_cohort, tmp_path) -> None:
    again = train_router(
        planted_cohort.root, tmp_path / "again", tone=planted_cohort.tone, features=planted_cohort.features,
        sweep=[0.05], **QUICK,
    )
    assert again.evaluation["methods"] == planted_router.evaluation["methods"]
    assert again.evaluation["constraints"] == planted_router.evaluation["constraints"]
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        planted_router.out / "model.safetensors"
    ).read_bytes()


def _train(cohort, out, **options):
    options = {"tone": cohort.tone, "features": cohort.features, **QUICK, **options}
    return train_router(cohort.root, out, **options)


def test_negative_epsilon_is_rejected(planted_cohort, tmp_path) -> None:
    with pytest.raises(InputError, match="epsilon must be a number >= 0"):
        _train(planted_cohort, tmp_path / "r", epsilon=-0.01)
    assert not (tmp_path / "r").exists()


def test_negative_epsilon_in_the_sweep_is_rejected(planted_cohort, tmp_path) -> None:
    with pytest.raises(InputError, match="sweep"):
        _train(planted_cohort, tmp_path / "r", sweep=[0.01, -0.5])


def test_group_without_training_cases_is_rejected(tmp_path) -> None:
    cohort = make_planted_cohort(tmp_path, n=200, dark_split="test")
    with pytest.raises(InputError, match=r"group 'V-VI' has no training cases"):
        _train(cohort, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_single_tone_group_is_rejected(tmp_path) -> None:
    cohort = make_planted_cohort(tmp_path, n=120, weights=(1.0, 0.0, 0.0))
    with pytest.raises(InputError, match=r"at least two groups.*only 'I-II'"):
        _train(cohort, tmp_path / "r")


def test_restricting_to_a_single_group_is_rejected(planted_cohort, tmp_path) -> None:
    with pytest.raises(InputError, match="at least two groups"):
        _train(planted_cohort, tmp_path / "r", groups=["V-VI"])


def test_unknown_group_is_rejected(planted_cohort, tmp_path) -> None:
    with pytest.raises(InputError, match="'VII' does not occur"):
        _train(planted_cohort, tmp_path / "r", groups=["I-II", "VII"])


def test_tone_file_not_matching_the_cohort_is_rejected(planted_cohort, tmp_path) -> None:
    other = make_planted_cohort(tmp_path, n=150, seed=3)
    with pytest.raises(InputError, match="tone"):
        train_router(planted_cohort.root, tmp_path / "r", tone=other.tone, features=planted_cohort.features, **QUICK)


def test_tone_table_missing_a_cohort_image_is_rejected(planted_cohort, tmp_path) -> None:
    tone = read_tone(planted_cohort.tone).iloc[1:]
    path = tmp_path / "short.parquet"
    tone.to_parquet(path)
    with pytest.raises(InputError, match="case0000"):
        train_router(planted_cohort.root, tmp_path / "r", tone=path, features=planted_cohort.features, **QUICK)


def test_features_not_matching_the_cohort_are_rejected(planted_cohort, tmp_path) -> None:
    with pytest.raises(InputError, match="features have 10 rows"):
        _train(planted_cohort, tmp_path / "r", features=planted_cohort.features[:10])


def test_every_torch_method_is_temperature_scaled_on_validation(planted_router) -> None:
    evaluation = json.loads((planted_router.out / "evaluation.json").read_text())
    calibration = evaluation["calibration"]
    assert set(calibration) == {"erm", "reweight", "moe", "moe_parity"}
    for name, record in calibration.items():
        assert record["val_nll_after"] <= record["val_nll_before"] + 1e-9, name
        model, _ = load_router(planted_router.out, method=None if name == "moe_parity" else name)
        assert float(model.temperature) == pytest.approx(record["temperature"], rel=1e-5)
        if name in ("moe", "moe_parity"):  # the routers see tone: calibrated within tone groups too
            factors = record["within_tone"]["temperature_factor"]
            assert list(factors) == ["I", "II", "III", "IV", "V", "VI"]
            assert np.exp(model.tone_log_temperature.numpy()) == pytest.approx(list(factors.values()), rel=1e-4)
        else:
            assert "within_tone" not in record


def test_router_saved_before_calibration_loads_uncalibrated(planted_router, tmp_path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    old = tmp_path / "old-router"
    shutil.copytree(planted_router.out, old)
    weights = old / "model.safetensors"
    state = {k: v for k, v in load_file(str(weights)).items() if k not in ("temperature", "tone_log_temperature")}
    save_file(state, str(weights))
    model, _ = load_router(old)
    assert float(model.temperature) == 1.0
    assert (model.tone_log_temperature == 0).all()


def test_views_per_case_bring_each_group_towards_the_largest() -> None:
    from fairderm.moe._data import balanced_view_counts

    groups = np.repeat([0, 1, 2, -1], [540, 270, 90, 30])
    assert balanced_view_counts(groups, 3, 7).tolist() == [0, 1, 5]
    assert balanced_view_counts(groups, 3, 2).tolist() == [0, 1, 2]  # capped
    assert balanced_view_counts(groups, 3, 0).tolist() == [0, 0, 0]
    assert balanced_view_counts(np.repeat([0, 2], [500, 40]), 3, 7).tolist() == [0, 0, 7]  # absent group: none
    assert balanced_view_counts(np.repeat([0, 1], [100, 100]), 2, 7).tolist() == [0, 0]


@pytest.mark.parametrize("views", [-1, 8])
def test_views_outside_0_to_7_are_rejected(planted_cohort, tmp_path, views) -> None:
    with pytest.raises(InputError, match="views must be between 0 and 7"):
        _train(planted_cohort, tmp_path / "r", views=views)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("weights", ["../erm.safetensors", "ABSOLUTE", ".erm.safetensors"])
def test_router_config_naming_weights_outside_its_folder_is_refused(planted_router, tmp_path, weights) -> None:
    import shutil

    copy = tmp_path / "router"
    shutil.copytree(planted_router.out, copy)
    config = json.loads((copy / "config.json").read_text())
    shutil.copy(copy / config["models"]["erm"]["weights"], copy / ".erm.safetensors")
    shutil.copy(copy / config["models"]["erm"]["weights"], tmp_path / "erm.safetensors")
    config["models"]["erm"]["weights"] = str(tmp_path / "erm.safetensors") if weights == "ABSOLUTE" else weights
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"config\.json: key 'models\.erm\.weights': "):
        load_router(copy, method="erm")


def test_manifest_split_without_val_gets_a_validation_split_from_train_and_says_so(tmp_path) -> None:
    cohort = make_planted_cohort(tmp_path, n=300, splits=("train", "test"))
    run = train_router(cohort.root, tmp_path / "r", tone=cohort.tone, features=cohort.features, **QUICK)
    dataset = run.evaluation["dataset"]
    assert dataset["split_source"] == "manifest+val"
    counts = dataset["group_counts"]
    assert all(c["val"] > 0 for g, c in counts.items() if g != "(none)")
    n_test = sum(c["test"] for c in counts.values())
    assert n_test == int((cohort.manifest["split"] == "test").sum())
    assert any(note.startswith("split: the manifest's split has no val") for note in run.notes)
    assert "split: the manifest's split has no val" in run.summary()


def test_baseline_fallbacks_are_counted_per_method(planted_router) -> None:
    baselines = planted_router.evaluation["baselines"]
    assert set(baselines) == {"expgrad", "threshold"}
    for record in baselines.values():
        assert record["fits"] == 1 and record["failed"] == len(record["fallback_classes"])


def _expgrad_problem(n: int, d: int, noise: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x[:, 0] + noise * rng.normal(size=n) > 0).astype(int)
    groups = rng.choice(np.array(["I-II", "III-IV", "V-VI"], dtype=object), n)
    return x, y, groups, rng.normal(size=(40, d))


@pytest.mark.parametrize("constraint", ["loss", "eo"])
def test_expgrad_stops_at_fairlearns_own_threshold_where_its_first_classifier_errs(constraint) -> None:
    pytest.importorskip("fairlearn")
    from fairderm.moe._baselines import exponentiated_gradient

    x, y, groups, x_eval = _expgrad_problem(200, 8, 0.8)
    options = {"n_classes": 2, "constraint": constraint, "epsilon": 0.02, "fallback": np.full((40, 2), 0.5),
               "n_components": 8}
    ours = exponentiated_gradient(x, y, groups, x_eval, **options)
    theirs = exponentiated_gradient(x, y, groups, x_eval, **options, nu_floor=False)  # fairlearn's own nu
    # the same run, iteration for iteration: the threshold computed here is fairlearn's default
    np.testing.assert_array_equal(ours.probs, theirs.probs)
    assert ours.iterations == theirs.iterations and ours.iterations[1] < 50


def test_expgrad_on_a_training_split_its_learner_fits_perfectly_stops_at_the_floor() -> None:
    pytest.importorskip("fairlearn")
    from sklearn.linear_model import LogisticRegression

    from fairderm.moe._baselines import NU_FLOOR, convergence_threshold, exponentiated_gradient

    # a first feature that separates the labels by a wide margin: the logistic regression makes no training
    # error, fairlearn's default nu is 0, and fairlearn alone would run all 50 iterations at a gap of 0
    x, y, groups, x_eval = _expgrad_problem(40, 20, 0.0)
    x[:, 0] = np.where(y == 1, 3.0, -3.0)
    assert convergence_threshold(LogisticRegression(C=0.01, max_iter=300, random_state=0), x, y) == NU_FLOOR
    floored = exponentiated_gradient(x, y, groups, x_eval, n_classes=2, constraint="loss", epsilon=0.02,
                                     fallback=np.full((40, 2), 0.5))
    assert floored.iterations[1] < 10
    assert np.allclose(floored.probs.sum(axis=1), 1.0) and ((floored.probs >= 0) & (floored.probs <= 1)).all()
    assert floored.to_dict(["benign", "malignant"])["iterations"] == {"malignant": floored.iterations[1]}


def test_threshold_fits_on_grouped_cases_and_leaves_the_ungrouped_their_erm_score() -> None:
    pytest.importorskip("fairlearn")
    from fairderm.moe._baselines import threshold_optimizer

    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    probs = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, n), 0.01, 0.99)
    probs = np.column_stack([1 - probs, probs])
    groups = np.where(np.arange(n) % 2 == 0, "I-II", "V-VI").astype(object)
    outside = np.arange(n) < 6
    groups[outside] = "(none)"
    y[outside] = 1  # a handful without a tone estimate, all of one outcome: fairlearn refuses such a group
    result = threshold_optimizer(probs, y, groups, probs, groups, n_classes=2, seed=0)
    assert result.fallback_classes == {}
    assert np.allclose(result.probs[outside], probs[outside])
    assert not np.allclose(result.probs[~outside], probs[~outside])
