"""``card.json``: the Model Card Toolkit v0.0.2 shape, with fairderm's additions nested inside.

The upstream schema forbids unknown top-level keys, so everything fairderm
adds (numeric estimates and intervals, disparities, the gate, tone
reliability, power, evidence) lives inside the standard sections, where
extra keys are allowed. Upstream stores values and bounds as strings; the
numbers are repeated as numbers next to them for machines.
"""

from __future__ import annotations

from typing import Any

from fairderm._version import __version__
from fairderm.cards._content import (
    DISPARITY_NAMES,
    CardData,
    fmt,
    metric_label,
    metric_meaning,
    number,
)
from fairderm.cards._text import (
    caveats,
    ethical_risks,
    evaluation_description,
    gate_caveat,
    intended_use,
    limitations,
    method_description,
    overview,
    tradeoffs,
    training_description,
)

SCHEMA_VERSION = "0.0.2"


def _count(value: Any) -> int | None:
    result = number(value)
    return None if result is None else int(result)


def _performance_metrics(data: CardData) -> list[dict[str, Any]]:
    out = []
    for row in data.groups.to_dict("records"):
        estimate, low, high = number(row["estimate"]), number(row["ci_low"]), number(row["ci_high"])
        entry: dict[str, Any] = {
            "type": str(row["metric"]),
            "value": fmt(estimate, 4) if estimate is not None else "undefined",
            "slice": str(row["group"]),
            "attribute": str(row["attribute"]),
            "estimate": estimate,
            "ci_low": low,
            "ci_high": high,
            "n": _count(row["n"]),
            "n_pos": _count(row["n_pos"]),
            "flag": str(row["flag"] or "ok"),
        }
        if low is not None and high is not None:
            entry["confidence_interval"] = {"lower_bound": fmt(low, 4), "upper_bound": fmt(high, 4)}
        out.append(entry)
    return out


def _disparities(data: CardData) -> list[dict[str, Any]]:
    return [
        {
            "metric": str(row["metric"]),
            "kind": str(row["kind"]),
            "attribute": str(row["attribute"]),
            "group": None if row["group"] is None else str(row["group"]),
            "reference": None if row["reference"] is None else str(row["reference"]),
            "estimate": number(row["estimate"]),
            "ci_low": number(row["ci_low"]),
            "ci_high": number(row["ci_high"]),
        }
        for row in data.disparities.to_dict("records")
    ]


def _gate(data: CardData) -> dict[str, Any]:
    if not data.gate:
        return {"verdict": "NOT_GATED", "policy": None, "rules": []}
    policy = data.gate.get("policy") or {}
    return {
        "verdict": data.gate_verdict,
        "policy": policy.get("name"),
        "policy_sha256": policy.get("sha256"),
        "rules": [
            {"id": str(r.get("id")), "text": str(r.get("text") or ""), "verdict": str(r.get("verdict")),
             "message": str(r.get("message") or "")}
            for r in data.gate.get("rules", []) if isinstance(r, dict)
        ],
    }


def _tone_reliability(data: CardData) -> dict[str, Any]:
    summary = data.tone_summary
    return {
        "attribute": data.tone_attribute,
        "validated": data.run.tone_validation is not None,
        "validation": data.tone_validation_measures(),
        "estimator": None if summary is None else {
            "methods": summary["methods"],
            "n_images": summary["n_images"],
            "status_counts": summary["status_counts"],
            "abstention_rate": summary["abstention_rate"],
            "median_ita_interval_width": summary["median_ita_interval_width"],
            "measurement_repeatability": summary["measurement_repeatability"],
        },
    }


def _group_sizes(data: CardData) -> list[dict[str, Any]]:
    out = []
    for attribute in data.attributes:
        for row in data.group_sizes(attribute).to_dict("records"):
            out.append({"attribute": attribute, "group": str(row["group"]), "n": _count(row["n"]),
                        "n_pos": _count(row["n_pos"]), "flag": str(row["flag"])})
    return out


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by null, recursively."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float):
        return number(value)
    return value


def _jsonable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with every value a string, number, bool or null (nested values as text)."""
    clean = []
    for record in records:
        row: dict[str, Any] = {}
        for key, value in record.items():
            if value is None or isinstance(value, (bool, str)):
                row[str(key)] = value
            elif isinstance(value, (int, float)):
                row[str(key)] = number(value) if isinstance(value, float) else value
            else:
                row[str(key)] = str(value)
        clean.append(row)
    return clean


def _evidence(data: CardData) -> dict[str, Any]:
    run = data.run
    recorded = run.evidence or {}
    files = [{"path": path, "sha256": digest} for path, digest in run.file_hashes.items()]
    seeds = recorded.get("seeds") if isinstance(recorded.get("seeds"), dict) else {}
    return {
        "run_id": run.run_id,
        "audit": run.audit_name,
        "evidence_file": "evidence.json" if run.evidence is not None else None,
        "spec_sha256": recorded.get("spec_sha256"),
        "files": files,
        "seeds": {str(k): v for k, v in seeds.items()},
        "metrics_config": {k: v for k, v in data.config.items() if isinstance(v, (str, int, float, bool))},
        "fairderm_version": __version__,
    }


def build_card_json(data: CardData) -> dict[str, Any]:
    """The ``card.json`` content (validates against both model card schemas)."""
    info = data.info
    identity = data.model_identity
    details: dict[str, Any] = {
        "name": data.name,
        "overview": overview(data),
        "documentation": method_description(data),
        "owners": [o.model_dump(exclude_none=True) for o in info.owners],
        "licenses": [{"identifier": info.license}] if info.license else [{"custom_text": "not stated by the owner"}],
        "references": [{"reference": r} for r in info.references],
        "citations": [{"style": "text", "citation": info.citation}] if info.citation else [],
        "evidence": _evidence(data),
    }
    if info.version or info.date:
        details["version"] = {k: v for k, v in (("name", info.version), ("date", info.date)) if v}
    if data.model_reference:
        details["path"] = data.model_reference
    cohort = data.cohort
    datasets = [{"name": str(cohort["name"] or "evaluation cohort"), "description": evaluation_description(data)}]
    datasets.append({"name": "training data", "description": training_description(data)})
    parameters: dict[str, Any] = {
        "model_architecture": info.model_architecture or str(identity.get("backend") or "not documented"),
        "data": datasets,
        "input_format": "RGB clinical or dermoscopic photograph",
        "output_format": "class probabilities over the cohort's labels",
    }
    labels = data.config.get("labels")
    if isinstance(labels, list):
        parameters["output_format_map"] = [{"key": "label", "value": str(label)} for label in labels]
    quantitative: dict[str, Any] = {
        "performance_metrics": _performance_metrics(data),
        "metric_definitions": [
            {"name": m, "label": metric_label(m, data.top_k), "definition": metric_meaning(m, data.top_k)}
            for m in data.metric_names
        ],
        "disparities": _disparities(data),
        "disparity_kinds": dict(DISPARITY_NAMES),
        "group_sizes": _group_sizes(data),
        "power": _jsonable(data.records("power")),
        "tests": _jsonable(data.records("tests")),
        "case_mix": _jsonable(data.records("case_mix")),
        "tone_reliability": _tone_reliability(data),
        "gate": _gate(data),
    }
    if data.run.mitigation is not None:
        quantitative["mitigation"] = _finite(data.run.mitigation)
    considerations = {
        "users": [{"description": u} for u in info.intended_users],
        "use_cases": [{"description": intended_use(data)}]
        + [{"description": f"Out of scope: {u}"} for u in info.out_of_scope_uses],
        "limitations": [{"description": text} for text in limitations(data)],
        "tradeoffs": [{"description": text} for text in tradeoffs(data)],
        "ethical_considerations": ethical_risks(data),
        "caveats_and_recommendations": [{"description": text} for text in gate_caveat(data) + caveats(data)],
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": details,
        "model_parameters": parameters,
        "quantitative_analysis": quantitative,
        "considerations": considerations,
    }
