"""Reduced-size simulations shared by the fraud_data tests (each takes well under a second)."""

from __future__ import annotations

import pytest

from fraud_data.simulator import SimulationConfig, simulate

# Fewer terminals than the Handbook's 10,000 keeps a few per customer at r = 5 and makes S2 frequent.
SMALL = SimulationConfig(customers=200, terminals=800, days=50, start="2018-04-01", seed=7)


@pytest.fixture(scope="session")
def small_sim():
    return simulate(SMALL)
