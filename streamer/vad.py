"""VadGate: 16 kHz audio in blocks of any size -> SpeechStart / SpeechEnd events.

webrtcvad classifies fixed frames (``frame_ms``) laid on the absolute sample grid that starts at
``start_sample``; a block that ends mid-frame leaves a remainder for the next block. Every
decision is taken per frame, so the events depend only on the audio, never on how it was cut
into blocks (the ``FixedVADIterator`` problem of silero_vad_iterator.py:106-130).

Rules, with ``VadConfig`` names:

- onset: ``onset_frames`` voiced frames among the last ``onset_window_frames``. The span starts
  ``pre_roll_ms`` before the first voiced frame of that window, so the first syllable survives;
  never before the stream start nor before the previous span's end (spans never overlap).
- endpoint: ``hangover_ms`` of consecutive unvoiced frames. The span ends ``END_TAIL_MS`` after
  the end of the last voiced frame: webrtcvad often calls the final unvoiced consonant
  (/s/, /t/, /f/) silence, and 150 ms keeps it without adding much silence.
- pause: ``pause_ms`` of unvoiced frames inside a span emits ``SpeechPause`` (the words so
  far are final; the span goes on). ``pause_onset_ms`` of them emits ``PauseOnset`` first, so
  the inference thread can read those words while the gate waits to know it is a pause.
- maximum length: a span that reaches ``max_utterance_s`` is cut in the middle of its quietest
  frame (lowest RMS) among the last third, a pause between words rather than a word: emits
  ``SpeechEnd(cut, "max_length")`` then ``SpeechStart(cut)``. If fewer than ``onset_frames``
  voiced frames follow the cut, the speaker has paused: the span just ends there and the next
  span waits for a real onset (no near-empty span of trailing silence).
- warm-up: frames in the first ``WARMUP_MS`` of the stream never count towards an onset.
  webrtcvad's noise model starts empty and calls the first ~100 ms of any steady noise speech;
  speech that really starts at once still gets its span, from the stream start, a little later.
- ``flush()`` at the end of the stream closes an open span with reason ``"end_of_stream"``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np
import webrtcvad

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.config import VadConfig
from streamer.errors import ConfigError
from streamer.types import (
    AudioBlock,
    PauseOnset,
    SpeechEnd,
    SpeechPause,
    SpeechSpan,
    SpeechStart,
    VadEvent,
    VadState,
)

END_TAIL_MS = 150  # kept after the last voiced frame so final consonants survive
WARMUP_MS = 200  # webrtcvad's noise estimate settles within 70-120 ms (measured, all frame sizes)
LEVEL_FLOOR_DB = -120.0  # level reported for digital silence
MAX_LENGTH_SEARCH_FRACTION = 1 / 3  # the cut is searched in this last part of a too-long span


class VadGate:
    """Streaming voice-activity gate over webrtcvad; feed ``process``, end with ``flush``."""

    def __init__(self, config: VadConfig, start_sample: int = 0) -> None:
        validate_vad_config(config)
        if start_sample < 0:
            raise ValueError(f"start_sample must be >= 0, got {start_sample}")
        self.config = config
        self._vad = webrtcvad.Vad(config.aggressiveness)
        # frame geometry and rule lengths, in samples or frames
        self.frame_samples = ms_to_samples(config.frame_ms)
        self._pre_roll_samples = ms_to_samples(config.pre_roll_ms)
        self._hangover_frames = math.ceil(config.hangover_ms / config.frame_ms)
        # a pause is only worth reporting if it comes before the span would end anyway
        pause_frames = math.ceil(config.pause_ms / config.frame_ms) if config.pause_ms else 0
        self._pause_frames = pause_frames if pause_frames < self._hangover_frames else 0
        # ...and its onset only if it comes before the pause
        onset_ms = config.pause_onset_ms
        onset_frames = math.ceil(onset_ms / config.frame_ms) if onset_ms else 0
        self._pause_onset_frames = onset_frames if onset_frames < self._pause_frames else 0
        self._tail_samples = ms_to_samples(END_TAIL_MS)
        self._warmup_end = start_sample + ms_to_samples(WARMUP_MS)
        self._max_samples = int(round(config.max_utterance_s * SAMPLE_RATE))
        # the frame grid: samples before _remainder_start were classified
        self._remainder = np.zeros(0, dtype=np.int16)
        self._remainder_start = start_sample
        # onset: (frame_start, voiced) of the latest frames while in silence
        self._onset_window: deque[tuple[int, bool]] = deque(maxlen=config.onset_window_frames)
        # (frame_start, rms, voiced) of enough recent frames to search a max-length cut
        n_history_frames = self._max_samples // self.frame_samples + 2
        self._history: deque[tuple[int, float, bool]] = deque(maxlen=n_history_frames)
        # the open span, if any
        self._span_start: int | None = None
        self._last_voiced_end = start_sample
        self._unvoiced_run = 0
        self._previous_end = start_sample
        self._level_db = LEVEL_FLOOR_DB

    # --- public ----------------------------------------------------------------------------------

    def process(self, block: AudioBlock | np.ndarray) -> list[VadEvent]:
        """Classify every complete frame in ``block`` and return the events they caused.

        ``block`` is an ``AudioBlock`` (which must start where the previous one ended) or the
        next samples as an array, shape (n,), float32 in [-1, 1] or int16. Any length is fine.
        """
        if isinstance(block, AudioBlock):
            if block.start_sample != self.position_sample:
                raise ValueError(
                    f"AudioBlock starts at sample {block.start_sample} but the VAD expects "
                    f"{self.position_sample}: blocks must be contiguous"
                )
            block = block.samples
        pcm = _to_int16(block)
        if len(self._remainder):
            pcm = np.concatenate([self._remainder, pcm])
        n_frames = len(pcm) // self.frame_samples
        events: list[VadEvent] = []
        for index in range(n_frames):
            frame = pcm[index * self.frame_samples : (index + 1) * self.frame_samples]
            events.extend(self._step(self._remainder_start, frame))
            self._remainder_start += self.frame_samples
        self._remainder = pcm[n_frames * self.frame_samples :].copy()
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close the open span, if any, with reason ``"end_of_stream"``.

        The trailing partial frame is not classified. The gate stays usable: more audio after
        a flush continues on the same frame grid and can open a new span.
        """
        if self._span_start is None:
            return []
        end = min(self._last_voiced_end + self._tail_samples, self.position_sample)
        return [self._close(end, "end_of_stream")]

    @property
    def state(self) -> VadState:
        return "silence" if self._span_start is None else "speech"

    @property
    def level_db(self) -> float:
        """RMS of the last classified frame in dBFS (full scale = 0 dB); for the level meter."""
        return self._level_db

    @property
    def position_sample(self) -> int:
        """Absolute index of the next sample ``process`` expects."""
        return self._remainder_start + len(self._remainder)

    @property
    def span_start_sample(self) -> int | None:
        """Start of the open span (pre-roll included), or None in silence."""
        return self._span_start

    # --- one frame -------------------------------------------------------------------------------

    def _step(self, frame_start: int, frame: np.ndarray) -> list[VadEvent]:
        voiced = self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) / 32768.0
        self._level_db = max(LEVEL_FLOOR_DB, 20 * math.log10(rms)) if rms > 0 else LEVEL_FLOOR_DB
        self._history.append((frame_start, rms, voiced))
        if self._span_start is None:
            return self._step_in_silence(frame_start, voiced)
        return self._step_in_speech(frame_start, voiced)

    def _step_in_silence(self, frame_start: int, voiced: bool) -> list[VadEvent]:
        self._onset_window.append((frame_start, voiced and frame_start >= self._warmup_end))
        voiced_starts = [start for start, is_voiced in self._onset_window if is_voiced]
        if len(voiced_starts) < self.config.onset_frames:
            return []
        start = max(self._previous_end, voiced_starts[0] - self._pre_roll_samples)
        self._span_start = start
        self._last_voiced_end = frame_start + self.frame_samples
        self._unvoiced_run = 0
        return [SpeechStart(start)]

    def _step_in_speech(self, frame_start: int, voiced: bool) -> list[VadEvent]:
        frame_end = frame_start + self.frame_samples
        if voiced:
            self._last_voiced_end = frame_end
            self._unvoiced_run = 0
        else:
            self._unvoiced_run += 1
        if self._unvoiced_run >= self._hangover_frames:
            end = min(self._last_voiced_end + self._tail_samples, frame_end)
            return [self._close(end, "silence")]
        if self._pause_frames and self._unvoiced_run == self._pause_frames:
            return [SpeechPause(self._last_voiced_end, frame_end)]
        assert self._span_start is not None
        if frame_end - self._span_start >= self._max_samples:
            return self._cut(frame_end)  # the cut ends this span: no pause is coming in it
        if self._pause_onset_frames and self._unvoiced_run == self._pause_onset_frames:
            return [PauseOnset(self._last_voiced_end, frame_end)]
        return []

    def _cut(self, frame_end: int) -> list[VadEvent]:
        """Split a span that reached the maximum length at its quietest recent frame."""
        assert self._span_start is not None
        search_from = frame_end - int(self._max_samples * MAX_LENGTH_SEARCH_FRACTION)
        latest = self._span_start + self._max_samples - self.frame_samples // 2  # cut <= limit
        candidates = [
            (rms, -start) for start, rms, _ in self._history if search_from <= start <= latest
        ]
        quietest_start = -min(candidates)[1]  # ties (digital silence): the latest, longest span
        cut = quietest_start + self.frame_samples // 2
        after_cut = [(start, voiced) for start, _, voiced in self._history if start >= cut]
        if sum(voiced for _, voiced in after_cut) >= self.config.onset_frames:
            self._span_start = cut
            return [SpeechEnd(cut, "max_length"), SpeechStart(cut)]
        # Too little voice after the cut to count as an onset: the speaker paused. End here;
        # the frames after the cut join the onset window, as if the span had ended by silence.
        end = self._close(cut, "max_length")
        self._onset_window.extend(after_cut)
        return [end]

    def _close(self, end_sample: int, reason: str) -> SpeechEnd:
        self._span_start = None
        self._previous_end = end_sample
        self._unvoiced_run = 0
        self._onset_window.clear()
        return SpeechEnd(end_sample, reason)  # type: ignore[arg-type]


# --- helpers -----------------------------------------------------------------------------------


def validate_vad_config(config: VadConfig) -> None:
    """Raise ``ConfigError`` naming the valid values for anything webrtcvad or the rules reject."""
    checks = [
        ("aggressiveness", config.aggressiveness in (0, 1, 2, 3), "one of 0, 1, 2, 3"),
        ("frame_ms", config.frame_ms in (10, 20, 30), "one of 10, 20, 30 (webrtcvad frames)"),
        ("onset_frames", config.onset_frames >= 1, "at least 1"),
        (
            "onset_window_frames",
            config.onset_window_frames >= config.onset_frames,
            f"at least onset_frames ({config.onset_frames})",
        ),
        ("pre_roll_ms", 0 <= config.pre_roll_ms <= 2000, "between 0 and 2000"),
        ("hangover_ms", 0 < config.hangover_ms <= 5000, "between 1 and 5000"),
        ("max_utterance_s", 1.0 <= config.max_utterance_s <= 30.0, "between 1 and 30"),
        (
            "pause_onset_ms",
            not config.pause_ms or config.pause_onset_ms < config.pause_ms,
            f"below pause_ms ({config.pause_ms}), or 0 to read only when a pause is certain",
        ),
    ]
    for name, ok, valid in checks:
        if not ok:
            value = getattr(config, name)
            raise ConfigError(f"vad.{name} = {value!r} is not valid; must be {valid}")


def _to_int16(samples: np.ndarray) -> np.ndarray:
    """(n,) float in [-1, 1] (clipped) or int16 -> int16 PCM, as webrtcvad wants it."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"audio must have shape (n,), got {samples.shape}")
    if samples.dtype == np.int16:
        return samples
    return np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def spans_from_events(events: Iterable[VadEvent]) -> list[SpeechSpan]:
    """Pair each SpeechStart with the SpeechEnd after it; an unclosed start is left out."""
    spans: list[SpeechSpan] = []
    start: int | None = None
    for event in events:
        if isinstance(event, SpeechPause | PauseOnset):
            continue
        if isinstance(event, SpeechStart):
            assert start is None, "two SpeechStart events without a SpeechEnd between them"
            start = event.start_sample
        else:
            assert start is not None, "SpeechEnd without a SpeechStart"
            spans.append(SpeechSpan(start, event.end_sample))
            start = None
    return spans


def detect_speech_spans(
    samples: np.ndarray, config: VadConfig | None = None, block_samples: Sequence[int] = ()
) -> list[SpeechSpan]:
    """Speech spans of a whole 16 kHz recording (shape (n,)), stream ending at its end.

    ``block_samples`` optionally feeds the audio in blocks of those lengths (the rest in one
    block); the result must not depend on it.
    """
    gate = VadGate(config or VadConfig())
    events: list[VadEvent] = []
    offset = 0
    for length in block_samples:
        events += gate.process(samples[offset : offset + length])
        offset += length
    events += gate.process(samples[offset:])
    events += gate.flush()
    return spans_from_events(events)
