"""Predictions reused from an earlier run (a finished output, an interrupted run's shards) are checked first:
each carries the SHA-256 of its rows, and one edited after it was written is run again, never reused."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairderm._io import atomic_write_parquet, read_parquet_metadata
from fairderm.inference import Predictor, PredictorOutput, run_inference
from tests.helpers.lesion_cohorts import make_lesion_cohort


class CountingPredictor(Predictor):
    """Class ``k % 4`` for ``img_k``; raises KeyboardInterrupt (a Ctrl-C) at batch ``interrupt_at``."""

    backend = "counting"
    input_size = 16
    batch_size = 4

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.classes = ["MEL", "NEV", "BCC", "SK"]
        self.interrupt_at = interrupt_at
        self.calls = 0

    def predict(self, inputs, image_ids):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        probs = np.zeros((len(image_ids), 4))
        for j, image_id in enumerate(image_ids):
            probs[j, int(image_id.split("_")[1]) % 4] = 1.0
        return PredictorOutput(probs=probs)

    def identity(self):
        return {"backend": "counting"}


def _edit_keeping_metadata(path, image_id: str, label: str) -> None:
    """What a forger does: change one case's prediction and keep the file's metadata as it was."""
    frame = pd.read_parquet(path)
    frame.loc[frame["image_id"] == image_id, "pred"] = label
    atomic_write_parquet(path, frame, metadata_json=read_parquet_metadata(path))


def test_edited_predictions_output_is_not_reused(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=8, size=32)
    out = tmp_path / "p.parquet"
    first = run_inference(cohort, out, backend=CountingPredictor(), workers=0)
    _edit_keeping_metadata(out, "img_0000", "nevus")
    again = CountingPredictor()
    rerun = run_inference(cohort, out, backend=again, workers=0)
    assert again.calls == 2  # every case run again
    assert rerun.predictions["pred"].tolist() == first.predictions["pred"].tolist()
    assert rerun.notes == [
        "p.parquet was changed after it was written (its rows do not match their hash): not reused, "
        "its cases are run again"
    ]
    assert rerun.summary().splitlines()[0] == rerun.notes[0]
    untouched = CountingPredictor()
    assert run_inference(cohort, out, backend=untouched, workers=0).notes == [] and untouched.calls == 0


def test_edited_shard_is_not_reused_on_resume(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=16, size=32)
    out = tmp_path / "p.parquet"
    try:
        run_inference(cohort, out, backend=CountingPredictor(interrupt_at=3), workers=0)
    except KeyboardInterrupt:
        pass
    shards = sorted(out.with_name("p.parquet.shards").glob("shard-*.parquet"))
    assert len(shards) == 2
    edited_id = pd.read_parquet(shards[0])["image_id"].iloc[0]
    _edit_keeping_metadata(shards[0], edited_id, "bcc")
    resumed_predictor = CountingPredictor()
    resumed = run_inference(cohort, out, backend=resumed_predictor, workers=0)
    assert resumed_predictor.calls == 3  # the edited shard's batch and the two never run
    fresh = run_inference(cohort, tmp_path / "fresh.parquet", backend=CountingPredictor(), workers=0)
    assert resumed.predictions["pred"].tolist() == fresh.predictions["pred"].tolist()
    assert len(resumed.notes) == 1 and resumed.notes[0].startswith("shard-000000.parquet was changed")
    assert resumed.notes[0].endswith("its 4 cases are run again")
