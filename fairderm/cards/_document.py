"""The card as a document: its sections, built from a run's CardData (blocks in :mod:`._blocks`).

Both the Markdown and the HTML card render this one structure, so they say
the same thing; each renderer escapes every string it is given.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fairderm._version import __version__
from fairderm.cards._blocks import Block, Bullets, Document, Facts, Figure, Paragraph, Section, Table
from fairderm.cards._content import (
    DISPARITY_NAMES,
    HEADLINE_METRICS,
    CardData,
    fmt,
    fmt_interval,
    fmt_range,
    metric_label,
    metric_meaning,
    number,
    short_group,
    tone_measure_label,
)
from fairderm.cards._mitigation import mitigation_section
from fairderm.cards._text import (
    NOT_DOCUMENTED,
    caveats,
    ethical_risks,
    evaluation_description,
    gate_caveat,
    headline_details,
    intended_use,
    limitations,
    method_description,
    overview,
    tone_reliability_statement,
    training_description,
)
from fairderm.gate import LEGEND
from fairderm.metrics import reasons_by_metric
from fairderm.tone import REPEATABILITY_IS_NOT_ACCURACY

INSUFFICIENT_MARK = "†"


def _cell(row: dict[str, Any]) -> str:
    if row.get("basis") == "bounded":
        return fmt_range(row.get("ci_low"), row.get("ci_high"))
    text = fmt_interval(row.get("estimate"), row.get("ci_low"), row.get("ci_high"))
    flag = row.get("flag")
    return f"{text} {INSUFFICIENT_MARK}" if flag not in (None, "ok") and text != "–" else text


def _group_by_metric_table(data: CardData, attribute: str) -> Table:
    """Rows = metrics, columns = groups with their n: compact for a handful of groups."""
    rows = data.rows(attribute)
    sizes = data.group_sizes(attribute)
    groups = list(dict.fromkeys(rows["group"].astype(str)))
    size_of = {str(r.group): r.n for r in sizes.itertuples()}
    columns = ["Metric"] + [f"{short_group(g, attribute)} (n={size_of.get(short_group(g, attribute), '?')})"
                            for g in groups]
    body = []
    for metric in data.metric_names:
        of_metric = rows[rows["metric"] == metric]
        if of_metric.empty:
            continue
        by_group = {str(r["group"]): r for r in of_metric.to_dict("records")}
        body.append([metric_label(metric, data.top_k)]
                    + [_cell(by_group[g]) if g in by_group else "–" for g in groups])
    return Table(columns, body, note=_insufficient_note(sizes))


def _metric_by_group_table(data: CardData, attribute: str) -> Table:
    """Rows = groups, columns = headline metrics: for many (intersectional) groups."""
    rows = data.rows(attribute)
    metrics = [m for m in data.metric_names if m in HEADLINE_METRICS][:4] or data.metric_names[:4]
    sizes = data.group_sizes(attribute)
    body = []
    for size in sizes.itertuples():
        group_rows = rows[rows["group"].map(lambda g: short_group(str(g), attribute)) == size.group]
        by_metric = {str(r["metric"]): r for r in group_rows.to_dict("records")}
        body.append([str(size.group), str(size.n if size.n is not None else "–")]
                    + [_cell(by_metric[m]) if m in by_metric else "–" for m in metrics])
    return Table(["Group", "n"] + [metric_label(m, data.top_k) for m in metrics], body,
                 note=_insufficient_note(sizes))


def _insufficient_note(sizes: pd.DataFrame) -> str:
    if (sizes["flag"] != "ok").any():
        return (f"{INSUFFICIENT_MARK} group flagged insufficient for this metric (too few cases, or too few in the "
                "metric's denominator; the reason is in Group sizes and power): reported, not ranked.")
    return ""


def _flag_text(data: CardData, attribute: str, group: str, flag: str) -> str:
    """The sizes table's flag cell: for 'insufficient', which metrics and why (a large group can lack positives)."""
    if flag != "insufficient":
        return flag
    rows = data.rows(attribute)
    rows = rows[rows["group"].map(lambda g: short_group(str(g), attribute)) == group]
    reasons = reasons_by_metric(rows[rows["flag"] == "insufficient"].to_dict("records"),
                                min_group_size=number(data.config.get("min_group_size")),
                                min_positives=number(data.config.get("min_positives")))
    by_reason = {reason: [metric_label(m, data.top_k) for m in metrics] for reason, metrics in reasons.items()}
    if len(by_reason) == 1 and len(next(iter(by_reason.values()))) == len(rows):
        return f"insufficient for every metric: {next(iter(by_reason))}"
    parts = [f"{', '.join(metrics)}: {reason}" for reason, metrics in by_reason.items()]
    return "insufficient for " + "; for ".join(parts) if parts else flag


def _value_text(key: str, value: Any) -> str:
    """A record value for a table: p-values to 3 significant digits, other numbers to 3 decimals."""
    if value is None:
        return "–"
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        if key.startswith("p_") or key == "p":
            return f"{value:.2e}" if 0 < abs(value) < 0.001 else f"{value:.3g}"
        return fmt(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _records_table(records: list[dict[str, Any]], columns: dict[str, str], top_k: int | None = None) -> Table:
    """A table of the chosen record keys (key -> header); absent keys are left out.

    ``top_k`` names the k of a top-k accuracy metric.

    Groups lose their ``attribute=`` prefix when the table names the attribute.
    """
    keys = [k for k in columns if any(k in r for r in records)]
    body = []
    for record in records:
        attribute = str(record.get("attribute", ""))
        body.append([
            short_group(str(record[k]), attribute) if k in ("group", "reference") and record.get(k) else
            metric_label(str(record[k]), top_k) if k == "metric" and record.get(k) else _value_text(k, record.get(k))
            for k in keys
        ])
    return Table([columns[k] for k in keys], body)


def _model_details(data: CardData) -> Section:
    info = data.info
    facts = [("Name", data.name)]
    if data.backend:
        facts.append(("Inference backend", str(data.backend)))
    if data.model_reference:
        facts.append(("Model", data.model_reference))
    facts += [
        ("Architecture", info.model_architecture or NOT_DOCUMENTED),
        ("Version", info.version or NOT_DOCUMENTED),
        ("Owners", "; ".join(f"{o.name} ({o.contact})" if o.contact else o.name for o in info.owners)
         or NOT_DOCUMENTED),
        ("License", info.license or NOT_DOCUMENTED),
    ]
    if info.date:
        facts.append(("Date", info.date))
    if info.references:
        facts.append(("References", "; ".join(info.references)))
    if info.citation:
        facts.append(("Citation", info.citation))
    facts.append(("Audit run", f"{data.run.audit_name or 'audit'} / {data.run.run_id} (fairderm {__version__})"))
    return Section("Model details", [Paragraph(overview(data)), Facts(facts)])


def _intended_use(data: CardData) -> Section:
    blocks: list[Block] = [Paragraph(intended_use(data))]
    info = data.info
    blocks.append(Facts([("Intended users", "; ".join(info.intended_users) or NOT_DOCUMENTED)]))
    if info.out_of_scope_uses:
        blocks += [Paragraph("Out of scope:"), Bullets(list(info.out_of_scope_uses))]
    return Section("Intended use", blocks)


def _factors(data: CardData) -> Section:
    items = []
    tone = data.tone_attribute
    for attribute in data.attributes:
        groups = ", ".join(str(g) for g in data.group_sizes(attribute)["group"])
        role = " (skin tone; the primary factor)" if attribute == tone else ""
        kind = "intersection of " + " and ".join(attribute.split("&")) if "&" in attribute else attribute
        items.append(f"{kind}{role}: {groups}")
    text = ("Performance is disaggregated by skin tone, then by every other audited attribute and by their "
            "intersections, because a model can serve one tone group well on average and fail a subgroup "
            "within it.")
    return Section("Factors", [Paragraph(text), Bullets(items or ["No attribute was audited."])])


def _metrics(data: CardData) -> Section:
    rows = [[metric_label(m, data.top_k), metric_meaning(m, data.top_k)] for m in data.metric_names]
    kinds = sorted(set(data.disparities["kind"].dropna().astype(str)))
    blocks: list[Block] = [Paragraph(method_description(data)), Table(["Metric", "Meaning"], rows)]
    if kinds:
        blocks.append(Paragraph("Disparities reported: " + ", ".join(DISPARITY_NAMES.get(k, k) for k in kinds)
                                + "; each from the same bootstrap replicates as the group estimates."))
    return Section("Metrics", blocks)


def _evaluation_data(data: CardData) -> Section:
    return Section("Evaluation data", [Paragraph(evaluation_description(data))])


def _quantitative(data: CardData) -> Section:
    section = Section("Quantitative analyses")
    overall = data.rows("all")
    if not overall.empty:
        body = [[metric_label(str(r["metric"]), data.top_k), _cell(r),
                 str(r["n"] if r["n"] is not None else "–")]
                for r in overall.to_dict("records")]
        section.subsections.append(Section("All cases", [Table(["Metric", "Estimate (95% CI)", "n"], body)]))
    tone = data.tone_attribute
    others = [a for a in data.attributes if a != tone and "&" not in a]
    for attribute in ([tone] if tone else []) + others:
        blocks: list[Block] = [_group_by_metric_table(data, attribute)]
        if attribute == tone:
            blocks.append(Figure("tone_forest", f"Estimates with 95% intervals by {attribute}."))
            if data.calibration_curves(attribute):
                blocks.append(Figure("calibration", f"Reliability curves by {attribute}: observed frequency "
                                     "against mean predicted probability per equal-mass bin (diagonal: perfect).",
                                     _calibration_table(data, attribute)))
        section.subsections.append(Section(f"By {attribute}", blocks))
    disparities = _disparity_rows(data)
    if disparities:
        section.subsections.append(Section("Disparities", [
            Paragraph(f"Every disparity by {tone}; the max-min gap for the other attributes (all of them are in "
                      "card.json). For a gap or ratio, the group is the worst and the second group the best."
                      if tone else "Max-min gaps (all disparities are in card.json)."),
            Table(["Metric", "Disparity", "Attribute", "Group", "Estimate (95% CI)"], disparities)]))
    for attribute in data.intersections:
        section.subsections.append(Section(f"Intersectional: {attribute}", [
            _metric_by_group_table(data, attribute), Figure(f"intersection:{attribute}",
                                                             f"Estimates with 95% intervals by {attribute}.")]))
    tests = data.records("tests")
    if tests:
        section.subsections.append(Section("Tests across groups", [
            Paragraph("Is there any difference across the groups of an attribute? Only groups with enough "
                      "cases for the metric (flagged ok) are tested; an attribute with fewer than two such "
                      "groups is not tested. p-values adjusted for multiplicity by the method shown."),
            _records_table([{**r, "tested": _tested_text(r)} for r in tests],
                           {"metric": "Metric", "attribute": "Attribute", "test": "Test", "tested": "Groups tested",
                            "statistic": "Statistic", "p_value": "p", "p_adjusted": "Adjusted p",
                            "method": "Adjustment"}, data.top_k)]))
    case_mix = [
        {**r, "adjusted_or_ci": fmt_interval(r.get("adjusted_or", r.get("odds_ratio")), r.get("ci_low"),
                                             r.get("ci_high"))}
        for r in data.records("case_mix")
    ]
    if case_mix:
        section.subsections.append(Section("Case-mix adjusted odds ratios", [
            Paragraph("Odds of a correct prediction in each group against the reference group, adjusted for "
                      "diagnosis and the listed covariates (logistic regression); below 1 means worse."),
            _records_table(case_mix, {"attribute": "Attribute", "group": "Group", "reference": "Reference",
                                      "n": "n", "adjusted_or_ci": "Adjusted OR (95% CI)", "p_value": "p",
                                      "adjusted_for": "Adjusted for", "se": "Standard errors"}, data.top_k)]))
    return section


def _reasoning(data: CardData) -> Section | None:
    """The reports' scores (fairderm.reasoning): overall and worst-group mean of every score column."""
    scores = [m for m in data.metric_names if m.startswith("mean_score:")]
    if not scores:
        return None
    rows = []
    for metric in scores:
        every = data.groups[(data.groups["metric"] == metric) & (data.groups["attribute"] == "all")]
        overall = every.iloc[0] if len(every) else None
        for attribute in [a for a in data.attributes if "&" not in a]:
            part = data.rows(attribute)
            part = part[(part["metric"] == metric) & (part["flag"] == "ok")]
            estimates = pd.to_numeric(part["estimate"], errors="coerce")
            if estimates.notna().any():
                worst = part.loc[estimates.idxmin()]
                rows.append([
                    metric.removeprefix("mean_score:"),
                    fmt_interval(*(overall[k] for k in ("estimate", "ci_low", "ci_high"))) if overall is not None
                    else "-",
                    short_group(str(worst["group"]), attribute),
                    fmt_interval(worst["estimate"], worst["ci_low"], worst["ci_high"]),
                ])
    return Section("Reasoning quality", [
        Paragraph("Every report was scored by a judge model on the rubric's dimensions (1-5) and by deterministic "
                  "checks (0/1 shares, or words for length_words); scores.parquet holds each case's scores, the "
                  "judge's justification, the rubric and the judge's identity. Below: the mean over all cases and "
                  "the mean of the group where it is lowest (groups flagged ok only)."),
        Table(["Score", "All cases (95% CI)", "Lowest group", "Lowest-group mean (95% CI)"], rows),
    ])


def _calibration_table(data: CardData, attribute: str) -> Table:
    """The reliability curves' points, for the Markdown card."""
    rows = []
    for group, bins in data.calibration_curves(attribute).items():
        for record in sorted(bins, key=lambda b: number(b.get("bin")) or 0):
            bin_number = number(record.get("bin"))
            rows.append([group, "–" if bin_number is None else str(int(bin_number) + 1),
                         fmt(record.get("mean_confidence")),
                         fmt_interval(record.get("observed"), record.get("observed_ci_low"),
                                      record.get("observed_ci_high")),
                         str(record.get("n") if record.get("n") is not None else "–")])
    return Table(["Group", "Bin", "Mean predicted probability", "Observed frequency", "n"], rows)


def _tested_text(test: dict[str, Any]) -> str:
    """Which groups a test across groups compared, or why it compared none."""
    if test.get("flag") in ("insufficient", "single_group"):
        return "not tested: fewer than two groups with enough cases"
    groups = test.get("groups") or []
    return str(len(groups)) if groups else "–"


def _disparity_rows(data: CardData) -> list[list[str]]:
    """Every disparity of the tone attribute, then the gaps of the other attributes."""
    rows = []
    for row in data.disparities.to_dict("records"):
        attribute = str(row["attribute"])
        if attribute.split(":")[0] != data.tone_attribute and row["kind"] != "gap":
            continue
        group = "" if row["group"] in (None, attribute) else short_group(str(row["group"]), attribute)
        if row["reference"]:
            group += f" vs {short_group(str(row['reference']), attribute)}"
        rows.append([metric_label(str(row["metric"]), data.top_k),
                     DISPARITY_NAMES.get(str(row["kind"]), str(row["kind"])), attribute, group or "–", _cell(row)])
    return rows


def _sizes_and_power(data: CardData) -> Section:
    blocks: list[Block] = []
    rows = []
    for attribute in data.attributes:
        for size in data.group_sizes(attribute).itertuples():
            rows.append([attribute, str(size.group), str(size.n if size.n is not None else "–"),
                         str(size.n_pos if size.n_pos is not None else "–"),
                         _flag_text(data, attribute, str(size.group), str(size.flag))])
    blocks.append(Table(["Attribute", "Group", "n", "Positives", "Flag"], rows))
    if data.tone_attribute:
        blocks.append(Figure("group_sizes", f"Cases per {data.tone_attribute} group."))
    power = [r for r in data.records("power") if r.get("attribute") == data.tone_attribute] or data.records("power")
    if power:
        blocks += [
            Paragraph("Minimum detectable difference (MDD) at 80% power for each group's size, against the rest "
                      "of the cases: a difference smaller than this could exist without a test finding it. "
                      + (f"Shown for {data.tone_attribute}; every attribute is in card.json."
                         if data.tone_attribute else "")),
            _records_table(power, {"group": "Group", "metric": "Metric", "n": "n", "estimate": "Estimate",
                                   "observed_difference": "Observed difference", "mdd": "MDD",
                                   "min_detectable_difference": "MDD", "design_effect": "Design effect",
                                   "flag": "Flag"}, data.top_k),
        ]
    else:
        blocks.append(Paragraph("No power analysis was recorded in metrics.json."))
    return Section("Group sizes and power", blocks)


def _trust(data: CardData) -> Section | None:
    """How far the tone groups can be trusted: the estimate's error carried into the disparities."""
    tone = data.tone_attribute
    if tone is None or not tone.endswith("_est"):
        return None
    strata = data.strata
    blocks: list[Block] = [Paragraph(
        f"The {tone} groups are estimated from colour. On clinical photographs colour (ITA) estimates agree "
        "with dermatologists' three Fitzpatrick groups for about 41-49% of images (Groh et al. 2022), where two "
        "dermatologists agree for 69-76%. Cases in the wrong group blur the groups into each other, so a real "
        "disparity looks smaller by estimated group, or disappears.")]
    if strata is None:
        blocks.append(Paragraph(
            "This run neither corrected nor bounded the estimated groups (tone.strata_error: none and no "
            "validation labels): the figures by estimated group are taken at face value and may hide a "
            "disparity."))
        return Section("How far the tone groups can be trusted", blocks)
    true_attribute = str(strata.get("corrected_attribute") or strata.get("bounded_attribute"))
    if strata.get("basis") in ("corrected", "labelled"):
        confusion = strata.get("confusion") or {}
        estimated_values = list(next(iter(confusion.values()), {}).keys())
        blocks.append(Paragraph(
            f"Validation: {strata.get('n_labelled')} labelled cases ({strata.get('inclusion_prob')} inclusion "
            f"probabilities). Agreement of the estimate with the labels: {fmt(strata.get('agreement'), 2)}. "
            f"Metrics by true group ({true_attribute}) were computed by {strata.get('method')}. Assumption: "
            f"{strata.get('assumption')}."))
        blocks.append(Table(["Labelled group"] + [f"estimated {v}" for v in estimated_values],
                            [[str(true_value)] + [str(row.get(v, 0)) for v in estimated_values]
                             for true_value, row in confusion.items()],
                            note="Validation confusion matrix: labelled cases by labelled and estimated group."))
    else:
        model = strata.get("error_model") or {}
        groups = [str(g) for g in model.get("groups", [])]
        blocks.append(Paragraph(
            f"No tone labels were given, so the metrics by true group cannot be estimated; {true_attribute} "
            f"gives the range of each rate metric and gap that the data allow under an error model of the "
            f"estimate ({model.get('source')}; agreement {fmt(model.get('agreement_equal_groups'), 2)} with equal "
            "groups), widened for sampling error. The gate PASSes a rule on these only if the whole range meets "
            "it. Metrics not bounded: " + (", ".join(strata.get("not_bounded") or []) or "none") + "."))
        blocks.append(Table(["True group"] + [f"P(estimated {g})" for g in groups],
                            [[g] + [fmt(v, 2) for v in row] for g, row in zip(groups, model.get("confusion", []))],
                            note="Error model of the strata: each row sums to 1."))
    body = []
    for row in data.disparities.to_dict("records"):
        if row["attribute"] not in (tone, true_attribute) or row["kind"] not in ("gap", "diff_vs_ref"):
            continue
        if row["metric"] not in HEADLINE_METRICS:
            continue
        group = "" if row["group"] in (None, "") else short_group(str(row["group"]), str(row["attribute"]))
        if group == "missing":
            continue  # the abstentions are no tone group: the section is about the tone groups
        if row["reference"] and row["kind"] == "diff_vs_ref":
            group += f" vs {short_group(str(row['reference']), str(row['attribute']))}"
        body.append([metric_label(str(row["metric"]), data.top_k),
                     DISPARITY_NAMES.get(str(row["kind"]), str(row["kind"])), group or "–",
                     str(row.get("basis") or ""), _cell(row)])
    if body:
        blocks.append(Table(["Metric", "Disparity", "Groups", "Basis", "Value (95% CI or range)"], body,
                            note="'estimated': by estimated group at face value; 'corrected': by true group, "
                                 "corrected with the validation labels; 'bounded': the range by true group."))
    return Section("How far the tone groups can be trusted", blocks)


def _tone(data: CardData) -> Section:
    blocks: list[Block] = [Paragraph(tone_reliability_statement(data))]
    measures = data.tone_validation_measures()
    if measures:
        blocks.append(Table(["Measure", "Estimate (95% CI)"],
                            [[tone_measure_label(m["measure"]), fmt_interval(m["estimate"], m["ci_low"], m["ci_high"])]
                             for m in measures]))
    summary = data.tone_summary
    if summary is not None:
        facts = [("Method", ", ".join(summary["methods"]) or "not recorded"),
                 ("Images", str(summary["n_images"])),
                 ("Status", ", ".join(f"{k}: {v}" for k, v in summary["status_counts"].items()) or "not recorded")]
        if summary["median_ita_interval_width"] is not None:
            # fairderm-ita/1 intervals were the patch bootstrap alone; later ones carry the cast and exposure
            carries = ("skin variation only" if any(m.startswith("fairderm-ita/1") for m in summary["methods"])
                       else "skin variation, colour cast and exposure")
            facts.append(("Median 95% ITA interval width",
                          f"{summary['median_ita_interval_width']:.1f}° ({carries})"))
        if summary.get("measurement_repeatability") is not None:
            facts.append(("Measurement repeatability: share of measured images whose ITA, varied within its "
                          "interval, stays in its group",
                          f"{summary['measurement_repeatability']:.2f} (from the intervals, no labels used; "
                          f"{REPEATABILITY_IS_NOT_ACCURACY})"))
        if summary["fitzpatrick_counts"]:
            facts.append(("Estimated Fitzpatrick types",
                          ", ".join(f"{k}: {v}" for k, v in summary["fitzpatrick_counts"].items())))
        if summary["calibration"]:
            facts.append(("Calibration", str(summary["calibration"])))
        blocks.append(Facts(facts))
    return Section("Skin-tone estimator reliability", blocks)


def _gate(data: CardData) -> Section:
    if not data.gate:
        return Section("Release gate", [Paragraph("This run was not gated: no gate.json in the run folder. "
                                                  "Run `fairderm gate RUN_DIR --policy POLICY.yaml`.")])
    policy = data.gate.get("policy") or {}
    text = f"Verdict: {data.gate_verdict}"
    if policy.get("name"):
        text += f" under policy {policy['name']}"
    if policy.get("sha256"):
        text += f" (policy SHA-256 {policy['sha256']})"
    rows = [[str(r.get("id")), str(r.get("text") or ""), str(r.get("verdict")), str(r.get("message") or "")]
            for r in data.gate.get("rules", []) if isinstance(r, dict)]
    return Section("Release gate", [Paragraph(text + "."), Table(["Rule", "Checks", "Verdict", "Why"], rows),
                                    Paragraph(LEGEND)])


def _evidence(data: CardData) -> Section:
    run = data.run
    blocks: list[Block] = []
    if run.evidence is not None:
        blocks.append(Paragraph("Hashes of the run's files as stored now; evidence.json holds the hashes recorded "
                                "by the audit, which `fairderm verify` checks."))
    else:
        blocks.append(Paragraph("The hashes below were computed when this card was written. An audit writes "
                                "evidence.json after this card, as the run's last file: it records the hashes of "
                                "every file of the run, this card included, which `fairderm verify` checks."))
    blocks.append(Table(["File", "SHA-256"], [[path, digest] for path, digest in run.file_hashes.items()]))
    env = run.environment or {}
    facts = []
    if env.get("python"):
        facts.append(("Python", str(env["python"])))
    if env.get("platform"):
        facts.append(("Platform", str(env["platform"])))
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    if packages:
        facts.append(("Packages", ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))))
    if env.get("gpu"):
        facts.append(("GPU", str(env["gpu"].get("name") if isinstance(env["gpu"], dict) else env["gpu"])))
    seeds = (run.evidence or {}).get("seeds")
    if isinstance(seeds, dict) and seeds:
        facts.append(("Seeds", ", ".join(f"{k}: {v}" for k, v in seeds.items())))
    if data.config.get("seed") is not None:
        facts.append(("Bootstrap seed", str(data.config["seed"])))
    if facts:
        blocks.append(Facts(facts))
    return Section("Evidence", blocks)


def build_document(data: CardData) -> Document:
    """The card's sections, in the order of Mitchell et al. (2019), then fairderm's additions."""
    sections = [
        _model_details(data),
        _intended_use(data),
        _factors(data),
        _metrics(data),
        _evaluation_data(data),
        Section("Training data", [Paragraph(training_description(data))]),
        _quantitative(data),
    ]
    reasoning = _reasoning(data)
    if reasoning is not None:
        sections.append(reasoning)
    trust = _trust(data)
    if trust is not None:
        sections.append(trust)
    sections += [
        _sizes_and_power(data),
        _tone(data),
    ]
    mitigation = mitigation_section(data)
    if mitigation is not None:
        sections.append(mitigation)
    sections += [
        _gate(data),
        Section("Ethical considerations", [Bullets([
            f"{r['name']} Mitigation: {r['mitigation_strategy']}" if r.get("mitigation_strategy") else r["name"]
            for r in ethical_risks(data)])]),
        Section("Caveats and recommendations", [Bullets(gate_caveat(data) + limitations(data) + caveats(data))]),
        _evidence(data),
    ]
    return Document(title=f"Model card: {data.name}", verdict=data.gate_verdict, details=headline_details(data),
                    sections=sections)
