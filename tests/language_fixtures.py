"""Speech in several languages for the language tests (espeak-ng), and recordings that
change language between pauses."""

from __future__ import annotations

import numpy as np
from audio_fixtures import speech_samples

from streamer.audio import SAMPLE_RATE

# language -> (espeak-ng voice, sentence); the base model tells these voices apart reliably
# (espeak's ru, el, cmn, ja, ko, ar and hi voices mostly are not: ru+m3 on a short phrase is)
SPEECH = {
    "de": (
        "de",
        "Heute scheint die Sonne, und wir gehen zusammen in den Park, um dort spazieren zu gehen.",
    ),
    "es": ("es", "Hoy hace sol, y vamos juntos al parque para dar un paseo por la tarde."),
    "fr": (
        "fr",
        "Aujourd'hui il fait beau, et nous allons ensemble au parc pour faire une promenade.",
    ),
    "ru": ("ru+m3", "Привет, как дела? Спасибо, хорошо."),
    "en": ("en-us", "Today the sun is shining, and we are going to the park together for a walk."),
}
PAUSE_S = 3.0  # longer than a region's gap with the VAD's hangover and padding around it


def speech(language: str) -> np.ndarray:
    voice, text = SPEECH[language]
    return speech_samples(text, voice)


def switching_audio(languages: list[str]) -> np.ndarray:
    """The sentences of ``languages`` in turn, ``PAUSE_S`` of silence after each."""
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)
    return np.concatenate([part for code in languages for part in (speech(code), pause)])


def runs(languages: list[str]) -> list[str]:
    """``languages`` with repeats in a row collapsed: ["de", "de", "en"] -> ["de", "en"]."""
    return [code for k, code in enumerate(languages) if k == 0 or languages[k - 1] != code]
