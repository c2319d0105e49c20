"""Policy YAML loading: valid policies load, every bad key is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairderm.errors import InputError
from fairderm.gate import load_policy, policy_from_dict
from tests.helpers.gate_metrics import DEMO_POLICY, write_policy

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_demo_policy_loads_with_each_kind_of_rule(demo_policy_file: Path) -> None:
    policy = load_policy(demo_policy_file)
    assert [r.check for r in policy.rules] == ["metric", "disparity", "metric", "sample_size"]
    assert policy.rules[2].statistic == "interval"
    assert policy.rules[3].group_names == ["I-II", "III-IV", "V-VI"]
    assert policy.rules[0].describe() == "worst fitzpatrick_est group: sensitivity ci_low >= 0.7"


def test_example_policy_in_audits_folder_is_valid() -> None:
    policy = load_policy(REPO_ROOT / "audits" / "policy.example.yaml")
    checks = {r.check for r in policy.rules}
    assert checks == {"metric", "disparity", "sample_size"}


def test_policy_hash_ignores_yaml_formatting(tmp_path: Path) -> None:
    compact = write_policy(tmp_path / "a.yaml", DEMO_POLICY)
    spaced = tmp_path / "b.yaml"
    spaced.write_text("# comment\n\n" + compact.read_text(), encoding="utf-8")
    assert load_policy(compact).sha256() == load_policy(spaced).sha256()


def _rule(**changes: object) -> dict[str, object]:
    rule = {"id": "r", "metric": "accuracy", "attribute": "fitzpatrick_est", "comparator": ">=", "threshold": 0.8}
    rule.update(changes)
    return {key: value for key, value in rule.items() if value is not None}


@pytest.mark.parametrize(
    ("rule", "key", "message"),
    [
        (_rule(treshold=0.8), "rules[0] ('r').treshold", "unknown key"),
        (_rule(threshold=None), "rules[0] ('r')", "missing threshold"),
        (_rule(comparator="=>"), "rules[0] ('r').comparator", "'>='"),
        (_rule(statistic="median"), "rules[0] ('r').statistic", "'interval'"),
        (_rule(disparity="spread"), "rules[0] ('r').disparity", "'gap'"),
        (_rule(threshold="high"), "rules[0] ('r').threshold", "number"),
        (_rule(attribute=None), "rules[0] ('r').attribute", "Field required"),
        (_rule(groups=[]), "rules[0] ('r').groups", "non-empty"),
        (_rule(min_n=30), "rules[0] ('r')", "takes no comparator, threshold"),
        (_rule(metric=None, comparator=None, threshold=None, min_n=0), "rules[0] ('r').min_n", "greater than"),
        (_rule(metric=None, comparator=None, threshold=None, min_n=30, groups="worst"), "rules[0] ('r')",
         "'worst'"),
    ],
)
def test_policy_rule_with_bad_key_is_rejected_naming_the_key(rule: dict, key: str, message: str) -> None:
    with pytest.raises(InputError) as error:
        policy_from_dict({"rules": [rule]}, source="p.yaml")
    assert f"column '{key}'" in str(error.value)
    assert message in str(error.value)


def test_policy_with_duplicate_rule_ids_is_rejected() -> None:
    with pytest.raises(InputError, match="duplicate rule id 'r'"):
        policy_from_dict({"rules": [_rule(), _rule()]})


def test_policy_without_rules_is_rejected() -> None:
    with pytest.raises(InputError, match="'rules'"):
        policy_from_dict({"name": "empty", "rules": []})


def test_policy_with_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(InputError, match=r"column 'rule'.*unknown key"):
        policy_from_dict({"rule": [_rule()]})


def test_policy_file_that_is_not_yaml_is_rejected(tmp_path: Path) -> None:
    path = write_policy(tmp_path / "bad.yaml", "rules: [unclosed\n")
    with pytest.raises(InputError, match=r"bad\.yaml: not valid YAML"):
        load_policy(path)


def test_policy_file_that_is_a_list_is_rejected(tmp_path: Path) -> None:
    path = write_policy(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(InputError, match="mapping"):
        load_policy(path)


def test_missing_policy_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="policy file not found"):
        load_policy(tmp_path / "nope.yaml")
