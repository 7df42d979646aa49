"""Fixtures for the end-to-end suite: a small simulated world, and models trained once per session."""

from __future__ import annotations

import pytest

from fraud_data.simulator import SimulationConfig

# Small enough to simulate in a second; 500 cards make ~1,000 transactions a simulated day.
E2E_WORLD = SimulationConfig(customers=500, terminals=1_000, days=45, seed=7)


@pytest.fixture(scope="session")
def local_models(tmp_path_factory):
    from training.streamed_twin import load_or_train, training_world

    # A smaller training world than the demo's: these tests need real models, not the best ones.
    return load_or_train(tmp_path_factory.mktemp("models"), training_world(500, 1_000, days=52))


@pytest.fixture(scope="session")
def e2e_world() -> SimulationConfig:
    return E2E_WORLD
