"""Inference on Ray: actors that each load the model once and predict one block of cases per call.

The cases still to do are cut into blocks (:func:`fairderm._engine.block_bounds`),
one Ray Data block each, and mapped through a pool of actors
(``map_batches`` with a callable class). Each actor builds the run's
predictor once, on the GPU it was given when it asks for one, and turns a
block into prediction rows exactly as a local run turns a batch
(:func:`fairderm.inference._rows.predict_batches`). The driver yields each
block once all its rows have arrived; the runner writes it as a shard, so a
killed driver loses only the blocks in flight. An actor whose process dies
is restarted by Ray and its block run again; the driver keeps one row per
position, so no case is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fairderm._engine import Engine, block_bounds, ray_session
from fairderm.errors import FairdermError
from fairderm.inference._images import CaseDataset, case_loader
from fairderm.inference._predictions import typed_predictions
from fairderm.inference._predictor import Predictor, load_predictor
from fairderm.inference._rows import RowBuilder, predict_batches


@dataclass(frozen=True)
class ModelSource:
    """What an actor needs to build the run's predictor and its rows.

    ``backend`` is a registered backend name (the actor loads the model
    itself) or a ready :class:`Predictor`, which Ray copies to each actor.
    """

    backend: str | Predictor
    model: str | None
    options: dict[str, Any]
    labels: list[str]
    class_labels: list[str]
    device: str | None
    batch_size: int | None


class _PredictActor:
    """A Ray actor holding one predictor; each call predicts one block of cases."""

    def __init__(self, source: ModelSource, root: str | None, threads: int) -> None:
        import torch  # in the actor's process; a model actor always runs a torch predictor

        from fairderm.inference._backbone import pick_device

        # a CPU actor gets the cores it asked Ray for, not every core of the node
        torch.set_num_threads(max(1, threads))
        device = pick_device(source.device)
        if isinstance(source.backend, Predictor):
            self.predictor = source.backend
        else:
            self.predictor = load_predictor(source.backend, source.model, labels=source.labels, device=device,
                                            **source.options)
        self.predictor.to(device)
        self.builder = RowBuilder(self.predictor, source.labels, source.class_labels)
        self.batch_size = source.batch_size or self.predictor.batch_size
        self.root = None if root is None else Path(root)

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        paths = [None if pd.isna(path) else Path(path) for path in block["path"]]
        loader = case_loader(
            CaseDataset(paths, self.predictor.preprocess, root=self.root), self.predictor.collate,
            batch_size=self.batch_size, workers=0, pin_memory=False,
        )
        ids, strata = block["image_id"].astype(str).tolist(), block["stratum"].astype(str).tolist()
        rows = [row for batch in predict_batches(self.predictor, self.builder, loader, ids, strata) for row in batch]
        frame = typed_predictions(pd.DataFrame(rows), self.builder.labels, has_probs=self.builder.has_probs,
                                  has_text=self.builder.has_text)
        frame.insert(0, "position", block["position"].to_numpy())
        frame.insert(0, "block", block["block"].to_numpy())
        return frame


def _actor_count(ray: Any, engine: Engine) -> int:
    """``engine.actors``, else as many actors as the cluster's CPUs and GPUs fit."""
    if engine.actors is not None:
        return engine.actors
    resources = ray.cluster_resources()
    fits = []
    if engine.actor_cpus > 0:
        fits.append(int(resources.get("CPU", 1) // engine.actor_cpus))
    if engine.actor_gpus > 0:
        fits.append(int(resources.get("GPU", 0) // engine.actor_gpus))
    if fits and min(fits) < 1:
        raise FairdermError(f"the Ray cluster has no room for one model actor ({engine.actor_cpus:g} CPU, "
                            f"{engine.actor_gpus:g} GPU; it has {resources.get('CPU', 0):g} CPU, "
                            f"{resources.get('GPU', 0):g} GPU)")
    return max(1, min(fits)) if fits else 1


def predict_on_ray(
    source: ModelSource,
    engine: Engine,
    case_ids: Sequence[str],
    strata: Sequence[str],
    paths: Sequence[Path | None],
    root: Path | None,
) -> Iterator[list[dict[str, Any]]]:
    """The prediction rows of each block of cases, as each block finishes (in any block order)."""
    bounds = block_bounds(len(case_ids), engine.block_size)
    with ray_session(engine) as ray:
        ray.data.DataContext.get_current().enable_progress_bars = False
        frames = [
            pd.DataFrame({
                "block": k,
                "position": range(start, stop),
                "image_id": list(case_ids[start:stop]),
                "stratum": list(strata[start:stop]),
                "path": pd.Series([None if p is None else str(p) for p in paths[start:stop]], dtype=object),
            })
            for k, (start, stop) in enumerate(bounds)
        ]
        dataset = ray.data.from_pandas(frames).map_batches(
            _PredictActor,
            fn_constructor_kwargs={"source": source, "root": None if root is None else str(root),
                                   "threads": max(1, int(engine.actor_cpus))},
            batch_format="pandas", batch_size=None, concurrency=_actor_count(ray, engine),
            num_cpus=engine.actor_cpus, num_gpus=engine.actor_gpus,
        )
        arrived: dict[int, dict[int, dict[str, Any]]] = {k: {} for k in range(len(bounds))}
        for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
            for k, rows in batch.groupby("block", sort=False):
                block = arrived.get(int(k))
                if block is None:
                    continue  # a block that arrived whole once already (an actor call Ray ran again)
                records = rows.drop(columns=["block", "position"]).to_dict("records")
                # keyed by position: a row that arrives twice is kept once
                block.update(zip(rows["position"].astype(int), records))
                start, stop = bounds[int(k)]
                if len(block) == stop - start:
                    yield [block[p] for p in range(start, stop)]
                    del arrived[int(k)]
        if arrived:
            raise FairdermError(f"Ray returned no predictions for {len(arrived)} block(s)")
