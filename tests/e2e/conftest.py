"""Fixtures for the end-to-end suite: the local models, trained once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_models(tmp_path_factory):
    from training.local_models import load_or_train

    return load_or_train(tmp_path_factory.mktemp("models"), source="synthetic")
