"""Oracle: our ONNX engine against faster-whisper on the same tiny.en weights, on real speech.

Over the LibriSpeech part of ``../shared/eval`` (110 utterances), greedy decoding with Whisper's
defaults on both sides (previous-text conditioning, temperature fallback, thresholds):

- our fp32 gives the same text tokens as faster-whisper fp32 on >= 95 % of the utterances
  (108/110 when this test was written; the rest differ by a near-tie in the logits);
- the corpus WERs of the two are within 0.3 points;
- our int8 files lose at most 1.0 WER point against our fp32 files.

Each engine is loaded once and transcribes the set once per session (~2 min on 2 cores).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamer.bench.offline import (
    EvalItem,
    FasterWhisperTranscriber,
    OursTranscriber,
    Transcription,
    read_eval_manifest,
)

EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "eval"
THREADS = max(1, min(4, os.cpu_count() or 1))
MIN_SAME_TOKENS = 0.95
MAX_FP32_WER_GAP = 0.003  # 0.3 points
MAX_INT8_WER_LOSS = 0.010  # 1.0 point

pytestmark = [
    pytest.mark.eval,
    pytest.mark.skipif(
        not (EVAL_DIR / "manifest.jsonl").exists(),
        reason=f"evaluation audio not found at {EVAL_DIR} (../shared/eval next to the repo)",
    ),
]


@pytest.fixture(scope="session")
def librispeech() -> list[tuple[EvalItem, object]]:
    """(item, 16 kHz float32 audio) for every LibriSpeech utterance of the manifest."""
    from streamer.audiofile import read_audio

    items = read_eval_manifest(EVAL_DIR / "manifest.jsonl", ["librispeech"])
    return [(item, read_audio(item.path)) for item in items]


def _transcribe_all(transcriber, librispeech) -> list[Transcription]:
    return [transcriber.transcribe(audio) for _, audio in librispeech]


@pytest.fixture(scope="session")
def ours_fp32(librispeech) -> list[Transcription]:
    return _transcribe_all(OursTranscriber("fp32", THREADS, "cpu", vad_filter=False), librispeech)


@pytest.fixture(scope="session")
def ours_int8(librispeech) -> list[Transcription]:
    return _transcribe_all(OursTranscriber("int8", THREADS, "cpu", vad_filter=False), librispeech)


@pytest.fixture(scope="session")
def faster_whisper_fp32(librispeech) -> list[Transcription]:
    pytest.importorskip("faster_whisper", reason="the oracle needs the dev extra (faster-whisper)")
    return _transcribe_all(FasterWhisperTranscriber("float32", THREADS), librispeech)


def _wer(librispeech, outputs: list[Transcription]) -> float:
    from streamer.bench.wer import corpus_wer

    return corpus_wer([item.reference for item, _ in librispeech], [o.text for o in outputs])


def _differences(librispeech, first, second, labels: tuple[str, str]) -> str:
    """The utterances whose tokens differ, one block each, for the failure message."""
    lines = []
    for (item, _), one, other in zip(librispeech, first, second):
        if one.tokens != other.tokens:
            lines += [
                f"{item.id}:",
                f"  {labels[0]:9s} {one.text}",
                f"  {labels[1]:9s} {other.text}",
            ]
    return "\n".join(lines)


def test_greedy_tokens_match_faster_whisper(librispeech, ours_fp32, faster_whisper_fp32):
    """Guards the decoder port: filters, timestamp rules, prompt and fallback must pick the same
    tokens as CTranslate2 on the same weights; only near-ties may differ."""
    same = sum(o.tokens == t.tokens for o, t in zip(ours_fp32, faster_whisper_fp32))
    differing = _differences(librispeech, ours_fp32, faster_whisper_fp32, ("ours fp32", "fw fp32"))
    print(f"identical tokens on {same}/{len(librispeech)} utterances\n{differing}")
    assert same >= MIN_SAME_TOKENS * len(librispeech), (
        f"only {same}/{len(librispeech)} utterances have identical tokens:\n{differing}"
    )


def test_fp32_wer_matches_faster_whisper(librispeech, ours_fp32, faster_whisper_fp32):
    """Where tokens differ, ours must not be worse in aggregate."""
    ours, theirs = _wer(librispeech, ours_fp32), _wer(librispeech, faster_whisper_fp32)
    print(f"WER ours fp32 {100 * ours:.2f} %, faster-whisper fp32 {100 * theirs:.2f} %")
    assert abs(ours - theirs) <= MAX_FP32_WER_GAP, (
        f"WER ours {100 * ours:.2f} % vs faster-whisper {100 * theirs:.2f} %:\n"
        + _differences(librispeech, ours_fp32, faster_whisper_fp32, ("ours fp32", "fw fp32"))
    )


def test_int8_wer_close_to_fp32(librispeech, ours_fp32, ours_int8):
    """Guards the dynamic quantization of our ONNX files (a bad scale shows up here first)."""
    fp32, int8 = _wer(librispeech, ours_fp32), _wer(librispeech, ours_int8)
    print(f"WER ours fp32 {100 * fp32:.2f} %, ours int8 {100 * int8:.2f} %")
    assert abs(int8 - fp32) <= MAX_INT8_WER_LOSS, (
        f"WER int8 {100 * int8:.2f} % vs fp32 {100 * fp32:.2f} %:\n"
        + _differences(librispeech, ours_fp32, ours_int8, ("ours fp32", "ours int8"))
    )
