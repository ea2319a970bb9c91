"""The multilingual base model for the benchmark tests (skipped where it is not built)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    from streamer.engine.models import ensure_model
    from streamer.errors import ModelLoadError

    try:
        return ensure_model("base", log=lambda _: None)
    except ModelLoadError as error:
        pytest.skip(f"the multilingual base model is not available: {error}")
