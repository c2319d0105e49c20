"""Hostile specs and run folders: a cohort filter is parsed, never run, by ``audit`` and by ``verify``."""

from __future__ import annotations

import pytest
import yaml

from fairderm._io import sha256_file
from fairderm.audit import run_audit, verify_run
from fairderm.errors import InputError

pytestmark = pytest.mark.usefixtures("fake_metrics")

# Under DataFrame.eval each of these ran code in fairderm's process ('@name' reaches module globals);
# '{marker}' is the file a payload creates if it runs.
FILTER_PAYLOADS = [
    "(split == 'test') & (@os.system('touch {marker}') == 0)",
    "split == 'test' and @os.system('touch {marker}') == 0",
    "(split == 'test') | (@Path('{marker}').touch() == 1)",
    "(@os.popen('touch {marker}').read() == '') & (split == 'test')",
]


@pytest.mark.parametrize("payload", FILTER_PAYLOADS)
def test_audit_with_code_in_cohort_filter_is_refused_without_running_it(write_spec, tmp_path, payload):
    marker = tmp_path / "ran"
    spec = write_spec(cohort={"filter": payload.format(marker=marker)})
    with pytest.raises(InputError, match=r"key 'cohort.filter': cannot evaluate .*'@' at character \d+"):
        run_audit(spec)
    assert not marker.exists()


def test_audit_command_with_code_in_cohort_filter_prints_one_error_line(write_spec, tmp_path, run_cli):
    marker = tmp_path / "ran"
    spec = write_spec(cohort={"filter": f"(split == 'test') & (@os.system('touch {marker}') == 0)"})
    result = run_cli("audit", spec)
    assert result.exit_code == 3  # the audit's ERROR code
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error:") and "key 'cohort.filter'" in first and "'@' at character" in first
    assert "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("payload", FILTER_PAYLOADS)
@pytest.mark.parametrize("check_inputs", [True, False])
def test_verify_parses_the_stored_filter_and_never_runs_it(write_spec, tmp_path, payload, check_inputs):
    run_dir = run_audit(write_spec()).run_dir
    marker = tmp_path / "ran"
    # a forger rewrites the run's spec.yaml and every digest of it, as anyone with the folder can
    spec_path = run_dir / "spec.yaml"
    old_digest = sha256_file(spec_path)
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    spec["cohort"]["filter"] = payload.format(marker=marker)
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    evidence = run_dir / "evidence.json"
    evidence.write_text(evidence.read_text(encoding="utf-8").replace(old_digest, sha256_file(spec_path)),
                        encoding="utf-8")
    result = verify_run(run_dir, check_inputs=check_inputs)
    assert not marker.exists()
    assert not result.ok
    refused = [c for c in result.problems if c.item == "metrics.json" and c.status == "error"]
    assert refused and "'@' at character" in refused[0].detail
