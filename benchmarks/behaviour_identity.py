"""Show that a refactor left behaviour unchanged: same metrics, verdicts and card tables.

Two steps, one per checkout::

    # with the code before the change (e.g. a worktree at the old commit)
    python benchmarks/behaviour_identity.py snapshot --out /tmp/before
    # with the code after it
    python benchmarks/behaviour_identity.py snapshot --out /tmp/after
    python benchmarks/behaviour_identity.py compare /tmp/before/snapshot.json /tmp/after/snapshot.json

``snapshot`` runs a small demo (``fairderm demo --n 400 --n-boot 200``: the ERM and
router audits) and an audit of the real PAD-UFES-20 photographs
(``../shared/data``) with seeded predictions given to the ``file`` backend, then
records from every run folder:

- every number of metrics.json (groups, disparities, tests, calibration, case mix,
  power), keyed by table, attribute, group, metric and kind;
- every gate verdict (overall, and per rule with its basis and face-value verdict);
- every table of card.md, cell by cell.

``compare`` prints each difference and exits 1 when there is one. Numbers are
compared to 1e-12 (relative): bit-identical arithmetic is expected, but a JSON
round trip of a float is allowed its last digit. Run ids, timings, versions and
hashes are not part of a snapshot.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PAD = ROOT.parent / "shared" / "data" / "pad-ufes-20-subset"
TABLES = ("groups", "disparities", "tests", "calibration", "case_mix", "power")
KEY_COLUMNS = ("attribute", "group", "metric", "kind", "test", "reference", "bin", "term", "class")


def _fairderm(*args: str) -> None:
    """Run the command line of the checkout this script belongs to."""
    result = subprocess.run([sys.executable, "-m", "fairderm", *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode not in (0, 1, 2):  # gate verdicts are exit codes; 3 is an error
        sys.exit(f"fairderm {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")


def _pad_audit(out: Path) -> None:
    cohort = out / "pad-cohort"
    _fairderm("cohort", "import", "--format", "pad-ufes-20", "--metadata", str(PAD / "labels.csv"),
              "--images", str(PAD), "--out", str(cohort))
    manifest = pd.read_parquet(cohort / "manifest.parquet")
    labels = sorted(manifest["label"].dropna().unique())
    rng = np.random.default_rng(20261206)
    # A seeded classifier that is right about 70% of the time, with softmax scores.
    logits = rng.normal(size=(len(manifest), len(labels)))
    truth = manifest["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    right = rng.random(len(manifest)) < 0.7
    logits[np.arange(len(manifest))[right], truth[right]] += 3.0
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predictions = pd.DataFrame({"image_id": manifest["image_id"]})
    for i, label in enumerate(labels):
        predictions[f"prob_{label}"] = prob[:, i]
    predictions.to_csv(out / "pad-predictions.csv", index=False)
    spec = {
        "name": "pad",
        "cohort": {"path": "pad-cohort"},
        "model": {"backend": "file", "model": "pad-predictions.csv"},
        "tone": {"source": "estimate", "method": "fairderm"},
        "strata": {"attributes": ["fitzpatrick_est", "sex"], "min_n": 30},
        "metrics": ["accuracy", "balanced_accuracy", "sensitivity", "specificity", "auroc", "brier", "ece"],
        "bootstrap": {"n_boot": 200, "ci": "bca", "cluster": "patient_id", "seed": 0},
        "policy": str(ROOT / "audits" / "policy.example.yaml"),
        "outputs": {"runs_dir": "pad-runs", "cache_dir": "pad-cache"},
    }
    (out / "pad.yaml").write_text(json.dumps(spec, indent=2))  # JSON is YAML
    _fairderm("audit", str(out / "pad.yaml"))


def _number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _metrics(run: Path) -> dict[str, Any]:
    data = json.loads((run / "metrics.json").read_text())
    out: dict[str, Any] = {}
    for table in TABLES:
        for row in data.get(table) or []:
            key = "|".join([table] + [f"{c}={row[c]}" for c in KEY_COLUMNS if c in row])
            while key in out:  # rows that share every key column keep their order
                key += "'"
            out[key] = {c: _number(v) for c, v in row.items() if c not in KEY_COLUMNS}
    return out


def _verdicts(run: Path) -> dict[str, Any]:
    gate = json.loads((run / "gate.json").read_text())
    out: dict[str, Any] = {"overall": gate["verdict"]}
    for rule in gate["rules"]:
        out[rule["id"]] = [rule["verdict"], rule.get("basis"), rule.get("naive_verdict")]
    return out


_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


def _card_tables(run: Path) -> list[list[str]]:
    """The card's tables, row by row; file digests (the evidence table) are blanked: they follow the bytes."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*(run / "card.md").read_text().splitlines(), ""]:
        if line.startswith("|"):
            current.append(_DIGEST.sub("<sha256>", line.strip()))
        elif current:
            tables.append(current)
            current = []
    return tables


def snapshot(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    _fairderm("demo", "--out", str(out / "demo"), "--n", "400", "--n-boot", "200")
    _pad_audit(out)
    runs = {f"demo/{run.parents[1].name}": run for run in sorted((out / "demo" / "audits").glob("*/runs/*"))}
    runs["pad"] = max((out / "pad-runs").glob("*"))  # the one run of the PAD audit
    record = {name: {"metrics": _metrics(run), "verdicts": _verdicts(run), "card_tables": _card_tables(run)}
              for name, run in runs.items()}
    path = out / "snapshot.json"
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    print(f"snapshot of {len(record)} runs: {path}")
    return path


def _by_header(tables: list[list[str]]) -> dict[str, list[str]]:
    """Tables keyed by their header row (and its count, for repeated headers): a table added to or
    removed from the card then shows as one difference, not as every later table shifted by one."""
    keyed: dict[str, list[str]] = {}
    for table in tables:
        key = table[0]
        while key in keyed:
            key += " (again)"
        keyed[key] = [_DIGEST.sub("<sha256>", row) for row in table[2:]]  # the rows under the header's |---|
    return keyed


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    differences: list[str] = []
    for run in sorted(a.keys() | b.keys()):
        if run not in a or run not in b:
            differences.append(f"{run}: only in {'before' if run in a else 'after'}")
            continue
        for part in ("metrics", "verdicts"):
            for key in sorted(a[run][part].keys() | b[run][part].keys()):
                x, y = a[run][part].get(key), b[run][part].get(key)
                if not _same(x, y):
                    differences.append(f"{run} {part} {key}: {x} -> {y}")
        ta, tb = _by_header(a[run]["card_tables"]), _by_header(b[run]["card_tables"])
        for header in sorted(ta.keys() - tb.keys()):
            differences.append(f"{run} card: table {header} only before")
        for header in sorted(tb.keys() - ta.keys()):
            differences.append(f"{run} card: table {header} only after")
        for header in sorted(ta.keys() & tb.keys()):
            x, y = ta[header], tb[header]
            for j, (row_a, row_b) in enumerate(zip(x, y)):
                if row_a != row_b:
                    differences.append(f"{run} card table {header} row {j + 1}:\n  - {row_a}\n  + {row_b}")
            if len(x) != len(y):
                differences.append(f"{run} card table {header}: {len(x)} rows -> {len(y)}")
    for line in differences:
        print(line)
    total = sum(len(a[r]["metrics"]) for r in a)
    print(f"{len(differences)} difference(s) over {len(a)} runs, {total} metric rows")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="run the demo and a PAD audit, record numbers, verdicts, card tables")
    snap.add_argument("--out", type=Path, required=True, help="folder for the runs and snapshot.json")
    comp = sub.add_parser("compare", help="compare two snapshot.json files; exit 1 on any difference")
    comp.add_argument("before", type=Path)
    comp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "snapshot":
        snapshot(args.out)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
