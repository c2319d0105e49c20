"""Case-mix-adjusted odds ratios of a correct prediction for every group of
every single attribute (see :func:`fairderm.metrics.case_mix_adjustment`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairderm.metrics._casemix import CASE_MIX_COLUMNS, case_mix_adjustment
from fairderm.metrics._engine import Engine


def case_mix_rows(engine: Engine, m: int) -> pd.DataFrame:
    cases, model = engine.cases, engine.models[m]
    frames = []
    correct = (model.pred == cases.y).astype(np.float64)
    diagnosis = np.asarray([str(label) for label in cases.labels], dtype=object)[cases.y]
    for attribute in cases.attributes:
        if len(attribute.members) != 1 or attribute.name not in engine.references:
            continue
        values = np.asarray([name.split("=", 1)[1] for name in attribute.groups], dtype=object)[attribute.codes]
        if len(set(values)) < 2:
            continue
        frames.append(case_mix_adjustment(
            correct, values, diagnosis, covariates=cases.covariates, cluster=cases.cluster,
            reference=engine.slots[engine.references[attribute.name]].value, attribute=attribute.name,
            confidence=engine.options.confidence,
        ).assign(group=lambda f, a=attribute.name: a + "=" + f["group"],
                 reference=lambda f, a=attribute.name: a + "=" + f["reference"]))
    if not frames:
        return pd.DataFrame(columns=CASE_MIX_COLUMNS)
    return pd.concat(frames, ignore_index=True)
