"""A cohort's photographs measured on an engine: this machine's process pool or Ray, block by block.

With a checkpoint folder, the images are cut into fixed blocks of positions
(:func:`fairderm._engine.block_bounds`) and each finished block is written
there at once, atomically; a rerun of the same measurement (the same
*fingerprint*) reads the finished blocks and measures only the others. On
Ray, each block is one Ray Data block, measured by a stateless task
(``map_batches``); a task whose worker dies is run again by Ray, and the
driver keeps one record per position, so a block measured twice is counted
once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from fairderm._engine import Engine, block_bounds, ray_session
from fairderm._io import atomic_write_json, atomic_write_parquet
from fairderm._processes import worker_context
from fairderm.errors import FairdermError
from fairderm.tone._measure import RECORD_FIELDS, measure_chunk
from fairderm.tone._pipeline import ToneParameters

ProgressCallback = Callable[[int, int], None]
Item = tuple[str, str | None]
"""An image path and its lesion mask path (None: segment the lesion)."""

# Below this many images a process pool costs more than it saves.
_MIN_IMAGES_FOR_POOL = 48
_RUN_FILE = "run.json"


class BlockStore:
    """A checkpoint folder: ``run.json`` (the fingerprint) and ``block-NNNNNN.parquet`` (the records of block N)."""

    def __init__(self, folder: str | Path, fingerprint: str) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    def open(self) -> dict[int, list[dict[str, Any]]]:
        """The records of every finished block of this measurement; blocks of another one are discarded."""
        try:
            stored = json.loads((self.folder / _RUN_FILE).read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            stored = None
        if stored != self.fingerprint:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.folder / _RUN_FILE, {"fingerprint": self.fingerprint})
            return {}
        finished = {}
        for path in sorted(self.folder.glob("block-*.parquet")):
            # blocks are written atomically: one that does not read was not written here, and is measured again
            with contextlib.suppress(OSError, ValueError, pa.ArrowException):
                finished[int(path.stem.split("-")[1])] = _records(pd.read_parquet(path))
        return finished

    def write(self, index: int, records: list[dict[str, Any]]) -> None:
        atomic_write_parquet(self.folder / f"block-{index:06d}.parquet", pd.DataFrame.from_records(records))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.astype(object).where(frame.notna(), None)
    for column in ("ita", "ita_low", "ita_high", "skin_fraction", "skin_L", "skin_a", "skin_b", "lesion_fraction",
                   "exposure_correction"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame[list(RECORD_FIELDS)].to_dict("records")


def measure_items(
    items: Sequence[Item],
    params: ToneParameters,
    method: str,
    root: str,
    *,
    engine: Engine,
    workers: int,
    progress: ProgressCallback | None,
    checkpoint: BlockStore | None,
) -> list[dict[str, Any]]:
    """One record per item, in item order, measured on ``engine`` (resuming from ``checkpoint``)."""
    total = len(items)
    if checkpoint is None and not engine.is_ray:
        return _run_pool(items, _pool_chunks(total, workers), params, method, root, workers, progress)
    bounds = block_bounds(total, engine.block_size)
    finished = checkpoint.open() if checkpoint is not None else {}
    blocks: dict[int, list[dict[str, Any]]] = dict(finished)

    def keep(index: int, records: list[dict[str, Any]]) -> None:
        if checkpoint is not None:
            checkpoint.write(index, records)
        blocks[index] = records

    todo = [k for k in range(len(bounds)) if k not in finished]
    done = sum(len(records) for records in finished.values())
    if progress:
        progress(done, total)
    if engine.is_ray:
        _run_ray(items, bounds, todo, params, method, root, engine, keep, progress, done)
    else:
        chunks = [(k, bounds[k]) for k in todo]
        _run_pool(items, chunks, params, method, root, workers, progress, keep, done)
    return [record for k in range(len(bounds)) for record in blocks[k]]


def _pool_chunks(total: int, workers: int) -> list[tuple[int, tuple[int, int]]]:
    # small chunks keep the progress bar moving and the cores balanced
    size = max(4, min(64, total // (max(workers, 1) * 8) or 1))
    return list(enumerate(block_bounds(total, size)))


def _run_pool(
    items: Sequence[Item],
    chunks: list[tuple[int, tuple[int, int]]],
    params: ToneParameters,
    method: str,
    root: str,
    workers: int,
    progress: ProgressCallback | None,
    keep: Callable[[int, list[dict[str, Any]]], None] | None = None,
    done: int = 0,
) -> list[dict[str, Any]]:
    """Measure ``chunks`` (index, [start, stop)) here or in a process pool; each chunk's records go to ``keep``."""
    total = len(items)
    results: dict[int, list[dict[str, Any]]] = {}
    keep = keep or results.__setitem__
    if workers <= 1 or sum(stop - start for _, (start, stop) in chunks) < _MIN_IMAGES_FOR_POOL:
        for index, (start, stop) in chunks:
            records = []
            for item in items[start:stop]:
                records.extend(measure_chunk([item], params, method, root))
                done += 1
                if progress:
                    progress(done, total)
            keep(index, records)
        return [record for index, _ in chunks for record in results.get(index, [])]
    context = worker_context()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(measure_chunk, list(items[start:stop]), params, method, root): (index, stop - start)
                for index, (start, stop) in chunks
            }
            for future in as_completed(futures):
                index, size = futures[future]
                keep(index, future.result())
                done += size
                if progress:
                    progress(done, total)
    except BrokenProcessPool:
        hint = (" (started by spawn: a script that calls estimate_tone must do so under "
                "'if __name__ == \"__main__\":')" if context.get_start_method() == "spawn" else "")
        raise FairdermError(f"a tone worker process died{hint}; workers=1 measures in this process") from None
    return [record for index, _ in chunks for record in results.get(index, [])]


def measure_batch(batch: pd.DataFrame, *, params: ToneParameters, method: str, root: str) -> pd.DataFrame:
    """Ray Data task: the records of one block's rows (``block``, ``position``, ``path``, ``mask``)."""
    items = [(str(path), None if mask is None or pd.isna(mask) else str(mask))
             for path, mask in zip(batch["path"], batch["mask"])]
    records = pd.DataFrame.from_records(measure_chunk(items, params, method, root), columns=list(RECORD_FIELDS))
    records.insert(0, "position", batch["position"].to_numpy())
    records.insert(0, "block", batch["block"].to_numpy())
    return records


def _run_ray(
    items: Sequence[Item],
    bounds: list[tuple[int, int]],
    todo: list[int],
    params: ToneParameters,
    method: str,
    root: str,
    engine: Engine,
    keep: Callable[[int, list[dict[str, Any]]], None],
    progress: ProgressCallback | None,
    done: int,
) -> None:
    """Measure the blocks ``todo`` with Ray Data, one stateless task per block; each finished block goes to ``keep``."""
    if not todo:
        return
    with ray_session(engine) as ray:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        frames = [
            pd.DataFrame({
                "block": k,
                "position": range(bounds[k][0], bounds[k][1]),
                "path": [path for path, _ in items[bounds[k][0]:bounds[k][1]]],
                "mask": pd.Series([mask for _, mask in items[bounds[k][0]:bounds[k][1]]], dtype=object),
            })
            for k in todo
        ]
        dataset = ray.data.from_pandas(frames).map_batches(
            measure_batch, fn_kwargs={"params": params, "method": method, "root": root},
            batch_format="pandas", batch_size=None, num_cpus=1,
        )
        arrived: dict[int, dict[int, dict[str, Any]]] = {k: {} for k in todo}
        for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
            for k, rows in batch.groupby("block", sort=False):
                block = arrived.get(int(k))
                if block is None:
                    continue  # a block that arrived whole once already (a task Ray ran again)
                # keyed by position: a row that arrives twice is kept once
                block.update(zip(rows["position"].astype(int), _records(rows)))
                start, stop = bounds[int(k)]
                if len(block) == stop - start:
                    keep(int(k), [block[p] for p in range(start, stop)])
                    del arrived[int(k)]
                    done += stop - start
                    if progress:
                        progress(done, len(items))
        if arrived:
            raise FairdermError(f"Ray returned no records for {len(arrived)} block(s) of the tone estimation")
