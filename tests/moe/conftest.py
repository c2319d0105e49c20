"""Fixtures of the router tests (the data itself: ``tests.helpers.planted_router``)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.planted_router import QUICK, PlantedCohort, make_planted_cohort


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train on one thread, as train_router does: tiny models, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def planted_cohort(tmp_path_factory: pytest.TempPathFactory) -> PlantedCohort:
    return make_planted_cohort(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def planted_router(planted_cohort: PlantedCohort, tmp_path_factory: pytest.TempPathFactory):
    """One router folder trained on the planted cohort, shared by the read-only tests."""
    from fairderm.moe import train_router

    out = tmp_path_factory.mktemp("router") / "router"
    return train_router(
        planted_cohort.root,
        out,
        tone=planted_cohort.tone,
        features=planted_cohort.features,
        sweep=[0.05],
        **QUICK,
    )
