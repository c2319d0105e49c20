"""The audit spec: defaults, shorthands, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairderm.audit import AuditSpec, dump_spec, load_spec, parse_spec
from fairderm.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def _error(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_defaults_are_filled_and_paths_resolve_against_the_spec_file(write_spec, tmp_path):
    loaded = load_spec(write_spec("mine", tone=None, metrics=None, bootstrap=None))
    spec = loaded.spec
    assert loaded.name == "mine"
    assert spec.bootstrap.n_boot == 2000 and spec.bootstrap.ci == "bca" and spec.bootstrap.seed == 0
    assert spec.bootstrap.cluster == "auto"
    assert spec.tone.source == "estimate" and spec.stratum_attributes() == ["fitzpatrick_est"]
    assert "sensitivity" in spec.metrics.names and spec.metrics.task == "auto"
    assert spec.strata.min_n == 30
    assert loaded.cohort_path == (tmp_path / "cohort").resolve()
    assert loaded.runs_dir == tmp_path / "audits" / "mine" / "runs"
    assert loaded.cache_dir == tmp_path / "audits" / "mine" / "cache"


def test_cohort_and_metrics_shorthands_are_accepted(write_spec):
    path = write_spec(cohort="../cohort", metrics=["accuracy"])
    spec = load_spec(path).spec
    assert spec.cohort.path == "../cohort" and spec.cohort.filter is None
    assert spec.metrics.names == ["accuracy"]


def test_dumped_spec_loads_back_equal(write_spec):
    spec = load_spec(write_spec()).spec
    again = parse_spec(yaml.safe_load(dump_spec(spec)), source="copy")
    assert again == spec


def test_unknown_key_is_rejected_naming_the_key_path(write_spec):
    message = _error(write_spec(bootstrap={"n_boots": 100}))
    assert "key 'bootstrap.n_boots': unknown key" in message


def test_unknown_top_level_key_is_rejected(write_spec):
    assert "key 'cohrt': unknown key" in _error(write_spec(cohrt="x"))


def test_bad_bootstrap_method_is_rejected(write_spec):
    message = _error(write_spec(bootstrap={"ci": "studentized"}))
    assert "key 'bootstrap.ci'" in message and "bca" in message


def test_too_few_bootstrap_replicates_are_rejected(write_spec):
    assert "key 'bootstrap.n_boot'" in _error(write_spec(bootstrap={"n_boot": 10}))


def test_a_trillion_bootstrap_replicates_are_refused_by_audit_with_one_line(write_spec, run_cli, tmp_path):
    result = run_cli("audit", write_spec(bootstrap={"n_boot": 1_000_000_000_000}))
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    assert "bootstrap.n_boot" in result.stderr and "1000000" in result.stderr
    assert not (tmp_path / "audits" / "tiny" / "runs").exists()


def test_missing_cohort_is_rejected(write_spec):
    message = _error(write_spec(cohort={"path": "../no-such-cohort"}))
    assert "key 'cohort.path': cohort folder not found" in message


def test_missing_policy_file_is_rejected(write_spec):
    assert "key 'policy': policy file not found" in _error(write_spec(policy="../nowhere.yaml"))


def test_missing_model_file_is_rejected(write_spec):
    message = _error(write_spec(model={"backend": "file", "model": "../missing.csv"}))
    assert "key 'model.model': model not found" in message


def test_unknown_backend_is_rejected(write_spec):
    assert "key 'model.backend'" in _error(write_spec(model={"backend": "keras", "model": "x"}))


def test_openai_backend_without_endpoint_is_rejected(write_spec):
    message = _error(write_spec(model={"backend": "openai", "model": "skingpt-r1"}))
    assert "key 'model'" in message and "endpoint" in message


def test_tone_column_source_without_column_is_rejected(write_spec):
    assert "needs 'column'" in _error(write_spec(tone={"source": "column", "column": None}))


def test_estimated_tone_strata_without_tone_estimation_are_rejected(write_spec):
    message = _error(write_spec(strata={"attributes": ["fitzpatrick_est"]}))
    assert "fitzpatrick_est" in message and "tone.source" in message


def test_intersection_of_one_attribute_is_rejected(write_spec):
    assert "key 'strata.intersections'" in _error(write_spec(strata={"intersections": [["sex"]]}))


def test_unknown_card_key_is_rejected(write_spec):
    assert "key 'card.intended_usage': unknown key" in _error(write_spec(card={"intended_usage": "x"}))


def test_invalid_yaml_is_rejected(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("cohort: [unclosed\n", encoding="utf-8")
    assert "invalid YAML" in _error(path)


def test_spec_that_is_not_a_mapping_is_rejected(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- cohort\n", encoding="utf-8")
    assert "mapping" in _error(path)


def test_missing_spec_file_is_rejected(tmp_path):
    assert "audit spec not found" in _error(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["demo.yaml", "example_own_model.yaml", "example_vlm.yaml"])
def test_shipped_specs_are_valid(name):
    raw = yaml.safe_load((REPO / "audits" / name).read_text(encoding="utf-8"))
    spec = parse_spec(raw, source=name)
    assert isinstance(spec, AuditSpec)


def test_example_policy_leaves_out_the_group_of_abstained_tone_estimates():
    """The audit names cases whose tone estimate abstained ``missing``: not a skin tone."""
    from fairderm.audit._evaluation import MISSING

    policy = yaml.safe_load((Path(__file__).resolve().parents[2] / "audits" / "policy.example.yaml").read_text())
    per_group = [rule for rule in policy["rules"] if rule.get("groups") in ("each", "worst") or "disparity" in rule]
    assert per_group and all(rule.get("exclude_groups") == [MISSING] for rule in per_group)


def test_example_policy_ships_inside_the_package():
    """The demo's default policy is package data, so an installed fairderm (a wheel) has it too."""
    import fairderm
    from fairderm.audit.demo import EXAMPLE_POLICY

    package = Path(fairderm.__file__).resolve().parent
    assert EXAMPLE_POLICY.parent == package / "audit"
    assert EXAMPLE_POLICY.read_text() == (package.parent / "audits" / "policy.example.yaml").read_text()


def _named(path: Path, name: str) -> Path:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({"name": name, **spec}), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "a\\b", "/abs", "x" * 101, ""])
def test_audit_name_with_path_traversal_is_rejected(write_spec, name):
    message = _error(_named(write_spec(), name))
    assert "key 'name'" in message and "not a safe name" in message


def test_audit_name_traversal_writes_nothing_outside(write_spec, tmp_path):
    from fairderm.audit import run_audit

    with pytest.raises(InputError, match="key 'name'"):
        run_audit(_named(write_spec(), "../../escaped"))
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("metric", ["acuracy", "sensitivity:psoriasis", "brier:melanoma"])
def test_unknown_metric_is_rejected_before_tone_runs(write_spec, monkeypatch, metric):
    from fairderm.audit import _stages, run_audit

    def no_stage(*args, **kwargs):
        raise AssertionError("a stage ran before the spec's metric names were checked")

    for stage in ("run_tone", "run_predictions", "run_metrics"):
        monkeypatch.setattr(_stages, stage, no_stage)
    path = write_spec(tone={"source": "estimate", "column": None}, metrics=["accuracy", metric])
    with pytest.raises(InputError, match=r"key 'metrics\.names'") as caught:
        run_audit(path)
    assert metric in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("backend", ["openai", "vllm"])
def test_probability_metric_on_a_label_backend_is_a_spec_error_naming_the_key(backend):
    model = {"backend": backend, "model": "m", "endpoint": "http://127.0.0.1:1/v1"}
    with pytest.raises(InputError) as caught:
        parse_spec({"cohort": "c", "model": model, "metrics": ["accuracy", "sensitivity", "auroc", "ece"]},
                   source="vlm.yaml")
    assert str(caught.value) == (f"vlm.yaml: key 'metrics[2]': 'auroc' needs probabilities; backend '{backend}' "
                                 "gives labels")
    with pytest.raises(InputError, match=r"key 'metrics\.names\[1\]': 'brier' needs probabilities"):
        parse_spec({"cohort": "c", "model": model, "metrics": {"names": ["accuracy", "brier"]}}, source="vlm.yaml")


def test_label_backend_default_metrics_leave_out_probability_metrics():
    model = {"backend": "openai", "model": "m", "endpoint": "http://127.0.0.1:1/v1"}
    spec = parse_spec({"cohort": "c", "model": model}, source="vlm.yaml")
    assert spec.metrics.names == ["accuracy", "balanced_accuracy", "sensitivity", "specificity"]
    assert parse_spec(yaml.safe_load(dump_spec(spec)), source="copy") == spec


def test_probability_metric_on_a_label_backend_stops_the_audit_before_any_stage(write_spec, run_cli, tmp_path):
    # nothing listens on port 1: a stage that ran would fail on the connection, not on the spec
    path = write_spec(model={"backend": "openai", "model": "m", "endpoint": "http://127.0.0.1:1/v1"},
                      metrics=["accuracy", "auroc"], tone={"source": "estimate"})
    result = run_cli("audit", path)
    assert result.exit_code == 3
    assert "key 'metrics[1]': 'auroc' needs probabilities; backend 'openai' gives labels" in result.stderr
    assert not (tmp_path / "audits" / "tiny").exists()


def test_example_vlm_spec_and_its_policy_ask_for_no_probability_metric(tmp_path):
    from fairderm.audit import LABEL_ONLY_BACKENDS
    from fairderm.gate import load_policy
    from fairderm.metrics import SCORE_METRICS

    raw = yaml.safe_load((REPO / "audits" / "example_vlm.yaml").read_text(encoding="utf-8"))
    spec = parse_spec(raw, source="example_vlm.yaml")
    assert spec.model.backend in LABEL_ONLY_BACKENDS
    policy = load_policy(REPO / "audits" / str(spec.policy))
    assert policy.rules and not [r.id for r in policy.rules if r.metric in SCORE_METRICS]


def test_policy_rule_on_a_probability_metric_with_a_label_backend_is_a_spec_error(write_spec, tmp_path):
    policy = yaml.safe_load((REPO / "audits" / "policy.example.yaml").read_text(encoding="utf-8"))
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    path = write_spec(model={"backend": "openai", "model": "m", "endpoint": "http://127.0.0.1:1/v1"},
                      metrics=["accuracy", "sensitivity"])
    assert ("key 'policy': rule 'calibration-each-group' checks 'ece', which needs probabilities; backend "
            "'openai' gives labels") in _error(path)


def test_unknown_key_close_to_a_known_one_gets_a_suggestion(write_spec):
    message = _error(write_spec(model={"model_architecture": "net.py:Net"}))
    assert "key 'model.model_architecture': unknown key (did you mean 'architecture'?)" in message
    assert "(did you mean 'bootstrap'?)" in _error(write_spec(bootstrp={"n_boot": 10}))
    assert "did you mean" not in _error(write_spec(zzz=1))


def test_unknown_card_key_in_a_spec_suggests_the_card_key(write_spec):
    message = _error(write_spec(card={"architecture": "ResNet-50"}))
    assert "key 'card.architecture': unknown key (did you mean 'model_architecture'?)" in message
