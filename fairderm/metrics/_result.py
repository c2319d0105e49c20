"""Result objects of :func:`evaluate` and :func:`compare`: tidy frames,
typed rows keyed by :class:`GroupKey`, a summary rendered as text, Markdown
or HTML, and the JSON form (``metrics.json``) that round-trips."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairderm._io import json_safe, to_json_text
from fairderm.errors import InputError
from fairderm.markdown import escape_markdown
from fairderm.metrics._casemix import CASE_MIX_COLUMNS
from fairderm.metrics._groups import ALL, DisparityRow, GroupKey, GroupRow, disparity_row, group_row, optional_text

SCHEMA = "fairderm.metrics/1"
COMPARISON_SCHEMA = "fairderm.metrics.comparison/1"

GROUP_COLUMNS = ["group", "metric", "estimate", "ci_low", "ci_high", "n", "n_pos", "flag"]
#: ``basis``: how the rows' groups are known -- ``labelled`` (recorded values),
#: ``estimated`` (e.g. estimated skin tone, taken at face value), ``corrected``
#: (true groups from estimates plus validation labels) or ``bounded`` (range over
#: what an error model of the estimate allows; ``estimate`` is null and
#: ``bound_low``/``bound_high`` hold the identified range).
STRATA_COLUMNS = ["basis", "bound_low", "bound_high"]
GROUP_RECORD = ["attribute", *GROUP_COLUMNS, *STRATA_COLUMNS]
DISPARITY_COLUMNS = ["metric", "kind", "group", "estimate", "ci_low", "ci_high"]
DISPARITY_RECORD = ["attribute", *DISPARITY_COLUMNS, "reference", "flag", *STRATA_COLUMNS]
#: ``flag`` of a test says whether its groups allow it: ``ok`` (two or more groups flagged ok, the
#: only ones tested), ``insufficient`` (fewer than two flagged ok) or ``single_group`` (fewer than
#: two with cases); ``note`` says why a test with an ``ok`` flag has no p-value (e.g. ``n_perm = 0``).
TEST_COLUMNS = ["metric", "attribute", "test", "statistic", "dof", "p_value", "p_adjusted", "method",
                "n_groups", "groups", "n_perm", "flag", "note"]
CALIBRATION_COLUMNS = ["attribute", "group", "kind", "bin", "bin_low", "bin_high", "n", "mean_confidence",
                       "observed", "observed_ci_low", "observed_ci_high"]
POWER_COLUMNS = ["attribute", "group", "metric", "comparator", "n", "n_comparator", "estimate", "baseline",
                 "observed_difference", "mdd", "mdd_increase", "design_effect", "alpha", "power", "flag"]
DIFFERENCE_COLUMNS = ["attribute", "group", "metric", "estimate_a", "estimate_b", "difference", "ci_low",
                      "ci_high", "flag"]
DISPARITY_DIFFERENCE_COLUMNS = ["attribute", "metric", "kind", "group", "estimate_a", "estimate_b", "difference",
                                "ci_low", "ci_high", "flag"]

_INTEGER_COLUMNS = {"n", "n_pos", "dof", "n_groups", "n_perm", "bin", "n_comparator"}

TABLES = {
    "groups": GROUP_RECORD,
    "disparities": DISPARITY_RECORD,
    "tests": TEST_COLUMNS,
    "calibration": CALIBRATION_COLUMNS,
    "case_mix": CASE_MIX_COLUMNS,
    "power": POWER_COLUMNS,
}


def _plain(value: Any, column: str) -> Any:
    """A JSON-safe cell (:func:`fairderm._io.json_safe`); counts written as integers."""
    value = json_safe(value)
    if column in _INTEGER_COLUMNS and isinstance(value, float):
        return int(round(value))
    return value


def records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of ``frame`` as JSON-safe dicts with exactly ``columns``."""
    out = []
    for row in frame.reindex(columns=columns).itertuples(index=False, name=None):
        out.append({c: _plain(v, c) for c, v in zip(columns, row)})
    return out


#: The columns a record must hold (null allowed) for the tables to be read at all.
_REQUIRED = {
    "groups": ("group", "metric", "estimate", "ci_low", "ci_high", "n", "n_pos", "flag"),
    "disparities": ("metric", "kind", "group", "estimate", "ci_low", "ci_high"),
}


def _check_required(rows: Any, required: tuple[str, ...], what: str) -> None:
    if not isinstance(rows, list):
        return  # absent, or not a list: frame_from_records says which
    for index, record in enumerate(rows):
        if not isinstance(record, Mapping):
            raise InputError(f"{what}[{index}] is not a record", column=what)
        missing = [key for key in required if key not in record]
        if missing:
            raise InputError(f"{what}[{index}] lacks {', '.join(missing)}", column=what)


def frame_from_records(rows: Any, columns: list[str], what: str) -> pd.DataFrame:
    if rows is None:
        rows = []
    if not isinstance(rows, list) or any(not isinstance(r, Mapping) for r in rows):
        raise InputError(f"'{what}' must be a list of records", column=what)
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
    for column in columns:
        if column in ("estimate", "ci_low", "ci_high", "statistic", "p_value", "p_adjusted", "bound_low",
                      "bound_high"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    if "attribute" in frame.columns and "group" in frame.columns:
        # records written before the attribute column: the group's name says it
        frame["attribute"] = [a if isinstance(a, str) and a else _attribute_from_name(g)
                              for a, g in zip(frame["attribute"], frame["group"])]
    if "n_pos" in frame.columns:
        frame["n_pos"] = pd.array(
            [None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v) for v in frame["n_pos"]],
            dtype="Int64",
        )
    return frame


def _attribute_from_name(group: Any) -> str:
    text = optional_text(group)
    return GroupKey.parse(text).attribute if text and (text == ALL or "=" in text) else ALL


def _interval_text(estimate: float, low: float, high: float) -> str:
    if estimate is None or not np.isfinite(estimate):
        return "n/a"
    if low is None or not (np.isfinite(low) and np.isfinite(high)):
        return f"{estimate:.3f}"
    return f"{estimate:.3f} [{low:.3f}, {high:.3f}]"


@dataclass
class Disparities:
    """Disparity table: one row per (attribute, metric, kind, group).

    ``to_frame()`` has the columns ``metric, kind, group, estimate, ci_low,
    ci_high``; ``to_frame(full=True)`` adds ``attribute``, ``reference`` (the
    reference group for ``diff_vs_ref``, the best group for gaps and ratios)
    and ``flag``.
    """

    frame: pd.DataFrame
    columns: list[str] = field(default_factory=lambda: list(DISPARITY_COLUMNS))

    def to_frame(self, full: bool = False) -> pd.DataFrame:
        if full:
            return self.frame.copy()
        return self.frame[self.columns].copy()

    def get(self, metric: str, kind: str = "gap", attribute: str | None = None) -> pd.DataFrame:
        """Rows for one metric and kind (and attribute)."""
        rows = self.frame[(self.frame["metric"] == metric) & (self.frame["kind"] == kind)]
        if attribute is not None:
            rows = rows[rows["attribute"] == attribute]
        return rows.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class EvaluationResult:
    """Per-group metrics with intervals, disparities, tests, calibration,
    case-mix adjustment and power, with the configuration that produced them.

    Attributes
    ----------
    groups
        Columns ``attribute`` + ``group, metric, estimate, ci_low, ci_high, n,
        n_pos, flag`` (see :func:`fairderm.metrics.evaluate` for the flags).
    disparities
        :class:`Disparities`.
    tests, calibration, case_mix, power
        DataFrames (columns in :data:`TABLES`).
    config
        Everything needed to reproduce the numbers (B, interval method, seed,
        cluster column, thresholds, labels, package versions, input hash).
    """

    groups: pd.DataFrame
    disparities: Disparities
    tests: pd.DataFrame
    calibration: pd.DataFrame
    case_mix: pd.DataFrame
    power: pd.DataFrame
    config: dict[str, Any]

    def to_frame(self, full: bool = False) -> pd.DataFrame:
        """Group x metric table; ``full=True`` adds the ``attribute`` column in front."""
        return self.groups[GROUP_RECORD if full else GROUP_COLUMNS].copy()

    def estimate(self, metric: str, group: GroupKey | Mapping[str, Any] | str = ALL) -> float:
        """The point estimate of one metric in one group (NaN when undefined)."""
        estimate = self.interval(metric, group).estimate
        return math.nan if estimate is None else estimate

    @property
    def attributes(self) -> list[str]:
        """The attributes the groups belong to, in table order (``all`` left out)."""
        return [a for a in dict.fromkeys(self.groups["attribute"].astype(str)) if a != ALL]

    @property
    def metric_names(self) -> list[str]:
        """The metrics of the group table, in table order."""
        return list(dict.fromkeys(self.groups["metric"].astype(str)))

    def by_group(self, metric: str | None = None, attribute: str | None = None) -> list[GroupRow]:
        """The group rows of one metric and/or one attribute (every row when both are None), in table order."""
        frame = self.groups
        if metric is not None:
            frame = frame[frame["metric"] == metric]
        if attribute is not None:
            frame = frame[frame["attribute"] == attribute]
        return [group_row(record) for record in frame.to_dict("records")]

    def interval(self, metric: str, group: GroupKey | Mapping[str, Any] | str = ALL) -> GroupRow:
        """One metric in one group: a key, a mapping ``{attribute: value}``, a full name or ``all``.

        Raises
        ------
        KeyError
            When the result has no such row.
        """
        key = GroupKey.coerce(group)
        found = next((row for row in self.by_group(metric, key.attribute) if row.key == key), None)
        if found is None:
            raise KeyError(f"no {metric!r} for group {str(key)!r}")
        return found

    def gap(self, metric: str, attribute: str | None = None, kind: str = "gap") -> list[DisparityRow]:
        """Disparities of one kind (``gap``, ``ratio``, ``diff_vs_ref``, ``eod``, ``dpd``) of a metric.

        One row per attribute for a gap or ratio, one per group for
        ``diff_vs_ref``; ``attribute`` keeps one attribute's rows.
        """
        frame = self.disparities.frame
        frame = frame[(frame["metric"] == metric) & (frame["kind"] == kind)]
        if attribute is not None:
            frame = frame[frame["attribute"] == attribute]
        return [disparity_row(record) for record in frame.to_dict("records")]

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` form: JSON-safe, NaN/inf written as null."""
        tables = {
            "groups": self.groups, "disparities": self.disparities.frame, "tests": self.tests,
            "calibration": self.calibration, "case_mix": self.case_mix, "power": self.power,
        }
        out: dict[str, Any] = {"schema": SCHEMA}
        for key, frame in tables.items():
            out[key] = records(frame, TABLES[key])
        out["config"] = _plain_config(self.config)
        return out

    def to_json(self) -> str:
        return to_json_text(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Rebuild a result from :meth:`to_dict` output (e.g. a loaded ``metrics.json``)."""
        if not isinstance(data, Mapping) or "groups" not in data:
            raise InputError("not a metrics result: no 'groups' table", column="groups")
        for key, required in _REQUIRED.items():
            _check_required(data.get(key), required, key)
        frames = {key: frame_from_records(data.get(key), columns, key) for key, columns in TABLES.items()}
        return cls(
            groups=frames["groups"],
            disparities=Disparities(frames["disparities"]),
            tests=frames["tests"],
            calibration=frames["calibration"],
            case_mix=frames["case_mix"],
            power=frames["power"],
            config=dict(data.get("config") or {}),
        )

    def report(self) -> Summary:
        """The reviewer's report as one object: ``as_text()``, ``as_markdown()``, ``as_html()``."""
        config = self.config
        heading = (
            f"fairderm metrics: {config.get('n_cases')} cases, task {config.get('task')}, "
            f"{config.get('ci')} {int(100 * config.get('confidence', 0.95))}% intervals, "
            f"B={config.get('n_boot')}, seed={config.get('seed')}, "
            f"cluster={config.get('cluster') or 'none'}, min group size {config.get('min_group_size')}"
        )
        table = self.groups.assign(
            value=[_interval_text(e, lo, hi) for e, lo, hi in
                   zip(self.groups["estimate"], self.groups["ci_low"], self.groups["ci_high"])]
        )
        sections = [("Per group", table[["group", "metric", "value", "n", "n_pos", "flag"]])]
        frame = self.disparities.frame
        if len(frame):
            shown = frame[frame["kind"] != "diff_vs_ref"]
            shown = shown.assign(value=[_interval_text(e, lo, hi) for e, lo, hi in
                                        zip(shown["estimate"], shown["ci_low"], shown["ci_high"])])
            sections.append(("Disparities (group = worst, reference = best)",
                             shown[["attribute", "metric", "kind", "value", "group", "reference", "flag"]]))
        if len(self.tests):
            sections.append((f"Tests across groups (p adjusted: {config.get('p_adjust')})",
                             self.tests[["attribute", "metric", "test", "p_value", "p_adjusted"]]))
        if len(self.case_mix):
            sections.append(("Case-mix adjusted odds ratios of a correct prediction",
                             self.case_mix[["attribute", "group", "reference", "raw_or", "adjusted_or", "ci_low",
                                            "ci_high", "flag"]]))
        if len(self.power):
            sections.append(("Minimum detectable decrease (80% power, alpha 0.05)",
                             self.power[["attribute", "group", "metric", "n", "mdd", "flag"]]))
        return Summary(heading, sections)

    def summary(self) -> str:
        """A plain-text report a reviewer can read (``report().as_text()``)."""
        return self.report().as_text()

    def render(self, fmt: Literal["text", "markdown", "html"] = "text") -> str:
        """The report as plain text, Markdown or an HTML fragment."""
        return self.report().render(fmt)

    def __repr__(self) -> str:
        return (f"EvaluationResult({len(self.groups)} group rows, {len(self.disparities)} disparities, "
                f"{len(self.tests)} tests; B={self.config.get('n_boot')}, ci={self.config.get('ci')})")


@dataclass(frozen=True)
class Summary:
    """A report of titled tables, rendered as plain text, Markdown or HTML (as statsmodels' ``Summary``).

    Every cell is user-provided or computed text: Markdown escapes it (see
    :func:`fairderm.markdown.escape_markdown`) and HTML turns it into entities.
    """

    heading: str
    sections: list[tuple[str, pd.DataFrame]]

    def as_text(self) -> str:
        lines = [self.heading, ""]
        for number, (title, frame) in enumerate(self.sections):
            lines += ([""] if number else []) + [title, frame.to_string(index=False)]
        return "\n".join(lines)

    def as_markdown(self) -> str:
        lines = [f"**{escape_markdown(self.heading)}**"]
        for title, frame in self.sections:
            lines += ["", f"### {escape_markdown(title)}", "",
                      "| " + " | ".join(escape_markdown(c) for c in frame.columns) + " |",
                      "|" + "---|" * len(frame.columns)]
            lines += ["| " + " | ".join(escape_markdown(_cell(v)) for v in row) + " |"
                      for row in frame.itertuples(index=False, name=None)]
        return "\n".join(lines) + "\n"

    def as_html(self) -> str:
        parts = [f"<p><strong>{html.escape(self.heading)}</strong></p>"]
        for title, frame in self.sections:
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                           for row in frame.itertuples(index=False, name=None))
            parts.append(f"<h3>{html.escape(title)}</h3>\n<table>\n<thead><tr>{head}</tr></thead>\n"
                         f"<tbody>{body}</tbody>\n</table>")
        return "\n".join(parts) + "\n"

    def render(self, fmt: Literal["text", "markdown", "html"] = "text") -> str:
        """One of :meth:`as_text`, :meth:`as_markdown`, :meth:`as_html` by name."""
        renderers = {"text": self.as_text, "markdown": self.as_markdown, "html": self.as_html}
        if fmt not in renderers:
            raise ValueError(f"fmt must be one of {', '.join(renderers)}, got {fmt!r}")
        return renderers[fmt]()


def _cell(value: Any) -> str:
    """A table cell as text: an undefined number is empty, a float has 4 significant digits."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def read_metrics(path: str | Path) -> EvaluationResult:
    """Read a ``metrics.json`` file into an :class:`EvaluationResult`.

    Raises
    ------
    InputError
        One line naming the file: missing, not JSON, or not the metrics
        contract (no ``groups`` table, a table that is not a list of records).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path.name} not found", source=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid JSON: {str(exc).splitlines()[0]}", source=str(path)) from None
    except RecursionError:
        raise InputError("nested too deeply to read", source=str(path)) from None
    try:
        return EvaluationResult.from_dict(data)
    except InputError as exc:
        raise InputError(exc.reason, source=str(path), column=exc.column) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"not the metrics contract: {str(exc).splitlines()[0]}", source=str(path)) from None


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return json_safe(dict(config))


@dataclass
class ComparisonResult:
    """Two models on the same cases, with paired-bootstrap intervals of their differences.

    Attributes
    ----------
    names
        The two models' names; differences are ``names[0] - names[1]``.
    results
        The :class:`EvaluationResult` of each model (intervals from the same
        replicates).
    differences
        Columns :data:`DIFFERENCE_COLUMNS`: each group's metric in both models
        and the interval of the difference.
    disparities
        :class:`Disparities` of the differences of each gap, ratio, ... between
        the models (columns :data:`DISPARITY_DIFFERENCE_COLUMNS`).
    config
        As in :class:`EvaluationResult`, plus the model names.
    """

    names: tuple[str, str]
    results: dict[str, EvaluationResult]
    differences: pd.DataFrame
    disparities: Disparities
    config: dict[str, Any]

    @property
    def result_a(self) -> EvaluationResult:
        return self.results[self.names[0]]

    def to_frame(self) -> pd.DataFrame:
        return self.differences.copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": COMPARISON_SCHEMA,
            "models": list(self.names),
            "results": {name: self.results[name].to_dict() for name in self.names},
            "differences": records(self.differences, DIFFERENCE_COLUMNS),
            "disparity_differences": records(self.disparities.frame, DISPARITY_DIFFERENCE_COLUMNS),
            "config": _plain_config(self.config),
        }

    def to_json(self) -> str:
        return to_json_text(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonResult:
        names = tuple(data.get("models") or ())
        if len(names) != 2:
            raise InputError("not a comparison result: 'models' must name two models", column="models")
        return cls(
            names=names,  # type: ignore[arg-type]
            results={name: EvaluationResult.from_dict(data["results"][name]) for name in names},
            differences=frame_from_records(data.get("differences"), DIFFERENCE_COLUMNS, "differences"),
            disparities=Disparities(
                frame_from_records(data.get("disparity_differences"), DISPARITY_DIFFERENCE_COLUMNS,
                                   "disparity_differences"),
                columns=list(DISPARITY_DIFFERENCE_COLUMNS),
            ),
            config=dict(data.get("config") or {}),
        )

    def summary(self) -> str:
        a, b = self.names
        table = self.differences.assign(
            change=[_interval_text(e, lo, hi) for e, lo, hi in
                    zip(self.differences["difference"], self.differences["ci_low"], self.differences["ci_high"])]
        )
        lines = [f"Paired comparison {a} - {b} ({self.config.get('ci')} intervals, B={self.config.get('n_boot')}, "
                 f"seed={self.config.get('seed')})", "",
                 table[["group", "metric", "estimate_a", "estimate_b", "change", "flag"]].to_string(index=False)]
        frame = self.disparities.frame
        if len(frame):
            shown = frame.assign(change=[_interval_text(e, lo, hi) for e, lo, hi in
                                         zip(frame["difference"], frame["ci_low"], frame["ci_high"])])
            lines += ["", "Change in disparities",
                      shown[["attribute", "metric", "kind", "estimate_a", "estimate_b", "change", "flag"]]
                      .to_string(index=False)]
        return "\n".join(lines)
