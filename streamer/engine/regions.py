"""Speech regions of a recording, for offline transcription: silence is skipped and each region
starts its own 30 s windows, at a pause, as faster-whisper's ``vad_filter`` places its chunks.

Without regions, a window that opens in a long silence or straddles a change of speaker can
read its whole 30 s as one short phrase and seek past a sentence (a 40-word turn of the
10-voice session was lost that way), and a bad window's text primes the next. Each region is
read on its own, so neither carries across a pause of ``gap_ms`` or more.

The audio streams through: blocks feed the VAD gate as they arrive, and only the pending
region and a little look-behind stay in memory (at most ``MAX_REGION_S`` of speech at a time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.config import OfflineConfig, VadConfig
from streamer.types import SpeechEnd, SpeechStart
from streamer.vad import VadGate

# a region this long is closed at the next pause of any length, so memory stays bounded
MAX_REGION_S = 300.0
# audio kept before the gate's position: a span can start up to the pre-roll plus the onset
# window before the frame that reports it, and the region adds its padding before that
LOOK_BEHIND_S = 2.0


@dataclass(frozen=True)
class SpeechRegion:
    """Speech with the silence around it trimmed; ``samples`` is float32, shape (n,)."""

    start_sample: int
    samples: np.ndarray

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.samples)


class _Audio:
    """The stream's recent audio, addressed by absolute sample index."""

    def __init__(self) -> None:
        self.samples = np.zeros(0, dtype=np.float32)
        self.start = 0  # absolute index of samples[0]

    @property
    def end(self) -> int:
        return self.start + len(self.samples)

    def append(self, block: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, block.astype(np.float32, copy=False)])

    def forget_before(self, sample: int) -> None:
        drop = min(max(0, sample - self.start), len(self.samples))
        self.samples = self.samples[drop:]
        self.start += drop

    def region(self, start: int, end: int) -> SpeechRegion:
        start, end = max(start, self.start), min(end, self.end)
        return SpeechRegion(start, self.samples[start - self.start : end - self.start].copy())


def speech_regions(
    blocks: Iterable[np.ndarray], vad: VadConfig, offline: OfflineConfig
) -> Iterator[SpeechRegion]:
    """Regions of speech in a 16 kHz float32 block stream, in order, never overlapping: each
    VAD span widened by ``pad_ms`` on both sides, spans closer than ``gap_ms`` joined."""
    gate = VadGate(vad)
    audio = _Audio()
    pad, gap = ms_to_samples(offline.pad_ms), ms_to_samples(offline.gap_ms)
    max_region = int(MAX_REGION_S * SAMPLE_RATE)
    pending: list[int] | None = None  # [start, end] of the region being gathered
    open_start: int | None = None  # start of the span the gate is in, if any

    def admit(start: int, end: int | None) -> Iterator[SpeechRegion]:
        """A span (``end`` None: still open) joins the pending region or closes it."""
        nonlocal pending
        start = max(start - pad, 0)
        if pending is not None:
            joins = start - pending[1] < gap and pending[1] - pending[0] < max_region
            if not joins:
                yield audio.region(*pending)
                pending = None
            elif end is not None:
                pending[1] = max(pending[1], end + pad)
                return
            else:
                return
        if end is not None:
            pending = [max(start, audio.start), end + pad]

    for block in blocks:
        audio.append(block)
        for event in gate.process(block):
            if isinstance(event, SpeechStart):
                open_start = event.start_sample
                yield from admit(open_start, None)
            elif isinstance(event, SpeechEnd):
                start, open_start = open_start, None
                yield from admit(start if start is not None else event.end_sample, event.end_sample)
        keep = audio.end - int(LOOK_BEHIND_S * SAMPLE_RATE)
        if pending is not None:
            keep = min(keep, pending[0])
        if open_start is not None:
            keep = min(keep, open_start - pad)
        audio.forget_before(keep)
    for event in gate.flush():
        if isinstance(event, SpeechEnd):
            start, open_start = open_start, None
            yield from admit(start if start is not None else event.end_sample, event.end_sample)
    if pending is not None:
        yield audio.region(*pending)
