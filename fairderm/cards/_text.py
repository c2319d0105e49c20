"""The card's prose: the owner's words where given, fairderm's measured statements otherwise.

Every function returns plain text; the Markdown and HTML renderers escape it.
"""

from __future__ import annotations

from typing import Any

from fairderm.cards._content import CardData, fmt_interval, metric_label, number, short_group
from fairderm.tone import REPEATABILITY_IS_NOT_ACCURACY

NOT_DOCUMENTED = "Not documented by the model owner."


def _bootstrap_phrase(data: CardData) -> str:
    config = data.config
    n_boot = config.get("n_boot")
    method = config.get("ci")
    level = number(config.get("confidence", 0.95))
    text = f"{round(100 * level)}% bootstrap intervals" if level is not None else "bootstrap intervals"
    details = []
    if method:
        details.append("BCa" if str(method).lower() == "bca" else str(method))
    if n_boot:
        details.append(f"B = {n_boot}")
    if config.get("cluster"):
        # metrics.json names the cluster column only when it was given as a named Series; the audit's spec
        # names it always (bootstrap.cluster).
        bootstrap = (data.run.spec or {}).get("bootstrap")
        named = bootstrap.get("cluster") if isinstance(bootstrap, dict) else None
        column = str(named or config["cluster"])
        details.append("resampling whole clusters of cases" + (f" sharing a {column}" if column != "cluster" else ""))
    if config.get("seed") is not None:
        details.append(f"seed {config['seed']}")
    return text + (f" ({', '.join(details)})" if details else "")


def overview(data: CardData) -> str:
    """One paragraph: what was audited and the headline result."""
    if data.info.overview:
        return data.info.overview
    backend = f" ({data.backend} backend)" if data.backend else ""
    text = f"Fairness audit of {data.name}{backend} across skin tones"
    cohort = data.cohort
    if cohort["name"]:
        text += f" on the cohort {cohort['name']}"
    text += "."
    description = (data.run.spec or {}).get("description")
    if isinstance(description, str) and description.strip():
        text += " " + description.strip().rstrip(".") + "."
    if data.gate_verdict:
        text += f" Release gate verdict: {data.gate_verdict}."
    return text


def method_description(data: CardData) -> str:
    """How the numbers were made (Mitchell et al.'s 'Metrics' section in one paragraph)."""
    config = data.config
    text = (
        "Per-group metrics with " + _bootstrap_phrase(data)
        + ", stratified by group so that group sizes stay fixed"
    )
    if config.get("min_group_size") is not None:
        text += (f"; a group's metric is flagged 'insufficient' when the group has fewer than "
                 f"{config['min_group_size']} cases"
                 + (f" or fewer than {config['min_positives']} cases in the metric's denominator (positives for "
                    "sensitivity, negatives for specificity, ...)" if config.get("min_positives") is not None
                    else "")
                 + ", and is then reported but never ranked as worst or best")
    if number(config.get("threshold")) is not None:
        text += f"; positive-class decision threshold {config['threshold']}"
    if isinstance(config.get("positive_label"), str):
        text += f" (positive class: {config['positive_label']})"
    return text + "."


def evaluation_description(data: CardData) -> str:
    """The evaluation data: cohort, size, tone mix, hash."""
    cohort = data.cohort
    overall = data.groups[data.groups["attribute"] == "all"]
    n = max((int(v) for v in overall["n"] if number(v) is not None), default=None)
    parts = [f"Cohort {cohort['name']}" if cohort["name"] else "Evaluation cohort (name not recorded)"]
    if n is not None:
        parts.append(f"{n} evaluated cases")
    if cohort["n_cases"] is not None and cohort["n_cases"] != n:
        parts.append(f"{cohort['n_cases']} cases in the cohort")
    status = data.run.predictions_status or {}
    failed = sum(v for k, v in status.items() if k != "ok")
    if failed:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(status.items()) if k != "ok")
        parts.append(f"{failed} cases without a usable prediction ({reasons})")
    if data.tone_attribute:
        sizes = data.group_sizes(data.tone_attribute)
        mix = ", ".join(f"{r.group}: {r.n}" for r in sizes.itertuples())
        parts.append(f"by {data.tone_attribute}: {mix}")
    if cohort["manifest_sha256"]:
        parts.append(f"manifest SHA-256 {cohort['manifest_sha256']}")
    return "; ".join(parts) + "."


def training_description(data: CardData) -> str:
    return data.info.training_data or NOT_DOCUMENTED


def intended_use(data: CardData) -> str:
    if data.info.intended_use:
        return data.info.intended_use
    return ("Not stated by the model owner. This card documents measured performance across skin tones; "
            "it does not establish clinical validity or fitness for any clinical use.")


def tone_reliability_statement(data: CardData) -> str:
    """How far the tone strata can be trusted, in one paragraph."""
    attribute = data.tone_attribute or "skin tone"
    summary = data.tone_summary
    estimated = attribute.endswith("_est")
    text = (f"Groups by {attribute} are estimated from the photographs, not labelled by clinicians, "
            if estimated else f"Groups by {attribute} come from the cohort's labels. ")
    if estimated:
        text += "so some cases sit in the wrong group and differences between groups are blurred. "
    measures = {m["measure"]: m for m in data.tone_validation_measures()}
    if measures:
        shown = []
        for key, label in (("exact_agreement", "exact agreement"), ("within_one", "agreement within one group"),
                           ("spearman", "Spearman correlation"), ("kappa", "quadratic-weighted kappa"),
                           ("abstention_rate", "abstention rate")):
            match = next((m for name, m in measures.items() if name.split(".")[-1].startswith(key)), None)
            if match is not None:
                shown.append(f"{label} {fmt_interval(match['estimate'], match['ci_low'], match['ci_high'])}")
        if shown:
            text += "Measured against labels: " + "; ".join(shown) + ". "
    elif estimated:
        text += ("The estimator was not validated against tone labels in this run, so how reliable these "
                 "strata are is unknown here. ")
        repeatability = summary.get("measurement_repeatability") if summary else None
        if repeatability is not None:
            text += (f"The colour measurement is repeatable: the ITA of {100 * repeatability:.0f}% of the measured "
                     "images stays in its group when varied within its interval. But "
                     f"{REPEATABILITY_IS_NOT_ACCURACY}. ")
    if summary is not None and summary["abstention_rate"] is not None:
        text += (f"{summary['status_counts'].get('abstain', 0)} of {summary['n_images']} images "
                 f"({100 * summary['abstention_rate']:.1f}%) got no tone estimate (abstained or failed).")
    return text.strip()


def _tone_limitation(data: CardData) -> str:
    attribute = data.tone_attribute or "skin tone"
    if not attribute.endswith("_est"):
        return f"Groups by {attribute} are only as accurate as the cohort's tone labels."
    exact = next((m for m in data.tone_validation_measures() if m["measure"].split(".")[-1].startswith("exact")),
                 None)
    if exact is None:
        return (f"Groups by {attribute} are estimated from the photographs and were not validated against "
                "labels in this run: their reliability is unknown here.")
    return (f"Groups by {attribute} are estimated from the photographs (exact agreement with labels "
            f"{fmt_interval(exact['estimate'], exact['ci_low'], exact['ci_high'])}): some cases sit in the wrong "
            "group, which blurs differences between groups.")


def limitations(data: CardData) -> list[str]:
    """Known technical limitations, measured from the run."""
    out = [_tone_limitation(data)]
    small = data.small_groups
    if small:
        listed = "; ".join(f"{group} ({attribute}, n={n})" for attribute, group, n in small[:8])
        more = f" and {len(small) - 8} more" if len(small) > 8 else ""
        out.append(f"Groups too small for reliable intervals (flagged, not ranked): {listed}{more}.")
    status = data.run.predictions_status or {}
    failed = sum(v for k, v in status.items() if k != "ok")
    if failed:
        out.append(f"{failed} cases had no usable prediction and are not in the metrics; if failures "
                   "cluster in one tone group, that group's numbers are optimistic.")
    return out


def caveats(data: CardData) -> list[str]:
    """Caveats and recommendations: fairderm's standing ones, then the owner's (see also :func:`gate_caveat`)."""
    out = [
        "Intervals are per group and per metric; they are not adjusted for the number of groups and metrics "
        "shown. Use the adjusted tests across groups for confirmatory claims.",
        "A gap whose interval includes zero is not evidence of no gap: compare it with the minimum "
        "detectable difference of each group before concluding that the model is fair.",
        "Re-run the audit on data from each deployment site: performance across skin tones depends on "
        "cameras, lighting and case mix, none of which this cohort can represent fully.",
    ]
    return out + list(data.info.caveats)


def gate_caveat(data: CardData) -> list[str]:
    """The recommendation that follows from a gate verdict other than PASS (else [])."""
    if data.gate_verdict in ("FAIL", "INSUFFICIENT_EVIDENCE", "ERROR"):
        return [f"The release gate answered {data.gate_verdict}: do not deploy this model for the groups "
                "concerned without further evidence or mitigation."]
    return []


def ethical_risks(data: CardData) -> list[dict[str, Any]]:
    """Ethical considerations as (name, mitigation strategy) pairs."""
    out = [
        {"name": "Lower accuracy on darker skin can delay the diagnosis of skin cancer in patients who are "
                 "already under-represented in dermatology datasets and textbooks.",
         "mitigation_strategy": "Disaggregated evaluation with intervals, a release gate on the worst "
                                "group's bounds, and the minimum-group-size rule in this card."},
        {"name": "Skin tone scales are proxies: Fitzpatrick type describes response to UV light, not race or "
                 "ethnicity, and colour-based estimates vary with lighting and camera.",
         "mitigation_strategy": "Tone estimated from healthy skin only, with colour constancy and abstention; "
                                "its measured reliability is reported in this card."},
    ]
    return out + [r.model_dump(exclude_none=True) for r in data.info.ethical_considerations]


def tradeoffs(data: CardData) -> list[str]:
    """Accuracy versus gap of each mitigation method against ERM (from mitigation.json)."""
    methods = (data.run.mitigation or {}).get("methods")
    if not isinstance(methods, dict) or "erm" not in methods:
        return []
    erm = methods["erm"] if isinstance(methods["erm"], dict) else {}
    out = []
    for name, result in methods.items():
        if name == "erm" or not isinstance(result, dict):
            continue
        text = f"{name}: accuracy {_interval_of(result.get('accuracy'))} (ERM {_interval_of(erm.get('accuracy'))})"
        text += f", tone gap {_interval_of(result.get('gap'))} (ERM {_interval_of(erm.get('gap'))})"
        if isinstance(result.get("gap_diff_vs_erm"), dict):
            text += f", gap change versus ERM {_interval_of(result['gap_diff_vs_erm'])}"
        out.append(text + ".")
    return out


def _interval_of(value: Any) -> str:
    if not isinstance(value, dict):
        return "–"
    return fmt_interval(value.get("estimate"), value.get("ci_low"), value.get("ci_high"))


def headline_details(data: CardData) -> list[str]:
    """What the banner says after the verdict: the policy and the worst tone group's accuracy."""
    details = []
    policy = (data.gate or {}).get("policy") or {}
    if data.gate_verdict and policy.get("name"):
        details.append(f"policy {policy['name']}")
    elif not data.gate_verdict:
        details.append("no release gate was run for this card")
    attribute = data.tone_attribute
    if attribute and "accuracy" in data.metric_names:
        rows = data.rows(attribute)
        rows = rows[(rows["metric"] == "accuracy") & (rows["flag"].fillna("ok") == "ok")]
        rows = rows[rows["estimate"].map(number).notna()]
        if len(rows):
            worst = rows.loc[rows["estimate"].map(number).idxmin()]
            details.append(f"lowest {metric_label('accuracy').lower()} by {attribute}: "
                           f"{short_group(str(worst['group']), attribute)} "
                           f"{fmt_interval(worst['estimate'], worst['ci_low'], worst['ci_high'])}")
    return details
