"""A predictor's output for a batch of cases, turned into validated prediction rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from fairderm.inference._images import LoadedBatch
from fairderm.inference._labels import label_for_name
from fairderm.inference._predictions import one_line
from fairderm.inference._predictor import Predictor, PredictorOutput
from fairderm.inference._report import parse_report


class RowBuilder:
    """Turns a predictor's output for a batch into validated prediction rows."""

    def __init__(
        self, predictor: Predictor, labels: Sequence[str], class_labels: Sequence[str]
    ) -> None:
        self.labels = list(labels)
        self.n_classes = len(class_labels)
        self.has_text = predictor.writes_text
        self.has_probs = predictor.gives_probabilities
        # (n_classes, n_labels) 0/1 matrix: several model classes may sum into one label
        self.to_labels = np.zeros((self.n_classes, len(self.labels)))
        for k, label in enumerate(class_labels):
            self.to_labels[k, self.labels.index(label)] = 1.0
        self.class_to_label = dict(zip(map(str, predictor.classes), class_labels))

    def error_rows(self, ids: Sequence[str], reason: str) -> list[dict[str, Any]]:
        return [{"image_id": i, "status": "error", "reason": reason} for i in ids]

    def rows(self, ids: Sequence[str], output: PredictorOutput) -> list[dict[str, Any]]:
        n = len(ids)
        problem = self._shape_problem(output, n)
        if problem:
            return self.error_rows(ids, problem)
        rows = []
        for j, image_id in enumerate(ids):
            row: dict[str, Any] = {"image_id": image_id, "status": "ok", "reason": None}
            for key, values in output.extras.items():
                row[key] = values[j]
            if output.status is not None and output.status[j] not in (None, "ok"):
                row["status"] = output.status[j]
                row["reason"] = (output.reason or [None] * n)[j] or "predictor reported an error"
                if output.text is not None:
                    row["text"] = output.text[j]
                rows.append(row)
                continue
            if output.probs is not None:
                self._fill_probs(row, np.asarray(output.probs[j], dtype=np.float64))
            if output.pred is not None and row["status"] == "ok":
                self._fill_pred(row, output.pred[j])
            if output.text is not None:
                self._fill_text(row, output.text[j])
            rows.append(row)
        return rows

    def _shape_problem(self, output: PredictorOutput, n: int) -> str | None:
        if output.probs is not None:
            shape = tuple(np.shape(output.probs))
            if shape != (n, self.n_classes):
                return f"model output has shape {shape}, expected ({n}, {self.n_classes})"
        for name in ("text", "pred", "status", "reason"):
            values = getattr(output, name)
            if values is not None and len(values) != n:
                return f"predictor returned {len(values)} {name} values for {n} cases"
        for key, values in output.extras.items():
            if len(values) != n:
                return f"predictor returned {len(values)} {key} values for {n} cases"
        if output.probs is None and output.text is None and output.pred is None:
            return "predictor returned neither probabilities, predictions nor text"
        return None

    def _fill_probs(self, row: dict[str, Any], probs: np.ndarray) -> None:
        if not np.all(np.isfinite(probs)):
            row.update(status="error", reason="model output is NaN or infinite")
            return
        if np.any(probs < 0) or np.any(probs > 1 + 1e-6):
            row.update(status="error", reason="model output is not a probability (outside 0-1)")
            return
        by_label = probs @ self.to_labels
        for label, value in zip(self.labels, by_label):
            row[f"prob_{label}"] = float(value)
        row["pred"] = self.labels[int(np.argmax(by_label))]

    def _fill_pred(self, row: dict[str, Any], pred: str | None) -> None:
        if pred is None:
            if "pred" not in row:
                row.update(status="error", reason="no prediction for this case")
            return
        label = self.class_to_label.get(str(pred)) or label_for_name(str(pred), self.labels)
        if label is None:
            row.update(
                status="error", reason=f"prediction {pred!r} is not one of the model's classes"
            )
        else:
            row["pred"] = label

    def _fill_text(self, row: dict[str, Any], text: str | None) -> None:
        row["text"] = text
        parsed = parse_report(text, self.labels)
        row["status"] = parsed.status
        row["reason"] = parsed.reason
        row["pred"] = parsed.pred
        row["differential"] = "; ".join(parsed.differential) if parsed.differential else None


def predict_batches(
    predictor: Predictor,
    builder: RowBuilder,
    loader: Iterable[LoadedBatch],
    case_ids: Sequence[str],
    strata: Sequence[str],
) -> Iterator[list[dict[str, Any]]]:
    """The rows of each batch of ``loader``, in case order; ``case_ids`` and ``strata`` are indexed by its positions.

    A case whose image did not load, and every case of a batch on which the
    model raised, is an ``error`` row with the reason: never an exception.
    """
    offset = 0
    for batch in loader:
        # dataset positions index the cases; a batch covers offset .. offset + size - 1 in order
        size = len(batch.positions) + len(batch.failures)
        rows: dict[int, dict[str, Any]] = {}
        for k, reason in batch.failures:
            rows[k] = builder.error_rows([case_ids[k]], reason)[0]
        if batch.positions:
            good_ids = [case_ids[k] for k in batch.positions]
            try:
                good_rows = builder.rows(good_ids, predictor.predict(batch.inputs, good_ids))
            except Exception as exc:  # noqa: BLE001  a crashing model fails its batch, never the run
                good_rows = builder.error_rows(good_ids, f"model failed on this batch: {one_line(exc)}")
            rows.update(zip(batch.positions, good_rows))
        ordered = [rows[k] for k in range(offset, offset + size)]
        for k, row in zip(range(offset, offset + size), ordered):
            row["stratum"] = strata[k]
        offset += size
        yield ordered
