"""What a card says, gathered once from a run and shared by the JSON, Markdown and HTML forms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fairderm.cards._info import CardInfo
from fairderm.cards._run import RunArtifacts
from fairderm.metrics import GroupKey
from fairderm.tone import measurement_repeatability

GROUP_COLUMNS = ["attribute", "group", "metric", "estimate", "ci_low", "ci_high", "n", "n_pos", "flag", "basis"]
DISPARITY_COLUMNS = ["attribute", "metric", "kind", "group", "reference", "estimate", "ci_low", "ci_high", "basis"]
TONE_GROUP_ORDER = ["I-II", "III-IV", "V-VI"]

METRIC_NAMES = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "top_k_accuracy": "Top-k accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "f1": "F1",
    "f1_macro": "Macro F1",
    "auroc": "AUROC",
    "auroc_macro": "Macro AUROC",
    "brier": "Brier score",
    "ece": "ECE",
    "selection_rate": "Selection rate",
    "equalized_odds": "Sensitivity and specificity",
}
METRIC_MEANINGS = {
    "accuracy": "share of cases whose predicted diagnosis is correct",
    "balanced_accuracy": "mean of per-class recall",
    "top_k_accuracy": "share of cases whose true diagnosis is among the top k predictions",
    "sensitivity": "share of malignant (positive) cases flagged as positive: a missed cancer lowers it",
    "specificity": "share of benign (negative) cases left negative",
    "ppv": "share of positive calls that are truly positive",
    "npv": "share of negative calls that are truly negative",
    "f1": "harmonic mean of PPV and sensitivity",
    "f1_macro": "F1 averaged over classes",
    "auroc_macro": "one-vs-rest AUROC averaged over classes",
    "auroc": "probability that a random positive case scores above a random negative one",
    "brier": "mean squared error of the predicted probability (lower is better)",
    "ece": "expected calibration error, equal-mass bins (lower is better)",
    "selection_rate": "share of cases called positive",
}
DISPARITY_NAMES = {
    "gap": "max-min gap",
    "ratio": "min/max ratio",
    "diff_vs_ref": "difference from reference",
    "eod": "equalized-odds difference",
    "dpd": "demographic-parity difference",
}
# Shown first in the card's tables, when present.
HEADLINE_METRICS = ["accuracy", "sensitivity", "specificity", "auroc", "ece", "balanced_accuracy"]


def number(value: Any) -> float | None:
    """A finite float, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number for display; an en dash when undefined."""
    result = number(value)
    return "–" if result is None else f"{result:.{digits}f}"


def fmt_interval(estimate: Any, low: Any, high: Any) -> str:
    """``0.842 (0.810 to 0.871)``, or the estimate alone when there is no interval.

    Parentheses and "to" rather than brackets: nothing to escape in Markdown,
    and no confusion with a minus sign when a bound is negative.
    """
    if number(estimate) is None:
        return "–"
    if number(low) is None or number(high) is None:
        return fmt(estimate)
    return f"{fmt(estimate)} ({fmt(low)} to {fmt(high)})"


def fmt_range(low: Any, high: Any) -> str:
    """``range 0.412 to 0.917``: a bounded value (every value in it is consistent with the data)."""
    if number(low) is None or number(high) is None:
        return "–"
    return f"range {fmt(low)} to {fmt(high)}"


def metric_label(metric: str, top_k: int | None = None) -> str:
    """Display name of a metric: ``Sensitivity (melanoma)`` for ``sensitivity:melanoma``; unknown names as given.

    ``top_k`` (metrics.json's ``config.top_k``) puts the k into ``Top-3 accuracy``.
    """
    base, _, detail = metric.partition(":")
    if base == "mean_score" and detail:
        return f"Mean score ({detail})"
    label = METRIC_NAMES.get(base, base)
    if base == "top_k_accuracy" and top_k:
        label = f"Top-{top_k} accuracy"
    return f"{label} ({detail})" if detail else label


def metric_meaning(metric: str, top_k: int | None = None) -> str:
    """What a metric measures, in words ('' when unknown); per-class metrics share their family's meaning."""
    base, _, detail = metric.partition(":")
    if base == "mean_score":
        return f"mean of the per-case score column {detail}"
    meaning = METRIC_MEANINGS.get(base, "")
    if base == "top_k_accuracy" and top_k:
        meaning = f"share of cases whose true diagnosis is among the {top_k} most probable predictions"
    return f"{meaning} (class {detail}, one-vs-rest)" if meaning and detail else meaning


TONE_MEASURE_NAMES = {
    "exact_agreement": "Exact agreement",
    "within_one": "Agreement within one type",
    "kappa_quadratic": "Quadratic-weighted kappa",
    "spearman": "Spearman correlation",
    "abstention_rate": "Abstention rate",
    "consistency_icc": "Consistency (ICC)",
    "measurement_repeatability": "Measurement repeatability",
}


def tone_measure_label(measure: str) -> str:
    """Display name of a tone validation measure (``Quadratic-weighted kappa`` for ``metrics.kappa_quadratic``)."""
    key = measure.rsplit(".", 1)[-1]
    return TONE_MEASURE_NAMES.get(key, key.replace("_", " ").capitalize())


def short_group(group: str, attribute: str) -> str:
    """``V-VI`` for the group ``fitzpatrick_est=V-VI`` of ``fitzpatrick_est`` (see :attr:`GroupKey.label`).

    Intersections keep their full name, as does a name that is not a group of ``attribute``.
    """
    if group != "all" and "=" not in group:
        return group
    key = GroupKey.parse(group)
    return key.label if key.attribute == attribute else group


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame[columns].astype(object).where(frame[columns].notna(), None)


def _tone_sort_key(group: str) -> tuple[int, str]:
    return (TONE_GROUP_ORDER.index(group), "") if group in TONE_GROUP_ORDER else (len(TONE_GROUP_ORDER), group)


@dataclass
class CardData:
    """A run's measurements and the owner's text, normalised for rendering."""

    run: RunArtifacts
    info: CardInfo
    gate: dict[str, Any] | None
    groups: pd.DataFrame
    disparities: pd.DataFrame
    #: The run's metrics in their JSON-safe form (``metrics.json``), as the card shows and embeds them.
    tables: dict[str, Any]

    @classmethod
    def build(cls, run: RunArtifacts, info: CardInfo, gate: dict[str, Any] | None) -> CardData:
        """Normalise a run's tables for display (the run's result is left alone)."""
        tables = run.metrics.to_dict()
        return cls(run=run, info=info, gate=gate if gate is not None else run.gate,
                   groups=_frame(tables["groups"], GROUP_COLUMNS),
                   disparities=_frame(tables["disparities"], DISPARITY_COLUMNS), tables=tables)

    # identity -----------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.tables["config"]

    @property
    def model_identity(self) -> dict[str, Any]:
        """The predictor's identity from predictions.parquet, else the spec's ``model`` mapping."""
        meta = self.run.predictions_meta or {}
        if isinstance(meta.get("model"), dict):
            return {"backend": meta.get("backend"), **meta["model"]}
        model = (self.run.spec or {}).get("model")
        if isinstance(model, dict):
            return model
        return {"model": model} if model else {}

    @property
    def model_reference(self) -> str | None:
        """Model path or served name, as the inference backend recorded it."""
        identity = self.model_identity
        for key in ("model", "name", "path", "model_name"):
            if isinstance(identity.get(key), str) and identity[key]:
                return identity[key]
        return None

    @property
    def name(self) -> str:
        """The card's title."""
        if self.info.model_name:
            return self.info.model_name
        if self.run.audit_name:
            return self.run.audit_name
        reference = self.model_reference
        return reference.rstrip("/").rsplit("/", 1)[-1] if reference else "model"

    @property
    def backend(self) -> str | None:
        return self.model_identity.get("backend")

    @property
    def cohort(self) -> dict[str, Any]:
        meta = self.run.predictions_meta or {}
        cohort = meta.get("cohort") if isinstance(meta.get("cohort"), dict) else {}
        spec_cohort = (self.run.spec or {}).get("cohort")
        name = cohort.get("name") or (spec_cohort if isinstance(spec_cohort, str) else None)
        return {"name": name, "n_cases": cohort.get("n_cases"),
                "manifest_sha256": meta.get("cohort_manifest_sha256")}

    # measurements -------------------------------------------------------------------------------
    @property
    def metric_names(self) -> list[str]:
        present = list(dict.fromkeys(self.groups["metric"].dropna().astype(str)))
        return [m for m in HEADLINE_METRICS if m in present] + [m for m in present if m not in HEADLINE_METRICS]

    @property
    def attributes(self) -> list[str]:
        return [a for a in dict.fromkeys(self.groups["attribute"].astype(str)) if a != "all"]

    @property
    def tone_attribute(self) -> str | None:
        """The attribute the card is disaggregated by first: estimated tone when present."""
        attributes = [a for a in self.attributes if "&" not in a]
        for preferred in ("fitzpatrick_est", "fitzpatrick_group", "monk_est", "fitzpatrick"):
            if preferred in attributes:
                return preferred
        tone_like = [a for a in attributes if "fitzpatrick" in a or "monk" in a or "tone" in a]
        return tone_like[0] if tone_like else (attributes[0] if attributes else None)

    @property
    def strata(self) -> dict[str, Any] | None:
        """How the estimated tone strata were corrected or bounded (metrics.json config ``strata``)."""
        strata = self.config.get("strata")
        return strata if isinstance(strata, dict) else None

    @property
    def intersections(self) -> list[str]:
        return [a for a in self.attributes if "&" in a]

    def rows(self, attribute: str) -> pd.DataFrame:
        """Group rows of one attribute, tone groups in natural order."""
        rows = self.groups[self.groups["attribute"] == attribute]
        order = sorted(dict.fromkeys(rows["group"].astype(str)),
                       key=lambda g: _tone_sort_key(short_group(g, attribute)))
        rank = {g: k for k, g in enumerate(order)}
        return rows.assign(_rank=rows["group"].map(rank)).sort_values("_rank", kind="stable").drop(columns="_rank")

    def group_sizes(self, attribute: str) -> pd.DataFrame:
        """One row per group: n, n_pos (largest over metrics) and flag (worst over metrics)."""
        rows = self.rows(attribute)
        out = []
        for group, part in rows.groupby("group", sort=False):
            flags = [f for f in part["flag"].dropna().astype(str) if f != "ok"]
            n = [v for v in map(number, part["n"]) if v is not None]
            n_pos = [v for v in map(number, part["n_pos"]) if v is not None]
            out.append({"group": short_group(str(group), attribute), "n": int(max(n)) if n else None,
                        "n_pos": int(max(n_pos)) if n_pos else None, "flag": flags[0] if flags else "ok"})
        return pd.DataFrame(out, columns=["group", "n", "n_pos", "flag"])

    @property
    def top_k(self) -> int | None:
        """The k of top-k accuracy (metrics.json's ``config.top_k``), or None."""
        value = number(self.config.get("top_k"))
        return int(value) if value is not None else None

    @property
    def small_groups(self) -> list[tuple[str, str, int | None]]:
        """(attribute, group, n) of every group flagged other than ok."""
        found = []
        for attribute in self.attributes:
            sizes = self.group_sizes(attribute)
            for row in sizes[sizes["flag"] != "ok"].itertuples():
                found.append((attribute, str(row.group), row.n))
        return found

    def records(self, key: str) -> list[dict[str, Any]]:
        """A list-of-records section of metrics.json (tests, calibration, case_mix, power)."""
        return self.tables[key]

    def calibration_curves(self, attribute: str) -> dict[str, list[dict[str, Any]]]:
        """Reliability-curve bins per group of ``attribute`` (metrics.json ``calibration`` records)."""
        curves: dict[str, list[dict[str, Any]]] = {}
        for record in self.records("calibration"):
            if record.get("attribute") == attribute and number(record.get("mean_confidence")) is not None \
                    and number(record.get("observed")) is not None:
                curves.setdefault(short_group(str(record.get("group")), attribute), []).append(record)
        return curves

    @property
    def gate_verdict(self) -> str | None:
        return str(self.gate["verdict"]) if self.gate and self.gate.get("verdict") else None

    # tone ---------------------------------------------------------------------------------------
    @property
    def tone_summary(self) -> dict[str, Any] | None:
        """Method, status counts, abstention rate, ITA interval width and the measurement's repeatability."""
        if self.run.tone is None:
            return None
        tone, provenance = self.run.tone.frame, self.run.tone.provenance
        n = len(tone)
        status = tone["status"].astype(str).value_counts().to_dict() if "status" in tone else {}
        methods = sorted(tone["method"].dropna().astype(str).unique()) if "method" in tone else []
        width = None
        if {"ita_low", "ita_high"} <= set(tone.columns):
            widths = (pd.to_numeric(tone["ita_high"], errors="coerce")
                      - pd.to_numeric(tone["ita_low"], errors="coerce")).dropna()
            width = float(widths.median()) if len(widths) else None
        counts = {}
        if "fitzpatrick_est" in tone:
            types = pd.to_numeric(tone["fitzpatrick_est"], errors="coerce").dropna().astype(int)
            counts = {f"type {k}": int(v) for k, v in sorted(types.value_counts().items())}
        strata = None
        if {"ita", "ita_low", "ita_high", "status"} <= set(tone.columns):
            repeatability = measurement_repeatability(tone, provenance)
            strata = repeatability["repeatability"] if repeatability["n"] else None
        return {
            "n_images": n,
            "methods": methods,
            "status_counts": {str(k): int(v) for k, v in sorted(status.items())},
            "abstention_rate": (status.get("abstain", 0) + status.get("error", 0)) / n if n else None,
            "median_ita_interval_width": width,
            "measurement_repeatability": strata,
            "fitzpatrick_counts": counts,
            "calibration": provenance.estimation.get("calibration"),
        }

    def tone_validation_measures(self) -> list[dict[str, Any]]:
        """Flat (measure, estimate, ci_low, ci_high) records from tone_validation.json."""
        found: list[dict[str, Any]] = []

        def visit(prefix: str, value: Any, depth: int) -> None:
            if isinstance(value, dict) and "estimate" in value:
                found.append({"measure": prefix, "estimate": number(value.get("estimate")),
                              "ci_low": number(value.get("ci_low")), "ci_high": number(value.get("ci_high"))})
            elif isinstance(value, dict) and depth < 2:
                for key, inner in value.items():
                    if depth == 0 and key == "config":
                        continue  # the validation's settings (ci_level, n_boot), not measures
                    visit(f"{prefix}.{key}" if prefix else str(key), inner, depth + 1)
            elif isinstance(value, float) and prefix:
                found.append({"measure": prefix, "estimate": number(value), "ci_low": None, "ci_high": None})

        visit("", self.run.tone_validation or {}, 0)
        return found


def _interval_record(value: Any) -> str:
    record = value if isinstance(value, dict) else {}
    return fmt_interval(record.get("estimate"), record.get("ci_low"), record.get("ci_high"))


def levelling_down_rows(mitigation: dict[str, Any] | None) -> list[list[str]]:
    """Each method against ERM as fairness research judges a mitigation (Zietlow et al. 2022).

    From the router evaluation's ``mitigation`` record: the worst and the best
    of ERM's groups and each one's paired change in accuracy, the overall
    change, and whether the best group was levelled down (its whole interval
    below 0). Rows: method, worst group, its change, best group, its change,
    overall change, ``yes``/``no``.
    """
    report = (mitigation or {}).get("mitigation")
    if not isinstance(report, dict):
        return []
    rows = []
    for method, record in report.items():
        if not isinstance(record, dict):
            continue
        rows.append([
            str(method),
            str(record.get("worst_group") or "–"), _interval_record(record.get("worst_group_change")),
            str(record.get("best_group") or "–"), _interval_record(record.get("best_group_change")),
            _interval_record(record.get("overall_change")), "yes" if record.get("levelled_down") else "no",
        ])
    return rows


def baseline_fallbacks(mitigation: dict[str, Any] | None) -> list[str]:
    """The classes for which a baseline could not be fitted and kept the ERM head's score, with the reason."""
    found = []
    for method, record in ((mitigation or {}).get("baselines") or {}).items():
        fallbacks = record.get("fallback_classes") if isinstance(record, dict) else None
        for label, reason in (fallbacks or {}).items():
            found.append(f"{method}, class {label}: {reason}; the ERM head's score is kept for this class")
    return found
