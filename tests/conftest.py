"""Shared test set-up: float64 torch, a seeded ``rng`` fixture, a deterministic hypothesis run."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import settings

torch.set_default_dtype(torch.float64)

#: Seed of every random test problem; printed in the report header (sklearn's seed contract).
SEED = int(os.environ.get("DGATING_TEST_SEED", "0"))

settings.register_profile("ci", derandomize=True, database=None, max_examples=60, deadline=None)
settings.load_profile("ci")


def pytest_report_header(config: pytest.Config) -> str:
    return f"dgating test seed: DGATING_TEST_SEED={SEED}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)
