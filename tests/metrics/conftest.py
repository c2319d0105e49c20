"""Fixtures of the metrics tests (data builders live in ``tests.helpers.metrics_cases``)."""

from __future__ import annotations

import pytest

from tests.helpers.metrics_cases import Binary, Multiclass, make_binary, make_multiclass


@pytest.fixture(scope="session")
def binary() -> Binary:
    return make_binary()


@pytest.fixture(scope="session")
def multiclass() -> Multiclass:
    return make_multiclass()
