"""Fixtures for the end-to-end suite: the local models, trained once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_models(tmp_path_factory):
    from training.local_models import load_or_train

    # Fewer rows than `make train`: these tests need real models, not the best ones.
    return load_or_train(tmp_path_factory.mktemp("models"), source="synthetic", rows=30_000)
