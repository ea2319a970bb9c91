"""Japanese and Chinese through the live pipeline and the multilingual base model: committed
characters, no spaces put between them, nothing committed twice, close to the offline read."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import require_espeak, speech_samples
from conftest import require_eval

from streamer.audio import SAMPLE_RATE
from streamer.bench.stream_run import run_file
from streamer.config import load_config
from streamer.engine.script import is_spaceless_char
from streamer.engine.transcribe import transcribe_file
from streamer.live.wordtext import repeat_lengths

# espeak-ng's Japanese reads kana (its Chinese voice is beyond Whisper)
JAPANESE = [
    "きょうは いい てんき ですね。",
    "わたしは がっこうに いきます。",
    "あしたは あめが ふります。",
]
LIVE_CER_MARGIN = 0.12  # live may lose this much character accuracy to offline (measured 5)


def _config(language: str):
    return load_config(
        "captions",
        overrides={
            "decode": {"language": language},
            "stream": {"pace": "fast", "virtual_cpu_speed": 4.0},
        },
    )


def _offline(path: Path, engine, config) -> str:
    read = transcribe_file(engine, path, config.decode, offline=config.offline, vad=config.vad)
    return read.transcript.text


def _characters(text: str, language: str) -> str:
    """The text as CER compares it: no spaces or punctuation; Chinese in Simplified (Whisper
    writes Traditional as often as not)."""
    if language == "zh":
        text = pytest.importorskip("opencc").OpenCC("t2s").convert(text)
    return "".join(c for c in text if unicodedata.category(c)[0] not in "PSZC")


def _cer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return jiwer.cer(references, hypotheses)


def _assert_spaceless_and_once(text: str) -> None:
    # no space between two characters of the script
    for before, space, after in zip(text, text[1:], text[2:]):
        assert not (space.isspace() and is_spaceless_char(before) and is_spaceless_char(after))
    # no phrase of 3+ characters committed twice in a row (a seam read twice)
    chars = _characters(text, "ja")
    assert not any(next(repeat_lengths(chars, i, 3, len(chars)), 0) for i in range(len(chars)))


def test_japanese_speech_streams_as_characters_without_spaces_or_repeats(base_engine, tmp_path):
    require_espeak()
    gap = np.zeros(SAMPLE_RATE, np.float32)
    parts = [gap]
    for sentence in JAPANESE:
        parts += [speech_samples(sentence, voice="ja"), gap]
    path = tmp_path / "ja.wav"
    sf.write(path, np.concatenate(parts), SAMPLE_RATE)
    config = _config("ja")
    live = run_file(path, base_engine, config).text
    offline_text = _offline(path, base_engine, config)
    assert sum(is_spaceless_char(c) for c in live) >= 15, live
    _assert_spaceless_and_once(live)
    # the live read is the offline read, give or take what agreement and seams cost
    assert _cer([_characters(offline_text, "ja")], [_characters(live, "ja")]) < 0.5, (
        live,
        offline_text,
    )


@pytest.mark.parametrize("language", ["zh", "ja"])
def test_live_character_error_rate_stays_near_offline(base_engine, language):
    eval_dir = require_eval() / "multilingual"
    manifest = eval_dir / "manifest.jsonl"
    if not manifest.exists():
        pytest.skip(f"multilingual evaluation audio not found at {eval_dir}")
    clips = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    clips = [clip for clip in clips if clip["language"] == language]
    config = _config(language)
    references, offline, live = [], [], []
    for clip in clips:
        path = eval_dir / clip["path"]
        references.append(_characters(clip["text"], language))
        offline.append(_characters(_offline(path, base_engine, config), language))
        streamed = run_file(path, base_engine, config).text
        _assert_spaceless_and_once(streamed)
        live.append(_characters(streamed, language))
    offline_cer, live_cer = _cer(references, offline), _cer(references, live)
    assert live_cer <= offline_cer + LIVE_CER_MARGIN, (offline_cer, live_cer)
