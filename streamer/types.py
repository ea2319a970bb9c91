"""The vocabulary between pipeline stages: frozen records, time as absolute sample indices.

Seconds appear only in offline results (``Segment``), which mirror Whisper's own output, and at
the UI/sink edge. Everything that crosses a thread goes through one of these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

VadState = Literal["silence", "speech"]
EndpointReason = Literal["silence", "max_length", "end_of_stream"]


@dataclass(frozen=True, eq=False)
class AudioBlock:
    """Mono float32 audio at 16 kHz, first sample at absolute index ``start_sample``.

    ``captured_at_s`` is the source clock (wall clock for a microphone, virtual clock for a
    file at ``--pace fast``) at the moment the block's last sample was captured.
    """

    start_sample: int
    samples: np.ndarray  # shape (n,), float32, in [-1, 1]
    captured_at_s: float

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.samples)


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of audio the VAD calls speech, ``[start_sample, end_sample)``."""

    start_sample: int
    end_sample: int


@dataclass(frozen=True)
class SpeechStart:
    """VAD onset: speech begins at ``start_sample`` (pre-roll included)."""

    start_sample: int


@dataclass(frozen=True)
class SpeechEnd:
    """VAD endpoint: the speech span that began earlier ends at ``end_sample``."""

    end_sample: int
    reason: EndpointReason


@dataclass(frozen=True)
class SpeechPause:
    """A short pause inside a span: the voice stopped at ``voiced_end_sample`` and the gate
    has heard ``pause_ms`` of silence by ``at_sample``. The span may continue or end later."""

    voiced_end_sample: int
    at_sample: int


@dataclass(frozen=True)
class PauseOnset:
    """The voice stopped at ``voiced_end_sample`` and the gate has heard ``pause_onset_ms``
    of silence by ``at_sample``: a pause may be starting. The inference thread reads the
    words up to here at once, so that if the silence lasts until a ``SpeechPause`` they are
    final without a decode after it."""

    voiced_end_sample: int
    at_sample: int


VadEvent = SpeechStart | SpeechEnd | SpeechPause | PauseOnset


@dataclass(frozen=True)
class Word:
    """One word of a hypothesis; ``text`` keeps Whisper's leading space."""

    text: str
    start_sample: int
    end_sample: int
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """One segment of an offline transcription, as Whisper reports it."""

    start_s: float
    end_s: float
    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    language: str = "en"  # the code it was read in


@dataclass(frozen=True)
class Transcript:
    """The result of transcribing one file."""

    segments: tuple[Segment, ...]
    duration_s: float

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments).strip()


@dataclass(frozen=True)
class Hypothesis:
    """The decoder's current reading of the audio window, words in absolute samples."""

    words: tuple[Word, ...]
    tokens: tuple[int, ...]
    window_start_sample: int
    window_end_sample: int
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


# --- events from the inference thread to the UI / sinks -----------------------------------------


@dataclass(frozen=True)
class CommittedWord:
    """A word that will never change again; ``emitted_at_s`` is pipeline-clock seconds."""

    text: str
    start_sample: int
    end_sample: int
    emitted_at_s: float
    language: str = "en"  # the code of the utterance it was read in


@dataclass(frozen=True)
class Committed:
    """Words newly committed by one inference step (appended to what came before)."""

    words: tuple[CommittedWord, ...]


@dataclass(frozen=True)
class Tentative:
    """The current uncommitted tail; replaces the previous one."""

    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """An utterance ended; everything before ``end_sample`` is committed."""

    end_sample: int
    reason: EndpointReason
    emitted_at_s: float


@dataclass(frozen=True)
class Stats:
    """Health of the pipeline, sent periodically."""

    captured_samples: int = 0  # audio that entered the pipeline
    decoded_samples: int = 0  # audio the decoder has seen
    real_time_factor: float = 0.0  # compute seconds per audio second, last steps
    dropped_samples: int = 0  # lost to overflow (capture queue or ring buffer)
    xruns: int = 0  # input overflows reported by the audio driver
    vad_state: VadState = "silence"
    input_level_db: float = -120.0  # RMS of the last block, dBFS
    last_commit_latency_s: float | None = None  # emit time minus word end

    @property
    def lag_samples(self) -> int:
        return max(0, self.captured_samples - self.decoded_samples)


@dataclass(frozen=True)
class Notice:
    """A one-line message for the user (device lost, disk full, ...), not fatal."""

    text: str
    level: Literal["info", "warning", "error"] = "warning"


PipelineEvent = Committed | Tentative | Endpoint | Stats | Notice


@dataclass(frozen=True)
class TranscriptState:
    """Immutable snapshot the UI renders: bounded history + tentative tail + stats."""

    committed_lines: tuple[str, ...] = ()
    current_line: str = ""  # committed words of the utterance in progress
    tentative: str = ""
    stats: Stats = field(default_factory=Stats)
    device: str = ""
    device_rate: int = 0
    provider: str = "CPU"
    notice: str = ""
    language: str = ""  # of the newest committed words ("" until the first)
