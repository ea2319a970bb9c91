"""Words, readings and feeding a LocalAgreement policy: shared by the commit tests."""

from __future__ import annotations

from streamer.audio import SAMPLE_RATE
from streamer.live.commit import LocalAgreement
from streamer.types import Hypothesis, Word

MS = SAMPLE_RATE // 1000


def word(text: str, start_s: float, end_s: float, probability: float = 1.0) -> Word:
    return Word(text, int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE), probability)


def reading(words, window_start_sample: int = 0, window_end_sample: int | None = None):
    words = tuple(words)
    if window_end_sample is None:  # the window goes on a little after the last word
        last_end = max((w.end_sample for w in words), default=window_start_sample)
        window_end_sample = last_end + 200 * MS
    return Hypothesis(words, (), window_start_sample, window_end_sample, -0.2, 0.01, 1.2)


def sentence(text: str, start_s: float = 0.0, step_s: float = 0.5) -> list[Word]:
    """' a b c' with one word every ``step_s`` seconds."""
    return [
        word(" " + token, start_s + i * step_s, start_s + (i + 1) * step_s)
        for i, token in enumerate(text.split())
    ]


def feed(policy: LocalAgreement, *readings: Hypothesis) -> list[Word]:
    committed: list[Word] = []
    for hypothesis in readings:
        committed += policy.update(hypothesis).newly_committed
    return committed


def agree(policy: LocalAgreement, words, window_start_sample: int = 0) -> list[Word]:
    """Feed the same reading as many times as the policy needs to agree on it."""
    same = reading(words, window_start_sample)
    return feed(policy, *[same] * policy.n)
