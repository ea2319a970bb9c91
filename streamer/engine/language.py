"""Which language is spoken: Whisper's language detection, and the languages a model reads.

As openai/whisper's ``detect_language``: one decoder step on ``<|startoftranscript|>`` over
the window's audio features; the next-token logits restricted to the language tokens give the
probability of each language. An English-only model reads English and detects nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.audio import HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES
from streamer.engine.logits import log_softmax
from streamer.engine.session import DecoderSession
from streamer.engine.tokenizer import Tokenizer
from streamer.errors import ConfigError, ModelLoadError
from streamer.languages import AUTO

TOP_K = 3  # languages reported with a detection


@dataclass(frozen=True)
class LanguageGuess:
    """The most probable language of a window, and the runners-up (code, probability)."""

    language: str  # a code: "de"
    probability: float
    top: tuple[tuple[str, float], ...]


def model_languages(tokenizer: Tokenizer, multilingual: bool) -> dict[str, int]:
    """Code -> token id of the languages the model reads (English-only: just ``en``)."""
    tokens = tokenizer.language_tokens
    if multilingual and not tokens:
        raise ModelLoadError("a multilingual model whose tokenizer has no <|xx|> language tokens")
    return tokens if multilingual else {"en": tokens.get("en", -1)}


def check_language(language: str, tokenizer: Tokenizer, multilingual: bool) -> str:
    """The language to read with (a code, or ``auto`` on a multilingual model): an
    English-only model always reads ``en``; a code the model lacks is a ``ConfigError``."""
    codes = model_languages(tokenizer, multilingual)
    if not multilingual and language in (AUTO, "en"):
        return "en"
    if language == AUTO or language in codes:
        return language
    if not multilingual:
        raise ConfigError(
            f"language {language!r} needs a multilingual model (this one reads English "
            "only); use a multilingual model, e.g. --model base"
        )
    valid = " ".join(codes)
    raise ConfigError(f"language {language!r} is not one this model reads; valid: auto, {valid}")


def detect_language(engine, audio: np.ndarray) -> LanguageGuess:
    """The language of a recording (16 kHz float32), from its first 30 s window as
    ``streamer transcribe`` detects it; ``engine``: a ``transcribe.Engine``."""
    n_frames = min(N_FRAMES, len(audio) // HOP_LENGTH)
    features = engine.encode(audio[: N_SAMPLES + N_FFT], n_frames)
    return detect_in_features(engine.decoder, engine.tokenizer, features)


def detect_in_features(
    decoder: DecoderSession, tokenizer: Tokenizer, audio_features: np.ndarray
) -> LanguageGuess:
    """The language of the audio ``audio_features`` (1, positions, state) encode."""
    codes = model_languages(tokenizer, decoder.info.is_multilingual)
    if not decoder.info.is_multilingual:
        return LanguageGuess("en", 1.0, (("en", 1.0),))
    output = decoder.prefill(np.array([[tokenizer.special.sot]]), audio_features)
    names = list(codes)
    logits = output.logits[0, -1, [codes[name] for name in names]]
    probabilities = np.exp(log_softmax(logits))
    order = np.argsort(-probabilities)[:TOP_K]
    top = tuple((names[k], float(probabilities[k])) for k in order)
    return LanguageGuess(top[0][0], top[0][1], top)
